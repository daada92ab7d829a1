/* The spawner process and its client.
 *
 * Wire: one request struct per SOCK_SEQPACKET message, one response struct
 * back, with up to SPAWN_MAX_FDS descriptors attached (SCM_RIGHTS). The
 * spawner and the agent are the same binary forked at start-up, so the
 * structs need no encoding; their sizes are still checked on both sides. */
#include "node/linux/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "node/linux/console.h"
#include "node/linux/guest_init.h"
#include "node/linux/idmap.h"
#include "node/linux/nsexec.h"
#include "node/linux/nsexec_stream.h"
#include "node/linux/proc.h"
#include "node/linux/seedns.h"
#include "node/linux/sysfilter.h"

#define SPAWN_MAX_FDS 3 /* descriptors in one response */

/* How long the client keeps reading after the command's timeout: long enough
 * for the helper to kill and reap it, short enough that a background process
 * that keeps the output pipes open cannot hold the caller. */
#define EXEC_GRACE_MS           5000
#define EXEC_DEFAULT_TIMEOUT_MS 30000
#define EXEC_DEFAULT_OUTPUT     (64 * 1024)
#define EXEC_MAX_OUTPUT         (16 * 1024 * 1024)

enum spawn_op {
    SPAWN_OP_START = 1,  /* start a guest: cfg */
    SPAWN_OP_EXEC = 2,   /* run a command in a guest: cfg (cgroups, caps), pid, argv */
    SPAWN_OP_USERNS = 3, /* a user namespace fd: cfg.uid_base, cfg.uid_count */
    SPAWN_OP_STREAM = 4, /* start a command with open stdio: as exec, and stream */
};

struct spawn_request {
    uint32_t op;                     /* enum spawn_op */
    struct spawn_config cfg;         /* the guest */
    int32_t pid;                     /* exec: the guest's init */
    uint64_t start_time;             /* exec: its start time */
    uint32_t timeout_ms;             /* exec: kill the command after this */
    uint32_t argc;                   /* exec: arguments packed in args */
    char args[SPAWN_EXEC_ARGS_SIZE]; /* exec: argc NUL-terminated strings back to back */
    struct nsexec_stream stream;     /* stream: terminal or pipes (argc 0 = login shell) */
};

struct spawn_response {
    int32_t result;      /* 0 or -errno */
    int32_t pid;         /* start: init's pid, also on failure if a child was made */
    uint64_t start_time; /* start: init's start time */
    uint32_t
        n_fds; /* descriptors attached: start 2 (pidfd, verdict pipe), exec 3 (out, err, status) */
    char error[SPAWN_ERROR_MAX]; /* on failure, the step and reason */
};

struct spawner {
    pid_t pid;            /* the spawner process */
    int sock;             /* our end of the socketpair */
    pthread_mutex_t lock; /* one request/response exchange at a time */
};

/* ---- both sides ---- */

static bool
terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static int
config_check(const struct spawn_config *c)
{
    if (!terminated(c->rootfs, sizeof(c->rootfs)) ||
        !terminated(c->hostname, sizeof(c->hostname)) ||
        !terminated(c->domainname, sizeof(c->domainname)) ||
        !terminated(c->init, sizeof(c->init)) ||
        !terminated(c->console_ring, sizeof(c->console_ring)) ||
        !terminated(c->lxcfs, sizeof(c->lxcfs)) || !terminated(c->cgroup2, sizeof(c->cgroup2)) ||
        !terminated(c->vservers, sizeof(c->vservers)) || c->n_cgroup_procs > SPAWN_MAX_CGROUPS ||
        c->filter >= SYSFILTER_VARIANTS || (c->uid_base == 0) != (c->uid_count == 0) ||
        (uint64_t)c->uid_base + c->uid_count > UINT32_MAX)
        return -EINVAL;
    for (size_t i = 0; i < SPAWN_MAX_ARGS; i++)
        if (!terminated(c->args[i], sizeof(c->args[i])))
            return -EINVAL;
    for (size_t i = 0; i < SPAWN_MAX_ENV; i++)
        if (!terminated(c->env[i], sizeof(c->env[i])))
            return -EINVAL;
    for (size_t i = 0; i < c->n_cgroup_procs; i++)
        if (!terminated(c->cgroup_procs[i], sizeof(c->cgroup_procs[i])) || !c->cgroup_procs[i][0])
            return -EINVAL;
    return 0;
}

/* Sends one message with fds attached. Returns 0 or -errno. */
static int
send_msg(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n_fds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EPROTO;
}

/* Receives one message of exactly len bytes; up to max_fds descriptors land
 * in fds (O_CLOEXEC), the count in *n_fds. Returns 0, -EPIPE at end of file,
 * -EPROTO for a message of the wrong size (its descriptors closed), -errno. */
static int
recv_msg(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *n_fds)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * SPAWN_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    *n_fds = 0;
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == ECONNRESET ? -EPIPE : -errno;
    if (n == 0)
        return -EPIPE;
    size_t got = 0;
    int tmp[SPAWN_MAX_FDS];
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k && got < SPAWN_MAX_FDS; i++)
            memcpy(&tmp[got++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
    }
    bool bad = (size_t)n != len || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || got > max_fds;
    if (bad) {
        for (size_t i = 0; i < got; i++)
            close(tmp[i]);
        return -EPROTO;
    }
    memcpy(fds, tmp, got * sizeof(int));
    *n_fds = got;
    return 0;
}

/* ---- the spawner process ---- */

_printf_(3, 4) static int set_error(struct spawn_response *resp, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(resp->error, sizeof(resp->error), fmt, ap);
    va_end(ap);
    if (len >= 0 && (size_t)len < sizeof(resp->error) - 2)
        snprintf(resp->error + len, sizeof(resp->error) - (size_t)len, ": %s", strerror(err));
    resp->result = -err;
    return -err;
}

static int
write_pid_file(const char *path, pid_t pid)
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

/* The parent's half of a start: the child into the cgroups, its id maps
 * and file limit, then the go byte. The child's verdict (child_verdict) is
 * the client's to read, so the spawner serves the next start while this
 * child sets itself up. */
static int
release_child(pid_t pid, const struct spawn_config *cfg, int sync_w, struct spawn_response *resp)
{
    int r = proc_start_time(pid, &resp->start_time);
    if (r < 0)
        return set_error(resp, -r, "read start time of %d", (int)pid);
    for (uint32_t i = 0; i < cfg->n_cgroup_procs; i++) {
        r = write_pid_file(cfg->cgroup_procs[i], pid);
        if (r < 0)
            return set_error(resp, -r, "add %d to %s", (int)pid, cfg->cgroup_procs[i]);
    }
    if (cfg->uid_base && (r = idmap_write(pid, cfg->uid_base, cfg->uid_count)) < 0)
        return set_error(resp, -r, "write the uid and gid maps of %d", (int)pid);
    /* From outside: inside a user namespace root may not raise a hard limit. */
    struct rlimit rl = {.rlim_cur = cfg->nofile, .rlim_max = cfg->nofile};
    if (cfg->nofile && prlimit(pid, RLIMIT_NOFILE, &rl, NULL) < 0)
        return set_error(resp, errno, "RLIMIT_NOFILE %llu", (unsigned long long)cfg->nofile);
    if (write(sync_w, "g", 1) != 1)
        return set_error(resp, errno, "release the child");
    return 0;
}

/* The child's verdict on err_r: 0 at end of file (it has exec'd init: the
 * pipe is O_CLOEXEC), else its failed step in resp. */
static int
child_verdict(int err_r, struct spawn_response *resp)
{
    struct guest_init_error e;
    ssize_t n;
    do {
        n = read(err_r, &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return 0;
    if (n != (ssize_t)sizeof(e))
        return set_error(resp, n < 0 ? errno : EBADMSG, "read the child's status");
    e.what[sizeof(e.what) - 1] = '\0';
    return set_error(resp, e.err, "guest setup: %s", e.what);
}

/* A console reader forked ahead of time (off the start's critical path),
 * waiting on a socketpair for its pipe and ring; see open_console. */
struct standby {
    pid_t pid; /* the waiting process, 0 = none */
    int sock;  /* our end of its socketpair */
};

/* Forks the next standby reader, unless one waits already. A failure only
 * means the next start forks it itself. */
static void
standby_make(int agent_sock, struct standby *sb)
{
    int sv[2];

    if (sb->pid)
        return;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    if (pid == 0) {
        int fds[SPAWN_MAX_FDS];
        size_t n = 0;
        char byte;
        close(agent_sock);
        close(sv[0]);
        /* End of file (the spawner is gone) or garbage: nothing to read. */
        if (recv_msg(sv[1], &byte, 1, fds, 2, &n) < 0 || n != 2)
            _exit(0);
        close(sv[1]);
        console_reader_run(fds[0], fds[1]);
    }
    close(sv[1]);
    sb->pid = pid;
    sb->sock = sv[0];
}

/* Hands pipe_r and ring to the standby reader (forking one first when none
 * waits). Returns its pid or -errno. */
static pid_t
standby_take(int agent_sock, struct standby *sb, int pipe_r, int ring)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        standby_make(agent_sock, sb);
        if (!sb->pid)
            return -EAGAIN;
        int fds[2] = {pipe_r, ring};
        int r = send_msg(sb->sock, "c", 1, fds, 2);
        pid_t pid = sb->pid;
        close(sb->sock);
        *sb = (struct standby){.pid = 0, .sock = -1};
        if (r == 0)
            return pid;
        /* It died while waiting: make another. */
    }
    return -EPIPE;
}

/* Init's stdout and stderr: the write end of a pipe whose reader process
 * (a standby, *reader set) copies into the console ring; /dev/null without
 * a ring. Returns the fd or -errno with resp set. */
static int
open_console(int sock, struct standby *sb, const struct spawn_config *cfg,
             struct spawn_response *resp, pid_t *reader)
{
    *reader = 0;
    if (!cfg->console_ring[0]) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        return fd < 0 ? set_error(resp, errno, "open /dev/null") : fd;
    }
    _cleanup_close_ int ring = console_ring_open(cfg->console_ring, cfg->console_size);
    if (ring < 0)
        return set_error(resp, -ring, "open console ring %s", cfg->console_ring);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return set_error(resp, errno, "pipe");
    _cleanup_close_ int pipe_r = p[0];
    /* The guest's root owns its console, so it may reopen it as
     * /proc/1/fd/1 (a common way for jobs to reach the console). */
    if (cfg->uid_base && fchown(p[1], cfg->uid_base, cfg->uid_base) < 0) {
        int err = errno;
        close(p[1]);
        return set_error(resp, err, "chown the console pipe");
    }
    pid_t pid = standby_take(sock, sb, pipe_r, ring);
    if (pid < 0) {
        close(p[1]);
        return set_error(resp, -pid, "start the console reader");
    }
    *reader = pid;
    return p[1];
}

/* Moves the console reader of the guest just started into its cgroups
 * (its memory and CPU count as the guest's, and the guest's kill ends it),
 * after the agent has its answer: v1 cgroup.procs writes cost tens of
 * microseconds each, eight hierarchies on a hybrid host. A reader that is
 * gone already (the guest died) is nothing to move. */
static void
move_reader(pid_t reader, const struct spawn_config *cfg)
{
    for (uint32_t i = 0; reader > 0 && i < cfg->n_cgroup_procs; i++)
        if (write_pid_file(cfg->cgroup_procs[i], reader) == -ESRCH)
            return;
}

/* Clones and releases the guest's init; out_fds get its pidfd and the read
 * end of its verdict pipe (child_verdict, read by the client). */
static int
do_start(int sock, struct standby *sb, struct seedns *seed, const struct spawn_config *cfg,
         struct spawn_response *resp, int out_fds[2], pid_t *reader)
{
    /* Compiled once per spawner; the child only loads it. */
    if (!sysfilter_get(cfg->filter))
        return set_error(resp, errno, "compile the syscall filter");
    _cleanup_close_ int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return set_error(resp, errno, "open /dev/null");
    _cleanup_close_ int log = open_console(sock, sb, cfg, resp, reader);
    if (log < 0)
        return log;
    _cleanup_close_ int cg2 = -EBADF;
    if (cfg->cgroup2[0]) {
        cg2 = open(cfg->cgroup2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg2 < 0)
            return set_error(resp, errno, "open cgroup %s", cfg->cgroup2);
    }
    int sync_pipe[2], err_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) < 0)
        return set_error(resp, errno, "pipe");
    _cleanup_close_ int sync_r = sync_pipe[0], sync_w = sync_pipe[1];
    if (pipe2(err_pipe, O_CLOEXEC) < 0)
        return set_error(resp, errno, "pipe");
    _cleanup_close_ int err_r = err_pipe[0], err_w = err_pipe[1];

    int pidfd = -1;
    /* CLONE_PARENT: init becomes the agent's child, not ours (see spawn.h). */
    /* With CLONE_NEWUSER the kernel makes the user namespace first, so the
     * others belong to it and the guest's root administers them. */
    struct clone_args args = {
        .flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
                 CLONE_PARENT | CLONE_PIDFD | (cfg->uid_base ? CLONE_NEWUSER : 0),
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        /* With CLONE_PARENT the kernel wants 0 here and uses our own exit
         * signal (SIGCHLD, we were forked), so the agent gets SIGCHLD. */
        .exit_signal = 0,
    };
    if (cg2 >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cg2;
    }
    char what[SPAWN_PATH_MAX + 32];
    long pid = seedns_clone(seed, cfg, &args, what, sizeof(what));
    if (pid < 0)
        return set_error(resp, (int)-pid, "%s", what);
    if (pid == 0) {
        struct guest_init_fds fds = {
            .sync = sync_r, .err = err_w, .log = log, .null = null, .dev = seed->dev};
        close(sock);
        close(sync_w);
        close(err_r);
        guest_init_run(&seed->staged, &fds);
    }
    _cleanup_close_ int pfd = pidfd;
    resp->pid = (int32_t)pid;
    close(move_fd(sync_r));
    close(move_fd(err_w));
    /* Only init and the reader may hold the pipe: the reader ends with it. */
    close(move_fd(log));
    if (release_child((pid_t)pid, cfg, sync_w, resp) < 0) {
        /* The agent reaps the killed child: it is the agent's child. */
        (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
        return resp->result;
    }
    out_fds[0] = move_fd(pfd);
    out_fds[1] = move_fd(err_r);
    return 0;
}

/* Splits the packed arguments into argv (argc + 1 slots). */
static int
unpack_args(const struct spawn_request *req, char **argv)
{
    if (req->argc == 0 || req->argc > SPAWN_EXEC_MAX_ARGS)
        return -EINVAL;
    size_t off = 0;
    for (uint32_t i = 0; i < req->argc; i++) {
        if (off >= sizeof(req->args))
            return -EINVAL;
        const char *s = req->args + off;
        const char *end = memchr(s, '\0', sizeof(req->args) - off);
        if (!end)
            return -EINVAL;
        argv[i] = (char *)s;
        off += (size_t)(end - s) + 1;
    }
    argv[req->argc] = NULL;
    return argv[0][0] ? 0 : -EINVAL;
}

static void
close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* A stream helper (nsexec_stream.h) for a command with open stdio; the
 * agent gets the helper's socket. */
static int
do_stream(int sock, const struct spawn_request *req, char **argv, int ns[NSEXEC_NS_COUNT],
          struct spawn_response *resp, int out_fds[3])
{
    int pair[2] = {-1, -1}, err = 0;
    pid_t helper = -1;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        err = errno;
    else if ((helper = fork()) < 0)
        err = errno;
    if (helper == 0) {
        struct nsexec_params p = {.cfg = &req->cfg, .argv = argv, .null = -1, .status = pair[1]};
        memcpy(p.ns, ns, sizeof(p.ns));
        close(sock);
        close(pair[0]);
        nsexec_stream_run(&p, &req->stream);
    }
    close_all(ns, NSEXEC_NS_COUNT);
    if (err) {
        close_all(pair, 2);
        return set_error(resp, err, "set up the stream helper");
    }
    close(pair[1]);
    out_fds[0] = pair[0];
    return 0;
}

static int
do_exec(int sock, const struct spawn_request *req, struct spawn_response *resp, int out_fds[3])
{
    char *argv[SPAWN_EXEC_MAX_ARGS + 1] = {NULL};
    int r = req->op == SPAWN_OP_STREAM && req->argc == 0 ? 0 : unpack_args(req, argv);
    if (r < 0)
        return set_error(resp, -r, "bad command");
    if (proc_is_same(req->pid, req->start_time) != 1)
        return set_error(resp, ESRCH, "guest init %d", (int)req->pid);
    if (!sysfilter_get(req->cfg.filter))
        return set_error(resp, errno, "compile the syscall filter");

    int ns[NSEXEC_NS_COUNT];
    for (int i = 0; i < NSEXEC_NS_COUNT; i++)
        ns[i] = -1;
    for (int i = 0; i < NSEXEC_NS_COUNT; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)req->pid, nsexec_ns_names[i]);
        ns[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (ns[i] < 0) {
            int err = errno == ENOENT ? ESRCH : errno;
            close_all(ns, NSEXEC_NS_COUNT);
            return set_error(resp, err, "open %s", path);
        }
    }
    /* The pid may have been reused between the check and the opens. */
    if (proc_is_same(req->pid, req->start_time) != 1) {
        close_all(ns, NSEXEC_NS_COUNT);
        return set_error(resp, ESRCH, "guest init %d", (int)req->pid);
    }

    if (req->op == SPAWN_OP_STREAM)
        return do_stream(sock, req, argv, ns, resp, out_fds);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int err = null < 0 ? errno : 0;
    for (int i = 0; i < 3 && !err; i++)
        if (pipe2(pipes[i], O_CLOEXEC) < 0)
            err = errno;
    pid_t helper = err ? -1 : fork();
    if (!err && helper < 0)
        err = errno;
    if (helper == 0) {
        struct nsexec_params p = {
            .cfg = &req->cfg,
            .argv = argv,
            .timeout_ms = req->timeout_ms,
            .null = null,
            .out = pipes[0][1],
            .err = pipes[1][1],
            .status = pipes[2][1],
        };
        memcpy(p.ns, ns, sizeof(ns));
        /* The agent must see end of file on the socket if the spawner dies. */
        close(sock);
        for (int i = 0; i < 3; i++)
            close(pipes[i][0]);
        nsexec_run(&p);
    }
    close_all(ns, NSEXEC_NS_COUNT);
    if (null >= 0)
        close(null);
    for (int i = 0; i < 3; i++) {
        close_all(&pipes[i][1], 1);
        out_fds[i] = pipes[i][0];
    }
    if (err) {
        close_all(out_fds, 3);
        return set_error(resp, err, "set up the exec helper");
    }
    return 0;
}

_noreturn_ static void
spawner_main(int sock)
{
    (void)prctl(PR_SET_NAME, "vfleet-spawner", 0, 0, 0);
    /* Exec helpers are our children; nobody needs their status, so the
     * kernel reaps them. Guests' inits are not our children (CLONE_PARENT). */
    struct sigaction sa = {.sa_handler = SIG_DFL, .sa_flags = SA_NOCLDWAIT};
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGCHLD, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    /* Keep nothing of the agent but stdio and our socket. */
    if (sock != 3) {
        if (dup3(sock, 3, O_CLOEXEC) < 0)
            _exit(1);
        sock = 3;
    }
    (void)close_range(4, ~0U, 0);
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            (void)open("/dev/null", O_RDWR);

    /* Guests are cloned from it; without one, from our namespace (seedns.h). */
    static struct seedns seed;
    int r = seedns_make(&seed);
    if (r == -ENOTRECOVERABLE)
        _exit(1);

    /* Big enough to be kept off the stack; the spawner is single-threaded. */
    static struct spawn_request req;
    struct standby sb = {.pid = 0, .sock = -1};
    pid_t reader = 0; /* the last start's console reader, to move after the answer */
    standby_make(sock, &sb);
    for (;;) {
        int fds[SPAWN_MAX_FDS] = {-1, -1, -1};
        size_t n_fds;
        struct spawn_response resp = {0};
        r = recv_msg(sock, &req, sizeof(req), fds, 0, &n_fds);
        if (r == -EPIPE)
            _exit(0);
        if (r < 0 && r != -EPROTO)
            _exit(1);
        if (r == -EPROTO)
            set_error(&resp, EPROTO, "bad request");
        else if (config_check(&req.cfg) < 0)
            set_error(&resp, EINVAL, "bad config");
        else if (req.op == SPAWN_OP_START) {
            if (do_start(sock, &sb, &seed, &req.cfg, &resp, fds, &reader) == 0)
                resp.n_fds = 2;
            else
                reader = 0; /* it ends with the killed child's pipe */
        } else if (req.op == SPAWN_OP_EXEC || req.op == SPAWN_OP_STREAM) {
            if (do_exec(sock, &req, &resp, fds) == 0)
                resp.n_fds = req.op == SPAWN_OP_EXEC ? 3 : 1;
        } else if (req.op == SPAWN_OP_USERNS && req.cfg.uid_base) {
            fds[0] = idmap_userns_fd(req.cfg.uid_base, req.cfg.uid_count);
            if (fds[0] >= 0)
                resp.n_fds = 1;
            else
                set_error(&resp, -fds[0], "make a user namespace");
        } else {
            set_error(&resp, EOPNOTSUPP, "op %u", req.op);
        }
        r = send_msg(sock, &resp, sizeof(resp), fds, resp.n_fds);
        close_all(fds, SPAWN_MAX_FDS);
        if (r < 0)
            _exit(r == -EPIPE ? 0 : 1);
        /* Now that the agent has its answer: the reader into the guest's
         * cgroups (req still holds the start's config), the next standby. */
        if (reader > 0) {
            move_reader(reader, &req.cfg);
            reader = 0;
        }
        standby_make(sock, &sb);
    }
}

/* ---- the client ---- */

spawner_t *
spawner_new(int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    int threads = proc_thread_count();
    if (threads < 0) {
        *err = threads;
        return NULL;
    }
    if (threads > 1) {
        *err = -EBUSY;
        return NULL;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        *err = -errno;
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *err = -errno;
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    if (pid == 0) {
        close(sv[0]);
        spawner_main(sv[1]);
    }
    close(sv[1]);
    spawner_t *sp = xcalloc(1, sizeof(*sp));
    sp->pid = pid;
    sp->sock = sv[0];
    pthread_mutex_init(&sp->lock, NULL);
    log_debug("spawner pid=%d started", (int)pid);
    *err = 0;
    return sp;
}

void
spawner_destroy(spawner_t **spp)
{
    spawner_t *sp = *spp;
    if (!sp)
        return;
    /* End of file on its socket makes the spawner exit. */
    close(sp->sock);
    while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    pthread_mutex_destroy(&sp->lock);
    free(sp);
    *spp = NULL;
}

pid_t
spawner_pid(const spawner_t *sp)
{
    return sp->pid;
}

/* One exchange under the lock. */
static int
call(spawner_t *sp, const struct spawn_request *req, struct spawn_response *resp, int *fds,
     size_t max_fds, size_t *n_fds)
{
    pthread_mutex_lock(&sp->lock);
    int r = send_msg(sp->sock, req, sizeof(*req), NULL, 0);
    if (r == 0)
        r = recv_msg(sp->sock, resp, sizeof(*resp), fds, max_fds, n_fds);
    pthread_mutex_unlock(&sp->lock);
    if (r == -ECONNRESET || r == -ECONNREFUSED)
        r = -EPIPE;
    if (r == 0) {
        resp->error[sizeof(resp->error) - 1] = '\0';
        if (*n_fds != (resp->result == 0 ? resp->n_fds : 0)) {
            close_all(fds, *n_fds);
            return -EPROTO;
        }
    }
    return r;
}

int
spawner_start(spawner_t *sp, const struct spawn_config *cfg, struct spawn_result *res)
{
    *res = (struct spawn_result){.pidfd = -1};
    int r = config_check(cfg);
    if (r == 0 && (cfg->rootfs[0] != '/' || cfg->init[0] != '/' || !cfg->hostname[0]))
        r = -EINVAL;
    if (r < 0) {
        snprintf(res->error, sizeof(res->error), "invalid spawn config");
        return r;
    }
    _cleanup_free_ struct spawn_request *req = xcalloc(1, sizeof(*req));
    req->op = SPAWN_OP_START;
    req->cfg = *cfg;
    struct spawn_response resp;
    int fds[SPAWN_MAX_FDS];
    size_t n_fds = 0;
    r = call(sp, req, &resp, fds, 2, &n_fds);
    if (r < 0) {
        snprintf(res->error, sizeof(res->error), "spawner: %s", strerror(-r));
        return r;
    }
    /* The child's setup, outside the lock: other starts go on meanwhile. A
     * child that failed it is killed here (it is the agent's child). */
    if (resp.result == 0 && n_fds == 2 && child_verdict(fds[1], &resp) < 0)
        (void)syscall(SYS_pidfd_send_signal, fds[0], SIGKILL, NULL, 0);
    memcpy(res->error, resp.error, sizeof(res->error));
    if (resp.result < 0 || n_fds != 2) {
        /* A child that was made and killed is ours to reap (CLONE_PARENT). */
        if (resp.pid > 0)
            while (waitpid(resp.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        close_all(fds, n_fds);
        log_debug("spawner: start in \"%s\" failed: %s", cfg->rootfs, resp.error);
        return resp.result < 0 ? resp.result : -EPROTO;
    }
    close(fds[1]);
    res->pid = resp.pid;
    res->start_time = resp.start_time;
    res->pidfd = fds[0];
    return 0;
}

int
spawner_userns(spawner_t *sp, uint32_t base, uint32_t count)
{
    _cleanup_free_ struct spawn_request *req = xcalloc(1, sizeof(*req));
    req->op = SPAWN_OP_USERNS;
    req->cfg.uid_base = base;
    req->cfg.uid_count = count;
    if (!base || config_check(&req->cfg) < 0)
        return -EINVAL;
    struct spawn_response resp;
    int fds[SPAWN_MAX_FDS];
    size_t n_fds = 0;
    int r = call(sp, req, &resp, fds, 1, &n_fds);
    if (r < 0)
        return r;
    if (resp.result < 0)
        return resp.result;
    return n_fds == 1 ? fds[0] : -EPROTO;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An output stream being captured. */
struct capture {
    char *buf;    /* up to limit bytes, NUL-terminated */
    size_t len;   /* bytes in buf */
    size_t limit; /* bytes kept */
    bool dropped; /* some bytes were read past the limit */
};

/* Reads what is there. Returns 1 while open, 0 at end of file, -errno. */
static int
capture_read(int fd, struct capture *c)
{
    char chunk[16384];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : -errno;
    if (n == 0)
        return 0;
    size_t keep = (size_t)n;
    if (keep > c->limit - c->len) {
        keep = c->limit - c->len;
        c->dropped = true;
    }
    if (keep) {
        c->buf = xrealloc(c->buf, c->len + keep + 1);
        memcpy(c->buf + c->len, chunk, keep);
        c->len += keep;
        c->buf[c->len] = '\0';
    }
    return 1;
}

static int
pack_args(struct spawn_request *req, char *const *argv)
{
    size_t off = 0;
    uint32_t argc = 0;
    if (!argv || !argv[0] || !argv[0][0])
        return -EINVAL;
    for (; argv[argc]; argc++) {
        if (argc >= SPAWN_EXEC_MAX_ARGS)
            return -E2BIG;
        size_t len = strlen(argv[argc]) + 1;
        if (len > sizeof(req->args) - off)
            return -E2BIG;
        memcpy(req->args + off, argv[argc], len);
        off += len;
    }
    req->argc = argc;
    return 0;
}

int
spawner_exec(spawner_t *sp, const struct spawn_config *cfg, pid_t pid, uint64_t start_time,
             const struct exec_request *req, struct exec_result *res)
{
    *res = (struct exec_result){0};
    if (config_check(cfg) < 0 || pid <= 0)
        return -EINVAL;
    _cleanup_free_ struct spawn_request *rq = xcalloc(1, sizeof(*rq));
    int r = pack_args(rq, req->argv);
    if (r < 0)
        return r;
    rq->op = SPAWN_OP_EXEC;
    rq->cfg = *cfg;
    rq->pid = pid;
    rq->start_time = start_time;
    rq->timeout_ms = req->timeout_ms ? req->timeout_ms : EXEC_DEFAULT_TIMEOUT_MS;

    struct spawn_response resp;
    int fds[SPAWN_MAX_FDS];
    size_t n_fds = 0;
    r = call(sp, rq, &resp, fds, 3, &n_fds);
    if (r < 0)
        return r;
    if (resp.result < 0) {
        log_debug("spawner: exec in guest pid=%d failed: %s", (int)pid, resp.error);
        return resp.result;
    }
    _cleanup_close_ int out_fd = fds[0], err_fd = fds[1], status_fd = fds[2];

    size_t limit = req->max_output ? req->max_output : EXEC_DEFAULT_OUTPUT;
    if (limit > EXEC_MAX_OUTPUT)
        limit = EXEC_MAX_OUTPUT;
    struct capture out = {.limit = limit}, err = {.limit = limit};
    struct nsexec_status st = {0};
    size_t st_len = 0;
    bool st_open = true, out_open = true, err_open = true;
    int64_t deadline = now_ms() + rq->timeout_ms + EXEC_GRACE_MS;
    r = 0;
    while ((out_open || err_open || st_open) && r == 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd[3] = {
            {.fd = out_open ? out_fd : -1, .events = POLLIN},
            {.fd = err_open ? err_fd : -1, .events = POLLIN},
            {.fd = st_open ? status_fd : -1, .events = POLLIN},
        };
        int n = poll(pfd, 3, (int)(left > 60000 ? 60000 : left));
        if (n < 0) {
            if (errno != EINTR)
                r = -errno;
            continue;
        }
        if (out_open && pfd[0].revents) {
            int k = capture_read(out_fd, &out);
            out_open = k > 0;
            r = k < 0 ? k : 0;
        }
        if (err_open && pfd[1].revents && r == 0) {
            int k = capture_read(err_fd, &err);
            err_open = k > 0;
            r = k < 0 ? k : 0;
        }
        if (st_open && pfd[2].revents && r == 0) {
            ssize_t k = read(status_fd, (char *)&st + st_len, sizeof(st) - st_len);
            if (k > 0)
                st_len += (size_t)k;
            else if (k == 0)
                st_open = false;
            else if (errno != EINTR)
                r = -errno;
        }
    }
    if (r == 0 && st_len != sizeof(st))
        r = st_open ? -ETIMEDOUT : -EIO;
    if (r == 0 && st.err != 0) {
        st.what[sizeof(st.what) - 1] = '\0';
        log_debug("spawner: exec in guest pid=%d failed: %s: %s", (int)pid, st.what,
                  strerror(st.err));
        r = -st.err;
    }
    if (r < 0) {
        free(out.buf);
        free(err.buf);
        return r;
    }
    res->timed_out = st.timed_out != 0;
    if (WIFEXITED(st.wstatus)) {
        res->exit_code = WEXITSTATUS(st.wstatus);
    } else {
        res->exit_code = -1;
        res->signal = WIFSIGNALED(st.wstatus) ? WTERMSIG(st.wstatus) : 0;
    }
    /* Callers get NUL-terminated strings even for empty output. */
    res->out = out.buf ? out.buf : xcalloc(1, 1);
    res->out_len = out.len;
    res->err = err.buf ? err.buf : xcalloc(1, 1);
    res->err_len = err.len;
    res->truncated = out.dropped || err.dropped;
    return 0;
}

int
spawner_stream(spawner_t *sp, const struct spawn_config *cfg, pid_t pid, uint64_t start_time,
               const struct shell_request *req, int *sock)
{
    *sock = -1;
    if (config_check(cfg) < 0 || pid <= 0)
        return -EINVAL;
    _cleanup_free_ struct spawn_request *rq = xcalloc(1, sizeof(*rq));
    int r = req->argv && req->argv[0] ? pack_args(rq, req->argv) : 0;
    if (r < 0)
        return r;
    rq->op = SPAWN_OP_STREAM;
    rq->cfg = *cfg;
    rq->pid = pid;
    rq->start_time = start_time;
    rq->stream = (struct nsexec_stream){
        .tty = req->tty, .cols = req->cols, .rows = req->rows, .login = rq->argc == 0};
    if (req->term && strscpy(rq->stream.term, req->term, sizeof(rq->stream.term)) < 0)
        return -EINVAL;
    struct spawn_response resp;
    int fds[SPAWN_MAX_FDS];
    size_t n_fds = 0;
    r = call(sp, rq, &resp, fds, 1, &n_fds);
    if (r < 0)
        return r;
    if (resp.result < 0) {
        log_debug("spawner: stream in guest pid=%d failed: %s", (int)pid, resp.error);
        return resp.result;
    }
    *sock = fds[0];
    return 0;
}
