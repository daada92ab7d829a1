/* GET /v1/events: a page of JSON, JSON lines, or Server-Sent Events
 * (events_stream.h says how a stream resumes and what a gap is). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "master/auth.h"
#include "master/events.h"
#include "master/events_stream.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"

/* A decimal sequence number without sign, spaces or junk. */
static int
parse_seq(const char *s, uint64_t *out)
{
    char *end;

    if (!s || *s < '0' || *s > '9' || strlen(s) > 19)
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > INT64_MAX) /* SQLite's and JSON's integers are signed */
        return -EINVAL;
    *out = v;
    return 0;
}

static bool
accepts(const struct http_req *req, const char *type)
{
    const char *a = httpd_header(req, "Accept");
    return a && strstr(a, type) != NULL;
}

/* Filter, resume point and format from the query (its syntax checked by
 * the edge against api.c's table) and headers; answers 400 itself on a bad
 * resume point. */
static int
parse_request(master_t *m, struct http_req *req, const struct caller *who,
              struct event_stream_req *rq, bool *stream)
{
    const char *project = httpd_query(req, "project");
    const char *type = httpd_query(req, "type"), *guest = httpd_query(req, "guest");
    const char *node = httpd_query(req, "node"), *after = httpd_query(req, "after");
    const char *follow = httpd_query(req, "follow"), *last = httpd_header(req, "Last-Event-ID");

    *rq = (struct event_stream_req){0};
    rq->caller = *who;
    if (type && event_filter_types(&rq->filter, type) < 0)
        return httpd_error(req, 400, "bad_request", "type",
                           "type must be a comma-separated list of at most %d event types",
                           EVENT_FILTER_MAX_TYPES),
               -EINVAL;
    if (guest)
        strscpy(rq->filter.guest, guest, sizeof(rq->filter.guest));
    if (node)
        strscpy(rq->filter.node, node, sizeof(rq->filter.node));
    /* A tenant reads its project's events only (node events have none);
     * asking for another project reads nothing, as a guest list does. */
    if (who->role == AUTH_TENANT) {
        rq->filter.nothing = project && strcmp(project, who->project) != 0;
        project = who->project;
    }
    if (project)
        strscpy(rq->filter.project, project, sizeof(rq->filter.project));
    rq->sse = accepts(req, "text/event-stream");
    rq->follow = rq->sse || (follow && !strcmp(follow, "true"));
    *stream = rq->sse || accepts(req, "application/x-ndjson") || accepts(req, "application/jsonl");
    /* SSE's reconnection header wins: it is where the client stands. */
    const char *from = last && *last ? last : after;
    const char *field = last && *last ? "Last-Event-ID" : "after";
    if (from && parse_seq(from, &rq->after) < 0)
        return httpd_error(req, 400, "bad_request", field,
                           "the resume point must be an event sequence number"),
               -EINVAL;
    /* Past the newest event: not a point this master's log had (another
     * master's, or a store put back from a backup). Waiting for it would
     * silently skip every event up to it. */
    if (from && rq->after > events_committed(m))
        return httpd_error(req, 400, "bad_request", field,
                           "the resume point %llu is past the newest event (%llu)",
                           (unsigned long long)rq->after, (unsigned long long)events_committed(m)),
               -EINVAL;
    /* Without a resume point a follower starts with what happens next,
     * anyone else with the oldest event kept. */
    if (!from && rq->follow)
        rq->after = events_committed(m);
    return 0;
}

/* ---- the JSON page ---- */

struct page {
    const struct event_filter *f; /* what to keep */
    uint64_t committed;           /* not past this */
    json_t *events;               /* the page */
    unsigned limit;               /* its size */
    uint64_t next;                /* the last seq looked at */
};

static int
page_one(void *userdata, const struct db_event *e)
{
    struct page *p = userdata;

    if (e->seq > p->committed || json_array_size(p->events) >= p->limit)
        return 1;
    p->next = e->seq;
    if (event_filter_match(p->f, e))
        json_array_append_new(p->events, event_json(e));
    return 0;
}

/* ?tail=N: the newest N events that match, read backwards from the newest
 * committed, answered oldest first; next is the newest committed, where a
 * follower resumes. */
struct tail {
    const struct event_filter *f; /* what to keep */
    uint64_t committed;           /* not past this */
    json_t *newest_first;         /* what matched so far */
    unsigned want;                /* N */
    uint64_t low;                 /* the lowest seq looked at */
};

static int
tail_one(void *userdata, const struct db_event *e)
{
    struct tail *t = userdata;

    t->low = e->seq;
    if (e->seq <= t->committed && event_filter_match(t->f, e))
        json_array_append_new(t->newest_first, event_json(e));
    return json_array_size(t->newest_first) >= t->want;
}

static void
tail(master_t *m, struct http_req *req, const struct event_stream_req *rq, uint64_t n)
{
    struct tail t = {.f = &rq->filter,
                     .committed = events_committed(m),
                     .newest_first = json_array(),
                     .want = n > MASTER_LIST_MAX ? MASTER_LIST_MAX : (unsigned)n};
    uint64_t before = t.committed + 1;
    int r = 0;

    /* Filtered tails read on backwards until they are full or the log ends. */
    while (json_array_size(t.newest_first) < t.want && before > 1) {
        t.low = before;
        r = db_event_list_before(m->db, before, 500, tail_one, &t);
        if (r <= 0 || t.low == before)
            break;
        before = t.low;
    }
    if (r < 0) {
        json_decref(t.newest_first);
        http_reply_errno(req, r, NULL, "cannot read the events: %s", db_errmsg(m->db));
        return;
    }
    json_t *events = json_array();
    for (size_t i = json_array_size(t.newest_first); i > 0; i--)
        json_array_append(events, json_array_get(t.newest_first, i - 1));
    json_decref(t.newest_first);
    httpd_respond(req, 200,
                  json_pack("{s:o, s:I}", "events", events, "next", (json_int_t)t.committed));
}

static void
page(master_t *m, struct http_req *req, const struct event_stream_req *rq)
{
    const char *l = httpd_query(req, "limit"); /* 1 to MASTER_LIST_MAX (api.c's table) */
    uint64_t first = 0, last = 0;
    struct page p = {.f = &rq->filter, .committed = events_committed(m), .next = rq->after};

    p.limit = l ? (unsigned)strtoul(l, NULL, 10) : MASTER_LIST_DEFAULT;
    int r = db_event_bounds(m->db, &first, &last);
    json_t *o = json_object();
    /* What retention dropped between the resume point and the oldest kept. */
    uint64_t gap_to = first ? first - 1 : p.committed;
    if (r >= 0 && rq->after < gap_to && rq->after < p.committed) {
        json_object_set_new(
            o, "gap",
            json_pack("{s:I, s:I}", "from", (json_int_t)(rq->after + 1), "to", (json_int_t)gap_to));
        p.next = gap_to;
    }
    p.events = json_array();
    /* Filtered pages read on until they are full or the log ends. */
    while (r >= 0 && json_array_size(p.events) < p.limit && p.next < p.committed) {
        uint64_t before = p.next;
        r = db_event_list(m->db, p.next, 500, page_one, &p);
        if (p.next == before)
            break;
    }
    if (r < 0) {
        json_decref(o);
        json_decref(p.events);
        http_reply_errno(req, r, NULL, "cannot read the events: %s", db_errmsg(m->db));
        return;
    }
    json_object_set_new(o, "events", p.events);
    json_object_set_new(o, "next", json_integer((json_int_t)p.next));
    httpd_respond(req, 200, o);
}

void
h_events(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct event_stream_req rq;
    bool stream = false;

    if (parse_request(m, req, &am->caller, &rq, &stream) < 0)
        return;
    const char *t = httpd_query(req, "tail"); /* 1 to MASTER_LIST_MAX (api.c's table) */
    if (t) {
        uint64_t n = strtoull(t, NULL, 10);
        const char *lei = httpd_header(req, "Last-Event-ID");
        if (httpd_query(req, "after") || (lei && *lei) || httpd_query(req, "limit"))
            httpd_error(req, 400, "bad_request", "tail",
                        "tail reads back from the newest event: it goes without after, "
                        "Last-Event-ID and limit");
        else if (stream)
            httpd_error(req, 400, "bad_request", "tail",
                        "tail answers a page of JSON; follow from its next with after=");
        else
            tail(m, req, &rq, n);
        return;
    }
    if (!stream) {
        page(m, req, &rq);
        return;
    }
    int r = event_stream_open(m, req, &rq);
    if (r == -EAGAIN)
        httpd_error(req, 503, "unavailable", NULL, "too many event streams are open (%d)",
                    EVENT_STREAMS_MAX);
    else if (r == -EMFILE)
        httpd_error(req, 503, "unavailable", NULL,
                    "this caller has %d event streams open: close one first",
                    EVENT_STREAMS_PER_CALLER);
    else if (r < 0)
        http_reply_errno(req, r, NULL, "cannot open the event stream: %s", strerror(-r));
}
