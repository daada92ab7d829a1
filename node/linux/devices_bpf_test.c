/* Tests for node/linux/devices_bpf: the program attached for real to a
 * cgroup2 directory (the hybrid host's /sys/fs/cgroup/unified, or the root
 * of a pure v2 host), with a child process inside it trying devices. Skips
 * (77) without root or without a cgroup2 mount. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/devices_bpf.h"

static char cg[256];  /* the test's cgroup2 directory */
static char dir[128]; /* a scratch directory for device nodes (not nodev) */

static bool
is_cgroup2(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static int
setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "devices_bpf_test: needs root, skipping\n");
        exit(77);
    }
    const char *root = is_cgroup2("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified"
                       : is_cgroup2("/sys/fs/cgroup")       ? "/sys/fs/cgroup"
                                                            : NULL;
    if (!root) {
        fprintf(stderr, "devices_bpf_test: no cgroup2 mount, skipping\n");
        exit(77);
    }
    snprintf(cg, sizeof(cg), "%s/vfleet-devbpf-test-%d", root, (int)getpid());
    if (mkdir(cg, 0755) < 0)
        return -1;
    snprintf(dir, sizeof(dir), "/var/tmp/vf-devbpf-%d-XXXXXX", (int)getpid());
    return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
    char path[256];
    const char *nodes[] = {"null", "disk", "disk2", "mem"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, nodes[i]);
        unlink(path);
    }
    rmdir(dir);
    /* The child that was in it has exited: the cgroup is empty. */
    if (rmdir(cg) < 0)
        fprintf(stderr, "devices_bpf_test: could not remove %s: %s\n", cg, strerror(errno));
    return 0;
}

/* What the child saw, one errno per attempt (0 = it worked). */
enum attempt {
    A_OPEN_NULL,    /* the host's /dev/null */
    A_OPEN_URANDOM, /* the host's /dev/urandom */
    A_MKNOD_NULL,   /* mknod c 1:3 in the scratch dir */
    A_OPEN_MYNULL,  /* and open it */
    A_MKNOD_DISK,   /* mknod b 7:0, a loop device (a block device root may open here) */
    A_OPEN_DISK,    /* open a node of it made before joining the cgroup */
    A_OPEN_KMSG,    /* c 1:11 /dev/kmsg: a character device not on the list */
    A_COUNT
};

static int
try_open(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static void
test_policy(void **state)
{
    int fd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(devices_bpf_attach(fd), 0);
    assert_int_equal(devices_bpf_attach(fd), 0); /* idempotent */
    uint32_t all, ours;
    assert_int_equal(devices_bpf_count(fd, &all, &ours), 0);
    assert_int_equal(ours, 1);
    assert_int_equal(all, 1);
    close(fd);

    /* Nodes made outside the cgroup: a block device and a character device
     * that are not on the list, and that root here may open (the host's own
     * disk is closed to root on some test machines, loop0 and kmsg are not). */
    char disk[160], disk2[160], kmsg[160], mynull[160], procs[300];
    snprintf(disk, sizeof(disk), "%s/disk", dir);
    snprintf(disk2, sizeof(disk2), "%s/disk2", dir);
    snprintf(kmsg, sizeof(kmsg), "%s/mem", dir);
    snprintf(mynull, sizeof(mynull), "%s/null", dir);
    assert_int_equal(mknod(disk, S_IFBLK | 0600, makedev(7, 0)), 0);
    assert_int_equal(mknod(kmsg, S_IFCHR | 0600, makedev(1, 11)), 0);
    if (try_open(disk, O_RDONLY) != 0 || try_open(kmsg, O_RDONLY) != 0) {
        fprintf(stderr, "devices_bpf_test: loop0 or kmsg closed to root here, skipping\n");
        skip();
    }
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);

    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int res[A_COUNT];
        FILE *f = fopen(procs, "we");
        if (!f || fprintf(f, "%d", (int)getpid()) < 0 || fclose(f) != 0)
            _exit(2);
        res[A_OPEN_NULL] = try_open("/dev/null", O_RDWR);
        res[A_OPEN_URANDOM] = try_open("/dev/urandom", O_RDONLY);
        res[A_MKNOD_NULL] = mknod(mynull, S_IFCHR | 0666, makedev(1, 3)) < 0 ? errno : 0;
        res[A_OPEN_MYNULL] = try_open(mynull, O_RDWR);
        res[A_MKNOD_DISK] = mknod(disk2, S_IFBLK | 0600, makedev(7, 0)) < 0 ? errno : 0;
        res[A_OPEN_DISK] = try_open(disk, O_RDONLY);
        res[A_OPEN_KMSG] = try_open(kmsg, O_RDONLY);
        _exit(write(pipefd[1], res, sizeof(res)) == sizeof(res) ? 0 : 1);
    }
    close(pipefd[1]);
    int res[A_COUNT];
    assert_int_equal(read(pipefd[0], res, sizeof(res)), (ssize_t)sizeof(res));
    close(pipefd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    assert_int_equal(res[A_OPEN_NULL], 0);
    assert_int_equal(res[A_OPEN_URANDOM], 0);
    assert_int_equal(res[A_MKNOD_NULL], 0);
    assert_int_equal(res[A_OPEN_MYNULL], 0);
    assert_int_equal(res[A_MKNOD_DISK], EPERM);
    assert_int_equal(res[A_OPEN_DISK], EPERM);
    assert_int_equal(res[A_OPEN_KMSG], EPERM);
}

static void
test_not_a_cgroup(void **state)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_true(devices_bpf_attach(fd) < 0);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_not_a_cgroup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
