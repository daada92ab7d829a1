/* The linux backend's part in moving a guest (node/linux/migrate.h): the
 * image's paths, freezing, packing and unpacking the overlay's upper
 * directory, and shifting its files into the target's uid block. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "node/linux/cgroup.h"
#include "node/linux/disk.h"
#include "node/linux/idmap.h"
#include "node/linux/idshift.h"
#include "node/linux/linux_backend_int.h"
#include "node/linux/migrate.h"
#include "node/linux/proc.h"
#include "node/linux/rootfs.h"

int
lx_migrate_paths(backend_t *b, const struct guest_spec *s, char *image, char *incoming, size_t n)
{
    struct guest_paths p;

    paths_of(lb(b), s, &p);
    if (snprintf(image, n, "%s", p.image) >= (int)n ||
        snprintf(incoming, n, "%s.incoming", p.image) >= (int)n)
        return -ENAMETOOLONG;
    return 0;
}

static void
migrate_cgroups_of(struct linux_backend *l, struct migrate_cgroups *cg)
{
    cg->root = l->cfg.cgroup_root[0] ? l->cfg.cgroup_root : "/sys/fs/cgroup";
    cg->prefix = l->cfg.cgroup_prefix[0] ? l->cfg.cgroup_prefix : "vfleet";
    cg->v2 = cgroup_mgr_mode(l->cgroups) == CGROUP_V2;
}

/* data/<id>/frozen.move: the guest's cgroup is (being) frozen by a move,
 * not by a kill. The file outlives an agent killed meanwhile, so that the
 * restarted agent keeps the move's freeze (lx_thaw_stray). */
static char *
move_mark(const struct guest_paths *p)
{
    return xasprintf("%s/frozen.move", p->dir);
}

int
lx_migrate_freeze(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
                  bool freeze)
{
    struct linux_backend *l = lb(b);
    struct migrate_cgroups cg;
    struct guest_paths p;

    migrate_cgroups_of(l, &cg);
    paths_of(l, s, &p);
    bool running = rt->pid && proc_is_same(rt->pid, rt->start_time) > 0;
    _cleanup_free_ char *mark = move_mark(&p);
    /* The mark before the freeze, gone after the thaw: a freeze is never
     * without it. No fsync: a reboot thaws everything. */
    if (freeze && running) {
        int fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return errtext_fail(-errno, "cannot mark the guest frozen for its move: %s",
                                strerror(errno));
        close(fd);
    }
    int r = migrate_freeze(&cg, s->id, p.disk, running, freeze);
    if ((freeze && running && r < 0) || (!freeze && r >= 0))
        (void)unlink(mark);
    return r;
}

int
lx_migrate_frozen(backend_t *b, const struct guest_spec *s)
{
    struct migrate_cgroups cg;

    migrate_cgroups_of(lb(b), &cg);
    return migrate_frozen(&cg, s->id);
}

/* backend.h: a guest frozen with the move's mark is the move's; a mark on a
 * guest not frozen (an agent killed between a move's thaw and the mark's
 * removal, or before its freeze took) goes, and any other freeze is a
 * kill's that did not end. */
int
lx_thaw_stray(backend_t *b, const struct guest_spec *s)
{
    struct linux_backend *l = lb(b);
    struct migrate_cgroups cg;
    struct guest_paths p;

    migrate_cgroups_of(l, &cg);
    paths_of(l, s, &p);
    _cleanup_free_ char *mark = move_mark(&p);
    if (access(mark, F_OK) == 0) {
        if (migrate_frozen(&cg, s->id) == 1)
            return BACKEND_MOVE_FROZEN;
        (void)unlink(mark);
    }
    return cgroup_thaw(l->cgroups, s->id);
}

int
lx_migrate_criu(backend_t *b, char *why, size_t n)
{
    (void)b;
    return migrate_criu_check(why, n);
}

/* The guest's disk mounted (a stopped guest's after a reboot is not). */
static int
disk_ready(struct linux_backend *l, const struct guest_spec *s, struct guest_paths *p)
{
    paths_of(l, s, p);
    int r = disk_mount(p->image, p->disk, NULL, 0);
    return r < 0 ? errtext_fail(r, "cannot mount the guest's disk") : 0;
}

int
lx_migrate_pack(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
                const char *manifest, int out_fd)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    char err[ERRTEXT_MAX] = "";

    int r = disk_ready(l, s, &p);
    if (r < 0)
        return r;
    /* What it changed over its template: the overlay's upper directory. */
    _cleanup_free_ char *upper = xasprintf("%s/upper", p.disk);
    r = lx_migrate_freeze(b, s, rt, true);
    if (r < 0)
        return r;
    r = archive_pack(manifest, upper, NULL, out_fd, NULL, err, sizeof(err));
    int t = lx_migrate_freeze(b, s, rt, false);
    if (r < 0)
        return errtext_fail(r, "%s", err);
    return t;
}

int
lx_migrate_unpack(backend_t *b, const struct guest_spec *s, int in_fd)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    char err[ERRTEXT_MAX] = "";

    int r = disk_ready(l, s, &p);
    /* Files change under an overlay only while it is not mounted. */
    if (r >= 0 && (r = lx_conduit_sweep(&p)) < 0)
        return r;
    if (r >= 0 && (r = rootfs_umount(p.root)) < 0)
        return errtext_fail(r, "cannot unmount the guest's root to fill it");
    _cleanup_free_ char *upper = xasprintf("%s/upper", p.disk);
    if (r >= 0 && (r = archive_unpack(in_fd, upper, err, sizeof(err))) < 0)
        return errtext_fail(r, "%s", err);
    /* The root names the block the files came with (lx_migrate_ids shifts
     * from it): the source's, read from the files themselves. */
    struct stat st;
    uint32_t base;
    if (r >= 0 && idshift_base_of(upper, IDMAP_BLOCK, &base) == 0 && stat(upper, &st) == 0 &&
        st.st_uid != base && (chown(upper, base, base) < 0 || chmod(upper, st.st_mode & 07777) < 0))
        return errtext_fail(-errno, "cannot mark the unpacked files' uid block");
    return r;
}

int
lx_migrate_ids(backend_t *b, const struct guest_spec *s, const struct guest_ids *ids)
{
    struct guest_paths p;

    int r = disk_ready(lb(b), s, &p);
    /* Files change under an overlay only while it is not mounted. */
    if (r >= 0 && (r = lx_conduit_sweep(&p)) < 0)
        return r;
    if (r >= 0 && (r = rootfs_umount(p.root)) < 0)
        return errtext_fail(r, "cannot unmount the guest's root to give its files its ids");
    _cleanup_free_ char *upper = xasprintf("%s/upper", p.disk);
    r = idshift_tree(upper, ids ? ids->uid_base : 0, IDMAP_BLOCK);
    if (r < 0)
        return errtext_fail(r, "cannot give the guest's files the ids of its block here: %s",
                            strerror(-r));
    if (r > 0)
        log_info("guest=%s files shifted to host ids %u..%u", s->name, ids ? ids->uid_base : 0,
                 (ids ? ids->uid_base : 0) + IDMAP_BLOCK - 1);
    return 0;
}
