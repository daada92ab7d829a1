/* libFuzzer harness for msg_decode: no input may crash, leak or read out of
 * bounds, and whatever decodes must survive encode -> decode unchanged in
 * the bytes it encodes to. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Decoded into structs full of junk: msg_decode zeroes only the
     * header and the member its type uses, so nothing may depend on the
     * rest (what a caller's reused or uninitialised struct holds). */
    static struct msg m, again;
    char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    char err[256];

    memset(&m, 0xA5, sizeof(m));
    memset(&again, 0x5A, sizeof(again));
    if (msg_decode((const char *)data, size, &m, err, sizeof(err)) != 0) {
        /* The error text is always a terminated string. */
        assert(memchr(err, '\0', sizeof(err)));
        msg_clear(&m);
        return 0;
    }
    /* What we accepted we can send: the encoder's checks are the decoder's. */
    if (msg_encode(&m, &buf, &len) != 0)
        abort();
    if (msg_decode(buf, len, &again, err, sizeof(err)) != 0)
        abort();
    /* Re-encoding the re-decoded message gives the same bytes: the round trip
     * lost and invented nothing. */
    if (msg_encode(&again, &buf2, &len2) != 0 || len2 != len || memcmp(buf, buf2, len) != 0)
        abort();
    free(buf);
    free(buf2);
    msg_clear(&m);
    msg_clear(&again);
    return 0;
}
