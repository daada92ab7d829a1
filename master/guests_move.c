/* The guest domain's part of a move (guests_move.h): whether a guest may
 * move, where to, whether its addresses can follow it, and the point of no
 * return where its record goes to the target. Changes follow the caller's
 * transaction (charges, IPAM); nothing here talks to a node. */
#include "master/guests_move.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/charges.h"
#include "master/events.h"
#include "master/operations.h"
#include "proto/spec_json.h"

bool
guests_moving(master_t *m, const char *id)
{
    return operations_for_guest(m, id) != NULL;
}

int
guests_busy(master_t *m, const char *id, const char *name, const char *then, struct guest_err *e)
{
    const struct op *o = operations_for_guest(m, id);

    if (!o)
        return 0;
    if (!then)
        return guest_fail(e, -EBUSY, NULL, "guest \"%s\" is busy with operation %s", name, o->id);
    return guest_fail(
        e, -EBUSY, NULL,
        "guest \"%s\" is busy with operation %s (a move, or its template's fetch); %s", name, o->id,
        then);
}

int
guests_move_check(master_t *m, const struct db_guest *g, const struct guest_spec *spec,
                  struct guest_err *e)
{
    if (!g->node)
        return guest_fail(e, -ESTALE, NULL, "guest \"%s\" is on no node", g->name);
    if (guests_busy(m, g->id, g->name, NULL, e) < 0)
        return -EBUSY;
    if (guests_deleting(m, g))
        return guest_fail(e, -EBUSY, NULL, "guest \"%s\" is being deleted", g->name);
    if (!master_node_connected(m, g->node))
        return guest_fail(e, -EHOSTUNREACH, NULL, "node %s is not connected", g->node);
    if (g->observed != DB_OBS_RUNNING && g->observed != DB_OBS_STOPPED)
        return guest_fail(e, -ESTALE, NULL, "guest \"%s\" is %s; it moves when running or stopped",
                          g->name, db_observed_to_string(g->observed));
    if (g->observed == DB_OBS_RUNNING && (spec->flags & SPEC_FLAG_LOCK))
        return guest_fail(e, -ENOLCK, "flags",
                          "guest \"%s\" is locked: a running one cannot start elsewhere", g->name);
    return 0;
}

int
guests_move_place(master_t *m, const struct db_guest *g, const struct guest_spec *spec,
                  const struct guests_move_where *w, char target[NAME_MAX_LEN + 1],
                  struct guest_err *e)
{
    struct sched_request rq = {.constraints = w->cons,
                               .n_constraints = w->n_cons,
                               .pin = w->to,
                               .group = g->group,
                               .template_name = spec->template_name,
                               .algo = SCHED_DEFAULT};
    struct registry_node *src = registry_get(m->reg, g->node);
    bool was = src && src->cordoned;

    if (w->to && strcmp(w->to, g->node) == 0)
        return guest_fail(e, -EINVAL, "to", "guest \"%s\" is on node %s already", g->name, w->to);
    guests_resources(m, spec, &rq.res);
    /* The guest's own node is no target: out of the choice while it chooses. */
    if (src)
        sched_node_cordon(m->sched, g->node, true);
    int r = charges_place(m->charges, &rq, &e->result);
    if (src)
        sched_node_cordon(m->sched, g->node, was);
    if (r == -ENOSPC || r == -ENOENT) {
        e->placement = true;
        e->pin_unknown = r == -ENOENT;
        strscpy(e->pin, w->to ? w->to : "", sizeof(e->pin));
        return guest_fail(e, -EXFULL, w->to ? "to" : NULL, "no other node can take guest \"%s\"",
                          g->name);
    }
    if (r < 0)
        return guest_fail(e, r, NULL, "the placement request is invalid");
    strscpy(target, e->result.node, NAME_MAX_LEN + 1);
    return 0;
}

/* ---- context numbers ---- */

bool
guests_context_held(master_t *m, const char *node, uint32_t context)
{
    for (struct op *o = operations_find_kind(m, OP_MOVE, NULL); o;
         o = operations_find_kind(m, OP_MOVE, o)) {
        json_t *spec = json_object_get(o->params, "_spec");
        if (strcmp(o->target, node) == 0 &&
            json_integer_value(json_object_get(spec, "context")) == (json_int_t)context)
            return true;
    }
    return false;
}

static bool
context_held(void *userdata, const char *node, uint32_t context)
{
    return guests_context_held(userdata, node, context);
}

int
guests_context_free(master_t *m, const char *node, uint32_t *out)
{
    return db_guest_free_context(m->db, node, context_held, m, out);
}

int
guests_move_context(master_t *m, const char *target, struct guest_spec *next, struct guest_err *e)
{
    uint32_t was = next->context;
    int taken = was ? db_guest_context_taken(m->db, target, was) : 1;

    if (taken < 0)
        return guest_fail(e, taken, NULL, "cannot read node %s's context numbers: %s", target,
                          strerror(-taken));
    if (!taken && !guests_context_held(m, target, was))
        return 0;
    int r = guests_context_free(m, target, &next->context);
    if (r == -ENOSPC)
        return guest_fail(e, -EXFULL, "to", "no context number is free on node %s", target);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot read node %s's context numbers: %s", target,
                          strerror(-r));
    return 1;
}

/* ---- addresses ---- */

struct pool_of {
    const char *addr;            /* the address looked for */
    char pool[NAME_MAX_LEN + 1]; /* its pool, "" = none */
};

static int
find_pool(void *userdata, const struct db_ip *ip)
{
    struct pool_of *p = userdata;

    if (strcmp(ip->address, p->addr) == 0)
        strscpy(p->pool, ip->pool, sizeof(p->pool));
    return 0;
}

/* Whether pool's selector matches node n's labels; why says which label. */
static bool
pool_serves(master_t *m, const char *pool, const struct registry_node *n, char *why, size_t wn)
{
    struct db_pool p = {0};
    const char *k;
    json_t *v;

    if (db_pool_get(m->db, pool, &p) < 0)
        return true; /* no such pool: nothing restricts it */
    json_t *sel = json_loads(p.selector ? p.selector : "{}", 0, NULL);
    bool ok = true;
    json_object_foreach(sel, k, v)
    {
        bool found = false;
        for (uint32_t i = 0; i < n->n_labels && !found; i++)
            found =
                strcmp(n->labels[i].key, k) == 0 &&
                strcmp(n->labels[i].value, json_string_value(v) ? json_string_value(v) : "") == 0;
        if (!found && ok) {
            snprintf(why, wn, "pool %s serves nodes with %s=%s only", pool, k,
                     json_string_value(v) ? json_string_value(v) : "");
            ok = false;
        }
    }
    json_decref(sel);
    db_pool_clear(&p);
    return ok;
}

int
guests_move_addrs(master_t *m, const struct db_guest *g, const char *target, bool renumber,
                  struct guest_spec *next, json_t *renumbered, struct guest_err *e)
{
    struct registry_node *n = registry_get(m->reg, target);
    struct db_label nl[PROTO_MAX_LABELS];
    char buf[NETADDR_STRLEN], why[200] = "", ierr[200] = "";
    size_t n_nl = 0;

    if (!n)
        return guest_fail(e, -ENOENT, "to", "no node named \"%s\"", target);
    for (uint32_t i = 0; i < n->n_labels; i++)
        nl[n_nl++] = (struct db_label){n->labels[i].key, n->labels[i].value};
    for (uint32_t i = 0; i < next->n_addrs; i++) {
        struct pool_of p = {.addr = netaddr_format(&next->addrs[i], false, buf, sizeof(buf))};
        if (db_ip_list(m->db, NULL, g->id, find_pool, &p) < 0)
            return guest_fail(e, -EIO, NULL, "cannot read the guest's addresses");
        if (!p.pool[0] || pool_serves(m, p.pool, n, why, sizeof(why)))
            continue;
        if (!renumber)
            return guest_fail(e, -EXFULL, "ips",
                              "address %s cannot move to node %s: %s (--renumber gives it a "
                              "new address there)",
                              buf, target, why);
        struct ipam_request rq = {.family = next->addrs[i].family};
        struct netaddr fresh;
        int r = ipam_alloc(m->ipam, g->id, &rq, 1, nl, n_nl, &fresh, ierr, sizeof(ierr));
        if (r < 0)
            return guest_fail(e, r == -ENOSPC ? -EXFULL : r, "ips",
                              "no address for node %s to replace %s: %s", target, buf, ierr);
        char nbuf[NETADDR_STRLEN];
        json_array_append_new(renumbered,
                              json_pack("{s:s, s:s}", "from", buf, "to",
                                        netaddr_format(&fresh, false, nbuf, sizeof(nbuf))));
        next->addrs[i] = fresh;
    }
    return 0;
}

void
guests_move_release(master_t *m, const char *target, const struct guest_spec *next,
                    const char *group, const json_t *renumbered, bool charged)
{
    struct sched_resources res;
    size_t i;
    json_t *pair;

    if (charged && target[0]) {
        guests_resources(m, next, &res);
        if (charges_release(m->charges, target, &res, group) < 0)
            log_debug("node=%s held no charge for the move, ignoring", target);
    }
    json_array_foreach((json_t *)renumbered, i, pair)
    {
        const char *to = json_string_value(json_object_get(pair, "to"));
        if (to && ipam_release(m->ipam, to) < 0)
            log_debug("address %s was not held, ignoring", to);
    }
}

void
guests_move_recharge(master_t *m, const char *target, const struct guest_spec *next,
                     const char *group)
{
    struct sched_resources res;

    guests_resources(m, next, &res);
    if (sched_reserve(m->sched, target, &res, group) < 0)
        log_warning("node=%s not in the index: the move's charge there is not held", target);
}

/* ---- the point of no return ---- */

static int
store_moved(master_t *m, struct db_guest *g, const char *target, const struct guest_spec *next,
            uint64_t expect_gen)
{
    struct db_label labels[SPEC_MAX_LABELS];
    json_t *j = spec_to_json(next);
    _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    for (uint32_t i = 0; i < next->n_labels; i++)
        labels[i] = (struct db_label){next->labels[i].key, next->labels[i].value};
    struct db_guest ng = *g;
    ng.node = (char *)target;
    ng.spec = text;
    ng.generation = next->generation;
    int r = db_guest_update(m->db, &ng, labels, next->n_labels, expect_gen);
    if (r >= 0)
        r = db_guest_set_applied(m->db, g->id, next->generation);
    return r;
}

int
guests_move_commit(master_t *m, const struct guests_move_done *d)
{
    struct db_guest g = {0};
    struct guest_spec cur;
    struct sched_resources res;
    int r = guests_load(m, NULL, NULL, d->id, &g, &cur);

    if (r < 0)
        return r;
    char source[NAME_MAX_LEN + 1];
    strscpy(source, g.node ? g.node : "", sizeof(source));
    r = db_begin(m->db);
    if (r >= 0)
        r = store_moved(m, &g, d->target, d->next, d->expect_gen);
    if (r >= 0 && source[0]) {
        guests_resources(m, &cur, &res);
        r = charges_release(m->charges, source, &res, g.group);
    }
    size_t i;
    json_t *pair;
    json_array_foreach((json_t *)d->renumbered, i, pair)
    {
        const char *from = json_string_value(json_object_get(pair, "from"));
        if (r >= 0 && from && ipam_release(m->ipam, from) < 0)
            log_debug("address %s was not held, ignoring", from);
    }
    if (r >= 0) {
        guests_cache_forget(m, d->id);
        dispatch_forget_migrate(m->disp, source, d->id);
        json_t *data =
            json_pack("{s:s, s:s, s:s}", "from", source, "to", d->target, "operation", d->op);
        if (cur.context != d->next->context)
            json_object_set_new(data, "context",
                                json_pack("{s:I, s:I}", "from", (json_int_t)cur.context, "to",
                                          (json_int_t)d->next->context));
        char note[64] = "";
        if (cur.context != d->next->context)
            snprintf(note, sizeof(note), " (context %u there, %u was taken)", d->next->context,
                     cur.context);
        events_emit(m, "guest.moved", d->target, d->id, g.name, data,
                    "guest %s moved from node %s to node %s%s", g.name, source, d->target, note);
        struct db_guest now = g; /* the row as it is now */
        now.node = (char *)d->target;
        guests_observed(m, &now, d->running ? DB_OBS_RUNNING : DB_OBS_STOPPED, NULL);
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    db_guest_clear(&g);
    return r;
}
