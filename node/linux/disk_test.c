/* Tests for node/linux/disk: real ext4 images on real loop devices. Needs root
 * and /dev/loop-control; skipped (77) otherwise. Every object lives under a
 * temporary directory named with the pid, and the teardown unmounts and
 * removes it even when an assertion fails. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "node/linux/disk.h"
#include "node/linux/disk_pristine.h"
#include "node/linux/mountinfo.h"

#define MiB (1ULL << 20)

struct fx {
    char dir[256];        /* the test's temporary directory */
    char image[PATH_MAX]; /* its disk image */
    char mnt[PATH_MAX];   /* where the image is mounted */
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/vf-disk-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->image, sizeof(fx->image), "%s/disk.img", fx->dir);
    snprintf(fx->mnt, sizeof(fx->mnt), "%s/mnt", fx->dir);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    /* Best effort, whatever state the test died in. */
    if (mountinfo_is_mountpoint(fx->mnt) == 1 && disk_umount(fx->mnt) < 0)
        umount2(fx->mnt, MNT_DETACH);
    char other[PATH_MAX + 8];
    snprintf(other, sizeof(other), "%s/other", fx->dir);
    if (mountinfo_is_mountpoint(other) == 1 && disk_umount(other) < 0)
        umount2(other, MNT_DETACH);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "teardown: could not remove %s\n", fx->dir);
    free(fx);
    return 0;
}

/* Writes 64 KiB blocks to path until a write fails; returns the bytes written
 * and the failing errno in *err (0 if limit bytes were written first). */
static uint64_t
fill(const char *path, uint64_t limit, int *err)
{
    static char buf[64 * 1024];
    memset(buf, 'x', sizeof(buf));
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    uint64_t done = 0;
    *err = 0;
    while (done < limit) {
        ssize_t k = write(fd, buf, sizeof(buf));
        if (k < 0) {
            *err = errno;
            break;
        }
        done += (uint64_t)k;
    }
    /* Delayed allocation can report ENOSPC only at write-back. */
    if (fsync(fd) < 0 && *err == 0)
        *err = errno;
    close(fd);
    return done;
}

static bool
has_cap_sys_resource(void)
{
    cap_t caps = cap_get_proc();
    cap_flag_value_t v = CAP_CLEAR;
    assert_non_null(caps);
    assert_int_equal(cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &v), 0);
    cap_free(caps);
    return v == CAP_SET;
}

static void
test_create_args(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(disk_create(fx->image, 8 * MiB, 0, NULL), -EINVAL);
    assert_int_equal(disk_create(fx->image, 32 * MiB, 10, NULL), -EINVAL);
    assert_int_equal(disk_create(fx->image, 32 * MiB, 32 * MiB, NULL), -EINVAL);
    assert_int_equal(access(fx->image, F_OK), -1);

    /* A file of the right size without a filesystem (a create that died before
     * mkfs) is made again; one of another size is refused. */
    int fd = open(fx->image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 32 * MiB), 0);
    close(fd);
    struct disk_info info;
    assert_int_equal(disk_info(fx->image, &info), -EINVAL);
    assert_int_equal(disk_create(fx->image, 32 * MiB, 0, NULL), 0);
    assert_int_equal(disk_info(fx->image, &info), 0);
    assert_true(info.inodes >= 32 * MiB / DISK_BYTES_PER_INODE);
    assert_int_equal(disk_create(fx->image, 48 * MiB, 0, NULL), -EEXIST);
    assert_int_equal(disk_create(fx->image, 32 * MiB, 20000, NULL), -EEXIST);
    assert_int_equal(disk_destroy(fx->image), 0);
    assert_int_equal(disk_destroy(fx->image), 0);
    assert_int_equal(access(fx->image, F_OK), -1);

    /* An empty file (a create killed between its open and its ftruncate to
     * the size, or a remake killed between its two ftruncates) is made
     * again, with mkfs or from a pristine copy, and a guest's complete image
     * beside it is never replaced: it holds a file after a create of
     * another size, and after one of its own. */
    char pristine[PATH_MAX + 16], mark[PATH_MAX + 16];
    snprintf(pristine, sizeof(pristine), "%s/pristine", fx->dir);
    for (int with_pristine = 0; with_pristine < 2; with_pristine++) {
        fd = open(fx->image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(disk_create(fx->image, 32 * MiB, 0, with_pristine ? pristine : NULL), 0);
        assert_int_equal(disk_info(fx->image, &info), 0);
        assert_int_equal(info.blocks * info.block_size, 32 * MiB);
        assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
        snprintf(mark, sizeof(mark), "%s/mark", fx->mnt);
        fd = open(mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(disk_umount(fx->mnt), 0);
        assert_int_equal(disk_create(fx->image, 48 * MiB, 0, NULL), -EEXIST);
        assert_int_equal(disk_create(fx->image, 32 * MiB, 0, NULL), 0);
        assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
        assert_int_equal(access(mark, F_OK), 0);
        assert_int_equal(disk_umount(fx->mnt), 0);
        assert_int_equal(disk_destroy(fx->image), 0);
    }
}

static void
test_limits_resize(void **state)
{
    struct fx *fx = *state;
    char loopdev[64], again[64], found[64];
    struct disk_usage u;
    struct disk_info info;
    int err;

    /* A copy of a pristine image: what the backend makes; it resizes as mkfs's would. */
    char pristine[PATH_MAX + 16];
    snprintf(pristine, sizeof(pristine), "%s/pristine", fx->dir);
    assert_int_equal(disk_create(fx->image, 32 * MiB, 2048, pristine), 0);
    assert_int_equal(disk_create(fx->image, 32 * MiB, 2048, pristine), 0); /* idempotent */
    struct stat st;
    assert_int_equal(stat(fx->image, &st), 0);
    assert_true((uint64_t)st.st_size == 32 * MiB);
    assert_true((uint64_t)st.st_blocks * 512 < 4 * MiB); /* sparse */
    assert_int_equal(disk_info(fx->image, &info), 0);
    assert_true(info.inodes == 2048);

    assert_int_equal(disk_mount(fx->image, fx->mnt, loopdev, sizeof(loopdev)), 0);
    assert_true(strncmp(loopdev, "/dev/loop", 9) == 0);
    assert_int_equal(disk_mount(fx->image, fx->mnt, again, sizeof(again)), 0);
    assert_string_equal(loopdev, again);
    assert_int_equal(disk_find_loop(fx->image, found, sizeof(found)), 0);
    assert_string_equal(loopdev, found);
    assert_int_equal(disk_destroy(fx->image), -EBUSY);

    /* The size and inode limits as the guest's df sees them. */
    assert_int_equal(disk_usage(fx->mnt, &u), 0);
    assert_true(u.bytes_total >= 32 * MiB * 9 / 10);
    assert_true(u.bytes_total <= 32 * MiB);
    assert_true(u.inodes_total == 2048);
    struct statvfs sv;
    assert_int_equal(statvfs(fx->mnt, &sv), 0);
    /* -m 0: nothing reserved for root. ext4 itself holds back up to 2 % for
     * delayed allocation (s_resv_clusters), far below mke2fs's default 5 %. */
    assert_true(sv.f_bfree - sv.f_bavail <= sv.f_blocks / 40);

    /* Creating files past the inode count fails with ENOSPC. */
    char path[PATH_MAX + 32];
    uint64_t free_inodes = u.inodes_total - u.inodes_used, made = 0;
    snprintf(path, sizeof(path), "%s/many", fx->mnt);
    assert_int_equal(mkdir(path, 0755), 0);
    err = 0;
    for (uint64_t i = 0; i < u.inodes_total + 10; i++) {
        snprintf(path, sizeof(path), "%s/many/%llu", fx->mnt, (unsigned long long)i);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0) {
            err = errno;
            break;
        }
        close(fd);
        made++;
    }
    assert_int_equal(err, ENOSPC);
    assert_true(made == free_inodes - 1); /* the directory took one */
    for (uint64_t i = 0; i < made; i++) {
        snprintf(path, sizeof(path), "%s/many/%llu", fx->mnt, (unsigned long long)i);
        assert_int_equal(unlink(path), 0);
    }

    /* Writing past the size fails with ENOSPC. */
    snprintf(path, sizeof(path), "%s/big", fx->mnt);
    uint64_t wrote = fill(path, 64 * MiB, &err);
    assert_int_equal(err, ENOSPC);
    assert_true(wrote <= 32 * MiB);
    assert_true(wrote >= 32 * MiB * 8 / 10);

    /* Grow online: the filesystem grows, inodes with it, and writing works
     * again. ext4 needs CAP_SYS_RESOURCE for that; without it (a sandbox
     * whose bounding set drops it) disk_resize must refuse with -EPERM before
     * touching anything, and the disk is grown offline instead. */
    if (has_cap_sys_resource()) {
        assert_int_equal(disk_resize(fx->image, fx->mnt, 64 * MiB), 0);
        assert_int_equal(disk_resize(fx->image, fx->mnt, 64 * MiB), 0); /* idempotent */
    } else {
        fprintf(stderr, "disk_test: no CAP_SYS_RESOURCE: online grow NOT tested, growing "
                        "offline\n");
        assert_int_equal(disk_resize(fx->image, fx->mnt, 64 * MiB), -EPERM);
        assert_int_equal(stat(fx->image, &st), 0);
        assert_true((uint64_t)st.st_size == 32 * MiB);
        assert_int_equal(disk_umount(fx->mnt), 0);
        assert_int_equal(disk_resize(fx->image, NULL, 64 * MiB), 0);
        assert_int_equal(disk_resize(fx->image, NULL, 64 * MiB), 0); /* idempotent */
        assert_int_equal(disk_mount(fx->image, fx->mnt, loopdev, sizeof(loopdev)), 0);
    }
    struct disk_usage u2;
    assert_int_equal(disk_usage(fx->mnt, &u2), 0);
    assert_true(u2.bytes_total >= 64 * MiB * 9 / 10);
    assert_true(u2.bytes_total <= 64 * MiB);
    assert_true(u2.inodes_total == 4096); /* inodes per group are fixed: they scale */
    assert_int_equal(stat(fx->image, &st), 0);
    assert_true((uint64_t)st.st_size == 64 * MiB);
    snprintf(path, sizeof(path), "%s/more", fx->mnt);
    assert_true(fill(path, 8 * MiB, &err) == 8 * MiB);
    assert_int_equal(err, 0);

    /* Shrinking below use is refused and changes nothing; shrinking a mounted
     * disk above use is refused because ext4 can not shrink online. */
    assert_int_equal(disk_resize(fx->image, fx->mnt, 32 * MiB), -ENOSPC);
    assert_int_equal(disk_resize(fx->image, fx->mnt, 60 * MiB), -EBUSY);
    assert_int_equal(stat(fx->image, &st), 0);
    assert_true((uint64_t)st.st_size == 64 * MiB);
    assert_int_equal(disk_usage(fx->mnt, &u), 0);
    assert_true(u.bytes_total == u2.bytes_total);
    /* A mounted image can only be resized through its mount point. */
    assert_int_equal(disk_resize(fx->image, NULL, 80 * MiB), -EBUSY);

    /* Unmount: the loop device goes away with the mount (autoclear). */
    char sysloop[128];
    snprintf(sysloop, sizeof(sysloop), "/sys/block/%s/loop", loopdev + 5);
    assert_int_equal(access(sysloop, F_OK), 0);
    assert_int_equal(disk_umount(fx->mnt), 0);
    assert_int_equal(mountinfo_is_mountpoint(fx->mnt), 0);
    assert_int_equal(disk_find_loop(fx->image, NULL, 0), -ENOENT);
    if (access(sysloop, F_OK) == 0) {
        /* Another test may have taken the same loop device since; then it must
         * back something else. */
        char other[64];
        assert_int_not_equal(disk_find_loop(fx->image, other, sizeof(other)), 0);
    }
    assert_int_equal(disk_umount(fx->mnt), 0); /* idempotent */
    assert_int_equal(disk_usage(fx->mnt, &u), -ENOENT);

    /* Offline: shrinking below use is refused and changes nothing. */
    assert_int_equal(disk_resize(fx->image, NULL, 32 * MiB), -ENOSPC);
    assert_int_equal(stat(fx->image, &st), 0);
    assert_true((uint64_t)st.st_size == 64 * MiB);
    assert_int_equal(disk_info(fx->image, &info), 0);
    assert_true(info.blocks * info.block_size == 64 * MiB);

    /* With the big file gone it fits: the shrink works and keeps the data. */
    assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
    snprintf(path, sizeof(path), "%s/big", fx->mnt);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(disk_umount(fx->mnt), 0);
    assert_int_equal(disk_resize(fx->image, NULL, 40 * MiB), 0);
    assert_int_equal(stat(fx->image, &st), 0);
    assert_true((uint64_t)st.st_size == 40 * MiB);
    assert_int_equal(disk_info(fx->image, &info), 0);
    assert_true(info.blocks * info.block_size == 40 * MiB);
    assert_true(info.inodes == 2560); /* 5 groups of 512 */
    assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
    snprintf(path, sizeof(path), "%s/more", fx->mnt);
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_size == 8 * MiB);
    assert_int_equal(disk_usage(fx->mnt, &u), 0);
    assert_true(u.bytes_total >= 40 * MiB * 9 / 10);
    assert_int_equal(disk_umount(fx->mnt), 0);

    assert_int_equal(disk_destroy(fx->image), 0);
    assert_int_equal(access(fx->image, F_OK), -1);
    assert_int_equal(disk_destroy(fx->image), 0);
}

static void
test_mount_busy(void **state)
{
    struct fx *fx = *state;
    char other[PATH_MAX + 8];
    snprintf(other, sizeof(other), "%s/other", fx->dir);

    assert_int_equal(disk_create(fx->image, 16 * MiB, 0, NULL), 0);
    assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
    /* The same image at a second place would be two loop devices on one file. */
    assert_int_equal(disk_mount(fx->image, other, NULL, 0), -EBUSY);
    assert_int_equal(mountinfo_is_mountpoint(other), 0);

    /* A busy filesystem is detached lazily; its loop device stays until the
     * last user goes, and until then the image is not destroyed. */
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/held", fx->mnt);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(disk_umount(fx->mnt), -EBUSY);
    assert_int_equal(mountinfo_is_mountpoint(fx->mnt), 0);
    assert_int_equal(disk_destroy(fx->image), -EBUSY);
    close(fd);
    /* Autoclear detaches it at the last close; wait for that without a timed assert. */
    for (int i = 0; i < 500 && disk_find_loop(fx->image, NULL, 0) == 0; i++)
        usleep(10000);
    assert_int_equal(disk_destroy(fx->image), 0);
}

/* Writes s to the file at path; true when all of it was written. */
static bool
put(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
    close(fd);
    return ok;
}

/* The block requests this process issued on the device major:minor while
 * the tracefs instance at inst recorded them: the number of reads, and of
 * those the ones ext4 made itself, through its buffer heads, one 1 KiB
 * block each (disk_prefetch's read-ahead reads whole 4 KiB pages). */
static void
reads_issued(const char *inst, unsigned major, unsigned minor, int *reads, int *own)
{
    char path[PATH_MAX], line[1024], dev[32];
    snprintf(path, sizeof(path), "%s/trace", inst);
    snprintf(dev, sizeof(dev), " %u,%u ", major, minor);
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    *reads = *own = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "block_rq_issue:");
        if (!p || !(p = strstr(p, dev)))
            continue;
        p += strlen(dev); /* "RA 4096 () 0 + 8": rwbs (R read, A ahead), bytes, sectors */
        if (*p != 'R')
            continue;
        ++*reads;
        *own += strtoul(p + strcspn(p, " "), NULL, 10) % 4096 != 0;
    }
    fclose(f);
}

/* A 1 KiB-block image's mount finds its metadata read ahead (disk_mount
 * sets the loop device's block size to ext4's first and reads the
 * superblock, the group descriptors, the first inodes and the journal's
 * superblock ahead at once): from the attach to the mount's end ext4
 * issues no read of its own on the device (on main: the superblock, the
 * inodes and the journal's superblock, one after the other). A 4 KiB-block
 * image (whose mount changes the block size, dropping what was read) still
 * mounts and works, and the 1 KiB one mounts when attached by losetup, as
 * before: nothing on the image changes. */
static void
test_mount_reads_ahead(void **state)
{
    struct fx *fx = *state;
    char inst[128];
    snprintf(inst, sizeof(inst), "/sys/kernel/tracing/instances/vf-disk-test-%d", (int)getpid());
    if (mkdir(inst, 0700) < 0) {
        fprintf(stderr, "test_mount_reads_ahead: no tracefs instance (%s): skipped\n",
                strerror(errno));
        skip();
    }
    char ev[256], pid[32];
    snprintf(ev, sizeof(ev), "%s/events/block/block_rq_issue", inst);
    snprintf(pid, sizeof(pid), "common_pid == %d", (int)getpid());
    char filter[300], enable[300], on[160];
    snprintf(filter, sizeof(filter), "%s/filter", ev);
    snprintf(enable, sizeof(enable), "%s/enable", ev);
    snprintf(on, sizeof(on), "%s/tracing_on", inst);
    bool traced = put(filter, pid) && put(enable, "1");

    char big[PATH_MAX + 8], bigmnt[PATH_MAX + 8];
    snprintf(big, sizeof(big), "%s/big.img", fx->dir);
    snprintf(bigmnt, sizeof(bigmnt), "%s/other", fx->dir);
    /* 400 MiB: 50 groups, whose descriptors go past the first page. */
    assert_int_equal(disk_create(fx->image, 400 * MiB, 0, NULL), 0);
    assert_int_equal(disk_create(big, 512 * MiB, 0, NULL), 0);
    struct disk_info di;
    assert_int_equal(disk_info(fx->image, &di), 0);
    assert_int_equal(di.block_size, 1024);
    assert_int_equal(disk_info(big, &di), 0);
    assert_int_equal(di.block_size, 4096);

    assert_true(traced && put(on, "1"));
    int r = disk_mount(fx->image, fx->mnt, NULL, 0);
    (void)put(on, "0");
    assert_int_equal(r, 0);
    struct mountinfo_entry e = {0};
    assert_int_equal(mountinfo_find(fx->mnt, &e), 0);
    int reads, own;
    reads_issued(inst, e.major, e.minor, &reads, &own);
    mountinfo_entry_clear(&e);
    (void)put(enable, "0");
    (void)rmdir(inst);
    assert_true(reads > 0); /* the trace saw the device at all */
    assert_int_equal(own, 0);

    /* Both images hold files across a remount. */
    const char *mnts[] = {fx->mnt, bigmnt};
    const char *imgs[] = {fx->image, big};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX + 8];
        if (i == 1)
            assert_int_equal(disk_mount(imgs[i], mnts[i], NULL, 0), 0);
        snprintf(path, sizeof(path), "%s/kept", mnts[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "data", 4), 4);
        assert_int_equal(fsync(fd), 0);
        close(fd);
        assert_int_equal(disk_umount(mnts[i]), 0);
        assert_int_equal(disk_mount(imgs[i], mnts[i], NULL, 0), 0);
        assert_int_equal(access(path, F_OK), 0);
        assert_int_equal(disk_umount(mnts[i]), 0);
    }
    /* Attached as the old code did (no block size set before the mount). */
    char cmd[PATH_MAX * 5];
    snprintf(cmd, sizeof(cmd),
             "d=$(losetup --direct-io=on -f --show '%s') && mount \"$d\" '%s' && "
             "test -e '%s/kept' && umount '%s'; s=$?; losetup -d \"$d\"; exit $s",
             fx->image, fx->mnt, fx->mnt, fx->mnt);
    assert_int_equal(system(cmd), 0);
}

/* Reads the directory open as fd to its end (its blocks from the device). */
static void
read_dir(int fd)
{
    int d = dup(fd);
    assert_true(d >= 0);
    DIR *dir = fdopendir(d);
    assert_non_null(dir);
    while (readdir(dir))
        ;
    closedir(dir);
}

/* A cold start's overlay mount re-makes work/work (an rmdir and a mkdir) on
 * a disk just mounted. disk_prefetch_dirs reads ahead what that reads one
 * block after the other (the directory blocks of work and work/work, the
 * bitmaps of their groups), so that the rmdir and the mkdir issue no read of
 * ext4's own on the loop device; the same rmdir and mkdir after a mount
 * without it issue some (the bitmaps: the control that the trace sees
 * them). A 256 MiB image, as the benchmark's guest: Orlov puts the top
 * directories in the second flex group, whose bitmaps the mount does not
 * read. */
static void
test_prefetch_dirs(void **state)
{
    struct fx *fx = *state;
    char inst[128], ev[256], filter[300], enable[300], on[160], trace[160], pid[32];
    snprintf(inst, sizeof(inst), "/sys/kernel/tracing/instances/vf-disk-test-%d", (int)getpid());
    if (mkdir(inst, 0700) < 0) {
        fprintf(stderr, "test_prefetch_dirs: no tracefs instance (%s): skipped\n", strerror(errno));
        skip();
    }
    snprintf(ev, sizeof(ev), "%s/events/block/block_rq_issue", inst);
    snprintf(pid, sizeof(pid), "common_pid == %d", (int)getpid());
    snprintf(filter, sizeof(filter), "%s/filter", ev);
    snprintf(enable, sizeof(enable), "%s/enable", ev);
    snprintf(on, sizeof(on), "%s/tracing_on", inst);
    snprintf(trace, sizeof(trace), "%s/trace", inst);
    bool traced = put(filter, pid) && put(enable, "1") && put(on, "0");

    char work[PATH_MAX + 8], ww[PATH_MAX + 16], upper[PATH_MAX + 8], loopdev[64];
    snprintf(upper, sizeof(upper), "%s/upper", fx->mnt);
    snprintf(work, sizeof(work), "%s/work", fx->mnt);
    snprintf(ww, sizeof(ww), "%s/work/work", fx->mnt);
    assert_int_equal(disk_create(fx->image, 256 * MiB, 0, NULL), 0);
    assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
    assert_int_equal(mkdir(upper, 0755), 0);
    assert_int_equal(mkdir(work, 0755), 0);
    assert_int_equal(mkdir(ww, 0755), 0);
    assert_int_equal(disk_umount(fx->mnt), 0);

    int own[2] = {0, 0};
    for (int with = 0; with < 2; with++) {
        assert_int_equal(disk_mount(fx->image, fx->mnt, loopdev, sizeof(loopdev)), 0);
        struct mountinfo_entry e = {0};
        assert_int_equal(mountinfo_find(fx->mnt, &e), 0);
        int w = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(w >= 0);
        if (with)
            disk_prefetch_dirs(loopdev, &w, 1);
        read_dir(w);
        int x = openat(w, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(x >= 0);
        if (with)
            disk_prefetch_dirs(loopdev, &x, 1);
        read_dir(x);
        close(x);
        close(w);

        int t = open(trace, O_WRONLY | O_TRUNC | O_CLOEXEC); /* empties it */
        assert_true(t >= 0);
        close(t);
        assert_true(traced && put(on, "1"));
        int r = rmdir(ww) == 0 && mkdir(ww, 0755) == 0 ? 0 : -errno;
        (void)put(on, "0");
        assert_int_equal(r, 0);
        int reads;
        reads_issued(inst, e.major, e.minor, &reads, &own[with]);
        mountinfo_entry_clear(&e);
        assert_int_equal(disk_umount(fx->mnt), 0);
    }
    (void)put(enable, "0");
    (void)rmdir(inst);
    assert_true(own[0] > 0);
    assert_int_equal(own[1], 0);
}

/* A cold start's look-ups after the ext4 mount (upper, work, work/work) and
 * its overlay's re-making of work/work find what they read in the loop
 * device's page cache when disk_mount_ahead walked those directories beside
 * the mount: no read of ext4's own on the device from the look-ups to the
 * mkdir. After a plain disk_mount the same steps issue some (the root's
 * directory block, the inode table block of upper and work, their blocks:
 * the control that the trace sees them). The guest's changes are the
 * image's: the second round has upper grown into an index over several
 * blocks (a hundred entries; only its look-up is traced then, its other
 * blocks are not read ahead) and work/work made again at another place, so
 * the walk follows the image as it is, not as it was made, and the files
 * are all there. */
static void
test_mount_walks_ahead(void **state)
{
    struct fx *fx = *state;
    char inst[128], ev[256], filter[300], enable[300], on[160], trace[160], pid[32];
    snprintf(inst, sizeof(inst), "/sys/kernel/tracing/instances/vf-disk-test-%d", (int)getpid());
    if (mkdir(inst, 0700) < 0) {
        fprintf(stderr, "test_mount_walks_ahead: no tracefs instance (%s): skipped\n",
                strerror(errno));
        skip();
    }
    snprintf(ev, sizeof(ev), "%s/events/block/block_rq_issue", inst);
    snprintf(pid, sizeof(pid), "common_pid == %d", (int)getpid());
    snprintf(filter, sizeof(filter), "%s/filter", ev);
    snprintf(enable, sizeof(enable), "%s/enable", ev);
    snprintf(on, sizeof(on), "%s/tracing_on", inst);
    snprintf(trace, sizeof(trace), "%s/trace", inst);
    bool traced = put(filter, pid) && put(enable, "1") && put(on, "0");

    char work[PATH_MAX + 8], ww[PATH_MAX + 16], upper[PATH_MAX + 8], loopdev[64];
    snprintf(upper, sizeof(upper), "%s/upper", fx->mnt);
    snprintf(work, sizeof(work), "%s/work", fx->mnt);
    snprintf(ww, sizeof(ww), "%s/work/work", fx->mnt);
    assert_int_equal(disk_create(fx->image, 256 * MiB, 0, NULL), 0);
    assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
    assert_int_equal(mkdir(upper, 0755), 0);
    assert_int_equal(mkdir(work, 0755), 0);
    assert_int_equal(mkdir(ww, 0755), 0);
    assert_int_equal(disk_umount(fx->mnt), 0);

    static const char *const dirs[] = {"upper", "work", "work/work"};
    int own[2][2] = {{0, 0}, {0, 0}};
    for (int round = 0; round < 2; round++) {
        for (int with = 0; with < 2; with++) {
            int r = with ? disk_mount_ahead(fx->image, fx->mnt, loopdev, sizeof(loopdev), dirs, 3)
                         : disk_mount(fx->image, fx->mnt, loopdev, sizeof(loopdev));
            assert_int_equal(r, 0);
            struct mountinfo_entry e = {0};
            assert_int_equal(mountinfo_find(fx->mnt, &e), 0);
            int t = open(trace, O_WRONLY | O_TRUNC | O_CLOEXEC); /* empties it */
            assert_true(t >= 0);
            close(t);
            assert_true(traced && put(on, "1"));
            int u = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int w = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            int x = w >= 0 ? openat(w, "work", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
            if (u >= 0 && w >= 0 && x >= 0) {
                if (round == 0) /* one block; the grown upper's others are not read ahead */
                    read_dir(u);
                read_dir(w);
                read_dir(x);
            }
            r = x >= 0 && rmdir(ww) == 0 && mkdir(ww, 0755) == 0 ? 0 : -errno;
            (void)put(on, "0");
            assert_true(u >= 0 && w >= 0 && x >= 0);
            assert_int_equal(r, 0);
            close(x);
            close(w);
            if (round == 1) { /* the guest's files are all there */
                int d = dup(u), k = 0;
                DIR *dir = d >= 0 ? fdopendir(d) : NULL;
                assert_non_null(dir);
                for (struct dirent *de; (de = readdir(dir));)
                    k += strncmp(de->d_name, "file-with-a-long-name-", 22) == 0;
                closedir(dir);
                assert_int_equal(k, 100);
            }
            close(u);
            int reads;
            reads_issued(inst, e.major, e.minor, &reads, &own[round][with]);
            mountinfo_entry_clear(&e);
            if (round == 0 && with == 1)
                for (int i = 0; i < 100; i++) { /* the guest's files: upper grows */
                    char f[PATH_MAX + 64];
                    snprintf(f, sizeof(f), "%s/file-with-a-long-name-%03d", upper, i);
                    int fd = open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                    assert_true(fd >= 0);
                    close(fd);
                }
            assert_int_equal(disk_umount(fx->mnt), 0);
        }
    }
    (void)put(enable, "0");
    (void)rmdir(inst);
    assert_true(own[0][0] > 0 && own[1][0] > 0);
    assert_int_equal(own[0][1], 0);
    assert_int_equal(own[1][1], 0);
}

/* Whether the image's claim (disk.h) is held, as a new open file description
 * sees it. */
static bool
claimed(const char *image)
{
    int fd = open(image, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_OFD_GETLK, &fl), 0);
    close(fd);
    return fl.l_type != F_UNLCK;
}

/* Waits for a detached loop device to drop the image's claim (the kernel may
 * defer its last reference); bounded, never a timed assert. */
static void
wait_unclaimed(const char *image)
{
    for (int i = 0; i < 500 && claimed(image); i++)
        usleep(10000);
}

static void
test_claim(void **state)
{
    struct fx *fx = *state;
    char other[PATH_MAX + 8];
    snprintf(other, sizeof(other), "%s/other", fx->dir);

    assert_int_equal(disk_create(fx->image, 16 * MiB, 0, NULL), 0);
    assert_false(claimed(fx->image));
    /* The attachment holds the claim after disk_mount closed its own fd: the
     * loop device keeps the open file description the lock is on. */
    assert_int_equal(disk_mount(fx->image, fx->mnt, NULL, 0), 0);
    assert_true(claimed(fx->image));
    /* A second attach, a destroy and an offline resize are refused. */
    assert_int_equal(disk_mount(fx->image, other, NULL, 0), -EBUSY);
    assert_int_equal(mountinfo_is_mountpoint(other), 0);
    assert_int_equal(disk_mount_new(fx->image, other), -EBUSY);
    assert_int_equal(disk_destroy(fx->image), -EBUSY);
    assert_int_equal(access(fx->image, F_OK), 0);
    assert_int_equal(disk_resize(fx->image, NULL, 32 * MiB), -EBUSY);
    /* The detach releases it. */
    assert_int_equal(disk_umount(fx->mnt), 0);
    wait_unclaimed(fx->image);
    assert_false(claimed(fx->image));

    /* A claim held by something that is no loop device refuses as well (the
     * walk finds no attachment, the wait runs out): never two writers. */
    int fd = open(fx->image, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_OFD_SETLK, &fl), 0);
    assert_int_equal(disk_mount(fx->image, other, NULL, 0), -EBUSY);
    assert_int_equal(mountinfo_is_mountpoint(other), 0);
    assert_int_equal(disk_destroy(fx->image), -EBUSY);
    close(fd);

    /* Free again: it attaches elsewhere, and is destroyed once detached. */
    assert_int_equal(disk_mount(fx->image, other, NULL, 0), 0);
    assert_true(claimed(fx->image));
    assert_int_equal(disk_umount(other), 0);
    assert_int_equal(disk_destroy(fx->image), 0);
    assert_int_equal(access(fx->image, F_OK), -1);
}

/* size bytes of an image at off. */
static void
read_at(const char *path, off_t off, void *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, size, off), (ssize_t)size);
    close(fd);
}

/* e2fsck -fn's verdict: 0 = clean. */
static int
fsck_clean(const char *image)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "e2fsck -fn '%s' >/dev/null 2>&1", image);
    return system(cmd);
}

static void
test_create_from_pristine(void **state)
{
    struct fx *fx = *state;
    char pristine[PATH_MAX + 16], second[PATH_MAX + 16], made[PATH_MAX + 64], file[PATH_MAX + 8];
    snprintf(pristine, sizeof(pristine), "%s/pristine", fx->dir);
    snprintf(second, sizeof(second), "%s/second.img", fx->dir);
    snprintf(made, sizeof(made), "%s/ext4-%llu-%llu.img", pristine, 64 * MiB,
             64 * MiB / DISK_BYTES_PER_INODE);

    /* crc32c's check value ("123456789"), with the usual final inversion. */
    assert_int_equal(~disk_pristine_crc32c(~0u, "123456789", 9), 0xE3069283u);

    assert_int_equal(disk_create(fx->image, 64 * MiB, 0, pristine), 0);
    assert_int_equal(access(made, F_OK), 0);
    assert_int_equal(disk_create(second, 64 * MiB, 0, pristine), 0);
    /* Copies: the checksum seed (0x270) is the pristine one's, which mkfs
     * draws from each filesystem's first UUID; each has a UUID (0x68) of its own. */
    const char *img[3] = {made, fx->image, second};
    uint8_t uuid[3][16], seed[3][4];
    for (int i = 0; i < 3; i++) {
        read_at(img[i], 1024 + 0x68, uuid[i], 16);
        read_at(img[i], 1024 + 0x270, seed[i], 4);
        assert_int_equal(fsck_clean(img[i]), 0);
    }
    assert_memory_equal(seed[0], seed[1], 4);
    assert_memory_equal(seed[0], seed[2], 4);
    assert_memory_not_equal(uuid[0], uuid[1], 16);
    assert_memory_not_equal(uuid[0], uuid[2], 16);
    assert_memory_not_equal(uuid[1], uuid[2], 16);
    struct disk_info a, b;
    assert_int_equal(disk_info(fx->image, &a), 0);
    assert_int_equal(disk_info(made, &b), 0);
    assert_int_equal(a.inodes, b.inodes);
    assert_int_equal(a.blocks, b.blocks);
    struct stat st;
    assert_int_equal(stat(second, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 < 8 * MiB); /* still sparse */

    /* It mounts (as the backend mounts a disk it has just made), takes a
     * file, and is clean after. */
    assert_int_equal(disk_mount_new(second, fx->mnt), 0);
    assert_int_equal(disk_find_loop(second, NULL, 0), 0);
    assert_int_equal(disk_mount(second, fx->mnt, NULL, 0), 0); /* already there */
    snprintf(file, sizeof(file), "%s/hello", fx->mnt);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hi\n", 3), 3);
    close(fd);
    assert_int_equal(disk_umount(fx->mnt), 0);
    for (int i = 0; i < 500 && disk_find_loop(second, NULL, 0) == 0; i++)
        usleep(10000);
    assert_int_equal(fsck_clean(second), 0);

    /* A copy cut short before its superblock: no filesystem, made again. */
    static const uint8_t zero[1024];
    fd = open(fx->image, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, zero, sizeof(zero), 1024), (ssize_t)sizeof(zero));
    close(fd);
    assert_int_equal(disk_create(fx->image, 64 * MiB, 0, pristine), 0);
    assert_int_equal(fsck_clean(fx->image), 0);

    /* The copy itself leaves the superblock out: an agent killed after it
     * (its writes in the page cache) leaves no filesystem a create would
     * take as made. */
    char cut[PATH_MAX + 16];
    struct disk_info info;
    snprintf(cut, sizeof(cut), "%s/cut.img", fx->dir);
    int src = open(made, O_RDONLY | O_CLOEXEC);
    int dst = open(cut, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(src >= 0 && dst >= 0);
    assert_int_equal(ftruncate(dst, 64 * MiB), 0);
    assert_int_equal(disk_pristine_copy(src, dst), 0);
    close(src);
    close(dst);
    assert_true(disk_info(cut, &info) < 0);

    /* What an agent killed in mkfs left goes when the next image is made,
     * once it is an hour old (a younger one may be another create's). */
    char cmd[PATH_MAX * 2 + 128], old[PATH_MAX + 32], young[PATH_MAX + 32], third[PATH_MAX + 16];
    snprintf(old, sizeof(old), "%s/.ext4-old123", pristine);
    snprintf(young, sizeof(young), "%s/.ext4-new123", pristine);
    snprintf(cmd, sizeof(cmd), "touch -d '2 hours ago' '%s' && touch '%s'", old, young);
    assert_int_equal(system(cmd), 0);
    snprintf(third, sizeof(third), "%s/third.img", fx->dir);
    assert_int_equal(disk_create(third, 48 * MiB, 0, pristine), 0);
    assert_int_equal(access(old, F_OK), -1);
    assert_int_equal(access(young, F_OK), 0);
}

int
main(void)
{
    if (geteuid() != 0 || access("/dev/loop-control", F_OK) != 0) {
        fprintf(stderr, "disk_test: needs root and /dev/loop-control, skipping\n");
        return 77;
    }
    if (getenv("VFLEET_TEST_DEBUG"))
        log_setup("disk_test", LOG_SINK_STDERR, LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mount_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mount_reads_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefetch_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mount_walks_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_from_pristine, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
