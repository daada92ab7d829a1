/* Tests for common/config: INI files through libinih. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/config.h"

static const char sample[] = "top = 1\n"
                             "[node]\n"
                             "name = h1\n"
                             "master = ipc:///run/vfleet/master.sock\n"
                             "disk = 20G\n"
                             "debug = yes\n"
                             "[labels]\n"
                             "zone = a\n"
                             "rack = r7\n"
                             "[node]\n"
                             "name = h2\n";

static void
test_load_and_get(void **state)
{
    config_t *c = NULL;
    uint64_t v;
    bool b;

    assert_int_equal(config_load_string(sample, &c, NULL), 0);
    assert_string_equal(config_get(c, "", "top"), "1");
    /* A later duplicate replaces the earlier value. */
    assert_string_equal(config_get(c, "node", "name"), "h2");
    assert_null(config_get(c, "node", "missing"));
    assert_int_equal(config_get_size(c, "node", "disk", &v), 0);
    assert_true(v == 20ULL << 30);
    assert_int_equal(config_get_bool(c, "node", "debug", &b), 0);
    assert_true(b);
    assert_int_equal(config_get_u64(c, "node", "absent", &v), -ENOENT);
    /* A present but unreadable value is an error, not a silent default. */
    assert_int_equal(config_get_u64(c, "node", "name", &v), -EINVAL);
    assert_int_equal(config_get_bool(c, "node", "master", &b), -EINVAL);
    config_set(c, "node", "name", "h3");
    assert_string_equal(config_get(c, "node", "name"), "h3");
    config_destroy(&c);
    assert_null(c);
    config_destroy(&c); /* NULL-safe */
}

static int
collect(const char *key, const char *value, void *userdata)
{
    char *out = userdata;
    strcat(out, key);
    strcat(out, "=");
    strcat(out, value);
    strcat(out, ";");
    return 0;
}

static void
test_foreach(void **state)
{
    config_t *c = NULL;
    char out[128] = "";

    assert_int_equal(config_load_string(sample, &c, NULL), 0);
    assert_int_equal(config_foreach(c, "labels", collect, out), 0);
    assert_string_equal(out, "zone=a;rack=r7;");
    config_destroy(&c);
}

static void
test_errors(void **state)
{
    config_t *c = NULL;
    int line = 0;

    assert_int_equal(config_load_string("[node]\nname = a\nthis line is bad\n", &c, &line),
                     -EBADMSG);
    assert_int_equal(line, 3);
    assert_null(c);
    assert_int_equal(config_load("/nonexistent/vfleet.conf", &c, &line), -ENOENT);
    assert_null(c);
}

static void
test_file(void **state)
{
    char path[] = "/tmp/vfleet-config-test-XXXXXX";
    int fd = mkstemp(path);
    config_t *c = NULL;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, sample, strlen(sample)), (int)strlen(sample));
    close(fd);
    assert_int_equal(config_load(path, &c, NULL), 0);
    assert_string_equal(config_get(c, "labels", "rack"), "r7");
    config_destroy(&c);
    unlink(path);
}

static void
test_lines_and_origins(void **state)
{
    config_t *c = NULL;
    char buf[128];
    int line = 0;

    assert_int_equal(config_load_string("# comment\n"
                                        "[node]\n"
                                        "name = h1\n"
                                        "\n"
                                        "  master = tcp://m:7401   ; inline comment\n"
                                        "name = h2\n",
                                        &c, &line),
                     0);
    /* An indented line is an ordinary line, not the continuation of the last. */
    assert_string_equal(config_get(c, "node", "master"), "tcp://m:7401");
    assert_string_equal(config_origin(c, "node", "master", "master", buf, sizeof(buf)),
                        "<string>:5");
    /* The later duplicate wins, and its line is the one reported. */
    assert_string_equal(config_origin(c, "node", "name", NULL, buf, sizeof(buf)), "<string>:6");
    assert_string_equal(config_origin(c, "node", "absent", NULL, buf, sizeof(buf)), "(default)");
    config_set(c, "node", "name", "h3");
    assert_string_equal(config_origin(c, "node", "name", "name", buf, sizeof(buf)), "--name");
    assert_string_equal(config_origin(c, "node", "name", NULL, buf, sizeof(buf)),
                        "the command line");
    config_destroy(&c);

    assert_int_equal(config_load_string("", &c, &line), 0);
    assert_null(config_get(c, "node", "name"));
    config_destroy(&c);
}

static void
test_long_line(void **state)
{
    char text[600];
    config_t *c = NULL;
    int line = 0;

    /* 198 characters fit; 250 do not, and libinih would read them as two lines. */
    snprintf(text, sizeof(text), "[node]\nname = %0*d\nok = 1\nlabel = %0*d\n", CONFIG_MAX_LINE - 7,
             0, 250, 0);
    assert_int_equal(config_load_string(text, &c, &line), -EBADMSG);
    assert_int_equal(line, 4);
    assert_null(c);
    snprintf(text, sizeof(text), "[node]\nname = %0*d\n", CONFIG_MAX_LINE - 7, 0);
    assert_int_equal(config_load_string(text, &c, &line), 0);
    assert_int_equal(strlen(config_get(c, "node", "name")), CONFIG_MAX_LINE - 7);
    config_destroy(&c);
}

static int
check_even(const char *key, const char *value, char *why, size_t n)
{
    if (strlen(value) % 2) {
        snprintf(why, n, "\"%s\" has an odd length", value);
        return -EINVAL;
    }
    return 0;
}

static const struct config_key schema[] = {
    {"node", "name", CONFIG_STRING, 0, 8, NULL, "name", NULL, "the name"},
    {"node", "count", CONFIG_U64, 1, 10, NULL, "count", NULL, "a count"},
    {"node", "disk", CONFIG_SIZE, 1024, 0, NULL, NULL, NULL, "a size"},
    {"node", "debug", CONFIG_BOOL, 0, 0, NULL, NULL, NULL, "a switch"},
    {"node", "algo", CONFIG_CHOICE, 0, 0, "spread|binpack", NULL, NULL, "a word"},
    {"node", "ratio", CONFIG_RATIO, 1, 1000, NULL, NULL, NULL, "a ratio"},
    {"node", "even", CONFIG_STRING, 0, 0, NULL, NULL, check_even, "checked"},
    {"labels", "*", CONFIG_STRING, 0, 63, NULL, NULL, NULL, "any label"},
};

/* Loads text, checks it, and returns the error (or "" when it passed). */
static const char *
check(const char *text)
{
    static char err[512];
    config_t *c = NULL;

    err[0] = '\0';
    assert_int_equal(config_load_string(text, &c, NULL), 0);
    int r = config_check(c, schema, sizeof(schema) / sizeof(schema[0]), err, sizeof(err));
    assert_true(r == 0 || r == -EINVAL);
    assert_true((r == 0) == (err[0] == '\0'));
    config_destroy(&c);
    return err;
}

static void
test_check(void **state)
{
    assert_string_equal(check("[node]\nname = h1\ncount = 10\ndisk = 2K\ndebug = off\n"
                              "algo = binpack\nratio = 1.5\neven = ab\n[labels]\nzone = a\n"),
                        "");
    assert_string_equal(check("[node]\nname = h1\nnmae = h2\n"),
                        "<string>:3: [node] nmae: unknown key");
    assert_string_equal(check("[nodes]\nname = h1\n"), "<string>:2: [nodes] name: unknown section");
    assert_string_equal(check("name = h1\n"),
                        "<string>:1: [] name: a key before any [section] header");
    assert_string_equal(check("[node]\ncount = 11\n"),
                        "<string>:2: [node] count: 11 is out of range (1 to 10)");
    assert_string_equal(check("[node]\ncount = 0x3\n"),
                        "<string>:2: [node] count: \"0x3\" is not a whole number");
    assert_string_equal(check("[node]\ndisk = 12Q\n"),
                        "<string>:2: [node] disk: \"12Q\" is not a size (such as 512M, 20G)");
    assert_string_equal(check("[node]\ndisk = 1000\n"),
                        "<string>:2: [node] disk: 1000 is below the least value, 1024");
    assert_string_equal(check("[node]\ndebug = maybe\n"),
                        "<string>:2: [node] debug: \"maybe\" is not a boolean (yes or no)");
    assert_string_equal(check("[node]\nalgo = random\n"),
                        "<string>:2: [node] algo: \"random\" is not one of spread,binpack");
    assert_string_equal(check("[node]\nratio = 0.5\n"),
                        "<string>:2: [node] ratio: \"0.5\" is not a number from 1 to 1000");
    assert_string_equal(check("[node]\nratio = nan\n"),
                        "<string>:2: [node] ratio: \"nan\" is not a number from 1 to 1000");
    assert_string_equal(check("[node]\nname = abcdefghi\n"),
                        "<string>:2: [node] name: longer than 8 characters");
    assert_string_equal(check("[node]\neven = abc\n"),
                        "<string>:2: [node] even: \"abc\" has an odd length");

    /* A value from a flag is reported as the flag. */
    config_t *c = NULL;
    char err[256];
    assert_int_equal(config_load_string("[node]\ncount = 2\n", &c, NULL), 0);
    config_set(c, "node", "count", "99");
    assert_int_equal(config_check(c, schema, sizeof(schema) / sizeof(schema[0]), err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "--count: [node] count: 99 is out of range (1 to 10)");
    config_destroy(&c);
}

static void
test_print_schema(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    config_print_schema(f, schema, sizeof(schema) / sizeof(schema[0]));
    fclose(f);
    assert_non_null(strstr(text, "[node] count"));
    assert_non_null(strstr(text, "number 1-10"));
    assert_non_null(strstr(text, "spread|binpack"));
    assert_non_null(strstr(text, "[labels] *"));
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_get),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_lines_and_origins),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_print_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
