/* Usage history end to end, with a test clock: samples of a guest go in
 * through the same function the node session calls (usage_report), in the
 * node batch's transaction; the rollups follow the clock; the history, the
 * latest sample and billing survive a master restart; retention drops what
 * expired; a counter that goes backwards adds nothing negative.
 *
 * The guest lives on node n3, whose agent is stopped once the guest runs,
 * so only the test's samples (stamped with the test clock) reach it. */
#include "master/master_fixture.h"

#include <sqlite3.h>

#include "master/core.h"
#include "master/history.h"
#include "master/usage.h"

#define MIN_MS  60000ULL
#define HOUR_MS 3600000ULL
#define STEP_MS 10000ULL /* the sample interval */
#define MB      (1ULL << 20)

/* The sample the next inject() sends. */
static struct {
    char id[SPEC_ID_LEN + 1]; /* the guest */
    struct guest_usage u;     /* the sample (time and values) */
} S;

static void
inject(struct fx *f)
{
    struct msg_usage mu = {.n_samples = 1, .samples = &S.u};

    memcpy(S.u.id, S.id, sizeof(S.u.id));
    master_batch_begin(f->master);
    usage_report(f->master, "n3", &mu, UINT64_MAX); /* samples lead the test clock */
    f->err = master_batch_commit(f->master);
    if (f->err >= 0)
        f->err = history_tick(f->master, true);
    if (f->err >= 0)
        f->err = master_batch_commit(f->master);
}

/* The i-th sample of the test's series at time t: memory cycles through
 * 100..105 MiB, CPU and traffic count steadily. */
static void
sample_at(uint64_t i, uint64_t t)
{
    S.u.time_ms = t;
    S.u.memory = 100 * MB + (i % 6) * MB;
    S.u.cpu_ns = (i + 1) * 1000000000ULL;
    S.u.net_rx_bytes = (i + 1) * 1000;
    S.u.net_tx_bytes = (i + 1) * 500;
    __atomic_store_n(&F.clock_ms, t, __ATOMIC_SEQ_CST);
    on_loop(inject);
    assert_int_equal(F.err, 0);
}

/* Samples from first to last (inclusive) every STEP_MS after base. */
static void
series(uint64_t base, uint64_t first, uint64_t last)
{
    for (uint64_t i = first; i <= last; i++)
        sample_at(i, base + i * STEP_MS);
}

static json_t *usage_query(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
usage_query(const char *fmt, ...)
{
    char path[256];
    va_list ap;
    json_t *o = NULL;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    return o;
}

static json_int_t
metric(const json_t *point, const char *name, const char *what)
{
    return json_integer_value(json_object_get(json_object_get(point, name), what));
}

/* Each hour of the series: 360 samples, memory 100..105 MiB averaging
 * 102.5, and the increase of one second of CPU and 1000/500 bytes a sample. */
static void
check_hours(const json_t *o, size_t hours)
{
    json_t *pts = json_object_get(o, "points"), *p;
    size_t i;

    assert_string_equal(str(o, "resolution"), "1h");
    assert_int_equal(json_array_size(pts), hours);
    json_array_foreach(pts, i, p)
    {
        assert_int_equal(num(p, "samples"), 360);
        assert_int_equal(metric(p, "memory", "min"), 100 * MB);
        assert_int_equal(metric(p, "memory", "max"), 105 * MB);
        assert_int_equal(metric(p, "memory", "avg"), (json_int_t)(102.5 * MB));
        assert_int_equal(metric(p, "cpu_ns", "increase"), 360 * 1000000000LL);
        assert_int_equal(metric(p, "net_rx_bytes", "increase"), 360 * 1000);
        assert_int_equal(metric(p, "net_tx_bytes", "increase"), 360 * 500);
    }
}

static void
restart_master(void)
{
    on_loop(stop_master);
    on_loop(free_master);
    on_loop(start_master);
    assert_int_equal(F.err, 0);
}

static uint64_t
count_rows(const char *table, uint64_t before)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char sql[128];
    uint64_t n = 0;

    assert_int_equal(sqlite3_open_v2(F.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s WHERE time < ?1", table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)before);
    if (sqlite3_step(s) == SQLITE_ROW)
        n = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static uint64_t base;
static json_int_t cpu0, rx0; /* the guest's totals before the series */

static int
setup_guest(void **state)
{
    json_t *g = NULL;

    (void)state;
    /* A test clock two hours ahead of the real one, at an hour's start, so
     * the stopped node's samples (real time) could never be newer. */
    base = (time_real_ms() / HOUR_MS + 2) * HOUR_MS;
    assert_int_equal(httpf("POST", "/v1/guests?wait=running", &g,
                           "{\"name\":\"h1\",\"template\":\"busybox\",\"node\":\"n3\"}"),
                     201);
    strscpy(S.id, str(g, "id"), sizeof(S.id));
    assert_true(num(g, "context") >= 3);
    json_decref(g);
    fx_stop_n3();
    /* A baseline sample just before the series: its counters are 0 (below
     * what the stopped node last sent: no increase), so every sample of the
     * series adds exactly its step. */
    sample_at(0, base - STEP_MS);
    S.u.cpu_ns = S.u.net_rx_bytes = S.u.net_tx_bytes = 0;
    S.u.time_ms = base - STEP_MS / 2;
    on_loop(inject);
    assert_int_equal(F.err, 0);
    g = usage_query("/v1/guests/h1/usage");
    cpu0 = num(g, "cpu_ns");
    rx0 = num(g, "net_rx_bytes");
    json_decref(g);
    return 0;
}

static int
group_setup_guest(void **state)
{
    int r = group_setup(state);
    return r < 0 ? r : setup_guest(state);
}

static void
test_rollup_and_restart(void **state)
{
    json_t *o;

    (void)state;
    /* Two hours and five minutes of samples. */
    series(base, 0, 2 * 360 + 30);
    o = usage_query("/v1/guests/h1/usage?from=%llu&to=%llu&step=1h",
                    (unsigned long long)base / 1000,
                    (unsigned long long)(base + 2 * HOUR_MS) / 1000);
    check_hours(o, 2);
    json_decref(o);

    /* The last ten minutes of the second hour, by the minute: 6 samples each. */
    o = usage_query("/v1/guests/h1/usage?from=%llu&to=%llu&step=60",
                    (unsigned long long)(base + 110 * MIN_MS) / 1000,
                    (unsigned long long)(base + 120 * MIN_MS) / 1000);
    assert_string_equal(str(o, "resolution"), "1m");
    assert_int_equal(json_array_size(json_object_get(o, "points")), 10);
    assert_int_equal(num(json_array_get(json_object_get(o, "points"), 0), "samples"), 6);
    json_decref(o);

    /* The last five minutes, raw: every sample. */
    o = usage_query("/v1/guests/h1/usage?from=-5m&step=10");
    assert_string_equal(str(o, "resolution"), "raw");
    assert_int_equal(json_array_size(json_object_get(o, "points")), 30);
    json_decref(o);

    /* A restarted master has it all, and the latest sample too. */
    restart_master();
    o = usage_query("/v1/guests/h1/usage?from=%llu&to=%llu&step=3600",
                    (unsigned long long)base / 1000,
                    (unsigned long long)(base + 2 * HOUR_MS) / 1000);
    check_hours(o, 2);
    json_decref(o);
    o = usage_query("/v1/guests/h1/usage");
    assert_int_equal(num(o, "memory"), (json_int_t)(100 * MB + (2 * 360 + 30) % 6 * MB));
    assert_int_equal(num(o, "cpu_ns"), cpu0 + (2 * 360 + 31) * 1000000000LL);
    json_decref(o);

    /* It carries on rolling up: the third hour after the restart. */
    series(base, 2 * 360 + 31, 3 * 360 + 30);
    o = usage_query("/v1/guests/h1/usage?from=%llu&to=%llu&step=1h",
                    (unsigned long long)base / 1000,
                    (unsigned long long)(base + 3 * HOUR_MS) / 1000);
    check_hours(o, 3);
    json_decref(o);
}

static void
test_billing(void **state)
{
    json_t *o = NULL, *rows;
    size_t i;
    json_t *r;

    (void)state;
    /* Per hour: the three hours of test_rollup_and_restart, 360 kB in and
     * 180 kB out each (billing reads the same history). */
    assert_int_equal(http("GET", "/v1/usage/traffic?period=hour&from=-4h", NULL, NULL, &o), 200);
    rows = json_object_get(o, "rows");
    size_t hours = 0;
    json_array_foreach(rows, i, r)
    {
        for (uint64_t h = 0; h < 3; h++) {
            char want[40];
            time_t secs = (time_t)((base + h * HOUR_MS) / 1000);
            struct tm tm;
            gmtime_r(&secs, &tm);
            strftime(want, sizeof(want), "%Y-%m-%dT%H:00:00.000Z", &tm);
            if (strcmp(str(r, "guest"), "h1") != 0 || strcmp(str(r, "period"), want) != 0)
                continue;
            hours++;
            assert_int_equal(num(r, "rx_bytes"), 360000);
            assert_int_equal(num(r, "tx_bytes"), 180000);
        }
    }
    assert_int_equal(hours, 3);

    /* Per project: each period's sum over the guests of the project (all
     * of them in "default" here), and the same rows under ?project=. */
    json_t *byp = NULL, *onep = NULL;
    assert_int_equal(
        http("GET", "/v1/usage/traffic?period=hour&from=-4h&by=project", NULL, NULL, &byp), 200);
    assert_int_equal(
        http("GET", "/v1/usage/traffic?period=hour&from=-4h&project=default", NULL, NULL, &onep),
        200);
    json_int_t by_guest = 0, by_project = 0, in_default = 0;
    json_array_foreach(rows, i, r)
    {
        assert_string_equal(str(r, "project"), "default");
        by_guest += num(r, "rx_bytes");
    }
    json_array_foreach(json_object_get(byp, "rows"), i, r)
    {
        assert_string_equal(str(r, "project"), "default");
        assert_null(json_object_get(r, "guest"));
        by_project += num(r, "rx_bytes");
    }
    json_array_foreach(json_object_get(onep, "rows"), i, r) in_default += num(r, "rx_bytes");
    assert_true(by_guest >= 3 * 360000);
    assert_int_equal(by_project, by_guest);
    assert_int_equal(in_default, by_guest);
    assert_true(json_array_size(json_object_get(byp, "rows")) <= json_array_size(rows));
    json_decref(byp);
    json_decref(onep);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/usage/traffic?project=nosuch", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "rows")), 0);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/usage/traffic?by=node", NULL, NULL, NULL), 400);
    assert_int_equal(http("GET", "/v1/usage/traffic?project=../x", NULL, NULL, NULL), 400);

    /* A counter that goes backwards (the node lost its baseline, or the
     * guest moved and counts from 0 there) adds its new value, never a
     * negative amount. */
    uint64_t t = base + (3 * 360 + 31) * STEP_MS;
    S.u.time_ms = t;
    S.u.net_rx_bytes = 7000;
    S.u.net_tx_bytes = 0;
    __atomic_store_n(&F.clock_ms, t, __ATOMIC_SEQ_CST);
    on_loop(inject);
    o = usage_query("/v1/guests/h1/usage?from=%llu&to=%llu&step=10", (unsigned long long)t / 1000,
                    (unsigned long long)(t + 1000) / 1000);
    json_t *p = json_array_get(json_object_get(o, "points"), 0);
    assert_int_equal(metric(p, "net_rx_bytes", "increase"), 7000);
    assert_int_equal(metric(p, "net_tx_bytes", "increase"), 0);
    json_decref(o);
    o = usage_query("/v1/guests/h1/usage");
    json_int_t rx_total = num(o, "net_rx_bytes");
    assert_int_equal(rx_total, rx0 + (3 * 360 + 31) * 1000 + 7000);
    json_decref(o);

    /* Per day as CSV: h1's lines add up to its counter: billing and the
     * counters agree (the history starts with the node's first sample). */
    struct hdr_want ct = {.name = "content-type:"};
    CURL *c = curl_easy_init();
    struct buf b = {0};
    char url[256];
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/csv");
    snprintf(url, sizeof(url), "%s/v1/usage/traffic?period=day&guest=h1&from=%llu", F.url,
             (unsigned long long)(base - 3 * HOUR_MS) / 1000);
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &ct);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    assert_non_null(strstr(ct.value, "text/csv"));
    assert_non_null(b.p);
    assert_true(strncmp(b.p, "guest,id,period,rx_bytes,tx_bytes", 33) == 0);
    uint64_t rx = 0, lines = 0;
    for (char *line = strstr(b.p, "\nh1,"); line; line = strstr(line + 1, "\nh1,")) {
        char *f = line + 1;
        for (int k = 0; k < 3 && f; k++)
            f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL;
        rx += f ? strtoull(f, NULL, 10) : 0;
        lines++;
    }
    free(b.p);
    assert_true(lines >= 1 && lines <= 2); /* the series may cross midnight UTC */
    assert_int_equal(rx, rx_total);
}

static void
test_retention(void **state)
{
    json_t *o;
    uint64_t t = base + 52 * HOUR_MS;

    (void)state;
    /* 52 hours later: raw samples and minutes of the first hours are gone,
     * the hours stay. */
    S.u.time_ms = t;
    S.u.net_rx_bytes = 8000;
    __atomic_store_n(&F.clock_ms, t, __ATOMIC_SEQ_CST);
    on_loop(inject);
    assert_int_equal(F.err, 0);
    assert_int_equal(count_rows("usage_raw", t - HOUR_MS), 0);
    assert_int_equal(count_rows("usage_1m", t - 48 * HOUR_MS), 0);
    assert_true(count_rows("usage_1h", t - 48 * HOUR_MS) >= 3);
    o = usage_query("/v1/guests/h1/usage?from=%llu&to=%llu&step=60",
                    (unsigned long long)base / 1000,
                    (unsigned long long)(base + 3 * HOUR_MS) / 1000);
    /* A range older than the minutes comes from the hours. */
    check_hours(o, 3);
    json_decref(o);
}

/* The latest sample's time as the master's cache has it, and the times seen
 * by the rolled-back transaction below. */
static uint64_t latest_ms, ahead_ms, after_ms;

static uint64_t
latest_of(master_t *m)
{
    const struct guest_usage *l = usage_latest(m, S.id);
    return l ? l->time_ms : 0;
}

static void
read_latest(struct fx *f)
{
    latest_ms = latest_of(f->master);
}

/* Two samples in a transaction that rolls back: the cache holds the newer
 * until then, and forgets both after it. */
static void
inject_rolled_back(struct fx *f)
{
    struct msg_usage mu = {.n_samples = 1, .samples = &S.u};

    memcpy(S.u.id, S.id, sizeof(S.u.id));
    f->err = master_batch_commit(f->master);
    if (f->err < 0 || (f->err = db_begin(f->master->db)) < 0)
        return;
    usage_report(f->master, "n3", &mu, UINT64_MAX);
    S.u.time_ms += STEP_MS;
    usage_report(f->master, "n3", &mu, UINT64_MAX);
    ahead_ms = latest_of(f->master);
    f->err = db_rollback(f->master->db);
    after_ms = latest_of(f->master);
}

/* A rolled-back sample leaves nothing in the cache, also for a guest whose
 * entry the committed transaction before it changed: what marks an entry
 * as changed in a transaction ends with that transaction's commit. */
static void
test_rollback_forgets(void **state)
{
    (void)state;
    on_loop(read_latest);
    uint64_t t = latest_ms + STEP_MS;
    sample_at(4000, t); /* committed: the entry is changed, then clean */
    on_loop(read_latest);
    assert_int_equal(latest_ms, t);
    S.u.time_ms = t + STEP_MS;
    on_loop(inject_rolled_back);
    assert_int_equal(F.err, 0);
    assert_int_equal(ahead_ms, t + 2 * STEP_MS);
    assert_int_equal(after_ms, t);
    sample_at(4001, t + STEP_MS); /* and the next committed one counts */
    on_loop(read_latest);
    assert_int_equal(latest_ms, t + STEP_MS);
}

/* A traffic answer is built in memory: past its bound in rows, a clear
 * 400 instead of a master that grows with the question. (Last: it restarts
 * the master.) */
static void
test_traffic_bound(void **state)
{
    char path[160];
    json_t *o = NULL;

    (void)state;
    snprintf(path, sizeof(path), "/v1/usage/traffic?period=hour&from=%llu&to=%llu",
             (unsigned long long)(base - HOUR_MS) / 1000,
             (unsigned long long)(base + 4 * HOUR_MS) / 1000);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    assert_true(json_array_size(json_object_get(o, "rows")) > 2);
    json_decref(o);
    F.traffic_max_rows = 2;
    restart_master();
    assert_int_equal(http("GET", path, NULL, NULL, &o), 400);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "from");
    json_decref(o);
    /* Per month, one guest: within the bound. */
    snprintf(path, sizeof(path), "/v1/usage/traffic?period=month&guest=h1&from=%llu&to=%llu",
             (unsigned long long)(base - HOUR_MS) / 1000,
             (unsigned long long)(base + 4 * HOUR_MS) / 1000);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    assert_true(json_array_size(json_object_get(o, "rows")) >= 1);
    json_decref(o);
    F.traffic_max_rows = 0;
    restart_master();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rollup_and_restart), cmocka_unit_test(test_billing),
        cmocka_unit_test(test_retention),          cmocka_unit_test(test_rollback_forgets),
        cmocka_unit_test(test_traffic_bound),
    };
    return cmocka_run_group_tests(tests, group_setup_guest, group_teardown);
}
