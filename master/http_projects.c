/* HTTP handlers: projects and their quotas. */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/units.h"
#include "master/api.h"
#include "master/guests.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"
#include "master/projects.h"

void
h_project_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    int r;
    json_t *items = projects_list_json(m, &am->caller, &r);

    if (!items) {
        http_reply_errno(req, r, NULL, "cannot list projects");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:o}", "projects", items));
}

void
h_project_get(master_t *m, struct http_req *req, const struct api_match *am)
{
    int r;
    json_t *o = projects_json(m, &am->caller, am->name, &r);

    if (!o) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such project" : "cannot read it");
        return;
    }
    httpd_respond(req, 200, o);
}

/* One quota member: null = no limit; counts are integers, cpus a number
 * of cores, memory and disk bytes or a size ("4G"). */
static int
quota_value(const char *k, const json_t *v, struct db_quota *q, struct guest_err *e)
{
    uint64_t n = 0;

    if (json_is_null(v)) {
        n = 0;
    } else if (!strcmp(k, "cpus")) {
        double d = json_number_value(v);
        if (!json_is_number(v) || !(d >= 0) || d > 1e6 || (d > 0 && d < 0.001))
            return guest_fail(e, -EINVAL, "quota.cpus", "quota.cpus must be cores (0.001-1e6)");
        n = (uint64_t)(d * 1000 + 0.5);
    } else if (!strcmp(k, "memory") || !strcmp(k, "disk")) {
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            n = (uint64_t)json_integer_value(v);
        else if (!json_is_string(v) || units_parse_size(json_string_value(v), &n) < 0)
            return guest_fail(e, -EINVAL, !strcmp(k, "memory") ? "quota.memory" : "quota.disk",
                              "quota.%s must be bytes or a size such as \"4G\"", k);
    } else if (!strcmp(k, "guests") || !strcmp(k, "addresses")) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return guest_fail(e, -EINVAL, !strcmp(k, "guests") ? "quota.guests" : "quota.addresses",
                              "quota.%s must be a count", k);
        n = (uint64_t)json_integer_value(v);
    } else {
        return guest_fail(e, -EINVAL, "quota", "unknown quota %s", k);
    }
    if (!strcmp(k, "guests"))
        q->guests = n;
    else if (!strcmp(k, "cpus"))
        q->cpu = n;
    else if (!strcmp(k, "memory"))
        q->memory = n;
    else if (!strcmp(k, "disk"))
        q->disk = n;
    else
        q->addrs = n;
    return 0;
}

/* The quota object of a body merged into q; absent members stay. */
static int
parse_quota(const json_t *v, struct db_quota *q, struct guest_err *e)
{
    const char *k;
    json_t *x;

    if (!v)
        return 0;
    if (!json_is_object(v))
        return guest_fail(e, -EINVAL, "quota", "quota must be an object");
    json_object_foreach((json_t *)v, k, x)
    {
        int r = quota_value(k, x, q, e);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Only these members: anything else is a 400 naming it. */
static int
members_only(const json_t *b, const char *a, const char *c, struct guest_err *e)
{
    const char *k;
    json_t *v;

    if (!json_is_object(b))
        return guest_fail(e, -EINVAL, "(root)", "the body must be a JSON object");
    json_object_foreach((json_t *)b, k, v)
    {
        if (strcmp(k, a) != 0 && (!c || strcmp(k, c) != 0))
            return guest_fail(e, -EINVAL, k, "unknown member %s", k);
    }
    return 0;
}

void
h_project_create(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_quota q = {0};
    struct guest_err e = {0};
    struct idem id;
    json_t *o = NULL;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    int r = members_only(req->body, "name", "quota", &e);
    if (r >= 0 && !http_json_is_name(json_object_get(req->body, "name")))
        r = guest_fail(&e, -EINVAL, "name", "name is required: 1-63 of a-z, 0-9 and -");
    if (r >= 0)
        r = parse_quota(json_object_get(req->body, "quota"), &q, &e);
    if (r >= 0)
        r = db_begin(m->db);
    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    const char *name = json_string_value(json_object_get(req->body, "name"));
    r = projects_create(m, name, &q, &e);
    if (r >= 0) {
        o = projects_json(m, NULL, name, &r);
        if (o)
            r = idem_store(m, req, &id, 201, o);
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        if (!e.message[0])
            guest_fail(&e, r, NULL, "cannot store the project: %s", strerror(-r));
        http_reply_guest_err(req, r, &e);
        return;
    }
    httpd_respond(req, 201, o);
}

void
h_project_patch(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_project p = {0};
    struct guest_err e = {0};
    int r = members_only(req->body, "quota", NULL, &e);

    if (r >= 0) {
        r = db_project_get(m->db, am->name, &p);
        if (r < 0)
            guest_fail(&e, r, NULL, "%s", r == -ENOENT ? "no such project" : "cannot read it");
    }
    if (r >= 0)
        r = parse_quota(json_object_get(req->body, "quota"), &p.quota, &e);
    if (r >= 0)
        r = projects_set_quota(m, am->name, &p.quota, &e);
    db_project_clear(&p);
    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    json_t *o = projects_json(m, NULL, am->name, &r);
    if (!o) {
        http_reply_errno(req, r, NULL, "cannot read the project");
        return;
    }
    httpd_respond(req, 200, o);
}

void
h_project_delete(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct guest_err e = {0};
    int r = projects_delete(m, am->name, &e);

    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        return;
    }
    httpd_respond(req, 204, NULL);
}
