/* Reading the events: GET /v1/events as a page of JSON, as JSON lines, or
 * as Server-Sent Events that stay open.
 *
 * A reader names where it stands with the last sequence number it saw
 * (?after=SEQ, or SSE's Last-Event-ID header) and receives every later
 * event that matches its filter exactly once, in order: first from the
 * store, then as they are published, with no event skipped in between
 * (the store is read up to the newest committed event, live events carry
 * higher numbers). A reader behind the store's retention gets one "gap"
 * event that names the numbers it missed, then the rest.
 *
 * An open stream's buffer is bounded; a client slower than the events
 * falls behind and is fed from the store again when it drains (so a slow
 * client costs the master a bounded buffer, never lost events, until
 * retention catches up with it: then it gets a gap). Streams send a
 * keepalive every EVENT_STREAM_KEEPALIVE_MS (an SSE comment, or an empty
 * line of JSON lines).
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>

#include "master/auth.h"
#include "master/core.h"

#define EVENT_STREAMS_MAX         64          /* open streams */
#define EVENT_STREAMS_PER_CALLER  16          /* open streams of one token (or the socket's root) */
#define EVENT_STREAM_BUFFER       (256 << 10) /* bytes buffered per stream */
#define EVENT_STREAM_KEEPALIVE_MS 15000       /* a keepalive after this much silence */
#define EVENT_FILTER_MAX_TYPES    16          /* types in one filter */

/* What a reader wants; empty fields match anything. */
struct event_filter {
    char types[EVENT_FILTER_MAX_TYPES][48]; /* exact types, or "guest.*" for a prefix */
    unsigned n_types;                       /* entries in types, 0 = every type */
    char guest[NAME_MAX_LEN + 1];           /* the guest's name */
    char node[NAME_MAX_LEN + 1];            /* the node's name */
    char project[NAME_MAX_LEN + 1]; /* the guest's project (events without one never match) */
    bool nothing;                   /* matches no event (a tenant asking for another project) */
};

/* Parses "a,b,guest.*" into f. -EINVAL for a bad or too long list. */
int event_filter_types(struct event_filter *f, const char *list);
bool event_filter_match(const struct event_filter *f, const struct db_event *e);

/* The JSON of an event (seq, time, type, node, guest, guest_id, message, data). */
json_t *event_json(const struct db_event *e);

/* GET /v1/events (http_events.c parses the request). */
struct event_stream_req {
    struct event_filter filter; /* what to send */
    uint64_t after;             /* send events with seq > after */
    bool sse;                   /* Server-Sent Events, else JSON lines */
    bool follow;                /* stay open for new events (SSE always does) */
    struct caller caller;       /* who asks: its streams are counted, its token's end ends them */
};
/* Answers req with the stream. -EAGAIN when EVENT_STREAMS_MAX are open,
 * -EMFILE when the caller has EVENT_STREAMS_PER_CALLER open, so that one
 * token cannot take every stream (nothing answered then). */
int event_stream_open(master_t *m, struct http_req *req, const struct event_stream_req *rq);

/* Ends every stream opened with the token of this id (it was deleted). */
void event_streams_revoke(master_t *m, const char *token);
/* Keepalives, and the end of streams whose token expired; called by the
 * tick. */
void event_streams_tick(master_t *m);
/* Ends every stream (master shutdown). */
void event_streams_shutdown(master_t *m);
/* Open streams. */
unsigned event_streams_count(master_t *m);
