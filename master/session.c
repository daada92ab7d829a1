#include "master/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/guests.h"
#include "master/operations.h"
#include "master/metrics.h"
#include "master/oncommit.h"
#include "master/reconcile.h"
#include "master/shell.h"
#include "master/trust.h"
#include "master/usage.h"
#include "master/waiters.h"

/* Warnings about what a peer sent are rate-limited (m->peer_log): a flood
 * of junk costs a bounded number of log lines. */
#define peer_warning(m, ...)                                                                       \
    do {                                                                                           \
        uint64_t held_;                                                                            \
        if (ratelimit_ok(&(m)->peer_log, time_mono_ms(), &held_)) {                                \
            if (held_)                                                                             \
                log_warning("node link: %llu warnings about peers were not logged",                \
                            (unsigned long long)held_);                                            \
            log_warning(__VA_ARGS__);                                                              \
        }                                                                                          \
    } while (0)

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

/* ---- what a node's outbox sends: stored once, acknowledged after the commit ---- */

struct ack_ctx {
    char node[NAME_MAX_LEN + 1]; /* to whom */
    uint64_t ref;                /* the message acknowledged */
};

static void
ack_after(master_t *m, void *ctx, int err)
{
    struct ack_ctx *a = ctx;

    /* A rollback acks nothing: the node sends it again. */
    if (err == 0) {
        struct msg k;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        msg_init(&k, MSG_ACK); /* once per guest created: not the whole struct */
        k.u.ack.ref = a->ref;
        if (msg_encode(&k, &buf, &len) == 0 && session_send_raw(m, a->node, buf, len) < 0)
            log_debug("node=%s ack of %llu not sent; its re-send is acked", a->node,
                      (unsigned long long)a->ref);
    }
    free(a);
}

/* Acks node's message ref once the batch that recorded it has committed. */
static void
ack_after_commit(master_t *m, const char *node, uint64_t ref)
{
    struct ack_ctx *a = xcalloc(1, sizeof(*a));

    strscpy(a->node, node, sizeof(a->node));
    a->ref = ref;
    oncommit_add(m->oncommit, ack_after, a);
}

static uint64_t
frame_hash(const void *buf, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const uint8_t *)buf)[i]) * 0x100000001b3ULL;
    return h;
}

/* Events and exec results come from the node's outbox, again until acked:
 * true when this one was handled before (it is only acked again). */
static bool
outbox_duplicate(master_t *m, const char *node, const struct msg *msg, const void *buf, size_t len)
{
    if (msg->type != MSG_EVENT && msg->type != MSG_EXEC_RESULT)
        return false;
    int r = db_node_msg_once(m->db, node, msg->id, frame_hash(buf, len));
    if (r < 0)
        log_error("node=%s cannot record message %llu: %s; handled anyway", node,
                  (unsigned long long)msg->id, strerror(-r));
    ack_after_commit(m, node, msg->id);
    return r == 1;
}

static void
send_welcome(master_t *m, struct mlink *ml, const char *peer, uint64_t ref)
{
    struct msg w = {.type = MSG_WELCOME};

    w.u.welcome.heartbeat_ms = m->cfg.heartbeat_ms;
    w.u.welcome.usage_ms = m->cfg.usage_ms;
    w.u.welcome.ref = ref;
    session_send(m, ml, peer, &w);
}

static void
on_hello(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    const struct msg_hello *h = &msg->u.hello;
    struct registry_node *n = registry_get(m->reg, peer);
    int r;

    /* The connection says who the peer is (its key's name on CurveZMQ);
     * what the hello claims must agree, before anything else is made of it. */
    if (strcmp(h->node, peer) != 0) {
        peer_warning(m, "node=%s said hello as node \"%s\": refused", peer, h->node);
        send_nack(m, ml, peer, msg->id, MSG_ERR_BAD_REQUEST,
                  "hello names another node than the connection's identity");
        return;
    }
    if (n && n->welcomed && msg->id < n->last_msg_id) {
        /* An older hello the outbox sent again: what it says is stale (the
         * node has said more since). Welcome it so the outbox drops it. */
        send_welcome(m, ml, peer, msg->id);
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
    n->last_msg_id = msg->id;
    send_welcome(m, ml, peer, msg->id);
    /* What the node's outbox sent long ago is acked by now: forget it. */
    if (db_node_msg_expire(m->db, time_real_ms() - 3600 * 1000) < 0)
        log_debug("cannot expire old node messages, ignoring");
    log_info("node=%s hello: %u guests, backend %s", peer, h->n_inventory, h->backend);

    /* Whatever was unanswered goes again, then the inventory is reconciled.
     * The agent may be another version now: guest.apply.start is tried again. */
    dispatch_set_no_apply_start(m->disp, peer, false);
    dispatch_flush(m->disp, peer);
    reconcile_hello(m, peer, h);
    operations_node_hello(m, peer);
}

static void
on_ack(master_t *m, const char *node, const struct msg_ack *a)
{
    struct dispatch_done done = {0};
    bool matched = dispatch_complete(m->disp, node, a->ref, &done) == 0;
    struct db_guest g = {0};

    if (matched)
        metrics_dispatch_answer(m, &done, true);
    if (!a->id[0])
        return;
    /* An ack answering this node's command is about that command's guest. */
    if (matched && strcmp(done.guest, a->id) != 0) {
        peer_warning(m, "node=%s acked request %llu of guest %s naming guest %s: ignored", node,
                     (unsigned long long)a->ref, done.guest, a->id);
        return;
    }
    if (matched && done.type == MSG_GUEST_DESTROY) {
        /* Gone from the node; a record already gone (forced delete) is fine. */
        int r = guests_remove(m, done.guest);
        if (r == -ENOENT)
            guests_orphan_gone(m, node, done.guest, "destroyed on its node");
        else if (r < 0)
            log_error("guest %s destroyed on node=%s but its record stays: %s", done.guest, node,
                      strerror(-r));
        waiters_guest_deleted(m, done.guest);
        return;
    }
    if (db_guest_get_state(m->db, a->id, &g) < 0)
        return;
    if (!g.node || strcmp(g.node, node) != 0) {
        peer_warning(m, "node=%s sent an ack about guest %s of node %s: ignored", node, a->id,
                     g.node ? g.node : "(none)");
        db_guest_clear(&g);
        return;
    }
    /* A node cannot have applied a generation the master never made. */
    uint64_t applied = a->generation <= g.generation ? a->generation : 0;
    if (guests_deleting(m, &g)) {
        if (applied)
            db_guest_set_applied(m->db, a->id, applied);
        db_guest_clear(&g);
        return;
    }
    bool apply_cmd =
        matched && (done.type == MSG_GUEST_APPLY || done.type == MSG_GUEST_APPLY_START);
    enum db_observed obs;
    if (a->running)
        obs = DB_OBS_RUNNING;
    else if (matched && done.type == MSG_GUEST_APPLY_START && g.desired == DB_DESIRED_RUNNING) {
        /* Applied, but the node could not start it: a guest.start asks
         * again, and its answer says why. */
        if (!dispatch_pending(m->disp, node, MSG_GUEST_START, a->id))
            guests_send(m, node, MSG_GUEST_START, a->id, g.generation);
        obs = DB_OBS_PENDING;
    } else if (matched && done.type == MSG_GUEST_APPLY && g.desired == DB_DESIRED_RUNNING &&
               dispatch_pending(m->disp, node, MSG_GUEST_START, a->id))
        obs = DB_OBS_PENDING; /* created, its start follows */
    else
        obs = DB_OBS_STOPPED;
    /* The generation and the state: one row write. */
    if (matched || obs != g.observed)
        guests_observed_applied(m, &g, obs, NULL, applied);
    else if (applied)
        db_guest_set_applied(m->db, a->id, applied);
    if (apply_cmd)
        waiters_applied(m, a->id, a->generation);
    db_guest_clear(&g);
}

/* A node that does not know guest.apply.start (an older agent): it gets
 * guest.apply and guest.start from now on, this guest's first. */
static void
apply_start_unknown(master_t *m, const char *node, const struct dispatch_done *done)
{
    struct db_guest g = {0};
    struct guest_spec spec;

    log_info("node=%s does not know guest.apply.start: sending guest.apply and guest.start", node);
    dispatch_set_no_apply_start(m->disp, node, true);
    if (guests_load(m, NULL, NULL, done->guest, &g, &spec) < 0)
        return;
    if (g.node && !strcmp(g.node, node) && !guests_deleting(m, &g)) {
        if (g.desired == DB_DESIRED_RUNNING)
            guests_send_apply_start(m, node, &spec);
        else
            guests_send_apply(m, node, &spec);
    }
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

    if ((done->type != MSG_GUEST_APPLY && done->type != MSG_GUEST_APPLY_START) ||
        db_guest_get_state(m->db, done->guest, &g) < 0)
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
    if (done.type == MSG_GUEST_APPLY_START && n->code == MSG_ERR_UNKNOWN_TYPE) {
        apply_start_unknown(m, node, &done);
        return;
    }
    metrics_dispatch_answer(m, &done, false);
    if (n->id[0] && strcmp(n->id, done.guest) != 0)
        peer_warning(m, "node=%s nacked request %llu of guest %s naming guest %s", node,
                     (unsigned long long)n->ref, done.guest, n->id);
    log_warning("node=%s refused %s of guest %s: %s: %s", node, msg_type_name(done.type),
                done.guest, msg_error_name(n->code), n->message);
    switch (done.type) {
    case MSG_GUEST_EXEC:
        waiters_nack(m, WAIT_EXEC, NULL, n->ref, n);
        return;
    case MSG_MIGRATE_PREPARE:
    case MSG_MIGRATE_SEND:
    case MSG_MIGRATE_COMMIT:
    case MSG_MIGRATE_FINISH:
    case MSG_MIGRATE_ABORT:
        operations_nacked(m, node, done.type, done.guest, n);
        return;
    case MSG_GUEST_CONSOLE:
        waiters_nack(m, WAIT_CONSOLE, NULL, n->ref, n);
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
on_exec_result(master_t *m, const char *node, const struct msg_exec_result *x)
{
    struct dispatch_done done = {0};

    /* The node's own outbox says which exec this answers; a result naming
     * another guest than that exec's is not its result. */
    if (dispatch_complete(m->disp, node, x->ref, &done) < 0)
        return;
    if (strcmp(done.guest, x->id) != 0) {
        peer_warning(m, "node=%s answered exec %llu of guest %s as guest %s: ignored", node,
                     (unsigned long long)x->ref, done.guest, x->id);
        struct msg_nack n = {.ref = x->ref, .code = MSG_ERR_INTERNAL};
        snprintf(n.message, sizeof(n.message), "the node answered for another guest");
        waiters_nack(m, WAIT_EXEC, NULL, x->ref, &n);
        return;
    }
    waiters_exec_result(m, x->ref, x);
}

/* Only the node asked answers (the outbox entry is that node's), and only
 * for the guest it was asked about. */
static void
on_console_result(master_t *m, const char *node, const struct msg_console_result *c)
{
    struct dispatch_done done = {0};

    if (dispatch_complete(m->disp, node, c->ref, &done) < 0)
        return;
    if (strcmp(done.guest, c->id) != 0) {
        peer_warning(m, "node=%s answered console %llu of guest %s as guest %s: ignored", node,
                     (unsigned long long)c->ref, done.guest, c->id);
        struct msg_nack n = {.ref = c->ref, .code = MSG_ERR_INTERNAL};
        snprintf(n.message, sizeof(n.message), "the node answered for another guest");
        waiters_nack(m, WAIT_CONSOLE, NULL, c->ref, &n);
        return;
    }
    waiters_console_result(m, c->ref, c);
}

/* Everything a welcomed node may send after its hello. */
static void
on_message(master_t *m, struct mlink *ml, const char *peer, struct msg *msg)
{
    switch (msg->type) {
    case MSG_HEARTBEAT: {
        struct msg echo;
        msg_init(&echo, MSG_HEARTBEAT);
        echo.u.heartbeat = msg->u.heartbeat;
        session_send(m, ml, peer, &echo);
        reconcile_heartbeat(m, peer, &msg->u.heartbeat);
        break;
    }
    case MSG_INVENTORY:
        reconcile_inventory(m, peer, &msg->u.inventory);
        break;
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
    case MSG_USAGE: {
        /* Read a usage interval or more late, a report is skipped, so a
         * master behind its nodes spends its loop on what cannot wait
         * (answers, events). Its counters are totals, so the first report
         * read in time again loses no OOM kill or limit hit; the history
         * loses the points in between. 1,000,000 guests report
         * 33,000 samples/s at a 30 s interval: processed behind a backlog,
         * they kept the master behind (bench/sched.sh --stretch). */
        /* Acked once read (after the batch's commit): the node sends its
         * next report only then, so at most one per node waits unread. */
        ack_after_commit(m, peer, msg->id);
        if (m->behind_ms >= m->cfg.usage_ms) {
            m->usage_shed++;
            break;
        }
        unsigned refused = usage_report(m, peer, &msg->u.usage, master_now_ms(m));
        if (refused)
            peer_warning(m, "node=%s sent usage of %u guests of other nodes: ignored", peer,
                         refused);
        break;
    }
    case MSG_EVENT:
        /* The master's clock is the latest an event can have happened. */
        if (msg->u.event.time_ms > time_real_ms())
            msg->u.event.time_ms = time_real_ms();
        guests_node_event(m, peer, &msg->u.event);
        break;
    case MSG_TRAFFIC_GET:
        usage_trafstat(m, peer, msg->id, msg->u.traffic_get.reset);
        break;
    case MSG_EXEC_RESULT:
        on_exec_result(m, peer, &msg->u.exec_result);
        break;
    case MSG_MIGRATE_STATUS:
        operations_report(m, peer, &msg->u.migrate_status);
        break;
    case MSG_CONSOLE_RESULT:
        on_console_result(m, peer, &msg->u.console_result);
        break;
    default:
        send_nack(m, ml, peer, msg->id, MSG_ERR_UNKNOWN_TYPE, "not a message a master accepts");
        break;
    }
}

/* Who may send what, before anything is looked at: a join token's session
 * only join (and only over CurveZMQ); a node that has a key only over
 * CurveZMQ. Answers and logs a refusal; returns whether to go on. */
static bool
session_peer_allowed(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    bool curve = link_is_curve(ml->link);

    if (trust_is_join_peer(peer)) {
        if (curve && msg->type == MSG_JOIN)
            return true;
        peer_warning(m, "join session %s sent %s%s: refused", peer, msg_type_name(msg->type),
                     curve ? "" : " over a plaintext link");
        send_nack(m, ml, peer, msg->id, MSG_ERR_BAD_REQUEST,
                  "a join session may only send join, over CurveZMQ");
        return false;
    }
    if (msg->type == MSG_JOIN) {
        send_nack(m, ml, peer, msg->id, MSG_ERR_BAD_REQUEST,
                  "join is sent with a join token's key");
        return false;
    }
    if (!curve && trust_has_key(m, peer)) {
        peer_warning(m, "node=%s has joined with a key but spoke over plaintext: refused", peer);
        return false;
    }
    return true;
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
        peer_warning(m, "node=%s bad message: %s, ignoring", peer, err);
        send_nack(m, ml, peer, msg.id, code, err);
        msg_clear(&msg);
        /* A frame no node of this protocol sends (an unknown type or a
         * newer major is another version's, and only answered): counted
         * against the sender, whose connection goes past LINK_VIOLATIONS
         * in LINK_VIOLATION_MS; it reconnects, a buggy node included. */
        if ((r == -EBADMSG || r == -EINVAL) && link_violation(ml->link, peer) == 1)
            peer_warning(m,
                         "node=%s sent more than %d frames that are not messages within %d s: "
                         "its connection closed",
                         peer, LINK_VIOLATIONS, LINK_VIOLATION_MS / 1000);
        return;
    }
    if (!session_peer_allowed(m, ml, peer, &msg)) {
        msg_clear(&msg);
        return;
    }
    master_batch_begin(m);
    if (msg.type == MSG_JOIN) {
        trust_join(m, ml, peer, &msg);
        msg_clear(&msg);
        return;
    }
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
    if (n) {
        n->link = ml->index;
        if (msg.id > n->last_msg_id)
            n->last_msg_id = msg.id;
    }
    if (!outbox_duplicate(m, peer, &msg, buf, len))
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
