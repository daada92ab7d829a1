/* cgroup_files: held descriptors read afresh, dropped on failure and on
 * forget, and the budget. On regular files in a scratch directory (pread at
 * offset 0 of a cgroup file makes the kernel produce it again; of a regular
 * file, it reads what was last written, which shows the same thing). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/linux/cgroup_files.h"

static char dir[] = "/tmp/vf-cgfiles-XXXXXX";

static void
put(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_held_and_fresh(void **state)
{
    cgroup_files_t *f = cgroup_files_new(2);
    char path[128], buf[64];

    (void)state;
    put("a", "12\n");
    snprintf(path, sizeof(path), "%s/a", dir);
    assert_int_equal(cgroup_files_pread(f, "g1", 0, buf, sizeof(buf)), -EBADF);
    assert_int_equal(cgroup_files_open(f, "g1", 0, path, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "12\n");
    assert_int_equal(cgroup_files_count(f), 1);
    /* Read again through the held descriptor: what the file holds now. */
    put("a", "345\n");
    assert_int_equal(cgroup_files_pread(f, "g1", 0, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "345\n");
    /* Another guest, another slot; the table stays sorted. */
    assert_int_equal(cgroup_files_open(f, "g0", 1, path, buf, sizeof(buf)), 4);
    assert_int_equal(cgroup_files_pread(f, "g0", 0, buf, sizeof(buf)), -EBADF);
    assert_int_equal(cgroup_files_pread(f, "g0", 1, buf, sizeof(buf)), 4);
    assert_int_equal(cgroup_files_pread(f, "g1", 0, buf, sizeof(buf)), 4);
    assert_int_equal(cgroup_files_count(f), 2);
    /* Too big for the buffer: -EFBIG, and it stays held. */
    assert_int_equal(cgroup_files_pread(f, "g1", 0, buf, 3), -EFBIG);
    assert_int_equal(cgroup_files_count(f), 2);
    cgroup_files_forget(f, "g1");
    assert_int_equal(cgroup_files_pread(f, "g1", 0, buf, sizeof(buf)), -EBADF);
    assert_int_equal(cgroup_files_count(f), 1);
    cgroup_files_forget(f, "nobody");
    assert_int_equal(cgroup_files_count(f), 1);
    /* Out of range, and a path that is not there. */
    assert_int_equal(cgroup_files_pread(f, "g0", 2, buf, sizeof(buf)), -EINVAL);
    snprintf(path, sizeof(path), "%s/none", dir);
    assert_int_equal(cgroup_files_open(f, "g2", 0, path, buf, sizeof(buf)), -ENOENT);
    assert_int_equal(cgroup_files_count(f), 1);
    cgroup_files_free(&f);
    assert_null(f);
    unlink(path);
}

/* What cannot be read is not held. */
static void
test_unreadable_not_held(void **state)
{
    cgroup_files_t *f = cgroup_files_new(1);
    char path[128], buf[64];

    (void)state;
    /* A directory opens read-only, and reading it fails with EISDIR. */
    snprintf(path, sizeof(path), "%s", dir);
    assert_int_equal(cgroup_files_open(f, "g", 0, path, buf, sizeof(buf)), -EISDIR);
    assert_int_equal(cgroup_files_count(f), 0);
    put("b", "1\n");
    snprintf(path, sizeof(path), "%s/b", dir);
    assert_int_equal(cgroup_files_open(f, "g", 0, path, buf, sizeof(buf)), 2);
    assert_int_equal(cgroup_files_count(f), 1);
    cgroup_files_free(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_and_fresh),
        cmocka_unit_test(test_unreadable_not_held),
    };
    if (!mkdtemp(dir))
        return 1;
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/a", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/b", dir);
    unlink(path);
    rmdir(dir);
    return r;
}
