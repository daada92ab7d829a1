/* Reading typed values out of a decoded msgpack map (codec.h): every
 * accessor checks the object's msgpack type and size and names the field in
 * its complaint. Only the codec calls them; no msgpack object leaves proto/. */
#include <errno.h>
#include <string.h>

#include "proto/codec.h"

/* Finds key in map; a key present twice is refused, since the two peers
 * might otherwise read different values. Returns 1 found, 0 absent, <0. */
int
codec_find(struct codec_ctx *c, const msgpack_object *map, const char *key,
           const msgpack_object **out)
{
    size_t klen = strlen(key);
    const msgpack_object *found = NULL;

    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != klen ||
            memcmp(kv->key.via.str.ptr, key, klen) != 0)
            continue;
        if (found)
            return codec_fail_field(c, -EINVAL, key, "given twice");
        found = &kv->val;
    }
    *out = found;
    return found ? 1 : 0;
}

/* Looks up key; a missing required field is an error, a missing optional
 * one leaves the destination as it is (zero). Returns 1, 0 or <0. */
static int
codec_lookup(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
             const msgpack_object **out)
{
    int r = codec_find(c, map, key, out);
    if (r == 0 && required)
        return codec_fail_field(c, -EINVAL, key, "missing");
    return r;
}

int
codec_get_u64(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
              uint64_t max, uint64_t *out)
{
    const msgpack_object *o;
    int r = codec_lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return codec_fail_field(c, -EINVAL, key, "not an unsigned integer");
    if (o->via.u64 > max)
        return codec_fail_field(c, -EINVAL, key, "%llu exceeds %llu",
                                (unsigned long long)o->via.u64, (unsigned long long)max);
    *out = o->via.u64;
    return 1;
}

int
codec_get_u32(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
              uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    int r = codec_get_u64(c, map, key, required, max, &v);
    if (r > 0)
        *out = (uint32_t)v;
    return r;
}

int
codec_get_i32(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
              int32_t *out)
{
    const msgpack_object *o;
    int r = codec_lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX)
        *out = (int32_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= INT32_MIN)
        *out = (int32_t)o->via.i64;
    else
        return codec_fail_field(c, -EINVAL, key, "not a 32-bit integer");
    return 1;
}

int
codec_get_bool(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
               bool *out)
{
    const msgpack_object *o;
    int r = codec_lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return codec_fail_field(c, -EINVAL, key, "not a boolean");
    *out = o->via.boolean;
    return 1;
}

/* Copies a msgpack str into dst (size n), refusing NUL bytes and strings
 * that do not fit. */
int
codec_copy_str(struct codec_ctx *c, const char *key, const msgpack_object *o, char *dst, size_t n)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return codec_fail_field(c, -EINVAL, key, "not a string");
    if (o->via.str.size >= n)
        return codec_fail_field(c, -EINVAL, key, "longer than %zu bytes", n - 1);
    if (memchr(o->via.str.ptr, '\0', o->via.str.size))
        return codec_fail_field(c, -EINVAL, key, "contains a NUL byte");
    memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = '\0';
    return 1;
}

int
codec_get_str(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
              char *dst, size_t n)
{
    const msgpack_object *o;
    int r = codec_lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    return codec_copy_str(c, key, o, dst, n);
}

/* A required or optional array or map field: its object, type-checked, with
 * at most max entries. Returns 1, 0 (absent) or <0. */
int
codec_get_container(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                    msgpack_object_type type, uint32_t max, const msgpack_object **out)
{
    int r = codec_lookup(c, map, key, required, out);
    if (r <= 0)
        return r;
    if ((*out)->type != type)
        return codec_fail_field(c, -EINVAL, key, "not %s",
                                type == MSGPACK_OBJECT_MAP ? "a map" : "an array");
    uint32_t size = type == MSGPACK_OBJECT_MAP ? (*out)->via.map.size : (*out)->via.array.size;
    if (size > max)
        return codec_fail_field(c, -EINVAL, key, "%u entries exceed %u", size, max);
    return 1;
}

/* Checks and returns up to n bytes of a bin field; *p points into the frame. */
int
codec_get_bin(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
              uint32_t max, const char **p, uint32_t *n)
{
    const msgpack_object *o;
    int r = codec_lookup(c, map, key, required, &o);
    if (r <= 0)
        return r;
    if (o->type != MSGPACK_OBJECT_BIN)
        return codec_fail_field(c, -EINVAL, key, "not binary");
    if (o->via.bin.size > max)
        return codec_fail_field(c, -EINVAL, key, "%u bytes exceed %u", o->via.bin.size, max);
    *p = o->via.bin.ptr;
    *n = o->via.bin.size;
    return 1;
}

int
codec_read_envelope(struct codec_ctx *c, const msgpack_object *top, struct msg *m)
{
    const msgpack_object *o;
    char type[64];

    if (top->type != MSGPACK_OBJECT_MAP)
        return codec_fail(c, -EBADMSG, "not a map");
    if (codec_find(c, top, "id", &o) <= 0 || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return codec_fail(c, -EBADMSG, "field 'id': missing or not an unsigned integer");
    m->id = o->via.u64;
    if (codec_find(c, top, "v", &o) <= 0 || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o->via.u64 == 0)
        return codec_fail(c, -EBADMSG, "field 'v': missing or not a positive integer");
    if (o->via.u64 > PROTO_VERSION)
        return codec_fail(c, -EPROTONOSUPPORT, "protocol version %llu, this side speaks %d",
                          (unsigned long long)o->via.u64, PROTO_VERSION);
    if (codec_find(c, top, "type", &o) <= 0 || o->type != MSGPACK_OBJECT_STR)
        return codec_fail(c, -EBADMSG, "field 'type': missing or not a string");
    if (o->via.str.size >= sizeof(type) || memchr(o->via.str.ptr, '\0', o->via.str.size))
        return codec_fail(c, -ENOMSG, "unknown message type");
    memcpy(type, o->via.str.ptr, o->via.str.size);
    type[o->via.str.size] = '\0';
    m->type = msg_type_from_name(type);
    if (m->type == MSG_INVALID)
        return codec_fail(c, -ENOMSG, "unknown message type '%s'", type);
    return 0;
}
