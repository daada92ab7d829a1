/* The HTTP server under idle and slow clients, end to end in one process
 * (master_fixture.h): 300 connections that never finish a TLS handshake
 * (half send nothing, half half a ClientHello) while a client's requests
 * keep being answered; the per-address connection limit; the idle timeout
 * that closes them. The client's latency with and without the idle
 * connections is printed (a figure for the report, never asserted). */
#include "master/master_fixture.h"

#include "common/mtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define IDLE_CONNS  300 /* idle connections, from IDLE_ADDRS addresses */
#define IDLE_ADDRS  10  /* 127.0.0.2 .. 127.0.0.11, 30 each: under the per-address limit */
#define CLIENT_REQS 100 /* requests the client makes, each on a new connection */
#define IDLE_TIMEOUT                                                                               \
    25 /* seconds: the idle timeout here; longer than a client round on a loaded CI machine */

/* A TCP connection to the master from 127.0.0.<host>. */
static int
connect_from(unsigned host)
{
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000u | host)};
    struct sockaddr_in dst = {
        .sin_family = AF_INET, .sin_port = htons(F.port), .sin_addr.s_addr = htonl(0x7f000001u)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    return fd;
}

/* 1 while the server keeps the connection, 0 once it closed it. */
static int
still_open(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Waits up to ms for the server to close fd. */
static bool
closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    for (int waited = 0; waited < ms; waited += 100) {
        if (poll(&p, 1, 100) > 0 && !still_open(fd))
            return true;
    }
    return !still_open(fd);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CLIENT_REQS GETs, each on its own connection (a TLS handshake each, as
 * one CLI command does); all must be answered 200. Prints the latency. */
static void
client_round(const char *label)
{
    double ms[CLIENT_REQS];

    for (int i = 0; i < CLIENT_REQS; i++) {
        uint64_t t0 = time_mono_ns();
        long st = http("GET", "/v1/guests?limit=5", NULL, NULL, NULL);
        ms[i] = (double)(time_mono_ns() - t0) / 1e6;
        if (st != 200)
            fail_msg("%s: request %d answered %ld", label, i, st);
    }
    qsort(ms, CLIENT_REQS, sizeof(ms[0]), cmp_double);
    fprintf(stderr, "latency %s: %d requests, p50 %.2f ms, p95 %.2f ms, max %.2f ms\n", label,
            CLIENT_REQS, ms[CLIENT_REQS / 2], ms[CLIENT_REQS * 95 / 100], ms[CLIENT_REQS - 1]);
}

static void
test_idle_connections(void **state)
{
    static const char half_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    int fds[IDLE_CONNS];

    client_round("without idle connections");
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] = connect_from(2 + (unsigned)(i % IDLE_ADDRS));
        if (i % 2)
            assert_int_equal(send(fds[i], half_hello, sizeof(half_hello) - 1, MSG_NOSIGNAL),
                             (ssize_t)sizeof(half_hello) - 1);
    }
    usleep(200 * 1000);
    uint64_t t0 = time_mono_ns();
    client_round("with 300 idle connections");
    /* The check below means something only if the round ended before the
     * idle timeout could close them. */
    if ((time_mono_ns() - t0) / 1000000000ULL >= IDLE_TIMEOUT - 1)
        fail_msg("the client round took longer than the idle timeout (%d s)", IDLE_TIMEOUT);
    int open = 0;
    for (int i = 0; i < IDLE_CONNS; i++)
        open += still_open(fds[i]);
    fprintf(stderr, "idle connections still held by the master after the round: %d of %d\n", open,
            IDLE_CONNS);
    /* They were all there while the client was answered. */
    assert_int_equal(open, IDLE_CONNS);
    /* The idle timeout closes every one of them. */
    for (int i = 0; i < IDLE_CONNS; i++) {
        if (!closed_within(fds[i], (IDLE_TIMEOUT + 10) * 1000))
            fail_msg("idle connection %d still open after %d s", i, IDLE_TIMEOUT + 10);
        close(fds[i]);
    }
}

static void
test_per_address_limit(void **state)
{
    int fds[HTTPD_MAX_PER_ADDR + 1];

    for (int i = 0; i < HTTPD_MAX_PER_ADDR; i++)
        fds[i] = connect_from(20);
    usleep(200 * 1000);
    for (int i = 0; i < HTTPD_MAX_PER_ADDR; i++)
        assert_true(still_open(fds[i]));
    /* One more from that address is closed at once; others still get in. */
    fds[HTTPD_MAX_PER_ADDR] = connect_from(20);
    assert_true(closed_within(fds[HTTPD_MAX_PER_ADDR], 3000));
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, NULL), 200);
    int other = connect_from(21);
    usleep(200 * 1000);
    assert_true(still_open(other));
    close(other);
    for (int i = 0; i <= HTTPD_MAX_PER_ADDR; i++)
        close(fds[i]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_connections),
        cmocka_unit_test(test_per_address_limit),
    };
    struct rlimit nofile;

    /* Both ends of every connection live in this process. */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 4096 &&
        nofile.rlim_max > nofile.rlim_cur) {
        nofile.rlim_cur = nofile.rlim_max < 4096 ? nofile.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    F.idle_s = IDLE_TIMEOUT;
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
