/* The events table: what happened in the cluster, in order. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "common/mem.h"

static const char sql_event_insert[] =
    "INSERT INTO events (time, type, node, guest_id, guest, message, data, project) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char sql_event_project[] = "SELECT project FROM guests WHERE id = ?1";
static const char sql_event_list[] =
    "SELECT seq, time, type, node, guest_id, guest, message, data, project FROM events "
    "WHERE seq > ?1 ORDER BY seq LIMIT ?2";
static const char sql_event_list_before[] =
    "SELECT seq, time, type, node, guest_id, guest, message, data, project FROM events "
    "WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2";
static const char sql_event_expire_age[] = "DELETE FROM events WHERE time < ?1 AND seq <= ?2";
static const char sql_event_expire_count[] = "DELETE FROM events WHERE seq <= ?1";
/* The newest is the highest number ever given (sqlite_sequence, as
 * AUTOINCREMENT keeps it), not the highest kept: retention may have dropped
 * every event, and a number is never given twice. */
static const char sql_event_first[] =
    "SELECT COALESCE(MIN(seq), 0), MAX(COALESCE(MAX(seq), 0), "
    "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)) FROM events";

int
db_event_insert(db_t *db, const struct db_event *e, uint64_t *seq)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_event_insert);

    if (!e->type)
        return -EINVAL;
    dbi_bind_u64(s, 1, e->time_ms ? e->time_ms : dbi_now_ms());
    dbi_bind_text(s, 2, e->type);
    dbi_bind_text(s, 3, e->node);
    dbi_bind_text(s, 4, e->guest_id);
    dbi_bind_text(s, 5, e->guest);
    dbi_bind_text(s, 6, e->message);
    dbi_bind_text(s, 7, e->data);
    dbi_bind_text(s, 8, e->project);
    int r = dbi_step_done(db, s, -EEXIST, false);
    if (r >= 0 && seq)
        *seq = (uint64_t)sqlite3_last_insert_rowid(db->conn);
    return r;
}

int
db_event_project_of(db_t *db, const char *guest_id, char *out, size_t n)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_event_project);
    int r = dbi_step_row(db, s, guest_id);

    if (r < 0)
        return r;
    const char *p = dbi_col_borrow(s, 0);
    if (!p || strscpy(out, p, n) < 0)
        return -ENOENT;
    return 0;
}

typedef int (*event_cb)(void *, const struct db_event *);

static int
event_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_event e = {
        .seq = dbi_col_u64(s, 0),
        .time_ms = dbi_col_u64(s, 1),
        .type = dbi_col_borrow(s, 2),
        .node = dbi_col_borrow(s, 3),
        .guest_id = dbi_col_borrow(s, 4),
        .guest = dbi_col_borrow(s, 5),
        .message = dbi_col_borrow(s, 6),
        .data = dbi_col_borrow(s, 7),
        .project = dbi_col_borrow(s, 8),
    };
    return ((event_cb)cb)(userdata, &e);
}

int
db_event_list(db_t *db, uint64_t after, unsigned limit,
              int (*cb)(void *userdata, const struct db_event *e), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_event_list);

    dbi_bind_u64(s, 1, after);
    sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
    return dbi_walk(db, s, event_row, (void *)cb, userdata);
}

int
db_event_list_before(db_t *db, uint64_t before, unsigned limit,
                     int (*cb)(void *userdata, const struct db_event *e), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_event_list_before);

    dbi_bind_u64(s, 1, before);
    sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
    return dbi_walk(db, s, event_row, (void *)cb, userdata);
}

int
db_event_bounds(db_t *db, uint64_t *first, uint64_t *last)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_event_first);
    int rc = sqlite3_step(s);

    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    *first = dbi_col_u64(s, 0);
    *last = dbi_col_u64(s, 1);
    return 0;
}

int
db_event_expire(db_t *db, uint64_t before_ms, uint64_t keep, uint64_t last)
{
    int r = db_begin(db), n = 0;

    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *a = dbi_stmt(db, sql_event_expire_age);
    dbi_bind_u64(a, 1, before_ms);
    dbi_bind_u64(a, 2, last);
    r = dbi_step_done(db, a, -EEXIST, false);
    n += r >= 0 ? sqlite3_changes(db->conn) : 0;
    if (r >= 0 && keep && last > keep) {
        _cleanup_stmt_ sqlite3_stmt *c = dbi_stmt(db, sql_event_expire_count);
        dbi_bind_u64(c, 1, last - keep);
        r = dbi_step_done(db, c, -EEXIST, false);
        n += r >= 0 ? sqlite3_changes(db->conn) : 0;
    }
    r = dbi_tx_end(db, r);
    return r < 0 ? r : n;
}
