/* HTTP handlers: what is done to one guest — lifecycle, exec, usage,
 * traffic, addresses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/api.h"
#include "master/guests.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"
#include "master/usage.h"
#include "master/waiters.h"

#define EXEC_DEFAULT_S 30    /* exec timeout when the request names none */
#define EXEC_GRACE_MS  10000 /* extra wait for the node's exec answer */

/* ---- lifecycle ---- */

static void
lifecycle(master_t *m, struct http_req *req, const struct api_match *am, enum guest_op op)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct guest_err e = {0};
    struct idem id;
    const char *what = op == GUEST_STOP ? "stopped" : "running";
    int64_t wait_ms = http_wait_param(m, req, what);
    json_t *resp = NULL;

    if (wait_ms < 0 || idem_begin(m, req, am->caller.who, &id))
        return;
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = guests_lifecycle(m, &am->caller, am->name, op, &g, &spec, &e);
    if (r >= 0) {
        resp = api_guest_json(&g, &spec);
        r = idem_store(m, req, &id, 200, resp);
        if (r < 0)
            guest_fail(&e, r, NULL, "cannot store the request's key");
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(resp);
        if (!e.message[0])
            guest_fail(&e, r, NULL, "cannot store the change: %s", strerror(-r));
        http_reply_guest_err(req, r, &e);
        goto out;
    }
    enum db_observed there = op == GUEST_STOP ? DB_OBS_STOPPED : DB_OBS_RUNNING;
    if (wait_ms > 0 && !(op != GUEST_RESTART && g.observed == there)) {
        struct waiter *w = waiter_add(m, req, op == GUEST_STOP ? WAIT_STOPPED : WAIT_RUNNING, g.id,
                                      g.node, (uint32_t)wait_ms);
        w->status = 200;
        json_decref(resp);
        goto out;
    }
    httpd_respond(req, 200, resp);
out:
    db_guest_clear(&g);
}

void
h_guest_start(master_t *m, struct http_req *req, const struct api_match *am)
{
    lifecycle(m, req, am, GUEST_START);
}

void
h_guest_stop(master_t *m, struct http_req *req, const struct api_match *am)
{
    lifecycle(m, req, am, GUEST_STOP);
}

void
h_guest_restart(master_t *m, struct http_req *req, const struct api_match *am)
{
    lifecycle(m, req, am, GUEST_RESTART);
}

/* ---- exec ---- */

/* {"argv":[...], "timeout":S}: argv borrowed from the body. */
static int
parse_exec(struct http_req *req, char ***argv, uint32_t *argc, json_int_t *secs)
{
    json_t *a = json_object_get(req->body, "argv"), *t = json_object_get(req->body, "timeout");
    const json_int_t max_s = MASTER_MAX_WAIT_S - EXEC_GRACE_MS / 1000;
    const char *k;
    json_t *v;
    size_t i;

    if (!json_is_object(req->body)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be {\"argv\":[...]}");
        return -1;
    }
    json_object_foreach(req->body, k, v)
    {
        if (strcmp(k, "argv") != 0 && strcmp(k, "timeout") != 0) {
            httpd_error(req, 400, "bad_request", k, "unknown member %s", k);
            return -1;
        }
    }
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > PROTO_MAX_ARGV) {
        httpd_error(req, 400, "bad_request", "argv", "argv must hold 1-%d strings", PROTO_MAX_ARGV);
        return -1;
    }
    *secs = EXEC_DEFAULT_S;
    if (t) {
        if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > max_s) {
            httpd_error(req, 400, "bad_request", "timeout", "timeout must be 1-%d seconds",
                        (int)max_s);
            return -1;
        }
        *secs = json_integer_value(t);
    }
    *argc = (uint32_t)json_array_size(a);
    *argv = xcalloc(*argc + 1, sizeof(char *));
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) > PROTO_MAX_STRING) {
            free(*argv);
            httpd_error(req, 400, "bad_request", "argv",
                        "argv[%zu] must be a string of at most %d bytes", i, PROTO_MAX_STRING);
            return -1;
        }
        (*argv)[i] = (char *)json_string_value(v);
    }
    return 0;
}

void
h_guest_exec(master_t *m, struct http_req *req, const struct api_match *am)
{
    char node[NAME_MAX_LEN + 1], gid[SPEC_ID_LEN + 1];
    struct guest_err e = {0};
    struct idem id;
    char **argv = NULL;
    uint32_t argc;
    json_int_t secs;
    uint64_t ref;

    if (idem_begin(m, req, am->caller.who, &id) || parse_exec(req, &argv, &argc, &secs) < 0)
        return;
    int r = guests_exec(m, &am->caller, am->name, argv, argc, (uint32_t)secs * 1000, &ref, node,
                        gid, &e);
    free(argv);
    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    struct waiter *w =
        waiter_add(m, req, WAIT_EXEC, gid, node, (uint32_t)secs * 1000 + EXEC_GRACE_MS);
    w->ref = ref;
    if (id.key) {
        strscpy(w->idem, id.key, sizeof(w->idem));
        memcpy(w->idem_hash, id.hash, sizeof(w->idem_hash));
    }
}

/* ---- console ---- */

#define CONSOLE_WAIT_MS 20000 /* a ring read is quick; a node this slow answers 504 */

/* GET /v1/guests/{name}/console[?bytes=N]: the tail of the guest's console,
 * as its node keeps it in a bounded ring. */
void
h_guest_console(master_t *m, struct http_req *req, const struct api_match *am)
{
    char node[NAME_MAX_LEN + 1], gid[SPEC_ID_LEN + 1];
    struct guest_err e = {0};
    const char *q = httpd_query(req, "bytes"); /* 1 to PROTO_MAX_CONSOLE (api.c's table) */
    unsigned long long bytes = q ? strtoull(q, NULL, 10) : 64 * 1024;
    uint64_t ref;

    int r = guests_console(m, &am->caller, am->name, (uint32_t)bytes, &ref, node, gid, &e);
    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    struct waiter *w = waiter_add(m, req, WAIT_CONSOLE, gid, node, CONSOLE_WAIT_MS);
    w->ref = ref;
}

/* ---- usage and traffic ---- */

/* The guest's id by name, if the caller may see it; answers 404 itself. */
static int
guest_id(master_t *m, struct http_req *req, const struct caller *c, const char *name,
         char id[SPEC_ID_LEN + 1])
{
    struct db_guest g = {0};
    int r = db_guest_get_by_name(m->db, name, &g);

    if (r >= 0 && !guests_visible(c, &g)) {
        db_guest_clear(&g);
        r = -ENOENT;
    }
    if (r < 0) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return r;
    }
    strscpy(id, g.id, SPEC_ID_LEN + 1);
    db_guest_clear(&g);
    return 0;
}

void
h_guest_usage(master_t *m, struct http_req *req, const struct api_match *am)
{
    char id[SPEC_ID_LEN + 1];

    if (guest_id(m, req, &am->caller, am->name, id) < 0)
        return;
    /* A range asks for history; without one, the latest sample as ever. */
    if (httpd_query(req, "from") || httpd_query(req, "to") || httpd_query(req, "step")) {
        http_usage_history(m, req, am->name, id);
        return;
    }
    const struct guest_usage *u = usage_latest(m, id);
    if (!u) {
        httpd_error(req, 404, "not_found", NULL, "no usage sample of guest \"%s\" yet", am->name);
        return;
    }
    httpd_respond(req, 200, api_usage_json(u));
}

static json_t *
traffic_json(const struct usage_traffic *t, bool reset)
{
    char since[40] = "", sampled[40];

    if (t->since_ms)
        api_time_format(t->since_ms, since, sizeof(since));
    api_time_format(t->sampled_ms, sampled, sizeof(sampled));
    return json_pack("{s:I, s:I, s:I, s:I, s:o, s:s, s:b}", "rx_bytes", (json_int_t)t->rx_bytes,
                     "tx_bytes", (json_int_t)t->tx_bytes, "rx_packets", (json_int_t)t->rx_packets,
                     "tx_packets", (json_int_t)t->tx_packets, "since",
                     since[0] ? json_string(since) : json_null(), "sampled", sampled, "reset",
                     reset);
}

/* FreeVPS trafstat: the counter since its last reset, and a reset that
 * answers the period it ends (a retry with the same key does not reset
 * twice: it replays). */
static void
traffic(master_t *m, struct http_req *req, const struct api_match *am, bool reset)
{
    char id[SPEC_ID_LEN + 1];
    struct usage_traffic t;
    struct idem key = {0};

    const char *name = am->name;

    if ((reset && idem_begin(m, req, am->caller.who, &key)) ||
        guest_id(m, req, &am->caller, name, id) < 0)
        return;
    int r = reset ? db_begin(m->db) : 0;
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = usage_traffic(m, id, reset, &t);
    json_t *o = r >= 0 ? traffic_json(&t, reset) : NULL;
    if (reset) {
        if (r >= 0)
            r = idem_store(m, req, &key, 200, o);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r == -ENODATA) {
        httpd_error(req, 404, "not_found", NULL, "no usage sample of guest \"%s\" yet", name);
        return;
    }
    if (r < 0) {
        json_decref(o);
        http_reply_errno(req, r, NULL, "cannot store the traffic mark: %s", strerror(-r));
        return;
    }
    if (reset)
        log_notice("guest=%s traffic counter reset", name);
    httpd_respond(req, 200, o);
}

void
h_guest_traffic(master_t *m, struct http_req *req, const struct api_match *am)
{
    traffic(m, req, am, false);
}

void
h_guest_traffic_reset(master_t *m, struct http_req *req, const struct api_match *am)
{
    traffic(m, req, am, true);
}

/* ---- addresses ---- */

/* {"ip":"auto"|"auto4"|"auto6"|ADDR}; the address points into body. */
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

void
h_guest_ip_add(master_t *m, struct http_req *req, const struct api_match *am)
{
    char gid[SPEC_ID_LEN + 1];
    struct guest_err e = {0};
    struct ipam_request rq;
    struct idem id;
    json_t *o = NULL;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    if (ip_request(req->body, &rq) < 0) {
        httpd_error(req, 400, "bad_request", "ip",
                    "the body must be {\"ip\": \"auto\", \"auto4\", \"auto6\" or an address}");
        return;
    }
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = guests_ip_add(m, &am->caller, am->name, &rq, gid, &e);
    /* A retry with the same key replays this answer, not a second address. */
    if (r >= 0) {
        o = guests_json(m, gid);
        r = o ? idem_store(m, req, &id, 200, o) : -EIO;
        if (r < 0)
            guest_fail(&e, r, NULL, "cannot store the request's key");
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        if (!e.message[0])
            guest_fail(&e, r, NULL, "cannot store the address: %s", strerror(-r));
        http_reply_guest_err(req, r, &e);
        return;
    }
    httpd_respond(req, 200, o);
}

void
h_guest_ip_del(master_t *m, struct http_req *req, const struct api_match *am)
{
    char gid[SPEC_ID_LEN + 1];
    struct guest_err e = {0};
    int r = guests_ip_del(m, &am->caller, am->name, am->arg, gid, &e);

    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    httpd_respond(req, 200, guests_json(m, gid));
}
