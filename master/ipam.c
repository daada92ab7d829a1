#include "master/ipam.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/name.h"
#include "common/hmap.h"
#include "master/ipam_int.h"

#define IPAM_DEFAULT_PER_GUEST 16

static void _printf_(3, 4) seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- offsets ---- */

static unsigned
host_bits(const struct netaddr *net)
{
    return netaddr_bits(net) - net->prefix;
}

static uint64_t
low64(const struct netaddr *a)
{
    uint64_t v = 0;
    size_t from = a->family == AF_INET ? 0 : 8, to = a->family == AF_INET ? 4 : 16;

    for (size_t i = from; i < to; i++)
        v = (v << 8) | a->bytes[i];
    return v;
}

uint64_t
ipam_offset_of(const struct ipool *p, const struct netaddr *a)
{
    return (low64(a) - low64(&p->net)) & p->last;
}

static struct netaddr
addr_at(const struct ipool *p, uint64_t off)
{
    struct netaddr a = p->net;
    uint64_t v = low64(&p->net) | off;
    size_t from = a.family == AF_INET ? 0 : 8, to = a.family == AF_INET ? 4 : 16;

    for (size_t i = to; i > from; i--) {
        a.bytes[i - 1] = (uint8_t)v;
        v >>= 8;
    }
    a.prefix = (uint8_t)netaddr_bits(&a);
    return a;
}

bool
ipam_reserved(const struct ipool *p, uint64_t off)
{
    if (p->has_gw && off == p->gw_off)
        return true;
    if (p->net.family == AF_INET6)
        return off == 0; /* the subnet-router anycast address */
    /* IPv4: network and broadcast, except on /31 and /32 (RFC 3021). */
    return p->net.prefix <= 30 && (off == 0 || off == p->last);
}

/* ---- undo log ---- */

void
ipam_undo_push(ipam_t *ip, struct undo u)
{
    if (ip->n_undo == ip->undo_cap) {
        ip->undo_cap = ip->undo_cap ? ip->undo_cap * 2 : 16;
        ip->undo = xreallocarray(ip->undo, ip->undo_cap, sizeof(*ip->undo));
    }
    ip->undo[ip->n_undo++] = u;
}

void
ipam_freed_push(struct ipool *p, uint64_t off)
{
    if (!p->exhausted && off >= p->frontier)
        return; /* the frontier will reach it */
    if (p->n_freed == p->freed_cap) {
        p->freed_cap = p->freed_cap ? p->freed_cap * 2 : 16;
        p->freed = xreallocarray(p->freed, p->freed_cap, sizeof(*p->freed));
    }
    p->freed[p->n_freed++] = off;
}

static void
pool_free(struct ipool *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n_sel; i++) {
        free(p->sel[i][0]);
        free(p->sel[i][1]);
    }
    hmap_u64_free(&p->allocated);
    free(p->freed);
    free(p->name);
    free(p);
}

static void
pool_unlink(ipam_t *ip, struct ipool *p)
{
    for (size_t i = 0; i < ip->n_pools; i++)
        if (ip->pools[i] == p) {
            memmove(&ip->pools[i], &ip->pools[i + 1], (ip->n_pools - i - 1) * sizeof(p));
            ip->n_pools--;
            return;
        }
}

static void
undo_apply(ipam_t *ip, const struct undo *u)
{
    struct ipool *p = u->pool;

    switch (u->kind) {
    case UNDO_ALLOC_FRONTIER:
        hmap_u64_del(&p->allocated, u->off);
        p->frontier = u->prev_frontier;
        p->exhausted = u->prev_exhausted;
        break;
    case UNDO_ALLOC_OTHER:
        hmap_u64_del(&p->allocated, u->off);
        ipam_freed_push(p, u->off);
        break;
    case UNDO_RELEASE:
        hmap_u64_put(&p->allocated, u->off, 1);
        break;
    case UNDO_POOL_CREATE:
        pool_unlink(ip, p);
        pool_free(p);
        break;
    case UNDO_POOL_DELETE:
        p->dead = false;
        break;
    }
}

static void
ipam_tx_hook(void *userdata, enum db_tx_event ev, unsigned depth)
{
    ipam_t *ip = userdata;

    /* Savepoints deeper than the marks array still work: their changes are
     * undone with the nearest tracked level that rolls back. */
    if (depth >= ARRAY_SIZE(ip->marks))
        return;
    switch (ev) {
    case DB_TX_BEGIN:
        ip->marks[depth] = ip->n_undo;
        break;
    case DB_TX_ROLLBACK:
        while (ip->n_undo > ip->marks[depth])
            undo_apply(ip, &ip->undo[--ip->n_undo]);
        break;
    case DB_TX_COMMIT:
        if (depth != 1)
            break;
        /* Durable now: forget the log and drop pools deleted in it. */
        ip->n_undo = 0;
        for (size_t i = 0; i < ip->n_pools;)
            if (ip->pools[i]->dead) {
                struct ipool *p = ip->pools[i];
                pool_unlink(ip, p);
                pool_free(p);
            } else
                i++;
        break;
    }
}

/* ---- pools ---- */

static struct ipool *
pool_find(ipam_t *ip, const char *name)
{
    for (size_t i = 0; i < ip->n_pools; i++)
        if (!ip->pools[i]->dead && strcmp(ip->pools[i]->name, name) == 0)
            return ip->pools[i];
    return NULL;
}

struct ipool *
ipam_pool_for_addr(ipam_t *ip, const struct netaddr *a)
{
    for (size_t i = 0; i < ip->n_pools; i++)
        if (!ip->pools[i]->dead && netaddr_contains(&ip->pools[i]->net, a))
            return ip->pools[i];
    return NULL;
}

static bool
selector_matches(const struct ipool *p, const struct db_label *labels, size_t n)
{
    for (uint32_t s = 0; s < p->n_sel; s++) {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = labels[i].key && labels[i].value && strcmp(labels[i].key, p->sel[s][0]) == 0 &&
                 strcmp(labels[i].value, p->sel[s][1]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

/* Builds a pool from its definition (validated) without touching the db. */
static int
pool_build(const char *name, const char *cidr, const char *gateway, const struct db_label *sel,
           size_t n_sel, struct ipool **out, char *err, size_t errlen)
{
    struct ipool *p;
    struct netaddr net;

    if (!name_is_valid(name)) {
        seterr(err, errlen, "pool name \"%s\" is not a valid name", name ? name : "");
        return -EINVAL;
    }
    if (!cidr || netaddr_parse(cidr, &net) < 0) {
        seterr(err, errlen, "cidr \"%s\" is not an IPv4 or IPv6 prefix", cidr ? cidr : "");
        return -EINVAL;
    }
    if (net.family == AF_INET6 && net.prefix < 64) {
        seterr(err, errlen, "IPv6 pool \"%s\" must be /64 or longer", cidr);
        return -EINVAL;
    }
    if (n_sel > IPAM_MAX_SELECTOR) {
        seterr(err, errlen, "selector has more than %d labels", IPAM_MAX_SELECTOR);
        return -EINVAL;
    }
    for (size_t i = 0; i < n_sel; i++)
        if (!name_is_valid(sel[i].key) || !sel[i].value) {
            seterr(err, errlen, "selector label \"%s\" is not a valid label",
                   sel[i].key ? sel[i].key : "");
            return -EINVAL;
        }
    netaddr_mask(&net);

    p = xcalloc(1, sizeof(*p));
    p->name = xstrdup(name);
    p->net = net;
    p->last = host_bits(&net) >= 64 ? UINT64_MAX : (1ULL << host_bits(&net)) - 1;
    if (gateway) {
        if (netaddr_parse_host(gateway, &p->gw) < 0 || !netaddr_contains(&net, &p->gw)) {
            seterr(err, errlen, "gateway \"%s\" is not an address inside %s", gateway, cidr);
            pool_free(p);
            return -EINVAL;
        }
        p->has_gw = true;
        p->gw_off = ipam_offset_of(p, &p->gw);
    }
    for (size_t i = 0; i < n_sel; i++) {
        p->sel[i][0] = xstrdup(sel[i].key);
        p->sel[i][1] = xstrdup(sel[i].value);
    }
    p->n_sel = (uint32_t)n_sel;
    *out = p;
    return 0;
}

/* Keeps pools in name order, the order auto tries them in, so the choice is
 * the same before and after a restart (the db lists them by name). */
static void
pool_add(ipam_t *ip, struct ipool *p)
{
    size_t i = 0;

    ip->pools = xreallocarray(ip->pools, ip->n_pools + 1, sizeof(*ip->pools));
    while (i < ip->n_pools && strcmp(ip->pools[i]->name, p->name) < 0)
        i++;
    memmove(&ip->pools[i + 1], &ip->pools[i], (ip->n_pools - i) * sizeof(*ip->pools));
    ip->pools[i] = p;
    ip->n_pools++;
}

static char *
selector_json(const struct db_label *sel, size_t n)
{
    json_t *o = json_object();
    char *s;

    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, sel[i].key, json_string(sel[i].value));
    s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        abort(); /* jansson fails only on OOM here */
    return s;
}

int
ipam_pool_create(ipam_t *ip, const struct ipam_pool_def *def, char *err, size_t errlen)
{
    struct ipool *p = NULL;
    _cleanup_free_ char *sel = NULL;
    char cidr[NETADDR_STRLEN], gw[NETADDR_STRLEN];
    int r;

    r = pool_build(def->name, def->cidr, def->gateway, def->selector, def->n_selector, &p, err,
                   errlen);
    if (r < 0)
        return r;
    if (pool_find(ip, p->name)) {
        seterr(err, errlen, "pool \"%s\" exists already", p->name);
        pool_free(p);
        return -EEXIST;
    }
    for (size_t i = 0; i < ip->n_pools; i++) {
        struct ipool *o = ip->pools[i];
        if (!o->dead &&
            (netaddr_contains(&o->net, &p->net) || netaddr_contains(&p->net, &o->net))) {
            seterr(err, errlen, "%s overlaps pool \"%s\"", def->cidr, o->name);
            pool_free(p);
            return -EADDRINUSE;
        }
    }
    sel = selector_json(def->selector, def->n_selector);
    netaddr_format(&p->net, true, cidr, sizeof(cidr));
    if (p->has_gw)
        netaddr_format(&p->gw, false, gw, sizeof(gw));

    r = db_begin(ip->db);
    if (r < 0) {
        pool_free(p);
        return r;
    }
    r = db_pool_insert(ip->db, &(struct db_pool){.name = p->name,
                                                 .cidr = cidr,
                                                 .gateway = p->has_gw ? gw : NULL,
                                                 .family = p->net.family,
                                                 .selector = sel});
    if (r < 0) {
        (void)db_rollback(ip->db);
        seterr(err, errlen, "cannot store pool \"%s\": %s", p->name, strerror(-r));
        pool_free(p);
        return r;
    }
    pool_add(ip, p);
    ipam_undo_push(ip, (struct undo){.kind = UNDO_POOL_CREATE, .pool = p});
    return db_commit(ip->db);
}

int
ipam_pool_delete(ipam_t *ip, const char *name)
{
    struct ipool *p = pool_find(ip, name);
    int r;

    if (!p)
        return -ENOENT;
    if (p->allocated.len > 0)
        return -EBUSY;
    r = db_begin(ip->db);
    if (r < 0)
        return r;
    r = db_pool_delete(ip->db, name);
    if (r < 0) {
        (void)db_rollback(ip->db);
        return r;
    }
    p->dead = true;
    ipam_undo_push(ip, (struct undo){.kind = UNDO_POOL_DELETE, .pool = p});
    return db_commit(ip->db);
}

int
ipam_pool_info(ipam_t *ip, const char *name, struct ipam_pool_info *out)
{
    struct ipool *p = pool_find(ip, name);
    uint64_t res = 0;

    if (!p)
        return -ENOENT;
    /* Count reserved offsets once each (the gateway may be the network). */
    if (ipam_reserved(p, 0))
        res++;
    if (p->last != 0 && ipam_reserved(p, p->last))
        res++;
    if (p->has_gw && p->gw_off != 0 && p->gw_off != p->last)
        res++;
    *out = (struct ipam_pool_info){
        .net = p->net,
        .gateway = p->gw,
        .has_gateway = p->has_gw,
        .usable = p->last == UINT64_MAX ? UINT64_MAX : p->last + 1 - res,
        .allocated = p->allocated.len,
    };
    return 0;
}

size_t
ipam_pool_count(ipam_t *ip)
{
    size_t n = 0;

    for (size_t i = 0; i < ip->n_pools; i++)
        n += !ip->pools[i]->dead;
    return n;
}

/* ---- load ---- */

struct load_ctx {
    ipam_t *ip;    /* being loaded */
    char *err;     /* caller's error buffer */
    size_t errlen; /* its size */
    int r;         /* first error */
};

static int
load_pool(void *userdata, const struct db_pool *dp)
{
    struct load_ctx *c = userdata;
    struct db_label sel[IPAM_MAX_SELECTOR];
    size_t n = 0;
    json_t *o, *v;
    const char *k;
    struct ipool *p;
    int r;

    o = json_loads(dp->selector ? dp->selector : "{}", 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        seterr(c->err, c->errlen, "pool \"%s\" has an unreadable selector", dp->name);
        return c->r = -EBADMSG;
    }
    json_object_foreach(o, k, v)
    {
        if (n == IPAM_MAX_SELECTOR || !json_is_string(v))
            break;
        sel[n++] = (struct db_label){k, json_string_value(v)};
    }
    r = pool_build(dp->name, dp->cidr, dp->gateway, sel, n, &p, c->err, c->errlen);
    json_decref(o);
    if (r < 0)
        return c->r = -EBADMSG;
    pool_add(c->ip, p);
    return 0;
}

static int
load_ip(void *userdata, const struct db_ip *dip)
{
    struct ipool *p = userdata;
    struct netaddr a;

    if (netaddr_parse_host(dip->address, &a) < 0 || !netaddr_contains(&p->net, &a))
        return 0; /* not ours to serve; the primary key still protects it */
    hmap_u64_put(&p->allocated, ipam_offset_of(p, &a), 1);
    return 0;
}

static int
load_hold(void *userdata, const struct db_hold *h)
{
    return load_ip(userdata, &(struct db_ip){.address = h->address, .pool = h->pool});
}

#define IPAM_REBUILD_MAX (1u << 20) /* offsets below a cursor scanned for the free set */

/* The frontier where the last run left it, and the offsets below it that
 * are neither allocated nor held as the free set (lowest handed out first). */
static int
load_cursor(ipam_t *ip, struct ipool *p)
{
    uint64_t cur = 0;
    int r = db_pool_get_cursor(ip->db, p->name, &cur);

    if (r < 0)
        return r;
    if (cur > p->last) {
        p->exhausted = true;
        cur = p->last;
    }
    p->frontier = cur;
    uint64_t from = cur > IPAM_REBUILD_MAX ? cur - IPAM_REBUILD_MAX : 0;
    for (uint64_t off = p->exhausted ? p->last + 1 : cur; off > from; off--)
        if (!ipam_reserved(p, off - 1) && !hmap_u64_get(&p->allocated, off - 1))
            ipam_freed_push(p, off - 1);
    return 0;
}

int
ipam_new(db_t *db, const struct ipam_config *cfg, ipam_t **out, char *err, size_t errlen)
{
    ipam_t *ip = xcalloc(1, sizeof(*ip));
    struct load_ctx c = {.ip = ip, .err = err, .errlen = errlen};
    int r;

    ip->db = db;
    ip->max_per_guest = cfg && cfg->max_per_guest ? cfg->max_per_guest : IPAM_DEFAULT_PER_GUEST;
    r = db_pool_list(db, load_pool, &c);
    if (r >= 0 && c.r < 0)
        r = c.r;
    for (size_t i = 0; r >= 0 && i < ip->n_pools; i++) {
        r = db_ip_list(db, ip->pools[i]->name, NULL, load_ip, ip->pools[i]);
        if (r >= 0)
            r = db_hold_list(db, ip->pools[i]->name, NULL, NULL, load_hold, ip->pools[i]);
        if (r >= 0)
            r = load_cursor(ip, ip->pools[i]);
    }
    if (r >= 0)
        r = db_tx_hook_add(db, ipam_tx_hook, ip);
    if (r < 0) {
        if (err && errlen && !err[0])
            seterr(err, errlen, "cannot load IP pools: %s", strerror(-r));
        ipam_destroy(&ip);
        return r;
    }
    *out = ip;
    return 0;
}

void
ipam_destroy(ipam_t **pi)
{
    ipam_t *ip = *pi;

    if (!ip)
        return;
    db_tx_hook_remove(ip->db, ip);
    for (size_t i = 0; i < ip->n_pools; i++)
        pool_free(ip->pools[i]);
    free(ip->pools);
    free(ip->undo);
    free(ip);
    *pi = NULL;
}

/* ---- allocation ---- */

/* Marks off allocated in memory (the db row is written by the caller first). */
void
ipam_take(ipam_t *ip, struct ipool *p, uint64_t off, bool from_frontier, uint64_t prev_frontier,
          bool prev_exhausted)
{
    hmap_u64_put(&p->allocated, off, 1);
    ipam_undo_push(ip, (struct undo){.kind = from_frontier ? UNDO_ALLOC_FRONTIER : UNDO_ALLOC_OTHER,
                                     .pool = p,
                                     .off = off,
                                     .prev_frontier = prev_frontier,
                                     .prev_exhausted = prev_exhausted});
}

/* Finds a free offset: the frontier first, then released ones. */
static int
pool_next(struct ipool *p, uint64_t *off, bool *from_frontier)
{
    while (!p->exhausted) {
        uint64_t o = p->frontier;
        if (o == p->last)
            p->exhausted = true;
        else
            p->frontier++;
        if (!ipam_reserved(p, o) && !hmap_u64_get(&p->allocated, o)) {
            *off = o;
            *from_frontier = true;
            return 0;
        }
    }
    while (p->n_freed) {
        uint64_t o = p->freed[--p->n_freed];
        if (!ipam_reserved(p, o) && !hmap_u64_get(&p->allocated, o)) {
            *off = o;
            *from_frontier = false;
            return 0;
        }
    }
    return -ENOSPC;
}

static int
insert_row(ipam_t *ip, struct ipool *p, uint64_t off, const char *guest_id, struct netaddr *out)
{
    char buf[NETADDR_STRLEN];

    *out = addr_at(p, off);
    netaddr_format(out, false, buf, sizeof(buf));
    return db_ip_insert(ip->db, buf, p->name, guest_id);
}

static int
alloc_auto(ipam_t *ip, const char *guest_id, const struct ipam_request *rq,
           const struct db_label *labels, size_t n_labels, struct netaddr *out, char *err,
           size_t errlen)
{
    static const int order[] = {AF_INET, AF_INET6};
    bool matched = false;

    if (rq->pool && !pool_find(ip, rq->pool)) {
        seterr(err, errlen, "pool \"%s\" does not exist", rq->pool);
        return -ENOENT;
    }
    for (size_t f = 0; f < ARRAY_SIZE(order); f++) {
        if (rq->family != AF_UNSPEC && rq->family != order[f])
            continue;
        for (size_t i = 0; i < ip->n_pools; i++) {
            struct ipool *p = ip->pools[i];

            if (p->dead || p->net.family != order[f] || (rq->pool && strcmp(p->name, rq->pool)) ||
                !selector_matches(p, labels, n_labels))
                continue;
            matched = true;
            /* A conflict in the db means memory missed an allocation (it
             * cannot with one writer, but the primary key is the judge):
             * remember the address as taken and try the next one. */
            for (unsigned tries = 0; tries < 64; tries++) {
                uint64_t prev_frontier = p->frontier, off;
                bool prev_exhausted = p->exhausted, from_frontier;
                int r = pool_next(p, &off, &from_frontier);

                if (r < 0)
                    break;
                r = insert_row(ip, p, off, guest_id, out);
                if (r == -EADDRINUSE) {
                    hmap_u64_put(&p->allocated, off, 1);
                    continue;
                }
                if (r < 0) {
                    /* Put the offset back where it came from. */
                    if (from_frontier) {
                        p->frontier = prev_frontier;
                        p->exhausted = prev_exhausted;
                    } else
                        ipam_freed_push(p, off);
                    seterr(err, errlen, "cannot store the allocation: %s", strerror(-r));
                    return r;
                }
                ipam_take(ip, p, off, from_frontier, prev_frontier, prev_exhausted);
                /* The cursor goes with the allocation (and back with its rollback). */
                r = from_frontier ? db_pool_set_cursor(ip->db, p->name,
                                                       p->exhausted ? p->last + 1 : p->frontier)
                                  : 0;
                if (r < 0)
                    seterr(err, errlen, "cannot store the pool's cursor: %s", strerror(-r));
                return r;
            }
        }
    }
    if (!matched)
        seterr(err, errlen, "no %s pool%s%s%s serves this node",
               rq->family == AF_INET    ? "IPv4"
               : rq->family == AF_INET6 ? "IPv6"
                                        : "IP",
               rq->pool ? " \"" : "", rq->pool ? rq->pool : "", rq->pool ? "\"" : "");
    else
        seterr(err, errlen, "every %s pool%s%s%s serving this node is exhausted",
               rq->family == AF_INET    ? "IPv4"
               : rq->family == AF_INET6 ? "IPv6"
                                        : "IP",
               rq->pool ? " (\"" : "", rq->pool ? rq->pool : "", rq->pool ? "\")" : "");
    return -ENOSPC;
}

static int
alloc_explicit(ipam_t *ip, const char *guest_id, const char *text, const struct db_label *labels,
               size_t n_labels, struct netaddr *out, char *err, size_t errlen)
{
    struct netaddr a;
    struct ipool *p;
    uint64_t off;
    int r;

    if (netaddr_parse_host(text, &a) < 0) {
        seterr(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", text);
        return -EINVAL;
    }
    p = ipam_pool_for_addr(ip, &a);
    if (!p) {
        seterr(err, errlen, "%s is not inside any pool", text);
        return -EADDRNOTAVAIL;
    }
    off = ipam_offset_of(p, &a);
    if (ipam_reserved(p, off)) {
        seterr(err, errlen, "%s is reserved in pool \"%s\" (network, broadcast or gateway)", text,
               p->name);
        return -EADDRNOTAVAIL;
    }
    if (!selector_matches(p, labels, n_labels)) {
        seterr(err, errlen, "pool \"%s\" of %s does not serve this node", p->name, text);
        return -EADDRNOTAVAIL;
    }
    if (hmap_u64_get(&p->allocated, off)) {
        seterr(err, errlen, "%s is allocated already", text);
        return -EADDRINUSE;
    }
    r = insert_row(ip, p, off, guest_id, out);
    if (r == -EADDRINUSE) {
        hmap_u64_put(&p->allocated, off, 1);
        seterr(err, errlen, "%s is allocated already", text);
        return r;
    }
    if (r < 0) {
        seterr(err, errlen, "cannot store the allocation of %s: %s", text, strerror(-r));
        return r;
    }
    ipam_take(ip, p, off, false, 0, false);
    return 0;
}

int
ipam_alloc(ipam_t *ip, const char *guest_id, const struct ipam_request *reqs, size_t n,
           const struct db_label *node_labels, size_t n_node_labels, struct netaddr *out, char *err,
           size_t errlen)
{
    int r, held;

    seterr(err, errlen, "%s", "");
    if (!guest_id || (n && (!reqs || !out)))
        return -EINVAL;
    if (n > ip->max_per_guest) {
        seterr(err, errlen, "%zu addresses asked, at most %u per guest", n, ip->max_per_guest);
        return -E2BIG;
    }
    if (n == 0)
        return 0;
    r = db_begin(ip->db);
    if (r < 0)
        return r;
    held = db_ip_count_guest(ip->db, guest_id);
    if (held < 0) {
        (void)db_rollback(ip->db);
        return held;
    }
    if ((size_t)held + n > ip->max_per_guest) {
        (void)db_rollback(ip->db);
        seterr(err, errlen, "the guest holds %d addresses; %zu more exceed the limit of %u", held,
               n, ip->max_per_guest);
        return -E2BIG;
    }
    for (size_t i = 0; i < n; i++) {
        const struct ipam_request *rq = &reqs[i];

        if (rq->address)
            r = alloc_explicit(ip, guest_id, rq->address, node_labels, n_node_labels, &out[i], err,
                               errlen);
        else if (rq->family != AF_UNSPEC && rq->family != AF_INET && rq->family != AF_INET6) {
            seterr(err, errlen, "unknown address family %d", rq->family);
            r = -EINVAL;
        } else
            r = alloc_auto(ip, guest_id, rq, node_labels, n_node_labels, &out[i], err, errlen);
        if (r < 0) {
            /* The rollback hook puts back every address taken so far. */
            (void)db_rollback(ip->db);
            return r;
        }
    }
    return db_commit(ip->db);
}

static int
release_one(ipam_t *ip, const char *address)
{
    struct netaddr a;
    struct ipool *p;
    uint64_t off;
    int r;

    if (netaddr_parse_host(address, &a) < 0)
        return -EINVAL;
    r = db_ip_delete(ip->db, address);
    if (r < 0)
        return r;
    p = ipam_pool_for_addr(ip, &a);
    if (!p)
        return 0;
    off = ipam_offset_of(p, &a);
    if (hmap_u64_del(&p->allocated, off)) {
        ipam_freed_push(p, off);
        ipam_undo_push(ip, (struct undo){.kind = UNDO_RELEASE, .pool = p, .off = off});
    }
    return 0;
}

int
ipam_release(ipam_t *ip, const char *address)
{
    char buf[NETADDR_STRLEN];
    struct netaddr a;
    int r;

    /* Rows hold the canonical form; accept any spelling of the address. */
    if (!address || netaddr_parse_host(address, &a) < 0)
        return -EINVAL;
    netaddr_format(&a, false, buf, sizeof(buf));
    r = db_begin(ip->db);
    if (r < 0)
        return r;
    r = release_one(ip, buf);
    if (r < 0) {
        (void)db_rollback(ip->db);
        return r;
    }
    return db_commit(ip->db);
}

/* Collected addresses of one guest (at most a few dozen). */
struct addr_list {
    char (*v)[NETADDR_STRLEN]; /* the addresses */
    size_t n;                  /* entries used */
};

static int
collect_ip(void *userdata, const struct db_ip *dip)
{
    struct addr_list *l = userdata;

    l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
    snprintf(l->v[l->n++], NETADDR_STRLEN, "%s", dip->address);
    return 0;
}

int
ipam_release_guest(ipam_t *ip, const char *guest_id)
{
    struct addr_list l = {0};
    int r;

    r = db_begin(ip->db);
    if (r < 0)
        return r;
    r = db_ip_list(ip->db, NULL, guest_id, collect_ip, &l);
    for (size_t i = 0; r >= 0 && i < l.n; i++)
        r = release_one(ip, l.v[i]);
    free(l.v);
    if (r < 0) {
        (void)db_rollback(ip->db);
        return r;
    }
    r = db_commit(ip->db);
    return r < 0 ? r : (int)l.n;
}
