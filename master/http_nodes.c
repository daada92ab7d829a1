/* HTTP handlers: health and nodes. */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/version.h"
#include "master/api.h"
#include "master/guests.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/waiters.h"
#include "master/idem.h"
#include "master/trust.h"
#include "proto/spec.h"

void
h_health(master_t *m, struct http_req *req, const struct api_match *am)
{
    int r = db_probe_write(m->db);

    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    httpd_respond(req, 200,
                  json_pack("{s:s, s:s, s:I}", "status", "ok", "version", VFLEET_VERSION, "nodes",
                            (json_int_t)registry_count(m->reg)));
}

static int
lost_name(void *userdata, const struct db_guest *g)
{
    json_array_append_new(userdata, json_string(g->name));
    return 0;
}

/* The node, with its orphans (from the store) and lost guests when asked
 * for them, else their counts. */
static json_t *
node_json(master_t *m, const struct registry_node *n, bool with_orphans)
{
    struct sched_node_info info;
    bool have = sched_node_info(m->sched, n->name, &info) == 0;
    json_t *o = api_node_json(n, have ? &info : NULL, false);

    api_node_usable(o, m->cfg.sched.overcommit_cpu, m->cfg.sched.overcommit_memory,
                    m->cfg.sched.overcommit_disk);
    json_t *orphans = guests_orphans_json(m, n->name);
    json_t *lost = json_array();
    struct db_guest_filter f = {.node = n->name, .observed = DB_OBS_LOST};

    (void)db_guest_list(m->db, &f, lost_name, lost);
    json_object_set_new(o, "orphan_count", json_integer((json_int_t)json_array_size(orphans)));
    json_object_set_new(o, "lost_count", json_integer((json_int_t)json_array_size(lost)));
    if (with_orphans) {
        json_object_set_new(o, "orphans", orphans);
        json_object_set_new(o, "lost", lost);
        return o;
    }
    json_decref(orphans);
    json_decref(lost);
    return o;
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

void
h_node_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct node_list_ctx c = {.m = m};
    unsigned limit;
    const char *after;

    http_page_params(req, &limit, &after);
    c.items = json_array();
    int r = db_node_list(m->db, after, limit, list_node, &c);
    if (r < 0) {
        json_decref(c.items);
        http_reply_errno(req, r, NULL, "cannot list nodes");
        return;
    }
    json_t *o = json_pack("{s:o}", "nodes", c.items);
    if (c.n == limit)
        json_object_set_new(o, "next", json_string(c.last));
    httpd_respond(req, 200, o);
}

void
h_node_get(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct registry_node *n = registry_get(m->reg, am->name);

    if (!n) {
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", am->name);
        return;
    }
    httpd_respond(req, 200, node_json(m, n, true));
}

static void
cordon(master_t *m, struct http_req *req, const struct api_match *am, bool on)
{
    const char *name = am->name;
    struct idem id;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    struct registry_node *n = registry_get(m->reg, name);
    if (!n) {
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", name);
        return;
    }
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    bool was = n->cordoned;
    r = registry_cordon(m->reg, name, on);
    json_t *o = node_json(m, n, true);
    if (r >= 0)
        r = idem_store(m, req, &id, 200, o);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        /* registry_cordon set the node in memory once its row was written;
         * the rollback undid the row, so the node goes back too (a 507
         * changes nothing). */
        n->cordoned = was;
        sched_node_cordon(m->sched, name, was);
        json_decref(o);
        http_reply_errno(req, r, NULL, "cannot store the cordon: %s", strerror(-r));
        return;
    }
    log_notice("node=%s %s", name, on ? "cordoned" : "uncordoned");
    httpd_respond(req, 200, o);
}

void
h_node_cordon(master_t *m, struct http_req *req, const struct api_match *am)
{
    cordon(m, req, am, true);
}

void
h_node_uncordon(master_t *m, struct http_req *req, const struct api_match *am)
{
    cordon(m, req, am, false);
}

struct routes_ctx {
    master_t *m;    /* the master */
    json_t *routes; /* the answer's array */
};

static int
route_guest(void *userdata, const struct db_guest *g)
{
    struct routes_ctx *c = userdata;
    struct guest_spec spec;
    char ifname[16], buf[NETADDR_STRLEN];

    if (guests_spec(c->m, g, &spec) < 0) {
        log_debug("guest=%s stored spec unreadable, its routes are left out", g->name);
        return 0;
    }
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
void
h_node_routes(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_guest_filter f = {.node = am->name, .observed = -1};
    struct routes_ctx c = {.m = m};

    if (!registry_get(m->reg, am->name)) {
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", am->name);
        return;
    }
    c.routes = json_array();
    int r = db_guest_list(m->db, &f, route_guest, &c);
    if (r < 0) {
        json_decref(c.routes);
        http_reply_errno(req, r, NULL, "cannot list the node's guests");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:s, s:o}", "node", am->name, "routes", c.routes));
}

/* ---- orphans: guests a node has that the master does not manage ---- */

void
h_node_orphans(master_t *m, struct http_req *req, const struct api_match *am)
{
    if (!registry_get(m->reg, am->name)) {
        httpd_error(req, 404, "not_found", NULL, "no node named \"%s\"", am->name);
        return;
    }
    httpd_respond(req, 200, json_pack("{s:o}", "orphans", guests_orphans_json(m, am->name)));
}

void
h_orphan_adopt(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct guest_err e = {0};
    char name[NAME_MAX_LEN + 1] = "";
    struct idem id;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = guests_adopt(m, am->name, am->arg, name, &e);
    json_t *o = r >= 0 ? guests_json(m, am->arg) : NULL;
    if (r >= 0)
        r = idem_store(m, req, &id, 201, o);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        if (e.message[0])
            http_reply_guest_err(req, r, &e);
        else
            http_reply_errno(req, r, NULL, "cannot adopt the guest: %s", strerror(-r));
        return;
    }
    httpd_respond(req, 201, o);
}

void
h_orphan_destroy(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct guest_err e = {0};
    int r = guests_destroy_orphan(m, am->name, am->arg, &e);

    if (r < 0)
        http_reply_guest_err(req, r, &e);
    else
        waiter_add(m, req, WAIT_DELETE, am->arg, am->name, m->cfg.wait_default_s * 1000);
}

/* ---- the node link's trust: revoke, join tokens ---- */

/* POST /v1/nodes/{name}/revoke: the node's key is refused from now on and
 * its connections are shut (trust.h). Admin only (the route table). */
void
h_node_revoke(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct idem id;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = trust_revoke(m, am->name);
    json_t *o = json_pack("{s:s, s:b}", "name", am->name, "revoked", 1);
    if (r >= 0)
        r = idem_store(m, req, &id, 200, o);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        if (r == -ENOENT)
            httpd_error(req, 404, "not_found", NULL,
                        "node \"%s\" has no key: it never joined, or was revoked", am->name);
        else
            http_reply_errno(req, r, NULL, "cannot revoke node \"%s\": %s", am->name, strerror(-r));
        return;
    }
    httpd_respond(req, 200, o);
}

/* The body of a join token create: {"node": NAME?, "ttl": LIFE?} (a life as
 * http_json_ttl reads it, at most 30 days). Returns 0, or -1 after
 * answering 400. */
static int
parse_token(struct http_req *req, const char **node, uint64_t *ttl_ms)
{
    json_t *b = req->body, *v;
    const char *k;
    uint64_t ttl_s;

    *node = NULL;
    *ttl_ms = 0;
    if (b && !json_is_object(b)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be a JSON object");
        return -1;
    }
    json_object_foreach(b, k, v)
    {
        if (!strcmp(k, "node") && (json_is_null(v) || http_json_is_name(v))) {
            *node = json_string_value(v);
        } else if (!strcmp(k, "ttl") && http_json_ttl(v, &ttl_s) == 0 &&
                   ttl_s <= TRUST_TOKEN_TTL_MAX_MS / 1000) {
            *ttl_ms = ttl_s * 1000;
        } else {
            httpd_error(req, 400, "bad_request", k,
                        !strcmp(k, "node")  ? "node must be a node name"
                        : !strcmp(k, "ttl") ? "ttl must be 1 s to 30 d: seconds, or a number "
                                              "with s, m, h or d (\"1h\")"
                                            : "unknown member");
            return -1;
        }
    }
    return 0;
}

/* POST /v1/join-tokens: a single-use join token, shown once. Not stored
 * under an Idempotency-Key: that would keep its secret in the store; a
 * retried create makes a second token, and an unused token expires. Admin
 * only (the route table). */
void
h_join_token_create(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct trust_token t;
    const char *node;
    uint64_t ttl_ms;
    char created[40], expires[40];

    if (parse_token(req, &node, &ttl_ms) < 0)
        return;
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = trust_token_create(m, node, ttl_ms, &t);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "cannot make a join token: %s",
                         r == -EPERM   ? "no node endpoint uses CurveZMQ (bind a tcp:// one)"
                         : r == -EBUSY ? "too many unused join tokens"
                                       : strerror(-r));
        return;
    }
    api_time_format(t.created_ms, created, sizeof(created));
    api_time_format(t.expires_ms, expires, sizeof(expires));
    log_notice("join token %s made%s%s, expires %s", t.id, t.node[0] ? " for node " : "", t.node,
               expires);
    httpd_respond(req, 201,
                  json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s}", "id", t.id, "token", t.text, "node",
                            t.node[0] ? t.node : NULL, "created", created, "expires", expires,
                            "master_fingerprint", trust_fingerprint(m)));
    sodium_memzero(t.text, sizeof(t.text));
}

/* GET /v1/join-tokens: every token kept, without secrets. */
void
h_join_token_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    json_t *arr = json_array();
    int r = trust_token_list(m, arr);

    if (r < 0) {
        json_decref(arr);
        http_reply_errno(req, r, NULL, "cannot list join tokens");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:o}", "tokens", arr));
}
