#include "master/db.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"

/* Migrations, oldest first. Entry i takes the schema from version i to i + 1;
 * each runs in its own transaction together with the user_version bump, so a
 * crash leaves the file at a whole version. Never edit a released entry:
 * append a new one. */
static const char *const db_migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE nodes ("
    "  name TEXT PRIMARY KEY,"
    "  labels TEXT NOT NULL DEFAULT '{}',"
    "  kernel TEXT NOT NULL DEFAULT '{}',"
    "  cpus INTEGER NOT NULL CHECK (cpus >= 0),"
    "  memory INTEGER NOT NULL CHECK (memory >= 0),"
    "  disk INTEGER NOT NULL CHECK (disk >= 0),"
    "  max_guests INTEGER NOT NULL DEFAULT 0,"
    "  max_addrs INTEGER NOT NULL DEFAULT 0,"
    "  cordoned INTEGER NOT NULL DEFAULT 0 CHECK (cordoned IN (0, 1)),"
    "  state TEXT NOT NULL CHECK (state IN ('ready', 'suspect', 'down')),"
    "  last_seen INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE guests ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  node TEXT REFERENCES nodes(name) ON DELETE RESTRICT,"
    "  spec TEXT NOT NULL,"
    "  grp TEXT,"
    "  message TEXT,"
    "  generation INTEGER NOT NULL CHECK (generation >= 1),"
    "  applied_generation INTEGER NOT NULL DEFAULT 0,"
    "  desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),"
    "  observed TEXT NOT NULL CHECK (observed IN ('pending', 'running', 'stopped',"
    "    'unknown', 'lost', 'orphan', 'error')),"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL"
    ");"
    "CREATE INDEX guests_node ON guests(node, name);"
    "CREATE INDEX guests_observed ON guests(observed, name);"
    "CREATE TABLE guest_labels ("
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE"
    "    DEFERRABLE INITIALLY DEFERRED,"
    "  PRIMARY KEY (key, value, guest_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX guest_labels_guest ON guest_labels(guest_id);"
    "CREATE TABLE pools ("
    "  name TEXT PRIMARY KEY,"
    "  cidr TEXT NOT NULL,"
    "  gateway TEXT,"
    "  family INTEGER NOT NULL,"
    "  selector TEXT NOT NULL DEFAULT '{}',"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    /* The primary key on the address is the guarantee that one address is
     * never on two guests, whatever the in-memory allocator believes. The
     * guest reference is deferred so a create can allocate addresses before
     * it inserts the guest row, in one transaction. */
    "CREATE TABLE ip_allocs ("
    "  address TEXT PRIMARY KEY,"
    "  pool TEXT NOT NULL REFERENCES pools(name) ON DELETE RESTRICT,"
    "  guest_id TEXT NOT NULL REFERENCES guests(id) ON DELETE CASCADE"
    "    DEFERRABLE INITIALLY DEFERRED,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX ip_allocs_pool ON ip_allocs(pool);"
    "CREATE INDEX ip_allocs_guest ON ip_allocs(guest_id);"
    "CREATE TABLE idempotency ("
    "  key TEXT PRIMARY KEY,"
    "  method TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX idempotency_created ON idempotency(created);",
    /* 2: FreeVPS trafstat semantics. The point a guest's traffic counter was
     * last reset at, as the node's cumulative counters then: the resettable
     * counter is the latest sample minus this mark. */
    "CREATE TABLE traffic_marks ("
    "  guest_id TEXT PRIMARY KEY REFERENCES guests(id) ON DELETE CASCADE,"
    "  rx_bytes INTEGER NOT NULL,"
    "  tx_bytes INTEGER NOT NULL,"
    "  rx_packets INTEGER NOT NULL,"
    "  tx_packets INTEGER NOT NULL,"
    "  since INTEGER NOT NULL"
    ") WITHOUT ROWID;",
};

_Static_assert(ARRAY_SIZE(db_migrations) == DB_SCHEMA_VERSION,
               "DB_SCHEMA_VERSION must be the number of migrations");

enum db_stmt_id {
    ST_NODE_UPSERT,
    ST_NODE_SET_STATE,
    ST_NODE_SET_CORDONED,
    ST_NODE_DELETE,
    ST_NODE_GET,
    ST_NODE_LIST,
    ST_GUEST_INSERT,
    ST_GUEST_UPDATE,
    ST_GUEST_SET_OBSERVED,
    ST_GUEST_SET_APPLIED,
    ST_GUEST_DELETE,
    ST_GUEST_GET_ID,
    ST_GUEST_GET_NAME,
    ST_LABEL_INSERT,
    ST_LABEL_DELETE_GUEST,
    ST_POOL_INSERT,
    ST_POOL_DELETE,
    ST_POOL_GET,
    ST_POOL_LIST,
    ST_IP_INSERT,
    ST_IP_DELETE,
    ST_IP_LIST_POOL,
    ST_IP_LIST_GUEST,
    ST_IP_COUNT_GUEST,
    ST_IDEM_PUT,
    ST_IDEM_GET,
    ST_IDEM_EXPIRE,
    ST_MARK_GET,
    ST_MARK_PUT,
    ST__MAX,
};

#define NODE_COLS                                                                                  \
    "name, labels, kernel, cpus, memory, disk, max_guests, max_addrs, cordoned, state, "           \
    "last_seen, created, updated"
#define GUEST_COLS                                                                                 \
    "id, name, node, spec, grp, message, generation, applied_generation, desired, observed, "      \
    "created, updated"

static const char *const db_stmt_sql[ST__MAX] = {
    [ST_NODE_UPSERT] =
        "INSERT INTO nodes (" NODE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, "
        "?11, ?11) ON CONFLICT (name) DO UPDATE SET labels = ?2, kernel = ?3, cpus = ?4, "
        "memory = ?5, disk = ?6, max_guests = ?7, max_addrs = ?8, state = ?9, last_seen = ?10, "
        "updated = ?11",
    [ST_NODE_SET_STATE] =
        "UPDATE nodes SET state = ?2, last_seen = ?3, updated = ?4 WHERE name = ?1",
    [ST_NODE_SET_CORDONED] = "UPDATE nodes SET cordoned = ?2, updated = ?3 WHERE name = ?1",
    [ST_NODE_DELETE] = "DELETE FROM nodes WHERE name = ?1",
    [ST_NODE_GET] = "SELECT " NODE_COLS " FROM nodes WHERE name = ?1",
    [ST_NODE_LIST] = "SELECT " NODE_COLS " FROM nodes WHERE name > ?1 ORDER BY name LIMIT ?2",
    [ST_GUEST_INSERT] = "INSERT INTO guests (" GUEST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                        "?8, ?9, ?10, ?11, ?11)",
    [ST_GUEST_UPDATE] = "UPDATE guests SET node = ?2, spec = ?3, grp = ?4, desired = ?5, "
                        "generation = ?6, updated = ?7 WHERE id = ?1 AND generation = ?8",
    [ST_GUEST_SET_OBSERVED] =
        "UPDATE guests SET observed = ?2, message = ?3, updated = ?4 WHERE id = ?1",
    [ST_GUEST_SET_APPLIED] = "UPDATE guests SET applied_generation = MAX(applied_generation, ?2), "
                             "updated = ?3 WHERE id = ?1",
    [ST_GUEST_DELETE] = "DELETE FROM guests WHERE id = ?1",
    [ST_GUEST_GET_ID] = "SELECT " GUEST_COLS " FROM guests WHERE id = ?1",
    [ST_GUEST_GET_NAME] = "SELECT " GUEST_COLS " FROM guests WHERE name = ?1",
    [ST_LABEL_INSERT] = "INSERT INTO guest_labels (key, value, guest_id) VALUES (?1, ?2, ?3)",
    [ST_LABEL_DELETE_GUEST] = "DELETE FROM guest_labels WHERE guest_id = ?1",
    [ST_POOL_INSERT] = "INSERT INTO pools (name, cidr, gateway, family, selector, created) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_POOL_DELETE] = "DELETE FROM pools WHERE name = ?1",
    [ST_POOL_GET] =
        "SELECT name, cidr, gateway, family, selector, created FROM pools WHERE name = ?1",
    [ST_POOL_LIST] =
        "SELECT name, cidr, gateway, family, selector, created FROM pools ORDER BY name",
    [ST_IP_INSERT] =
        "INSERT INTO ip_allocs (address, pool, guest_id, created) VALUES (?1, ?2, ?3, ?4)",
    [ST_IP_DELETE] = "DELETE FROM ip_allocs WHERE address = ?1",
    [ST_IP_LIST_POOL] = "SELECT address, pool, guest_id, created FROM ip_allocs WHERE pool = ?1",
    [ST_IP_LIST_GUEST] =
        "SELECT address, pool, guest_id, created FROM ip_allocs WHERE guest_id = ?1",
    [ST_IP_COUNT_GUEST] = "SELECT COUNT(*) FROM ip_allocs WHERE guest_id = ?1",
    [ST_IDEM_PUT] = "INSERT INTO idempotency (key, method, path, request_hash, status, body, "
                    "created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_IDEM_GET] = "SELECT key, method, path, request_hash, status, body, created "
                    "FROM idempotency WHERE key = ?1",
    [ST_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE created < ?1",
    [ST_MARK_GET] = "SELECT rx_bytes, tx_bytes, rx_packets, tx_packets, since "
                    "FROM traffic_marks WHERE guest_id = ?1",
    [ST_MARK_PUT] = "INSERT OR REPLACE INTO traffic_marks "
                    "(guest_id, rx_bytes, tx_bytes, rx_packets, tx_packets, since) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

/* Guest list filters: bit 0 node, bit 1 observed, bit 2 label. */
#define DB_GUEST_FILTERS 8

struct db_hook {
    void (*fn)(void *userdata, enum db_tx_event ev, unsigned depth); /* NULL = free slot */
    void *userdata;                                                  /* handed to fn */
};

struct db {
    sqlite3 *conn;                               /* the one connection */
    sqlite3_stmt *stmts[ST__MAX];                /* prepared on first use */
    sqlite3_stmt *guest_lists[DB_GUEST_FILTERS]; /* one per filter combination */
    unsigned depth;                              /* open transactions */
    char journal_mode[16];                       /* what PRAGMA journal_mode said */
    struct db_hook hooks[8];                     /* transaction listeners */
};

static const char *const node_state_names[] = {"ready", "suspect", "down"};
static const char *const desired_names[] = {"running", "stopped"};
static const char *const observed_names[] = {"pending", "running", "stopped", "unknown",
                                             "lost",    "orphan",  "error"};

static int
name_lookup(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int)i;
    return -EINVAL;
}

const char *
db_node_state_to_string(enum db_node_state s)
{
    return (unsigned)s < ARRAY_SIZE(node_state_names) ? node_state_names[s] : NULL;
}

int
db_node_state_from_string(const char *s)
{
    return name_lookup(node_state_names, ARRAY_SIZE(node_state_names), s);
}

const char *
db_desired_to_string(enum db_desired d)
{
    return (unsigned)d < ARRAY_SIZE(desired_names) ? desired_names[d] : NULL;
}

int
db_desired_from_string(const char *s)
{
    return name_lookup(desired_names, ARRAY_SIZE(desired_names), s);
}

const char *
db_observed_to_string(enum db_observed o)
{
    return (unsigned)o < ARRAY_SIZE(observed_names) ? observed_names[o] : NULL;
}

int
db_observed_from_string(const char *s)
{
    return name_lookup(observed_names, ARRAY_SIZE(observed_names), s);
}

/* Maps an SQLite result to -errno. Constraint violations are mapped by the
 * callers, which know which constraint a statement can hit. */
static int
db_errno(int rc)
{
    /* A deferred foreign key fails at COMMIT: a row refers to one that does
     * not exist (an address allocated to a guest that was never inserted). */
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT;
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -EACCES;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

static uint64_t
now_ms(void)
{
    return time_real_ms();
}

static int
exec_sql(db_t *db, const char *sql)
{
    int rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        log_debug("db: \"%.60s\" failed: %s", sql, sqlite3_errmsg(db->conn));
    return db_errno(rc);
}

static sqlite3_stmt *
stmt_prepare(db_t *db, sqlite3_stmt **slot, const char *sql)
{
    if (!*slot) {
        int rc = sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK) {
            /* Every statement is a constant checked by the tests: a failure
             * here is a bug in this file, not input. */
            log_error("db: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(db->conn));
            abort();
        }
    }
    return *slot;
}

static sqlite3_stmt *
stmt(db_t *db, enum db_stmt_id id)
{
    return stmt_prepare(db, &db->stmts[id], db_stmt_sql[id]);
}

static void
stmt_resetp(sqlite3_stmt **s)
{
    if (*s) {
        sqlite3_reset(*s);
        sqlite3_clear_bindings(*s);
    }
}

#define _cleanup_stmt_ _cleanup_(stmt_resetp)

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void
bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
    /* SQLite integers are signed 64-bit; every value stored here (bytes,
     * millicores, milliseconds, generations) is far below 2^63. */
    sqlite3_bind_int64(s, i, (sqlite3_int64)(v > INT64_MAX ? INT64_MAX : v));
}

static char *
col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static char *
col_borrow(sqlite3_stmt *s, int i)
{
    return (char *)sqlite3_column_text(s, i);
}

static uint64_t
col_u64(sqlite3_stmt *s, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(s, i);
    return v < 0 ? 0 : (uint64_t)v;
}

/* Steps a statement that returns no rows. Constraint failures become
 * on_constraint; a statement that changed nothing gives -ENOENT when
 * need_change is set. */
static int
step_done(db_t *db, sqlite3_stmt *s, int on_constraint, bool need_change)
{
    int rc = sqlite3_step(s);

    if (rc == SQLITE_DONE)
        return need_change && sqlite3_changes(db->conn) == 0 ? -ENOENT : 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        /* Unique/primary-key conflicts are what callers map; a failed
         * foreign key on a delete means rows still refer to the target. */
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
            return -EBUSY;
        return on_constraint;
    }
    log_debug("db: step failed: %s", sqlite3_errmsg(db->conn));
    return db_errno(rc);
}

/* ---- transactions ---- */

static void
hooks_fire(db_t *db, enum db_tx_event ev, unsigned depth)
{
    for (size_t i = 0; i < ARRAY_SIZE(db->hooks); i++)
        if (db->hooks[i].fn)
            db->hooks[i].fn(db->hooks[i].userdata, ev, depth);
}

int
db_tx_hook_add(db_t *db, void (*fn)(void *, enum db_tx_event, unsigned), void *userdata)
{
    for (size_t i = 0; i < ARRAY_SIZE(db->hooks); i++)
        if (!db->hooks[i].fn) {
            db->hooks[i] = (struct db_hook){fn, userdata};
            return 0;
        }
    return -ENOSPC;
}

void
db_tx_hook_remove(db_t *db, void *userdata)
{
    for (size_t i = 0; i < ARRAY_SIZE(db->hooks); i++)
        if (db->hooks[i].userdata == userdata)
            db->hooks[i] = (struct db_hook){0};
}

unsigned
db_tx_depth(db_t *db)
{
    return db->depth;
}

int
db_begin(db_t *db)
{
    char sql[48];
    int r;

    if (db->depth == 0)
        r = exec_sql(db, "BEGIN IMMEDIATE");
    else {
        snprintf(sql, sizeof(sql), "SAVEPOINT vf%u", db->depth + 1);
        r = exec_sql(db, sql);
    }
    if (r < 0)
        return r;
    db->depth++;
    hooks_fire(db, DB_TX_BEGIN, db->depth);
    return 0;
}

int
db_rollback(db_t *db)
{
    char sql[64];
    unsigned d = db->depth;
    int r;

    if (d == 0)
        return -EINVAL;
    if (d == 1)
        r = exec_sql(db, "ROLLBACK");
    else {
        snprintf(sql, sizeof(sql), "ROLLBACK TO vf%u; RELEASE vf%u", d, d);
        r = exec_sql(db, sql);
    }
    /* Whatever SQLite said, the changes of this level are gone or the whole
     * transaction is (an I/O error during rollback leaves it to SQLite's own
     * recovery), so memory must forget them. */
    db->depth--;
    if (d == 1 || sqlite3_get_autocommit(db->conn)) {
        for (unsigned i = d; i >= 1 && i <= d; i--)
            hooks_fire(db, DB_TX_ROLLBACK, i);
        db->depth = 0;
    } else
        hooks_fire(db, DB_TX_ROLLBACK, d);
    return r;
}

int
db_commit(db_t *db)
{
    char sql[48];
    unsigned d = db->depth;
    int r;

    if (d == 0)
        return -EINVAL;
    if (d == 1)
        r = exec_sql(db, "COMMIT");
    else {
        snprintf(sql, sizeof(sql), "RELEASE vf%u", d);
        r = exec_sql(db, sql);
    }
    if (r < 0) {
        /* A failed COMMIT (a deferred foreign key, a full disk) leaves the
         * transaction open or already rolled back; either way it is undone. */
        if (d == 1 && !sqlite3_get_autocommit(db->conn))
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        if (d == 1 || sqlite3_get_autocommit(db->conn)) {
            for (unsigned i = d; i >= 1; i--)
                hooks_fire(db, DB_TX_ROLLBACK, i);
            db->depth = 0;
        } else {
            /* A savepoint that cannot be released stays open; roll it back. */
            snprintf(sql, sizeof(sql), "ROLLBACK TO vf%u; RELEASE vf%u", d, d);
            sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
            db->depth--;
            hooks_fire(db, DB_TX_ROLLBACK, d);
        }
        return r;
    }
    db->depth--;
    hooks_fire(db, DB_TX_COMMIT, d);
    return 0;
}

/* Runs the tail of a mutating function: commit when r >= 0, else roll back
 * and keep r. */
static int
tx_end(db_t *db, int r)
{
    if (r < 0) {
        (void)db_rollback(db);
        return r;
    }
    int c = db_commit(db);
    return c < 0 ? c : r;
}

/* ---- open, migrate, close ---- */

static int
migrate(db_t *db, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    int version, r;

    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        snprintf(err, errlen, "cannot read the schema version: %s", sqlite3_errmsg(db->conn));
        return -EBADMSG;
    }
    version = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);

    if (version > DB_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "the database has schema version %d but this vfleet-master knows only up to "
                 "%d; it was written by a newer release, refusing to open it",
                 version, DB_SCHEMA_VERSION);
        return -EPROTONOSUPPORT;
    }
    if (version < 0) {
        snprintf(err, errlen, "the database has an invalid schema version %d", version);
        return -EBADMSG;
    }
    for (int v = version; v < DB_SCHEMA_VERSION; v++) {
        char bump[48];

        r = db_begin(db);
        if (r >= 0)
            r = exec_sql(db, db_migrations[v]);
        if (r >= 0) {
            snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
            r = exec_sql(db, bump);
        }
        if (r >= 0)
            r = db_commit(db);
        else
            (void)db_rollback(db);
        if (r < 0) {
            snprintf(err, errlen, "migration to schema version %d failed: %s", v + 1,
                     sqlite3_errmsg(db->conn));
            return r;
        }
    }
    return 0;
}

int
db_open(const char *path, db_t **out, char *err, size_t errlen)
{
    char dummy[1];
    db_t *db;
    sqlite3_stmt *s = NULL;
    int rc, r;

    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = 0;
    db = xcalloc(1, sizeof(*db));
    rc = sqlite3_open_v2(path, &db->conn,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                             SQLITE_OPEN_EXRESCODE,
                         NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path,
                 db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
        r = db_errno(rc);
        db_destroy(&db);
        return r;
    }
    sqlite3_busy_timeout(db->conn, 5000);

    /* journal_mode answers with the mode it got: a read-only directory or
     * ":memory:" cannot do WAL, and we report what we really have. */
    if (sqlite3_prepare_v2(db->conn, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        snprintf(err, errlen, "\"%s\" is not a usable database: %s", path,
                 sqlite3_errmsg(db->conn));
        sqlite3_finalize(s);
        db_destroy(&db);
        return -EBADMSG;
    }
    snprintf(db->journal_mode, sizeof(db->journal_mode), "%s",
             (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);

    r = exec_sql(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
    if (r >= 0)
        r = migrate(db, err, errlen);
    if (r < 0) {
        if (!err[0] && errlen > 1)
            snprintf(err, errlen, "cannot set up \"%s\": %s", path, sqlite3_errmsg(db->conn));
        db_destroy(&db);
        return r;
    }
    *out = db;
    return 0;
}

void
db_destroy(db_t **pdb)
{
    db_t *db = *pdb;

    if (!db)
        return;
    if (db->conn && db->depth)
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < ST__MAX; i++)
        sqlite3_finalize(db->stmts[i]);
    for (size_t i = 0; i < DB_GUEST_FILTERS; i++)
        sqlite3_finalize(db->guest_lists[i]);
    sqlite3_close(db->conn);
    free(db);
    *pdb = NULL;
}

const char *
db_errmsg(db_t *db)
{
    return sqlite3_errmsg(db->conn);
}

int
db_schema_version(db_t *db)
{
    sqlite3_stmt *s = NULL;
    int v = -EIO;

    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return v;
}

const char *
db_journal_mode(db_t *db)
{
    return db->journal_mode;
}

/* ---- nodes ---- */

int
db_node_upsert(db_t *db, const struct db_node *n)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_NODE_UPSERT);

    if (!n->name || !db_node_state_to_string(n->state))
        return -EINVAL;
    bind_text(s, 1, n->name);
    bind_text(s, 2, n->labels ? n->labels : "{}");
    bind_text(s, 3, n->kernel ? n->kernel : "{}");
    bind_u64(s, 4, n->cpus);
    bind_u64(s, 5, n->memory);
    bind_u64(s, 6, n->disk);
    bind_u64(s, 7, n->max_guests);
    bind_u64(s, 8, n->max_addrs);
    bind_text(s, 9, db_node_state_to_string(n->state));
    bind_u64(s, 10, n->last_seen_ms);
    bind_u64(s, 11, now_ms());
    return step_done(db, s, -EINVAL, false);
}

int
db_node_set_state(db_t *db, const char *name, enum db_node_state state, uint64_t last_seen_ms)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_NODE_SET_STATE);

    if (!db_node_state_to_string(state))
        return -EINVAL;
    bind_text(s, 1, name);
    bind_text(s, 2, db_node_state_to_string(state));
    bind_u64(s, 3, last_seen_ms);
    bind_u64(s, 4, now_ms());
    return step_done(db, s, -EINVAL, true);
}

int
db_node_set_cordoned(db_t *db, const char *name, bool cordoned)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_NODE_SET_CORDONED);

    bind_text(s, 1, name);
    sqlite3_bind_int(s, 2, cordoned);
    bind_u64(s, 3, now_ms());
    return step_done(db, s, -EINVAL, true);
}

int
db_node_delete(db_t *db, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_NODE_DELETE);

    bind_text(s, 1, name);
    return step_done(db, s, -EBUSY, true);
}

static void
node_from_row(sqlite3_stmt *s, struct db_node *n, char *(*str)(sqlite3_stmt *, int))
{
    int st = db_node_state_from_string((const char *)sqlite3_column_text(s, 9));

    *n = (struct db_node){
        .name = str(s, 0),
        .labels = str(s, 1),
        .kernel = str(s, 2),
        .cpus = col_u64(s, 3),
        .memory = col_u64(s, 4),
        .disk = col_u64(s, 5),
        .max_guests = (uint32_t)col_u64(s, 6),
        .max_addrs = (uint32_t)col_u64(s, 7),
        .cordoned = sqlite3_column_int(s, 8) != 0,
        .state = st < 0 ? DB_NODE_DOWN : (enum db_node_state)st,
        .last_seen_ms = col_u64(s, 10),
        .created_ms = col_u64(s, 11),
        .updated_ms = col_u64(s, 12),
    };
}

int
db_node_get(db_t *db, const char *name, struct db_node *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_NODE_GET);
    int rc;

    bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_errno(rc);
    node_from_row(s, out, col_dup);
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

/* Walks the rows of a bound statement through a row converter and callback. */
static int
walk(db_t *db, sqlite3_stmt *s, int (*row)(sqlite3_stmt *s, void *cb, void *userdata), void *cb,
     void *userdata)
{
    int rc, n = 0;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int r = row(s, cb, userdata);
        n++;
        if (r != 0)
            return r < 0 ? r : n;
    }
    if (rc != SQLITE_DONE) {
        log_debug("db: list failed: %s", sqlite3_errmsg(db->conn));
        return db_errno(rc);
    }
    return n;
}

typedef int (*node_cb)(void *, const struct db_node *);

static int
node_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_node n;

    node_from_row(s, &n, col_borrow);
    return ((node_cb)cb)(userdata, &n);
}

int
db_node_list(db_t *db, const char *after, unsigned limit,
             int (*cb)(void *userdata, const struct db_node *n), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_NODE_LIST);

    bind_text(s, 1, after ? after : "");
    sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
    return walk(db, s, node_row, (void *)cb, userdata);
}

/* ---- guests ---- */

static int
labels_write(db_t *db, const char *id, const struct db_label *labels, size_t n_labels)
{
    _cleanup_stmt_ sqlite3_stmt *d = stmt(db, ST_LABEL_DELETE_GUEST);
    int r;

    bind_text(d, 1, id);
    r = step_done(db, d, -EINVAL, false);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n_labels; i++) {
        _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_LABEL_INSERT);

        if (!labels[i].key || !labels[i].value)
            return -EINVAL;
        bind_text(s, 1, labels[i].key);
        bind_text(s, 2, labels[i].value);
        bind_text(s, 3, id);
        r = step_done(db, s, -EINVAL, false);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
guest_insert_one(db_t *db, const struct db_guest *g)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_GUEST_INSERT);

    bind_text(s, 1, g->id);
    bind_text(s, 2, g->name);
    bind_text(s, 3, g->node);
    bind_text(s, 4, g->spec);
    bind_text(s, 5, g->group);
    bind_text(s, 6, g->message);
    bind_u64(s, 7, g->generation);
    bind_u64(s, 8, g->applied_generation);
    bind_text(s, 9, db_desired_to_string(g->desired));
    bind_text(s, 10, db_observed_to_string(g->observed));
    bind_u64(s, 11, now_ms());
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
    return db_errno(rc);
}

int
db_guest_insert(db_t *db, const struct db_guest *g, const struct db_label *labels, size_t n_labels)
{
    int r;

    if (!g->id || !g->name || !g->spec || g->generation < 1 || !db_desired_to_string(g->desired) ||
        !db_observed_to_string(g->observed))
        return -EINVAL;
    r = db_begin(db);
    if (r < 0)
        return r;
    r = guest_insert_one(db, g);
    if (r >= 0)
        r = labels_write(db, g->id, labels, n_labels);
    return tx_end(db, r);
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
        _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_GUEST_UPDATE);

        bind_text(s, 1, g->id);
        bind_text(s, 2, g->node);
        bind_text(s, 3, g->spec);
        bind_text(s, 4, g->group);
        bind_text(s, 5, db_desired_to_string(g->desired));
        bind_u64(s, 6, g->generation);
        bind_u64(s, 7, now_ms());
        bind_u64(s, 8, expect_generation);
        r = step_done(db, s, -EINVAL, true);
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
        r = labels_write(db, g->id, labels, n_labels);
    return tx_end(db, r);
}

int
db_guest_set_observed(db_t *db, const char *id, enum db_observed observed, const char *message)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_GUEST_SET_OBSERVED);

    if (!db_observed_to_string(observed))
        return -EINVAL;
    bind_text(s, 1, id);
    bind_text(s, 2, db_observed_to_string(observed));
    bind_text(s, 3, message);
    bind_u64(s, 4, now_ms());
    return step_done(db, s, -EINVAL, true);
}

int
db_guest_set_applied(db_t *db, const char *id, uint64_t gen)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_GUEST_SET_APPLIED);

    bind_text(s, 1, id);
    bind_u64(s, 2, gen);
    bind_u64(s, 3, now_ms());
    return step_done(db, s, -EINVAL, true);
}

int
db_guest_delete(db_t *db, const char *id)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_GUEST_DELETE);

    bind_text(s, 1, id);
    return step_done(db, s, -EBUSY, true);
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
        .generation = col_u64(s, 6),
        .applied_generation = col_u64(s, 7),
        .desired = d < 0 ? DB_DESIRED_STOPPED : (enum db_desired)d,
        .observed = o < 0 ? DB_OBS_UNKNOWN : (enum db_observed)o,
        .created_ms = col_u64(s, 10),
        .updated_ms = col_u64(s, 11),
    };
}

static int
guest_get(db_t *db, enum db_stmt_id id, const char *key, struct db_guest *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, id);
    int rc;

    bind_text(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_errno(rc);
    guest_from_row(s, out, col_dup);
    return 0;
}

int
db_guest_get_by_id(db_t *db, const char *id, struct db_guest *out)
{
    return guest_get(db, ST_GUEST_GET_ID, id, out);
}

int
db_guest_get_by_name(db_t *db, const char *name, struct db_guest *out)
{
    return guest_get(db, ST_GUEST_GET_NAME, name, out);
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
    *g = (struct db_guest){0};
}

typedef int (*guest_cb)(void *, const struct db_guest *);

static int
guest_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_guest g;

    guest_from_row(s, &g, col_borrow);
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
    mask = (f->node ? 1u : 0) | (f->observed >= 0 ? 2u : 0) | (f->label_key ? 4u : 0);
    if (!db->guest_lists[mask]) {
        /* Only the set filters appear in the SQL, so SQLite picks the index
         * that serves them (node, observed or the label table) instead of
         * walking every guest to test "?1 IS NULL OR node = ?1". */
        _cleanup_free_ char *sql = xasprintf(
            "SELECT " GUEST_COLS " FROM guests WHERE name > ?1%s%s%s ORDER BY name LIMIT ?2",
            mask & 1 ? " AND node = ?3" : "", mask & 2 ? " AND observed = ?4" : "",
            mask & 4 ? " AND id IN (SELECT guest_id FROM guest_labels WHERE key = ?5 AND "
                       "value = ?6)"
                     : "");
        stmt_prepare(db, &db->guest_lists[mask], sql);
    }
    _cleanup_stmt_ sqlite3_stmt *s = db->guest_lists[mask];
    bind_text(s, 1, f->after ? f->after : "");
    sqlite3_bind_int64(s, 2, f->limit ? (sqlite3_int64)f->limit : -1);
    if (mask & 1)
        bind_text(s, 3, f->node);
    if (mask & 2)
        bind_text(s, 4, db_observed_to_string(f->observed));
    if (mask & 4) {
        bind_text(s, 5, f->label_key);
        bind_text(s, 6, f->label_value);
    }
    r = walk(db, s, guest_row, (void *)cb, userdata);
    return r;
}

/* ---- pools and addresses ---- */

int
db_pool_insert(db_t *db, const struct db_pool *p)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_POOL_INSERT);

    if (!p->name || !p->cidr)
        return -EINVAL;
    bind_text(s, 1, p->name);
    bind_text(s, 2, p->cidr);
    bind_text(s, 3, p->gateway);
    sqlite3_bind_int(s, 4, p->family);
    bind_text(s, 5, p->selector ? p->selector : "{}");
    bind_u64(s, 6, now_ms());
    return step_done(db, s, -EEXIST, false);
}

int
db_pool_delete(db_t *db, const char *name)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_POOL_DELETE);

    bind_text(s, 1, name);
    return step_done(db, s, -EBUSY, true);
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
        .created_ms = col_u64(s, 5),
    };
}

int
db_pool_get(db_t *db, const char *name, struct db_pool *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_POOL_GET);
    int rc;

    bind_text(s, 1, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_errno(rc);
    pool_from_row(s, out, col_dup);
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

    pool_from_row(s, &p, col_borrow);
    return ((pool_cb)cb)(userdata, &p);
}

int
db_pool_list(db_t *db, int (*cb)(void *userdata, const struct db_pool *p), void *userdata)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_POOL_LIST);

    return walk(db, s, pool_row, (void *)cb, userdata);
}

int
db_ip_insert(db_t *db, const char *address, const char *pool, const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_IP_INSERT);
    int rc;

    if (!address || !pool || !guest_id)
        return -EINVAL;
    bind_text(s, 1, address);
    bind_text(s, 2, pool);
    bind_text(s, 3, guest_id);
    bind_u64(s, 4, now_ms());
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return -EADDRINUSE;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT; /* no such pool */
    return db_errno(rc);
}

int
db_ip_delete(db_t *db, const char *address)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_IP_DELETE);

    bind_text(s, 1, address);
    return step_done(db, s, -EINVAL, true);
}

typedef int (*ip_cb)(void *, const struct db_ip *);

static int
ip_row(sqlite3_stmt *s, void *cb, void *userdata)
{
    struct db_ip ip = {
        .address = col_borrow(s, 0),
        .pool = col_borrow(s, 1),
        .guest_id = col_borrow(s, 2),
        .created_ms = col_u64(s, 3),
    };
    return ((ip_cb)cb)(userdata, &ip);
}

int
db_ip_list(db_t *db, const char *pool, const char *guest_id,
           int (*cb)(void *userdata, const struct db_ip *ip), void *userdata)
{
    if ((pool == NULL) == (guest_id == NULL))
        return -EINVAL;
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, pool ? ST_IP_LIST_POOL : ST_IP_LIST_GUEST);
    bind_text(s, 1, pool ? pool : guest_id);
    return walk(db, s, ip_row, (void *)cb, userdata);
}

int
db_ip_count_guest(db_t *db, const char *guest_id)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_IP_COUNT_GUEST);
    int rc;

    bind_text(s, 1, guest_id);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW)
        return db_errno(rc) ?: -EIO;
    return sqlite3_column_int(s, 0);
}

/* ---- idempotency keys ---- */

int
db_idem_put(db_t *db, const struct db_idem *r)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_IDEM_PUT);

    if (!r->key || !r->method || !r->path || !r->request_hash || !r->body)
        return -EINVAL;
    bind_text(s, 1, r->key);
    bind_text(s, 2, r->method);
    bind_text(s, 3, r->path);
    bind_text(s, 4, r->request_hash);
    sqlite3_bind_int(s, 5, r->status);
    bind_text(s, 6, r->body);
    bind_u64(s, 7, r->created_ms ? r->created_ms : now_ms());
    return step_done(db, s, -EEXIST, false);
}

int
db_idem_get(db_t *db, const char *key, struct db_idem *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_IDEM_GET);
    int rc;

    bind_text(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_errno(rc);
    *out = (struct db_idem){
        .key = col_dup(s, 0),
        .method = col_dup(s, 1),
        .path = col_dup(s, 2),
        .request_hash = col_dup(s, 3),
        .status = sqlite3_column_int(s, 4),
        .body = col_dup(s, 5),
        .created_ms = col_u64(s, 6),
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
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_IDEM_EXPIRE);
    int r;

    bind_u64(s, 1, before_ms);
    r = step_done(db, s, -EINVAL, false);
    return r < 0 ? r : sqlite3_changes(db->conn);
}

/* ---- traffic marks ---- */

int
db_traffic_mark_get(db_t *db, const char *guest_id, struct db_traffic_mark *out)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_MARK_GET);
    int rc;

    bind_text(s, 1, guest_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    if (rc != SQLITE_ROW)
        return db_errno(rc);
    *out = (struct db_traffic_mark){
        .rx_bytes = col_u64(s, 0),
        .tx_bytes = col_u64(s, 1),
        .rx_packets = col_u64(s, 2),
        .tx_packets = col_u64(s, 3),
        .since_ms = col_u64(s, 4),
    };
    return 0;
}

int
db_traffic_mark_put(db_t *db, const char *guest_id, const struct db_traffic_mark *m)
{
    _cleanup_stmt_ sqlite3_stmt *s = stmt(db, ST_MARK_PUT);

    bind_text(s, 1, guest_id);
    bind_u64(s, 2, m->rx_bytes);
    bind_u64(s, 3, m->tx_bytes);
    bind_u64(s, 4, m->rx_packets);
    bind_u64(s, 5, m->tx_packets);
    bind_u64(s, 6, m->since_ms);
    return step_done(db, s, -ENOENT, false);
}
