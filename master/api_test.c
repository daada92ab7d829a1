/* Tests for master/api: the route table (methods, names, 404 vs 405), the
 * -errno and nack tables, and the JSON the contract promises (placement
 * filter names, guest, node, pool, usage and exec shapes). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "master/api.h"

static void
test_routes(void **state)
{
    struct api_match m;

    assert_int_equal(api_route("GET", "/healthz", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_HEALTH);
    assert_int_equal(api_route("POST", "/v1/guests", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_CREATE);
    assert_int_equal(api_route("POST", "/v1/guests:batch", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_BATCH);
    assert_int_equal(api_route("GET", "/v1/guests/web1", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_GET);
    assert_string_equal(m.name, "web1");
    assert_int_equal(api_route("PATCH", "/v1/guests/web1", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_PATCH);
    assert_int_equal(api_route("DELETE", "/v1/guests/web1", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_DELETE);
    assert_int_equal(api_route("POST", "/v1/guests/web1/restart", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_RESTART);
    assert_int_equal(api_route("GET", "/v1/guests/web1/usage", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_USAGE);
    assert_int_equal(api_route("POST", "/v1/nodes/h-1/uncordon", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_NODE_UNCORDON);
    assert_string_equal(m.name, "h-1");
    assert_int_equal(api_route("DELETE", "/v1/pools/default", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_POOL_DELETE);
    assert_int_equal(api_route("POST", "/v1/guests/web1/ips", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_IP_ADD);
    assert_int_equal(api_route("DELETE", "/v1/guests/web1/ips/2001:db8::7", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_GUEST_IP_DEL);
    assert_string_equal(m.name, "web1");
    assert_string_equal(m.arg, "2001:db8::7");
    assert_int_equal(api_route("GET", "/v1/nodes/h1/routes", &m, NULL, 0), 0);
    assert_int_equal(m.route, API_NODE_ROUTES);
    assert_string_equal(m.arg, "");
    assert_int_equal(api_route("DELETE", "/v1/guests/web1/ips/", &m, NULL, 0), -ENOENT);
    assert_int_equal(api_route("GET", "/v1/guests/web1/ips/10.0.0.1", &m, NULL, 0), -EOPNOTSUPP);

    /* Known path, wrong method: 405; unknown path or bad name: 404. */
    char allow[64];
    assert_int_equal(api_route("PUT", "/v1/guests/web1", &m, allow, sizeof(allow)), -EOPNOTSUPP);
    assert_string_equal(allow, "GET, PATCH, DELETE");
    assert_int_equal(api_route("GET", "/v1/guests", &m, allow, sizeof(allow)), 0);
    assert_non_null(m.handler);
    assert_int_equal(api_route("GET", "/v1/guests/web1/exec", &m, NULL, 0), -EOPNOTSUPP);
    assert_int_equal(api_route("GET", "/v1/guests/Web_1", &m, NULL, 0), -ENOENT);
    assert_int_equal(api_route("GET", "/v1/guests/", &m, NULL, 0), -ENOENT);
    assert_int_equal(api_route("GET", "/v1/guests/a/b/c", &m, NULL, 0), -ENOENT);
    assert_int_equal(api_route("GET", "/v1/guests/web1/", &m, NULL, 0), -ENOENT);
    assert_int_equal(api_route("GET", "/v2/nodes", &m, NULL, 0), -ENOENT);
    char longname[200];
    memset(longname, 'a', sizeof(longname));
    memcpy(longname, "/v1/nodes/", 10);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(api_route("GET", longname, &m, NULL, 0), -ENOENT);
    assert_string_equal(api_route_name(API_GUEST_CREATE), "guest.create");
}

/* Every route's query parameter table fits the edge's bit per parameter
 * (API_PARAMS_MAX), and no name is in one twice (the second could never be
 * matched). Every route is looked at: the table of each is found by its
 * route, and a route whose number has no row would be none of them. */
static void
test_param_tables_bounded(void **state)
{
    size_t routes = 0, with_params = 0;

    (void)state;
    for (int r = 0; r < API__ROUTE_MAX; r++) {
        if (!strcmp(api_route_pattern((enum api_route)r), ""))
            continue;
        routes++;
        const struct api_param *p = api_route_params((enum api_route)r);
        size_t n = 0;
        for (; p && p[n].name; n++)
            for (size_t k = 0; k < n; k++)
                if (!strcmp(p[k].name, p[n].name))
                    fail_msg("%s takes %s twice", api_route_name((enum api_route)r), p[n].name);
        if (n > API_PARAMS_MAX)
            fail_msg("%s takes %zu query parameters, more than %d",
                     api_route_name((enum api_route)r), n, API_PARAMS_MAX);
        with_params += n > 0;
    }
    assert_true(routes > 50);
    assert_true(with_params > 10);
    assert_null(api_route_params(API__ROUTE_MAX));
}

/* The query parameter tables: each route's own names, and what each kind
 * of value takes and refuses. */
static void
test_params(void **state)
{
    static const struct {
        const char *method, *path, *name, *value; /* a parameter of a route */
        int want;                                 /* 0, or -EINVAL: a bad value */
    } cases[] = {
        {"DELETE", "/v1/guests/g1", "force", "true", 0},
        {"DELETE", "/v1/guests/g1", "force", "false", 0},
        {"DELETE", "/v1/guests/g1", "force", "TRUE", -EINVAL},
        {"DELETE", "/v1/guests/g1", "force", "1", -EINVAL},
        {"DELETE", "/v1/guests/g1", "force", "", -EINVAL},
        {"DELETE", "/v1/guests/g1", "force", NULL, -EINVAL},
        {"GET", "/v1/guests", "limit", "1", 0},
        {"GET", "/v1/guests", "limit", "4294967295", 0},
        {"GET", "/v1/guests", "limit", "4294967296", -EINVAL},
        {"GET", "/v1/guests", "limit", "0", -EINVAL},
        {"GET", "/v1/guests", "limit", "+5", -EINVAL},
        {"GET", "/v1/guests", "limit", " 5", -EINVAL},
        {"GET", "/v1/guests", "limit", "5 ", -EINVAL},
        {"GET", "/v1/guests", "limit", "-1", -EINVAL},
        {"GET", "/v1/guests", "limit", "99999999999999999999", -EINVAL},
        {"GET", "/v1/guests", "after", "web1", 0},
        {"GET", "/v1/guests", "after", "Web1", -EINVAL},
        {"GET", "/v1/guests", "state", "running", 0},
        {"GET", "/v1/guests", "state", "runnin", -EINVAL},
        {"GET", "/v1/guests", "state", "running|stopped", -EINVAL},
        {"GET", "/v1/guests", "label", "tier=web", 0},
        {"GET", "/v1/operations", "after", "0b5c3f8e-7d2a-4c1b-9e6f-1a2b3c4d5e6f", 0},
        {"GET", "/v1/operations", "after", "web1", -EINVAL},
        {"GET", "/v1/events", "type", "guest.*", 0},
        {"GET", "/v1/events", "type", "guest.created,node.state,guest.orphan.*", 0},
        {"GET", "/v1/events", "type", "nope", -EINVAL},
        {"GET", "/v1/events", "type", "guest", -EINVAL},
        {"GET", "/v1/events", "type", "*", -EINVAL},
        {"GET", "/v1/events", "type", "guest.created,", -EINVAL},
        {"GET", "/v1/events", "type", ",guest.created", -EINVAL},
        {"GET", "/v1/events", "type", "guest.created,,node.state", -EINVAL},
        {"GET", "/v1/events", "type", "guest.created|node.state", -EINVAL},
        {"GET", "/v1/events", "type",
         "node.*,node.*,node.*,node.*,node.*,node.*,node.*,node.*,"
         "node.*,node.*,node.*,node.*,node.*,node.*,node.*,node.*",
         0},
        {"GET", "/v1/events", "type",
         "node.*,node.*,node.*,node.*,node.*,node.*,node.*,node.*,"
         "node.*,node.*,node.*,node.*,node.*,node.*,node.*,node.*,node.*",
         -EINVAL},
        {"GET", "/v1/events", "limit", "5000", 0},
        {"GET", "/v1/events", "limit", "5001", -EINVAL},
        {"GET", "/v1/events", "after", "0", 0},
        {"GET", "/v1/events", "after", "9223372036854775807", 0},
        {"GET", "/v1/events", "after", "9223372036854775808", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "cols", "0", 0},
        {"GET", "/v1/guests/g1/shell", "cols", "65536", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "tty", "1", 0},
        {"GET", "/v1/guests/g1/shell", "term", "xterm-256color", 0},
        {"GET", "/v1/guests/g1/shell", "term", "screen.xterm+x_1", 0},
        {"GET", "/v1/guests/g1/shell", "term", "xterm 256", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "term", "xterm;rm", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "term", "../x", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "term", "\x1b[31m", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "term", "vt\xc3\xa9", -EINVAL},
        {"GET", "/v1/guests/g1/shell", "term",
         "012345678901234567890123456789012345678901234567890123456789012", 0},
        {"GET", "/v1/guests/g1/shell", "term",
         "0123456789012345678901234567890123456789012345678901234567890123", -EINVAL},
    };
    struct api_match am;
    char why[600];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(api_route(cases[i].method, cases[i].path, &am, NULL, 0), 0);
        const struct api_param *p = api_param_find(am.params, cases[i].name);
        assert_non_null(p);
        why[0] = '\0';
        int r = api_param_check(p, cases[i].value, why, sizeof(why));
        if (r != cases[i].want)
            fail_msg("%s %s ?%s=%s: %d, want %d", cases[i].method, cases[i].path, cases[i].name,
                     cases[i].value ? cases[i].value : "(none)", r, cases[i].want);
        /* A refusal names the parameter first. */
        if (r < 0)
            assert_int_equal(strncmp(why, cases[i].name, strlen(cases[i].name)), 0);
    }
    /* Names are exact; routes without a table take nothing. */
    assert_int_equal(api_route("DELETE", "/v1/guests/g1", &am, NULL, 0), 0);
    assert_null(api_param_find(am.params, "Force"));
    assert_null(api_param_find(am.params, "wait"));
    assert_int_equal(api_route("GET", "/v1/pools", &am, NULL, 0), 0);
    assert_null(am.params);
    assert_null(api_param_find(am.params, "limit"));
    api_param_names(am.params, why, sizeof(why));
    assert_string_equal(why, "none");
    assert_int_equal(api_route("POST", "/v1/guests/g1/stop", &am, NULL, 0), 0);
    api_param_names(am.params, why, sizeof(why));
    assert_string_equal(why, "wait, timeout");
    assert_int_equal(
        api_param_check(api_param_find(am.params, "wait"), "running", why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "wait must be stopped");
    assert_int_equal(api_route("GET", "/v1/usage/traffic", &am, NULL, 0), 0);
    assert_int_equal(api_param_check(api_param_find(am.params, "period"), "week", why, sizeof(why)),
                     -EINVAL);
    assert_string_equal(why, "period must be hour, day or month");
}

static void
test_error_tables(void **state)
{
    struct api_error e;
    const struct {
        int err;
        unsigned status;
        const char *code;
    } cases[] = {
        {-EINVAL, 400, "bad_request"},
        {-E2BIG, 400, "bad_request"},
        {-ENOENT, 404, "not_found"},
        {-EEXIST, 409, "conflict"},
        {-EADDRINUSE, 409, "conflict"},
        {-EBUSY, 409, "conflict"},
        {-EXFULL, 422, "unplaceable"},
        {-EIO, 503, "unavailable"},
        {-ENOSPC, 507, "insufficient_storage"},
        {-ENOLCK, 409, "conflict"},
        {-EHOSTUNREACH, 503, "unavailable"},
        {-ETIMEDOUT, 504, "unavailable"},
        {EEXIST, 409, "conflict"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        api_error_from_errno(cases[i].err, &e);
        assert_int_equal(e.status, cases[i].status);
        assert_string_equal(e.code, cases[i].code);
    }
    api_error_from_nack(MSG_ERR_BAD_REQUEST, &e);
    assert_int_equal(e.status, 400);
    api_error_from_nack(MSG_ERR_LOCKED, &e);
    assert_int_equal(e.status, 409);
    api_error_from_nack(MSG_ERR_PRIVATE, &e);
    assert_string_equal(e.code, "conflict");
    api_error_from_nack(MSG_ERR_INTERNAL, &e);
    assert_int_equal(e.status, 503);

    json_t *j = api_error_json("conflict", "name", "taken");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "field")),
                        "name");
    json_decref(j);
    j = api_error_json("conflict", NULL, "taken");
    assert_null(json_object_get(json_object_get(j, "error"), "field"));
    json_decref(j);
}

static void
test_placement_names(void **state)
{
    struct sched_result r = {.algo = SCHED_SPREAD, .nodes_total = 5, .nodes_evaluated = 5};

    r.rejected[SCHED_F_STATE] = 1;
    r.rejected[SCHED_F_ANTI_AFFINITY] = 1;
    r.rejected[SCHED_F_GUESTS] = 1;
    r.rejected[SCHED_F_CPU] = 1;
    r.rejected[SCHED_F_MEMORY] = 1;
    snprintf(r.near_miss.node, sizeof(r.near_miss.node), "h2");
    r.near_miss.filter = SCHED_F_MEMORY;
    r.near_miss.need = 64ULL << 30;
    r.near_miss.free = 12ULL << 30;
    json_t *p = api_placement_json(&r, false, NULL);
    json_t *f = json_object_get(p, "filters");
    const char *want[] = {"ready", "group", "max_guests", "cpus", "memory"};
    assert_int_equal(json_array_size(f), 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(f, i), "filter")),
                            want[i]);
    const char *reason = json_string_value(json_object_get(json_array_get(f, 4), "reason"));
    assert_non_null(reason);
    assert_non_null(strstr(reason, "64G"));
    assert_non_null(strstr(reason, "12G"));
    assert_string_equal(json_string_value(json_object_get(p, "algorithm")), "spread");
    assert_int_equal(json_integer_value(json_object_get(p, "nodes_evaluated")), 5);
    json_decref(p);

    struct sched_result none = {.algo = SCHED_BINPACK, .nodes_total = 3};
    p = api_placement_json(&none, true, "zz");
    f = json_array_get(json_object_get(p, "filters"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "filter")), "pinned");
    assert_int_equal(json_integer_value(json_object_get(f, "rejected")), 3);
    json_decref(p);
    assert_string_equal(api_filter_name(SCHED_F_ADDRS), "addresses");
    assert_string_equal(api_filter_name(SCHED_F_CONSTRAINT), "constraint");

    /* A CPU near miss is in cores, as capacities and limits are, not in
     * the scheduler's millicores; memory stays in bytes. */
    struct sched_result cpu = {.algo = SCHED_SPREAD, .nodes_total = 1, .nodes_evaluated = 1};
    cpu.rejected[SCHED_F_CPU] = 1;
    snprintf(cpu.near_miss.node, sizeof(cpu.near_miss.node), "h1");
    cpu.near_miss.filter = SCHED_F_CPU;
    cpu.near_miss.need = 2500;
    cpu.near_miss.free = 500;
    p = api_placement_json(&cpu, false, NULL);
    json_t *nm = json_object_get(p, "near_miss");
    assert_string_equal(json_string_value(json_object_get(nm, "resource")), "cpus");
    assert_true(json_number_value(json_object_get(nm, "need")) == 2.5);
    assert_true(json_number_value(json_object_get(nm, "free")) == 0.5);
    json_decref(p);
    p = api_placement_json(&r, false, NULL);
    nm = json_object_get(p, "near_miss");
    assert_true(json_is_integer(json_object_get(nm, "need")));
    assert_int_equal(json_integer_value(json_object_get(nm, "need")), 64LL << 30);
    json_decref(p);
}

static void
test_guest_json(void **state)
{
    struct guest_spec s = {.generation = 3, .limits = {.memory = 256u << 20, .cpu_max = 500}};
    struct db_guest g = {.id = "11111111-1111-4111-8111-111111111111",
                         .name = "web1",
                         .node = "h1",
                         .generation = 3,
                         .applied_generation = 2,
                         .desired = DB_DESIRED_RUNNING,
                         .observed = DB_OBS_RUNNING,
                         .created_ms = 1795000000123ULL,
                         .updated_ms = 1795000000456ULL};

    snprintf(s.id, sizeof(s.id), "%s", g.id);
    snprintf(s.name, sizeof(s.name), "web1");
    snprintf(s.template_name, sizeof(s.template_name), "busybox");
    json_t *o = api_guest_json(&g, &s);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "running");
    assert_string_equal(json_string_value(json_object_get(o, "node")), "h1");
    assert_string_equal(json_string_value(json_object_get(o, "template")), "busybox");
    assert_int_equal(json_integer_value(json_object_get(o, "generation")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "applied_generation")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "limits"), "memory")),
                     256 << 20);
    assert_true(json_is_array(json_object_get(o, "ips")));
    assert_true(json_is_object(json_object_get(o, "labels")));
    assert_string_equal(json_string_value(json_object_get(o, "created")),
                        "2026-11-18T11:06:40.123Z");
    /* Nullable members are always there: null when not set. */
    assert_true(json_is_null(json_object_get(o, "group")));
    assert_true(json_is_null(json_object_get(o, "message")));
    json_decref(o);

    char t[40];
    api_time_format(0, t, sizeof(t));
    assert_string_equal(t, "");
}

static void
test_node_pool_usage_exec_json(void **state)
{
    struct registry_node n = {.name = "h1",
                              .kernel = "6.1.0",
                              .cgroup = "hybrid",
                              .backend = "linux",
                              .cap = {.cpu = 4000, .memory = 8ULL << 30, .max_guests = 10},
                              .state = DB_NODE_SUSPECT,
                              .n_labels = 1,
                              .link = -1};
    struct sched_node_info info = {.used = {.cpu = 1500, .memory = 1ULL << 30}, .guests = 2};

    snprintf(n.labels[0].key, sizeof(n.labels[0].key), "zone");
    snprintf(n.labels[0].value, sizeof(n.labels[0].value), "a");
    json_t *o = api_node_json(&n, &info, true);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "suspect");
    assert_true(json_real_value(json_object_get(json_object_get(o, "capacity"), "cpus")) == 4.0);
    assert_true(json_real_value(json_object_get(json_object_get(o, "allocated"), "cpus")) == 1.5);
    assert_int_equal(json_integer_value(json_object_get(o, "guests")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "labels"), "zone")),
                        "a");
    assert_int_equal(json_array_size(json_object_get(o, "orphans")), 0);
    assert_true(json_is_null(json_object_get(o, "last_seen")));
    json_decref(o);
    /* Without the scheduler's figures the node still has every member. */
    o = api_node_json(&n, NULL, false);
    assert_int_equal(json_integer_value(json_object_get(o, "addresses")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "orphan_count")), 0);
    json_decref(o);

    struct db_pool p = {
        .name = "v6", .cidr = "2001:db8::/64", .family = AF_INET6, .selector = "{\"zone\":\"a\"}"};
    struct ipam_pool_info pi = {.usable = UINT64_MAX, .allocated = 3};
    o = api_pool_json(&p, &pi);
    assert_string_equal(json_string_value(json_object_get(o, "family")), "ipv6");
    assert_true(json_is_string(json_object_get(o, "size"))); /* above 2^53 */
    assert_int_equal(json_integer_value(json_object_get(o, "allocated")), 3);
    assert_true(json_is_null(json_object_get(o, "gateway")));
    json_decref(o);

    struct guest_usage u = {.time_ms = 1795000000000ULL, .cpu_ns = 42};
    o = api_usage_json(&u);
    assert_true(json_is_string(json_object_get(o, "time")));
    assert_null(json_object_get(o, "time_ms"));
    assert_int_equal(json_integer_value(json_object_get(o, "cpu_ns")), 42);
    json_decref(o);

    char out[] = "hi\n", err[] = "\xff\xfe";
    struct msg_exec_result r = {.exit_code = 0, .out = out, .out_len = 3, .err = err, .err_len = 2};
    o = api_exec_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 0);
    assert_string_equal(json_string_value(json_object_get(o, "stdout")), "hi\n");
    assert_string_equal(json_string_value(json_object_get(o, "stderr")), "??");
    json_decref(o);
    r.signal = 9;
    r.exit_code = -1;
    o = api_exec_json(&r);
    assert_true(json_is_null(json_object_get(o, "exit_code")));
    assert_int_equal(json_integer_value(json_object_get(o, "signal")), 9);
    json_decref(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_param_tables_bounded),
        cmocka_unit_test(test_error_tables),
        cmocka_unit_test(test_placement_names),
        cmocka_unit_test(test_guest_json),
        cmocka_unit_test(test_node_pool_usage_exec_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
