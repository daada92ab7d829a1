/* The outbox: order, the lead frame and the gate, re-sends until acked,
 * retries after a failed send, and the bound. A real libuv loop and timers;
 * the transport is a function that records what it is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/mem.h"
#include "node/outbox.h"

struct wire {
    bool down;         /* sends fail with -EAGAIN */
    char sent[64][8];  /* what went out, in order */
    size_t n;          /* entries in sent */
    unsigned failures; /* sends refused */
};

static int
wire_send(void *userdata, const void *buf, size_t len)
{
    struct wire *w = userdata;

    if (w->down) {
        w->failures++;
        return -11;
    }
    if (w->n < 64)
        snprintf(w->sent[w->n++], 8, "%.*s", (int)len, (const char *)buf);
    return 0;
}

static void
push(outbox_t *o, uint64_t id, bool lead, const char *text)
{
    outbox_push(o, id, lead, xstrdup(text), strlen(text));
}

static void
on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void
run_ms(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_stop, ms, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Runs the loop until the wire has taken n frames or max_ms passed: a retry
 * after the link comes back is due within retry_max_ms, but a loaded machine
 * (CI under ASan) runs the loop late. */
static void
run_until_sent(uv_loop_t *loop, const struct wire *w, size_t n, uint64_t max_ms)
{
    for (uint64_t waited = 0; w->n < n && waited < max_ms; waited += 5)
        run_ms(loop, 5);
}

static void
test_gate_lead_order_ack(void **state)
{
    uv_loop_t loop;
    struct wire w = {0};
    (void)state;
    uv_loop_init(&loop);
    struct outbox_config cfg = {
        .retry_ms = 20, .resend_ms = 100, .send = wire_send, .userdata = &w};
    outbox_t *o = outbox_new(&loop, &cfg);

    /* Closed: the events wait; the hello goes, ahead of them. */
    push(o, 1, false, "e1");
    push(o, 2, false, "e2");
    push(o, 3, true, "h1");
    assert_int_equal(w.n, 1);
    assert_string_equal(w.sent[0], "h1");
    /* A newer hello replaces the older one. */
    push(o, 4, true, "h2");
    assert_int_equal(outbox_len(o), 3);
    assert_string_equal(w.sent[1], "h2");
    /* Welcome: the hello is acked, the rest goes in order. */
    assert_true(outbox_ack(o, 4));
    outbox_open(o, true);
    assert_int_equal(w.n, 4);
    assert_string_equal(w.sent[2], "e1");
    assert_string_equal(w.sent[3], "e2");
    /* Unacked frames go again after resend_ms; an acked one does not. */
    assert_true(outbox_ack(o, 1));
    assert_false(outbox_ack(o, 1));
    run_ms(&loop, 150);
    assert_int_equal(w.n, 5);
    assert_string_equal(w.sent[4], "e2");
    assert_true(outbox_ack(o, 2));
    assert_int_equal(outbox_len(o), 0);
    run_ms(&loop, 300);
    assert_int_equal(w.n, 5);
    outbox_close(o);
    uv_run(&loop, UV_RUN_DEFAULT);
    outbox_destroy(&o);
    assert_null(o);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_link_down_retry_in_order(void **state)
{
    uv_loop_t loop;
    struct wire w = {.down = true};
    (void)state;
    uv_loop_init(&loop);
    struct outbox_config cfg = {
        .retry_ms = 20, .resend_ms = 5000, .send = wire_send, .userdata = &w};
    outbox_t *o = outbox_new(&loop, &cfg);

    outbox_open(o, true);
    push(o, 1, false, "a");
    push(o, 2, false, "b");
    /* Nothing overtakes the frame that failed; it is tried again soon. */
    assert_int_equal(w.n, 0);
    run_ms(&loop, 100);
    assert_true(w.failures >= 3);
    assert_int_equal(w.n, 0);
    w.down = false;
    run_until_sent(&loop, &w, 2, 3000);
    assert_int_equal(w.n, 2);
    assert_string_equal(w.sent[0], "a");
    assert_string_equal(w.sent[1], "b");
    outbox_close(o);
    uv_run(&loop, UV_RUN_DEFAULT);
    outbox_destroy(&o);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Opened (welcome) while the link is down with a frame sent before: the
 * retry must not spin the loop (a 0 ms timer re-armed from its callback). */
static void
test_open_while_down_does_not_spin(void **state)
{
    uv_loop_t loop;
    struct wire w = {0};
    (void)state;
    uv_loop_init(&loop);
    struct outbox_config cfg = {
        .retry_ms = 50, .resend_ms = 5000, .send = wire_send, .userdata = &w};
    outbox_t *o = outbox_new(&loop, &cfg);

    push(o, 1, true, "h");
    push(o, 2, false, "e");
    outbox_open(o, true); /* the hello again (not acked), then the event */
    assert_int_equal(w.n, 3);
    w.down = true;
    outbox_open(o, true); /* everything due again, and the send fails */
    run_ms(&loop, 200);   /* returns only if the loop is not stuck in timers */
    assert_true(w.failures >= 2 && w.failures <= 8);
    outbox_close(o);
    uv_run(&loop, UV_RUN_DEFAULT);
    outbox_destroy(&o);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_bound_drops_oldest(void **state)
{
    uv_loop_t loop;
    struct wire w = {.down = true};
    (void)state;
    uv_loop_init(&loop);
    struct outbox_config cfg = {.max = 3, .send = wire_send, .userdata = &w};
    outbox_t *o = outbox_new(&loop, &cfg);

    push(o, 10, true, "h");
    for (uint64_t id = 1; id <= 4; id++)
        push(o, id, false, "e");
    /* The hello stays; the oldest events went. */
    assert_int_equal(outbox_len(o), 3);
    assert_int_equal(outbox_dropped(o), 2);
    assert_true(outbox_ack(o, 10));
    assert_false(outbox_ack(o, 1));
    assert_false(outbox_ack(o, 2));
    assert_true(outbox_ack(o, 3));
    assert_true(outbox_ack(o, 4));
    outbox_close(o);
    uv_run(&loop, UV_RUN_DEFAULT);
    outbox_destroy(&o);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Answers (acks, nacks) wait while the master pushes back (the wire
 * refuses), in order with the events, and go when it takes them again:
 * none is dropped (before this change an answer that met -EAGAIN was gone).
 * A newer answer to the same command replaces the waiting one in place; an
 * ack from the master never matches an answer; sent answers are forgotten. */
static void
test_answers_wait_for_back_pressure(void **state)
{
    uv_loop_t loop;
    struct wire w = {0};
    (void)state;
    uv_loop_init(&loop);
    struct outbox_config cfg = {
        .retry_ms = 10, .retry_max_ms = 20, .resend_ms = 5000, .send = wire_send, .userdata = &w};
    outbox_t *o = outbox_new(&loop, &cfg);

    outbox_open(o, true);
    outbox_push_once(o, 100, xstrdup("a100"), 4);
    assert_int_equal(w.n, 1); /* the link takes it: sent and forgotten */
    assert_int_equal(outbox_len(o), 0);
    w.down = true;
    outbox_push_once(o, 101, xstrdup("a101"), 4);
    push(o, 7, false, "e7");
    outbox_push_once(o, 102, xstrdup("n102"), 4);
    outbox_push_once(o, 101, xstrdup("b101"), 4); /* the command came again */
    assert_true(outbox_blocked(o));
    assert_int_equal(outbox_len(o), 3);
    assert_false(outbox_ack(o, 101)); /* the master's ack ids are not answers */
    run_ms(&loop, 100);
    assert_int_equal(w.n, 1);
    w.down = false;
    run_until_sent(&loop, &w, 4, 3000);
    assert_false(outbox_blocked(o));
    assert_int_equal(w.n, 4);
    assert_string_equal(w.sent[1], "b101");
    assert_string_equal(w.sent[2], "e7");
    assert_string_equal(w.sent[3], "n102");
    /* Only the event waits, for the master's ack. */
    assert_int_equal(outbox_len(o), 1);
    assert_true(outbox_ack(o, 7));
    assert_int_equal(outbox_dropped(o), 0);
    outbox_close(o);
    uv_run(&loop, UV_RUN_DEFAULT);
    outbox_destroy(&o);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* While sends keep failing the retry delay doubles up to retry_max_ms: a
 * process of thousands of nodes held back by the master does not spin. */
static void
test_retry_backs_off(void **state)
{
    uv_loop_t loop;
    struct wire w = {.down = true};
    (void)state;
    uv_loop_init(&loop);
    struct outbox_config cfg = {
        .retry_ms = 5, .retry_max_ms = 80, .resend_ms = 5000, .send = wire_send, .userdata = &w};
    outbox_t *o = outbox_new(&loop, &cfg);

    outbox_open(o, true);
    outbox_push_once(o, 1, xstrdup("a1"), 2);
    run_ms(&loop, 400);
    /* 0, 5, 15, 35, 75, 155, 235, 315, 395: about 9; at a fixed 5 ms, 80. */
    assert_true(w.failures >= 5 && w.failures <= 12);
    w.down = false;
    run_until_sent(&loop, &w, 1, 3000);
    assert_int_equal(w.n, 1);
    outbox_close(o);
    uv_run(&loop, UV_RUN_DEFAULT);
    outbox_destroy(&o);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_lead_order_ack),
        cmocka_unit_test(test_link_down_retry_in_order),
        cmocka_unit_test(test_open_while_down_does_not_spin),
        cmocka_unit_test(test_bound_drops_oldest),
        cmocka_unit_test(test_answers_wait_for_back_pressure),
        cmocka_unit_test(test_retry_backs_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
