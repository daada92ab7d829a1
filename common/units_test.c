/* Tests for common/units: sizes and rates as operators write them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/units.h"

static void
size_ok(const char *s, uint64_t want)
{
    uint64_t v = 0;
    assert_int_equal(units_parse_size(s, &v), 0);
    assert_true(v == want);
}

static void
test_size_suffixes(void **state)
{
    size_ok("0", 0);
    size_ok("4096", 4096);
    size_ok("256M", 256ULL << 20);
    size_ok("256m", 256ULL << 20);
    size_ok("256MiB", 256ULL << 20);
    size_ok("256MB", 256000000ULL);
    size_ok("1.5G", 1610612736ULL);
    size_ok("2T", 2ULL << 40);
    size_ok("15E", 15ULL << 60);
}

static void
test_size_errors(void **state)
{
    uint64_t v = 7;
    assert_int_equal(units_parse_size("", &v), -EINVAL);
    assert_int_equal(units_parse_size("M", &v), -EINVAL);
    assert_int_equal(units_parse_size("-1", &v), -EINVAL);
    assert_int_equal(units_parse_size("12Q", &v), -EINVAL);
    assert_int_equal(units_parse_size("1.G", &v), -EINVAL);
    assert_int_equal(units_parse_size("16E", &v), -ERANGE);
    assert_int_equal(units_parse_size("18446744073709551616", &v), -ERANGE);
    assert_int_equal(units_parse_size("99999999999999999999999", &v), -ERANGE);
    assert_int_equal(units_parse_size("20000000T", &v), -ERANGE);
    /* Not zero, but less than a byte: never "0", which means "not set". */
    assert_int_equal(units_parse_size("0.0000001K", &v), -ERANGE);
    assert_int_equal(units_parse_size("0.5", &v), -ERANGE);
    assert_int_equal(units_parse_size("0.00000000000000000000001E", &v), -ERANGE);
    assert_true(v == 7);
}

/* Zero written any way is zero; a fraction that makes a whole unit counts. */
static void
test_size_small(void **state)
{
    size_ok("0.0", 0);
    size_ok("0.000K", 0);
    size_ok("0.001K", 1); /* 1.024 bytes */
    size_ok("1.5", 1);    /* fractions of a byte are dropped */
    size_ok("0.5K", 512);
    /* The 19th and 20th fraction digits still count with E (2^60 bytes). */
    size_ok("0.0000000000000000009E", 1);
    size_ok("0.00000000000000000087E", 1);
}

static void
test_rates(void **state)
{
    uint64_t v = 0;
    assert_int_equal(units_parse_rate("10Mbit", &v), 0);
    assert_true(v == 10000000ULL);
    assert_int_equal(units_parse_rate("1gbit", &v), 0);
    assert_true(v == 1000000000ULL);
    assert_int_equal(units_parse_rate("1mbps", &v), 0);
    assert_true(v == 8000000ULL);
    assert_int_equal(units_parse_rate("512kibit", &v), 0);
    assert_true(v == 512ULL * 1024);
    assert_int_equal(units_parse_rate("2.5mbit", &v), 0);
    assert_true(v == 2500000ULL);
    assert_int_equal(units_parse_rate("10M", &v), -EINVAL);
    v = 7;
    assert_int_equal(units_parse_rate("0.1bit", &v), -ERANGE);
    assert_int_equal(units_parse_rate("0.0000001kbit", &v), -ERANGE);
    assert_true(v == 7);
    assert_int_equal(units_parse_rate("0.001kbit", &v), 0);
    assert_true(v == 1);
}

static void
test_u64(void **state)
{
    uint64_t v = 0;
    assert_int_equal(units_parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(units_parse_u64("18446744073709551616", &v), -ERANGE);
    assert_int_equal(units_parse_u64("12a", &v), -EINVAL);
    assert_int_equal(units_parse_u64("", &v), -EINVAL);
}

static void
test_format(void **state)
{
    char buf[32];
    assert_string_equal(units_format_size(256ULL << 20, buf, sizeof(buf)), "256M");
    assert_string_equal(units_format_size(1536ULL * 1024, buf, sizeof(buf)), "1536K");
    assert_string_equal(units_format_size(1000, buf, sizeof(buf)), "1000");
    assert_string_equal(units_format_size(0, buf, sizeof(buf)), "0");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_suffixes), cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_size_small),    cmocka_unit_test(test_rates),
        cmocka_unit_test(test_u64),           cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
