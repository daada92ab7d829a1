/* The linux backend: real guests on this kernel. It composes the cgroup
 * layer (cgroup.h), the per-guest ext4 disk image (disk.h), the overlay root
 * (rootfs.h) and the single-threaded spawner (spawn.h) behind the backend
 * contract of node/backend.h.
 *
 * On-disk layout under the state directory, per guest id:
 *   data/<id>/disk.img   sparse ext4 image: the disk and inode limits
 *   data/<id>/disk/      where the image is loop-mounted (upper + work dirs)
 *   data/<id>/root/      the overlay: template (lower) + disk/upper
 *   data/<id>/console.log  init's stdout and stderr
 * Templates are directories under the template directory, one per name. */
#pragma once

#include "node/backend.h"
#include "node/linux/net.h"
#include "proto/spec.h"

#define LINUX_DEFAULT_DISK (10ULL << 30) /* disk image size when limits.disk is unset */

struct linux_config {
    char state_dir[256];   /* per-guest data lives in state_dir/data */
    char templates[256];   /* template directories */
    char cgroup_root[256]; /* cgroup mount root, "" = /sys/fs/cgroup */
    uint32_t max_guests;   /* guests this node accepts, 0 = 1000 */
    struct net_config net; /* guest networking: NAT */
    char vservers[256];    /* the FreeVPS views' mount, bound into guests; "" = none */
};

/* Creates the backend and forks its spawner: call before the process starts
 * any thread (before the ZeroMQ context exists). Returns NULL and sets *err. */
backend_t *linux_backend_new(const struct linux_config *cfg, int *err);

/* Runs argv inside a running guest with the caller's terminal as stdin,
 * stdout and stderr (vfleet-node enter), joining every namespace and cgroup of
 * the guest with its bounding set. For a single-threaded process only (it
 * forks). Returns the command's exit status, or -errno. */
int linux_enter(const char *state_dir, const struct guest_spec *spec,
                const struct guest_runtime *rt, char **argv);
