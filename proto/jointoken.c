/* Join token text (jointoken.h). */
#include "proto/jointoken.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

int
jointoken_format(const struct jointoken *t, char out[JOINTOKEN_SIZE])
{
    uint8_t secret[KEYS_BIN_LEN], master[KEYS_BIN_LEN];
    char *p = out;

    if (keys_to_bin(t->secret_key, secret) < 0 || keys_to_bin(t->master_key, master) < 0)
        return -EINVAL;
    memcpy(p, JOINTOKEN_PREFIX "-", 5);
    p += 5;
    sodium_bin2hex(p, 2 * KEYS_BIN_LEN + 1, secret, sizeof(secret));
    p += 2 * KEYS_BIN_LEN;
    *p++ = '-';
    sodium_bin2hex(p, 2 * KEYS_BIN_LEN + 1, master, sizeof(master));
    sodium_memzero(secret, sizeof(secret));
    return 0;
}

static int
hex_part(const char *hex, uint8_t bin[KEYS_BIN_LEN])
{
    size_t len = 0;

    for (size_t i = 0; i < 2 * KEYS_BIN_LEN; i++)
        if (!hex[i] || !strchr("0123456789abcdefABCDEF", hex[i]))
            return -EINVAL;
    if (sodium_hex2bin(bin, KEYS_BIN_LEN, hex, 2 * KEYS_BIN_LEN, NULL, &len, NULL) < 0 ||
        len != KEYS_BIN_LEN)
        return -EINVAL;
    return 0;
}

int
jointoken_parse(const char *text, struct jointoken *t)
{
    uint8_t secret[KEYS_BIN_LEN], master[KEYS_BIN_LEN];
    size_t len;

    memset(t, 0, sizeof(*t));
    if (!text)
        return -EINVAL;
    text += strspn(text, " \t\r\n");
    len = strcspn(text, " \t\r\n");
    if (len != JOINTOKEN_LEN || text[len + strspn(text + len, " \t\r\n")] != '\0' ||
        strncmp(text, JOINTOKEN_PREFIX "-", 5) != 0 || text[5 + 2 * KEYS_BIN_LEN] != '-' ||
        hex_part(text + 5, secret) < 0 || hex_part(text + 6 + 2 * KEYS_BIN_LEN, master) < 0)
        return -EINVAL;
    keys_to_z85(secret, t->secret_key);
    keys_to_z85(master, t->master_key);
    sodium_memzero(secret, sizeof(secret));
    if (keys_public_of(t->secret_key, t->public_key) < 0) {
        sodium_memzero(t, sizeof(*t));
        return -EINVAL;
    }
    return 0;
}
