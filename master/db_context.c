/* Guests' FreeVPS context numbers: the smallest free one from
 * SPEC_MIN_CONTEXT, read through the unique index on the spec's context
 * (schema 8), so numbers of deleted guests are reused as FreeVPS did. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>

#include "proto/spec.h"

static const char sql_contexts[] =
    "SELECT json_extract(spec, '$.context') AS c FROM guests "
    "WHERE json_extract(spec, '$.context') >= ?1 ORDER BY json_extract(spec, '$.context')";

int
db_guest_free_context(db_t *db, uint32_t *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_contexts);
    uint64_t want = SPEC_MIN_CONTEXT;
    int rc;

    dbi_bind_u64(s, 1, SPEC_MIN_CONTEXT);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t c = dbi_col_u64(s, 0);
        if (c > want)
            break;
        if (c == want)
            want++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return dbi_errno(rc);
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
