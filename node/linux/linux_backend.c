#include "node/linux/linux_backend.h"

#include <dirent.h>
#include <errno.h>
#include <sys/statfs.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/linux/cgroup.h"
#include "node/linux/announce.h"
#include "node/linux/console.h"
#include "node/linux/disk.h"
#include "node/linux/guest_dir.h"
#include "node/linux/idmap.h"
#include "node/linux/mountinfo.h"
#include "node/linux/net.h"
#include "node/linux/proc.h"
#include "node/linux/provision.h"
#include "node/linux/rebuild.h"
#include "node/linux/rootfs.h"
#include "node/linux/shell.h"
#include "node/linux/tmpl_tree.h"
#include "node/linux/spawn.h"
#include "node/linux/template_sum.h"
#include "node/linux/sysfilter.h"
#include "node/linux/linux_backend_int.h"

/* Bytes the guests' disk images occupy on the host (allocated blocks). */
static uint64_t
images_allocated(struct linux_backend *l)
{
    _cleanup_free_ char *data = xasprintf("%s/data", l->cfg.state_dir);
    DIR *d = opendir(data);
    uint64_t sum = 0;
    struct dirent *e;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        struct stat st;
        char path[600];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/disk.img", data, e->d_name);
        if (stat(path, &st) == 0)
            sum += (uint64_t)st.st_blocks * 512;
    }
    closedir(d);
    return sum;
}

/* The templates under dir: its subdirectories whose names are names. */
static void
probe_templates(const char *dir, const char *state_dir, struct node_facts *out)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) && out->n_templates < PROTO_MAX_TEMPLATES) {
        struct stat st;
        if (!name_is_valid(e->d_name) || fstatat(dirfd(d), e->d_name, &st, 0) < 0 ||
            !S_ISDIR(st.st_mode))
            continue;
        uint32_t i = out->n_templates++;
        char path[600], cache[600];
        strscpy(out->templates[i], e->d_name, sizeof(out->templates[0]));
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(cache, sizeof(cache), "%s/template-sums", state_dir);
        if (template_sum_cached(path, e->d_name, cache, out->template_sum[i],
                                &out->template_size[i]) < 0)
            log_warning("template \"%s\": cannot compute its checksum, ignoring", e->d_name);
    }
    closedir(d);
}

static int
lx_probe(backend_t *b, struct node_facts *out)
{
    struct linux_backend *l = lb(b);
    struct utsname u;
    struct sysinfo si;
    struct statvfs sv;

    memset(out, 0, sizeof(*out));
    if (uname(&u) == 0)
        strscpy(out->kernel, u.release, sizeof(out->kernel));
    enum cgroup_mode mode;
    if (cgroup_detect(l->cfg.cgroup_root[0] ? l->cfg.cgroup_root : "/sys/fs/cgroup", &mode) == 0)
        strscpy(out->cgroup, cgroup_mode_to_string(mode), sizeof(out->cgroup));
    strscpy(out->backend, "linux", sizeof(out->backend));
    out->cpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN) * 1000;
    if (sysinfo(&si) == 0)
        out->memory = (uint64_t)si.totalram * si.mem_unit;
    if (statvfs(l->cfg.state_dir, &sv) == 0) {
        /* What guest disks can fill: free space, plus what their sparse
         * images already hold, less the reserve; not the filesystem's size. */
        uint64_t have = (uint64_t)sv.f_bavail * sv.f_frsize + images_allocated(l);
        out->disk = have > l->cfg.disk_reserve ? have - l->cfg.disk_reserve : 0;
    }
    out->max_guests = l->cfg.max_guests ? l->cfg.max_guests : 1000;
    probe_templates(l->cfg.templates, l->cfg.state_dir, out);
    return 0;
}

static int
lx_create(backend_t *b, const struct guest_spec *s, const struct guest_ids *ids)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;

    paths_of(l, s, &p);
    int r = lx_guest_dir_prepare(s, &p);
    if (r < 0)
        return r;
    r = lx_guest_mounts(l, s, ids, &p);
    if (r < 0)
        return r;
    return cgroup_create(l->cgroups, s->id);
}

#define FUSE_SUPER_MAGIC 0x65735546 /* linux/magic.h names it only in the kernel's tree */

static void
vservers_bind_of(struct linux_backend *l, struct spawn_config *c)
{
    struct statfs sf;

    if (l->cfg.vservers[0] && statfs(l->cfg.vservers, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC)
        strscpy(c->vservers, l->cfg.vservers, sizeof(c->vservers));
}

/* The LXCFS mount to take /proc files from, or NULL (warned) when it is not there. */
static const char *
lxcfs_dir(const struct linux_backend *l, const struct guest_spec *s)
{
    const char *dir = l->cfg.lxcfs[0] ? l->cfg.lxcfs : LINUX_DEFAULT_LXCFS;
    struct stat st;
    char probe[300];

    /* One stat (FUSE caches it for a second; statfs would ask LXCFS every
     * time): a dead LXCFS answers ENOTCONN. */
    snprintf(probe, sizeof(probe), "%s/proc/meminfo", dir);
    if (stat(probe, &st) == 0 && S_ISREG(st.st_mode))
        return dir;
    log_warning("guest=%s LXCFS is not mounted at \"%s\": its /proc shows the host's memory, "
                "CPUs and uptime, ignoring",
                s->name, dir);
    return NULL;
}

/* linux_backend_int.h */
int
lx_spawn_config_of(struct linux_backend *l, const struct guest_spec *s, const struct guest_ids *ids,
                   const struct guest_paths *p, struct spawn_config *c)
{
    _cleanup_(cgroup_strv_free) char **procs = NULL;
    int r;

    memset(c, 0, sizeof(*c));
    strscpy(c->rootfs, p->root, sizeof(c->rootfs));
    strscpy(c->hostname, s->name, sizeof(c->hostname));
    strscpy(c->domainname, s->domainname, sizeof(c->domainname));
    strscpy(c->init, s->init[0] ? s->init : "/sbin/init", sizeof(c->init));
    c->caps = spec_effective_caps(s);
    /* Without a device policy (cgroup v2 without a BPF program) a guest's root
     * could mknod a host disk and open it: take CAP_MKNOD away instead. */
    if (!cgroup_has_device_policy(l->cgroups))
        c->caps &= ~(1ULL << CAP_MKNOD);
    c->nofile = s->limits.nofile;
    vservers_bind_of(l, c);
    c->filter = s->flags & SPEC_FLAG_NESTING ? SYSFILTER_NESTING : 0;
    if (ids && ids->uid_base) {
        c->uid_base = ids->uid_base;
        c->uid_count = ids->uid_count;
    }
    r = cgroup_procs_paths(l->cgroups, s->id, &procs);
    if (r < 0)
        return r;
    /* On a pure v2 host init is cloned straight into its one cgroup
     * (CLONE_INTO_CGROUP): there is no tasks file, and "0" written into
     * cgroup.procs takes the global cgroup_threadgroup_rwsem and waits out
     * an RCU grace period at every start (proc.h). The spawner opens the
     * directory as host root before the clone and clones the console
     * reader and the exec helper there too; a child the kernel killed at
     * birth there is cloned again and joins by cgroup.procs (spawnd.c). */
    if (cgroup_mgr_mode(l->cgroups) == CGROUP_V2 && procs && procs[0] && !procs[1]) {
        size_t n = strlen(procs[0]), k = strlen("/cgroup.procs");
        if (n <= k || strcmp(procs[0] + n - k, "/cgroup.procs") != 0)
            return -EINVAL;
        if (n - k >= sizeof(c->cgroup2))
            return -ENAMETOOLONG;
        memcpy(c->cgroup2, procs[0], n - k);
        c->cgroup2[n - k] = '\0';
        return 0;
    }
    for (size_t i = 0; procs && procs[i]; i++) {
        if (i >= SPAWN_MAX_CGROUPS)
            return -E2BIG;
        if (strscpy(c->cgroup_procs[i], procs[i], SPAWN_PATH_MAX) < 0)
            return -ENAMETOOLONG;
        c->n_cgroup_procs = (uint32_t)i + 1;
    }
    return 0;
}

/* A cold start (its root not mounted: the first after a reboot) mounts the
 * disk and the root while the spawner clones the child and the child sets
 * itself up (spawner_start_with): on two CPUs the ~2 ms of mounts no longer
 * come before the clone. The root reaches the child through a conduit,
 * data/<id>/stage, a shared bind mount whose clone the spawner stages as a
 * slave, so that the root bound into it propagates into the child's mount
 * namespace, locked like the copy of the seed (a detached tree handed over
 * by descriptor would arrive unlocked: guest root could clear its nodev).
 * The disk, the longer of the two legs, starts first: on a thread of its
 * own from the start's first step on, beside the cgroup, the conduit and
 * the spawner's clone; the idmapped template, which needs the child's user
 * namespace but not the disk, is mounted while the disk's thread finishes. */
struct start_cold {
    struct linux_backend *l;     /* the backend */
    const struct guest_spec *s;  /* the guest */
    const struct guest_ids *ids; /* its uid block, or NULL */
    const struct guest_paths *p; /* its paths */
    int err;                     /* the mounts' error (errtext set), 0 */
    pthread_t disk;              /* the disk's mount, overlapping the spawner's clone */
    bool disk_started;           /* disk runs: join it */
    int disk_err;                /* its result */
    char disk_text[256];         /* its errtext (a thread's own) */
};

/* What the child's first look-ups in its root and the overlay's mount read
 * of a disk just mounted, read here on the disk's thread beside the
 * spawner's clone rather than one block after the other later, behind the
 * mounts: upper's directory block (the child's first look-up), and what the
 * overlay's mount reads to re-make work/work (the directory blocks of work
 * and work/work, and the inode and block bitmaps their rmdir and mkdir
 * change), requested at once on the loop device (disk_prefetch_dirs), then
 * waited for by reading the directories. An error only leaves the reads to
 * the child or to the mount. */
static void
start_cold_warm(const struct guest_paths *p, const char *loopdev)
{
    _cleanup_close_ int disk = open(p->disk, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (disk < 0)
        return;
    _cleanup_close_ int upper = openat(disk, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    _cleanup_close_ int work = openat(disk, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dirs[2] = {upper, work};
    if (loopdev[0])
        disk_prefetch_dirs(loopdev, dirs, 2);
    char buf[4096];
    for (size_t i = 0; i < 2; i++)
        while (dirs[i] >= 0 && syscall(SYS_getdents64, dirs[i], buf, sizeof(buf)) > 0)
            ;
    if (work < 0)
        return;
    /* work/work's inode is in work's block, just read; its block next. */
    _cleanup_close_ int ww = openat(work, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ww < 0)
        return;
    if (loopdev[0])
        disk_prefetch_dirs(loopdev, &ww, 1);
    while (syscall(SYS_getdents64, ww, buf, sizeof(buf)) > 0)
        ;
}

/* The disk's thread. An image that is there is mounted at once: its
 * superblock is read by the mount, and read again (disk_info, in
 * guest_disk) only when the mount finds no file system on it (-EINVAL), to
 * make it again as a create would (guest_disk refuses a non-regular file). */
static void *
start_cold_disk(void *arg)
{
    struct start_cold *sc = arg;
    struct stat st;
    char loopdev[64] = "";
    sc->disk_err = -EINVAL;
    if (lstat(sc->p->image, &st) == 0 && S_ISREG(st.st_mode))
        sc->disk_err = lx_mount_disk(sc->p, false, loopdev, sizeof(loopdev));
    if (sc->disk_err == -EINVAL)
        sc->disk_err = lx_guest_disk(sc->l, sc->s, sc->p);
    if (sc->disk_err < 0)
        strscpy(sc->disk_text, errtext_get(), sizeof(sc->disk_text));
    else
        start_cold_warm(sc->p, loopdev);
    return NULL;
}

/* Joins the disk's thread; its result, its errtext set on this thread. */
static int
start_cold_disk_join(struct start_cold *sc)
{
    if (!sc->disk_started)
        return lx_guest_disk(sc->l, sc->s, sc->p);
    pthread_join(sc->disk, NULL);
    sc->disk_started = false;
    if (sc->disk_err < 0 && sc->disk_text[0])
        errtext_set("%s", sc->disk_text);
    return sc->disk_err;
}

/* What a cold start does before the spawn: the guest's directory, the
 * disk's thread, its cgroups (the child joins them) and the conduit. A
 * failure joins the thread (the disk stays mounted, as after a create that
 * failed later). */
static int
start_cold_prepare(struct start_cold *sc)
{
    int r = lx_guest_dir_prepare(sc->s, sc->p);
    if (r < 0)
        return r;
    sc->disk_started = pthread_create(&sc->disk, NULL, start_cold_disk, sc) == 0;
    r = cgroup_create(sc->l->cgroups, sc->s->id);
    if (r == 0 && (r = rootfs_conduit_open(sc->p->stage)) < 0)
        r = errtext_fail(r, "cannot make the guest's mount conduit \"%s\"", sc->p->stage);
    if (r < 0 && sc->disk_started)
        (void)start_cold_disk_join(sc);
    return r;
}

/* spawner_start_with's root: the mounts, then the root into the conduit. */
static int
start_cold_mounts(void *arg, pid_t child)
{
    struct start_cold *sc = arg;
    const char *lower;
    int r = lx_mount_lower(sc->l, sc->ids, sc->p, child, &lower);
    int k = start_cold_disk_join(sc); /* whatever the lower layer did */
    if (r == 0)
        r = k;
    if (r == 0)
        r = lx_upper_fit_cold(sc->s, sc->ids, sc->p);
    if (r == 0)
        r = lx_mount_overlay(lower, sc->p);
    if (r == 0 && (r = rootfs_conduit_fill(sc->p->stage, sc->p->root)) < 0)
        errtext_fail(r, "cannot bind the guest's root into \"%s\"", sc->p->stage);
    sc->err = r;
    return r;
}

/* The spawn of a cold start; the conduit is taken down after it, whatever
 * happened (the child has made its mounts private by the time the start
 * returns). */
static int
start_cold_spawn(struct start_cold *sc, struct spawn_config *c, struct spawn_result *res)
{
    int r = 0;
    if (snprintf(c->rootfs, sizeof(c->rootfs), "%s/root", sc->p->stage) >= (int)sizeof(c->rootfs))
        r = sc->err = errtext_fail(-ENAMETOOLONG, "the path \"%s\" is too long", sc->p->stage);
    c->root_later = 1;
    if (r == 0)
        r = spawner_start_with(sc->l->spawner, c, start_cold_mounts, sc, res);
    if (sc->disk_started)
        (void)start_cold_disk_join(sc); /* the spawn failed before the mounts */
    int k = rootfs_conduit_close(sc->p->stage);
    if (k < 0)
        log_warning("guest=%s cannot take down \"%s\": %s, ignoring", sc->s->name, sc->p->stage,
                    strerror(-k));
    return r;
}

int
lx_conduit_sweep(const struct guest_paths *p)
{
    int r = rootfs_conduit_close(p->stage);
    return r < 0 ? errtext_fail(r, "cannot take down the stale mount conduit \"%s\"", p->stage) : 0;
}

/* Whether what lx_create makes is all there for a start: the template, the
 * disk, the idmapped template and the overlay mounted (one statx each: the
 * path is the root of a mount), the guest's cgroup. A start right after its
 * create finds them so and skips the create's second pass (the template,
 * the image's superblock, the mount look-ups, the cgroup directories and
 * their files); after a host reboot, or once any of the mounts went, the
 * start makes them again. What is mounted there is the agent's own: these
 * paths are in its state directory, and the create checked what it mounted. */
static bool
lx_ready(struct linux_backend *l, const struct guest_spec *s, const struct guest_ids *ids,
         const struct guest_paths *p)
{
    struct stat st;

    if (stat(p->tmpl, &st) < 0 || !S_ISDIR(st.st_mode))
        return false;
    if (mountinfo_is_mountpoint(p->root) != 1 || mountinfo_is_mountpoint(p->disk) != 1)
        return false;
    if (ids && ids->uid_base && mountinfo_is_mountpoint(p->lower) != 1)
        return false;
    return cgroup_complete(l->cgroups, s->id);
}

uint64_t
linux_backend_remade(backend_t *b)
{
    return __atomic_load_n(&lb(b)->remade, __ATOMIC_RELAXED);
}

/* A v1 guest's freezer cgroup thawed before its start: a kill cut short
 * between its freeze and its thaw (an agent killed there) leaves it frozen,
 * and the init, which joins its cgroups itself, froze there and the start
 * with it, for good. A guest starts only when its init is not running,
 * and a move's freeze holds off its starts. On v2 the spawner does it
 * (thaw_cgroup2, spawnd.c), through the directory it opens anyway. One
 * read of freezer.state when nothing is frozen. 0 or -errno. */
static int
start_thaw(struct linux_backend *l, const struct guest_spec *s)
{
    if (cgroup_mgr_mode(l->cgroups) == CGROUP_V2)
        return 0;
    int r = cgroup_thaw(l->cgroups, s->id);
    if (r > 0)
        log_info("guest=%s its cgroup was left frozen (a kill cut short): thawed before its start",
                 s->name);
    return r < 0 ? errtext_fail(r, "cannot thaw the guest's cgroup: %s", strerror(-r)) : 0;
}

/* The FreeVPS views go into a guest only when the agent serves them (a
 * FUSE mount there), never as a plain host directory. */
static int
lx_start(backend_t *b, const struct guest_spec *s, const struct guest_ids *ids,
         struct guest_runtime *rt)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    struct spawn_config c;
    struct spawn_result res = {.pidfd = -1};
    int r;

    if (rt->pid && proc_is_same(rt->pid, rt->start_time) > 0)
        return 0; /* already running */
    paths_of(l, s, &p);
    /* After a host reboot the mounts are gone: make them again. With no
     * root mounted the mounts are made while the child is cloned and sets
     * itself up (start_cold); a start right after its create finds them all
     * there (lx_ready) and makes nothing again. */
    bool cold = mountinfo_is_mountpoint(p.root) == 0;
    struct start_cold sc = {.l = l, .s = s, .ids = ids, .p = &p};
    r = 0;
    if (cold || !lx_ready(l, s, ids, &p)) {
        log_debug("guest=%s its mounts or cgroup are missing: making them again", s->name);
        __atomic_fetch_add(&l->remade, 1, __ATOMIC_RELAXED);
        r = cold ? start_cold_prepare(&sc) : lx_create(b, s, ids);
    }
    if (r == 0 && !cold)
        r = lx_conduit_sweep(&p); /* left by an agent that died in a cold start */
    if (r < 0)
        return r;
    /* The setup runs without a ceiling below a core (cgroup_setup_limits). */
    struct spec_limits setup;
    bool lift = cgroup_setup_limits(&s->limits, &setup);
    r = start_thaw(l, s);
    if (r == 0)
        r = cgroup_set_limits_changed(l->cgroups, s->id, &setup);
    if (r == 0)
        r = lx_spawn_config_of(l, s, ids, &p, &c);
    if (r < 0) {
        if (cold) {
            (void)rootfs_conduit_close(p.stage); /* opened by start_cold_prepare */
            if (sc.disk_started)
                (void)start_cold_disk_join(&sc);
        }
        return r;
    }
    strscpy(c.console_ring, p.console, sizeof(c.console_ring));
    c.console_size = l->cfg.console_ring ? l->cfg.console_ring : CONSOLE_RING_DEFAULT;
    const char *lxcfs = lxcfs_dir(l, s);
    if (lxcfs)
        strscpy(c.lxcfs, lxcfs, sizeof(c.lxcfs));
    r = cold ? start_cold_spawn(&sc, &c, &res) : spawner_start(l->spawner, &c, &res);
    if (r == -EPIPE) {
        /* The spawner died; a new one cannot be forked now that threads run. */
        log_error("guest=%s spawner is gone: restart the agent", s->name);
        return r;
    }
    if (r < 0 && sc.err < 0)
        return sc.err; /* the mounts' own error, with its text */
    if (r < 0)
        return errtext_fail(r, "%s", res.error);
    /* No guest runs on without its ceiling: killed (the agent reaps it). */
    r = lift ? cgroup_set_limits(l->cgroups, s->id, &s->limits) : 0;
    if (r < 0 && res.pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, res.pidfd, SIGKILL, NULL, 0);
    if (res.pidfd >= 0)
        close(res.pidfd); /* the agent opens its own pidfd to watch init */
    if (r < 0)
        return errtext_fail(r, "cannot set the guest's CPU ceiling");
    rt->pid = res.pid;
    rt->start_time = res.start_time;
    return 0;
}

static int
lx_stop(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt)
{
    int sig = s->halt_signal ? (int)s->halt_signal : SIGTERM;

    if (!rt->pid || proc_is_same(rt->pid, rt->start_time) <= 0)
        return 0;
    if (kill(rt->pid, sig) < 0 && errno != ESRCH)
        return -errno;
    return 0;
}

static int
lx_kill(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt)
{
    struct linux_backend *l = lb(b);

    if (!cgroup_exists(l->cgroups, s->id))
        return 0;
    return cgroup_kill(l->cgroups, s->id);
}

static int
lx_kill_many(backend_t *b, char *const *ids, size_t n, int *res)
{
    return cgroup_kill_many(lb(b)->cgroups, ids, n, res);
}

static int
lx_list(backend_t *b, char ***ids)
{
    struct linux_backend *l = lb(b);
    int r = cgroup_list(l->cgroups, ids);
    size_t n = 0;

    if (r < 0)
        return r;
    /* Only guests whose directory is in this node's state directory (a
     * create makes it before anything runs): a cgroup under a prefix that
     * another agent on this kernel shares is its guest's, not ours. */
    for (char **id = *ids; *id; id++) {
        struct stat st;
        _cleanup_free_ char *dir = xasprintf("%s/data/%s", l->cfg.state_dir, *id);
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
            (*ids)[n++] = *id;
        else
            free(*id);
    }
    (*ids)[n] = NULL;
    return 0;
}

static int
lx_destroy(backend_t *b, const struct guest_spec *s)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    int r;

    paths_of(l, s, &p);
    r = net_remove(l->net, s);
    if (r < 0)
        return errtext_fail(r, "cannot remove the guest's network");
    r = cgroup_destroy(l->cgroups, s->id);
    if (r < 0)
        return r;
    r = lx_conduit_sweep(&p);
    if (r < 0)
        return r;
    r = rootfs_umount(p.root);
    if (r < 0)
        return r;
    r = idmap_umount(p.lower);
    if (r < 0)
        return r;
    /* The template's clone is closed with its last guest, so that a template
     * no guest uses can be unmounted or removed and its storage released. */
    tmpl_trees_put(l->trees, p.lower);
    /* -EBUSY: unmounted here, but another mount namespace made while it was
     * mounted (a service with its own /tmp, an `unshare -m`) still holds a
     * copy, and with it the loop device. The guest goes all the same: its
     * image is unlinked and its space comes back when that namespace ends. */
    r = disk_umount(p.disk);
    bool held = r == -EBUSY;
    if (r < 0 && !held)
        return r;
    if (held)
        log_info("disk: %s is still held by another mount namespace; it is freed when that "
                 "ends",
                 p.image);
    r = held ? disk_unlink(p.image) : disk_destroy(p.image);
    if (r < 0)
        return r;
    return guest_dir_remove(p.dir);
}

/* Changes the size of a guest's disk. A running guest's filesystem grows
 * online (ext4 resize, which needs CAP_SYS_RESOURCE on the host); a stopped
 * guest's disk is unmounted, resized offline (grow or shrink) and mounted
 * again. Shrinking below use is refused with -ENOSPC and changes nothing. */
static int
resize_disk(struct linux_backend *l, const struct guest_ids *ids, const struct guest_paths *p,
            bool running, uint64_t size, uint64_t old_size)
{
    int r;

    if (size > old_size && (r = lx_check_reserve(l, "growing the disk")) < 0)
        return r;
    if (running) {
        /* disk_resize checks use first: below use is -ENOSPC, above it -EBUSY. */
        r = disk_resize(p->image, p->disk, size);
        if (r == -EBUSY && size < old_size)
            return errtext_fail(-EBUSY, "a running guest's disk cannot shrink (ext4 shrinks "
                                        "offline only): stop the guest and apply again");
        if (r == -EPERM)
            return errtext_fail(-EOPNOTSUPP,
                                "growing a running guest's disk needs CAP_SYS_RESOURCE, which "
                                "this host's bounding set lacks: stop the guest and apply again");
        if (r == -ENOSPC)
            errtext_set("the new disk size is below what the guest uses");
        return r;
    }
    if ((r = lx_conduit_sweep(p)) < 0)
        return r;
    r = rootfs_umount(p->root);
    if (r >= 0)
        r = disk_umount(p->disk);
    if (r < 0)
        return errtext_fail(r, "cannot unmount the stopped guest's disk to resize it");
    int resized = disk_resize(p->image, NULL, size);
    if (resized == -ENOSPC)
        errtext_set("the new disk size is below what the guest uses");
    /* Mount again whether or not the resize worked: the guest keeps its disk. */
    r = disk_mount(p->image, p->disk, NULL, 0);
    if (r >= 0)
        r = lx_mount_root(l, ids, p, 0);
    return resized < 0 ? resized : r;
}

/* The provision group into the guest's files, when it changed (provision.h);
 * every apply comes through set_limits, so a create and a later change
 * alike are written before the guest (next) starts. */
static int
lx_provision(const struct guest_paths *p, const struct guest_spec *s)
{
    char stamp[600];

    snprintf(stamp, sizeof(stamp), "%s/provision.stamp", p->dir);
    return provision_apply(p->root, stamp, &s->provision);
}

/* Rebuild (node/linux/rebuild.h) when the spec's counter moved: the root
 * mounted again over the spec's template, through a new idmapped lower
 * layer for a guest with a uid block (the template may have changed). */
static int
lx_rebuild(struct linux_backend *l, const struct guest_spec *s, const struct guest_ids *ids,
           const struct guest_paths *p, bool running)
{
    struct rebuild_paths rp = {.dir = p->dir, .disk = p->disk, .root = p->root, .tmpl = p->tmpl};
    int r;

    if (!rebuild_needed(&rp, s->rebuild))
        return 0;
    r = running ? 0 : lx_conduit_sweep(p);
    if (r == 0)
        r = rebuild_wipe(&rp, running);
    if (r < 0)
        return r;
    if (ids && ids->uid_base && (r = idmap_umount(p->lower)) < 0)
        return errtext_fail(r, "cannot unmount the idmapped template to rebuild");
    r = lx_mount_root(l, ids, p, 0);
    if (r < 0)
        return r;
    return rebuild_done(&rp, s->rebuild);
}

static int
lx_set_limits(backend_t *b, const struct guest_spec *s, const struct guest_ids *ids,
              const struct guest_runtime *rt)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    struct disk_info di;
    uint64_t size = (s->limits.disk ? s->limits.disk : LINUX_DEFAULT_DISK) & ~4095ULL;
    bool running = rt->pid && proc_is_same(rt->pid, rt->start_time) > 0;
    int r;

    paths_of(l, s, &p);
    r = disk_info(p.image, &di);
    if (r < 0)
        return errtext_fail(r, "cannot read the guest's disk image");
    uint64_t old_size = (uint64_t)di.blocks * di.block_size;
    if (old_size != size) {
        r = resize_disk(l, ids, &p, running, size, old_size);
        if (r < 0)
            return r;
        r = disk_info(p.image, &di);
        if (r < 0)
            return r;
    }
    /* ext4 fixes the inode count at mkfs; it grows with the disk only. A limit
     * above what the filesystem has cannot be met. */
    if (s->limits.inodes > di.inodes)
        return errtext_fail(-EOPNOTSUPP,
                            "the inode count of an existing disk is fixed (%llu); it grows "
                            "only with the disk size",
                            (unsigned long long)di.inodes);
    struct spec_limits lim = s->limits;
    if (!running)
        (void)cgroup_setup_limits(&s->limits, &lim);
    r = cgroup_set_limits(l->cgroups, s->id, &lim);
    if (r < 0)
        return errtext_fail(r, "cannot apply cgroup limits");
    /* A rebuild (the spec's counter moved) before the provisioning it resets. */
    r = lx_rebuild(l, s, ids, &p, running);
    if (r < 0)
        return r;
    return lx_provision(&p, s);
}

/* The segment learns that the guest's addresses are here now (a moved guest,
 * an added address); proxy ARP/NDP answers what follows. */
static void
announce_here(struct linux_backend *l, const struct guest_spec *s)
{
    int r = announce_addrs(l->cfg.net.uplink, s, &l->arp_fd);

    if (r < 0)
        log_debug("guest=%s cannot announce its addresses on %s: %s, ignoring", s->name,
                  l->cfg.net.uplink, strerror(-r));
}

static int
lx_apply_network(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt)
{
    struct linux_backend *l = lb(b);
    int r;

    if (!rt->pid) {
        r = net_remove(l->net, s);
        if (r < 0)
            errtext_set("cannot remove the guest's network");
        return r;
    }
    if (proc_is_same(rt->pid, rt->start_time) <= 0)
        return -ESRCH;
    r = net_apply(l->net, s, rt->pid);
    if (r < 0)
        errtext_set("cannot apply the guest's network (veth, addresses, routes, tc, nftables)");
    else if (l->cfg.net.proxy_neigh && l->cfg.net.uplink[0])
        announce_here(l, s);
    return r;
}

static int
lx_state(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
         enum guest_state *out)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    struct stat st;

    paths_of(l, s, &p);
    if (rt->pid && proc_is_same(rt->pid, rt->start_time) > 0)
        *out = GUEST_RUNNING;
    else if (stat(p.image, &st) == 0)
        *out = GUEST_STOPPED;
    else
        *out = GUEST_ABSENT;
    return 0;
}

static int
lx_usage(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
         struct guest_usage *u)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    struct disk_usage du;
    int r;

    paths_of(l, s, &p);
    r = cgroup_usage(l->cgroups, s->id, u);
    if (r < 0)
        return r;
    if (disk_usage(p.disk, &du) == 0) {
        u->disk_bytes = du.bytes_used;
        u->disk_inodes = du.inodes_used;
        /* The kernel counts no ENOSPC: 1 while the filesystem is full, which
         * the master counts as a limit hit each time it becomes so. */
        u->failcnt[USAGE_FAIL_DISK] = du.full;
    }
    /* The init is looked at only where the network opens a file through it:
     * a /proc/<pid>/stat read per guest per sample was 11-15 % of the
     * agent's samples. */
    net_usage(l->net, s, rt->pid, rt->start_time, u);
    u->time_ms = time_real_ms();
    return 0;
}

static int
lx_oom_watch(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt, bool *prio)
{
    (void)rt;
    return cgroup_oom_watch(lb(b)->cgroups, s->id, prio);
}

static int
lx_oom_read(backend_t *b, const struct guest_spec *s, int fd, uint64_t *count)
{
    return cgroup_oom_read(lb(b)->cgroups, s->id, fd, count);
}

static int
lx_exec(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
        const struct exec_request *req, struct exec_result *res)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    struct spawn_config c;
    int r;

    paths_of(l, s, &p);
    r = lx_spawn_config_of(l, s, NULL, &p, &c);
    if (r < 0)
        return r;
    return spawner_exec(l->spawner, &c, rt->pid, rt->start_time, req, res);
}

/* guest.shell: a stream helper joins the guest as exec's does and hands
 * the command's ends over (node/linux/nsexec_stream.h). */
static int
lx_shell(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt,
         const struct shell_request *req, struct shell_proc *out)
{
    struct linux_backend *l = lb(b);
    struct guest_paths p;
    struct spawn_config c;
    int sock, r;

    paths_of(l, s, &p);
    r = lx_spawn_config_of(l, s, NULL, &p, &c);
    if (r < 0)
        return r;
    r = spawner_stream(l->spawner, &c, rt->pid, rt->start_time, req, &sock);
    if (r < 0)
        return r;
    return linux_shell_handshake(sock, 10000, out);
}

static int
lx_console(backend_t *b, const struct guest_spec *s, size_t max, struct console_log *out)
{
    struct guest_paths p;

    paths_of(lb(b), s, &p);
    return console_ring_read(p.console, max, out);
}

static void
lx_free(backend_t *b)
{
    struct linux_backend *l = lb(b);

    spawner_destroy(&l->spawner);
    cgroup_mgr_destroy(&l->cgroups);
    net_destroy(&l->net);
    if (l->arp_fd >= 0)
        close(l->arp_fd);
    tmpl_trees_free(&l->trees);
    free(l);
}

static const struct backend_ops linux_ops = {
    .name = "linux",
    .net_per_run = true,
    .parallel_guests = true,
    .probe = lx_probe,
    .create = lx_create,
    .start = lx_start,
    .stop = lx_stop,
    .kill = lx_kill,
    .list = lx_list,
    .kill_many = lx_kill_many,
    .destroy = lx_destroy,
    .set_limits = lx_set_limits,
    .apply_network = lx_apply_network,
    .state = lx_state,
    .usage = lx_usage,
    .oom_watch = lx_oom_watch,
    .oom_read = lx_oom_read,
    .exec = lx_exec,
    .shell = lx_shell,
    .console = lx_console,
    .free = lx_free,
    .migrate_paths = lx_migrate_paths,
    .migrate_freeze = lx_migrate_freeze,
    .migrate_frozen = lx_migrate_frozen,
    .thaw_stray = lx_thaw_stray,
    .migrate_criu = lx_migrate_criu,
    .migrate_pack = lx_migrate_pack,
    .migrate_unpack = lx_migrate_unpack,
    .migrate_ids = lx_migrate_ids,
};

backend_t *
linux_backend_new(const struct linux_config *cfg, int *err)
{
    struct linux_backend *l = xcalloc(1, sizeof(*l));
    int r;

    l->base.ops = &linux_ops;
    l->cfg = *cfg;
    l->arp_fd = -1;
    l->trees = tmpl_trees_new();
    l->net = net_new(&cfg->net);
    /* The spawner first: it must fork while this process has one thread. */
    l->spawner = spawner_new(&r);
    if (!l->spawner)
        goto fail;
    r = cgroup_mgr_new(cfg->cgroup_root[0] ? cfg->cgroup_root : "/sys/fs/cgroup",
                       cfg->cgroup_prefix[0] ? cfg->cgroup_prefix : "vfleet", &l->cgroups);
    if (r < 0)
        goto fail;
    char data[300];
    snprintf(data, sizeof(data), "%s/data", cfg->state_dir);
    r = fs_mkdir_p(data, 0700);
    if (r < 0)
        goto fail;
    return &l->base;
fail:
    *err = r;
    lx_free(&l->base);
    return NULL;
}
