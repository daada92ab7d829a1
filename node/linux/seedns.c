/* The seed mount namespace (seedns.h). */
#include "node/linux/seedns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"

/* The staged mount points, in stage_open's order, all under SEEDNS_STAGE. */
static const char *const stage_dirs[] = {SEEDNS_GUEST, SEEDNS_LXCFS, SEEDNS_HOSTDEV,
                                         SEEDNS_VSERVERS};
/* The seed's other directories. */
static const char *const seed_dirs[] = {"proc", "sys", &SEEDNS_STAGE[1]};

/* Its root: a tmpfs with the mount points, attached over the copy of the
 * host's root, pivoted into, the copy detached (the one walk over the host's
 * table); then the seed's own proc and sysfs. */
static int
seed_build(void)
{
    const unsigned safe = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return -errno;
    _cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return -errno;
    if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "size", "64k", 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return -errno;
    _cleanup_close_ int m = fsmount(fs, FSMOUNT_CLOEXEC, safe);
    if (m < 0)
        return -errno;
    for (size_t i = 0; i < ARRAY_SIZE(seed_dirs); i++)
        if (mkdirat(m, seed_dirs[i], 0555) < 0)
            return -errno;
    for (size_t i = 0; i < ARRAY_SIZE(stage_dirs); i++)
        if (mkdirat(m, stage_dirs[i] + 1, 0700) < 0)
            return -errno;
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(m, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
        return -errno;
    /* pivot_root(".", ".") stacks the old root on the new one and the
     * detach takes it off: no directory of the host's is needed. */
    if (move_mount(m, "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0 || fchdir(m) < 0 ||
        syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return -errno;
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 ||
        mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return -errno;
    return 0;
}

/* Back to the host's namespace, root and working directory. */
static int
go_home(const struct seedns *s)
{
    if (setns(s->host, CLONE_NEWNS) < 0)
        return -errno;
    if (fchdir(s->root) < 0 || chroot(".") < 0 || fchdir(s->cwd) < 0)
        return -errno;
    return 0;
}

static void
seed_close(struct seedns *s)
{
    int *fds[] = {&s->seed, &s->host, &s->root, &s->cwd};
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}

int
seedns_make(struct seedns *s)
{
    *s = (struct seedns){.seed = -1, .host = -1, .root = -1, .cwd = -1};
    s->host = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    s->root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    s->cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int r = 0;
    if (s->host < 0 || s->root < 0 || s->cwd < 0 || unshare(CLONE_NEWNS) < 0) {
        r = -errno;
        goto out;
    }
    r = seed_build();
    if (r == 0) {
        s->seed = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        if (s->seed < 0)
            r = -errno;
    }
    int home = go_home(s);
    if (home < 0) {
        seed_close(s);
        return -ENOTRECOVERABLE;
    }
out:
    if (r < 0) {
        log_debug("spawner: no seed mount namespace (%s), guests copy the host's", strerror(-r));
        seed_close(s);
    }
    return r;
}

void
seedns_close(struct seedns *s)
{
    seed_close(s);
}

/* Clones the host trees of one start, in the host's namespace; fd[i] -1
 * where there is nothing to stage. */
static int
stage_open(const struct spawn_config *cfg, int fd[4], char *what, size_t what_size)
{
    const char *src[4] = {cfg->rootfs, cfg->lxcfs[0] ? cfg->lxcfs : NULL,
                          cfg->uid_base ? "/dev" : NULL, cfg->vservers[0] ? cfg->vservers : NULL};
    for (size_t i = 0; i < 4; i++) {
        fd[i] = -1;
        if (!src[i])
            continue;
        fd[i] = open_tree(AT_FDCWD, src[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (fd[i] < 0) {
            int r = -errno;
            snprintf(what, what_size, "clone %s", src[i]);
            return r;
        }
    }
    return 0;
}

/* Binds the holder (SEEDNS_STAGE onto itself), then attaches the clones
 * at the mount points in it, private: none of them stays a peer of the
 * host's mount it came from. A root_later guest's root is the conduit
 * (spawner_start_with): a slave instead, so that the root the agent binds
 * into the conduit later propagates into the child's copy. */
static int
stage_attach(struct seedns *s, int fd[4], bool guest_slave, char *what, size_t what_size)
{
    /* The seed's root is private, and so is a bind of one of its directories. */
    if (mount(SEEDNS_STAGE, SEEDNS_STAGE, NULL, MS_BIND, NULL) < 0) {
        int r = -errno;
        snprintf(what, what_size, "bind %s in the seed", SEEDNS_STAGE);
        return r;
    }
    s->held = true;
    for (size_t i = 0; i < 4; i++) {
        if (fd[i] < 0)
            continue;
        if (move_mount(fd[i], "", AT_FDCWD, stage_dirs[i], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
            int r = -errno;
            snprintf(what, what_size, "attach %s in the seed", stage_dirs[i]);
            return r;
        }
        unsigned long prop = i == 0 && guest_slave ? MS_SLAVE : MS_PRIVATE;
        if (mount(NULL, stage_dirs[i], NULL, MS_REC | prop, NULL) < 0) {
            int r = -errno;
            snprintf(what, what_size, "make %s in the seed %s", stage_dirs[i],
                     prop == MS_SLAVE ? "a slave" : "private");
            return r;
        }
    }
    return 0;
}

int
seedns_enter(struct seedns *s, const struct spawn_config *cfg, struct spawn_config *staged,
             const char **dev, char *what, size_t what_size)
{
    int fd[4] = {-1, -1, -1, -1};

    *staged = *cfg;
    *dev = "/dev";
    if (s->seed < 0)
        return 0;
    int r = stage_open(cfg, fd, what, what_size);
    if (r == 0 && setns(s->seed, CLONE_NEWNS) < 0) {
        r = -errno;
        snprintf(what, what_size, "enter the seed mount namespace");
    } else if (r == 0) {
        s->inside = true;
        r = stage_attach(s, fd, cfg->root_later != 0, what, what_size);
        if (r < 0) {
            int home = seedns_leave(s);
            if (home < 0)
                r = home;
        }
    }
    for (size_t i = 0; i < 4; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    if (r < 0)
        return r;
    strscpy(staged->rootfs, SEEDNS_GUEST, sizeof(staged->rootfs));
    if (cfg->lxcfs[0])
        strscpy(staged->lxcfs, SEEDNS_LXCFS, sizeof(staged->lxcfs));
    if (cfg->vservers[0])
        strscpy(staged->vservers, SEEDNS_VSERVERS, sizeof(staged->vservers));
    if (cfg->uid_base)
        *dev = SEEDNS_HOSTDEV;
    return 0;
}

int
seedns_leave(struct seedns *s)
{
    int r = 0;
    if (!s->inside)
        return 0;
    s->inside = false;
    /* The holder and every tree attached in it: one unmount, one grace period. */
    if (s->held && umount2(SEEDNS_STAGE, MNT_DETACH) < 0)
        r = -errno;
    s->held = false;
    /* A mount left behind would be under the next start's: clone from the
     * host's namespace from now on rather than from a seed that grows. */
    if (r < 0 && s->seed >= 0) {
        close(s->seed);
        s->seed = -1;
    }
    int home = go_home(s);
    return home < 0 ? -ENOTRECOVERABLE : 0;
}

long
seedns_clone(struct seedns *s, const struct spawn_config *cfg, struct clone_args *args, char *what,
             size_t what_size)
{
    int r = seedns_enter(s, cfg, &s->staged, &s->dev, what, what_size);
    if (r == -ENOTRECOVERABLE)
        _exit(1); /* our own namespace is lost: the agent sees EPIPE */
    if (r < 0)
        return r;
    long pid = syscall(SYS_clone3, args, sizeof(*args));
    int err = errno;
    if (pid == 0) {
        seedns_close(s);
        return 0;
    }
    if (seedns_leave(s) < 0)
        _exit(1);
    if (pid < 0)
        snprintf(what, what_size, "clone3");
    return pid < 0 ? -err : pid;
}
