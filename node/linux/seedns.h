/* The seed: a small mount namespace the spawner keeps, out of which every
 * guest's mount namespace is cloned, so a start costs the same whatever the
 * host's mount table holds.
 *
 * A guest's clone3(CLONE_NEWNS) copies the whole mount namespace of the
 * process that clones it; from the host's that is every mount of every guest
 * already running (disk, idmapped template, overlay), which the child then
 * makes private and detaches again at pivot_root: three passes over a table
 * that grows with the guests, under the kernel's namespace lock. The seed
 * holds only what a guest's setup needs (runc, crun and LXC unshare from
 * the runtime's own namespace and so copy whatever it holds):
 *
 *   /            a read-only tmpfs, the seed's root
 *   /proc /sys   a proc and a sysfs: in a user namespace the kernel lets the
 *                child mount its own only next to fully visible ones
 *                (mount_too_revealing)
 *   /stage       a directory bound onto itself for the length of one start
 *                (the holder), with the empty mount points guest, lxcfs,
 *                hostdev and vservers, filled for that start
 *
 * For a start the spawner clones, in its own (the host's) namespace, the
 * guest's root, the LXCFS mount, /dev and the FreeVPS views as detached
 * trees (open_tree(OPEN_TREE_CLONE)), enters the seed, attaches them at those
 * mount points (private; a root_later start's root conduit a slave, so that
 * the root bound into it later reaches the child: spawn.h, spawner_start_with),
 * clones the guest, and takes them off again before
 * it returns to the host's namespace: with one lazy unmount of the holder,
 * which takes its children with it. Each unmount waits for an expedited RCU
 * grace period (namespace_unlock), in the one process every start of the
 * node goes through; one per start, where one per staged tree made three or
 * four (docs/performance.md, "Tenth pass"). The guest's copy of the seed's mounts
 * is made by the kernel as from the host's before: in a new user namespace
 * every mount is locked (MNT_LOCKED, the nodev/nosuid/noexec/ro/atime locks),
 * so the guest's root keeps exactly the flags it had. The child then builds
 * the guest's root from the staged paths (guest_init.h) and detaches the
 * seed's copy at pivot_root. Detached trees cross no user namespace here:
 * the spawner makes them and attaches them, and the seed belongs to the
 * initial user namespace as it does (a detached tree, in its anonymous
 * namespace, may be attached into the caller's namespace on 6.1 and 6.18).
 *
 * Only the single-threaded spawner uses this (setns(CLONE_NEWNS) refuses a
 * process that shares its fs_struct). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "node/linux/spawn.h"

struct clone_args;

/* Where a start's host mounts are seen inside the seed (and its copies). */
#define SEEDNS_STAGE    "/stage"          /* the holder of one start's mounts */
#define SEEDNS_GUEST    "/stage/guest"    /* the guest's root tree */
#define SEEDNS_LXCFS    "/stage/lxcfs"    /* the LXCFS mount */
#define SEEDNS_HOSTDEV  "/stage/hostdev"  /* the host's /dev, for device nodes bound in */
#define SEEDNS_VSERVERS "/stage/vservers" /* the FreeVPS views */

/* The spawner's seed and what it needs to come back from it. */
struct seedns {
    int seed;    /* the seed mount namespace, -1 = none: guests are cloned from the host's */
    int host;    /* the spawner's own mount namespace, to return to */
    int root;    /* the spawner's root directory (O_PATH): setns resets it, this restores it */
    int cwd;     /* the spawner's working directory, restored likewise */
    bool inside; /* entered: seedns_leave has a way back to make */
    struct spawn_config staged; /* seedns_clone's child: the start's config with seed paths */
    const char *dev;            /* seedns_clone's child: where the host's /dev is seen */
    bool held;                  /* the holder is bound: seedns_leave unmounts it */
};

/* Makes the seed (unshare, once: the one copy of the host's table) and
 * returns to the host's namespace. Returns 0, or -errno with s->seed -1 (the
 * caller may go on without a seed). */
int seedns_make(struct seedns *s);

/* For one start: clones cfg's host trees (cfg->rootfs, cfg->lxcfs, /dev when
 * cfg->uid_base is set, cfg->vservers) while still in the host's namespace,
 * enters the seed, attaches them, and fills *staged with cfg whose paths
 * point at them and *dev with where the host's device nodes are seen. On
 * success the caller is in the seed and must call seedns_leave after its
 * clone. Without a seed: *staged = *cfg, *dev = "/dev", nothing entered.
 * Returns 0 or -errno (with what saying which step, for which path), having
 * left the seed. */
int seedns_enter(struct seedns *s, const struct spawn_config *cfg, struct spawn_config *staged,
                 const char **dev, char *what, size_t what_size);

/* clone3(args) for a start: seedns_enter, the clone, seedns_leave. Returns
 * the child's pid; 0 in the child, which builds the guest from s->staged
 * with the host's device nodes at s->dev (and holds none of the seed's
 * descriptors); or -errno with what saying which step failed. Exits the
 * process when it cannot return to its own namespace. */
long seedns_clone(struct seedns *s, const struct spawn_config *cfg, struct clone_args *args,
                  char *what, size_t what_size);

/* Closes the seed's descriptors without leaving anything: for the child of
 * a start, which must not keep the host's root or namespace open. */
void seedns_close(struct seedns *s);

/* Takes the staged mounts off the seed and returns to the host's namespace,
 * root and working directory (nothing when not entered). A staged mount that will not come off
 * retires the seed (later starts clone from the host's namespace). Returns 0, or -ENOTRECOVERABLE
 * when the way back failed: the caller's namespace is then unknown and it must not go on (the
 * spawner exits). */
int seedns_leave(struct seedns *s);
