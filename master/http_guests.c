/* HTTP handlers: the guest collection and one guest as a whole. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/guests.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/idem.h"
#include "master/oncommit.h"
#include "master/waiters.h"
#include "master/jtext.h"
#include "proto/spec_json.h"

#define PATCH_WAIT_MS 30000 /* how long a PATCH waits for the node to apply it */

/* ---- create ---- */

/* The members of a create body that are not the spec's. */
static const char *const create_extra[] = {"constraints", "group", "node",
                                           "algorithm",   "ips",   "project"};

static int
parse_constraints(const json_t *v, struct guest_create_req *rq, struct guest_err *e)
{
    const char *k;
    json_t *c;

    if (!json_is_object(v) || json_object_size(v) > SCHED_MAX_LABELS)
        return guest_fail(e, -EINVAL, "constraints",
                          "constraints must be an object of at most %d labels", SCHED_MAX_LABELS);
    json_object_foreach((json_t *)v, k, c)
    {
        if (!name_is_valid(k) || !json_is_string(c) ||
            strlen(json_string_value(c)) > SCHED_LABEL_VALUE_MAX)
            return guest_fail(e, -EINVAL, "constraints",
                              "constraint \"%s\" must be a name with a string", k);
        rq->cons[rq->n_cons++] = (struct sched_label){k, json_string_value(c)};
    }
    return 0;
}

static int
parse_ips(const json_t *v, struct guest_create_req *rq, struct guest_err *e)
{
    size_t i;
    json_t *a;

    if (!json_is_array(v) || json_array_size(v) > SPEC_MAX_ADDRS)
        return guest_fail(e, -EINVAL, "ips", "ips must be an array of \"auto\" or addresses");
    json_array_foreach((json_t *)v, i, a)
    {
        if (!json_is_string(a))
            return guest_fail(e, -EINVAL, "ips", "ips[%zu] must be a string", i);
        const char *s = json_string_value(a);
        struct ipam_request *r = &rq->ips[rq->n_ips++];
        *r = (struct ipam_request){.family = AF_UNSPEC};
        if (strcmp(s, "auto4") == 0)
            r->family = AF_INET;
        else if (strcmp(s, "auto6") == 0)
            r->family = AF_INET6;
        else if (strcmp(s, "auto") != 0)
            r->address = s;
    }
    return 0;
}

/* Parses a create body into rq. The strings rq points at live in *keep,
 * which the caller releases after the create. */
static int
parse_create(const json_t *body, struct guest_create_req *rq, json_t **keep, struct guest_err *e)
{
    json_t *v;

    *rq = (struct guest_create_req){.algo = SCHED_DEFAULT};
    *keep = NULL;
    if (!json_is_object(body))
        return guest_fail(e, -EINVAL, "(root)", "the body must be a JSON object");
    json_t *spec = json_deep_copy(body);
    json_t *extra = json_object();
    for (size_t i = 0; i < ARRAY_SIZE(create_extra); i++)
        if ((v = json_object_get(spec, create_extra[i]))) {
            json_object_set(extra, create_extra[i], v);
            json_object_del(spec, create_extra[i]);
        }
    /* rq's strings point into these; the caller releases them after. */
    *keep = json_pack("{s:o, s:o}", "spec", spec, "extra", extra);

    if (json_object_get(spec, "id") || json_object_get(spec, "generation")) {
        const char *f = json_object_get(spec, "id") ? "id" : "generation";
        return guest_fail(e, -EINVAL, f, "%s is chosen by the master", f);
    }
    if (!http_json_is_name(json_object_get(spec, "name")))
        return guest_fail(e, -EINVAL, "name", "name is required: 1-63 of a-z, 0-9 and -");
    if (!http_json_is_name(json_object_get(spec, "template")))
        return guest_fail(e, -EINVAL, "template", "template is required: a name");
    if ((v = json_object_get(extra, "constraints")) && parse_constraints(v, rq, e) < 0)
        return -EINVAL;
    if ((v = json_object_get(extra, "group"))) {
        if (!http_json_is_name(v))
            return guest_fail(e, -EINVAL, "group", "group must be a name");
        rq->group = json_string_value(v);
    }
    if ((v = json_object_get(extra, "node"))) {
        if (!http_json_is_name(v))
            return guest_fail(e, -EINVAL, "node", "node must be a name");
        rq->pin = json_string_value(v);
    }
    if ((v = json_object_get(extra, "algorithm"))) {
        int a = json_is_string(v) ? sched_algo_from_string(json_string_value(v)) : -EINVAL;
        if (a < 0)
            return guest_fail(e, -EINVAL, "algorithm", "algorithm must be spread or binpack");
        rq->algo = (enum sched_algo)a;
    }
    if ((v = json_object_get(extra, "ips")) && parse_ips(v, rq, e) < 0)
        return -EINVAL;
    if (guest_provision_input(spec, e) < 0)
        return -EINVAL;
    if ((v = json_object_get(extra, "project"))) {
        if (!http_json_is_name(v))
            return guest_fail(e, -EINVAL, "project", "project must be a name");
        rq->project = json_string_value(v);
    }
    /* The spec is validated whole: give it the shape of an id and a
     * generation; create chooses the real ones. */
    strscpy(rq->spec.id, "00000000-0000-4000-8000-000000000000", sizeof(rq->spec.id));
    rq->spec.generation = 1;
    rq->spec.autostart = true;
    int r = spec_from_json(spec, &rq->spec, e->field_buf, sizeof(e->field_buf));
    if (r < 0)
        return guest_fail(e, r, e->field_buf, "invalid field %s", e->field_buf);
    return 0;
}

/* Parses and creates one guest inside the caller's transaction; *resp is
 * the guest (201) or the error body. With want_201 false a success leaves
 * *resp NULL: the caller answers later from the guest's state. */
static int
create_one(master_t *m, const struct caller *who, const json_t *body, struct guest_created *c,
           bool want_201, json_t **resp, unsigned *status)
{
    /* Not zeroed here: parse_create sets it whole first. */
    struct guest_create_req *rq = xmalloc(sizeof(*rq));
    struct guest_err e = {0};
    json_t *keep = NULL;
    int r = parse_create(body, rq, &keep, &e);

    if (r >= 0)
        r = guests_create(m, who, rq, c, &e);
    if (r >= 0) {
        if (want_201) {
            *resp = guests_created_json(c);
        } else {
            json_decref(c->spec_json);
            c->spec_json = NULL;
        }
        *status = 201;
    } else {
        struct api_error ae;
        api_error_from_errno(r, &ae);
        *resp = api_error_json(ae.code, e.field, e.message);
        if (e.placement)
            json_object_set_new(
                json_object_get(*resp, "error"), "placement",
                api_placement_json(&e.result, e.pin_unknown, e.pin[0] ? e.pin : NULL));
        *status = ae.status;
    }
    json_decref(keep);
    free(rq);
    return r;
}

/* A create's answer, given once the transaction that stored the guest (or
 * that its error describes) has committed: the handler's own, or the loop's
 * batch when the create joined it (http_edge.c, create_joins_batch). */
struct create_done {
    struct http_req *req;    /* the request */
    struct guest_created *c; /* the guest (its spec fills the cache), owned */
    json_t *resp;            /* the answer: the guest (201) or the error body */
    unsigned status;         /* its status */
    int64_t wait_ms;         /* > 0: answered when the guest runs */
    bool created;            /* the create succeeded */
};

static void
create_done(master_t *m, void *ctx, int err)
{
    struct create_done *d = ctx;

    if (err < 0) {
        /* The batch it joined did not commit: nothing of it was stored. */
        json_decref(d->resp);
        http_reply_errno(d->req, err, NULL, "cannot store the guest: %s; nothing was created",
                         strerror(-err));
    } else if (d->created && d->wait_ms > 0) {
        /* The answer reads the guest when it runs: the spec just stored is
         * copied from the cache then, not parsed again from its text. */
        guests_cache_put(m, d->c->spec.id, d->c->spec.generation, &d->c->spec);
        struct waiter *w =
            waiter_add(m, d->req, WAIT_RUNNING, d->c->spec.id, d->c->node, (uint32_t)d->wait_ms);
        w->status = 201;
        json_decref(d->resp);
    } else
        httpd_respond(d->req, d->status, d->resp);
    free(d->c);
    free(d);
}

void
h_guest_create(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct idem id;
    struct create_done *d = xcalloc(1, sizeof(*d));
    int r;

    d->req = req;
    d->c = xcalloc(1, sizeof(*d->c));
    d->wait_ms = http_wait_param(m, req, "running");
    if (d->wait_ms < 0 || idem_begin(m, req, am->caller.who, &id))
        goto out;
    if (!req->body) {
        httpd_error(req, 400, "bad_request", "(root)", "a JSON body is required");
        goto out;
    }
    r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        goto out;
    }
    /* A create that waits answers when the guest runs: its 201 body now
     * is only needed for an idempotency key's record. */
    r = create_one(m, &am->caller, req->body, d->c, !(d->wait_ms > 0 && !id.key), &d->resp,
                   &d->status);
    if (r < 0)
        db_rollback(m->db);
    else {
        r = idem_store(m, req, &id, 201, d->resp);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
        if (r < 0) {
            json_decref(d->resp);
            http_reply_errno(req, r, NULL, "cannot store the guest: %s; nothing was created",
                             strerror(-r));
            goto out;
        }
        d->created = true;
    }
    /* Its own transaction has committed (or rolled back) by now; inside the
     * loop's batch, the answer waits for the batch's commit, the error too
     * (a name or a quota that another create of the batch took). */
    oncommit_add(m->oncommit, create_done, d);
    return;
out:
    free(d->c);
    free(d);
}

void
h_guest_batch(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct idem id;
    json_t *list = req->body ? json_object_get(req->body, "guests") : NULL;
    size_t n, i;
    json_t *v;

    if (idem_begin(m, req, am->caller.who, &id))
        return;
    if (!json_is_array(list) || json_object_size(req->body) != 1) {
        httpd_error(req, 400, "bad_request", "guests", "the body must be {\"guests\":[...]}");
        return;
    }
    n = json_array_size(list);
    if (n < 1 || n > MASTER_BATCH_MAX) {
        httpd_error(req, 400, "bad_request", "guests", "a batch holds 1-%d guests",
                    MASTER_BATCH_MAX);
        return;
    }
    int r = db_begin(m->db);
    if (r < 0) {
        http_reply_errno(req, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        return;
    }
    struct guest_created *c = xcalloc(1, sizeof(*c));
    json_t *results = json_array();
    json_array_foreach(list, i, v)
    {
        json_t *resp = NULL;
        unsigned status;
        (void)create_one(m, &am->caller, v, c, true, &resp, &status);
        json_array_append_new(results, resp);
    }
    free(c);
    /* One text for the idempotency record and the answer: a 1,000-guest
     * reply turned into JSON twice was a tenth of a batch's CPU. */
    json_t *body = json_pack("{s:o}", "results", results);
    char *text = jtext_dumps(body, true); /* json_dumps's bytes, faster (jtext.h) */
    json_decref(body);
    r = text ? idem_store_text(m, req, &id, 200, text) : -ENOMEM;
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0) {
        free(text);
        http_reply_errno(req, r, NULL, "cannot store the batch: %s; nothing was created",
                         strerror(-r));
        return;
    }
    httpd_respond_text(req, 200, NULL, text, strlen(text)); /* NULL: JSON */
}

/* ---- list and get ---- */

struct list_ctx {
    master_t *m;                 /* the master */
    json_t *items;               /* the page */
    unsigned limit;              /* page size */
    unsigned n;                  /* items so far */
    char last[NAME_MAX_LEN + 1]; /* the last name in the page */
};

static int
list_guest(void *userdata, const struct db_guest *g)
{
    struct list_ctx *c = userdata;
    struct guest_spec spec;

    if (guests_spec(c->m, g, &spec) == 0)
        json_array_append_new(c->items, api_guest_json(g, &spec));
    strscpy(c->last, g->name, sizeof(c->last));
    c->n++;
    return 0;
}

/* ?node=&state=&label=key=value&project= into f (label key copied to
 * lkey); a tenant's list is its project's, whatever it asks. The edge has
 * checked the names and the state against the route's table (api.c). */
static int
list_filters(struct http_req *req, const struct caller *who, struct db_guest_filter *f,
             char lkey[NAME_MAX_LEN + 1])
{
    const char *state = httpd_query(req, "state"), *label = httpd_query(req, "label");

    f->project = httpd_query(req, "project");
    if (who->role == AUTH_TENANT) {
        /* Another project's list is empty, as if it had no guests. */
        if (f->project && strcmp(f->project, who->project) != 0)
            f->project = "";
        else
            f->project = who->project;
    }
    f->node = httpd_query(req, "node");
    if (state)
        f->observed = db_observed_from_string(state);
    if (label) {
        const char *eq = strchr(label, '=');
        if (!eq || eq == label || (size_t)(eq - label) > NAME_MAX_LEN) {
            httpd_error(req, 400, "bad_request", "label", "label must be key=value");
            return -1;
        }
        memcpy(lkey, label, (size_t)(eq - label));
        lkey[eq - label] = '\0';
        f->label_key = lkey;
        f->label_value = eq + 1;
    }
    return 0;
}

void
h_guest_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_guest_filter f = {.observed = -1};
    struct list_ctx c = {.m = m};
    char lkey[NAME_MAX_LEN + 1];
    const char *after;

    http_page_params(req, &c.limit, &after);
    if (list_filters(req, &am->caller, &f, lkey) < 0)
        return;
    f.after = after;
    f.limit = c.limit;
    c.items = json_array();
    int r = db_guest_list(m->db, &f, list_guest, &c);
    if (r < 0) {
        json_decref(c.items);
        http_reply_errno(req, r, NULL, "cannot list guests");
        return;
    }
    json_t *o = json_pack("{s:o}", "guests", c.items);
    if (c.n == c.limit)
        json_object_set_new(o, "next", json_string(c.last));
    httpd_respond(req, 200, o);
}

void
h_guest_get(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    int r = guests_load(m, &am->caller, am->name, NULL, &g, &spec);

    if (r < 0) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    httpd_respond(req, 200, api_guest_json(&g, &spec));
    db_guest_clear(&g);
}

/* ---- change ---- */

/* A PATCH limits object: null members go back to "not set". */
static json_t *
patch_limits(const json_t *v)
{
    json_t *lim = json_object();
    const char *k;
    json_t *lv;

    json_object_foreach((json_t *)v, k, lv)
    {
        if (json_is_null(lv))
            json_object_set_new(lim, k, !strcmp(k, "io") ? json_array() : json_integer(0));
        else
            json_object_set(lim, k, lv);
    }
    return lim;
}

/* A PATCH labels object merged into the current labels (null removes). */
static json_t *
patch_labels(const json_t *v, const struct guest_spec *cur)
{
    json_t *labels = json_object();
    const char *k;
    json_t *lv;

    for (uint32_t i = 0; i < cur->n_labels; i++)
        json_object_set_new(labels, cur->labels[i].key, json_string(cur->labels[i].value));
    json_object_foreach((json_t *)v, k, lv)
    {
        if (json_is_null(lv))
            json_object_del(labels, k);
        else
            json_object_set(labels, k, lv);
    }
    return labels;
}

/* Turns the API's merge patch into spec_from_json's input. */
static int
patch_to_spec_json(const json_t *patch, const struct guest_spec *cur, json_t **out,
                   struct guest_err *e)
{
    json_t *in = json_object();
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)patch, k, v)
    {
        if (!strcmp(k, "limits") || !strcmp(k, "labels")) {
            if (!json_is_object(v)) {
                json_decref(in);
                return guest_fail(e, -EINVAL, k, "%s must be an object", k);
            }
            json_object_set_new(in, k,
                                !strcmp(k, "limits") ? patch_limits(v) : patch_labels(v, cur));
        } else if (!strcmp(k, "flags") || !strcmp(k, "restart") || !strcmp(k, "restart_max") ||
                   !strcmp(k, "restart_backoff") || !strcmp(k, "provision") || !strcmp(k, "init") ||
                   !strcmp(k, "domainname") || !strcmp(k, "halt_signal") ||
                   !strcmp(k, "stop_timeout") || !strcmp(k, "autostart") ||
                   !strcmp(k, "caps_add") || !strcmp(k, "caps_drop")) {
            /* Replaced whole; provision is merged member by member. */
            json_object_set(in, k, v);
        } else if (!strcmp(k, "id") || !strcmp(k, "name") || !strcmp(k, "template")) {
            /* Fixed; repeating the current value is harmless. */
            const char *curv = !strcmp(k, "id")     ? cur->id
                               : !strcmp(k, "name") ? cur->name
                                                    : cur->template_name;
            if (!json_is_string(v) || strcmp(json_string_value(v), curv) != 0) {
                json_decref(in);
                return guest_fail(e, -EBUSY, k, "%s cannot be changed", k);
            }
        } else {
            json_decref(in);
            return guest_fail(e, -EINVAL, k, "%s cannot be patched", k);
        }
    }
    *out = in;
    return 0;
}

void
h_guest_patch(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_guest g = {0};
    struct guest_spec spec, next;
    struct guest_err e = {0};
    json_t *in = NULL;
    int r;

    if (!json_is_object(req->body) || json_object_size(req->body) == 0) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be a non-empty object");
        return;
    }
    r = guests_load(m, &am->caller, am->name, NULL, &g, &spec);
    if (r < 0) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    r = patch_to_spec_json(req->body, &spec, &in, &e);
    if (r >= 0)
        r = guest_provision_input(in, &e);
    if (r >= 0) {
        next = spec;
        r = spec_from_json(in, &next, e.field_buf, sizeof(e.field_buf));
        if (r < 0)
            guest_fail(&e, r, e.field_buf, "invalid field %s", e.field_buf);
    }
    if (r >= 0)
        r = guests_change(m, &am->caller, &g, &spec, &next, &e);
    if (r < 0) {
        http_reply_guest_err(req, r, &e);
        goto out;
    }
    /* A guest its node has (or is creating) answers when the node applied
     * the change or refused it; a refusal undoes it (409 with the reason). */
    if (g.node && master_node_connected(m, g.node) &&
        (g.observed == DB_OBS_RUNNING || g.observed == DB_OBS_STOPPED ||
         g.observed == DB_OBS_PENDING)) {
        struct waiter *w = waiter_add(m, req, WAIT_APPLY, g.id, g.node, PATCH_WAIT_MS);
        w->status = 200;
        w->generation = g.generation;
        w->before = xmalloc(sizeof(*w->before));
        *w->before = spec;
        goto out;
    }
    httpd_respond(req, 200, guests_json(m, g.id));
out:
    json_decref(in);
    db_guest_clear(&g);
}

/* ---- delete ---- */

void
h_guest_delete(master_t *m, struct http_req *req, const struct api_match *am)
{
    const char *force = httpd_query(req, "force"); /* true or false (api.c's table) */
    char id[SPEC_ID_LEN + 1], node[NAME_MAX_LEN + 1];
    struct guest_err e = {0};

    int r = guests_delete(m, &am->caller, am->name, force && !strcmp(force, "true"), id, node, &e);
    if (r < 0)
        http_reply_guest_err(req, r, &e);
    else if (r == 0)
        httpd_respond(req, 204, NULL);
    else
        waiter_add(m, req, WAIT_DELETE, id, node, m->cfg.wait_default_s * 1000)->status = 202;
}
