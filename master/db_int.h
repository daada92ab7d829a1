/* What the db_*.c files share: the connection's state and the statement,
 * binding and transaction helpers. Private to the store (master/db*.c);
 * everything else uses db.h. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "master/db.h"
#include "common/hmap.h"

/* Guest list filters: bit 0 node, bit 1 observed, bit 2 label, bit 3 project. */
#define DB_GUEST_FILTERS 16

struct db_hook {
    void (*fn)(void *userdata, enum db_tx_event ev, unsigned depth); /* NULL = free slot */
    void *userdata;                                                  /* handed to fn */
};

/* Savepoint depths whose SAVEPOINT and RELEASE statements are kept
 * prepared (deeper ones are parsed each time). */
#define DB_TX_KEPT 16

struct db {
    sqlite3 *conn;                               /* the one connection */
    struct hmap_u64 stmt_index;                  /* SQL text address -> index in stmts */
    sqlite3_stmt **stmts;                        /* prepared on first use */
    size_t n_stmts;                              /* entries in stmts */
    sqlite3_stmt *guest_lists[DB_GUEST_FILTERS]; /* one per filter combination */
    sqlite3_stmt *tx_kept[DB_TX_KEPT][2];        /* SAVEPOINT and RELEASE vfN, by depth */
    unsigned depth;                              /* open transactions */
    int tx_error;                                /* why the last transaction was undone */
    int commit_error;                            /* the last outermost commit's result */
    int64_t changes_at_begin;                    /* total changes when the outermost began */
    char journal_mode[16];                       /* what PRAGMA journal_mode said */
    struct db_hook hooks[8];                     /* transaction listeners */
    struct hmap_str context_low;                 /* node -> its low-water mark (db_context.c) */
    uint64_t context_epoch;                      /* marks of another epoch are forgotten */
    int64_t context_data_version;                /* PRAGMA data_version when the epoch began */
};

/* The migrations, oldest first (db_schema.c); entry i takes the schema from
 * version i to i + 1. */
extern const char *const db_migrations[DB_SCHEMA_VERSION];

/* Maps an SQLite result code to -errno. */
int dbi_errno(int rc);
/* Wall clock in ms, the time stamps of rows. */
uint64_t dbi_now_ms(void);
/* Runs SQL without results. */
int dbi_exec(db_t *db, const char *sql);
/* The prepared statement of a constant SQL text, prepared on first use and
 * kept: sql must be a static string (its address is the cache key). */
sqlite3_stmt *dbi_stmt(db_t *db, const char *sql);
/* Prepares sql into *slot unless it is prepared already. */
sqlite3_stmt *dbi_stmt_prepare(db_t *db, sqlite3_stmt **slot, const char *sql);
/* Resets a statement and its bindings (the cleanup of _cleanup_stmt_). */
void dbi_stmt_resetp(sqlite3_stmt **s);
#define _cleanup_stmt_ _cleanup_(dbi_stmt_resetp)

/* NULL binds SQL NULL; the text must outlive the statement's step. */
void dbi_bind_text(sqlite3_stmt *s, int i, const char *v);
void dbi_bind_u64(sqlite3_stmt *s, int i, uint64_t v);
/* A column as a copy the caller frees, or borrowed until the next step. */
char *dbi_col_dup(sqlite3_stmt *s, int i);
char *dbi_col_borrow(sqlite3_stmt *s, int i);
uint64_t dbi_col_u64(sqlite3_stmt *s, int i);
/* Steps a statement that returns no rows. Constraint failures become
 * on_constraint; a statement that changed nothing gives -ENOENT when
 * need_change is set. */
int dbi_step_done(db_t *db, sqlite3_stmt *s, int on_constraint, bool need_change);
/* Binds key as ?1 and steps to the one row it names: 0 with the row
 * current, -ENOENT when there is none, or -errno. */
int dbi_step_row(db_t *db, sqlite3_stmt *s, const char *key);
/* Walks the rows of a bound statement through a row converter and callback;
 * returns the rows visited or -errno. */
int dbi_walk(db_t *db, sqlite3_stmt *s, int (*row)(sqlite3_stmt *s, void *cb, void *userdata),
             void *cb, void *userdata);
/* Sets up the free-context mark's function and triggers (db_context.c). */
int dbi_context_init(db_t *db);
/* Forgets the free-context mark (a rollback may have freed numbers below it). */
void dbi_context_forget(db_t *db);
/* Frees the marks (db_destroy). */
void dbi_context_free(db_t *db);
/* The tail of a mutating function: commit when r >= 0, else roll back and
 * keep r. */
int dbi_tx_end(db_t *db, int r);
