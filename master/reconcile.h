/* A node's hello against the store: its inventory (each guest with the
 * generation it applied and whether it runs) is compared with the guests
 * the master placed there.
 *
 * - a guest behind on the node gets its spec again; one whose run state
 *   differs from the desired one gets start or stop;
 * - a guest the master placed there that the node lacks is `lost` if the
 *   node had acked it once (never re-created: its disk was there), or sent
 *   again if its create was never acked;
 * - a guest the node has that the master does not know is an orphan:
 *   listed on the node, never destroyed.
 *
 * Loop thread only. */
#pragma once

#include "master/core.h"
#include "proto/msg.h"

void reconcile_hello(master_t *m, const char *node, const struct msg_hello *h);
