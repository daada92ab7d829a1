/* Tests for common/name: DNS-label names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/name.h"

static void
test_valid(void **state)
{
    char longest[NAME_MAX_LEN + 1];

    memset(longest, 'a', NAME_MAX_LEN);
    longest[NAME_MAX_LEN] = '\0';
    assert_true(name_is_valid("web1"));
    assert_true(name_is_valid("a"));
    assert_true(name_is_valid("0day"));
    assert_true(name_is_valid("h-2"));
    assert_true(name_is_valid(longest));
}

static void
test_invalid(void **state)
{
    char toolong[NAME_MAX_LEN + 2];

    memset(toolong, 'a', NAME_MAX_LEN + 1);
    toolong[NAME_MAX_LEN + 1] = '\0';
    assert_false(name_is_valid(NULL));
    assert_false(name_is_valid(""));
    assert_false(name_is_valid("-web"));
    assert_false(name_is_valid("web-"));
    assert_false(name_is_valid("Web"));
    assert_false(name_is_valid("web_1"));
    assert_false(name_is_valid("web.1"));
    assert_false(name_is_valid("../etc"));
    assert_false(name_is_valid(toolong));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
