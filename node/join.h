/* `vfleet-node join`: a node joins a master with a join token
 * (docs/protocol-transport.md, "Joining").
 *
 * The token carries a CurveZMQ key pair's secret and the master's public
 * key. join makes the node's own key pair, opens a CurveZMQ session with the
 * token's key pair — pinning the master's key, so only the master that made
 * the token can answer — and sends join with the node's name and public
 * key. Once the master acknowledges, the node's key file (STATE/node.key,
 * 0600: the pair, the name, the pinned master key and its endpoint) is in
 * place for `vfleet-node run`. Until then the new pair waits in
 * STATE/node.key.new (reused by a retry), so a refused join never replaces
 * a key that works.
 *
 * Also the key file's reading for `run`. Not for the agent's loop: join
 * blocks. */
#pragma once

#include <stdbool.h>

#include "proto/keys.h"

#define JOIN_KEY_FILE     "node.key"     /* in the state directory */
#define JOIN_PENDING_FILE "node.key.new" /* a pair whose join is not acknowledged yet */
#define JOIN_TIMEOUT_S    20             /* how long join waits for the master */

/* Joins the master at endpoint (tcp://) as name with token (its text),
 * keeping the keys in state_dir (created 0700 when missing). Prints what it
 * did to stdout and why it failed to stderr. Returns 0 on success, 1 when the
 * master refused or did not answer, 2 on a usage error (bad token, name or
 * endpoint). */
int join_run(const char *endpoint, const char *name, const char *state_dir, const char *token,
             unsigned timeout_s);

/* Reads state_dir's key file for `run`. Returns 0, -ENOENT (not joined),
 * -EPERM (others may read it), -EBADMSG (damaged or incomplete), -errno. */
int join_load(const char *state_dir, struct keys_file *k);

struct agent_config;
typedef struct config config_t;

/* How `vfleet-node run` connects, from cfg's [node] name, master and
 * insecure. A tcp:// master without insecure needs the key file of a join:
 * ac gets its keys (curve), and its name and master endpoint when cfg named
 * none; a name other than the key's is refused. ipc:// masters, tcp:// ones
 * with insecure (logged loudly) and simulated nodes (sim) are plaintext.
 * Prints why not to stderr and returns -errno. */
int join_agent_keys(const config_t *cfg, const char *state_dir, bool sim, struct agent_config *ac);
