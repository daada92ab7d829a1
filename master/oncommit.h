/* Work that depends on a transaction: run when it commits, told why when
 * it does not.
 *
 * "A reply is a promise": a client is answered, and a node is sent what a
 * change implies, only once the change is durable. A module that changes
 * the store inside a transaction (its own, or one its caller holds open —
 * the batch of node messages, an HTTP handler's outer transaction around a
 * domain function and its idempotency key) registers the follow-up here
 * instead of doing it at once. It runs after the outermost commit, in
 * registration order, with err 0; when the transaction (or the savepoint it
 * was registered in) rolls back, it runs with err < 0 (db_tx_error: -ENOSPC
 * for a full disk, -ECANCELED for a rollback the code asked for) and must
 * undo or refuse instead of doing. Outside any transaction it runs at once.
 *
 * Loop thread only. */
#pragma once

#include "master/db.h"

typedef struct oncommit oncommit_t;
typedef struct master master_t;

/* The follow-up: err 0 after the commit, -errno when its transaction was
 * undone. It owns ctx (frees it). */
typedef void (*oncommit_fn)(master_t *m, void *ctx, int err);

/* Follows db's transactions. */
oncommit_t *oncommit_new(master_t *m, db_t *db);
/* Runs whatever still waits with -ECANCELED; NULL-safe; clears *p. */
void oncommit_destroy(oncommit_t **p);
/* Runs fn after the open transaction commits (or at once, err 0, when none
 * is open). */
void oncommit_add(oncommit_t *o, oncommit_fn fn, void *ctx);
/* Follow-ups waiting, for tests. */
size_t oncommit_pending(const oncommit_t *o);
