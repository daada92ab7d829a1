/* Guest networking on the linux backend: the host is the router.
 *
 * Per guest with at least one address: a veth pair, the host end named
 * net_ifname(id) in the agent's network namespace, the other end "eth0" in
 * the guest's. The host end carries 169.254.0.1/32 and fe80::1/64, the
 * guests' gateways; /32 and /128 host routes send each guest address to its
 * veth. Inside, eth0 holds the addresses (host prefixes) with default routes
 * through those gateways, so guests share no layer-2 segment.
 *
 * Policy lives on the host side where the guest cannot reach it:
 *   - inbound rate: tbf on the host veth's egress;
 *   - outbound rate: tbf on the guest's eth0 egress, set from the host. A
 *     guest cannot change it without CAP_NET_ADMIN, which the default
 *     bounding set does not hold (a spec that adds net_admin gives that up);
 *   - anti-spoofing and the TCP connection limit: nftables (net_nft.h);
 *   - traffic counters: the host veth's link statistics.
 * A guest without addresses has no network besides loopback, and nothing is
 * changed on the host for it.
 *
 * Options (net_config): NAT masquerades guest sources in private ranges
 * leaving through the uplink; proxy_neigh makes guests reachable on the
 * uplink's own segment (proxy_arp on the uplink, which answers for every
 * address routed elsewhere, and one proxy NDP entry per guest IPv6 address,
 * as the kernel answers NDP only for listed addresses).
 *
 * A net_t holds, per guest, a descriptor of the guest's network namespace
 * taken when its network was applied: it keeps the namespace, and with it the
 * veth and its counters, alive after the guest's init exits, so the agent can
 * read the final counters before net_remove releases it.
 *
 * Threads: a net_t is used from one thread at a time. net_apply enters the
 * guest's namespace with setns on the calling thread and always returns to the
 * namespace it started in. Returns are 0 or -errno. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/netaddr.h"
#include "node/linux/net_nft.h"
#include "proto/spec.h"
#include "proto/usage.h"

#define NET_GATEWAY4 "169.254.0.1" /* guests' IPv4 gateway, on every host veth */
#define NET_GATEWAY6 "fe80::1"     /* guests' IPv6 gateway, on every host veth */
#define NET_GUEST_IF "eth0"        /* the guest's end of its veth */

typedef struct net net_t;

struct net_config {
    char uplink[IFNAMSIZ];                       /* the host's outside interface, "" = none */
    bool nat;                                    /* masquerade nat sources leaving through uplink */
    uint32_t n_nat;                              /* entries used in nat_sources */
    struct netaddr nat_sources[NET_NFT_MAX_NAT]; /* guest source ranges that are NATed */
    bool proxy_neigh; /* answer ARP/NDP on uplink for guest addresses (off by default) */
};

/* Creates the networking state; touches nothing on the host until the first
 * guest with addresses is applied. */
net_t *net_new(const struct net_config *cfg);
/* Frees it (held namespace descriptors are closed); NULL-safe, clears *n. */
void net_destroy(net_t **n);

/* The host veth's name for a guest id: "vf" and the first 10 hex digits of
 * the id (dashes skipped), lower case; always shorter than IFNAMSIZ. */
void net_ifname(const char *id, char out[IFNAMSIZ]);

/* Brings the guest's network to the spec, whose init runs as pid: creates the
 * veth when absent, then adds and removes addresses and routes, sets or
 * clears the rate limits and replaces its nftables rules. Idempotent. */
int net_apply(net_t *n, const struct guest_spec *s, pid_t pid);

/* Removes everything of the guest's network on the host (veth, with it its
 * routes and qdiscs, and the nftables objects) and releases the held
 * namespace. Idempotent. */
int net_remove(net_t *n, const struct guest_spec *s);

/* Fills u's network fields with the current values: bytes and packets from
 * the host veth (0 when it does not exist), established TCP connections in
 * the namespace of the guest's init pid, which started at start_time
 * (proc_start_time; 0 when pid is 0 or not that process), and connections
 * refused at the limit into failcnt[USAGE_FAIL_TCP]. The init is looked at
 * only when a file is opened through it. Never fails for an absent
 * network. */
int net_usage(net_t *n, const struct guest_spec *s, pid_t pid, uint64_t start_time,
              struct guest_usage *u);

/* Packets the anti-spoofing filter dropped for the guest (0 when none). */
uint64_t net_spoofed(const struct guest_spec *s);

/* Whether the host route for addr through the guest's veth is in the kernel:
 * 1, 0, or -errno. */
int net_route_present(const struct guest_spec *s, const struct netaddr *addr);

/* The TCP connections established (or closed by the peer, not yet by us) in
 * a network namespace: CurrEstab of its /proc/PID/net/snmp-format file at
 * path (one MIB for IPv4 and IPv6, kept by the kernel: O(1), where walking
 * /proc/PID/net/tcp walks the host's whole TCP hash table, every namespace's
 * buckets, to find the guest's few). Returns the count, or -errno. */
int net_count_established(const char *path);
/* The same from the file's text (NUL-terminated). */
int net_count_established_text(const char *text);
