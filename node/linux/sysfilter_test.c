/* Tests for node/linux/sysfilter: the compiled filter loaded for real in a
 * forked child, each rule proven by the errno a raw syscall returns. */
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/linux/sysfilter.h"

/* What one syscall returned in the child: the errno, 0 on success. */
enum probe {
    P_KEYCTL,
    P_ADD_KEY,
    P_BPF,
    P_PERF,
    P_IO_URING,
    P_USERFAULTFD,
    P_OPEN_BY_HANDLE,
    P_INIT_MODULE,
    P_KEXEC,
    P_UNKNOWN_999,
    P_UNKNOWN_NEWER,
    P_UNSHARE_USER,
    P_SETNS,
    P_CLONE_NEWUSER,
    P_CLONE3,
    P_GETPID,
    P_FORK,
    P_COUNT
};

static int
err_of(long r)
{
    return r < 0 ? errno : 0;
}

/* Runs in the child after the filter is loaded; never returns. */
_Noreturn static void
probe_all(int fd)
{
    int res[P_COUNT];
    res[P_KEYCTL] = err_of(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4, 0));
    res[P_ADD_KEY] = err_of(syscall(SYS_add_key, "user", "vf", "x", 1, -4));
    res[P_BPF] = err_of(syscall(SYS_bpf, 0, NULL, 0));
    res[P_PERF] = err_of(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    res[P_IO_URING] = err_of(syscall(SYS_io_uring_setup, 1, NULL));
    res[P_USERFAULTFD] = err_of(syscall(SYS_userfaultfd, 0));
    res[P_OPEN_BY_HANDLE] = err_of(syscall(SYS_open_by_handle_at, -1, NULL, 0));
    res[P_INIT_MODULE] = err_of(syscall(SYS_init_module, NULL, 0, ""));
    res[P_KEXEC] = err_of(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    res[P_UNKNOWN_999] = err_of(syscall(999));
    res[P_UNKNOWN_NEWER] = err_of(syscall(463)); /* setxattrat: newer than libseccomp's table */
    res[P_SETNS] = err_of(syscall(SYS_setns, -1, 0));
    /* A raw clone with CLONE_NEWUSER; a child, if any, exits at once. */
    long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (c == 0)
        _exit(0);
    res[P_CLONE_NEWUSER] = err_of(c);
    if (c > 0)
        waitpid((pid_t)c, NULL, 0);
    struct clone_args ca = {.exit_signal = SIGCHLD};
    c = syscall(SYS_clone3, &ca, sizeof(ca));
    if (c == 0)
        _exit(0);
    res[P_CLONE3] = err_of(c);
    if (c > 0)
        waitpid((pid_t)c, NULL, 0);
    res[P_GETPID] = err_of(syscall(SYS_getpid));
    pid_t f = fork();
    if (f == 0)
        _exit(0);
    res[P_FORK] = f < 0 ? errno : 0;
    if (f > 0)
        waitpid(f, NULL, 0);
    /* Last: once in a new user namespace our ids are unmapped, and an
     * unmapped caller may not make another one (the clone above). */
    res[P_UNSHARE_USER] = err_of(syscall(SYS_unshare, CLONE_NEWUSER));
    _exit(write(fd, res, sizeof(res)) == sizeof(res) ? 0 : 1);
}

static void
run_probes(unsigned flags, bool nnp, int *res)
{
    const struct sysfilter *f = sysfilter_get(flags);
    assert_non_null(f);
    /* Small: the kernel checks and converts every instruction at each guest
     * start (an allowlist of every syscall was 1,070 and cost 1.5 ms). */
    assert_true(f->len > 0 && f->len <= 256);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            _exit(2);
        if (sysfilter_load(f) < 0)
            _exit(3);
        probe_all(pipefd[1]);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], res, sizeof(int) * P_COUNT), (ssize_t)sizeof(int) * P_COUNT);
    close(pipefd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
test_default(void **state)
{
    int res[P_COUNT];
    run_probes(0, true, res);
    assert_int_equal(res[P_KEYCTL], EPERM);
    assert_int_equal(res[P_ADD_KEY], EPERM);
    assert_int_equal(res[P_BPF], EPERM);
    assert_int_equal(res[P_PERF], EPERM);
    assert_int_equal(res[P_IO_URING], EPERM);
    assert_int_equal(res[P_USERFAULTFD], EPERM);
    assert_int_equal(res[P_OPEN_BY_HANDLE], EPERM);
    assert_int_equal(res[P_INIT_MODULE], EPERM);
    assert_int_equal(res[P_KEXEC], EPERM);
    assert_int_equal(res[P_UNKNOWN_999], ENOSYS);
    assert_int_equal(res[P_UNKNOWN_NEWER], ENOSYS);
    assert_int_equal(res[P_UNSHARE_USER], EPERM);
    assert_int_equal(res[P_SETNS], EPERM);
    assert_int_equal(res[P_CLONE_NEWUSER], EPERM);
    assert_int_equal(res[P_CLONE3], ENOSYS);
    assert_int_equal(res[P_GETPID], 0);
    assert_int_equal(res[P_FORK], 0);
}

static void
test_nesting(void **state)
{
    int res[P_COUNT];
    run_probes(SYSFILTER_NESTING, true, res);
    /* The keyring and friends stay closed; namespaces open. */
    assert_int_equal(res[P_KEYCTL], EPERM);
    assert_int_equal(res[P_BPF], EPERM);
    assert_int_equal(res[P_IO_URING], EPERM);
    assert_int_equal(res[P_UNKNOWN_999], ENOSYS);
    assert_int_equal(res[P_UNSHARE_USER], 0);
    assert_int_equal(res[P_SETNS], EBADF);
    assert_int_equal(res[P_CLONE_NEWUSER], 0);
    assert_int_equal(res[P_CLONE3], 0);
}

static void
test_without_nnp_needs_cap(void **state)
{
    /* Root loads it without no_new_privs (a guest's init does, so setuid
     * programs inside keep working). */
    if (geteuid() != 0)
        skip();
    int res[P_COUNT];
    run_probes(0, false, res);
    assert_int_equal(res[P_KEYCTL], EPERM);
    assert_int_equal(res[P_GETPID], 0);
}

static void
test_bad_flags(void **state)
{
    assert_null(sysfilter_get(SYSFILTER_VARIANTS));
    assert_int_equal(errno, EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_without_nnp_needs_cap),
        cmocka_unit_test(test_bad_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
