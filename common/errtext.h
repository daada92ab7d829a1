/* A human-readable detail for the last failure on this thread, beside the
 * -errno a function returns: errno says what kind of failure, errtext says
 * which step and why ("growing a running guest's disk needs
 * CAP_SYS_RESOURCE"). Lower layers set it where they know more than an errno
 * can say; the edge (a nack, an API error) shows it. Thread-local, like
 * errno, so the agent's worker lanes do not see each other's text. */
#pragma once

#include "common/mem.h"

#define ERRTEXT_MAX 256

/* Sets the detail (truncated to ERRTEXT_MAX - 1 bytes). */
void errtext_set(const char *fmt, ...) _printf_(1, 2);
/* The detail, "" when none was set since the last clear. */
const char *errtext_get(void);
void errtext_clear(void);
/* Sets the detail and returns err, for `return errtext_fail(-EINVAL, "...")`. */
int errtext_fail(int err, const char *fmt, ...) _printf_(2, 3);
