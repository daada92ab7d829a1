/* A lane: a FIFO of jobs run on libuv's thread pool, one at a time, or, in
 * a lane made wider (lane_set_width), several at a time when their keys
 * differ.
 *
 * A job is a set of callbacks (struct lane_fns) and an argument. start is
 * called on the loop thread when the job leaves the queue, run then on a
 * thread-pool thread, done afterwards on the loop thread. The next job's
 * start comes only after the previous job's done has returned, so within a
 * lane jobs see each other's effects in the order they were pushed (start is
 * where a job takes its snapshot of state that earlier jobs' done changed),
 * and, in a lane of width 1, whatever its jobs touch on the worker side
 * needs no lock among them. Distinct lanes run concurrently (each holds at
 * most its width of thread-pool threads).
 *
 * Keys: a job pushed with a key (lane_push_key: a guest's id) keeps that
 * order only with the jobs of the same key; jobs of distinct keys may run at
 * once, up to the lane's width (1 by default: one at a time, as above). A
 * job pushed without a key (lane_push) is a barrier: it starts once every
 * job pushed before it is done, and no job pushed after it starts before its
 * own done has returned, so it sees the lane as a one-at-a-time lane would.
 * Among the jobs that may start, the earliest pushed starts first.
 *
 * The lane knows nothing of what its jobs do: the node agent uses one lane
 * for guest lifecycle operations (keyed by guest, as wide as its backend
 * allows) and one for exec.
 *
 * Ownership: the argument stays the caller's; the lane only passes it to run
 * and done (done is where the caller usually frees it). The lane owns its
 * queue entries.
 *
 * Threads: every function here is for the loop thread. run must not call
 * them. start must not push; done may push onto any lane, this one included. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct lane lane_t;

/* What a kind of job does; the caller keeps the table (usually static const). */
struct lane_fns {
    void (*start)(void *arg); /* loop thread, as the job leaves the queue; may be NULL */
    void (*run)(void *arg);   /* a thread-pool thread */
    void (*done)(void *arg);  /* loop thread, after run returned */
};

/* A new, idle lane on loop; never NULL (allocation failure aborts). */
lane_t *lane_new(uv_loop_t *loop);

/* Frees an idle lane (lane_pending() == 0: the loop has run every job's done,
 * which uv_run does before it returns, since queued work keeps the loop
 * alive). Destroying a lane that still has jobs is a bug (assert). NULL-safe;
 * clears *p. */
void lane_destroy(lane_t **p);

/* How many keyed jobs may run at once (at least 1; the default). A wider
 * lane holds up to width thread-pool threads. */
void lane_set_width(lane_t *l, unsigned width);

/* Appends a job with no key: a barrier (above). It starts at once (start is called from within
 * lane_push) when the lane is idle. fns must outlive the job; its run and done must not be NULL.
 * Never fails (allocation failure aborts). */
void lane_push(lane_t *l, const struct lane_fns *fns, void *arg);

#define LANE_KEY_MAX 64 /* bytes of a key, with the NUL; a longer key is cut */

/* Appends a job with a key (a non-empty string, copied): ordered only with
 * the jobs of the same key and with barriers; otherwise as lane_push. */
void lane_push_key(lane_t *l, const char *key, const struct lane_fns *fns, void *arg);

/* Jobs pushed whose done has not returned yet (queued, running or finishing). */
size_t lane_pending(const lane_t *l);

/* Jobs whose done has returned since lane_new. */
uint64_t lane_completed(const lane_t *l);
