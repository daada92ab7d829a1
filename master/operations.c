/* Operations (operations.h): the list of running ones, their store, their
 * events, progress and the API's view; the kinds do the rest. */
#include "master/operations.h"
#include "master/op_template.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/uuid.h"
#include "master/api.h"
#include "master/db_operations.h"
#include "master/events.h"
#include "master/oncommit.h"

#define SAVE_EVERY_MS 2000 /* progress is stored at most this often */

struct queued;

struct operations {
    struct op *head;      /* running operations, and finished ones until the next tick */
    struct queued *loose; /* commands queued outside any transaction, oldest first */
};

static const struct op_kind_ops *const kinds[OP__KINDS] = {
    [OP_MOVE] = &op_move_ops,     [OP_DRAIN] = &op_drain_ops,       [OP_EXPORT] = &op_export_ops,
    [OP_IMPORT] = &op_import_ops, [OP_TEMPLATE] = &op_template_ops,
};
static const char *const kind_names[OP__KINDS] = {[OP_MOVE] = "move",
                                                  [OP_DRAIN] = "drain",
                                                  [OP_EXPORT] = "export",
                                                  [OP_IMPORT] = "import",
                                                  [OP_TEMPLATE] = "template"};
static const char *const state_names[] = {[OP_RUNNING] = "running",
                                          [OP_DONE] = "done",
                                          [OP_FAILED] = "failed",
                                          [OP_CANCELLED] = "cancelled"};

const char *
operations_kind_name(enum op_kind k)
{
    return (unsigned)k < OP__KINDS ? kind_names[k] : "unknown";
}

const char *
operations_state_name(enum op_state s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

static int
kind_from_name(const char *s)
{
    for (int k = 0; k < OP__KINDS; k++)
        if (s && strcmp(s, kind_names[k]) == 0)
            return k;
    return -EINVAL;
}

static int
state_from_name(const char *s)
{
    for (size_t i = 0; i < ARRAY_SIZE(state_names); i++)
        if (s && strcmp(s, state_names[i]) == 0)
            return (int)i;
    return -EINVAL;
}

/* ---- the list ---- */

static struct operations *
ops_of(master_t *m)
{
    if (!m->ops)
        m->ops = xcalloc(1, sizeof(*m->ops));
    return m->ops;
}

static void
op_release(master_t *m, struct op *o)
{
    if (o->rt && kinds[o->kind]->release)
        kinds[o->kind]->release(m, o);
    o->rt = NULL;
}

static void
op_free(struct op *o)
{
    json_decref(o->params);
    json_decref(o->result);
    free(o);
}

/* A create whose transaction rolls back leaves nothing, in memory either. */
static void
added_after(master_t *m, void *ctx, int err)
{
    struct op *o;

    if (err < 0 && (o = operations_find(m, ctx)))
        o->gone = true;
    free(ctx);
}

struct op *
operations_add(master_t *m, enum op_kind kind, const char *parent)
{
    struct operations *ops = ops_of(m);
    struct op *o = xcalloc(1, sizeof(*o));

    if (uuid_v4(o->id) < 0)
        abort(); /* no randomness at all: nothing sensible to do */
    o->kind = kind;
    strscpy(o->parent, parent ? parent : "", sizeof(o->parent));
    o->state = OP_RUNNING;
    strscpy(o->step, "start", sizeof(o->step));
    o->params = json_object();
    o->created_ms = time_real_ms();
    o->step_mono = o->heard_mono = time_mono_ms();
    o->next = ops->head;
    ops->head = o;
    oncommit_add(m->oncommit, added_after, xstrdup(o->id));
    return o;
}

struct op *
operations_find(master_t *m, const char *id)
{
    for (struct op *o = ops_of(m)->head; o; o = o->next)
        if (!o->gone && o->state == OP_RUNNING && strcmp(o->id, id) == 0)
            return o;
    return NULL;
}

struct op *
operations_for_guest(master_t *m, const char *guest_id)
{
    for (struct op *o = ops_of(m)->head; o; o = o->next)
        if (!o->gone && o->state == OP_RUNNING &&
            ((o->guest_id[0] && strcmp(o->guest_id, guest_id) == 0) ||
             op_template_waits(o, guest_id)))
            return o;
    return NULL;
}

struct op *
operations_find_kind(master_t *m, enum op_kind kind, struct op *prev)
{
    for (struct op *o = prev ? prev->next : ops_of(m)->head; o; o = o->next)
        if (!o->gone && o->state == OP_RUNNING && o->kind == kind)
            return o;
    return NULL;
}

size_t
operations_children(master_t *m, const char *parent)
{
    size_t n = 0;

    for (struct op *o = ops_of(m)->head; o; o = o->next)
        n += !o->gone && o->state == OP_RUNNING && strcmp(o->parent, parent) == 0;
    return n;
}

/* ---- params and commands ---- */

bool
op_pbool(const struct op *o, const char *k)
{
    return json_is_true(json_object_get(o->params, k));
}

const char *
op_pstr(const struct op *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o->params, k));
    return s ? s : "";
}

uint64_t
op_pu64(const struct op *o, const char *k)
{
    return (uint64_t)json_integer_value(json_object_get(o->params, k));
}

void
op_pset(struct op *o, const char *k, json_t *v)
{
    json_object_set_new(o->params, k, v);
}

struct queued {
    char node[NAME_MAX_LEN + 1]; /* to whom */
    struct msg msg;              /* what */
    struct queued *next;         /* operations.loose */
};

static void
queue_after(master_t *m, void *ctx, int err)
{
    struct queued *q = ctx;

    if (err == 0 && dispatch_queue(m->disp, q->node, &q->msg) < 0)
        log_error("node=%s cannot encode %s", q->node, msg_type_name(q->msg.type));
    free(q);
}

struct msg_migrate *
operations_queue(master_t *m, const struct op *o, const char *node, enum msg_type type)
{
    struct queued *q = xcalloc(1, sizeof(*q));

    strscpy(q->node, node, sizeof(q->node));
    q->msg.type = type;
    strscpy(q->msg.u.migrate.op, o->id, sizeof(q->msg.u.migrate.op));
    strscpy(q->msg.u.migrate.id, o->guest_id, sizeof(q->msg.u.migrate.id));
    /* The caller fills the message in after this returns: it must not go at
     * once. Outside a transaction it goes with the loop's batch. */
    if (db_tx_depth(m->db) == 0)
        master_batch_begin(m);
    if (db_tx_depth(m->db) == 0) {
        struct operations *ops = ops_of(m);
        struct queued **pp = &ops->loose;
        while (*pp)
            pp = &(*pp)->next;
        *pp = q; /* the store refuses a transaction: the next tick sends it */
    } else {
        oncommit_add(m->oncommit, queue_after, q);
    }
    return &q->msg.u.migrate;
}

/* ---- the store ---- */

static char *
nul_if_empty(const char *s)
{
    return s[0] ? (char *)s : NULL;
}

int
operations_store(master_t *m, struct op *o)
{
    _cleanup_free_ char *params = json_dumps(o->params, JSON_COMPACT);
    _cleanup_free_ char *result = o->result ? json_dumps(o->result, JSON_COMPACT) : NULL;
    struct db_op d = {
        .id = o->id,
        .kind = (char *)kind_names[o->kind],
        .parent = nul_if_empty(o->parent),
        .guest_id = nul_if_empty(o->guest_id),
        .guest = nul_if_empty(o->guest),
        .node = nul_if_empty(o->node),
        .target = nul_if_empty(o->target),
        .state = (char *)state_names[o->state],
        .step = o->step,
        .bytes_done = o->bytes_done,
        .bytes_total = o->bytes_total,
        .rate = o->rate,
        .params = params,
        .result = result,
        .error = nul_if_empty(o->error),
        .cancel = o->cancel,
        .created_ms = o->created_ms,
        .finished_ms = o->finished_ms,
    };
    int r = db_op_update(m->db, &d);

    if (r == -ENOENT)
        r = db_op_insert(m->db, &d);
    o->saved_mono = time_mono_ms();
    return r;
}

static void
emit_step(master_t *m, const struct op *o, const char *text)
{
    events_emit(m, "operation.step", o->node[0] ? o->node : NULL,
                o->guest_id[0] ? o->guest_id : NULL, o->guest[0] ? o->guest : NULL,
                json_pack("{s:s, s:s, s:s, s:s, s:s?}", "id", o->id, "kind", kind_names[o->kind],
                          "state", state_names[o->state], "step", o->step, "target",
                          o->target[0] ? o->target : NULL),
                "%s %s%s%s: %s", kind_names[o->kind], o->guest[0] ? o->guest : o->node,
                o->target[0] ? " to " : "", o->target, text);
}

int
operations_step(master_t *m, struct op *o, const char *step, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    strscpy(o->step, step, sizeof(o->step));
    o->step_mono = o->heard_mono = time_mono_ms();
    o->bytes_done = o->bytes_total = o->rate = 0;
    o->rate_mono = 0;
    int r = operations_store(m, o);
    emit_step(m, o, text);
    log_info("op=%s %s %s: step %s: %s", o->id, kind_names[o->kind],
             o->guest[0] ? o->guest : o->node, step, text);
    return r;
}

int
operations_end(master_t *m, struct op *o, enum op_state state, json_t *result, const char *fmt, ...)
{
    va_list ap;

    o->error[0] = '\0';
    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(o->error, sizeof(o->error), fmt, ap);
        va_end(ap);
    }
    json_decref(o->result);
    o->result = result ? result : json_object();
    o->state = state;
    o->finished_ms = time_real_ms();
    strscpy(o->step, state_names[state], sizeof(o->step));
    int r = operations_store(m, o);
    emit_step(m, o, o->error[0] ? o->error : state_names[state]);
    if (state == OP_DONE)
        log_notice("op=%s %s %s: done", o->id, kind_names[o->kind],
                   o->guest[0] ? o->guest : o->node);
    else
        log_warning("op=%s %s %s: %s: %s", o->id, kind_names[o->kind],
                    o->guest[0] ? o->guest : o->node, state_names[state], o->error);
    o->gone = true;
    return r;
}

void
operations_progress(master_t *m, struct op *o, uint64_t done, uint64_t total)
{
    uint64_t now = time_mono_ms();

    if (done < o->rate_bytes || !o->rate_mono) {
        /* A new pass starts over. */
        o->rate_bytes = done;
        o->rate_mono = now;
    } else if (now - o->rate_mono >= 1000) {
        uint64_t inst = (done - o->rate_bytes) * 1000 / (now - o->rate_mono);
        o->rate = o->rate ? (3 * o->rate + inst) / 4 : inst;
        o->rate_bytes = done;
        o->rate_mono = now;
    }
    o->bytes_done = done;
    o->bytes_total = total;
    if (now - o->saved_mono >= SAVE_EVERY_MS)
        (void)operations_store(m, o);
}

/* ---- the API's view ---- */

/* params without the keys only the master may see (they start with '_'). */
static json_t *
public_params(const json_t *params)
{
    json_t *o = json_object(), *v;
    const char *k;

    json_object_foreach((json_t *)params, k, v)
    {
        if (k[0] != '_')
            json_object_set(o, k, v);
    }
    return o;
}

static json_t *
time_or_null(uint64_t ms)
{
    char buf[40];

    if (!ms)
        return json_null();
    api_time_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *
progress_json(uint64_t done, uint64_t total, uint64_t rate)
{
    json_t *p = json_pack("{s:I, s:I, s:I}", "bytes_done", (json_int_t)done, "bytes_total",
                          (json_int_t)total, "rate", (json_int_t)rate);

    if (rate && total > done)
        json_object_set_new(p, "eta_s", json_integer((json_int_t)((total - done) / rate)));
    else
        json_object_set_new(p, "eta_s", json_null());
    return p;
}

static json_t *
str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

json_t *
operations_op_json(const struct op *o)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "id", o->id, "kind", kind_names[o->kind], "state",
                          state_names[o->state], "step", o->step);

    json_object_set_new(j, "guest", str_or_null(o->guest));
    json_object_set_new(j, "guest_id", str_or_null(o->guest_id));
    json_object_set_new(j, "node", str_or_null(o->node));
    json_object_set_new(j, "target", str_or_null(o->target));
    json_object_set_new(j, "parent", str_or_null(o->parent));
    json_object_set_new(j, "progress", progress_json(o->bytes_done, o->bytes_total, o->rate));
    json_object_set_new(j, "params", public_params(o->params));
    json_object_set_new(j, "result", o->result ? json_copy(o->result) : json_null());
    json_object_set_new(j, "error", str_or_null(o->error));
    json_object_set_new(j, "cancel_requested", json_boolean(o->cancel));
    json_object_set_new(j, "created", time_or_null(o->created_ms));
    json_object_set_new(j, "finished", time_or_null(o->finished_ms));
    return j;
}

/* A stored row as a struct op (the params and result parsed). */
static int
op_from_row(const struct db_op *d, struct op *o)
{
    int kind = kind_from_name(d->kind), state = state_from_name(d->state);

    if (kind < 0 || state < 0 || !d->id || !spec_is_uuid(d->id))
        return -EBADMSG;
    memset(o, 0, sizeof(*o));
    strscpy(o->id, d->id, sizeof(o->id));
    o->kind = (enum op_kind)kind;
    o->state = (enum op_state)state;
    strscpy(o->parent, d->parent ? d->parent : "", sizeof(o->parent));
    strscpy(o->guest_id, d->guest_id ? d->guest_id : "", sizeof(o->guest_id));
    strscpy(o->guest, d->guest ? d->guest : "", sizeof(o->guest));
    strscpy(o->node, d->node ? d->node : "", sizeof(o->node));
    strscpy(o->target, d->target ? d->target : "", sizeof(o->target));
    strscpy(o->step, d->step ? d->step : "", sizeof(o->step));
    strscpy(o->error, d->error ? d->error : "", sizeof(o->error));
    o->bytes_done = d->bytes_done;
    o->bytes_total = d->bytes_total;
    o->rate = d->rate;
    o->cancel = d->cancel;
    o->created_ms = d->created_ms;
    o->finished_ms = d->finished_ms;
    o->params = json_loads(d->params ? d->params : "{}", 0, NULL);
    o->result = d->result ? json_loads(d->result, 0, NULL) : NULL;
    if (!json_is_object(o->params)) {
        json_decref(o->params);
        o->params = json_object();
    }
    return 0;
}

json_t *
operations_json(master_t *m, const char *id)
{
    struct db_op d = {0};
    struct op o;

    for (struct op *p = ops_of(m)->head; p; p = p->next)
        if (strcmp(p->id, id) == 0)
            return operations_op_json(p);
    if (db_op_get(m->db, id, &d) < 0)
        return NULL;
    json_t *j = NULL;
    if (op_from_row(&d, &o) == 0) {
        j = operations_op_json(&o);
        json_decref(o.params);
        json_decref(o.result);
    }
    db_op_clear(&d);
    return j;
}

/* Acts on o's stored cancel: the kind winds o down, unless its step has
 * gone past what cancellable allows (the operation then runs on to its end,
 * the cancel still recorded as asked for). */
static void
cancel_now(master_t *m, struct op *o)
{
    const struct op_kind_ops *k = kinds[o->kind];
    char why[256];

    if (!k->cancellable || k->cancellable(o, why, sizeof(why)) == 0)
        (void)k->cancel(m, o, why, sizeof(why));
}

/* After the cancel's transaction: the kind acts, or the request is undone. */
static void
cancel_after(master_t *m, void *ctx, int err)
{
    struct op *o = operations_find(m, ctx);

    if (o && err < 0)
        o->cancel = false;
    else if (o)
        cancel_now(m, o);
    free(ctx);
}

int
operations_cancel(master_t *m, const char *id, char *why, size_t n)
{
    struct op *o = operations_find(m, id);

    if (!o) {
        snprintf(why, n, "no running operation %s", id);
        return -ENOENT;
    }
    if (o->cancel)
        return 0; /* asked already: it winds down */
    int r = kinds[o->kind]->cancellable ? kinds[o->kind]->cancellable(o, why, n) : 0;
    if (r < 0)
        return r;
    o->cancel = true;
    r = operations_store(m, o);
    if (r < 0) {
        o->cancel = false;
        snprintf(why, n, "cannot store the cancel: %s", strerror(-r));
        return r;
    }
    oncommit_add(m->oncommit, cancel_after, xstrdup(o->id));
    return 0;
}

/* ---- the loop ---- */

void
operations_report(master_t *m, const char *node, const struct msg_migrate_status *st)
{
    struct op *o = operations_find(m, st->op);
    bool final = strcmp(st->state, "progress") != 0;

    if (o && strcmp(node, o->node) != 0 && strcmp(node, o->target) != 0) {
        log_warning("node=%s reports on op=%s, which does not involve it, ignoring", node, st->op);
        return;
    }
    /* The answer ends the command it names; progress does not. */
    if (final)
        (void)dispatch_complete(m->disp, node, st->ref, NULL);
    if (!o)
        return;
    o->heard_mono = time_mono_ms();
    /* A template fetch has no guest: its "guest" is its own id. */
    if (strcmp(st->id, o->kind == OP_TEMPLATE ? o->id : o->guest_id) == 0)
        kinds[o->kind]->report(m, o, node, st);
}

void
operations_nacked(master_t *m, const char *node, enum msg_type type, const char *guest,
                  const struct msg_nack *n)
{
    static const char *const phases[] = {"prepare", "send", "commit", "finish", "abort"};
    struct op *o = operations_for_guest(m, guest);
    struct msg_migrate_status st = {0};

    if (!o && (o = operations_find(m, guest)) && o->kind != OP_TEMPLATE)
        o = NULL; /* a template fetch's commands name the operation */

    if (!o || type < MSG_MIGRATE_PREPARE || type > MSG_MIGRATE_ABORT)
        return;
    strscpy(st.op, o->id, sizeof(st.op));
    strscpy(st.id, guest, sizeof(st.id));
    strscpy(st.phase, phases[type - MSG_MIGRATE_PREPARE], sizeof(st.phase));
    strscpy(st.state, "failed", sizeof(st.state));
    strscpy(st.code, msg_error_name(n->code) ? msg_error_name(n->code) : "internal",
            sizeof(st.code));
    snprintf(st.message, sizeof(st.message), "refused (%s): %.3900s", st.code, n->message);
    if (strcmp(node, o->node) == 0 || strcmp(node, o->target) == 0)
        kinds[o->kind]->report(m, o, node, &st);
}

void
operations_node_hello(master_t *m, const char *node)
{
    for (struct op *o = ops_of(m)->head; o; o = o->next)
        if (!o->gone && o->state == OP_RUNNING &&
            (strcmp(o->node, node) == 0 || strcmp(o->target, node) == 0))
            kinds[o->kind]->resume(m, o, node);
}

void
operations_tick(master_t *m, uint64_t now)
{
    struct operations *ops = ops_of(m);

    master_batch_begin(m);
    while (ops->loose) {
        struct queued *q = ops->loose;
        ops->loose = q->next;
        queue_after(m, q, 0);
    }
    for (struct op *o = ops->head; o; o = o->next)
        if (!o->gone && o->state == OP_RUNNING)
            kinds[o->kind]->tick(m, o, now);
    for (struct op **p = &ops->head; *p;) {
        struct op *o = *p;
        if (o->gone) {
            *p = o->next;
            op_release(m, o);
            op_free(o);
        } else {
            p = &o->next;
        }
    }
}

static int
load_one(void *userdata, const struct db_op *d)
{
    master_t *m = userdata;
    struct operations *ops = ops_of(m);
    struct op *o = xcalloc(1, sizeof(*o));

    if (op_from_row(d, o) < 0) {
        log_error("op=%s cannot be read back from the store, ignoring", d->id ? d->id : "?");
        free(o);
        return 0;
    }
    o->step_mono = o->heard_mono = time_mono_ms();
    o->next = ops->head;
    ops->head = o;
    return 0;
}

void
operations_new(master_t *m)
{
    struct db_op_filter f = {.state = "running"};

    ops_of(m);
    if (db_op_list(m->db, &f, load_one, m) < 0)
        log_error("cannot load running operations: %s", db_errmsg(m->db));
    for (struct op *o = m->ops->head; o; o = o->next) {
        log_notice("op=%s %s %s resumes at step %s", o->id, kind_names[o->kind],
                   o->guest[0] ? o->guest : o->node, o->step);
        kinds[o->kind]->resume(m, o, NULL);
        /* A cancel stored just before the master stopped, not yet acted on. */
        if (o->cancel && o->state == OP_RUNNING && !o->gone)
            cancel_now(m, o);
    }
}

void
operations_shutdown(master_t *m)
{
    if (!m->ops)
        return;
    for (struct op *o = m->ops->head; o; o = o->next)
        op_release(m, o);
}

void
operations_free(master_t *m)
{
    if (!m->ops)
        return;
    while (m->ops->head) {
        struct op *o = m->ops->head;
        m->ops->head = o->next;
        op_release(m, o);
        op_free(o);
    }
    while (m->ops->loose) {
        struct queued *q = m->ops->loose;
        m->ops->loose = q->next;
        free(q);
    }
    free(m->ops);
    m->ops = NULL;
}
