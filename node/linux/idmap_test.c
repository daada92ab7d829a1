/* Tests for node/linux/idmap: a user namespace fd with a map, an idmapped
 * read-only mount of a tree in which the tree's ids read shifted by the
 * block's base, and an overlay over it whose copy-ups land with the shifted
 * ids (util-linux 2.38 cannot make idmapped mounts, so this is where they
 * are proven). Needs root; skipped (77) otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/idmap.h"
#include "node/linux/mountinfo.h"
#include "node/linux/rootfs.h"

#define BASE 0xF1000000u

static char dir[128];
static char tree[192], lower[192], disk[192], root[192];

static void
path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static int
setup(void **state)
{
    if (geteuid() != 0) {
        fprintf(stderr, "idmap_test: needs root, skipping\n");
        exit(77);
    }
    snprintf(dir, sizeof(dir), "/var/tmp/vf-idmap-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir))
        return -1;
    path(tree, sizeof(tree), "tree");
    path(lower, sizeof(lower), "lower");
    path(disk, sizeof(disk), "disk");
    path(root, sizeof(root), "root");
    char f[256];
    if (mkdir(tree, 0755) < 0 || mkdir(lower, 0700) < 0 || mkdir(disk, 0700) < 0)
        return -1;
    snprintf(f, sizeof(f), "%s/rootfile", tree);
    FILE *fp = fopen(f, "we");
    if (!fp)
        return -1;
    fputs("root's\n", fp);
    fclose(fp);
    snprintf(f, sizeof(f), "%s/userfile", tree);
    fp = fopen(f, "we");
    if (!fp)
        return -1;
    fputs("user's\n", fp);
    fclose(fp);
    if (chown(f, 1000, 1000) < 0)
        return -1;
    /* The overlay's disk: a tmpfs, a mount point as rootfs_mount wants. */
    return mount("tmpfs", disk, "tmpfs", 0, "size=4m");
}

static int
teardown(void **state)
{
    umount2(root, MNT_DETACH);
    umount2(lower, MNT_DETACH);
    umount2(disk, MNT_DETACH);
    /* What a failed test of the later ones may leave mounted. */
    const char *more[] = {"lower2", "lower3", "shared"};
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
        char p[256];
        path(p, sizeof(p), more[i]);
        umount2(p, MNT_DETACH);
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "idmap_test: could not remove %s\n", dir);
    return 0;
}

/* fd is a user namespace, not ours; closes it. */
static void
assert_other_userns(int fd)
{
    struct stat a, b;

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &a), 0);
    assert_int_equal(stat("/proc/self/ns/user", &b), 0);
    assert_true(a.st_ino != b.st_ino);
    close(fd);
}

static void
test_userns_fd(void **state)
{
    assert_other_userns(idmap_userns_fd(BASE, IDMAP_BLOCK));
    assert_int_equal(idmap_userns_fd(UINT32_MAX - 10, IDMAP_BLOCK), -EINVAL);
}

/* As in the spawner (SA_NOCLDWAIT): the fd comes back without a wait for the
 * child's exit, and the kernel reaps the child (no zombie is left). */
static void
test_userns_fd_nocldwait(void **state)
{
    struct sigaction sa = {.sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT}, old;
    assert_int_equal(sigaction(SIGCHLD, &sa, &old), 0);
    assert_other_userns(idmap_userns_fd(BASE, IDMAP_BLOCK));
    /* Blocks until the child has gone, then: no child left to reap. */
    assert_int_equal(waitpid(-1, NULL, 0), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
    /* The default disposition: reaped before the return. */
    int fd = idmap_userns_fd(BASE, IDMAP_BLOCK);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void
test_idmapped_mount_and_overlay(void **state)
{
    struct stat st;
    char f[256];
    int fd = idmap_userns_fd(BASE, IDMAP_BLOCK);
    assert_true(fd >= 0);
    assert_int_equal(idmap_mount(tree, fd, lower), 0);
    assert_int_equal(idmap_mount(tree, fd, lower), 0); /* idempotent */
    close(fd);

    /* Ids read shifted by the base; the tree itself is unchanged. */
    snprintf(f, sizeof(f), "%s/rootfile", lower);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, BASE);
    assert_int_equal(st.st_gid, BASE);
    snprintf(f, sizeof(f), "%s/userfile", lower);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, BASE + 1000);
    snprintf(f, sizeof(f), "%s/rootfile", tree);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, 0);
    /* Read-only. */
    snprintf(f, sizeof(f), "%s/new", lower);
    assert_int_equal(open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
    assert_int_equal(errno, EROFS);

    /* An overlay on it: the merged root and a copy-up carry the shifted ids
     * onto the disk (the upper layer). */
    assert_int_equal(rootfs_mount(lower, disk, root), 0);
    assert_int_equal(stat(root, &st), 0);
    assert_int_equal(st.st_uid, BASE);
    snprintf(f, sizeof(f), "%s/userfile", root);
    assert_int_equal(chmod(f, 0600), 0); /* copy-up */
    snprintf(f, sizeof(f), "%s/upper/userfile", disk);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, BASE + 1000);
    assert_int_equal(st.st_gid, BASE + 1000);
    assert_int_equal(st.st_mode & 07777, 0600);
    snprintf(f, sizeof(f), "%s/upper", disk);
    assert_int_equal(stat(f, &st), 0);
    assert_int_equal(st.st_uid, BASE);

    assert_int_equal(rootfs_umount(root), 0);
    assert_int_equal(idmap_umount(lower), 0);
    assert_int_equal(idmap_umount(lower), 0); /* idempotent */
    assert_int_equal(mountinfo_is_mountpoint(lower), 0);
}

/* A held detached clone of the template: guests' lower layers are cloned
 * from it, not from the host's mount that holds the template (and, on a
 * node, every guest's mounts, which the kernel walks for each clone of a
 * path). Two lower layers from one clone read with the shifted ids. */
static void
test_idmapped_mount_from_tree(void **state)
{
    struct stat st;
    char f[256], lower2[192];
    int t = idmap_tree(tree);
    if (t == -EOPNOTSUPP)
        skip(); /* a kernel before 6.15: the backend clones the path */
    assert_true(t >= 0);

    /* The clone is its own mount, not the one the path is on. */
    struct statx a, b;
    assert_int_equal(statx(t, "", AT_EMPTY_PATH, STATX_MNT_ID, &a), 0);
    assert_int_equal(statx(AT_FDCWD, tree, 0, STATX_MNT_ID, &b), 0);
    assert_true(a.stx_mask & STATX_MNT_ID);
    assert_true(a.stx_mnt_id != b.stx_mnt_id);

    path(lower2, sizeof(lower2), "lower2");
    assert_int_equal(mkdir(lower2, 0700), 0);
    int fd = idmap_userns_fd(BASE, IDMAP_BLOCK);
    assert_true(fd >= 0);
    assert_int_equal(idmap_mount_tree(t, tree, fd, lower), 0);
    assert_int_equal(idmap_mount_tree(t, tree, fd, lower2), 0);
    close(fd);
    close(t);
    const char *targets[] = {lower, lower2};
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof(f), "%s/rootfile", targets[i]);
        assert_int_equal(stat(f, &st), 0);
        assert_int_equal(st.st_uid, BASE);
        snprintf(f, sizeof(f), "%s/userfile", targets[i]);
        assert_int_equal(stat(f, &st), 0);
        assert_int_equal(st.st_uid, BASE + 1000);
        snprintf(f, sizeof(f), "%s/new", targets[i]);
        assert_int_equal(open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), -1);
        assert_int_equal(errno, EROFS);
        assert_int_equal(idmap_umount(targets[i]), 0);
        assert_int_equal(mountinfo_is_mountpoint(targets[i]), 0);
    }
}

/* The optional fields of the mountinfo line of the mount at target (field
 * 5 up to " - "), "" when none; false when target is not found. */
static bool
mount_tags(const char *target, char *tags, size_t n)
{
    char line[4096], mp[512];
    bool found = false;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        int end = 0;
        if (sscanf(line, "%*d %*d %*s %*s %511s %*s%n", mp, &end) != 1 || strcmp(mp, target))
            continue;
        const char *dash = strstr(line + end, " - ");
        size_t len = dash ? (size_t)(dash - (line + end)) : 0;
        snprintf(tags, n, "%.*s", (int)len, line + end);
        found = true; /* the last one: the topmost mount */
    }
    fclose(f);
    return found;
}

/* A template on a shared mount (systemd makes / shared): a guest's lower
 * layer is a clone of that mount, and a clone of a shared mount joins its
 * peer group, so every mount made on the host under the templates' mount
 * was checked against every guest's lower layer (propagate_mnt: is_subdir
 * for each peer). The lower layer is private, from the path or from a held
 * tree. */
static void
test_idmapped_mount_private(void **state)
{
    char shared[192], tpl[256], lower3[192], tags[512];
    path(shared, sizeof(shared), "shared");
    snprintf(tpl, sizeof(tpl), "%s/tpl", shared);
    path(lower3, sizeof(lower3), "lower3");
    assert_int_equal(mkdir(shared, 0755), 0);
    assert_int_equal(mount("tmpfs", shared, "tmpfs", 0, "size=1m"), 0);
    assert_int_equal(mount(NULL, shared, NULL, MS_SHARED, NULL), 0);
    assert_int_equal(mkdir(tpl, 0755), 0);
    assert_true(mount_tags(shared, tags, sizeof(tags)));
    assert_non_null(strstr(tags, "shared:"));

    int fd = idmap_userns_fd(BASE, IDMAP_BLOCK);
    assert_true(fd >= 0);
    assert_int_equal(idmap_mount(tpl, fd, lower), 0);
    int t = idmap_tree(tpl);
    assert_true(t >= 0 || t == -EOPNOTSUPP);
    if (t == -EOPNOTSUPP) /* a kernel before 6.15; deploy/test lists the line */
        print_message("[  SKIPPED ] test_idmapped_mount_private: its held-tree half\n");
    if (t >= 0)
        assert_int_equal(mkdir(lower3, 0700), 0);
    if (t >= 0)
        assert_int_equal(idmap_mount_tree(t, tpl, fd, lower3), 0);
    close(fd);

    assert_true(mount_tags(lower, tags, sizeof(tags)));
    bool lower_shared = strstr(tags, "shared:") != NULL;
    bool lower3_shared = false;
    if (t >= 0) {
        assert_true(mount_tags(lower3, tags, sizeof(tags)));
        lower3_shared = strstr(tags, "shared:") != NULL;
        close(t);
        assert_int_equal(idmap_umount(lower3), 0);
    }
    assert_int_equal(idmap_umount(lower), 0);
    assert_int_equal(umount2(shared, MNT_DETACH), 0);
    assert_false(lower_shared);
    assert_false(lower3_shared);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_userns_fd),
        cmocka_unit_test(test_userns_fd_nocldwait),
        cmocka_unit_test(test_idmapped_mount_and_overlay),
        cmocka_unit_test(test_idmapped_mount_from_tree),
        cmocka_unit_test(test_idmapped_mount_private),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
