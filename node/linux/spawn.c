/* The spawner's client: the agent's side of spawn.h. The spawner process
 * itself is spawnd.c. */
#include "node/linux/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "node/linux/guest_init.h"
#include "node/linux/nsexec.h"
#include "node/linux/proc.h"
#include "node/linux/spawnd.h"

/* How long the client keeps reading after the command's timeout: long enough
 * for the helper to kill and reap it, short enough that a background process
 * that keeps the output pipes open cannot hold the caller. */
#define EXEC_GRACE_MS           5000
#define EXEC_DEFAULT_TIMEOUT_MS 30000
#define EXEC_DEFAULT_OUTPUT     (64 * 1024)
#define EXEC_MAX_OUTPUT         (16 * 1024 * 1024)

struct spawner {
    pid_t pid;            /* the spawner process */
    int sock;             /* our end of the socketpair */
    pthread_mutex_t lock; /* one request/response exchange at a time */
};

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
        return spawnd_set_error(resp, n < 0 ? errno : EBADMSG, "read the child's status");
    e.what[sizeof(e.what) - 1] = '\0';
    return spawnd_set_error(resp, e.err, "guest setup: %s", e.what);
}

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
        /* A program of its own, so that every clone and fork of the
         * spawner copies its few mappings, not the agent's (spawnd.h). */
        int r = spawnd_exec_image(sv[1]);
        log_debug("spawner: runs in a copy of the agent, not its own program (%s)", strerror(-r));
        spawnd_main(sv[1]);
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
call(spawner_t *sp, const struct spawn_request *req, int send_fd, struct spawn_response *resp,
     int *fds, size_t max_fds, size_t *n_fds)
{
    pthread_mutex_lock(&sp->lock);
    int r = spawnd_send(sp->sock, req, sizeof(*req), &send_fd, send_fd >= 0 ? 1 : 0);
    if (r == 0)
        r = spawnd_recv(sp->sock, resp, sizeof(*resp), fds, max_fds, n_fds);
    pthread_mutex_unlock(&sp->lock);
    if (r == -ECONNRESET || r == -ECONNREFUSED)
        r = -EPIPE;
    if (r == 0) {
        resp->error[sizeof(resp->error) - 1] = '\0';
        if (*n_fds != (resp->result == 0 ? resp->n_fds : 0)) {
            spawnd_close_all(fds, *n_fds);
            return -EPROTO;
        }
    }
    return r;
}

int
spawner_start(spawner_t *sp, const struct spawn_config *cfg, struct spawn_result *res)
{
    return spawner_start_with(sp, cfg, NULL, NULL, res);
}

/* Runs root for a root_later child, then lets the child go on (one byte on
 * root_w, a socket: a child that died meanwhile is an error, not a SIGPIPE)
 * or, when root failed, closes root_w without one (the child exits) and
 * returns root's error. */
static int
child_root(spawn_root_fn root, void *arg, pid_t pid, int root_w, int err_r,
           struct spawn_response *resp)
{
    int r = root(arg, pid);
    if (r < 0)
        return spawnd_set_error(resp, -r, "mount the guest's root");
    if (send(root_w, "r", 1, MSG_NOSIGNAL) == 1)
        return 0;
    /* The child is gone: its own reason first, when it wrote one. */
    int err = errno;
    if (child_verdict(err_r, resp) < 0)
        return resp->result;
    return spawnd_set_error(resp, err, "hand the root to the child");
}

int
spawner_start_with(spawner_t *sp, const struct spawn_config *cfg, spawn_root_fn root, void *arg,
                   struct spawn_result *res)
{
    *res = (struct spawn_result){.pidfd = -1};
    int r = spawnd_config_check(cfg);
    if (r == 0 && (cfg->rootfs[0] != '/' || cfg->init[0] != '/' || !cfg->hostname[0] ||
                   (root != NULL) != (cfg->root_later != 0)))
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
    size_t n_fds = 0, want = root ? 3 : 2;
    r = call(sp, req, -1, &resp, fds, want, &n_fds);
    /* A child the kernel killed at birth (spawnd.h): ours to reap. */
    if (r == 0 && resp.dead_pid > 0)
        while (waitpid(resp.dead_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    if (r < 0) {
        snprintf(res->error, sizeof(res->error), "spawner: %s", strerror(-r));
        return r;
    }
    /* The root (root_later), then the child's setup, outside the lock:
     * other starts go on meanwhile. A child that failed either is killed
     * here (it is the agent's child). */
    if (resp.result == 0 && n_fds == want && root) {
        r = child_root(root, arg, resp.pid, fds[2], fds[1], &resp);
        close(fds[2]);
        n_fds = 2;
        if (r < 0)
            (void)syscall(SYS_pidfd_send_signal, fds[0], SIGKILL, NULL, 0);
    }
    if (resp.result == 0 && n_fds == 2 && child_verdict(fds[1], &resp) < 0)
        (void)syscall(SYS_pidfd_send_signal, fds[0], SIGKILL, NULL, 0);
    memcpy(res->error, resp.error, sizeof(res->error));
    if (resp.result < 0 || n_fds != 2) {
        /* A child that was made and killed is ours to reap (CLONE_PARENT). */
        if (resp.pid > 0)
            while (waitpid(resp.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        spawnd_close_all(fds, n_fds);
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
    if (!base || spawnd_config_check(&req->cfg) < 0)
        return -EINVAL;
    struct spawn_response resp;
    int fds[SPAWN_MAX_FDS];
    size_t n_fds = 0;
    int r = call(sp, req, -1, &resp, fds, 1, &n_fds);
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

/* Packs argv into req: in req->args when it fits, else into a sealed memfd
 * whose descriptor goes into *fd (req->args_size its length; the caller
 * sends it with the request and closes it). A command over the protocol's
 * limits is the caller's error (-EINVAL, a 400 at the API, with the limit
 * said), not the node's. */
static int
pack_args(struct spawn_request *req, char *const *argv, int *fd)
{
    size_t total = 0;
    uint32_t argc = 0;
    *fd = -1;
    if (!argv || !argv[0] || !argv[0][0])
        return -EINVAL;
    for (; argv[argc]; argc++) {
        if (argc >= SPAWN_EXEC_MAX_ARGS) {
            errtext_set("a command has at most %d arguments", SPAWN_EXEC_MAX_ARGS);
            return -EINVAL;
        }
        size_t len = strnlen(argv[argc], SPAWN_EXEC_ARG_MAX + 1);
        if (len > SPAWN_EXEC_ARG_MAX) {
            errtext_set("argument %u is longer than %d bytes", argc, SPAWN_EXEC_ARG_MAX);
            return -EINVAL;
        }
        total += len + 1;
    }
    req->argc = argc;
    /* Into the request when they fit, else into a buffer for the memfd. */
    _cleanup_free_ char *buf = total <= sizeof(req->args) ? NULL : xmalloc(total);
    size_t off = 0;
    for (uint32_t i = 0; i < argc; i++) {
        size_t len = strlen(argv[i]) + 1;
        memcpy((buf ? buf : req->args) + off, argv[i], len);
        off += len;
    }
    if (!buf)
        return 0;
    _cleanup_close_ int m = memfd_create("vfleet-exec-args", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m < 0)
        return -errno;
    for (off = 0; off < total;) {
        ssize_t n = write(m, buf + off, total - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        off += (size_t)n;
    }
    if (fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return -errno;
    req->args_size = (uint32_t)total;
    *fd = move_fd(m);
    return 0;
}

/* Reads the exec's output (fds[0], fds[1]) and its helper's status (fds[2])
 * until all three end, the deadline (monotonic ms) passes, or req's cancel
 * fd is readable (-ECANCELED). */
static int
exec_wait(const int fds[3], const struct exec_request *req, int64_t deadline, struct capture *out,
          struct capture *err, struct nsexec_status *st)
{
    size_t st_len = 0;
    bool st_open = true, out_open = true, err_open = true;
    int r = 0;
    while ((out_open || err_open || st_open) && r == 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd[4] = {
            {.fd = out_open ? fds[0] : -1, .events = POLLIN},
            {.fd = err_open ? fds[1] : -1, .events = POLLIN},
            {.fd = st_open ? fds[2] : -1, .events = POLLIN},
            {.fd = req->cancellable ? req->cancel_fd : -1, .events = POLLIN},
        };
        int n = poll(pfd, 4, (int)(left > 60000 ? 60000 : left));
        if (n < 0) {
            if (errno != EINTR)
                r = -errno;
            continue;
        }
        if (pfd[3].revents) {
            /* Our ends close as we return: the helper, seeing its status
             * pipe's reader gone, kills the command (nsexec_run). */
            errtext_set("the exec was cancelled");
            r = -ECANCELED;
            break;
        }
        if (out_open && pfd[0].revents) {
            int k = capture_read(fds[0], out);
            out_open = k > 0;
            r = k < 0 ? k : 0;
        }
        if (err_open && pfd[1].revents && r == 0) {
            int k = capture_read(fds[1], err);
            err_open = k > 0;
            r = k < 0 ? k : 0;
        }
        if (st_open && pfd[2].revents && r == 0) {
            ssize_t k = read(fds[2], (char *)st + st_len, sizeof(*st) - st_len);
            if (k > 0)
                st_len += (size_t)k;
            else if (k == 0)
                st_open = false;
            else if (errno != EINTR)
                r = -errno;
        }
    }
    if (r == 0 && st_len != sizeof(*st))
        r = st_open ? -ETIMEDOUT : -EIO;
    return r;
}

int
spawner_exec(spawner_t *sp, const struct spawn_config *cfg, pid_t pid, uint64_t start_time,
             const struct exec_request *req, struct exec_result *res)
{
    *res = (struct exec_result){0};
    if (spawnd_config_check(cfg) < 0 || pid <= 0)
        return -EINVAL;
    _cleanup_free_ struct spawn_request *rq = xcalloc(1, sizeof(*rq));
    _cleanup_close_ int args_fd = -1;
    int r = pack_args(rq, req->argv, &args_fd);
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
    r = call(sp, rq, args_fd, &resp, fds, 3, &n_fds);
    if (r < 0)
        return r;
    if (resp.result < 0) {
        log_debug("spawner: exec in guest pid=%d failed: %s", (int)pid, resp.error);
        return resp.result;
    }
    size_t limit = req->max_output ? req->max_output : EXEC_DEFAULT_OUTPUT;
    if (limit > EXEC_MAX_OUTPUT)
        limit = EXEC_MAX_OUTPUT;
    struct capture out = {.limit = limit}, err = {.limit = limit};
    struct nsexec_status st = {0};
    r = exec_wait(fds, req, now_ms() + rq->timeout_ms + EXEC_GRACE_MS, &out, &err, &st);
    for (int i = 0; i < 3; i++)
        close(fds[i]); /* a cancelled command's helper sees its reader gone */
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
    if (spawnd_config_check(cfg) < 0 || pid <= 0)
        return -EINVAL;
    _cleanup_free_ struct spawn_request *rq = xcalloc(1, sizeof(*rq));
    _cleanup_close_ int args_fd = -1;
    int r = req->argv && req->argv[0] ? pack_args(rq, req->argv, &args_fd) : 0;
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
    r = call(sp, rq, args_fd, &resp, fds, 1, &n_fds);
    if (r < 0)
        return r;
    if (resp.result < 0) {
        log_debug("spawner: stream in guest pid=%d failed: %s", (int)pid, resp.error);
        return resp.result;
    }
    *sock = fds[0];
    return 0;
}
