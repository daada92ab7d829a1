#include "node/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/store.h"
#include "proto/link.h"
#include "proto/zwatch.h"

#define VFLEET_VERSION "0.1.0"
#define HELLO_RETRY_MS 2000 /* re-send hello until the master welcomes us */

/* What a queued backend operation does. */
enum job_kind {
    JOB_APPLY,   /* create if absent, then apply limits */
    JOB_START,   /* start init */
    JOB_STOP,    /* send the halt signal */
    JOB_KILL,    /* SIGKILL the guest's cgroup */
    JOB_DESTROY, /* kill if running, then remove everything */
    JOB_EXEC,    /* run a command inside */
    JOB_USAGE,   /* sample every running guest */
};

struct lane;

/* One backend operation, queued on a lane and run on the thread pool. The
 * job owns copies of everything the worker thread reads, so the loop thread
 * may change guests while it runs. */
struct job {
    struct job *next;                /* next in the lane's queue */
    struct lane *lane;               /* the lane it runs on */
    agent_t *agent;                  /* back pointer for the after-work callback */
    enum job_kind kind;              /* what to do */
    uint64_t ref;                    /* request id to answer, 0 for internal jobs */
    bool existed;                    /* JOB_APPLY: the guest was already created */
    struct guest_spec spec;          /* the guest's spec as of queueing */
    struct guest_runtime rt;         /* runtime in, and out of JOB_START */
    struct guest_ids ids;            /* the guest's uid block (store record) */
    struct msg_guest_exec exec;      /* JOB_EXEC request (argv owned) */
    struct exec_result exec_res;     /* JOB_EXEC result */
    struct guest_usage *samples;     /* JOB_USAGE: one per entry of usage_specs */
    struct guest_spec *usage_specs;  /* JOB_USAGE input */
    struct guest_runtime *usage_rts; /* JOB_USAGE input */
    size_t n_samples;                /* JOB_USAGE entries */
    struct guest_usage last;         /* JOB_KILL: the run's last network counters */
    bool have_last;                  /* JOB_KILL: last was read and is to be folded */
    int result;                      /* backend return */
    enum guest_state state_after;    /* fake_pids: the state after JOB_STOP/JOB_KILL */
    char errtext[ERRTEXT_MAX];       /* the backend's detail when result < 0 */
    uv_work_t work;                  /* libuv thread-pool request */
};

/* A FIFO of jobs of which at most one runs at a time. */
struct lane {
    struct job *head; /* next job to run */
    struct job *tail; /* last queued job */
    bool busy;        /* a job runs now */
};

struct guest;

/* A pidfd watch on a guest's init. Allocated per start and freed by its
 * close callback, because a closed libuv handle cannot be reused at once. */
struct exit_watch {
    uv_poll_t poll;      /* readable when init exits */
    int pidfd;           /* the pidfd polled */
    struct guest *guest; /* the guest, NULL once detached */
};

/* A guest the agent knows, with the handles that watch it. Freed only after
 * its handles are closed. */
struct guest {
    agent_t *agent;           /* the agent that owns it (several may share a loop) */
    struct store_record rec;  /* what the store holds */
    struct exit_watch *watch; /* watches init while running, else NULL */
    uv_timer_t stop_timer;    /* stop timeout, then kill */
    bool timer_init;          /* stop_timer is initialised */
    uint64_t stop_ref;        /* request id of a pending guest.stop, 0 = none */
    bool stopping;            /* a stop was asked and init has not exited */
    bool destroying;          /* a destroy is queued: refuse new work */
    int handles_open;         /* handles still to close before free */
    bool orphaned;            /* out of the agent's table: the last close callback frees it */
};

struct agent {
    uv_loop_t *loop;            /* the loop everything runs on */
    struct agent_config cfg;    /* copy of the configuration */
    backend_t *backend;         /* owned */
    store_t *store;             /* owned */
    link_t *link;               /* DEALER to the master, owned */
    zwatch_t watch;             /* ZeroMQ readiness in the loop */
    uv_timer_t heartbeat;       /* heartbeat and hello retries */
    uv_timer_t usage;           /* usage sampling */
    struct lane ops;            /* lifecycle lane */
    struct lane execs;          /* exec lane */
    struct guest **guests;      /* known guests */
    size_t n_guests;            /* entries used */
    size_t cap_guests;          /* entries allocated */
    struct node_facts facts;    /* from the backend's probe */
    uint64_t next_id;           /* our request ids */
    uint64_t heartbeat_seq;     /* heartbeats sent */
    bool welcomed;              /* the master answered our hello */
    uint64_t last_hello_ms;     /* when hello was last sent */
    uint64_t last_rx_ms;        /* when the master was last heard from */
    unsigned unanswered_hellos; /* hellos sent since the last welcome */
    bool usage_pending;         /* a usage job is queued or running */
    bool handles_ready;         /* timers and the watcher are initialised */
    bool closing;               /* agent_shutdown was called */
};

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

/* ---- sending ---------------------------------------------------------- */

static void
send_msg(agent_t *a, struct msg *m)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    if (!m->id)
        m->id = ++a->next_id;
    int r = msg_encode(m, &buf, &len);
    if (r < 0) {
        log_error("node=%s cannot encode %s: %s", a->cfg.name, msg_type_name(m->type),
                  strerror(-r));
        return;
    }
    r = link_send(a->link, NULL, buf, len);
    if (r < 0)
        /* The master re-sends unacked commands, so a dropped answer costs a retry only. */
        log_warning("node=%s send %s failed: %s, ignoring", a->cfg.name, msg_type_name(m->type),
                    strerror(-r));
}

static void
send_ack(agent_t *a, uint64_t ref, const struct guest *g)
{
    struct msg m = {.type = MSG_ACK};

    m.u.ack.ref = ref;
    if (g) {
        memcpy(m.u.ack.id, g->rec.spec.id, sizeof(m.u.ack.id));
        m.u.ack.generation = g->rec.applied_generation;
        m.u.ack.running = g->rec.rt.pid != 0;
    }
    send_msg(a, &m);
}

static void
send_nack(agent_t *a, uint64_t ref, const char *id, enum msg_error code, const char *text)
{
    struct msg m = {.type = MSG_NACK};

    m.u.nack.ref = ref;
    m.u.nack.code = code;
    if (id)
        strscpy(m.u.nack.id, id, sizeof(m.u.nack.id));
    snprintf(m.u.nack.message, sizeof(m.u.nack.message), "%s", text);
    send_msg(a, &m);
}

/* Nacks with the backend's detail when it gave one, else the errno's text. */
static void
send_nack_errno(agent_t *a, uint64_t ref, const char *id, int err, const char *what,
                const char *detail)
{
    char text[ERRTEXT_MAX + 64];

    snprintf(text, sizeof(text), "%s: %s", what, detail && *detail ? detail : strerror(-err));
    send_nack(a, ref, id, msg_error_from_errno(err), text);
}

static void
send_event(agent_t *a, const char *id, const char *kind, int exit_code, const char *text)
{
    struct msg m = {.type = MSG_EVENT};

    strscpy(m.u.event.id, id, sizeof(m.u.event.id));
    strscpy(m.u.event.kind, kind, sizeof(m.u.event.kind));
    m.u.event.time_ms = time_real_ms();
    m.u.event.exit_code = exit_code;
    snprintf(m.u.event.message, sizeof(m.u.event.message), "%s", text ? text : "");
    send_msg(a, &m);
}

static void
send_hello(agent_t *a)
{
    struct msg m = {.type = MSG_HELLO};
    struct msg_hello *h = &m.u.hello;

    strscpy(h->node, a->cfg.name, sizeof(h->node));
    strscpy(h->agent_version, VFLEET_VERSION, sizeof(h->agent_version));
    strscpy(h->kernel, a->facts.kernel, sizeof(h->kernel));
    strscpy(h->cgroup, a->facts.cgroup, sizeof(h->cgroup));
    strscpy(h->backend, a->facts.backend, sizeof(h->backend));
    h->cpus = a->facts.cpus;
    h->memory = a->facts.memory;
    h->disk = a->facts.disk;
    h->max_guests = a->facts.max_guests;
    h->n_labels = a->cfg.n_labels;
    memcpy(h->labels, a->cfg.labels, sizeof(h->labels));
    h->n_inventory = (uint32_t)a->n_guests;
    h->inventory = xcalloc(a->n_guests ? a->n_guests : 1, sizeof(*h->inventory));
    for (size_t i = 0; i < a->n_guests; i++) {
        const struct guest *g = a->guests[i];
        memcpy(h->inventory[i].id, g->rec.spec.id, sizeof(h->inventory[i].id));
        memcpy(h->inventory[i].name, g->rec.spec.name, sizeof(h->inventory[i].name));
        h->inventory[i].generation = g->rec.applied_generation;
        h->inventory[i].running = g->rec.rt.pid != 0;
    }
    send_msg(a, &m);
    msg_clear(&m);
    a->last_hello_ms = time_mono_ms();
    a->unanswered_hellos++;
    log_info("node=%s hello sent to \"%s\" with %zu guests", a->cfg.name, a->cfg.master,
             a->n_guests);
}

/* ---- guests ----------------------------------------------------------- */

static struct guest *
guest_find(agent_t *a, const char *id)
{
    for (size_t i = 0; i < a->n_guests; i++)
        if (strcmp(a->guests[i]->rec.spec.id, id) == 0)
            return a->guests[i];
    return NULL;
}

static struct guest *
guest_find_name(agent_t *a, const char *name)
{
    for (size_t i = 0; i < a->n_guests; i++)
        if (strcmp(a->guests[i]->rec.spec.name, name) == 0)
            return a->guests[i];
    return NULL;
}

static struct guest *
guest_add(agent_t *a, const struct store_record *rec)
{
    struct guest *g = xcalloc(1, sizeof(*g));

    g->agent = a;
    g->rec = *rec;
    if (a->n_guests == a->cap_guests) {
        a->cap_guests = a->cap_guests ? a->cap_guests * 2 : 16;
        a->guests = xreallocarray(a->guests, a->cap_guests, sizeof(*a->guests));
    }
    a->guests[a->n_guests++] = g;
    return g;
}

static void
guest_handle_closed(uv_handle_t *h)
{
    struct guest *g = h->data;

    /* A guest still in the table (agent_shutdown closed its timer) is freed by agent_destroy. */
    if (--g->handles_open == 0 && g->orphaned)
        free(g);
}

static void
watch_closed(uv_handle_t *h)
{
    struct exit_watch *w = h->data;

    close(w->pidfd);
    free(w);
}

static void
watch_stop(struct guest *g)
{
    struct exit_watch *w = g->watch;

    if (!w)
        return;
    w->guest = NULL;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
    g->watch = NULL;
}

/* Takes g out of the table and frees it once its handles are closed. */
static void
guest_remove(agent_t *a, struct guest *g)
{
    for (size_t i = 0; i < a->n_guests; i++) {
        if (a->guests[i] == g) {
            a->guests[i] = a->guests[--a->n_guests];
            break;
        }
    }
    g->orphaned = true;
    watch_stop(g);
    if (g->timer_init) {
        g->handles_open++;
        g->timer_init = false;
        uv_close((uv_handle_t *)&g->stop_timer, guest_handle_closed);
    }
    if (g->handles_open == 0)
        free(g);
}

static int
store_save(agent_t *a, struct guest *g)
{
    int r = store_put(a->store, &g->rec);
    if (r < 0)
        log_error("node=%s guest=%s cannot write its record: %s", a->cfg.name, g->rec.spec.name,
                  strerror(-r));
    return r;
}

static void on_init_exit(uv_poll_t *p, int status, int events);

/* Watches init's pidfd so the agent learns when the guest stops, whoever
 * stopped it. Works for adopted guests too, which are not our children. */
static int
watch_init(agent_t *a, struct guest *g)
{
    /* A fake pid may name some unrelated real process: never watch it. The
     * stop and kill jobs ask the backend instead (job_run). */
    if (a->cfg.fake_pids)
        return 0;

    int fd = (int)syscall(SYS_pidfd_open, g->rec.rt.pid, 0);

    if (fd < 0)
        return -errno;
    watch_stop(g);
    struct exit_watch *w = xcalloc(1, sizeof(*w));
    w->pidfd = fd;
    w->guest = g;
    int r = uv_poll_init(a->loop, &w->poll, fd);
    if (r < 0) {
        close(fd);
        free(w);
        return r;
    }
    w->poll.data = w;
    g->watch = w;
    return uv_poll_start(&w->poll, UV_READABLE, on_init_exit);
}

/* ---- lanes ------------------------------------------------------------ */

static void job_run(uv_work_t *w);
static void job_done(uv_work_t *w, int status);

static void
lane_kick(agent_t *a, struct lane *l)
{
    if (l->busy || !l->head)
        return;
    struct job *j = l->head;
    l->busy = true;
    j->work.data = j;
    int r = uv_queue_work(a->loop, &j->work, job_run, job_done);
    if (r < 0) {
        j->result = r;
        l->busy = false;
        log_error("node=%s cannot queue work: %s", a->cfg.name, uv_strerror(r));
    }
}

static struct job *
job_new(agent_t *a, struct lane *l, enum job_kind kind, uint64_t ref, const struct guest *g)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->agent = a;
    j->lane = l;
    j->kind = kind;
    j->ref = ref;
    if (g) {
        j->spec = g->rec.spec;
        j->rt = g->rec.rt;
        j->ids = g->rec.ids;
    }
    return j;
}

static void
job_queue(agent_t *a, struct job *j)
{
    struct lane *l = j->lane;

    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    lane_kick(a, l);
}

static void
job_free(struct job *j)
{
    if (j->exec.argv) {
        for (uint32_t i = 0; i < j->exec.argc; i++)
            free(j->exec.argv[i]);
        free(j->exec.argv);
    }
    exec_result_clear(&j->exec_res);
    free(j->samples);
    free(j->usage_specs);
    free(j->usage_rts);
    free(j);
}

/* Runs on a thread-pool thread: only the job's own copies are touched. */
static void
job_run(uv_work_t *w)
{
    struct job *j = w->data;
    backend_t *b = j->agent->backend;
    const struct backend_ops *ops = b->ops;

    errtext_clear();
    switch (j->kind) {
    case JOB_APPLY:
        j->result = j->existed ? 0 : ops->create(b, &j->spec, &j->ids);
        if (j->result >= 0)
            j->result = ops->set_limits(b, &j->spec, &j->ids, &j->rt);
        if (j->result >= 0 && j->rt.pid)
            j->result = ops->apply_network(b, &j->spec, &j->rt);
        if (j->result < 0 && !j->existed) {
            /* A create that failed half-way leaves nothing behind (no record
             * will name it): undo what the backend made, keep the reason. */
            char why[ERRTEXT_MAX];
            strscpy(why, errtext_get(), sizeof(why));
            (void)ops->destroy(b, &j->spec);
            errtext_set("%s", why);
        }
        break;
    case JOB_START:
        j->result = ops->start(b, &j->spec, &j->ids, &j->rt);
        if (j->result >= 0) {
            /* A guest runs with its network or not at all: a start whose
             * network cannot be applied is undone. */
            int r = ops->apply_network(b, &j->spec, &j->rt);
            if (r < 0) {
                char why[ERRTEXT_MAX];
                strscpy(why, errtext_get(), sizeof(why));
                struct guest_runtime none = {0};
                ops->kill(b, &j->spec, &j->rt);
                ops->apply_network(b, &j->spec, &none);
                errtext_set("cannot set up the guest's network: %s", why[0] ? why : strerror(-r));
                j->result = r;
            }
        }
        break;
    case JOB_STOP:
        j->result = ops->stop(b, &j->spec, &j->rt);
        j->state_after = GUEST_RUNNING;
        if (j->result >= 0 && j->agent->cfg.fake_pids)
            (void)ops->state(b, &j->spec, &j->rt, &j->state_after);
        break;
    case JOB_KILL:
        j->result = ops->kill(b, &j->spec, &j->rt);
        j->state_after = GUEST_RUNNING;
        if (j->result >= 0 && j->agent->cfg.fake_pids)
            (void)ops->state(b, &j->spec, &j->rt, &j->state_after);
        if (j->result >= 0) {
            /* The run's network counters are read once the guest is dead
             * (the backend keeps them until told otherwise), then its network
             * goes: the loop thread folds them into the baseline. */
            struct guest_runtime none = {0};
            if (ops->net_per_run && ops->usage(b, &j->spec, &j->rt, &j->last) >= 0)
                j->have_last = true;
            int r = ops->apply_network(b, &j->spec, &none);
            if (r < 0 && r != -ENOENT)
                j->result = r;
        }
        break;
    case JOB_DESTROY:
        j->result = j->rt.pid ? ops->kill(b, &j->spec, &j->rt) : 0;
        if (j->result >= 0)
            j->result = ops->destroy(b, &j->spec);
        break;
    case JOB_EXEC: {
        struct exec_request req = {
            .argv = j->exec.argv,
            .timeout_ms = j->exec.timeout_ms,
            .max_output = j->exec.max_output,
        };
        j->result = ops->exec(b, &j->spec, &j->rt, &req, &j->exec_res);
        break;
    }
    case JOB_USAGE:
        for (size_t i = 0; i < j->n_samples; i++) {
            struct guest_usage *u = &j->samples[i];
            memcpy(u->id, j->usage_specs[i].id, sizeof(u->id));
            if (ops->usage(b, &j->usage_specs[i], &j->usage_rts[i], u) < 0)
                u->time_ms = 0; /* marks the sample as failed; it is not sent */
        }
        j->result = 0;
        break;
    }
    if (j->result < 0)
        strscpy(j->errtext, errtext_get(), sizeof(j->errtext));
}

static void guest_stopped(agent_t *a, struct guest *g, int exit_code, const char *why);

/* Back on the loop thread: record the outcome, answer the master. */
static void
job_done(uv_work_t *w, int status)
{
    struct job *j = w->data;
    agent_t *a = j->agent;
    struct lane *l = j->lane;
    struct guest *g = j->kind == JOB_USAGE ? NULL : guest_find(a, j->spec.id);

    l->head = j->next;
    if (!l->head)
        l->tail = NULL;
    l->busy = false;
    if (status == UV_ECANCELED)
        j->result = -ECANCELED;

    switch (j->kind) {
    case JOB_APPLY:
        if (!g)
            break;
        if (j->result < 0) {
            log_error("node=%s guest=%s apply of generation %" PRIu64 " failed: %s", a->cfg.name,
                      j->spec.name, j->spec.generation,
                      j->errtext[0] ? j->errtext : strerror(-j->result));
            if (!j->existed) {
                /* Nothing of a failed create is kept: the record goes too. */
                store_delete(a->store, j->spec.id);
                guest_remove(a, g);
            }
            send_nack_errno(a, j->ref, j->spec.id, j->result, "apply", j->errtext);
            break;
        }
        g->rec.spec = j->spec;
        g->rec.applied_generation = j->spec.generation;
        if (store_save(a, g) < 0) {
            send_nack(a, j->ref, j->spec.id, MSG_ERR_INTERNAL, "cannot write local store");
            break;
        }
        log_info("node=%s guest=%s generation %" PRIu64 " applied", a->cfg.name, j->spec.name,
                 j->spec.generation);
        send_ack(a, j->ref, g);
        break;
    case JOB_START:
        if (!g)
            break;
        if (j->result < 0) {
            log_error("node=%s guest=%s start failed: %s", a->cfg.name, j->spec.name,
                      j->errtext[0] ? j->errtext : strerror(-j->result));
            send_nack_errno(a, j->ref, j->spec.id, j->result, "start", j->errtext);
            break;
        }
        g->rec.rt = j->rt;
        g->rec.desired = STORE_DESIRED_RUNNING;
        store_save(a, g);
        if (!a->closing && watch_init(a, g) < 0)
            log_warning("node=%s guest=%s cannot watch init pid %d, ignoring", a->cfg.name,
                        j->spec.name, (int)j->rt.pid);
        log_info("node=%s guest=%s started, init pid %d", a->cfg.name, j->spec.name,
                 (int)j->rt.pid);
        send_ack(a, j->ref, g);
        send_event(a, j->spec.id, "started", 0, "");
        break;
    case JOB_STOP:
        if (g && j->result < 0 && g->stop_ref) {
            send_nack_errno(a, g->stop_ref, j->spec.id, j->result, "stop", j->errtext);
            g->stop_ref = 0;
            g->stopping = false;
        }
        /* Without a pidfd to watch, the state the job saw is the exit. */
        if (g && j->result >= 0 && a->cfg.fake_pids && g->rec.rt.pid &&
            j->state_after != GUEST_RUNNING)
            guest_stopped(a, g, 0, "init exited");
        break;
    case JOB_KILL:
        if (g && j->have_last) {
            usage_fold_net(&g->rec.baseline, &j->last);
            store_save(a, g);
        }
        if (g && j->result < 0)
            log_error("node=%s guest=%s kill failed: %s", a->cfg.name, j->spec.name,
                      j->errtext[0] ? j->errtext : strerror(-j->result));
        /* The pidfd watch reports the exit and answers the stop. */
        if (g && j->result >= 0 && a->cfg.fake_pids && g->rec.rt.pid &&
            j->state_after != GUEST_RUNNING)
            guest_stopped(a, g, -1, "killed");
        break;
    case JOB_DESTROY:
        if (!g)
            break;
        if (j->result < 0) {
            g->destroying = false;
            send_nack_errno(a, j->ref, j->spec.id, j->result, "destroy", j->errtext);
            break;
        }
        /* The exit watch was stopped when the destroy was queued: reap init
         * here if it is our child (after kill the cgroup is empty, so it is a
         * zombie by now; an adopted init belongs to the host's init). */
        if (j->rt.pid)
            (void)waitpid(j->rt.pid, NULL, WNOHANG);
        store_delete(a->store, j->spec.id);
        log_info("node=%s guest=%s destroyed", a->cfg.name, j->spec.name);
        {
            struct msg m = {.type = MSG_ACK};
            m.u.ack.ref = j->ref;
            memcpy(m.u.ack.id, j->spec.id, sizeof(m.u.ack.id));
            m.u.ack.generation = g->rec.applied_generation;
            send_msg(a, &m);
        }
        send_event(a, j->spec.id, "destroyed", 0, "");
        guest_remove(a, g);
        break;
    case JOB_EXEC:
        if (j->result < 0) {
            send_nack_errno(a, j->ref, j->spec.id, j->result, "exec", j->errtext);
            break;
        }
        {
            struct msg m = {.type = MSG_EXEC_RESULT};
            struct msg_exec_result *e = &m.u.exec_result;
            e->ref = j->ref;
            memcpy(e->id, j->spec.id, sizeof(e->id));
            e->exit_code = j->exec_res.exit_code;
            e->signal = j->exec_res.signal;
            e->timed_out = j->exec_res.timed_out;
            e->truncated = j->exec_res.truncated;
            e->out = j->exec_res.out;
            e->out_len = (uint32_t)j->exec_res.out_len;
            e->err = j->exec_res.err;
            e->err_len = (uint32_t)j->exec_res.err_len;
            send_msg(a, &m); /* the buffers stay owned by the job */
        }
        break;
    case JOB_USAGE: {
        struct msg m = {.type = MSG_USAGE};
        size_t n = 0;
        for (size_t i = 0; i < j->n_samples; i++) {
            if (!j->samples[i].time_ms)
                continue;
            /* Counters since creation: earlier runs' totals plus this run's. */
            const struct guest *sg = guest_find(a, j->samples[i].id);
            if (sg && a->backend->ops->net_per_run)
                usage_fold_net(&j->samples[i], &sg->rec.baseline);
            j->samples[n++] = j->samples[i];
        }
        a->usage_pending = false;
        if (n == 0)
            break;
        m.u.usage.n_samples = (uint32_t)n;
        m.u.usage.samples = j->samples;
        send_msg(a, &m); /* samples stay owned by the job */
        break;
    }
    }
    job_free(j);
    lane_kick(a, l);
}

/* ---- exits and stops -------------------------------------------------- */

static void
guest_stopped(agent_t *a, struct guest *g, int exit_code, const char *why)
{
    bool asked = g->stopping;

    watch_stop(g);
    if (g->timer_init)
        uv_timer_stop(&g->stop_timer);
    g->rec.rt = (struct guest_runtime){0};
    g->stopping = false;
    if (asked)
        g->rec.desired = STORE_DESIRED_STOPPED;
    store_save(a, g);
    log_info("node=%s guest=%s stopped (%s)", a->cfg.name, g->rec.spec.name, why);
    send_event(a, g->rec.spec.id, asked ? "stopped" : "exited", exit_code, why);
    if (g->stop_ref) {
        send_ack(a, g->stop_ref, g);
        g->stop_ref = 0;
    }
}

static void
on_init_exit(uv_poll_t *p, int status, int events)
{
    struct exit_watch *w = p->data;
    struct guest *g = w->guest;
    int wstatus = 0, code = -1;
    char why[64] = "init exited";

    if (!g)
        return;
    agent_t *a = g->agent;

    /* Reap it when it is our child; an adopted init is reaped by the host's init. */
    if (waitpid(g->rec.rt.pid, &wstatus, WNOHANG) == g->rec.rt.pid) {
        if (WIFEXITED(wstatus)) {
            code = WEXITSTATUS(wstatus);
            snprintf(why, sizeof(why), "init exited with status %d", code);
        } else if (WIFSIGNALED(wstatus)) {
            snprintf(why, sizeof(why), "init killed by signal %d", WTERMSIG(wstatus));
        }
    }
    /* Make sure nothing of the guest is left running before calling it stopped. */
    struct job *j = job_new(a, &a->ops, JOB_KILL, 0, g);
    job_queue(a, j);
    guest_stopped(a, g, code, why);
}

static void
on_stop_timeout(uv_timer_t *t)
{
    struct guest *g = t->data;
    agent_t *a = g->agent;

    if (!g->rec.rt.pid)
        return;
    log_notice("node=%s guest=%s did not halt in time, killing it", a->cfg.name, g->rec.spec.name);
    job_queue(a, job_new(a, &a->ops, JOB_KILL, 0, g));
}

/* ---- commands --------------------------------------------------------- */

static void
cmd_apply(agent_t *a, const struct msg *m)
{
    const struct guest_spec *s = &m->u.apply;
    struct guest *g = guest_find(a, s->id);
    struct guest *same_name = guest_find_name(a, s->name);

    if (same_name && same_name != g) {
        send_nack(a, m->id, s->id, MSG_ERR_CONFLICT, "another guest on this node has that name");
        return;
    }
    if (g && g->destroying) {
        send_nack(a, m->id, s->id, MSG_ERR_CONFLICT, "guest is being destroyed");
        return;
    }
    if (g && s->generation <= g->rec.applied_generation) {
        /* Already applied (a re-send), or older than what we have: nothing to do. */
        send_ack(a, m->id, g);
        return;
    }
    if (g && !store_ids_match(&g->rec, s)) {
        send_nack(a, m->id, s->id, MSG_ERR_UNSUPPORTED,
                  "the privileged flag is fixed when a guest is created: recreate the guest");
        return;
    }
    bool existed = g != NULL;
    if (!g) {
        struct store_record rec = {.spec = *s, .applied_generation = 0};
        if ((uint32_t)a->n_guests >= a->facts.max_guests) {
            send_nack(a, m->id, s->id, MSG_ERR_NO_SPACE, "node is at its guest limit");
            return;
        }
        /* Its own block of host uids, from those no guest of ours holds
         * (including guests whose create is still queued). */
        if (!(s->flags & SPEC_FLAG_PRIVILEGED)) {
            _cleanup_free_ uint32_t *used = xcalloc(a->n_guests + 1, sizeof(*used));
            for (size_t i = 0; i < a->n_guests; i++)
                used[i] = a->guests[i]->rec.ids.uid_base;
            if (store_uid_block_pick(used, a->n_guests, &rec.ids) < 0) {
                send_nack(a, m->id, s->id, MSG_ERR_NO_SPACE, "no free block of host uids");
                return;
            }
        }
        g = guest_add(a, &rec);
    }
    struct job *j = job_new(a, &a->ops, JOB_APPLY, m->id, g);
    j->spec = *s;
    j->existed = existed;
    job_queue(a, j);
}

static struct guest *
guest_for_command(agent_t *a, const struct msg *m, const char *id)
{
    struct guest *g = guest_find(a, id);

    if (!g) {
        send_nack(a, m->id, id, MSG_ERR_NOT_FOUND, "no such guest on this node");
        return NULL;
    }
    if (g->destroying) {
        send_nack(a, m->id, id, MSG_ERR_CONFLICT, "guest is being destroyed");
        return NULL;
    }
    return g;
}

static void
cmd_start(agent_t *a, const struct msg *m)
{
    struct guest *g = guest_for_command(a, m, m->u.guest.id);

    if (!g)
        return;
    if (g->rec.spec.flags & SPEC_FLAG_LOCK) {
        send_nack(a, m->id, g->rec.spec.id, MSG_ERR_LOCKED, "guest is locked");
        return;
    }
    if (g->rec.rt.pid && !g->stopping) {
        send_ack(a, m->id, g);
        return;
    }
    if (g->stopping) {
        send_nack(a, m->id, g->rec.spec.id, MSG_ERR_BUSY, "guest is stopping");
        return;
    }
    job_queue(a, job_new(a, &a->ops, JOB_START, m->id, g));
}

static void
cmd_stop(agent_t *a, const struct msg *m)
{
    struct guest *g = guest_for_command(a, m, m->u.guest.id);
    uint32_t timeout;

    if (!g)
        return;
    if (!g->rec.rt.pid) {
        g->rec.desired = STORE_DESIRED_STOPPED;
        store_save(a, g);
        send_ack(a, m->id, g);
        return;
    }
    if (g->stop_ref && g->stop_ref != m->id)
        /* A second stop while one is pending: answer the earlier one now. */
        send_nack(a, g->stop_ref, g->rec.spec.id, MSG_ERR_BUSY, "superseded by a later stop");
    g->stop_ref = m->id;
    if (g->stopping)
        return;
    g->stopping = true;
    timeout = m->u.guest.timeout ? m->u.guest.timeout : g->rec.spec.stop_timeout;
    if (!timeout)
        timeout = 30;
    if (!g->timer_init) {
        uv_timer_init(a->loop, &g->stop_timer);
        g->stop_timer.data = g;
        g->timer_init = true;
    }
    uv_timer_start(&g->stop_timer, on_stop_timeout, (uint64_t)timeout * 1000, 0);
    job_queue(a, job_new(a, &a->ops, JOB_STOP, m->id, g));
}

static void
cmd_destroy(agent_t *a, const struct msg *m)
{
    struct guest *g = guest_find(a, m->u.guest.id);

    if (!g) {
        /* Gone is gone: destroy is idempotent. */
        struct msg ack = {.type = MSG_ACK};
        ack.u.ack.ref = m->id;
        strscpy(ack.u.ack.id, m->u.guest.id, sizeof(ack.u.ack.id));
        send_msg(a, &ack);
        return;
    }
    if (g->destroying)
        return; /* the pending destroy answers */
    g->destroying = true;
    watch_stop(g);
    if (g->timer_init)
        uv_timer_stop(&g->stop_timer);
    job_queue(a, job_new(a, &a->ops, JOB_DESTROY, m->id, g));
}

static void
cmd_exec(agent_t *a, const struct msg *m)
{
    const struct msg_guest_exec *e = &m->u.exec;
    struct guest *g = guest_for_command(a, m, e->id);

    if (!g)
        return;
    if (g->rec.spec.flags & SPEC_FLAG_PRIVATE) {
        send_nack(a, m->id, e->id, MSG_ERR_PRIVATE, "guest is private: no exec");
        return;
    }
    if (g->rec.spec.flags & SPEC_FLAG_LOCK) {
        send_nack(a, m->id, e->id, MSG_ERR_LOCKED, "guest is locked");
        return;
    }
    if (!g->rec.rt.pid) {
        send_nack(a, m->id, e->id, MSG_ERR_CONFLICT, "guest is not running");
        return;
    }
    struct job *j = job_new(a, &a->execs, JOB_EXEC, m->id, g);
    j->exec = *e;
    j->exec.argv = xcalloc(e->argc + 1, sizeof(char *));
    for (uint32_t i = 0; i < e->argc; i++)
        j->exec.argv[i] = xstrdup(e->argv[i]);
    job_queue(a, j);
}

static void on_heartbeat(uv_timer_t *t);

static void
on_frame(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    agent_t *a = userdata;
    struct msg m;
    char err[256] = "";

    a->last_rx_ms = time_mono_ms();
    int r = msg_decode(buf, len, &m, err, sizeof(err));
    if (r < 0) {
        enum msg_error code = r == -ENOMSG            ? MSG_ERR_UNKNOWN_TYPE
                              : r == -EPROTONOSUPPORT ? MSG_ERR_VERSION
                                                      : MSG_ERR_BAD_REQUEST;
        log_warning("node=%s bad message from master: %s, ignoring", a->cfg.name, err);
        send_nack(a, m.id, NULL, code, err);
        msg_clear(&m);
        return;
    }
    switch (m.type) {
    case MSG_HEARTBEAT:
        break; /* the master's echo: last_rx_ms is all it is for */
    case MSG_WELCOME:
        a->welcomed = true;
        a->unanswered_hellos = 0;
        if (m.u.welcome.heartbeat_ms && m.u.welcome.heartbeat_ms != a->cfg.heartbeat_ms) {
            a->cfg.heartbeat_ms = m.u.welcome.heartbeat_ms;
            uv_timer_start(&a->heartbeat, on_heartbeat, a->cfg.heartbeat_ms, a->cfg.heartbeat_ms);
        }
        log_info("node=%s welcomed by the master", a->cfg.name);
        break;
    case MSG_NACK:
        /* A master that restarted does not know us: say hello again. */
        if (m.u.nack.code == MSG_ERR_NOT_FOUND && !m.u.nack.id[0]) {
            a->welcomed = false;
            send_hello(a);
        }
        break;
    case MSG_GUEST_APPLY:
        cmd_apply(a, &m);
        break;
    case MSG_GUEST_START:
        cmd_start(a, &m);
        break;
    case MSG_GUEST_STOP:
        cmd_stop(a, &m);
        break;
    case MSG_GUEST_DESTROY:
        cmd_destroy(a, &m);
        break;
    case MSG_GUEST_EXEC:
        cmd_exec(a, &m);
        break;
    default:
        send_nack(a, m.id, NULL, MSG_ERR_UNKNOWN_TYPE, "not a command a node accepts");
        break;
    }
    msg_clear(&m);
}

/* ---- timers ----------------------------------------------------------- */

static void
on_heartbeat(uv_timer_t *t)
{
    agent_t *a = t->data;
    struct msg m = {.type = MSG_HEARTBEAT};
    uint32_t running = 0;

    uint64_t now = time_mono_ms();

    /* The master echoes every heartbeat. Silence for three intervals means the
     * connection is gone, possibly for good (libzmq does not reconnect after a
     * protocol error): reconnect and say hello again. */
    if (a->welcomed && now - a->last_rx_ms > 3ULL * a->cfg.heartbeat_ms) {
        log_warning("node=%s master silent for %" PRIu64 " ms, reconnecting", a->cfg.name,
                    now - a->last_rx_ms);
        a->welcomed = false;
        link_reconnect(a->link);
        send_hello(a);
        return;
    }
    if (!a->welcomed) {
        if (now - a->last_hello_ms >= HELLO_RETRY_MS) {
            if (a->unanswered_hellos >= 3) {
                link_reconnect(a->link);
                a->unanswered_hellos = 0;
            }
            send_hello(a);
        }
        return;
    }
    for (size_t i = 0; i < a->n_guests; i++)
        running += a->guests[i]->rec.rt.pid != 0;
    m.u.heartbeat.seq = ++a->heartbeat_seq;
    m.u.heartbeat.n_guests = (uint32_t)a->n_guests;
    m.u.heartbeat.n_running = running;
    send_msg(a, &m);
}

static void
on_usage(uv_timer_t *t)
{
    agent_t *a = t->data;
    size_t n = 0;

    if (a->usage_pending || !a->welcomed)
        return;
    for (size_t i = 0; i < a->n_guests; i++)
        n += a->guests[i]->rec.rt.pid != 0 && !a->guests[i]->destroying;
    if (n == 0)
        return;
    if (n > PROTO_MAX_SAMPLES)
        n = PROTO_MAX_SAMPLES;
    struct job *j = job_new(a, &a->ops, JOB_USAGE, 0, NULL);
    j->usage_specs = xcalloc(n, sizeof(*j->usage_specs));
    j->usage_rts = xcalloc(n, sizeof(*j->usage_rts));
    j->samples = xcalloc(n, sizeof(*j->samples));
    for (size_t i = 0, k = 0; i < a->n_guests && k < n; i++) {
        const struct guest *g = a->guests[i];
        if (!g->rec.rt.pid || g->destroying)
            continue;
        j->usage_specs[k] = g->rec.spec;
        j->usage_rts[k] = g->rec.rt;
        k++;
    }
    j->n_samples = n;
    a->usage_pending = true;
    job_queue(a, j);
}

/* ---- start-up: re-adoption -------------------------------------------- */

/* Re-adopts every guest of the store: a running one is checked by pid plus
 * start time and watched again; nothing is started twice. A guest that was
 * meant to run but is gone (the host rebooted) is started again only when its
 * spec says autostart. */
static void
adopt_all(agent_t *a)
{
    size_t n = store_count(a->store);

    for (size_t i = 0; i < n; i++) {
        struct guest *g = guest_add(a, store_at(a->store, i));
        enum guest_state st = GUEST_ABSENT;
        int r = a->backend->ops->state(a->backend, &g->rec.spec, &g->rec.rt, &st);

        if (r < 0)
            log_warning("node=%s guest=%s state check failed: %s, ignoring", a->cfg.name,
                        g->rec.spec.name, strerror(-r));
        if (st == GUEST_RUNNING && g->rec.rt.pid) {
            if (watch_init(a, g) < 0)
                log_warning("node=%s guest=%s cannot watch init, ignoring", a->cfg.name,
                            g->rec.spec.name);
            log_info("node=%s guest=%s re-adopted, init pid %d", a->cfg.name, g->rec.spec.name,
                     (int)g->rec.rt.pid);
            continue;
        }
        if (g->rec.rt.pid) {
            g->rec.rt = (struct guest_runtime){0};
            store_save(a, g);
        }
        if (st == GUEST_ABSENT)
            log_warning("node=%s guest=%s is in the store but its disk is missing", a->cfg.name,
                        g->rec.spec.name);
        else if (g->rec.desired == STORE_DESIRED_RUNNING && g->rec.spec.autostart &&
                 !(g->rec.spec.flags & SPEC_FLAG_LOCK))
            job_queue(a, job_new(a, &a->ops, JOB_START, 0, g));
    }
}

agent_t *
agent_new(uv_loop_t *loop, const struct agent_config *cfg, backend_t *backend, int *err)
{
    agent_t *a = xcalloc(1, sizeof(*a));
    int r;

    a->loop = loop;
    a->cfg = *cfg;
    a->backend = backend;
    if (!a->cfg.heartbeat_ms)
        a->cfg.heartbeat_ms = 5000;
    if (!a->cfg.usage_ms)
        a->cfg.usage_ms = 10000;

    r = backend->ops->probe(backend, &a->facts);
    if (r < 0)
        goto fail;
    r = cfg->memory_store ? store_open_memory(&a->store) : store_open(cfg->state_dir, &a->store);
    if (r < 0)
        goto fail;
    if (r > 0)
        log_warning("node=%s %d unreadable guest records were set aside as *.corrupt-*; "
                    "their guests are not managed until repaired",
                    cfg->name, r);
    a->link = link_new_dealer(cfg->master, cfg->name, &r);
    if (!a->link)
        goto fail;
    r = zwatch_init(loop, &a->watch, a->link, on_frame, a);
    if (r < 0)
        goto fail;

    uv_timer_init(loop, &a->heartbeat);
    a->heartbeat.data = a;
    uv_timer_init(loop, &a->usage);
    a->usage.data = a;
    a->handles_ready = true;

    adopt_all(a);
    send_hello(a);
    uv_timer_start(&a->heartbeat, on_heartbeat, a->cfg.heartbeat_ms, a->cfg.heartbeat_ms);
    uv_timer_start(&a->usage, on_usage, a->cfg.usage_ms, a->cfg.usage_ms);
    return a;

fail:
    *err = r;
    agent_destroy(&a);
    return NULL;
}

void
agent_shutdown(agent_t *a)
{
    if (!a || a->closing)
        return;
    a->closing = true;
    log_info("node=%s shutting down; guests keep running", a->cfg.name);
    if (a->handles_ready) {
        uv_close((uv_handle_t *)&a->heartbeat, NULL);
        uv_close((uv_handle_t *)&a->usage, NULL);
        zwatch_close(&a->watch, NULL);
    }
    for (size_t i = 0; i < a->n_guests; i++) {
        struct guest *g = a->guests[i];
        watch_stop(g);
        if (g->timer_init) {
            g->handles_open++;
            g->timer_init = false;
            uv_close((uv_handle_t *)&g->stop_timer, guest_handle_closed);
        }
    }
}

void
agent_destroy(agent_t **p)
{
    agent_t *a = *p;

    if (!a)
        return;
    /* Guests whose handles are still closing are freed by their close callbacks. */
    for (size_t i = 0; i < a->n_guests; i++) {
        if (a->guests[i]->handles_open == 0)
            free(a->guests[i]);
        else
            a->guests[i]->orphaned = true;
    }
    free(a->guests);
    store_close(&a->store);
    link_destroy(&a->link);
    if (a->backend)
        a->backend->ops->free(a->backend);
    free(a);
    *p = NULL;
}
