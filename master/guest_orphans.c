/* The guest domain's orphans: guests a node has that the master does not
 * manage. A guest deleted with force while its node was unreachable becomes
 * one (its record goes, its addresses are held for the copy on the node);
 * so does one the node reports that the master never knew. An orphan is
 * never destroyed silently: it is listed on its node, its addresses stay
 * held, and the operator adopts it back or destroys it. Every change is an
 * event (guest.orphan, guest.orphan.gone, guest.adopted). */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/api.h"
#include "master/charges.h"
#include "master/events.h"
#include "master/guests.h"
#include "master/guests_move.h"
#include "proto/spec_json.h"

#define REASON_FORCED  "deleted with force on the master while its node was unreachable"
#define REASON_UNKNOWN "the master does not manage this guest"

static char *
spec_text(const struct guest_spec *spec)
{
    json_t *j = spec_to_json(spec);
    char *text = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    return text;
}

int
guests_forget(master_t *m, const char *id)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    int r = guests_load(m, NULL, NULL, id, &g, &spec);

    if (r < 0)
        return r;
    r = db_begin(m->db);
    if (r >= 0) {
        struct db_orphan o = {.node = g.node,
                              .id = g.id,
                              .name = g.name,
                              .generation = g.applied_generation,
                              .running =
                                  g.observed == DB_OBS_RUNNING ||
                                  (g.observed == DB_OBS_UNKNOWN && g.desired == DB_DESIRED_RUNNING),
                              .seen = false,
                              .spec = g.spec,
                              .reason = REASON_FORCED};
        /* Its addresses stay with its copy on the node, held. */
        r = ipam_hold_guest(m->ipam, id, g.node);
        if (r >= 0)
            r = db_orphan_put(m->db, &o);
        if (r >= 0)
            r = guests_remove(m, id);
        if (r >= 0)
            events_emit(m, "guest.orphan", g.node, g.id, g.name,
                        json_pack("{s:s, s:b}", "reason", REASON_FORCED, "seen", false),
                        "guest %s forgotten; its copy on node %s is an orphan", g.name, g.node);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    db_guest_clear(&g);
    return r;
}

int
guests_orphan_seen(master_t *m, const char *node, const struct msg_inventory_item *item)
{
    struct db_orphan o = {0};
    int r = db_orphan_get(m->db, node, item->id, &o);
    bool fresh = r == -ENOENT;

    if (r < 0 && !fresh)
        return r;
    struct db_orphan n = {.node = (char *)node,
                          .id = (char *)item->id,
                          .name = (char *)item->name,
                          .generation = item->generation,
                          .running = item->running,
                          .seen = true,
                          .spec = fresh ? NULL : o.spec,
                          .reason = fresh ? (char *)REASON_UNKNOWN : o.reason,
                          .since_ms = fresh ? 0 : o.since_ms};
    r = db_orphan_put(m->db, &n);
    if (r >= 0 && (fresh || !o.seen)) {
        log_warning("node=%s guest=%s (%s) is an orphan: %s", node, item->name, item->id, n.reason);
        events_emit(m, "guest.orphan", node, item->id, item->name,
                    json_pack("{s:s, s:b, s:b}", "reason", n.reason, "seen", true, "running",
                              item->running),
                    "guest %s on node %s is an orphan: %s", item->name, node, n.reason);
    }
    if (r >= 0)
        r = n.spec ? 0 : 1;
    db_orphan_clear(&o);
    return r;
}

/* Holds the orphan's addresses that are free; one that is not is said in an event. */
static void
hold_addrs(master_t *m, const char *node, const struct guest_spec *spec)
{
    for (uint32_t i = 0; i < spec->n_addrs; i++) {
        char addr[NETADDR_STRLEN];
        netaddr_format(&spec->addrs[i], false, addr, sizeof(addr));
        int r = ipam_hold(m->ipam, addr, node, spec->id);
        if (r == -EADDRINUSE)
            events_emit(m, "guest.orphan.conflict", node, spec->id, spec->name,
                        json_pack("{s:s}", "address", addr),
                        "orphan %s on node %s has address %s, which the master gave another guest",
                        spec->name, node, addr);
        else if (r < 0 && r != -EADDRNOTAVAIL)
            log_warning("node=%s orphan %s: cannot hold %s: %s", node, spec->name, addr,
                        strerror(-r));
    }
}

void
guests_orphan_spec(master_t *m, const char *node, const struct guest_spec *spec)
{
    struct db_orphan o = {0};

    if (db_orphan_get(m->db, node, spec->id, &o) < 0)
        return;
    if (!o.spec) {
        _cleanup_free_ char *text = spec_text(spec);
        o.spec = text;
        if (db_orphan_put(m->db, &o) >= 0)
            hold_addrs(m, node, spec);
        o.spec = NULL;
    }
    db_orphan_clear(&o);
}

void
guests_orphan_gone(master_t *m, const char *node, const char *id, const char *why)
{
    struct db_orphan o = {0};

    if (db_orphan_get(m->db, node, id, &o) < 0)
        return;
    int r = db_begin(m->db);
    if (r >= 0) {
        r = ipam_release_holds(m->ipam, node, id);
        if (r >= 0)
            r = db_orphan_delete(m->db, node, id);
        if (r >= 0)
            events_emit(m, "guest.orphan.gone", node, id, o.name, json_pack("{s:s}", "why", why),
                        "orphan %s on node %s is gone: %s", o.name, node, why);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r < 0)
        log_error("node=%s orphan %s: cannot record that it is gone: %s", node, o.name,
                  strerror(-r));
    db_orphan_clear(&o);
}

void
guests_orphan_event(master_t *m, const char *node, const struct msg_event *e)
{
    struct db_orphan o = {0};

    if (db_orphan_get(m->db, node, e->id, &o) < 0)
        return;
    if (!strcmp(e->kind, "destroyed")) {
        db_orphan_clear(&o);
        guests_orphan_gone(m, node, e->id, "destroyed on its node");
        return;
    }
    if (!strcmp(e->kind, "started") || !strcmp(e->kind, "exited") || !strcmp(e->kind, "stopped")) {
        o.running = !strcmp(e->kind, "started");
        if (db_orphan_put(m->db, &o) < 0)
            log_debug("node=%s orphan %s: cannot record %s, ignoring", node, o.name, e->kind);
    }
    db_orphan_clear(&o);
}

struct orphans_ctx {
    master_t *m;  /* for the holds */
    json_t *list; /* the API's view */
    uint64_t sum; /* digest */
    uint32_t n;   /* orphans seen on the node */
    uint32_t run; /* of which running */
};

static int
holds_json(void *userdata, const struct db_hold *h)
{
    json_array_append_new(userdata, json_string(h->address));
    return 0;
}

static int
orphan_json(void *userdata, const struct db_orphan *o)
{
    struct orphans_ctx *c = userdata;
    json_t *ips = json_array();

    (void)db_hold_list(c->m->db, NULL, o->node, o->id, holds_json, ips);
    json_array_append_new(
        c->list, json_pack("{s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:s, s:I, s:o}", "node", o->node,
                           "id", o->id, "name", o->name, "generation", (json_int_t)o->generation,
                           "running", o->running, "seen", o->seen, "spec_known", o->spec != NULL,
                           "reason", o->reason, "since_ms", (json_int_t)o->since_ms, "ips", ips));
    return 0;
}

json_t *
guests_orphans_json(master_t *m, const char *node)
{
    struct orphans_ctx c = {.m = m, .list = json_array()};

    if (db_orphan_list(m->db, node, orphan_json, &c) < 0)
        log_debug("cannot list orphans: %s", db_errmsg(m->db));
    return c.list;
}

static int
orphan_digest(void *userdata, const struct db_orphan *o)
{
    struct orphans_ctx *c = userdata;

    if (!o->seen)
        return 0;
    c->sum += msg_digest_item(o->id, o->generation, o->running);
    c->n++;
    c->run += o->running;
    return 0;
}

void
guests_orphans_digest(master_t *m, const char *node, uint64_t *digest, uint32_t *n,
                      uint32_t *running)
{
    struct orphans_ctx c = {.m = m};

    (void)db_orphan_list(m->db, node, orphan_digest, &c);
    *digest += c.sum;
    *n += c.n;
    *running += c.run;
}

struct is_of_ctx {
    const char *address; /* wanted, canonical */
    bool found;          /* it is the guest's */
};

static int
is_of_ip(void *userdata, const struct db_ip *dip)
{
    struct is_of_ctx *c = userdata;
    c->found |= strcmp(dip->address, c->address) == 0;
    return 0;
}

/* Whether address (canonical) is allocated to guest_id. */
static bool
addr_is_of(master_t *m, const char *address, const char *guest_id)
{
    struct is_of_ctx c = {.address = address};

    (void)db_ip_list(m->db, NULL, guest_id, is_of_ip, &c);
    return c.found;
}

/* Keeps the spec's addresses that are the orphan's (held) or free; the
 * others leave it. Returns how many left. */
static uint32_t
adopt_addrs(master_t *m, const char *node, struct guest_spec *spec)
{
    struct registry_node *rn = registry_get(m->reg, node);
    struct db_label nl[PROTO_MAX_LABELS];
    size_t n_nl = 0;
    uint32_t kept = 0, n = spec->n_addrs;

    for (uint32_t i = 0; rn && i < rn->n_labels; i++)
        nl[n_nl++] = (struct db_label){rn->labels[i].key, rn->labels[i].value};
    for (uint32_t i = 0; i < n; i++) {
        char addr[NETADDR_STRLEN];
        struct netaddr got;
        netaddr_format(&spec->addrs[i], false, addr, sizeof(addr));
        struct ipam_request rq = {.address = addr};
        if (addr_is_of(m, addr, spec->id) ||
            ipam_alloc(m->ipam, spec->id, &rq, 1, nl, n_nl, &got, NULL, 0) >= 0)
            spec->addrs[kept++] = spec->addrs[i];
        else
            log_notice("node=%s adopting %s: address %s is not free; it leaves the guest", node,
                       spec->name, addr);
    }
    spec->n_addrs = kept;
    return n - kept;
}

static int
adopt_insert(master_t *m, const struct db_orphan *o, struct guest_spec *spec, uint32_t dropped)
{
    struct db_label labels[SPEC_MAX_LABELS];
    struct sched_resources res;

    /* Its context number may have gone to another guest of its node since
     * the master forgot it (numbers are reused per node): it gets a free
     * one, and the node hears of it with the new generation. */
    uint32_t was = spec->context;
    int taken = spec->context ? db_guest_context_taken(m->db, o->node, spec->context) : 1;
    if (taken < 0)
        return taken;
    if (!taken && guests_context_held(m, o->node, spec->context))
        taken = 1; /* a move to this node runs with it */
    if (taken) {
        int r = guests_context_free(m, o->node, &spec->context);
        if (r < 0)
            return r;
        log_notice("node=%s adopting %s: context %u is another guest's; it gets %u", o->node,
                   spec->name, was, spec->context);
    }
    if (spec->generation < o->generation)
        spec->generation = o->generation;
    if (dropped || taken)
        spec->generation++; /* the node must drop refused addresses, take the new number */
    _cleanup_free_ char *text = spec_text(spec);
    for (uint32_t i = 0; i < spec->n_labels; i++)
        labels[i] = (struct db_label){spec->labels[i].key, spec->labels[i].value};
    uint64_t now = time_real_ms();
    struct db_guest g = {.id = spec->id,
                         .name = spec->name,
                         .node = o->node,
                         .spec = text,
                         .generation = spec->generation,
                         .applied_generation = o->generation,
                         .desired = o->running ? DB_DESIRED_RUNNING : DB_DESIRED_STOPPED,
                         .observed = o->running ? DB_OBS_RUNNING : DB_OBS_STOPPED,
                         .created_ms = now,
                         .updated_ms = now};
    int r = db_guest_insert(m->db, &g, labels, spec->n_labels);
    if (r < 0)
        return r;
    guests_resources(m, spec, &res);
    r = charges_reserve(m->charges, o->node, &res, NULL);
    if (r < 0)
        log_warning("node=%s adopting %s: not in the scheduler's index, ignoring", o->node,
                    spec->name);
    if (dropped || taken)
        guests_send_apply(m, o->node, spec);
    return 0;
}

int
guests_adopt(master_t *m, const char *node, const char *id, char name[NAME_MAX_LEN + 1],
             struct guest_err *e)
{
    struct db_orphan o = {0};
    struct db_guest other = {0};
    struct guest_spec spec = {0};
    int r = db_orphan_get(m->db, node, id, &o);
    json_t *j = r >= 0 && o.spec ? json_loads(o.spec, 0, NULL) : NULL;

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such orphan on node %s" : "cannot read it",
                          node);
    if (!master_node_connected(m, node) || !o.seen)
        r = guest_fail(e, -EHOSTUNREACH, NULL, "node %s is not connected", node);
    else if (!j || spec_from_json(j, &spec, NULL, 0) < 0)
        r = guest_fail(e, -EAGAIN, NULL, "its spec has not come from node %s yet; retry", node);
    else if (db_guest_get_by_name(m->db, spec.name, &other) == 0)
        r = guest_fail(e, -EEXIST, "name", "a guest named \"%s\" exists", spec.name);
    json_decref(j);
    if (r < 0) {
        db_guest_clear(&other);
        db_orphan_clear(&o);
        return r;
    }
    strscpy(name, spec.name, NAME_MAX_LEN + 1);
    r = db_begin(m->db);
    if (r >= 0) {
        r = ipam_adopt_holds(m->ipam, node, id);
        uint32_t dropped = r >= 0 ? adopt_addrs(m, node, &spec) : 0;
        if (r >= 0)
            r = adopt_insert(m, &o, &spec, dropped);
        if (r >= 0)
            r = db_orphan_delete(m->db, node, id);
        if (r >= 0)
            events_emit(m, "guest.adopted", node, id, spec.name,
                        json_pack("{s:i}", "addresses_dropped", (int)dropped),
                        "orphan %s on node %s adopted", spec.name, node);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    db_orphan_clear(&o);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot adopt the guest: %s", strerror(-r));
    guests_cache_forget(m, id);
    log_info("node=%s orphan %s (%s) adopted", node, spec.name, id);
    return 0;
}

int
guests_destroy_orphan(master_t *m, const char *node, const char *id, struct guest_err *e)
{
    struct db_orphan o = {0};
    int r = db_orphan_get(m->db, node, id, &o);

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such orphan on node %s" : "cannot read it",
                          node);
    if (!master_node_connected(m, node)) {
        db_orphan_clear(&o);
        return guest_fail(e, -EHOSTUNREACH, NULL, "node %s is not connected", node);
    }
    r = db_begin(m->db);
    if (r >= 0) {
        guests_send(m, node, MSG_GUEST_DESTROY, id, o.generation ? o.generation : 1);
        r = db_commit(m->db);
    }
    db_orphan_clear(&o);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot send the destroy: %s", strerror(-r));
    return 0;
}
