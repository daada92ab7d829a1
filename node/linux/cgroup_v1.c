/* The cgroup v1 driver: one directory per guest in each controller hierarchy.
 *
 * Limits (spec_limits field -> file, 0 = unset -> the unlimited value):
 *   procs      -> pids.max                      ("max")
 *   memory     -> memory.limit_in_bytes         ("-1")
 *   memory+swap-> memory.memsw.limit_in_bytes   ("-1" when memory or swap is unset)
 *   rss        -> memory.soft_limit_in_bytes    ("-1")
 *   cpu_weight -> cpu.shares = weight*1024/100, clamped 2..262144 (0 -> 1024)
 *   cpu_max    -> cpu.cfs_period_us 100000, cpu.cfs_quota_us = millicores*100 ("-1")
 *   cpu_burst  -> cpu.cfs_burst_us = millicores*100, at most the quota (if the file exists)
 *   io_weight  -> blkio.weight (or blkio.bfq.weight) = weight*5 clamped 10..1000, so the
 *                 v2 default 100 lands on the v1 default 500; skipped when neither exists
 *   io_devs    -> blkio.throttle.{read,write}_{bps,iops}_device "maj:min value"
 * Device policy (at create): devices.deny "a", then devices.allow of the fixed list. */
#include <errno.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/linux/cgroup_driver.h"
#include "node/linux/cgroup_files.h"
#include "node/linux/fdwalk.h"
#include "node/linux/fdhigh.h"

enum v1_ctrl {
    V1_CPU,
    V1_CPUACCT,
    V1_CPUSET,
    V1_MEMORY,
    V1_PIDS,
    V1_BLKIO,
    V1_DEVICES,
    V1_FREEZER,
    V1_N
};

static const char *const v1_ctrl_names[V1_N] = {
    [V1_CPU] = "cpu",         [V1_CPUACCT] = "cpuacct", [V1_CPUSET] = "cpuset",
    [V1_MEMORY] = "memory",   [V1_PIDS] = "pids",       [V1_BLKIO] = "blkio",
    [V1_DEVICES] = "devices", [V1_FREEZER] = "freezer",
};

/* The device nodes a guest may use: what a minimal /dev needs, nothing that
 * reaches host disks. */
static const char *const v1_allowed_devices[] = {
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",   "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
};

struct v1_state {
    char *hier[V1_N];      /* mount directory of each controller's hierarchy, NULL when absent */
    bool first[V1_N];      /* this controller is the first of its hierarchy (visit it once) */
    cgroup_files_t *files; /* the usage files held open per guest (v1_ufiles) */
};

/* The files v1_usage reads each interval. */
enum v1_ufile {
    UF_CPU,
    UF_MEM,
    UF_MEM_PEAK,
    UF_MEM_FAIL,
    UF_OOM,
    UF_STAT,
    UF_PIDS,
    UF_PIDS_EVENTS,
    UF_IO_BYTES,
    UF_IO_OPS,
    UF__N
};

static const struct {
    enum v1_ctrl ctrl; /* the hierarchy it is in */
    const char *name;  /* the file */
} v1_ufiles[UF__N] = {
    [UF_CPU] = {V1_CPUACCT, "cpuacct.usage"},
    [UF_MEM] = {V1_MEMORY, "memory.usage_in_bytes"},
    [UF_MEM_PEAK] = {V1_MEMORY, "memory.max_usage_in_bytes"},
    [UF_MEM_FAIL] = {V1_MEMORY, "memory.failcnt"},
    [UF_OOM] = {V1_MEMORY, "memory.oom_control"},
    [UF_STAT] = {V1_MEMORY, "memory.stat"},
    [UF_PIDS] = {V1_PIDS, "pids.current"},
    [UF_PIDS_EVENTS] = {V1_PIDS, "pids.events"},
    [UF_IO_BYTES] = {V1_BLKIO, "blkio.throttle.io_service_bytes"},
    [UF_IO_OPS] = {V1_BLKIO, "blkio.throttle.io_serviced"},
};

static struct v1_state *
v1(cgroup_mgr_t *m)
{
    return m->driver;
}

/* <hierarchy>/<prefix>/<id>, or <hierarchy>/<prefix> when id is NULL; NULL when the
 * controller is not mounted. */
static char *
v1_dir(cgroup_mgr_t *m, enum v1_ctrl c, const char *id)
{
    struct v1_state *s = v1(m);
    if (!s->hier[c])
        return NULL;
    if (!id)
        return xasprintf("%s/%s", s->hier[c], m->prefix);
    return xasprintf("%s/%s/%s", s->hier[c], m->prefix, id);
}

static int
v1_init(cgroup_mgr_t *m)
{
    struct v1_state *s = xcalloc(1, sizeof(*s));
    m->driver = s;
    s->files = cgroup_files_new(UF__N);
    int found = 0;
    for (int c = 0; c < V1_N; c++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", m->root, v1_ctrl_names[c]);
        struct statfs sfs;
        if (statfs(p, &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC) {
            log_debug("cgroup: v1 controller %s not mounted at %s, ignoring", v1_ctrl_names[c], p);
            continue;
        }
        /* "cpu" and "cpuacct" are often symlinks to one "cpu,cpuacct" mount. */
        char *real = realpath(p, NULL);
        if (!real)
            return -errno;
        s->hier[c] = real;
        s->first[c] = true;
        for (int o = 0; o < c; o++)
            if (s->hier[o] && strcmp(s->hier[o], real) == 0)
                s->first[c] = false;
        found++;
    }
    return found ? 0 : -ENOMEDIUM;
}

static void
v1_fini(cgroup_mgr_t *m)
{
    struct v1_state *s = v1(m);
    if (!s)
        return;
    for (int c = 0; c < V1_N; c++)
        free(s->hier[c]);
    cgroup_files_free(&s->files);
    free(s);
    m->driver = NULL;
}

/* cpuset refuses tasks until cpus and mems are set; copy them from the parent. */
static int
v1_cpuset_inherit(cgroup_mgr_t *m, const char *parent, const char *dir)
{
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *cur = NULL, *want = NULL;
        int r = cgroup_read(dir, files[i], &cur);
        if (r < 0)
            return r;
        if (cur[0] != '\n' && cur[0] != '\0')
            continue;
        r = cgroup_read(parent, files[i], &want);
        if (r < 0)
            return r;
        want[strcspn(want, "\n")] = '\0';
        r = cgroup_write(m, dir, files[i], want);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool
v1_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

/* Applies the device policy unless devices.list already shows exactly it:
 * rewriting it on a running guest would deny everything for a moment. */
static int
v1_devices_apply(cgroup_mgr_t *m, const char *dir)
{
    _cleanup_free_ char *list = NULL;
    int r = cgroup_read(dir, "devices.list", &list);
    if (r < 0)
        return r;
    size_t lines = 0;
    for (const char *p = list; *p; p++)
        lines += *p == '\n';
    bool same = lines == ARRAY_SIZE(v1_allowed_devices);
    for (size_t i = 0; same && i < ARRAY_SIZE(v1_allowed_devices); i++)
        same = v1_has_line(list, v1_allowed_devices[i]);
    if (same)
        return 0;
    r = cgroup_write(m, dir, "devices.deny", "a");
    if (r < 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(v1_allowed_devices); i++) {
        r = cgroup_write(m, dir, "devices.allow", v1_allowed_devices[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
v1_create(cgroup_mgr_t *m, const char *id)
{
    struct v1_state *s = v1(m);
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *parent = v1_dir(m, c, NULL);
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        int r = cgroup_mkdir(m, parent);
        if (r < 0)
            return r;
        if (c == V1_CPUSET && (r = v1_cpuset_inherit(m, s->hier[c], parent)) < 0)
            return r;
        /* A guest's cpuset then gets its parent's cpus and mems at mkdir:
         * writing them (v1_cpuset_inherit) rebuilt the host's scheduling
         * domains at every create, a walk of every cpuset on the host. */
        if (c == V1_CPUSET &&
            (r = cgroup_write_changed(m, parent, "cgroup.clone_children", "1")) < 0)
            return r;
        r = cgroup_mkdir(m, dir);
        if (r < 0)
            return r;
        if (c == V1_CPUSET && (r = v1_cpuset_inherit(m, parent, dir)) < 0)
            return r;
        if (c == V1_DEVICES && (r = v1_devices_apply(m, dir)) < 0)
            return r;
    }
    return 0;
}

static bool
v1_exists(cgroup_mgr_t *m, const char *id)
{
    struct v1_state *s = v1(m);
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        if (access(dir, F_OK) == 0)
            return true;
    }
    return false;
}

static int
v1_list(cgroup_mgr_t *m, char ***ret, size_t *n)
{
    struct v1_state *s = v1(m);
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, NULL);
        int r = cgroup_list_dir(dir, ret, n);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool
v1_complete(cgroup_mgr_t *m, const char *id)
{
    struct v1_state *s = v1(m);
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        if (access(dir, F_OK) < 0)
            return false;
    }
    return true;
}

static int
v1_attach(cgroup_mgr_t *m, const char *id, pid_t pid)
{
    struct v1_state *s = v1(m);
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        int r = cgroup_writef(m, dir, "cgroup.procs", "%d", (int)pid);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
v1_open_v2_fd(cgroup_mgr_t *m, const char *id)
{
    return -EOPNOTSUPP;
}

static int
v1_procs_paths(cgroup_mgr_t *m, const char *id, char ***ret)
{
    struct v1_state *s = v1(m);
    char **v = xcalloc(V1_N + 1, sizeof(char *));
    size_t n = 0;
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        v[n++] = xasprintf("%s/cgroup.procs", dir);
    }
    *ret = v;
    return 0;
}

/* A limit value in v1 syntax: "-1" for unset. */
static void
v1_fmt_limit(char *buf, size_t len, uint64_t v)
{
    if (v == 0 || v == UINT64_MAX)
        snprintf(buf, len, "-1");
    else
        snprintf(buf, len, "%" PRIu64, v);
}

static int
v1_set_memory(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    _cleanup_free_ char *dir = v1_dir(m, V1_MEMORY, id);
    if (!dir)
        return (l->memory || l->rss || l->swap) ? -EOPNOTSUPP : 0;

    char mem[32], memsw[32], soft[32];
    uint64_t want_memsw = 0;
    if (l->memory && l->swap)
        want_memsw = l->memory > UINT64_MAX - l->swap ? 0 : l->memory + l->swap;
    v1_fmt_limit(mem, sizeof(mem), l->memory);
    v1_fmt_limit(memsw, sizeof(memsw), want_memsw);
    v1_fmt_limit(soft, sizeof(soft), l->rss);

    int r;
    if (!cgroup_file_exists(dir, "memory.memsw.limit_in_bytes")) {
        if (l->swap)
            return -EOPNOTSUPP;
        r = cgroup_write(m, dir, "memory.limit_in_bytes", mem);
    } else {
        /* The kernel keeps limit <= memsw.limit at every step: when the new
         * memory limit would pass the current memsw limit, raise memsw first;
         * otherwise lower (or set) the memory limit first. */
        uint64_t cur_memsw;
        r = cgroup_read_u64(dir, "memory.memsw.limit_in_bytes", &cur_memsw);
        if (r < 0)
            return r;
        uint64_t new_mem = l->memory ? l->memory : UINT64_MAX;
        if (new_mem > cur_memsw) {
            r = cgroup_write(m, dir, "memory.memsw.limit_in_bytes", memsw);
            if (r >= 0)
                r = cgroup_write(m, dir, "memory.limit_in_bytes", mem);
        } else {
            r = cgroup_write(m, dir, "memory.limit_in_bytes", mem);
            if (r >= 0)
                r = cgroup_write(m, dir, "memory.memsw.limit_in_bytes", memsw);
        }
    }
    if (r < 0)
        return r;
    return cgroup_write(m, dir, "memory.soft_limit_in_bytes", soft);
}

static uint64_t
v1_clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int
v1_set_cpu(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    _cleanup_free_ char *dir = v1_dir(m, V1_CPU, id);
    if (!dir)
        return (l->cpu_weight || l->cpu_max || l->cpu_burst) ? -EOPNOTSUPP : 0;
    uint64_t weight = l->cpu_weight ? l->cpu_weight : 100;
    int r =
        cgroup_writef(m, dir, "cpu.shares", "%" PRIu64, v1_clamp(weight * 1024 / 100, 2, 262144));
    if (r < 0)
        return r;
    /* The kernel refuses a burst above the quota, so clear the burst before
     * the quota changes and set it after. The smallest quota is 1 ms. Each
     * bandwidth write walks every CPU cgroup on the host (the kernel checks
     * the whole tree's quotas, tg_set_bandwidth) and a start sets the limits
     * twice: files that hold the value already are not written. */
    bool burst = cgroup_file_exists(dir, "cpu.cfs_burst_us");
    if (!burst && l->cpu_burst)
        return -EOPNOTSUPP;
    uint64_t quota = l->cpu_max ? v1_clamp((uint64_t)l->cpu_max * 100, 1000, UINT32_MAX) : 0;
    char want[24], bwant[24];
    if (quota)
        snprintf(want, sizeof(want), "%" PRIu64, quota);
    else
        snprintf(want, sizeof(want), "-1");
    bool same = cgroup_holds(dir, "cpu.cfs_quota_us", want);
    if (!same && burst && (r = cgroup_write_changed(m, dir, "cpu.cfs_burst_us", "0")) < 0)
        return r;
    if ((r = cgroup_write_changed(m, dir, "cpu.cfs_period_us", "100000")) < 0)
        return r;
    if (!same && (r = cgroup_write(m, dir, "cpu.cfs_quota_us", want)) < 0)
        return r;
    if (burst) {
        uint64_t b = quota ? (uint64_t)l->cpu_burst * 100 : 0;
        snprintf(bwant, sizeof(bwant), "%" PRIu64, b > quota ? quota : b);
        r = cgroup_write_changed(m, dir, "cpu.cfs_burst_us", bwant);
    }
    return r < 0 ? r : 0;
}

static const struct spec_io_dev *
v1_find_dev(const struct spec_limits *l, unsigned maj, unsigned min)
{
    for (uint32_t i = 0; i < l->n_io_devs; i++)
        if (l->io_devs[i].major == maj && l->io_devs[i].minor == min)
            return &l->io_devs[i];
    return NULL;
}

static uint64_t
v1_dev_value(const struct spec_io_dev *d, int which)
{
    switch (which) {
    case 0:
        return d->read_bps;
    case 1:
        return d->write_bps;
    case 2:
        return d->read_iops;
    default:
        return d->write_iops;
    }
}

static int
v1_set_blkio(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    _cleanup_free_ char *dir = v1_dir(m, V1_BLKIO, id);
    if (!dir)
        return l->n_io_devs ? -EOPNOTSUPP : 0;
    int r;
    uint64_t weight = v1_clamp((uint64_t)(l->io_weight ? l->io_weight : 100) * 5, 10, 1000);
    if (cgroup_file_exists(dir, "blkio.weight"))
        r = cgroup_writef(m, dir, "blkio.weight", "%" PRIu64, weight);
    else if (cgroup_file_exists(dir, "blkio.bfq.weight"))
        r = cgroup_writef(m, dir, "blkio.bfq.weight", "%" PRIu64, weight);
    else {
        log_debug("cgroup: %s has no blkio weight (no BFQ/CFQ), io_weight ignored", dir);
        r = 0;
    }
    if (r < 0)
        return r;

    static const char *const files[] = {
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device",
        "blkio.throttle.write_iops_device",
    };
    for (int f = 0; f < 4; f++) {
        /* Remove the caps on devices the spec no longer lists. */
        _cleanup_free_ char *cur = NULL;
        r = cgroup_read(dir, files[f], &cur);
        if (r < 0)
            return r;
        for (char *line = cur; line && *line;) {
            unsigned maj, min;
            const struct spec_io_dev *d;
            if (sscanf(line, "%u:%u", &maj, &min) == 2 &&
                (!(d = v1_find_dev(l, maj, min)) || v1_dev_value(d, f) == 0)) {
                r = cgroup_writef(m, dir, files[f], "%u:%u 0", maj, min);
                if (r < 0)
                    return r;
            }
            line = strchr(line, '\n');
            if (line)
                line++;
        }
        for (uint32_t i = 0; i < l->n_io_devs; i++) {
            const struct spec_io_dev *d = &l->io_devs[i];
            uint64_t v = v1_dev_value(d, f);
            if (v == 0)
                continue;
            r = cgroup_writef(m, dir, files[f], "%u:%u %" PRIu64, d->major, d->minor, v);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int
v1_set_limits(cgroup_mgr_t *m, const char *id, const struct spec_limits *l)
{
    if (!v1_exists(m, id))
        return -ENOENT;
    _cleanup_free_ char *pids = v1_dir(m, V1_PIDS, id);
    int r;
    if (pids) {
        if (l->procs)
            r = cgroup_writef(m, pids, "pids.max", "%" PRIu64, l->procs);
        else
            r = cgroup_write(m, pids, "pids.max", "max");
        if (r < 0)
            return r;
    } else if (l->procs)
        return -EOPNOTSUPP;
    if ((r = v1_set_memory(m, id, l)) < 0)
        return r;
    if ((r = v1_set_cpu(m, id, l)) < 0)
        return r;
    return v1_set_blkio(m, id, l);
}

/* Sums the "maj:min Read N" and "maj:min Write N" lines of a blkio stat file. */
static void
v1_blkio_sum(const char *text, uint64_t *rd, uint64_t *wr)
{
    for (const char *line = text; line && *line;) {
        unsigned maj, min;
        char op[16];
        uint64_t v;
        if (sscanf(line, "%u:%u %15s %" SCNu64, &maj, &min, op, &v) == 4) {
            if (strcmp(op, "Read") == 0)
                *rd += v;
            else if (strcmp(op, "Write") == 0)
                *wr += v;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
}

/* Usage file k of guest id into buf: held open after the first read. */
static ssize_t
v1_ufile_read(cgroup_mgr_t *m, const char *id, enum v1_ufile k, char *buf, size_t size)
{
    struct v1_state *s = v1(m);
    ssize_t n = cgroup_files_pread(s->files, id, k, buf, size);

    if (n != -EBADF)
        return n;
    _cleanup_free_ char *dir = v1_dir(m, v1_ufiles[k].ctrl, id);
    if (!dir)
        return -ENOENT;
    _cleanup_free_ char *path = xasprintf("%s/%s", dir, v1_ufiles[k].name);
    return cgroup_files_open(s->files, id, k, path, buf, size);
}

/* The number of a one-line file's text; leaves *v when it is not one. */
static void
v1_text_u64(const char *text, uint64_t *v)
{
    char *end;

    errno = 0;
    unsigned long long x = strtoull(text, &end, 10);
    if (errno == 0 && end != text && (*end == '\n' || *end == '\0') && *text != '-')
        *v = x;
}

/* The number in usage file k (one line); leaves *v when unreadable. */
static void
v1_ufile_u64(cgroup_mgr_t *m, const char *id, enum v1_ufile k, uint64_t *v)
{
    char buf[64];

    if (v1_ufile_read(m, id, k, buf, sizeof(buf)) >= 0)
        v1_text_u64(buf, v);
}

static int
v1_usage(cgroup_mgr_t *m, const char *id, struct guest_usage *u)
{
    char buf[8192];

    /* A held file that reads is the proof the cgroup is there; else look. */
    if (v1_ufile_read(m, id, UF_CPU, buf, sizeof(buf)) >= 0)
        v1_text_u64(buf, &u->cpu_ns);
    else if (!v1_exists(m, id))
        return -ENOENT;
    /* Every read is best effort: a controller or file this kernel lacks leaves 0. */
    v1_ufile_u64(m, id, UF_MEM, &u->memory);
    v1_ufile_u64(m, id, UF_MEM_PEAK, &u->memory_peak);
    v1_ufile_u64(m, id, UF_MEM_FAIL, &u->failcnt[USAGE_FAIL_MEMORY]);
    if (v1_ufile_read(m, id, UF_OOM, buf, sizeof(buf)) >= 0)
        (void)cgroup_text_key(buf, "oom_kill", &u->failcnt[USAGE_FAIL_OOM]);
    if (v1_ufile_read(m, id, UF_STAT, buf, sizeof(buf)) >= 0) {
        uint64_t rss = 0, mapped = 0;
        (void)cgroup_text_key(buf, "total_rss", &rss);
        (void)cgroup_text_key(buf, "total_mapped_file", &mapped);
        u->rss = rss + mapped;
        (void)cgroup_text_key(buf, "total_swap", &u->swap);
    }
    v1_ufile_u64(m, id, UF_PIDS, &u->procs);
    if (v1_ufile_read(m, id, UF_PIDS_EVENTS, buf, sizeof(buf)) >= 0)
        (void)cgroup_text_key(buf, "max", &u->failcnt[USAGE_FAIL_PROCS]);
    if (v1_ufile_read(m, id, UF_IO_BYTES, buf, sizeof(buf)) >= 0)
        v1_blkio_sum(buf, &u->io_read_bytes, &u->io_write_bytes);
    if (v1_ufile_read(m, id, UF_IO_OPS, buf, sizeof(buf)) >= 0)
        v1_blkio_sum(buf, &u->io_read_ops, &u->io_write_ops);
    return 0;
}

/* The union of cgroup.procs over every hierarchy (a process half attached
 * still belongs to the guest), each with the cgroups below the guest's
 * (cgroup_tree_pids: a process moved into one of them in any hierarchy is
 * still the guest's). Missing directories count as empty. */
static int
v1_all_pids(cgroup_mgr_t *m, const char *id, pid_t **ret, size_t *n)
{
    struct v1_state *s = v1(m);
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        int r = cgroup_tree_pids(dir, true, ret, n);
        if (r == -ENOENT)
            continue;
        if (r < 0)
            return r;
    }
    return 0;
}

/* The processes in the guest's cgroup of one hierarchy (pids, else
 * memory), and with tree those of the cgroups below it. */
static int
v1_pids_of(cgroup_mgr_t *m, const char *id, bool tree, pid_t **ret, size_t *n)
{
    _cleanup_free_ char *dir = v1_dir(m, V1_PIDS, id);
    if (!dir)
        dir = v1_dir(m, V1_MEMORY, id);
    if (!dir)
        return -EOPNOTSUPP;
    _cleanup_free_ char *text = NULL;
    int r = cgroup_read(dir, "cgroup.procs", &text);
    if (r < 0)
        return r;
    _cleanup_free_ pid_t *pids = NULL;
    size_t count = 0;
    if ((r = cgroup_parse_pids(text, &pids, &count)) < 0)
        return r;
    if (tree && (r = cgroup_tree_pids(dir, false, &pids, &count)) < 0 && r != -ENOENT)
        return r;
    *ret = move_ptr(pids);
    *n = count;
    return 0;
}

static int
v1_pids(cgroup_mgr_t *m, const char *id, pid_t **ret, size_t *n)
{
    return v1_pids_of(m, id, true, ret, n);
}

static int
v1_thaw_one(int dirfd, const char *name, const struct stat *st, void *userdata)
{
    if (!S_ISDIR(st->st_mode))
        return 0;
    _cleanup_close_ int dfd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int fd =
        dfd < 0 ? -1 : openat(dfd, "freezer.state", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    /* Best effort, as the guest's own thaw: a cgroup gone since is fine. */
    if (fd >= 0)
        (void)!write(fd, "THAWED", 6);
    return 0;
}

/* Thaws the freezer cgroups below the guest's: the v1 freezer keeps one
 * that froze itself (freezer.self_freezing) frozen through its parent's
 * thaw, and a killed process there does not die until it thaws. */
static void
v1_thaw_below(const char *freezer)
{
    if (!cgroup_has_children(freezer))
        return;
    int fd = open(freezer, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        (void)fdwalk_dirs(fd, v1_thaw_one, NULL);
}

/* One pass of a kill (cgroup_kill_wait repeats it until none is left).
 * While the killed die, one hierarchy's list says whether to wait on (every
 * process of the guest is in all of them: the spawner and exec join each);
 * each list read builds a sorted pid array in the kernel. Every hierarchy,
 * with the cgroups below the guest's in it, is read before the answer
 * "empty" (v1_all_pids); the freezer is hierarchical, so the freeze holds
 * the processes of those cgroups too. */
static void
v1_kill_pass(cgroup_mgr_t *m, struct cgroup_kill_one *k)
{
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    for (;;) {
        int r = k->all ? v1_all_pids(m, k->id, &pids, &n) : v1_pids_of(m, k->id, false, &pids, &n);
        if ((r == -ENOENT || r == -EOPNOTSUPP) && !k->all) {
            k->all = true;
            continue;
        }
        if (r < 0) {
            k->result = r == -ENOENT ? 0 : r;
            return;
        }
        if (n == 0 && !k->all) {
            k->all = true;
            continue;
        }
        break;
    }
    if (n == 0) {
        k->result = 0;
        return;
    }
    /* What an all-hierarchy read found, or what outlived a pass, may be
     * below the guest's cgroup, in a freezer cgroup frozen on its own. */
    bool below = k->all || k->killed;
    k->all = false;
    k->killed = true;
    _cleanup_free_ char *freezer = v1_dir(m, V1_FREEZER, k->id);
    if (freezer && access(freezer, F_OK) < 0) {
        free(freezer);
        freezer = NULL;
    }
    /* Frozen, the guest cannot fork new processes between our read of
     * cgroup.procs and the kills; the killed ones die at the thaw. */
    if (freezer)
        (void)cgroup_write(m, freezer, "freezer.state", "FROZEN");
    for (size_t i = 0; i < n; i++)
        (void)kill(pids[i], SIGKILL);
    if (freezer) {
        (void)cgroup_write(m, freezer, "freezer.state", "THAWED");
        if (below)
            v1_thaw_below(freezer);
    }
}

static int
v1_kill(cgroup_mgr_t *m, const char *id)
{
    struct cgroup_kill_one k = {.id = id};
    cgroup_kill_wait(m, &k, 1);
    return k.result;
}

static int
v1_thaw(cgroup_mgr_t *m, const char *id)
{
    _cleanup_free_ char *dir = v1_dir(m, V1_FREEZER, id);
    if (!dir || cgroup_holds(dir, "freezer.state", "THAWED"))
        return 0;
    int r = cgroup_write(m, dir, "freezer.state", "THAWED");
    if (r == -ENOENT)
        return 0;
    return r < 0 ? r : 1;
}

static int
v1_destroy(cgroup_mgr_t *m, const char *id)
{
    struct v1_state *s = v1(m);
    /* A destroy comes after the kill: the guest is empty and the kernel
     * removes an empty cgroup (an rmdir of one with processes or with
     * cgroups below it fails with EBUSY, which changes nothing; then the
     * kill and cgroup_tree_rmdir). Reading every process list again to
     * learn what the rmdir says cost six reads per destroy. */
    bool empty = !m->hooks.unpopulate;
    for (int c = 0; c < V1_N && empty; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        empty = rmdir(dir) == 0 || errno == ENOENT;
    }
    if (empty) {
        cgroup_files_forget(s->files, id);
        return 0;
    }
    int r = v1_kill(m, id);
    if (r < 0)
        return r;
    cgroup_files_forget(s->files, id);
    int ret = 0;
    for (int c = 0; c < V1_N; c++) {
        if (!s->hier[c] || !s->first[c])
            continue;
        _cleanup_free_ char *dir = v1_dir(m, c, id);
        r = cgroup_tree_rmdir(m, dir);
        if (r < 0 && ret == 0)
            ret = r;
    }
    return ret;
}

/* ---- OOM notification (memory.oom_control through cgroup.event_control) ---- */

static int
v1_oom_watch(cgroup_mgr_t *m, const char *id, bool *prio)
{
    _cleanup_free_ char *mem = v1_exists(m, id) ? v1_dir(m, V1_MEMORY, id) : NULL;
    if (!mem)
        return -ENOENT;
    _cleanup_free_ char *path = xasprintf("%s/memory.oom_control", mem);
    _cleanup_close_ int ctl = open(path, O_RDONLY | O_CLOEXEC);
    if (ctl < 0)
        return -errno;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return -errno;
    /* The registration holds the eventfd; the control file may close. */
    int r = cgroup_writef(m, mem, "cgroup.event_control", "%d %d", efd, ctl);
    if (r < 0) {
        close(efd);
        return r;
    }
    *prio = false;
    /* The registration holds the eventfd, not its number: move it high. */
    return fdhigh_move(efd);
}

static int
v1_oom_read(cgroup_mgr_t *m, const char *id, int fd, uint64_t *count)
{
    uint64_t n;
    /* Drains the eventfd; it also fires when the cgroup goes away. */
    while (read(fd, &n, sizeof(n)) < 0 && errno == EINTR)
        ;
    _cleanup_free_ char *mem = v1_exists(m, id) ? v1_dir(m, V1_MEMORY, id) : NULL;
    if (!mem)
        return -ENOENT;
    *count = 0;
    int r = cgroup_read_key(mem, "memory.oom_control", "oom_kill", count);
    return r == -ENODATA ? 0 : r;
}

const struct cgroup_ops cgroup_v1_ops = {
    .name = "v1",
    .init = v1_init,
    .fini = v1_fini,
    .create = v1_create,
    .exists = v1_exists,
    .list = v1_list,
    .complete = v1_complete,
    .attach = v1_attach,
    .open_v2_fd = v1_open_v2_fd,
    .procs_paths = v1_procs_paths,
    .set_limits = v1_set_limits,
    .usage = v1_usage,
    .pids = v1_pids,
    .kill_pass = v1_kill_pass,
    .thaw = v1_thaw,
    .destroy = v1_destroy,
    .oom_watch = v1_oom_watch,
    .oom_read = v1_oom_read,
    .device_policy = true,
};
