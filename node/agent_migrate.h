/* Guests moving in and out of this node: what agent_migrate.c (the
 * commands, the receiving side, the jobs) and agent_migrate_send.c (the
 * sending side: stop or freeze, the copy passes on a thread of their own)
 * share. Private to those two files.
 *
 * A migration lives in memory for the agent's life; what must survive an
 * agent restart is on disk (the incoming image, its state and marker
 * files) or in the kernel (a frozen guest), and the master re-sends the
 * step it waits for, which finds it again (docs/protocol.md, "Moving a
 * guest").
 *
 * Threads: the loop thread, except where a field says "thread". */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/agent_internal.h"
#include "proto/xfer.h"

/* Where a sending migration is. */
enum mig_step {
    MIG_STOPPING, /* cold: waiting for the guest to stop */
    MIG_PASS1,    /* near-live: the copy while the guest runs */
    MIG_FREEZING, /* the freeze job is queued */
    MIG_FINAL,    /* the last pass, the guest frozen or stopped */
    MIG_SENT,     /* done: the target has the image and said so */
    MIG_FAILED,   /* the copy failed; the master aborts */
};

struct migration {
    struct migration *next; /* in the agent's list */
    agent_t *agent;         /* back pointer */
    char op[SPEC_ID_LEN + 1];
    char id[SPEC_ID_LEN + 1];            /* the guest */
    bool source;                         /* sending the guest away, else receiving it */
    uint64_t ref;                        /* the command the next status answers */
    char secret[MIGRATE_SECRET_LEN + 1]; /* the transfer secret */
    char peer_key[MIGRATE_KEY_LEN + 1];  /* the other node's public key, "" = plaintext */
    bool curve;                          /* the data channel is CurveZMQ, both ends pinned */
    /* receiving */
    xfer_recv_t *recv;                    /* the receiver, NULL when not running */
    char endpoint[XFER_ENDPOINT_MAX + 1]; /* where it listens */
    char incoming[512];                   /* the file written */
    /* sending */
    char target[XFER_ENDPOINT_MAX + 1];     /* the target's endpoint */
    char restart_to[XFER_ENDPOINT_MAX + 1]; /* a new endpoint to restart with, "" none */
    bool live;                              /* near-live */
    bool archive;                           /* an export: an archive of the guest is sent */
    char file[512];                         /* export: the packed archive, "" = the disk image */
    bool was_running;                       /* the guest ran when the move began here */
    enum mig_step step;                     /* where it is */
    xfer_send_t *send;                      /* the sender (the thread's while it runs) */
    pthread_t thread;                       /* runs one pass */
    bool thread_on;                         /* thread was started and not joined */
    atomic_bool thread_done;                /* thread: the pass returned */
    atomic_bool cancel;                     /* asks the pass to stop */
    bool final_pass;                        /* the pass running is the last */
    uv_async_t wake;                        /* thread -> loop: progress, done */
    uv_timer_t timer;                       /* polls for a cold stop */
    int handles;                            /* handles open (freed when 0 and closing) */
    bool closing;                           /* handles are being closed: free at 0 */
    pthread_mutex_t lock;                   /* guards progress */
    struct xfer_stats progress;             /* thread: the pass's figures */
    uint64_t progress_sent_ms;              /* when progress last went to the master */
    int result;                             /* thread: the pass's result */
    char err[256];                          /* thread: its sentence */
    uint8_t digest[XFER_HASH_LEN];          /* the image's digest, once sent */
    struct xfer_stats stats;                /* the last pass's figures */
    uint64_t frozen_ms;                     /* when the guest stopped or froze */
    uint64_t copy_ms;                       /* how long the passes took, summed */
    uint64_t pass_started;                  /* monotonic ms the running pass began */
    uint64_t bytes_sent;                    /* payload bytes of every pass */
    struct msg_migrate_counters counters;   /* the guest's counters at that moment */
    char note[256];                         /* how it went (the CRIU preflight) */
    bool abort_pending;                     /* an abort waits for the thread */
    uint64_t abort_ref;                     /* its request */
    bool abort_start;                       /* start the guest again */
};

/* The data channel's keys for m (xfer.h), or NULL for plaintext: this
 * node's pair and m->peer_key, when both are there. Any thread. */
const struct xfer_keys *mig_keys(agent_t *a, struct migration *m, struct xfer_keys *out);

/* The lists and helpers (agent_migrate.c). */
struct migration *mig_find(agent_t *a, const char *op);
struct migration *mig_new(agent_t *a, const char *op, const char *id, bool source);
/* Takes m out of the list and frees it once its handles are closed. */
void mig_free(struct migration *m);
/* A guest.migrate.status about m (ref m->ref); err < 0 makes it "failed"
 * with the code of err and text. */
void mig_status(agent_t *a, const struct migration *m, const char *phase, const char *state,
                int err, const char *text);
/* The same for an op with no migration record. */
void mig_status_ref(agent_t *a, uint64_t ref, const char *op, const char *id, const char *phase,
                    const char *state, int err, const char *text);

/* agent_migrate_send.c */
void mig_send(agent_t *a, const struct msg *m);
void mig_abort_source(agent_t *a, const struct msg *m);
/* The sending thread's wake-up, on the loop. */
void mig_on_wake(uv_async_t *h);
/* Stops a running pass and waits for its thread (shutdown). */
void mig_stop_thread(struct migration *m);

/* Lane jobs on the guest (agent_migrate.c). */
enum mig_job_kind {
    MJ_FREEZE,  /* freeze (source), read the counters */
    MJ_THAW,    /* thaw (source abort) */
    MJ_COMMIT,  /* create, limits, start (target) */
    MJ_DESTROY, /* kill, thaw, destroy (source finish, target abort) */
    MJ_PACK,    /* export: write the guest's archive to path */
};
void mig_job(agent_t *a, struct migration *m, const char *id, enum mig_job_kind kind, uint64_t ref,
             const char *op, bool start);
/* The same with a file: MJ_COMMIT's archive to unpack (import), MJ_PACK's output. */
void mig_job_file(agent_t *a, const char *id, enum mig_job_kind kind, uint64_t ref, const char *op,
                  bool flag, const char *path);
/* The pack job is done (agent_migrate_send.c). */
void mig_packed(agent_t *a, struct migration *m, int result, const char *why);
/* The freeze job is done (agent_migrate_send.c). */
void mig_frozen(agent_t *a, struct migration *m, int result, const char *why,
                const struct guest_usage *run);
