/* Tests for node/agent's refusal of execs in a guest a move or an export
 * freezes (move_frozen), beyond the one at the command's arrival
 * (agent_record_test test_move_frozen_refused): an exec queued before the
 * freeze, one running when it comes, and a pack that could not thaw. The
 * sim backend with an exec and a pack the test holds at gates on their
 * pool threads. With the fixture of agent_fixture.h. */
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>

#include "node/agent_fixture.h"

/* The nack of ref: busy, saying the guest is frozen for a move. */
static void
expect_move_frozen(struct fixture *f, uint64_t ref)
{
    struct msg m;

    recv_msg(f, &m, "the refusal of an exec or shell in a frozen guest");
    if (m.type != MSG_NACK)
        fail_msg("awaiting a nack, got %s", msg_type_name(m.type));
    assert_int_equal(m.u.nack.ref, ref);
    assert_string_equal(msg_error_name(m.u.nack.code), msg_error_name(MSG_ERR_BUSY));
    assert_non_null(strstr(m.u.nack.message, "frozen for a move"));
    msg_clear(&m);
}

/* Gates for the backend's operations below: a gated exec (of gate_id) and a
 * gated pack wait on the pool thread until the test writes a byte to their
 * gate; the exec writes one to exec_entered as it starts. */
static int exec_gate[2] = {-1, -1}, exec_entered[2] = {-1, -1}, pack_gate[2] = {-1, -1};
static char gate_id[SPEC_ID_LEN + 1];
static int (*sim_exec_op)(backend_t *b, const struct guest_spec *spec,
                          const struct guest_runtime *rt, const struct exec_request *req,
                          struct exec_result *res);

/* Waits (bounded) until fd is readable and reads a byte; false on the bound. */
static bool
gate_wait(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;

    return poll(&p, 1, AGENT_TEST_WAIT_MS) == 1 && read(fd, &c, 1) == 1;
}

static void
gate_open(void)
{
    gate_id[0] = '\0';
    assert_int_equal(pipe2(exec_gate, O_CLOEXEC), 0);
    assert_int_equal(pipe2(exec_entered, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pack_gate, O_CLOEXEC), 0);
}

static void
gate_release(int *gate)
{
    if (gate[1] >= 0)
        assert_int_equal(write(gate[1], "x", 1), 1);
}

static int
gated_exec(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
           const struct exec_request *req, struct exec_result *res)
{
    if (strcmp(spec->id, gate_id) == 0) {
        /* Waits for its gate or, as the linux backend's does, its cancel. */
        struct pollfd p[2] = {{.fd = exec_gate[0], .events = POLLIN},
                              {.fd = req->cancellable ? req->cancel_fd : -1, .events = POLLIN}};
        char c;

        (void)!write(exec_entered[1], "x", 1);
        if (poll(p, 2, AGENT_TEST_WAIT_MS) < 1)
            return -ETIMEDOUT;
        if (p[1].revents)
            return -ECANCELED;
        (void)!read(exec_gate[0], &c, 1);
    }
    return sim_exec_op(b, spec, rt, req, res);
}

/* A shell whose helper froze as it joined: the linux backend's handshake
 * gives up after 10 s. This one waits for the exec gate. */
static int
gated_shell(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
            const struct shell_request *req, struct shell_proc *out)
{
    (void)b, (void)spec, (void)rt, (void)req, (void)out;
    (void)!write(exec_entered[1], "x", 1);
    (void)gate_wait(exec_gate[0]);
    return -ETIMEDOUT;
}

/* Whether the gated backend's guest (any) is frozen, as migrate_frozen
 * says; and whether the pack's thaw fails, leaving it so. */
static atomic_bool gated_frozen, pack_thaw_fails;
static atomic_bool freeze_fails; /* a freeze fails, leaving the guest as it was */

/* An export's pack that freezes the guest, waits for its gate, thaws it
 * (unless pack_thaw_fails) and fails (no data plane in this test: the
 * export ends there). */
static int
gated_pack(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
           const char *manifest, int out_fd)
{
    (void)b, (void)spec, (void)rt, (void)manifest, (void)out_fd;
    atomic_store(&gated_frozen, true);
    (void)gate_wait(pack_gate[0]);
    if (!atomic_load(&pack_thaw_fails))
        atomic_store(&gated_frozen, false);
    return -EIO;
}

static int
gated_freeze(backend_t *b, const struct guest_spec *spec, const struct guest_runtime *rt,
             bool freeze)
{
    (void)b, (void)spec, (void)rt;
    if (freeze && atomic_load(&freeze_fails))
        return -EIO;
    atomic_store(&gated_frozen, freeze);
    return 0;
}

static int
gated_is_frozen(backend_t *b, const struct guest_spec *spec)
{
    (void)b, (void)spec;
    return atomic_load(&gated_frozen) ? 1 : 0;
}

/* Opens every gate (so that no pool thread waits on them and the agent's
 * loop runs dry), then the fixture's teardown. */
static int
teardown_gates(void **state)
{
    int *gates[] = {exec_gate, exec_entered, pack_gate};

    gate_release(exec_gate);
    gate_release(pack_gate);
    int r = teardown(state);
    for (size_t i = 0; i < sizeof(gates) / sizeof(gates[0]); i++) {
        for (int k = 0; k < 2; k++)
            if (gates[i][k] >= 0)
                close(gates[i][k]);
        gates[i][0] = gates[i][1] = -1;
    }
    return r;
}

/* The agent with two running guests and the gated exec and pack. */
static void
start_gated(struct fixture *f)
{
    backend_t *b = new_backend();
    static struct backend_ops ops;
    struct store_record r1 = {0}, r2 = {0};
    store_t *s = NULL;
    struct msg hello;

    gate_open();
    atomic_store(&gated_frozen, false);
    atomic_store(&pack_thaw_fails, false);
    atomic_store(&freeze_fails, false);
    ops = *b->ops;
    sim_exec_op = ops.exec;
    ops.exec = gated_exec;
    ops.migrate_pack = gated_pack;
    ops.migrate_freeze = gated_freeze;
    ops.migrate_frozen = gated_is_frozen;
    ops.shell = gated_shell;
    b->ops = &ops;
    fill_spec(&r1.spec, ID1, "web1", 1);
    r1.applied_generation = 1;
    r1.desired = STORE_DESIRED_RUNNING;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_int_equal(b->ops->start(b, &r1.spec, &r1.ids, &r1.rt), 0);
    fill_spec(&r2.spec, ID2, "web2", 1);
    r2.applied_generation = 1;
    r2.desired = STORE_DESIRED_RUNNING;
    assert_int_equal(b->ops->create(b, &r2.spec, &r2.ids), 0);
    assert_int_equal(b->ops->start(b, &r2.spec, &r2.ids, &r2.rt), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    assert_int_equal(store_put(s, &r2), 0);
    store_close(&s);
    start_agent(f, b);
    handshake(f, &hello);
    msg_clear(&hello);
}

static char exec_argv0[] = "echo", exec_argv1[] = "hello";
static char *exec_argv[] = {exec_argv0, exec_argv1, NULL};

static uint64_t
send_exec(struct fixture *f, const char *id)
{
    struct msg x = {.type = MSG_GUEST_EXEC};

    strcpy(x.u.exec.id, id);
    x.u.exec.argc = 2;
    x.u.exec.argv = exec_argv;
    return send_cmd(f, &x);
}

/* Steps the agent's loop until the gated exec has started. */
static void
await_exec_entered(struct fixture *f)
{
    uint64_t until = time_mono_ms() + AGENT_TEST_WAIT_MS;
    struct pollfd p = {.fd = exec_entered[0], .events = POLLIN};
    char c;

    while (time_mono_ms() < until) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (poll(&p, 1, 5) == 1 && read(exec_entered[0], &c, 1) == 1)
            return;
    }
    fail_msg("the gated exec did not start within %d ms", AGENT_TEST_WAIT_MS);
}

/* Sends an export of id (its pack gated) and awaits its "progress": the
 * pack is queued, the guest's move_frozen set. Returns the operation's ref. */
static uint64_t
send_export(struct fixture *f, const char *id)
{
    struct msg x = {.type = MSG_MIGRATE_SEND}, m;

    strcpy(x.u.migrate.op, ID3);
    strcpy(x.u.migrate.id, id);
    strcpy(x.u.migrate.peer, "n2");
    memset(x.u.migrate.secret, 'a', MIGRATE_SECRET_LEN);
    strcpy(x.u.migrate.endpoint, "tcp://127.0.0.1:9");
    x.u.migrate.archive = true;
    uint64_t ref = send_cmd(f, &x);
    recv_msg(f, &m, "the export's progress");
    assert_int_equal(m.type, MSG_MIGRATE_STATUS);
    assert_int_equal(m.u.migrate_status.ref, ref);
    assert_string_equal(m.u.migrate_status.state, "progress");
    msg_clear(&m);
    return ref;
}

/* Ends the gated export: its pack fails (and thaws unless pack_thaw_fails).
 * Returns whether its failure says the guest is left frozen. */
static bool
end_export(struct fixture *f)
{
    struct msg m;

    gate_release(pack_gate);
    recv_msg(f, &m, "the export's end");
    assert_int_equal(m.type, MSG_MIGRATE_STATUS);
    assert_string_equal(m.u.migrate_status.state, "failed");
    bool left = strstr(m.u.migrate_status.message, "left frozen") != NULL;
    msg_clear(&m);
    return left;
}

/* An exec accepted before a move's (here an export's) freeze was queued,
 * and still waiting in the exec lane behind another guest's, is checked
 * again as the lane takes it up: refused, busy, as one that came after.
 * It ran into the frozen guest: its helper froze as it joined, it held the
 * lane (every guest's execs) for its whole timeout, and ran at the thaw. */
static void
test_move_frozen_queued_exec(void **state)
{
    struct fixture *f = *state;
    struct msg m;

    start_gated(f);
    strcpy(gate_id, ID2);
    uint64_t ref2 = send_exec(f, ID2);
    await_exec_entered(f); /* ID2's holds the lane */
    uint64_t ref1 = send_exec(f, ID1);
    (void)send_export(f, ID1);
    gate_release(exec_gate);
    recv_msg(f, &m, "the exec result of the other guest");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, ref2);
    msg_clear(&m);
    expect_move_frozen(f, ref1);
    assert_false(end_export(f));
    /* Thawed: the guest's exec runs again. */
    ref1 = send_exec(f, ID1);
    recv_msg(f, &m, "the exec result after the export");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, ref1);
    msg_clear(&m);
}

/* An exec running when a move's (here an export's) freeze is queued is
 * answered at once, busy, saying its command was killed, and the exec lane
 * goes on with the other guests' execs: it froze with the guest and held
 * the lane until its timeout (up to an hour), and the command ran on at the
 * thaw. The guest's processes end on this node at a move's finish anyway
 * (the guest starts again on the target). */
static void
test_move_frozen_running_exec(void **state)
{
    struct fixture *f = *state;
    struct msg m;

    start_gated(f);
    strcpy(gate_id, ID1);
    uint64_t ref1 = send_exec(f, ID1);
    await_exec_entered(f);
    (void)send_export(f, ID1);
    recv_msg(f, &m, "the answer to the running exec");
    if (m.type != MSG_NACK)
        fail_msg("awaiting a nack, got %s", msg_type_name(m.type));
    assert_int_equal(m.u.nack.ref, ref1);
    assert_string_equal(msg_error_name(m.u.nack.code), msg_error_name(MSG_ERR_BUSY));
    assert_non_null(strstr(m.u.nack.message, "frozen for a move"));
    assert_non_null(strstr(m.u.nack.message, "command was killed"));
    msg_clear(&m);
    /* The lane is free while the export holds the guest. */
    uint64_t ref2 = send_exec(f, ID2);
    recv_msg(f, &m, "the exec result of the other guest");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, ref2);
    msg_clear(&m);
    assert_false(end_export(f));
}

/* An export whose pack could not thaw the guest after it failed says so,
 * and the guest stays refused (busy, frozen) until the abort (the master's,
 * on the export's failure) thaws it: the pack's end cleared the flag
 * whatever it left, and an exec then froze as it joined, as before the
 * flag. The abort's thaw clears it. */
static void
test_pack_thaw_failed(void **state)
{
    struct fixture *f = *state;
    struct msg m;

    start_gated(f);
    atomic_store(&pack_thaw_fails, true);
    (void)send_export(f, ID1);
    assert_true(end_export(f));
    expect_move_frozen(f, send_exec(f, ID1));

    struct msg x = {.type = MSG_MIGRATE_ABORT};
    strcpy(x.u.migrate.op, ID3);
    strcpy(x.u.migrate.id, ID1);
    strcpy(x.u.migrate.role, "source");
    uint64_t ref = send_cmd(f, &x);
    recv_msg(f, &m, "the abort's answer");
    assert_int_equal(m.type, MSG_MIGRATE_STATUS);
    assert_int_equal(m.u.migrate_status.ref, ref);
    assert_string_equal(m.u.migrate_status.state, "done");
    msg_clear(&m);
    assert_false(atomic_load(&gated_frozen));
    ref = send_exec(f, ID1);
    recv_msg(f, &m, "the exec result after the abort");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, ref);
    msg_clear(&m);
}

/* A move's freeze that fails with the guest frozen (an agent restarted
 * while a move held it, whose last pass the master sends again, or a
 * freeze whose undo failed) leaves it refused until the abort's thaw: a
 * failed freeze cleared the flag whatever it left. */
static void
test_freeze_failed_frozen(void **state)
{
    struct fixture *f = *state;
    struct msg x = {.type = MSG_MIGRATE_SEND}, m;

    start_gated(f);
    atomic_store(&gated_frozen, true); /* as the agent's start-up found it */
    atomic_store(&freeze_fails, true);
    strcpy(x.u.migrate.op, ID3);
    strcpy(x.u.migrate.id, ID1);
    strcpy(x.u.migrate.peer, "n2");
    memset(x.u.migrate.secret, 'a', MIGRATE_SECRET_LEN);
    strcpy(x.u.migrate.endpoint, "tcp://127.0.0.1:9");
    x.u.migrate.live = true;
    uint64_t ref = send_cmd(f, &x);
    bool failed = false;
    while (!failed) {
        recv_msg(f, &m, "the send's failure");
        assert_int_equal(m.type, MSG_MIGRATE_STATUS);
        assert_int_equal(m.u.migrate_status.ref, ref);
        failed = strcmp(m.u.migrate_status.state, "failed") == 0;
        if (failed)
            assert_non_null(strstr(m.u.migrate_status.message, "left frozen"));
        msg_clear(&m);
    }
    expect_move_frozen(f, send_exec(f, ID1));

    struct msg ab = {.type = MSG_MIGRATE_ABORT};
    strcpy(ab.u.migrate.op, ID3);
    strcpy(ab.u.migrate.id, ID1);
    strcpy(ab.u.migrate.role, "source");
    ref = send_cmd(f, &ab);
    recv_msg(f, &m, "the abort's answer");
    assert_int_equal(m.type, MSG_MIGRATE_STATUS);
    assert_int_equal(m.u.migrate_status.ref, ref);
    assert_string_equal(m.u.migrate_status.state, "done");
    msg_clear(&m);
    ref = send_exec(f, ID1);
    recv_msg(f, &m, "the exec result after the abort");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, ref);
    msg_clear(&m);
}

/* A shell accepted before a move's (here an export's) freeze was queued,
 * whose helper then froze as it joined, is answered as one that came
 * after: busy, frozen for a move, not "timed out". */
static void
test_move_frozen_shell_started(void **state)
{
    struct fixture *f = *state;
    struct msg sh = {.type = MSG_SHELL_OPEN};

    start_gated(f);
    strcpy(sh.u.shell.id, ID1);
    sh.u.shell.session = 1;
    uint64_t ref = send_cmd(f, &sh);
    await_exec_entered(f);
    (void)send_export(f, ID1);
    gate_release(exec_gate);
    expect_move_frozen(f, ref);
    assert_false(end_export(f));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_move_frozen_queued_exec, setup, teardown_gates),
        cmocka_unit_test_setup_teardown(test_move_frozen_running_exec, setup, teardown_gates),
        cmocka_unit_test_setup_teardown(test_pack_thaw_failed, setup, teardown_gates),
        cmocka_unit_test_setup_teardown(test_freeze_failed_frozen, setup, teardown_gates),
        cmocka_unit_test_setup_teardown(test_move_frozen_shell_started, setup, teardown_gates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
