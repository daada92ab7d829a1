/* The latest usage sample of every guest, as the nodes report it, in memory
 * (a restarted master knows none until the next report), and the FreeVPS
 * trafstat view built on it.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>

#include "master/core.h"
#include "proto/msg.h"

/* Keeps each sample node sent about a guest placed on node that is not
 * older than the one the master has; a time after now_ms (wall clock) is
 * taken as now_ms. Returns how many samples were about guests of other
 * nodes (refused). */
unsigned usage_report(master_t *m, const char *node, const struct msg_usage *u, uint64_t now_ms);
/* The latest sample of a guest, NULL when none came yet. */
const struct guest_usage *usage_latest(master_t *m, const char *guest_id);
/* Forgets a deleted guest. */
void usage_forget(master_t *m, const char *guest_id);
/* Frees the cache. */
void usage_free(master_t *m);

/* A guest's resettable traffic counter (FreeVPS trafstat): the node's
 * cumulative counters are monotonic (baselines survive restarts), so the
 * resettable counter is the latest sample minus a mark stored at the last
 * reset. */
struct usage_traffic {
    uint64_t rx_bytes;   /* bytes into the guest since the mark */
    uint64_t tx_bytes;   /* bytes out of the guest since the mark */
    uint64_t rx_packets; /* packets in since the mark */
    uint64_t tx_packets; /* packets out since the mark */
    uint64_t since_ms;   /* wall clock of the mark, 0 = never reset */
    uint64_t sampled_ms; /* wall clock of the sample */
};
/* The counter of guest_id. With reset, the mark moves to the sample in the
 * caller's transaction. Returns 0, -ENODATA when no sample came yet, or
 * -errno from the store. */
int usage_traffic(master_t *m, const char *guest_id, bool reset, struct usage_traffic *out);
