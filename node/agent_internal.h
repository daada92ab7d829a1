/* The node agent's insides, shared by its files and nothing else.
 *
 *   agent.c        lifecycle, the session with the master (hello, welcome,
 *                  heartbeat, reconnect), frames in, the usage timer,
 *                  re-adoption at start
 *   agent_cmd.c    the master's commands (guest.apply/start/stop/destroy/
 *                  exec): checks against the guest table, then a job
 *   agent_jobs.c   the job kinds: one {run, done} pair per kind, on lanes
 *   agent_guest.c  the guest table, the pidfd watch on init, stop timeouts,
 *                  what happens when a guest stops
 *   agent_send.c   every message to the master (the one caller of link_send)
 *
 * Threads: everything here runs on the loop thread, except the jobs' run
 * functions (agent_jobs.c), which run on the thread pool and touch only their
 * job's own copies and the backend. The guest table, the store and the link
 * are the loop thread's alone. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/version.h"
#include "node/agent.h"
#include "node/backend.h"
#include "node/lane.h"
#include "node/outbox.h"
#include "node/store.h"
#include "proto/link.h"
#include "proto/msg.h"
#include "proto/ratelimit.h"
#include "proto/zwatch.h"

/* The refusal (busy) of an exec or a shell in a guest a move or an export
 * froze: its helper would freeze as it joined, and the exec waited out its
 * whole timeout (holding every guest's exec behind it), then ran the
 * command at the thaw anyway. */
#define AGENT_MOVE_FROZEN                                                                          \
    "guest is frozen for a move or an export: ask again once the operation has ended (a moved "    \
    "guest then runs on its target), or cancel it"

/* The answer to an exec that was running when a move's or export's freeze
 * was queued (agent_job_exec_cancel). */
#define AGENT_MOVE_KILLED                                                                          \
    "guest is frozen for a move or an export: the running command was killed; ask again once "     \
    "the operation has ended (a moved guest then runs on its target)"

typedef struct vservers_fs vservers_fs_t;

/* A pidfd watch on a guest's init. Allocated per start and freed by its
 * close callback, because a closed libuv handle cannot be reused at once. */
struct agent_watch {
    uv_poll_t poll;            /* readable when init exits */
    int pidfd;                 /* the pidfd polled, owned */
    struct agent_guest *guest; /* the guest, NULL once detached */
};

/* A guest the agent knows, with the handles that watch it. Owned by the
 * agent's table; freed only after its handles are closed. */
struct agent_oom;

/* The members of a guest's spec the agent reads on every command, timer and
 * apply, kept unpacked (the same names as in struct guest_spec, so
 * g->rec.spec.name reads as it did). */
struct agent_spec_head {
    char id[SPEC_ID_LEN + 1];    /* spec.id */
    char name[NAME_MAX_LEN + 1]; /* spec.name */
    uint64_t generation;         /* spec.generation */
    uint32_t context;            /* spec.context */
    uint32_t flags;              /* spec.flags */
    bool autostart;              /* spec.autostart */
    uint32_t restart;            /* spec.restart */
    uint32_t restart_max;        /* spec.restart_max */
    uint32_t restart_backoff;    /* spec.restart_backoff */
    uint32_t stop_timeout;       /* spec.stop_timeout */
    uint32_t n_addrs;            /* spec.n_addrs */
    struct netaddr *addrs;       /* spec.addrs' n_addrs entries (owned), checked at every apply */
};

/* A guest's struct store_record as the agent keeps it between operations:
 * the spec packed (proto/spec_pack.h: ~250 bytes for a guest with little in
 * it, where struct guest_spec is 17 KB of arrays for the maxima), its hot
 * members beside it. agent_guest_spec unpacks the whole spec for an
 * operation; agent_guest_set_spec replaces it. */
struct agent_record {
    struct agent_spec_head spec; /* the spec's hot members */
    char *packed;                /* the whole spec, spec_pack'd (owned) */
    size_t packed_len;           /* its bytes */
    uint64_t applied_generation; /* as in struct store_record, as are the members below */
    enum store_desired desired;  /* run state the master asked for */
    struct guest_runtime rt;     /* init pid + start time when running, zeros when not */
    struct guest_usage baseline; /* counter baselines carried across restarts */
    char boot_id[40];            /* the host's boot id when init was started */
    struct guest_ids ids;        /* the guest's uid block */
    bool legacy_ids;             /* read from a record older than uid blocks */
};

struct agent_guest {
    agent_t *agent;            /* the agent that owns it (several may share a loop) */
    struct agent_record rec;   /* what the store holds, the spec packed */
    struct agent_watch *watch; /* watches init while running, else NULL */
    struct agent_oom *oom;     /* watches the OOM notification while running, else NULL */
    uv_timer_t stop_timer;     /* stop timeout, then kill */
    bool timer_init;           /* stop_timer is initialised */
    uv_timer_t restart_timer;  /* the restart policy's back-off */
    bool restart_init;         /* restart_timer is initialised */
    uint32_t restarts;         /* restarts in a row by the policy (reset by a long run) */
    uint64_t started_ms;       /* monotonic ms of the last start, 0 = unknown */
    uint64_t stop_ref;         /* request id of a pending guest.stop, 0 = none */
    bool stopping;             /* a stop was asked and init has not exited */
    bool destroying;           /* a destroy is queued: refuse new work */
    bool move_frozen;          /* a move's or export's freeze is queued or holds it: no exec */
    bool dirty;                /* its record could not be written: written again each heartbeat */
    int handles_open;          /* handles still to close before free */
    bool orphaned;             /* out of the agent's table: the last close callback frees it */
};

struct agent {
    uv_loop_t *loop;             /* the loop everything runs on (borrowed) */
    struct agent_config cfg;     /* copy of the configuration */
    backend_t *backend;          /* owned */
    store_t *store;              /* owned */
    link_t *link;                /* DEALER to the master, owned */
    zwatch_t watch;              /* ZeroMQ readiness in the loop */
    uv_timer_t heartbeat;        /* heartbeat and hello retries */
    uv_timer_t usage;            /* usage sampling */
    lane_t *ops;                 /* lifecycle lane (apply .. usage), owned */
    lane_t *execs;               /* exec lane, owned */
    struct job *exec_job;        /* the exec lane's running exec, NULL when none */
    lane_t *fetches;             /* template unpack lane, owned: a long one holds up no guest */
    struct agent_guest **guests; /* the guest table, owned */
    size_t n_guests;             /* entries used */
    size_t cap_guests;           /* entries allocated */
    struct node_facts facts;     /* from the backend's probe */
    char boot_id[40];            /* the host's boot id, "" = unknown */
    uint32_t leftovers;          /* guests' leftovers in the state directory at start-up */
    bool leftovers_known;        /* they could be counted (the hello says not known if not) */
    uint64_t next_id;       /* our request ids (seeded from the clock: unique across restarts) */
    outbox_t *outbox;       /* events, exec results and hello until the master acks them */
    uint64_t heartbeat_seq; /* heartbeats sent */
    bool welcomed;          /* the master answered our hello */
    bool refused_logged;    /* the master's refusal of our key was logged */
    uint64_t last_hello_ms; /* when hello was last sent */
    uint64_t hello_id;      /* the request id of the last hello sent */
    uint64_t last_rx_ms;    /* when the master was last heard from */
    bool usage_pending;     /* a usage job is queued or running */
    uint64_t usage_unread;  /* the last usage report sent, until the master acks it; 0 = none */
    uint64_t usage_sent_ms; /* when it was sent */
    bool master_acks_usage; /* the master has acked a usage report (it reads them in order) */
    bool handles_ready;     /* timers and the watcher are initialised */
    vservers_fs_t *vfs;     /* the FreeVPS views' filesystem, NULL = not mounted */
    bool closing;           /* agent_shutdown was called */
    struct migration *migrations; /* guests moving in or out (agent_migrate.c) */
    void *shells;                 /* interactive sessions (agent_shell.c), NULL = none */
    struct ratelimit save_log;    /* failed record writes logged (retried each heartbeat) */
};

/* ---- agent_send.c: messages to the master ------------------------------ */

/* Encodes m (giving it the next request id when m->id is 0) and sends it.
 * Events, exec results and hello go through the outbox, which re-sends them
 * until the master acknowledges them; the rest goes once (a failed send is
 * logged: the master re-sends unacknowledged commands, heartbeats and usage
 * come again by themselves). m stays the caller's. */
int agent_send(agent_t *a, struct msg *m);
/* The outbox's transport: link_send to the master. */
int agent_send_frame(void *agent, const void *buf, size_t len);
/* ack of request ref about g (its id, applied generation, running); g NULL
 * for an ack about no guest. */
void agent_send_ack(agent_t *a, uint64_t ref, const struct agent_guest *g);
/* ack of request ref about a guest that is no longer in the table. */
void agent_send_ack_gone(agent_t *a, uint64_t ref, const char *id, uint64_t generation);
/* nack of request ref; id may be NULL. */
void agent_send_nack(agent_t *a, uint64_t ref, const char *id, enum msg_error code,
                     const char *text);
/* nack with "what: detail", detail being the backend's errtext when it gave
 * one, else strerror(-err); the code comes from msg_error_from_errno. */
void agent_send_nack_errno(agent_t *a, uint64_t ref, const char *id, int err, const char *what,
                           const char *detail);
/* A guest event ("started", "stopped", "exited", "destroyed"); text may be NULL. */
void agent_send_event(agent_t *a, const char *id, const char *kind, int exit_code,
                      const char *text);
/* An "exited" event with the killing signal and the desired state that follows. */
void agent_send_exit(agent_t *a, const char *id, int exit_code, int signal, bool restarting,
                     const char *text);
/* inventory in answer to inventory.get ref, with guest id's spec when id is not "". */
void agent_send_inventory(agent_t *a, uint64_t ref, const char *id);
/* hello with the node's facts, labels and the guest table as inventory. */
void agent_send_hello(agent_t *a);
/* A heartbeat with the table's guest and running counts and its digest. */
void agent_send_heartbeat(agent_t *a);

/* ---- agent_shell.c: interactive sessions (guest.shell) ------------------ */

/* guest.shell: starts a session (acked when the command runs). */
void agent_shell_open(agent_t *a, const struct msg *m);
/* stream.data, stream.ack and stream.ctl of a session. */
void agent_shell_stream(agent_t *a, const struct msg *m);
/* Hangs up the sessions in one guest (it is destroyed: an open terminal of
 * its devpts would keep its filesystems busy), each with a stream.exit. */
void agent_shell_close_guest(agent_t *a, const char *id, const char *why);
/* Hangs up every session (the link was reset, or the agent stops). */
void agent_shell_close_all(agent_t *a, const char *why);

/* ---- agent_cmd.c: the master's commands -------------------------------- */

/* A new guest's block of host uids on this node (zeros for a privileged
 * guest): 0, or -ENOSPC when no block is free. */
int agent_pick_ids(agent_t *a, const struct guest_spec *s, struct guest_ids *out);

/* Handles one decoded message of a command type (guest.*): answers it now
 * (ack, nack) or queues the job whose done answers it. Returns false, having
 * done nothing, when m's type is not a command a node accepts. */
bool agent_cmd_handle(agent_t *a, const struct msg *m);

/* ---- agent_jobs.c: backend operations on the lanes ---------------------- */

/* Each queues a job on its lane with copies of g's spec and runtime; apply,
 * start, stop and destroy take them afresh from the table when they leave
 * the queue (after every earlier job's done), so they act on what the jobs
 * before them did. Its done records the outcome and answers request ref (0:
 * an internal job, nothing to answer). */
/* Create (unless existed), then apply spec's limits and, when running,
 * network; with start (guest.apply.start), then start it in the same job
 * when it is not running and not locked. A start that cannot be done or
 * fails is answered by an ack with running false, never a nack: the nack of
 * a guest.apply.start says the apply failed (docs/protocol.md). */
void agent_job_apply(agent_t *a, const struct agent_guest *g, uint64_t ref,
                     const struct guest_spec *spec, bool existed, bool start);
/* Start init and its network. */
void agent_job_start(agent_t *a, const struct agent_guest *g, uint64_t ref);
/* The same, answering a failure with an ack (running false) instead of a
 * nack: the start part of a guest.apply.start whose apply was done before. */
void agent_job_start_soft(agent_t *a, const struct agent_guest *g, uint64_t ref);
/* Send the halt signal; g->stop_ref is answered when init has gone. */
void agent_job_stop(agent_t *a, const struct agent_guest *g, uint64_t ref);
/* Kill everything of the guest, fold the run's network counters, drop its network. */
void agent_job_kill(agent_t *a, const struct agent_guest *g);
/* Kill if running, then remove everything of the guest. */
void agent_job_destroy(agent_t *a, const struct agent_guest *g, uint64_t ref);
/* Run e (copied) inside the guest, on the exec lane. */
void agent_job_console(agent_t *a, const struct agent_guest *g, uint64_t ref, uint32_t max);
void agent_job_exec(agent_t *a, const struct agent_guest *g, uint64_t ref,
                    const struct msg_guest_exec *e);
/* A move's or export's freeze of guest id is queued: its exec running on
 * the exec lane, if any, is answered busy (AGENT_MOVE_KILLED) at once and
 * its command killed, rather than holding the lane (every guest's execs)
 * frozen until its timeout. */
void agent_job_exec_cancel(agent_t *a, const char *id);
/* Sample every running guest that is not being destroyed (at most
 * PROTO_MAX_SAMPLES) and send one usage batch. Returns the number of guests
 * sampled; 0 queues nothing. Sets a->usage_pending until the batch is sent. */
size_t agent_job_usage(agent_t *a);

/* ---- agent_migrate.c: guests moving between nodes ---------------------- */

/* guest.migrate.prepare, send, commit, finish and abort. */
void agent_migrate_cmd(agent_t *a, const struct msg *m);
/* agent_shutdown: stops the copies and receivers; guests stay as they are. */
void agent_migrate_close_all(agent_t *a);
/* ---- agent_oom.c: the kernel's OOM notification ------------------------ */

/* Starts watching g's OOM notification (a job opens it through the backend);
 * nothing when the backend has none or g has a watch. */
void agent_oom_arm(agent_t *a, struct agent_guest *g);
/* Stops watching (g stopped, or goes). */
void agent_oom_disarm(struct agent_guest *g);

/* ---- agent_guest.c: the guest table ------------------------------------ */

struct agent_guest *agent_guest_find(agent_t *a, const char *id);
struct agent_guest *agent_guest_find_name(agent_t *a, const char *name);
/* Adds a guest with a copy of rec to the table (not to the store). */
struct agent_guest *agent_guest_add(agent_t *a, const struct store_record *rec);
/* g's whole spec, unpacked into *out (17 KB: a job's or the heap's, not
 * the stack of a deep call). */
void agent_guest_spec(const struct agent_guest *g, struct guest_spec *out);
/* A copy of g's packed spec (malloc'd; its bytes in *len): what a job
 * carries while it waits, a few hundred bytes where the unpacked spec is
 * 17 KB (a burst of queued jobs each holding one left the heap in holes of
 * that size). */
char *agent_guest_packed(const struct agent_guest *g, size_t *len);
/* Unpacks a spec packed by the agent (agent_guest_packed, spec_pack of a
 * validated spec); failing to is a bug: it aborts. */
void agent_spec_unpack(const char *packed, size_t len, struct guest_spec *out);
/* Replaces g's spec (packs it; s has passed spec_validate). */
void agent_guest_set_spec(struct agent_guest *g, const struct guest_spec *s);
/* The same with s already packed: takes packed (len bytes, spec_pack's
 * output for s, malloc'd). */
void agent_guest_take_spec(struct agent_guest *g, const struct guest_spec *s, char *packed,
                           size_t len);
/* Takes g out of the table and frees it once its handles are closed. */
void agent_guest_remove(agent_t *a, struct agent_guest *g);
/* Writes g's record to the store; logs a failure (rate-limited) and marks
 * g dirty, cleared by a write that succeeds. Returns 0 or -errno. */
int agent_guest_save(agent_t *a, struct agent_guest *g);
/* Writes again the records of the dirty guests: what the agent keeps in
 * memory but could not record (the host's disk full) is not forgotten. */
void agent_guest_save_dirty(agent_t *a);
/* Watches init's pidfd so the agent learns when the guest stops, whoever
 * stopped it (adopted guests too, which are not our children). Does nothing
 * with fake pids. Returns 0 or -errno. */
int agent_guest_watch(agent_t *a, struct agent_guest *g);
/* Stops watching init and cancels a pending stop timeout. */
void agent_guest_quiet(struct agent_guest *g);
/* Arms the stop timeout: after timeout_s seconds a still running guest is killed. */
void agent_guest_arm_stop(agent_t *a, struct agent_guest *g, uint32_t timeout_s);
/* Records that g's init is gone: clears the runtime, saves, sends the
 * "stopped" (asked for) or "exited" event and answers a pending stop. An
 * exit nobody asked for is the guest's own will: its desired state becomes
 * stopped, unless its restart policy (or a reboot asked from inside) starts
 * it again. exit_code -1 and signal 0: the status is unknown (not our child). */
void agent_guest_stopped(agent_t *a, struct agent_guest *g, int exit_code, int signal,
                         const char *why);
/* The init of g, recorded as running, was found gone at start-up on the same
 * boot: it exited while the agent was away (status unknown). */
void agent_guest_exited_away(agent_t *a, struct agent_guest *g);
/* The inventory digest of the table (msg_digest_item summed). */
uint64_t agent_guest_digest(const agent_t *a);
/* The guest in the table, other than g, that holds one of spec's
 * addresses (its index in *addr), or NULL. */
struct agent_guest *agent_guest_addr_owner(agent_t *a, const struct agent_guest *g,
                                           const struct guest_spec *spec, uint32_t *addr);
/* Guests in the table whose init runs. */
size_t agent_guest_running(const agent_t *a);
/* agent_shutdown: closes every guest's handles; guests stay in the table. */
void agent_guest_close_all(agent_t *a);
/* agent_destroy: frees the table; guests whose handles are still closing
 * are freed by their close callbacks. */
void agent_guest_free_all(agent_t *a);
