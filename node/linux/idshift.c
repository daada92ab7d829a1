#include "node/linux/idshift.h"

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

#include "common/le.h"
#include "node/linux/fdwalk.h"

#define ACL_EA_VERSION   2    /* the posix_acl_xattr header's version */
#define ACL_TAG_USER     0x02 /* ACL_USER: a named user's entry */
#define ACL_TAG_GROUP    0x08 /* ACL_GROUP: a named group's entry */
#define ACL_MAX_BYTES    4096 /* an ACL larger than this is left as it is */
#define XATTR_LIST_BYTES 1024 /* an entry's attribute names: more, and each is looked at */

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

    if (n < 4 || le32_at(buf, 0) != ACL_EA_VERSION || (n - 4) % 8)
        return;
    for (ssize_t off = 4; off + 8 <= n; off += 8) {
        uint16_t tag = le16_at(buf, (size_t)off);
        if (tag == ACL_TAG_USER || tag == ACL_TAG_GROUP)
            le32_put(buf, (size_t)off + 4, shifted(le32_at(buf, (size_t)off + 4)));
    }
    (void)lsetxattr(path, name, buf, (size_t)n, XATTR_REPLACE);
}

/* Whether attribute name is among names (n bytes from llistxattr; < 0 when
 * the list could not be read: then it may be). */
static bool
xattr_listed(const char *names, ssize_t n, const char *name)
{
    if (n < 0)
        return true;
    for (ssize_t off = 0; off < n; off += (ssize_t)strnlen(names + off, (size_t)(n - off)) + 1)
        if (strncmp(names + off, name, (size_t)(n - off)) == 0)
            return true;
    return false;
}

/* Shifts entry name of directory dirfd (st: its lstat): 0 or -errno. */
static int
shift_one(int dirfd, const char *name, const struct stat *st)
{
    uint32_t uid = shifted(st->st_uid), gid = shifted(st->st_gid);
    bool link = S_ISLNK(st->st_mode);
    char path[PATH_MAX], names[XATTR_LIST_BYTES];
    ssize_t listed = 0;

    if (uid == st->st_uid && gid == st->st_gid)
        return 0;
    entry_path(path, sizeof(path), dirfd, name);
    /* One look at which attributes it has (most files have none) rather
     * than one for each: every call resolves /proc/self/fd again. */
    if (!link && (listed = llistxattr(path, names, sizeof(names))) < 0 &&
        (errno == ENOTSUP || errno == EOPNOTSUPP))
        listed = 0;
    /* chown drops file capabilities: keep them to put them back. */
    struct vfs_ns_cap_data cap;
    ssize_t caplen = link || !xattr_listed(names, listed, "security.capability")
                         ? -1
                         : lgetxattr(path, "security.capability", &cap, sizeof(cap));
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
    if (!link && xattr_listed(names, listed, "system.posix_acl_access"))
        shift_acl(path, "system.posix_acl_access");
    if (!link && S_ISDIR(st->st_mode) && xattr_listed(names, listed, "system.posix_acl_default"))
        shift_acl(path, "system.posix_acl_default");
    return 0;
}

/* fdwalk's callback: shift_one. */
static int
shift_at(int dirfd, const char *name, const struct stat *st, void *userdata)
{
    (void)userdata;
    return shift_one(dirfd, name, st);
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
    /* By descriptor: a guest's tree may be deeper than PATH_MAX (fdwalk.h). */
    int r = fdwalk(fd, shift_at, NULL);
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
