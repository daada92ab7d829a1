/* The join_tokens table: single-use tokens a node joins with, kept by their
 * public key (never their secret). */
#include "master/db_int.h"

#include <errno.h>
#include <string.h>

#include "common/mem.h"

#define TOKEN_COLUMNS "id, public_key, node, created, expires, used_by, used_at"

static const char sql_token_insert[] =
    "INSERT INTO join_tokens (id, public_key, node, created, expires) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_token_get[] = "SELECT " TOKEN_COLUMNS " FROM join_tokens WHERE id = ?1";
/* Compare-and-set: only an unused token becomes used. */
static const char sql_token_use[] =
    "UPDATE join_tokens SET used_by = ?2, used_at = ?3 WHERE id = ?1 AND used_by IS NULL";
static const char sql_token_list[] = "SELECT " TOKEN_COLUMNS " FROM join_tokens ORDER BY created";
static const char sql_token_expired[] =
    "SELECT " TOKEN_COLUMNS " FROM join_tokens WHERE expires < ?1";
static const char sql_token_purge[] = "DELETE FROM join_tokens WHERE expires < ?1";

int
db_join_token_insert(db_t *db, const struct db_join_token *t)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_insert);

    if (!t->id[0] || !t->public_key[0])
        return -EINVAL;
    dbi_bind_text(s, 1, t->id);
    dbi_bind_text(s, 2, t->public_key);
    dbi_bind_text(s, 3, t->node[0] ? t->node : NULL);
    dbi_bind_u64(s, 4, t->created_ms);
    dbi_bind_u64(s, 5, t->expires_ms);
    return dbi_step_done(db, s, -EEXIST, false);
}

static void
token_from_row(sqlite3_stmt *s, struct db_join_token *t)
{
    const char *node = dbi_col_borrow(s, 2), *used_by = dbi_col_borrow(s, 5);

    *t = (struct db_join_token){
        .created_ms = dbi_col_u64(s, 3),
        .expires_ms = dbi_col_u64(s, 4),
        .used_ms = dbi_col_u64(s, 6),
    };
    strscpy(t->id, dbi_col_borrow(s, 0), sizeof(t->id));
    strscpy(t->public_key, dbi_col_borrow(s, 1), sizeof(t->public_key));
    if (node)
        strscpy(t->node, node, sizeof(t->node));
    if (used_by)
        strscpy(t->used_by, used_by, sizeof(t->used_by));
}

int
db_join_token_get(db_t *db, const char *id, struct db_join_token *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_get);
    int r = dbi_step_row(db, s, id);

    if (r == 0)
        token_from_row(s, out);
    return r;
}

int
db_join_token_use(db_t *db, const char *id, const char *node, uint64_t now_ms)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_use);
    struct db_join_token t;
    int r;

    dbi_bind_text(s, 1, id);
    dbi_bind_text(s, 2, node);
    dbi_bind_u64(s, 3, now_ms);
    r = dbi_step_done(db, s, -EINVAL, true);
    if (r == -ENOENT && db_join_token_get(db, id, &t) == 0)
        return -ESTALE;
    return r;
}

typedef int (*token_cb)(void *, const struct db_join_token *);

static int
token_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_join_token t;

    token_from_row(s, &t);
    return ((token_cb)cb)(userdata, &t);
}

int
db_join_token_list(db_t *db, int (*cb)(void *userdata, const struct db_join_token *t),
                   void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_list);

    return dbi_walk(db, s, token_row, (void *)cb, userdata);
}

int
db_join_token_purge(db_t *db, uint64_t before_ms,
                    int (*cb)(void *userdata, const struct db_join_token *t), void *userdata)
{
    int r = 0;

    if (cb) {
        _cleanup_stmt_ sqlite3_stmt *q = dbi_stmt(db, sql_token_expired);
        dbi_bind_u64(q, 1, before_ms);
        r = dbi_walk(db, q, token_row, (void *)cb, userdata);
        if (r < 0)
            return r;
    }
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_purge);
    dbi_bind_u64(s, 1, before_ms);
    r = dbi_step_done(db, s, -EINVAL, false);
    return r < 0 ? r : sqlite3_changes(db->conn);
}
