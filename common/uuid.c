/* Random UUIDs (uuid.h). */
#include "common/uuid.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>

int
uuid_v4(char out[UUID_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    size_t got = 0, o = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            return -errno;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* the RFC 4122 variant */
    /* Written by hand: snprintf's sixteen %02x were a visible part of a
     * batch create (issue 16). */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0x0f];
    }
    out[o] = '\0';
    return 0;
}
