/* Parsing /proc/PID/stat is the one subtle part: the second field is the
 * command name in parentheses and may itself contain spaces and ')', so the
 * fields are counted from the *last* ')' on the line. */
#include "node/linux/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "common/mem.h"

/* /proc/PID/stat is about 300 bytes; a command name is at most 64. */
#define STAT_MAX 1024

/* Reads a whole small /proc file into buf (NUL-terminated). Returns its length or -errno. */
static ssize_t
read_small(const char *path, char *buf, size_t size)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    size_t len = 0;
    while (len < size - 1) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == ESRCH ? -ESRCH : -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Parses a stat line: the state letter (field 3) and the start time (field 22). */
static int
parse_stat(const char *line, char *state, uint64_t *start_time)
{
    const char *p = strrchr(line, ')');
    if (!p || p[1] != ' ')
        return -EBADMSG;
    p += 2;
    /* Field 3 is the state; field 22 is 19 fields further on. */
    if (*p == '\0' || p[1] != ' ')
        return -EBADMSG;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EBADMSG;
        p++;
    }
    if (*p < '0' || *p > '9')
        return -EBADMSG;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0'))
        return -EBADMSG;
    *start_time = v;
    return 0;
}

static int
read_stat(pid_t pid, char *state, uint64_t *start_time)
{
    if (pid <= 0)
        return -ESRCH;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char buf[STAT_MAX];
    ssize_t n = read_small(path, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    return parse_stat(buf, state, start_time);
}

int
proc_start_time(pid_t pid, uint64_t *out)
{
    char state;
    return read_stat(pid, &state, out);
}

int
proc_is_same(pid_t pid, uint64_t start_time)
{
    char state;
    uint64_t t;
    int r = read_stat(pid, &state, &t);
    if (r == -ESRCH)
        return 0;
    if (r < 0)
        return r;
    /* A zombie (Z) or a dead task (X) has exited even though its pid is still held. */
    return t == start_time && state != 'Z' && state != 'X';
}

/* The value of field key ("Threads", ...) in the status file at path, read
 * into buf: where it starts in buf, or NULL with *err = -errno (-EBADMSG
 * when the file has no such field). */
static const char *
status_field(const char *path, const char *key, char *buf, size_t size, int *err)
{
    ssize_t n = read_small(path, buf, size);
    if (n < 0) {
        *err = (int)n;
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof(name), "\n%s:", key);
    const char *p = strstr(buf, name);
    if (!p) {
        *err = -EBADMSG;
        return NULL;
    }
    return p + strlen(name);
}

int
proc_thread_count(void)
{
    char buf[4096];
    int err;
    const char *p = status_field("/proc/self/status", "Threads", buf, sizeof(buf), &err);
    if (!p)
        return err;
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p || v <= 0 || v > 1000000)
        return -EBADMSG;
    return (int)v;
}

int
proc_killed_at_birth(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    int err;
    const char *p = status_field(path, "ShdPnd", buf, sizeof(buf), &err);
    if (!p)
        return err;
    char *end;
    errno = 0;
    unsigned long long set = strtoull(p, &end, 16);
    if (end == p || errno)
        return -EBADMSG;
    return (set >> (SIGKILL - 1)) & 1;
}

int
proc_write_pid(const char *path, pid_t pid)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[16];
    int len = snprintf(buf, sizeof(buf), "%d", (int)pid);
    if (write(fd, buf, (size_t)len) != len)
        return -errno;
    return 0;
}

int
proc_open_tasks(const char *procs_path)
{
    static const char procs[] = "/cgroup.procs";
    size_t n = strlen(procs_path), k = sizeof(procs) - 1;
    char path[PATH_MAX];

    if (n <= k || strcmp(procs_path + n - k, procs) != 0)
        return -EINVAL;
    if (snprintf(path, sizeof(path), "%.*s/tasks", (int)(n - k), procs_path) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    /* cgroup2 has no tasks file: there "0" in cgroup.procs itself moves the
     * writer's process, under the global lock, as a pid written from outside
     * did. On a pure v2 host the spawner clones init, its console reader
     * and the exec helper straight into the cgroup (spawn_config.cgroup2),
     * so only a child the kernel killed at birth there (cloned again, then
     * joining: proc_killed_at_birth) and vfleet-node enter's helper still
     * take that lock. */
    struct statfs sfs;
    bool v2 = statfs(procs_path, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
    int fd = open(v2 ? procs_path : path, O_WRONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int
proc_join_self(int tasks_fd)
{
    ssize_t n;
    do {
        n = write(tasks_fd, "0", 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        return n < 0 ? -errno : -EIO;
    return 0;
}
