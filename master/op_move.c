/* The move operation (op_move.h). The op's params hold what must survive a
 * master restart: "live", "renumber", "was_running", "expect_generation",
 * "group", "endpoint", "renumbered", "context" ({from, to} when the guest's
 * context number is another guest's on the target, which gives it its
 * smallest free one), "target_charged", "channel" (the data
 * channel: "curve" when both nodes have node keys, else "plaintext"), the
 * copy's figures once sent, and the private "_secret" and "_spec" (the spec
 * the target runs), which the API never shows.
 *
 * The data channel's keys: with "curve", prepare tells the target the
 * source's node key (the only sender it lets in) and send tells the source
 * the target's (the receiver it checks), both as stored when the nodes
 * joined (trust.h); the target's ready must report that same key. */
#include "master/op_move.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/guests_move.h"
#include "master/oncommit.h"
#include "master/trust.h"
#include "proto/spec_json.h"
#include "proto/xfer.h"

#define PREPARE_TIMEOUT_MS (60 * 1000)  /* the target must be listening by then */
#define SEND_SILENCE_MS    (180 * 1000) /* the source said nothing this long: give up */
#define COMMIT_TIMEOUT_MS  (180 * 1000) /* the target's answer to commit, else abort */
#define FINISH_GIVE_UP_MS  (600 * 1000) /* the source's copy stays; the move is done */

/* ---- params ---- */

static bool
pb(const struct op *o, const char *k)
{
    return json_is_true(json_object_get(o->params, k));
}

static const char *
ps(const struct op *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o->params, k));
    return s ? s : "";
}

static uint64_t
pu(const struct op *o, const char *k)
{
    return (uint64_t)json_integer_value(json_object_get(o->params, k));
}

static void
set(struct op *o, const char *k, json_t *v)
{
    json_object_set_new(o->params, k, v);
}

/* The spec the target runs. */
static int
next_spec(const struct op *o, struct guest_spec *s)
{
    json_t *j = json_object_get(o->params, "_spec");

    *s = (struct guest_spec){0};
    return j ? spec_from_json(j, s, NULL, 0) : -EBADMSG;
}

/* ---- the data channel's keys ---- */

static bool
curve(const struct op *o)
{
    return strcmp(ps(o, "channel"), "curve") == 0;
}

/* node's stored key, "" when it has none (revoked since: its link is shut). */
static const char *
node_key(master_t *m, const char *node)
{
    const char *k = trust_node_key(m, node);
    return k ? k : "";
}

/* CurveZMQ when both nodes joined with keys; said once per move otherwise. */
static const char *
channel_of(master_t *m, const char *op, const char *from, const char *to)
{
    bool f = trust_node_key(m, from) != NULL, t = trust_node_key(m, to) != NULL;

    if (f && t)
        return "curve";
    log_notice("op=%s the data channel from node %s to node %s is plaintext, guarded by the "
               "one-time secret only: node %s has no node key (an ipc:// or insecure link)",
               op, from, to, !f ? from : to);
    return "plaintext";
}

/* ---- commands, after the commit ---- */

#define queue operations_queue

static void
send_prepare(master_t *m, struct op *o)
{
    struct guest_spec s;
    if (next_spec(o, &s) < 0) {
        log_error("op=%s its spec cannot be read back", o->id);
        return;
    }
    struct msg_migrate *mg = queue(m, o, o->target, MSG_MIGRATE_PREPARE);
    strscpy(mg->peer, o->node, sizeof(mg->peer));
    strscpy(mg->secret, ps(o, "_secret"), sizeof(mg->secret));
    if (curve(o))
        strscpy(mg->peer_key, node_key(m, o->node), sizeof(mg->peer_key));
    mg->live = pb(o, "live");
    mg->spec = s;
}

static void
send_send(master_t *m, struct op *o)
{
    struct msg_migrate *mg = queue(m, o, o->node, MSG_MIGRATE_SEND);

    strscpy(mg->peer, o->target, sizeof(mg->peer));
    strscpy(mg->endpoint, ps(o, "endpoint"), sizeof(mg->endpoint));
    strscpy(mg->secret, ps(o, "_secret"), sizeof(mg->secret));
    if (curve(o))
        strscpy(mg->peer_key, node_key(m, o->target), sizeof(mg->peer_key));
    mg->live = pb(o, "live");
}

static void
send_commit(master_t *m, struct op *o)
{
    struct guest_spec s;
    json_t *c = json_object_get(o->params, "counters");

    if (next_spec(o, &s) < 0)
        return;
    struct msg_migrate *mg = queue(m, o, o->target, MSG_MIGRATE_COMMIT);
    strscpy(mg->digest, ps(o, "digest"), sizeof(mg->digest));
    mg->start = pb(o, "was_running");
    mg->spec = s;
    mg->counters.net_rx_bytes = (uint64_t)json_integer_value(json_object_get(c, "net_rx_bytes"));
    mg->counters.net_tx_bytes = (uint64_t)json_integer_value(json_object_get(c, "net_tx_bytes"));
    mg->counters.net_rx_packets =
        (uint64_t)json_integer_value(json_object_get(c, "net_rx_packets"));
    mg->counters.net_tx_packets =
        (uint64_t)json_integer_value(json_object_get(c, "net_tx_packets"));
    mg->counters.tcp_refused = (uint64_t)json_integer_value(json_object_get(c, "tcp_refused"));
}

static void
send_finish(master_t *m, struct op *o)
{
    (void)queue(m, o, o->node, MSG_MIGRATE_FINISH);
}

static void
send_abort(master_t *m, struct op *o, bool target)
{
    struct msg_migrate *mg = queue(m, o, target ? o->target : o->node, MSG_MIGRATE_ABORT);

    strscpy(mg->role, target ? "target" : "source", sizeof(mg->role));
    mg->start = !target && pb(o, "was_running");
}

/* ---- start ---- */

/* Places, plans the addresses and records the op, inside a transaction. */
static int
start_locked(master_t *m, const struct op_move_req *rq, struct db_guest *g,
             const struct guest_spec *spec, char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct guests_move_where w = {.to = rq->to, .cons = rq->cons, .n_cons = rq->n_cons};
    char target[NAME_MAX_LEN + 1], secret[2 * XFER_SECRET_LEN + 1];
    struct guest_spec next = *spec;
    json_t *renumbered = json_array();

    next.generation = g->generation + 1;
    int r = guests_move_place(m, g, spec, &w, target, e);
    if (r >= 0)
        r = guests_move_addrs(m, g, target, rq->renumber, &next, renumbered, e);
    int renumbered_context = r >= 0 ? guests_move_context(m, target, &next, e) : 0;
    if (r >= 0 && renumbered_context < 0)
        r = renumbered_context;
    if (r < 0) {
        json_decref(renumbered);
        return r;
    }
    struct op *o = operations_add(m, OP_MOVE, rq->parent);
    strscpy(o->guest_id, g->id, sizeof(o->guest_id));
    strscpy(o->guest, g->name, sizeof(o->guest));
    strscpy(o->node, g->node, sizeof(o->node));
    strscpy(o->target, target, sizeof(o->target));
    xfer_secret_new(secret);
    set(o, "live", json_boolean(rq->live));
    set(o, "renumber", json_boolean(rq->renumber));
    set(o, "was_running", json_boolean(g->observed == DB_OBS_RUNNING));
    set(o, "expect_generation", json_integer((json_int_t)g->generation));
    set(o, "group", g->group ? json_string(g->group) : json_null());
    set(o, "renumbered", renumbered);
    if (renumbered_context) /* its number is another guest's on the target */
        set(o, "context",
            json_pack("{s:I, s:I}", "from", (json_int_t)spec->context, "to",
                      (json_int_t)next.context));
    set(o, "target_charged", json_true());
    set(o, "endpoint", json_string(""));
    set(o, "channel", json_string(channel_of(m, o->id, o->node, target)));
    set(o, "started_ms", json_integer((json_int_t)time_real_ms()));
    set(o, "_secret", json_string(secret));
    set(o, "_spec", spec_to_json(&next));
    strscpy(id, o->id, SPEC_ID_LEN + 1);
    char ctx_note[96] = "";
    if (renumbered_context)
        snprintf(ctx_note, sizeof(ctx_note), " (context %u is taken there: %u)", spec->context,
                 next.context);
    r = operations_step(m, o, "prepare", "%s move to node %s begins%s",
                        rq->live ? "near-live" : "cold", target, ctx_note);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot store the operation: %s", strerror(-r));
    send_prepare(m, o);
    return 0;
}

int
op_move_start(master_t *m, const struct op_move_req *rq, char id[SPEC_ID_LEN + 1],
              struct guest_err *e)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    int r = guests_load(m, NULL, rq->guest, NULL, &g, &spec);

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    r = guests_move_check(m, &g, &spec, e);
    if (r >= 0 && (r = db_begin(m->db)) < 0)
        guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
    if (r >= 0) {
        r = start_locked(m, rq, &g, &spec, id, e);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
        if (r < 0 && !e->message[0])
            guest_fail(e, r, NULL, "cannot store the move: %s", strerror(-r));
    }
    db_guest_clear(&g);
    return r;
}

/* ---- ending ---- */

static json_t *
result_json(struct op *o)
{
    json_t *r = json_pack("{s:s, s:s, s:s, s:s}", "from", o->node, "to", o->target, "mode",
                          pb(o, "live") ? "near-live" : "cold", "channel",
                          curve(o) ? "curve" : "plaintext");
    const char *keys[] = {"digest", "downtime_ms", "bytes_sent", "duration_ms",  "copy_ms",
                          "note",   "renumbered",  "warning",    "frozen_bytes", "context"};

    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        json_t *v = json_object_get(o->params, keys[i]);
        if (v)
            json_object_set(r, keys[i], v);
    }
    return r;
}

static void
release(master_t *m, struct op *o)
{
    struct guest_spec s;

    if (next_spec(o, &s) < 0)
        return;
    guests_move_release(m, o->target, &s, json_string_value(json_object_get(o->params, "group")),
                        json_object_get(o->params, "renumbered"), pb(o, "target_charged"));
    set(o, "target_charged", json_false());
}

/* Winds a move down before its point of no return. In the commit step the
 * target may have started the guest: the source hears only once the
 * target confirmed it dropped its copy. */
static void
begin_abort(master_t *m, struct op *o, bool cancelled, const char *why)
{
    bool sent = strcmp(o->step, "prepare") != 0;
    bool sequenced = strcmp(o->step, "commit") == 0;

    set(o, "abort_why", json_string(why));
    set(o, "abort_cancelled", json_boolean(cancelled));
    set(o, "abort_target", json_true());
    set(o, "abort_source", json_boolean(sent));
    set(o, "abort_sequenced", json_boolean(sequenced));
    dispatch_forget_migrate(m->disp, o->target, o->guest_id);
    dispatch_forget_migrate(m->disp, o->node, o->guest_id);
    (void)operations_step(m, o, "abort", "%s", why);
    send_abort(m, o, true);
    if (sent && !sequenced)
        send_abort(m, o, false);
}

static void
abort_done(master_t *m, struct op *o, const char *node, bool ok, const char *message)
{
    bool target = strcmp(node, o->target) == 0;

    if (!ok) {
        /* Left as it is: the node said why; an operator repairs it. */
        log_error("op=%s %s cannot undo its part of the move: %s", o->id, node, message);
        return;
    }
    set(o, target ? "abort_target" : "abort_source", json_false());
    if (target && pb(o, "abort_source") && pb(o, "abort_sequenced")) {
        /* The target's copy is gone: the source may run the guest again. */
        set(o, "abort_sequenced", json_false());
        (void)operations_store(m, o);
        send_abort(m, o, false);
        return;
    }
    if (pb(o, "abort_target") || pb(o, "abort_source")) {
        (void)operations_store(m, o);
        return;
    }
    release(m, o);
    bool cancelled = pb(o, "abort_cancelled");
    (void)operations_end(m, o, cancelled ? OP_CANCELLED : OP_FAILED, result_json(o), "%s",
                         ps(o, "abort_why"));
}

/* ---- reports ---- */

static void
on_ready(master_t *m, struct op *o, const struct msg_migrate_status *st)
{
    bool moved = strcmp(ps(o, "endpoint"), st->endpoint) != 0;

    if (curve(o) && strcmp(st->key, node_key(m, o->target)) != 0) {
        /* It listens without its node key, or with another: the source would
         * not get through (or would trust the wrong end). Never downgraded. */
        if (strcmp(o->step, "prepare") == 0)
            begin_abort(m, o, false,
                        st->key[0] ? "the target's data channel key is not the key it joined with"
                                   : "the target listens in plaintext, not with its node key");
        return;
    }
    set(o, "endpoint", json_string(st->endpoint));
    if (strcmp(o->step, "prepare") == 0) {
        set(o, "send_ms", json_integer((json_int_t)time_real_ms()));
        (void)operations_step(
            m, o, "send", "node %s listens; node %s sends (%s)", o->target, o->node,
            curve(o) ? "CurveZMQ, both node keys pinned" : "plaintext, one-time secret only");
        send_send(m, o);
    } else if (strcmp(o->step, "send") == 0 && moved) {
        (void)operations_store(m, o);
        send_send(m, o); /* the target's agent restarted elsewhere */
    }
}

static void
on_sent(master_t *m, struct op *o, const struct msg_migrate_status *st)
{
    set(o, "digest", json_string(st->digest));
    set(o, "frozen_ms", json_integer((json_int_t)st->frozen_ms));
    set(o, "bytes_sent", json_integer((json_int_t)st->bytes_done));
    set(o, "copy_ms", json_integer((json_int_t)st->copy_ms));
    if (pb(o, "live"))
        set(o, "frozen_bytes", json_integer((json_int_t)st->last_bytes));
    set(o, "counters",
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "net_rx_bytes",
                  (json_int_t)st->counters.net_rx_bytes, "net_tx_bytes",
                  (json_int_t)st->counters.net_tx_bytes, "net_rx_packets",
                  (json_int_t)st->counters.net_rx_packets, "net_tx_packets",
                  (json_int_t)st->counters.net_tx_packets, "tcp_refused",
                  (json_int_t)st->counters.tcp_refused));
    if (st->note[0])
        set(o, "note", json_string(st->note));
    (void)operations_step(m, o, "commit", "image sent (%" PRIu64 " bytes), digest %.12s...",
                          st->bytes_done, st->digest);
    send_commit(m, o);
}

static void
on_committed(master_t *m, struct op *o, const struct msg_migrate_status *st)
{
    struct guest_spec s;

    if (next_spec(o, &s) < 0)
        return;
    struct guests_move_done d = {.op = o->id,
                                 .id = o->guest_id,
                                 .target = o->target,
                                 .next = &s,
                                 .expect_gen = pu(o, "expect_generation"),
                                 .running = st->running,
                                 .renumbered = json_object_get(o->params, "renumbered")};
    int r = guests_move_commit(m, &d);
    if (r < 0) {
        /* The guest runs on the target but its record could not follow
         * (the store is full, say): the commit is asked again later. */
        log_error("op=%s the guest's record cannot move to node %s: %s; retrying", o->id, o->target,
                  strerror(-r));
        return;
    }
    uint64_t from = pb(o, "live") ? pu(o, "frozen_ms") : pu(o, "send_ms");
    if (st->running_ms > from && from)
        set(o, "downtime_ms", json_integer((json_int_t)(st->running_ms - from)));
    set(o, "target_charged", json_false());
    set(o, "committed_mono", json_integer((json_int_t)time_mono_ms()));
    (void)operations_step(m, o, "finish", "guest %s on node %s; node %s removes its copy",
                          st->running ? "runs" : "is", o->target, o->node);
    send_finish(m, o);
}

static void
on_finished(master_t *m, struct op *o, bool ok, const char *message)
{
    if (!ok) {
        /* Asked again in a while (the tick); given up after FINISH_GIVE_UP_MS. */
        set(o, "warning", json_string(message));
        set(o, "_finish_again_mono", json_integer((json_int_t)(time_mono_ms() + 5000)));
        (void)operations_store(m, o);
        return;
    }
    json_object_del(o->params, "warning"); /* an earlier try's, now moot */
    set(o, "duration_ms", json_integer((json_int_t)(time_real_ms() - pu(o, "started_ms"))));
    (void)operations_end(m, o, OP_DONE, result_json(o), NULL);
}

static bool
is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static void
move_report(master_t *m, struct op *o, const char *node, const struct msg_migrate_status *st)
{
    bool from_target = is(node, o->target), failed = is(st->state, "failed");
    char why[PROTO_MAX_STRING + 64];

    if (is(o->step, "abort")) {
        if (is(st->phase, "abort"))
            abort_done(m, o, node, !failed, st->message);
        return;
    }
    snprintf(why, sizeof(why), "node %s: %s", node, st->message);
    if (is(st->phase, "prepare") && from_target) {
        if (failed && is(o->step, "prepare"))
            begin_abort(m, o, false, why);
        else if (is(st->state, "ready"))
            on_ready(m, o, st);
    } else if (is(st->phase, "send") && !from_target && is(o->step, "send")) {
        if (failed)
            begin_abort(m, o, false, why);
        else if (is(st->state, "done"))
            on_sent(m, o, st);
        else {
            if (st->note[0] && !is(ps(o, "note"), st->note))
                set(o, "note", json_string(st->note));
            operations_progress(m, o, st->bytes_done, st->bytes_total);
        }
    } else if (is(st->phase, "commit") && from_target && is(o->step, "commit")) {
        if (failed)
            begin_abort(m, o, false, why);
        else if (is(st->state, "done"))
            on_committed(m, o, st);
    } else if (is(st->phase, "finish") && !from_target && is(o->step, "finish")) {
        on_finished(m, o, !failed, why);
    }
}

/* ---- tick, cancel, resume ---- */

static void
move_tick(master_t *m, struct op *o, uint64_t now)
{
    if (is(o->step, "prepare") && now - o->step_mono > PREPARE_TIMEOUT_MS)
        begin_abort(m, o, false, "the target did not get ready in time");
    else if (is(o->step, "send") && now - o->heard_mono > SEND_SILENCE_MS)
        begin_abort(m, o, false, "the source went silent during the copy");
    else if (is(o->step, "commit") && now - o->step_mono > COMMIT_TIMEOUT_MS)
        begin_abort(m, o, false, "the target did not confirm the commit in time");
    else if (is(o->step, "finish") && pu(o, "_finish_again_mono") &&
             now >= pu(o, "_finish_again_mono") && now - o->step_mono <= FINISH_GIVE_UP_MS) {
        json_object_del(o->params, "_finish_again_mono");
        send_finish(m, o);
    } else if (is(o->step, "finish") && now - o->step_mono > FINISH_GIVE_UP_MS) {
        set(o, "warning",
            json_string("the source's copy was not removed: it is reported as an "
                        "orphan of that node"));
        (void)operations_end(m, o, OP_DONE, result_json(o), NULL);
    }
}

static int
move_cancellable(const struct op *o, char *why, size_t n)
{
    if (!is(o->step, "prepare") && !is(o->step, "send")) {
        snprintf(why, n,
                 "the move is at step %s, past the point where it can be undone; it ends by "
                 "itself",
                 o->step);
        return -EBUSY;
    }
    return 0;
}

static int
move_cancel(master_t *m, struct op *o, char *why, size_t n)
{
    (void)why, (void)n; /* operations.c asked move_cancellable already */
    begin_abort(m, o, true, "cancelled");
    return 0;
}

/* After a master restart (node NULL) every command of the step goes again;
 * after a node's hello only what its restart may have lost (the target's
 * receiver: the prepare answered long ago). */
static void
move_resume(master_t *m, struct op *o, const char *node)
{
    struct guest_spec s;

    if (!node) {
        if (pb(o, "target_charged") && next_spec(o, &s) == 0)
            guests_move_recharge(m, o->target, &s,
                                 json_string_value(json_object_get(o->params, "group")));
        if (is(o->step, "prepare"))
            send_prepare(m, o);
        else if (is(o->step, "send"))
            send_send(m, o);
        else if (is(o->step, "commit"))
            send_commit(m, o);
        else if (is(o->step, "finish"))
            send_finish(m, o);
        else if (is(o->step, "abort")) {
            if (pb(o, "abort_target"))
                send_abort(m, o, true);
            if (pb(o, "abort_source") && !pb(o, "abort_sequenced"))
                send_abort(m, o, false);
        }
        return;
    }
    if (is(o->step, "send") && is(node, o->target))
        send_prepare(m, o);
}

const struct op_kind_ops op_move_ops = {
    .name = "move",
    .report = move_report,
    .tick = move_tick,
    .cancellable = move_cancellable,
    .cancel = move_cancel,
    .resume = move_resume,
};
