/* Shifting a guest's files from one block of host ids to another: what a
 * guest that moves between nodes (or is imported) needs, since each node
 * picks its guests' uid blocks (node/store.h) and the block a guest had on
 * its source is rarely the one it gets on the target.
 *
 * The block the files come with is read from the tree's root (the overlay's
 * upper directory, whose owner is the guest's root: rootfs.c), rounded down
 * to a block boundary; 0 for a privileged guest or an importer's tree. Every
 * uid and gid in [from, from + count) becomes the same offset in [to, to +
 * count); ids outside it are left alone. chown(2) clears set-id bits and
 * file capabilities, so both are put back (a version 3 capability's root id
 * shifted too), and the ids in POSIX ACLs (access and default) are shifted.
 * The walk is depth-first with the root last, so a shift cut short (a
 * crash) is finished by running it again: the root still names the old
 * block and the files already shifted are outside it.
 *
 * Threads: the walk keeps its state in thread-local variables (nftw has no
 * user pointer); one walk per thread at a time. */
#pragma once

#include <stdint.h>

/* Shifts dir's tree (not crossing mounts, never following symlinks, every
 * entry by its directory's descriptor, so at any depth: a guest makes its
 * tree as deep as it likes) into the block starting at to (count ids; to 0 =
 * the host's own ids). Returns
 * 1 when something was shifted, 0 when the tree is already in that block,
 * or -errno (-EINVAL for a bad block). */
int idshift_tree(const char *dir, uint32_t to, uint32_t count);

/* The block the files under dir (not dir itself) come with: the lowest
 * owner among them (overlay whiteouts left out), rounded down to a block boundary (a guest's tree
 * has files of its root). For a tree unpacked into a directory made here, whose own owner says
 * nothing of where the files came from. 0, -ENOENT for an empty tree, or -errno. */
int idshift_base_of(const char *dir, uint32_t count, uint32_t *base);
