/* The hostile-input scanner: the first look at a frame from a peer.
 *
 * msgpack-c's unpacker allocates for the element count a header *claims*
 * before any element arrives: a 5-byte array32 header can ask for gigabytes.
 * scan_frame() therefore walks the raw bytes of one frame before msgpack-c
 * sees them, without allocating and without recursion: every declared
 * str/bin/ext length and array/map count is checked against the bytes left
 * and against the caps of proto/msg.h (PROTO_MAX_*), nesting is bounded,
 * the object count is bounded and trailing bytes are refused. After it
 * accepts a frame, msgpack_unpack_next() allocates at most about 48 bytes per
 * object, and at most PROTO_MAX_OBJECTS objects.
 *
 * It knows nothing of message types or fields (that is codec.c), except that
 * it picks up the top-level "id" on the way, so even a refused frame can be
 * nacked with the request id it carried.
 *
 * Threads: no state; safe from any thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Checks that buf[0..len) is exactly one bounded msgpack object. Returns 0
 * or -EBADMSG with a one-line reason in err (errlen bytes, always terminated
 * when errlen > 0; err may be NULL). When the top-level map carries an
 * unsigned "id" before the first byte refused, *id is set and *have_id true. */
int scan_frame(const uint8_t *buf, size_t len, uint64_t *id, bool *have_id, char *err,
               size_t errlen);
