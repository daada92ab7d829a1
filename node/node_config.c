/* The node's configuration schema (node_config.h). */
#include "node/node_config.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "common/name.h"
#include "common/netaddr.h"
#include "node/agent.h"
#include "node/linux/linux_backend.h"
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

static int
check_host(const char *key, const char *value, char *why, size_t n)
{
    struct netaddr a;

    if (netaddr_parse_host(value, &a) < 0)
        return snprintf(why, n, "\"%s\" is not an address", value), -EINVAL;
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
    {"node", "cgroup_prefix", CONFIG_STRING, 1, 63, NULL, NULL, check_name,
     "the cgroup directory of this node's guests (linux; one per node sharing a kernel)"},
    {"node", "vservers", CONFIG_STRING, 0, 255, NULL, "vservers", NULL,
     "where the FreeVPS views are mounted (FUSE), none = nowhere"},
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
    {"migrate", "address", CONFIG_STRING, 0, 63, NULL, NULL, check_host,
     "where the data channel listens for guests moving in"},
};

const size_t node_config_n_keys = ARRAY_SIZE(node_config_keys);

/* The [network] section: uplink names the host's outside interface; nat
 * (bool) masquerades guest sources in nat_sources (comma-separated prefixes,
 * default the private ranges) leaving through it; proxy_neigh (bool) answers
 * ARP and NDP on it for guest addresses. */
int
node_config_net(const config_t *c, struct net_config *out)
{
    const char *uplink = config_get(c, "network", "uplink");
    const char *sources = config_get(c, "network", "nat_sources");
    char buf[1024], where[512];

    /* Types and ranges were checked against node_config_keys; what is left is the
     * rule across keys. */
    memset(out, 0, sizeof(*out));
    if (uplink)
        strscpy(out->uplink, uplink, sizeof(out->uplink));
    (void)config_get_bool(c, "network", "nat", &out->nat);
    (void)config_get_bool(c, "network", "proxy_neigh", &out->proxy_neigh);
    if ((out->nat || out->proxy_neigh) && !out->uplink[0]) {
        const char *k = out->nat ? "nat" : "proxy_neigh";
        fprintf(stderr, "vfleet-node: %s: [network] %s: needs uplink (the outside interface)\n",
                config_origin(c, "network", k, NULL, where, sizeof(where)), k);
        return -EINVAL;
    }
    strscpy(buf, sources && *sources ? sources : "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fd00::/8",
            sizeof(buf));
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t && out->n_nat < NET_NFT_MAX_NAT;
         t = strtok_r(NULL, ", ", &save)) {
        if (netaddr_parse(t, &out->nat_sources[out->n_nat]) < 0)
            return -EINVAL; /* checked by check_prefixes */
        netaddr_mask(&out->nat_sources[out->n_nat]);
        out->n_nat++;
    }
    return 0;
}

/* The [migrate] section: address is where this node's data channel listens
 * for guests moving in (an address the other nodes reach; the port is
 * chosen per move); without it the channel is an ipc:// socket in the
 * state directory, which only reaches nodes on the same machine. */
int
node_config_migrate(const config_t *c, struct agent_config *ac)
{
    const char *addr = config_get(c, "migrate", "address");
    struct netaddr na;

    if (!addr)
        return 0;
    if (netaddr_parse_host(addr, &na) < 0 ||
        strscpy(ac->data_address, addr, sizeof(ac->data_address)) < 0) {
        fprintf(stderr, "vfleet-node: [migrate] address \"%s\" is not an address\n", addr);
        return -EINVAL;
    }
    if (na.family == AF_INET6)
        snprintf(ac->data_address, sizeof(ac->data_address), "[%s]", addr);
    return 0;
}

/* [node] cgroup_prefix: where this node's guests' cgroups go. One per node
 * when several nodes share a kernel (the local cluster), so the two copies of
 * a moving guest never share a cgroup. */
int
node_config_cgroup_prefix(const config_t *c, struct linux_config *lc)
{
    const char *p = config_get(c, "node", "cgroup_prefix");

    if (!p)
        return 0;
    if (!name_is_valid(p) || strscpy(lc->cgroup_prefix, p, sizeof(lc->cgroup_prefix)) < 0) {
        fprintf(stderr, "vfleet-node: cgroup_prefix \"%s\" is not a name\n", p);
        return -EINVAL;
    }
    return 0;
}
