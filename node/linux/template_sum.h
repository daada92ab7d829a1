/* A template's identity for the cluster: the SHA-256 of a canonical walk of
 * its tree and the bytes of its files, so the master can tell which nodes
 * hold the same template and which an older or different one.
 *
 * The walk visits every entry in byte order of its name, depth first, and
 * hashes for each: its path relative to the template, its type, permission
 * bits, owner and group, and then a regular file's length and bytes (in 64
 * KiB blocks, a run of zero blocks as its count, so holes are skipped and a
 * sparse copy sums as a full one), a symlink's target, a device's number.
 * Timestamps are left out: two copies of the same tree have the same sum
 * wherever they were unpacked.
 *
 * Computing it reads the template's data, so it is kept in a cache file
 * keyed by the template directory's inode and change time: templates are
 * rebuilt by renaming a new tree into place (rootfs.h), which changes both;
 * the key is tagged with the way of summing, so a node that sums in a new
 * way does not reuse an older sum. */
#pragma once

#include <stdint.h>

#define TEMPLATE_SUM_LEN 71 /* "sha256:" and 64 hex digits */

/* The sum of the tree at dir ("sha256:..." in sum) and the bytes of its
 * regular files. Returns 0 or -errno (an unreadable entry). */
int template_sum(const char *dir, char sum[TEMPLATE_SUM_LEN + 1], uint64_t *size);

/* The same, from cache_path when its entry for name still matches dir
 * (inode and change time), else computed and written there. */
int template_sum_cached(const char *dir, const char *name, const char *cache_path,
                        char sum[TEMPLATE_SUM_LEN + 1], uint64_t *size);
