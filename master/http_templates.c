/* Templates at the API: GET /v1/templates, the root filesystem templates
 * the nodes report in their hello, with the size and checksum each node
 * computed for its copy (node/linux/template_sum.h), so an operator sees
 * which nodes can take a guest of a template and whether their copies are
 * the same, and the master's library entry of each (template_lib.h);
 * POST /v1/templates and DELETE /v1/templates/{name}, the library's
 * entries; POST /v1/templates/{name}/distribute, a push to nodes
 * (op_template.h); and POST /v1/guests/{name}/rebuild, a guest reinstalled
 * from a template (master/guest_rebuild.c). */
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
#include "master/op_template.h"
#include "master/registry.h"
#include "master/template_lib.h"

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
    /* The library's entries beside the nodes' copies (template_lib.h). */
    json_t *lib = template_lib_json(m), *v;
    const char *k;
    json_object_foreach(lib, k, v)
    {
        json_object_del(v, "name");
        json_object_set(entry_of(list, k), "library", v);
    }
    json_decref(lib);
    /* In name order; a tenant sees no node names (nodes are not its). */
    size_t n = json_array_size(list);
    json_t **items = xcalloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(list, i);
    qsort(items, n, sizeof(*items), by_name);
    for (size_t i = 0; i < n; i++) {
        json_t *e = items[i], *nodes = json_object_get(e, "nodes");
        json_object_set_new(e, "node_count", json_integer((json_int_t)json_array_size(nodes)));
        if (!json_object_get(e, "library"))
            json_object_set_new(e, "library", json_null());
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

/* ---- the library ---- */

void
h_template_add(master_t *m, struct http_req *req, const struct api_match *am)
{
    const char *name = json_string_value(json_object_get(req->body, "name"));
    const char *upload = json_string_value(json_object_get(req->body, "archive"));
    struct template_lib_entry e;
    char why[300] = "";
    const char *k;
    json_t *v;

    (void)am;
    if (!json_is_object(req->body) || !name || !upload) {
        httpd_error(req, 400, "bad_request", "(root)",
                    "the body must be {\"name\": NAME, \"archive\": UPLOAD_ID}");
        return;
    }
    json_object_foreach(req->body, k, v)
    {
        if (strcmp(k, "name") != 0 && strcmp(k, "archive") != 0) {
            httpd_error(req, 400, "bad_request", k, "the body takes only name and archive");
            return;
        }
    }
    int r = template_lib_add(m, name, upload, &e, why, sizeof(why));
    if (r < 0) {
        http_reply_errno(req, r == -EAGAIN ? -EBUSY : r,
                         r == -EINVAL && !name_is_valid(name) ? "name" : "archive", "%s", why);
        return;
    }
    httpd_respond(req, 201, template_lib_entry_json(&e));
}

/* The running fetch of name, or NULL. */
static struct op *
fetch_of(master_t *m, const char *name)
{
    for (struct op *o = operations_find_kind(m, OP_TEMPLATE, NULL); o;
         o = operations_find_kind(m, OP_TEMPLATE, o))
        if (strcmp(op_pstr(o, "name"), name) == 0)
            return o;
    return NULL;
}

void
h_template_delete(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct op *o = fetch_of(m, am->name);

    if (o) {
        http_reply_errno(req, -EBUSY, NULL,
                         "template \"%s\" is being sent to node %s (operation %s)", am->name,
                         o->target, o->id);
        return;
    }
    int r = template_lib_remove(m, am->name);
    if (r < 0) {
        http_reply_errno(req, r, NULL,
                         r == -ENOENT ? "no template \"%s\" in the library"
                                      : "cannot remove template \"%s\"",
                         am->name);
        return;
    }
    httpd_respond(req, 204, NULL);
}

/* The nodes a distribute names, or every node: in *nodes (a new array). */
static int
distribute_nodes(master_t *m, struct http_req *req, json_t **nodes)
{
    json_t *list = json_object_get(req->body, "nodes"), *v;
    size_t i;

    if (req->body && (!json_is_object(req->body) || json_object_size(req->body) > (list ? 1 : 0) ||
                      (list && !json_is_array(list)))) {
        httpd_error(req, 400, "bad_request", "(root)", "the body must be {\"nodes\": [NAME...]}");
        return -1;
    }
    *nodes = json_array();
    if (!list || json_array_size(list) == 0) {
        for (i = 0; i < registry_count(m->reg); i++)
            json_array_append_new(*nodes, json_string(registry_at(m->reg, i)->name));
        return 0;
    }
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v)) {
            httpd_error(req, 400, "bad_request", "nodes", "the nodes are names (strings)");
            json_decref(*nodes);
            *nodes = NULL; /* the caller frees what it has */
            return -1;
        }
        if (!registry_get(m->reg, json_string_value(v))) {
            httpd_error(req, 404, "not_found", "nodes", "no node %s", json_string_value(v));
            json_decref(*nodes);
            *nodes = NULL; /* the caller frees what it has */
            return -1;
        }
        bool seen = false; /* a node named twice is told once */
        size_t j;
        json_t *w;
        json_array_foreach(*nodes, j, w) seen = seen || json_equal(v, w);
        if (!seen)
            json_array_append(*nodes, v);
    }
    return 0;
}

void
h_template_distribute(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct template_lib_entry e;
    json_t *nodes = NULL, *ops = json_array(), *present = json_array(), *v;
    size_t i;
    int r = template_lib_get(m, am->name, &e);

    if (r < 0) {
        http_reply_errno(req, -ENOENT, NULL, "no template \"%s\" in the library", am->name);
        goto out;
    }
    if (distribute_nodes(m, req, &nodes) < 0)
        goto out;
    bool implicit = json_array_size(json_object_get(req->body, "nodes")) == 0;
    r = db_begin(m->db);
    json_array_foreach(nodes, i, v)
    {
        const char *node = json_string_value(v);
        char id[SPEC_ID_LEN + 1];
        if (r < 0)
            break;
        if (registry_node_has_template(m->reg, node, am->name)) {
            json_array_append(present, v);
            continue;
        }
        if (!master_node_connected(m, node) && implicit)
            continue; /* "every node" means every node that can be told now */
        if (!master_node_connected(m, node)) {
            r = -EHOSTUNREACH;
            http_reply_errno(req, r, "nodes", "node %s is not connected", node);
            break;
        }
        r = op_template_fetch(m, node, am->name, NULL, id);
        if (r >= 0)
            json_array_append_new(ops, json_pack("{s:s, s:s}", "node", node, "operation", id));
    }
    if (r >= 0) {
        r = db_commit(m->db);
        if (r >= 0)
            httpd_respond(req, 202,
                          json_pack("{s:s, s:O, s:O}", "template", am->name, "operations", ops,
                                    "present", present));
    } else if (db_tx_depth(m->db) > 0) {
        db_rollback(m->db);
    }
    if (r < 0 && r != -EHOSTUNREACH)
        http_reply_errno(req, r, NULL, "cannot start the fetches: %s", strerror(-r));
out:
    json_decref(nodes);
    json_decref(ops);
    json_decref(present);
}
