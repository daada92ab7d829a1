/* The guest domain: create (guests.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/uuid.h"
#include "master/api.h"
#include "master/charges.h"
#include "master/events.h"
#include "master/guests.h"
#include "master/guests_move.h"
#include "master/metrics.h"
#include "master/op_template.h"
#include "master/registry.h"
#include "master/template_lib.h"
#include "master/jtext.h"
#include "proto/spec_json.h"

_Static_assert(SPEC_ID_LEN == UUID_TEXT_LEN, "guests, operations and archives have UUIDs as ids");

/* Places the guest (the charge follows the caller's transaction). */
static int
place(master_t *m, const struct guest_create_req *rq, struct guest_created *out,
      struct guest_err *e)
{
    struct sched_request sreq = {.constraints = rq->cons,
                                 .n_constraints = rq->n_cons,
                                 .pin = rq->pin,
                                 .group = rq->group,
                                 .template_name = out->spec.template_name,
                                 .algo = rq->algo};
    struct sched_result *res = &e->result;

    guests_resources(m, &out->spec, &sreq.res);
    sreq.res.addrs = (uint32_t)rq->n_ips;
    uint64_t t0 = time_mono_ns();
    int r = charges_place(m->charges, &sreq, res);
    struct template_lib_entry lib;
    if (r == -ENOSPC && res->rejected[SCHED_F_TEMPLATE] && !rq->quiet &&
        template_lib_get(m, out->spec.template_name, &lib) == 0) {
        /* Nodes that have the template come first; when none fits, one
         * that lacks it takes the guest and the library sends it there. */
        struct sched_result strict = *res;
        sreq.template_fetch = true;
        r = charges_place(m->charges, &sreq, res);
        if (r < 0)
            *res = strict;
    }
    metrics_placement(m, r, time_mono_ns() - t0);
    if (r == -ENOSPC || r == -ENOENT) {
        e->placement = true;
        e->pin_unknown = r == -ENOENT;
        strscpy(e->pin, rq->pin ? rq->pin : "", sizeof(e->pin));
        /* It would fit on a node that is not ready now (a master that just
         * restarted, before the nodes said hello again; a network cut):
         * that passes, so it is a 503 to retry, not a 422 that says it can
         * never fit. */
        if (r == -ENOSPC && !rq->pin && res->rejected[SCHED_F_STATE] > 0) {
            struct sched_request ask = sreq;
            struct sched_result ignored;
            ask.if_ready = true;
            if (sched_place(m->sched, &ask, &ignored) == 0)
                return guest_fail(e, -EAGAIN, NULL,
                                  "no node that can take guest \"%s\" is ready now (%u of %u "
                                  "nodes are not); retry",
                                  out->spec.name, res->rejected[SCHED_F_STATE], res->nodes_total);
        }
        if (res->rejected[SCHED_F_TEMPLATE] && !res->nodes_feasible)
            return guest_fail(e, -EXFULL, "template",
                              "no node can take guest \"%s\": %u node(s) lack template \"%s\"",
                              out->spec.name, res->rejected[SCHED_F_TEMPLATE],
                              out->spec.template_name);
        return guest_fail(e, -EXFULL, NULL, "no node can take guest \"%s\"", out->spec.name);
    }
    if (r < 0)
        return guest_fail(e, r, NULL, "the placement request is invalid");
    strscpy(out->node, res->node, sizeof(out->node));
    strscpy(out->group, rq->group ? rq->group : "", sizeof(out->group));
    return 0;
}

/* The placement's and the creation's events, once the row is there, with
 * the project the row was given. */
static void
created_events(master_t *m, const struct guest_created *out, const struct sched_result *res)
{
    events_emit_project(
        m, out->project, "guest.placed", out->node, out->spec.id, out->spec.name,
        json_pack("{s:s, s:I, s:I}", "algorithm", sched_algo_name(res->algo), "nodes_feasible",
                  (json_int_t)res->nodes_feasible, "nodes_total", (json_int_t)res->nodes_total),
        "guest %s placed on node %s (%s, %u of %u nodes fit)", out->spec.name, out->node,
        sched_algo_name(res->algo), res->nodes_feasible, res->nodes_total);
    events_emit_project(m, out->project, "guest.created", out->node, out->spec.id, out->spec.name,
                        NULL, "guest %s created on node %s", out->spec.name, out->node);
}

/* Allocates the requested addresses from pools that serve the node. */
static int
allocate(master_t *m, const struct guest_create_req *rq, struct guest_created *out,
         struct guest_err *e)
{
    struct registry_node *rn = registry_get(m->reg, out->node);
    struct db_label nl[PROTO_MAX_LABELS];
    size_t n_nl = 0;
    char ierr[200] = "";

    if (!rq->n_ips)
        return 0;
    for (uint32_t i = 0; rn && i < rn->n_labels; i++)
        nl[n_nl++] = (struct db_label){rn->labels[i].key, rn->labels[i].value};
    int r = ipam_alloc(m->ipam, out->spec.id, rq->ips, rq->n_ips, nl, n_nl, out->spec.addrs, ierr,
                       sizeof(ierr));
    if (r == -ENOSPC)
        return guest_fail(e, -EXFULL, "ips", "no free address for node %s: %s", out->node, ierr);
    if (r < 0)
        return guest_fail(e, r, "ips", "%s", ierr[0] ? ierr : strerror(-r));
    out->spec.n_addrs = (uint32_t)rq->n_ips;
    return 0;
}

static int
insert(master_t *m, struct guest_created *out, struct guest_err *e)
{
    struct guest_spec *spec = &out->spec;
    struct db_label labels[SPEC_MAX_LABELS];
    json_t *j = spec_to_json(spec);
    _cleanup_free_ char *text = jtext_dumps(j, false);
    uint64_t now = time_real_ms();

    /* Kept for the reply (guests_created_json): nothing changes the spec
     * after this point, and the reply's tree is this one extended. */
    json_decref(out->spec_json);
    out->spec_json = j;
    for (uint32_t i = 0; i < spec->n_labels; i++)
        labels[i] = (struct db_label){spec->labels[i].key, spec->labels[i].value};
    struct sched_resources res;
    guests_resources(m, spec, &res);
    out->row = (struct db_guest){.id = spec->id,
                                 .name = spec->name,
                                 .project = out->project,
                                 .charge = {res.cpu, res.memory, res.disk, res.addrs},
                                 .charged = true,
                                 .node = out->node,
                                 .spec = text,
                                 .group = out->group[0] ? out->group : NULL,
                                 .generation = 1,
                                 .desired = DB_DESIRED_RUNNING,
                                 .observed = DB_OBS_PENDING,
                                 .created_ms = now,
                                 .updated_ms = now};
    int r = db_guest_insert(m->db, &out->row, labels, spec->n_labels);
    out->row.spec = NULL; /* the text is freed here; the spec is the struct */
    if (r == -EEXIST)
        return guest_fail(e, r, "name", "a guest named \"%s\" exists", spec->name);
    if (r == -EADDRINUSE)
        return guest_fail(e, r, "ips", "an address is taken");
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot store the guest: %s", db_errmsg(m->db));
    return 0;
}

/* The create goes to the node, or, when the node lacks the template, waits
 * for the library's copy to get there (op_template.h). */
static int
send_or_fetch(master_t *m, struct guest_created *out, struct guest_err *e)
{
    char op[SPEC_ID_LEN + 1];

    if (registry_node_has_template(m->reg, out->node, out->spec.template_name)) {
        guests_send_apply_start(m, out->node, &out->spec);
        return 0;
    }
    int r = op_template_fetch(m, out->node, out->spec.template_name, out->spec.id, op);
    if (r < 0)
        return guest_fail(e, r == -ENOENT ? -EXFULL : r, "template",
                          "node %s lacks template \"%s\" and the library cannot send it: %s",
                          out->node, out->spec.template_name, strerror(-r));
    log_info("guest=%s waits for template \"%s\" to reach node=%s (op=%s)", out->spec.name,
             out->spec.template_name, out->node, op);
    return 0;
}

/* The project of a new guest, and what the caller may not ask for it. */
static int
admit(master_t *m, const struct caller *c, const struct guest_create_req *rq,
      struct guest_created *out, struct guest_err *e)
{
    const char *project = rq->project;
    struct db_project p = {0};

    int ar = guests_admin_flags(c, 0, rq->spec.flags, e);
    if (ar < 0)
        return ar;
    if (c && c->role == AUTH_TENANT) {
        /* Another project does not exist for a tenant. */
        if (project && strcmp(project, c->project) != 0)
            return guest_fail(e, -ENOENT, "project", "no such project \"%s\"", project);
        project = c->project;
        if (rq->spec.caps_add)
            return guest_fail(e, -EACCES, "caps_add", "a tenant cannot add capabilities");
        if (rq->spec.flags & ~(uint32_t)GUESTS_TENANT_FLAGS)
            return guest_fail(e, -EACCES, "flags", "a tenant may set only the lock flag");
        if (rq->pin)
            return guest_fail(e, -EACCES, "node", "a tenant cannot choose the node");
    }
    if (!project)
        project = PROJECTS_DEFAULT;
    int r = db_project_get(m->db, project, &p);
    db_project_clear(&p);
    if (r < 0)
        return guest_fail(e, r, "project", "%s",
                          r == -ENOENT ? "no such project" : "cannot read the project");
    strscpy(out->project, project, sizeof(out->project));
    return 0;
}

/* The new guest's quota check: its whole charge and one guest more. */
static int
create_quota(master_t *m, const struct guest_created *out, struct guest_err *e)
{
    const struct db_charge *c = &out->row.charge;
    struct db_quota d = {
        .guests = 1, .cpu = c->cpu, .memory = c->memory, .disk = c->disk, .addrs = c->addrs};

    return projects_check(m, out->project, &d, e);
}

int
guests_create(master_t *m, const struct caller *c, const struct guest_create_req *rq,
              struct guest_created *out, struct guest_err *e)
{
    struct db_guest old = {0};
    int r;

    /* Field by field: the compound literal built a zeroed 17 KiB temporary
     * and copied the spec twice (issue 16). */
    memcpy(&out->spec, &rq->spec, sizeof(out->spec));
    memset(out->node, 0, sizeof(out->node));
    memset(out->group, 0, sizeof(out->group));
    memset(out->project, 0, sizeof(out->project));
    out->row = (struct db_guest){0};
    out->spec_json = NULL;
    r = admit(m, c, rq, out, e);
    if (r < 0)
        return r;
    if (uuid_v4(out->spec.id) < 0)
        abort(); /* no randomness at all: nothing sensible to do */
    out->spec.generation = 1;
    if (db_guest_get_by_name(m->db, out->spec.name, &old) == 0) {
        db_guest_clear(&old);
        return guest_fail(e, -EEXIST, "name", "a guest named \"%s\" exists", out->spec.name);
    }
    if (rq->n_ips > m->cfg.max_ips)
        return guest_fail(e, -E2BIG, "ips", "at most %u addresses per guest", m->cfg.max_ips);
    r = db_begin(m->db);
    if (r < 0)
        return guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
    r = place(m, rq, out, e);
    if (r >= 0 && (r = guests_context_free(m, out->node, &out->spec.context)) < 0)
        r = guest_fail(e, r == -ENOSPC ? -EXFULL : r, NULL,
                       "no context number is free on node %s: %s", out->node, strerror(-r));
    if (r >= 0)
        r = allocate(m, rq, out, e);
    if (r >= 0)
        r = insert(m, out, e);
    if (r >= 0)
        r = create_quota(m, out, e);
    if (r >= 0) {
        created_events(m, out, &e->result);
        if (!rq->quiet)
            r = send_or_fetch(m, out, e);
    }
    if (r >= 0) {
        r = db_commit(m->db);
        if (r < 0) {
            json_decref(out->spec_json);
            out->spec_json = NULL;
            return guest_fail(e, r, NULL, "cannot store the guest: %s", strerror(-r));
        }
        guests_cache_forget(m, out->spec.id);
        log_info("guest=%s id=%s placed on node=%s", out->spec.name, out->spec.id, out->node);
        return 0;
    }
    db_rollback(m->db);
    json_decref(out->spec_json);
    out->spec_json = NULL;
    return r;
}

json_t *
guests_created_spec_json(struct guest_created *c)
{
    json_t *j = c->spec_json;

    c->spec_json = NULL;
    return j ? j : spec_to_json(&c->spec);
}

json_t *
guests_created_json(struct guest_created *c)
{
    struct db_guest row = c->row;

    row.id = (char *)c->spec.id;
    row.name = (char *)c->spec.name;
    row.node = (char *)c->node;
    row.project = (char *)c->project;
    row.group = c->group[0] ? (char *)c->group : NULL;
    return api_guest_json_onto(guests_created_spec_json(c), &row);
}
