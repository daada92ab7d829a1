/* A guest's directory on its node (<state>/data/<id>: disk.img, the disk,
 * lower and root mount points, the console ring and log, the provision and
 * rebuild stamps, a move's freeze mark) and its removal once the guest is destroyed.
 *
 * Threads: no shared state. */
#pragma once

/* Removes the guest directory at path: only the files and directories the
 * linux backend makes there, never a walk of what a guest may have put in
 * it (its mounts are gone by then; anything else makes the rmdir fail).
 * Idempotent. Returns 0 or -errno (-ENOTEMPTY: something unexpected is
 * left). */
int guest_dir_remove(const char *path);
