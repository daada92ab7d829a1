/* Usage history (history.h): recording, rolling up, expiring, reading. */
#include "master/history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/hmap.h"

/* A guest's rollups in the making: the minute its samples are being summed
 * into and the hour its finished minutes are being summed into. A finished
 * period is written as one row in the node batch's transaction when the
 * guest's first sample of the next one arrives (or, for a guest that went
 * quiet, by history_tick). */
struct history_acc {
    char id[SPEC_ID_LEN + 1]; /* the guest, the map's key */
    uint64_t minute;          /* start of the minute in min */
    struct db_roll min;       /* its samples so far */
    unsigned in_minute;       /* samples of the current minute */
    uint64_t pend_minute;     /* start of the finished minute in pend */
    struct db_roll pend;      /* a finished minute not written yet */
    unsigned spread;          /* pend is written with this + 1st sample of the next minute */
    uint64_t hour;            /* start of the hour in hour */
    struct db_roll hr;        /* its finished minutes so far */
    uint64_t last_ms;         /* master clock of the last sample (idle accumulators go) */
};

struct history {
    bool loaded;          /* caught up with the store at start */
    struct hmap_str accs; /* guest id -> struct history_acc * */
    uint64_t next_tick;   /* master clock of the next history_tick */
    uint64_t next_raw;    /* ... of the next raw expiry (each minute) */
    uint64_t next_rolls;  /* ... of the next expiry of idle guests' rollups (each hour) */
};

/* A sample later than this after the fact is kept out of history: the raw
 * rows its minute would be rolled up from again may be gone. */
#define HISTORY_LATE_MS   (50ULL * 60 * 1000)
#define HISTORY_FUTURE_MS (10ULL * 60 * 1000)
/* A guest's finished minute is written with one of its first samples of
 * the next minute (which one depends on the guest), so the writes of many
 * guests whose minutes end together spread over that minute's batches. */
#define HISTORY_SPREAD 6
/* Queries read rollups only of periods that ended this long ago, by when
 * every accumulator of them was written (the spread, the grace and a tick). */
#define HISTORY_SETTLED_MS (2 * DB_TIER_1M_MS + HISTORY_GRACE_MS + HISTORY_TICK_MS)

static uint64_t
floor_to(uint64_t t, uint64_t unit)
{
    return t - t % unit;
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t
max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static struct history_acc *
acc_get(struct history *h, const char *id, uint64_t t)
{
    struct history_acc *a = hmap_str_get(&h->accs, id);

    if (!a) {
        a = xcalloc(1, sizeof(*a));
        strscpy(a->id, id, sizeof(a->id));
        a->minute = floor_to(t, DB_TIER_1M_MS);
        a->hour = floor_to(t, DB_TIER_1H_MS);
        a->spread = (unsigned)(hmap_hash_str(id) % HISTORY_SPREAD);
        hmap_str_put(&h->accs, a->id, a);
    }
    return a;
}

/* The current minute and hour of every guest from what the store has
 * (a master restarted mid-period carries on with it). */
struct load_ctx {
    struct history *h; /* the accumulators */
    uint64_t now;      /* the periods in progress hold this */
};

static int
load_min(void *userdata, const char *id, const struct db_roll *r)
{
    struct load_ctx *c = userdata;
    struct history_acc *a = acc_get(c->h, id, c->now);
    a->min = *r;
    a->min.time_ms = a->minute;
    return 0;
}

static int
load_hour(void *userdata, const char *id, const struct db_roll *r)
{
    struct load_ctx *c = userdata;
    struct history_acc *a = acc_get(c->h, id, c->now);
    a->hr = *r;
    a->hr.time_ms = a->hour;
    return 0;
}

/* One guest's hour so far, from its written minutes. */
static int
load_hour_one(void *userdata, const char *id, const struct db_roll *r)
{
    struct history_acc *a = userdata;
    (void)id;
    a->hr = *r;
    a->hr.time_ms = a->hour;
    return 0;
}

/* At start: the minutes and hours the raw samples hold are rolled up again
 * (a master that stopped mid-minute never wrote it), then the periods in
 * progress are read back into accumulators. */
static int
history_load(master_t *m, struct history *h)
{
    uint64_t now = master_now_ms(m), first = 0;
    uint64_t minute = floor_to(now, DB_TIER_1M_MS), hour = floor_to(now, DB_TIER_1H_MS);
    int r = db_usage_raw_first(m->db, &first);

    if (r >= 0 && first && first < minute)
        r = db_usage_roll_1m(m->db, floor_to(first, DB_TIER_1M_MS), minute, NULL);
    if (r >= 0 && first && floor_to(first, DB_TIER_1H_MS) < hour)
        r = db_usage_roll_1h(m->db, floor_to(first, DB_TIER_1H_MS), hour, NULL);
    struct load_ctx c = {h, now};
    if (r >= 0)
        r = db_usage_sums(m->db, DB_TIER_RAW, minute, minute + DB_TIER_1M_MS, NULL, load_min, &c);
    if (r >= 0)
        r = db_usage_sums(m->db, DB_TIER_1M, hour, minute, NULL, load_hour, &c);
    return r < 0 ? r : 0;
}

static struct history *
history_of(master_t *m)
{
    if (!m->history)
        m->history = xcalloc(1, sizeof(*m->history));
    struct history *h = m->history;
    if (!h->loaded) {
        int r = history_load(m, h);
        if (r < 0)
            log_warning("cannot read the usage history back: %s; trying again", strerror(-r));
        h->loaded = r >= 0;
    }
    return h;
}

int
history_init(master_t *m)
{
    return history_of(m)->loaded ? 0 : -EIO;
}

void
history_free(master_t *m)
{
    struct history *h = m->history;

    if (!h)
        return;
    for (size_t i = 0; i < h->accs.cap; i++)
        if (h->accs.slots && h->accs.slots[i].key)
            free(h->accs.slots[i].val);
    hmap_str_free(&h->accs);
    free(h);
    m->history = NULL;
}

/* Writes the hour row and trims the guest's hours past retention. */
static int
flush_hour(master_t *m, struct history_acc *a)
{
    int r = 0;

    if (a->hr.n) {
        a->hr.time_ms = a->hour;
        r = db_usage_roll_put(m->db, DB_TIER_1H, a->id, &a->hr);
        uint64_t now = master_now_ms(m);
        if (r >= 0 && now > HISTORY_1H_MS)
            r = db_usage_trim(m->db, DB_TIER_1H, a->id, now - HISTORY_1H_MS);
    }
    a->hr = (struct db_roll){0};
    return r;
}

/* Writes the finished minute (trimming the guest's minutes past retention)
 * and adds it to its hour, writing the hour first when the minute is in a
 * newer one. */
static int
flush_pend(master_t *m, struct history_acc *a)
{
    uint64_t now = master_now_ms(m);
    int r = 0;

    if (!a->pend.n)
        return 0;
    a->pend.time_ms = a->pend_minute;
    r = db_usage_roll_put(m->db, DB_TIER_1M, a->id, &a->pend);
    if (r >= 0 && now > HISTORY_1M_MS)
        r = db_usage_trim(m->db, DB_TIER_1M, a->id, now - HISTORY_1M_MS);
    uint64_t hour = floor_to(a->pend_minute, DB_TIER_1H_MS);
    if (r >= 0 && hour > a->hour) {
        r = flush_hour(m, a);
        a->hour = hour;
    }
    db_roll_merge(&a->hr, &a->pend);
    a->pend = (struct db_roll){0};
    return r;
}

/* The current minute is finished: it waits in pend (an older one still
 * there is written first). */
static int
finish_minute(master_t *m, struct history_acc *a)
{
    int r = flush_pend(m, a);

    if (a->min.n) {
        a->pend = a->min;
        a->pend_minute = a->minute;
    }
    a->min = (struct db_roll){0};
    a->in_minute = 0;
    return r;
}

/* A sample for a minute already written: that minute again from the raw
 * samples, and its hour (the accumulator's, or the written row). */
static int
late_sample(master_t *m, struct history_acc *a, uint64_t minute)
{
    uint64_t hour = floor_to(minute, DB_TIER_1H_MS);
    int r = db_usage_roll_1m(m->db, minute, minute + DB_TIER_1M_MS, a->id);

    if (r < 0)
        return r;
    if (hour < a->hour)
        return db_usage_roll_1h(m->db, hour, hour + DB_TIER_1H_MS, a->id);
    /* Its hour is in the making: summed again from the written minutes. */
    a->hr = (struct db_roll){0};
    return db_usage_sums(m->db, DB_TIER_1M, a->hour, a->hour + DB_TIER_1H_MS, a->id, load_hour_one,
                         a);
}

int
history_record(master_t *m, const char *guest_id, uint64_t time_ms,
               const uint64_t v[USAGE_N_METRICS])
{
    struct history *h = history_of(m);
    uint64_t now = master_now_ms(m), minute = floor_to(time_ms, DB_TIER_1M_MS);
    struct db_roll one = {.time_ms = minute, .n = 1};

    if (time_ms + HISTORY_LATE_MS < now || time_ms > now + HISTORY_FUTURE_MS) {
        log_debug("guest %s: a sample of %llu is too far from now for history, ignoring", guest_id,
                  (unsigned long long)time_ms);
        return 0;
    }
    int r = db_usage_raw_insert(m->db, guest_id, time_ms, v);
    if (r < 0)
        return r;
    struct history_acc *a = acc_get(h, guest_id, time_ms);
    a->last_ms = now;
    for (unsigned i = 0; i < USAGE_N_METRICS; i++)
        one.min[i] = one.max[i] = one.sum[i] = v[i];
    if (minute < a->minute && minute == a->pend_minute && a->pend.n) {
        db_roll_merge(&a->pend, &one); /* not written yet: simply late */
        return 0;
    }
    if (minute < a->minute)
        return late_sample(m, a, minute);
    if (minute > a->minute) {
        r = finish_minute(m, a);
        a->minute = minute;
    }
    db_roll_merge(&a->min, &one);
    if (r >= 0 && a->pend.n && ++a->in_minute > a->spread)
        r = flush_pend(m, a);
    return r;
}

/* Writes what a quiet guest finished; forgets accumulators idle for long. */
static int
flush_quiet(master_t *m, struct history *h, uint64_t now)
{
    int r = 0;

    for (size_t i = 0; i < h->accs.cap && r >= 0; i++) {
        if (!h->accs.slots || !h->accs.slots[i].key)
            continue;
        struct history_acc *a = h->accs.slots[i].val;
        /* A finished minute waits its turn for a minute at most. */
        if (a->min.n && a->minute + DB_TIER_1M_MS + HISTORY_GRACE_MS <= now)
            r = finish_minute(m, a);
        if (r >= 0 && a->pend.n && a->pend_minute + 2 * DB_TIER_1M_MS + HISTORY_GRACE_MS <= now)
            r = flush_pend(m, a);
        /* An hour is whole once none of its minutes waits any more. */
        if (r >= 0 && a->hr.n && a->hour + DB_TIER_1H_MS + HISTORY_GRACE_MS <= now &&
            (!a->pend.n || floor_to(a->pend_minute, DB_TIER_1H_MS) > a->hour) &&
            (!a->min.n || floor_to(a->minute, DB_TIER_1H_MS) > a->hour))
            r = flush_hour(m, a);
        if (r >= 0 && !a->min.n && !a->pend.n && !a->hr.n && a->last_ms + 2 * DB_TIER_1H_MS < now) {
            hmap_str_del(&h->accs, a->id);
            free(a);
            i = (size_t)-1; /* the table moved: from the start */
        }
    }
    return r;
}

int
history_tick(master_t *m, bool force)
{
    struct history *h = history_of(m);
    uint64_t now = master_now_ms(m);
    int r = 0;

    if (!h->loaded || (!force && now < h->next_tick))
        return 0;
    h->next_tick = now + HISTORY_TICK_MS;
    /* The work joins the node batch's transaction. */
    master_batch_begin(m);
    r = flush_quiet(m, h, now);
    if (r >= 0 && (force || now >= h->next_raw) && now > HISTORY_RAW_MS) {
        /* Whole minutes go, so a minute rolled up again at start is complete. */
        h->next_raw = now + DB_TIER_1M_MS;
        r = db_usage_expire(m->db, DB_TIER_RAW, floor_to(now - HISTORY_RAW_MS, DB_TIER_1M_MS));
    }
    if (r >= 0 && (force || now >= h->next_rolls) && now > HISTORY_1M_MS) {
        /* Guests that still report trim their own rows; this is for the rest. */
        h->next_rolls = now + DB_TIER_1H_MS;
        r = db_usage_expire(m->db, DB_TIER_1M, floor_to(now - HISTORY_1M_MS, DB_TIER_1H_MS));
        if (r >= 0 && now > HISTORY_1H_MS)
            r = db_usage_expire(m->db, DB_TIER_1H, now - HISTORY_1H_MS);
        if (r >= 0 && now > HISTORY_1H_MS)
            r = db_usage_last_expire(m->db, now - HISTORY_1H_MS);
    }
    if (r < 0)
        log_warning("cannot roll usage history up: %s; trying again later", strerror(-r));
    return r < 0 ? r : 0;
}

void
history_forget(master_t *m, const char *guest_id)
{
    struct history *h = m->history;
    struct history_acc *a = h ? hmap_str_get(&h->accs, guest_id) : NULL;

    if (!a)
        return;
    /* Its last periods are written: a deleted guest's history stays. */
    if (finish_minute(m, a) < 0 || flush_pend(m, a) < 0 || flush_hour(m, a) < 0)
        log_debug("guest %s: cannot write its last usage periods, ignoring", guest_id);
    hmap_str_del(&h->accs, guest_id);
    free(a);
}

/* ---- series ---- */

struct series {
    struct db_roll *rolls; /* buckets so far, oldest first */
    size_t n;              /* entries in rolls */
    size_t cap;            /* allocated */
};

static int
series_add(void *userdata, const struct db_roll *r)
{
    struct series *s = userdata;

    if (s->n && s->rolls[s->n - 1].time_ms == r->time_ms) {
        db_roll_merge(&s->rolls[s->n - 1], r);
        return 0;
    }
    if (s->n == HISTORY_MAX_POINTS)
        return -E2BIG;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->rolls = xrealloc(s->rolls, s->cap * sizeof(*s->rolls));
    }
    s->rolls[s->n++] = *r;
    return 0;
}

static const uint64_t tier_period[DB__TIER_MAX] = {1, DB_TIER_1M_MS, DB_TIER_1H_MS};

/* The end of the periods of a tier that are written for every guest. */
static uint64_t
settled(uint64_t now, uint64_t period)
{
    return now > HISTORY_SETTLED_MS ? floor_to(now - HISTORY_SETTLED_MS, period) : 0;
}

/* The finest tier that still has data at from, and at least step. */
static enum db_usage_tier
tier_for(uint64_t now, uint64_t from, uint64_t step)
{
    if (step >= DB_TIER_1H_MS || from + HISTORY_1M_MS < now)
        return DB_TIER_1H;
    if (step >= DB_TIER_1M_MS || from + HISTORY_RAW_MS < now)
        return DB_TIER_1M;
    return DB_TIER_RAW;
}

int
history_series(master_t *m, const char *guest_id, uint64_t from, uint64_t to, uint64_t step,
               uint64_t *step_out, enum db_usage_tier *tier_out,
               int (*cb)(void *userdata, const struct db_roll *r), void *userdata)
{
    uint64_t now = master_now_ms(m);
    enum db_usage_tier t = tier_for(now, from, step ? step : 1);
    uint64_t p = tier_period[t];
    struct series s = {0};
    int r = 0;

    step = step < p ? p : (step + p - 1) / p * p;
    *step_out = step;
    *tier_out = t;
    if (to <= from)
        return 0;
    if ((to - from) / step >= HISTORY_MAX_POINTS)
        return -E2BIG;
    /* Coarse tiers up to their marks, the finer ones after. */
    uint64_t cut[DB__TIER_MAX] = {to, min_u64(to, settled(now, DB_TIER_1M_MS)),
                                  min_u64(to, settled(now, DB_TIER_1H_MS))};
    uint64_t start = from;
    for (int k = (int)t; k >= 0 && r >= 0; k--) {
        uint64_t end = k == (int)DB_TIER_RAW ? to : cut[k];
        if (k < (int)t)
            start = max_u64(from, cut[k + 1]);
        if (end > start)
            r = db_usage_series(m->db, (enum db_usage_tier)k, guest_id, start, end, step,
                                series_add, &s);
    }
    for (size_t i = 0; r >= 0 && i < s.n; i++)
        if (cb(userdata, &s.rolls[i]))
            break;
    free(s.rolls);
    return r < 0 ? r : (int)s.n;
}

/* ---- billing ---- */

static const char *const period_names[] = {"hour", "day", "month"};
static const char *const period_fmt[] = {"%Y-%m-%dT%H:00:00.000Z", "%Y-%m-%dT00:00:00.000Z",
                                         "%Y-%m-01T00:00:00.000Z"};

int
history_period_from_string(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(period_names); i++)
        if (strcmp(s, period_names[i]) == 0)
            return (int)i;
    return -EINVAL;
}

const char *
history_period_name(enum history_period p)
{
    return (unsigned)p < ARRAY_SIZE(period_names) ? period_names[p] : "hour";
}

uint64_t
history_period_start(enum history_period p, uint64_t t)
{
    time_t secs = (time_t)(t / 1000);
    struct tm tm;

    if (p == HISTORY_HOUR)
        return floor_to(t, DB_TIER_1H_MS);
    if (p == HISTORY_DAY)
        return floor_to(t, 24 * DB_TIER_1H_MS);
    gmtime_r(&secs, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (uint64_t)timegm(&tm) * 1000;
}

/* One guest (or project) and period being summed; the strings point into it. */
struct traffic_acc {
    char key[NAME_MAX_LEN + 48];    /* "guest_id\tperiod" or "project\tperiod" */
    struct history_traffic t;       /* the sums; strings point into key, name, project */
    char name[NAME_MAX_LEN + 1];    /* the guest's name ("" by project) */
    char project[NAME_MAX_LEN + 1]; /* its project, "" when unknown */
};

/* Who a guest is, read once per answer. */
struct traffic_who {
    char *name;    /* its name (the id when unknown) */
    char *project; /* its project, NULL when unknown */
};

struct traffic_sum {
    master_t *m;                       /* for names */
    const struct history_traffic_q *q; /* what is asked */
    struct hmap_str map;               /* key -> struct traffic_acc * */
    struct hmap_str who;               /* guest_id -> struct traffic_who * */
    struct traffic_acc **all;          /* the same, in arrival order */
    size_t n;                          /* entries in all */
    size_t cap;                        /* allocated */
    size_t max;                        /* rows allowed (the answer's bound) */
};

static const struct traffic_who *
who_of(struct traffic_sum *s, const char *guest_id)
{
    struct traffic_who *w = hmap_str_get(&s->who, guest_id);

    if (w)
        return w;
    w = xcalloc(1, sizeof(*w));
    if (db_usage_who(s->m->db, guest_id, &w->name, &w->project) < 0 || !w->name) {
        free(w->name);
        w->name = xstrdup(guest_id);
    }
    hmap_str_put(&s->who, xstrdup(guest_id), w);
    return w;
}

static struct traffic_acc *
acc_new(struct traffic_sum *s, const char *key, const struct traffic_who *w)
{
    struct traffic_acc *a = xcalloc(1, sizeof(*a));

    strscpy(a->key, key, sizeof(a->key));
    a->key[strcspn(a->key, "\t")] = '\0';
    a->t.period = a->key + strlen(a->key) + 1;
    strscpy(a->project, w->project ? w->project : "", sizeof(a->project));
    a->t.project = w->project ? a->project : NULL;
    if (!s->q->by_project) {
        a->t.guest_id = a->key;
        strscpy(a->name, w->name, sizeof(a->name));
        a->t.name = a->name;
    }
    /* The map's key is the whole "id\tperiod": kept in a copy. */
    hmap_str_put(&s->map, xstrdup(key), a);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->all = xrealloc(s->all, s->cap * sizeof(*s->all));
    }
    s->all[s->n++] = a;
    return a;
}

static int
traffic_add(void *userdata, const struct db_traffic_row *r)
{
    struct traffic_sum *s = userdata;
    char key[NAME_MAX_LEN + 48];

    if (!r->guest_id || !r->period)
        return 0;
    const struct traffic_who *w = who_of(s, r->guest_id);
    if (s->q->project && (!w->project || strcmp(w->project, s->q->project) != 0))
        return 0;
    snprintf(key, sizeof(key), "%s\t%s",
             s->q->by_project ? (w->project ? w->project : "") : r->guest_id, r->period);
    struct traffic_acc *a = hmap_str_get(&s->map, key);
    if (!a) {
        if (s->n >= s->max)
            return -E2BIG;
        a = acc_new(s, key, w);
    }
    a->t.rx_bytes += r->rx_bytes;
    a->t.tx_bytes += r->tx_bytes;
    a->t.rx_packets += r->rx_packets;
    a->t.tx_packets += r->tx_packets;
    return 0;
}

/* By guest name, id and period; by project and period. */
static int
traffic_cmp(const void *x, const void *y)
{
    const struct traffic_acc *a = *(struct traffic_acc *const *)x;
    const struct traffic_acc *b = *(struct traffic_acc *const *)y;
    int c = strcmp(a->name, b->name);

    if (!c)
        c = strcmp(a->key, b->key); /* the guest's id, or the project */
    return c ? c : strcmp(a->t.period, b->t.period);
}

static void
traffic_free(struct traffic_sum *s)
{
    for (size_t i = 0; i < s->map.cap; i++)
        if (s->map.slots && s->map.slots[i].key)
            free((char *)s->map.slots[i].key);
    hmap_str_free(&s->map);
    for (size_t i = 0; i < s->who.cap; i++)
        if (s->who.slots && s->who.slots[i].key) {
            struct traffic_who *w = s->who.slots[i].val;
            free((char *)s->who.slots[i].key);
            free(w->name);
            free(w->project);
            free(w);
        }
    hmap_str_free(&s->who);
    for (size_t i = 0; i < s->n; i++)
        free(s->all[i]);
    free(s->all);
}

int
history_traffic(master_t *m, const struct history_traffic_q *q,
                int (*cb)(void *userdata, const struct history_traffic *t), void *userdata)
{
    uint64_t now = master_now_ms(m), from = q->from, to = q->to;
    struct traffic_sum s = {.m = m, .q = q, .max = m->cfg.traffic_max_rows};
    const char *fmt = period_fmt[(unsigned)q->period < ARRAY_SIZE(period_fmt) ? q->period : 0];
    /* usage_1h up to its mark, usage_1m up to its own, raw after. */
    uint64_t bound[DB__TIER_MAX + 1] = {
        from, max_u64(from, min_u64(to, settled(now, DB_TIER_1H_MS))),
        max_u64(from, min_u64(to, settled(now, DB_TIER_1M_MS))), to};
    static const enum db_usage_tier order[DB__TIER_MAX] = {DB_TIER_1H, DB_TIER_1M, DB_TIER_RAW};
    int r = 0;

    for (int k = 0; k < DB__TIER_MAX && r >= 0; k++) {
        uint64_t start = bound[k], end = bound[k + 1];
        if (end > start)
            r = db_usage_traffic(m->db, order[k], fmt, start, end, q->guest_id, traffic_add, &s);
    }
    if (r >= 0) {
        if (s.n)
            qsort(s.all, s.n, sizeof(*s.all), traffic_cmp);
        for (size_t i = 0; i < s.n; i++)
            if (cb(userdata, &s.all[i]->t))
                break;
    }
    r = r < 0 ? r : (int)s.n;
    traffic_free(&s);
    return r;
}

/* ---- parsing the API's times ---- */

int
history_parse_duration(const char *s, uint64_t *out_ms)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t unit = 1000;
    if (errno || v > 100ULL * 365 * 86400)
        return -EINVAL;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        unit = 60000, end++;
    else if (*end == 'h')
        unit = 3600000, end++;
    else if (*end == 'd')
        unit = 86400000, end++;
    if (*end)
        return -EINVAL;
    *out_ms = v * unit;
    return 0;
}

/* RFC 3339: date, 'T' (or a space), time, optional fraction, Z or ±hh:mm. */
static int
parse_rfc3339(const char *s, uint64_t *out_ms)
{
    struct tm tm = {0};
    int n = 0, oh = 0, om = 0;
    unsigned ms = 0;

    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n == 0)
        return -EINVAL;
    s += n;
    if (*s == '.') {
        unsigned scale = 100;
        for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
            ms += (unsigned)(*s - '0') * scale;
    }
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if ((*s == '+' || *s == '-') && sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) == 2) {
        int sign = *s == '-' ? -1 : 1;
        oh *= sign;
        om *= sign;
        s += 1 + n;
    } else {
        return -EINVAL;
    }
    if (*s || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
        return -EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm) - (time_t)oh * 3600 - (time_t)om * 60;
    if (t < 0)
        return -EINVAL;
    *out_ms = (uint64_t)t * 1000 + ms;
    return 0;
}

int
history_parse_time(const char *s, uint64_t now, uint64_t *out_ms)
{
    uint64_t d;

    if (!s || !*s)
        return -EINVAL;
    if (!strcmp(s, "now")) {
        *out_ms = now;
        return 0;
    }
    if (*s == '-') {
        if (history_parse_duration(s + 1, &d) < 0 || d > now)
            return -EINVAL;
        *out_ms = now - d;
        return 0;
    }
    if (strchr(s, '-'))
        return parse_rfc3339(s, out_ms);
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    if (strlen(s) > 12)
        return -EINVAL;
    *out_ms = strtoull(s, NULL, 10) * 1000;
    return 0;
}
