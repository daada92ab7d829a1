/* A response body that stays open (http_stream.h). */
#include "master/http_stream.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

struct http_stream {
    pthread_mutex_t lock;        /* guards everything below but the loop-only fields */
    struct MHD_Connection *conn; /* the connection, once libmicrohttpd has the response */
    bool suspended;              /* the reader found nothing and suspended the connection */
    char *buf;                   /* bytes not sent yet */
    size_t len;                  /* bytes in buf */
    size_t max;                  /* capacity of buf */
    uint64_t sent;               /* bytes handed to libmicrohttpd so far */
    bool ended;                  /* the loop writes no more */
    bool gone;                   /* libmicrohttpd is done with it (client away) */
    bool want_room;              /* the loop waits for the buffer to drain */
    bool note_room;              /* a ROOM note is due */
    bool note_gone;              /* a GONE note is due */
    bool wake_closed;            /* the loop closed wake: nobody may send on it */
    int refs;                    /* the loop's and libmicrohttpd's */
    uv_async_t wake;             /* tells the loop about room or a departure */
    http_stream_fn fn;           /* the loop's callback (loop only) */
    void *userdata;              /* passed to fn (loop only) */
    bool released;               /* the loop let go (loop only) */
};

static void
unref_locked(http_stream_t *s, bool *free_it)
{
    *free_it = --s->refs == 0;
}

static void
stream_free(http_stream_t *s)
{
    pthread_mutex_destroy(&s->lock);
    free(s->buf);
    free(s);
}

static void
on_wake(uv_async_t *a)
{
    http_stream_t *s = a->data;

    pthread_mutex_lock(&s->lock);
    bool room = s->note_room, gone = s->note_gone;
    s->note_room = s->note_gone = false;
    pthread_mutex_unlock(&s->lock);
    if (s->released)
        return;
    if (gone)
        s->fn(s->userdata, HTTP_STREAM_GONE);
    else if (room)
        s->fn(s->userdata, HTTP_STREAM_ROOM);
}

static void
on_wake_closed(uv_handle_t *h)
{
    http_stream_t *s = h->data;
    bool free_it;

    pthread_mutex_lock(&s->lock);
    unref_locked(s, &free_it);
    pthread_mutex_unlock(&s->lock);
    if (free_it)
        stream_free(s);
}

http_stream_t *
http_stream_new(uv_loop_t *loop, size_t max, http_stream_fn fn, void *userdata)
{
    http_stream_t *s = xcalloc(1, sizeof(*s));

    pthread_mutex_init(&s->lock, NULL);
    s->max = max;
    s->buf = xmalloc(max);
    s->refs = 1;
    s->fn = fn;
    s->userdata = userdata;
    uv_async_init(loop, &s->wake, on_wake);
    s->wake.data = s;
    return s;
}

/* With the lock held: tells the loop, unless it is gone. */
static void
wake_locked(http_stream_t *s)
{
    if (!s->wake_closed)
        uv_async_send(&s->wake);
}

/* With the lock held: the connection that waits for data to resume once
 * the lock is let go (NULL = none). A suspended connection is never closed
 * by libmicrohttpd, so it is still there when the caller resumes it. */
static struct MHD_Connection *
to_resume_locked(http_stream_t *s)
{
    if (!s->suspended || s->gone)
        return NULL;
    s->suspended = false;
    return s->conn;
}

int
http_stream_write(http_stream_t *s, const char *buf, size_t len)
{
    struct MHD_Connection *resume = NULL;
    int r = 0;

    pthread_mutex_lock(&s->lock);
    if (s->gone || s->ended) {
        r = -EPIPE;
    } else if (len > s->max - s->len) {
        s->want_room = true;
        r = -ENOBUFS;
    } else {
        memcpy(s->buf + s->len, buf, len);
        s->len += len;
        resume = to_resume_locked(s);
    }
    pthread_mutex_unlock(&s->lock);
    if (resume)
        MHD_resume_connection(resume);
    return r;
}

size_t
http_stream_room(http_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    size_t room = s->gone || s->ended ? 0 : s->max - s->len;
    pthread_mutex_unlock(&s->lock);
    return room;
}

void
http_stream_end(http_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->ended = true;
    struct MHD_Connection *resume = to_resume_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (resume)
        MHD_resume_connection(resume);
}

void
http_stream_release(http_stream_t *s)
{
    if (!s || s->released)
        return;
    s->released = true;
    http_stream_end(s);
    pthread_mutex_lock(&s->lock);
    s->wake_closed = true;
    pthread_mutex_unlock(&s->lock);
    uv_close((uv_handle_t *)&s->wake, on_wake_closed);
}

/* ---- libmicrohttpd's side ---- */

static ssize_t
reader(void *cls, uint64_t pos, char *out, size_t max)
{
    http_stream_t *s = cls;
    ssize_t n;

    (void)pos;
    pthread_mutex_lock(&s->lock);
    /* Nothing yet: the connection sleeps until the loop writes (returning 0
     * without suspending would spin the listener's thread). */
    if (!s->len && !s->ended) {
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    if (!s->len) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    n = (ssize_t)(s->len < max ? s->len : max);
    memmove(out, s->buf, (size_t)n);
    memmove(s->buf, s->buf + n, s->len - (size_t)n);
    s->len -= (size_t)n;
    s->sent += (uint64_t)n;
    if (s->want_room && s->len <= s->max / 2) {
        s->want_room = false;
        s->note_room = true;
        wake_locked(s);
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void
reader_free(void *cls)
{
    http_stream_t *s = cls;
    bool free_it;

    pthread_mutex_lock(&s->lock);
    s->gone = true;
    s->note_gone = true;
    wake_locked(s);
    unref_locked(s, &free_it);
    pthread_mutex_unlock(&s->lock);
    if (free_it)
        stream_free(s);
}

void *
http_stream_mhd_response(http_stream_t *s, void *conn)
{
    pthread_mutex_lock(&s->lock);
    s->refs++;
    s->conn = conn;
    pthread_mutex_unlock(&s->lock);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, s, reader_free);
    if (!r)
        reader_free(s);
    return r;
}

http_stream_t *
http_stream_ref(http_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->refs++;
    pthread_mutex_unlock(&s->lock);
    return s;
}

void
http_stream_unref(http_stream_t *s)
{
    bool free_it;

    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    unref_locked(s, &free_it);
    pthread_mutex_unlock(&s->lock);
    if (free_it)
        stream_free(s);
}

uint64_t
http_stream_sent(http_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->sent;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void
http_stream_abandon(http_stream_t *s)
{
    pthread_mutex_lock(&s->lock);
    s->gone = true;
    s->note_gone = true;
    wake_locked(s);
    pthread_mutex_unlock(&s->lock);
}
