/* The tokens table: API tokens, stored as the SHA-256 of their secret. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "common/mem.h"

#define TOKEN_COLS "id, hash, role, project, description, created, expires"

static const char sql_token_insert[] =
    "INSERT INTO tokens (" TOKEN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_token_delete[] = "DELETE FROM tokens WHERE id = ?1";
static const char sql_token_get_hash[] = "SELECT " TOKEN_COLS " FROM tokens WHERE hash = ?1";
static const char sql_token_list[] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY id";

int
db_token_insert(db_t *db, const struct db_token *t)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_insert);
    int r;

    if (!t->id || !t->hash || !t->role)
        return -EINVAL;
    dbi_bind_text(s, 1, t->id);
    dbi_bind_text(s, 2, t->hash);
    dbi_bind_text(s, 3, t->role);
    dbi_bind_text(s, 4, t->project);
    dbi_bind_text(s, 5, t->description);
    dbi_bind_u64(s, 6, dbi_now_ms());
    dbi_bind_u64(s, 7, t->expires_ms);
    r = dbi_step_done(db, s, -EEXIST, false);
    /* The foreign key of the project. */
    return r == -EBUSY ? -ENOENT : r;
}

int
db_token_delete(db_t *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_delete);

    dbi_bind_text(s, 1, id);
    return dbi_step_done(db, s, -EINVAL, true);
}

static void
token_from_row(sqlite3_stmt *s, struct db_token *t, char *(*str)(sqlite3_stmt *, int))
{
    *t = (struct db_token){
        .id = str(s, 0),
        .hash = str(s, 1),
        .role = str(s, 2),
        .project = str(s, 3),
        .description = str(s, 4),
        .created_ms = dbi_col_u64(s, 5),
        .expires_ms = dbi_col_u64(s, 6),
    };
}

int
db_token_get_by_hash(db_t *db, const char *hash, struct db_token *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_get_hash);
    int rc;

    dbi_bind_text(s, 1, hash);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    token_from_row(s, out, dbi_col_dup);
    return 0;
}

void
db_token_clear(struct db_token *t)
{
    free(t->id);
    free(t->hash);
    free(t->role);
    free(t->project);
    free(t->description);
    *t = (struct db_token){0};
}

typedef int (*token_cb)(void *, const struct db_token *);

static int
token_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_token t;

    token_from_row(s, &t, dbi_col_borrow);
    return ((token_cb)cb)(userdata, &t);
}

int
db_token_list(db_t *db, int (*cb)(void *userdata, const struct db_token *t), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_token_list);

    return dbi_walk(db, s, token_row, (void *)cb, userdata);
}
