#include "node/sim/sim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "common/mtime.h"
#include "common/sorted.h"

#define DEFAULT_MAX_GUESTS 1000
#define DEFAULT_EXEC_OUT   (64u << 10)
#define NOMINAL_MEMORY     (256ULL << 20) /* memory walk range when no limit is set */
#define NOMINAL_DISK       (64ULL << 20)  /* disk use when no disk limit is set */
#define NOMINAL_INODES     5000ULL        /* inodes used when no inode limit is set */
#define NOMINAL_NET_BPS    100000000ULL   /* 100 Mbit/s when no rate is set */
#define IO_BYTES_PER_SEC   (1ULL << 20)   /* disk I/O of a fully busy guest */
#define TICKS_PER_SEC      100            /* what /proc/PID/stat start times count in */

/* The limits the simulation reads, of the last applied (struct spec_limits
 * is 424 bytes with its per-device I/O caps; a million guests keep these). */
struct sim_limits {
    uint64_t memory;      /* spec limits.memory: the gauge's ceiling */
    uint64_t disk;        /* limits.disk: what the node's disk commits */
    uint64_t inodes;      /* limits.inodes */
    uint64_t procs;       /* limits.procs: the procs gauge's ceiling */
    uint64_t tcp_sockets; /* limits.tcp_sockets: the sockets gauge's ceiling */
    uint64_t net_in;      /* limits.net_in: the network counters' rate */
    uint64_t net_out;     /* limits.net_out */
    uint32_t cpu_max;     /* limits.cpu_max: the CPU counter's rate */
};

static struct sim_limits
sim_limits_of(const struct spec_limits *l)
{
    return (struct sim_limits){.memory = l->memory,
                               .disk = l->disk,
                               .inodes = l->inodes,
                               .procs = l->procs,
                               .tcp_sockets = l->tcp_sockets,
                               .net_in = l->net_in,
                               .net_out = l->net_out,
                               .cpu_max = l->cpu_max};
}

struct sim_guest {
    char id[SPEC_ID_LEN + 1]; /* the guest's id, the table key */
    enum guest_state state;   /* GUEST_STOPPED or GUEST_RUNNING */
    uint64_t halt_at_ns;      /* when a requested halt completes, 0 = none pending */
    struct sim_limits limits; /* the limits last applied */
    uint32_t n_addrs;         /* addresses last applied */
    pid_t pid;                /* fake init pid while running */
    uint64_t start_time;      /* fake init start time, clock ticks */
    uint64_t rng;             /* the guest's random stream (xorshift64*) */
    uint32_t busy;            /* per-mille of its CPU ceiling the guest uses */
    uint32_t net_busy;        /* per-mille of its network rates the guest uses */
    uint64_t disk_used;       /* bytes used on its disk, fixed at create */
    uint64_t inodes_used;     /* inodes used on its disk, fixed at create */
    uint64_t last_ns;         /* clock reading counters were last advanced to */
    uint32_t starts;          /* starts since create: the console is made of them */
    struct guest_usage u;     /* counters and the last gauges */
};

struct sim {
    struct backend base;       /* first, so backend_t * and struct sim * convert */
    struct sim_config cfg;     /* copy of the caller's config, defaults filled */
    pthread_mutex_t lock;      /* the worker and the exec lane share the table */
    struct sim_guest **guests; /* sorted by id */
    size_t n;                  /* guests used */
    size_t cap;                /* guests allocated */
    uint64_t disk_committed;   /* sum of the guests' disk limits */
    pid_t next_pid;            /* next fake pid handed out */
};

static struct sim *
to_sim(backend_t *b)
{
    return container_of(b, struct sim, base);
}

static void
unlockp(pthread_mutex_t **m)
{
    if (*m)
        pthread_mutex_unlock(*m);
}

/* Holds the backend's mutex until the end of the scope. */
#define LOCKED(s)                                                                                  \
    _cleanup_(unlockp) _unused_ pthread_mutex_t *_held =                                           \
        (pthread_mutex_lock(&(s)->lock), &(s)->lock)

static uint64_t
now_ns(const struct sim *s)
{
    return s->cfg.clock_ns ? s->cfg.clock_ns(s->cfg.clock_userdata) : time_mono_ns();
}

static uint64_t
splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t
next_rand(struct sim_guest *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 0x2545f4914f6cdd1dULL;
}

/* A number in [lo, hi]. */
static uint64_t
rand_range(struct sim_guest *g, uint64_t lo, uint64_t hi)
{
    return lo + next_rand(g) % (hi - lo + 1);
}

/* a * b / c without overflow in the product. */
static uint64_t
muldiv(uint64_t a, uint64_t b, uint64_t c)
{
    return (uint64_t)((unsigned __int128)a * b / c);
}

static const char *
guest_key(const void *elem)
{
    return (*(struct sim_guest *const *)elem)->id;
}

static size_t
find(const struct sim *s, const char *id, bool *found)
{
    return sorted_find(s->guests, s->n, sizeof(*s->guests), guest_key, id, found);
}

static struct sim_guest *
get(const struct sim *s, const char *id)
{
    bool found;
    size_t i = find(s, id, &found);
    return found ? s->guests[i] : NULL;
}

/* Advances the counters to now: CPU, I/O and network grow only while running. */
static void
account(struct sim_guest *g, uint64_t now)
{
    if (g->state == GUEST_RUNNING && now > g->last_ns) {
        uint64_t dt = now - g->last_ns;
        uint64_t ceiling = g->limits.cpu_max ? g->limits.cpu_max : 1000;
        uint64_t in = g->limits.net_in ? g->limits.net_in : NOMINAL_NET_BPS;
        uint64_t out = g->limits.net_out ? g->limits.net_out : NOMINAL_NET_BPS;
        uint64_t rd = muldiv(dt, IO_BYTES_PER_SEC * g->busy / 1000, NSEC_PER_SEC);
        uint64_t rx = muldiv(dt, in / 8 * g->net_busy / 1000, NSEC_PER_SEC);
        uint64_t tx = muldiv(dt, out / 8 * g->net_busy / 2000, NSEC_PER_SEC);

        g->u.cpu_ns += muldiv(dt, ceiling * g->busy, 1000 * 1000);
        g->u.io_read_bytes += rd;
        g->u.io_write_bytes += rd / 2;
        g->u.io_read_ops += rd / 4096;
        g->u.io_write_ops += rd / 8192;
        g->u.net_rx_bytes += rx;
        g->u.net_tx_bytes += tx;
        g->u.net_rx_packets += rx / 1000;
        g->u.net_tx_packets += tx / 1000;
    }
    if (now > g->last_ns)
        g->last_ns = now;
}

static void
halt_now(struct sim_guest *g)
{
    g->state = GUEST_STOPPED;
    g->halt_at_ns = 0;
    g->pid = 0;
    g->start_time = 0;
    g->u.memory = g->u.rss = g->u.swap = g->u.procs = g->u.tcp_sockets = 0;
}

/* Completes a requested halt whose time has come. */
static void
settle(struct sim_guest *g, uint64_t now)
{
    if (g->state == GUEST_RUNNING && g->halt_at_ns && now >= g->halt_at_ns) {
        account(g, g->halt_at_ns);
        halt_now(g);
    }
    account(g, now);
}

/* Moves the gauges one random step, within the limits. */
static void
walk_gauges(struct sim_guest *g)
{
    uint64_t top = g->limits.memory ? g->limits.memory : NOMINAL_MEMORY;
    uint64_t step = top / 20 + 1;
    uint64_t mem = g->u.memory + rand_range(g, 0, 2 * step);
    uint64_t procs_top = g->limits.procs && g->limits.procs < 32 ? g->limits.procs : 32;
    uint64_t tcp_top =
        g->limits.tcp_sockets && g->limits.tcp_sockets < 64 ? g->limits.tcp_sockets : 64;

    mem = mem > step ? mem - step : 1;
    if (mem >= top) {
        mem = top;
        if (g->limits.memory)
            g->u.failcnt[USAGE_FAIL_MEMORY]++;
    }
    g->u.memory = mem;
    if (mem > g->u.memory_peak)
        g->u.memory_peak = mem;
    g->u.rss = mem / 4 * 3;
    g->u.procs = rand_range(g, 1, procs_top);
    g->u.tcp_sockets = rand_range(g, 0, tcp_top);
}

static int
sim_probe(backend_t *b, struct node_facts *out)
{
    struct sim *s = to_sim(b);

    memset(out, 0, sizeof(*out));
    strscpy(out->kernel, "sim", sizeof(out->kernel));
    strscpy(out->cgroup, "v2", sizeof(out->cgroup));
    strscpy(out->backend, "sim", sizeof(out->backend));
    out->cpus = s->cfg.cpus;
    out->memory = s->cfg.memory;
    out->disk = s->cfg.disk;
    out->max_guests = s->cfg.max_guests;
    /* Templates: a list of names, as a real node has directories. */
    _cleanup_free_ char *list = xstrdup(s->cfg.templates);
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t && out->n_templates < PROTO_MAX_TEMPLATES;
         t = strtok_r(NULL, ",", &save))
        if (name_is_valid(t))
            strscpy(out->templates[out->n_templates++], t, sizeof(out->templates[0]));
    return 0;
}

static int
sim_create(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    bool found;
    size_t i;
    LOCKED(s);

    if (spec_validate(spec, NULL) < 0)
        return -EINVAL;
    i = find(s, spec->id, &found);
    if (found)
        return 0;
    if (s->n >= s->cfg.max_guests)
        return -ENOSPC;
    if (s->cfg.disk && s->disk_committed + spec->limits.disk > s->cfg.disk)
        return -ENOSPC;

    g = xcalloc(1, sizeof(*g));
    memcpy(g->id, spec->id, sizeof(g->id));
    memcpy(g->u.id, spec->id, sizeof(g->u.id));
    g->state = GUEST_STOPPED;
    g->limits = sim_limits_of(&spec->limits);
    g->n_addrs = spec->n_addrs;
    /* Seeded by id, not by creation order, so a guest behaves the same on any node. */
    g->rng = s->cfg.seed;
    for (const char *c = spec->id; *c; c++)
        g->rng = splitmix64(g->rng ^ (unsigned char)*c);
    g->rng |= 1; /* xorshift never leaves 0 */
    g->busy = (uint32_t)rand_range(g, 50, 600);
    g->net_busy = (uint32_t)rand_range(g, 10, 300);
    g->disk_used =
        spec->limits.disk ? muldiv(spec->limits.disk, rand_range(g, 50, 400), 1000) : NOMINAL_DISK;
    if (g->disk_used == 0)
        g->disk_used = 1;
    g->inodes_used = spec->limits.inodes ? muldiv(spec->limits.inodes, rand_range(g, 50, 400), 1000)
                                         : NOMINAL_INODES;
    if (g->inodes_used == 0)
        g->inodes_used = 1;
    g->u.disk_bytes = g->disk_used;
    g->u.disk_inodes = g->inodes_used;
    g->last_ns = now_ns(s);

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->guests = xreallocarray(s->guests, s->cap, sizeof(*s->guests));
    }
    memmove(&s->guests[i + 1], &s->guests[i], (s->n - i) * sizeof(*s->guests));
    s->guests[i] = g;
    s->n++;
    s->disk_committed += spec->limits.disk;
    return 0;
}

static int
sim_start(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids,
          struct guest_runtime *rt)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    uint64_t now = now_ns(s);
    LOCKED(s);

    g = get(s, spec->id);
    if (!g)
        return -ENOENT;
    settle(g, now);
    /* A guest already running is not a new start: the lock does not apply. */
    if (g->state == GUEST_RUNNING) {
        g->halt_at_ns = 0;
    } else {
        if (spec->flags & SPEC_FLAG_LOCK)
            return -ENOLCK;
        g->state = GUEST_RUNNING;
        g->pid = s->next_pid++;
        if (s->next_pid > 4000000)
            s->next_pid = 1000;
        g->start_time = now / (NSEC_PER_SEC / TICKS_PER_SEC);
        g->last_ns = now;
        g->u.memory = (g->limits.memory ? g->limits.memory : NOMINAL_MEMORY) / 10;
        g->starts++;
    }
    if (rt) {
        rt->pid = g->pid;
        rt->start_time = g->start_time;
    }
    return 0;
}

static int
sim_stop(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    uint64_t now = now_ns(s);
    LOCKED(s);

    g = get(s, spec->id);
    if (!g)
        return -ENOENT;
    settle(g, now);
    if (g->state != GUEST_RUNNING)
        return 0;
    if (s->cfg.stop_delay_ms == 0) {
        halt_now(g);
    } else if (!g->halt_at_ns) {
        g->halt_at_ns = now + (uint64_t)s->cfg.stop_delay_ms * NSEC_PER_MSEC;
    }
    return 0;
}

static int
sim_kill(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    uint64_t now = now_ns(s);
    LOCKED(s);

    g = get(s, spec->id);
    if (!g)
        return -ENOENT;
    settle(g, now);
    if (g->state == GUEST_RUNNING)
        halt_now(g);
    return 0;
}

static int
sim_kill_many(backend_t *b, char *const *ids, size_t n, int *res)
{
    struct sim *s = to_sim(b);
    uint64_t now = now_ns(s);
    LOCKED(s);

    for (size_t i = 0; i < n; i++) {
        struct sim_guest *g = get(s, ids[i]);
        res[i] = 0;
        if (!g)
            continue;
        settle(g, now);
        if (g->state == GUEST_RUNNING) {
            halt_now(g);
            res[i] = 1;
        }
    }
    return 0;
}

static int
sim_list(backend_t *b, char ***ids)
{
    struct sim *s = to_sim(b);
    LOCKED(s);
    char **v = xcalloc(s->n + 1, sizeof(char *));

    for (size_t i = 0; i < s->n; i++)
        v[i] = xstrdup(s->guests[i]->id);
    *ids = v;
    return 0;
}

static int
sim_destroy(backend_t *b, const struct guest_spec *spec)
{
    struct sim *s = to_sim(b);
    bool found;
    size_t i;
    LOCKED(s);

    i = find(s, spec->id, &found);
    if (!found)
        return 0;
    settle(s->guests[i], now_ns(s));
    if (s->guests[i]->state == GUEST_RUNNING)
        return -EBUSY;
    s->disk_committed -= s->guests[i]->limits.disk;
    free(s->guests[i]);
    memmove(&s->guests[i], &s->guests[i + 1], (s->n - i - 1) * sizeof(*s->guests));
    s->n--;
    return 0;
}

static int
sim_set_limits(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids,
               const struct guest_runtime *rt)
{
    struct sim *s = to_sim(b);
    const struct spec_limits *l = &spec->limits;
    struct sim_guest *g;
    LOCKED(s);

    if (spec_validate(spec, NULL) < 0)
        return -EINVAL;
    g = get(s, spec->id);
    if (!g)
        return -ENOENT;
    /* A filesystem cannot shrink below what is on it. */
    if ((l->disk && l->disk < g->disk_used) || (l->inodes && l->inodes < g->inodes_used))
        return -ENOSPC;
    if (s->cfg.disk && s->disk_committed - g->limits.disk + l->disk > s->cfg.disk)
        return -ENOSPC;
    settle(g, now_ns(s));
    s->disk_committed = s->disk_committed - g->limits.disk + l->disk;
    g->limits = sim_limits_of(l);
    if (l->memory && g->u.memory > l->memory)
        g->u.memory = l->memory;
    return 0;
}

static int
sim_apply_network(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    LOCKED(s);

    if (spec_validate(spec, NULL) < 0)
        return -EINVAL;
    g = get(s, spec->id);
    if (!g)
        return -ENOENT;
    settle(g, now_ns(s));
    /* Rates count from now on; on a stopped guest they wait for the start. */
    g->n_addrs = spec->n_addrs;
    g->limits.net_in = spec->limits.net_in;
    g->limits.net_out = spec->limits.net_out;
    return 0;
}

static int
sim_state(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
          enum guest_state *out)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    LOCKED(s);

    g = get(s, spec->id);
    if (!g) {
        *out = GUEST_ABSENT;
        return 0;
    }
    settle(g, now_ns(s));
    *out = g->state;
    /* An rt naming another init means the one the caller knew is gone. */
    if (g->state == GUEST_RUNNING && rt && rt->pid &&
        (rt->pid != g->pid || rt->start_time != g->start_time))
        *out = GUEST_STOPPED;
    return 0;
}

static int
sim_usage(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
          struct guest_usage *out)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    LOCKED(s);

    g = get(s, spec->id);
    if (!g)
        return -ENOENT;
    settle(g, now_ns(s));
    if (g->state == GUEST_RUNNING)
        walk_gauges(g);
    *out = g->u;
    out->time_ms = time_real_ms();
    return 0;
}

static int
sim_exec(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
         const struct exec_request *req, struct exec_result *res)
{
    struct sim *s = to_sim(b);
    size_t max = req->max_output ? req->max_output : DEFAULT_EXEC_OUT;
    size_t len = 0, i;
    const char *cmd;
    char *out;

    memset(res, 0, sizeof(*res));
    if (!req->argv || !req->argv[0])
        return -EINVAL;
    {
        struct sim_guest *g;
        LOCKED(s);

        g = get(s, spec->id);
        if (!g)
            return -ENOENT;
        settle(g, now_ns(s));
        if (spec->flags & SPEC_FLAG_PRIVATE)
            return -EACCES;
        if (spec->flags & SPEC_FLAG_LOCK)
            return -ENOLCK;
        if (g->state != GUEST_RUNNING)
            return -ESRCH;
    }

    cmd = strrchr(req->argv[0], '/');
    cmd = cmd ? cmd + 1 : req->argv[0];
    res->err = xstrdup("");
    if (strcmp(cmd, "false") == 0) {
        res->exit_code = 1;
        res->out = xstrdup("");
        return 0;
    }
    for (i = 0; req->argv[i]; i++)
        len += strlen(req->argv[i]) + 1;
    out = xmalloc(len + 1);
    len = 0;
    for (i = 0; req->argv[i]; i++) {
        size_t n = strlen(req->argv[i]);
        memcpy(out + len, req->argv[i], n);
        len += n;
        out[len++] = req->argv[i + 1] ? ' ' : '\n';
    }
    out[len] = '\0';
    if (len > max) {
        len = max;
        out[len] = '\0';
        res->truncated = true;
    }
    res->out = out;
    res->out_len = len;
    return 0;
}

static int
sim_shell(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
          const struct shell_request *req, struct shell_proc *out)
{
    struct sim *s = to_sim(b);
    (void)rt;
    {
        struct sim_guest *g;
        LOCKED(s);

        g = get(s, spec->id);
        if (!g)
            return -ENOENT;
        settle(g, now_ns(s));
        if (spec->flags & SPEC_FLAG_PRIVATE)
            return -EACCES;
        if (spec->flags & SPEC_FLAG_LOCK)
            return -ENOLCK;
        if (g->state != GUEST_RUNNING)
            return -ESRCH;
    }
    return sim_shell_start(spec, req, out);
}

/* The console is synthetic and costs no memory per guest: one line per start,
 * as a guest's init would print it, rebuilt on every read. */
static int
sim_console(backend_t *b, const struct guest_spec *spec, size_t max, struct console_log *out)
{
    struct sim *s = to_sim(b);
    uint32_t starts;
    {
        LOCKED(s);
        struct sim_guest *g = get(s, spec->id);
        if (!g)
            return -ENOENT;
        starts = g->starts;
    }
    *out = (struct console_log){0};
    if (starts == 0)
        return -ENOENT;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return -ENOMEM;
    for (uint32_t i = 1; i <= starts; i++)
        fprintf(f, "vfleet sim guest %s: up (start %u)\n", spec->name, i);
    fclose(f);
    out->total = len;
    size_t keep = max && max < len ? max : len;
    out->data = xmalloc(keep + 1);
    memcpy(out->data, text + len - keep, keep);
    out->data[keep] = '\0';
    out->len = keep;
    free(text);
    return 0;
}

static void
sim_free(backend_t *b)
{
    struct sim *s;

    if (!b)
        return;
    s = to_sim(b);
    for (size_t i = 0; i < s->n; i++)
        free(s->guests[i]);
    free(s->guests);
    free((char *)s->cfg.templates);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct backend_ops sim_ops = {
    .name = "sim",
    .probe = sim_probe,
    .create = sim_create,
    .start = sim_start,
    .stop = sim_stop,
    .kill = sim_kill,
    .list = sim_list,
    .kill_many = sim_kill_many,
    .destroy = sim_destroy,
    .set_limits = sim_set_limits,
    .apply_network = sim_apply_network,
    .state = sim_state,
    .usage = sim_usage,
    .exec = sim_exec,
    .shell = sim_shell,
    .console = sim_console,
    .free = sim_free,
};

backend_t *
sim_backend_new(const struct sim_config *cfg)
{
    struct sim *s = xcalloc(1, sizeof(*s));

    s->base.ops = &sim_ops;
    s->cfg = *cfg;
    s->cfg.templates = xstrdup(cfg->templates ? cfg->templates : "busybox,debian");
    if (s->cfg.max_guests == 0)
        s->cfg.max_guests = DEFAULT_MAX_GUESTS;
    pthread_mutex_init(&s->lock, NULL);
    s->next_pid = 1000;
    return &s->base;
}

int
sim_guest_crash(backend_t *b, const char *id)
{
    struct sim *s = to_sim(b);
    struct sim_guest *g;
    LOCKED(s);

    g = get(s, id);
    if (!g)
        return -ENOENT;
    settle(g, now_ns(s));
    if (g->state == GUEST_RUNNING)
        halt_now(g);
    return 0;
}
