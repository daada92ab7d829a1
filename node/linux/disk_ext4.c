/* What the node reads of ext4's on-disk format itself; see disk_ext4.h. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/linux/disk_ext4.h"

#define EXT4_COMPAT_JOURNAL  0x4
#define EXT4_EXTENT_MAGIC    0xF30A
#define EXT4_BG_INODE_UNINIT 0x1
#define EXT4_BG_BLOCK_UNINIT 0x2
#define DISK_PREFETCH_INODES 16           /* group 0's first inodes read ahead */
#define DISK_PREFETCH_GDT    (256 * 1024) /* group descriptor bytes read ahead at most */

int
disk_ext4_info(int fd, struct disk_info *out)
{
    uint8_t sb[1024];
    ssize_t k = pread(fd, sb, sizeof(sb), 1024);
    if (k < 0)
        return -errno;
    if (k != (ssize_t)sizeof(sb))
        return -EINVAL;

    uint16_t magic;
    uint32_t inodes, blocks_lo, blocks_hi, free_lo, free_hi, free_inodes, log_bs, bpg, ipg,
        incompat;
    memcpy(&inodes, sb + 0x00, 4);
    memcpy(&blocks_lo, sb + 0x04, 4);
    memcpy(&free_lo, sb + 0x0C, 4);
    memcpy(&free_inodes, sb + 0x10, 4);
    memcpy(&log_bs, sb + 0x18, 4);
    memcpy(&bpg, sb + 0x20, 4);
    memcpy(&ipg, sb + 0x28, 4);
    memcpy(&magic, sb + 0x38, 2);
    memcpy(&incompat, sb + 0x60, 4);
    memcpy(&blocks_hi, sb + 0x150, 4);
    memcpy(&free_hi, sb + 0x158, 4);
    if (le16toh(magic) != EXT4_MAGIC || le32toh(log_bs) > 6 || le32toh(bpg) == 0 ||
        le32toh(ipg) == 0)
        return -EINVAL;

    out->block_size = 1024u << le32toh(log_bs);
    out->blocks = le32toh(blocks_lo);
    out->free_blocks = le32toh(free_lo);
    if (le32toh(incompat) & EXT4_INCOMPAT_64BIT) {
        out->blocks |= (uint64_t)le32toh(blocks_hi) << 32;
        out->free_blocks |= (uint64_t)le32toh(free_hi) << 32;
    }
    out->free_inodes = le32toh(free_inodes);
    out->inodes = le32toh(inodes);
    out->blocks_per_group = le32toh(bpg);
    out->inodes_per_group = le32toh(ipg);
    return 0;
}

void
disk_ext4_prefetch(int lfd)
{
    int bsz = 1024;
    uint8_t sb[1024], gd[64];
    if (ioctl(lfd, BLKBSZSET, &bsz) < 0 || readahead(lfd, 0, 4096) < 0 ||
        pread(lfd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
        return;
    uint16_t magic, desc_size, inode_size;
    uint32_t log_bs, compat, incompat, jnl[3];
    memcpy(&magic, sb + 0x38, 2);
    memcpy(&log_bs, sb + 0x18, 4);
    memcpy(&inode_size, sb + 0x58, 2);
    memcpy(&compat, sb + 0x5C, 4);
    memcpy(&incompat, sb + 0x60, 4);
    memcpy(&desc_size, sb + 0xFE, 2);
    memcpy(jnl, sb + 0x10C, sizeof(jnl)); /* s_jnl_blocks: the journal inode's i_block */
    if (le16toh(magic) != EXT4_MAGIC || le32toh(log_bs) != 0)
        return; /* not ext4, or not 1 KiB blocks: the mount changes the size again */
    /* The descriptors start at block 2 (1 KiB blocks), in the page read above. */
    if (pread(lfd, gd, sizeof(gd), 2048) != (ssize_t)sizeof(gd))
        return;
    bool wide = (le32toh(incompat) & EXT4_INCOMPAT_64BIT) && le16toh(desc_size) >= 64;
    uint32_t itable_lo, itable_hi = 0, blocks_lo, blocks_hi = 0, bpg;
    memcpy(&itable_lo, gd + 0x08, 4);
    memcpy(&blocks_lo, sb + 0x04, 4);
    memcpy(&bpg, sb + 0x20, 4);
    if (wide) {
        memcpy(&itable_hi, gd + 0x28, 4);
        memcpy(&blocks_hi, sb + 0x150, 4);
    }
    uint64_t itable = le32toh(itable_lo) | (uint64_t)le32toh(itable_hi) << 32;
    /* The descriptors past that page (more than 32 groups), which the mount
     * reads too; at most DISK_PREFETCH_GDT bytes of them. */
    uint64_t blocks = le32toh(blocks_lo) | (uint64_t)le32toh(blocks_hi) << 32;
    if (le32toh(bpg) > 0 && blocks > 1) {
        uint64_t groups = (blocks - 1 + le32toh(bpg) - 1) / le32toh(bpg);
        uint64_t gdt = groups * (wide ? le16toh(desc_size) : 32u);
        if (gdt > 2048)
            (void)readahead(lfd, 4096,
                            gdt - 2048 < DISK_PREFETCH_GDT ? gdt - 2048 : DISK_PREFETCH_GDT);
    }
    (void)readahead(lfd, (off_t)(itable * 1024),
                    (size_t)le16toh(inode_size) * DISK_PREFETCH_INODES);
    /* The journal's first block: its superblock. s_jnl_blocks holds an
     * extent header and, at depth 0, the first extent (start at 6 and 8). */
    uint16_t eh_magic, eh_entries, eh_depth, start_hi;
    uint32_t start_lo;
    memcpy(&eh_magic, (uint8_t *)jnl, 2);
    memcpy(&eh_entries, (uint8_t *)jnl + 2, 2);
    memcpy(&eh_depth, (uint8_t *)jnl + 6, 2);
    if (!(le32toh(compat) & EXT4_COMPAT_JOURNAL) || le16toh(eh_magic) != EXT4_EXTENT_MAGIC ||
        le16toh(eh_entries) == 0 || le16toh(eh_depth) != 0)
        return;
    uint8_t ext[12];
    memcpy(ext, sb + 0x10C + 12, sizeof(ext));
    memcpy(&start_hi, ext + 6, 2);
    memcpy(&start_lo, ext + 8, 4);
    uint64_t jstart = le32toh(start_lo) | (uint64_t)le16toh(start_hi) << 32;
    (void)readahead(lfd, (off_t)(jstart * 1024), 1024);
}

void
disk_ext4_prefetch_dir(int lfd, int dirfd)
{
    uint8_t sb[1024], gd[64];
    struct stat st;
    if (pread(lfd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb) || fstat(dirfd, &st) < 0 ||
        !S_ISDIR(st.st_mode) || st.st_ino == 0)
        return;
    uint16_t magic, desc_size;
    uint32_t log_bs, first, bpg, ipg, incompat;
    memcpy(&first, sb + 0x14, 4);
    memcpy(&log_bs, sb + 0x18, 4);
    memcpy(&bpg, sb + 0x20, 4);
    memcpy(&ipg, sb + 0x28, 4);
    memcpy(&magic, sb + 0x38, 2);
    memcpy(&incompat, sb + 0x60, 4);
    memcpy(&desc_size, sb + 0xFE, 2);
    if (le16toh(magic) != EXT4_MAGIC || le32toh(log_bs) > 6 || le32toh(bpg) == 0 ||
        le32toh(ipg) == 0)
        return;
    uint64_t bs = 1024u << le32toh(log_bs), fdb = le32toh(first);
    bool wide = (le32toh(incompat) & EXT4_INCOMPAT_64BIT) && le16toh(desc_size) >= 64;
    size_t dsz = wide ? 64 : 32;
    /* The group of its inode (the inode bitmap an rmdir or a mkdir beside it
     * changes), and of its first block (the block bitmap a free of it
     * changes; FIEMAP maps a directory's blocks as a file's). */
    uint64_t groups[2] = {((uint64_t)st.st_ino - 1) / le32toh(ipg), UINT64_MAX};
    union {
        struct fiemap fm;
        uint8_t bytes[sizeof(struct fiemap) + sizeof(struct fiemap_extent)];
    } map = {.fm = {.fm_length = FIEMAP_MAX_OFFSET, .fm_extent_count = 1}};
    if (ioctl(dirfd, FS_IOC_FIEMAP, &map) == 0 && map.fm.fm_mapped_extents == 1) {
        const struct fiemap_extent *fe = &map.fm.fm_extents[0];
        if (!(fe->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                              FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE))) {
            (void)readahead(lfd, (off_t)fe->fe_physical, bs);
            uint64_t blk = fe->fe_physical / bs;
            if (blk >= fdb)
                groups[1] = (blk - fdb) / le32toh(bpg);
        }
    }
    for (size_t i = 0; i < 2; i++) {
        if (groups[i] == UINT64_MAX || (i == 1 && groups[1] == groups[0]))
            continue;
        /* The descriptors start at the block after the superblock's. */
        off_t at = (off_t)((fdb + 1) * bs + groups[i] * dsz);
        if (pread(lfd, gd, dsz, at) != (ssize_t)dsz)
            continue;
        uint16_t flags;
        uint32_t bb_lo, ib_lo, bb_hi = 0, ib_hi = 0;
        memcpy(&bb_lo, gd + 0x00, 4);
        memcpy(&ib_lo, gd + 0x04, 4);
        memcpy(&flags, gd + 0x12, 2);
        if (wide) {
            memcpy(&bb_hi, gd + 0x20, 4);
            memcpy(&ib_hi, gd + 0x24, 4);
        }
        /* An uninitialised bitmap is made in memory, not read. */
        if (!(le16toh(flags) & EXT4_BG_BLOCK_UNINIT))
            (void)readahead(lfd, (off_t)((le32toh(bb_lo) | (uint64_t)le32toh(bb_hi) << 32) * bs),
                            bs);
        if (!(le16toh(flags) & EXT4_BG_INODE_UNINIT))
            (void)readahead(lfd, (off_t)((le32toh(ib_lo) | (uint64_t)le32toh(ib_hi) << 32) * bs),
                            bs);
    }
}
