/* The nodes table. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

#define NODE_COLS                                                                                  \
    "name, labels, kernel, cpus, memory, disk, max_guests, max_addrs, cordoned, state, "           \
    "last_seen, created, updated"

static const char sql_node_upsert[] =
    "INSERT INTO nodes (" NODE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, "
    "?11, ?11) ON CONFLICT (name) DO UPDATE SET labels = ?2, kernel = ?3, cpus = ?4, "
    "memory = ?5, disk = ?6, max_guests = ?7, max_addrs = ?8, state = ?9, last_seen = ?10, "
    "updated = ?11";
static const char sql_node_set_state[] =
    "UPDATE nodes SET state = ?2, last_seen = ?3, updated = ?4 WHERE name = ?1";
static const char sql_node_set_cordoned[] =
    "UPDATE nodes SET cordoned = ?2, updated = ?3 WHERE name = ?1";
static const char sql_node_delete[] = "DELETE FROM nodes WHERE name = ?1";
static const char sql_node_get[] = "SELECT " NODE_COLS " FROM nodes WHERE name = ?1";
static const char sql_node_list[] =
    "SELECT " NODE_COLS " FROM nodes WHERE name > ?1 ORDER BY name LIMIT ?2";

/* ---- nodes ---- */

int
db_node_upsert(db_t *db, const struct db_node *n)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_node_upsert);

    if (!n->name || !db_node_state_to_string(n->state))
        return -EINVAL;
    dbi_bind_text(s, 1, n->name);
    dbi_bind_text(s, 2, n->labels ? n->labels : "{}");
    dbi_bind_text(s, 3, n->kernel ? n->kernel : "{}");
    dbi_bind_u64(s, 4, n->cpus);
    dbi_bind_u64(s, 5, n->memory);
    dbi_bind_u64(s, 6, n->disk);
    dbi_bind_u64(s, 7, n->max_guests);
    dbi_bind_u64(s, 8, n->max_addrs);
    dbi_bind_text(s, 9, db_node_state_to_string(n->state));
    dbi_bind_u64(s, 10, n->last_seen_ms);
    dbi_bind_u64(s, 11, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, false);
}

int
db_node_set_state(db_t *db, const char *name, enum db_node_state state, uint64_t last_seen_ms)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_node_set_state);

    if (!db_node_state_to_string(state))
        return -EINVAL;
    dbi_bind_text(s, 1, name);
    dbi_bind_text(s, 2, db_node_state_to_string(state));
    dbi_bind_u64(s, 3, last_seen_ms);
    dbi_bind_u64(s, 4, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_node_set_cordoned(db_t *db, const char *name, bool cordoned)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_node_set_cordoned);

    dbi_bind_text(s, 1, name);
    sqlite3_bind_int(s, 2, cordoned);
    dbi_bind_u64(s, 3, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_node_delete(db_t *db, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_node_delete);

    dbi_bind_text(s, 1, name);
    return dbi_step_done(db, s, -EBUSY, true);
}

static void
node_from_row(sqlite3_stmt *s, struct db_node *n, char *(*str)(sqlite3_stmt *, int))
{
    int st = db_node_state_from_string((const char *)sqlite3_column_text(s, 9));

    *n = (struct db_node){
        .name = str(s, 0),
        .labels = str(s, 1),
        .kernel = str(s, 2),
        .cpus = dbi_col_u64(s, 3),
        .memory = dbi_col_u64(s, 4),
        .disk = dbi_col_u64(s, 5),
        .max_guests = (uint32_t)dbi_col_u64(s, 6),
        .max_addrs = (uint32_t)dbi_col_u64(s, 7),
        .cordoned = sqlite3_column_int(s, 8) != 0,
        .state = st < 0 ? DB_NODE_DOWN : (enum db_node_state)st,
        .last_seen_ms = dbi_col_u64(s, 10),
        .created_ms = dbi_col_u64(s, 11),
        .updated_ms = dbi_col_u64(s, 12),
    };
}

int
db_node_get(db_t *db, const char *name, struct db_node *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_node_get);
    int r = dbi_step_row(db, s, name);

    if (r < 0)
        return r;
    node_from_row(s, out, dbi_col_dup);
    return 0;
}

void
db_node_clear(struct db_node *n)
{
    free(n->name);
    free(n->labels);
    free(n->kernel);
    *n = (struct db_node){0};
}

typedef int (*node_cb)(void *, const struct db_node *);

static int
node_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_node n;

    node_from_row(s, &n, dbi_col_borrow);
    return ((node_cb)cb)(userdata, &n);
}

int
db_node_list(db_t *db, const char *after, unsigned limit,
             int (*cb)(void *userdata, const struct db_node *n), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_node_list);

    dbi_bind_text(s, 1, after ? after : "");
    sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
    return dbi_walk(db, s, node_row, (void *)cb, userdata);
}
