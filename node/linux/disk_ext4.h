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

/* Reads ahead, on the loop device lfd of a mounted ext4, what a change in
 * the directory open as dirfd would read there one block after the other:
 * its first block (FIEMAP), and the inode and block bitmaps of the groups
 * of its inode and of that block (an rmdir of it, or a mkdir or create in
 * it, frees or takes an inode and a block there), all requested at once
 * without waiting. Reads only: the page cache it fills is the one ext4's
 * own metadata reads look in, and a bitmap ext4 makes in memory (an
 * uninitialised group) is not read. Best effort: a failure leaves the reads
 * to the file system. */
void disk_ext4_prefetch_dir(int lfd, int dirfd);

/* Reads ahead, on the loop device lfd of an ext4 being mounted (after
 * disk_ext4_prefetch, beside the mount), what a look-up of each of the n
 * directories at dirs (paths from the root, "a/b") and a change in it will
 * read there one block after the other: from the root's inode down, each
 * directory's inode (its table block) and first block, read and waited for
 * as they say where the next is, and for the last of each path its first
 * block and the bitmaps of its groups (disk_ext4_prefetch_dir), without
 * waiting. The walk reads the image as it is: a directory moved, grown
 * into an index or an extent tree, or gone, ends its walk, and a block
 * read for nothing costs only the read. Reads only, through the page cache
 * ext4's own metadata reads look in; 1 KiB-block images only (a 4 KiB
 * one's mount drops that cache). */
void disk_ext4_walk(int lfd, const char *const *dirs, size_t n);
