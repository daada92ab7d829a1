/* Base64 (RFC 4648, with padding), for archive chunks in JSON bodies. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The encoded length of n bytes, without the NUL. */
size_t base64_len(size_t n);
/* Encodes n bytes into out (base64_len(n) + 1 bytes, NUL-terminated). */
void base64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes text (no whitespace) into out (at least len * 3 / 4 bytes).
 * Returns the byte count, or -EINVAL for anything that is not base64. */
long base64_decode(const char *text, size_t len, uint8_t *out);
