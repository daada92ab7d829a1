/* Tests for master/jtext: the same bytes as json_dumps(JSON_COMPACT [|
 * JSON_ENSURE_ASCII]) over random trees (strings with every kind of
 * character, integers, reals, nesting), and NULL where json_dumps fails. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "master/jtext.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t
next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* A random valid UTF-8 string: ASCII, controls, quotes, backslashes,
 * slashes, 2-, 3- and 4-byte characters. */
static json_t *
rand_string(void)
{
    char buf[128];
    size_t n = 0, want = next() % 24;

    while (n < want && n + 4 < sizeof(buf)) {
        uint32_t cp;
        switch (next() % 8) {
        case 0:
            cp = (uint32_t)(next() % 0x20);
            break;
        case 1:
            cp = "\"\\/\x7f"[next() % 4];
            break;
        case 2:
            cp = 0x80 + (uint32_t)(next() % 0x780);
            break;
        case 3:
            cp = 0x800 + (uint32_t)(next() % 0xF800);
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xE000;
            break;
        case 4:
            cp = 0x10000 + (uint32_t)(next() % 0x100000);
            break;
        default:
            cp = 0x20 + (uint32_t)(next() % 0x5F);
            break;
        }
        if (cp == 0)
            cp = 1; /* json_string takes a C string */
        if (cp < 0x80) {
            buf[n++] = (char)cp;
        } else if (cp < 0x800) {
            buf[n++] = (char)(0xC0 | (cp >> 6));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            buf[n++] = (char)(0xE0 | (cp >> 12));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            buf[n++] = (char)(0xF0 | (cp >> 18));
            buf[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            buf[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            buf[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    buf[n] = '\0';
    json_t *s = json_string(buf);
    assert_non_null(s);
    return s;
}

static const double reals[] = {0.0,         -0.0, 0.5,    3.0,     -2.5,   0.1,     1e20,
                               1e21,        1e-5, 1e-7,   1e300,   5e-324, 1.5e-10, 100.0,
                               123456789.0, 1e17, 2.5e16, -1e-300, 0.001};

static json_t *
rand_value(int depth)
{
    switch (next() % (depth > 4 ? 6 : 8)) {
    case 0:
        return rand_string();
    case 1: {
        json_int_t v = (json_int_t)next();
        return json_integer(next() % 2 ? v : v % 1000);
    }
    case 2:
        return json_real(reals[next() % (sizeof(reals) / sizeof(reals[0]))]);
    case 3:
        return json_boolean(next() % 2);
    case 4:
        return json_null();
    case 5:
        return json_real((double)(int64_t)next() / (double)(1 + next() % 1000000));
    case 6: {
        json_t *a = json_array();
        size_t n = next() % 6;
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, rand_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        size_t n = next() % 6;
        for (size_t i = 0; i < n; i++) {
            json_t *k = rand_string();
            json_object_set_new(o, json_string_value(k), rand_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

static void
same(const json_t *v)
{
    for (int ascii = 0; ascii < 2; ascii++) {
        char *want = json_dumps(v, JSON_COMPACT | (ascii ? JSON_ENSURE_ASCII : 0));
        char *got = jtext_dumps(v, ascii);
        if (!want)
            assert_null(got);
        else {
            assert_non_null(got);
            assert_string_equal(got, want);
        }
        free(want);
        free(got);
    }
}

static void
test_random_trees(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        json_t *o = json_object();
        size_t n = 1 + next() % 8;
        for (size_t k = 0; k < n; k++) {
            char key[24];
            snprintf(key, sizeof(key), "k%zu", k);
            json_object_set_new(o, key, rand_value(0));
        }
        same(o);
        json_t *a = json_pack("[o]", o);
        same(a);
        json_decref(a);
    }
}

static void
test_edges(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:{}, s:[], s:[{}], s:I, s:I, s:s}", "e", "a", "n", "min",
                          (json_int_t)INT64_MIN, "max", (json_int_t)INT64_MAX, "", "");
    same(v);
    json_decref(v);
    /* keys keep the order they were set in, a replaced one its place */
    v = json_pack("{s:i, s:i, s:i}", "z", 1, "a", 2, "m", 3);
    json_object_set_new(v, "a", json_string("again"));
    same(v);
    char *t = jtext_dumps(v, false);
    assert_string_equal(t, "{\"z\":1,\"a\":\"again\",\"m\":3}");
    free(t);
    json_decref(v);
    /* not UTF-8 (only nocheck makes one): NULL, as json_dumps */
    v = json_pack("{s:o}", "bad", json_stringn_nocheck("a\xff", 2));
    same(v);
    assert_null(jtext_dumps(v, false));
    json_decref(v);
    v = json_pack("{s:o}", "overlong", json_stringn_nocheck("\xc0\xaf", 2));
    same(v);
    json_decref(v);
    v = json_pack("{s:o}", "surrogate", json_stringn_nocheck("\xed\xa0\x80", 3));
    same(v);
    json_decref(v);
    v = json_pack("{s:o}", "nul", json_stringn("a\0b", 3));
    same(v);
    json_decref(v);
    /* a root that is not a container */
    v = json_string("x");
    assert_null(jtext_dumps(v, false));
    json_decref(v);
}

/* Text as the API parses it (json_loadb, NUL allowed here too), dumped by
 * both, and parsed back by the master after a restart to the same tree. */
static void
same_parsed(const char *text, size_t flags)
{
    json_error_t err;
    json_t *v = json_loads(text, flags, &err);

    if (!v)
        fail_msg("%s: %s", text, err.text);
    same(v);
    for (int ascii = 0; ascii < 2; ascii++) {
        char *t = jtext_dumps(v, ascii);
        assert_non_null(t);
        json_t *back = json_loads(t, flags, &err);
        assert_non_null(back);
        assert_true(json_equal(v, back));
        json_decref(back);
        free(t);
    }
    json_decref(v);
}

static void
test_hostile_parsed(void **state)
{
    (void)state;
    /* keys and values with every escape, the edges of each UTF-8 length,
     * a surrogate pair, U+2028/9 (not escaped by jansson), BOM, DEL */
    same_parsed("{\"k\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u0080\\u07ff\\u0800\\uffff"
                "\\ud800\\udc00\\udbff\\udfff\\u2028\\u2029\\ufeff\":\"v\\u00e9\\ud83d\\ude00\","
                "\"\":\"\",\"labels\":{\"a b\":\"\\u0000x\"}}",
                JSON_ALLOW_NUL);
    same_parsed("[\"a\\u0000\",\"\\u0000\",\"\\u0000\\u0000\\u00ff\"]", JSON_ALLOW_NUL);
    /* numbers at their edges */
    same_parsed("[0,-0,-0.0,0.0,1e308,-1e308,4.9e-324,2.2250738585072014e-308,"
                "1.7976931348623157e308,9223372036854775807,-9223372036854775808,0.1,1e-7,"
                "123456789012345678e-3,1E+2,1.0,100,1e16,1e17,12345678901234567890.0,"
                "0.30000000000000004,5e-324,1e-320]",
                0);
    /* a long string of mixed content, as a label could be at 1 MiB */
    size_t n = 1 << 20;
    char *big = malloc(n + 16);
    assert_non_null(big);
    size_t k = 0;
    big[k++] = '[';
    big[k++] = '"';
    while (k < n) {
        static const char *const parts[] = {
            "abc", "\\n", "\\u00e9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\\"", "\\u0001"};
        const char *p = parts[k % 7];
        memcpy(big + k, p, strlen(p));
        k += strlen(p);
    }
    big[k++] = '"';
    big[k++] = ']';
    big[k] = '\0';
    same_parsed(big, 0);
    free(big);
}

/* Nesting as deep as the parser takes (its limit, 2048) dumps the same. */
static void
test_deep(void **state)
{
    (void)state;
    enum { D = 2048 };
    char *t = malloc(2 * D + 1);
    assert_non_null(t);
    memset(t, '[', D);
    memset(t + D, ']', D);
    t[2 * D] = '\0';
    same_parsed(t, 0);
    /* one more is refused by the parser, so cannot come from a body */
    t = realloc(t, 2 * D + 3);
    assert_non_null(t);
    memset(t, '[', D + 1);
    memset(t + D + 1, ']', D + 1);
    t[2 * D + 2] = '\0';
    assert_null(json_loads(t, 0, NULL));
    free(t);
    /* A tree built in code deeper than that: json_dumps writes it, jtext
     * refuses it (jtext.h: its depth bound, JTEXT_MAX_DEPTH). */
    json_t *v = json_array();
    for (int i = 0; i < D + 10; i++)
        v = json_pack("[o]", v);
    char *want = json_dumps(v, JSON_COMPACT);
    assert_non_null(want);
    assert_null(jtext_dumps(v, false));
    free(want);
    json_decref(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_trees),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_hostile_parsed),
        cmocka_unit_test(test_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
