/* Tests for common/uuid: the text form of a random UUID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/uuid.h"

/* 8-4-4-4-12 lower-case hex digits, version 4, the RFC 4122 variant (8, 9,
 * a or b), NUL-terminated; and no two alike. */
static void
test_form(void **state)
{
    char prev[UUID_TEXT_LEN + 1] = "";

    (void)state;
    for (int k = 0; k < 1000; k++) {
        char u[UUID_TEXT_LEN + 2];
        memset(u, 'x', sizeof(u));
        assert_int_equal(uuid_v4(u), 0);
        assert_int_equal(u[UUID_TEXT_LEN], '\0');
        assert_int_equal(u[UUID_TEXT_LEN + 1], 'x');
        for (int i = 0; i < UUID_TEXT_LEN; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23)
                assert_int_equal(u[i], '-');
            else
                assert_non_null(memchr("0123456789abcdef", u[i], 16));
        }
        assert_int_equal(u[14], '4');
        assert_non_null(memchr("89ab", u[19], 4));
        assert_string_not_equal(u, prev);
        memcpy(prev, u, sizeof(prev));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
