/* What the node agent keeps resident after a burst of work (a hundred
 * creates), given back: glibc's per-thread caches and the thread-pool
 * stacks the work deepened.
 *
 * The agent lives beside every guest of its host for as long as the host
 * runs; memory that a burst of creates left resident is memory its guests
 * do not get. Two kinds stayed after 100 creates (docs/performance.md,
 * "The agent under 10 MiB and 1 %"):
 *
 * - glibc's tcache: each thread keeps up to 7 freed chunks of each small
 *   size for itself, outside the arena, which neither malloc_trim nor the
 *   arena's free lists see. The libuv pool's 9 threads and the loop held
 *   ~650 KiB that way after the creates (the heap's chunks in use fell from
 *   1.35 to 0.69 MiB with the cache off). glibc has no call to turn it off:
 *   only GLIBC_TUNABLES, read when the program starts.
 * - the pool threads' stacks: a create touches 60-70 KiB of a pool
 *   thread's stack (specs unpacked on it, 8 KiB read buffers), which stays
 *   resident for the thread's life: 9 threads, ~0.6 MiB.
 *
 * Not thread-safe where said; the rest is for any thread. */
#pragma once

#include <stdbool.h>

/* The GLIBC_TUNABLES value that turns the tcache off, keeping what cur
 * (NULL = unset) says; NULL when cur already sets the tcache's count (the
 * administrator's choice is kept). malloc'd. */
char *memtidy_tunables(const char *cur);

/* Runs the program again (/proc/self/exe, argv) with glibc's tcache off,
 * unless it is off already; the second run finds its marker and puts
 * GLIBC_TUNABLES back as it was, so the agent's children (helpers, guests'
 * tools) start with the environment it was given. Returns when it did not
 * (or could not) run it again. Call first thing in main, before threads. */
void memtidy_tcache_off(char **argv);

/* Says the process is a host's agent (on) or not (off, the default: a
 * process of simulated agents runs thousands of jobs a second, which would
 * pay a system call each, on a heap of gigabytes that a trim would walk):
 * memtidy_stack_release works only then, and the agent trims its heap more
 * eagerly (memtidy_host). Call before the first job. */
void memtidy_set_host(bool on);
/* What memtidy_set_host said. */
bool memtidy_host(void);

/* Gives back to the kernel the pages of the calling thread's stack below
 * the caller's frame (they are zero-filled again if used). For the end of
 * a thread-pool job: nothing below is in use then. No-op on the main thread
 * (its stack's bounds are not known without reading /proc/self/maps) or
 * when memtidy_set_host is off. */
void memtidy_stack_release(void);
