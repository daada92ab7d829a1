/* A guest spec packed for keeping: the msgpack map guest.apply carries
 * under "spec", sized by what the spec holds. struct guest_spec has fixed
 * arrays for the maxima (32 labels of 320 bytes, 64 addresses, 4 KiB of
 * authorized_keys...), 17 KB whatever it holds; a spec packed is a few
 * hundred bytes when it holds little. Long-lived copies (the node's store
 * and guest table) keep this and unpack when they need the whole spec.
 *
 * Threads: plain functions on the caller's buffers. */
#pragma once

#include <stddef.h>

#include "proto/spec.h"

/* Packs s into a new buffer (*buf, owned by the caller, *len bytes).
 * Returns 0, or -EINVAL (nothing allocated) when s fails spec_validate. */
int spec_pack(const struct guest_spec *s, char **buf, size_t *len);

/* Unpacks what spec_pack wrote into *s (zeroed first, so two unpacks of the
 * same bytes compare equal with memcmp). Returns 0, or -EBADMSG when buf is
 * not a packed spec (memory went bad or a caller mixed buffers up). */
int spec_unpack(const char *buf, size_t len, struct guest_spec *s);
