/* The guest domain: addresses added to and removed from a guest (guests.h).
 * An address is a resource its node is charged for, like memory; the
 * allocation, the charge and the new generation share one transaction, and
 * the node diffs the running guest's addresses when the apply arrives. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/charges.h"
#include "master/guests.h"

/* The node's labels as ipam wants them (pointers into the registry). */
static size_t
node_labels(master_t *m, const char *node, struct db_label *out)
{
    struct registry_node *rn = registry_get(m->reg, node);
    size_t n = 0;

    for (uint32_t i = 0; rn && i < rn->n_labels; i++)
        out[n++] = (struct db_label){rn->labels[i].key, rn->labels[i].value};
    return n;
}

int
guests_ip_add(master_t *m, const struct caller *c, const char *name, const struct ipam_request *rq,
              char out_id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct db_guest g = {0};
    struct guest_spec spec, next;
    struct db_label nl[PROTO_MAX_LABELS];
    char ierr[200] = "", buf[NETADDR_STRLEN];
    int r = guests_load(m, c, name, NULL, &g, &spec);

    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    strscpy(out_id, g.id, SPEC_ID_LEN + 1);
    if (!g.node) {
        r = guest_fail(e, -ESTALE, NULL, "guest \"%s\" is on no node", name);
        goto out;
    }
    if (spec.n_addrs >= m->cfg.max_ips || spec.n_addrs >= SPEC_MAX_ADDRS) {
        r = guest_fail(e, -EBUSY, "ip", "guest \"%s\" holds %u addresses, the most allowed", name,
                       spec.n_addrs);
        goto out;
    }
    r = db_begin(m->db);
    if (r < 0) {
        r = guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        goto out;
    }
    next = spec;
    r = ipam_alloc(m->ipam, g.id, rq, 1, nl, node_labels(m, g.node, nl), &next.addrs[next.n_addrs],
                   ierr, sizeof(ierr));
    if (r == -ENOSPC)
        r = guest_fail(e, -EADDRINUSE, "ip", "no free address for node %s: %s", g.node, ierr);
    else if (r < 0)
        r = guest_fail(e, r, "ip", "%s", ierr[0] ? ierr : "cannot allocate the address");
    if (r >= 0) {
        next.n_addrs++;
        r = guests_change(m, c, &g, &spec, &next, e);
    }
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r >= 0)
        log_info("guest=%s address %s added (generation %" PRIu64 ")", g.name,
                 netaddr_format(&next.addrs[next.n_addrs - 1], false, buf, sizeof(buf)),
                 g.generation);
    else if (!e->message[0])
        guest_fail(e, r, NULL, "cannot store the address: %s", strerror(-r));
out:
    db_guest_clear(&g);
    return r;
}

int
guests_ip_del(master_t *m, const struct caller *c, const char *name, const char *addr,
              char out_id[SPEC_ID_LEN + 1], struct guest_err *e)
{
    struct db_guest g = {0};
    struct guest_spec spec, next;
    struct netaddr a;
    char buf[NETADDR_STRLEN];
    uint32_t at;
    int r;

    if (netaddr_parse_host(addr, &a) < 0)
        return guest_fail(e, -EINVAL, "ip", "\"%s\" is not an address", addr);
    r = guests_load(m, c, name, NULL, &g, &spec);
    if (r < 0)
        return guest_fail(e, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
    strscpy(out_id, g.id, SPEC_ID_LEN + 1);
    for (at = 0; at < spec.n_addrs && !netaddr_equal(&spec.addrs[at], &a); at++)
        ;
    if (at == spec.n_addrs) {
        r = guest_fail(e, -ENOENT, "ip", "guest \"%s\" has no address %s", name, addr);
        goto out;
    }
    netaddr_format(&a, false, buf, sizeof(buf));
    next = spec;
    memmove(&next.addrs[at], &next.addrs[at + 1], (next.n_addrs - at - 1) * sizeof(next.addrs[0]));
    next.n_addrs--;
    r = db_begin(m->db);
    if (r < 0) {
        r = guest_fail(e, r, NULL, "the store is not writable: %s", db_errmsg(m->db));
        goto out;
    }
    r = ipam_release(m->ipam, buf);
    /* An address in the spec without a row (a store repaired by hand) still
     * leaves the spec. */
    if (r == -ENOENT)
        r = 0;
    if (r >= 0)
        r = guests_change(m, c, &g, &spec, &next, e);
    r = r >= 0 ? db_commit(m->db) : (db_rollback(m->db), r);
    if (r >= 0)
        log_info("guest=%s address %s removed (generation %" PRIu64 ")", g.name, buf, g.generation);
    else if (!e->message[0])
        guest_fail(e, r, NULL, "cannot store the change: %s", strerror(-r));
out:
    db_guest_clear(&g);
    return r;
}
