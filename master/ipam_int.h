/* IPAM's insides, shared by ipam.c (pools, allocation, the undo log) and
 * ipam_holds.c (the addresses orphans hold). Not for use elsewhere:
 * ipam.h is the contract. Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/hmap.h"
#include "master/ipam.h"

/* One pool in memory. Offsets count from the network address. */
struct ipool {
    char *name;                      /* the pool's name, owned */
    struct netaddr net;              /* network, host bits clear */
    struct netaddr gw;               /* gateway, when has_gw */
    bool has_gw;                     /* a gateway is set */
    uint64_t gw_off;                 /* the gateway's offset */
    uint64_t last;                   /* the highest offset (2^host bits - 1) */
    uint64_t frontier;               /* the next never-tried offset */
    bool exhausted;                  /* the frontier has passed last */
    struct hmap_u64 allocated;       /* offsets allocated now */
    uint64_t *freed;                 /* released offsets below the frontier (hints) */
    size_t n_freed;                  /* entries in freed */
    size_t freed_cap;                /* allocated entries of freed */
    uint32_t n_sel;                  /* entries in sel */
    char *sel[IPAM_MAX_SELECTOR][2]; /* selector key, value pairs, owned */
    bool dead;                       /* deleted in a transaction still open */
};

enum undo_kind {
    UNDO_ALLOC_FRONTIER, /* an offset taken at the frontier */
    UNDO_ALLOC_OTHER,    /* an offset taken from freed or explicitly */
    UNDO_RELEASE,        /* an offset given back */
    UNDO_POOL_CREATE,    /* a pool added */
    UNDO_POOL_DELETE,    /* a pool marked dead */
};

/* One in-memory change made inside an open transaction. */
struct undo {
    enum undo_kind kind;    /* what happened */
    struct ipool *pool;     /* to which pool */
    uint64_t off;           /* the offset, for address changes */
    uint64_t prev_frontier; /* the frontier before, for UNDO_ALLOC_FRONTIER */
    bool prev_exhausted;    /* exhausted before, for UNDO_ALLOC_FRONTIER */
};

struct ipam {
    db_t *db;               /* borrowed; outlives ipam */
    uint32_t max_per_guest; /* per-guest address cap */
    struct ipool **pools;   /* n_pools pools, dead ones included until commit */
    size_t n_pools;         /* entries in pools */
    struct undo *undo;      /* changes of the open transaction, oldest first */
    size_t n_undo;          /* entries in undo */
    size_t undo_cap;        /* allocated entries of undo */
    size_t marks[64];       /* undo length when each depth began (index = depth) */
};

/* The offset of a in p (counted from the network address). */
uint64_t ipam_offset_of(const struct ipool *p, const struct netaddr *a);
/* Network, broadcast, gateway, ::0: never handed out. */
bool ipam_reserved(const struct ipool *p, uint64_t off);
/* The live pool that contains a, or NULL. */
struct ipool *ipam_pool_for_addr(ipam_t *ip, const struct netaddr *a);
/* Remembers a released offset below the frontier for reuse. */
void ipam_freed_push(struct ipool *p, uint64_t off);
/* Logs a change of the open transaction for its rollback. */
void ipam_undo_push(ipam_t *ip, struct undo u);
/* Marks off allocated in memory (the db row is written by the caller first). */
void ipam_take(ipam_t *ip, struct ipool *p, uint64_t off, bool from_frontier,
               uint64_t prev_frontier, bool prev_exhausted);
