/* Tests for node/memtidy: the tunables string, a run of the program again
 * with glibc's tcache really off (seen through mallinfo2) and the
 * environment put back, and a thread's deepened stack given back (seen
 * through mincore). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/memtidy.h"

static char self[4096]; /* this test program, to run as the child below */

static void
test_tunables(void **state)
{
    (void)state;
    char *t = memtidy_tunables(NULL);
    assert_string_equal(t, "glibc.malloc.tcache_count=0");
    free(t);
    t = memtidy_tunables("");
    assert_string_equal(t, "glibc.malloc.tcache_count=0");
    free(t);
    t = memtidy_tunables("glibc.malloc.arena_max=1");
    assert_string_equal(t, "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0");
    free(t);
    /* The administrator's count is kept, wherever it stands. */
    assert_null(memtidy_tunables("glibc.malloc.tcache_count=7"));
    assert_null(memtidy_tunables("glibc.malloc.arena_max=1:glibc.malloc.tcache_count=3"));
    /* A longer name is another tunable. */
    t = memtidy_tunables("glibc.malloc.tcache_count_x=1");
    assert_string_equal(t, "glibc.malloc.tcache_count_x=1:glibc.malloc.tcache_count=0");
    free(t);
}

/* The child's check: a freed small chunk leaves the arena's bytes in use
 * (it went to the thread's tcache) or not. 0 when the tcache is off, 1 when
 * on, 2 when the environment was not put back as the parent set it. */
static int
child_main(char **argv, bool tidy)
{
    if (tidy)
        memtidy_tcache_off(argv);
    const char *want = getenv("MEMTIDY_TEST_WANT");
    const char *have = getenv("GLIBC_TUNABLES");
    if (getenv("VFLEET_NODE_TUNABLES") ||
        (want && *want ? !have || strcmp(have, want) != 0 : have != NULL))
        return 2;
    void *volatile p = malloc(200);
    size_t in_use = mallinfo2().uordblks;
    free(p);
    return mallinfo2().uordblks < in_use ? 0 : 1;
}

/* Runs this program as the child (tidy or not) with GLIBC_TUNABLES set to
 * tunables (NULL: unset); its exit status. */
static int
run_child(const char *mode, const char *tunables)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (tunables)
            setenv("GLIBC_TUNABLES", tunables, 1);
        else
            unsetenv("GLIBC_TUNABLES");
        setenv("MEMTIDY_TEST_WANT", tunables ? tunables : "", 1);
        unsetenv("VFLEET_NODE_TUNABLES");
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void
test_tcache_off(void **state)
{
    (void)state;
    /* Under AddressSanitizer's allocator there is no tcache to tell apart
     * (gcc says so with __SANITIZE_ADDRESS__, clang with __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
    skip();
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif
    /* The check tells the two apart: the default has the cache on. */
    assert_int_equal(run_child("--child-plain", NULL), 1);
    assert_int_equal(run_child("--child-tidy", NULL), 0);
    /* Another tunable given is kept, for the agent and for its children. */
    assert_int_equal(run_child("--child-tidy", "glibc.malloc.arena_max=1"), 0);
    /* A count given is the administrator's: not run again, the cache on. */
    assert_int_equal(run_child("--child-tidy", "glibc.malloc.tcache_count=7"), 1);
}

/* Resident pages of the thread's stack in [low, high). */
static size_t
resident(uintptr_t low, uintptr_t high)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (high - low) / page, count = 0;
    unsigned char *vec = calloc(n, 1);

    assert_non_null(vec);
    assert_int_equal(mincore((void *)low, high - low, vec), 0);
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    free(vec);
    return count;
}

/* Touches 128 KiB of stack below the caller. */
__attribute__((noinline)) static void
deepen(void)
{
    volatile char buf[128 * 1024];
    for (size_t i = 0; i < sizeof(buf); i += 512)
        buf[i] = (char)i;
}

/* The resident pages of the stack below this frame after deepening it,
 * then after memtidy_stack_release. */
struct depth {
    size_t before; /* after deepen */
    size_t after;  /* after the release */
};

static void *
stack_thread(void *arg)
{
    struct depth *d = arg;
    pthread_attr_t attr;
    void *addr;
    size_t size;

    assert_int_equal(pthread_getattr_np(pthread_self(), &attr), 0);
    assert_int_equal(pthread_attr_getstack(&attr, &addr, &size), 0);
    pthread_attr_destroy(&attr);
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t low = (uintptr_t)addr;
    uintptr_t high = ((uintptr_t)__builtin_frame_address(0) - 64 * 1024) & ~(page - 1);
    deepen();
    d->before = resident(low, high);
    memtidy_stack_release();
    d->after = resident(low, high);
    deepen(); /* the pages come back zeroed when used again */
    return NULL;
}

static struct depth
on_thread(void)
{
    pthread_t t;
    struct depth d = {0};
    pthread_attr_t attr;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    assert_int_equal(pthread_create(&t, &attr, stack_thread, &d), 0);
    pthread_attr_destroy(&attr);
    assert_int_equal(pthread_join(t, NULL), 0);
    return d;
}

static void
test_stack_release(void **state)
{
    (void)state;
    memtidy_set_host(false);
    struct depth off = on_thread();
    assert_true(off.before >= 8); /* 64 KiB and more below the frame were touched */
    assert_int_equal(off.after, off.before);
    memtidy_set_host(true);
    struct depth on = on_thread();
    assert_true(on.before >= 8);
    assert_int_equal(on.after, 0);
    /* On the main thread it does nothing (and returns). */
    memtidy_stack_release();
    memtidy_set_host(false);
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--child-tidy") == 0)
        return child_main(argv, true);
    if (argc == 2 && strcmp(argv[1], "--child-plain") == 0)
        return child_main(argv, false);
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 77;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tunables),
        cmocka_unit_test(test_tcache_off),
        cmocka_unit_test(test_stack_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
