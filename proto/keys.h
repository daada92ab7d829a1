/* CurveZMQ keys of the node link: key pairs, their files, fingerprints.
 *
 * Keys travel as Z85 text (40 characters, as libzmq's options take them).
 * A key file is a few "name = value" lines written owner-only (0600) by
 * temp file + fsync + rename, and refused on load when group or others may
 * read it (as ssh refuses a private key others can read):
 *
 *   public = <Z85>      this end's public key
 *   secret = <Z85>      this end's secret key
 *   node = h1           node files: the name the master registered the key as
 *   master = <Z85>      node files: the master's public key, pinned at join
 *   endpoint = tcp://…  node files: where the master was joined (informational)
 *
 * The master's file (master.key) holds public and secret; a node's
 * (node.key in its state directory) all five once it has joined, and only the
 * pair while a join is under way.
 *
 * No state; thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYS_Z85_LEN   40                 /* a key in Z85 text, without the NUL */
#define KEYS_Z85_SIZE  (KEYS_Z85_LEN + 1) /* a buffer for one */
#define KEYS_BIN_LEN   32                 /* a key in bytes */
#define KEYS_FPR_SIZE  (7 + 2 * 32 + 1)   /* "SHA256:" + 64 hex digits + NUL */
#define KEYS_NAME_SIZE 64                 /* a node name (a DNS label) + NUL */
#define KEYS_EP_SIZE   256                /* an endpoint + NUL */
#define KEYS_FILE_MAX  2048               /* bytes a key file may have */

/* What a key file holds; "" for what it does not. */
struct keys_file {
    char public_key[KEYS_Z85_SIZE]; /* this end's public key */
    char secret_key[KEYS_Z85_SIZE]; /* this end's secret key */
    char node[KEYS_NAME_SIZE];      /* node files: the registered name */
    char master_key[KEYS_Z85_SIZE]; /* node files: the pinned master key */
    char endpoint[KEYS_EP_SIZE];    /* node files: the master joined at */
};

/* Whether s is a valid Z85 key (exactly KEYS_Z85_LEN characters). */
bool keys_valid(const char *s);

/* A new key pair into k->public_key and k->secret_key (other fields kept).
 * Returns 0 or -errno (-ENOTSUP when libzmq has no CURVE). */
int keys_generate(struct keys_file *k);

/* The public key of a secret key, both Z85. Returns 0 or -EINVAL. */
int keys_public_of(const char *secret_key, char public_key[KEYS_Z85_SIZE]);

/* Z85 <-> bytes. Return 0 or -EINVAL. */
int keys_to_bin(const char *z85, uint8_t bin[KEYS_BIN_LEN]);
void keys_to_z85(const uint8_t bin[KEYS_BIN_LEN], char z85[KEYS_Z85_SIZE]);

/* "SHA256:<hex>" of a public key's 32 bytes, for people to compare. Returns
 * out, or "" (and out[0] = 0) when the key is not valid. */
const char *keys_fingerprint(const char *public_key, char out[KEYS_FPR_SIZE]);

/* Writes k to path, mode 0600, atomically (temp file in the same directory,
 * fsync, rename, directory fsync). Only the fields that are set are written.
 * Returns 0 or -errno. */
int keys_file_save(const char *path, const struct keys_file *k);

/* Reads path into k (zeroed first). Returns 0; -ENOENT; -EPERM when the file
 * holds a secret key and group or others may read it, or another user owns
 * it; -EBADMSG when a line is not "name = value" with a known name and a
 * valid value, or the public and secret keys do not belong together; or
 * another -errno. */
int keys_file_load(const char *path, struct keys_file *k);
