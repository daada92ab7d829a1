/* Tests for master/registry: hello registers and persists, silence moves a
 * node ready -> suspect -> down with an injected clock, down marks its guests
 * unknown (and never moves them), a down node needs a new hello, cordon, and
 * a reload starts every node down. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "master/registry.h"

struct fx {
    db_t *db;                /* in memory */
    sched_t *sched;          /* the index the registry mirrors into */
    registry_t *reg;         /* under test */
    uint64_t now;            /* the fake clock, ms */
    int changes;             /* callbacks seen */
    enum db_node_state last; /* the last new state */
};

static uint64_t
fake_clock(void *userdata)
{
    return ((struct fx *)userdata)->now;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct registry_config rc = {.suspect_after_ms = 15000,
                                 .down_after_ms = 30000,
                                 .clock_ms = fake_clock,
                                 .clock_userdata = f};

    f->now = 1000;
    assert_int_equal(db_open(":memory:", &f->db, NULL, 0), 0);
    f->sched = sched_new(NULL);
    assert_int_equal(registry_new(f->db, f->sched, &rc, &f->reg), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    registry_destroy(&f->reg);
    assert_null(f->reg);
    registry_destroy(&f->reg);
    sched_destroy(&f->sched);
    db_destroy(&f->db);
    free(f);
    return 0;
}

static void
hello(struct fx *f, const char *name, const char *zone)
{
    struct msg_hello h = {
        .cpus = 4000, .memory = 8ULL << 30, .disk = 100ULL << 30, .max_guests = 10};

    snprintf(h.node, sizeof(h.node), "%s", name);
    snprintf(h.kernel, sizeof(h.kernel), "6.1.0");
    snprintf(h.cgroup, sizeof(h.cgroup), "hybrid");
    snprintf(h.backend, sizeof(h.backend), "sim");
    h.n_labels = 1;
    snprintf(h.labels[0].key, sizeof(h.labels[0].key), "zone");
    snprintf(h.labels[0].value, sizeof(h.labels[0].value), "%s", zone);
    assert_int_equal(registry_hello(f->reg, &h, NULL), 0);
}

static void
on_change(void *userdata, struct registry_node *n, enum db_node_state old)
{
    struct fx *f = userdata;
    f->changes++;
    f->last = n->state;
}

static void
test_hello_persists_and_mirrors(void **state)
{
    struct fx *f = *state;
    struct db_node dn = {0};
    struct sched_node_info info;

    hello(f, "h1", "a");
    struct registry_node *n = registry_get(f->reg, "h1");
    assert_non_null(n);
    assert_int_equal(n->state, DB_NODE_READY);
    assert_true(n->welcomed);
    assert_string_equal(n->backend, "sim");
    assert_int_equal(db_node_get(f->db, "h1", &dn), 0);
    assert_int_equal(dn.state, DB_NODE_READY);
    assert_int_equal(dn.cpus, 4000);
    assert_non_null(strstr(dn.labels, "\"zone\":\"a\""));
    assert_non_null(strstr(dn.kernel, "6.1.0"));
    db_node_clear(&dn);
    assert_int_equal(sched_node_info(f->sched, "h1", &info), 0);
    assert_int_equal(info.state, SCHED_NODE_READY);
    assert_int_equal(info.cap.memory, 8ULL << 30);
    assert_int_equal(registry_count(f->reg), 1);

    /* A bad name is refused and changes nothing. */
    struct msg_hello bad = {0};
    snprintf(bad.node, sizeof(bad.node), "Bad_Name");
    assert_int_equal(registry_hello(f->reg, &bad, NULL), -EINVAL);
    assert_int_equal(registry_count(f->reg), 1);
}

static void
test_liveness(void **state)
{
    struct fx *f = *state;
    struct sched_node_info info;
    struct db_node dn = {0};

    hello(f, "h1", "a");
    hello(f, "h2", "b");
    f->now += 14999;
    assert_int_equal(registry_tick(f->reg, 0, on_change, f), 0);
    assert_int_equal(registry_seen(f->reg, "h2"), 1); /* h2 keeps talking */
    f->now += 1;
    assert_int_equal(registry_tick(f->reg, 0, on_change, f), 1);
    assert_int_equal(f->last, DB_NODE_SUSPECT);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_SUSPECT);
    assert_int_equal(registry_get(f->reg, "h2")->state, DB_NODE_READY);
    sched_node_info(f->sched, "h1", &info);
    assert_int_equal(info.state, SCHED_NODE_SUSPECT);
    assert_int_equal(db_node_get(f->db, "h1", &dn), 0);
    assert_int_equal(dn.state, DB_NODE_SUSPECT);
    db_node_clear(&dn);

    /* A message from a suspect node makes it ready again. */
    assert_int_equal(registry_seen(f->reg, "h1"), 1);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_READY);
    sched_node_info(f->sched, "h1", &info);
    assert_int_equal(info.state, SCHED_NODE_READY);

    /* Silence past down_after: suspect first, then down. */
    f->now += 20000;
    registry_seen(f->reg, "h2");
    registry_tick(f->reg, 0, on_change, f);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_SUSPECT);
    f->now += 10000;
    registry_seen(f->reg, "h2");
    registry_tick(f->reg, 0, on_change, f);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_DOWN);
    assert_int_equal(f->last, DB_NODE_DOWN);
    sched_node_info(f->sched, "h1", &info);
    assert_int_equal(info.state, SCHED_NODE_DOWN);
    /* Down stays down until hello: other messages are refused. */
    assert_int_equal(registry_seen(f->reg, "h1"), 0);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_DOWN);
    hello(f, "h1", "a");
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_READY);
    /* Unknown nodes must say hello. */
    assert_int_equal(registry_seen(f->reg, "nobody"), 0);
}

/* A master behind on reading (its receive backlog 40 s old) does not take
 * its own backlog for silence: nodes heard 40 s ago stay ready until the
 * master has read up to a time they were silent by. */
static void
test_liveness_behind(void **state)
{
    struct fx *f = *state;

    hello(f, "h1", "a");
    hello(f, "h2", "b");
    f->now += 40000;
    /* Everything before now - 40 s was read: h1 and h2 were seen at that
     * time, so neither is silent yet. Before this change: both down. */
    assert_int_equal(registry_tick(f->reg, 40000, on_change, f), 0);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_READY);
    assert_int_equal(registry_get(f->reg, "h2")->state, DB_NODE_READY);
    /* Read up to 25 s ago: h2's message read in the meantime, h1 silent
     * for 15 s by what has been read: suspect, not down. */
    assert_int_equal(registry_seen(f->reg, "h2"), 1);
    assert_int_equal(registry_tick(f->reg, 25000, on_change, f), 1);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_SUSPECT);
    assert_int_equal(registry_get(f->reg, "h2")->state, DB_NODE_READY);
    /* Caught up (no backlog): h1 silent for 40 s is down. */
    assert_int_equal(registry_seen(f->reg, "h2"), 1);
    assert_int_equal(registry_tick(f->reg, 0, on_change, f), 1);
    assert_int_equal(registry_get(f->reg, "h1")->state, DB_NODE_DOWN);
    /* A backlog longer than the uptime of the clock is not an underflow. */
    assert_int_equal(registry_tick(f->reg, UINT64_MAX, on_change, f), 0);
}

static void
test_down_marks_guests_unknown(void **state)
{
    struct fx *f = *state;
    struct db_guest g = {.id = "11111111-1111-4111-8111-111111111111",
                         .name = "web1",
                         .node = "h1",
                         .spec = "{}",
                         .generation = 1,
                         .applied_generation = 1,
                         .desired = DB_DESIRED_RUNNING,
                         .observed = DB_OBS_RUNNING};
    struct db_guest out = {0};

    hello(f, "h1", "a");
    assert_int_equal(db_guest_insert(f->db, &g, NULL, 0), 0);
    f->now += 30000;
    registry_tick(f->reg, 0, NULL, NULL);
    assert_int_equal(db_guest_get_by_id(f->db, g.id, &out), 0);
    assert_int_equal(out.observed, DB_OBS_UNKNOWN);
    assert_string_equal(out.node, "h1"); /* never moved */
    db_guest_clear(&out);
}

static void
test_cordon_and_reload(void **state)
{
    struct fx *f = *state;
    struct sched_node_info info;
    registry_t *again = NULL;
    sched_t *s2 = sched_new(NULL);

    hello(f, "h1", "a");
    assert_int_equal(registry_cordon(f->reg, "h1", true), 0);
    assert_int_equal(registry_cordon(f->reg, "zz", true), -ENOENT);
    sched_node_info(f->sched, "h1", &info);
    assert_true(info.cordoned);

    /* A new registry over the same db: the node is known, down, cordoned. */
    assert_int_equal(registry_new(f->db, s2, NULL, &again), 0);
    struct registry_node *n = registry_get(again, "h1");
    assert_non_null(n);
    assert_int_equal(n->state, DB_NODE_DOWN);
    assert_false(n->welcomed);
    assert_true(n->cordoned);
    assert_int_equal(n->n_labels, 1);
    assert_string_equal(n->labels[0].value, "a");
    assert_string_equal(n->kernel, "6.1.0");
    sched_node_info(s2, "h1", &info);
    assert_int_equal(info.state, SCHED_NODE_DOWN);
    assert_true(info.cordoned);
    assert_int_equal(registry_seen(again, "h1"), 0);
    registry_destroy(&again);
    sched_destroy(&s2);
}

/* A node's leftovers from its hello: kept, and stored with its facts so a
 * master restarted shows the last count it heard; a hello without them
 * (an older agent) makes them not known again, not 0. */
static void
test_leftovers(void **state)
{
    struct fx *f = *state;
    struct msg_hello h = {.cpus = 1000, .memory = 1ULL << 30, .disk = 1ULL << 30};
    registry_t *again = NULL;
    sched_t *s2 = sched_new(NULL);

    snprintf(h.node, sizeof(h.node), "h1");
    h.leftovers = 3;
    h.has_leftovers = true;
    assert_int_equal(registry_hello(f->reg, &h, NULL), 0);
    struct registry_node *n = registry_get(f->reg, "h1");
    assert_true(n->has_leftovers);
    assert_int_equal(n->leftovers, 3);

    assert_int_equal(registry_new(f->db, s2, NULL, &again), 0);
    n = registry_get(again, "h1");
    assert_true(n->has_leftovers);
    assert_int_equal(n->leftovers, 3);
    registry_destroy(&again);

    h.leftovers = 0;
    h.has_leftovers = false;
    assert_int_equal(registry_hello(f->reg, &h, NULL), 0);
    n = registry_get(f->reg, "h1");
    assert_false(n->has_leftovers);
    assert_int_equal(registry_new(f->db, s2, NULL, &again), 0);
    assert_false(registry_get(again, "h1")->has_leftovers);
    registry_destroy(&again);
    sched_destroy(&s2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_persists_and_mirrors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_liveness_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_liveness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_marks_guests_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cordon_and_reload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
