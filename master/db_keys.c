/* Idempotency keys and traffic marks. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

static const char sql_idem_put[] =
    "INSERT INTO idempotency (key, method, path, request_hash, status, body, "
    "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_idem_get[] = "SELECT key, method, path, request_hash, status, body, created "
                                   "FROM idempotency WHERE key = ?1";
static const char sql_idem_expire[] = "DELETE FROM idempotency WHERE created < ?1";
static const char sql_mark_get[] = "SELECT rx_bytes, tx_bytes, rx_packets, tx_packets, since "
                                   "FROM traffic_marks WHERE guest_id = ?1";
static const char sql_mark_put[] = "INSERT OR REPLACE INTO traffic_marks "
                                   "(guest_id, rx_bytes, tx_bytes, rx_packets, tx_packets, since) "
                                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/* ---- idempotency keys ---- */

int
db_idem_put(db_t *db, const struct db_idem *r)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_idem_put);

    if (!r->key || !r->method || !r->path || !r->request_hash || !r->body)
        return -EINVAL;
    dbi_bind_text(s, 1, r->key);
    dbi_bind_text(s, 2, r->method);
    dbi_bind_text(s, 3, r->path);
    dbi_bind_text(s, 4, r->request_hash);
    sqlite3_bind_int(s, 5, r->status);
    dbi_bind_text(s, 6, r->body);
    dbi_bind_u64(s, 7, r->created_ms ? r->created_ms : dbi_now_ms());
    return dbi_step_done(db, s, -EEXIST, false);
}

int
db_idem_get(db_t *db, const char *key, struct db_idem *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_idem_get);
    int r = dbi_step_row(db, s, key);

    if (r < 0)
        return r;
    *out = (struct db_idem){
        .key = dbi_col_dup(s, 0),
        .method = dbi_col_dup(s, 1),
        .path = dbi_col_dup(s, 2),
        .request_hash = dbi_col_dup(s, 3),
        .status = sqlite3_column_int(s, 4),
        .body = dbi_col_dup(s, 5),
        .created_ms = dbi_col_u64(s, 6),
    };
    return 0;
}

void
db_idem_clear(struct db_idem *r)
{
    free(r->key);
    free(r->method);
    free(r->path);
    free(r->request_hash);
    free(r->body);
    *r = (struct db_idem){0};
}

int
db_idem_expire(db_t *db, uint64_t before_ms)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_idem_expire);
    int r;

    dbi_bind_u64(s, 1, before_ms);
    r = dbi_step_done(db, s, -EINVAL, false);
    return r < 0 ? r : sqlite3_changes(db->conn);
}

/* ---- traffic marks ---- */

int
db_traffic_mark_get(db_t *db, const char *guest_id, struct db_traffic_mark *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_mark_get);
    int r = dbi_step_row(db, s, guest_id);

    if (r < 0)
        return r;
    *out = (struct db_traffic_mark){
        .rx_bytes = dbi_col_u64(s, 0),
        .tx_bytes = dbi_col_u64(s, 1),
        .rx_packets = dbi_col_u64(s, 2),
        .tx_packets = dbi_col_u64(s, 3),
        .since_ms = dbi_col_u64(s, 4),
    };
    return 0;
}

int
db_traffic_mark_put(db_t *db, const char *guest_id, const struct db_traffic_mark *m)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_mark_put);

    dbi_bind_text(s, 1, guest_id);
    dbi_bind_u64(s, 2, m->rx_bytes);
    dbi_bind_u64(s, 3, m->tx_bytes);
    dbi_bind_u64(s, 4, m->rx_packets);
    dbi_bind_u64(s, 5, m->tx_packets);
    dbi_bind_u64(s, 6, m->since_ms);
    return dbi_step_done(db, s, -ENOENT, false);
}
