#include "master/http_edge.h"
#include "master/http_handlers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/units.h"
#include "common/mem.h"
#include "master/api.h"
#include "master/auth.h"

void
http_reply_errno(struct http_req *req, int err, const char *field, const char *fmt, ...)
{
    struct api_error e;
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_error_from_errno(err, &e);
    httpd_respond(req, e.status, api_error_json(e.code, field, msg));
}

void
http_reply_guest_err(struct http_req *req, int err, const struct guest_err *e)
{
    struct api_error ae;

    api_error_from_errno(err, &ae);
    json_t *body = api_error_json(ae.code, e->field, e->message[0] ? e->message : strerror(-err));
    if (e->placement)
        json_object_set_new(
            json_object_get(body, "error"), "placement",
            api_placement_json(&e->result, e->pin_unknown, e->pin[0] ? e->pin : NULL));
    httpd_respond(req, ae.status, body);
}

/* The edge has checked both against the route's table (api.c): limit a
 * decimal integer from 1, after a name or an id. */
void
http_page_params(struct http_req *req, unsigned *limit, const char **after)
{
    const char *l = httpd_query(req, "limit");
    unsigned long long v = l ? strtoull(l, NULL, 10) : MASTER_LIST_DEFAULT;

    *after = httpd_query(req, "after");
    *limit = v > MASTER_LIST_MAX ? MASTER_LIST_MAX : (unsigned)v;
}

/* wait's one value and timeout's range are the route's table's (api.c);
 * what is left is how they go together. */
int64_t
http_wait_param(master_t *m, struct http_req *req, const char *what)
{
    const char *w = httpd_query(req, "wait"), *t = httpd_query(req, "timeout");
    unsigned long long s = t ? strtoull(t, NULL, 10) : m->cfg.wait_default_s;

    if (!w) {
        if (t) {
            httpd_error(req, 400, "bad_request", "timeout", "timeout goes with wait=%s", what);
            return -1;
        }
        return 0;
    }
    if (s > MASTER_MAX_WAIT_S)
        s = MASTER_MAX_WAIT_S;
    return (int64_t)s * 1000;
}

bool
http_json_is_name(const json_t *j)
{
    return json_is_string(j) && name_is_valid(json_string_value(j));
}

/* Whether name (a Host header's host part) is a name of this master: an
 * address (a browser that went to an address is on that origin), localhost,
 * the host's name, or one of [master] api_names. A DNS name that merely
 * resolves here (DNS rebinding) is not. */
static bool
host_is_ours(master_t *m, const char *host)
{
    char h[256], me[256] = "";
    unsigned char a[16];
    size_t n = strlen(host);

    if (n == 0 || n >= sizeof(h))
        return false;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end || (end[1] && end[1] != ':'))
            return false;
        snprintf(h, sizeof(h), "%.*s", (int)(end - host - 1), host + 1);
        return inet_pton(AF_INET6, h, a) == 1;
    }
    snprintf(h, sizeof(h), "%.*s", (int)strcspn(host, ":"), host);
    if (inet_pton(AF_INET, h, a) == 1 || strcasecmp(h, "localhost") == 0)
        return true;
    if (gethostname(me, sizeof(me) - 1) == 0 && me[0] && strcasecmp(h, me) == 0)
        return true;
    _cleanup_free_ char *names = xstrdup(m->cfg.api_names ? m->cfg.api_names : "");
    char *save = NULL;
    for (char *t = strtok_r(names, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (strcasecmp(t, h) == 0)
            return true;
    return false;
}

/* application/json or application/merge-patch+json, parameters allowed. */
static bool
media_is_json(const char *type)
{
    static const char *const types[] = {"application/json", "application/merge-patch+json"};

    for (size_t i = 0; type && i < ARRAY_SIZE(types); i++) {
        size_t n = strlen(types[i]);
        if (strncasecmp(type, types[i], n) == 0 &&
            (type[n] == '\0' || type[n] == ';' || type[n] == ' '))
            return true;
    }
    return false;
}

/* Browsers must not drive the API from another origin: the Host must be a
 * name of this master and an Origin, when sent, this very origin. Requests
 * over the Unix socket come from no browser. */
static int
check_origin(master_t *m, struct http_req *req, char *why, size_t n)
{
    const char *host = httpd_header(req, "Host"), *origin = httpd_header(req, "Origin");
    const char *type = httpd_header(req, "Content-Type");

    if (req->peer.unix_socket)
        return 0;
    if (!host || !host_is_ours(m, host)) {
        snprintf(why, n, "Host \"%s\" is not a name of this master (see [master] api_names)",
                 host ? host : "");
        return -EACCES;
    }
    if (origin) {
        _cleanup_free_ char *own = xasprintf("%s://%s", req->peer.tls ? "https" : "http", host);
        if (strcasecmp(origin, own) != 0) {
            snprintf(why, n, "cross-origin requests are refused (Origin \"%s\")", origin);
            return -EACCES;
        }
    }
    /* A form or a simple cross-origin request can send text/plain or form
     * data; the API reads JSON only (a PATCH may say merge-patch+json). */
    if (req->body && !media_is_json(type)) {
        snprintf(why, n, "the body must be sent as Content-Type: application/json");
        return -EPROTOTYPE;
    }
    return 0;
}

/* The caller: a bearer token, or root over the Unix socket. */
static int
authenticate(master_t *m, struct http_req *req, struct caller *c)
{
    const char *auth = httpd_header(req, "Authorization");
    char ws[600];

    if (!auth)
        auth = http_ws_bearer(req, ws, sizeof(ws));
    if (auth)
        return auth_token_check(m, auth, c);
    if (req->peer.unix_socket && req->peer.uid == 0) {
        *c = (struct caller){.role = AUTH_ADMIN};
        snprintf(c->who, sizeof(c->who), "root (unix socket)");
        return 0;
    }
    return -ENOKEY;
}

static void
reply_unauthorized(struct http_req *req, int r)
{
    httpd_set_header(req, "WWW-Authenticate", "Bearer realm=\"vfleet\"");
    http_reply_errno(req, r, NULL, "%s",
                     r == -ENOKEY        ? "a bearer token is required (Authorization: Bearer ...)"
                     : r == -EKEYEXPIRED ? "the token has expired"
                                         : "the token is not valid");
}

/* Whether the request's transaction joins the loop's batch (core.h) rather
 * than commit alone. Creates do, so that the creates of many clients that
 * arrive while the loop is busy (libmicrohttpd's threads queue them; the
 * loop takes the whole queue at once) and the node reports read in the same
 * iteration share one commit and its fsync, instead of one each (issue 16:
 * the commit was the largest part of the master's CPU per create). The
 * create's handler answers only after that commit (h_guest_create's
 * oncommit follow-up). A create with an Idempotency-Key commits alone: its
 * key's record is read before the create, and a record of the open batch
 * must not be replayed before it commits. */
static bool
create_joins_batch(const struct http_req *req, const struct api_match *am)
{
    return am->route == API_GUEST_CREATE && !req->idem_key;
}

/* check_query's walk over the query. */
struct query_check {
    const struct api_param *params; /* what the route takes */
    uint64_t seen;                  /* bit i: params[i] came (i < API_PARAMS_MAX) */
    const char *route;              /* "DELETE /v1/guests/{name}", for messages */
    char field[64];                 /* the parameter refused */
    char why[600];                  /* why */
};

_Static_assert(API_PARAMS_MAX <= sizeof(((struct query_check *)0)->seen) * CHAR_BIT,
               "a bit of query_check.seen per parameter a route may take");

/* Whether s is short printable ASCII, safe to repeat in an answer (JSON
 * strings must be UTF-8). */
static bool
printable(const char *s)
{
    size_t n = 0;

    for (; *s; s++, n++)
        if (*s < 0x20 || *s > 0x7e || n >= 63)
            return false;
    return true;
}

static int
query_one(void *userdata, const char *name, const char *value)
{
    struct query_check *q = userdata;
    const struct api_param *p = api_param_find(q->params, name);

    /* An empty segment ("?&limit=1", "a=1&&b=2") names nothing, as a
     * browser's URLSearchParams reads it. */
    if (!*name && (!value || !*value))
        return 0;
    snprintf(q->field, sizeof(q->field), "%s", printable(name) ? name : "");
    if (!p) {
        char names[256];
        api_param_names(q->params, names, sizeof(names));
        snprintf(q->why, sizeof(q->why),
                 "unknown query parameter \"%s\": %s takes %s (names are exact, lower case)",
                 q->field[0] ? q->field : "?", q->route, names);
        return -ENOENT;
    }
    uint64_t bit = UINT64_C(1) << (p - q->params);
    if (q->seen & bit) {
        snprintf(q->why, sizeof(q->why), "query parameter %s is given more than once", name);
        return -EEXIST;
    }
    q->seen |= bit;
    return api_param_check(p, value, q->why, sizeof(q->why));
}

/* Every query parameter must be one the route takes (api.c's table), given
 * once, with a value it takes; anything else is a 400 naming it, before the
 * handler runs, so a refused request changes nothing (a typo in
 * "?forse=true" must not be a plain delete, nor "?type=nope" an empty
 * list). Returns -EINVAL when it answered. */
static int
check_query(struct http_req *req, const struct api_match *am, const char *pattern)
{
    char route[128];
    struct query_check q = {.params = am->params, .route = route};

    snprintf(route, sizeof(route), "%s %s", req->method, pattern);
    if (httpd_query_each(req, query_one, &q) == 0)
        return 0;
    httpd_error(req, 400, "bad_request", q.field[0] ? q.field : NULL, "%s", q.why);
    return -EINVAL;
}

void
http_serve(struct http_req *req, void *userdata)
{
    master_t *m = userdata;
    struct api_match am;
    char allow[64] = "", why[300];

    if (m->stopping) {
        httpd_error(req, 503, "unavailable", NULL, "the master is shutting down");
        return;
    }
    int r = check_origin(m, req, why, sizeof(why));
    if (r < 0) {
        http_reply_errno(req, r, NULL, "%s", why);
        return;
    }
    r = api_route(req->method, req->path, &am, allow, sizeof(allow));
    /* A handler's transaction is the outermost one: node reports that share
     * a transaction are committed first, so what it answers is durable when
     * it answers. A create joins the batch instead (create_joins_batch). */
    bool join = r == 0 && create_joins_batch(req, &am);
    if (!join)
        (void)master_batch_commit(m);
    if (r == -EOPNOTSUPP) {
        httpd_set_header(req, "Allow", allow);
        httpd_error(req, 405, "method_not_allowed", NULL, "%s is not allowed on %s; allowed: %s",
                    req->method, req->path, allow);
        return;
    }
    if (r == 0 && !am.public) {
        r = authenticate(m, req, &am.caller);
        if (r < 0) {
            if (r == -ENOKEY || r == -EKEYREJECTED || r == -EKEYEXPIRED)
                reply_unauthorized(req, r);
            else
                http_reply_errno(req, r, NULL, "cannot check the token: %s", strerror(-r));
            return;
        }
        if (!(am.roles & AUTH_ROLE_BIT(am.caller.role))) {
            http_reply_errno(req, -EACCES, NULL, "a %s may not use %s",
                             auth_role_name(am.caller.role), api_route_name(am.route));
            return;
        }
    }
    if (r < 0) {
        httpd_error(req, 404, "not_found", NULL, "no such object or route: %s", req->path);
        return;
    }
    if (check_query(req, &am, api_route_pattern(am.route)) < 0)
        return;
    if (req->body_error) {
        httpd_error(req, 400, "bad_request", "(root)", "%s", req->body_error);
        return;
    }
    req->route = api_route_name(am.route);
    log_debug("%s %s -> %s (%s)", req->method, req->path, req->route,
              am.public ? "public" : am.caller.who);
    if (join)
        master_batch_begin(m);
    am.handler(m, req, &am);
}

/* A life: seconds as an integer, or "90s", "30m", "12h", "7d". */
int
http_json_ttl(const json_t *v, uint64_t *out)
{
    static const struct {
        char unit;     /* the suffix */
        uint64_t secs; /* seconds in one */
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    uint64_t n;

    if (json_is_integer(v) && json_integer_value(v) > 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    size_t len = s ? strlen(s) : 0;
    if (len < 2 || len > 20)
        return -EINVAL;
    _cleanup_free_ char *num = xstrndup(s, len - 1);
    if (units_parse_u64(num, &n) < 0 || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        if (s[len - 1] == units[i].unit) {
            if (n > UINT64_MAX / units[i].secs)
                return -EINVAL;
            *out = n * units[i].secs;
            return 0;
        }
    return -EINVAL;
}
