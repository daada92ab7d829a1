/* A simulated node's capacity and seed from the [node] sim_* keys (the
 * --sim-* flags of vfleet-node run --backend sim). */
#include <errno.h>
#include <stdio.h>

#include "common/config.h"
#include "node/sim/sim.h"
#include "proto/msg.h"

int
sim_config_read(const config_t *cfg, struct sim_config *sc, char *why, size_t n)
{
    uint64_t v;
    int r;

    *sc = (struct sim_config){
        .cpus = 16000, .memory = 64ULL << 30, .disk = 1ULL << 40, .max_guests = 1000, .seed = 1};
    if ((r = config_get_u64(cfg, "node", "sim_cpus", &v)) == 0 && v >= 1 && v <= UINT32_MAX)
        sc->cpus = (uint32_t)v;
    else if (r != -ENOENT)
        return snprintf(why, n, "--sim-cpus wants millicores 1..2^32-1"), -EINVAL;
    if ((r = config_get_size(cfg, "node", "sim_memory", &v)) == 0 && v > 0)
        sc->memory = v;
    else if (r != -ENOENT)
        return snprintf(why, n, "--sim-memory wants a size such as 64G"), -EINVAL;
    if ((r = config_get_size(cfg, "node", "sim_disk", &v)) == 0 && v > 0)
        sc->disk = v;
    else if (r != -ENOENT)
        return snprintf(why, n, "--sim-disk wants a size such as 1T"), -EINVAL;
    r = config_get_u64(cfg, "node", "sim_max_guests", &v);
    if (r == 0 && v >= 1 && v <= PROTO_MAX_INVENTORY) /* a hello names them all */
        sc->max_guests = (uint32_t)v;
    else if (r != -ENOENT)
        return snprintf(why, n, "--sim-max-guests wants 1..%d", PROTO_MAX_INVENTORY), -EINVAL;
    if ((r = config_get_u64(cfg, "node", "sim_seed", &v)) == 0)
        sc->seed = v;
    else if (r != -ENOENT)
        return snprintf(why, n, "--sim-seed wants a number"), -EINVAL;
    return 0;
}
