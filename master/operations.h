/* Operations: long actions — moving a guest, draining a node — as objects
 * with an id, stored (db_operations.h) and driven by the master's loop.
 *
 * An operation is `running` until it ends `done`, `failed` or `cancelled`;
 * while it runs it is in a step of its kind ("prepare", "send", "commit",
 * "finish", "abort" for a move) and may carry progress (bytes done of a
 * total, a rate, from which the API derives an ETA). Every step change is
 * stored in the transaction that makes it and announced as an
 * "operation.step" event; what a step tells a node goes out after that
 * commit (oncommit.h), so a master that crashes re-sends it from the stored
 * step after its restart (the nodes treat a command they saw as a repeat).
 *
 * The kinds (op_move.c, op_drain.c) implement struct op_kind_ops: what a
 * node's report does, what a tick checks (deadlines, children), what a
 * cancel may do, what a restart or a node's hello re-sends.
 *
 * Loop thread only. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "master/core.h"
#include "proto/msg.h"

enum op_kind { OP_MOVE, OP_DRAIN, OP_EXPORT, OP_IMPORT, OP_TEMPLATE, OP__KINDS };
enum op_state { OP_RUNNING, OP_DONE, OP_FAILED, OP_CANCELLED };

/* One running operation in memory (finished ones live in the store only). */
struct op {
    char id[SPEC_ID_LEN + 1];       /* a UUID */
    enum op_kind kind;              /* what it is */
    char parent[SPEC_ID_LEN + 1];   /* the drain a move belongs to, "" = none */
    char guest_id[SPEC_ID_LEN + 1]; /* the guest, "" = none */
    char guest[NAME_MAX_LEN + 1];   /* its name when it began */
    char node[NAME_MAX_LEN + 1];    /* move: the source; drain: the node */
    char target[NAME_MAX_LEN + 1];  /* move: the target */
    enum op_state state;            /* running until it ends */
    char step[16];                  /* the kind's step */
    uint64_t bytes_done;            /* progress of the current transfer */
    uint64_t bytes_total;           /* its total, 0 = unknown */
    uint64_t rate;                  /* bytes per second lately */
    json_t *params;                 /* what the kind remembers (owned, an object) */
    json_t *result;                 /* the outcome once finished (owned), NULL before */
    char error[512];                /* why it failed, "" = not */
    bool cancel;                    /* a cancel was asked */
    uint64_t created_ms;            /* wall clock of creation */
    uint64_t finished_ms;           /* wall clock of the end, 0 = running */
    /* Not stored: */
    uint64_t step_mono;  /* monotonic ms the step began (or the master started) */
    uint64_t heard_mono; /* monotonic ms a node last reported about it */
    uint64_t rate_mono;  /* when the rate was last sampled */
    uint64_t rate_bytes; /* bytes_done then */
    uint64_t saved_mono; /* when progress was last stored */
    bool gone;           /* finished and stored: freed at the next tick */
    void *rt;            /* the kind's runtime (a receiver, a sending thread), or NULL */
    struct op *next;     /* in the list */
};

struct op_kind_ops {
    const char *name; /* "move", ... */
    /* A node reported about o (guest.migrate.status); node is o->node or o->target. */
    void (*report)(master_t *m, struct op *o, const char *node,
                   const struct msg_migrate_status *st);
    /* Every tick: deadlines, children. */
    void (*tick)(master_t *m, struct op *o, uint64_t now_mono);
    /* Whether a cancel may go ahead now: 0, or -EBUSY with why (NULL:
     * always). Changes nothing. */
    int (*cancellable)(const struct op *o, char *why, size_t n);
    /* A cancel, once it is stored (o->cancel) and only while cancellable
     * still allows it (asked again here: the step may have moved on since
     * the request, or since a master restart): the kind winds the
     * operation down. 0, or -EBUSY with why when it cannot any more. */
    int (*cancel)(master_t *m, struct op *o, char *why, size_t n);
    /* After a master restart (charges to take again, commands to re-send),
     * and when a node the operation involves says hello (node). */
    void (*resume)(master_t *m, struct op *o, const char *node);
    /* Frees o->rt (NULL: nothing to free). */
    void (*release)(master_t *m, struct op *o);
};

/* Loads the running operations and resumes them. */
void operations_new(master_t *m);
/* Stops what runs beside the loop (a sending thread, a receiver) and closes
 * its handles, at master_shutdown: the loop can then end. The operations
 * stay running in the store and resume at the next start. */
void operations_shutdown(master_t *m);
void operations_free(master_t *m);

/* A new running operation (not stored yet: operations_store does that in
 * the caller's transaction; when that transaction rolls back, the operation
 * is dropped from memory too). */
struct op *operations_add(master_t *m, enum op_kind kind, const char *parent);
/* Writes o in the open transaction (or alone). 0 or -errno. */
int operations_store(master_t *m, struct op *o);
/* Moves o to step, stores it and emits operation.step. */
int operations_step(master_t *m, struct op *o, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Ends o (state not OP_RUNNING) with result (stolen, may be NULL) and an
 * error sentence (NULL for none), stored with an event. */
int operations_end(master_t *m, struct op *o, enum op_state state, json_t *result, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
/* Progress of the current transfer; stored now and then. */
void operations_progress(master_t *m, struct op *o, uint64_t done, uint64_t total);

/* A running operation by id, or the one busy with a guest (a template
 * fetch a guest waits for included), or NULL. */
struct op *operations_find(master_t *m, const char *id);
struct op *operations_for_guest(master_t *m, const char *guest_id);
/* The running operation of kind after prev (NULL: the first), or NULL. */
struct op *operations_find_kind(master_t *m, enum op_kind kind, struct op *prev);
/* Running operations that are children of parent. */
size_t operations_children(master_t *m, const char *parent);

/* The API's view of an operation (running or not), NULL when unknown. */
json_t *operations_json(master_t *m, const char *id);
json_t *operations_op_json(const struct op *o);
/* Asks o to stop: 0, -ENOENT (no such running operation), -EBUSY (past the
 * point where it can), why says. Inside a transaction only the request is
 * stored; the kind winds the operation down once it commits (a rollback
 * leaves the operation as it was). */
int operations_cancel(master_t *m, const char *id, char *why, size_t n);

/* A node's guest.migrate.status (session.c). */
void operations_report(master_t *m, const char *node, const struct msg_migrate_status *st);
/* A node refused a migrate command (of type, about guest) outright, as a
 * node too old to know it does: the operation hears it as a failure. */
void operations_nacked(master_t *m, const char *node, enum msg_type type, const char *guest,
                       const struct msg_nack *n);
/* A node said hello: operations that involve it re-send what it may have lost. */
void operations_node_hello(master_t *m, const char *node);
/* The tick (master.c). */
void operations_tick(master_t *m, uint64_t now_mono);

/* A migrate command about o for node, queued once the open transaction
 * commits; the caller fills the fields its type carries. */
struct msg_migrate *operations_queue(master_t *m, const struct op *o, const char *node,
                                     enum msg_type type);
/* The params object's members, tolerant of absent ones. */
bool op_pbool(const struct op *o, const char *k);
const char *op_pstr(const struct op *o, const char *k);
uint64_t op_pu64(const struct op *o, const char *k);
void op_pset(struct op *o, const char *k, json_t *v);

/* The kinds. */
extern const struct op_kind_ops op_move_ops;
extern const struct op_kind_ops op_drain_ops;
extern const struct op_kind_ops op_export_ops;
extern const struct op_kind_ops op_import_ops;
extern const struct op_kind_ops op_template_ops;
/* "move", "drain" and back (-EINVAL). */
const char *operations_kind_name(enum op_kind k);
const char *operations_state_name(enum op_state s);
