/* A node reads FreeVPS trafstat (traffic.get): the trafstat counters of the
 * guests placed on it, from the same marks as GET /v1/guests/{name}/traffic,
 * each reset when asked (trafstat is reset by reading). The marks move in
 * the node batch's transaction; the answer goes after its commit, so a
 * reset the master could not store is never reported as done. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/oncommit.h"
#include "master/session.h"
#include "master/usage.h"

struct trafstat_reply {
    char node[NAME_MAX_LEN + 1]; /* who asked */
    uint64_t ref;                /* its request */
    struct msg_traffic traffic;  /* the answer (items owned) */
};

struct trafstat_scan {
    master_t *m;             /* the master */
    bool reset;              /* move the marks */
    struct msg_traffic *out; /* items so far */
    uint32_t cap;            /* allocated items */
    int err;                 /* the first store failure */
};

static int
trafstat_guest(void *userdata, const struct db_guest *g)
{
    struct trafstat_scan *s = userdata;
    struct usage_traffic t;

    if (s->out->n_items == PROTO_MAX_SAMPLES)
        return 1;
    int r = usage_traffic(s->m, g->id, s->reset, &t);
    if (r == -ENODATA)
        return 0; /* no sample yet: nothing counted */
    if (r < 0) {
        s->err = r;
        return 1;
    }
    if (s->out->n_items == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->out->items = xreallocarray(s->out->items, s->cap, sizeof(*s->out->items));
    }
    struct msg_traffic_item *it = &s->out->items[s->out->n_items++];
    *it = (struct msg_traffic_item){.rx_bytes = t.rx_bytes,
                                    .tx_bytes = t.tx_bytes,
                                    .rx_packets = t.rx_packets,
                                    .tx_packets = t.tx_packets};
    strscpy(it->id, g->id, sizeof(it->id));
    return 0;
}

static void
send_after(master_t *m, void *ctx, int err)
{
    struct trafstat_reply *rp = ctx;
    struct msg msg = {.type = MSG_TRAFFIC};
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    if (err < 0) {
        /* Nothing was reset: the node reports the read as failed. */
        msg.type = MSG_NACK;
        msg.u.nack.ref = rp->ref;
        msg.u.nack.code = MSG_ERR_INTERNAL;
        snprintf(msg.u.nack.message, sizeof(msg.u.nack.message),
                 "the master could not store the trafstat reset: %s", strerror(-err));
    } else {
        msg.u.traffic = rp->traffic;
        msg.u.traffic.ref = rp->ref;
    }
    if (msg_encode(&msg, &buf, &len) == 0)
        (void)session_send_raw(m, rp->node, buf, len);
    free(rp->traffic.items);
    free(rp);
}

void
usage_trafstat(master_t *m, const char *node, uint64_t ref, bool reset)
{
    struct trafstat_reply *rp = xcalloc(1, sizeof(*rp));
    struct db_guest_filter f = {.node = node, .observed = -1};
    struct trafstat_scan s = {.m = m, .reset = reset, .out = &rp->traffic};

    strscpy(rp->node, node, sizeof(rp->node));
    rp->ref = ref;
    /* A savepoint of its own in the batch: a failure undoes the marks moved
     * here, nothing else of the batch. */
    int r = db_begin(m->db);
    /* The answer waits for the marks' commit (or says it failed). */
    oncommit_add(m->oncommit, send_after, rp);
    if (r < 0)
        return;
    r = db_guest_list(m->db, &f, trafstat_guest, &s);
    if (r >= 0 && s.err < 0)
        r = s.err;
    if (r < 0)
        log_warning("node=%s trafstat: %s", node, strerror(-r));
    r = r >= 0 ? db_commit(m->db) : db_rollback(m->db);
}
