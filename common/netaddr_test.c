/* Tests for common/netaddr: IPv4/IPv6 addresses and prefixes. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/netaddr.h"

static void
test_parse_v4(void **state)
{
    struct netaddr a;
    char buf[NETADDR_STRLEN];

    assert_int_equal(netaddr_parse("192.0.2.7", &a), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.prefix, 32);
    assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "192.0.2.7");
    assert_string_equal(netaddr_format(&a, true, buf, sizeof(buf)), "192.0.2.7/32");
    assert_int_equal(netaddr_parse("10.1.2.3/8", &a), 0);
    assert_int_equal(a.prefix, 8);
    netaddr_mask(&a);
    assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "10.0.0.0/8");
}

static void
test_parse_v6(void **state)
{
    struct netaddr a;
    char buf[NETADDR_STRLEN];

    assert_int_equal(netaddr_parse("2001:db8::1", &a), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.prefix, 128);
    assert_int_equal(netaddr_parse("2001:db8:abcd::ff/45", &a), 0);
    netaddr_mask(&a);
    assert_string_equal(netaddr_format(&a, false, buf, sizeof(buf)), "2001:db8:abc8::/45");
}

static void
test_parse_errors(void **state)
{
    struct netaddr a;

    assert_int_equal(netaddr_parse("", &a), -EINVAL);
    assert_int_equal(netaddr_parse("256.1.1.1", &a), -EINVAL);
    assert_int_equal(netaddr_parse("10.0.0.0/33", &a), -EINVAL);
    assert_int_equal(netaddr_parse("10.0.0.0/", &a), -EINVAL);
    assert_int_equal(netaddr_parse("10.0.0.0/-1", &a), -EINVAL);
    assert_int_equal(netaddr_parse("::1/129", &a), -EINVAL);
    assert_int_equal(netaddr_parse("host.example", &a), -EINVAL);
    assert_int_equal(netaddr_parse_host("10.0.0.1/24", &a), -EINVAL);
    assert_int_equal(netaddr_parse_host("10.0.0.1", &a), 0);
}

static void
test_contains(void **state)
{
    struct netaddr net, in, out, v6;

    assert_int_equal(netaddr_parse("10.20.0.0/16", &net), 0);
    assert_int_equal(netaddr_parse("10.20.255.1", &in), 0);
    assert_int_equal(netaddr_parse("10.21.0.1", &out), 0);
    assert_int_equal(netaddr_parse("::ffff:10.20.0.1", &v6), 0);
    assert_true(netaddr_contains(&net, &in));
    assert_false(netaddr_contains(&net, &out));
    assert_false(netaddr_contains(&net, &v6));
    assert_int_equal(netaddr_parse("0.0.0.0/0", &net), 0);
    assert_true(netaddr_contains(&net, &out));
    assert_true(netaddr_equal(&in, &in));
    assert_false(netaddr_equal(&in, &out));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v4),
        cmocka_unit_test(test_parse_v6),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_contains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
