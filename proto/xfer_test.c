/* Tests for the data channel (xfer.h) with real files and real ZeroMQ
 * sockets: a sparse image arrives whole, sparse and with the sender's digest;
 * a wrong secret is refused; a second pass sends only what changed (and
 * punches what became zeros); a link that drops a message resumes where the
 * receiver stands; a receiver restarted mid-pass picks up again; with
 * CurveZMQ keys both ends are pinned and a sender with another key is
 * refused before anything is written. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
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

#include "common/mem.h"
#include "proto/link.h"
#include "proto/xfer.h"

static char dir[64];
static char secret[2 * XFER_SECRET_LEN + 1];

static void
path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static void
fill_random(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16) | 1; /* never a zero chunk by accident */
    }
}

/* A 4 MiB + 1000 byte sparse image: data at chunk 0, 3 and the short tail,
 * zeros written at chunk 5, holes elsewhere. */
static int
make_image(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint8_t *buf = xmalloc(XFER_CHUNK);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 16 * XFER_CHUNK + 1000), 0);
    fill_random(buf, XFER_CHUNK, 1);
    assert_int_equal(pwrite(fd, buf, XFER_CHUNK, 0), XFER_CHUNK);
    fill_random(buf, XFER_CHUNK, 2);
    assert_int_equal(pwrite(fd, buf, XFER_CHUNK, 3 * XFER_CHUNK), XFER_CHUNK);
    fill_random(buf, 1000, 3);
    assert_int_equal(pwrite(fd, buf, 1000, 16 * XFER_CHUNK), 1000);
    memset(buf, 0, XFER_CHUNK);
    assert_int_equal(pwrite(fd, buf, XFER_CHUNK, 5 * XFER_CHUNK), XFER_CHUNK);
    free(buf);
    return fd;
}

static void
assert_same_file(const char *a, const char *b)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
    assert_int_equal(system(cmd), 0);
}

struct recv_fx {
    xfer_recv_t *r;                       /* the receiver */
    char endpoint[XFER_ENDPOINT_MAX + 1]; /* where it listens */
    char out[128];                        /* its file */
    char state[128];                      /* its state file */
};

static void
recv_start(struct recv_fx *x, const char *bind, bool fresh)
{
    struct xfer_recv_config c = {
        .bind = bind, .secret = secret, .path = x->out, .state = x->state, .fresh = fresh};

    assert_int_equal(xfer_recv_new(&c, NULL, NULL, &x->r, x->endpoint), 0);
}

static void
test_sparse_image_arrives_whole(void **state)
{
    struct recv_fx x = {0};
    char in[128], bind[160];
    uint8_t digest[XFER_HASH_LEN];
    struct xfer_stats st;
    struct xfer_recv_status rs;
    char err[256] = "";
    xfer_send_t *s = NULL;

    path_of(in, sizeof(in), "a.img");
    path_of(x.out, sizeof(x.out), "a.out");
    path_of(x.state, sizeof(x.state), "a.state");
    snprintf(bind, sizeof(bind), "ipc://%s/a.sock", dir);
    int fd = make_image(in);
    recv_start(&x, bind, true);
    assert_string_equal(x.endpoint, bind);
    assert_int_equal(xfer_send_new(x.endpoint, secret, NULL, &s), 0);
    int r = xfer_send_pass(s, fd, true, NULL, NULL, NULL, digest, &st, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    /* Chunks 0, 3 and the tail are sent; the written zeros are not. */
    assert_int_equal(st.sent, 2 * XFER_CHUNK + 1000);
    assert_int_equal(st.sessions, 1);
    xfer_recv_status(x.r, &rs);
    assert_true(rs.done);
    assert_memory_equal(rs.digest, digest, XFER_HASH_LEN);
    assert_same_file(in, x.out);
    struct stat sb;
    assert_int_equal(stat(x.out, &sb), 0);
    assert_true((uint64_t)sb.st_blocks * 512 < 4 * XFER_CHUNK); /* sparse */
    uint8_t again[XFER_HASH_LEN];
    assert_int_equal(xfer_file_digest(fd, again), 0);
    assert_memory_equal(again, digest, XFER_HASH_LEN);
    /* The state file says the same after the receiver is gone. */
    xfer_recv_destroy(&x.r);
    assert_int_equal(xfer_recv_load_state(x.state, &rs), 0);
    assert_true(rs.done && rs.offset == rs.size);
    assert_memory_equal(rs.digest, digest, XFER_HASH_LEN);
    xfer_send_destroy(&s);
    close(fd);
}

static void
test_wrong_secret_is_denied(void **state)
{
    struct recv_fx x = {0};
    char in[128], bind[160], other[2 * XFER_SECRET_LEN + 1], err[256] = "";
    uint8_t digest[XFER_HASH_LEN];
    xfer_send_t *s = NULL;

    path_of(in, sizeof(in), "b.img");
    path_of(x.out, sizeof(x.out), "b.out");
    snprintf(bind, sizeof(bind), "ipc://%s/b.sock", dir);
    int fd = make_image(in);
    recv_start(&x, bind, true);
    xfer_secret_new(other);
    assert_int_equal(xfer_send_new(x.endpoint, other, NULL, &s), 0);
    assert_int_equal(xfer_send_pass(s, fd, true, NULL, NULL, NULL, digest, NULL, err, sizeof(err)),
                     -EACCES);
    assert_non_null(strstr(err, "secret"));
    struct stat sb;
    assert_int_equal(stat(x.out, &sb), 0);
    assert_int_equal(sb.st_size, 0); /* nothing was written */
    xfer_send_destroy(&s);
    xfer_recv_destroy(&x.r);
    close(fd);
}

static void
test_second_pass_sends_the_delta(void **state)
{
    struct recv_fx x = {0};
    char in[128], bind[160], err[256] = "";
    uint8_t digest[XFER_HASH_LEN], buf[4096];
    struct xfer_stats st;
    xfer_send_t *s = NULL;

    path_of(in, sizeof(in), "c.img");
    path_of(x.out, sizeof(x.out), "c.out");
    path_of(x.state, sizeof(x.state), "c.state");
    snprintf(bind, sizeof(bind), "ipc://%s/c.sock", dir);
    int fd = make_image(in);
    recv_start(&x, bind, true);
    assert_int_equal(xfer_send_new(x.endpoint, secret, NULL, &s), 0);
    assert_int_equal(xfer_send_pass(s, fd, false, NULL, NULL, NULL, digest, &st, err, sizeof(err)),
                     0);
    /* Between the passes: one byte in chunk 3 changes, chunk 9 gets data,
     * chunk 0 becomes zeros. */
    assert_int_equal(pwrite(fd, "x", 1, 3 * XFER_CHUNK + 17), 1);
    fill_random(buf, sizeof(buf), 9);
    assert_int_equal(pwrite(fd, buf, sizeof(buf), 9 * XFER_CHUNK), sizeof(buf));
    uint8_t *zeros = xcalloc(1, XFER_CHUNK);
    assert_int_equal(pwrite(fd, zeros, XFER_CHUNK, 0), XFER_CHUNK);
    free(zeros);
    int r = xfer_send_pass(s, fd, true, NULL, NULL, NULL, digest, &st, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    assert_int_equal(st.pass, 2);
    assert_int_equal(st.sent, 2 * XFER_CHUNK); /* chunks 3 and 9; chunk 0 is punched */
    assert_same_file(in, x.out);
    xfer_send_destroy(&s);
    xfer_recv_destroy(&x.r);
    close(fd);
}

/* A relay between sender and receiver that loses one DATA message, as a
 * broken connection loses what was queued on it. */
struct relay {
    void *front;       /* ROUTER the sender connects to */
    void *back;        /* DEALER connected to the receiver */
    atomic_bool stop;  /* ends the thread */
    int forwarded;     /* DATA messages passed on */
    int drop_at;       /* the DATA message number lost */
    pthread_t thread;  /* runs relay_main */
    uint8_t peer[256]; /* the sender's routing id */
    size_t peer_len;   /* its length */
};

static void *
relay_main(void *arg)
{
    struct relay *y = arg;
    void *f = y->front, *b = y->back;

    while (!atomic_load(&y->stop)) {
        zmq_pollitem_t it[2] = {{.socket = f, .events = ZMQ_POLLIN},
                                {.socket = b, .events = ZMQ_POLLIN}};
        if (zmq_poll(it, 2, 100) <= 0)
            continue;
        if (it[0].revents & ZMQ_POLLIN) {
            /* The sender's routing id, then the message: passed on or lost. */
            int n = zmq_recv(f, y->peer, sizeof(y->peer), 0);
            assert_true(n > 0 && (size_t)n <= sizeof(y->peer));
            y->peer_len = (size_t)n;
            bool first = true, drop = false;
            for (int more = 1; more;) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                assert_true(zmq_msg_recv(&part, f, 0) >= 0);
                more = zmq_msg_more(&part);
                if (first) {
                    const uint8_t *hdr = zmq_msg_data(&part);
                    bool data = zmq_msg_size(&part) > 4 && hdr[4] == 4;
                    drop = data && ++y->forwarded == y->drop_at;
                    first = false;
                }
                if (drop)
                    zmq_msg_close(&part);
                else
                    assert_true(zmq_msg_send(&part, b, more ? ZMQ_SNDMORE : 0) >= 0);
            }
        }
        if (it[1].revents & ZMQ_POLLIN) {
            assert_true(zmq_send(f, y->peer, y->peer_len, ZMQ_SNDMORE) >= 0);
            for (int more = 1; more;) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                assert_true(zmq_msg_recv(&part, b, 0) >= 0);
                more = zmq_msg_more(&part);
                assert_true(zmq_msg_send(&part, f, more ? ZMQ_SNDMORE : 0) >= 0);
            }
        }
    }
    return NULL;
}

static void
test_dropped_message_resumes(void **state)
{
    struct recv_fx x = {0};
    struct relay y = {.drop_at = 2};
    char in[128], bind[160], front[160], err[256] = "";
    uint8_t digest[XFER_HASH_LEN];
    struct xfer_stats st;
    xfer_send_t *s = NULL;

    path_of(in, sizeof(in), "d.img");
    path_of(x.out, sizeof(x.out), "d.out");
    path_of(x.state, sizeof(x.state), "d.state");
    snprintf(bind, sizeof(bind), "ipc://%s/d.sock", dir);
    snprintf(front, sizeof(front), "ipc://%s/d-front.sock", dir);
    int fd = make_image(in);
    recv_start(&x, bind, true);
    y.front = link_socket(ZMQ_ROUTER);
    y.back = link_socket(ZMQ_DEALER);
    assert_non_null(y.front);
    assert_non_null(y.back);
    assert_int_equal(zmq_bind(y.front, front), 0);
    assert_int_equal(zmq_connect(y.back, x.endpoint), 0);
    pthread_create(&y.thread, NULL, relay_main, &y);
    assert_int_equal(xfer_send_new(front, secret, NULL, &s), 0);
    int r = xfer_send_pass(s, fd, true, NULL, NULL, NULL, digest, &st, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    assert_int_equal(st.sessions, 2);
    assert_int_equal(st.resumed, XFER_CHUNK); /* chunk 0 arrived before the loss */
    assert_same_file(in, x.out);
    atomic_store(&y.stop, true);
    pthread_join(y.thread, NULL);
    link_socket_close(&y.front);
    link_socket_close(&y.back);
    xfer_send_destroy(&s);
    xfer_recv_destroy(&x.r);
    close(fd);
}

/* The receiver goes away in the middle of a pass and comes back on the
 * same endpoint with its state file: the sender gets through. */
struct restart_ctx {
    struct recv_fx *x; /* the receiver to restart */
    char bind[160];    /* its endpoint */
    int calls;         /* progress callbacks seen */
};

static void
restart_midway(void *userdata, const struct xfer_stats *st)
{
    struct restart_ctx *c = userdata;

    (void)st;
    if (++c->calls == 1) {
        xfer_recv_destroy(&c->x->r);
        recv_start(c->x, c->bind, false);
    }
}

static void
test_receiver_restart_midway(void **state)
{
    struct recv_fx x = {0};
    struct restart_ctx c = {.x = &x};
    char in[128], err[256] = "";
    uint8_t digest[XFER_HASH_LEN];
    struct xfer_stats st;
    xfer_send_t *s = NULL;

    path_of(in, sizeof(in), "e.img");
    path_of(x.out, sizeof(x.out), "e.out");
    path_of(x.state, sizeof(x.state), "e.state");
    snprintf(c.bind, sizeof(c.bind), "ipc://%s/e.sock", dir);
    int fd = make_image(in);
    recv_start(&x, c.bind, true);
    assert_int_equal(xfer_send_new(x.endpoint, secret, NULL, &s), 0);
    int r = xfer_send_pass(s, fd, true, NULL, restart_midway, &c, digest, &st, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    assert_true(st.sessions >= 2);
    assert_same_file(in, x.out);
    xfer_send_destroy(&s);
    xfer_recv_destroy(&x.r);
    close(fd);
}

static int
setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/xfer-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir))
        return -1;
    assert_non_null(link_context_init());
    xfer_secret_new(secret);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Node key pairs for the CurveZMQ tests, Z85. */
struct pair {
    char pub[41]; /* public */
    char sec[41]; /* secret */
};

static void
pair_new(struct pair *p)
{
    assert_int_equal(zmq_curve_keypair(p->pub, p->sec), 0);
}

/* Both ends pinned: the receiver admits the sender's key, the sender checks
 * the receiver's; the image arrives whole over tcp. */
static void
test_curve_both_ends_pinned(void **state)
{
    struct recv_fx x = {0};
    struct pair rk, sk;
    char in[128], err[256] = "";
    uint8_t digest[XFER_HASH_LEN];
    struct xfer_recv_status rs;
    xfer_send_t *s = NULL;

    if (!zmq_has("curve"))
        skip();
    pair_new(&rk);
    pair_new(&sk);
    path_of(in, sizeof(in), "k.img");
    path_of(x.out, sizeof(x.out), "k.out");
    int fd = make_image(in);
    struct xfer_keys rkeys = {.public_key = rk.pub, .secret_key = rk.sec, .client_key = sk.pub};
    struct xfer_keys skeys = {.public_key = sk.pub, .secret_key = sk.sec, .server_key = rk.pub};
    struct xfer_recv_config c = {.bind = "tcp://127.0.0.1:*",
                                 .secret = secret,
                                 .keys = &rkeys,
                                 .path = x.out,
                                 .fresh = true};
    /* A curve receiver without the sender's key is refused: it would admit anyone. */
    rkeys.client_key = NULL;
    assert_int_equal(xfer_recv_new(&c, NULL, NULL, &x.r, x.endpoint), -EINVAL);
    rkeys.client_key = sk.pub;
    assert_int_equal(xfer_recv_new(&c, NULL, NULL, &x.r, x.endpoint), 0);
    assert_int_equal(xfer_send_new(x.endpoint, secret, &skeys, &s), 0);
    int r = xfer_send_pass(s, fd, true, NULL, NULL, NULL, digest, NULL, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    xfer_recv_status(x.r, &rs);
    assert_true(rs.done);
    assert_int_equal(rs.refused, 0);
    assert_memory_equal(rs.digest, digest, XFER_HASH_LEN);
    assert_same_file(in, x.out);
    xfer_send_destroy(&s);
    xfer_recv_destroy(&x.r);
    close(fd);
}

/* A sender with another node's key (and the right secret, and the
 * receiver's right server key) is refused at the handshake: the sender
 * hears -EACCES at once and nothing is written. A plaintext sender gets
 * nowhere either (silence, so not waited for here). */
static void
test_curve_wrong_sender_key_is_refused(void **state)
{
    struct recv_fx x = {0};
    struct pair rk, sk, other;
    char in[128], err[256] = "";
    uint8_t digest[XFER_HASH_LEN];
    struct xfer_recv_status rs;
    xfer_send_t *s = NULL;

    if (!zmq_has("curve"))
        skip();
    pair_new(&rk);
    pair_new(&sk);
    pair_new(&other);
    path_of(in, sizeof(in), "w.img");
    path_of(x.out, sizeof(x.out), "w.out");
    path_of(x.state, sizeof(x.state), "w.state");
    int fd = make_image(in);
    struct xfer_keys rkeys = {.public_key = rk.pub, .secret_key = rk.sec, .client_key = sk.pub};
    struct xfer_keys skeys = {
        .public_key = other.pub, .secret_key = other.sec, .server_key = rk.pub};
    struct xfer_recv_config c = {.bind = "tcp://127.0.0.1:*",
                                 .secret = secret,
                                 .keys = &rkeys,
                                 .path = x.out,
                                 .state = x.state,
                                 .fresh = true};
    assert_int_equal(xfer_recv_new(&c, NULL, NULL, &x.r, x.endpoint), 0);
    assert_int_equal(xfer_send_new(x.endpoint, secret, &skeys, &s), 0);
    assert_int_equal(xfer_send_pass(s, fd, true, NULL, NULL, NULL, digest, NULL, err, sizeof(err)),
                     -EACCES);
    assert_non_null(strstr(err, "key"));
    xfer_recv_status(x.r, &rs);
    assert_true(rs.refused >= 1);
    assert_false(rs.done);
    assert_int_equal(rs.offset, 0);
    assert_int_equal(rs.size, 0); /* no HELLO got through */
    struct stat sb;
    assert_int_equal(stat(x.out, &sb), 0);
    assert_int_equal(sb.st_size, 0); /* nothing was written */
    assert_int_equal(sb.st_blocks, 0);
    xfer_send_destroy(&s);
    xfer_recv_destroy(&x.r);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_image_arrives_whole),
        cmocka_unit_test(test_wrong_secret_is_denied),
        cmocka_unit_test(test_second_pass_sends_the_delta),
        cmocka_unit_test(test_dropped_message_resumes),
        cmocka_unit_test(test_receiver_restart_midway),
        cmocka_unit_test(test_curve_both_ends_pinned),
        cmocka_unit_test(test_curve_wrong_sender_key_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
