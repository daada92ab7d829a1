/* The master's state, shared by the modules that make up the master:
 *
 *   master.c      the loop and lifecycle: links, the tick, start and stop
 *   oncommit.c    work that waits for the transaction it depends on
 *   charges.c     scheduler charges that follow transactions
 *   session.c     the node session: frames in, ack, nack, event, usage
 *   trust.c       the node link's trust: keys, ZAP, join tokens, join, revoke
 *   reconcile.c   a node's hello against the store
 *   guests.c      the guest domain: load, change, remove, lifecycle
 *   guest_create.c, guest_addrs.c   the guest domain: create, addresses
 *   waiters.c     held HTTP requests
 *   idem.c        idempotency keys
 *   usage.c       usage samples: the latest, the master's counters, OOM and limit events
 *   history.c     usage history: raw samples, 1-minute and 1-hour rollups, billing
 *   events.c      what happened, stored with the change and published after it
 *   operations.c  long actions (move, drain) driven by the loop; op_move.c, op_drain.c
 *   events_stream.c  the event stream (GET /v1/events), resumable
 *   metrics.c     the Prometheus exposition (GET /metrics)
 *   routes.c      the HTTP edge: the route table and one errno -> status map
 *   http_guests.c, http_nodes.c, http_pools.c   HTTP handlers per resource
 *
 * Everything here runs on the master's loop thread; nothing locks. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "master/db.h"
#include "master/dispatch.h"
#include "common/hmap.h"
#include "master/httpd.h"
#include "master/ipam.h"
#include "master/master.h"
#include "master/registry.h"
#include "master/sched.h"
#include "proto/link.h"
#include "proto/ratelimit.h"
#include "proto/zwatch.h"

#define MASTER_LIST_DEFAULT 500  /* page size when the request names none */
#define MASTER_LIST_MAX     5000 /* largest page */
#define MASTER_BATCH_MAX    1000 /* guests in one batch create */
#define MASTER_MAX_WAIT_S   (HTTPD_MAX_WAIT_S - 10)

typedef struct charges charges_t;
typedef struct oncommit oncommit_t;
struct waiter;
struct spec_cache;
struct events;
struct operations;
struct usage;
struct history;
struct metrics;
struct event_streams;
struct trust;

/* One bound ROUTER endpoint. */
struct mlink {
    link_t *link;       /* the socket */
    zwatch_t watch;     /* its libuv driver */
    master_t *master;   /* back pointer for the callback */
    int index;          /* position in master.links */
    bool watching;      /* watch initialised */
    uint64_t behind_ms; /* its backlog at the last stash_if_behind */
};

struct master {
    uv_loop_t *loop;                      /* the actor's loop */
    struct master_config cfg;             /* as given, defaults filled */
    db_t *db;                             /* durable state */
    sched_t *sched;                       /* placement index */
    charges_t *charges;                   /* sched changes that follow transactions */
    oncommit_t *oncommit;                 /* work waiting for a commit */
    ipam_t *ipam;                         /* addresses */
    registry_t *reg;                      /* nodes */
    dispatch_t *disp;                     /* outboxes */
    httpd_t *httpd;                       /* REST front */
    struct mlink links[MASTER_MAX_BINDS]; /* node links */
    unsigned n_links;                     /* entries in links */
    uv_timer_t tick;                      /* liveness, re-sends, wait timeouts */
    bool tick_init;                       /* tick initialised */
    struct waiter *waiters;               /* held requests */
    struct usage *usage;                  /* usage cache (usage.c) */
    struct history *history;              /* rollup marks (history.c) */
    struct metrics *metrics;              /* counters and histograms (metrics.c) */
    struct event_streams *streams;        /* open event streams (events_stream.c) */
    struct spec_cache *specs;             /* parsed specs by guest id */
    struct events *events;                /* event subscribers */
    struct operations *ops;               /* running operations (operations.h) */
    struct trust *trust;                  /* node keys, join tokens, the ZAP handler */
    struct ratelimit peer_log;            /* warnings about what peers send */
    struct ratelimit batch_log;           /* failed commits of the batch, logged */
    bool stopping;                        /* master_shutdown ran */
    uint64_t next_sweep;                  /* monotonic ms of the next key expiry */
    uint64_t next_poke;                   /* monotonic ms of the next hello request */
    uint64_t behind_ms;                   /* the node links' receive backlog at the last tick */
    uint64_t behind_max_ms;               /* the largest behind_ms since start */
    uint64_t next_keepalive;              /* monotonic ms of the next heartbeat while behind */
    uint64_t stash_ms;                    /* monotonic ms of the last link_stash while behind */
    uint64_t usage_shed;                  /* usage reports skipped as read too late */
    uv_prepare_t flush;                   /* commits the batch before the loop blocks */
    bool flush_init;                      /* flush initialised */
    bool batch_open;                      /* a transaction groups node messages, creates */
    struct shells *shells;                /* interactive sessions (http_ws.c), NULL = none yet */
};

/* Node messages arrive in bursts (acks, events, usage of many guests); each
 * write in its own transaction would be one fsync each. Writes made while
 * handling node messages share one transaction, committed before the loop
 * blocks again; whatever depends on it (a reply) waits for that commit
 * (oncommit.h). HTTP creates join it too (http_edge.c): the creates of
 * parallel clients that the loop takes at once commit together. Any other
 * HTTP request commits it first. batch_commit returns the commit's result. */
void master_batch_begin(master_t *m);
int master_batch_commit(master_t *m);

/* The master's wall clock in ms since the epoch (cfg.clock_ms, which tests
 * replace, or time_real_ms): event times, history and retention. */
uint64_t master_now_ms(master_t *m);
/* Marks a node down now (a revoked one), with its node.state event. */
void master_node_down(master_t *m, const char *node);

/* Whether the node is welcomed, not down and has a link. */
bool master_node_connected(master_t *m, const char *node);
