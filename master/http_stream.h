/* A response body that stays open: the loop thread writes into a bounded
 * buffer, libmicrohttpd's connection thread sends what is there (the body
 * of a libmicrohttpd callback response), and the loop hears when the client
 * took enough for more to fit, or went away. The event stream
 * (GET /v1/events) is its user.
 *
 * Threads: http_stream_new, _write, _room, _end and _release on the loop
 * thread; http_stream_mhd_response and the body's reader on libmicrohttpd's
 * listener thread (httpd.c). A lock guards the buffer between them; the
 * loop is woken through a uv_async of the stream's own.
 *
 * The server's one epoll thread serves every connection, so the reader
 * never waits: when the buffer is empty it suspends the connection
 * (MHD_suspend_connection) and the next write, or the end, resumes it. The
 * keepalives the stream's user writes (a few bytes every few seconds) are
 * what notices a client that went away. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_stream http_stream_t;

enum http_stream_note {
    HTTP_STREAM_ROOM, /* the buffer drained below half: write more */
    HTTP_STREAM_GONE, /* the client went away (or the server stops): stop writing, release */
};

/* Called on the loop thread. */
typedef void (*http_stream_fn)(void *userdata, enum http_stream_note note);

/* A stream with a buffer of max bytes. */
http_stream_t *http_stream_new(uv_loop_t *loop, size_t max, http_stream_fn fn, void *userdata);
/* Appends len bytes: 0, -ENOBUFS when they do not fit now (nothing is
 * written; a ROOM note follows when the client drained half the buffer),
 * -EPIPE when the client is gone or the stream was ended. */
int http_stream_write(http_stream_t *s, const char *buf, size_t len);
/* Bytes that fit now. */
size_t http_stream_room(http_stream_t *s);
/* No more data: the body ends once the buffer is sent. */
void http_stream_end(http_stream_t *s);
/* The loop is done with the stream (after end or a GONE note; ends it
 * too). No note comes after. The memory goes when both sides let go. */
void http_stream_release(http_stream_t *s);

/* libmicrohttpd's side (httpd.c): the response whose body is the stream,
 * for conn (a struct MHD_Connection *); it holds a reference until
 * libmicrohttpd frees it. Returns a struct MHD_Response *, or NULL. */
void *http_stream_mhd_response(http_stream_t *s, void *conn);
/* Another reference, for a reader of http_stream_sent (the access log),
 * and its end. */
http_stream_t *http_stream_ref(http_stream_t *s);
void http_stream_unref(http_stream_t *s);
/* Bytes libmicrohttpd took from the stream so far. */
uint64_t http_stream_sent(http_stream_t *s);
/* httpd.c could not hand the stream to a connection (the client's request
 * was abandoned): the stream is gone. */
void http_stream_abandon(http_stream_t *s);
