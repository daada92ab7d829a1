/* ZeroMQ-in-libuv watcher (see zwatch.h and STYLE.md, "the trap"). */
#include "proto/zwatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

/* Makes w look at its socket from this loop iteration on (or the next one's
 * prepare, when called from a check callback): its prepare and check
 * handles run until the socket is found empty and untouched again. */
static void zwatch_prepare_cb(uv_prepare_t *handle);
static void zwatch_check_cb(uv_check_t *handle);
static void zwatch_idle_cb(uv_idle_t *handle);

static void
zwatch_wake(zwatch_t *w)
{
    if (!w->active || w->hot)
        return;
    w->hot = true;
    uv_prepare_start(&w->prepare, zwatch_prepare_cb);
    uv_check_start(&w->check, zwatch_check_cb);
    /* A wake during the prepare phase (another prepare handle sent, and
     * the send consumed the fd's edge) comes after this iteration's
     * prepares: without an idle handle the loop would block in epoll with
     * the message waiting. With it, the poll does not block, and this
     * iteration's check and the next prepare look at the socket. */
    uv_idle_start(&w->idle, zwatch_idle_cb);
}

static void
zwatch_touched(void *userdata)
{
    zwatch_wake(userdata);
}

static void
zwatch_poll_cb(uv_poll_t *handle, int status, int events)
{
    /* Being woken up is the point: the check handle of this iteration
     * receives, and ZMQ_EVENTS (asked there or in the next prepare) resets
     * the fd, so the level-triggered poll does not spin. */
    zwatch_wake(container_of(handle, zwatch_t, poll));
}

static void
zwatch_idle_cb(uv_idle_t *handle)
{
    /* Only keeps the loop from blocking while messages wait; the check
     * handle does the work. */
}

static void
zwatch_prepare_cb(uv_prepare_t *handle)
{
    zwatch_t *w = container_of(handle, zwatch_t, prepare);

    /* The last chance before the loop blocks in epoll: a message queued with
     * no fd edge (consumed by a send or a query elsewhere in this iteration)
     * would otherwise wait until some unrelated event wakes the loop. */
    w->hot = false; /* a touch during link_readable sets it again */
    if (w->active && link_readable(w->link)) {
        w->hot = true;
        uv_idle_start(&w->idle, zwatch_idle_cb);
        return;
    }
    uv_idle_stop(&w->idle);
    if (w->hot)
        return;
    /* Nothing waits and nothing has touched the socket since this query
     * reset its fd: a new message raises the fd (zwatch_poll_cb), a send
     * touches (zwatch_touched). Until then this watcher costs the loop
     * nothing per iteration, which matters to a process with thousands. */
    uv_prepare_stop(&w->prepare);
    uv_check_stop(&w->check);
}

static void
zwatch_check_cb(uv_check_t *handle)
{
    zwatch_t *w = container_of(handle, zwatch_t, check);

    for (unsigned n = 0; n < w->budget && w->active; n++) {
        _cleanup_free_ void *buf = NULL;
        char peer[LINK_PEER_SIZE];
        size_t len = 0;
        int r;

        r = link_recv(w->link, peer, sizeof(peer), &buf, &len);
        if (r == -EAGAIN)
            break;
        if (r == -EBADMSG) {
            /* A malformed message counts against the budget too, so a
             * hostile peer cannot keep this loop busy either. */
            w->n_malformed++;
            continue;
        }
        if (r < 0) {
            w->n_errors++;
            log_debug("zwatch: receive failed: %s, ignoring", strerror(-r));
            break;
        }
        w->n_received++;
        w->cb(w, peer, buf, len, w->userdata);
    }
}

int
zwatch_init(uv_loop_t *loop, zwatch_t *w, link_t *link, zwatch_cb cb, void *userdata)
{
    int fd, r;

    if (!loop || !w || !link || !cb)
        return -EINVAL;
    *w = (zwatch_t){
        .link = link,
        .cb = cb,
        .userdata = userdata,
        .budget = ZWATCH_BUDGET,
    };
    fd = link_fd(link);
    if (fd < 0)
        return fd;
    r = uv_poll_init(loop, &w->poll, fd);
    if (r < 0)
        return r;
    /* These cannot fail on Unix (libuv only links them into the loop). */
    uv_prepare_init(loop, &w->prepare);
    uv_idle_init(loop, &w->idle);
    uv_check_init(loop, &w->check);
    w->open_handles = 4;
    return zwatch_start(w);
}

void
zwatch_set_budget(zwatch_t *w, unsigned budget)
{
    w->budget = budget ? budget : 1;
}

int
zwatch_start(zwatch_t *w)
{
    int r;

    if (!w || w->closing)
        return -EINVAL;
    r = uv_poll_start(&w->poll, UV_READABLE, zwatch_poll_cb);
    if (r < 0)
        return r;
    w->active = true;
    w->hot = false;
    link_set_touch(w->link, zwatch_touched, w);
    zwatch_wake(w);
    return 0;
}

int
zwatch_stop(zwatch_t *w)
{
    if (!w || w->closing)
        return -EINVAL;
    w->active = false;
    w->hot = false;
    link_set_touch(w->link, NULL, NULL);
    uv_poll_stop(&w->poll);
    uv_prepare_stop(&w->prepare);
    uv_idle_stop(&w->idle);
    uv_check_stop(&w->check);
    return 0;
}

static void
zwatch_handle_closed(uv_handle_t *handle)
{
    zwatch_t *w = handle->data;

    if (--w->open_handles == 0 && w->close_cb)
        w->close_cb(w);
}

void
zwatch_close(zwatch_t *w, zwatch_close_cb close_cb)
{
    if (!w || w->closing)
        return;
    zwatch_stop(w);
    w->closing = true;
    w->close_cb = close_cb;
    w->poll.data = w;
    w->prepare.data = w;
    w->idle.data = w;
    w->check.data = w;
    uv_close((uv_handle_t *)&w->poll, zwatch_handle_closed);
    uv_close((uv_handle_t *)&w->prepare, zwatch_handle_closed);
    uv_close((uv_handle_t *)&w->idle, zwatch_handle_closed);
    uv_close((uv_handle_t *)&w->check, zwatch_handle_closed);
}
