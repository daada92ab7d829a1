/* IP address management: IPv4 and IPv6 pools and the addresses guests hold.
 *
 * A pool is a name, a CIDR, an optional gateway and an optional node-label
 * selector (a pool with a selector serves only nodes whose labels include all
 * of it). Pools may not overlap, so an explicit address belongs to at most
 * one pool. IPv6 pools must be /64 or longer.
 *
 * `auto` allocation gives the next free address of a pool that matches the
 * node: never the network address (and for IPv4 prefixes up to /30 not the
 * broadcast address either), never the gateway, never offset 0 (::0) of an
 * IPv6 pool. Each pool keeps a frontier (every offset past it has never been
 * handed out since start-up) and a stack of released offsets, so allocation
 * is O(1) amortized and never scans the database. The database's primary key
 * on the address is the final guarantee: an address is never on two guests.
 *
 * Addresses an orphan holds (a guest the master forgot with force while its
 * node was unreachable, or one a node reported that the master never knew)
 * are held, not free, until the operator adopts or destroys the orphan: the
 * store keeps them in ip_holds, whose triggers keep an address out of both
 * tables at once. The frontier is stored with the pool (its cursor), and at
 * start-up the offsets below it that are neither allocated nor held are the
 * free set again, so a restart hands out neither a held address nor, first,
 * one released a moment ago.
 *
 * Memory follows the database: every change is written in a (nested)
 * transaction first; ipam registers a transaction hook on the db and undoes
 * its in-memory changes when the transaction that made them rolls back, so a
 * caller may allocate addresses, insert the guest and roll everything back.
 *
 * Owned by the master's loop thread; no locking. The db must outlive ipam. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/netaddr.h"
#include "master/db.h"

typedef struct ipam ipam_t;

#define IPAM_MAX_SELECTOR 16 /* labels in one pool selector */

struct ipam_config {
    uint32_t max_per_guest; /* addresses one guest may hold; 0 = the default 16 */
};

/* Loads every pool and allocation from db. err (may be NULL) gets a sentence
 * when a stored pool cannot be read. Returns 0 or -errno. */
int ipam_new(db_t *db, const struct ipam_config *cfg, ipam_t **out, char *err, size_t errlen);
void ipam_destroy(ipam_t **pi);

struct ipam_pool_def {
    const char *name;                /* a name (name_is_valid) */
    const char *cidr;                /* "10.0.0.0/24", "2001:db8:1::/64"; host bits are cleared */
    const char *gateway;             /* an address inside cidr, NULL = none */
    const struct db_label *selector; /* node labels required, may be NULL */
    size_t n_selector;               /* entries in selector */
};

/* Creates a pool. -EINVAL (err says which field), -EEXIST for a taken name,
 * -EADDRINUSE when it overlaps an existing pool. */
int ipam_pool_create(ipam_t *ip, const struct ipam_pool_def *def, char *err, size_t errlen);
/* -ENOENT, or -EBUSY while any of its addresses is allocated. */
int ipam_pool_delete(ipam_t *ip, const char *name);

struct ipam_pool_info {
    struct netaddr net;     /* the network, host bits clear */
    struct netaddr gateway; /* valid when has_gateway */
    bool has_gateway;       /* a gateway is set */
    uint64_t usable;        /* addresses auto can hand out (saturates at UINT64_MAX) */
    uint64_t allocated;     /* addresses allocated now */
};
int ipam_pool_info(ipam_t *ip, const char *name, struct ipam_pool_info *out);
size_t ipam_pool_count(ipam_t *ip);

struct ipam_request {
    const char *address; /* an explicit address ("10.0.0.7", no prefix), NULL = auto */
    int family;          /* for auto: AF_INET, AF_INET6, or AF_UNSPEC (IPv4 pools first);
                          * matching pools are tried in name order */
    const char *pool;    /* for auto: only this pool, NULL = any matching pool */
};

/* Allocates n addresses to guest_id, all or none, for a guest placed on a
 * node with the given labels (pool selectors are checked against them).
 * out receives n addresses with full-length prefixes. Returns 0 or:
 * -E2BIG (the guest would hold more than max_per_guest), -ENOSPC (no free
 * address in any matching pool), -EADDRNOTAVAIL (an explicit address is in
 * no pool, is reserved, or its pool does not serve the node), -EADDRINUSE (an
 * explicit address is taken), -ENOENT (a named pool does not exist),
 * -EINVAL; err (may be NULL) says which and why. */
int ipam_alloc(ipam_t *ip, const char *guest_id, const struct ipam_request *reqs, size_t n,
               const struct db_label *node_labels, size_t n_node_labels, struct netaddr *out,
               char *err, size_t errlen);
/* Releases one address (-ENOENT when not allocated). */
int ipam_release(ipam_t *ip, const char *address);
/* Releases every address of a guest; returns how many. Call it before
 * db_guest_delete (whose cascade would delete the rows behind ipam's back). */
int ipam_release_guest(ipam_t *ip, const char *guest_id);

/* Moves every address of a guest to holds of the orphan (node, guest_id):
 * its record goes, its copy on node keeps them. Call it before
 * db_guest_delete. Returns how many. */
int ipam_hold_guest(ipam_t *ip, const char *guest_id, const char *node);
/* Holds one address an orphan has: -EADDRINUSE (allocated or held),
 * -EADDRNOTAVAIL (in no pool, or reserved), -EINVAL. */
int ipam_hold(ipam_t *ip, const char *address, const char *node, const char *guest_id);
/* Frees the orphan's holds (destroyed, or gone from its node); returns how many. */
int ipam_release_holds(ipam_t *ip, const char *node, const char *guest_id);
/* Turns the orphan's holds into allocations of the guest with its id (adopted);
 * returns how many. */
int ipam_adopt_holds(ipam_t *ip, const char *node, const char *guest_id);
