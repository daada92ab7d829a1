/* A guest's console: what its init and every process that inherited init's
 * stdout/stderr write, kept in a ring file of fixed size on the host, so a
 * guest can never grow a host file past the ring (a guest that writes
 * 200 MB to /proc/1/fd/1 leaves the last CONSOLE_RING_DEFAULT bytes).
 *
 * Init's stdout and stderr are the write end of a pipe. The read end belongs
 * to a small reader process per guest (console_reader_run), forked by the
 * spawner at start and placed in the guest's cgroups: it copies what arrives
 * into the ring, ends at end of file (the last guest process holding the pipe
 * is gone) and dies with the guest's cgroup. It outlives the agent, so an
 * agent restart never breaks a guest's stdout.
 *
 * The ring file (data/<id>/console.ring):
 *   bytes 0..63     header: magic "VFCONS01", capacity, written (both
 *                   little-endian u64 as the host stores them), reserved
 *   bytes 64..      capacity bytes of data; byte number i of the console
 *                   (counted from the ring's creation) lives at 64 + i % capacity
 * The writer holds an exclusive flock on the file while it appends and
 * updates `written`; readers take a shared one, so a read sees whole appends.
 * The ring survives guest restarts (the console continues); a ring of another
 * capacity (the node's setting changed) is started anew.
 *
 * Returns are >= 0 or -errno. Threads: no shared state. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/mem.h"
#include "node/backend.h"

#define CONSOLE_RING_DEFAULT (1u << 20)  /* bytes of console a guest keeps */
#define CONSOLE_RING_MIN     4096u       /* the smallest ring the node accepts */
#define CONSOLE_RING_MAX     (64u << 20) /* the largest */
#define CONSOLE_HEADER       64u         /* bytes before the data */

/* Opens the ring at path for appending, creating it (mode 0600) or starting
 * it anew when its capacity differs. Returns an O_CLOEXEC fd or -errno;
 * -EINVAL for a capacity outside CONSOLE_RING_MIN..CONSOLE_RING_MAX. */
int console_ring_open(const char *path, uint64_t capacity);

/* Appends len bytes to the ring open as fd (only the last capacity bytes of
 * a larger buffer are stored; all of them count in `written`). */
int console_ring_append(int fd, const void *buf, size_t len);

/* Reads the last max bytes (0 = all the ring holds) of the ring at path into
 * out (out->data malloc'd and NUL-terminated, the caller frees it). -ENOENT
 * when there is no ring, -EBADMSG when the file is not one. */
int console_ring_read(const char *path, size_t max, struct console_log *out);

/* The reader process: resets its signals, starts a session, names itself
 * "vfleet-console", closes every fd but pipe_fd and ring_fd, copies from
 * pipe_fd into the ring until end of file and _exits. */
_noreturn_ void console_reader_run(int pipe_fd, int ring_fd);
