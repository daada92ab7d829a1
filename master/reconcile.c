#include "master/reconcile.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/events.h"
#include "master/guests.h"
#include "master/guests_move.h"
#include "master/operations.h"
#include "master/registry.h"
#include "master/session.h"
#include "master/waiters.h"

struct reconcile_ctx {
    char **ids;   /* guests placed on the node */
    size_t n_ids; /* entries in ids */
};

static int
collect_guest(void *userdata, const struct db_guest *g)
{
    struct reconcile_ctx *c = userdata;

    c->ids = xreallocarray(c->ids, c->n_ids + 1, sizeof(*c->ids));
    c->ids[c->n_ids++] = xstrdup(g->id);
    return 0;
}

/* Asks node for its inventory, and for guest id's spec when id is not NULL. */
static void
ask_inventory(master_t *m, const char *node, const char *id)
{
    struct msg q = {.type = MSG_INVENTORY_GET};
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    if (id)
        strscpy(q.u.inventory_get.id, id, sizeof(q.u.inventory_get.id));
    if (msg_encode(&q, &buf, &len) == 0 && session_send_raw(m, node, buf, len) < 0)
        log_debug("node=%s inventory request not sent; the next heartbeat asks again", node);
}

/* A guest the master placed on node that the node does not report. */
static void
reconcile_missing(master_t *m, const char *node, struct db_guest *g, const struct guest_spec *spec)
{
    if (guests_deleting(m, g)) {
        /* It was being destroyed and is gone: the destroy is done. */
        if (guests_remove(m, g->id) >= 0)
            waiters_guest_deleted(m, g->id);
        return;
    }
    if (g->applied_generation > 0) {
        if (g->observed != DB_OBS_LOST)
            log_warning("node=%s guest=%s is missing on its node: lost", node, g->name);
        guests_observed(m, g, DB_OBS_LOST,
                        "its node does not have it any more (never re-created: its disk was "
                        "there); delete it to free its addresses");
        return;
    }
    /* Never acked: the create is still under way (this is no restart) —
     * unless it waits for its template from the library (the fetch's end
     * sends the create) or its node lacks the template (the node could only
     * refuse, and the reason the guest has, a failed fetch's, would go). */
    struct op *o = operations_for_guest(m, g->id);
    if ((o && o->kind == OP_TEMPLATE) ||
        !registry_node_has_template(m->reg, node, spec->template_name))
        return;
    if (g->desired == DB_DESIRED_RUNNING)
        guests_send_apply_start(m, node, spec);
    else
        guests_send_apply(m, node, spec);
}

/* The run state the node reports against the master's: never a start. */
static const char *
run_state(master_t *m, const char *node, const struct db_guest *g,
          const struct msg_inventory_item *item)
{
    if (g->desired == DB_DESIRED_STOPPED && item->running) {
        guests_send(m, node, MSG_GUEST_STOP, g->id, g->generation);
        return NULL;
    }
    if (g->desired != DB_DESIRED_RUNNING || item->running)
        return NULL;
    if (!strcmp(item->desired, "stopped")) {
        /* It halted by itself (while the node was unreachable, say): the
         * customer's will, which its desired state follows. */
        if (db_guest_set_desired(m->db, g->id, DB_DESIRED_STOPPED) < 0)
            log_error("guest=%s cannot record its desired state: %s", g->name, db_errmsg(m->db));
        return "halted by itself on its node; not started again";
    }
    return "not running on its node; the master does not start it (its restart policy or an "
           "operator may)";
}

/* One stored guest of the node against its inventory item (NULL: absent). */
static void
reconcile_guest(master_t *m, const char *node, const char *id,
                const struct msg_inventory_item *item)
{
    struct db_guest g = {0};
    struct guest_spec spec;

    if (guests_load(m, NULL, NULL, id, &g, &spec) < 0)
        return;
    if (!item && guests_moving(m, id)) {
        db_guest_clear(&g);
        return;
    }
    if (!item) {
        reconcile_missing(m, node, &g, &spec);
        db_guest_clear(&g);
        return;
    }
    if (item->generation > 0)
        db_guest_set_applied(m->db, id, item->generation);
    if (guests_moving(m, id)) {
        /* The move decides what runs where: nothing is started or stopped. */
        guests_observed(m, &g, item->running ? DB_OBS_RUNNING : DB_OBS_STOPPED, NULL);
        db_guest_clear(&g);
        return;
    }
    if (guests_deleting(m, &g)) {
        /* Accepted for deletion (before a master restart, say): destroy. */
        guests_send(m, node, MSG_GUEST_DESTROY, id, g.generation);
        db_guest_clear(&g);
        return;
    }
    if (item->generation < g.generation)
        guests_send_apply(m, node, &spec);
    enum db_observed obs = item->running ? DB_OBS_RUNNING : DB_OBS_STOPPED;
    if ((g.observed == DB_OBS_RUNNING || g.observed == DB_OBS_STOPPED) && g.observed != obs)
        events_emit(m, "guest.drift", node, id, g.name,
                    json_pack("{s:s, s:s}", "believed", db_observed_to_string(g.observed), "found",
                              db_observed_to_string(obs)),
                    "guest %s was believed %s but is %s on node %s", g.name,
                    db_observed_to_string(g.observed), db_observed_to_string(obs), node);
    guests_observed(m, &g, obs, run_state(m, node, &g, item));
    db_guest_clear(&g);
}

struct orphan_walk {
    struct hmap_str *reported; /* id -> inventory item, every guest the node has */
    char **gone;               /* orphans of the node it no longer has */
    size_t n_gone;             /* entries in gone */
};

static int
collect_gone(void *userdata, const struct db_orphan *o)
{
    struct orphan_walk *w = userdata;

    if (!hmap_str_get(w->reported, o->id)) {
        w->gone = xreallocarray(w->gone, w->n_gone + 1, sizeof(*w->gone));
        w->gone[w->n_gone++] = xstrdup(o->id);
    }
    return 0;
}

/* Guests the node has that are not the master's (managed): orphans. */
static void
reconcile_orphans(master_t *m, const char *node, const struct msg_inventory_item *items, uint32_t n,
                  struct hmap_str *reported, struct hmap_str *managed)
{
    struct orphan_walk w = {.reported = reported};

    for (uint32_t i = 0; i < n; i++) {
        /* A moving guest is on both nodes until the move ends: not an orphan. */
        if (hmap_str_get(managed, items[i].id) || guests_moving(m, items[i].id))
            continue;
        int r = guests_orphan_seen(m, node, &items[i]);
        if (r == 1)
            ask_inventory(m, node, items[i].id);
        else if (r < 0)
            log_error("node=%s cannot record orphan %s: %s", node, items[i].id, strerror(-r));
    }
    (void)db_orphan_list(m->db, node, collect_gone, &w);
    for (size_t i = 0; i < w.n_gone; i++) {
        guests_orphan_gone(m, node, w.gone[i], "its node does not have it any more");
        free(w.gone[i]);
    }
    free(w.gone);
}

static void
reconcile_items(master_t *m, const char *node, const struct msg_inventory_item *items, uint32_t n)
{
    struct reconcile_ctx c = {0};
    struct hmap_str inv = {0}, managed = {0};

    for (uint32_t i = 0; i < n; i++)
        hmap_str_put(&inv, items[i].id, (void *)&items[i]);
    struct db_guest_filter f = {.node = node, .observed = -1};
    if (db_guest_list(m->db, &f, collect_guest, &c) < 0)
        log_error("node=%s cannot list its guests: %s", node, db_errmsg(m->db));
    for (size_t i = 0; i < c.n_ids; i++) {
        const struct msg_inventory_item *item = hmap_str_get(&inv, c.ids[i]);
        if (item)
            hmap_str_put(&managed, item->id, (void *)item);
        reconcile_guest(m, node, c.ids[i], item);
        free(c.ids[i]);
    }
    free(c.ids);
    reconcile_orphans(m, node, items, n, &inv, &managed);
    hmap_str_free(&inv);
    hmap_str_free(&managed);
}

void
reconcile_hello(master_t *m, const char *node, const struct msg_hello *h)
{
    reconcile_items(m, node, h->inventory, h->n_inventory);
}

void
reconcile_inventory(master_t *m, const char *node, const struct msg_inventory *inv)
{
    reconcile_items(m, node, inv->inventory, inv->n_inventory);
    if (inv->spec.id[0])
        guests_orphan_spec(m, node, &inv->spec);
}

struct expect_ctx {
    uint64_t digest;  /* sum of msg_digest_item */
    uint32_t n;       /* guests */
    uint32_t running; /* of which running */
};

static int
expect_guest(void *userdata, const struct db_guest *g)
{
    struct expect_ctx *c = userdata;

    /* Only what the node acked once is there; a lost one is not. */
    if (g->applied_generation == 0 || g->observed == DB_OBS_LOST)
        return 0;
    bool running = g->observed == DB_OBS_RUNNING;
    c->digest += msg_digest_item(g->id, g->applied_generation, running);
    c->n++;
    c->running += running;
    return 0;
}

void
reconcile_expected(master_t *m, const char *node, uint64_t *digest, uint32_t *n, uint32_t *running)
{
    struct expect_ctx c = {0};
    struct db_guest_filter f = {.node = node, .observed = -1};

    if (db_guest_list(m->db, &f, expect_guest, &c) < 0)
        log_debug("node=%s cannot list its guests: %s", node, db_errmsg(m->db));
    guests_orphans_digest(m, node, &c.digest, &c.n, &c.running);
    *digest = c.digest;
    *n = c.n;
    *running = c.running;
}

void
reconcile_heartbeat(master_t *m, const char *node, const struct msg_heartbeat *hb)
{
    uint64_t digest;
    uint32_t n, running;

    reconcile_expected(m, node, &digest, &n, &running);
    /* A node that sends no digest (an older agent) is compared by its counts. */
    bool has_digest = hb->digest != 0 || hb->n_guests == 0;
    if (hb->n_guests == n && hb->n_running == running && (!has_digest || hb->digest == digest))
        return;
    log_info("node=%s reports %u guests (%u running), the master believes %u (%u): asking for "
             "its inventory",
             node, hb->n_guests, hb->n_running, n, running);
    ask_inventory(m, node, NULL);
}
