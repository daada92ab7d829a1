/* Mount table look-ups; see mountinfo.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

int
mountinfo_find(const char *path, struct mountinfo_entry *out)
{
    struct statx stx;
    int r = mountinfo_statx(path, STATX_TYPE | STATX_MNT_ID, &stx);
    if (r < 0)
        return r;
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || !(stx.stx_mask & STATX_MNT_ID))
        return -EOPNOTSUPP; /* kernel older than 5.8 */
    if (!(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
        return -ENOENT;

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
