/* Tests for node/memtidy: the tunables string, a run of the program again
 * with glibc's tcache really off (seen through mallinfo2) and the
 * environment put back, and a thread's deepened stack given back (seen
 * through mincore). */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/sanitizer.h"
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

/* The dynamic loader named in this program's PT_INTERP, into buf. */
static int
interp_of(struct dl_phdr_info *info, size_t size, void *buf)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_INTERP) {
            snprintf(buf, 4096, "%s", (const char *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr));
            return 1;
        }
    return 1; /* the main program comes first: only it */
}

/* Runs program (this one when NULL; through loader when not NULL) as the
 * child in mode with GLIBC_TUNABLES set to tunables (NULL: unset); its
 * exit status. */
static int
run_program(const char *loader, const char *program, const char *mode, const char *tunables)
{
    if (!program)
        program = self;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (tunables)
            setenv("GLIBC_TUNABLES", tunables, 1);
        else
            unsetenv("GLIBC_TUNABLES");
        setenv("MEMTIDY_TEST_WANT", tunables ? tunables : "", 1);
        unsetenv("VFLEET_NODE_TUNABLES");
        if (loader)
            execl(loader, loader, program, mode, (char *)NULL);
        else
            execl(program, program, mode, (char *)NULL);
        _exit(126);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int
run_child(const char *mode, const char *tunables)
{
    return run_program(NULL, NULL, mode, tunables);
}

static void
test_tcache_off(void **state)
{
    (void)state;
    /* Under AddressSanitizer's allocator there is no tcache to tell apart. */
#ifdef VF_ASAN
    skip();
#endif
    /* The check tells the two apart: the default has the cache on. */
    assert_int_equal(run_child("--child-plain", NULL), 1);
    assert_int_equal(run_child("--child-tidy", NULL), 0);
    /* Another tunable given is kept, for the agent and for its children. */
    assert_int_equal(run_child("--child-tidy", "glibc.malloc.arena_max=1"), 0);
    /* A count given is the administrator's: not run again, the cache on. */
    assert_int_equal(run_child("--child-tidy", "glibc.malloc.tcache_count=7"), 1);
}

/* Started through the dynamic loader, /proc/self/exe is the loader: not
 * run again (the loader took the mode for the program and exited 127),
 * on with the cache, the environment as given. */
static void
test_through_loader(void **state)
{
    char loader[4096] = "";

    (void)state;
    dl_iterate_phdr(interp_of, loader);
    if (!loader[0])
        skip();
    assert_int_equal(run_program(loader, NULL, "--child-tidy-env", NULL), 0);
    assert_int_equal(run_program(loader, NULL, "--child-tidy-env", "glibc.malloc.arena_max=1"), 0);
}

/* The program's file deleted under it (its package upgraded while it
 * runs): /proc/self/exe still runs it, once. */
static void
test_deleted_program(void **state)
{
    char dir[] = "/tmp/vf-memtidy-XXXXXX", copy[64];
    char cmd[8400];

    (void)state;
#ifdef VF_ASAN
    skip();
#endif
    assert_non_null(mkdtemp(dir));
    snprintf(copy, sizeof(copy), "%s/prog", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", self, copy);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_program(NULL, copy, "--child-tidy-deleted", NULL), 0);
    assert_int_equal(access(copy, F_OK), -1);
    assert_int_equal(rmdir(dir), 0);
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

/* No /proc (an empty one mounted over it in a mount namespace of the
 * child's): not run again, on with the cache, the environment as given
 * and no marker left for the children. */
static void
test_no_proc(void **state)
{
    (void)state;
    /* The sanitizers' run time reads /proc (LeakSanitizer fails the child). */
#ifdef VF_ASAN
    skip();
#endif
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("none", "/proc", "tmpfs", 0, NULL) < 0)
            _exit(77);
        setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=1", 1);
        setenv("MEMTIDY_TEST_WANT", "glibc.malloc.arena_max=1", 1);
        unsetenv("VFLEET_NODE_TUNABLES");
        execl(self, self, "--child-tidy-env", (char *)NULL);
        _exit(126);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        skip(); /* not allowed to make a mount namespace */
    assert_int_equal(WEXITSTATUS(st), 0);
}

int
main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--child-tidy") == 0)
        return child_main(argv, true);
    if (argc == 2 && strcmp(argv[1], "--child-plain") == 0)
        return child_main(argv, false);
    if (argc == 2 && strcmp(argv[1], "--child-tidy-env") == 0) {
        /* only the environment: under the loader the cache stays on */
        memtidy_tcache_off(argv);
        const char *want = getenv("MEMTIDY_TEST_WANT"), *have = getenv("GLIBC_TUNABLES");
        return getenv("VFLEET_NODE_TUNABLES") ||
                       (want && *want ? !have || strcmp(have, want) != 0 : have != NULL)
                   ? 2
                   : 0;
    }
    if (argc == 2 && strcmp(argv[1], "--child-tidy-deleted") == 0) {
        /* the first run deletes its own file, then runs again */
        if (!getenv("VFLEET_NODE_TUNABLES") &&
            readlink("/proc/self/exe", self, sizeof(self) - 1) > 0 && unlink(self) < 0)
            return 3;
        return child_main(argv, true);
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return 77;
    self[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tunables),       cmocka_unit_test(test_tcache_off),
        cmocka_unit_test(test_through_loader), cmocka_unit_test(test_deleted_program),
        cmocka_unit_test(test_no_proc),        cmocka_unit_test(test_stack_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
