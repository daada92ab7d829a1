/* The linux backend: real guests on this kernel. It composes the cgroup
 * layer (cgroup.h), the per-guest ext4 disk image (disk.h), the overlay root
 * (rootfs.h) and the single-threaded spawner (spawn.h) behind the backend
 * contract of node/backend.h.
 *
 * On-disk layout under the state directory, per guest id:
 *   data/<id>/disk.img      sparse ext4 image: the disk and inode limits
 *   data/<id>/disk/         where the image is loop-mounted (upper + work dirs)
 *   data/<id>/lower/        the template, idmapped to the guest's uid block
 *                           (guests with a user namespace; idmap.h)
 *   data/<id>/root/         the overlay: lower (or the template itself for a
 *                           guest without a block) + disk/upper
 *   data/<id>/console.ring  the console: a ring of console_ring bytes (console.h)
 *   data/<id>/console.log   the unbounded console of guests started before
 *                           consoles had rings (removed at destroy, never written)
 * Templates are directories under the template directory, one per name.
 *
 * Disk capacity: probe reports the state directory's free space plus what the
 * guests' images already occupy, minus disk_reserve: what guest disks can
 * really fill. Making a new image and growing one are -ENOSPC ("no_space")
 * while the filesystem's free space is below disk_reserve; starting,
 * stopping and shrinking never are. */
#pragma once

#include "node/backend.h"
#include "node/linux/net.h"
#include "proto/spec.h"

#define LINUX_DEFAULT_DISK    (10ULL << 30) /* disk image size when limits.disk is unset */
#define LINUX_DEFAULT_RESERVE (1ULL << 30)  /* disk_reserve vfleet-node uses unless configured */
#define LINUX_DEFAULT_LXCFS   "/var/lib/lxcfs"

struct linux_config {
    char state_dir[256];    /* per-guest data lives in state_dir/data */
    char templates[256];    /* template directories */
    char cgroup_root[256];  /* cgroup mount root, "" = /sys/fs/cgroup */
    uint32_t max_guests;    /* guests this node accepts, 0 = 1000 */
    struct net_config net;  /* guest networking: NAT */
    uint64_t console_ring;  /* bytes of console kept per guest, 0 = CONSOLE_RING_DEFAULT */
    uint64_t disk_reserve;  /* free bytes below which images are not made or grown, 0 = none */
    char lxcfs[256];        /* LXCFS mount, "" = LINUX_DEFAULT_LXCFS */
    char cgroup_prefix[64]; /* the cgroup directory of this node's guests, "" = "vfleet" (one
                             * per node where several share a kernel: the local cluster) */
    char vservers[256];     /* the FreeVPS views' mount, bound into guests; "" = none */
};

/* Creates the backend and forks its spawner: call before the process starts
 * any thread (before the ZeroMQ context exists). Returns NULL and sets *err. */
backend_t *linux_backend_new(const struct linux_config *cfg, int *err);

/* Starts that found the guest's mounts or cgroup missing (after a host
 * reboot) and made them again, since b was made; a start right after its
 * create finds them there. For tests. */
uint64_t linux_backend_remade(backend_t *b);

/* Reads the last max bytes (0 = all) of a guest's console ring, with no
 * backend (vfleet-node console --log). Returns like backend_ops.console. */
int linux_console_read(const char *state_dir, const struct guest_spec *spec, size_t max,
                       struct console_log *out);

/* Runs argv inside a running guest with the caller's terminal as stdin,
 * stdout and stderr (vfleet-node enter), joining every namespace and cgroup of
 * the guest with its bounding set. For a single-threaded process only (it
 * forks). Returns the command's exit status, or -errno: -EBUSY for a guest
 * a move or an export froze (the command would freeze as it joined). */
int linux_enter(const char *state_dir, const char *cgroup_prefix, const struct guest_spec *spec,
                const struct guest_runtime *rt, char **argv);
