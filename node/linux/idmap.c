/* User namespaces and idmapped mounts for guests; see idmap.h. */
#include "node/linux/idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/mem.h"
#include "node/linux/mountinfo.h"

static int
write_map(pid_t pid, const char *file, const char *line)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    size_t len = strlen(line);
    ssize_t n = write(fd, line, len);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

int
idmap_write(pid_t pid, uint32_t base, uint32_t count)
{
    char line[64];

    if (count == 0 || (uint64_t)base + count > UINT32_MAX)
        return -EINVAL;
    snprintf(line, sizeof(line), "0 %u %u\n", base, count);
    int r = write_map(pid, "uid_map", line);
    return r < 0 ? r : write_map(pid, "gid_map", line);
}

int
idmap_userns_fd(uint32_t base, uint32_t count)
{
    int pipefd[2];

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    /* The child only has to exist in the namespace until we hold an fd on
     * it: it waits for end of file on the pipe, then exits. */
    struct clone_args args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid < 0) {
        int r = -errno;
        close(pipefd[0]);
        close(pipefd[1]);
        return r;
    }
    if (pid == 0) {
        char c;
        close(pipefd[1]);
        while (read(pipefd[0], &c, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    close(pipefd[0]);
    int r = idmap_write((pid_t)pid, base, count);
    int fd = -1;
    if (r == 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/ns/user", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            r = -errno;
    }
    close(pipefd[1]);
    /* A caller that set SA_NOCLDWAIT (the spawner) has the child reaped by
     * the kernel: nothing to wait for. waitpid would block until the child
     * has exited (then fail with ECHILD): 1-27 ms of the spawner's one
     * thread per guest created, with other guests' starts queued behind. */
    struct sigaction sa;
    if (sigaction(SIGCHLD, NULL, &sa) == 0 && (sa.sa_flags & SA_NOCLDWAIT))
        return r < 0 ? r : fd;
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return r < 0 ? r : fd;
}

int
idmap_tree(const char *dir)
{
    int fd = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Not a peer of the template's mount if that is shared (as below). */
    struct mount_attr attr = {.propagation = MS_PRIVATE};
    if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    /* Kernels before 6.15 refuse to clone a mount outside the caller's
     * namespace (EINVAL): find out now rather than at every create. */
    int probe = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    if (probe < 0) {
        int r = errno == EINVAL ? -EOPNOTSUPP : -errno;
        close(fd);
        return r;
    }
    close(probe);
    return fd;
}

int
idmap_mount(const char *dir, int userns_fd, const char *target)
{
    return idmap_mount_tree(-1, dir, userns_fd, target);
}

int
idmap_mount_tree(int tree, const char *dir, int userns_fd, const char *target)
{
    int m = mountinfo_is_mountpoint(target);
    if (m < 0)
        return m;
    if (m == 1)
        return 0;
    _cleanup_close_ int fd =
        tree >= 0 ? open_tree(tree, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)
                  : open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* Private: a clone of a shared mount (systemd makes / shared) joins its
     * peer group, and every mount made under the templates' mount would be
     * checked against every guest's lower layer. */
    struct mount_attr attr = {
        .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        .propagation = MS_PRIVATE,
        .userns_fd = (uint64_t)userns_fd,
    };
    if (mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
        return -errno;
    if (move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return -errno;
    return 0;
}

int
idmap_umount(const char *target)
{
    int m = mountinfo_is_mountpoint(target);
    if (m == -ENOENT || m == 0)
        return 0;
    if (m < 0)
        return m;
    if (umount2(target, UMOUNT_NOFOLLOW) < 0)
        return -errno;
    return 0;
}
