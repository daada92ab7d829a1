#include "master/master.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/api.h"
#include "master/db.h"
#include "master/dispatch.h"
#include "master/hmap.h"
#include "master/httpd.h"
#include "master/ipam.h"
#include "master/registry.h"
#include "proto/link.h"
#include "proto/msg.h"
#include "proto/spec_json.h"
#include "proto/zwatch.h"

#define MASTER_EXEC_DEFAULT_S 30    /* exec timeout when the request names none */
#define MASTER_EXEC_GRACE_MS  10000 /* extra wait for the node's exec answer */
#define MASTER_LIST_DEFAULT   500   /* page size when the request names none */
#define MASTER_LIST_MAX       5000  /* largest page */
#define MASTER_BATCH_MAX      1000  /* guests in one batch create */
#define MASTER_IDEM_KEY_MAX   36    /* Idempotency-Key length */
#define MASTER_MAX_WAIT_S     (HTTPD_MAX_WAIT_S - 10)
#define MASTER_IDEM_KEEP_MS   (48ULL * 3600 * 1000) /* keys live at least 24 h; we keep 48 */
#define MASTER_IDEM_SWEEP_MS  (10ULL * 60 * 1000)   /* how often old keys are deleted */

enum wait_kind {
    WAIT_RUNNING, /* create or start with ?wait=running */
    WAIT_DELETE,  /* DELETE: the destroy ack */
    WAIT_EXEC,    /* exec: the result */
};

/* A held HTTP request. */
struct waiter {
    struct http_req *req;               /* answered exactly once, then the waiter goes */
    enum wait_kind kind;                /* what it waits for */
    char guest[SPEC_ID_LEN + 1];        /* the guest */
    char node[NAME_MAX_LEN + 1];        /* its node */
    uint64_t ref;                       /* WAIT_EXEC: the request id of the guest.exec */
    uint64_t deadline;                  /* monotonic ms */
    unsigned status;                    /* WAIT_RUNNING: 201 or 200 */
    char idem[MASTER_IDEM_KEY_MAX + 1]; /* WAIT_EXEC: the key to store the result under */
    char idem_hash[40];                 /* and the request's hash */
    struct waiter *next;                /* in master.waiters */
};

/* One bound ROUTER endpoint. */
struct mlink {
    link_t *link;     /* the socket */
    zwatch_t watch;   /* its libuv driver */
    master_t *master; /* back pointer for the callback */
    int index;        /* position in master.links */
    bool watching;    /* watch initialised */
};

/* The latest usage sample of one guest. */
struct usage_entry {
    char id[SPEC_ID_LEN + 1]; /* the key */
    struct guest_usage u;     /* the sample */
};

struct master {
    uv_loop_t *loop;                      /* the actor's loop */
    struct master_config cfg;             /* as given, defaults filled */
    db_t *db;                             /* durable state */
    sched_t *sched;                       /* placement index */
    ipam_t *ipam;                         /* addresses */
    registry_t *reg;                      /* nodes */
    dispatch_t *disp;                     /* outboxes */
    httpd_t *httpd;                       /* REST front */
    struct mlink links[MASTER_MAX_BINDS]; /* node links */
    unsigned n_links;                     /* entries in links */
    uv_timer_t tick;                      /* liveness, re-sends, wait timeouts */
    bool tick_init;                       /* tick initialised */
    struct waiter *waiters;               /* held requests */
    struct hmap_str usage;                /* guest id -> struct usage_entry * */
    bool stopping;                        /* master_shutdown ran */
    uint64_t next_sweep;                  /* monotonic ms of the next key expiry */
    uint64_t next_poke;                   /* monotonic ms of the next hello request */
    uv_prepare_t flush;                   /* commits the batch before the loop blocks */
    bool flush_init;                      /* flush initialised */
    bool batch_open;                      /* a transaction groups node messages */
};

/* Node messages arrive in bursts (acks, events, usage of many guests); each
 * write in its own transaction would be one fsync each. Writes made while
 * handling node messages share one transaction that is committed before the
 * loop blocks again (or before a held request is answered from it), so a
 * burst costs one fsync. HTTP handlers run in the poll phase, after the
 * commit, never inside the batch. */
static void
batch_begin(master_t *m)
{
    if (m->batch_open || db_tx_depth(m->db) != 0)
        return;
    if (db_begin(m->db) >= 0)
        m->batch_open = true;
}

static void
batch_commit(master_t *m)
{
    if (!m->batch_open)
        return;
    m->batch_open = false;
    if (db_commit(m->db) < 0)
        log_error("cannot store node reports: %s; they are reconciled on the next hello",
                  db_errmsg(m->db));
}

static void
on_flush(uv_prepare_t *p)
{
    batch_commit(p->data);
}

/* ---- small helpers ---------------------------------------------------- */

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
    sched_config_default(&c->sched);
}

static void
uuid_v4(char out[SPEC_ID_LEN + 1])
{
    uint8_t b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            abort(); /* no randomness at all: nothing sensible to do */
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, SPEC_ID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static void
reply_errno(struct http_req *req, int err, const char *field, const char *message)
{
    struct api_error e;

    api_error_from_errno(err, &e);
    httpd_respond(req, e.status, api_error_json(e.code, field, message));
}

static void
reply_unplaceable(struct http_req *req, const char *name, const struct sched_result *r,
                  bool pin_unknown, const char *pin)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "no node can take guest \"%s\"", name);
    json_t *body = api_error_json("unplaceable", NULL, msg);
    json_object_set_new(json_object_get(body, "error"), "placement",
                        api_placement_json(r, pin_unknown, pin));
    httpd_respond(req, 422, body);
}

/* Reads a guest and its spec. Returns 0 or -errno (-ENOENT). */
static int
guest_load(master_t *m, const char *name, const char *id, struct db_guest *g,
           struct guest_spec *spec)
{
    int r = name ? db_guest_get_by_name(m->db, name, g) : db_guest_get_by_id(m->db, id, g);

    if (r < 0)
        return r;
    json_t *j = json_loads(g->spec, 0, NULL);
    *spec = (struct guest_spec){0};
    r = j ? spec_from_json(j, spec, NULL, 0) : -EBADMSG;
    json_decref(j);
    if (r < 0) {
        log_debug("guest=%s stored spec unreadable", g->name);
        db_guest_clear(g);
        return -EBADMSG;
    }
    return 0;
}

static json_t *
guest_json_by_id(master_t *m, const char *id)
{
    struct db_guest g = {0};
    struct guest_spec spec;

    if (guest_load(m, NULL, id, &g, &spec) < 0)
        return NULL;
    json_t *o = api_guest_json(&g, &spec);
    db_guest_clear(&g);
    return o;
}

static void
spec_labels(const struct guest_spec *s, struct db_label *out)
{
    for (uint32_t i = 0; i < s->n_labels; i++)
        out[i] = (struct db_label){s->labels[i].key, s->labels[i].value};
}

static void
spec_resources(master_t *m, const struct guest_spec *s, struct sched_resources *res)
{
    sched_resources_from_spec(sched_config(m->sched), s, res);
    res->addrs = s->n_addrs;
}

static char *
spec_text(const struct guest_spec *s)
{
    json_t *j = spec_to_json(s);
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

static bool
node_connected(master_t *m, const char *node)
{
    struct registry_node *n = node ? registry_get(m->reg, node) : NULL;
    return n && n->welcomed && n->state != DB_NODE_DOWN && n->link >= 0;
}

/* ---- the wire --------------------------------------------------------- */

static int
send_raw(master_t *m, const char *node, const void *buf, size_t len)
{
    struct registry_node *n = registry_get(m->reg, node);

    if (!n || n->link < 0 || (unsigned)n->link >= m->n_links)
        return -EHOSTUNREACH;
    return link_send(m->links[n->link].link, node, buf, len);
}

static int
dispatch_send_cb(void *userdata, const char *node, const void *buf, size_t len)
{
    return send_raw(userdata, node, buf, len);
}

static bool
dispatch_ready_cb(void *userdata, const char *node)
{
    master_t *m = userdata;
    struct registry_node *n = registry_get(m->reg, node);
    return n && n->welcomed && n->state == DB_NODE_READY;
}

/* Sends a message that expects no answer, on a given link. */
static void
send_direct(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = msg_encode(msg, &buf, &len);

    if (r < 0) {
        log_warning("cannot encode %s for node=%s: %s, ignoring", msg_type_name(msg->type), peer,
                    strerror(-r));
        return;
    }
    r = link_send(ml->link, peer, buf, len);
    if (r < 0)
        log_debug("node=%s send %s failed: %s, ignoring", peer, msg_type_name(msg->type),
                  strerror(-r));
}

static void
send_nack(master_t *m, struct mlink *ml, const char *peer, uint64_t ref, enum msg_error code,
          const char *text)
{
    struct msg n = {.type = MSG_NACK};

    n.u.nack.ref = ref;
    n.u.nack.code = code;
    snprintf(n.u.nack.message, sizeof(n.u.nack.message), "%s", text);
    send_direct(m, ml, peer, &n);
}

static void
queue_apply(master_t *m, const char *node, const struct guest_spec *spec)
{
    struct msg c = {.type = MSG_GUEST_APPLY};

    c.u.apply = *spec;
    if (dispatch_queue(m->disp, node, &c) < 0)
        log_error("guest=%s cannot encode its spec for node=%s", spec->name, node);
}

static int64_t
queue_ref(master_t *m, const char *node, enum msg_type type, const char *id, uint64_t gen)
{
    struct msg c = {.type = type};

    strscpy(c.u.guest.id, id, sizeof(c.u.guest.id));
    c.u.guest.generation = gen;
    return dispatch_queue(m->disp, node, &c);
}

/* ---- waiters ---------------------------------------------------------- */

static struct waiter *
waiter_add(master_t *m, struct http_req *req, enum wait_kind kind, const char *guest,
           const char *node, uint32_t timeout_ms)
{
    struct waiter *w = xcalloc(1, sizeof(*w));

    w->req = req;
    w->kind = kind;
    strscpy(w->guest, guest, sizeof(w->guest));
    strscpy(w->node, node ? node : "", sizeof(w->node));
    w->deadline = time_mono_ms() + timeout_ms;
    w->next = m->waiters;
    m->waiters = w;
    return w;
}

/* Answers (with fn) and frees every waiter of kind for guest (and ref when
 * nonzero). */
static void
waiters_answer(master_t *m, enum wait_kind kind, const char *guest, uint64_t ref,
               void (*fn)(master_t *m, struct waiter *w, void *ctx), void *ctx)
{
    /* What a client is told is durable first. */
    bool any = false;
    for (struct waiter *w = m->waiters; w && !any; w = w->next)
        any = w->kind == kind && (!guest || !strcmp(w->guest, guest)) && (!ref || w->ref == ref);
    if (!any)
        return;
    batch_commit(m);
    for (struct waiter **pp = &m->waiters; *pp;) {
        struct waiter *w = *pp;
        if (w->kind != kind || (guest && strcmp(w->guest, guest) != 0) || (ref && w->ref != ref)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        fn(m, w, ctx);
        free(w);
    }
}

static void
answer_guest(master_t *m, struct waiter *w, void *ctx)
{
    json_t *o = guest_json_by_id(m, w->guest);

    if (o)
        httpd_respond(w->req, w->status, o);
    else
        httpd_error(w->req, 404, "not_found", NULL, "the guest is gone");
}

static void
answer_204(master_t *m, struct waiter *w, void *ctx)
{
    httpd_respond(w->req, 204, NULL);
}

struct nack_ctx {
    const struct msg_nack *nack; /* the node's refusal */
};

static void
answer_nack(master_t *m, struct waiter *w, void *ctx)
{
    const struct msg_nack *n = ((struct nack_ctx *)ctx)->nack;
    struct api_error e;

    api_error_from_nack(n->code, &e);
    httpd_respond(w->req, e.status, api_error_json(e.code, NULL, n->message));
}

static void
answer_exec(master_t *m, struct waiter *w, void *ctx)
{
    const struct msg_exec_result *r = ctx;
    json_t *o = api_exec_json(r);

    if (w->idem[0]) {
        _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT);
        struct db_idem rec = {.key = w->idem,
                              .method = "POST",
                              .path = (char *)w->req->path,
                              .request_hash = w->idem_hash,
                              .status = 200,
                              .body = text};
        if (db_idem_put(m->db, &rec) < 0)
            log_debug("cannot store exec result under its key, ignoring");
    }
    httpd_respond(w->req, 200, o);
}

static void
waiters_expire(master_t *m, uint64_t now)
{
    for (struct waiter **pp = &m->waiters; *pp;) {
        struct waiter *w = *pp;
        if (w->deadline > now) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        switch (w->kind) {
        case WAIT_RUNNING:
            answer_guest(m, w, NULL);
            break;
        case WAIT_DELETE:
            httpd_error(w->req, 503, "unavailable", NULL,
                        "the node has not confirmed the destroy yet; it stays queued");
            break;
        case WAIT_EXEC:
            dispatch_cancel(m->disp, w->node, w->ref);
            httpd_error(w->req, 504, "unavailable", NULL, "the node did not answer the exec");
            break;
        }
        free(w);
    }
}

/* A guest's observed state changed: answer whoever waits for it to run. */
static void
guest_observed(master_t *m, const char *id, enum db_observed obs, const char *message)
{
    if (db_guest_set_observed(m->db, id, obs, message) < 0)
        log_debug("guest=%s cannot store observed state, ignoring", id);
    if (obs == DB_OBS_RUNNING || obs == DB_OBS_ERROR)
        waiters_answer(m, WAIT_RUNNING, id, 0, answer_guest, NULL);
}

/* ---- removal of a guest ------------------------------------------------ */

static void
usage_forget(master_t *m, const char *id)
{
    struct usage_entry *e = hmap_str_get(&m->usage, id);

    if (e) {
        hmap_str_del(&m->usage, id);
        free(e);
    }
}

/* Deletes a guest's record, addresses and scheduler charge. */
static int
guest_remove(master_t *m, const char *id)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct sched_resources res;
    int r = guest_load(m, NULL, id, &g, &spec);

    if (r < 0)
        return r;
    r = db_begin(m->db);
    if (r >= 0) {
        ipam_release_guest(m->ipam, id);
        r = db_guest_delete(m->db, id);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r >= 0) {
        spec_resources(m, &spec, &res);
        if (g.node)
            sched_release(m->sched, g.node, &res, g.group);
        if (g.node)
            dispatch_forget_guest(m->disp, g.node, id);
        usage_forget(m, id);
        log_info("guest=%s deleted", g.name);
    }
    db_guest_clear(&g);
    return r;
}

/* ---- node messages ---------------------------------------------------- */

struct reconcile_ctx {
    master_t *m;               /* the master */
    const struct msg_hello *h; /* the hello */
    struct hmap_str inv;       /* inventory id -> item */
    struct hmap_str seen;      /* ids matched with a stored guest */
    char **ids;                /* guests placed on the node */
    size_t n_ids;              /* entries in ids */
};

static int
collect_guest(void *userdata, const struct db_guest *g)
{
    struct reconcile_ctx *c = userdata;

    c->ids = xreallocarray(c->ids, c->n_ids + 1, sizeof(*c->ids));
    c->ids[c->n_ids++] = xstrdup(g->id);
    return 0;
}

/* One stored guest of the node against its inventory. */
static void
reconcile_guest(master_t *m, const char *node, const char *id,
                const struct msg_inventory_item *item)
{
    struct db_guest g = {0};
    struct guest_spec spec;

    if (guest_load(m, NULL, id, &g, &spec) < 0)
        return;
    if (!item) {
        if (dispatch_pending(m->disp, node, MSG_GUEST_DESTROY, id)) {
            /* It was being destroyed and is gone: the destroy is done. */
            db_guest_clear(&g);
            if (guest_remove(m, id) >= 0)
                waiters_answer(m, WAIT_DELETE, id, 0, answer_204, NULL);
            return;
        }
        if (g.applied_generation > 0) {
            if (g.observed != DB_OBS_LOST)
                log_warning("node=%s guest=%s is missing on its node: lost", node, g.name);
            guest_observed(m, id, DB_OBS_LOST, "the node does not have this guest");
        } else {
            /* Never acked: the create is still under way. */
            queue_apply(m, node, &spec);
            if (g.desired == DB_DESIRED_RUNNING)
                queue_ref(m, node, MSG_GUEST_START, id, g.generation);
        }
        db_guest_clear(&g);
        return;
    }
    if (item->generation > 0)
        db_guest_set_applied(m->db, id, item->generation);
    if (item->generation < g.generation)
        queue_apply(m, node, &spec);
    if (g.desired == DB_DESIRED_RUNNING && !item->running)
        queue_ref(m, node, MSG_GUEST_START, id, g.generation);
    else if (g.desired == DB_DESIRED_STOPPED && item->running)
        queue_ref(m, node, MSG_GUEST_STOP, id, g.generation);
    if (!dispatch_pending(m->disp, node, MSG_GUEST_DESTROY, id))
        guest_observed(m, id, item->running ? DB_OBS_RUNNING : DB_OBS_STOPPED, NULL);
    db_guest_clear(&g);
}

static void
on_hello(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg)
{
    const struct msg_hello *h = &msg->u.hello;
    struct registry_node *n = NULL;
    int r;

    if (strcmp(h->node, peer) != 0) {
        send_nack(m, ml, peer, msg->id, MSG_ERR_BAD_REQUEST,
                  "hello names another node than the connection's identity");
        return;
    }
    r = registry_hello(m->reg, h, &n);
    if (r < 0) {
        send_nack(m, ml, peer, msg->id, r == -EINVAL ? MSG_ERR_BAD_REQUEST : MSG_ERR_INTERNAL,
                  "hello refused");
        log_warning("node=%s hello refused: %s", peer, strerror(-r));
        return;
    }
    n->link = ml->index;
    struct msg w = {.type = MSG_WELCOME};
    w.u.welcome.heartbeat_ms = m->cfg.heartbeat_ms;
    w.u.welcome.usage_ms = m->cfg.usage_ms;
    send_direct(m, ml, peer, &w);
    log_info("node=%s hello: %u guests, backend %s", peer, h->n_inventory, h->backend);

    /* Whatever was unanswered goes again, then the inventory is reconciled. */
    dispatch_flush(m->disp, peer);
    struct reconcile_ctx c = {.m = m, .h = h};
    for (uint32_t i = 0; i < h->n_inventory; i++)
        hmap_str_put(&c.inv, h->inventory[i].id, &h->inventory[i]);
    struct db_guest_filter f = {.node = peer, .observed = -1};
    db_guest_list(m->db, &f, collect_guest, &c);
    for (size_t i = 0; i < c.n_ids; i++) {
        const struct msg_inventory_item *item = hmap_str_get(&c.inv, c.ids[i]);
        if (item)
            hmap_str_put(&c.seen, item->id, (void *)item);
        reconcile_guest(m, peer, c.ids[i], item);
        free(c.ids[i]);
    }
    free(c.ids);

    /* Guests the node has that are not ours (here): orphans, never destroyed. */
    json_decref(n->orphans);
    n->orphans = json_array();
    for (uint32_t i = 0; i < h->n_inventory; i++) {
        const struct msg_inventory_item *it = &h->inventory[i];
        if (hmap_str_get(&c.seen, it->id))
            continue;
        json_array_append_new(n->orphans,
                              json_pack("{s:s, s:s, s:I, s:b}", "id", it->id, "name", it->name,
                                        "generation", (json_int_t)it->generation, "running",
                                        it->running));
        log_warning("node=%s guest=%s (%s) is not known to the master: orphan", peer, it->name,
                    it->id);
    }
    hmap_str_free(&c.inv);
    hmap_str_free(&c.seen);
}

static void
on_ack(master_t *m, const char *node, const struct msg_ack *a)
{
    struct dispatch_done done = {0};
    bool matched = dispatch_complete(m->disp, node, a->ref, &done) == 0;
    struct db_guest g = {0};

    if (!a->id[0])
        return;
    if (matched && done.type == MSG_GUEST_DESTROY) {
        /* Gone from the node; a record already gone (forced delete) is fine. */
        int r = guest_remove(m, a->id);
        if (r < 0 && r != -ENOENT)
            log_error("guest %s destroyed on node=%s but its record stays: %s", a->id, node,
                      strerror(-r));
        waiters_answer(m, WAIT_DELETE, a->id, 0, answer_204, NULL);
        return;
    }
    if (db_guest_get_by_id(m->db, a->id, &g) < 0)
        return;
    if (!g.node || strcmp(g.node, node) != 0) {
        db_guest_clear(&g);
        return;
    }
    if (a->generation > 0)
        db_guest_set_applied(m->db, a->id, a->generation);
    if (dispatch_pending(m->disp, node, MSG_GUEST_DESTROY, a->id)) {
        db_guest_clear(&g);
        return;
    }
    enum db_observed obs;
    if (a->running)
        obs = DB_OBS_RUNNING;
    else if (matched && done.type == MSG_GUEST_APPLY && g.desired == DB_DESIRED_RUNNING &&
             dispatch_pending(m->disp, node, MSG_GUEST_START, a->id))
        obs = DB_OBS_PENDING; /* created, its start follows */
    else
        obs = DB_OBS_STOPPED;
    if (matched || obs != g.observed)
        guest_observed(m, a->id, obs, NULL);
    db_guest_clear(&g);
}

static void
on_nack(master_t *m, const char *node, const struct msg_nack *n)
{
    struct dispatch_done done = {0};
    struct nack_ctx ctx = {.nack = n};

    /* Busy means "later": the command stays queued and goes again with backoff. */
    if (n->code == MSG_ERR_BUSY && dispatch_defer(m->disp, node, n->ref, &done) == 0) {
        log_info("node=%s busy with guest %s, %s deferred: %s", node, done.guest,
                 msg_type_name(done.type), n->message);
        return;
    }
    if (dispatch_complete(m->disp, node, n->ref, &done) < 0)
        return;
    log_warning("node=%s refused %s of guest %s: %s: %s", node, msg_type_name(done.type),
                done.guest, msg_error_name(n->code), n->message);
    switch (done.type) {
    case MSG_GUEST_EXEC:
        waiters_answer(m, WAIT_EXEC, NULL, n->ref, answer_nack, &ctx);
        return;
    case MSG_GUEST_DESTROY:
        waiters_answer(m, WAIT_DELETE, done.guest, 0, answer_nack, &ctx);
        return;
    default:
        break;
    }
    guest_observed(m, done.guest, DB_OBS_ERROR, n->message);
}

static void
on_event(master_t *m, const char *node, const struct msg_event *e)
{
    struct db_guest g = {0};
    enum db_observed obs;

    if (!e->id[0])
        return;
    if (!strcmp(e->kind, "started"))
        obs = DB_OBS_RUNNING;
    else if (!strcmp(e->kind, "stopped") || !strcmp(e->kind, "exited"))
        obs = DB_OBS_STOPPED;
    else
        return;
    if (db_guest_get_by_id(m->db, e->id, &g) < 0)
        return;
    if (g.node && !strcmp(g.node, node) &&
        !dispatch_pending(m->disp, node, MSG_GUEST_DESTROY, e->id))
        guest_observed(m, e->id, obs, obs == DB_OBS_STOPPED && e->message[0] ? e->message : NULL);
    db_guest_clear(&g);
}

static void
on_usage(master_t *m, const struct msg_usage *u)
{
    for (uint32_t i = 0; i < u->n_samples; i++) {
        const struct guest_usage *s = &u->samples[i];
        struct usage_entry *e = hmap_str_get(&m->usage, s->id);
        if (!e) {
            struct db_guest g = {0};
            if (db_guest_get_by_id(m->db, s->id, &g) < 0)
                continue;
            db_guest_clear(&g);
            e = xcalloc(1, sizeof(*e));
            memcpy(e->id, s->id, sizeof(e->id));
            hmap_str_put(&m->usage, e->id, e);
        }
        if (s->time_ms >= e->u.time_ms)
            e->u = *s;
    }
}

static void
on_frame(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    struct mlink *ml = userdata;
    master_t *m = ml->master;
    struct msg msg;
    char err[256] = "";
    int r = msg_decode(buf, len, &msg, err, sizeof(err));

    if (r < 0) {
        enum msg_error code = r == -ENOMSG            ? MSG_ERR_UNKNOWN_TYPE
                              : r == -EPROTONOSUPPORT ? MSG_ERR_VERSION
                                                      : MSG_ERR_BAD_REQUEST;
        log_warning("node=%s bad message: %s, ignoring", peer, err);
        send_nack(m, ml, peer, msg.id, code, err);
        msg_clear(&msg);
        return;
    }
    batch_begin(m);
    if (msg.type == MSG_HELLO) {
        on_hello(m, ml, peer, &msg);
        msg_clear(&msg);
        return;
    }
    r = registry_seen(m->reg, peer);
    if (r <= 0) {
        /* A node this master does not know (it restarted, or the node was
         * down): a nack not_found without a guest makes it say hello. */
        send_nack(m, ml, peer, msg.id, MSG_ERR_NOT_FOUND, "unknown node: say hello");
        msg_clear(&msg);
        return;
    }
    struct registry_node *n = registry_get(m->reg, peer);
    if (n)
        n->link = ml->index;
    switch (msg.type) {
    case MSG_HEARTBEAT: {
        struct msg echo = {.type = MSG_HEARTBEAT};
        echo.u.heartbeat = msg.u.heartbeat;
        send_direct(m, ml, peer, &echo);
        break;
    }
    case MSG_ACK:
        on_ack(m, peer, &msg.u.ack);
        break;
    case MSG_NACK:
        on_nack(m, peer, &msg.u.nack);
        break;
    case MSG_USAGE:
        on_usage(m, &msg.u.usage);
        break;
    case MSG_EVENT:
        on_event(m, peer, &msg.u.event);
        break;
    case MSG_EXEC_RESULT:
        if (dispatch_complete(m->disp, peer, msg.u.exec_result.ref, NULL) == 0)
            waiters_answer(m, WAIT_EXEC, NULL, msg.u.exec_result.ref, answer_exec,
                           &msg.u.exec_result);
        break;
    default:
        send_nack(m, ml, peer, msg.id, MSG_ERR_UNKNOWN_TYPE, "not a message a master accepts");
        break;
    }
    msg_clear(&msg);
}

static void
on_node_change(void *userdata, struct registry_node *n, enum db_node_state old)
{
    log_notice("node=%s %s -> %s", n->name, db_node_state_to_string(old),
               db_node_state_to_string(n->state));
}

/* Nodes known from the database that have not said hello to this master
 * (it restarted) are asked to, as soon as their connection is back, rather
 * than at their next heartbeat: until then they take no new guests. A send
 * to a node that is not connected fails at once and costs nothing. */
static void
poke_unwelcomed(master_t *m)
{
    struct msg n = {.type = MSG_NACK};
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    n.u.nack.code = MSG_ERR_NOT_FOUND;
    snprintf(n.u.nack.message, sizeof(n.u.nack.message), "unknown node: say hello");
    if (msg_encode(&n, &buf, &len) < 0)
        return;
    for (size_t i = 0; i < registry_count(m->reg); i++) {
        struct registry_node *rn = registry_at(m->reg, i);
        if (rn->welcomed)
            continue;
        for (unsigned k = 0; k < m->n_links; k++)
            link_send(m->links[k].link, rn->name, buf, len);
    }
}

static void
on_tick(uv_timer_t *t)
{
    master_t *m = t->data;

    uint64_t now = time_mono_ms();

    registry_tick(m->reg, on_node_change, m);
    dispatch_tick(m->disp);
    waiters_expire(m, now);
    if (now >= m->next_poke) {
        m->next_poke = now + 1000;
        poke_unwelcomed(m);
    }
    if (now >= m->next_sweep) {
        uint64_t real = time_real_ms();
        m->next_sweep = now + MASTER_IDEM_SWEEP_MS;
        if (real > MASTER_IDEM_KEEP_MS && db_idem_expire(m->db, real - MASTER_IDEM_KEEP_MS) < 0)
            log_warning("cannot expire old idempotency keys: %s, ignoring", db_errmsg(m->db));
    }
}

/* ---- idempotency ------------------------------------------------------ */

struct idem {
    const char *key; /* the header, NULL = none */
    char hash[40];   /* of method, path and body */
};

static void
request_hash(const struct http_req *req, char out[40])
{
    _cleanup_free_ char *body =
        req->body ? json_dumps(req->body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    _cleanup_free_ char *all = xasprintf("%s %s %s", req->method, req->path, body ? body : "");
    uint64_t a = hmap_hash_str(all), b = 1469598103934665603ULL;

    for (const char *p = all; *p; p++)
        b = (b ^ (uint8_t)*p) * 1099511628211ULL + 0x9e3779b97f4a7c15ULL;
    snprintf(out, 40, "%016" PRIx64 "%016" PRIx64, a, hmap_hash_u64(b));
}

static bool
idem_key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n > MASTER_IDEM_KEY_MAX)
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == ':' || *p == '-'))
            return false;
    return true;
}

/* Returns true when the request was answered (a replay, a conflict, a bad
 * key); otherwise fills id for idem_store. */
static bool
idem_begin(master_t *m, struct http_req *req, struct idem *id)
{
    struct db_idem rec = {0};

    *id = (struct idem){0};
    if (!req->idem_key || strcmp(req->method, "POST") != 0)
        return false;
    if (!idem_key_valid(req->idem_key)) {
        httpd_error(req, 400, "bad_request", "Idempotency-Key",
                    "Idempotency-Key must be 1-36 of letters, digits and -_.:");
        return true;
    }
    id->key = req->idem_key;
    request_hash(req, id->hash);
    int r = db_idem_get(m->db, req->idem_key, &rec);
    if (r == -ENOENT)
        return false;
    if (r < 0) {
        reply_errno(req, r, NULL, "cannot read the idempotency store");
        return true;
    }
    if (strcmp(rec.request_hash, id->hash) != 0 || strcmp(rec.path, req->path) != 0) {
        httpd_error(req, 409, "conflict", "Idempotency-Key",
                    "Idempotency-Key was used with a different request");
    } else {
        json_t *body = rec.body[0] ? json_loads(rec.body, 0, NULL) : NULL;
        log_debug("replaying the response stored under key \"%s\"", rec.key);
        httpd_respond(req, (unsigned)rec.status, body);
    }
    db_idem_clear(&rec);
    return true;
}

static int
idem_store(master_t *m, const struct http_req *req, const struct idem *id, unsigned status,
           json_t *body)
{
    if (!id->key)
        return 0;
    _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : xstrdup("");
    struct db_idem rec = {.key = (char *)id->key,
                          .method = (char *)req->method,
                          .path = (char *)req->path,
                          .request_hash = (char *)id->hash,
                          .status = (int)status,
                          .body = text};
    return db_idem_put(m->db, &rec);
}

/* ---- create ----------------------------------------------------------- */

/* A guest created in the current transaction, to dispatch after commit or
 * to give back on rollback. */
struct created {
    char id[SPEC_ID_LEN + 1];     /* the guest */
    char node[NAME_MAX_LEN + 1];  /* where it goes */
    struct sched_resources res;   /* what it was charged */
    char group[NAME_MAX_LEN + 1]; /* its group, "" none */
    struct guest_spec spec;       /* what to apply */
};

struct create_error {
    unsigned status; /* HTTP status */
    json_t *body;    /* the error body */
};

static void cerr(struct create_error *e, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
cerr(struct create_error *e, int err, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    struct api_error ae;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_error_from_errno(err, &ae);
    e->status = ae.status;
    e->body = api_error_json(ae.code, field, msg);
}

static bool
json_is_name(const json_t *j)
{
    return json_is_string(j) && name_is_valid(json_string_value(j));
}

/* Validates, places and stores one guest inside the caller's transaction.
 * Returns 0 with *out filled and *resp the guest (201), or -1 with *e. */
static int
create_one(master_t *m, const json_t *body, struct created *out, json_t **resp,
           struct create_error *e)
{
    struct sched_label cons[SCHED_MAX_LABELS];
    size_t n_cons = 0;
    struct ipam_request ipreq[SPEC_MAX_ADDRS];
    size_t n_ips = 0;
    char errfield[64] = "";
    int r;

    if (!json_is_object(body)) {
        cerr(e, -EINVAL, "(root)", "the body must be a JSON object");
        return -1;
    }
    json_t *copy = json_deep_copy(body);
    json_t *constraints = json_incref(json_object_get(copy, "constraints"));
    json_t *group = json_incref(json_object_get(copy, "group"));
    json_t *pin = json_incref(json_object_get(copy, "node"));
    json_t *algo = json_incref(json_object_get(copy, "algorithm"));
    json_t *ips = json_incref(json_object_get(copy, "ips"));
    const char *const extra[] = {"constraints", "group", "node", "algorithm", "ips"};
    for (size_t i = 0; i < ARRAY_SIZE(extra); i++)
        json_object_del(copy, extra[i]);

    *out = (struct created){0};
    struct sched_request sreq = {.algo = SCHED_DEFAULT};
    struct sched_result sres;
    const char *field = NULL;

    if (json_object_get(copy, "id") || json_object_get(copy, "generation")) {
        field = json_object_get(copy, "id") ? "id" : "generation";
        cerr(e, -EINVAL, field, "%s is chosen by the master", field);
        goto fail;
    }
    if (!json_is_name(json_object_get(copy, "name"))) {
        cerr(e, -EINVAL, "name", "name is required: 1-63 of a-z, 0-9 and -");
        goto fail;
    }
    if (!json_is_name(json_object_get(copy, "template"))) {
        cerr(e, -EINVAL, "template", "template is required: a name");
        goto fail;
    }
    if (constraints) {
        const char *k;
        json_t *v;
        if (!json_is_object(constraints) || json_object_size(constraints) > SCHED_MAX_LABELS) {
            cerr(e, -EINVAL, "constraints", "constraints must be an object of at most %d labels",
                 SCHED_MAX_LABELS);
            goto fail;
        }
        json_object_foreach(constraints, k, v)
        {
            if (!name_is_valid(k) || !json_is_string(v) ||
                strlen(json_string_value(v)) > SCHED_LABEL_VALUE_MAX) {
                cerr(e, -EINVAL, "constraints", "constraint \"%s\" must be a name with a string",
                     k);
                goto fail;
            }
            cons[n_cons++] = (struct sched_label){k, json_string_value(v)};
        }
    }
    if (group && !json_is_name(group)) {
        cerr(e, -EINVAL, "group", "group must be a name");
        goto fail;
    }
    if (pin && !json_is_name(pin)) {
        cerr(e, -EINVAL, "node", "node must be a name");
        goto fail;
    }
    if (algo) {
        r = json_is_string(algo) ? sched_algo_from_string(json_string_value(algo)) : -EINVAL;
        if (r < 0) {
            cerr(e, -EINVAL, "algorithm", "algorithm must be spread or binpack");
            goto fail;
        }
        sreq.algo = (enum sched_algo)r;
    }
    if (ips) {
        size_t i;
        json_t *v;
        if (!json_is_array(ips) || json_array_size(ips) > SPEC_MAX_ADDRS) {
            cerr(e, -EINVAL, "ips", "ips must be an array of \"auto\" or addresses");
            goto fail;
        }
        json_array_foreach(ips, i, v)
        {
            if (!json_is_string(v)) {
                cerr(e, -EINVAL, "ips", "ips[%zu] must be a string", i);
                goto fail;
            }
            const char *s = json_string_value(v);
            ipreq[n_ips] = (struct ipam_request){.family = AF_UNSPEC};
            if (strcmp(s, "auto") == 0 || strcmp(s, "auto4") == 0)
                ipreq[n_ips].family = strcmp(s, "auto4") == 0 ? AF_INET : AF_UNSPEC;
            else if (strcmp(s, "auto6") == 0)
                ipreq[n_ips].family = AF_INET6;
            else
                ipreq[n_ips].address = s;
            n_ips++;
        }
    }

    struct guest_spec *spec = &out->spec;
    uuid_v4(spec->id);
    spec->generation = 1;
    spec->autostart = true;
    r = spec_from_json(copy, spec, errfield, sizeof(errfield));
    if (r < 0) {
        cerr(e, r, errfield, "invalid field %s", errfield);
        goto fail;
    }
    {
        struct db_guest old = {0};
        if (db_guest_get_by_name(m->db, spec->name, &old) == 0) {
            db_guest_clear(&old);
            cerr(e, -EEXIST, "name", "a guest named \"%s\" exists", spec->name);
            goto fail;
        }
    }
    if (n_ips > m->cfg.max_ips) {
        cerr(e, -E2BIG, "ips", "at most %u addresses per guest", m->cfg.max_ips);
        goto fail;
    }

    spec_resources(m, spec, &sreq.res);
    sreq.res.addrs = (uint32_t)n_ips;
    sreq.constraints = cons;
    sreq.n_constraints = n_cons;
    sreq.pin = pin ? json_string_value(pin) : NULL;
    sreq.group = group ? json_string_value(group) : NULL;
    r = sched_place(m->sched, &sreq, &sres);
    if (r == -ENOSPC || r == -ENOENT) {
        char msg[160];
        /* Nodes exist but none is ready (a master that just restarted, before
         * the nodes said hello again; a network cut): that passes, so it is a
         * 503 to retry, not a 422 that says the request can never fit. */
        bool none_ready = r == -ENOSPC && !sreq.pin && sres.nodes_total > 0 &&
                          sres.rejected[SCHED_F_STATE] == sres.nodes_total;
        if (none_ready) {
            snprintf(msg, sizeof(msg), "no node is ready to take guest \"%s\" (%u known); retry",
                     spec->name, sres.nodes_total);
            e->status = 503;
            e->body = api_error_json("unavailable", NULL, msg);
        } else {
            snprintf(msg, sizeof(msg), "no node can take guest \"%s\"", spec->name);
            e->status = 422;
            e->body = api_error_json("unplaceable", NULL, msg);
        }
        json_object_set_new(json_object_get(e->body, "error"), "placement",
                            api_placement_json(&sres, r == -ENOENT, sreq.pin));
        goto fail;
    }
    if (r < 0) {
        cerr(e, r, NULL, "the placement request is invalid");
        goto fail;
    }
    memcpy(out->node, sres.node, sizeof(out->node));
    out->res = sreq.res;
    if (sreq.group)
        strscpy(out->group, sreq.group, sizeof(out->group));

    /* The addresses, the guest row (and the caller's key) in one transaction. */
    r = db_begin(m->db);
    if (r < 0) {
        cerr(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        goto fail_placed;
    }
    if (n_ips) {
        struct registry_node *rn = registry_get(m->reg, out->node);
        struct db_label nl[PROTO_MAX_LABELS];
        size_t n_nl = 0;
        char ierr[256] = "";
        for (uint32_t i = 0; rn && i < rn->n_labels; i++)
            nl[n_nl++] = (struct db_label){rn->labels[i].key, rn->labels[i].value};
        r = ipam_alloc(m->ipam, spec->id, ipreq, n_ips, nl, n_nl, spec->addrs, ierr, sizeof(ierr));
        if (r < 0) {
            db_rollback(m->db);
            if (r == -ENOSPC)
                cerr(e, -ENOSPC, "ips", "no free address for node %s: %s", out->node, ierr);
            else
                cerr(e, r, "ips", "%s", ierr[0] ? ierr : strerror(-r));
            goto fail_placed;
        }
        spec->n_addrs = (uint32_t)n_ips;
    }
    {
        _cleanup_free_ char *text = spec_text(spec);
        struct db_label labels[SPEC_MAX_LABELS];
        spec_labels(spec, labels);
        struct db_guest g = {.id = spec->id,
                             .name = spec->name,
                             .node = out->node,
                             .spec = text,
                             .group = sreq.group ? (char *)sreq.group : NULL,
                             .generation = 1,
                             .desired = DB_DESIRED_RUNNING,
                             .observed = DB_OBS_PENDING};
        r = db_guest_insert(m->db, &g, labels, spec->n_labels);
    }
    if (r >= 0)
        r = db_commit(m->db);
    else
        db_rollback(m->db);
    if (r < 0) {
        if (r == -EEXIST)
            cerr(e, r, "name", "a guest named \"%s\" exists", spec->name);
        else if (r == -EADDRINUSE)
            cerr(e, r, "ips", "an address is taken");
        else
            cerr(e, r, NULL, "cannot store the guest: %s", db_errmsg(m->db));
        goto fail_placed;
    }
    *resp = guest_json_by_id(m, spec->id);
    json_decref(copy);
    json_decref(constraints);
    json_decref(group);
    json_decref(pin);
    json_decref(algo);
    json_decref(ips);
    return 0;

fail_placed:
    sched_release(m->sched, out->node, &out->res, out->group[0] ? out->group : NULL);
fail:
    json_decref(copy);
    json_decref(constraints);
    json_decref(group);
    json_decref(pin);
    json_decref(algo);
    json_decref(ips);
    return -1;
}

static void
created_dispatch(master_t *m, const struct created *c)
{
    log_info("guest=%s id=%s placed on node=%s", c->spec.name, c->id[0] ? c->id : c->spec.id,
             c->node);
    queue_apply(m, c->node, &c->spec);
    queue_ref(m, c->node, MSG_GUEST_START, c->spec.id, c->spec.generation);
}

static void
created_undo(master_t *m, const struct created *c)
{
    sched_release(m->sched, c->node, &c->res, c->group[0] ? c->group : NULL);
}

/* Parses ?wait=running&timeout=S: 0 = no wait, else the wait in ms; -1 answered. */
static int64_t
wait_param(master_t *m, struct http_req *req)
{
    const char *w = httpd_query(req, "wait"), *t = httpd_query(req, "timeout");
    uint64_t s = m->cfg.wait_default_s;

    if (!w)
        return 0;
    if (strcmp(w, "running") != 0) {
        httpd_error(req, 400, "bad_request", "wait", "wait must be \"running\"");
        return -1;
    }
    if (t) {
        char *end;
        errno = 0;
        s = strtoull(t, &end, 10);
        if (errno || *end || s < 1 || s > 86400) {
            httpd_error(req, 400, "bad_request", "timeout", "timeout must be 1-86400 seconds");
            return -1;
        }
    }
    if (s > MASTER_MAX_WAIT_S)
        s = MASTER_MAX_WAIT_S;
    return (int64_t)s * 1000;
}

static void
h_guest_create(master_t *m, struct http_req *req)
{
    struct idem id;
    struct created c;
    struct create_error e = {0};
    json_t *resp = NULL;
    int64_t wait_ms = wait_param(m, req);
    int r;

    if (wait_ms < 0 || idem_begin(m, req, &id))
        return;
    if (!req->body) {
        httpd_error(req, 400, "bad_request", "(root)", "a JSON body is required");
        return;
    }
    r = db_begin(m->db);
    if (r < 0) {
        reply_errno(req, -EIO, NULL, "the store is not writable");
        return;
    }
    if (create_one(m, req->body, &c, &resp, &e) < 0) {
        db_rollback(m->db);
        httpd_respond(req, e.status, e.body);
        return;
    }
    r = idem_store(m, req, &id, 201, resp);
    if (r >= 0)
        r = db_commit(m->db);
    else
        db_rollback(m->db);
    if (r < 0) {
        created_undo(m, &c);
        json_decref(resp);
        reply_errno(req, r == -EEXIST ? -EBUSY : -EIO, NULL, "cannot store the guest");
        return;
    }
    created_dispatch(m, &c);
    if (wait_ms > 0) {
        struct waiter *w = waiter_add(m, req, WAIT_RUNNING, c.spec.id, c.node, (uint32_t)wait_ms);
        w->status = 201;
        json_decref(resp);
        return;
    }
    httpd_respond(req, 201, resp);
}

static void
h_guest_batch(master_t *m, struct http_req *req)
{
    struct idem id;
    json_t *list = req->body ? json_object_get(req->body, "guests") : NULL;
    size_t n, i;
    json_t *v;
    int r;

    if (idem_begin(m, req, &id))
        return;
    if (!json_is_array(list) || json_object_size(req->body) != 1) {
        httpd_error(req, 400, "bad_request", "guests", "the body must be {\"guests\":[...]}");
        return;
    }
    n = json_array_size(list);
    if (n > MASTER_BATCH_MAX) {
        httpd_error(req, 400, "bad_request", "guests", "at most %d guests per batch",
                    MASTER_BATCH_MAX);
        return;
    }
    struct created *cs = xcalloc(n ? n : 1, sizeof(*cs));
    bool *ok = xcalloc(n ? n : 1, sizeof(*ok));
    json_t *results = json_array();
    r = db_begin(m->db);
    if (r < 0) {
        free(cs);
        free(ok);
        json_decref(results);
        reply_errno(req, -EIO, NULL, "the store is not writable");
        return;
    }
    json_array_foreach(list, i, v)
    {
        struct create_error e = {0};
        json_t *resp = NULL;
        if (create_one(m, v, &cs[i], &resp, &e) == 0) {
            ok[i] = true;
            json_array_append_new(results, resp);
        } else {
            json_array_append_new(results, e.body);
        }
    }
    json_t *body = json_pack("{s:o}", "results", results);
    r = idem_store(m, req, &id, 200, body);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    for (i = 0; i < n; i++) {
        if (!ok[i])
            continue;
        if (r >= 0)
            created_dispatch(m, &cs[i]);
        else
            created_undo(m, &cs[i]);
    }
    free(cs);
    free(ok);
    if (r < 0) {
        json_decref(body);
        reply_errno(req, -EIO, NULL, "cannot store the batch");
        return;
    }
    httpd_respond(req, 200, body);
}

/* ---- guests: read, patch, delete, lifecycle ---------------------------- */

struct list_ctx {
    json_t *items;               /* the page */
    unsigned limit;              /* page size */
    unsigned n;                  /* items so far */
    char last[NAME_MAX_LEN + 1]; /* the last name in the page */
};

static int
list_guest(void *userdata, const struct db_guest *g)
{
    struct list_ctx *c = userdata;
    struct guest_spec spec = {0};
    json_t *j = json_loads(g->spec, 0, NULL);

    if (j && spec_from_json(j, &spec, NULL, 0) == 0)
        json_array_append_new(c->items, api_guest_json(g, &spec));
    json_decref(j);
    strscpy(c->last, g->name, sizeof(c->last));
    c->n++;
    return 0;
}

static int
page_params(struct http_req *req, unsigned *limit, const char **after)
{
    const char *l = httpd_query(req, "limit");

    *after = httpd_query(req, "after");
    *limit = MASTER_LIST_DEFAULT;
    if (l) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(l, &end, 10);
        if (errno || *end || v < 1) {
            httpd_error(req, 400, "bad_request", "limit", "limit must be a positive integer");
            return -1;
        }
        *limit = v > MASTER_LIST_MAX ? MASTER_LIST_MAX : (unsigned)v;
    }
    if (*after && !name_is_valid(*after)) {
        httpd_error(req, 400, "bad_request", "after", "after must be a name");
        return -1;
    }
    return 0;
}

static void
h_guest_list(master_t *m, struct http_req *req)
{
    struct db_guest_filter f = {.observed = -1};
    struct list_ctx c = {.items = json_array()};
    const char *state = httpd_query(req, "state"), *label = httpd_query(req, "label");
    char lkey[NAME_MAX_LEN + 1];
    const char *after;

    if (page_params(req, &c.limit, &after) < 0) {
        json_decref(c.items);
        return;
    }
    f.node = httpd_query(req, "node");
    if (state) {
        f.observed = db_observed_from_string(state);
        if (f.observed < 0) {
            json_decref(c.items);
            httpd_error(req, 400, "bad_request", "state", "unknown state \"%s\"", state);
            return;
        }
    }
    if (label) {
        const char *eq = strchr(label, '=');
        if (!eq || (size_t)(eq - label) > NAME_MAX_LEN) {
            json_decref(c.items);
            httpd_error(req, 400, "bad_request", "label", "label must be key=value");
            return;
        }
        memcpy(lkey, label, (size_t)(eq - label));
        lkey[eq - label] = '\0';
        f.label_key = lkey;
        f.label_value = eq + 1;
    }
    f.after = after;
    f.limit = c.limit;
    int r = db_guest_list(m->db, &f, list_guest, &c);
    if (r < 0) {
        json_decref(c.items);
        reply_errno(req, r, NULL, "cannot list guests");
        return;
    }
    json_t *o = json_pack("{s:o}", "guests", c.items);
    if (c.n == c.limit)
        json_object_set_new(o, "next", json_string(c.last));
    httpd_respond(req, 200, o);
}

static void
h_guest_get(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    int r = guest_load(m, name, NULL, &g, &spec);

    if (r < 0) {
        reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    httpd_respond(req, 200, api_guest_json(&g, &spec));
    db_guest_clear(&g);
}

/* Stores a changed spec/desired state under a new generation. */
static int
guest_store(master_t *m, struct db_guest *g, struct guest_spec *spec, enum db_desired desired)
{
    struct db_label labels[SPEC_MAX_LABELS];
    uint64_t gen = g->generation + 1;

    spec->generation = gen;
    _cleanup_free_ char *text = spec_text(spec);
    spec_labels(spec, labels);
    struct db_guest ng = *g;
    ng.spec = text;
    ng.generation = gen;
    ng.desired = desired;
    int r = db_guest_update(m->db, &ng, labels, spec->n_labels, g->generation);
    if (r >= 0)
        g->generation = gen;
    return r;
}

/* Turns the API's merge patch into spec_from_json's input. */
static int
patch_to_spec_json(const json_t *patch, const struct guest_spec *cur, json_t **out,
                   const char **field)
{
    json_t *in = json_object();
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)patch, k, v)
    {
        if (!strcmp(k, "limits")) {
            const char *lk;
            json_t *lv;
            if (!json_is_object(v))
                goto bad;
            json_t *lim = json_object();
            json_object_foreach(v, lk, lv)
            {
                if (json_is_null(lv))
                    json_object_set_new(lim, lk,
                                        !strcmp(lk, "io") ? json_array() : json_integer(0));
                else
                    json_object_set(lim, lk, lv);
            }
            json_object_set_new(in, "limits", lim);
        } else if (!strcmp(k, "labels")) {
            const char *lk;
            json_t *lv;
            if (!json_is_object(v))
                goto bad;
            json_t *labels = json_object();
            for (uint32_t i = 0; i < cur->n_labels; i++)
                json_object_set_new(labels, cur->labels[i].key, json_string(cur->labels[i].value));
            json_object_foreach(v, lk, lv)
            {
                if (json_is_null(lv))
                    json_object_del(labels, lk);
                else
                    json_object_set(labels, lk, lv);
            }
            json_object_set_new(in, "labels", labels);
        } else if (!strcmp(k, "flags")) {
            json_object_set(in, "flags", v);
        } else {
            *field = k;
            json_decref(in);
            return -EPERM;
        }
        continue;
    bad:
        *field = k;
        json_decref(in);
        return -EINVAL;
    }
    *out = in;
    return 0;
}

static bool
res_grew(const struct sched_resources *a, const struct sched_resources *b)
{
    return b->cpu > a->cpu || b->memory > a->memory || b->disk > a->disk || b->addrs > a->addrs;
}

static void
h_guest_patch(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest g = {0};
    struct guest_spec spec, next;
    const char *field = NULL;
    char errfield[64] = "";
    json_t *in = NULL;
    int r;

    if (!json_is_object(req->body) || json_object_size(req->body) == 0) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be a non-empty object");
        return;
    }
    r = guest_load(m, name, NULL, &g, &spec);
    if (r < 0) {
        reply_errno(req, r, NULL, "no such guest");
        return;
    }
    /* id, name and template are fixed; repeating the current value is harmless. */
    const char *fixed[] = {"id", "name", "template"};
    const char *curv[] = {spec.id, spec.name, spec.template_name};
    json_t *patch = json_deep_copy(req->body);
    for (size_t i = 0; i < ARRAY_SIZE(fixed); i++) {
        json_t *v = json_object_get(patch, fixed[i]);
        if (!v)
            continue;
        if (!json_is_string(v) || strcmp(json_string_value(v), curv[i]) != 0) {
            httpd_error(req, 409, "conflict", fixed[i], "%s cannot be changed", fixed[i]);
            goto out;
        }
        json_object_del(patch, fixed[i]);
    }
    r = patch_to_spec_json(patch, &spec, &in, &field);
    if (r < 0) {
        httpd_error(req, 400, "bad_request", field,
                    r == -EPERM ? "%s cannot be patched" : "%s must be an object", field);
        goto out;
    }
    next = spec;
    r = spec_from_json(in, &next, errfield, sizeof(errfield));
    if (r < 0) {
        httpd_error(req, 400, "bad_request", errfield, "invalid field %s", errfield);
        goto out;
    }
    struct sched_resources old_res, new_res;
    spec_resources(m, &spec, &old_res);
    spec_resources(m, &next, &new_res);
    if (g.node && res_grew(&old_res, &new_res)) {
        struct sched_request sreq = {
            .res = new_res, .pin = g.node, .group = g.group, .algo = SCHED_DEFAULT};
        struct sched_result sres;
        sched_release(m->sched, g.node, &old_res, g.group);
        r = sched_place(m->sched, &sreq, &sres);
        if (r < 0) {
            sched_reserve(m->sched, g.node, &old_res, g.group);
            reply_unplaceable(req, g.name, &sres, r == -ENOENT, g.node);
            goto out;
        }
    } else if (g.node) {
        sched_release(m->sched, g.node, &old_res, g.group);
        sched_reserve(m->sched, g.node, &new_res, g.group);
    }
    r = guest_store(m, &g, &next, g.desired);
    if (r < 0) {
        if (g.node) {
            sched_release(m->sched, g.node, &new_res, g.group);
            sched_reserve(m->sched, g.node, &old_res, g.group);
        }
        reply_errno(req, r == -ESTALE ? -EBUSY : r, NULL, "cannot store the change");
        goto out;
    }
    if (g.node)
        queue_apply(m, g.node, &next);
    httpd_respond(req, 200, guest_json_by_id(m, g.id));
out:
    json_decref(patch);
    json_decref(in);
    db_guest_clear(&g);
}

static void
h_guest_delete(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    const char *force = httpd_query(req, "force");
    int r = guest_load(m, name, NULL, &g, &spec);

    if (r < 0) {
        reply_errno(req, r, NULL, "no such guest");
        return;
    }
    bool now = !g.node || g.observed == DB_OBS_LOST || (force && !strcmp(force, "true"));
    if (!now && !node_connected(m, g.node)) {
        httpd_error(req, 503, "unavailable", NULL,
                    "node %s is not connected; ?force=true deletes the record without it", g.node);
        db_guest_clear(&g);
        return;
    }
    if (now) {
        r = guest_remove(m, g.id);
        if (r < 0)
            reply_errno(req, r, NULL, "cannot delete the guest");
        else
            httpd_respond(req, 204, NULL);
        waiters_answer(m, WAIT_DELETE, g.id, 0, answer_204, NULL);
        db_guest_clear(&g);
        return;
    }
    /* The destroy replaces whatever was still to be sent about the guest. */
    dispatch_forget_guest(m->disp, g.node, g.id);
    queue_ref(m, g.node, MSG_GUEST_DESTROY, g.id, g.generation);
    waiter_add(m, req, WAIT_DELETE, g.id, g.node, m->cfg.wait_default_s * 1000);
    db_guest_clear(&g);
}

enum lifecycle { LC_START, LC_STOP, LC_RESTART };

static void
h_guest_lifecycle(master_t *m, struct http_req *req, const char *name, enum lifecycle op)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct idem id;
    int64_t wait_ms = op != LC_STOP ? wait_param(m, req) : 0;
    int r;

    if (wait_ms < 0 || idem_begin(m, req, &id))
        return;
    r = guest_load(m, name, NULL, &g, &spec);
    if (r < 0) {
        reply_errno(req, r, NULL, "no such guest");
        return;
    }
    if (!g.node || g.observed == DB_OBS_LOST || g.observed == DB_OBS_UNKNOWN) {
        httpd_error(req, 409, "conflict", NULL, "guest \"%s\" is %s", g.name,
                    db_observed_to_string(g.observed));
        goto out;
    }
    if (dispatch_pending(m->disp, g.node, MSG_GUEST_DESTROY, g.id)) {
        httpd_error(req, 409, "conflict", NULL, "guest \"%s\" is being deleted", g.name);
        goto out;
    }
    enum db_desired want = op == LC_STOP ? DB_DESIRED_STOPPED : DB_DESIRED_RUNNING;
    r = db_begin(m->db);
    if (r < 0) {
        reply_errno(req, -EIO, NULL, "the store is not writable");
        goto out;
    }
    if (want != g.desired)
        r = guest_store(m, &g, &spec, want);
    if (r >= 0) {
        db_guest_clear(&g);
        r = guest_load(m, NULL, spec.id, &g, &spec);
    }
    json_t *resp = r >= 0 ? api_guest_json(&g, &spec) : NULL;
    if (r >= 0)
        r = idem_store(m, req, &id, 200, resp);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(resp);
        reply_errno(req, r == -ESTALE ? -EBUSY : -EIO, NULL, "cannot store the change");
        goto out;
    }
    if (g.applied_generation < g.generation)
        queue_apply(m, g.node, &spec);
    if (op == LC_STOP || op == LC_RESTART)
        queue_ref(m, g.node, MSG_GUEST_STOP, g.id, g.generation);
    if (op == LC_START || op == LC_RESTART)
        queue_ref(m, g.node, MSG_GUEST_START, g.id, g.generation);
    if (wait_ms > 0 && !(op == LC_START && g.observed == DB_OBS_RUNNING)) {
        struct waiter *w = waiter_add(m, req, WAIT_RUNNING, g.id, g.node, (uint32_t)wait_ms);
        w->status = 200;
        json_decref(resp);
        goto out;
    }
    httpd_respond(req, 200, resp);
out:
    db_guest_clear(&g);
}

static void
h_guest_exec(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct idem id;
    json_t *argv = req->body ? json_object_get(req->body, "argv") : NULL;
    json_t *tmo = req->body ? json_object_get(req->body, "timeout") : NULL;
    const char *k;
    json_t *v;
    int r;

    if (idem_begin(m, req, &id))
        return;
    if (!json_is_object(req->body)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be {\"argv\":[...]}");
        return;
    }
    json_object_foreach(req->body, k, v)
    {
        if (strcmp(k, "argv") != 0 && strcmp(k, "timeout") != 0) {
            httpd_error(req, 400, "bad_request", k, "unknown member %s", k);
            return;
        }
    }
    if (!json_is_array(argv) || json_array_size(argv) < 1 ||
        json_array_size(argv) > PROTO_MAX_ARGV) {
        httpd_error(req, 400, "bad_request", "argv", "argv must hold 1-%d strings", PROTO_MAX_ARGV);
        return;
    }
    json_int_t secs = MASTER_EXEC_DEFAULT_S;
    if (tmo) {
        if (!json_is_integer(tmo) || json_integer_value(tmo) < 1 ||
            json_integer_value(tmo) > MASTER_MAX_WAIT_S - MASTER_EXEC_GRACE_MS / 1000) {
            httpd_error(req, 400, "bad_request", "timeout", "timeout must be 1-%d seconds",
                        MASTER_MAX_WAIT_S - MASTER_EXEC_GRACE_MS / 1000);
            return;
        }
        secs = json_integer_value(tmo);
    }
    r = guest_load(m, name, NULL, &g, &spec);
    if (r < 0) {
        reply_errno(req, r, NULL, "no such guest");
        return;
    }
    if (!node_connected(m, g.node)) {
        httpd_error(req, 503, "unavailable", NULL, "node %s is not connected",
                    g.node ? g.node : "(none)");
        goto out;
    }
    struct msg c = {.type = MSG_GUEST_EXEC};
    size_t i;
    strscpy(c.u.exec.id, g.id, sizeof(c.u.exec.id));
    c.u.exec.argc = (uint32_t)json_array_size(argv);
    c.u.exec.argv = xcalloc(c.u.exec.argc + 1, sizeof(char *));
    c.u.exec.timeout_ms = (uint32_t)secs * 1000;
    json_array_foreach(argv, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > PROTO_MAX_STRING) {
            free(c.u.exec.argv);
            httpd_error(req, 400, "bad_request", "argv", "argv[%zu] must be a string", i);
            goto out;
        }
        c.u.exec.argv[i] = (char *)json_string_value(v);
    }
    int64_t ref = dispatch_queue(m->disp, g.node, &c);
    free(c.u.exec.argv);
    if (ref < 0) {
        reply_errno(req, ref == -EINVAL ? -EINVAL : -EHOSTUNREACH, NULL,
                    ref == -EINVAL ? "the command cannot be sent" : "the node is not reachable");
        goto out;
    }
    struct waiter *w =
        waiter_add(m, req, WAIT_EXEC, g.id, g.node, (uint32_t)secs * 1000 + MASTER_EXEC_GRACE_MS);
    w->ref = (uint64_t)ref;
    if (id.key) {
        strscpy(w->idem, id.key, sizeof(w->idem));
        memcpy(w->idem_hash, id.hash, sizeof(w->idem_hash));
    }
out:
    db_guest_clear(&g);
}

/* The latest usage sample of the guest called name, with the guest's row in
 * *g (the caller clears it). Answers the 404 itself and returns NULL when
 * there is no such guest or no sample yet. */
static const struct guest_usage *
latest_usage(master_t *m, struct http_req *req, const char *name, struct db_guest *g)
{
    int r = db_guest_get_by_name(m->db, name, g);

    if (r < 0) {
        reply_errno(req, r, NULL, "no such guest");
        return NULL;
    }
    struct usage_entry *e = hmap_str_get(&m->usage, g->id);
    if (!e) {
        httpd_error(req, 404, "not_found", NULL, "no usage sample of guest \"%s\" yet", name);
        return NULL;
    }
    return &e->u;
}

static void
h_guest_usage(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest g = {0};
    const struct guest_usage *u = latest_usage(m, req, name, &g);

    if (u)
        httpd_respond(req, 200, api_usage_json(u));
    db_guest_clear(&g);
}

/* ---- addresses -------------------------------------------------------- */

/* Parses {"ip":"auto"|"auto4"|"auto6"|ADDR} into an ipam request whose
 * address points into body. Returns 0 or -EINVAL. */
static int
ip_request(const json_t *body, struct ipam_request *out)
{
    json_t *v = json_is_object(body) ? json_object_get(body, "ip") : NULL;
    const char *s = json_string_value(v);
    struct netaddr a;

    if (!s || json_object_size(body) != 1)
        return -EINVAL;
    *out = (struct ipam_request){.family = AF_UNSPEC};
    if (strcmp(s, "auto") == 0)
        return 0;
    if (strcmp(s, "auto4") == 0 || strcmp(s, "auto6") == 0) {
        out->family = s[4] == '4' ? AF_INET : AF_INET6;
        return 0;
    }
    if (netaddr_parse_host(s, &a) < 0)
        return -EINVAL;
    out->address = s;
    return 0;
}

/* The node's labels as ipam wants them (pointers into the registry). */
static size_t
node_labels(master_t *m, const char *node, struct db_label *out)
{
    struct registry_node *rn = registry_get(m->reg, node);
    size_t n = 0;

    for (uint32_t i = 0; rn && i < rn->n_labels; i++)
        out[n++] = (struct db_label){rn->labels[i].key, rn->labels[i].value};
    return n;
}

/* POST /v1/guests/{name}/ips: one more address, from a pool that serves the
 * guest's node. The allocation and the new generation share a transaction,
 * so a failed store leaves neither; the node then diffs the addresses of the
 * running guest when the apply arrives. */
static void
h_guest_ip_add(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct ipam_request rq;
    struct db_label nl[PROTO_MAX_LABELS];
    char ierr[256] = "";
    struct idem id;
    json_t *o = NULL;
    int r;

    if (idem_begin(m, req, &id))
        return;
    if (ip_request(req->body, &rq) < 0) {
        httpd_error(req, 400, "bad_request", "ip",
                    "the body must be {\"ip\": \"auto\", \"auto4\", \"auto6\" or an address}");
        return;
    }
    r = guest_load(m, name, NULL, &g, &spec);
    if (r < 0) {
        reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    if (!g.node) {
        httpd_error(req, 409, "conflict", NULL, "guest \"%s\" is on no node", name);
        goto out;
    }
    if (spec.n_addrs >= m->cfg.max_ips || spec.n_addrs >= SPEC_MAX_ADDRS) {
        httpd_error(req, 409, "conflict", "ip", "guest \"%s\" holds %u addresses, the most allowed",
                    name, spec.n_addrs);
        goto out;
    }
    /* The node's address count is a scheduled resource like memory. */
    struct sched_resources old_res, new_res;
    spec_resources(m, &spec, &old_res);
    new_res = old_res;
    new_res.addrs++;
    struct sched_request sreq = {
        .res = new_res, .pin = g.node, .group = g.group, .algo = SCHED_DEFAULT};
    struct sched_result sres;
    sched_release(m->sched, g.node, &old_res, g.group);
    r = sched_place(m->sched, &sreq, &sres);
    if (r < 0) {
        sched_reserve(m->sched, g.node, &old_res, g.group);
        reply_unplaceable(req, g.name, &sres, r == -ENOENT, g.node);
        goto out;
    }

    r = db_begin(m->db);
    if (r >= 0) {
        size_t n_nl = node_labels(m, g.node, nl);
        r = ipam_alloc(m->ipam, g.id, &rq, 1, nl, n_nl, &spec.addrs[spec.n_addrs], ierr,
                       sizeof(ierr));
        if (r >= 0) {
            spec.n_addrs++;
            r = guest_store(m, &g, &spec, g.desired);
        }
        /* A retry with the same key replays this answer, not a second address. */
        if (r >= 0) {
            o = guest_json_by_id(m, g.id);
            r = o ? idem_store(m, req, &id, 200, o) : -EIO;
        }
        if (r >= 0)
            r = db_commit(m->db);
        else
            db_rollback(m->db);
    }
    if (r < 0) {
        json_decref(o);
        sched_release(m->sched, g.node, &new_res, g.group);
        sched_reserve(m->sched, g.node, &old_res, g.group);
        if (r == -ENOSPC)
            httpd_error(req, 409, "conflict", "ip", "no free address for node %s: %s", g.node,
                        ierr);
        else if (r == -ESTALE)
            reply_errno(req, -EBUSY, NULL, "the guest changed meanwhile; retry");
        else
            reply_errno(req, r, "ip", ierr[0] ? ierr : "cannot store the address");
        goto out;
    }
    char buf[NETADDR_STRLEN];
    log_info("guest=%s address %s added (generation %" PRIu64 ")", g.name,
             netaddr_format(&spec.addrs[spec.n_addrs - 1], false, buf, sizeof(buf)), g.generation);
    queue_apply(m, g.node, &spec);
    httpd_respond(req, 200, o);
out:
    db_guest_clear(&g);
}

/* DELETE /v1/guests/{name}/ips/{addr}: the address goes back to its pool in
 * the transaction that stores the spec without it. */
static void
h_guest_ip_del(master_t *m, struct http_req *req, const char *name, const char *addr)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct netaddr a;
    char buf[NETADDR_STRLEN];
    uint32_t at;
    int r;

    if (netaddr_parse_host(addr, &a) < 0) {
        httpd_error(req, 400, "bad_request", "ip", "\"%s\" is not an address", addr);
        return;
    }
    r = guest_load(m, name, NULL, &g, &spec);
    if (r < 0) {
        reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    for (at = 0; at < spec.n_addrs && !netaddr_equal(&spec.addrs[at], &a); at++)
        ;
    if (at == spec.n_addrs) {
        httpd_error(req, 404, "not_found", "ip", "guest \"%s\" has no address %s", name, addr);
        goto out;
    }
    struct sched_resources old_res, new_res;
    spec_resources(m, &spec, &old_res);
    netaddr_format(&a, false, buf, sizeof(buf));
    memmove(&spec.addrs[at], &spec.addrs[at + 1], (spec.n_addrs - at - 1) * sizeof(spec.addrs[0]));
    spec.n_addrs--;
    spec_resources(m, &spec, &new_res);

    r = db_begin(m->db);
    if (r >= 0) {
        r = ipam_release(m->ipam, buf);
        /* An address in the spec without a row (a store repaired by hand)
         * still leaves the spec. */
        if (r == -ENOENT)
            r = 0;
        if (r >= 0)
            r = guest_store(m, &g, &spec, g.desired);
        if (r >= 0)
            r = db_commit(m->db);
        else
            db_rollback(m->db);
    }
    if (r < 0) {
        reply_errno(req, r == -ESTALE ? -EBUSY : r, NULL, "cannot store the change");
        goto out;
    }
    if (g.node) {
        sched_release(m->sched, g.node, &old_res, g.group);
        sched_reserve(m->sched, g.node, &new_res, g.group);
        queue_apply(m, g.node, &spec);
    }
    log_info("guest=%s address %s removed (generation %" PRIu64 ")", g.name, buf, g.generation);
    httpd_respond(req, 200, guest_json_by_id(m, g.id));
out:
    db_guest_clear(&g);
}

/* FreeVPS trafstat: a traffic counter that a read can reset. The node's
 * counters are cumulative and monotonic (baselines survive restarts), so the
 * resettable counter is the latest sample minus a mark stored at the last
 * reset; a reset answers the values it ends and moves the mark. A retried
 * reset with the same Idempotency-Key replays its answer, it does not reset
 * twice. */
/* A counter below its mark started again (a guest rebuilt from nothing):
 * everything it counted is new. */
static uint64_t
since_mark(uint64_t now, uint64_t mark)
{
    return now >= mark ? now - mark : now;
}

static void
h_guest_traffic(master_t *m, struct http_req *req, const char *name, bool reset)
{
    struct db_guest g = {0};
    struct db_traffic_mark mark = {0};
    struct idem id;
    char since[40] = "", sampled[40];
    int r;

    if (reset && idem_begin(m, req, &id))
        return;
    const struct guest_usage *u = latest_usage(m, req, name, &g);
    if (!u)
        goto out;
    r = db_traffic_mark_get(m->db, g.id, &mark);
    if (r < 0 && r != -ENOENT) {
        reply_errno(req, -EIO, NULL, "cannot read the traffic mark");
        goto out;
    }
    if (mark.since_ms)
        api_time_format(mark.since_ms, since, sizeof(since));
    api_time_format(u->time_ms, sampled, sizeof(sampled));
    json_t *o =
        json_pack("{s:I, s:I, s:I, s:I, s:o, s:s, s:b}", "rx_bytes",
                  (json_int_t)since_mark(u->net_rx_bytes, mark.rx_bytes), "tx_bytes",
                  (json_int_t)since_mark(u->net_tx_bytes, mark.tx_bytes), "rx_packets",
                  (json_int_t)since_mark(u->net_rx_packets, mark.rx_packets), "tx_packets",
                  (json_int_t)since_mark(u->net_tx_packets, mark.tx_packets), "since",
                  since[0] ? json_string(since) : json_null(), "sampled", sampled, "reset", reset);
    if (!reset) {
        httpd_respond(req, 200, o);
        goto out;
    }
    struct db_traffic_mark now = {
        .rx_bytes = u->net_rx_bytes,
        .tx_bytes = u->net_tx_bytes,
        .rx_packets = u->net_rx_packets,
        .tx_packets = u->net_tx_packets,
        .since_ms = u->time_ms,
    };
    r = db_begin(m->db);
    if (r >= 0) {
        r = db_traffic_mark_put(m->db, g.id, &now);
        if (r >= 0)
            r = idem_store(m, req, &id, 200, o);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r < 0) {
        json_decref(o);
        reply_errno(req, -EIO, NULL, "cannot store the traffic mark");
        goto out;
    }
    log_notice("guest=%s traffic counter reset", name);
    httpd_respond(req, 200, o);
out:
    db_guest_clear(&g);
}

/* ---- nodes ------------------------------------------------------------ */

static json_t *
node_json(master_t *m, const struct registry_node *n, bool with_orphans)
{
    struct sched_node_info info;
    bool have = sched_node_info(m->sched, n->name, &info) == 0;
    return api_node_json(n, have ? &info : NULL, with_orphans);
}

struct node_list_ctx {
    master_t *m;                 /* the master */
    json_t *items;               /* the page */
    unsigned n;                  /* rows seen */
    char last[NAME_MAX_LEN + 1]; /* last name */
};

static int
list_node(void *userdata, const struct db_node *dn)
{
    struct node_list_ctx *c = userdata;
    struct registry_node *n = registry_get(c->m->reg, dn->name);

    if (n)
        json_array_append_new(c->items, node_json(c->m, n, false));
    strscpy(c->last, dn->name, sizeof(c->last));
    c->n++;
    return 0;
}

static void
h_node_list(master_t *m, struct http_req *req)
{
    struct node_list_ctx c = {.m = m, .items = json_array()};
    unsigned limit;
    const char *after;

    if (page_params(req, &limit, &after) < 0) {
        json_decref(c.items);
        return;
    }
    int r = db_node_list(m->db, after, limit, list_node, &c);
    if (r < 0) {
        json_decref(c.items);
        reply_errno(req, r, NULL, "cannot list nodes");
        return;
    }
    json_t *o = json_pack("{s:o}", "nodes", c.items);
    if (c.n == limit)
        json_object_set_new(o, "next", json_string(c.last));
    httpd_respond(req, 200, o);
}

static void
h_node_get(master_t *m, struct http_req *req, const char *name)
{
    struct registry_node *n = registry_get(m->reg, name);

    if (!n) {
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", name);
        return;
    }
    httpd_respond(req, 200, node_json(m, n, true));
}

struct routes_ctx {
    json_t *routes; /* the answer's array */
    int err;        /* first unreadable spec, 0 = none */
};

static int
route_guest(void *userdata, const struct db_guest *g)
{
    struct routes_ctx *c = userdata;
    json_t *j = json_loads(g->spec, 0, NULL);
    struct guest_spec spec = {0};
    char ifname[16], buf[NETADDR_STRLEN];

    if (!j || spec_from_json(j, &spec, NULL, 0) < 0) {
        json_decref(j);
        log_debug("guest=%s stored spec unreadable, its routes are left out", g->name);
        c->err = -EBADMSG;
        return 0;
    }
    json_decref(j);
    spec_ifname(g->id, ifname);
    for (uint32_t i = 0; i < spec.n_addrs; i++)
        json_array_append_new(c->routes,
                              json_pack("{s:s, s:s, s:s}", "address",
                                        netaddr_format(&spec.addrs[i], false, buf, sizeof(buf)),
                                        "interface", ifname, "guest", g->name));
    return 0;
}

/* GET /v1/nodes/{name}/routes: address -> host interface -> guest, from
 * the master's state (what the node is told to have). */
static void
h_node_routes(master_t *m, struct http_req *req, const char *name)
{
    struct db_guest_filter f = {.node = name, .observed = -1};
    struct routes_ctx c = {.routes = json_array()};

    if (!registry_get(m->reg, name)) {
        json_decref(c.routes);
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", name);
        return;
    }
    int r = db_guest_list(m->db, &f, route_guest, &c);
    if (r < 0) {
        json_decref(c.routes);
        reply_errno(req, r, NULL, "cannot list the node's guests");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:s, s:o}", "node", name, "routes", c.routes));
}

static void
h_node_cordon(master_t *m, struct http_req *req, const char *name, bool cordon)
{
    struct idem id;

    if (idem_begin(m, req, &id))
        return;
    struct registry_node *n = registry_get(m->reg, name);
    if (!n) {
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", name);
        return;
    }
    int r = db_begin(m->db);
    if (r < 0) {
        reply_errno(req, -EIO, NULL, "the store is not writable");
        return;
    }
    r = registry_cordon(m->reg, name, cordon);
    json_t *o = node_json(m, n, true);
    if (r >= 0)
        r = idem_store(m, req, &id, 200, o);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        reply_errno(req, -EIO, NULL, "cannot store the cordon");
        return;
    }
    log_notice("node=%s %s", name, cordon ? "cordoned" : "uncordoned");
    httpd_respond(req, 200, o);
}

/* ---- pools ------------------------------------------------------------ */

static json_t *
pool_json(master_t *m, const struct db_pool *p)
{
    struct ipam_pool_info info;
    bool have = ipam_pool_info(m->ipam, p->name, &info) == 0;
    return api_pool_json(p, have ? &info : NULL);
}

struct pool_list_ctx {
    master_t *m;   /* the master */
    json_t *items; /* the list */
};

static int
list_pool(void *userdata, const struct db_pool *p)
{
    struct pool_list_ctx *c = userdata;
    json_array_append_new(c->items, pool_json(c->m, p));
    return 0;
}

static void
h_pool_list(master_t *m, struct http_req *req)
{
    struct pool_list_ctx c = {.m = m, .items = json_array()};
    int r = db_pool_list(m->db, list_pool, &c);

    if (r < 0) {
        json_decref(c.items);
        reply_errno(req, r, NULL, "cannot list pools");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:o}", "pools", c.items));
}

static void
h_pool_create(master_t *m, struct http_req *req)
{
    struct idem id;
    json_t *b = req->body;
    struct db_label sel[IPAM_MAX_SELECTOR];
    size_t n_sel = 0;
    const char *k;
    json_t *v;
    char err[256] = "";

    if (idem_begin(m, req, &id))
        return;
    if (!json_is_object(b)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be a JSON object");
        return;
    }
    json_object_foreach(b, k, v)
    {
        if (strcmp(k, "name") && strcmp(k, "cidr") && strcmp(k, "gateway") &&
            strcmp(k, "selector")) {
            httpd_error(req, 400, "bad_request", k, "unknown member %s", k);
            return;
        }
    }
    json_t *name = json_object_get(b, "name"), *cidr = json_object_get(b, "cidr");
    json_t *gw = json_object_get(b, "gateway"), *selector = json_object_get(b, "selector");
    if (!json_is_name(name)) {
        httpd_error(req, 400, "bad_request", "name", "name is required: a name");
        return;
    }
    if (!json_is_string(cidr)) {
        httpd_error(req, 400, "bad_request", "cidr", "cidr is required");
        return;
    }
    if (gw && !json_is_string(gw)) {
        httpd_error(req, 400, "bad_request", "gateway", "gateway must be an address");
        return;
    }
    if (selector) {
        if (!json_is_object(selector) || json_object_size(selector) > IPAM_MAX_SELECTOR) {
            httpd_error(req, 400, "bad_request", "selector",
                        "selector must be an object of at most %d labels", IPAM_MAX_SELECTOR);
            return;
        }
        json_object_foreach(selector, k, v)
        {
            if (!json_is_string(v)) {
                httpd_error(req, 400, "bad_request", "selector", "selector values are strings");
                return;
            }
            sel[n_sel++] = (struct db_label){k, json_string_value(v)};
        }
    }
    struct ipam_pool_def def = {.name = json_string_value(name),
                                .cidr = json_string_value(cidr),
                                .gateway = gw ? json_string_value(gw) : NULL,
                                .selector = sel,
                                .n_selector = n_sel};
    int r = db_begin(m->db);
    if (r < 0) {
        reply_errno(req, -EIO, NULL, "the store is not writable");
        return;
    }
    r = ipam_pool_create(m->ipam, &def, err, sizeof(err));
    if (r < 0) {
        db_rollback(m->db);
        reply_errno(req, r == -EADDRINUSE ? -EEXIST : r, r == -EINVAL ? "cidr" : NULL,
                    err[0] ? err : strerror(-r));
        return;
    }
    struct db_pool p = {0};
    json_t *o = NULL;
    r = db_pool_get(m->db, def.name, &p);
    if (r >= 0) {
        o = pool_json(m, &p);
        db_pool_clear(&p);
        r = idem_store(m, req, &id, 201, o);
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        reply_errno(req, -EIO, NULL, "cannot store the pool");
        return;
    }
    log_notice("pool=%s %s created", def.name, def.cidr);
    httpd_respond(req, 201, o);
}

static void
h_pool_delete(master_t *m, struct http_req *req, const char *name)
{
    int r = ipam_pool_delete(m->ipam, name);

    if (r == -EBUSY) {
        httpd_error(req, 409, "conflict", NULL, "pool \"%s\" has addresses allocated", name);
        return;
    }
    if (r < 0) {
        reply_errno(req, r, NULL, r == -ENOENT ? "no such pool" : "cannot delete the pool");
        return;
    }
    httpd_respond(req, 204, NULL);
}

/* ---- the HTTP entry --------------------------------------------------- */

static void
on_request(struct http_req *req, void *userdata)
{
    master_t *m = userdata;
    struct api_match am;

    if (m->stopping) {
        httpd_error(req, 503, "unavailable", NULL, "the master is shutting down");
        return;
    }
    int r = api_route(req->method, req->path, &am);
    if (r == -EOPNOTSUPP) {
        httpd_error(req, 405, "bad_request", NULL, "%s is not allowed on %s", req->method,
                    req->path);
        return;
    }
    if (r < 0) {
        httpd_error(req, 404, "not_found", NULL, "no such object or route: %s", req->path);
        return;
    }
    log_debug("%s %s -> %s", req->method, req->path, api_route_name(am.route));
    switch (am.route) {
    case API_HEALTH:
        /* A write lock proves the store takes writes (a read-only file does not). */
        r = db_begin(m->db);
        if (r >= 0)
            r = db_commit(m->db);
        if (r < 0) {
            httpd_error(req, 503, "unavailable", NULL, "the store is not writable: %s",
                        db_errmsg(m->db));
            break;
        }
        httpd_respond(req, 200,
                      json_pack("{s:s, s:s, s:I}", "status", "ok", "version", API_VERSION, "nodes",
                                (json_int_t)registry_count(m->reg)));
        break;
    case API_NODES_LIST:
        h_node_list(m, req);
        break;
    case API_NODE_GET:
        h_node_get(m, req, am.name);
        break;
    case API_NODE_CORDON:
    case API_NODE_UNCORDON:
        h_node_cordon(m, req, am.name, am.route == API_NODE_CORDON);
        break;
    case API_GUESTS_LIST:
        h_guest_list(m, req);
        break;
    case API_GUEST_CREATE:
        h_guest_create(m, req);
        break;
    case API_GUEST_BATCH:
        h_guest_batch(m, req);
        break;
    case API_GUEST_GET:
        h_guest_get(m, req, am.name);
        break;
    case API_GUEST_PATCH:
        h_guest_patch(m, req, am.name);
        break;
    case API_GUEST_DELETE:
        h_guest_delete(m, req, am.name);
        break;
    case API_GUEST_START:
        h_guest_lifecycle(m, req, am.name, LC_START);
        break;
    case API_GUEST_STOP:
        h_guest_lifecycle(m, req, am.name, LC_STOP);
        break;
    case API_GUEST_RESTART:
        h_guest_lifecycle(m, req, am.name, LC_RESTART);
        break;
    case API_GUEST_EXEC:
        h_guest_exec(m, req, am.name);
        break;
    case API_GUEST_USAGE:
        h_guest_usage(m, req, am.name);
        break;
    case API_GUEST_TRAFFIC:
    case API_GUEST_TRAFFIC_RESET:
        h_guest_traffic(m, req, am.name, am.route == API_GUEST_TRAFFIC_RESET);
        break;
    case API_POOLS_LIST:
        h_pool_list(m, req);
        break;
    case API_POOL_CREATE:
        h_pool_create(m, req);
        break;
    case API_POOL_DELETE:
        h_pool_delete(m, req, am.name);
        break;
    case API_GUEST_IP_ADD:
        h_guest_ip_add(m, req, am.name);
        break;
    case API_GUEST_IP_DEL:
        h_guest_ip_del(m, req, am.name, am.arg);
        break;
    case API_NODE_ROUTES:
        h_node_routes(m, req, am.name);
        break;
    default:
        httpd_error(req, 404, "not_found", NULL, "no such route");
        break;
    }
}

/* ---- life ------------------------------------------------------------- */

static int
reserve_guest(void *userdata, const struct db_guest *g)
{
    master_t *m = userdata;
    struct guest_spec spec = {0};
    struct sched_resources res;
    json_t *j = json_loads(g->spec, 0, NULL);

    if (j && spec_from_json(j, &spec, NULL, 0) == 0 && g->node) {
        spec_resources(m, &spec, &res);
        if (sched_reserve(m->sched, g->node, &res, g->group) < 0)
            log_warning("guest=%s node=%s not in the index, ignoring", g->name, g->node);
    }
    json_decref(j);
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

int
master_new(uv_loop_t *loop, const struct master_config *cfg, master_t **out, char *err,
           size_t errlen)
{
    master_t *m = xcalloc(1, sizeof(*m));
    struct master_config def;
    int r;

    master_config_default(&def);
    m->loop = loop;
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
#undef DEF
    if (m->cfg.usage_ms < 100)
        m->cfg.usage_ms = 100;

    r = db_open(m->cfg.db_path, &m->db, err, errlen);
    if (r < 0)
        goto fail;
    m->sched = sched_new(&m->cfg.sched);
    struct registry_config rc = {.suspect_after_ms = m->cfg.suspect_after_ms,
                                 .down_after_ms = m->cfg.down_after_ms};
    r = registry_new(m->db, m->sched, &rc, &m->reg);
    if (r < 0) {
        snprintf(err, errlen, "cannot load nodes: %s", db_errmsg(m->db));
        goto fail;
    }
    struct db_guest_filter all = {.observed = -1};
    r = db_guest_list(m->db, &all, reserve_guest, m);
    if (r < 0) {
        snprintf(err, errlen, "cannot load guests: %s", db_errmsg(m->db));
        goto fail;
    }
    struct ipam_config ic = {.max_per_guest = m->cfg.max_ips};
    r = ipam_new(m->db, &ic, &m->ipam, err, errlen);
    if (r < 0)
        goto fail;
    struct dispatch_config dc = {.resend_ms = m->cfg.resend_ms,
                                 .send = dispatch_send_cb,
                                 .ready = dispatch_ready_cb,
                                 .userdata = m};
    m->disp = dispatch_new(&dc);

    if (m->cfg.n_binds == 0) {
        m->cfg.binds[0] = "tcp://127.0.0.1:7401";
        m->cfg.n_binds = 1;
    }
    for (unsigned i = 0; i < m->cfg.n_binds && i < MASTER_MAX_BINDS; i++) {
        struct mlink *ml = &m->links[i];
        ml->master = m;
        ml->index = (int)i;
        ipc_parent_dir(m->cfg.binds[i]);
        ml->link = link_new_router(m->cfg.binds[i], &r);
        if (!ml->link) {
            snprintf(err, errlen, "cannot bind %s: %s", m->cfg.binds[i], strerror(-r));
            goto fail;
        }
        m->n_links++;
        r = zwatch_init(loop, &ml->watch, ml->link, on_frame, ml);
        if (r < 0) {
            snprintf(err, errlen, "cannot watch %s: %s", m->cfg.binds[i], strerror(-r));
            goto fail;
        }
        ml->watching = true;
    }
    uv_prepare_init(loop, &m->flush);
    m->flush.data = m;
    m->flush_init = true;
    uv_prepare_start(&m->flush, on_flush);
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    m->tick_init = true;
    uv_timer_start(&m->tick, on_tick, m->cfg.tick_ms, m->cfg.tick_ms);

    m->httpd = httpd_new(loop, m->cfg.http_addr, m->cfg.http_port, on_request, m, &r);
    if (!m->httpd) {
        snprintf(err, errlen, "cannot listen on %s:%u: %s", m->cfg.http_addr,
                 (unsigned)m->cfg.http_port, strerror(-r));
        goto fail;
    }
    if (m->cfg.web_dir)
        httpd_set_static(m->httpd, m->cfg.web_dir);
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
    while (m->waiters) {
        struct waiter *w = m->waiters;
        m->waiters = w->next;
        httpd_error(w->req, 503, "unavailable", NULL, "the master is shutting down");
        free(w);
    }
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
    batch_commit(m);
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
    for (size_t i = 0; i < m->usage.cap; i++)
        if (m->usage.slots && m->usage.slots[i].key)
            free(m->usage.slots[i].val);
    hmap_str_free(&m->usage);
    dispatch_destroy(&m->disp);
    registry_destroy(&m->reg);
    ipam_destroy(&m->ipam);
    sched_destroy(&m->sched);
    db_destroy(&m->db);
    free(m);
    *pm = NULL;
}
