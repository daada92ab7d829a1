/* Tests for base64: RFC 4648's vectors both ways, and junk refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/base64.h"

static void
test_vectors(void **state)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[32];
    uint8_t back[32];

    for (size_t i = 0; i < 7; i++) {
        base64_encode((const uint8_t *)plain[i], strlen(plain[i]), out);
        assert_string_equal(out, coded[i]);
        assert_int_equal(base64_len(strlen(plain[i])), strlen(coded[i]));
        long n = base64_decode(coded[i], strlen(coded[i]), back);
        assert_int_equal(n, (long)strlen(plain[i]));
        assert_memory_equal(back, plain[i], (size_t)n);
    }
}

static void
test_junk(void **state)
{
    uint8_t back[32];

    assert_int_equal(base64_decode("Zm9", 3, back), -EINVAL);
    assert_int_equal(base64_decode("Zm=v", 4, back), -EINVAL);
    assert_int_equal(base64_decode("Zm9v====", 8, back), -EINVAL);
    assert_int_equal(base64_decode("Z*9v", 4, back), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors), cmocka_unit_test(test_junk)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
