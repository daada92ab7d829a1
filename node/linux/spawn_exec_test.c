/* Tests for node/linux/spawn: commands as long as the protocol allows, in
 * a real guest (root, a busybox rootfs in a temp directory), through an
 * exec and a shell's stream; over its limits, the caller's error. Skips
 * (77) without root or /bin/busybox. */
#include "node/linux/spawn_fixture.h"

#include <sys/eventfd.h>

#include "common/errtext.h"
#include "node/linux/spawnd.h"

/* A command as long as the protocol allows (PROTO_MAX_ARGV strings of
 * PROTO_MAX_STRING bytes each, ~1 MiB in all: far more than the spawner's
 * request holds itself) runs, and arrives byte for byte: the script prints
 * its $# and every argument back. argv[0], "-c" are short (argv[0] is the
 * path run); the script is padded to 4096 bytes, and so is every argument
 * after it. */
#define LONG_SCRIPT "printf '%s\\n' \"$#\" \"$0\"; for a; do printf '%s\\n' \"$a\"; done #"

struct long_cmd {
    char *argv[SPAWN_EXEC_MAX_ARGS + 2]; /* room for one too many */
    char *store;                         /* the long strings */
    char *expect;                        /* what the script prints */
    size_t expect_len;
};

static void
long_cmd_make(struct long_cmd *c)
{
    *c = (struct long_cmd){.argv = {"sh", "-c"}};
    c->store = xmalloc((size_t)SPAWN_EXEC_MAX_ARGS * (SPAWN_EXEC_ARG_MAX + 1));
    c->expect = xmalloc((size_t)SPAWN_EXEC_MAX_ARGS * (SPAWN_EXEC_ARG_MAX + 1) + 16);
    for (int i = 2; i < SPAWN_EXEC_MAX_ARGS; i++) {
        char *a = c->store + (size_t)i * (SPAWN_EXEC_ARG_MAX + 1);
        /* Distinct bytes per argument, so a shift or a mix-up shows. */
        for (int k = 0; k < SPAWN_EXEC_ARG_MAX; k++)
            a[k] = (char)('a' + (i * 7 + k) % 26);
        a[SPAWN_EXEC_ARG_MAX] = '\0';
        c->argv[i] = a;
    }
    memcpy(c->argv[2], LONG_SCRIPT, strlen(LONG_SCRIPT));
    int n = snprintf(c->expect, 16, "%d\n", SPAWN_EXEC_MAX_ARGS - 4); /* $0 is argv[3] */
    c->expect_len = (size_t)n;
    for (int i = 3; i < SPAWN_EXEC_MAX_ARGS; i++) {
        memcpy(c->expect + c->expect_len, c->argv[i], SPAWN_EXEC_ARG_MAX);
        c->expect_len += SPAWN_EXEC_ARG_MAX;
        c->expect[c->expect_len++] = '\n';
    }
}

static void
long_cmd_clear(struct long_cmd *c)
{
    free(c->store);
    free(c->expect);
}

static void
test_exec_long(void **state)
{
    struct long_cmd c;
    long_cmd_make(&c);
    struct exec_result r;
    struct exec_request req = {.argv = c.argv, .max_output = 4 << 20, .timeout_ms = 20000};
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time, &req, &r),
                     0);
    assert_int_equal(r.exit_code, 0);
    assert_false(r.truncated);
    assert_int_equal(r.out_len, c.expect_len);
    assert_memory_equal(r.out, c.expect, c.expect_len);
    exec_result_clear(&r);

    /* A short one still travels in the request and runs. */
    RUN(&exec_guest, &r, "sh", "-c", "echo short");
    assert_string_equal(r.out, "short\n");
    exec_result_clear(&r);

    /* One argument too many: the caller's error, with the limit said. */
    char extra[] = "x";
    c.argv[SPAWN_EXEC_MAX_ARGS] = extra;
    errtext_clear();
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time, &req, &r),
                     -EINVAL);
    assert_non_null(strstr(errtext_get(), "at most 256 arguments"));
    c.argv[SPAWN_EXEC_MAX_ARGS] = NULL;

    /* One argument a byte too long. */
    _cleanup_free_ char *big = xmalloc(SPAWN_EXEC_ARG_MAX + 2);
    memset(big, 'y', SPAWN_EXEC_ARG_MAX + 1);
    big[SPAWN_EXEC_ARG_MAX + 1] = '\0';
    char *two[] = {"sh", "-c", "echo $#", big, NULL};
    req.argv = two;
    errtext_clear();
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time, &req, &r),
                     -EINVAL);
    assert_non_null(strstr(errtext_get(), "longer than 4096 bytes"));
    /* 4096 bytes is fine. */
    big[SPAWN_EXEC_ARG_MAX] = '\0';
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time, &req, &r),
                     0);
    assert_string_equal(r.out, "0\n");
    exec_result_clear(&r);
    long_cmd_clear(&c);
}

/* Reads all of fd into a growing buffer until end of file. */
static size_t
read_all(int fd, char **buf)
{
    size_t len = 0, cap = 1 << 20;
    *buf = xmalloc(cap);
    for (;;) {
        if (len == cap)
            *buf = xrealloc(*buf, cap *= 2);
        ssize_t n = read(fd, *buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            return len;
        len += (size_t)n;
    }
}

/* A shell's command (spawner_stream, pipes) as long as the protocol allows
 * runs and gets every byte. */
static void
test_stream_long(void **state)
{
    struct long_cmd c;
    long_cmd_make(&c);
    struct shell_request req = {.argv = c.argv};
    int sock;
    assert_int_equal(spawner_stream(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                    exec_guest.res.start_time, &req, &sock),
                     0);
    struct nsexec_started st;
    int fds[3];
    size_t n_fds = 0;
    assert_int_equal(spawnd_recv(sock, &st, sizeof(st), fds, 3, &n_fds), 0);
    assert_int_equal(st.err, 0);
    assert_int_equal(n_fds, 3);
    close(fds[0]); /* stdin: end of file */
    char *out;
    size_t len = read_all(fds[1], &out);
    close(fds[1]);
    close(fds[2]);
    struct shell_status end;
    assert_int_equal(spawnd_recv(sock, &end, sizeof(end), fds, 0, &n_fds), 0);
    close(sock);
    assert_int_equal(end.err, 0);
    assert_true(WIFEXITED(end.wstatus) && WEXITSTATUS(end.wstatus) == 0);
    assert_int_equal(len, c.expect_len);
    assert_memory_equal(out, c.expect, c.expect_len);
    free(out);

    char extra[] = "x";
    c.argv[SPAWN_EXEC_MAX_ARGS] = extra;
    errtext_clear();
    assert_int_equal(spawner_stream(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                    exec_guest.res.start_time, &req, &sock),
                     -EINVAL);
    assert_non_null(strstr(errtext_get(), "at most 256 arguments"));
    long_cmd_clear(&c);
}

/* A cancelled exec (the agent's, when a move freezes its guest) returns at
 * once, -ECANCELED, and its command is killed: the helper sees the status
 * pipe's reader gone. The command would have written a mark a second later;
 * the wait returned only at its end, and the command ran on. */
static void
test_exec_cancelled(void **state)
{
    (void)state;
    char mark[128];
    snprintf(mark, sizeof(mark), "%s/tmp/vf-cancelled", rootfs);
    struct exec_result res;
    /* The mark the command writes is seen here. */
    RUN(&exec_guest, &res, "/bin/sh", "-c", "echo x >/tmp/vf-cancelled");
    assert_int_equal(res.exit_code, 0);
    exec_result_clear(&res);
    assert_int_equal(access(mark, F_OK), 0);
    assert_int_equal(unlink(mark), 0);
    int efd = eventfd(0, EFD_CLOEXEC);
    assert_true(efd >= 0);
    assert_int_equal(eventfd_write(efd, 1), 0);
    char *argv[] = {"/bin/sh", "-c", "sleep 1; echo x >/tmp/vf-cancelled", NULL};
    struct exec_request req = {
        .argv = argv, .timeout_ms = 10000, .cancellable = true, .cancel_fd = efd};
    assert_int_equal(spawner_exec(spawner, &exec_guest.cfg, exec_guest.res.pid,
                                  exec_guest.res.start_time, &req, &res),
                     -ECANCELED);
    close(efd);
    sleep(2);
    assert_int_equal(access(mark, F_OK), -1);
    /* The guest runs execs as before. */
    RUN(&exec_guest, &res, "/bin/sh", "-c", "exit 0");
    assert_int_equal(res.exit_code, 0);
    exec_result_clear(&res);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_long, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_stream_long, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_cancelled, exec_setup, exec_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
