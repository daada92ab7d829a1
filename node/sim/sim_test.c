/* Tests for node/sim: the in-memory backend honours the backend contract. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/mem.h"
#include "common/mtime.h"
#include "node/sim/sim.h"

/* The sim ignores uid blocks; every call passes none. */
static const struct guest_ids no_ids;

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"

/* A clock the test moves by hand. */
static uint64_t
fake_clock(void *userdata)
{
    return *(uint64_t *)userdata;
}

static void
backend_freep(backend_t **b)
{
    if (*b)
        (*b)->ops->free(*b);
    *b = NULL;
}
#define _cleanup_backend_ _cleanup_(backend_freep)

static backend_t *
new_sim(uint64_t *clock, uint64_t seed)
{
    struct sim_config cfg = {
        .cpus = 8000,
        .memory = 16ULL << 30,
        .disk = 100ULL << 30,
        .max_guests = 4,
        .seed = seed,
        .clock_ns = fake_clock,
        .clock_userdata = clock,
    };
    return sim_backend_new(&cfg);
}

static void
spec(struct guest_spec *s, const char *id, const char *name)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, id);
    strcpy(s->name, name);
    s->generation = 1;
    strcpy(s->template_name, "busybox");
    s->limits.memory = 256ULL << 20;
    s->limits.cpu_max = 500;
    s->limits.disk = 1ULL << 30;
    s->limits.inodes = 100000;
    s->limits.procs = 64;
}

static enum guest_state
state_of(backend_t *b, const struct guest_spec *s, const struct guest_runtime *rt)
{
    enum guest_state st = 99;
    assert_int_equal(b->ops->state(b, s, rt, &st), 0);
    return st;
}

static void
test_lifecycle_idempotent(void **state)
{
    uint64_t clock = 1000 * NSEC_PER_SEC;
    _cleanup_backend_ backend_t *b = new_sim(&clock, 1);
    struct guest_spec s;
    struct guest_runtime rt = {0}, rt2 = {0};
    struct node_facts f;

    assert_int_equal(b->ops->probe(b, &f), 0);
    assert_string_equal(f.backend, "sim");
    assert_int_equal(f.cpus, 8000);
    assert_int_equal(f.max_guests, 4);
    assert_string_equal(b->ops->name, "sim");

    spec(&s, ID1, "web1");
    assert_int_equal(state_of(b, &s, NULL), GUEST_ABSENT);
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    assert_int_equal(state_of(b, &s, NULL), GUEST_STOPPED);
    assert_int_equal(b->ops->stop(b, &s, &rt), 0);
    assert_int_equal(b->ops->kill(b, &s, &rt), 0);

    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    assert_true(rt.pid > 0);
    assert_int_equal(state_of(b, &s, &rt), GUEST_RUNNING);
    clock += NSEC_PER_SEC;
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt2), 0);
    assert_int_equal(rt.pid, rt2.pid);
    assert_true(rt.start_time == rt2.start_time);

    /* A running guest cannot be destroyed; a stopped one can, twice. */
    assert_int_equal(b->ops->destroy(b, &s), -EBUSY);
    assert_int_equal(b->ops->stop(b, &s, &rt), 0);
    assert_int_equal(state_of(b, &s, &rt), GUEST_STOPPED);
    assert_int_equal(b->ops->destroy(b, &s), 0);
    assert_int_equal(b->ops->destroy(b, &s), 0);
    assert_int_equal(state_of(b, &s, NULL), GUEST_ABSENT);

    /* A new start is a new init. */
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    struct console_log con;
    assert_int_equal(b->ops->console(b, &s, 0, &con), -ENOENT); /* never started */
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt2), 0);
    assert_int_equal(b->ops->console(b, &s, 0, &con), 0);
    assert_string_equal(con.data, "vfleet sim guest web1: up (start 1)\n");
    assert_int_equal(con.total, con.len);
    free(con.data);
    assert_int_equal(b->ops->console(b, &s, 8, &con), 0); /* the tail only */
    assert_int_equal(con.len, 8);
    assert_string_equal(con.data, "tart 1)\n");
    assert_true(con.total > 8);
    free(con.data);
    assert_true(rt2.pid != rt.pid);
    /* The old runtime no longer names the guest's init. */
    assert_int_equal(state_of(b, &s, &rt), GUEST_STOPPED);
    assert_int_equal(state_of(b, &s, &rt2), GUEST_RUNNING);
}

static void
test_unknown_guest(void **state)
{
    uint64_t clock = 0;
    _cleanup_backend_ backend_t *b = new_sim(&clock, 1);
    struct guest_spec s;
    struct guest_runtime rt = {0};
    struct guest_usage u;
    struct exec_result res;
    char *const argv[] = {"true", NULL};
    struct exec_request req = {.argv = argv};

    spec(&s, ID1, "web1");
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), -ENOENT);
    assert_int_equal(b->ops->stop(b, &s, &rt), -ENOENT);
    assert_int_equal(b->ops->kill(b, &s, &rt), -ENOENT);
    assert_int_equal(b->ops->set_limits(b, &s, &no_ids, &rt), -ENOENT);
    assert_int_equal(b->ops->apply_network(b, &s, &rt), -ENOENT);
    assert_int_equal(b->ops->usage(b, &s, &rt, &u), -ENOENT);
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), -ENOENT);
    assert_null(res.out);
    assert_int_equal(sim_guest_crash(b, ID1), -ENOENT);
    assert_int_equal(b->ops->destroy(b, &s), 0);
}

static void
test_flags(void **state)
{
    uint64_t clock = 0;
    _cleanup_backend_ backend_t *b = new_sim(&clock, 1);
    struct guest_spec s;
    struct guest_runtime rt = {0};
    struct exec_result res;
    char *const argv[] = {"echo", "hi", NULL};
    struct exec_request req = {.argv = argv};

    spec(&s, ID1, "web1");
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    s.flags = SPEC_FLAG_LOCK;
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), -ENOLCK);
    assert_int_equal(state_of(b, &s, NULL), GUEST_STOPPED);
    s.flags = 0;
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    /* Locked while running: no exec, but the running guest is not a new start. */
    s.flags = SPEC_FLAG_LOCK;
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), -ENOLCK);
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    s.flags = SPEC_FLAG_PRIVATE;
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), -EACCES);
    s.flags = 0;
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), 0);
    exec_result_clear(&res);
    /* Lock does not prevent stopping. */
    s.flags = SPEC_FLAG_LOCK;
    assert_int_equal(b->ops->stop(b, &s, &rt), 0);
    s.flags = 0;
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), -ESRCH);
}

static void
test_exec(void **state)
{
    uint64_t clock = 0;
    _cleanup_backend_ backend_t *b = new_sim(&clock, 1);
    struct guest_spec s;
    struct guest_runtime rt = {0};
    struct exec_result res;
    char *const echo[] = {"echo", "hello", "world", NULL};
    char *const fail[] = {"/bin/false", NULL};
    struct exec_request req = {.argv = echo};

    spec(&s, ID1, "web1");
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out_len, strlen("echo hello world\n"));
    assert_string_equal(res.out, "echo hello world\n");
    assert_false(res.truncated);
    exec_result_clear(&res);

    req.max_output = 4;
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), 0);
    assert_int_equal(res.out_len, 4);
    assert_string_equal(res.out, "echo");
    assert_true(res.truncated);
    exec_result_clear(&res);

    req.argv = fail;
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), 0);
    assert_int_equal(res.exit_code, 1);
    assert_int_equal(res.out_len, 0);
    exec_result_clear(&res);

    req.argv = (char *const[]){NULL};
    assert_int_equal(b->ops->exec(b, &s, &rt, &req, &res), -EINVAL);
}

static void
test_limits_and_capacity(void **state)
{
    uint64_t clock = 0;
    _cleanup_backend_ backend_t *b = new_sim(&clock, 1);
    struct guest_spec s, t;
    struct guest_runtime rt = {0};
    struct guest_usage u;

    spec(&s, ID1, "web1");
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    assert_int_equal(b->ops->usage(b, &s, &rt, &u), 0);
    assert_true(u.disk_bytes > 0 && u.disk_bytes <= s.limits.disk);
    assert_true(u.disk_inodes > 0 && u.disk_inodes <= s.limits.inodes);

    /* Below what is used: refused, and the old limit stays. */
    t = s;
    t.limits.disk = u.disk_bytes - 1;
    assert_int_equal(b->ops->set_limits(b, &t, &no_ids, &rt), -ENOSPC);
    t = s;
    t.limits.inodes = u.disk_inodes - 1;
    assert_int_equal(b->ops->set_limits(b, &t, &no_ids, &rt), -ENOSPC);
    t = s;
    t.limits.disk = u.disk_bytes;
    assert_int_equal(b->ops->set_limits(b, &t, &no_ids, &rt), 0);
    t.limits.disk = 2ULL << 30;
    assert_int_equal(b->ops->set_limits(b, &t, &no_ids, &rt), 0);
    /* Invalid specs are refused. */
    t.limits.cpu_weight = 20000;
    assert_int_equal(b->ops->set_limits(b, &t, &no_ids, &rt), -EINVAL);

    /* The node's disk: 100 GiB, 2 GiB committed. */
    spec(&t, ID2, "web2");
    t.limits.disk = 99ULL << 30;
    assert_int_equal(b->ops->create(b, &t, &no_ids), -ENOSPC);
    t.limits.disk = 98ULL << 30;
    assert_int_equal(b->ops->create(b, &t, &no_ids), 0);
    /* Growing past it is refused too. */
    t = s;
    t.limits.disk = 3ULL << 30;
    assert_int_equal(b->ops->set_limits(b, &t, &no_ids, &rt), -ENOSPC);

    /* max_guests = 4. */
    for (int i = 3; i <= 5; i++) {
        char id[SPEC_ID_LEN + 1];
        snprintf(id, sizeof(id), "%08d-0000-4000-8000-000000000000", i);
        spec(&t, id, "g");
        t.limits.disk = 0;
        assert_int_equal(b->ops->create(b, &t, &no_ids), i <= 4 ? 0 : -ENOSPC);
    }
}

static void
test_usage_grows(void **state)
{
    uint64_t clock = 0;
    _cleanup_backend_ backend_t *b = new_sim(&clock, 7);
    struct guest_spec s;
    struct guest_runtime rt = {0};
    struct guest_usage u1, u2, u3;

    spec(&s, ID1, "web1");
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    assert_int_equal(b->ops->usage(b, &s, &rt, &u1), 0);
    assert_string_equal(u1.id, ID1);
    clock += 10 * NSEC_PER_SEC;
    assert_int_equal(b->ops->usage(b, &s, &rt, &u2), 0);
    /* 10 s at most half a core (cpu_max 500), at least 5% of that. */
    assert_true(u2.cpu_ns > u1.cpu_ns);
    assert_true(u2.cpu_ns - u1.cpu_ns <= 5 * NSEC_PER_SEC);
    assert_true(u2.cpu_ns - u1.cpu_ns >= 5 * NSEC_PER_SEC / 20);
    assert_true(u2.net_rx_bytes > u1.net_rx_bytes);
    assert_true(u2.io_read_bytes > u1.io_read_bytes);
    for (int i = 0; i < 200; i++) {
        clock += NSEC_PER_SEC;
        assert_int_equal(b->ops->usage(b, &s, &rt, &u3), 0);
        assert_true(u3.memory > 0 && u3.memory <= s.limits.memory);
        assert_true(u3.memory_peak >= u3.memory);
        assert_true(u3.procs >= 1 && u3.procs <= 32);
    }

    /* Stopped: counters stay, gauges drop to zero. */
    assert_int_equal(b->ops->stop(b, &s, &rt), 0);
    assert_int_equal(b->ops->usage(b, &s, &rt, &u1), 0);
    clock += 100 * NSEC_PER_SEC;
    assert_int_equal(b->ops->usage(b, &s, &rt, &u2), 0);
    assert_true(u1.cpu_ns == u2.cpu_ns && u2.cpu_ns >= u3.cpu_ns);
    assert_true(u2.memory == 0 && u2.procs == 0);
    assert_true(u2.memory_peak > 0);
}

/* Same seed, same clock, same calls: same numbers; another seed differs. */
static void
test_deterministic(void **state)
{
    uint64_t c1 = 0, c2 = 0, c3 = 0;
    _cleanup_backend_ backend_t *a = new_sim(&c1, 42);
    _cleanup_backend_ backend_t *b = new_sim(&c2, 42);
    _cleanup_backend_ backend_t *c = new_sim(&c3, 43);
    backend_t *all[] = {a, b, c};
    uint64_t *clocks[] = {&c1, &c2, &c3};
    struct guest_usage u[3];
    struct guest_spec s, other;
    struct guest_runtime rt;

    spec(&s, ID1, "web1");
    spec(&other, ID2, "web2");
    /* b creates another guest first: a guest's numbers must not depend on that. */
    assert_int_equal(b->ops->create(b, &other, &no_ids), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(all[i]->ops->create(all[i], &s, &no_ids), 0);
        assert_int_equal(all[i]->ops->start(all[i], &s, &no_ids, &rt), 0);
    }
    for (int step = 0; step < 20; step++)
        for (int i = 0; i < 3; i++) {
            *clocks[i] += 3 * NSEC_PER_SEC;
            assert_int_equal(all[i]->ops->usage(all[i], &s, &rt, &u[i]), 0);
        }
    u[0].time_ms = u[1].time_ms = u[2].time_ms = 0;
    assert_memory_equal(&u[0], &u[1], sizeof(u[0]));
    assert_memory_not_equal(&u[0], &u[2], sizeof(u[0]));
}

/* A halt takes stop_delay_ms; kill is at once; a crash stops the guest. */
static void
test_stop_delay_and_crash(void **state)
{
    uint64_t clock = 0;
    struct sim_config cfg = {
        .seed = 1, .stop_delay_ms = 5000, .clock_ns = fake_clock, .clock_userdata = &clock};
    _cleanup_backend_ backend_t *b = sim_backend_new(&cfg);
    struct guest_spec s;
    struct guest_runtime rt;
    struct node_facts f;

    assert_int_equal(b->ops->probe(b, &f), 0);
    assert_int_equal(f.max_guests, 1000);
    spec(&s, ID1, "web1");
    assert_int_equal(b->ops->create(b, &s, &no_ids), 0);
    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    assert_int_equal(b->ops->stop(b, &s, &rt), 0);
    clock += 4999 * NSEC_PER_MSEC;
    assert_int_equal(state_of(b, &s, &rt), GUEST_RUNNING);
    clock += NSEC_PER_MSEC;
    assert_int_equal(state_of(b, &s, &rt), GUEST_STOPPED);

    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    assert_int_equal(b->ops->stop(b, &s, &rt), 0);
    assert_int_equal(b->ops->kill(b, &s, &rt), 0);
    assert_int_equal(state_of(b, &s, &rt), GUEST_STOPPED);

    assert_int_equal(b->ops->start(b, &s, &no_ids, &rt), 0);
    assert_int_equal(sim_guest_crash(b, ID1), 0);
    assert_int_equal(state_of(b, &s, &rt), GUEST_STOPPED);
}

/* The --sim-* flags: defaults when unset, the values given, and a value out
 * of range refused with the flag's name. */
static void
test_config_read(void **state)
{
    (void)state;
    config_t *c = config_new();
    struct sim_config sc;
    char why[128] = "";

    assert_int_equal(sim_config_read(c, &sc, why, sizeof(why)), 0);
    assert_int_equal(sc.cpus, 16000);
    assert_int_equal(sc.max_guests, 1000);
    assert_int_equal(sc.seed, 1);
    config_set(c, "node", "sim_memory", "2G");
    config_set(c, "node", "sim_max_guests", "65536");
    assert_int_equal(sim_config_read(c, &sc, why, sizeof(why)), 0);
    assert_int_equal(sc.memory, 2ULL << 30);
    assert_int_equal(sc.max_guests, 65536);
    config_set(c, "node", "sim_max_guests", "65537");
    assert_int_equal(sim_config_read(c, &sc, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "--sim-max-guests wants 1..65536");
    config_set(c, "node", "sim_max_guests", "2");
    config_set(c, "node", "sim_cpus", "0");
    assert_int_equal(sim_config_read(c, &sc, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "--sim-cpus"));
    config_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_idempotent),
        cmocka_unit_test(test_unknown_guest),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_limits_and_capacity),
        cmocka_unit_test(test_usage_grows),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_stop_delay_and_crash),
        cmocka_unit_test(test_config_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
