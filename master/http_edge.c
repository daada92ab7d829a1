#include "master/http_edge.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/api.h"

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

/* A decimal count without sign, spaces or junk. */
static int
parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int
http_page_params(struct http_req *req, unsigned *limit, const char **after)
{
    const char *l = httpd_query(req, "limit");
    unsigned long long v;

    *after = httpd_query(req, "after");
    *limit = MASTER_LIST_DEFAULT;
    if (l) {
        if (parse_count(l, UINT32_MAX, &v) < 0 || v < 1) {
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

int64_t
http_wait_param(master_t *m, struct http_req *req, const char *what)
{
    const char *w = httpd_query(req, "wait"), *t = httpd_query(req, "timeout");
    unsigned long long s = m->cfg.wait_default_s;

    if (!w)
        return 0;
    if (strcmp(w, what) != 0) {
        httpd_error(req, 400, "bad_request", "wait", "wait must be \"%s\"", what);
        return -1;
    }
    if (t && (parse_count(t, 86400, &s) < 0 || s < 1)) {
        httpd_error(req, 400, "bad_request", "timeout", "timeout must be 1-86400 seconds");
        return -1;
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

void
http_serve(struct http_req *req, void *userdata)
{
    master_t *m = userdata;
    struct api_match am;
    char allow[64] = "";

    if (m->stopping) {
        httpd_error(req, 503, "unavailable", NULL, "the master is shutting down");
        return;
    }
    /* A handler's transaction is the outermost one: node reports that share
     * a transaction are committed first, so what it answers is durable when
     * it answers. */
    (void)master_batch_commit(m);
    int r = api_route(req->method, req->path, &am, allow, sizeof(allow));
    if (r == -EOPNOTSUPP) {
        httpd_set_header(req, "Allow", allow);
        httpd_error(req, 405, "method_not_allowed", NULL, "%s is not allowed on %s; allowed: %s",
                    req->method, req->path, allow);
        return;
    }
    if (r < 0) {
        httpd_error(req, 404, "not_found", NULL, "no such object or route: %s", req->path);
        return;
    }
    if (req->body_error) {
        httpd_error(req, 400, "bad_request", "(root)", "%s", req->body_error);
        return;
    }
    req->route = api_route_name(am.route);
    log_debug("%s %s -> %s", req->method, req->path, req->route);
    am.handler(m, req, &am);
}
