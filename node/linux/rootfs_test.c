/* Tests for node/linux/rootfs: an overlay over a template on a real loop-mounted
 * disk. Needs root and /dev/loop-control; skipped (77) otherwise. Everything
 * lives under a temporary directory named with the pid; the teardown unmounts
 * and removes it even when an assertion fails. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/disk.h"
#include "node/linux/mountinfo.h"
#include "node/linux/rootfs.h"

struct fx {
    char dir[256];        /* the test's temporary directory */
    char tmpl[PATH_MAX];  /* the template (lower layer) */
    char image[PATH_MAX]; /* the guest's disk image */
    char disk[PATH_MAX];  /* where the disk is mounted */
    char root[PATH_MAX];  /* where the overlay is mounted */
};

static void
write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

static void
read_file(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t k = read(fd, buf, n - 1);
    assert_true(k >= 0);
    buf[k] = '\0';
    close(fd);
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/vf-rootfs-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->tmpl, sizeof(fx->tmpl), "%s/template", fx->dir);
    snprintf(fx->image, sizeof(fx->image), "%s/disk.img", fx->dir);
    snprintf(fx->disk, sizeof(fx->disk), "%s/disk", fx->dir);
    snprintf(fx->root, sizeof(fx->root), "%s/root", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    if (mountinfo_is_mountpoint(fx->root) == 1 && rootfs_umount(fx->root) < 0)
        umount2(fx->root, MNT_DETACH);
    if (mountinfo_is_mountpoint(fx->disk) == 1 && disk_umount(fx->disk) < 0)
        umount2(fx->disk, MNT_DETACH);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "teardown: could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

static void
test_overlay(void **state)
{
    struct fx *fx = *state;
    char path[PATH_MAX + 32], buf[64];

    snprintf(path, sizeof(path), "%s/etc", fx->tmpl);
    assert_int_equal(mkdir(fx->tmpl, 0755), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/etc/x", fx->tmpl);
    write_file(path, "template\n");

    assert_int_equal(disk_create(fx->image, 16ULL << 20, 0, NULL), 0);
    assert_int_equal(disk_mount(fx->image, fx->disk, NULL, 0), 0);
    assert_int_equal(rootfs_mount(fx->tmpl, fx->disk, fx->root), 0);
    assert_int_equal(rootfs_mount(fx->tmpl, fx->disk, fx->root), 0); /* idempotent */
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 1);
    struct mountinfo_entry e = {0};
    assert_int_equal(mountinfo_find(fx->root, &e), 0);
    assert_string_equal(e.fstype, "overlay");
    /* mountinfo shows only options that differ from the kernel's defaults. */
    assert_non_null(strstr(e.super_opts, "upperdir="));
    assert_non_null(strstr(e.super_opts, "redirect_dir=on"));
    mountinfo_entry_clear(&e);

    /* Reading sees the template. */
    snprintf(path, sizeof(path), "%s/etc/x", fx->root);
    read_file(path, buf, sizeof(buf));
    assert_string_equal(buf, "template\n");

    /* Writing copies up to the guest's disk and leaves the template alone. */
    write_file(path, "guest\n");
    read_file(path, buf, sizeof(buf));
    assert_string_equal(buf, "guest\n");
    snprintf(path, sizeof(path), "%s/etc/x", fx->tmpl);
    read_file(path, buf, sizeof(buf));
    assert_string_equal(buf, "template\n");
    snprintf(path, sizeof(path), "%s/upper/etc/x", fx->disk);
    read_file(path, buf, sizeof(buf));
    assert_string_equal(buf, "guest\n");

    /* A new file lands on the disk only; a deletion is a whiteout there. */
    snprintf(path, sizeof(path), "%s/new", fx->root);
    write_file(path, "n\n");
    snprintf(path, sizeof(path), "%s/upper/new", fx->disk);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/new", fx->tmpl);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/etc/x", fx->root);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/etc/x", fx->tmpl);
    assert_int_equal(access(path, F_OK), 0);

    /* Something else mounted at the target is not taken for the overlay. */
    assert_int_equal(rootfs_mount(fx->tmpl, fx->disk, fx->disk), -EBUSY);
    assert_int_equal(rootfs_umount(fx->disk), -EINVAL);

    /* The upper dir keeps the data across a remount. */
    assert_int_equal(rootfs_umount(fx->root), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);
    assert_int_equal(rootfs_mount(fx->tmpl, fx->disk, fx->root), 0);
    snprintf(path, sizeof(path), "%s/new", fx->root);
    read_file(path, buf, sizeof(buf));
    assert_string_equal(buf, "n\n");
    snprintf(path, sizeof(path), "%s/etc/x", fx->root);
    assert_int_equal(access(path, F_OK), -1);

    /* Unmounting leaves no mount behind, and the disk can then go too. */
    assert_int_equal(rootfs_umount(fx->root), 0);
    assert_int_equal(rootfs_umount(fx->root), 0); /* idempotent */
    assert_int_equal(mountinfo_is_mountpoint(fx->root), 0);
    assert_int_equal(disk_umount(fx->disk), 0);
    assert_int_equal(disk_destroy(fx->image), 0);
}

static void
test_bad_paths(void **state)
{
    struct fx *fx = *state;
    char bad[PATH_MAX + 16];
    snprintf(bad, sizeof(bad), "%s/a,b", fx->dir);
    assert_int_equal(mkdir(bad, 0755), 0);
    assert_int_equal(mkdir(fx->disk, 0755), 0);
    assert_int_equal(rootfs_mount(bad, fx->disk, fx->root), -EINVAL);
    snprintf(bad, sizeof(bad), "%s/file", fx->dir);
    write_file(bad, "");
    assert_int_equal(rootfs_mount(bad, fx->disk, fx->root), -ENOTDIR);
    /* A disk directory that is not a mounted disk is refused. */
    snprintf(bad, sizeof(bad), "%s/tmpl", fx->dir);
    assert_int_equal(mkdir(bad, 0755), 0);
    assert_int_equal(rootfs_mount(bad, fx->disk, fx->root), -ENOENT);
    snprintf(bad, sizeof(bad), "%s/upper", fx->disk);
    assert_int_equal(access(bad, F_OK), -1);
    assert_int_equal(rootfs_umount(fx->root), 0);
}

/* Of this process's mounts at path: how many, and the peer group
 * ("shared:N") of the last one, 0 if it is in none. */
static int
mounts_at(const char *path, int *group)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    int n = 0;

    *group = 0;
    while (f && fgets(line, sizeof(line), f)) {
        char at[PATH_MAX];
        if (sscanf(line, "%*d %*d %*s %*s %4095s", at) != 1 || strcmp(at, path) != 0)
            continue;
        n++;
        char *sh = strstr(line, " shared:");
        *group = sh ? atoi(sh + 8) : 0;
    }
    if (f)
        fclose(f);
    return n;
}

/* The conduit is a peer group of its own even where its directory is on a
 * shared mount (/ under systemd): a root bound into it is not copied onto
 * the parent mount (nor into the parent's peers and slaves). Runs in a
 * mount namespace of its own. */
static void
test_conduit_own_group(void **state)
{
    struct fx *fx = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char parent[PATH_MAX], stage[PATH_MAX + 8], at[PATH_MAX + 16], src[PATH_MAX + 8];
        int pg, cg, g;
        snprintf(parent, sizeof(parent), "%s/parent", fx->dir);
        snprintf(stage, sizeof(stage), "%s/stage", parent);
        snprintf(at, sizeof(at), "%s/root", stage);
        snprintf(src, sizeof(src), "%s/src", fx->dir);
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
            _exit(10);
        if (mkdir(parent, 0755) < 0 || mkdir(src, 0755) < 0 ||
            mount("tmpfs", parent, "tmpfs", 0, "size=1m") < 0 ||
            mount(NULL, parent, NULL, MS_SHARED, NULL) < 0)
            _exit(11);
        if (rootfs_conduit_open(stage) < 0)
            _exit(12);
        if (mounts_at(parent, &pg) != 1 || pg == 0 || mounts_at(stage, &cg) != 1 || cg == 0)
            _exit(13);
        if (cg == pg)
            _exit(14); /* the conduit joined its parent's group */
        if (rootfs_conduit_fill(stage, src) < 0)
            _exit(15);
        if (mounts_at(at, &g) != 1)
            _exit(16); /* the root was copied onto the parent mount too */
        if (rootfs_conduit_close(stage) < 0 || mounts_at(at, &g) != 0 || mounts_at(stage, &g) != 0)
            _exit(17);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(void)
{
    if (geteuid() != 0 || access("/dev/loop-control", F_OK) != 0) {
        fprintf(stderr, "rootfs_test: needs root and /dev/loop-control, skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_overlay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conduit_own_group, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
