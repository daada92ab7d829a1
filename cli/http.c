/* The CLI's HTTP client over libcurl (see http.h). */
#include "cli/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/uuid.h"

_Static_assert(HTTP_UUID_LEN == UUID_TEXT_LEN, "the Idempotency-Keys the CLI makes are UUIDs");

#define HTTP_CONNECT_TIMEOUT 5 /* seconds to establish a connection */
#define HTTP_USER_AGENT      "vfleet-cli/0.1"

struct http_client {
    CURL *curl;              /* one easy handle, reused so connections are kept alive */
    char *base;              /* base URL without a trailing '/', as given */
    char *prefix;            /* what paths are appended to ("http://localhost" for a socket) */
    char *unix_path;         /* the master's Unix socket, NULL = TCP */
    char *auth;              /* "Authorization: Bearer ..." header, NULL = none */
    char *ca_file;           /* CA certificates for https, NULL = the system's */
    char *pin;               /* the master's public key pin, NULL = none */
    unsigned retries;        /* retries after the first attempt */
    unsigned first_delay_ms; /* delay before the first retry; doubles each time */
};

/* The reply as it streams in. */
struct http_sink {
    char *buf;    /* bytes so far, NUL-terminated when non-NULL */
    size_t len;   /* bytes used in buf */
    size_t cap;   /* bytes allocated in buf */
    bool too_big; /* the reply crossed HTTP_MAX_BODY and was cut off */
};

http_client_t *
http_client_new(const char *base_url)
{
    /* Thread-safe and reference-counted since libcurl 7.84, so calling it per
     * client is fine; the program never needs the global cleanup. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;

    http_client_t *c = xcalloc(1, sizeof(*c));
    c->curl = curl;
    c->base = xstrdup(base_url);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    if (strncmp(c->base, "unix:", 5) == 0) {
        c->unix_path = xstrdup(c->base + 5);
        c->prefix = xstrdup("http://localhost");
    } else {
        c->prefix = xstrdup(c->base);
    }
    c->retries = 3;
    c->first_delay_ms = 250;
    return c;
}

static void
set_str(char **slot, const char *v)
{
    if (*slot)
        explicit_bzero(*slot, strlen(*slot));
    free(*slot);
    *slot = v && *v ? xstrdup(v) : NULL;
}

void
http_client_set_token(http_client_t *c, const char *token)
{
    _cleanup_free_ char *h = token && *token ? xasprintf("Authorization: Bearer %s", token) : NULL;

    set_str(&c->auth, h);
    if (h)
        explicit_bzero(h, strlen(h));
}

void
http_client_set_tls(http_client_t *c, const char *ca_file, const char *pin)
{
    set_str(&c->ca_file, ca_file);
    set_str(&c->pin, pin);
}

void
http_client_destroy(http_client_t **c)
{
    if (!c || !*c)
        return;
    curl_easy_cleanup((*c)->curl);
    free((*c)->base);
    free((*c)->prefix);
    free((*c)->unix_path);
    set_str(&(*c)->auth, NULL);
    free((*c)->ca_file);
    free((*c)->pin);
    free(*c);
    *c = NULL;
}

void
http_client_set_retries(http_client_t *c, unsigned retries, unsigned first_delay_ms)
{
    c->retries = retries;
    c->first_delay_ms = first_delay_ms;
}

const char *
http_client_base_url(const http_client_t *c)
{
    return c->base;
}

void
http_result_clear(struct http_result *out)
{
    json_decref(out->body);
    free(out->raw);
    memset(out, 0, sizeof(*out));
}

char *
http_escape(const char *s)
{
    /* The handle argument is ignored since libcurl 7.82. */
    char *e = curl_easy_escape(NULL, s, (int)strlen(s));
    if (!e)
        return xstrdup("");
    char *copy = xstrdup(e);
    curl_free(e);
    return copy;
}

static size_t
http_sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_sink *s = userdata;
    size_t n = size * nmemb;

    if (n > HTTP_MAX_BODY - s->len) {
        s->too_big = true;
        return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->buf = xrealloc(s->buf, cap);
        s->cap = cap;
    }
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static void
http_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Whether a failed exchange may be sent again. `sent` says whether any
 * request bytes left this host: if none did, the master saw nothing. */
static bool
http_may_retry(const char *method, CURLcode rc, bool sent)
{
    if (!sent)
        return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
               rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_SEND_ERROR ||
               rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR;
    /* A timeout after sending means the master is alive but slow: sending the
     * request again would only wait again. A broken connection is retried
     * for the methods where a repeat is harmless (POST via its key). */
    if (strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0)
        return false;
    return rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
           rc == CURLE_PARTIAL_FILE;
}

/* Maps a libcurl failure to the -errno http_request_send() documents. */
static int
http_errno(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
        return -EHOSTUNREACH;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return -EINVAL;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CACERT_BADFILE:
        return -EPERM;
    default:
        return -EIO;
    }
}

static void
curl_slist_freep(struct curl_slist **l)
{
    curl_slist_free_all(*l);
}

/* How h reaches the master and what it trusts there (a request's handle and
 * http_connect_raw's alike): its unix socket, its CA file, its pinned key. */
static void
http_set_peer(http_client_t *c, CURL *h)
{
    if (c->unix_path)
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (c->pin) {
        curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, c->pin);
        if (!c->ca_file) {
            /* The pin is the trust: a self-signed certificate has no CA, and
             * its names may not include the one used to reach it. */
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }
}

/* One attempt. Returns the libcurl code; fills sink and *status, and *sent
 * says whether request bytes went out. */
static CURLcode
http_attempt(http_client_t *c, const struct http_request *req, const char *url, const char *body,
             const char *key, struct http_sink *sink, long *status, bool *sent, char *errbuf)
{
    _cleanup_(curl_slist_freep) struct curl_slist *hdrs = NULL;
    _cleanup_free_ char *key_hdr = NULL;
    CURL *h = c->curl;

    curl_easy_reset(h);
    errbuf[0] = '\0';
    _cleanup_free_ char *accept =
        xasprintf("Accept: %s", req->accept ? req->accept : "application/json");
    hdrs = curl_slist_append(hdrs, accept);
    /* libcurl would wait for a 100 Continue before a larger body; the API
     * answers every request at once, so the wait only costs time. */
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    if (key) {
        key_hdr = xasprintf("Idempotency-Key: %s", key);
        hdrs = curl_slist_append(hdrs, key_hdr);
    }
    if (c->auth)
        hdrs = curl_slist_append(hdrs, c->auth);
    if (!hdrs)
        return CURLE_OUT_OF_MEMORY;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)HTTP_CONNECT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, req->timeout > 0 ? req->timeout : HTTP_DEFAULT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_sink_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    http_set_peer(c, h);

    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        /* POSTFIELDS gives every method a body with a Content-Length (0 when
         * there is none); CUSTOMREQUEST then names the real method. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, body ? (long)strlen(body) : 0L);
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }

    CURLcode rc = curl_easy_perform(h);
    long reqsize = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
    *sent = reqsize > 0;
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    return rc;
}

int
http_request_send(http_client_t *c, const struct http_request *req, struct http_result *out)
{
    _cleanup_free_ char *url = NULL;
    _cleanup_free_ char *body = NULL;
    char errbuf[CURL_ERROR_SIZE];
    bool post = strcmp(req->method, "POST") == 0;
    unsigned delay = c->first_delay_ms;
    CURLcode rc = CURLE_OK;

    memset(out, 0, sizeof(*out));
    if (req->path[0] != '/') {
        snprintf(out->error, sizeof(out->error), "path \"%s\" does not start with '/'", req->path);
        return -EINVAL;
    }
    url = xasprintf("%s%s", c->prefix, req->path);
    if (req->body) {
        body = json_dumps(req->body, JSON_COMPACT);
        if (!body) {
            snprintf(out->error, sizeof(out->error), "request body cannot be encoded");
            return -EINVAL;
        }
    }
    if (post) {
        if (req->idempotency_key) {
            if (strscpy(out->key, req->idempotency_key, sizeof(out->key)) < 0) {
                snprintf(out->error, sizeof(out->error), "idempotency key longer than %d bytes",
                         HTTP_UUID_LEN);
                return -EINVAL;
            }
        } else {
            int r = uuid_v4(out->key);
            if (r < 0) {
                snprintf(out->error, sizeof(out->error), "no randomness for an idempotency key");
                return r;
            }
        }
    }

    for (unsigned attempt = 0;; attempt++) {
        struct http_sink sink = {0};
        long status = 0;
        bool sent = false;

        out->attempts = attempt + 1;
        rc = http_attempt(c, req, url, body, post ? out->key : NULL, &sink, &status, &sent, errbuf);
        if (rc == CURLE_OK) {
            out->status = status;
            out->raw = sink.buf;
            out->raw_len = sink.len;
            if (sink.len > 0)
                out->body = json_loadb(sink.buf, sink.len, 0, NULL);
            return 0;
        }
        free(sink.buf);
        if (sink.too_big) {
            snprintf(out->error, sizeof(out->error), "reply larger than %u bytes",
                     (unsigned)HTTP_MAX_BODY);
            return -EMSGSIZE;
        }
        snprintf(out->error, sizeof(out->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        log_debug("http: %s %s attempt %u: %s", req->method, url, attempt + 1, out->error);
        if (attempt >= c->retries || !http_may_retry(req->method, rc, sent))
            break;
        http_sleep_ms(delay);
        delay = delay > UINT32_MAX / 2 ? delay : delay * 2;
    }
    return http_errno(rc);
}

/* The line reader's state. */
struct http_lines {
    char buf[64 * 1024];                                       /* the line being read */
    size_t len;                                                /* bytes in buf */
    int (*line)(void *userdata, const char *text, size_t len); /* the caller's callback */
    void *userdata;                                            /* passed to line */
    bool stopped;                                              /* line asked to stop */
    long status; /* the reply's status, once headers are in */
    CURL *h;     /* the handle, for the status */
};

static size_t
http_lines_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_lines *l = userdata;
    size_t n = size * nmemb;

    if (!l->status)
        curl_easy_getinfo(l->h, CURLINFO_RESPONSE_CODE, &l->status);
    for (size_t i = 0; i < n; i++) {
        if (ptr[i] != '\n') {
            /* An overlong line is cut: the rest of it is dropped. */
            if (l->len < sizeof(l->buf) - 1)
                l->buf[l->len++] = ptr[i];
            continue;
        }
        if (l->len && l->buf[l->len - 1] == '\r')
            l->len--;
        l->buf[l->len] = '\0';
        size_t len = l->len;
        l->len = 0;
        if (l->status >= 200 && l->status < 300 && l->line(l->userdata, l->buf, len)) {
            l->stopped = true;
            return 0;
        }
    }
    return n;
}

int
http_request_lines(http_client_t *c, const char *path, const char *accept, long *status,
                   int (*line)(void *userdata, const char *text, size_t len), void *userdata)
{
    _cleanup_(curl_slist_freep) struct curl_slist *hdrs = NULL;
    _cleanup_free_ char *url = xasprintf("%s%s", c->prefix, path);
    _cleanup_free_ char *acc = xasprintf("Accept: %s", accept);
    struct http_lines *l = xcalloc(1, sizeof(*l));
    CURL *h = c->curl;

    l->line = line;
    l->userdata = userdata;
    l->h = h;
    curl_easy_reset(h);
    hdrs = curl_slist_append(hdrs, acc);
    if (c->auth)
        hdrs = curl_slist_append(hdrs, c->auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)HTTP_CONNECT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_USERAGENT, HTTP_USER_AGENT);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, http_lines_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, l);
    http_set_peer(c, h);
    /* A stream that stays silent longer than its keepalives is dead. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    int r = l->stopped ? 1 : rc == CURLE_OK ? 0 : http_errno(rc);
    free(l);
    return r;
}

int
http_connect_raw(http_client_t *c, void **out, char *host, size_t host_n, char *err, size_t errn)
{
    CURL *h = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;

    *out = NULL;
    if (!h)
        return -EIO;
    curl_easy_setopt(h, CURLOPT_URL, c->prefix);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)HTTP_CONNECT_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    http_set_peer(c, h);
    rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(err, errn, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        curl_easy_cleanup(h);
        return http_errno(rc);
    }
    /* The Host header: the authority of the base URL, "localhost" for a socket. */
    const char *auth = strstr(c->prefix, "://");
    auth = auth ? auth + 3 : c->prefix;
    snprintf(host, host_n, "%.*s", (int)strcspn(auth, "/"), auth);
    *out = h;
    return 0;
}

const char *
http_client_auth_header(const http_client_t *c)
{
    return c->auth;
}
