/* Moving a guest, the sending side (agent_migrate.h): guest.migrate.send
 * stops the guest (cold) or copies it while it runs (near-live), freezes it,
 * sends the last pass, and answers with the image's digest and the guest's
 * counters; guest.migrate.abort on the source thaws it and starts it again
 * when it ran. The copy passes run on a thread of their own (proto/xfer.h
 * blocks), which wakes the loop for progress and at its end. Loop thread,
 * except pass_main and on_progress. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_migrate.h"

#define PROGRESS_MS 500 /* progress reports to the master at most this often */

/* ---- the pass thread ---- */

static void
on_progress(void *userdata, const struct xfer_stats *st)
{
    struct migration *m = userdata;

    pthread_mutex_lock(&m->lock);
    m->progress = *st;
    pthread_mutex_unlock(&m->lock);
    uv_async_send(&m->wake);
}

/* The CRIU preflight, said once in the move's note. */
static void
criu_note(struct migration *m, backend_t *b)
{
    char why[200] = "";

    if (!b->ops->migrate_criu) {
        snprintf(m->note, sizeof(m->note), "near-live copy (this backend has no CRIU)");
        return;
    }
    int r = b->ops->migrate_criu(b, why, sizeof(why));
    if (r == 0)
        snprintf(m->note, sizeof(m->note),
                 "criu check passed, but vfleet does not checkpoint with CRIU yet: "
                 "near-live copy (freeze, last delta, start on the target)");
    else if (snprintf(m->note, sizeof(m->note),
                      "CRIU cannot be used on this host (criu check: %s): near-live copy "
                      "instead (freeze, last delta, start on the target)",
                      why) >= (int)sizeof(m->note))
        log_debug("the move's note is cut to %zu bytes", sizeof(m->note) - 1);
}

static void *
pass_main(void *arg)
{
    struct migration *m = arg;
    agent_t *a = m->agent;
    backend_t *b = a->backend;
    struct guest_spec spec = {0};
    char image[512], incoming[512];
    int fd = -1, r = 0;

    strscpy(spec.id, m->id, sizeof(spec.id));
    if (m->live && !m->final_pass)
        criu_note(m, b);
    struct xfer_keys keys;
    if (!m->send)
        r = xfer_send_new(m->target, m->secret, mig_keys(a, m, &keys), &m->send);
    if (r < 0)
        snprintf(m->err, sizeof(m->err), "cannot connect to the target: %s", strerror(-r));
    if (r >= 0 && m->file[0]) {
        fd = open(m->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            r = -errno;
        if (r < 0)
            snprintf(m->err, sizeof(m->err), "cannot open the archive: %s", strerror(-r));
    } else if (r >= 0 && b->ops->migrate_paths) {
        r = b->ops->migrate_paths(b, &spec, image, incoming, sizeof(image));
        fd = r < 0 ? -1 : open(image, O_RDONLY | O_CLOEXEC);
        if (r >= 0 && fd < 0)
            r = -errno;
        if (r < 0)
            snprintf(m->err, sizeof(m->err), "cannot open the guest's image: %s", strerror(-r));
    }
    if (r >= 0)
        r = xfer_send_pass(m->send, fd, m->final_pass, &m->cancel, on_progress, m, m->digest,
                           &m->progress, m->err, sizeof(m->err));
    if (fd >= 0)
        close(fd);
    m->result = r;
    atomic_store(&m->thread_done, true);
    uv_async_send(&m->wake);
    return NULL;
}

static void
start_pass(struct migration *m, bool final)
{
    m->final_pass = final;
    m->result = 0;
    m->err[0] = '\0';
    atomic_store(&m->cancel, false);
    atomic_store(&m->thread_done, false);
    m->pass_started = time_mono_ms();
    int r = pthread_create(&m->thread, NULL, pass_main, m);
    if (r != 0) {
        m->step = MIG_FAILED;
        mig_status(m->agent, m, "send", "failed", -r, "cannot start the copy thread");
        return;
    }
    m->thread_on = true;
}

void
mig_stop_thread(struct migration *m)
{
    if (!m->thread_on)
        return;
    atomic_store(&m->cancel, true);
    pthread_join(m->thread, NULL);
    m->thread_on = false;
}

/* ---- the steps ---- */

static void
send_progress(agent_t *a, struct migration *m)
{
    struct msg s = {.type = MSG_MIGRATE_STATUS};
    struct msg_migrate_status *st = &s.u.migrate_status;
    struct xfer_stats p;
    uint64_t now = time_mono_ms();

    if (now - m->progress_sent_ms < PROGRESS_MS)
        return;
    m->progress_sent_ms = now;
    pthread_mutex_lock(&m->lock);
    p = m->progress;
    pthread_mutex_unlock(&m->lock);
    st->ref = m->ref;
    strscpy(st->op, m->op, sizeof(st->op));
    strscpy(st->id, m->id, sizeof(st->id));
    strscpy(st->phase, "send", sizeof(st->phase));
    strscpy(st->state, "progress", sizeof(st->state));
    st->pass = p.pass;
    st->bytes_total = p.data_total;
    st->bytes_done = p.scanned < p.data_total ? p.scanned : p.data_total;
    snprintf(st->message, sizeof(st->message), "pass %u: %llu bytes sent%s", p.pass,
             (unsigned long long)p.sent, p.sessions > 1 ? " (link resumed)" : "");
    strscpy(st->note, m->note, sizeof(st->note));
    agent_send(a, &s);
}

static void continue_abort(agent_t *a, struct migration *m);

void
mig_on_wake(uv_async_t *h)
{
    struct migration *m = h->data;
    agent_t *a = m->agent;

    if (!m->thread_on || m->closing)
        return;
    if (!atomic_load(&m->thread_done)) {
        send_progress(a, m);
        return;
    }
    pthread_join(m->thread, NULL);
    m->thread_on = false;
    m->stats = m->progress;
    m->copy_ms += time_mono_ms() - m->pass_started;
    if (m->result >= 0)
        m->bytes_sent += m->stats.sent;
    if (m->abort_pending) {
        continue_abort(a, m);
        return;
    }
    if (m->restart_to[0]) {
        /* The target listens elsewhere now (its agent restarted). */
        strscpy(m->target, m->restart_to, sizeof(m->target));
        m->restart_to[0] = '\0';
        xfer_send_destroy(&m->send);
        start_pass(m, m->final_pass);
        return;
    }
    if (m->result < 0) {
        m->step = MIG_FAILED;
        log_error("node=%s guest %s op=%s copy failed: %s", a->cfg.name, m->id, m->op, m->err);
        mig_status(a, m, "send", "failed", m->result, m->err);
        return;
    }
    if (!m->final_pass) {
        m->step = MIG_FREEZING;
        mig_job(a, m, m->id, MJ_FREEZE, m->ref, m->op, false);
        return;
    }
    m->step = MIG_SENT;
    if (m->file[0])
        (void)unlink(m->file); /* the archive is where it was sent now */
    log_info("node=%s guest %s op=%s sent: pass %u, %llu bytes, %u session(s), %s", a->cfg.name,
             m->id, m->op, m->stats.pass, (unsigned long long)m->stats.sent, m->stats.sessions,
             m->curve ? "CurveZMQ" : "plaintext");
    mig_status(a, m, "send", "done", 0, NULL);
}

void
mig_packed(agent_t *a, struct migration *m, int result, const char *why)
{
    if (result < 0) {
        m->step = MIG_FAILED;
        (void)unlink(m->file);
        mig_status(a, m, "send", "failed", result, why);
        return;
    }
    m->frozen_ms = time_real_ms();
    m->step = MIG_FINAL;
    start_pass(m, true);
}

void
mig_frozen(agent_t *a, struct migration *m, int result, const char *why,
           const struct guest_usage *run)
{
    struct agent_guest *g = agent_guest_find(a, m->id);

    if (result < 0 || !g) {
        m->step = MIG_FAILED;
        mig_status(a, m, "send", "failed", g ? result : -ENOENT,
                   g ? why : "the guest is no longer on this node");
        return;
    }
    m->frozen_ms = time_real_ms();
    const struct guest_usage *base = &g->rec.baseline;
    m->counters = (struct msg_migrate_counters){
        base->net_rx_bytes + (run ? run->net_rx_bytes : 0),
        base->net_tx_bytes + (run ? run->net_tx_bytes : 0),
        base->net_rx_packets + (run ? run->net_rx_packets : 0),
        base->net_tx_packets + (run ? run->net_tx_packets : 0),
        base->failcnt[USAGE_FAIL_TCP] + (run ? run->failcnt[USAGE_FAIL_TCP] : 0),
    };
    if (g->rec.desired != STORE_DESIRED_STOPPED || g->dirty) {
        /* Frozen here, about to run elsewhere: a reboot must not start it.
         * A record that cannot say so (the host's disk full; a cold move's
         * stop that could not be written leaves g dirty) fails the move: a
         * reboot of this host would start the guest here while it runs on
         * the target. The master aborts, which thaws it. */
        enum store_desired was = g->rec.desired;
        g->rec.desired = STORE_DESIRED_STOPPED;
        int r = agent_guest_save(a, g);
        if (r < 0) {
            g->rec.desired = was;
            m->step = MIG_FAILED;
            mig_status(a, m, "send", "failed", r, "cannot write local store");
            return;
        }
    }
    m->step = MIG_FINAL;
    start_pass(m, true);
}

static void
on_stop_poll(uv_timer_t *t)
{
    struct migration *m = t->data;
    agent_t *a = m->agent;
    struct agent_guest *g = agent_guest_find(a, m->id);

    if (g && g->rec.rt.pid)
        return;
    uv_timer_stop(t);
    if (!g) {
        m->step = MIG_FAILED;
        mig_status(a, m, "send", "failed", -ENOENT, "the guest is no longer on this node");
        return;
    }
    /* Its kill job (which folds the last run's counters) is ahead in the lane. */
    m->step = MIG_FREEZING;
    mig_job(a, m, m->id, MJ_FREEZE, m->ref, m->op, false);
}

static void
stop_guest(agent_t *a, struct migration *m, struct agent_guest *g)
{
    if (!g->stopping) {
        uint32_t timeout = g->rec.spec.stop_timeout ? g->rec.spec.stop_timeout : 30;
        g->stopping = true;
        agent_guest_arm_stop(a, g, timeout);
        agent_job_stop(a, g, 0);
    }
    m->step = MIG_STOPPING;
    uv_timer_start(&m->timer, on_stop_poll, 100, 100);
}

/* A send for an operation already under way: answer where it stands. */
static bool
send_again(agent_t *a, struct migration *m, const struct msg *msg)
{
    m->ref = msg->id;
    if (m->step == MIG_SENT) {
        mig_status(a, m, "send", "done", 0, NULL);
        return true;
    }
    if (m->step == MIG_FAILED)
        return false; /* try again from the start */
    if (strcmp(msg->u.migrate.endpoint, m->target) != 0) {
        strscpy(m->restart_to, msg->u.migrate.endpoint, sizeof(m->restart_to));
        if (m->thread_on)
            atomic_store(&m->cancel, true);
        else
            strscpy(m->target, m->restart_to, sizeof(m->target));
    }
    mig_status(a, m, "send", "progress", 0, NULL);
    return true;
}

void
mig_send(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);
    struct agent_guest *g = agent_guest_find(a, mg->id);

    if (m && m->source && send_again(a, m, msg))
        return;
    if (m)
        mig_free(m);
    if (!g || g->destroying) {
        mig_status_ref(a, msg->id, mg->op, mg->id, "send", "failed", -ENOENT,
                       "the guest is not on this node");
        return;
    }
    m = mig_new(a, mg->op, mg->id, true);
    m->ref = msg->id;
    strscpy(m->secret, mg->secret, sizeof(m->secret));
    strscpy(m->target, mg->endpoint, sizeof(m->target));
    strscpy(m->peer_key, mg->peer_key, sizeof(m->peer_key));
    if (mg->peer_key[0] && !a->cfg.curve) {
        /* The target admits only this node's key: without it nothing would get through. */
        mig_status_ref(a, msg->id, mg->op, mg->id, "send", "failed", -EOPNOTSUPP,
                       "the target expects this node's CurveZMQ key, and this node has none "
                       "(insecure): join it with a token");
        mig_free(m);
        return;
    }
    struct xfer_keys keys;
    m->curve = mig_keys(a, m, &keys) != NULL;
    m->live = mg->live;
    m->was_running = g->rec.rt.pid != 0;
    _cleanup_free_ struct guest_spec *spec = xmalloc(sizeof(*spec)); /* g's, unpacked */
    agent_guest_spec(g, spec);
    bool frozen =
        a->backend->ops->migrate_frozen && a->backend->ops->migrate_frozen(a->backend, spec) == 1;
    log_info("node=%s guest=%s op=%s sending to %s (%s%s, %s)", a->cfg.name, g->rec.spec.name,
             mg->op, mg->endpoint, m->live ? "near-live" : "cold", frozen ? ", frozen already" : "",
             m->curve ? "CurveZMQ, target's key pinned" : "plaintext, secret only");
    if (mg->archive) {
        /* An export: the guest's files, packed (frozen meanwhile), then sent. */
        m->archive = true;
        snprintf(m->file, sizeof(m->file), "%s/export-%.8s.vfx",
                 a->cfg.state_dir[0] ? a->cfg.state_dir : "/tmp", m->op);
        m->step = MIG_FREEZING;
        mig_job_file(a, m->id, MJ_PACK, m->ref, m->op, false, m->file);
    } else if (frozen) {
        /* An agent restarted after the freeze: only the last pass is left. */
        snprintf(m->note, sizeof(m->note), "resumed with the guest frozen");
        m->step = MIG_FREEZING;
        mig_job(a, m, m->id, MJ_FREEZE, m->ref, m->op, false);
    } else if (m->live && m->was_running) {
        m->step = MIG_PASS1;
        start_pass(m, false);
    } else if (m->was_running) {
        stop_guest(a, m, g);
    } else {
        m->step = MIG_FREEZING;
        mig_job(a, m, m->id, MJ_FREEZE, m->ref, m->op, false);
    }
    mig_status(a, m, "send", "progress", 0, NULL);
}

static void
continue_abort(agent_t *a, struct migration *m)
{
    m->abort_pending = false;
    uv_timer_stop(&m->timer);
    if (!agent_guest_find(a, m->id)) {
        mig_status_ref(a, m->abort_ref, m->op, m->id, "abort", "done", 0, NULL);
        mig_free(m);
        return;
    }
    mig_job(a, m, m->id, MJ_THAW, m->abort_ref, m->op, m->abort_start);
}

void
mig_abort_source(agent_t *a, const struct msg *msg)
{
    const struct msg_migrate *mg = &msg->u.migrate;
    struct migration *m = mig_find(a, mg->op);

    if (!m)
        m = mig_new(a, mg->op, mg->id, true); /* an agent restarted: thaw what is frozen */
    m->abort_ref = msg->id;
    m->abort_start = mg->start;
    if (m->thread_on) {
        m->abort_pending = true;
        atomic_store(&m->cancel, true);
        return;
    }
    continue_abort(a, m);
}
