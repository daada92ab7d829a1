/* The running master: a single-writer actor on one libuv loop.
 *
 * The loop thread owns the database connection, the scheduler, IPAM, the
 * node registry, the outboxes and every held HTTP request; HTTP handlers run
 * on it too (httpd hands requests over), so nothing here locks.
 *
 * It binds one ROUTER link per endpoint for the node agents, answers hello
 * with welcome and reconciles the node's inventory, echoes heartbeats, turns
 * acks, nacks and events into the guests' observed state, keeps the latest
 * usage sample per guest in memory, and serves the REST API of
 * docs/openapi.yaml (routes and JSON shapes in api.h).
 *
 * Decisions where the contract is silent (docs/api.md repeats them):
 * - DELETE /v1/guests/{name} waits for the node's destroy ack and answers
 *   204 then (the row, its addresses and its scheduler charge go at that
 *   moment). When the node is not connected it answers 503; ?force=true
 *   deletes the record without the node (its disk stays there, and the
 *   node reports it as an orphan when it comes back). A destroy that is not
 *   acked within the wait timeout answers 503 but stays queued: the guest
 *   goes when the node acks it.
 * - start, stop and restart that change the desired state bump the
 *   generation (every change does) and send the spec again with the command.
 * - PATCH that grows a guest's resources re-checks capacity on its node with
 *   every placement filter (so a node that is not ready refuses growth, 422).
 * - exec answers 504 when the node has not answered within the command's
 *   timeout plus 10 s; exec results are kept under the Idempotency-Key.
 *
 * Threading: every function here runs on the loop thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "master/sched.h"

#define MASTER_MAX_BINDS 8

typedef struct master master_t;

struct master_config {
    const char *db_path;        /* SQLite file, or ":memory:" */
    const char *http_addr;      /* listen address, "127.0.0.1" */
    uint16_t http_port;         /* listen port, 7400 */
    const char *api_socket;     /* Unix socket for root on this host, NULL = none */
    bool tls_off;               /* plain HTTP on the TCP listener (insecure) */
    const char *tls_cert;       /* the operator's certificate (PEM file), NULL = self-signed */
    const char *tls_key;        /* its private key (PEM file) */
    const char *tls_dir;        /* where the self-signed pair lives, NULL = the db's dir */
    const char *api_names;      /* more names of the API: Host check, certificate */
    uint32_t http_max_conns;    /* connections per listener; 0 = 1000 */
    uint32_t http_max_per_addr; /* connections from one address; 0 = 64 */
    uint32_t http_idle_s;       /* idle connection timeout; 0 = 30 */
    const char *binds[MASTER_MAX_BINDS]; /* ROUTER endpoints for the node agents */
    unsigned n_binds;                    /* entries in binds */
    const char *key_file;                /* CurveZMQ key pair; NULL = master.key by the db */
    const char *data_address;    /* exports arrive on tcp://this:*; NULL = beside an ipc:// bind */
    bool insecure;               /* tcp:// endpoints in plaintext (logged loudly) */
    const char *web_dir;         /* static files for the web UI, NULL = none */
    const char *templates;       /* the template library, NULL = <db dir>/templates */
    uint32_t heartbeat_ms;       /* asked of the agents in welcome; 0 = 5000 */
    uint32_t usage_ms;           /* usage interval asked of the agents; 0 = 10000 */
    uint32_t suspect_after_ms;   /* silence before suspect; 0 = 15000 */
    uint32_t down_after_ms;      /* silence before down; 0 = 30000 */
    uint32_t resend_ms;          /* first re-send of an unanswered command; 0 = 5000 */
    uint32_t tick_ms;            /* liveness and re-send timer; 0 = 250 */
    uint32_t wait_default_s;     /* ?wait=running without timeout; 0 = 60 */
    uint32_t max_ips;            /* addresses per guest; 0 = 16 */
    struct sched_config sched;   /* placement policy */
    uint32_t events_max_age_s;   /* events older than this are dropped; 0 = 30 days */
    uint32_t events_max_count;   /* at most this many are kept; 0 = 100000 */
    uint32_t traffic_max_rows;   /* rows of one traffic answer; 0 = 200000 */
    uint32_t metrics_guests_max; /* a scrape of more guests has no per-guest series; 0 = 10000 */
    /* The wall clock in ms since the epoch for event times, usage history
     * and retention; NULL = time_real_ms. Tests drive time with it. */
    uint64_t (*clock_ms)(void *userdata);
    void *clock_userdata; /* passed to clock_ms */
};

/* Fills the defaults (sched_config_default included). */
void master_config_default(struct master_config *c);

/* Opens the database, rebuilds the scheduler and IPAM from it, binds the
 * links and starts the HTTP server. Returns 0, or -errno with a sentence in
 * err. */
int master_new(uv_loop_t *loop, const struct master_config *cfg, master_t **out, char *err,
               size_t errlen);
/* Answers every held request with 503, stops the HTTP server and closes
 * the loop handles, so uv_run returns. Idempotent. */
void master_shutdown(master_t *m);
/* Frees everything; call after the loop has finished closing handles.
 * NULL-safe; clears *pm. */
void master_destroy(master_t **pm);
