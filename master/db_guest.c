/* The guests table and its label index. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

#define GUEST_INSERT_COLS                                                                          \
    "id, name, node, spec, grp, message, generation, applied_generation, desired, observed, "      \
    "created, updated, project, charge_cpu, charge_memory, charge_disk, charge_addrs"
#define GUEST_COLS GUEST_INSERT_COLS ", deleting"

static const char sql_guest_get_id[] = "SELECT " GUEST_COLS " FROM guests WHERE id = ?1";
static const char sql_guest_get_name[] = "SELECT " GUEST_COLS " FROM guests WHERE name = ?1";
static const char sql_guest_get_state[] =
    "SELECT id, name, node, generation, applied_generation, desired, observed, deleting, project "
    "FROM guests WHERE id = ?1";
static const char sql_label_delete_guest[] = "DELETE FROM guest_labels WHERE guest_id = ?1";
static const char sql_label_insert[] =
    "INSERT INTO guest_labels (key, value, guest_id) VALUES (?1, ?2, ?3)";
static const char sql_guest_insert[] =
    "INSERT INTO guests (" GUEST_INSERT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
    "?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14, ?15, ?16)";
static const char sql_guest_update[] =
    "UPDATE guests SET node = ?2, spec = ?3, grp = ?4, desired = ?5, "
    "generation = ?6, updated = ?7, charge_cpu = ?9, charge_memory = ?10, charge_disk = ?11, "
    "charge_addrs = ?12 WHERE id = ?1 AND generation = ?8";
static const char sql_guest_set_charge[] =
    "UPDATE guests SET charge_cpu = ?2, charge_memory = ?3, charge_disk = ?4, charge_addrs = ?5 "
    "WHERE id = ?1";
/* With the generation the node acked (?5, 0 = none): one row write per ack. */
static const char sql_guest_set_observed[] =
    "UPDATE guests SET observed = ?2, message = ?3, updated = ?4, "
    "applied_generation = MAX(applied_generation, ?5) WHERE id = ?1";
static const char sql_guest_set_applied[] =
    "UPDATE guests SET applied_generation = MAX(applied_generation, ?2), "
    "updated = ?3 WHERE id = ?1";
static const char sql_guest_set_desired[] =
    "UPDATE guests SET desired = ?2, updated = ?3 WHERE id = ?1";
static const char sql_guest_delete[] = "DELETE FROM guests WHERE id = ?1";
static const char sql_guest_set_deleting[] =
    "UPDATE guests SET deleting = 1, updated = ?2 WHERE id = ?1";

/* ---- guests ---- */

/* fresh: the guest's row was inserted in this transaction, so it has no
 * labels to delete (a label row goes with its guest's, ON DELETE CASCADE);
 * the DELETE was a statement per create for nothing. */
static int
labels_write(db_t *db, const char *id, const struct db_label *labels, size_t n_labels, bool fresh)
{
    int r;

    if (!fresh) {
        _cleanup_stmt_ sqlite3_stmt *d = dbi_stmt(db, sql_label_delete_guest);

        dbi_bind_text(d, 1, id);
        r = dbi_step_done(db, d, -EINVAL, false);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < n_labels; i++) {
        _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_label_insert);

        if (!labels[i].key || !labels[i].value)
            return -EINVAL;
        dbi_bind_text(s, 1, labels[i].key);
        dbi_bind_text(s, 2, labels[i].value);
        dbi_bind_text(s, 3, id);
        r = dbi_step_done(db, s, -EINVAL, false);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
guest_insert_one(db_t *db, const struct db_guest *g)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_insert);

    dbi_bind_text(s, 1, g->id);
    dbi_bind_text(s, 2, g->name);
    dbi_bind_text(s, 3, g->node);
    dbi_bind_text(s, 4, g->spec);
    dbi_bind_text(s, 5, g->group);
    dbi_bind_text(s, 6, g->message);
    dbi_bind_u64(s, 7, g->generation);
    dbi_bind_u64(s, 8, g->applied_generation);
    dbi_bind_text(s, 9, db_desired_to_string(g->desired));
    dbi_bind_text(s, 10, db_observed_to_string(g->observed));
    dbi_bind_u64(s, 11, dbi_now_ms());
    dbi_bind_text(s, 12, g->project ? g->project : "default");
    dbi_bind_u64(s, 13, g->charge.cpu);
    dbi_bind_u64(s, 14, g->charge.memory);
    dbi_bind_u64(s, 15, g->charge.disk);
    dbi_bind_u64(s, 16, g->charge.addrs);
    /* A foreign-key failure here means the node does not exist. */
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return -EEXIST;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return -EINVAL;
    return dbi_errno(rc);
}

int
db_guest_insert(db_t *db, const struct db_guest *g, const struct db_label *labels, size_t n_labels)
{
    int r;

    if (!g->id || !g->name || !g->spec || g->generation < 1 || !db_desired_to_string(g->desired) ||
        !db_observed_to_string(g->observed))
        return -EINVAL;
    /* One statement inside the caller's transaction needs no savepoint of
     * its own: SQLite undoes a failed statement whole, and the caller's
     * savepoint or transaction covers the rest (a savepoint per batch
     * create was ~2 % of it, issue 16). */
    if (n_labels == 0 && db_tx_depth(db) > 0)
        return guest_insert_one(db, g);
    r = db_begin(db);
    if (r < 0)
        return r;
    r = guest_insert_one(db, g);
    if (r >= 0)
        r = labels_write(db, g->id, labels, n_labels, true);
    return dbi_tx_end(db, r);
}

int
db_guest_update(db_t *db, const struct db_guest *g, const struct db_label *labels, size_t n_labels,
                uint64_t expect_generation)
{
    int r;

    if (!g->id || !g->spec || g->generation <= expect_generation ||
        !db_desired_to_string(g->desired))
        return -EINVAL;
    r = db_begin(db);
    if (r < 0)
        return r;
    {
        _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_update);

        dbi_bind_text(s, 1, g->id);
        dbi_bind_text(s, 2, g->node);
        dbi_bind_text(s, 3, g->spec);
        dbi_bind_text(s, 4, g->group);
        dbi_bind_text(s, 5, db_desired_to_string(g->desired));
        dbi_bind_u64(s, 6, g->generation);
        dbi_bind_u64(s, 7, dbi_now_ms());
        dbi_bind_u64(s, 8, expect_generation);
        dbi_bind_u64(s, 9, g->charge.cpu);
        dbi_bind_u64(s, 10, g->charge.memory);
        dbi_bind_u64(s, 11, g->charge.disk);
        dbi_bind_u64(s, 12, g->charge.addrs);
        r = dbi_step_done(db, s, -EINVAL, true);
        if (r == -EBUSY)
            r = -ENOENT; /* the new node does not exist */
    }
    if (r == -ENOENT) {
        /* Tell "no such guest" from "somebody changed it first". */
        struct db_guest cur;
        if (db_guest_get_by_id(db, g->id, &cur) >= 0) {
            r = cur.generation != expect_generation ? -ESTALE : -ENOENT;
            db_guest_clear(&cur);
        }
    }
    if (r >= 0)
        r = labels_write(db, g->id, labels, n_labels, false);
    return dbi_tx_end(db, r);
}

int
db_guest_set_observed_applied(db_t *db, const char *id, enum db_observed observed,
                              const char *message, uint64_t gen)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_set_observed);

    if (!db_observed_to_string(observed))
        return -EINVAL;
    dbi_bind_text(s, 1, id);
    dbi_bind_text(s, 2, db_observed_to_string(observed));
    dbi_bind_text(s, 3, message);
    dbi_bind_u64(s, 4, dbi_now_ms());
    dbi_bind_u64(s, 5, gen);
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_guest_set_observed(db_t *db, const char *id, enum db_observed observed, const char *message)
{
    return db_guest_set_observed_applied(db, id, observed, message, 0);
}

int
db_guest_set_applied(db_t *db, const char *id, uint64_t gen)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_set_applied);

    dbi_bind_text(s, 1, id);
    dbi_bind_u64(s, 2, gen);
    dbi_bind_u64(s, 3, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_guest_set_charge(db_t *db, const char *id, const struct db_charge *c)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_set_charge);

    dbi_bind_text(s, 1, id);
    dbi_bind_u64(s, 2, c->cpu);
    dbi_bind_u64(s, 3, c->memory);
    dbi_bind_u64(s, 4, c->disk);
    dbi_bind_u64(s, 5, c->addrs);
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_guest_set_desired(db_t *db, const char *id, enum db_desired desired)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_set_desired);

    if (!db_desired_to_string(desired))
        return -EINVAL;
    dbi_bind_text(s, 1, id);
    dbi_bind_text(s, 2, db_desired_to_string(desired));
    dbi_bind_u64(s, 3, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_guest_set_deleting(db_t *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_set_deleting);

    dbi_bind_text(s, 1, id);
    dbi_bind_u64(s, 2, dbi_now_ms());
    return dbi_step_done(db, s, -EINVAL, true);
}

int
db_guest_delete(db_t *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_delete);

    dbi_bind_text(s, 1, id);
    return dbi_step_done(db, s, -EBUSY, true);
}

static void
guest_from_row(sqlite3_stmt *s, struct db_guest *g, char *(*str)(sqlite3_stmt *, int))
{
    int d = db_desired_from_string((const char *)sqlite3_column_text(s, 8));
    int o = db_observed_from_string((const char *)sqlite3_column_text(s, 9));

    *g = (struct db_guest){
        .id = str(s, 0),
        .name = str(s, 1),
        .node = str(s, 2),
        .spec = str(s, 3),
        .group = str(s, 4),
        .message = str(s, 5),
        .generation = dbi_col_u64(s, 6),
        .applied_generation = dbi_col_u64(s, 7),
        .desired = d < 0 ? DB_DESIRED_STOPPED : (enum db_desired)d,
        .observed = o < 0 ? DB_OBS_UNKNOWN : (enum db_observed)o,
        .created_ms = dbi_col_u64(s, 10),
        .updated_ms = dbi_col_u64(s, 11),
        .project = str(s, 12),
        .charge = {.cpu = dbi_col_u64(s, 13),
                   .memory = dbi_col_u64(s, 14),
                   .disk = dbi_col_u64(s, 15),
                   .addrs = (uint32_t)dbi_col_u64(s, 16)},
        .charged = sqlite3_column_type(s, 13) != SQLITE_NULL,
        .deleting = sqlite3_column_int(s, 17) != 0,
    };
}

static int
guest_get(db_t *db, const char *sql, const char *key, struct db_guest *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql);
    int r = dbi_step_row(db, s, key);

    if (r < 0)
        return r;
    guest_from_row(s, out, dbi_col_dup);
    return 0;
}

int
db_guest_get_by_id(db_t *db, const char *id, struct db_guest *out)
{
    return guest_get(db, sql_guest_get_id, id, out);
}

int
db_guest_get_by_name(db_t *db, const char *name, struct db_guest *out)
{
    return guest_get(db, sql_guest_get_name, name, out);
}

int
db_guest_get_state(db_t *db, const char *id, struct db_guest *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_guest_get_state);
    int r = dbi_step_row(db, s, id);

    if (r < 0)
        return r;
    int d = db_desired_from_string((const char *)sqlite3_column_text(s, 5));
    int o = db_observed_from_string((const char *)sqlite3_column_text(s, 6));
    *out = (struct db_guest){
        .id = dbi_col_dup(s, 0),
        .name = dbi_col_dup(s, 1),
        .node = dbi_col_dup(s, 2),
        .generation = dbi_col_u64(s, 3),
        .applied_generation = dbi_col_u64(s, 4),
        .desired = d < 0 ? DB_DESIRED_STOPPED : (enum db_desired)d,
        .observed = o < 0 ? DB_OBS_UNKNOWN : (enum db_observed)o,
        .deleting = sqlite3_column_int(s, 7) != 0,
        .project = dbi_col_dup(s, 8),
    };
    return 0;
}

void
db_guest_clear(struct db_guest *g)
{
    free(g->id);
    free(g->name);
    free(g->node);
    free(g->spec);
    free(g->group);
    free(g->message);
    free(g->project);
    *g = (struct db_guest){0};
}

typedef int (*guest_cb)(void *, const struct db_guest *);

static int
guest_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_guest g;

    guest_from_row(s, &g, dbi_col_borrow);
    return ((guest_cb)cb)(userdata, &g);
}

int
db_guest_list(db_t *db, const struct db_guest_filter *f,
              int (*cb)(void *userdata, const struct db_guest *g), void *userdata)
{
    unsigned mask = 0;
    int r;

    if ((f->label_key == NULL) != (f->label_value == NULL))
        return -EINVAL;
    if (f->observed >= 0 && !db_observed_to_string(f->observed))
        return -EINVAL;
    mask = (f->node ? 1u : 0) | (f->observed >= 0 ? 2u : 0) | (f->label_key ? 4u : 0) |
           (f->project ? 8u : 0);
    if (!db->guest_lists[mask]) {
        /* Only the set filters appear in the SQL, so SQLite picks the index
         * that serves them (node, observed or the label table) instead of
         * walking every guest to test "?1 IS NULL OR node = ?1". */
        _cleanup_free_ char *sql = xasprintf(
            "SELECT " GUEST_COLS " FROM guests WHERE name > ?1%s%s%s%s ORDER BY name LIMIT ?2",
            mask & 1 ? " AND node = ?3" : "", mask & 2 ? " AND observed = ?4" : "",
            mask & 4 ? " AND id IN (SELECT guest_id FROM guest_labels WHERE key = ?5 AND "
                       "value = ?6)"
                     : "",
            mask & 8 ? " AND project = ?7" : "");
        dbi_stmt_prepare(db, &db->guest_lists[mask], sql);
    }
    _cleanup_stmt_ sqlite3_stmt *s = db->guest_lists[mask];
    dbi_bind_text(s, 1, f->after ? f->after : "");
    sqlite3_bind_int64(s, 2, f->limit ? (sqlite3_int64)f->limit : -1);
    if (mask & 1)
        dbi_bind_text(s, 3, f->node);
    if (mask & 2)
        dbi_bind_text(s, 4, db_observed_to_string(f->observed));
    if (mask & 4) {
        dbi_bind_text(s, 5, f->label_key);
        dbi_bind_text(s, 6, f->label_value);
    }
    if (mask & 8)
        dbi_bind_text(s, 7, f->project);
    r = dbi_walk(db, s, guest_row, (void *)cb, userdata);
    return r;
}

/* By filter: bit 0 node, bit 1 project; each uses its index (guests_node,
 * guests_project, or guests_observed for the counts). */
#define BRIEF_COLS "SELECT id, name, node, project, observed, json_extract(spec, '$.context') "
static const char *const sql_guest_brief[4] = {
    BRIEF_COLS "FROM guests ORDER BY name",
    BRIEF_COLS "FROM guests WHERE node = ?1 ORDER BY name",
    BRIEF_COLS "FROM guests WHERE project = ?2 ORDER BY name",
    BRIEF_COLS "FROM guests WHERE node = ?1 AND project = ?2 ORDER BY name",
};
#undef BRIEF_COLS
static const char *const sql_guest_count_states[4] = {
    "SELECT observed, COUNT(*) FROM guests GROUP BY observed",
    "SELECT observed, COUNT(*) FROM guests WHERE node = ?1 GROUP BY observed",
    "SELECT observed, COUNT(*) FROM guests WHERE project = ?2 GROUP BY observed",
    "SELECT observed, COUNT(*) FROM guests WHERE node = ?1 AND project = ?2 GROUP BY observed",
};

static sqlite3_stmt *
brief_stmt(db_t *db, const char *const sql[4], const char *node, const char *project)
{
    sqlite3_stmt *s = dbi_stmt(db, sql[(node ? 1 : 0) | (project ? 2 : 0)]);

    if (node)
        dbi_bind_text(s, 1, node);
    if (project)
        dbi_bind_text(s, 2, project);
    return s;
}

typedef int (*guest_brief_cb)(void *, const struct db_guest_brief *);

static int
guest_brief_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    int o = db_observed_from_string((const char *)sqlite3_column_text(s, 4));
    sqlite3_int64 ctx = sqlite3_column_int64(s, 5);
    struct db_guest_brief g = {
        .id = (const char *)sqlite3_column_text(s, 0),
        .name = (const char *)sqlite3_column_text(s, 1),
        .node = (const char *)sqlite3_column_text(s, 2),
        .project = (const char *)sqlite3_column_text(s, 3),
        .observed = o < 0 ? DB_OBS_UNKNOWN : (enum db_observed)o,
        .context = ctx > 0 && ctx <= UINT32_MAX ? (uint32_t)ctx : 0,
    };

    return ((guest_brief_cb)cb)(userdata, &g);
}

int
db_guest_brief_list(db_t *db, const char *node, const char *project,
                    int (*cb)(void *userdata, const struct db_guest_brief *g), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = brief_stmt(db, sql_guest_brief, node, project);

    return dbi_walk(db, s, guest_brief_row, (void *)cb, userdata);
}

int
db_guest_count_states(db_t *db, const char *node, const char *project, uint64_t counts[DB__OBS_MAX])
{
    _cleanup_stmt_ sqlite3_stmt *s = brief_stmt(db, sql_guest_count_states, node, project);
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int o = db_observed_from_string((const char *)sqlite3_column_text(s, 0));
        counts[o < 0 ? DB_OBS_UNKNOWN : o] += dbi_col_u64(s, 1);
    }
    return rc == SQLITE_DONE ? 0 : dbi_errno(rc);
}
