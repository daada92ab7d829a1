/* The node agent: the link to the master, the guests' lifecycle, the local
 * store and usage reports, in one libuv loop.
 *
 * The agent turns master commands into backend operations. Backend
 * operations run on libuv's thread pool, one at a time and in arrival order
 * (a lane, node/lane.h), so the loop never blocks on mkfs or mount and the
 * backend never sees two operations at once; exec has a lane of its own.
 * Every command is idempotent on (guest id, generation), is answered with
 * ack or nack, and is recorded in the store before it is acknowledged.
 *
 * Threads: every function here is for the loop thread. The agent owns its
 * backend, store and link; the loop is the caller's and may carry other
 * agents. Its insides are described in node/agent_internal.h. */
#pragma once

#include <stdint.h>
#include <uv.h>

#include "node/backend.h"
#include "proto/msg.h"

typedef struct agent agent_t;

struct agent_config {
    char name[NAME_MAX_LEN + 1];                /* node name, also its ZeroMQ identity */
    char master[256];                           /* master endpoint: tcp://host:port or ipc://path */
    char state_dir[256];                        /* local store, e.g. /var/lib/vfleet */
    uint32_t heartbeat_ms;                      /* heartbeat interval */
    uint32_t usage_ms;                          /* usage sampling interval */
    uint32_t n_labels;                          /* entries in labels */
    struct spec_label labels[PROTO_MAX_LABELS]; /* node labels reported in hello */
    bool memory_store;     /* keep guest records in memory only (store_open_memory): sim nodes */
    bool fake_pids;        /* the backend's init pids are not processes (sim): no pidfd watch */
    char data_address[64]; /* where moving guests' data channel listens ("10.87.255.2"), "" = ipc */
    char vservers[256];    /* where the FreeVPS views are mounted (FUSE), "" = nowhere */
    bool curve;            /* talk CurveZMQ with the keys below (else plaintext) */
    char public_key[41];   /* curve: this node's public key (Z85) */
    char secret_key[41];   /* curve: its secret key */
    char server_key[41];   /* curve: the master's public key, pinned at join */
    char templates[256];   /* where templates from the master go, "" = STATE_DIR/templates */
};

/* Creates the agent on loop (several agents may share one loop: vfleet-node
 * --sim-nodes runs thousands), opens its store, re-adopts the guests it finds
 * there and connects to the master. Takes ownership of backend. Returns NULL
 * and sets *err (-errno) on failure. */
agent_t *agent_new(uv_loop_t *loop, const struct agent_config *cfg, backend_t *backend, int *err);
/* Frees the agent, its backend, store and link; guests keep running. Call
 * it once uv_run has returned after agent_shutdown (queued backend
 * operations keep the loop alive until they are done, and must be).
 * NULL-safe; clears *p. */
void agent_destroy(agent_t **p);
/* Asks the agent to close its handles so uv_run returns (for signals).
 * Operations already queued still run and answer. Idempotent, NULL-safe. */
void agent_shutdown(agent_t *a);
