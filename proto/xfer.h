/* The data channel: a disk image (or an archive) travels over ZeroMQ from a
 * sender to a receiver, node to node, never through the master's control
 * link. The shape is the zguide's file transfer with credit-based flow
 * control ("Transferring Files", chapter 7): the receiver grants credit in
 * chunks, the sender never has more chunks in flight than it was granted,
 * so a slow disk on the receiving side slows the sender instead of filling
 * queues.
 *
 * Roles: the receiver binds a ROUTER (its endpoint goes to the sender through
 * the master), the sender connects a DEALER. Every session starts with HELLO,
 * which carries the one-time transfer secret the master handed both sides;
 * a receiver answers a wrong secret with DENY and nothing else. When node
 * keys are given (struct xfer_keys), the channel is also CurveZMQ: the
 * receiver is the server with its node key and admits only the sender's
 * public key, the sender authenticates the receiver by its public key, both
 * as the master handed them out; without keys it is plaintext (secret
 * only), over ipc:// or insecure tcp:// links.
 *
 * The image is cut in fixed chunks (XFER_CHUNK bytes, the last one shorter).
 * A pass walks the chunks in order:
 *   - sparse-aware: chunks the file has no data in (SEEK_DATA/SEEK_HOLE) and
 *     chunks that read as zeros are not sent; the receiver's file is sparse
 *     from the start and a HOLE message punches a chunk that became zeros;
 *   - checksummed end to end: every DATA carries the SHA-256 of its bytes
 *     (GnuTLS, with the CPU's SHA extensions), checked before it is written;
 *     the image's digest is the SHA-256 of its chunks' hashes in order
 *     (a hole counts as zeros), computed by the sender from what it read and
 *     by the receiver from what it reads back from disk after fdatasync (the
 *     chunks written since the last sync, every 64 MiB and at the end of a
 *     pass; a restarted receiver reads the whole file at the end), and the
 *     two must agree;
 *   - incremental: a later pass of the same sender hashes every chunk again
 *     (on a few threads, ahead of the sending), compares with the previous
 *     pass's hashes and sends only the chunks that changed (near-live moves:
 *     copy while the guest runs, freeze, send the delta);
 *   - resumable: DATA frames carry a session and a sequence number; a gap (a
 *     dropped link loses what was queued on it) makes the receiver ignore the
 *     rest of the session, the sender's silence timer runs out, and a new
 *     HELLO learns from READY how far the receiver got in this pass; the
 *     receiver persists that point (after fdatasync) in its state file, so a
 *     restarted receiver resumes too.
 *
 * docs/protocol.md ("The data channel") has the frames.
 *
 * Threads: an xfer_send_t is used by one thread at a time (its socket moves
 * with it after a pthread_join or another full barrier). An xfer_recv_t runs
 * its own thread; its functions are safe from any one other thread.
 * Errors: >= 0 or -errno; -EACCES a denied secret or key, -ETIMEDOUT a silent peer,
 * -EBADMSG a checksum or digest that does not match, -ECANCELED a cancel. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XFER_CHUNK        (256u << 10) /* bytes per chunk */
#define XFER_WINDOW       32           /* chunks a receiver lets be in flight */
#define XFER_HASH_LEN     32           /* SHA-256 */
#define XFER_SECRET_LEN   32           /* bytes of a transfer secret (64 hex digits) */
#define XFER_SILENCE_MS   3000         /* no answer for this long: a new session */
#define XFER_GIVE_UP_MS   120000       /* no answer for this long: -ETIMEDOUT */
#define XFER_MAX_SIZE     (1ULL << 48) /* largest image (256 TiB, DISK_MAX_SIZE) */
#define XFER_ENDPOINT_MAX 255          /* an endpoint's text */

/* CurveZMQ keys in Z85 (40 characters each); NULL members = plaintext.
 * Both ends are pinned: the sender checks the receiver's key (server_key),
 * the receiver lets only client_key through its handshake (its own ZAP
 * handler), so another node's key is refused before HELLO. */
struct xfer_keys {
    const char *public_key; /* this end's node key */
    const char *secret_key; /* its secret half */
    const char *server_key; /* sender: the receiver's public key */
    const char *client_key; /* receiver: the sender's public key, required */
};

/* Where a pass stands, for progress reports. */
struct xfer_stats {
    uint32_t pass;       /* 1, 2, ... */
    bool final;          /* the last pass: ends with the digest check */
    uint64_t scanned;    /* data bytes of the image looked at so far */
    uint64_t data_total; /* data bytes in the image (not holes), this pass */
    uint64_t sent;       /* payload bytes sent in this pass */
    uint64_t skipped;    /* bytes not sent: unchanged since the last pass, or zeros */
    uint64_t resumed;    /* bytes the receiver already had at a resume */
    uint32_t sessions;   /* HELLOs it took (1 = no dropped link) */
};

/* Hex text of a secret or digest and back: 0 or -EINVAL. */
int xfer_hex_decode(const char *hex, uint8_t *out, size_t n);
void xfer_hex_encode(const uint8_t *in, size_t n, char *out);
/* A fresh random secret as 64 hex digits. */
void xfer_secret_new(char out[2 * XFER_SECRET_LEN + 1]);

/* The digest of a file as both ends compute it: 0 with out filled, or -errno. */
int xfer_file_digest(int fd, uint8_t out[XFER_HASH_LEN]);

/* ---- sender ---- */

typedef struct xfer_send xfer_send_t;

/* Connects to endpoint (no I/O yet). secret is 64 hex digits. keys may be
 * NULL. Returns 0 with *out, or -EINVAL / -errno from libzmq. */
int xfer_send_new(const char *endpoint, const char *secret, const struct xfer_keys *keys,
                  xfer_send_t **out);
void xfer_send_destroy(xfer_send_t **p);

/* Called between chunks with the pass's progress; the sender's thread. */
typedef void (*xfer_progress_fn)(void *userdata, const struct xfer_stats *st);

/* Sends the file at fd as the next pass (numbered from 1 by this sender).
 * A final pass ends when the receiver reports the digest of what it has,
 * which must equal the sender's (digest gets it). A pass after the first
 * sends only what changed since the previous one. cancel (may be NULL) is
 * polled between chunks. stats gets the pass's figures. err gets a sentence
 * on failure. */
int xfer_send_pass(xfer_send_t *s, int fd, bool final, atomic_bool *cancel, xfer_progress_fn fn,
                   void *userdata, uint8_t digest[XFER_HASH_LEN], struct xfer_stats *stats,
                   char *err, size_t errlen);

/* ---- receiver ---- */

typedef struct xfer_recv xfer_recv_t;

struct xfer_recv_config {
    const char *bind;             /* "tcp://10.87.255.2:*", "ipc:///run/x.sock" */
    const char *secret;           /* 64 hex digits */
    const struct xfer_keys *keys; /* NULL = plaintext */
    const char *path;             /* the file written (created 0600; kept when state says so) */
    const char *state;            /* where progress is persisted, NULL = nowhere */
    bool fresh;                   /* start over: truncate path and forget state */
};

/* What the receiver has, safe to read from any thread. */
struct xfer_recv_status {
    uint32_t pass;                 /* the pass in progress or last done */
    uint64_t offset;               /* bytes of it received in order (fdatasync'd or not) */
    uint64_t size;                 /* the image's size as the sender said */
    bool done;                     /* a final pass ended and its digest is known */
    uint8_t digest[XFER_HASH_LEN]; /* done: the digest read back from disk */
    int error;                     /* a failure that stopped the receiver, 0 = none */
    uint32_t refused;              /* CurveZMQ handshakes refused: another sender key */
    char message[256];             /* its sentence */
};

/* Called from the receiver's thread after a final pass completed (or the
 * receiver failed); userdata is the caller's. */
typedef void (*xfer_recv_fn)(void *userdata);

/* Opens (or re-opens, resuming from the state file) the file, binds and
 * starts the receiving thread. endpoint gets the bound endpoint (the port a
 * "*" resolved to). Returns 0 with *out, or -errno (-EADDRINUSE, ...). */
int xfer_recv_new(const struct xfer_recv_config *cfg, xfer_recv_fn fn, void *userdata,
                  xfer_recv_t **out, char endpoint[XFER_ENDPOINT_MAX + 1]);
void xfer_recv_status(xfer_recv_t *r, struct xfer_recv_status *out);
/* Stops the thread, closes the socket and the file; the file stays. */
void xfer_recv_destroy(xfer_recv_t **p);

/* The state file's view, for a receiver that is not running (a restarted
 * agent asked to commit): 0 with out filled, -ENOENT without a state file. */
int xfer_recv_load_state(const char *state, struct xfer_recv_status *out);
