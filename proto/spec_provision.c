/* The provision group of a guest spec: what it may hold. The node writes
 * these values into the guest's /etc/shadow, /root/.ssh/authorized_keys and
 * /etc/resolv.conf, so nothing here may break those files' syntax: a hash
 * has no ':' or newline, a key line no control character, a search domain
 * no space. */
#include <errno.h>
#include <string.h>

#include "proto/spec.h"

#define FAIL(name)                                                                                 \
    do {                                                                                           \
        if (field)                                                                                 \
            *field = (name);                                                                       \
        return -EINVAL;                                                                            \
    } while (0)

/* A crypt(3) hash of a scheme libcrypt makes (yescrypt, gost-yescrypt,
 * scrypt, sha512crypt, sha256crypt, bcrypt), or "!"/"*" (no password login). */
static bool
hash_ok(const char *h)
{
    static const char *const schemes[] = {"$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$"};
    bool known = false;

    if (strcmp(h, "!") == 0 || strcmp(h, "*") == 0)
        return true;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncmp(h, schemes[i], strlen(schemes[i])) == 0)
            known = true;
    if (!known || strlen(h) < 20)
        return false;
    for (const char *p = h; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '/' || c == '$' || c == '=' || c == ','))
            return false;
    }
    return true;
}

/* One authorized_keys line: printable, and one of its words is a key type
 * OpenSSH knows (options such as from="..." may come first). */
static bool
key_line_ok(const char *s, size_t n)
{
    static const char *const types[] = {"ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"};
    bool typed = false;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
        if (i == 0 || s[i - 1] == ' ')
            for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++)
                if (n - i > strlen(types[t]) && strncmp(s + i, types[t], strlen(types[t])) == 0)
                    typed = true;
    }
    return typed;
}

static bool
keys_ok(const char *keys)
{
    size_t n = strnlen(keys, SPEC_KEYS_MAX + 1), lines = 0;

    if (n > SPEC_KEYS_MAX)
        return false;
    for (const char *p = keys; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!key_line_ok(p, len) || ++lines > SPEC_MAX_KEYS)
            return false;
        p += len;
        if (*p == '\n' && *++p == '\0')
            return false; /* no trailing empty line: lines are joined, not terminated */
    }
    return true;
}

/* A domain name: labels of [A-Za-z0-9-] (not starting or ending with '-'),
 * joined by dots, at most 253 bytes. */
static bool
domain_ok(const char *s, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (++label > 63)
            return false;
    }
    return s[n - 1] != '-';
}

static bool
search_ok(const char *search)
{
    size_t words = 0;

    if (strnlen(search, SPEC_SEARCH_MAX + 1) > SPEC_SEARCH_MAX)
        return false;
    for (const char *p = search; *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!domain_ok(p, len) || ++words > SPEC_MAX_SEARCH)
            return false;
        p += len;
        if (*p == ' ' && *++p == '\0')
            return false;
    }
    return true;
}

int
spec_provision_validate(const struct spec_provision *p, const char **field)
{
    if (strnlen(p->password_hash, sizeof(p->password_hash)) >= sizeof(p->password_hash))
        FAIL("provision.password_hash");
    if (p->password_hash[0] && !hash_ok(p->password_hash))
        FAIL("provision.password_hash");
    if (!keys_ok(p->ssh_keys))
        FAIL("provision.ssh_keys");
    if (p->n_dns > SPEC_MAX_DNS)
        FAIL("provision.dns");
    for (uint32_t i = 0; i < p->n_dns; i++) {
        const struct netaddr *a = &p->dns[i];
        if ((a->family != 2 /* AF_INET */ && a->family != 10 /* AF_INET6 */) ||
            a->prefix != netaddr_bits(a))
            FAIL("provision.dns");
    }
    if (!search_ok(p->search))
        FAIL("provision.search");
    return 0;
}

bool
spec_provision_empty(const struct spec_provision *p)
{
    return !p->password_hash[0] && !p->ssh_keys[0] && p->n_dns == 0 && !p->search[0];
}
