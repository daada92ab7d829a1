/* Tests for master/httpd's access log: one line per request with method,
 * path, status, body bytes, duration and client address, on a real
 * libmicrohttpd server and a real TCP client; none when it is turned off. */
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
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "common/log.h"
#include "master/httpd.h"

struct fixture {
    uv_loop_t loop;   /* the server's loop, run by the test thread */
    httpd_t *httpd;   /* the server */
    uint16_t port;    /* where it listens */
    const char *reqs; /* the raw requests the client sends, one connection each, '\f'-separated */
    uv_async_t done;  /* the client thread says it has finished */
};

static void
handler(struct http_req *req, void *userdata)
{
    if (strcmp(req->path, "/v1/teapot") == 0)
        httpd_error(req, 418, "teapot", NULL, "short and stout");
    else
        httpd_respond(req, 200, json_pack("{s:s}", "path", req->path));
}

static void
send_one(uint16_t port, const char *req)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    char buf[4096];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    close(fd);
}

static void *
client(void *arg)
{
    struct fixture *f = arg;
    char *all = strdup(f->reqs), *save = NULL;

    for (char *r = strtok_r(all, "\f", &save); r; r = strtok_r(NULL, "\f", &save))
        send_one(f->port, r);
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

/* Serves reqs and returns what the server logged (stderr). */
static char *
serve(const char *reqs)
{
    struct fixture f = {.reqs = reqs};
    char path[] = "/tmp/vfleet-httpd-test-XXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO), err = 0;
    pthread_t t;

    assert_true(fd >= 0);
    unlink(path);
    uv_loop_init(&f.loop);
    for (f.port = 17600 + (uint16_t)(getpid() % 300); !f.httpd; f.port++) {
        f.httpd = httpd_new(&f.loop, "127.0.0.1", f.port, handler, NULL, &err);
        assert_true(f.httpd || f.port < 17999);
    }
    f.port--;
    uv_async_init(&f.loop, &f.done, on_done);
    f.done.data = &f;
    dup2(fd, STDERR_FILENO);
    pthread_create(&t, NULL, client, &f);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    uv_loop_close(&f.loop);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
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
    json_decref(j);
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
        cmocka_unit_test(test_access_text),
        cmocka_unit_test(test_access_json),
        cmocka_unit_test(test_access_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
