/* Helper programs (tar, mkfs.ext4, criu, ...) as children: posix_spawn,
 * never fork (the agent and the master have threads), a clean environment,
 * default signal dispositions and an empty signal mask, and the standard
 * streams the caller gives.
 *
 * Threads: no shared state; safe from any thread. */
#pragma once

#include <sys/types.h>

/* Starts path with argv in the environment PATH=/usr/sbin:/usr/bin:/sbin:/bin
 * and LC_ALL=C. A path without a "/" is looked up in the caller's PATH
 * (posix_spawnp). The child's stdin is in and its stdout out (-1: /dev/null
 * for either), its stderr err; the caller keeps its fds, and closes its end
 * of a pipe it gave after the call. Returns 0 with the child in *pid, to be
 * waited for, or -errno. */
int subproc_start(const char *path, const char *const argv[], int in, int out, int err, pid_t *pid);
