/* The agent's local store: what this node knows about each of its guests, on
 * disk, so guests survive an agent restart (re-adopted by pid + start time)
 * and the node can tell the master what it has applied.
 *
 * Layout under the state directory (default STORE_DEFAULT_DIR):
 *   <dir>/lock               flock'd while a store is open: one agent per dir
 *   <dir>/guests/<id>.json   one record per guest (see below)
 *   <dir>/guests/.spare-<k>.json.tmp       a spare file for the next write (k <
 *                                          STORE_SPARES): an old record's text
 *   <dir>/guests/.<id>.json.tmp            an older agent's write in progress;
 *                                          removed on open
 *   <dir>/guests/<id>.json.corrupt-<ms>    a record that could not be read,
 *                                          set aside on open, never deleted
 *
 * A record is {"version":1,"spec":{...spec_json...},"applied_generation":3,
 * "desired":"running","runtime":{"pid":1234,"start_time":5678},
 * "baseline":{...usage_json...},"boot_id":"<uuid>",
 * "ids":{"uid_base":268435456,"uid_count":65536}}. boot_id tells, at
 * re-adoption, an init that exited while the agent was away (same boot) from
 * one the host's reboot ended. Unknown top-level keys are ignored so a newer
 * agent's records stay readable by an older one; the spec inside is read
 * strictly. A record without "ids" was written before guests had user
 * namespaces: it reads as legacy_ids (no block, the guest runs privileged
 * until it is recreated).
 *
 * Uid blocks: every guest that is not privileged holds one block of
 * BACKEND_UID_BLOCK host ids from STORE_UID_FIRST up, picked by the agent
 * (store_uid_block_pick) and kept in its record; store_put refuses a record
 * whose block overlaps another record's, so two guests never share ids while
 * both exist. A destroyed guest's block is free again.
 *
 * Writes are atomic and durable: the record goes into a spare file in the
 * same directory (rewritten in place and fdatasync'd), the spare is exchanged
 * with the record (renameat2 RENAME_EXCHANGE), and the directory is fsync'd,
 * so after a crash a record is either the old or the new one, whole. The old
 * record's file is then the spare of the next write, and a deleted record's
 * file becomes a spare (up to STORE_SPARES of them) that a new record takes:
 * the host's file system makes and frees no inode per write, nor per guest
 * created and destroyed in turn. (A put that made a temp file and renamed it
 * over the record made one and freed one each time: on an ext4 without a
 * journal, every inode allocation then steps over each inode freed in the
 * last seconds.) store_open keeps the spares, after one fsync of the
 * directory (an agent stopped between an exchange and its fsync); an older
 * agent removes them as the leftover temp files they look like. A file is
 * rewritten only while it is a spare, under an exclusive flock taken without
 * waiting; readers beside the agent (store_open_readonly) hold a shared one
 * on a record while they read it, so it cannot change under them: the agent
 * takes another spare instead.
 *
 * Threads: a store_t is not thread-safe; the agent uses it from one thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/backend.h"
#include "proto/spec.h"
#include "proto/usage.h"

#define STORE_DEFAULT_DIR "/var/lib/vfleet"
#define STORE_MAX_GUESTS  65536      /* records one store holds (PROTO_MAX_INVENTORY) */
#define STORE_MAX_RECORD  (1u << 20) /* bytes of one record file; larger is corrupt */
#define STORE_SPARES      64         /* spare files kept in <dir>/guests at most */
/* The first host id handed to guests: far above a host's own users and the
 * /etc/subuid ranges useradd hands out (100000 up), below 2^32. */
#define STORE_UID_FIRST (1u << 28)
/* Blocks between STORE_UID_FIRST and 2^32 - 1 (uid -1 is never valid). */
#define STORE_UID_BLOCKS ((uint32_t)((UINT32_MAX - STORE_UID_FIRST) / BACKEND_UID_BLOCK))

typedef struct store store_t;

/* The run state the master asked for. */
enum store_desired {
    STORE_DESIRED_STOPPED, /* "stopped" */
    STORE_DESIRED_RUNNING, /* "running" */
};

/* One guest as the node keeps it. A plain value. */
struct store_record {
    struct guest_spec spec;      /* the desired spec as last received */
    uint64_t applied_generation; /* the generation the node has applied to the backend */
    enum store_desired desired;  /* run state the master asked for */
    struct guest_runtime rt;     /* init pid + start time when running, zeros when not */
    struct guest_usage baseline; /* counter baselines carried across restarts */
    char boot_id[40];            /* the host's boot id when init was started, "" = unknown */
    struct guest_ids ids;        /* the guest's uid block, zeros when it has none */
    bool legacy_ids;             /* read from a record older than uid blocks (no "ids") */
};

/* A record file that store_open could not read and set aside. */
struct store_problem {
    char file[80];        /* the file's name in <dir>/guests */
    char quarantined[96]; /* the name it was renamed to, "" if the rename failed */
    int error;            /* why: -EBADMSG unreadable JSON, -EINVAL bad content, -EFBIG, ... */
    char detail[96];      /* the JSON error text or the bad field's name */
};

/* Opens (creating with mode 0700 as needed) the store in dir and loads every
 * record. Stray temp files are removed; spare files are kept. A record that
 * cannot be read is renamed to <name>.corrupt-<unix ms> and listed in
 * store_problems; the caller should log each at warning level. Returns the
 * number of such problems (>= 0) with *out set, or -errno: -EBUSY when
 * another store has dir open (even in this process), -EIO/-EACCES/... when
 * the directory cannot be used. */
int store_open(const char *dir, store_t **out);
/* Closes the store and frees it; NULL-safe, clears *s. Records are on disk already. */
/* Opens dir for reading only, without the lock, while an agent may own it
 * (vfleet-node ls, status, enter): each record is read whole, under a shared
 * flock on its file (see above). Nothing is written, moved or removed; put and delete return
 * -EROFS. Returns like store_open. */
int store_open_readonly(const char *dir, store_t **out);

/* Opens an empty store that lives in memory only: the same API, nothing read
 * or written on disk, no lock, records gone at store_close. For simulated
 * nodes (vfleet-node --sim-nodes), thousands per process, whose guests are
 * not real either. Returns 0 with *out set; never fails (allocation failure
 * aborts). */
int store_open_memory(store_t **out);

void store_close(store_t **s);

/* The problems store_open found: count, and each by index (valid until close). */
size_t store_problem_count(const store_t *s);
const struct store_problem *store_problem_at(const store_t *s, size_t i);

/* Whether a record of guest id was set aside as unreadable
 * (<id>.json.corrupt-<ms> in <dir>/guests, by this open or an earlier one):
 * 1 with the newest such file's name in name (n bytes, may be 0), 0 when
 * none (a memory store has none), or -errno when the directory cannot be
 * read. */
int store_set_aside(const store_t *s, const char *id, char *name, size_t n);

/* Looks a record up. The store keeps each spec packed (proto/spec_pack.h:
 * a few hundred bytes, not the 17 KB of struct guest_spec) and unpacks the
 * record asked for into one slot of its own: the pointer stays valid until
 * the next call on the store (lookups included); copy what you keep. NULL
 * when absent. */
const struct store_record *store_get(const store_t *s, const char *id);
/* The first record (in id order) whose spec has this name, or NULL
 * (unpacks each record in turn: for the CLI, not for a hot path). */
const struct store_record *store_find_by_name(const store_t *s, const char *name);

/* Writes a record (new or replacing the one with the same spec.id) durably,
 * then updates memory. Returns 0, -EINVAL when rec->spec fails spec_validate,
 * desired is out of range or ids is not a whole block in range, -EEXIST when
 * ids overlaps another record's block, -ENOSPC at STORE_MAX_GUESTS, or -errno
 * from the file system (memory is unchanged then). */
int store_put(store_t *s, const struct store_record *rec);
/* Removes a record from disk (durably) and memory. -ENOENT when absent. */
int store_delete(store_t *s, const char *id);

/* Iteration in id order: records 0 .. store_count()-1. Indices shift on put
 * and delete; a pointer is valid as for store_get, until the next call. */
size_t store_count(const store_t *s);
const struct store_record *store_at(const store_t *s, size_t i);

/* Picks the lowest free uid block: used holds the uid_base of every guest
 * that exists (0 entries are skipped). Returns 0 with *out filled, or
 * -ENOSPC when all STORE_UID_BLOCKS are taken. */
int store_uid_block_pick(const uint32_t *used, size_t n, struct guest_ids *out);

/* Whether spec can be applied to the guest of a record (its ids and
 * legacy_ids) without changing how its
 * ids work: a guest keeps the user namespace (or its absence) it was created
 * with, so a spec whose privileged flag disagrees with rec's block returns
 * false. A legacy record (no block, older than the flag) accepts any spec. */
bool store_ids_match(const struct guest_ids *ids, bool legacy_ids, const struct guest_spec *spec);

/* "running"/"stopped" and back (-EINVAL for anything else). */
const char *store_desired_name(enum store_desired d);
int store_desired_from_name(const char *name);
