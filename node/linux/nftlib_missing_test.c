/* nftlib when the library cannot be loaded: this file builds nftlib.c
 * itself with a soname no system has, so the call fails as it would on a
 * host without libnftables, and the caller learns why from dlerror. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define NFTLIB_SONAME "libvfleet-no-such-nftables.so.1"
#include "node/linux/nftlib.c"

static void
test_missing_library(void **state)
{
    (void)state;
    char err[256] = "", *out = NULL;

    assert_int_equal(nftlib_run("list tables", &out, err, sizeof(err)), -ELIBACC);
    assert_null(out);
    assert_false(nftlib_loaded());
    /* The soname and the loader's own reason, not only "cannot load". */
    assert_non_null(strstr(err, "cannot load " NFTLIB_SONAME ": "));
    assert_non_null(strstr(err, "No such file"));
    /* A caller without a buffer gets the same answer. */
    assert_int_equal(nftlib_run("list tables", NULL, NULL, 0), -ELIBACC);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
