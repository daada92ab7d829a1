#include "node/linux/nsexec_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "node/backend.h"

_Static_assert(sizeof(struct nsexec_started) == sizeof(struct nsexec_status),
               "a join failure reads as a started message");
_Static_assert(sizeof(struct shell_status) == sizeof(struct nsexec_status),
               "the end reads as the backend's shell_status");

static void
send_started(int sock, const struct nsexec_started *st, const int *fds, int n)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 3)] = {0};
    struct iovec iov = {.iov_base = (void *)st, .iov_len = sizeof(*st)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (n > 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
}

_printf_(3, 4) _noreturn_ static void refuse(int sock, int err, const char *fmt, ...)
{
    struct nsexec_started st = {.err = err > 0 ? err : EIO};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.what, sizeof(st.what), fmt, ap);
    va_end(ap);
    send_started(sock, &st, NULL, 0);
    _exit(1);
}

/* root's shell from the guest's /etc/passwd (the helper is in its mount
 * namespace), else /bin/sh. */
static void
root_shell(char *out, size_t n)
{
    char line[512];
    FILE *f = fopen("/etc/passwd", "re");

    snprintf(out, n, "/bin/sh");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "root:", 5) != 0)
            continue;
        char *sh = strrchr(line, ':');
        if (sh && sh[1] == '/') {
            sh[1 + strcspn(sh + 1, "\r\n")] = '\0';
            if (access(sh + 1, X_OK) == 0)
                snprintf(out, n, "%s", sh + 1);
        }
        break;
    }
    fclose(f);
}

/* A terminal of the guest's devpts: the master end from /dev/ptmx, the
 * other end through TIOCGPTPEER (no path lookup under /dev/pts). */
static int
open_terminal(const struct nsexec_stream *s, int *master, int *peer)
{
    struct winsize ws = {.ws_row = s->rows ? s->rows : 24, .ws_col = s->cols ? s->cols : 80};
    int unlock = 0;

    *master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (*master < 0)
        return -errno;
    if (ioctl(*master, TIOCSPTLCK, &unlock) < 0 || ioctl(*master, TIOCSWINSZ, &ws) < 0)
        return -errno;
    *peer = ioctl(*master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    return *peer < 0 ? -errno : 0;
}

_noreturn_ static void
child(const struct nsexec_params *p, const struct nsexec_stream *s, int peer, int pipes[3][2])
{
    static char shell[256], term[80];
    static char *login_argv[] = {shell, "-l", NULL};
    static char *env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "HOME=/root", term, "LANG=C.UTF-8", NULL};
    struct nsexec_params cp = *p;

    close(p->status);
    snprintf(term, sizeof(term), "TERM=%s", s->term[0] ? s->term : "xterm");
    (void)setsid();
    if (s->tty) {
        if (ioctl(peer, TIOCSCTTY, 0) < 0 || dup2(peer, 0) < 0 || dup2(peer, 1) < 0 ||
            dup2(peer, 2) < 0)
            _exit(126);
    } else if (dup2(pipes[0][0], 0) < 0 || dup2(pipes[1][1], 1) < 0 || dup2(pipes[2][1], 2) < 0) {
        _exit(126);
    }
    if (s->login) {
        root_shell(shell, sizeof(shell));
        cp.argv = login_argv;
    }
    cp.null = -1; /* stdio is set */
    cp.env = env;
    nsexec_command(&cp);
}

void
nsexec_stream_run(const struct nsexec_params *p, const struct nsexec_stream *s)
{
    int sock = p->status, master = -1, peer = -1;
    int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    struct nsexec_started st = {0};
    int r;

    nsexec_join(p);
    if (s->tty) {
        r = open_terminal(s, &master, &peer);
        if (r < 0)
            refuse(sock, -r, "open a terminal in the guest");
    } else {
        for (int i = 0; i < 3; i++)
            if (pipe2(pipes[i], O_CLOEXEC) < 0)
                refuse(sock, errno, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0)
        refuse(sock, errno, "fork");
    if (pid == 0)
        child(p, s, peer, pipes);

    st.pid = pid;
    if (s->tty) {
        close(peer);
        st.n_fds = 1;
        send_started(sock, &st, &master, 1);
        close(master);
    } else {
        int ends[3] = {pipes[0][1], pipes[1][0], pipes[2][0]};
        close(pipes[0][0]);
        close(pipes[1][1]);
        close(pipes[2][1]);
        st.n_fds = 3;
        send_started(sock, &st, ends, 3);
        for (int i = 0; i < 3; i++)
            close(ends[i]);
    }
    struct shell_status end = {0};
    while (waitpid(pid, &end.wstatus, 0) < 0) {
        if (errno != EINTR) {
            end.err = errno;
            snprintf(end.what, sizeof(end.what), "wait for the command");
            break;
        }
    }
    while (send(sock, &end, sizeof(end), MSG_NOSIGNAL) < 0 && errno == EINTR)
        ;
    _exit(0);
}
