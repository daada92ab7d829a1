/* The scheduler: picks a node for a new guest from an in-memory index of the
 * cluster's nodes and keeps each node's allocated totals.
 *
 * Filters, in order (a node is counted against the first one that rejects
 * it): state (ready), cordoned, constraints (node labels), anti-affinity
 * group, guest count, cpu, memory, disk, addresses. Capacity is multiplied by
 * the per-resource overcommit ratio. Then a score: binpack prefers the node
 * that is fullest after placement, spread the one with the fewest guests (then
 * the lowest fill); ties go to the smallest node name.
 *
 * Scale: a placement does not look at every node. Nodes sit in a ring in
 * random order; a placement walks the ring from a rotating cursor and stops
 * after K feasible candidates (K = max(2, ceil(log2 N)), as Nomad's limit
 * iterator), or, once at least one fits, after K * walk_budget nodes, keeping
 * the best. Clusters of at most full_scan_below nodes are
 * always scanned completely, so small clusters get exact binpack and spread.
 * When the walk finds fewer than K, it goes on around the whole ring, so a
 * feasible node is never missed; a failed placement has therefore looked at
 * every node, and its per-filter counts are exact. A pinned node is looked up
 * directly. Anti-affinity groups keep the set of nodes they occupy.
 *
 * Memory only: the caller persists placements (db.h). Single-threaded: call
 * from the master's loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/name.h"

typedef struct sched sched_t;

enum sched_algo {
    SCHED_BINPACK, /* fill the fullest node that fits */
    SCHED_SPREAD,  /* fill the emptiest node */
    SCHED_DEFAULT, /* in a request: use the cluster default */
};

enum sched_node_state {
    SCHED_NODE_READY,   /* takes new guests */
    SCHED_NODE_SUSPECT, /* heartbeats late: no new guests */
    SCHED_NODE_DOWN,    /* gone: no new guests */
};

enum sched_filter {
    SCHED_F_STATE,         /* node not ready */
    SCHED_F_CORDONED,      /* node cordoned */
    SCHED_F_CONSTRAINT,    /* a label constraint did not match */
    SCHED_F_TEMPLATE,      /* the node lacks the guest's template */
    SCHED_F_ANTI_AFFINITY, /* the group already has a guest there */
    SCHED_F_GUESTS,        /* the node's max_guests is reached */
    SCHED_F_CPU,           /* not enough CPU (with overcommit) */
    SCHED_F_MEMORY,        /* not enough memory (with overcommit) */
    SCHED_F_DISK,          /* not enough disk (with overcommit) */
    SCHED_F_ADDRS,         /* the node's address limit is reached */
    SCHED__F_MAX,
};

/* "state", "cordoned", "constraint", "template", "anti-affinity", "guests", "cpu", "memory",
 * "disk", "addresses". */
const char *sched_filter_name(enum sched_filter f);
const char *sched_algo_name(enum sched_algo a);
/* "binpack" or "spread": the enum value or -EINVAL. */
int sched_algo_from_string(const char *s);

struct sched_config {
    enum sched_algo algo;     /* cluster default, SCHED_BINPACK or SCHED_SPREAD */
    double overcommit_cpu;    /* capacity multiplier for CPU, >= 1 (e.g. 4) */
    double overcommit_memory; /* capacity multiplier for memory, usually 1 */
    double overcommit_disk;   /* capacity multiplier for disk, usually 1 */
    double weight_cpu;        /* binpack/spread fill weight of CPU */
    double weight_memory;     /* fill weight of memory */
    double weight_disk;       /* fill weight of disk */
    uint32_t default_cpu;     /* millicores charged to a guest without cpu_max (it runs
                                 without a ceiling; this is the share it is assumed to use) */
    uint64_t default_memory;  /* bytes charged to a guest without a memory limit */
    uint64_t default_disk;    /* bytes charged to a guest without a disk limit (the image a
                                 node makes for it then: 10 GiB) */
    uint32_t full_scan_below; /* clusters of at most this many nodes are scanned whole */
    uint32_t sample_min;      /* K never below this (>= 1) */
    uint32_t walk_budget;     /* once a node fits, stop after K * this many nodes looked at */
    uint64_t seed;            /* ring shuffle seed; fixed seed = reproducible placement */
};

/* binpack, cpu x4, memory and disk x1, weights 1/1/1, 100 mcores (0.1 core, Nomad's default
 * reservation) and 256 MiB
 * defaults, full scan up to 64 nodes, K >= 2, walk budget 8 K, seed 1. */
void sched_config_default(struct sched_config *c);

struct sched_resources {
    uint64_t cpu;    /* millicores */
    uint64_t memory; /* bytes */
    uint64_t disk;   /* bytes */
    uint32_t addrs;  /* addresses on the node */
};

struct guest_spec;
/* What a guest spec charges: cpu_max (or cfg default_cpu when unset), the
 * memory limit (or cfg default_memory), the disk size (or cfg default_disk:
 * a node makes an image of that size when none is given) and the address
 * count. */
void sched_resources_from_spec(const struct sched_config *cfg, const struct guest_spec *spec,
                               struct sched_resources *out);

struct sched_capacity {
    uint64_t cpu;        /* millicores, 0 = not reported (not checked) */
    uint64_t memory;     /* bytes, 0 = not reported (not checked) */
    uint64_t disk;       /* bytes, 0 = not reported (not checked) */
    uint32_t max_guests; /* 0 = no limit */
    uint32_t max_addrs;  /* 0 = no limit */
};

struct sched_label {
    const char *key;   /* label key */
    const char *value; /* label value */
};

#define SCHED_MAX_LABELS      32 /* labels per node, constraints per request */
#define SCHED_LABEL_VALUE_MAX 255

struct sched_request {
    struct sched_resources res;            /* what the guest needs */
    const struct sched_label *constraints; /* node labels that must all match */
    size_t n_constraints;                  /* entries in constraints (<= SCHED_MAX_LABELS) */
    const char *pin;                       /* only this node, NULL = any */
    const char *group;                     /* anti-affinity group, NULL = none */
    const char *template_name;             /* a template the node must have, NULL = any */
    bool template_fetch;                   /* a node lacking template_name may take it (the
                                              master's library sends it there) */
    enum sched_algo algo;                  /* SCHED_DEFAULT = the cluster's */
    bool if_ready;                         /* a question: would it fit if every node were
                                              ready? Nothing is charged. */
};

struct sched_near_miss {
    char node[NAME_MAX_LEN + 1]; /* the node that came closest, "" = none */
    enum sched_filter filter;    /* the resource it lacked */
    uint64_t need;               /* what the request needs of it */
    uint64_t free;               /* what the node has free of it (after overcommit) */
};

struct sched_result {
    char node[NAME_MAX_LEN + 1];      /* the chosen node on success */
    double score;                     /* its score (higher is better for the algo) */
    enum sched_algo algo;             /* the algorithm used */
    uint32_t nodes_total;             /* nodes in the index */
    uint32_t nodes_evaluated;         /* nodes the filters looked at */
    uint32_t nodes_feasible;          /* of those, nodes that passed every filter */
    uint32_t rejected[SCHED__F_MAX];  /* nodes rejected, by the first failing filter */
    struct sched_near_miss near_miss; /* on failure: the best node that lacked resources */
};

/* Returns NULL-free (aborts on OOM). cfg may be NULL for the defaults. */
sched_t *sched_new(const struct sched_config *cfg);
void sched_destroy(sched_t **ps);
const struct sched_config *sched_config(const sched_t *s);
uint32_t sched_node_count(const sched_t *s);

/* Adds a node or updates its capacity and labels; a new node starts ready and
 * not cordoned, an existing one keeps its state, cordon and allocations.
 * Returns 0, or -EINVAL for a bad name or too many labels. */
int sched_node_upsert(sched_t *s, const char *name, const struct sched_capacity *cap,
                      const struct sched_label *labels, size_t n_labels);
/* -ENOENT for an unknown node, -EBUSY while guests are allocated on it. */
int sched_node_remove(sched_t *s, const char *name);
int sched_node_set_state(sched_t *s, const char *name, enum sched_node_state state);
int sched_node_cordon(sched_t *s, const char *name, bool cordoned);
#define SCHED_MAX_TEMPLATES 64 /* distinct template names in the cluster */
/* The templates a node has (its hello); until a node said, the template
 * filter does not judge it (a node loaded from the store is not ready
 * anyway). -ENOENT for an unknown node,
 * -E2BIG when the cluster would know more than SCHED_MAX_TEMPLATES names
 * (the names beyond are not recorded). */
int sched_node_templates(sched_t *s, const char *name, const char *const *templates, size_t n);

struct sched_node_info {
    struct sched_capacity cap;   /* as upserted */
    struct sched_resources used; /* allocated by guests */
    uint32_t guests;             /* guests allocated */
    enum sched_node_state state; /* heartbeat state */
    bool cordoned;               /* operator cordon */
};
int sched_node_info(const sched_t *s, const char *name, struct sched_node_info *out);

/* Chooses a node and, on success, charges the request to it (and records the
 * group there). Returns 0 with out->node set; -ENOSPC when no node passes
 * (out explains why); -ENOENT when the pinned node is unknown; -EINVAL for a
 * malformed request. out is always filled. */
int sched_place(sched_t *s, const struct sched_request *req, struct sched_result *out);
/* Charges a guest to a node without any check: rebuilding the index from the
 * database at start-up, or a guest the node reports. -ENOENT for an unknown node. */
int sched_reserve(sched_t *s, const char *node, const struct sched_resources *res,
                  const char *group);
/* Gives back what sched_place or sched_reserve charged (same res and group). */
int sched_release(sched_t *s, const char *node, const struct sched_resources *res,
                  const char *group);

/* The explanation as JSON, for a 422 body:
 * {"algorithm":"spread","nodes_total":N,"nodes_evaluated":N,"nodes_feasible":0,
 *  "filters":[{"filter":"memory","rejected":3},...],
 *  "near_miss":{"node":"h2","resource":"memory","need":...,"free":...}}
 * Only filters that rejected something are listed. Returns a new reference. */
json_t *sched_result_to_json(const struct sched_result *r);
