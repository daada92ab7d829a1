/* The guest's disk, its idmapped template and its overlay root: made when
 * they are not there, checked against the guest's uid block when they are
 * (linux_backend.c's create and starts, linux_backend_migrate.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "node/linux/disk.h"
#include "node/linux/idmap.h"
#include "node/linux/idshift.h"
#include "node/linux/linux_backend_int.h"
#include "node/linux/mountinfo.h"
#include "node/linux/rootfs.h"
#include "node/linux/spawn.h"
#include "node/linux/tmpl_tree.h"

/* -ENOSPC when the node's filesystem has less free space than its reserve:
 * no new image and no growth then. */
int
lx_check_reserve(struct linux_backend *l, const char *what)
{
    struct statvfs sv;

    if (!l->cfg.disk_reserve)
        return 0;
    if (statvfs(l->cfg.state_dir, &sv) < 0)
        return -errno;
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (avail >= l->cfg.disk_reserve)
        return 0;
    return errtext_fail(-ENOSPC,
                        "%s refused: the node's filesystem has %llu MiB free, below its reserve "
                        "of %llu MiB",
                        what, (unsigned long long)(avail >> 20),
                        (unsigned long long)(l->cfg.disk_reserve >> 20));
}

/* Whether the idmapped template mounted at p->lower maps it to ids: its
 * root's owner and group are the template root's moved into the block (one
 * stat each; the kernel offers no cheaper look at a mount's idmap before
 * statmount's in Linux 6.15). A template root owned outside 0..65535 reads
 * as the overflow id in every block: it fits, as nothing can tell. 1 when
 * it fits, 0 when not, or -errno. */
static int
lower_fits(const struct guest_ids *ids, const struct guest_paths *p)
{
    struct stat t, m;

    if (stat(p->tmpl, &t) < 0 || stat(p->lower, &m) < 0)
        return -errno;
    if (t.st_uid >= IDMAP_BLOCK || t.st_gid >= IDMAP_BLOCK)
        return 1;
    return m.st_uid == ids->uid_base + t.st_uid && m.st_gid == ids->uid_base + t.st_gid;
}

/* Takes down a lower layer mounted for another block, and the overlay over
 * it. Only a create sent again after an agent died in it (no record kept
 * the block it had picked, and the one it picks now may differ) finds one:
 * a recorded guest's lower layer was mounted for its recorded block. */
static int
lower_remove_stale(struct linux_backend *l, const struct guest_ids *ids,
                   const struct guest_paths *p)
{
    struct stat m;
    uint32_t was = stat(p->lower, &m) == 0 ? (uint32_t)m.st_uid : 0;
    int r = rootfs_umount(p->root);
    if (r < 0)
        return errtext_fail(r, "cannot unmount the guest's root made for another uid block");
    r = idmap_umount(p->lower);
    if (r < 0)
        return errtext_fail(r, "cannot unmount the template mounted for another uid block");
    tmpl_trees_put(l->trees, p->lower);
    log_info("guest dir \"%s\": its template was mounted for host uid %u as root, not %u: "
             "mounting it again",
             p->dir, was, ids->uid_base);
    return 0;
}

/* The overlay's lower layer: the template itself for a guest without a uid
 * block, else the template idmapped to the block at data/<id>/lower (made
 * here when it is not mounted yet, or mounted for another block). The
 * idmap's user namespace is the guest's own when child (its init, cloned
 * and released: its maps are written) is > 0, a cold start's (the same
 * map, and no round trip to the spawner, which made one for this alone);
 * else the spawner makes one. */
int
lx_mount_lower(struct linux_backend *l, const struct guest_ids *ids, const struct guest_paths *p,
               pid_t child, const char **lower)
{
    if (!ids || !ids->uid_base) {
        *lower = p->tmpl;
        return 0;
    }
    *lower = p->lower;
    int r = mkdir(p->lower, 0700) < 0 && errno != EEXIST ? -errno : 0;
    if (r < 0)
        return r;
    r = mountinfo_is_mountpoint(p->lower);
    if (r > 0) {
        r = lower_fits(ids, p);
        if (r > 0) {
            /* mounted before this agent started, perhaps: it keeps the clone */
            tmpl_trees_use(l->trees, p->tmpl, p->lower);
            return 0;
        }
        if (r == 0)
            r = lower_remove_stale(l, ids, p);
    }
    if (r < 0)
        return r;
    _cleanup_close_ int userns = -EBADF;
    if (child > 0) {
        char ns[64];
        snprintf(ns, sizeof(ns), "/proc/%d/ns/user", (int)child);
        userns = open(ns, O_RDONLY | O_CLOEXEC);
        if (userns < 0)
            userns = -errno;
    } else {
        userns = spawner_userns(l->spawner, ids->uid_base, ids->uid_count);
    }
    if (userns < 0)
        return errtext_fail(userns, "cannot make the guest's user namespace");
    _cleanup_close_ int tree = tmpl_trees_get(l->trees, p->tmpl, p->lower);
    r = idmap_mount_tree(tree, p->tmpl, userns, p->lower);
    if (r == -EINVAL)
        return errtext_fail(-EOPNOTSUPP,
                            "the filesystem of template \"%s\" cannot be idmapped: move the "
                            "templates to ext4, xfs, btrfs or tmpfs",
                            p->tmpl);
    if (r < 0)
        return errtext_fail(r, "cannot mount the template idmapped to the guest's uids");
    return 0;
}

/* The guest's root: lower layer, then the overlay on its disk. */
int
lx_mount_root(struct linux_backend *l, const struct guest_ids *ids, const struct guest_paths *p,
              pid_t child)
{
    const char *lower;
    int r = lx_mount_lower(l, ids, p, child, &lower);
    return r < 0 ? r : lx_mount_overlay(lower, p);
}

/* The overlay of the guest's root, with its error's text. */
int
lx_mount_overlay(const char *lower, const struct guest_paths *p)
{
    int r = rootfs_mount(lower, p->disk, p->root);
    if (r == -EBUSY)
        return errtext_fail(r,
                            "cannot mount the guest's root at \"%s\": something else is mounted "
                            "there",
                            p->root);
    return r < 0 ? errtext_fail(r, "cannot mount the guest's root at \"%s\"", p->root) : 0;
}

/* The guest's disk image mounted at its place, with its error's text. A
 * caller that asks for the loop device (the cold start, which mounts the
 * overlay next) has the overlay's directories read ahead beside the mount. */
int
lx_mount_disk(const struct guest_paths *p, bool made, char *loopdev, size_t n)
{
    static const char *const overlay_dirs[] = {"upper", "work", "work/work"};
    int r = made      ? disk_mount_new(p->image, p->disk)
            : loopdev ? disk_mount_ahead(p->image, p->disk, loopdev, n, overlay_dirs,
                                         ARRAY_SIZE(overlay_dirs))
                      : disk_mount(p->image, p->disk, NULL, 0);
    if (r == -EBUSY)
        return errtext_fail(r,
                            "cannot mount the guest's disk \"%s\": it is attached to a loop "
                            "device not mounted at \"%s\", or in use",
                            p->image, p->disk);
    return r < 0 ? errtext_fail(r, "cannot mount the guest's disk \"%s\"", p->image) : 0;
}

/* The guest's directory, after checking its template is here. */
int
lx_guest_dir_prepare(const struct guest_spec *s, const struct guest_paths *p)
{
    struct stat st;

    if (stat(p->tmpl, &st) < 0 || !S_ISDIR(st.st_mode))
        return errtext_fail(-ENOENT, "template \"%s\" is not on this node", s->template_name);
    return fs_mkdir_p(p->dir, 0700);
}

/* The guest's disk (made when there is no image), mounted unless it is. */
int
lx_guest_disk(struct linux_backend *l, const struct guest_spec *s, const struct guest_paths *p)
{
    struct stat st;
    int r;

    /* An existing image is the guest's disk, whatever size the spec now asks
     * for: set_limits resizes it, create never replaces it. */
    struct disk_info di;
    bool made = false;
    /* Never what a symlink points at, nor a FIFO or device in its place. */
    bool gone = lstat(p->image, &st) < 0;
    if (!gone && !S_ISREG(st.st_mode))
        return errtext_fail(-EINVAL, "the guest's disk image \"%s\" is not a regular file",
                            p->image);
    if (gone || disk_info(p->image, &di) == -EINVAL) {
        r = lx_check_reserve(l, "a new disk");
        if (r < 0)
            return r;
        char pristine[sizeof(l->cfg.state_dir) + 16];
        snprintf(pristine, sizeof(pristine), "%s/pristine", l->cfg.state_dir);
        r = disk_create(p->image, s->limits.disk ? s->limits.disk : LINUX_DEFAULT_DISK,
                        s->limits.inodes, pristine);
        if (r < 0)
            return errtext_fail(r, "cannot create the disk image: size must be 16M..256T and "
                                   "inodes at most one per KiB");
        made = true;
    }
    return lx_mount_disk(p, made, NULL, 0);
}

/* The guest's files in its block: the upper directory's owner (its root,
 * chowned at its making to the template's root as the lower layer shows it:
 * rootfs.c) is in ids' block. A create sent again after an agent died in it
 * may have picked another block than the first attempt, which made the
 * upper directory, and whose guest may have run and written files: they
 * are shifted into this block as a moved guest's are (idshift.h), with the
 * root unmounted. A guest's root can chown only within its block, so the
 * owner names the block its files came with; a privileged guest's could be
 * anything, and its files are host ids whatever happens: not looked at. */
static int
upper_fit_as(const struct guest_spec *s, const struct guest_ids *ids, const struct guest_paths *p,
             bool cold)
{
    char upper[sizeof(p->disk) + 8];
    struct stat st;

    if (!ids || !ids->uid_base)
        return 0;
    snprintf(upper, sizeof(upper), "%s/upper", p->disk);
    if (stat(upper, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if ((uint32_t)st.st_uid - ids->uid_base < IDMAP_BLOCK)
        return 0;
    int r = cold ? 0 : lx_conduit_sweep(p);
    if (r < 0)
        return r;
    r = cold ? 0 : rootfs_umount(p->root);
    if (r < 0)
        return errtext_fail(r, "cannot unmount the guest's root to give its files its ids");
    r = idshift_tree(upper, ids->uid_base, IDMAP_BLOCK);
    if (r < 0)
        return errtext_fail(r, "cannot give the guest's files the ids of its block: %s",
                            strerror(-r));
    log_info("guest=%s files made for host uid %u as root shifted to host ids %u..%u", s->name,
             (unsigned)st.st_uid, ids->uid_base, ids->uid_base + IDMAP_BLOCK - 1);
    return 0;
}

static int
upper_fit(const struct guest_spec *s, const struct guest_ids *ids, const struct guest_paths *p)
{
    return upper_fit_as(s, ids, p, false);
}

/* linux_backend_int.h */
int
lx_upper_fit_cold(const struct guest_spec *s, const struct guest_ids *ids,
                  const struct guest_paths *p)
{
    return upper_fit_as(s, ids, p, true);
}

/* The guest's disk and root, mounted unless they are, its files and its
 * idmapped template in its block. */
int
lx_guest_mounts(struct linux_backend *l, const struct guest_spec *s, const struct guest_ids *ids,
                const struct guest_paths *p)
{
    int r = lx_guest_disk(l, s, p);
    if (r >= 0)
        r = upper_fit(s, ids, p);
    return r < 0 ? r : lx_mount_root(l, ids, p, 0);
}
