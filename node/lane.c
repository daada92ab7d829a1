#include "node/lane.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "node/memtidy.h"

/* One job. It stays in the lane's list, in push order, from its push until
 * its done has returned, so a later job of the same key (or any job after a
 * barrier) sees it and waits. */
struct lane_entry {
    struct lane_entry *next;    /* the next job in push order */
    struct lane_entry *prev;    /* the previous one */
    lane_t *lane;               /* back pointer for the thread-pool callbacks */
    const struct lane_fns *fns; /* the job's callbacks (the caller's) */
    void *arg;                  /* the caller's job, passed to run and done */
    char key[LANE_KEY_MAX];     /* its key; "" = a barrier */
    bool started;               /* its start was called (it runs or finishes) */
    uv_work_t work;             /* libuv's request; reached back with container_of */
};

struct lane {
    uv_loop_t *loop;         /* the loop whose thread pool runs the jobs */
    struct lane_entry *head; /* the earliest job not done */
    struct lane_entry *tail; /* the last pushed job */
    unsigned width;          /* keyed jobs that may run at once */
    unsigned running;        /* jobs between their start and the end of their done */
    size_t pending;          /* entries in the list */
    uint64_t completed;      /* jobs whose done returned */
};

lane_t *
lane_new(uv_loop_t *loop)
{
    lane_t *l = xcalloc(1, sizeof(*l));

    l->loop = loop;
    l->width = 1;
    return l;
}

void
lane_set_width(lane_t *l, unsigned width)
{
    l->width = width ? width : 1;
}

void
lane_destroy(lane_t **p)
{
    lane_t *l = *p;

    if (!l)
        return;
    /* A job still queued would be lost and a running one would be completed
     * into freed memory: the owner drains the loop first. */
    assert(l->pending == 0 && l->running == 0);
    free(l);
    *p = NULL;
}

static void
lane_work(uv_work_t *w)
{
    struct lane_entry *e = container_of(w, struct lane_entry, work);

    e->fns->run(e->arg);
    /* A create deepens the thread's stack by 60-70 KiB, resident for the
     * pool thread's life unless given back here (the real agent only). */
    memtidy_stack_release();
}

static void lane_kick(lane_t *l);

static void
lane_unlink(lane_t *l, struct lane_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
}

static void
lane_after_work(uv_work_t *w, int status)
{
    struct lane_entry *e = container_of(w, struct lane_entry, work);
    lane_t *l = e->lane;

    /* Nothing cancels a lane's work (uv_cancel is never called), so run has
     * run; the status is always 0. */
    (void)status;
    assert(e->started && l->running > 0);
    /* The entry stays listed and counted while done runs: a job that done
     * pushes, or one already waiting behind it, starts only once done has
     * returned. */
    e->fns->done(e->arg);
    lane_unlink(l, e);
    free(e);
    l->running--;
    l->pending--;
    l->completed++;
    lane_kick(l);
}

/* Whether a job of key may start: no earlier job (each not done yet) has
 * its key or is a barrier. */
static bool
lane_free_key(const struct lane_entry *e)
{
    for (const struct lane_entry *o = e->prev; o; o = o->prev)
        if (!o->key[0] || !strcmp(o->key, e->key))
            return false;
    return true;
}

static void
lane_start(lane_t *l, struct lane_entry *e)
{
    e->started = true;
    l->running++;
    if (e->fns->start)
        e->fns->start(e->arg);
    /* uv_queue_work fails only for a NULL work callback. */
    int r = uv_queue_work(l->loop, &e->work, lane_work, lane_after_work);
    assert(r == 0);
    (void)r;
}

/* Starts, in push order, every job that may start now. A walk costs the
 * jobs ahead of the last one started: the queue is short (a node's pending
 * commands), and a walk ends at the width or at the first barrier. */
static void
lane_kick(lane_t *l)
{
    for (struct lane_entry *e = l->head; e && l->running < l->width; e = e->next) {
        if (e->started)
            continue;
        if (!e->key[0]) {
            /* A barrier: alone, after everything before it. */
            if (e == l->head && l->running == 0)
                lane_start(l, e);
            return;
        }
        if (lane_free_key(e))
            lane_start(l, e);
    }
}

void
lane_push_key(lane_t *l, const char *key, const struct lane_fns *fns, void *arg)
{
    struct lane_entry *e = xcalloc(1, sizeof(*e));

    assert(fns && fns->run && fns->done);
    e->lane = l;
    e->fns = fns;
    e->arg = arg;
    if (key)
        strscpy(e->key, key, sizeof(e->key));
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->pending++;
    lane_kick(l);
}

void
lane_push(lane_t *l, const struct lane_fns *fns, void *arg)
{
    lane_push_key(l, NULL, fns, arg);
}

size_t
lane_pending(const lane_t *l)
{
    return l->pending;
}

uint64_t
lane_completed(const lane_t *l)
{
    return l->completed;
}
