#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/sorted.h"

struct item {
    char id[8];
    int v;
};

static const char *
item_key(const void *elem)
{
    return ((const struct item *)elem)->id;
}

static const char *
ptr_key(const void *elem)
{
    return (*(struct item *const *)elem)->id;
}

/* Found at its index; missing keys give the index that keeps the order. */
static void
test_find(void **state)
{
    (void)state;
    struct item a[] = {{"b", 1}, {"d", 2}, {"f", 3}};
    bool found;

    assert_int_equal(sorted_find(a, 3, sizeof(a[0]), item_key, "d", &found), 1);
    assert_true(found);
    assert_int_equal(sorted_find(a, 3, sizeof(a[0]), item_key, "a", &found), 0);
    assert_false(found);
    assert_int_equal(sorted_find(a, 3, sizeof(a[0]), item_key, "e", &found), 2);
    assert_false(found);
    assert_int_equal(sorted_find(a, 3, sizeof(a[0]), item_key, "g", &found), 3);
    assert_false(found);
    assert_int_equal(sorted_find(a, 0, sizeof(a[0]), item_key, "b", &found), 0);
    assert_false(found);

    struct item *p[] = {&a[0], &a[1], &a[2]};
    assert_int_equal(sorted_find(p, 3, sizeof(p[0]), ptr_key, "f", &found), 2);
    assert_true(found);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_find)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
