/* The master's durable state in SQLite: nodes, guests, IP pools and
 * allocations, idempotency keys.
 *
 * One connection, owned by the master's loop thread (the single writer);
 * nothing here locks, and a db_t must not be used from two threads. The file
 * runs in WAL mode with synchronous=FULL (a committed transaction survives
 * power loss) and foreign keys on. The schema is versioned with
 * PRAGMA user_version and migrated forward on open; a file written by a newer
 * master is refused rather than guessed at.
 *
 * The layer is agnostic of JSON shapes: specs, labels, kernel facts and pool
 * selectors are stored as the JSON text the caller hands in.
 *
 * Records passed to the list callbacks borrow their strings from SQLite and
 * are valid only during the call. Records filled by *_get own their strings;
 * release them with the matching *_clear.
 *
 * Every function returns >= 0 on success or -errno: -ENOENT (no such row),
 * -EEXIST (a unique key is taken), -EADDRINUSE (an address is taken), -EBUSY
 * (rows still refer to it), -ESTALE (compare-and-set lost), -EINVAL (bad
 * argument), -EIO/-ENOSPC/-EROFS (storage). db_errmsg() has SQLite's text for
 * the last failure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;

/* The schema version this build writes (the number of migrations). */
#define DB_SCHEMA_VERSION 14

enum db_node_state {
    DB_NODE_READY,   /* heartbeats arrive */
    DB_NODE_SUSPECT, /* heartbeats late */
    DB_NODE_DOWN,    /* heartbeats missing past the down threshold */
};

enum db_desired {
    DB_DESIRED_RUNNING, /* the guest should run */
    DB_DESIRED_STOPPED, /* the guest should exist but not run */
};

enum db_observed {
    DB_OBS_PENDING, /* not yet reported by its node */
    DB_OBS_RUNNING, /* running on its node */
    DB_OBS_STOPPED, /* created and stopped on its node */
    DB_OBS_UNKNOWN, /* its node is down */
    DB_OBS_LOST,    /* its node came back without it */
    DB_OBS_ORPHAN,  /* a node reported it but the master did not know it */
    DB_OBS_ERROR,   /* the node failed to apply it */
    DB__OBS_MAX,
};

const char *db_node_state_to_string(enum db_node_state s);
int db_node_state_from_string(const char *s); /* the enum value or -EINVAL */
const char *db_desired_to_string(enum db_desired d);
int db_desired_from_string(const char *s);
const char *db_observed_to_string(enum db_observed o);
int db_observed_from_string(const char *s);

struct db_node {
    char *name;               /* primary key, a name */
    char *labels;             /* JSON object of the node's labels */
    char *kernel;             /* JSON object of kernel facts from hello */
    uint64_t cpus;            /* CPU capacity in millicores */
    uint64_t memory;          /* memory capacity, bytes */
    uint64_t disk;            /* disk capacity for guest images, bytes */
    uint32_t max_guests;      /* guests this node accepts, 0 = unlimited */
    uint32_t max_addrs;       /* guest addresses this node accepts, 0 = unlimited */
    bool cordoned;            /* operator said: no new guests here */
    enum db_node_state state; /* last heartbeat state */
    uint64_t last_seen_ms;    /* wall clock of the last message, ms since epoch */
    uint64_t created_ms;      /* wall clock of the first hello */
    uint64_t updated_ms;      /* wall clock of the last change */
};

struct db_label {
    const char *key;   /* a name */
    const char *value; /* any text */
};

/* What a guest is charged to its project (its scheduler charge when it was
 * created or last changed). */
struct db_charge {
    uint64_t cpu;    /* millicores */
    uint64_t memory; /* bytes */
    uint64_t disk;   /* bytes */
    uint32_t addrs;  /* addresses */
};

struct db_guest {
    char *id;                    /* primary key, a UUID */
    char *name;                  /* unique, a name */
    char *node;                  /* the node it is placed on, NULL = unplaced */
    char *spec;                  /* the spec as JSON text */
    char *group;                 /* anti-affinity group, NULL = none */
    char *message;               /* last error text from the node, NULL = none */
    uint64_t generation;         /* bumped on every change, >= 1 */
    uint64_t applied_generation; /* highest generation the node acked */
    enum db_desired desired;     /* what the operator asked for */
    enum db_observed observed;   /* what the node last reported */
    uint64_t created_ms;         /* wall clock of creation */
    uint64_t updated_ms;         /* wall clock of the last change */
    bool deleting;               /* a DELETE was accepted: its node is told to destroy it */
    char *project;               /* the project it belongs to (NULL on insert = "default") */
    struct db_charge charge;     /* what it is charged to its project */
    bool charged;                /* charge is stored (rows from before schema 5 have none) */
};

struct db_pool {
    char *name;          /* primary key, a name */
    char *cidr;          /* the network, "10.0.0.0/24" */
    char *gateway;       /* gateway address, NULL = none */
    int family;          /* AF_INET or AF_INET6 */
    char *selector;      /* JSON object: node labels that must all match, "{}" = any node */
    uint64_t created_ms; /* wall clock of creation */
};

struct db_ip {
    char *address;       /* canonical text form (inet_ntop), primary key */
    char *pool;          /* the pool it came from */
    char *guest_id;      /* the guest it belongs to */
    uint64_t created_ms; /* wall clock of allocation */
};

struct db_idem {
    char *key;           /* the Idempotency-Key header, primary key */
    char *method;        /* HTTP method of the first request */
    char *path;          /* request path of the first request */
    char *request_hash;  /* hash of the first request's body, to spot key reuse */
    int status;          /* HTTP status of the stored response */
    char *body;          /* the stored response body */
    uint64_t created_ms; /* wall clock of the first request */
};

/* Where a guest's resettable traffic counter (FreeVPS trafstat) was last
 * reset: the node's cumulative counters at that moment. */
struct db_traffic_mark {
    uint64_t rx_bytes;   /* cumulative bytes into the guest at the reset */
    uint64_t tx_bytes;   /* cumulative bytes out of the guest at the reset */
    uint64_t rx_packets; /* cumulative packets in at the reset */
    uint64_t tx_packets; /* cumulative packets out at the reset */
    uint64_t since_ms;   /* wall clock of the reset */
};

/* One event: what happened, in the order of its sequence number. */
struct db_event {
    uint64_t seq;         /* its sequence number (assigned by the store, increasing) */
    uint64_t time_ms;     /* wall clock, ms since epoch (0 = now, on insert) */
    const char *type;     /* "guest.state", "node.state", ... (docs/api.md lists them) */
    const char *node;     /* the node it concerns, NULL = none */
    const char *guest_id; /* the guest it concerns, NULL = none */
    const char *guest;    /* that guest's name, NULL = none */
    const char *message;  /* a sentence for people, NULL = none */
    const char *data;     /* a JSON object with the details, NULL = none */
    const char *project;  /* the guest's project (on insert, NULL = the guest row's), NULL = none */
};

/* Opens (creating if needed) and migrates the database. path may be
 * ":memory:". On failure, when err is not NULL, a sentence for the operator
 * goes there. Returns 0, -EPROTONOSUPPORT when the file's schema is newer than
 * DB_SCHEMA_VERSION, -EBADMSG when it is not a usable database, or -errno. */
int db_open(const char *path, db_t **out, char *err, size_t errlen);
/* Closes; NULL-safe, clears *pdb. An open transaction is rolled back. */
void db_destroy(db_t **pdb);
/* SQLite's message for the last failure on this connection. */
const char *db_errmsg(db_t *db);
/* The schema version stored in the file. */
int db_schema_version(db_t *db);
/* The journal mode in use ("wal" normally; "memory" for ":memory:"). Owned by db. */
const char *db_journal_mode(db_t *db);

/* Transactions nest: the outermost begin is BEGIN IMMEDIATE, inner ones are
 * savepoints. Every mutating function below runs in its own (nested)
 * transaction, so a caller can group several into one atomic change.
 * Rollback of a savepoint undoes only what happened since its begin. */
int db_begin(db_t *db);
int db_commit(db_t *db);
int db_rollback(db_t *db);
/* Depth of open transactions, 0 = none. */
unsigned db_tx_depth(db_t *db);
/* Whether the store takes writes now: a write lock normally, a real write
 * when the last commit failed (a full disk that may have room again).
 * Returns 0 or the -errno of the failure (-ENOSPC, -EROFS, ...). */
int db_probe_write(db_t *db);
/* Why the transaction whose rollback is being reported was undone: the
 * -errno of a failed commit (-ENOSPC for a full disk), or -ECANCELED for a
 * rollback the caller asked for. Meaningful inside a DB_TX_ROLLBACK hook. */
int db_tx_error(db_t *db);

enum db_tx_event {
    DB_TX_BEGIN,    /* a transaction or savepoint opened at depth */
    DB_TX_COMMIT,   /* the one at depth was committed (released, for a savepoint) */
    DB_TX_ROLLBACK, /* the one at depth was rolled back */
};
/* Lets an in-memory index mirror the database: fn is called after each
 * transaction event with the depth it concerns (1 = outermost). A module that
 * updates memory inside a transaction keeps an undo log and replays it on
 * DB_TX_ROLLBACK. At most 8 hooks; returns -ENOSPC beyond. */
int db_tx_hook_add(db_t *db, void (*fn)(void *userdata, enum db_tx_event ev, unsigned depth),
                   void *userdata);
void db_tx_hook_remove(db_t *db, void *userdata);

/* ---- nodes ---- */

/* Inserts or updates a node from its hello: capacity, labels, kernel facts,
 * state, last_seen. Keeps cordoned and created_ms of an existing row. */
int db_node_upsert(db_t *db, const struct db_node *n);
int db_node_set_state(db_t *db, const char *name, enum db_node_state state, uint64_t last_seen_ms);
int db_node_set_cordoned(db_t *db, const char *name, bool cordoned);
/* -EBUSY while guests are placed on it. */
int db_node_delete(db_t *db, const char *name);
int db_node_get(db_t *db, const char *name, struct db_node *out);
void db_node_clear(struct db_node *n);
/* Calls cb for nodes in name order with name > after (NULL = from the start),
 * at most limit (0 = all). cb returning nonzero stops the walk, and a negative
 * value is returned. Returns the number of rows visited or -errno. */
int db_node_list(db_t *db, const char *after, unsigned limit,
                 int (*cb)(void *userdata, const struct db_node *n), void *userdata);

/* ---- guests ---- */

/* Labels are written to an index table for label filters; they are not read
 * back (the spec carries them). */
int db_guest_insert(db_t *db, const struct db_guest *g, const struct db_label *labels,
                    size_t n_labels);
/* Replaces node, spec, group, desired state and labels and sets generation to
 * g->generation, only when the stored generation is expect_generation
 * (compare-and-set: -ESTALE otherwise). g->generation must be greater. */
int db_guest_update(db_t *db, const struct db_guest *g, const struct db_label *labels,
                    size_t n_labels, uint64_t expect_generation);
/* What the node reported; message may be NULL. */
int db_guest_set_observed(db_t *db, const char *id, enum db_observed observed, const char *message);
/* The same, and the applied generation raised to gen (0: left as it is) in
 * the same row write. */
int db_guest_set_observed_applied(db_t *db, const char *id, enum db_observed observed,
                                  const char *message, uint64_t gen);
/* Raises applied_generation to gen (never lowers it). */
int db_guest_set_applied(db_t *db, const char *id, uint64_t gen);
/* Sets the desired state without a new generation: the node reports it
 * (a guest that halted by itself), so there is nothing to send it. */
int db_guest_set_desired(db_t *db, const char *id, enum db_desired desired);
/* Marks the guest as being deleted (durably, before its node is told). */
int db_guest_set_deleting(db_t *db, const char *id);
/* Stores a guest's charge (a row from before schema 5, charged at start). */
int db_guest_set_charge(db_t *db, const char *id, const struct db_charge *c);
/* Whether context is held on node by something the store does not show (a
 * move's target, until the guest's row follows it). */
typedef bool (*db_context_held_fn)(void *userdata, const char *node, uint32_t context);
/* The smallest context number (>= SPEC_MIN_CONTEXT) no guest of node has
 * and held (NULL: none) does not hold, in the caller's transaction (so
 * guests created in it count). Numbers are unique per node (schema 13).
 * -ENOSPC past SPEC_MAX_CONTEXT. */
int db_guest_free_context(db_t *db, const char *node, db_context_held_fn held, void *userdata,
                          uint32_t *out);
/* 1 when a guest of node holds context, 0 when none does, or -errno. */
int db_guest_context_taken(db_t *db, const char *node, uint32_t context);
/* Deletes the guest, its labels and its address allocations. */
int db_guest_delete(db_t *db, const char *id);
int db_guest_get_by_id(db_t *db, const char *id, struct db_guest *out);
int db_guest_get_by_name(db_t *db, const char *name, struct db_guest *out);
/* The few columns an acknowledgement needs, without the spec: id, name,
 * node, generation, applied_generation, desired, observed, deleting and
 * project (its events carry it; the other pointers are NULL). Cleared with
 * db_guest_clear. */
int db_guest_get_state(db_t *db, const char *id, struct db_guest *out);
void db_guest_clear(struct db_guest *g);

struct db_guest_filter {
    const char *node;        /* only guests on this node, NULL = any */
    int observed;            /* only this enum db_observed, -1 = any */
    const char *label_key;   /* only guests with this label ... */
    const char *label_value; /* ... set to this value (both or neither) */
    const char *project;     /* only guests of this project, NULL = any */
    const char *after;       /* page cursor: names greater than this, NULL = start */
    unsigned limit;          /* page size, 0 = all */
};
/* Guests in name order matching every set filter; as db_node_list. Each
 * filter combination has its own prepared statement that uses an index. */
int db_guest_list(db_t *db, const struct db_guest_filter *f,
                  int (*cb)(void *userdata, const struct db_guest *g), void *userdata);

/* A guest as the metrics exposition sees it: what its labels need and no
 * more (no spec to parse). Strings are borrowed for the callback. */
struct db_guest_brief {
    const char *id;            /* its id */
    const char *name;          /* its name */
    const char *node;          /* its node, NULL = unplaced */
    const char *project;       /* its project */
    enum db_observed observed; /* what its node last reported */
    uint32_t context;          /* its FreeVPS context number, 0 = none */
};
/* Guests in name order, of node and of project when not NULL; as
 * db_guest_list. The context is read by SQLite from the stored spec. */
int db_guest_brief_list(db_t *db, const char *node, const char *project,
                        int (*cb)(void *userdata, const struct db_guest_brief *g), void *userdata);
/* Adds to counts[o] the guests in each observed state, of node and of
 * project when not NULL. Returns 0 or -errno. */
int db_guest_count_states(db_t *db, const char *node, const char *project,
                          uint64_t counts[DB__OBS_MAX]);

/* ---- pools and addresses ---- */

int db_pool_insert(db_t *db, const struct db_pool *p);
/* -EBUSY while addresses of the pool are allocated. */
int db_pool_delete(db_t *db, const char *name);
int db_pool_get(db_t *db, const char *name, struct db_pool *out);
void db_pool_clear(struct db_pool *p);
int db_pool_list(db_t *db, int (*cb)(void *userdata, const struct db_pool *p), void *userdata);

/* -EADDRINUSE when the address is allocated already (the primary key says so). */
int db_ip_insert(db_t *db, const char *address, const char *pool, const char *guest_id);
int db_ip_delete(db_t *db, const char *address);
/* Addresses of one pool, or of one guest (the other argument NULL). */
int db_ip_list(db_t *db, const char *pool, const char *guest_id,
               int (*cb)(void *userdata, const struct db_ip *ip), void *userdata);
/* Number of addresses allocated to a guest. */
int db_ip_count_guest(db_t *db, const char *guest_id);

/* ---- idempotency keys ---- */

/* -EEXIST when the key is stored already. */
int db_idem_put(db_t *db, const struct db_idem *r);
int db_idem_get(db_t *db, const char *key, struct db_idem *out);
void db_idem_clear(struct db_idem *r);
/* Deletes keys created before before_ms; returns how many. */
int db_idem_expire(db_t *db, uint64_t before_ms);

/* ---- events ---- */

/* Appends an event; *seq (may be NULL) gets its sequence number. */
int db_event_insert(db_t *db, const struct db_event *e, uint64_t *seq);
/* The project of the guest guest_id into out: 0, -ENOENT (no such guest). */
int db_event_project_of(db_t *db, const char *guest_id, char *out, size_t n);
/* Events with seq > after, oldest first, at most limit (0 = all); the
 * records borrow their strings for the call. Returns rows visited or -errno. */
int db_event_list(db_t *db, uint64_t after, unsigned limit,
                  int (*cb)(void *userdata, const struct db_event *e), void *userdata);
/* Events with seq < before, newest first, at most limit (0 = all). */
int db_event_list_before(db_t *db, uint64_t before, unsigned limit,
                         int (*cb)(void *userdata, const struct db_event *e), void *userdata);
/* Deletes events older than before_ms, and those more than keep (0 = no
 * bound) behind last, never one above last (the newest committed).
 * Returns events deleted or -errno. */
int db_event_expire(db_t *db, uint64_t before_ms, uint64_t keep, uint64_t last);
/* The oldest sequence number stored (0 when none is) and the newest ever
 * given, also when retention dropped it (0 when none ever was). */
int db_event_bounds(db_t *db, uint64_t *first, uint64_t *last);

/* ---- projects ---- */

/* A project's limits; 0 = no limit. */
struct db_quota {
    uint64_t guests; /* guests */
    uint64_t cpu;    /* millicores charged */
    uint64_t memory; /* bytes charged */
    uint64_t disk;   /* bytes charged */
    uint64_t addrs;  /* addresses held */
};

struct db_project {
    char *name;            /* primary key, a name */
    struct db_quota quota; /* its limits */
    uint64_t created_ms;   /* wall clock of creation */
};

/* -EEXIST when the name is taken. */
int db_project_insert(db_t *db, const struct db_project *p);
/* Replaces the quota. -ENOENT when there is no such project. */
int db_project_set_quota(db_t *db, const char *name, const struct db_quota *q);
/* -EBUSY while guests or tokens belong to it. */
int db_project_delete(db_t *db, const char *name);
int db_project_get(db_t *db, const char *name, struct db_project *out);
void db_project_clear(struct db_project *p);
/* Every project in name order. */
int db_project_list(db_t *db, int (*cb)(void *userdata, const struct db_project *p),
                    void *userdata);
/* What the project's guests are charged, as a quota's fields (guests = their
 * count). */
int db_project_usage(db_t *db, const char *name, struct db_quota *out);

/* ---- API tokens ---- */

struct db_token {
    char *id;            /* primary key, a name (shown, never secret) */
    char *hash;          /* SHA-256 of the secret token, hex */
    char *role;          /* "admin", "operator" or "tenant" */
    char *project;       /* a tenant's project, NULL for the other roles */
    char *description;   /* the operator's note, NULL = none */
    uint64_t created_ms; /* wall clock of creation */
    uint64_t expires_ms; /* wall clock of expiry, 0 = never */
};

/* -EEXIST when the id or hash is taken, -ENOENT for an unknown project. */
int db_token_insert(db_t *db, const struct db_token *t);
/* -ENOENT when there is no such token. */
int db_token_delete(db_t *db, const char *id);
int db_token_get_by_hash(db_t *db, const char *hash, struct db_token *out);
void db_token_clear(struct db_token *t);
/* Every token in id order. */
int db_token_list(db_t *db, int (*cb)(void *userdata, const struct db_token *t), void *userdata);
/* ---- what nodes sent (their outboxes' de-duplication) ---- */

/* Records that node's message id (its frame's hash) is handled. Returns 0
 * when it is new (recorded now), 1 when the same message was handled
 * already, or -errno. The same id with another hash (a node whose clock
 * went back) counts as new and replaces the old row. */
int db_node_msg_once(db_t *db, const char *node, uint64_t id, uint64_t hash);
/* Forgets messages handled before before_ms; returns how many. */
int db_node_msg_expire(db_t *db, uint64_t before_ms);

/* ---- orphans: guests a node has that the master does not manage ---- */

struct db_orphan {
    char *node;          /* the node that has it */
    char *id;            /* the guest's id */
    char *name;          /* its name on the node */
    uint64_t generation; /* the generation the node reported */
    bool running;        /* its init runs, as last reported */
    bool seen;           /* the node reported it (false: forgotten with force, not seen since) */
    char *spec;          /* its spec as JSON, NULL = not known (yet) */
    char *reason;        /* why it is an orphan, a sentence */
    uint64_t since_ms;   /* wall clock when it became one */
};

/* Inserts or replaces the orphan (node, id). */
int db_orphan_put(db_t *db, const struct db_orphan *o);
/* -ENOENT when there is none. */
int db_orphan_get(db_t *db, const char *node, const char *id, struct db_orphan *out);
int db_orphan_delete(db_t *db, const char *node, const char *id);
void db_orphan_clear(struct db_orphan *o);
/* Orphans of node (NULL = every node), by name; as db_node_list. */
int db_orphan_list(db_t *db, const char *node, int (*cb)(void *userdata, const struct db_orphan *o),
                   void *userdata);

/* ---- addresses held by orphans ---- */

struct db_hold {
    char *address;       /* canonical text form, primary key (never also in ip_allocs) */
    char *pool;          /* the pool it belongs to */
    char *node;          /* the orphan's node */
    char *guest_id;      /* the orphan's id */
    uint64_t created_ms; /* wall clock of the hold */
};

/* -EADDRINUSE when the address is allocated or held already. */
int db_hold_insert(db_t *db, const char *address, const char *pool, const char *node,
                   const char *guest_id);
int db_hold_delete(db_t *db, const char *address);
/* Holds of one pool, or of one orphan (pool NULL, node and guest_id set). */
int db_hold_list(db_t *db, const char *pool, const char *node, const char *guest_id,
                 int (*cb)(void *userdata, const struct db_hold *h), void *userdata);

/* A pool's auto-allocation cursor (the next offset never handed out). */
int db_pool_set_cursor(db_t *db, const char *name, uint64_t cursor);
int db_pool_get_cursor(db_t *db, const char *name, uint64_t *cursor);

/* The guest's traffic mark: 0, or -ENOENT when its counter was never reset. */
int db_traffic_mark_get(db_t *db, const char *guest_id, struct db_traffic_mark *out);
/* Sets the guest's traffic mark (replacing any); the row goes with the guest. */
int db_traffic_mark_put(db_t *db, const char *guest_id, const struct db_traffic_mark *m);

/* ---- the node link's trust: node keys and join tokens ---- */

#define DB_KEY_SIZE      41 /* a CurveZMQ key in Z85 text + NUL */
#define DB_TOKEN_ID_SIZE 17 /* a join token's id, 16 hex digits + NUL */

/* The CurveZMQ public key a node joined with. */
struct db_node_key {
    char name[64];                /* the node (primary key) */
    char public_key[DB_KEY_SIZE]; /* its public key, Z85 (unique) */
    char token[DB_TOKEN_ID_SIZE]; /* the join token it joined with, "" if none */
    uint64_t created_ms;          /* when it joined */
};

/* A join token, without its secret (the master never keeps that). */
struct db_join_token {
    char id[DB_TOKEN_ID_SIZE];    /* 16 hex digits (primary key) */
    char public_key[DB_KEY_SIZE]; /* the token's public key, Z85 (unique) */
    char node[64];                /* the only node it joins, "" = any name */
    uint64_t created_ms;          /* when it was made */
    uint64_t expires_ms;          /* when it stops working */
    char used_by[64];             /* the node that joined with it, "" = unused */
    uint64_t used_ms;             /* when, 0 = unused */
};

/* -EEXIST when the node or the key has a row already. */
int db_node_key_insert(db_t *db, const struct db_node_key *k);
/* 0, or -ENOENT. */
int db_node_key_get(db_t *db, const char *name, struct db_node_key *out);
int db_node_key_delete(db_t *db, const char *name);
int db_node_key_list(db_t *db, int (*cb)(void *userdata, const struct db_node_key *k),
                     void *userdata);

/* -EEXIST when the id or key is taken. */
int db_join_token_insert(db_t *db, const struct db_join_token *t);
int db_join_token_get(db_t *db, const char *id, struct db_join_token *out);
/* Marks the token used by node at now_ms; -ESTALE when it was used already
 * (compare-and-set on used_by), -ENOENT when there is no such token. */
int db_join_token_use(db_t *db, const char *id, const char *node, uint64_t now_ms);
int db_join_token_list(db_t *db, int (*cb)(void *userdata, const struct db_join_token *t),
                       void *userdata);
/* Deletes the tokens that expired before before_ms, calling cb (may be NULL)
 * with each first; returns how many. */
int db_join_token_purge(db_t *db, uint64_t before_ms,
                        int (*cb)(void *userdata, const struct db_join_token *t), void *userdata);
