/* Tests for master/dispatch: ids and ack matching, re-send after the
 * timeout with backoff, no re-send while the node is not ready, flush on
 * hello, coalescing of applies (in place) and starts, exec sent once, defer
 * on busy, forgetting a guest. A fake transport records frames. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "master/dispatch.h"

#define MAX_SENT 64

struct fx {
    dispatch_t *d;             /* under test */
    uint64_t now;              /* fake clock, ms */
    bool ready;                /* what the ready callback says */
    int fail;                  /* send result when nonzero */
    bool count_only;           /* only count frames (the tests with many commands) */
    size_t n_sent;             /* frames sent */
    struct msg sent[MAX_SENT]; /* decoded copies */
};

static uint64_t
fake_clock(void *userdata)
{
    return ((struct fx *)userdata)->now;
}

static int
fake_send(void *userdata, const char *node, const void *buf, size_t len)
{
    struct fx *f = userdata;

    if (f->fail)
        return f->fail;
    if (f->count_only) {
        f->n_sent++;
        return 0;
    }
    assert_true(f->n_sent < MAX_SENT);
    assert_int_equal(msg_decode(buf, len, &f->sent[f->n_sent], NULL, 0), 0);
    f->n_sent++;
    return 0;
}

static bool
fake_ready(void *userdata, const char *node)
{
    return ((struct fx *)userdata)->ready;
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct dispatch_config c = {.resend_ms = 1000,
                                .resend_max_ms = 4000,
                                .send = fake_send,
                                .ready = fake_ready,
                                .userdata = f,
                                .clock_ms = fake_clock,
                                .clock_userdata = f};

    f->ready = true;
    f->now = 100;
    f->d = dispatch_new(&c);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    for (size_t i = 0; i < f->n_sent && !f->count_only; i++)
        msg_clear(&f->sent[i]);
    dispatch_destroy(&f->d);
    assert_null(f->d);
    free(f);
    return 0;
}

static const char *G1 = "11111111-1111-4111-8111-111111111111";
static const char *G2 = "22222222-2222-4222-8222-222222222222";

static int64_t
apply(struct fx *f, const char *id, uint64_t gen)
{
    struct msg m = {.type = MSG_GUEST_APPLY};

    snprintf(m.u.apply.id, sizeof(m.u.apply.id), "%s", id);
    snprintf(m.u.apply.name, sizeof(m.u.apply.name), "g");
    snprintf(m.u.apply.template_name, sizeof(m.u.apply.template_name), "busybox");
    m.u.apply.generation = gen;
    return dispatch_queue(f->d, "h1", &m);
}

static int64_t
apply_start(struct fx *f, const char *id, uint64_t gen)
{
    struct msg m = {.type = MSG_GUEST_APPLY_START};

    snprintf(m.u.apply.id, sizeof(m.u.apply.id), "%s", id);
    snprintf(m.u.apply.name, sizeof(m.u.apply.name), "g");
    snprintf(m.u.apply.template_name, sizeof(m.u.apply.template_name), "busybox");
    m.u.apply.generation = gen;
    return dispatch_queue(f->d, "h1", &m);
}

static int64_t
ref(struct fx *f, enum msg_type t, const char *id)
{
    struct msg m = {.type = t};

    snprintf(m.u.guest.id, sizeof(m.u.guest.id), "%s", id);
    m.u.guest.generation = 1;
    return dispatch_queue(f->d, "h1", &m);
}

static void
test_ids_and_ack(void **state)
{
    struct fx *f = *state;
    struct dispatch_done done;

    int64_t a = apply(f, G1, 1), s = ref(f, MSG_GUEST_START, G1);
    assert_true(a > 0 && s > a);
    assert_int_equal(f->n_sent, 2);
    assert_int_equal(f->sent[0].id, (uint64_t)a);
    assert_int_equal(f->sent[0].type, MSG_GUEST_APPLY);
    assert_int_equal(f->sent[1].type, MSG_GUEST_START);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 2);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a, &done), 0);
    assert_int_equal(done.type, MSG_GUEST_APPLY);
    assert_string_equal(done.guest, G1);
    assert_int_equal(done.generation, 1);
    /* A duplicate answer, or one from another node, matches nothing. */
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a, &done), -ENOENT);
    assert_int_equal(dispatch_complete(f->d, "h2", (uint64_t)s, &done), -ENOENT);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_START, G1), 1);
}

/* guest.apply.start is one command with one answer, coalesced with an
 * unanswered one of its guest; to a node that does not know it (marked
 * after its nack unknown_type) it goes as guest.apply then guest.start, until
 * the mark is cleared (a hello). */
static void
test_apply_start(void **state)
{
    struct fx *f = *state;
    struct dispatch_done done;

    int64_t a = apply_start(f, G1, 1);
    assert_true(a > 0);
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(f->sent[0].type, MSG_GUEST_APPLY_START);
    assert_string_equal(f->sent[0].u.apply.id, G1);
    int64_t a2 = apply_start(f, G1, 2);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 1);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a2, &done), 0);
    assert_int_equal(done.type, MSG_GUEST_APPLY_START);
    assert_int_equal(done.generation, 2);

    dispatch_set_no_apply_start(f->d, "h1", true);
    int64_t b = apply_start(f, G2, 1);
    assert_true(b > a2);
    assert_int_equal(f->n_sent, 4);
    assert_int_equal(f->sent[2].type, MSG_GUEST_APPLY);
    assert_int_equal(f->sent[2].id, (uint64_t)b);
    assert_int_equal(f->sent[2].u.apply.generation, 1);
    assert_int_equal(f->sent[3].type, MSG_GUEST_START);
    assert_string_equal(f->sent[3].u.guest.id, G2);
    assert_int_equal(f->sent[3].u.guest.generation, 1);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_APPLY, G2), 1);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_START, G2), 1);

    dispatch_set_no_apply_start(f->d, "h1", false);
    apply_start(f, G2, 2);
    assert_int_equal(f->n_sent, 5);
    assert_int_equal(f->sent[4].type, MSG_GUEST_APPLY_START);
}

static void
test_resend_with_backoff(void **state)
{
    struct fx *f = *state;

    int64_t a = apply(f, G1, 1);
    assert_int_equal(f->n_sent, 1);
    f->now += 999;
    assert_int_equal(dispatch_tick(f->d), 0);
    f->now += 1;
    assert_int_equal(dispatch_tick(f->d), 1);
    assert_int_equal(f->sent[1].id, (uint64_t)a); /* same id on a re-send */
    f->now += 1000;
    assert_int_equal(dispatch_tick(f->d), 0); /* the interval doubled */
    f->now += 1000;
    assert_int_equal(dispatch_tick(f->d), 1);
    f->now += 4000;
    assert_int_equal(dispatch_tick(f->d), 1); /* capped at resend_max_ms */
    f->now += 4000;
    assert_int_equal(dispatch_tick(f->d), 1);

    /* Not ready: nothing goes, and nothing is lost. */
    f->ready = false;
    f->now += 100000;
    assert_int_equal(dispatch_tick(f->d), 0);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 1);
    /* The node says hello: flush sends the outbox at once. */
    size_t before = f->n_sent;
    dispatch_flush(f->d, "h1");
    assert_int_equal(f->n_sent, before + 1);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a, NULL), 0);
    f->ready = true;
    f->now += 100000;
    assert_int_equal(dispatch_tick(f->d), 0);
}

/* A master whose own receive queue is behind (answers may wait unread)
 * re-sends a command only once it has read up to a time its answer would
 * have come by: the backlog is not the node's silence. */
static void
test_resend_waits_for_own_backlog(void **state)
{
    struct fx *f = *state;

    int64_t a = apply(f, G1, 1);
    assert_int_equal(f->n_sent, 1);
    f->now += 30000; /* due for 29 s by the clock */
    /* Read up to 25 s ago only: the answer may have come (at 5 s) and be
     * waiting unread. Before this change: re-sent. */
    assert_int_equal(dispatch_tick_behind(f->d, 29001), 0);
    assert_int_equal(f->n_sent, 1);
    /* Read up to 1 s after it went out, with no answer by then: again. */
    assert_int_equal(dispatch_tick_behind(f->d, 29000), 1);
    assert_int_equal(f->sent[1].id, (uint64_t)a);
    /* Caught up, the backoff runs from that re-send (2 s interval). */
    f->now += 1999;
    assert_int_equal(dispatch_tick_behind(f->d, 0), 0);
    f->now += 1;
    assert_int_equal(dispatch_tick_behind(f->d, 0), 1);
    /* A backlog longer than the clock is not an underflow. */
    f->now += 100000;
    assert_int_equal(dispatch_tick_behind(f->d, UINT64_MAX), 0);
}

/* A node still answering older commands is not sent the newer ones again
 * (they wait in its backlog); one that goes silent, or that answers a newer
 * command (the older one was lost), is. */
static void
test_resend_waits_for_backlog(void **state)
{
    struct fx *f = *state;
    struct dispatch_stats st;

    int64_t a = apply(f, G1, 1);
    int64_t b = apply(f, G2, 1);
    assert_int_equal(f->n_sent, 2);
    f->now += 500;
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a, NULL), 0);
    f->now += 500; /* b is due, but the node answered a (older) 500 ms ago */
    assert_int_equal(dispatch_tick(f->d), 0);
    dispatch_get_stats(f->d, &st);
    assert_int_equal(st.postponed, 1);
    f->now += 1000; /* silent for 1,500 ms, more than the interval: again */
    assert_int_equal(dispatch_tick(f->d), 1);
    assert_int_equal(f->sent[2].id, (uint64_t)b);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)b, NULL), 0);

    /* c is lost, d (newer) answered at once: c goes again when due. */
    int64_t c = ref(f, MSG_GUEST_START, G1);
    int64_t d = ref(f, MSG_GUEST_START, G2);
    assert_true(d > c);
    f->now += 10;
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)d, NULL), 0);
    f->now += 990;
    assert_int_equal(dispatch_tick(f->d), 1);
    assert_int_equal(f->sent[f->n_sent - 1].id, (uint64_t)c);
}

static void
test_failed_send_stays_queued(void **state)
{
    struct fx *f = *state;

    f->fail = -EHOSTUNREACH;
    int64_t a = apply(f, G1, 1);
    assert_true(a > 0);
    assert_int_equal(f->n_sent, 0);
    f->fail = 0;
    f->now += 1000;
    assert_int_equal(dispatch_tick(f->d), 1);
    assert_int_equal(f->sent[0].id, (uint64_t)a);
}

static void
test_coalescing(void **state)
{
    struct fx *f = *state;
    struct dispatch_done done;

    int64_t a1 = apply(f, G1, 1);
    int64_t s1 = ref(f, MSG_GUEST_START, G1);
    int64_t b1 = apply(f, G2, 1);
    int64_t a2 = apply(f, G1, 2); /* replaces a1 in place */
    int64_t s2 = ref(f, MSG_GUEST_START, G1);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 3);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_APPLY, G1), 1);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a1, NULL), -ENOENT);
    /* The same start again is the one queued, with its id. */
    assert_int_equal(s2, s1);

    /* A flush sends the apply of generation 2 before the start, then G2. */
    size_t before = f->n_sent;
    dispatch_flush(f->d, "h1");
    assert_int_equal(f->n_sent, before + 3);
    assert_int_equal(f->sent[before].id, (uint64_t)a2);
    assert_int_equal(f->sent[before].u.apply.generation, 2);
    assert_int_equal(f->sent[before + 1].id, (uint64_t)s2);
    assert_int_equal(f->sent[before + 2].id, (uint64_t)b1);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a2, &done), 0);
    assert_int_equal(done.generation, 2);

    /* Forgetting a guest drops everything about it. */
    ref(f, MSG_GUEST_STOP, G2);
    dispatch_forget_guest(f->d, "h1", G2);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 1);
}

/* A node that says hello again and again while its creates are unanswered
 * (bench/sched.sh at 5,000 nodes: a starved master answered heartbeats late,
 * the nodes reconnected): each hello flushes the outbox, then reconciliation
 * queues every never-acked create again. The outbox keeps one command per
 * guest with its first request id, each hello sends each once, and the
 * node's answers to the ids it received first complete them. A create queued
 * again after a stop (something queued behind it) still goes as a new one. */
static void
test_repeated_hellos(void **state)
{
    struct fx *f = *state;
    const char *gs[] = {G1, G2, "33333333-3333-4333-8333-333333333333"};
    int64_t ids[3];
    struct dispatch_stats st;

    for (size_t i = 0; i < 3; i++)
        ids[i] = apply_start(f, gs[i], 1);
    assert_int_equal(f->n_sent, 3);
    for (int hello = 0; hello < 5; hello++) {
        size_t before = f->n_sent;
        f->now += 20000;
        dispatch_flush(f->d, "h1");
        for (size_t i = 0; i < 3; i++)
            assert_int_equal(apply_start(f, gs[i], 1), ids[i]);
        assert_int_equal(f->n_sent, before + 3);
        assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 3);
        for (size_t i = 0; i < 3; i++) {
            assert_int_equal(f->sent[before + i].id, (uint64_t)ids[i]);
            assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_APPLY_START, gs[i]), 1);
        }
    }
    dispatch_get_stats(f->d, &st);
    assert_int_equal(st.queued, 3);

    /* Lost after the last hello: still sent again when due, same id. */
    f->now += 1000;
    assert_int_equal(dispatch_tick(f->d), 3);
    for (size_t i = 0; i < 3; i++) /* in the order of the heap, not the queue */
        assert_true(f->sent[f->n_sent - 1 - i].id >= (uint64_t)ids[0] &&
                    f->sent[f->n_sent - 1 - i].id <= (uint64_t)ids[2]);

    f->now += 2000;
    assert_int_equal(dispatch_tick(f->d), 3); /* the interval is 4000 ms now */

    /* Queued again without a flush: not sent at once (a copy is out), but
     * its next re-send comes within the first interval. */
    f->now += 1000;
    size_t before = f->n_sent;
    assert_int_equal(apply_start(f, G1, 1), ids[0]);
    assert_int_equal(f->n_sent, before);
    f->now += 1000;
    assert_int_equal(dispatch_tick(f->d), 1);
    assert_int_equal(f->sent[f->n_sent - 1].id, (uint64_t)ids[0]);

    /* The node answers what it got first: every create is done. */
    struct dispatch_done done;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)ids[i], &done), 0);
        assert_int_equal(done.type, MSG_GUEST_APPLY_START);
        assert_string_equal(done.guest, gs[i]);
    }
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 0);

    /* start, stop, then the same start: the last one goes after the stop. */
    int64_t s1 = ref(f, MSG_GUEST_START, G1);
    ref(f, MSG_GUEST_STOP, G1);
    before = f->n_sent;
    int64_t s2 = ref(f, MSG_GUEST_START, G1);
    assert_true(s2 > s1);
    assert_int_equal(f->n_sent, before + 1);
    assert_int_equal(f->sent[before].id, (uint64_t)s2);
}

static void
test_exec_once_and_defer(void **state)
{
    struct fx *f = *state;
    struct msg m = {.type = MSG_GUEST_EXEC};
    char *argv[] = {"echo", "hi", NULL};
    struct dispatch_done done;

    snprintf(m.u.exec.id, sizeof(m.u.exec.id), "%s", G1);
    m.u.exec.argc = 2;
    m.u.exec.argv = argv;
    int64_t e = dispatch_queue(f->d, "h1", &m);
    assert_true(e > 0);
    assert_int_equal(f->n_sent, 1);
    f->now += 100000;
    assert_int_equal(dispatch_tick(f->d), 0); /* never re-sent */
    dispatch_flush(f->d, "h1");
    assert_int_equal(f->n_sent, 1);
    assert_int_equal(dispatch_defer(f->d, "h1", (uint64_t)e, &done), -ENOENT);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)e, &done), 0);
    assert_int_equal(done.type, MSG_GUEST_EXEC);
    /* An exec that cannot be sent fails at once. */
    f->fail = -EHOSTUNREACH;
    assert_int_equal(dispatch_queue(f->d, "h1", &m), -EHOSTUNREACH);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 0);
    f->fail = 0;

    /* busy: the start stays and goes again after the (doubled) interval. */
    int64_t s = ref(f, MSG_GUEST_START, G1);
    size_t before = f->n_sent;
    assert_int_equal(dispatch_defer(f->d, "h1", (uint64_t)s, &done), 0);
    assert_int_equal(done.type, MSG_GUEST_START);
    f->now += 1999;
    assert_int_equal(dispatch_tick(f->d), 0);
    f->now += 1;
    assert_int_equal(dispatch_tick(f->d), 1);
    assert_int_equal(f->n_sent, before + 1);
}

/* Queues an apply on node for a guest numbered i. */
static int64_t
apply_on(struct fx *f, const char *node, unsigned i)
{
    struct msg m = {.type = MSG_GUEST_APPLY};

    snprintf(m.u.apply.id, sizeof(m.u.apply.id), "%08x-0000-4000-8000-000000000000", i);
    snprintf(m.u.apply.name, sizeof(m.u.apply.name), "g%u", i);
    snprintf(m.u.apply.template_name, sizeof(m.u.apply.template_name), "busybox");
    m.u.apply.generation = 1;
    return dispatch_queue(f->d, node, &m);
}

/* Many commands on many outboxes, queued at different times and answered
 * in another order: a tick sends exactly the due ones, each once, and an
 * answer finds its command whatever its position. */
static void
test_many_outboxes(void **state)
{
    struct fx *f = *state;
    enum { N = 3000 };
    static int64_t ids[N];
    const char *nodes[] = {"h1", "h2", "h3", "h4", "h5"};

    f->count_only = true;
    for (unsigned i = 0; i < N; i++) {
        f->now = 100 + i; /* one queued per ms */
        ids[i] = apply_on(f, nodes[i % 5], i);
        assert_true(ids[i] > 0);
    }
    assert_int_equal(f->n_sent, N);
    /* Every third one answered, from the end. */
    for (unsigned i = N; i-- > 0;)
        if (i % 3 == 0)
            assert_int_equal(dispatch_complete(f->d, nodes[i % 5], (uint64_t)ids[i], NULL), 0);
    /* Answered by the wrong node: no match. */
    assert_int_equal(dispatch_complete(f->d, "h3", (uint64_t)ids[1], NULL), -ENOENT);
    /* Queued at 100..100+N-1, first re-send 1000 ms later: at 100+1000+499
     * the first 500 are due, less the answered ones (167 of them). */
    f->now = 100 + 1000 + 499;
    assert_int_equal(dispatch_tick(f->d), 500 - 167);
    assert_int_equal(dispatch_tick(f->d), 0);
    /* At 3598 the ones queued at 500..2498 are due for their first
     * re-send; the 333 re-sent above are next due at 1599 + 2000. */
    f->now = 3598;
    size_t due = 0;
    for (unsigned i = 500; i <= 2498; i++)
        due += i % 3 != 0;
    assert_int_equal(dispatch_tick(f->d), due);
    f->now = 3599;
    assert_int_equal(dispatch_tick(f->d), 500 - 167);
    size_t left = 0;
    for (size_t k = 0; k < 5; k++)
        left += dispatch_pending(f->d, nodes[k], MSG_INVALID, NULL);
    assert_int_equal(left, N - N / 3);
    for (unsigned i = 0; i < N; i++)
        if (i % 3 != 0)
            assert_int_equal(dispatch_complete(f->d, nodes[i % 5], (uint64_t)ids[i], NULL), 0);
    f->now += 100000;
    assert_int_equal(dispatch_tick(f->d), 0);
}

/* A guest's commands are found and forgotten by guest, among others'. */
static void
test_forget_among_others(void **state)
{
    struct fx *f = *state;

    f->count_only = true;
    for (unsigned i = 0; i < 50; i++)
        apply_on(f, "h1", i);
    int64_t a = apply(f, G1, 1);
    int64_t s = ref(f, MSG_GUEST_START, G1);
    ref(f, MSG_GUEST_STOP, G1);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_START, G1), 1);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_DESTROY, G1), 0);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 53);
    dispatch_forget_guest(f->d, "h1", G1);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_START, G1), 0);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_INVALID, NULL), 50);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)a, NULL), -ENOENT);
    assert_int_equal(dispatch_complete(f->d, "h1", (uint64_t)s, NULL), -ENOENT);
    /* A new command for the guest after that starts a new chain. */
    assert_true(ref(f, MSG_GUEST_DESTROY, G1) > 0);
    assert_int_equal(dispatch_pending(f->d, "h1", MSG_GUEST_DESTROY, G1), 1);
}

/* A command that fell due while its node was not ready goes out once the
 * node is ready again, one interval later at most. */
static void
test_not_ready_then_ready(void **state)
{
    struct fx *f = *state;

    apply(f, G1, 1);
    f->ready = false;
    f->now += 1000;
    assert_int_equal(dispatch_tick(f->d), 0);
    f->ready = true;
    f->now += 999;
    assert_int_equal(dispatch_tick(f->d), 0);
    f->now += 1;
    assert_int_equal(dispatch_tick(f->d), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_and_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_waits_for_own_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resend_waits_for_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_send_stays_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_hellos, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_once_and_defer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_outboxes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_among_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_ready_then_ready, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
