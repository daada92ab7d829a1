/* The guest domain's part of a move (the operation itself is op_move.c):
 * plain functions returning -errno and filling struct guest_err, inside the
 * caller's transaction. Loop thread only. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "master/guests.h"

/* A guest busy with a running operation (a move): lifecycle changes, spec
 * changes and deletes refuse it with -EBUSY. */
bool guests_moving(master_t *m, const char *id);

/* The refusal of a change to guest id (named name) while an operation
 * runs on it: -EBUSY with 'guest "NAME" is busy with operation OP (a move,
 * or its template's fetch); THEN' in e (then NULL: only 'guest "NAME" is
 * busy with operation OP'), or 0 when none runs. */
int guests_busy(master_t *m, const char *id, const char *name, const char *then,
                struct guest_err *e);

/* Whether g may start moving now: placed, not busy, not being deleted,
 * running or stopped, its node connected, not a locked running guest. */
int guests_move_check(master_t *m, const struct db_guest *g, const struct guest_spec *spec,
                      struct guest_err *e);

/* Where a move may go. */
struct guests_move_where {
    const char *to;                 /* only this node, NULL = the scheduler's choice */
    const struct sched_label *cons; /* node labels that must match */
    size_t n_cons;                  /* entries in cons */
};

/* Places the guest on another node (its own is left out of the choice) with
 * every placement filter: constraints, template, anti-affinity group,
 * capacity. The target is charged (following the caller's transaction) for
 * as long as the move runs. -EXFULL with the scheduler's explanation, or
 * -EINVAL when `to` is the guest's own node. */
int guests_move_place(master_t *m, const struct db_guest *g, const struct guest_spec *spec,
                      const struct guests_move_where *w, char target[NAME_MAX_LEN + 1],
                      struct guest_err *e);

/* Whether each address of next can be served on target (the selector of
 * the pool it came from matches the target's labels). One that cannot is
 * -EADDRNOTAVAIL with the reason, unless renumber: then an address of the
 * same family from a pool that serves target replaces it in next (allocated
 * now, to the guest), and {from, to} goes into renumbered. */
int guests_move_addrs(master_t *m, const struct db_guest *g, const char *target, bool renumber,
                      struct guest_spec *next, json_t *renumbered, struct guest_err *e);

/* FreeVPS context numbers are unique per node (db_guest_free_context).
 * Whether a running move holds context on node: its target runs the guest
 * with that number before the guest's row names the target. */
bool guests_context_held(master_t *m, const char *node, uint32_t context);
/* The smallest context number free on node: no guest of it has it and no
 * move to it holds it. -ENOSPC when all are taken, or -errno. */
int guests_context_free(master_t *m, const char *node, uint32_t *out);
/* next keeps its context number on target when it is free there; otherwise
 * it gets the smallest free one (a number is no guest's identity: vzmigrate
 * refuses a CTID the destination has, vfleet renumbers). Returns 1 when it
 * changed, 0 when kept, -EXFULL when none is free on target, or -errno. */
int guests_move_context(master_t *m, const char *target, struct guest_spec *next,
                        struct guest_err *e);

/* A move that did not happen gives back what it held: the target's charge
 * (when charged) and the addresses renumbering allocated. */
void guests_move_release(master_t *m, const char *target, const struct guest_spec *next,
                         const char *group, const json_t *renumbered, bool charged);
/* The target's charge again, after a master restart. */
void guests_move_recharge(master_t *m, const char *target, const struct guest_spec *next,
                          const char *group);

/* The point of no return, in one transaction: the guest's record names the
 * target with next as its spec (next->generation, the one the target
 * applied; compare-and-set on expect_gen), the source's charge and the
 * renumbered addresses are given back, "guest.moved" is emitted and its
 * observed state is what the target reported. */
struct guests_move_done {
    const char *op;                /* the operation */
    const char *id;                /* the guest */
    const char *target;            /* where it is now */
    const struct guest_spec *next; /* its spec there */
    uint64_t expect_gen;           /* its generation before the move */
    bool running;                  /* it runs there */
    const json_t *renumbered;      /* [{from, to}] */
};
int guests_move_commit(master_t *m, const struct guests_move_done *d);
