/* Tests for master/jalloc: jansson and SQLite on the free lists, the
 * lists' cap, other threads, and free() of jansson's text. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include <sanitizer/asan_interface.h>

#include "common/sanitizer.h"
#include "master/jalloc.h"

static json_t *
tree(int n)
{
    json_t *a = json_array();

    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i, s:s, s:[b, f]}", "n", i, "name", "guest-name",
                                           "more", i & 1, i / 3.0));
    return a;
}

static void
test_reuse(void **state)
{
    (void)state;
    jalloc_release();
    void *p = jalloc_malloc(40);
    assert_non_null(p);
    memset(p, 0xab, 40);
    jalloc_free(p);
    assert_int_equal(jalloc_cached(), 48);
    /* the same class comes from the list: any request of 33-48 bytes */
    void *q = jalloc_malloc(33);
    assert_ptr_equal(p, q);
    assert_int_equal(jalloc_cached(), 0);
    jalloc_free(q);
    /* a large block is not kept */
    void *big = jalloc_malloc(4096);
    jalloc_free(big);
    assert_int_equal(jalloc_cached(), 48);
    jalloc_release();
    assert_int_equal(jalloc_cached(), 0);
}

static void
test_jansson(void **state)
{
    (void)state;
    jalloc_release();
    json_t *a = tree(1000);
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    size_t kept = jalloc_cached();
    assert_true(kept > 1000 * 16);
    /* a second tree of the same shape is built from the lists */
    a = tree(1000);
    assert_true(jalloc_cached() < kept);
    char *again = json_dumps(a, JSON_COMPACT);
    assert_string_equal(text, again);
    json_decref(a);
    json_t *back = json_loads(text, 0, NULL);
    assert_int_equal(json_array_size(back), 1000);
    json_decref(back);
    /* jansson's text is a malloc block: free() is right for it */
    free(text);
    free(again);
    jalloc_release();
}

static void
test_cap(void **state)
{
    (void)state;
    enum { N = 200000 };
    void **v = malloc(N * sizeof(*v));

    jalloc_release();
    for (size_t i = 0; i < N; i++)
        v[i] = jalloc_malloc(128);
    for (size_t i = 0; i < N; i++)
        jalloc_free(v[i]);
    /* 200,000 x 128 bytes = 24.4 MiB freed, at most 16 MiB kept */
    assert_true(jalloc_cached() <= 16u << 20);
    assert_true(jalloc_cached() > 15u << 20);
    free(v);
    jalloc_release();
}

static void *
other_thread(void *arg)
{
    (void)arg;
    json_t *a = tree(100);
    json_t *b = tree(10);
    /* nothing kept on a thread that did not install */
    json_decref(b);
    assert_int_equal(jalloc_cached(), 0);
    return a;
}

static void
test_threads(void **state)
{
    pthread_t t;
    void *a;

    (void)state;
    jalloc_release();
    assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &a), 0);
    assert_int_equal(json_array_size(a), 100);
    /* its blocks are malloc's: the owner may keep them */
    json_decref(a);
    assert_true(jalloc_cached() > 0);
    jalloc_release();
}

/* The largest requests go to malloc, which refuses them. (n + 15 wrapped
 * to class 0 and read the list before the first: a crash.) The
 * sanitizers' malloc aborts on such a size instead of failing: skipped. */
static void
test_huge(void **state)
{
    (void)state;
#if defined(VF_ASAN) || defined(VF_TSAN)
    skip();
#else
    jalloc_release();
    for (size_t n = SIZE_MAX - 20; n != 0; n++)
        assert_null(jalloc_malloc(n));
    assert_int_equal(jalloc_cached(), 0);
#endif
}

/* A tree the owner built from its lists, freed on a thread that did not
 * install: plain free() of every block, nothing kept there. And a tree of
 * that thread freed on the owner, round after round. */
static void *
free_there(void *arg)
{
    json_decref(arg);
    assert_int_equal(jalloc_cached(), 0);
    return tree(50);
}

static void
test_cross_thread(void **state)
{
    (void)state;
    jalloc_release();
    json_decref(tree(200)); /* the lists hold blocks now */
    for (int round = 0; round < 20; round++) {
        pthread_t t;
        void *back;
        json_t *a = tree(200); /* built from the lists */
        char *want = json_dumps(a, JSON_COMPACT);
        assert_int_equal(pthread_create(&t, NULL, free_there, a), 0);
        assert_int_equal(pthread_join(t, &back), 0);
        assert_int_equal(json_array_size(back), 50);
        json_decref(back); /* the other thread's blocks onto the lists */
        json_t *again = tree(200);
        char *got = json_dumps(again, JSON_COMPACT);
        assert_string_equal(got, want);
        free(got);
        free(want);
        json_decref(again);
    }
    jalloc_release();
}

/* Under AddressSanitizer a block on a list is poisoned, so a use of a value
 * after its last decref is reported as without the lists (they hid it). */
static void
test_poisoned(void **state)
{
    (void)state;
#ifndef VF_ASAN
    skip();
#else
    jalloc_release();
    void *p = jalloc_malloc(40);
    assert_false(__asan_address_is_poisoned(p));
    jalloc_free(p);
    assert_true(__asan_address_is_poisoned(p));
    assert_true(__asan_address_is_poisoned((char *)p + 47));
    void *q = jalloc_malloc(48);
    assert_ptr_equal(p, q);
    assert_false(__asan_address_is_poisoned(q));
    assert_false(__asan_address_is_poisoned((char *)q + 47));
    jalloc_free(q);
    jalloc_release();
#endif
}

/* SQLite's statements on the lists: what they free is kept, what they
 * allocate next comes from there, and the rows are right. */
static int
count_row(void *n, int cols, char **v, char **names)
{
    (void)cols;
    (void)names;
    assert_int_equal(strlen(v[0]), 600);
    (*(int *)n)++;
    return 0;
}

static void
test_sqlite(void **state)
{
    sqlite3 *db;
    int n = 0;

    (void)state;
    jalloc_release();
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);"
                                  "CREATE INDEX t_v ON t (v);"
                                  "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                                  "WHERE i < 2000) INSERT INTO t SELECT i, printf('%0600d', i) "
                                  "FROM c;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    size_t kept = jalloc_cached();
    assert_true(kept > 0);
    assert_int_equal(sqlite3_exec(db, "SELECT v FROM t WHERE k % 7 = 0", count_row, &n, NULL),
                     SQLITE_OK);
    assert_int_equal(n, 2000 / 7);
    /* SQLite sizes blocks with malloc_usable_size and reallocates them */
    char *s = sqlite3_mprintf("%0900d", 1);
    assert_true(sqlite3_msize(s) >= 901);
    s = sqlite3_realloc(s, 5000);
    assert_non_null(s);
    assert_int_equal(strlen(s), 900);
    sqlite3_free(s);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_true(jalloc_cached() > kept);
    jalloc_release();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),    cmocka_unit_test(test_jansson),
        cmocka_unit_test(test_cap),      cmocka_unit_test(test_threads),
        cmocka_unit_test(test_huge),     cmocka_unit_test(test_cross_thread),
        cmocka_unit_test(test_poisoned), cmocka_unit_test(test_sqlite),
    };

    jalloc_install();
    /* before SQLite is initialized; a second time it is too late */
    assert_int_equal(jalloc_sqlite_install(), 0);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
    assert_int_equal(jalloc_sqlite_install(), -EBUSY);
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    jalloc_release();
    return r;
}
