/* Compact JSON text of a jansson value (master/jtext.h). */
#include "master/jtext.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/textbuf.h"

/* Nesting deeper than this is refused, as jansson's JSON_PARSER_MAX_DEPTH
 * bounds its own recursion (a tree built in code is never this deep). */
#define JTEXT_MAX_DEPTH 2048

/* One UTF-8 sequence at s (n bytes left) as a code point, its length in
 * *len; -1 where jansson's utf8_iterate fails (overlong, surrogate, past
 * U+10FFFF, truncated). */
static int32_t
utf8_one(const unsigned char *s, size_t n, size_t *len)
{
    unsigned char u = s[0];
    size_t k;
    int32_t cp;

    if (u < 0x80) {
        *len = 1;
        return u;
    }
    if (u < 0xC2 || u > 0xF4)
        return -1;
    k = u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
    if (n < k)
        return -1;
    cp = u & (k == 2 ? 0x1F : k == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (k == 3 && cp < 0x800) ||
        (k == 4 && cp < 0x10000))
        return -1;
    *len = k;
    return cp;
}

static int
put_string(struct textbuf *b, const char *str, size_t n, bool ascii)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;

    textbuf_putc(b, '"');
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        int32_t cp = utf8_one(s + i, n - i, &k);
        if (cp < 0)
            return -1;
        if (cp >= 0x80 && !ascii) {
            i += k;
            continue;
        }
        textbuf_put(b, str + run, i - run);
        char seq[16];
        switch (cp) {
        case '\\':
            textbuf_put(b, "\\\\", 2);
            break;
        case '"':
            textbuf_put(b, "\\\"", 2);
            break;
        case '\b':
            textbuf_put(b, "\\b", 2);
            break;
        case '\f':
            textbuf_put(b, "\\f", 2);
            break;
        case '\n':
            textbuf_put(b, "\\n", 2);
            break;
        case '\r':
            textbuf_put(b, "\\r", 2);
            break;
        case '\t':
            textbuf_put(b, "\\t", 2);
            break;
        default:
            if (cp < 0x10000) {
                snprintf(seq, sizeof(seq), "\\u%04X", (unsigned)cp);
                textbuf_put(b, seq, 6);
            } else {
                int32_t v = cp - 0x10000;
                snprintf(seq, sizeof(seq), "\\u%04X\\u%04X", (unsigned)(0xD800 | (v >> 10)),
                         (unsigned)(0xDC00 | (v & 0x3FF)));
                textbuf_put(b, seq, 12);
            }
        }
        i += k;
        run = i;
    }
    textbuf_put(b, str + run, n - run);
    textbuf_putc(b, '"');
    return 0;
}

/* jansson's jsonp_dtostr with its default precision (17). */
static int
put_real(struct textbuf *b, double d)
{
    char buf[64];

    if (!isfinite(d))
        return -1;
    int len = snprintf(buf, sizeof(buf), "%.17g", d);
    if (len < 0 || (size_t)len >= sizeof(buf) - 3)
        return -1;
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        buf[len++] = '.';
        buf[len++] = '0';
        buf[len] = '\0';
    }
    /* no '+' and no leading zeros in an exponent */
    char *start = strchr(buf, 'e');
    if (start) {
        start++;
        char *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)len - (size_t)(end - buf) + 1);
            len -= (int)(end - start);
        }
    }
    textbuf_put(b, buf, (size_t)len);
    return 0;
}

static int
put_value(struct textbuf *b, const json_t *v, bool ascii, unsigned depth)
{
    char num[32];

    if (depth > JTEXT_MAX_DEPTH)
        return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *val;
        bool first = true;
        textbuf_putc(b, '{');
        json_object_keylen_foreach((json_t *)v, key, key_len, val)
        {
            if (!first)
                textbuf_putc(b, ',');
            first = false;
            if (put_string(b, key, key_len, ascii) < 0)
                return -1;
            textbuf_putc(b, ':');
            if (put_value(b, val, ascii, depth + 1) < 0)
                return -1;
        }
        textbuf_putc(b, '}');
        return 0;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        textbuf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                textbuf_putc(b, ',');
            if (put_value(b, json_array_get(v, i), ascii, depth + 1) < 0)
                return -1;
        }
        textbuf_putc(b, ']');
        return 0;
    }
    case JSON_STRING:
        return put_string(b, json_string_value(v), json_string_length(v), ascii);
    case JSON_INTEGER: {
        /* By hand, not snprintf's "%lld" (~800 instructions a number, a
         * guest's reply has a score of them). */
        json_int_t x = json_integer_value(v);
        unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
        char *end = num + sizeof(num), *p = end;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (x < 0)
            *--p = '-';
        textbuf_put(b, p, (size_t)(end - p));
        return 0;
    }
    case JSON_REAL:
        return put_real(b, json_real_value(v));
    case JSON_TRUE:
        textbuf_put(b, "true", 4);
        return 0;
    case JSON_FALSE:
        textbuf_put(b, "false", 5);
        return 0;
    case JSON_NULL:
        textbuf_put(b, "null", 4);
        return 0;
    }
    return -1;
}

char *
jtext_dumps(const json_t *v, bool ascii)
{
    struct textbuf b = {0};

    if (!json_is_object(v) && !json_is_array(v))
        return NULL;
    if (put_value(&b, v, ascii, 0) < 0) {
        free(b.p);
        return NULL;
    }
    return textbuf_str(&b);
}
