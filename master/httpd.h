/* The master's HTTP server: libmicrohttpd in front, the master's loop behind.
 *
 * The master is a single-writer actor: all state lives on one libuv loop
 * thread. libmicrohttpd runs a thread per connection; each reads and parses
 * its request (JSON bodies with jansson, at most HTTPD_MAX_BODY bytes), hands
 * it to the loop thread through a queue and a uv_async, and sleeps until the
 * loop answers. The handler may answer at once or keep the request and
 * answer later (a create with ?wait=running answers when the guest runs), as
 * long as it answers exactly once. A request the loop does not answer within
 * HTTPD_MAX_WAIT_S gets a 503. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HTTPD_MAX_BODY    (4u << 20) /* bytes of request body */
#define HTTPD_MAX_WAIT_S  600        /* the longest a request may be held */
#define HTTPD_MAX_CONNS   256        /* concurrent connections (one thread each) */
#define HTTPD_MAX_HEADERS 4          /* extra response headers per request */

typedef struct httpd httpd_t;

/* One request, owned by the server. Read-only for the handler except through
 * httpd_respond. */
struct http_req {
    const char *method;     /* "GET", "POST", "PATCH", "DELETE", ... */
    const char *route;      /* the route's name once the handler set it ("guest.get"), or NULL */
    const char *path;       /* the URL path, no query */
    json_t *body;           /* parsed JSON body, NULL when there was none */
    const char *body_error; /* set when a body was sent but is not JSON (400) */
    const char *idem_key;   /* Idempotency-Key header, NULL when absent */
    void *internal;         /* the server's connection state */
};

/* Runs on the loop thread for every request. */
typedef void (*httpd_handler)(struct http_req *req, void *userdata);

/* Starts listening on addr:port ("127.0.0.1", 7400). Returns NULL and sets
 * *err on failure. */
httpd_t *httpd_new(uv_loop_t *loop, const char *addr, uint16_t port, httpd_handler handler,
                   void *userdata, int *err);
/* Serves the files under dir (copied) for GET and HEAD requests whose path
 * is outside /v1/, /healthz and /metrics, in the connection thread: "/" is
 * index.html, a path with a ".." or "." segment, a hidden file or anything
 * but a regular file is a 404, Content-Type follows the extension. Call
 * before the first request; NULL turns it off. */
void httpd_set_static(httpd_t *h, const char *dir);
/* Stops accepting and joins the connection threads. Requests still queued are
 * handed to the handler one last time; the caller must have answered every
 * request it holds first. Loop thread only; NULL-safe; clears *p. The memory
 * is freed when the loop runs the async handle's close callback. */
void httpd_destroy(httpd_t **p);

/* Answers req with status and body (stolen; NULL for no body). Loop thread
 * only; exactly once per request. */
void httpd_respond(struct http_req *req, unsigned status, json_t *body);
/* Answers req with status and a body of another type than JSON (text and
 * its len bytes stolen; content_type copied). Loop thread only; exactly once. */
void httpd_respond_text(struct http_req *req, unsigned status, const char *content_type, char *text,
                        size_t len);
/* Answers req with status and a body that stays open (http_stream.h): the
 * stream's reference for the connection is taken here. */
struct http_stream;
void httpd_respond_stream(struct http_req *req, unsigned status, const char *content_type,
                          struct http_stream *stream);
/* Called on the loop thread for every answer, before it goes (metrics). */
typedef void (*httpd_observer)(void *userdata, const struct http_req *req, unsigned status);
void httpd_set_observer(httpd_t *h, httpd_observer fn, void *userdata);
/* Adds a response header (at most HTTPD_MAX_HEADERS per request; both
 * strings are copied). Call before httpd_respond. */
void httpd_set_header(struct http_req *req, const char *name, const char *value);
/* Answers with {"error":{"code":code,"message":message[,"field":field]}}. */
void httpd_error(struct http_req *req, unsigned status, const char *code, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The value of query parameter name, NULL when absent. Valid until respond. */
const char *httpd_query(const struct http_req *req, const char *name);
/* Request headers, case-insensitive. */
const char *httpd_header(const struct http_req *req, const char *name);
