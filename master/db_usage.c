/* The usage tables (db_usage.h). The SQL is generated from proto/usage.h's
 * field lists, so a metric is named once; db_usage_check_schema proves the
 * tables (a frozen migration) still have every column. */
#include "master/db_usage.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "master/db_int.h"

/* ---- the metric vector's columns ---- */

#define KIND_OF(f, k)   USAGE_##k,
#define KIND_FAIL(e, f) USAGE_COUNTER,
static const unsigned char metric_kind[USAGE_N_METRICS] = {USAGE_U64_FIELDS(KIND_OF)
                                                               USAGE_FAIL_FIELDS(KIND_FAIL)};
#undef KIND_OF
#undef KIND_FAIL

#define NAME_OF(f, k)   #f,
#define NAME_FAIL(e, f) "failcnt_" #f,
static const char *const metric_name[USAGE_N_METRICS] = {USAGE_U64_FIELDS(NAME_OF)
                                                             USAGE_FAIL_FIELDS(NAME_FAIL)};
#undef NAME_OF
#undef NAME_FAIL

bool
db_usage_is_counter(unsigned i)
{
    return i < USAGE_N_METRICS && metric_kind[i] == USAGE_COUNTER;
}

const char *
db_usage_metric_name(unsigned i)
{
    return i < USAGE_N_METRICS ? metric_name[i] : NULL;
}

/* Raw columns: one per metric. */
#define RAW_COL(f, k)  ", " #f
#define RAW_FCOL(e, f) ", failcnt_" #f
#define RAW_COLS       USAGE_U64_FIELDS(RAW_COL) USAGE_FAIL_FIELDS(RAW_FCOL)
#define RAW_Q(f, k)    ", ?"
#define RAW_FQ(e, f)   ", ?"

/* Rollup columns: gauges min, max, sum; counters the increase. */
#define ROLL_COL_GAUGE(f)   ", " f "_min, " f "_max, " f "_sum"
#define ROLL_COL_COUNTER(f) ", " f
#define ROLL_COL(f, k)      ROLL_COL_##k(#f)
#define ROLL_FCOL(e, f)     ROLL_COL_COUNTER("failcnt_" #f)
#define ROLL_COLS           USAGE_U64_FIELDS(ROLL_COL) USAGE_FAIL_FIELDS(ROLL_FCOL)

/* Aggregates of raw rows, in the rollup columns' order. */
#define AGG_RAW_GAUGE(f)   ", MIN(" f "), MAX(" f "), SUM(" f ")"
#define AGG_RAW_COUNTER(f) ", SUM(" f ")"
#define AGG_RAW(f, k)      AGG_RAW_##k(#f)
#define AGG_RAW_F(e, f)    AGG_RAW_COUNTER("failcnt_" #f)
#define AGG_RAWS           USAGE_U64_FIELDS(AGG_RAW) USAGE_FAIL_FIELDS(AGG_RAW_F)

/* Aggregates of rollup rows, in the rollup columns' order. */
#define AGG_ROLL_GAUGE(f)   ", MIN(" f "_min), MAX(" f "_max), SUM(" f "_sum)"
#define AGG_ROLL_COUNTER(f) ", SUM(" f ")"
#define AGG_ROLL(f, k)      AGG_ROLL_##k(#f)
#define AGG_ROLL_F(e, f)    AGG_ROLL_COUNTER("failcnt_" #f)
#define AGG_ROLLS           USAGE_U64_FIELDS(AGG_ROLL) USAGE_FAIL_FIELDS(AGG_ROLL_F)

static const char sql_raw_insert[] =
    "INSERT OR IGNORE INTO usage_raw (guest_id, time" RAW_COLS
    ") VALUES (?, ?" USAGE_U64_FIELDS(RAW_Q) USAGE_FAIL_FIELDS(RAW_FQ) ")";

#define ROLL_1M_SELECT                                                                             \
    "INSERT OR REPLACE INTO usage_1m (guest_id, time, n" ROLL_COLS ") "                            \
    "SELECT guest_id, (time / 60000) * 60000 AS b, COUNT(*)" AGG_RAWS " FROM usage_raw "
static const char sql_roll_1m[] =
    ROLL_1M_SELECT "WHERE time >= ?1 AND time < ?2 GROUP BY guest_id, b";
static const char sql_roll_1m_guest[] =
    ROLL_1M_SELECT "WHERE guest_id = ?3 AND time >= ?1 AND time < ?2 GROUP BY guest_id, b";
#define ROLL_1H_SELECT                                                                             \
    "INSERT OR REPLACE INTO usage_1h (guest_id, time, n" ROLL_COLS ") "                            \
    "SELECT guest_id, (time / 3600000) * 3600000 AS b, SUM(n)" AGG_ROLLS " FROM usage_1m "
static const char sql_roll_1h[] =
    ROLL_1H_SELECT "WHERE time >= ?1 AND time < ?2 GROUP BY guest_id, b";
static const char sql_roll_1h_guest[] =
    ROLL_1H_SELECT "WHERE guest_id = ?3 AND time >= ?1 AND time < ?2 GROUP BY guest_id, b";

#define SERIES_WHERE "WHERE guest_id = ?1 AND time >= ?2 AND time < ?3 GROUP BY b ORDER BY b"
static const char sql_series_raw[] =
    "SELECT (time / ?4) * ?4 AS b, COUNT(*)" AGG_RAWS " FROM usage_raw " SERIES_WHERE;
static const char sql_series_1m[] =
    "SELECT (time / ?4) * ?4 AS b, SUM(n)" AGG_ROLLS " FROM usage_1m " SERIES_WHERE;
static const char sql_series_1h[] =
    "SELECT (time / ?4) * ?4 AS b, SUM(n)" AGG_ROLLS " FROM usage_1h " SERIES_WHERE;

#define ROLL_Q_GAUGE(f)   ", ?, ?, ?"
#define ROLL_Q_COUNTER(f) ", ?"
#define ROLL_Q(f, k)      ROLL_Q_##k(f)
#define ROLL_FQ(e, f)     ROLL_Q_COUNTER(f)
#define ROLL_QS           USAGE_U64_FIELDS(ROLL_Q) USAGE_FAIL_FIELDS(ROLL_FQ)
static const char sql_put_1m[] =
    "INSERT OR REPLACE INTO usage_1m (guest_id, time, n" ROLL_COLS ") VALUES (?, ?, ?" ROLL_QS ")";
static const char sql_put_1h[] =
    "INSERT OR REPLACE INTO usage_1h (guest_id, time, n" ROLL_COLS ") VALUES (?, ?, ?" ROLL_QS ")";
static const char sql_trim_1m[] = "DELETE FROM usage_1m WHERE guest_id = ?1 AND time < ?2";
static const char sql_trim_1h[] = "DELETE FROM usage_1h WHERE guest_id = ?1 AND time < ?2";
static const char sql_sum_raw[] =
    "SELECT guest_id, COUNT(*)" AGG_RAWS
    " FROM usage_raw WHERE time >= ?1 AND time < ?2 GROUP BY guest_id";
static const char sql_sum_1m[] = "SELECT guest_id, SUM(n)" AGG_ROLLS
                                 " FROM usage_1m WHERE time >= ?1 AND time < ?2 GROUP BY guest_id";
static const char sql_sum_1m_guest[] =
    "SELECT guest_id, SUM(n)" AGG_ROLLS
    " FROM usage_1m WHERE guest_id = ?3 AND time >= ?1 AND time < ?2 GROUP BY guest_id";
static const char sql_raw_first[] = "SELECT MIN(time) FROM usage_raw";

static const char sql_expire_raw[] = "DELETE FROM usage_raw WHERE time < ?1";
static const char sql_expire_1m[] = "DELETE FROM usage_1m WHERE time < ?1";
static const char sql_expire_1h[] = "DELETE FROM usage_1h WHERE time < ?1";

#define TRAFFIC_SELECT                                                                             \
    "SELECT guest_id, strftime(?1, time / 1000, 'unixepoch') AS p, SUM(net_rx_bytes), "            \
    "SUM(net_tx_bytes), SUM(net_rx_packets), SUM(net_tx_packets) FROM "
#define TRAFFIC_ALL   " WHERE time >= ?2 AND time < ?3 GROUP BY guest_id, p"
#define TRAFFIC_GUEST " WHERE guest_id = ?4 AND time >= ?2 AND time < ?3 GROUP BY guest_id, p"
static const char *const sql_traffic[DB__TIER_MAX][2] = {
    [DB_TIER_RAW] = {TRAFFIC_SELECT "usage_raw" TRAFFIC_ALL,
                     TRAFFIC_SELECT "usage_raw" TRAFFIC_GUEST},
    [DB_TIER_1M] = {TRAFFIC_SELECT "usage_1m" TRAFFIC_ALL, TRAFFIC_SELECT "usage_1m" TRAFFIC_GUEST},
    [DB_TIER_1H] = {TRAFFIC_SELECT "usage_1h" TRAFFIC_ALL, TRAFFIC_SELECT "usage_1h" TRAFFIC_GUEST},
};

/* The project: the guest's, else what the row had (a late sample of a
 * guest deleted meanwhile). */
static const char sql_last_put[] =
    "INSERT OR REPLACE INTO usage_last (guest_id, name, node, time, sample, totals, deleted, "
    "oom_seen, project) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
    "COALESCE((SELECT project FROM guests WHERE id = ?1), "
    "(SELECT project FROM usage_last WHERE guest_id = ?1)))";
static const char sql_last_list[] =
    "SELECT guest_id, name, node, time, sample, totals, deleted, oom_seen FROM usage_last "
    "ORDER BY guest_id";
static const char sql_last_get[] =
    "SELECT guest_id, name, node, time, sample, totals, deleted, oom_seen FROM usage_last "
    "WHERE guest_id = ?1";
static const char sql_last_deleted[] = "UPDATE usage_last SET deleted = 1 WHERE guest_id = ?1";
static const char sql_last_name[] = "SELECT name, project FROM usage_last WHERE guest_id = ?1";
static const char sql_last_expire[] = "DELETE FROM usage_last WHERE deleted = 1 AND time < ?1";

/* ---- rolls ---- */

void
db_roll_merge(struct db_roll *a, const struct db_roll *b)
{
    if (!b->n)
        return;
    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        if (!a->n || b->min[i] < a->min[i])
            a->min[i] = b->min[i];
        if (!a->n || b->max[i] > a->max[i])
            a->max[i] = b->max[i];
        a->sum[i] += b->sum[i];
    }
    a->n += b->n;
}

/* A roll from the columns after the bucket and the count, in rollup order. */
static void
roll_from_row(sqlite3_stmt *s, int col, struct db_roll *r)
{
    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        if (metric_kind[i] == USAGE_COUNTER) {
            r->sum[i] = dbi_col_u64(s, col++);
            continue;
        }
        r->min[i] = dbi_col_u64(s, col++);
        r->max[i] = dbi_col_u64(s, col++);
        r->sum[i] = dbi_col_u64(s, col++);
    }
}

/* ---- usage_last ---- */

/* The vector as unsigned LEB128 varints (most values are small: a row of
 * usage_last is rewritten with every sample, so its size is write cost).
 * Returns the bytes used. */
static size_t
vec_to_blob(const uint64_t v[USAGE_N_METRICS], unsigned char out[USAGE_N_METRICS * 10])
{
    size_t n = 0;

    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        uint64_t x = v[i];
        do {
            out[n++] = (unsigned char)((x & 0x7f) | (x > 0x7f ? 0x80 : 0));
            x >>= 7;
        } while (x);
    }
    return n;
}

/* A blob shorter than the vector (an older build's) leaves the rest 0; a
 * malformed one stops where it breaks. */
static void
vec_from_blob(const void *blob, int len, uint64_t v[USAGE_N_METRICS])
{
    const unsigned char *p = blob;
    int at = 0;

    memset(v, 0, USAGE_N_METRICS * sizeof(*v));
    for (unsigned i = 0; p && i < USAGE_N_METRICS && at < len; i++) {
        for (unsigned shift = 0; at < len && shift < 64; shift += 7) {
            unsigned char b = p[at++];
            v[i] |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
        }
    }
}

int
db_usage_last_put(db_t *db, const struct db_usage_last *l)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_put);
    unsigned char sample[USAGE_N_METRICS * 10], totals[USAGE_N_METRICS * 10];

    if (!l->guest_id || !l->name)
        return -EINVAL;
    size_t ns = vec_to_blob(l->sample, sample), nt = vec_to_blob(l->totals, totals);
    dbi_bind_text(s, 1, l->guest_id);
    dbi_bind_text(s, 2, l->name);
    dbi_bind_text(s, 3, l->node);
    dbi_bind_u64(s, 4, l->time_ms);
    sqlite3_bind_blob(s, 5, sample, (int)ns, SQLITE_STATIC);
    sqlite3_bind_blob(s, 6, totals, (int)nt, SQLITE_STATIC);
    sqlite3_bind_int(s, 7, l->deleted);
    dbi_bind_u64(s, 8, l->oom_seen);
    return dbi_step_done(db, s, -EEXIST, false);
}

typedef int (*last_cb)(void *, const struct db_usage_last *);

static int
last_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_usage_last l = {
        .guest_id = dbi_col_borrow(s, 0),
        .name = dbi_col_borrow(s, 1),
        .node = dbi_col_borrow(s, 2),
        .time_ms = dbi_col_u64(s, 3),
        .deleted = sqlite3_column_int(s, 6) != 0,
        .oom_seen = dbi_col_u64(s, 7),
    };
    vec_from_blob(sqlite3_column_blob(s, 4), sqlite3_column_bytes(s, 4), l.sample);
    vec_from_blob(sqlite3_column_blob(s, 5), sqlite3_column_bytes(s, 5), l.totals);
    return ((last_cb)cb)(userdata, &l);
}

int
db_usage_last_list(db_t *db, int (*cb)(void *userdata, const struct db_usage_last *l),
                   void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_list);
    return dbi_walk(db, s, last_row, (void *)cb, userdata);
}

int
db_usage_last_get(db_t *db, const char *guest_id,
                  int (*cb)(void *userdata, const struct db_usage_last *l), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_get);

    dbi_bind_text(s, 1, guest_id);
    int r = dbi_walk(db, s, last_row, (void *)cb, userdata);
    return r == 0 ? -ENOENT : r < 0 ? r : 0;
}

int
db_usage_last_mark_deleted(db_t *db, const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_deleted);

    dbi_bind_text(s, 1, guest_id);
    return dbi_step_done(db, s, -EEXIST, false);
}

char *
db_usage_name(db_t *db, const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_name);

    dbi_bind_text(s, 1, guest_id);
    return sqlite3_step(s) == SQLITE_ROW ? dbi_col_dup(s, 0) : NULL;
}

int
db_usage_who(db_t *db, const char *guest_id, char **name, char **project)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_name);

    *name = *project = NULL;
    dbi_bind_text(s, 1, guest_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return dbi_errno(rc);
    *name = dbi_col_dup(s, 0);
    *project = dbi_col_dup(s, 1);
    return 0;
}

int
db_usage_last_expire(db_t *db, uint64_t before)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_last_expire);

    dbi_bind_u64(s, 1, before);
    int r = dbi_step_done(db, s, -EEXIST, false);
    return r < 0 ? r : sqlite3_changes(db->conn);
}

/* ---- samples and rollups ---- */

int
db_usage_raw_insert(db_t *db, const char *guest_id, uint64_t time_ms,
                    const uint64_t v[USAGE_N_METRICS])
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_raw_insert);

    dbi_bind_text(s, 1, guest_id);
    dbi_bind_u64(s, 2, time_ms);
    for (unsigned i = 0; i < USAGE_N_METRICS; i++)
        dbi_bind_u64(s, (int)i + 3, v[i]);
    return dbi_step_done(db, s, -EEXIST, false);
}

static int
roll(db_t *db, const char *sql_all, const char *sql_guest, uint64_t from, uint64_t to,
     const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, guest_id ? sql_guest : sql_all);

    dbi_bind_u64(s, 1, from);
    dbi_bind_u64(s, 2, to);
    if (guest_id)
        dbi_bind_text(s, 3, guest_id);
    return dbi_step_done(db, s, -EEXIST, false);
}

int
db_usage_roll_1m(db_t *db, uint64_t from, uint64_t to, const char *guest_id)
{
    return roll(db, sql_roll_1m, sql_roll_1m_guest, from, to, guest_id);
}

int
db_usage_roll_1h(db_t *db, uint64_t from, uint64_t to, const char *guest_id)
{
    return roll(db, sql_roll_1h, sql_roll_1h_guest, from, to, guest_id);
}

int
db_usage_expire(db_t *db, enum db_usage_tier t, uint64_t before)
{
    static const char *const sql[DB__TIER_MAX] = {sql_expire_raw, sql_expire_1m, sql_expire_1h};
    if ((unsigned)t >= DB__TIER_MAX)
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql[t]);

    dbi_bind_u64(s, 1, before);
    int r = dbi_step_done(db, s, -EEXIST, false);
    return r < 0 ? r : sqlite3_changes(db->conn);
}

int
db_usage_roll_put(db_t *db, enum db_usage_tier t, const char *guest_id, const struct db_roll *r)
{
    if (t != DB_TIER_1M && t != DB_TIER_1H)
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, t == DB_TIER_1M ? sql_put_1m : sql_put_1h);
    int col = 1;

    dbi_bind_text(s, col++, guest_id);
    dbi_bind_u64(s, col++, r->time_ms);
    dbi_bind_u64(s, col++, r->n);
    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        if (metric_kind[i] == USAGE_GAUGE) {
            dbi_bind_u64(s, col++, r->min[i]);
            dbi_bind_u64(s, col++, r->max[i]);
        }
        dbi_bind_u64(s, col++, r->sum[i]);
    }
    return dbi_step_done(db, s, -EEXIST, false);
}

int
db_usage_trim(db_t *db, enum db_usage_tier t, const char *guest_id, uint64_t before)
{
    if (t != DB_TIER_1M && t != DB_TIER_1H)
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, t == DB_TIER_1M ? sql_trim_1m : sql_trim_1h);

    dbi_bind_text(s, 1, guest_id);
    dbi_bind_u64(s, 2, before);
    return dbi_step_done(db, s, -EEXIST, false);
}

typedef int (*sum_cb)(void *, const char *, const struct db_roll *);

static int
sum_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_roll r = {.n = dbi_col_u64(s, 1)};

    roll_from_row(s, 2, &r);
    return ((sum_cb)cb)(userdata, dbi_col_borrow(s, 0), &r);
}

int
db_usage_sums(db_t *db, enum db_usage_tier t, uint64_t from, uint64_t to, const char *guest_id,
              int (*cb)(void *userdata, const char *guest_id, const struct db_roll *r),
              void *userdata)
{
    const char *sql = t == DB_TIER_RAW  ? (guest_id ? NULL : sql_sum_raw)
                      : t == DB_TIER_1M ? (guest_id ? sql_sum_1m_guest : sql_sum_1m)
                                        : NULL;
    if (!sql)
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql);
    dbi_bind_u64(s, 1, from);
    dbi_bind_u64(s, 2, to);
    if (guest_id)
        dbi_bind_text(s, 3, guest_id);
    return dbi_walk(db, s, sum_row, (void *)cb, userdata);
}

int
db_usage_raw_first(db_t *db, uint64_t *time_ms)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_raw_first);
    int rc = sqlite3_step(s);

    *time_ms = rc == SQLITE_ROW ? dbi_col_u64(s, 0) : 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dbi_errno(rc);
}

/* ---- reading ---- */

typedef int (*roll_cb)(void *, const struct db_roll *);

static int
series_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_roll r = {.time_ms = dbi_col_u64(s, 0), .n = dbi_col_u64(s, 1)};

    roll_from_row(s, 2, &r);
    return ((roll_cb)cb)(userdata, &r);
}

int
db_usage_series(db_t *db, enum db_usage_tier t, const char *guest_id, uint64_t from, uint64_t to,
                uint64_t step, int (*cb)(void *userdata, const struct db_roll *r), void *userdata)
{
    static const char *const sql[DB__TIER_MAX] = {sql_series_raw, sql_series_1m, sql_series_1h};

    if ((unsigned)t >= DB__TIER_MAX || step == 0)
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql[t]);
    dbi_bind_text(s, 1, guest_id);
    dbi_bind_u64(s, 2, from);
    dbi_bind_u64(s, 3, to);
    dbi_bind_u64(s, 4, step);
    return dbi_walk(db, s, series_row, (void *)cb, userdata);
}

typedef int (*traffic_cb)(void *, const struct db_traffic_row *);

static int
traffic_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_traffic_row r = {
        .guest_id = dbi_col_borrow(s, 0),
        .period = dbi_col_borrow(s, 1),
        .rx_bytes = dbi_col_u64(s, 2),
        .tx_bytes = dbi_col_u64(s, 3),
        .rx_packets = dbi_col_u64(s, 4),
        .tx_packets = dbi_col_u64(s, 5),
    };
    return ((traffic_cb)cb)(userdata, &r);
}

int
db_usage_traffic(db_t *db, enum db_usage_tier t, const char *fmt, uint64_t from, uint64_t to,
                 const char *guest_id, int (*cb)(void *userdata, const struct db_traffic_row *r),
                 void *userdata)
{
    if ((unsigned)t >= DB__TIER_MAX || !fmt)
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_traffic[t][guest_id != NULL]);
    dbi_bind_text(s, 1, fmt);
    dbi_bind_u64(s, 2, from);
    dbi_bind_u64(s, 3, to);
    if (guest_id)
        dbi_bind_text(s, 4, guest_id);
    return dbi_walk(db, s, traffic_row, (void *)cb, userdata);
}

/* ---- schema check ---- */

static int
has_column(db_t *db, const char *table, const char *column)
{
    char sql[160];
    sqlite3_stmt *s = NULL;
    int found = 0;

    snprintf(sql, sizeof(sql), "SELECT 1 FROM pragma_table_info('%s') WHERE name = ?1", table);
    if (sqlite3_prepare_v2(db->conn, sql, -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(s, 1, column, -1, SQLITE_STATIC);
    found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

int
db_usage_check_schema(db_t *db, char *err, size_t errlen)
{
    static const char *const suffix[] = {"_min", "_max", "_sum"};

    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        char col[64];
        if (has_column(db, "usage_raw", metric_name[i]) != 1) {
            snprintf(err, errlen, "usage_raw has no column %s", metric_name[i]);
            return -EPROTO;
        }
        for (unsigned k = 0; k < (metric_kind[i] == USAGE_COUNTER ? 1u : 3u); k++) {
            snprintf(col, sizeof(col), "%s%s", metric_name[i],
                     metric_kind[i] == USAGE_COUNTER ? "" : suffix[k]);
            if (has_column(db, "usage_1m", col) != 1 || has_column(db, "usage_1h", col) != 1) {
                snprintf(err, errlen, "the usage rollups have no column %s", col);
                return -EPROTO;
            }
        }
    }
    return 0;
}
