/* The spawner: a single-threaded helper process that does every fork and
 * clone3 of the linux backend, so the agent (which has libzmq I/O threads and
 * a libuv worker pool) never clones itself (STYLE.md: never clone() in a
 * process that has threads).
 *
 * spawner_new() forks the spawner; it must be called before the process
 * starts any thread (it checks and refuses with -EBUSY). The fork then runs
 * the small vfleet-spawner program carried in this binary (spawnd.h), so the
 * clones and forks it makes per start copy its few mappings, not the
 * agent's. The agent then talks
 * to it over an AF_UNIX SOCK_SEQPACKET socketpair with fixed-size request and
 * response structs; file descriptors travel with SCM_RIGHTS.
 *
 * Reaping design. A guest's init is created with CLONE_PARENT, so its parent
 * is the process that called spawner_new() (the agent), not the spawner:
 *  - the spawner can die or be restarted without touching any guest, and no
 *    guest process ever has a parent-death signal;
 *  - the agent reaps init: it gets a pidfd for it (spawn_result.pidfd) to
 *    watch in its event loop and calls waitid(P_PIDFD) or waitpid(pid) when
 *    it becomes readable (init's exit status is the guest's). A failed start
 *    is reaped by spawner_start itself. If the spawner dies in the middle of
 *    a start, the half-made child exits on its own and the agent should reap
 *    it like any unknown child (a periodic waitpid(-1, WNOHANG) that ignores
 *    pids it does not track is fine, as long as nothing else in the agent,
 *    such as uv_spawn, expects to reap its own children);
 *  - when the agent exits or crashes, init is re-parented to the nearest
 *    subreaper or the host's init, which reaps it; a restarted agent re-adopts
 *    the guest by pid + start time (proc.h) and watches it with pidfd_open(),
 *    which works for processes that are not its children.
 * The spawner's own children (exec helpers, see spawner_exec) are reaped
 * automatically: the spawner sets SA_NOCLDWAIT on SIGCHLD.
 *
 * Threads: a spawner_t may be used from any thread; requests are serialised by
 * an internal mutex, held only while the spawner answers (for a start, until
 * the guest's init is cloned and released: its own setup up to the exec of
 * init is waited for outside the lock, so starts of distinct guests overlap
 * there), not while an exec'd command runs, so an exec can run concurrently
 * with other operations. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "node/backend.h"
#include "proto/msg.h"

#define SPAWN_PATH_MAX    256 /* bytes, with the NUL, of every path in spawn_config */
#define SPAWN_ARG_MAX     256 /* bytes, with the NUL, of an init argument or env entry */
#define SPAWN_MAX_ARGS    8   /* init arguments after argv[0] */
#define SPAWN_MAX_ENV     8   /* extra environment entries for init */
#define SPAWN_MAX_CGROUPS 16  /* cgroup v1 cgroup.procs files a guest is put into */
#define SPAWN_NAME_MAX    65  /* hostname/domainname bytes with the NUL (the kernel's limit) */
#define SPAWN_ERROR_MAX   160 /* bytes of the error text in spawn_result */

/* How to start a guest: a plain value, copied as a whole over the socket.
 * Every string is NUL-terminated within its array (spawner_start checks). */
struct spawn_config {
    char rootfs[SPAWN_PATH_MAX];              /* an already-mounted directory: the guest's / */
    char hostname[SPAWN_NAME_MAX];            /* the guest's hostname (uts namespace) */
    char domainname[SPAWN_NAME_MAX];          /* NIS domain name, "" = leave empty */
    char init[SPAWN_PATH_MAX];                /* absolute path of init inside the guest */
    char args[SPAWN_MAX_ARGS][SPAWN_ARG_MAX]; /* init's argv[1..], up to the first "" */
    char env[SPAWN_MAX_ENV][SPAWN_ARG_MAX];   /* "NAME=value" added to init's env, up to "" */
    uint64_t caps;                            /* capability bounding set, bit = CAP_* */
    uint64_t nofile;                          /* RLIMIT_NOFILE soft and hard, 0 = leave */
    uint32_t uid_base;  /* host id of guest root: a user namespace maps 0.. to it; 0 = none */
    uint32_t uid_count; /* ids in the map (IDMAP_BLOCK), 0 with uid_base 0 */
    uint32_t filter;    /* enum sysfilter_flags: relaxations of the syscall filter */
    char console_ring[SPAWN_PATH_MAX]; /* ring file init's stdout/stderr go to, "" = /dev/null */
    uint64_t console_size;             /* the ring's capacity in bytes (console.h) */
    char lxcfs[SPAWN_PATH_MAX]; /* an LXCFS mount whose proc files cover /proc's, "" = none */
    uint32_t n_cgroup_procs;    /* entries used in cgroup_procs */
    char cgroup_procs[SPAWN_MAX_CGROUPS][SPAWN_PATH_MAX]; /* v1 cgroup.procs files to join */
    char cgroup2[SPAWN_PATH_MAX];  /* cgroup2 directory to clone into, "" = none */
    char vservers[SPAWN_PATH_MAX]; /* the FreeVPS views' mount, bound at /dev/vservers; "" = none */
    uint32_t root_later; /* 1: rootfs is an empty shared conduit the root arrives in after the
                            clone (spawner_start_with); 0: rootfs is the mounted root */
};

/* What spawner_start gives back. */
struct spawn_result {
    pid_t pid;                   /* init's pid in the host's pid namespace */
    uint64_t start_time;         /* init's start time (proc_start_time) */
    int pidfd;                   /* a pidfd for init (O_CLOEXEC), owned by the caller, or -1 */
    char error[SPAWN_ERROR_MAX]; /* on failure, which step failed and why; "" otherwise */
};

typedef struct spawner spawner_t;

/* Forks the spawner process. Call before any thread exists. Returns NULL and
 * sets *err (when err is not NULL) to -EBUSY if the process has threads or to
 * the -errno of the failing call. */
spawner_t *spawner_new(int *err);

/* Stops the spawner (closes its socket and reaps it); running guests are not
 * touched. NULL-safe; clears *sp. */
void spawner_destroy(spawner_t **sp);

/* The spawner process's pid (for tests and diagnostics). */
pid_t spawner_pid(const spawner_t *sp);

/* Starts a guest: hands the console pipe to a reader process (console.h)
 * when cfg->console_ring is set (the spawner forks the next reader ahead of
 * time, after answering, so the start does not wait for that fork), clone3
 * into new pid, mount, uts, ipc, net namespaces, and a new
 * user namespace when cfg->uid_base is set (into cfg->cgroup2 with
 * CLONE_INTO_CGROUP when set), writes the uid and gid maps, sets
 * RLIMIT_NOFILE from outside (guest root may not raise a hard limit), then
 * lets the child join the cgroup of every cfg->cgroup_procs file (it writes
 * "0" into the tasks file beside it, which the spawner opened: proc_join_self;
 * the console reader joins them the same way, and cfg->cgroup2 by its
 * cgroup.procs), unshare its cgroup
 * namespace, build its root
 * (guest_init.h), load the syscall filter (sysfilter.h) and exec cfg->init.
 * Returns 0 when init has exec'd (res filled, res->pidfd owned by the
 * caller), or -errno with res->error saying which step failed; a
 * half-started child has then been killed and reaped. -EINVAL for a
 * malformed cfg, -EPIPE when the spawner is gone (create a new one). */
int spawner_start(spawner_t *sp, const struct spawn_config *cfg, struct spawn_result *res);

/* Makes the guest's root appear in the conduit cfg->rootfs of a
 * spawner_start_with start; child is the guest's init, cloned and released
 * but waiting for it. Returns 0 or -errno. */
typedef int (*spawn_root_fn)(void *arg, pid_t child);

/* spawner_start for a root that is not mounted yet (the first start after a
 * reboot): cfg->root_later is 1 and cfg->rootfs an empty directory at the
 * root of a shared mount (MS_SHARED) of the host's, the conduit. The spawner
 * stages the conduit as a slave and clones the child, which does what needs
 * no root (cgroups, cgroup namespace, proc, sysfs and the host files it
 * binds in, lo, hostname) and then waits; meanwhile, on the calling thread,
 * root(arg, pid) mounts the root and binds it into the conduit, and the
 * kernel propagates that mount into the child's namespace (locked, as the
 * copy of a seed is, since it crosses into the child's user namespace);
 * only then is the child let go on. When root fails the child is killed and
 * reaped and its error returned; a child that died meanwhile fails the start
 * with its own error (the byte goes over a socket: no SIGPIPE). The caller takes the conduit down
 * after the return, whatever it is (the child has made its mounts private by then). */
int spawner_start_with(spawner_t *sp, const struct spawn_config *cfg, spawn_root_fn root, void *arg,
                       struct spawn_result *res);

/* Makes a user namespace mapping 0..count-1 to host ids base.. (idmap.h) and
 * returns an fd on it (O_CLOEXEC, owned by the caller), for idmapped mounts.
 * Returns the fd or -errno (-EPIPE when the spawner is gone). */
int spawner_userns(spawner_t *sp, uint32_t base, uint32_t count);

/* Runs req->argv inside the running guest whose init is (pid, start_time): a
 * helper joins cfg's cgroups (cfg->cgroup_procs and cfg->cgroup2) and every
 * namespace of init (its user namespace first, when it has its own), then
 * forks the command inside the guest's pid namespace as the guest's root,
 * with bounding set cfg->caps, RLIMIT_NOFILE cfg->nofile, the syscall filter
 * cfg->filter (the other fields of cfg are ignored),
 * PR_SET_NO_NEW_PRIVS, a clean environment (PATH=/usr/sbin:/usr/bin:/sbin:/bin),
 * stdin from /dev/null, stdout and stderr captured. The command gets its own
 * process group; at the timeout the group is SIGKILLed (res->timed_out).
 * Output past req->max_output per stream (0 = 64 KiB, at most 16 MiB) is read
 * and dropped (res->truncated); res->out and res->err are always allocated and
 * NUL-terminated. req->timeout_ms 0 = 30 s. The caller stops reading 5 s after
 * the timeout even if a process that escaped the group still holds the pipes.
 * A command that cannot be exec'd exits 127 (126 when not executable) with a
 * message on stderr. Returns 0 with res filled (the caller frees it with
 * exec_result_clear), -ESRCH when pid is not that guest's init any more,
 * -EINVAL for a bad request (a command over the limits below: with
 * errtext_get() saying which), -errno otherwise. Blocks the calling thread for
 * the command's run time, but not the spawner. */
int spawner_exec(spawner_t *sp, const struct spawn_config *cfg, pid_t pid, uint64_t start_time,
                 const struct exec_request *req, struct exec_result *res);

/* Starts req->argv (NULL or empty: root's login shell, from the guest's
 * /etc/passwd) in the running guest whose init is (pid, start_time), joined
 * as spawner_exec joins it, with its stdio left open: a terminal of the
 * guest's devpts when req->tty, else three pipes. Returns at once: 0 with
 * *sock the stream helper's socket (node/linux/nsexec_stream.h says what
 * comes over it: the command's pid and ends, then its end), -ESRCH when pid
 * is not that guest's init, -EINVAL for a bad request, -errno otherwise. */
int spawner_stream(spawner_t *sp, const struct spawn_config *cfg, pid_t pid, uint64_t start_time,
                   const struct shell_request *req, int *sock);

/* Limits on an exec request: the protocol's (PROTO_MAX_ARGV strings of
 * PROTO_MAX_STRING bytes). A command whose arguments fit in
 * SPAWN_EXEC_INLINE bytes travels inside the request; a longer one in a
 * sealed memfd attached to it (spawnd.h). */
#define SPAWN_EXEC_MAX_ARGS  PROTO_MAX_ARGV   /* arguments, argv[0] included */
#define SPAWN_EXEC_ARG_MAX   PROTO_MAX_STRING /* bytes of one argument without its NUL */
#define SPAWN_EXEC_ARGS_SIZE (SPAWN_EXEC_MAX_ARGS * (SPAWN_EXEC_ARG_MAX + 1)) /* all, with NULs */
#define SPAWN_EXEC_INLINE    4096 /* bytes of arguments carried in the request itself */
