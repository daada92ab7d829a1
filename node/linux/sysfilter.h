/* The syscall filter every guest process runs under (seccomp, built with
 * libseccomp), modelled on Docker's default profile:
 *
 *  - allowed: every syscall libseccomp 2.5 knows on x86_64 and i386, except
 *    those below (a denylist over the known numbers, with the unknown ones
 *    refused up front: the same policy as an allowlist of every known
 *    syscall, in an eighth of the instructions (149), which the kernel
 *    verifies at every guest start and runs at every syscall; libseccomp
 *    lays the rules out as a binary tree of the numbers, so a call runs at
 *    most 43 of them, where a list ran 71: the kernel runs the program for
 *    every number of both architectures at each load, to cache the calls it
 *    always allows);
 *  - EPERM: the kernel keyring (keyctl, add_key, request_key), bpf,
 *    perf_event_open, kexec_load, kexec_file_load, the module calls,
 *    open_by_handle_at, userfaultfd, io_uring_*, and the host-wide relics
 *    Docker also refuses (acct, swapon/off, lookup_dcookie, nfsservctl,
 *    uselib, ustat, _sysctl, sysfs, iopl, ioperm, vm86*);
 *  - namespaces, unless relaxed (SYSFILTER_NESTING): unshare and setns are
 *    EPERM, clone with a CLONE_NEW* flag is EPERM, clone3 is ENOSYS (glibc
 *    falls back to clone, whose flags the filter can see);
 *  - ENOSYS for every syscall number the filter does not know (above
 *    libseccomp's table, or a hole in it), so a newer glibc that tries a
 *    syscall added after libseccomp's table falls back to the old one
 *    instead of failing with EPERM. A few hand-built instructions before
 *    libseccomp's program do that (libseccomp cannot express a range).
 * Other architectures (x32) are killed, as libseccomp does by default.
 *
 * The filter is compiled once per variant and per process (sysfilter_get)
 * and loaded with one seccomp(2) call, so a guest start pays no compilation.
 *
 * Threads: sysfilter_get is not locked; the spawner and vfleet-node enter are
 * single-threaded. sysfilter_load allocates nothing and may run in a child
 * between clone and exec. */
#pragma once

#include <linux/filter.h>
#include <stdint.h>

/* Relaxations of the default filter. */
enum sysfilter_flags {
    SYSFILTER_NESTING = 1u << 0, /* namespaces allowed: unshare, setns, clone3, CLONE_NEW* */
};
#define SYSFILTER_VARIANTS 2 /* distinct values of the flags */

/* A compiled filter, ready for seccomp(SECCOMP_SET_MODE_FILTER). */
struct sysfilter {
    struct sock_filter *insns; /* the BPF program (malloc'd) */
    uint16_t len;              /* instructions in insns */
};

/* Compiles the filter for flags. Returns 0 with *out filled (free it with
 * sysfilter_clear) or -errno from libseccomp. */
int sysfilter_build(unsigned flags, struct sysfilter *out);
void sysfilter_clear(struct sysfilter *f);

/* The compiled filter for flags, built on first use and kept for the
 * process's life. Returns NULL (and sets errno) when it cannot be built. */
const struct sysfilter *sysfilter_get(unsigned flags);

/* Installs f on the calling thread. Without no_new_privs the caller needs
 * CAP_SYS_ADMIN in its user namespace (a guest's init before exec has it).
 * Returns 0 or -errno. */
int sysfilter_load(const struct sysfilter *f);
