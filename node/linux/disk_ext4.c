/* What the node reads of ext4's on-disk format itself; see disk_ext4.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/le.h"
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

    uint32_t log_bs = le32_at(sb, 0x18), bpg = le32_at(sb, 0x20), ipg = le32_at(sb, 0x28);
    if (le16_at(sb, 0x38) != EXT4_MAGIC || log_bs > 6 || bpg == 0 || ipg == 0)
        return -EINVAL;

    out->block_size = 1024u << log_bs;
    out->blocks = le32_at(sb, 0x04);
    out->free_blocks = le32_at(sb, 0x0C);
    if (le32_at(sb, 0x60) & EXT4_INCOMPAT_64BIT) {
        out->blocks |= (uint64_t)le32_at(sb, 0x150) << 32;
        out->free_blocks |= (uint64_t)le32_at(sb, 0x158) << 32;
    }
    out->free_inodes = le32_at(sb, 0x10);
    out->inodes = le32_at(sb, 0x00);
    out->blocks_per_group = bpg;
    out->inodes_per_group = ipg;
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
    uint16_t desc_size = le16_at(sb, 0xFE);
    if (le16_at(sb, 0x38) != EXT4_MAGIC || le32_at(sb, 0x18) != 0)
        return; /* not ext4, or not 1 KiB blocks: the mount changes the size again */
    /* The descriptors start at block 2 (1 KiB blocks), in the page read above. */
    if (pread(lfd, gd, sizeof(gd), 2048) != (ssize_t)sizeof(gd))
        return;
    bool wide = (le32_at(sb, 0x60) & EXT4_INCOMPAT_64BIT) && desc_size >= 64;
    uint64_t itable = le32_at(gd, 0x08) | (wide ? (uint64_t)le32_at(gd, 0x28) << 32 : 0);
    /* The descriptors past that page (more than 32 groups), which the mount
     * reads too; at most DISK_PREFETCH_GDT bytes of them. */
    uint64_t blocks = le32_at(sb, 0x04) | (wide ? (uint64_t)le32_at(sb, 0x150) << 32 : 0);
    uint32_t bpg = le32_at(sb, 0x20);
    if (bpg > 0 && blocks > 1) {
        uint64_t groups = (blocks - 1 + bpg - 1) / bpg;
        uint64_t gdt = groups * (wide ? desc_size : 32u);
        if (gdt > 2048)
            (void)readahead(lfd, 4096,
                            gdt - 2048 < DISK_PREFETCH_GDT ? gdt - 2048 : DISK_PREFETCH_GDT);
    }
    (void)readahead(lfd, (off_t)(itable * 1024), (size_t)le16_at(sb, 0x58) * DISK_PREFETCH_INODES);
    /* The journal's first block: its superblock. s_jnl_blocks (at 0x10C, the
     * journal inode's i_block) holds an extent header (magic, entries, depth
     * at 0, 2 and 6) and, at depth 0, the first extent after it (start at 6
     * and 8 of the extent's 12 bytes). */
    const uint8_t *jnl = sb + 0x10C, *ext = jnl + 12;
    if (!(le32_at(sb, 0x5C) & EXT4_COMPAT_JOURNAL) || le16_at(jnl, 0) != EXT4_EXTENT_MAGIC ||
        le16_at(jnl, 2) == 0 || le16_at(jnl, 6) != 0)
        return;
    uint64_t jstart = le32_at(ext, 8) | (uint64_t)le16_at(ext, 6) << 32;
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
