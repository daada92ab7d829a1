/* The master's Prometheus metrics (GET /metrics, text exposition format
 * 0.0.4): nodes and guests by state, each node's capacity and allocation,
 * each guest's usage (its latest sample, counters as the master's totals,
 * so they never go backwards) with guest and node labels, placements and
 * dispatch with latency histograms, HTTP requests by route and status.
 * A scrape may select a slice (a node's or a project's guests); one of more
 * than cfg.metrics_guests_max guests leaves each guest's series out, since
 * the loop renders it all at once and answers nothing else meanwhile.
 *
 * The counters below are fed by the modules that see the events; the rest
 * is read from the registry, the scheduler, the store and usage.c when a
 * scrape comes. Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/core.h"
#include "master/dispatch.h"

/* Counts HTTP answers (installed as httpd's observer by master_new). */
void metrics_http_observer(void *userdata, const struct http_req *req, unsigned status);
/* A placement that took ns: r 0 placed, -EXFULL/-ENOSPC unplaceable, other
 * errors. */
void metrics_placement(master_t *m, int r, uint64_t ns);
/* A node's answer to a command queued at d->queued_ms (monotonic ms). */
void metrics_dispatch_answer(master_t *m, const struct dispatch_done *d, bool acked);

/* Which guests a scrape covers (GET /metrics?node=&project=). */
struct metrics_select {
    const char *node;    /* only this node's guests, NULL = any */
    const char *project; /* only this project's guests, NULL = any */
};

/* The exposition text (malloc'd, *len bytes) of sel (NULL = everything):
 * unfiltered, the node and control families and the guest families; a
 * selection, only its guests' families. Each guest's series are left out,
 * and vfleet_metrics_guests_omitted says how many, when the selection
 * holds more than cfg.metrics_guests_max guests. Returns 0 or -errno. */
int metrics_render(master_t *m, const struct metrics_select *sel, char **out, size_t *len);
void metrics_free(master_t *m);
