/* The parts of net.c that net_usage.c shares: the node's guest table and
 * the per-guest state the usage batch reads and keeps. Not for other
 * modules. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "node/linux/net.h"
#include "node/linux/net_nft.h"
#include "node/linux/nlstat.h"

#define NET_MAX_GUESTS 65536 /* guests one node tracks (STORE_MAX_GUESTS) */
/* How old a listing of the nftables counters may be for a usage sample: less
 * than the shortest usage interval (1 s), so each batch reads it once. */
#define NET_COUNTERS_TTL_MS 500
/* libnftables is closed after this long without a script or listing: the
 * usage batch, which reads the counters without it, is when it is looked at.
 * Scripts come in bursts (creates, starts, stops a few hundred ms apart), so
 * a burst keeps it loaded; loading it again after a pause costs ~1.5 ms. */
#define NET_NFTLIB_IDLE_MS 10000
/* A guest's established connections are read again at least this often
 * when its veth moved no packet since the last read (a connection opened or
 * closed over the guest's loopback alone moves none there). */
#define NET_SNMP_MAX_AGE_MS 5000
/* Room for /proc/<pid>/net/snmp (1.3 KiB on 6.x kernels). */
#define NET_SNMP_MAX 8192

/* What net_t keeps about one guest whose network exists. */
struct net_guest {
    char id[SPEC_ID_LEN + 1]; /* the guest */
    int nsfd;                 /* its network namespace, held open */
    /* The SHA-256 of the nftables script last applied, to leave an unchanged
     * rule set alone: the script itself (1.3 KiB and more) was kept per
     * guest. */
    uint8_t nft_sum[32];
    bool nft_applied; /* nft_sum is set */
    /* The addresses of the spec last applied in full (proxy_sync's "old"):
     * only those, where a copy of the whole spec took 17 KiB a guest. */
    struct netaddr *addrs; /* malloc'd, NULL when none */
    uint32_t n_addrs;      /* entries */
    bool applied;          /* a spec was applied in full (addrs is its) */
    int ifindex;           /* the host veth's index, 0 = not known yet */
    int snmp_fd;           /* /proc/<snmp_pid>/net/snmp held for usage, -1 = none */
    pid_t snmp_pid;        /* the init it was opened through */
    uint64_t snmp_start;   /* that init's start time (proc_start_time) */
    /* The last read of the snmp file, answered again while the veth moves
     * no packet (NET_SNMP_MAX_AGE_MS): a connection is made and ended by
     * packets, and the file's printing was a fifth of the agent's work. */
    uint64_t snmp_ms;      /* when read (monotonic ms), 0 = never */
    uint64_t snmp_packets; /* the veth's packets, both ways, then */
    uint32_t snmp_estab;   /* the established connections it said */
};

struct net {
    struct net_config cfg;    /* copy of the configuration */
    bool host_ready;          /* tables, base chains and forwarding are set up */
    struct net_guest *guests; /* guests with a network */
    size_t n_guests;          /* entries used */
    size_t cap_guests;        /* entries allocated */
    /* The inet table's counters, read once for a usage batch (tcp_drops_of). */
    struct nft_counter *counters; /* sorted by name (malloc'd), NULL before the first */
    size_t n_counters;            /* entries */
    uint64_t counters_ms;         /* when read (monotonic ms), 0 never */
    /* Every link's counters, read once for a usage batch (link_stats_of). */
    struct nlstat_link *links; /* sorted by ifindex (malloc'd), NULL before the first */
    size_t n_links;            /* entries */
    uint64_t links_ms;         /* when read (monotonic ms), 0 never */
    nlstat_t *stat;            /* the usage batch's netlink sockets */
    /* The guests' interfaces that had nftables objects before this process
     * made any (an earlier run's, listed once at the first removal of a
     * guest it does not track): only those and the tracked guests can have
     * rules to remove. Sorted; malloc'd. */
    char (*leftover)[SPEC_IFNAME_SIZE];
    size_t n_leftover;    /* entries */
    bool leftover_listed; /* the listing was made */
};

/* The guest's entry, or NULL. The table is sorted by id. */
struct net_guest *net_guest_find(net_t *n, const char *id);
/* Starts holding nsfd for the guest (taking it over); NULL at the cap or
 * when it is tracked already. The table moves: other entries' pointers are
 * stale afterwards. */
struct net_guest *net_guest_track(net_t *n, const char *id, int nsfd);
/* /proc/<pid>/ns/net opened (moved above the descriptors select(2) takes),
 * or -errno. */
int net_open_netns(pid_t pid);
