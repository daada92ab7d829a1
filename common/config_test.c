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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_get),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
