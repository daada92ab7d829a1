/* The guest's root is built *after* pivot_root: once the old root is
 * detached, every path the setup touches resolves inside the guest's tree, so
 * a symlink the guest planted (say /proc -> /etc on the host) cannot point a
 * mount outside it. The only host path resolved is cfg->rootfs itself, which
 * the agent made.
 *
 * Everything here runs in a freshly cloned single-threaded child, so it may
 * allocate, but it reports failures only through the error pipe and _exits. */
#include "node/linux/guest_init.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "node/linux/proc.h"
#include "node/linux/sysfilter.h"

/* Files in /proc that leak host state or act on the host: /dev/null is bound over them. */
static const char *const masked_files[] = {
    "/proc/kcore",       "/proc/keys",          "/proc/timer_list",
    "/proc/sched_debug", "/proc/latency_stats", "/proc/timer_stats",
};
/* Directories hidden under an empty read-only tmpfs. */
static const char *const masked_dirs[] = {"/proc/acpi", "/proc/scsi", "/sys/firmware"};
/* Paths the guest may read but not write (host-wide knobs); a write to
 * sysrq-trigger fails with EROFS instead of vanishing into /dev/null. */
static const char *const readonly_dirs[] = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq",
                                            "/proc/sysrq-trigger"};

/* The device nodes of /dev; /dev/console is another /dev/null until console
 * handling exists, so init's writes to it vanish instead of reaching the host. */
static const struct {
    const char *name; /* file name under /dev */
    unsigned major;   /* character device major */
    unsigned minor;   /* character device minor */
    const char *host; /* the host's node with that number (under its /dev), bound in a userns */
} devices[] = {
    {"null", 1, 3, "null"},     {"zero", 1, 5, "zero"},       {"full", 1, 7, "full"},
    {"random", 1, 8, "random"}, {"urandom", 1, 9, "urandom"}, {"tty", 5, 0, "tty"},
    {"console", 1, 3, "null"},
};

/* LXCFS files bound over the guest's, as paths inside the guest; the same
 * path under the LXCFS mount (without the leading slash) is the source. */
static const char *const lxcfs_files[] = {
    "/proc/meminfo", "/proc/cpuinfo", "/proc/stat",      "/proc/uptime",
    "/proc/loadavg", "/proc/swaps",   "/proc/diskstats", "/sys/devices/system/cpu/online",
};

/* Mounts prepared before pivot_root, attached after it; -1 = none. */
struct detached {
    int proc;                           /* a new proc instance */
    int sys;                            /* a new read-only sysfs instance */
    int lxcfs[ARRAY_SIZE(lxcfs_files)]; /* LXCFS files, -1 when absent */
    int dev[ARRAY_SIZE(devices)];       /* host device nodes (user namespace only) */
};

static const struct {
    const char *target; /* what the link points at */
    const char *path;   /* the link */
} dev_links[] = {
    {"pts/ptmx", "/dev/ptmx"},          {"/proc/self/fd", "/dev/fd"},
    {"/proc/self/fd/0", "/dev/stdin"},  {"/proc/self/fd/1", "/dev/stdout"},
    {"/proc/self/fd/2", "/dev/stderr"},
};

/* The descriptor failures are reported on; set once at the start of the child. */
static int report_fd = -1;

_printf_(2, 3) _noreturn_ static void fail(int err, const char *fmt, ...)
{
    struct guest_init_error e = {.err = err > 0 ? err : EIO};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.what, sizeof(e.what), fmt, ap);
    va_end(ap);
    /* The parent reads one struct; a short write leaves it with a clear "bad message". */
    ssize_t n;
    do {
        n = write(report_fd, &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    _exit(1);
}

/* The signals guest_init_note_signals found away from their default action;
 * meaningful once signals_noted. */
static sigset_t signals_changed;
static bool signals_noted;

void
guest_init_note_signals(void)
{
    sigemptyset(&signals_changed);
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        /* One libc keeps for itself (EINVAL) is reset as before. */
        if (sigaction(sig, NULL, &sa) < 0 || sa.sa_handler != SIG_DFL || sa.sa_flags != 0)
            sigaddset(&signals_changed, sig);
    }
    signals_noted = true;
}

void
guest_init_reset_signals(void)
{
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP &&
            (!signals_noted || sigismember(&signals_changed, sig) == 1))
            (void)sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
}

int
guest_init_drop_caps(uint64_t keep)
{
    int max = cap_max_bits();
    for (int c = 0; c < max && c < 64; c++) {
        if (keep & (UINT64_C(1) << c))
            continue;
        if (cap_drop_bound((cap_value_t)c) < 0)
            return -errno;
    }
    cap_t caps = cap_get_proc();
    if (!caps)
        return -errno;
    int r = 0;
    if (cap_clear_flag(caps, CAP_INHERITABLE) < 0 || cap_set_proc(caps) < 0)
        r = -errno;
    cap_free(caps);
    if (r < 0)
        return r;
    /* Kernels without ambient capabilities have nothing to clear. */
    if (cap_reset_ambient() < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

static void
make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        fail(errno, "mkdir %s", path);
}

static void
do_mount(const char *src, const char *target, const char *type, unsigned long flags,
         const char *data)
{
    if (mount(src, target, type, flags, data) < 0)
        fail(errno, "mount %s on %s", type ? type : src ? src : "(remount)", target);
}

/* Mounts that may have nothing to cover (a kernel without ACPI has no /proc/acpi). */
static void
mount_if_exists(const char *src, const char *target, const char *type, unsigned long flags,
                const char *data)
{
    if (mount(src, target, type, flags, data) < 0 && errno != ENOENT)
        fail(errno, "mount %s on %s", type ? type : src ? src : "(remount)", target);
}

/* Nothing we mount may propagate back to the host, and pivot_root needs the
 * old root's mount to be private and the new root to be a mount point. Ends
 * in the new root, so pivot resolves no host path. */
static void
bind_root(const char *rootfs)
{
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    do_mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL);
    if (chdir(rootfs) < 0)
        fail(errno, "chdir %s", rootfs);
}

static void
pivot(const char *rootfs)
{
    /* pivot_root(".", ".") stacks the old root on top of the new one, so it
     * can be detached without a put_old directory inside the guest. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        fail(errno, "pivot_root %s", rootfs);
    if (umount2(".", MNT_DETACH) < 0)
        fail(errno, "detach the old root");
    if (chdir("/") < 0)
        fail(errno, "chdir /");
}

/* A new proc or sysfs, not attached anywhere yet. Made while the host's own
 * proc and sysfs are still visible: in a user namespace the kernel allows a
 * new instance only next to a fully visible one (mount_too_revealing). */
static int
new_fs(const char *type, unsigned attrs)
{
    int fs = fsopen(type, FSOPEN_CLOEXEC);
    if (fs < 0)
        fail(errno, "fsopen %s", type);
    if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        fail(errno, "create a %s", type);
    int m = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
    if (m < 0)
        fail(errno, "fsmount %s", type);
    close(fs);
    return m;
}

/* A bind mount of a host file, not attached anywhere yet; -1 when the file
 * does not exist and missing_ok. */
static int
host_file(const char *path, bool missing_ok)
{
    int fd = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0 && !(missing_ok && errno == ENOENT))
        fail(errno, "open_tree %s", path);
    return fd;
}

/* Attaches a detached mount at path (resolved inside the guest's root). */
static void
attach(int fd, const char *path)
{
    if (move_mount(fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        fail(errno, "mount on %s", path);
    close(fd);
}

/* Everything taken from the host side before pivot_root: host paths are
 * resolved here, guest paths only after pivot_root, so a symlink in the
 * guest's tree cannot point a mount at the host. */
static void
detach_mounts(const struct spawn_config *cfg, const char *dev, struct detached *d)
{
    const unsigned safe = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    d->proc = new_fs("proc", safe);
    d->sys = new_fs("sysfs", safe | MOUNT_ATTR_RDONLY);
    for (size_t i = 0; i < ARRAY_SIZE(lxcfs_files); i++) {
        d->lxcfs[i] = -1;
        if (cfg->lxcfs[0]) {
            char path[SPAWN_PATH_MAX + 64];
            snprintf(path, sizeof(path), "%s/%s", cfg->lxcfs, lxcfs_files[i] + 1);
            d->lxcfs[i] = host_file(path, true);
        }
    }
    /* In a user namespace mknod of a device is refused: the host's nodes
     * (mode 0666, owned by host root, which guest root cannot change) are
     * bound in instead. */
    for (size_t i = 0; i < ARRAY_SIZE(devices); i++) {
        char path[SPAWN_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/%s", dev, devices[i].host);
        d->dev[i] = cfg->uid_base ? host_file(path, false) : -1;
    }
}

static void
make_dev(const struct detached *d)
{
    const unsigned long nosuid_noexec = MS_NOSUID | MS_NOEXEC;
    make_dir("/dev", 0755);
    do_mount("tmpfs", "/dev", "tmpfs", nosuid_noexec, "mode=755,size=65536");
    for (size_t i = 0; i < ARRAY_SIZE(devices); i++) {
        char path[32];
        snprintf(path, sizeof(path), "/dev/%s", devices[i].name);
        if (d->dev[i] >= 0) {
            _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd < 0)
                fail(errno, "create %s", path);
            attach(d->dev[i], path);
            continue;
        }
        if (mknod(path, S_IFCHR | 0666, makedev(devices[i].major, devices[i].minor)) < 0)
            fail(errno, "mknod %s", path);
        /* mknod applies the umask; every user of the guest may use these. */
        if (chmod(path, 0666) < 0)
            fail(errno, "chmod %s", path);
    }
    make_dir("/dev/pts", 0755);
    do_mount("devpts", "/dev/pts", "devpts", nosuid_noexec,
             "newinstance,ptmxmode=0666,mode=0620,gid=5");
    make_dir("/dev/shm", 01777);
    do_mount("shm", "/dev/shm", "tmpfs", nosuid_noexec | MS_NODEV, "mode=1777,size=65536k");
    for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++)
        if (symlink(dev_links[i].target, dev_links[i].path) < 0)
            fail(errno, "symlink %s", dev_links[i].path);
}

static void
make_mounts(const struct detached *d)
{
    const unsigned long safe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    make_dir("/proc", 0555);
    /* A new instance: it shows the guest's pid namespace only. */
    attach(d->proc, "/proc");
    make_dir("/sys", 0555);
    attach(d->sys, "/sys");
    make_dev(d);
    /* The guest's own view of memory, CPUs, load and uptime (LXCFS). */
    for (size_t i = 0; i < ARRAY_SIZE(lxcfs_files); i++)
        if (d->lxcfs[i] >= 0)
            attach(d->lxcfs[i], lxcfs_files[i]);

    for (size_t i = 0; i < ARRAY_SIZE(masked_files); i++)
        mount_if_exists("/dev/null", masked_files[i], NULL, MS_BIND, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(masked_dirs); i++)
        mount_if_exists("tmpfs", masked_dirs[i], "tmpfs", safe | MS_RDONLY, "size=0");
    for (size_t i = 0; i < ARRAY_SIZE(readonly_dirs); i++) {
        const char *dir = readonly_dirs[i];
        if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT)
                continue;
            fail(errno, "bind %s", dir);
        }
        do_mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | safe, NULL);
    }
}

/* The FreeVPS views (the agent's FUSE mount, whose files answer each
 * caller by its cgroup): taken from the host before pivot_root, attached
 * at /dev/vservers after it. FreeVPS had them at /proc/vservers, but a
 * procfs instance takes no new mount point; /dev is the guest's own tmpfs,
 * made here. -1 when there is none. */
static int
grab_vservers(const struct spawn_config *cfg)
{
    if (!cfg->vservers[0])
        return -1;
    int fd = (int)open_tree(AT_FDCWD, cfg->vservers, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (fd < 0)
        fail(errno, "open_tree %s", cfg->vservers);
    return fd;
}

static void
attach_vservers(int fd)
{
    if (fd < 0)
        return;
    make_dir("/dev/vservers", 0555);
    if (move_mount(fd, "", AT_FDCWD, "/dev/vservers", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        fail(errno, "mount the FreeVPS views on /dev/vservers");
    close(fd);
}

static void
loopback_up(void)
{
    _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail(errno, "socket for lo");
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        fail(errno, "get lo flags");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        fail(errno, "bring lo up");
}

/* RLIMIT_NOFILE was set by the spawner from outside (guest root in a user
 * namespace may not raise a hard limit). */
static void
set_identity(const struct spawn_config *cfg)
{
    if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        fail(errno, "sethostname \"%s\"", cfg->hostname);
    if (setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0)
        fail(errno, "setdomainname \"%s\"", cfg->domainname);
}

int
guest_init_become_root(void)
{
    /* Host root entered the namespace; as the namespace's uid 0 it becomes
     * the guest's root (host uid base) and keeps its capabilities there. */
    if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
        return -errno;
    return 0;
}

/* A root_later start: the agent binds the root into the conduit, which
 * propagates into our copy of it, then writes one byte; end of file means it
 * could not, and we must not go on. */
static void
wait_root(int fd)
{
    char byte;
    ssize_t n;
    do {
        n = read(fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(1);
    close(fd);
}

void
guest_init_run(const struct spawn_config *cfg, const struct guest_init_fds *fds)
{
    report_fd = fds->err;
    guest_init_reset_signals();

    /* The parent writes one byte once our maps and limit are set; end-of-file
     * means it gave up, and we must not go on. */
    char go;
    ssize_t n;
    do {
        n = read(fds->sync, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(1);
    close(fds->sync);
    /* Into the guest's v1 cgroups first, so that the setup below is the
     * guest's; as one thread moving itself, which takes no global lock and
     * waits for no RCU grace period (proc.h). */
    for (uint32_t i = 0; i < fds->n_tasks; i++) {
        int r = proc_join_self(fds->tasks[i]);
        if (r < 0)
            fail(-r, "join cgroup %s",
                 i < cfg->n_cgroup_procs ? cfg->cgroup_procs[i] : cfg->cgroup2);
        close(fds->tasks[i]);
    }

    /* Only now, inside the guest's cgroups, so they become its cgroup root. */
    if (unshare(CLONE_NEWCGROUP) < 0)
        fail(errno, "unshare the cgroup namespace");

    /* Host paths first, while we are still host uid 0 (the owner of the
     * node's 0700 state directories) with the user namespace's capabilities.
     * What needs no root comes before it: a root_later root is mounted by
     * the agent meanwhile (spawner_start_with). */
    struct detached d;
    detach_mounts(cfg, fds->dev, &d);
    int vservers = grab_vservers(cfg);
    loopback_up();
    set_identity(cfg);
    if (fds->root >= 0)
        wait_root(fds->root);
    bind_root(cfg->rootfs);
    /* The spawner has written our uid and gid maps: become the guest's root
     * (host uid_base); from here on only the guest's own tree is touched. */
    int r = cfg->uid_base ? guest_init_become_root() : 0;
    if (r < 0)
        fail(-r, "become root of the user namespace");
    pivot(cfg->rootfs);
    make_mounts(&d);
    attach_vservers(vservers);
    const struct sysfilter *filter = sysfilter_get(cfg->filter);
    if (!filter)
        fail(errno, "syscall filter");

    r = guest_init_drop_caps(cfg->caps);
    if (r < 0)
        fail(-r, "capability bounding set %#llx", (unsigned long long)cfg->caps);
    if (setsid() < 0)
        fail(errno, "setsid");

    if (dup2(fds->null, 0) < 0 || dup2(fds->log, 1) < 0 || dup2(fds->log, 2) < 0)
        fail(errno, "stdio");
    /* Everything but 0-2 closes at exec; the error pipe must live until then. */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        fail(errno, "close_range");
    /* Last: init is not no_new_privs (setuid programs inside must work), so
     * the load needs CAP_SYS_ADMIN, which we still hold until exec. */
    r = sysfilter_load(filter);
    if (r < 0)
        fail(-r, "load the syscall filter");

    char *argv[SPAWN_MAX_ARGS + 2];
    size_t argc = 0;
    argv[argc++] = (char *)cfg->init;
    for (size_t i = 0; i < SPAWN_MAX_ARGS && cfg->args[i][0]; i++)
        argv[argc++] = (char *)cfg->args[i];
    argv[argc] = NULL;

    char *envp[SPAWN_MAX_ENV + 4];
    size_t envc = 0;
    envp[envc++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    envp[envc++] = "TERM=linux";
    envp[envc++] = "container=vfleet";
    for (size_t i = 0; i < SPAWN_MAX_ENV && cfg->env[i][0]; i++)
        envp[envc++] = (char *)cfg->env[i];
    envp[envc] = NULL;

    execve(cfg->init, argv, envp);
    fail(errno, "exec init \"%s\"", cfg->init);
}
