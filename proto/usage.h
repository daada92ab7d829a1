/* One usage sample of one guest, as the node measures it and the usage
 * message carries it. Counters are cumulative since the guest was created
 * (monotonic across agent restarts); gauges are the value at sample time.
 * A field the backend cannot measure on this kernel is 0. */
#pragma once

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
