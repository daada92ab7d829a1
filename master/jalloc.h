/* jansson's (and SQLite's) allocator on the master's loop thread: small blocks kept on
 * free lists by size instead of going back to malloc. A 1,000-guest batch
 * builds and frees trees of tens of thousands of small blocks (the request,
 * each guest's spec and reply, the reply's text); glibc's thread cache
 * holds 7 blocks per size, so the rest went through _int_free and
 * _int_malloc, which sorted and split them again for the next tree. */
#pragma once

#include <stddef.h>

/* Installs the allocator for the calling thread (the other threads get
 * malloc and free as before). Call before any jansson value exists. Every
 * block is a plain malloc block, so free() of a json_dumps result stays
 * right. */
void jalloc_install(void);
/* Makes the same lists SQLite's allocator (SQLITE_CONFIG_MALLOC): this
 * Debian's SQLite is built without its lookaside pool, so every statement's
 * small allocations went to malloc, ~200 per created guest (issue 16).
 * Before sqlite3_initialize; -EBUSY after. Threads that did not call
 * jalloc_install get malloc and free. */
int jalloc_sqlite_install(void);
/* Returns the blocks kept on the calling thread's lists to malloc. */
void jalloc_release(void);
/* jansson's malloc and free (exposed for the tests). */
void *jalloc_malloc(size_t n);
void jalloc_free(void *p);
/* Bytes kept on the calling thread's lists (for the tests). */
size_t jalloc_cached(void);
