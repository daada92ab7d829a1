/* The guest domain: what the master does to a guest, with no HTTP in it.
 *
 * Every function returns >= 0 or -errno, and on failure fills a struct
 * guest_err with the bad field and a sentence; the HTTP edge (api.h)
 * maps the errno to a status. The codes the edge relies on:
 *   -EINVAL, -E2BIG  a bad request (field says which)
 *   -ENOENT          no such guest (or node, or address), or one of
 *                    another project, which a tenant never learns of
 *   -EACCES          the caller's role may not do this (a tenant adding
 *                    capabilities, setting a flag other than lock, pinning
 *                    a node)
 *   -EDQUOT          the project's quota (field "quota.memory", ...)
 *   -EEXIST, -EADDRINUSE, -EBUSY, -ESTALE, -ENOLCK  a conflict with the
 *                    guest's state (locked, being deleted, changed meanwhile)
 *   -EXFULL          no node can take it (err->placement explains)
 *   -EAGAIN          no node is ready now: retry (err->placement explains)
 *   -EHOSTUNREACH    its node is not connected
 *   -ENOSPC, -EIO, -EROFS ...  the store could not take the change
 *
 * Changes are made in a transaction (a savepoint inside the caller's when
 * the caller holds one open, as the HTTP edge does to store an idempotency
 * key with the change). Scheduler charges and addresses follow it
 * (charges.h, ipam.h), and what the node must be told goes out only after
 * the outermost commit (oncommit.h): a rollback leaves nothing behind.
 *
 * Every operation a caller asks takes its identity (struct caller,
 * auth.h): a tenant sees, changes and creates guests of its own project
 * only. A NULL caller is the master itself (a revert after a node's
 * refusal), which no role or quota restricts.
 *
 * Parsed specs are cached by guest id and generation, so a lookup reads the
 * row but parses its JSON spec only when it changed.
 *
 * Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "master/auth.h"
#include "master/core.h"
#include "master/ipam.h"
#include "master/projects.h"
#include "proto/spec.h"

/* The flags a tenant may set or clear; every other flag (private, and any
 * added later) is the operators'. */
#define GUESTS_TENANT_FLAGS SPEC_FLAG_LOCK

struct guest_err {
    const char *field;          /* the bad field (static, the request's or field_buf), NULL */
    char field_buf[64];         /* room for a field name the parser reports */
    char message[256];          /* what went wrong, for the client */
    bool placement;             /* a placement failed: result explains it */
    bool pin_unknown;           /* the pinned node does not exist */
    char pin[NAME_MAX_LEN + 1]; /* the node the placement was pinned to, "" = none */
    struct sched_result result; /* the scheduler's explanation */
};

/* Fills e and returns err (negative). */
int guest_fail(struct guest_err *e, int err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- provisioning (guest_provision.c) ---- */

/* In a create or patch body's spec (JSON, changed in place): a "provision"
 * member's "password" in clear becomes "password_hash" (yescrypt), null
 * becomes "!" (no password login). Returns 0 or -EINVAL (both given, not a
 * string, empty, over 512 bytes) with e set; -EIO when libcrypt fails. */
int guest_provision_input(json_t *spec, struct guest_err *e);
/* In a guest's JSON for the API: "provision.password_hash" becomes
 * "provision.password", true when a password is set. */
void guest_provision_view(json_t *guest);

/* ---- rebuild (guest_rebuild.c) ---- */

/* Reinstalls stopped guest g (row and spec cur, loaded by the caller) from
 * tmpl (NULL: its own template): next gets the new spec, stored and sent as
 * a new generation. -EBUSY when it is not stopped or its node lacks tmpl,
 * -ENOLCK when locked, -EHOSTUNREACH when its node is not connected,
 * -EINVAL for a bad name; e says which. */
int guests_rebuild(master_t *m, const struct caller *c, struct db_guest *g, struct guest_spec *cur,
                   const char *tmpl, struct guest_spec *next, struct guest_err *e);

/* ---- reading ---- */

/* Whether c may see guest g (a tenant: only its project's). */
bool guests_visible(const struct caller *c, const struct db_guest *g);
/* A guest by name (id NULL) or id (name NULL), its row (the caller clears
 * it with db_guest_clear) and its spec. -ENOENT (also for a guest c may not
 * see), -EBADMSG (an unreadable stored spec) or -errno. */
int guests_load(master_t *m, const struct caller *c, const char *name, const char *id,
                struct db_guest *g, struct guest_spec *spec);
/* The spec of a row the caller read (a list callback). 0 or -EBADMSG. */
int guests_spec(master_t *m, const struct db_guest *g, struct guest_spec *spec);
/* The API's view of a guest, NULL when it is gone. */
json_t *guests_json(master_t *m, const char *id);
/* What a spec charges its node. */
void guests_resources(master_t *m, const struct guest_spec *s, struct sched_resources *res);

/* Charges the guests of a store from before projects (schema 5) to their
 * project; at start, before any request. */
int guests_charge_legacy(master_t *m);

/* A DELETE of the guest was accepted (recorded, or its destroy queued). */
bool guests_deleting(master_t *m, const struct db_guest *g);

/* -EACCES unless c may change the admin-only flags between before and
 * after (privileged, nesting). */
int guests_admin_flags(const struct caller *c, uint32_t before, uint32_t after,
                       struct guest_err *e);

/* ---- create ---- */

/* A create as the API asks it, parsed. */
struct guest_create_req {
    struct guest_spec spec;                    /* the guest (id and generation are chosen here) */
    struct sched_label cons[SCHED_MAX_LABELS]; /* node labels that must match */
    size_t n_cons;                             /* entries in cons */
    const char *pin;                           /* only this node, NULL = any */
    const char *group;                         /* anti-affinity group, NULL = none */
    enum sched_algo algo;                      /* SCHED_DEFAULT = the cluster's */
    struct ipam_request ips[SPEC_MAX_ADDRS];   /* addresses to allocate */
    size_t n_ips;                              /* entries in ips */
    const char *project;                       /* its project, NULL = the caller's (a
                                                  tenant's) or "default" */
    bool quiet; /* an import: its operation tells the node, not an apply and a start */
};

/* A guest just created: its row and spec as stored. */
struct guest_created {
    struct guest_spec spec;         /* as stored, with its id and addresses */
    char node[NAME_MAX_LEN + 1];    /* where it goes */
    char group[NAME_MAX_LEN + 1];   /* its group, "" = none */
    char project[NAME_MAX_LEN + 1]; /* its project */
    struct db_guest row;            /* the stored row (its strings point into this struct) */
    json_t *spec_json;              /* the spec's tree the row's text came from, owned, or NULL */
};

/* Validates (what c may ask), places, allocates, stores one guest and
 * checks its project's quota. Its apply and start go to the node once the
 * outermost transaction commits. */
int guests_create(master_t *m, const struct caller *c, const struct guest_create_req *rq,
                  struct guest_created *out, struct guest_err *e);
/* The API's view of a created guest, from what create built: it takes
 * c->spec_json (built once for the row's text) instead of encoding the
 * spec a second time. */
json_t *guests_created_json(struct guest_created *c);
/* The spec's tree of a created guest (c->spec_json taken, or built). */
json_t *guests_created_spec_json(struct guest_created *c);

/* ---- change ---- */

/* Stores next as the guest's new spec (a new generation) after checking
 * what c may change, that its node can take any growth and that its
 * project's quota allows it; the node gets it after the commit. g is
 * updated to the new generation. */
int guests_change(master_t *m, const struct caller *c, struct db_guest *g,
                  const struct guest_spec *cur, struct guest_spec *next, struct guest_err *e);

/* The node refused generation gen: stores before as the next generation,
 * unless the guest changed since gen (then the newer change stands). */
int guests_revert(master_t *m, const char *id, uint64_t gen, const struct guest_spec *before);

/* ---- lifecycle ---- */

enum guest_op { GUEST_START, GUEST_STOP, GUEST_RESTART };

/* Sets the desired state for op (a new generation when it changes) and
 * sends the commands after the commit. *g and *spec are the guest after
 * the change (the caller clears g). -ENOLCK for a start of a locked guest,
 * -EBUSY while it is being deleted, -ESTALE when it has no node, is lost or
 * its node is down. */
int guests_lifecycle(master_t *m, const struct caller *c, const char *name, enum guest_op op,
                     struct db_guest *g, struct guest_spec *spec, struct guest_err *e);

/* ---- delete ---- */

/* Deletes a guest. Returns 0 when the record is gone already (no node, a
 * lost guest, force), 1 when the destroy was sent to the node and the
 * record goes with its ack (id and node are filled for the caller's wait),
 * or -errno (-EHOSTUNREACH: the node is not connected and force is off). */
int guests_delete(master_t *m, const struct caller *c, const char *name, bool force,
                  char id[SPEC_ID_LEN + 1], char node[NAME_MAX_LEN + 1], struct guest_err *e);
/* Deletes a guest's record, addresses, charge, outbox and usage. */
int guests_remove(master_t *m, const char *id);

/* ---- exec ---- */

/* Sends argv to the guest's node (at once: an exec is not a change of
 * state). *ref is the command's request id, node its node. */
int guests_exec(master_t *m, const struct caller *c, const char *name, char **argv, uint32_t argc,
                uint32_t timeout_ms, uint64_t *ref, char node[NAME_MAX_LEN + 1],
                char id[SPEC_ID_LEN + 1], struct guest_err *e);

/* Asks the guest's node for the last max_bytes of its console (0 = 64 KiB,
 * at most PROTO_MAX_CONSOLE), as for exec. */
int guests_console(master_t *m, const struct caller *c, const char *name, uint32_t max_bytes,
                   uint64_t *ref, char node[NAME_MAX_LEN + 1], char id[SPEC_ID_LEN + 1],
                   struct guest_err *e);

/* ---- addresses (guest_addrs.c) ---- */

/* One more address from a pool that serves the guest's node; out_id gets
 * the guest's id. */
int guests_ip_add(master_t *m, const struct caller *c, const char *name,
                  const struct ipam_request *rq, char out_id[SPEC_ID_LEN + 1], struct guest_err *e);
/* The address goes back to its pool. */
int guests_ip_del(master_t *m, const struct caller *c, const char *name, const char *addr,
                  char out_id[SPEC_ID_LEN + 1], struct guest_err *e);

/* ---- what the nodes report ---- */

/* Records the guest's observed state (and the node's reason), with an event
 * when it changed from g->observed, and answers whoever waits for it. */
void guests_observed(master_t *m, const struct db_guest *g, enum db_observed obs,
                     const char *message);
/* The same with the generation the node acked (0: none), in one row write. */
void guests_observed_applied(master_t *m, const struct db_guest *g, enum db_observed obs,
                             const char *message, uint64_t applied);
/* The same for a guest known by its id only. */
void guests_observed_id(master_t *m, const char *id, enum db_observed obs, const char *message);

/* An event a node sent about a guest (guest_reports.c): started, stopped,
 * exited (with the desired state the node decided), about a managed guest or
 * an orphan. Never starts anything. */
void guests_node_event(master_t *m, const char *node, const struct msg_event *e);

/* ---- orphans (guest_orphans.c): guests a node has that the master does
 * not manage. Their addresses are held (ipam.h) until the operator adopts or
 * destroys them; each change is an event. ---- */

/* A guest deleted with force while its node is unreachable: its record
 * goes, its copy on the node is expected as an orphan holding its
 * addresses and the spec. Returns 0 or -errno. */
int guests_forget(master_t *m, const char *id);
/* The node reports a guest the master does not manage (item). Returns 1 when
 * the orphan is new or has no spec yet (ask the node for it), 0, or -errno. */
int guests_orphan_seen(master_t *m, const char *node, const struct msg_inventory_item *item);
/* The orphan's spec, from its node: stored, its free addresses held. */
void guests_orphan_spec(master_t *m, const char *node, const struct guest_spec *spec);
/* The orphan is gone from its node (destroyed there, or not reported). */
void guests_orphan_gone(master_t *m, const char *node, const char *id, const char *why);
/* An event about a guest of node the master does not manage. */
void guests_orphan_event(master_t *m, const char *node, const struct msg_event *e);
/* The orphans of node (NULL = all) as the API shows them. */
json_t *guests_orphans_json(master_t *m, const char *node);
/* Adds the orphans of node to an inventory digest and its counts. */
void guests_orphans_digest(master_t *m, const char *node, uint64_t *digest, uint32_t *n,
                           uint32_t *running);
/* Back under the master with its spec, desired state as it runs, and the
 * addresses that are free (the others leave its spec, which the node is
 * sent). name gets its name. -ENOENT, -EAGAIN (its spec has not come from
 * the node yet), -EEXIST (its name is taken), -EHOSTUNREACH. */
int guests_adopt(master_t *m, const char *node, const char *id, char name[NAME_MAX_LEN + 1],
                 struct guest_err *e);
/* Sends the orphan's destroy to its node; it goes with the ack. -ENOENT,
 * -EHOSTUNREACH (the node is not connected). */
int guests_destroy_orphan(master_t *m, const char *node, const char *id, struct guest_err *e);

/* ---- to the node, after the commit ---- */

/* Queues the guest's spec for its node once the open transaction commits. */
void guests_send_apply(master_t *m, const char *node, const struct guest_spec *spec);
/* The same as guest.apply.start: the apply and the start, one answer (an
 * older node gets the two commands: dispatch.h). */
void guests_send_apply_start(master_t *m, const char *node, const struct guest_spec *spec);
/* Queues start, stop or destroy of a guest at a generation, the same way. */
void guests_send(master_t *m, const char *node, enum msg_type type, const char *id, uint64_t gen);

/* ---- the spec cache ---- */

void guests_cache_new(master_t *m);
void guests_cache_free(master_t *m);
/* Forgets a guest's cached spec. */
void guests_cache_forget(master_t *m, const char *id);
/* Keeps a guest's spec as stored at generation, so the next read of the
 * guest (guests_spec) copies it instead of parsing the stored text. Call it
 * only after the commit that stored exactly this spec at that generation. */
void guests_cache_put(master_t *m, const char *id, uint64_t generation,
                      const struct guest_spec *spec);
