/* The master's registry of nodes: who said hello, what they offer, and
 * whether they are alive.
 *
 * A node's name is its ZeroMQ identity. hello registers it (capacity,
 * labels, kernel facts) and makes it ready; every later message refreshes a
 * monotonic last-seen time. registry_tick moves a silent node to suspect
 * after suspect_after_ms and to down after down_after_ms, silence being
 * counted only up to what the master has read (its receive backlog). Every change is
 * persisted (db_node_upsert, db_node_set_state, db_node_set_cordoned) and
 * mirrored into the scheduler (sched_node_upsert, sched_node_set_state,
 * sched_node_cordon), so placement only ever sees ready nodes.
 *
 * When a node goes down every guest placed on it becomes observed `unknown`
 * in the database. Nothing is ever re-created elsewhere: guests have local
 * disks and fixed addresses. A down node must say hello again (the master
 * then reconciles its inventory) before it is ready again; a suspect node
 * becomes ready on its next message.
 *
 * Nodes loaded from the database at start-up start down (sched included)
 * until they say hello to this master.
 *
 * Owned by the master's loop thread; no locking. db and sched must outlive
 * the registry. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "master/db.h"
#include "master/sched.h"
#include "proto/msg.h"

typedef struct registry registry_t;

struct registry_config {
    uint32_t suspect_after_ms; /* silence before suspect; 0 = 15000 */
    uint32_t down_after_ms;    /* silence before down; 0 = 30000 (kept > suspect_after_ms) */
    /* The monotonic clock in ms; NULL = time_mono_ms. Tests inject a fake one. */
    uint64_t (*clock_ms)(void *userdata);
    void *clock_userdata; /* passed to clock_ms */
};

/* One node as the master knows it. Read-only for callers, except `link`
 * and `orphans`, which belong to the master. */
struct registry_node {
    char name[NAME_MAX_LEN + 1];                /* the node's name and ZeroMQ identity */
    char kernel[65];                            /* uname release from hello */
    char cgroup[8];                             /* "v1", "v2", "hybrid" */
    char backend[16];                           /* "linux", "sim" */
    char agent_version[32];                     /* the agent's version */
    struct sched_capacity cap;                  /* capacity from hello */
    uint32_t n_labels;                          /* entries in labels */
    struct spec_label labels[PROTO_MAX_LABELS]; /* node labels from its config */
    bool cordoned;                              /* operator cordon */
    enum db_node_state state;                   /* ready, suspect or down */
    bool welcomed;                              /* said hello to this master since start */
    uint64_t last_seen_mono;                    /* monotonic ms of the last message */
    uint64_t last_seen_real;                    /* wall clock ms of the last message, 0 = never */
    int link;                                   /* master: the link it talks through, -1 none */
    json_t *orphans;                            /* master: guests it has that we do not know */
    char *templates;                            /* templates from hello, comma-joined, owned */
    struct msg_template *template_info;         /* the same with size and checksum, owned */
    uint32_t n_template_info;                   /* entries in template_info */
    uint64_t last_msg_id; /* master: highest request id heard from it (a lower hello is stale) */
    uint32_t leftovers;   /* guests' leftovers in its state directory, from its last hello */
    bool has_leftovers;   /* leftovers is known (an older node does not send it) */
};

/* Called by registry_tick after a node changed state (old -> new). */
typedef void (*registry_change_cb)(void *userdata, struct registry_node *n,
                                   enum db_node_state old_state);

/* Creates the registry and loads every stored node (as down). Returns 0 or
 * -errno from the database. */
int registry_new(db_t *db, sched_t *sched, const struct registry_config *cfg, registry_t **out);
void registry_destroy(registry_t **pr);

/* Registers or refreshes a node from its hello: persisted, in sched, ready,
 * welcomed. Returns 0, -EINVAL (bad name or labels) or -errno from the db.
 * *out (may be NULL) points at the node. */
int registry_hello(registry_t *r, const struct msg_hello *h, struct registry_node **out);

/* Any other message from name. Returns 1 when the node is known and
 * welcomed (last-seen refreshed; a suspect node is ready again), 0 when the
 * node must say hello first (unknown, never welcomed by this master, or
 * down), or -errno from the db. */
int registry_seen(registry_t *r, const char *name);

/* Applies the thresholds to every node; cb (may be NULL) hears of each
 * change. behind_ms is how far behind the master is in reading what the
 * nodes sent (link_backlog_ms): silence is counted up to now - behind_ms,
 * so a master whose own loop falls behind does not take its backlog for
 * silent nodes. Returns the number of nodes that changed state. */
int registry_tick(registry_t *r, uint64_t behind_ms, registry_change_cb cb, void *userdata);

/* Marks a node down now, as if it had been silent (a revoked node): it
 * must say hello again. cb as for registry_tick. -ENOENT for an unknown
 * node. */
int registry_down(registry_t *r, const char *name, registry_change_cb cb, void *userdata);

/* Persists and mirrors a cordon. -ENOENT for an unknown node. */
int registry_cordon(registry_t *r, const char *name, bool cordoned);

/* A template the node received (a fetch from the library, op_template.c):
 * added to (or updated in) what its hello said, and the scheduler's view.
 * -ENOENT for an unknown node, -E2BIG when it has PROTO_MAX_TEMPLATES. */
int registry_node_template_add(registry_t *r, const char *name, const struct msg_template *t);
/* Whether the node reported template tmpl (hello or a fetch). */
bool registry_node_has_template(const registry_t *r, const char *name, const char *tmpl);

/* The node, or NULL. Valid until the registry is destroyed. */
struct registry_node *registry_get(const registry_t *r, const char *name);
/* Nodes known, in no particular order: index 0..registry_count()-1. */
size_t registry_count(const registry_t *r);
struct registry_node *registry_at(const registry_t *r, size_t i);
