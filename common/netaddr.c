#include "common/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/units.h"

unsigned
netaddr_bits(const struct netaddr *a)
{
    return a->family == AF_INET ? 32 : 128;
}

static int
parse(const char *s, struct netaddr *out, bool allow_prefix)
{
    char buf[INET6_ADDRSTRLEN + 8];
    struct netaddr a = {0};
    uint64_t prefix = 0;
    bool has_prefix = false;

    if (!s || strlen(s) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, s);
    char *slash = strchr(buf, '/');
    if (slash) {
        if (!allow_prefix)
            return -EINVAL;
        *slash = '\0';
        if (units_parse_u64(slash + 1, &prefix) < 0)
            return -EINVAL;
        has_prefix = true;
    }
    if (inet_pton(AF_INET, buf, a.bytes) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, buf, a.bytes) == 1)
        a.family = AF_INET6;
    else
        return -EINVAL;
    if (has_prefix && prefix > netaddr_bits(&a))
        return -EINVAL;
    a.prefix = has_prefix ? (uint8_t)prefix : (uint8_t)netaddr_bits(&a);
    *out = a;
    return 0;
}

int
netaddr_parse(const char *s, struct netaddr *out)
{
    return parse(s, out, true);
}

int
netaddr_parse_host(const char *s, struct netaddr *out)
{
    return parse(s, out, false);
}

char *
netaddr_format(const struct netaddr *a, bool with_prefix, char *buf, size_t n)
{
    char addr[INET6_ADDRSTRLEN];

    if (!inet_ntop(a->family == AF_INET ? AF_INET : AF_INET6, a->bytes, addr, sizeof(addr)))
        snprintf(addr, sizeof(addr), "?");
    if (with_prefix || a->prefix != netaddr_bits(a))
        snprintf(buf, n, "%s/%u", addr, a->prefix);
    else
        snprintf(buf, n, "%s", addr);
    return buf;
}

void
netaddr_mask(struct netaddr *a)
{
    unsigned bits = netaddr_bits(a);

    for (unsigned i = 0; i < bits / 8; i++) {
        unsigned start = i * 8;
        if (start >= a->prefix)
            a->bytes[i] = 0;
        else if (start + 8 > a->prefix)
            a->bytes[i] &= (uint8_t)(0xff << (8 - (a->prefix - start)));
    }
}

bool
netaddr_contains(const struct netaddr *net, const struct netaddr *addr)
{
    struct netaddr n = *net, h = *addr;

    if (net->family != addr->family)
        return false;
    h.prefix = n.prefix;
    netaddr_mask(&n);
    netaddr_mask(&h);
    return memcmp(n.bytes, h.bytes, netaddr_bits(&n) / 8) == 0;
}

bool
netaddr_equal(const struct netaddr *a, const struct netaddr *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, netaddr_bits(a) / 8) == 0;
}
