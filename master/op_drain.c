/* Draining a node (op_drain.h): cordon it, then move every guest off it,
 * at most `limit` moves at a time, each a child move operation with its own
 * progress. A guest that cannot move (no other node takes it, an address
 * that cannot follow, a move that failed) is tried once, reported with its
 * reason and left where it is, running or not as it was. The drain ends
 * when no guest is left to try and no child runs: done when the node is
 * empty, failed otherwise. Params: "limit", "live", "renumber", "children"
 * ({guest name: move id}), "failed" ({guest name: reason}), "total". */
#include "master/op_drain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/db_operations.h"
#include "master/guests_move.h"
#include "master/oncommit.h"
#include "master/op_move.h"

#define DRAIN_LIMIT_MAX 32 /* moves at a time */

struct scan {
    master_t *m;   /* the master */
    struct op *o;  /* the drain */
    json_t *todo;  /* names of guests to try now */
    unsigned left; /* guests still on the node */
    unsigned busy; /* of them, moving */
};

static int
scan_guest(void *userdata, const struct db_guest *g)
{
    struct scan *s = userdata;
    json_t *tried = json_object_get(s->o->params, "children");

    s->left++;
    if (guests_moving(s->m, g->id)) {
        s->busy++;
        return 0;
    }
    if (!json_object_get(tried, g->name) &&
        !json_object_get(json_object_get(s->o->params, "failed"), g->name))
        json_array_append_new(s->todo, json_string(g->name));
    return 0;
}

/* Children that ended without moving their guest: their reasons. */
static void
collect_failures(master_t *m, struct op *o)
{
    json_t *children = json_object_get(o->params, "children");
    json_t *failed = json_object_get(o->params, "failed");
    const char *name;
    json_t *id;

    json_object_foreach(children, name, id)
    {
        struct db_op d = {0};
        if (json_object_get(failed, name) || operations_find(m, json_string_value(id)) ||
            db_op_get(m->db, json_string_value(id), &d) < 0)
            continue;
        if (strcmp(d.state, "done") != 0)
            json_object_set_new(failed, name,
                                json_string(d.error ? d.error : "the move did not complete"));
        db_op_clear(&d);
    }
}

static void
start_moves(master_t *m, struct op *o, json_t *todo, size_t running)
{
    size_t limit = (size_t)json_integer_value(json_object_get(o->params, "limit"));
    size_t i;
    json_t *v;

    json_array_foreach(todo, i, v)
    {
        if (running >= limit)
            break;
        struct op_move_req rq = {.guest = json_string_value(v),
                                 .live = json_is_true(json_object_get(o->params, "live")),
                                 .renumber = json_is_true(json_object_get(o->params, "renumber")),
                                 .parent = o->id};
        struct guest_err e = {0};
        char id[SPEC_ID_LEN + 1];
        int r = op_move_start(m, &rq, id, &e);
        if (r < 0) {
            json_object_set_new(json_object_get(o->params, "failed"), rq.guest,
                                json_string(e.message[0] ? e.message : strerror(-r)));
            log_warning("op=%s guest=%s cannot leave node %s: %s", o->id, rq.guest, o->node,
                        e.message);
            continue;
        }
        json_object_set_new(json_object_get(o->params, "children"), rq.guest, json_string(id));
        running++;
    }
}

static void
drain_tick(master_t *m, struct op *o, uint64_t now)
{
    struct db_guest_filter f = {.node = o->node, .observed = -1};
    struct scan s = {.m = m, .o = o, .todo = json_array()};
    size_t running = operations_children(m, o->id);

    (void)now;
    collect_failures(m, o);
    if (!o->cancel) {
        if (db_guest_list(m->db, &f, scan_guest, &s) < 0) {
            json_decref(s.todo);
            return;
        }
        start_moves(m, o, s.todo, running);
    }
    json_decref(s.todo);
    running = operations_children(m, o->id);
    size_t failed = json_object_size(json_object_get(o->params, "failed"));
    size_t total = (size_t)json_integer_value(json_object_get(o->params, "total"));
    o->bytes_total = total;
    o->bytes_done = total > s.left ? total - s.left : 0;
    if (running > 0 || (!o->cancel && s.left > failed + s.busy))
        return;
    json_t *result = json_pack("{s:I, s:O}", "moved", (json_int_t)o->bytes_done, "failed",
                               json_object_get(o->params, "failed"));
    if (o->cancel)
        (void)operations_end(m, o, OP_CANCELLED, result, "cancelled; %zu guest(s) left on %s",
                             (size_t)s.left, o->node);
    else if (s.left == 0)
        (void)operations_end(m, o, OP_DONE, result, NULL);
    else
        (void)operations_end(m, o, OP_FAILED, result, "%zu guest(s) could not leave node %s",
                             failed, o->node);
}

static void
drain_report(master_t *m, struct op *o, const char *node, const struct msg_migrate_status *st)
{
    (void)m, (void)o, (void)node, (void)st; /* a drain's children get the reports */
}

static int
drain_cancel(master_t *m, struct op *o, char *why, size_t n)
{
    o->cancel = true;
    /* Moves still before their point of no return stop; the others end. */
    json_t *children = json_object_get(o->params, "children");
    const char *name;
    json_t *id;
    json_object_foreach(children, name, id)
    {
        char ignored[256];
        if (operations_find(m, json_string_value(id)))
            (void)operations_cancel(m, json_string_value(id), ignored, sizeof(ignored));
    }
    (void)operations_store(m, o);
    snprintf(why, n, "cancelled");
    return 0;
}

static void
drain_resume(master_t *m, struct op *o, const char *node)
{
    (void)m, (void)o, (void)node; /* the tick goes on; the children resume themselves */
}

const struct op_kind_ops op_drain_ops = {
    .name = "drain",
    .report = drain_report,
    .tick = drain_tick,
    .cancel = drain_cancel,
    .resume = drain_resume,
};

static int
count_one(void *userdata, const struct db_guest *g)
{
    (void)g;
    (*(unsigned *)userdata)++;
    return 0;
}

static unsigned
count_guests(master_t *m, const char *node)
{
    struct db_guest_filter f = {.node = node, .observed = -1};
    unsigned n = 0;

    (void)db_guest_list(m->db, &f, count_one, &n);
    return n;
}

struct cordon_undo {
    char node[NAME_MAX_LEN + 1]; /* the node the drain cordoned */
    bool was;                    /* cordoned before */
};

/* The store's cordon is undone with the drain's transaction; the memory's
 * follows. */
static void
cordon_after(master_t *m, void *ctx, int err)
{
    struct cordon_undo *u = ctx;
    struct registry_node *n = registry_get(m->reg, u->node);

    if (err < 0 && n) {
        n->cordoned = u->was;
        sched_node_cordon(m->sched, u->node, u->was);
    }
    free(u);
}

int
op_drain_start(master_t *m, const struct op_drain_req *rq, char id[SPEC_ID_LEN + 1],
               struct guest_err *e)
{
    if (!registry_get(m->reg, rq->node))
        return guest_fail(e, -ENOENT, NULL, "no node named \"%s\"", rq->node);
    if (rq->limit < 1 || rq->limit > DRAIN_LIMIT_MAX)
        return guest_fail(e, -EINVAL, "limit", "limit must be 1..%d", DRAIN_LIMIT_MAX);
    for (struct op *p = NULL; (p = operations_find_kind(m, OP_DRAIN, p));)
        if (strcmp(p->node, rq->node) == 0)
            return guest_fail(e, -EBUSY, NULL, "node %s is being drained by operation %s", rq->node,
                              p->id);
    struct registry_node *n = registry_get(m->reg, rq->node);
    bool was = n->cordoned;
    int r = db_begin(m->db);
    if (r < 0)
        return guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
    r = registry_cordon(m->reg, rq->node, true);
    if (r >= 0) {
        struct cordon_undo *u = xcalloc(1, sizeof(*u));
        strscpy(u->node, rq->node, sizeof(u->node));
        u->was = was;
        oncommit_add(m->oncommit, cordon_after, u);
    }
    struct op *o = r >= 0 ? operations_add(m, OP_DRAIN, NULL) : NULL;
    if (o) {
        strscpy(o->node, rq->node, sizeof(o->node));
        json_object_set_new(o->params, "limit", json_integer(rq->limit));
        json_object_set_new(o->params, "live", json_boolean(rq->live));
        json_object_set_new(o->params, "renumber", json_boolean(rq->renumber));
        json_object_set_new(o->params, "children", json_object());
        json_object_set_new(o->params, "failed", json_object());
        json_object_set_new(o->params, "total", json_integer(count_guests(m, rq->node)));
        strscpy(id, o->id, SPEC_ID_LEN + 1);
        r = operations_step(m, o, "moving", "node %s cordoned; its guests move, %u at a time",
                            rq->node, rq->limit);
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot start the drain: %s", strerror(-r));
    return 0;
}
