/* IPAM: the addresses orphans hold (ipam.h). A hold is a row of ip_holds
 * and, in memory, an offset taken like an allocation, so auto allocation
 * never hands it out; its end frees it or makes it the adopted guest's. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "common/name.h"
#include "master/ipam_int.h"

/* Frees one held offset in memory (its row is gone). */
static void
unhold_mem(ipam_t *ip, const char *address)
{
    struct netaddr a;
    struct ipool *p;

    if (netaddr_parse_host(address, &a) < 0 || !(p = ipam_pool_for_addr(ip, &a)))
        return;
    uint64_t off = ipam_offset_of(p, &a);
    if (hmap_u64_del(&p->allocated, off)) {
        ipam_freed_push(p, off);
        ipam_undo_push(ip, (struct undo){.kind = UNDO_RELEASE, .pool = p, .off = off});
    }
}

struct hold_list {
    char (*addr)[NETADDR_STRLEN];   /* the addresses */
    char (*pool)[NAME_MAX_LEN + 1]; /* their pools */
    size_t n;                       /* entries used */
};

static int
collect_hold(void *userdata, const struct db_hold *h)
{
    struct hold_list *l = userdata;

    l->addr = xreallocarray(l->addr, l->n + 1, sizeof(*l->addr));
    l->pool = xreallocarray(l->pool, l->n + 1, sizeof(*l->pool));
    snprintf(l->addr[l->n], NETADDR_STRLEN, "%s", h->address);
    snprintf(l->pool[l->n], NAME_MAX_LEN + 1, "%s", h->pool);
    l->n++;
    return 0;
}

static int
collect_alloc(void *userdata, const struct db_ip *dip)
{
    return collect_hold(userdata, &(struct db_hold){.address = dip->address, .pool = dip->pool});
}

static int
tx_end(ipam_t *ip, int r, struct hold_list *l)
{
    free(l->addr);
    free(l->pool);
    if (r < 0) {
        (void)db_rollback(ip->db);
        return r;
    }
    r = db_commit(ip->db);
    return r < 0 ? r : (int)l->n;
}

int
ipam_hold_guest(ipam_t *ip, const char *guest_id, const char *node)
{
    struct hold_list l = {0};
    int r = db_begin(ip->db);

    if (r < 0)
        return r;
    r = db_ip_list(ip->db, NULL, guest_id, collect_alloc, &l);
    /* Memory does not change: the offsets stay taken, now by the hold. */
    for (size_t i = 0; r >= 0 && i < l.n; i++) {
        r = db_ip_delete(ip->db, l.addr[i]);
        if (r >= 0)
            r = db_hold_insert(ip->db, l.addr[i], l.pool[i], node, guest_id);
    }
    return tx_end(ip, r, &l);
}

int
ipam_hold(ipam_t *ip, const char *address, const char *node, const char *guest_id)
{
    char buf[NETADDR_STRLEN];
    struct netaddr a;
    struct ipool *p;

    if (!address || netaddr_parse_host(address, &a) < 0)
        return -EINVAL;
    p = ipam_pool_for_addr(ip, &a);
    if (!p || ipam_reserved(p, ipam_offset_of(p, &a)))
        return -EADDRNOTAVAIL;
    uint64_t off = ipam_offset_of(p, &a);
    if (hmap_u64_get(&p->allocated, off))
        return -EADDRINUSE;
    netaddr_format(&a, false, buf, sizeof(buf));
    int r = db_begin(ip->db);
    if (r < 0)
        return r;
    r = db_hold_insert(ip->db, buf, p->name, node, guest_id);
    if (r < 0) {
        (void)db_rollback(ip->db);
        return r;
    }
    ipam_take(ip, p, off, false, 0, false);
    return db_commit(ip->db);
}

/* Ends an orphan's holds: their addresses become the adopted guest's
 * (adopt) or free again. Returns how many. */
static int
holds_end(ipam_t *ip, const char *node, const char *guest_id, bool adopt)
{
    struct hold_list l = {0};
    int r = db_begin(ip->db);

    if (r < 0)
        return r;
    r = db_hold_list(ip->db, NULL, node, guest_id, collect_hold, &l);
    for (size_t i = 0; r >= 0 && i < l.n; i++) {
        r = db_hold_delete(ip->db, l.addr[i]);
        if (r >= 0 && adopt)
            r = db_ip_insert(ip->db, l.addr[i], l.pool[i], guest_id);
        else if (r >= 0)
            unhold_mem(ip, l.addr[i]);
    }
    return tx_end(ip, r, &l);
}

int
ipam_release_holds(ipam_t *ip, const char *node, const char *guest_id)
{
    return holds_end(ip, node, guest_id, false);
}

int
ipam_adopt_holds(ipam_t *ip, const char *node, const char *guest_id)
{
    return holds_end(ip, node, guest_id, true);
}
