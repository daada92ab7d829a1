/* The cgroup v2 driver: one directory per guest in the unified hierarchy,
 * <root>/<prefix>/<id>, with cpu, io, memory and pids enabled in the
 * subtree_control of <root> and <root>/<prefix> (whichever the kernel offers).
 *
 * Limits (spec_limits field -> file, 0 = unset -> "max" or the default):
 *   procs      -> pids.max
 *   memory     -> memory.max
 *   rss        -> memory.high
 *   swap       -> memory.swap.max (swap alone, not memory+swap as on v1)
 *   cpu_weight -> cpu.weight (1..10000, 0 -> 100)
 *   cpu_max    -> cpu.max "quota 100000" with quota = millicores*100 us (min 1000), or "max 100000"
 *   cpu_burst  -> cpu.max.burst = millicores*100 us, at most the quota
 *   io_weight  -> io.weight "default N" and io.bfq.weight "default min(N,1000)", each
 *                 when the kernel has it (iocost and BFQ weigh different devices)
 *   io_devs    -> io.max "maj:min rbps=N wbps=N riops=N wiops=N" ("max" for 0)
 * Device policy (at create): a BPF_PROG_TYPE_CGROUP_DEVICE program allowing
 * the same list as v1 (devices_bpf.h), so guests on v2 keep CAP_MKNOD. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/linux/cgroup_driver.h"
#include "node/linux/fdhigh.h"
#include "node/linux/devices_bpf.h"

/* The controllers a guest needs, in the order they are enabled. */
static const char *const v2_controllers[] = {"cpu", "io", "memory", "pids"};

static char *
v2_dir(cgroup_mgr_t *m, const char *id)
{
    return xasprintf("%s/%s/%s", m->root, m->prefix, id);
}

static int
v2_list(cgroup_mgr_t *m, char ***ret, size_t *n)
{
    _cleanup_free_ char *dir = xasprintf("%s/%s", m->root, m->prefix);
    return cgroup_list_dir(dir, ret, n);
}

static int
v2_init(cgroup_mgr_t *m)
{
    return access(m->root, F_OK) < 0 ? -errno : 0;
}

static void
v2_fini(cgroup_mgr_t *m)
{
}

/* True when word is one of the space-separated words of text. */
static bool
v2_has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p += n) {
        bool start = p == text || p[-1] == ' ' || p[-1] == '\n';
        bool end = p[n] == ' ' || p[n] == '\n' || p[n] == '\0';
        if (start && end)
            return true;
    }
    return false;
}

/* Enables in dir's subtree_control each needed controller that dir offers
 * and has not enabled yet, in one write ("+cpu +memory"). */
static int
v2_enable_controllers(cgroup_mgr_t *m, const char *dir)
{
    _cleanup_free_ char *avail = NULL, *enabled = NULL;
    int r = cgroup_read(dir, "cgroup.controllers", &avail);
    if (r < 0)
        return r;
    if ((r = cgroup_read(dir, "cgroup.subtree_control", &enabled)) < 0)
        return r;
    char buf[128] = "";
    for (size_t i = 0; i < ARRAY_SIZE(v2_controllers); i++) {
        const char *c = v2_controllers[i];
        if (!v2_has_word(avail, c)) {
            log_debug("cgroup: controller %s not available in %s, ignoring", c, dir);
            continue;
        }
        if (v2_has_word(enabled, c))
            continue;
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof(buf) - len, "%s+%s", len ? " " : "", c);
    }
    if (!buf[0])
        return 0;
    return cgroup_write(m, dir, "cgroup.subtree_control", buf);
}

static int v2_devices(const char *dir);

static int
v2_create(cgroup_mgr_t *m, const char *id)
{
    _cleanup_free_ char *base = xasprintf("%s/%s", m->root, m->prefix);
    _cleanup_free_ char *dir = v2_dir(m, id);
    int r = v2_enable_controllers(m, m->root);
    if (r < 0)
        return r;
    if ((r = cgroup_mkdir(m, base)) < 0)
        return r;
    if ((r = v2_enable_controllers(m, base)) < 0)
        return r;
    r = cgroup_mkdir(m, dir);
    return r < 0 ? r : v2_devices(dir);
}

/* Attaches the device program to a guest's cgroup (idempotent). A fake
 * tree of the tests is a plain directory: no program can go there. */
static int
v2_devices(const char *dir)
{
    struct statfs sf;
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstatfs(fd, &sf) < 0)
        return -errno;
    if (sf.f_type != CGROUP2_SUPER_MAGIC)
        return 0;
    int r = devices_bpf_attach(fd);
    if (r < 0)
        log_debug("cgroup: device program on %s: %s", dir, strerror(-r));
    return r;
}

static bool
v2_exists(cgroup_mgr_t *m, const char *id)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    return access(dir, F_OK) == 0;
}

static int
v2_attach(cgroup_mgr_t *m, const char *id, pid_t pid)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    return cgroup_writef(m, dir, "cgroup.procs", "%d", (int)pid);
}

static int
v2_open_v2_fd(cgroup_mgr_t *m, const char *id)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int
v2_procs_paths(cgroup_mgr_t *m, const char *id, char ***ret)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    char **v = xcalloc(2, sizeof(char *));
    v[0] = xasprintf("%s/cgroup.procs", dir);
    *ret = v;
    return 0;
}

/* Writes a limit file; when the kernel lacks it, an unset limit is skipped
 * and a set one is -EOPNOTSUPP. */
static int
v2_set(cgroup_mgr_t *m, const char *dir, const char *file, bool wanted, const char *value)
{
    if (!cgroup_file_exists(dir, file)) {
        log_debug("cgroup: %s/%s missing, %s", dir, file, wanted ? "failing" : "ignoring");
        return wanted ? -EOPNOTSUPP : 0;
    }
    return cgroup_write(m, dir, file, value);
}

static void
v2_fmt_max(char *buf, size_t len, uint64_t v)
{
    if (v == 0 || v == UINT64_MAX)
        snprintf(buf, len, "max");
    else
        snprintf(buf, len, "%" PRIu64, v);
}

static int
v2_set_io(cgroup_mgr_t *m, const char *dir, const struct spec_limits *l)
{
    int r;
    uint32_t weight = l->io_weight ? l->io_weight : 100;
    if (weight > 10000)
        weight = 10000;
    /* A kernel can have both weights, and each serves other devices: iocost's
     * io.weight those with io.cost.qos enabled, io.bfq.weight (present once
     * the BFQ module is loaded) those whose scheduler is bfq. Both are written. */
    bool any = false;
    if (cgroup_file_exists(dir, "io.weight")) {
        if ((r = cgroup_writef(m, dir, "io.weight", "default %" PRIu32, weight)) < 0)
            return r;
        any = true;
    }
    if (cgroup_file_exists(dir, "io.bfq.weight")) {
        r = cgroup_writef(m, dir, "io.bfq.weight", "default %" PRIu32,
                          weight > 1000 ? 1000 : weight);
        if (r < 0)
            return r;
        any = true;
    }
    if (!any)
        log_debug("cgroup: %s has no io weight, io_weight ignored", dir);

    if (!cgroup_file_exists(dir, "io.max"))
        return l->n_io_devs ? -EOPNOTSUPP : 0;
    /* Devices capped before and gone from the spec get every cap lifted. */
    _cleanup_free_ char *cur = NULL;
    if ((r = cgroup_read(dir, "io.max", &cur)) < 0)
        return r;
    for (char *line = cur; line && *line;) {
        unsigned maj, min;
        if (sscanf(line, "%u:%u", &maj, &min) == 2) {
            bool listed = false;
            for (uint32_t i = 0; i < l->n_io_devs; i++)
                listed |= l->io_devs[i].major == maj && l->io_devs[i].minor == min;
            if (!listed) {
                r = cgroup_writef(m, dir, "io.max", "%u:%u rbps=max wbps=max riops=max wiops=max",
                                  maj, min);
                if (r < 0)
                    return r;
            }
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    for (uint32_t i = 0; i < l->n_io_devs; i++) {
        const struct spec_io_dev *d = &l->io_devs[i];
        char rb[24], wb[24], ri[24], wi[24];
        v2_fmt_max(rb, sizeof(rb), d->read_bps);
        v2_fmt_max(wb, sizeof(wb), d->write_bps);
        v2_fmt_max(ri, sizeof(ri), d->read_iops);
        v2_fmt_max(wi, sizeof(wi), d->write_iops);
        r = cgroup_writef(m, dir, "io.max", "%u:%u rbps=%s wbps=%s riops=%s wiops=%s", d->major,
                          d->minor, rb, wb, ri, wi);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
v2_set_limits(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    if (access(dir, F_OK) < 0)
        return -ENOENT;
    char buf[64];
    int r;

    v2_fmt_max(buf, sizeof(buf), l->procs);
    if ((r = v2_set(m, dir, "pids.max", l->procs, buf)) < 0)
        return r;
    v2_fmt_max(buf, sizeof(buf), l->memory);
    if ((r = v2_set(m, dir, "memory.max", l->memory, buf)) < 0)
        return r;
    v2_fmt_max(buf, sizeof(buf), l->rss);
    if ((r = v2_set(m, dir, "memory.high", l->rss, buf)) < 0)
        return r;
    v2_fmt_max(buf, sizeof(buf), l->swap);
    if ((r = v2_set(m, dir, "memory.swap.max", l->swap, buf)) < 0)
        return r;

    uint32_t weight = l->cpu_weight ? l->cpu_weight : 100;
    snprintf(buf, sizeof(buf), "%" PRIu32, weight > 10000 ? 10000 : weight);
    if ((r = v2_set(m, dir, "cpu.weight", l->cpu_weight, buf)) < 0)
        return r;
    /* The kernel refuses a burst above the quota: clear it, set the quota,
     * then set the burst. */
    bool burst = cgroup_file_exists(dir, "cpu.max.burst");
    if (!burst && l->cpu_burst)
        return -EOPNOTSUPP;
    if (burst && (r = cgroup_write(m, dir, "cpu.max.burst", "0")) < 0)
        return r;
    uint64_t quota = 0;
    if (l->cpu_max) {
        quota = (uint64_t)l->cpu_max * 100;
        quota = quota < 1000 ? 1000 : quota;
        snprintf(buf, sizeof(buf), "%" PRIu64 " 100000", quota);
    } else
        snprintf(buf, sizeof(buf), "max 100000");
    if ((r = v2_set(m, dir, "cpu.max", l->cpu_max, buf)) < 0)
        return r;
    if (burst && quota && l->cpu_burst) {
        uint64_t b = (uint64_t)l->cpu_burst * 100;
        if ((r = cgroup_writef(m, dir, "cpu.max.burst", "%" PRIu64, b > quota ? quota : b)) < 0)
            return r;
    }
    return v2_set_io(m, dir, l);
}

/* Sums rbytes/wbytes/rios/wios over the device lines of io.stat. */
static void
v2_io_stat(const char *text, struct guest_usage *u)
{
    static const char *const keys[] = {"rbytes=", "wbytes=", "rios=", "wios="};
    uint64_t *dst[] = {&u->io_read_bytes, &u->io_write_bytes, &u->io_read_ops, &u->io_write_ops};
    for (const char *line = text; line && *line;) {
        const char *eol = strchrnul(line, '\n');
        for (const char *p = line; p < eol;) {
            const char *sp = strchrnul(p, ' ');
            if (sp > eol)
                sp = eol;
            for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                size_t kl = strlen(keys[k]);
                if ((size_t)(sp - p) > kl && strncmp(p, keys[k], kl) == 0)
                    *dst[k] += strtoull(p + kl, NULL, 10);
            }
            p = sp < eol ? sp + 1 : eol;
        }
        line = *eol ? eol + 1 : NULL;
    }
}

static int
v2_usage(cgroup_mgr_t *m, const char *id, struct guest_usage *u)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    if (access(dir, F_OK) < 0)
        return -ENOENT;
    /* Best effort: a file this kernel lacks leaves its fields 0. */
    uint64_t usec = 0;
    if (cgroup_read_key(dir, "cpu.stat", "usage_usec", &usec) >= 0)
        u->cpu_ns = usec * 1000;
    (void)cgroup_read_u64(dir, "memory.current", &u->memory);
    (void)cgroup_read_u64(dir, "memory.peak", &u->memory_peak);
    (void)cgroup_read_u64(dir, "memory.swap.current", &u->swap);
    _cleanup_free_ char *stat = NULL;
    if (cgroup_read(dir, "memory.stat", &stat) >= 0) {
        uint64_t anon = 0, mapped = 0;
        (void)cgroup_text_key(stat, "anon", &anon);
        (void)cgroup_text_key(stat, "file_mapped", &mapped);
        u->rss = anon + mapped;
    }
    (void)cgroup_read_u64(dir, "pids.current", &u->procs);
    (void)cgroup_read_key(dir, "pids.events", "max", &u->failcnt[USAGE_FAIL_PROCS]);
    _cleanup_free_ char *events = NULL;
    if (cgroup_read(dir, "memory.events", &events) >= 0) {
        (void)cgroup_text_key(events, "max", &u->failcnt[USAGE_FAIL_MEMORY]);
        (void)cgroup_text_key(events, "oom_kill", &u->failcnt[USAGE_FAIL_OOM]);
    }
    _cleanup_free_ char *io = NULL;
    if (cgroup_read(dir, "io.stat", &io) >= 0)
        v2_io_stat(io, u);
    return 0;
}

static int
v2_read_pids(const char *dir, pid_t **ret, size_t *n)
{
    _cleanup_free_ char *text = NULL;
    int r = cgroup_read(dir, "cgroup.procs", &text);
    if (r < 0)
        return r;
    return cgroup_parse_pids(text, ret, n);
}

static int
v2_pids(cgroup_mgr_t *m, const char *id, pid_t **ret, size_t *n)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    _cleanup_free_ pid_t *pids = NULL;
    size_t count = 0;
    int r = cgroup_tree_pids(dir, true, &pids, &count);
    if (r < 0)
        return r;
    *ret = move_ptr(pids);
    *n = count;
    return 0;
}

/* One pass of killing every process of the guest (cgroup_kill_wait repeats
 * it until none is left). A stop's kill (removing false) freezes,
 * kills each process and thaws rather than writing cgroup.kill: the guest's
 * next init, its console reader and exec helpers are cloned into this cgroup
 * (CLONE_INTO_CGROUP, spawnd.c), and kernels with the fix for the race
 * between fork and cgroup.kill (6.14+ and the stable kernels that took it,
 * Debian 12's 6.1.0-50 among them) kill every such clone into a cgroup that
 * was ever killed with cgroup.kill (proc_killed_at_birth), so each later
 * start would pay for a clone thrown away and then join by cgroup.procs,
 * under the global lock. A frozen process cannot fork, a fatal signal ends
 * it frozen or not, and the next pass reads the cgroup again. A
 * destroy (removing true) writes cgroup.kill: the directory goes right
 * after. An agent killed between the freeze and the thaw leaves the cgroup
 * frozen: the spawner thaws it before the next start's clone (spawnd.c). */
static void
v2_kill_pass(cgroup_mgr_t *m, struct cgroup_kill_one *k)
{
    _cleanup_free_ char *dir = v2_dir(m, k->id);
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    int r = v2_read_pids(dir, &pids, &n);
    /* The cgroups below the guest's (cgroup_tree_pids) are read once its
     * own is empty: the freeze, the kill and cgroup.kill reach the whole
     * subtree, and the guest is not "stopped" while a process lives in
     * any of it. Without children that costs one stat. */
    if (r == 0 && n == 0)
        r = cgroup_tree_pids(dir, false, &pids, &n);
    if (r < 0 || n == 0) {
        k->result = r == -ENOENT ? 0 : r;
        return;
    }
    if (!k->probed) {
        k->has_kill = k->removing && cgroup_file_exists(dir, "cgroup.kill");
        k->has_freeze = cgroup_file_exists(dir, "cgroup.freeze");
        k->probed = true;
    }
    k->killed = true;
    if (k->has_kill) {
        /* The kernel kills the whole subtree, forks in flight included. */
        if ((r = cgroup_write(m, dir, "cgroup.kill", "1")) < 0)
            k->result = r;
        return;
    }
    if (k->has_freeze)
        (void)cgroup_write(m, dir, "cgroup.freeze", "1");
    for (size_t i = 0; i < n; i++)
        (void)kill(pids[i], SIGKILL);
    if (k->has_freeze)
        (void)cgroup_write(m, dir, "cgroup.freeze", "0");
}

static int
v2_thaw(cgroup_mgr_t *m, const char *id)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    if (cgroup_holds(dir, "cgroup.freeze", "0"))
        return 0;
    int r = cgroup_write(m, dir, "cgroup.freeze", "0");
    if (r == -ENOENT)
        return 0; /* no cgroup, or a kernel without the freezer (before 5.2) */
    return r < 0 ? r : 1;
}

static int
v2_kill_as(cgroup_mgr_t *m, const char *id, bool removing)
{
    struct cgroup_kill_one k = {.id = id, .removing = removing};
    cgroup_kill_wait(m, &k, 1);
    return k.result;
}

static int
v2_destroy(cgroup_mgr_t *m, const char *id)
{
    int r = v2_kill_as(m, id, true);
    if (r < 0)
        return r;
    _cleanup_free_ char *dir = v2_dir(m, id);
    return cgroup_tree_rmdir(m, dir);
}

/* ---- OOM notification (a change of memory.events raises POLLPRI) ---- */

static int
v2_oom_watch(cgroup_mgr_t *m, const char *id, bool *prio)
{
    _cleanup_free_ char *dir = v2_dir(m, id);
    _cleanup_free_ char *path = xasprintf("%s/memory.events", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return -errno;
    *prio = true;
    return fdhigh_move(fd); /* held for the guest's life (fdhigh.h) */
}

static int
v2_oom_read(cgroup_mgr_t *m, const char *id, int fd, uint64_t *count)
{
    char buf[1024];
    (void)m;
    (void)id;
    /* Reading the file from its start is what re-arms the notification. */
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0)
        return errno == ENODEV ? -ENOENT : -errno;
    buf[n] = '\0';
    *count = 0;
    int r = cgroup_text_key(buf, "oom_kill", count);
    return r == -ENODATA ? 0 : r;
}

const struct cgroup_ops cgroup_v2_ops = {
    .name = "v2",
    .init = v2_init,
    .fini = v2_fini,
    .create = v2_create,
    .exists = v2_exists,
    .list = v2_list,
    .complete = v2_exists,
    .attach = v2_attach,
    .open_v2_fd = v2_open_v2_fd,
    .procs_paths = v2_procs_paths,
    .set_limits = v2_set_limits,
    .usage = v2_usage,
    .pids = v2_pids,
    .kill_pass = v2_kill_pass,
    .thaw = v2_thaw,
    .destroy = v2_destroy,
    .oom_watch = v2_oom_watch,
    .oom_read = v2_oom_read,
    .device_policy = true,
};
