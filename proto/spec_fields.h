/* The resource limits of a guest, described once.
 *
 * SPEC_LIMIT_FIELDS is the one list of the scalar limits in struct
 * spec_limits. Everything that names a limit expands it: the struct members
 * themselves (proto/spec.h), the range checks (spec_validate), the JSON
 * mapping (proto/spec_json.c), the msgpack codec (proto/codec.c), the CLI's
 * flags, --help and `guest show` rows (cli/args.c, cli/cmd_guest.c) and the
 * limits table in docs/api.md (printed by proto/gen/spec_doc.c and checked by
 * deploy/test). Adding a limit is one row here plus its kernel code in the
 * node's backends.
 *
 * X(name, type, unit, flag, max, help):
 *   name  the member of struct spec_limits, also its JSON and msgpack key
 *   type  its C type, uint32_t or uint64_t (the msgpack value's width)
 *   unit  SPEC_UNIT_<unit>: how the value is read, written and shown
 *   flag  the `vfleet guest create|set` option, without "--"
 *   max   the largest valid value in the stored unit (0 = "not set" is
 *         always valid; spec_validate refuses more than max)
 *   help  one line for the struct, --help and the docs
 *
 * The per-device I/O caps (limits.io, struct spec_io_dev) are a list of
 * records, not a scalar, and stay written out where they are used.
 *
 * Header-only on purpose: the CLI and the docs generator expand the table
 * without linking proto's libraries. */
#pragma once

#include <stdint.h>

/* How a limit's number is read, written and shown; the stored value is
 * always an unsigned integer of the row's type.
 * X(unit, metavar, json, json_unit, wire_unit): the CLI's metavariable, the
 * JSON value's form, and the unit JSON and the msgpack integer count in.
 *   COUNT   a plain count, shown as is
 *   BYTES   bytes: JSON reads 268435456 or "256M", the CLI shows 256M
 *   RATE    bits per second: JSON reads 10000000 or "10mbit", the CLI shows 10mbit
 *   MCORES  millicores on the wire, cores (0.5) in JSON and the CLI
 *   WEIGHT  a relative share 1..max; 0 leaves the kernel's default (100) */
#define SPEC_UNIT_KINDS(X)                                                                         \
    X(COUNT, "N", "integer", "", "")                                                               \
    X(BYTES, "SIZE", "integer or \"256M\"", "bytes", "bytes")                                      \
    X(RATE, "RATE", "integer or \"10mbit\"", "bits/s", "bits/s")                                   \
    X(MCORES, "CORES", "number (0.5)", "cores", "millicores")                                      \
    X(WEIGHT, "N", "integer", "", "")

#define SPEC_UNIT_ID_(unit, ...) SPEC_UNIT_##unit,
enum spec_unit { SPEC_UNIT_KINDS(SPEC_UNIT_ID_) };
#undef SPEC_UNIT_ID_
#define SPEC_UNIT_ONE_(...) +1
#define SPEC_N_UNITS        (0 SPEC_UNIT_KINDS(SPEC_UNIT_ONE_)) /* entries in enum spec_unit */

#define SPEC_MAX_MCORES 1024000 /* CPU ceiling and burst: 1024 cores */
#define SPEC_MAX_WEIGHT 10000   /* cgroup v2's cpu.weight and io.weight scale */

#define SPEC_LIMIT_FIELDS(X)                                                                       \
    X(procs, uint64_t, COUNT, "procs", UINT64_MAX, "processes and threads (pids controller)")      \
    X(memory, uint64_t, BYTES, "memory", UINT64_MAX, "memory hard limit")                          \
    X(rss, uint64_t, BYTES, "rss", UINT64_MAX,                                                     \
      "resident soft limit, reclaimed above it; at most memory")                                   \
    X(swap, uint64_t, BYTES, "swap", UINT64_MAX, "swap allowed beyond memory")                     \
    X(cpu_weight, uint32_t, WEIGHT, "cpu-weight", SPEC_MAX_WEIGHT,                                 \
      "relative CPU share (default 100)")                                                          \
    X(cpu_max, uint32_t, MCORES, "cpu", SPEC_MAX_MCORES, "CPU ceiling")                            \
    X(cpu_burst, uint32_t, MCORES, "cpu-burst", SPEC_MAX_MCORES,                                   \
      "CPU burst allowance above the ceiling")                                                     \
    X(io_weight, uint32_t, WEIGHT, "io-weight", SPEC_MAX_WEIGHT,                                   \
      "relative I/O share (default 100)")                                                          \
    X(disk, uint64_t, BYTES, "disk", UINT64_MAX, "disk space: the size of the guest's ext4 image") \
    X(inodes, uint64_t, COUNT, "inodes", UINT64_MAX, "inodes of the guest's filesystem")           \
    X(nofile, uint64_t, COUNT, "nofile", UINT64_MAX, "open files per process (RLIMIT_NOFILE)")     \
    X(tcp_sockets, uint64_t, COUNT, "tcp-sockets", UINT64_MAX, "established TCP connections")      \
    X(net_in, uint64_t, RATE, "net-in", UINT64_MAX, "inbound rate")                                \
    X(net_out, uint64_t, RATE, "net-out", UINT64_MAX, "outbound rate")

/* SPEC_LIMIT_<name>: a limit's row number, in table order. */
#define SPEC_LIMIT_ID_(name, ...) SPEC_LIMIT_##name,
enum spec_limit_id { SPEC_LIMIT_FIELDS(SPEC_LIMIT_ID_) SPEC_N_LIMITS };
#undef SPEC_LIMIT_ID_

/* One row of the table as data, for code that loops over the limits. The
 * initializer SPEC_LIMIT_DESC_INIT_ (spec.h) builds one from a row. */
struct spec_limit_desc {
    const char *key;     /* member name, JSON and msgpack key ("cpu_max") */
    const char *path;    /* how errors name it: "limits.cpu_max" */
    unsigned offset;     /* offset of the member in struct spec_limits */
    unsigned size;       /* sizeof the member: 4 or 8 */
    enum spec_unit unit; /* how it is read, written and shown */
    const char *flag;    /* CLI option without "--" ("cpu") */
    uint64_t max;        /* largest valid value in the stored unit */
    const char *help;    /* one line for people */
};
