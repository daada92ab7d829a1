/* The usage tables of the store: each guest's latest sample and running
 * counters (usage_last), its raw samples (usage_raw) and their 1-minute and
 * 1-hour rollups (usage_1m, usage_1h).
 * Schema 7 (db_schema.c); the columns follow proto/usage.h's metric vector.
 *
 * A row of any tier is a struct db_roll: n samples, and per metric of the
 * vector a minimum, a maximum and a sum for gauges, the increase (in sum)
 * for counters. A raw sample is a roll of one.
 *
 * Same rules as db.h: loop thread only, -errno results. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "master/db.h"
#include "proto/usage.h"

/* The store's tiers, finest first. */
enum db_usage_tier {
    DB_TIER_RAW, /* usage_raw: every sample */
    DB_TIER_1M,  /* usage_1m: one row per guest and minute */
    DB_TIER_1H,  /* usage_1h: one row per guest and hour */
    DB__TIER_MAX,
};

#define DB_TIER_1M_MS (60ULL * 1000)
#define DB_TIER_1H_MS (3600ULL * 1000)

/* Aggregated samples of one guest over one period. */
struct db_roll {
    uint64_t time_ms;              /* start of the period (a raw sample's own time) */
    uint64_t n;                    /* samples aggregated */
    uint64_t min[USAGE_N_METRICS]; /* gauges: the lowest value; counters: unused */
    uint64_t max[USAGE_N_METRICS]; /* gauges: the highest value; counters: unused */
    uint64_t sum[USAGE_N_METRICS]; /* gauges: the sum (average = sum / n); counters: increase */
};

/* Whether metric i of the vector is a counter (USAGE_COUNTER) or a gauge. */
bool db_usage_is_counter(unsigned i);
/* The column name of metric i ("memory", "failcnt_oom"). */
const char *db_usage_metric_name(unsigned i);

/* Folds b into a (same period or not: n adds, min and max widen, sums add). */
void db_roll_merge(struct db_roll *a, const struct db_roll *b);

/* A guest's latest sample and running counters. */
struct db_usage_last {
    const char *guest_id;             /* the guest (borrowed) */
    const char *name;                 /* its name when last seen (borrowed) */
    const char *node;                 /* the node that sent the sample (borrowed, may be NULL) */
    uint64_t time_ms;                 /* the sample's time */
    uint64_t sample[USAGE_N_METRICS]; /* the node's values (counters cumulative on the node) */
    uint64_t totals[USAGE_N_METRICS]; /* the master's counters: the sum of increases */
    bool deleted;                     /* the guest is gone; the row names its history */
    uint64_t oom_seen;                /* the node's OOM count events were emitted up to */
};

int db_usage_last_put(db_t *db, const struct db_usage_last *l);
/* Every row, in guest id order; the record borrows its strings for the call. */
int db_usage_last_list(db_t *db, int (*cb)(void *userdata, const struct db_usage_last *l),
                       void *userdata);
/* One guest's row through cb: 0, or -ENOENT when it has none. */
int db_usage_last_get(db_t *db, const char *guest_id,
                      int (*cb)(void *userdata, const struct db_usage_last *l), void *userdata);
/* Marks the guest's row deleted (its history stays until it expires). */
int db_usage_last_mark_deleted(db_t *db, const char *guest_id);
/* The name of a guest in usage_last: a copy, or NULL when unknown. */
char *db_usage_name(db_t *db, const char *guest_id);
/* The name and project (copies; project NULL when unknown) of a guest in
 * usage_last: 0, -ENOENT, or -errno. */
int db_usage_who(db_t *db, const char *guest_id, char **name, char **project);

/* Inserts a raw sample (gauges as values, counters as increases); a second
 * sample of the guest with the same time is ignored. */
int db_usage_raw_insert(db_t *db, const char *guest_id, uint64_t time_ms,
                        const uint64_t v[USAGE_N_METRICS]);

/* Rolls raw samples with from <= time < to into usage_1m (every guest, or
 * only guest_id when not NULL), replacing the minutes' rows. */
int db_usage_roll_1m(db_t *db, uint64_t from, uint64_t to, const char *guest_id);
/* The same from usage_1m into usage_1h. */
int db_usage_roll_1h(db_t *db, uint64_t from, uint64_t to, const char *guest_id);
/* Deletes the tier's rows with time < before. Returns rows deleted. */
int db_usage_expire(db_t *db, enum db_usage_tier t, uint64_t before);
/* Deletes deleted guests' usage_last rows whose last sample is older than
 * before. Returns rows deleted. */
int db_usage_last_expire(db_t *db, uint64_t before);

/* Writes one rollup row of tier t (1M or 1H), replacing the period's. */
int db_usage_roll_put(db_t *db, enum db_usage_tier t, const char *guest_id,
                      const struct db_roll *r);
/* Deletes the guest's rows of tier t (1M or 1H) with time < before. */
int db_usage_trim(db_t *db, enum db_usage_tier t, const char *guest_id, uint64_t before);
/* Per guest, the aggregate of tier t's rows (RAW or 1M) with from <= time
 * < to (only guest_id's when not NULL; 1M only), as one roll (time_ms 0). */
int db_usage_sums(db_t *db, enum db_usage_tier t, uint64_t from, uint64_t to, const char *guest_id,
                  int (*cb)(void *userdata, const char *guest_id, const struct db_roll *r),
                  void *userdata);
/* The oldest raw sample's time, 0 when there is none. */
int db_usage_raw_first(db_t *db, uint64_t *time_ms);

/* The guest's rows of tier t with from <= time < to, aggregated into
 * buckets of step ms (bucket start = time rounded down to step), oldest
 * first. step must be > 0. Returns buckets visited or -errno. */
int db_usage_series(db_t *db, enum db_usage_tier t, const char *guest_id, uint64_t from,
                    uint64_t to, uint64_t step, int (*cb)(void *userdata, const struct db_roll *r),
                    void *userdata);

/* Traffic of a guest in one period. */
struct db_traffic_row {
    const char *guest_id; /* the guest (borrowed) */
    const char *period;   /* the period's start, as strftime(fmt) made it (borrowed) */
    uint64_t rx_bytes;    /* bytes into the guest */
    uint64_t tx_bytes;    /* bytes out of the guest */
    uint64_t rx_packets;  /* packets in */
    uint64_t tx_packets;  /* packets out */
};
/* Traffic increases of tier t with from <= time < to, grouped by guest and
 * by strftime(fmt) of the time (UTC); one guest when guest_id is not NULL. */
int db_usage_traffic(db_t *db, enum db_usage_tier t, const char *fmt, uint64_t from, uint64_t to,
                     const char *guest_id,
                     int (*cb)(void *userdata, const struct db_traffic_row *r), void *userdata);

/* Checks that the tables have the columns the metric vector needs (a
 * build whose proto/usage.h grew without a migration). 0 or -EPROTO. */
int db_usage_check_schema(db_t *db, char *err, size_t errlen);
