/* The pools and ip_allocs tables. */
#include "master/db_int.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

static const char sql_ip_list_pool[] =
    "SELECT address, pool, guest_id, created FROM ip_allocs WHERE pool = ?1";
static const char sql_ip_list_guest[] =
    "SELECT address, pool, guest_id, created FROM ip_allocs WHERE guest_id = ?1";
static const char sql_pool_insert[] =
    "INSERT INTO pools (name, cidr, gateway, family, selector, created) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char sql_pool_delete[] = "DELETE FROM pools WHERE name = ?1";
static const char sql_pool_get[] =
    "SELECT name, cidr, gateway, family, selector, created FROM pools WHERE name = ?1";
static const char sql_pool_list[] =
    "SELECT name, cidr, gateway, family, selector, created FROM pools ORDER BY name";
static const char sql_ip_insert[] =
    "INSERT INTO ip_allocs (address, pool, guest_id, created) VALUES (?1, ?2, ?3, ?4)";
static const char sql_ip_delete[] = "DELETE FROM ip_allocs WHERE address = ?1";
static const char sql_ip_count_guest[] = "SELECT COUNT(*) FROM ip_allocs WHERE guest_id = ?1";

/* ---- pools and addresses ---- */

int
db_pool_insert(db_t *db, const struct db_pool *p)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_pool_insert);

    if (!p->name || !p->cidr)
        return -EINVAL;
    dbi_bind_text(s, 1, p->name);
    dbi_bind_text(s, 2, p->cidr);
    dbi_bind_text(s, 3, p->gateway);
    sqlite3_bind_int(s, 4, p->family);
    dbi_bind_text(s, 5, p->selector ? p->selector : "{}");
    dbi_bind_u64(s, 6, dbi_now_ms());
    return dbi_step_done(db, s, -EEXIST, false);
}

int
db_pool_delete(db_t *db, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_pool_delete);

    dbi_bind_text(s, 1, name);
    return dbi_step_done(db, s, -EBUSY, true);
}

static void
pool_from_row(sqlite3_stmt *s, struct db_pool *p, char *(*str)(sqlite3_stmt *, int))
{
    *p = (struct db_pool){
        .name = str(s, 0),
        .cidr = str(s, 1),
        .gateway = str(s, 2),
        .family = sqlite3_column_int(s, 3),
        .selector = str(s, 4),
        .created_ms = dbi_col_u64(s, 5),
    };
}

int
db_pool_get(db_t *db, const char *name, struct db_pool *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_pool_get);
    int r = dbi_step_row(db, s, name);

    if (r < 0)
        return r;
    pool_from_row(s, out, dbi_col_dup);
    return 0;
}

void
db_pool_clear(struct db_pool *p)
{
    free(p->name);
    free(p->cidr);
    free(p->gateway);
    free(p->selector);
    *p = (struct db_pool){0};
}

typedef int (*pool_cb)(void *, const struct db_pool *);

static int
pool_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_pool p;

    pool_from_row(s, &p, dbi_col_borrow);
    return ((pool_cb)cb)(userdata, &p);
}

int
db_pool_list(db_t *db, int (*cb)(void *userdata, const struct db_pool *p), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_pool_list);

    return dbi_walk(db, s, pool_row, (void *)cb, userdata);
}

int
db_ip_insert(db_t *db, const char *address, const char *pool, const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_ip_insert);
    int rc;

    if (!address || !pool || !guest_id)
        return -EINVAL;
    dbi_bind_text(s, 1, address);
    dbi_bind_text(s, 2, pool);
    dbi_bind_text(s, 3, guest_id);
    dbi_bind_u64(s, 4, dbi_now_ms());
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    /* The trigger: an orphan holds the address (db_hold.c). */
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_TRIGGER)
        return -EADDRINUSE;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT; /* no such pool */
    return dbi_errno(rc);
}

int
db_ip_delete(db_t *db, const char *address)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_ip_delete);

    dbi_bind_text(s, 1, address);
    return dbi_step_done(db, s, -EINVAL, true);
}

typedef int (*ip_cb)(void *, const struct db_ip *);

static int
ip_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_ip ip = {
        .address = dbi_col_borrow(s, 0),
        .pool = dbi_col_borrow(s, 1),
        .guest_id = dbi_col_borrow(s, 2),
        .created_ms = dbi_col_u64(s, 3),
    };
    return ((ip_cb)cb)(userdata, &ip);
}

int
db_ip_list(db_t *db, const char *pool, const char *guest_id,
           int (*cb)(void *userdata, const struct db_ip *ip), void *userdata)
{
    if ((pool == NULL) == (guest_id == NULL))
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, pool ? sql_ip_list_pool : sql_ip_list_guest);
    dbi_bind_text(s, 1, pool ? pool : guest_id);
    return dbi_walk(db, s, ip_row, (void *)cb, userdata);
}

int
db_ip_count_guest(db_t *db, const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = dbi_stmt(db, sql_ip_count_guest);
    int rc;

    dbi_bind_text(s, 1, guest_id);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW)
        return dbi_errno(rc) ?: -EIO;
    return sqlite3_column_int(s, 0);
}
