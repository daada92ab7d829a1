#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct suffix {
    const char *name; /* lower-case suffix text */
    uint64_t mult;    /* multiplier in the base unit */
};

#define KI 1024ULL
static const struct suffix size_suffixes[] = {
    {"", 1},
    {"b", 1},
    {"k", KI},
    {"kib", KI},
    {"kb", 1000ULL},
    {"m", KI *KI},
    {"mib", KI *KI},
    {"mb", 1000000ULL},
    {"g", KI *KI *KI},
    {"gib", KI *KI *KI},
    {"gb", 1000000000ULL},
    {"t", KI *KI *KI *KI},
    {"tib", KI *KI *KI *KI},
    {"tb", 1000000000000ULL},
    {"p", KI *KI *KI *KI *KI},
    {"pib", KI *KI *KI *KI *KI},
    {"pb", 1000000000000000ULL},
    {"e", KI *KI *KI *KI *KI *KI},
    {"eib", KI *KI *KI *KI *KI *KI},
    {"eb", 1000000000000000000ULL},
};

static const struct suffix rate_suffixes[] = {
    {"", 1},
    {"bit", 1},
    {"kbit", 1000ULL},
    {"mbit", 1000000ULL},
    {"gbit", 1000000000ULL},
    {"tbit", 1000000000000ULL},
    {"kibit", KI},
    {"mibit", KI *KI},
    {"gibit", KI *KI *KI},
    {"tibit", KI *KI *KI *KI},
    {"bps", 8ULL},
    {"kbps", 8000ULL},
    {"mbps", 8000000ULL},
    {"gbps", 8000000000ULL},
    {"tbps", 8000000000000ULL},
};

/* Fraction digits kept: 10^20 times the largest multiplier (2^60) still fits
 * 128 bits, and a digit past the 20th is worth less than 1/80 of a byte. */
#define FRAC_DIV_MAX ((unsigned __int128)10000000000ULL * 10000000000ULL)

/* Parses "<digits>[.<digits>]<suffix>" exactly, with 128-bit intermediates.
 * A value that is not zero but comes to less than one unit ("0.1", "0.0000001K")
 * is -ERANGE: read as 0 it would silently mean "not set". */
static int
parse_scaled(const char *s, const struct suffix *tab, size_t ntab, uint64_t *out)
{
    unsigned __int128 whole = 0, frac = 0, frac_div = 1;
    bool nonzero = false;
    const char *p = s;

    if (!s)
        return -EINVAL;
    while (isspace((unsigned char)*p))
        p++;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        whole = whole * 10 + (unsigned)(*p - '0');
        nonzero |= *p != '0';
        if (whole > UINT64_MAX)
            return -ERANGE;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
            nonzero |= *p != '0';
            if (frac_div < FRAC_DIV_MAX) {
                frac = frac * 10 + (unsigned)(*p - '0');
                frac_div *= 10;
            }
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    const char *suf = p;
    size_t suflen = strlen(suf);
    while (suflen > 0 && isspace((unsigned char)suf[suflen - 1]))
        suflen--;

    for (size_t i = 0; i < ntab; i++) {
        if (strlen(tab[i].name) != suflen || strncasecmp(tab[i].name, suf, suflen) != 0)
            continue;
        unsigned __int128 v = whole * tab[i].mult;
        if (whole != 0 && v / whole != tab[i].mult)
            return -ERANGE;
        v += frac * tab[i].mult / frac_div;
        if (v > UINT64_MAX || (v == 0 && nonzero))
            return -ERANGE;
        *out = (uint64_t)v;
        return 0;
    }
    return -EINVAL;
}

int
units_parse_size(const char *s, uint64_t *out)
{
    return parse_scaled(s, size_suffixes, sizeof(size_suffixes) / sizeof(size_suffixes[0]), out);
}

int
units_parse_rate(const char *s, uint64_t *bits_per_sec)
{
    return parse_scaled(s, rate_suffixes, sizeof(rate_suffixes) / sizeof(rate_suffixes[0]),
                        bits_per_sec);
}

int
units_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

char *
units_format_size(uint64_t bytes, char *buf, size_t n)
{
    static const char units[] = "KMGTPE";
    int u = -1;

    while (bytes >= 1024 && bytes % 1024 == 0 && u < 5) {
        bytes /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(buf, n, "%llu", (unsigned long long)bytes);
    else
        snprintf(buf, n, "%llu%c", (unsigned long long)bytes, units[u]);
    return buf;
}
