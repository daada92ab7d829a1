/* The event stream end to end over real HTTP: a Server-Sent Events client
 * that resumes with the last id it saw receives every later event exactly
 * once; JSON lines and the JSON page agree with it; a client behind the
 * retention gets a gap; OOM kills reported twice (a usage sample and the
 * node's notification) are one event; a failcnt that grew is a limit event. */
#include "master/master_fixture.h"

#include <stdatomic.h>
#include <sys/socket.h>

#include "master/core.h"
#include "master/events.h"
#include "master/events_stream.h"
#include "master/usage.h"

#define MAX_SEEN 8192

/* One SSE client's reading. */
struct sse {
    uint64_t last_id;         /* Last-Event-ID to send */
    unsigned stop_after;      /* abort after this many events, 0 = never */
    char stop_type[48];       /* or after an event of this type for stop_guest */
    char stop_guest[64];      /* (data contains this guest name) */
    uint64_t seqs[MAX_SEEN];  /* ids received, in order */
    char types[MAX_SEEN][48]; /* their event types */
    unsigned n;               /* entries in seqs */
    char line[8192];          /* the line being read */
    size_t len;               /* bytes in line */
    uint64_t id;              /* the current event's id */
    char type[48];            /* its type */
    bool stop;                /* the condition held: abort */
    pthread_t thread;         /* the reader */
};

/* Handles one line of the SSE stream. */
static void
sse_line(struct sse *s, const char *l)
{
    if (!strncmp(l, "id: ", 4))
        s->id = strtoull(l + 4, NULL, 10);
    else if (!strncmp(l, "event: ", 7))
        snprintf(s->type, sizeof(s->type), "%s", l + 7);
    else if (!strncmp(l, "data: ", 6) && s->n < MAX_SEEN) {
        s->seqs[s->n] = s->id;
        snprintf(s->types[s->n], sizeof(s->types[0]), "%s", s->type);
        s->n++;
        if (s->stop_after && s->n >= s->stop_after)
            s->stop = true;
        if (s->stop_type[0] && !strcmp(s->type, s->stop_type) && strstr(l, s->stop_guest))
            s->stop = true;
    }
}

static size_t
sse_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct sse *s = userdata;
    size_t n = size * nmemb;

    for (size_t i = 0; i < n && !s->stop; i++) {
        if (data[i] != '\n') {
            if (s->len < sizeof(s->line) - 1)
                s->line[s->len++] = data[i];
            continue;
        }
        s->line[s->len] = '\0';
        sse_line(s, s->line);
        s->len = 0;
    }
    return s->stop ? 0 : n; /* 0 aborts the transfer: the client goes away */
}

static void *
sse_main(void *arg)
{
    struct sse *s = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
    char url[128], hdr[64];

    {
        snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu", (unsigned long long)s->last_id);
        h = curl_slist_append(h, hdr);
    }
    snprintf(url, sizeof(url), "%s/v1/events", F.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* The newest event's seq, from the JSON page. */
static uint64_t
newest(void)
{
    json_t *o = NULL;
    uint64_t next = 0;

    do {
        char path[96];
        json_decref(o);
        snprintf(path, sizeof(path), "/v1/events?after=%llu&limit=5000", (unsigned long long)next);
        assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
        next = (uint64_t)num(o, "next");
    } while (json_array_size(json_object_get(o, "events")) == 5000);
    json_decref(o);
    return next;
}

/* The seqs the store has after `after`, up to and including `upto`. */
static unsigned
stored(uint64_t after, uint64_t upto, uint64_t *out, unsigned max)
{
    json_t *o = NULL, *e;
    char path[96];
    size_t i;
    unsigned n = 0;

    snprintf(path, sizeof(path), "/v1/events?after=%llu&limit=5000", (unsigned long long)after);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    json_array_foreach(json_object_get(o, "events"), i,
                       e) if ((uint64_t)num(e, "seq") <= upto && n < max) out[n++] =
        (uint64_t)num(e, "seq");
    json_decref(o);
    return n;
}

static void
create(const char *name)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"template\":\"busybox\"}", name);
    assert_int_equal(http("POST", "/v1/guests?wait=running", body, NULL, NULL), 201);
}

static void
test_resume_exactly_once(void **state)
{
    static struct sse a, b;
    uint64_t want[MAX_SEEN];
    char path[64];

    (void)state;
    uint64_t c0 = newest();
    a = (struct sse){.last_id = c0, .stop_after = 5};
    pthread_create(&a.thread, NULL, sse_main, &a);
    /* Events while the first client reads: a handful of guests. */
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "r%d", i);
        create(path);
    }
    pthread_join(a.thread, NULL);
    assert_int_equal(a.n, 5);
    /* The first client saw the store's first five after c0, in order. */
    assert_int_equal(stored(c0, a.seqs[4], want, MAX_SEEN), 5);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(a.seqs[i], want[i]);

    /* It is away while more happens; then it comes back with its last id. */
    assert_int_equal(http("DELETE", "/v1/guests/r0", NULL, NULL, NULL), 204);
    create("r3");
    b = (struct sse){.last_id = a.seqs[4]};
    snprintf(b.stop_type, sizeof(b.stop_type), "guest.created");
    snprintf(b.stop_guest, sizeof(b.stop_guest), "\"marker\"");
    pthread_create(&b.thread, NULL, sse_main, &b);
    usleep(200 * 1000);
    create("marker");
    pthread_join(b.thread, NULL);
    assert_true(b.n > 0);
    assert_string_equal(b.types[b.n - 1], "guest.created");
    /* Every event after its last id, each once, in order, none missing. */
    unsigned n = stored(a.seqs[4], b.seqs[b.n - 1], want, MAX_SEEN);
    assert_int_equal(b.n, n);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(b.seqs[i], want[i]);
    assert_int_equal(b.seqs[0], a.seqs[4] + 1);
    delete_all_guests();
}

static void
test_json_lines(void **state)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/x-ndjson");
    struct buf body = {0};
    char url[160];
    uint64_t want[MAX_SEEN], prev = 0;
    unsigned n = 0;

    (void)state;
    create("j1");
    uint64_t top = newest();
    /* Without follow the stream ends after the last stored event. */
    snprintf(url, sizeof(url), "%s/v1/events?after=%llu&type=guest.*", F.url,
             (unsigned long long)(top > 20 ? top - 20 : 0));
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    assert_non_null(body.p);
    for (char *l = strtok(body.p, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *e = json_loads(l, 0, NULL);
        assert_non_null(e);
        assert_true(strncmp(str(e, "type"), "guest.", 6) == 0);
        assert_true((uint64_t)num(e, "seq") > prev);
        prev = (uint64_t)num(e, "seq");
        n++;
        json_decref(e);
    }
    free(body.p);
    /* The same as the page with the same filter. */
    json_t *o = NULL, *e;
    size_t i;
    unsigned k = 0;
    snprintf(url, sizeof(url), "/v1/events?after=%llu&type=guest.*",
             (unsigned long long)(top > 20 ? top - 20 : 0));
    assert_int_equal(http("GET", url, NULL, NULL, &o), 200);
    json_array_foreach(json_object_get(o, "events"), i, e) want[k++] = (uint64_t)num(e, "seq");
    json_decref(o);
    assert_int_equal(n, k);
    assert_int_equal(prev, want[k - 1]);
    delete_all_guests();
}

/* ---- usage events ---- */

static struct {
    char id[SPEC_ID_LEN + 1]; /* the guest */
    struct guest_usage u;     /* the sample */
    uint64_t oom;             /* the notification's count */
} U;

static void
inject_sample(struct fx *f)
{
    struct msg_usage mu = {.n_samples = 1, .samples = &U.u};

    memcpy(U.u.id, U.id, sizeof(U.u.id));
    U.u.time_ms = time_real_ms();
    master_batch_begin(f->master);
    usage_report(f->master, "n3", &mu, master_now_ms(f->master));
    f->err = master_batch_commit(f->master);
}

static void
inject_oom(struct fx *f)
{
    master_batch_begin(f->master);
    usage_oom(f->master, "n3", U.id, U.oom);
    f->err = master_batch_commit(f->master);
}

static unsigned
count_events(const char *query, json_int_t *sum_field, const char *field)
{
    json_t *o = NULL, *e;
    size_t i;
    unsigned n = 0;

    assert_int_equal(http("GET", query, NULL, NULL, &o), 200);
    json_array_foreach(json_object_get(o, "events"), i, e)
    {
        n++;
        if (sum_field)
            *sum_field += json_integer_value(json_object_get(json_object_get(e, "data"), field));
    }
    json_decref(o);
    return n;
}

static void
sample(uint64_t oom, uint64_t procs)
{
    usleep(2000); /* each sample newer than the last */
    U.u.failcnt[USAGE_FAIL_OOM] = oom;
    U.u.failcnt[USAGE_FAIL_PROCS] = procs;
    on_loop(inject_sample);
    assert_int_equal(F.err, 0);
}

static void
notify(uint64_t count)
{
    U.oom = count;
    on_loop(inject_oom);
    assert_int_equal(F.err, 0);
}

static void
test_oom_and_limits(void **state)
{
    json_t *g = NULL;
    json_int_t kills = 0, hits = 0;

    (void)state;
    assert_int_equal(httpf("POST", "/v1/guests?wait=running", &g,
                           "{\"name\":\"o1\",\"template\":\"busybox\",\"node\":\"n3\"}"),
                     201);
    strscpy(U.id, str(g, "id"), sizeof(U.id));
    json_decref(g);
    fx_stop_n3();

    sample(0, 0);
    sample(1, 0); /* a kill seen in a sample */
    notify(1);    /* the node's notification of the same kill: nothing new */
    notify(2);    /* a second kill, notified first */
    sample(2, 3); /* ... then sampled: nothing new; three fork refusals */
    sample(0, 3); /* the guest restarted: a new cgroup counts from 0 */
    notify(1);    /* its first kill */
    sample(1, 3);

    assert_int_equal(count_events("/v1/events?type=guest.oom&guest=o1", &kills, "kills"), 3);
    assert_int_equal(kills, 3);
    assert_int_equal(count_events("/v1/events?type=guest.limit&guest=o1", &hits, "hits"), 1);
    assert_int_equal(hits, 3);
    on_loop(start_n3);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
    delete_all_guests();
}

/* ---- retention ---- */

static void
expire_now(struct fx *f)
{
    f->err = events_expire(f->master, true);
}

static void
test_gap(void **state)
{
    static struct sse s;
    json_t *o = NULL;

    (void)state;
    /* A master that keeps only 5 events. */
    on_loop(stop_master);
    on_loop(free_master);
    F.events_max_count = 5;
    on_loop(start_master);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
    create("g1");
    create("g2");
    on_loop(expire_now);
    assert_true(F.err > 0);
    /* The page says what was dropped: everything before the oldest kept. */
    assert_int_equal(http("GET", "/v1/events?after=0", NULL, NULL, &o), 200);
    json_t *gap = json_object_get(o, "gap"), *events = json_object_get(o, "events");
    assert_non_null(gap);
    assert_true(json_array_size(events) >= 5);
    uint64_t first = (uint64_t)num(json_array_get(events, 0), "seq");
    assert_true(first > 6);
    assert_int_equal(num(gap, "from"), 1);
    assert_int_equal(num(gap, "to"), (json_int_t)(first - 1));
    json_decref(o);

    /* So does the stream, first, then the events kept. */
    s = (struct sse){.last_id = 1, .stop_after = 6};
    pthread_create(&s.thread, NULL, sse_main, &s);
    pthread_join(s.thread, NULL);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.types[0], "gap");
    assert_int_equal(s.seqs[0], first - 1);
    for (unsigned i = 1; i < 6; i++)
        assert_int_equal(s.seqs[i], first - 1 + i);
    delete_all_guests();
}

/* A tenant reads its project's events only: its guests' (also once they
 * are gone), no node's, nothing when it asks for another project. */
static void
test_tenant_project(void **state)
{
    json_t *o = NULL, *e;
    char body[160], tok[AUTH_TOKEN_LEN + 1], auth[200];
    size_t i;

    (void)state;
    uint64_t top = newest();
    assert_int_equal(http("POST", "/v1/projects", "{\"name\":\"pe\"}", NULL, NULL), 201);
    assert_int_equal(
        http("POST", "/v1/tokens", "{\"role\":\"tenant\",\"project\":\"pe\"}", NULL, &o), 201);
    snprintf(tok, sizeof(tok), "%s", str(o, "token"));
    json_decref(o);
    create("x1"); /* default project */
    snprintf(body, sizeof(body), "{\"name\":\"p1\",\"template\":\"busybox\",\"project\":\"pe\"}");
    assert_int_equal(http("POST", "/v1/guests?wait=running", body, NULL, NULL), 201);
    assert_int_equal(http("DELETE", "/v1/guests/p1", NULL, NULL, NULL), 204);

    /* The admin filters by project: p1's events, its deletion too. */
    snprintf(body, sizeof(body), "/v1/events?after=%llu&project=pe", (unsigned long long)top);
    assert_int_equal(http("GET", body, NULL, NULL, &o), 200);
    bool deleted = false, placed = false, created = false, running = false;
    json_array_foreach(json_object_get(o, "events"), i, e)
    {
        assert_string_equal(str(e, "guest"), "p1");
        assert_string_equal(str(e, "project"), "pe");
        deleted |= !strcmp(str(e, "type"), "guest.deleted");
        placed |= !strcmp(str(e, "type"), "guest.placed");
        created |= !strcmp(str(e, "type"), "guest.created");
        running |= !strcmp(str(e, "type"), "guest.state") &&
                   strstr(str(e, "message"), "is running") != NULL;
    }
    /* guest.placed and guest.created too: they take the project the create
     * gave the row; the node's report (running) the one its ack read. */
    assert_true(deleted && placed && created && running);
    json_decref(o);

    /* The tenant sees the same, whatever project it names. */
    memcpy(auth, F.auth, sizeof(auth));
    snprintf(F.auth, sizeof(F.auth), "Authorization: Bearer %s", tok);
    snprintf(body, sizeof(body), "/v1/events?after=%llu", (unsigned long long)top);
    assert_int_equal(http("GET", body, NULL, NULL, &o), 200);
    assert_true(json_array_size(json_object_get(o, "events")) >= 3);
    json_array_foreach(json_object_get(o, "events"), i, e)
        assert_string_equal(str(e, "project"), "pe");
    json_decref(o);
    snprintf(body, sizeof(body), "/v1/events?after=%llu&project=default", (unsigned long long)top);
    assert_int_equal(http("GET", body, NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "events")), 0);
    json_decref(o);
    assert_int_equal(http("GET", "/metrics", NULL, NULL, NULL), 403);
    memcpy(F.auth, auth, sizeof(auth));
    assert_int_equal(http("DELETE", "/v1/guests/x1", NULL, NULL, NULL), 204);
}

/* The status of an SSE request with this Last-Event-ID (for answers that
 * are not a stream: a refused one ends at once). */
static long
sse_status(const char *last_id)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
    char url[128], hdr[128];
    long status = 0;

    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s", last_id);
    h = curl_slist_append(h, hdr);
    snprintf(url, sizeof(url), "%s/v1/events", F.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_body);
    static struct sse sink;
    sink = (struct sse){0};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "sse_status(%s): %s\n", last_id, curl_easy_strerror(rc));
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* Resume points that are not a point of this log are refused (400) and
 * change nothing: junk, signs, numbers past int64, past the newest event. */
static void
test_hostile_resume(void **state)
{
    static const char *const bad[] = {"abc",
                                      "-1",
                                      "+5",
                                      " 5",
                                      "5x",
                                      "1e3",
                                      "0x10",
                                      "99999999999999999999",
                                      "9223372036854775808"};
    json_t *o = NULL;
    char path[128], beyond[32];

    (void)state;
    uint64_t top = newest();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v1/events?after=%s", bad[i]);
        /* curl sends the query as given: escape what a URL cannot hold. */
        for (char *p = path; *p; p++)
            if (*p == ' ' || *p == '+')
                *p = *p == ' ' ? '_' : '~';
        assert_int_equal(http("GET", path, NULL, NULL, &o), 400);
        assert_string_equal(str(json_object_get(o, "error"), "code"), "bad_request");
        json_decref(o);
        /* A header's value loses its leading spaces: " 5" is 5 there. */
        if (bad[i][0] != ' ')
            assert_int_equal(sse_status(bad[i]), 400);
    }
    snprintf(beyond, sizeof(beyond), "%llu", (unsigned long long)top + 1000);
    snprintf(path, sizeof(path), "/v1/events?after=%s", beyond);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 400);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "after");
    json_decref(o);
    assert_int_equal(sse_status(beyond), 400);
    /* The newest itself is a fine resume point: nothing after it yet. */
    snprintf(path, sizeof(path), "/v1/events?after=%llu", (unsigned long long)top);
    assert_int_equal(http("GET", path, NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "events")), 0);
    assert_int_equal(num(o, "next"), (json_int_t)top);
    json_decref(o);
    assert_int_equal(newest(), top);
}

/* A client that stops reading: its stream falls behind (a bounded buffer)
 * while the master answers everyone else, and when it reads again it gets
 * every event once, in order, from the store. */
#define FLOOD 6000

static void
flood(struct fx *f)
{
    static char pad[1025];

    memset(pad, 'x', sizeof(pad) - 1);
    master_batch_begin(f->master);
    for (unsigned i = 0; i < FLOOD; i++)
        events_emit(f->master, "test.flood", NULL, NULL, NULL, json_pack("{s:s}", "pad", pad),
                    "flood %u", i);
    f->err = master_batch_commit(f->master);
}

struct slow {
    struct sse s;        /* what it read */
    atomic_bool go;      /* may read */
    atomic_bool started; /* got the first bytes */
};

static size_t
slow_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct slow *w = userdata;

    atomic_store(&w->started, true);
    while (!atomic_load(&w->go))
        usleep(10000);
    return sse_body(data, size, nmemb, &w->s);
}

static int
small_rcvbuf(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
    int n = 4096;

    (void)userdata;
    (void)purpose;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
    return CURL_SOCKOPT_OK;
}

static void *
slow_main(void *arg)
{
    struct slow *w = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
    char url[128], hdr[64];

    snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu", (unsigned long long)w->s.last_id);
    h = curl_slist_append(h, hdr);
    snprintf(url, sizeof(url), "%s/v1/events", F.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, small_rcvbuf);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 1024L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, slow_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static void
test_slow_client(void **state)
{
    static struct slow w;
    json_t *o = NULL;

    (void)state;
    uint64_t top = newest();
    w = (struct slow){.s = {.last_id = top, .stop_after = FLOOD}};
    pthread_create(&w.s.thread, NULL, slow_main, &w);
    while (!atomic_load(&w.started))
        usleep(10000);
    /* ~6.6 MB of events for a client that reads nothing. */
    on_loop(flood);
    assert_int_equal(F.err, 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, &o), 200);
        json_decref(o);
        usleep(50000);
    }
    atomic_store(&w.go, true);
    pthread_join(w.s.thread, NULL);
    assert_int_equal(w.s.n, FLOOD);
    for (unsigned i = 0; i < FLOOD; i++) {
        assert_int_equal(w.s.seqs[i], top + 1 + i);
        assert_string_equal(w.s.types[i], "test.flood");
    }
}

/* An SSE stream held open until quit, as the token in F.auth. */
struct hold {
    atomic_bool quit;   /* close it */
    atomic_bool opened; /* the stream's first bytes came */
    atomic_long status; /* the answer's status once it ended */
    pthread_t thread;   /* the holder */
};

static size_t
hold_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct hold *w = userdata;

    (void)data;
    atomic_store(&w->opened, true);
    return size * nmemb;
}

static int
hold_progress(void *userdata, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct hold *w = userdata;

    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&w->quit) ? 1 : 0;
}

static void *
hold_main(void *arg)
{
    struct hold *w = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
    char url[128];
    long status = 0;

    snprintf(url, sizeof(url), "%s/v1/events", F.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    h = fx_secure(c, h);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hold_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, hold_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    atomic_store(&w->status, status ? status : -1);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* Starts w as the token tok and waits until its stream is open or over. */
static void
hold_start(struct hold *w, const char *tok)
{
    char admin[sizeof(F.auth)];

    memcpy(admin, F.auth, sizeof(admin));
    snprintf(F.auth, sizeof(F.auth), "Authorization: Bearer %s", tok);
    *w = (struct hold){0};
    pthread_create(&w->thread, NULL, hold_main, w);
    for (int t = 0; t < 2000 && !atomic_load(&w->opened) && !atomic_load(&w->status); t++)
        usleep(5000);
    memcpy(F.auth, admin, sizeof(admin));
}

static char *
new_token(void)
{
    json_t *o = NULL;

    assert_int_equal(http("POST", "/v1/tokens", "{\"role\":\"operator\"}", NULL, &o), 201);
    char *t = strdup(str(o, "token"));
    json_decref(o);
    return t;
}

/* One token cannot take every stream: past EVENT_STREAMS_PER_CALLER its
 * next is 503, while another token still gets one. */
static void
test_streams_per_caller(void **state)
{
    static struct hold w[EVENT_STREAMS_PER_CALLER + 2];
    char *a = new_token(), *b = new_token();

    (void)state;
    for (int i = 0; i < EVENT_STREAMS_PER_CALLER; i++) {
        hold_start(&w[i], a);
        assert_true(atomic_load(&w[i].opened));
    }
    struct hold *extra = &w[EVENT_STREAMS_PER_CALLER], *other = extra + 1;
    hold_start(extra, a);
    pthread_join(extra->thread, NULL);
    assert_int_equal(atomic_load(&extra->status), 503);
    /* Another caller is not locked out. */
    hold_start(other, b);
    assert_true(atomic_load(&other->opened));
    for (int i = 0; i < EVENT_STREAMS_PER_CALLER; i++)
        atomic_store(&w[i].quit, true);
    atomic_store(&other->quit, true);
    for (int i = 0; i < EVENT_STREAMS_PER_CALLER; i++) {
        pthread_join(w[i].thread, NULL);
        assert_int_equal(atomic_load(&w[i].status), 200);
    }
    pthread_join(other->thread, NULL);
    assert_int_equal(atomic_load(&other->status), 200);
    free(a);
    free(b);
}

/* ?tail=N: the newest N that match, oldest first, next the newest seq; a
 * filter reads back past what does not match; refused with a resume point. */
static void
test_tail(void **state)
{
    json_t *o = NULL, *all = NULL;
    char path[128];

    (void)state;
    create("t1");
    create("t2");
    assert_int_equal(http("DELETE", "/v1/guests/t1", NULL, NULL, NULL), 204);
    uint64_t top = newest();
    snprintf(path, sizeof(path), "/v1/events?after=%llu", (unsigned long long)(top - 3));
    assert_int_equal(http("GET", path, NULL, NULL, &all), 200);
    assert_int_equal(http("GET", "/v1/events?tail=3", NULL, NULL, &o), 200);
    assert_int_equal((uint64_t)num(o, "next"), top);
    assert_true(json_equal(json_object_get(o, "events"), json_object_get(all, "events")));
    json_decref(o);
    json_decref(all);

    /* t2's newest two: its creation's events come before t1's deletion. */
    assert_int_equal(http("GET", "/v1/events?tail=2&guest=t2", NULL, NULL, &o), 200);
    json_t *ev = json_object_get(o, "events");
    assert_int_equal(json_array_size(ev), 2);
    assert_string_equal(str(json_array_get(ev, 0), "guest"), "t2");
    assert_string_equal(str(json_array_get(ev, 1), "guest"), "t2");
    assert_true(num(json_array_get(ev, 0), "seq") < num(json_array_get(ev, 1), "seq"));
    json_decref(o);
    /* More than there are: all of them, oldest first. */
    assert_int_equal(http("GET", "/v1/events?tail=5000&guest=t1", NULL, NULL, &o), 200);
    ev = json_object_get(o, "events");
    assert_true(json_array_size(ev) >= 2);
    assert_string_equal(str(json_array_get(ev, json_array_size(ev) - 1), "type"), "guest.deleted");
    json_decref(o);

    const char *bad[] = {"/v1/events?tail=0", "/v1/events?tail=x", "/v1/events?tail=-1",
                         "/v1/events?tail=2&after=1", "/v1/events?tail=2&limit=5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(http("GET", bad[i], NULL, NULL, &o), 400);
        assert_string_equal(str(json_object_get(o, "error"), "field"), "tail");
        json_decref(o);
    }
    assert_int_equal(http("DELETE", "/v1/guests/t2", NULL, NULL, NULL), 204);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_exactly_once),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_oom_and_limits),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_tenant_project),
        cmocka_unit_test(test_hostile_resume),
        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_streams_per_caller),
        cmocka_unit_test(test_tail),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
