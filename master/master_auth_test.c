/* Who may do what through the API, end to end in one process
 * (master_fixture.h, real HTTPS with libcurl): no token, a wrong token, an
 * expired token; a tenant of one project on another project's guests (every
 * guest route answers 404 and changes nothing, lists hold none of them); what
 * a tenant may not ask (capabilities, flags, a node, nodes and pools); what an
 * operator may not manage (tokens, projects); quotas on create, PATCH and
 * address add, also under concurrent creates; the TLS pin; root over the
 * Unix socket; requests a browser on another origin could send. */
#include "master/master_fixture.h"
#include "master/tls.h"

/* ---- helpers ---- */

/* Uses token tok ("" = none) for the next requests. */
static void
as(const char *tok)
{
    if (tok[0])
        snprintf(F.auth, sizeof(F.auth), "Authorization: Bearer %s", tok);
    else
        F.auth[0] = '\0';
}

static void
as_admin(void)
{
    as(F.admin);
}

/* Makes a token of role (project may be NULL) as admin; returns its text. */
static char *
make_token(const char *role, const char *project, const char *ttl)
{
    json_t *o = NULL;
    char body[256];

    as_admin();
    snprintf(body, sizeof(body), "{\"role\":\"%s\"%s%s%s%s%s%s}", role,
             project ? ",\"project\":\"" : "", project ? project : "", project ? "\"" : "",
             ttl ? ",\"ttl\":\"" : "", ttl ? ttl : "", ttl ? "\"" : "");
    assert_int_equal(http("POST", "/v1/tokens", body, NULL, &o), 201);
    char *t = xstrdup(str(o, "token"));
    assert_int_equal(strlen(t), AUTH_TOKEN_LEN);
    json_decref(o);
    return t;
}

static void
make_project(const char *name, const char *quota)
{
    char body[512];

    as_admin();
    snprintf(body, sizeof(body), "{\"name\":\"%s\"%s%s}", name, quota ? ",\"quota\":" : "",
             quota ? quota : "");
    assert_int_equal(http("POST", "/v1/projects", body, NULL, NULL), 201);
}

static long
create(const char *name, const char *extra)
{
    char body[512];

    snprintf(body, sizeof(body),
             "{\"name\":\"%s\",\"template\":\"busybox\",\"limits\":{\"memory\":\"64M\"}%s%s}", name,
             extra ? "," : "", extra ? extra : "");
    return http("POST", "/v1/guests?wait=running&timeout=20", body, NULL, NULL);
}

/* The error's code and field of a request. */
static long
call_err(const char *method, const char *path, const char *body, const char *code,
         const char *field)
{
    json_t *o = NULL;
    long st = http(method, path, body, NULL, &o);
    json_t *e = json_object_get(o, "error");

    if (code)
        assert_string_equal(str(e, "code"), code);
    if (field)
        assert_string_equal(str(e, "field"), field);
    json_decref(o);
    return st;
}

static json_int_t
generation_of(const char *name)
{
    as_admin();
    json_t *o = get_guest(name);
    json_int_t g = num(o, "generation");
    json_decref(o);
    return g;
}

/* ---- authentication ---- */

static void
test_no_wrong_expired_token(void **state)
{
    struct hdr_want www = {.name = "www-authenticate:"};
    json_t *o = NULL;

    as("");
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 200);
    assert_int_equal(http_h("GET", "/v1/guests", NULL, NULL, &o, &www), 401);
    assert_string_equal(str(json_object_get(o, "error"), "code"), "unauthorized");
    assert_non_null(strstr(www.value, "Bearer"));
    json_decref(o);
    assert_int_equal(create("nt1", NULL), 401);
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, NULL), 401);

    /* A token of the right shape that was never made, and junk. */
    as("tk0000000000.0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, NULL), 401);
    snprintf(F.auth, sizeof(F.auth), "Authorization: Basic YWRtaW46YWRtaW4=");
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, NULL), 401);
    /* One changed character of a real token. */
    char *t = make_token("admin", NULL, NULL);
    t[AUTH_TOKEN_LEN - 1] = t[AUTH_TOKEN_LEN - 1] == 'a' ? 'b' : 'a';
    as(t);
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, NULL), 401);
    free(t);

    /* A token good for 1 s is taken while it lasts, refused after. Only an
     * answer within 1 s of the make is sure to be within its life: on a
     * loaded machine the make and the use can be further apart (and 401 is
     * then right), so that round is tried again. */
    char *e = NULL;
    long st = 0;
    for (int tries = 0; tries < 5 && st != 200; tries++) {
        free(e);
        uint64_t t0 = time_real_ms();
        e = make_token("admin", NULL, "1s");
        as(e);
        st = http("GET", "/v1/guests", NULL, NULL, NULL);
        if (time_real_ms() - t0 < 1000)
            assert_int_equal(st, 200);
    }
    assert_int_equal(st, 200);
    usleep(1300 * 1000);
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 401);
    assert_non_null(strstr(str(json_object_get(o, "error"), "message"), "expired"));
    json_decref(o);
    free(e);
    as_admin();
    assert_int_equal(http("GET", "/v1/guests/nt1", NULL, NULL, NULL), 404);

    /* A deleted token stops working at once. */
    char *d = make_token("operator", NULL, NULL);
    as(d);
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, NULL), 200);
    as_admin();
    char path[64];
    snprintf(path, sizeof(path), "/v1/tokens/%.*s", AUTH_ID_LEN, d);
    assert_int_equal(http("DELETE", path, NULL, NULL, NULL), 204);
    as(d);
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, NULL), 401);
    free(d);
    /* Tokens are listed without secret or hash. */
    as_admin();
    assert_int_equal(http("GET", "/v1/tokens", NULL, NULL, &o), 200);
    json_t *tok;
    size_t i;
    json_array_foreach(json_object_get(o, "tokens"), i, tok)
    {
        assert_null(json_object_get(tok, "token"));
        assert_null(json_object_get(tok, "hash"));
    }
    json_decref(o);
}

/* ---- a tenant on another project's guests ---- */

static void
test_tenant_cross_project(void **state)
{
    static const struct {
        const char *method; /* the request */
        const char *path;   /* on p2's guest */
        const char *body;   /* its body */
    } reqs[] = {
        {"GET", "/v1/guests/x2", NULL},
        {"PATCH", "/v1/guests/x2", "{\"labels\":{\"a\":\"b\"}}"},
        {"DELETE", "/v1/guests/x2", NULL},
        {"DELETE", "/v1/guests/x2?force=true", NULL},
        {"POST", "/v1/guests/x2/exec", "{\"argv\":[\"echo\",\"hi\"]}"},
        {"POST", "/v1/guests/x2/start", NULL},
        {"POST", "/v1/guests/x2/stop", NULL},
        {"POST", "/v1/guests/x2/restart", NULL},
        {"GET", "/v1/guests/x2/usage", NULL},
        {"GET", "/v1/guests/x2/traffic", NULL},
        {"POST", "/v1/guests/x2/traffic/reset", NULL},
        {"POST", "/v1/guests/x2/ips", "{\"ip\":\"auto\"}"},
        {"DELETE", "/v1/guests/x2/ips/10.61.0.2", NULL},
        {"GET", "/v1/projects/p2", NULL},
    };
    json_t *o = NULL, *g;
    size_t i;

    make_project("p1", NULL);
    make_project("p2", NULL);
    as_admin();
    assert_int_equal(
        http("POST", "/v1/pools", "{\"name\":\"xp\",\"cidr\":\"10.61.0.0/24\"}", NULL, NULL), 201);
    char *t1 = make_token("tenant", "p1", NULL), *t2 = make_token("tenant", "p2", "1h");
    as(t2);
    assert_int_equal(create("x2", "\"ips\":[\"auto\"]"), 201);
    as(t1);
    assert_int_equal(create("x1", NULL), 201);
    json_int_t gen = generation_of("x2");

    as(t1);
    for (i = 0; i < ARRAY_SIZE(reqs); i++) {
        long st = http(reqs[i].method, reqs[i].path, reqs[i].body, NULL, &o);
        if (st != 404)
            fail_msg("%s %s as a tenant of p1: %ld, not 404", reqs[i].method, reqs[i].path, st);
        assert_string_equal(str(json_object_get(o, "error"), "code"), "not_found");
        json_decref(o);
    }
    /* Lists hold nothing of p2, whatever is asked. */
    const char *lists[] = {"/v1/guests",           "/v1/guests?project=p2",
                           "/v1/guests?label=a=b", "/v1/guests?state=running",
                           "/v1/guests?node=n1",   "/v1/guests?node=n2",
                           "/v1/guests?node=n3"};
    for (i = 0; i < ARRAY_SIZE(lists); i++) {
        size_t k;
        assert_int_equal(http("GET", lists[i], NULL, NULL, &o), 200);
        json_array_foreach(json_object_get(o, "guests"), k, g)
        {
            assert_string_equal(str(g, "project"), "p1");
            assert_string_not_equal(str(g, "name"), "x2");
        }
        json_decref(o);
    }
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 1);
    json_decref(o);
    assert_int_equal(http("GET", "/v1/projects", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "projects")), 1);
    assert_string_equal(str(json_array_get(json_object_get(o, "projects"), 0), "name"), "p1");
    json_decref(o);
    /* Creating into another project is as if it did not exist. */
    assert_int_equal(call_err("POST", "/v1/guests",
                              "{\"name\":\"x3\",\"template\":\"busybox\",\"project\":\"p2\"}",
                              "not_found", "project"),
                     404);

    /* Nothing of p2's guest changed. */
    as_admin();
    assert_int_equal(generation_of("x2"), gen);
    assert_int_equal(http("GET", "/v1/guests/x2", NULL, NULL, &o), 200);
    assert_string_equal(str(o, "project"), "p2");
    assert_string_equal(str(o, "state"), "running");
    assert_int_equal(json_array_size(json_object_get(o, "ips")), 1);
    json_decref(o);
    /* Its own tenant reaches it. */
    as(t2);
    assert_int_equal(http("GET", "/v1/guests/x2", NULL, NULL, NULL), 200);
    assert_int_equal(http("POST", "/v1/guests/x2/exec", "{\"argv\":[\"true\"]}", NULL, NULL), 200);
    as_admin();
    delete_all_guests();
    free(t1);
    free(t2);
}

/* ---- what a tenant may not ask, what an operator may not manage ---- */

static void
test_tenant_limits(void **state)
{
    make_project("p3", NULL);
    char *t = make_token("tenant", "p3", NULL);

    as(t);
    assert_int_equal(
        call_err("POST", "/v1/guests",
                 "{\"name\":\"y1\",\"template\":\"busybox\",\"caps_add\":[\"sys_admin\"]}",
                 "forbidden", "caps_add"),
        403);
    assert_int_equal(call_err("POST", "/v1/guests",
                              "{\"name\":\"y1\",\"template\":\"busybox\",\"flags\":[\"private\"]}",
                              "forbidden", "flags"),
                     403);
    assert_int_equal(call_err("POST", "/v1/guests",
                              "{\"name\":\"y1\",\"template\":\"busybox\",\"node\":\"n1\"}",
                              "forbidden", "node"),
                     403);
    as_admin();
    assert_int_equal(http("GET", "/v1/guests/y1", NULL, NULL, NULL), 404);
    as(t);
    assert_int_equal(create("y1", NULL), 201);
    json_int_t gen = generation_of("y1");
    as(t);
    /* Capabilities are patchable by an admin only (master_console_test);
     * flags but lock are staff's. */
    assert_int_equal(call_err("PATCH", "/v1/guests/y1", "{\"caps_add\":[\"net_admin\"]}",
                              "forbidden", "caps_add"),
                     403);
    assert_int_equal(
        call_err("PATCH", "/v1/guests/y1", "{\"flags\":[\"private\"]}", "forbidden", "flags"), 403);
    assert_int_equal(generation_of("y1"), gen);
    as(t);
    /* The lock flag is the tenant's own. */
    assert_int_equal(http("PATCH", "/v1/guests/y1", "{\"flags\":[\"lock\"]}", NULL, NULL), 200);
    assert_int_equal(http("PATCH", "/v1/guests/y1", "{\"flags\":[]}", NULL, NULL), 200);
    const char *staff[] = {"/v1/nodes", "/v1/nodes/n1", "/v1/pools", "/v1/nodes/n1/routes",
                           "/v1/tokens"};
    for (size_t i = 0; i < ARRAY_SIZE(staff); i++)
        assert_int_equal(call_err("GET", staff[i], NULL, "forbidden", NULL), 403);
    assert_int_equal(http("POST", "/v1/nodes/n1/cordon", NULL, NULL, NULL), 403);
    assert_int_equal(
        http("POST", "/v1/pools", "{\"name\":\"tp\",\"cidr\":\"10.62.0.0/24\"}", NULL, NULL), 403);
    assert_int_equal(http("POST", "/v1/tokens", "{\"role\":\"admin\"}", NULL, NULL), 403);
    assert_int_equal(http("POST", "/v1/projects", "{\"name\":\"mine\"}", NULL, NULL), 403);
    assert_int_equal(http("PATCH", "/v1/projects/p3", "{\"quota\":{\"guests\":null}}", NULL, NULL),
                     403);

    /* An operator: every project's guests, nodes and pools; no tokens or
     * projects to manage. */
    char *op = make_token("operator", NULL, NULL);
    as(op);
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, NULL), 200);
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, NULL), 200);
    assert_int_equal(http("GET", "/v1/guests/y1", NULL, NULL, NULL), 200);
    assert_int_equal(create("y2", "\"project\":\"p3\",\"caps_add\":[\"net_admin\"]"), 201);
    /* A privileged (host-root) or nesting guest is an admin's decision. */
    assert_int_equal(
        call_err("POST", "/v1/guests",
                 "{\"name\":\"y3\",\"template\":\"busybox\",\"flags\":[\"privileged\"]}",
                 "forbidden", "flags"),
        403);
    assert_int_equal(
        call_err("PATCH", "/v1/guests/y2", "{\"flags\":[\"nesting\"]}", "forbidden", "flags"), 403);
    assert_int_equal(http("PATCH", "/v1/guests/y2", "{\"flags\":[\"private\"]}", NULL, NULL), 200);
    assert_int_equal(http("GET", "/v1/tokens", NULL, NULL, NULL), 403);
    assert_int_equal(http("POST", "/v1/tokens", "{\"role\":\"admin\"}", NULL, NULL), 403);
    assert_int_equal(http("DELETE", "/v1/tokens/tk0000000000", NULL, NULL, NULL), 403);
    assert_int_equal(http("POST", "/v1/projects", "{\"name\":\"opp\"}", NULL, NULL), 403);
    assert_int_equal(http("PATCH", "/v1/projects/p3", "{\"quota\":{\"guests\":1}}", NULL, NULL),
                     403);
    assert_int_equal(http("DELETE", "/v1/projects/p3", NULL, NULL, NULL), 403);
    assert_int_equal(http("GET", "/v1/projects/p3", NULL, NULL, NULL), 200);
    as(t);
    assert_int_equal(http("GET", "/v1/guests/y2", NULL, NULL, NULL), 200);
    as_admin();
    assert_int_equal(create("y3", "\"project\":\"p3\",\"flags\":[\"privileged\",\"nesting\"]"),
                     201);
    /* A project with guests (or tokens) stays. */
    assert_int_equal(http("DELETE", "/v1/projects/p3", NULL, NULL, NULL), 409);
    delete_all_guests();
    assert_int_equal(http("DELETE", "/v1/projects/p3", NULL, NULL, NULL), 409);
    assert_int_equal(http("DELETE", "/v1/projects/default", NULL, NULL, NULL), 409);
    free(t);
    free(op);
}

/* ---- quotas ---- */

static void
test_quota(void **state)
{
    json_t *o = NULL;

    make_project("q1", "{\"guests\":2,\"memory\":\"160M\",\"addresses\":1}");
    as_admin();
    assert_int_equal(
        http("POST", "/v1/pools", "{\"name\":\"qp\",\"cidr\":\"10.63.0.0/24\"}", NULL, NULL), 201);
    char *t = make_token("tenant", "q1", NULL);
    as(t);
    assert_int_equal(create("z1", "\"ips\":[\"auto\"]"), 201);
    /* The addresses quota: a second address is refused, nothing changes. */
    json_int_t gen = generation_of("z1");
    as(t);
    assert_int_equal(call_err("POST", "/v1/guests/z1/ips", "{\"ip\":\"auto\"}", "quota_exceeded",
                              "quota.addresses"),
                     409);
    assert_int_equal(generation_of("z1"), gen);
    as(t);
    assert_int_equal(create("z2", NULL), 201);
    /* The guests quota, by name. */
    assert_int_equal(
        http("POST", "/v1/guests", "{\"name\":\"z3\",\"template\":\"busybox\"}", NULL, &o), 409);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "quota.guests");
    assert_non_null(strstr(str(json_object_get(o, "error"), "message"), "q1"));
    json_decref(o);
    assert_int_equal(http("GET", "/v1/guests/z3", NULL, NULL, NULL), 404);
    /* The memory quota on PATCH: 128M in use of 160M. */
    assert_int_equal(call_err("PATCH", "/v1/guests/z2", "{\"limits\":{\"memory\":\"128M\"}}",
                              "quota_exceeded", "quota.memory"),
                     409);
    assert_int_equal(http("GET", "/v1/guests/z2", NULL, NULL, &o), 200);
    assert_int_equal(num(json_object_get(o, "limits"), "memory"), 64 << 20);
    json_decref(o);
    assert_int_equal(
        http("PATCH", "/v1/guests/z2", "{\"limits\":{\"memory\":\"96M\"}}", NULL, NULL), 200);
    /* Shrinking is always allowed, also past a lowered quota. */
    as_admin();
    assert_int_equal(http("PATCH", "/v1/projects/q1", "{\"quota\":{\"memory\":\"64M\"}}", NULL, &o),
                     200);
    assert_int_equal(num(json_object_get(o, "usage"), "memory"), 160 << 20);
    assert_int_equal(num(json_object_get(o, "usage"), "guests"), 2);
    json_decref(o);
    as(t);
    assert_int_equal(
        http("PATCH", "/v1/guests/z2", "{\"limits\":{\"memory\":\"80M\"}}", NULL, NULL), 200);
    assert_int_equal(http("PATCH", "/v1/guests/z2", "{\"labels\":{\"k\":\"v\"}}", NULL, NULL), 200);
    assert_int_equal(http("DELETE", "/v1/guests/z2", NULL, NULL, NULL), 204);
    as_admin();
    delete_all_guests();
    free(t);
}

/* Eight creates at once for the project's last guest: exactly one passes. */
struct racer {
    char name[16];         /* the guest */
    char auth[200];        /* the token header */
    long status;           /* what it got */
    pthread_barrier_t *go; /* all start together */
};

static void *
race_create(void *arg)
{
    struct racer *r = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct buf b = {0};
    char url[128], body[256];

    snprintf(url, sizeof(url), "%s/v1/guests", F.url);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"template\":\"busybox\"}", r->name);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, r->auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, F.cafile);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    pthread_barrier_wait(r->go);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(b.p);
    return NULL;
}

static void
test_quota_race(void **state)
{
    enum { RACERS = 8 };
    struct racer r[RACERS];
    pthread_t th[RACERS];
    pthread_barrier_t go;
    json_t *o = NULL;

    make_project("q2", "{\"guests\":3}");
    char *t = make_token("tenant", "q2", NULL);
    as(t);
    assert_int_equal(create("r0", NULL), 201);
    assert_int_equal(create("r1", NULL), 201);
    pthread_barrier_init(&go, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){.go = &go};
        snprintf(r[i].name, sizeof(r[i].name), "rc%d", i);
        snprintf(r[i].auth, sizeof(r[i].auth), "Authorization: Bearer %s", t);
        pthread_create(&th[i], NULL, race_create, &r[i]);
    }
    int won = 0, refused = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        won += r[i].status == 201;
        refused += r[i].status == 409;
    }
    pthread_barrier_destroy(&go);
    fprintf(stderr, "quota race: %d concurrent creates for the last guest: %d created, %d 409\n",
            RACERS, won, refused);
    assert_int_equal(won, 1);
    assert_int_equal(refused, RACERS - 1);
    as(t);
    assert_int_equal(http("GET", "/v1/guests", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "guests")), 3);
    json_decref(o);
    as_admin();
    assert_int_equal(http("GET", "/v1/projects/q2", NULL, NULL, &o), 200);
    assert_int_equal(num(json_object_get(o, "usage"), "guests"), 3);
    json_decref(o);
    delete_all_guests();
    free(t);
}

/* ---- transport ---- */

static long
get_pinned(const char *pin, CURLcode *rc)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, F.auth);
    char url[128];
    long status = 0;

    snprintf(url, sizeof(url), "%s/v1/guests", F.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    /* The pin alone authenticates the server, as `vfleet --pin` does. */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, pin);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    struct buf b = {0};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    *rc = curl_easy_perform(c);
    if (*rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    free(b.p);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static void
test_tls_pin_and_plain(void **state)
{
    struct tls_creds creds;
    char err[256], key[200];
    CURLcode rc;
    struct stat st;

    snprintf(key, sizeof(key), "%s/api.key", F.dir);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(F.db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tls_self_signed(F.dir, NULL, &creds, err, sizeof(err)), 0);
    assert_false(creds.generated);
    as_admin();
    assert_int_equal(get_pinned(creds.pin, &rc), 200);
    char wrong[TLS_PIN_LEN];
    snprintf(wrong, sizeof(wrong), "%s", creds.pin);
    wrong[10] = wrong[10] == 'A' ? 'B' : 'A';
    assert_int_equal(get_pinned(wrong, &rc), 0);
    assert_int_equal(rc, CURLE_SSL_PINNEDPUBKEYNOTMATCH);
    tls_creds_clear(&creds);

    /* Plain HTTP on the TLS port gets nothing. */
    char url[64];
    snprintf(url, sizeof(url), "%s", F.url);
    memmove(F.url + 4, F.url + 5, strlen(F.url + 5) + 1); /* https -> http */
    assert_int_equal(http("GET", "/healthz", NULL, NULL, NULL), 0);
    snprintf(F.url, sizeof(F.url), "%s", url);
}

static void
test_unix_socket_root(void **state)
{
    as("");
    F.over_unix = true;
    /* Root's peer credentials make it admin without a token; another user
     * needs one. */
    long want = geteuid() == 0 ? 200 : 401;
    assert_int_equal(http("GET", "/v1/tokens", NULL, NULL, NULL), want);
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, NULL), want);
    /* A token still wins over the socket's identity. */
    make_project("u1", NULL);
    char *tt = make_token("tenant", "u1", NULL);
    as(tt);
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, NULL), 403);
    F.over_unix = false;
    as_admin();
    free(tt);
}

static void
test_cross_origin(void **state)
{
    const char *own_origin = F.url;
    char hdr[160];
    CURL *c;

    as_admin();
    /* Each case: one extra header on an otherwise valid admin request. */
    struct {
        const char *header; /* sent */
        const char *type;   /* Content-Type, NULL = application/json */
        long want;          /* status */
    } cases[] = {
        {"Origin: https://evil.example", NULL, 403},
        {"Origin: null", NULL, 403},
        {"Host: evil.example", NULL, 403},
        {"X-Nothing: 1", "text/plain", 415},
        {"Origin: https://evil.example", "text/plain", 403},
        {"X-Nothing: 1", "application/x-www-form-urlencoded", 415},
        {hdr, NULL, 201},
    };
    snprintf(hdr, sizeof(hdr), "Origin: %s", own_origin);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct curl_slist *h = NULL;
        char url[128], ct[96], body[128];
        long st = 0;
        c = curl_easy_init();
        snprintf(url, sizeof(url), "%s/v1/pools", F.url);
        snprintf(ct, sizeof(ct), "Content-Type: %s",
                 cases[i].type ? cases[i].type : "application/json");
        snprintf(body, sizeof(body), "{\"name\":\"co%zu\",\"cidr\":\"10.70.%zu.0/24\"}", i, i);
        h = curl_slist_append(h, ct);
        h = curl_slist_append(h, F.auth);
        h = curl_slist_append(h, cases[i].header);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CAINFO, F.cafile);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        struct buf b = {0};
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        if (st != cases[i].want)
            fail_msg("%s with %s: %ld, not %ld", cases[i].header,
                     cases[i].type ? cases[i].type : "json", st, cases[i].want);
        free(b.p);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
    }
    /* Only the last one made a pool. */
    json_t *o = NULL;
    assert_int_equal(http("GET", "/v1/pools", NULL, NULL, &o), 200);
    json_t *p;
    size_t i, made = 0;
    json_array_foreach(json_object_get(o, "pools"), i, p) made += !strncmp(str(p, "name"), "co", 2);
    assert_int_equal(made, 1);
    json_decref(o);
}

/* An Idempotency-Key is the caller's: another caller's same request with it
 * is a 409, never a replay of the first caller's answer. */
static void
test_idem_per_caller(void **state)
{
    const char *body = "{\"argv\":[\"echo\",\"secret\"]}";
    json_t *o = NULL;

    make_project("k1", NULL);
    char *t = make_token("tenant", "k1", NULL), *op = make_token("operator", NULL, NULL);
    as(t);
    assert_int_equal(create("kg", NULL), 201);
    assert_int_equal(http("POST", "/v1/guests/kg/exec", body, "shared-key-1", &o), 200);
    assert_string_equal(str(o, "stdout"), "echo secret\n");
    json_decref(o);
    /* The same caller replays. */
    assert_int_equal(http("POST", "/v1/guests/kg/exec", body, "shared-key-1", &o), 200);
    assert_string_equal(str(o, "stdout"), "echo secret\n");
    json_decref(o);
    as(op);
    assert_int_equal(http("POST", "/v1/guests/kg/exec", body, "shared-key-1", &o), 409);
    assert_string_equal(str(json_object_get(o, "error"), "field"), "Idempotency-Key");
    json_decref(o);
    as_admin();
    delete_all_guests();
    free(t);
    free(op);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_wrong_expired_token),
        cmocka_unit_test(test_tenant_cross_project),
        cmocka_unit_test(test_tenant_limits),
        cmocka_unit_test(test_quota),
        cmocka_unit_test(test_quota_race),
        cmocka_unit_test(test_tls_pin_and_plain),
        cmocka_unit_test(test_unix_socket_root),
        cmocka_unit_test(test_cross_origin),
        cmocka_unit_test(test_idem_per_caller),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
