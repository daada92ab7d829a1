/* A budget for log lines about things a peer controls: at most `burst`
 * lines per `interval_ms`, and one summary of how many were held back once
 * the window turns. Junk from a peer (bad frames, refused handshakes) must
 * cost a bounded amount of logging, however much of it arrives.
 *
 * A plain value the caller embeds; not thread-safe (give each thread its own). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
    uint64_t interval_ms;  /* window length */
    unsigned burst;        /* lines allowed per window */
    uint64_t window_start; /* monotonic ms the current window began */
    unsigned used;         /* lines logged in the current window */
    uint64_t suppressed;   /* lines held back since the last summary */
};

#define RATELIMIT_INIT(ms, n)                                                                      \
    {                                                                                              \
        .interval_ms = (ms), .burst = (n)                                                          \
    }

/* Whether one more line may be logged now (monotonic ms). When a new window
 * begins after lines were held back, *suppressed (may be NULL) receives
 * their count so the caller can say so on the line it logs; else 0. */
bool ratelimit_ok(struct ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);
