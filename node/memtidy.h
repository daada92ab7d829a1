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

/* The allocator's settings for the agent's process, before any thread
 * starts. The agent lives as long as the host and beside every guest on it:
 * what it keeps resident, the host gives up. glibc's defaults suit programs
 * that allocate hard from many threads: an arena per thread (the libuv pool,
 * libzmq's I/O thread), and a mmap threshold that grows to 32 MiB once a
 * large block is freed, after which the usage batch's arrays are carved from
 * the heap and its free space stays resident between batches. So: one arena
 * and a fixed threshold, 128 KiB, with the heap's top given back past
 * 256 KiB.
 *
 * A host's agent (host true) maps every block of MEMTIDY_HOST_MMAP and more
 * on its own: a lane's job (struct job, 17.7 KiB: it holds a whole struct
 * guest_spec, sized for the maxima) is made and freed per create, and from
 * the heap each left a hole that the small blocks the create keeps (the
 * guest's entry, its packed spec, its watches) were carved from, so the next
 * job did not fit in it. After 1,000 creates the arena was 16 MiB with 13
 * MiB of it free in holes of one to five jobs' size, 6.2 MiB resident for
 * 3 MiB in use (docs/performance.md). Mapped, a job goes back whole when it
 * is freed, for two system calls and a few page faults. glibc maps a block
 * only when neither the free chunks nor the heap's top can serve it, so the
 * heap grows by what is asked (no 128 KiB pad) and gives back a top of
 * MEMTIDY_HOST_MMAP and more. A process of simulated agents keeps the 128
 * KiB: it makes thousands of jobs a second. */
#define MEMTIDY_HOST_MMAP (16 * 1024)
void memtidy_malloc_setup(bool host);

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
