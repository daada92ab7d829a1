/* Tests for proto/link_peers: whose connection a protocol violation shuts
 * over TCP. A message is read late (the master behind) after its
 * connection ended and another peer's new connection took its descriptor:
 * libzmq's ZMQ_SRCFD names the descriptor, and the message's Peer-Address
 * says the peer it came from. A peer at another address holds the
 * descriptor now: that connection is another node's, and is not shut for
 * the late message's violations. Sockets here are plain TCP over loopback
 * addresses of their own (127.0.0.2 for the late message's sender,
 * 127.0.0.3 for the node whose connection took its descriptor). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <zmq.h>

#include "common/mtime.h"
#include "proto/link.h"
#include "proto/link_peers.h"

/* A TCP connection over loopback from source address src: *client is its
 * client's end, the accepted end is returned. */
static int
tcp_pair(const char *src, int *client)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(l >= 0);
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    struct sockaddr_in s = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, src, &s.sin_addr), 1);
    assert_int_equal(bind(c, (struct sockaddr *)&s, sizeof(s)), 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(fd >= 0);
    close(l);
    *client = c;
    return fd;
}

/* Whether the connection whose client end is c was shut at the other end
 * (c reads end of file). */
static bool
was_shut(int c)
{
    struct pollfd p = {.fd = c, .events = POLLIN};
    char b;
    return poll(&p, 1, 0) == 1 && recv(c, &b, 1, MSG_DONTWAIT) == 0;
}

/* One message of name's through fd, whose Peer-Address was addr, then
 * LINK_VIOLATIONS + 1 violations of name's in it (the connection the
 * message came through, as link_violation finds it): 1 when the last one
 * shut a connection. */
static int
violate(link_peers_t *p, const char *name, int fd, const char *addr)
{
    char id[32];
    uint64_t now = time_mono_ms();
    snprintf(id, sizeof(id), "%s/x", name);
    struct link_origin o = {name, id, strlen(id), fd, addr, now};
    int r = 0;

    assert_int_equal(link_peers_seen(p, &o, now), 0);
    for (int i = 0; i <= LINK_VIOLATIONS; i++) {
        int last_fd = -1;
        ino_t ino = 0;
        assert_int_equal(link_peers_last(p, name, &last_fd, &ino), 0);
        assert_int_equal(last_fd, fd);
        r = link_peers_violation(p, name, last_fd, ino, "test", now);
    }
    return r;
}

static void
test_violation_late_other_peer(void **state)
{
    (void)state;
    void *router = link_socket(ZMQ_ROUTER);
    int err = 0;
    assert_non_null(router);
    link_peers_t *p = link_peers_new(router, &err);
    assert_non_null(p);

    /* n5's message came from 127.0.0.2; its descriptor is n1's connection
     * from 127.0.0.3 by the time it is read: n1's is not shut. */
    int c1;
    int fd = tcp_pair("127.0.0.3", &c1);
    assert_int_equal(violate(p, "n5", fd, "127.0.0.2"), 0);
    assert_false(was_shut(c1));

    /* n6's own connection (its address) is shut past the limit. */
    int c2;
    int fd2 = tcp_pair("127.0.0.2", &c2);
    assert_int_equal(violate(p, "n6", fd2, "127.0.0.2"), 1);
    assert_true(was_shut(c2));
    assert_false(was_shut(c1));

    close(fd);
    close(c1);
    close(fd2);
    close(c2);
    link_peers_destroy(&p);
    link_socket_close(&router);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_violation_late_other_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
