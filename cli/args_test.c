/* Tests for cli/args: `guest create` and `guest set` arguments to JSON
 * bodies, label parsing, and the usage errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli/args.h"
#include "common/mem.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
/* getopt permutes argv, so every call gets a fresh compound literal. */
#define CREATE(out, err, ...)                                                                      \
    args_guest_create(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (out), (err), sizeof(err))
#define SET(out, err, ...)                                                                         \
    args_guest_set(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (out), (err), sizeof(err))

/* Asserts that j equals the JSON text want. */
static void
json_is(const json_t *j, const char *want)
{
    json_error_t e;
    json_t *w = json_loads(want, 0, &e);
    assert_non_null(w);
    if (!json_equal((json_t *)j, w)) {
        char *got = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        print_error("got  %s\nwant %s\n", got, want);
        free(got);
        fail();
    }
    json_decref(w);
}

static void
test_create_full_body(void **state)
{
    struct args_create a;
    char err[256] = "";

    int r =
        CREATE(&a, err, "create", "--template", "busybox", "web1", "--memory", "256M", "--disk",
               "1G", "--inodes", "100000", "--procs", "64", "--cpu", "0.5", "--cpu-weight", "200",
               "--nofile", "1024", "--ip", "auto", "--ip", "10.88.0.7", "--label", "tier=web",
               "--label", "env=", "--constraint", "zone=a", "--group", "web", "--node", "h1",
               "--algorithm", "binpack", "--wait", "--timeout", "30", "--idempotency-key", "key-1");
    assert_string_equal(err, "");
    assert_int_equal(r, 0);
    assert_string_equal(a.name, "web1");
    assert_true(a.wait);
    assert_int_equal(a.timeout, 30);
    assert_string_equal(a.idempotency_key, "key-1");
    json_is(a.body, "{\"name\":\"web1\",\"template\":\"busybox\","
                    "\"limits\":{\"memory\":268435456,\"disk\":1073741824,\"inodes\":100000,"
                    "\"procs\":64,\"cpu_max\":0.5,\"cpu_weight\":200,\"nofile\":1024},"
                    "\"ips\":[\"auto\",\"10.88.0.7\"],\"labels\":{\"tier\":\"web\",\"env\":\"\"},"
                    "\"constraints\":{\"zone\":\"a\"},\"group\":\"web\",\"node\":\"h1\","
                    "\"algorithm\":\"binpack\"}");
    args_create_clear(&a);
    assert_null(a.body);
}

static void
test_create_minimal_body(void **state)
{
    struct args_create a;
    char err[256] = "";

    assert_int_equal(CREATE(&a, err, "create", "db", "--template", "debian"), 0);
    /* Nothing the operator did not ask for: the master fills in defaults. */
    json_is(a.body, "{\"name\":\"db\",\"template\":\"debian\"}");
    assert_false(a.wait);
    assert_int_equal(a.timeout, 0);
    assert_string_equal(a.idempotency_key, "");
    args_create_clear(&a);
}

/* Every limit flag lands in its own member of "limits", as a number. */
static void
test_every_limit_flag(void **state)
{
    static const struct {
        const char *flag, *value, *json;
    } cases[] = {
        {"--procs", "64", "{\"procs\":64}"},
        {"--memory", "1.5G", "{\"memory\":1610612736}"},
        {"--rss", "128M", "{\"rss\":134217728}"},
        {"--swap", "0", "{\"swap\":0}"},
        {"--cpu", "2", "{\"cpu_max\":2.0}"},
        {"--cpu-burst", "0.25", "{\"cpu_burst\":0.25}"},
        {"--cpu-weight", "10000", "{\"cpu_weight\":10000}"},
        {"--io-weight", "1", "{\"io_weight\":1}"},
        {"--disk", "4096", "{\"disk\":4096}"},
        {"--inodes", "5", "{\"inodes\":5}"},
        {"--nofile", "65536", "{\"nofile\":65536}"},
        {"--tcp-sockets", "100", "{\"tcp_sockets\":100}"},
        {"--net-in", "10mbit", "{\"net_in\":10000000}"},
        {"--net-out", "1mbps", "{\"net_out\":8000000}"},
    };
    /* A limit added to proto/spec_fields.h needs its case here. */
    assert_int_equal(ARRAY_SIZE(cases), SPEC_N_LIMITS);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct args_set s;
        char err[256] = "";
        char *flag = (char *)cases[i].flag, *value = (char *)cases[i].value;
        int r = SET(&s, err, "set", "g1", flag, value);
        if (r != 0)
            print_error("%s %s: %s\n", flag, value, err);
        assert_int_equal(r, 0);
        json_is(json_object_get(s.body, "limits"), cases[i].json);
        args_set_clear(&s);
    }
}

static void
expect_create_error(char **argv, int argc, const char *needle)
{
    struct args_create a;
    char err[256] = "";
    int r = args_guest_create(argc, argv, &a, err, sizeof(err));
    if (r != -EINVAL || !strstr(err, needle))
        print_error("r=%d err=\"%s\" want \"%s\"\n", r, err, needle);
    assert_int_equal(r, -EINVAL);
    assert_non_null(strstr(err, needle));
    assert_null(a.body);
}

#define CREATE_FAILS(needle, ...) expect_create_error(ARGV(__VA_ARGS__), ARGC(__VA_ARGS__), needle)

static void
test_create_errors(void **state)
{
    CREATE_FAILS("--template is required", "create", "web1");
    CREATE_FAILS("missing NAME", "create", "--template", "busybox");
    CREATE_FAILS("unexpected argument \"web2\"", "create", "web1", "web2", "--template", "t");
    CREATE_FAILS("not a valid name", "create", "Web_1", "--template", "busybox");
    CREATE_FAILS("not a valid template", "create", "web1", "--template", "../etc");
    CREATE_FAILS("not a size", "create", "web1", "--template", "t", "--memory", "12Q");
    CREATE_FAILS("too large", "create", "web1", "--template", "t", "--memory", "15E");
    CREATE_FAILS("not a whole number", "create", "web1", "--template", "t", "--procs", "-1");
    CREATE_FAILS("CPU cores", "create", "web1", "--template", "t", "--cpu", "0");
    CREATE_FAILS("CPU cores", "create", "web1", "--template", "t", "--cpu", "inf");
    CREATE_FAILS("CPU cores", "create", "web1", "--template", "t", "--cpu", "1e3");
    CREATE_FAILS("CPU cores", "create", "web1", "--template", "t", "--cpu", "5000");
    CREATE_FAILS("weight is 1 to 10000", "create", "web1", "--template", "t", "--cpu-weight", "0");
    CREATE_FAILS("weight is 1 to 10000", "create", "web1", "--template", "t", "--io-weight",
                 "10001");
    /* The ceiling comes from the limits table: 1024 cores, as the master checks. */
    CREATE_FAILS("up to 1024", "create", "web1", "--template", "t", "--cpu", "1025");
    CREATE_FAILS("up to 1024", "create", "web1", "--template", "t", "--cpu-burst", "2000");
    /* Not zero, but zero once rounded: refused, never sent as 0 ("not set"). */
    CREATE_FAILS("from 0.001", "create", "web1", "--template", "t", "--cpu", "0.0001");
    CREATE_FAILS("less than one byte", "create", "web1", "--template", "t", "--memory",
                 "0.0000001K");
    CREATE_FAILS("less than one byte", "create", "web1", "--template", "t", "--disk", "0.5");
    CREATE_FAILS("less than one bit/s", "create", "web1", "--template", "t", "--net-in", "0.1bit");
    CREATE_FAILS("not a rate", "create", "web1", "--template", "t", "--net-in", "fast");
    CREATE_FAILS("expected KEY=VALUE", "create", "web1", "--template", "t", "--label", "tier");
    CREATE_FAILS("key must be", "create", "web1", "--template", "t", "--label", "Tier=web");
    CREATE_FAILS("key must be", "create", "web1", "--template", "t", "--constraint", "=a");
    CREATE_FAILS("control character", "create", "web1", "--template", "t", "--label", "tier=a\nb");
    CREATE_FAILS("not \"auto\" or an IP", "create", "web1", "--template", "t", "--ip",
                 "10.0.0.0/8");
    CREATE_FAILS("spread or binpack", "create", "web1", "--template", "t", "--algorithm", "rr");
    CREATE_FAILS("only applies with --wait", "create", "web1", "--template", "t", "--timeout", "5");
    CREATE_FAILS("seconds, 1 to", "create", "web1", "--template", "t", "--wait", "--timeout", "0");
    CREATE_FAILS("1 to 36 letters", "create", "web1", "--template", "t", "--idempotency-key",
                 "0123456789012345678901234567890123456789");
    CREATE_FAILS("1 to 36 letters", "create", "web1", "--template", "t", "--idempotency-key",
                 "a b");
    CREATE_FAILS("unknown option \"--bogus\"", "create", "web1", "--template", "t", "--bogus");
    CREATE_FAILS("needs a value", "create", "web1", "--template");
}

static void
test_create_help(void **state)
{
    struct args_create a;
    char err[64] = "";
    assert_int_equal(CREATE(&a, err, "create", "--help"), ARGS_HELP);
    assert_null(a.body);
}

static void
test_set_body(void **state)
{
    struct args_set s;
    char err[256] = "";

    int r = SET(&s, err, "set", "web1", "--memory", "512M", "--label", "tier=db", "--unlabel",
                "old", "--flags", "private,lock");
    assert_string_equal(err, "");
    assert_int_equal(r, 0);
    assert_string_equal(s.name, "web1");
    /* A JSON merge patch: null removes a label. */
    json_is(s.body, "{\"limits\":{\"memory\":536870912},\"labels\":{\"tier\":\"db\",\"old\":null},"
                    "\"flags\":[\"private\",\"lock\"]}");
    args_set_clear(&s);

    assert_int_equal(SET(&s, err, "set", "web1", "--flags", "none"), 0);
    json_is(s.body, "{\"flags\":[]}");
    args_set_clear(&s);
}

static void
test_set_errors(void **state)
{
    struct args_set s;
    char err[256] = "";

    assert_int_equal(SET(&s, err, "set", "web1"), -EINVAL);
    assert_non_null(strstr(err, "nothing to change"));
    assert_int_equal(SET(&s, err, "set", "web1", "--flags", "root"), -EINVAL);
    assert_non_null(strstr(err, "private, lock, privileged (admin) and nesting (admin)"));
    assert_int_equal(SET(&s, err, "set", "web1", "--flags", ","), -EINVAL);
    assert_int_equal(SET(&s, err, "set", "web1", "--unlabel", "a=b"), -EINVAL);
    assert_int_equal(SET(&s, err, "set", "--memory", "1G"), -EINVAL);
    assert_non_null(strstr(err, "missing NAME"));
    /* create-only flags are not accepted by set. */
    assert_int_equal(SET(&s, err, "set", "web1", "--template", "x"), -EINVAL);
    assert_null(s.body);
}

static void
test_kv_put(void **state)
{
    json_t *o = json_object();
    char err[256] = "";
    char longval[300];

    assert_int_equal(args_kv_put(o, "a=b=c", "label", err, sizeof(err)), 0);
    json_is(o, "{\"a\":\"b=c\"}"); /* only the first '=' splits */
    memset(longval, 'v', sizeof(longval));
    memcpy(longval, "k=", 2);
    longval[sizeof(longval) - 1] = '\0';
    assert_int_equal(args_kv_put(o, longval, "label", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than 255"));
    assert_int_equal(args_kv_put(o, "k=\xff", "label", err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "UTF-8"));
    assert_int_equal(json_object_size(o), 1);
    json_decref(o);
}

static void
test_scalar_parsers(void **state)
{
    uint64_t v;
    double d;
    long t;

    assert_int_equal(args_size("8E", &v), -ERANGE); /* does not fit a JSON integer */
    assert_int_equal(args_size("7E", &v), 0);
    assert_int_equal(args_count("9223372036854775808", &v), -ERANGE);
    assert_int_equal(args_cpu("0.001", &d), 0);
    assert_int_equal(args_cpu(" 1", &d), -EINVAL);
    assert_int_equal(args_cpu("1.5.2", &d), -EINVAL);
    assert_int_equal(args_cpu("0x10", &d), -EINVAL);
    assert_int_equal(args_timeout("86400", &t), 0);
    assert_int_equal(args_timeout("86401", &t), -ERANGE);
    assert_int_equal(args_size("0.0000001K", &v), -ERANGE);
}

/* The first "--" after the command's own name, argv[0], splits exec's and
 * shell's arguments: a later one belongs to the guest's command. */
static void
test_dash(void **state)
{
    char *none[] = {"exec", "g1"}, *one[] = {"exec", "g1", "--", "ls", "--", "-l"};
    char *first[] = {"--", "g1"};

    (void)state;
    assert_int_equal(args_dash(2, none), -1);
    assert_int_equal(args_dash(6, one), 2);
    assert_int_equal(args_dash(2, first), -1);
    assert_int_equal(args_dash(0, none), -1);
}

/* The smallest values that are not zero still reach the master. */
static void
test_smallest_limits(void **state)
{
    struct args_set s;
    char err[256] = "";

    assert_int_equal(SET(&s, err, "set", "g1", "--cpu", "0.0005", "--memory", "0.001K", "--net-out",
                         "0.001kbit"),
                     0);
    json_is(json_object_get(s.body, "limits"), "{\"cpu_max\":0.0005,\"memory\":1,\"net_out\":1}");
    args_set_clear(&s);
    assert_int_equal(SET(&s, err, "set", "g1", "--memory", "0", "--cpu", "1024"), 0);
    json_is(json_object_get(s.body, "limits"), "{\"memory\":0,\"cpu_max\":1024.0}");
    args_set_clear(&s);
}

/* --help lists every limit flag with its help text from the table. */
static void
test_limits_help(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    args_limits_help(f);
    fclose(f);
    assert_non_null(strstr(text, "  --memory SIZE         memory hard limit\n"));
    assert_non_null(strstr(text, "  --cpu CORES           CPU ceiling\n"));
    assert_non_null(strstr(text, "  --tcp-sockets N       established TCP connections\n"));
    assert_non_null(strstr(text, "  --net-in RATE         inbound rate\n"));
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, SPEC_N_LIMITS + 2); /* a line per limit, two about the forms */
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_full_body), cmocka_unit_test(test_create_minimal_body),
        cmocka_unit_test(test_every_limit_flag), cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_help),      cmocka_unit_test(test_set_body),
        cmocka_unit_test(test_set_errors),       cmocka_unit_test(test_kv_put),
        cmocka_unit_test(test_scalar_parsers),   cmocka_unit_test(test_smallest_limits),
        cmocka_unit_test(test_limits_help),      cmocka_unit_test(test_dash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
