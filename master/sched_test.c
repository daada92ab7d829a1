/* Tests for master/sched: filters, scores, explanations, and a scale run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "master/sched.h"
#include "proto/spec.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static const struct sched_capacity cap_std = {
    .cpu = 4000, .memory = 4 * GiB, .disk = 100 * GiB, .max_guests = 0, .max_addrs = 0};

static sched_t *
new_sched(enum sched_algo algo)
{
    struct sched_config c;

    sched_config_default(&c);
    c.algo = algo;
    return sched_new(&c);
}

static void
add_nodes(sched_t *s, int n, const struct sched_capacity *cap)
{
    char name[32];

    for (int i = 1; i <= n; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        assert_int_equal(sched_node_upsert(s, name, cap, NULL, 0), 0);
    }
}

static struct sched_request
req_of(uint64_t cpu, uint64_t mem, uint64_t disk)
{
    return (struct sched_request){.res = {.cpu = cpu, .memory = mem, .disk = disk, .addrs = 1},
                                  .algo = SCHED_DEFAULT};
}

static uint32_t
guests_on(sched_t *s, const char *name)
{
    struct sched_node_info info;

    assert_int_equal(sched_node_info(s, name, &info), 0);
    return info.guests;
}

static void
test_spread_even(void **state)
{
    sched_t *s = new_sched(SCHED_SPREAD);
    struct sched_request rq = req_of(500, 128 * MiB, GiB);
    struct sched_result res;

    add_nodes(s, 3, &cap_std);
    for (int i = 0; i < 30; i++)
        assert_int_equal(sched_place(s, &rq, &res), 0);
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "n%d", i);
        uint32_t g = guests_on(s, name);
        assert_true(g >= 9 && g <= 11);
    }
    /* Exactly even, in fact: spread picks the fewest guests every time. */
    assert_int_equal(guests_on(s, "n1"), 10);
    sched_destroy(&s);
    assert_null(s);
}

static void
test_binpack_fills_first(void **state)
{
    sched_t *s = new_sched(SCHED_BINPACK);
    struct sched_capacity cap = {.cpu = 4000, .memory = GiB, .disk = 10 * GiB};
    struct sched_request rq = req_of(100, 256 * MiB, GiB);
    struct sched_result res;

    add_nodes(s, 3, &cap);
    /* Four 256M guests fill a 1G node; the next four go to the next node. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sched_place(s, &rq, &res), 0);
        assert_string_equal(res.node, "n1");
    }
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_equal(res.node, "n2");
    assert_int_equal(guests_on(s, "n1"), 4);
    assert_int_equal(guests_on(s, "n3"), 0);
    /* Per-request override: spread sends the next one to the empty n3. */
    rq.algo = SCHED_SPREAD;
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_equal(res.node, "n3");
    sched_destroy(&s);
}

static void
test_constraints(void **state)
{
    sched_t *s = new_sched(SCHED_SPREAD);
    struct sched_label a[] = {{"zone", "a"}, {"disk", "ssd"}};
    struct sched_label b[] = {{"zone", "b"}, {"disk", "ssd"}};
    struct sched_label want_b[] = {{"zone", "b"}, {"disk", "ssd"}};
    struct sched_label want_c[] = {{"zone", "c"}};
    struct sched_request rq = req_of(100, MiB, MiB);
    struct sched_result res;

    assert_int_equal(sched_node_upsert(s, "h1", &cap_std, a, 2), 0);
    assert_int_equal(sched_node_upsert(s, "h2", &cap_std, b, 2), 0);
    assert_int_equal(sched_node_upsert(s, "h3", &cap_std, b, 1), 0); /* zone=b only */
    rq.constraints = want_b;
    rq.n_constraints = 2;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(sched_place(s, &rq, &res), 0);
        assert_string_equal(res.node, "h2");
    }
    rq.constraints = want_c;
    rq.n_constraints = 1;
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_CONSTRAINT], 3);
    assert_int_equal(res.nodes_evaluated, 3);
    sched_destroy(&s);
}

/* Templates: only nodes that have the guest's template take it. */
static void
test_templates(void **state)
{
    sched_t *s = new_sched(SCHED_SPREAD);
    const char *t1[] = {"busybox"}, *t2[] = {"busybox", "debian"};
    struct sched_request rq = req_of(100, MiB, MiB);
    struct sched_result res;

    assert_int_equal(sched_node_upsert(s, "h1", &cap_std, NULL, 0), 0);
    assert_int_equal(sched_node_upsert(s, "h2", &cap_std, NULL, 0), 0);
    assert_int_equal(sched_node_templates(s, "h1", t1, 1), 0);
    assert_int_equal(sched_node_templates(s, "h2", t2, 2), 0);
    assert_int_equal(sched_node_templates(s, "nope", t1, 1), -ENOENT);
    rq.template_name = "debian";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sched_place(s, &rq, &res), 0);
        assert_string_equal(res.node, "h2");
    }
    assert_int_equal(res.rejected[SCHED_F_TEMPLATE], 1);
    rq.template_name = "centos";
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_TEMPLATE], 2);
    /* A node that no longer reports it stops taking it. */
    assert_int_equal(sched_node_templates(s, "h2", t1, 1), 0);
    rq.template_name = "debian";
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    rq.template_name = NULL;
    assert_int_equal(sched_place(s, &rq, &res), 0);
    sched_destroy(&s);
}

/* "Would it fit if every node were ready?" answers without charging. */
static void
test_if_ready(void **state)
{
    sched_t *s = new_sched(SCHED_BINPACK);
    struct sched_request rq = req_of(100, MiB, MiB);
    struct sched_result res;
    struct sched_node_info info;

    assert_int_equal(sched_node_upsert(s, "h1", &cap_std, NULL, 0), 0);
    assert_int_equal(sched_node_set_state(s, "h1", SCHED_NODE_DOWN), 0);
    /* A node known from the store only: down, its templates not said yet. */
    rq.template_name = "busybox";
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_STATE], 1);
    rq.if_ready = true;
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_equal(res.node, "h1");
    assert_int_equal(sched_node_info(s, "h1", &info), 0);
    assert_int_equal(info.guests, 0);
    assert_int_equal(info.used.memory, 0);
    sched_destroy(&s);
}

static void
test_pin(void **state)
{
    sched_t *s = new_sched(SCHED_BINPACK);
    struct sched_request rq = req_of(100, GiB, GiB);
    struct sched_result res;

    add_nodes(s, 3, &cap_std);
    rq.pin = "n3";
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sched_place(s, &rq, &res), 0);
        assert_string_equal(res.node, "n3");
    }
    /* n3 is full (4 x 1G): a pinned request does not go elsewhere. */
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.nodes_evaluated, 1);
    assert_int_equal(res.rejected[SCHED_F_MEMORY], 1);
    rq.pin = "nope";
    assert_int_equal(sched_place(s, &rq, &res), -ENOENT);
    sched_destroy(&s);
}

static void
test_anti_affinity(void **state)
{
    sched_t *s = new_sched(SCHED_BINPACK);
    struct sched_request rq = req_of(100, MiB, MiB);
    struct sched_result res;
    char first[64];

    add_nodes(s, 3, &cap_std);
    rq.group = "web";
    assert_int_equal(sched_place(s, &rq, &res), 0);
    strcpy(first, res.node);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_not_equal(res.node, first);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "n%d", i);
        assert_int_equal(guests_on(s, name), 1);
    }
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_ANTI_AFFINITY], 3);
    /* Another group is unaffected; releasing one frees its node for the group. */
    rq.group = "db";
    assert_int_equal(sched_place(s, &rq, &res), 0);
    rq.group = "web";
    assert_int_equal(sched_release(s, "n2", &rq.res, "web"), 0);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_equal(res.node, "n2");
    sched_destroy(&s);
}

static void
test_node_states(void **state)
{
    sched_t *s = new_sched(SCHED_SPREAD);
    struct sched_request rq = req_of(100, MiB, MiB);
    struct sched_result res;

    add_nodes(s, 4, &cap_std);
    assert_int_equal(sched_node_set_state(s, "n1", SCHED_NODE_SUSPECT), 0);
    assert_int_equal(sched_node_set_state(s, "n2", SCHED_NODE_DOWN), 0);
    assert_int_equal(sched_node_cordon(s, "n3", true), 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(sched_place(s, &rq, &res), 0);
        assert_string_equal(res.node, "n4");
    }
    assert_int_equal(sched_node_cordon(s, "n4", true), 0);
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_STATE], 2);
    assert_int_equal(res.rejected[SCHED_F_CORDONED], 2);
    assert_int_equal(res.nodes_feasible, 0);
    assert_int_equal(sched_node_set_state(s, "n1", SCHED_NODE_READY), 0);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_equal(res.node, "n1");
    assert_int_equal(sched_node_set_state(s, "zz", SCHED_NODE_READY), -ENOENT);
    /* A node with guests cannot leave the index; an empty one can. */
    assert_int_equal(sched_node_remove(s, "n4"), -EBUSY);
    assert_int_equal(sched_node_remove(s, "n2"), 0);
    assert_int_equal(sched_node_count(s), 3);
    sched_destroy(&s);
}

static void
test_overcommit(void **state)
{
    struct sched_config c;
    sched_t *s;
    struct sched_capacity cap = {.cpu = 2000, .memory = 2 * GiB, .disk = 10 * GiB};
    struct sched_request rq = req_of(1000, 100 * MiB, MiB);
    struct sched_result res;
    int placed = 0;

    sched_config_default(&c);
    c.overcommit_cpu = 4.0;
    s = sched_new(&c);
    add_nodes(s, 1, &cap);
    /* 2 cores x 4 = 8 one-core guests. */
    while (sched_place(s, &rq, &res) == 0)
        placed++;
    assert_int_equal(placed, 8);
    assert_int_equal(res.rejected[SCHED_F_CPU], 1);
    assert_string_equal(res.near_miss.node, "n1");
    assert_int_equal(res.near_miss.filter, SCHED_F_CPU);
    assert_int_equal(res.near_miss.need, 1000);
    assert_int_equal(res.near_miss.free, 0);
    sched_destroy(&s);

    /* Memory 1.5: 3G effective on a 2G node, so three 1G guests, not two. */
    c.overcommit_cpu = 100;
    c.overcommit_memory = 1.5;
    s = sched_new(&c);
    add_nodes(s, 1, &cap);
    rq = req_of(100, GiB, MiB);
    placed = 0;
    while (sched_place(s, &rq, &res) == 0)
        placed++;
    assert_int_equal(placed, 3);
    assert_int_equal(res.rejected[SCHED_F_MEMORY], 1);
    sched_destroy(&s);
}

static void
test_explanation_exact(void **state)
{
    sched_t *s = new_sched(SCHED_SPREAD);
    struct sched_label za[] = {{"zone", "a"}}, zb[] = {{"zone", "b"}};
    struct sched_capacity small_mem = {.cpu = 8000, .memory = 2 * GiB, .disk = 100 * GiB};
    struct sched_capacity smaller_mem = {.cpu = 8000, .memory = GiB, .disk = 100 * GiB};
    struct sched_capacity small_disk = {.cpu = 8000, .memory = 64 * GiB, .disk = 5 * GiB};
    struct sched_capacity one_guest = {
        .cpu = 8000, .memory = 64 * GiB, .disk = 100 * GiB, .max_guests = 1};
    struct sched_request rq = req_of(1000, 3 * GiB, 10 * GiB);
    struct sched_request filler = req_of(1, 1, 1);
    struct sched_result res;
    char *txt;
    json_t *j;

    assert_int_equal(sched_node_upsert(s, "down1", &cap_std, za, 1), 0);
    assert_int_equal(sched_node_upsert(s, "cord1", &cap_std, za, 1), 0);
    assert_int_equal(sched_node_upsert(s, "zoneb", &cap_std, zb, 1), 0);
    assert_int_equal(sched_node_upsert(s, "mem1", &small_mem, za, 1), 0);
    assert_int_equal(sched_node_upsert(s, "mem2", &smaller_mem, za, 1), 0);
    assert_int_equal(sched_node_upsert(s, "disk1", &small_disk, za, 1), 0);
    assert_int_equal(sched_node_upsert(s, "full1", &one_guest, za, 1), 0);
    assert_int_equal(sched_node_set_state(s, "down1", SCHED_NODE_DOWN), 0);
    assert_int_equal(sched_node_cordon(s, "cord1", true), 0);
    filler.pin = "full1";
    assert_int_equal(sched_place(s, &filler, &res), 0);

    rq.constraints = za;
    rq.n_constraints = 1;
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.nodes_total, 7);
    assert_int_equal(res.nodes_evaluated, 7);
    assert_int_equal(res.nodes_feasible, 0);
    assert_int_equal(res.rejected[SCHED_F_STATE], 1);
    assert_int_equal(res.rejected[SCHED_F_CORDONED], 1);
    assert_int_equal(res.rejected[SCHED_F_CONSTRAINT], 1);
    assert_int_equal(res.rejected[SCHED_F_ANTI_AFFINITY], 0);
    assert_int_equal(res.rejected[SCHED_F_GUESTS], 1);
    assert_int_equal(res.rejected[SCHED_F_CPU], 0);
    assert_int_equal(res.rejected[SCHED_F_MEMORY], 2);
    assert_int_equal(res.rejected[SCHED_F_DISK], 1);
    assert_int_equal(res.rejected[SCHED_F_ADDRS], 0);
    /* mem1 lacks 1G of 3G; disk1 lacks 5G of 10G; mem2 lacks 2G: mem1 is closest. */
    assert_string_equal(res.near_miss.node, "mem1");
    assert_int_equal(res.near_miss.filter, SCHED_F_MEMORY);
    assert_int_equal(res.near_miss.need, 3 * GiB);
    assert_int_equal(res.near_miss.free, 2 * GiB);

    j = sched_result_to_json(&res);
    assert_non_null(j);
    txt = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(txt, "{\"filter\":\"memory\",\"rejected\":2}"));
    assert_non_null(strstr(txt, "{\"filter\":\"state\",\"rejected\":1}"));
    assert_null(strstr(txt, "\"cpu\""));
    assert_non_null(strstr(txt, "\"near_miss\":{\"node\":\"mem1\",\"resource\":\"memory\""));
    free(txt);
    json_decref(j);
    sched_destroy(&s);
}

static void
test_release(void **state)
{
    sched_t *s = new_sched(SCHED_BINPACK);
    struct sched_capacity cap = {.cpu = 1000, .memory = GiB, .disk = GiB, .max_addrs = 2};
    struct sched_request rq = req_of(500, 512 * MiB, 100 * MiB);
    struct sched_result res;
    struct sched_node_info info;

    add_nodes(s, 1, &cap);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(sched_node_info(s, "n1", &info), 0);
    assert_int_equal(info.used.memory, GiB);
    assert_int_equal(info.used.addrs, 2);
    assert_int_equal(sched_release(s, "n1", &rq.res, NULL), 0);
    assert_int_equal(sched_node_info(s, "n1", &info), 0);
    assert_int_equal(info.used.memory, 512 * MiB);
    assert_int_equal(info.used.cpu, 500);
    assert_int_equal(info.guests, 1);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    /* Addresses: a third address does not fit max_addrs = 2. */
    assert_int_equal(sched_release(s, "n1", &rq.res, NULL), 0);
    rq.res.addrs = 2;
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_ADDRS], 1);
    /* Releasing more guests than were charged is a caller bug, refused. */
    assert_int_equal(sched_release(s, "n1", &rq.res, NULL), 0);
    assert_int_equal(sched_release(s, "n1", &rq.res, NULL), -EINVAL);
    sched_destroy(&s);
}

/* A node takes at most as many guests as it has context numbers (unique per
 * node), even without max_guests: the next one goes to another node, and
 * with none left the refusal says max_guests. */
static void
test_context_cap(void **state)
{
    sched_t *s = new_sched(SCHED_BINPACK);
    struct sched_capacity cap = {.cpu = 0, .memory = 0, .disk = 0, .max_guests = 0};
    struct sched_request rq = req_of(0, 0, 0);
    struct sched_result res;
    const uint32_t contexts = SPEC_MAX_CONTEXT - SPEC_MIN_CONTEXT + 1;

    rq.res.addrs = 0;
    add_nodes(s, 1, &cap);
    for (uint32_t i = 0; i < contexts; i++)
        assert_int_equal(sched_reserve(s, "n1", &rq.res, NULL), 0);
    assert_int_equal(guests_on(s, "n1"), contexts);
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    assert_int_equal(res.rejected[SCHED_F_GUESTS], 1);
    add_nodes(s, 2, &cap); /* n1 again, unchanged, and n2 */
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_string_equal(res.node, "n2");
    /* A smaller max_guests still rules. */
    struct sched_capacity few = {.max_guests = 1};
    assert_int_equal(sched_node_upsert(s, "n2", &few, NULL, 0), 0);
    assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
    sched_destroy(&s);
}

/* 5,000 nodes, 100,000 placements in groups of three: every placement must
 * succeed while room exists, no node may exceed its effective capacity, no
 * group may have two guests on one node, and the counts must add up. */
static void
test_scale(void **state)
{
    enum { NODES = 5000, GUESTS = 100000 };
    struct sched_config c;
    sched_t *s;
    struct sched_capacity cap = {
        .cpu = 16000, .memory = 64 * GiB, .disk = 2000 * GiB, .max_guests = 40};
    struct sched_result res;
    char name[32], group[32];
    uint64_t total = 0;
    static char first_of_group[GUESTS / 3 + 1][NAME_MAX_LEN + 1];

    for (int algo = SCHED_BINPACK; algo <= SCHED_SPREAD; algo++) {
        sched_config_default(&c);
        c.algo = algo;
        s = sched_new(&c);
        add_nodes(s, NODES, &cap);
        for (int i = 0; i < GUESTS; i++) {
            struct sched_request rq =
                req_of(250 + (i % 4) * 250, (256 + (i % 7) * 128) * MiB, (5 + i % 11) * GiB);
            snprintf(group, sizeof(group), "g%d", i / 3);
            rq.group = group;
            assert_int_equal(sched_place(s, &rq, &res), 0);
            assert_true(res.nodes_evaluated <= NODES);
            /* Different nodes within a group. */
            if (i % 3 == 0)
                snprintf(first_of_group[i / 3], sizeof(first_of_group[0]), "%s", res.node);
            else
                assert_string_not_equal(first_of_group[i / 3], res.node);
        }
        total = 0;
        for (int i = 1; i <= NODES; i++) {
            struct sched_node_info info;
            snprintf(name, sizeof(name), "n%d", i);
            assert_int_equal(sched_node_info(s, name, &info), 0);
            assert_true(info.used.cpu <= cap.cpu * 4);
            assert_true(info.used.memory <= cap.memory);
            assert_true(info.used.disk <= cap.disk);
            assert_true(info.guests <= cap.max_guests);
            total += info.guests;
        }
        assert_int_equal(total, GUESTS);
        /* Only one node in 5,001 takes this request: the walk must find it. */
        struct sched_label lab[] = {{"gpu", "yes"}};
        assert_int_equal(sched_node_upsert(s, "gpu1", &cap, lab, 1), 0);
        struct sched_request rq = req_of(1, 1, 1);
        rq.constraints = lab;
        rq.n_constraints = 1;
        assert_int_equal(sched_place(s, &rq, &res), 0);
        assert_string_equal(res.node, "gpu1");
        rq.constraints = (struct sched_label[]){{"gpu", "no"}};
        assert_int_equal(sched_place(s, &rq, &res), -ENOSPC);
        assert_int_equal(res.nodes_evaluated, NODES + 1);
        assert_int_equal(res.rejected[SCHED_F_CONSTRAINT], NODES + 1);
        sched_destroy(&s);
    }
}

static void
test_resources_from_spec(void **state)
{
    struct sched_config c;
    struct sched_resources r;
    static struct guest_spec spec;

    sched_config_default(&c);
    memset(&spec, 0, sizeof(spec));
    spec.limits.disk = GiB;
    spec.n_addrs = 2;
    sched_resources_from_spec(&c, &spec, &r);
    assert_int_equal(r.cpu, c.default_cpu);
    assert_int_equal(r.memory, c.default_memory);
    assert_int_equal(r.disk, GiB);
    assert_int_equal(r.addrs, 2);
    spec.limits.cpu_max = 500;
    spec.limits.memory = 128 * MiB;
    sched_resources_from_spec(&c, &spec, &r);
    assert_int_equal(r.cpu, 500);
    assert_int_equal(r.memory, 128 * MiB);
    /* No disk limit: the image a node makes then (10 GiB) is what it costs. */
    spec.limits.disk = 0;
    sched_resources_from_spec(&c, &spec, &r);
    assert_int_equal(r.disk, c.default_disk);
    assert_int_equal(c.default_disk, 10 * GiB);
}

/* Sampling is bounded: on a large empty cluster a spread placement looks at
 * K = ceil(log2 N) nodes, not all of them. */
static void
test_sample_bound(void **state)
{
    sched_t *s = new_sched(SCHED_SPREAD);
    struct sched_request rq = req_of(100, MiB, MiB);
    struct sched_result res;

    add_nodes(s, 1000, &cap_std);
    assert_int_equal(sched_place(s, &rq, &res), 0);
    assert_int_equal(res.nodes_evaluated, 10);
    assert_int_equal(res.nodes_feasible, 10);
    sched_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_even),   cmocka_unit_test(test_binpack_fills_first),
        cmocka_unit_test(test_constraints),   cmocka_unit_test(test_pin),
        cmocka_unit_test(test_templates),     cmocka_unit_test(test_if_ready),
        cmocka_unit_test(test_anti_affinity), cmocka_unit_test(test_node_states),
        cmocka_unit_test(test_overcommit),    cmocka_unit_test(test_explanation_exact),
        cmocka_unit_test(test_release),       cmocka_unit_test(test_context_cap),
        cmocka_unit_test(test_sample_bound),  cmocka_unit_test(test_resources_from_spec),
        cmocka_unit_test(test_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
