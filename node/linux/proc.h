/* Facts about host processes read from /proc: a process's start time, which
 * together with its pid names it even after the pid is reused, and how many
 * threads the calling process has (a fork-safety check); and writing a pid
 * into a file such as a cgroup's cgroup.procs.
 *
 * Every function is thread-safe, allocates nothing and returns >= 0 or -errno. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Reads the start time of pid (field 22 of /proc/PID/stat: clock ticks since
 * boot) into *out. Returns 0, -ESRCH when there is no such process, -EBADMSG
 * when the stat line cannot be parsed. */
int proc_start_time(pid_t pid, uint64_t *out);

/* Whether pid still names the process that started at start_time and has not
 * exited: returns 1 when it does, 0 when the pid is gone, reused by another
 * process or a zombie, -errno when /proc cannot be read. */
int proc_is_same(pid_t pid, uint64_t start_time);

/* The number of threads of the calling process (Threads: in /proc/self/status),
 * or -errno. */
int proc_thread_count(void);

/* Writes pid in decimal into the existing file at path (a cgroup's
 * cgroup.procs moves the process there): 0 or -errno (-ESRCH when the
 * process is gone). */
int proc_write_pid(const char *path, pid_t pid);
