/* Facts about host processes read from /proc: a process's start time, which
 * together with its pid names it even after the pid is reused, and how many
 * threads the calling process has (a fork-safety check); and writing a pid
 * into a file such as a cgroup's cgroup.procs, or the calling thread into a
 * cgroup v1 hierarchy's tasks file.
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

/* Opens the cgroup v1 `tasks` file beside procs_path (a cgroup's
 * cgroup.procs) for writing, for proc_join_self; on cgroup2, which has no
 * tasks file, procs_path itself. Returns the fd (O_CLOEXEC) or -errno;
 * -EINVAL when procs_path does not end in "/cgroup.procs". */
int proc_open_tasks(const char *procs_path);

/* Moves the calling thread into the cgroup whose `tasks` file is open at fd
 * by writing "0" (the writer itself); in a single-threaded process that is
 * the whole process. It is the one form of a v1 move for which the kernel
 * (cgroup_procs_write_start) takes neither the global
 * cgroup_threadgroup_rwsem nor the RCU grace period that taking it write
 * side waits for when it was idle: a thread that moves itself cannot exit or
 * exec meanwhile. Writing a pid, or anything into cgroup.procs, takes both
 * (a kernel without that shortcut takes them here too: no worse). The
 * permission check is the opener's (file->f_cred), so a file opened by host
 * root may be written by a child in its own user namespace. Returns 0 or
 * -errno. */
int proc_join_self(int tasks_fd);
