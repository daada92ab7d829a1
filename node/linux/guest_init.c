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

/* Files in /proc that leak host state or act on the host: /dev/null is bound over them. */
static const char *const masked_files[] = {
    "/proc/kcore",       "/proc/keys",          "/proc/sysrq-trigger", "/proc/timer_list",
    "/proc/sched_debug", "/proc/latency_stats", "/proc/timer_stats",
};
/* Directories hidden under an empty read-only tmpfs. */
static const char *const masked_dirs[] = {"/proc/acpi", "/proc/scsi", "/sys/firmware"};
/* Directories the guest may read but not write (host-wide knobs). */
static const char *const readonly_dirs[] = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"};

/* The device nodes of /dev; /dev/console is another /dev/null until console
 * handling exists, so init's writes to it vanish instead of reaching the host. */
static const struct {
    const char *name; /* file name under /dev */
    unsigned major;   /* character device major */
    unsigned minor;   /* character device minor */
} devices[] = {
    {"null", 1, 3},    {"zero", 1, 5}, {"full", 1, 7},    {"random", 1, 8},
    {"urandom", 1, 9}, {"tty", 5, 0},  {"console", 1, 3},
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

void
guest_init_reset_signals(void)
{
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
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

static void
enter_root(const char *rootfs)
{
    /* Nothing we mount may propagate back to the host, and pivot_root needs
     * the old root's mount to be private. */
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    /* pivot_root needs the new root to be a mount point. */
    do_mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL);
    if (chdir(rootfs) < 0)
        fail(errno, "chdir %s", rootfs);
    /* pivot_root(".", ".") stacks the old root on top of the new one, so it
     * can be detached without a put_old directory inside the guest. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        fail(errno, "pivot_root %s", rootfs);
    if (umount2(".", MNT_DETACH) < 0)
        fail(errno, "detach the old root");
    if (chdir("/") < 0)
        fail(errno, "chdir /");
}

static void
make_dev(void)
{
    const unsigned long nosuid_noexec = MS_NOSUID | MS_NOEXEC;
    make_dir("/dev", 0755);
    do_mount("tmpfs", "/dev", "tmpfs", nosuid_noexec, "mode=755,size=65536");
    for (size_t i = 0; i < ARRAY_SIZE(devices); i++) {
        char path[32];
        snprintf(path, sizeof(path), "/dev/%s", devices[i].name);
        if (mknod(path, S_IFCHR | 0666, makedev(devices[i].major, devices[i].minor)) < 0)
            fail(errno, "mknod %s", path);
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
make_mounts(void)
{
    const unsigned long safe = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    make_dir("/proc", 0555);
    /* A new instance: it shows the guest's pid namespace only. */
    do_mount("proc", "/proc", "proc", safe, NULL);
    make_dir("/sys", 0555);
    do_mount("sysfs", "/sys", "sysfs", safe | MS_RDONLY, NULL);
    make_dev();

    for (size_t i = 0; i < ARRAY_SIZE(masked_files); i++)
        mount_if_exists("/dev/null", masked_files[i], NULL, MS_BIND, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(masked_dirs); i++)
        mount_if_exists("tmpfs", masked_dirs[i], "tmpfs", safe | MS_RDONLY, "size=0");
    for (size_t i = 0; i < ARRAY_SIZE(readonly_dirs); i++) {
        const char *d = readonly_dirs[i];
        if (mount(d, d, NULL, MS_BIND | MS_REC, NULL) < 0) {
            if (errno == ENOENT)
                continue;
            fail(errno, "bind %s", d);
        }
        do_mount(NULL, d, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | safe, NULL);
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

static void
set_identity(const struct spawn_config *cfg)
{
    if (sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
        fail(errno, "sethostname \"%s\"", cfg->hostname);
    if (setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0)
        fail(errno, "setdomainname \"%s\"", cfg->domainname);
    if (cfg->nofile) {
        struct rlimit rl = {.rlim_cur = cfg->nofile, .rlim_max = cfg->nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fail(errno, "RLIMIT_NOFILE %llu", (unsigned long long)cfg->nofile);
    }
}

void
guest_init_run(const struct spawn_config *cfg, const struct guest_init_fds *fds)
{
    report_fd = fds->err;
    guest_init_reset_signals();

    /* The parent writes one byte once our pid is in every cgroup; end-of-file
     * means it gave up, and we must not go on. */
    char go;
    ssize_t n;
    do {
        n = read(fds->sync, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(1);
    close(fds->sync);

    /* Only now, inside the guest's cgroups, so they become its cgroup root. */
    if (unshare(CLONE_NEWCGROUP) < 0)
        fail(errno, "unshare the cgroup namespace");

    int vservers = grab_vservers(cfg);
    enter_root(cfg->rootfs);
    make_mounts();
    attach_vservers(vservers);
    loopback_up();
    set_identity(cfg);

    int r = guest_init_drop_caps(cfg->caps);
    if (r < 0)
        fail(-r, "capability bounding set %#llx", (unsigned long long)cfg->caps);
    if (setsid() < 0)
        fail(errno, "setsid");

    if (dup2(fds->null, 0) < 0 || dup2(fds->log, 1) < 0 || dup2(fds->log, 2) < 0)
        fail(errno, "stdio");
    /* Everything but 0-2 closes at exec; the error pipe must live until then. */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        fail(errno, "close_range");

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
