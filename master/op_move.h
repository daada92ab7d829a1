/* Moving a guest from its node to another one: the operation of kind "move"
 * (operations.h), the master's half of docs/protocol.md "Moving a guest".
 *
 * Steps, each stored before its command goes out:
 *   prepare  the target makes room and listens for the image
 *   send     the source stops (cold) or copies while running, then freezes
 *            (near-live), and sends the image straight to the target
 *   commit   the target checks the image's digest and starts the guest;
 *            its answer is the point of no return: the guest's record
 *            moves to the target with the same id, name, spec (one
 *            generation more), addresses, counters and history
 *   finish   the source removes its copy
 *   abort    something failed before the point of no return: the target
 *            drops what it received, then the source thaws the guest (and
 *            starts it again when it ran); in the commit step the target
 *            must confirm first, so the guest never runs on both
 * A running move holds the target's charge and is refused by every other
 * change to the guest. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "master/guests.h"
#include "master/operations.h"

struct op_move_req {
    const char *guest;              /* its name */
    const char *to;                 /* the target, NULL = the scheduler's choice */
    bool live;                      /* near-live: copy while it runs, freeze, send the delta */
    bool renumber;                  /* new addresses where the old ones cannot follow */
    const struct sched_label *cons; /* node labels the target must have */
    size_t n_cons;                  /* entries in cons */
    const char *parent;             /* the drain it is part of, NULL = none */
};

/* Checks, places, allocates and stores a new move in the caller's
 * transaction (or its own); the target hears of it after the commit. id
 * gets the operation's id. -errno with e filled (guests.h's codes). */
int op_move_start(master_t *m, const struct op_move_req *rq, char id[SPEC_ID_LEN + 1],
                  struct guest_err *e);
