/* HTTP handlers: operations (list, one, cancel) and the actions that start
 * one (a guest's move, a node's drain). An action answers 202 with the
 * operation, which the client follows with GET /v1/operations/{id}. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/api.h"
#include "master/db_operations.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"
#include "master/op_drain.h"
#include "master/op_move.h"
#include "master/op_transfer.h"

/* ---- reading ---- */

struct list_ctx {
    json_t *items;              /* the page */
    unsigned n;                 /* rows */
    char last[SPEC_ID_LEN + 1]; /* the last id */
    master_t *m;                /* for the running ones' fresher view */
};

static int
list_one(void *userdata, const struct db_op *d)
{
    struct list_ctx *c = userdata;
    json_t *j = operations_json(c->m, d->id);

    if (j)
        json_array_append_new(c->items, j);
    strscpy(c->last, d->id, sizeof(c->last));
    c->n++;
    return 0;
}

/* ?state=&guest=&parent=&limit=&after=, each checked by the edge (api.c's
 * table: a state, a name, ids). */
void
h_operations_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_op_filter f = {0};
    struct db_guest g = {0};
    struct list_ctx c = {.m = m};
    const char *state = httpd_query(req, "state"), *guest = httpd_query(req, "guest");
    const char *parent = httpd_query(req, "parent"), *after;
    unsigned limit;

    (void)am;
    http_page_params(req, &limit, &after);
    if (guest && db_guest_get_by_name(m->db, guest, &g) == 0)
        f.guest_id = g.id;
    else if (guest)
        f.guest_id = "-"; /* no such guest: no operation either */
    f.state = state;
    f.parent = parent;
    f.after = after;
    f.limit = limit;
    c.items = json_array();
    int r = db_op_list(m->db, &f, list_one, &c);
    db_guest_clear(&g);
    if (r < 0) {
        json_decref(c.items);
        http_reply_errno(req, r, NULL, "cannot list operations");
        return;
    }
    json_t *o = json_pack("{s:o}", "operations", c.items);
    if (c.n == limit)
        json_object_set_new(o, "next", json_string(c.last));
    httpd_respond(req, 200, o);
}

void
h_operation_get(master_t *m, struct http_req *req, const struct api_match *am)
{
    json_t *o = spec_is_uuid(am->name) ? operations_json(m, am->name) : NULL;

    if (!o) {
        httpd_error(req, 404, "not_found", NULL, "no operation %s", am->name);
        return;
    }
    httpd_respond(req, 200, o);
}

/* DELETE: a cancel. The operation winds down by itself; the answer is the
 * operation as it is now (202), or 409 when it is past undoing. */
void
h_operation_cancel(master_t *m, struct http_req *req, const struct api_match *am)
{
    char why[256] = "";

    if (!spec_is_uuid(am->name)) {
        httpd_error(req, 404, "not_found", NULL, "no operation %s", am->name);
        return;
    }
    int r = db_begin(m->db);
    if (r >= 0) {
        r = operations_cancel(m, am->name, why, sizeof(why));
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r == -ENOENT) {
        json_t *ended = operations_json(m, am->name); /* a stored, finished one */
        if (ended) {
            json_decref(ended);
            r = -EALREADY;
            snprintf(why, sizeof(why), "operation %s has ended", am->name);
        }
    }
    if (r < 0) {
        http_reply_errno(req, r, NULL, "%s", why[0] ? why : strerror(-r));
        return;
    }
    log_notice("op=%s cancel asked", am->name);
    httpd_respond(req, 202, operations_json(m, am->name));
}

/* ---- actions ---- */

/* The body's members: each in allowed, the booleans booleans. */
static int
check_body(struct http_req *req, const char *const *allowed, size_t n)
{
    const char *k;
    json_t *v;

    if (req->body && !json_is_object(req->body)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be a JSON object");
        return -1;
    }
    json_object_foreach(req->body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(k, allowed[i]) == 0;
        if (!ok) {
            httpd_error(req, 400, "bad_request", k, "unknown member %s", k);
            return -1;
        }
        if ((!strcmp(k, "live") || !strcmp(k, "renumber")) && !json_is_boolean(v)) {
            httpd_error(req, 400, "bad_request", k, "%s must be true or false", k);
            return -1;
        }
    }
    return 0;
}

static int
parse_move(struct http_req *req, struct op_move_req *rq, struct sched_label *cons)
{
    static const char *const allowed[] = {"to", "live", "renumber", "constraints"};
    json_t *b = req->body, *v;
    const char *k;

    if (check_body(req, allowed, ARRAY_SIZE(allowed)) < 0)
        return -1;
    if ((v = json_object_get(b, "to")) && !json_is_null(v)) {
        if (!http_json_is_name(v)) {
            httpd_error(req, 400, "bad_request", "to", "to must be a node name");
            return -1;
        }
        rq->to = json_string_value(v);
    }
    rq->live = json_is_true(json_object_get(b, "live"));
    rq->renumber = json_is_true(json_object_get(b, "renumber"));
    v = json_object_get(b, "constraints");
    if (v && (!json_is_object(v) || json_object_size(v) > SCHED_MAX_LABELS)) {
        httpd_error(req, 400, "bad_request", "constraints",
                    "constraints must be an object of at most %d labels", SCHED_MAX_LABELS);
        return -1;
    }
    json_object_foreach(v, k, b)
    {
        if (!name_is_valid(k) || !json_is_string(b)) {
            httpd_error(req, 400, "bad_request", "constraints",
                        "constraint \"%s\" must be a name with a string", k);
            return -1;
        }
        cons[rq->n_cons++] = (struct sched_label){k, json_string_value(b)};
    }
    rq->cons = cons;
    return 0;
}

/* Starts an operation through start (inside one transaction with the
 * request's key) and answers 202 with it. */
static void
start_op(master_t *m, struct http_req *req, const struct idem *key,
         int (*start)(master_t *m, const void *rq, char id[SPEC_ID_LEN + 1], struct guest_err *e),
         const void *rq)
{
    struct guest_err e = {0};
    char id[SPEC_ID_LEN + 1] = "";
    json_t *o = NULL;
    int r = db_begin(m->db);

    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    r = start(m, rq, id, &e);
    if (r >= 0) {
        o = operations_json(m, id);
        r = o ? idem_store(m, req, key, 202, o) : -EIO;
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        json_decref(o);
        if (!e.message[0])
            guest_fail(&e, r, NULL, "cannot store the operation: %s", strerror(-r));
        http_reply_guest_err(req, r, &e);
        return;
    }
    char loc[64];
    snprintf(loc, sizeof(loc), "/v1/operations/%s", id);
    httpd_set_header(req, "Location", loc);
    httpd_respond(req, 202, o);
}

static int
start_move(master_t *m, const void *rq, char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    return op_move_start(m, rq, id, e);
}

static int
start_drain(master_t *m, const void *rq, char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    return op_drain_start(m, rq, id, e);
}

void
h_guest_move(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct sched_label cons[SCHED_MAX_LABELS];
    struct op_move_req rq = {.guest = am->name};
    struct idem id;

    if (idem_begin(m, req, am->caller.who, &id) || parse_move(req, &rq, cons) < 0)
        return;
    start_op(m, req, &id, start_move, &rq);
}

void
h_node_drain(master_t *m, struct http_req *req, const struct api_match *am)
{
    static const char *const allowed[] = {"limit", "live", "renumber"};
    struct op_drain_req rq = {.node = am->name, .limit = 2};
    struct idem id;
    json_t *v;

    if (idem_begin(m, req, am->caller.who, &id) ||
        check_body(req, allowed, ARRAY_SIZE(allowed)) < 0)
        return;
    if ((v = json_object_get(req->body, "limit"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 32) {
            httpd_error(req, 400, "bad_request", "limit", "limit must be 1..32");
            return;
        }
        rq.limit = (unsigned)json_integer_value(v);
    }
    rq.live = json_is_true(json_object_get(req->body, "live"));
    rq.renumber = json_is_true(json_object_get(req->body, "renumber"));
    start_op(m, req, &id, start_drain, &rq);
}

static int
start_export(master_t *m, const void *rq, char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    return op_export_start(m, rq, id, e);
}

static int
start_import(master_t *m, const void *rq, char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    return op_import_start(m, rq, id, e);
}

void
h_guest_export(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct idem id;

    if (idem_begin(m, req, am->caller.who, &id) || check_body(req, NULL, 0) < 0)
        return;
    start_op(m, req, &id, start_export, am->name);
}

/* {"archive": id, "name"?, "to"?, "constraints"?} */
void
h_guest_import(master_t *m, struct http_req *req, const struct api_match *am)
{
    static const char *const allowed[] = {"archive", "name", "to", "constraints", "keep_ips"};
    struct sched_label cons[SCHED_MAX_LABELS];
    struct op_import_req rq = {0};
    struct op_move_req mv = {0};
    struct idem id;
    json_t *v;

    (void)am;
    if (idem_begin(m, req, am->caller.who, &id) ||
        check_body(req, allowed, ARRAY_SIZE(allowed)) < 0)
        return;
    rq.archive = json_string_value(json_object_get(req->body, "archive"));
    if (!rq.archive || !spec_is_uuid(rq.archive)) {
        httpd_error(req, 400, "bad_request", "archive", "archive must be an archive's id");
        return;
    }
    if ((v = json_object_get(req->body, "name")) && !http_json_is_name(v)) {
        httpd_error(req, 400, "bad_request", "name", "name must be a name");
        return;
    }
    rq.name = json_string_value(v);
    if ((v = json_object_get(req->body, "keep_ips")) && !json_is_boolean(v)) {
        httpd_error(req, 400, "bad_request", "keep_ips", "keep_ips must be true or false");
        return;
    }
    rq.keep_ips = json_is_true(v);
    /* to and constraints read as a move's do. */
    json_t *keep = json_object();
    if ((v = json_object_get(req->body, "to")))
        json_object_set(keep, "to", v);
    if ((v = json_object_get(req->body, "constraints")))
        json_object_set(keep, "constraints", v);
    json_t *body = req->body;
    ((struct http_req *)req)->body = keep;
    int r = parse_move(req, &mv, cons);
    ((struct http_req *)req)->body = body;
    if (r >= 0) {
        rq.to = mv.to;
        rq.cons = mv.cons;
        rq.n_cons = mv.n_cons;
        start_op(m, req, &id, start_import, &rq);
    }
    json_decref(keep);
}
