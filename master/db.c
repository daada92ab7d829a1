/* The store's core: open and migrate, statements, transactions and their
 * hooks. The tables live in db_node.c, db_guest.c, db_pool.c and db_keys.c. */
#include "master/db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/mtime.h"

/* The page cache, KiB (PRAGMA cache_size's negative form). */
#define DB_CACHE_KIB "65536"
/* WAL pages between automatic checkpoints (see db_open). */
#define DB_CHECKPOINT_PAGES "8192"

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
int
dbi_errno(int rc)
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

uint64_t
dbi_now_ms(void)
{
    return time_real_ms();
}

int
dbi_exec(db_t *db, const char *sql)
{
    int rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        log_debug("db: \"%.60s\" failed: %s", sql, sqlite3_errmsg(db->conn));
    return dbi_errno(rc);
}

sqlite3_stmt *
dbi_stmt_prepare(db_t *db, sqlite3_stmt **slot, const char *sql)
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

sqlite3_stmt *
dbi_stmt(db_t *db, const char *sql)
{
    uint32_t *at = hmap_u64_get(&db->stmt_index, (uint64_t)(uintptr_t)sql);

    if (at)
        return db->stmts[*at];
    db->stmts = xreallocarray(db->stmts, db->n_stmts + 1, sizeof(*db->stmts));
    db->stmts[db->n_stmts] = NULL;
    dbi_stmt_prepare(db, &db->stmts[db->n_stmts], sql);
    hmap_u64_put(&db->stmt_index, (uint64_t)(uintptr_t)sql, (uint32_t)db->n_stmts);
    return db->stmts[db->n_stmts++];
}

void
dbi_stmt_resetp(sqlite3_stmt **s)
{
    if (*s) {
        sqlite3_reset(*s);
        sqlite3_clear_bindings(*s);
    }
}

void
dbi_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

void
dbi_bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
    /* SQLite integers are signed 64-bit; every value stored here (bytes,
     * millicores, milliseconds, generations) is far below 2^63. */
    sqlite3_bind_int64(s, i, (sqlite3_int64)(v > INT64_MAX ? INT64_MAX : v));
}

char *
dbi_col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? xstrdup((const char *)t) : NULL;
}

char *
dbi_col_borrow(sqlite3_stmt *s, int i)
{
    return (char *)sqlite3_column_text(s, i);
}

uint64_t
dbi_col_u64(sqlite3_stmt *s, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(s, i);
    return v < 0 ? 0 : (uint64_t)v;
}

/* Steps a statement that returns no rows. Constraint failures become
 * on_constraint; a statement that changed nothing gives -ENOENT when
 * need_change is set. */
int
dbi_step_done(db_t *db, sqlite3_stmt *s, int on_constraint, bool need_change)
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
    return dbi_errno(rc);
}

int
dbi_step_row(db_t *db, sqlite3_stmt *s, const char *key)
{
    dbi_bind_text(s, 1, key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE)
        return -ENOENT;
    return rc == SQLITE_ROW ? 0 : dbi_errno(rc);
}

int
dbi_walk(db_t *db, sqlite3_stmt *s, int (*row)(sqlite3_stmt *s, void *cb, void *userdata), void *cb,
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
        return dbi_errno(rc);
    }
    return n;
}

/* ---- transactions ---- */

static void
hooks_fire(db_t *db, enum db_tx_event ev, unsigned depth)
{
    if (ev == DB_TX_ROLLBACK)
        dbi_context_forget(db);
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

int
db_probe_write(db_t *db)
{
    if (db->commit_error == 0) {
        /* Nothing failed lately: a write lock proves the file takes writes
         * (a read-only file does not), without writing. */
        int r = db_begin(db);
        return r < 0 ? r : db_commit(db);
    }
    /* The last commit failed: write for real (a row in and out again). */
    int r = db_begin(db);
    if (r < 0)
        return r;
    r = dbi_exec(db, "INSERT INTO idempotency (key, method, path, request_hash, status, body, "
                     "created) VALUES ('\x01probe', '', '', '', 0, '', 0); DELETE FROM "
                     "idempotency WHERE key = '\x01probe'");
    return dbi_tx_end(db, r);
}

int
db_tx_error(db_t *db)
{
    return db->tx_error;
}

unsigned
db_tx_depth(db_t *db)
{
    return db->depth;
}

/* SAVEPOINT vfD or RELEASE vfD. Kept prepared: a batch create opens and
 * releases a few savepoints per guest, and parsing their text each time was
 * 3 % of the master's CPU (issue 16). */
static int
savepoint(db_t *db, bool release, unsigned d)
{
    char sql[48];

    snprintf(sql, sizeof(sql), "%s vf%u", release ? "RELEASE" : "SAVEPOINT", d);
    if (d >= DB_TX_KEPT)
        return dbi_exec(db, sql);
    sqlite3_stmt *s = dbi_stmt_prepare(db, &db->tx_kept[d][release], sql);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        log_debug("db: \"%s\" failed: %s", sql, sqlite3_errmsg(db->conn));
    return rc == SQLITE_DONE ? 0 : dbi_errno(rc);
}

int
db_begin(db_t *db)
{
    int r;

    if (db->depth == 0) {
        r = dbi_exec(db, "BEGIN IMMEDIATE");
        db->changes_at_begin = sqlite3_total_changes64(db->conn);
    } else
        r = savepoint(db, false, db->depth + 1);
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
    db->tx_error = -ECANCELED;
    if (d == 1)
        r = dbi_exec(db, "ROLLBACK");
    else {
        snprintf(sql, sizeof(sql), "ROLLBACK TO vf%u; RELEASE vf%u", d, d);
        r = dbi_exec(db, sql);
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
        r = dbi_exec(db, "COMMIT");
    else
        r = savepoint(db, true, d);
    /* Only a commit that wrote something proves the store takes writes
     * again: an empty one (a batch of heartbeats) leaves the last failure
     * standing, so health keeps probing with a real write. */
    if (d == 1 && (r < 0 || sqlite3_total_changes64(db->conn) != db->changes_at_begin))
        db->commit_error = r < 0 ? r : 0;
    if (r < 0) {
        db->tx_error = r;
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
int
dbi_tx_end(db_t *db, int r)
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
            r = dbi_exec(db, db_migrations[v]);
        if (r >= 0) {
            snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
            r = dbi_exec(db, bump);
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

/* The database holds exec output and token hashes: owner-only. The file is
 * made 0600 before SQLite opens it (SQLite gives its -wal and -shm files
 * the database's mode), and files an older master left readable to others
 * are tightened. */
static int
tighten(const char *path, char *err, size_t errlen)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};

    if (strcmp(path, ":memory:") == 0 || path[0] == '\0')
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
        _cleanup_free_ char *p = xasprintf("%s%s", path, suffixes[i]);
        _cleanup_close_ int fd =
            open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (i == 0 ? O_CREAT : 0), 0600);
        struct stat st;

        if (fd < 0 && (errno == ENOENT && i > 0))
            continue;
        if (fd < 0 || fstat(fd, &st) < 0 || ((st.st_mode & 077) && fchmod(fd, 0600) < 0)) {
            snprintf(err, errlen, "cannot make \"%s\" owner-only: %s", p, strerror(errno));
            return -errno;
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
    r = tighten(path, err, errlen);
    if (r < 0)
        return r;
    db = xcalloc(1, sizeof(*db));
    rc = sqlite3_open_v2(path, &db->conn,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                             SQLITE_OPEN_EXRESCODE,
                         NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open \"%s\": %s", path,
                 db->conn ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
        r = dbi_errno(rc);
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

    /* journal_size_limit 0: the WAL is cut to nothing when it starts over
     * after a checkpoint, so every commit appends to it; a full disk then
     * refuses the next change (507) instead of the WAL's old frames taking
     * writes until a checkpoint fails, and a burst's WAL does not stay. */
    /* cache_size: SQLite's default page cache (2 MiB) is smaller than the
     * guests table and its indexes of a few thousand guests, so a batch of
     * node reports spilled dirty pages mid-transaction and read pages back
     * from the file at every lookup (sqlite3PcacheFetchStress and pread, a
     * fifth of the master's CPU on acknowledgements at 20,000 guests). */
    /* temp_store MEMORY: a nested db_begin is a savepoint, and a savepoint
     * keeps the first copy of every page it changes in the sub-journal,
     * which SQLite spills to a temporary file past 64 KiB and then never
     * truncates until the transaction ends: a 1,000-guest batch (one
     * savepoint per guest) wrote every page it touched to that file, a
     * fifth of the master's CPU in pwrite (issue 16). In memory, a released
     * savepoint's copies are dropped. */
    /* wal_autocheckpoint: SQLite's 1,000 pages (4 MiB) were passed by every
     * 1,000-guest batch, so each batch's commit also copied its pages into
     * the database file and synced it (a checkpoint per commit, 6 % of the
     * master's CPU at 100,000 guests, and the loop blocked in fsync). Every
     * 8,192 pages (32 MiB) the same hot pages (indexes, the pool's cursor)
     * are copied once for several batches. Durability is the WAL's fsync at
     * each commit (synchronous FULL), not the checkpoint's. */
    r = dbi_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                     "PRAGMA journal_size_limit = 0; PRAGMA cache_size = -" DB_CACHE_KIB "; "
                     "PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = " DB_CHECKPOINT_PAGES
                     ";");
    if (r >= 0)
        r = migrate(db, err, errlen);
    if (r >= 0)
        r = dbi_context_init(db);
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
    for (size_t i = 0; i < db->n_stmts; i++)
        sqlite3_finalize(db->stmts[i]);
    for (size_t i = 0; i < DB_TX_KEPT; i++)
        for (size_t k = 0; k < 2; k++)
            sqlite3_finalize(db->tx_kept[i][k]);
    free(db->stmts);
    hmap_u64_free(&db->stmt_index);
    dbi_context_free(db);
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
