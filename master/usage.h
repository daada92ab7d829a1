/* Usage as the nodes report it: each guest's latest sample, the master's
 * own running counters, the history of every sample (history.h), the
 * events usage reveals (an OOM kill, a limit hit), and the FreeVPS trafstat
 * view built on the counters.
 *
 * Counters: a node's counters are cumulative per guest (its baselines
 * survive agent and guest restarts), but a guest that moves to another node
 * starts again from 0 there, and a node that lost its baselines goes
 * backwards. The master therefore counts increases: between two samples of
 * a guest the increase is the difference, or the new value when the counter
 * went backwards (it started again: what it counted since is new), never
 * negative. Its running totals (the sum of increases) only grow; they are
 * what the API, the metrics, billing and trafstat show.
 *
 * Everything a sample changes (latest sample, totals, history, events) is
 * written in the node batch's transaction and kept in the store
 * (usage_last), so a restarted master knows each guest's latest sample.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>

#include "master/core.h"
#include "proto/msg.h"

/* Takes the samples node sent of guests placed on it, each newer than the
 * last one kept; a time after now_ms (the master's clock) is taken as
 * now_ms. Returns how many samples were about guests not placed on node
 * (ignored: another node's, or stale reports of a guest that moved). */
unsigned usage_report(master_t *m, const char *node, const struct msg_usage *u, uint64_t now_ms);
/* The node's OOM notification: guest_id's memory cgroup has counted count
 * OOM kills. Emits guest.oom for kills not reported yet (by an earlier
 * notification or a usage sample's failcnt.oom): one event per kill
 * batch, never two for the same kill. */
void usage_oom(master_t *m, const char *node, const char *guest_id, uint64_t count);
/* The latest sample of a guest with its counters replaced by the master's
 * totals, NULL when none came yet (also read from the store after a
 * restart). */
const struct guest_usage *usage_latest(master_t *m, const char *guest_id);
/* Forgets a deleted guest (its history stays, under its name, until it
 * expires). */
void usage_forget(master_t *m, const char *guest_id);
/* Frees the cache. */
void usage_free(master_t *m);

/* A node's traffic.get (ref): answers with a traffic message of the
 * trafstat counters of every guest placed on node that has a sample,
 * resetting each (reset) in the batch's transaction; the answer goes after
 * its commit, or a nack when it failed (usage_trafstat.c). */
void usage_trafstat(master_t *m, const char *node, uint64_t ref, bool reset);

/* A guest's resettable traffic counter (FreeVPS trafstat): the totals
 * minus a mark stored at the last reset. */
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
