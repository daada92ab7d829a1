/* The exec helper: a child of the spawner that joins a running guest (its
 * cgroups, then every namespace of its init), forks the command inside the
 * guest's pid namespace, enforces the timeout, and reports the command's wait
 * status on a pipe. Runs only in a fork of the single-threaded spawner. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/mem.h"
#include "node/linux/spawn.h"

/* Namespaces joined, in this order (util-linux nsenter's order). The user
 * namespace comes first: the guest's other namespaces belong to it, and only
 * inside it may the helper join them; a privileged guest shares the host's,
 * which is then skipped. */
enum nsexec_ns {
    NSEXEC_NS_USER,
    NSEXEC_NS_CGROUP,
    NSEXEC_NS_IPC,
    NSEXEC_NS_UTS,
    NSEXEC_NS_NET,
    NSEXEC_NS_PID,
    NSEXEC_NS_MNT,
    NSEXEC_NS_COUNT,
};

/* The names of the files in /proc/PID/ns/, indexed by enum nsexec_ns. */
extern const char *const nsexec_ns_names[NSEXEC_NS_COUNT];

/* What the helper writes to the status pipe once, before it exits. */
struct nsexec_status {
    int32_t err;                /* 0, or a positive errno when joining the guest failed */
    int32_t wstatus;            /* the command's wait status (when err is 0) */
    int32_t timed_out;          /* 1 when the command was killed at the timeout */
    char what[SPAWN_ERROR_MAX]; /* the step that failed when err is not 0 */
};

/* Everything the helper needs; descriptors are O_CLOEXEC and owned by it. */
struct nsexec_params {
    const struct spawn_config *cfg; /* cgroup_procs, cgroup2, caps, nofile and filter */
    int ns[NSEXEC_NS_COUNT];        /* /proc/PID/ns/... of the guest's init */
    char *const *argv;              /* NULL-terminated command */
    uint32_t timeout_ms;            /* the command's process group is killed after this */
    int null;                       /* /dev/null, the command's stdin */
    int out;                        /* write end of the stdout pipe */
    int err;                        /* write end of the stderr pipe */
    int status;                     /* write end of the status pipe (a stream: its socket) */
    char *const *env;               /* the command's environment, NULL = the clean default */
    bool in_cgroup2;                /* cloned into cfg->cgroup2 already (CLONE_INTO_CGROUP) */
};

/* Never returns. */
_noreturn_ void nsexec_run(const struct nsexec_params *p);

/* The parts of nsexec_run, for the other helpers of its family
 * (nsexec_stream.c): joins p's cgroups and namespaces (their descriptors
 * are closed), or writes the failure to p->status and exits. */
void nsexec_join(const struct nsexec_params *p);
/* In a child of a joined helper: its own session, stdio from p->null,
 * p->out, p->err (left as they are when p->null is -1), "/" as the working
 * directory, no new privileges, RLIMIT_NOFILE, the bounding set, no other
 * descriptor, p->env (or the clean default), exec p->argv. Never returns
 * (126/127 when the command cannot run). */
_noreturn_ void nsexec_command(const struct nsexec_params *p);
