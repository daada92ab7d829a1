/* The nftables side of guest networking, as nft script text run through
 * libnftables (atomic per script). The builders are pure functions so the
 * rule layout is testable as text; net_nft_run executes a script.
 *
 * Layout, all vfleet-owned (nothing is added to anyone else's tables):
 *   table inet vfleet
 *     map from_guest, to_guest   ifname : verdict, one element per guest veth
 *     chain forward/input/output base chains that jump by veth name
 *     chain postrouting          masquerade toward the uplink (NAT option)
 *     chain g_<if>               per guest: the TCP connection limit
 *     counter tcp_<if>           connections refused at the limit
 *   table netdev vfleet
 *     chain g_<if>               per guest, hooked on its veth's ingress:
 *                                anti-spoofing for ARP, IPv4 and IPv6
 *     counter spoof_<if>         packets dropped as spoofed
 *
 * Returned strings are malloc'd (caller frees); functions are thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/netaddr.h"
#include "proto/spec.h"

#define NET_NFT_MAX_NAT 16 /* source ranges the NAT option takes */

/* The node-wide part: tables, maps and base chains (idempotent), and the
 * postrouting chain replaced with masquerade rules for the given sources
 * leaving through uplink ("" or n_nat 0: no NAT). */
char *net_nft_host_script(const char *uplink, const struct netaddr *nat, size_t n_nat);

/* One guest's rules, replacing what it had: ifname is its host veth, addrs its
 * addresses, tcp_limit the established-connection limit (0 = none). */
char *net_nft_guest_script(const char *ifname, const struct netaddr *addrs, size_t n_addrs,
                           uint64_t tcp_limit);

/* Removal of one guest's inet objects (map elements, chain, counter). Every
 * statement is preceded by an "add" of the same object so the script works
 * whether or not they exist. */
char *net_nft_guest_delete(const char *ifname);
/* Removal of its netdev objects: the hook chain (only when chain_exists: it
 * cannot be added back without the device) and the spoof counter. */
char *net_nft_guest_hook_delete(const char *ifname, bool chain_exists);
/* Whether the guest's netdev hook chain exists: 1 or 0. */
int net_nft_hook_exists(const char *ifname);

/* Runs script atomically (libnftables, loaded on demand: nftlib.h). Returns
 * 0, or -EINVAL with nft's message in err (when err is not NULL), -ELIBACC
 * when the library cannot be loaded. */
int net_nft_run(const char *script, char *err, size_t err_len);

/* Reads the named counter "packets N bytes M" of family/table ("inet" or
 * "netdev", "vfleet"). Returns 0, -ENOENT when it does not exist. */
int net_nft_counter(const char *family, const char *name, uint64_t *packets, uint64_t *bytes);

/* One named counter of a listing. */
struct nft_counter {
    char name[32];    /* e.g. tcp_vf0123456789ab */
    uint64_t packets; /* its packets */
};

/* Every counter of family's vfleet table in one listing (one ruleset dump
 * for all guests), sorted by name for net_nft_counter_find. Returns 0 with
 * *out malloc'd (NULL and 0 when the table has none), or -ENOENT. */
int net_nft_counters(const char *family, struct nft_counter **out, size_t *n);

/* Parses a listing's text as net_nft_counters does (exposed for tests). */
int net_nft_counters_parse(const char *text, struct nft_counter **out, size_t *n);

/* The entry named name of a sorted listing, or NULL. */
const struct nft_counter *net_nft_counter_find(const struct nft_counter *c, size_t n,
                                               const char *name);

/* Whether any object of the guest (chain or counter named after ifname) is
 * in the vfleet tables: 1, 0, or -errno. */
int net_nft_guest_present(const char *ifname);

/* The guest interface names ("vf" and 10 hex digits, spec_ifname) that text,
 * a listing of the vfleet tables, names in its chains and counters ("_" and
 * the name): sorted, each once, malloc'd in *out (NULL when none). Returns
 * their count. */
size_t net_nft_ifnames_parse(const char *text, char (**out)[SPEC_IFNAME_SIZE]);

/* net_nft_ifnames_parse of both vfleet tables as they are now (a table that
 * is not there names none) into *out and *n. Returns 0, or -errno when
 * libnftables could not be used (nothing listed). */
int net_nft_guest_ifnames(char (**out)[SPEC_IFNAME_SIZE], size_t *n);
