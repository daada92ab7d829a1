#include "node/linux/idshift.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <ftw.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/mem.h"

#define ACL_EA_VERSION 2    /* the posix_acl_xattr header's version */
#define ACL_TAG_USER   0x02 /* ACL_USER: a named user's entry */
#define ACL_TAG_GROUP  0x08 /* ACL_GROUP: a named group's entry */
#define ACL_MAX_BYTES  4096 /* an ACL larger than this is left as it is */
#define WALK_OPEN      32   /* directory streams idshift_tree holds open at most */

/* The walk's state (nftw passes no user pointer). */
static _Thread_local uint32_t shift_from; /* the old block's first id */
static _Thread_local uint32_t shift_to;   /* the new block's first id */
static _Thread_local uint32_t shift_n;    /* ids in a block */
static _Thread_local uint32_t min_uid;    /* idshift_base_of: the lowest owner seen */
static _Thread_local bool min_seen;       /* idshift_base_of: an entry was seen */

static uint32_t
shifted(uint32_t id)
{
    return id >= shift_from && id - shift_from < shift_n ? id - shift_from + shift_to : id;
}

/* The name of entry name of directory dirfd for the path-only calls
 * (xattrs): through /proc/self/fd, so that no path the guest made is
 * walked again, whatever its length. */
static void
entry_path(char *buf, size_t n, int dirfd, const char *name)
{
    if (dirfd == AT_FDCWD)
        snprintf(buf, n, "%s", name);
    else
        snprintf(buf, n, "/proc/self/fd/%d/%s", dirfd, name);
}

/* The ids of one ACL xattr (struct posix_acl_xattr_header + entries,
 * little-endian), shifted in place. */
static void
shift_acl(const char *path, const char *name)
{
    uint8_t buf[ACL_MAX_BYTES];
    ssize_t n = lgetxattr(path, name, buf, sizeof(buf));

    if (n < 4 || le32toh(*(uint32_t *)buf) != ACL_EA_VERSION || (n - 4) % 8)
        return;
    for (ssize_t off = 4; off + 8 <= n; off += 8) {
        uint16_t tag = le16toh(*(uint16_t *)(buf + off));
        uint32_t *id = (uint32_t *)(buf + off + 4);
        if (tag == ACL_TAG_USER || tag == ACL_TAG_GROUP)
            *id = htole32(shifted(le32toh(*id)));
    }
    (void)lsetxattr(path, name, buf, (size_t)n, XATTR_REPLACE);
}

/* Shifts entry name of directory dirfd (st: its lstat): 0 or -errno. */
static int
shift_one(int dirfd, const char *name, const struct stat *st)
{
    uint32_t uid = shifted(st->st_uid), gid = shifted(st->st_gid);
    bool link = S_ISLNK(st->st_mode);
    char path[PATH_MAX];

    if (uid == st->st_uid && gid == st->st_gid)
        return 0;
    entry_path(path, sizeof(path), dirfd, name);
    /* chown drops file capabilities: keep them to put them back. */
    struct vfs_ns_cap_data cap;
    ssize_t caplen = link ? -1 : lgetxattr(path, "security.capability", &cap, sizeof(cap));
    if (fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!link && (st->st_mode & (S_ISUID | S_ISGID)) &&
        fchmodat(dirfd, name, st->st_mode & 07777, 0) < 0)
        return -errno;
    if (caplen == (ssize_t)sizeof(cap)) {
        cap.rootid = htole32(shifted(le32toh(cap.rootid)));
        (void)lsetxattr(path, "security.capability", &cap, sizeof(cap), 0);
    } else if (caplen > 0) {
        (void)lsetxattr(path, "security.capability", &cap, (size_t)caplen, 0);
    }
    if (!link) {
        shift_acl(path, "system.posix_acl_access");
        if (S_ISDIR(st->st_mode))
            shift_acl(path, "system.posix_acl_default");
    }
    return 0;
}

/* A directory of the walk below the root: its stream (NULL while closed
 * to bound the descriptors held, pos then says where it goes on) and its
 * name in its parent, for its own shift after its entries'. */
struct level {
    DIR *d;     /* its stream, or NULL */
    long pos;   /* telldir when it was closed */
    char *name; /* its name in the parent level */
};

/* Opens the closed level lv again from its child's descriptor, at the
 * entry after the one it was left at: 0 or -errno. */
static int
level_reopen(struct level *lv, int child)
{
    int fd = openat(child, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (!(lv->d = fdopendir(fd))) {
        int r = -errno;
        close(fd);
        return r;
    }
    seekdir(lv->d, lv->pos);
    return 0;
}

/* Shifts every entry under the directory open at root, depth first (a
 * directory after its entries), by descriptor: a guest's tree may be
 * deeper than PATH_MAX (nftw hands its callback the whole path, which
 * chown then refuses with ENAMETOOLONG and the shift stopped half-way), or
 * deeper than there are descriptors (at most WALK_OPEN streams are open,
 * an ancestor's closed and opened again through ".."). Entries on another
 * filesystem are left, and a directory that cannot be opened or an entry
 * that cannot be stat'ed is left as it is, as nftw's FTW_MOUNT, FTW_DNR and
 * FTW_NS. Takes root. 0 or -errno. */
static int
shift_walk(int root, dev_t dev)
{
    struct level *lv = xcalloc(1, sizeof(*lv));
    size_t depth = 0, cap = 1, lo = 0; /* levels lo..depth are open */
    int r = 0;

    if (!(lv[0].d = fdopendir(root))) {
        r = -errno;
        close(root);
        free(lv);
        return r;
    }
    for (;;) {
        DIR *d = lv[depth].d;
        struct dirent *e;
        struct stat st;

        errno = 0;
        if (!(e = readdir(d))) {
            if (errno) {
                r = -errno;
                break;
            }
            if (depth == 0)
                break;
            /* Its entries done: the directory itself, from its parent. */
            if (lo == depth && (r = level_reopen(&lv[--lo], dirfd(d))) < 0)
                break;
            closedir(d);
            lv[depth].d = NULL;
            depth--;
            if (fstatat(dirfd(lv[depth].d), lv[depth + 1].name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                (r = shift_one(dirfd(lv[depth].d), lv[depth + 1].name, &st)) < 0)
                break;
            free(lv[depth + 1].name);
            lv[depth + 1].name = NULL;
            continue;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            if ((r = shift_one(dirfd(d), e->d_name, &st)) < 0)
                break;
            continue;
        }
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *sub = fd < 0 ? NULL : fdopendir(fd);
        if (!sub) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        if (depth + 1 == cap) {
            cap *= 2;
            lv = xreallocarray(lv, cap, sizeof(*lv));
        }
        depth++;
        lv[depth] = (struct level){.d = sub, .name = xstrdup(e->d_name)};
        if (depth - lo >= WALK_OPEN) {
            lv[lo].pos = telldir(lv[lo].d);
            closedir(lv[lo].d);
            lv[lo++].d = NULL;
        }
    }
    for (size_t i = 0; i <= depth; i++) {
        if (lv[i].d)
            closedir(lv[i].d);
        free(lv[i].name);
    }
    free(lv);
    return r;
}

int
idshift_tree(const char *dir, uint32_t to, uint32_t count)
{
    struct stat st;

    if (count == 0 || to % count || (uint64_t)to + count > UINT32_MAX)
        return -EINVAL;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? -ENOTDIR : -errno;
    if (fstat(fd, &st) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    shift_from = st.st_uid - st.st_uid % count;
    shift_to = to;
    shift_n = count;
    if (shift_from == to && st.st_gid - st.st_gid % count == to) {
        close(fd);
        return 0;
    }
    int r = shift_walk(fd, st.st_dev);
    /* The root last: a shift cut short is finished by running it again. A
     * short path, the caller's. */
    if (r >= 0)
        r = shift_one(AT_FDCWD, dir, &st);
    return r < 0 ? r : 1;
}

static int
min_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path;
    /* Overlay whiteouts (0:0 character devices) are made by the kernel with
     * the mounter's ids, not the guest's: they say nothing of its block. */
    if (ftw->level == 0 || type == FTW_NS || (S_ISCHR(st->st_mode) && st->st_rdev == 0))
        return 0;
    if (!min_seen || st->st_uid < min_uid)
        min_uid = st->st_uid;
    min_seen = true;
    return 0;
}

int
idshift_base_of(const char *dir, uint32_t count, uint32_t *base)
{
    if (count == 0)
        return -EINVAL;
    min_seen = false;
    min_uid = 0;
    if (nftw(dir, min_one, 64, FTW_PHYS | FTW_MOUNT) < 0)
        return -errno;
    if (!min_seen)
        return -ENOENT;
    *base = min_uid - min_uid % count;
    return 0;
}
