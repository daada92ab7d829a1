#include "master/charges.h"

#include <errno.h>
#include <stdlib.h>

#include "common/mem.h"
#include "common/name.h"

enum undo_kind {
    UNDO_RESERVED, /* a charge was made: release it */
    UNDO_RELEASED, /* a charge was given back: make it again */
};

struct undo {
    enum undo_kind kind;          /* what happened */
    char node[NAME_MAX_LEN + 1];  /* on which node */
    char group[NAME_MAX_LEN + 1]; /* its anti-affinity group, "" = none */
    struct sched_resources res;   /* how much */
};

struct charges {
    sched_t *sched;    /* the index */
    db_t *db;          /* the store whose transactions are followed */
    struct undo *undo; /* changes of the open transaction, oldest first */
    size_t n_undo;     /* entries in undo */
    size_t undo_cap;   /* allocated entries of undo */
    size_t marks[64];  /* undo length when each depth began (index = depth) */
};

static void
log_change(charges_t *c, enum undo_kind kind, const char *node, const struct sched_resources *res,
           const char *group)
{
    if (db_tx_depth(c->db) == 0)
        return;
    if (c->n_undo == c->undo_cap) {
        c->undo_cap = c->undo_cap ? c->undo_cap * 2 : 16;
        c->undo = xreallocarray(c->undo, c->undo_cap, sizeof(*c->undo));
    }
    struct undo *u = &c->undo[c->n_undo++];
    *u = (struct undo){.kind = kind, .res = *res};
    strscpy(u->node, node, sizeof(u->node));
    strscpy(u->group, group ? group : "", sizeof(u->group));
}

static void
undo_one(charges_t *c, const struct undo *u)
{
    const char *group = u->group[0] ? u->group : NULL;

    if (u->kind == UNDO_RESERVED)
        (void)sched_release(c->sched, u->node, &u->res, group);
    else
        (void)sched_reserve(c->sched, u->node, &u->res, group);
}

static void
on_tx(void *userdata, enum db_tx_event ev, unsigned depth)
{
    charges_t *c = userdata;

    /* Savepoints deeper than the marks array are undone with the nearest
     * tracked level that rolls back. */
    if (depth >= ARRAY_SIZE(c->marks))
        return;
    switch (ev) {
    case DB_TX_BEGIN:
        c->marks[depth] = c->n_undo;
        break;
    case DB_TX_ROLLBACK:
        while (c->n_undo > c->marks[depth])
            undo_one(c, &c->undo[--c->n_undo]);
        break;
    case DB_TX_COMMIT:
        if (depth == 1)
            c->n_undo = 0;
        break;
    }
}

charges_t *
charges_new(sched_t *sched, db_t *db)
{
    charges_t *c = xcalloc(1, sizeof(*c));

    c->sched = sched;
    c->db = db;
    if (db_tx_hook_add(db, on_tx, c) < 0)
        abort(); /* a fixed number of hooks, all the master's own: a bug */
    return c;
}

void
charges_destroy(charges_t **p)
{
    charges_t *c = *p;

    if (!c)
        return;
    db_tx_hook_remove(c->db, c);
    free(c->undo);
    free(c);
    *p = NULL;
}

int
charges_place(charges_t *c, const struct sched_request *req, struct sched_result *out)
{
    int r = sched_place(c->sched, req, out);

    if (r >= 0)
        log_change(c, UNDO_RESERVED, out->node, &req->res, req->group);
    return r;
}

int
charges_reserve(charges_t *c, const char *node, const struct sched_resources *res,
                const char *group)
{
    int r = sched_reserve(c->sched, node, res, group);

    if (r >= 0)
        log_change(c, UNDO_RESERVED, node, res, group);
    return r;
}

int
charges_release(charges_t *c, const char *node, const struct sched_resources *res,
                const char *group)
{
    int r = sched_release(c->sched, node, res, group);

    if (r >= 0)
        log_change(c, UNDO_RELEASED, node, res, group);
    return r;
}

static bool
grew(const struct sched_resources *a, const struct sched_resources *b)
{
    return b->cpu > a->cpu || b->memory > a->memory || b->disk > a->disk || b->addrs > a->addrs;
}

int
charges_resize(charges_t *c, const char *node, const char *group,
               const struct sched_resources *old_res, const struct sched_resources *new_res,
               struct sched_result *out)
{
    int r;

    *out = (struct sched_result){0};
    if (!grew(old_res, new_res)) {
        r = charges_release(c, node, old_res, group);
        return r < 0 ? r : charges_reserve(c, node, new_res, group);
    }
    /* Growth passes every filter on the guest's own node, as a placement
     * pinned there: a node that is not ready or too full refuses. */
    struct sched_request req = {
        .res = *new_res, .pin = node, .group = group, .algo = SCHED_DEFAULT};
    r = charges_release(c, node, old_res, group);
    if (r < 0)
        return r;
    r = charges_place(c, &req, out);
    if (r < 0)
        (void)charges_reserve(c, node, old_res, group);
    return r;
}
