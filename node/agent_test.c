/* Tests for node/agent: the agent with the sim backend, driven by the test
 * acting as the master through a real ZeroMQ ROUTER socket (ipc:// in a
 * private temporary directory) and the real codec.
 *
 * The test runs the agent's libuv loop in UV_RUN_NOWAIT steps and polls the
 * router between them until the frame it expects arrives. Waits are bounded
 * (AGENT_TEST_WAIT_MS, a guard against hangs that fails with what was
 * awaited); nothing asserts how long anything takes. */
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include <msgpack.h>
#include <zmq.h>

#include "common/mem.h"
#include "common/mtime.h"
#include "common/sanitizer.h"
#include "node/agent.h"
#include "node/sim/sim.h"
#include "node/store.h"
#include "proto/link.h"
#include "proto/msg.h"

#define AGENT_TEST_WAIT_MS 10000 /* guard against a hang, not a timing assert */
#define NODE               "n1"

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"
#define ID3 "33333333-3333-4333-8333-333333333333"

struct fixture {
    char dir[64];          /* private temporary directory */
    char ep[128];          /* the router's endpoint, ipc:// in dir */
    char state[128];       /* the agent's state directory in dir */
    uv_loop_t loop;        /* the agent's loop, stepped by the test */
    link_t *router;        /* the test's master end */
    agent_t *agent;        /* the agent under test */
    backend_t *backend;    /* the agent's sim backend (owned by the agent) */
    uint64_t next_id;      /* the test's request ids */
    uint32_t heartbeat_ms; /* the agent's heartbeat interval */
    uint32_t usage_ms;     /* the agent's usage interval, 0 = an hour (none in a test) */
    uint32_t max_guests;   /* the sim backend's, as hello says (8 unless a test asks) */
    bool track_heap;       /* recv_any records the heap's bytes in use after each step */
    size_t heap_peak;      /* the most seen while track_heap */
};

static void
fill_spec(struct guest_spec *s, const char *id, const char *name, uint64_t generation)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->id, id);
    strcpy(s->name, name);
    s->generation = generation;
    strcpy(s->template_name, "busybox");
    s->limits.memory = 256ULL << 20;
    s->limits.cpu_max = 500;
    s->limits.disk = 1ULL << 30;
    s->limits.inodes = 100000;
    s->limits.procs = 64;
}

/* ---- the master's side ---------------------------------------------- */

/* Steps the agent's loop and polls the router until a frame arrives; decodes
 * it into m. Fails the test, naming what, when nothing comes in time. */
static void
recv_any(struct fixture *f, struct msg *m, const char *what)
{
    uint64_t until = time_mono_ms() + AGENT_TEST_WAIT_MS;
    char peer[LINK_PEER_SIZE];
    char err[256];

    while (time_mono_ms() < until) {
        void *buf = NULL;
        size_t len = 0;

        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (f->track_heap && mallinfo2().uordblks > f->heap_peak)
            f->heap_peak = mallinfo2().uordblks;
        int r = link_recv(f->router, peer, sizeof(peer), &buf, &len);
        if (r == 0) {
            assert_string_equal(peer, NODE);
            r = msg_decode(buf, len, m, err, sizeof(err));
            free(buf);
            if (r < 0)
                fail_msg("the agent sent an undecodable frame while awaiting %s: %s", what, err);
            return;
        }
        assert_int_equal(r, -EAGAIN);
        zmq_pollitem_t it = {.socket = link_zsocket(f->router), .events = ZMQ_POLLIN};
        (void)zmq_poll(&it, 1, 5);
    }
    fail_msg("no %s from the agent within %d ms", what, AGENT_TEST_WAIT_MS);
}

static void
send_raw(struct fixture *f, const void *buf, size_t len)
{
    assert_int_equal(link_send(f->router, NODE, buf, len), 0);
}

/* Sends m with a fresh request id; returns the id. */
static uint64_t
send_cmd(struct fixture *f, struct msg *m)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;

    m->id = ++f->next_id;
    assert_int_equal(msg_encode(m, &buf, &len), 0);
    send_raw(f, buf, len);
    return m->id;
}

/* Echoes a heartbeat, as the master does (the agent takes three silent
 * intervals for a dead link). */
static void
echo_heartbeat(struct fixture *f, const struct msg *hb)
{
    struct msg m = {.type = MSG_HEARTBEAT};

    m.u.heartbeat = hb->u.heartbeat;
    send_cmd(f, &m);
}

/* The next frame that is not a heartbeat (heartbeats are echoed). Events
 * and exec results are acknowledged as the master does once they are
 * stored, so the agent's outbox does not send them again. */
static void
recv_msg(struct fixture *f, struct msg *m, const char *what)
{
    for (;;) {
        recv_any(f, m, what);
        if (m->type == MSG_EVENT || m->type == MSG_EXEC_RESULT) {
            struct msg ack = {.type = MSG_ACK};
            ack.u.ack.ref = m->id;
            send_cmd(f, &ack);
        }
        if (m->type != MSG_HEARTBEAT)
            return;
        echo_heartbeat(f, m);
        msg_clear(m);
    }
}

static uint64_t
send_apply(struct fixture *f, const struct guest_spec *s)
{
    struct msg m = {.type = MSG_GUEST_APPLY};

    m.u.apply = *s;
    return send_cmd(f, &m);
}

static uint64_t
send_guest(struct fixture *f, enum msg_type type, const char *id)
{
    struct msg m = {.type = type};

    strcpy(m.u.guest.id, id);
    m.u.guest.generation = 1; /* the node does not look at it */
    if (type == MSG_GUEST_STOP)
        m.u.guest.timeout = 5;
    return send_cmd(f, &m);
}

static void
expect_ack(struct fixture *f, uint64_t ref, const char *id, uint64_t generation, bool running)
{
    struct msg m;
    char what[64];

    snprintf(what, sizeof(what), "ack of request %llu", (unsigned long long)ref);
    recv_msg(f, &m, what);
    if (m.type != MSG_ACK)
        fail_msg("awaiting %s, got %s (%s)", what, msg_type_name(m.type),
                 m.type == MSG_NACK ? m.u.nack.message : "");
    assert_int_equal(m.u.ack.ref, ref);
    assert_string_equal(m.u.ack.id, id);
    assert_int_equal(m.u.ack.generation, generation);
    assert_int_equal(m.u.ack.running, running);
    msg_clear(&m);
}

static void
expect_nack(struct fixture *f, uint64_t ref, enum msg_error code)
{
    struct msg m;
    char what[64];

    snprintf(what, sizeof(what), "nack of request %llu", (unsigned long long)ref);
    recv_msg(f, &m, what);
    if (m.type != MSG_NACK)
        fail_msg("awaiting %s, got %s", what, msg_type_name(m.type));
    assert_int_equal(m.u.nack.ref, ref);
    assert_string_equal(msg_error_name(m.u.nack.code), msg_error_name(code));
    assert_true(m.u.nack.message[0] != '\0');
    msg_clear(&m);
}

static void
expect_event(struct fixture *f, const char *id, const char *kind)
{
    struct msg m;
    char what[64];

    snprintf(what, sizeof(what), "event \"%s\"", kind);
    recv_msg(f, &m, what);
    if (m.type != MSG_EVENT)
        fail_msg("awaiting %s, got %s", what, msg_type_name(m.type));
    assert_string_equal(m.u.event.id, id);
    assert_string_equal(m.u.event.kind, kind);
    msg_clear(&m);
}

/* Receives hello (checking the node's facts), answers welcome; returns the
 * hello for the caller to look at its inventory (msg_clear it). */
static void
handshake(struct fixture *f, struct msg *hello)
{
    struct msg w = {.type = MSG_WELCOME};

    recv_msg(f, hello, "hello");
    assert_int_equal(hello->type, MSG_HELLO);
    assert_string_equal(hello->u.hello.node, NODE);
    assert_string_equal(hello->u.hello.backend, "sim");
    assert_int_equal(hello->u.hello.cpus, 8000);
    assert_int_equal(hello->u.hello.max_guests, f->max_guests);
    w.u.welcome.heartbeat_ms = f->heartbeat_ms;
    w.u.welcome.usage_ms = 3600 * 1000;
    w.u.welcome.ref = hello->id;
    send_cmd(f, &w);
}

/* ---- fixture -------------------------------------------------------- */

static bool writes_failing; /* store_writes_fail is on (teardown turns it off) */
static rlim_t fsize_saved;  /* the file size limit before */

/* The agent's record writes fail (as on a host whose disk is full) while
 * on: the process's file size limit at one byte, SIGXFSZ ignored, so a put's
 * write gets EFBIG. The test's own files are not written meanwhile. */
static void
store_writes_fail(bool on)
{
    struct rlimit rl;

    if (on == writes_failing)
        return;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
    if (on) {
        signal(SIGXFSZ, SIG_IGN);
        fsize_saved = rl.rlim_cur;
        rl.rlim_cur = 1;
    } else {
        rl.rlim_cur = fsize_saved;
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
    writes_failing = on;
}

/* A sim backend of max_guests whose guests take stop_delay_ms to halt
 * after the signal. */
static backend_t *
new_backend_of(uint32_t max_guests, uint32_t stop_delay_ms)
{
    struct sim_config sc = {
        .cpus = 8000,
        .memory = 16ULL << 30,
        .disk = 100ULL << 30,
        .max_guests = max_guests,
        .seed = 7,
        .stop_delay_ms = stop_delay_ms,
    };
    return sim_backend_new(&sc);
}

static backend_t *
new_backend_slow(uint32_t stop_delay_ms)
{
    return new_backend_of(8, stop_delay_ms); /* setup's f->max_guests */
}

static backend_t *
new_backend(void)
{
    return new_backend_slow(0);
}

/* Starts the agent on backend (taken), on the fixture's disk store. */
static void
start_agent(struct fixture *f, backend_t *backend)
{
    struct agent_config cfg = {
        .heartbeat_ms = f->heartbeat_ms,
        .usage_ms = f->usage_ms ? f->usage_ms : 3600 * 1000, /* none unless a test asks */
        .fake_pids = true,
    };
    int err = 0;

    strcpy(cfg.name, NODE);
    strcpy(cfg.master, f->ep);
    strcpy(cfg.state_dir, f->state);
    f->backend = backend;
    f->agent = agent_new(&f->loop, &cfg, backend, &err);
    if (!f->agent)
        fail_msg("agent_new: %s", strerror(-err));
}

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    int err = 0;

    snprintf(f->dir, sizeof(f->dir), "/tmp/vf-agent-%d-XXXXXX", (int)getpid());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->ep, sizeof(f->ep), "ipc://%s/master", f->dir);
    snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->router = link_new_router(f->ep, &err);
    assert_non_null(f->router);
    /* The agent's first hello usually goes before its connection is up and
     * is dropped (link.h: nothing is queued for an absent peer); it is sent
     * again on a heartbeat tick HELLO_RETRY_MS (2 s) later. The test echoes
     * heartbeats as the master does, so this interval only sets that pace. */
    f->heartbeat_ms = 1000;
    f->max_guests = 8;
    *state = f;
    return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Shuts the agent down, runs its loop dry (queued jobs finish first) and
 * checks that no handle was left open. */
static void
stop_agent(struct fixture *f)
{
    if (!f->agent)
        return;
    agent_shutdown(f->agent);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    agent_destroy(&f->agent);
    assert_null(f->agent);
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    store_writes_fail(false);
    stop_agent(f);
    link_destroy(&f->router);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- tests ---------------------------------------------------------- */

/* The record the agent's store holds for id, read as vfleet-node ls would. */
static bool
stored(struct fixture *f, const char *id, struct store_record *out)
{
    store_t *s = NULL;

    assert_true(store_open_readonly(f->state, &s) >= 0);
    const struct store_record *rec = store_get(s, id);
    if (rec && out)
        *out = *rec;
    store_close(&s);
    return rec != NULL;
}

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

static uint64_t
send_apply_start(struct fixture *f, const struct guest_spec *s)
{
    struct msg m = {.type = MSG_GUEST_APPLY_START};

    m.u.apply = *s;
    return send_cmd(f, &m);
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
    ack.u.ack.ref = m.id;
    msg_clear(&m);
    send_cmd(f, &ack);
    assert_true(recv_usage(f, &m, AGENT_TEST_WAIT_MS));
    uint64_t unread = m.id;
    msg_clear(&m);
    /* This one is not acked: no other comes in 8 intervals. */
    assert_false(recv_usage(f, &m, 400));
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

/* An apply whose record cannot be written is nacked and leaves the guest as
 * it was: the master's retry of it does the work again, and is acked only
 * once the record says the new generation (not at once, from memory, with
 * the record never written). */
static void
test_apply_unrecorded(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "web1", 1);
    expect_ack(f, send_apply(f, &s), ID1, 1, false);

    fill_spec(&s, ID1, "web1", 2);
    s.limits.memory = 512ULL << 20;
    store_writes_fail(true);
    expect_nack(f, send_apply(f, &s), MSG_ERR_INTERNAL);
    /* The master's retry: still not recorded, so not acked. */
    expect_nack(f, send_apply(f, &s), MSG_ERR_INTERNAL);
    store_writes_fail(false);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 1);

    /* With the disk writable again, the retry is applied and recorded. */
    expect_ack(f, send_apply(f, &s), ID1, 2, false);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 2);
    assert_int_equal(rec.spec.limits.memory, 512ULL << 20);

    /* guest.apply.start the same: its start is undone ("stopped"), the
     * spec rolled back, and the retry with space runs and records both. */
    fill_spec(&s, ID1, "web1", 3);
    s.limits.memory = 384ULL << 20;
    store_writes_fail(true);
    expect_nack(f, send_apply_start(f, &s), MSG_ERR_INTERNAL);
    expect_event(f, ID1, "stopped");
    store_writes_fail(false);
    expect_ack(f, send_apply_start(f, &s), ID1, 3, true);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.applied_generation, 3);
    assert_int_equal(rec.spec.limits.memory, 384ULL << 20);
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    assert_true(rec.rt.pid != 0);
}

/* Waits for the agent's next heartbeat (other frames skipped) and echoes it. */
static void
next_heartbeat(struct fixture *f)
{
    struct msg m;

    for (;;) {
        recv_any(f, &m, "heartbeat");
        if (m.type == MSG_HEARTBEAT)
            break;
        msg_clear(&m);
    }
    echo_heartbeat(f, &m);
    msg_clear(&m);
}

/* A stop whose record cannot be written is nacked (the guest stopped all
 * the same); the record is written by the agent itself on a heartbeat once
 * the disk takes it, not left saying running until the master sends the stop
 * again (an agent restarted from it takes the stop for the guest's own exit). */
static void
test_record_retried(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend());
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "web1", 1);
    expect_ack(f, send_apply(f, &s), ID1, 1, false);
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID1), ID1, 1, true);

    store_writes_fail(true);
    uint64_t stop = send_guest(f, MSG_GUEST_STOP, ID1);
    expect_event(f, ID1, "stopped");
    expect_nack(f, stop, MSG_ERR_INTERNAL);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    /* A heartbeat with the disk still full changes nothing. */
    next_heartbeat(f);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_RUNNING);
    store_writes_fail(false);

    /* The next heartbeat comes after the write. */
    next_heartbeat(f);
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
    assert_int_equal(rec.rt.pid, 0);
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

/* An agent killed between a start's spawn and its record write leaves the
 * guest running with a record that says it is not (desired running, no
 * pid). The agent started from that record kills what runs: the start sent
 * again (never acked) made a second init of the guest on the linux backend,
 * and a stop took it for not running. */
static void
test_unrecorded_run_killed(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct store_record r1 = {0};
    struct guest_runtime rt = {0};
    enum guest_state st = GUEST_ABSENT;
    store_t *s = NULL;
    struct msg hello;

    fill_spec(&r1.spec, ID1, "web1", 4);
    r1.applied_generation = 4;
    r1.desired = STORE_DESIRED_RUNNING;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    assert_int_equal(b->ops->start(b, &r1.spec, &r1.ids, &rt), 0);
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0); /* r1.rt: the start's never written */
    store_close(&s);

    start_agent(f, b);
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 1);
    assert_false(hello.u.hello.inventory[0].running);
    msg_clear(&hello);
    assert_int_equal(b->ops->state(b, &r1.spec, &rt, &st), 0);
    assert_int_equal(st, GUEST_STOPPED);
}

/* An agent killed in a create with its start (guest.apply.start) before the
 * create's first record write leaves the guest running with no record at
 * all. The create sent again kills what runs of it before it creates and
 * starts: on the linux backend the start beside it made a second init. */
static void
test_unrecorded_create_killed(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct guest_spec s;
    struct guest_ids ids = {0};
    struct guest_runtime first = {0};
    struct store_record rec;
    enum guest_state st = GUEST_ABSENT;
    struct msg hello;

    fill_spec(&s, ID1, "web1", 1);
    assert_int_equal(b->ops->create(b, &s, &ids), 0);
    assert_int_equal(b->ops->start(b, &s, &ids, &first), 0);

    start_agent(f, b);
    handshake(f, &hello);
    assert_int_equal(hello.u.hello.n_inventory, 0);
    msg_clear(&hello);
    expect_ack(f, send_apply_start(f, &s), ID1, 1, true);
    assert_true(stored(f, ID1, &rec));
    assert_true(rec.rt.pid != 0);
    /* The init that ran unrecorded is gone; the recorded one runs. */
    assert_int_equal(b->ops->state(b, &s, &first, &st), 0);
    assert_int_equal(st, GUEST_STOPPED);
    assert_true(rec.rt.pid != first.pid);
}

/* A stop is recorded (desired stopped) before the signal, and an agent
 * started from a record that says so, its init gone, takes the exit for the
 * stop's, not the guest's own: an agent killed between the exit and the
 * stop's record write left desired running, and the restart policy started
 * the guest the master had stopped. */
static void
test_stop_recorded_first(void **state)
{
    struct fixture *f = *state;
    struct guest_spec s;
    struct store_record rec;
    struct msg hello;

    start_agent(f, new_backend_slow(3600 * 1000));
    handshake(f, &hello);
    msg_clear(&hello);
    fill_spec(&s, ID1, "slow", 1);
    s.restart = SPEC_RESTART_ALWAYS;
    expect_ack(f, send_apply(f, &s), ID1, 1, false);
    expect_ack(f, send_guest(f, MSG_GUEST_START, ID1), ID1, 1, true);
    struct msg m = {.type = MSG_GUEST_STOP};
    strcpy(m.u.guest.id, ID1);
    m.u.guest.generation = 1;
    m.u.guest.timeout = 3600;
    (void)send_cmd(f, &m);
    /* Still stopping (the sim's guest halts an hour after the signal). */
    for (int i = 0; i < 100; i++) {
        assert_true(stored(f, ID1, &rec));
        if (rec.desired == STORE_DESIRED_STOPPED)
            break;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
    assert_true(rec.rt.pid != 0);
}

static void
test_stop_exited_away(void **state)
{
    struct fixture *f = *state;
    backend_t *b = new_backend();
    struct store_record r1 = {0};
    store_t *s = NULL;
    struct msg hello;

    /* What an agent killed after the stop's exit left: desired stopped
     * (recorded first), the init of this boot recorded and gone. */
    fill_spec(&r1.spec, ID1, "web1", 4);
    r1.spec.restart = SPEC_RESTART_ALWAYS;
    r1.applied_generation = 4;
    r1.desired = STORE_DESIRED_STOPPED;
    assert_int_equal(b->ops->create(b, &r1.spec, &r1.ids), 0);
    r1.rt.pid = 4242;
    r1.rt.start_time = 1;
    FILE *bf = fopen("/proc/sys/kernel/random/boot_id", "re");
    assert_non_null(bf);
    assert_non_null(fgets(r1.boot_id, sizeof(r1.boot_id), bf));
    fclose(bf);
    r1.boot_id[strcspn(r1.boot_id, "\n")] = '\0';
    assert_true(store_open(f->state, &s) >= 0);
    assert_int_equal(store_put(s, &r1), 0);
    store_close(&s);

    start_agent(f, b);
    handshake(f, &hello);
    msg_clear(&hello);
    expect_event(f, ID1, "stopped");
    struct store_record rec;
    assert_true(stored(f, ID1, &rec));
    assert_int_equal(rec.rt.pid, 0);
    assert_int_equal(rec.desired, STORE_DESIRED_STOPPED);
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
        cmocka_unit_test_setup_teardown(test_unrecorded_run_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unrecorded_create_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_recorded_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_exited_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_unrecorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_heap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
