/* Usage as the nodes report it (usage.h). */
#include "master/usage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/db_usage.h"
#include "master/events.h"
#include "master/history.h"

/* Values above this are clamped: a hostile node cannot overflow the sums of
 * the rollups, and every value stays exact in JSON. */
#define USAGE_MAX_VALUE ((1ULL << 53) - 1)

/* What the master knows of one guest's usage. */
struct usage_entry {
    char id[SPEC_ID_LEN + 1];         /* the key */
    char name[NAME_MAX_LEN + 1];      /* the guest's name */
    char placed[NAME_MAX_LEN + 1];    /* the node it is placed on, as last read */
    char node[NAME_MAX_LEN + 1];      /* the node of the last sample */
    uint64_t time_ms;                 /* the last sample's time, 0 = none yet */
    uint64_t sample[USAGE_N_METRICS]; /* the node's values in it */
    uint64_t totals[USAGE_N_METRICS]; /* the master's counters (sums of increases) */
    uint64_t oom_seen;                /* the node's OOM count events were emitted up to */
    bool fresh;                       /* a new guest: its counts started at 0 here */
    bool dirty;                       /* in the open transaction's dirty list */
    struct guest_usage latest;        /* the sample with the totals as counters */
};

/* A guest created this recently has no OOM or limit history the master did
 * not see: its first sample's failcnts are news, not a baseline. */
#define USAGE_FRESH_MS (10ULL * 60 * 1000)

/* The cache, and which entries the open transaction changed: a rollback
 * drops them, and they are read again from the store as it is then. */
struct usage {
    struct hmap_str map;            /* guest id -> struct usage_entry * */
    char (*dirty)[SPEC_ID_LEN + 1]; /* ids changed in the open transaction */
    size_t n_dirty;                 /* entries in dirty */
    size_t cap_dirty;               /* allocated */
};

static void
entry_drop(struct usage *u, const char *id)
{
    struct usage_entry *e = hmap_str_get(&u->map, id);

    if (e) {
        hmap_str_del(&u->map, id);
        free(e);
    }
}

static void
on_tx(void *userdata, enum db_tx_event ev, unsigned depth)
{
    struct usage *u = userdata;

    if (ev == DB_TX_ROLLBACK) {
        for (size_t i = 0; i < u->n_dirty; i++)
            entry_drop(u, u->dirty[i]);
        u->n_dirty = 0;
    } else if (ev == DB_TX_COMMIT && depth == 1) {
        for (size_t i = 0; i < u->n_dirty; i++) {
            struct usage_entry *e = hmap_str_get(&u->map, u->dirty[i]);
            if (e)
                e->dirty = false;
        }
        u->n_dirty = 0;
    }
}

static struct usage *
usage_of(master_t *m)
{
    if (!m->usage) {
        m->usage = xcalloc(1, sizeof(*m->usage));
        if (db_tx_hook_add(m->db, on_tx, m->usage) < 0)
            log_warning("no transaction hook left for usage; a failed batch may leave "
                        "the cache ahead of the store until a restart");
    }
    return m->usage;
}

/* The entry's flag says whether it is listed already: the list was
 * searched at every sample, and a batch of reports from thousands of nodes
 * made that quadratic (a quarter of the master's CPU in strcmp in a
 * 5,000-node run, issue 16). An entry dropped and made again within the
 * transaction may be listed twice, which the hooks above do not mind. */
static void
mark_dirty(master_t *m, struct usage_entry *e)
{
    struct usage *u = usage_of(m);

    if (db_tx_depth(m->db) == 0 || e->dirty)
        return;
    e->dirty = true;
    if (u->n_dirty == u->cap_dirty) {
        u->cap_dirty = u->cap_dirty ? u->cap_dirty * 2 : 64;
        u->dirty = xrealloc(u->dirty, u->cap_dirty * sizeof(*u->dirty));
    }
    strscpy(u->dirty[u->n_dirty++], e->id, sizeof(u->dirty[0]));
}

static void
entry_latest(struct usage_entry *e)
{
    uint64_t v[USAGE_N_METRICS];

    for (unsigned i = 0; i < USAGE_N_METRICS; i++)
        v[i] = db_usage_is_counter(i) ? e->totals[i] : e->sample[i];
    memset(&e->latest, 0, sizeof(e->latest));
    memcpy(e->latest.id, e->id, sizeof(e->latest.id));
    e->latest.time_ms = e->time_ms;
    usage_from_vec(v, &e->latest);
}

static int
entry_from_row(void *userdata, const struct db_usage_last *l)
{
    struct usage_entry *e = userdata;

    if (l->deleted)
        return -ENOENT;
    strscpy(e->name, l->name, sizeof(e->name));
    strscpy(e->node, l->node ? l->node : "", sizeof(e->node));
    e->time_ms = l->time_ms;
    memcpy(e->sample, l->sample, sizeof(e->sample));
    memcpy(e->totals, l->totals, sizeof(e->totals));
    e->oom_seen = l->oom_seen;
    return 0;
}

/* The guest's entry: from the cache, the store's usage_last, or (with
 * from_guest) a fresh one for a guest the store knows. NULL otherwise. */
static struct usage_entry *
entry_get(master_t *m, const char *id, bool from_guest)
{
    struct usage *u = usage_of(m);
    struct usage_entry *e = hmap_str_get(&u->map, id);
    struct db_guest g = {0};

    if (e)
        return e;
    e = xcalloc(1, sizeof(*e));
    strscpy(e->id, id, sizeof(e->id));
    if (db_usage_last_get(m->db, id, entry_from_row, e) < 0) {
        if (!from_guest || db_guest_get_by_id(m->db, id, &g) < 0) {
            free(e);
            return NULL;
        }
        strscpy(e->name, g.name, sizeof(e->name));
        strscpy(e->placed, g.node ? g.node : "", sizeof(e->placed));
        e->fresh = g.created_ms + USAGE_FRESH_MS > master_now_ms(m);
        db_guest_clear(&g);
    }
    entry_latest(e);
    hmap_str_put(&u->map, e->id, e);
    return e;
}

/* Whether the guest is placed on node now (a report from elsewhere is a
 * stale one from a node it left). */
static bool
placed_on(master_t *m, struct usage_entry *e, const char *node)
{
    struct db_guest g = {0};

    if (!strcmp(e->placed, node))
        return true;
    if (db_guest_get_by_id(m->db, e->id, &g) < 0)
        return false;
    strscpy(e->placed, g.node ? g.node : "", sizeof(e->placed));
    db_guest_clear(&g);
    return !strcmp(e->placed, node);
}

static int
store(master_t *m, struct usage_entry *e)
{
    struct db_usage_last l = {
        .guest_id = e->id,
        .name = e->name,
        .node = e->node[0] ? e->node : NULL,
        .time_ms = e->time_ms,
        .oom_seen = e->oom_seen,
    };

    memcpy(l.sample, e->sample, sizeof(l.sample));
    memcpy(l.totals, e->totals, sizeof(l.totals));
    mark_dirty(m, e);
    return db_usage_last_put(m->db, &l);
}

/* Emits guest.oom for kills beyond oom_seen; a count below it is a new
 * cgroup (the guest restarted or moved), whose kills are all new. */
static bool
oom_check(master_t *m, struct usage_entry *e, const char *node, uint64_t count)
{
    if (count == e->oom_seen)
        return false;
    uint64_t kills = count > e->oom_seen ? count - e->oom_seen : count;
    e->oom_seen = count;
    if (kills) {
        log_notice("guest=%s node=%s OOM: %llu process(es) killed", e->name, node,
                   (unsigned long long)kills);
        events_emit(m, "guest.oom", node, e->id, e->name,
                    json_pack("{s:I, s:I}", "kills", (json_int_t)kills, "count", (json_int_t)count),
                    "the OOM killer killed %llu process(es) in guest %s", (unsigned long long)kills,
                    e->name);
    }
    return true;
}

#define FAIL_NAME(e, name) [e] = #name,
static const char *const fail_names[USAGE_FAIL_COUNT] = {USAGE_FAIL_FIELDS(FAIL_NAME)};
#undef FAIL_NAME

/* guest.limit for every failcnt (but OOM's, oom_check's) that grew. */
static void
limit_events(master_t *m, struct usage_entry *e, const char *node, const uint64_t inc[],
             const uint64_t now[])
{
    for (unsigned f = 0; f < USAGE_FAIL_COUNT; f++) {
        unsigned i = USAGE_N_U64_FIELDS + f;
        if (f == USAGE_FAIL_OOM || !inc[i])
            continue;
        events_emit(m, "guest.limit", node, e->id, e->name,
                    json_pack("{s:s, s:I, s:I}", "resource", fail_names[f], "hits",
                              (json_int_t)inc[i], "count", (json_int_t)now[i]),
                    "guest %s hit its %s limit (%llu time(s))", e->name, fail_names[f],
                    (unsigned long long)inc[i]);
    }
}

static void
record(master_t *m, struct usage_entry *e, const char *node, const struct guest_usage *s)
{
    uint64_t now[USAGE_N_METRICS], inc[USAGE_N_METRICS];
    bool had = e->time_ms != 0;

    usage_to_vec(s, now);
    for (unsigned i = 0; i < USAGE_N_METRICS; i++) {
        if (now[i] > USAGE_MAX_VALUE)
            now[i] = USAGE_MAX_VALUE;
        if (!db_usage_is_counter(i))
            inc[i] = now[i];
        else
            inc[i] = !had || now[i] < e->sample[i] ? now[i] : now[i] - e->sample[i];
    }
    if (had || e->fresh) {
        limit_events(m, e, node, inc, now);
        (void)oom_check(m, e, node, now[USAGE_N_U64_FIELDS + USAGE_FAIL_OOM]);
    } else if (!e->oom_seen) {
        /* First sight of a guest older than this master's view of it (an
         * upgraded store): the count is history, not news. */
        e->oom_seen = now[USAGE_N_U64_FIELDS + USAGE_FAIL_OOM];
    }
    for (unsigned i = 0; i < USAGE_N_METRICS; i++)
        if (db_usage_is_counter(i))
            e->totals[i] += inc[i];
    memcpy(e->sample, now, sizeof(e->sample));
    e->time_ms = s->time_ms;
    strscpy(e->node, node, sizeof(e->node));
    entry_latest(e);
    int r = history_record(m, e->id, s->time_ms, inc);
    if (r >= 0)
        r = store(m, e);
    if (r < 0)
        log_warning("guest=%s cannot store its usage: %s, ignoring", e->name, strerror(-r));
}

unsigned
usage_report(master_t *m, const char *node, const struct msg_usage *u, uint64_t now_ms)
{
    unsigned refused = 0;

    for (uint32_t i = 0; i < u->n_samples; i++) {
        const struct guest_usage *s = &u->samples[i];
        struct usage_entry *e = entry_get(m, s->id, true);
        if (!e)
            continue;
        /* Only the node a guest is placed on speaks for it. */
        if (!placed_on(m, e, node)) {
            refused++;
            continue;
        }
        struct guest_usage sample = *s;
        /* A time from the future would make every true sample after it look
         * old: the master's clock is the latest a sample can be. */
        if (sample.time_ms > now_ms)
            sample.time_ms = now_ms;
        if (sample.time_ms <= e->time_ms)
            continue;
        record(m, e, node, &sample);
    }
    return refused;
}

void
usage_oom(master_t *m, const char *node, const char *guest_id, uint64_t count)
{
    struct usage_entry *e = entry_get(m, guest_id, true);

    if (!e || !placed_on(m, e, node) || !oom_check(m, e, node, count))
        return;
    int r = store(m, e);
    if (r < 0)
        log_warning("guest=%s cannot store its OOM count: %s, ignoring", e->name, strerror(-r));
}

const struct guest_usage *
usage_latest(master_t *m, const char *guest_id)
{
    struct usage_entry *e = entry_get(m, guest_id, false);
    return e && e->time_ms ? &e->latest : NULL;
}

void
usage_forget(master_t *m, const char *guest_id)
{
    int r = db_usage_last_mark_deleted(m->db, guest_id);

    if (r < 0)
        log_debug("guest %s: cannot mark its usage deleted: %s, ignoring", guest_id, strerror(-r));
    entry_drop(usage_of(m), guest_id);
    history_forget(m, guest_id);
}

void
usage_free(master_t *m)
{
    struct usage *u = m->usage;

    if (!u)
        return;
    if (m->db)
        db_tx_hook_remove(m->db, u);
    for (size_t i = 0; i < u->map.cap; i++)
        if (u->map.slots && u->map.slots[i].key)
            free(u->map.slots[i].val);
    hmap_str_free(&u->map);
    free(u->dirty);
    free(u);
    m->usage = NULL;
}

/* A counter below its mark started again (a guest rebuilt from nothing):
 * everything it counted is new. */
static uint64_t
since_mark(uint64_t now, uint64_t mark)
{
    return now >= mark ? now - mark : now;
}

int
usage_traffic(master_t *m, const char *guest_id, bool reset, struct usage_traffic *out)
{
    const struct guest_usage *u = usage_latest(m, guest_id);
    struct db_traffic_mark mark = {0};
    int r;

    if (!u)
        return -ENODATA;
    r = db_traffic_mark_get(m->db, guest_id, &mark);
    if (r < 0 && r != -ENOENT)
        return r;
    *out = (struct usage_traffic){
        .rx_bytes = since_mark(u->net_rx_bytes, mark.rx_bytes),
        .tx_bytes = since_mark(u->net_tx_bytes, mark.tx_bytes),
        .rx_packets = since_mark(u->net_rx_packets, mark.rx_packets),
        .tx_packets = since_mark(u->net_tx_packets, mark.tx_packets),
        .since_ms = mark.since_ms,
        .sampled_ms = u->time_ms,
    };
    if (!reset)
        return 0;
    struct db_traffic_mark now = {
        .rx_bytes = u->net_rx_bytes,
        .tx_bytes = u->net_tx_bytes,
        .rx_packets = u->net_rx_packets,
        .tx_packets = u->net_tx_packets,
        .since_ms = u->time_ms,
    };
    return db_traffic_mark_put(m->db, guest_id, &now);
}
