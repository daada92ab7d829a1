/* Draining a node: the operation of kind "drain" (operations.h). The node is
 * cordoned and every guest on it moves to another node (op_move.h), `limit`
 * at a time; a guest that cannot move is reported with its reason and left
 * running (or stopped) where it is. Its progress counts guests: bytes_done
 * and bytes_total are guests moved and guests there at the start. */
#pragma once

#include <stdbool.h>

#include "master/guests.h"
#include "master/operations.h"

struct op_drain_req {
    const char *node; /* the node to empty */
    unsigned limit;   /* moves at a time, 1..32 */
    bool live;        /* near-live moves */
    bool renumber;    /* renumber addresses that cannot follow */
};

/* Cordons the node and records the drain; the tick starts the moves. id
 * gets the operation's id. -ENOENT (no node), -EINVAL (limit), -EBUSY (a
 * drain of it runs). */
int op_drain_start(master_t *m, const struct op_drain_req *rq, char id[SPEC_ID_LEN + 1],
                   struct guest_err *e);
