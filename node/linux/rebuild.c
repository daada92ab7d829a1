#include "node/linux/rebuild.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errtext.h"
#include "node/linux/fdwalk.h"
#include "node/linux/rootfs.h"

/* fdwalk's callback: removes the entry (a directory after its own). */
static int
unlink_at(int dirfd, const char *name, const struct stat *st, void *userdata)
{
    (void)userdata;
    if (unlinkat(dirfd, name, S_ISDIR(st->st_mode) ? AT_REMOVEDIR : 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Removes dir and everything below it; 0 when it does not exist. By
 * descriptor: the guest made the tree, as deep as it liked (fdwalk.h).
 * Nothing mounted below is entered (none should be: the guest is
 * stopped), a symlink is removed, never followed. */
static int
remove_tree(const char *dir)
{
    struct stat st;

    if (lstat(dir, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return unlink(dir) < 0 && errno != ENOENT ? -errno : 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fdwalk(fd, unlink_at, NULL);
    if (r < 0)
        return r;
    return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

static uint32_t
stamp_read(const char *path)
{
    FILE *f = fopen(path, "re");
    unsigned long v = 0;

    if (f) {
        if (fscanf(f, "%lu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return (uint32_t)v;
}

static int
stamp_write(const char *path, uint32_t v)
{
    char tmp[620];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.new", path);
    f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "%u\n", v);
    if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
        int r = -errno;
        fclose(f);
        return r;
    }
    fclose(f);
    return rename(tmp, path) < 0 ? -errno : 0;
}

static void
stamp_path(const struct rebuild_paths *p, char *out, size_t n)
{
    snprintf(out, n, "%s/rebuild.stamp", p->dir);
}

bool
rebuild_needed(const struct rebuild_paths *p, uint32_t want)
{
    char stamp[600];

    stamp_path(p, stamp, sizeof(stamp));
    return stamp_read(stamp) != want;
}

int
rebuild_wipe(const struct rebuild_paths *p, bool running)
{
    char path[600];
    struct stat st;
    int r;

    if (running)
        return errtext_fail(-EBUSY, "a running guest cannot be rebuilt: stop it first");
    if (stat(p->tmpl, &st) < 0 || !S_ISDIR(st.st_mode))
        return errtext_fail(-ENOENT, "template \"%s\" is not on this node", p->tmpl);
    r = rootfs_umount(p->root);
    if (r < 0)
        return errtext_fail(r, "cannot unmount the guest's root to rebuild it");
    /* The guest's own files: its upper layer and overlayfs's work dir. */
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", p->disk, i ? "work" : "upper");
        r = remove_tree(path);
        if (r < 0)
            return errtext_fail(r, "cannot empty %s: %s", path, strerror(-r));
    }
    return 0;
}

int
rebuild_done(const struct rebuild_paths *p, uint32_t want)
{
    char stamp[600], path[600];
    int r;

    /* Provisioning goes into the fresh files again. */
    snprintf(path, sizeof(path), "%s/provision.stamp", p->dir);
    if (unlink(path) < 0 && errno != ENOENT)
        return errtext_fail(-errno, "cannot remove %s", path);
    stamp_path(p, stamp, sizeof(stamp));
    r = stamp_write(stamp, want);
    return r < 0 ? errtext_fail(r, "cannot write %s", stamp) : 0;
}
