/* Tests for proto/spec_json: the guest spec and usage as JSON, strictly read. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/mem.h"
#include "proto/spec_json.h"

#define ID "0f8e4a52-3c1d-4b7a-9e21-5d6c7b8a9f01"

/* A spec with every field set to something other than its zero value. */
static void
full_spec(struct guest_spec *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, ID);
    strcpy(s->name, "web1");
    s->generation = 3;
    strcpy(s->template_name, "busybox");
    strcpy(s->init, "/sbin/init");
    strcpy(s->domainname, "example.org");
    s->halt_signal = SIGPWR;
    s->stop_timeout = 45;
    s->flags = SPEC_FLAG_PRIVATE | SPEC_FLAG_LOCK;
    s->autostart = true;
    /* Field by field: a compound literal may bring uninitialised padding. */
    s->limits.procs = 64;
    s->limits.memory = 256ULL << 20;
    s->limits.rss = 200ULL << 20;
    s->limits.swap = 64ULL << 20;
    s->limits.cpu_weight = 200;
    s->limits.cpu_max = 1500;
    s->limits.cpu_burst = 250;
    s->limits.io_weight = 300;
    s->limits.disk = 1ULL << 30;
    s->limits.inodes = 100000;
    s->limits.nofile = 1024;
    s->limits.tcp_sockets = 500;
    s->limits.net_in = 10000000;
    s->limits.net_out = 20000000;
    s->limits.n_io_devs = 2;
    s->limits.io_devs[0] = (struct spec_io_dev){8, 0, 1000, 2000, 30, 40};
    s->limits.io_devs[1] = (struct spec_io_dev){253, 7, 5, 6, 7, 8};
    s->caps_add = 1ULL << spec_cap_from_name("net_admin");
    s->caps_drop = 1ULL << spec_cap_from_name("mknod");
    s->n_addrs = 3;
    assert_int_equal(netaddr_parse("10.0.0.5", &s->addrs[0]), 0);
    assert_int_equal(netaddr_parse("2001:db8::5", &s->addrs[1]), 0);
    assert_int_equal(netaddr_parse("192.0.2.0/24", &s->addrs[2]), 0);
    s->n_labels = 2;
    strcpy(s->labels[0].key, "tier");
    strcpy(s->labels[0].value, "web");
    strcpy(s->labels[1].key, "owner");
    strcpy(s->labels[1].value, "Team Blue");
}

static json_t *
parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return j;
}

/* Applies text to *s and returns the result; errfield gets the field. */
static int
apply(struct guest_spec *s, const char *text, char *errfield)
{
    json_t *j = parse(text);
    int r = spec_from_json(j, s, errfield, 64);
    json_decref(j);
    return r;
}

static void
test_round_trip(void **state)
{
    _cleanup_free_ struct guest_spec *a = xmalloc(sizeof(*a));
    _cleanup_free_ struct guest_spec *b = xcalloc(1, sizeof(*b));
    _cleanup_free_ char *text = NULL;
    char errfield[64];
    json_t *j, *back;

    full_spec(a);
    assert_int_equal(spec_validate(a, NULL), 0);
    j = spec_to_json(a);
    /* Through text, as the store and the API do. */
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    back = parse(text);
    assert_int_equal(spec_from_json(back, b, errfield, sizeof(errfield)), 0);
    json_decref(back);
    assert_memory_equal(a, b, sizeof(*a));

    /* The emitted shape is the API's. */
    assert_non_null(strstr(text, "\"template\":\"busybox\""));
    assert_non_null(strstr(text, "\"halt_signal\":\"SIGPWR\""));
    assert_non_null(strstr(text, "\"flags\":[\"private\",\"lock\"]"));
    assert_non_null(strstr(text, "\"cpu_max\":1.5"));
    assert_non_null(strstr(text, "\"cpu_burst\":0.25"));
    assert_non_null(strstr(text, "\"memory\":268435456"));
    assert_non_null(strstr(text, "\"device\":\"8:0\""));
    assert_non_null(strstr(text, "\"caps_add\":[\"net_admin\"]"));
    assert_non_null(strstr(text, "\"ips\":[\"10.0.0.5\",\"2001:db8::5\",\"192.0.2.0/24\"]"));
    assert_non_null(strstr(text, "\"labels\":{\"tier\":\"web\",\"owner\":\"Team Blue\"}"));
}

/* Zero values (unset limits, default signal) and huge values round-trip too. */
static void
test_round_trip_edges(void **state)
{
    _cleanup_free_ struct guest_spec *a = xcalloc(1, sizeof(*a));
    _cleanup_free_ struct guest_spec *b = xcalloc(1, sizeof(*b));
    json_t *j;

    strcpy(a->id, ID);
    strcpy(a->name, "a");
    a->generation = UINT64_MAX;
    strcpy(a->template_name, "t");
    a->limits.memory = UINT64_MAX;
    a->limits.cpu_max = 1;
    a->halt_signal = (uint32_t)SIGRTMIN + 2;
    j = spec_to_json(a);
    assert_string_equal(json_string_value(json_object_get(j, "init")), "");
    assert_string_equal(json_string_value(json_object_get(j, "generation")),
                        "18446744073709551615");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "limits"), "procs")), 0);
    assert_int_equal(spec_from_json(j, b, NULL, 0), 0);
    json_decref(j);
    assert_memory_equal(a, b, sizeof(*a));

    a->halt_signal = 0;
    j = spec_to_json(a);
    assert_string_equal(json_string_value(json_object_get(j, "halt_signal")), "");
    assert_int_equal(spec_from_json(j, b, NULL, 0), 0);
    assert_int_equal(b->halt_signal, 0);
    json_decref(j);
}

static void
test_size_forms(void **state)
{
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));
    char f[64];

    full_spec(s);
    assert_int_equal(apply(s, "{\"limits\":{\"memory\":1048576,\"rss\":0}}", f), 0);
    assert_true(s->limits.memory == 1048576);
    assert_int_equal(apply(s, "{\"limits\":{\"memory\":\"256M\"}}", f), 0);
    assert_true(s->limits.memory == 256ULL << 20);
    assert_int_equal(apply(s, "{\"limits\":{\"memory\":\"1.5G\",\"rss\":\"512K\"}}", f), 0);
    assert_true(s->limits.memory == 1610612736ULL);
    assert_true(s->limits.rss == 512ULL << 10);
    assert_int_equal(apply(s, "{\"limits\":{\"swap\":\"1GB\",\"disk\":\"2T\"}}", f), 0);
    assert_true(s->limits.swap == 1000000000ULL);
    assert_true(s->limits.disk == 2ULL << 40);
    assert_int_equal(apply(s, "{\"limits\":{\"disk\":\"4096\"}}", f), 0);
    assert_true(s->limits.disk == 4096);
    assert_int_equal(apply(s, "{\"limits\":{\"net_in\":\"10mbit\",\"net_out\":5000}}", f), 0);
    assert_true(s->limits.net_in == 10000000ULL);
    assert_true(s->limits.net_out == 5000);
    assert_int_equal(apply(s, "{\"limits\":{\"net_out\":\"1mbps\"}}", f), 0);
    assert_true(s->limits.net_out == 8000000ULL);
    assert_int_equal(
        apply(s, "{\"limits\":{\"io\":[{\"device\":\"8:16\",\"read_bps\":\"10M\"}]}}", f), 0);
    assert_int_equal(s->limits.n_io_devs, 1);
    assert_int_equal(s->limits.io_devs[0].minor, 16);
    assert_true(s->limits.io_devs[0].read_bps == 10ULL << 20);
    assert_true(s->limits.io_devs[0].write_iops == 0);
    /* Cores: integers and fractions, rounded to millicores. */
    assert_int_equal(apply(s, "{\"limits\":{\"cpu_max\":2,\"cpu_burst\":0.0005}}", f), 0);
    assert_int_equal(s->limits.cpu_max, 2000);
    assert_int_equal(s->limits.cpu_burst, 1);
    assert_int_equal(apply(s, "{\"limits\":{\"cpu_burst\":0}}", f), 0);
    assert_int_equal(s->limits.cpu_burst, 0);
    assert_int_equal(apply(s, "{\"limits\":{\"cpu_max\":0.0015}}", f), 0);
    assert_int_equal(s->limits.cpu_max, 2);
    /* Signal spellings. */
    assert_int_equal(apply(s, "{\"halt_signal\":\"TERM\"}", f), 0);
    assert_int_equal(s->halt_signal, SIGTERM);
    assert_int_equal(apply(s, "{\"halt_signal\":\"sigint\"}", f), 0);
    assert_int_equal(s->halt_signal, SIGINT);
    assert_int_equal(apply(s, "{\"halt_signal\":10}", f), 0);
    assert_int_equal(s->halt_signal, 10);
    assert_int_equal(apply(s, "{\"halt_signal\":\"SIGRTMIN+3\"}", f), 0);
    assert_int_equal(s->halt_signal, SIGRTMIN + 3);
}

/* One bad body: must fail with -EINVAL, name want, and leave the spec alone. */
static void
bad(const char *text, const char *want)
{
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));
    _cleanup_free_ struct guest_spec *orig = xmalloc(sizeof(*orig));
    char f[64] = "unset";

    full_spec(s);
    memcpy(orig, s, sizeof(*s));
    if (apply(s, text, f) != -EINVAL)
        fail_msg("accepted: %s", text);
    if (strcmp(f, want) != 0)
        fail_msg("%s: errfield \"%s\", want \"%s\"", text, f, want);
    assert_memory_equal(s, orig, sizeof(*s));
}

static void
test_errors(void **state)
{
    char big[600];
    char f[64];
    json_t *arr;
    char *text;

    /* Unknown keys, at every level. */
    bad("{\"nmae\":\"x\"}", "nmae");
    bad("{\"limits\":{\"memry\":1}}", "limits.memry");
    bad("{\"limits\":{\"io\":[{\"device\":\"8:0\",\"reed_bps\":1}]}}", "limits.io[0].reed_bps");
    /* Negative numbers. */
    bad("{\"generation\":-1}", "generation");
    bad("{\"limits\":{\"procs\":-5}}", "limits.procs");
    bad("{\"limits\":{\"memory\":-1}}", "limits.memory");
    bad("{\"stop_timeout\":-1}", "stop_timeout");
    bad("{\"limits\":{\"cpu_max\":-0.5}}", "limits.cpu_max");
    /* Wrong types. */
    bad("[]", "(root)");
    bad("{\"name\":5}", "name");
    bad("{\"autostart\":\"yes\"}", "autostart");
    bad("{\"autostart\":null}", "autostart");
    bad("{\"limits\":[]}", "limits");
    bad("{\"limits\":{\"procs\":1.5}}", "limits.procs");
    bad("{\"limits\":{\"cpu_max\":\"0.5\"}}", "limits.cpu_max");
    bad("{\"flags\":\"lock\"}", "flags");
    bad("{\"labels\":{\"tier\":1}}", "labels");
    bad("{\"ips\":\"10.0.0.1\"}", "ips");
    /* Unreadable values. */
    bad("{\"limits\":{\"memory\":\"12Q\"}}", "limits.memory");
    bad("{\"limits\":{\"disk\":\"16E\"}}", "limits.disk");
    bad("{\"limits\":{\"net_in\":\"fast\"}}", "limits.net_in");
    bad("{\"limits\":{\"io\":[{\"device\":\"8\"}]}}", "limits.io[0].device");
    bad("{\"limits\":{\"io\":[{\"device\":\"8:0x\"}]}}", "limits.io[0].device");
    bad("{\"limits\":{\"io\":[{\"read_bps\":1}]}}", "limits.io[0].device");
    bad("{\"halt_signal\":\"SIGFOO\"}", "halt_signal");
    bad("{\"halt_signal\":9999}", "halt_signal");
    bad("{\"flags\":[\"frozen\"]}", "flags[0]");
    bad("{\"stop_timeout\":4294967296}", "stop_timeout");
    /* Bad addresses, too many addresses. */
    bad("{\"ips\":[\"10.0.0.1\",\"10.0.0.300\"]}", "ips[1]");
    bad("{\"ips\":[\"10.0.0.1/33\"]}", "ips[0]");
    bad("{\"ips\":[\"10.0.0.1\",\"10.0.0.1\"]}", "ips");
    arr = json_array();
    for (int i = 0; i <= SPEC_MAX_ADDRS; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.1.0.%d", i);
        json_array_append_new(arr, json_string(a));
    }
    json_t *o = json_pack("{s:o}", "ips", arr);
    text = json_dumps(o, 0);
    json_decref(o);
    bad(text, "ips");
    free(text);
    /* Capability names. */
    bad("{\"caps_add\":[\"net_admin\",\"net_wizard\"]}", "caps_add[1]");
    bad("{\"caps_drop\":[7]}", "caps_drop[0]");
    /* cpu_max out of range. */
    bad("{\"limits\":{\"cpu_max\":1025}}", "limits.cpu_max");
    bad("{\"limits\":{\"cpu_burst\":5000}}", "limits.cpu_burst");
    /* String overflow: every string field has a bound. */
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    text = xasprintf("{\"name\":\"%.64s\"}", big);
    bad(text, "name");
    free(text);
    text = xasprintf("{\"init\":\"/%.255s\"}", big);
    bad(text, "init");
    free(text);
    text = xasprintf("{\"labels\":{\"k\":\"%.256s\"}}", big);
    bad(text, "labels");
    free(text);
    text = xasprintf("{\"labels\":{\"%.64s\":\"v\"}}", big);
    bad(text, "labels");
    free(text);
    /* jansson refuses \u0000 unless asked; the API reads with JSON_ALLOW_NUL off, but a
     * string built in memory can still carry one. */
    {
        _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));
        json_t *j = json_pack("{s:s#}", "name", "we\0b", (size_t)4);
        full_spec(s);
        assert_int_equal(spec_from_json(j, s, f, sizeof(f)), -EINVAL);
        assert_string_equal(f, "name");
        json_decref(j);
    }
    /* spec_validate's own checks come through with its field name. */
    bad("{\"name\":\"Web1\"}", "name");
    bad("{\"id\":\"not-a-uuid\"}", "id");
    bad("{\"init\":\"sbin/init\"}", "init");
    bad("{\"limits\":{\"cpu_weight\":10001}}", "limits.cpu_weight");
    bad("{\"limits\":{\"rss\":\"1G\",\"memory\":\"1M\"}}", "limits.rss");
    bad("{\"labels\":{\"Bad Key\":\"v\"}}", "labels");
}

/* A limit that is not zero but rounds to zero is refused with its name: 0
 * means "not set" (unlimited), which is never what a tiny value asked for.
 * Out-of-range values name the limit too. */
static void
test_limit_rounding_and_range(void **state)
{
    bad("{\"limits\":{\"memory\":\"0.0000001K\"}}", "limits.memory");
    bad("{\"limits\":{\"swap\":\"0.5\"}}", "limits.swap");
    bad("{\"limits\":{\"disk\":\"0.0000000000000000000001E\"}}", "limits.disk");
    bad("{\"limits\":{\"net_in\":\"0.1bit\"}}", "limits.net_in");
    bad("{\"limits\":{\"net_out\":\"0.0001kbit\"}}", "limits.net_out");
    bad("{\"limits\":{\"cpu_max\":0.0000001}}", "limits.cpu_max");
    bad("{\"limits\":{\"cpu_burst\":0.0004}}", "limits.cpu_burst");
    bad("{\"limits\":{\"io\":[{\"device\":\"8:0\",\"read_bps\":\"0.5\"}]}}",
        "limits.io[0].read_bps");
    bad("{\"limits\":{\"io_weight\":10001}}", "limits.io_weight");
    bad("{\"limits\":{\"cpu_max\":1024.001}}", "limits.cpu_max");
    bad("{\"limits\":{\"cpu_weight\":4294967296}}", "limits.cpu_weight");
    bad("{\"limits\":{\"procs\":\"18446744073709551616\"}}", "limits.procs");

    /* Zero written any way is still zero, and the smallest real values stay. */
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));
    char f[64];
    full_spec(s);
    assert_int_equal(apply(s, "{\"limits\":{\"memory\":\"0.0K\",\"cpu_max\":0.0,\"swap\":0}}", f),
                     0);
    assert_true(s->limits.memory == 0 && s->limits.cpu_max == 0 && s->limits.swap == 0);
    assert_int_equal(apply(s,
                           "{\"limits\":{\"rss\":0,\"memory\":\"0.001K\",\"cpu_max\":0.0005,\"net_"
                           "in\":\"0.001kbit\"}}",
                           f),
                     0);
    assert_true(s->limits.memory == 1 && s->limits.cpu_max == 1 && s->limits.net_in == 1);
    assert_int_equal(apply(s, "{\"limits\":{\"cpu_max\":1024,\"cpu_weight\":10000}}", f), 0);
    assert_int_equal(s->limits.cpu_max, 1024000);
}

/* Every row of the limits table is a JSON key of "limits" (with "io"), and
 * each one round-trips on its own at a distinct value. */
static void
test_every_limit_key(void **state)
{
    _cleanup_free_ struct guest_spec *a = xcalloc(1, sizeof(*a));
    _cleanup_free_ struct guest_spec *b = xcalloc(1, sizeof(*b));

    full_spec(a);
    a->limits.rss = 0; /* free of the memory bound, so any memory value passes */
    json_t *j = spec_to_json(a);
    json_t *limits = json_object_get(j, "limits");
    assert_int_equal(json_object_size(limits), SPEC_N_LIMITS + 1);
    assert_non_null(json_object_get(limits, "io"));
    json_decref(j);
    for (size_t i = 0; i < SPEC_N_LIMITS; i++) {
        const struct spec_limit_desc *d = &spec_limit_descs[i];
        assert_non_null(strchr(d->path, '.'));
        /* Descending, so rss (after memory) stays below memory. */
        spec_limit_set(&a->limits, d, 2000 - i);
        j = spec_to_json(a);
        assert_non_null(json_object_get(json_object_get(j, "limits"), d->key));
        memset(b, 0, sizeof(*b));
        assert_int_equal(spec_from_json(j, b, NULL, 0), 0);
        json_decref(j);
        assert_true(spec_limit_get(&b->limits, d) == spec_limit_get(&a->limits, d));
    }
    assert_memory_equal(&a->limits, &b->limits, sizeof(a->limits));
}

/* A partial object changes exactly the fields it names. */
static void
test_patch(void **state)
{
    _cleanup_free_ struct guest_spec *s = xmalloc(sizeof(*s));
    _cleanup_free_ struct guest_spec *want = xmalloc(sizeof(*want));
    char f[64];

    full_spec(s);
    full_spec(want);
    assert_int_equal(apply(s, "{}", f), 0);
    assert_memory_equal(s, want, sizeof(*s));

    assert_int_equal(apply(s,
                           "{\"generation\":4,\"limits\":{\"memory\":\"512M\"},"
                           "\"labels\":{\"tier\":\"db\"},\"flags\":[]}",
                           f),
                     0);
    want->generation = 4;
    want->limits.memory = 512ULL << 20;
    want->flags = 0;
    /* labels are replaced as a whole: "owner" goes, bytes past the new value's NUL stay. */
    want->n_labels = 1;
    strcpy(want->labels[0].value, "db");
    assert_memory_equal(s, want, sizeof(*s));
    /* The rest of limits is untouched by the nested merge. */
    assert_true(s->limits.rss == 200ULL << 20);
    assert_int_equal(s->limits.n_io_devs, 2);
}

static void
test_usage(void **state)
{
    struct guest_usage a, b, c;
    char f[64];
    json_t *j;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    strcpy(a.id, ID);
    a.time_ms = 1700000000000ULL;
    a.cpu_ns = 123456789;
    a.memory = 1 << 20;
    a.memory_peak = 2 << 20;
    a.net_tx_packets = UINT64_MAX;
    a.tcp_sockets = 3;
    a.failcnt[USAGE_FAIL_OOM] = 2;
    a.failcnt[USAGE_FAIL_TCP] = 9;
    j = usage_to_json(&a);
    assert_int_equal(usage_from_json(j, &b, f, sizeof(f)), 0);
    json_decref(j);
    assert_memory_equal(&a, &b, sizeof(a));

    memcpy(&c, &b, sizeof(c));
    j = parse("{\"cpu_ns\":5,\"failcnt\":{\"procs\":1}}");
    assert_int_equal(usage_from_json(j, &c, f, sizeof(f)), 0);
    json_decref(j);
    assert_true(c.cpu_ns == 5 && c.failcnt[USAGE_FAIL_PROCS] == 1);
    assert_true(c.failcnt[USAGE_FAIL_OOM] == 2 && c.memory == 1 << 20);

    j = parse("{\"failcnt\":{\"cpu\":1}}");
    assert_int_equal(usage_from_json(j, &c, f, sizeof(f)), -EINVAL);
    assert_string_equal(f, "failcnt.cpu");
    json_decref(j);
    j = parse("{\"rx\":1}");
    assert_int_equal(usage_from_json(j, &c, f, sizeof(f)), -EINVAL);
    assert_string_equal(f, "rx");
    json_decref(j);
    j = parse("{\"memory\":-1}");
    assert_int_equal(usage_from_json(j, &c, f, sizeof(f)), -EINVAL);
    assert_string_equal(f, "memory");
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_edges),
        cmocka_unit_test(test_size_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_patch),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_limit_rounding_and_range),
        cmocka_unit_test(test_every_limit_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
