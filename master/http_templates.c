/* Templates at the API: GET /v1/templates, the root filesystem templates
 * the nodes report in their hello, with the size and checksum each node
 * computed for its copy (node/linux/template_sum.h), so an operator sees
 * which nodes can take a guest of a template and whether their copies are
 * the same; and POST /v1/guests/{name}/rebuild, a guest reinstalled from a
 * template (master/guest_rebuild.c). */
#include <string.h>

#include <errno.h>
#include <stdlib.h>

#include "common/mem.h"
#include "master/auth.h"
#include "master/guests.h"
#include "master/http_edge.h"
#include "master/idem.h"
#include "master/waiters.h"
#include "master/core.h"
#include "master/http_handlers.h"
#include "master/registry.h"

/* The entry of name in list, made when missing. */
static json_t *
entry_of(json_t *list, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(list, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name))
            return e;
    }
    e = json_pack("{s:s, s:[], s:[]}", "name", name, "nodes", "checksums");
    json_array_append_new(list, e);
    return e;
}

static int
by_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x, y);
}

void
h_template_list(master_t *m, struct http_req *req, const struct api_match *am)
{
    bool staff = am->caller.role != AUTH_TENANT;
    json_t *list = json_array(), *sorted = json_array();

    for (size_t i = 0; i < registry_count(m->reg); i++) {
        const struct registry_node *n = registry_at(m->reg, i);
        for (uint32_t k = 0; k < n->n_template_info; k++) {
            const struct msg_template *t = &n->template_info[k];
            json_t *e = entry_of(list, t->name), *sums = json_object_get(e, "checksums");
            json_t *sum = t->checksum[0] ? json_string(t->checksum) : json_null();
            bool seen = false;
            size_t j;
            json_t *s;
            json_array_foreach(sums, j, s) seen = seen || json_equal(s, sum);
            if (!seen)
                json_array_append(sums, sum);
            json_array_append_new(json_object_get(e, "nodes"),
                                  json_pack("{s:s, s:s, s:I, s:o}", "node", n->name, "state",
                                            db_node_state_to_string(n->state), "size",
                                            (json_int_t)t->size, "checksum", sum));
        }
    }
    /* In name order; a tenant sees no node names (nodes are not its). */
    size_t n = json_array_size(list);
    json_t **items = xcalloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(list, i);
    qsort(items, n, sizeof(*items), by_name);
    for (size_t i = 0; i < n; i++) {
        json_t *e = items[i], *nodes = json_object_get(e, "nodes");
        json_object_set_new(e, "node_count", json_integer((json_int_t)json_array_size(nodes)));
        json_object_set_new(e, "consistent",
                            json_boolean(json_array_size(json_object_get(e, "checksums")) <= 1));
        if (!staff)
            json_object_del(e, "nodes");
        json_array_append(sorted, e);
    }
    free(items);
    json_decref(list);
    httpd_respond(req, 200, json_pack("{s:o}", "templates", sorted));
}

#define REBUILD_WAIT_MS 120000 /* a rebuild empties a disk layer: give it time */

void
h_guest_rebuild(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct db_guest g = {0};
    struct guest_spec spec, next;
    struct guest_err e = {0};
    struct idem id;
    const char *tmpl = NULL, *k;
    json_t *v;
    int r;

    if (req->body && !json_is_object(req->body)) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be {\"template\": NAME}");
        return;
    }
    json_object_foreach(req->body, k, v)
    {
        if (strcmp(k, "template") != 0 || !json_is_string(v)) {
            httpd_error(req, 400, "bad_request", k, "the body takes only template, a name");
            return;
        }
        tmpl = json_string_value(v);
    }
    if (idem_begin(m, req, am->caller.who, &id))
        return;
    r = guests_load(m, &am->caller, am->name, NULL, &g, &spec);
    if (r < 0) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    /* The change and the request's key commit together: a retry with the
     * same key replays this answer instead of rebuilding twice. */
    r = db_begin(m->db);
    if (r >= 0) {
        r = guests_rebuild(m, &am->caller, &g, &spec, tmpl, &next, &e);
        if (r >= 0) {
            json_t *resp = api_guest_json(&g, &next);
            r = idem_store(m, req, &id, 200, resp);
            json_decref(resp);
            if (r < 0)
                guest_fail(&e, r, NULL, "cannot store the request's key");
        }
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r < 0) {
        if (!e.message[0])
            guest_fail(&e, r, NULL, "cannot store the change: %s", strerror(-r));
        http_reply_guest_err(req, r, &e);
        db_guest_clear(&g);
        return;
    }
    /* Answered once the node has rebuilt it, or refused (then undone). */
    struct waiter *w = waiter_add(m, req, WAIT_APPLY, g.id, g.node, REBUILD_WAIT_MS);
    w->status = 200;
    w->generation = g.generation;
    w->before = xmalloc(sizeof(*w->before));
    *w->before = spec;
    db_guest_clear(&g);
}
