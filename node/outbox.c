#include "node/outbox.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* One frame waiting for the master's acknowledgement. */
struct oframe {
    uint64_t id;          /* its request id */
    bool lead;            /* the hello: first, and sent while closed */
    bool once;            /* an answer (ack, nack): forgotten once sent, no ack comes */
    void *buf;            /* the encoded frame (owned) */
    size_t len;           /* its bytes */
    bool sent;            /* it went out at least once */
    uint64_t due_ms;      /* when it goes again (uv_now), once sent */
    uint32_t interval_ms; /* the current re-send interval */
};

struct outbox {
    uv_loop_t *loop;          /* borrowed */
    struct outbox_config cfg; /* defaults filled */
    uv_timer_t timer;         /* the next retry or re-send */
    bool timer_init;          /* timer initialised and not closed */
    struct oframe *f;         /* frames, oldest first (the lead, when any, at 0) */
    size_t n;                 /* entries used */
    size_t cap;               /* entries allocated */
    bool open;                /* welcomed: every frame may go */
    uint64_t retry_at;        /* a failed send is tried again then, 0 = none */
    uint32_t retry_cur_ms;    /* the current retry delay, doubling while sends fail */
    uint64_t dropped;         /* frames dropped because the outbox was full */
};

static void on_timer(uv_timer_t *t);

outbox_t *
outbox_new(uv_loop_t *loop, const struct outbox_config *cfg)
{
    outbox_t *o = xcalloc(1, sizeof(*o));

    o->loop = loop;
    o->cfg = *cfg;
    if (!o->cfg.retry_ms)
        o->cfg.retry_ms = 100;
    if (!o->cfg.resend_ms)
        o->cfg.resend_ms = 2000;
    if (!o->cfg.resend_max_ms)
        o->cfg.resend_max_ms = 30000;
    if (!o->cfg.retry_max_ms)
        o->cfg.retry_max_ms = 1000;
    if (o->cfg.retry_max_ms < o->cfg.retry_ms)
        o->cfg.retry_max_ms = o->cfg.retry_ms;
    if (!o->cfg.max)
        o->cfg.max = 16384;
    o->retry_cur_ms = o->cfg.retry_ms;
    uv_timer_init(loop, &o->timer);
    o->timer.data = o;
    o->timer_init = true;
    return o;
}

void
outbox_close(outbox_t *o)
{
    if (!o || !o->timer_init)
        return;
    o->timer_init = false;
    uv_close((uv_handle_t *)&o->timer, NULL);
}

void
outbox_destroy(outbox_t **p)
{
    outbox_t *o = *p;

    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        free(o->f[i].buf);
    free(o->f);
    free(o);
    *p = NULL;
}

static void
remove_at(outbox_t *o, size_t i)
{
    free(o->f[i].buf);
    memmove(&o->f[i], &o->f[i + 1], (o->n - i - 1) * sizeof(*o->f));
    o->n--;
}

/* Arms the timer for the earliest retry or re-send; stops it when nothing waits. */
static void
arm(outbox_t *o, uint64_t now)
{
    uint64_t next = o->retry_at;

    if (!o->timer_init)
        return;
    /* After a failed send nothing goes before its retry. */
    for (size_t i = 0; !o->retry_at && i < o->n; i++) {
        if (!o->f[i].lead && !o->open)
            break;
        if (o->f[i].sent && (!next || o->f[i].due_ms < next))
            next = o->f[i].due_ms;
    }
    if (!next) {
        uv_timer_stop(&o->timer);
        return;
    }
    /* Never 0: a timer re-armed with 0 from its own callback runs again in
     * the same loop turn (libuv does not advance its clock there). */
    uv_timer_start(&o->timer, on_timer, next > now ? next - now : 1, 0);
}

/* Sends f: 0, or the transport's -errno. A sent answer is done with (the
 * caller drops it); any other frame is due again after its interval. */
static int
send_frame(outbox_t *o, struct oframe *f, uint64_t now)
{
    int r = o->cfg.send(o->cfg.userdata, f->buf, f->len);

    if (r < 0)
        return r;
    if (!f->sent)
        f->interval_ms = o->cfg.resend_ms;
    else if (!f->lead && f->interval_ms < o->cfg.resend_max_ms)
        f->interval_ms =
            f->interval_ms * 2 > o->cfg.resend_max_ms ? o->cfg.resend_max_ms : f->interval_ms * 2;
    f->sent = true;
    f->due_ms = now + f->interval_ms;
    return 0;
}

void
outbox_pump(outbox_t *o)
{
    uint64_t now = uv_now(o->loop);
    size_t kept = 0;

    if (o->retry_at && now < o->retry_at) {
        arm(o, now);
        return;
    }
    o->retry_at = 0;
    /* One pass that also drops the answers sent, so a long queue after
     * back-pressure costs one walk, not one memmove per frame. */
    for (size_t i = 0; i < o->n; i++) {
        struct oframe f = o->f[i];
        bool may = !o->retry_at && (f.lead || o->open) && !(f.sent && f.due_ms > now);
        if (may && send_frame(o, &f, now) < 0) {
            /* In order or not at all: the rest waits for this one. The
             * delay doubles while the master pushes back (a full queue),
             * so thousands of blocked nodes do not spin on it. */
            o->retry_at = now + o->retry_cur_ms;
            o->retry_cur_ms = o->retry_cur_ms * 2 > o->cfg.retry_max_ms ? o->cfg.retry_max_ms
                                                                        : o->retry_cur_ms * 2;
        } else if (may) {
            o->retry_cur_ms = o->cfg.retry_ms;
            if (f.once) {
                free(f.buf);
                continue;
            }
        }
        o->f[kept++] = f;
    }
    o->n = kept;
    arm(o, now);
}

static void
on_timer(uv_timer_t *t)
{
    outbox_pump(t->data);
}

static void
append(outbox_t *o, struct oframe fr)
{
    size_t at;

    if (fr.lead && o->n > 0 && o->f[0].lead)
        remove_at(o, 0);
    if (o->n >= o->cfg.max) {
        size_t victim = o->n > 0 && o->f[0].lead ? 1 : 0;
        if (victim < o->n) {
            remove_at(o, victim);
            o->dropped++;
        }
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->f = xreallocarray(o->f, o->cap, sizeof(*o->f));
    }
    at = fr.lead ? 0 : o->n;
    memmove(&o->f[at + 1], &o->f[at], (o->n - at) * sizeof(*o->f));
    o->f[at] = fr;
    o->n++;
    outbox_pump(o);
}

void
outbox_push(outbox_t *o, uint64_t id, bool lead, void *buf, size_t len)
{
    append(o, (struct oframe){.id = id, .lead = lead, .buf = buf, .len = len});
}

void
outbox_push_once(outbox_t *o, uint64_t key, void *buf, size_t len)
{
    /* The answer to a command the master sent again, while the first
     * answer still waits: the newer one takes its place. */
    for (size_t i = 0; i < o->n; i++)
        if (o->f[i].once && o->f[i].id == key) {
            free(o->f[i].buf);
            o->f[i].buf = buf;
            o->f[i].len = len;
            outbox_pump(o);
            return;
        }
    append(o, (struct oframe){.id = key, .once = true, .buf = buf, .len = len});
}

bool
outbox_blocked(const outbox_t *o)
{
    return o->retry_at != 0;
}

void
outbox_open(outbox_t *o, bool open)
{
    o->open = open;
    if (open) {
        /* Whatever went out before may have died with the old connection. */
        for (size_t i = 0; i < o->n; i++)
            o->f[i].due_ms = 0;
        o->retry_at = 0;
    }
    outbox_pump(o);
}

bool
outbox_ack(outbox_t *o, uint64_t id)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->f[i].id == id && !o->f[i].once) {
            remove_at(o, i);
            arm(o, uv_now(o->loop));
            return true;
        }
    return false;
}

size_t
outbox_len(const outbox_t *o)
{
    return o->n;
}

uint64_t
outbox_dropped(const outbox_t *o)
{
    return o->dropped;
}
