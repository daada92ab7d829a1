/* An outbox: frames to the master that must not be lost (events, exec
 * results, hello), kept until the master acknowledges them by request id and
 * re-sent until then, in the order they were pushed. It knows nothing of
 * guests or of the messages' content: a frame is bytes and an id.
 *
 * Sending: a frame goes out at once when it can. A send that fails (the
 * link is down: -EAGAIN with ZMQ_IMMEDIATE; or the master pushes back: its
 * queue and ours are full) stops the round, so frames never overtake each
 * other, and is tried again after retry_ms, doubling up to retry_max_ms
 * while sends keep failing. A frame that went
 * out but is not acknowledged is sent again after resend_ms, the interval
 * doubling up to resend_max_ms: a frame handed to a connection that then
 * broke is lost by ZeroMQ, and only a re-send brings it.
 *
 * The lead frame (hello) goes before every other frame and is the only one
 * sent while the outbox is closed (before the master's welcome); a new lead
 * replaces the old one. Opening the outbox sends every waiting frame again
 * at once (the master may never have seen them).
 *
 * Answers (acks and nacks of the master's commands) go through it too, as
 * frames sent once: in order with the rest, kept while sends fail, and
 * forgotten once sent (the master does not acknowledge an answer; a lost
 * one is covered by its re-send of the command). So a master that pushes
 * back delays answers but does not make the node drop them.
 *
 * Bounds: at most max frames; beyond, the oldest non-lead frame is dropped
 * and counted (outbox_dropped), the one place a frame is lost.
 *
 * Every timeout uses the loop's monotonic clock (uv_now). Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct outbox outbox_t;

/* Puts one frame on the wire: 0 or -errno (as link_send). */
typedef int (*outbox_send_fn)(void *userdata, const void *buf, size_t len);

struct outbox_config {
    uint32_t retry_ms;      /* after a failed send; 0 = 100 */
    uint32_t retry_max_ms;  /* the retry delay doubles up to this; 0 = 1000 */
    uint32_t resend_ms;     /* first re-send of an unacknowledged frame; 0 = 2000 */
    uint32_t resend_max_ms; /* re-send interval cap; 0 = 30000 */
    size_t max;             /* frames kept; 0 = 16384 */
    outbox_send_fn send;    /* the transport */
    void *userdata;         /* passed to send */
};

/* A new, empty, closed outbox on loop; never NULL. */
outbox_t *outbox_new(uv_loop_t *loop, const struct outbox_config *cfg);
/* Closes the timer handle (so uv_run can return); frames stay. Idempotent. */
void outbox_close(outbox_t *o);
/* Frees the outbox and its frames; call after the loop ran the close
 * callback (after uv_run returned). NULL-safe; clears *p. */
void outbox_destroy(outbox_t **p);

/* Appends the frame buf (len bytes, malloc'd: the outbox takes it) with
 * request id id, and sends what it can. lead: the frame goes first, is sent
 * while closed, and replaces a lead frame still waiting. */
void outbox_push(outbox_t *o, uint64_t id, bool lead, void *buf, size_t len);
/* Appends an answer (ack, nack) to the command key (its request id): sent
 * once, in order, kept while sends fail; an unsent answer to the same key
 * is replaced by this one in its place. Takes buf. */
void outbox_push_once(outbox_t *o, uint64_t key, void *buf, size_t len);
/* Whether a failed send waits for its retry (the link is down or full):
 * what is sent past the outbox now would overtake what waits in it. */
bool outbox_blocked(const outbox_t *o);
/* Opens (welcome: every frame may go, the waiting ones again now) or closes
 * (the link is being re-established: only the lead goes). */
void outbox_open(outbox_t *o, bool open);
/* Drops the frame with request id id (never an answer): true when one was
 * waiting. */
bool outbox_ack(outbox_t *o, uint64_t id);
/* Sends what is due now (before a message that must not overtake them). */
void outbox_pump(outbox_t *o);

/* Frames waiting for their acknowledgement. */
size_t outbox_len(const outbox_t *o);
/* Frames dropped because the outbox was full. */
uint64_t outbox_dropped(const outbox_t *o);
