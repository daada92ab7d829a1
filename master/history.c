/* Usage history (history.h): recording, rolling up, expiring, reading. */
#include "master/history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/hmap.h"

/* The rollup marks: everything before wm_1m is in usage_1m, everything
 * before wm_1h in usage_1h. Mirrors usage_meta; changed only after the
 * commit that stored them. */
struct history {
    bool loaded;        /* read from the store */
    uint64_t wm_1m;     /* end (exclusive) of the minutes rolled up */
    uint64_t wm_1h;     /* end (exclusive) of the hours rolled up */
    uint64_t next_tick; /* master clock of the next history_tick's work */
};

/* A sample later than this after the fact is kept out of history: the raw
 * rows its minute would be rolled up from again may be gone. */
#define HISTORY_LATE_MS   (50ULL * 60 * 1000)
#define HISTORY_FUTURE_MS (10ULL * 60 * 1000)

static const char meta_1m[] = "rolled_1m";
static const char meta_1h[] = "rolled_1h";

static struct history *
history_of(master_t *m)
{
    if (!m->history)
        m->history = xcalloc(1, sizeof(*m->history));
    struct history *h = m->history;
    if (!h->loaded) {
        if (db_usage_meta_get(m->db, meta_1m, &h->wm_1m) < 0 ||
            db_usage_meta_get(m->db, meta_1h, &h->wm_1h) < 0)
            return h; /* try again next time; the marks stay 0 meanwhile */
        h->loaded = true;
    }
    return h;
}

void
history_free(master_t *m)
{
    free(m->history);
    m->history = NULL;
}

static uint64_t
floor_to(uint64_t t, uint64_t unit)
{
    return t - t % unit;
}

int
history_record(master_t *m, const char *guest_id, uint64_t time_ms,
               const uint64_t v[USAGE_N_METRICS])
{
    struct history *h = history_of(m);
    uint64_t now = master_now_ms(m);

    if (time_ms + HISTORY_LATE_MS < now || time_ms > now + HISTORY_FUTURE_MS) {
        log_debug("guest %s: a sample of %llu is too far from now for history, ignoring", guest_id,
                  (unsigned long long)time_ms);
        return 0;
    }
    int r = db_usage_raw_insert(m->db, guest_id, time_ms, v);
    if (r < 0 || time_ms >= h->wm_1m)
        return r;
    /* Its minute was rolled up already: again, with this sample. */
    uint64_t min = floor_to(time_ms, DB_TIER_1M_MS), hour = floor_to(time_ms, DB_TIER_1H_MS);
    r = db_usage_roll_1m(m->db, min, min + DB_TIER_1M_MS, guest_id);
    if (r >= 0 && hour < h->wm_1h)
        r = db_usage_roll_1h(m->db, hour, hour + DB_TIER_1H_MS, guest_id);
    return r;
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

/* Rolls up to *wm_1m, *wm_1h and expires, inside the caller's transaction. */
static int
roll_and_expire(master_t *m, const struct history *h, uint64_t now, uint64_t *wm_1m,
                uint64_t *wm_1h)
{
    uint64_t target_1m = now > HISTORY_GRACE_MS ? floor_to(now - HISTORY_GRACE_MS, DB_TIER_1M_MS)
                                                : 0;
    int r = 0;

    *wm_1m = max_u64(h->wm_1m, target_1m);
    if (*wm_1m > h->wm_1m)
        r = db_usage_roll_1m(m->db, h->wm_1m, *wm_1m, NULL);
    *wm_1h = max_u64(h->wm_1h, floor_to(*wm_1m, DB_TIER_1H_MS));
    if (r >= 0 && *wm_1h > h->wm_1h)
        r = db_usage_roll_1h(m->db, h->wm_1h, *wm_1h, NULL);
    /* Nothing goes before it was rolled into the next tier. */
    if (r >= 0 && now > HISTORY_RAW_MS)
        r = db_usage_expire(m->db, DB_TIER_RAW, min_u64(now - HISTORY_RAW_MS, *wm_1m));
    if (r >= 0 && now > HISTORY_1M_MS)
        r = db_usage_expire(m->db, DB_TIER_1M, min_u64(now - HISTORY_1M_MS, *wm_1h));
    if (r >= 0 && now > HISTORY_1H_MS)
        r = db_usage_expire(m->db, DB_TIER_1H, now - HISTORY_1H_MS);
    if (r >= 0 && now > HISTORY_1H_MS)
        r = db_usage_last_expire(m->db, now - HISTORY_1H_MS);
    if (r >= 0)
        r = db_usage_meta_put(m->db, meta_1m, *wm_1m);
    if (r >= 0)
        r = db_usage_meta_put(m->db, meta_1h, *wm_1h);
    return r;
}

int
history_tick(master_t *m, bool force)
{
    struct history *h = history_of(m);
    uint64_t now = master_now_ms(m), wm_1m, wm_1h;

    if (!h->loaded || (!force && now < h->next_tick))
        return 0;
    h->next_tick = now + HISTORY_TICK_MS;
    (void)master_batch_commit(m);
    int r = db_begin(m->db);
    if (r < 0)
        return r;
    r = roll_and_expire(m, h, now, &wm_1m, &wm_1h);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        log_warning("cannot roll usage history up: %s; trying again later", strerror(-r));
        return r;
    }
    h->wm_1m = wm_1m;
    h->wm_1h = wm_1h;
    return 0;
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
    struct history *h = history_of(m);
    enum db_usage_tier t = tier_for(master_now_ms(m), from, step ? step : 1);
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
    uint64_t cut[DB__TIER_MAX] = {to, min_u64(to, h->wm_1m), min_u64(to, h->wm_1h)};
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
static const char *const period_fmt[] = {"%Y-%m-%dT%H:00:00Z", "%Y-%m-%dT00:00:00Z",
                                         "%Y-%m-01T00:00:00Z"};

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

/* One guest and period being summed; the key points into it. */
struct traffic_acc {
    char key[SPEC_ID_LEN + 48];     /* "guest_id\tperiod" */
    struct history_traffic t;       /* the sums; strings point into key and name */
    char name[NAME_MAX_LEN + 1];    /* the guest's name */
};

struct traffic_sum {
    master_t *m;             /* for names */
    struct hmap_str map;     /* key -> struct traffic_acc * */
    struct traffic_acc **all; /* the same, in arrival order */
    size_t n;                /* entries in all */
    size_t cap;              /* allocated */
};

static int
traffic_add(void *userdata, const struct db_traffic_row *r)
{
    struct traffic_sum *s = userdata;
    char key[SPEC_ID_LEN + 48];

    if (!r->guest_id || !r->period)
        return 0;
    snprintf(key, sizeof(key), "%s\t%s", r->guest_id, r->period);
    struct traffic_acc *a = hmap_str_get(&s->map, key);
    if (!a) {
        a = xcalloc(1, sizeof(*a));
        memcpy(a->key, key, sizeof(a->key));
        a->key[strcspn(a->key, "\t")] = '\0';
        a->t.guest_id = a->key;
        a->t.period = a->key + strlen(a->key) + 1;
        _cleanup_free_ char *name = db_usage_name(s->m->db, r->guest_id);
        strscpy(a->name, name ? name : r->guest_id, sizeof(a->name));
        a->t.name = a->name;
        /* The map's key is the whole "id\tperiod": kept in a copy. */
        char *k = xstrdup(key);
        hmap_str_put(&s->map, k, a);
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->all = xrealloc(s->all, s->cap * sizeof(*s->all));
        }
        s->all[s->n++] = a;
    }
    a->t.rx_bytes += r->rx_bytes;
    a->t.tx_bytes += r->tx_bytes;
    a->t.rx_packets += r->rx_packets;
    a->t.tx_packets += r->tx_packets;
    return 0;
}

static int
traffic_cmp(const void *x, const void *y)
{
    const struct traffic_acc *a = *(struct traffic_acc *const *)x;
    const struct traffic_acc *b = *(struct traffic_acc *const *)y;
    int c = strcmp(a->name, b->name);

    if (!c)
        c = strcmp(a->t.guest_id, b->t.guest_id);
    return c ? c : strcmp(a->t.period, b->t.period);
}

static void
traffic_free(struct traffic_sum *s)
{
    for (size_t i = 0; i < s->map.cap; i++)
        if (s->map.slots && s->map.slots[i].key)
            free((char *)s->map.slots[i].key);
    hmap_str_free(&s->map);
    for (size_t i = 0; i < s->n; i++)
        free(s->all[i]);
    free(s->all);
}

int
history_traffic(master_t *m, enum history_period p, uint64_t from, uint64_t to,
                const char *guest_id, int (*cb)(void *userdata, const struct history_traffic *t),
                void *userdata)
{
    struct history *h = history_of(m);
    struct traffic_sum s = {.m = m};
    const char *fmt = period_fmt[(unsigned)p < ARRAY_SIZE(period_fmt) ? p : 0];
    /* usage_1h up to its mark, usage_1m up to its own, raw after. */
    uint64_t bound[DB__TIER_MAX + 1] = {from, max_u64(from, min_u64(to, h->wm_1h)),
                                        max_u64(from, min_u64(to, h->wm_1m)), to};
    static const enum db_usage_tier order[DB__TIER_MAX] = {DB_TIER_1H, DB_TIER_1M, DB_TIER_RAW};
    int r = 0;

    for (int k = 0; k < DB__TIER_MAX && r >= 0; k++) {
        uint64_t start = max_u64(bound[k], from), end = bound[k + 1];
        if (k == DB__TIER_MAX - 1)
            start = max_u64(start, bound[k]);
        if (end > start)
            r = db_usage_traffic(m->db, order[k], fmt, start, end, guest_id, traffic_add, &s);
    }
    if (r >= 0) {
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
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n == 0)
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
