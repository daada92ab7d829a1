#include "common/errtext.h"

#include <stdarg.h>
#include <stdio.h>

static __thread char errtext_buf[ERRTEXT_MAX];

void
errtext_set(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errtext_buf, sizeof(errtext_buf), fmt, ap);
    va_end(ap);
}

const char *
errtext_get(void)
{
    return errtext_buf;
}

void
errtext_clear(void)
{
    errtext_buf[0] = '\0';
}

int
errtext_fail(int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(errtext_buf, sizeof(errtext_buf), fmt, ap);
    va_end(ap);
    return err;
}
