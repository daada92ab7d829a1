/* Tests for node/linux/rebuild: the wipe empties the guest's upper and work
 * directories whatever the guest made there, a tree deeper than PATH_MAX
 * and a symlink to a host file included (removed, never followed); a
 * running guest is refused; the stamp says the rebuild happened. */
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
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/rebuild.h"

static char dir[64];
static char tmpl[128], disk[128], root[128], upper[160], work[160], host[128];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/rebuild-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(tmpl, sizeof(tmpl), "%s/tmpl", dir);
    snprintf(disk, sizeof(disk), "%s/disk", dir);
    snprintf(root, sizeof(root), "%s/root", dir);
    snprintf(upper, sizeof(upper), "%s/upper", disk);
    snprintf(work, sizeof(work), "%s/work", disk);
    snprintf(host, sizeof(host), "%s/host-file", dir);
    assert_int_equal(mkdir(tmpl, 0755), 0);
    assert_int_equal(mkdir(disk, 0755), 0);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(mkdir(upper, 0755), 0);
    assert_int_equal(mkdir(work, 0755), 0);
    int fd = open(host, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* 40 directories of 200-byte names below upper (8 KB of path), files
 * beside each; nftw handed unlink the whole path: ENAMETOOLONG, and a
 * guest that made such a tree could never be rebuilt. */
static void
test_wipe_deep(void **state)
{
    (void)state;
    struct rebuild_paths p = {.dir = dir, .disk = disk, .root = root, .tmpl = tmpl};
    char name[201], f[16];

    memset(name, 'd', 200);
    name[200] = '\0';
    int fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (int i = 0; i < 40; i++) {
        for (int k = 0; k < 4; k++) {
            snprintf(f, sizeof(f), "f%d", k);
            int g = openat(fd, f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            assert_true(g >= 0);
            close(g);
        }
        assert_int_equal(mkdirat(fd, name, 0755), 0);
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(next >= 0);
        close(fd);
        fd = next;
    }
    assert_int_equal(symlinkat(host, fd, "to-host"), 0);
    close(fd);
    char link[200];
    snprintf(link, sizeof(link), "%s/top-link", upper);
    assert_int_equal(symlink(dir, link), 0);

    assert_int_equal(rebuild_wipe(&p, true), -EBUSY);
    assert_int_equal(access(upper, F_OK), 0);
    assert_int_equal(rebuild_wipe(&p, false), 0);
    assert_int_equal(access(upper, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(access(work, F_OK), -1);
    /* What the links named is still there. */
    assert_int_equal(access(host, F_OK), 0);
    assert_int_equal(access(tmpl, F_OK), 0);
    /* Nothing left to wipe is no error. */
    assert_int_equal(rebuild_wipe(&p, false), 0);

    assert_true(rebuild_needed(&p, 1));
    assert_int_equal(rebuild_done(&p, 1), 0);
    assert_false(rebuild_needed(&p, 1));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wipe_deep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
