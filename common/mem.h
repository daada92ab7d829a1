/* Aborting allocators and the cleanup macros every module uses.
 *
 * Out of memory is not an error vfleet tries to recover from: the x-allocators
 * abort with a message, so callers never check for NULL. Cleanup attributes
 * replace goto ladders (crun, systemd, LXC); move_ptr/move_fd hand ownership
 * out of a scope that would otherwise free it. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#endif

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array of nmemb elements of size bytes, checking the multiplication. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

/* Copies src into dst of size n, always NUL-terminated. Returns -ENAMETOOLONG
 * (and copies nothing) when src does not fit, so a long name is refused, not cut. */
int strscpy(char *dst, const char *src, size_t n);

static inline void
freep(void *p)
{
    free(*(void **)p);
}

static inline void
closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

static inline void
fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_free_   _cleanup_(freep)
#define _cleanup_close_  _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Takes the value out of a cleanup-managed variable so its cleanup does nothing. */
#define move_ptr(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _moved = (p);                                                                \
        (p) = NULL;                                                                                \
        _moved;                                                                                    \
    })
#define move_fd(fd)                                                                                \
    ({                                                                                             \
        int _moved = (fd);                                                                         \
        (fd) = -EBADF;                                                                             \
        _moved;                                                                                    \
    })
