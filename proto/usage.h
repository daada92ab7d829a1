/* One usage sample of one guest, as the node measures it and the usage
 * message carries it. Counters are cumulative since the guest was created
 * (monotonic across agent restarts); gauges are the value at sample time.
 * A field the backend cannot measure on this kernel is 0. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/spec.h"

/* Limits whose hits the kernel counts (OpenVZ's failcnt). */
enum usage_fail {
    USAGE_FAIL_PROCS,  /* fork refused at the pids limit */
    USAGE_FAIL_MEMORY, /* memory limit reached (v1 failcnt, v2 events "max") */
    USAGE_FAIL_OOM,    /* OOM kills inside the guest */
    USAGE_FAIL_DISK,   /* reserved: ENOSPC is not counted by the kernel */
    USAGE_FAIL_TCP,    /* connections refused at the TCP socket limit */
    USAGE_FAIL_COUNT
};

/* The failcnt keys on the wire and in JSON, X(enum usage_fail, name), in
 * the enum's order; every failcnt is a counter. */
#define USAGE_FAIL_FIELDS(X)                                                                       \
    X(USAGE_FAIL_PROCS, procs)                                                                     \
    X(USAGE_FAIL_MEMORY, memory)                                                                   \
    X(USAGE_FAIL_OOM, oom)                                                                         \
    X(USAGE_FAIL_DISK, disk)                                                                       \
    X(USAGE_FAIL_TCP, tcp)

/* How a field of a sample behaves over time: a COUNTER only grows (the
 * master keeps its increase between samples, and its rollups the sum of
 * those), a GAUGE is a level at sample time (rollups keep min, max and
 * average). */
#define USAGE_COUNTER 1
#define USAGE_GAUGE   0

/* The 64-bit counters and gauges of a sample, in wire order: the one list the
 * msgpack codec, the JSON mapping, the master's history, its metrics and the
 * CLI all expand, so a field added to struct guest_usage cannot be missed by
 * one of them. X(name, kind) per field, kind COUNTER or GAUGE. */
#define USAGE_U64_FIELDS(X)                                                                        \
    X(cpu_ns, COUNTER)                                                                             \
    X(memory, GAUGE)                                                                               \
    X(memory_peak, GAUGE)                                                                          \
    X(rss, GAUGE)                                                                                  \
    X(swap, GAUGE)                                                                                 \
    X(procs, GAUGE)                                                                                \
    X(disk_bytes, GAUGE)                                                                           \
    X(disk_inodes, GAUGE)                                                                          \
    X(io_read_bytes, COUNTER)                                                                      \
    X(io_write_bytes, COUNTER)                                                                     \
    X(io_read_ops, COUNTER)                                                                        \
    X(io_write_ops, COUNTER)                                                                       \
    X(net_rx_bytes, COUNTER)                                                                       \
    X(net_tx_bytes, COUNTER)                                                                       \
    X(net_rx_packets, COUNTER)                                                                     \
    X(net_tx_packets, COUNTER)                                                                     \
    X(tcp_sockets, GAUGE)
#define USAGE_N_U64_FIELDS 17 /* entries in USAGE_U64_FIELDS */

struct guest_usage {
    char id[SPEC_ID_LEN + 1];           /* the guest */
    uint64_t time_ms;                   /* wall-clock time of the sample, ms since the epoch */
    uint64_t cpu_ns;                    /* CPU time used, counter */
    uint64_t memory;                    /* memory charged now, bytes */
    uint64_t memory_peak;               /* highest memory charged, bytes */
    uint64_t rss;                       /* resident anonymous + file-mapped memory, bytes */
    uint64_t swap;                      /* swap used, bytes */
    uint64_t procs;                     /* processes and threads now */
    uint64_t disk_bytes;                /* bytes used on the guest's filesystem */
    uint64_t disk_inodes;               /* inodes used on the guest's filesystem */
    uint64_t io_read_bytes;             /* counter */
    uint64_t io_write_bytes;            /* counter */
    uint64_t io_read_ops;               /* counter */
    uint64_t io_write_ops;              /* counter */
    uint64_t net_rx_bytes;              /* counter, into the guest */
    uint64_t net_tx_bytes;              /* counter, out of the guest */
    uint64_t net_rx_packets;            /* counter */
    uint64_t net_tx_packets;            /* counter */
    uint64_t tcp_sockets;               /* established TCP connections now */
    uint64_t failcnt[USAGE_FAIL_COUNT]; /* per limit, times it was hit (counters) */
};

/* The list covers exactly the counters between cpu_ns and failcnt. */
#define USAGE_COUNT_ONE_(f, k) +1
_Static_assert((0 USAGE_U64_FIELDS(USAGE_COUNT_ONE_)) == USAGE_N_U64_FIELDS,
               "USAGE_N_U64_FIELDS must count USAGE_U64_FIELDS");
_Static_assert(offsetof(struct guest_usage, failcnt) - offsetof(struct guest_usage, cpu_ns) ==
                   sizeof(uint64_t) * USAGE_N_U64_FIELDS,
               "USAGE_U64_FIELDS must list every counter of struct guest_usage");
#undef USAGE_COUNT_ONE_

/* A sample's counters and gauges as one vector: the USAGE_U64_FIELDS in
 * order, then failcnt in enum order (USAGE_N_METRICS values). */
#define USAGE_N_METRICS (USAGE_N_U64_FIELDS + USAGE_FAIL_COUNT)

static inline void
usage_to_vec(const struct guest_usage *u, uint64_t v[USAGE_N_METRICS])
{
    memcpy(v, (const char *)u + offsetof(struct guest_usage, cpu_ns),
           USAGE_N_METRICS * sizeof(uint64_t));
}

static inline void
usage_from_vec(const uint64_t v[USAGE_N_METRICS], struct guest_usage *u)
{
    memcpy((char *)u + offsetof(struct guest_usage, cpu_ns), v, USAGE_N_METRICS * sizeof(uint64_t));
}

_Static_assert(offsetof(struct guest_usage, failcnt) + sizeof(((struct guest_usage *)0)->failcnt) -
                       offsetof(struct guest_usage, cpu_ns) ==
                   sizeof(uint64_t) * USAGE_N_METRICS,
               "the metric vector is the fields from cpu_ns to the end of failcnt");
