/* Tests for master/httpd's access log: one line per request with method,
 * path, status, body bytes, duration and client (the address over TCP and
 * TLS, the peer's uid over the Unix socket), and how it ended when it did
 * not end well (an idle client cut by the timeout); none when it is turned
 * off. A real libmicrohttpd server (epoll, suspended connections), real
 * TCP and Unix socket clients, and libcurl over real TLS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "common/log.h"
#include "master/httpd.h"
#include "master/tls.h"

/* How the client reaches the server. */
enum transport {
    T_TCP,  /* plain HTTP over TCP, raw requests */
    T_UNIX, /* the Unix socket, raw requests */
    T_TLS,  /* HTTPS with libcurl, GETs of the paths in reqs */
};

struct fixture {
    uv_loop_t loop;          /* the server's loop, run by the test thread */
    httpd_t *httpd;          /* the server */
    enum transport t;        /* how the client talks */
    uint16_t port;           /* where it listens (TCP, TLS) */
    char sock[108];          /* its Unix socket (T_UNIX) */
    char cafile[200];        /* the self-signed certificate (T_TLS) */
    const char *reqs;        /* the raw requests (paths for T_TLS), one connection each,
                                '\f'-separated */
    unsigned idle_timeout_s; /* the server's idle timeout, 0 = default */
    uv_async_t done;         /* the client thread says it has finished */
};

static void
handler(struct http_req *req, void *userdata)
{
    if (strcmp(req->path, "/v1/teapot") == 0)
        httpd_error(req, 418, "teapot", NULL, "short and stout");
    else
        httpd_respond(req, 200, json_pack("{s:s}", "path", req->path));
}

static int
connect_to(const struct fixture *f)
{
    int fd;

    if (f->t == T_UNIX) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        strcpy(sun.sun_path, f->sock);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    } else {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(f->port)};
        inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    }
    return fd;
}

/* Sends one raw request and reads until the server closes. */
static void
send_raw(const struct fixture *f, const char *req)
{
    char buf[4096];
    int fd = connect_to(f);

    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
}

static size_t
discard(char *data, size_t size, size_t n, void *userdata)
{
    return size * n;
}

/* GET path over HTTPS, trusting the server's self-signed certificate. */
static void
send_tls(const struct fixture *f, const char *path)
{
    char url[256];
    long status = 0;
    CURL *c = curl_easy_init();

    snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", (unsigned)f->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, f->cafile);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    assert_true(status == 200 || status == 418);
    curl_easy_cleanup(c);
}

static void *
client(void *arg)
{
    struct fixture *f = arg;
    char *all = strdup(f->reqs), *save = NULL;

    for (char *r = strtok_r(all, "\f", &save); r; r = strtok_r(NULL, "\f", &save)) {
        if (f->t == T_TLS)
            send_tls(f, r);
        else
            send_raw(f, r);
    }
    free(all);
    /* The completion callback runs after the reply was sent: give it a moment. */
    usleep(200 * 1000);
    uv_async_send(&f->done);
    return NULL;
}

static void
on_done(uv_async_t *a)
{
    struct fixture *f = a->data;
    httpd_destroy(&f->httpd);
    uv_close((uv_handle_t *)&f->done, NULL);
}

/* Starts the server as f says (a free port found by trying). */
static void
start(struct fixture *f, const struct tls_creds *creds)
{
    int err = 0;

    if (f->t == T_UNIX) {
        snprintf(f->sock, sizeof(f->sock), "/tmp/vfleet-httpd-test-%d.sock", (int)getpid());
        struct httpd_config hc = {.unix_path = f->sock, .idle_timeout_s = f->idle_timeout_s};
        f->httpd = httpd_new(&f->loop, &hc, handler, NULL, &err);
        assert_non_null(f->httpd);
        return;
    }
    for (f->port = 17600 + (uint16_t)(getpid() % 300); !f->httpd; f->port++) {
        struct httpd_config hc = {
            .addr = "127.0.0.1",
            .port = f->port,
            .tls_cert = creds ? creds->cert_pem : NULL,
            .tls_key = creds ? creds->key_pem : NULL,
            .idle_timeout_s = f->idle_timeout_s,
        };
        f->httpd = httpd_new(&f->loop, &hc, handler, NULL, &err);
        assert_true(f->httpd || f->port < 17999);
    }
    f->port--;
}

/* Serves reqs over t and returns what the server logged (stderr). */
static char *
serve_with(enum transport t, const char *reqs, unsigned idle_timeout_s)
{
    struct fixture f = {.t = t, .reqs = reqs, .idle_timeout_s = idle_timeout_s};
    struct tls_creds creds = {0};
    char path[] = "/tmp/vfleet-httpd-test-XXXXXX", dir[] = "/tmp/vfleet-httpd-tls-XXXXXX";
    char why[256];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    pthread_t th;

    assert_true(fd >= 0);
    unlink(path);
    if (t == T_TLS) {
        assert_non_null(mkdtemp(dir));
        assert_int_equal(tls_self_signed(dir, NULL, &creds, why, sizeof(why)), 0);
        snprintf(f.cafile, sizeof(f.cafile), "%s/api.crt", dir);
    }
    uv_loop_init(&f.loop);
    start(&f, t == T_TLS ? &creds : NULL);
    uv_async_init(&f.loop, &f.done, on_done);
    f.done.data = &f;
    dup2(fd, STDERR_FILENO);
    pthread_create(&th, NULL, client, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    uv_loop_close(&f.loop);
    tls_creds_clear(&creds);
    if (t == T_TLS) {
        static const char *const files[] = {"api.crt", "api.key"};
        for (size_t i = 0; i < 2; i++) {
            snprintf(f.cafile, sizeof(f.cafile), "%s/%s", dir, files[i]);
            unlink(f.cafile);
        }
        assert_int_equal(rmdir(dir), 0);
    }
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

static char *
serve(const char *reqs)
{
    return serve_with(T_TCP, reqs, 0);
}

static void
test_access_text(void **state)
{
    log_setup("httpd_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_TEXT);
    log_access_enabled = true;
    char *out = serve("GET /v1/ok HTTP/1.0\r\n\r\n\f"
                      "GET /v1/teapot HTTP/1.0\r\n\r\n\f"
                      "POST /v1/x HTTP/1.0\r\nContent-Length: 4\r\n\r\n{bad");
    /* Bytes are the bodies: {"path":"/v1/ok"} is 17, the teapot error 55. */
    assert_non_null(strstr(out, " info: http method=GET path=/v1/ok status=200 bytes=17 "));
    assert_non_null(
        strstr(out, " info: http method=GET path=/v1/teapot status=418 bytes=55 duration_ms="));
    assert_non_null(strstr(out, " info: http method=POST path=/v1/x status=400 "));
    assert_non_null(strstr(out, " client=127.0.0.1\n"));
    assert_null(strstr(out, " end="));
    free(out);
}

static void
test_access_json(void **state)
{
    json_error_t jerr;

    log_setup("httpd_test", LOG_SINK_STDERR, LOG_INFO);
    log_set_format(LOG_FORMAT_JSON);
    log_access_enabled = true;
    char *out = serve("GET /v1/teapot HTTP/1.0\r\n\r\n");
    log_set_format(LOG_FORMAT_TEXT);
    json_t *j = json_loads(out, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "http");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/teapot");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 418);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 55);
    assert_true(json_number_value(json_object_get(j, "duration_ms")) >= 0);
    assert_string_equal(json_string_value(json_object_get(j, "client")), "127.0.0.1");
    assert_null(json_object_get(j, "end"));
    json_decref(j);
    free(out);
}

/* Over the Unix socket the client is the peer's uid. */
static void
test_access_unix(void **state)
{
    char want[64];

    log_setup("httpd_test", LOG_SINK_STDERR, LOG_INFO);
    log_access_enabled = true;
    char *out = serve_with(T_UNIX, "GET /v1/ok HTTP/1.0\r\n\r\n", 0);
    snprintf(want, sizeof(want), " client=unix uid=%u\n", (unsigned)getuid());
    assert_non_null(strstr(out, " info: http method=GET path=/v1/ok status=200 bytes=17 "));
    assert_non_null(strstr(out, want));
    free(out);
}

static void
test_access_tls(void **state)
{
    log_setup("httpd_test", LOG_SINK_STDERR, LOG_INFO);
    log_access_enabled = true;
    char *out = serve_with(T_TLS, "/v1/ok\f/v1/teapot", 0);
    assert_non_null(strstr(out, " info: http method=GET path=/v1/ok status=200 bytes=17 "));
    assert_non_null(strstr(out, " info: http method=GET path=/v1/teapot status=418 bytes=55 "));
    assert_non_null(strstr(out, " client=127.0.0.1\n"));
    free(out);
}

/* A client that sends its headers and part of its body, then nothing: the
 * idle timeout cuts it, and the line says so (no status was sent). */
static void
test_access_timeout(void **state)
{
    log_setup("httpd_test", LOG_SINK_STDERR, LOG_INFO);
    log_access_enabled = true;
    char *out =
        serve_with(T_TCP, "POST /v1/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}", 1);
    assert_non_null(strstr(out, " info: http method=POST path=/v1/slow status=0 bytes=0 "));
    assert_non_null(strstr(out, " client=127.0.0.1 end=timeout\n"));
    free(out);
}

static void
test_access_off(void **state)
{
    log_setup("httpd_test", LOG_SINK_STDERR, LOG_INFO);
    log_access_enabled = false;
    char *out = serve("GET /v1/ok HTTP/1.0\r\n\r\n");
    log_access_enabled = true;
    assert_null(strstr(out, " http "));
    free(out);
    /* Below info, the access log is quiet too. */
    log_setup("httpd_test", LOG_SINK_STDERR, LOG_NOTICE);
    out = serve("GET /v1/ok HTTP/1.0\r\n\r\n");
    assert_null(strstr(out, " http "));
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_text),    cmocka_unit_test(test_access_json),
        cmocka_unit_test(test_access_unix),    cmocka_unit_test(test_access_tls),
        cmocka_unit_test(test_access_timeout), cmocka_unit_test(test_access_off),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return r;
}
