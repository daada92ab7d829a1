/* The agent's jobs: backend operations queued on a lane (node/lane.h) and
 * run on libuv's thread pool, so the loop never blocks on mkfs or mount.
 *
 * Each kind is a {run, done} pair in job_ops[]. run is on a thread-pool
 * thread and touches only the job's own copies (spec, runtime, payload) and
 * the backend; done is back on the loop thread and alone records the outcome
 * in the guest table and the store, then answers the master. Lifecycle jobs
 * share one lane keyed by guest: one guest's jobs run one at a time in
 * arrival order; with a backend that allows it (parallel_guests), distinct
 * guests' jobs run at once, up to the lane's width, except the operations
 * that reach what guests share (network, stop, kill, destroy), which take
 * serial_lock; jobs about no one guest (usage) run alone. Exec has a lane of
 * its own (backend.h allows it to run alongside). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"
#include "proto/spec_pack.h"

/* What a queued backend operation does. */
enum job_kind {
    JOB_APPLY,   /* create if absent, then apply limits */
    JOB_START,   /* start init */
    JOB_STOP,    /* send the halt signal */
    JOB_KILL,    /* SIGKILL the guest's cgroup */
    JOB_DESTROY, /* kill if running, then remove everything */
    JOB_EXEC,    /* run a command inside */
    JOB_USAGE,   /* sample every running guest */
    JOB_CONSOLE, /* read the tail of a guest's console */
    JOB__MAX
};

/* One backend operation. The job owns copies of everything its run reads,
 * so the loop thread may change guests meanwhile. The spec waits packed (a
 * few hundred bytes): run gets it unpacked on the pool thread's stack. A
 * job holding the whole 17 KB struct guest_spec left a burst of creates'
 * heap in holes of a job's size, each freed after the small blocks the
 * create keeps were carved beside it (docs/performance.md, "Jobs that
 * carry the spec packed"). */
struct job {
    agent_t *agent;              /* back pointer for done */
    enum job_kind kind;          /* index into job_ops */
    uint64_t ref;                /* request id to answer, 0 for internal jobs */
    bool fake_pids;              /* the agent's cfg.fake_pids, read by run */
    char id[SPEC_ID_LEN + 1];    /* the guest's id, "" for a job about no guest (usage) */
    char name[NAME_MAX_LEN + 1]; /* its name, for logs */
    char *packed;                /* its spec as of queueing, spec_pack'd (owned; NULL for usage) */
    size_t packed_len;           /* packed's bytes */
    struct guest_runtime rt;     /* runtime in, and out of start */
    struct guest_ids ids;        /* the guest's uid block (its store record) */
    int result;                  /* backend return */
    char errtext[ERRTEXT_MAX];   /* the backend's detail when result < 0 */
    union {
        struct {
            uint64_t generation; /* the spec's (the one applied) */
            bool existed;        /* the guest was already created */
            bool start;          /* guest.apply.start: start it after the apply */
            int start_result;    /* the start's backend return, 1 = not tried */
        } apply;
        struct {
            bool soft;    /* a failure is acked (running false), not nacked */
            bool dropped; /* the node's own, no longer wanted as it left the queue */
        } start;
        struct {
            enum guest_state after; /* fake_pids: the state after the halt signal */
        } stop;
        struct {
            enum guest_state after;  /* fake_pids: the state after the kill */
            struct guest_usage last; /* the run's last network counters */
            bool have_last;          /* last was read and is to be folded */
        } kill;
        struct {
            struct msg_guest_exec req; /* the request (argv owned) */
            struct exec_result res;    /* the result (buffers owned) */
            bool frozen;    /* a move's freeze came while it waited in the lane: refused */
            bool cancelled; /* a move's freeze came while it ran: cancel_fd written */
            int cancel_fd;  /* an eventfd the backend's wait polls, -1 = none */
        } exec;
        struct {
            uint32_t max;           /* bytes asked for */
            struct console_log log; /* what the ring holds (data owned) */
        } console;
        struct {
            size_t n;                  /* guests sampled */
            char **specs;              /* their specs, packed (spec_pack; owned): a
                                        * node's every running guest at once */
            size_t *spec_lens;         /* bytes of each */
            struct guest_runtime *rts; /* their runtimes (owned) */
            struct guest_usage *out;   /* one sample per guest (owned) */
        } usage;
    } u; /* the kind's own payload */
};

/* What a job takes from its guest when it leaves the queue (job_start). */
enum job_fresh {
    FRESH_NONE, /* nothing: the copies made at queueing are the ones to use */
    FRESH_RT,   /* the runtime (apply brings its own, newer spec) */
    FRESH_ALL,  /* spec and runtime */
};

/* A job kind. */
struct job_ops {
    const char *name;     /* for logs */
    bool exec_lane;       /* runs on the exec lane, else on the lifecycle lane */
    enum job_fresh fresh; /* what to take from the guest at start */
    /* On a thread-pool thread: sets j->result (and the payload's outputs).
     * s is the job's spec unpacked (usage: room to unpack each guest's). */
    void (*run)(struct job *j, backend_t *b, struct guest_spec *s);
    /* On the loop thread; g is the job's guest if still in the table, else NULL. */
    void (*done)(agent_t *a, struct job *j, struct agent_guest *g);
    /* Frees the payload; NULL when it owns nothing. */
    void (*clear)(struct job *j);
};

static const struct job_ops job_ops[JOB__MAX];

/* Adds the network counters of from to into (the fields that count per run
 * in a backend with net_per_run). */
static void
usage_fold_net(struct guest_usage *into, const struct guest_usage *from)
{
    into->net_rx_bytes += from->net_rx_bytes;
    into->net_tx_bytes += from->net_tx_bytes;
    into->net_rx_packets += from->net_rx_packets;
    into->net_tx_packets += from->net_tx_packets;
    into->failcnt[USAGE_FAIL_TCP] += from->failcnt[USAGE_FAIL_TCP];
}

/* The backend's detail for the log, else the errno's text. */
static const char *
job_why(const struct job *j)
{
    return j->errtext[0] ? j->errtext : strerror(-j->result);
}

/* ---- the generic part: queue, run, done ------------------------------- */

static struct job *
job_new(agent_t *a, enum job_kind kind, uint64_t ref, const struct agent_guest *g)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->agent = a;
    j->kind = kind;
    j->ref = ref;
    j->fake_pids = a->cfg.fake_pids;
    if (g) {
        strscpy(j->id, g->rec.spec.id, sizeof(j->id));
        strscpy(j->name, g->rec.spec.name, sizeof(j->name));
        j->packed = agent_guest_packed(g, &j->packed_len);
        j->rt = g->rec.rt;
        j->ids = g->rec.ids;
    }
    return j;
}

/* On the loop thread, as the job leaves its lane's queue: every earlier job
 * of the lane is done, so the guest's record says what they did. A start
 * queued behind an apply starts with the spec just applied; a destroy queued
 * behind a start kills the init that start made. The kill of an init that
 * exited keeps the runtime it was queued with (the record has dropped it). */
static void
job_start(void *arg)
{
    struct job *j = arg;
    enum job_fresh fresh = job_ops[j->kind].fresh;
    const struct agent_guest *g;

    /* An exec accepted before a move's or export's freeze was queued, taken
     * up after it: refused as one that came after (cmd_exec), not run into
     * the frozen guest (its helper froze as it joined, the lane waited out
     * its timeout, and the command ran at the thaw). */
    if (j->kind == JOB_EXEC && (g = agent_guest_find(j->agent, j->id)) && g->move_frozen)
        j->u.exec.frozen = true;
    else if (j->kind == JOB_EXEC)
        j->agent->exec_job = j; /* a freeze queued from now on cancels it */
    if (fresh == FRESH_NONE || !(g = agent_guest_find(j->agent, j->id)))
        return;
    /* A start of the node's own (restart policy, autostart, a move's abort)
     * is queued for a guest meant to run; a stop the master sent meanwhile
     * (acked at once when init had exited: the record said stopped) or a
     * move's freeze (its record says stopped: it is about to run on the
     * target, and the spawner thaws a start's frozen cgroup) wants it
     * down. It waited behind a usage job or the freeze's. */
    if (j->kind == JOB_START && !j->ref && g->rec.desired != STORE_DESIRED_RUNNING)
        j->u.start.dropped = true;
    j->rt = g->rec.rt;
    if (fresh == FRESH_ALL) {
        free(j->packed);
        j->packed = agent_guest_packed(g, &j->packed_len);
        strscpy(j->name, g->rec.spec.name, sizeof(j->name));
    }
}

static void
job_run(void *arg)
{
    struct job *j = arg;
    /* 17 KB of the pool thread's stack, given back after the job (lane.c,
     * memtidy_stack_release). */
    struct guest_spec spec;

    if (j->packed)
        agent_spec_unpack(j->packed, j->packed_len, &spec);
    errtext_clear();
    job_ops[j->kind].run(j, j->agent->backend, &spec);
    if (j->result < 0)
        strscpy(j->errtext, errtext_get(), sizeof(j->errtext));
}

static void
job_done(void *arg)
{
    struct job *j = arg;
    agent_t *a = j->agent;
    const struct job_ops *ops = &job_ops[j->kind];

    log_debug("node=%s guest=%s job %s done: %d", a->cfg.name, j->name, ops->name, j->result);
    if (a->exec_job == j)
        a->exec_job = NULL;
    ops->done(a, j, j->id[0] ? agent_guest_find(a, j->id) : NULL);
    if (ops->clear)
        ops->clear(j);
    free(j->packed);
    free(j);
}

static const struct lane_fns job_fns = {job_start, job_run, job_done};

static void
job_push(agent_t *a, struct job *j)
{
    if (job_ops[j->kind].exec_lane)
        lane_push(a->execs, &job_fns, j);
    else if (j->id[0])
        lane_push_key(a->ops, j->id, &job_fns, j);
    else
        lane_push(a->ops, &job_fns, j); /* usage: about every guest, alone */
}

/* Held around the backend operations that reach state the guests share
 * (its network handles: netlink, nftables; the kill and destroy paths that
 * use them) when the backend runs distinct guests' operations at once:
 * those stay one at a time, as before. Create, limits and start touch only
 * the guest's own files, cgroups and the spawner (which has its own lock),
 * and so does the backend's kill alone (a create's of a guest with no
 * record); a kill job also reads and removes the guest's network.
 * One lock for the process: one linux backend per process. */
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;

static void
serial_begin(const backend_t *b)
{
    if (b->ops->parallel_guests)
        pthread_mutex_lock(&serial_lock);
}

static void
serial_end(const backend_t *b)
{
    if (b->ops->parallel_guests)
        pthread_mutex_unlock(&serial_lock);
}

/* ---- apply ------------------------------------------------------------ */

static void start_run(struct job *j, backend_t *b, struct guest_spec *s);
static void start_set(agent_t *a, struct job *j, struct agent_guest *g);
static void start_follow(agent_t *a, struct job *j, struct agent_guest *g);
static void start_unrecorded(agent_t *a, struct job *j, struct agent_guest *g);

static void
apply_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    const struct backend_ops *ops = b->ops;
    bool existed = j->u.apply.existed;

    /* A guest this agent has no record of runs nothing: what runs of it was
     * started by an agent killed before a create's first record write
     * (guest.apply.start), and the create sent again would start a second
     * init beside it. Nothing to do, the common case, is one look-up. Not
     * under serial_lock: a kill touches only its guest's cgroups (backend.h),
     * and a create would otherwise wait behind every stop and destroy. */
    if (!existed) {
        struct guest_runtime none = {0};
        (void)ops->kill(b, s, &none);
    }
    j->result = existed ? 0 : ops->create(b, s, &j->ids);
    if (j->result >= 0)
        j->result = ops->set_limits(b, s, &j->ids, &j->rt);
    if (j->result >= 0 && j->rt.pid) {
        serial_begin(b);
        j->result = ops->apply_network(b, s, &j->rt);
        serial_end(b);
    }
    if (j->result < 0 && !existed) {
        /* A create that failed half-way leaves nothing behind (no record
         * will name it): undo what the backend made, keep the reason. */
        char why[ERRTEXT_MAX];
        strscpy(why, errtext_get(), sizeof(why));
        serial_begin(b);
        (void)ops->destroy(b, s);
        serial_end(b);
        errtext_set("%s", why);
    }
    j->u.apply.start_result = 1;
    if (j->result >= 0 && j->u.apply.start && !j->rt.pid && !(s->flags & SPEC_FLAG_LOCK)) {
        /* guest.apply.start: the start in the same trip to the thread pool.
         * Its failure is the start's, not the apply's (done acks it). */
        start_run(j, b, s);
        j->u.apply.start_result = j->result;
        if (j->result < 0)
            snprintf(j->errtext, sizeof(j->errtext), "%s",
                     errtext_get()[0] ? errtext_get() : strerror(-j->result));
        j->result = 0;
    }
}

static void
apply_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    if (!g)
        return;
    if (j->result < 0) {
        log_error("node=%s guest=%s apply of generation %" PRIu64 " failed: %s", a->cfg.name,
                  j->name, j->u.apply.generation, job_why(j));
        if (!j->u.apply.existed) {
            /* Nothing of a failed create is kept: the record goes too. */
            store_delete(a->store, j->id);
            agent_guest_remove(a, g);
        }
        agent_send_nack_errno(a, j->ref, j->id, j->result, "apply", j->errtext);
        return;
    }
    /* The spec applied becomes the guest's, its packed bytes with it; its
     * hot members are read from it unpacked on the loop's stack. The old
     * spec and generation are kept until the record is written. */
    struct guest_spec s;
    size_t old_len;
    char *old = agent_guest_packed(g, &old_len);
    uint64_t old_generation = g->rec.applied_generation;
    agent_spec_unpack(j->packed, j->packed_len, &s);
    agent_guest_take_spec(g, &s, j->packed, j->packed_len);
    j->packed = NULL;
    g->rec.applied_generation = j->u.apply.generation;
    /* guest.apply.start that started: one record write for both. */
    bool started = j->u.apply.start_result == 0;
    if (started)
        start_set(a, j, g);
    if (agent_guest_save(a, g) < 0) {
        /* Not applied as far as the agent knows (the host's disk full):
         * the old spec and generation back, so that the master's retry of
         * this apply does the work again and is acked only once recorded
         * (with the new generation in memory it was acked at once, and the
         * record never written). */
        agent_spec_unpack(old, old_len, &s);
        agent_guest_take_spec(g, &s, old, old_len);
        g->rec.applied_generation = old_generation;
        if (started)
            start_unrecorded(a, j, g);
        else
            agent_send_nack(a, j->ref, j->id, MSG_ERR_INTERNAL, "cannot write local store");
        return;
    }
    free(old);
    log_info("node=%s guest=%s generation %" PRIu64 " applied", a->cfg.name, j->name,
             j->u.apply.generation);
    if (started)
        start_follow(a, j, g);
    else if (j->u.apply.start_result < 0)
        log_error("node=%s guest=%s start after the apply failed: %s", a->cfg.name, j->name,
                  j->errtext);
    agent_send_ack(a, j->ref, g);
}

void
agent_job_apply(agent_t *a, const struct agent_guest *g, uint64_t ref,
                const struct guest_spec *spec, bool existed, bool start)
{
    struct job *j = job_new(a, JOB_APPLY, ref, NULL);

    strscpy(j->id, spec->id, sizeof(j->id));
    strscpy(j->name, spec->name, sizeof(j->name));
    if (spec_pack(spec, &j->packed, &j->packed_len) < 0)
        abort(); /* spec passed spec_validate (the codec): a bug */
    j->rt = g->rec.rt;
    j->ids = g->rec.ids;
    j->u.apply.generation = spec->generation;
    j->u.apply.existed = existed;
    j->u.apply.start = start;
    job_push(a, j);
}

/* ---- start ------------------------------------------------------------ */

static void
start_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    const struct backend_ops *ops = b->ops;

    if (j->u.start.dropped)
        return;
    j->result = ops->start(b, s, &j->ids, &j->rt);
    if (j->result < 0)
        return;
    /* A guest runs with its network or not at all: a start whose network
     * cannot be applied is undone. */
    serial_begin(b);
    int r = ops->apply_network(b, s, &j->rt);
    if (r < 0) {
        char why[ERRTEXT_MAX];
        strscpy(why, errtext_get(), sizeof(why));
        struct guest_runtime none = {0};
        ops->kill(b, s, &j->rt);
        ops->apply_network(b, s, &none);
        errtext_set("cannot set up the guest's network: %s", why[0] ? why : strerror(-r));
        j->result = r;
    }
    serial_end(b);
}

/* A start that succeeded, in the guest's record (not yet written). */
static void
start_set(agent_t *a, struct job *j, struct agent_guest *g)
{
    g->rec.rt = j->rt;
    g->rec.desired = STORE_DESIRED_RUNNING;
    /* At re-adoption, a gone init of this boot exited by itself. */
    strscpy(g->rec.boot_id, a->boot_id, sizeof(g->rec.boot_id));
    g->started_ms = time_mono_ms();
}

/* A start that succeeded, once recorded: the watch of init, the restart
 * count. */
static void
start_follow(agent_t *a, struct job *j, struct agent_guest *g)
{
    if (!a->closing && agent_guest_watch(a, g) < 0)
        log_warning("node=%s guest=%s cannot watch init pid %d, ignoring", a->cfg.name, j->name,
                    (int)j->rt.pid);
    log_info("node=%s guest=%s started, init pid %d", a->cfg.name, j->name, (int)j->rt.pid);
    /* Asked for: the restart policy counts afresh from here. */
    if (j->ref)
        g->restarts = 0;
}

/* A start whose record could not be written (the host's disk full): the
 * record on disk says the guest is not running, so it must not run: an agent
 * restarted from that record would not re-adopt its init, and a later start
 * would make a second init of the same guest. Its init is watched and killed
 * as a stop asked for (a "stopped" event, no restart policy), and the start
 * is nacked, never acked as running. */
static void
start_unrecorded(agent_t *a, struct job *j, struct agent_guest *g)
{
    log_error("node=%s guest=%s started but its record cannot be written: stopping it", a->cfg.name,
              j->name);
    if (!a->closing && agent_guest_watch(a, g) < 0)
        log_warning("node=%s guest=%s cannot watch init pid %d, ignoring", a->cfg.name, j->name,
                    (int)j->rt.pid);
    g->stopping = true;
    agent_job_kill(a, g);
    if (j->ref)
        agent_send_nack(a, j->ref, j->id, MSG_ERR_INTERNAL, "cannot write local store");
}

static void
start_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    if (!g)
        return;
    if (j->u.start.dropped) {
        log_info("node=%s guest=%s not started: it was stopped while its start waited", a->cfg.name,
                 j->name);
        return;
    }
    if (j->result < 0) {
        log_error("node=%s guest=%s start failed: %s", a->cfg.name, j->name, job_why(j));
        if (j->u.start.soft)
            agent_send_ack(a, j->ref, g);
        else
            agent_send_nack_errno(a, j->ref, j->id, j->result, "start", j->errtext);
        return;
    }
    start_set(a, j, g);
    if (agent_guest_save(a, g) < 0) {
        start_unrecorded(a, j, g);
        return;
    }
    start_follow(a, j, g);
    agent_send_ack(a, j->ref, g);
    /* The master's command is answered by the ack (running); a start of the
     * node's own (restart policy, re-adoption, a move) is news: an event. */
    if (!j->ref)
        agent_send_event(a, j->id, "started", 0, "");
}

void
agent_job_start(agent_t *a, const struct agent_guest *g, uint64_t ref)
{
    job_push(a, job_new(a, JOB_START, ref, g));
}

void
agent_job_start_soft(agent_t *a, const struct agent_guest *g, uint64_t ref)
{
    struct job *j = job_new(a, JOB_START, ref, g);

    j->u.start.soft = true;
    job_push(a, j);
}

/* ---- stop ------------------------------------------------------------- */

static void
stop_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    serial_begin(b);
    j->result = b->ops->stop(b, s, &j->rt);
    j->u.stop.after = GUEST_RUNNING;
    if (j->result >= 0 && j->fake_pids)
        (void)b->ops->state(b, s, &j->rt, &j->u.stop.after);
    serial_end(b);
}

static void
stop_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    if (!g)
        return;
    if (j->result < 0 && g->stop_ref) {
        agent_send_nack_errno(a, g->stop_ref, j->id, j->result, "stop", j->errtext);
        g->stop_ref = 0;
        g->stopping = false;
    }
    /* Without a pidfd to watch, the state the job saw is the exit; with
     * one, the watch reports the exit and answers the stop. */
    if (j->result >= 0 && j->fake_pids && g->rec.rt.pid && j->u.stop.after != GUEST_RUNNING)
        agent_guest_stopped(a, g, 0, 0, "init exited");
}

void
agent_job_stop(agent_t *a, const struct agent_guest *g, uint64_t ref)
{
    job_push(a, job_new(a, JOB_STOP, ref, g));
}

/* ---- kill ------------------------------------------------------------- */

static void
kill_run_serial(struct job *j, backend_t *b, struct guest_spec *s)
{
    const struct backend_ops *ops = b->ops;

    j->result = ops->kill(b, s, &j->rt);
    j->u.kill.after = GUEST_RUNNING;
    if (j->result < 0)
        return;
    if (j->fake_pids)
        (void)ops->state(b, s, &j->rt, &j->u.kill.after);
    /* The run's network counters are read once the guest is dead (the
     * backend keeps them until told otherwise), then its network goes: done
     * folds them into the baseline. */
    struct guest_runtime none = {0};
    if (ops->net_per_run && ops->usage(b, s, &j->rt, &j->u.kill.last) >= 0)
        j->u.kill.have_last = true;
    int r = ops->apply_network(b, s, &none);
    if (r < 0 && r != -ENOENT)
        j->result = r;
}

static void
kill_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    serial_begin(b);
    kill_run_serial(j, b, s);
    serial_end(b);
}

static void
kill_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    if (!g)
        return;
    if (j->u.kill.have_last) {
        usage_fold_net(&g->rec.baseline, &j->u.kill.last);
        agent_guest_save(a, g);
    }
    if (j->result < 0)
        log_error("node=%s guest=%s kill failed: %s", a->cfg.name, j->name, job_why(j));
    /* With a pidfd, the watch reports the exit and answers the stop. */
    if (j->result >= 0 && j->fake_pids && g->rec.rt.pid && j->u.kill.after != GUEST_RUNNING)
        agent_guest_stopped(a, g, -1, SIGKILL, "killed");
}

void
agent_job_kill(agent_t *a, const struct agent_guest *g)
{
    job_push(a, job_new(a, JOB_KILL, 0, g));
}

/* ---- destroy ---------------------------------------------------------- */

static void
destroy_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    serial_begin(b);
    j->result = j->rt.pid ? b->ops->kill(b, s, &j->rt) : 0;
    if (j->result >= 0)
        j->result = b->ops->destroy(b, s);
    serial_end(b);
}

static void
destroy_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    if (!g)
        return;
    if (j->result < 0) {
        g->destroying = false;
        agent_send_nack_errno(a, j->ref, j->id, j->result, "destroy", j->errtext);
        return;
    }
    /* The exit watch was stopped when the destroy was queued: reap init here
     * if it is our child (after kill the cgroup is empty, so it is a zombie
     * by now; an adopted init belongs to the host's init). A fake pid is no
     * child of ours, and may be some unrelated one's. */
    if (j->rt.pid && !j->fake_pids)
        (void)waitpid(j->rt.pid, NULL, WNOHANG);
    store_delete(a->store, j->id);
    log_info("node=%s guest=%s destroyed", a->cfg.name, j->name);
    agent_send_ack_gone(a, j->ref, j->id, g->rec.applied_generation);
    agent_send_event(a, j->id, "destroyed", 0, "");
    agent_guest_remove(a, g);
}

void
agent_job_destroy(agent_t *a, const struct agent_guest *g, uint64_t ref)
{
    job_push(a, job_new(a, JOB_DESTROY, ref, g));
}

/* ---- exec ------------------------------------------------------------- */

static void
exec_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    struct exec_request req = {
        .argv = j->u.exec.req.argv,
        .timeout_ms = j->u.exec.req.timeout_ms,
        .max_output = j->u.exec.req.max_output,
        .cancellable = j->u.exec.cancel_fd >= 0,
        .cancel_fd = j->u.exec.cancel_fd,
    };

    if (j->u.exec.frozen)
        j->result = -EBUSY;
    else
        j->result = b->ops->exec(b, s, &j->rt, &req, &j->u.exec.res);
}

static void
exec_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    struct msg m = {.type = MSG_EXEC_RESULT};
    struct msg_exec_result *e = &m.u.exec_result;
    const struct exec_result *res = &j->u.exec.res;

    /* The answer does not depend on the guest still being in the table. */
    (void)g;
    if (j->u.exec.frozen) {
        agent_send_nack(a, j->ref, j->id, MSG_ERR_BUSY, AGENT_MOVE_FROZEN);
        return;
    }
    if (j->u.exec.cancelled && j->result == -ECANCELED) {
        agent_send_nack(a, j->ref, j->id, MSG_ERR_BUSY, AGENT_MOVE_KILLED);
        return;
    }
    if (j->result < 0) {
        agent_send_nack_errno(a, j->ref, j->id, j->result, "exec", j->errtext);
        return;
    }
    e->ref = j->ref;
    memcpy(e->id, j->id, sizeof(e->id));
    e->exit_code = res->exit_code;
    e->signal = res->signal;
    e->timed_out = res->timed_out;
    e->truncated = res->truncated;
    e->out = res->out;
    e->out_len = (uint32_t)res->out_len;
    e->err = res->err;
    e->err_len = (uint32_t)res->err_len;
    agent_send(a, &m); /* the buffers stay owned by the job */
}

static void
exec_clear(struct job *j)
{
    if (j->u.exec.req.argv) {
        for (uint32_t i = 0; i < j->u.exec.req.argc; i++)
            free(j->u.exec.req.argv[i]);
        free(j->u.exec.req.argv);
    }
    exec_result_clear(&j->u.exec.res);
    if (j->u.exec.cancel_fd >= 0)
        close(j->u.exec.cancel_fd);
}

void
agent_job_exec(agent_t *a, const struct agent_guest *g, uint64_t ref,
               const struct msg_guest_exec *e)
{
    struct job *j = job_new(a, JOB_EXEC, ref, g);

    j->u.exec.req = *e;
    j->u.exec.req.argv = xcalloc(e->argc + 1, sizeof(char *));
    for (uint32_t i = 0; i < e->argc; i++)
        j->u.exec.req.argv[i] = xstrdup(e->argv[i]);
    /* Without one (out of descriptors) the exec runs as before, not cancellable. */
    j->u.exec.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    job_push(a, j);
}

void
agent_job_exec_cancel(agent_t *a, const char *id)
{
    struct job *j = a->exec_job;

    if (!j || strcmp(j->id, id) != 0 || j->u.exec.cancelled || j->u.exec.cancel_fd < 0)
        return;
    j->u.exec.cancelled = true;
    (void)eventfd_write(j->u.exec.cancel_fd, 1);
    log_info("node=%s guest=%s its running exec is cancelled: a move or an export freezes it",
             a->cfg.name, j->name);
}

/* ---- console ---------------------------------------------------------- */

static void
console_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    j->result =
        b->ops->console ? b->ops->console(b, s, j->u.console.max, &j->u.console.log) : -EOPNOTSUPP;
}

static void
console_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    struct msg m = {.type = MSG_CONSOLE_RESULT};
    struct msg_console_result *r = &m.u.console_result;

    (void)g;
    if (j->result < 0) {
        agent_send_nack_errno(a, j->ref, j->id, j->result, "console", j->errtext);
        return;
    }
    r->ref = j->ref;
    memcpy(r->id, j->id, sizeof(r->id));
    r->total = j->u.console.log.total;
    r->len = (uint32_t)j->u.console.log.len;
    r->data = j->u.console.log.data;
    agent_send(a, &m); /* the buffer stays owned by the job */
}

static void
console_clear(struct job *j)
{
    free(j->u.console.log.data);
}

void
agent_job_console(agent_t *a, const struct agent_guest *g, uint64_t ref, uint32_t max)
{
    struct job *j = job_new(a, JOB_CONSOLE, ref, g);

    j->u.console.max = max ? max : 64 * 1024;
    job_push(a, j);
}

/* ---- usage ------------------------------------------------------------ */

static void
usage_run(struct job *j, backend_t *b, struct guest_spec *s)
{
    for (size_t i = 0; i < j->u.usage.n; i++) {
        struct guest_usage *u = &j->u.usage.out[i];
        agent_spec_unpack(j->u.usage.specs[i], j->u.usage.spec_lens[i], s);
        memcpy(u->id, s->id, sizeof(u->id));
        if (b->ops->usage(b, s, &j->u.usage.rts[i], u) < 0)
            u->time_ms = 0; /* marks the sample as failed; it is not sent */
    }
    j->result = 0;
}

static void
usage_done(agent_t *a, struct job *j, struct agent_guest *g)
{
    struct msg m = {.type = MSG_USAGE};
    struct guest_usage *out = j->u.usage.out;
    size_t n = 0;

    (void)g; /* a batch is about many guests: g is always NULL */
    for (size_t i = 0; i < j->u.usage.n; i++) {
        if (!out[i].time_ms)
            continue;
        /* Counters since creation: earlier runs' totals plus this run's. */
        const struct agent_guest *sg = agent_guest_find(a, out[i].id);
        if (sg && a->backend->ops->net_per_run)
            usage_fold_net(&out[i], &sg->rec.baseline);
        out[n++] = out[i];
    }
    a->usage_pending = false;
    if (n == 0)
        return;
    m.u.usage.n_samples = (uint32_t)n;
    m.u.usage.samples = out;
    /* the samples stay owned by the job */
    if (agent_send(a, &m) >= 0) {
        a->usage_unread = m.id;
        a->usage_sent_ms = time_mono_ms();
    }
}

static void
usage_clear(struct job *j)
{
    for (size_t i = 0; i < j->u.usage.n; i++)
        free(j->u.usage.specs[i]);
    free(j->u.usage.specs);
    free(j->u.usage.spec_lens);
    free(j->u.usage.rts);
    free(j->u.usage.out);
}

size_t
agent_job_usage(agent_t *a)
{
    size_t n = 0;

    for (size_t i = 0; i < a->n_guests; i++)
        n += a->guests[i]->rec.rt.pid != 0 && !a->guests[i]->destroying;
    if (n == 0)
        return 0;
    if (n > PROTO_MAX_SAMPLES)
        n = PROTO_MAX_SAMPLES;
    struct job *j = job_new(a, JOB_USAGE, 0, NULL);
    j->u.usage.specs = xcalloc(n, sizeof(*j->u.usage.specs));
    j->u.usage.spec_lens = xcalloc(n, sizeof(*j->u.usage.spec_lens));
    j->u.usage.rts = xcalloc(n, sizeof(*j->u.usage.rts));
    j->u.usage.out = xcalloc(n, sizeof(*j->u.usage.out));
    for (size_t i = 0, k = 0; i < a->n_guests && k < n; i++) {
        const struct agent_guest *g = a->guests[i];
        if (!g->rec.rt.pid || g->destroying)
            continue;
        j->u.usage.specs[k] = xmalloc(g->rec.packed_len);
        memcpy(j->u.usage.specs[k], g->rec.packed, g->rec.packed_len);
        j->u.usage.spec_lens[k] = g->rec.packed_len;
        j->u.usage.rts[k] = g->rec.rt;
        k++;
    }
    j->u.usage.n = n;
    a->usage_pending = true;
    job_push(a, j);
    return n;
}

/* ---- the table -------------------------------------------------------- */

static const struct job_ops job_ops[JOB__MAX] = {
    [JOB_APPLY] = {"apply", false, FRESH_RT, apply_run, apply_done, NULL},
    [JOB_START] = {"start", false, FRESH_ALL, start_run, start_done, NULL},
    [JOB_STOP] = {"stop", false, FRESH_ALL, stop_run, stop_done, NULL},
    [JOB_KILL] = {"kill", false, FRESH_NONE, kill_run, kill_done, NULL},
    [JOB_DESTROY] = {"destroy", false, FRESH_ALL, destroy_run, destroy_done, NULL},
    /* exec runs beside the lifecycle lane, so there is no "earlier job" to wait for. */
    [JOB_EXEC] = {"exec", true, FRESH_NONE, exec_run, exec_done, exec_clear},
    [JOB_USAGE] = {"usage", false, FRESH_NONE, usage_run, usage_done, usage_clear},
    /* A read of the ring: beside the lifecycle lane, like exec. */
    [JOB_CONSOLE] = {"console", true, FRESH_NONE, console_run, console_done, console_clear},
};
