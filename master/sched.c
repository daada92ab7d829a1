#include "master/sched.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "common/mem.h"
#include "common/hmap.h"
#include "proto/spec.h"

/* One node of the index. Slots never move, so a slot number is a stable id
 * for the ring and the group sets while the node exists. */
struct snode {
    char name[NAME_MAX_LEN + 1];       /* the node's name, the by_name key */
    struct sched_capacity cap;         /* reported capacity */
    struct sched_resources used;       /* charged by guests */
    uint32_t guests;                   /* guests charged */
    enum sched_node_state state;       /* heartbeat state */
    bool cordoned;                     /* operator cordon */
    uint32_t slot;                     /* index in sched.slots */
    uint32_t ring_pos;                 /* index in sched.ring */
    uint32_t n_labels;                 /* entries in labels */
    char *labels[SCHED_MAX_LABELS][2]; /* key, value pairs, owned */
    uint64_t templates;                /* bit i: it has the template sched.templates[i] */
    bool templates_known;              /* it said which (a node loaded from the store has not) */
};

/* An anti-affinity group: which nodes hold how many of its guests. */
struct sgroup {
    char *name;            /* the group's name, owned; the groups key */
    struct hmap_u64 nodes; /* node slot -> guests of the group there */
};

struct sched {
    struct sched_config cfg;              /* copied at creation */
    struct snode **slots;                 /* by slot number; NULL = free slot */
    uint32_t n_slots;                     /* slots used or freed */
    uint32_t slots_cap;                   /* allocated entries of slots */
    uint32_t *free_slots;                 /* freed slot numbers to reuse */
    uint32_t n_free;                      /* entries in free_slots */
    uint32_t *ring;                       /* slot numbers of all nodes in random order */
    uint32_t ring_len;                    /* nodes in the ring (= live nodes) */
    uint32_t cursor;                      /* where the next walk starts */
    struct hmap_str by_name;              /* name -> struct snode */
    struct hmap_str groups;               /* name -> struct sgroup */
    uint64_t rng;                         /* xorshift64* state for the ring shuffle */
    char *templates[SCHED_MAX_TEMPLATES]; /* template names, by bit number, owned */
    uint32_t n_templates;                 /* entries in templates */
};

static const char *const filter_names[SCHED__F_MAX] = {
    [SCHED_F_STATE] = "state",
    [SCHED_F_CORDONED] = "cordoned",
    [SCHED_F_CONSTRAINT] = "constraint",
    [SCHED_F_TEMPLATE] = "template",
    [SCHED_F_ANTI_AFFINITY] = "anti-affinity",
    [SCHED_F_GUESTS] = "guests",
    [SCHED_F_CPU] = "cpu",
    [SCHED_F_MEMORY] = "memory",
    [SCHED_F_DISK] = "disk",
    [SCHED_F_ADDRS] = "addresses",
};

const char *
sched_filter_name(enum sched_filter f)
{
    return (unsigned)f < SCHED__F_MAX ? filter_names[f] : NULL;
}

const char *
sched_algo_name(enum sched_algo a)
{
    switch (a) {
    case SCHED_BINPACK:
        return "binpack";
    case SCHED_SPREAD:
        return "spread";
    default:
        return "default";
    }
}

int
sched_algo_from_string(const char *s)
{
    if (s && strcmp(s, "binpack") == 0)
        return SCHED_BINPACK;
    if (s && strcmp(s, "spread") == 0)
        return SCHED_SPREAD;
    return -EINVAL;
}

void
sched_config_default(struct sched_config *c)
{
    *c = (struct sched_config){
        .algo = SCHED_BINPACK,
        .overcommit_cpu = 4.0,
        .overcommit_memory = 1.0,
        .overcommit_disk = 1.0,
        .weight_cpu = 1.0,
        .weight_memory = 1.0,
        .weight_disk = 1.0,
        .default_cpu = 100,
        .default_memory = 256ULL << 20,
        .default_disk = 10ULL << 30,
        .full_scan_below = 64,
        .sample_min = 2,
        .walk_budget = 8,
        .seed = 1,
    };
}

void
sched_resources_from_spec(const struct sched_config *cfg, const struct guest_spec *spec,
                          struct sched_resources *out)
{
    *out = (struct sched_resources){
        .cpu = spec->limits.cpu_max ? spec->limits.cpu_max : cfg->default_cpu,
        .memory = spec->limits.memory ? spec->limits.memory : cfg->default_memory,
        .disk = spec->limits.disk ? spec->limits.disk : cfg->default_disk,
        .addrs = spec->n_addrs,
    };
}

static uint64_t
rng_next(sched_t *s)
{
    uint64_t x = s->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

sched_t *
sched_new(const struct sched_config *cfg)
{
    sched_t *s = xcalloc(1, sizeof(*s));

    if (cfg)
        s->cfg = *cfg;
    else
        sched_config_default(&s->cfg);
    if (s->cfg.algo != SCHED_SPREAD)
        s->cfg.algo = SCHED_BINPACK;
    if (!(s->cfg.overcommit_cpu > 0))
        s->cfg.overcommit_cpu = 1;
    if (!(s->cfg.overcommit_memory > 0))
        s->cfg.overcommit_memory = 1;
    if (!(s->cfg.overcommit_disk > 0))
        s->cfg.overcommit_disk = 1;
    if (s->cfg.sample_min < 1)
        s->cfg.sample_min = 1;
    if (s->cfg.walk_budget < 1)
        s->cfg.walk_budget = 1;
    s->rng = s->cfg.seed ? s->cfg.seed : 0x9E3779B97F4A7C15ULL;
    return s;
}

static void
snode_free(struct snode *n)
{
    for (uint32_t i = 0; i < n->n_labels; i++) {
        free(n->labels[i][0]);
        free(n->labels[i][1]);
    }
    free(n);
}

static void
sgroup_free(struct sgroup *g)
{
    hmap_u64_free(&g->nodes);
    free(g->name);
    free(g);
}

void
sched_destroy(sched_t **ps)
{
    sched_t *s = *ps;

    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_slots; i++)
        if (s->slots[i])
            snode_free(s->slots[i]);
    for (size_t i = 0; i < s->groups.cap; i++)
        if (s->groups.slots[i].key)
            sgroup_free(s->groups.slots[i].val);
    hmap_str_free(&s->groups);
    hmap_str_free(&s->by_name);
    for (uint32_t t = 0; t < s->n_templates; t++)
        free(s->templates[t]);
    free(s->slots);
    free(s->free_slots);
    free(s->ring);
    free(s);
    *ps = NULL;
}

const struct sched_config *
sched_config(const sched_t *s)
{
    return &s->cfg;
}

uint32_t
sched_node_count(const sched_t *s)
{
    return s->ring_len;
}

static struct snode *
node_get(const sched_t *s, const char *name)
{
    return name ? hmap_str_get(&s->by_name, name) : NULL;
}

static int
labels_set(struct snode *n, const struct sched_label *labels, size_t n_labels)
{
    if (n_labels > SCHED_MAX_LABELS)
        return -EINVAL;
    for (size_t i = 0; i < n_labels; i++)
        if (!name_is_valid(labels[i].key) || !labels[i].value ||
            strlen(labels[i].value) > SCHED_LABEL_VALUE_MAX)
            return -EINVAL;
    for (uint32_t i = 0; i < n->n_labels; i++) {
        free(n->labels[i][0]);
        free(n->labels[i][1]);
    }
    for (size_t i = 0; i < n_labels; i++) {
        n->labels[i][0] = xstrdup(labels[i].key);
        n->labels[i][1] = xstrdup(labels[i].value);
    }
    n->n_labels = (uint32_t)n_labels;
    return 0;
}

int
sched_node_upsert(sched_t *s, const char *name, const struct sched_capacity *cap,
                  const struct sched_label *labels, size_t n_labels)
{
    struct snode *n;
    uint32_t slot, j;
    int r;

    if (!name_is_valid(name) || !cap)
        return -EINVAL;
    n = node_get(s, name);
    if (n) {
        r = labels_set(n, labels, n_labels);
        if (r < 0)
            return r;
        n->cap = *cap;
        return 0;
    }

    n = xcalloc(1, sizeof(*n));
    r = labels_set(n, labels, n_labels);
    if (r < 0) {
        free(n);
        return r;
    }
    strscpy(n->name, name, sizeof(n->name));
    n->cap = *cap;
    n->state = SCHED_NODE_READY;

    if (s->n_free)
        slot = s->free_slots[--s->n_free];
    else {
        if (s->n_slots == s->slots_cap) {
            s->slots_cap = s->slots_cap ? s->slots_cap * 2 : 64;
            s->slots = xreallocarray(s->slots, s->slots_cap, sizeof(*s->slots));
            s->free_slots = xreallocarray(s->free_slots, s->slots_cap, sizeof(*s->free_slots));
            s->ring = xreallocarray(s->ring, s->slots_cap, sizeof(*s->ring));
        }
        slot = s->n_slots++;
    }
    n->slot = slot;
    s->slots[slot] = n;

    /* Insert at a uniformly random ring position (the inside-out
     * Fisher-Yates step), so the ring stays a random permutation. */
    j = (uint32_t)(rng_next(s) % (s->ring_len + 1));
    if (j < s->ring_len) {
        s->ring[s->ring_len] = s->ring[j];
        s->slots[s->ring[j]]->ring_pos = s->ring_len;
    }
    s->ring[j] = slot;
    n->ring_pos = j;
    s->ring_len++;

    hmap_str_put(&s->by_name, n->name, n);
    return 0;
}

int
sched_node_remove(sched_t *s, const char *name)
{
    struct snode *n = node_get(s, name);
    uint32_t last;

    if (!n)
        return -ENOENT;
    if (n->guests > 0)
        return -EBUSY;
    last = s->ring[s->ring_len - 1];
    s->ring[n->ring_pos] = last;
    s->slots[last]->ring_pos = n->ring_pos;
    s->ring_len--;
    s->slots[n->slot] = NULL;
    s->free_slots[s->n_free++] = n->slot;
    hmap_str_del(&s->by_name, n->name);
    snode_free(n);
    return 0;
}

int
sched_node_set_state(sched_t *s, const char *name, enum sched_node_state state)
{
    struct snode *n = node_get(s, name);

    if (!n)
        return -ENOENT;
    if ((unsigned)state > SCHED_NODE_DOWN)
        return -EINVAL;
    n->state = state;
    return 0;
}

int
sched_node_cordon(sched_t *s, const char *name, bool cordoned)
{
    struct snode *n = node_get(s, name);

    if (!n)
        return -ENOENT;
    n->cordoned = cordoned;
    return 0;
}

int
sched_node_info(const sched_t *s, const char *name, struct sched_node_info *out)
{
    struct snode *n = node_get(s, name);

    if (!n)
        return -ENOENT;
    *out = (struct sched_node_info){
        .cap = n->cap,
        .used = n->used,
        .guests = n->guests,
        .state = n->state,
        .cordoned = n->cordoned,
    };
    return 0;
}

/* ---- evaluation ---- */

static uint64_t
effective(uint64_t cap, double ratio)
{
    double v = (double)cap * ratio;
    return v >= 1.8e19 ? UINT64_MAX : (uint64_t)v;
}

static bool
constraints_match(const struct snode *n, const struct sched_request *req)
{
    for (size_t c = 0; c < req->n_constraints; c++) {
        bool ok = false;
        for (uint32_t i = 0; i < n->n_labels && !ok; i++)
            ok = strcmp(n->labels[i][0], req->constraints[c].key) == 0 &&
                 strcmp(n->labels[i][1], req->constraints[c].value) == 0;
        if (!ok)
            return false;
    }
    return true;
}

/* The state of one walk: the best candidate so far and the near miss. */
struct walk {
    const struct sched_request *req; /* what is being placed */
    enum sched_algo algo;            /* resolved algorithm */
    struct sgroup *group;            /* the request's group, NULL = none or empty */
    struct snode *best;              /* best feasible node so far */
    double best_score;               /* its score */
    double miss_gap;                 /* near miss: relative shortfall, lower is closer */
    uint64_t template_bit;           /* the request's template (0 = none knows it) */
    struct sched_result *out;        /* counters and near miss */
};

/* Checks one resource: returns true when need fits. Otherwise records a
 * near-miss candidate (the node that lacks the least, relative to the need). */
/* A node takes at most as many guests as it has context numbers (unique
 * per node, master/db_context.c), whatever its max_guests says. */
static uint64_t
guests_cap(const struct snode *n)
{
    const uint64_t contexts = SPEC_MAX_CONTEXT - SPEC_MIN_CONTEXT + 1;

    return n->cap.max_guests && n->cap.max_guests < contexts ? n->cap.max_guests : contexts;
}

static bool
fits(struct walk *w, const struct snode *n, enum sched_filter f, uint64_t used, uint64_t cap,
     uint64_t need)
{
    uint64_t free_ = cap > used ? cap - used : 0;
    double gap;

    if (need <= free_)
        return true;
    gap = (double)(need - free_) / (double)need;
    if (!w->out->near_miss.node[0] || gap < w->miss_gap ||
        (gap == w->miss_gap && strcmp(n->name, w->out->near_miss.node) < 0)) {
        w->miss_gap = gap;
        strscpy(w->out->near_miss.node, n->name, sizeof(w->out->near_miss.node));
        w->out->near_miss.filter = f;
        w->out->near_miss.need = need;
        w->out->near_miss.free = free_;
    }
    return false;
}

static double
fill(const sched_t *s, const struct snode *n, const struct sched_resources *r)
{
    const struct sched_config *c = &s->cfg;
    double sum = 0, wsum = 0;

    if (n->cap.cpu) {
        sum += c->weight_cpu * (double)(n->used.cpu + r->cpu) /
               (double)effective(n->cap.cpu, c->overcommit_cpu);
        wsum += c->weight_cpu;
    }
    if (n->cap.memory) {
        sum += c->weight_memory * (double)(n->used.memory + r->memory) /
               (double)effective(n->cap.memory, c->overcommit_memory);
        wsum += c->weight_memory;
    }
    if (n->cap.disk) {
        sum += c->weight_disk * (double)(n->used.disk + r->disk) /
               (double)effective(n->cap.disk, c->overcommit_disk);
        wsum += c->weight_disk;
    }
    return wsum > 0 ? sum / wsum : 0;
}

/* Runs the filters on one node; counts a rejection against the first filter
 * that fails, or scores a feasible node and keeps the best. Returns true when
 * the node is feasible. */
static bool
evaluate(const sched_t *s, struct walk *w, const struct snode *n)
{
    const struct sched_config *c = &s->cfg;
    const struct sched_resources *r = &w->req->res;
    enum sched_filter f;
    double score, fl;

    w->out->nodes_evaluated++;
    if (n->state != SCHED_NODE_READY && !w->req->if_ready)
        f = SCHED_F_STATE;
    else if (n->cordoned)
        f = SCHED_F_CORDONED;
    else if (!constraints_match(n, w->req))
        f = SCHED_F_CONSTRAINT;
    else if (w->req->template_name && !w->req->template_fetch && n->templates_known &&
             !(n->templates & w->template_bit))
        f = SCHED_F_TEMPLATE;
    else if (w->group && hmap_u64_get(&w->group->nodes, n->slot))
        f = SCHED_F_ANTI_AFFINITY;
    else if (!fits(w, n, SCHED_F_GUESTS, n->guests, guests_cap(n), 1))
        f = SCHED_F_GUESTS;
    else if (n->cap.cpu && !fits(w, n, SCHED_F_CPU, n->used.cpu,
                                 effective(n->cap.cpu, c->overcommit_cpu), r->cpu))
        f = SCHED_F_CPU;
    else if (n->cap.memory && !fits(w, n, SCHED_F_MEMORY, n->used.memory,
                                    effective(n->cap.memory, c->overcommit_memory), r->memory))
        f = SCHED_F_MEMORY;
    else if (n->cap.disk && !fits(w, n, SCHED_F_DISK, n->used.disk,
                                  effective(n->cap.disk, c->overcommit_disk), r->disk))
        f = SCHED_F_DISK;
    else if (n->cap.max_addrs &&
             !fits(w, n, SCHED_F_ADDRS, n->used.addrs, n->cap.max_addrs, r->addrs))
        f = SCHED_F_ADDRS;
    else
        f = SCHED__F_MAX;

    if (f != SCHED__F_MAX) {
        w->out->rejected[f]++;
        return false;
    }
    w->out->nodes_feasible++;
    fl = fill(s, n, r);
    /* Both scores are "higher is better". Spread orders by guest count first:
     * fill is within [0, 1], so 2 * guests + fill keeps counts apart. */
    score = w->algo == SCHED_BINPACK ? fl : -(2.0 * n->guests + fl);
    if (!w->best || score > w->best_score ||
        (score == w->best_score && strcmp(n->name, w->best->name) < 0)) {
        w->best = (struct snode *)n;
        w->best_score = score;
    }
    return true;
}

static void
charge(sched_t *s, struct snode *n, const struct sched_resources *r, const char *group)
{
    n->used.cpu += r->cpu;
    n->used.memory += r->memory;
    n->used.disk += r->disk;
    n->used.addrs += r->addrs;
    n->guests++;
    if (group) {
        struct sgroup *g = hmap_str_get(&s->groups, group);
        uint32_t *cnt;

        if (!g) {
            g = xcalloc(1, sizeof(*g));
            g->name = xstrdup(group);
            hmap_str_put(&s->groups, g->name, g);
        }
        cnt = hmap_u64_get(&g->nodes, n->slot);
        if (cnt)
            (*cnt)++;
        else
            hmap_u64_put(&g->nodes, n->slot, 1);
    }
}

static uint64_t
sub_clamp(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static uint32_t
sample_size(const sched_t *s, uint32_t n)
{
    uint32_t k;

    if (n <= s->cfg.full_scan_below)
        return n;
    k = n > 1 ? 64 - (uint32_t)__builtin_clzll((uint64_t)n - 1) : 1; /* ceil(log2 n) */
    return k < s->cfg.sample_min ? s->cfg.sample_min : k;
}

int
sched_node_templates(sched_t *s, const char *name, const char *const *templates, size_t n)
{
    struct snode *node = node_get(s, name);
    int r = 0;

    if (!node)
        return -ENOENT;
    node->templates = 0;
    node->templates_known = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t t;
        for (t = 0; t < s->n_templates && strcmp(s->templates[t], templates[i]); t++)
            ;
        if (t == s->n_templates) {
            if (t == SCHED_MAX_TEMPLATES) {
                r = -E2BIG;
                continue;
            }
            s->templates[s->n_templates++] = xstrdup(templates[i]);
        }
        node->templates |= 1ULL << t;
    }
    return r;
}

int
sched_place(sched_t *s, const struct sched_request *req, struct sched_result *out)
{
    struct walk w = {.req = req, .out = out};
    uint32_t n = s->ring_len, k, budget, start, i, first_feasible = UINT32_MAX;

    *out = (struct sched_result){.nodes_total = n};
    if (!req || req->n_constraints > SCHED_MAX_LABELS || (req->n_constraints && !req->constraints))
        return -EINVAL;
    for (size_t c = 0; c < req->n_constraints; c++)
        if (!req->constraints[c].key || !req->constraints[c].value)
            return -EINVAL;
    w.algo = req->algo == SCHED_DEFAULT ? s->cfg.algo : req->algo;
    if (w.algo != SCHED_BINPACK && w.algo != SCHED_SPREAD)
        return -EINVAL;
    out->algo = w.algo;
    if (req->group)
        w.group = hmap_str_get(&s->groups, req->group);
    if (req->template_name)
        for (uint32_t t = 0; t < s->n_templates; t++)
            if (strcmp(s->templates[t], req->template_name) == 0)
                w.template_bit = 1ULL << t;

    if (req->pin) {
        struct snode *p = node_get(s, req->pin);
        if (!p)
            return -ENOENT;
        evaluate(s, &w, p);
    } else if (n > 0) {
        k = sample_size(s, n);
        budget = k == n ? n : k * s->cfg.walk_budget;
        start = s->cursor % n;
        for (i = 0; i < n; i++) {
            uint32_t pos = (start + i) % n;
            if (evaluate(s, &w, s->slots[s->ring[pos]])) {
                if (first_feasible == UINT32_MAX)
                    first_feasible = pos;
                if (out->nodes_feasible >= k)
                    break;
            }
            /* Once something fits, the walk is also bounded in nodes looked
             * at: a binpack cursor can sit behind a trail of nearly full
             * nodes that fit small guests only, and a large guest must not
             * pay for walking the whole trail. */
            if (out->nodes_feasible > 0 && out->nodes_evaluated >= budget)
                break;
        }
        /* Spread rotates: the next walk starts where this one stopped, so
         * successive placements look at fresh nodes. Binpack stays on the
         * first node that still had room, so nodes fill up in ring order and
         * full nodes are stepped over once, not on every placement. */
        if (w.algo == SCHED_SPREAD || first_feasible == UINT32_MAX)
            s->cursor = (start + (i < n ? i + 1 : n)) % n;
        else
            s->cursor = first_feasible;
    }

    if (!w.best)
        return -ENOSPC;
    out->near_miss = (struct sched_near_miss){0};
    strscpy(out->node, w.best->name, sizeof(out->node));
    out->score = w.best_score;
    if (!req->if_ready)
        charge(s, w.best, &req->res, req->group);
    return 0;
}

int
sched_reserve(sched_t *s, const char *node, const struct sched_resources *res, const char *group)
{
    struct snode *n = node_get(s, node);

    if (!n)
        return -ENOENT;
    charge(s, n, res, group);
    return 0;
}

int
sched_release(sched_t *s, const char *node, const struct sched_resources *res, const char *group)
{
    struct snode *n = node_get(s, node);

    if (!n)
        return -ENOENT;
    if (n->guests == 0)
        return -EINVAL;
    n->used.cpu = sub_clamp(n->used.cpu, res->cpu);
    n->used.memory = sub_clamp(n->used.memory, res->memory);
    n->used.disk = sub_clamp(n->used.disk, res->disk);
    n->used.addrs = (uint32_t)sub_clamp(n->used.addrs, res->addrs);
    n->guests--;
    if (group) {
        struct sgroup *g = hmap_str_get(&s->groups, group);
        uint32_t *cnt = g ? hmap_u64_get(&g->nodes, n->slot) : NULL;

        if (cnt && --(*cnt) == 0) {
            hmap_u64_del(&g->nodes, n->slot);
            if (g->nodes.len == 0) {
                hmap_str_del(&s->groups, g->name);
                sgroup_free(g);
            }
        }
    }
    return 0;
}

json_t *
sched_result_to_json(const struct sched_result *r)
{
    json_t *filters = json_array();
    json_t *o;

    for (int f = 0; f < SCHED__F_MAX; f++)
        if (r->rejected[f])
            json_array_append_new(filters, json_pack("{s:s, s:I}", "filter", filter_names[f],
                                                     "rejected", (json_int_t)r->rejected[f]));
    o = json_pack("{s:s, s:I, s:I, s:I, s:o}", "algorithm", sched_algo_name(r->algo), "nodes_total",
                  (json_int_t)r->nodes_total, "nodes_evaluated", (json_int_t)r->nodes_evaluated,
                  "nodes_feasible", (json_int_t)r->nodes_feasible, "filters", filters);
    if (o && r->near_miss.node[0])
        json_object_set_new(o, "near_miss",
                            json_pack("{s:s, s:s, s:I, s:I}", "node", r->near_miss.node, "resource",
                                      filter_names[r->near_miss.filter], "need",
                                      (json_int_t)r->near_miss.need, "free",
                                      (json_int_t)r->near_miss.free));
    return o;
}
