/* Tests for guest networking: the interface name, the nftables scripts as
 * text, the established-connection count, and (as root) net_apply and
 * net_remove against the kernel inside a network namespace of the test's own,
 * with a child process standing in for the guest. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mem.h"
#include "node/linux/announce.h"
#include "node/linux/net.h"
#include "node/linux/net_internal.h"
#include "node/linux/net_nft.h"
#include "node/linux/proc.h"

static void
test_ifname(void **state)
{
    char n[IFNAMSIZ];

    net_ifname("0E09ECC8-1e2f-4a5b-8c9d-0123456789ab", n);
    assert_string_equal(n, "vf0e09ecc81e");
    assert_true(strlen(n) < IFNAMSIZ);
    /* Only the first ten hex digits count: ids differing later collide, which
     * is why the master's ids are random UUIDs (2^40 names). */
    net_ifname("0e09ecc8-1e00-0000-0000-000000000000", n);
    assert_string_equal(n, "vf0e09ecc81e");
    net_ifname("ab", n);
    assert_string_equal(n, "vfab");
}

static void
parse(const char *text, struct netaddr *a)
{
    assert_int_equal(netaddr_parse(text, a), 0);
}

static void
test_guest_script(void **state)
{
    struct netaddr a[3];

    parse("10.88.1.5", &a[0]);
    parse("fd00:88::5", &a[1]);
    parse("10.88.1.6", &a[2]);
    _cleanup_free_ char *s = net_nft_guest_script("vfabc", a, 3, 7);
    assert_non_null(strstr(s, "add rule inet vfleet g_vfabc ct state new meta l4proto tcp ct "
                              "count over 7 counter name \"tcp_vfabc\" reject with tcp reset\n"));
    assert_non_null(strstr(s, "add element inet vfleet from_guest { \"vfabc\" : jump g_vfabc }"));
    assert_non_null(strstr(s, "add element inet vfleet to_guest { \"vfabc\" : jump g_vfabc }"));
    assert_non_null(strstr(s, "hook ingress device \"vfabc\""));
    assert_non_null(strstr(s, "ether type arp arp saddr ip != { 10.88.1.5, 10.88.1.6 } counter "
                              "name \"spoof_vfabc\" drop\n"));
    assert_non_null(strstr(s, "ether type ip ip saddr != { 10.88.1.5, 10.88.1.6 } counter"));
    assert_non_null(strstr(s, "ip6 saddr != { fe80::/10, fd00:88::5 } ip6 saddr != :: counter"));
    assert_non_null(strstr(s, "ip6 saddr :: icmpv6 type != nd-neighbor-solicit counter"));

    /* Without a limit there is no connlimit rule; without IPv4 every ARP
     * and IPv4 packet from the guest is spoofed. */
    _cleanup_free_ char *s6 = net_nft_guest_script("vfabc", &a[1], 1, 0);
    assert_null(strstr(s6, "ct count"));
    assert_non_null(strstr(s6, "g_vfabc ether type arp counter name \"spoof_vfabc\" drop\n"));
    assert_non_null(strstr(s6, "g_vfabc ether type ip counter name \"spoof_vfabc\" drop\n"));
}

static void
test_host_script(void **state)
{
    struct netaddr nat[2];

    parse("10.0.0.0/8", &nat[0]);
    parse("fd00::/8", &nat[1]);
    _cleanup_free_ char *none = net_nft_host_script("", nat, 2);
    assert_null(strstr(none, "masquerade"));
    assert_non_null(strstr(none, "add rule inet vfleet forward iifname vmap @from_guest\n"));
    assert_non_null(strstr(none, "add rule inet vfleet output oifname vmap @to_guest\n"));
    _cleanup_free_ char *s = net_nft_host_script("eth1", nat, 2);
    assert_non_null(
        strstr(s, "add rule inet vfleet postrouting oifname \"eth1\" ip saddr { 10.0.0.0/8 } "
                  "masquerade\n"));
    assert_non_null(strstr(s, "oifname \"eth1\" ip6 saddr { fd00::/8 } masquerade\n"));
}

static void
test_delete_script(void **state)
{
    _cleanup_free_ char *s = net_nft_guest_delete("vfabc");
    /* Elements before the chain they jump to, each delete after its add. */
    char *el = strstr(s, "delete element inet vfleet from_guest { \"vfabc\" }");
    char *ch = strstr(s, "delete chain inet vfleet g_vfabc");
    assert_non_null(el);
    assert_non_null(ch);
    assert_true(el < ch);
    _cleanup_free_ char *h = net_nft_guest_hook_delete("vfabc", false);
    assert_null(strstr(h, "chain"));
    assert_non_null(strstr(h, "delete counter netdev vfleet spoof_vfabc"));
}

static void
test_count_established(void **state)
{
    char path[] = "/tmp/vf-net-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    (void)state;
    /* The shape of /proc/PID/net/snmp: the Tcp header line, then its values. */
    const char *text =
        "Ip: Forwarding DefaultTTL\n"
        "Ip: 1 64\n"
        "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails "
        "EstabResets CurrEstab InSegs\n"
        "Tcp: 1 200 120000 -1 10 20 0 1 7 300\n"
        "Udp: InDatagrams NoPorts\n"
        "Udp: 5 6\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(net_count_established(path), 7);
    unlink(path);
    assert_int_equal(net_count_established(path), -ENOENT);
    /* This process's own namespace: a count, whatever it is. */
    assert_true(net_count_established("/proc/self/net/snmp") >= 0);
}

static void
test_counters_parse(void **state)
{
    const char *text = "table inet vfleet {\n"
                       "\tcounter tcp_vfb {\n"
                       "\t\tpackets 5 bytes 300\n"
                       "\t}\n"
                       "\tcounter tcp_vfa {\n"
                       "\t\tpackets 0 bytes 0\n"
                       "\t}\n"
                       "\tcounter tcp_vfc {\n"
                       "\t\tpackets 18446744073709551615 bytes 1\n"
                       "\t}\n"
                       "}\n";
    struct nft_counter *c = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(net_nft_counters_parse(text, &c, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(c[0].name, "tcp_vfa");
    assert_int_equal(net_nft_counter_find(c, n, "tcp_vfb")->packets, 5);
    assert_true(net_nft_counter_find(c, n, "tcp_vfc")->packets == UINT64_MAX);
    assert_null(net_nft_counter_find(c, n, "tcp_vfd"));
    free(c);
    assert_int_equal(net_nft_counters_parse("", &c, &n), 0);
    assert_int_equal(n, 0);
    assert_null(net_nft_counter_find(c, n, "tcp_vfa"));
}

/* ---- against the kernel, in a namespace of our own -------------------- */

static pid_t guest = -1;
static uint64_t guest_start; /* its start time (proc_start_time) */

/* A child that runs setup (which _exits non-zero when it fails), says so
 * through a pipe and waits to be killed; returns once it is ready. */
static pid_t
child_start(void (*setup)(void))
{
    int p[2];
    char c;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setup();
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(p[1]);
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);
    return pid;
}

/* A guest's init stand-in: a network namespace of its own. */
static void
guest_setup(void)
{
    if (unshare(CLONE_NEWNET) < 0)
        _exit(1);
}

static int
kernel_setup(void **state)
{
    if (geteuid() != 0)
        return 0;
    /* Everything below happens in this private namespace, never the host's. */
    if (unshare(CLONE_NEWNET) < 0)
        return -1;
    guest = child_start(guest_setup);
    if (guest > 0 && proc_start_time(guest, &guest_start) < 0)
        guest_start = 0;
    return 0;
}

static int
kernel_teardown(void **state)
{
    if (guest > 0) {
        kill(guest, SIGKILL);
        waitpid(guest, NULL, 0);
    }
    return 0;
}

/* In the guest's namespace, one TCP connection to itself (two sockets
 * established), held until the child is killed. */
static void
tcp_pair_setup(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)guest);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0 || system("ip link set lo up") != 0)
        _exit(1);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int k = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0 || k < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) < 0 ||
        connect(k, (struct sockaddr *)&a, sizeof(a)) < 0 || accept(l, NULL, NULL) < 0)
        _exit(1);
}

/* Sends 10 datagrams of 100 bytes to the guest through its veth. */
static void
send_to_guest(const struct guest_spec *s)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    char buf[100] = {0};

    memcpy(&to.sin_addr, s->addrs[0].bytes, 4);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&to, sizeof(to)),
                         (ssize_t)sizeof(buf));
    close(fd);
    /* Past the batch's cached dump (NET_COUNTERS_TTL_MS), and ARP's wait. */
    usleep(700 * 1000);
}

/* The counters of a sample follow real traffic: datagrams sent to the guest
 * through its veth, then a TCP connection inside it (read again through the
 * snmp file net_usage holds open: at once when the veth moved packets since
 * the last read, else within NET_SNMP_MAX_AGE_MS: the pair talks over the
 * guest's loopback). */
static void
usage_after_traffic(net_t *n, const struct guest_spec *s, const struct guest_usage *u0)
{
    struct guest_usage u = {0};

    send_to_guest(s);
    assert_int_equal(net_usage(n, s, guest, guest_start, &u), 0);
    assert_true(u.net_rx_packets >= u0->net_rx_packets + 10);
    assert_true(u.net_rx_bytes >= u0->net_rx_bytes + 10 * 128);
    assert_true(u.net_tx_packets >= u0->net_tx_packets); /* ARP answers at least */
    assert_int_equal(u.tcp_sockets, 0);

    pid_t pair = child_start(tcp_pair_setup);
    send_to_guest(s); /* packets on the veth: read again at once */
    assert_int_equal(net_usage(n, s, guest, guest_start, &u), 0);
    assert_int_equal(u.tcp_sockets, 2);
    /* An init that is not the guest's (another start time: its pid reused)
     * is not looked through; the guest's own is again. */
    assert_int_equal(net_usage(n, s, guest, guest_start + 1, &u), 0);
    assert_int_equal(u.tcp_sockets, 0);
    assert_int_equal(net_usage(n, s, guest, guest_start, &u), 0);
    assert_int_equal(u.tcp_sockets, 2);
    kill(pair, SIGKILL);
    waitpid(pair, NULL, 0);
    /* Closed over the loopback alone: seen once the last read is old. */
    usleep((NET_SNMP_MAX_AGE_MS + 100) * 1000);
    assert_int_equal(net_usage(n, s, guest, guest_start, &u), 0);
    assert_int_equal(u.tcp_sockets, 0);
}

/* Two announcements of s's addresses on ifname share one kept packet socket,
 * and each sends its gratuitous ARP (seen leaving by a socket on ifname). */
static void
announce_twice(const char *ifname, const struct guest_spec *s)
{
    int cap = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_ALL));
    assert_true(cap >= 0);
    struct sockaddr_ll at = {.sll_family = AF_PACKET,
                             .sll_protocol = htons(ETH_P_ALL),
                             .sll_ifindex = (int)if_nametoindex(ifname)};
    assert_int_equal(bind(cap, (struct sockaddr *)&at, sizeof(at)), 0);
    struct timeval tv = {.tv_sec = 2};
    assert_int_equal(setsockopt(cap, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);

    int fd = -1;
    assert_int_equal(announce_addrs(ifname, s, &fd), 0);
    int kept = fd;
    assert_true(kept >= 0);
    assert_int_equal(announce_addrs(ifname, s, &fd), 0);
    assert_int_equal(fd, kept);
    /* The link's other traffic (IPv6 neighbour discovery) is skipped. */
    int seen = 0;
    for (int i = 0; i < 50 && seen < 2; i++) {
        uint8_t arp[128];
        struct sockaddr_ll from;
        socklen_t len = sizeof(from);
        ssize_t k = recvfrom(cap, arp, sizeof(arp), 0, (struct sockaddr *)&from, &len);
        assert_true(k >= 0);
        if (ntohs(from.sll_protocol) == ETH_P_ARP && k == 28 &&
            !memcmp(arp + 14, s->addrs[0].bytes, 4)) /* the sender IP */
            seen++;
    }
    assert_int_equal(seen, 2);
    close(fd);
    close(cap);
}

static void
test_apply_and_remove(void **state)
{
    if (geteuid() != 0 || guest <= 0)
        skip();
    struct guest_spec s = {0};
    strcpy(s.id, "1234abcd-0000-4000-8000-000000000001");
    strcpy(s.name, "t1");
    parse("10.99.0.5", &s.addrs[0]);
    parse("fd00:99::5", &s.addrs[1]);
    s.n_addrs = 2;
    s.limits.net_in = 1000000;
    s.limits.net_out = 2000000;
    s.limits.tcp_sockets = 2;
    struct net_config cfg = {0};
    net_t *n = net_new(&cfg);
    char ifname[IFNAMSIZ];
    net_ifname(s.id, ifname);

    assert_int_equal(net_apply(n, &s, guest), 0);
    assert_int_not_equal(if_nametoindex(ifname), 0);
    assert_int_equal(net_route_present(&s, &s.addrs[0]), 1);
    assert_int_equal(net_route_present(&s, &s.addrs[1]), 1);
    assert_int_equal(net_nft_guest_present(ifname), 1);
    /* Idempotent. */
    assert_int_equal(net_apply(n, &s, guest), 0);

    /* One address swapped for another: routes follow. */
    struct netaddr old = s.addrs[0];
    parse("10.99.0.6", &s.addrs[0]);
    assert_int_equal(net_apply(n, &s, guest), 0);
    assert_int_equal(net_route_present(&s, &s.addrs[0]), 1);
    assert_int_equal(net_route_present(&s, &old), 0);

    announce_twice(ifname, &s);

    struct guest_usage u = {0};
    assert_int_equal(net_usage(n, &s, guest, guest_start, &u), 0);
    assert_int_equal(u.tcp_sockets, 0);
    usage_after_traffic(n, &s, &u);

    /* An agent restarted (a net_t that never applied it) still removes
     * the rules: they are among the earlier run's it lists. */
    net_t *again = net_new(&cfg);
    assert_int_equal(net_remove(again, &s), 0);
    assert_int_equal(net_nft_guest_present(ifname), 0);
    assert_int_equal(if_nametoindex(ifname), 0);
    net_destroy(&again);
    assert_int_equal(net_remove(n, &s), 0);
    assert_int_equal(if_nametoindex(ifname), 0);
    assert_int_equal(net_nft_guest_present(ifname), 0);
    assert_int_equal(net_route_present(&s, &s.addrs[0]), 0);
    /* Idempotent too. */
    assert_int_equal(net_remove(n, &s), 0);
    net_destroy(&n);
    assert_null(n);
}

/* The guest interface names a listing of the tables holds, each once. */
static void
test_ifnames_parse(void **state)
{
    (void)state;
    char(*names)[SPEC_IFNAME_SIZE] = NULL;
    const char *text =
        "table inet vfleet {\n"
        "  map from_guest { elements = { \"vf0123456789\" : jump g_vf0123456789 } }\n"
        "  counter tcp_vfabcdefabcd { packets 0 bytes 0 }\n"
        "  chain g_vf0123456789 { }\n"
        "  chain g_vf01234 { }\n"        /* too short */
        "  chain g_vf0123456789ab { }\n" /* too long */
        "  chain g_vfABCDEF012345 { }\n" /* not ours: upper case */
        "}\n";

    assert_int_equal(net_nft_ifnames_parse(text, &names), 2);
    assert_string_equal(names[0], "vf0123456789");
    assert_string_equal(names[1], "vfabcdefabcd");
    free(names);
    assert_int_equal(net_nft_ifnames_parse("", &names), 0);
    assert_null(names);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ifname),
        cmocka_unit_test(test_guest_script),
        cmocka_unit_test(test_host_script),
        cmocka_unit_test(test_delete_script),
        cmocka_unit_test(test_count_established),
        cmocka_unit_test(test_counters_parse),
        cmocka_unit_test(test_ifnames_parse),
        cmocka_unit_test_setup_teardown(test_apply_and_remove, kernel_setup, kernel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
