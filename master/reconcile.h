/* A node's report of what it has against the store: its hello, the
 * inventory it sends when asked, and the digest of every heartbeat.
 *
 * - a guest behind on the node gets its spec again; one the master wants
 *   stopped that runs gets stop. Nothing is ever started here: a guest that
 *   halted by itself (the node says its desired state is stopped) has its
 *   desired state follow, one that is not running for another reason is
 *   reported so, and only its restart policy on the node, or the operator,
 *   starts it;
 * - a guest the master placed there that the node lacks is `lost` if the
 *   node had acked it once (never re-created: its disk was there), or sent
 *   again if its create was never acked;
 * - a guest the node has that the master does not manage is an orphan
 *   (guests.h): recorded, its addresses held, never destroyed; the node is
 *   asked for its spec;
 * - a heartbeat whose digest (or counts) differs from what the master
 *   believes the node has makes the master ask for the inventory at once,
 *   so drift shows within one heartbeat.
 *
 * Loop thread only. */
#pragma once

#include "master/core.h"
#include "proto/msg.h"

void reconcile_hello(master_t *m, const char *node, const struct msg_hello *h);
/* The answer to inventory.get. */
void reconcile_inventory(master_t *m, const char *node, const struct msg_inventory *inv);
/* Compares a heartbeat with the store; on a difference asks for the inventory. */
void reconcile_heartbeat(master_t *m, const char *node, const struct msg_heartbeat *hb);
/* What the master believes node has: the digest, guest and running counts. */
void reconcile_expected(master_t *m, const char *node, uint64_t *digest, uint32_t *n,
                        uint32_t *running);
