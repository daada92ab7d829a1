/* A JSON value as compact text, the same bytes as jansson's
 * json_dumps(v, JSON_COMPACT [| JSON_ENSURE_ASCII]) at a fraction of its
 * cost: jansson's dump calls back per token and checks every character
 * through its UTF-8 iterator, ~15 % of the master's instructions on a
 * 1,000-guest batch (the reply, each spec's row, the events; callgrind,
 * docs/performance.md). Objects in insertion order, as jansson. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* v (an object or an array) as text, or NULL where json_dumps gives NULL
 * (another root, a string that is not UTF-8, a real that is not finite)
 * and also for nesting deeper than 2048 (json_dumps writes it; no parsed
 * body is that deep, jansson's parser stops at 2048: jtext_test test_deep).
 * ascii: JSON_ENSURE_ASCII (every non-ASCII character as \uXXXX). The text
 * is malloc's: free() it. */
char *jtext_dumps(const json_t *v, bool ascii);
