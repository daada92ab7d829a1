/* Guests' FreeVPS context numbers: per node, the smallest free one from
 * SPEC_MIN_CONTEXT, read through the unique index on (node, the spec's
 * context) (schema 13; schema 8 made them unique in the whole cluster, which
 * capped a cluster at 65,533 guests), so numbers of deleted guests are
 * reused as FreeVPS did on its host.
 *
 * Walking a node's part of that index from SPEC_MIN_CONTEXT at every create
 * visits every guest of the node (O(n) per create), so the walk starts from
 * the node's low-water mark instead, below which every number is known to
 * be taken on that node. A mark only ever rises to the first number the
 * walk found free, and falls back whenever that may stop being true: a
 * temporary trigger reports every (node, number) a DELETE or an UPDATE of
 * the spec or the node frees (this connection's only), and a rollback (which
 * may undo inserts below a mark) or another connection's commit (PRAGMA
 * data_version: it may have done anything) forgets every node's mark at
 * once by starting a new epoch.
 *
 * A guest without a node (none today: every create places it in the same
 * transaction) is in no node's range: SQLite's unique index treats NULLs as
 * distinct, and nothing here looks at it. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "proto/spec.h"

/* One node's mark. */
struct context_mark {
    uint64_t epoch; /* db->context_epoch when low was set; another = unknown */
    uint32_t low;   /* every number below is taken on the node */
    char node[];    /* the node's name (the map's key) */
};

static const char sql_contexts[] = "SELECT json_extract(spec, '$.context') AS c FROM guests "
                                   "WHERE node = ?1 AND json_extract(spec, '$.context') >= ?2 "
                                   "ORDER BY json_extract(spec, '$.context')";
static const char sql_data_version[] = "PRAGMA data_version";

/* Registered on the connection: the freed (node, number) (NULLs for a guest
 * without them) lowers that node's mark; anything else forgets them all. */
static const char sql_context_triggers[] =
    "CREATE TEMP TRIGGER IF NOT EXISTS vfleet_context_delete AFTER DELETE ON main.guests "
    "BEGIN SELECT vfleet_context_freed(old.node, json_extract(old.spec, '$.context')); END;"
    "CREATE TEMP TRIGGER IF NOT EXISTS vfleet_context_update "
    "AFTER UPDATE OF spec, node ON main.guests "
    "WHEN old.node IS NOT new.node OR "
    "json_extract(old.spec, '$.context') IS NOT json_extract(new.spec, '$.context') "
    "BEGIN SELECT vfleet_context_freed(old.node, json_extract(old.spec, '$.context')); END;";

/* node's mark, valid in this epoch, or NULL. */
static struct context_mark *
mark_get(db_t *db, const char *node)
{
    struct context_mark *k = hmap_str_get(&db->context_low, node);

    return k && k->epoch == db->context_epoch ? k : NULL;
}

/* node's mark, made (at SPEC_MIN_CONTEXT) when it has none in this epoch. */
static struct context_mark *
mark_make(db_t *db, const char *node)
{
    struct context_mark *k = hmap_str_get(&db->context_low, node);

    if (!k) {
        size_t n = strlen(node) + 1;
        k = xmalloc(sizeof(*k) + n);
        memcpy(k->node, node, n);
        k->epoch = db->context_epoch - 1;
        hmap_str_put(&db->context_low, k->node, k);
    }
    if (k->epoch != db->context_epoch) {
        /* Field by field: a whole-struct assignment writes sizeof(*k), whose
         * tail padding is where node[] begins. */
        k->epoch = db->context_epoch;
        k->low = SPEC_MIN_CONTEXT;
    }
    return k;
}

static void
context_freed(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    db_t *db = sqlite3_user_data(ctx);

    if (argc != 2 || sqlite3_value_type(argv[0]) == SQLITE_NULL ||
        sqlite3_value_type(argv[1]) == SQLITE_NULL)
        ; /* nothing freed: no node, or no number */
    else if (sqlite3_value_type(argv[0]) != SQLITE_TEXT ||
             sqlite3_value_type(argv[1]) != SQLITE_INTEGER)
        dbi_context_forget(db);
    else {
        struct context_mark *k = mark_get(db, (const char *)sqlite3_value_text(argv[0]));
        int64_t c = sqlite3_value_int64(argv[1]);
        if (k && c < (int64_t)k->low)
            k->low = (uint32_t)c;
    }
    sqlite3_result_null(ctx);
}

void
dbi_context_forget(db_t *db)
{
    db->context_epoch++;
}

void
dbi_context_free(db_t *db)
{
    for (size_t i = 0; i < db->context_low.cap; i++)
        free(db->context_low.slots[i].val);
    hmap_str_free(&db->context_low);
}

int
dbi_context_init(db_t *db)
{
    int rc;

    db->context_epoch = 1;
    db->context_data_version = -1;
    rc = sqlite3_create_function(db->conn, "vfleet_context_freed", 2,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, db, context_freed, NULL, NULL);
    if (rc != SQLITE_OK)
        return dbi_errno(rc);
    return dbi_exec(db, sql_context_triggers);
}

/* Forgets the marks when another connection committed since the last call. */
static int
context_check_others(db_t *db)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_data_version);
    int rc = sqlite3_step(s);

    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    int64_t v = sqlite3_column_int64(s, 0);
    if (v != db->context_data_version)
        dbi_context_forget(db);
    db->context_data_version = v;
    return 0;
}

int
db_guest_free_context(db_t *db, const char *node, db_context_held_fn held, void *userdata,
                      uint32_t *out)
{
    bool marked = false;
    int rc, r;

    if (!node || !node[0])
        return -EINVAL;
    r = context_check_others(db);
    if (r < 0)
        return r;
    struct context_mark *k = mark_make(db, node);
    uint64_t want = k->low < SPEC_MIN_CONTEXT ? SPEC_MIN_CONTEXT : k->low;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_contexts);
    dbi_bind_text(s, 1, node);
    dbi_bind_u64(s, 2, want);
    do {
        rc = sqlite3_step(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return dbi_errno(rc);
        uint64_t c = rc == SQLITE_ROW ? dbi_col_u64(s, 0) : UINT64_MAX;
        /* Every number from want up to c (excluded) is free in the store. */
        for (; want < c; want++) {
            if (!marked) {
                /* Every number below want is taken now; want itself may be
                 * inserted or not (the caller's business), so the mark stops
                 * at it. Past the last number too: a full range answers
                 * -ENOSPC at once until one is freed. */
                k->low = want > SPEC_MAX_CONTEXT ? SPEC_MAX_CONTEXT + 1 : (uint32_t)want;
                marked = true;
            }
            if (want > SPEC_MAX_CONTEXT)
                return -ENOSPC;
            if (!held || !held(userdata, node, (uint32_t)want)) {
                *out = (uint32_t)want;
                return 0;
            }
        }
        if (c == want)
            want++;
    } while (rc == SQLITE_ROW);
    return -ENOSPC; /* not reached: the loop above ends at want > SPEC_MAX_CONTEXT */
}

static const char sql_context_taken[] = "SELECT 1 FROM guests WHERE node = ?1 AND "
                                        "json_extract(spec, '$.context') = ?2 LIMIT 1";

int
db_guest_context_taken(db_t *db, const char *node, uint32_t context)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_context_taken);
    int rc;

    dbi_bind_text(s, 1, node);
    dbi_bind_u64(s, 2, context);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : dbi_errno(rc);
}
