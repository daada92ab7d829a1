#include "master/registry.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/hmap.h"

#define REGISTRY_SUSPECT_DEFAULT_MS 15000
#define REGISTRY_DOWN_DEFAULT_MS    30000

struct registry {
    db_t *db;                     /* persistence (borrowed) */
    sched_t *sched;               /* the scheduler's node index (borrowed) */
    struct registry_config cfg;   /* thresholds and clock */
    struct hmap_str by_name;      /* name -> struct registry_node * */
    struct registry_node **nodes; /* every node, in insertion order */
    size_t n_nodes;               /* entries in nodes */
    size_t cap_nodes;             /* allocated entries in nodes */
};

static uint64_t
now_ms(const registry_t *r)
{
    return r->cfg.clock_ms ? r->cfg.clock_ms(r->cfg.clock_userdata) : time_mono_ms();
}

static enum sched_node_state
sched_state(enum db_node_state s)
{
    switch (s) {
    case DB_NODE_READY:
        return SCHED_NODE_READY;
    case DB_NODE_SUSPECT:
        return SCHED_NODE_SUSPECT;
    default:
        return SCHED_NODE_DOWN;
    }
}

static struct registry_node *
node_add(registry_t *r, const char *name)
{
    struct registry_node *n = xcalloc(1, sizeof(*n));

    strscpy(n->name, name, sizeof(n->name));
    n->state = DB_NODE_DOWN;
    n->link = -1;
    if (r->n_nodes == r->cap_nodes) {
        r->cap_nodes = r->cap_nodes ? r->cap_nodes * 2 : 16;
        r->nodes = xreallocarray(r->nodes, r->cap_nodes, sizeof(*r->nodes));
    }
    r->nodes[r->n_nodes++] = n;
    hmap_str_put(&r->by_name, n->name, n);
    return n;
}

/* Pushes a node's capacity, labels, state and cordon into the scheduler. */
static int
mirror(registry_t *r, const struct registry_node *n)
{
    struct sched_label labels[PROTO_MAX_LABELS];
    int k;

    for (uint32_t i = 0; i < n->n_labels; i++)
        labels[i] = (struct sched_label){n->labels[i].key, n->labels[i].value};
    k = sched_node_upsert(r->sched, n->name, &n->cap, labels, n->n_labels);
    if (k < 0)
        return k;
    if (n->templates) {
        /* At most PROTO_MAX_TEMPLATES names, each a name (hello checked). */
        const char *names[PROTO_MAX_TEMPLATES];
        size_t nt = 0;
        _cleanup_free_ char *list = xstrdup(n->templates);
        char *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t && nt < PROTO_MAX_TEMPLATES;
             t = strtok_r(NULL, ",", &save))
            names[nt++] = t;
        if (sched_node_templates(r->sched, n->name, names, nt) < 0)
            log_warning("node=%s reports templates beyond the cluster's %d, ignoring", n->name,
                        SCHED_MAX_TEMPLATES);
    }
    sched_node_set_state(r->sched, n->name, sched_state(n->state));
    sched_node_cordon(r->sched, n->name, n->cordoned);
    return 0;
}

static int
load_one(void *userdata, const struct db_node *dn)
{
    registry_t *r = userdata;
    struct registry_node *n = node_add(r, dn->name);
    json_t *labels = json_loads(dn->labels ? dn->labels : "{}", 0, NULL);
    json_t *kernel = json_loads(dn->kernel ? dn->kernel : "{}", 0, NULL);
    const char *k;
    json_t *v;

    n->cap = (struct sched_capacity){.cpu = dn->cpus,
                                     .memory = dn->memory,
                                     .disk = dn->disk,
                                     .max_guests = dn->max_guests,
                                     .max_addrs = dn->max_addrs};
    n->cordoned = dn->cordoned;
    n->state = DB_NODE_DOWN;
    n->last_seen_real = dn->last_seen_ms;
    json_object_foreach(labels, k, v)
    {
        if (n->n_labels >= PROTO_MAX_LABELS || !json_is_string(v))
            break;
        strscpy(n->labels[n->n_labels].key, k, sizeof(n->labels[0].key));
        strscpy(n->labels[n->n_labels].value, json_string_value(v), sizeof(n->labels[0].value));
        n->n_labels++;
    }
    if (json_is_object(kernel)) {
        const char *s;
        if ((s = json_string_value(json_object_get(kernel, "kernel"))))
            strscpy(n->kernel, s, sizeof(n->kernel));
        if ((s = json_string_value(json_object_get(kernel, "cgroup"))))
            strscpy(n->cgroup, s, sizeof(n->cgroup));
        if ((s = json_string_value(json_object_get(kernel, "backend"))))
            strscpy(n->backend, s, sizeof(n->backend));
        if ((s = json_string_value(json_object_get(kernel, "agent_version"))))
            strscpy(n->agent_version, s, sizeof(n->agent_version));
        json_t *lo = json_object_get(kernel, "leftovers");
        if (json_is_integer(lo) && json_integer_value(lo) >= 0 &&
            json_integer_value(lo) <= UINT32_MAX) {
            n->leftovers = (uint32_t)json_integer_value(lo);
            n->has_leftovers = true;
        }
    }
    json_decref(labels);
    json_decref(kernel);
    if (mirror(r, n) < 0)
        log_debug("node=%s stored node not accepted by the scheduler, ignoring", n->name);
    return 0;
}

int
registry_new(db_t *db, sched_t *sched, const struct registry_config *cfg, registry_t **out)
{
    registry_t *r = xcalloc(1, sizeof(*r));
    int k;

    r->db = db;
    r->sched = sched;
    if (cfg)
        r->cfg = *cfg;
    if (!r->cfg.suspect_after_ms)
        r->cfg.suspect_after_ms = REGISTRY_SUSPECT_DEFAULT_MS;
    if (!r->cfg.down_after_ms)
        r->cfg.down_after_ms = REGISTRY_DOWN_DEFAULT_MS;
    if (r->cfg.down_after_ms <= r->cfg.suspect_after_ms)
        r->cfg.down_after_ms = r->cfg.suspect_after_ms + 1;
    k = db_node_list(db, NULL, 0, load_one, r);
    if (k < 0) {
        registry_destroy(&r);
        return k;
    }
    *out = r;
    return 0;
}

void
registry_destroy(registry_t **pr)
{
    registry_t *r = *pr;

    if (!r)
        return;
    for (size_t i = 0; i < r->n_nodes; i++) {
        json_decref(r->nodes[i]->orphans);
        free(r->nodes[i]->templates);
        free(r->nodes[i]->template_info);
        free(r->nodes[i]);
    }
    free(r->nodes);
    hmap_str_free(&r->by_name);
    free(r);
    *pr = NULL;
}

struct registry_node *
registry_get(const registry_t *r, const char *name)
{
    return hmap_str_get(&r->by_name, name);
}

size_t
registry_count(const registry_t *r)
{
    return r->n_nodes;
}

struct registry_node *
registry_at(const registry_t *r, size_t i)
{
    return i < r->n_nodes ? r->nodes[i] : NULL;
}

static void *
xmemdup_array(const void *p, size_t n, size_t size)
{
    void *c = xcalloc(n ? n : 1, size);
    memcpy(c, p, n * size);
    return c;
}

static char *
templates_join(const struct msg_hello *h)
{
    size_t len = 1;

    for (uint32_t i = 0; i < h->n_templates; i++)
        len += strlen(h->templates[i].name) + 1;
    char *s = xcalloc(1, len), *p = s;
    for (uint32_t i = 0; i < h->n_templates; i++)
        p += sprintf(p, "%s%s", i ? "," : "", h->templates[i].name);
    return s;
}

int
registry_hello(registry_t *r, const struct msg_hello *h, struct registry_node **out)
{
    struct registry_node *n;
    struct registry_node tmp = {0};
    int k;

    if (!name_is_valid(h->node) || h->n_labels > PROTO_MAX_LABELS)
        return -EINVAL;
    for (uint32_t i = 0; i < h->n_labels; i++)
        if (!name_is_valid(h->labels[i].key))
            return -EINVAL;

    /* Build the new facts aside, so a refused hello changes nothing. */
    strscpy(tmp.name, h->node, sizeof(tmp.name));
    strscpy(tmp.kernel, h->kernel, sizeof(tmp.kernel));
    strscpy(tmp.cgroup, h->cgroup, sizeof(tmp.cgroup));
    strscpy(tmp.backend, h->backend, sizeof(tmp.backend));
    strscpy(tmp.agent_version, h->agent_version, sizeof(tmp.agent_version));
    tmp.leftovers = h->has_leftovers ? h->leftovers : 0;
    tmp.has_leftovers = h->has_leftovers;
    tmp.cap = (struct sched_capacity){
        .cpu = h->cpus, .memory = h->memory, .disk = h->disk, .max_guests = h->max_guests};
    tmp.n_labels = h->n_labels;
    memcpy(tmp.labels, h->labels, h->n_labels * sizeof(h->labels[0]));

    json_t *labels = json_object();
    for (uint32_t i = 0; i < h->n_labels; i++)
        json_object_set_new(labels, h->labels[i].key, json_string(h->labels[i].value));
    json_t *kernel = json_pack("{s:s, s:s, s:s, s:s}", "kernel", tmp.kernel, "cgroup", tmp.cgroup,
                               "backend", tmp.backend, "agent_version", tmp.agent_version);
    if (tmp.has_leftovers)
        json_object_set_new(kernel, "leftovers", json_integer(tmp.leftovers));
    _cleanup_free_ char *labels_text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
    _cleanup_free_ char *kernel_text = json_dumps(kernel, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(labels);
    json_decref(kernel);

    uint64_t real = time_real_ms();
    struct db_node dn = {.name = tmp.name,
                         .labels = labels_text,
                         .kernel = kernel_text,
                         .cpus = tmp.cap.cpu,
                         .memory = tmp.cap.memory,
                         .disk = tmp.cap.disk,
                         .max_guests = tmp.cap.max_guests,
                         .state = DB_NODE_READY,
                         .last_seen_ms = real};
    k = db_node_upsert(r->db, &dn);
    if (k < 0)
        return k;

    n = registry_get(r, h->node);
    if (!n)
        n = node_add(r, h->node);
    memcpy(n->kernel, tmp.kernel, sizeof(n->kernel));
    memcpy(n->cgroup, tmp.cgroup, sizeof(n->cgroup));
    memcpy(n->backend, tmp.backend, sizeof(n->backend));
    memcpy(n->agent_version, tmp.agent_version, sizeof(n->agent_version));
    n->leftovers = tmp.leftovers;
    n->has_leftovers = tmp.has_leftovers;
    n->cap = tmp.cap;
    free(n->templates);
    n->templates = templates_join(h);
    free(n->template_info);
    n->n_template_info = h->n_templates;
    n->template_info = xmemdup_array(h->templates, h->n_templates, sizeof(*h->templates));
    n->n_labels = tmp.n_labels;
    memcpy(n->labels, tmp.labels, sizeof(n->labels));
    n->state = DB_NODE_READY;
    n->welcomed = true;
    n->last_seen_mono = now_ms(r);
    n->last_seen_real = real;
    k = mirror(r, n);
    if (k < 0)
        return k;
    if (out)
        *out = n;
    return 0;
}

int
registry_seen(registry_t *r, const char *name)
{
    struct registry_node *n = registry_get(r, name);

    if (!n || !n->welcomed || n->state == DB_NODE_DOWN)
        return 0;
    n->last_seen_mono = now_ms(r);
    n->last_seen_real = time_real_ms();
    if (n->state == DB_NODE_SUSPECT) {
        int k = db_node_set_state(r->db, n->name, DB_NODE_READY, n->last_seen_real);
        if (k < 0)
            return k;
        n->state = DB_NODE_READY;
        sched_node_set_state(r->sched, n->name, SCHED_NODE_READY);
    }
    return 1;
}

struct id_list {
    char **ids; /* guest ids */
    size_t n;   /* entries used */
    size_t cap; /* entries allocated */
};

static int
collect_id(void *userdata, const struct db_guest *g)
{
    struct id_list *l = userdata;

    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->ids = xreallocarray(l->ids, l->cap, sizeof(*l->ids));
    }
    l->ids[l->n++] = xstrdup(g->id);
    return 0;
}

/* Marks every guest of a down node unknown. They stay where they are. */
static int
guests_unknown(registry_t *r, const char *node)
{
    struct id_list l = {0};
    struct db_guest_filter f = {.node = node, .observed = -1};
    int k = db_guest_list(r->db, &f, collect_id, &l);

    if (k >= 0) {
        k = db_begin(r->db);
        if (k >= 0) {
            for (size_t i = 0; i < l.n && k >= 0; i++)
                k = db_guest_set_observed(r->db, l.ids[i], DB_OBS_UNKNOWN, "node is down");
            k = k >= 0 ? db_commit(r->db) : (db_rollback(r->db), k);
        }
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.ids[i]);
    free(l.ids);
    return k;
}

/* Moves n to st: stored, mirrored into sched; a node going down must say
 * hello again and its guests become unknown. */
static void
node_set_state(registry_t *r, struct registry_node *n, enum db_node_state st, registry_change_cb cb,
               void *userdata)
{
    enum db_node_state old = n->state;

    if (db_node_set_state(r->db, n->name, st, n->last_seen_real) < 0)
        log_debug("node=%s cannot store state %s, ignoring", n->name, db_node_state_to_string(st));
    n->state = st;
    sched_node_set_state(r->sched, n->name, sched_state(st));
    if (st == DB_NODE_DOWN) {
        n->welcomed = false;
        if (guests_unknown(r, n->name) < 0)
            log_debug("node=%s cannot mark its guests unknown, ignoring", n->name);
    }
    if (cb)
        cb(userdata, n, old);
}

int
registry_tick(registry_t *r, uint64_t behind_ms, registry_change_cb cb, void *userdata)
{
    /* Silence is counted up to the time by which this master has read
     * everything that arrived: a node whose messages wait in the master's
     * own backlog is not silent. */
    uint64_t t = now_ms(r), now = t > behind_ms ? t - behind_ms : 0;
    int changed = 0;

    for (size_t i = 0; i < r->n_nodes; i++) {
        struct registry_node *n = r->nodes[i];
        enum db_node_state old = n->state, st = old;

        if (old == DB_NODE_DOWN || !n->welcomed)
            continue;
        uint64_t silent = now > n->last_seen_mono ? now - n->last_seen_mono : 0;
        if (silent >= r->cfg.down_after_ms)
            st = DB_NODE_DOWN;
        else if (silent >= r->cfg.suspect_after_ms)
            st = DB_NODE_SUSPECT;
        if (st == old)
            continue;
        node_set_state(r, n, st, cb, userdata);
        changed++;
    }
    return changed;
}

int
registry_down(registry_t *r, const char *name, registry_change_cb cb, void *userdata)
{
    struct registry_node *n = registry_get(r, name);

    if (!n)
        return -ENOENT;
    if (n->state != DB_NODE_DOWN)
        node_set_state(r, n, DB_NODE_DOWN, cb, userdata);
    n->welcomed = false;
    return 0;
}

int
registry_cordon(registry_t *r, const char *name, bool cordoned)
{
    struct registry_node *n = registry_get(r, name);
    int k;

    if (!n)
        return -ENOENT;
    k = db_node_set_cordoned(r->db, name, cordoned);
    if (k < 0)
        return k;
    n->cordoned = cordoned;
    sched_node_cordon(r->sched, name, cordoned);
    return 0;
}

int
registry_node_template_add(registry_t *r, const char *name, const struct msg_template *t)
{
    struct registry_node *n = registry_get(r, name);
    uint32_t i = 0;

    if (!n)
        return -ENOENT;
    while (i < n->n_template_info && strcmp(n->template_info[i].name, t->name) != 0)
        i++;
    if (i == n->n_template_info) {
        if (i >= PROTO_MAX_TEMPLATES)
            return -E2BIG;
        n->template_info = xreallocarray(n->template_info, i + 1, sizeof(*n->template_info));
        n->n_template_info++;
        _cleanup_free_ char *old = n->templates;
        n->templates =
            xasprintf("%s%s%s", old && old[0] ? old : "", old && old[0] ? "," : "", t->name);
    }
    n->template_info[i] = *t;
    return mirror(r, n);
}

bool
registry_node_has_template(const registry_t *r, const char *name, const char *tmpl)
{
    const struct registry_node *n = registry_get(r, name);

    for (uint32_t i = 0; n && i < n->n_template_info; i++)
        if (strcmp(n->template_info[i].name, tmpl) == 0)
            return true;
    return false;
}
