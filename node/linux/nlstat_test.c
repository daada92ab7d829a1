/* Tests for the usage batch's netlink dumps, as root, against the kernel in
 * a network namespace of the test's own: link counters after real traffic on
 * loopback, and named nftables counters made with known values, checked
 * against what libnftables lists. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/net_nft.h"
#include "node/linux/nlstat.h"

static bool in_ns; /* the setup made a namespace of our own */

static int
setup(void **state)
{
    (void)state;
    /* Everything below happens in this private namespace, never the host's. */
    in_ns = geteuid() == 0 && unshare(CLONE_NEWNET) == 0;
    return 0;
}

/* Brings lo up in our namespace. */
static void
lo_up(void)
{
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    strcpy(ifr.ifr_name, "lo");
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
    close(fd);
}

/* Sends k datagrams of len bytes to 127.0.0.1 (nobody listens: lo carries
 * them and the answers, port unreachable, all the same). */
static void
udp_out(int k, size_t len)
{
    struct sockaddr_in to = {
        .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[256] = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0 && len <= sizeof(buf));
    for (int i = 0; i < k; i++)
        assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
    close(fd);
}

static void
test_links(void **state)
{
    (void)state;
    if (!in_ns)
        skip();
    lo_up();
    nlstat_t *s = nlstat_new();
    struct nlstat_link *l = NULL, one;
    size_t n = 0;
    int lo = (int)if_nametoindex("lo");
    assert_true(lo > 0);

    assert_int_equal(nlstat_links(s, &l, &n), 0);
    const struct nlstat_link *before = nlstat_link_find(l, n, lo);
    assert_non_null(before);
    uint64_t p0 = before->tx_packets, b0 = before->tx_bytes;
    /* Ten datagrams of 100 bytes: at least 10 packets and 10 × 128 bytes
     * more through lo (IPv4 and UDP headers), each way. */
    udp_out(10, 100);
    assert_int_equal(nlstat_links(s, &l, &n), 0);
    const struct nlstat_link *after = nlstat_link_find(l, n, lo);
    assert_non_null(after);
    assert_true(after->tx_packets >= p0 + 10);
    assert_true(after->tx_bytes >= b0 + 10 * 128);
    assert_true(after->rx_packets >= p0 + 10); /* lo receives what it sends */
    /* Asked for alone: the same counters (nothing sent in between). */
    assert_int_equal(nlstat_link(s, lo, &one), 0);
    assert_int_equal(one.ifindex, lo);
    assert_true(one.tx_packets == after->tx_packets && one.rx_bytes == after->rx_bytes);
    /* An index no link has. */
    assert_int_equal(nlstat_link(s, 999999, &one), -ENODEV);
    assert_null(nlstat_link_find(l, n, 999999));
    free(l);
    nlstat_free(&s);
    assert_null(s);
}

static void
test_nft_counters(void **state)
{
    (void)state;
    if (!in_ns)
        skip();
    char err[512] = "";
    nlstat_t *s = nlstat_new();
    struct nft_counter *c = NULL;
    size_t n = 0;

    /* No table yet: no counters, no error. */
    assert_int_equal(nlstat_nft_counters(s, NLSTAT_INET, "vfleet", &c, &n), 0);
    assert_int_equal(n, 0);
    int r = net_nft_run("add table inet vfleet\n"
                        "add counter inet vfleet tcp_vfb { packets 5 bytes 300 }\n"
                        "add counter inet vfleet tcp_vfa { packets 18446744073709551615 bytes 1 }\n"
                        "add table inet other\n"
                        "add counter inet other tcp_vfc { packets 7 bytes 9 }\n"
                        "add table netdev vfleet\n"
                        "add counter netdev vfleet spoof_vfa { packets 3 bytes 4 }\n",
                        err, sizeof(err));
    assert_int_equal(r, 0);
    assert_int_equal(nlstat_nft_counters(s, NLSTAT_INET, "vfleet", &c, &n), 0);
    /* This table's two, sorted by name, the same as libnftables lists. */
    assert_int_equal(n, 2);
    assert_string_equal(c[0].name, "tcp_vfa");
    assert_true(c[0].packets == UINT64_MAX);
    assert_string_equal(c[1].name, "tcp_vfb");
    assert_int_equal(net_nft_counter_find(c, n, "tcp_vfb")->packets, 5);
    assert_null(net_nft_counter_find(c, n, "tcp_vfc"));
    uint64_t packets = 0, bytes = 0;
    assert_int_equal(net_nft_counter("inet", "tcp_vfb", &packets, &bytes), 0);
    assert_int_equal(packets, 5);
    /* The other family's table of the same name. */
    assert_int_equal(nlstat_nft_counters(s, NLSTAT_NETDEV, "vfleet", &c, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].name, "spoof_vfa");
    assert_int_equal(c[0].packets, 3);
    /* A counter that goes away is gone from the next dump. */
    assert_int_equal(net_nft_run("delete counter inet vfleet tcp_vfa\n", err, sizeof(err)), 0);
    assert_int_equal(nlstat_nft_counters(s, NLSTAT_INET, "vfleet", &c, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(c[0].name, "tcp_vfb");
    assert_int_equal(net_nft_run("delete table inet vfleet\ndelete table inet other\n"
                                 "delete table netdev vfleet\n",
                                 err, sizeof(err)),
                     0);
    free(c);
    nlstat_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_nft_counters),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
