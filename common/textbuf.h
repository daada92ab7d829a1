/* A growable text buffer for writers that put their output piece by piece
 * on a hot path (the compact JSON writer master/jtext.c, the /metrics
 * exposition master/metrics.c). stdio's open_memstream spent most of a
 * large /metrics scrape in its own bookkeeping and in zero-filling its
 * growth; json_dumps's callbacks most of a reply's text. The puts are
 * inline: a call only when the buffer grows.
 *
 * A plain value: {0} is empty (the first growth allocates 1 KiB), or
 * textbuf_init for a writer that knows it writes more. The text is not
 * NUL-terminated until textbuf_str; p is malloc's, the caller frees it.
 * Out of memory aborts (common/mem.h). */
#pragma once

#include <stddef.h>
#include <string.h>

struct textbuf {
    char *p;    /* the text so far, NULL while nothing is allocated */
    size_t len; /* its length */
    size_t cap; /* bytes allocated at p */
};

/* An empty buffer with cap (> 0) bytes allocated. */
void textbuf_init(struct textbuf *b, size_t cap);
/* Grows b to hold n more bytes and a NUL: the capacity doubles until it
 * fits (from 1 KiB where nothing was allocated). */
void textbuf_grow(struct textbuf *b, size_t n);
/* Appends printf's text, or nothing where vsnprintf fails. */
void textbuf_printf(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Room for n more bytes and a NUL. */
static inline void
textbuf_reserve(struct textbuf *b, size_t n)
{
    if (b->len + n + 1 > b->cap)
        textbuf_grow(b, n);
}

static inline void
textbuf_put(struct textbuf *b, const char *s, size_t n)
{
    textbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void
textbuf_putc(struct textbuf *b, char c)
{
    textbuf_reserve(b, 1);
    b->p[b->len++] = c;
}

static inline void
textbuf_puts(struct textbuf *b, const char *s)
{
    textbuf_put(b, s, strlen(s));
}

/* The text, NUL-terminated (allocated even when empty). */
static inline char *
textbuf_str(struct textbuf *b)
{
    textbuf_reserve(b, 0);
    b->p[b->len] = '\0';
    return b->p;
}
