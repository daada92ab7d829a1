/* The tables of drift between the master and its nodes: node_msgs (what a
 * node's outbox sent and the master stored), orphans (guests a node has
 * that the master does not manage) and ip_holds (the addresses orphans
 * hold), plus the pools' allocation cursor. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "common/mem.h"

static const char sql_msg_get[] = "SELECT hash FROM node_msgs WHERE node = ?1 AND id = ?2";
static const char sql_msg_put[] =
    "INSERT OR REPLACE INTO node_msgs (node, id, hash, at) VALUES (?1, ?2, ?3, ?4)";
static const char sql_msg_expire[] = "DELETE FROM node_msgs WHERE at < ?1";

#define ORPHAN_COLS "node, id, name, generation, running, seen, spec, reason, since"
static const char sql_orphan_put[] =
    "INSERT OR REPLACE INTO orphans (" ORPHAN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char sql_orphan_get[] =
    "SELECT " ORPHAN_COLS " FROM orphans WHERE node = ?1 AND id = ?2";
static const char sql_orphan_delete[] = "DELETE FROM orphans WHERE node = ?1 AND id = ?2";
static const char sql_orphan_list_node[] =
    "SELECT " ORPHAN_COLS " FROM orphans WHERE node = ?1 ORDER BY name, id";
static const char sql_orphan_list_all[] =
    "SELECT " ORPHAN_COLS " FROM orphans ORDER BY node, name, id";

static const char sql_hold_insert[] =
    "INSERT INTO ip_holds (address, pool, node, guest_id, created) VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_hold_delete[] = "DELETE FROM ip_holds WHERE address = ?1";
static const char sql_hold_list_pool[] =
    "SELECT address, pool, node, guest_id, created FROM ip_holds WHERE pool = ?1 ORDER BY address";
static const char sql_hold_list_guest[] =
    "SELECT address, pool, node, guest_id, created FROM ip_holds WHERE node = ?1 AND "
    "guest_id = ?2 ORDER BY address";

static const char sql_pool_set_cursor[] = "UPDATE pools SET cursor = ?2 WHERE name = ?1";
static const char sql_pool_get_cursor[] = "SELECT cursor FROM pools WHERE name = ?1";

/* ---- node_msgs ---- */

int
db_node_msg_once(db_t *db, const char *node, uint64_t id, uint64_t hash)
{
    {
        _cleanup_stmt_ sqlite3_stmt *q = dbi_stmt(db, sql_msg_get);
        dbi_bind_text(q, 1, node);
        dbi_bind_u64(q, 2, id);
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(q, 0) == hash)
            return 1;
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return dbi_errno(rc);
    }
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_msg_put);
    dbi_bind_text(s, 1, node);
    dbi_bind_u64(s, 2, id);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)hash); /* all 64 bits, kept as they are */
    dbi_bind_u64(s, 4, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, false);
}

int
db_node_msg_expire(db_t *db, uint64_t before_ms)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_msg_expire);
    int r;

    dbi_bind_u64(s, 1, before_ms);
    r = dbi_step_done(db, s, -EINVAL, false);
    return r < 0 ? r : sqlite3_changes(sqlite3_db_handle(s));
}

/* ---- orphans ---- */

int
db_orphan_put(db_t *db, const struct db_orphan *o)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_orphan_put);

    if (!o->node || !o->id || !o->name || !o->reason)
        return -EINVAL;
    dbi_bind_text(s, 1, o->node);
    dbi_bind_text(s, 2, o->id);
    dbi_bind_text(s, 3, o->name);
    dbi_bind_u64(s, 4, o->generation);
    sqlite3_bind_int(s, 5, o->running);
    sqlite3_bind_int(s, 6, o->seen);
    dbi_bind_text(s, 7, o->spec);
    dbi_bind_text(s, 8, o->reason);
    dbi_bind_u64(s, 9, o->since_ms ? o->since_ms : dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, false);
}

static void
orphan_from_row(sqlite3_stmt *s, struct db_orphan *o, char *(*str)(sqlite3_stmt *, int))
{
    *o = (struct db_orphan){
        .node = str(s, 0),
        .id = str(s, 1),
        .name = str(s, 2),
        .generation = dbi_col_u64(s, 3),
        .running = sqlite3_column_int(s, 4) != 0,
        .seen = sqlite3_column_int(s, 5) != 0,
        .spec = str(s, 6),
        .reason = str(s, 7),
        .since_ms = dbi_col_u64(s, 8),
    };
}

int
db_orphan_get(db_t *db, const char *node, const char *id, struct db_orphan *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_orphan_get);
    int rc;

    dbi_bind_text(s, 1, node);
    dbi_bind_text(s, 2, id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    orphan_from_row(s, out, dbi_col_dup);
    return 0;
}

int
db_orphan_delete(db_t *db, const char *node, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_orphan_delete);

    dbi_bind_text(s, 1, node);
    dbi_bind_text(s, 2, id);
    return dbi_step_done(db, s, -EINVAL, true);
}

void
db_orphan_clear(struct db_orphan *o)
{
    free(o->node);
    free(o->id);
    free(o->name);
    free(o->spec);
    free(o->reason);
    *o = (struct db_orphan){0};
}

typedef int (*orphan_cb)(void *, const struct db_orphan *);

static int
orphan_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_orphan o;

    orphan_from_row(s, &o, dbi_col_borrow);
    return ((orphan_cb)cb)(userdata, &o);
}

int
db_orphan_list(db_t *db, const char *node, int (*cb)(void *userdata, const struct db_orphan *o),
               void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s =
        dbi_stmt(db, node ? sql_orphan_list_node : sql_orphan_list_all);

    if (node)
        dbi_bind_text(s, 1, node);
    return dbi_walk(db, s, orphan_row, (void *)cb, userdata);
}

/* ---- ip_holds ---- */

int
db_hold_insert(db_t *db, const char *address, const char *pool, const char *node,
               const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_hold_insert);
    int rc;

    if (!address || !pool || !node || !guest_id)
        return -EINVAL;
    dbi_bind_text(s, 1, address);
    dbi_bind_text(s, 2, pool);
    dbi_bind_text(s, 3, node);
    dbi_bind_text(s, 4, guest_id);
    dbi_bind_u64(s, 5, dbi_now_ms());
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_TRIGGER)
        return -EADDRINUSE;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT;
    return dbi_errno(rc);
}

int
db_hold_delete(db_t *db, const char *address)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_hold_delete);

    dbi_bind_text(s, 1, address);
    return dbi_step_done(db, s, -EINVAL, true);
}

typedef int (*hold_cb)(void *, const struct db_hold *);

static int
hold_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_hold h = {
        .address = dbi_col_borrow(s, 0),
        .pool = dbi_col_borrow(s, 1),
        .node = dbi_col_borrow(s, 2),
        .guest_id = dbi_col_borrow(s, 3),
        .created_ms = dbi_col_u64(s, 4),
    };
    return ((hold_cb)cb)(userdata, &h);
}

int
db_hold_list(db_t *db, const char *pool, const char *node, const char *guest_id,
             int (*cb)(void *userdata, const struct db_hold *h), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, pool ? sql_hold_list_pool : sql_hold_list_guest);

    if (pool) {
        dbi_bind_text(s, 1, pool);
    } else {
        if (!node || !guest_id)
            return -EINVAL;
        dbi_bind_text(s, 1, node);
        dbi_bind_text(s, 2, guest_id);
    }
    return dbi_walk(db, s, hold_row, (void *)cb, userdata);
}

/* ---- the pools' cursor ---- */

int
db_pool_set_cursor(db_t *db, const char *name, uint64_t cursor)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_pool_set_cursor);

    dbi_bind_text(s, 1, name);
    /* The cursor of an IPv6 pool may pass 2^63: SQLite keeps the bits. */
    sqlite3_bind_int64(s, 2, (sqlite3_int64)cursor);
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_pool_get_cursor(db_t *db, const char *name, uint64_t *cursor)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_pool_get_cursor);
    int rc;

    dbi_bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    *cursor = (uint64_t)sqlite3_column_int64(s, 0);
    return 0;
}
