/* The node link's trust (docs/protocol-transport.md, "Trust"): the master's
 * CurveZMQ key pair, the ZAP handler that names every client key, join
 * tokens, joining and revoking.
 *
 * - Every tcp:// node endpoint is a CurveZMQ server (unless the operator
 *   set insecure, which is logged loudly); ipc:// endpoints are plaintext,
 *   for local processes only.
 * - A node's key maps to exactly one node name (node_keys); the ZAP handler
 *   admits the key under that name, and the session takes the name from the
 *   connection, never from what the node says.
 * - A join token (join_tokens) is a CurveZMQ key pair of its own: its
 *   holder may open a session as "join:<token id>" and send one message,
 *   join, which registers the node's key. A token works once, until it
 *   expires, and only for the name it was made for (when it was made for
 *   one). Used and expired tokens are refused at the handshake.
 * - A node that has a key talks only over CurveZMQ: its name is refused on
 *   plaintext links.
 * - Revoking a node removes its key: the next handshake is refused, the live
 *   connection is shut at once and the name denied on every link until the
 *   node joins again.
 *
 * Loop thread only, like everything of the master. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "master/core.h"
#include "proto/jointoken.h"
#include "proto/link.h"
#include "proto/msg.h"

#define TRUST_JOIN_PREFIX      "join:"            /* User-Id of a join token's session */
#define TRUST_TOKEN_TTL_MS     (3600ULL * 1000)   /* a token's life when none is asked */
#define TRUST_TOKEN_TTL_MAX_MS (30ULL * 86400000) /* the longest life a token may have */
#define TRUST_TOKEN_KEEP_MS    (86400ULL * 1000)  /* expired tokens are listed this long */
#define TRUST_MAX_TOKENS       10000              /* live (unused, unexpired) tokens */

/* A token just made; text is its secret and is shown once. */
struct trust_token {
    char id[DB_TOKEN_ID_SIZE]; /* 16 hex digits */
    char text[JOINTOKEN_SIZE]; /* what the node joins with (the secret) */
    char node[64];             /* the only name it joins, "" = any */
    uint64_t created_ms;       /* wall clock */
    uint64_t expires_ms;       /* wall clock */
};

/* Loads (or makes, 0600) the master's key pair and starts the ZAP handler
 * with every node key and live token, when an endpoint will use CurveZMQ.
 * Returns 0, or -errno with a sentence in err. */
int trust_open(master_t *m, char *err, size_t errlen);
/* Stops the ZAP handler; after the links are closed. NULL-safe. */
void trust_close(master_t *m);

/* The counts of the master's node links (link_get_stats) summed into sum;
 * its violator and violation are the last link's that has one. */
void trust_link_stats(master_t *m, struct link_stats *sum);

/* Whether endpoint is served with CurveZMQ: tcp://, unless insecure. */
bool trust_endpoint_curve(const master_t *m, const char *endpoint);
/* The keys a curve endpoint binds with (NULL when no endpoint is curve). */
const struct link_keys *trust_link_keys(master_t *m);
/* "SHA256:..." of the master's public key, "" when it has none. */
const char *trust_fingerprint(master_t *m);

/* Whether peer is a join token's session. */
bool trust_is_join_peer(const char *peer);
/* Whether name has joined with a key (and so may only use CurveZMQ). */
bool trust_has_key(master_t *m, const char *name);
/* The public key (Z85) name joined with, NULL when it has none. */
const char *trust_node_key(master_t *m, const char *name);

/* Makes a token for node (NULL or "" = any name) living ttl_ms (0 = the
 * default), stored in the open transaction; it works once that commits.
 * Returns 0, -EINVAL (bad name, ttl out of range), -EPERM (no CurveZMQ
 * endpoint: nothing to join), -EBUSY (TRUST_MAX_TOKENS live), or -errno
 * from the store. */
int trust_token_create(master_t *m, const char *node, uint64_t ttl_ms, struct trust_token *out);
/* Lists the tokens (no secrets) as JSON objects into arr. */
int trust_token_list(master_t *m, json_t *arr);

/* A join message from a join session (peer "join:<id>") on link ml:
 * checks the token and registers the key in the batch transaction; the
 * ack, or the nack saying why not, goes out after the commit. */
void trust_join(master_t *m, struct mlink *ml, const char *peer, const struct msg *msg);

/* Revokes name's key, in the open transaction; once committed, its next
 * handshake is refused and its connections are shut. Returns 0, -ENOENT
 * when it has no key, or -errno from the store. */
int trust_revoke(master_t *m, const char *name);

/* Housekeeping from the master's tick: expired tokens leave the ZAP table,
 * old ones the store; idle and flooding connections are shut (link_tick). */
void trust_tick(master_t *m, uint64_t now_mono_ms);
