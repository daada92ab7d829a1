#include "master/reconcile.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/guests.h"
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
        guests_observed(m, g, DB_OBS_LOST, "the node does not have this guest");
        return;
    }
    /* Never acked: the create is still under way. */
    guests_send_apply(m, node, spec);
    if (g->desired == DB_DESIRED_RUNNING)
        guests_send(m, node, MSG_GUEST_START, g->id, g->generation);
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
    if (!item) {
        reconcile_missing(m, node, &g, &spec);
        db_guest_clear(&g);
        return;
    }
    if (item->generation > 0)
        db_guest_set_applied(m->db, id, item->generation);
    if (guests_deleting(m, &g)) {
        /* Accepted for deletion (before a master restart, say): destroy. */
        guests_send(m, node, MSG_GUEST_DESTROY, id, g.generation);
        db_guest_clear(&g);
        return;
    }
    if (item->generation < g.generation)
        guests_send_apply(m, node, &spec);
    if (g.desired == DB_DESIRED_RUNNING && !item->running)
        guests_send(m, node, MSG_GUEST_START, id, g.generation);
    else if (g.desired == DB_DESIRED_STOPPED && item->running)
        guests_send(m, node, MSG_GUEST_STOP, id, g.generation);
    guests_observed(m, &g, item->running ? DB_OBS_RUNNING : DB_OBS_STOPPED, NULL);
    db_guest_clear(&g);
}

/* Guests the node has that are not the master's (here): orphans. */
static void
record_orphans(master_t *m, const char *node, const struct msg_hello *h, struct hmap_str *seen)
{
    struct registry_node *n = registry_get(m->reg, node);

    if (!n)
        return;
    json_decref(n->orphans);
    n->orphans = json_array();
    for (uint32_t i = 0; i < h->n_inventory; i++) {
        const struct msg_inventory_item *it = &h->inventory[i];
        if (hmap_str_get(seen, it->id))
            continue;
        json_array_append_new(n->orphans,
                              json_pack("{s:s, s:s, s:I, s:b}", "id", it->id, "name", it->name,
                                        "generation", (json_int_t)it->generation, "running",
                                        it->running));
        log_warning("node=%s guest=%s (%s) is not known to the master: orphan", node, it->name,
                    it->id);
    }
}

void
reconcile_hello(master_t *m, const char *node, const struct msg_hello *h)
{
    struct reconcile_ctx c = {0};
    struct hmap_str inv = {0}, seen = {0};

    for (uint32_t i = 0; i < h->n_inventory; i++)
        hmap_str_put(&inv, h->inventory[i].id, &h->inventory[i]);
    struct db_guest_filter f = {.node = node, .observed = -1};
    if (db_guest_list(m->db, &f, collect_guest, &c) < 0)
        log_error("node=%s cannot list its guests: %s", node, db_errmsg(m->db));
    for (size_t i = 0; i < c.n_ids; i++) {
        const struct msg_inventory_item *item = hmap_str_get(&inv, c.ids[i]);
        if (item)
            hmap_str_put(&seen, item->id, (void *)item);
        reconcile_guest(m, node, c.ids[i], item);
        free(c.ids[i]);
    }
    free(c.ids);
    record_orphans(m, node, h, &seen);
    hmap_str_free(&inv);
    hmap_str_free(&seen);
}
