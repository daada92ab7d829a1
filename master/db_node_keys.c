/* The node_keys table: the CurveZMQ public key each node joined with. */
#include "master/db_int.h"

#include <errno.h>
#include <string.h>

#include "common/mem.h"

static const char sql_key_insert[] =
    "INSERT INTO node_keys (name, public_key, token, created) VALUES (?1, ?2, ?3, ?4)";
static const char sql_key_get[] =
    "SELECT name, public_key, token, created FROM node_keys WHERE name = ?1";
static const char sql_key_delete[] = "DELETE FROM node_keys WHERE name = ?1";
static const char sql_key_list[] =
    "SELECT name, public_key, token, created FROM node_keys ORDER BY name";

int
db_node_key_insert(db_t *db, const struct db_node_key *k)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_key_insert);

    if (!k->name[0] || !k->public_key[0])
        return -EINVAL;
    dbi_bind_text(s, 1, k->name);
    dbi_bind_text(s, 2, k->public_key);
    dbi_bind_text(s, 3, k->token[0] ? k->token : NULL);
    dbi_bind_u64(s, 4, k->created_ms ? k->created_ms : dbi_now_ms());
    return dbi_step_done(db, s, -EEXIST, false);
}

static void
key_from_row(sqlite3_stmt *s, struct db_node_key *k)
{
    const char *token = dbi_col_borrow(s, 2);

    *k = (struct db_node_key){.created_ms = dbi_col_u64(s, 3)};
    strscpy(k->name, dbi_col_borrow(s, 0), sizeof(k->name));
    strscpy(k->public_key, dbi_col_borrow(s, 1), sizeof(k->public_key));
    if (token)
        strscpy(k->token, token, sizeof(k->token));
}

int
db_node_key_get(db_t *db, const char *name, struct db_node_key *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_key_get);
    int r = dbi_step_row(db, s, name);

    if (r == 0)
        key_from_row(s, out);
    return r;
}

int
db_node_key_delete(db_t *db, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_key_delete);

    dbi_bind_text(s, 1, name);
    return dbi_step_done(db, s, -EBUSY, true);
}

typedef int (*key_cb)(void *, const struct db_node_key *);

static int
key_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_node_key k;

    key_from_row(s, &k);
    return ((key_cb)cb)(userdata, &k);
}

int
db_node_key_list(db_t *db, int (*cb)(void *userdata, const struct db_node_key *k), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_key_list);

    return dbi_walk(db, s, key_row, (void *)cb, userdata);
}
