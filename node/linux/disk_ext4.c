/* What the node reads of ext4's on-disk format itself; see disk_ext4.h. */
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

#include "common/le.h"
#include "node/linux/disk_ext4.h"

#define EXT4_COMPAT_JOURNAL  0x4
#define EXT4_EXTENT_MAGIC    0xF30A
#define EXT4_BG_INODE_UNINIT 0x1
#define EXT4_BG_BLOCK_UNINIT 0x2
#define EXT4_ROOT_INO        2            /* the root directory's inode */
#define EXT4_EXTENTS_FL      0x80000      /* i_flags: the blocks are an extent tree */
#define EXT4_INLINE_DATA_FL  0x10000000   /* i_flags: the data is in the inode */
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

/* The geometry of an ext4 the read-ahead below walks, from its superblock. */
struct ext4_geo {
    int lfd;           /* the loop device */
    uint64_t bs;       /* block size */
    uint64_t fdb;      /* first data block (the superblock's) */
    uint64_t blocks;   /* blocks in all */
    uint64_t inodes;   /* inodes in all */
    uint32_t bpg, ipg; /* blocks and inodes per group */
    uint32_t isz;      /* an inode's size in its table */
    size_t dsz;        /* a group descriptor's size */
};

/* Reads the superblock of the ext4 on lfd (from the device's page cache,
 * where the mount's read-ahead put it): false when it is none. */
static bool
geo_read(int lfd, struct ext4_geo *g)
{
    uint8_t sb[1024];
    if (pread(lfd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb))
        return false;
    uint32_t log_bs = le32_at(sb, 0x18);
    uint16_t desc_size = le16_at(sb, 0xFE);
    bool wide = (le32_at(sb, 0x60) & EXT4_INCOMPAT_64BIT) && desc_size >= 64;
    *g = (struct ext4_geo){
        .lfd = lfd,
        .fdb = le32_at(sb, 0x14),
        .blocks = le32_at(sb, 0x04) | (wide ? (uint64_t)le32_at(sb, 0x150) << 32 : 0),
        .inodes = le32_at(sb, 0x00),
        .bpg = le32_at(sb, 0x20),
        .ipg = le32_at(sb, 0x28),
        .isz = le32_at(sb, 0x4C) == 0 ? 128 : le16_at(sb, 0x58), /* revision 0: 128 */
        .dsz = wide ? desc_size : 32,
    };
    if (le16_at(sb, 0x38) != EXT4_MAGIC || log_bs > 6 || g->bpg == 0 || g->ipg == 0)
        return false;
    g->bs = 1024u << log_bs;
    return g->isz >= 128 && g->isz <= g->bs && g->dsz <= g->bs;
}

/* Reads group's descriptor (its first 64 bytes, zero past a 32-byte one). */
static bool
gd_read(const struct ext4_geo *g, uint64_t group, uint8_t gd[64])
{
    size_t n = g->dsz < 64 ? g->dsz : 64;
    memset(gd, 0, 64);
    /* The descriptors start at the block after the superblock's. */
    return pread(g->lfd, gd, n, (off_t)((g->fdb + 1) * g->bs + group * g->dsz)) == (ssize_t)n;
}

/* A block number in a group descriptor: the low half at lo, the high at hi
 * on a 64-byte one. */
static uint64_t
gd_block(const struct ext4_geo *g, const uint8_t *gd, size_t lo, size_t hi)
{
    return le32_at(gd, lo) | (g->dsz >= 64 ? (uint64_t)le32_at(gd, hi) << 32 : 0);
}

/* Reads ahead the block and inode bitmaps of group, without waiting; an
 * uninitialised bitmap is made in memory, not read. */
static void
bitmaps_ahead(const struct ext4_geo *g, uint64_t group)
{
    uint8_t gd[64];
    if (!gd_read(g, group, gd))
        return;
    uint16_t flags = le16_at(gd, 0x12);
    if (!(flags & EXT4_BG_BLOCK_UNINIT))
        (void)readahead(g->lfd, (off_t)(gd_block(g, gd, 0x00, 0x20) * g->bs), g->bs);
    if (!(flags & EXT4_BG_INODE_UNINIT))
        (void)readahead(g->lfd, (off_t)(gd_block(g, gd, 0x04, 0x24) * g->bs), g->bs);
}

/* Reads ahead the bitmaps of the groups of inode ino and of block blk (a
 * block below the first data block has none). */
static void
groups_ahead(const struct ext4_geo *g, uint64_t ino, uint64_t blk)
{
    uint64_t group = (ino - 1) / g->ipg;
    bitmaps_ahead(g, group);
    if (blk != UINT64_MAX && blk >= g->fdb && (blk - g->fdb) / g->bpg != group)
        bitmaps_ahead(g, (blk - g->fdb) / g->bpg);
}

void
disk_ext4_prefetch_dir(int lfd, int dirfd)
{
    struct ext4_geo g;
    struct stat st;
    if (!geo_read(lfd, &g) || fstat(dirfd, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_ino == 0)
        return;
    /* Its first block (FIEMAP maps a directory's blocks as a file's), and
     * the groups of its inode (the inode bitmap an rmdir or a mkdir beside
     * it changes) and of that block (the block bitmap a free of it changes). */
    uint64_t blk = UINT64_MAX;
    union {
        struct fiemap fm;
        uint8_t bytes[sizeof(struct fiemap) + sizeof(struct fiemap_extent)];
    } map = {.fm = {.fm_length = FIEMAP_MAX_OFFSET, .fm_extent_count = 1}};
    if (ioctl(dirfd, FS_IOC_FIEMAP, &map) == 0 && map.fm.fm_mapped_extents == 1) {
        const struct fiemap_extent *fe = &map.fm.fm_extents[0];
        if (!(fe->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                              FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE))) {
            (void)readahead(lfd, (off_t)fe->fe_physical, g.bs);
            blk = fe->fe_physical / g.bs;
        }
    }
    groups_ahead(&g, (uint64_t)st.st_ino, blk);
}

/* The first block (logical block 0) of directory ino, from its inode in
 * the table (read here, and waited for): 0 when ino is not a directory
 * whose block 0 one extent of a depth-0 tree maps (inline data, a deeper
 * tree, anything unexpected: left to the file system). */
static uint64_t
dir_first_block(const struct ext4_geo *g, uint64_t ino)
{
    uint8_t gd[64], in[128];
    if (ino == 0 || ino > g->inodes || !gd_read(g, (ino - 1) / g->ipg, gd) ||
        (le16_at(gd, 0x12) & EXT4_BG_INODE_UNINIT))
        return 0;
    uint64_t table = gd_block(g, gd, 0x08, 0x28);
    off_t at = (off_t)(table * g->bs + (ino - 1) % g->ipg * g->isz);
    if (pread(g->lfd, in, sizeof(in), at) != (ssize_t)sizeof(in))
        return 0;
    uint32_t flags = le32_at(in, 0x20);
    const uint8_t *eh = in + 0x28; /* i_block: the extent tree's root */
    if ((le16_at(in, 0x00) & S_IFMT) != S_IFDIR || !(flags & EXT4_EXTENTS_FL) ||
        (flags & EXT4_INLINE_DATA_FL) || le16_at(eh, 0) != EXT4_EXTENT_MAGIC || le16_at(eh, 6) != 0)
        return 0;
    for (uint16_t i = 0, n = le16_at(eh, 2); i < n && i < 4; i++) {
        const uint8_t *ext = eh + 12 + 12 * i; /* block, length, start high, low */
        uint16_t len = le16_at(ext, 4);
        uint64_t start = le32_at(ext, 8) | (uint64_t)le16_at(ext, 6) << 32;
        /* A length above 32768 marks an unwritten extent: nothing to read. */
        if (le32_at(ext, 0) == 0)
            return len > 0 && len <= 32768 && start >= g->fdb && start < g->blocks ? start : 0;
    }
    return 0;
}

/* The inode number of the entry name (len bytes) in the directory block blk
 * (read here, and waited for), among its linear entries: 0 when it is not
 * there (or the block is an index's root: left to the file system). */
static uint64_t
dir_find(const struct ext4_geo *g, uint64_t blk, const char *name, size_t len)
{
    uint8_t b[1024];
    if (g->bs != sizeof(b) ||
        pread(g->lfd, b, sizeof(b), (off_t)(blk * g->bs)) != (ssize_t)sizeof(b))
        return 0;
    for (size_t off = 0, rec; off + 12 <= sizeof(b); off += rec) {
        uint32_t ino = le32_at(b, off);
        rec = le16_at(b, off + 4);
        if (rec < 12 || rec % 4 || off + rec > sizeof(b))
            return 0;
        if (ino != 0 && b[off + 6] == len && 8 + len <= rec && memcmp(b + off + 8, name, len) == 0)
            return ino;
    }
    return 0;
}

void
disk_ext4_walk(int lfd, const char *const *dirs, size_t n)
{
    struct ext4_geo g;
    /* A 4 KiB-block image's mount changes the device's block size, which
     * drops whatever this read (disk_ext4_prefetch). */
    if (!geo_read(lfd, &g) || g.bs != 1024)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t ino = EXT4_ROOT_INO, blk = dir_first_block(&g, ino);
        for (const char *p = dirs[i]; blk != 0 && *p;) {
            size_t len = strcspn(p, "/");
            ino = len > 0 && len <= 255 ? dir_find(&g, blk, p, len) : 0;
            blk = ino != 0 ? dir_first_block(&g, ino) : 0;
            p += len + (p[len] == '/');
        }
        if (blk == 0)
            continue;
        (void)readahead(lfd, (off_t)(blk * g.bs), g.bs);
        groups_ahead(&g, ino, blk);
    }
}
