/* Running a helper program (criu, tar) from the agent: posix_spawn, never
 * fork (the agent has threads), a clean environment, default signals, and
 * what the program says on stderr kept for the error message.
 *
 * Threads: no shared state; safe from any thread. */
#pragma once

#include <stddef.h>

/* The program's standard streams: an fd of the caller's (dup'd into the
 * child), or -1 for /dev/null (stdin, stdout) or the captured text (stderr). */
struct runprog_io {
    int in;  /* stdin */
    int out; /* stdout */
};

/* Runs argv[0] (looked up in /usr/sbin:/usr/bin:/sbin:/bin) with io and
 * waits. Returns its exit status (0..255; 128 + N when killed by signal N),
 * or -errno when it could not be run (-ENOENT: not installed). err (may be
 * NULL) gets what it wrote to stderr (the tail, when it said more), lines
 * kept, trailing newlines removed. */
int runprog(const char *const argv[], const struct runprog_io *io, char *err, size_t errlen);
