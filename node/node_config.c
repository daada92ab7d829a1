/* The node's configuration schema (node_config.h). */
#include "node/node_config.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "common/name.h"
#include "common/netaddr.h"
#include "node/linux/net.h"
#include "node/store.h"
#include "proto/spec.h"

static int
check_name(const char *key, const char *value, char *why, size_t n)
{
    if (!name_is_valid(value))
        return snprintf(why, n, "\"%s\" is not a valid name (a DNS label)", value), -EINVAL;
    return 0;
}

static int
check_endpoint(const char *key, const char *value, char *why, size_t n)
{
    if (strncmp(value, "tcp://", 6) != 0 && strncmp(value, "ipc://", 6) != 0)
        return snprintf(why, n, "\"%s\" is not a tcp:// or ipc:// endpoint", value), -EINVAL;
    return 0;
}

static int
check_label(const char *key, const char *value, char *why, size_t n)
{
    if (!name_is_valid(key))
        return snprintf(why, n, "\"%s\" is not a valid label key (a DNS label)", key), -EINVAL;
    return 0;
}

static int
check_prefixes(const char *key, const char *value, char *why, size_t n)
{
    _cleanup_free_ char *copy = xstrdup(value);
    struct netaddr a;
    char *save = NULL;
    unsigned count = 0;

    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (netaddr_parse(t, &a) < 0)
            return snprintf(why, n, "\"%s\" is not an address prefix", t), -EINVAL;
        if (++count > NET_NFT_MAX_NAT)
            return snprintf(why, n, "more than %d prefixes", NET_NFT_MAX_NAT), -EINVAL;
    }
    return 0;
}

#define LEVELS "emerg|alert|crit|err|error|warning|warn|notice|info|debug"

/* Every key of node.conf (docs/config.md describes each; a test checks that
 * the page and /etc/vfleet/node.conf name them all). */
const struct config_key node_config_keys[] = {
    {"node", "name", CONFIG_STRING, 0, 0, NULL, "name", check_name, "node name (the host name)"},
    {"node", "master", CONFIG_STRING, 0, 255, NULL, "master", check_endpoint,
     "the master's ZeroMQ endpoint"},
    {"node", "state_dir", CONFIG_STRING, 0, 255, NULL, "state-dir", NULL,
     "local store, guest disks, lock"},
    {"node", "backend", CONFIG_CHOICE, 0, 0, "linux|sim", "backend", NULL, "guest backend"},
    {"node", "templates", CONFIG_STRING, 0, 255, NULL, "templates", NULL,
     "directory of guest templates"},
    {"node", "heartbeat_ms", CONFIG_U64, 100, 600000, NULL, "heartbeat", NULL,
     "heartbeat interval, ms (the master's welcome wins)"},
    {"node", "usage_interval", CONFIG_U64, 1, 3600, NULL, "usage-interval", NULL,
     "usage sampling interval, s"},
    {"node", "max_guests", CONFIG_U64, 1, STORE_MAX_GUESTS, NULL, "max-guests", NULL,
     "guests this node accepts (linux)"},
    {"node", "console_ring", CONFIG_SIZE, 4096, 64ULL << 20, NULL, NULL, NULL,
     "bytes of console output kept per guest (linux)"},
    {"node", "disk_reserve", CONFIG_SIZE, 0, 0, NULL, NULL, NULL,
     "free space below which new disks and growth are refused, 0 = none (linux)"},
    {"node", "lxcfs", CONFIG_STRING, 1, 255, NULL, NULL, NULL,
     "the LXCFS mount whose files become guests' /proc views (linux)"},
    {"node", "log_level", CONFIG_CHOICE, 0, 0, LEVELS, "log-level", NULL,
     "most verbose level logged"},
    {"node", "log_format", CONFIG_CHOICE, 0, 0, "text|json", "log-format", NULL, "log line format"},
    {"node", "insecure", CONFIG_BOOL, 0, 0, NULL, "insecure", NULL,
     "a tcp:// master in plaintext, without a join (logged loudly; trusted networks only)"},
    {"node", "sim_nodes", CONFIG_U64, 1, 100000, NULL, "sim-nodes", NULL,
     "simulated nodes in this process (sim)"},
    {"node", "sim_cpus", CONFIG_U64, 1, UINT32_MAX, NULL, "sim-cpus", NULL,
     "millicores each simulated node offers"},
    {"node", "sim_memory", CONFIG_SIZE, 1, 0, NULL, "sim-memory", NULL,
     "memory each simulated node offers"},
    {"node", "sim_disk", CONFIG_SIZE, 1, 0, NULL, "sim-disk", NULL,
     "disk each simulated node offers"},
    {"node", "sim_max_guests", CONFIG_U64, 1, STORE_MAX_GUESTS, NULL, "sim-max-guests", NULL,
     "guests each simulated node accepts"},
    {"node", "sim_seed", CONFIG_U64, 0, 0, NULL, "sim-seed", NULL, "seed of the synthetic usage"},
    {"labels", "*", CONFIG_STRING, 0, SPEC_LABEL_VAL_MAX, NULL, "label", check_label,
     "a node label KEY = VALUE, for constraints and pools"},
    {"network", "uplink", CONFIG_STRING, 0, IFNAMSIZ - 1, NULL, NULL, NULL,
     "the host's outside interface"},
    {"network", "nat", CONFIG_BOOL, 0, 0, NULL, NULL, NULL,
     "masquerade guest sources leaving through uplink"},
    {"network", "nat_sources", CONFIG_STRING, 0, 0, NULL, NULL, check_prefixes,
     "prefixes NAT applies to"},
    {"network", "proxy_neigh", CONFIG_BOOL, 0, 0, NULL, NULL, NULL,
     "answer ARP/NDP on uplink for guest addresses"},
};

const size_t node_config_n_keys = ARRAY_SIZE(node_config_keys);
