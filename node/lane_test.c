/* Tests for node/lane: a FIFO of jobs on libuv's thread pool, one at a time,
 * and a wider lane keyed by guest (same key in order, distinct keys at once,
 * keyless jobs alone).
 *
 * Waits are bounded (a 10 s guard against a hang, never a timing assert). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* ---- a keyed lane of width 3 ---- */

#define K_KEYS  3 /* distinct keys, one per slot of the lane's width */
#define K_EACH  8 /* jobs per key */
#define K_WIDTH 3 /* the lane's width */

/* What the keyed jobs record. */
struct krec {
    pthread_mutex_t mu;            /* guards the fields below */
    pthread_cond_t cv;             /* signalled when running changes */
    int running;                   /* keyed jobs inside run now */
    int max_running;               /* the most seen at once */
    bool met;                      /* the first K_KEYS jobs were all in run at once */
    bool key_busy[K_KEYS];         /* a job of that key is inside run */
    bool key_overlap;              /* two jobs of one key ran at once */
    int order[K_KEYS][K_EACH + 1]; /* each key's job indices in run order */
    int n_order[K_KEYS];           /* entries of order filled */
    bool barrier_alone;            /* the barrier's run saw no keyed job running */
    bool after_barrier_early;      /* a job pushed after the barrier started before its done */
    bool barrier_done;             /* the barrier's done ran */
    int dones;                     /* done callbacks seen (loop thread) */
};

/* One keyed job. */
struct kjob {
    struct krec *rec; /* shared record */
    int key;          /* its key's number, -1 = the barrier */
    int index;        /* push order within its key */
    bool after;       /* pushed after the barrier */
};

static void
kjob_start(void *arg)
{
    struct kjob *j = arg;

    if (j->after && !j->rec->barrier_done)
        j->rec->after_barrier_early = true;
}

static void
kjob_run(void *arg)
{
    struct kjob *j = arg;
    struct krec *r = j->rec;
    struct timespec until;

    pthread_mutex_lock(&r->mu);
    if (j->key < 0) {
        r->barrier_alone = r->running == 0;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (r->key_busy[j->key])
        r->key_overlap = true;
    r->key_busy[j->key] = true;
    r->order[j->key][r->n_order[j->key]++] = j->index;
    r->running++;
    if (r->running > r->max_running)
        r->max_running = r->running;
    pthread_cond_broadcast(&r->cv);
    /* The first job of each key waits until all K_KEYS are in run at once:
     * a lane that ran them one at a time would leave it waiting (10 s guard). */
    if (j->index == 0 && !j->after) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (!r->met && r->running < K_KEYS)
            if (pthread_cond_timedwait(&r->cv, &r->mu, &until) == ETIMEDOUT)
                break;
        if (r->running >= K_KEYS)
            r->met = true;
    }
    r->running--;
    r->key_busy[j->key] = false;
    pthread_mutex_unlock(&r->mu);
    struct timespec ts = {0, 100 * 1000};
    nanosleep(&ts, NULL);
}

static void
kjob_done(void *arg)
{
    struct kjob *j = arg;

    if (j->key < 0)
        j->rec->barrier_done = true;
    j->rec->dones++;
}

static const struct lane_fns kjob_fns = {kjob_start, kjob_run, kjob_done};

static void
test_keyed_width(void **state)
{
    (void)state;
    uv_loop_t loop;
    static struct kjob kj[K_KEYS * K_EACH + 1 + K_KEYS];
    struct krec r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    char key[8];
    int n = 0;

    assert_int_equal(uv_loop_init(&loop), 0);
    lane_t *l = lane_new(&loop);
    lane_set_width(l, K_WIDTH);
    /* Interleaved: key 0, 1, 2, 0, 1, 2, ... */
    for (int i = 0; i < K_EACH; i++)
        for (int k = 0; k < K_KEYS; k++) {
            kj[n] = (struct kjob){.rec = &r, .key = k, .index = i};
            snprintf(key, sizeof(key), "g%d", k);
            lane_push_key(l, key, &kjob_fns, &kj[n++]);
        }
    /* A barrier, then one more job of each key. */
    kj[n] = (struct kjob){.rec = &r, .key = -1};
    lane_push(l, &kjob_fns, &kj[n++]);
    for (int k = 0; k < K_KEYS; k++) {
        kj[n] = (struct kjob){.rec = &r, .key = k, .index = K_EACH, .after = true};
        snprintf(key, sizeof(key), "g%d", k);
        lane_push_key(l, key, &kjob_fns, &kj[n++]);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);

    assert_int_equal(r.dones, n);
    assert_true(r.met);
    assert_false(r.key_overlap);
    assert_true(r.max_running <= K_WIDTH);
    assert_true(r.barrier_alone);
    assert_false(r.after_barrier_early);
    for (int k = 0; k < K_KEYS; k++) {
        assert_int_equal(r.n_order[k], K_EACH + 1);
        for (int i = 0; i <= K_EACH; i++)
            assert_int_equal(r.order[k][i], i);
    }
    assert_int_equal(lane_completed(l), (uint64_t)n);
    lane_destroy(&l);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Width 1 (the default): keyed jobs of distinct keys still run one at a
 * time, in push order. */
static void
test_keyed_width_one(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct record r = {0};
    char key[8];

    assert_int_equal(uv_loop_init(&loop), 0);
    r.lane = lane_new(&loop);
    for (int i = 0; i < N_JOBS; i++) {
        jobs[i] = (struct tjob){.rec = &r, .index = i};
        snprintf(key, sizeof(key), "g%d", i % 5);
        lane_push_key(r.lane, key, &tjob_fns, &jobs[i]);
    }
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_false(atomic_load(&r.overlapped));
    assert_false(r.start_early);
    assert_int_equal(r.n_done, N_JOBS);
    for (int i = 0; i < N_JOBS; i++)
        assert_int_equal(r.done_order[i], i);
    lane_destroy(&r.lane);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_one_at_a_time),
        cmocka_unit_test(test_lanes_run_concurrently),
        cmocka_unit_test(test_keyed_width),
        cmocka_unit_test(test_keyed_width_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
