/* IPv4 and IPv6 addresses and CIDR prefixes as one value type. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETADDR_STRLEN 50 /* enough for "ffff:...:ffff/128" and a NUL */

struct netaddr {
    uint8_t family;    /* AF_INET or AF_INET6 */
    uint8_t prefix;    /* prefix length: 0-32 or 0-128 */
    uint8_t bytes[16]; /* network byte order; IPv4 uses the first 4 */
};

/* Parses "192.0.2.7", "192.0.2.0/24", "2001:db8::1", "2001:db8::/32". An address
 * without a prefix gets the full length (/32 or /128). Host bits may be set.
 * Returns 0 or -EINVAL. */
int netaddr_parse(const char *s, struct netaddr *out);
/* Like netaddr_parse, but the text must carry no "/prefix". */
int netaddr_parse_host(const char *s, struct netaddr *out);
/* "a.b.c.d/p" (prefix omitted when it is the full length and with_prefix is false). */
char *netaddr_format(const struct netaddr *a, bool with_prefix, char *buf, size_t n);

/* Length in bits of the family's address: 32 or 128. */
unsigned netaddr_bits(const struct netaddr *a);
/* Clears the host bits, giving the network of a prefix. */
void netaddr_mask(struct netaddr *a);
/* True when addr lies inside net (same family, network bits equal). */
bool netaddr_contains(const struct netaddr *net, const struct netaddr *addr);
/* True when both are the same address (prefix ignored). */
bool netaddr_equal(const struct netaddr *a, const struct netaddr *b);
