#include "node/linux/idshift.h"

#include <endian.h>
#include <errno.h>
#include <ftw.h>
#include <linux/capability.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/le.h"

#define ACL_EA_VERSION 2    /* the posix_acl_xattr header's version */
#define ACL_TAG_USER   0x02 /* ACL_USER: a named user's entry */
#define ACL_TAG_GROUP  0x08 /* ACL_GROUP: a named group's entry */
#define ACL_MAX_BYTES  4096 /* an ACL larger than this is left as it is */

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

static int
shift_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    uint32_t uid = shifted(st->st_uid), gid = shifted(st->st_gid);
    bool link = type == FTW_SL || S_ISLNK(st->st_mode);

    if (type == FTW_NS || type == FTW_DNR)
        return 0; /* unreadable: left as it is */
    if (uid == st->st_uid && gid == st->st_gid)
        return 0;
    /* chown drops file capabilities: keep them to put them back. */
    struct vfs_ns_cap_data cap;
    ssize_t caplen = link ? -1 : lgetxattr(path, "security.capability", &cap, sizeof(cap));
    if (lchown(path, uid, gid) < 0)
        return errno;
    if (!link && (st->st_mode & (S_ISUID | S_ISGID)) && chmod(path, st->st_mode & 07777) < 0)
        return errno;
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

int
idshift_tree(const char *dir, uint32_t to, uint32_t count)
{
    struct stat st;

    if (count == 0 || to % count || (uint64_t)to + count > UINT32_MAX)
        return -EINVAL;
    if (lstat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    shift_from = st.st_uid - st.st_uid % count;
    shift_to = to;
    shift_n = count;
    if (shift_from == to && st.st_gid - st.st_gid % count == to)
        return 0;
    /* shift_one stops the walk with a positive errno. */
    int r = nftw(dir, shift_one, 64, FTW_PHYS | FTW_MOUNT | FTW_DEPTH);
    if (r < 0)
        return -errno;
    return r > 0 ? -r : 1;
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
