/* Binary search in an array kept sorted by a string key (strcmp order). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The key of the array element at elem. */
typedef const char *(*sorted_key_fn)(const void *elem);

/* The index of the element of base (n elements of size bytes) whose key is
 * key (*found true), or the index where it would go (*found false). */
size_t sorted_find(const void *base, size_t n, size_t size, sorted_key_fn key_of, const char *key,
                   bool *found);
