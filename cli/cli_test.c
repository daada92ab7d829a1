/* Tests for the commands end to end over HTTP: the vf_cli library against
 * a canned master (libmicrohttpd on 127.0.0.1, a port the kernel picks) and
 * against a port nothing listens on. They prove the exit codes, the
 * Idempotency-Key handling and retries, the request each command sends, and
 * what it prints. The real master's end-to-end tests come with the master. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/cmd.h"
#include "cli/cmd_op.h"
#include "common/mem.h"

#define ARGV(...)    ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...)    ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define RUN(fn, ...) fn(&fx->ctx, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

#define FAKE_MAX_REQS 16

/* One request the fake master saw. */
struct fake_req {
    char method[16]; /* HTTP method */
    char url[256];   /* path without the query */
    char query[256]; /* decoded "k=v&k=v" in arrival order */
    char key[64];    /* Idempotency-Key header, "" when absent */
    char auth[128];  /* Authorization header, "" when absent */
    char body[2048]; /* request body as received */
};

/* The canned master: answers every request with one status and body, after
 * dropping the first `drop` connections without a reply. */
struct fake {
    struct MHD_Daemon *d;                /* the HTTP server */
    pthread_mutex_t lock;                /* guards everything below */
    unsigned status;                     /* reply status */
    const char *reply;                   /* reply body (JSON text) */
    const char *reply2;                  /* body for requests after the first, or NULL */
    unsigned drop;                       /* connections still to drop */
    unsigned n;                          /* requests seen (dropped ones too) */
    struct fake_req reqs[FAKE_MAX_REQS]; /* the first FAKE_MAX_REQS requests */
};

/* Per-connection upload buffer. */
struct fake_upload {
    char buf[2048]; /* body so far */
    size_t len;     /* bytes in buf */
};

struct fixture {
    struct fake fake;    /* the canned master */
    http_client_t *http; /* client pointed at it */
    struct cli_ctx ctx;  /* what commands run with */
    char *out, *err;     /* captured output */
    size_t out_len, err_len;
};

static enum MHD_Result
fake_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct fake_req *r = cls;
    size_t n = strlen(r->query);
    snprintf(r->query + n, sizeof(r->query) - n, "%s%s=%s", n ? "&" : "", key, value ? value : "");
    return MHD_YES;
}

static enum MHD_Result
fake_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
             const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct fake *f = cls;
    struct fake_upload *up = *con_cls;

    if (!up) {
        *con_cls = xcalloc(1, sizeof(*up));
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (n > sizeof(up->buf) - 1 - up->len)
            n = sizeof(up->buf) - 1 - up->len;
        memcpy(up->buf + up->len, upload_data, n);
        up->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&f->lock);
    unsigned i = f->n++;
    if (i < FAKE_MAX_REQS) {
        struct fake_req *r = &f->reqs[i];
        const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->url, sizeof(r->url), "%s", url);
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        snprintf(r->key, sizeof(r->key), "%s", key ? key : "");
        snprintf(r->auth, sizeof(r->auth), "%s", auth ? auth : "");
        memcpy(r->body, up->buf, up->len + 1);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, fake_arg, r);
    }
    bool drop = f->drop > 0;
    if (drop)
        f->drop--;
    const char *text = i > 0 && f->reply2 ? f->reply2 : f->reply;
    unsigned status = f->status;
    pthread_mutex_unlock(&f->lock);

    if (drop)
        return MHD_NO; /* closes the connection without a reply */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void
fake_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
               enum MHD_RequestTerminationCode toe)
{
    free(*con_cls);
    *con_cls = NULL;
}

static int
setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    pthread_mutex_init(&fx->fake.lock, NULL);
    fx->fake.status = 200;
    fx->fake.reply = "{}";
    fx->fake.d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, fake_handler, &fx->fake,
        MHD_OPTION_NOTIFY_COMPLETED, fake_completed, NULL, MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    assert_non_null(fx->fake.d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(fx->fake.d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    _cleanup_free_ char *url = xasprintf("http://127.0.0.1:%u", (unsigned)info->port);
    fx->http = http_client_new(url);
    assert_non_null(fx->http);
    http_client_set_retries(fx->http, 3, 1);
    fx->ctx.http = fx->http;
    fx->ctx.out = open_memstream(&fx->out, &fx->out_len);
    fx->ctx.err = open_memstream(&fx->err, &fx->err_len);
    *state = fx;
    return 0;
}

/* The fake master on a Unix socket (MHD takes the listening socket), the
 * client pointed at it as "unix:PATH". */
static int
setup_unix(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/cli_test.%d.sock", (int)getpid());
    unlink(sa.sun_path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    pthread_mutex_init(&fx->fake.lock, NULL);
    fx->fake.status = 200;
    fx->fake.reply = "{}";
    fx->fake.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, fake_handler,
                                  &fx->fake, MHD_OPTION_NOTIFY_COMPLETED, fake_completed, NULL,
                                  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_END);
    assert_non_null(fx->fake.d);
    _cleanup_free_ char *url = xasprintf("unix:%s", sa.sun_path);
    fx->http = http_client_new(url);
    assert_non_null(fx->http);
    http_client_set_retries(fx->http, 3, 1);
    fx->ctx.http = fx->http;
    fx->ctx.out = open_memstream(&fx->out, &fx->out_len);
    fx->ctx.err = open_memstream(&fx->err, &fx->err_len);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;
    MHD_stop_daemon(fx->fake.d);
    http_client_destroy(&fx->http);
    fclose(fx->ctx.out);
    fclose(fx->ctx.err);
    free(fx->out);
    free(fx->err);
    pthread_mutex_destroy(&fx->fake.lock);
    free(fx);
    return 0;
}

static int
teardown_unix(void **state)
{
    char path[64];

    snprintf(path, sizeof(path), "/tmp/cli_test.%d.sock", (int)getpid());
    unlink(path);
    return teardown(state);
}

/* Flushes the captured streams so out/err hold everything written. */
static void
flush(struct fixture *fx)
{
    fflush(fx->ctx.out);
    fflush(fx->ctx.err);
}

static void
reply(struct fixture *fx, unsigned status, const char *body)
{
    fx->fake.status = status;
    fx->fake.reply = body;
}

static bool
is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return s[14] == '4';
}

static void
test_create_sends_body_and_key(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 201,
          "{\"name\":\"web1\",\"node\":\"h1\",\"state\":\"running\",\"ips\":[\"10.88.0.2\"]}");

    int rc = RUN(cmd_guest_run, "create", "web1", "--template", "busybox", "--memory", "256M",
                 "--wait", "--timeout", "30");
    flush(fx);
    assert_int_equal(rc, CLI_EXIT_OK);
    assert_int_equal(fx->fake.n, 1);
    struct fake_req *r = &fx->fake.reqs[0];
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, "/v1/guests");
    assert_string_equal(r->query, "wait=running&timeout=30");
    assert_true(is_uuid(r->key));
    json_t *body = json_loads(r->body, 0, NULL);
    assert_non_null(body);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(body, "limits"), "memory")),
                     268435456);
    json_decref(body);
    assert_string_equal(fx->out, "guest web1 created on h1: running, ips 10.88.0.2\n");
}

/* `events --follow` asks with the client's token, as every other request
 * does: its stream's request built its own libcurl handle without the
 * Authorization header or the master's trust (socket path, CA, pin), so
 * against a real master it never got an answer and gave up after 30 tries
 * ("the master is unreachable"). A 401 ends it with CLI_EXIT_DENIED. */
static void
test_events_follow_sends_token(void **state)
{
    struct fixture *fx = *state;
    http_client_set_token(fx->http, "tk0123456789.secret");
    reply(fx, 401, "{\"error\":{\"code\":\"unauthorized\",\"message\":\"token expired\"}}");

    int rc = RUN(cmd_events_run, "events", "--follow");
    flush(fx);
    assert_int_equal(fx->fake.n, 1);
    assert_string_equal(fx->fake.reqs[0].url, "/v1/events");
    assert_string_equal(fx->fake.reqs[0].query, "follow=true");
    assert_string_equal(fx->fake.reqs[0].auth, "Bearer tk0123456789.secret");
    assert_int_equal(rc, CLI_EXIT_DENIED);
}

/* The same over the master's Unix socket: the stream's URL was the
 * "unix:PATH" base with the path appended, which libcurl cannot open, so
 * `vfleet events --follow` as root on the master's host never reached it
 * (30 failed tries, "the master is unreachable"). */
static void
test_events_follow_unix_socket(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no\"}}");

    int rc = RUN(cmd_events_run, "events", "--follow", "--after", "7");
    flush(fx);
    assert_int_equal(fx->fake.n, 1);
    assert_string_equal(fx->fake.reqs[0].url, "/v1/events");
    assert_string_equal(fx->fake.reqs[0].query, "follow=true&after=7");
    assert_int_equal(rc, CLI_EXIT_NOT_FOUND);
}

static void
test_given_key_is_sent(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 201, "{\"name\":\"web1\"}");
    assert_int_equal(
        RUN(cmd_guest_run, "create", "web1", "--template", "t", "--idempotency-key", "my-key-7"),
        CLI_EXIT_OK);
    assert_string_equal(fx->fake.reqs[0].key, "my-key-7");
}

/* The master drops two connections after reading the request (as if it
 * restarted mid-create); the CLI retries and every attempt carries the same
 * key, so the master can apply the create once. */
static void
test_post_retry_keeps_key(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 201, "{\"name\":\"web1\",\"state\":\"pending\"}");
    fx->fake.drop = 2;

    int rc = RUN(cmd_guest_run, "create", "web1", "--template", "t");
    flush(fx);
    assert_int_equal(rc, CLI_EXIT_OK);
    assert_int_equal(fx->fake.n, 3);
    assert_true(is_uuid(fx->fake.reqs[0].key));
    assert_string_equal(fx->fake.reqs[1].key, fx->fake.reqs[0].key);
    assert_string_equal(fx->fake.reqs[2].key, fx->fake.reqs[0].key);
    assert_string_equal(fx->fake.reqs[2].body, fx->fake.reqs[0].body);
}

/* Two separate commands get two different keys. */
static void
test_keys_differ_per_command(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200, "{\"state\":\"running\"}");
    assert_int_equal(RUN(cmd_guest_run, "start", "a"), CLI_EXIT_OK);
    assert_int_equal(RUN(cmd_guest_run, "stop", "a"), CLI_EXIT_OK);
    assert_int_equal(fx->fake.n, 2);
    assert_true(is_uuid(fx->fake.reqs[0].key));
    assert_true(is_uuid(fx->fake.reqs[1].key));
    assert_string_not_equal(fx->fake.reqs[0].key, fx->fake.reqs[1].key);
    assert_string_equal(fx->fake.reqs[1].url, "/v1/guests/a/stop");
}

/* A wait that ends with the guest not running is a failure. */
static void
test_wait_not_running_fails(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 201, "{\"name\":\"web1\",\"state\":\"pending\"}");
    assert_int_equal(RUN(cmd_guest_run, "create", "web1", "--template", "t", "--wait"),
                     CLI_EXIT_FAILURE);
    reply(fx, 200, "{\"name\":\"web1\",\"state\":\"error\"}");
    assert_int_equal(RUN(cmd_guest_run, "start", "web1", "--wait"), CLI_EXIT_FAILURE);
    /* Without --wait a pending guest is the expected answer. */
    reply(fx, 201, "{\"name\":\"web2\",\"state\":\"pending\"}");
    assert_int_equal(RUN(cmd_guest_run, "create", "web2", "--template", "t"), CLI_EXIT_OK);
    flush(fx);
    assert_string_equal(fx->fake.reqs[1].query, "wait=running");
    assert_non_null(strstr(fx->err, "guest web1 is error, not running, after the wait"));
}

/* stop --wait waits for "stopped", restart --wait for "running"; the final
 * state decides the exit code, and a refusal (409) is not 0. */
static void
test_stop_restart_wait(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200, "{\"name\":\"a\",\"state\":\"stopped\"}");
    assert_int_equal(RUN(cmd_guest_run, "stop", "a", "--wait", "--timeout", "9"), CLI_EXIT_OK);
    reply(fx, 200, "{\"name\":\"a\",\"state\":\"running\"}");
    assert_int_equal(RUN(cmd_guest_run, "stop", "a", "--wait"), CLI_EXIT_FAILURE);
    assert_int_equal(RUN(cmd_guest_run, "restart", "a", "--wait"), CLI_EXIT_OK);
    reply(fx, 409, "{\"error\":{\"code\":\"conflict\",\"message\":\"guest a is locked\"}}");
    assert_int_equal(RUN(cmd_guest_run, "restart", "a"), CLI_EXIT_CONFLICT);
    assert_int_equal(RUN(cmd_guest_run, "stop", "a", "--timeout", "9"), CLI_EXIT_USAGE);
    flush(fx);
    assert_string_equal(fx->fake.reqs[0].url, "/v1/guests/a/stop");
    assert_string_equal(fx->fake.reqs[0].query, "wait=stopped&timeout=9");
    assert_string_equal(fx->fake.reqs[2].url, "/v1/guests/a/restart");
    assert_string_equal(fx->fake.reqs[2].query, "wait=running");
    assert_non_null(strstr(fx->err, "guest a is running, not stopped, after the wait"));
}

/* The global --idempotency-key reaches any POST, not only create. */
static void
test_global_key_for_any_post(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200, "{\"state\":\"running\"}");
    fx->ctx.idempotency_key = "again-1";
    assert_int_equal(RUN(cmd_guest_run, "restart", "a"), CLI_EXIT_OK);
    assert_int_equal(RUN(cmd_node_run, "cordon", "h1"), CLI_EXIT_OK);
    assert_string_equal(fx->fake.reqs[0].key, "again-1");
    assert_string_equal(fx->fake.reqs[1].key, "again-1");
    assert_string_equal(fx->fake.reqs[1].url, "/v1/nodes/h1/cordon");
}

/* A PATCH that was sent is not repeated: a second attempt could report a
 * different outcome than the first, which may have been applied. */
static void
test_patch_not_retried_after_send(void **state)
{
    struct fixture *fx = *state;
    fx->fake.drop = 1;
    int rc = RUN(cmd_guest_run, "set", "web1", "--memory", "1G");
    flush(fx);
    assert_int_equal(rc, CLI_EXIT_UNREACHABLE);
    assert_int_equal(fx->fake.n, 1);
    assert_string_equal(fx->fake.reqs[0].method, "PATCH");
    assert_string_equal(fx->fake.reqs[0].key, ""); /* keys are for POST */
}

static void
test_status_exit_codes(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        unsigned status;
        int code;
    } cases[] = {
        {400, CLI_EXIT_USAGE},    {404, CLI_EXIT_NOT_FOUND}, {409, CLI_EXIT_CONFLICT},
        {422, CLI_EXIT_CONFLICT}, {500, CLI_EXIT_FAILURE},   {503, CLI_EXIT_FAILURE},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        reply(fx, cases[i].status,
              "{\"error\":{\"code\":\"x\",\"message\":\"it went wrong\",\"field\":\"name\"}}");
        int rc = RUN(cmd_guest_run, "show", "web1");
        if (rc != cases[i].code)
            print_error("status %u: exit %d\n", cases[i].status, rc);
        assert_int_equal(rc, cases[i].code);
    }
    flush(fx);
    assert_non_null(strstr(fx->err, "vfleet: it went wrong (field \"name\") [x]\n"));
}

static void
test_ip_add_rm_requests(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200, "{\"name\":\"web1\",\"generation\":3,\"ips\":[\"10.88.1.2\",\"10.88.1.3\"]}");

    assert_int_equal(RUN(cmd_guest_run, "ip", "add", "web1"), CLI_EXIT_OK);
    assert_int_equal(RUN(cmd_guest_run, "ip", "add", "web1", "2001:db8::7"), CLI_EXIT_OK);
    assert_int_equal(RUN(cmd_guest_run, "ip", "rm", "web1", "10.88.1.3"), CLI_EXIT_OK);
    flush(fx);
    assert_int_equal(fx->fake.n, 3);
    assert_string_equal(fx->fake.reqs[0].method, "POST");
    assert_string_equal(fx->fake.reqs[0].url, "/v1/guests/web1/ips");
    assert_string_equal(fx->fake.reqs[0].body, "{\"ip\":\"auto\"}");
    json_t *b = json_loads(fx->fake.reqs[1].body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "ip")), "2001:db8::7");
    json_decref(b);
    assert_string_equal(fx->fake.reqs[2].method, "DELETE");
    assert_string_equal(fx->fake.reqs[2].url, "/v1/guests/web1/ips/10.88.1.3");
    assert_non_null(strstr(fx->out, "guest web1 address added (generation 3): ips "
                                    "10.88.1.2,10.88.1.3\n"));
    /* Bad input is refused before anything is sent. */
    assert_int_equal(RUN(cmd_guest_run, "ip", "rm", "web1"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_guest_run, "ip", "add", "web1", "10.0.0.300"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_guest_run, "ip", "rm", "web1", "auto"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_guest_run, "ip", "flip", "web1"), CLI_EXIT_USAGE);
    assert_int_equal(fx->fake.n, 3);
}

static void
test_node_routes_table(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"node\":\"h1\",\"routes\":[{\"address\":\"10.88.1.2\",\"interface\":"
          "\"vf0123456789\",\"guest\":\"web1\"}]}");

    assert_int_equal(RUN(cmd_node_run, "routes", "h1"), CLI_EXIT_OK);
    flush(fx);
    assert_string_equal(fx->fake.reqs[0].url, "/v1/nodes/h1/routes");
    assert_non_null(strstr(fx->out, "ADDRESS"));
    assert_non_null(strstr(fx->out, "10.88.1.2"));
    assert_non_null(strstr(fx->out, "vf0123456789"));
    assert_non_null(strstr(fx->out, "web1"));
}

static void
test_not_found_message(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 404, "{\"error\":{\"code\":\"not_found\",\"message\":\"no guest \\\"ghost\\\"\"}}");
    assert_int_equal(RUN(cmd_guest_run, "rm", "ghost"), CLI_EXIT_NOT_FOUND);
    flush(fx);
    assert_string_equal(fx->fake.reqs[0].method, "DELETE");
    assert_string_equal(fx->err, "vfleet: no guest \"ghost\" [not_found]\n");
    assert_string_equal(fx->out, "");
}

static void
test_unplaceable_explains(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 422,
          "{\"error\":{\"code\":\"unplaceable\",\"message\":\"no node fits guest \\\"big\\\"\","
          "\"placement\":{\"nodes_evaluated\":3,\"nodes_feasible\":0,\"filters\":["
          "{\"filter\":\"memory\",\"rejected\":2,\"reason\":\"needs 64G\"},"
          "{\"filter\":\"cordoned\",\"rejected\":1}]}}}");
    assert_int_equal(RUN(cmd_guest_run, "create", "big", "--template", "t", "--memory", "64G"),
                     CLI_EXIT_CONFLICT);
    flush(fx);
    assert_string_equal(fx->err, "vfleet: no node fits guest \"big\" [unplaceable]\n"
                                 "  placement: 3 nodes evaluated, 0 feasible\n"
                                 "    memory: rejected 2 (needs 64G)\n"
                                 "    cordoned: rejected 1\n");
}

static void
test_usage_error_sends_nothing(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(RUN(cmd_guest_run, "create", "web1", "--memory", "1G"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_guest_run, "show", "NotAName"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_guest_run, "frobnicate"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_node_run, "cordon"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_pool_run, "create", "p", "--cidr", "10.0.0.1"), CLI_EXIT_USAGE);
    assert_int_equal(RUN(cmd_guest_run, "exec", "web1", "ls"), CLI_EXIT_USAGE);
    assert_int_equal(fx->fake.n, 0);
}

static void
test_json_prints_server_json(void **state)
{
    struct fixture *fx = *state;
    const char *g = "{\"name\":\"web1\",\"state\":\"running\",\"limits\":{\"memory\":268435456}}";
    reply(fx, 200, g);
    fx->ctx.json = true;
    assert_int_equal(RUN(cmd_guest_run, "show", "web1"), CLI_EXIT_OK);
    flush(fx);
    json_t *got = json_loads(fx->out, 0, NULL);
    json_t *want = json_loads(g, 0, NULL);
    assert_non_null(got);
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
}

/* `guest show` prints one row per limit of the limits table, each in its
 * unit: sizes as 256M, cores as 0.5, rates as 10mbit, "-" when not set. */
static void
test_guest_show_limits(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"name\":\"web1\",\"id\":\"0e09ecc8-1e2f-4a5b-8c9d-0123456789ab\",\"node\":\"h1\","
          "\"state\":\"running\",\"generation\":2,\"applied_generation\":2,"
          "\"template\":\"busybox\",\"ips\":[],\"labels\":{},\"flags\":[],"
          "\"limits\":{\"procs\":64,\"memory\":268435456,\"rss\":0,\"swap\":0,"
          "\"cpu_weight\":200,\"cpu_max\":0.5,\"cpu_burst\":0,\"io_weight\":0,"
          "\"disk\":1073741824,\"inodes\":0,\"nofile\":1024,\"tcp_sockets\":0,"
          "\"net_in\":10000000,\"net_out\":1500000000,\"io\":[]}}");
    assert_int_equal(RUN(cmd_guest_run, "show", "web1"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(strstr(fx->out, "limits:\n"
                                    "  procs:        64\n"
                                    "  memory:       256M\n"
                                    "  rss:          -\n"
                                    "  swap:         -\n"
                                    "  cpu_weight:   200\n"
                                    "  cpu_max:      0.5\n"
                                    "  cpu_burst:    -\n"
                                    "  io_weight:    -\n"
                                    "  disk:         1G\n"
                                    "  inodes:       -\n"
                                    "  nofile:       1024\n"
                                    "  tcp_sockets:  -\n"
                                    "  net_in:       10mbit\n"
                                    "  net_out:      1.5gbit\n"));
}

static void
test_node_ls_table(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"nodes\":[{\"name\":\"h1\",\"state\":\"ready\",\"cordoned\":false,"
          "\"labels\":{\"zone\":\"a\"},\"guests\":2,"
          "\"capacity\":{\"cpus\":8,\"memory\":17179869184,\"disk\":107374182400,"
          "\"max_guests\":100},"
          "\"allocated\":{\"cpus\":1.5,\"memory\":536870912,\"disk\":2147483648}},"
          "{\"name\":\"host-two\",\"state\":\"down\",\"cordoned\":true,\"labels\":{},"
          "\"guests\":0,\"capacity\":{\"cpus\":4,\"memory\":8589934592,\"disk\":0},"
          "\"allocated\":{}}]}");
    assert_int_equal(RUN(cmd_node_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_string_equal(fx->fake.reqs[0].url, "/v1/nodes");
    assert_string_equal(fx->out,
                        "NAME      STATE          GUESTS   CPUS    MEMORY     DISK  LABELS\n"
                        "h1        ready           2/100  1.5/8  512M/16G  2G/100G  zone=a\n"
                        "host-two  down,cordoned       0    0/4      0/8G      0/0  -\n");
}

/* A node's leftovers (guests' state with no record on it): in ls's state
 * when there are some, and in show always, "unknown" from an older agent. */
static void
test_node_leftovers(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"nodes\":[{\"name\":\"h1\",\"state\":\"ready\",\"cordoned\":true,"
          "\"labels\":{},\"guests\":0,\"leftovers\":2,"
          "\"capacity\":{\"cpus\":4,\"memory\":0,\"disk\":0},\"allocated\":{}},"
          "{\"name\":\"h2\",\"state\":\"ready\",\"cordoned\":false,\"labels\":{},"
          "\"guests\":0,\"leftovers\":0,"
          "\"capacity\":{\"cpus\":4,\"memory\":0,\"disk\":0},\"allocated\":{}},"
          "{\"name\":\"h3\",\"state\":\"ready\",\"cordoned\":false,\"labels\":{},"
          "\"guests\":0,\"leftovers\":null,"
          "\"capacity\":{\"cpus\":4,\"memory\":0,\"disk\":0},\"allocated\":{}}]}");
    assert_int_equal(RUN(cmd_node_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(strstr(fx->out, "h1    ready,cordoned,leftovers:2 "));
    assert_non_null(strstr(fx->out, "h2    ready "));
    assert_non_null(strstr(fx->out, "h3    ready "));
    assert_null(strstr(fx->out, "leftovers:0"));

    reply(fx, 200,
          "{\"name\":\"h1\",\"state\":\"ready\",\"cordoned\":false,\"labels\":{},"
          "\"guests\":0,\"leftovers\":2,\"capacity\":{\"cpus\":4},\"allocated\":{}}");
    assert_int_equal(RUN(cmd_node_run, "show", "h1"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(
        strstr(fx->out, "leftovers:  2 (vfleet-node leftovers on the node lists them)\n"));
    reply(fx, 200,
          "{\"name\":\"h3\",\"state\":\"ready\",\"cordoned\":false,\"labels\":{},"
          "\"guests\":0,\"leftovers\":null,\"capacity\":{\"cpus\":4},\"allocated\":{}}");
    assert_int_equal(RUN(cmd_node_run, "show", "h3"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(strstr(fx->out, "leftovers:  unknown\n"));
}

/* The CPU column counts against what placement uses: capacity times the
 * overcommit (7.5 cores placed on 2 overcommitted 4 times is 7.5/8). CSV
 * carries the same table. */
static void
test_node_overcommit_and_csv(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"nodes\":[{\"name\":\"h1\",\"state\":\"ready\",\"cordoned\":false,"
          "\"labels\":{\"zone\":\"a,b\"},\"guests\":15,"
          "\"capacity\":{\"cpus\":2,\"memory\":4294967296,\"disk\":0,\"max_guests\":100},"
          "\"allocated\":{\"cpus\":7.5,\"memory\":1073741824,\"disk\":0},"
          "\"usable\":{\"cpus\":8,\"memory\":4294967296,\"disk\":0},"
          "\"overcommit\":{\"cpus\":4,\"memory\":1,\"disk\":1}}]}");
    assert_int_equal(RUN(cmd_node_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(strstr(fx->out, "7.5/8 (2x4)"));
    assert_non_null(strstr(fx->out, "1G/4G  "));
    fx->ctx.format = CLI_FORMAT_CSV;
    assert_int_equal(RUN(cmd_node_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(strstr(fx->out, "NAME,STATE,GUESTS,CPUS,MEMORY,DISK,LABELS\r\n"
                                    "h1,ready,15/100,7.5/8 (2x4),1G/4G,0/0,\"zone=a,b\"\r\n"));
}

static void
test_yaml_and_templates(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"templates\":[{\"name\":\"busybox\",\"node_count\":2,\"consistent\":false,"
          "\"checksums\":[\"sha256:aa\",null],\"nodes\":[{\"node\":\"h1\",\"state\":"
          "\"ready\",\"size\":2097152,\"checksum\":\"sha256:aa\"},{\"node\":\"h2\","
          "\"state\":\"ready\",\"size\":0,\"checksum\":null}]},{\"name\":\"alpine\","
          "\"node_count\":0,\"consistent\":true,\"checksums\":[],\"nodes\":[],\"library\":"
          "{\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
          "\"digest\":\"00\",\"size\":1024,\"added_ms\":1}}]}");
    assert_int_equal(RUN(cmd_template_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_string_equal(fx->fake.reqs[0].url, "/v1/templates");
    assert_string_equal(fx->out, "TEMPLATE  NODES  SIZE  CHECKSUM  LIBRARY\n"
                                 "busybox   h1,h2  2M    differs   -\n"
                                 "alpine    0      -     -         sha256:0123456789ab\n");
    fx->ctx.json = true;
    fx->ctx.format = CLI_FORMAT_YAML;
    assert_int_equal(RUN(cmd_template_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_non_null(strstr(fx->out, "---\n"));
    assert_string_equal(strstr(fx->out, "---\n"), "---\n"
                                                  "templates:\n"
                                                  "  - name: busybox\n"
                                                  "    node_count: 2\n"
                                                  "    consistent: false\n"
                                                  "    checksums:\n"
                                                  "      - sha256:aa\n"
                                                  "      - null\n"
                                                  "    nodes:\n"
                                                  "      - node: h1\n"
                                                  "        state: ready\n"
                                                  "        size: 2097152\n"
                                                  "        checksum: sha256:aa\n"
                                                  "      - node: h2\n"
                                                  "        state: ready\n"
                                                  "        size: 0\n"
                                                  "        checksum: null\n"
                                                  "  - name: alpine\n"
                                                  "    node_count: 0\n"
                                                  "    consistent: true\n"
                                                  "    checksums: []\n"
                                                  "    nodes: []\n"
                                                  "    library:\n"
                                                  "      sha256: 0123456789abcdef0123456789abcdef"
                                                  "0123456789abcdef0123456789abcdef\n"
                                                  "      digest: \"00\"\n"
                                                  "      size: 1024\n"
                                                  "      added_ms: 1\n");
}

static void
test_guest_ls_filters_and_pages(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"guests\":[{\"name\":\"a\",\"state\":\"running\",\"node\":\"h1\","
          "\"generation\":2,\"applied_generation\":2,"
          "\"limits\":{\"cpu_max\":0.5,\"memory\":268435456,\"disk\":1073741824},"
          "\"ips\":[\"10.88.0.2\",\"fd00::2\"]}],\"next\":\"a\"}");
    fx->fake.reply2 = "{\"guests\":[{\"name\":\"b\",\"state\":\"pending\",\"generation\":3,"
                      "\"applied_generation\":1,\"limits\":{},\"ips\":[]}]}";
    assert_int_equal(
        RUN(cmd_guest_run, "ls", "--node", "h1", "--state", "running", "--label", "tier=web"),
        CLI_EXIT_OK);
    flush(fx);
    assert_int_equal(fx->fake.n, 2);
    assert_string_equal(fx->fake.reqs[0].query, "node=h1&state=running&label=tier=web");
    assert_string_equal(fx->fake.reqs[1].query, "node=h1&state=running&label=tier=web&after=a");
    assert_string_equal(fx->out, "NAME  STATE                   NODE  CPU  MEMORY  DISK  IPS\n"
                                 "a     running                 h1    0.5    256M    1G  "
                                 "10.88.0.2,fd00::2\n"
                                 "b     pending (applying 1/3)  -       -       -     -  -\n");
}

/* A master that hands back the same cursor cannot keep the CLI looping. */
static void
test_list_stuck_cursor_stops(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"pools\":[{\"name\":\"p\",\"cidr\":\"10.0.0.0/24\",\"size\":253,"
          "\"allocated\":1,\"family\":\"ipv4\"}],\"next\":\"p\"}");
    assert_int_equal(RUN(cmd_pool_run, "ls"), CLI_EXIT_OK);
    flush(fx);
    assert_int_equal(fx->fake.n, 2);
    assert_string_equal(fx->fake.reqs[1].query, "after=p");
    assert_string_equal(fx->out, "NAME  CIDR         GATEWAY  FAMILY   USED  SELECTOR\n"
                                 "p     10.0.0.0/24  -        ipv4    1/253  -\n"
                                 "p     10.0.0.0/24  -        ipv4    1/253  -\n");
}

static void
test_exec_exit_code_and_output(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 200,
          "{\"exit_code\":3,\"signal\":0,\"timed_out\":false,\"stdout\":\"hi\\n\","
          "\"stderr\":\"oops\\n\",\"truncated\":false}");
    assert_int_equal(RUN(cmd_guest_run, "exec", "web1", "--timeout", "5", "--", "sh", "-c",
                         "echo hi; echo oops >&2; exit 3"),
                     3);
    flush(fx);
    assert_string_equal(fx->out, "hi\n");
    assert_string_equal(fx->err, "oops\n");
    json_t *body = json_loads(fx->fake.reqs[0].body, 0, NULL);
    json_t *want = json_pack("{s:[s,s,s],s:i}", "argv", "sh", "-c",
                             "echo hi; echo oops >&2; exit 3", "timeout", 5);
    assert_true(json_equal(body, want));
    json_decref(body);
    json_decref(want);

    reply(fx, 200, "{\"exit_code\":null,\"signal\":9,\"stdout\":\"\",\"stderr\":\"\"}");
    assert_int_equal(RUN(cmd_guest_run, "exec", "web1", "--", "sleep", "100"), 128 + 9);
}

static void
test_pool_create_body(void **state)
{
    struct fixture *fx = *state;
    reply(fx, 201, "{\"name\":\"default\",\"cidr\":\"10.88.0.0/16\",\"size\":65534}");
    assert_int_equal(RUN(cmd_pool_run, "create", "default", "--cidr", "10.88.0.0/16", "--gateway",
                         "10.88.0.1", "--selector", "zone=a"),
                     CLI_EXIT_OK);
    flush(fx);
    json_t *body = json_loads(fx->fake.reqs[0].body, 0, NULL);
    json_t *want = json_pack("{s:s,s:s,s:s,s:{s:s}}", "name", "default", "cidr", "10.88.0.0/16",
                             "gateway", "10.88.0.1", "selector", "zone", "a");
    assert_true(json_equal(body, want));
    json_decref(body);
    json_decref(want);
    assert_true(is_uuid(fx->fake.reqs[0].key));
    assert_string_equal(fx->out, "pool default created: 10.88.0.0/16, 65534 addresses\n");

    reply(fx, 409, "{\"error\":{\"code\":\"conflict\",\"message\":\"pool has allocations\"}}");
    assert_int_equal(RUN(cmd_pool_run, "rm", "default"), CLI_EXIT_CONFLICT);
}

/* A port that was just bound and closed: nothing listens there, so the
 * connection is refused at once. */
static unsigned
closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void
test_unreachable_master(void **state)
{
    struct fixture *fx = *state;
    _cleanup_free_ char *url = xasprintf("http://127.0.0.1:%u", closed_port());
    http_client_t *dead = http_client_new(url);
    assert_non_null(dead);
    http_client_set_retries(dead, 2, 1);
    fx->ctx.http = dead;

    assert_int_equal(RUN(cmd_node_run, "ls"), CLI_EXIT_UNREACHABLE);
    flush(fx);
    _cleanup_free_ char *want = xasprintf("vfleet: master unreachable at %s: ", url);
    assert_non_null(strstr(fx->err, want));
    assert_non_null(strstr(fx->err, "(after 3 attempts)"));
    assert_null(strstr(fx->err, "idempotency-key")); /* a GET has nothing to repeat safely */

    /* A create that never arrived tells the operator how to retry without
     * risking a duplicate. */
    assert_int_equal(
        RUN(cmd_guest_run, "create", "web1", "--template", "t", "--idempotency-key", "retry-me"),
        CLI_EXIT_UNREACHABLE);
    flush(fx);
    assert_non_null(strstr(fx->err, "with --idempotency-key retry-me"));
    http_client_destroy(&dead);
}

/* The commands that act on one named object (`node show|routes|orphans|
 * cordon|uncordon|revoke NAME`, `pool rm`, `token rm`, `guest show|rm|usage|
 * traffic|console --log`) and the lists (`node|pool|token|guest|op ls`), byte for byte in every
 * output format, with their requests, exit codes, error messages and argument errors, against the
 * golden file cli/testdata/named.golden. VFLEET_GOLDEN_UPDATE=1 writes the
 * file anew from what the commands print (review its diff before commit). */
struct golden {
    const char *args;  /* argv, space-separated, the group first */
    unsigned status;   /* the canned master's status */
    const char *reply; /* and body */
    bool formats;      /* run in all four formats (else table and json) */
};

#define NODE_JSON                                                                                  \
    "{\"name\":\"h1\",\"state\":\"ready\",\"cordoned\":true,\"labels\":{\"zone\":\"a\"},"          \
    "\"guests\":3,\"capacity\":{\"cpus\":2,\"memory\":8589934592,\"disk\":107374182400,"           \
    "\"max_guests\":100},\"usable\":{\"cpus\":8,\"memory\":8589934592,\"disk\":107374182400},"     \
    "\"allocated\":{\"cpus\":2.5,\"memory\":1073741824,\"disk\":10737418240},"                     \
    "\"overcommit\":{\"cpus\":4},\"kernel\":\"6.18\",\"cgroup\":\"hybrid\",\"backend\":\"ctx\","   \
    "\"last_seen\":\"2025-01-02T03:04:05Z\"}"
#define GUEST_JSON                                                                                 \
    "{\"name\":\"web1\",\"id\":\"0a1b\",\"node\":\"h1\",\"state\":\"running\",\"generation\":4,"   \
    "\"applied_generation\":3,\"template\":\"busybox\",\"ips\":[\"10.0.0.2\",\"fd00::2\"],"        \
    "\"labels\":{\"app\":\"web\"},\"flags\":[\"private\"],\"created\":\"2025-01-01T00:00:00Z\","   \
    "\"updated\":\"2025-01-02T00:00:00Z\",\"message\":\"applying\",\"deleting\":true,"             \
    "\"limits\":{\"memory\":268435456,\"cpu_max\":0.5,\"procs\":64}}"
#define USAGE_JSON                                                                                 \
    "{\"time\":\"2025-01-02T03:04:05Z\",\"cpu_ns\":1500000000,\"memory\":268435456,"               \
    "\"rss\":1048576,\"disk_bytes\":5368709120,\"procs\":12,\"tcp_sockets\":3,"                    \
    "\"failcnt\":{\"oom\":1,\"tcp\":2}}"
#define TRAFFIC_JSON                                                                               \
    "{\"since\":\"2025-01-01T00:00:00Z\",\"sampled\":\"2025-01-02T00:00:00Z\",\"rx_bytes\":"       \
    "1048576,\"rx_packets\":1000,\"tx_bytes\":2048,\"tx_packets\":20}"
#define NOT_FOUND "{\"error\":{\"code\":\"not_found\",\"message\":\"no such \\\"x\\\"\"}}"

static const struct golden golden_cases[] = {
    {"node show h1", 200, NODE_JSON, true},
    {"node show h1", 404, NOT_FOUND, false},
    {"node show h1", 500, "", false},
    {"node show", 200, "{}", false},
    {"node show h1 h2", 200, "{}", false},
    {"node show Bad_Name", 200, "{}", false},
    {"node show --bogus h1", 200, "{}", false},
    {"node show --help", 200, "{}", false},
    {"node routes h1", 200,
     "{\"node\":\"h1\",\"routes\":[{\"address\":\"10.88.1.2\",\"interface\":\"vf0123456789\","
     "\"guest\":\"web1\"},{\"address\":\"fd00::2\",\"interface\":\"vf0123456789\",\"guest\":"
     "\"web,1\"}]}",
     true},
    {"node routes h1", 200, "{\"node\":\"h1\",\"routes\":[]}", true},
    {"node routes h1", 404, NOT_FOUND, false},
    {"node routes h1", 500, "", false},
    {"node routes", 200, "{}", false},
    {"node routes h1 x", 200, "{}", false},
    {"node routes -x h1", 200, "{}", false},
    {"node orphans h1", 200,
     "{\"orphans\":[{\"id\":\"0f3a\",\"name\":\"old1\",\"running\":true,\"ips\":[\"10.0.0.5\","
     "\"fd00::5\"],\"reason\":\"unknown to the master\"},{\"id\":\"0f3b\",\"name\":\"old2\","
     "\"running\":false,\"ips\":[],\"reason\":\"deleted\"}]}",
     true},
    {"node orphans h1", 200, "{\"orphans\":[]}", true},
    {"node orphans h1", 404, NOT_FOUND, false},
    {"node orphans", 200, "{}", false},
    {"node orphans ../x", 200, "{}", false},
    {"node cordon h1", 200, "{\"name\":\"h1\",\"cordoned\":true}", true},
    {"node cordon h1", 404, NOT_FOUND, false},
    {"node cordon", 200, "{}", false},
    {"node uncordon h1", 200, "{\"name\":\"h1\",\"cordoned\":false}", true},
    {"node uncordon h1 h2", 200, "{}", false},
    {"node revoke h1", 200, "{\"name\":\"h1\",\"revoked\":true}", true},
    {"node revoke h1", 409, "{\"error\":{\"code\":\"conflict\",\"message\":\"busy\"}}", false},
    {"node revoke --help", 200, "{}", false},
    {"pool rm p1", 200, "{\"name\":\"p1\"}", true},
    {"pool rm p1", 204, "", true},
    {"pool rm p1", 409, "{\"error\":{\"code\":\"in_use\",\"message\":\"allocated\"}}", false},
    {"pool rm", 200, "{}", false},
    {"pool rm --help", 200, "{}", false},
    {"token rm t1", 204, "", true},
    {"token rm t1", 200, "{\"id\":\"t1\"}", true},
    {"token rm t1", 403, "{\"error\":{\"code\":\"forbidden\",\"message\":\"admin only\"}}", false},
    {"token rm t1 t2", 200, "{}", false},
    {"guest show web1", 200, GUEST_JSON, true},
    {"guest show web1", 404, NOT_FOUND, false},
    {"guest show web1", 500, "", false},
    {"guest show", 200, "{}", false},
    {"guest show -h", 200, "{}", false},
    {"guest rm web1", 200, "{\"name\":\"web1\",\"state\":\"deleting\"}", true},
    {"guest rm web1", 204, "", true},
    {"guest rm web1", 202, "{\"name\":\"web1\",\"state\":\"running\",\"deleting\":true}", true},
    {"guest rm web1", 404, NOT_FOUND, false},
    {"guest rm web1 --bogus", 200, "{}", false},
    {"guest usage web1", 200, USAGE_JSON, true},
    {"guest usage web1", 404, NOT_FOUND, false},
    {"guest usage", 200, "{}", false},
    {"guest usage web1 web2", 200, "{}", false},
    {"guest traffic web1", 200, TRAFFIC_JSON, true},
    {"guest traffic web1 --reset", 200, "{\"since\":\"\",\"sampled\":\"2025-01-02T00:00:00Z\"}",
     true},
    {"guest traffic --reset web1", 404, NOT_FOUND, false},
    {"guest traffic", 200, "{}", false},
    {"guest traffic a b c", 200, "{}", false},
    {"guest traffic --bogus web1", 200, "{}", false},
    {"guest console web1 --log", 200,
     "{\"data\":\"login: \\u001b[1mhi\\u001b[0m\\nline2\\n\",\"dropped\":10}", true},
    {"guest console --log --bytes 100 web1", 200, "{\"data\":\"tail\\n\"}", true},
    {"guest console web1 --log", 404, NOT_FOUND, false},
    {"guest console --log", 200, "{}", false},
    {"guest console --log --bytes 0 web1", 200, "{}", false},
    {"guest console --bytes 5 web1", 200, "{}", false},
    {"guest console --log web1 web2", 200, "{}", false},
    {"guest console --log --what web1", 200, "{}", false},
    {"node ls", 200, "{\"nodes\":[" NODE_JSON "]}", true},
    {"node ls", 200, "{\"nodes\":[]}", true},
    {"node ls", 500, "", false},
    {"node ls x", 200, "{}", false},
    {"pool ls", 200,
     "{\"pools\":[{\"name\":\"p1\",\"cidr\":\"10.0.0.0/24\",\"gateway\":\"10.0.0.1\","
     "\"family\":4,\"size\":254,\"allocated\":3,\"selector\":{\"zone\":\"a\"}},{\"name\":"
     "\"p6\",\"cidr\":\"fd00::/48\",\"family\":\"ipv6\",\"size\":\"1208925819614629174706176\","
     "\"allocated\":1}]}",
     true},
    {"pool ls", 200, "[]", true},
    {"pool ls --bogus", 200, "{}", false},
    {"token ls", 200,
     "{\"tokens\":[{\"id\":\"t1\",\"role\":\"admin\",\"created\":\"2025-01-01T00:00:00Z\"},"
     "{\"id\":\"t2\",\"role\":\"tenant\",\"project\":\"p\",\"created\":\"2025-01-01\","
     "\"expires\":\"2025-02-01\",\"description\":\"ci, nightly\"}]}",
     true},
    {"token ls", 200, "{\"tokens\":[]}", true},
    {"token ls", 403, "{\"error\":{\"code\":\"forbidden\",\"message\":\"admin only\"}}", false},
    {"guest ls", 200, "{\"guests\":[" GUEST_JSON ",{\"name\":\"db\",\"state\":\"stopped\"}]}",
     true},
    {"guest ls --node h1 --label app=web", 200, "{\"guests\":[]}", true},
    {"guest ls", 200, "{\"nothing\":1}", false},
    {"op ls", 200,
     "{\"operations\":[{\"id\":\"o1\",\"kind\":\"move\",\"guest\":\"web1\",\"node\":\"h1\","
     "\"target\":\"h2\",\"state\":\"running\",\"step\":\"copy\"}]}",
     true},
    {"op ls --state done", 200, "{\"operations\":[]}", true},
};

/* Runs one case in one format and appends what happened to f. */
static void
golden_run(struct fixture *fx, const struct golden *c, enum cli_format format, FILE *f)
{
    static const char *const fmt_names[] = {"table", "json", "yaml", "csv"};
    _cleanup_free_ char *copy = xstrdup(c->args);
    char *argv[16], *save = NULL;
    int argc = 0;

    for (char *w = strtok_r(copy, " ", &save); w && argc < 15; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc] = NULL;
    pthread_mutex_lock(&fx->fake.lock);
    fx->fake.n = 0;
    memset(fx->fake.reqs, 0, sizeof(fx->fake.reqs));
    pthread_mutex_unlock(&fx->fake.lock);
    reply(fx, c->status, c->reply);
    fx->ctx.format = format;
    fx->ctx.json = format == CLI_FORMAT_JSON || format == CLI_FORMAT_YAML;
    flush(fx);
    size_t out0 = fx->out_len, err0 = fx->err_len;
    int (*run)(struct cli_ctx *, int, char **) = !strcmp(argv[0], "node")    ? cmd_node_run
                                                 : !strcmp(argv[0], "pool")  ? cmd_pool_run
                                                 : !strcmp(argv[0], "token") ? cmd_token_run
                                                 : !strcmp(argv[0], "op")    ? cmd_op_run
                                                                             : cmd_guest_run;
    int code = run(&fx->ctx, argc - 1, argv + 1);
    flush(fx);
    fprintf(f, "### %s | %s | %u\n", c->args, fmt_names[format], c->status);
    for (unsigned i = 0; i < fx->fake.n && i < FAKE_MAX_REQS; i++)
        fprintf(f, "> %s %s?%s %s\n", fx->fake.reqs[i].method, fx->fake.reqs[i].url,
                fx->fake.reqs[i].query, fx->fake.reqs[i].body);
    fprintf(f, "exit %d\n--- out\n%s\n--- err\n%s\n", code, fx->out + out0, fx->err + err0);
}

/* The text of a file, or NULL. Caller frees. */
static char *
golden_read(const char *path)
{
    char *s = NULL;
    size_t len = 0;
    FILE *in = fopen(path, "re");
    if (!in)
        return NULL;
    FILE *m = open_memstream(&s, &len);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, m);
    fclose(in);
    fclose(m);
    return s;
}

static void
test_named_golden(void **state)
{
    struct fixture *fx = *state;
    const char *src = getenv("VFLEET_SOURCE_DIR");
    char *got = NULL;
    size_t len = 0;

    if (!src) {
        print_message("named golden: VFLEET_SOURCE_DIR is not set (run it under ctest)\n");
        fail();
    }
    _cleanup_free_ char *path = xasprintf("%s/cli/testdata/named.golden", src);
    FILE *f = open_memstream(&got, &len);
    for (size_t i = 0; i < ARRAY_SIZE(golden_cases); i++) {
        const struct golden *c = &golden_cases[i];
        for (int fmt = CLI_FORMAT_TABLE; fmt <= CLI_FORMAT_CSV; fmt++)
            if (c->formats || fmt <= CLI_FORMAT_JSON)
                golden_run(fx, c, (enum cli_format)fmt, f);
    }
    fclose(f);
    if (getenv("VFLEET_GOLDEN_UPDATE")) {
        FILE *w = fopen(path, "we");
        assert_non_null(w);
        fputs(got, w);
        assert_int_equal(fclose(w), 0);
    }
    _cleanup_free_ char *want = golden_read(path);
    assert_non_null(want);
    if (strcmp(got, want) != 0) {
        size_t i = 0, line = 1;
        for (; got[i] && got[i] == want[i]; i++)
            line += got[i] == '\n';
        FILE *a = fopen("named.golden.actual", "we");
        if (a) {
            fputs(got, a);
            fclose(a);
        }
        print_error("named golden: differs at line %zu (what ran is in named.golden.actual)\n",
                    line);
    }
    assert_string_equal(got, want);
    free(got);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_sends_body_and_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_given_key_is_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_follow_sends_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_follow_unix_socket, setup_unix, teardown_unix),
        cmocka_unit_test_setup_teardown(test_ip_add_rm_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_routes_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_retry_keeps_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_differ_per_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_not_running_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_restart_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_restart_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_key_for_any_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patch_not_retried_after_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unplaceable_explains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_error_sends_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_prints_server_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_show_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_ls_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_overcommit_and_csv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_and_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_ls_filters_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_stuck_cursor_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_exit_code_and_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_create_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_golden, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
