#include "master/guests.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/api.h"
#include "master/charges.h"
#include "master/events.h"
#include "master/guests_move.h"
#include "master/oncommit.h"
#include "master/op_template.h"
#include "master/registry.h"
#include "master/usage.h"
#include "master/waiters.h"
#include "proto/spec_json.h"

#define SPEC_CACHE_MAX 1024 /* parsed specs kept; a guest_spec is about 12 KB */

int
guest_fail(struct guest_err *e, int err, const char *field, const char *fmt, ...)
{
    va_list ap;

    e->field = field;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return err;
}

/* ---- the spec cache ---- */

struct spec_cache_entry {
    char id[SPEC_ID_LEN + 1]; /* the key */
    uint64_t generation;      /* the row generation the spec was parsed at */
    struct guest_spec spec;   /* the parsed spec */
};

struct spec_cache {
    struct hmap_str map; /* id -> struct spec_cache_entry * */
    size_t cursor;       /* where the next eviction looks */
};

void
guests_cache_new(master_t *m)
{
    m->specs = xcalloc(1, sizeof(*m->specs));
}

void
guests_cache_free(master_t *m)
{
    struct spec_cache *c = m->specs;

    if (!c)
        return;
    for (size_t i = 0; i < c->map.cap; i++)
        if (c->map.slots && c->map.slots[i].key)
            free(c->map.slots[i].val);
    hmap_str_free(&c->map);
    free(c);
    m->specs = NULL;
}

void
guests_cache_forget(master_t *m, const char *id)
{
    struct spec_cache_entry *e = hmap_str_get(&m->specs->map, id);

    if (e) {
        hmap_str_del(&m->specs->map, id);
        free(e);
    }
}

/* Drops one entry, walking the slots from a rotating cursor. */
static void
cache_evict_one(struct spec_cache *c)
{
    for (size_t k = 0; k < c->map.cap; k++) {
        size_t i = (c->cursor + k) & (c->map.cap - 1);
        if (!c->map.slots[i].key)
            continue;
        struct spec_cache_entry *e = c->map.slots[i].val;
        c->cursor = i + 1;
        hmap_str_del(&c->map, e->id);
        free(e);
        return;
    }
}

void
guests_cache_put(master_t *m, const char *id, uint64_t generation, const struct guest_spec *spec)
{
    struct spec_cache *c = m->specs;
    struct spec_cache_entry *e = hmap_str_get(&c->map, id);

    if (!e) {
        if (c->map.len >= SPEC_CACHE_MAX)
            cache_evict_one(c);
        e = xmalloc(sizeof(*e));
        strscpy(e->id, id, sizeof(e->id));
        hmap_str_put(&c->map, e->id, e);
    }
    e->generation = generation;
    e->spec = *spec;
}

/* ---- reading ---- */

int
guests_spec(master_t *m, const struct db_guest *g, struct guest_spec *spec)
{
    struct spec_cache_entry *e = hmap_str_get(&m->specs->map, g->id);

    if (e && e->generation == g->generation) {
        *spec = e->spec;
        return 0;
    }
    json_t *j = json_loads(g->spec, 0, NULL);
    *spec = (struct guest_spec){0};
    int r = j ? spec_from_json(j, spec, NULL, 0) : -EBADMSG;
    json_decref(j);
    if (r < 0) {
        /* The master wrote it: unreadable is the master's fault, not the
         * client's (a 503, not a 400). */
        log_debug("guest=%s stored spec unreadable", g->name);
        return -EIO;
    }
    guests_cache_put(m, g->id, g->generation, spec);
    return 0;
}

bool
guests_visible(const struct caller *c, const struct db_guest *g)
{
    return auth_sees_project(c, g->project);
}

int
guests_load(master_t *m, const struct caller *c, const char *name, const char *id,
            struct db_guest *g, struct guest_spec *spec)
{
    int r = name ? db_guest_get_by_name(m->db, name, g) : db_guest_get_by_id(m->db, id, g);

    if (r < 0)
        return r;
    if (!guests_visible(c, g)) {
        db_guest_clear(g);
        return -ENOENT;
    }
    r = guests_spec(m, g, spec);
    if (r < 0)
        db_guest_clear(g);
    return r;
}

json_t *
guests_json(master_t *m, const char *id)
{
    struct db_guest g = {0};
    struct guest_spec spec;

    if (guests_load(m, NULL, NULL, id, &g, &spec) < 0)
        return NULL;
    json_t *o = api_guest_json(&g, &spec);
    db_guest_clear(&g);
    return o;
}

void
guests_resources(master_t *m, const struct guest_spec *s, struct sched_resources *res)
{
    sched_resources_from_spec(sched_config(m->sched), s, res);
    res->addrs = s->n_addrs;
}

/* What a spec charges its project. */
static struct db_charge
charge_of(master_t *m, const struct guest_spec *s)
{
    struct sched_resources res;

    guests_resources(m, s, &res);
    return (struct db_charge){res.cpu, res.memory, res.disk, res.addrs};
}

struct legacy_ctx {
    master_t *m;                  /* the master */
    char (*ids)[SPEC_ID_LEN + 1]; /* guests without a charge */
    size_t n, cap;                /* entries used and allocated */
};

static int
legacy_guest(void *userdata, const struct db_guest *g)
{
    struct legacy_ctx *l = userdata;

    if (g->charged)
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
    }
    strscpy(l->ids[l->n++], g->id, SPEC_ID_LEN + 1);
    return 0;
}

int
guests_charge_legacy(master_t *m)
{
    struct db_guest_filter all = {.observed = -1};
    struct legacy_ctx l = {.m = m};
    int r = db_guest_list(m->db, &all, legacy_guest, &l);

    if (r >= 0 && l.n)
        r = db_begin(m->db);
    for (size_t i = 0; r >= 0 && i < l.n; i++) {
        struct db_guest g = {0};
        struct guest_spec spec;
        /* An unreadable spec is charged nothing rather than stop the master. */
        struct db_charge c = {0};
        if (guests_load(m, NULL, NULL, l.ids[i], &g, &spec) >= 0)
            c = charge_of(m, &spec);
        db_guest_clear(&g);
        r = db_guest_set_charge(m->db, l.ids[i], &c);
    }
    if (l.n)
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r >= 0 && l.n)
        log_info("%zu guests from before projects charged to their project", l.n);
    free(l.ids);
    return r;
}

/* ---- to the node, after the commit ---- */

struct send_ctx {
    char node[NAME_MAX_LEN + 1]; /* to whom */
    enum msg_type type;          /* what */
    char id[SPEC_ID_LEN + 1];    /* start, stop, destroy: the guest */
    uint64_t generation;         /* and its generation */
    struct msg *msg;             /* apply: the message with its spec (owned) */
};

static void
send_after(master_t *m, void *ctx, int err)
{
    struct send_ctx *s = ctx;

    /* A destroy replaces whatever was still to be sent about the guest. */
    if (err == 0 && s->type == MSG_GUEST_DESTROY)
        dispatch_forget_guest(m->disp, s->node, s->id);
    if (err == 0) {
        /* Not zeroed whole: the union is as large as the largest message, and
         * only the member used is read. */
        struct msg ref;
        int64_t r;
        if (s->msg)
            r = dispatch_queue(m->disp, s->node, s->msg);
        else {
            ref.type = s->type;
            ref.id = 0;
            ref.u.guest = (struct msg_guest_ref){0};
            strscpy(ref.u.guest.id, s->id, sizeof(ref.u.guest.id));
            ref.u.guest.generation = s->generation;
            r = dispatch_queue(m->disp, s->node, &ref);
        }
        if (r < 0)
            log_error("guest=%s cannot encode %s for node=%s", s->msg ? s->msg->u.apply.id : s->id,
                      msg_type_name(s->type), s->node);
    }
    free(s->msg);
    free(s);
}

static void
send_spec(master_t *m, const char *node, enum msg_type type, const struct guest_spec *spec)
{
    struct send_ctx *s = xmalloc(sizeof(*s));

    strscpy(s->node, node, sizeof(s->node));
    s->type = type;
    /* The spec goes straight into the message the encoder reads: one copy
     * of its 17 KiB per command, not two (issue 16). The rest of the union
     * is not zeroed: only the member used is read. */
    s->msg = xmalloc(sizeof(*s->msg));
    s->msg->type = type;
    s->msg->id = 0;
    memcpy(&s->msg->u.apply, spec, sizeof(*spec));
    oncommit_add(m->oncommit, send_after, s);
}

void
guests_send_apply(master_t *m, const char *node, const struct guest_spec *spec)
{
    send_spec(m, node, MSG_GUEST_APPLY, spec);
}

void
guests_send_apply_start(master_t *m, const char *node, const struct guest_spec *spec)
{
    send_spec(m, node, MSG_GUEST_APPLY_START, spec);
}

void
guests_send(master_t *m, const char *node, enum msg_type type, const char *id, uint64_t gen)
{
    struct send_ctx *s = xmalloc(sizeof(*s));

    strscpy(s->node, node, sizeof(s->node));
    s->type = type;
    strscpy(s->id, id, sizeof(s->id));
    s->generation = gen;
    s->msg = NULL;
    oncommit_add(m->oncommit, send_after, s);
}

/* ---- change ---- */

static void
spec_labels(const struct guest_spec *s, struct db_label *out)
{
    for (uint32_t i = 0; i < s->n_labels; i++)
        out[i] = (struct db_label){s->labels[i].key, s->labels[i].value};
}

/* Stores spec and desired under a new generation (compare-and-set on the
 * generation g was read at) and brings g up to date. */
static int
store_spec(master_t *m, struct db_guest *g, struct guest_spec *spec, enum db_desired desired)
{
    struct db_label labels[SPEC_MAX_LABELS];
    uint64_t gen = g->generation + 1;

    spec->generation = gen;
    json_t *j = spec_to_json(spec);
    _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    spec_labels(spec, labels);
    struct db_guest ng = *g;
    ng.spec = text;
    ng.generation = gen;
    ng.desired = desired;
    ng.charge = charge_of(m, spec);
    int r = db_guest_update(m->db, &ng, labels, spec->n_labels, g->generation);
    if (r < 0)
        return r;
    g->generation = gen;
    g->desired = desired;
    g->charge = ng.charge;
    g->charged = true;
    g->updated_ms = time_real_ms();
    guests_cache_put(m, g->id, gen, spec);
    return 0;
}

static int
placement_fail(struct guest_err *e, int r, const char *name, const char *node)
{
    e->placement = true;
    e->pin_unknown = r == -ENOENT;
    strscpy(e->pin, node ? node : "", sizeof(e->pin));
    return guest_fail(e, -EXFULL, NULL, "no node can take guest \"%s\"", name);
}

bool
guests_deleting(master_t *m, const struct db_guest *g)
{
    return g->deleting || (g->node && dispatch_pending(m->disp, g->node, MSG_GUEST_DESTROY, g->id));
}

/* What only an admin may do to a guest: make it privileged (no user
 * namespace: its root is host root) or let it nest namespaces. A system
 * caller (c NULL: the master itself, an import) may. */
int
guests_admin_flags(const struct caller *c, uint32_t before, uint32_t after, struct guest_err *e)
{
    uint32_t admin_only = SPEC_FLAG_PRIVILEGED | SPEC_FLAG_NESTING;

    if (!c || c->role == AUTH_ADMIN || !((before ^ after) & admin_only))
        return 0;
    return guest_fail(e, -EACCES, "flags", "only an admin may set the privileged or nesting flag");
}

/* What a tenant may not change: capabilities it did not have, flags other
 * than lock; and what only an admin may change. */
static int
tenant_change(const struct caller *c, const struct guest_spec *cur, const struct guest_spec *next,
              struct guest_err *e)
{
    int r = guests_admin_flags(c, cur->flags, next->flags, e);
    if (r < 0)
        return r;
    if (!c || c->role != AUTH_TENANT)
        return 0;
    if (next->caps_add & ~cur->caps_add)
        return guest_fail(e, -EACCES, "caps_add", "a tenant cannot add capabilities");
    if ((next->flags ^ cur->flags) & ~(uint32_t)GUESTS_TENANT_FLAGS)
        return guest_fail(e, -EACCES, "flags", "a tenant may set only the lock flag");
    return 0;
}

/* The quota check of a change just written: growth only. */
static int
change_quota(master_t *m, const struct caller *c, const struct db_guest *g,
             const struct db_charge *before, struct guest_err *e)
{
    struct db_quota d = {0};

    if (!c)
        return 0;
    d.cpu = g->charge.cpu > before->cpu ? g->charge.cpu - before->cpu : 0;
    d.memory = g->charge.memory > before->memory ? g->charge.memory - before->memory : 0;
    d.disk = g->charge.disk > before->disk ? g->charge.disk - before->disk : 0;
    d.addrs = g->charge.addrs > before->addrs ? g->charge.addrs - before->addrs : 0;
    return projects_check(m, g->project ? g->project : PROJECTS_DEFAULT, &d, e);
}

int
guests_change(master_t *m, const struct caller *c, struct db_guest *g, const struct guest_spec *cur,
              struct guest_spec *next, struct guest_err *e)
{
    struct sched_resources old_res, new_res;
    struct db_charge before = g->charged ? g->charge : charge_of(m, cur);

    if (!guests_visible(c, g))
        return guest_fail(e, -ENOENT, NULL, "no such guest");
    if (guests_deleting(m, g))
        return guest_fail(e, -EBUSY, NULL, "guest \"%s\" is being deleted", g->name);
    if (guests_busy(m, g->id, g->name, "change it afterwards", e) < 0)
        return -EBUSY;
    int r = tenant_change(c, cur, next, e);
    if (r < 0)
        return r;
    r = db_begin(m->db);

    if (r < 0)
        return guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
    if (g->node) {
        guests_resources(m, cur, &old_res);
        guests_resources(m, next, &new_res);
        r = charges_resize(m->charges, g->node, g->group, &old_res, &new_res, &e->result);
        if (r < 0) {
            db_rollback(m->db);
            return placement_fail(e, r, g->name, g->node);
        }
    }
    r = store_spec(m, g, next, g->desired);
    if (r >= 0 && (r = change_quota(m, c, g, &before, e)) < 0) {
        db_rollback(m->db);
        return r;
    }
    if (r >= 0 && g->node)
        guests_send_apply(m, g->node, next);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r == -ESTALE)
        return guest_fail(e, -ESTALE, NULL, "the guest changed meanwhile; retry");
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot store the change: %s", strerror(-r));
    return 0;
}

int
guests_revert(master_t *m, const char *id, uint64_t gen, const struct guest_spec *before)
{
    struct db_guest g = {0};
    struct guest_spec cur, back = *before;
    struct guest_err e = {0};
    int r = guests_load(m, NULL, NULL, id, &g, &cur);

    if (r < 0)
        return r;
    if (g.generation == gen) {
        r = guests_change(m, NULL, &g, &cur, &back, &e);
        if (r >= 0)
            log_info("guest=%s generation %llu refused by its node; back to the spec before it "
                     "as generation %llu",
                     g.name, (unsigned long long)gen, (unsigned long long)g.generation);
    }
    db_guest_clear(&g);
    return r;
}

/* ---- lifecycle ---- */

/* A guest never created because its template's fetch failed: a start
 * fetches it again from the library (a create waits for it), instead of a
 * create its node could only refuse. Whether it did. */
static bool
refetch(master_t *m, const struct db_guest *g, const struct guest_spec *spec)
{
    char id[SPEC_ID_LEN + 1];

    if (g->applied_generation > 0 ||
        registry_node_has_template(m->reg, g->node, spec->template_name))
        return false;
    if (op_template_fetch(m, g->node, spec->template_name, g->id, id) < 0)
        return false; /* not in the library: the node says what it lacks */
    log_info("guest=%s waits for template \"%s\" to reach node=%s again (op=%s)", g->name,
             spec->template_name, g->node, id);
    return true;
}

int
guests_lifecycle(master_t *m, const struct caller *c, const char *name, enum guest_op op,
                 struct db_guest *g, struct guest_spec *spec, struct guest_err *e)
{
    int r = guests_load(m, c, name, NULL, g, spec);

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    if (!g->node || g->observed == DB_OBS_LOST || g->observed == DB_OBS_UNKNOWN)
        return guest_fail(e, -ESTALE, NULL, "guest \"%s\" is %s", g->name,
                          g->node ? db_observed_to_string(g->observed) : "on no node");
    if (guests_deleting(m, g))
        return guest_fail(e, -EBUSY, NULL, "guest \"%s\" is being deleted", g->name);
    if (guests_busy(m, g->id, g->name, "start or stop it once it ends", e) < 0)
        return -EBUSY;
    if (op != GUEST_STOP && (spec->flags & SPEC_FLAG_LOCK))
        return guest_fail(e, -ENOLCK, "flags", "guest \"%s\" is locked: clear the lock flag first",
                          g->name);
    enum db_desired want = op == GUEST_STOP ? DB_DESIRED_STOPPED : DB_DESIRED_RUNNING;
    r = db_begin(m->db);
    if (r < 0)
        return guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
    if (want != g->desired)
        r = store_spec(m, g, spec, want);
    if (r >= 0 && op != GUEST_STOP && refetch(m, g, spec)) {
        /* The template's fetch creates it (op_template.h): nothing to send. */
    } else if (r >= 0) {
        if (g->applied_generation < g->generation)
            guests_send_apply(m, g->node, spec);
        if (op == GUEST_STOP || op == GUEST_RESTART)
            guests_send(m, g->node, MSG_GUEST_STOP, g->id, g->generation);
        if (op == GUEST_START || op == GUEST_RESTART)
            guests_send(m, g->node, MSG_GUEST_START, g->id, g->generation);
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r < 0)
        return guest_fail(e, r, NULL,
                          r == -ESTALE ? "the guest changed meanwhile; retry"
                                       : "cannot store the change");
    return 0;
}

/* ---- delete ---- */

struct forget_ctx {
    char id[SPEC_ID_LEN + 1];    /* the guest */
    char node[NAME_MAX_LEN + 1]; /* its node, "" = none */
};

static void
forget_after(master_t *m, void *ctx, int err)
{
    struct forget_ctx *f = ctx;

    if (err == 0) {
        if (f->node[0])
            dispatch_forget_guest(m->disp, f->node, f->id);
        usage_forget(m, f->id);
        guests_cache_forget(m, f->id);
    }
    free(f);
}

int
guests_remove(master_t *m, const char *id)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    struct sched_resources res;
    int r = guests_load(m, NULL, NULL, id, &g, &spec);

    if (r < 0)
        return r;
    r = db_begin(m->db);
    if (r >= 0) {
        /* Before the row goes: the event takes the guest's project from it. */
        events_emit(m, "guest.deleted", g.node, id, g.name, NULL, "guest %s deleted", g.name);
        ipam_release_guest(m->ipam, id);
        r = db_guest_delete(m->db, id);
        if (r >= 0 && g.node) {
            guests_resources(m, &spec, &res);
            r = charges_release(m->charges, g.node, &res, g.group);
        }
        if (r >= 0) {
            struct forget_ctx *f = xcalloc(1, sizeof(*f));
            strscpy(f->id, id, sizeof(f->id));
            strscpy(f->node, g.node ? g.node : "", sizeof(f->node));
            oncommit_add(m->oncommit, forget_after, f);
        }
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    if (r >= 0)
        log_info("guest=%s deleted", g.name);
    db_guest_clear(&g);
    return r;
}

int
guests_delete(master_t *m, const struct caller *c, const char *name, bool force,
              char id[SPEC_ID_LEN + 1], char node[NAME_MAX_LEN + 1], struct guest_err *e)
{
    struct db_guest g = {0};
    struct guest_spec spec;
    int r = guests_load(m, c, name, NULL, &g, &spec);

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    strscpy(id, g.id, SPEC_ID_LEN + 1);
    strscpy(node, g.node ? g.node : "", NAME_MAX_LEN + 1);
    if (guests_busy(m, g.id, g.name, "cancel it or delete the guest afterwards", e) < 0) {
        db_guest_clear(&g);
        return -EBUSY;
    }
    /* Force means "without the node" only when the node cannot be told: a
     * connected node destroys the guest, and waits for nothing else. */
    bool connected = g.node && master_node_connected(m, g.node);
    bool forget = force && g.node && !connected && g.observed != DB_OBS_LOST;
    bool now = !g.node || g.observed == DB_OBS_LOST || forget;
    if (!now && !connected) {
        r = guest_fail(e, -EHOSTUNREACH, NULL,
                       "node %s is not connected; ?force=true deletes the record without it",
                       g.node);
        db_guest_clear(&g);
        return r;
    }
    if (now) {
        /* Its copy on the unreachable node becomes an orphan that keeps its addresses. */
        r = forget ? guests_forget(m, g.id) : guests_remove(m, g.id);
        db_guest_clear(&g);
        if (r < 0)
            return guest_fail(e, r, NULL, "cannot delete the guest: %s", strerror(-r));
        waiters_guest_deleted(m, id);
        return 0;
    }
    /* The delete is recorded first; the node is told once it is durable
     * (a full disk refuses it before anything happens on the node). */
    r = db_begin(m->db);
    if (r >= 0) {
        r = db_guest_set_deleting(m->db, g.id);
        if (r >= 0)
            guests_send(m, g.node, MSG_GUEST_DESTROY, g.id, g.generation);
        r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    }
    db_guest_clear(&g);
    if (r < 0)
        return guest_fail(e, r, NULL, "cannot record the delete: %s; nothing changed",
                          strerror(-r));
    return 1;
}

/* ---- exec ---- */

/* Sends cmd (an exec or a console read, sent once) about the guest name to
 * its node; its id and node are filled in. */
static int
send_once(master_t *m, const struct caller *c, const char *name, struct msg *cmd, char *cmd_id,
          uint64_t *ref, char node[NAME_MAX_LEN + 1], char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct db_guest g = {0};
    int r = db_guest_get_by_name(m->db, name, &g);

    if (r >= 0 && !guests_visible(c, &g)) {
        db_guest_clear(&g);
        r = -ENOENT;
    }
    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    if (!master_node_connected(m, g.node)) {
        r = guest_fail(e, -EHOSTUNREACH, NULL, "node %s is not connected",
                       g.node ? g.node : "(none)");
        db_guest_clear(&g);
        return r;
    }
    if (guests_busy(m, g.id, g.name, "ask again afterwards", e) < 0) {
        db_guest_clear(&g);
        return -EBUSY;
    }
    strscpy(cmd_id, g.id, SPEC_ID_LEN + 1);
    int64_t q = dispatch_queue(m->disp, g.node, cmd);
    strscpy(node, g.node, NAME_MAX_LEN + 1);
    strscpy(id, g.id, SPEC_ID_LEN + 1);
    db_guest_clear(&g);
    if (q < 0)
        return guest_fail(e, q == -EINVAL ? -EINVAL : -EHOSTUNREACH, NULL,
                          q == -EINVAL ? "the command cannot be sent"
                                       : "the node is not reachable");
    *ref = (uint64_t)q;
    return 0;
}

int
guests_console(master_t *m, const struct caller *c, const char *name, uint32_t max_bytes,
               uint64_t *ref, char node[NAME_MAX_LEN + 1], char id[SPEC_ID_LEN + 1],
               struct guest_err *e)
{
    struct msg cmd = {.type = MSG_GUEST_CONSOLE};

    cmd.u.console.max_bytes = max_bytes;
    return send_once(m, c, name, &cmd, cmd.u.console.id, ref, node, id, e);
}

int
guests_exec(master_t *m, const struct caller *c, const char *name, char **argv, uint32_t argc,
            uint32_t timeout_ms, uint64_t *ref, char node[NAME_MAX_LEN + 1],
            char id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct msg cmd = {.type = MSG_GUEST_EXEC};

    cmd.u.exec.argc = argc;
    cmd.u.exec.argv = argv;
    cmd.u.exec.timeout_ms = timeout_ms;
    return send_once(m, c, name, &cmd, cmd.u.exec.id, ref, node, id, e);
}

/* ---- what the nodes report ---- */

void
guests_observed(master_t *m, const struct db_guest *g, enum db_observed obs, const char *message)
{
    guests_observed_applied(m, g, obs, message, 0);
}

void
guests_observed_applied(master_t *m, const struct db_guest *g, enum db_observed obs,
                        const char *message, uint64_t applied)
{
    if (db_guest_set_observed_applied(m->db, g->id, obs, message, applied) < 0)
        log_debug("guest=%s cannot store observed state, ignoring", g->name);
    else if (g->observed != obs)
        events_emit_project(m, g->project, "guest.state", g->node, g->id, g->name,
                            json_pack("{s:s, s:s}", "from", db_observed_to_string(g->observed),
                                      "to", db_observed_to_string(obs)),
                            "guest %s is %s%s%s", g->name, db_observed_to_string(obs),
                            message ? ": " : "", message ? message : "");
    waiters_guest_state(m, g->id, obs);
}

void
guests_observed_id(master_t *m, const char *id, enum db_observed obs, const char *message)
{
    struct db_guest g = {0};

    if (db_guest_get_state(m->db, id, &g) < 0)
        return;
    guests_observed(m, &g, obs, message);
    db_guest_clear(&g);
}
