/* What the agent's tests share (agent_test.c, agent_record_test.c): the
 * agent with the sim backend, driven by the test acting as the master
 * through a real ZeroMQ ROUTER socket (ipc:// in a private temporary
 * directory) and the real codec.
 *
 * The test runs the agent's libuv loop in UV_RUN_NOWAIT steps and polls the
 * router between them until the frame it expects arrives. Waits are bounded
 * (AGENT_TEST_WAIT_MS, a guard against hangs that fails with what was
 * awaited); nothing asserts how long anything takes. Static helpers,
 * included by each test program. */
#pragma once
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

#define FX_UNUSED __attribute__((unused))

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

FX_UNUSED static void
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
FX_UNUSED static void
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

FX_UNUSED static void
send_raw(struct fixture *f, const void *buf, size_t len)
{
    assert_int_equal(link_send(f->router, NODE, buf, len), 0);
}

/* Sends m with a fresh request id; returns the id. */
FX_UNUSED static uint64_t
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
FX_UNUSED static void
echo_heartbeat(struct fixture *f, const struct msg *hb)
{
    struct msg m = {.type = MSG_HEARTBEAT};

    m.u.heartbeat = hb->u.heartbeat;
    send_cmd(f, &m);
}

/* The next frame that is not a heartbeat (heartbeats are echoed). Events
 * and exec results are acknowledged as the master does once they are
 * stored, so the agent's outbox does not send them again. */
FX_UNUSED static void
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

FX_UNUSED static uint64_t
send_apply(struct fixture *f, const struct guest_spec *s)
{
    struct msg m = {.type = MSG_GUEST_APPLY};

    m.u.apply = *s;
    return send_cmd(f, &m);
}

FX_UNUSED static uint64_t
send_guest(struct fixture *f, enum msg_type type, const char *id)
{
    struct msg m = {.type = type};

    strcpy(m.u.guest.id, id);
    m.u.guest.generation = 1; /* the node does not look at it */
    if (type == MSG_GUEST_STOP)
        m.u.guest.timeout = 5;
    return send_cmd(f, &m);
}

FX_UNUSED static void
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

FX_UNUSED static void
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

FX_UNUSED static void
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
FX_UNUSED static void
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
FX_UNUSED static void
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
FX_UNUSED static backend_t *
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

FX_UNUSED static backend_t *
new_backend_slow(uint32_t stop_delay_ms)
{
    return new_backend_of(8, stop_delay_ms); /* setup's f->max_guests */
}

FX_UNUSED static backend_t *
new_backend(void)
{
    return new_backend_slow(0);
}

/* Starts the agent on backend (taken), on the fixture's disk store. */
FX_UNUSED static void
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

FX_UNUSED static int
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

FX_UNUSED static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Shuts the agent down, runs its loop dry (queued jobs finish first) and
 * checks that no handle was left open. */
FX_UNUSED static void
stop_agent(struct fixture *f)
{
    if (!f->agent)
        return;
    agent_shutdown(f->agent);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    agent_destroy(&f->agent);
    assert_null(f->agent);
}

FX_UNUSED static int
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
FX_UNUSED static bool
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

FX_UNUSED static uint64_t
send_apply_start(struct fixture *f, const struct guest_spec *s)
{
    struct msg m = {.type = MSG_GUEST_APPLY_START};

    m.u.apply = *s;
    return send_cmd(f, &m);
}
