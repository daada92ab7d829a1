/* Names of guests, nodes, pools and templates. */
#pragma once

#include <stdbool.h>

#define NAME_MAX_LEN 63 /* a DNS label */

/* A DNS label as RFC 1123 has it, lower case only so a name is its own
 * canonical form: 1-63 of [a-z0-9-], neither starting nor ending with '-'. */
bool name_is_valid(const char *s);
