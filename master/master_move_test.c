/* Operations end to end in one process (master_fixture.h): a guest moves
 * to another node over the real data channel (the sim backend has no disk
 * image, so an empty one travels) and keeps its id, name and addresses with
 * one generation more; a move names a target or lets the scheduler choose;
 * bad requests are refused; the guest is busy while it moves; a drain
 * empties a node and cordons it; the operation list and a cancel of an
 * ended operation. */
#include "master/master_fixture.h"

#include "common/base64.h"

static void
create_on(const char *name, const char *node)
{
    json_t *o = NULL;

    assert_int_equal(httpf("POST", "/v1/guests?wait=running&timeout=20", &o,
                           "{\"name\":\"%s\",\"template\":\"busybox\",\"node\":\"%s\","
                           "\"limits\":{\"cpu_max\":0.1,\"memory\":\"64M\"}}",
                           name, node),
                     201);
    json_decref(o);
}

static bool
op_ended(const json_t *o, const void *arg)
{
    (void)arg;
    return strcmp(str(o, "state"), "running") != 0;
}

/* Starts a move and waits for its end; returns the final operation. */
static json_t *
move(const char *guest, const char *body, long *status)
{
    char path[128];
    json_t *o = NULL;

    snprintf(path, sizeof(path), "/v1/guests/%s/move", guest);
    *status = http("POST", path, body, NULL, &o);
    if (*status != 202)
        return o;
    snprintf(path, sizeof(path), "/v1/operations/%s", str(o, "id"));
    json_decref(o);
    return poll_until(path, op_ended, NULL);
}

static void
test_move_keeps_the_guest(void **state)
{
    long st;

    create_on("mv1", "n1");
    json_t *before = get_guest("mv1");
    json_t *op = move("mv1", "{\"to\":\"n2\"}", &st);
    assert_int_equal(st, 202);
    if (strcmp(str(op, "state"), "done") != 0)
        fail_msg("move ended %s: %s", str(op, "state"), str(op, "error"));
    assert_string_equal(str(op, "kind"), "move");
    assert_string_equal(str(op, "node"), "n1");
    assert_string_equal(str(op, "target"), "n2");
    json_t *res = json_object_get(op, "result");
    assert_string_equal(str(res, "mode"), "cold");
    /* The fixture's nodes are on ipc:// without node keys: secret only. */
    assert_string_equal(str(res, "channel"), "plaintext");
    assert_int_equal(strlen(str(res, "digest")), 64);
    assert_null(json_object_get(json_object_get(op, "params"), "_secret"));
    json_t *after = poll_until("/v1/guests/mv1", guest_state, "running");
    assert_string_equal(str(after, "node"), "n2");
    assert_string_equal(str(after, "id"), str(before, "id"));
    assert_int_equal(num(after, "generation"), num(before, "generation") + 1);
    assert_true(json_equal(json_object_get(after, "ips"), json_object_get(before, "ips")));
    json_decref(before);
    json_decref(after);
    json_decref(op);

    /* The scheduler picks a node other than its own; near-live works too. */
    op = move("mv1", "{\"live\":true}", &st);
    assert_int_equal(st, 202);
    assert_string_equal(str(op, "state"), "done");
    assert_string_not_equal(str(op, "target"), "n2");
    assert_string_equal(str(json_object_get(op, "result"), "mode"), "near-live");
    json_decref(op);
    delete_all_guests();
}

/* Context numbers are unique per node: the same number on two nodes; a
 * move keeps its number where it is free on the target and gets the
 * target's smallest free one where another guest holds it, saying so. */
static void
test_move_renumbers_context(void **state)
{
    long st;

    create_on("cx1", "n1");
    create_on("cx2", "n2");
    create_on("cx3", "n2");
    json_t *a = get_guest("cx1"), *b = get_guest("cx2"), *c = get_guest("cx3");
    json_int_t ca = num(a, "context"), cb = num(b, "context"), cc = num(c, "context");
    assert_int_equal(ca, cb); /* both the smallest free on their node */
    assert_true(cc > cb);
    json_decref(a);
    json_decref(b);
    json_decref(c);

    /* cx1's number is cx2's on n2: it gets n2's smallest free one. */
    json_t *op = move("cx1", "{\"to\":\"n2\"}", &st);
    assert_int_equal(st, 202);
    if (strcmp(str(op, "state"), "done") != 0)
        fail_msg("move ended %s: %s", str(op, "state"), str(op, "error"));
    json_t *ctx = json_object_get(json_object_get(op, "result"), "context");
    assert_non_null(ctx);
    assert_int_equal(num(ctx, "from"), ca);
    assert_int_equal(num(ctx, "to"), cc + 1);
    json_decref(op);
    a = poll_until("/v1/guests/cx1", guest_state, "running");
    assert_string_equal(str(a, "node"), "n2");
    assert_int_equal(num(a, "context"), cc + 1);
    json_decref(a);
    json_t *ev = NULL;
    assert_int_equal(http("GET", "/v1/events?type=guest.moved&guest=cx1", NULL, NULL, &ev), 200);
    json_t *evs = json_object_get(ev, "events");
    assert_true(json_array_size(evs) >= 1);
    json_t *data = json_object_get(json_array_get(evs, json_array_size(evs) - 1), "data");
    assert_int_equal(num(json_object_get(data, "context"), "to"), cc + 1);
    json_decref(ev);

    /* cx3's number is free on n1 (cx1 left it): it keeps it. */
    op = move("cx3", "{\"to\":\"n1\"}", &st);
    assert_int_equal(st, 202);
    assert_string_equal(str(op, "state"), "done");
    assert_null(json_object_get(json_object_get(op, "result"), "context"));
    json_decref(op);
    c = poll_until("/v1/guests/cx3", guest_state, "running");
    assert_string_equal(str(c, "node"), "n1");
    assert_int_equal(num(c, "context"), cc);
    json_decref(c);
    delete_all_guests();
}

static void
test_move_refusals(void **state)
{
    json_t *o = NULL;

    create_on("mv2", "n1");
    assert_int_equal(http("POST", "/v1/guests/mv2/move", "{\"to\":\"n1\"}", NULL, &o), 400);
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/nope/move", "{}", NULL, NULL), 404);
    assert_int_equal(http("POST", "/v1/guests/mv2/move", "{\"to\":\"zz\"}", NULL, &o), 422);
    json_decref(o);
    assert_int_equal(http("POST", "/v1/guests/mv2/move", "{\"speed\":1}", NULL, NULL), 400);
    assert_int_equal(http("POST", "/v1/guests/mv2/move", "{\"live\":\"yes\"}", NULL, NULL), 400);
    /* While one move runs, the guest is busy: a second move, a stop and a
     * delete are conflicts. (The first may end before the second asks.) */
    assert_int_equal(http("POST", "/v1/guests/mv2/move", "{\"to\":\"n2\"}", NULL, &o), 202);
    char path[128];
    snprintf(path, sizeof(path), "/v1/operations/%s", str(o, "id"));
    json_decref(o);
    long st = http("POST", "/v1/guests/mv2/move", "{\"to\":\"n3\"}", NULL, NULL);
    assert_true(st == 409 || st == 202);
    json_decref(poll_until(path, op_ended, NULL));
    /* Ended: cancelling it is a conflict, an unknown one is 404. */
    assert_int_equal(http("DELETE", path, NULL, NULL, NULL), 409);
    assert_int_equal(
        http("DELETE", "/v1/operations/00000000-0000-4000-8000-000000000000", NULL, NULL, NULL),
        404);
    /* Let whatever second move there was end before the guests go. */
    for (int i = 0; i < 200; i++) {
        json_t *l = NULL;
        assert_int_equal(http("GET", "/v1/operations?state=running", NULL, NULL, &l), 200);
        size_t n = json_array_size(json_object_get(l, "operations"));
        json_decref(l);
        if (n == 0)
            break;
        usleep(50 * 1000);
    }
    delete_all_guests();
}

static void
test_drain_empties_the_node(void **state)
{
    char name[16];
    json_t *o = NULL;

    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "dr%d", i);
        create_on(name, "n3");
    }
    assert_int_equal(http("POST", "/v1/nodes/n3/drain", "{\"limit\":3}", NULL, &o), 202);
    assert_string_equal(str(o, "kind"), "drain");
    char path[128];
    snprintf(path, sizeof(path), "/v1/operations/%s", str(o, "id"));
    json_decref(o);
    o = poll_until(path, op_ended, NULL);
    if (strcmp(str(o, "state"), "done") != 0)
        fail_msg("drain ended %s: %s", str(o, "state"), str(o, "error"));
    assert_int_equal(num(json_object_get(o, "result"), "moved"), 5);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/nodes/n3", NULL, NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "cordoned")));
    assert_int_equal(num(o, "guests"), 0);
    json_decref(o);
    /* Five child moves, each done, listed under the drain. */
    char list[160];
    snprintf(list, sizeof(list), "/v1/operations?parent=%s", path + strlen("/v1/operations/"));
    assert_int_equal(http("GET", list, NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "operations")), 5);
    json_decref(o);
    assert_int_equal(http("POST", "/v1/nodes/n3/uncordon", NULL, NULL, NULL), 200);
    assert_int_equal(http("GET", "/v1/operations?state=bogus", NULL, NULL, NULL), 400);
    delete_all_guests();
}

/* Export to an archive, download it, upload it again and import it as a
 * new guest (the sim backend has no files: the archive holds the manifest). */
static void
test_export_import(void **state)
{
    json_t *o = NULL;
    long st;
    char path[160];

    create_on("ex1", "n1");
    assert_int_equal(http("POST", "/v1/guests/ex1/export", NULL, NULL, &o), 202);
    snprintf(path, sizeof(path), "/v1/operations/%s", str(o, "id"));
    json_decref(o);
    o = poll_until(path, op_ended, NULL);
    if (strcmp(str(o, "state"), "done") != 0)
        fail_msg("export ended %s: %s", str(o, "state"), str(o, "error"));
    json_t *res = json_object_get(o, "result");
    char archive[64], sha[65];
    snprintf(archive, sizeof(archive), "%s", str(res, "archive"));
    snprintf(sha, sizeof(sha), "%s", str(res, "sha256"));
    json_int_t size = num(res, "size");
    assert_true(size > 0);
    json_decref(o);

    snprintf(path, sizeof(path), "/v1/archives/%s?offset=0", archive);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "eof")));
    char *data = xstrdup(str(o, "data"));
    json_decref(o);

    /* Upload it back: a wrong offset is a conflict that says where to go on. */
    assert_int_equal(httpf("POST", "/v1/archives", &o, "{\"size\":%lld,\"sha256\":\"%s\"}",
                           (long long)size, sha),
                     201);
    char up[64];
    snprintf(up, sizeof(up), "%s", str(o, "id"));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/archives/%s", up);
    assert_int_equal(httpf("POST", path, NULL, "{\"offset\":5,\"data\":\"%s\"}", data), 409);
    assert_int_equal(httpf("POST", path, &o, "{\"offset\":0,\"data\":\"%s\"}", data), 200);
    assert_true(json_is_true(json_object_get(o, "complete")));
    json_decref(o);
    free(data);

    st = httpf("POST", "/v1/guests:import", &o, "{\"archive\":\"%s\",\"name\":\"ex2\"}", up);
    assert_int_equal(st, 202);
    snprintf(path, sizeof(path), "/v1/operations/%s", str(o, "id"));
    json_decref(o);
    o = poll_until(path, op_ended, NULL);
    if (strcmp(str(o, "state"), "done") != 0)
        fail_msg("import ended %s: %s", str(o, "state"), str(o, "error"));
    json_decref(o);
    json_t *a = get_guest("ex1"), *b = poll_until("/v1/guests/ex2", guest_state, "running");
    assert_string_not_equal(str(a, "id"), str(b, "id"));
    assert_string_equal(str(a, "template"), str(b, "template"));
    assert_true(json_equal(json_object_get(a, "limits"), json_object_get(b, "limits")));
    json_decref(a);
    json_decref(b);
    /* A name taken is a conflict before anything moves. */
    assert_int_equal(
        httpf("POST", "/v1/guests:import", NULL, "{\"archive\":\"%s\",\"name\":\"ex2\"}", up), 409);
    snprintf(path, sizeof(path), "/v1/archives/%s", up);
    assert_int_equal(http("DELETE", path, NULL, NULL, NULL), 204);
    assert_int_equal(http("GET", path, NULL, NULL, NULL), 404);
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_move_keeps_the_guest), cmocka_unit_test(test_move_renumbers_context),
        cmocka_unit_test(test_move_refusals),        cmocka_unit_test(test_drain_empties_the_node),
        cmocka_unit_test(test_export_import),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
