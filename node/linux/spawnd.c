/* The spawner process: its loop and what it does for each request (spawnd.h). */
#include "node/linux/spawnd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* The parent's half of a start: the child's id maps and file limit, then
 * the go byte. The child joins its v1 cgroups itself, through the tasks
 * files do_start opened (guest_init_run): written from here, the pid took the
 * global cgroup_threadgroup_rwsem, and each start waited out an RCU grace
 * period for it (proc.h). The child's verdict (child_verdict) is the
 * client's to read, so the spawner serves the next start while this child
 * sets itself up. */
static int
release_child(pid_t pid, const struct spawn_config *cfg, int sync_w, struct spawn_response *resp)
{
    int r = proc_start_time(pid, &resp->start_time);
    if (r < 0)
        return spawnd_set_error(resp, -r, "read start time of %d", (int)pid);
    if (cfg->uid_base && (r = idmap_write(pid, cfg->uid_base, cfg->uid_count)) < 0)
        return spawnd_set_error(resp, -r, "write the uid and gid maps of %d", (int)pid);
    /* From outside: inside a user namespace root may not raise a hard limit. */
    struct rlimit rl = {.rlim_cur = cfg->nofile, .rlim_max = cfg->nofile};
    if (cfg->nofile && prlimit(pid, RLIMIT_NOFILE, &rl, NULL) < 0)
        return spawnd_set_error(resp, errno, "RLIMIT_NOFILE %llu", (unsigned long long)cfg->nofile);
    /* A socket: a child that died meanwhile is an error, not a SIGPIPE
     * that would end the spawner (and every start after it). */
    if (send(sync_w, "g", 1, MSG_NOSIGNAL) != 1)
        return spawnd_set_error(resp, errno, "release the child");
    return 0;
}

/* The tasks files of a start's v1 cgroups, open in the spawner for its child,
 * then cfg->cgroup2's cgroup.procs, which init and its console reader are
 * cloned into (CLONE_INTO_CGROUP) and join by this file only when the kernel
 * killed such a clone at birth (fork_into). */
struct tasks_files {
    int fd[SPAWN_MAX_CGROUPS + 1]; /* one per cfg->cgroup_procs entry, in its order, then cgroup2 */
    uint32_t n;                    /* entries open */
};

static void
tasks_files_close(struct tasks_files *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        close(t->fd[i]);
    t->n = 0;
}

/* Opens them here, as host root in the host's mount namespace: the child
 * writes them from its own namespaces (proc_join_self). */
static int
tasks_files_open(const struct spawn_config *cfg, struct tasks_files *t, struct spawn_response *resp)
{
    for (t->n = 0; t->n < cfg->n_cgroup_procs; t->n++) {
        int fd = proc_open_tasks(cfg->cgroup_procs[t->n]);
        if (fd < 0)
            return spawnd_set_error(resp, -fd, "open the tasks file of %s",
                                    cfg->cgroup_procs[t->n]);
        t->fd[t->n] = fd;
    }
    if (cfg->cgroup2[0]) {
        char procs[SPAWN_PATH_MAX + 16];
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cfg->cgroup2);
        int fd = proc_open_tasks(procs);
        if (fd < 0)
            return spawnd_set_error(resp, -fd, "open %s", procs);
        t->fd[t->n++] = fd;
    }
    return 0;
}

/* 1 when the cgroup2 open at cg is frozen (its cgroup.freeze says 1), 0
 * when not or when the kernel has no freezer (before 5.2), or -errno. The
 * file stays open at *fd (for a thaw) when fd is not NULL and it is frozen.
 * A read takes no global lock (a write takes the kernel's cgroup_mutex). */
static int
cgroup2_frozen(int cg, int *fd)
{
    _cleanup_close_ int f = openat(cg, "cgroup.freeze", O_RDWR | O_CLOEXEC);
    if (f < 0)
        return errno == ENOENT ? 0 : -errno;
    char c;
    if (pread(f, &c, 1, 0) != 1 || c != '1')
        return 0;
    if (fd)
        *fd = move_fd(f);
    return 1;
}

/* Thaws the cgroup2 open at cg, a start's, when it is frozen. A stop's kill
 * freezes the guest's cgroup, kills each process and thaws it
 * (cgroup_v2.c); an agent killed between the freeze and the thaw leaves it
 * frozen and empty (a fatal signal ends a frozen task on cgroup2), and a
 * child cloned into it or joining it is frozen before its first
 * instruction: we waited for the console reader's first byte forever
 * (fork_into), and every start and exec of the node behind us. A guest is
 * started only when its init is not running, and the only other freeze, a
 * move's, holds off its starts (the master refuses them meanwhile). Not
 * for an exec (fork_helper): a running guest is frozen on purpose during a
 * move's last pass. Returns 0 or -errno. */
static int
thaw_cgroup2(int cg)
{
    _cleanup_close_ int fd = -EBADF;
    int r = cgroup2_frozen(cg, &fd);
    if (r <= 0)
        return r;
    log_debug("spawner: a guest's cgroup was left frozen: thawing it");
    return pwrite(fd, "0", 1, 0) == 1 ? 0 : -errno;
}

/* Forks a child of ours straight into the cgroup open at cg (clone3
 * CLONE_INTO_CGROUP), instead of a fork that then moves the child there by
 * cgroup.procs, which takes the kernel's global cgroup_threadgroup_rwsem
 * and waits out an RCU grace period (proc.h). Returns as fork() does once
 * the child has run its first instructions (a byte on a pipe): a child the
 * kernel killed at birth never runs (proc_killed_at_birth says when it
 * does that), and then the result is -ESTALE with the child gone (we reap
 * nothing: SA_NOCLDWAIT). -errno when clone3 fails. Either way the caller
 * forks and joins instead. */
static pid_t
fork_into(int cg)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    struct clone_args args = {
        .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cg};
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    int err = errno;
    if (pid == 0) {
        close(p[0]);
        (void)!write(p[1], "a", 1);
        close(p[1]);
        return 0;
    }
    close(p[1]);
    ssize_t n = -1;
    char byte;
    while (pid > 0 && (n = read(p[0], &byte, 1)) < 0 && errno == EINTR)
        ;
    close(p[0]);
    if (pid < 0)
        return -err;
    return n == 1 ? (pid_t)pid : -ESTALE;
}

/* A console reader forked ahead of time (off the start's critical path),
 * waiting on a socketpair for its pipe and ring; see open_console. */
struct standby {
    pid_t pid; /* the waiting process, 0 = none */
    int sock;  /* our end of its socketpair */
};

/* In the standby reader once taken: receives the n tasks files of the
 * guest's v1 cgroups, SPAWN_MAX_FDS a message, and joins them as one thread
 * moving itself (proc_join_self), off the spawner and without the global lock
 * whose grace period the spawner waited for when it wrote the reader's pid
 * (while holding cgroup_mutex, which the guest's init then waited for to
 * join its own). A cgroup it cannot join leaves it where it is, as before. */
static void
reader_join(int sock, uint8_t n)
{
    for (uint8_t done = 0; done < n;) {
        int fds[SPAWN_MAX_FDS];
        size_t k = 0;
        char byte;
        if (spawnd_recv(sock, &byte, 1, fds, SPAWN_MAX_FDS, &k) < 0 || k == 0)
            _exit(0);
        for (size_t i = 0; i < k; i++) {
            (void)proc_join_self(fds[i]);
            close(fds[i]);
        }
        done = (uint8_t)(done + k);
    }
}

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
        uint8_t n_tasks;
        close(agent_sock);
        close(sv[0]);
        /* End of file (the spawner is gone) or garbage: nothing to read. */
        if (spawnd_recv(sv[1], &n_tasks, 1, fds, 2, &n) < 0 || n != 2 ||
            n_tasks > SPAWN_MAX_CGROUPS + 1)
            _exit(0);
        reader_join(sv[1], n_tasks);
        close(sv[1]);
        console_reader_run(fds[0], fds[1]);
    }
    close(sv[1]);
    sb->pid = pid;
    sb->sock = sv[0];
}

/* Hands pipe_r, ring and the tasks files (reader_join) to the standby
 * reader (forking one first when none waits). Returns its pid or -errno. */
static pid_t
standby_take(int agent_sock, struct standby *sb, int pipe_r, int ring,
             const struct tasks_files *tasks)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        standby_make(agent_sock, sb);
        if (!sb->pid)
            return -EAGAIN;
        int fds[2] = {pipe_r, ring};
        uint8_t n_tasks = (uint8_t)tasks->n;
        int r = spawnd_send(sb->sock, &n_tasks, 1, fds, 2);
        for (uint32_t i = 0; r == 0 && i < tasks->n; i += SPAWN_MAX_FDS) {
            uint32_t k = tasks->n - i < SPAWN_MAX_FDS ? tasks->n - i : SPAWN_MAX_FDS;
            r = spawnd_send(sb->sock, "t", 1, tasks->fd + i, k);
        }
        pid_t pid = sb->pid;
        close(sb->sock);
        *sb = (struct standby){.pid = 0, .sock = -1};
        if (r == 0)
            return pid;
        /* It died while waiting: make another. */
    }
    return -EPIPE;
}

/* Init's console: the pipe its stdout and stderr go to and the ring its
 * reader process copies the pipe into. */
struct console_pipe {
    int w;    /* the write end, init's; /dev/null without a ring */
    int r;    /* the read end, the reader's, -1 without a ring */
    int ring; /* the ring file, -1 without one */
};

static void
console_pipe_close(struct console_pipe *c)
{
    int fds[3] = {c->w, c->r, c->ring};
    spawnd_close_all(fds, 3);
    *c = (struct console_pipe){.w = -1, .r = -1, .ring = -1};
}

/* Makes it (before init is cloned: init inherits the write end). Returns 0
 * or -errno with resp set. */
static int
console_open(const struct spawn_config *cfg, struct console_pipe *c, struct spawn_response *resp)
{
    if (!cfg->console_ring[0]) {
        c->w = open("/dev/null", O_WRONLY | O_CLOEXEC);
        return c->w < 0 ? spawnd_set_error(resp, errno, "open /dev/null") : 0;
    }
    c->ring = console_ring_open(cfg->console_ring, cfg->console_size);
    if (c->ring < 0)
        return spawnd_set_error(resp, -c->ring, "open console ring %s", cfg->console_ring);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return spawnd_set_error(resp, errno, "pipe");
    c->r = p[0];
    c->w = p[1];
    /* The guest's root owns its console, so it may reopen it as
     * /proc/1/fd/1 (a common way for jobs to reach the console). */
    if (cfg->uid_base && fchown(c->w, cfg->uid_base, cfg->uid_base) < 0)
        return spawnd_set_error(resp, errno, "chown the console pipe");
    return 0;
}

/* Starts the reader of c (after init's clone, before its release), which
 * copies the pipe into the ring (console.h) from inside the guest's
 * cgroups: cloned into cg (init's cgroup2, CLONE_INTO_CGROUP) when cg >= 0
 * and the kernel lets it live, else a standby that joins the cgroups of
 * tasks itself (reader_join). Our copy of the read end is closed. Returns 0
 * or -errno with resp set. */
static int
console_start(int sock, struct standby *sb, int cg, const struct tasks_files *tasks,
              struct console_pipe *c, struct spawn_response *resp)
{
    if (c->r < 0)
        return 0;
    pid_t pid = cg >= 0 ? fork_into(cg) : -EBADF;
    if (pid == 0) {
        /* Its v1 cgroups (a hybrid host) it joins as the standby does. */
        for (uint32_t i = 0; i + 1 < tasks->n; i++)
            (void)proc_join_self(tasks->fd[i]);
        console_reader_run(c->r, c->ring);
    }
    if (pid < 0)
        pid = standby_take(sock, sb, c->r, c->ring, tasks);
    close(c->r);
    c->r = -1;
    return pid < 0 ? spawnd_set_error(resp, -pid, "start the console reader") : 0;
}

/* Clones the guest's init with args (its pidfd into *pidfd): into
 * cfg->cgroup2 (a pure v2 host) with CLONE_INTO_CGROUP while *into; when the
 * kernel kills that child at birth (proc_killed_at_birth: the cgroup was
 * once killed with cgroup.kill) or refuses the clone, a second clone joins
 * it by its cgroup.procs instead, as on a kernel without CLONE_INTO_CGROUP,
 * and *into turns false. The killed child is the agent's to reap
 * (resp->dead_pid). Returns seedns_clone's: 0 in the child. */
static long
clone_init(struct seedns *seed, const struct spawn_config *cfg, struct clone_args *args, int cg2,
           bool *into, int *pidfd, struct spawn_response *resp, char *what, size_t what_size)
{
    for (;;) {
        args->flags = *into ? args->flags | CLONE_INTO_CGROUP : args->flags & ~CLONE_INTO_CGROUP;
        args->cgroup = *into ? (uint64_t)cg2 : 0;
        long pid = seedns_clone(seed, cfg, args, what, what_size);
        if (pid == 0 || !*into)
            return pid;
        if (pid > 0 && proc_killed_at_birth((pid_t)pid) == 0)
            return pid;
        if (pid > 0) {
            /* Not released: it cannot have run guest code. */
            (void)syscall(SYS_pidfd_send_signal, *pidfd, SIGKILL, NULL, 0);
            close(*pidfd);
            resp->dead_pid = (int32_t)pid;
        }
        log_debug("spawner: init not cloned into %s (%s): it joins the cgroup instead",
                  cfg->cgroup2, pid < 0 ? strerror((int)-pid) : "killed at birth");
        *into = false;
        *pidfd = -1;
    }
}

/* Clones and releases the guest's init; out_fds get its pidfd and the read
 * end of its verdict pipe (child_verdict, read by the client), and for a
 * root_later start the agent's end of the socket the child waits on for its
 * root (spawner_start_with). Returns the number of fds or -errno. */
static int
do_start(int sock, struct standby *sb, struct seedns *seed, const struct spawn_config *cfg,
         struct spawn_response *resp, int out_fds[3])
{
    /* Compiled once per spawner; the child only loads it. */
    if (!sysfilter_get(cfg->filter))
        return spawnd_set_error(resp, errno, "compile the syscall filter");
    _cleanup_close_ int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return spawnd_set_error(resp, errno, "open /dev/null");
    _cleanup_(tasks_files_close) struct tasks_files tasks = {.n = 0};
    if (tasks_files_open(cfg, &tasks, resp) < 0)
        return resp->result;
    _cleanup_(console_pipe_close) struct console_pipe con = {.w = -1, .r = -1, .ring = -1};
    if (console_open(cfg, &con, resp) < 0)
        return resp->result;
    _cleanup_close_ int cg2 = -EBADF;
    if (cfg->cgroup2[0]) {
        cg2 = open(cfg->cgroup2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg2 < 0)
            return spawnd_set_error(resp, errno, "open cgroup %s", cfg->cgroup2);
        int r = thaw_cgroup2(cg2);
        if (r < 0)
            return spawnd_set_error(resp, -r, "thaw cgroup %s", cfg->cgroup2);
    }
    int sync_pair[2], err_pipe[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pair) < 0)
        return spawnd_set_error(resp, errno, "socketpair");
    _cleanup_close_ int sync_r = sync_pair[0], sync_w = sync_pair[1];
    if (pipe2(err_pipe, O_CLOEXEC) < 0)
        return spawnd_set_error(resp, errno, "pipe");
    _cleanup_close_ int err_r = err_pipe[0], err_w = err_pipe[1];
    /* A socket, not a pipe: the client's send to a child that died gets
     * EPIPE (MSG_NOSIGNAL), not a SIGPIPE that would end the agent. */
    int root_pair[2] = {-1, -1};
    if (cfg->root_later && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, root_pair) < 0)
        return spawnd_set_error(resp, errno, "socketpair");
    _cleanup_close_ int root_r = root_pair[1], root_w = root_pair[0];

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
    bool into = cg2 >= 0;
    char what[SPAWN_PATH_MAX + 32];
    long pid = clone_init(seed, cfg, &args, cg2, &into, &pidfd, resp, what, sizeof(what));
    if (pid < 0)
        return spawnd_set_error(resp, (int)-pid, "%s", what);
    if (pid == 0) {
        struct guest_init_fds fds = {.sync = sync_r,
                                     .err = err_w,
                                     .log = con.w,
                                     .null = null,
                                     .dev = seed->dev,
                                     .tasks = tasks.fd,
                                     /* cgroup2's too unless cloned into it */
                                     .n_tasks = into ? cfg->n_cgroup_procs : tasks.n,
                                     .root = root_r};
        close(sock);
        close(sync_w);
        close(err_r);
        if (root_w >= 0)
            close(root_w);
        guest_init_run(&seed->staged, &fds);
    }
    _cleanup_close_ int pfd = pidfd;
    resp->pid = (int32_t)pid;
    close(move_fd(sync_r));
    close(move_fd(err_w));
    if (root_r >= 0)
        close(move_fd(root_r));
    /* Only init and the reader may hold the pipe: the reader ends with it. */
    close(move_fd(con.w));
    /* The reader after init: cloned into the cgroup init was cloned into. */
    if (console_start(sock, sb, into ? cg2 : -EBADF, &tasks, &con, resp) < 0 ||
        release_child((pid_t)pid, cfg, sync_w, resp) < 0) {
        /* The agent reaps the killed child: it is the agent's child. */
        (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
        return resp->result;
    }
    out_fds[0] = move_fd(pfd);
    out_fds[1] = move_fd(err_r);
    if (root_w < 0)
        return 2;
    out_fds[2] = move_fd(root_w);
    return 3;
}

/* Splits argc NUL-terminated strings packed in buf (size bytes) into argv
 * (argc + 1 slots), each at most SPAWN_EXEC_ARG_MAX bytes; with exact, they
 * must fill buf to its end (the memfd), else zeros may follow (the request's
 * own array). */
static int
unpack_args(const char *buf, size_t size, uint32_t argc, bool exact, char **argv)
{
    if (argc == 0 || argc > SPAWN_EXEC_MAX_ARGS)
        return -EINVAL;
    size_t off = 0;
    for (uint32_t i = 0; i < argc; i++) {
        if (off >= size)
            return -EINVAL;
        const char *s = buf + off;
        const char *end = memchr(s, '\0', size - off);
        if (!end || (size_t)(end - s) > SPAWN_EXEC_ARG_MAX)
            return -EINVAL;
        argv[i] = (char *)s;
        off += (size_t)(end - s) + 1;
    }
    if (exact && off != size)
        return -EINVAL;
    argv[argc] = NULL;
    return argv[0][0] ? 0 : -EINVAL;
}

/* Copies the arguments of a long command out of the memfd fd (spawnd.h)
 * into buf (SPAWN_EXEC_ARGS_SIZE bytes): it must be sealed so that its
 * size cannot change, and hold exactly size bytes. The copy, not the memfd,
 * is what the caller checks and uses. Returns 0 or -errno. */
static int
read_args(int fd, size_t size, char *buf)
{
    const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    struct stat st;
    if (size <= SPAWN_EXEC_INLINE || size > SPAWN_EXEC_ARGS_SIZE)
        return -EINVAL;
    int got = fcntl(fd, F_GET_SEALS);
    if (got < 0 || (got & seals) != seals || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != size)
        return -EINVAL;
    for (size_t off = 0; off < size;) {
        ssize_t n = pread(fd, buf + off, size - off, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EINVAL;
        off += (size_t)n;
    }
    return 0;
}

/* Forks an exec helper; with cfg->cgroup2 (a pure v2 host) it is cloned
 * into that cgroup (fork_into), as init is, instead of moving itself there
 * by cgroup.procs. *in_cgroup2 says which. Returns fork()'s result, -1 with
 * errno. */
static pid_t
fork_helper(const struct spawn_config *cfg, bool *in_cgroup2)
{
    *in_cgroup2 = false;
    if (cfg->cgroup2[0]) {
        _cleanup_close_ int cg = open(cfg->cgroup2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        /* Frozen (a move's last pass): a child cloned into it would write
         * its first byte only at the thaw, and fork_into would wait for it
         * with every start and exec of the node behind; forked here, the
         * helper joins it instead and waits alone. */
        pid_t pid = cg < 0 ? -errno : cgroup2_frozen(cg, NULL) > 0 ? -EBUSY : fork_into(cg);
        if (pid >= 0) {
            *in_cgroup2 = true;
            return pid;
        }
        log_debug("spawner: exec helper not cloned into %s (%s): it joins the cgroup instead",
                  cfg->cgroup2, strerror(-pid));
    }
    return fork();
}

/* A stream helper (nsexec_stream.h) for a command with open stdio; the
 * agent gets the helper's socket. */
static int
do_stream(int sock, const struct spawn_request *req, char **argv, int ns[NSEXEC_NS_COUNT],
          struct spawn_response *resp, int out_fds[3])
{
    int pair[2] = {-1, -1}, err = 0;
    pid_t helper = -1;
    bool placed = false;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        err = errno;
    else if ((helper = fork_helper(&req->cfg, &placed)) < 0)
        err = errno;
    if (helper == 0) {
        struct nsexec_params p = {
            .cfg = &req->cfg, .argv = argv, .null = -1, .status = pair[1], .in_cgroup2 = placed};
        memcpy(p.ns, ns, sizeof(p.ns));
        close(sock);
        close(pair[0]);
        nsexec_stream_run(&p, &req->stream);
    }
    spawnd_close_all(ns, NSEXEC_NS_COUNT);
    if (err) {
        spawnd_close_all(pair, 2);
        return spawnd_set_error(resp, err, "set up the stream helper");
    }
    close(pair[1]);
    out_fds[0] = pair[0];
    return 0;
}

static void
unmap_args(char **p)
{
    if (*p && *p != MAP_FAILED)
        (void)munmap(*p, SPAWN_EXEC_ARGS_SIZE);
}

/* *args_fd: the memfd of a long command (req->args_size), else -1; closed
 * once copied, so no helper forked here holds it while its command runs. */
static int
do_exec(int sock, const struct spawn_request *req, int *args_fd, struct spawn_response *resp,
        int out_fds[3])
{
    /* A long command's copy: mapped for this request only (the helper
     * forked below keeps its own copy), so the spawner does not keep it
     * and its later forks do not copy it. */
    _cleanup_(unmap_args) char *long_args = NULL;
    char *argv[SPAWN_EXEC_MAX_ARGS + 1];
    argv[0] = NULL; /* a login shell's (unpack_args sets the rest) */
    int r = 0;
    bool in_memfd = *args_fd >= 0;
    if ((req->args_size != 0) != in_memfd)
        r = -EINVAL;
    else if (in_memfd) {
        long_args = mmap(NULL, SPAWN_EXEC_ARGS_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        r = long_args == MAP_FAILED ? -errno : read_args(*args_fd, req->args_size, long_args);
    }
    if (*args_fd >= 0)
        close(move_fd(*args_fd));
    if (r == 0 && !(req->op == SPAWN_OP_STREAM && req->argc == 0 && !in_memfd))
        r = in_memfd ? unpack_args(long_args, req->args_size, req->argc, true, argv)
                     : unpack_args(req->args, sizeof(req->args), req->argc, false, argv);
    if (r < 0)
        return spawnd_set_error(resp, -r, "bad command");
    if (proc_is_same(req->pid, req->start_time) != 1)
        return spawnd_set_error(resp, ESRCH, "guest init %d", (int)req->pid);
    if (!sysfilter_get(req->cfg.filter))
        return spawnd_set_error(resp, errno, "compile the syscall filter");

    int ns[NSEXEC_NS_COUNT];
    for (int i = 0; i < NSEXEC_NS_COUNT; i++)
        ns[i] = -1;
    for (int i = 0; i < NSEXEC_NS_COUNT; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)req->pid, nsexec_ns_names[i]);
        ns[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (ns[i] < 0) {
            int err = errno == ENOENT ? ESRCH : errno;
            spawnd_close_all(ns, NSEXEC_NS_COUNT);
            return spawnd_set_error(resp, err, "open %s", path);
        }
    }
    /* The pid may have been reused between the check and the opens. */
    if (proc_is_same(req->pid, req->start_time) != 1) {
        spawnd_close_all(ns, NSEXEC_NS_COUNT);
        return spawnd_set_error(resp, ESRCH, "guest init %d", (int)req->pid);
    }

    if (req->op == SPAWN_OP_STREAM)
        return do_stream(sock, req, argv, ns, resp, out_fds);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    int err = null < 0 ? errno : 0;
    for (int i = 0; i < 3 && !err; i++)
        if (pipe2(pipes[i], O_CLOEXEC) < 0)
            err = errno;
    bool placed = false;
    pid_t helper = err ? -1 : fork_helper(&req->cfg, &placed);
    if (!err && helper < 0)
        err = errno;
    if (helper == 0) {
        struct nsexec_params p = {
            .in_cgroup2 = placed,
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
    spawnd_close_all(ns, NSEXEC_NS_COUNT);
    if (null >= 0)
        close(null);
    for (int i = 0; i < 3; i++) {
        spawnd_close_all(&pipes[i][1], 1);
        out_fds[i] = pipes[i][0];
    }
    if (err) {
        spawnd_close_all(out_fds, 3);
        return spawnd_set_error(resp, err, "set up the exec helper");
    }
    return 0;
}

void
spawnd_main(int sock)
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
    /* Our dispositions are final: each child resets only what differs. */
    guest_init_note_signals();

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
    standby_make(sock, &sb);
    for (;;) {
        int fds[SPAWN_MAX_FDS] = {-1, -1, -1};
        size_t n_fds;
        struct spawn_response resp = {0};
        /* At most one descriptor comes with a request: a long command's
         * arguments (spawnd.h). */
        r = spawnd_recv(sock, &req, sizeof(req), fds, 1, &n_fds);
        if (r == -EPIPE)
            _exit(0);
        if (r < 0 && r != -EPROTO)
            _exit(1);
        _cleanup_close_ int args_fd = n_fds == 1 ? move_fd(fds[0]) : -1;
        if (r == -EPROTO || (args_fd >= 0 && req.op != SPAWN_OP_EXEC && req.op != SPAWN_OP_STREAM))
            spawnd_set_error(&resp, EPROTO, "bad request");
        else if (spawnd_config_check(&req.cfg) < 0)
            spawnd_set_error(&resp, EINVAL, "bad config");
        else if (req.op == SPAWN_OP_START) {
            r = do_start(sock, &sb, &seed, &req.cfg, &resp, fds);
            if (r > 0)
                resp.n_fds = (uint32_t)r;
        } else if (req.op == SPAWN_OP_EXEC || req.op == SPAWN_OP_STREAM) {
            if (do_exec(sock, &req, &args_fd, &resp, fds) == 0)
                resp.n_fds = req.op == SPAWN_OP_EXEC ? 3 : 1;
        } else if (req.op == SPAWN_OP_USERNS && req.cfg.uid_base) {
            fds[0] = idmap_userns_fd(req.cfg.uid_base, req.cfg.uid_count);
            if (fds[0] >= 0)
                resp.n_fds = 1;
            else
                spawnd_set_error(&resp, -fds[0], "make a user namespace");
        } else {
            spawnd_set_error(&resp, EOPNOTSUPP, "op %u", req.op);
        }
        r = spawnd_send(sock, &resp, sizeof(resp), fds, resp.n_fds);
        spawnd_close_all(fds, SPAWN_MAX_FDS);
        if (r < 0)
            _exit(r == -EPIPE ? 0 : 1);
        /* Now that the agent has its answer: the next standby. */
        standby_make(sock, &sb);
    }
}
