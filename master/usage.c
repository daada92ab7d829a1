#include "master/usage.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* The latest usage sample of one guest. */
struct usage_entry {
    char id[SPEC_ID_LEN + 1];    /* the key */
    char node[NAME_MAX_LEN + 1]; /* the node it is placed on (guests never move) */
    struct guest_usage u;        /* the sample */
};

unsigned
usage_report(master_t *m, const char *node, const struct msg_usage *u, uint64_t now_ms)
{
    unsigned refused = 0;

    for (uint32_t i = 0; i < u->n_samples; i++) {
        const struct guest_usage *s = &u->samples[i];
        struct usage_entry *e = hmap_str_get(&m->usage, s->id);
        if (!e) {
            struct db_guest g = {0};
            if (db_guest_get_by_id(m->db, s->id, &g) < 0)
                continue;
            e = xcalloc(1, sizeof(*e));
            memcpy(e->id, s->id, sizeof(e->id));
            strscpy(e->node, g.node ? g.node : "", sizeof(e->node));
            db_guest_clear(&g);
            hmap_str_put(&m->usage, e->id, e);
        }
        /* Only the node a guest is placed on speaks for it. */
        if (strcmp(e->node, node) != 0) {
            refused++;
            continue;
        }
        struct guest_usage sample = *s;
        /* A time from the future would make every true sample after it look
         * old: the master's clock is the latest a sample can be. */
        if (sample.time_ms > now_ms)
            sample.time_ms = now_ms;
        if (sample.time_ms >= e->u.time_ms)
            e->u = sample;
    }
    return refused;
}

const struct guest_usage *
usage_latest(master_t *m, const char *guest_id)
{
    struct usage_entry *e = hmap_str_get(&m->usage, guest_id);
    return e ? &e->u : NULL;
}

void
usage_forget(master_t *m, const char *guest_id)
{
    struct usage_entry *e = hmap_str_get(&m->usage, guest_id);

    if (e) {
        hmap_str_del(&m->usage, guest_id);
        free(e);
    }
}

void
usage_free(master_t *m)
{
    for (size_t i = 0; i < m->usage.cap; i++)
        if (m->usage.slots && m->usage.slots[i].key)
            free(m->usage.slots[i].val);
    hmap_str_free(&m->usage);
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
