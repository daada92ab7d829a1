/* The node agent's lifecycle and its session with the master: start-up
 * (store, re-adoption, link), hello until welcome, heartbeats and the
 * reconnect on silence, frames in, the usage timer, shutdown. The commands
 * are in agent_cmd.c, the jobs in agent_jobs.c, the guest table in
 * agent_guest.c, messages out in agent_send.c. Loop thread. */
#include "node/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"

#define HELLO_RETRY_MS 2000 /* re-send hello until the master welcomes us */

/* ---- timers ----------------------------------------------------------- */

static void
on_heartbeat(uv_timer_t *t)
{
    agent_t *a = t->data;
    uint64_t now = time_mono_ms();

    /* The master echoes every heartbeat. Silence for three intervals means the
     * connection is gone, possibly for good (libzmq does not reconnect after a
     * protocol error): reconnect and say hello again. */
    /* A refused handshake (our key revoked) ends the session at once: no
     * need to wait for the silence. */
    if (a->welcomed && link_refused(a->link)) {
        log_error("node=%s the master at \"%s\" refused this node's key: revoked, or not the "
                  "master it joined; retrying",
                  a->cfg.name, a->cfg.master);
        a->refused_logged = true;
        a->welcomed = false;
        return;
    }
    if (a->welcomed && now - a->last_rx_ms > 3ULL * a->cfg.heartbeat_ms) {
        log_warning("node=%s master silent for %" PRIu64 " ms, reconnecting", a->cfg.name,
                    now - a->last_rx_ms);
        a->welcomed = false;
        link_reconnect(a->link);
        agent_send_hello(a);
        return;
    }
    if (!a->welcomed) {
        /* Said once per refusal: the master's ZAP handler does not know this
         * key (revoked, or another master than the one joined). */
        if (link_refused(a->link) && !a->refused_logged) {
            log_error("node=%s the master at \"%s\" refused this node's key: revoked, or not "
                      "the master it joined; retrying",
                      a->cfg.name, a->cfg.master);
            a->refused_logged = true;
        }
        if (now - a->last_hello_ms >= HELLO_RETRY_MS) {
            if (a->unanswered_hellos >= 3) {
                link_reconnect(a->link);
                a->unanswered_hellos = 0;
            }
            agent_send_hello(a);
        }
        return;
    }
    agent_send_heartbeat(a);
}

static void
on_usage(uv_timer_t *t)
{
    agent_t *a = t->data;

    if (a->usage_pending || !a->welcomed)
        return;
    agent_job_usage(a);
}

/* ---- frames in -------------------------------------------------------- */

static void
on_welcome(agent_t *a, const struct msg_welcome *w)
{
    a->welcomed = true;
    a->refused_logged = false;
    a->unanswered_hellos = 0;
    if (w->heartbeat_ms && w->heartbeat_ms != a->cfg.heartbeat_ms) {
        a->cfg.heartbeat_ms = w->heartbeat_ms;
        uv_timer_start(&a->heartbeat, on_heartbeat, a->cfg.heartbeat_ms, a->cfg.heartbeat_ms);
    }
    log_info("node=%s welcomed by the master", a->cfg.name);
}

/* A frame that is not a valid message: nack it with the request id when the
 * decoder could read one, so the master can tell which request failed. */
static void
on_bad_frame(agent_t *a, const struct msg *m, int r, const char *err)
{
    enum msg_error code = r == -ENOMSG            ? MSG_ERR_UNKNOWN_TYPE
                          : r == -EPROTONOSUPPORT ? MSG_ERR_VERSION
                                                  : MSG_ERR_BAD_REQUEST;

    log_warning("node=%s bad message from master: %s, ignoring", a->cfg.name, err);
    agent_send_nack(a, m->id, NULL, code, err);
}

static void
on_frame(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    agent_t *a = userdata;
    struct msg m;
    char err[256] = "";

    (void)w;
    (void)peer;
    a->last_rx_ms = time_mono_ms();
    int r = msg_decode(buf, len, &m, err, sizeof(err));
    if (r < 0) {
        on_bad_frame(a, &m, r, err);
        msg_clear(&m);
        return;
    }
    switch (m.type) {
    case MSG_HEARTBEAT:
        break; /* the master's echo: last_rx_ms is all it is for */
    case MSG_WELCOME:
        on_welcome(a, &m.u.welcome);
        break;
    case MSG_NACK:
        /* A master that restarted does not know us: say hello again. */
        if (m.u.nack.code == MSG_ERR_NOT_FOUND && !m.u.nack.id[0]) {
            a->welcomed = false;
            agent_send_hello(a);
        }
        break;
    default:
        if (!agent_cmd_handle(a, &m))
            agent_send_nack(a, m.id, NULL, MSG_ERR_UNKNOWN_TYPE, "not a command a node accepts");
        break;
    }
    msg_clear(&m);
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
        struct agent_guest *g = agent_guest_add(a, store_at(a->store, i));
        enum guest_state st = GUEST_ABSENT;
        int r = a->backend->ops->state(a->backend, &g->rec.spec, &g->rec.rt, &st);

        if (r < 0)
            log_warning("node=%s guest=%s state check failed: %s, ignoring", a->cfg.name,
                        g->rec.spec.name, strerror(-r));
        if (st == GUEST_RUNNING && g->rec.rt.pid) {
            if (agent_guest_watch(a, g) < 0)
                log_warning("node=%s guest=%s cannot watch init, ignoring", a->cfg.name,
                            g->rec.spec.name);
            log_info("node=%s guest=%s re-adopted, init pid %d", a->cfg.name, g->rec.spec.name,
                     (int)g->rec.rt.pid);
            continue;
        }
        if (g->rec.rt.pid) {
            g->rec.rt = (struct guest_runtime){0};
            agent_guest_save(a, g);
        }
        if (st == GUEST_ABSENT)
            log_warning("node=%s guest=%s is in the store but its disk is missing", a->cfg.name,
                        g->rec.spec.name);
        else if (g->rec.desired == STORE_DESIRED_RUNNING && g->rec.spec.autostart &&
                 !(g->rec.spec.flags & SPEC_FLAG_LOCK))
            agent_job_start(a, g, 0);
    }
}

/* ---- lifecycle -------------------------------------------------------- */

agent_t *
agent_new(uv_loop_t *loop, const struct agent_config *cfg, backend_t *backend, int *err)
{
    agent_t *a = xcalloc(1, sizeof(*a));
    int r;

    a->loop = loop;
    a->cfg = *cfg;
    a->backend = backend;
    a->ops = lane_new(loop);
    a->execs = lane_new(loop);
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
    if (cfg->curve) {
        struct link_keys keys = {a->cfg.public_key, a->cfg.secret_key, a->cfg.server_key};
        a->link = link_new_dealer_curve(cfg->master, cfg->name, &keys, &r);
    } else {
        a->link = link_new_dealer(cfg->master, cfg->name, &r);
    }
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
    agent_send_hello(a);
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
    agent_guest_close_all(a);
}

void
agent_destroy(agent_t **p)
{
    agent_t *a = *p;

    if (!a)
        return;
    agent_guest_free_all(a);
    lane_destroy(&a->ops);
    lane_destroy(&a->execs);
    store_close(&a->store);
    link_destroy(&a->link);
    if (a->backend)
        a->backend->ops->free(a->backend);
    free(a);
    *p = NULL;
}
