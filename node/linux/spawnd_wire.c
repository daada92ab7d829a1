/* The spawner's wire, both sides (spawnd.h). */
#include "node/linux/spawnd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "node/linux/sysfilter.h"

static bool
terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

int
spawnd_config_check(const struct spawn_config *c)
{
    if (!terminated(c->rootfs, sizeof(c->rootfs)) ||
        !terminated(c->hostname, sizeof(c->hostname)) ||
        !terminated(c->domainname, sizeof(c->domainname)) ||
        !terminated(c->init, sizeof(c->init)) ||
        !terminated(c->console_ring, sizeof(c->console_ring)) ||
        !terminated(c->lxcfs, sizeof(c->lxcfs)) || !terminated(c->cgroup2, sizeof(c->cgroup2)) ||
        !terminated(c->vservers, sizeof(c->vservers)) || c->n_cgroup_procs > SPAWN_MAX_CGROUPS ||
        c->filter >= SYSFILTER_VARIANTS || (c->uid_base == 0) != (c->uid_count == 0) ||
        (uint64_t)c->uid_base + c->uid_count > UINT32_MAX || c->root_later > 1)
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

int
spawnd_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
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

int
spawnd_recv(int sock, void *buf, size_t len, int *fds, size_t max_fds, size_t *n_fds)
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

void
spawnd_close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

int
spawnd_set_error(struct spawn_response *resp, int err, const char *fmt, ...)
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
