#include "master/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/guests.h"
#include "master/reconcile.h"
#include "master/shell.h"
#include "master/usage.h"
#include "master/waiters.h"

int
session_send_raw(master_t *m, const char *node, const void *buf, size_t len)
{
    struct registry_node *n = registry_get(m->reg, node);

    if (!n || n->link < 0 || (unsigned)n->link >= m->n_links)
        return -EHOSTUNREACH;
    return link_send(m->links[n->link].link, node, buf, len);
}

void
session_send(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = msg_encode(msg, &buf, &len);

    if (r < 0) {
        log_warning("cannot encode %s for node=%s: %s, ignoring", msg_type_name(msg->type), peer,
                    strerror(-r));
        return;
    }
    r = link_send(ml->link, peer, buf, len);
    if (r < 0)
        log_debug("node=%s send %s failed: %s, ignoring", peer, msg_type_name(msg->type),
                  strerror(-r));
}

static void
send_nack(master_t *m, struct mlink *ml, const char *peer, uint64_t ref, enum msg_error code,
          const char *text)
{
    struct msg n = {.type = MSG_NACK};

    n.u.nack.ref = ref;
    n.u.nack.code = code;
    snprintf(n.u.nack.message, sizeof(n.u.nack.message), "%s", text);
    session_send(m, ml, peer, &n);
}

static void
on_hello(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    const struct msg_hello *h = &msg->u.hello;
    struct registry_node *n = NULL;
    int r;

    if (strcmp(h->node, peer) != 0) {
        send_nack(m, ml, peer, msg->id, MSG_ERR_BAD_REQUEST,
                  "hello names another node than the connection's identity");
        return;
    }
    r = registry_hello(m->reg, h, &n);
    if (r < 0) {
        send_nack(m, ml, peer, msg->id, r == -EINVAL ? MSG_ERR_BAD_REQUEST : MSG_ERR_INTERNAL,
                  "hello refused");
        log_warning("node=%s hello refused: %s", peer, strerror(-r));
        return;
    }
    n->link = ml->index;
    struct msg w = {.type = MSG_WELCOME};
    w.u.welcome.heartbeat_ms = m->cfg.heartbeat_ms;
    w.u.welcome.usage_ms = m->cfg.usage_ms;
    session_send(m, ml, peer, &w);
    log_info("node=%s hello: %u guests, backend %s", peer, h->n_inventory, h->backend);

    /* Whatever was unanswered goes again, then the inventory is reconciled. */
    dispatch_flush(m->disp, peer);
    reconcile_hello(m, peer, h);
}

static void
on_ack(master_t *m, const char *node, const struct msg_ack *a)
{
    struct dispatch_done done = {0};
    bool matched = dispatch_complete(m->disp, node, a->ref, &done) == 0;
    struct db_guest g = {0};

    if (!a->id[0])
        return;
    if (matched && done.type == MSG_GUEST_DESTROY) {
        /* Gone from the node; a record already gone (forced delete) is fine. */
        int r = guests_remove(m, a->id);
        if (r < 0 && r != -ENOENT)
            log_error("guest %s destroyed on node=%s but its record stays: %s", a->id, node,
                      strerror(-r));
        waiters_guest_deleted(m, a->id);
        return;
    }
    if (db_guest_get_by_id(m->db, a->id, &g) < 0)
        return;
    if (!g.node || strcmp(g.node, node) != 0) {
        db_guest_clear(&g);
        return;
    }
    if (a->generation > 0)
        db_guest_set_applied(m->db, a->id, a->generation);
    if (guests_deleting(m, &g)) {
        db_guest_clear(&g);
        return;
    }
    enum db_observed obs;
    if (a->running)
        obs = DB_OBS_RUNNING;
    else if (matched && done.type == MSG_GUEST_APPLY && g.desired == DB_DESIRED_RUNNING &&
             dispatch_pending(m->disp, node, MSG_GUEST_START, a->id))
        obs = DB_OBS_PENDING; /* created, its start follows */
    else
        obs = DB_OBS_STOPPED;
    if (matched || obs != g.observed)
        guests_observed(m, &g, obs, NULL);
    if (matched && done.type == MSG_GUEST_APPLY)
        waiters_applied(m, a->id, a->generation);
    db_guest_clear(&g);
}

/* The node refused to apply a change to a guest it already runs (a disk it
 * cannot grow online, no space): the guest stays as it was, in its state,
 * with the reason; a PATCH waiting for it is answered with the refusal. */
static bool
change_refused(master_t *m, const char *node, const struct dispatch_done *done,
               const struct msg_nack *n)
{
    struct db_guest g = {0};
    bool refused = false;

    if (done->type != MSG_GUEST_APPLY || db_guest_get_by_id(m->db, done->guest, &g) < 0)
        return false;
    if (g.node && !strcmp(g.node, node) && g.applied_generation > 0) {
        char msg[PROTO_MAX_STRING + 64];
        snprintf(msg, sizeof(msg), "the node refused generation %llu: %s",
                 (unsigned long long)done->generation, n->message);
        if (db_guest_set_observed(m->db, g.id, g.observed, msg) < 0)
            log_debug("guest=%s cannot store the refusal, ignoring", g.name);
        waiters_apply_refused(m, g.id, done->generation, n);
        refused = true;
    }
    db_guest_clear(&g);
    return refused;
}

static void
on_nack(master_t *m, const char *node, const struct msg_nack *n)
{
    struct dispatch_done done = {0};

    /* Busy means "later": the command stays queued and goes again with backoff. */
    if (n->code == MSG_ERR_BUSY && dispatch_defer(m->disp, node, n->ref, &done) == 0) {
        log_info("node=%s busy with guest %s, %s deferred: %s", node, done.guest,
                 msg_type_name(done.type), n->message);
        return;
    }
    if (dispatch_complete(m->disp, node, n->ref, &done) < 0)
        return;
    log_warning("node=%s refused %s of guest %s: %s: %s", node, msg_type_name(done.type),
                done.guest, msg_error_name(n->code), n->message);
    switch (done.type) {
    case MSG_GUEST_EXEC:
        waiters_nack(m, WAIT_EXEC, NULL, n->ref, n);
        return;
    case MSG_GUEST_DESTROY:
        waiters_nack(m, WAIT_DELETE, done.guest, 0, n);
        return;
    default:
        break;
    }
    if (change_refused(m, node, &done, n))
        return;
    guests_observed_id(m, done.guest, DB_OBS_ERROR, n->message);
    waiters_apply_refused(m, done.guest, done.generation, n);
}

static void
on_event(master_t *m, const char *node, const struct msg_event *e)
{
    struct db_guest g = {0};
    enum db_observed obs;

    if (!e->id[0])
        return;
    if (!strcmp(e->kind, "started"))
        obs = DB_OBS_RUNNING;
    else if (!strcmp(e->kind, "stopped") || !strcmp(e->kind, "exited"))
        obs = DB_OBS_STOPPED;
    else
        return;
    if (db_guest_get_by_id(m->db, e->id, &g) < 0)
        return;
    if (g.node && !strcmp(g.node, node) && !guests_deleting(m, &g))
        guests_observed(m, &g, obs, obs == DB_OBS_STOPPED && e->message[0] ? e->message : NULL);
    db_guest_clear(&g);
}

/* Everything a welcomed node may send after its hello. */
static void
on_message(master_t *m, struct mlink *ml, const char *peer, struct msg *msg)
{
    switch (msg->type) {
    case MSG_HEARTBEAT: {
        struct msg echo = {.type = MSG_HEARTBEAT};
        echo.u.heartbeat = msg->u.heartbeat;
        session_send(m, ml, peer, &echo);
        break;
    }
    case MSG_ACK:
        if (!shell_on_answer(m, peer, msg))
            on_ack(m, peer, &msg->u.ack);
        break;
    case MSG_NACK:
        if (!shell_on_answer(m, peer, msg))
            on_nack(m, peer, &msg->u.nack);
        break;
    case MSG_STREAM_DATA:
    case MSG_STREAM_ACK:
    case MSG_STREAM_EXIT:
        shell_on_stream(m, peer, msg);
        break;
    case MSG_USAGE:
        usage_report(m, &msg->u.usage);
        break;
    case MSG_EVENT:
        on_event(m, peer, &msg->u.event);
        break;
    case MSG_EXEC_RESULT:
        if (dispatch_complete(m->disp, peer, msg->u.exec_result.ref, NULL) == 0)
            waiters_exec_result(m, msg->u.exec_result.ref, &msg->u.exec_result);
        break;
    default:
        send_nack(m, ml, peer, msg->id, MSG_ERR_UNKNOWN_TYPE, "not a message a master accepts");
        break;
    }
}

void
session_on_frame(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    struct mlink *ml = userdata;
    master_t *m = ml->master;
    struct msg msg;
    char err[256] = "";
    int r = msg_decode(buf, len, &msg, err, sizeof(err));

    if (r < 0) {
        enum msg_error code = r == -ENOMSG            ? MSG_ERR_UNKNOWN_TYPE
                              : r == -EPROTONOSUPPORT ? MSG_ERR_VERSION
                                                      : MSG_ERR_BAD_REQUEST;
        log_warning("node=%s bad message: %s, ignoring", peer, err);
        send_nack(m, ml, peer, msg.id, code, err);
        msg_clear(&msg);
        return;
    }
    master_batch_begin(m);
    if (msg.type == MSG_HELLO) {
        on_hello(m, ml, peer, &msg);
        msg_clear(&msg);
        return;
    }
    r = registry_seen(m->reg, peer);
    if (r <= 0) {
        /* A node this master does not know (it restarted, or the node was
         * down): a nack not_found without a guest makes it say hello. */
        send_nack(m, ml, peer, msg.id, MSG_ERR_NOT_FOUND, "unknown node: say hello");
        msg_clear(&msg);
        return;
    }
    struct registry_node *n = registry_get(m->reg, peer);
    if (n)
        n->link = ml->index;
    on_message(m, ml, peer, &msg);
    msg_clear(&msg);
}

void
session_poke_unwelcomed(master_t *m)
{
    struct msg n = {.type = MSG_NACK};
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    n.u.nack.code = MSG_ERR_NOT_FOUND;
    snprintf(n.u.nack.message, sizeof(n.u.nack.message), "unknown node: say hello");
    if (msg_encode(&n, &buf, &len) < 0)
        return;
    for (size_t i = 0; i < registry_count(m->reg); i++) {
        struct registry_node *rn = registry_at(m->reg, i);
        if (rn->welcomed)
            continue;
        for (unsigned k = 0; k < m->n_links; k++)
            link_send(m->links[k].link, rn->name, buf, len);
    }
}
