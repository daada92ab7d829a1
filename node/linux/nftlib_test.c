/* Tests for libnftables loaded on demand, as root in a network namespace of
 * the test's own: a script runs, the library stays while recently used, is
 * unmapped once idle, and loads again for the next call. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/nftlib.h"

/* Whether the library is mapped into this process. */
static bool
mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    bool found = false;

    assert_non_null(f);
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, "/" NFTLIB_SONAME) != NULL;
    fclose(f);
    return found;
}

static void
test_load_unload(void **state)
{
    (void)state;
    if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
        skip();
    char err[256] = "", *out = NULL;

    assert_false(nftlib_loaded());
    assert_false(mapped());
    assert_int_equal(nftlib_run("add table inet t\nadd counter inet t c { packets 4 bytes 5 }\n",
                                NULL, err, sizeof(err)),
                     0);
    assert_true(nftlib_loaded());
    assert_true(mapped());
    /* Used a moment ago: stays. */
    nftlib_unload_idle(60000);
    assert_true(nftlib_loaded());
    /* Idle (no wait asked for): gone from the process. */
    nftlib_unload_idle(0);
    assert_false(nftlib_loaded());
    assert_false(mapped());
    /* Loaded again for the next call, which sees what the first made. */
    assert_int_equal(nftlib_run("list counter inet t c", &out, NULL, 0), 0);
    assert_non_null(strstr(out, "packets 4 bytes 5"));
    free(out);
    /* nft's own error comes back. */
    assert_int_equal(nftlib_run("list counter inet t nosuch", NULL, err, sizeof(err)), -EINVAL);
    assert_true(err[0] != '\0');
    nftlib_unload_idle(0);
    assert_false(mapped());
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_unload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
