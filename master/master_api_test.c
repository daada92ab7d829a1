/* The HTTP edge against bad input and the guest lifecycle's answers, end to
 * end in one process (master_fixture.h): encoded control bytes, bad page
 * parameters, empty batches, 405 with Allow, a locked guest, waits on
 * start and stop, unknown pins. */
#include "master/master_fixture.h"
#include "master/db_int.h"
#include "proto/spec.h"

static void
create_guest(const char *name)
{
    char path[] = "/v1/guests?wait=running&timeout=20";
    json_t *o = NULL;

    assert_int_equal(
        httpf("POST", path, &o,
              "{\"name\":\"%s\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.1}}", name),
        201);
    assert_string_equal(str(o, "state"), "running");
    /* The id is a version-4 UUID in lower-case text: 8-4-4-4-12 hex
     * digits, version nibble 4, variant 10xx. */
    const char *id = str(o, "id");
    assert_true(spec_is_uuid(id));
    assert_int_equal(strlen(id), 36);
    for (size_t i = 0; i < 36; i++)
        assert_true(i == 8 || i == 13 || i == 18 || i == 23
                        ? id[i] == '-'
                        : strchr("0123456789abcdef", id[i]) != NULL);
    assert_int_equal(id[14], '4');
    assert_non_null(strchr("89ab", id[19]));
    json_decref(o);
}

static void
test_bad_paths_and_params(void **state)
{
    json_t *o = NULL;

    create_guest("a1");
    /* "a1%00x" is not a lookup of "a1". */
    assert_int_equal(http("GET", "/v1/guests/a1%00x", NULL, NULL, &o), 400);
    json_decref(o);
    assert_int_equal(http("DELETE", "/v1/guests/a1%00x", NULL, NULL, NULL), 400);
    assert_int_equal(http("GET", "/v1/guests?after=a%00", NULL, NULL, NULL), 400);
    assert_int_equal(http("GET", "/v1/guests/a1", NULL, NULL, NULL), 200);
    const char *bad_limits[] = {"-1", "0", "abc", "+5", "%205", "99999999999999999999"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_limits); i++) {
        char path[96];
        snprintf(path, sizeof(path), "/v1/guests?limit=%s", bad_limits[i]);
        assert_int_equal(http("GET", path, NULL, NULL, &o), 400);
        assert_string_equal(str(json_object_get(o, "error"), "field"), "limit");
        json_decref(o);
    }
    assert_int_equal(http("GET", "/v1/nodes?limit=-1", NULL, NULL, NULL), 400);
    assert_int_equal(http("GET", "/v1/guests?limit=7", NULL, NULL, NULL), 200);
    assert_int_equal(http("DELETE", "/v1/guests/a1?force=maybe", NULL, NULL, NULL), 400);
    delete_all_guests();
}

/* GET or DELETE path with extra request headers (NULL-ended); returns the
 * status and the error's field in field (n bytes, "" when none). */
static long
http_field(const char *method, const char *path, const char *const *headers, char *field, size_t n)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = {0};
    char url[512];
    long status = 0;

    snprintf(url, sizeof(url), "%s%s", F.url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    h = fx_secure(c, h);
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    (void)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *o = b.n ? json_loadb(b.p, b.n, 0, NULL) : NULL;
    const char *f = json_string_value(json_object_get(json_object_get(o, "error"), "field"));
    snprintf(field, n, "%s", f ? f : "");
    json_decref(o);
    free(b.p);
    return status;
}

/* The guest's deleting flag, generation and the newest event's seq, to see
 * that a refused request changed nothing. */
static void
guest_mark(const char *name, char *buf, size_t n)
{
    json_t *g = get_guest(name), *ev = NULL;

    assert_int_equal(http("GET", "/v1/events?tail=1", NULL, NULL, &ev), 200);
    snprintf(buf, n, "deleting=%d generation=%lld state=%s next=%lld",
             json_is_true(json_object_get(g, "deleting")),
             (long long)json_integer_value(json_object_get(g, "generation")), str(g, "state"),
             (long long)json_integer_value(json_object_get(ev, "next")));
    json_decref(g);
    json_decref(ev);
}

/* Query parameters are the route's own (api.c's table): an unknown name, a
 * name given twice, a name without a value and a value outside the
 * documented enum or range are each a 400 naming the parameter, on every
 * route (the event stream and the shell's WebSocket upgrade too), and a
 * refused DELETE deleted nothing. */
static void
test_strict_query(void **state)
{
    static const char *const ndjson[] = {"Accept: application/x-ndjson", NULL};
    static const char *const ws[] = {
        "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", NULL};
    static const struct {
        const char *method, *path;  /* the request */
        const char *const *headers; /* extra headers */
        const char *field;          /* the error's field */
    } refused[] = {
        /* unknown names: another case, a typo, one the route does not take */
        {"DELETE", "/v1/guests/q1?Force=true", NULL, "Force"},
        {"DELETE", "/v1/guests/q1?forse=true", NULL, "forse"},
        {"DELETE", "/v1/guests/q1?wait=running", NULL, "wait"},
        {"GET", "/v1/guests?nodes=n1", NULL, "nodes"},
        {"GET", "/v1/guests/q1?x=1", NULL, "x"},
        {"GET", "/healthz?verbose=1", NULL, "verbose"},
        {"GET", "/v1/pools?limit=1", NULL, "limit"},
        {"GET", "/v1/events?follow=true&bogus=1", ndjson, "bogus"},
        {"GET", "/v1/guests/q1/shell?colums=80", ws, "colums"},
        /* the same name twice */
        {"DELETE", "/v1/guests/q1?force=false&force=true", NULL, "force"},
        {"GET", "/v1/guests?limit=1&limit=2", NULL, "limit"},
        {"GET", "/v1/events?follow=true&node=n1&node=n2", ndjson, "node"},
        {"GET", "/v1/guests/q1/shell?tty=true&tty=false", ws, "tty"},
        /* without a value */
        {"DELETE", "/v1/guests/q1?force", NULL, "force"},
        {"DELETE", "/v1/guests/q1?force=", NULL, "force"},
        {"GET", "/v1/events?follow", ndjson, "follow"},
        /* outside the enum or the range */
        {"GET", "/v1/events?type=nope", NULL, "type"},
        {"GET", "/v1/events?type=guest.created,nope", NULL, "type"},
        {"GET", "/v1/events?type=guest.created,", NULL, "type"},
        {"GET", "/v1/events?follow=true&type=nope", ndjson, "type"},
        {"GET", "/v1/events?limit=5001", NULL, "limit"},
        {"GET", "/v1/events?tail=0", NULL, "tail"},
        {"GET", "/v1/guests/q1/shell?cols=wide", ws, "cols"},
        {"GET", "/v1/guests/q1/shell?rows=65536", ws, "rows"},
        /* not a terminal name: the node would refuse it (msg_term_is_valid) */
        {"GET", "/v1/guests/q1/shell?term=xterm%20256", ws, "term"},
        {"GET", "/v1/guests/q1/shell?term=xterm%3Brm", ws, "term"},
        {"GET", "/v1/guests/q1/shell?term=%1B%5B31m", ws, "term"},
        {"GET", "/v1/guests/q1/shell?term=..%2Fx", ws, "term"},
        {"GET", "/v1/operations?state=nope", NULL, "state"},
        {"GET", "/v1/operations?parent=nope", NULL, "parent"},
        {"GET", "/v1/usage/traffic?by=node", NULL, "by"},
        {"GET", "/v1/guests/q1/console?bytes=1048577", NULL, "bytes"},
        /* a value without a name */
        {"GET", "/v1/nodes?=1", NULL, ""},
    };
    char before[160], after[160], field[64];

    (void)state;
    create_guest("q1");
    guest_mark("q1", before, sizeof(before));
    /* Every case is tried and every wrong answer said, then the test fails. */
    unsigned wrong = 0;
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        long st = http_field(refused[i].method, refused[i].path, refused[i].headers, field,
                             sizeof(field));
        if (st != 400 || strcmp(field, refused[i].field) != 0)
            print_error("%s %s: %ld field \"%s\", want 400 field \"%s\"\n", refused[i].method,
                        refused[i].path, st, field, refused[i].field),
                wrong++;
    }
    assert_int_equal(wrong, 0);
    /* Nothing was deleted, nothing changed, no event was stored. */
    guest_mark("q1", after, sizeof(after));
    assert_string_equal(before, after);
    /* What the CLI, the web UI and the docs send still works. */
    static const char *const accepted[] = {
        "/v1/events?type=guest.*,node.state&limit=5000",
        "/v1/events?type=guest.orphan.*,operation.step,node.*",
        "/v1/events?tail=300&guest=q1",
        "/v1/guests?limit=1000&state=running&label=tier%3Dweb",
        "/v1/operations?state=running&guest=q1",
        "/v1/nodes?limit=1",
        "/v1/nodes?limit=1&",
        "/v1/nodes?&limit=1&&after=a",
        "/v1/nodes?",
        "/healthz",
    };
    for (size_t i = 0; i < ARRAY_SIZE(accepted); i++) {
        long st = http_field("GET", accepted[i], NULL, field, sizeof(field));
        if (st != 200)
            fail_msg("GET %s: %ld field \"%s\", want 200", accepted[i], st, field);
    }
    assert_int_equal(http("DELETE", "/v1/guests/q1?force=false", NULL, NULL, NULL), 204);
    delete_all_guests();
}

static void
test_limits_that_round_to_zero(void **state)
{
    const char *bodies[] = {
        "{\"name\":\"z1\",\"template\":\"busybox\",\"limits\":{\"memory\":\"0.0000001K\"}}",
        "{\"name\":\"z1\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.0000001}}",
        "{\"name\":\"z1\",\"template\":\"busybox\",\"limits\":{\"net_in\":\"0.1bit\"}}",
    };
    const char *fields[] = {"limits.memory", "limits.cpu_max", "limits.net_in"};
    json_t *o = NULL;

    for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
        assert_int_equal(http("POST", "/v1/guests", bodies[i], NULL, &o), 400);
        assert_string_equal(str(json_object_get(o, "error"), "field"), fields[i]);
        json_decref(o);
    }
    assert_int_equal(http("GET", "/v1/guests/z1", NULL, NULL, NULL), 404);
}

static void
test_batch_and_405(void **state)
{
    json_t *o = NULL;
    struct hdr_want allow = {.name = "allow:"};

    assert_int_equal(http("POST", "/v1/guests:batch", "{\"guests\":[]}", NULL, &o), 400);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "guests");
    json_decref(o);
    assert_int_equal(http_h("PUT", "/v1/guests/a1", "{}", NULL, &o, &allow), 405);
    assert_string_equal(allow.value, "GET, PATCH, DELETE");
    assert_string_equal(str(json_object_get(o, "error"), "code"), "method_not_allowed");
    json_decref(o);
    allow.value[0] = '\0';
    assert_int_equal(http_h("DELETE", "/v1/guests", NULL, NULL, NULL, &allow), 405);
    assert_string_equal(allow.value, "GET, POST");
    assert_int_equal(http("POST", "/v1/guests", "{\"name\":", NULL, NULL), 400);
}

static void
test_lock_and_waits(void **state)
{
    json_t *o = NULL;

    create_guest("l1");
    /* stop ?wait=stopped answers when it stopped. */
    assert_int_equal(http("POST", "/v1/guests/l1/stop?wait=stopped&timeout=20", NULL, NULL, &o),
                     200);
    assert_string_equal(str(o, "state"), "stopped");
    assert_string_equal(str(o, "desired"), "stopped");
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/l1/stop?wait=running", NULL, NULL, NULL), 400);
    /* A locked guest does not start, and nothing changes. */
    assert_int_equal(http("PATCH", "/v1/guests/l1", "{\"flags\":[\"lock\"]}", NULL, &o), 200);
    json_int_t gen = num(o, "generation");
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/l1/start", NULL, NULL, &o), 409);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "flags");
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/l1/restart", NULL, NULL, NULL), 409);
    assert_int_equal(http("GET", "/v1/guests/l1", NULL, NULL, &o), 200);
    assert_int_equal(num(o, "generation"), gen);
    assert_string_equal(str(o, "desired"), "stopped");
    json_decref(o);
    /* Unlocked, start ?wait=running answers when it runs. */
    assert_int_equal(http("PATCH", "/v1/guests/l1", "{\"flags\":[]}", NULL, NULL), 200);
    assert_int_equal(http("POST", "/v1/guests/l1/start?wait=running&timeout=20", NULL, NULL, &o),
                     200);
    assert_string_equal(str(o, "state"), "running");
    json_decref(o);
    delete_all_guests();
}

/* The console's tail, from the node's ring; a private guest's is its own. */
static void
test_console(void **state)
{
    json_t *o = NULL;

    create_guest("c1");
    assert_int_equal(http("GET", "/v1/guests/c1/console", NULL, NULL, &o), 200);
    assert_non_null(strstr(str(o, "data"), "guest c1: up"));
    assert_int_equal(num(o, "dropped"), num(o, "total") - (json_int_t)strlen(str(o, "data")));
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/c1/console?bytes=5", NULL, NULL, &o), 200);
    assert_int_equal(strlen(str(o, "data")), 5);
    assert_true(num(o, "dropped") > 0);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/c1/console?bytes=0", NULL, NULL, NULL), 400);
    assert_int_equal(http("GET", "/v1/guests/c1/console?bytes=x", NULL, NULL, NULL), 400);
    assert_int_equal(http("GET", "/v1/guests/nope/console", NULL, NULL, NULL), 404);
    assert_int_equal(http("PATCH", "/v1/guests/c1", "{\"flags\":[\"private\"]}", NULL, NULL), 200);
    assert_int_equal(http("GET", "/v1/guests/c1/console", NULL, NULL, &o), 409);
    json_decref(o);
    delete_all_guests();
}

static void
test_placement_errors(void **state)
{
    json_t *o = NULL;

    assert_int_equal(http("POST", "/v1/guests",
                          "{\"name\":\"p1\",\"template\":\"busybox\",\"node\":\"nope\"}", NULL, &o),
                     422);
    json_t *e = json_object_get(o, "error");
    assert_string_equal(str(e, "code"), "unplaceable");
    json_t *f = json_array_get(json_object_get(json_object_get(e, "placement"), "filters"), 0);
    assert_string_equal(str(f, "filter"), "pinned");
    json_decref(o);
    /* More memory than any node has: the near miss is in the contract's units. */
    assert_int_equal(
        http("POST", "/v1/guests",
             "{\"name\":\"p2\",\"template\":\"busybox\",\"limits\":{\"memory\":\"1T\"}}", NULL, &o),
        422);
    json_t *nm =
        json_object_get(json_object_get(json_object_get(o, "error"), "placement"), "near_miss");
    assert_string_equal(str(nm, "resource"), "memory");
    assert_true(num(nm, "need") == 1LL << 40);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/p2", NULL, NULL, NULL), 404);
    /* A template no node has: 422 naming it, never placed. */
    assert_int_equal(
        http("POST", "/v1/guests", "{\"name\":\"p3\",\"template\":\"nosuch\"}", NULL, &o), 422);
    e = json_object_get(o, "error");
    assert_string_equal(str(e, "field"), "template");
    assert_non_null(strstr(str(e, "message"), "nosuch"));
    f = json_array_get(json_object_get(json_object_get(e, "placement"), "filters"), 0);
    assert_string_equal(str(f, "filter"), "template");
    assert_int_equal(num(f, "rejected"), N_NODES);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/p3", NULL, NULL, NULL), 404);
    /* Nodes list their templates. */
    assert_int_equal(http("GET", "/v1/nodes/n1", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "templates")), 2);
    json_decref(o);
}

/* A guest without cpu_max is charged the cluster's default share (0.1 core),
 * not a whole core, on its node: what `vfleet node ls` shows as allocated. */
static void
test_default_cpu_share(void **state)
{
    json_t *o = NULL;

    assert_int_equal(httpf("POST", "/v1/guests?wait=running&timeout=20", &o,
                           "{\"name\":\"d1\",\"template\":\"busybox\",\"node\":\"n2\"}"),
                     201);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nodes/n2", NULL, NULL, &o), 200);
    double cpus = json_number_value(json_object_get(json_object_get(o, "allocated"), "cpus"));
    assert_true(cpus > 0.099 && cpus < 0.101);
    json_decref(o);
    delete_all_guests();
    assert_int_equal(http("GET", "/v1/nodes/n2", NULL, NULL, &o), 200);
    assert_true(json_number_value(json_object_get(json_object_get(o, "allocated"), "cpus")) == 0);
    json_decref(o);
}

/* A create that waits for running answers from the spec it stored, not by
 * parsing the stored text again when the node reports the guest running:
 * a trigger spoils the text (a name that is a number: valid JSON, not a
 * spec) in the running report's own transaction, and
 * the answer still comes, equal to what a later read of the repaired text
 * gives (the cached spec is the stored one). */
static char spoiled_id[SPEC_ID_LEN + 1];

static void
spoil_on_running(struct fx *f)
{
    f->err = dbi_exec(f->master->db,
                      "CREATE TEMP TRIGGER spoil_w1 AFTER UPDATE OF observed ON main.guests "
                      "WHEN new.observed = 'running' AND new.name = 'w1' "
                      "BEGIN UPDATE guests SET spec = json_set(spec, '$.name', 5) "
                      "WHERE id = new.id; END");
}

static void
repair(struct fx *f)
{
    f->err = dbi_exec(f->master->db, "DROP TRIGGER temp.spoil_w1; UPDATE guests SET spec = "
                                     "json_set(spec, '$.name', 'w1') WHERE name = 'w1'");
    guests_cache_forget(f->master, spoiled_id);
}

static void
test_wait_answer_from_create(void **state)
{
    json_t *a = NULL, *b = NULL;

    on_loop(spoil_on_running);
    assert_int_equal(F.err, 0);
    assert_int_equal(httpf("POST", "/v1/guests?wait=running&timeout=20", &a,
                           "{\"name\":\"w1\",\"template\":\"busybox\",\"labels\":{\"k\":\"v\"},"
                           "\"limits\":{\"cpu_max\":0.2,\"memory\":\"96M\"}}"),
                     201);
    assert_string_equal(str(a, "state"), "running");
    strscpy(spoiled_id, str(a, "id"), sizeof(spoiled_id));
    on_loop(repair);
    assert_int_equal(F.err, 0);
    assert_int_equal(http("GET", "/v1/guests/w1", NULL, NULL, &b), 200);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    delete_all_guests();
}

/* ---- creates that arrive together commit together ---- */

#define GROUP_N 8

/* The number of guests named "gc-*" after each commit of a transaction
 * (not of a savepoint). */
static struct {
    unsigned counts[256]; /* after each commit, in order */
    unsigned n;           /* commits seen */
} seen;

static void
count_after_commit(void *userdata, enum db_tx_event ev, unsigned depth)
{
    db_t *db = userdata;
    sqlite3_stmt *s = NULL;

    if (ev != DB_TX_COMMIT || depth != 1 || seen.n >= ARRAY_SIZE(seen.counts))
        return;
    if (sqlite3_prepare_v2(db->conn, "SELECT count(*) FROM guests WHERE name LIKE 'gc-%'", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        seen.counts[seen.n++] = (unsigned)sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
}

static void
count_commits(struct fx *f)
{
    seen.n = 0;
    f->err = db_tx_hook_add(f->master->db, count_after_commit, f->master->db);
}

static void
stop_counting(struct fx *f)
{
    db_tx_hook_remove(f->master->db, f->master->db);
}

/* Creates of parallel clients that the loop takes at once (they arrived
 * while it was busy) are stored by one commit, with one fsync, not one
 * each (issue 16: the commit was the largest part of the master's CPU per
 * create); each is answered after that commit, and a create that fails
 * among them (a name taken by another of the group) fails alone. */
static void
test_creates_commit_together(void **state)
{
    const char *bodies[GROUP_N + 1];
    char text[GROUP_N + 1][160];
    long st[GROUP_N + 1];
    json_t *o = NULL;

    for (unsigned i = 0; i <= GROUP_N; i++) {
        /* The last one takes the first one's name. */
        snprintf(text[i], sizeof(text[i]),
                 "{\"name\":\"gc-%u\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.01}}",
                 i < GROUP_N ? i : 0);
        bodies[i] = text[i];
    }
    on_loop(count_commits);
    assert_int_equal(F.err, 0);
    assert_int_equal(fx_post_together("/v1/guests", bodies, GROUP_N + 1, st), GROUP_N + 1);
    on_loop(stop_counting);

    /* One of the two "gc-0" is refused, whichever the loop took second. */
    unsigned created = 0, conflicts = 0;
    for (unsigned i = 0; i <= GROUP_N; i++) {
        created += st[i] == 201;
        conflicts += st[i] == 409;
    }
    assert_int_equal(created, GROUP_N);
    assert_int_equal(conflicts, 1);
    /* No commit stored only some of them: they went in one. */
    assert_true(seen.n >= 1);
    for (unsigned i = 0; i < seen.n; i++) {
        if (seen.counts[i] != 0 && seen.counts[i] != GROUP_N)
            fail_msg("commit %u of %u stored %u of the %d creates", i + 1, seen.n, seen.counts[i],
                     GROUP_N);
    }
    assert_int_equal(seen.counts[seen.n - 1], GROUP_N);
    for (unsigned i = 0; i < GROUP_N; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/v1/guests/gc-%u", i);
        assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
        json_decref(o);
    }
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_paths_and_params),
        cmocka_unit_test(test_strict_query),
        cmocka_unit_test(test_limits_that_round_to_zero),
        cmocka_unit_test(test_batch_and_405),
        cmocka_unit_test(test_lock_and_waits),
        cmocka_unit_test(test_console),
        cmocka_unit_test(test_placement_errors),
        cmocka_unit_test(test_default_cpu_share),
        cmocka_unit_test(test_wait_answer_from_create),
        cmocka_unit_test(test_creates_commit_together),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
