/* A guest spec packed for keeping in memory, sized by what it holds.
 *
 * struct guest_spec has fixed arrays for the maxima (32 labels of 320 bytes,
 * 64 addresses, 8 I/O devices, 4 KiB of authorized_keys...): 17 KB whatever
 * it holds. Packed, a spec is its scalars, its strings up to their NUL and
 * the used entries of each array: ~250 bytes for a guest with one address
 * and no labels. Long-lived copies (the node's store) keep this and unpack
 * when they need the whole spec.
 *
 * A form for this process's memory only, never written to disk or sent: the
 * bytes are in host order and change with struct guest_spec. The wire form
 * is the codec's (msg.h), the disk form spec_json's. Packing and unpacking
 * cost about as much as copying the struct once.
 *
 * Threads: plain functions on the caller's buffers. */
#pragma once

#include <stddef.h>

#include "proto/spec.h"

/* Packs s into a new buffer (*buf, owned by the caller, *len bytes).
 * Returns 0, or -EINVAL (nothing allocated) when s fails spec_validate. */
int spec_pack(const struct guest_spec *s, char **buf, size_t *len);

/* Unpacks what spec_pack wrote into *s (zeroed first, so an unpacked spec
 * compares equal with memcmp to the zero-initialised one packed). Returns
 * 0, or -EBADMSG when buf is not a whole packed spec (a caller mixed
 * buffers up, or memory went bad); *s is then zeroed. */
int spec_unpack(const char *buf, size_t len, struct guest_spec *s);
