/* HTTP handlers: address pools. */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/api.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"

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

void
h_pool_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct pool_list_ctx c = {.m = m, .items = json_array()};
    int r = db_pool_list(m->db, list_pool, &c);

    if (r < 0) {
        json_decref(c.items);
        http_reply_errno(req, r, NULL, "cannot list pools");
        return;
    }
    httpd_respond(req, 200, json_pack("{s:o}", "pools", c.items));
}

/* The body of a pool create into def; sel holds the selector labels.
 * Returns 0 or -1 after answering 400. */
static int
parse_pool(struct http_req *req, struct ipam_pool_def *def, struct db_label *sel)
{
    static const char *const members[] = {"name", "cidr", "gateway", "selector"};
    json_t *b = req->body;
    const char *k;
    json_t *v;

    if (!json_is_object(b)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be a JSON object");
        return -1;
    }
    json_object_foreach(b, k, v)
    {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(members) && strcmp(k, members[i]); i++)
            ;
        if (i == ARRAY_SIZE(members)) {
            httpd_error(req, 400, "bad_request", k, "unknown member %s", k);
            return -1;
        }
    }
    json_t *name = json_object_get(b, "name"), *cidr = json_object_get(b, "cidr");
    json_t *gw = json_object_get(b, "gateway"), *selector = json_object_get(b, "selector");
    if (!http_json_is_name(name)) {
        httpd_error(req, 400, "bad_request", "name", "name is required: a name");
        return -1;
    }
    if (!json_is_string(cidr)) {
        httpd_error(req, 400, "bad_request", "cidr", "cidr is required");
        return -1;
    }
    if (gw && !json_is_null(gw) && !json_is_string(gw)) {
        httpd_error(req, 400, "bad_request", "gateway", "gateway must be an address");
        return -1;
    }
    *def = (struct ipam_pool_def){.name = json_string_value(name),
                                  .cidr = json_string_value(cidr),
                                  .gateway = json_is_string(gw) ? json_string_value(gw) : NULL,
                                  .selector = sel};
    if (!selector)
        return 0;
    if (!json_is_object(selector) || json_object_size(selector) > IPAM_MAX_SELECTOR) {
        httpd_error(req, 400, "bad_request", "selector",
                    "selector must be an object of at most %d labels", IPAM_MAX_SELECTOR);
        return -1;
    }
    json_object_foreach(selector, k, v)
    {
        if (!name_is_valid(k) || !json_is_string(v)) {
            httpd_error(req, 400, "bad_request", "selector",
                        "selector keys are names and values strings");
            return -1;
        }
        sel[def->n_selector++] = (struct db_label){k, json_string_value(v)};
    }
    return 0;
}

void
h_pool_create(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct idem id;
    struct db_label sel[IPAM_MAX_SELECTOR];
    struct ipam_pool_def def;
    char err[256] = "";

    if (idem_begin(m, req, am->caller.who, &id) || parse_pool(req, &def, sel) < 0)
        return;
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = ipam_pool_create(m->ipam, &def, err, sizeof(err));
    if (r < 0) {
        db_rollback(m->db);
        http_reply_errno(req, r == -EADDRINUSE ? -EEXIST : r, r == -EINVAL ? "cidr" : NULL, "%s",
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
        http_reply_errno(req, r, NULL, "cannot store the pool: %s", strerror(-r));
        return;
    }
    log_notice("pool=%s %s created", def.name, def.cidr);
    httpd_respond(req, 201, o);
}

void
h_pool_delete(master_t *m, struct http_req *req, const struct api_match *am)
{
    int r = ipam_pool_delete(m->ipam, am->name);

    if (r == -EBUSY) {
        httpd_error(req, 409, "conflict", NULL, "pool \"%s\" has addresses allocated", am->name);
        return;
    }
    if (r < 0) {
        http_reply_errno(req, r, NULL, "%s",
                         r == -ENOENT ? "no such pool" : "cannot delete the pool");
        return;
    }
    httpd_respond(req, 204, NULL);
}
