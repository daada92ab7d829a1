/* The kernel backend contract: one table of operations that the agent drives.
 * `linux` implements it on the real kernel (node/linux/), `sim` in memory
 * (node/sim/). The agent above it knows nothing of cgroup files or netlink.
 *
 * Threads: the agent calls the operations of one guest one at a time, in
 * order, from worker threads; a backend never sees two operations at once
 * unless it sets parallel_guests, and then only create, set_limits, start
 * and kill of distinct guests run at once (with each other and with one of
 * the rest);
 * operations may block for the I/O they do (mkfs, mount) but none waits for
 * a guest: stop sends the halt signal and returns, and the agent calls kill
 * after the timeout. Exec is the exception: it runs in a second lane,
 * concurrently with the others, and only reads backend state.
 *
 * Every operation is idempotent: create of an existing guest with the same
 * spec, start of a running guest, stop of a stopped one, destroy of a guest
 * that is gone all succeed. Returns are 0 or -errno; -ENOLCK and -EACCES carry
 * the lock and private flags (distinct from -EBUSY, a state conflict such as
 * destroying a running guest), -ENOSPC a full disk or a limit below current
 * use, -ENOENT an unknown guest, -ESRCH exec into a guest that is not running. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "proto/msg.h"
#include "proto/spec.h"
#include "proto/usage.h"

typedef struct backend backend_t;

/* What the node tells the master in hello. */
struct node_facts {
    char kernel[65];      /* uname release */
    char cgroup[8];       /* "v1", "v2" or "hybrid" */
    char backend[16];     /* "linux" or "sim" */
    uint32_t cpus;        /* millicores available to guests */
    uint64_t memory;      /* bytes available to guests */
    uint64_t disk;        /* bytes available for guest disk images */
    uint32_t max_guests;  /* guests this node accepts */
    uint32_t n_templates; /* entries in templates */
    char templates[PROTO_MAX_TEMPLATES][NAME_MAX_LEN + 1]; /* templates guests can be made from */
    uint64_t template_size[PROTO_MAX_TEMPLATES]; /* bytes of each one's files, 0 = unknown */
    char template_sum[PROTO_MAX_TEMPLATES][72];  /* "sha256:..." of each, "" = unknown */
};

/* Where a guest stands, as the backend sees it. */
enum guest_state {
    GUEST_ABSENT,  /* nothing of the guest exists on this node */
    GUEST_STOPPED, /* created (disk, rootfs), no process */
    GUEST_RUNNING, /* its init runs */
};

/* What the agent keeps about a running guest so it can re-adopt it after a
 * restart: the init's pid and its start time (field 22 of /proc/PID/stat),
 * which together name the process even if the pid is reused. */
struct guest_runtime {
    pid_t pid;           /* init's pid in the host's pid namespace, 0 when stopped */
    uint64_t start_time; /* init's start time in clock ticks since boot */
};

/* What the node decides for a guest by itself and keeps in the guest's store
 * record beside the spec (node/store.h), passed to the operations that build
 * the guest: the block of host uids and gids its user namespace maps to. A
 * guest without a block (the spec's privileged flag, or a guest created
 * before user namespaces) shares the host's user namespace. */
struct guest_ids {
    uint32_t uid_base;  /* host uid and gid of the guest's root, 0 = no user namespace */
    uint32_t uid_count; /* ids in the block (BACKEND_UID_BLOCK), 0 without one */
};

#define BACKEND_UID_BLOCK   65536u /* host ids per guest: 0..65535 inside */
#define BACKEND_MOVE_FROZEN 2      /* thaw_stray: a move's freeze, kept */

/* The tail of a guest's console: what its init and its processes wrote to
 * stdout/stderr (and /dev/console), kept by the node in a ring of bounded size. */
struct console_log {
    char *data;     /* the last bytes of the console, oldest first (malloc'd, caller frees) */
    size_t len;     /* bytes in data */
    uint64_t total; /* bytes ever written to this console; total - len were dropped */
};

/* A command to run inside a running guest. */
struct exec_request {
    char *const *argv;   /* NULL-terminated, argv[0] is looked up in the guest's PATH */
    uint32_t timeout_ms; /* killed after this long, 0 = 30 s */
    uint32_t max_output; /* bytes kept per stream, the rest is counted and dropped */
    /* With cancellable: cancel_fd readable (an eventfd the caller writes)
     * ends the wait at once, -ECANCELED, and the command is killed as soon
     * as the guest lets it (linux: by its helper, at once, or at the thaw of
     * a frozen guest). */
    bool cancellable;
    int cancel_fd; /* the caller's; only read when cancellable */
};

struct exec_result {
    int exit_code;  /* exit status, or -1 when killed by a signal */
    int signal;     /* the signal that killed it, 0 when it exited */
    bool timed_out; /* killed at the timeout */
    char *out;      /* captured stdout (malloc'd, caller frees) */
    size_t out_len; /* bytes in out */
    char *err;      /* captured stderr (malloc'd, caller frees) */
    size_t err_len; /* bytes in err */
    bool truncated; /* some output was dropped at max_output */
};

/* A command in a running guest whose stdio stays open (guest.shell). */
struct shell_request {
    char *const *argv; /* NULL-terminated; NULL or empty = root's login shell */
    bool tty;          /* on a new terminal of the guest's own devpts */
    uint16_t cols;     /* the terminal's width */
    uint16_t rows;     /* its height */
    const char *term;  /* TERM for the command, NULL = "xterm" */
};

/* What shell_proc.ctl delivers once, when the command has ended. */
struct shell_status {
    int32_t err;     /* 0, or a positive errno when the command could not be run */
    int32_t wstatus; /* the command's wait status (when err is 0) */
    int32_t unused;  /* keeps the layout of the linux helper's status */
    char what[160];  /* when err is not 0, the step that failed */
};

/* A running command's ends, owned by the caller of shell. */
struct shell_proc {
    pid_t pid; /* its host pid, also its process group; 0 = nothing to signal */
    int in;    /* write end: its stdin (the terminal when tty) */
    int out;   /* read end: its stdout (the terminal, a dup of in, when tty) */
    int err;   /* read end: its stderr, -1 when tty */
    int ctl;   /* read end: one struct shell_status when it ended, then end of file */
};

struct backend_ops {
    const char *name;
    /* The network counters of usage (net_* and failcnt[USAGE_FAIL_TCP]) count
     * from the guest's last start, not from its creation: the agent keeps the
     * earlier runs' totals as baselines and adds them (linux: the veth and its
     * counters are made anew on every start). */
    bool net_per_run;
    /* create, set_limits, start and kill of distinct guests may run at once
     * (each touches only its guest's files, mounts and cgroups): the agent
     * then runs them side by side (node/agent_jobs.c). */
    bool parallel_guests;
    /* Fills the node's facts. */
    int (*probe)(backend_t *b, struct node_facts *out);
    /* Makes the guest's disk and root filesystem (owned by ids' block);
     * leaves it stopped. -ENOSPC when the node's filesystem is below its
     * reserve. */
    int (*create)(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids);
    /* Starts the guest's init (in a user namespace mapped to ids' block when
     * it has one); fills rt. */
    int (*start)(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids,
                 struct guest_runtime *rt);
    /* Sends the halt signal to init; the guest may take time to stop. */
    int (*stop)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt);
    /* Kills every process of the guest (SIGKILL to its cgroup) and waits for them. */
    int (*kill)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt);
    /* Thaws the guest when a freeze nothing holds any more left it frozen:
     * an agent killed inside a kill (linux: freeze, SIGKILL each process,
     * thaw) between its freeze and its thaw leaves the guest's processes
     * frozen, and the agent restarted from its record re-adopts them so
     * (the guest hangs until the next stop). A move's freeze (migrate_freeze)
     * is kept: it is the move's, which goes on from it after the agent's
     * restart (the send sent again resumes with the last pass, an abort
     * thaws, the finish destroys a guest that runs on its target now).
     * The agent's start-up calls it for every recorded guest. 1 when it
     * thawed, BACKEND_MOVE_FROZEN when it kept a move's freeze, 0 when
     * nothing was frozen, or -errno. NULL: nothing of the backend freezes. */
    int (*thaw_stray)(backend_t *b, const struct guest_spec *spec);
    /* The ids of the guests something of which may run here (linux: those
     * with a cgroup and a directory in this node's state directory): a
     * NULL-terminated array of malloc'd ids in *ids, each
     * freed by the caller, as is the array. The agent's start-up kills what
     * runs of those its store has no record of (node/agent.c). NULL when the
     * backend has none to find. */
    int (*list)(backend_t *b, char ***ids);
    /* Kills what runs of each of the n guests in ids, as kill does, with one
     * deadline for all: every guest is signalled before any is waited for,
     * so guests whose processes will not die hold the caller for one
     * timeout, not one each (the agent's start-up kills so, in one call,
     * the unrecorded guests of list and the recorded ones whose record
     * says not running). res[i]: 1 when processes of ids[i] were killed, 0
     * when none ran, or -errno (-EBUSY: some remain). NULL: the agent calls
     * kill for each recorded one and kills none of list. */
    int (*kill_many)(backend_t *b, char *const *ids, size_t n, int *res);
    /* Removes everything of a stopped guest: cgroups, mounts, disk image, netns. */
    int (*destroy)(backend_t *b, const struct guest_spec *spec);
    /* Applies spec's limits to a created (running or stopped) guest. Growing
     * the disk is -ENOSPC when the node's filesystem is below its reserve. */
    int (*set_limits)(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids,
                      const struct guest_runtime *rt);
    /* Applies spec's addresses and network limits to a running guest. With a
     * stopped runtime (rt->pid 0) it removes what is left of the guest's
     * network instead: the agent calls it so after kill, once it has read the
     * last counters with usage. */
    int (*apply_network)(backend_t *b, const struct guest_spec *spec,
                         const struct guest_runtime *rt);
    /* Where the guest stands; for a running one, checks rt still names its init. */
    int (*state)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
                 enum guest_state *out);
    /* Measures usage. */
    int (*usage)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
                 struct guest_usage *out);
    /* The kernel's OOM notification for a running guest: a descriptor the
     * agent polls (readable, or POLLPRI with *prio set) and closes; NULL or
     * -EOPNOTSUPP when the backend has none (sim). */
    int (*oom_watch)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
                     bool *prio);
    /* After the descriptor woke: consumes the notification and reads the
     * OOM kills counted in the guest (the sample's failcnt.oom). -ENOENT
     * when the guest's cgroup is gone. */
    int (*oom_read)(backend_t *b, const struct guest_spec *spec, int fd, uint64_t *count);
    /* Runs a command inside a running guest and waits for it. */
    int (*exec)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
                const struct exec_request *req, struct exec_result *res);
    /* Starts a command inside a running guest and returns at once with its
     * ends (guest.shell); NULL when the backend has none (-EOPNOTSUPP).
     * Same errors as exec. May run alongside other operations. */
    int (*shell)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
                 const struct shell_request *req, struct shell_proc *out);
    /* Reads the last max bytes (0 = all the ring holds) of the guest's
     * console into out (running or stopped guest; read-only, so it may run in
     * the exec lane). -ENOENT when the guest has no console yet (never
     * started since it was created, or started before consoles had rings). */
    int (*console)(backend_t *b, const struct guest_spec *spec, size_t max,
                   struct console_log *out);
    /* Frees the backend. */
    void (*free)(backend_t *b);

    /* ---- moving a guest (agent_migrate.c); each optional: NULL means the
     * backend has nothing to do there (sim: no image, nothing to freeze) ---- */
    /* The guest's disk image and the file an incoming one is written to,
     * both n bytes. */
    int (*migrate_paths)(backend_t *b, const struct guest_spec *spec, char *image, char *incoming,
                         size_t n);
    /* Freezes the guest so its image holds still (its processes when rt names
     * a running init, then its filesystem), or thaws it. Idempotent. */
    int (*migrate_freeze)(backend_t *b, const struct guest_spec *spec,
                          const struct guest_runtime *rt, bool freeze);
    /* 1 when the guest's processes are frozen, 0 when not. */
    int (*migrate_frozen)(backend_t *b, const struct guest_spec *spec);
    /* The CRIU preflight: 0 when checkpoint/restore would work on this host,
     * else -errno with the reason in why. */
    int (*migrate_criu)(backend_t *b, char *why, size_t n);
    /* Writes a vfleet archive (archive/archive.h) of the guest's files with
     * manifest to out_fd; a running guest is frozen meanwhile, so what is
     * packed is consistent. NULL: an archive with no files. */
    int (*migrate_pack)(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
                        const char *manifest, int out_fd);
    /* Unpacks the archive at in_fd into a created, stopped guest's files
     * (before its root is mounted again by start). NULL: nothing to unpack. */
    int (*migrate_unpack)(backend_t *b, const struct guest_spec *spec, int in_fd);
    /* Gives a moved-in or imported guest's files (created, stopped) the ids
     * of its block here: what belonged to the block its files came with (the
     * source node's, or 0.. for a privileged source) is shifted into ids'
     * block. NULL: nothing to do (no files). */
    int (*migrate_ids)(backend_t *b, const struct guest_spec *spec, const struct guest_ids *ids);
};

/* Every backend embeds this first and reaches its own state with container_of. */
struct backend {
    const struct backend_ops *ops;
};

static inline void
exec_result_clear(struct exec_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}
