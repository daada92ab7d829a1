#include "node/linux/net.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <net/if.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/route.h>
#include <netlink/route/tc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/sorted.h"
#include "node/linux/fdhigh.h"
#include "node/linux/nftlib.h"
#include "node/linux/net_internal.h"
#include "node/linux/nlstat.h"

net_t *
net_new(const struct net_config *cfg)
{
    net_t *n = xcalloc(1, sizeof(*n));

    n->cfg = *cfg;
    n->stat = nlstat_new();
    return n;
}

void
net_destroy(net_t **p)
{
    net_t *n = *p;

    if (!n)
        return;
    for (size_t i = 0; i < n->n_guests; i++) {
        close(n->guests[i].nsfd);
        if (n->guests[i].snmp_fd >= 0)
            close(n->guests[i].snmp_fd);
        free(n->guests[i].addrs);
    }
    free(n->guests);
    free(n->leftover);
    free(n->counters);
    free(n->links);
    nlstat_free(&n->stat);
    free(n);
    *p = NULL;
}

/* The name is proto's, so the master reports the interface the node made. */
_Static_assert(IFNAMSIZ == SPEC_IFNAME_SIZE, "a veth name is an interface name");

void
net_ifname(const char *id, char out[IFNAMSIZ])
{
    spec_ifname(id, out);
}

/* The table is kept sorted by id: a usage batch looks every guest up, which
 * a linear search made O(guests²) per interval. Returns the entry, or NULL
 * with *at set to where id belongs. */
static const char *
guest_key(const void *elem)
{
    return ((const struct net_guest *)elem)->id;
}

static struct net_guest *
guest_search(net_t *n, const char *id, size_t *at)
{
    bool found;
    size_t i = sorted_find(n->guests, n->n_guests, sizeof(*n->guests), guest_key, id, &found);

    if (found)
        return &n->guests[i];
    if (at)
        *at = i;
    return NULL;
}

struct net_guest *
net_guest_find(net_t *n, const char *id)
{
    return guest_search(n, id, NULL);
}

/* Starts holding nsfd for the guest (taking it over); NULL at the cap. The
 * table moves: pointers to other entries are stale afterwards. */
struct net_guest *
net_guest_track(net_t *n, const char *id, int nsfd)
{
    size_t at = 0;

    if (n->n_guests >= NET_MAX_GUESTS || guest_search(n, id, &at))
        return NULL;
    if (n->n_guests == n->cap_guests) {
        n->cap_guests = n->cap_guests ? n->cap_guests * 2 : 16;
        n->guests = xreallocarray(n->guests, n->cap_guests, sizeof(*n->guests));
    }
    struct net_guest *g = &n->guests[at];
    memmove(g + 1, g, (n->n_guests++ - at) * sizeof(*g));
    *g = (struct net_guest){.nsfd = nsfd, .snmp_fd = -1};
    strscpy(g->id, id, sizeof(g->id));
    return g;
}

static void
guest_forget(net_t *n, struct net_guest *g)
{
    close(g->nsfd);
    if (g->snmp_fd >= 0)
        close(g->snmp_fd);
    free(g->addrs);
    size_t at = (size_t)(g - n->guests);
    memmove(g, g + 1, (--n->n_guests - at) * sizeof(*g));
}

/* ---- libnl helpers ---------------------------------------------------- */

/* libnl's own error numbers, mapped back to errno for our callers. */
static int
nl_to_errno(int e)
{
    switch (e < 0 ? -e : e) {
    case 0:
        return 0;
    case NLE_EXIST:
        return -EEXIST;
    case NLE_OBJ_NOTFOUND:
        return -ENOENT;
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_PERM:
        return -EPERM;
    case NLE_NODEV:
        return -ENODEV;
    case NLE_BUSY:
        return -EBUSY;
    case NLE_INVAL:
    case NLE_RANGE:
        return -EINVAL;
    case NLE_OPNOTSUPP:
        return -EOPNOTSUPP;
    default:
        return -EIO;
    }
}

static void
sock_freep(struct nl_sock **s)
{
    if (*s)
        nl_socket_free(*s);
}
static void
link_putp(struct rtnl_link **l)
{
    if (*l)
        rtnl_link_put(*l);
}
static void
addr_putp(struct nl_addr **a)
{
    if (*a)
        nl_addr_put(*a);
}
static void
cache_freep(struct nl_cache **c)
{
    if (*c)
        nl_cache_free(*c);
}
static void
raddr_putp(struct rtnl_addr **a)
{
    if (*a)
        rtnl_addr_put(*a);
}
static void
route_putp(struct rtnl_route **r)
{
    if (*r)
        rtnl_route_put(*r);
}
static void
neigh_putp(struct rtnl_neigh **ne)
{
    if (*ne)
        rtnl_neigh_put(*ne);
}
static void
qdisc_putp(struct rtnl_qdisc **q)
{
    if (*q)
        rtnl_qdisc_put(*q);
}

/* A route socket in the calling thread's current network namespace. */
static int
sock_open(struct nl_sock **out)
{
    struct nl_sock *s = nl_socket_alloc();

    if (!s)
        return -ENOMEM;
    int r = nl_connect(s, NETLINK_ROUTE);
    if (r < 0) {
        nl_socket_free(s);
        return nl_to_errno(r);
    }
    *out = s;
    return 0;
}

static struct nl_addr *
nladdr_of(const struct netaddr *a, unsigned prefix)
{
    struct nl_addr *x = nl_addr_build(a->family, a->bytes, a->family == AF_INET ? 4 : 16);
    if (!x)
        abort();
    nl_addr_set_prefixlen(x, (int)prefix);
    return x;
}

static struct nl_addr *
nladdr_parse(const char *text)
{
    struct nl_addr *x = NULL;

    if (nl_addr_parse(text, AF_UNSPEC, &x) < 0)
        abort(); /* our own constants */
    return x;
}

/* Looks a link up by name: 0 with *ifindex, -ENODEV when absent. */
static int
link_index(struct nl_sock *s, const char *name, int *ifindex)
{
    _cleanup_(link_putp) struct rtnl_link *l = NULL;
    int r = rtnl_link_get_kernel(s, 0, name, &l);

    if (r < 0)
        return r == -NLE_OBJ_NOTFOUND || r == -NLE_NODEV ? -ENODEV : nl_to_errno(r);
    *ifindex = rtnl_link_get_ifindex(l);
    return 0;
}

static int
link_up(struct nl_sock *s, const char *name)
{
    _cleanup_(link_putp) struct rtnl_link *l = NULL;
    _cleanup_(link_putp) struct rtnl_link *ch = rtnl_link_alloc();
    int r = rtnl_link_get_kernel(s, 0, name, &l);

    if (r < 0)
        return nl_to_errno(r);
    if (rtnl_link_get_flags(l) & IFF_UP)
        return 0;
    rtnl_link_set_flags(ch, IFF_UP);
    return nl_to_errno(rtnl_link_change(s, l, ch, 0));
}

/* Adds an address to ifindex unless it is there (with NODAD for IPv6, so it
 * is usable at once). */
static int
addr_add(struct nl_sock *s, int ifindex, struct nl_addr *local, int scope)
{
    _cleanup_(raddr_putp) struct rtnl_addr *a = rtnl_addr_alloc();

    rtnl_addr_set_ifindex(a, ifindex);
    rtnl_addr_set_local(a, local);
    rtnl_addr_set_family(a, nl_addr_get_family(local));
    if (scope >= 0)
        rtnl_addr_set_scope(a, scope);
    if (nl_addr_get_family(local) == AF_INET6)
        rtnl_addr_set_flags(a, IFA_F_NODAD);
    int r = rtnl_addr_add(s, a, NLM_F_CREATE | NLM_F_REPLACE);
    return r == -NLE_EXIST ? 0 : nl_to_errno(r);
}

static bool
in_addrs(const struct netaddr *addrs, uint32_t n, const struct netaddr *x)
{
    for (uint32_t i = 0; i < n; i++)
        if (netaddr_equal(&addrs[i], x))
            return true;
    return false;
}

static bool
in_spec(const struct guest_spec *s, struct nl_addr *x)
{
    unsigned len = nl_addr_get_len(x);
    const void *bin = nl_addr_get_binary_addr(x);

    for (uint32_t i = 0; i < s->n_addrs; i++) {
        const struct netaddr *a = &s->addrs[i];
        if (a->family == nl_addr_get_family(x) && len == (a->family == AF_INET ? 4u : 16u) &&
            memcmp(a->bytes, bin, len) == 0)
            return true;
    }
    return false;
}

/* Makes ifindex carry exactly the spec's addresses (link-local ones and the
 * gateway addresses in keep are left alone). */
static int
addrs_sync(struct nl_sock *s, int ifindex, const struct guest_spec *spec)
{
    _cleanup_(cache_freep) struct nl_cache *cache = NULL;
    int r = rtnl_addr_alloc_cache(s, &cache);

    if (r < 0)
        return nl_to_errno(r);
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *)o;
        if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_scope(a) >= RT_SCOPE_LINK)
            continue;
        if (in_spec(spec, rtnl_addr_get_local(a)))
            continue;
        r = rtnl_addr_delete(s, a, 0);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NOADDR)
            return nl_to_errno(r);
    }
    for (uint32_t i = 0; i < spec->n_addrs; i++) {
        const struct netaddr *a = &spec->addrs[i];
        _cleanup_(addr_putp) struct nl_addr *x = nladdr_of(a, a->family == AF_INET ? 32 : 128);
        r = addr_add(s, ifindex, x, RT_SCOPE_UNIVERSE);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Adds (replacing) a route: dst through ifindex, via gw when not NULL. */
static int
route_set(struct nl_sock *s, int ifindex, struct nl_addr *dst, struct nl_addr *gw, bool add)
{
    _cleanup_(route_putp) struct rtnl_route *rt = rtnl_route_alloc();
    struct rtnl_nexthop *nh = rtnl_route_nh_alloc();

    rtnl_route_set_family(rt, (uint8_t)nl_addr_get_family(dst));
    rtnl_route_set_dst(rt, dst);
    rtnl_route_set_table(rt, RT_TABLE_MAIN);
    rtnl_route_set_protocol(rt, RTPROT_STATIC);
    rtnl_route_set_scope(rt, gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
    rtnl_route_nh_set_ifindex(nh, ifindex);
    if (gw)
        rtnl_route_nh_set_gateway(nh, gw);
    rtnl_route_add_nexthop(rt, nh);
    int r = add ? rtnl_route_add(s, rt, NLM_F_CREATE | NLM_F_REPLACE) : rtnl_route_delete(s, rt, 0);
    if (!add && (r == -NLE_OBJ_NOTFOUND || r == -NLE_NOADDR))
        return 0;
    return nl_to_errno(r);
}

/* The host side: exactly one /32 or /128 route per spec address through the
 * veth. Other static host routes on the veth are ours and go. */
static int
host_routes_sync(struct nl_sock *s, int ifindex, const struct guest_spec *spec)
{
    _cleanup_(cache_freep) struct nl_cache *cache = NULL;
    int r = rtnl_route_alloc_cache(s, AF_UNSPEC, 0, &cache);

    if (r < 0)
        return nl_to_errno(r);
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        struct rtnl_route *rt = (struct rtnl_route *)o;
        struct nl_addr *dst = rtnl_route_get_dst(rt);
        struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, 0);
        if (rtnl_route_get_table(rt) != RT_TABLE_MAIN ||
            rtnl_route_get_protocol(rt) != RTPROT_STATIC || !nh || !dst ||
            nl_addr_get_prefixlen(dst) != nl_addr_get_len(dst) * 8)
            continue;
        if (rtnl_route_nh_get_ifindex(nh) != ifindex) {
            /* Another guest's host route to one of our addresses: refused,
             * never moved over (one address is never on two guests). */
            char other[IF_NAMESIZE] = "?", text[64];
            if (!in_spec(spec, dst))
                continue;
            if_indextoname((unsigned)rtnl_route_nh_get_ifindex(nh), other);
            errtext_set("address %s of guest %s (%s) is routed to %s, another guest's interface",
                        nl_addr2str(dst, text, sizeof(text)), spec->name, spec->id, other);
            return -EEXIST;
        }
        if (in_spec(spec, dst))
            continue;
        r = rtnl_route_delete(s, rt, 0);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND)
            return nl_to_errno(r);
    }
    for (uint32_t i = 0; i < spec->n_addrs; i++) {
        const struct netaddr *a = &spec->addrs[i];
        _cleanup_(addr_putp) struct nl_addr *x = nladdr_of(a, a->family == AF_INET ? 32 : 128);
        r = route_set(s, ifindex, x, NULL, true);
        if (r < 0)
            return r;
    }
    return 0;
}

/* A tbf at the root of ifindex for rate bits/s, or no root qdisc for 0. */
static int
rate_set(struct nl_sock *s, int ifindex, uint64_t bps)
{
    _cleanup_(qdisc_putp) struct rtnl_qdisc *q = rtnl_qdisc_alloc();
    int r;

    rtnl_tc_set_ifindex(TC_CAST(q), ifindex);
    rtnl_tc_set_parent(TC_CAST(q), TC_H_ROOT);
    if (!bps) {
        rtnl_tc_set_kind(TC_CAST(q), "tbf");
        r = rtnl_qdisc_delete(s, q);
        /* No root qdisc (the veth's default noqueue) is what we want. */
        return r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_INVAL && r != -NLE_NOADDR
                   ? nl_to_errno(r)
                   : 0;
    }
    uint64_t rate = bps / 8;
    if (rate > INT32_MAX)
        rate = INT32_MAX; /* tbf's rate field is 32 bits of bytes/s: above 17 Gbit/s */
    /* The bucket holds 20 ms of traffic but at least a few full frames, so a
     * bounded transfer measures the rate, not the burst. */
    uint64_t bucket = rate / 50;
    if (bucket < 3 * 1514)
        bucket = 3 * 1514;
    if (bucket > INT32_MAX)
        bucket = INT32_MAX;
    rtnl_tc_set_handle(TC_CAST(q), TC_HANDLE(0x10, 0));
    r = rtnl_tc_set_kind(TC_CAST(q), "tbf");
    if (r < 0)
        return nl_to_errno(r);
    rtnl_qdisc_tbf_set_rate(q, (int)rate, (int)bucket, 0);
    r = rtnl_qdisc_tbf_set_limit_by_latency(q, 200000);
    if (r < 0)
        return nl_to_errno(r);
    return nl_to_errno(rtnl_qdisc_add(s, q, NLM_F_CREATE | NLM_F_REPLACE));
}

/* Adds or removes a proxy NDP entry for addr on ifindex. */
static int
proxy_ndp(struct nl_sock *s, int ifindex, const struct netaddr *addr, bool add)
{
    _cleanup_(neigh_putp) struct rtnl_neigh *ne = rtnl_neigh_alloc();
    _cleanup_(addr_putp) struct nl_addr *x = nladdr_of(addr, 128);

    rtnl_neigh_set_family(ne, AF_INET6);
    rtnl_neigh_set_ifindex(ne, ifindex);
    rtnl_neigh_set_dst(ne, x);
    rtnl_neigh_set_flags(ne, NTF_PROXY);
    int r = add ? rtnl_neigh_add(s, ne, NLM_F_CREATE | NLM_F_REPLACE) : rtnl_neigh_delete(s, ne, 0);
    if (!add && (r == -NLE_OBJ_NOTFOUND || r == -NLE_NOADDR))
        return 0;
    return nl_to_errno(r);
}

/* Brings the uplink's proxy NDP entries for the guest from the addresses it
 * had (old, n_old) to addrs (n_addrs; 0: none). */
static int
proxy_sync(net_t *n, struct nl_sock *s, const struct netaddr *old, uint32_t n_old,
           const struct netaddr *addrs, uint32_t n_addrs)
{
    int ifindex, r;

    if (!n->cfg.proxy_neigh || !n->cfg.uplink[0])
        return 0;
    r = link_index(s, n->cfg.uplink, &ifindex);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < n_old; i++) {
        const struct netaddr *a = &old[i];
        if (a->family != AF_INET6 || in_addrs(addrs, n_addrs, a))
            continue;
        r = proxy_ndp(s, ifindex, a, false);
        if (r < 0)
            return r;
    }
    for (uint32_t i = 0; i < n_addrs; i++) {
        if (addrs[i].family != AF_INET6)
            continue;
        r = proxy_ndp(s, ifindex, &addrs[i], true);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- namespaces ------------------------------------------------------- */

static int
ns_inode(int fd, ino_t *out)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return -errno;
    *out = st.st_ino;
    return 0;
}

/* Runs fn in the network namespace nsfd on this thread and comes back. */
static int
in_netns(int nsfd, int (*fn)(void *), void *arg)
{
    _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);

    if (self < 0)
        return -errno;
    if (setns(nsfd, CLONE_NEWNET) < 0)
        return -errno;
    int r = fn(arg);
    if (setns(self, CLONE_NEWNET) < 0) {
        /* A worker thread left in a guest's namespace would act on the wrong
         * network from now on: that must never go unnoticed. */
        log_error("cannot return to the host network namespace: %m");
        abort();
    }
    return r;
}

/* ---- host set-up ------------------------------------------------------ */

static int
write_sysctl(const char *path, const char *value)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (write(fd, value, strlen(value)) < 0)
        return -errno;
    return 0;
}

static int
host_setup(net_t *n)
{
    char err[512] = "";
    int r;

    if (n->host_ready)
        return 0;
    _cleanup_free_ char *script =
        net_nft_host_script(n->cfg.nat ? n->cfg.uplink : "", n->cfg.nat_sources, n->cfg.n_nat);
    r = net_nft_run(script, err, sizeof(err));
    if (r < 0) {
        log_debug("nft host set-up failed: %s", err);
        return r;
    }
    /* The agent's namespace routes for its guests. */
    r = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1");
    if (r < 0)
        return r;
    r = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1");
    if (r < 0 && r != -ENOENT)
        return r;
    if (n->cfg.proxy_neigh && n->cfg.uplink[0]) {
        char path[128];
        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/proxy_arp", n->cfg.uplink);
        r = write_sysctl(path, "1");
        if (r < 0)
            return r;
        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/proxy_ndp", n->cfg.uplink);
        r = write_sysctl(path, "1");
        if (r < 0 && r != -ENOENT)
            return r;
    }
    n->host_ready = true;
    return 0;
}

/* ---- apply ------------------------------------------------------------ */

struct guest_side {
    const struct guest_spec *spec; /* desired state */
};

/* Runs inside the guest's namespace. */
static int
guest_side_apply(void *arg)
{
    const struct guest_spec *spec = ((struct guest_side *)arg)->spec;
    _cleanup_(sock_freep) struct nl_sock *s = NULL;
    bool v4 = false, v6 = false;
    int ifindex, r;

    r = sock_open(&s);
    if (r < 0)
        return r;
    r = link_up(s, "lo");
    if (r < 0)
        return r;
    r = link_up(s, NET_GUEST_IF);
    if (r < 0)
        return r;
    r = link_index(s, NET_GUEST_IF, &ifindex);
    if (r < 0)
        return r;
    r = addrs_sync(s, ifindex, spec);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < spec->n_addrs; i++) {
        v4 |= spec->addrs[i].family == AF_INET;
        v6 |= spec->addrs[i].family == AF_INET6;
    }
    _cleanup_(addr_putp) struct nl_addr *gw4 = nladdr_parse(NET_GATEWAY4);
    _cleanup_(addr_putp) struct nl_addr *gw4net = nladdr_parse(NET_GATEWAY4 "/32");
    _cleanup_(addr_putp) struct nl_addr *gw6 = nladdr_parse(NET_GATEWAY6);
    _cleanup_(addr_putp) struct nl_addr *def4 = nladdr_parse("0.0.0.0/0");
    _cleanup_(addr_putp) struct nl_addr *def6 = nladdr_parse("::/0");
    r = route_set(s, ifindex, gw4net, NULL, v4);
    if (r >= 0)
        r = route_set(s, ifindex, def4, gw4, v4);
    if (r >= 0)
        r = route_set(s, ifindex, def6, gw6, v6);
    if (r < 0)
        return r;
    return rate_set(s, ifindex, spec->limits.net_out);
}

/* Creates the veth pair with its far end in the guest's namespace. */
static int
veth_create(struct nl_sock *s, const char *ifname, int nsfd)
{
    _cleanup_(link_putp) struct rtnl_link *l = rtnl_link_veth_alloc();

    if (!l)
        return -ENOMEM;
    struct rtnl_link *peer = rtnl_link_veth_get_peer(l);
    rtnl_link_set_name(l, ifname);
    rtnl_link_set_name(peer, NET_GUEST_IF);
    rtnl_link_set_ns_fd(peer, nsfd);
    rtnl_link_put(peer);
    return nl_to_errno(rtnl_link_add(s, l, NLM_F_CREATE | NLM_F_EXCL));
}

int
net_open_netns(pid_t pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    /* Held for the guest's life: above the numbers select(2) can take. */
    return fd < 0 ? -errno : fdhigh_move(fd);
}

int
net_apply(net_t *n, const struct guest_spec *spec, pid_t pid)
{
    char ifname[IFNAMSIZ], err[512] = "";
    _cleanup_(sock_freep) struct nl_sock *s = NULL;
    int ifindex, r;

    if (spec->n_addrs == 0)
        return net_remove(n, spec);
    net_ifname(spec->id, ifname);
    r = host_setup(n);
    if (r < 0)
        return r;

    _cleanup_close_ int nsfd = net_open_netns(pid);
    if (nsfd < 0)
        return nsfd;
    struct net_guest *g = net_guest_find(n, spec->id);
    ino_t held = 0, now = 0;
    if (g && (ns_inode(g->nsfd, &held) < 0 || ns_inode(nsfd, &now) < 0 || held != now)) {
        /* A network left from an earlier run of the guest: start afresh. */
        r = net_remove(n, spec);
        if (r < 0)
            return r;
        g = NULL;
    }
    if (!g) {
        g = net_guest_track(n, spec->id, nsfd);
        if (!g)
            return -ENOSPC;
        nsfd = -1;
    }

    r = sock_open(&s);
    if (r < 0)
        return r;
    r = link_index(s, ifname, &ifindex);
    if (r == -ENODEV) {
        r = veth_create(s, ifname, g->nsfd);
        if (r < 0)
            return r;
        r = link_index(s, ifname, &ifindex);
    }
    if (r < 0)
        return r;
    r = link_up(s, ifname);
    if (r < 0)
        return r;
    _cleanup_(addr_putp) struct nl_addr *gw4 = nladdr_parse(NET_GATEWAY4 "/32");
    _cleanup_(addr_putp) struct nl_addr *gw6 = nladdr_parse(NET_GATEWAY6 "/64");
    r = addr_add(s, ifindex, gw4, RT_SCOPE_LINK);
    if (r >= 0)
        r = addr_add(s, ifindex, gw6, -1);
    if (r < 0)
        return r;

    /* Inside first, so the guest has its addresses before traffic is routed to it. */
    struct guest_side gs = {.spec = spec};
    r = in_netns(g->nsfd, guest_side_apply, &gs);
    if (r < 0)
        return r;
    r = host_routes_sync(s, ifindex, spec);
    if (r < 0)
        return r;
    r = rate_set(s, ifindex, spec->limits.net_in);
    if (r < 0)
        return r;
    r = proxy_sync(n, s, g->addrs, g->n_addrs, spec->addrs, spec->n_addrs);
    if (r < 0)
        return r;
    g->addrs = xreallocarray(g->addrs, spec->n_addrs, sizeof(*g->addrs));
    memcpy(g->addrs, spec->addrs, spec->n_addrs * sizeof(*g->addrs));
    g->n_addrs = spec->n_addrs;
    g->applied = true;
    g->ifindex = ifindex;

    /* Replacing the rules restarts the connection count, so an unchanged
     * rule set is left alone. */
    _cleanup_free_ char *script =
        net_nft_guest_script(ifname, spec->addrs, spec->n_addrs, spec->limits.tcp_sockets);
    uint8_t sum[SHA256_DIGEST_SIZE];
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, strlen(script), (const uint8_t *)script);
    sha256_digest(&h, sizeof(sum), sum);
    if (!g->nft_applied || memcmp(g->nft_sum, sum, sizeof(sum)) != 0) {
        g->nft_applied = false;
        r = net_nft_run(script, err, sizeof(err));
        if (r < 0) {
            log_debug("guest=%s nft rules failed: %s", spec->name, err);
            return r;
        }
        memcpy(g->nft_sum, sum, sizeof(sum));
        g->nft_applied = true;
    }
    return 0;
}

/* ---- remove ----------------------------------------------------------- */

static int
ifname_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Whether the guest named ifname may have nftables objects: tracked (this
 * process applied its network), or one of an earlier run's. Listing the
 * tables at every removal cost two libnftables listings of every guest's
 * rules (~10 ms, under the network lock) in each start of a guest without
 * addresses; they are listed once, and what this process adds is tracked. */
static bool
nft_maybe(net_t *n, const char *id, const char *ifname)
{
    if (net_guest_find(n, id))
        return true;
    /* Without libnftables there is nothing to remove rules with either:
     * the next removal tries the listing again. */
    if (!n->leftover_listed && net_nft_guest_ifnames(&n->leftover, &n->n_leftover) < 0)
        return false;
    n->leftover_listed = true;
    /* (bsearch's array may not be NULL, even when empty) */
    return n->n_leftover &&
           bsearch(ifname, n->leftover, n->n_leftover, sizeof(*n->leftover), ifname_cmp) != NULL;
}

/* ifname's objects are gone: no longer one of the earlier run's. */
static void
leftover_forget(net_t *n, const char *ifname)
{
    for (size_t i = 0; i < n->n_leftover; i++)
        if (!strcmp(n->leftover[i], ifname)) {
            memmove(n->leftover[i], n->leftover[i + 1],
                    (n->n_leftover - i - 1) * sizeof(*n->leftover));
            n->n_leftover--;
            return;
        }
}

int
net_remove(net_t *n, const struct guest_spec *spec)
{
    char ifname[IFNAMSIZ], err[512] = "";
    _cleanup_(sock_freep) struct nl_sock *s = NULL;
    int ifindex, r;

    net_ifname(spec->id, ifname);
    if (nft_maybe(n, spec->id, ifname)) {
        _cleanup_free_ char *del = net_nft_guest_delete(ifname);
        r = net_nft_run(del, err, sizeof(err));
        if (r < 0) {
            log_debug("guest=%s nft removal failed: %s", spec->name, err);
            return r;
        }
        _cleanup_free_ char *hook = net_nft_guest_hook_delete(ifname, net_nft_hook_exists(ifname));
        r = net_nft_run(hook, err, sizeof(err));
        if (r < 0) {
            log_debug("guest=%s nft hook removal failed: %s", spec->name, err);
            return r;
        }
        leftover_forget(n, ifname);
    }
    r = sock_open(&s);
    if (r < 0)
        return r;
    r = link_index(s, ifname, &ifindex);
    if (r == 0) {
        /* Deleting one end deletes the pair; routes and qdiscs go with it. */
        _cleanup_(link_putp) struct rtnl_link *l = rtnl_link_alloc();
        rtnl_link_set_ifindex(l, ifindex);
        rtnl_link_set_name(l, ifname);
        r = rtnl_link_delete(s, l);
        if (r < 0 && r != -NLE_OBJ_NOTFOUND && r != -NLE_NODEV)
            return nl_to_errno(r);
    } else if (r != -ENODEV) {
        return r;
    }
    struct net_guest *g = net_guest_find(n, spec->id);
    /* The addresses it had and those it has now: either may be the newer. */
    if (g && g->applied)
        r = proxy_sync(n, s, g->addrs, g->n_addrs, NULL, 0);
    else
        r = proxy_sync(n, s, spec->addrs, spec->n_addrs, NULL, 0);
    if (r >= 0 && g && g->applied)
        r = proxy_sync(n, s, spec->addrs, spec->n_addrs, NULL, 0);
    if (r < 0)
        return r;
    if (g)
        guest_forget(n, g);
    return 0;
}

uint64_t
net_spoofed(const struct guest_spec *spec)
{
    char ifname[IFNAMSIZ], name[32];
    uint64_t packets = 0, bytes = 0;

    net_ifname(spec->id, ifname);
    snprintf(name, sizeof(name), "spoof_%s", ifname);
    if (net_nft_counter("netdev", name, &packets, &bytes) < 0)
        return 0;
    return packets;
}

int
net_route_present(const struct guest_spec *spec, const struct netaddr *addr)
{
    char ifname[IFNAMSIZ];
    _cleanup_(sock_freep) struct nl_sock *s = NULL;
    _cleanup_(cache_freep) struct nl_cache *cache = NULL;
    int ifindex, r;

    net_ifname(spec->id, ifname);
    r = sock_open(&s);
    if (r < 0)
        return r;
    if (link_index(s, ifname, &ifindex) < 0)
        return 0;
    r = rtnl_route_alloc_cache(s, addr->family, 0, &cache);
    if (r < 0)
        return nl_to_errno(r);
    _cleanup_(addr_putp) struct nl_addr *want = nladdr_of(addr, addr->family == AF_INET ? 32 : 128);
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        struct rtnl_route *rt = (struct rtnl_route *)o;
        struct rtnl_nexthop *nh = rtnl_route_nexthop_n(rt, 0);
        struct nl_addr *dst = rtnl_route_get_dst(rt);
        if (nh && dst && rtnl_route_nh_get_ifindex(nh) == ifindex && nl_addr_cmp(dst, want) == 0)
            return 1;
    }
    return 0;
}
