/* The schema of node.conf: every key, its type, range and flag (one table,
 * which docs/config.md and /etc/vfleet/node.conf must match: a test checks
 * it). */
#pragma once

#include <stddef.h>

#include "common/config.h"

extern const struct config_key node_config_keys[];
extern const size_t node_config_n_keys;

struct net_config;
struct agent_config;
struct linux_config;

/* The [network] section into out: uplink, nat with its sources,
 * proxy_neigh. -EINVAL (said on stderr) when the keys contradict. */
int node_config_net(const config_t *c, struct net_config *out);
/* The [migrate] section's address into ac->data_address (bracketed for
 * IPv6); absent = ipc:// in the state directory. -EINVAL when not one. */
int node_config_migrate(const config_t *c, struct agent_config *ac);
/* [node] cgroup_prefix into lc. -EINVAL when not a name. */
int node_config_cgroup_prefix(const config_t *c, struct linux_config *lc);
