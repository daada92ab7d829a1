/* A guest's disk: a sparse ext4 image file, loop-mounted on the host.
 *
 * This kernel has no filesystem quotas, so the filesystem itself is the limit:
 * the image's size is the guest's disk limit and its inode count the inode
 * limit. Both are enforced by ext4 (ENOSPC), measured with statvfs, and the
 * whole disk migrates as one file. The guest's overlayfs upper and work dirs
 * live on it (rootfs.h).
 *
 * Filesystem layout chosen by disk_create():
 *  - `-m 0`: no blocks reserved for root, so `df` in the guest shows the limit.
 *  - Block size 1 KiB below DISK_SMALL_SIZE and 4 KiB from it up (mke2fs's own
 *    "small" rule). The journal is never shorter than 1024 blocks, so with
 *    4 KiB blocks a small image would lose 4 MiB or more to it; 1 KiB blocks
 *    and a journal of 1/64 of the image (at least 1 MiB) keep a 32 MiB disk at
 *    about 93 % usable. Images from DISK_SMALL_SIZE up get mke2fs's default
 *    journal. The block size is fixed for life: a disk created small and grown
 *    large keeps 1 KiB blocks, so create guests with their real size.
 *  - 1 KiB-block images reserve group descriptor blocks for online growth up
 *    to DISK_SMALL_GROW_MAX (`-E resize=`), not mke2fs's 1024x: an online
 *    resize asks the journal for about as many credits as there are reserved
 *    blocks, and the small journal grants 256 (Debian 12's kernel refused
 *    every online grow of such a disk before). Past that size ext4 has to
 *    convert to meta_bg to grow online.
 *  - The file is freshly sparse, so mke2fs is told the storage is pre-zeroed
 *    (`assume_storage_prezeroed`, e2fsprogs >= 1.47): no inode table or
 *    journal zeroing at mkfs time nor later by the kernel's lazy-init thread,
 *    and the image starts at a few hundred KiB on the host.
 *
 * Inode policy. ext4 fixes inodes per block group at mkfs; the inode count
 * therefore follows the size: growing adds groups with the same number of
 * inodes each, shrinking removes them (disk_resize refuses a shrink that
 * would leave fewer inodes than are in use). An inode limit can not be
 * changed on its own: raising or lowering it needs a new filesystem and a copy
 * of the guest's files, which this module does not do. The backend compares
 * disk_info().inodes with the spec and reports the mismatch instead of
 * pretending; disk_create() of an existing image accepts it when the image
 * has at least the requested inodes.
 *
 * Loop devices are attached with LO_FLAGS_AUTOCLEAR: the kernel detaches one
 * when its last user (the mount) goes away, so an agent that dies between
 * attach and mount, or a guest unmounted by hand, leaks no loop device.
 * After an agent restart, disk_find_loop() and the mount table find what is
 * attached; nothing needs to be stored.
 *
 * A mount reads ahead: right after the attach, disk_mount sets the loop
 * device's block size to ext4's first (1 KiB), reads the superblock and
 * asks at once for the metadata the mount would read one block after the
 * other through the loop device's direct I/O (the group descriptors, group
 * 0's first inodes, the journal's superblock), so the mount waits for one
 * burst instead of each read in turn. Only 1 KiB-block images gain: a 4 KiB
 * one's mount changes the block size again, which drops that cache, unless
 * the loop device's logical block size were 4 KiB (not done: the guest's
 * O_DIRECT would then need 4 KiB alignment instead of 512 bytes). Nothing on
 * the image changes.
 *
 * One image, one loop device: every attachment this module makes holds the
 * image's claim, an OFD write lock (fcntl F_OFD_SETLK) on the open file
 * description the loop device is configured with. The loop device keeps that
 * description, so the claim lasts as long as the attachment (an agent restart
 * included) and a reboot or the detach ends it. disk_mount, disk_destroy,
 * disk_resize (offline) and disk_create (of a broken image) take the claim
 * first: free, the image backs no loop device of ours, known in O(1); held,
 * they look through every loop device's backing file (disk_find_loop) to
 * tell an attachment (-EBUSY) from a detach finishing (waited for, up to a
 * second). Decision: an image attached by hand (`losetup`) holds no claim and
 * goes unnoticed; the walk that would notice it cost O(loop devices) per
 * start and per destroy (1,003 sysfs reads on a busy host). LXC's loop
 * backend attaches without any check, Incus's `losetup --find --nooverlap`
 * (one loop file per storage pool, not per instance) walks every device.
 *
 * Returns: 0 (or the documented positive value) on success, -errno on failure.
 * Helper programs (mkfs.ext4, e2fsck, resize2fs) are run with posix_spawn and
 * a clean environment; their failure is -EIO, with their output logged at
 * debug level.
 *
 * Paths: image is absolute (it is passed to mkfs and resize2fs as an argument).
 *
 * Threads: no shared state; safe from any thread of a threaded process (no
 * fork). Operations on the same image must not run concurrently. */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define DISK_MIN_SIZE            (16ULL << 20)  /* smallest image accepted */
#define DISK_MAX_SIZE            (256ULL << 40) /* largest image accepted */
#define DISK_SMALL_SIZE          (512ULL << 20) /* below this: 1 KiB blocks */
#define DISK_SMALL_GROW_MAX      (16ULL << 30)  /* 1 KiB-block disks grow online up to here */
#define DISK_BYTES_PER_INODE     16384          /* default inode ratio when inodes == 0 */
#define DISK_MIN_INODES          64             /* fewer than this can not hold a system */
#define DISK_MIN_BYTES_PER_INODE 1024           /* denser than this and inode tables eat the disk */

/* Geometry of an ext4 image, read from its superblock. */
struct disk_info {
    uint32_t block_size;       /* filesystem block size, bytes */
    uint64_t blocks;           /* filesystem size in blocks */
    uint64_t inodes;           /* inode count (the inode limit) */
    uint32_t blocks_per_group; /* blocks in one block group */
    uint32_t inodes_per_group; /* inodes in one block group, fixed at mkfs */
    uint64_t free_blocks;      /* free blocks, as of the last superblock write */
    uint64_t free_inodes;      /* free inodes, as of the last superblock write */
};

/* Space and inodes of a mounted disk, from statvfs. Totals exclude ext4's own
 * metadata (journal, inode tables), so bytes_total is a little below the image
 * size; it is what `df` in the guest shows. */
struct disk_usage {
    uint64_t bytes_total;  /* usable bytes */
    uint64_t bytes_used;   /* bytes in use */
    uint64_t inodes_total; /* inode count */
    uint64_t inodes_used;  /* inodes in use */
    bool full;             /* no free block or no free inode now */
};

/* Makes a sparse image of size bytes (rounded down to 4 KiB) holding an empty
 * ext4 filesystem with at least `inodes` inodes (0 = one per
 * DISK_BYTES_PER_INODE). The file is created mode 0600. With pristine_dir
 * (a directory of the node's, made 0700 when missing) the filesystem is a
 * copy of the pristine image of that geometry kept there, made by mkfs the
 * first time, with a UUID of its own (disk_pristine.h); without it, or for
 * an image over 64 GiB, or when that fails, mkfs.ext4 makes it.
 * Idempotent: an existing image of the same size holding ext4 with at least
 * `inodes` inodes is left alone and 0 returned; one of the same size without a
 * valid superblock (a create interrupted before mkfs finished) is made again,
 * and so is an empty one (a create killed between making the file and giving
 * it its size: the image is made in place, and an empty file never held a
 * guest's byte; an image of another size is never replaced).
 * Returns -EINVAL for a size outside [DISK_MIN_SIZE, DISK_MAX_SIZE] or an
 * inode count outside [DISK_MIN_INODES, size / DISK_MIN_BYTES_PER_INODE],
 * -EEXIST for an existing image of another size or with fewer inodes, -EBUSY
 * when a broken existing image is attached to a loop device, -EIO when mkfs
 * fails (the new file is removed again). */
int disk_create(const char *image, uint64_t size, uint64_t inodes, const char *pristine_dir);

/* Reads the geometry of the ext4 filesystem in image. For a mounted image the
 * values are as of the kernel's last superblock write; call syncfs() on the
 * mount first for fresh ones. Returns 0, -ENOENT, -EINVAL when image holds no
 * ext4 superblock. */
int disk_info(const char *image, struct disk_info *out);

/* Attaches image to a free loop device and mounts it (ext4, nosuid, nodev,
 * errors=remount-ro) at mountpoint, which is created (mode 0700) if missing.
 * Writes the loop device's path ("/dev/loop3") to loopdev[n] when loopdev is
 * not NULL. Idempotent: if image is already mounted at mountpoint, returns 0
 * with its loop device. Returns -EBUSY when something else is mounted at
 * mountpoint or image is attached to a loop device already (mounted
 * elsewhere), -ENAMETOOLONG when loopdev is too short; on failure nothing
 * stays attached or mounted.
 * nosuid and nodev guard the host: a setuid file or device node a guest
 * writes is inert at its host path. Inside the guest the overlay mount's own
 * flags decide (rootfs.h: nodev, not nosuid), so the guest's setuid programs
 * still work (checked by hand: a setuid file copied up onto this mount runs
 * setuid through the overlay, and not through this mount). */
int disk_mount(const char *image, const char *mountpoint, char *loopdev, size_t n);

/* disk_mount, and beside the ext4 mount, on a thread of its own joined
 * before it returns, a read-ahead of the ndirs directories at dirs (paths
 * from the disk's root) and of what a change in them reads
 * (disk_ext4_walk), so that the mount's own flush and the walk's reads
 * overlap instead of the look-ups waiting for each block after the mount.
 * A cold start asks for the overlay's upper, work and work/work. Reads
 * only; a walk that cannot start or finds the image changed leaves the
 * reads to the file system. */
int disk_mount_ahead(const char *image, const char *mountpoint, char *loopdev, size_t n,
                     const char *const *dirs, size_t ndirs);

/* Reads ahead, on loopdev (the loop device of a disk mounted by
 * disk_mount), what a change in each of the n directories open as dirfds
 * would read from it one block after the other (disk_ext4.h
 * disk_ext4_prefetch_dir), all at once, without waiting. A cold start calls
 * it for the overlay's upper and work directories before the overlay's mount
 * (which re-makes work/work), so that the mount finds them in the device's
 * page cache. Reads only; best effort. */
void disk_prefetch_dirs(const char *loopdev, const int *dirfds, size_t n);

/* disk_mount for an image disk_create has just made or made again. The
 * same as disk_mount since the claim (above) made its check O(1). */
int disk_mount_new(const char *image, const char *mountpoint);

/* Finds the loop device image is attached to (compared by device and inode
 * of the backing file, from /sys/block/loop*\/loop/backing_file) and writes
 * its path to loopdev[n]. O(loop devices on the host); an image attached by
 * hand is found too. Returns 0, -ENOENT when image backs no loop device. */
int disk_find_loop(const char *image, char *loopdev, size_t n);

/* Unmounts the ext4 disk at mountpoint and waits (up to two seconds) for its
 * loop device to be detached. When the filesystem is busy it is detached
 * lazily as a last resort: the mount point is free at once, but the
 * filesystem and its loop device stay until the last user goes. Idempotent:
 * 0 when nothing is mounted at mountpoint.
 * Returns 0 when the mount and its loop device are gone, -EBUSY when the mount
 * point is free but the loop device is still attached (lazy detach of a busy
 * filesystem; do not destroy or remount the image yet), -EINVAL when what is
 * mounted at mountpoint is not an ext4 disk on a loop device. */
int disk_umount(const char *mountpoint);

/* Changes image to new_size bytes (rounded down to 4 KiB). mountpoint is
 * where it is mounted, or NULL/not mounted for an offline resize.
 *  - Grow, online or offline: extend the file; mounted: LOOP_SET_CAPACITY and
 *    `resize2fs /dev/loopN` (ext4 online resize); unmounted: `e2fsck -f -p`
 *    then `resize2fs image`.
 *  - Shrink: -ENOSPC when new_size is below what the filesystem uses (data and
 *    metadata) or would leave fewer inodes than are used; -EBUSY when mounted
 *    (ext4 can not shrink online); unmounted: e2fsck, resize2fs, truncate.
 *    resize2fs refuses sizes below its own estimate of the minimum, which is
 *    pessimistic (on a small, full disk it can be the current size): that is
 *    -ENOSPC too. resize2fs is never forced (-f) past it.
 *  - Same size: 0 (an interrupted grow whose file is already long is finished).
 * The inode count follows the size (see the inode policy above). On -ENOSPC
 * and -EBUSY nothing was changed. Returns -EINVAL for a size out of range or a
 * mountpoint that does not hold this image, -EBUSY when the image is attached
 * to a loop device but not mounted at mountpoint, -EPERM for an online grow
 * without CAP_SYS_RESOURCE (ext4 requires it; checked before anything
 * changes; unmount and grow offline instead). */
int disk_resize(const char *image, const char *mountpoint, uint64_t new_size);

/* Measures the disk mounted at mountpoint. Returns 0, -ENOENT when nothing is
 * mounted there. */
int disk_usage(const char *mountpoint, struct disk_usage *out);

/* Removes image. Idempotent: 0 when it does not exist. Returns -EBUSY while it
 * is attached to a loop device (mounted, or lazily detached and still busy)
 * or its claim is held by something else for over a second. */
/* Unlinks the image even while a loop device still backs it (a mount copy in
 * another mount namespace): its space is freed when the last user goes. */
int disk_unlink(const char *image);
int disk_destroy(const char *image);
