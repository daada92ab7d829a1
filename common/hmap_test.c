/* Tests for master/hmap: random operations checked against a plain array,
 * which exercises growth and backward-shift deletion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/hmap.h"

enum { KEYS = 2048, OPS = 200000 };

static uint64_t rng = 88172645463325252ULL;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void
test_u64_random(void **state)
{
    static uint32_t ref[KEYS]; /* 0 = absent, else value + 1 */
    struct hmap_u64 m = {0};
    size_t live = 0;

    for (int op = 0; op < OPS; op++) {
        /* Keys are multiples of 1024 so many share low bits. */
        uint64_t k = (next() % KEYS) * 1024;
        size_t i = k / 1024;
        uint32_t *v;

        switch (next() % 3) {
        case 0:
        case 1:
            if (!ref[i])
                live++;
            ref[i] = (uint32_t)op + 1;
            hmap_u64_put(&m, k, (uint32_t)op);
            break;
        case 2:
            assert_int_equal(hmap_u64_del(&m, k), ref[i] != 0);
            if (ref[i])
                live--;
            ref[i] = 0;
            break;
        }
        if (op % 1000 == 0)
            for (size_t j = 0; j < KEYS; j++) {
                v = hmap_u64_get(&m, j * 1024);
                if (ref[j]) {
                    assert_non_null(v);
                    assert_int_equal(*v, ref[j] - 1);
                } else
                    assert_null(v);
            }
        assert_int_equal(m.len, live);
    }
    hmap_u64_free(&m);
    assert_null(hmap_u64_get(&m, 0));
}

static void
test_str_random(void **state)
{
    static char keys[KEYS][16];
    static bool present[KEYS];
    struct hmap_str m = {0};

    for (int i = 0; i < KEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "node-%d", i);
    for (int op = 0; op < OPS; op++) {
        size_t i = next() % KEYS;

        if (next() % 2) {
            hmap_str_put(&m, keys[i], keys[i]);
            present[i] = true;
        } else {
            assert_int_equal(hmap_str_del(&m, keys[i]), present[i]);
            present[i] = false;
        }
        if (op % 1000 == 0)
            for (size_t j = 0; j < KEYS; j++)
                assert_ptr_equal(hmap_str_get(&m, keys[j]), present[j] ? keys[j] : NULL);
    }
    hmap_str_free(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64_random),
        cmocka_unit_test(test_str_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
