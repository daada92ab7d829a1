/* Random UUIDs (version 4, RFC 4122) as text: the ids of guests,
 * operations and uploaded archives, and the CLI's Idempotency-Keys. */
#pragma once

#define UUID_TEXT_LEN 36 /* 8-4-4-4-12 lower-case hex digits, without the NUL */

/* A new random UUID in out, NUL-terminated, from getrandom: 0, or -errno when
 * the kernel gives no randomness (out is then unchanged). */
int uuid_v4(char out[UUID_TEXT_LEN + 1]);
