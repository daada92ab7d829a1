/* Tests for cli/table: alignment, cleaning and human sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli/table.h"

/* Prints t into a string the caller frees. */
static char *
render(const table_t *t)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    table_print(t, f);
    fclose(f);
    return buf;
}

static void
test_aligned_columns(void **state)
{
    static const char *const h[] = {"NAME", "STATE", "MEMORY"};
    table_t *t = table_new(3, h);
    table_align_right(t, 2);
    table_add(t, "web1");
    table_add(t, "running");
    table_add(t, "256M");
    table_add(t, "database-primary");
    table_add(t, NULL);
    table_addf(t, "%dG", 16);
    assert_int_equal(table_rows(t), 2);
    char *s = render(t);
    assert_string_equal(s, "NAME              STATE    MEMORY\n"
                           "web1              running    256M\n"
                           "database-primary  -           16G\n");
    free(s);
    table_destroy(&t);
    assert_null(t);
    table_destroy(&t); /* NULL-safe */
}

static void
test_no_trailing_spaces_and_partial_row(void **state)
{
    table_t *t = table_new(2, NULL);
    table_add(t, "a");
    table_add(t, "x");
    table_add(t, "longer");
    /* The last row lacks its second cell. */
    assert_int_equal(table_rows(t), 2);
    char *s = render(t);
    assert_string_equal(s, "a       x\n"
                           "longer\n");
    free(s);
    table_destroy(&t);
}

static void
test_utf8_width_and_control_chars(void **state)
{
    static const char *const h[] = {"K", "V"};
    table_t *t = table_new(2, h);
    table_add(t, "z\xc3\xbcrich"); /* "zürich": 6 characters, 7 bytes */
    table_add(t, "1");
    table_add(t, "evil\x1b[31m");
    table_add(t, "2");
    char *s = render(t);
    assert_string_equal(s, "K          V\n"
                           "z\xc3\xbcrich     1\n"
                           "evil?[31m  2\n");
    assert_null(strchr(s, '\x1b'));
    free(s);
    table_destroy(&t);
}

static void
size_is(uint64_t v, const char *want)
{
    char buf[32];
    assert_string_equal(table_size(v, buf, sizeof(buf)), want);
}

static void
test_human_sizes(void **state)
{
    size_is(0, "0");
    size_is(1023, "1023");
    size_is(1024, "1K");
    size_is(1536, "1.5K");
    size_is(256ULL << 20, "256M");
    size_is(1610612736ULL, "1.5G");
    size_is(123456789ULL, "117.7M");
    size_is((1ULL << 20) - 1, "1M"); /* 1023.999K rounds up to the next unit */
    size_is(5ULL << 40, "5T");
    size_is(UINT64_MAX, "16E");
}

static void
rate_is(uint64_t v, const char *want)
{
    char buf[32];
    assert_string_equal(table_rate(v, buf, sizeof(buf)), want);
}

/* Rates as the API and tc read them: decimal units of bits per second. */
static void
test_human_rates(void **state)
{
    rate_is(0, "0bit");
    rate_is(999, "999bit");
    rate_is(1000, "1kbit");
    rate_is(10000000, "10mbit");
    rate_is(1500000000ULL, "1.5gbit");
    rate_is(8000000, "8mbit");
    rate_is(999960, "1mbit"); /* 999.96kbit rounds up to the next unit */
    rate_is(123456789, "123.5mbit");
    rate_is(UINT64_MAX, "18.4ebit");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_columns),
        cmocka_unit_test(test_no_trailing_spaces_and_partial_row),
        cmocka_unit_test(test_utf8_width_and_control_chars),
        cmocka_unit_test(test_human_sizes),
        cmocka_unit_test(test_human_rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
