/* User namespaces for guests: the map from a guest's ids to its block of host
 * ids, a user namespace that carries the map (for idmapped mounts), and the
 * idmapped, read-only mount of a shared template.
 *
 * A guest that is not privileged runs in its own user namespace whose ids
 * 0..IDMAP_BLOCK-1 are the host ids base..base+IDMAP_BLOCK-1 (uids and gids
 * alike): guest root is host uid `base`, never 0. The node picks the block
 * (node/store.h) and keeps it in the guest's record while the guest exists.
 *
 * The template stays one read-only tree for all guests: each guest's overlay
 * gets as lower layer an idmapped mount of it (open_tree(OPEN_TREE_CLONE) +
 * mount_setattr(MOUNT_ATTR_IDMAP) + move_mount), in which the template's
 * uid 0 reads as `base`; nothing is copied or chowned. Files the guest
 * writes land on its own disk with host ids from its block.
 *
 * Returns are >= 0 or -errno. Threads: idmap_userns_fd forks, so it is for
 * single-threaded processes only (the spawner, tests); the rest is safe
 * anywhere. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#define IDMAP_BLOCK 65536u /* host ids per guest: uids and gids 0..65535 inside */

/* Writes "0 base count" into /proc/PID/uid_map and gid_map. The caller needs
 * CAP_SETUID and CAP_SETGID over pid's user namespace (host root has them),
 * so setgroups(2) stays allowed inside. */
int idmap_write(pid_t pid, uint32_t base, uint32_t count);

/* Makes a user namespace mapping 0..count-1 to base..base+count-1 and returns
 * an O_CLOEXEC fd on it. A child is cloned into the namespace and ends as
 * soon as the fd is open; the namespace lives as long as the fd (or a mount
 * made with it). The child is reaped before the return, unless SIGCHLD has
 * SA_NOCLDWAIT (the kernel reaps it then, without a wait for its exit).
 * Single-threaded callers only. */
int idmap_userns_fd(uint32_t base, uint32_t count);

/* Mounts dir at target (an existing directory) read-only, nosuid, nodev,
 * idmapped through the user namespace userns_fd: dir's id N reads as
 * base + N. Idempotent: 0 when target is already a mount point (the caller
 * names a target only this guest uses). */
int idmap_mount(const char *dir, int userns_fd, const char *target);

/* A detached clone of dir (open_tree(OPEN_TREE_CLONE), O_CLOEXEC) to clone
 * guests' lower layers from, with idmap_mount_tree. Cloning a path costs the
 * kernel a walk over every mount attached to the mount that holds it
 * (has_locked_children: is_subdir for each), and on a node the templates'
 * mount is the one that holds every guest's disk, lower layer and overlay, so
 * each create paid for every guest on the host; a detached clone has no
 * mount attached to it. Returns the fd, -EOPNOTSUPP on kernels that cannot
 * clone a detached tree (before 6.15: use the path), or -errno. */
int idmap_tree(const char *dir);

/* idmap_mount, the new mount cloned from tree (from idmap_tree) instead of
 * from dir's mount; tree < 0 clones dir as idmap_mount does. */
int idmap_mount_tree(int tree, const char *dir, int userns_fd, const char *target);

/* Unmounts target; 0 when nothing is mounted there. (An overlay keeps its
 * own private clone of its layers, so this works under a mounted overlay;
 * the backend unmounts the overlay first all the same.) */
int idmap_umount(const char *target);
