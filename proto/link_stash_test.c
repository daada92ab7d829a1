/* Tests for link_stash (proto/link.c): a reader that is behind moves what
 * waits out of libzmq's queue into the link's own, frames shrunk.
 *
 * ipc:// endpoints in a private temporary directory; waits are bounded loops
 * (LINK_TEST_TRIES polls of 50 ms) that only guard against a hang. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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

struct fixture {
    char dir[64];   /* private temporary directory for the socket */
    char ep[128];   /* the router's endpoint */
    link_t *router; /* the master side */
    link_t *dealer; /* the node side, identity "n1" */
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int err = 0;

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/vf-stash-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->ep, sizeof(f->ep), "ipc://%s/master", f->dir);
    f->router = link_new_router(f->ep, &err);
    assert_non_null(f->router);
    f->dealer = link_new_dealer(f->ep, "n1", &err);
    assert_non_null(f->dealer);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char path[200];

    link_destroy(&f->router);
    link_destroy(&f->dealer);
    snprintf(path, sizeof(path), "%s/master", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
wait_for(void *handle, short events)
{
    zmq_pollitem_t item = {.socket = handle, .events = events};
    zmq_poll(&item, 1, 50);
}

/* Sends, retrying while the connection is not up yet (-EAGAIN). */
static int
send_wait(link_t *l, const void *buf, size_t len)
{
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        int r = link_send(l, NULL, buf, len);
        if (r != -EAGAIN)
            return r;
        wait_for(link_zsocket(l), ZMQ_POLLOUT);
        usleep(10000);
    }
    return -ETIMEDOUT;
}

/* The next message must be want from want_peer (waiting at most the guard). */
static void
expect_msg(link_t *l, const char *want_peer, const char *want)
{
    char peer[LINK_PEER_SIZE] = "junk";
    void *buf = NULL;
    size_t len = 0;
    int r = -EAGAIN;

    for (int i = 0; i < LINK_TEST_TRIES && r == -EAGAIN; i++)
        if ((r = link_recv(l, peer, sizeof(peer), &buf, &len)) == -EAGAIN)
            wait_for(link_zsocket(l), ZMQ_POLLIN);
    assert_int_equal(r, 0);
    assert_string_equal(peer, want_peer);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    free(buf);
}

/* The stash's shrink for test_stash: a frame that starts with "BIG" keeps
 * only "big". */
static size_t
shrink_big(const char *peer, void *frame, size_t len, void *userdata)
{
    int *calls = userdata;

    (*calls)++;
    assert_string_equal(peer, "n1");
    if (len < 3 || memcmp(frame, "BIG", 3) != 0)
        return len;
    memcpy(frame, "big", 3);
    return 3;
}

/* link_stash takes what waits out of libzmq's queue, each frame shrunk by
 * the link's shrink function: link_recv returns the stashed frames first,
 * in order, then what arrived later; they count as unread for the backlog
 * until read; denying their peer drops them. (Before the stash, libzmq kept
 * a waiting frame whole however little of it the reader would use.) */
static void
test_stash(void **state)
{
    struct fixture *f = *state;
    char peer[LINK_PEER_SIZE], big[1000];
    void *buf = NULL;
    size_t len = 0;
    int calls = 0;
    struct link_stats st;

    assert_int_equal(link_stash(f->dealer, 10), -EINVAL);
    link_set_shrink(f->router, shrink_big, &calls);
    assert_int_equal(link_stash(f->router, 10), 0);
    assert_int_equal(link_backlog_ms(f->router), 0);
    memset(big, 'x', sizeof(big));
    memcpy(big, "BIG", 3);
    assert_int_equal(send_wait(f->dealer, "one", 3), 0);
    assert_int_equal(link_send(f->dealer, NULL, big, sizeof(big)), 0);
    assert_int_equal(link_send(f->dealer, NULL, "three", 5), 0);
    int n = 0;
    for (int i = 0; i < LINK_TEST_TRIES && n < 3; i++) {
        int r = link_stash(f->router, 2);
        assert_true(r >= 0 && r <= 2);
        n += r;
        if (n < 3)
            wait_for(link_zsocket(f->router), ZMQ_POLLIN);
    }
    assert_int_equal(n, 3);
    assert_int_equal(calls, 3);
    usleep(150000);
    /* Stashed is not read: the backlog keeps growing, the link is readable. */
    assert_true(link_readable(f->router));
    uint64_t b = link_backlog_ms(f->router);
    assert_true(b >= 150 && b < 10000);
    assert_int_equal(link_send(f->dealer, NULL, "four", 4), 0);
    expect_msg(f->router, "n1", "one");
    assert_true(link_backlog_ms(f->router) >= b);
    expect_msg(f->router, "n1", "big");
    expect_msg(f->router, "n1", "three");
    expect_msg(f->router, "n1", "four");
    assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
    assert_int_equal(link_backlog_ms(f->router), 0);
    link_get_stats(f->router, &st);
    assert_int_equal(st.stashed, 3);
    assert_int_equal(st.shrunk_bytes, sizeof(big) - 3);

    /* A denied peer's stashed frames are not delivered. */
    assert_int_equal(link_send(f->dealer, NULL, "five", 4), 0);
    for (int i = 0; i < LINK_TEST_TRIES && link_stash(f->router, 10) == 0; i++)
        wait_for(link_zsocket(f->router), ZMQ_POLLIN);
    assert_true(link_readable(f->router));
    assert_int_equal(link_deny(f->router, "n1", true), 0);
    assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
