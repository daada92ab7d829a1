/* The master's loop and lifecycle: the node links, the tick, the batch of
 * node reports, start and stop. What happens on each message and request is
 * in the modules core.h lists. */
#include "master/master.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/charges.h"
#include "master/core.h"
#include "master/events.h"
#include "master/db_usage.h"
#include "master/events_stream.h"
#include "master/guests.h"
#include "master/history.h"
#include "master/http_edge.h"
#include "master/idem.h"
#include "master/metrics.h"
#include "master/oncommit.h"
#include "master/operations.h"
#include "master/session.h"
#include "master/shell.h"
#include "master/trust.h"
#include "master/usage.h"
#include "master/waiters.h"
#include "proto/spec_json.h"

/* Node messages handled per loop iteration and link. Each iteration ends
 * with the batch's commit (on_flush: one fsync with synchronous=FULL), so
 * this is also the number of node reports per fsync: zwatch's default of 64
 * held a whole cluster to about 64 / fsync time (~2,600 acknowledgements/s
 * here, bench/sched.sh, docs/performance.md), however idle both CPUs were.
 * At ~0.1 ms per report an iteration stays within ~100 ms, so HTTP, timers
 * and heartbeats still get their turn. */
#define MASTER_LINK_BUDGET 1024
/* Frames a second the links' stash reads while behind (stash_if_behind),
 * dropped ones included: well above the flood limit, so that a flooding
 * connection is seen to flood however slowly the loop handles what it
 * reads (the flood rule counts by arrival, so a backlog read this fast is
 * not one). At ~1 us a frame it is at most a fifth of a core. */
#define MASTER_STASH_PER_S (LINK_FLOOD_MSGS * 10)
/* A link this many ticks behind is stashed: a flood is read, and cut,
 * within about this, and junk the stash drops stops counting as backlog. */
#define MASTER_STASH_AFTER_TICKS 2
/* At most one "cannot store the batch" line per this many ms (a full disk
 * fails the commit of every loop iteration with node messages). */
#define MASTER_BATCH_LOG_MS 60000

void
master_config_default(struct master_config *c)
{
    *c = (struct master_config){0};
    c->db_path = "/var/lib/vfleet/master.db";
    c->http_addr = "127.0.0.1";
    c->http_port = 7400;
    c->heartbeat_ms = 5000;
    c->usage_ms = 10000;
    c->suspect_after_ms = 15000;
    c->down_after_ms = 30000;
    c->resend_ms = 5000;
    c->tick_ms = 250;
    c->wait_default_s = 60;
    c->max_ips = 16;
    c->events_max_age_s = 30 * 86400;
    c->events_max_count = 100000;
    c->traffic_max_rows = 200000;
    c->metrics_guests_max = 10000;
    sched_config_default(&c->sched);
}

uint64_t
master_now_ms(master_t *m)
{
    return m->cfg.clock_ms ? m->cfg.clock_ms(m->cfg.clock_userdata) : time_real_ms();
}

/* ---- the batch of node reports (and creates, http_edge.c) ---- */

void
master_batch_begin(master_t *m)
{
    if (m->batch_open || db_tx_depth(m->db) != 0)
        return;
    if (db_begin(m->db) >= 0)
        m->batch_open = true;
}

int
master_batch_commit(master_t *m)
{
    if (!m->batch_open)
        return 0;
    m->batch_open = false;
    int r = db_commit(m->db);
    uint64_t held = 0;
    /* On a full disk the commit of every loop iteration with node
     * messages fails: the first failure is logged, the rest are counted
     * (m->batch_log) and the count is said on the next line logged. (No
     * "stored again" line: a batch without writes commits even on a full
     * disk, so success and failure alternate while it is full.) */
    if (r < 0 && ratelimit_ok(&m->batch_log, time_mono_ms(), &held)) {
        char more[96] = "";
        if (held)
            snprintf(more, sizeof(more), " (%llu more failed commits were not logged)",
                     (unsigned long long)held);
        log_error("cannot store the batch: %s; its creates are refused, its node reports are "
                  "reconciled on the next hello%s",
                  strerror(-r), more);
    }
    return r;
}

/* The batch is the outermost transaction (it is only begun at depth 0):
 * whatever ends depth 1 ends it. Besides master_batch_commit's own commit,
 * that is a rollback of the whole transaction from inside it: a nested
 * savepoint whose rollback or failed release finds that SQLite rolled
 * everything back (db.c; a full disk or an I/O error can do that). The
 * batch is then gone, and batch_open must say so: else the rest of the
 * iteration's node messages ran without a batch (master_batch_begin saw it
 * open), each write its own fsync, and the flush committed nothing and
 * logged "cannot store the batch: Invalid argument". */
static void
on_batch_tx(void *userdata, enum db_tx_event ev, unsigned depth)
{
    master_t *m = userdata;

    if (ev != DB_TX_BEGIN && depth == 1)
        m->batch_open = false;
}

static void
on_flush(uv_prepare_t *p)
{
    (void)master_batch_commit(p->data);
}

bool
master_node_connected(master_t *m, const char *node)
{
    struct registry_node *n = node ? registry_get(m->reg, node) : NULL;
    return n && n->welcomed && n->state != DB_NODE_DOWN && n->link >= 0;
}

static void
on_node_change(void *userdata, struct registry_node *n, enum db_node_state old)
{
    const char *from = db_node_state_to_string(old), *to = db_node_state_to_string(n->state);

    log_notice("node=%s %s -> %s", n->name, from, to);
    events_emit(userdata, "node.state", n->name, NULL, NULL,
                json_pack("{s:s, s:s}", "from", from, "to", to), "node %s is %s", n->name, to);
}

void
master_node_down(master_t *m, const char *node)
{
    (void)registry_down(m->reg, node, on_node_change, m);
}

/* ---- the tick ---- */

static int
dispatch_send_cb(void *userdata, const char *node, const void *buf, size_t len)
{
    return session_send_raw(userdata, node, buf, len);
}

static bool
dispatch_ready_cb(void *userdata, const char *node)
{
    master_t *m = userdata;
    struct registry_node *n = registry_get(m->reg, node);
    return n && n->welcomed && n->state == DB_NODE_READY;
}

/* How far behind the loop is in reading the nodes' messages: the oldest
 * backlog of its links (link_backlog_ms). */
static uint64_t
links_behind_ms(master_t *m)
{
    uint64_t behind = 0;

    for (unsigned i = 0; i < m->n_links; i++) {
        uint64_t b = link_backlog_ms(m->links[i].link);
        if (b > behind)
            behind = b;
    }
    return behind;
}

/* A master that reads its nodes' messages late also echoes their
 * heartbeats late, and an agent takes three silent intervals for a lost
 * master: it reconnects and says hello again, and thousands of hellos (each
 * with its inventory to reconcile) would only add to the backlog. So while
 * behind by a heartbeat interval or more, the master sends every welcomed
 * node a heartbeat of its own once per interval (the master-to-node
 * direction is not behind). A master whose loop is stuck sends none, and a
 * node whose connection is gone gets none: those still reconnect. */
static void
keepalive_if_behind(master_t *m, uint64_t now, uint64_t behind)
{
    struct msg hb = {.type = MSG_HEARTBEAT};
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    if (behind < m->cfg.heartbeat_ms || now < m->next_keepalive)
        return;
    m->next_keepalive = now + m->cfg.heartbeat_ms;
    if (msg_encode(&hb, &buf, &len) < 0)
        return;
    for (size_t i = 0; i < registry_count(m->reg); i++) {
        struct registry_node *n = registry_at(m->reg, i);
        if (n->welcomed && n->state != DB_NODE_DOWN)
            (void)session_send_raw(m, n->name, buf, len);
    }
    log_info("reading the nodes' messages %llu ms behind: heartbeats sent to the nodes",
             (unsigned long long)behind);
}

/* What the stash keeps of a frame (link_stash's shrink function).
 *
 * A frame of a peer the registry does not know, other than the hello or
 * join that would make it known, is dropped: the session would only nack
 * it ("say hello"), and a stream of them (a local peer on a plaintext
 * endpoint names itself) would otherwise keep the link behind and the
 * registry from judging real nodes' silence (link_backlog_ms counts what
 * the stash dropped as read). A real node that has not said hello yet
 * says it again.
 *
 * While the master reads its nodes' messages a usage interval or more
 * late, each usage report it reads is skipped and only acked (session.c).
 * Reports stashed meanwhile from a link that far behind therefore keep
 * only what the ack needs: an empty report with the same id (if the master
 * has caught up by the time it reads one, an empty report records nothing,
 * as a skip). */
static size_t
shrink_usage(const char *peer, void *frame, size_t len, void *userdata)
{
    struct mlink *ml = userdata;
    master_t *m = ml->master;
    /* Not initialised whole: every stashed frame comes here, and a struct
     * msg is 19.7 KiB of which a usage report uses its header and 16 bytes. */
    struct msg msg, empty;
    _cleanup_free_ char *buf = NULL;
    size_t n = 0;
    int r;

    bool known = registry_get(m->reg, peer) != NULL;
    bool shrink = m->behind_ms >= m->cfg.usage_ms && ml->behind_ms >= m->cfg.usage_ms &&
                  len >= 512; /* nothing much to save below */
    if (known && !shrink)
        return len;
    r = msg_decode(frame, len, &msg, NULL, 0);
    enum msg_type type = r == 0 ? msg.type : MSG_TYPE_COUNT;
    empty.type = MSG_USAGE;
    empty.id = msg.id;
    empty.u.usage = (struct msg_usage){0};
    msg_clear(&msg);
    if (!known)
        return type == MSG_HELLO || type == MSG_JOIN ? len : LINK_SHRINK_DROP;
    /* Anything else, malformed frames included, is kept as it came. */
    if (type != MSG_USAGE || msg_encode(&empty, &buf, &n) < 0 || n >= len)
        return len;
    memcpy(frame, buf, n);
    return n;
}

/* libzmq keeps every frame whole until it is read, and a usage report of a
 * node with 200 guests is ~150 KB: behind by a usage interval or more, a
 * master of 5,000 nodes held one or two per node unread (1.8-6 GB in
 * bench/sched.sh --stretch). And libzmq's receiving queue is unbounded
 * (link.c, link_common_options), so a connection that sends faster than
 * the loop handles messages grew it without bound: the flood rule can only
 * count what is read. So while a link is MASTER_STASH_AFTER_TICKS ticks or
 * more behind, its waiting frames move into the link's own queue, usage reports
 * shrunk while a usage interval behind and junk dropped (shrink_usage):
 * MASTER_STASH_PER_S a second since the last time (a busy loop ticks
 * seconds apart), at most that many at once. */
static void
stash_if_behind(master_t *m, uint64_t now, uint64_t behind)
{
    uint64_t max = MASTER_STASH_PER_S, after = (uint64_t)m->cfg.tick_ms * MASTER_STASH_AFTER_TICKS;

    if (behind < after) {
        m->stash_ms = 0;
        return;
    }
    if (m->stash_ms && now - m->stash_ms < 1000)
        max = (uint64_t)MASTER_STASH_PER_S * (now - m->stash_ms) / 1000;
    m->stash_ms = now;
    /* Only a link that is that far behind itself; its reports are shrunk
     * only when it is a usage interval behind by itself (with two links,
     * the other's backlog is no reason to). */
    for (unsigned i = 0; i < m->n_links; i++) {
        struct mlink *ml = &m->links[i];
        ml->behind_ms = link_backlog_ms(ml->link);
        if (ml->behind_ms >= after)
            (void)link_stash(ml->link, max ? (unsigned)max : 1);
    }
}

static void
on_tick(uv_timer_t *t)
{
    master_t *m = t->data;
    uint64_t now = time_mono_ms();
    uint64_t behind = links_behind_ms(m);

    m->behind_ms = behind;
    if (behind > m->behind_max_ms)
        m->behind_max_ms = behind;
    keepalive_if_behind(m, now, behind);
    stash_if_behind(m, now, behind);

    /* Liveness and re-sends judge the nodes only by what this master has
     * read: a node whose messages wait unread is not silent, and a command
     * whose answer may be waiting unread is not re-sent (a re-send would
     * only add a duplicate answer behind it). */
    registry_tick(m->reg, behind, on_node_change, m);
    dispatch_tick_behind(m->disp, behind);
    waiters_expire(m, now);
    operations_tick(m, now);
    shell_tick(m);
    if (now >= m->next_poke) {
        m->next_poke = now + 1000;
        session_poke_unwelcomed(m);
    }
    idem_sweep(m, now);
    (void)history_tick(m, false);
    events_expire(m, false);
    event_streams_tick(m);
    trust_tick(m, now);
}

/* ---- start and stop ---- */

static int
reserve_guest(void *userdata, const struct db_guest *g)
{
    master_t *m = userdata;
    struct guest_spec spec;
    struct sched_resources res;

    if (g->node && guests_spec(m, g, &spec) == 0) {
        guests_resources(m, &spec, &res);
        if (sched_reserve(m->sched, g->node, &res, g->group) < 0)
            log_warning("guest=%s node=%s not in the index, ignoring", g->name, g->node);
    }
    return 0;
}

/* An ipc:// endpoint's directory (/run/vfleet) may not exist yet after boot. */
static void
ipc_parent_dir(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return;
    _cleanup_free_ char *dir = xstrdup(endpoint + 6);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            log_debug("cannot create \"%s\": %s, ignoring", dir, strerror(errno));
        *p = c;
        if (!c)
            break;
    }
}

static void
config_fill(master_t *m, const struct master_config *cfg)
{
    struct master_config def;

    master_config_default(&def);
    m->cfg = *cfg;
#define DEF(f)                                                                                     \
    if (!m->cfg.f)                                                                                 \
    m->cfg.f = def.f
    DEF(heartbeat_ms);
    DEF(usage_ms);
    DEF(suspect_after_ms);
    DEF(down_after_ms);
    DEF(resend_ms);
    DEF(tick_ms);
    DEF(wait_default_s);
    DEF(max_ips);
    DEF(db_path);
    DEF(http_addr);
    DEF(events_max_age_s);
    DEF(events_max_count);
    DEF(traffic_max_rows);
    DEF(metrics_guests_max);
#undef DEF
    if (m->cfg.usage_ms < 100)
        m->cfg.usage_ms = 100;
    if (m->cfg.n_binds == 0) {
        m->cfg.binds[0] = "tcp://127.0.0.1:7401";
        m->cfg.n_binds = 1;
    }
}

/* The store and the in-memory indexes rebuilt from it. */
static int
open_state(master_t *m, char *err, size_t errlen)
{
    int r = db_open(m->cfg.db_path, &m->db, err, errlen);

    if (r < 0)
        return r;
    if (db_tx_hook_add(m->db, on_batch_tx, m) < 0)
        abort(); /* a fixed number of hooks, all the master's own: a bug */
    m->sched = sched_new(&m->cfg.sched);
    m->charges = charges_new(m->sched, m->db);
    r = db_usage_check_schema(m->db, err, errlen);
    if (r >= 0 && (r = events_init(m)) < 0)
        snprintf(err, errlen, "cannot read the events: %s", db_errmsg(m->db));
    if (r >= 0 && (r = history_init(m)) < 0)
        snprintf(err, errlen, "cannot read the usage history: %s", db_errmsg(m->db));
    if (r < 0)
        return r;
    m->oncommit = oncommit_new(m, m->db);
    guests_cache_new(m);
    struct registry_config rc = {.suspect_after_ms = m->cfg.suspect_after_ms,
                                 .down_after_ms = m->cfg.down_after_ms};
    r = registry_new(m->db, m->sched, &rc, &m->reg);
    if (r < 0) {
        snprintf(err, errlen, "cannot load nodes: %s", db_errmsg(m->db));
        return r;
    }
    struct db_guest_filter all = {.observed = -1};
    r = db_guest_list(m->db, &all, reserve_guest, m);
    if (r >= 0)
        r = guests_charge_legacy(m);
    if (r < 0) {
        snprintf(err, errlen, "cannot load guests: %s", db_errmsg(m->db));
        return r;
    }
    struct ipam_config ic = {.max_per_guest = m->cfg.max_ips};
    r = ipam_new(m->db, &ic, &m->ipam, err, errlen);
    if (r < 0)
        return r;
    struct dispatch_config dc = {.resend_ms = m->cfg.resend_ms,
                                 .send = dispatch_send_cb,
                                 .ready = dispatch_ready_cb,
                                 .userdata = m};
    m->disp = dispatch_new(&dc);
    operations_new(m);
    return 0;
}

static int
bind_links(master_t *m, char *err, size_t errlen)
{
    int r = 0;

    for (unsigned i = 0; i < m->cfg.n_binds && i < MASTER_MAX_BINDS; i++) {
        struct mlink *ml = &m->links[i];
        const char *ep = m->cfg.binds[i];
        bool curve = trust_endpoint_curve(m, ep);
        ml->master = m;
        ml->index = (int)i;
        ipc_parent_dir(ep);
        ml->link =
            curve ? link_new_router_curve(ep, trust_link_keys(m), &r) : link_new_router(ep, &r);
        if (!ml->link) {
            snprintf(err, errlen, "cannot bind %s: %s", ep, strerror(-r));
            return r;
        }
        m->n_links++;
        if (!curve && strncmp(ep, "tcp://", 6) == 0)
            log_warning("node endpoint %s is PLAINTEXT (insecure): whoever reaches it can act as "
                        "any node that has no key; use it on a trusted network only",
                        ep);
        else
            log_info("node endpoint %s: %s", ep,
                     curve ? "CurveZMQ" : "plaintext, local processes only");
        r = zwatch_init(m->loop, &ml->watch, ml->link, session_on_frame, ml);
        if (r < 0) {
            snprintf(err, errlen, "cannot watch %s: %s", ep, strerror(-r));
            return r;
        }
        zwatch_set_budget(&ml->watch, MASTER_LINK_BUDGET);
        link_set_shrink(ml->link, shrink_usage, ml);
        ml->watching = true;
    }
    return 0;
}

int
master_new(uv_loop_t *loop, const struct master_config *cfg, master_t **out, char *err,
           size_t errlen)
{
    master_t *m = xcalloc(1, sizeof(*m));
    int r;

    m->loop = loop;
    m->peer_log = (struct ratelimit)RATELIMIT_INIT(10000, 20);
    m->batch_log = (struct ratelimit)RATELIMIT_INIT(MASTER_BATCH_LOG_MS, 1);
    config_fill(m, cfg);
    r = open_state(m, err, errlen);
    if (r >= 0)
        r = trust_open(m, err, errlen);
    if (r >= 0)
        r = bind_links(m, err, errlen);
    if (r < 0)
        goto fail;
    uv_prepare_init(loop, &m->flush);
    m->flush.data = m;
    m->flush_init = true;
    uv_prepare_start(&m->flush, on_flush);
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    m->tick_init = true;
    uv_timer_start(&m->tick, on_tick, m->cfg.tick_ms, m->cfg.tick_ms);

    r = http_listen(m, err, errlen);
    if (r < 0)
        goto fail;
    httpd_set_observer(m->httpd, metrics_http_observer, m);
    *out = m;
    return 0;

fail:
    master_shutdown(m);
    uv_run(loop, UV_RUN_NOWAIT);
    master_destroy(&m);
    return r < 0 ? r : -EINVAL;
}

void
master_shutdown(master_t *m)
{
    if (!m || m->stopping)
        return;
    m->stopping = true;
    (void)master_batch_commit(m);
    event_streams_shutdown(m);
    waiters_shutdown(m);
    shell_close_all(m);
    operations_shutdown(m);
    httpd_destroy(&m->httpd);
    for (unsigned i = 0; i < m->n_links; i++)
        if (m->links[i].watching) {
            zwatch_close(&m->links[i].watch, NULL);
            m->links[i].watching = false;
        }
    if (m->tick_init) {
        uv_close((uv_handle_t *)&m->tick, NULL);
        m->tick_init = false;
    }
    (void)master_batch_commit(m);
    if (m->flush_init) {
        uv_close((uv_handle_t *)&m->flush, NULL);
        m->flush_init = false;
    }
}

void
master_destroy(master_t **pm)
{
    master_t *m = *pm;

    if (!m)
        return;
    master_shutdown(m);
    for (unsigned i = 0; i < m->n_links; i++)
        link_destroy(&m->links[i].link);
    trust_close(m);
    usage_free(m);
    operations_free(m);
    history_free(m);
    metrics_free(m);
    events_free(m);
    dispatch_destroy(&m->disp);
    registry_destroy(&m->reg);
    ipam_destroy(&m->ipam);
    oncommit_destroy(&m->oncommit);
    charges_destroy(&m->charges);
    guests_cache_free(m);
    sched_destroy(&m->sched);
    db_destroy(&m->db);
    free(m);
    *pm = NULL;
}
