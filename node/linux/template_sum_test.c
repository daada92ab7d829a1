/* Tests for node/linux/template_sum: same tree, same sum; any change in
 * content, name, mode or link target, another sum; timestamps ignored; the
 * cache follows a rebuild by rename. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/template_sum.h"

static char top[64];

/* A shell command, run in the test's directory. */
#define sh(cmd) assert_int_equal(system(cmd), 0)

static void
sum_of(const char *rel, char out[TEMPLATE_SUM_LEN + 1], uint64_t *size)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%.32s", top, rel);
    assert_int_equal(template_sum(path, out, size), 0);
}

static void
test_sums(void **state)
{
    char a[TEMPLATE_SUM_LEN + 1], b[TEMPLATE_SUM_LEN + 1];
    uint64_t sa, sb;
    (void)state;

    strcpy(top, "/tmp/vfleet-tsum-XXXXXX");
    assert_non_null(mkdtemp(top));
    assert_int_equal(chdir(top), 0);
    sh("mkdir -p a/etc a/bin && echo root > a/etc/passwd && ln -s /bin/busybox "
       "a/bin/sh");
    sh("cp -a a b && touch -d 2001-01-01 b/etc/passwd b/etc");
    sum_of("a", a, &sa);
    sum_of("b", b, &sb);
    assert_int_equal(strlen(a), TEMPLATE_SUM_LEN);
    assert_memory_equal(a, "sha256:", 7);
    assert_string_equal(a, b); /* timestamps do not count */
    assert_int_equal(sa, 5);
    sh("echo toor > b/etc/passwd");
    sum_of("b", b, &sb);
    assert_string_not_equal(a, b);
    sh("echo root > b/etc/passwd && chmod 600 b/etc/passwd");
    sum_of("b", b, &sb);
    assert_string_not_equal(a, b);
    sh("chmod 644 b/etc/passwd && ln -sfn /bin/ash b/bin/sh");
    sum_of("b", b, &sb);
    assert_string_not_equal(a, b);
}

/* Holes and written zeros sum the same; a byte in a zero run does not; a
 * file of 100 GB of holes sums without reading them. */
static void
test_sparse(void **state)
{
    char a[TEMPLATE_SUM_LEN + 1], b[TEMPLATE_SUM_LEN + 1];
    uint64_t sa, sb;
    (void)state;

    sh("mkdir -p s1 s2 && head -c 70000 /dev/urandom > s1/f && truncate -s 1000000 s1/f && "
       "printf x >> s1/f && cp --sparse=never s1/f s2/f");
    sum_of("s1", a, &sa);
    sum_of("s2", b, &sb);
    assert_string_equal(a, b);
    assert_int_equal(sa, 1000001);
    sh("printf y | dd of=s2/f bs=1 seek=500000 conv=notrunc status=none");
    sum_of("s2", b, &sb);
    assert_string_not_equal(a, b);
    sh("mkdir -p big && truncate -s 100G big/hole");
    /* Reading 100 GB of holes would take minutes (the test's timeout). */
    sum_of("big", a, &sa);
    assert_int_equal(sa, 100ULL << 30);
    sh("truncate -s 100G big/hole2 && rm big/hole && mv big/hole2 big/hole");
    sum_of("big", b, &sb);
    assert_string_equal(a, b);
}

static void
test_cache(void **state)
{
    char a[TEMPLATE_SUM_LEN + 1], c[TEMPLATE_SUM_LEN + 1], path[PATH_MAX + 8], cache[PATH_MAX + 8];
    uint64_t sa, sc;
    (void)state;

    snprintf(path, sizeof(path), "%s/a", top);
    snprintf(cache, sizeof(cache), "%s/sums", top);
    sum_of("a", a, &sa);
    assert_int_equal(template_sum_cached(path, "a", cache, c, &sc), 0);
    assert_string_equal(a, c);
    /* A cached sum is used as long as the tree's root is the same... */
    sh("echo changed > a/etc/passwd");
    assert_int_equal(template_sum_cached(path, "a", cache, c, &sc), 0);
    assert_string_equal(a, c);
    /* ...and a rebuild by rename is seen. */
    sh("cp -a a a.new && mv a a.old");
    sh("mv a.new a");
    assert_int_equal(template_sum_cached(path, "a", cache, c, &sc), 0);
    assert_string_not_equal(a, c);
    assert_int_equal(chdir("/"), 0);
    char rm[96];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", top);
    sh(rm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums),
        cmocka_unit_test(test_sparse),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
