/* What the node agent keeps resident after a burst of work, given back
 * (memtidy.h). */
#include "node/memtidy.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"

#define TCACHE_TUNABLE "glibc.malloc.tcache_count"
/* Set in the environment of the second run: "=" and GLIBC_TUNABLES's value
 * as the agent was given it, or "" when it was unset. */
#define MEMTIDY_MARK "VFLEET_NODE_TUNABLES"
/* Left below the releasing function's frame: the frames of the system call
 * it makes live there while the pages go. */
#define STACK_MARGIN 8192

static bool stacks_on; /* a host's agent: memtidy_stack_release does its work */

char *
memtidy_tunables(const char *cur)
{
    if (!cur || !*cur)
        return xstrdup(TCACHE_TUNABLE "=0");
    /* "name=value:name=value"; a name is matched whole. */
    for (const char *p = cur; p; p = strchr(p, ':'), p = p ? p + 1 : NULL)
        if (strncmp(p, TCACHE_TUNABLE "=", strlen(TCACHE_TUNABLE "=")) == 0)
            return NULL;
    return xasprintf("%s:" TCACHE_TUNABLE "=0", cur);
}

void
memtidy_tcache_off(char **argv)
{
    const char *mark = getenv(MEMTIDY_MARK);

    if (mark) {
        /* The second run: the tcache is off; the environment as it was. */
        if (*mark == '=')
            setenv("GLIBC_TUNABLES", mark + 1, 1);
        else
            unsetenv("GLIBC_TUNABLES");
        unsetenv(MEMTIDY_MARK);
        return;
    }
    const char *cur = getenv("GLIBC_TUNABLES");
    _cleanup_free_ char *t = memtidy_tunables(cur);
    if (!t)
        return;
    _cleanup_free_ char *keep = cur ? xasprintf("=%s", cur) : xstrdup("");
    if (setenv(MEMTIDY_MARK, keep, 1) < 0 || setenv("GLIBC_TUNABLES", t, 1) < 0)
        return;
    execv("/proc/self/exe", argv);
    /* Not run again (no /proc): on with the tcache, the environment as given. */
    log_debug("memtidy: cannot run again without glibc's tcache: %s", strerror(errno));
    if (cur)
        setenv("GLIBC_TUNABLES", keep + 1, 1);
    else
        unsetenv("GLIBC_TUNABLES");
    unsetenv(MEMTIDY_MARK);
}

void
memtidy_set_host(bool on)
{
    stacks_on = on;
}

bool
memtidy_host(void)
{
    return stacks_on;
}

/* The lowest address of the calling thread's stack above its guard, 0 on
 * the main thread or when unknown; looked up once per thread. */
static uintptr_t
stack_low(void)
{
    static __thread uintptr_t low;  /* the answer, once known */
    static __thread bool looked_up; /* low is the answer */
    pthread_attr_t attr;
    void *addr;
    size_t size, guard = 0;

    if (looked_up)
        return low;
    looked_up = true;
    if (gettid() == getpid() || pthread_getattr_np(pthread_self(), &attr) != 0)
        return 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 &&
        pthread_attr_getguardsize(&attr, &guard) == 0)
        low = (uintptr_t)addr + guard; /* a guard inside the range is kept out of it */
    pthread_attr_destroy(&attr);
    return low;
}

void
memtidy_stack_release(void)
{
    if (!stacks_on)
        return;
    uintptr_t low = stack_low();
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);

    low = (low + page - 1) & ~(page - 1);
    uintptr_t high = (here - STACK_MARGIN) & ~(page - 1);
    if (!low || high <= low || here < STACK_MARGIN)
        return;
    (void)madvise((void *)low, high - low, MADV_DONTNEED);
}
