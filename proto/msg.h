/* The wire protocol's messages as typed values (protocol v1).
 *
 * One message is one ZeroMQ frame holding one msgpack map:
 *   { "v": 1, "type": "guest.apply", "id": 42, ...type-specific fields }
 * "v" is the protocol's major version; a peer with a higher major is refused.
 * Minor changes only add optional fields, which older peers ignore. "id" is
 * the sender's request id; ack, nack and exec results name the request they
 * answer in "ref". docs/protocol.md is the reference for every field.
 *
 * Field keys are the struct fields' names, except: a message's guest id is
 * "guest" (because "id" is the request id), guest_spec travels as a nested
 * "spec" map in which template_name is "template" and addrs is "ips" (text
 * "10.0.0.5/32"), caps and flags are arrays of names, labels a map, exec
 * output a bin. The encoder writes every field; optional ones may be absent.
 *
 * Decoding (msg_decode) is the only place a msgpack object is looked at:
 * nothing raw escapes proto/. It never trusts the peer: every field is type-
 * and range-checked, counts are checked against the bytes left before
 * anything is allocated, strings, arrays, maps and nesting are capped.
 *
 * Threading: no state; every function may be called from any thread on
 * distinct messages. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/spec.h"
#include "proto/usage.h"

#define PROTO_VERSION       1
#define PROTO_MAX_FRAME     (8u << 20)   /* ZMQ_MAXMSGSIZE on both ends */
#define PROTO_MAX_STRING    4096         /* any string field, except exec output */
#define PROTO_MAX_ARRAY     65536        /* any array or map, except where capped lower */
#define PROTO_MAX_DEPTH     8            /* nesting of maps and arrays */
#define PROTO_MAX_INVENTORY 65536        /* guests in one hello */
#define PROTO_MAX_SAMPLES   4096         /* samples in one usage batch */
#define PROTO_MAX_ARGV      256          /* arguments of one exec */
#define PROTO_MAX_EXEC_OUT  (1u << 20)   /* bytes of stdout or stderr in an exec result */
#define PROTO_MAX_LABELS    32           /* node labels in hello */
#define PROTO_MAX_TEMPLATES 64           /* templates a node reports in hello */
#define PROTO_MAX_CONSOLE   (1u << 20)   /* bytes of console in a guest.console.result */
#define PROTO_MAX_OBJECTS   (1u << 20)   /* msgpack objects (keys included) in one frame */
#define PROTO_STREAM_CHUNK  (32u << 10)  /* bytes of one stream.data */
#define PROTO_STREAM_WINDOW (256u << 10) /* bytes a stream's sender may have unacknowledged */

enum msg_type {
    MSG_INVALID = 0,
    /* node -> master */
    MSG_HELLO,          /* "hello" */
    MSG_HEARTBEAT,      /* "heartbeat" */
    MSG_ACK,            /* "ack" */
    MSG_NACK,           /* "nack" */
    MSG_USAGE,          /* "usage" */
    MSG_EVENT,          /* "event" */
    MSG_EXEC_RESULT,    /* "guest.exec.result" */
    MSG_INVENTORY,      /* "inventory": the answer to inventory.get */
    MSG_CONSOLE_RESULT, /* "guest.console.result": the answer to guest.console */
    MSG_TRAFFIC_GET,    /* "traffic.get": the trafstat counters of the node's guests */
    /* master -> node */
    MSG_WELCOME,       /* "welcome": the master's answer to hello */
    MSG_GUEST_APPLY,   /* "guest.apply" */
    MSG_GUEST_START,   /* "guest.start" */
    MSG_GUEST_STOP,    /* "guest.stop" */
    MSG_GUEST_DESTROY, /* "guest.destroy" */
    MSG_GUEST_EXEC,    /* "guest.exec" */
    /* interactive sessions (guest.shell and its stream) */
    MSG_SHELL_OPEN,    /* "guest.shell": master -> node, answered by ack or nack */
    MSG_STREAM_CTL,    /* "stream.ctl": master -> node, window size, signal, hang up */
    MSG_STREAM_DATA,   /* "stream.data": both ways, bytes of a session */
    MSG_STREAM_ACK,    /* "stream.ack": both ways, bytes consumed (flow control) */
    MSG_STREAM_EXIT,   /* "stream.exit": node -> master, the session's command ended */
    MSG_INVENTORY_GET, /* "inventory.get": the master's view differs, send what you have */
    MSG_TRAFFIC,       /* "traffic": the answer to traffic.get */
    MSG_GUEST_CONSOLE, /* "guest.console": the tail of a guest's console */
    /* moving a guest between nodes (docs/protocol.md, "Moving a guest") */
    MSG_MIGRATE_PREPARE, /* "guest.migrate.prepare": to the target */
    MSG_MIGRATE_SEND,    /* "guest.migrate.send": to the source */
    MSG_MIGRATE_COMMIT,  /* "guest.migrate.commit": to the target */
    MSG_MIGRATE_FINISH,  /* "guest.migrate.finish": to the source */
    MSG_MIGRATE_ABORT,   /* "guest.migrate.abort": to either */
    MSG_MIGRATE_STATUS,  /* "guest.migrate.status": node -> master, answers the five */
    /* node -> master, over a join token's CurveZMQ session only */
    MSG_JOIN, /* "join": register this node's public key */
    /* master -> node: guest.apply, then guest.start, one answer (a newer node) */
    MSG_GUEST_APPLY_START, /* "guest.apply.start" */
    MSG_TYPE_COUNT
};

/* Machine-readable error codes carried by nack (and mapped to HTTP statuses
 * by the master's API). The wire form is the lower-case string in the comment. */
enum msg_error {
    MSG_ERR_NONE = 0,
    MSG_ERR_BAD_REQUEST,  /* "bad_request": malformed or out-of-range field */
    MSG_ERR_UNKNOWN_TYPE, /* "unknown_type": a message type this peer does not know */
    MSG_ERR_VERSION,      /* "version": a protocol major version this peer does not speak */
    MSG_ERR_NOT_FOUND,    /* "not_found": unknown guest */
    MSG_ERR_CONFLICT,     /* "conflict": the guest's state forbids it (e.g. destroy running) */
    MSG_ERR_STALE,        /* "stale": generation older than the one applied */
    MSG_ERR_LOCKED,       /* "locked": the guest's lock flag is set */
    MSG_ERR_PRIVATE,      /* "private": exec into a private guest */
    MSG_ERR_NO_SPACE,     /* "no_space": disk full, or a limit below current use */
    MSG_ERR_UNSUPPORTED,  /* "unsupported": this node cannot do it (kernel, backend) */
    MSG_ERR_BUSY,         /* "busy": try again later */
    MSG_ERR_INTERNAL,     /* "internal": anything else; the message says what */
    MSG_ERR_COUNT
};

/* One guest in a node's inventory. */
struct msg_inventory_item {
    char id[SPEC_ID_LEN + 1];    /* guest id */
    char name[NAME_MAX_LEN + 1]; /* guest name */
    uint64_t generation;         /* generation the node has applied */
    bool running;                /* its init runs */
    char desired[8];             /* "running", "stopped" (the node's record), "" = not said */
};

/* A root filesystem template the node has. */
struct msg_template {
    char name[NAME_MAX_LEN + 1]; /* the template's name, a name */
    uint64_t size;               /* bytes of its files, 0 = not known */
    char checksum[72];           /* "sha256:" and 64 hex digits of its tree, "" = not known */
};
/* One guest's part of the inventory digest a heartbeat carries: both ends
 * add these up (mod 2^64) over the guests they believe the node has, so a
 * difference in any guest's presence, applied generation or run state shows
 * in the next heartbeat. An FNV-1a hash of the three. */
uint64_t msg_digest_item(const char *id, uint64_t generation, bool running);

struct msg_hello {
    char node[NAME_MAX_LEN + 1];                /* the node's name (also its ZeroMQ identity) */
    char agent_version[32];                     /* vfleet version of the agent */
    char kernel[65];                            /* uname release */
    char cgroup[8];                             /* "v1", "v2", "hybrid" */
    char backend[16];                           /* "linux", "sim" */
    uint32_t cpus;                              /* capacity: millicores */
    uint64_t memory;                            /* capacity: bytes */
    uint64_t disk;                              /* capacity: bytes */
    uint32_t max_guests;                        /* capacity: guests */
    uint32_t n_labels;                          /* entries in labels */
    struct spec_label labels[PROTO_MAX_LABELS]; /* node labels from its config */
    uint32_t n_templates;                       /* entries in templates */
    struct msg_template templates[PROTO_MAX_TEMPLATES]; /* templates it can create guests from */
    uint32_t n_inventory;                               /* entries in inventory */
    struct msg_inventory_item *inventory;               /* every guest on the node (owned) */
    uint32_t leftovers; /* guests' leftovers in its state directory at the agent's start */
    bool has_leftovers; /* leftovers was sent (decoded: an older node sends none) */
};

struct msg_heartbeat {
    uint64_t seq;       /* increases by one per heartbeat since the agent started */
    uint32_t n_guests;  /* guests on the node */
    uint32_t n_running; /* of which running */
    uint64_t digest;    /* sum of msg_digest_item over the guests, 0 = not sent */
};

struct msg_welcome {
    uint32_t heartbeat_ms; /* how often the master wants heartbeats */
    uint32_t usage_ms;     /* how often the master wants usage batches */
    uint64_t ref;          /* id of the hello it answers (the node's outbox drops it), 0 = any */
};

struct msg_ack {
    uint64_t ref;             /* id of the request acknowledged */
    char id[SPEC_ID_LEN + 1]; /* guest id, "" when not about a guest */
    uint64_t generation;      /* generation now applied on the node */
    bool running;             /* the guest's init runs after the command */
};

struct msg_nack {
    uint64_t ref;                       /* id of the request refused (0 when unreadable) */
    char id[SPEC_ID_LEN + 1];           /* guest id, "" when not about a guest */
    enum msg_error code;                /* machine-readable reason */
    char message[PROTO_MAX_STRING + 1]; /* human-readable detail */
};

struct msg_usage {
    uint32_t n_samples;          /* entries in samples */
    struct guest_usage *samples; /* one per guest (owned) */
};

struct msg_event {
    char id[SPEC_ID_LEN + 1];           /* guest id, "" for a node event */
    char kind[32];                      /* "started", "stopped", "exited", "oom", "lost", ... */
    uint64_t time_ms;                   /* wall clock, ms since the epoch */
    int32_t exit_code;                  /* for "exited": status, -1 when killed by a signal */
    char message[PROTO_MAX_STRING + 1]; /* human-readable detail */
    uint64_t count;                     /* for "oom": OOM kills in the guest's cgroup so far */
    int32_t signal;                     /* for "exited": the killing signal, 0 = none or unknown */
    char desired[8];                    /* the node's desired state after it, "" = unchanged */
};

/* inventory: what the node has now, in answer to inventory.get. */
struct msg_inventory {
    uint64_t ref;                         /* id of the inventory.get it answers */
    uint32_t n_inventory;                 /* entries in inventory */
    struct msg_inventory_item *inventory; /* every guest on the node (owned) */
    struct guest_spec spec;               /* the guest inventory.get named; id "" = none */
};

/* inventory.get: the master asks for the node's inventory, and for one
 * guest's spec when it names one (an orphan it wants to know). */
struct msg_inventory_get {
    char id[SPEC_ID_LEN + 1]; /* guest whose spec to include, "" = none */
};

/* traffic.get: the node reads FreeVPS trafstat, whose counters the master
 * keeps (so the API's view and the node's agree). */
struct msg_traffic_get {
    bool reset; /* move each guest's mark to now (trafstat is reset by reading) */
};

/* One guest's traffic since its mark. */
struct msg_traffic_item {
    char id[SPEC_ID_LEN + 1]; /* guest id */
    uint64_t rx_bytes;        /* bytes into the guest */
    uint64_t tx_bytes;        /* bytes out of the guest */
    uint64_t rx_packets;      /* packets in */
    uint64_t tx_packets;      /* packets out */
};

/* traffic: the master's answer, for every guest placed on the node that has
 * a usage sample. */
struct msg_traffic {
    uint64_t ref;                   /* id of the traffic.get */
    uint32_t n_items;               /* entries in items */
    struct msg_traffic_item *items; /* owned */
};

/* guest.start, guest.stop and guest.destroy name the guest and the
 * generation the master last sent, so a node that is behind can say so. */
struct msg_guest_ref {
    char id[SPEC_ID_LEN + 1]; /* guest id */
    uint64_t generation;      /* master's current generation of the guest */
    uint32_t timeout;         /* guest.stop: seconds before SIGKILL, 0 = the spec's */
};

struct msg_guest_exec {
    char id[SPEC_ID_LEN + 1]; /* guest id */
    uint32_t argc;            /* entries in argv */
    char **argv;              /* NULL-terminated (owned) */
    uint32_t timeout_ms;      /* 0 = 30 s */
    uint32_t max_output;      /* bytes per stream, at most PROTO_MAX_EXEC_OUT, 0 = 64 KiB */
};

/* A node registering its CurveZMQ key, sent with a join token's key pair
 * (docs/protocol-transport.md, "Joining"); answered by ack or nack. */
struct msg_join {
    char node[NAME_MAX_LEN + 1]; /* the name the node will go by */
    char key[40 + 1];            /* its public key, Z85 */
};

struct msg_exec_result {
    uint64_t ref;             /* id of the guest.exec request */
    char id[SPEC_ID_LEN + 1]; /* guest id */
    int32_t exit_code;        /* exit status, -1 when killed by a signal */
    int32_t signal;           /* killing signal, 0 when it exited */
    bool timed_out;           /* killed at the timeout */
    bool truncated;           /* output was cut at max_output */
    uint32_t out_len;         /* bytes in out */
    char *out;                /* stdout (owned, not NUL-terminated) */
    uint32_t err_len;         /* bytes in err */
    char *err;                /* stderr (owned, not NUL-terminated) */
};

#define MIGRATE_SECRET_LEN   64  /* a one-time transfer secret: 32 random bytes in hex */
#define MIGRATE_DIGEST_LEN   64  /* an image digest: SHA-256 in hex */
#define MIGRATE_KEY_LEN      40  /* a CurveZMQ public key in Z85 */
#define MIGRATE_ENDPOINT_MAX 255 /* a data channel endpoint, "tcp://10.87.255.2:40123" */

/* The network counters a moved guest continues from (what the source
 * counted over the guest's life), so traffic never resets with a move. */
struct msg_migrate_counters {
    uint64_t net_rx_bytes;   /* bytes into the guest */
    uint64_t net_tx_bytes;   /* bytes out of the guest */
    uint64_t net_rx_packets; /* packets in */
    uint64_t net_tx_packets; /* packets out */
    uint64_t tcp_refused;    /* failcnt.tcp: connections refused at the socket limit */
};

/* guest.migrate.prepare / send / commit / finish / abort: one struct, each
 * type carrying the fields its table lists (codec.c). */
struct msg_migrate {
    char op[SPEC_ID_LEN + 1];                /* the operation, a UUID */
    char id[SPEC_ID_LEN + 1];                /* the guest */
    char peer[NAME_MAX_LEN + 1];             /* prepare, send: the other node */
    char endpoint[MIGRATE_ENDPOINT_MAX + 1]; /* send: the target's data channel */
    char secret[MIGRATE_SECRET_LEN + 1];     /* prepare, send: the one-time transfer secret */
    char peer_key[MIGRATE_KEY_LEN + 1];      /* prepare, send: the other node's public key, "" */
    bool live;                               /* prepare, send: near-live (copy while it runs) */
    bool start;                              /* commit: start on the target; abort: start again */
    char role[8];                            /* abort: "source" or "target" */
    bool archive; /* send: pack the guest's files (an export) instead of its image; prepare,
                   * commit: what arrives is an archive to unpack into a new disk (an import) */
    char digest[MIGRATE_DIGEST_LEN + 1];  /* commit: the digest the source sent */
    struct msg_migrate_counters counters; /* commit: the counters to continue from */
    struct guest_spec spec;               /* prepare, commit: the guest as the target runs it */
    /* prepare, commit, abort: a template to receive from the master's library
     * instead of a guest ("" = a guest); id is then the operation's id and
     * there is no spec. */
    char template_name[NAME_MAX_LEN + 1];
};

/* guest.migrate.status: a node's answer to a migrate command (ref), or a
 * progress report about one (state "progress"). */
struct msg_migrate_status {
    uint64_t ref;                            /* the command it answers */
    char op[SPEC_ID_LEN + 1];                /* the operation */
    char id[SPEC_ID_LEN + 1];                /* the guest */
    char phase[16];                          /* "prepare", "send", "commit", "finish", "abort" */
    char state[16];                          /* "ready", "progress", "done", "failed" */
    char code[16];                           /* failed: an error code name, else "" */
    char message[PROTO_MAX_STRING + 1];      /* what happened, for people */
    char endpoint[MIGRATE_ENDPOINT_MAX + 1]; /* prepare ready: where the source connects */
    char key[MIGRATE_KEY_LEN + 1];           /* prepare ready: the target's public key, "" */
    uint32_t pass;                           /* send: the copy pass (1, 2 for near-live) */
    uint64_t bytes_done;                     /* send: bytes of this pass sent so far */
    uint64_t bytes_total;                    /* send: bytes of data (not holes) in this pass */
    char digest[MIGRATE_DIGEST_LEN + 1];     /* send done: the image's digest, both sides agree */
    uint64_t frozen_ms;                      /* send done: when the guest stopped or froze */
    uint64_t running_ms;                     /* commit done: when it ran on the target */
    uint64_t copy_ms;                        /* send done: how long the copy passes took */
    uint64_t last_bytes;                     /* send done: bytes of the last pass (frozen) */
    bool running;                            /* send done: it ran before; commit done: runs now */
    struct msg_migrate_counters counters;    /* send done: the guest's counters so far */
    char note[PROTO_MAX_STRING + 1];         /* send: how it was moved (the CRIU preflight) */
};

/* A TERM value: a terminal's name, at most MSG_TERM_MAX bytes. */
#define MSG_TERM_MAX 63
/* Whether s is a TERM value a shell session takes: at most MSG_TERM_MAX
 * ASCII letters, digits and "-_.+" ("" too: the default). The node
 * refuses any other (the codec's check of shell.open), and the master's
 * API refuses it first (?term=, API_P_TERM in master/api.h). */
bool msg_term_is_valid(const char *s);

/* guest.shell: a command in a running guest with a stream instead of a
 * result, on a terminal (a pty in the guest) or on pipes. */
struct msg_shell_open {
    char id[SPEC_ID_LEN + 1];    /* guest id */
    uint64_t session;            /* the master's number for the session, >= 1 */
    uint32_t argc;               /* entries in argv, 0 = root's login shell */
    char **argv;                 /* NULL-terminated (owned; NULL when argc is 0) */
    bool tty;                    /* on a terminal: one stream, window size, job control */
    uint32_t cols;               /* terminal width, 0..65535 */
    uint32_t rows;               /* terminal height, 0..65535 */
    char term[MSG_TERM_MAX + 1]; /* TERM for the command (msg_term_is_valid), "" = "xterm" */
    bool console;                /* no command: follow the guest's console (output only) */
};

/* stream.ctl: what the master's client asks of a running session. */
struct msg_stream_ctl {
    uint64_t session; /* the session */
    uint32_t cols;    /* new terminal width, 0 = unchanged */
    uint32_t rows;    /* new terminal height, 0 = unchanged */
    uint32_t signal;  /* a signal for the command's process group, 0 = none */
    bool close;       /* hang up: the command gets SIGHUP, then SIGKILL */
};

/* stream.data: bytes of a session. The receiver grants the window back with
 * stream.ack as it consumes them; a sender never has more than
 * PROTO_STREAM_WINDOW bytes unacknowledged. */
struct msg_stream_data {
    uint64_t session; /* the session */
    uint32_t fd;      /* node -> master: 1 stdout (the terminal), 2 stderr; master -> node: 0 */
    bool eof;         /* master -> node: no more input after these bytes */
    uint32_t len;     /* bytes in data, at most PROTO_STREAM_CHUNK */
    char *data;       /* the bytes (owned) */
};

/* stream.ack: the receiver consumed bytes of the other side's data. */
struct msg_stream_ack {
    uint64_t session; /* the session */
    uint32_t bytes;   /* consumed since the last ack, at most PROTO_STREAM_WINDOW */
};

/* stream.exit: the session ended; no stream.data for it follows. */
struct msg_stream_exit {
    uint64_t session;                   /* the session */
    int32_t exit_code;                  /* exit status, -1 when killed by a signal or not run */
    int32_t signal;                     /* the killing signal, 0 when it exited */
    char message[PROTO_MAX_STRING + 1]; /* why it could not run or ended early, "" */
};

/* guest.console: the last max_bytes of a guest's console ring. */
struct msg_guest_console {
    char id[SPEC_ID_LEN + 1]; /* guest id */
    uint32_t max_bytes;       /* at most PROTO_MAX_CONSOLE, 0 = 64 KiB */
};

struct msg_console_result {
    uint64_t ref;             /* id of the guest.console request */
    char id[SPEC_ID_LEN + 1]; /* guest id */
    uint64_t total;           /* bytes ever written to the console; total - len were dropped */
    uint32_t len;             /* bytes in data */
    char *data;               /* the tail, oldest first (owned, not NUL-terminated) */
};

/* A decoded (or to-be-encoded) message. Free with msg_clear. */
struct msg {
    enum msg_type type; /* which member of the union is set */
    uint64_t id;        /* sender's request id */
    union {
        struct msg_hello hello;
        struct msg_heartbeat heartbeat;
        struct msg_welcome welcome;
        struct msg_ack ack;
        struct msg_nack nack;
        struct msg_usage usage;
        struct msg_event event;
        struct msg_exec_result exec_result;
        struct msg_console_result console_result; /* MSG_CONSOLE_RESULT */
        struct msg_inventory inventory;           /* MSG_INVENTORY */
        struct msg_inventory_get inventory_get;   /* MSG_INVENTORY_GET */
        struct msg_traffic_get traffic_get;       /* MSG_TRAFFIC_GET */
        struct msg_traffic traffic;               /* MSG_TRAFFIC */
        struct guest_spec apply;                  /* MSG_GUEST_APPLY, MSG_GUEST_APPLY_START */
        struct msg_guest_ref guest;               /* MSG_GUEST_START, _STOP, _DESTROY */
        struct msg_guest_exec exec;               /* MSG_GUEST_EXEC */
        struct msg_guest_console console;         /* MSG_GUEST_CONSOLE */
        struct msg_migrate migrate;               /* MSG_MIGRATE_PREPARE .. _ABORT */
        struct msg_migrate_status migrate_status; /* MSG_MIGRATE_STATUS */
        struct msg_shell_open shell;              /* MSG_SHELL_OPEN */
        struct msg_stream_ctl stream_ctl;         /* MSG_STREAM_CTL */
        struct msg_stream_data stream_data;       /* MSG_STREAM_DATA */
        struct msg_stream_ack stream_ack;         /* MSG_STREAM_ACK */
        struct msg_stream_exit stream_exit;       /* MSG_STREAM_EXIT */
        struct msg_join join;                     /* MSG_JOIN */
    } u;
};

/* Frees what a message owns and zeroes its type, its id and its member of
 * the union (the whole union for MSG_INVALID), so that it reads as
 * {.type = MSG_INVALID}. NULL-safe. m->type must name the member that was
 * filled: the other members are not looked at (a member larger than the
 * type's may keep bytes from before). */
void msg_clear(struct msg *m);

/* Bytes of the union member a message of type t uses (its sizeof); the
 * whole union for MSG_INVALID and values out of range. */
size_t msg_member_size(enum msg_type t);

/* Makes m a message of type t with id 0 and its member of the union zeroed:
 * what `struct msg m = {.type = t}` gives as far as encoding and msg_clear
 * look, without zeroing the whole 19.7 KiB (an ack uses 64 bytes). */
void msg_init(struct msg *m, enum msg_type t);

/* Encodes m into a new buffer (*buf, *len; caller frees with free()). m->id
 * is written as the request id. Returns 0, or -EINVAL when m holds a value
 * the protocol cannot carry (checked with the same rules as decoding, so what
 * we send the peer would accept; also when the frame would exceed
 * PROTO_MAX_FRAME). On failure *buf is NULL. m is not modified. */
int msg_encode(const struct msg *m, char **buf, size_t *len);

/* Decodes one frame into m (msg_clear it after, also on failure). m's type,
 * id and the member of the union its type uses are zeroed before any field
 * is read (the whole union when the frame names no known type); the rest of
 * the union is not written. Returns 0, or:
 *   -EBADMSG  not a well-formed, bounded msgpack map of known shape
 *   -EPROTONOSUPPORT  a higher major version ("v")
 *   -ENOMSG   a well-formed message of a type this side does not know
 *   -EINVAL   a known type with a missing, mistyped or out-of-range field
 * In every failure case where the frame carried a readable "id", m->id is set
 * so the caller can nack it ("readable": an unsigned "id" in the top-level
 * map before the first byte the pre-scan refused). On -EINVAL m->type is also
 * set. When errbuf is not NULL it receives a description of the first problem
 * ("field 'spec.limits.memory': not an unsigned integer"), "" on success.
 * An unknown nack "code" (added by a newer peer) decodes as MSG_ERR_INTERNAL.
 * buf is only read during the call; nothing in m points into it. */
int msg_decode(const char *buf, size_t len, struct msg *m, char *errbuf, size_t errlen);

/* Names on the wire (static strings). The _name functions return NULL for
 * MSG_INVALID / MSG_ERR_NONE and out-of-range values; the _from_name ones
 * return MSG_INVALID / MSG_ERR_NONE for an unknown or NULL name. */
const char *msg_type_name(enum msg_type t);
enum msg_type msg_type_from_name(const char *s);
const char *msg_error_name(enum msg_error e);
enum msg_error msg_error_from_name(const char *s);
/* Maps a backend's -errno (the sign is ignored) to the nack code a peer
 * should see, so backends choose their errno by the code they mean:
 *   0 -> MSG_ERR_NONE            EINVAL -> bad_request     ENOENT -> not_found
 *   EEXIST, EALREADY -> conflict ESTALE -> stale           ENOLCK -> locked
 *   EACCES -> private            ENOSPC, EDQUOT -> no_space
 *   EOPNOTSUPP, ENOSYS -> unsupported                      EAGAIN, EBUSY -> busy
 *   anything else (EPERM, EIO, ...) -> internal */
enum msg_error msg_error_from_errno(int err);
