/* Tests for node/lane: a FIFO of jobs on libuv's thread pool, one at a time.
 *
 * Waits are bounded (a 10 s guard against a hang, never a timing assert). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "node/lane.h"

#define N_JOBS 64

/* What the jobs of one test record. */
struct record {
    lane_t *lane;               /* the lane under test */
    atomic_int running;         /* jobs of this lane inside run now */
    atomic_bool overlapped;     /* two runs of the lane were seen at once */
    int run_order[N_JOBS + 1];  /* job indices in the order their run recorded */
    atomic_int n_run;           /* entries of run_order filled (written by the worker) */
    int done_order[N_JOBS + 1]; /* job indices in the order their done ran */
    int n_done;                 /* entries of done_order filled (loop thread) */
    bool push_from_done;        /* job 0's done pushes one more job */
    size_t pending_in_done;     /* lane_pending seen by the last done */
    bool start_early;           /* a job started before the previous done returned */
    bool in_done;               /* a done callback is running */
};

/* One job: its index and where it records. */
struct tjob {
    struct record *rec; /* shared record */
    int index;          /* push order */
};

static struct tjob jobs[N_JOBS + 1];

static void
tjob_start(void *arg)
{
    struct tjob *j = arg;
    struct record *r = j->rec;

    /* On the loop thread, after every earlier job's done returned. */
    if (r->in_done || r->n_done != j->index)
        r->start_early = true;
}

static void
tjob_run(void *arg)
{
    struct tjob *j = arg;
    struct record *r = j->rec;

    if (atomic_fetch_add(&r->running, 1) != 0)
        atomic_store(&r->overlapped, true);
    /* Widen the window in which an overlapping run would be caught. */
    struct timespec ts = {0, 200 * 1000};
    nanosleep(&ts, NULL);
    r->run_order[atomic_fetch_add(&r->n_run, 1)] = j->index;
    atomic_fetch_sub(&r->running, 1);
}

static const struct lane_fns tjob_fns;

static void
tjob_done(void *arg)
{
    struct tjob *j = arg;
    struct record *r = j->rec;

    r->in_done = true;
    r->pending_in_done = lane_pending(r->lane);
    if (j->index == 0 && r->push_from_done) {
        jobs[N_JOBS] = (struct tjob){.rec = r, .index = N_JOBS};
        lane_push(r->lane, &tjob_fns, &jobs[N_JOBS]);
    }
    r->done_order[r->n_done++] = j->index;
    r->in_done = false;
}

static const struct lane_fns tjob_fns = {tjob_start, tjob_run, tjob_done};

static void
test_fifo_one_at_a_time(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct record r = {0};

    assert_int_equal(uv_loop_init(&loop), 0);
    r.lane = lane_new(&loop);
    r.push_from_done = true;
    for (int i = 0; i < N_JOBS; i++) {
        jobs[i] = (struct tjob){.rec = &r, .index = i};
        lane_push(r.lane, &tjob_fns, &jobs[i]);
    }
    assert_int_equal(lane_pending(r.lane), N_JOBS);
    /* Queued work keeps the loop alive: uv_run returns once every done ran. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

    assert_false(atomic_load(&r.overlapped));
    assert_false(r.start_early);
    assert_int_equal(atomic_load(&r.n_run), N_JOBS + 1);
    assert_int_equal(r.n_done, N_JOBS + 1);
    /* Push order, with the job pushed from job 0's done after all the others. */
    for (int i = 0; i <= N_JOBS; i++) {
        assert_int_equal(r.run_order[i], i);
        assert_int_equal(r.done_order[i], i);
    }
    /* The last done still counts itself as pending. */
    assert_int_equal(r.pending_in_done, 1);
    assert_int_equal(lane_pending(r.lane), 0);
    assert_int_equal(lane_completed(r.lane), N_JOBS + 1);
    lane_destroy(&r.lane);
    assert_null(r.lane);
    lane_destroy(&r.lane); /* NULL-safe */
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Two lanes: lane A's job waits until lane B's job has run. Were the lanes
 * one queue, B's job would wait behind A's and A's wait would time out. */
struct meet {
    pthread_mutex_t mu; /* guards b_ran */
    pthread_cond_t cv;  /* signalled when b_ran is set */
    bool b_ran;         /* lane B's job ran */
    bool a_met;         /* lane A's job saw it within the guard time */
    int dones;          /* done callbacks seen */
};

static void
meet_a_run(void *arg)
{
    struct meet *m = arg;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&m->mu);
    while (!m->b_ran)
        if (pthread_cond_timedwait(&m->cv, &m->mu, &until) == ETIMEDOUT)
            break;
    m->a_met = m->b_ran;
    pthread_mutex_unlock(&m->mu);
}

static void
meet_b_run(void *arg)
{
    struct meet *m = arg;

    pthread_mutex_lock(&m->mu);
    m->b_ran = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void
meet_done(void *arg)
{
    struct meet *m = arg;

    m->dones++;
}

static void
test_lanes_run_concurrently(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct meet m = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

    assert_int_equal(uv_loop_init(&loop), 0);
    lane_t *a = lane_new(&loop);
    lane_t *b = lane_new(&loop);
    static const struct lane_fns fa = {NULL, meet_a_run, meet_done};
    static const struct lane_fns fb = {NULL, meet_b_run, meet_done};
    lane_push(a, &fa, &m);
    lane_push(b, &fb, &m);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(m.dones, 2);
    assert_true(m.a_met);
    lane_destroy(&a);
    lane_destroy(&b);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_one_at_a_time),
        cmocka_unit_test(test_lanes_run_concurrently),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
