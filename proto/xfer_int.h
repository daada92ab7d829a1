/* What the data channel's two halves share (xfer.c: frames, hashing, the
 * sender; xfer_recv.c: the receiver). Private to proto/xfer*.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/xfer.h"

#define XFER_MAGIC "VFX1"
#define XFER_HDR   80 /* bytes of a header frame */

enum xfer_type {
    XFER_HELLO = 1, /* S->R: session, pass, final, chunk, len = size, hash = secret */
    XFER_READY,     /* R->S: session, pass, offset = resume point, len = credit */
    XFER_DENY,      /* R->S: session; the secret is wrong (+ a sentence) */
    XFER_DATA,      /* S->R: session, seq, pass, offset, len, hash; + the bytes */
    XFER_HOLE,      /* S->R: the same without bytes: the chunk is zeros now */
    XFER_CREDIT,    /* R->S: session, len = chunks more */
    XFER_END,       /* S->R: session, seq, pass, final, len = size */
    XFER_DONE,      /* R->S: session, pass, hash = digest (final pass) */
    XFER_FAIL,      /* R->S: session, len = errno; + a sentence */
};

/* A header frame, unpacked. */
struct xfer_hdr {
    uint8_t type;                /* enum xfer_type */
    bool final;                  /* HELLO, END: the last pass */
    uint64_t session;            /* the sender's random session number */
    uint64_t seq;                /* DATA, HOLE, END: 1, 2, ... within the session */
    uint32_t pass;               /* the pass */
    uint32_t chunk;              /* HELLO: the chunk size (XFER_CHUNK) */
    uint64_t offset;             /* DATA, HOLE: where; READY: resume point */
    uint64_t len;                /* see enum xfer_type */
    uint8_t hash[XFER_HASH_LEN]; /* see enum xfer_type */
};

void xfer_hdr_pack(const struct xfer_hdr *h, uint8_t out[XFER_HDR]);
/* -EBADMSG for anything but a well-formed header. */
int xfer_hdr_unpack(const uint8_t *in, size_t n, struct xfer_hdr *h);
/* [peer] header [payload]; peer NULL on a DEALER. 0 or -errno. */
int xfer_send_frames(void *sock, const void *peer, size_t peer_len, const struct xfer_hdr *h,
                     const void *payload, size_t len);
/* Reads and drops the rest of a multipart message. */
void xfer_drain(void *sock);
/* No linger, a bounded message size. */
void xfer_sock_options(void *sock);
/* CurveZMQ options from keys (NULL: plaintext): 0 or -EINVAL. */
int xfer_sock_keys(void *sock, const struct xfer_keys *k, bool server);

void xfer_hash(const void *buf, size_t len, uint8_t out[XFER_HASH_LEN]);
/* The hash of len zero bytes. */
void xfer_zero_hash(size_t len, uint8_t out[XFER_HASH_LEN]);
bool xfer_is_zero(const uint8_t *buf, size_t len);
/* The hash of the chunk [off, off + len) of fd: a hole (SEEK_DATA says no
 * data; seek caches the answer, start it at {UINT64_MAX, 0}) or zeros hash
 * as zeros and set *zero; otherwise the bytes are in buf. 0 or -errno. */
int xfer_chunk_hash(int fd, uint64_t off, size_t len, uint64_t seek[2], uint8_t *buf,
                    uint8_t out[XFER_HASH_LEN], bool *zero);
/* The image digest of n chunk hashes in order. */
void xfer_digest_of(const uint8_t (*hashes)[XFER_HASH_LEN], uint64_t n, uint8_t out[XFER_HASH_LEN]);
