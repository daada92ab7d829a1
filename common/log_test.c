/* Tests for common/log: the line formats, escaping, JSON validity. Lines are
 * captured by pointing stderr at a temporary file. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <sys/stat.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "common/log.h"

/* Runs fn with stderr sent to a temporary file; returns what it wrote. */
static char *
capture(void (*fn)(void))
{
    char path[] = "/tmp/vfleet-log-test-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);

    assert_true(fd >= 0 && saved >= 0);
    unlink(path);
    dup2(fd, STDERR_FILENO);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

static size_t
count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void
emit_text(void)
{
    log_info("guest=%s started", "web1");
    log_debug("not shown at info");
    log_warning("a peer said \"%s\"", "evil\nvfleet-master[1] err: forged");
}

static void
test_text(void **state)
{
    regex_t re;

    unsetenv("JOURNAL_STREAM");
    log_setup("log_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    char *out = capture(emit_text);
    /* Two lines: the debug one is filtered, the newline inside a value is escaped. */
    assert_int_equal(count_lines(out), 2);
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "log_test\\[[0-9]+\\] info: guest=web1 started\n",
                             REG_EXTENDED),
                     0);
    assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
    regfree(&re);
    assert_non_null(strstr(out, " warning: a peer said \"evil\\nvfleet-master[1] err: forged\"\n"));
    free(out);
}

static void
emit_struct(void)
{
    const struct log_field f[] = {
        {"method", "GET", 0},       {"path", "/v1/guests/a b", 0},
        {"status", NULL, 200},      {"bytes", NULL, 1234},
        {"ms", NULL, 1.25},         {"client", "127.0.0.1", 0},
        {"quote", "say \"hi\"", 0}, {"empty", "", 0},
    };
    log_struct(LOG_INFO, f, sizeof(f) / sizeof(f[0]), "%s %s", "GET", "/v1/guests/a b");
}

static void
test_struct_text(void **state)
{
    log_setup("log_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    char *out = capture(emit_struct);
    assert_non_null(strstr(out, " info: GET /v1/guests/a b method=GET path=\"/v1/guests/a b\" "
                                "status=200 bytes=1234 ms=1.250 client=127.0.0.1 "
                                "quote=\"say \\\"hi\\\"\" empty=\"\"\n"));
    free(out);
}

static void
test_struct_json(void **state)
{
    json_error_t jerr;

    log_setup("log_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(emit_struct);
    log_set_format(LOG_FORMAT_TEXT);
    assert_int_equal(count_lines(out), 1);
    json_t *j = json_loads(out, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "ident")), "log_test");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "GET /v1/guests/a b");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/guests/a b");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_true(json_real_value(json_object_get(j, "ms")) == 1.25);
    assert_string_equal(json_string_value(json_object_get(j, "quote")), "say \"hi\"");
    assert_non_null(strchr(json_string_value(json_object_get(j, "time")), 'T'));
    json_decref(j);
    free(out);
}

static void
emit_hostile(void)
{
    char big[3000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_error("bad bytes \xff\xfe \x01 \xc3\xa9 \xed\xa0\x80 end");
    const struct log_field f[] = {{"a", big, 0}, {"b", big, 0}};
    log_struct(LOG_ERR, f, 2, "%s", big);
}

static void
test_json_hostile(void **state)
{
    json_error_t jerr;

    log_setup("log_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_JSON);
    char *out = capture(emit_hostile);
    log_set_format(LOG_FORMAT_TEXT);
    assert_int_equal(count_lines(out), 2);
    char *nl = strchr(out, '\n');
    *nl = '\0';
    /* Invalid UTF-8 and a surrogate become U+FFFD; valid UTF-8 stays. */
    json_t *j = json_loads(out, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "bad bytes \xef\xbf\xbd\xef\xbf\xbd \x01 \xc3\xa9 "
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end");
    json_decref(j);
    /* A line too long for the buffer is still one valid JSON object, marked. */
    j = json_loads(nl + 1, 0, &jerr);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    assert_true(strlen(json_string_value(json_object_get(j, "msg"))) < 512);
    json_decref(j);
    free(out);
}

static void
test_parse(void **state)
{
    assert_int_equal(log_format_from_string("json"), LOG_FORMAT_JSON);
    assert_int_equal(log_format_from_string("text"), LOG_FORMAT_TEXT);
    assert_int_equal(log_format_from_string("xml"), -EINVAL);
    assert_int_equal(log_format_from_string(NULL), -EINVAL);
    assert_int_equal(log_level_from_string("debug"), LOG_DEBUG);
    assert_int_equal(log_level_from_string("warn"), LOG_WARNING);
    assert_int_equal(log_level_from_string("loud"), -EINVAL);
}

static void
emit_one(void)
{
    log_notice("hello");
}

static void
test_journal_prefix(void **state)
{
    /* A service whose stderr is the journal's stream gets "<N>" prefixes. The
     * stream is identified by device and inode, so point it at the capture. */
    char path[] = "/tmp/vfleet-log-test-XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    struct stat st;
    char env[64];

    assert_true(fd >= 0 && fstat(fd, &st) == 0);
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    dup2(fd, STDERR_FILENO);
    log_setup("log_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    emit_one();
    dup2(saved, STDERR_FILENO);
    close(saved);
    unsetenv("JOURNAL_STREAM");
    log_setup("log_test", LOG_SINK_STDERR, LOG_INFO);
    char buf[256] = "";
    assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
    close(fd);
    unlink(path);
    assert_memory_equal(buf, "<5>", 3);
    assert_non_null(strstr(buf, " notice: hello\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),        cmocka_unit_test(test_struct_text),
        cmocka_unit_test(test_struct_json), cmocka_unit_test(test_json_hostile),
        cmocka_unit_test(test_parse),       cmocka_unit_test(test_journal_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
