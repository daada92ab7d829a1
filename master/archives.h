/* Archives on the master (archive/archive.h is the format): what an export
 * brought back for its client to download, and what a client uploads for an
 * import. Files in the archive directory (beside the store: <db dir>/archives,
 * or a directory in /tmp for an in-memory store): <id>.vfx, and <id>.json
 * with what is known of it ({"size", "sha256", "kind"}). The id is an
 * operation's (an export) or a fresh UUID (an upload).
 *
 * An upload arrives in chunks, in order (offset = what arrived so far), so a
 * client that lost its connection asks where to go on; it is complete when
 * its size is reached, and usable when the SHA-256 it announced matches.
 *
 * Loop thread only (the files are small-step reads and writes). Returns >= 0
 * or -errno: -ENOENT no such archive, -EINVAL a bad offset or size, -EEXIST
 * an upload that is complete already, -EBADMSG a checksum that differs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/core.h"
#include "proto/xfer.h"

struct op;

#define ARCHIVES_CHUNK_MAX (1u << 20) /* bytes of one chunk in or out */
#define PATH_MAX_ARCHIVE   512        /* an archive file's path */

struct archives_info {
    uint64_t size;     /* bytes it has (export) or will have (upload) */
    uint64_t received; /* bytes on the master now */
    char sha256[65];   /* its SHA-256 in hex, "" when not known yet */
    char kind[8];      /* "export" or "upload" */
    bool complete;     /* every byte is here */
};

/* The archive's file path. */
int archives_path(master_t *m, const char *id, char *out, size_t n);
/* Where the master's data channel listens for an operation's transfer. */
void archives_endpoint(master_t *m, const char *op, char *out, size_t n);

/* The data channel's keys for an archive between the master and node:
 * CurveZMQ with the master's own key pair and the key node joined with,
 * when both exist; NULL (plaintext, the one-time secret only) otherwise.
 * sender: the master sends (an import) and pins the node as the server;
 * else the node sends (an export) and the master admits only its key.
 * The strings are copied into keys' buffers. */
struct archives_keys {
    struct xfer_keys x;  /* points into the buffers below */
    char public_key[41]; /* the master's (Z85) */
    char secret_key[41]; /* its secret half */
    char node_key[41];   /* the node's */
};
/* "curve" when archives_keys would give keys for node, else "plaintext"
 * (logged as a notice for operation op). */
const char *archives_channel(master_t *m, const char *op, const char *node);
/* Whether operation o chose "curve" (an operation stored before it chose
 * was plaintext). */
bool archives_curve(const struct op *o);
/* The key the node pins for o's data channel: the master's public key when
 * o chose "curve" (archives_curve), else "" (plaintext). */
void archives_peer_key(master_t *m, const struct op *o, char *out, size_t n);
const struct xfer_keys *archives_keys(master_t *m, const char *node, bool sender,
                                      struct archives_keys *keys);

/* A new upload slot of size bytes with the SHA-256 the client announces. */
int archives_upload_new(master_t *m, uint64_t size, const char *sha256, char id[SPEC_ID_LEN + 1]);
/* Appends a chunk at offset (= what arrived so far); *received after it. */
int archives_upload_put(master_t *m, const char *id, uint64_t offset, const uint8_t *data,
                        size_t len, uint64_t *received);
/* Takes the chunks from offset on back (their answer could not be kept). */
int archives_upload_truncate(master_t *m, const char *id, uint64_t offset);
/* Checks a complete upload's SHA-256 against the announced one. */
int archives_upload_verify(master_t *m, const char *id);

/* Records an export's archive (size and SHA-256 computed here). */
int archives_export_done(master_t *m, const char *id, struct archives_info *out);

int archives_info(master_t *m, const char *id, struct archives_info *out);
/* Up to max bytes at offset into buf; *got is 0 at the end. */
int archives_read(master_t *m, const char *id, uint64_t offset, size_t max, uint8_t *buf,
                  size_t *got);
int archives_delete(master_t *m, const char *id);
