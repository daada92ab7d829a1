/* Pristine filesystem images: a guest's new disk is a sparse copy of an
 * ext4 image made once per geometry, with a fresh UUID, instead of its own
 * mkfs.ext4.
 *
 * Why: mke2fs refuses to format a mounted device, and finds out by reading
 * /proc/mounts and stat-ing (for loop devices, opening) the source of every
 * line in it. On a node every running guest adds a loop-mounted disk, so
 * each create paid for all the guests already there. A pristine image is
 * made by mkfs once per (size, inodes) under the node's state directory; a
 * create copies its data extents (SEEK_DATA/SEEK_HOLE + copy_file_range,
 * so the copy stays as sparse as the original: a few hundred KiB) and
 * writes a new UUID and directory hash seed into the primary superblock.
 * The image's own mkfs check is not needed there: disk_create makes the
 * file itself (O_EXCL) or, for a half-made one, checks that no loop device
 * backs it.
 *
 * The UUID can change without touching anything else because every image
 * is made with metadata_csum_seed: the metadata checksums are seeded by a
 * value stored in the superblock, not by the UUID (without it, `tune2fs -U`
 * rewrites every checksum, and it scans the mounts as mke2fs does). Only the
 * superblock's own checksum (crc32c of its first 1020 bytes) is redone. The
 * backup superblocks keep the pristine UUID; ext4 and e2fsck read the
 * primary, and e2fsck rewrites the backups from it when it writes.
 *
 * Threads: no shared state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copies src's data extents to dst at the same offsets (dst already has the
 * size, all holes), all but the primary superblock, which
 * disk_pristine_renew writes last. Returns 0 or -errno. */
int disk_pristine_copy(int src, int dst);

/* Whether the ext4 superblock in fd can take a new UUID alone: metadata_csum
 * with metadata_csum_seed. Returns 1, 0, or -errno. */
int disk_pristine_renewable(int fd);

/* Writes src's primary superblock into dst with a new random UUID (version
 * 4), directory hash seed and checksum; with valid false, zeros in its place
 * (dst then holds no filesystem until the second call). Returns 0, -EINVAL
 * when src's superblock is not renewable, or -errno. */
int disk_pristine_renew(int src, int dst, bool valid);

/* The superblock checksum function: crc32c (Castagnoli), seed ~0, no final
 * inversion, as ext4 and e2fsprogs compute it. */
uint32_t disk_pristine_crc32c(uint32_t crc, const void *data, size_t len);
