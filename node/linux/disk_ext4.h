/* What the node reads of ext4's on-disk format itself (disk.c's, split
 * off): the superblock's geometry, and a read-ahead of the metadata a mount
 * reads. */
#pragma once

#include "node/linux/disk.h"

#define EXT4_MAGIC          0xEF53
#define EXT4_INCOMPAT_64BIT 0x80

/* Reads the ext4 superblock (1024 bytes at offset 1024) from an open image
 * into out: 0, -EINVAL when it is not ext4, or -errno. */
int disk_ext4_info(int fd, struct disk_info *out);

/* Reads ahead, on the just attached loop device lfd, the metadata blocks an
 * ext4 mount reads one after the other: the superblock (read here and
 * waited for: it says where the rest is), then the group descriptors, the
 * first inodes of group 0 (the root, the journal's, lost+found, the orphan
 * file) and the journal's superblock, all requested at once without waiting,
 * so that the mount finds them in the device's page cache instead of
 * waiting for each in turn on the host's disk (the loop device's direct
 * I/O). The page cache survives only if the mount keeps the device's block
 * size: ext4 sets it to 1 KiB first (sb_min_blocksize) and then to its own,
 * and a change drops the cache. So the device's block size is set to 1 KiB
 * here before anything is read; a 4 KiB file system keeps only the
 * superblock read (its mount's second change drops the rest), so nothing
 * more is read ahead for it. Best effort: any failure leaves the reads to
 * the mount. */
void disk_ext4_prefetch(int lfd);
