/* jansson's and SQLite's allocator: free lists per 16-byte class on one
 * thread. */
#include "master/jalloc.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>

/* No-ops outside AddressSanitizer. */
#include <sanitizer/asan_interface.h>

#include "common/sanitizer.h"

/* Blocks up to this many bytes are kept (jansson's values, keys, short
 * strings and hash buckets; SQLite's statement memory and its in-memory
 * sub-journal's 1 KiB chunks); larger ones go back to malloc at once. */
#define JALLOC_SMALL   1040
#define JALLOC_CLASSES (JALLOC_SMALL / 16)
/* Bytes kept at most: a tree larger than this (a hostile body) is mostly
 * returned to malloc, so the lists cannot hold on to it. */
#define JALLOC_CACHE_MAX (16u << 20)

struct jalloc_block {
    struct jalloc_block *next; /* the next free block of the same class */
};

static __thread bool jalloc_owner;                                 /* this thread keeps blocks */
static __thread struct jalloc_block *jalloc_lists[JALLOC_CLASSES]; /* by class, 16..1,040 bytes */
static __thread size_t jalloc_bytes;                               /* bytes on the lists */

void *
jalloc_malloc(size_t n)
{
    /* n is compared before it is rounded: n + 15 wraps for the largest
     * sizes, which made class 0 and read the list before the first. */
    if (!jalloc_owner || n > JALLOC_SMALL)
        return malloc(n);
    size_t c = n ? (n + 15) / 16 : 1;
    struct jalloc_block *b = jalloc_lists[c - 1];
    if (b) {
#ifdef VF_ASAN
        /* All of it: SQLite asks the usable size (sq_size) and may use it,
         * and a block kept in class c may be larger than c * 16. */
        ASAN_UNPOISON_MEMORY_REGION(b, malloc_usable_size(b));
#endif
        jalloc_lists[c - 1] = b->next;
        jalloc_bytes -= c * 16;
        return b;
    }
    return malloc(c * 16);
}

void
jalloc_free(void *p)
{
    if (!p)
        return;
    if (!jalloc_owner) {
        free(p);
        return;
    }
    /* The class a block can serve: every request of up to c * 16 bytes.
     * (A block from elsewhere, e.g. another thread's, counts by its size
     * just the same: all are malloc's.) */
    size_t c = malloc_usable_size(p) / 16;
    if (c < 1 || c > JALLOC_CLASSES || jalloc_bytes + c * 16 > JALLOC_CACHE_MAX) {
        free(p);
        return;
    }
    struct jalloc_block *b = p;
    b->next = jalloc_lists[c - 1];
    jalloc_lists[c - 1] = b;
    jalloc_bytes += c * 16;
    /* A block on a list is free: under AddressSanitizer a use of it after
     * jansson freed it is reported, as it would be without the lists. */
    ASAN_POISON_MEMORY_REGION(b, c * 16);
}

size_t
jalloc_cached(void)
{
    return jalloc_bytes;
}

void
jalloc_install(void)
{
    jalloc_owner = true;
    json_set_alloc_funcs(jalloc_malloc, jalloc_free);
}

void
jalloc_release(void)
{
    for (size_t i = 0; i < JALLOC_CLASSES; i++)
        while (jalloc_lists[i]) {
            struct jalloc_block *b = jalloc_lists[i];
            ASAN_UNPOISON_MEMORY_REGION(b, (i + 1) * 16);
            jalloc_lists[i] = b->next;
            free(b);
        }
    jalloc_bytes = 0;
}

/* ---- SQLite's allocator ---- */

static void *
sq_malloc(int n)
{
    return n > 0 ? jalloc_malloc((size_t)n) : NULL;
}

static void *
sq_realloc(void *p, int n)
{
    /* Every block is malloc's, wherever it came from. */
    return n > 0 ? realloc(p, (size_t)n) : NULL;
}

static int
sq_size(void *p)
{
    return p ? (int)malloc_usable_size(p) : 0;
}

static int
sq_roundup(int n)
{
    return (n + 15) & ~15;
}

static int
sq_init(void *unused)
{
    (void)unused;
    return SQLITE_OK;
}

static void
sq_shutdown(void *unused)
{
    (void)unused;
}

int
jalloc_sqlite_install(void)
{
    static const sqlite3_mem_methods methods = {sq_malloc,  jalloc_free, sq_realloc,  sq_size,
                                                sq_roundup, sq_init,     sq_shutdown, NULL};

    return sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK ? 0 : -EBUSY;
}
