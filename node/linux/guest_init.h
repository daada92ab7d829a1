/* What a new guest's init process does to itself between clone3 and exec:
 * waits for the spawner to write its uid/gid maps, joins its v1 cgroups
 * (through the tasks files the spawner opened), becomes root of its user
 * namespace when it has one, unshares its cgroup namespace, builds the
 * guest's root (private propagation, rootfs bound onto itself, new proc and
 * sysfs instances and the host files it needs taken before pivot_root, then
 * pivot_root, which detaches what the new mount namespace was copied from:
 * the spawner's small seed (seedns.h), or the host's table when there is no
 * seed, /proc, read-only /sys, a small /dev with 0666 nodes, the LXCFS files
 * over /proc's, masked /proc paths), brings up lo, sets the hostname and
 * domainname, drops the capability bounding set, loads the syscall filter
 * and execs the guest's init.
 *
 * Runs only in the child of the spawner's clone3, a single-threaded process. */
#pragma once

#include <stdint.h>

#include "common/mem.h"
#include "node/linux/spawn.h"

/* What the child writes to its error pipe when a step fails; on success the
 * pipe (O_CLOEXEC) closes at exec and the parent reads end-of-file. */
struct guest_init_error {
    int32_t err;                /* a positive errno */
    char what[SPAWN_ERROR_MAX]; /* the step that failed, NUL-terminated */
};

/* The descriptors the child needs (all O_CLOEXEC), and where it finds the
 * host's device nodes. */
struct guest_init_fds {
    int sync;         /* read end: one byte once the parent has written the maps, EOF = abort */
    int err;          /* write end: a struct guest_init_error on failure */
    int log;          /* init's stdout and stderr (the console log, opened for append) */
    int null;         /* /dev/null, init's stdin */
    const char *dev;  /* the host's /dev as the child sees it: "/dev" or the seed's (seedns.h) */
    const int *tasks; /* the tasks files of cfg->cgroup_procs' cgroups, in order (proc_join_self) */
    uint32_t n_tasks; /* entries in tasks */
    int root;         /* a socket: one byte once the root is in the conduit (root_later), or -1 */
};

/* Resets every signal to its default action and unblocks all: a child must
 * not inherit the spawner's SA_NOCLDWAIT or any mask. After
 * guest_init_note_signals, only the signals it found away from their
 * default are reset (the others are at it already): a few sigaction calls
 * in each guest's child and console reader, not 64. */
void guest_init_reset_signals(void);

/* Notes which signals the calling process has away from their default action
 * (a handler, SIG_IGN, or flags such as SA_NOCLDWAIT), for
 * guest_init_reset_signals in the children it forks from then on. The
 * spawner calls it once, after its own sigaction calls; a process that
 * changes a disposition afterwards must call it again. */
void guest_init_note_signals(void);

/* Drops every capability not in keep (bit = CAP_*) from the bounding set and
 * clears the inheritable and ambient sets, so that root's next exec gets
 * exactly keep. Needs CAP_SETPCAP. Returns 0 or -errno. */
int guest_init_drop_caps(uint64_t keep);

/* After joining a user namespace (or being cloned into one) whose maps are
 * written: setgroups(0), then gid and uid 0 inside, which is host id
 * uid_base; the capabilities in the namespace stay. Returns 0 or -errno. */
int guest_init_become_root(void);

/* Never returns: execs cfg->init or _exits(1) after reporting on fds->err. */
_noreturn_ void guest_init_run(const struct spawn_config *cfg, const struct guest_init_fds *fds);
