/* Usage history: every guest's samples in the store, bounded by age.
 *
 *   raw samples        kept HISTORY_RAW_MS  (1 hour)
 *   1-minute rollups   kept HISTORY_1M_MS   (48 hours)
 *   1-hour rollups     kept HISTORY_1H_MS   (400 days)
 *
 * A rollup holds, per metric of proto/usage.h, the minimum, maximum and
 * average of a gauge and the increase of a counter. usage.c records each
 * sample (history_record) in the transaction of the node's batch: a raw
 * row, and the sample is added to the guest's minute in memory. A guest's
 * first sample of a new minute writes the finished minute (one row), and
 * the first minute of a new hour the finished hour, in the same
 * transaction; each write also trims that guest's rows past retention, so
 * the store's work is spread over the batches, a few pages per guest.
 * history_tick (the master's tick, in the batch too) writes what quiet
 * guests finished and drops expired raw rows. A restarted master rolls the
 * raw rows it has up again (a minute in progress at a stop was never
 * written) and reads the periods in progress back. A sample that arrives
 * for a minute already written (a late batch) rolls that minute, and its
 * hour, up again.
 *
 * Times are the samples' own (the node's wall clock, ms); "now" is the
 * master's clock (master_now_ms), which tests replace.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "master/core.h"
#include "master/db_usage.h"

#define HISTORY_RAW_MS     (3600ULL * 1000)
#define HISTORY_1M_MS      (48ULL * 3600 * 1000)
#define HISTORY_1H_MS      (400ULL * 86400 * 1000)
#define HISTORY_GRACE_MS   15000ULL /* a minute is rolled up this long after it ended */
#define HISTORY_TICK_MS    10000ULL /* how often history_tick does its work */
#define HISTORY_MAX_POINTS 10000    /* buckets in one series */

/* At start: rolls up what the raw samples hold (a master stopped mid-minute
 * never wrote that minute) and reads the periods in progress back. */
int history_init(master_t *m);

/* Records one sample: gauges as measured, counters as the increase since the
 * guest's previous sample. Returns 0 or -errno from the store. */
int history_record(master_t *m, const char *guest_id, uint64_t time_ms,
                   const uint64_t v[USAGE_N_METRICS]);

/* Rolls up and expires, at most once per HISTORY_TICK_MS of the master's
 * clock (force: now). Commits the batch first; runs its own transaction.
 * Returns 0 or -errno (the marks stay where they were). */
int history_tick(master_t *m, bool force);

/* A guest's history from <= time < to in buckets of step ms. The tier is
 * the finest one that still holds from (raw for the last hour, minutes for
 * 48 hours, hours beyond) and at least step; step is rounded up to a whole
 * number of the tier's periods (*step_out, *tier_out say which). Newer parts
 * than the tier's rollup mark come from the finer tiers, so the newest
 * bucket is as fresh as the last sample. Buckets without samples are left
 * out. Returns the number of buckets, -E2BIG past HISTORY_MAX_POINTS, or
 * -errno. */
int history_series(master_t *m, const char *guest_id, uint64_t from, uint64_t to, uint64_t step,
                   uint64_t *step_out, enum db_usage_tier *tier_out,
                   int (*cb)(void *userdata, const struct db_roll *r), void *userdata);

/* Billing periods. */
enum history_period {
    HISTORY_HOUR,
    HISTORY_DAY,
    HISTORY_MONTH,
};
int history_period_from_string(const char *s); /* the enum value or -EINVAL */
const char *history_period_name(enum history_period p);
/* The start (UTC) of the period holding t. */
uint64_t history_period_start(enum history_period p, uint64_t t);

/* One guest's traffic in one period. */
struct history_traffic {
    const char *guest_id; /* the guest (NULL by project) */
    const char *name;     /* its name (a deleted guest's last name; NULL by project) */
    const char *project;  /* its project (NULL when unknown: deleted before it was kept) */
    const char *period;   /* the period's start, RFC 3339 ("2024-05-01T00:00:00Z") */
    uint64_t rx_bytes;    /* bytes into the guest */
    uint64_t tx_bytes;    /* bytes out of the guest */
    uint64_t rx_packets;  /* packets in */
    uint64_t tx_packets;  /* packets out */
};
/* What a traffic answer covers. */
struct history_traffic_q {
    enum history_period period; /* hour, day, month */
    uint64_t from, to;          /* from <= time < to, whole hours */
    const char *guest_id;       /* one guest, NULL = every one */
    const char *project;        /* the guests of one project, NULL = every one */
    bool by_project;            /* summed per project instead of per guest */
};
/* Traffic per guest (or project) per period, ordered by guest name, guest id
 * and period (by project: project and period). Deleted guests are included:
 * their traffic still counts. Returns rows, -E2BIG beyond
 * cfg.traffic_max_rows rows (the answer is built in memory), or -errno. */
int history_traffic(master_t *m, const struct history_traffic_q *q,
                    int (*cb)(void *userdata, const struct history_traffic *t), void *userdata);

/* A deleted guest: its periods in progress are written and forgotten. */
void history_forget(master_t *m, const char *guest_id);
/* Frees the accumulators. */
void history_free(master_t *m);

/* Parses a time of the API: Unix seconds ("1714521600"), RFC 3339 in UTC
 * or with an offset ("2024-05-01T00:00:00Z", fractions allowed), "now", or
 * a duration before now ("-6h", "-90m", "-2d", "-30s"). 0 or -EINVAL. */
int history_parse_time(const char *s, uint64_t now, uint64_t *out_ms);
/* Parses a duration: seconds ("60") or with a unit ("5m", "1h", "1d"). */
int history_parse_duration(const char *s, uint64_t *out_ms);
