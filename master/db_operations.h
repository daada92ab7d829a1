/* The operations table (master/operations.h): long actions — a move, a
 * drain, an export, an import — with where they stand, so they survive a
 * master restart. The store only keeps rows; what the fields mean is
 * operations.h's business. Conventions as db.h: >= 0 or -errno, records
 * from *_get own their strings (db_op_clear), list callbacks borrow them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "master/db.h"

struct db_op {
    char *id;             /* a UUID, primary key */
    char *kind;           /* "move", "drain", "export", "import" */
    char *parent;         /* the drain a move belongs to, NULL = none */
    char *guest_id;       /* the guest it is about, NULL = none (a drain) */
    char *guest;          /* that guest's name when it began */
    char *node;           /* move: the source; drain: the node; export: the guest's node */
    char *target;         /* move, import: the node the guest goes to, NULL = not chosen */
    char *state;          /* "running", "done", "failed", "cancelled" */
    char *step;           /* the kind's step ("prepare", "send", ...) */
    uint64_t bytes_done;  /* progress: bytes of the current transfer */
    uint64_t bytes_total; /* its total, 0 = unknown */
    uint64_t rate;        /* bytes per second lately */
    char *params;         /* JSON object: the request and what the driver remembers */
    char *result;         /* JSON object when finished, NULL before */
    char *error;          /* why it failed, NULL = none */
    bool cancel;          /* a cancel was asked */
    uint64_t created_ms;  /* wall clock of creation */
    uint64_t updated_ms;  /* wall clock of the last change */
    uint64_t finished_ms; /* wall clock of the end, 0 = running */
};

struct db_op_filter {
    const char *state;    /* only this state, NULL = any */
    const char *guest_id; /* only about this guest, NULL = any */
    const char *parent;   /* only children of this operation, NULL = any */
    const char *after;    /* page cursor: operations created after this id, NULL = start */
    unsigned limit;       /* page size, 0 = all */
};

/* -EEXIST for a taken id. */
int db_op_insert(db_t *db, const struct db_op *o);
/* Writes every mutable field (everything but id, kind, parent, created). */
int db_op_update(db_t *db, const struct db_op *o);
int db_op_get(db_t *db, const char *id, struct db_op *out);
void db_op_clear(struct db_op *o);
/* Operations matching f, oldest first; as db_node_list. */
int db_op_list(db_t *db, const struct db_op_filter *f,
               int (*cb)(void *userdata, const struct db_op *o), void *userdata);
