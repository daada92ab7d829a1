/* Tests for proto/zwatch: ZeroMQ links driven by a libuv loop.
 *
 * A router and a dealer link talk over ipc:// in a private temporary
 * directory, both in the test's loop. A guard timer (10 s) stops any wait
 * that would otherwise hang; it is a failure guard, never a timing check. */
#include <errno.h>
#include <poll.h>
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

#include "common/mem.h"
#include "proto/link.h"
#include "proto/link_fixture.h"
#include "proto/zwatch.h"

#define GUARD_MS 10000
#define BURST    10000

struct fx {
    char dir[LINK_FX_DIR];     /* private temporary directory */
    char ep[LINK_FX_EP];       /* router endpoint */
    uv_loop_t loop;            /* the test's loop */
    uv_timer_t guard;          /* stops a wait that would hang */
    bool guard_fired;          /* the guard timer expired: the test failed */
    uv_timer_t timer;          /* a test's own timer */
    link_t *router;            /* master side */
    link_t *dealer;            /* node side, identity "n1" */
    void *raw;                 /* a hostile raw socket, if any */
    zwatch_t w;                /* the watcher under test */
    bool w_init;               /* w was initialised */
    zwatch_t w2;               /* a second watcher (ping-pong) */
    bool w2_init;              /* w2 was initialised */
    unsigned pongs;            /* replies seen by the dealer watcher */
    unsigned round;            /* reconnect round (test_reconnect_in_loop) */
    unsigned closed;           /* close callbacks seen */
    unsigned received;         /* messages seen by the callback */
    uint32_t next_seq;         /* the sequence number expected next (burst) */
    bool in_order;             /* every numbered message came in order */
    bool close_in_cb;          /* the callback closes the watcher */
    char peer[LINK_PEER_SIZE]; /* peer of the last message */
    char last[64];             /* the last message, NUL-terminated if it fit */
};

static void
guard_cb(uv_timer_t *t)
{
    struct fx *f = container_of(t, struct fx, guard);
    f->guard_fired = true;
    uv_stop(t->loop);
}

static void
on_closed(zwatch_t *w)
{
    struct fx *f = container_of(w, struct fx, w);
    f->closed++;
}

static void
msg_cb(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    struct fx *f = userdata;

    assert_ptr_equal(w, &f->w);
    f->received++;
    snprintf(f->peer, sizeof(f->peer), "%s", peer);
    if (len == sizeof(uint32_t)) {
        uint32_t seq;
        memcpy(&seq, buf, sizeof(seq));
        if (seq != f->next_seq)
            f->in_order = false;
        f->next_seq = seq + 1;
    }
    if (len < sizeof(f->last)) {
        memcpy(f->last, buf, len);
        f->last[len] = '\0';
    }
    if (f->close_in_cb)
        zwatch_close(w, on_closed);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    fx_open_pair("zwatch", f->dir, f->ep, &f->router, &f->dealer);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->guard), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->timer), 0);
    f->in_order = true;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    if (f->w_init)
        zwatch_close(&f->w, on_closed);
    if (f->w2_init)
        zwatch_close(&f->w2, NULL);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_close((uv_handle_t *)&f->timer, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* Every handle the watcher opened is closed again. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->w_init)
        assert_int_equal(f->closed, 1);
    link_socket_close(&f->raw);
    fx_close_pair(f->dir, &f->router, &f->dealer);
    free(f);
    return 0;
}

/* Runs the loop one iteration at a time until *count reaches want or the
 * guard fires. */
static void
run_until(struct fx *f, const unsigned *count, unsigned want)
{
    f->guard_fired = false;
    uv_timer_start(&f->guard, guard_cb, GUARD_MS, 0);
    while (*count < want && !f->guard_fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    assert_false(f->guard_fired);
}

/* Sends from the (unwatched) dealer, running the loop while its queue is full
 * or the connection is not up yet, as the application would. */
static void
dealer_send(struct fx *f, const void *buf, size_t len)
{
    for (int i = 0; i < 100000; i++) {
        int r = link_send(f->dealer, NULL, buf, len);
        if (r == 0)
            return;
        assert_int_equal(r, -EAGAIN);
        zmq_poll(&(zmq_pollitem_t){.socket = link_zsocket(f->dealer), .events = ZMQ_POLLOUT}, 1, 1);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    fail_msg("the dealer never got to send");
}

static void
watch_router(struct fx *f)
{
    assert_int_equal(zwatch_init(&f->loop, &f->w, f->router, msg_cb, f), 0);
    f->w_init = true;
    /* Connect and check the watcher works at all. */
    dealer_send(f, "hi", 2);
    run_until(f, &f->received, 1);
    assert_string_equal(f->last, "hi");
    assert_string_equal(f->peer, "n1");
    f->received = 0;
}

/* A burst of N messages gives exactly N callbacks, in order. */
static void
test_burst(void **state)
{
    struct fx *f = *state;

    watch_router(f);
    for (uint32_t i = 0; i < BURST; i++)
        dealer_send(f, &i, sizeof(i));
    run_until(f, &f->received, BURST);
    /* Nothing more comes, however often the loop turns. */
    for (int i = 0; i < 100; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->received, BURST);
    assert_int_equal(f->next_seq, BURST);
    assert_true(f->in_order);
    assert_int_equal(f->w.n_received, BURST + 1);
    assert_int_equal(f->w.n_malformed, 0);
}

/* One loop iteration runs the check handle once: no iteration delivers more
 * than the budget, and waiting messages keep the loop from blocking. */
static void
test_budget(void **state)
{
    struct fx *f = *state;
    const unsigned budget = 16, n = 500;
    unsigned busy = 0;

    watch_router(f);
    zwatch_set_budget(&f->w, budget);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(link_send(f->dealer, NULL, &i, sizeof(i)), 0);

    f->guard_fired = false;
    uv_timer_start(&f->guard, guard_cb, GUARD_MS, 0);
    while (f->received < n && !f->guard_fired) {
        unsigned before = f->received;
        uv_run(&f->loop, UV_RUN_ONCE);
        assert_true(f->received - before <= budget);
        if (f->received > before)
            busy++;
    }
    uv_timer_stop(&f->guard);
    assert_false(f->guard_fired);
    assert_int_equal(f->received, n);
    assert_true(busy >= n / budget);
    assert_true(f->in_order);
}

/* The trap: the message for the watched dealer arrives, then a zmq_send on
 * that same dealer (from a timer, in the loop) processes libzmq's command
 * queue and consumes the ZMQ_FD edge. The fd never becomes readable again,
 * yet the message must be delivered. */
static void
trap_timer_cb(uv_timer_t *t)
{
    struct fx *f = container_of(t, struct fx, timer);
    struct pollfd pfd = {.fd = link_fd(f->dealer), .events = POLLIN};
    int i;

    assert_true(pfd.fd >= 0);
    assert_int_equal(link_send(f->router, "n1", "ping", 4), 0);
    /* Wait (bounded) for the arrival to signal the dealer's fd, without
     * touching the socket. */
    for (i = 0; i < 200; i++)
        if (poll(&pfd, 1, 50) == 1)
            break;
    assert_true(i < 200);

    /* libzmq processes commands in zmq_send at most once per ~1 ms of TSC
     * ticks (max_command_delay); step past that window so this send is one
     * that does, as a send in a busy agent will be. */
    uv_sleep(20);
    assert_int_equal(link_send(f->dealer, NULL, "pong", 4), 0);
    /* The construction holds: no edge left, yet a message waits. */
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_true(link_readable(f->dealer));
    assert_int_equal(poll(&pfd, 1, 0), 0);
}

static void
test_send_consumes_edge(void **state)
{
    struct fx *f = *state;
    char peer[LINK_PEER_SIZE];
    void *buf = NULL;
    size_t len = 0;

    assert_int_equal(zwatch_init(&f->loop, &f->w, f->dealer, msg_cb, f), 0);
    f->w_init = true;
    /* Connect: the router learns n1. */
    for (int i = 0; i < 200 && link_send(f->dealer, NULL, "hi", 2) != 0; i++)
        uv_sleep(50);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), 0);
    free(buf);
    /* Let the watcher settle: whatever edges there were are consumed. */
    for (int i = 0; i < 10; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->received, 0);
    /* An idle watcher stops its per-iteration handles: only the send's
     * touch (or the fd) can bring it back, which is what this test checks. */
    assert_false(f->w.hot);
    assert_false(uv_is_active((uv_handle_t *)&f->w.prepare));

    uv_timer_start(&f->timer, trap_timer_cb, 0, 0);
    run_until(f, &f->received, 1);
    assert_string_equal(f->last, "ping");
    assert_string_equal(f->peer, "");
    /* And the dealer's reply went out. */
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "pong", 4);
    free(buf);
}

/* Both ends watched in one loop, each callback answering at once: every send
 * inside a callback may eat the other watcher's edge. 1000 round trips. */
#define PINGS 1000

static void
ping_router_cb(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    struct fx *f = userdata;

    f->received++;
    assert_int_equal(link_send(f->router, peer, buf, len), 0);
}

static void
ping_dealer_cb(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    struct fx *f = userdata;
    uint32_t seq;

    assert_int_equal(len, sizeof(seq));
    memcpy(&seq, buf, sizeof(seq));
    if (seq != f->pongs)
        f->in_order = false;
    f->pongs++;
    seq++;
    if (seq < PINGS)
        assert_int_equal(link_send(f->dealer, NULL, &seq, sizeof(seq)), 0);
}

static void
test_ping_pong(void **state)
{
    struct fx *f = *state;
    uint32_t zero = 0;

    assert_int_equal(zwatch_init(&f->loop, &f->w, f->router, ping_router_cb, f), 0);
    f->w_init = true;
    assert_int_equal(zwatch_init(&f->loop, &f->w2, f->dealer, ping_dealer_cb, f), 0);
    f->w2_init = true;
    dealer_send(f, &zero, sizeof(zero));
    run_until(f, &f->pongs, PINGS);
    assert_int_equal(f->received, PINGS);
    assert_true(f->in_order);
}

/* link_reconnect on a watched dealer completes by the loop alone (the
 * watcher's prepare handle steps it): the node says something on its new
 * connection (the agent says hello), so the master learns the new routing
 * id, and the master, re-sending from a timer as it would for an
 * unacknowledged command, gets through again. */
static void
resend_cb(uv_timer_t *t)
{
    struct fx *f = container_of(t, struct fx, timer);
    char msg[16], peer[LINK_PEER_SIZE];
    void *buf = NULL;
    size_t len = 0;
    int r;

    (void)link_send(f->dealer, NULL, "hello", 5);
    while (link_recv(f->router, peer, sizeof(peer), &buf, &len) == 0) {
        free(buf);
        buf = NULL;
    }
    snprintf(msg, sizeof(msg), "again%u", f->round);
    r = link_send(f->router, "n1", msg, strlen(msg));

    assert_true(r == 0 || r == -EHOSTUNREACH || r == -EAGAIN);
}

static void
test_reconnect_in_loop(void **state)
{
    struct fx *f = *state;
    char peer[LINK_PEER_SIZE];
    void *buf = NULL;
    size_t len = 0;

    assert_int_equal(zwatch_init(&f->loop, &f->w, f->dealer, msg_cb, f), 0);
    f->w_init = true;
    dealer_send(f, "hi", 2);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), 0);
    free(buf);

    /* Whether the old connection is still draining when link_reconnect
     * returns depends on libzmq's I/O thread; several rounds make it likely
     * that the loop has to finish the job at least once. */
    for (f->round = 1; f->round <= 5; f->round++) {
        char want[16];

        snprintf(want, sizeof(want), "again%u", f->round);
        assert_int_equal(link_reconnect(f->dealer), 0);
        uv_timer_start(&f->timer, resend_cb, 0, 20);
        /* Copies from the previous round may still come first. */
        for (int i = 0; i < 1000 && strcmp(f->last, want) != 0; i++)
            run_until(f, &f->received, f->received + 1);
        uv_timer_stop(&f->timer);
        assert_string_equal(f->last, want);
        /* "again" may have come over the old connection while it drained:
         * the dealer sends once the new one is up (-EAGAIN until then). */
        dealer_send(f, "back", 4);
        do {
            assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), 0);
            free(buf);
        } while (len != 4);
        assert_string_equal(peer, "n1");
    }
}

/* A callback may close the watcher: no further callback, and the messages
 * after it stay in the socket. */
static void
test_close_in_callback(void **state)
{
    struct fx *f = *state;
    void *buf;
    size_t len;
    unsigned left = 0;
    char peer[LINK_PEER_SIZE];

    watch_router(f);
    f->close_in_cb = true;
    for (uint32_t i = 0; i < 10; i++)
        dealer_send(f, &i, sizeof(i));
    run_until(f, &f->closed, 1);
    assert_int_equal(f->received, 1);
    f->w_init = false; /* already closed */
    f->closed = 0;
    while (left < 9 && recv_wait(f->router, peer, sizeof(peer), &buf, &len) == 0) {
        free(buf);
        left++;
    }
    assert_int_equal(left, 9);
}

/* A stopped watcher delivers nothing though messages wait; started again, it
 * delivers them. */
static void
test_stop_start(void **state)
{
    struct fx *f = *state;

    watch_router(f);
    assert_int_equal(zwatch_stop(&f->w), 0);
    for (uint32_t i = 0; i < 3; i++)
        dealer_send(f, &i, sizeof(i));
    for (int i = 0; i < 200 && !link_readable(f->router); i++)
        uv_sleep(20);
    assert_true(link_readable(f->router));
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->received, 0);
    assert_int_equal(zwatch_start(&f->w), 0);
    run_until(f, &f->received, 3);
    assert_true(f->in_order);
}

/* Malformed messages are counted and dropped; the callback never sees them. */
static void
test_malformed(void **state)
{
    struct fx *f = *state;
    int on = 1;

    watch_router(f);
    f->raw = link_socket(ZMQ_DEALER);
    assert_non_null(f->raw);
    assert_int_equal(zmq_setsockopt(f->raw, ZMQ_ROUTING_ID, "evil", 4), 0);
    assert_int_equal(zmq_setsockopt(f->raw, ZMQ_IMMEDIATE, &on, sizeof(on)), 0);
    assert_int_equal(zmq_connect(f->raw, f->ep), 0);
    assert_int_equal(send_abc(f->raw), 0);
    assert_int_equal(send_str(f->raw, "ok"), 0);
    run_until(f, &f->received, 1);
    assert_string_equal(f->last, "ok");
    assert_string_equal(f->peer, "evil");
    assert_int_equal(f->w.n_malformed, 1);
}

/* Closing releases every handle (teardown checks uv_loop_close), once. */
static void
test_close(void **state)
{
    struct fx *f = *state;
    zwatch_t other;

    assert_int_equal(zwatch_init(&f->loop, &f->w, f->router, msg_cb, f), 0);
    /* One watcher per socket: libuv refuses a second poll on the same fd. */
    assert_int_equal(zwatch_init(&f->loop, &other, f->router, msg_cb, f), UV_EEXIST);
    assert_int_equal(zwatch_init(&f->loop, &other, NULL, msg_cb, f), -EINVAL);
    zwatch_close(&f->w, on_closed);
    zwatch_close(&f->w, on_closed);
    assert_int_equal(zwatch_start(&f->w), -EINVAL);
    assert_int_equal(zwatch_stop(&f->w), -EINVAL);
    run_until(f, &f->closed, 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->closed, 1);
    f->closed = 0;
    f->w_init = false;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_consumes_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_in_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
