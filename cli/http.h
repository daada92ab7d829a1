/* The CLI's HTTP client: one JSON request to the master's REST API.
 *
 * A thin wrapper over libcurl's easy interface and jansson. It sends a JSON
 * body (or none), reads the whole reply into memory (bounded), parses it as
 * JSON and hands back the status and the parsed document. It knows nothing of
 * routes; cli.c maps the result to messages and exit codes.
 *
 * Retries: a request that never reached the master (connection refused,
 * name lookup failed, connect timeout) is retried for every method, because
 * nothing happened on the server. A POST is also retried when the exchange
 * broke after it was sent (the master restarted mid-request), always with the
 * SAME Idempotency-Key, so the master applies it at most once. GET is retried
 * the same way since it changes nothing. PATCH and DELETE are not retried
 * after they were sent: their second attempt could report a different result.
 *
 * Threading: an http_client_t is used by one thread at a time. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define HTTP_UUID_LEN        36                   /* a UUID in text form, without the NUL */
#define HTTP_MAX_BODY        (256u * 1024 * 1024) /* largest reply read, bytes */
#define HTTP_DEFAULT_TIMEOUT 60                   /* seconds for one exchange */

typedef struct http_client http_client_t;

/* One request. Every pointer is borrowed for the duration of the call. */
struct http_request {
    const char *method;          /* "GET", "POST", "PATCH" or "DELETE" */
    const char *path;            /* path and query, starting with '/', already escaped */
    const json_t *body;          /* JSON body, or NULL for none */
    const char *idempotency_key; /* POST only; NULL = a fresh random UUID for this call */
    long timeout;                /* seconds for the whole exchange, 0 = HTTP_DEFAULT_TIMEOUT */
    const char *accept;          /* the Accept header, NULL = application/json */
};

/* What came back. Fill with http_request_send(), release with http_result_clear(). */
struct http_result {
    long status;                 /* HTTP status, 0 when no reply arrived */
    json_t *body;                /* parsed reply, NULL when empty or not JSON; owned */
    char *raw;                   /* the reply's bytes, NUL-terminated, or NULL; owned */
    size_t raw_len;              /* bytes in raw, without the NUL */
    unsigned attempts;           /* how many times the request was sent */
    char key[HTTP_UUID_LEN + 1]; /* the Idempotency-Key used ("" when not a POST) */
    char error[256];             /* transport error text, "" when a reply arrived */
};

/* Creates a client for the master at base_url ("https://10.0.0.1:7400",
 * with or without a trailing '/'; or "unix:/run/vfleet-master/api.sock" for
 * the master's Unix socket on this host; copied). Returns NULL only when
 * libcurl cannot start, which the caller reports as a failure. */
http_client_t *http_client_new(const char *base_url);

/* Sends "Authorization: Bearer token" with every request (NULL = none;
 * copied). */
void http_client_set_token(http_client_t *c, const char *token);
/* How an https master is trusted (both copied, NULL = unset):
 *   pin      "sha256//BASE64" of its public key, as the master logs it; the
 *            pin alone authenticates the server (a self-signed certificate
 *            has no CA to check and may not carry the name used);
 *   ca_file  PEM certificates to verify its certificate and name with.
 * Neither: the system's CA store. Both: both must hold. */
void http_client_set_tls(http_client_t *c, const char *ca_file, const char *pin);
/* Frees the client. NULL-safe, clears *c. */
void http_client_destroy(http_client_t **c);

/* Sets how many times a failed exchange is retried (0 = never) and the delay
 * before the first retry in milliseconds; each further retry waits twice as
 * long. The default is 3 retries starting at 250 ms. */
void http_client_set_retries(http_client_t *c, unsigned retries, unsigned first_delay_ms);

/* The master's base URL, without a trailing '/' ("unix:PATH" for the
 * socket). Borrowed from the client. */
const char *http_client_base_url(const http_client_t *c);

/* Sends req and waits for the reply. Returns:
 *   0             a reply arrived (any status); out->status and out->body set
 *   -EHOSTUNREACH the master could not be reached or went away mid-request,
 *                 after every retry (out->error says how)
 *   -EINVAL       the URL is malformed or not http/https (out->error says why)
 *   -EMSGSIZE     the reply exceeded HTTP_MAX_BODY
 *   -EPERM        the master is not the one trusted: its certificate does not
 *                 verify, or its key does not match the pin (out->error says how)
 *   -EIO          any other transport failure (out->error says which)
 * out is always initialised, so http_result_clear() is always safe. */
int http_request_send(http_client_t *c, const struct http_request *req, struct http_result *out);

/* Reads a reply that streams (JSON lines, Server-Sent Events) line by line
 * as it arrives, with no timeout and no retry: GET path with the Accept
 * header accept, and line(userdata, text, len) for every line (without its
 * newline; return nonzero to stop). Returns 0 when the server ended the
 * body with status 2xx (*status set), 1 when line stopped it, or the
 * -errno of http_request_send (the connection broke: the caller resumes). */
int http_request_lines(http_client_t *c, const char *path, const char *accept, long *status,
                       int (*line)(void *userdata, const char *text, size_t len), void *userdata);

/* Releases what out holds and zeroes it. */
void http_result_clear(struct http_result *out);

/* Percent-encodes s for use in a path segment or query value. Returns a
 * malloc'd string the caller frees. */
char *http_escape(const char *s);

/* A connection to the master and nothing sent on it (libcurl's connect-only
 * mode, TLS and trust as for requests): *out is a CURL * for curl_easy_send
 * and curl_easy_recv, freed with curl_easy_cleanup; host receives the Host
 * header's value. Returns 0 or the -errno of http_request_send with err set. */
int http_connect_raw(http_client_t *c, void **out, char *host, size_t host_n, char *err,
                     size_t errn);
/* "Authorization: Bearer ..." or NULL. Borrowed. */
const char *http_client_auth_header(const http_client_t *c);
