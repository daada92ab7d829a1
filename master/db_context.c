/* Guests' FreeVPS context numbers: the smallest free one from
 * SPEC_MIN_CONTEXT, read through the unique index on the spec's context
 * (schema 8), so numbers of deleted guests are reused as FreeVPS did.
 *
 * Walking that index from SPEC_MIN_CONTEXT at every create visits every
 * guest (O(n) per create, most of a batch create's time at 20,000 guests),
 * so the walk starts from a low-water mark instead: db->context_low, below
 * which every number is known to be taken. It only ever rises to the number
 * just handed out, and falls back whenever that may stop being true: a
 * temporary trigger reports every number a DELETE or a spec UPDATE frees
 * (this connection's only), a rollback may undo inserts below it, and
 * another connection's commit (PRAGMA data_version) may have done anything. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>

#include "proto/spec.h"

static const char sql_contexts[] =
    "SELECT json_extract(spec, '$.context') AS c FROM guests "
    "WHERE json_extract(spec, '$.context') >= ?1 ORDER BY json_extract(spec, '$.context')";
static const char sql_data_version[] = "PRAGMA data_version";

/* Registered on the connection: the freed number (NULL for a guest without
 * one) lowers the mark; anything else resets it. */
static const char sql_context_triggers[] =
    "CREATE TEMP TRIGGER IF NOT EXISTS vfleet_context_delete AFTER DELETE ON main.guests "
    "BEGIN SELECT vfleet_context_freed(json_extract(old.spec, '$.context')); END;"
    "CREATE TEMP TRIGGER IF NOT EXISTS vfleet_context_update AFTER UPDATE OF spec ON main.guests "
    "WHEN json_extract(old.spec, '$.context') IS NOT json_extract(new.spec, '$.context') "
    "BEGIN SELECT vfleet_context_freed(json_extract(old.spec, '$.context')); END;";

static void
context_freed(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    db_t *db = sqlite3_user_data(ctx);

    if (argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL)
        ; /* nothing freed */
    else if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER)
        dbi_context_forget(db);
    else if (sqlite3_value_int64(argv[0]) < (int64_t)db->context_low)
        db->context_low = (uint32_t)sqlite3_value_int64(argv[0]);
    sqlite3_result_null(ctx);
}

void
dbi_context_forget(db_t *db)
{
    db->context_low = SPEC_MIN_CONTEXT;
}

int
dbi_context_init(db_t *db)
{
    int rc;

    dbi_context_forget(db);
    db->context_data_version = -1;
    rc = sqlite3_create_function(db->conn, "vfleet_context_freed", 1,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, db, context_freed, NULL, NULL);
    if (rc != SQLITE_OK)
        return dbi_errno(rc);
    return dbi_exec(db, sql_context_triggers);
}

/* Forgets the mark when another connection committed since the last call. */
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
db_guest_free_context(db_t *db, uint32_t *out)
{
    uint64_t want;
    int rc, r;

    r = context_check_others(db);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_contexts);
    want = db->context_low < SPEC_MIN_CONTEXT ? SPEC_MIN_CONTEXT : db->context_low;
    dbi_bind_u64(s, 1, want);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t c = dbi_col_u64(s, 0);
        if (c > want)
            break;
        if (c == want)
            want++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return dbi_errno(rc);
    /* Every number below want is taken now; want itself may be inserted or
     * not (the caller's business), so the mark stops at it. Past the last
     * number too: a full range answers -ENOSPC at once until one is freed. */
    db->context_low = (uint32_t)want;
    if (want > SPEC_MAX_CONTEXT)
        return -ENOSPC;
    *out = (uint32_t)want;
    return 0;
}

static const char sql_context_taken[] =
    "SELECT 1 FROM guests WHERE json_extract(spec, '$.context') = ?1 LIMIT 1";

int
db_guest_context_taken(db_t *db, uint32_t context)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_context_taken);
    int rc;

    dbi_bind_u64(s, 1, context);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : dbi_errno(rc);
}
