/* What the link tests share (link_test.c, link_stash_test.c, zwatch_test.c,
 * master_link_test.c):
 * a router and a dealer "n1" on an ipc:// endpoint in a private temporary
 * directory, raw ZeroMQ peers and senders, and bounded waits (LINK_TEST_TRIES
 * polls of 50 ms) that only guard against a hang; nothing asserts how long
 * anything takes. Static helpers, included by each test program. */
#pragma once
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <zmq.h>

#include "proto/link.h"

#define LINK_TEST_TRIES 200 /* 200 x 50 ms: a 10 s guard against hangs */
#define LINK_FX_DIR     64  /* bytes of a fixture's directory name */
#define LINK_FX_EP      128 /* bytes of a fixture's endpoint */

#define FX_UNUSED __attribute__((unused))

/* Makes a private temporary directory /tmp/vf-NAME-PID-XXXXXX in dir
 * (LINK_FX_DIR bytes), its endpoint ipc://DIR/master in ep (LINK_FX_EP
 * bytes), a router bound there and a dealer "n1" connected to it. */
FX_UNUSED static void
fx_open_pair(const char *name, char *dir, char *ep, link_t **router, link_t **dealer)
{
    int err = 0;

    snprintf(dir, LINK_FX_DIR, "/tmp/vf-%s-%d-XXXXXX", name, (int)getpid());
    assert_non_null(mkdtemp(dir));
    snprintf(ep, LINK_FX_EP, "ipc://%s/master", dir);
    *router = link_new_router(ep, &err);
    assert_non_null(*router);
    *dealer = link_new_dealer(ep, "n1", &err);
    assert_non_null(*dealer);
}

/* Undoes fx_open_pair: both links destroyed, the directory removed (any
 * other socket file in it must be gone already). */
FX_UNUSED static void
fx_close_pair(const char *dir, link_t **router, link_t **dealer)
{
    char path[200];

    link_destroy(router);
    link_destroy(dealer);
    snprintf(path, sizeof(path), "%s/master", dir);
    unlink(path);
    rmdir(dir);
}

/* Sends the text s as one frame: 0 or -1. */
FX_UNUSED static int
send_str(void *s, const char *text)
{
    int n = (int)strlen(text);

    return zmq_send(s, text, (size_t)n, 0) == n ? 0 : -1;
}

/* Sends "a", "b", "c" as one three-frame message: 0 or -1. */
FX_UNUSED static int
send_abc(void *s)
{
    if (zmq_send(s, "a", 1, ZMQ_SNDMORE) != 1 || zmq_send(s, "b", 1, ZMQ_SNDMORE) != 1)
        return -1;
    return zmq_send(s, "c", 1, 0) == 1 ? 0 : -1;
}

FX_UNUSED static void
wait_for(void *handle, short events)
{
    zmq_pollitem_t item = {.socket = handle, .events = events};
    zmq_poll(&item, 1, 50);
}

/* Receives the next message, waiting at most the guard time. Returns the
 * first result that is not -EAGAIN, or -ETIMEDOUT. */
FX_UNUSED static int
recv_wait(link_t *l, char *peer, size_t peer_len, void **buf, size_t *len)
{
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        int r = link_recv(l, peer, peer_len, buf, len);
        if (r != -EAGAIN)
            return r;
        wait_for(link_zsocket(l), ZMQ_POLLIN);
    }
    return -ETIMEDOUT;
}

/* Sends, retrying while the connection is not up yet (-EAGAIN) or a
 * router does not know the peer yet (-EHOSTUNREACH). */
FX_UNUSED static int
send_wait(link_t *l, const char *peer, const void *buf, size_t len)
{
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        int r = link_send(l, peer, buf, len);
        if (r != -EAGAIN && r != -EHOSTUNREACH)
            return r;
        /* POLLOUT may already be set (a link_reconnect still draining), so
         * also pause, as an application retrying from a timer would. */
        wait_for(link_zsocket(l), ZMQ_POLLOUT);
        usleep(10000);
    }
    return -ETIMEDOUT;
}

/* The next message must be want from want_peer (waiting at most the guard). */
FX_UNUSED static void
expect_msg(link_t *l, const char *want_peer, const char *want)
{
    char peer[LINK_PEER_SIZE] = "junk";
    void *buf = NULL;
    size_t len = 0;

    assert_int_equal(recv_wait(l, peer, sizeof(peer), &buf, &len), 0);
    assert_string_equal(peer, want_peer);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    free(buf);
}

/* A raw socket of type (ZMQ_DEALER, ZMQ_ROUTER: with ROUTER_MANDATORY) with
 * the routing id given (libzmq's own when NULL), bound to or connected to
 * endpoint. */
FX_UNUSED static void *
raw_socket(int type, const char *identity, const char *endpoint, bool bind)
{
    void *s = link_socket(type);

    assert_non_null(s);
    if (identity)
        assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, identity, strlen(identity)), 0);
    if (type == ZMQ_ROUTER) {
        int on = 1;
        assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &on, sizeof(on)), 0);
    }
    if (bind)
        assert_int_equal(zmq_bind(s, endpoint), 0);
    else
        assert_int_equal(zmq_connect(s, endpoint), 0);
    return s;
}

/* A PAIR socket connected to a monitor of s, at the inproc:// endpoint ep,
 * that reports ZMQ_EVENT_DISCONNECTED only. */
FX_UNUSED static void *
monitor_disconnect(void *s, const char *ep)
{
    void *mon = link_socket(ZMQ_PAIR);

    assert_non_null(mon);
    assert_int_equal(zmq_socket_monitor(s, ep, ZMQ_EVENT_DISCONNECTED), 0);
    assert_int_equal(zmq_connect(mon, ep), 0);
    return mon;
}

/* Reads one event from monitor mon without waiting: whether it is a
 * ZMQ_EVENT_DISCONNECTED. */
FX_UNUSED static bool
mon_disconnected(void *mon)
{
    uint8_t ev[6];
    char ep[256];
    uint16_t event;

    if (zmq_recv(mon, ev, sizeof(ev), ZMQ_DONTWAIT) != (int)sizeof(ev))
        return false;
    (void)zmq_recv(mon, ep, sizeof(ep), ZMQ_DONTWAIT);
    memcpy(&event, ev, sizeof(event));
    return event == ZMQ_EVENT_DISCONNECTED;
}

/* Waits (the guard time at most) for a ZMQ_EVENT_DISCONNECTED on monitor
 * mon: whether one came. */
FX_UNUSED static bool
await_disconnect(void *mon)
{
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        wait_for(mon, ZMQ_POLLIN);
        if (mon_disconnected(mon))
            return true;
    }
    return false;
}
