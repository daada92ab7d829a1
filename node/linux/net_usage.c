/* A guest's network counters for the usage batch (net_usage): the host
 * veth's link counters and the TCP-limit drops from one netlink dump each
 * per batch (nlstat.h), established connections from the guest's snmp MIB
 * held open. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/mtime.h"
#include "node/linux/fdhigh.h"
#include "node/linux/net_internal.h"
#include "node/linux/nftlib.h"
#include "node/linux/proc.h"

/* ---- usage ------------------------------------------------------------ */

int
net_count_established_text(const char *text)
{
    /* "Tcp: RtoAlgorithm ... CurrEstab ...", then "Tcp: 1 200 ... 3 ...". */
    const char *names = strstr(text, "\nTcp: ");
    names = names ? names + 1 : strncmp(text, "Tcp: ", 5) == 0 ? text : NULL;
    if (!names)
        return -EBADMSG;
    const char *values = strchr(names, '\n');
    if (!values || strncmp(++values, "Tcp: ", 5) != 0)
        return -EBADMSG;
    const char *end = strchr(values, '\n');
    size_t col = 0;
    /* The column of CurrEstab among the names, then that column's value. */
    for (const char *p = names + 5; *p && *p != '\n'; col++) {
        size_t len = strcspn(p, " \n");
        if (len == 9 && memcmp(p, "CurrEstab", 9) == 0) {
            const char *v = values + 5;
            for (size_t i = 0; i < col && v && (!end || v < end); i++) {
                v = strchr(v, ' ');
                v = v ? v + 1 : NULL;
            }
            if (!v || (end && v >= end))
                return -EBADMSG;
            int x = atoi(v);
            return x < 0 ? 0 : x;
        }
        p += len;
        p += strspn(p, " ");
    }
    return -EBADMSG;
}

int
net_count_established(const char *path)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[NET_SNMP_MAX];

    if (fd < 0)
        return -errno;
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    if (len < 0)
        return -errno;
    buf[len] = '\0';
    return net_count_established_text(buf);
}

/* Whether pid is still the init that started at start_time. */
static bool
init_is(pid_t pid, uint64_t start_time)
{
    return pid > 0 && proc_is_same(pid, start_time) > 0;
}

/* The guest's count from /proc/<pid>/net/snmp held open across samples (a
 * pread at 0 makes the kernel print it afresh), where an open and a path
 * walk per sample cost more than the reading. The held file is the guest's
 * namespace's whatever becomes of the init, so the init is looked at only
 * to open it. Answered again from the last read while the veth moved no
 * packet (packets, UINT64_MAX when unknown) and the read is younger than
 * NET_SNMP_MAX_AGE_MS. */
static int
established_of(struct net_guest *g, pid_t pid, uint64_t start_time, uint64_t packets)
{
    char buf[NET_SNMP_MAX], path[64];
    uint64_t now = time_mono_ms();

    if (g->snmp_fd >= 0 && (g->snmp_pid != pid || g->snmp_start != start_time)) {
        close(g->snmp_fd);
        g->snmp_fd = -1;
    }
    if (g->snmp_fd >= 0 && g->snmp_ms && packets != UINT64_MAX && packets == g->snmp_packets &&
        now - g->snmp_ms < NET_SNMP_MAX_AGE_MS)
        return (int)g->snmp_estab;
    if (g->snmp_fd < 0) {
        if (!init_is(pid, start_time))
            return -ESRCH;
        snprintf(path, sizeof(path), "/proc/%d/net/snmp", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        g->snmp_fd = fdhigh_move(fd);
        if (g->snmp_fd < 0)
            return g->snmp_fd;
        g->snmp_pid = pid;
        g->snmp_start = start_time;
    }
    g->snmp_ms = 0;
    ssize_t len = pread(g->snmp_fd, buf, sizeof(buf) - 1, 0);
    if (len <= 0) {
        int e = len < 0 ? -errno : -ENODATA;
        close(g->snmp_fd);
        g->snmp_fd = -1;
        return e;
    }
    buf[len] = '\0';
    int c = net_count_established_text(buf);
    if (c >= 0 && packets != UINT64_MAX) {
        g->snmp_ms = now;
        g->snmp_packets = packets;
        g->snmp_estab = (uint32_t)c;
    }
    return c;
}

/* The packets of the inet table's counter name, from a dump of every
 * counter of the table at most NET_COUNTERS_TTL_MS old: one dump per usage
 * batch. 0 or -ENOENT. */
static int
tcp_drops_of(net_t *n, const char *name, uint64_t *packets)
{
    uint64_t now = time_mono_ms();

    if (!n->counters_ms || now - n->counters_ms > NET_COUNTERS_TTL_MS) {
        if (nlstat_nft_counters(n->stat, NLSTAT_INET, "vfleet", &n->counters, &n->n_counters) < 0)
            n->n_counters = 0;
        n->counters_ms = now;
        nftlib_unload_idle(NET_NFTLIB_IDLE_MS);
    }
    const struct nft_counter *c = net_nft_counter_find(n->counters, n->n_counters, name);
    if (!c)
        return -ENOENT;
    *packets = c->packets;
    return 0;
}

/* The counters of link ifindex, from a dump of every link at most
 * NET_COUNTERS_TTL_MS old (one per usage batch), or asked for alone when
 * the link is newer than the dump. 0, -ENODEV or -errno. */
static int
link_stats_of(net_t *n, int ifindex, struct nlstat_link *out)
{
    uint64_t now = time_mono_ms();

    if (!n->links_ms || now - n->links_ms > NET_COUNTERS_TTL_MS) {
        if (nlstat_links(n->stat, &n->links, &n->n_links) < 0)
            n->n_links = 0;
        n->links_ms = now;
    }
    const struct nlstat_link *l = nlstat_link_find(n->links, n->n_links, ifindex);
    if (l) {
        *out = *l;
        return 0;
    }
    return nlstat_link(n->stat, ifindex, out);
}

int
net_usage(net_t *n, const struct guest_spec *spec, pid_t pid, uint64_t start_time,
          struct guest_usage *u)
{
    char ifname[IFNAMSIZ];
    struct nlstat_link l;
    uint64_t packets;

    u->net_rx_bytes = u->net_tx_bytes = u->net_rx_packets = u->net_tx_packets = 0;
    u->tcp_sockets = 0;
    u->failcnt[USAGE_FAIL_TCP] = 0;
    struct net_guest *g = net_guest_find(n, spec->id);
    if (spec->n_addrs == 0 && !g)
        return 0;
    net_ifname(spec->id, ifname);
    /* The index is looked up by name once, then kept (net_apply sets it). */
    int ifindex = g && g->ifindex ? g->ifindex : (int)if_nametoindex(ifname);
    int got = ifindex > 0 ? link_stats_of(n, ifindex, &l) : -ENODEV;
    if (got == -ENODEV && g && g->ifindex) {
        /* Gone or made anew since: by name again. */
        g->ifindex = 0;
        ifindex = (int)if_nametoindex(ifname);
        got = ifindex > 0 ? link_stats_of(n, ifindex, &l) : -ENODEV;
    }
    if (got == 0) {
        /* A guest adopted after an agent restart: hold its namespace from
         * now on, so its last counters outlive its init. */
        if (!g && init_is(pid, start_time)) {
            int fd = net_open_netns(pid);
            if (fd >= 0 && !(g = net_guest_track(n, spec->id, fd)))
                close(fd);
        }
        if (g)
            g->ifindex = ifindex;
        /* The host end sends what the guest receives. */
        u->net_rx_bytes = l.tx_bytes;
        u->net_rx_packets = l.tx_packets;
        u->net_tx_bytes = l.rx_bytes;
        u->net_tx_packets = l.rx_packets;
    }
    if (pid > 0) {
        char path[64];
        int c = -ESRCH;
        if (g) {
            c = established_of(g, pid, start_time,
                               got == 0 ? l.rx_packets + l.tx_packets : UINT64_MAX);
        } else if (init_is(pid, start_time)) {
            snprintf(path, sizeof(path), "/proc/%d/net/snmp", (int)pid);
            c = net_count_established(path);
        }
        if (c > 0)
            u->tcp_sockets = (uint64_t)c;
    }
    char name[32];
    snprintf(name, sizeof(name), "tcp_%s", ifname);
    if (tcp_drops_of(n, name, &packets) == 0)
        u->failcnt[USAGE_FAIL_TCP] = packets;
    return 0;
}
