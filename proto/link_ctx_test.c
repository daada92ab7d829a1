/* Tests for the process's ZeroMQ context (proto/link_ctx.c) and the ZAP
 * handler (proto/zap.c) as a ZAP client other than libzmq sees it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto/keys.h"
#include "proto/link.h"
#include "proto/zap.h"

/* Sends one ZAP request (RFC 27) of frames to the handler and reads its
 * six-frame reply into code and user; returns the reply's request id
 * length, which must echo the request's. */
static int
zap_ask(void *req, const char *const *frames, const size_t *lens, int n, char code[4],
        char user[LINK_PEER_SIZE])
{
    char buf[LINK_PEER_SIZE];
    int rid = -1;

    for (int i = 0; i < n; i++)
        assert_int_equal(zmq_send(req, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0),
                         (int)lens[i]);
    for (int i = 0; i < 6; i++) {
        int more = 0;
        size_t sz = sizeof(more);
        int got = zmq_recv(req, buf, sizeof(buf) - 1, 0);
        assert_true(got >= 0);
        buf[got] = '\0';
        if (i == 0)
            assert_string_equal(buf, "1.0");
        else if (i == 1)
            rid = got;
        else if (i == 2) {
            assert_int_equal(got, 3);
            memcpy(code, buf, 4);
        } else if (i == 4)
            snprintf(user, LINK_PEER_SIZE, "%s", buf);
        else if (i == 5)
            assert_int_equal(got, 0);
        assert_int_equal(zmq_getsockopt(req, ZMQ_RCVMORE, &more, &sz), 0);
        assert_int_equal(more, i < 5);
    }
    return rid;
}

/* The ZAP handler speaks RFC 27 to any client of its endpoint, not only
 * libzmq: a listed CURVE key gets 200 and its User-Id, an unknown one or
 * another mechanism 400, a request that is not ZAP 1.0 500; each reply
 * echoes the request id and has the six frames, and the counters follow.
 * A handler stopped frees its endpoint for the next one. */
static void
test_zap_protocol(void **state)
{
    struct keys_file k = {0}, other = {0};
    uint8_t bin[KEYS_BIN_LEN], obin[KEYS_BIN_LEN];
    char code[4], user[LINK_PEER_SIZE];
    struct zap_stats st;
    int err = 0, timeo = 5000;

    (void)state;
    assert_int_equal(keys_generate(&k), 0);
    assert_int_equal(keys_generate(&other), 0);
    assert_int_equal(keys_to_bin(k.public_key, bin), 0);
    assert_int_equal(keys_to_bin(other.public_key, obin), 0);
    for (int round = 0; round < 2; round++) {
        zap_t *zap = zap_new(&err);
        assert_non_null(zap);
        /* One handler per process. */
        assert_null(zap_new(&err));
        assert_int_equal(err, -EADDRINUSE);
        assert_int_equal(zap_allow(zap, k.public_key, "node-7"), 0);
        void *req = link_socket(ZMQ_REQ);
        assert_non_null(req);
        assert_int_equal(zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeo, sizeof(timeo)), 0);
        assert_int_equal(zmq_connect(req, ZAP_ENDPOINT), 0);

        const char *ok[] = {"1.0", "req-1", ZAP_DOMAIN, "10.0.0.9", "", "CURVE", (char *)bin};
        const size_t okl[] = {3, 5, strlen(ZAP_DOMAIN), 8, 0, 5, KEYS_BIN_LEN};
        assert_int_equal(zap_ask(req, ok, okl, 7, code, user), 5);
        assert_string_equal(code, "200");
        assert_string_equal(user, "node-7");

        const char *unknown[] = {"1.0", "r2", ZAP_DOMAIN, "10.0.0.9", "", "CURVE", (char *)obin};
        const size_t unknownl[] = {3, 2, strlen(ZAP_DOMAIN), 8, 0, 5, KEYS_BIN_LEN};
        assert_int_equal(zap_ask(req, unknown, unknownl, 7, code, user), 2);
        assert_string_equal(code, "400");
        assert_string_equal(user, "");

        const char *plain[] = {"1.0", "r3", ZAP_DOMAIN, "10.0.0.9", "", "PLAIN", "u", "p"};
        const size_t plainl[] = {3, 2, strlen(ZAP_DOMAIN), 8, 0, 5, 1, 1};
        assert_int_equal(zap_ask(req, plain, plainl, 8, code, user), 2);
        assert_string_equal(code, "400");

        const char *bad[] = {"2.0", "r4", ZAP_DOMAIN, "10.0.0.9", "", "CURVE", (char *)bin};
        const size_t badl[] = {3, 2, strlen(ZAP_DOMAIN), 8, 0, 5, KEYS_BIN_LEN};
        assert_int_equal(zap_ask(req, bad, badl, 7, code, user), 2);
        assert_string_equal(code, "500");
        const char *shortreq[] = {"1.0"};
        const size_t shortl[] = {3};
        assert_int_equal(zap_ask(req, shortreq, shortl, 1, code, user), 0);
        assert_string_equal(code, "500");

        /* Revoked: the same key is refused from the next request on. */
        assert_int_equal(zap_deny(zap, k.public_key), 0);
        assert_int_equal(zap_ask(req, ok, okl, 7, code, user), 5);
        assert_string_equal(code, "400");

        zap_get_stats(zap, &st);
        assert_int_equal(st.allowed, 1);
        assert_int_equal(st.denied, 3);
        assert_int_equal(st.malformed, 2);
        link_socket_close(&req);
        zap_destroy(&zap);
        assert_null(zap);
        assert_false(zap_running());
    }
}

/* A socket the program leaves open does not hang its exit: it is reported
 * and closed, and the context terminated, within the socket's linger. */
static void
test_exit_closes_leaked_sockets(void **state)
{
    char dir[64], ep[128];
    int status = 0;
    pid_t pid;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vf-linkctx-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(dir));
    snprintf(ep, sizeof(ep), "ipc://%s/raw", dir);
    /* The child inherits this process's context but has none of its I/O
     * threads: the exit handler must leave the inherited one alone. */
    assert_non_null(link_context_init());
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    /* A fresh process (an exec'd copy of this test) leaks a dealer and a
     * router, then exits: without the exit handler closing them,
     * zmq_ctx_term would wait for ever (the alarm ends it). */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10);
        execl("/proc/self/exe", "link_ctx_test", "--leak", ep, (char *)NULL);
        _exit(127);
    }
    /* A hang is the alarm's SIGALRM: not a time measured here, which a
     * loaded machine can stretch (the child's connect alone may take 2 s). */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    snprintf(ep, sizeof(ep), "%s/raw", dir);
    unlink(ep);
    assert_int_equal(rmdir(dir), 0);
}

/* link_ctx_test --leak ENDPOINT: a dealer connected to a router that never
 * reads, both left open at exit. */
static link_t *leaked; /* reachable, so LeakSanitizer does not count it */

static int
leak_main(const char *ep)
{
    int err = 0;
    void *raw = link_socket(ZMQ_ROUTER);
    link_t *d;

    if (!raw || zmq_bind(raw, ep) < 0)
        return 2;
    if (!(d = leaked = link_new_dealer(ep, "leaky", &err)))
        return 3;
    for (int i = 0; i < 100 && link_send(d, NULL, "x", 1) == -EAGAIN; i++)
        usleep(20000);
    if (link_open_sockets() != 2)
        return 5;
    /* raw (linger 0) and the dealer are left open: exit closes both. */
    return 0;
}

int
main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zap_protocol),
        cmocka_unit_test(test_exit_closes_leaked_sockets),
    };

    if (argc == 3 && strcmp(argv[1], "--leak") == 0)
        return leak_main(argv[2]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
