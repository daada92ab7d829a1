/* The projects table and what a project's guests are charged. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "common/mem.h"

#define PROJECT_COLS "name, max_guests, max_cpu, max_memory, max_disk, max_addrs, created"

static const char sql_project_insert[] =
    "INSERT INTO projects (" PROJECT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_project_quota[] =
    "UPDATE projects SET max_guests = ?2, max_cpu = ?3, max_memory = ?4, max_disk = ?5, "
    "max_addrs = ?6 WHERE name = ?1";
static const char sql_project_guests[] = "SELECT 1 FROM guests WHERE project = ?1 LIMIT 1";
static const char sql_project_delete[] = "DELETE FROM projects WHERE name = ?1";
static const char sql_project_get[] = "SELECT " PROJECT_COLS " FROM projects WHERE name = ?1";
static const char sql_project_list[] = "SELECT " PROJECT_COLS " FROM projects ORDER BY name";
/* The guests_project index serves it; total() is 0.0 for no rows, and the
 * charges are far below 2^53, so the cast is exact. */
static const char sql_project_usage[] =
    "SELECT COUNT(*), CAST(total(charge_cpu) AS INTEGER), CAST(total(charge_memory) AS INTEGER), "
    "CAST(total(charge_disk) AS INTEGER), CAST(total(charge_addrs) AS INTEGER) FROM guests "
    "WHERE project = ?1";

static void
bind_quota(sqlite3_stmt *s, const struct db_quota *q)
{
    dbi_bind_u64(s, 2, q->guests);
    dbi_bind_u64(s, 3, q->cpu);
    dbi_bind_u64(s, 4, q->memory);
    dbi_bind_u64(s, 5, q->disk);
    dbi_bind_u64(s, 6, q->addrs);
}

int
db_project_insert(db_t *db, const struct db_project *p)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_project_insert);

    if (!p->name)
        return -EINVAL;
    dbi_bind_text(s, 1, p->name);
    bind_quota(s, &p->quota);
    dbi_bind_u64(s, 7, dbi_now_ms());
    return dbi_step_done(db, s, -EEXIST, false);
}

int
db_project_set_quota(db_t *db, const char *name, const struct db_quota *q)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_project_quota);

    dbi_bind_text(s, 1, name);
    bind_quota(s, q);
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_project_delete(db_t *db, const char *name)
{
    int r = db_begin(db);

    if (r < 0)
        return r;
    {
        _cleanup_stmt_ sqlite3_stmt *q = dbi_stmt(db, sql_project_guests);
        dbi_bind_text(q, 1, name);
        int rc = sqlite3_step(q);
        r = rc == SQLITE_ROW ? -EBUSY : rc == SQLITE_DONE ? 0 : dbi_errno(rc);
    }
    if (r >= 0) {
        _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_project_delete);
        dbi_bind_text(s, 1, name);
        /* A token of the project fails the foreign key: -EBUSY. */
        r = dbi_step_done(db, s, -EBUSY, true);
    }
    return dbi_tx_end(db, r);
}

static void
project_from_row(sqlite3_stmt *s, struct db_project *p, char *(*str)(sqlite3_stmt *, int))
{
    *p = (struct db_project){
        .name = str(s, 0),
        .quota = {.guests = dbi_col_u64(s, 1),
                  .cpu = dbi_col_u64(s, 2),
                  .memory = dbi_col_u64(s, 3),
                  .disk = dbi_col_u64(s, 4),
                  .addrs = dbi_col_u64(s, 5)},
        .created_ms = dbi_col_u64(s, 6),
    };
}

int
db_project_get(db_t *db, const char *name, struct db_project *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_project_get);
    int rc;

    dbi_bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    project_from_row(s, out, dbi_col_dup);
    return 0;
}

void
db_project_clear(struct db_project *p)
{
    free(p->name);
    *p = (struct db_project){0};
}

typedef int (*project_cb)(void *, const struct db_project *);

static int
project_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_project p;

    project_from_row(s, &p, dbi_col_borrow);
    return ((project_cb)cb)(userdata, &p);
}

int
db_project_list(db_t *db, int (*cb)(void *userdata, const struct db_project *p), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_project_list);

    return dbi_walk(db, s, project_row, (void *)cb, userdata);
}

int
db_project_usage(db_t *db, const char *name, struct db_quota *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_project_usage);
    int rc;

    dbi_bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW)
        return dbi_errno(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
    *out = (struct db_quota){.guests = dbi_col_u64(s, 0),
                             .cpu = dbi_col_u64(s, 1),
                             .memory = dbi_col_u64(s, 2),
                             .disk = dbi_col_u64(s, 3),
                             .addrs = dbi_col_u64(s, 4)};
    return 0;
}
