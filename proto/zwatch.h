/* Drives a link_t from a libuv loop without losing messages.
 *
 * ZMQ_FD is edge-triggered and only says "the socket's state may have
 * changed": any call on the socket (a zmq_send elsewhere in the loop, a
 * ZMQ_EVENTS query) can consume the edge while messages stay queued, and a
 * uv_poll_t alone then sleeps on them forever. So (STYLE.md):
 *   - a uv_poll_t on ZMQ_FD only wakes the loop up;
 *   - a uv_prepare_t asks ZMQ_EVENTS just before the loop blocks and, if a
 *     message is waiting, starts a uv_idle_t so the loop does not block;
 *   - a uv_check_t receives (ZMQ_DONTWAIT) until EAGAIN or the per-iteration
 *     budget is spent, calling the callback once per message, so a flood on
 *     one socket cannot starve timers, signals and child exits;
 *   - the prepare and check handles stop once a prepare finds the socket
 *     empty and nothing touched it meanwhile, and start again when the fd
 *     wakes the loop or any other link call touches the socket
 *     (link_set_touch), so an idle watcher costs no work per iteration and a
 *     process with thousands of links (the simulated nodes) pays only for
 *     those with traffic.
 *
 * A zwatch_t is a plain struct the caller allocates (embed it, and reach the
 * outer object with container_of), libuv style. It borrows the link, which
 * must outlive it until the close callback. Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto/link.h"

#define ZWATCH_BUDGET 64 /* default messages handled per loop iteration */

typedef struct zwatch zwatch_t;

/* One received message. peer is the sender's identity on a router link and ""
 * on a dealer. buf (len bytes) belongs to the watcher and is freed when the
 * callback returns; copy or decode it there. The callback may send on the
 * link, and may call zwatch_stop or zwatch_close (no further callback comes). */
typedef void (*zwatch_cb)(zwatch_t *w, const char *peer, const void *buf, size_t len,
                          void *userdata);
/* Called once every handle is closed; the zwatch_t may be freed from here. */
typedef void (*zwatch_close_cb)(zwatch_t *w);

struct zwatch {
    uv_poll_t poll;           /* on ZMQ_FD: only wakes the loop */
    uv_prepare_t prepare;     /* before blocking: is a message waiting? */
    uv_idle_t idle;           /* active while messages wait, so the loop does not block */
    uv_check_t check;         /* after polling: drains up to budget messages */
    link_t *link;             /* the watched link (borrowed) */
    zwatch_cb cb;             /* per-message callback */
    void *userdata;           /* passed to cb */
    unsigned budget;          /* messages handled per loop iteration, >= 1 */
    bool active;              /* started and not stopped or closing */
    bool hot;                 /* prepare and check run: the socket may hold messages */
    bool closing;             /* zwatch_close was called */
    unsigned open_handles;    /* handles whose close callback is still due */
    zwatch_close_cb close_cb; /* called when open_handles drops to 0 */
    uint64_t n_received;      /* messages delivered to cb */
    uint64_t n_malformed;     /* messages dropped by link_recv as -EBADMSG */
    uint64_t n_errors;        /* other receive errors (logged at debug) */
};

/* Initialises w on loop for link and starts watching (budget ZWATCH_BUDGET).
 * Returns 0, or -errno (from link_fd or uv_poll_init, e.g. -EEXIST when the
 * loop already polls this socket) with no handle initialised, so a failed w
 * needs no zwatch_close. */
int zwatch_init(uv_loop_t *loop, zwatch_t *w, link_t *link, zwatch_cb cb, void *userdata);

/* Sets the per-iteration budget (0 is taken as 1). */
void zwatch_set_budget(zwatch_t *w, unsigned budget);

/* Stops and restarts delivery; messages wait in the socket meanwhile. Both
 * return 0 or -errno (-EINVAL once closing). */
int zwatch_stop(zwatch_t *w);
int zwatch_start(zwatch_t *w);

/* Stops watching and closes the handles; close_cb (may be NULL) runs from the
 * loop once all are closed. The link is not touched. Idempotent. */
void zwatch_close(zwatch_t *w, zwatch_close_cb close_cb);
