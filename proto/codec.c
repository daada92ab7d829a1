/* The msgpack codec for struct msg (see msg.h and docs/protocol.md).
 *
 * Decoding runs in three steps, and only the last one looks at msgpack
 * objects:
 *   1. prescan() walks the raw bytes of the frame without allocating: every
 *      declared str/bin/ext length and array/map count is checked against the
 *      bytes left and against the caps, nesting is bounded, trailing bytes are
 *      refused. msgpack-c's unpacker allocates for the count a header claims
 *      before any element arrives, so it must never see a frame that lies.
 *   2. msgpack_unpack_next() builds the object tree in a zone; after step 1
 *      its allocation is bounded by about 48 bytes per object, and the number
 *      of objects by PROTO_MAX_OBJECTS.
 *   3. decode_*() convert the tree into the typed struct, checking every
 *      field's msgpack type and size, then check_*() check ranges and forms.
 *
 * Encoding runs the same check_*() functions first, so we never send what
 * the peer would refuse. */
#include "proto/msg.h"

#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/mem.h"

/* ---------------------------------------------------------------- errors */

/* Where decode and check write their first complaint, and the path of the
 * field being looked at ("spec.limits.io[2].major"). */
struct ctx {
    char *err;      /* caller's buffer, or NULL */
    size_t errlen;  /* its size */
    bool failed;    /* the first problem has been written */
    char path[160]; /* dotted path of the current field's parent, "" at the top */
};

static int _printf_(3, 4) fail(struct ctx *c, int rc, const char *fmt, ...)
{
    if (!c->failed && c->err && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    c->failed = true;
    return rc;
}

/* Complains about field `key` under the current path. */
static int _printf_(4, 5) fail_field(struct ctx *c, int rc, const char *key, const char *fmt, ...)
{
    char what[96];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return fail(c, rc, "field '%s%s%s': %s", c->path, c->path[0] ? "." : "", key, what);
}

/* Appends a segment to the path; returns the old length for path_pop. */
static size_t path_push(struct ctx *c, const char *fmt, ...) _printf_(2, 3);
static size_t
path_push(struct ctx *c, const char *fmt, ...)
{
    size_t old = strlen(c->path);
    size_t n = old;
    va_list ap;

    if (n > 0 && fmt[0] != '[' && n + 1 < sizeof(c->path))
        c->path[n++] = '.';
    va_start(ap, fmt);
    vsnprintf(c->path + n, sizeof(c->path) - n, fmt, ap);
    va_end(ap);
    return old;
}

static void
path_pop(struct ctx *c, size_t old)
{
    c->path[old] = '\0';
}

/* --------------------------------------------------------------- prescan */

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

/* Walks one msgpack object covering exactly buf[0..len) without allocating
 * and without recursion. On the way it reads the top-level "id" when it is an
 * unsigned integer, so even a frame refused here can be nacked. */
static int
prescan(const uint8_t *buf, size_t len, uint64_t *id, bool *have_id, struct ctx *c)
{
    /* Entries still to read in each open container (maps count keys and
     * values separately), innermost last. */
    uint64_t left[PROTO_MAX_DEPTH];
    bool is_map[PROTO_MAX_DEPTH];
    unsigned depth = 0;
    uint64_t objects = 0;
    size_t off = 0;
    bool want_id = false;

    if (len == 0)
        return fail(c, -EBADMSG, "empty frame");
    if (len > PROTO_MAX_FRAME)
        return fail(c, -EBADMSG, "frame of %zu bytes exceeds %u", len, PROTO_MAX_FRAME);
    for (;;) {
        struct item it;
        size_t avail = len - off;
        /* A key of the top-level map: its remaining count is even. */
        bool top_key = depth == 1 && is_map[0] && left[0] % 2 == 0;
        bool top_value = depth == 1 && is_map[0] && left[0] % 2 == 1;

        if (avail == 0)
            return fail(c, -EBADMSG, "frame truncated at byte %zu", off);
        if (parse_header(buf + off, avail, &it) < 0)
            return fail(c, -EBADMSG, "bad or truncated header at byte %zu", off);
        if (++objects > PROTO_MAX_OBJECTS)
            return fail(c, -EBADMSG, "more than %u objects", PROTO_MAX_OBJECTS);
        off += it.hdr;
        avail = len - off;

        if (top_value && want_id && it.kind == IT_UINT) {
            *id = it.n;
            *have_id = true;
        }
        if (top_value)
            want_id = false;

        switch (it.kind) {
        case IT_STR:
        case IT_BIN:
        case IT_EXT: {
            uint64_t cap = it.kind == IT_BIN ? PROTO_MAX_EXEC_OUT : PROTO_MAX_STRING;
            if (it.n > avail)
                return fail(c, -EBADMSG, "length %llu at byte %zu exceeds the %zu bytes left",
                            (unsigned long long)it.n, off - it.hdr, avail);
            if (it.n > cap)
                return fail(c, -EBADMSG, "length %llu at byte %zu exceeds %llu",
                            (unsigned long long)it.n, off - it.hdr, (unsigned long long)cap);
            if (top_key && it.kind == IT_STR && it.n == 2 && memcmp(buf + off, "id", 2) == 0 &&
                !*have_id)
                want_id = true;
            off += it.n;
            break;
        }
        case IT_ARRAY:
        case IT_MAP: {
            /* Every entry takes at least one byte, so a count larger than
             * what is left is a lie, and refused before anyone allocates. */
            uint64_t entries = it.kind == IT_MAP ? 2 * it.n : it.n;
            if (it.n > PROTO_MAX_ARRAY)
                return fail(c, -EBADMSG, "%s of %llu entries at byte %zu exceeds %u",
                            it.kind == IT_MAP ? "map" : "array", (unsigned long long)it.n,
                            off - it.hdr, PROTO_MAX_ARRAY);
            if (entries > avail)
                return fail(c, -EBADMSG,
                            "%s of %llu entries at byte %zu exceeds the %zu bytes left",
                            it.kind == IT_MAP ? "map" : "array", (unsigned long long)it.n,
                            off - it.hdr, avail);
            if (depth >= PROTO_MAX_DEPTH)
                return fail(c, -EBADMSG, "nesting deeper than %u at byte %zu", PROTO_MAX_DEPTH,
                            off - it.hdr);
            if (entries > 0) {
                left[depth] = entries;
                is_map[depth] = it.kind == IT_MAP;
                depth++;
                continue;
            }
            break;
        }
        default:
            break;
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
        return fail(c, -EBADMSG, "%zu trailing bytes after the message", len - off);
    return 0;
}

/* --------------------------------------------------------- object access */

/* Finds key in map; a key present twice is refused, since the two peers
 * might otherwise read different values. Returns 1 found, 0 absent, <0. */
static int
find(struct ctx *c, const msgpack_object *map, const char *key, const msgpack_object **out)
{
    size_t klen = strlen(key);
    const msgpack_object *found = NULL;

    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != klen ||
            memcmp(kv->key.via.str.ptr, key, klen) != 0)
            continue;
        if (found)
            return fail_field(c, -EINVAL, key, "given twice");
        found = &kv->val;
    }
    *out = found;
    return found ? 1 : 0;
}

/* Looks up key; a missing required field is an error, a missing optional
 * one leaves the destination as it is (zero). Returns 1, 0 or <0. */
static int
lookup(struct ctx *c, const msgpack_object *map, const char *key, bool required,
       const msgpack_object **out)
{
    int r = find(c, map, key, out);
    if (r == 0 && required)
        return fail_field(c, -EINVAL, key, "missing");
    return r;
}

static int
get_u64(struct ctx *c, const msgpack_object *map, const char *key, bool required, uint64_t max,
        uint64_t *out)
{
    const msgpack_object *o;
    int r = lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail_field(c, -EINVAL, key, "not an unsigned integer");
    if (o->via.u64 > max)
        return fail_field(c, -EINVAL, key, "%llu exceeds %llu", (unsigned long long)o->via.u64,
                          (unsigned long long)max);
    *out = o->via.u64;
    return 1;
}

static int
get_u32(struct ctx *c, const msgpack_object *map, const char *key, bool required, uint32_t max,
        uint32_t *out)
{
    uint64_t v = 0;
    int r = get_u64(c, map, key, required, max, &v);
    if (r > 0)
        *out = (uint32_t)v;
    return r;
}

static int
get_i32(struct ctx *c, const msgpack_object *map, const char *key, bool required, int32_t *out)
{
    const msgpack_object *o;
    int r = lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX)
        *out = (int32_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN)
        *out = (int32_t)o->via.i64;
    else
        return fail_field(c, -EINVAL, key, "not a 32-bit integer");
    return 1;
}

static int
get_bool(struct ctx *c, const msgpack_object *map, const char *key, bool required, bool *out)
{
    const msgpack_object *o;
    int r = lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return fail_field(c, -EINVAL, key, "not a boolean");
    *out = o->via.boolean;
    return 1;
}

/* Copies a msgpack str into dst (size n), refusing NUL bytes and strings
 * that do not fit. */
static int
copy_str(struct ctx *c, const char *key, const msgpack_object *o, char *dst, size_t n)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return fail_field(c, -EINVAL, key, "not a string");
    if (o->via.str.size >= n)
        return fail_field(c, -EINVAL, key, "longer than %zu bytes", n - 1);
    if (memchr(o->via.str.ptr, '\0', o->via.str.size))
        return fail_field(c, -EINVAL, key, "contains a NUL byte");
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
    return 1;
}

static int
get_str(struct ctx *c, const msgpack_object *map, const char *key, bool required, char *dst,
        size_t n)
{
    const msgpack_object *o;
    int r = lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    return copy_str(c, key, o, dst, n);
}

/* A required or optional array or map field: its object, type-checked, with
 * at most max entries. Returns 1, 0 (absent) or <0. */
static int
get_container(struct ctx *c, const msgpack_object *map, const char *key, bool required,
              msgpack_object_type type, uint32_t max, const msgpack_object **out)
{
    int r = lookup(c, map, key, required, out);
    if (r <= 0)
        return r;
    if ((*out)->type != type)
        return fail_field(c, -EINVAL, key, "not %s",
                          type == MSGPACK_OBJECT_MAP ? "a map" : "an array");
    uint32_t size = type == MSGPACK_OBJECT_MAP ? (*out)->via.map.size : (*out)->via.array.size;
    if (size > max)
        return fail_field(c, -EINVAL, key, "%u entries exceed %u", size, max);
    return 1;
}

/* Checks and returns up to n bytes of a bin field; *p points into the frame. */
static int
get_bin(struct ctx *c, const msgpack_object *map, const char *key, bool required, uint32_t max,
        const char **p, uint32_t *n)
{
    const msgpack_object *o;
    int r = lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_BIN)
        return fail_field(c, -EINVAL, key, "not binary");
    if (o->via.bin.size > max)
        return fail_field(c, -EINVAL, key, "%u bytes exceed %u", o->via.bin.size, max);
    *p = o->via.bin.ptr;
    *n = o->via.bin.size;
    return 1;
}

/* Propagates a negative result. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int _r = (expr);                                                                           \
        if (_r < 0)                                                                                \
            return _r;                                                                             \
    } while (0)

/* ---------------------------------------------------- checks (both ways) */

/* The range and form checks shared by the encoder and the decoder. They take
 * the typed struct, so they also guard against a caller's unterminated
 * buffers before anything is encoded. */

static bool
terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static bool
is_uuid(const char *s)
{
    if (strnlen(s, SPEC_ID_LEN + 1) != SPEC_ID_LEN)
        return false;
    for (int i = 0; i < SPEC_ID_LEN; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
            return false;
        }
    }
    return true;
}

/* Printable ASCII and any UTF-8 byte, no control characters. */
static bool
is_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

#define CHECK(cond, key, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return fail_field(c, -EINVAL, key, __VA_ARGS__);                                       \
    } while (0)

/* A guest id field: a UUID, or "" when optional. */
static int
check_guest_id(struct ctx *c, const char *key, const char *id, bool required)
{
    CHECK(terminated(id, SPEC_ID_LEN + 1), key, "not terminated");
    if (!required && id[0] == '\0')
        return 0;
    CHECK(is_uuid(id), key, "not a lower-case UUID");
    return 0;
}

static int
check_text(struct ctx *c, const char *key, const char *s, size_t size, bool printable)
{
    CHECK(terminated(s, size), key, "longer than %zu bytes", size - 1);
    CHECK(!printable || is_printable(s), key, "contains control characters");
    return 0;
}

static int
check_labels(struct ctx *c, const struct spec_label *l, uint32_t n, uint32_t max)
{
    CHECK(n <= max, "labels", "%u entries exceed %u", n, max);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(terminated(l[i].key, sizeof(l[i].key)) && name_is_valid(l[i].key), "labels",
              "key %u is not a name", i);
        CHECK(terminated(l[i].value, sizeof(l[i].value)) && is_printable(l[i].value), "labels",
              "value of '%s' is not printable text", l[i].key);
        for (uint32_t j = 0; j < i; j++)
            CHECK(strcmp(l[i].key, l[j].key) != 0, "labels", "key '%s' given twice", l[i].key);
    }
    return 0;
}

static int
check_hello(struct ctx *c, const struct msg_hello *h)
{
    CHECK(terminated(h->node, sizeof(h->node)) && name_is_valid(h->node), "node", "not a name");
    TRY(check_text(c, "agent_version", h->agent_version, sizeof(h->agent_version), true));
    CHECK(h->agent_version[0], "agent_version", "empty");
    TRY(check_text(c, "kernel", h->kernel, sizeof(h->kernel), true));
    CHECK(terminated(h->cgroup, sizeof(h->cgroup)) &&
              (strcmp(h->cgroup, "v1") == 0 || strcmp(h->cgroup, "v2") == 0 ||
               strcmp(h->cgroup, "hybrid") == 0),
          "cgroup", "not v1, v2 or hybrid");
    CHECK(terminated(h->backend, sizeof(h->backend)) && name_is_valid(h->backend), "backend",
          "not a name");
    TRY(check_labels(c, h->labels, h->n_labels, PROTO_MAX_LABELS));
    CHECK(h->n_inventory <= PROTO_MAX_INVENTORY, "inventory", "%u entries exceed %u",
          h->n_inventory, PROTO_MAX_INVENTORY);
    CHECK(h->n_inventory == 0 || h->inventory, "inventory", "missing");
    for (uint32_t i = 0; i < h->n_inventory; i++) {
        const struct msg_inventory_item *it = &h->inventory[i];
        size_t old = path_push(c, "inventory[%u]", i);
        TRY(check_guest_id(c, "id", it->id, true));
        CHECK(terminated(it->name, sizeof(it->name)) && name_is_valid(it->name), "name",
              "not a name");
        path_pop(c, old);
    }
    return 0;
}

static int
check_exec(struct ctx *c, const struct msg_guest_exec *e)
{
    TRY(check_guest_id(c, "guest", e->id, true));
    CHECK(e->argc >= 1 && e->argc <= PROTO_MAX_ARGV && e->argv, "argv", "needs 1 to %u entries",
          PROTO_MAX_ARGV);
    for (uint32_t i = 0; i < e->argc; i++) {
        CHECK(e->argv[i], "argv", "entry %u missing", i);
        CHECK(strnlen(e->argv[i], PROTO_MAX_STRING + 1) <= PROTO_MAX_STRING, "argv",
              "entry %u longer than %u bytes", i, PROTO_MAX_STRING);
    }
    CHECK(e->argv[0][0], "argv", "empty program name");
    CHECK(e->timeout_ms <= 3600u * 1000, "timeout_ms", "above one hour");
    CHECK(e->max_output <= PROTO_MAX_EXEC_OUT, "max_output", "exceeds %u", PROTO_MAX_EXEC_OUT);
    return 0;
}

static int
check_msg(struct ctx *c, const struct msg *m)
{
    const char *field = NULL;

    switch (m->type) {
    case MSG_HELLO:
        return check_hello(c, &m->u.hello);
    case MSG_HEARTBEAT:
        CHECK(m->u.heartbeat.n_running <= m->u.heartbeat.n_guests, "n_running", "exceeds n_guests");
        return 0;
    case MSG_WELCOME:
        CHECK(m->u.welcome.heartbeat_ms >= 100 && m->u.welcome.heartbeat_ms <= 3600000,
              "heartbeat_ms", "not within 100..3600000");
        CHECK(m->u.welcome.usage_ms >= 100 && m->u.welcome.usage_ms <= 3600000, "usage_ms",
              "not within 100..3600000");
        return 0;
    case MSG_ACK:
        return check_guest_id(c, "guest", m->u.ack.id, false);
    case MSG_NACK:
        TRY(check_guest_id(c, "guest", m->u.nack.id, false));
        CHECK(m->u.nack.code > MSG_ERR_NONE && m->u.nack.code < MSG_ERR_COUNT, "code",
              "not an error code");
        return check_text(c, "message", m->u.nack.message, sizeof(m->u.nack.message), false);
    case MSG_USAGE:
        CHECK(m->u.usage.n_samples <= PROTO_MAX_SAMPLES, "samples", "%u entries exceed %u",
              m->u.usage.n_samples, PROTO_MAX_SAMPLES);
        CHECK(m->u.usage.n_samples == 0 || m->u.usage.samples, "samples", "missing");
        for (uint32_t i = 0; i < m->u.usage.n_samples; i++) {
            size_t old = path_push(c, "samples[%u]", i);
            TRY(check_guest_id(c, "guest", m->u.usage.samples[i].id, true));
            path_pop(c, old);
        }
        return 0;
    case MSG_EVENT:
        TRY(check_guest_id(c, "guest", m->u.event.id, false));
        CHECK(terminated(m->u.event.kind, sizeof(m->u.event.kind)) &&
                  name_is_valid(m->u.event.kind),
              "kind", "not a name");
        return check_text(c, "message", m->u.event.message, sizeof(m->u.event.message), false);
    case MSG_EXEC_RESULT: {
        const struct msg_exec_result *r = &m->u.exec_result;
        TRY(check_guest_id(c, "guest", r->id, true));
        CHECK(r->signal >= 0 && r->signal <= 64, "signal", "not within 0..64");
        CHECK(r->out_len <= PROTO_MAX_EXEC_OUT && (r->out_len == 0 || r->out), "out", "bad length");
        CHECK(r->err_len <= PROTO_MAX_EXEC_OUT && (r->err_len == 0 || r->err), "err", "bad length");
        return 0;
    }
    case MSG_GUEST_APPLY: {
        size_t old = path_push(c, "spec");
        CHECK(spec_validate(&m->u.apply, &field) == 0, field ? field : "?", "invalid");
        path_pop(c, old);
        return 0;
    }
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        TRY(check_guest_id(c, "guest", m->u.guest.id, true));
        CHECK(m->u.guest.generation >= 1, "generation", "zero");
        CHECK(m->u.guest.timeout <= 3600, "timeout", "above one hour");
        CHECK(m->type == MSG_GUEST_STOP || m->u.guest.timeout == 0, "timeout",
              "only guest.stop has one");
        return 0;
    case MSG_GUEST_EXEC:
        return check_exec(c, &m->u.exec);
    default:
        return fail(c, -EINVAL, "unknown message type %d", (int)m->type);
    }
}

/* --------------------------------------------------------------- decoding */

static const char *const fail_names[USAGE_FAIL_COUNT] = {
    [USAGE_FAIL_PROCS] = "procs", [USAGE_FAIL_MEMORY] = "memory", [USAGE_FAIL_OOM] = "oom",
    [USAGE_FAIL_DISK] = "disk",   [USAGE_FAIL_TCP] = "tcp",
};

/* Bit i of enum spec_flag (proto/spec.h); spec_json.c names them the same way. */
static const char *const flag_names[] = {"private", "lock", "privileged", "nesting"};

static int
decode_labels(struct ctx *c, const msgpack_object *map, struct spec_label *labels, uint32_t *n,
              uint32_t max)
{
    const msgpack_object *o;
    int r = get_container(c, map, "labels", false, MSGPACK_OBJECT_MAP, max, &o);
    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        TRY(copy_str(c, "labels", &kv->key, labels[i].key, sizeof(labels[i].key)));
        TRY(copy_str(c, "labels", &kv->val, labels[i].value, sizeof(labels[i].value)));
    }
    *n = o->via.map.size;
    return 0;
}

static int
decode_caps(struct ctx *c, const msgpack_object *map, const char *key, uint64_t *caps)
{
    const msgpack_object *o;
    int r = get_container(c, map, key, false, MSGPACK_OBJECT_ARRAY, SPEC_CAP_MAX + 1, &o);
    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char name[32];
        TRY(copy_str(c, key, &o->via.array.ptr[i], name, sizeof(name)));
        int cap = spec_cap_from_name(name);
        if (cap < 0)
            return fail_field(c, -EINVAL, key, "unknown capability '%s'", name);
        *caps |= 1ULL << cap;
    }
    return 0;
}

static int
decode_limits(struct ctx *c, const msgpack_object *map, struct spec_limits *l)
{
    const msgpack_object *io;

    TRY(get_u64(c, map, "procs", false, UINT64_MAX, &l->procs));
    TRY(get_u64(c, map, "memory", false, UINT64_MAX, &l->memory));
    TRY(get_u64(c, map, "rss", false, UINT64_MAX, &l->rss));
    TRY(get_u64(c, map, "swap", false, UINT64_MAX, &l->swap));
    TRY(get_u32(c, map, "cpu_weight", false, UINT32_MAX, &l->cpu_weight));
    TRY(get_u32(c, map, "cpu_max", false, UINT32_MAX, &l->cpu_max));
    TRY(get_u32(c, map, "cpu_burst", false, UINT32_MAX, &l->cpu_burst));
    TRY(get_u32(c, map, "io_weight", false, UINT32_MAX, &l->io_weight));
    TRY(get_u64(c, map, "disk", false, UINT64_MAX, &l->disk));
    TRY(get_u64(c, map, "inodes", false, UINT64_MAX, &l->inodes));
    TRY(get_u64(c, map, "nofile", false, UINT64_MAX, &l->nofile));
    TRY(get_u64(c, map, "tcp_sockets", false, UINT64_MAX, &l->tcp_sockets));
    TRY(get_u64(c, map, "net_in", false, UINT64_MAX, &l->net_in));
    TRY(get_u64(c, map, "net_out", false, UINT64_MAX, &l->net_out));
    int r = get_container(c, map, "io", false, MSGPACK_OBJECT_ARRAY, SPEC_MAX_IO_DEVS, &io);
    if (r <= 0)
        return r;
    for (uint32_t i = 0; i < io->via.array.size; i++) {
        const msgpack_object *d = &io->via.array.ptr[i];
        struct spec_io_dev *dev = &l->io_devs[i];
        size_t old = path_push(c, "io[%u]", i);
        if (d->type != MSGPACK_OBJECT_MAP)
            return fail(c, -EINVAL, "field '%s': not a map", c->path);
        TRY(get_u32(c, d, "major", true, UINT32_MAX, &dev->major));
        TRY(get_u32(c, d, "minor", true, UINT32_MAX, &dev->minor));
        TRY(get_u64(c, d, "read_bps", false, UINT64_MAX, &dev->read_bps));
        TRY(get_u64(c, d, "write_bps", false, UINT64_MAX, &dev->write_bps));
        TRY(get_u64(c, d, "read_iops", false, UINT64_MAX, &dev->read_iops));
        TRY(get_u64(c, d, "write_iops", false, UINT64_MAX, &dev->write_iops));
        path_pop(c, old);
    }
    l->n_io_devs = io->via.array.size;
    return 0;
}

static int
decode_spec(struct ctx *c, const msgpack_object *top, struct guest_spec *s)
{
    const msgpack_object *spec, *o;
    int r;

    TRY(get_container(c, top, "spec", true, MSGPACK_OBJECT_MAP, PROTO_MAX_ARRAY, &spec));
    size_t old = path_push(c, "spec");
    TRY(get_str(c, spec, "id", true, s->id, sizeof(s->id)));
    TRY(get_str(c, spec, "name", true, s->name, sizeof(s->name)));
    TRY(get_u64(c, spec, "generation", true, UINT64_MAX, &s->generation));
    TRY(get_str(c, spec, "template", true, s->template_name, sizeof(s->template_name)));
    TRY(get_str(c, spec, "init", false, s->init, sizeof(s->init)));
    TRY(get_str(c, spec, "domainname", false, s->domainname, sizeof(s->domainname)));
    TRY(get_u32(c, spec, "halt_signal", false, UINT32_MAX, &s->halt_signal));
    TRY(get_u32(c, spec, "stop_timeout", false, UINT32_MAX, &s->stop_timeout));
    TRY(get_bool(c, spec, "autostart", false, &s->autostart));

    r = get_container(c, spec, "flags", false, MSGPACK_OBJECT_ARRAY, ARRAY_SIZE(flag_names), &o);
    TRY(r);
    for (uint32_t i = 0; r > 0 && i < o->via.array.size; i++) {
        char name[16];
        unsigned bit;
        TRY(copy_str(c, "flags", &o->via.array.ptr[i], name, sizeof(name)));
        for (bit = 0; bit < ARRAY_SIZE(flag_names); bit++)
            if (strcmp(name, flag_names[bit]) == 0)
                break;
        if (bit == ARRAY_SIZE(flag_names))
            return fail_field(c, -EINVAL, "flags", "unknown flag '%s'", name);
        s->flags |= 1u << bit;
    }

    r = get_container(c, spec, "limits", false, MSGPACK_OBJECT_MAP, PROTO_MAX_ARRAY, &o);
    TRY(r);
    if (r > 0) {
        size_t old2 = path_push(c, "limits");
        TRY(decode_limits(c, o, &s->limits));
        path_pop(c, old2);
    }
    TRY(decode_caps(c, spec, "caps_add", &s->caps_add));
    TRY(decode_caps(c, spec, "caps_drop", &s->caps_drop));

    r = get_container(c, spec, "ips", false, MSGPACK_OBJECT_ARRAY, SPEC_MAX_ADDRS, &o);
    TRY(r);
    for (uint32_t i = 0; r > 0 && i < o->via.array.size; i++) {
        char text[NETADDR_STRLEN];
        TRY(copy_str(c, "ips", &o->via.array.ptr[i], text, sizeof(text)));
        if (netaddr_parse(text, &s->addrs[i]) < 0)
            return fail_field(c, -EINVAL, "ips", "'%s' is not an address", text);
        s->n_addrs = i + 1;
    }
    TRY(decode_labels(c, spec, s->labels, &s->n_labels, SPEC_MAX_LABELS));
    path_pop(c, old);
    return 0;
}

static int
decode_hello(struct ctx *c, const msgpack_object *top, struct msg_hello *h)
{
    const msgpack_object *inv;

    TRY(get_str(c, top, "node", true, h->node, sizeof(h->node)));
    TRY(get_str(c, top, "agent_version", true, h->agent_version, sizeof(h->agent_version)));
    TRY(get_str(c, top, "kernel", true, h->kernel, sizeof(h->kernel)));
    TRY(get_str(c, top, "cgroup", true, h->cgroup, sizeof(h->cgroup)));
    TRY(get_str(c, top, "backend", true, h->backend, sizeof(h->backend)));
    TRY(get_u32(c, top, "cpus", true, UINT32_MAX, &h->cpus));
    TRY(get_u64(c, top, "memory", true, UINT64_MAX, &h->memory));
    TRY(get_u64(c, top, "disk", true, UINT64_MAX, &h->disk));
    TRY(get_u32(c, top, "max_guests", true, UINT32_MAX, &h->max_guests));
    TRY(decode_labels(c, top, h->labels, &h->n_labels, PROTO_MAX_LABELS));
    TRY(get_container(c, top, "inventory", true, MSGPACK_OBJECT_ARRAY, PROTO_MAX_INVENTORY, &inv));
    if (inv->via.array.size == 0)
        return 0;
    h->inventory = xcalloc(inv->via.array.size, sizeof(*h->inventory));
    h->n_inventory = inv->via.array.size;
    for (uint32_t i = 0; i < inv->via.array.size; i++) {
        const msgpack_object *o = &inv->via.array.ptr[i];
        struct msg_inventory_item *it = &h->inventory[i];
        size_t old = path_push(c, "inventory[%u]", i);
        if (o->type != MSGPACK_OBJECT_MAP)
            return fail(c, -EINVAL, "field '%s': not a map", c->path);
        TRY(get_str(c, o, "id", true, it->id, sizeof(it->id)));
        TRY(get_str(c, o, "name", true, it->name, sizeof(it->name)));
        TRY(get_u64(c, o, "generation", true, UINT64_MAX, &it->generation));
        TRY(get_bool(c, o, "running", true, &it->running));
        path_pop(c, old);
    }
    return 0;
}

static int
decode_sample(struct ctx *c, const msgpack_object *o, struct guest_usage *u)
{
    const msgpack_object *fc;
    int r;

    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(c, -EINVAL, "field '%s': not a map", c->path);
    TRY(get_str(c, o, "guest", true, u->id, sizeof(u->id)));
    TRY(get_u64(c, o, "time_ms", true, UINT64_MAX, &u->time_ms));
#define U(f) TRY(get_u64(c, o, #f, false, UINT64_MAX, &u->f));
    USAGE_U64_FIELDS(U)
#undef U
    r = get_container(c, o, "failcnt", false, MSGPACK_OBJECT_MAP, PROTO_MAX_ARRAY, &fc);
    if (r <= 0)
        return r;
    size_t old = path_push(c, "failcnt");
    for (unsigned i = 0; i < USAGE_FAIL_COUNT; i++)
        TRY(get_u64(c, fc, fail_names[i], false, UINT64_MAX, &u->failcnt[i]));
    path_pop(c, old);
    return 0;
}

static int
decode_body(struct ctx *c, const msgpack_object *top, struct msg *m)
{
    const msgpack_object *o;
    char code[32];
    const char *p;

    switch (m->type) {
    case MSG_HELLO:
        return decode_hello(c, top, &m->u.hello);
    case MSG_HEARTBEAT:
        TRY(get_u64(c, top, "seq", true, UINT64_MAX, &m->u.heartbeat.seq));
        TRY(get_u32(c, top, "n_guests", true, UINT32_MAX, &m->u.heartbeat.n_guests));
        TRY(get_u32(c, top, "n_running", true, UINT32_MAX, &m->u.heartbeat.n_running));
        return 0;
    case MSG_WELCOME:
        TRY(get_u32(c, top, "heartbeat_ms", true, UINT32_MAX, &m->u.welcome.heartbeat_ms));
        TRY(get_u32(c, top, "usage_ms", true, UINT32_MAX, &m->u.welcome.usage_ms));
        return 0;
    case MSG_ACK:
        TRY(get_u64(c, top, "ref", true, UINT64_MAX, &m->u.ack.ref));
        TRY(get_str(c, top, "guest", false, m->u.ack.id, sizeof(m->u.ack.id)));
        TRY(get_u64(c, top, "generation", false, UINT64_MAX, &m->u.ack.generation));
        TRY(get_bool(c, top, "running", false, &m->u.ack.running));
        return 0;
    case MSG_NACK:
        TRY(get_u64(c, top, "ref", true, UINT64_MAX, &m->u.nack.ref));
        TRY(get_str(c, top, "guest", false, m->u.nack.id, sizeof(m->u.nack.id)));
        TRY(get_str(c, top, "code", true, code, sizeof(code)));
        /* A code added by a newer peer still means "it failed". */
        m->u.nack.code = msg_error_from_name(code);
        if (m->u.nack.code == MSG_ERR_NONE)
            m->u.nack.code = MSG_ERR_INTERNAL;
        TRY(get_str(c, top, "message", false, m->u.nack.message, sizeof(m->u.nack.message)));
        return 0;
    case MSG_USAGE:
        TRY(get_container(c, top, "samples", true, MSGPACK_OBJECT_ARRAY, PROTO_MAX_SAMPLES, &o));
        if (o->via.array.size == 0)
            return 0;
        m->u.usage.samples = xcalloc(o->via.array.size, sizeof(*m->u.usage.samples));
        m->u.usage.n_samples = o->via.array.size;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            size_t old = path_push(c, "samples[%u]", i);
            TRY(decode_sample(c, &o->via.array.ptr[i], &m->u.usage.samples[i]));
            path_pop(c, old);
        }
        return 0;
    case MSG_EVENT:
        TRY(get_str(c, top, "guest", false, m->u.event.id, sizeof(m->u.event.id)));
        TRY(get_str(c, top, "kind", true, m->u.event.kind, sizeof(m->u.event.kind)));
        TRY(get_u64(c, top, "time_ms", true, UINT64_MAX, &m->u.event.time_ms));
        TRY(get_i32(c, top, "exit_code", false, &m->u.event.exit_code));
        TRY(get_str(c, top, "message", false, m->u.event.message, sizeof(m->u.event.message)));
        return 0;
    case MSG_EXEC_RESULT: {
        struct msg_exec_result *r = &m->u.exec_result;
        TRY(get_u64(c, top, "ref", true, UINT64_MAX, &r->ref));
        TRY(get_str(c, top, "guest", true, r->id, sizeof(r->id)));
        TRY(get_i32(c, top, "exit_code", true, &r->exit_code));
        TRY(get_i32(c, top, "signal", false, &r->signal));
        TRY(get_bool(c, top, "timed_out", false, &r->timed_out));
        TRY(get_bool(c, top, "truncated", false, &r->truncated));
        p = NULL;
        TRY(get_bin(c, top, "out", false, PROTO_MAX_EXEC_OUT, &p, &r->out_len));
        if (r->out_len > 0) {
            r->out = xmalloc(r->out_len);
            memcpy(r->out, p, r->out_len);
        }
        p = NULL;
        TRY(get_bin(c, top, "err", false, PROTO_MAX_EXEC_OUT, &p, &r->err_len));
        if (r->err_len > 0) {
            r->err = xmalloc(r->err_len);
            memcpy(r->err, p, r->err_len);
        }
        return 0;
    }
    case MSG_GUEST_APPLY:
        return decode_spec(c, top, &m->u.apply);
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        TRY(get_str(c, top, "guest", true, m->u.guest.id, sizeof(m->u.guest.id)));
        TRY(get_u64(c, top, "generation", true, UINT64_MAX, &m->u.guest.generation));
        /* Only guest.stop has a timeout; elsewhere the key is unknown. */
        if (m->type == MSG_GUEST_STOP)
            TRY(get_u32(c, top, "timeout", false, UINT32_MAX, &m->u.guest.timeout));
        return 0;
    case MSG_GUEST_EXEC: {
        struct msg_guest_exec *e = &m->u.exec;
        TRY(get_str(c, top, "guest", true, e->id, sizeof(e->id)));
        TRY(get_container(c, top, "argv", true, MSGPACK_OBJECT_ARRAY, PROTO_MAX_ARGV, &o));
        /* One slot more than needed keeps argv NULL-terminated even when a
         * later entry is refused, so msg_clear can free what was copied. */
        e->argv = xcalloc(o->via.array.size + 1, sizeof(char *));
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            const msgpack_object *a = &o->via.array.ptr[i];
            if (a->type != MSGPACK_OBJECT_STR)
                return fail_field(c, -EINVAL, "argv", "entry %u is not a string", i);
            if (a->via.str.size > PROTO_MAX_STRING || memchr(a->via.str.ptr, '\0', a->via.str.size))
                return fail_field(c, -EINVAL, "argv", "entry %u is too long or holds NUL", i);
            e->argv[i] = xstrndup(a->via.str.ptr, a->via.str.size);
            e->argc = i + 1;
        }
        TRY(get_u32(c, top, "timeout_ms", false, UINT32_MAX, &e->timeout_ms));
        TRY(get_u32(c, top, "max_output", false, UINT32_MAX, &e->max_output));
        return 0;
    }
    default:
        return fail(c, -ENOMSG, "unknown message type");
    }
}

/* Reads the envelope: "id", "v" and "type". */
static int
decode_envelope(struct ctx *c, const msgpack_object *top, struct msg *m)
{
    const msgpack_object *o;
    char type[64];

    if (top->type != MSGPACK_OBJECT_MAP)
        return fail(c, -EBADMSG, "not a map");
    if (find(c, top, "id", &o) <= 0 || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail(c, -EBADMSG, "field 'id': missing or not an unsigned integer");
    m->id = o->via.u64;
    if (find(c, top, "v", &o) <= 0 || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 == 0)
        return fail(c, -EBADMSG, "field 'v': missing or not a positive integer");
    if (o->via.u64 > PROTO_VERSION)
        return fail(c, -EPROTONOSUPPORT, "protocol version %llu, this side speaks %d",
                    (unsigned long long)o->via.u64, PROTO_VERSION);
    if (find(c, top, "type", &o) <= 0 || o->type != MSGPACK_OBJECT_STR)
        return fail(c, -EBADMSG, "field 'type': missing or not a string");
    if (o->via.str.size >= sizeof(type) || memchr(o->via.str.ptr, '\0', o->via.str.size))
        return fail(c, -ENOMSG, "unknown message type");
    memcpy(type, o->via.str.ptr, o->via.str.size);
    type[o->via.str.size] = '\0';
    m->type = msg_type_from_name(type);
    if (m->type == MSG_INVALID)
        return fail(c, -ENOMSG, "unknown message type '%s'", type);
    return 0;
}

int
msg_decode(const char *buf, size_t len, struct msg *m, char *errbuf, size_t errlen)
{
    struct ctx c = {.err = errbuf, .errlen = errlen};
    msgpack_unpacked up;
    uint64_t id = 0;
    bool have_id = false;
    size_t off = 0;
    int r;

    memset(m, 0, sizeof(*m));
    if (errbuf && errlen > 0)
        errbuf[0] = '\0';
    if (!buf)
        return fail(&c, -EBADMSG, "no frame");
    r = prescan((const uint8_t *)buf, len, &id, &have_id, &c);
    if (have_id)
        m->id = id;
    if (r < 0)
        return r;

    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&up);
        return fail(&c, -EBADMSG, "msgpack refused the frame");
    }
    r = decode_envelope(&c, &up.data, m);
    if (r >= 0)
        r = decode_body(&c, &up.data, m);
    msgpack_unpacked_destroy(&up);
    if (r >= 0)
        r = check_msg(&c, m);
    return r;
}

/* --------------------------------------------------------------- encoding */

/* The packer's output: a growing buffer that aborts on OOM like every
 * x-allocator, so no pack call can fail. */
struct outbuf {
    char *data;  /* bytes written so far (owned) */
    size_t len;  /* bytes used */
    size_t size; /* bytes allocated */
};

static int
outbuf_write(void *data, const char *buf, size_t len)
{
    struct outbuf *o = data;
    if (len == 0)
        return 0;
    if (len > o->size - o->len) {
        size_t size = o->size ? o->size : 256;
        while (size - o->len < len)
            size *= 2;
        o->data = xrealloc(o->data, size);
        o->size = size;
    }
    memcpy(o->data + o->len, buf, len);
    o->len += len;
    return 0;
}

static void
pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
pk_kstr(msgpack_packer *pk, const char *key, const char *s)
{
    pk_str(pk, key);
    pk_str(pk, s);
}

static void
pk_ku64(msgpack_packer *pk, const char *key, uint64_t v)
{
    pk_str(pk, key);
    msgpack_pack_uint64(pk, v);
}

static void
pk_ki32(msgpack_packer *pk, const char *key, int32_t v)
{
    pk_str(pk, key);
    msgpack_pack_int32(pk, v);
}

static void
pk_kbool(msgpack_packer *pk, const char *key, bool v)
{
    pk_str(pk, key);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void
pk_kbin(msgpack_packer *pk, const char *key, const char *p, uint32_t n)
{
    pk_str(pk, key);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

static void
pk_labels(msgpack_packer *pk, const struct spec_label *l, uint32_t n)
{
    pk_str(pk, "labels");
    msgpack_pack_map(pk, n);
    for (uint32_t i = 0; i < n; i++)
        pk_kstr(pk, l[i].key, l[i].value);
}

static void
pk_caps(msgpack_packer *pk, const char *key, uint64_t caps)
{
    size_t n = (size_t)__builtin_popcountll(caps);
    pk_str(pk, key);
    msgpack_pack_array(pk, n);
    for (unsigned i = 0; i <= SPEC_CAP_MAX; i++)
        if (caps & (1ULL << i))
            pk_str(pk, spec_cap_name(i)); /* spec_validate knows every set bit */
}

static void
pk_spec(msgpack_packer *pk, const struct guest_spec *s)
{
    const struct spec_limits *l = &s->limits;
    unsigned nflags = 0;

    pk_str(pk, "spec");
    msgpack_pack_map(pk, 15);
    pk_kstr(pk, "id", s->id);
    pk_kstr(pk, "name", s->name);
    pk_ku64(pk, "generation", s->generation);
    pk_kstr(pk, "template", s->template_name);
    pk_kstr(pk, "init", s->init);
    pk_kstr(pk, "domainname", s->domainname);
    pk_ku64(pk, "halt_signal", s->halt_signal);
    pk_ku64(pk, "stop_timeout", s->stop_timeout);
    pk_kbool(pk, "autostart", s->autostart);

    for (unsigned b = 0; b < ARRAY_SIZE(flag_names); b++)
        nflags += !!(s->flags & (1u << b));
    pk_str(pk, "flags");
    msgpack_pack_array(pk, nflags);
    for (unsigned b = 0; b < ARRAY_SIZE(flag_names); b++)
        if (s->flags & (1u << b))
            pk_str(pk, flag_names[b]);

    pk_str(pk, "limits");
    msgpack_pack_map(pk, 15);
    pk_ku64(pk, "procs", l->procs);
    pk_ku64(pk, "memory", l->memory);
    pk_ku64(pk, "rss", l->rss);
    pk_ku64(pk, "swap", l->swap);
    pk_ku64(pk, "cpu_weight", l->cpu_weight);
    pk_ku64(pk, "cpu_max", l->cpu_max);
    pk_ku64(pk, "cpu_burst", l->cpu_burst);
    pk_ku64(pk, "io_weight", l->io_weight);
    pk_ku64(pk, "disk", l->disk);
    pk_ku64(pk, "inodes", l->inodes);
    pk_ku64(pk, "nofile", l->nofile);
    pk_ku64(pk, "tcp_sockets", l->tcp_sockets);
    pk_ku64(pk, "net_in", l->net_in);
    pk_ku64(pk, "net_out", l->net_out);
    pk_str(pk, "io");
    msgpack_pack_array(pk, l->n_io_devs);
    for (uint32_t i = 0; i < l->n_io_devs; i++) {
        const struct spec_io_dev *d = &l->io_devs[i];
        msgpack_pack_map(pk, 6);
        pk_ku64(pk, "major", d->major);
        pk_ku64(pk, "minor", d->minor);
        pk_ku64(pk, "read_bps", d->read_bps);
        pk_ku64(pk, "write_bps", d->write_bps);
        pk_ku64(pk, "read_iops", d->read_iops);
        pk_ku64(pk, "write_iops", d->write_iops);
    }

    pk_caps(pk, "caps_add", s->caps_add);
    pk_caps(pk, "caps_drop", s->caps_drop);
    pk_str(pk, "ips");
    msgpack_pack_array(pk, s->n_addrs);
    for (uint32_t i = 0; i < s->n_addrs; i++) {
        char text[NETADDR_STRLEN];
        pk_str(pk, netaddr_format(&s->addrs[i], true, text, sizeof(text)));
    }
    pk_labels(pk, s->labels, s->n_labels);
}

static void
pk_sample(msgpack_packer *pk, const struct guest_usage *u)
{
    /* guest, time_ms, the counters, failcnt */
    msgpack_pack_map(pk, 3 + USAGE_N_U64_FIELDS);
    pk_kstr(pk, "guest", u->id);
    pk_ku64(pk, "time_ms", u->time_ms);
#define U(f) pk_ku64(pk, #f, u->f);
    USAGE_U64_FIELDS(U)
#undef U
    pk_str(pk, "failcnt");
    msgpack_pack_map(pk, USAGE_FAIL_COUNT);
    for (unsigned i = 0; i < USAGE_FAIL_COUNT; i++)
        pk_ku64(pk, fail_names[i], u->failcnt[i]);
}

/* Fields after the envelope, per type; the map header needs the count. */
static unsigned
body_fields(const struct msg *m)
{
    switch (m->type) {
    case MSG_HELLO:
        return 11;
    case MSG_HEARTBEAT:
        return 3;
    case MSG_WELCOME:
        return 2;
    case MSG_ACK:
        return 4;
    case MSG_NACK:
        return 4;
    case MSG_USAGE:
        return 1;
    case MSG_EVENT:
        return 5;
    case MSG_EXEC_RESULT:
        return 8;
    case MSG_GUEST_APPLY:
        return 1;
    case MSG_GUEST_START:
    case MSG_GUEST_DESTROY:
        return 2;
    case MSG_GUEST_STOP:
        return 3;
    case MSG_GUEST_EXEC:
        return 4;
    default:
        return 0;
    }
}

static void
pk_body(msgpack_packer *pk, const struct msg *m)
{
    switch (m->type) {
    case MSG_HELLO: {
        const struct msg_hello *h = &m->u.hello;
        pk_kstr(pk, "node", h->node);
        pk_kstr(pk, "agent_version", h->agent_version);
        pk_kstr(pk, "kernel", h->kernel);
        pk_kstr(pk, "cgroup", h->cgroup);
        pk_kstr(pk, "backend", h->backend);
        pk_ku64(pk, "cpus", h->cpus);
        pk_ku64(pk, "memory", h->memory);
        pk_ku64(pk, "disk", h->disk);
        pk_ku64(pk, "max_guests", h->max_guests);
        pk_labels(pk, h->labels, h->n_labels);
        pk_str(pk, "inventory");
        msgpack_pack_array(pk, h->n_inventory);
        for (uint32_t i = 0; i < h->n_inventory; i++) {
            msgpack_pack_map(pk, 4);
            pk_kstr(pk, "id", h->inventory[i].id);
            pk_kstr(pk, "name", h->inventory[i].name);
            pk_ku64(pk, "generation", h->inventory[i].generation);
            pk_kbool(pk, "running", h->inventory[i].running);
        }
        break;
    }
    case MSG_HEARTBEAT:
        pk_ku64(pk, "seq", m->u.heartbeat.seq);
        pk_ku64(pk, "n_guests", m->u.heartbeat.n_guests);
        pk_ku64(pk, "n_running", m->u.heartbeat.n_running);
        break;
    case MSG_WELCOME:
        pk_ku64(pk, "heartbeat_ms", m->u.welcome.heartbeat_ms);
        pk_ku64(pk, "usage_ms", m->u.welcome.usage_ms);
        break;
    case MSG_ACK:
        pk_ku64(pk, "ref", m->u.ack.ref);
        pk_kstr(pk, "guest", m->u.ack.id);
        pk_ku64(pk, "generation", m->u.ack.generation);
        pk_kbool(pk, "running", m->u.ack.running);
        break;
    case MSG_NACK:
        pk_ku64(pk, "ref", m->u.nack.ref);
        pk_kstr(pk, "guest", m->u.nack.id);
        pk_kstr(pk, "code", msg_error_name(m->u.nack.code));
        pk_kstr(pk, "message", m->u.nack.message);
        break;
    case MSG_USAGE:
        pk_str(pk, "samples");
        msgpack_pack_array(pk, m->u.usage.n_samples);
        for (uint32_t i = 0; i < m->u.usage.n_samples; i++)
            pk_sample(pk, &m->u.usage.samples[i]);
        break;
    case MSG_EVENT:
        pk_kstr(pk, "guest", m->u.event.id);
        pk_kstr(pk, "kind", m->u.event.kind);
        pk_ku64(pk, "time_ms", m->u.event.time_ms);
        pk_ki32(pk, "exit_code", m->u.event.exit_code);
        pk_kstr(pk, "message", m->u.event.message);
        break;
    case MSG_EXEC_RESULT: {
        const struct msg_exec_result *r = &m->u.exec_result;
        pk_ku64(pk, "ref", r->ref);
        pk_kstr(pk, "guest", r->id);
        pk_ki32(pk, "exit_code", r->exit_code);
        pk_ki32(pk, "signal", r->signal);
        pk_kbool(pk, "timed_out", r->timed_out);
        pk_kbool(pk, "truncated", r->truncated);
        pk_kbin(pk, "out", r->out, r->out_len);
        pk_kbin(pk, "err", r->err, r->err_len);
        break;
    }
    case MSG_GUEST_APPLY:
        pk_spec(pk, &m->u.apply);
        break;
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        pk_kstr(pk, "guest", m->u.guest.id);
        pk_ku64(pk, "generation", m->u.guest.generation);
        /* Only stop has a timeout; the others would carry a meaningless 0. */
        if (m->type == MSG_GUEST_STOP)
            pk_ku64(pk, "timeout", m->u.guest.timeout);
        break;
    case MSG_GUEST_EXEC:
        pk_kstr(pk, "guest", m->u.exec.id);
        pk_str(pk, "argv");
        msgpack_pack_array(pk, m->u.exec.argc);
        for (uint32_t i = 0; i < m->u.exec.argc; i++)
            pk_str(pk, m->u.exec.argv[i]);
        pk_ku64(pk, "timeout_ms", m->u.exec.timeout_ms);
        pk_ku64(pk, "max_output", m->u.exec.max_output);
        break;
    default:
        break;
    }
}

int
msg_encode(const struct msg *m, char **buf, size_t *len)
{
    struct ctx c = {0};
    struct outbuf out = {0};
    msgpack_packer pk;
    int r;

    *buf = NULL;
    *len = 0;
    if (!m || !msg_type_name(m->type))
        return -EINVAL;
    r = check_msg(&c, m);
    if (r < 0)
        return r;

    msgpack_packer_init(&pk, &out, outbuf_write);
    msgpack_pack_map(&pk, 3 + body_fields(m));
    /* "id" first, so a receiver can nack even a frame cut short. */
    pk_ku64(&pk, "id", m->id);
    pk_ku64(&pk, "v", PROTO_VERSION);
    pk_kstr(&pk, "type", msg_type_name(m->type));
    pk_body(&pk, m);
    if (out.len > PROTO_MAX_FRAME) {
        free(out.data);
        return -EINVAL;
    }
    *buf = out.data;
    *len = out.len;
    return 0;
}
