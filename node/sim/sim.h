/* The `sim` backend: struct backend_ops entirely in memory, for agent tests
 * and for scale tests that run many simulated nodes in one process. No
 * threads, fds or processes per guest: a guest is a table entry with a fake
 * pid and usage numbers computed from the clock when asked.
 *
 * Semantics follow node/backend.h:
 * - every operation is idempotent (create of an existing guest, start of a
 *   running one, stop of a stopped one, destroy of an absent one succeed);
 * - an unknown guest is -ENOENT, except for destroy (0) and state (GUEST_ABSENT);
 * - state reports GUEST_STOPPED for a running guest when rt names another init
 *   (pid or start time differ): the init the caller knew is gone; start then
 *   returns 0 with the current runtime, as for any running guest;
 * - the lock flag refuses a new start and exec with -ENOLCK; private refuses
 *   exec with -EACCES; exec into a guest that is not running is -ESRCH;
 * - destroy of a running guest is -EBUSY;
 * - lowering disk or inodes below what the guest uses is -ENOSPC, as are
 *   guests beyond max_guests and disk limits summing beyond the node's disk
 *   (memory and CPU may be overcommitted, as on a real node);
 * - a spec that fails spec_validate is -EINVAL.
 *
 * Usage is synthetic and deterministic given the seed, the clock and the
 * sequence of calls: cpu_ns grows while running at a per-guest fraction of
 * cpu_max (one core when unset); memory is a random walk below the memory
 * limit (256 MiB when unset), counting a memory failcnt when it hits it; disk
 * use is a per-guest fraction of the disk limit fixed at create; I/O and
 * network counters grow with running time, network below net_in/net_out.
 * Each guest's random stream is seeded from the seed and its id, so it does
 * not depend on the order guests were created in.
 *
 * Exec: stdout is the argv joined by spaces and a newline, exit 0; a command
 * whose argv[0] is "false" (or ends in "/false") exits 1 with no output.
 *
 * Console: one line "vfleet sim guest NAME: up (start N)" per start since
 * create, made when read (no memory per guest); -ENOENT before the first
 * start. The uid block (struct guest_ids) is accepted and ignored.
 *
 * Threads: as the contract says, one worker thread calls the operations and
 * exec may run concurrently on a second lane; a mutex per backend covers that. */
#pragma once

#include <stdint.h>

#include "common/config.h"
#include "node/backend.h"

struct sim_config {
    uint32_t cpus;          /* millicores offered to guests (node_facts.cpus) */
    uint64_t memory;        /* bytes offered to guests */
    uint64_t disk;          /* bytes for guest disks; the sum of disk limits may not pass it */
    uint32_t max_guests;    /* guests this node accepts, 0 = 1000 */
    uint64_t seed;          /* seeds every guest's random stream */
    uint32_t stop_delay_ms; /* how long a guest takes to halt after stop, 0 = at once */
    const char *
        templates; /* comma-separated template names it reports (copied), NULL = "busybox,debian" */
    /* The clock in ns, monotonic; NULL = time_mono_ns. Tests pass a fake one. */
    uint64_t (*clock_ns)(void *userdata);
    void *clock_userdata; /* passed to clock_ns */
};

/* The [node] sim_* keys of cfg (the --sim-* flags) into *sc, over the
 * defaults (16 cores, 64 GiB, 1 TiB, 1,000 guests, seed 1). 0, or -EINVAL
 * with why (n bytes) naming the flag and what it wants. */
int sim_config_read(const config_t *cfg, struct sim_config *sc, char *why, size_t n);

/* A new sim backend; never NULL (allocation failure aborts). Free it with
 * b->ops->free(b). The config is copied. */
backend_t *sim_backend_new(const struct sim_config *cfg);

/* Test hook: the guest's init dies (as if it crashed), leaving it stopped.
 * Returns 0 or -ENOENT. */
int sim_guest_crash(backend_t *b, const char *id);

/* The sim's guest.shell (sim_shell.c): a thread plays a tiny shell on a
 * socket pair for the guest spec names. Returns 0 with out filled or -errno. */
int sim_shell_start(const struct guest_spec *spec, const struct shell_request *req,
                    struct shell_proc *out);
