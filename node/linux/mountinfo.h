/* Mount table look-ups for the linux backend: is a path a mount point, and
 * what is mounted there.
 *
 * A path is a mount point when statx() marks it STATX_ATTR_MOUNT_ROOT; the
 * entry itself is then found in /proc/self/mountinfo by the mount id statx
 * returns, so symlinks, bind mounts and octal-escaped names in the table do not
 * confuse the match. Everything here reads the caller's mount namespace.
 *
 * Threads: no shared state; safe from any thread. */
#pragma once

#include <stdbool.h>

/* One line of /proc/self/mountinfo, the fields vfleet uses. Strings are
 * malloc'd and unescaped; free them with mountinfo_entry_clear(). */
struct mountinfo_entry {
    int mnt_id;       /* the mount's unique id (field 1) */
    unsigned major;   /* st_dev major of the mounted filesystem */
    unsigned minor;   /* st_dev minor of the mounted filesystem */
    char *mountpoint; /* where it is mounted, relative to our root */
    char *fstype;     /* "ext4", "overlay", ... */
    char *source;     /* mount source: "/dev/loop3", "overlay", ... */
    char *super_opts; /* per-superblock options ("rw,lowerdir=...") */
};

/* Frees the strings of e and zeroes it; safe on a zeroed entry. */
void mountinfo_entry_clear(struct mountinfo_entry *e);

/* Returns 1 when path is the root of a mount (a mount point, or "/"), 0 when it
 * is not, -ENOENT when it does not exist, other -errno on failure. Does not
 * follow a final symlink and never triggers an automount. */
int mountinfo_is_mountpoint(const char *path);

/* Fills out with the topmost mount at path. Returns 0, -ENOENT when path is
 * not a mount point (or does not exist), other -errno on failure. On success
 * the caller owns out's strings. */
int mountinfo_find(const char *path, struct mountinfo_entry *out);
