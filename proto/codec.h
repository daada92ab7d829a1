/* The msgpack codec's internals, shared by its two halves: codec.c maps
 * messages to and from msgpack through one table per message type, and
 * codec_check.c holds the range and form checks that both directions run on
 * the typed struct. The hostile-input scanner that runs before either is
 * scan.c. Not for use outside proto/: msg.h is the contract.
 *
 * Threads: a codec_ctx lives on one call's stack; nothing is shared. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/mem.h"
#include "proto/msg.h"

/* Where decode and check write their first complaint, and the path of the
 * field being looked at ("spec.limits.io[2].major"). */
struct codec_ctx {
    char *err;      /* caller's buffer, or NULL */
    size_t errlen;  /* its size */
    bool failed;    /* the first problem has been written */
    char path[160]; /* dotted path of the current field's parent, "" at the top */
};

/* Writes the first complaint (later ones are dropped) and returns rc. */
int codec_fail(struct codec_ctx *c, int rc, const char *fmt, ...) _printf_(3, 4);
/* Complains about field `key` under the current path: "field 'spec.name': ...". */
int codec_fail_field(struct codec_ctx *c, int rc, const char *key, const char *fmt, ...)
    _printf_(4, 5);
/* Appends a segment to the path ("limits", "io[2]"); returns the old length
 * for codec_path_pop. */
size_t codec_path_push(struct codec_ctx *c, const char *fmt, ...) _printf_(2, 3);
void codec_path_pop(struct codec_ctx *c, size_t old);

/* Reading a field of a decoded map (codec_read.c). The getters look key up
 * in map and return 1 when it was read, 0 when an optional key is absent
 * (the destination is left as it is) and <0 (-EINVAL, the complaint in c)
 * when a required key is missing, the type is wrong or the value exceeds max
 * (or does not fit dst). A key given twice is refused: two peers might
 * otherwise read different values. */
int codec_find(struct codec_ctx *c, const msgpack_object *map, const char *key,
               const msgpack_object **out);
int codec_get_u64(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                  uint64_t max, uint64_t *out);
int codec_get_u32(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                  uint32_t max, uint32_t *out);
int codec_get_i32(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                  int32_t *out);
int codec_get_bool(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                   bool *out);
/* A str without NUL that fits dst (n bytes with the terminator). */
int codec_get_str(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                  char *dst, size_t n);
/* The same for an object already found; key only names it in the complaint. */
int codec_copy_str(struct codec_ctx *c, const char *key, const msgpack_object *o, char *dst,
                   size_t n);
/* An array or map (type) of at most max entries; *out points at it. */
int codec_get_container(struct codec_ctx *c, const msgpack_object *map, const char *key,
                        bool required, msgpack_object_type type, uint32_t max,
                        const msgpack_object **out);
/* A bin of at most max bytes; *p points into the frame, *n is its length. */
int codec_get_bin(struct codec_ctx *c, const msgpack_object *map, const char *key, bool required,
                  uint32_t max, const char **p, uint32_t *n);

/* Reads the envelope of top (codec_read.c): "id" (into m->id as soon as it
 * is read, so even a refused frame can be nacked), "v" (-EPROTONOSUPPORT
 * above PROTO_VERSION) and "type" (m->type; -ENOMSG when unknown). Returns 0,
 * or <0 with the complaint in c. */
int codec_read_envelope(struct codec_ctx *c, const msgpack_object *top, struct msg *m);

/* The range and form checks of a typed message, shared by msg_encode and
 * msg_decode. Returns 0 or -EINVAL (the complaint in c). */
int codec_check_msg(struct codec_ctx *c, const struct msg *m);

/* Propagates a negative result. */
#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int _r = (expr);                                                                           \
        if (_r < 0)                                                                                \
            return _r;                                                                             \
    } while (0)
