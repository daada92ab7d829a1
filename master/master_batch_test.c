/* Hostile tests of the creates that join the loop's batch (http_edge.c,
 * create_joins_batch): requests of every kind taken by the loop in one
 * iteration, in an order the test chooses, with clients that go away
 * before the answer, quotas and pools that one create of the batch takes
 * from another, and the same name twice. End to end in one process
 * (master_fixture.h). */
#include "master/master_fixture.h"
#include "master/db_int.h"
#include "master/oncommit.h"

/* ---- requests queued in a chosen order while the loop is held ---------- */

/* One request of a held queue. */
struct held_req {
    const char *method; /* the method */
    char path[128];     /* the path */
    char body[512];     /* the body, "" = none */
    const char *idem;   /* an Idempotency-Key, or NULL */
    long timeout_ms;    /* > 0: the client gives up (closes) after this */
    long status;        /* the answer's status (0 = none: the client went away) */
    json_t *out;        /* the answer's body */
    bool done;          /* its client has returned (atomic) */
};

static sem_t held_release, held_entered;

static void
hold_loop(struct fx *f)
{
    (void)f;
    sem_post(&held_entered);
    sem_wait(&held_release);
}

static void *
hold_thread(void *arg)
{
    (void)arg;
    on_loop(hold_loop);
    return NULL;
}

static void *
held_one(void *arg)
{
    struct held_req *q = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = {0};
    char url[512], hdr[128];

    snprintf(url, sizeof(url), "%s%s", F.url, q->path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (q->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms);
    else
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (q->idem) {
        snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", q->idem);
        h = curl_slist_append(h, hdr);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (q->body[0])
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body);
    q->status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    q->out = b.n ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    __atomic_store_n(&q->done, true, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Sends the n requests while the loop is held, one after the other in the
 * server's queue (each waits there before the next is sent), then lets
 * the loop take them all in one iteration (once every client has given up
 * when until_gone); waits for every answer (or client's end). Returns how
 * many were queued together. Each step is waited for, none slept: the
 * loop was given 100 ms to be held, and clients 1 s past their timeout to
 * be gone, which a loaded machine need not keep to. */
static unsigned
send_held(struct held_req *q, unsigned n, bool until_gone)
{
    pthread_t holder, *th = xcalloc(n, sizeof(*th));
    unsigned queued = 0;

    sem_init(&held_release, 0, 0);
    sem_init(&held_entered, 0, 0);
    pthread_create(&holder, NULL, hold_thread, NULL);
    /* The loop is held once the holder's call runs: nothing is taken from
     * the queue then. */
    sem_wait(&held_entered);
    for (unsigned i = 0; i < n; i++) {
        q[i].done = false;
        pthread_create(&th[i], NULL, held_one, &q[i]);
        uint64_t until = time_mono_ms() + 20000;
        while (httpd_queued(F.master->httpd) < i + 1 && time_mono_ms() < until)
            usleep(1000);
    }
    queued = httpd_queued(F.master->httpd);
    for (unsigned i = 0; until_gone && i < n; i++) {
        uint64_t until = time_mono_ms() + 60000;
        while (!__atomic_load_n(&q[i].done, __ATOMIC_SEQ_CST) && time_mono_ms() < until)
            usleep(1000);
    }
    sem_post(&held_release);
    pthread_join(holder, NULL);
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    sem_destroy(&held_release);
    sem_destroy(&held_entered);
    free(th);
    return queued;
}

static void
held_clear(struct held_req *q, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        json_decref(q[i].out);
        q[i].out = NULL;
    }
}

static struct held_req
create_req(const char *name, const char *extra)
{
    struct held_req q = {.method = "POST"};

    snprintf(q.path, sizeof(q.path), "/v1/guests");
    snprintf(q.body, sizeof(q.body),
             "{\"name\":\"%s\",\"template\":\"busybox\",\"limits\":{\"cpu_max\":0.01}%s%s}", name,
             extra ? "," : "", extra ? extra : "");
    return q;
}

/* The status of GET /v1/guests/NAME. */
static long
get_status(const char *name)
{
    char path[160];

    snprintf(path, sizeof(path), "/v1/guests/%s", name);
    return http("GET", path, NULL, NULL, NULL);
}

static size_t pending_seen;

static void
read_pending(struct fx *f)
{
    pending_seen = oncommit_pending(f->master->oncommit);
}

/* ---- the attacks -------------------------------------------------------- */

/* Clients that go away after sending a create, before the batch that holds
 * it commits: the create is stored (the client may read it), the master
 * answers nobody and frees the request once (ASan), and keeps serving.
 * Each client gives up 1.5 s after it starts; the loop is held until all
 * have gone. */
static void
test_client_gone(void **state)
{
    enum { N = 6 };
    struct held_req q[N];
    char name[32];

    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "gone-%u", i);
        /* Half wait for the guest to run, half do not. */
        q[i] = create_req(name, NULL);
        if (i % 2)
            snprintf(q[i].path, sizeof(q[i].path), "/v1/guests?wait=running&timeout=20");
        q[i].timeout_ms = 1500;
    }
    assert_int_equal(send_held(q, N, true), N);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(q[i].status, 0);
    held_clear(q, N);
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "gone-%u", i);
        assert_int_equal(get_status(name), 200);
    }
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 200);
    on_loop(read_pending);
    assert_int_equal(pending_seen, 0);
    delete_all_guests();
}

/* The same name many times in one batch: exactly one is created, the
 * others get 409; the one created is the one answered 201. */
static void
test_same_name(void **state)
{
    enum { N = 8 };
    struct held_req q[N];
    unsigned created = 0, conflicts = 0;
    const char *id = NULL;

    for (unsigned i = 0; i < N; i++)
        q[i] = create_req("twin", NULL);
    assert_int_equal(send_held(q, N, false), N);
    for (unsigned i = 0; i < N; i++) {
        if (q[i].status == 201) {
            created++;
            id = str(q[i].out, "id");
        }
        conflicts += q[i].status == 409;
    }
    assert_int_equal(created, 1);
    assert_int_equal(conflicts, N - 1);
    json_t *g = get_guest("twin");
    assert_string_equal(str(g, "id"), id);
    json_decref(g);
    held_clear(q, N);
    delete_all_guests();
}

/* A create, then in the same iteration the DELETE of that guest, a keyed
 * create, a PATCH of the first, and creates after them: every request that
 * commits the batch first answers the creates before it, and each answer
 * holds. */
static void
test_mixed(void **state)
{
    struct held_req q[7];
    json_t *o = NULL;

    q[0] = create_req("mx-a", NULL);
    q[1] = (struct held_req){.method = "PATCH", .path = "/v1/guests/mx-a"};
    snprintf(q[1].body, sizeof(q[1].body), "{\"limits\":{\"cpu_max\":0.02}}");
    q[2] = create_req("mx-b", NULL);
    q[3] = create_req("mx-c", NULL);
    q[3].idem = "mx-key-1";
    q[4] = (struct held_req){.method = "DELETE", .path = "/v1/guests/mx-b"};
    q[5] = create_req("mx-b", NULL); /* the name again, after its DELETE */
    q[6] = create_req("mx-c", NULL); /* the keyed create's name, unkeyed */
    assert_int_equal(send_held(q, 7, false), 7);
    assert_int_equal(q[0].status, 201);
    /* The PATCH sees the guest the create before it answered 201 for. */
    assert_true(q[1].status == 200 || q[1].status == 202);
    assert_int_equal(q[2].status, 201);
    assert_int_equal(q[3].status, 201);
    assert_true(q[4].status == 202 || q[4].status == 204);
    /* mx-b is being deleted: its name is taken until the node confirms. */
    assert_true(q[5].status == 201 || q[5].status == 409);
    assert_int_equal(q[6].status, 409);
    held_clear(q, 7);
    assert_int_equal(http("GET", "/v1/guests/mx-a", NULL, NULL, &o), 200);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/mx-c", NULL, NULL, &o), 200);
    json_decref(o);
    /* The keyed create replays its answer. */
    assert_int_equal(http("POST", "/v1/guests", q[3].body, "mx-key-1", &o), 201);
    json_decref(o);
    on_loop(read_pending);
    assert_int_equal(pending_seen, 0);
    delete_all_guests();
}

/* A project's guest quota of 2 and 4 creates in one batch: two are
 * created, two refused with the quota error, and the project counts 2. */
static void
test_quota_in_batch(void **state)
{
    enum { N = 4 };
    struct held_req q[N];
    unsigned created = 0, refused = 0;
    char name[32];
    json_t *o = NULL;

    assert_int_equal(
        http("POST", "/v1/projects", "{\"name\":\"bq\",\"quota\":{\"guests\":2}}", NULL, NULL),
        201);
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "bq-%u", i);
        q[i] = create_req(name, "\"project\":\"bq\"");
    }
    assert_int_equal(send_held(q, N, false), N);
    for (unsigned i = 0; i < N; i++) {
        created += q[i].status == 201;
        if (q[i].status == 409) {
            refused++;
            assert_string_equal(str(json_object_get(q[i].out, "error"), "code"), "quota_exceeded");
        }
    }
    held_clear(q, N);
    assert_int_equal(created, 2);
    assert_int_equal(refused, 2);
    assert_int_equal(http("GET", "/v1/guests?project=bq", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 2);
    json_decref(o);
    delete_all_guests();
    assert_int_equal(http("DELETE", "/v1/projects/bq", NULL, NULL, NULL), 204);
}

/* A pool of two addresses and 4 creates that each want one, in one batch:
 * two get an address each, different ones; the others are refused. */
static void
test_pool_in_batch(void **state)
{
    enum { N = 4 };
    struct held_req q[N];
    unsigned created = 0;
    char name[32];
    const char *addr[N] = {0};
    json_t *o = NULL;

    assert_int_equal(
        http("POST", "/v1/pools", "{\"name\":\"bp\",\"cidr\":\"10.77.0.0/30\"}", NULL, NULL), 201);
    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "bp-%u", i);
        q[i] = create_req(name, "\"ips\":[\"auto4\"]");
    }
    assert_int_equal(send_held(q, N, false), N);
    for (unsigned i = 0; i < N; i++) {
        if (q[i].status == 201) {
            addr[created++] =
                json_string_value(json_array_get(json_object_get(q[i].out, "ips"), 0));
        } else
            assert_true(q[i].status >= 400 && q[i].status < 600);
    }
    assert_int_equal(created, 2);
    assert_non_null(addr[0]);
    assert_non_null(addr[1]);
    assert_string_not_equal(addr[0], addr[1]);
    held_clear(q, N);
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &o), 200);
    assert_int_equal(num(json_array_get(json_object_get(o, "pools"), 0), "allocated"), 2);
    json_decref(o);
    delete_all_guests();
    assert_int_equal(http("DELETE", "/v1/pools/bp", NULL, NULL, NULL), 204);
}

/* Hostile creates in a batch of good ones: each gets its 4xx, the good
 * ones are created, nothing else changes. */
static void
test_hostile_among_good(void **state)
{
    struct held_req q[6];

    q[0] = create_req("hg-a", NULL);
    q[1] = (struct held_req){.method = "POST", .path = "/v1/guests"};
    snprintf(q[1].body, sizeof(q[1].body), "[1,2,3]");
    q[2] = create_req("HG-BAD", NULL);
    q[3] = create_req("hg-b", "\"node\":\"nosuchnode\"");
    q[4] = (struct held_req){.method = "POST", .path = "/v1/guests?wait=running&timeout=-1"};
    snprintf(q[4].body, sizeof(q[4].body), "%s", create_req("hg-c", NULL).body);
    q[5] = create_req("hg-d", NULL);
    assert_int_equal(send_held(q, 6, false), 6);
    assert_int_equal(q[0].status, 201);
    assert_int_equal(q[1].status, 400);
    assert_int_equal(q[2].status, 400);
    assert_true(q[3].status >= 400 && q[3].status < 500);
    assert_int_equal(q[4].status, 400);
    assert_int_equal(q[5].status, 201);
    held_clear(q, 6);
    assert_int_equal(get_status("hg-b"), 404);
    assert_int_equal(get_status("hg-c"), 404);
    delete_all_guests();
}

/* A create that waits for its guest to run and the DELETE of that guest in
 * the same iteration: the create is answered (201 when it ran, or the
 * wait's end), the guest goes, nothing waits on. */
static void
test_wait_then_delete(void **state)
{
    struct held_req q[2];

    q[0] = create_req("wd-a", NULL);
    snprintf(q[0].path, sizeof(q[0].path), "/v1/guests?wait=running&timeout=5");
    q[1] = (struct held_req){.method = "DELETE", .path = "/v1/guests/wd-a"};
    assert_int_equal(send_held(q, 2, false), 2);
    assert_true(q[0].status != 0 && q[0].status < 500);
    assert_true(q[1].status == 202 || q[1].status == 204);
    held_clear(q, 2);
    for (int i = 0; i < 200 && get_status("wd-a") != 404; i++)
        usleep(50 * 1000);
    assert_int_equal(get_status("wd-a"), 404);
    on_loop(read_pending);
    assert_int_equal(pending_seen, 0);
}

/* Many creates in one iteration, a third of them waiting to run: each is
 * answered once, all are stored, nothing is left waiting for a commit. */
static void
test_flood(void **state)
{
    enum { N = 48 }; /* under HTTPD_MAX_PER_ADDR (64) connections from one address */
    struct held_req *q = xcalloc(N, sizeof(*q));
    char name[32];
    unsigned created = 0;

    for (unsigned i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "fl-%u", i);
        q[i] = create_req(name, NULL);
        if (i % 3 == 0)
            snprintf(q[i].path, sizeof(q[i].path), "/v1/guests?wait=running&timeout=30");
    }
    assert_int_equal(send_held(q, N, false), N);
    for (unsigned i = 0; i < N; i++) {
        created += q[i].status == 201;
        if (q[i].status != 201) {
            char *t = q[i].out ? json_dumps(q[i].out, JSON_COMPACT) : NULL;
            fprintf(stderr, "create %u (%s): %ld %s\n", i, q[i].path, q[i].status, t ? t : "");
            free(t);
        }
    }
    held_clear(q, N);
    free(q);
    assert_int_equal(created, N);
    on_loop(read_pending);
    assert_int_equal(pending_seen, 0);
    delete_all_guests();
}

/* ---- a create that waits, when the master stops ----------------------- */

static long shutdown_status;
static json_t *shutdown_body;

static void *
create_and_wait(void *arg)
{
    (void)arg;
    shutdown_status = http("POST", "/v1/guests?wait=running&timeout=60",
                           create_req("sd-a", NULL).body, NULL, &shutdown_body);
    return NULL;
}

/* A create with ?wait=running whose guest does not run yet when the master
 * stops was stored: its answer says so (201 with the guest as it is, as when
 * the wait times out), not a 503 that tells the client nothing was created
 * (its retry would get 409 for its own guest). */
static void
test_shutdown_answers_created(void **state)
{
    pthread_t th;

    /* The master reads nothing from the nodes: the guest never runs for it. */
    on_loop(pause_reading);
    pthread_create(&th, NULL, create_and_wait, NULL);
    for (int i = 0; i < 400 && get_status("sd-a") != 200; i++)
        usleep(50 * 1000);
    assert_int_equal(get_status("sd-a"), 200);
    on_loop(stop_master);
    pthread_join(th, NULL);
    on_loop(free_master);
    F.err = 0;
    on_loop(start_master);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
    assert_int_equal(get_status("sd-a"), 200);
    char *t = shutdown_body ? json_dumps(shutdown_body, JSON_COMPACT) : NULL;
    if (shutdown_status != 201)
        fail_msg("a stored create was answered %ld %s", shutdown_status, t ? t : "");
    free(t);
    assert_string_equal(str(shutdown_body, "name"), "sd-a");
    json_decref(shutdown_body);
    delete_all_guests();
}

/* ---- a DELETE that waits for the node, when the master stops ---------- */

static void *
delete_and_wait(void *arg)
{
    (void)arg;
    shutdown_status = http("DELETE", "/v1/guests/sd-d", NULL, NULL, &shutdown_body);
    return NULL;
}

/* A DELETE whose node has not confirmed the destroy when the master stops
 * was recorded (deleting: true) and stays queued: its answer says so (202
 * with the guest as it is), not a 503 that tells the client nothing
 * changed (its retry would get 409 "being deleted" or 404). After the
 * restart the destroy is sent again and the guest goes. */
static void
test_shutdown_answers_deleting(void **state)
{
    pthread_t th;
    json_t *o = NULL;

    assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20",
                          create_req("sd-d", NULL).body, NULL, NULL),
                     201);
    /* The master reads nothing from the nodes: the destroy is never acked. */
    on_loop(pause_reading);
    shutdown_body = NULL;
    pthread_create(&th, NULL, delete_and_wait, NULL);
    bool deleting = false;
    for (int i = 0; i < 400 && !deleting; i++) {
        assert_int_equal(http("GET", "/v1/guests/sd-d", NULL, NULL, &o), 200);
        deleting = json_is_true(json_object_get(o, "deleting"));
        json_decref(o);
        if (!deleting)
            usleep(50 * 1000);
    }
    assert_true(deleting);
    on_loop(stop_master);
    pthread_join(th, NULL);
    on_loop(free_master);
    char *t = shutdown_body ? json_dumps(shutdown_body, JSON_COMPACT) : NULL;
    if (shutdown_status != 202)
        fail_msg("a recorded delete was answered %ld %s", shutdown_status, t ? t : "");
    free(t);
    assert_string_equal(str(shutdown_body, "name"), "sd-d");
    assert_true(json_is_true(json_object_get(shutdown_body, "deleting")));
    json_decref(shutdown_body);
    shutdown_body = NULL;
    F.err = 0;
    on_loop(start_master);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
    /* The recorded delete is sent again on the node's hello. */
    for (int i = 0; i < 400 && get_status("sd-d") != 404; i++)
        usleep(50 * 1000);
    assert_int_equal(get_status("sd-d"), 404);
    delete_all_guests();
}

/* ---- the whole transaction rolled back from inside the batch ---------- */

/* What the loop saw, in order. */
static struct {
    int setup;                  /* 0, or the first step that went wrong (1-3) */
    bool open_after_rollback;   /* batch_open once the whole transaction was rolled back */
    unsigned depth_after;       /* the store's depth then */
    bool open_after_begin;      /* batch_open after the next master_batch_begin */
    unsigned depth_after_begin; /* and the depth */
    int commit;                 /* what master_batch_commit returned */
} WR;

static void
whole_rollback(struct fx *f)
{
    master_t *m = f->master;

    /* (No cmocka assert here: this is the loop's thread.) */
    WR.setup = 0;
    (void)master_batch_commit(m); /* whatever this iteration's node messages began */
    master_batch_begin(m);
    if (!m->batch_open) {
        WR.setup = 1;
        return;
    }
    /* A write nested in the batch (a savepoint at depth 2) during which
     * SQLite rolls back the whole transaction itself, as it may on a full
     * disk or an I/O error: its rollback finds no transaction (db.c). */
    if (db_begin(m->db) < 0 || db_tx_depth(m->db) != 2) {
        WR.setup = 2;
        return;
    }
    if (dbi_exec(m->db, "ROLLBACK") < 0) {
        WR.setup = 3;
        return;
    }
    (void)db_rollback(m->db);
    WR.open_after_rollback = m->batch_open;
    WR.depth_after = db_tx_depth(m->db);
    /* The next node message of the iteration begins a batch of its own,
     * and the flush commits it. */
    master_batch_begin(m);
    WR.open_after_begin = m->batch_open;
    WR.depth_after_begin = db_tx_depth(m->db);
    WR.commit = master_batch_commit(m);
}

/* After a rollback of the whole transaction from inside the loop's batch,
 * the batch is closed (batch_open false at depth 0): the iteration's next
 * node messages get a batch again, and the flush does not commit a
 * transaction that is not there ("cannot store the batch: Invalid
 * argument"). */
static void
test_whole_rollback_closes_batch(void **state)
{
    on_loop(whole_rollback);
    assert_int_equal(WR.setup, 0);
    assert_int_equal(WR.depth_after, 0);
    assert_false(WR.open_after_rollback);
    assert_true(WR.open_after_begin);
    assert_int_equal(WR.depth_after_begin, 1);
    assert_int_equal(WR.commit, 0);
    /* The master goes on storing: a create and its delete. */
    assert_int_equal(http("POST", "/v1/guests", create_req("wr-a", NULL).body, NULL, NULL), 201);
    assert_int_equal(get_status("wr-a"), 200);
    delete_all_guests();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_same_name),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_quota_in_batch),
        cmocka_unit_test(test_pool_in_batch),
        cmocka_unit_test(test_hostile_among_good),
        cmocka_unit_test(test_wait_then_delete),
        cmocka_unit_test(test_flood),
        cmocka_unit_test(test_shutdown_answers_created),
        cmocka_unit_test(test_shutdown_answers_deleting),
        cmocka_unit_test(test_whole_rollback_closes_batch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
