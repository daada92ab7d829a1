/* The schema of node.conf: every key, its type, range and flag (one table,
 * which docs/config.md and /etc/vfleet/node.conf must match: a test checks
 * it). */
#pragma once

#include <stddef.h>

#include "common/config.h"

extern const struct config_key node_config_keys[];
extern const size_t node_config_n_keys;
