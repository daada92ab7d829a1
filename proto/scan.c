/* The hostile-input scanner (scan.h): bounds every length, count and the
 * nesting of a frame before msgpack-c allocates anything for it. */
#include "proto/scan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "proto/msg.h"

/* Writes the reason and returns -EBADMSG. */
static int _printf_(3, 4) scan_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* Reads a big-endian unsigned of n bytes. */
static uint64_t
be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* What one msgpack header says. */
struct item {
    enum { IT_SCALAR, IT_STR, IT_BIN, IT_EXT, IT_ARRAY, IT_MAP, IT_UINT } kind; /* class */
    size_t hdr; /* bytes of the header itself (type byte and length/value) */
    uint64_t n; /* str/bin/ext payload bytes, array/map entries, or the uint value */
};

/* Parses the header at p (avail bytes, avail >= 1). Returns 0 or -EBADMSG
 * when the header itself is cut or uses the unused byte 0xc1. */
static int
parse_header(const uint8_t *p, size_t avail, struct item *it)
{
    uint8_t b = p[0];
    unsigned w = 0; /* bytes of length or value following the type byte */

    it->hdr = 1;
    it->n = 0;
    if (b <= 0x7f) {
        it->kind = IT_UINT;
        it->n = b;
        return 0;
    }
    if (b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        it->kind = IT_SCALAR;
        return 0;
    }
    if ((b & 0xf0) == 0x80 || (b & 0xf0) == 0x90) {
        it->kind = (b & 0xf0) == 0x80 ? IT_MAP : IT_ARRAY;
        it->n = b & 0x0f;
        return 0;
    }
    if ((b & 0xe0) == 0xa0) {
        it->kind = IT_STR;
        it->n = b & 0x1f;
        return 0;
    }
    switch (b) {
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32 */
        it->kind = IT_BIN;
        w = 1u << (b - 0xc4);
        break;
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32: length, then a type byte */
        it->kind = IT_EXT;
        w = 1u << (b - 0xc7);
        break;
    case 0xca:
    case 0xcb: /* float 32/64 */
        it->kind = IT_SCALAR;
        it->hdr = 1 + (b == 0xca ? 4 : 8);
        return it->hdr <= avail ? 0 : -EBADMSG;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: /* uint 8..64 */
        it->kind = IT_UINT;
        w = 1u << (b - 0xcc);
        if (1 + w > avail)
            return -EBADMSG;
        it->hdr = 1 + w;
        it->n = be(p + 1, w);
        return 0;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: /* int 8..64 */
        it->kind = IT_SCALAR;
        it->hdr = 1 + (1u << (b - 0xd0));
        return it->hdr <= avail ? 0 : -EBADMSG;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1..16 */
        it->kind = IT_EXT;
        it->hdr = 2;
        it->n = 1u << (b - 0xd4);
        return it->hdr <= avail ? 0 : -EBADMSG;
    case 0xd9:
    case 0xda:
    case 0xdb: /* str 8/16/32 */
        it->kind = IT_STR;
        w = 1u << (b - 0xd9);
        break;
    case 0xdc:
    case 0xdd: /* array 16/32 */
        it->kind = IT_ARRAY;
        w = b == 0xdc ? 2 : 4;
        break;
    case 0xde:
    case 0xdf: /* map 16/32 */
        it->kind = IT_MAP;
        w = b == 0xde ? 2 : 4;
        break;
    default: /* 0xc1: never used */
        return -EBADMSG;
    }
    it->hdr = 1 + w + (it->kind == IT_EXT ? 1 : 0);
    if (it->hdr > avail)
        return -EBADMSG;
    it->n = be(p + 1, w);
    return 0;
}

/* A str, bin or ext payload of it.n bytes at buf[off]: it must lie inside
 * the frame and under its cap. */
static int
check_payload(const struct item *it, size_t off, size_t avail, char *err, size_t errlen)
{
    uint64_t cap = it->kind == IT_BIN ? PROTO_MAX_EXEC_OUT : PROTO_MAX_STRING;

    if (it->n > avail)
        return scan_fail(err, errlen, "length %llu at byte %zu exceeds the %zu bytes left",
                         (unsigned long long)it->n, off - it->hdr, avail);
    if (it->n > cap)
        return scan_fail(err, errlen, "length %llu at byte %zu exceeds %llu",
                         (unsigned long long)it->n, off - it->hdr, (unsigned long long)cap);
    return 0;
}

/* An array or map header: every entry takes at least one byte, so a count
 * larger than what is left is a lie, and refused before anyone allocates. */
static int
check_container(const struct item *it, size_t off, size_t avail, unsigned depth, char *err,
                size_t errlen)
{
    const char *what = it->kind == IT_MAP ? "map" : "array";
    uint64_t entries = it->kind == IT_MAP ? 2 * it->n : it->n;

    if (it->n > PROTO_MAX_ARRAY)
        return scan_fail(err, errlen, "%s of %llu entries at byte %zu exceeds %u", what,
                         (unsigned long long)it->n, off - it->hdr, PROTO_MAX_ARRAY);
    if (entries > avail)
        return scan_fail(err, errlen, "%s of %llu entries at byte %zu exceeds the %zu bytes left",
                         what, (unsigned long long)it->n, off - it->hdr, avail);
    if (depth >= PROTO_MAX_DEPTH)
        return scan_fail(err, errlen, "nesting deeper than %u at byte %zu", PROTO_MAX_DEPTH,
                         off - it->hdr);
    return 0;
}

int
scan_frame(const uint8_t *buf, size_t len, uint64_t *id, bool *have_id, char *err, size_t errlen)
{
    /* Entries still to read in each open container (maps count keys and
     * values separately), innermost last. */
    uint64_t left[PROTO_MAX_DEPTH];
    bool is_map[PROTO_MAX_DEPTH];
    unsigned depth = 0;
    uint64_t objects = 0;
    size_t off = 0;
    bool want_id = false;
    int r;

    if (len == 0)
        return scan_fail(err, errlen, "empty frame");
    if (len > PROTO_MAX_FRAME)
        return scan_fail(err, errlen, "frame of %zu bytes exceeds %u", len, PROTO_MAX_FRAME);
    for (;;) {
        struct item it;
        size_t avail = len - off;
        /* A key of the top-level map: its remaining count is even. */
        bool top_key = depth == 1 && is_map[0] && left[0] % 2 == 0;
        bool top_value = depth == 1 && is_map[0] && left[0] % 2 == 1;

        if (avail == 0)
            return scan_fail(err, errlen, "frame truncated at byte %zu", off);
        if (parse_header(buf + off, avail, &it) < 0)
            return scan_fail(err, errlen, "bad or truncated header at byte %zu", off);
        if (++objects > PROTO_MAX_OBJECTS)
            return scan_fail(err, errlen, "more than %u objects", PROTO_MAX_OBJECTS);
        off += it.hdr;
        avail = len - off;

        if (top_value && want_id && it.kind == IT_UINT) {
            *id = it.n;
            *have_id = true;
        }
        if (top_value)
            want_id = false;

        if (it.kind == IT_STR || it.kind == IT_BIN || it.kind == IT_EXT) {
            if ((r = check_payload(&it, off, avail, err, errlen)) < 0)
                return r;
            if (top_key && it.kind == IT_STR && it.n == 2 && memcmp(buf + off, "id", 2) == 0 &&
                !*have_id)
                want_id = true;
            off += it.n;
        } else if (it.kind == IT_ARRAY || it.kind == IT_MAP) {
            if ((r = check_container(&it, off, avail, depth, err, errlen)) < 0)
                return r;
            if (it.n > 0) {
                left[depth] = it.kind == IT_MAP ? 2 * it.n : it.n;
                is_map[depth] = it.kind == IT_MAP;
                depth++;
                continue;
            }
        }
        /* One entry is complete: count it off, closing every container it
         * completes on the way out. */
        for (;;) {
            if (depth == 0)
                goto done;
            if (--left[depth - 1] > 0)
                break;
            depth--;
        }
    }
done:
    if (off != len)
        return scan_fail(err, errlen, "%zu trailing bytes after the message", len - off);
    return 0;
}
