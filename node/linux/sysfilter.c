/* The guest syscall filter; see sysfilter.h. */
#include "node/linux/sysfilter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mem.h"

/* Syscall numbers probed per architecture: above every table libseccomp 2.5
 * has (x86_64 and i386 end below 460). */
#define SYSFILTER_MAX_NR 1024

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

/* Adds the rule for one syscall name. Returns 0 or -errno. */
static int
add_rule(scmp_filter_ctx ctx, const char *name, unsigned flags)
{
    int nr = seccomp_syscall_resolve_name(name);
    int r;

    if (nr == __NR_SCMP_ERROR)
        return 0;
    if (in_list(name, denied, ARRAY_SIZE(denied)))
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    else if (flags & SYSFILTER_NESTING)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    else if (in_list(name, namespace_calls, ARRAY_SIZE(namespace_calls)))
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
    else if (strcmp(name, "clone3") == 0)
        return 0; /* the default action: ENOSYS */
    else if (strcmp(name, "clone") == 0) {
        /* Allowed without namespace flags; EPERM with any of them (one
         * rule per flag: a masked compare matches one exact pattern). */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0));
        static const uint64_t each[] = {CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                        CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET};
        for (size_t i = 0; r == 0 && i < ARRAY_SIZE(each); i++)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, each[i], each[i]));
    } else
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    /* A name shared by both architectures was added already. */
    return r == -EEXIST ? 0 : r;
}

static void
release_ctx(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}

/* Reads the exported program back from its memfd. */
static int
read_program(int fd, struct sysfilter *out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    size_t size = (size_t)st.st_size;
    if (size == 0 || size % sizeof(struct sock_filter) != 0 ||
        size / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return -E2BIG;
    out->insns = xmalloc(size);
    ssize_t n = pread(fd, out->insns, size, 0);
    if (n != (ssize_t)size) {
        sysfilter_clear(out);
        return n < 0 ? -errno : -EIO;
    }
    out->len = (uint16_t)(size / sizeof(struct sock_filter));
    return 0;
}

int
sysfilter_build(unsigned flags, struct sysfilter *out)
{
    _cleanup_(release_ctx) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
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
    /* A binary tree of syscall numbers: a few comparisons per syscall. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    for (size_t a = 0; a < ARRAY_SIZE(arches) && arches[a]; a++) {
        for (int nr = 0; nr < SYSFILTER_MAX_NR; nr++) {
            _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(arches[a], nr);
            if (name && (r = add_rule(ctx, name, flags)) < 0)
                return r;
        }
    }
    _cleanup_close_ int fd = memfd_create("vfleet-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if ((r = seccomp_export_bpf(ctx, fd)) < 0)
        return r;
    return read_program(fd, out);
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
