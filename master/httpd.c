#include "master/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "master/http_stream.h"

/* A request in flight: built by its connection thread, answered by the loop. */
struct pending {
    struct http_req req;                 /* what the handler sees */
    struct MHD_Connection *conn;         /* the connection, for queries and headers */
    char *upload;                        /* body bytes received so far */
    size_t upload_len;                   /* bytes in upload */
    bool too_large;                      /* the body went past HTTPD_MAX_BODY */
    char *path;                          /* copy of the URL path */
    char *method;                        /* copy of the method */
    struct pending *next;                /* in the server's inbox */
    pthread_cond_t cond;                 /* signalled when answered */
    bool answered;                       /* status and response are set */
    bool abandoned;                      /* the connection thread timed out: the loop frees it */
    unsigned status;                     /* HTTP status */
    char *response;                      /* the body, malloc'd, or NULL */
    size_t response_len;                 /* its bytes */
    char *content_type;                  /* its type, NULL = JSON */
    http_stream_t *stream;               /* a body that stays open, instead of response */
    char *headers[HTTPD_MAX_HEADERS][2]; /* extra response headers (name, value), owned */
};

struct httpd {
    struct MHD_Daemon *daemon; /* libmicrohttpd */
    uv_loop_t *loop;           /* the loop handlers run on */
    uv_async_t wake;           /* wakes the loop when the inbox has work */
    pthread_mutex_t lock;      /* guards inbox, pending answers and stopping */
    struct pending *inbox;     /* requests waiting for the loop (LIFO, reversed on drain) */
    httpd_handler handler;     /* the master's request handler */
    void *userdata;            /* passed to handler */
    bool stopping;             /* httpd_destroy runs: refuse new requests */
    char *static_dir;          /* web UI files, NULL = none */
    httpd_observer observer;   /* told of every answer (loop thread), NULL = none */
    void *observer_data;       /* passed to observer */
};

#define HTTPD_MAX_STATIC (8u << 20) /* bytes of one static file */

static void
on_wake_closed(uv_handle_t *handle)
{
    free(container_of((uv_async_t *)handle, httpd_t, wake));
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
    for (size_t i = 0; i < HTTPD_MAX_HEADERS; i++) {
        free(p->headers[i][0]);
        free(p->headers[i][1]);
    }
    pthread_cond_destroy(&p->cond);
    free(p);
}

static httpd_t *
server_of(struct pending *p)
{
    return p->req.internal;
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
        h->handler(&rev->req, h->userdata);
        rev = n;
    }
}

/* Hands an answer to the connection thread: body text (len bytes) or a
 * stream, both stolen. */
static void
answer(struct http_req *req, unsigned status, const char *type, char *text, size_t len,
       http_stream_t *stream)
{
    struct pending *p = container_of(req, struct pending, req);
    httpd_t *h = server_of(p);

    if (h->observer)
        h->observer(h->observer_data, req, status);
    pthread_mutex_lock(&h->lock);
    if (p->abandoned) {
        /* The client's thread gave up waiting; nobody reads this answer. */
        pthread_mutex_unlock(&h->lock);
        free(text);
        if (stream)
            http_stream_abandon(stream);
        pending_free(p);
        return;
    }
    p->status = status;
    p->response = text;
    p->response_len = len;
    p->content_type = type ? xstrdup(type) : NULL;
    p->stream = stream;
    p->answered = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&h->lock);
}

void
httpd_respond(struct http_req *req, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

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

const char *
httpd_query(const struct http_req *req, const char *name)
{
    struct pending *p = container_of(req, struct pending, req);
    return MHD_lookup_connection_value(p->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
httpd_header(const struct http_req *req, const char *name)
{
    struct pending *p = container_of(req, struct pending, req);
    return MHD_lookup_connection_value(p->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result
send_answer(struct MHD_Connection *conn, unsigned status, char *text, size_t len, const char *type,
            http_stream_t *stream, char *const (*headers)[2])
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    if (stream) {
        r = http_stream_mhd_response(stream);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Cache-Control", "no-cache");
    } else {
        if (!text) {
            text = xstrdup("");
            len = 0;
        }
        r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    }
    if (stream || len)
        MHD_add_response_header(r, "Content-Type", type ? type : "application/json");
    for (size_t i = 0; headers && i < HTTPD_MAX_HEADERS && headers[i][0]; i++)
        MHD_add_response_header(r, headers[i][0], headers[i][1]);
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result
send_text_headers(struct MHD_Connection *conn, unsigned status, char *text,
                  char *const (*headers)[2])
{
    return send_answer(conn, status, text, text ? strlen(text) : 0, NULL, NULL, headers);
}

static enum MHD_Result
send_text(struct MHD_Connection *conn, unsigned status, char *text)
{
    return send_text_headers(conn, status, text, NULL);
}

static char *
error_text(const char *code, const char *message)
{
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* Hands the request to the loop and waits for its answer. */
static unsigned
dispatch(httpd_t *h, struct pending *p, char **response)
{
    struct timespec until;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += HTTPD_MAX_WAIT_S;
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        pthread_mutex_unlock(&h->lock);
        *response = error_text("unavailable", "the master is shutting down");
        return 503;
    }
    p->next = h->inbox;
    h->inbox = p;
    pthread_mutex_unlock(&h->lock);
    uv_async_send(&h->wake);

    pthread_mutex_lock(&h->lock);
    while (!p->answered) {
        if (pthread_cond_timedwait(&p->cond, &h->lock, &until) == ETIMEDOUT && !p->answered) {
            p->abandoned = true;
            pthread_mutex_unlock(&h->lock);
            *response = error_text("unavailable", "the master did not answer in time");
            return 503;
        }
    }
    pthread_mutex_unlock(&h->lock);
    *response = move_ptr(p->response);
    return p->status;
}

void
httpd_set_static(httpd_t *h, const char *dir)
{
    free(h->static_dir);
    h->static_dir = dir ? xstrdup(dir) : NULL;
}

static const char *
content_type(const char *path)
{
    static const struct {
        const char *ext;  /* file name ending */
        const char *type; /* its Content-Type */
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    size_t n = strlen(path);

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n >= e && strcmp(path + n - e, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* A URL path is served only when every segment is a plain file name. */
static bool
static_path_ok(const char *url)
{
    const char *p = url;

    if (*p != '/' || strlen(url) > 1024)
        return false;
    while (*p == '/') {
        const char *seg = p + 1, *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 || seg[0] == '.')
            return false;
        for (size_t i = 0; i < len; i++)
            if (seg[i] == '\\' || (unsigned char)seg[i] < 0x20)
                return false;
        p = seg + len;
    }
    return *p == '\0';
}

static enum MHD_Result
send_static(httpd_t *h, struct MHD_Connection *conn, const char *url)
{
    const char *rel = strcmp(url, "/") == 0 ? "/index.html" : url;
    struct MHD_Response *r;
    enum MHD_Result ret;
    struct stat st;
    int dir, fd;

    if (!static_path_ok(rel))
        return send_text(conn, 404, error_text("not_found", "no such file"));
    dir = open(h->static_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return send_text(conn, 404, error_text("not_found", "no such file"));
    fd = openat(dir, rel + 1, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    close(dir);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > HTTPD_MAX_STATIC) {
        if (fd >= 0)
            close(fd);
        return send_text(conn, 404, error_text("not_found", "no such file"));
    }
    r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type(rel));
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    ret = MHD_queue_response(conn, 200, r);
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

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    httpd_t *h = cls;
    struct pending *p = *con_cls;

    if (!p && h->static_dir && !is_api_path(url) &&
        (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return send_static(h, conn, url);
    if (!p) {
        p = xcalloc(1, sizeof(*p));
        p->conn = conn;
        p->path = xstrdup(url);
        p->method = xstrdup(method);
        p->req.path = p->path;
        p->req.method = p->method;
        p->req.internal = h;
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&p->cond, &attr);
        pthread_condattr_destroy(&attr);
        *con_cls = p;
        return MHD_YES;
    }
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

    /* The whole request is in. */
    if (has_control(p->path))
        return send_text(conn, 400,
                         error_text("bad_request", "the path holds a control character"));
    if (p->too_large)
        return send_text(conn, 413, error_text("too_large", "request body is too large"));
    if (p->upload_len) {
        json_error_t jerr;
        p->req.body = json_loadb(p->upload, p->upload_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!p->req.body) {
            char msg[300];
            snprintf(msg, sizeof(msg), "request body is not valid JSON: %s (line %d)", jerr.text,
                     jerr.line);
            return send_text(conn, 400, error_text("bad_request", msg));
        }
    }
    p->req.idem_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");

    char *response = NULL;
    unsigned status = dispatch(h, p, &response);
    /* An abandoned request belongs to the loop: its headers are not ours. */
    if (p->abandoned || !p->answered)
        return send_text_headers(conn, status, response, NULL);
    return send_answer(conn, status, response, p->response_len, p->content_type,
                       move_ptr(p->stream), p->headers);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    httpd_t *h = cls;
    struct pending *p = *con_cls;

    if (!p)
        return;
    pthread_mutex_lock(&h->lock);
    bool loop_owns = p->abandoned;
    pthread_mutex_unlock(&h->lock);
    /* An abandoned request still held by the loop is freed by httpd_respond. */
    if (!loop_owns)
        pending_free(p);
    *con_cls = NULL;
}

httpd_t *
httpd_new(uv_loop_t *loop, const char *addr, uint16_t port, httpd_handler handler, void *userdata,
          int *err)
{
    httpd_t *h = xcalloc(1, sizeof(*h));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};

    if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
        *err = -EINVAL;
        free(h);
        return NULL;
    }
    h->loop = loop;
    h->handler = handler;
    h->userdata = userdata;
    pthread_mutex_init(&h->lock, NULL);
    uv_async_init(loop, &h->wake, on_wake);
    h->wake.data = h;
    h->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                     MHD_USE_POLL | MHD_USE_ERROR_LOG,
                                 port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &sin,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_MAX_CONNS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(HTTPD_MAX_WAIT_S + 30),
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                 MHD_OPTION_UNESCAPE_CALLBACK, unescape, h, MHD_OPTION_END);
    if (!h->daemon) {
        *err = -EADDRINUSE;
        pthread_mutex_destroy(&h->lock);
        uv_close((uv_handle_t *)&h->wake, on_wake_closed);
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
    /* Requests already queued get an answer so their threads can finish. */
    on_wake(&h->wake);
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->lock);
    free(h->static_dir);
    h->static_dir = NULL;
    uv_close((uv_handle_t *)&h->wake, on_wake_closed);
    *ph = NULL;
}
