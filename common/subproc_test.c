/* Tests for common/subproc: the child's standard streams are the fds given
 * (or /dev/null), its environment is the clean one, and the caller's blocked
 * and ignored signals do not reach it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/subproc.h"

/* Everything readable from fd until EOF, into buf (NUL-terminated). */
static void
read_all(int fd, char *buf, size_t n)
{
    size_t kept = 0;
    ssize_t k;

    while (kept < n - 1 && (k = read(fd, buf + kept, n - 1 - kept)) > 0)
        kept += (size_t)k;
    buf[kept] = '\0';
}

/* Runs argv with stdin in (-1: /dev/null); returns what it wrote to stdout
 * and stderr, and its exit status. */
static int
run(const char *const argv[], int in, char *out, char *err, size_t n)
{
    int o[2], e[2], status = -1;
    pid_t pid;

    assert_int_equal(pipe2(o, O_CLOEXEC), 0);
    assert_int_equal(pipe2(e, O_CLOEXEC), 0);
    assert_int_equal(subproc_start(argv[0], argv, in, o[1], e[1], &pid), 0);
    close(o[1]);
    close(e[1]);
    read_all(o[0], out, n);
    read_all(e[0], err, n);
    close(o[0]);
    close(e[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* run for a script under sh -c. */
static int
run_sh(const char *script, int in, char *out, char *err, size_t n)
{
    const char *argv[] = {"sh", "-c", script, NULL};

    return run(argv, in, out, err, n);
}

/* stdin from a pipe and from /dev/null; stdout and stderr apart. */
static void
test_streams(void **state)
{
    char out[256], err[256];
    int in[2];

    (void)state;
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(write(in[1], "hello\n", 6), 6);
    close(in[1]);
    assert_int_equal(
        run_sh("read x; echo \"out $x\"; echo \"err $x\" >&2", in[0], out, err, sizeof(out)), 0);
    close(in[0]);
    assert_string_equal(out, "out hello\n");
    assert_string_equal(err, "err hello\n");
    assert_int_equal(run_sh("cat; echo end", -1, out, err, sizeof(out)), 0);
    assert_string_equal(out, "end\n");
    assert_string_equal(err, "");
}

/* Only PATH and LC_ALL, whatever the caller has. */
static void
test_clean_env(void **state)
{
    char out[512], err[256];

    (void)state;
    assert_int_equal(setenv("VF_SUBPROC_LEAK", "1", 1), 0);
    assert_int_equal(
        run_sh("env | grep -v '^PWD=\\|^SHLVL=\\|^_=' | sort", -1, out, err, sizeof(out)), 0);
    assert_string_equal(out, "LC_ALL=C\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n");
}

/* A signal the caller blocks or ignores is neither for the child. */
static void
test_signals(void **state)
{
    char out[256], err[256];
    sigset_t block, old;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int;

    (void)state;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
    assert_int_equal(sigaction(SIGINT, &ign, &old_int), 0);
    /* grep itself reads its own status: a shell would set its own mask. */
    const char *argv[] = {"grep", "^Sig\\(Blk\\|Ign\\)", "/proc/self/status", NULL};
    assert_int_equal(run(argv, -1, out, err, sizeof(out)), 0);
    assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
    assert_int_equal(sigaction(SIGINT, &old_int, NULL), 0);
    unsigned long long blocked, ignored;
    assert_int_equal(sscanf(out, "SigBlk: %llx SigIgn: %llx", &blocked, &ignored), 2);
    /* The two the test set: glibc's sigfillset leaves out its two internal
     * real-time signals (32 and 33), which the child may see ignored. */
    assert_int_equal(blocked & (1ull << (SIGTERM - 1)), 0);
    assert_int_equal(ignored & (1ull << (SIGINT - 1)), 0);
}

/* A program that is not there: -ENOENT, no child. */
static void
test_missing(void **state)
{
    const char *argv[] = {"vf-no-such-program", NULL};
    pid_t pid = 0;

    (void)state;
    assert_int_equal(subproc_start("/nonexistent/vf-no-such-program", argv, -1, -1, 2, &pid),
                     -ENOENT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_clean_env),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
