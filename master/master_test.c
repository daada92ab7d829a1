/* End to end in one process (master_fixture.h): placement, addresses,
 * usage, idempotency, cordon and node failure through real HTTP. */
#include "master/master_fixture.h"

/* ---- tests ------------------------------------------------------------ */

static void
test_health_and_routes(void **state)
{
    json_t *o = NULL;

    assert_int_equal(http("GET", "/healthz", NULL, NULL, &o), 200);
    assert_string_equal(str(o, "status"), "ok");
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nope", NULL, NULL, &o), 404);
    assert_string_equal(str(json_object_get(o, "error"), "code"), "not_found");
    json_decref(o);
    assert_int_equal(http("PUT", "/v1/guests", NULL, NULL, NULL), 405);
    assert_int_equal(http("GET", "/v1/guests/nobody", NULL, NULL, NULL), 404);
    assert_int_equal(http("POST", "/v1/guests", "{not json", NULL, NULL), 400);
    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"a\",\"template\":\"t\","
                           "\"limits\":{\"memry\":1}}"),
                     400);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "limits.memry");
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nodes/n1", NULL, NULL, &o), 200);
    assert_string_equal(str(o, "state"), "ready");
    assert_true(json_is_array(json_object_get(o, "orphans")));
    json_decref(o);
}

static void
test_pool_idempotent(void **state)
{
    json_t *a = NULL, *b = NULL;
    const char *body = "{\"name\":\"default\",\"cidr\":\"10.77.0.0/24\",\"gateway\":\"10.77.0.1\"}";

    assert_int_equal(http("POST", "/v1/pools", body, "pool-key-1", &a), 201);
    assert_int_equal(http("POST", "/v1/pools", body, "pool-key-1", &b), 201);
    assert_true(json_equal(a, b));
    assert_int_equal(http("POST", "/v1/pools", "{\"name\":\"other\",\"cidr\":\"10.78.0.0/24\"}",
                          "pool-key-1", NULL),
                     409);
    assert_int_equal(http("POST", "/v1/pools", body, NULL, NULL), 409); /* name taken */
    json_decref(a);
    json_decref(b);
}

static void
test_spread_30(void **state)
{
    int per_node[N_NODES] = {0};
    json_t *l = NULL, *g;
    size_t i;

    for (int k = 0; k < 30; k++) {
        json_t *o = NULL;
        char path[] = "/v1/guests?wait=running&timeout=20";
        long st = httpf("POST", path, &o,
                        "{\"name\":\"s%d\",\"template\":\"busybox\",\"ips\":[\"auto\"],"
                        "\"limits\":{\"memory\":\"256M\",\"disk\":\"1G\",\"cpu_max\":0.5},"
                        "\"algorithm\":\"spread\"}",
                        k);
        assert_int_equal(st, 201);
        assert_string_equal(str(o, "state"), "running");
        json_decref(o);
    }
    assert_int_equal(http("GET", "/v1/guests?limit=1000", NULL, NULL, &l), 200);
    json_t *guests = json_object_get(l, "guests");
    assert_int_equal(json_array_size(guests), 30);
    json_t *seen = json_object();
    json_array_foreach(guests, i, g)
    {
        const char *node = str(g, "node");
        assert_int_equal(strlen(node), 2);
        per_node[node[1] - '1']++;
        assert_string_equal(str(g, "state"), "running");
        assert_int_equal(num(json_object_get(g, "limits"), "memory"), 256 << 20);
        json_t *ips = json_object_get(g, "ips");
        assert_int_equal(json_array_size(ips), 1);
        const char *ip = json_string_value(json_array_get(ips, 0));
        assert_null(json_object_get(seen, ip));
        json_object_set_new(seen, ip, json_true());
    }
    for (int n = 0; n < N_NODES; n++)
        assert_true(per_node[n] >= 9 && per_node[n] <= 11);
    json_decref(seen);
    json_decref(l);

    /* Node views agree with the placements. */
    assert_int_equal(http("GET", "/v1/nodes/n1", NULL, NULL, &l), 200);
    assert_int_equal(num(l, "guests"), per_node[0]);
    json_decref(l);

    delete_all_guests();
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &l), 200);
    assert_int_equal(num(json_array_get(json_object_get(l, "pools"), 0), "allocated"), 0);
    json_decref(l);
    assert_int_equal(http("GET", "/v1/nodes/n2", NULL, NULL, &l), 200);
    assert_int_equal(num(l, "guests"), 0);
    json_decref(l);
}

static void
test_binpack(void **state)
{
    char first[8] = "";

    for (int k = 0; k < 4; k++) {
        json_t *o = NULL;
        assert_int_equal(httpf("POST", "/v1/guests", &o,
                               "{\"name\":\"b%d\",\"template\":\"busybox\","
                               "\"limits\":{\"memory\":\"1G\"},\"algorithm\":\"binpack\"}",
                               k),
                         201);
        if (!first[0])
            snprintf(first, sizeof(first), "%s", str(o, "node"));
        assert_string_equal(str(o, "node"), first);
        json_decref(o);
    }
    delete_all_guests();
}

static void
test_constraints_and_groups(void **state)
{
    json_t *o = NULL;
    char seen[N_NODES + 1] = "";

    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"za\",\"template\":\"busybox\",\"constraints\":{\"zone\":"
                           "\"a\"}}"),
                     201);
    assert_string_equal(str(o, "node"), "n1");
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"pinned\",\"template\":\"busybox\",\"node\":\"n3\"}"),
                     201);
    assert_string_equal(str(o, "node"), "n3");
    json_decref(o);
    for (int k = 0; k < N_NODES; k++) {
        assert_int_equal(httpf("POST", "/v1/guests", &o,
                               "{\"name\":\"g%d\",\"template\":\"busybox\",\"group\":\"web\"}", k),
                         201);
        const char *node = str(o, "node");
        assert_null(strstr(seen, node + 1));
        strcat(seen, node + 1);
        json_decref(o);
    }
    /* A fourth member of the group has nowhere to go. */
    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"g9\",\"template\":\"busybox\",\"group\":\"web\"}"),
                     422);
    json_t *p = json_object_get(json_object_get(o, "error"), "placement");
    assert_non_null(p);
    assert_string_equal(str(json_array_get(json_object_get(p, "filters"), 0), "filter"), "group");
    assert_int_equal(num(json_array_get(json_object_get(p, "filters"), 0), "rejected"), N_NODES);
    json_decref(o);
    /* An unknown pin and an impossible size explain themselves. */
    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"nope\",\"template\":\"busybox\",\"node\":\"zz\"}"),
                     422);
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"huge\",\"template\":\"busybox\",\"limits\":{\"memory\":"
                           "\"1T\"}}"),
                     422);
    p = json_object_get(json_object_get(o, "error"), "placement");
    assert_string_equal(str(json_object_get(o, "error"), "code"), "unplaceable");
    assert_int_equal(num(p, "nodes_feasible"), 0);
    assert_string_equal(str(json_array_get(json_object_get(p, "filters"), 0), "filter"), "memory");
    assert_non_null(json_object_get(json_array_get(json_object_get(p, "filters"), 0), "reason"));
    json_decref(o);
    delete_all_guests();
}

static void
test_patch_exec_usage(void **state)
{
    json_t *o = NULL;
    json_int_t two = 2;

    assert_int_equal(httpf("POST", "/v1/guests?wait=running&timeout=20", &o,
                           "{\"name\":\"p1\",\"template\":\"busybox\",\"labels\":{\"tier\":"
                           "\"web\",\"old\":\"x\"},\"limits\":{\"memory\":\"256M\"}}"),
                     201);
    assert_string_equal(str(o, "state"), "running");
    json_decref(o);
    assert_int_equal(httpf("PATCH", "/v1/guests/p1", &o,
                           "{\"limits\":{\"memory\":\"512M\"},\"labels\":{\"tier\":\"db\","
                           "\"old\":null}}"),
                     200);
    assert_int_equal(num(o, "generation"), 2);
    assert_int_equal(num(json_object_get(o, "limits"), "memory"), 512 << 20);
    assert_string_equal(str(json_object_get(o, "labels"), "tier"), "db");
    assert_null(json_object_get(json_object_get(o, "labels"), "old"));
    json_decref(o);
    json_decref(poll_until("/v1/guests/p1", guest_applied, &two));
    assert_int_equal(httpf("PATCH", "/v1/guests/p1", &o, "{\"name\":\"other\"}"), 409);
    json_decref(o);
    assert_int_equal(httpf("PATCH", "/v1/guests/p1", &o, "{\"limits\":{\"memory\":\"1T\"}}"), 422);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests?label=tier=db", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 1);
    json_decref(o);

    assert_int_equal(httpf("POST", "/v1/guests/p1/exec", &o, "{\"argv\":[\"echo\",\"hi\"]}"), 200);
    assert_int_equal(num(o, "exit_code"), 0);
    assert_string_equal(str(o, "stdout"), "echo hi\n");
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests/p1/exec", &o, "{\"argv\":[\"false\"]}"), 200);
    assert_int_equal(num(o, "exit_code"), 1);
    json_decref(o);

    delete_all_guests();
}

static bool
has_ip(const json_t *ips, const char *ip)
{
    size_t i;
    json_t *v;

    json_array_foreach(ips, i, v) if (strcmp(json_string_value(v), ip) == 0) return true;
    return false;
}

static void
test_ip_add_rm(void **state)
{
    json_t *o = NULL, *b = NULL;
    json_int_t four = 4;
    char ifname[16] = "vf";

    /* A pool only for zone b: its addresses never reach n1 (zone a). */
    assert_int_equal(
        http("POST", "/v1/pools",
             "{\"name\":\"zb\",\"cidr\":\"10.79.0.0/24\",\"selector\":{\"zone\":\"b\"}}", NULL,
             NULL),
        201);
    assert_int_equal(httpf("POST", "/v1/guests?wait=running", &o,
                           "{\"name\":\"ip1\",\"template\":\"busybox\",\"node\":\"n1\","
                           "\"ips\":[\"auto\"]}"),
                     201);
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests?wait=running", &b,
                           "{\"name\":\"ip2\",\"template\":\"busybox\",\"node\":\"n2\","
                           "\"ips\":[\"auto\"]}"),
                     201);
    const char *taken = json_string_value(json_array_get(json_object_get(b, "ips"), 0));
    assert_non_null(taken);

    /* auto: a second address, a new generation. */
    assert_int_equal(httpf("POST", "/v1/guests/ip1/ips", &o, "{\"ip\":\"auto\"}"), 200);
    assert_int_equal(num(o, "generation"), 2);
    assert_int_equal(json_array_size(json_object_get(o, "ips")), 2);
    assert_true(strncmp(json_string_value(json_array_get(json_object_get(o, "ips"), 1)), "10.77.0.",
                        8) == 0);
    for (const char *c = str(o, "id"); *c && strlen(ifname) < 12; c++)
        if (*c != '-')
            strncat(ifname, c, 1);
    json_decref(o);
    /* An address another guest holds, or the guest's own again: 409. */
    assert_int_equal(httpf("POST", "/v1/guests/ip1/ips", &o, "{\"ip\":\"%s\"}", taken), 409);
    assert_string_equal(str(json_object_get(o, "error"), "code"), "conflict");
    json_decref(o);
    /* A pool that does not serve the node, no pool at all, a bad body: 400. */
    assert_int_equal(httpf("POST", "/v1/guests/ip1/ips", &o, "{\"ip\":\"10.79.0.5\"}"), 400);
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests/ip1/ips", &o, "{\"ip\":\"192.0.2.1\"}"), 400);
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests/ip1/ips", &o, "{\"ip\":\"10.77.0.300\"}"), 400);
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests/ip1/ips", &o, "{\"addr\":\"auto\"}"), 400);
    json_decref(o);
    assert_int_equal(httpf("POST", "/v1/guests/nobody/ips", &o, "{\"ip\":\"auto\"}"), 404);
    json_decref(o);
    /* An explicit free address; a retry with the same key replays the answer
     * instead of acting again. */
    assert_int_equal(http("POST", "/v1/guests/ip1/ips", "{\"ip\":\"10.77.0.200\"}", "ip-key-1", &o),
                     200);
    assert_int_equal(num(o, "generation"), 3);
    assert_true(has_ip(json_object_get(o, "ips"), "10.77.0.200"));
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/ip1/ips", "{\"ip\":\"10.77.0.200\"}", "ip-key-1", &o),
                     200);
    assert_int_equal(num(o, "generation"), 3);
    json_decref(o);

    /* The routes view of n1 lists it on the guest's interface; n2's does not. */
    assert_int_equal(http("GET", "/v1/nodes/n1/routes", NULL, NULL, &o), 200);
    json_t *rt;
    size_t i, n_ip1 = 0;
    bool seen = false;
    json_array_foreach(json_object_get(o, "routes"), i, rt)
    {
        if (strcmp(str(rt, "guest"), "ip1") != 0)
            continue;
        n_ip1++;
        assert_string_equal(str(rt, "interface"), ifname);
        seen |= strcmp(str(rt, "address"), "10.77.0.200") == 0;
    }
    assert_int_equal(n_ip1, 3);
    assert_true(seen);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nodes/n2/routes", NULL, NULL, &o), 200);
    json_array_foreach(json_object_get(o, "routes"), i, rt)
        assert_string_not_equal(str(rt, "address"), "10.77.0.200");
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nodes/zz/routes", NULL, NULL, NULL), 404);

    /* Removal: gone from the guest, its generation bumped, free for another. */
    assert_int_equal(http("DELETE", "/v1/guests/ip1/ips/10.77.0.200", NULL, NULL, &o), 200);
    assert_int_equal(num(o, "generation"), 4);
    assert_int_equal(json_array_size(json_object_get(o, "ips")), 2);
    assert_false(has_ip(json_object_get(o, "ips"), "10.77.0.200"));
    json_decref(o);
    assert_int_equal(http("DELETE", "/v1/guests/ip1/ips/10.77.0.200", NULL, NULL, NULL), 404);
    assert_int_equal(http("DELETE", "/v1/guests/ip1/ips/nonsense", NULL, NULL, NULL), 400);
    json_decref(poll_until("/v1/guests/ip1", guest_applied, &four));
    assert_int_equal(httpf("POST", "/v1/guests/ip2/ips", &o, "{\"ip\":\"10.77.0.200\"}"), 200);
    assert_true(has_ip(json_object_get(o, "ips"), "10.77.0.200"));
    json_decref(o);
    json_decref(b);
    delete_all_guests();
    assert_int_equal(http("DELETE", "/v1/pools/zb", NULL, NULL, NULL), 204);
}

static bool
has_time(const json_t *o, const void *arg)
{
    return json_is_string(json_object_get(o, "time"));
}

static void
test_usage(void **state)
{
    json_t *o = NULL;

    assert_int_equal(
        httpf("POST", "/v1/guests?wait=running", &o, "{\"name\":\"u1\",\"template\":\"busybox\"}"),
        201);
    json_decref(o);
    json_decref(poll_until("/v1/guests/u1/usage", has_time, NULL));
    delete_all_guests();
    assert_int_equal(http("GET", "/v1/guests/u1/usage", NULL, NULL, NULL), 404);
}

/* True once the traffic counter has counted more than arg's rx_bytes. */
static bool
traffic_above(const json_t *o, const void *arg)
{
    return num(o, "rx_bytes") > *(const json_int_t *)arg;
}

static void
test_traffic_reset(void **state)
{
    json_t *o = NULL, *r = NULL;
    json_int_t zero = 0, before;

    assert_int_equal(
        httpf("POST", "/v1/guests?wait=running", &o, "{\"name\":\"t1\",\"template\":\"busybox\"}"),
        201);
    json_decref(o);
    /* Before any reset the counter is everything since the guest began. */
    o = poll_until("/v1/guests/t1/traffic", traffic_above, &zero);
    assert_true(json_is_null(json_object_get(o, "since")));
    before = num(o, "rx_bytes");
    json_decref(o);
    /* A reset answers the values it ends (at least what was read before)... */
    assert_int_equal(http("POST", "/v1/guests/t1/traffic/reset", NULL, "trafstat-key-1", &r), 200);
    assert_true(num(r, "rx_bytes") >= before);
    assert_true(json_is_true(json_object_get(r, "reset")));
    /* ...and a retry with the same key replays that answer, it does not reset twice. */
    assert_int_equal(http("POST", "/v1/guests/t1/traffic/reset", NULL, "trafstat-key-1", &o), 200);
    assert_true(json_equal(o, r));
    json_decref(o);
    /* After the reset the counter is the cumulative counter minus the mark
     * (the cumulative value the reset ended): checked on a read that falls
     * between two reads of the same usage sample. */
    bool checked = false;
    for (int i = 0; i < 50 && !checked; i++) {
        json_t *u1 = NULL, *u2 = NULL;
        assert_int_equal(http("GET", "/v1/guests/t1/usage", NULL, NULL, &u1), 200);
        assert_int_equal(http("GET", "/v1/guests/t1/traffic", NULL, NULL, &o), 200);
        assert_int_equal(http("GET", "/v1/guests/t1/usage", NULL, NULL, &u2), 200);
        if (strcmp(str(u1, "time"), str(u2, "time")) == 0) {
            assert_int_equal(num(o, "rx_bytes"), num(u1, "net_rx_bytes") - num(r, "rx_bytes"));
            assert_int_equal(num(o, "tx_bytes"), num(u1, "net_tx_bytes") - num(r, "tx_bytes"));
            assert_true(json_is_string(json_object_get(o, "since")));
            checked = true;
        }
        json_decref(u1);
        json_decref(u2);
        json_decref(o);
    }
    assert_true(checked);
    json_decref(r);
    delete_all_guests();
    assert_int_equal(http("GET", "/v1/guests/t1/traffic", NULL, NULL, NULL), 404);
}

static void
test_idempotent_create_and_batch(void **state)
{
    json_t *a = NULL, *b = NULL, *l = NULL;
    const char *body = "{\"name\":\"i1\",\"template\":\"busybox\",\"ips\":[\"auto\"]}";

    assert_int_equal(http("POST", "/v1/guests", body, "create-key-1", &a), 201);
    assert_int_equal(http("POST", "/v1/guests", body, "create-key-1", &b), 201);
    assert_string_equal(str(a, "id"), str(b, "id"));
    json_decref(b);
    assert_int_equal(http("POST", "/v1/guests", "{\"name\":\"i2\",\"template\":\"busybox\"}",
                          "create-key-1", &b),
                     409);
    json_decref(b);
    /* Without the key the same body is a new request: the name is taken. */
    assert_int_equal(http("POST", "/v1/guests", body, NULL, NULL), 409);
    assert_int_equal(http("POST", "/v1/guests", body, "bad key!", NULL), 400);

    assert_int_equal(http("POST", "/v1/guests:batch",
                          "{\"guests\":[{\"name\":\"k1\",\"template\":\"busybox\"},"
                          "{\"name\":\"i1\",\"template\":\"busybox\"},"
                          "{\"name\":\"k2\",\"template\":\"busybox\",\"ips\":[\"auto\"]}]}",
                          "batch-key-1", &l),
                     200);
    json_t *res = json_object_get(l, "results");
    assert_int_equal(json_array_size(res), 3);
    assert_string_equal(str(json_array_get(res, 0), "name"), "k1");
    assert_string_equal(str(json_object_get(json_array_get(res, 1), "error"), "code"), "conflict");
    assert_string_equal(str(json_array_get(res, 2), "name"), "k2");
    json_decref(l);
    json_decref(poll_until("/v1/guests/k2", guest_state, "running"));

    /* The key survives a master restart; the guests keep running and the
     * nodes come back by themselves (nack not_found -> hello). */
    on_loop(stop_master);
    on_loop(free_master);
    F.algorithm = "spread";
    on_loop(start_master);
    assert_int_equal(F.err, 0);
    assert_int_equal(http("POST", "/v1/guests", body, "create-key-1", &b), 201);
    assert_string_equal(str(a, "id"), str(b, "id"));
    json_decref(b);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
    json_decref(poll_until("/v1/guests/i1", guest_state, "running"));
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &l), 200);
    assert_int_equal(json_array_size(json_object_get(l, "guests")), 3);
    json_decref(l);
    assert_int_equal(http("GET", "/v1/nodes/n1", NULL, NULL, &l), 200);
    assert_int_equal(json_array_size(json_object_get(l, "orphans")), 0);
    json_decref(l);
    json_decref(a);
    delete_all_guests();
}

static void
test_cordon(void **state)
{
    json_t *o = NULL;

    assert_int_equal(http("POST", "/v1/nodes/n2/cordon", NULL, NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "cordoned")));
    json_decref(o);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(httpf("POST", "/v1/guests", &o,
                               "{\"name\":\"c%d\",\"template\":\"busybox\","
                               "\"algorithm\":\"spread\"}",
                               k),
                         201);
        assert_string_not_equal(str(o, "node"), "n2");
        json_decref(o);
    }
    assert_int_equal(http("POST", "/v1/nodes/n2/uncordon", NULL, NULL, &o), 200);
    assert_true(json_is_false(json_object_get(o, "cordoned")));
    json_decref(o);
    assert_int_equal(http("POST", "/v1/nodes/zz/cordon", NULL, NULL, NULL), 404);
    delete_all_guests();
}

/* GET of a static file, the path sent as it is; returns the status and
 * copies the Content-Type. */
static long
get_static(const char *path, char *ctype, size_t n)
{
    CURL *c = curl_easy_init();
    struct buf b = {0};
    char url[512];
    long status = 0;
    char *ct = NULL;

    snprintf(url, sizeof(url), "%s%s", F.url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CAINFO, F.cafile);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    }
    snprintf(ctype, n, "%s", ct ? ct : "");
    curl_easy_cleanup(c);
    free(b.p);
    return status;
}

static void
test_web_ui(void **state)
{
    char ct[128];

    if (access(F.web, R_OK) != 0)
        skip();
    assert_int_equal(get_static("/", ct, sizeof(ct)), 200);
    assert_non_null(strstr(ct, "text/html"));
    assert_int_equal(get_static("/app.js", ct, sizeof(ct)), 200);
    assert_non_null(strstr(ct, "javascript"));
    assert_int_equal(get_static("/app.css", ct, sizeof(ct)), 200);
    assert_non_null(strstr(ct, "text/css"));
    assert_int_equal(get_static("/nope.html", ct, sizeof(ct)), 404);
    assert_int_equal(get_static("/../CMakeLists.txt", ct, sizeof(ct)), 404);
    assert_int_equal(get_static("/%2e%2e/CMakeLists.txt", ct, sizeof(ct)), 404);
    assert_int_equal(get_static("/.hidden", ct, sizeof(ct)), 404);
    assert_int_equal(get_static("//etc/passwd", ct, sizeof(ct)), 404);
    /* The API is not shadowed by the files. */
    assert_int_equal(get_static("/healthz", ct, sizeof(ct)), 200);
    assert_non_null(strstr(ct, "application/json"));
}

static bool
node_state_is(const json_t *o, const void *arg)
{
    return strcmp(str(o, "state"), arg) == 0;
}

static bool
none_unknown(const json_t *o, const void *arg)
{
    json_t *g;
    size_t i;

    json_array_foreach(json_object_get(o, "guests"), i,
                       g) if (!strcmp(str(g, "state"), "unknown")) return false;
    return json_array_size(json_object_get(o, "guests")) == 2;
}

static void
test_node_down_and_back(void **state)
{
    json_t *o = NULL, *g;
    char d1_id[40] = "", path[512];
    size_t i;

    for (int k = 0; k < 3; k++) {
        assert_int_equal(httpf("POST", "/v1/guests?wait=running", &o,
                               "{\"name\":\"d%d\",\"template\":\"busybox\",\"node\":\"n3\"}", k),
                         201);
        assert_string_equal(str(o, "state"), "running");
        if (k == 1)
            snprintf(d1_id, sizeof(d1_id), "%s", str(o, "id"));
        json_decref(o);
    }
    fx_stop_n3();
    json_decref(poll_until("/v1/nodes/n3", node_state_is, "down"));
    /* A guest only n3 could take (its anti-affinity group is on n1 and n2)
     * waits for it: 503 (retry), not 422, and nothing is charged. */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(httpf("POST", "/v1/guests", NULL,
                               "{\"name\":\"aa%d\",\"template\":\"busybox\",\"group\":\"aa\","
                               "\"limits\":{\"cpu_max\":0.1}}",
                               k),
                         201);
    }
    assert_int_equal(http("POST", "/v1/guests",
                          "{\"name\":\"aa2\",\"template\":\"busybox\",\"group\":\"aa\"}", NULL, &o),
                     503);
    assert_string_equal(str(json_object_get(o, "error"), "code"), "unavailable");
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/aa2", NULL, NULL, NULL), 404);
    assert_int_equal(http("DELETE", "/v1/guests/aa0", NULL, NULL, NULL), 204);
    assert_int_equal(http("DELETE", "/v1/guests/aa1", NULL, NULL, NULL), 204);
    /* Forgetting d2 while its node is unreachable: it stays there and comes
     * back as an orphan. */
    assert_int_equal(http("DELETE", "/v1/guests/d2?force=true", NULL, NULL, NULL), 204);
    assert_int_equal(http("GET", "/v1/guests?node=n3", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 2);
    json_array_foreach(json_object_get(o, "guests"), i, g)
    {
        assert_string_equal(str(g, "state"), "unknown");
        assert_string_equal(str(g, "node"), "n3"); /* never moved */
    }
    json_decref(o);
    /* A pin to a down node is refused with the reason. */
    assert_int_equal(httpf("POST", "/v1/guests", &o,
                           "{\"name\":\"d9\",\"template\":\"busybox\",\"node\":\"n3\"}"),
                     422);
    json_t *f = json_array_get(
        json_object_get(json_object_get(json_object_get(o, "error"), "placement"), "filters"), 0);
    assert_string_equal(str(f, "filter"), "ready");
    json_decref(o);
    /* Starting a guest on a down node is a conflict; deleting it needs force. */
    assert_int_equal(http("POST", "/v1/guests/d0/start", NULL, NULL, NULL), 409);
    assert_int_equal(http("DELETE", "/v1/guests/d0", NULL, NULL, NULL), 503);

    /* The node comes back without d1: lost, and never re-created. */
    snprintf(path, sizeof(path), "%s/n3/guests/%s.json", F.dir, d1_id);
    assert_int_equal(unlink(path), 0);
    on_loop(start_n3);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes/n3", node_state_is, "ready"));
    json_decref(poll_until("/v1/guests?node=n3", none_unknown, NULL));
    assert_int_equal(http("GET", "/v1/guests/d1", NULL, NULL, &o), 200);
    assert_string_equal(str(o, "state"), "lost");
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nodes/n3", NULL, NULL, &o), 200);
    json_t *orphans = json_object_get(o, "orphans");
    assert_int_equal(json_array_size(orphans), 1);
    assert_string_equal(str(json_array_get(orphans, 0), "name"), "d2");
    char orphan_id[64];
    snprintf(orphan_id, sizeof(orphan_id), "%s", str(json_array_get(orphans, 0), "id"));
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 2); /* no copies */
    json_decref(o);
    /* d2's context number was freed with it and goes to a new guest of n3;
     * adopted back, d2 gets another one (numbers are unique per node), one
     * generation more so that n3 hears of it. */
    assert_int_equal(httpf("POST", "/v1/guests?wait=running&timeout=20", &o,
                           "{\"name\":\"d5\",\"template\":\"busybox\",\"node\":\"n3\","
                           "\"limits\":{\"cpu_max\":0.1,\"memory\":\"64M\"}}"),
                     201);
    json_int_t d5_ctx = json_integer_value(json_object_get(o, "context"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/nodes/n3/orphans/%s/adopt", orphan_id);
    assert_int_equal(http("POST", path, NULL, NULL, &o), 201);
    json_int_t d2_ctx = json_integer_value(json_object_get(o, "context"));
    assert_true(d2_ctx >= SPEC_MIN_CONTEXT);
    assert_true(d2_ctx != d5_ctx);
    json_decref(o);
    json_t *gs = NULL, *h;
    size_t j;
    assert_int_equal(http("GET", "/v1/guests?node=n3", NULL, NULL, &gs), 200);
    assert_int_equal(json_array_size(json_object_get(gs, "guests")), 4); /* d0, d1, d2, d5 */
    json_array_foreach(json_object_get(gs, "guests"), i, g)
    {
        json_array_foreach(json_object_get(gs, "guests"), j, h)
        {
            if (j != i)
                assert_true(json_integer_value(json_object_get(g, "context")) !=
                            json_integer_value(json_object_get(h, "context")));
        }
    }
    json_decref(gs);
    delete_all_guests(); /* d1 (lost) at once, d0 through its node */
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 0);
    json_decref(o);
}

/* A master that stops reading its node link for 7 s (its loop behind:
 * suspect after 3 s, down after 6 s here) while the nodes keep sending
 * heartbeats: their messages wait unread, and the master does not take its
 * own backlog for their silence. Before this change every node went
 * suspect, then down (its guests unknown).
 *
 * The usage reports that wait are skipped when read (usage_shed) and cut
 * to their ids while stashed (shrink_usage): that needs a report of n1's
 * to wait a usage interval. The master's keepalive (keepalive_if_behind)
 * starts once it is a heartbeat interval behind, which here leaves an
 * agent ~150 ms of its three silent intervals (200 ms each): on a loaded
 * machine an agent sometimes takes the master for lost ("master silent for
 * 617 ms, reconnecting"), and until its hello is read it sends no usage
 * report (1 run in 16-17 at load 7-10). Such a pause waited for no
 * report, so it proves nothing about them: it is tried again, at most
 * three times. */
static void
test_backlogged_master_keeps_nodes(void **state)
{
    json_t *o = NULL, *n;
    size_t k;
    uint64_t shrunk_before = 0, shed_before = 0;
    int attempt;

    /* Guests, so that the nodes have usage to report: three on n1, whose
     * reports are then large enough to be worth shrinking (shrink_usage). */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(httpf("POST", "/v1/guests?wait=running", &o,
                               "{\"name\":\"before-backlog-%d\",\"template\":\"busybox\","
                               "\"node\":\"n1\"}",
                               i),
                         201);
        json_decref(o);
    }
    for (attempt = 1; attempt <= 3; attempt++) {
        on_loop(read_link_stats);
        shrunk_before = fx_link_stats.shrunk_bytes;
        shed_before = __atomic_load_n(&F.master->usage_shed, __ATOMIC_SEQ_CST);
        on_loop(pause_reading);
        for (int i = 0; i < 14; i++) {
            usleep(500000);
            assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, &o), 200);
            json_array_foreach(json_object_get(o, "nodes"), k, n)
                assert_string_equal(str(n, "state"), "ready");
            json_decref(o);
        }
        /* Read while paused: what was stashed and shrunk in this pause. */
        on_loop(read_link_stats);
        on_loop(resume_reading);
        json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
        if (fx_link_stats.shrunk_bytes > shrunk_before)
            break;
        print_message("pause %d: no usage report of n1 waited a usage interval (its agent "
                      "reconnected?): again\n",
                      attempt);
    }
    /* The backlog was real: the master measured it (read on the loop
     * thread, which owns it). */
    assert_true(__atomic_load_n(&F.master->behind_max_ms, __ATOMIC_SEQ_CST) >= 6000);
    /* Meanwhile the waiting frames left libzmq's queue for the link's own
     * (stash_if_behind), and the usage reports of the node with the guests
     * were cut to their ids (shrink_usage). */
    assert_true(fx_link_stats.stashed > 0);
    if (fx_link_stats.shrunk_bytes <= shrunk_before)
        fail_msg("no usage report was shrunk in 3 pauses of 7 s (shrunk_bytes %llu)",
                 (unsigned long long)fx_link_stats.shrunk_bytes);
    /* That report waits in the stash a usage interval or more behind, so it
     * is skipped when read (the first read after the resume, on the loop
     * thread): wait for it, bounded. */
    uint64_t until = time_mono_ms() + 10000, shed;
    while ((shed = __atomic_load_n(&F.master->usage_shed, __ATOMIC_SEQ_CST)) <= shed_before &&
           time_mono_ms() < until)
        usleep(10000);
    if (shed <= shed_before)
        fail_msg("a usage report waited a usage interval or more, yet none was skipped "
                 "within 10 s of the resume (usage_shed %llu)",
                 (unsigned long long)shed);
    assert_int_equal(httpf("POST", "/v1/guests?wait=running", &o,
                           "{\"name\":\"after-backlog\",\"template\":\"busybox\"}"),
                     201);
    assert_string_equal(str(o, "state"), "running");
    json_decref(o);
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_and_routes),
        cmocka_unit_test(test_web_ui),
        cmocka_unit_test(test_pool_idempotent),
        cmocka_unit_test(test_spread_30),
        cmocka_unit_test(test_binpack),
        cmocka_unit_test(test_constraints_and_groups),
        cmocka_unit_test(test_patch_exec_usage),
        cmocka_unit_test(test_ip_add_rm),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_traffic_reset),
        cmocka_unit_test(test_idempotent_create_and_batch),
        cmocka_unit_test(test_cordon),
        cmocka_unit_test(test_node_down_and_back),
        cmocka_unit_test(test_backlogged_master_keeps_nodes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
