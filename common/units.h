/* Sizes and rates as operators write them: "256M", "1.5G", "10Mbit".
 *
 * Sizes: a plain number is bytes. K, M, G, T, P, E alone or with "iB" are
 * binary (1024-based, as OpenVZ and VServer configs meant them); "KB", "MB",
 * ... are decimal (Incus's rule). Fractions are exact to the byte: "1.5G" is
 * 1610612736. Case-insensitive; a "B" alone means bytes.
 *
 * Rates are bits per second: "bit", "kbit", "mbit", "gbit", "tbit" decimal,
 * "kibit", "mibit", "gibit" binary, and "bps", "kbps", "mbps", "gbps" bytes per
 * second (tc's rule). A plain number is bits per second.
 *
 * Every parser returns 0, -EINVAL for text it cannot read and -ERANGE when the
 * value does not fit in 64 bits, or when it is not zero but comes to less
 * than one byte or bit ("0.5", "0.0000001K"): callers read 0 as "not set",
 * so a tiny value must not silently turn into that. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int units_parse_size(const char *s, uint64_t *out);
int units_parse_rate(const char *s, uint64_t *bits_per_sec);
/* Parses a whole unsigned decimal number, no sign, no suffix. */
int units_parse_u64(const char *s, uint64_t *out);

/* Writes the shortest exact binary form ("256M", "1536K", "1000") into buf. */
char *units_format_size(uint64_t bytes, char *buf, size_t n);
