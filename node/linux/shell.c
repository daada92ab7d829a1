#include "node/linux/shell.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/errtext.h"
#include "node/linux/nsexec_stream.h"

int
linux_shell_handshake(int sock, int timeout_ms, struct shell_proc *out)
{
    struct nsexec_started st = {0};
    char cbuf[CMSG_SPACE(sizeof(int) * 3)];
    struct iovec iov = {.iov_base = &st, .iov_len = sizeof(st)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int fds[3] = {-1, -1, -1}, n_fds = 0, r;
    ssize_t n;

    *out = (struct shell_proc){.in = -1, .out = -1, .err = -1, .ctl = -1};
    do {
        r = poll(&pfd, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    if (r <= 0) {
        close(sock);
        return errtext_fail(r == 0 ? -ETIMEDOUT : -errno, "the command did not start in time");
    }
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (n_fds < 3)
                    fds[n_fds++] = fd;
                else
                    close(fd);
            }
        }
    r = 0;
    if (n != (ssize_t)sizeof(st) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        r = errtext_fail(-EPROTO, "the stream helper said nothing readable");
    else if (st.err != 0)
        r = errtext_fail(-st.err, "%.*s: %s", (int)sizeof(st.what), st.what, strerror(st.err));
    else if (st.pid <= 0 || (st.n_fds != 1 && st.n_fds != 3) || st.n_fds != n_fds)
        r = errtext_fail(-EPROTO, "the stream helper sent %d descriptors", n_fds);
    if (r < 0) {
        for (int i = 0; i < n_fds; i++)
            close(fds[i]);
        close(sock);
        return r;
    }
    out->pid = st.pid;
    out->ctl = sock;
    if (n_fds == 1) {
        out->in = fds[0];
        out->out = dup(fds[0]);
        if (out->out < 0) {
            r = -errno;
            close(fds[0]);
            close(sock);
            *out = (struct shell_proc){.in = -1, .out = -1, .err = -1, .ctl = -1};
            return r;
        }
    } else {
        out->in = fds[0];
        out->out = fds[1];
        out->err = fds[2];
    }
    return 0;
}
