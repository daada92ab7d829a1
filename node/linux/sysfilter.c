/* The guest syscall filter; see sysfilter.h. */
#include "node/linux/sysfilter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mem.h"

/* Syscall numbers probed per architecture: above every table libseccomp 2.5
 * has (x86_64 and i386 end below 460). */
#define SYSFILTER_MAX_NR 1024
/* Runs of unknown numbers below the highest known one (x86_64 has one,
 * 335..423; i386 five), and the room the prefix may take. */
#define SYSFILTER_MAX_RUNS   24
#define SYSFILTER_PREFIX_MAX 192

/* Always EPERM: what reaches host-wide kernel state no guest may touch. */
static const char *const denied[] = {
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "open_by_handle_at",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "acct",
    "swapon",
    "swapoff",
    "lookup_dcookie",
    "nfsservctl",
    "uselib",
    "ustat",
    "_sysctl",
    "sysfs",
    "iopl",
    "ioperm",
    "vm86",
    "vm86old",
};

/* EPERM unless SYSFILTER_NESTING: making or joining namespaces. */
static const char *const namespace_calls[] = {"unshare", "setns"};

/* The CLONE_NEW* flags clone(2) must not carry without nesting. */
#define CLONE_NS_FLAGS                                                                             \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET)

static bool
in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* Adds the rule for one syscall name on top of the default (allow).
 * Returns 0 or -errno. */
static int
add_rule(scmp_filter_ctx ctx, const char *name, unsigned flags)
{
    int nr = seccomp_syscall_resolve_name(name);
    int r = 0;

    if (nr == __NR_SCMP_ERROR)
        return 0;
    if (in_list(name, denied, ARRAY_SIZE(denied))) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    } else if (flags & SYSFILTER_NESTING) {
        return 0;
    } else if (in_list(name, namespace_calls, ARRAY_SIZE(namespace_calls))) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    } else if (strcmp(name, "clone3") == 0) {
        /* Its flags live in memory the filter cannot read: glibc falls back
         * to clone on ENOSYS, whose flags it can. */
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    } else if (strcmp(name, "clone") == 0) {
        /* EPERM with any namespace flag: one rule per flag, as a masked
         * compare matches one exact pattern. */
        static const uint64_t each[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                        CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET};
        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(each); i++)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, each[i], each[i]));
    }
    return r;
}

static void
release_ctx(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}

/* Reads the exported program back from its memfd, after room for prefix
 * instructions. */
static int
read_program(int fd, size_t prefix, struct sysfilter *out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    size_t size = (size_t)st.st_size;
    size_t n = size / sizeof(struct sock_filter);
    if (size == 0 || size % sizeof(struct sock_filter) != 0 || n + prefix > BPF_MAXINSNS)
        return -E2BIG;
    out->insns = xcalloc(n + prefix, sizeof(struct sock_filter));
    ssize_t got = pread(fd, out->insns + prefix, size, 0);
    if (got != (ssize_t)size) {
        sysfilter_clear(out);
        return got < 0 ? -errno : -EIO;
    }
    out->len = (uint16_t)(n + prefix);
    return 0;
}

/* The syscall numbers libseccomp does not name on one architecture: the
 * runs below its highest known number, and everything above it. */
struct unknown {
    uint32_t audit_arch;                  /* AUDIT_ARCH_* as seccomp_data.arch says */
    uint32_t max;                         /* highest number libseccomp knows */
    uint32_t n_runs;                      /* entries used in runs */
    uint32_t runs[SYSFILTER_MAX_RUNS][2]; /* [first, last] numbers of each unknown run */
};

static int
find_unknown(uint32_t arch, struct unknown *u)
{
    bool in_run = false;
    int max = -1;

    *u = (struct unknown){.audit_arch = arch};
    for (int nr = 0; nr < SYSFILTER_MAX_NR; nr++) {
        _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(arch, nr);
        if (name)
            max = nr;
    }
    if (max < 0)
        return -ENOSYS;
    u->max = (uint32_t)max;
    for (int nr = 0; nr <= max; nr++) {
        _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(arch, nr);
        if (!name && !in_run) {
            if (u->n_runs == SYSFILTER_MAX_RUNS)
                return -E2BIG;
            u->runs[u->n_runs][0] = (uint32_t)nr;
            in_run = true;
        }
        if (name && in_run) {
            u->runs[u->n_runs++][1] = (uint32_t)nr - 1;
            in_run = false;
        }
    }
    return 0;
}

static struct sock_filter
stmt(uint16_t code, uint32_t k)
{
    return (struct sock_filter){.code = code, .k = k};
}

static struct sock_filter
jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
    return (struct sock_filter){.code = code, .jt = jt, .jf = jf, .k = k};
}

/* The checks of one architecture: ENOSYS for an unknown number, then on to
 * what follows. Returns the instructions written at f. */
static size_t
unknown_checks(const struct unknown *u, bool x32_bit, struct sock_filter *f)
{
    const uint32_t enosys = SECCOMP_RET_ERRNO | ENOSYS;
    size_t n = 0;

    f[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    /* x32 numbers carry bit 30: leave them to libseccomp (it kills them). */
    if (x32_bit)
        f[n++] = jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, (uint8_t)(u->n_runs * 3 + 2), 0);
    for (uint32_t i = 0; i < u->n_runs; i++) {
        f[n++] = jump(BPF_JMP | BPF_JGE | BPF_K, u->runs[i][0], 0, 2);
        f[n++] = jump(BPF_JMP | BPF_JGT | BPF_K, u->runs[i][1], 1, 0);
        f[n++] = stmt(BPF_RET | BPF_K, enosys);
    }
    f[n++] = jump(BPF_JMP | BPF_JGT | BPF_K, u->max, 0, 1);
    f[n++] = stmt(BPF_RET | BPF_K, enosys);
    return n;
}

/* The prefix before libseccomp's program: per architecture, ENOSYS for the
 * numbers libseccomp does not know; everything else falls through to it.
 * Returns the prefix length (at most SYSFILTER_PREFIX_MAX). */
static size_t
build_prefix(const struct unknown *u, size_t n_arch, struct sock_filter *f)
{
    struct sock_filter body[2][SYSFILTER_PREFIX_MAX / 2];
    size_t len[2] = {0, 0}, n = 0;

    for (size_t a = 0; a < n_arch; a++)
        len[a] = unknown_checks(&u[a], u[a].audit_arch == AUDIT_ARCH_X86_64, body[a]);
    /* ld arch; per arch: jeq arch (else next arch), its checks, ja to the end. */
    f[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    for (size_t a = 0; a < n_arch; a++) {
        size_t rest = 0; /* instructions after this arch's block */
        for (size_t b = a + 1; b < n_arch; b++)
            rest += len[b] + 2;
        f[n++] = jump(BPF_JMP | BPF_JEQ | BPF_K, u[a].audit_arch, 0, (uint8_t)(len[a] + 1));
        memcpy(&f[n], body[a], len[a] * sizeof(*f));
        n += len[a];
        f[n++] = stmt(BPF_JMP | BPF_JA, (uint32_t)rest);
    }
    return n;
}

int
sysfilter_build(unsigned flags, struct sysfilter *out)
{
    _cleanup_(release_ctx) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    struct unknown u[2];
    size_t n_arch = 0;
    int r;

    *out = (struct sysfilter){0};
    if (!ctx)
        return -ENOMEM;
    uint32_t arches[2] = {seccomp_arch_native(), 0};
    /* 32-bit programs on a 64-bit host get the same policy, not a kill. */
    if (arches[0] == SCMP_ARCH_X86_64) {
        arches[1] = SCMP_ARCH_X86;
        r = seccomp_arch_add(ctx, SCMP_ARCH_X86);
        if (r < 0 && r != -EEXIST)
            return r;
    }
    /* no_new_privs is the caller's choice (exec'd commands set it, init not). */
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
        return r;
    /* The rules as a binary tree of the syscall numbers, not a list: the
     * same policy, a few more instructions, a third as many run for a call.
     * The kernel runs the program for every number of both architectures
     * when it loads it (to cache the calls it always allows), at each guest
     * start. A libseccomp without the option keeps the list. */
    r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (r < 0 && r != -EINVAL && r != -EOPNOTSUPP)
        return r;
    for (size_t a = 0; a < ARRAY_SIZE(arches) && arches[a]; a++) {
        if ((r = find_unknown(arches[a], &u[n_arch])) < 0)
            return r;
        n_arch++;
        for (int nr = 0; nr <= (int)u[a].max; nr++) {
            _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(arches[a], nr);
            /* A name both architectures share was added already. */
            if (name && (r = add_rule(ctx, name, flags)) < 0 && r != -EEXIST)
                return r;
        }
    }
    _cleanup_close_ int fd = memfd_create("vfleet-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if ((r = seccomp_export_bpf(ctx, fd)) < 0)
        return r;
    struct sock_filter prefix[SYSFILTER_PREFIX_MAX];
    size_t n_prefix = build_prefix(u, n_arch, prefix);
    r = read_program(fd, n_prefix, out);
    if (r < 0)
        return r;
    memcpy(out->insns, prefix, n_prefix * sizeof(*prefix));
    return 0;
}

void
sysfilter_clear(struct sysfilter *f)
{
    free(f->insns);
    *f = (struct sysfilter){0};
}

const struct sysfilter *
sysfilter_get(unsigned flags)
{
    static struct sysfilter cache[SYSFILTER_VARIANTS];

    if (flags >= SYSFILTER_VARIANTS) {
        errno = EINVAL;
        return NULL;
    }
    if (!cache[flags].len) {
        int r = sysfilter_build(flags, &cache[flags]);
        if (r < 0) {
            errno = -r;
            return NULL;
        }
    }
    return &cache[flags];
}

int
sysfilter_load(const struct sysfilter *f)
{
    struct sock_fprog prog = {.len = f->len, .filter = f->insns};

    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}
