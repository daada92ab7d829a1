/* The HTTP edge: refuses what a browser on another origin sends (Host,
 * Origin, Content-Type), authenticates the caller (a bearer token, or root
 * over the Unix socket; auth.h), routes every request through the table in
 * api.c to its handler (refusing a role the route does not allow), and maps
 * errors to statuses in one place (api_error_from_errno). Handlers (http_*.c) parse the request,
 * call the guest domain (guests.h) or the registry, and answer; they never change the store
 * themselves except to wrap a domain call and its idempotency key in one transaction.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "master/core.h"
#include "master/guests.h"

/* Starts the HTTP server as m->cfg says (http_listen.c): the TCP listener
 * with TLS (the operator's certificate, or the self-signed one made at the
 * first start, whose pin is logged) unless tls_off, and the Unix socket.
 * 0, or -errno with a sentence in err. */
int http_listen(master_t *m, char *err, size_t errlen);

/* The httpd handler: every request of the REST API. */
void http_serve(struct http_req *req, void *userdata);

/* Answers with the status and code of err and a formatted message. */
void http_reply_errno(struct http_req *req, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers a domain failure: err's status, e's field and message, and the
 * placement explanation when e has one. */
void http_reply_guest_err(struct http_req *req, int err, const struct guest_err *e);

/* ?limit=N&after=NAME of a list, checked by the edge: the page size
 * (MASTER_LIST_DEFAULT when absent, at most MASTER_LIST_MAX) and where it
 * starts (NULL: at the first). */
void http_page_params(struct http_req *req, unsigned *limit, const char **after);
/* ?wait=WHAT&timeout=S, their values checked by the edge: 0 when no wait
 * was asked, the wait in ms, or -1 after answering 400 (a timeout without
 * wait). what is the value the route's wait takes ("running", "stopped"). */
int64_t http_wait_param(master_t *m, struct http_req *req, const char *what);
/* A JSON string that is a valid name. */
bool http_json_is_name(const json_t *j);
/* A life (an API token's, a join token's): seconds as a positive integer, or
 * "90s", "30m", "12h", "7d". Returns 0 with *out in seconds, or -EINVAL. */
int http_json_ttl(const json_t *v, uint64_t *out);
