/* The helper joins the guest in two steps because setns(CLONE_NEWPID) only
 * moves the caller's *children* into the pid namespace: the helper itself
 * stays outside (where it can still kill the command's process group by its
 * host pid) and forks the command, which starts inside. Cgroups are joined
 * first, while the helper still sees the host's /sys/fs/cgroup. */
#include "node/linux/nsexec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node/linux/guest_init.h"
#include "node/linux/proc.h"
#include "node/linux/sysfilter.h"

const char *const nsexec_ns_names[NSEXEC_NS_COUNT] = {
    [NSEXEC_NS_USER] = "user", [NSEXEC_NS_CGROUP] = "cgroup", [NSEXEC_NS_IPC] = "ipc",
    [NSEXEC_NS_UTS] = "uts",   [NSEXEC_NS_NET] = "net",       [NSEXEC_NS_PID] = "pid",
    [NSEXEC_NS_MNT] = "mnt",
};

static const int ns_types[NSEXEC_NS_COUNT] = {
    [NSEXEC_NS_USER] = CLONE_NEWUSER, [NSEXEC_NS_CGROUP] = CLONE_NEWCGROUP,
    [NSEXEC_NS_IPC] = CLONE_NEWIPC,   [NSEXEC_NS_UTS] = CLONE_NEWUTS,
    [NSEXEC_NS_NET] = CLONE_NEWNET,   [NSEXEC_NS_PID] = CLONE_NEWPID,
    [NSEXEC_NS_MNT] = CLONE_NEWNS,
};

static void
write_status(int fd, const struct nsexec_status *st)
{
    ssize_t n;
    do {
        n = write(fd, st, sizeof(*st));
    } while (n < 0 && errno == EINTR);
}

_printf_(3, 4) _noreturn_ static void fail(int fd, int err, const char *fmt, ...)
{
    struct nsexec_status st = {.err = err > 0 ? err : EIO};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.what, sizeof(st.what), fmt, ap);
    va_end(ap);
    write_status(fd, &st);
    _exit(1);
}

static void
join_cgroups(const struct spawn_config *cfg, bool in_cgroup2, int status_fd)
{
    pid_t self = getpid();
    /* One thread moving itself (the helper has no other): no global lock
     * and no RCU grace period to wait for (proc.h). */
    for (uint32_t i = 0; i < cfg->n_cgroup_procs; i++) {
        _cleanup_close_ int fd = proc_open_tasks(cfg->cgroup_procs[i]);
        int r = fd < 0 ? fd : proc_join_self(fd);
        if (r < 0)
            fail(status_fd, -r, "join cgroup %s", cfg->cgroup_procs[i]);
    }
    /* Cloned there by the spawner (a pure v2 host), it has nothing to move. */
    if (cfg->cgroup2[0] && !in_cgroup2) {
        char path[SPAWN_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/cgroup.procs", cfg->cgroup2);
        int r = proc_write_pid(path, self);
        if (r < 0)
            fail(status_fd, -r, "join cgroup %s", cfg->cgroup2);
    }
}

/* The command itself, inside every namespace of the guest. */
void
nsexec_command(const struct nsexec_params *p)
{
    /* Its own process group, so the timeout kills what it started too. */
    (void)setsid();
    if (p->null >= 0 && (dup2(p->null, 0) < 0 || dup2(p->out, 1) < 0 || dup2(p->err, 2) < 0))
        _exit(126);
    if (chdir("/") < 0) {
        dprintf(2, "vfleet exec: chdir /: %s\n", strerror(errno));
        _exit(126);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        dprintf(2, "vfleet exec: no_new_privs: %s\n", strerror(errno));
        _exit(126);
    }
    int r = guest_init_drop_caps(p->cfg->caps);
    if (r < 0) {
        dprintf(2, "vfleet exec: capabilities: %s\n", strerror(-r));
        _exit(126);
    }
    (void)close_range(3, ~0U, 0);
    /* Compiled before the fork (sysfilter_get caches it), loaded last. */
    const struct sysfilter *f = sysfilter_get(p->cfg->filter);
    r = f ? sysfilter_load(f) : -errno;
    if (r < 0) {
        dprintf(2, "vfleet exec: syscall filter: %s\n", strerror(-r));
        _exit(126);
    }

    static char *clean_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/", "TERM=dumb", NULL};
    /* execvp searches the PATH of environ, so the clean environment goes there. */
    environ = p->env ? (char **)p->env : clean_env;
    execvp(p->argv[0], p->argv);
    int err = errno;
    dprintf(2, "vfleet exec: \"%s\": %s\n", p->argv[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether fd is our own user namespace (a privileged guest's). */
static bool
same_userns(int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
}

void
nsexec_join(const struct nsexec_params *p)
{
    guest_init_reset_signals();
    join_cgroups(p->cfg, p->in_cgroup2, p->status);
    /* Still host root: inside the guest's user namespace a hard limit
     * cannot be raised. The command inherits it. */
    if (p->cfg->nofile) {
        struct rlimit rl = {.rlim_cur = p->cfg->nofile, .rlim_max = p->cfg->nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fail(p->status, errno, "RLIMIT_NOFILE %llu", (unsigned long long)p->cfg->nofile);
    }
    bool userns = !same_userns(p->ns[NSEXEC_NS_USER]);
    for (int i = 0; i < NSEXEC_NS_COUNT; i++) {
        if ((i != NSEXEC_NS_USER || userns) && setns(p->ns[i], ns_types[i]) < 0)
            fail(p->status, errno, "join %s namespace", nsexec_ns_names[i]);
        close(p->ns[i]);
    }
    /* The guest's root, not an unmapped host root (files it makes would be
     * owned by nobody). The command inherits it. */
    int root = userns ? guest_init_become_root() : 0;
    if (root < 0)
        fail(p->status, -root, "become root of the guest's user namespace");
    /* Until the command execs, no guest process may open our image or memory. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void
nsexec_run(const struct nsexec_params *p)
{
    nsexec_join(p);

    pid_t child = fork();
    if (child < 0)
        fail(p->status, errno, "fork");
    if (child == 0) {
        close(p->status);
        nsexec_command(p);
    }
    close(p->out);
    close(p->err);
    close(p->null);

    struct nsexec_status st = {0};
    /* pidfd_open exists wherever clone3 does (Linux 5.3), which the spawner needs anyway. */
    int pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (pidfd < 0) {
        int err = errno;
        (void)kill(child, SIGKILL);
        fail(p->status, err, "pidfd_open");
    }
    int64_t deadline = now_ms() + p->timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            /* The group may not exist yet if the child has not reached setsid. */
            (void)kill(-child, SIGKILL);
            (void)kill(child, SIGKILL);
            st.timed_out = 1;
            break;
        }
        /* The status pipe's reader gone (POLLERR: the agent gave up
         * waiting, cancelled it, or died): nobody will read the result, and
         * a cancelled command must not run on (a move's thaw). */
        struct pollfd pfd[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = p->status, .events = 0}};
        int n = poll(pfd, 2, (int)(left > 60000 ? 60000 : left));
        if (n > 0 && pfd[1].revents && !pfd[0].revents) {
            (void)kill(-child, SIGKILL);
            (void)kill(child, SIGKILL);
            break;
        }
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR)
            fail(p->status, errno, "poll the command");
    }
    while (waitpid(child, &st.wstatus, 0) < 0) {
        if (errno != EINTR)
            fail(p->status, errno, "wait for the command");
    }
    write_status(p->status, &st);
    _exit(0);
}
