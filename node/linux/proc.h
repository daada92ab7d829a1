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

/* Whether the group-wide SIGKILL is pending for pid (bit 9 of ShdPnd: in
 * /proc/PID/status): 1 when it is, 0 when not, -errno. The kernel queues a
 * SIGKILL sent to a process in that shared set and takes it out only when
 * the process is reaped (a thread that acts on it clears only its own copy),
 * so from the moment the signal is sent until the parent reaps, the bit is
 * there, however far the process got with its exit. It tells the spawner
 * that a child it cloned into a cgroup (CLONE_INTO_CGROUP) was killed at
 * birth: kernels with the fix for the race between fork and cgroup.kill
 * (6.14, and the stable kernels that took it: Debian 12's 6.1.0-50 in the VM
 * test host, as this host's 6.18) compare the target cgroup's count of
 * cgroup.kill writes with the one of the *parent's* cgroup, read before the
 * target is known, and kill the child when they differ: every clone into a
 * cgroup that was ever killed (cgroup_css_set_fork, cgroup_post_fork). */
int proc_killed_at_birth(pid_t pid);

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
