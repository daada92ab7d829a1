/* Hostile strings through the real API (master_fixture.h) into the stored
 * spec text (jtext_dumps), the batch reply (jtext_dumps, ASCII) and back:
 * what is taken is stored as json_dumps would write it and read back the
 * same; what is not (NUL, lone surrogates, bytes that are not UTF-8,
 * control characters, a value one byte too long, also where the last
 * character is split) gets 400 and changes nothing. */
#include <sqlite3.h>

#include "master/master_fixture.h"

/* Label values the API takes: escapes, every UTF-8 length, U+2028/9 (that
 * JSON does not escape), and 255 bytes of 3-byte characters. */
static const char *good_values[] = {
    "q\\\"uote\\\\back/slash", "\\u00e9\xe2\x82\xac\xf0\x9f\x98\x80\\ud83d\\ude00",
    "\xe2\x80\xa8\\u2029\xef\xbb\xbf\x7e", NULL, /* euro85() */
};

/* 85 euro signs: 255 bytes, the longest value. */
static void
euro85(void)
{
    static char v[256];

    for (int i = 0; i < 85; i++)
        memcpy(v + 3 * i, "\xe2\x82\xac", 3);
    v[255] = '\0';
    good_values[ARRAY_SIZE(good_values) - 1] = v;
}

/* Bodies the API refuses, each as a label value or key (in JSON text). */
static const char *const bad_labels[] = {
    "\"v\":\"a\\u0000b\"",    /* NUL */
    "\"v\":\"\\ud800\"",      /* lone high surrogate */
    "\"v\":\"\\udc00x\"",     /* lone low surrogate */
    "\"v\":\"a\xff\"",        /* not UTF-8 */
    "\"v\":\"\xc0\xaf\"",     /* overlong */
    "\"v\":\"\xed\xa0\x80\"", /* a surrogate in UTF-8 */
    "\"v\":\"\\u0001\"",      /* a control character */
    "\"v\":\"\\u007f\"",      /* DEL */
    "\"a\\\"b\":\"x\"",       /* a key that is not a name */
    "\"\":\"x\"",             /* an empty key */
    "\"v\\u0000\":\"x\"",     /* a key with NUL */
};

/* The stored spec text of every guest is what json_dumps writes of it,
 * and parses back (as a restarted master reads it). Returns the rows. */
static int
check_store(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rows = 0;

    assert_int_equal(sqlite3_open_v2(F.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT spec FROM guests", -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        json_error_t err;
        json_t *v = json_loads(text, 0, &err);
        if (!v)
            fail_msg("stored spec does not parse: %s: %s", err.text, text);
        char *again = json_dumps(v, JSON_COMPACT);
        assert_string_equal(again, text);
        free(again);
        json_decref(v);
        rows++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rows;
}

static json_t *
labels_of(const char *name)
{
    json_t *o = get_guest(name);
    json_t *l = json_incref(json_object_get(o, "labels"));
    json_decref(o);
    return l;
}

static void
test_labels_round_trip(void **state)
{
    json_t *o = NULL;
    char body[4096];

    euro85();
    for (size_t i = 0; i < ARRAY_SIZE(good_values); i++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"h%zu\",\"template\":\"busybox\",\"labels\":{\"v\":\"%s\"}}", i,
                 good_values[i]);
        json_t *want = json_loads(body, 0, NULL);
        assert_non_null(want);
        assert_int_equal(http("POST", "/v1/guests", body, NULL, &o), 201);
        assert_true(json_equal(json_object_get(o, "labels"), json_object_get(want, "labels")));
        json_decref(o);
        char name[16];
        snprintf(name, sizeof(name), "h%zu", i);
        json_t *l = labels_of(name);
        assert_true(json_equal(l, json_object_get(want, "labels")));
        json_decref(l);
        json_decref(want);
    }
    assert_int_equal(check_store(), (int)ARRAY_SIZE(good_values));
    delete_all_guests();
}

static void
test_bad_labels_refused(void **state)
{
    json_t *o = NULL;
    char body[4096];

    for (size_t i = 0; i < ARRAY_SIZE(bad_labels); i++) {
        snprintf(body, sizeof(body), "{\"name\":\"b%zu\",\"template\":\"busybox\",\"labels\":{%s}}",
                 i, bad_labels[i]);
        int status = http("POST", "/v1/guests", body, NULL, &o);
        if (status != 400)
            fail_msg("label %s: %d", bad_labels[i], status);
        json_decref(o);
        o = NULL;
    }
    /* 256 bytes: 255 ASCII and one more; 254 and a 2-byte character (not cut
     * in the middle of it to fit) */
    char v[300];
    memset(v, 'a', 256);
    v[256] = '\0';
    snprintf(body, sizeof(body),
             "{\"name\":\"long1\",\"template\":\"busybox\",\"labels\":{\"v\":\"%s\"}}", v);
    assert_int_equal(http("POST", "/v1/guests", body, NULL, NULL), 400);
    memcpy(v + 254, "\xc3\xa9", 3);
    snprintf(body, sizeof(body),
             "{\"name\":\"long2\",\"template\":\"busybox\",\"labels\":{\"v\":\"%s\"}}", v);
    assert_int_equal(http("POST", "/v1/guests", body, NULL, NULL), 400);
    /* names: not ASCII, NUL, too long */
    assert_int_equal(
        http("POST", "/v1/guests", "{\"name\":\"a\\u00e9\",\"template\":\"busybox\"}", NULL, NULL),
        400);
    assert_int_equal(
        http("POST", "/v1/guests", "{\"name\":\"a\\u0000b\",\"template\":\"busybox\"}", NULL, NULL),
        400);
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 0);
    json_decref(o);
    assert_int_equal(check_store(), 0);
}

/* A batch mixing taken and refused entries: its reply (ASCII text) parses
 * to the same labels, the refused ones get their error, the store holds
 * json_dumps's text. */
static void
test_batch(void **state)
{
    json_t *req = json_pack("{s:[]}", "guests"), *o = NULL;
    json_t *list = json_object_get(req, "guests");

    euro85();

    for (size_t i = 0; i < ARRAY_SIZE(good_values); i++) {
        char text[1024], name[16];
        snprintf(text, sizeof(text), "\"%s\"", good_values[i]);
        snprintf(name, sizeof(name), "g%zu", i);
        json_t *val = json_loads(text, JSON_DECODE_ANY, NULL);
        assert_non_null(val);
        json_array_append_new(list, json_pack("{s:s, s:s, s:{s:o}}", "name", name, "template",
                                              "busybox", "labels", "v", val));
    }
    /* refused in the batch: a control character, a key that is no name */
    json_array_append_new(list, json_pack("{s:s, s:s, s:{s:s}}", "name", "gbad1", "template",
                                          "busybox", "labels", "v", "a\tb"));
    json_array_append_new(list, json_pack("{s:s, s:s, s:{s:s}}", "name", "gbad2", "template",
                                          "busybox", "labels", "k\"ey", "x"));
    char *body = json_dumps(req, JSON_COMPACT);
    assert_int_equal(http("POST", "/v1/guests:batch", body, NULL, &o), 200);
    free(body);
    json_t *results = json_object_get(o, "results");
    assert_int_equal(json_array_size(results), ARRAY_SIZE(good_values) + 2);
    for (size_t i = 0; i < ARRAY_SIZE(good_values); i++) {
        json_t *want = json_object_get(json_array_get(list, i), "labels");
        assert_true(json_equal(json_object_get(json_array_get(results, i), "labels"), want));
    }
    assert_non_null(json_object_get(json_array_get(results, ARRAY_SIZE(good_values)), "error"));
    assert_non_null(json_object_get(json_array_get(results, ARRAY_SIZE(good_values) + 1), "error"));
    json_decref(o);
    json_decref(req);
    assert_int_equal(check_store(), (int)ARRAY_SIZE(good_values));
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_round_trip),
        cmocka_unit_test(test_bad_labels_refused),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
