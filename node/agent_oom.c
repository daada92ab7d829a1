/* The kernel's OOM notification for each running guest: the backend opens
 * a descriptor that wakes when the OOM killer acts in the guest (cgroup v1:
 * an eventfd on memory.oom_control; v2: POLLPRI on memory.events), the
 * agent polls it on the loop, and on a wake reads the guest's OOM kill count
 * through the backend and sends an "oom" event with it. The master emits
 * one guest.oom per kill it had not counted (a usage sample's failcnt.oom
 * counts the same kills), so a notification that fires twice, or a sample
 * that got there first, gives no second event.
 *
 * Both backend calls (open, read) run as jobs on the lifecycle lane, keyed
 * by the guest like its other jobs (they touch only its cgroup); the loop
 * only polls. While a read job holds the
 * descriptor the poll is stopped, so one wake is one read. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"

/* A guest's OOM watch; freed by its poll handle's close callback. */
struct agent_oom {
    uv_poll_t poll;            /* wakes on the notification */
    int fd;                    /* the backend's descriptor, owned */
    agent_t *agent;            /* the agent */
    struct agent_guest *guest; /* the guest, NULL once disarmed (its spec is read from it:
                                * a copy here took 17 KiB a running guest) */
    bool prio;                 /* poll for POLLPRI, else readable */
    uint64_t reported;         /* the count last sent */
    bool reading;              /* a read job holds fd */
    bool closed;               /* uv_close was called */
};

/* A backend call on the lane: open the watch, or read the count. */
struct oom_job {
    agent_t *agent;        /* the agent */
    struct agent_oom *oom; /* read: the watch (kept alive by its reading flag) */
    /* The guest's spec packed (spec_pack, owned), unpacked on the lane's
     * stack when the job runs: the startup arms every running guest's watch
     * at once, and a whole spec in each job (17 KiB) raised the heap by that
     * much a guest. */
    char *packed;
    size_t packed_len;           /* its bytes */
    char id[SPEC_ID_LEN + 1];    /* the guest */
    char name[NAME_MAX_LEN + 1]; /* its name, for the log */
    struct guest_runtime rt;     /* arm: the run being watched */
    int fd;                      /* arm: the descriptor opened, or -errno */
    bool prio;                   /* arm: its poll kind */
    uint64_t count;              /* read: the OOM kills counted */
    uint64_t reported;           /* read: the count sent before */
    int result;                  /* read: 0 or -errno */
};

/* The notification comes as the cgroup runs out of memory, the kill a
 * moment later: a read that sees no new kill looks again for a while. */
#define OOM_SETTLE_TRIES 20
#define OOM_SETTLE_MS    50

static void
oom_closed(uv_handle_t *h)
{
    struct agent_oom *o = h->data;

    close(o->fd);
    free(o);
}

static void
oom_close(struct agent_oom *o)
{
    if (o->closed)
        return;
    o->closed = true;
    uv_close((uv_handle_t *)&o->poll, oom_closed);
}

void
agent_oom_disarm(struct agent_guest *g)
{
    struct agent_oom *o = g->oom;

    if (!o)
        return;
    g->oom = NULL;
    o->guest = NULL;
    /* A read job in flight holds fd: its done closes the watch. */
    if (!o->reading)
        oom_close(o);
}

/* ---- reading ---- */

/* A job about g, its spec copied packed. */
static struct oom_job *
oom_job_new(agent_t *a, const struct agent_guest *g)
{
    struct oom_job *j = xcalloc(1, sizeof(*j));

    j->agent = a;
    j->packed = agent_guest_packed(g, &j->packed_len);
    strscpy(j->id, g->rec.spec.id, sizeof(j->id));
    strscpy(j->name, g->rec.spec.name, sizeof(j->name));
    return j;
}

static void
oom_job_free(struct oom_job *j)
{
    free(j->packed);
    free(j);
}

/* The job's spec, for the backend (on the lane thread). */
static void
oom_job_spec(const struct oom_job *j, struct guest_spec *out)
{
    agent_spec_unpack(j->packed, j->packed_len, out);
}

static void
read_run(void *arg)
{
    struct oom_job *j = arg;
    backend_t *b = j->agent->backend;
    struct guest_spec spec;

    oom_job_spec(j, &spec);
    j->result = b->ops->oom_read(b, &spec, j->oom->fd, &j->count);
    for (int i = 0; i < OOM_SETTLE_TRIES && j->result >= 0 && j->count <= j->reported; i++) {
        struct timespec ts = {.tv_nsec = OOM_SETTLE_MS * 1000000L};
        nanosleep(&ts, NULL);
        j->result = b->ops->oom_read(b, &spec, j->oom->fd, &j->count);
    }
}

static void on_wake(uv_poll_t *p, int status, int events);

static void
read_done(void *arg)
{
    struct oom_job *j = arg;
    struct agent_oom *o = j->oom;
    agent_t *a = j->agent;

    o->reading = false;
    if (!o->guest || j->result == -ENOENT) {
        if (o->guest)
            agent_oom_disarm(o->guest);
        else
            oom_close(o);
        oom_job_free(j);
        return;
    }
    if (j->result < 0) {
        log_debug("node=%s guest=%s cannot read its OOM count: %s, ignoring", a->cfg.name, j->name,
                  strerror(-j->result));
    } else if (j->count == o->reported) {
        log_debug("node=%s guest=%s OOM notification without a new kill", a->cfg.name, j->name);
    } else {
        o->reported = j->count;
        struct msg m = {.type = MSG_EVENT};
        strscpy(m.u.event.id, j->id, sizeof(m.u.event.id));
        strscpy(m.u.event.kind, "oom", sizeof(m.u.event.kind));
        m.u.event.time_ms = time_real_ms();
        m.u.event.count = j->count;
        snprintf(m.u.event.message, sizeof(m.u.event.message),
                 "the OOM killer acted in the guest (%llu kill(s) counted)",
                 (unsigned long long)j->count);
        log_notice("node=%s guest=%s OOM notification, %llu kill(s) counted", a->cfg.name, j->name,
                   (unsigned long long)j->count);
        agent_send(a, &m);
    }
    if (!a->closing)
        uv_poll_start(&o->poll, o->prio ? UV_PRIORITIZED : UV_READABLE, on_wake);
    oom_job_free(j);
}

static const struct lane_fns read_fns = {NULL, read_run, read_done};

static void
on_wake(uv_poll_t *p, int status, int events)
{
    struct agent_oom *o = p->data;

    (void)status;
    (void)events;
    uv_poll_stop(p);
    if (!o->guest || o->reading)
        return;
    struct oom_job *j = oom_job_new(o->agent, o->guest);
    j->oom = o;
    j->reported = o->reported;
    o->reading = true;
    lane_push_key(o->agent->ops, j->id, &read_fns, j);
}

/* ---- arming ---- */

static void
arm_run(void *arg)
{
    struct oom_job *j = arg;
    backend_t *b = j->agent->backend;
    struct guest_spec spec;

    oom_job_spec(j, &spec);
    j->fd = b->ops->oom_watch(b, &spec, &j->rt, &j->prio);
    /* Kills before the watch (an agent restarted) are not news. */
    if (j->fd >= 0 && b->ops->oom_read(b, &spec, j->fd, &j->count) < 0)
        j->count = 0;
}

static void
arm_done(void *arg)
{
    struct oom_job *j = arg;
    agent_t *a = j->agent;
    struct agent_guest *g = agent_guest_find(a, j->id);

    /* The run it was for may have ended, or another watch took its place. */
    if (j->fd >= 0 && (!g || a->closing || g->oom || g->rec.rt.pid != j->rt.pid)) {
        close(j->fd);
        j->fd = -ESTALE;
    }
    if (j->fd < 0) {
        if (j->fd != -ESTALE)
            log_warning("node=%s guest=%s no OOM notification: %s, ignoring", a->cfg.name, j->name,
                        strerror(-j->fd));
        oom_job_free(j);
        return;
    }
    struct agent_oom *o = xcalloc(1, sizeof(*o));
    o->fd = j->fd;
    o->agent = a;
    o->guest = g;
    o->prio = j->prio;
    o->reported = j->count;
    if (uv_poll_init(a->loop, &o->poll, o->fd) < 0) {
        close(o->fd);
        free(o);
        oom_job_free(j);
        return;
    }
    o->poll.data = o;
    g->oom = o;
    uv_poll_start(&o->poll, o->prio ? UV_PRIORITIZED : UV_READABLE, on_wake);
    oom_job_free(j);
}

static const struct lane_fns arm_fns = {NULL, arm_run, arm_done};

void
agent_oom_arm(agent_t *a, struct agent_guest *g)
{
    if (!a->backend->ops->oom_watch || !a->backend->ops->oom_read || g->oom || a->closing)
        return;
    struct oom_job *j = oom_job_new(a, g);
    j->rt = g->rec.rt;
    lane_push_key(a->ops, j->id, &arm_fns, j);
}
