/* Tests for node/linux/console: the ring file (append, wrap, read the tail,
 * a size change, a file that is not a ring) and the reader process. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/console.h"

static char ring[128];

static int
setup(void **state)
{
    snprintf(ring, sizeof(ring), "/tmp/vf-console-test-%d.ring", (int)getpid());
    unlink(ring);
    return 0;
}

static int
teardown(void **state)
{
    unlink(ring);
    return 0;
}

static void
test_append_wrap_read(void **state)
{
    struct console_log c;
    assert_int_equal(console_ring_read(ring, 0, &c), -ENOENT);
    int fd = console_ring_open(ring, CONSOLE_RING_MIN);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, CONSOLE_HEADER + CONSOLE_RING_MIN);
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_int_equal(c.len, 0);
    assert_int_equal(c.total, 0);
    free(c.data);

    assert_int_equal(console_ring_append(fd, "hello\n", 6), 0);
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_string_equal(c.data, "hello\n");
    assert_int_equal(c.total, 6);
    free(c.data);

    /* 10000 numbered bytes through a 4096-byte ring in uneven pieces: the
     * ring holds the last 4096, in order, across the wrap. */
    char buf[10000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (char)('a' + i % 26);
    size_t off = 0, step = 1;
    while (off < sizeof(buf)) {
        size_t n = step < sizeof(buf) - off ? step : sizeof(buf) - off;
        assert_int_equal(console_ring_append(fd, buf + off, n), 0);
        off += n;
        step = step * 3 + 1;
    }
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_int_equal(c.len, CONSOLE_RING_MIN);
    assert_int_equal(c.total, 6 + sizeof(buf));
    assert_memory_equal(c.data, buf + sizeof(buf) - CONSOLE_RING_MIN, CONSOLE_RING_MIN);
    free(c.data);
    /* The tail only. */
    assert_int_equal(console_ring_read(ring, 100, &c), 0);
    assert_int_equal(c.len, 100);
    assert_memory_equal(c.data, buf + sizeof(buf) - 100, 100);
    free(c.data);
    /* One write larger than the ring keeps its end. */
    assert_int_equal(console_ring_append(fd, buf, sizeof(buf)), 0);
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_memory_equal(c.data, buf + sizeof(buf) - CONSOLE_RING_MIN, CONSOLE_RING_MIN);
    assert_int_equal(c.total, 6 + 2 * sizeof(buf));
    free(c.data);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, CONSOLE_HEADER + CONSOLE_RING_MIN);
    close(fd);

    /* Reopened with the same size the console continues; another size starts anew. */
    fd = console_ring_open(ring, CONSOLE_RING_MIN);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_int_equal(c.total, 6 + 2 * sizeof(buf));
    free(c.data);
    fd = console_ring_open(ring, 2 * CONSOLE_RING_MIN);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_int_equal(c.total, 0);
    free(c.data);
    assert_int_equal(console_ring_open(ring, 100), -EINVAL);
    assert_int_equal(console_ring_open(ring, CONSOLE_RING_MAX + 1), -EINVAL);
}

static void
test_not_a_ring(void **state)
{
    FILE *f = fopen(ring, "we");
    assert_non_null(f);
    fputs("a console.log from before rings\n", f);
    fclose(f);
    struct console_log c;
    assert_int_equal(console_ring_read(ring, 0, &c), -EBADMSG);
    /* Opening it for a guest's start makes it a ring. */
    int fd = console_ring_open(ring, CONSOLE_RING_MIN);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    free(c.data);
}

static void
test_reader(void **state)
{
    int fd = console_ring_open(ring, CONSOLE_RING_MIN);
    assert_true(fd >= 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        console_reader_run(p[0], fd);
    }
    close(p[0]);
    close(fd);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(write(p[1], "0123456789\n", 11), 11);
    close(p[1]); /* end of file: the reader ends */
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct console_log c;
    assert_int_equal(console_ring_read(ring, 0, &c), 0);
    assert_int_equal(c.total, 11000);
    assert_int_equal(c.len, CONSOLE_RING_MIN);
    assert_string_equal(c.data + c.len - 11, "0123456789\n");
    free(c.data);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_wrap_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
