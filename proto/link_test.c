/* Tests for proto/link: the ZeroMQ transport of raw frames.
 *
 * Every test uses ipc:// endpoints in its own temporary directory. Waits are
 * bounded loops (LINK_TEST_TRIES polls of 50 ms) that only guard against a
 * hang; nothing asserts how long anything takes. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <zmq.h>

#include "proto/keys.h"
#include "proto/link.h"
#include "proto/link_fixture.h"
#include "proto/msg.h"
#include "proto/zap.h"

struct fixture {
    char dir[LINK_FX_DIR]; /* private temporary directory for the sockets */
    char ep[LINK_FX_EP];   /* the router's endpoint */
    char ep2[LINK_FX_EP];  /* a second endpoint for raw routers */
    link_t *router;        /* the master side */
    link_t *dealer;        /* the node side, identity "n1" */
    void *raw;             /* a hostile raw socket, if the test makes one */
    uint8_t *big;          /* PROTO_MAX_FRAME + 1 bytes */
};

static int
setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    fx_open_pair("link", f->dir, f->ep, &f->router, &f->dealer);
    snprintf(f->ep2, sizeof(f->ep2), "ipc://%s/raw", f->dir);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    char path[200];

    link_socket_close(&f->raw);
    free(f->big);
    snprintf(path, sizeof(path), "%s/raw", f->dir);
    unlink(path);
    fx_close_pair(f->dir, &f->router, &f->dealer);
    assert_null(f->router);
    free(f);
    return 0;
}

/* Sends want from d until the router delivers it from want_peer, as an
 * application re-sending what is unacknowledged would: whatever was handed
 * to a connection that then went away is lost. Other messages (and drops)
 * on the way are skipped. */
static void
resend_until(link_t *d, link_t *router, const char *want_peer, const char *want)
{
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        char peer[LINK_PEER_SIZE];
        void *buf = NULL;
        size_t len = 0;
        int r;

        (void)link_send(d, NULL, want, strlen(want));
        wait_for(link_zsocket(router), ZMQ_POLLIN);
        while ((r = link_recv(router, peer, sizeof(peer), &buf, &len)) != -EAGAIN) {
            bool match = r == 0 && !strcmp(peer, want_peer) && len == strlen(want) &&
                         !memcmp(buf, want, len);
            free(buf);
            buf = NULL;
            if (match)
                return;
        }
    }
    fail();
}

/* A raw router learns a dealer's routing id from a message of it: the
 * dealer says "hi" until the raw router has it. */
static size_t
raw_learn_id(void *raw, link_t *d, char *id, size_t n)
{
    void *h = raw;

    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        char body[16];
        (void)link_send(d, NULL, "hi", 2);
        wait_for(h, ZMQ_POLLIN);
        int len = zmq_recv(h, id, n, ZMQ_DONTWAIT);
        if (len > 0) {
            assert_true(zmq_recv(h, body, sizeof(body), 0) >= 0);
            return (size_t)len;
        }
    }
    fail();
    return 0;
}

static void
test_round_trip(void **state)
{
    struct fixture *f = *state;
    char peer[LINK_PEER_SIZE] = "junk";
    void *buf = NULL;
    size_t len = 1;

    assert_int_equal(send_wait(f->dealer, NULL, "hello", 5), 0);
    /* The router learns the dealer's identity from the connection. */
    expect_msg(f->router, "n1", "hello");
    assert_int_equal(link_send(f->router, "n1", "welcome", 7), 0);
    expect_msg(f->dealer, "", "welcome");

    /* An empty frame is a frame; judging it is the codec's business. */
    assert_int_equal(link_send(f->dealer, NULL, "", 0), 0);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), 0);
    assert_string_equal(peer, "n1");
    assert_int_equal(len, 0);
    assert_non_null(buf);
    free(buf);

    /* A dealer may pass no peer buffer. */
    assert_int_equal(link_send(f->router, "n1", "x", 1), 0);
    assert_int_equal(recv_wait(f->dealer, NULL, 0, &buf, &len), 0);
    assert_int_equal(len, 1);
    free(buf);

    assert_int_equal(link_recv(f->dealer, NULL, 0, &buf, &len), -EAGAIN);
    assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
    assert_false(link_readable(f->router));
    assert_true(link_fd(f->router) >= 0);
}

static void
test_send_errors(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(send_wait(f->dealer, NULL, "hello", 5), 0);
    expect_msg(f->router, "n1", "hello");

    assert_int_equal(link_send(f->router, "nobody", "x", 1), -EHOSTUNREACH);
    assert_int_equal(link_send(f->router, NULL, "x", 1), -EINVAL);
    assert_int_equal(link_send(f->router, "", "x", 1), -EINVAL);
    assert_int_equal(link_send(f->router, "bad id", "x", 1), -EINVAL);
    assert_int_equal(link_send(f->dealer, "n1", "x", 1), -EINVAL);
    assert_int_equal(link_send(f->dealer, NULL, NULL, 1), -EINVAL);

    f->big = calloc(1, PROTO_MAX_FRAME + 1);
    assert_non_null(f->big);
    assert_int_equal(link_send(f->dealer, NULL, f->big, PROTO_MAX_FRAME + 1), -EMSGSIZE);
    assert_int_equal(link_send(f->router, "n1", f->big, PROTO_MAX_FRAME + 1), -EMSGSIZE);
    /* The largest frame allowed goes through whole. */
    f->big[PROTO_MAX_FRAME - 1] = 0x5a;
    assert_int_equal(link_send(f->router, "n1", f->big, PROTO_MAX_FRAME), 0);
    {
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(recv_wait(f->dealer, NULL, 0, &buf, &len), 0);
        assert_int_equal(len, PROTO_MAX_FRAME);
        assert_int_equal(((uint8_t *)buf)[PROTO_MAX_FRAME - 1], 0x5a);
        free(buf);
    }
}

static void
test_constructor_errors(void **state)
{
    struct fixture *f = *state;
    char long_id[LINK_IDENTITY_MAX + 2];
    int err = 0;

    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_null(link_new_dealer(f->ep, "", &err));
    assert_int_equal(err, -EINVAL);
    err = 0;
    assert_null(link_new_dealer(f->ep, "with space", &err));
    assert_int_equal(err, -EINVAL);
    err = 0;
    assert_null(link_new_dealer(f->ep, long_id, &err));
    assert_int_equal(err, -EINVAL);
    err = 0;
    assert_null(link_new_dealer(NULL, "n9", &err));
    assert_int_equal(err, -EINVAL);
    err = 0;
    assert_null(link_new_dealer("bogus://x", "n9", &err));
    assert_true(err < 0);
    /* A second master on the same TCP port is refused. (ipc:// would not be:
     * libzmq unlinks and takes over an existing socket path.) */
    {
        char ep[256];
        size_t sz = sizeof(ep);
        link_t *r1 = link_new_router("tcp://127.0.0.1:*", &err);
        assert_non_null(r1);
        assert_int_equal(zmq_getsockopt(link_zsocket(r1), ZMQ_LAST_ENDPOINT, ep, &sz), 0);
        err = 0;
        assert_null(link_new_router(ep, &err));
        assert_int_equal(err, -EADDRINUSE);
        link_destroy(&r1);
    }
    /* err may be NULL. */
    assert_null(link_new_router(NULL, NULL));

    assert_null(link_new_dealer(f->ep, "a/b", &err));
    assert_int_equal(err, -EINVAL);
    long_id[LINK_NAME_MAX + 1] = '\0';
    assert_null(link_new_dealer(f->ep, long_id, &err));
    long_id[LINK_NAME_MAX] = '\0';
    link_t *l = link_new_dealer(f->ep, long_id, &err);
    assert_non_null(l);
    link_destroy(&l);
    assert_null(l);
    link_destroy(&l);
    link_destroy(NULL);
}

/* IMMEDIATE: with no peer there is no queue, so the application hears about
 * the outage instead of filling a queue for a dead master. */
static void
test_no_queue_without_peer(void **state)
{
    struct fixture *f = *state;
    int err = 0;
    char ep[200];

    snprintf(ep, sizeof(ep), "ipc://%s/nobody", f->dir);
    link_t *l = link_new_dealer(ep, "n5", &err);
    assert_non_null(l);
    assert_int_equal(link_send(l, NULL, "x", 1), -EAGAIN);
    link_destroy(&l);
}

/* The master goes away and comes back on the same endpoint: sends fail with
 * -EAGAIN meanwhile, and the dealer reconnects by itself. */
static void
test_reconnect(void **state)
{
    struct fixture *f = *state;
    int r = 0, err = 0;

    assert_int_equal(send_wait(f->dealer, NULL, "one", 3), 0);
    expect_msg(f->router, "n1", "one");
    link_destroy(&f->router);

    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        r = link_send(f->dealer, NULL, "lost", 4);
        if (r == -EAGAIN)
            break;
        usleep(50000);
    }
    assert_int_equal(r, -EAGAIN);

    f->router = link_new_router(f->ep, &err);
    assert_non_null(f->router);
    assert_int_equal(send_wait(f->dealer, NULL, "two", 3), 0);
    expect_msg(f->router, "n1", "two");
}

/* link_reconnect on a healthy dealer: sends are refused (-EAGAIN) until the
 * old connection is gone and the new one is up, so nothing is handed to the
 * dying connection and lost, and the link works as before. */
static void
test_reconnect_healthy(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(send_wait(f->dealer, NULL, "one", 3), 0);
    expect_msg(f->router, "n1", "one");
    assert_int_equal(link_reconnect(f->dealer), 0);
    /* Refused until the new connection is up; on a fast machine it may be up
     * already, and then what is sent arrives. */
    int r = link_send(f->dealer, NULL, "early", 5);
    assert_true(r == -EAGAIN || r == 0);
    if (r == 0)
        expect_msg(f->router, "n1", "early");
    assert_int_equal(send_wait(f->dealer, NULL, "two", 3), 0);
    expect_msg(f->router, "n1", "two");
    assert_int_equal(send_wait(f->router, "n1", "back", 4), 0);
    expect_msg(f->dealer, "", "back");
    /* Twice in a row is fine too. */
    assert_int_equal(link_reconnect(f->dealer), 0);
    assert_int_equal(link_reconnect(f->dealer), 0);
    assert_int_equal(send_wait(f->dealer, NULL, "three", 5), 0);
    expect_msg(f->router, "n1", "three");
}

/* A peer sending a frame over ZMQ_MAXMSGSIZE loses its connection (never
 * delivered, never an error to the application); the peer reconnects and its
 * next message arrives. Like the application would, the peer re-sends until
 * it gets through, because whatever was in flight with the big frame is lost. */
static void
test_oversize_to_router(void **state)
{
    struct fixture *f = *state;
    void *raw;
    bool got = false;

    f->big = calloc(1, PROTO_MAX_FRAME + 1);
    assert_non_null(f->big);
    f->raw = raw_socket(ZMQ_DEALER, "big", f->ep, false);
    raw = f->raw;
    assert_int_equal(zmq_send(raw, f->big, PROTO_MAX_FRAME + 1, 0), PROTO_MAX_FRAME + 1);

    for (int i = 0; i < LINK_TEST_TRIES && !got; i++) {
        char peer[LINK_PEER_SIZE];
        void *buf = NULL;
        size_t len = 0;
        int r;

        assert_int_equal(zmq_send(raw, "after", 5, ZMQ_DONTWAIT), 5);
        wait_for(link_zsocket(f->router), ZMQ_POLLIN);
        while ((r = link_recv(f->router, peer, sizeof(peer), &buf, &len)) == 0) {
            assert_string_equal(peer, "big");
            assert_int_equal(len, 5);
            assert_memory_equal(buf, "after", 5);
            free(buf);
            got = true;
        }
        assert_int_equal(r, -EAGAIN);
    }
    assert_true(got);
    /* The honest dealer was not disturbed. */
    assert_int_equal(send_wait(f->dealer, NULL, "fine", 4), 0);
    expect_msg(f->router, "n1", "fine");
}

/* The same from the master's side: the node drops the connection on an
 * oversized frame instead of allocating it. libzmq treats this as a protocol
 * error and does not reconnect by itself (see link_reconnect); after
 * link_reconnect the next message from the master arrives. */
static void
test_oversize_to_dealer(void **state)
{
    struct fixture *f = *state;
    char mon_ep[64];
    void *mon;
    void *raw;
    link_t *d;
    int err = 0, r = -1;
    bool got = false, disconnected = false;

    (void)r;

    f->big = calloc(1, PROTO_MAX_FRAME + 1);
    assert_non_null(f->big);
    f->raw = raw_socket(ZMQ_ROUTER, NULL, f->ep2, true);
    raw = f->raw;
    assert_int_equal(zmq_setsockopt(raw, ZMQ_ROUTER_HANDOVER, &(int){1}, sizeof(int)), 0);
    d = link_new_dealer(f->ep2, "n2", &err);
    assert_non_null(d);
    assert_int_equal(link_reconnect(f->router), -EINVAL);
    snprintf(mon_ep, sizeof(mon_ep), "inproc://link-test-mon-%d", (int)getpid());
    mon = monitor_disconnect(link_zsocket(d), mon_ep);

    /* The raw router knows n2's routing id once n2 has said something. */
    char id[LINK_PEER_SIZE];
    size_t idlen = raw_learn_id(f->raw, d, id, sizeof(id));
    assert_int_equal(zmq_send(raw, id, idlen, ZMQ_SNDMORE), (int)idlen);
    assert_int_equal(zmq_send(raw, f->big, PROTO_MAX_FRAME + 1, 0), PROTO_MAX_FRAME + 1);

    /* The dealer drops the connection: that is the only event monitored. */
    for (int i = 0; i < LINK_TEST_TRIES && !disconnected; i++) {
        char ev[64];
        wait_for(mon, ZMQ_POLLIN);
        /* An event is two frames: event number and value, then the endpoint. */
        if (zmq_recv(mon, ev, sizeof(ev), ZMQ_DONTWAIT) >= 0) {
            assert_int_equal(zmq_recv(mon, ev, sizeof(ev), 0) >= 0, 1);
            disconnected = true;
        }
    }
    assert_true(disconnected);
    assert_int_equal(link_recv(d, NULL, 0, &(void *){NULL}, &(size_t){0}), -EAGAIN);
    assert_int_equal(link_reconnect(d), 0);
    /* A new connection has a new routing id (messages of the old one may
     * still be queued at the raw router first). */
    char id2[LINK_PEER_SIZE];
    size_t id2len = 0;
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        id2len = raw_learn_id(f->raw, d, id2, sizeof(id2));
        if (id2len != idlen || memcmp(id, id2, idlen) != 0)
            break;
    }
    assert_true(id2len == idlen && memcmp(id, id2, 3) == 0 && memcmp(id, id2, idlen) != 0);

    for (int i = 0; i < LINK_TEST_TRIES && !got; i++) {
        void *buf = NULL;
        size_t len = 0;

        if (zmq_send(raw, id2, id2len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)id2len)
            assert_int_equal(zmq_send(raw, "after", 5, 0), 5);
        wait_for(link_zsocket(d), ZMQ_POLLIN);
        while ((r = link_recv(d, NULL, 0, &buf, &len)) == 0) {
            assert_int_equal(len, 5);
            assert_memory_equal(buf, "after", 5);
            free(buf);
            got = true;
        }
        assert_int_equal(r, -EAGAIN);
    }
    assert_true(got);
    /* Monitoring stops before its reader goes: libzmq 4.3.4 leaks an
     * event it cannot deliver (the endpoint frame of a handshake
     * failure or disconnect that comes after, 75 bytes under ASan). */
    assert_int_equal(zmq_socket_monitor(link_zsocket(d), NULL, 0), 0);
    link_socket_close(&mon);
    link_destroy(&d);
}

/* A hostile peer sends multipart messages a node never sends: each is read
 * whole and dropped as -EBADMSG, and the link keeps working. */
static void
test_hostile_multipart_to_router(void **state)
{
    struct fixture *f = *state;
    char peer[LINK_PEER_SIZE];
    void *buf = NULL;
    size_t len = 0;
    void *raw;

    f->raw = raw_socket(ZMQ_DEALER, "evil", f->ep, false);
    raw = f->raw;
    assert_int_equal(send_abc(f->raw), 0);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), -EBADMSG);
    /* REQ-style: an empty delimiter before the body. */
    assert_int_equal(zmq_send(raw, "", 0, ZMQ_SNDMORE), 0);
    assert_int_equal(zmq_send(raw, "x", 1, 0), 1);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), -EBADMSG);
    /* Many parts. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(zmq_send(raw, "p", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(raw, "p", 1, 0), 1);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), -EBADMSG);

    assert_int_equal(zmq_send(raw, "ok", 2, 0), 2);
    expect_msg(f->router, "evil", "ok");
    assert_int_equal(send_wait(f->dealer, NULL, "n1 too", 6), 0);
    expect_msg(f->router, "n1", "n1 too");
    assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
}

static void
test_hostile_multipart_to_dealer(void **state)
{
    struct fixture *f = *state;
    void *buf = NULL;
    size_t len = 0;
    link_t *d;
    int err = 0;

    f->raw = raw_socket(ZMQ_ROUTER, NULL, f->ep2, true);
    d = link_new_dealer(f->ep2, "n3", &err);
    assert_non_null(d);
    char id[LINK_PEER_SIZE];
    size_t idlen = raw_learn_id(f->raw, d, id, sizeof(id));
    void *raw = f->raw;
    assert_int_equal(zmq_send(raw, id, idlen, ZMQ_SNDMORE), (int)idlen);
    assert_int_equal(zmq_send(raw, "a", 1, ZMQ_SNDMORE), 1);
    assert_int_equal(zmq_send(raw, "b", 1, 0), 1);
    assert_int_equal(recv_wait(d, NULL, 0, &buf, &len), -EBADMSG);
    assert_int_equal(zmq_send(raw, id, idlen, ZMQ_SNDMORE), (int)idlen);
    assert_int_equal(zmq_send(raw, "ok", 2, 0), 2);
    expect_msg(d, "", "ok");
    link_destroy(&d);
}

/* Identities the router refuses: none (libzmq's generated binary id), not
 * printable, or longer than the caller's buffer. */
static void
test_bad_identities(void **state)
{
    struct fixture *f = *state;
    char peer[LINK_PEER_SIZE];
    char small[16];
    char long_id[201];
    void *buf = NULL;
    size_t len = 0;

    f->raw = raw_socket(ZMQ_DEALER, NULL, f->ep, false);
    assert_int_equal(send_str(f->raw, "anon"), 0);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), -EBADMSG);
    link_socket_close(&f->raw);

    f->raw = raw_socket(ZMQ_DEALER, "tab\there", f->ep, false);
    assert_int_equal(send_str(f->raw, "tab"), 0);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), -EBADMSG);
    link_socket_close(&f->raw);

    memset(long_id, 'L', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    f->raw = raw_socket(ZMQ_DEALER, long_id, f->ep, false);
    assert_int_equal(send_str(f->raw, "long"), 0);
    assert_int_equal(recv_wait(f->router, small, sizeof(small), &buf, &len), -EBADMSG);
    assert_int_equal(send_str(f->raw, "long"), 0);
    expect_msg(f->router, long_id, "long");
}

/* Waits (bounded) for a monitor event among the bits of want; other events
 * are skipped. */
static bool
wait_event(void *mon, uint16_t want)
{
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        uint8_t ev[6];
        char ep[256];
        uint16_t num;

        wait_for(mon, ZMQ_POLLIN);
        while (zmq_recv(mon, ev, sizeof(ev), ZMQ_DONTWAIT) == sizeof(ev)) {
            assert_true(zmq_recv(mon, ep, sizeof(ep), 0) >= 0);
            memcpy(&num, ev, sizeof(num));
            if (num & want)
                return true;
        }
    }
    return false;
}

/* CurveZMQ with our ZAP handler: a listed key gets in and is known by the
 * name the handler gives it, whatever its routing id says; an unlisted key
 * and a plaintext client are refused at the handshake and never get a
 * message through; a key denied later cannot connect again. */
static void
test_curve(void **state)
{
    struct fixture *f = *state;
    char mon_ep[64], peer[LINK_PEER_SIZE];
    struct keys_file server = {0}, client = {0}, other = {0};
    link_t *router, *good, *bad, *plain;
    void *mon;
    void *buf = NULL;
    size_t len = 0;
    int err = 0;

    assert_int_equal(keys_generate(&server), 0);
    assert_int_equal(keys_generate(&client), 0);
    assert_int_equal(keys_generate(&other), 0);
    struct link_keys skeys = {server.public_key, server.secret_key, NULL};
    struct link_keys ckeys = {client.public_key, client.secret_key, server.public_key};
    struct link_keys okeys = {other.public_key, other.secret_key, server.public_key};
    struct link_keys broken = {"short", client.secret_key, server.public_key};

    /* No ZAP handler: no curve router (libzmq would let everyone in). */
    assert_false(zap_running());
    assert_null(link_new_router_curve(f->ep2, &skeys, &err));
    assert_int_equal(err, -ENOTCONN);
    zap_t *zap = zap_new(&err);
    assert_non_null(zap);
    assert_true(zap_running());
    assert_int_equal(zap_allow(zap, client.public_key, "c1"), 0);
    assert_int_equal(zap_allow(zap, "not a key", "c1"), -EINVAL);
    assert_int_equal(zap_allow(zap, other.public_key, "has space"), -EINVAL);
    assert_int_equal(zap_count(zap), 1);

    assert_null(link_new_dealer_curve(f->ep2, "c1", &broken, &err));
    assert_int_equal(err, -EINVAL);
    router = link_new_router_curve(f->ep2, &skeys, &err);
    assert_non_null(router);
    assert_true(link_is_curve(router));
    snprintf(mon_ep, sizeof(mon_ep), "inproc://link-test-curve-%d", (int)getpid());
    assert_int_equal(zmq_socket_monitor(link_zsocket(router), mon_ep,
                                        ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL),
                     0);
    mon = link_socket(ZMQ_PAIR);
    assert_non_null(mon);
    assert_int_equal(zmq_connect(mon, mon_ep), 0);

    bad = link_new_dealer_curve(f->ep2, "c1", &okeys, &err);
    assert_non_null(bad);
    assert_true(wait_event(mon, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH));
    assert_int_equal(link_send(bad, NULL, "let me in", 9), -EAGAIN);
    for (int i = 0; i < LINK_TEST_TRIES && !link_refused(bad); i++)
        usleep(50000);
    assert_true(link_refused(bad));

    plain = link_new_dealer(f->ep2, "c1", &err);
    assert_non_null(plain);
    /* The router reads the mismatched greeting (a protocol failure), unless
     * the client, which sees the mismatch too, has already reset the
     * connection: on a loaded host that race ends as a failure without
     * detail. Either way the handshake failed. */
    assert_true(wait_event(mon, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL));
    assert_int_equal(link_send(plain, NULL, "let me in", 9), -EAGAIN);
    assert_false(link_refused(plain));

    /* The routing id says "someone"; the key says c1, and the key wins. */
    good = link_new_dealer_curve(f->ep2, "someone", &ckeys, &err);
    assert_non_null(good);
    assert_int_equal(send_wait(good, NULL, "secret", 6), 0);
    assert_int_equal(recv_wait(router, peer, sizeof(peer), &buf, &len), 0);
    assert_string_equal(peer, "c1");
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "secret", 6);
    free(buf);
    assert_false(link_refused(good));
    assert_int_equal(link_send(router, "c1", "reply", 5), 0);
    assert_int_equal(link_send(router, "someone", "reply", 5), -EHOSTUNREACH);
    assert_int_equal(recv_wait(good, NULL, 0, &buf, &len), 0);
    free(buf);
    assert_int_equal(link_recv(router, peer, sizeof(peer), &buf, &len), -EAGAIN);

    /* Denied from now on: the next handshake of that key is refused. */
    assert_int_equal(zap_deny(zap, client.public_key), 0);
    assert_int_equal(zap_deny(zap, client.public_key), -ENOENT);
    assert_int_equal(link_reconnect(good), 0);
    for (int i = 0; i < LINK_TEST_TRIES && !link_refused(good); i++) {
        assert_int_equal(link_send(good, NULL, "x", 1), -EAGAIN);
        usleep(50000);
    }
    assert_true(link_refused(good));
    assert_true(wait_event(mon, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH));
    struct zap_stats st;
    zap_get_stats(zap, &st);
    assert_int_equal(st.allowed, 1);
    assert_true(st.denied >= 2);

    /* Monitoring stops before its reader goes: libzmq 4.3.4 leaks an
     * event it cannot deliver (the endpoint frame of a handshake
     * failure or disconnect that comes after, 75 bytes under ASan). */
    assert_int_equal(zmq_socket_monitor(link_zsocket(router), NULL, 0), 0);
    link_socket_close(&mon);
    link_destroy(&good);
    link_destroy(&bad);
    link_destroy(&plain);
    link_destroy(&router);
    zap_destroy(&zap);
    assert_null(zap);
    assert_false(zap_running());
}

/* A dealer's routing id is its name and a random part, new on every
 * link_reconnect; the plaintext router names the peer by the part before
 * the '/'. */
static void
test_routing_id(void **state)
{
    struct fixture *f = *state;
    char id[LINK_PEER_SIZE], id2[LINK_PEER_SIZE];
    int err = 0;

    f->raw = raw_socket(ZMQ_ROUTER, NULL, f->ep2, true);
    link_t *d = link_new_dealer(f->ep2, "n7", &err);
    assert_non_null(d);
    size_t n = raw_learn_id(f->raw, d, id, sizeof(id));
    assert_int_equal(n, 3 + LINK_NONCE_LEN);
    assert_memory_equal(id, "n7/", 3);
    for (size_t i = 3; i < n; i++)
        assert_non_null(strchr("0123456789abcdef", id[i]));
    assert_int_equal(link_reconnect(d), 0);
    /* The first learn may have sent more than one "hi" before one arrived:
     * those still queued come under the old id. Read past them. */
    size_t n2 = 0;
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        n2 = raw_learn_id(f->raw, d, id2, sizeof(id2));
        if (n2 != n || memcmp(id, id2, n) != 0)
            break;
    }
    assert_int_equal(n2, n);
    assert_memory_not_equal(id, id2, n);
    link_destroy(&d);
}

/* The sequence that made libzmq 4.3.4 abort the master: a second connection
 * under the routing id of a live one. The router hands nothing over: the
 * first connection keeps its messages flowing both ways, and what comes
 * over the second is never delivered. (tests/integration/link_handover.sh
 * runs it against the real master for longer than the heartbeat timeouts.) */
static void
test_duplicate_routing_id(void **state)
{
    struct fixture *f = *state;
    void *first = raw_socket(ZMQ_DEALER, "dup/0123456789abcdef", f->ep, false);
    void *second = NULL;
    void *buf = NULL;
    size_t len = 0;
    char peer[LINK_PEER_SIZE];

    assert_int_equal(send_str(first, "one"), 0);
    expect_msg(f->router, "dup", "one");
    second = raw_socket(ZMQ_DEALER, "dup/0123456789abcdef", f->ep, false);
    for (int i = 0; i < 20; i++)
        assert_int_equal(send_str(second, "impostor"), 0);
    usleep(200000);
    assert_int_equal(send_str(first, "two"), 0);
    expect_msg(f->router, "dup", "two");
    assert_int_equal(link_send(f->router, "dup", "back", 4), 0);
    char got[16];
    int n = zmq_recv(first, got, sizeof(got) - 1, 0);
    assert_int_equal(n, 4);
    got[n] = '\0';
    assert_string_equal(got, "back");
    assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
    link_socket_close(&second);
    link_socket_close(&first);
}

/* link_backlog_ms: 0 while nothing waits; once messages wait unread, the
 * time since the link was last found empty, however many are read, until a
 * read finds it empty again. (What the master's liveness and re-sends are
 * judged by: a peer silent by now minus this is silent.) */
static void
test_backlog(void **state)
{
    struct fixture *f = *state;
    char peer[LINK_PEER_SIZE];
    void *buf = NULL;
    size_t len = 0;

    assert_int_equal(link_backlog_ms(f->router), 0);
    assert_int_equal(send_wait(f->dealer, NULL, "one", 3), 0);
    expect_msg(f->router, "n1", "one");
    assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
    /* "three" must wait when "two" is read, which nothing here can make
     * sure of: libzmq's threads bring it when they get to it (150 ms were
     * not always enough on a loaded machine, and reading "two" then found
     * the link empty, a backlog of 0 rightly). So the round is tried again
     * until it did (libzmq's own ZMQ_EVENTS tells), a few times at most. */
    bool waited = false;
    for (int round = 0; round < 10 && !waited; round++) {
        int events = 0;
        size_t sz = sizeof(events);
        assert_int_equal(link_send(f->dealer, NULL, "two", 3), 0);
        assert_int_equal(link_send(f->dealer, NULL, "three", 5), 0);
        for (int i = 0; i < LINK_TEST_TRIES && !link_readable(f->router); i++)
            wait_for(link_zsocket(f->router), ZMQ_POLLIN);
        usleep(150000);
        uint64_t b = link_backlog_ms(f->router);
        assert_true(b >= 150 && b < 10000);
        expect_msg(f->router, "n1", "two");
        assert_int_equal(zmq_getsockopt(link_zsocket(f->router), ZMQ_EVENTS, &events, &sz), 0);
        /* Reading some is not catching up. */
        waited = events & ZMQ_POLLIN;
        if (waited)
            assert_true(link_backlog_ms(f->router) >= b);
        expect_msg(f->router, "n1", "three");
        assert_int_equal(link_recv(f->router, peer, sizeof(peer), &buf, &len), -EAGAIN);
        assert_int_equal(link_backlog_ms(f->router), 0);
    }
    assert_true(waited);
    /* A dealer's link measures the same. */
    assert_int_equal(link_backlog_ms(f->dealer), 0);
}

/* link_kick shuts the connection a peer last spoke through; the dealer
 * reconnects by itself and its next message arrives over the new one. */
static void
test_kick(void **state)
{
    struct fixture *f = *state;
    struct link_stats st;

    assert_int_equal(link_kick(f->router, "n1"), -ENOENT);
    assert_int_equal(send_wait(f->dealer, NULL, "one", 3), 0);
    expect_msg(f->router, "n1", "one");
    assert_int_equal(link_kick(f->router, "n1"), 0);
    assert_int_equal(link_kick(f->dealer, "n1"), -EINVAL);
    resend_until(f->dealer, f->router, "n1", "two");
    link_get_stats(f->router, &st);
    assert_int_equal(st.kicked_asked, 1);
}

/* A denied peer's messages are dropped and its connection shut on its first
 * word; allowed again, it talks again. */
static void
test_deny(void **state)
{
    struct fixture *f = *state;
    char peer[LINK_PEER_SIZE];
    void *buf = NULL;
    size_t len = 0;
    struct link_stats st;

    assert_int_equal(send_wait(f->dealer, NULL, "one", 3), 0);
    expect_msg(f->router, "n1", "one");
    assert_int_equal(link_deny(f->router, "n1", true), 0);
    assert_int_equal(link_send(f->router, "n1", "x", 1), -EHOSTUNREACH);
    assert_int_equal(send_wait(f->dealer, NULL, "two", 3), 0);
    assert_int_equal(recv_wait(f->router, peer, sizeof(peer), &buf, &len), -EBADMSG);
    link_get_stats(f->router, &st);
    assert_int_equal(st.kicked_denied, 1);
    assert_int_equal(link_deny(f->router, "n1", false), 0);
    resend_until(f->dealer, f->router, "n1", "three");
}

/* A connection that sends more than LINK_FLOOD_MSGS messages within
 * LINK_FLOOD_MS is shut and the rest of what it queued is dropped unread;
 * the peer's next connection is served again. */
static void
test_flood(void **state)
{
    struct fixture *f = *state;
    void *raw;
    unsigned delivered = 0, total = LINK_FLOOD_MSGS + 5000;
    char peer[LINK_PEER_SIZE];
    struct link_stats st;

    f->raw = raw_socket(ZMQ_DEALER, "flood", f->ep, false);
    raw = f->raw;
    for (unsigned i = 0; i < total; i++)
        assert_int_equal(zmq_send(raw, "f", 1, 0), 1);
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        void *buf = NULL;
        size_t len = 0;
        int r;
        while ((r = link_recv(f->router, peer, sizeof(peer), &buf, &len)) != -EAGAIN) {
            if (r == 0) {
                delivered++;
                free(buf);
            }
        }
        link_get_stats(f->router, &st);
        if (st.dropped + delivered >= total)
            break;
        wait_for(link_zsocket(f->router), ZMQ_POLLIN);
    }
    link_get_stats(f->router, &st);
    assert_true(delivered <= LINK_FLOOD_MSGS);
    assert_int_equal(st.kicked_flood, 1);
    /* libzmq reconnects the raw dealer; a new connection is served. */
    for (int i = 0; i < LINK_TEST_TRIES; i++) {
        void *buf = NULL;
        size_t len = 0;
        (void)zmq_send(raw, "after", 5, ZMQ_DONTWAIT);
        wait_for(link_zsocket(f->router), ZMQ_POLLIN);
        if (link_recv(f->router, peer, sizeof(peer), &buf, &len) == 0 && len == 5) {
            free(buf);
            return;
        }
        free(buf);
    }
    fail();
}

/* The process's ZeroMQ context must not take SIGINT/SIGTERM from the program. */
static void
test_no_signal_handlers(void **state)
{
    struct sigaction sa;

    assert_int_equal(sigaction(SIGINT, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
    assert_int_equal(sigaction(SIGTERM, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constructor_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_queue_without_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_healthy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_to_router, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_multipart_to_router, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_multipart_to_dealer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_identities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routing_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_routing_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kick, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deny, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_signal_handlers, setup, teardown),
        /* Last: in about 1 run in 6, after a raw router's oversized frame
         * made the dealer drop its connection, the process's ZeroMQ
         * context stopped carrying new ipc connections (every later test
         * timed out). Not understood yet; a node meets such a frame only
         * from a master that breaks the protocol. */
        cmocka_unit_test_setup_teardown(test_oversize_to_dealer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
