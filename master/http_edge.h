/* The HTTP edge: authenticates nothing yet, routes every request through
 * the table in api.c to its handler, and maps errors to statuses in one
 * place (api_error_from_errno). Handlers (http_*.c) parse the request, call
 * the guest domain (guests.h) or the registry, and answer; they never
 * change the store themselves except to wrap a domain call and its
 * idempotency key in one transaction.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "master/core.h"
#include "master/guests.h"

/* The httpd handler: every request of the REST API. */
void http_serve(struct http_req *req, void *userdata);

/* Answers with the status and code of err and a formatted message. */
void http_reply_errno(struct http_req *req, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers a domain failure: err's status, e's field and message, and the
 * placement explanation when e has one. */
void http_reply_guest_err(struct http_req *req, int err, const struct guest_err *e);

/* ?limit=N&after=NAME of a list. Returns 0, or -1 after answering 400. */
int http_page_params(struct http_req *req, unsigned *limit, const char **after);
/* ?wait=WHAT&timeout=S: 0 when no wait was asked, the wait in ms, or -1
 * after answering 400. what is the only value wait may take ("running",
 * "stopped"). */
int64_t http_wait_param(master_t *m, struct http_req *req, const char *what);
/* A JSON string that is a valid name. */
bool http_json_is_name(const json_t *j);
