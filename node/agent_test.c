/* Tests for node/agent: its lifecycle, usage, frames, lanes, stops, hello
 * and heap, with the fixture of agent_fixture.h. The record's tests (a
 * record that cannot be written, an agent killed before it was) are in
 * agent_record_test.c. */
#include "node/agent_fixture.h"

#include <fcntl.h>

#include "node/agent_internal.h"
#include "node/lane.h"

static void
test_lifecycle(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello, m;

    start_agent(f, new_backend());
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 0);
    msg_clear(&hello);

    /* apply + start: acks, then the guest runs. */
    fill_spec(&s, ID1, "web1", 1);
    uint64_t apply = send_apply(f, &s);
    uint64_t start = send_guest(f, MSG_GUEST_START, ID1);
    expect_ack(f, apply, ID1, 1, false);
    /* The ack says it runs; no "started" event (the next frame is the next ack). */
    expect_ack(f, start, ID1, 1, true);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 1);
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    assert_true(rec.rt.pid != 0);

    /* A newer generation is applied; an older one is acked and changes nothing. */
    fill_spec(&s, ID1, "web1", 3);
    s.limits.memory = 512ULL << 20;
    expect_ack(f, send_apply(f, &s), ID1, 3, true);
    fill_spec(&s, ID1, "web1", 2);
    s.limits.memory = 128ULL << 20;
    expect_ack(f, send_apply(f, &s), ID1, 3, true);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 3);
    assert_int_equal(rec.spec.generation, 3);
    assert_int_equal(rec.spec.limits.memory, 512ULL << 20);

    /* exec: the sim echoes its argv. */
    char *argv[] = {"echo", "hello", NULL};
    struct msg x = {.type = MSG_GUEST_EXEC};
    strcpy(x.u.exec.id, ID1);
    x.u.exec.argc = 2;
    x.u.exec.argv = argv;
    uint64_t exec = send_cmd(f, &x);
    recv_msg(f, &m, "exec result");
    assert_int_equal(m.type, MSG_EXEC_RESULT);
    assert_int_equal(m.u.exec_result.ref, exec);
    assert_string_equal(m.u.exec_result.id, ID1);
    assert_int_equal(m.u.exec_result.exit_code, 0);
    assert_int_equal(m.u.exec_result.out_len, strlen("echo hello\n"));
    assert_memory_equal(m.u.exec_result.out, "echo hello\n", m.u.exec_result.out_len);
    msg_clear(&m);

    /* stop: the event, then the stop's ack once init is gone. */
    uint64_t stop = send_guest(f, MSG_GUEST_STOP, ID1);
    expect_event(f, ID1, "stopped");
    expect_ack(f, stop, ID1, 3, false);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
    assert_int_equal(rec.rt.pid, 0);
    /* Stop of a stopped guest is acked; exec into it is refused. */
    expect_ack(f, send_guest(f, MSG_GUEST_STOP, ID1), ID1, 3, false);
    x.u.exec.argv = argv;
    expect_nack(f, send_cmd(f, &x), MSG_ERR_CONFLICT);

    /* destroy: ack, event, the record is gone; destroying again is acked. */
    uint64_t destroy = send_guest(f, MSG_GUEST_DESTROY, ID1);
    expect_ack(f, destroy, ID1, 3, false);
    expect_event(f, ID1, "destroyed");
    assert_false(stored(f, ID1, NULL));
    expect_ack(f, send_guest(f, MSG_GUEST_DESTROY, ID1), ID1, 0, false);
    expect_nack(f, send_guest(f, MSG_GUEST_START, ID1), MSG_ERR_NOT_FOUND);
}

/* guest.apply.start: one answer for the apply and the start; the start part
 * never nacks (a guest it cannot start is acked not running), the apply part
 * does; no "started" event for a start the master asked for. */
/* The next usage report, within the wait (other frames are skipped), or
 * false when none came in wait_ms. */
static bool
recv_usage(struct fixture *f, struct msg *m, uint64_t wait_ms)
{
    uint64_t until = time_mono_ms() + wait_ms;
    char peer[LINK_PEER_SIZE];

    while (time_mono_ms() < until) {
        void *buf = NULL;
        size_t len = 0;

        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (link_recv(f->router, peer, sizeof(peer), &buf, &len) == 0) {
            assert_int_equal(msg_decode(buf, len, m, NULL, 0), 0);
            free(buf);
            if (m->type == MSG_USAGE)
                return true;
            if (m->type == MSG_HEARTBEAT)
                echo_heartbeat(f, m);
            msg_clear(m);
            continue;
        }
        zmq_pollitem_t it = {.socket = link_zsocket(f->router), .events = ZMQ_POLLIN};
        (void)zmq_poll(&it, 1, 5);
    }
    return false;
}

/* A master that acks usage reports gets the next one only after it acked
 * the last: one report per node at most waits in a master that is behind
 * (before this change one per interval piled up). */
static void
test_usage_waits_for_ack(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct msg hello, m, ack = {.type = MSG_ACK};
    uint64_t deadline = 0;

    f->usage_ms = 50;
    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "web1", 1);
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);
    /* Not acked yet, and the master never acked one: one per interval. */
    assert_true(recv_usage(f, &m, AGENT_TEST_WAIT_MS));
    msg_clear(&m);
    assert_true(recv_usage(f, &m, AGENT_TEST_WAIT_MS));
    /* The agent learns that the master acks its reports from an ack of the
     * last one it sent. Its next interval may send another before it reads
     * the ack (the test steps its loop, and libzmq's I/O thread carries the
     * ack), and an ack of an older report is an older master's: then the
     * next one is acked, until an ack was of the last. Before, the test
     * acked once and failed when the machine was loaded (a fourth report
     * came within the 400 ms it watched). */
    for (int tries = 0;; tries++) {
        if (tries == 20)
            fail_msg("the agent never took an ack of its last usage report");
        ack.u.ack.ref = m.id;
        msg_clear(&m);
        send_cmd(f, &ack);
        assert_true(recv_usage(f, &m, AGENT_TEST_WAIT_MS));
        if (!f->agent->master_acks_usage)
            continue;
        /* Watched for 8 intervals from when the agent sent it, by its own
         * clock (it takes one unread for 10 intervals as lost, and sends
         * anyway), and for 4 at least: a test that got here later acks it
         * and watches the next. */
        assert_int_equal(f->agent->usage_unread, m.id);
        deadline = f->agent->usage_sent_ms + 8 * (uint64_t)f->usage_ms;
        if (time_mono_ms() + 4 * (uint64_t)f->usage_ms <= deadline)
            break;
    }
    uint64_t unread = m.id;
    msg_clear(&m);
    /* This one is not acked: no other comes in 8 intervals. */
    uint64_t now = time_mono_ms();
    assert_false(recv_usage(f, &m, deadline > now ? deadline - now : 0));
    ack.u.ack.ref = unread;
    send_cmd(f, &ack);
    assert_true(recv_usage(f, &m, AGENT_TEST_WAIT_MS));
    msg_clear(&m);
    stop_agent(f);
}

static void
test_apply_start(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);

    /* Created and started in one job: one ack, running. */
    fill_spec(&s, ID1, "web1", 1);
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 1);
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    assert_true(rec.rt.pid != 0);
    /* A re-send: acked as it is. */
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);

    /* Stopped, then the same generation again: only the start is done. */
    uint64_t stop = send_guest(f, MSG_GUEST_STOP, ID1);
    expect_event(f, ID1, "stopped");
    expect_ack(f, stop, ID1, 1, false);
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);
    assert_true(stored(f, ID1, &rec));
    assert_true(rec.rt.pid != 0);

    /* A locked guest is applied, not started: acked, not running (the
     * master's guest.start then gets the nack that says why). */
    fill_spec(&s, ID2, "locked1", 1);
    s.flags = SPEC_FLAG_LOCK;
    expect_ack(f, send_apply_start(f, &s), ID2, 1, false);
    assert_true(stored(f, ID2, &rec));
    assert_int_equal(rec.rt.pid, 0);
    expect_nack(f, send_guest(f, MSG_GUEST_START, ID2), MSG_ERR_LOCKED);

    /* The apply part refused: a nack. */
    fill_spec(&s, ID3, "web1", 1);
    expect_nack(f, send_apply_start(f, &s), MSG_ERR_CONFLICT);
    assert_false(stored(f, ID3, NULL));

    /* Nothing else came in between: the destroy's answer is next. */
    uint64_t destroy = send_guest(f, MSG_GUEST_DESTROY, ID1);
    expect_ack(f, destroy, ID1, 1, false);
    expect_event(f, ID1, "destroyed");
}

/* Sends {"v":v,"type":type,"id":id}, plus extra_key mapped to the number 42
 * when extra_key is set. */
static void
send_packed(struct fixture *f, uint32_t v, const char *type, uint64_t id, const char *extra_key)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, extra_key ? 4 : 3);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint32(&pk, v);
    msgpack_pack_str_with_body(&pk, "type", 4);
    msgpack_pack_str_with_body(&pk, type, strlen(type));
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_uint64(&pk, id);
    if (extra_key) {
        msgpack_pack_str_with_body(&pk, extra_key, strlen(extra_key));
        msgpack_pack_uint32(&pk, 42); /* wrong type for any guest id */
    }
    send_raw(f, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_bad_frames(void **state)
{
    struct fixture *f = *state;
    struct msg hello;
    static const char garbage[] = "\xc1 this is not msgpack";

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);

    /* A type the agent does not know: nacked with its request id. */
    send_packed(f, PROTO_VERSION, "guest.frobnicate", 77, NULL);
    expect_nack(f, 77, MSG_ERR_UNKNOWN_TYPE);
    /* A known type that is not a command for a node. */
    struct msg e = {.type = MSG_EVENT};
    strcpy(e.u.event.kind, "oom");
    expect_nack(f, send_cmd(f, &e), MSG_ERR_UNKNOWN_TYPE);
    /* A command with a mistyped field: nacked with its id. */
    send_packed(f, PROTO_VERSION, "guest.start", 78, "guest");
    expect_nack(f, 78, MSG_ERR_BAD_REQUEST);
    /* Not msgpack at all: nacked without an id (ref 0). */
    send_raw(f, garbage, sizeof(garbage) - 1);
    expect_nack(f, 0, MSG_ERR_BAD_REQUEST);
    /* An empty frame. */
    send_raw(f, "", 0);
    expect_nack(f, 0, MSG_ERR_BAD_REQUEST);
    /* A newer major version. */
    send_packed(f, PROTO_VERSION + 1, "guest.start", 79, NULL);
    expect_nack(f, 79, MSG_ERR_VERSION);

    /* Still alive and answering: a full apply + start. */
    struct guest_spec s;
    fill_spec(&s, ID2, "db1", 1);
    uint64_t apply = send_apply(f, &s);
    expect_ack(f, apply, ID2, 1, false);
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID2), ID2, 1, true);
}

/* apply, start and destroy of one guest sent back to back, before the agent
 * has run any of them: the lane runs them in order, so the answers come in
 * order (a destroy run before the start would leave the start unanswered, a
 * concurrent run could answer in any order). */
static void
test_lane_fifo(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);

    fill_spec(&s, ID3, "fifo", 1);
    uint64_t apply = send_apply(f, &s);
    uint64_t start = send_guest(f, MSG_GUEST_START, ID3);
    uint64_t destroy = send_guest(f, MSG_GUEST_DESTROY, ID3);

    expect_ack(f, apply, ID3, 1, false);
    expect_ack(f, start, ID3, 1, true);
    expect_ack(f, destroy, ID3, 1, false);
    expect_event(f, ID3, "destroyed");
    assert_false(stored(f, ID3, NULL));
}

/* A guest that ignores the halt signal is killed at the stop timeout; the
 * stop is answered then. */
static void
test_stop_timeout(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend_slow(3600 * 1000));
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "slow", 1);
    expect_ack(f, send_apply(f, &s), ID1, 1, false);
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID1), ID1, 1, true);

    struct msg m = {.type = MSG_GUEST_STOP};
    strcpy(m.u.guest.id, ID1);
    m.u.guest.generation = 1;
    m.u.guest.timeout = 1;
    uint64_t stop = send_cmd(f, &m);
    /* A second stop while the first waits: the first is answered busy. */
    uint64_t stop2 = send_cmd(f, &m);
    expect_nack(f, stop, MSG_ERR_BUSY);
    expect_event(f, ID1, "stopped");
    expect_ack(f, stop2, ID1, 1, false);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.rt.pid, 0);
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
}

/* An agent starting on a store that holds guests reports them in hello
 * (re-adoption), then heartbeats with their counts. */
static void
test_hello_inventory(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct store_record r1 = {0}, r2 = {0};
    store_t *s = NULL;
    struct msg hello, hb;

    /* A running guest and a stopped one, as a previous agent left them. */
    fill_spec(&r1.spec, ID1, "web1", 4);
    r1.applied_generation = 4;
    r1.desired = STORE_DESIRED_RUNNING;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_int_equal(b->ops->start(b, &r1.spec, &r1.ids, &r1.rt), 0);
    fill_spec(&r2.spec, ID2, "db1", 2);
    r2.applied_generation = 2;
    assert_int_equal(b->ops->create(b, &r2.spec, &r2.ids), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    assert_int_equal(store_put(s, &r2), 0);
    store_close(&s);

    start_agent(f, b);
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 2);
    for (uint32_t i = 0; i < 2; i++) {
        const struct msg_inventory_item *it = &hello.u.hello.inventory[i];
        bool first = strcmp(it->id, ID1) == 0;
        assert_true(first || strcmp(it->id, ID2) == 0);
        assert_string_equal(it->name, first ? "web1" : "db1");
        assert_int_equal(it->generation, first ? 4 : 2);
        assert_int_equal(it->running, first);
    }
    msg_clear(&hello);

    /* The re-adopted guest is not started twice: start is acked at once. */
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID1), ID1, 4, true);
    recv_any(f, &hb, "heartbeat");
    assert_int_equal(hb.type, MSG_HEARTBEAT);
    assert_int_equal(hb.u.heartbeat.n_guests, 2);
    assert_int_equal(hb.u.heartbeat.n_running, 1);
    echo_heartbeat(f, &hb);
    msg_clear(&hb);
}

/* A burst of creates queues one job per guest before the first is done.
 * A waiting job holds its guest's spec packed (a few hundred bytes), not a
 * whole struct guest_spec (17 KB): a host's agent left a burst of 100
 * creates' heap in holes of that size (docs/performance.md, "Jobs that
 * carry the spec packed"). The heap in use at the burst's peak, per guest,
 * stays well under one unpacked spec. */
#define BURST 48
static void
test_burst_heap(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct msg hello;
    uint64_t refs[BURST];
    char id[BURST][SPEC_ID_LEN + 1];

    /* AddressSanitizer's allocator is not the one mallinfo2 reports on. */
#ifdef VF_ASAN
    skip();
#endif
    f->max_guests = BURST;
    start_agent(f, new_backend_of(BURST, 0));
    handshake(f, &hello);
    msg_clear(&hello);
    size_t base = mallinfo2().uordblks;
    for (int i = 0; i < BURST; i++) {
        char name[16];
        snprintf(id[i], sizeof(id[i]), "%08x-4444-4444-8444-444444444444", i);
        snprintf(name, sizeof(name), "burst%d", i);
        fill_spec(&s, id[i], name, 1);
        refs[i] = send_apply(f, &s);
    }
    /* Lets the frames reach the agent's socket, so that it reads many at
     * once and their jobs wait together (the agent reads up to 64 a loop
     * iteration; a job is done at the earliest in the next one). */
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    f->heap_peak = base;
    f->track_heap = true;
    for (int i = 0; i < BURST; i++)
        expect_ack(f, refs[i], id[i], 1, false);
    f->track_heap = false;
    size_t per_guest = (f->heap_peak - base) / BURST;
    if (per_guest >= sizeof(struct guest_spec) / 4)
        fail_msg("%zu bytes of heap a guest at the peak of %d creates (a spec is %zu)", per_guest,
                 BURST, sizeof(struct guest_spec));
}

/* A job the test holds on the lifecycle lane, as a usage job or a move's
 * freeze holds the guest's jobs queued behind it: run waits for a byte. */
static int hold_fd[2] = {-1, -1};

static void
hold_run(void *arg)
{
    char c;
    (void)arg;
    while (read(hold_fd[0], &c, 1) < 0 && errno == EINTR)
        ;
}

static void
hold_done(void *arg)
{
    (void)arg;
}

static const struct lane_fns hold_fns = {NULL, hold_run, hold_done};

/* A start of the node's own (its restart policy's) that waits in the lane
 * while the master stops the guest, whose init had exited (the stop is
 * acked at once: the record says stopped), is not made: on main it started
 * the guest after that ack and recorded it running again. A move's freeze
 * (its record says stopped) queued ahead of such a start is the same case,
 * and there the spawner's thaw of a start's frozen cgroup ran the guest
 * here while it was moving to the target. */
static void
test_own_start_after_stop(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "web1", 1);
    s.restart = SPEC_RESTART_ON_FAILURE;
    s.restart_backoff = 3600; /* its own timer stays out of the way */
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);

    /* Its init dies: the policy will start it again. */
    struct agent_guest *g = agent_guest_find(f->agent, ID1);
    assert_non_null(g);
    assert_int_equal(sim_guest_crash(f->backend, ID1), 0);
    agent_guest_stopped(f->agent, g, 1, 0, "init exited");
    expect_event(f, ID1, "exited");
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);

    /* The policy's start waits behind a held job; the master's stop comes. */
    assert_int_equal(pipe2(hold_fd, O_CLOEXEC), 0);
    lane_push(f->agent->ops, &hold_fns, NULL);
    agent_job_start(f->agent, g, 0);
    expect_ack(f, send_guest(f, MSG_GUEST_STOP, ID1), ID1, 1, false);
    assert_int_equal(write(hold_fd[1], "x", 1), 1);
    uint64_t until = time_mono_ms() + AGENT_TEST_WAIT_MS;
    while (lane_pending(f->agent->ops) && time_mono_ms() < until)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(lane_pending(f->agent->ops), 0);
    close(hold_fd[0]);
    close(hold_fd[1]);

    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
    assert_int_equal(rec.rt.pid, 0);
    enum guest_state st = GUEST_RUNNING;
    struct guest_runtime rt = {0};
    assert_int_equal(f->backend->ops->state(f->backend, &s, &rt, &st), 0);
    assert_int_not_equal(st, GUEST_RUNNING);
    stop_agent(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_waits_for_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lane_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_inventory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_heap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_start_after_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
