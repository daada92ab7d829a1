/* Guest root filesystems: overlayfs over a template; see rootfs.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "node/linux/mountinfo.h"
#include "node/linux/rootfs.h"

#define ROOTFS_MAX_STACK 16 /* overlays stacked on one target that umount removes */

/* Overlayfs splits its option string at ',' and lower layers at ':', and
 * escapes with '\\'; mountinfo separates fields with whitespace. */
static bool
rootfs_path_ok(const char *p)
{
    return p[0] == '/' && !strpbrk(p, ",:\\ \t\n");
}

/* Makes dir (mode) if missing; returns 1 when it made it, 0 when it existed. */
static int
rootfs_mkdir(const char *dir, mode_t mode)
{
    if (mkdir(dir, mode) == 0)
        return 1;
    if (errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(dir, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int
rootfs_mount(const char *template_dir, const char *disk_mount, const char *target)
{
    _cleanup_free_ char *lower = realpath(template_dir, NULL);
    _cleanup_free_ char *disk = realpath(disk_mount, NULL);
    if (!lower || !disk)
        return -errno;
    struct stat tst;
    if (stat(lower, &tst) < 0)
        return -errno;
    if (!S_ISDIR(tst.st_mode))
        return -ENOTDIR;
    if (!rootfs_path_ok(lower) || !rootfs_path_ok(disk) || !rootfs_path_ok(target))
        return -EINVAL;

    /* An upper dir on the host's filesystem would escape the disk limit. */
    int m = mountinfo_is_mountpoint(disk);
    if (m < 0)
        return m;
    if (m == 0)
        return -ENOENT;

    _cleanup_free_ char *upper = xasprintf("%s/upper", disk);
    _cleanup_free_ char *work = xasprintf("%s/work", disk);

    int r = rootfs_mkdir(target, 0755);
    if (r < 0)
        return r;
    struct mountinfo_entry e = {0};
    r = mountinfo_find(target, &e);
    if (r == 0) {
        _cleanup_free_ char *want = xasprintf("upperdir=%s,", upper);
        _cleanup_free_ char *opts = xasprintf("%s,", e.super_opts);
        bool same = strcmp(e.fstype, "overlay") == 0 && strstr(opts, want);
        mountinfo_entry_clear(&e);
        return same ? 0 : -EBUSY;
    }
    if (r != -ENOENT)
        return r;

    r = rootfs_mkdir(upper, 0755);
    if (r < 0)
        return r;
    if (r == 1) {
        /* The merged root takes the upper root's attributes, so the guest's
         * "/" looks like the template's. Only on creation: later the guest
         * owns it. */
        if (chown(upper, tst.st_uid, tst.st_gid) < 0 || chmod(upper, tst.st_mode & 07777) < 0)
            return -errno;
    }
    if ((r = rootfs_mkdir(work, 0700)) < 0)
        return r;

    _cleanup_free_ char *opts = xasprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off,"
                                          "metacopy=off,redirect_dir=on,xino=auto",
                                          lower, upper, work);
    if (mount("overlay", target, "overlay", MS_NODEV, opts) < 0)
        return -errno;
    log_debug("rootfs: mounted \"%s\" over \"%s\" at \"%s\"", upper, lower, target);
    return 0;
}

int
rootfs_umount(const char *target)
{
    for (int i = 0; i < ROOTFS_MAX_STACK; i++) {
        _cleanup_(mountinfo_entry_clear) struct mountinfo_entry e = {0};
        int r = mountinfo_find(target, &e);
        if (r == -ENOENT)
            return 0;
        if (r < 0)
            return r;
        if (strcmp(e.fstype, "overlay") != 0)
            return i == 0 ? -EINVAL : 0;
        if (umount2(target, UMOUNT_NOFOLLOW) < 0)
            return -errno;
    }
    return -EBUSY;
}

int
rootfs_conduit_close(const char *dir)
{
    /* EINVAL: dir is no mount point (any more). */
    for (int i = 0; i < ROOTFS_MAX_STACK; i++)
        if (umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
            return errno == EINVAL || errno == ENOENT ? 0 : -errno;
    return -EBUSY;
}

int
rootfs_conduit_open(const char *dir)
{
    int r = rootfs_mkdir(dir, 0700);
    if (r < 0)
        return r;
    if (r == 0 && (r = rootfs_conduit_close(dir)) < 0)
        return r;
    _cleanup_free_ char *root = xasprintf("%s/root", dir);
    if ((r = rootfs_mkdir(root, 0755)) < 0)
        return r;
    /* Shared in a peer group of its own: the spawner's clone of it joins
     * that group, and the child's copy of that clone is a slave of it
     * (seedns.c). A bind of a directory on a shared mount (/ under systemd)
     * joins that mount's group: private first, or the root bound into the
     * conduit would be copied onto the parent mount and into every
     * namespace that is its peer or slave. */
    if (mount(dir, dir, NULL, MS_BIND, NULL) < 0)
        return -errno;
    if (mount(NULL, dir, NULL, MS_PRIVATE, NULL) < 0 ||
        mount(NULL, dir, NULL, MS_SHARED, NULL) < 0) {
        r = -errno;
        (void)umount2(dir, MNT_DETACH | UMOUNT_NOFOLLOW);
        return r;
    }
    return 0;
}

int
rootfs_conduit_fill(const char *dir, const char *root)
{
    _cleanup_free_ char *at = xasprintf("%s/root", dir);
    if (mount(root, at, NULL, MS_BIND | MS_REC, NULL) < 0)
        return -errno;
    return 0;
}
