/* The text of a join token (docs/protocol-transport.md, "Joining").
 *
 *   vfj1-<64 hex: the token's CurveZMQ secret key>-<64 hex: the master's public key>
 *
 * The first part is the secret: whoever holds it can complete a CurveZMQ
 * handshake with the token's key pair, which the master's ZAP handler lets
 * in for one purpose only (the join message). The master stores the token's
 * public key, a one-way function of the secret, so its database does not
 * give tokens away. The second part is the master's public key itself: the
 * node pins it, and the handshake fails against any server that does not
 * hold the matching secret key (a SHA-256 fingerprint would be just as long
 * and would need the key fetched over a channel not yet authenticated).
 * Hex, so a token survives shells, URLs and copy-paste.
 *
 * No state; thread-safe. */
#pragma once

#include <stdint.h>

#include "proto/keys.h"

#define JOINTOKEN_PREFIX "vfj1"
#define JOINTOKEN_LEN    (4 + 1 + 2 * KEYS_BIN_LEN + 1 + 2 * KEYS_BIN_LEN)
#define JOINTOKEN_SIZE   (JOINTOKEN_LEN + 1)

/* The token's parts as Z85 keys. */
struct jointoken {
    char secret_key[KEYS_Z85_SIZE]; /* the token's secret key */
    char public_key[KEYS_Z85_SIZE]; /* its public key (derived, not in the text) */
    char master_key[KEYS_Z85_SIZE]; /* the master's public key */
};

/* The text of t (secret_key and master_key used). Returns 0 or -EINVAL. */
int jointoken_format(const struct jointoken *t, char out[JOINTOKEN_SIZE]);
/* Parses a token's text (surrounding white space allowed) into t, deriving
 * its public key. Returns 0 or -EINVAL. */
int jointoken_parse(const char *text, struct jointoken *t);
