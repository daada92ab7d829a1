/* Guest disks: sparse ext4 images on loop devices; see disk.h. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/subproc.h"
#include "node/linux/disk.h"
#include "node/linux/disk_ext4.h"
#include "node/linux/disk_pristine.h"
#include "node/linux/mountinfo.h"

#define DISK_ALIGN         4096ULL
#define DISK_OUTPUT_MAX    4096              /* bytes of a helper program's output kept */
#define DISK_ATTACH_TRIES  32                /* LOOP_CTL_GET_FREE races lost before giving up */
#define DISK_PRISTINE_MAX  32                /* pristine images kept; past it, mkfs each */
#define DISK_PRISTINE_SIZE (64ULL << 30)     /* larger images are made by their own mkfs */
#define DISK_CLAIM_TRIES   200               /* claim looks while held by no loop device */
#define DISK_CLAIM_WAIT_NS (5 * 1000 * 1000) /* between them: 1 s in all */

/* Finds a helper program in the sbin/bin directories; returns its path in buf. */
static int
disk_which(const char *prog, char *buf, size_t n)
{
    static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        int len = snprintf(buf, n, "%s/%s", dirs[i], prog);
        if (len < 0 || (size_t)len >= n)
            return -ENAMETOOLONG;
        if (access(buf, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

static void
closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

/* Runs argv (argv[0] a program name) with stdin from /dev/null and stdout +
 * stderr captured, and waits for it. posix_spawn, never fork: the agent has
 * threads. The child gets default signal dispositions and an empty mask.
 * Writes the exit status to *status (-1 when killed by a signal) and up to
 * DISK_OUTPUT_MAX bytes of output to out (NUL-terminated) when out is not
 * NULL. Returns 0 when the program ran, -errno when it could not be run. */
static int
disk_spawn(const char *const argv[], int *status, char *out, size_t out_size)
{
    char path[PATH_MAX];
    int r = disk_which(argv[0], path, sizeof(path));
    if (r < 0)
        return r;

    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    _cleanup_close_ int rd = p[0];
    _cleanup_close_ int wr = p[1];

    pid_t pid;
    r = subproc_start(path, argv, -1, wr, wr, &pid);
    if (r < 0)
        return r;
    closep(&wr);
    wr = -EBADF;

    /* Drain the pipe to EOF so the child never blocks on a full pipe. */
    char tmp[512];
    size_t kept = 0;
    for (;;) {
        ssize_t k = read(rd, tmp, sizeof(tmp));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (out && out_size > 1 && kept < out_size - 1) {
            size_t c = (size_t)k < out_size - 1 - kept ? (size_t)k : out_size - 1 - kept;
            memcpy(out + kept, tmp, c);
            kept += c;
        }
    }
    if (out && out_size > 0)
        out[kept] = '\0';

    int ws;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return 0;
}

/* Runs argv and maps its result: 0 when it exits with a status in ok_mask
 * (bit n = exit status n is success), -EIO otherwise. */
static int
disk_run(const char *const argv[], unsigned ok_mask, char *out, size_t out_size)
{
    char buf[DISK_OUTPUT_MAX];
    if (!out) {
        out = buf;
        out_size = sizeof(buf);
    }
    int status = -1;
    int r = disk_spawn(argv, &status, out, out_size);
    if (r < 0) {
        log_debug("disk: cannot run %s: %s", argv[0], strerror(-r));
        return r;
    }
    if (status < 0 || status >= 32 || !(ok_mask & (1u << status))) {
        log_debug("disk: %s %s exited with %d: %s", argv[0], argv[1] ? argv[1] : "", status, out);
        return -EIO;
    }
    return 0;
}

static uint64_t
disk_align(uint64_t size)
{
    return size & ~(DISK_ALIGN - 1);
}

int
disk_info(const char *image, struct disk_info *out)
{
    /* O_NONBLOCK: a FIFO in its place would wait for a writer. */
    _cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    return disk_ext4_info(fd, out);
}

/* True when the loop device whose sysfs directory is sysdir (/sys/block/loopN
 * or /sys/dev/block/M:m) is attached to the file st describes. */
static bool
disk_loop_backs(const char *sysdir, const struct stat *st)
{
    _cleanup_free_ char *p = xasprintf("%s/loop/backing_file", sysdir);
    _cleanup_fclose_ FILE *f = fopen(p, "re");
    if (!f)
        return false;
    char path[PATH_MAX + 16];
    if (!fgets(path, sizeof(path), f))
        return false;
    path[strcspn(path, "\n")] = '\0';
    struct stat bst;
    /* A deleted backing file reads "path (deleted)" and fails to stat: no match. */
    return stat(path, &bst) == 0 && bst.st_dev == st->st_dev && bst.st_ino == st->st_ino;
}

/* Writes "/dev/<name>" for the block device major:minor to buf. */
static int
disk_devpath(unsigned major, unsigned minor, char *buf, size_t n)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major, minor);
    ssize_t k = readlink(link, target, sizeof(target) - 1);
    if (k < 0)
        return -errno;
    target[k] = '\0';
    const char *name = strrchr(target, '/');
    name = name ? name + 1 : target;
    int len = snprintf(buf, n, "/dev/%s", name);
    if (len < 0 || (size_t)len >= n)
        return -ENAMETOOLONG;
    return 0;
}

int
disk_find_loop(const char *image, char *loopdev, size_t n)
{
    struct stat st;
    if (stat(image, &st) < 0)
        return -errno;
    _cleanup_(closedirp) DIR *d = opendir("/sys/block");
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "loop", 4) != 0)
            continue;
        char sysdir[300];
        snprintf(sysdir, sizeof(sysdir), "/sys/block/%s", de->d_name);
        if (!disk_loop_backs(sysdir, &st))
            continue;
        if (loopdev) {
            int len = snprintf(loopdev, n, "/dev/%s", de->d_name);
            if (len < 0 || (size_t)len >= n)
                return -ENAMETOOLONG;
        }
        return 0;
    }
    return -ENOENT;
}

/* Takes the image's claim on fd (open for writing): an OFD write lock on the
 * whole file, on fd's own open file description. disk_attach configures the
 * loop device with that description and the loop device keeps it, so the
 * claim lasts exactly as long as the attachment, across an agent restart,
 * and goes with the last reference when the device is detached. A free claim
 * therefore proves that no disk_mount attachment exists, in O(1) and without
 * the walk over every loop device's backing file (O(loop devices), 1,003 of
 * them on a busy host); the walk runs once when the claim is held by
 * someone, to tell an attachment (-EBUSY at once) from the moment a detached
 * device drops its reference (the kernel may defer that fput), which is
 * waited out (up to a second; then -EBUSY). An image
 * attached by hand (losetup) holds no claim and goes unnoticed (disk.h). A
 * filesystem without OFD locks falls back to the walk alone. Returns 0 with
 * the claim held by fd, -EBUSY, -errno. */
static int
disk_claim(int fd, const char *image)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    for (int i = 0; i < DISK_CLAIM_TRIES; i++) {
        if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES) {
            log_debug("disk: no OFD lock on \"%s\" (%m), looking at every loop device", image);
            return disk_find_loop(image, NULL, 0) == 0 ? -EBUSY : 0;
        }
        /* One walk: the claim of a device that is detached already goes
         * within milliseconds, an attachment's stays. */
        if (i == 0 && disk_find_loop(image, NULL, 0) == 0)
            return -EBUSY;
        struct timespec ts = {0, DISK_CLAIM_WAIT_NS};
        nanosleep(&ts, NULL);
    }
    return -EBUSY; /* held all along by something that is no loop device */
}

/* Looks up the disk mounted at mountpoint: fills e, and st_dir with the sysfs
 * directory of its device. Returns 0, -ENOENT when nothing is mounted there,
 * -EINVAL when the mount is not ext4 on a loop device. */
static int
disk_mounted(const char *mountpoint, struct mountinfo_entry *e, char *sysdir, size_t n)
{
    int r = mountinfo_find(mountpoint, e);
    if (r < 0)
        return r;
    snprintf(sysdir, n, "/sys/dev/block/%u:%u", e->major, e->minor);
    _cleanup_free_ char *loopdir = xasprintf("%s/loop", sysdir);
    if (strcmp(e->fstype, "ext4") != 0 || access(loopdir, F_OK) < 0) {
        mountinfo_entry_clear(e);
        return -EINVAL;
    }
    return 0;
}

/* Whether image is the disk mounted at mountpoint: 1 yes (loop device path in
 * loopdev), 0 nothing mounted there, -EBUSY something else is. */
static int
disk_mounted_image(const char *image, const struct stat *st, const char *mountpoint, char *loopdev,
                   size_t n)
{
    _cleanup_(mountinfo_entry_clear) struct mountinfo_entry e = {0};
    char sysdir[64];
    int r = disk_mounted(mountpoint, &e, sysdir, sizeof(sysdir));
    if (r == -ENOENT)
        return 0;
    if (r == -EINVAL)
        return -EBUSY;
    if (r < 0)
        return r;
    if (!disk_loop_backs(sysdir, st))
        return -EBUSY;
    if (loopdev && (r = disk_devpath(e.major, e.minor, loopdev, n)) < 0)
        return r;
    return 1;
}

/* Runs mkfs.ext4 on image for a filesystem of size bytes with about
 * `inodes` inodes. */
static int
disk_mkfs(const char *image, uint64_t size, uint64_t inodes)
{
    uint32_t bs = size < DISK_SMALL_SIZE ? 1024 : 4096;
    char bs_s[16], inodes_s[24], journal_s[32];
    snprintf(bs_s, sizeof(bs_s), "%" PRIu32, bs);
    snprintf(inodes_s, sizeof(inodes_s), "%" PRIu64, inodes);
    uint64_t journal_mib = size >> 26; /* 1/64 of the image */
    snprintf(journal_s, sizeof(journal_s), "size=%" PRIu64, journal_mib ? journal_mib : 1);
    /* metadata_csum_seed: a pristine copy's UUID can change alone (disk_pristine.h). */
    const char *argv[24] = {"mkfs.ext4",
                            "-q",
                            "-F",
                            "-b",
                            bs_s,
                            "-m",
                            "0",
                            "-N",
                            inodes_s,
                            "-O",
                            "metadata_csum,metadata_csum_seed"};
    size_t i = 11;
    char ext[160] = "lazy_itable_init=1,lazy_journal_init=1,nodiscard,assume_storage_prezeroed=1";
    /* Images from DISK_SMALL_SIZE up keep mke2fs's default journal. */
    if (bs == 1024) {
        argv[i++] = "-J";
        argv[i++] = journal_s;
        /* Online growth reserves GDT blocks for 1024x the size (up to 256 of
         * them) and an online resize asks the journal for that many credits
         * plus a few; a 1 MiB journal grants 256, so Debian 12's kernel
         * refused every online grow ("resize2fs wants too many credits").
         * Reserving for growth up to DISK_SMALL_GROW_MAX keeps it near 130. */
        uint64_t grow = size * 1024 < DISK_SMALL_GROW_MAX ? size * 1024 : DISK_SMALL_GROW_MAX;
        size_t len = strlen(ext);
        snprintf(ext + len, sizeof(ext) - len, ",resize=%" PRIu64, grow / 1024);
    }
    argv[i++] = "-E";
    argv[i++] = ext;
    argv[i++] = image;
    argv[i] = NULL;
    return disk_run(argv, 1u << 0, NULL, 0);
}

/* mkfs on image (open as fd) for at least `inodes` inodes. */
static int
disk_format(const char *image, int fd, uint64_t size, uint64_t inodes)
{
    /* mke2fs rounds the inodes of a group down to fill whole inode-table
     * blocks, so -N can yield a few less than asked: ask again for the
     * shortfall until the filesystem holds at least the limit. */
    uint64_t ask = inodes;
    int r = -EIO;
    for (int attempt = 0; attempt < 4; attempt++) {
        struct disk_info info;
        r = disk_mkfs(image, size, ask);
        if (r < 0)
            break;
        r = disk_ext4_info(fd, &info);
        if (r < 0 || info.inodes >= inodes)
            break;
        uint64_t groups = (info.blocks + info.blocks_per_group - 1) / info.blocks_per_group;
        ask += (inodes - info.inodes + groups - 1) / groups * groups;
        r = -EIO;
    }
    return r;
}

/* The pristine image of this geometry in dir, made (by mkfs, atomically)
 * when missing and fewer than DISK_PRISTINE_MAX are kept. Returns an fd. */
static int
disk_pristine_open(const char *dir, uint64_t size, uint64_t inodes)
{
    _cleanup_free_ char *path = xasprintf("%s/ext4-%" PRIu64 "-%" PRIu64 ".img", dir, size, inodes);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 || errno != ENOENT)
        return fd >= 0 ? fd : -errno;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    _cleanup_(closedirp) DIR *d = opendir(dir);
    if (!d)
        return -errno;
    unsigned n = 0;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        n += e->d_name[0] != '.';
        /* What an agent killed in mkfs left: an hour old, no mkfs runs it. */
        struct stat st;
        if (!strncmp(e->d_name, ".ext4-", 6) &&
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            st.st_mtime + 3600 < now)
            (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    if (n >= DISK_PRISTINE_MAX)
        return -ENOSPC;
    _cleanup_free_ char *tmp = xasprintf("%s/.ext4-XXXXXX", dir);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = ftruncate(fd, (off_t)size) < 0 ? -errno : disk_format(tmp, fd, size, inodes);
    if (r == 0 && disk_pristine_renewable(fd) != 1)
        r = -EOPNOTSUPP; /* an mke2fs without metadata_csum_seed */
    if (r == 0 && (fsync(fd) < 0 || rename(tmp, path) < 0))
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        close(fd);
        return r;
    }
    return fd;
}

/* The image (open as fd, sparse, of its size) as a copy of the pristine one
 * with its own UUID. Returns 0 or -errno (fd then holds anything). */
static int
disk_from_pristine(const char *dir, int fd, uint64_t size, uint64_t inodes)
{
    struct disk_info info;
    if (size > DISK_PRISTINE_SIZE)
        return -EFBIG;
    _cleanup_close_ int src = disk_pristine_open(dir, size, inodes);
    if (src < 0)
        return src;
    /* The superblock last, once the rest is on disk, as mke2fs writes it
     * (the copy leaves it out, renew(false) zeroes it in a reused image): a
     * create cut short leaves no filesystem, which the next one redoes. */
    int r = disk_pristine_copy(src, fd);
    if (r == 0)
        r = disk_pristine_renew(src, fd, false);
    if (r == 0 && fdatasync(fd) < 0)
        r = -errno;
    if (r == 0)
        r = disk_pristine_renew(src, fd, true);
    if (r == 0)
        r = disk_ext4_info(fd, &info);
    if (r == 0 && info.inodes < inodes)
        r = -EIO;
    /* The superblock is not synced here: the ext4 mount that follows
     * writes it with FUA, which the loop device (a write cache without
     * FUA) turns into a flush that syncs this file, and every later
     * journal commit flushes too; nothing of the guest's is durable before
     * that. A crash in between leaves an image with no filesystem, which
     * the next create or start remakes (disk_create, linux_backend's
     * create). The sync above stays: it puts the metadata on disk before a
     * superblock can point at it. */
    return r;
}

int
disk_create(const char *image, uint64_t size, uint64_t inodes, const char *pristine_dir)
{
    size = disk_align(size);
    /* The path goes to mkfs as an argument: never let it read as an option. */
    if (image[0] != '/' || size < DISK_MIN_SIZE || size > DISK_MAX_SIZE)
        return -EINVAL;
    if (inodes == 0)
        inodes = size / DISK_BYTES_PER_INODE;
    if (inodes < DISK_MIN_INODES || inodes > size / DISK_MIN_BYTES_PER_INODE || inodes > UINT32_MAX)
        return -EINVAL;

    bool created = true;
    _cleanup_close_ int fd = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        created = false;
        fd = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return -errno;

    if (!created) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            return -errno;
        /* An empty file is an image never made: a create killed between
         * the open that made it (or a remake's truncation to 0) and its
         * ftruncate to the size left it, with no byte of a guest's in it. */
        if (!S_ISREG(st.st_mode) || (st.st_size != 0 && (uint64_t)st.st_size != size))
            return -EEXIST;
        struct disk_info info;
        if (disk_ext4_info(fd, &info) == 0)
            return info.inodes >= inodes ? 0 : -EEXIST;
        /* Same size or empty, no filesystem: a create that died before mkfs
         * finished. Make it sparse and zero again, unless something uses it;
         * the claim is held until fd closes, so nothing attaches it meanwhile. */
        int r = disk_claim(fd, image);
        if (r < 0)
            return r;
        if (ftruncate(fd, 0) < 0)
            return -errno;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        int r = -errno;
        if (created)
            unlink(image);
        return r;
    }

    int r = pristine_dir ? disk_from_pristine(pristine_dir, fd, size, inodes) : -ENOENT;
    if (r < 0 && pristine_dir) {
        log_debug("disk: no pristine image for \"%s\" (%s), running mkfs", image, strerror(-r));
        /* Sparse and zero again for mkfs. */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0)
            r = -errno;
        else
            r = -ENOENT;
    }
    if (r == -ENOENT)
        r = disk_format(image, fd, size, inodes);
    if (r < 0 && created)
        unlink(image);
    return r;
}

/* Attaches the open image imgfd to a free loop device with autoclear. Returns
 * the loop device's open fd (the caller's reference keeps it attached until
 * the mount takes its own) and its path in loopdev. */
static int
disk_attach(int imgfd, const char *image, char *loopdev, size_t n)
{
    _cleanup_close_ int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return -errno;

    struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};
    /* lo_file_name is informational (losetup shows it); the kernel keeps the
     * real path in sysfs, so a long name is simply cut. */
    snprintf((char *)info.lo_file_name, sizeof(info.lo_file_name), "%s", image);

    for (int attempt = 0; attempt < DISK_ATTACH_TRIES; attempt++) {
        int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (nr < 0)
            return -errno;
        int len = snprintf(loopdev, n, "/dev/loop%d", nr);
        if (len < 0 || (size_t)len >= n)
            return -ENAMETOOLONG;
        _cleanup_close_ int lfd = open(loopdev, O_RDWR | O_CLOEXEC);
        if (lfd < 0) {
            /* The node can lag behind the device on a slow devtmpfs; try another. */
            if (errno == ENOENT || errno == ENXIO)
                continue;
            return -errno;
        }

        /* Direct I/O keeps the image's blocks out of the host page cache, so
         * guest data is cached once (in the guest's filesystem), not twice.
         * Asking for it inside LOOP_CONFIGURE costs nothing; a separate
         * LOOP_SET_DIRECT_IO afterwards takes 10-20 ms (it drains the queue).
         * A backing filesystem that cannot do it refuses the flag: then
         * configure again without it, buffered I/O is correct, only costlier. */
        struct loop_config cfg = {.fd = (uint32_t)imgfd, .info = info};
        cfg.info.lo_flags |= LO_FLAGS_DIRECT_IO;
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
            return move_fd(lfd);
        if (errno == EINVAL) {
            cfg.info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
            if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
                log_debug("disk: direct I/O refused on %s for \"%s\", using buffered I/O", loopdev,
                          image);
                return move_fd(lfd);
            }
        }
        if (errno == EBUSY)
            continue; /* someone took it between GET_FREE and CONFIGURE */
        if (errno != EINVAL && errno != ENOTTY)
            return -errno;

        /* Kernel before 5.8: attach, then set the flags. An agent dying
         * between the two leaks this loop device, which LOOP_CONFIGURE avoids. */
        if (ioctl(lfd, LOOP_SET_FD, imgfd) < 0) {
            if (errno == EBUSY)
                continue;
            return -errno;
        }
        if (ioctl(lfd, LOOP_SET_STATUS64, &info) < 0) {
            int r = -errno;
            (void)ioctl(lfd, LOOP_CLR_FD, 0);
            return r;
        }
        /* The old path sets direct I/O on its own; see above for why. */
        if (ioctl(lfd, LOOP_SET_DIRECT_IO, 1UL) < 0)
            log_debug("disk: direct I/O refused on %s for \"%s\": %m, ignoring", loopdev, image);
        return move_fd(lfd);
    }
    return -EBUSY;
}

/* The walk beside a mount (disk_mount_ahead). */
struct disk_walk {
    int lfd;                 /* the loop device */
    const char *const *dirs; /* the directories */
    size_t n;                /* how many */
};

static void *
disk_walk_run(void *arg)
{
    const struct disk_walk *w = arg;
    disk_ext4_walk(w->lfd, w->dirs, w->n);
    return NULL;
}

int
disk_mount(const char *image, const char *mountpoint, char *loopdev, size_t n)
{
    return disk_mount_ahead(image, mountpoint, loopdev, n, NULL, 0);
}

int
disk_mount_ahead(const char *image, const char *mountpoint, char *loopdev, size_t n,
                 const char *const *dirs, size_t ndirs)
{
    char dev[64];
    struct stat st;
    _cleanup_close_ int imgfd = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (imgfd < 0)
        return -errno;
    if (fstat(imgfd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;

    if (mkdir(mountpoint, 0700) < 0 && errno != EEXIST)
        return -errno;
    int r = disk_mounted_image(image, &st, mountpoint, dev, sizeof(dev));
    if (r < 0)
        return r;
    if (r == 0) {
        /* Attached but not mounted here: mounted elsewhere. Two loop devices
         * on one image would corrupt it. The claim goes with imgfd into the
         * loop device; a failure below closes imgfd and drops it. */
        if ((r = disk_claim(imgfd, image)) < 0)
            return r;
        _cleanup_close_ int lfd = disk_attach(imgfd, image, dev, sizeof(dev));
        if (lfd < 0)
            return lfd;
        disk_ext4_prefetch(lfd);
        struct disk_walk w = {.lfd = lfd, .dirs = dirs, .n = ndirs};
        pthread_t walk;
        bool walking = ndirs > 0 && pthread_create(&walk, NULL, disk_walk_run, &w) == 0;
        r = mount(dev, mountpoint, "ext4", MS_NOSUID | MS_NODEV, "errors=remount-ro") < 0 ? -errno
                                                                                          : 0;
        if (walking)
            pthread_join(walk, NULL); /* it reads through lfd */
        if (r < 0)
            return r; /* closing lfd detaches the device (autoclear) */
    }
    if (loopdev && (r = strscpy(loopdev, dev, n)) < 0)
        return r;
    return 0;
}

void
disk_prefetch_dirs(const char *loopdev, const int *dirfds, size_t n)
{
    _cleanup_close_ int lfd = open(loopdev, O_RDONLY | O_CLOEXEC);
    if (lfd < 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (dirfds[i] >= 0)
            disk_ext4_prefetch_dir(lfd, dirfds[i]);
}

int
disk_mount_new(const char *image, const char *mountpoint)
{
    return disk_mount(image, mountpoint, NULL, 0);
}

/* Waits up to ten seconds for the loop device at sysdir to stop backing the
 * file whose backing_file text was `was`: udev, blkid or any other scanner of
 * block devices may hold it open for a moment after the unmount (longer on a
 * loaded host), and autoclear detaches it at the last close. */
static bool
disk_wait_detached(const char *sysdir, const char *was)
{
    _cleanup_free_ char *p = xasprintf("%s/loop/backing_file", sysdir);
    for (int i = 0; i < 1000; i++) {
        char now[PATH_MAX + 16] = "";
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f || !fgets(now, sizeof(now), f) || strcmp(now, was) != 0)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

int
disk_umount(const char *mountpoint)
{
    _cleanup_(mountinfo_entry_clear) struct mountinfo_entry e = {0};
    char sysdir[64];
    int r = disk_mounted(mountpoint, &e, sysdir, sizeof(sysdir));
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;

    char was[PATH_MAX + 16] = "";
    {
        _cleanup_free_ char *p = xasprintf("%s/loop/backing_file", sysdir);
        _cleanup_fclose_ FILE *f = fopen(p, "re");
        if (!f || !fgets(was, sizeof(was), f))
            return -EINVAL;
    }

    bool lazy = false;
    if (umount2(mountpoint, UMOUNT_NOFOLLOW) < 0) {
        if (errno != EBUSY)
            return -errno;
        log_debug("disk: \"%s\" busy, detaching lazily", mountpoint);
        if (umount2(mountpoint, UMOUNT_NOFOLLOW | MNT_DETACH) < 0)
            return -errno;
        lazy = true;
    }
    if (disk_wait_detached(sysdir, was))
        return 0;
    /* Who holds it is not looked up: that reads every process's mount table,
     * 7.9 million lines (3 minutes) on a host whose other namespaces hold
     * thousands of mounts, and a destroy waited for it. */
    log_debug("disk: loop device %s still attached after unmounting \"%s\"%s", sysdir, mountpoint,
              lazy ? " (busy, detached lazily)" : "");
    return -EBUSY;
}

int
disk_usage(const char *mountpoint, struct disk_usage *out)
{
    int r = mountinfo_is_mountpoint(mountpoint);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    struct statvfs sv;
    if (statvfs(mountpoint, &sv) < 0)
        return -errno;
    *out = (struct disk_usage){
        .bytes_total = (uint64_t)sv.f_blocks * sv.f_frsize,
        .bytes_used = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize,
        .inodes_total = sv.f_files,
        .inodes_used = sv.f_files - sv.f_ffree,
        .full = sv.f_bavail == 0 || sv.f_favail == 0,
    };
    return 0;
}

/* Inodes a filesystem of the given geometry has at new_blocks blocks. */
static uint64_t
disk_inodes_at(const struct disk_info *info, uint64_t new_blocks)
{
    uint64_t groups = (new_blocks + info->blocks_per_group - 1) / info->blocks_per_group;
    return groups * info->inodes_per_group;
}

/* ext4 online resize (EXT4_IOC_RESIZE_FS) needs CAP_SYS_RESOURCE in the
 * initial user namespace; root without it (some sandboxes) can only grow
 * offline. */
static bool
disk_can_resize_online(void)
{
    cap_t caps = cap_get_proc();
    if (!caps)
        return false;
    cap_flag_value_t v = CAP_CLEAR;
    int r = cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &v);
    cap_free(caps);
    return r == 0 && v == CAP_SET;
}

/* Grows the mounted disk: file, loop capacity, then ext4 online resize. */
static int
disk_grow_online(int imgfd, const char *loopdev, uint64_t new_size)
{
    if (!disk_can_resize_online())
        return -EPERM;
    struct stat st;
    if (fstat(imgfd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size < new_size && ftruncate(imgfd, (off_t)new_size) < 0)
        return -errno;
    _cleanup_close_ int lfd = open(loopdev, O_RDWR | O_CLOEXEC);
    if (lfd < 0)
        return -errno;
    if (ioctl(lfd, LOOP_SET_CAPACITY, 0) < 0)
        return -errno;
    const char *argv[] = {"resize2fs", loopdev, NULL};
    return disk_run(argv, 1u << 0, NULL, 0);
}

/* Checks an unmounted image; e2fsck -p exits 1 when it fixed something. */
static int
disk_fsck(const char *image)
{
    const char *argv[] = {"e2fsck", "-f", "-p", image, NULL};
    return disk_run(argv, (1u << 0) | (1u << 1), NULL, 0);
}

/* Resizes an unmounted image. */
static int
disk_resize_offline(int imgfd, const char *image, uint64_t new_size)
{
    struct stat st;
    if (fstat(imgfd, &st) < 0)
        return -errno;
    /* resize2fs wants a freshly checked filesystem, and the check leaves the
     * superblock's free counts exact for the use test below. */
    int r = disk_fsck(image);
    if (r < 0)
        return r;
    struct disk_info info;
    if ((r = disk_ext4_info(imgfd, &info)) < 0)
        return r;
    uint64_t new_blocks = new_size / info.block_size;
    if (new_blocks == info.blocks)
        return 0;

    if (new_blocks < info.blocks) {
        if (new_blocks < info.blocks - info.free_blocks ||
            disk_inodes_at(&info, new_blocks) < info.inodes - info.free_inodes)
            return -ENOSPC;
    } else if ((uint64_t)st.st_size < new_size && ftruncate(imgfd, (off_t)new_size) < 0) {
        return -errno;
    }

    char size_s[32], out[DISK_OUTPUT_MAX];
    snprintf(size_s, sizeof(size_s), "%" PRIu64 "K", new_size / 1024);
    const char *argv[] = {"resize2fs", image, size_s, NULL};
    if ((r = disk_run(argv, 1u << 0, out, sizeof(out))) < 0)
        return r == -EIO && strstr(out, "smaller than minimum") ? -ENOSPC : r;
    if ((uint64_t)st.st_size > new_size && ftruncate(imgfd, (off_t)new_size) < 0)
        return -errno;
    return 0;
}

int
disk_resize(const char *image, const char *mountpoint, uint64_t new_size)
{
    new_size = disk_align(new_size);
    if (image[0] != '/' || new_size < DISK_MIN_SIZE || new_size > DISK_MAX_SIZE)
        return -EINVAL;

    _cleanup_close_ int imgfd = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (imgfd < 0)
        return -errno;
    struct stat st;
    if (fstat(imgfd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;

    char loopdev[64];
    int r, mounted = 0;
    if (mountpoint) {
        mounted = disk_mounted_image(image, &st, mountpoint, loopdev, sizeof(loopdev));
        if (mounted == -EBUSY)
            return -EINVAL; /* something else is mounted there */
        if (mounted < 0)
            return mounted;
    }
    /* Offline: the claim, held until imgfd closes, also keeps anyone from
     * attaching the image while e2fsck and resize2fs work on it. */
    if (!mounted && (r = disk_claim(imgfd, image)) < 0)
        return r;

    if (mounted) {
        /* The superblock in the file is as of the last write-back; flush so
         * the size read below is the kernel's current one. */
        _cleanup_close_ int mfd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mfd < 0)
            return -errno;
        if (syncfs(mfd) < 0)
            return -errno;
    }
    struct disk_info info;
    r = disk_ext4_info(imgfd, &info);
    if (r < 0)
        return r;
    uint64_t new_blocks = new_size / info.block_size;
    if (new_blocks == info.blocks)
        return 0;

    if (mounted) {
        struct disk_usage u;
        struct statvfs sv;
        if ((r = disk_usage(mountpoint, &u)) < 0)
            return r;
        if (statvfs(mountpoint, &sv) < 0)
            return -errno;
        /* What the filesystem holds: everything but its free blocks, so the
         * journal, inode tables and bitmaps count as use. info.blocks may lag
         * behind an online grow not yet written back; that only makes a
         * refused mounted shrink say -EBUSY instead of -ENOSPC. */
        uint64_t used = (info.blocks - sv.f_bfree) * (uint64_t)info.block_size;
        if (new_size < used || disk_inodes_at(&info, new_blocks) < u.inodes_used)
            return -ENOSPC;
        if (new_blocks < info.blocks)
            return -EBUSY; /* ext4 can not shrink online */
        return disk_grow_online(imgfd, loopdev, new_size);
    }
    return disk_resize_offline(imgfd, image, new_size);
}

int
disk_unlink(const char *image)
{
    return unlink(image) < 0 && errno != ENOENT ? -errno : 0;
}

int
disk_destroy(const char *image)
{
    _cleanup_close_ int fd = open(image, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = disk_claim(fd, image);
    if (r < 0)
        return r;
    if (unlink(image) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}
