/* Tests for master/db: migrations, durability across reopen, refusal of a
 * newer schema, uniqueness, idempotency keys, WAL, lists and transactions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "master/db.h"
#include "master/db_int.h"
#include <sys/stat.h>

struct fx {
    char dir[64];  /* a private temporary directory */
    char path[96]; /* the database file inside it */
    db_t *db;      /* open on path */
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/vfleet-db-test-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
    assert_int_equal(db_open(f->path, &f->db, NULL, 0), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char p[128];

    db_destroy(&f->db);
    assert_null(f->db);
    snprintf(p, sizeof(p), "%s", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
add_node(db_t *db, const char *name)
{
    struct db_node n = {.name = (char *)name,
                        .labels = "{\"zone\":\"a\"}",
                        .cpus = 4000,
                        .memory = 1ULL << 33,
                        .disk = 1ULL << 36,
                        .state = DB_NODE_READY};
    assert_int_equal(db_node_upsert(db, &n), 0);
}

static int
add_guest(db_t *db, const char *id, const char *name, const char *node)
{
    struct db_guest g = {.id = (char *)id,
                         .name = (char *)name,
                         .node = (char *)node,
                         .spec = "{\"name\":\"x\"}",
                         .generation = 1,
                         .desired = DB_DESIRED_RUNNING,
                         .observed = DB_OBS_PENDING};
    return db_guest_insert(db, &g, NULL, 0);
}

static int
sql_int(const char *path, const char *sql)
{
    sqlite3 *c;
    sqlite3_stmt *s;
    int v = -1;

    assert_int_equal(sqlite3_open(path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(c);
    return v;
}

static void
test_migrate_from_empty(void **state)
{
    struct fx *f = *state;

    assert_int_equal(db_schema_version(f->db), DB_SCHEMA_VERSION);
    assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' "
                                      "AND name IN ('nodes', 'guests', 'guest_labels', 'pools', "
                                      "'ip_allocs', 'idempotency')"),
                     6);
    /* Opening again is a no-op migration. */
    db_destroy(&f->db);
    assert_int_equal(db_open(f->path, &f->db, NULL, 0), 0);
    assert_int_equal(db_schema_version(f->db), DB_SCHEMA_VERSION);
}

static void
test_wal(void **state)
{
    struct fx *f = *state;
    sqlite3 *c;
    sqlite3_stmt *s;

    assert_string_equal(db_journal_mode(f->db), "wal");
    /* WAL is a property of the file: another connection sees it. */
    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(c);
}

static void
test_reopen_keeps_data(void **state)
{
    struct fx *f = *state;
    struct db_node n;
    struct db_guest g;

    add_node(f->db, "h1");
    assert_int_equal(db_node_set_cordoned(f->db, "h1", true), 0);
    assert_int_equal(add_guest(f->db, "id-1", "web1", "h1"), 0);
    assert_int_equal(db_guest_set_observed(f->db, "id-1", DB_OBS_RUNNING, NULL), 0);
    assert_int_equal(db_ip_insert(f->db, "10.0.0.5", "nopool", "id-1"), -ENOENT);
    db_destroy(&f->db);

    assert_int_equal(db_open(f->path, &f->db, NULL, 0), 0);
    assert_int_equal(db_node_get(f->db, "h1", &n), 0);
    assert_string_equal(n.labels, "{\"zone\":\"a\"}");
    assert_true(n.cordoned);
    assert_int_equal(n.cpus, 4000);
    db_node_clear(&n);
    assert_int_equal(db_guest_get_by_name(f->db, "web1", &g), 0);
    assert_string_equal(g.id, "id-1");
    assert_string_equal(g.node, "h1");
    assert_int_equal(g.observed, DB_OBS_RUNNING);
    assert_int_equal(g.generation, 1);
    db_guest_clear(&g);
    /* A hello again updates capacity but keeps the operator's cordon. */
    add_node(f->db, "h1");
    assert_int_equal(db_node_get(f->db, "h1", &n), 0);
    assert_true(n.cordoned);
    db_node_clear(&n);
    assert_int_equal(db_node_delete(f->db, "h1"), -EBUSY);
    assert_int_equal(db_node_get(f->db, "nope", &n), -ENOENT);
}

static void
test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    char err[256];
    sqlite3 *c;

    db_destroy(&f->db);
    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(db_open(f->path, &f->db, err, sizeof(err)), -EPROTONOSUPPORT);
    assert_null(f->db);
    assert_non_null(strstr(err, "schema version 99"));
    assert_non_null(strstr(err, "newer"));
    /* And the file is left as it was. */
    assert_int_equal(sql_int(f->path, "PRAGMA user_version"), 99);
}

static void
test_not_a_database(void **state)
{
    struct fx *f = *state;
    char path[128], err[256];
    db_t *db = NULL;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/garbage.db", f->dir);
    fp = fopen(path, "we");
    assert_non_null(fp);
    fputs("this is not an SQLite file, not even close; padding padding padding padding", fp);
    fclose(fp);
    assert_true(db_open(path, &db, err, sizeof(err)) < 0);
    assert_null(db);
    assert_true(strlen(err) > 0);
    unlink(path);
}

static void
test_unique_name_and_id(void **state)
{
    struct fx *f = *state;

    add_node(f->db, "h1");
    assert_int_equal(add_guest(f->db, "id-1", "web1", "h1"), 0);
    assert_int_equal(add_guest(f->db, "id-2", "web1", "h1"), -EEXIST);
    assert_int_equal(add_guest(f->db, "id-1", "web2", "h1"), -EEXIST);
    assert_int_equal(add_guest(f->db, "id-3", "web3", "ghost"), -ENOENT);
    assert_int_equal(add_guest(f->db, "id-4", "web4", NULL), 0);
}

static void
test_address_unique(void **state)
{
    struct fx *f = *state;
    struct db_pool p = {.name = "p1", .cidr = "10.0.0.0/24", .family = 2};

    assert_int_equal(db_pool_insert(f->db, &p), 0);
    assert_int_equal(db_pool_insert(f->db, &p), -EEXIST);
    assert_int_equal(add_guest(f->db, "id-1", "a", NULL), 0);
    assert_int_equal(add_guest(f->db, "id-2", "b", NULL), 0);
    assert_int_equal(db_ip_insert(f->db, "10.0.0.5", "p1", "id-1"), 0);
    assert_int_equal(db_ip_insert(f->db, "10.0.0.5", "p1", "id-2"), -EADDRINUSE);
    assert_int_equal(db_ip_insert(f->db, "10.0.0.6", "p1", "id-2"), 0);
    assert_int_equal(db_ip_count_guest(f->db, "id-2"), 1);
    assert_int_equal(db_pool_delete(f->db, "p1"), -EBUSY);
    /* Deleting a guest cascades to its addresses. */
    assert_int_equal(db_guest_delete(f->db, "id-1"), 0);
    assert_int_equal(db_guest_delete(f->db, "id-1"), -ENOENT);
    assert_int_equal(db_ip_insert(f->db, "10.0.0.5", "p1", "id-2"), 0);
    /* An address for a guest that never gets inserted fails at commit. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_ip_insert(f->db, "10.0.0.9", "p1", "ghost"), 0);
    assert_int_equal(db_commit(f->db), -ENOENT);
    assert_int_equal(db_tx_depth(f->db), 0);
    assert_int_equal(db_ip_count_guest(f->db, "ghost"), 0);
}

static void
test_idempotency(void **state)
{
    struct fx *f = *state;
    struct db_idem r = {.key = "k1",
                        .method = "POST",
                        .path = "/v1/guests",
                        .request_hash = "abc",
                        .status = 201,
                        .body = "{\"name\":\"web1\"}",
                        .created_ms = 1000};
    struct db_idem got;

    assert_int_equal(db_idem_put(f->db, &r), 0);
    assert_int_equal(db_idem_put(f->db, &r), -EEXIST);
    assert_int_equal(db_idem_get(f->db, "k1", &got), 0);
    assert_string_equal(got.method, "POST");
    assert_string_equal(got.path, "/v1/guests");
    assert_string_equal(got.request_hash, "abc");
    assert_int_equal(got.status, 201);
    assert_string_equal(got.body, "{\"name\":\"web1\"}");
    assert_int_equal(got.created_ms, 1000);
    db_idem_clear(&got);
    assert_int_equal(db_idem_get(f->db, "k2", &got), -ENOENT);
    r.key = "k2";
    r.created_ms = 5000;
    assert_int_equal(db_idem_put(f->db, &r), 0);
    assert_int_equal(db_idem_expire(f->db, 2000), 1);
    assert_int_equal(db_idem_get(f->db, "k1", &got), -ENOENT);
    assert_int_equal(db_idem_get(f->db, "k2", &got), 0);
    db_idem_clear(&got);
}

static int
count_cb(void *userdata, const struct db_guest *g)
{
    char *names = userdata;

    strcat(names, g->name);
    strcat(names, ",");
    return 0;
}

static void
test_guest_list_filters(void **state)
{
    struct fx *f = *state;
    char names[512];
    struct db_label web[] = {{"tier", "web"}}, db_[] = {{"tier", "db"}};

    add_node(f->db, "h1");
    add_node(f->db, "h2");
    for (int i = 0; i < 6; i++) {
        char id[16], name[16];
        snprintf(id, sizeof(id), "id-%d", i);
        snprintf(name, sizeof(name), "g%d", i);
        struct db_guest g = {.id = id,
                             .name = name,
                             .node = i % 2 ? "h2" : "h1",
                             .spec = "{}",
                             .generation = 1,
                             .desired = DB_DESIRED_RUNNING,
                             .observed = i < 3 ? DB_OBS_RUNNING : DB_OBS_PENDING};
        assert_int_equal(db_guest_insert(f->db, &g, i % 3 ? web : db_, 1), 0);
    }
    names[0] = 0;
    assert_int_equal(
        db_guest_list(f->db, &(struct db_guest_filter){.observed = -1}, count_cb, names), 6);
    assert_string_equal(names, "g0,g1,g2,g3,g4,g5,");
    names[0] = 0;
    db_guest_list(f->db, &(struct db_guest_filter){.node = "h1", .observed = -1}, count_cb, names);
    assert_string_equal(names, "g0,g2,g4,");
    names[0] = 0;
    db_guest_list(f->db, &(struct db_guest_filter){.observed = DB_OBS_RUNNING}, count_cb, names);
    assert_string_equal(names, "g0,g1,g2,");
    names[0] = 0;
    db_guest_list(
        f->db, &(struct db_guest_filter){.observed = -1, .label_key = "tier", .label_value = "db"},
        count_cb, names);
    assert_string_equal(names, "g0,g3,");
    names[0] = 0;
    db_guest_list(
        f->db,
        &(struct db_guest_filter){
            .node = "h2", .observed = DB_OBS_PENDING, .label_key = "tier", .label_value = "web"},
        count_cb, names);
    assert_string_equal(names, "g5,");
    /* Paging: two at a time after a cursor. */
    names[0] = 0;
    assert_int_equal(
        db_guest_list(f->db, &(struct db_guest_filter){.observed = -1, .after = "g1", .limit = 2},
                      count_cb, names),
        2);
    assert_string_equal(names, "g2,g3,");
    assert_int_equal(db_guest_list(f->db,
                                   &(struct db_guest_filter){.observed = -1, .label_key = "x"},
                                   count_cb, names),
                     -EINVAL);
}

static void
test_guest_update_cas(void **state)
{
    struct fx *f = *state;
    struct db_guest g;
    struct db_label l[] = {{"tier", "web"}};

    add_node(f->db, "h1");
    assert_int_equal(add_guest(f->db, "id-1", "web1", "h1"), 0);
    struct db_guest u = {.id = "id-1",
                         .node = "h1",
                         .spec = "{\"v\":2}",
                         .generation = 2,
                         .desired = DB_DESIRED_STOPPED};
    assert_int_equal(db_guest_update(f->db, &u, l, 1, 1), 0);
    /* A second writer that read generation 1 loses. */
    u.generation = 3;
    assert_int_equal(db_guest_update(f->db, &u, NULL, 0, 1), -ESTALE);
    u.id = "nope";
    assert_int_equal(db_guest_update(f->db, &u, NULL, 0, 2), -ENOENT);
    assert_int_equal(db_guest_set_applied(f->db, "id-1", 2), 0);
    assert_int_equal(db_guest_set_applied(f->db, "id-1", 1), 0);
    assert_int_equal(db_guest_get_by_id(f->db, "id-1", &g), 0);
    assert_int_equal(g.generation, 2);
    assert_int_equal(g.applied_generation, 2);
    assert_int_equal(g.desired, DB_DESIRED_STOPPED);
    assert_string_equal(g.spec, "{\"v\":2}");
    db_guest_clear(&g);
}

/* The state an ack needs, without the spec: the same columns as the full row. */
static void
test_guest_get_state(void **state)
{
    struct fx *f = *state;
    struct db_guest g, full;

    add_node(f->db, "h1");
    assert_int_equal(add_guest(f->db, "id-1", "web1", "h1"), 0);
    assert_int_equal(db_guest_set_applied(f->db, "id-1", 1), 0);
    assert_int_equal(db_guest_set_observed(f->db, "id-1", DB_OBS_RUNNING, NULL), 0);
    assert_int_equal(db_guest_get_state(f->db, "id-1", &g), 0);
    assert_int_equal(db_guest_get_by_id(f->db, "id-1", &full), 0);
    assert_string_equal(g.id, full.id);
    assert_string_equal(g.name, full.name);
    assert_string_equal(g.node, full.node);
    assert_int_equal(g.generation, full.generation);
    assert_int_equal(g.applied_generation, 1);
    assert_int_equal(g.desired, full.desired);
    assert_int_equal(g.observed, DB_OBS_RUNNING);
    assert_int_equal(g.deleting, full.deleting);
    assert_string_equal(g.project, full.project); /* its events carry it */
    assert_null(g.spec);
    db_guest_clear(&g);
    db_guest_clear(&full);
    assert_int_equal(db_guest_get_state(f->db, "nope", &g), -ENOENT);
}

static unsigned hook_events[3];

static void
hook(void *userdata, enum db_tx_event ev, unsigned depth)
{
    hook_events[ev]++;
}

struct ev_seen {
    uint64_t seqs[8]; /* sequence numbers seen */
    int n;            /* entries */
};

static int
ev_cb(void *userdata, const struct db_event *e)
{
    struct ev_seen *s = userdata;
    if (s->n < 8)
        s->seqs[s->n++] = e->seq;
    return 0;
}

static void
test_events(void **state)
{
    struct fx *f = *state;
    struct db_event e = {.type = "guest.state", .guest = "web1", .data = "{\"to\":\"running\"}"};
    uint64_t s1, s2, s3, first, last;
    struct ev_seen seen = {0};

    assert_int_equal(db_event_bounds(f->db, &first, &last), 0);
    assert_int_equal(first, 0);
    assert_int_equal(last, 0);
    assert_int_equal(db_event_insert(f->db, &e, &s1), 0);
    assert_int_equal(db_event_insert(f->db, &e, &s2), 0);
    /* A rolled-back event leaves no gap that a later one fills behind a reader. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_event_insert(f->db, &e, &s3), 0);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(db_event_insert(f->db, &e, &s3), 0);
    assert_true(s1 < s2 && s2 < s3);
    assert_int_equal(db_event_list(f->db, s1, 0, ev_cb, &seen), 2);
    assert_int_equal(seen.seqs[0], s2);
    assert_int_equal(seen.seqs[1], s3);
    assert_int_equal(db_event_bounds(f->db, &first, &last), 0);
    assert_int_equal(first, s1);
    assert_int_equal(last, s3);
    /* Retention may drop them all: the newest number given stays known (a
     * restarted master goes on from it, readers are not sent a gap). */
    assert_int_equal(db_event_expire(f->db, INT64_MAX, 1000, s3), 3);
    assert_int_equal(db_event_bounds(f->db, &first, &last), 0);
    assert_int_equal(first, 0);
    assert_int_equal(last, s3);
    e.type = NULL;
    assert_int_equal(db_event_insert(f->db, &e, NULL), -EINVAL);
}

static void
test_transactions(void **state)
{
    struct fx *f = *state;
    struct db_guest g;

    memset(hook_events, 0, sizeof(hook_events));
    assert_int_equal(db_tx_hook_add(f->db, hook, f), 0);
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(add_guest(f->db, "id-1", "a", NULL), 0);
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(add_guest(f->db, "id-2", "b", NULL), 0);
    assert_int_equal(db_tx_depth(f->db), 2);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(db_tx_depth(f->db), 0);
    assert_int_equal(db_guest_get_by_id(f->db, "id-1", &g), 0);
    db_guest_clear(&g);
    assert_int_equal(db_guest_get_by_id(f->db, "id-2", &g), -ENOENT);
    /* Two explicit begins; an insert without labels inside a transaction
     * is one statement and opens no savepoint of its own. */
    assert_int_equal(hook_events[DB_TX_BEGIN], 2);
    assert_int_equal(hook_events[DB_TX_ROLLBACK], 1);
    assert_int_equal(hook_events[DB_TX_COMMIT], 1);
    assert_int_equal(db_commit(f->db), -EINVAL);
    /* Such an insert that fails leaves nothing behind and the transaction
     * goes on: SQLite undoes the failed statement alone. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(add_guest(f->db, "id-3", "c", NULL), 0);
    assert_int_equal(add_guest(f->db, "id-4", "a", NULL), -EEXIST); /* name a is taken */
    assert_int_equal(db_tx_depth(f->db), 1);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(db_guest_get_by_id(f->db, "id-3", &g), 0);
    db_guest_clear(&g);
    assert_int_equal(db_guest_get_by_id(f->db, "id-4", &g), -ENOENT);
    /* Outside a transaction it is its own. */
    memset(hook_events, 0, sizeof(hook_events));
    assert_int_equal(add_guest(f->db, "id-5", "e", NULL), 0);
    assert_int_equal(hook_events[DB_TX_BEGIN], 1);
    assert_int_equal(hook_events[DB_TX_COMMIT], 1);
    db_tx_hook_remove(f->db, f);
}

/* Inserts a guest of node holding context number ctx (id "<node>-<ctx>"). */
static int
add_guest_ctx(db_t *db, const char *node, unsigned ctx)
{
    char id[32], name[32], spec[64];

    snprintf(id, sizeof(id), "%s-%u", node, ctx);
    snprintf(name, sizeof(name), "g-%s-%u", node, ctx);
    snprintf(spec, sizeof(spec), "{\"name\":\"%s\",\"context\":%u}", name, ctx);
    struct db_guest g = {.id = id,
                         .name = name,
                         .node = (char *)node,
                         .spec = spec,
                         .generation = 1,
                         .desired = DB_DESIRED_RUNNING,
                         .observed = DB_OBS_PENDING};
    return db_guest_insert(db, &g, NULL, 0);
}

/* A hold on one number (userdata) of every node. */
static bool
hold_one(void *userdata, const char *node, uint32_t context)
{
    (void)node;
    return context == *(uint32_t *)userdata;
}

static unsigned
free_context(db_t *db, const char *node)
{
    uint32_t c = 0;

    assert_int_equal(db_guest_free_context(db, node, NULL, NULL, &c), 0);
    return c;
}

/* The smallest free number comes back whichever way a number was freed:
 * the walk starts from a mark that every freeing must lower. */
static void
test_free_context(void **state)
{
    struct fx *f = *state;
    sqlite3 *c;

    add_node(f->db, "h1");
    for (unsigned i = 0; i < 10; i++) {
        unsigned n = free_context(f->db, "h1");
        assert_int_equal(n, 3 + i);
        assert_int_equal(add_guest_ctx(f->db, "h1", n), 0);
    }
    assert_int_equal(free_context(f->db, "h1"), 13);
    assert_int_equal(free_context(f->db, "h1"), 13); /* not taken yet: the same */
    /* A delete frees its number. */
    assert_int_equal(db_guest_delete(f->db, "h1-5"), 0);
    assert_int_equal(free_context(f->db, "h1"), 5);
    assert_int_equal(add_guest_ctx(f->db, "h1", 5), 0);
    assert_int_equal(free_context(f->db, "h1"), 13);
    /* A rollback undoes numbers taken in it. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(db_guest_delete(f->db, "h1-4"), 0);
    assert_int_equal(free_context(f->db, "h1"), 4);
    assert_int_equal(add_guest_ctx(f->db, "h1", 4), 0);
    assert_int_equal(free_context(f->db, "h1"), 13);
    assert_int_equal(add_guest_ctx(f->db, "h1", 13), 0);
    assert_int_equal(free_context(f->db, "h1"), 14);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(free_context(f->db, "h1"), 13);
    /* A spec that changes its number frees the old one. */
    assert_int_equal(dbi_exec(f->db, "UPDATE guests SET spec = json_set(spec, '$.context', 40) "
                                     "WHERE id = 'h1-7'"),
                     0);
    assert_int_equal(free_context(f->db, "h1"), 7);
    /* Another connection's delete is seen too. */
    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "DELETE FROM guests WHERE id = 'h1-3'", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(free_context(f->db, "h1"), 3);
}

/* Numbers are unique per node: the same on two nodes, a clash on one node
 * refused, each node's freed numbers reused on it only, and each node's
 * mark survives the other's changes and falls back at a rollback. */
static void
test_free_context_per_node(void **state)
{
    struct fx *f = *state;
    uint32_t c = 0;

    add_node(f->db, "h1");
    add_node(f->db, "h2");
    for (unsigned i = 3; i < 8; i++) {
        assert_int_equal(add_guest_ctx(f->db, "h1", i), 0);
        assert_int_equal(add_guest_ctx(f->db, "h2", i), 0); /* the same number, another node */
    }
    /* A clash on one node: the unique index refuses it. */
    struct db_guest dup = {.id = "dup",
                           .name = "dup",
                           .node = "h1",
                           .spec = "{\"name\":\"dup\",\"context\":5}",
                           .generation = 1,
                           .desired = DB_DESIRED_RUNNING,
                           .observed = DB_OBS_PENDING};
    assert_true(db_guest_insert(f->db, &dup, NULL, 0) < 0);
    assert_int_equal(db_guest_context_taken(f->db, "h1", 5), 1);
    assert_int_equal(db_guest_context_taken(f->db, "h2", 8), 0);
    assert_int_equal(free_context(f->db, "h1"), 8);
    assert_int_equal(free_context(f->db, "h2"), 8);
    /* A node nobody uses starts at the bottom. */
    add_node(f->db, "h3");
    assert_int_equal(free_context(f->db, "h3"), 3);
    /* A number freed on h1 comes back on h1, not on h2. */
    assert_int_equal(db_guest_delete(f->db, "h1-4"), 0);
    assert_int_equal(free_context(f->db, "h1"), 4);
    assert_int_equal(free_context(f->db, "h2"), 8);
    /* Moving a guest to another node frees its number on the old node and
     * takes it on the new one; onto a taken number it is refused. */
    assert_int_equal(dbi_exec(f->db, "UPDATE guests SET node = 'h3' WHERE id = 'h1-6'"), 0);
    assert_int_equal(free_context(f->db, "h1"), 4);
    assert_int_equal(add_guest_ctx(f->db, "h1", 4), 0);
    assert_int_equal(free_context(f->db, "h1"), 6);
    assert_int_equal(free_context(f->db, "h3"), 3);
    assert_int_not_equal(dbi_exec(f->db, "UPDATE guests SET node = 'h3' WHERE id = 'h2-6'"), 0);
    /* A rollback forgets the marks: numbers taken in it are free again. */
    assert_int_equal(db_begin(f->db), 0);
    assert_int_equal(add_guest_ctx(f->db, "h2", 8), 0);
    assert_int_equal(add_guest_ctx(f->db, "h2", 9), 0);
    assert_int_equal(free_context(f->db, "h2"), 10);
    assert_int_equal(db_guest_delete(f->db, "h1-3"), 0);
    assert_int_equal(free_context(f->db, "h1"), 3);
    assert_int_equal(db_rollback(f->db), 0);
    assert_int_equal(free_context(f->db, "h2"), 8);
    assert_int_equal(free_context(f->db, "h1"), 6);
    /* A number held outside the store (a move's target) is skipped, and
     * the mark does not rise past it: once the hold ends it is given. */
    uint32_t held = 6;
    assert_int_equal(db_guest_free_context(f->db, "h1", hold_one, &held, &c), 0);
    assert_int_equal(c, 8);
    assert_int_equal(free_context(f->db, "h1"), 6);
    held = 8;
    assert_int_equal(db_guest_free_context(f->db, "h2", hold_one, &held, &c), 0);
    assert_int_equal(c, 9);
    assert_int_equal(db_guest_free_context(f->db, NULL, NULL, NULL, &c), -EINVAL);
}

/* A full range answers -ENOSPC (without walking it again each time) until a
 * number is freed; another node still has all of its numbers. */
static void
test_free_context_full(void **state)
{
    struct fx *f = *state;
    uint32_t c = 0;

    add_node(f->db, "h1");
    add_node(f->db, "h2");
    assert_int_equal(db_begin(f->db), 0);
    for (unsigned i = 3; i <= 65535; i++)
        assert_int_equal(add_guest_ctx(f->db, "h1", i), 0);
    assert_int_equal(db_commit(f->db), 0);
    assert_int_equal(db_guest_free_context(f->db, "h1", NULL, NULL, &c), -ENOSPC);
    assert_int_equal(db_guest_free_context(f->db, "h1", NULL, NULL, &c), -ENOSPC);
    assert_int_equal(free_context(f->db, "h2"), 3);
    assert_int_equal(add_guest_ctx(f->db, "h2", 3), 0);
    assert_int_equal(db_guest_free_context(f->db, "h1", NULL, NULL, &c), -ENOSPC);
    assert_int_equal(db_guest_delete(f->db, "h1-60000"), 0);
    assert_int_equal(free_context(f->db, "h1"), 60000);
}

/* A store of schema 4 with a guest: its guest lands in "default" without a
 * charge (the master charges it at start), and the files are made
 * owner-only. */
static void
test_v4_store_upgraded(void **state)
{
    struct fx *f = *state;
    struct db_guest g = {0};
    struct db_quota u;
    struct stat st;
    sqlite3 *c;

    db_destroy(&f->db);
    unlink(f->path);
    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    for (int v = 0; v < 4; v++)
        assert_int_equal(sqlite3_exec(c, db_migrations[v], NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c,
                                  "INSERT INTO guests (id, name, spec, generation, desired, "
                                  "observed, created, updated) VALUES ('id-1', 'old', '{}', 1, "
                                  "'running', 'pending', 1, 1); PRAGMA user_version = 4;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(chmod(f->path, 0644), 0);
    assert_int_equal(db_open(f->path, &f->db, NULL, 0), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(db_guest_get_by_name(f->db, "old", &g), 0);
    assert_string_equal(g.project, "default");
    assert_false(g.charged);
    db_guest_clear(&g);
    struct db_charge ch = {.cpu = 500, .memory = 1 << 20, .disk = 0, .addrs = 2};
    assert_int_equal(db_guest_set_charge(f->db, "id-1", &ch), 0);
    assert_int_equal(db_guest_get_by_id(f->db, "id-1", &g), 0);
    assert_true(g.charged);
    assert_int_equal(g.charge.memory, 1 << 20);
    db_guest_clear(&g);
    assert_int_equal(db_project_usage(f->db, "default", &u), 0);
    assert_int_equal(u.guests, 1);
    assert_int_equal(u.cpu, 500);
    assert_int_equal(u.addrs, 2);
}

/* A store of schema 13 keeps its idempotency records through the move to a
 * rowid table (schema 14), whose key index no longer holds the replies. */
static void
test_v13_idempotency_upgraded(void **state)
{
    struct fx *f = *state;
    struct db_idem got;
    sqlite3 *c;

    db_destroy(&f->db);
    unlink(f->path);
    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    for (int v = 0; v < 13; v++)
        assert_int_equal(sqlite3_exec(c, db_migrations[v], NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c,
                                  "INSERT INTO idempotency (key, method, path, request_hash, "
                                  "status, body, created) VALUES ('k1', 'POST', "
                                  "'/v1/guests:batch', 'h1', 200, '{\"results\":[]}', 1000); "
                                  "PRAGMA user_version = 13;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(db_open(f->path, &f->db, NULL, 0), 0);
    assert_int_equal(db_schema_version(f->db), DB_SCHEMA_VERSION);
    assert_int_equal(db_idem_get(f->db, "k1", &got), 0);
    assert_string_equal(got.path, "/v1/guests:batch");
    assert_string_equal(got.request_hash, "h1");
    assert_int_equal(got.status, 200);
    assert_string_equal(got.body, "{\"results\":[]}");
    assert_int_equal(got.created_ms, 1000);
    db_idem_clear(&got);
    /* A rowid table (a WITHOUT ROWID one has no rowid column to select),
     * with its index on the time of creation for the expiry. */
    assert_int_equal(sql_int(f->path, "SELECT COUNT(rowid) FROM idempotency"), 1);
    assert_int_equal(sql_int(f->path, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' "
                                      "AND name = 'idempotency_created'"),
                     1);
    struct db_idem r = {.key = "k1",
                        .method = "POST",
                        .path = "/v1/guests",
                        .request_hash = "h2",
                        .status = 201,
                        .body = "{}",
                        .created_ms = 5000};
    assert_int_equal(db_idem_put(f->db, &r), -EEXIST);
    r.key = "k2";
    assert_int_equal(db_idem_put(f->db, &r), 0);
    assert_int_equal(db_idem_expire(f->db, 2000), 1);
    assert_int_equal(db_idem_get(f->db, "k1", &got), -ENOENT);
    assert_int_equal(db_idem_get(f->db, "k2", &got), 0);
    db_idem_clear(&got);
}

static void
test_projects_and_tokens(void **state)
{
    struct fx *f = *state;
    struct db_project p = {.name = "p1", .quota = {.guests = 3, .memory = 1 << 30}};
    struct db_token t = {.id = "tk0123456789", .hash = "ab", .role = "tenant", .project = "p1"};
    struct db_token out = {0};

    assert_int_equal(db_project_insert(f->db, &p), 0);
    assert_int_equal(db_project_insert(f->db, &p), -EEXIST);
    assert_int_equal(db_token_insert(f->db, &t), 0);
    assert_int_equal(db_token_insert(f->db, &t), -EEXIST);
    t = (struct db_token){.id = "tk1", .hash = "cd", .role = "tenant", .project = "nope"};
    assert_int_equal(db_token_insert(f->db, &t), -ENOENT);
    /* A tenant without a project, an admin with one: refused by the schema. */
    t = (struct db_token){.id = "tk2", .hash = "ef", .role = "tenant"};
    assert_int_equal(db_token_insert(f->db, &t), -EEXIST);
    assert_int_equal(db_token_get_by_hash(f->db, "ab", &out), 0);
    assert_string_equal(out.project, "p1");
    db_token_clear(&out);
    /* A project with a token stays. */
    assert_int_equal(db_project_delete(f->db, "p1"), -EBUSY);
    assert_int_equal(db_token_delete(f->db, "tk0123456789"), 0);
    assert_int_equal(db_token_get_by_hash(f->db, "ab", &out), -ENOENT);
    /* And one with a guest. */
    struct db_guest g = {.id = "g-1",
                         .name = "g1",
                         .spec = "{}",
                         .project = "p1",
                         .generation = 1,
                         .charged = true,
                         .charge = {.memory = 5}};
    assert_int_equal(db_guest_insert(f->db, &g, NULL, 0), 0);
    assert_int_equal(db_project_delete(f->db, "p1"), -EBUSY);
    assert_int_equal(db_guest_delete(f->db, "g-1"), 0);
    assert_int_equal(db_project_delete(f->db, "p1"), 0);
    assert_int_equal(db_project_get(f->db, "p1", &p), -ENOENT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unique_name_and_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v13_idempotency_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_list_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_update_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guest_get_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_context_per_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_context_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v4_store_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_projects_and_tokens, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
