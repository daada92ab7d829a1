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
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>

#include "common/mem.h"
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

/* Runs the classic BPF program f over d as the kernel does, with the
 * instructions libseccomp and sysfilter emit; *steps gets the count of
 * instructions run. Returns the SECCOMP_RET_* value; fails the test on an
 * instruction it does not know or a jump out of the program. */
static uint32_t
run_filter(const struct sysfilter *f, const struct seccomp_data *d, unsigned *steps)
{
    uint32_t a = 0;
    *steps = 0;
    for (uint32_t pc = 0; pc < f->len; pc++) {
        const struct sock_filter *i = &f->insns[pc];
        bool taken = false;
        ++*steps;
        switch (i->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            assert_true(i->k % 4 == 0 && i->k + 4 <= sizeof(*d));
            memcpy(&a, (const char *)d + i->k, 4);
            continue;
        case BPF_ALU | BPF_AND | BPF_K:
            a &= i->k;
            continue;
        case BPF_RET | BPF_K:
            return i->k;
        case BPF_JMP | BPF_JA:
            pc += i->k;
            continue;
        case BPF_JMP | BPF_JEQ | BPF_K:
            taken = a == i->k;
            break;
        case BPF_JMP | BPF_JGT | BPF_K:
            taken = a > i->k;
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            taken = a >= i->k;
            break;
        case BPF_JMP | BPF_JSET | BPF_K:
            taken = (a & i->k) != 0;
            break;
        default:
            fail_msg("instruction %u: code %#x", pc, i->code);
        }
        pc += taken ? i->jt : i->jf;
    }
    fail_msg("ran off the end of the program");
    return 0;
}

/* Every number below 1,024 on both architectures, run through the compiled
 * filter: unknown ones ENOSYS, the denied ones EPERM, the rest allowed (the
 * probes above only make x86_64 calls); and no call runs more than
 * MAX_STEPS instructions. The kernel runs the program for every number of
 * both architectures when it loads it (its cache of always-allowed calls),
 * at every guest start: with the rules as a list, up to 71 for one call and
 * 52,896 for these 2,048; as a tree, 43 and 32,803. */
#define MAX_STEPS 48
static void
test_every_number(void **state)
{
    static const struct {
        uint32_t audit; /* seccomp_data.arch */
        uint32_t token; /* libseccomp's name for it */
    } arches[] = {{AUDIT_ARCH_X86_64, SCMP_ARCH_X86_64}, {AUDIT_ARCH_I386, SCMP_ARCH_X86}};
    static const char *const denied[] = {
        "keyctl", "bpf", "perf_event_open", "init_module", "io_uring_setup", "unshare", "setns"};
    /* clone with no namespace flag (its arguments are all 0 here). */
    static const char *const allowed[] = {"read",  "write", "openat", "getpid",
                                          "mount", "clone", "fork",   "execve"};
    const struct sysfilter *f = sysfilter_get(0);
    assert_non_null(f);
    unsigned max_steps = 0, all_steps = 0;
    /* The architectures sysfilter adds on an x86_64 host. */
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        skip();
    for (size_t a = 0; a < ARRAY_SIZE(arches); a++) {
        for (int nr = 0; nr < 1024; nr++) {
            struct seccomp_data d = {.nr = nr, .arch = arches[a].audit};
            unsigned steps;
            uint32_t ret = run_filter(f, &d, &steps);
            max_steps = steps > max_steps ? steps : max_steps;
            all_steps += steps;
            char *name = seccomp_syscall_resolve_num_arch(arches[a].token, nr);
            /* Known and neither listed here: allowed or EPERM. */
            uint32_t want = ret == (SECCOMP_RET_ERRNO | EPERM) ? ret : SECCOMP_RET_ALLOW;
            if (!name || strcmp(name, "clone3") == 0)
                want = SECCOMP_RET_ERRNO | ENOSYS;
            for (size_t i = 0; name && i < ARRAY_SIZE(denied); i++)
                if (strcmp(name, denied[i]) == 0)
                    want = SECCOMP_RET_ERRNO | EPERM;
            for (size_t i = 0; name && i < ARRAY_SIZE(allowed); i++)
                if (strcmp(name, allowed[i]) == 0)
                    want = SECCOMP_RET_ALLOW;
            if (ret != want)
                fail_msg("arch %#x nr %d (%s): %#x, want %#x", arches[a].audit, nr,
                         name ? name : "unknown", ret, want);
            free(name);
        }
    }
    fprintf(stderr, "sysfilter_test: %u instructions, at most %u run for one call, %u for all\n",
            f->len, max_steps, all_steps);
    assert_true(max_steps <= MAX_STEPS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_without_nnp_needs_cap),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_every_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
