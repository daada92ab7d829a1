/* The event stream (events_stream.h). */
#include "master/events_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/api.h"
#include "master/events.h"
#include "master/http_stream.h"

/* One open GET /v1/events. */
struct event_stream {
    master_t *m;               /* the master */
    http_stream_t *hs;         /* the response body */
    struct event_filter f;     /* what the client wants */
    uint64_t cursor;           /* the last seq written or passed over */
    bool sse;                  /* Server-Sent Events, else JSON lines */
    bool follow;               /* stays open for new events */
    struct caller caller;      /* who opened it (per-caller bound; its token's end ends it) */
    bool behind;               /* the buffer was full: waits for a ROOM note */
    bool ended;                /* the body was ended (no follow) */
    uint64_t last_write;       /* monotonic ms of the last write */
    struct event_stream *next; /* in the master's list */
};

struct event_streams {
    struct event_stream *list; /* open streams */
    unsigned n;                /* entries in list */
    bool subscribed;           /* events_subscribe done */
};

#define FILL_BATCH 64 /* events read from the store at a time */

/* ---- filters and JSON ---- */

int
event_filter_types(struct event_filter *f, const char *list)
{
    const char *p = list;

    f->n_types = 0;
    while (p && *p) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof(f->types[0]) || f->n_types == EVENT_FILTER_MAX_TYPES)
            return -EINVAL;
        for (size_t i = 0; i < len; i++)
            if (!(p[i] == '.' || p[i] == '*' || p[i] == '_' || p[i] == '-' ||
                  (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')))
                return -EINVAL;
        memcpy(f->types[f->n_types], p, len);
        f->types[f->n_types++][len] = '\0';
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

static bool
type_matches(const char *want, const char *type)
{
    size_t n = strlen(want);

    if (n >= 2 && want[n - 1] == '*' && want[n - 2] == '.')
        return strncmp(want, type, n - 1) == 0;
    return strcmp(want, type) == 0;
}

bool
event_filter_match(const struct event_filter *f, const struct db_event *e)
{
    if (f->nothing)
        return false;
    if (f->project[0] && (!e->project || strcmp(f->project, e->project) != 0))
        return false;
    if (f->guest[0] && (!e->guest || strcmp(f->guest, e->guest) != 0))
        return false;
    if (f->node[0] && (!e->node || strcmp(f->node, e->node) != 0))
        return false;
    if (!f->n_types)
        return true;
    for (unsigned i = 0; i < f->n_types; i++)
        if (type_matches(f->types[i], e->type))
            return true;
    return false;
}

static json_t *
str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *
event_json(const struct db_event *e)
{
    char time[40];
    json_t *data = e->data ? json_loads(e->data, 0, NULL) : NULL;

    api_time_format(e->time_ms, time, sizeof(time));
    json_t *o = json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)e->seq, "time", time, "type",
                          e->type ? e->type : "");
    json_object_set_new(o, "node", str_or_null(e->node));
    json_object_set_new(o, "guest", str_or_null(e->guest));
    json_object_set_new(o, "guest_id", str_or_null(e->guest_id));
    json_object_set_new(o, "project", str_or_null(e->project));
    json_object_set_new(o, "message", str_or_null(e->message));
    json_object_set_new(o, "data", json_is_object(data) ? data : json_object());
    if (data && !json_is_object(data))
        json_decref(data);
    return o;
}

/* The bytes of one event in the stream's format (malloc'd). */
static char *
format_event(const struct event_stream *s, const char *type, uint64_t seq, json_t *o)
{
    _cleanup_free_ char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    char *out = NULL;

    json_decref(o);
    if (s->sse)
        out = xasprintf("id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)seq, type, text);
    else
        out = xasprintf("%s\n", text);
    return out;
}

/* ---- writing ---- */

static struct event_streams *
streams_of(master_t *m)
{
    if (!m->streams)
        m->streams = xcalloc(1, sizeof(*m->streams));
    return m->streams;
}

static int
put(struct event_stream *s, char *text)
{
    int r = http_stream_write(s->hs, text, strlen(text));

    free(text);
    if (r == 0)
        s->last_write = time_mono_ms();
    else if (r == -ENOBUFS)
        s->behind = true;
    return r;
}

/* The numbers retention dropped between the cursor and what is stored. */
static int
write_gap(struct event_stream *s, uint64_t committed)
{
    uint64_t first = 0, last = 0, to;
    int r = db_event_bounds(s->m->db, &first, &last);

    if (r < 0)
        return r;
    if (first == 0)
        to = committed; /* nothing stored at all */
    else if (s->cursor + 1 < first)
        to = first - 1;
    else
        return 0;
    if (to <= s->cursor)
        return 0;
    uint64_t from = s->cursor + 1;
    json_t *o = json_pack("{s:I, s:s, s:n, s:n, s:n, s:n, s:s, s:{s:I, s:I}}", "seq",
                          (json_int_t)to, "type", "gap", "node", "guest", "guest_id", "project",
                          "message", "events were dropped by retention before they were read",
                          "data", "from", (json_int_t)from, "to", (json_int_t)to);
    r = put(s, format_event(s, "gap", to, o));
    if (r == 0)
        s->cursor = to;
    return r;
}

struct fill_ctx {
    struct event_stream *s; /* the stream */
    uint64_t committed;     /* not past this */
    int err;                /* a write's failure */
};

static int
fill_one(void *userdata, const struct db_event *e)
{
    struct fill_ctx *c = userdata;
    struct event_stream *s = c->s;

    if (e->seq > c->committed)
        return 1;
    if (event_filter_match(&s->f, e)) {
        c->err = put(s, format_event(s, e->type, e->seq, event_json(e)));
        if (c->err < 0)
            return 1;
    }
    s->cursor = e->seq;
    return 0;
}

static void stream_remove(struct event_stream *s);

/* Writes what the store has after the cursor, up to the newest committed
 * event, until the buffer is full. */
static void
fill(struct event_stream *s)
{
    uint64_t committed = events_committed(s->m);
    int r = 0;

    while (!s->behind && !s->ended && s->cursor < committed && r >= 0) {
        uint64_t before = s->cursor;
        r = write_gap(s, committed);
        if (r < 0)
            break;
        struct fill_ctx c = {.s = s, .committed = committed};
        r = db_event_list(s->m->db, s->cursor, FILL_BATCH, fill_one, &c);
        if (r >= 0 && c.err < 0)
            r = c.err;
        if (s->cursor == before)
            break; /* nothing more below committed (a filtered tail) */
    }
    if (r < 0 && r != -ENOBUFS) {
        log_debug("event stream: %s, closing it", strerror(-r));
        stream_remove(s);
        return;
    }
    if (!s->follow && !s->behind && s->cursor >= committed && !s->ended) {
        s->ended = true;
        http_stream_end(s->hs);
    }
}

static void
stream_remove(struct event_stream *s)
{
    struct event_streams *ss = streams_of(s->m);

    for (struct event_stream **p = &ss->list; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            ss->n--;
            break;
        }
    http_stream_release(s->hs);
    free(s);
}

static void
on_note(void *userdata, enum http_stream_note note)
{
    struct event_stream *s = userdata;

    if (note == HTTP_STREAM_GONE) {
        stream_remove(s);
        return;
    }
    s->behind = false;
    fill(s);
}

/* A committed event: straight into the streams that are caught up. */
static void
on_event(void *userdata, const struct db_event *e)
{
    struct event_streams *ss = streams_of(userdata);

    for (struct event_stream *s = ss->list, *n; s; s = n) {
        n = s->next;
        if (s->behind || s->ended || e->seq <= s->cursor)
            continue;
        if (e->seq != s->cursor + 1) {
            fill(s);
            continue;
        }
        if (event_filter_match(&s->f, e) &&
            put(s, format_event(s, e->type, e->seq, event_json(e))) < 0)
            continue;
        s->cursor = e->seq;
    }
}

int
event_stream_open(master_t *m, struct http_req *req, const struct event_stream_req *rq)
{
    struct event_streams *ss = streams_of(m);

    if (ss->n >= EVENT_STREAMS_MAX)
        return -EAGAIN;
    unsigned mine = 0;
    for (struct event_stream *o = ss->list; o; o = o->next)
        mine += !strcmp(o->caller.who, rq->caller.who);
    if (mine >= EVENT_STREAMS_PER_CALLER)
        return -EMFILE;
    if (!ss->subscribed) {
        int r = events_subscribe(m, on_event, m);
        if (r < 0)
            return r;
        ss->subscribed = true;
    }
    struct event_stream *s = xcalloc(1, sizeof(*s));
    s->m = m;
    s->f = rq->filter;
    s->cursor = rq->after;
    s->caller = rq->caller;
    s->sse = rq->sse;
    s->follow = rq->sse || rq->follow;
    s->last_write = time_mono_ms();
    s->hs = http_stream_new(m->loop, EVENT_STREAM_BUFFER, on_note, s);
    s->next = ss->list;
    ss->list = s;
    ss->n++;
    httpd_respond_stream(req, 200, rq->sse ? "text/event-stream" : "application/x-ndjson", s->hs);
    /* SSE clients learn the retry delay once; the first bytes also tell
     * the client the stream is open. */
    if (s->sse)
        (void)put(s, xstrdup("retry: 2000\n\n"));
    fill(s);
    return 0;
}

/* Ends the streams of a token deleted (revoked) or expired by real: the
 * body ends, and the client's next request with the token is refused. */
static void
streams_over(master_t *m, const char *revoked, uint64_t real)
{
    for (struct event_stream *s = m->streams ? m->streams->list : NULL, *n; s; s = n) {
        n = s->next;
        if (auth_caller_over(&s->caller, revoked, real)) {
            log_notice("event stream of %s ended: the token %s", s->caller.who,
                       revoked ? "was deleted" : "expired");
            stream_remove(s);
        }
    }
}

void
event_streams_revoke(master_t *m, const char *token)
{
    streams_over(m, token, 0);
}

void
event_streams_tick(master_t *m)
{
    uint64_t now = time_mono_ms();

    streams_over(m, NULL, time_real_ms());
    if (!m->streams)
        return;
    for (struct event_stream *s = m->streams->list; s; s = s->next)
        if (!s->ended && !s->behind && now - s->last_write >= EVENT_STREAM_KEEPALIVE_MS)
            (void)put(s, xstrdup(s->sse ? ": keepalive\n\n" : "\n"));
}

void
event_streams_shutdown(master_t *m)
{
    if (!m->streams)
        return;
    while (m->streams->list)
        stream_remove(m->streams->list);
    if (m->streams->subscribed)
        events_unsubscribe(m, m);
    free(m->streams);
    m->streams = NULL;
}

unsigned
event_streams_count(master_t *m)
{
    return m->streams ? m->streams->n : 0;
}
