/* Hostile peers on the master's node link (master_fixture.h: an ipc://
 * endpoint, plaintext, so a peer names itself): a flood the loop cannot
 * keep up with is cut, a stream of junk does not keep the master from
 * judging its real nodes' silence, and a connection under a real node's
 * name that breaks the protocol is answered, then cut, and the real node
 * is not. The raw peers' monitors are proto/link_fixture.h's. */
#include <sys/resource.h>
#include <sys/syscall.h>

#include <zmq.h>

#include "master/master_fixture.h"
#include "proto/link.h"
#include "proto/link_fixture.h"
#include "proto/msg.h"

static void
reset_behind_max(struct fx *f)
{
    f->master->behind_max_ms = 0;
}

static bool
node_state_is(const json_t *o, const void *arg)
{
    return strcmp(str(o, "state"), arg) == 0;
}

/* A connection floods a master whose loop handles nothing of the link (as
 * one far behind): the stash reads faster than the flood limit and cuts
 * it. Before, the stash read half the limit a second, the flood rule
 * counted what was read in a second, and the flood queued in libzmq
 * without bound for as long as it went on. */
static void
test_flood_cut_while_behind(void **state)
{
    enum { FLOOD = 300000 };
    int sndhwm = 0;

    (void)state;
    on_loop(read_link_stats);
    struct link_stats st0 = fx_link_stats;
    on_loop(pause_reading);
    void *s = link_socket(ZMQ_DEALER);
    assert_non_null(s);
    assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, "flood/1", 7), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof(sndhwm)), 0);
    assert_int_equal(zmq_connect(s, F.endpoint), 0);
    for (int i = 0; i < FLOOD; i++)
        assert_int_equal(zmq_send(s, "x", 1, 0), 1);
    bool cut = false;
    for (int i = 0; i < 100 && !cut; i++) {
        usleep(100000);
        on_loop(read_link_stats);
        cut = fx_link_stats.kicked_flood > st0.kicked_flood;
    }
    on_loop(resume_reading);
    link_socket_close(&s);
    assert_true(cut);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
}

/* A peer streaming junk as fast as the master takes it. */
struct junk {
    const char *id;   /* its routing id, NULL: libzmq's own (not a valid name) */
    bool two;         /* two-frame messages (no node sends one) */
    pthread_t thread; /* sends until stop */
    bool running;     /* thread was started and not joined yet */
    bool stop;        /* set by the test thread */
    uint64_t sent;    /* messages it sent */
};

static void *
junk_main(void *arg)
{
    struct junk *j = arg;
    int timeo = 100;

    /* A stranger's CPU is not the master's (trust_junk.sh runs its junk
     * at nice 19 too): what is tested is what the master makes of what
     * arrives, not who gets the shared cores. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    void *s = link_socket(ZMQ_DEALER);
    assert_non_null(s);
    if (j->id)
        assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, j->id, strlen(j->id)), 0);
    assert_int_equal(zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeo, sizeof(timeo)), 0);
    assert_int_equal(zmq_connect(s, F.endpoint), 0);
    while (!__atomic_load_n(&j->stop, __ATOMIC_SEQ_CST))
        if ((!j->two || zmq_send(s, "ju", 2, ZMQ_SNDMORE) == 2) && zmq_send(s, "junk", 4, 0) == 4)
            j->sent++;
    link_socket_close(&s);
    return NULL;
}

/* The junk streams of the test that runs (junk_start, junk_stop). */
static struct junk junks[2];

static void
junk_start(struct junk *j)
{
    assert_int_equal(pthread_create(&j->thread, NULL, junk_main, j), 0);
    j->running = true;
}

static void
junk_stop(struct junk *j)
{
    if (!j->running)
        return;
    __atomic_store_n(&j->stop, true, __ATOMIC_SEQ_CST);
    assert_int_equal(pthread_join(j->thread, NULL), 0);
    j->running = false;
}

/* After a test with junk streams, failed or not: the streams stopped and n3
 * running. A failed assertion used to leave both as they were, and the
 * next test failed on them (test_violations_cut counted the junk stream's
 * cuts as its own, or found n3 down) after every failure of
 * test_junk_keeps_liveness. */
static int
junk_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(junks); i++)
        junk_stop(&junks[i]);
    if (!F.agents[2])
        on_loop(start_n3);
    return 0;
}

/* Streams of junk, one without a valid name and one under a name no node
 * has, for as long as a node is down: the master still finds it down, and
 * the other nodes stay ready. Before, the streams kept the link from ever
 * being found empty, the backlog (the time since) grew as long as they
 * lasted, and silence was judged only up to that far back: n3 stayed
 * ready. */
static void
test_junk_keeps_liveness(void **state)
{
    struct junk *junk = junks;
    json_t *o = NULL, *n;
    size_t k;

    (void)state;
    junk[0] = (struct junk){.id = NULL};
    junk[1] = (struct junk){.id = "junk/1"};
    on_loop(reset_behind_max);
    for (int i = 0; i < 2; i++)
        junk_start(&junk[i]);
    usleep(1000000);
    fx_stop_n3();
    json_decref(poll_until("/v1/nodes/n3", node_state_is, "down"));
    assert_int_equal(http("GET", "/v1/nodes", NULL, NULL, &o), 200);
    json_array_foreach(json_object_get(o, "nodes"), k, n) if (strcmp(str(n, "name"), "n3") != 0)
        assert_string_equal(str(n, "state"), "ready");
    json_decref(o);
    /* The backlog stayed bounded while the junk went on: the stash reads
     * it. Without the stash it grows for as long as the junk lasts
     * (10.6-11.2 s, the whole wait for n3), and before the stash dropped
     * junk it reached 2.6-10.7 s. (That what the stash drops counts as read
     * is link_stash_test's test_stash_drop: with that broken the backlog
     * here stayed at 149-486 ms, and at 53-681 ms with the stash keeping
     * unknown peers' frames, at load 6-7: the junk and violation cuts end
     * those streams now.) How far below the bound it stays is a race
     * between the junk's sender (libzmq's I/O thread, at the master's
     * priority) and the loop that reads it: in 57 runs at load 6-13 on 2
     * cores, 12-898 ms in 44, 0.9-2.9 s in 11, 5.0 and 7.0 s once each (the
     * latter fails this bound too); the bound of 1 s it had failed 11 of
     * them. The bound is the down interval: a backlog that long has a real
     * node judged down that much late. */
    uint64_t behind_max = __atomic_load_n(&F.master->behind_max_ms, __ATOMIC_SEQ_CST);
    uint64_t bound = F.master->cfg.down_after_ms;
    for (int i = 0; i < 2; i++)
        junk_stop(&junk[i]);
    print_message("backlog at most %llu ms; junk sent %llu and %llu\n",
                  (unsigned long long)behind_max, (unsigned long long)junk[0].sent,
                  (unsigned long long)junk[1].sent);
    if (behind_max >= bound)
        fail_msg("the master's backlog reached %llu ms under junk, the bound is %llu ms",
                 (unsigned long long)behind_max, (unsigned long long)bound);
    for (int i = 0; i < 2; i++)
        assert_true(junk[i].sent > 0);
    on_loop(read_link_stats);
    assert_true(fx_link_stats.kicked_junk > 0);
    on_loop(start_n3);
    assert_int_equal(F.err, 0);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
}

/* Reads what the master sent s within ms, or until *nacks reaches want (0:
 * no such end): the nacks bad_request counted in *nacks; whether the
 * connection was closed (a monitor event on mon). */
static bool
read_until_closed(void *s, void *mon, int ms, unsigned *nacks, unsigned want)
{
    for (uint64_t end = time_mono_ms() + (uint64_t)ms;
         time_mono_ms() < end && (!want || *nacks < want);) {
        zmq_pollitem_t it[2] = {{.socket = s, .events = ZMQ_POLLIN},
                                {.socket = mon, .events = ZMQ_POLLIN}};
        char buf[4096];
        if (zmq_poll(it, 2, 50) <= 0)
            continue;
        int n = zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT);
        struct msg m;
        if (n > 0 && n <= (int)sizeof(buf) && msg_decode(buf, (size_t)n, &m, NULL, 0) == 0) {
            *nacks += m.type == MSG_NACK && m.u.nack.code == MSG_ERR_BAD_REQUEST;
            msg_clear(&m);
        }
        if (mon_disconnected(mon))
            return true;
    }
    return false;
}

/* What read_peer_stats read last, of fx_peer_name. */
static struct link_peer_stats fx_peer_stats;
static const char *fx_peer_name;
static uint64_t fx_backlog;

static void
read_peer_stats(struct fx *f)
{
    (void)link_get_peer_stats(f->master->links[0].link, fx_peer_name, &fx_peer_stats);
}

static struct link_peer_stats
peer_stats(const char *name)
{
    fx_peer_name = name;
    on_loop(read_peer_stats);
    return fx_peer_stats;
}

static void
read_backlog(struct fx *f)
{
    fx_backlog = link_backlog_ms(f->master->links[0].link);
    link_get_stats(f->master->links[0].link, &fx_link_stats);
}

/* Waits (at most 60 s) until the master has read what the tests before
 * left on its link and counts nothing more of it: the backlog is 0 and the
 * link's counts stay as they are for 4 ticks. What the junk of
 * test_junk_keeps_liveness had queued was still being read, and shut, when
 * test_violations_cut took its counts: a connection of the junk's was
 * counted among those it expects to be n2's (kicked_violation 0x2d !=
 * 0x2c, once in 8 runs at load 10). */
static void
link_settle(void)
{
    struct link_stats prev = {0};

    for (int i = 0; i < 300; i++) {
        on_loop(read_backlog);
        bool same = fx_link_stats.dropped == prev.dropped &&
                    fx_link_stats.violations == prev.violations &&
                    fx_link_stats.kicked_junk == prev.kicked_junk &&
                    fx_link_stats.kicked_violation == prev.kicked_violation &&
                    fx_link_stats.kicked_flood == prev.kicked_flood;
        if (i > 0 && same && fx_backlog == 0)
            return;
        prev = fx_link_stats;
        usleep(200 * 1000);
    }
    fail_msg("the master's link did not settle in 60 s: backlog %llu ms, %llu dropped",
             (unsigned long long)fx_backlog, (unsigned long long)fx_link_stats.dropped);
}

/* A second connection under n2's name (a node gone bad, or one posing as
 * it: over CurveZMQ it would hold n2's key) sends frames that are not
 * messages: each is answered with a nack bad_request; past LINK_VIOLATIONS
 * within LINK_VIOLATION_MS its connection is closed. Then one under n3's
 * name streams two-frame messages (no node sends one), which the link
 * drops: it is cut again and again while the real n2 and n3 stay ready.
 * Before, neither was ever cut: the stream was read and dropped for as
 * long as it went on, at the master's expense. */
static void
test_violations_cut(void **state)
{
    (void)state;
    link_settle();
    on_loop(read_link_stats);
    struct link_stats st0 = fx_link_stats;
    struct link_peer_stats n2_0 = peer_stats("n2"), n3_0 = peer_stats("n3");
    void *s = link_socket(ZMQ_DEALER);
    assert_non_null(s);
    assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, "n2/bad", 6), 0);
    void *mon = monitor_disconnect(s, "inproc://master-viol-mon");
    assert_int_equal(zmq_connect(s, F.endpoint), 0);
    unsigned nacks = 0;
    for (int i = 0; i < LINK_VIOLATIONS; i++)
        assert_int_equal(zmq_send(s, "\xc1 not msgpack", 14, 0), 14);
    /* All answered (however long a loaded machine takes), none cut; then
     * a moment more for a cut that would come late. */
    assert_false(read_until_closed(s, mon, 20000, &nacks, LINK_VIOLATIONS));
    assert_false(read_until_closed(s, mon, 300, &nacks, 0));
    assert_int_equal(nacks, LINK_VIOLATIONS);
    /* Counted by name: what other names do meanwhile is not n2's. */
    assert_int_equal(peer_stats("n2").kicked_violation, n2_0.kicked_violation);
    assert_int_equal(peer_stats("n2").violations, n2_0.violations + LINK_VIOLATIONS);
    assert_int_equal(zmq_send(s, "\xc1 not msgpack", 14, 0), 14);
    assert_true(read_until_closed(s, mon, 10000, &nacks, 0));
    assert_int_equal(peer_stats("n2").kicked_violation, n2_0.kicked_violation + 1);
    on_loop(read_link_stats);
    assert_string_equal(fx_link_stats.violator, "n2");
    (void)zmq_socket_monitor(s, NULL, 0);
    link_socket_close(&mon);
    link_socket_close(&s);

    struct junk *j = &junks[0];
    *j = (struct junk){.id = "n3/bad", .two = true};
    junk_start(j);
    bool cut = false;
    for (int i = 0; i < 100 && !cut; i++) {
        usleep(100000);
        cut = peer_stats("n3").kicked_violation >= n3_0.kicked_violation + 3;
    }
    on_loop(read_link_stats);
    junk_stop(j);
    print_message("two-frame messages sent %llu; violations %llu, connections cut %llu\n",
                  (unsigned long long)j->sent,
                  (unsigned long long)(fx_link_stats.violations - st0.violations),
                  (unsigned long long)(fx_link_stats.kicked_violation - st0.kicked_violation));
    assert_true(cut);
    assert_int_equal(fx_link_stats.kicked_junk, st0.kicked_junk);
    /* The real nodes' connections were not touched: they stay ready, and
     * their messages are read (a node not heard from goes suspect). */
    usleep(500000);
    json_decref(poll_until("/v1/nodes", nodes_ready, NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_cut_while_behind),
        cmocka_unit_test_teardown(test_junk_keeps_liveness, junk_teardown),
        cmocka_unit_test_teardown(test_violations_cut, junk_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
