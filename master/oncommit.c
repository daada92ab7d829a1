#include "master/oncommit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

struct pending {
    oncommit_fn fn; /* the follow-up */
    void *ctx;      /* its argument, owned by fn */
    unsigned depth; /* the transaction level it depends on */
};

struct oncommit {
    master_t *m;       /* handed to every fn */
    db_t *db;          /* the store followed */
    struct pending *v; /* waiting follow-ups, oldest first */
    size_t n;          /* entries in v */
    size_t cap;        /* allocated entries of v */
};

/* The list is ordered by depth, never decreasing from oldest to newest: an
 * entry is added at the current depth, which is at least that of every
 * entry before it (a released savepoint's entries move to the level around
 * it, which is the deepest still open). So the entries a transaction event
 * concerns are always a tail of the list, and each event costs only what it
 * concerns. */

/* Takes the tail of entries at or above depth out of the list (in order)
 * and runs them with err. They are detached first: a follow-up may open and
 * commit a transaction of its own. */
static void
run_from(oncommit_t *o, unsigned depth, int err)
{
    size_t first = o->n;

    while (first > 0 && o->v[first - 1].depth >= depth)
        first--;
    size_t n_run = o->n - first;
    if (n_run == 0)
        return;
    struct pending *run = xmalloc(n_run * sizeof(*run));
    memcpy(run, &o->v[first], n_run * sizeof(*run));
    o->n = first;
    for (size_t i = 0; i < n_run; i++)
        run[i].fn(o->m, run[i].ctx, err);
    free(run);
}

static void
on_tx(void *userdata, enum db_tx_event ev, unsigned depth)
{
    oncommit_t *o = userdata;

    switch (ev) {
    case DB_TX_BEGIN:
        break;
    case DB_TX_COMMIT:
        if (depth == 1) {
            run_from(o, 1, 0);
            break;
        }
        /* A released savepoint hands its follow-ups to the level around it. */
        for (size_t i = o->n; i > 0 && o->v[i - 1].depth >= depth; i--)
            o->v[i - 1].depth = depth - 1;
        break;
    case DB_TX_ROLLBACK: {
        int err = db_tx_error(o->db);
        run_from(o, depth, err < 0 ? err : -ECANCELED);
        break;
    }
    }
}

oncommit_t *
oncommit_new(master_t *m, db_t *db)
{
    oncommit_t *o = xcalloc(1, sizeof(*o));

    o->m = m;
    o->db = db;
    if (db_tx_hook_add(db, on_tx, o) < 0)
        abort(); /* a fixed number of hooks, all the master's own: a bug */
    return o;
}

void
oncommit_destroy(oncommit_t **p)
{
    oncommit_t *o = *p;

    if (!o)
        return;
    db_tx_hook_remove(o->db, o);
    run_from(o, 0, -ECANCELED);
    free(o->v);
    free(o);
    *p = NULL;
}

void
oncommit_add(oncommit_t *o, oncommit_fn fn, void *ctx)
{
    unsigned depth = db_tx_depth(o->db);

    if (depth == 0) {
        fn(o->m, ctx, 0);
        return;
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->v = xreallocarray(o->v, o->cap, sizeof(*o->v));
    }
    o->v[o->n++] = (struct pending){fn, ctx, depth};
}

size_t
oncommit_pending(const oncommit_t *o)
{
    return o->n;
}
