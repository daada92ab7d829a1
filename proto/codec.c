/* The msgpack codec for struct msg (see msg.h and docs/protocol.md): one
 * table per message type maps its fields to and from msgpack.
 *
 * Decoding runs in three steps, and only the last one looks at msgpack
 * objects:
 *   1. scan_frame() (scan.c) walks the raw bytes of the frame without
 *      allocating and bounds every length, count and the nesting, because
 *      msgpack-c's unpacker allocates for the count a header claims before
 *      any element arrives.
 *   2. msgpack_unpack_next() builds the object tree in a zone; after step 1
 *      its allocation is bounded by about 48 bytes per object, and the number
 *      of objects by PROTO_MAX_OBJECTS.
 *   3. decode_fields() walks the message type's table and converts the tree
 *      into the typed struct, checking every field's msgpack type and size;
 *      then codec_check_msg() (codec_check.c) checks ranges and forms.
 *
 * Encoding runs the same codec_check_msg() first, so we never send what the
 * peer would refuse, then writes the table's fields in table order: the map
 * header's count is the table's length (less the fields with a seen flag
 * that is false: fields_sent), so it cannot drift from the fields. */
#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/scan.h"

/* ---------------------------------------------------------------- tables */

/* How one field travels. Scalars are the member itself; the others say what
 * they hold in their comment. */
enum wire_kind {
    W_U64,    /* uint64_t */
    W_U32,    /* uint32_t */
    W_I32,    /* int32_t */
    W_BOOL,   /* bool */
    W_STR,    /* char[size], a str without NUL */
    W_BIN,    /* char * (owned, max bytes), its uint32_t length at count */
    W_ERROR,  /* enum msg_error, as its name */
    W_LABELS, /* struct spec_label[max], the uint32_t count at count; a map */
    W_CAPS,   /* uint64_t capability mask, an array of names */
    W_FLAGS,  /* uint32_t enum spec_flag bits, an array of names */
    W_IPS,    /* struct netaddr[max], the count at count; an array of "10.0.0.5/32" */
    W_ARGV,   /* char ** (owned, NULL-terminated), the count at count; an array */
    W_MAP,    /* a nested struct described by sub; a map */
    W_LIST,   /* an array of elem-byte structs described by sub, the count at count */
    W_NAME,   /* uint32_t index into names (max entries), as the name */
};

struct wire_table;

/* One field of a message, or of a map nested in one. */
struct wire_field {
    const char *key;              /* msgpack key */
    enum wire_kind kind;          /* how it travels */
    bool required;                /* decoding fails when it is absent */
    size_t off;                   /* offset of the member in its struct */
    size_t size;                  /* sizeof the member (W_STR: the buffer) */
    size_t count;                 /* W_BIN, W_LABELS, W_IPS, W_ARGV, W_LIST: offset of the count */
    uint32_t max;                 /* entries (bytes for W_BIN) a container may hold */
    size_t elem;                  /* W_LIST: sizeof one element */
    bool owned;                   /* W_LIST: the array is allocated, not inline */
    const struct wire_table *sub; /* W_MAP, W_LIST: the nested fields */
    const char *const *names;     /* W_NAME: the names by value */
    size_t seen; /* 1 + offset of a bool: true when the key is there (decode), sends it (encode) */
};

/* The fields of one map, in wire order. */
struct wire_table {
    const struct wire_field *fields; /* in the order they are written */
    size_t n;                        /* entries in fields: the map header's count */
};

#define W(key_, kind_, req_, type, member, ...)                                                    \
    {                                                                                              \
        .key = key_, .kind = kind_, .required = req_, .off = offsetof(type, member),               \
        .size = sizeof(((type *)0)->member), __VA_ARGS__                                           \
    }
#define TABLE(fields)                                                                              \
    {                                                                                              \
        fields, ARRAY_SIZE(fields)                                                                 \
    }

/* Flag names by bit number: bit i is 1u << i of enum spec_flag (proto/spec.h);
 * spec_json.c names them the same way. */
static const char *const flag_names[] = {"private", "lock", "privileged", "nesting"};

/* guest.apply's spec: the limits table (spec_fields.h), then the I/O list. */
static const struct wire_field io_fields[] = {
    W("major", W_U32, true, struct spec_io_dev, major),
    W("minor", W_U32, true, struct spec_io_dev, minor),
    W("read_bps", W_U64, false, struct spec_io_dev, read_bps),
    W("write_bps", W_U64, false, struct spec_io_dev, write_bps),
    W("read_iops", W_U64, false, struct spec_io_dev, read_iops),
    W("write_iops", W_U64, false, struct spec_io_dev, write_iops),
};
static const struct wire_table io_table = TABLE(io_fields);

#define LIMIT_W(name, type, ...)                                                                   \
    W(#name, sizeof(type) == sizeof(uint32_t) ? W_U32 : W_U64, false, struct spec_limits, name),
static const struct wire_field limits_fields[] = {
    SPEC_LIMIT_FIELDS(LIMIT_W)
        W("io", W_LIST, false, struct spec_limits, io_devs,
          .count = offsetof(struct spec_limits, n_io_devs), .max = SPEC_MAX_IO_DEVS,
          .elem = sizeof(struct spec_io_dev), .sub = &io_table),
};
#undef LIMIT_W
static const struct wire_table limits_table = TABLE(limits_fields);

/* The provision group: the same members as the JSON form, keys and search
 * domains as their joined strings. */
static const struct wire_field provision_fields[] = {
    W("password_hash", W_STR, false, struct spec_provision, password_hash),
    W("ssh_keys", W_STR, false, struct spec_provision, ssh_keys),
    W("dns", W_IPS, false, struct spec_provision, dns,
      .count = offsetof(struct spec_provision, n_dns), .max = SPEC_MAX_DNS),
    W("search", W_STR, false, struct spec_provision, search),
};
static const struct wire_table provision_table = TABLE(provision_fields);

static const struct wire_field spec_fields[] = {
    W("id", W_STR, true, struct guest_spec, id),
    W("name", W_STR, true, struct guest_spec, name),
    W("generation", W_U64, true, struct guest_spec, generation),
    W("template", W_STR, true, struct guest_spec, template_name),
    W("init", W_STR, false, struct guest_spec, init),
    W("domainname", W_STR, false, struct guest_spec, domainname),
    W("halt_signal", W_U32, false, struct guest_spec, halt_signal),
    W("stop_timeout", W_U32, false, struct guest_spec, stop_timeout),
    W("context", W_U32, false, struct guest_spec, context),
    W("autostart", W_BOOL, false, struct guest_spec, autostart),
    W("restart", W_NAME, false, struct guest_spec, restart, .names = spec_restart_names,
      .max = SPEC_N_RESTART),
    W("restart_max", W_U32, false, struct guest_spec, restart_max),
    W("restart_backoff", W_U32, false, struct guest_spec, restart_backoff),
    W("flags", W_FLAGS, false, struct guest_spec, flags, .max = ARRAY_SIZE(flag_names)),
    W("limits", W_MAP, false, struct guest_spec, limits, .max = PROTO_MAX_ARRAY,
      .sub = &limits_table),
    W("caps_add", W_CAPS, false, struct guest_spec, caps_add, .max = SPEC_CAP_MAX + 1),
    W("caps_drop", W_CAPS, false, struct guest_spec, caps_drop, .max = SPEC_CAP_MAX + 1),
    W("ips", W_IPS, false, struct guest_spec, addrs, .count = offsetof(struct guest_spec, n_addrs),
      .max = SPEC_MAX_ADDRS),
    W("labels", W_LABELS, false, struct guest_spec, labels,
      .count = offsetof(struct guest_spec, n_labels), .max = SPEC_MAX_LABELS),
    W("provision", W_MAP, false, struct guest_spec, provision, .max = PROTO_MAX_ARRAY,
      .sub = &provision_table),
    W("rebuild", W_U32, false, struct guest_spec, rebuild),
};
static const struct wire_table spec_table = TABLE(spec_fields);

static const struct wire_field apply_fields[] = {
    {.key = "spec", .kind = W_MAP, .required = true, .max = PROTO_MAX_ARRAY, .sub = &spec_table},
};

/* hello, its templates and its inventory. */
static const struct wire_field template_fields[] = {
    W("name", W_STR, true, struct msg_template, name),
    W("size", W_U64, false, struct msg_template, size),
    W("checksum", W_STR, false, struct msg_template, checksum),
};
static const struct wire_table template_table = TABLE(template_fields);

static const struct wire_field inventory_fields[] = {
    W("id", W_STR, true, struct msg_inventory_item, id),
    W("name", W_STR, true, struct msg_inventory_item, name),
    W("generation", W_U64, true, struct msg_inventory_item, generation),
    W("running", W_BOOL, true, struct msg_inventory_item, running),
    W("desired", W_STR, false, struct msg_inventory_item, desired),
};
static const struct wire_table inventory_table = TABLE(inventory_fields);

static const struct wire_field hello_fields[] = {
    W("node", W_STR, true, struct msg_hello, node),
    W("agent_version", W_STR, true, struct msg_hello, agent_version),
    W("kernel", W_STR, true, struct msg_hello, kernel),
    W("cgroup", W_STR, true, struct msg_hello, cgroup),
    W("backend", W_STR, true, struct msg_hello, backend),
    W("cpus", W_U32, true, struct msg_hello, cpus),
    W("memory", W_U64, true, struct msg_hello, memory),
    W("disk", W_U64, true, struct msg_hello, disk),
    W("max_guests", W_U32, true, struct msg_hello, max_guests),
    W("labels", W_LABELS, false, struct msg_hello, labels,
      .count = offsetof(struct msg_hello, n_labels), .max = PROTO_MAX_LABELS),
    W("templates", W_LIST, false, struct msg_hello, templates,
      .count = offsetof(struct msg_hello, n_templates), .max = PROTO_MAX_TEMPLATES,
      .elem = sizeof(struct msg_template), .sub = &template_table),
    W("inventory", W_LIST, true, struct msg_hello, inventory,
      .count = offsetof(struct msg_hello, n_inventory), .max = PROTO_MAX_INVENTORY,
      .elem = sizeof(struct msg_inventory_item), .owned = true, .sub = &inventory_table),
    W("leftovers", W_U32, false, struct msg_hello, leftovers,
      .seen = 1 + offsetof(struct msg_hello, has_leftovers)),
};

/* inventory: the same list, and one spec when asked for. */
static const struct wire_field inventory_msg_fields[] = {
    W("ref", W_U64, true, struct msg_inventory, ref),
    W("inventory", W_LIST, true, struct msg_inventory, inventory,
      .count = offsetof(struct msg_inventory, n_inventory), .max = PROTO_MAX_INVENTORY,
      .elem = sizeof(struct msg_inventory_item), .owned = true, .sub = &inventory_table),
    W("spec", W_MAP, false, struct msg_inventory, spec, .max = PROTO_MAX_ARRAY, .sub = &spec_table),
};

static const struct wire_field inventory_get_fields[] = {
    W("guest", W_STR, false, struct msg_inventory_get, id),
};

/* usage: samples of the counters of usage.h and the failcnt map. */
#define FAILCNT_W(i, name)                                                                         \
    {                                                                                              \
        .key = name, .kind = W_U64, .off = (i) * sizeof(uint64_t), .size = sizeof(uint64_t)        \
    }
#define FAILCNT_FIELD(e, name) FAILCNT_W(e, #name),
static const struct wire_field failcnt_fields[] = {USAGE_FAIL_FIELDS(FAILCNT_FIELD)};
#undef FAILCNT_FIELD
_Static_assert(ARRAY_SIZE(failcnt_fields) == USAGE_FAIL_COUNT, "a failcnt key per enum usage_fail");
static const struct wire_table failcnt_table = TABLE(failcnt_fields);

#define USAGE_W(f, k) W(#f, W_U64, false, struct guest_usage, f),
static const struct wire_field sample_fields[] = {
    W("guest", W_STR, true, struct guest_usage, id),
    W("time_ms", W_U64, true, struct guest_usage, time_ms),
    USAGE_U64_FIELDS(USAGE_W) W("failcnt", W_MAP, false, struct guest_usage, failcnt,
                                .max = PROTO_MAX_ARRAY, .sub = &failcnt_table),
};
#undef USAGE_W
static const struct wire_table sample_table = TABLE(sample_fields);

static const struct wire_field usage_fields[] = {
    W("samples", W_LIST, true, struct msg_usage, samples,
      .count = offsetof(struct msg_usage, n_samples), .max = PROTO_MAX_SAMPLES,
      .elem = sizeof(struct guest_usage), .owned = true, .sub = &sample_table),
};

/* The small messages. */
static const struct wire_field heartbeat_fields[] = {
    W("seq", W_U64, true, struct msg_heartbeat, seq),
    W("n_guests", W_U32, true, struct msg_heartbeat, n_guests),
    W("n_running", W_U32, true, struct msg_heartbeat, n_running),
    W("digest", W_U64, false, struct msg_heartbeat, digest),
};

static const struct wire_field welcome_fields[] = {
    W("heartbeat_ms", W_U32, true, struct msg_welcome, heartbeat_ms),
    W("usage_ms", W_U32, true, struct msg_welcome, usage_ms),
    W("ref", W_U64, false, struct msg_welcome, ref),
};

static const struct wire_field ack_fields[] = {
    W("ref", W_U64, true, struct msg_ack, ref),
    W("guest", W_STR, false, struct msg_ack, id),
    W("generation", W_U64, false, struct msg_ack, generation),
    W("running", W_BOOL, false, struct msg_ack, running),
};

/* A code added by a newer peer decodes as MSG_ERR_INTERNAL: it still failed. */
static const struct wire_field nack_fields[] = {
    W("ref", W_U64, true, struct msg_nack, ref),
    W("guest", W_STR, false, struct msg_nack, id),
    W("code", W_ERROR, true, struct msg_nack, code),
    W("message", W_STR, false, struct msg_nack, message),
};

static const struct wire_field event_fields[] = {
    W("guest", W_STR, false, struct msg_event, id),
    W("kind", W_STR, true, struct msg_event, kind),
    W("time_ms", W_U64, true, struct msg_event, time_ms),
    W("exit_code", W_I32, false, struct msg_event, exit_code),
    W("message", W_STR, false, struct msg_event, message),
    W("signal", W_I32, false, struct msg_event, signal),
    W("desired", W_STR, false, struct msg_event, desired),
    W("count", W_U64, false, struct msg_event, count),
};

static const struct wire_field exec_result_fields[] = {
    W("ref", W_U64, true, struct msg_exec_result, ref),
    W("guest", W_STR, true, struct msg_exec_result, id),
    W("exit_code", W_I32, true, struct msg_exec_result, exit_code),
    W("signal", W_I32, false, struct msg_exec_result, signal),
    W("timed_out", W_BOOL, false, struct msg_exec_result, timed_out),
    W("truncated", W_BOOL, false, struct msg_exec_result, truncated),
    W("out", W_BIN, false, struct msg_exec_result, out,
      .count = offsetof(struct msg_exec_result, out_len), .max = PROTO_MAX_EXEC_OUT),
    W("err", W_BIN, false, struct msg_exec_result, err,
      .count = offsetof(struct msg_exec_result, err_len), .max = PROTO_MAX_EXEC_OUT),
};

static const struct wire_field console_result_fields[] = {
    W("ref", W_U64, true, struct msg_console_result, ref),
    W("guest", W_STR, true, struct msg_console_result, id),
    W("total", W_U64, true, struct msg_console_result, total),
    W("data", W_BIN, false, struct msg_console_result, data,
      .count = offsetof(struct msg_console_result, len), .max = PROTO_MAX_CONSOLE),
};

static const struct wire_field console_fields[] = {
    W("guest", W_STR, true, struct msg_guest_console, id),
    W("max_bytes", W_U32, false, struct msg_guest_console, max_bytes),
};

/* guest.start and guest.destroy; only guest.stop has a timeout (elsewhere the
 * key is unknown, and a meaningless 0 is not sent). */
static const struct wire_field guest_ref_fields[] = {
    W("guest", W_STR, true, struct msg_guest_ref, id),
    W("generation", W_U64, true, struct msg_guest_ref, generation),
};

static const struct wire_field guest_stop_fields[] = {
    W("guest", W_STR, true, struct msg_guest_ref, id),
    W("generation", W_U64, true, struct msg_guest_ref, generation),
    W("timeout", W_U32, false, struct msg_guest_ref, timeout),
};

static const struct wire_field exec_fields[] = {
    W("guest", W_STR, true, struct msg_guest_exec, id),
    W("argv", W_ARGV, true, struct msg_guest_exec, argv,
      .count = offsetof(struct msg_guest_exec, argc), .max = PROTO_MAX_ARGV),
    W("timeout_ms", W_U32, false, struct msg_guest_exec, timeout_ms),
    W("max_output", W_U32, false, struct msg_guest_exec, max_output),
};

/* Moving a guest: the five commands share struct msg_migrate, each table
 * naming the fields its type carries; the status answers them all. */
#define MIG(key, kind, req, member, ...) W(key, kind, req, struct msg_migrate, member, __VA_ARGS__)
#define MIG_COUNTERS(type, member)                                                                 \
    W("net_rx_bytes", W_U64, false, type, member.net_rx_bytes),                                    \
        W("net_tx_bytes", W_U64, false, type, member.net_tx_bytes),                                \
        W("net_rx_packets", W_U64, false, type, member.net_rx_packets),                            \
        W("net_tx_packets", W_U64, false, type, member.net_tx_packets),                            \
        W("tcp_refused", W_U64, false, type, member.tcp_refused)

static const struct wire_field migrate_prepare_fields[] = {
    MIG("op", W_STR, true, op),
    MIG("guest", W_STR, true, id),
    MIG("peer", W_STR, true, peer),
    MIG("secret", W_STR, true, secret),
    MIG("peer_key", W_STR, false, peer_key),
    MIG("live", W_BOOL, false, live),
    MIG("archive", W_BOOL, false, archive),
    MIG("spec", W_MAP, true, spec, .max = PROTO_MAX_ARRAY, .sub = &spec_table),
    MIG("template", W_STR, false, template_name),
};

static const struct wire_field migrate_send_fields[] = {
    MIG("op", W_STR, true, op),         MIG("guest", W_STR, true, id),
    MIG("peer", W_STR, true, peer),     MIG("endpoint", W_STR, true, endpoint),
    MIG("secret", W_STR, true, secret), MIG("peer_key", W_STR, false, peer_key),
    MIG("live", W_BOOL, false, live),   MIG("archive", W_BOOL, false, archive),
};

static const struct wire_field migrate_commit_fields[] = {
    MIG("op", W_STR, true, op),
    MIG("guest", W_STR, true, id),
    MIG("digest", W_STR, true, digest),
    MIG("start", W_BOOL, false, start),
    MIG("archive", W_BOOL, false, archive),
    MIG_COUNTERS(struct msg_migrate, counters),
    MIG("spec", W_MAP, true, spec, .max = PROTO_MAX_ARRAY, .sub = &spec_table),
    MIG("template", W_STR, false, template_name),
};

static const struct wire_field migrate_finish_fields[] = {
    MIG("op", W_STR, true, op),
    MIG("guest", W_STR, true, id),
};

static const struct wire_field migrate_abort_fields[] = {
    MIG("op", W_STR, true, op),
    MIG("guest", W_STR, true, id),
    MIG("role", W_STR, true, role),
    MIG("start", W_BOOL, false, start),
    MIG("template", W_STR, false, template_name),
};
#undef MIG

static const struct wire_field migrate_status_fields[] = {
    W("ref", W_U64, true, struct msg_migrate_status, ref),
    W("op", W_STR, true, struct msg_migrate_status, op),
    W("guest", W_STR, true, struct msg_migrate_status, id),
    W("phase", W_STR, true, struct msg_migrate_status, phase),
    W("state", W_STR, true, struct msg_migrate_status, state),
    W("code", W_STR, false, struct msg_migrate_status, code),
    W("message", W_STR, false, struct msg_migrate_status, message),
    W("endpoint", W_STR, false, struct msg_migrate_status, endpoint),
    W("key", W_STR, false, struct msg_migrate_status, key),
    W("pass", W_U32, false, struct msg_migrate_status, pass),
    W("bytes_done", W_U64, false, struct msg_migrate_status, bytes_done),
    W("bytes_total", W_U64, false, struct msg_migrate_status, bytes_total),
    W("digest", W_STR, false, struct msg_migrate_status, digest),
    W("frozen_ms", W_U64, false, struct msg_migrate_status, frozen_ms),
    W("running_ms", W_U64, false, struct msg_migrate_status, running_ms),
    W("copy_ms", W_U64, false, struct msg_migrate_status, copy_ms),
    W("last_bytes", W_U64, false, struct msg_migrate_status, last_bytes),
    W("running", W_BOOL, false, struct msg_migrate_status, running),
    MIG_COUNTERS(struct msg_migrate_status, counters),
    W("note", W_STR, false, struct msg_migrate_status, note),
};
#undef MIG_COUNTERS

static const struct wire_field traffic_get_fields[] = {
    W("reset", W_BOOL, false, struct msg_traffic_get, reset),
};

static const struct wire_field traffic_item_fields[] = {
    W("guest", W_STR, true, struct msg_traffic_item, id),
    W("rx_bytes", W_U64, true, struct msg_traffic_item, rx_bytes),
    W("tx_bytes", W_U64, true, struct msg_traffic_item, tx_bytes),
    W("rx_packets", W_U64, false, struct msg_traffic_item, rx_packets),
    W("tx_packets", W_U64, false, struct msg_traffic_item, tx_packets),
};
static const struct wire_table traffic_item_table = TABLE(traffic_item_fields);

static const struct wire_field traffic_fields[] = {
    W("ref", W_U64, true, struct msg_traffic, ref),
    W("guests", W_LIST, true, struct msg_traffic, items,
      .count = offsetof(struct msg_traffic, n_items), .max = PROTO_MAX_SAMPLES,
      .elem = sizeof(struct msg_traffic_item), .owned = true, .sub = &traffic_item_table),
};

/* The interactive session and its stream. */
static const struct wire_field shell_fields[] = {
    W("guest", W_STR, true, struct msg_shell_open, id),
    W("session", W_U64, true, struct msg_shell_open, session),
    W("argv", W_ARGV, false, struct msg_shell_open, argv,
      .count = offsetof(struct msg_shell_open, argc), .max = PROTO_MAX_ARGV),
    W("tty", W_BOOL, false, struct msg_shell_open, tty),
    W("cols", W_U32, false, struct msg_shell_open, cols),
    W("rows", W_U32, false, struct msg_shell_open, rows),
    W("term", W_STR, false, struct msg_shell_open, term),
    W("console", W_BOOL, false, struct msg_shell_open, console),
};

static const struct wire_field stream_ctl_fields[] = {
    W("session", W_U64, true, struct msg_stream_ctl, session),
    W("cols", W_U32, false, struct msg_stream_ctl, cols),
    W("rows", W_U32, false, struct msg_stream_ctl, rows),
    W("signal", W_U32, false, struct msg_stream_ctl, signal),
    W("close", W_BOOL, false, struct msg_stream_ctl, close),
};

static const struct wire_field stream_data_fields[] = {
    W("session", W_U64, true, struct msg_stream_data, session),
    W("fd", W_U32, false, struct msg_stream_data, fd),
    W("eof", W_BOOL, false, struct msg_stream_data, eof),
    W("data", W_BIN, false, struct msg_stream_data, data,
      .count = offsetof(struct msg_stream_data, len), .max = PROTO_STREAM_CHUNK),
};

static const struct wire_field stream_ack_fields[] = {
    W("session", W_U64, true, struct msg_stream_ack, session),
    W("bytes", W_U32, true, struct msg_stream_ack, bytes),
};

static const struct wire_field stream_exit_fields[] = {
    W("session", W_U64, true, struct msg_stream_exit, session),
    W("exit_code", W_I32, true, struct msg_stream_exit, exit_code),
    W("signal", W_I32, false, struct msg_stream_exit, signal),
    W("message", W_STR, false, struct msg_stream_exit, message),
};

static const struct wire_field join_fields[] = {
    W("node", W_STR, true, struct msg_join, node),
    W("key", W_STR, true, struct msg_join, key),
};

/* Every message's fields after the envelope ("id", "v", "type"), relative to
 * its member of struct msg's union. */
static const struct wire_table msg_tables[MSG_TYPE_COUNT] = {
    [MSG_HELLO] = TABLE(hello_fields),
    [MSG_HEARTBEAT] = TABLE(heartbeat_fields),
    [MSG_ACK] = TABLE(ack_fields),
    [MSG_NACK] = TABLE(nack_fields),
    [MSG_USAGE] = TABLE(usage_fields),
    [MSG_EVENT] = TABLE(event_fields),
    [MSG_EXEC_RESULT] = TABLE(exec_result_fields),
    [MSG_INVENTORY] = TABLE(inventory_msg_fields),
    [MSG_TRAFFIC_GET] = TABLE(traffic_get_fields),
    [MSG_TRAFFIC] = TABLE(traffic_fields),
    [MSG_WELCOME] = TABLE(welcome_fields),
    [MSG_GUEST_APPLY] = TABLE(apply_fields),
    [MSG_GUEST_APPLY_START] = TABLE(apply_fields),
    [MSG_GUEST_START] = TABLE(guest_ref_fields),
    [MSG_GUEST_STOP] = TABLE(guest_stop_fields),
    [MSG_GUEST_DESTROY] = TABLE(guest_ref_fields),
    [MSG_GUEST_EXEC] = TABLE(exec_fields),
    [MSG_SHELL_OPEN] = TABLE(shell_fields),
    [MSG_STREAM_CTL] = TABLE(stream_ctl_fields),
    [MSG_STREAM_DATA] = TABLE(stream_data_fields),
    [MSG_STREAM_ACK] = TABLE(stream_ack_fields),
    [MSG_STREAM_EXIT] = TABLE(stream_exit_fields),
    [MSG_INVENTORY_GET] = TABLE(inventory_get_fields),
    [MSG_JOIN] = TABLE(join_fields),
    [MSG_CONSOLE_RESULT] = TABLE(console_result_fields),
    [MSG_GUEST_CONSOLE] = TABLE(console_fields),
    [MSG_MIGRATE_PREPARE] = TABLE(migrate_prepare_fields),
    [MSG_MIGRATE_SEND] = TABLE(migrate_send_fields),
    [MSG_MIGRATE_COMMIT] = TABLE(migrate_commit_fields),
    [MSG_MIGRATE_FINISH] = TABLE(migrate_finish_fields),
    [MSG_MIGRATE_ABORT] = TABLE(migrate_abort_fields),
    [MSG_MIGRATE_STATUS] = TABLE(migrate_status_fields),
};

/* --------------------------------------------------------------- decoding */

/* The uint32_t count member of a field. */
static uint32_t *
count_of(const struct wire_field *f, void *base)
{
    return (uint32_t *)((char *)base + f->count);
}

static int
decode_labels(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f,
              void *base)
{
    struct spec_label *labels = (struct spec_label *)((char *)base + f->off);
    const msgpack_object *o;
    int r = codec_get_container(c, map, f->key, f->required, MSGPACK_OBJECT_MAP, f->max, &o);
    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        TRY(codec_copy_str(c, f->key, &kv->key, labels[i].key, sizeof(labels[i].key)));
        TRY(codec_copy_str(c, f->key, &kv->val, labels[i].value, sizeof(labels[i].value)));
    }
    *count_of(f, base) = o->via.map.size;
    return 0;
}

/* An array of names: each must be one name_bit() knows; their bits are ORed
 * into *mask. */
static int
decode_names(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f,
             uint64_t *mask)
{
    const msgpack_object *o;
    int r = codec_get_container(c, map, f->key, f->required, MSGPACK_OBJECT_ARRAY, f->max, &o);
    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char name[32];
        int bit = -1;
        TRY(codec_copy_str(c, f->key, &o->via.array.ptr[i], name, f->kind == W_CAPS ? 32 : 16));
        if (f->kind == W_CAPS) {
            bit = spec_cap_from_name(name);
        } else {
            for (unsigned b = 0; b < ARRAY_SIZE(flag_names); b++)
                if (strcmp(name, flag_names[b]) == 0)
                    bit = (int)b;
        }
        if (bit < 0)
            return codec_fail_field(c, -EINVAL, f->key, "unknown %s '%s'",
                                    f->kind == W_CAPS ? "capability" : "flag", name);
        *mask |= 1ULL << bit;
    }
    return 0;
}

static int
decode_ips(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f, void *base)
{
    struct netaddr *addrs = (struct netaddr *)((char *)base + f->off);
    const msgpack_object *o;
    int r = codec_get_container(c, map, f->key, f->required, MSGPACK_OBJECT_ARRAY, f->max, &o);
    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char text[NETADDR_STRLEN];
        TRY(codec_copy_str(c, f->key, &o->via.array.ptr[i], text, sizeof(text)));
        if (netaddr_parse(text, &addrs[i]) < 0)
            return codec_fail_field(c, -EINVAL, f->key, "'%s' is not an address", text);
        *count_of(f, base) = i + 1;
    }
    return 0;
}

static int
decode_argv(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f, void *base)
{
    char ***argv = (char ***)((char *)base + f->off);
    const msgpack_object *o;
    int r = codec_get_container(c, map, f->key, f->required, MSGPACK_OBJECT_ARRAY, f->max, &o);
    if (r <= 0)
        return r;
    /* One slot more than needed keeps argv NULL-terminated even when a
     * later entry is refused, so msg_clear can free what was copied. */
    *argv = xcalloc(o->via.array.size + 1, sizeof(char *));
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *a = &o->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_STR)
            return codec_fail_field(c, -EINVAL, f->key, "entry %u is not a string", i);
        if (a->via.str.size > PROTO_MAX_STRING || memchr(a->via.str.ptr, '\0', a->via.str.size))
            return codec_fail_field(c, -EINVAL, f->key, "entry %u is too long or holds NUL", i);
        (*argv)[i] = xstrndup(a->via.str.ptr, a->via.str.size);
        *count_of(f, base) = i + 1;
    }
    return 0;
}

static int
decode_bin(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f, void *base)
{
    char **out = (char **)((char *)base + f->off);
    const char *p = NULL;
    uint32_t *n = count_of(f, base);
    int r = codec_get_bin(c, map, f->key, f->required, f->max, &p, n);

    if (r > 0 && *n > 0) {
        *out = xmalloc(*n);
        memcpy(*out, p, *n);
    }
    return r;
}

static int
decode_error(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f,
             enum msg_error *code)
{
    char name[32];
    int r = codec_get_str(c, map, f->key, f->required, name, sizeof(name));

    if (r <= 0)
        return r;
    *code = msg_error_from_name(name);
    if (*code == MSG_ERR_NONE)
        *code = MSG_ERR_INTERNAL;
    return r;
}

/* An enum as its name: one of f->names. */
static int
decode_name(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f,
            uint32_t *out)
{
    char name[32];
    int r = codec_get_str(c, map, f->key, f->required, name, sizeof(name));

    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < f->max; i++)
        if (strcmp(f->names[i], name) == 0) {
            *out = i;
            return r;
        }
    return codec_fail_field(c, -EINVAL, f->key, "unknown value '%s'", name);
}

static int decode_fields(struct codec_ctx *c, const msgpack_object *map, const struct wire_table *t,
                         void *base);

static int
decode_map(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f, void *base)
{
    const msgpack_object *o;
    int r = codec_get_container(c, map, f->key, f->required, MSGPACK_OBJECT_MAP, f->max, &o);
    if (r <= 0)
        return r;
    size_t old = codec_path_push(c, "%s", f->key);
    TRY(decode_fields(c, o, f->sub, (char *)base + f->off));
    codec_path_pop(c, old);
    return 0;
}

/* A list of maps, inline in the struct or allocated (owned lists leave the
 * pointer NULL when empty). The count is set before the entries are read,
 * so msg_clear frees an owned list even when an entry is refused. */
static int
decode_list(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f, void *base)
{
    char *elems = (char *)base + f->off;
    const msgpack_object *o;
    int r = codec_get_container(c, map, f->key, f->required, MSGPACK_OBJECT_ARRAY, f->max, &o);
    if (r <= 0 || o->via.array.size == 0)
        return r < 0 ? r : 0;
    if (f->owned) {
        *(void **)elems = xcalloc(o->via.array.size, f->elem);
        elems = *(char **)elems;
    }
    *count_of(f, base) = o->via.array.size;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        size_t old = codec_path_push(c, "%s[%u]", f->key, i);
        if (e->type != MSGPACK_OBJECT_MAP)
            return codec_fail(c, -EINVAL, "field '%s': not a map", c->path);
        TRY(decode_fields(c, e, f->sub, elems + i * f->elem));
        codec_path_pop(c, old);
    }
    return 0;
}

static int
decode_field(struct codec_ctx *c, const msgpack_object *map, const struct wire_field *f, void *base)
{
    void *p = (char *)base + f->off;
    uint64_t mask;
    int r;

    switch (f->kind) {
    case W_U64:
        return codec_get_u64(c, map, f->key, f->required, UINT64_MAX, p);
    case W_U32:
        return codec_get_u32(c, map, f->key, f->required, UINT32_MAX, p);
    case W_I32:
        return codec_get_i32(c, map, f->key, f->required, p);
    case W_BOOL:
        return codec_get_bool(c, map, f->key, f->required, p);
    case W_STR:
        return codec_get_str(c, map, f->key, f->required, p, f->size);
    case W_BIN:
        return decode_bin(c, map, f, base);
    case W_ERROR:
        return decode_error(c, map, f, p);
    case W_NAME:
        return decode_name(c, map, f, p);
    case W_LABELS:
        return decode_labels(c, map, f, base);
    case W_CAPS:
        return decode_names(c, map, f, p);
    case W_FLAGS:
        mask = *(uint32_t *)p;
        r = decode_names(c, map, f, &mask);
        *(uint32_t *)p = (uint32_t)mask;
        return r;
    case W_IPS:
        return decode_ips(c, map, f, base);
    case W_ARGV:
        return decode_argv(c, map, f, base);
    case W_MAP:
        return decode_map(c, map, f, base);
    case W_LIST:
        return decode_list(c, map, f, base);
    }
    return codec_fail_field(c, -EINVAL, f->key, "unknown kind");
}

/* Reads every field of t from map, in table order (so the first problem
 * reported is the first in wire order). Keys not in t are ignored: a newer
 * peer may add optional fields. */
static int
decode_fields(struct codec_ctx *c, const msgpack_object *map, const struct wire_table *t,
              void *base)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct wire_field *f = &t->fields[i];
        int r = decode_field(c, map, f, base);
        if (r < 0)
            return r;
        if (r > 0 && f->seen)
            *(bool *)((char *)base + f->seen - 1) = true;
    }
    return 0;
}

int
msg_decode(const char *buf, size_t len, struct msg *m, char *errbuf, size_t errlen)
{
    struct codec_ctx c = {.err = errbuf, .errlen = errlen};
    msgpack_unpacked up;
    uint64_t id = 0;
    bool have_id = false;
    size_t off = 0;
    int r;

    /* Not all 19.7 KiB (an ack uses 64 bytes): the type's member once the
     * envelope names it, the whole union if refused before that. */
    m->type = MSG_INVALID;
    if (errbuf && errlen > 0)
        errbuf[0] = '\0';
    r = buf ? scan_frame((const uint8_t *)buf, len, &id, &have_id, errbuf, errlen)
            : codec_fail(&c, -EBADMSG, "no frame");
    m->id = have_id ? id : 0;
    msgpack_unpacked_init(&up);
    if (r >= 0 &&
        (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len))
        r = codec_fail(&c, -EBADMSG, "msgpack refused the frame");
    if (r >= 0)
        r = codec_read_envelope(&c, &up.data, m);
    if (r >= 0) {
        memset(&m->u, 0, msg_member_size(m->type));
        r = decode_fields(&c, &up.data, &msg_tables[m->type], &m->u);
    } else {
        m->type = MSG_INVALID;
        memset(&m->u, 0, sizeof(m->u));
    }
    msgpack_unpacked_destroy(&up);
    if (r >= 0)
        r = codec_check_msg(&c, m);
    return r;
}

/* --------------------------------------------------------------- encoding */

/* The packer's output: a growing buffer that aborts on OOM like every
 * x-allocator, so no pack call can fail. */
struct outbuf {
    char *data;  /* bytes written so far (owned) */
    size_t len;  /* bytes used */
    size_t size; /* bytes allocated */
};

static int
outbuf_write(void *data, const char *buf, size_t len)
{
    struct outbuf *o = data;
    if (len == 0)
        return 0;
    if (len > o->size - o->len) {
        size_t size = o->size ? o->size : 256;
        while (size - o->len < len)
            size *= 2;
        o->data = xrealloc(o->data, size);
        o->size = size;
    }
    memcpy(o->data + o->len, buf, len);
    o->len += len;
    return 0;
}

static void
pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* An array of the names of the bits set in mask (capabilities or flags);
 * codec_check_msg has made sure every set bit has a name. */
static void
pk_names(msgpack_packer *pk, enum wire_kind kind, uint64_t mask)
{
    unsigned nbits = kind == W_CAPS ? SPEC_CAP_MAX + 1 : ARRAY_SIZE(flag_names);

    msgpack_pack_array(pk, (size_t)__builtin_popcountll(mask));
    for (unsigned i = 0; i < nbits; i++)
        if (mask & (1ULL << i))
            pk_str(pk, kind == W_CAPS ? spec_cap_name(i) : flag_names[i]);
}

static void pk_fields(msgpack_packer *pk, const struct wire_table *t, const void *base);

/* Whether field f of base goes out: not when its seen flag is false (the
 * sender does not know the value, as an older peer would not send it). */
static bool
sent(const struct wire_field *f, const void *base)
{
    return !f->seen || *(const bool *)((const char *)base + f->seen - 1);
}

/* The fields of t that go out: the count of its map's header. */
static uint32_t
fields_sent(const struct wire_table *t, const void *base)
{
    uint32_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += sent(&t->fields[i], base);
    return n;
}

/* The containers: their entries follow the header. */
static void
pk_container(msgpack_packer *pk, const struct wire_field *f, const void *base)
{
    const void *p = (const char *)base + f->off;
    /* Every container kind but W_MAP has a count member (maybe at offset 0). */
    uint32_t n = f->kind == W_MAP ? 0 : *(const uint32_t *)((const char *)base + f->count);

    switch (f->kind) {
    case W_LABELS:
        msgpack_pack_map(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            pk_str(pk, ((const struct spec_label *)p)[i].key);
            pk_str(pk, ((const struct spec_label *)p)[i].value);
        }
        break;
    case W_IPS:
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            char text[NETADDR_STRLEN];
            pk_str(pk, netaddr_format(&((const struct netaddr *)p)[i], true, text, sizeof(text)));
        }
        break;
    case W_ARGV:
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++)
            pk_str(pk, (*(char *const *const *)p)[i]);
        break;
    case W_MAP:
        msgpack_pack_map(pk, fields_sent(f->sub, p));
        pk_fields(pk, f->sub, p);
        break;
    case W_LIST: {
        const char *elems = f->owned ? *(const char *const *)p : p;
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            msgpack_pack_map(pk, fields_sent(f->sub, elems + i * f->elem));
            pk_fields(pk, f->sub, elems + i * f->elem);
        }
        break;
    }
    default:
        break;
    }
}

static void
pk_field(msgpack_packer *pk, const struct wire_field *f, const void *base)
{
    const void *p = (const char *)base + f->off;

    pk_str(pk, f->key);
    switch (f->kind) {
    case W_U64:
        msgpack_pack_uint64(pk, *(const uint64_t *)p);
        break;
    case W_U32:
        msgpack_pack_uint64(pk, *(const uint32_t *)p);
        break;
    case W_I32:
        msgpack_pack_int32(pk, *(const int32_t *)p);
        break;
    case W_BOOL:
        if (*(const bool *)p)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case W_STR:
        pk_str(pk, p);
        break;
    case W_BIN: {
        uint32_t n = *(const uint32_t *)((const char *)base + f->count);
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, *(char *const *)p, n);
        break;
    }
    case W_ERROR:
        pk_str(pk, msg_error_name(*(const enum msg_error *)p));
        break;
    case W_NAME:
        /* codec_check_msg has made sure the value has a name. */
        pk_str(pk, f->names[*(const uint32_t *)p]);
        break;
    case W_CAPS:
        pk_names(pk, f->kind, *(const uint64_t *)p);
        break;
    case W_FLAGS:
        pk_names(pk, f->kind, *(const uint32_t *)p);
        break;
    default:
        pk_container(pk, f, base);
        break;
    }
}

static void
pk_fields(msgpack_packer *pk, const struct wire_table *t, const void *base)
{
    for (size_t i = 0; i < t->n; i++)
        if (sent(&t->fields[i], base))
            pk_field(pk, &t->fields[i], base);
}

int
msg_encode(const struct msg *m, char **buf, size_t *len)
{
    struct codec_ctx c = {0};
    struct outbuf out = {0};
    msgpack_packer pk;
    int r;

    *buf = NULL;
    *len = 0;
    if (!m || !msg_type_name(m->type))
        return -EINVAL;
    r = codec_check_msg(&c, m);
    if (r < 0)
        return r;

    msgpack_packer_init(&pk, &out, outbuf_write);
    msgpack_pack_map(&pk, 3 + fields_sent(&msg_tables[m->type], &m->u));
    /* "id" first, so a receiver can nack even a frame cut short. */
    pk_str(&pk, "id");
    msgpack_pack_uint64(&pk, m->id);
    pk_str(&pk, "v");
    msgpack_pack_uint64(&pk, PROTO_VERSION);
    pk_str(&pk, "type");
    pk_str(&pk, msg_type_name(m->type));
    pk_fields(&pk, &msg_tables[m->type], &m->u);
    if (out.len > PROTO_MAX_FRAME) {
        free(out.data);
        return -EINVAL;
    }
    *buf = out.data;
    *len = out.len;
    return 0;
}
