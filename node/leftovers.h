/* A guest's leftovers: what the linux backend made of a guest in the state
 * directory (data/<id>: its disk image, mounts, and a cgroup under the node's
 * prefix) with no record of it in the store. A create the agent did not
 * finish leaves them (stopped before its first record write, or failed with
 * its clean-up failing too), and so does a record the store set aside as
 * unreadable. The agent kills what runs of them at every start and keeps the
 * rest (node/agent.c adopt_all): nothing of a guest is deleted because
 * a message was lost. `vfleet-node leftovers` lists them, `vfleet-node
 * leftovers remove ID --yes` removes one, never one the store has a record
 * of (docs/operations.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "node/backend.h"
#include "node/store.h"
#include "proto/spec.h"

/* One guest's leftovers. A plain value. */
struct leftover {
    char id[SPEC_ID_LEN + 1]; /* the guest's id (its directory's name under data/) */
    char set_aside[128];      /* its record set aside as unreadable in guests/, "" = none written */
    bool unreadable;          /* its record is in guests/ but unreadable, not set aside yet */
};

/* The leftovers in state_dir: each data/<id> directory (id a guest id) that
 * s, the store of state_dir, has no record of (unreadable is set when s,
 * opened read-only, found its record unreadable and left it in place: the
 * agent sets it aside at its next start), in id order, as a malloc'd
 * array in *out (the caller frees) of *n entries. No data directory: none.
 * Returns 0 or -errno. */
int leftovers_list(const char *state_dir, const store_t *s, struct leftover **out, size_t *n);

/* Checks that guest id's leftovers in state_dir may be removed, and holds
 * the store for it: opens it with its lock (in *out on success; the caller
 * keeps it open until it has removed them, then closes it), so that no
 * agent starts meanwhile and takes the guest up again. Refuses, changing
 * nothing: -EINVAL when id is not a guest id, -EALREADY while an agent (or
 * anything else) has the store open, -EEXIST when the store has a record of
 * id, -EUCLEAN when a record of it was set aside as unreadable (the guest
 * may be the master's still: its record is to be repaired or moved away
 * first), -ENOENT when id has no leftovers here. Returns 0 or -errno. */
int leftovers_claim(const char *state_dir, const char *id, store_t **out);

/* Removes guest id's leftovers with backend b: kills what runs, then
 * destroys (network, cgroup, mounts, disk image, directory). s is the store
 * leftovers_claim returned; -EEXIST, changing nothing, when it has a record
 * of id (or one set aside). Returns 0 or the backend's error. */
int leftovers_remove(const store_t *s, backend_t *b, const char *id);
