/* One usage sample of one guest, as the node measures it and the usage
 * message carries it. Counters are cumulative since the guest was created
 * (monotonic across agent restarts); gauges are the value at sample time.
 * A field the backend cannot measure on this kernel is 0. */
#pragma once

#include <stddef.h>
#include <stdint.h>

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

/* The 64-bit counters and gauges of a sample, in wire order: the one list the
 * msgpack codec and the JSON mapping both expand, so a field added to
 * struct guest_usage cannot be missed by one of them. X(name) per field. */
#define USAGE_U64_FIELDS(X)                                                                        \
    X(cpu_ns)                                                                                      \
    X(memory)                                                                                      \
    X(memory_peak)                                                                                 \
    X(rss)                                                                                         \
    X(swap)                                                                                        \
    X(procs)                                                                                       \
    X(disk_bytes)                                                                                  \
    X(disk_inodes)                                                                                 \
    X(io_read_bytes)                                                                               \
    X(io_write_bytes)                                                                              \
    X(io_read_ops)                                                                                 \
    X(io_write_ops)                                                                                \
    X(net_rx_bytes)                                                                                \
    X(net_tx_bytes)                                                                                \
    X(net_rx_packets)                                                                              \
    X(net_tx_packets)                                                                              \
    X(tcp_sockets)
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
#define USAGE_COUNT_ONE_(f) +1
_Static_assert((0 USAGE_U64_FIELDS(USAGE_COUNT_ONE_)) == USAGE_N_U64_FIELDS,
               "USAGE_N_U64_FIELDS must count USAGE_U64_FIELDS");
_Static_assert(offsetof(struct guest_usage, failcnt) - offsetof(struct guest_usage, cpu_ns) ==
                   sizeof(uint64_t) * USAGE_N_U64_FIELDS,
               "USAGE_U64_FIELDS must list every counter of struct guest_usage");
#undef USAGE_COUNT_ONE_
