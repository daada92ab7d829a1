/* The master's HTTP server: libmicrohttpd in front, the master's loop behind.
 *
 * The master is a single-writer actor: all state lives on one libuv loop
 * thread. libmicrohttpd runs one epoll thread per listener (a TCP one, with
 * TLS unless turned off, and a Unix socket one for root on the master's
 * host); no thread is tied to a connection, so hundreds of idle or slow
 * clients cost a file descriptor and a little memory each, never a thread,
 * and never block anyone else. A connection that has sent its whole request
 * (JSON bodies with jansson, at most HTTPD_MAX_BODY bytes) is suspended
 * (MHD_suspend_connection) and handed to the loop thread through a queue
 * and a uv_async; the loop's answer resumes it. The handler may answer at
 * once or keep the request and answer later (a create with ?wait=running
 * answers when the guest runs), as long as it answers exactly once. A
 * request the loop does not answer within HTTPD_MAX_WAIT_S gets a 503.
 *
 * Bounds: at most max_conns connections per listener, max_per_addr from one
 * client address, and a connection idle for idle_timeout_s (no request in
 * progress, or a request that stopped arriving) is closed. A suspended
 * connection (the loop is working on it) has no idle timeout. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HTTPD_MAX_BODY     (4u << 20) /* bytes of request body */
#define HTTPD_MAX_WAIT_S   600        /* the longest a request may be held */
#define HTTPD_MAX_CONNS    1000       /* default connections per listener */
#define HTTPD_MAX_PER_ADDR 64         /* default connections from one client address */
#define HTTPD_IDLE_S       30         /* default idle timeout, seconds */
#define HTTPD_MAX_HEADERS  4          /* extra response headers per request */

typedef struct httpd httpd_t;

/* Where the server listens. */
struct httpd_config {
    const char *addr;        /* TCP listen address (IPv4 text), NULL = no TCP listener */
    uint16_t port;           /* its port */
    const char *tls_cert;    /* PEM certificate (chain) for TCP, NULL = plain HTTP; copied */
    const char *tls_key;     /* PEM private key of tls_cert; copied */
    const char *unix_path;   /* Unix socket path (made 0600, a stale one replaced), NULL = none */
    unsigned max_conns;      /* connections per listener, 0 = HTTPD_MAX_CONNS */
    unsigned max_per_addr;   /* connections from one TCP client address, 0 = HTTPD_MAX_PER_ADDR */
    unsigned idle_timeout_s; /* idle connections are closed after this, 0 = HTTPD_IDLE_S */
};

/* Who is on the other end of a request's connection. */
struct http_peer {
    bool unix_socket; /* it came over the Unix socket */
    int64_t uid;      /* the peer process's uid (SO_PEERCRED) on the Unix socket, else -1 */
    bool tls;         /* it came over TLS */
};

/* One request, owned by the server. Read-only for the handler except through
 * httpd_respond. */
struct http_req {
    const char *method;     /* "GET", "POST", "PATCH", "DELETE", ... */
    const char *route;      /* the route's name once the handler set it ("guest.get"), or NULL */
    const char *path;       /* the URL path, no query */
    json_t *body;           /* parsed JSON body, NULL when there was none */
    const char *body_error; /* set when a body was sent but is not JSON (400) */
    const char *idem_key;   /* Idempotency-Key header, NULL when absent */
    struct http_peer peer;  /* the connection's other end */
    void *internal;         /* the server's connection state */
};

/* Runs on the loop thread for every request. */
typedef void (*httpd_handler)(struct http_req *req, void *userdata);

/* Starts listening as cfg says. Returns NULL and sets *err on failure
 * (-EADDRINUSE, -EINVAL for a bad address or certificate, -errno of the
 * Unix socket). */
httpd_t *httpd_new(uv_loop_t *loop, const struct httpd_config *cfg, httpd_handler handler,
                   void *userdata, int *err);
/* Serves the files under dir (copied) for GET and HEAD requests whose path
 * is outside /v1/, /healthz and /metrics, in the connection thread: "/" is
 * index.html, a path with a ".." or "." segment, a hidden file or anything
 * but a regular file is a 404, Content-Type follows the extension. Call
 * before the first request; NULL turns it off. */
void httpd_set_static(httpd_t *h, const char *dir);
/* Stops accepting and closes every connection. Requests still queued are
 * handed to the handler one last time, and any the handler still holds are
 * answered 503 (the caller should have answered them first; its late
 * httpd_respond is then only freed). Loop thread only; NULL-safe; clears *p. The memory
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
/* Requests handed over that the loop has not taken yet (tests: requests
 * that arrive while the loop is busy are taken together). Any thread. */
unsigned httpd_queued(httpd_t *h);
/* Takes over the connection of a 101 answer (libmicrohttpd's thread, once
 * the answer is sent): sock is the client's stream (a socket pair end
 * when TLS is on), extra the bytes the client sent after its request. The
 * taker reads and writes sock and must end with
 * MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE), never close(sock). */
typedef void (*httpd_upgrade_fn)(void *userdata, int sock, void *urh, const char *extra,
                                 size_t extra_len);
/* Answers req with "101 Switching Protocols" and the headers set with
 * httpd_set_header; fn gets the connection. Loop thread; instead of
 * httpd_respond. */
void httpd_upgrade(struct http_req *req, httpd_upgrade_fn fn, void *userdata);
/* Adds a response header (at most HTTPD_MAX_HEADERS per request; both
 * strings are copied). Call before httpd_respond. */
void httpd_set_header(struct http_req *req, const char *name, const char *value);
/* Answers with {"error":{"code":code,"message":message[,"field":field]}}. */
void httpd_error(struct http_req *req, unsigned status, const char *code, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The value of query parameter name (matched exactly, case included; the
 * first when it is repeated), NULL when absent or without a value. Valid
 * until respond. */
const char *httpd_query(const struct http_req *req, const char *name);
/* Calls fn with every query parameter in the order they came (value NULL
 * when one came without "="), until fn returns non-zero; returns that, or 0. */
typedef int (*httpd_query_fn)(void *userdata, const char *name, const char *value);
int httpd_query_each(const struct http_req *req, httpd_query_fn fn, void *userdata);
/* Request headers, case-insensitive. */
const char *httpd_header(const struct http_req *req, const char *name);
