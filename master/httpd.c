#include "master/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/http_stream.h"
#include "master/httpd_static.h"
#include "master/jtext.h"

/* Where a request is. The connection's thread (libmicrohttpd's) and the
 * loop thread hand it to each other; the lock guards the moves. */
enum pending_state {
    P_READING,  /* the request is arriving (libmicrohttpd's thread) */
    P_QUEUED,   /* suspended, in the inbox or with the handler (the loop's) */
    P_ANSWERED, /* the answer is set and the connection resumed (libmicrohttpd's again) */
};

/* A request in flight: built by libmicrohttpd's thread, answered by the loop. */
struct pending {
    struct http_req req;                 /* what the handler sees */
    struct MHD_Connection *conn;         /* the connection, for queries and headers */
    char *upload;                        /* body bytes received so far */
    size_t upload_len;                   /* bytes in upload */
    bool too_large;                      /* the body went past HTTPD_MAX_BODY */
    char *path;                          /* copy of the URL path */
    char *method;                        /* copy of the method */
    enum pending_state state;            /* who has it */
    struct pending *next;                /* in the server's inbox */
    struct pending *held_prev;           /* in the loop's list of held requests */
    struct pending *held_next;           /* (loop thread only) */
    uint64_t deadline;                   /* monotonic ms when the server answers 503 itself */
    bool expired;                        /* answered 503 by the server: the handler still owes
                                            its httpd_respond, which then only frees */
    bool handler_done;                   /* an expired request's handler answered */
    bool conn_gone;                      /* an expired request's connection completed */
    bool counted;                        /* in the server's inflight count */
    unsigned status;                     /* HTTP status */
    char *response;                      /* the body, malloc'd, or NULL */
    size_t response_len;                 /* its bytes */
    char *content_type;                  /* its type, NULL = JSON */
    http_stream_t *stream;               /* a body that stays open, instead of response */
    char *headers[HTTPD_MAX_HEADERS][2]; /* extra response headers (name, value), owned */
    struct httpd_upgrade *upgrade;       /* a 101 that hands the socket over, or NULL */
    struct timespec start;               /* when its headers were in (CLOCK_MONOTONIC), for the
                                            access log */
    unsigned sent_status;                /* the status sent (access log), 0 = none */
    uint64_t sent_bytes;                 /* body bytes sent (access log) */
    http_stream_t *sent_stream;          /* or the stream sent, whose bytes count (referenced) */
};

/* Who gets the socket of a 101 answer (libmicrohttpd's thread calls it).
 * Freed once the socket is handed over; a client that went away before the
 * 101 was sent leaves it behind (libmicrohttpd never calls back then). */
struct httpd_upgrade {
    httpd_upgrade_fn fn; /* the taker */
    void *userdata;      /* its argument */
};

struct httpd;

/* One listening socket and its libmicrohttpd daemon. */
struct listener {
    struct httpd *h;           /* the server */
    struct MHD_Daemon *daemon; /* its epoll thread */
    bool unix_socket;          /* a Unix socket: peers are identified by SO_PEERCRED */
    bool tls;                  /* TLS on this listener */
};

struct httpd {
    struct listener tcp;     /* the TCP listener (daemon NULL when none) */
    struct listener local;   /* the Unix socket listener (daemon NULL when none) */
    char *unix_path;         /* the socket's path, removed at destroy */
    char *tls_cert;          /* PEM copies: libmicrohttpd keeps pointers to them */
    char *tls_key;           /* ... */
    uv_loop_t *loop;         /* the loop handlers run on */
    uv_async_t wake;         /* wakes the loop when the inbox has work */
    uv_timer_t expiry;       /* answers requests held too long */
    unsigned open_handles;   /* wake and expiry not yet closed */
    pthread_mutex_t lock;    /* guards inbox, request states and stopping */
    struct pending *inbox;   /* requests waiting for the loop (LIFO, reversed on drain) */
    struct pending *held;    /* requests the handler has (loop thread only) */
    httpd_handler handler;   /* the master's request handler */
    void *userdata;          /* passed to handler */
    bool stopping;           /* httpd_destroy runs: refuse new requests */
    unsigned inflight;       /* requests handed over whose exchange has not completed */
    pthread_cond_t drained;  /* signalled when inflight drops to 0 */
    char *static_dir;        /* web UI files, NULL = none */
    httpd_observer observer; /* told of every answer (loop thread), NULL = none */
    void *observer_data;     /* passed to observer */
};

#define HTTPD_DRAIN_S 2 /* how long httpd_destroy lets given answers go out */

#define HTTPD_MAX_STATIC   (8u << 20) /* bytes of one static file */
#define HTTPD_EXPIRY_MS    1000       /* how often held requests are checked */
#define HTTPD_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static void
on_handle_closed(uv_handle_t *handle)
{
    httpd_t *h = handle->data;

    if (--h->open_handles == 0)
        free(h);
}

static void
pending_free(struct pending *p)
{
    json_decref(p->req.body);
    free(p->upload);
    free(p->path);
    free(p->method);
    free(p->response);
    free(p->content_type);
    if (p->stream)
        http_stream_abandon(p->stream);
    http_stream_unref(p->sent_stream);
    for (size_t i = 0; i < HTTPD_MAX_HEADERS; i++) {
        free(p->headers[i][0]);
        free(p->headers[i][1]);
    }
    free(p->upgrade);
    free(p);
}

static httpd_t *
server_of(struct pending *p)
{
    return p->req.internal;
}

static char *
error_text(const char *code, const char *message)
{
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* ---- the loop's side ---------------------------------------------------- */

static void
held_add(httpd_t *h, struct pending *p)
{
    p->deadline = time_mono_ms() + (uint64_t)HTTPD_MAX_WAIT_S * 1000;
    p->held_prev = NULL;
    p->held_next = h->held;
    if (h->held)
        h->held->held_prev = p;
    h->held = p;
}

static void
held_remove(httpd_t *h, struct pending *p)
{
    if (p->held_prev)
        p->held_prev->held_next = p->held_next;
    else if (h->held == p)
        h->held = p->held_next;
    if (p->held_next)
        p->held_next->held_prev = p->held_prev;
    p->held_prev = p->held_next = NULL;
}

/* Hands the answer (a body of len bytes and its type, or a stream; both
 * stolen) to libmicrohttpd's thread. p must not be touched after (the
 * connection may complete and free it at once), unless it expired. */
static void
finish_body(httpd_t *h, struct pending *p, unsigned status, char *text, size_t len,
            const char *type, http_stream_t *stream)
{
    struct MHD_Connection *conn = p->conn;

    pthread_mutex_lock(&h->lock);
    p->status = status;
    p->response = text;
    p->response_len = len;
    p->content_type = type ? xstrdup(type) : NULL;
    p->stream = stream;
    p->state = P_ANSWERED;
    pthread_mutex_unlock(&h->lock);
    MHD_resume_connection(conn);
}

/* Hands the answer to libmicrohttpd's thread. p must not be touched after
 * (the connection may complete and free it at once), unless it expired. */
static void
finish(httpd_t *h, struct pending *p, unsigned status, char *text)
{
    finish_body(h, p, status, text, text ? strlen(text) : 0, NULL, NULL);
}

static void
on_wake(uv_async_t *a)
{
    httpd_t *h = a->data;
    struct pending *list, *rev = NULL;

    pthread_mutex_lock(&h->lock);
    list = h->inbox;
    h->inbox = NULL;
    pthread_mutex_unlock(&h->lock);
    /* The inbox is a stack; handle requests in arrival order. */
    while (list) {
        struct pending *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct pending *n = rev->next;
        held_add(h, rev);
        h->handler(&rev->req, h->userdata);
        rev = n;
    }
}

/* Answers 503 for a request the handler still holds; its own answer, when
 * it comes, is only freed. */
static void
expire(httpd_t *h, struct pending *p, const char *why)
{
    held_remove(h, p);
    p->expired = true;
    finish(h, p, 503, error_text("unavailable", why));
}

static void
on_expiry(uv_timer_t *t)
{
    httpd_t *h = t->data;
    uint64_t now = time_mono_ms();

    for (struct pending *p = h->held, *n; p; p = n) {
        n = p->held_next;
        if (p->deadline <= now) {
            log_warning("http %s %s was not answered in %d s, answering 503", p->method, p->path,
                        HTTPD_MAX_WAIT_S);
            expire(h, p, "the master did not answer in time");
        }
    }
}

/* The handler's answer: a body of len bytes of type (NULL = JSON), or a
 * stream; both stolen. */
static void
answer(struct http_req *req, unsigned status, const char *type, char *text, size_t len,
       http_stream_t *stream)
{
    struct pending *p = container_of(req, struct pending, req);
    httpd_t *h = server_of(p);

    if (h->observer)
        h->observer(h->observer_data, req, status);
    if (p->expired) {
        /* The client got a 503 already; nobody reads this answer. */
        free(text);
        if (stream)
            http_stream_abandon(stream);
        pthread_mutex_lock(&h->lock);
        bool free_it = p->conn_gone;
        p->handler_done = true;
        pthread_mutex_unlock(&h->lock);
        if (free_it)
            pending_free(p);
        return;
    }
    held_remove(h, p);
    finish_body(h, p, status, text, len, type, stream);
}

void
httpd_respond(struct http_req *req, unsigned status, json_t *body)
{
    /* json_dumps's bytes, cheaper (jtext.h); json_dumps past 2048 levels. */
    char *text = body ? jtext_dumps(body, true) : NULL;
    if (body && !text)
        text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(body);
    answer(req, status, NULL, text, text ? strlen(text) : 0, NULL);
}

void
httpd_respond_text(struct http_req *req, unsigned status, const char *content_type, char *text,
                   size_t len)
{
    answer(req, status, content_type, text, len, NULL);
}

void
httpd_respond_stream(struct http_req *req, unsigned status, const char *content_type,
                     http_stream_t *stream)
{
    answer(req, status, content_type, NULL, 0, stream);
}

void
httpd_set_observer(httpd_t *h, httpd_observer fn, void *userdata)
{
    h->observer = fn;
    h->observer_data = userdata;
}

unsigned
httpd_queued(httpd_t *h)
{
    unsigned n = 0;

    pthread_mutex_lock(&h->lock);
    for (struct pending *p = h->inbox; p; p = p->next)
        n++;
    pthread_mutex_unlock(&h->lock);
    return n;
}

void
httpd_upgrade(struct http_req *req, httpd_upgrade_fn fn, void *userdata)
{
    struct pending *p = container_of(req, struct pending, req);

    if (!p->expired) {
        p->upgrade = xcalloc(1, sizeof(*p->upgrade));
        *p->upgrade = (struct httpd_upgrade){fn, userdata};
    }
    httpd_respond(req, 101, NULL);
}

void
httpd_set_header(struct http_req *req, const char *name, const char *value)
{
    struct pending *p = container_of(req, struct pending, req);

    for (size_t i = 0; i < HTTPD_MAX_HEADERS; i++)
        if (!p->headers[i][0]) {
            p->headers[i][0] = xstrdup(name);
            p->headers[i][1] = xstrdup(value);
            return;
        }
}

void
httpd_error(struct http_req *req, unsigned status, const char *code, const char *field,
            const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (field)
        json_object_set_new(e, "field", json_string(field));
    httpd_respond(req, status, json_pack("{s:o}", "error", e));
}

/* httpd_query_each's walk (query_each's cls). */
struct query_each {
    httpd_query_fn fn; /* the caller's */
    void *userdata;    /* its argument */
    int r;             /* what it returned last */
};

static enum MHD_Result
query_each(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct query_each *q = cls;

    (void)kind;
    q->r = q->fn(q->userdata, key ? key : "", value);
    return q->r ? MHD_NO : MHD_YES;
}

int
httpd_query_each(const struct http_req *req, httpd_query_fn fn, void *userdata)
{
    struct pending *p = container_of(req, struct pending, req);
    struct query_each q = {.fn = fn, .userdata = userdata};

    MHD_get_connection_values(p->conn, MHD_GET_ARGUMENT_KIND, query_each, &q);
    return q.r;
}

/* The first value of the parameter named want[0] into want[1]. */
static int
query_find(void *userdata, const char *name, const char *value)
{
    const char **want = userdata;

    return strcmp(name, want[0]) == 0 ? (want[1] = value, 1) : 0;
}

/* libmicrohttpd's MHD_lookup_connection_value matches names without case,
 * as HTTP headers are; a query's names are exact (RFC 3986 leaves the query
 * to the server, and every name of the API is lower case): "?NODE=h1" is
 * not node, and the edge refuses it as a parameter the route does not take. */
const char *
httpd_query(const struct http_req *req, const char *name)
{
    const char *want[2] = {name, NULL};

    httpd_query_each(req, query_find, want);
    return want[1];
}

const char *
httpd_header(const struct http_req *req, const char *name)
{
    struct pending *p = container_of(req, struct pending, req);
    return MHD_lookup_connection_value(p->conn, MHD_HEADER_KIND, name);
}

/* ---- libmicrohttpd's side ----------------------------------------------- */

/* Queues an answer on p's connection: a body of len bytes (stolen; NULL =
 * none) of type (NULL = JSON), or a stream that stays open (its response
 * holds it); what is sent is noted for the access log. */
static enum MHD_Result
send_body(struct pending *p, unsigned status, char *text, size_t len, const char *type,
          http_stream_t *stream, char *const (*headers)[2])
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    p->sent_status = status;
    if (stream) {
        r = http_stream_mhd_response(stream, p->conn);
        if (!r)
            return MHD_NO;
        p->sent_stream = http_stream_ref(stream);
        MHD_add_response_header(r, "Cache-Control", "no-cache");
    } else {
        if (!text) {
            text = xstrdup("");
            len = 0;
        }
        p->sent_bytes = len;
        r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    }
    if (stream || len)
        MHD_add_response_header(r, "Content-Type", type ? type : "application/json");
    for (size_t i = 0; headers && i < HTTPD_MAX_HEADERS && headers[i][0]; i++)
        MHD_add_response_header(r, headers[i][0], headers[i][1]);
    ret = MHD_queue_response(p->conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
send_text_headers(struct pending *p, unsigned status, char *text, char *const (*headers)[2])
{
    return send_body(p, status, text, text ? strlen(text) : 0, NULL, NULL, headers);
}

static enum MHD_Result
send_text(struct pending *p, unsigned status, char *text)
{
    return send_text_headers(p, status, text, NULL);
}

/* Suspends the connection and hands the request to the loop. */
static enum MHD_Result
hand_over(httpd_t *h, struct pending *p)
{
    MHD_suspend_connection(p->conn);
    pthread_mutex_lock(&h->lock);
    p->counted = true;
    h->inflight++;
    if (h->stopping) {
        /* No loop will see it: answer now, through the same resume path. */
        p->status = 503;
        p->response = error_text("unavailable", "the master is shutting down");
        p->state = P_ANSWERED;
        pthread_mutex_unlock(&h->lock);
        MHD_resume_connection(p->conn);
        return MHD_YES;
    }
    p->state = P_QUEUED;
    p->next = h->inbox;
    h->inbox = p;
    pthread_mutex_unlock(&h->lock);
    uv_async_send(&h->wake);
    return MHD_YES;
}

static void
on_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
            size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct httpd_upgrade *u = cls;

    (void)conn;
    (void)con_cls;
    u->fn(u->userdata, sock, urh, extra, extra_len);
    free(u);
}

/* A 101 whose socket goes to the upgrade's taker once it is sent. */
static enum MHD_Result
send_upgrade(struct pending *p)
{
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgraded, p->upgrade);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    p->upgrade = NULL; /* on_upgraded's now */
    p->sent_status = 101;
    for (size_t i = 0; i < HTTPD_MAX_HEADERS && p->headers[i][0]; i++)
        MHD_add_response_header(r, p->headers[i][0], p->headers[i][1]);
    ret = MHD_queue_response(p->conn, 101, r);
    MHD_destroy_response(r);
    return ret;
}

/* The answer of a resumed connection. */
static enum MHD_Result
send_answer(httpd_t *h, struct pending *p)
{
    pthread_mutex_lock(&h->lock);
    unsigned status = p->status;
    char *text = move_ptr(p->response);
    http_stream_t *stream = move_ptr(p->stream);
    bool expired = p->expired;
    pthread_mutex_unlock(&h->lock);
    if (status == 101 && p->upgrade && !expired) {
        free(text);
        return send_upgrade(p);
    }
    /* An expired request's headers were set for an answer never sent. */
    return send_body(p, status, text, p->response_len, p->content_type, stream,
                     expired ? NULL : p->headers);
}

static struct http_peer
peer_of(const struct listener *l, struct MHD_Connection *conn)
{
    struct http_peer peer = {.uid = -1, .tls = l->tls};
    const union MHD_ConnectionInfo *ci;
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (!l->unix_socket)
        return peer;
    peer.unix_socket = true;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        peer.uid = (int64_t)cred.uid;
    return peer;
}
void
httpd_set_static(httpd_t *h, const char *dir)
{
    free(h->static_dir);
    h->static_dir = dir ? xstrdup(dir) : NULL;
}

static enum MHD_Result
send_static(httpd_t *h, struct pending *p, const char *url)
{
    const char *rel = strcmp(url, "/") == 0 ? "/index.html" : url;
    struct MHD_Response *r;
    enum MHD_Result ret;
    struct stat st;
    int dir, fd;

    if (!httpd_static_path_ok(rel))
        return send_text(p, 404, error_text("not_found", "no such file"));
    dir = open(h->static_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return send_text(p, 404, error_text("not_found", "no such file"));
    fd = openat(dir, rel + 1, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    close(dir);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > HTTPD_MAX_STATIC) {
        if (fd >= 0)
            close(fd);
        return send_text(p, 404, error_text("not_found", "no such file"));
    }
    r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", httpd_content_type(rel));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    p->sent_status = 200;
    p->sent_bytes = strcmp(p->method, "HEAD") == 0 ? 0 : (uint64_t)st.st_size;
    ret = MHD_queue_response(p->conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* libmicrohttpd's own unescaping would turn "%00" into a NUL that cuts the
 * path or argument short ("/v1/guests/a1%00x" read as "a1"); this one
 * decodes %XX but turns every decoded control byte into 0x01, which no name
 * or path accepts. */
static size_t
unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *w = s;

    for (const char *r = s; *r; r++) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0) {
            unsigned char c = (unsigned char)(hi << 4 | lo);
            *w++ = (char)(c < 0x20 || c == 0x7f ? 0x01 : c);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static bool
has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static bool
is_api_path(const char *url)
{
    return strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0 ||
           strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0;
}

static struct pending *
pending_new(httpd_t *h, const struct listener *l, struct MHD_Connection *conn, const char *url,
            const char *method)
{
    struct pending *p = xcalloc(1, sizeof(*p));

    p->conn = conn;
    p->path = xstrdup(url);
    p->method = xstrdup(method);
    p->req.path = p->path;
    p->req.method = p->method;
    p->req.internal = h;
    p->req.peer = peer_of(l, conn);
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    return p;
}

/* The whole request is in: check it, then hand it over. */
static enum MHD_Result
request_complete(httpd_t *h, struct pending *p)
{
    struct MHD_Connection *conn = p->conn;

    if (has_control(p->path))
        return send_text(p, 400, error_text("bad_request", "the path holds a control character"));
    if (p->too_large)
        return send_text(p, 413, error_text("too_large", "request body is too large"));
    if (p->upload_len) {
        json_error_t jerr;
        p->req.body = json_loadb(p->upload, p->upload_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!p->req.body) {
            char msg[300];
            snprintf(msg, sizeof(msg), "request body is not valid JSON: %s (line %d)", jerr.text,
                     jerr.line);
            return send_text(p, 400, error_text("bad_request", msg));
        }
    }
    free(p->upload);
    p->upload = NULL;
    p->req.idem_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    return hand_over(h, p);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct listener *l = cls;
    httpd_t *h = l->h;
    struct pending *p = *con_cls;

    if (!p) {
        /* Every exchange gets one, a static file's too: the access log
         * reads it when the exchange completes. */
        *con_cls = p = pending_new(h, l, conn, url, method);
        if (h->static_dir && !is_api_path(url) &&
            (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
            return send_static(h, p, url);
        return MHD_YES;
    }
    if (p->state == P_ANSWERED)
        return send_answer(h, p);
    if (*upload_size) {
        if (p->upload_len + *upload_size > HTTPD_MAX_BODY) {
            p->too_large = true;
        } else {
            p->upload = xrealloc(p->upload, p->upload_len + *upload_size + 1);
            memcpy(p->upload + p->upload_len, upload_data, *upload_size);
            p->upload_len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return request_complete(h, p);
}

/* The client of an exchange, for the access log: its address over TCP,
 * "unix" over the Unix socket (the peer's uid is a field of its own). */
static const char *
client_of(const struct pending *p, char *buf, size_t n)
{
    const union MHD_ConnectionInfo *ci;

    if (p->req.peer.unix_socket)
        return "unix";
    ci = MHD_get_connection_info(p->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return "-";
    if (ci->client_addr->sa_family == AF_INET &&
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, buf,
                  (socklen_t)n))
        return buf;
    if (ci->client_addr->sa_family == AF_INET6 &&
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, buf,
                  (socklen_t)n))
        return buf;
    return "-";
}

/* The access log line of one exchange: method, path, status, body bytes,
 * duration and client (address, or the peer's uid on the Unix socket), and
 * how it ended when it did not end well. Runs in libmicrohttpd's thread;
 * the fields read here are that thread's own (an expired request's handler
 * may still run on the loop, but frees nothing before conn_gone). */
static void
access_log(const struct pending *p, enum MHD_RequestTerminationCode toe)
{
    static const char *const ends[] = {
        [MHD_REQUEST_TERMINATED_COMPLETED_OK] = NULL,
        [MHD_REQUEST_TERMINATED_WITH_ERROR] = "error",
        [MHD_REQUEST_TERMINATED_TIMEOUT_REACHED] = "timeout",
        [MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN] = "shutdown",
        [MHD_REQUEST_TERMINATED_READ_ERROR] = "read_error",
        [MHD_REQUEST_TERMINATED_CLIENT_ABORT] = "client_abort",
    };
    char addr[INET6_ADDRSTRLEN];
    struct timespec now;
    struct log_field f[8];
    size_t n = 0;

    clock_gettime(CLOCK_MONOTONIC, &now);
    double ms = (double)(now.tv_sec - p->start.tv_sec) * 1e3 +
                (double)(now.tv_nsec - p->start.tv_nsec) / 1e6;
    const char *end = (unsigned)toe < ARRAY_SIZE(ends) ? ends[toe] : "error";
    f[n++] = (struct log_field){"method", p->method, 0};
    f[n++] = (struct log_field){"path", p->path, 0};
    f[n++] = (struct log_field){"status", NULL, p->sent_status};
    f[n++] = (struct log_field){
        "bytes", NULL, (double)(p->sent_stream ? http_stream_sent(p->sent_stream) : p->sent_bytes)};
    f[n++] = (struct log_field){"duration_ms", NULL, (double)(int64_t)(ms * 1000) / 1000};
    f[n++] = (struct log_field){"client", client_of(p, addr, sizeof(addr)), 0};
    if (p->req.peer.unix_socket && p->req.peer.uid >= 0)
        f[n++] = (struct log_field){"uid", NULL, (double)p->req.peer.uid};
    if (end)
        f[n++] = (struct log_field){"end", end, 0};
    log_struct(LOG_INFO, f, n, "http");
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    httpd_t *h = l->h;
    struct pending *p = *con_cls;

    if (!p)
        return;
    *con_cls = NULL;
    if (log_access_enabled && LOG_INFO <= log_max_level)
        access_log(p, toe);
    pthread_mutex_lock(&h->lock);
    if (p->counted) {
        p->counted = false;
        if (--h->inflight == 0)
            pthread_cond_broadcast(&h->drained);
    }
    /* An expired request whose handler has not answered yet is freed by
     * its httpd_respond. */
    bool loop_owns = p->expired && !p->handler_done;
    if (loop_owns)
        p->conn_gone = true;
    pthread_mutex_unlock(&h->lock);
    if (!loop_owns)
        pending_free(p);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* libmicrohttpd's messages (a client over its limit, a failed handshake)
 * are about clients, not the master: debug only. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}

/* A listening Unix socket at path (0600; a stale socket there is removed,
 * anything else there is -EEXIST). */
static int
unix_listen(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    if (strscpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0)
        return -ENAMETOOLONG;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        if (unlink(path) < 0)
            return -errno;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, 128) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static int
listener_start(httpd_t *h, struct listener *l, const struct httpd_config *cfg, int fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_UPGRADE;
    struct MHD_OptionItem opts[16];
    size_t n = 0;

#define OPT(o, v, p) opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)}
    l->h = h;
    OPT(MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)0, NULL);
    opts[n - 1].value = (intptr_t)mhd_log;
    OPT(MHD_OPTION_CONNECTION_LIMIT, cfg->max_conns ? cfg->max_conns : HTTPD_MAX_CONNS, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s ? cfg->idle_timeout_s : HTTPD_IDLE_S,
        NULL);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, on_completed, l);
    OPT(MHD_OPTION_UNESCAPE_CALLBACK, unescape, l);
    if (fd >= 0) {
        l->unix_socket = true;
        OPT(MHD_OPTION_LISTEN_SOCKET, fd, NULL);
    } else {
        if (inet_pton(AF_INET, cfg->addr, &sin.sin_addr) != 1)
            return -EINVAL;
        OPT(MHD_OPTION_SOCK_ADDR, 0, &sin);
        OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            cfg->max_per_addr ? cfg->max_per_addr : HTTPD_MAX_PER_ADDR, NULL);
        if (cfg->tls_cert) {
            l->tls = true;
            flags |= MHD_USE_TLS;
            OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert);
            OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key);
            OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, HTTPD_TLS_PRIORITY);
        }
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    l->daemon = MHD_start_daemon(flags, fd >= 0 ? 0 : cfg->port, NULL, NULL, on_request, l,
                                 MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    return l->daemon ? 0 : -EADDRINUSE;
}

httpd_t *
httpd_new(uv_loop_t *loop, const struct httpd_config *cfg, httpd_handler handler, void *userdata,
          int *err)
{
    httpd_t *h = xcalloc(1, sizeof(*h));
    int r = 0;

    h->loop = loop;
    h->handler = handler;
    h->userdata = userdata;
    if (cfg->tls_cert) {
        h->tls_cert = xstrdup(cfg->tls_cert);
        h->tls_key = xstrdup(cfg->tls_key ? cfg->tls_key : "");
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->drained, &attr);
    pthread_condattr_destroy(&attr);
    uv_async_init(loop, &h->wake, on_wake);
    uv_timer_init(loop, &h->expiry);
    h->wake.data = h->expiry.data = h;
    h->open_handles = 2;
    uv_timer_start(&h->expiry, on_expiry, HTTPD_EXPIRY_MS, HTTPD_EXPIRY_MS);
    uv_unref((uv_handle_t *)&h->expiry);
    if (cfg->addr)
        r = listener_start(h, &h->tcp, cfg, -1);
    if (r >= 0 && cfg->unix_path) {
        int fd = unix_listen(cfg->unix_path);
        r = fd < 0 ? fd : listener_start(h, &h->local, cfg, fd);
        if (fd >= 0 && r < 0)
            close(fd);
        if (fd >= 0)
            h->unix_path = xstrdup(cfg->unix_path);
    }
    if (r < 0) {
        *err = r;
        httpd_destroy(&h);
        return NULL;
    }
    return h;
}

void
httpd_destroy(httpd_t **ph)
{
    httpd_t *h = *ph;

    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_mutex_unlock(&h->lock);
    /* Requests already queued get an answer (the handler sees them one
     * last time); whatever it still holds gets a 503, so no connection is
     * left suspended, which libmicrohttpd cannot stop with. */
    on_wake(&h->wake);
    while (h->held)
        expire(h, h->held, "the master is shutting down");
    /* Stopping a daemon cuts its connections: first let the answers given
     * (the 503s included) go out, for a bounded time. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += HTTPD_DRAIN_S;
    pthread_mutex_lock(&h->lock);
    while (h->inflight && pthread_cond_timedwait(&h->drained, &h->lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&h->lock);
    if (h->tcp.daemon)
        MHD_stop_daemon(h->tcp.daemon);
    /* libmicrohttpd closes the listening sockets, the one it was handed too. */
    if (h->local.daemon)
        MHD_stop_daemon(h->local.daemon);
    if (h->unix_path)
        unlink(h->unix_path);
    pthread_cond_destroy(&h->drained);
    pthread_mutex_destroy(&h->lock);
    free(h->static_dir);
    free(h->unix_path);
    free(h->tls_cert);
    free(h->tls_key);
    h->static_dir = h->unix_path = h->tls_cert = h->tls_key = NULL;
    uv_close((uv_handle_t *)&h->wake, on_handle_closed);
    uv_close((uv_handle_t *)&h->expiry, on_handle_closed);
    *ph = NULL;
}
