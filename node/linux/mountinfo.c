/* Mount table look-ups; see mountinfo.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mem.h"
#include "node/linux/mountinfo.h"

void
mountinfo_entry_clear(struct mountinfo_entry *e)
{
    free(e->mountpoint);
    free(e->fstype);
    free(e->source);
    free(e->super_opts);
    *e = (struct mountinfo_entry){0};
}

/* Stats path without following a final symlink or triggering an automount. */
static int
mountinfo_statx(const char *path, unsigned mask, struct statx *stx)
{
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, mask, stx) < 0)
        return -errno;
    return 0;
}

int
mountinfo_is_mountpoint(const char *path)
{
    struct statx stx;
    int r = mountinfo_statx(path, STATX_TYPE, &stx);
    if (r < 0)
        return r;
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        return -EOPNOTSUPP; /* kernel older than 5.8 */
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

/* Undoes the kernel's octal escapes (\040 for a space, \011, \012, \134) in place. */
static void
mountinfo_unescape(char *s)
{
    char *w = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *w++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 3;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

/* Splits one mountinfo line into out. Returns 0 or -EBADMSG for a line that
 * does not have the documented shape (proc(5)). */
static int
mountinfo_parse_line(char *line, struct mountinfo_entry *out)
{
    char *save = NULL;
    char *f[6] = {0};
    /* id parent major:minor root mountpoint options [optional...] - fstype source superopts */
    for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
        f[i] = strtok_r(i == 0 ? line : NULL, " \n", &save);
        if (!f[i])
            return -EBADMSG;
    }
    char *t;
    while ((t = strtok_r(NULL, " \n", &save)) && strcmp(t, "-") != 0)
        ;
    if (!t)
        return -EBADMSG;
    char *fstype = strtok_r(NULL, " \n", &save);
    char *source = strtok_r(NULL, " \n", &save);
    char *opts = strtok_r(NULL, " \n", &save);
    if (!fstype || !source || !opts)
        return -EBADMSG;

    unsigned maj, min;
    char *end;
    long id = strtol(f[0], &end, 10);
    if (*end || id < 0 || id > INT_MAX || sscanf(f[2], "%u:%u", &maj, &min) != 2)
        return -EBADMSG;
    mountinfo_unescape(f[4]);
    mountinfo_unescape(source);
    mountinfo_unescape(opts);
    *out = (struct mountinfo_entry){
        .mnt_id = (int)id,
        .major = maj,
        .minor = min,
        .mountpoint = xstrdup(f[4]),
        .fstype = xstrdup(fstype),
        .source = xstrdup(source),
        .super_opts = xstrdup(opts),
    };
    return 0;
}

/* statmount(2), Linux 6.8 (options 6.11, source 6.14); Debian 12's headers
 * predate it, so the ABI is spelled out here (include/uapi/linux/mount.h). */
#define MI_NR_STATMOUNT      457
#define MI_STATX_MNT_ID_UNIQ 0x00004000U
#define MI_SM_SB_BASIC       0x001U
#define MI_SM_MNT_BASIC      0x002U
#define MI_SM_MNT_POINT      0x010U
#define MI_SM_FS_TYPE        0x020U
#define MI_SM_MNT_OPTS       0x080U
#define MI_SM_FS_SUBTYPE     0x100U
#define MI_SM_SB_SOURCE      0x200U
#define MI_SM_WANT                                                                                 \
    (MI_SM_SB_BASIC | MI_SM_MNT_BASIC | MI_SM_MNT_POINT | MI_SM_FS_TYPE | MI_SM_MNT_OPTS |         \
     MI_SM_SB_SOURCE)
#define MI_SB_RDONLY 1U

struct mi_mnt_id_req {
    uint32_t size;   /* sizeof this, version 0 */
    uint32_t spare;  /* zero */
    uint64_t mnt_id; /* the unique mount id (statx STATX_MNT_ID_UNIQUE) */
    uint64_t param;  /* what to return, MI_SM_* */
};

struct mi_statmount {
    uint32_t size;              /* bytes written, strings included */
    uint32_t mnt_opts;          /* offset in str: the superblock's options */
    uint64_t mask;              /* what was written */
    uint32_t sb_dev_major;      /* st_dev of the filesystem */
    uint32_t sb_dev_minor;      /* st_dev of the filesystem */
    uint64_t sb_magic;          /* unused here */
    uint32_t sb_flags;          /* MI_SB_RDONLY */
    uint32_t fs_type;           /* offset in str */
    uint64_t mnt_id;            /* unique id */
    uint64_t mnt_parent_id;     /* unused here */
    uint32_t mnt_id_old;        /* the id /proc/self/mountinfo shows */
    uint32_t mnt_parent_id_old; /* unused here */
    uint64_t mnt_attr;          /* unused here */
    uint64_t mnt_propagation;   /* unused here */
    uint64_t mnt_peer_group;    /* unused here */
    uint64_t mnt_master;        /* unused here */
    uint64_t propagate_from;    /* unused here */
    uint32_t mnt_root;          /* unused here */
    uint32_t mnt_point;         /* offset in str */
    uint64_t mnt_ns_id;         /* unused here */
    uint32_t fs_subtype;        /* offset in str ("lxcfs" of fuse.lxcfs) */
    uint32_t sb_source;         /* offset in str */
    uint32_t opt_num;           /* unused here */
    uint32_t opt_array;         /* unused here */
    uint32_t opt_sec_num;       /* unused here */
    uint32_t opt_sec_array;     /* unused here */
    uint64_t spare[46];         /* the rest of the fixed part */
    char str[];                 /* the strings */
};

/* The entry of the mount with unique id `id` from the kernel directly, in
 * time independent of the size of the mount table. 0, -ENOENT when it went
 * away, -ENOSYS (or another -errno) when the kernel cannot answer: the caller
 * then reads the table. */
static int
mountinfo_statmount(uint64_t id, struct mountinfo_entry *out)
{
    struct mi_mnt_id_req req = {.size = 24, .mnt_id = id, .param = MI_SM_WANT | MI_SM_FS_SUBTYPE};
    size_t cap = 4096;

    for (;;) {
        _cleanup_free_ struct mi_statmount *sm = xmalloc(cap);
        if (syscall(MI_NR_STATMOUNT, &req, sm, cap, 0) < 0) {
            if (errno == EOVERFLOW && cap < (1U << 20)) {
                cap *= 4;
                continue;
            }
            return -errno;
        }
        /* An empty string leaves its bit clear: no options is "". Without
         * the source (always set where supported, "none" at least), the
         * kernel predates it and maybe the options too: read the table. */
        uint64_t need = MI_SM_WANT & ~(uint64_t)MI_SM_MNT_OPTS;
        if ((sm->mask & need) != need)
            return -ENOSYS;
        if (!(sm->mask & MI_SM_MNT_OPTS))
            sm->mnt_opts = sm->mnt_point + (uint32_t)strlen(sm->str + sm->mnt_point);
        const char *sub = sm->mask & MI_SM_FS_SUBTYPE && sm->str[sm->fs_subtype]
                              ? sm->str + sm->fs_subtype
                              : NULL;
        *out = (struct mountinfo_entry){
            .mnt_id = (int)sm->mnt_id_old,
            .major = sm->sb_dev_major,
            .minor = sm->sb_dev_minor,
            .mountpoint = xstrdup(sm->str + sm->mnt_point),
            .fstype = sub ? xasprintf("%s.%s", sm->str + sm->fs_type, sub)
                          : xstrdup(sm->str + sm->fs_type),
            .source = xstrdup(sm->str + sm->sb_source),
            /* As mountinfo's super options: "rw" or "ro", then the rest. */
            .super_opts = xasprintf("%s%s%s", sm->sb_flags & MI_SB_RDONLY ? "ro" : "rw",
                                    sm->str[sm->mnt_opts] ? "," : "", sm->str + sm->mnt_opts),
        };
        mountinfo_unescape(out->super_opts);
        return 0;
    }
}

int
mountinfo_find(const char *path, struct mountinfo_entry *out)
{
    struct statx stx;
    int r = mountinfo_statx(path, STATX_TYPE | STATX_MNT_ID | MI_STATX_MNT_ID_UNIQ, &stx);
    if (r < 0)
        return r;
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
        !(stx.stx_mask & (STATX_MNT_ID | MI_STATX_MNT_ID_UNIQ)))
        return -EOPNOTSUPP; /* kernel older than 5.8 */
    if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return -ENOENT;
    if (stx.stx_mask & MI_STATX_MNT_ID_UNIQ) {
        r = mountinfo_statmount(stx.stx_mnt_id, out);
        if (r != -ENOSYS && r != -EINVAL && r != -EOPNOTSUPP)
            return r;
        /* The table has the old id only. */
        r = mountinfo_statx(path, STATX_TYPE | STATX_MNT_ID, &stx);
        if (r < 0)
            return r;
    }

    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -errno;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        struct mountinfo_entry e = {0};
        if (mountinfo_parse_line(line, &e) < 0)
            continue;
        if ((uint64_t)e.mnt_id == stx.stx_mnt_id) {
            *out = e;
            return 0;
        }
        mountinfo_entry_clear(&e);
    }
    /* The mount went away between statx and the read. */
    return -ENOENT;
}
