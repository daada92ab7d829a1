/* Pristine filesystem images (disk_pristine.h). */
#define _FILE_OFFSET_BITS 64
#include "node/linux/disk_pristine.h"
#include "common/le.h"
#include "node/linux/disk_ext4.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ext4 superblock layout (Documentation/filesystems/ext4/super.rst). */
#define SB_OFFSET               1024  /* the primary superblock's place in the image */
#define SB_SIZE                 1024  /* its size */
#define SB_MAGIC                0x38  /* __le16 s_magic */
#define SB_FEATURE_INCOMPAT     0x60  /* __le32 */
#define SB_FEATURE_RO_COMPAT    0x64  /* __le32 */
#define SB_UUID                 0x68  /* __u8 s_uuid[16] */
#define SB_HASH_SEED            0xEC  /* __le32 s_hash_seed[4] */
#define SB_CHECKSUM_TYPE        0x175 /* __u8, 1 = crc32c */
#define SB_CHECKSUM             0x3FC /* __le32 s_checksum */
#define RO_COMPAT_METADATA_CSUM 0x400
#define INCOMPAT_CSUM_SEED      0x2000

#define COPY_CHUNK (1 << 30) /* bytes per copy_file_range call */

uint32_t
disk_pristine_crc32c(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return crc;
}

/* Copies [from, to) of src to the same place in dst; nothing when empty. */
static int
copy_range(int src, int dst, off_t from, off_t to)
{
    off_t in = from, out = from;

    while (in < to) {
        size_t want = to - in < COPY_CHUNK ? (size_t)(to - in) : COPY_CHUNK;
        ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* src shrank under us */
    }
    return 0;
}

int
disk_pristine_copy(int src, int dst)
{
    off_t end = lseek(src, 0, SEEK_END);
    if (end < 0)
        return -errno;
    off_t pos = 0;
    while (pos < end) {
        off_t data = lseek(src, pos, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
        off_t hole = lseek(src, data, SEEK_HOLE);
        if (hole < 0)
            return -errno;
        /* Around the primary superblock: it is written last, by
         * disk_pristine_renew, so a copy cut short (a killed agent: the
         * page cache keeps what was written) holds no filesystem. */
        int r = copy_range(src, dst, data, hole < SB_OFFSET ? hole : SB_OFFSET);
        if (r == 0)
            r = copy_range(src, dst, data > SB_OFFSET + SB_SIZE ? data : SB_OFFSET + SB_SIZE, hole);
        if (r < 0)
            return r;
        pos = hole;
    }
    return 0;
}

static int
read_sb(int fd, uint8_t sb[SB_SIZE])
{
    ssize_t n = pread(fd, sb, SB_SIZE, SB_OFFSET);
    if (n < 0)
        return -errno;
    return n == SB_SIZE ? 0 : -EINVAL;
}

static bool
sb_renewable(const uint8_t *sb)
{
    return le16_at(sb, SB_MAGIC) == EXT4_MAGIC &&
           (le32_at(sb, SB_FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM) &&
           (le32_at(sb, SB_FEATURE_INCOMPAT) & INCOMPAT_CSUM_SEED) && sb[SB_CHECKSUM_TYPE] == 1;
}

int
disk_pristine_renewable(int fd)
{
    uint8_t sb[SB_SIZE];
    int r = read_sb(fd, sb);
    return r < 0 ? r : sb_renewable(sb);
}

int
disk_pristine_renew(int src, int dst, bool valid)
{
    uint8_t sb[SB_SIZE], rnd[32];
    int r = read_sb(src, sb);
    if (r < 0)
        return r;
    if (!sb_renewable(sb))
        return -EINVAL;
    if (!valid) {
        memset(sb, 0, sizeof(sb));
        ssize_t n = pwrite(dst, sb, SB_SIZE, SB_OFFSET);
        return n < 0 ? -errno : n == SB_SIZE ? 0 : -EIO;
    }
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -EIO;
    rnd[6] = (uint8_t)((rnd[6] & 0x0F) | 0x40); /* RFC 4122 version 4 */
    rnd[8] = (uint8_t)((rnd[8] & 0x3F) | 0x80); /* and its variant */
    memcpy(sb + SB_UUID, rnd, 16);
    /* The htree seed: each disk's own, as mke2fs would have drawn it (no
     * directory of a pristine image is indexed yet, so none depends on it). */
    memcpy(sb + SB_HASH_SEED, rnd + 16, 16);
    le32_put(sb, SB_CHECKSUM, disk_pristine_crc32c(~0u, sb, SB_CHECKSUM));
    ssize_t n = pwrite(dst, sb, SB_SIZE, SB_OFFSET);
    if (n < 0)
        return -errno;
    return n == SB_SIZE ? 0 : -EIO;
}
