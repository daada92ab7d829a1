#include "node/linux/fdwalk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"

/* A directory of the walk: its stream (NULL while closed to bound the
 * descriptors held; pos then says where it goes on) and its name in its
 * parent, for its own turn after its entries'. */
struct level {
    DIR *d;     /* its stream, or NULL */
    long pos;   /* telldir when it was closed */
    char *name; /* its name in the parent level (NULL for the root) */
};

/* Whether err, from looking at or opening an entry a readdir returned,
 * says only that the entry went or changed since (not handed over); any
 * other error (out of descriptors or memory) ends the walk: a walk that
 * skipped what it could not open would say the whole tree was done. */
static bool
entry_gone(int err)
{
    return err == ENOENT || err == ENOTDIR || err == ELOOP;
}

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

static int
walk(int root, fdwalk_fn fn, void *userdata, bool dirs)
{
    struct level *lv = xcalloc(1, sizeof(*lv));
    size_t depth = 0, cap = 1, lo = 0; /* levels lo..depth are open */
    struct stat st;
    int r = 0;

    if (fstat(root, &st) < 0 || !(lv[0].d = fdopendir(root))) {
        r = -errno;
        close(root);
        free(lv);
        return r;
    }
    dev_t dev = st.st_dev;
    for (;;) {
        DIR *d = lv[depth].d;
        struct dirent *e;

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
            int at = dirfd(lv[depth].d);
            if (fstatat(at, lv[depth + 1].name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (!entry_gone(errno)) {
                    r = -errno;
                    break;
                }
            } else if ((r = fn(at, lv[depth + 1].name, &st, userdata)) != 0) {
                break;
            }
            free(lv[depth + 1].name);
            lv[depth + 1].name = NULL;
            continue;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        /* Directories only: what readdir's type says is none needs no stat. */
        if (dirs && e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (entry_gone(errno))
                continue;
            r = -errno;
            break;
        }
        if (st.st_dev != dev)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            if (!dirs && (r = fn(dirfd(d), e->d_name, &st, userdata)) != 0)
                break;
            continue;
        }
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *sub = fd < 0 ? NULL : fdopendir(fd);
        if (!sub) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            if (entry_gone(err))
                continue;
            r = -err;
            break;
        }
        if (depth + 1 == cap) {
            cap *= 2;
            lv = xreallocarray(lv, cap, sizeof(*lv));
        }
        depth++;
        lv[depth] = (struct level){.d = sub, .name = xstrdup(e->d_name)};
        if (depth - lo >= FDWALK_OPEN) {
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
fdwalk(int root, fdwalk_fn fn, void *userdata)
{
    return walk(root, fn, userdata, false);
}

int
fdwalk_dirs(int root, fdwalk_fn fn, void *userdata)
{
    return walk(root, fn, userdata, true);
}
