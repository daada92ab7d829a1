/* A growable text buffer (common/textbuf.h). */
#include "common/textbuf.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/mem.h"

#define TEXTBUF_FIRST 1024 /* the first allocation of a buffer left at {0} */

void
textbuf_init(struct textbuf *b, size_t cap)
{
    b->p = xmalloc(cap);
    b->len = 0;
    b->cap = cap;
}

void
textbuf_grow(struct textbuf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : TEXTBUF_FIRST;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void
textbuf_printf(struct textbuf *b, const char *fmt, ...)
{
    va_list ap;

    textbuf_reserve(b, 0);
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k >= b->cap - b->len) {
        textbuf_reserve(b, (size_t)k);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)k;
}
