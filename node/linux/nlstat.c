#include "node/linux/nlstat.h"

#include <endian.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/mem.h"

/* A dump's replies come in messages of at most 32 KiB (the kernel's cap on
 * a dump's buffer, netlink_recvmsg), so one buffer this size takes any. */
#define NLSTAT_BUF 32768

_Static_assert((int)NLSTAT_INET == (int)NFPROTO_INET && (int)NLSTAT_NETDEV == (int)NFPROTO_NETDEV,
               "nftables families");

struct nlstat {
    int route;    /* NETLINK_ROUTE socket, -1 before first use */
    int nf;       /* NETLINK_NETFILTER socket, -1 before first use */
    uint32_t seq; /* the last request's sequence number */
    char *buf;    /* receive buffer, NLSTAT_BUF bytes (owned) */
};

/* A request: the netlink header, the family header and up to two attributes. */
union nlstat_req {
    struct nlmsghdr nh; /* type, flags, sequence, then the body */
    char raw[192];      /* the whole message */
};

nlstat_t *
nlstat_new(void)
{
    nlstat_t *s = xcalloc(1, sizeof(*s));

    s->route = s->nf = -1;
    return s;
}

void
nlstat_free(nlstat_t **p)
{
    nlstat_t *s = *p;

    if (!s)
        return;
    if (s->route >= 0)
        close(s->route);
    if (s->nf >= 0)
        close(s->nf);
    free(s->buf);
    free(s);
    *p = NULL;
}

static int
sock_get(nlstat_t *s, int *fd, int proto)
{
    if (*fd >= 0)
        return *fd;
    int f = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (f < 0)
        return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(f, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(f);
        return e;
    }
    if (!s->buf)
        s->buf = xmalloc(NLSTAT_BUF);
    return *fd = f;
}

/* A failed exchange may leave replies queued: the socket is not reused. */
static void
sock_drop(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void
req_attr(union nlstat_req *r, uint16_t type, const void *data, size_t len)
{
    struct nlattr *a = (struct nlattr *)(r->raw + NLMSG_ALIGN(r->nh.nlmsg_len));

    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    memcpy(r->raw + ((char *)a - r->raw) + NLA_HDRLEN, data, len);
    r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* Called for each reply of the request's type; returns 0 or -errno. */
typedef int (*nlstat_cb)(const struct nlmsghdr *nh, void *arg);

/* Sends r on *fd and feeds each reply to cb until the dump's end (or the one
 * answer of a plain request). 0 or -errno (the kernel's error included). */
static int
exchange(nlstat_t *s, int *fd, union nlstat_req *r, nlstat_cb cb, void *arg)
{
    bool dump = r->nh.nlmsg_flags & NLM_F_DUMP;
    int err = 0;

    r->nh.nlmsg_seq = ++s->seq;
    if (send(*fd, r, r->nh.nlmsg_len, 0) < 0) {
        err = -errno;
        sock_drop(fd);
        return err;
    }
    for (;;) {
        ssize_t got = recv(*fd, s->buf, NLSTAT_BUF, MSG_TRUNC);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 || got > NLSTAT_BUF) {
            err = got < 0 ? -errno : -EMSGSIZE;
            sock_drop(fd);
            return err;
        }
        unsigned int len = (unsigned int)got; /* NLMSG_OK compares it with a __u32 */
        for (struct nlmsghdr *nh = (struct nlmsghdr *)s->buf; NLMSG_OK(nh, len);
             nh = NLMSG_NEXT(nh, len)) {
            if (nh->nlmsg_seq != s->seq)
                continue; /* a late answer to an earlier request */
            if (nh->nlmsg_type == NLMSG_DONE)
                return err;
            if (nh->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(nh);
                if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                    err = -EBADMSG;
                else
                    err = e->error;
                /* A dump's error ends it; a plain request's ack or error too. */
                return err;
            }
            if (!err)
                err = cb(nh, arg);
            if (!dump)
                return err;
        }
    }
}

/* ---- links ------------------------------------------------------------ */

/* The growing array of a links dump. */
struct links_acc {
    struct nlstat_link *l; /* entries (malloc'd) */
    size_t n;              /* used */
    size_t cap;            /* allocated */
};

static int
link_of(const struct nlmsghdr *nh, struct nlstat_link *out)
{
    const struct if_stats_msg *m = NLMSG_DATA(nh);
    size_t hdr = NLMSG_ALIGN(sizeof(*m));

    if (nh->nlmsg_type != RTM_NEWSTATS || nh->nlmsg_len < NLMSG_LENGTH(hdr))
        return -EBADMSG;
    int left = (int)(nh->nlmsg_len - NLMSG_LENGTH(hdr));
    for (const struct rtattr *a = (const struct rtattr *)((const char *)m + hdr); RTA_OK(a, left);
         a = RTA_NEXT(a, left)) {
        if (a->rta_type != IFLA_STATS_LINK_64 || RTA_PAYLOAD(a) < sizeof(struct rtnl_link_stats64))
            continue;
        struct rtnl_link_stats64 st;
        memcpy(&st, RTA_DATA(a), sizeof(st));
        *out = (struct nlstat_link){.ifindex = (int)m->ifindex,
                                    .rx_bytes = st.rx_bytes,
                                    .rx_packets = st.rx_packets,
                                    .tx_bytes = st.tx_bytes,
                                    .tx_packets = st.tx_packets};
        return 1;
    }
    return 0;
}

static int
links_cb(const struct nlmsghdr *nh, void *arg)
{
    struct links_acc *acc = arg;
    struct nlstat_link l;
    int r = link_of(nh, &l);

    if (r <= 0)
        return r;
    if (acc->n == acc->cap)
        acc->l = xreallocarray(acc->l, acc->cap = acc->cap ? 2 * acc->cap : 64, sizeof(*acc->l));
    acc->l[acc->n++] = l;
    return 0;
}

static int
link_cmp(const void *a, const void *b)
{
    int x = ((const struct nlstat_link *)a)->ifindex, y = ((const struct nlstat_link *)b)->ifindex;

    return (x > y) - (x < y);
}

static void
stats_req(union nlstat_req *r, int ifindex)
{
    struct if_stats_msg m = {.family = AF_UNSPEC,
                             .ifindex = (uint32_t)ifindex,
                             .filter_mask = IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64)};

    memset(r, 0, sizeof(*r));
    r->nh.nlmsg_type = RTM_GETSTATS;
    r->nh.nlmsg_flags = NLM_F_REQUEST | (ifindex ? 0 : NLM_F_DUMP);
    memcpy(r->raw + NLMSG_HDRLEN, &m, sizeof(m));
    r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(m));
}

int
nlstat_links(nlstat_t *s, struct nlstat_link **out, size_t *n)
{
    struct links_acc acc = {.l = *out, .cap = *out ? *n : 0};
    union nlstat_req r;
    int fd = sock_get(s, &s->route, NETLINK_ROUTE);

    /* The caller's array is reused when it has room (its count is its size). */
    if (fd < 0)
        return fd;
    stats_req(&r, 0);
    int e = exchange(s, &s->route, &r, links_cb, &acc);
    if (e < 0) {
        *out = acc.l;
        *n = 0;
        return e;
    }
    if (acc.n)
        qsort(acc.l, acc.n, sizeof(*acc.l), link_cmp);
    *out = acc.l;
    *n = acc.n;
    return 0;
}

static int
link_one_cb(const struct nlmsghdr *nh, void *arg)
{
    int r = link_of(nh, arg);

    return r < 0 ? r : r == 0 ? -ENODATA : 0;
}

int
nlstat_link(nlstat_t *s, int ifindex, struct nlstat_link *out)
{
    union nlstat_req r;
    int fd = sock_get(s, &s->route, NETLINK_ROUTE);

    if (fd < 0)
        return fd;
    if (ifindex <= 0)
        return -ENODEV;
    stats_req(&r, ifindex);
    return exchange(s, &s->route, &r, link_one_cb, out);
}

const struct nlstat_link *
nlstat_link_find(const struct nlstat_link *l, size_t n, int ifindex)
{
    struct nlstat_link key = {.ifindex = ifindex};

    return l && n ? bsearch(&key, l, n, sizeof(*l), link_cmp) : NULL;
}

/* ---- nftables counters ------------------------------------------------ */

/* The growing array of a counters dump. */
struct counters_acc {
    struct nft_counter *c; /* entries (malloc'd) */
    size_t n;              /* used */
    size_t cap;            /* allocated */
};

static uint64_t
be64_at(const void *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return be64toh(v);
}

static int
counters_cb(const struct nlmsghdr *nh, void *arg)
{
    struct counters_acc *acc = arg;
    size_t hdr = NLMSG_ALIGN(sizeof(struct nfgenmsg));
    const char *name = NULL;
    size_t name_len = 0;
    uint64_t packets = 0;
    bool have = false;

    if ((nh->nlmsg_type & 0xff) != NFT_MSG_NEWOBJ || nh->nlmsg_len < NLMSG_LENGTH(hdr))
        return -EBADMSG;
    int left = (int)(nh->nlmsg_len - NLMSG_LENGTH(hdr));
    for (const struct nlattr *a = (const struct nlattr *)((const char *)NLMSG_DATA(nh) + hdr);
         left >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= left;
         left -= NLA_ALIGN(a->nla_len),
                             a = (const struct nlattr *)((const char *)a + NLA_ALIGN(a->nla_len))) {
        const char *data = (const char *)a + NLA_HDRLEN;
        int dlen = a->nla_len - NLA_HDRLEN;
        switch (a->nla_type & NLA_TYPE_MASK) {
        case NFTA_OBJ_NAME:
            name = data;
            name_len = strnlen(data, (size_t)dlen);
            break;
        case NFTA_OBJ_DATA:
            for (const struct nlattr *b = (const struct nlattr *)data;
                 dlen >= NLA_HDRLEN && b->nla_len >= NLA_HDRLEN && b->nla_len <= dlen;
                 dlen -= NLA_ALIGN(b->nla_len), b = (const struct nlattr *)((const char *)b +
                                                                            NLA_ALIGN(b->nla_len)))
                if ((b->nla_type & NLA_TYPE_MASK) == NFTA_COUNTER_PACKETS &&
                    b->nla_len >= NLA_HDRLEN + sizeof(uint64_t)) {
                    packets = be64_at((const char *)b + NLA_HDRLEN);
                    have = true;
                }
            break;
        default:
            break;
        }
    }
    if (!name || !have || name_len >= sizeof(acc->c->name))
        return 0; /* not a counter of ours (a longer name is none of vfleet's) */
    if (acc->n == acc->cap)
        acc->c = xreallocarray(acc->c, acc->cap = acc->cap ? 2 * acc->cap : 64, sizeof(*acc->c));
    memcpy(acc->c[acc->n].name, name, name_len);
    acc->c[acc->n].name[name_len] = '\0';
    acc->c[acc->n++].packets = packets;
    return 0;
}

static int
counter_cmp(const void *a, const void *b)
{
    return strcmp(((const struct nft_counter *)a)->name, ((const struct nft_counter *)b)->name);
}

int
nlstat_nft_counters(nlstat_t *s, enum nlstat_family family, const char *table,
                    struct nft_counter **out, size_t *n)
{
    struct counters_acc acc = {.c = *out, .cap = *out ? *n : 0};
    struct nfgenmsg g = {.nfgen_family = (uint8_t)family, .version = NFNETLINK_V0};
    uint32_t type = htobe32(NFT_OBJECT_COUNTER);
    union nlstat_req r;
    int fd = sock_get(s, &s->nf, NETLINK_NETFILTER);

    if (fd < 0)
        return fd;
    if (strlen(table) + 1 > 64)
        return -EINVAL;
    memset(&r, 0, sizeof(r));
    r.nh.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ;
    r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    memcpy(r.raw + NLMSG_HDRLEN, &g, sizeof(g));
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(g));
    req_attr(&r, NFTA_OBJ_TABLE, table, strlen(table) + 1);
    req_attr(&r, NFTA_OBJ_TYPE, &type, sizeof(type));
    int e = exchange(s, &s->nf, &r, counters_cb, &acc);
    if (e == -ENOENT)
        e = 0; /* no such table: no counters */
    if (e < 0) {
        *out = acc.c;
        *n = 0;
        return e;
    }
    if (acc.n)
        qsort(acc.c, acc.n, sizeof(*acc.c), counter_cmp);
    *out = acc.c;
    *n = acc.n;
    return 0;
}
