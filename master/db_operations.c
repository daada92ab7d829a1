/* The operations table (db_operations.h). */
#include "master/db_operations.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "master/db_int.h"

#define OP_COLS                                                                                    \
    "id, kind, parent, guest_id, guest, node, target, state, step, bytes_done, bytes_total, "      \
    "rate, params, result, error, cancel, created, updated, finished"

static const char sql_op_insert[] = "INSERT INTO operations (" OP_COLS ") VALUES "
                                    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                                    "?14, ?15, ?16, ?17, ?18, ?19)";
static const char sql_op_update[] =
    "UPDATE operations SET guest_id = ?4, guest = ?5, node = ?6, target = ?7, state = ?8, "
    "step = ?9, bytes_done = ?10, bytes_total = ?11, rate = ?12, params = ?13, result = ?14, "
    "error = ?15, cancel = ?16, updated = ?18, finished = ?19 WHERE id = ?1";
static const char sql_op_get[] = "SELECT " OP_COLS " FROM operations WHERE id = ?1";
static const char sql_op_list[] =
    "SELECT " OP_COLS " FROM operations "
    "WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR guest_id = ?2) "
    "AND (?3 IS NULL OR parent = ?3) "
    "AND (?4 IS NULL OR (created, id) > (SELECT created, id FROM operations WHERE id = ?4)) "
    "ORDER BY created, id LIMIT ?5";

static void
bind_op(sqlite3_stmt *s, const struct db_op *o)
{
    dbi_bind_text(s, 1, o->id);
    dbi_bind_text(s, 2, o->kind);
    dbi_bind_text(s, 3, o->parent);
    dbi_bind_text(s, 4, o->guest_id);
    dbi_bind_text(s, 5, o->guest);
    dbi_bind_text(s, 6, o->node);
    dbi_bind_text(s, 7, o->target);
    dbi_bind_text(s, 8, o->state);
    dbi_bind_text(s, 9, o->step);
    dbi_bind_u64(s, 10, o->bytes_done);
    dbi_bind_u64(s, 11, o->bytes_total);
    dbi_bind_u64(s, 12, o->rate);
    dbi_bind_text(s, 13, o->params ? o->params : "{}");
    dbi_bind_text(s, 14, o->result);
    dbi_bind_text(s, 15, o->error);
    sqlite3_bind_int(s, 16, o->cancel ? 1 : 0);
    dbi_bind_u64(s, 17, o->created_ms ? o->created_ms : dbi_now_ms());
    dbi_bind_u64(s, 18, dbi_now_ms());
    if (o->finished_ms)
        dbi_bind_u64(s, 19, o->finished_ms);
    else
        sqlite3_bind_null(s, 19);
}

int
db_op_insert(db_t *db, const struct db_op *o)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_op_insert);

    if (!o->id || !o->kind || !o->state || !o->step)
        return -EINVAL;
    bind_op(s, o);
    return dbi_step_done(db, s, -EEXIST, false);
}

int
db_op_update(db_t *db, const struct db_op *o)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_op_update);

    if (!o->id || !o->state || !o->step)
        return -EINVAL;
    bind_op(s, o);
    return dbi_step_done(db, s, -EINVAL, true);
}

static void
op_from_row(sqlite3_stmt *s, struct db_op *o, char *(*str)(sqlite3_stmt *, int))
{
    *o = (struct db_op){
        .id = str(s, 0),
        .kind = str(s, 1),
        .parent = str(s, 2),
        .guest_id = str(s, 3),
        .guest = str(s, 4),
        .node = str(s, 5),
        .target = str(s, 6),
        .state = str(s, 7),
        .step = str(s, 8),
        .bytes_done = dbi_col_u64(s, 9),
        .bytes_total = dbi_col_u64(s, 10),
        .rate = dbi_col_u64(s, 11),
        .params = str(s, 12),
        .result = str(s, 13),
        .error = str(s, 14),
        .cancel = sqlite3_column_int(s, 15) != 0,
        .created_ms = dbi_col_u64(s, 16),
        .updated_ms = dbi_col_u64(s, 17),
        .finished_ms = dbi_col_u64(s, 18),
    };
}

int
db_op_get(db_t *db, const char *id, struct db_op *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_op_get);
    int r = dbi_step_row(db, s, id);

    if (r < 0)
        return r;
    op_from_row(s, out, dbi_col_dup);
    return 0;
}

void
db_op_clear(struct db_op *o)
{
    char **strs[] = {&o->id,     &o->kind,  &o->parent, &o->guest_id, &o->guest,  &o->node,
                     &o->target, &o->state, &o->step,   &o->params,   &o->result, &o->error};

    for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

typedef int (*op_cb)(void *, const struct db_op *);

static int
op_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_op o;

    op_from_row(s, &o, dbi_col_borrow);
    return ((op_cb)cb)(userdata, &o);
}

int
db_op_list(db_t *db, const struct db_op_filter *f, int (*cb)(void *userdata, const struct db_op *o),
           void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_op_list);

    dbi_bind_text(s, 1, f->state);
    dbi_bind_text(s, 2, f->guest_id);
    dbi_bind_text(s, 3, f->parent);
    dbi_bind_text(s, 4, f->after);
    sqlite3_bind_int64(s, 5, f->limit ? (sqlite3_int64)f->limit : -1);
    return dbi_walk(db, s, op_row, (void *)cb, userdata);
}
