/* GET /metrics end to end: a scrape of one node's or one project's guests
 * (?node=, ?project=), the bound on the per-guest series (a master with
 * metrics_guests_max = 4), the refusal of bad query parameters and the
 * node link's counters. */
#include <zmq.h>

#include "master/master_fixture.h"
#include "proto/link.h"
#include "proto/msg.h"

#define GUESTS_MAX 4

/* Lines of text that begin with prefix. */
static size_t
lines_with(const char *text, const char *prefix)
{
    size_t n = 0, k = strlen(prefix);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, prefix, k) == 0)
            n++;
    return n;
}

/* Lines that begin with prefix and hold want (the whole line). */
static size_t
lines_with_holding(const char *text, const char *prefix, const char *want)
{
    size_t n = 0, k = strlen(prefix);

    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (strncmp(p, prefix, k) == 0 && memmem(p, len, want, strlen(want)))
            n++;
        p = end ? end + 1 : NULL;
    }
    return n;
}

/* The sum of vfleet_guests{state=...} over the states. */
static unsigned long long
guests_total(const char *text)
{
    unsigned long long sum = 0, v;

    for (const char *p = strstr(text, "\nvfleet_guests{"); p; p = strstr(p + 1, "\nvfleet_guests{"))
        if (sscanf(strchr(p, '}') + 1, " %llu", &v) == 1)
            sum += v;
    return sum;
}

static char *
scrape(const char *path, long want)
{
    char *text = NULL;

    assert_int_equal(http_text(path, &text), want);
    return text;
}

static void
create(const char *name, const char *node, const char *project)
{
    json_t *o = NULL;

    assert_int_equal(httpf("POST", "/v1/guests?wait=running&timeout=20", &o,
                           "{\"name\":\"%s\",\"template\":\"busybox\",\"node\":\"%s\","
                           "\"project\":\"%s\"}",
                           name, node, project),
                     201);
    json_decref(o);
}

/* m1, m2 on n1 (default), m3 on n2 (default), m4 on n2 (project mp): as
 * many guests as the bound. */
static int
setup_guests(void **state)
{
    if (group_setup(state) < 0)
        return -1;
    assert_int_equal(http("POST", "/v1/projects", "{\"name\":\"mp\"}", NULL, NULL), 201);
    create("m1", "n1", "default");
    create("m2", "n1", "default");
    create("m3", "n2", "default");
    create("m4", "n2", "mp");
    return 0;
}

/* Within the bound, the unfiltered scrape holds every guest and the
 * cluster's families. */
static void
test_all(void **state)
{
    char *t = scrape("/metrics", 200);

    (void)state;
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 4);
    assert_int_equal(guests_total(t), 4);
    assert_int_equal(lines_with(t, "vfleet_metrics_guests_omitted 0"), 1);
    assert_int_equal(lines_with(t, "vfleet_nodes{"), 3);
    assert_int_equal(lines_with(t, "vfleet_placements_total{"), 3);
    assert_int_equal(lines_with_holding(t, "vfleet_guest_info{", "context=\"0\""), 0);
    free(t);
}

/* Every sample line is NAME{LABELS} VALUE with a number for the value, no
 * family is declared twice, and CPU seconds have their nine decimals. */
static void
test_format(void **state)
{
    char *t = NULL, *save = NULL;
    size_t samples = 0, cpu = 0, types = 0;
    char seen[64][96];

    (void)state;
    /* Until every guest has reported usage (the agents do every 200 ms). */
    for (int i = 0; i < 200; i++) {
        free(t);
        t = scrape("/metrics", 200);
        if (lines_with(t, "vfleet_guest_cpu_seconds_total{") == 4)
            break;
        usleep(50 * 1000);
    }
    for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "# TYPE ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(l + 7, "%95s", name), 1);
            for (size_t i = 0; i < types; i++)
                assert_string_not_equal(seen[i], name);
            assert_true(types < ARRAY_SIZE(seen));
            strcpy(seen[types++], name);
            continue;
        }
        if (l[0] == '#')
            continue;
        char *sp = strrchr(l, ' '), *end = NULL;
        assert_non_null(sp);
        (void)strtod(sp + 1, &end);
        if (end == sp + 1 || *end != '\0')
            fail_msg("not a number: %s", l);
        if (strncmp(l, "vfleet_guest_cpu_seconds_total{", 31) == 0) {
            const char *dot = strchr(sp, '.');
            assert_non_null(dot);
            assert_int_equal(strlen(dot + 1), 9);
            cpu++;
        }
        samples++;
    }
    assert_true(samples > 100);
    assert_int_equal(cpu, 4);
    free(t);
}

/* A slice holds its guests' series and no others, and none of the
 * cluster's families. */
static void
test_slices(void **state)
{
    char *t = scrape("/metrics?node=n1", 200);

    (void)state;
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 2);
    assert_int_equal(lines_with_holding(t, "vfleet_guest_info{", "node=\"n1\""), 2);
    assert_int_equal(lines_with_holding(t, "vfleet_guest_info{guest=\"m1\"", "state=\"running\""),
                     1);
    assert_int_equal(lines_with_holding(t, "vfleet_guest_info{guest=\"m2\"", "node=\"n1\""), 1);
    assert_int_equal(guests_total(t), 2);
    assert_int_equal(lines_with(t, "vfleet_nodes{"), 0);
    assert_int_equal(lines_with(t, "vfleet_node_capacity_cpus{"), 0);
    assert_int_equal(lines_with(t, "vfleet_placements_total"), 0);
    assert_int_equal(lines_with(t, "vfleet_http_requests_total"), 0);
    free(t);

    t = scrape("/metrics?project=mp", 200);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 1);
    assert_int_equal(lines_with(t, "vfleet_guest_info{guest=\"m4\",node=\"n2\",project=\"mp\""), 1);
    assert_int_equal(guests_total(t), 1);
    free(t);

    t = scrape("/metrics?node=n2&project=default", 200);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 1);
    assert_int_equal(lines_with(t, "vfleet_guest_info{guest=\"m3\""), 1);
    free(t);

    t = scrape("/metrics?node=n1&project=mp", 200);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 0);
    assert_int_equal(guests_total(t), 0);
    free(t);

    /* A node with no guests is an empty slice, not an error. */
    t = scrape("/metrics?node=n3", 200);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 0);
    assert_int_equal(lines_with(t, "vfleet_metrics_guests_omitted 0"), 1);
    free(t);
}

/* One guest over the bound: the unfiltered scrape leaves every guest's
 * series out and says how many; the cluster's families stay; a slice
 * within the bound still has its guests. */
static void
test_bound(void **state)
{
    char *t;

    (void)state;
    create("m5", "n1", "default");
    t = scrape("/metrics", 200);
    assert_int_equal(lines_with(t, "vfleet_metrics_guests_omitted 5"), 1);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 0);
    assert_int_equal(lines_with(t, "vfleet_guest_cpu_seconds_total{"), 0);
    assert_int_equal(lines_with(t, "vfleet_guest_limit_hits_total{"), 0);
    assert_int_equal(guests_total(t), 5);
    assert_int_equal(lines_with(t, "vfleet_nodes{"), 3);
    assert_int_equal(lines_with(t, "vfleet_node_allocated_guests{"), 3);
    assert_int_equal(lines_with(t, "vfleet_dispatch_commands_total "), 1);
    free(t);

    t = scrape("/metrics?node=n1", 200);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 3);
    assert_int_equal(lines_with(t, "vfleet_metrics_guests_omitted 0"), 1);
    free(t);
    assert_int_equal(http("DELETE", "/v1/guests/m5", NULL, NULL, NULL), 204);
}

/* A bad parameter is a 400 naming it, an unknown node or project a 404. */
static void
test_bad_params(void **state)
{
    static const struct {
        const char *query; /* after /metrics */
        long status;       /* the answer */
        const char *field; /* its error's field, NULL = none */
    } cases[] = {
        {"?nodes=n1", 400, NULL},
        {"?node=n1&limit=5", 400, NULL},
        {"?node=", 400, "node"},
        {"?node=n1&node=n2", 400, NULL},
        {"?node", 400, NULL},
        {"?node=N_1", 400, "node"},
        {"?node=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 400, "node"},
        {"?project=", 400, "project"},
        {"?project=a%20b", 400, "project"},
        {"?node=nosuch", 404, "node"},
        {"?project=nosuch", 404, "project"},
        /* Names are exact: another case is another (unknown) parameter. */
        {"?NODE=n1", 400, NULL},
        {"?Project=mp", 400, NULL},
        {"?node=n1&Node=n2", 400, NULL},
    };
    char path[160];

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *o = NULL;
        snprintf(path, sizeof(path), "/metrics%s", cases[i].query);
        long st = http("GET", path, NULL, NULL, &o);
        if (st != cases[i].status)
            fail_msg("%s: %ld, want %ld", path, st, cases[i].status);
        json_t *e = json_object_get(o, "error");
        assert_non_null(e);
        if (cases[i].field)
            assert_string_equal(str(e, "field"), cases[i].field);
        json_decref(o);
    }
    /* Nothing changed: the unfiltered scrape is as before. */
    char *t = scrape("/metrics", 200);
    assert_int_equal(lines_with(t, "vfleet_guest_info{"), 4);
    free(t);
}

/* The number of guests GET path lists. */
static size_t
listed(const char *path)
{
    json_t *o = NULL;

    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    size_t n = json_array_size(json_object_get(o, "guests"));
    json_decref(o);
    return n;
}

/* A list's filters are exact names too: ?NODE= is not node but a
 * parameter the list does not take, a 400 naming it (it used to be
 * ignored, listing every guest). */
static void
test_query_names_exact(void **state)
{
    json_t *o = NULL;

    (void)state;
    assert_int_equal(listed("/v1/guests?node=n1"), 2);
    assert_int_equal(listed("/v1/guests?project=mp"), 1);
    assert_int_equal(http("GET", "/v1/guests?NODE=n1", NULL, NULL, &o), 400);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "NODE");
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests?Project=mp", NULL, NULL, &o), 400);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "Project");
    json_decref(o);
}

/* The value of the sample series ("name{labels}") in text, -1 when it has
 * none. */
static double
sample(const char *text, const char *series)
{
    size_t k = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, k) == 0 && p[k] == ' ')
            return strtod(p + k + 1, NULL);
    return -1;
}

/* A peer of the node link under routing id id sends n frames that are not
 * messages and reads the master's answers for up to 20 s: the nacks
 * bad_request it got, up to n. */
static unsigned
send_undecodable(const char *id, unsigned n)
{
    void *s = link_socket(ZMQ_DEALER);
    unsigned nacks = 0;

    assert_non_null(s);
    assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id)), 0);
    assert_int_equal(zmq_connect(s, F.endpoint), 0);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(zmq_send(s, "\xc1 not msgpack", 14, 0), 14);
    for (uint64_t end = time_mono_ms() + 20000; nacks < n && time_mono_ms() < end;) {
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
        char buf[4096];
        struct msg m;
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        int r = zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT);
        if (r > 0 && r <= (int)sizeof(buf) && msg_decode(buf, (size_t)r, &m, NULL, 0) == 0) {
            nacks += m.type == MSG_NACK && m.u.nack.code == MSG_ERR_BAD_REQUEST;
            msg_clear(&m);
        }
    }
    link_socket_close(&s);
    return nacks;
}

/* The node link's counters: protocol violations under a node's name are
 * that node's (vfleet_node_*{node}); those under a name no node has are
 * counted only in the link's families, which make no series of it; a
 * connection without a valid name is cut as junk. Before, none of this
 * was in the exposition. */
static void
test_link_counters(void **state)
{
    enum { N2 = 3, STRANGER = 2 };

    (void)state;
    char *t = scrape("/metrics", 200);
    double n2 = sample(t, "vfleet_node_protocol_violations_total{node=\"n2\"}");
    double all = sample(t, "vfleet_node_link_protocol_violations_total");
    double junk = sample(t, "vfleet_node_link_connections_cut_total{reason=\"junk\"}");
    free(t);
    assert_true(n2 >= 0 && all >= n2 && junk >= 0);

    /* Fewer than LINK_VIOLATIONS: answered, not cut. */
    assert_int_equal(send_undecodable("n2/bad", N2), N2);
    assert_int_equal(send_undecodable("stranger/bad", STRANGER), STRANGER);
    /* Without a routing id of its own (libzmq's is no valid name): junk,
     * its connection cut. It stays open until then, so that what it sent
     * is not lost with it. */
    void *s = link_socket(ZMQ_DEALER);
    assert_non_null(s);
    assert_int_equal(zmq_connect(s, F.endpoint), 0);
    assert_int_equal(zmq_send(s, "junk", 4, 0), 4);
    for (int i = 0; i < 400; i++) {
        t = scrape("/metrics", 200);
        if (sample(t, "vfleet_node_link_connections_cut_total{reason=\"junk\"}") > junk)
            break;
        free(t);
        t = NULL;
        usleep(50 * 1000);
    }
    link_socket_close(&s);
    assert_non_null(t);
    assert_true(sample(t, "vfleet_node_protocol_violations_total{node=\"n2\"}") == n2 + N2);
    assert_true(sample(t, "vfleet_node_protocol_violations_total{node=\"n1\"}") == 0);
    assert_true(sample(t, "vfleet_node_link_protocol_violations_total") == all + N2 + STRANGER);
    assert_true(sample(t, "vfleet_node_connections_cut_total{node=\"n2\",reason=\"violations\"}") ==
                0);
    assert_true(sample(t, "vfleet_node_connections_cut_total{node=\"n2\",reason=\"flood\"}") == 0);
    /* No series of a name that is no node's: one per node, three nodes. */
    assert_int_equal(lines_with(t, "vfleet_node_protocol_violations_total{"), N_NODES);
    assert_int_equal(lines_with(t, "vfleet_node_connections_cut_total{"), 2 * N_NODES);
    assert_int_equal(lines_with_holding(t, "vfleet_node_", "stranger"), 0);
    assert_int_equal(lines_with(t, "vfleet_node_link_connections_cut_total{"), 6);
    assert_true(sample(t, "vfleet_node_link_messages_dropped_total") >= 0);
    free(t);
    /* The link's and the nodes' families are the cluster's: no slice has
     * them. */
    t = scrape("/metrics?node=n2", 200);
    assert_int_equal(lines_with(t, "vfleet_node_protocol_violations_total"), 0);
    assert_int_equal(lines_with(t, "vfleet_node_link_"), 0);
    free(t);
    /* The real nodes were not touched. */
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
}

/* GET /v1/nodes/NAME says leftovers == *(json_int_t *)arg. */
static bool
leftovers_are(const json_t *o, const void *arg)
{
    const json_t *v = json_object_get(o, "leftovers");
    return json_is_integer(v) && json_integer_value(v) == *(const json_int_t *)arg &&
           strcmp(str(o, "state"), "ready") == 0;
}

static void
mkdir_leftover(struct fx *f)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/n3/data", f->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/n3/data/aaaaaaaa-0000-4000-8000-000000000001", f->dir);
    f->err = mkdir(path, 0700) < 0 ? -errno : 0;
}

static void
rmdir_leftover(struct fx *f)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/n3/data/aaaaaaaa-0000-4000-8000-000000000001", f->dir);
    f->err = rmdir(path) < 0 ? -errno : 0;
}

/* A node's leftovers (a data directory with no record, what a create its
 * agent did not finish leaves) reach the master with its hello: in the
 * node's JSON and as vfleet_node_leftovers{node}. Removed with the agent
 * stopped (as `vfleet-node leftovers remove` does), the next start says 0.
 * The master never hears of them before. */
static void
test_node_leftovers(void **state)
{
    json_int_t zero = 0, one = 1;

    (void)state;
    json_decref(poll_until("/v1/nodes/n3", leftovers_are, &zero));
    char *t = scrape("/metrics", 200);
    assert_int_equal(lines_with(t, "vfleet_node_leftovers{"), N_NODES);
    assert_true(sample(t, "vfleet_node_leftovers{node=\"n3\"}") == 0);
    free(t);

    fx_stop_n3();
    on_loop(mkdir_leftover);
    assert_int_equal(F.err, 0);
    on_loop(start_n3);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes/n3", leftovers_are, &one));
    t = scrape("/metrics", 200);
    assert_true(sample(t, "vfleet_node_leftovers{node=\"n3\"}") == 1);
    assert_true(sample(t, "vfleet_node_leftovers{node=\"n1\"}") == 0);
    free(t);

    fx_stop_n3();
    on_loop(rmdir_leftover);
    assert_int_equal(F.err, 0);
    on_loop(start_n3);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes/n3", leftovers_are, &zero));
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all),           cmocka_unit_test(test_format),
        cmocka_unit_test(test_slices),        cmocka_unit_test(test_bound),
        cmocka_unit_test(test_bad_params),    cmocka_unit_test(test_query_names_exact),
        cmocka_unit_test(test_link_counters), cmocka_unit_test(test_node_leftovers),
    };

    F.metrics_guests_max = GUESTS_MAX;
    return cmocka_run_group_tests(tests, setup_guests, group_teardown);
}
