/* Held HTTP requests: a create or start that waits for the guest to run, a
 * stop that waits for it to stop, a DELETE that waits for the node's
 * destroy, an exec that waits for its result.
 *
 * A waiter is answered exactly once: by what it waits for (waiters_*), by
 * its deadline (waiters_expire), or at shutdown (waiters_shutdown). An
 * answer given while a transaction is open (node messages are handled in
 * the batch) leaves only once that transaction commits; if it rolls back,
 * the client gets a 503 (507 for a full disk) saying nothing was stored.
 *
 * Loop thread only. */
#pragma once

#include <stdint.h>

#include "master/core.h"
#include "proto/msg.h"

#define WAITER_IDEM_KEY_MAX 36 /* Idempotency-Key length */

enum wait_kind {
    WAIT_RUNNING, /* create or start with ?wait=running */
    WAIT_STOPPED, /* stop with ?wait=stopped */
    WAIT_DELETE,  /* DELETE: the destroy ack */
    WAIT_EXEC,    /* exec: the result */
    WAIT_APPLY,   /* PATCH: the node's ack of the new generation */
    WAIT_CONSOLE, /* GET console: the node's read of the ring */
};

/* One held request. */
struct waiter {
    struct http_req *req;               /* answered exactly once, then the waiter goes */
    enum wait_kind kind;                /* what it waits for */
    char guest[SPEC_ID_LEN + 1];        /* the guest */
    char node[NAME_MAX_LEN + 1];        /* its node */
    uint64_t ref;                       /* WAIT_EXEC: the request id of the guest.exec */
    uint64_t deadline;                  /* monotonic ms */
    unsigned status;                    /* 201 or 200; DELETE: 202, 0 = an orphan */
    char idem[WAITER_IDEM_KEY_MAX + 1]; /* WAIT_EXEC: the key to store the result under */
    char idem_hash[40];                 /* and the request's hash */
    uint64_t generation;                /* WAIT_APPLY: the generation the PATCH made */
    struct guest_spec *before;          /* WAIT_APPLY: the spec before it (owned) */
    struct waiter *next;                /* in master.waiters */
};

/* Holds req until what kind waits for happens, or timeout_ms passes. */
struct waiter *waiter_add(master_t *m, struct http_req *req, enum wait_kind kind, const char *guest,
                          const char *node, uint32_t timeout_ms);

/* The guest's observed state changed: answers those waiting for it to run
 * (running or error) or to stop (stopped or error) with the guest. */
void waiters_guest_state(master_t *m, const char *guest_id, enum db_observed obs);
/* The guest is gone (its destroy was acked, or a forced delete): 204 to
 * every DELETE waiting for it, 404 to a create, start, stop or PATCH
 * waiting for it to run, stop or apply. */
void waiters_guest_deleted(master_t *m, const char *guest_id);
/* The node refused the command of request id ref (exec) or the destroy of
 * guest_id: the waiters get the nack as an error. */
void waiters_nack(master_t *m, enum wait_kind kind, const char *guest_id, uint64_t ref,
                  const struct msg_nack *nack);
/* The node acked generation gen of a guest's spec: PATCHes waiting for a
 * generation up to gen get the guest. */
void waiters_applied(master_t *m, const char *guest_id, uint64_t gen);
/* The node refused generation gen: a PATCH that made it gets the refusal
 * as a 409, after its change is undone (the spec before it is stored as a
 * new generation, unless something changed the guest since). */
void waiters_apply_refused(master_t *m, const char *guest_id, uint64_t gen,
                           const struct msg_nack *nack);
/* The console read of request id ref answered. */
void waiters_console_result(master_t *m, uint64_t ref, const struct msg_console_result *r);
/* The exec of request id ref answered: its waiter gets the result (stored
 * under its Idempotency-Key first). */
void waiters_exec_result(master_t *m, uint64_t ref, const struct msg_exec_result *r);

/* Answers the waiters whose deadline passed. */
void waiters_expire(master_t *m, uint64_t now_mono_ms);
/* Answers every waiter: the master is stopping. A wait for a guest's state
 * (create, start, stop, PATCH) gets the guest as it is, as at its deadline:
 * its change was stored; so does a guest's DELETE (202, deleting: the
 * delete is recorded); an orphan's destroy, an exec, a console read get
 * 503. */
void waiters_shutdown(master_t *m);

/* Answers req with status and body once the open transaction commits (at
 * once when none is open); a rollback answers 503/507 instead. */
void reply_committed(master_t *m, struct http_req *req, unsigned status, json_t *body);
