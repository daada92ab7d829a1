/* Per-node outboxes of master -> node commands, until the node answers.
 *
 * Every command (guest.apply, start, stop, destroy, exec) gets a request id
 * from one master-wide counter and is encoded once; re-sends carry the same
 * id and bytes, which the node's idempotency on (guest, generation) makes
 * harmless. An ack, nack or exec result removes the command whose id it
 * names in `ref`.
 *
 * Re-sending: a command not answered resend_ms after it was sent is sent
 * again, with the interval doubling up to resend_max_ms, for as long as the
 * master thinks the node ready (the ready callback) and unless the node is
 * still answering commands older than it (answers within the last interval,
 * none newer: it is busy with a backlog, and the command waits in it); dispatch_flush re-sends
 * a node's whole outbox at once (after its hello). A send that fails
 * (-EHOSTUNREACH, -EAGAIN: the node is not connected) just leaves the
 * command queued. Exec is the exception: running a command twice is not
 * harmless, so an exec is sent once and only waits for its answer.
 *
 * Coalescing: a new guest.apply (or guest.apply.start) for a guest replaces
 * an unanswered older one of the same type in place (same position, so a
 * start queued behind it still follows it), and a start or stop replaces an
 * unanswered command of the same type for the same guest. The same command
 * queued again (the same bytes, nothing about the guest queued after it: a
 * hello's reconciliation re-queues every unacked create) is not replaced:
 * it keeps its request id and its place, is sent now only if it never went
 * out, and is otherwise re-sent within resend_ms at most.
 *
 * An older node that does not know guest.apply.start (it nacked one
 * unknown_type: dispatch_set_no_apply_start) gets guest.apply then
 * guest.start instead, as two commands.
 *
 * Owned by the master's loop thread; no locking. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

typedef struct dispatch dispatch_t;

/* Puts one encoded frame on the wire to node: 0 or -errno (as link_send). */
typedef int (*dispatch_send_fn)(void *userdata, const char *node, const void *buf, size_t len);
/* Whether node is ready now (re-sends are paused otherwise). */
typedef bool (*dispatch_ready_fn)(void *userdata, const char *node);

struct dispatch_config {
    uint32_t resend_ms;      /* first re-send after this silence; 0 = 5000 */
    uint32_t resend_max_ms;  /* re-send interval cap; 0 = 60000 */
    dispatch_send_fn send;   /* the transport */
    dispatch_ready_fn ready; /* node liveness; NULL = always ready */
    void *userdata;          /* passed to send and ready */
    /* The monotonic clock in ms; NULL = time_mono_ms. */
    uint64_t (*clock_ms)(void *userdata);
    void *clock_userdata; /* passed to clock_ms */
};

/* What an answered command was. */
struct dispatch_done {
    uint64_t id;                 /* its request id */
    enum msg_type type;          /* MSG_GUEST_APPLY, ... */
    char guest[SPEC_ID_LEN + 1]; /* the guest it concerned */
    uint64_t generation;         /* the generation it carried */
    uint64_t queued_ms;          /* the clock when it was queued (its answer's latency) */
};

/* What the outboxes did since start (the master's metrics). */
struct dispatch_stats {
    uint64_t queued;    /* commands queued */
    uint64_t sent;      /* frames put on the wire, re-sends included */
    uint64_t resent;    /* of which re-sends */
    uint64_t postponed; /* re-sends put off: the node was answering older commands */
};

dispatch_t *dispatch_new(const struct dispatch_config *cfg);
void dispatch_get_stats(const dispatch_t *d, struct dispatch_stats *out);
void dispatch_destroy(dispatch_t **pd);

/* Queues m (its id is assigned here; m is not modified otherwise and stays
 * the caller's) for node and tries to send it now. Returns the request id
 * (> 0), or -EINVAL when m cannot be encoded. For MSG_GUEST_EXEC, a failed
 * first send drops the command and returns that -errno. */
int64_t dispatch_queue(dispatch_t *d, const char *node, struct msg *m);

/* Removes the command node's answer names. Returns 0 with *out filled, or
 * -ENOENT when no such command is waiting (a duplicate or coalesced answer). */
int dispatch_complete(dispatch_t *d, const char *node, uint64_t ref, struct dispatch_done *out);

/* Leaves the command node's answer names queued for a later re-send (with
 * backoff): the node said busy. Returns 0 with *out filled, or -ENOENT. */
int dispatch_defer(dispatch_t *d, const char *node, uint64_t ref, struct dispatch_done *out);

/* Drops a waiting command (an exec whose HTTP request timed out). */
void dispatch_cancel(dispatch_t *d, const char *node, uint64_t ref);
/* Drops every waiting command about a guest (it was deleted). */
void dispatch_forget_guest(dispatch_t *d, const char *node, const char *guest_id);
/* Drops the guest's waiting guest.migrate.* commands only (a move that ends
 * or is undone: an exec in flight still gets its answer). */
void dispatch_forget_migrate(dispatch_t *d, const char *node, const char *guest_id);

/* Whether node is one that does not know guest.apply.start (it nacked one
 * unknown_type; a hello clears it, the agent may have been upgraded): from
 * then on dispatch_queue turns each into guest.apply then guest.start. */
void dispatch_set_no_apply_start(dispatch_t *d, const char *node, bool no);

/* Re-sends every waiting command of node now, in queue order. */
void dispatch_flush(dispatch_t *d, const char *node);
/* Re-sends what is due. Returns the number of frames sent. */
size_t dispatch_tick(dispatch_t *d);
/* The same when the master reads its nodes' messages behind_ms late (its
 * receive backlog): a command is due only if its answer would have been
 * read by now - behind_ms, so answers waiting unread do not set off
 * re-sends (which only add duplicate answers behind them). */
size_t dispatch_tick_behind(dispatch_t *d, uint64_t behind_ms);

/* Commands waiting for node's answer; of one type for one guest when
 * type != MSG_INVALID and guest != NULL. */
size_t dispatch_pending(const dispatch_t *d, const char *node, enum msg_type type,
                        const char *guest);
