#include "proto/spec_pack.h"

#include <errno.h>
#include <msgpack.h>
#include <string.h>

#include "proto/codec.h"

int
codec_outbuf_write(void *data, const char *buf, size_t len)
{
    struct codec_outbuf *o = data;
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

int
spec_pack(const struct guest_spec *s, char **buf, size_t *len)
{
    struct codec_outbuf out = {0};
    msgpack_packer pk;

    *buf = NULL;
    *len = 0;
    /* The packer writes names by index (restart policy, flags): only a
     * valid spec has one for each. */
    if (spec_validate(s, NULL) < 0)
        return -EINVAL;
    msgpack_packer_init(&pk, &out, codec_outbuf_write);
    codec_pack_spec(&pk, s);
    /* Kept for long: no slack from the doubling growth. */
    *buf = xrealloc(out.data, out.len);
    *len = out.len;
    return 0;
}

int
spec_unpack(const char *buf, size_t len, struct guest_spec *s)
{
    struct codec_ctx c = {0};
    msgpack_unpacked up;
    size_t off = 0;
    int r = -EBADMSG;

    memset(s, 0, sizeof(*s));
    msgpack_unpacked_init(&up);
    if (buf && msgpack_unpack_next(&up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len &&
        up.data.type == MSGPACK_OBJECT_MAP)
        r = codec_decode_spec(&c, &up.data, s) < 0 ? -EBADMSG : 0;
    msgpack_unpacked_destroy(&up);
    return r;
}
