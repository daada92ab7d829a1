#include "node/lane.h"

#include <assert.h>
#include <stdlib.h>

#include "common/mem.h"

/* One queued job. While the lane is busy, the head entry is the one on the
 * thread pool (libuv holds its work request until after_work); it leaves the
 * list just before its done is called. */
struct lane_entry {
    struct lane_entry *next;    /* the next job in push order */
    lane_t *lane;               /* back pointer for the thread-pool callbacks */
    const struct lane_fns *fns; /* the job's callbacks (the caller's) */
    void *arg;                  /* the caller's job, passed to run and done */
    uv_work_t work;             /* libuv's request; reached back with container_of */
};

struct lane {
    uv_loop_t *loop;         /* the loop whose thread pool runs the jobs */
    struct lane_entry *head; /* the running job, or the next to run */
    struct lane_entry *tail; /* the last pushed job */
    bool busy;               /* a job is between its start and the end of its done */
    size_t pending;          /* entries in the list */
    uint64_t completed;      /* jobs whose done returned */
};

lane_t *
lane_new(uv_loop_t *loop)
{
    lane_t *l = xcalloc(1, sizeof(*l));

    l->loop = loop;
    return l;
}

void
lane_destroy(lane_t **p)
{
    lane_t *l = *p;

    if (!l)
        return;
    /* A job still queued would be lost and a running one would be completed
     * into freed memory: the owner drains the loop first. */
    assert(l->pending == 0 && !l->busy);
    free(l);
    *p = NULL;
}

static void
lane_work(uv_work_t *w)
{
    struct lane_entry *e = container_of(w, struct lane_entry, work);

    e->fns->run(e->arg);
}

static void lane_kick(lane_t *l);

static void
lane_after_work(uv_work_t *w, int status)
{
    struct lane_entry *e = container_of(w, struct lane_entry, work);
    lane_t *l = e->lane;

    /* Nothing cancels a lane's work (uv_cancel is never called), so run has
     * run; the status is always 0. */
    (void)status;
    assert(l->head == e && l->busy);
    l->head = e->next;
    if (!l->head)
        l->tail = NULL;
    /* busy stays set while done runs: a job that done pushes, or one already
     * waiting, starts only once done has returned. */
    e->fns->done(e->arg);
    l->busy = false;
    free(e);
    l->pending--;
    l->completed++;
    lane_kick(l);
}

static void
lane_kick(lane_t *l)
{
    if (l->busy || !l->head)
        return;
    struct lane_entry *e = l->head;
    l->busy = true;
    if (e->fns->start)
        e->fns->start(e->arg);
    /* uv_queue_work fails only for a NULL work callback. */
    int r = uv_queue_work(l->loop, &e->work, lane_work, lane_after_work);
    assert(r == 0);
    (void)r;
}

void
lane_push(lane_t *l, const struct lane_fns *fns, void *arg)
{
    struct lane_entry *e = xcalloc(1, sizeof(*e));

    assert(fns && fns->run && fns->done);
    e->lane = l;
    e->fns = fns;
    e->arg = arg;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->pending++;
    lane_kick(l);
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
