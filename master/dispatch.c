/* The outboxes, indexed so that no operation walks a whole outbox:
 *
 * - by request id (one master-wide map to a slot table): an ack, a nack or a
 *   result finds its command in O(1);
 * - by guest within each outbox (a short chain per guest): coalescing,
 *   "is a destroy pending for this guest?" and forgetting a guest look at
 *   that guest's commands only;
 * - by next send time (one min-heap over every outbox): a tick pops only the
 *   commands that are due, O(due · log n), where it used to visit every
 *   queued command of every node.
 * Queue order (what a flush after a hello re-sends, in order) is a doubly
 * linked list per outbox. */
#include "master/dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/hmap.h"

#define DISPATCH_RESEND_DEFAULT_MS 5000
#define DISPATCH_RESEND_MAX_MS     60000
/* Not in the heap: an exec or console request, which is never re-sent. */
#define NO_HEAP SIZE_MAX

struct outbox;
struct gcmds;

/* One command waiting for its answer. */
struct cmd {
    uint64_t id;                 /* request id */
    enum msg_type type;          /* the command */
    char guest[SPEC_ID_LEN + 1]; /* its guest */
    uint64_t generation;         /* the generation it carries */
    char *buf;                   /* the encoded frame */
    size_t len;                  /* bytes in buf */
    uint64_t next_ms;            /* monotonic time of the next (re-)send */
    uint64_t sent_ms;            /* monotonic time of the last send */
    uint64_t queued_ms;          /* monotonic time it was queued (answer latency) */
    uint32_t interval_ms;        /* the current re-send interval */
    bool sent;                   /* went out at least once */
    uint32_t slot;               /* its index in dispatch.slots */
    size_t heap;                 /* its index in dispatch.heap, NO_HEAP when not there */
    struct outbox *box;          /* the outbox it waits in */
    struct gcmds *g;             /* its guest's chain in that outbox */
    struct cmd *prev, *next;     /* queue order in the outbox */
    struct cmd *gnext;           /* the guest's chain, queue order */
};

/* The commands of one guest in one outbox. */
struct gcmds {
    char guest[SPEC_ID_LEN + 1]; /* the key */
    struct cmd *head;            /* oldest first, linked by gnext */
};

/* One node's outbox. */
struct outbox {
    char name[NAME_MAX_LEN + 1]; /* the node */
    struct cmd *head, *tail;     /* queue order, oldest first */
    size_t len;                  /* commands queued */
    struct hmap_str guests;      /* guest id -> struct gcmds * */
    uint64_t answered_ms;        /* monotonic time of the node's latest answer */
    uint64_t answered_max;       /* the highest request id the node answered */
    bool no_apply_start;         /* an older node: guest.apply.start goes as apply + start */
};

struct dispatch {
    struct dispatch_config cfg;  /* as given, defaults filled in */
    struct hmap_str boxes;       /* node name -> struct outbox * */
    struct outbox **all;         /* every outbox, to free them */
    size_t n_all;                /* entries in all */
    uint64_t next_id;            /* the next request id */
    struct hmap_u64 by_id;       /* request id -> index in slots */
    struct cmd **slots;          /* waiting commands; NULL = free slot */
    uint32_t n_slots;            /* entries in slots */
    uint32_t cap_slots;          /* room in slots and free_slots */
    uint32_t *free_slots;        /* indexes of NULL slots, a stack */
    uint32_t n_free;             /* entries in free_slots */
    struct cmd **heap;           /* min-heap on next_ms of the commands that are re-sent */
    size_t n_heap;               /* entries in heap */
    size_t cap_heap;             /* room in heap */
    struct dispatch_stats stats; /* counts since start (metrics) */
};

static uint64_t
now_ms(const dispatch_t *d)
{
    return d->cfg.clock_ms ? d->cfg.clock_ms(d->cfg.clock_userdata) : time_mono_ms();
}

dispatch_t *
dispatch_new(const struct dispatch_config *cfg)
{
    dispatch_t *d = xcalloc(1, sizeof(*d));

    d->cfg = *cfg;
    if (!d->cfg.resend_ms)
        d->cfg.resend_ms = DISPATCH_RESEND_DEFAULT_MS;
    if (!d->cfg.resend_max_ms)
        d->cfg.resend_max_ms = DISPATCH_RESEND_MAX_MS;
    if (d->cfg.resend_max_ms < d->cfg.resend_ms)
        d->cfg.resend_max_ms = d->cfg.resend_ms;
    d->next_id = 1;
    return d;
}

void
dispatch_destroy(dispatch_t **pd)
{
    dispatch_t *d = *pd;

    if (!d)
        return;
    for (uint32_t i = 0; i < d->n_slots; i++)
        if (d->slots[i]) {
            free(d->slots[i]->buf);
            free(d->slots[i]);
        }
    for (size_t i = 0; i < d->n_all; i++) {
        struct hmap_str *gs = &d->all[i]->guests;
        for (size_t k = 0; k < gs->cap; k++)
            if (gs->slots[k].key)
                free(gs->slots[k].val);
        hmap_str_free(gs);
        free(d->all[i]);
    }
    free(d->all);
    free(d->slots);
    free(d->free_slots);
    free(d->heap);
    hmap_u64_free(&d->by_id);
    hmap_str_free(&d->boxes);
    free(d);
    *pd = NULL;
}

/* ---- the heap of re-send times ---- */

static void
heap_set(dispatch_t *d, size_t i, struct cmd *c)
{
    d->heap[i] = c;
    c->heap = i;
}

static void
heap_up(dispatch_t *d, size_t i)
{
    struct cmd *c = d->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (d->heap[p]->next_ms <= c->next_ms)
            break;
        heap_set(d, i, d->heap[p]);
        i = p;
    }
    heap_set(d, i, c);
}

static void
heap_down(dispatch_t *d, size_t i)
{
    struct cmd *c = d->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint64_t best = c->next_ms;
        if (l < d->n_heap && d->heap[l]->next_ms < best)
            m = l, best = d->heap[l]->next_ms;
        if (l + 1 < d->n_heap && d->heap[l + 1]->next_ms < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(d, i, d->heap[m]);
        i = m;
    }
    heap_set(d, i, c);
}

/* Puts c in the heap, or moves it after its next_ms changed. */
static void
heap_update(dispatch_t *d, struct cmd *c)
{
    if (c->heap == NO_HEAP) {
        if (d->n_heap == d->cap_heap) {
            d->cap_heap = d->cap_heap ? 2 * d->cap_heap : 64;
            d->heap = xreallocarray(d->heap, d->cap_heap, sizeof(*d->heap));
        }
        heap_set(d, d->n_heap++, c);
        heap_up(d, c->heap);
        return;
    }
    heap_up(d, c->heap);
    heap_down(d, c->heap);
}

static void
heap_remove(dispatch_t *d, struct cmd *c)
{
    size_t i = c->heap;

    if (i == NO_HEAP)
        return;
    c->heap = NO_HEAP;
    struct cmd *last = d->heap[--d->n_heap];
    if (last == c)
        return;
    heap_set(d, i, last);
    heap_up(d, i);
    heap_down(d, last->heap);
}

/* ---- outboxes and the indexes of a command ---- */

static struct outbox *
box_get(dispatch_t *d, const char *node, bool create)
{
    struct outbox *b = hmap_str_get(&d->boxes, node);

    if (b || !create)
        return b;
    b = xcalloc(1, sizeof(*b));
    strscpy(b->name, node, sizeof(b->name));
    d->all = xreallocarray(d->all, d->n_all + 1, sizeof(*d->all));
    d->all[d->n_all++] = b;
    hmap_str_put(&d->boxes, b->name, b);
    return b;
}

static struct cmd *
cmd_by_id(const dispatch_t *d, const struct outbox *b, uint64_t id)
{
    const uint32_t *slot = hmap_u64_get(&d->by_id, id);

    if (!slot)
        return NULL;
    struct cmd *c = d->slots[*slot];
    /* Another node's answer never completes this node's command. */
    return c->box == b ? c : NULL;
}

/* Appends c at the end of b's queue and of its guest's chain. */
static void
cmd_link(dispatch_t *d, struct outbox *b, struct cmd *c)
{
    c->box = b;
    c->prev = b->tail;
    c->next = NULL;
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    b->len++;

    struct gcmds *g = hmap_str_get(&b->guests, c->guest);
    if (!g) {
        g = xcalloc(1, sizeof(*g));
        memcpy(g->guest, c->guest, sizeof(g->guest));
        hmap_str_put(&b->guests, g->guest, g);
    }
    c->g = g;
    struct cmd **pp = &g->head;
    while (*pp)
        pp = &(*pp)->gnext;
    *pp = c;

    if (d->n_free) {
        c->slot = d->free_slots[--d->n_free];
    } else {
        if (d->n_slots == d->cap_slots) {
            d->cap_slots = d->cap_slots ? 2 * d->cap_slots : 64;
            d->slots = xreallocarray(d->slots, d->cap_slots, sizeof(*d->slots));
            d->free_slots = xreallocarray(d->free_slots, d->cap_slots, sizeof(*d->free_slots));
        }
        c->slot = d->n_slots++;
    }
    d->slots[c->slot] = c;
    hmap_u64_put(&d->by_id, c->id, c->slot);
}

/* Takes c out of every index and frees it. */
static void
cmd_drop(dispatch_t *d, struct cmd *c)
{
    struct outbox *b = c->box;

    if (c->prev)
        c->prev->next = c->next;
    else
        b->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        b->tail = c->prev;
    b->len--;

    struct cmd **pp = &c->g->head;
    while (*pp != c)
        pp = &(*pp)->gnext;
    *pp = c->gnext;
    if (!c->g->head) {
        hmap_str_del(&b->guests, c->g->guest);
        free(c->g);
    }

    heap_remove(d, c);
    hmap_u64_del(&d->by_id, c->id);
    d->slots[c->slot] = NULL;
    d->free_slots[d->n_free++] = c->slot;
    free(c->buf);
    free(c);
}

/* Puts n where o was (queue position and guest chain) and frees o. */
static void
cmd_replace(dispatch_t *d, struct cmd *o, struct cmd *n)
{
    struct outbox *b = o->box;

    n->box = b;
    n->g = o->g;
    n->prev = o->prev;
    n->next = o->next;
    n->gnext = o->gnext;
    if (n->prev)
        n->prev->next = n;
    else
        b->head = n;
    if (n->next)
        n->next->prev = n;
    else
        b->tail = n;
    struct cmd **pp = &o->g->head;
    while (*pp != o)
        pp = &(*pp)->gnext;
    *pp = n;

    n->slot = o->slot;
    d->slots[n->slot] = n;
    hmap_u64_del(&d->by_id, o->id);
    hmap_u64_put(&d->by_id, n->id, n->slot);
    heap_remove(d, o);
    free(o->buf);
    free(o);
}

static bool
node_ready(const dispatch_t *d, const char *node)
{
    return !d->cfg.ready || d->cfg.ready(d->cfg.userdata, node);
}

/* A request answered by a result of its own (exec, console): sent once, as
 * running a command twice is not harmless, and waited for by its caller. */
static bool
sent_once(enum msg_type t)
{
    return t == MSG_GUEST_EXEC || t == MSG_GUEST_CONSOLE;
}

/* Sends c now and schedules its next re-send. */
static int
cmd_send(dispatch_t *d, const struct outbox *b, struct cmd *c, uint64_t now)
{
    int r = d->cfg.send(d->cfg.userdata, b->name, c->buf, c->len);

    if (r >= 0) {
        d->stats.sent++;
        d->stats.resent += c->sent;
    }
    if (c->sent) {
        uint64_t doubled = (uint64_t)c->interval_ms * 2;
        c->interval_ms = doubled > d->cfg.resend_max_ms ? d->cfg.resend_max_ms : (uint32_t)doubled;
    }
    c->next_ms = now + c->interval_ms;
    if (!sent_once(c->type))
        heap_update(d, c);
    if (r >= 0) {
        c->sent = true;
        c->sent_ms = now;
    } else
        log_debug("node=%s send of request %" PRIu64 " failed: %s, kept queued", b->name, c->id,
                  strerror(-r));
    return r;
}

static const char *
msg_guest_id(const struct msg *m)
{
    switch (m->type) {
    case MSG_GUEST_APPLY:
    case MSG_GUEST_APPLY_START:
        return m->u.apply.id;
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        return m->u.guest.id;
    case MSG_GUEST_EXEC:
        return m->u.exec.id;
    case MSG_MIGRATE_PREPARE:
    case MSG_MIGRATE_SEND:
    case MSG_MIGRATE_COMMIT:
    case MSG_MIGRATE_FINISH:
    case MSG_MIGRATE_ABORT:
        return m->u.migrate.id;
    case MSG_GUEST_CONSOLE:
        return m->u.console.id;
    default:
        return "";
    }
}

/* An unanswered command of the same kind for c's guest, which c replaces. */
static struct cmd *
coalesces_with(const struct outbox *b, const struct cmd *c)
{
    if (c->type != MSG_GUEST_APPLY && c->type != MSG_GUEST_APPLY_START &&
        c->type != MSG_GUEST_START && c->type != MSG_GUEST_STOP)
        return NULL;
    const struct gcmds *g = hmap_str_get(&b->guests, c->guest);
    for (struct cmd *o = g ? g->head : NULL; o; o = o->gnext)
        if (o->type == c->type)
            return o;
    return NULL;
}

/* guest.apply.start to a node that does not know it: the two commands it
 * stands for, in that order. Returns the apply's request id. */
static int64_t
queue_apply_then_start(dispatch_t *d, const char *node, struct msg *m)
{
    struct msg start = {.type = MSG_GUEST_START};

    m->type = MSG_GUEST_APPLY;
    int64_t r = dispatch_queue(d, node, m);
    m->type = MSG_GUEST_APPLY_START;
    if (r < 0)
        return r;
    strscpy(start.u.guest.id, m->u.apply.id, sizeof(start.u.guest.id));
    start.u.guest.generation = m->u.apply.generation;
    (void)dispatch_queue(d, node, &start);
    return r;
}

/* c is the same command as o, queued again (a hello's reconciliation, say,
 * re-queues every create its node has not acked): o stays, with its request
 * id, so the node's answer to any copy of it that went out completes it, and
 * nothing is added. Re-queuing used to replace o by a copy with a new id:
 * each hello of a node with a backlog sent its whole outbox twice (the flush,
 * then the copies), the answers to the old ids matched nothing and the
 * copies went on being re-sent. o goes now if it never went out; else its
 * next re-send is brought within the first interval. */
static int64_t
queue_same(dispatch_t *d, struct outbox *b, struct cmd *o)
{
    uint64_t now = now_ms(d);

    if (!o->sent && node_ready(d, b->name)) {
        cmd_send(d, b, o, now);
    } else if (o->next_ms > now + d->cfg.resend_ms) {
        o->interval_ms = d->cfg.resend_ms;
        o->next_ms = now + o->interval_ms;
        heap_update(d, o);
    }
    return (int64_t)o->id;
}

/* Encodes m with request id id into c. */
static int
cmd_encode(struct cmd *c, struct msg *m, uint64_t id)
{
    uint64_t saved = m->id;

    m->id = id;
    int r = msg_encode(m, &c->buf, &c->len);
    m->id = saved;
    return r;
}

int64_t
dispatch_queue(dispatch_t *d, const char *node, struct msg *m)
{
    struct outbox *b = box_get(d, node, true);

    if (m->type == MSG_GUEST_APPLY_START && b->no_apply_start)
        return queue_apply_then_start(d, node, m);

    struct cmd *c = xcalloc(1, sizeof(*c));
    int r;

    c->type = m->type;
    c->heap = NO_HEAP;
    strscpy(c->guest, msg_guest_id(m), sizeof(c->guest));
    c->generation = m->type == MSG_GUEST_APPLY || m->type == MSG_GUEST_APPLY_START
                        ? m->u.apply.generation
                        : m->u.guest.generation;
    /* A migrate message's union has no generation: its step is what counts. */
    if (sent_once(m->type) || (m->type >= MSG_MIGRATE_PREPARE && m->type <= MSG_MIGRATE_ABORT))
        c->generation = 0;
    /* The same bytes under the id of the command it would coalesce with,
     * and nothing about the guest queued after that one (a start, then a
     * stop, then the start again must reach the node in that order): the
     * same command again, which stays as it is. */
    struct cmd *o = sent_once(c->type) ? NULL : coalesces_with(b, c);
    if (o && !o->gnext && cmd_encode(c, m, o->id) >= 0) {
        bool same = c->len == o->len && !memcmp(c->buf, o->buf, c->len);
        free(c->buf);
        c->buf = NULL;
        if (same) {
            free(c);
            return queue_same(d, b, o);
        }
    }
    c->id = d->next_id++;
    r = cmd_encode(c, m, c->id);
    if (r < 0) {
        free(c);
        return r;
    }
    c->interval_ms = d->cfg.resend_ms;
    c->queued_ms = now_ms(d);
    d->stats.queued++;

    if (sent_once(c->type)) {
        /* Sent once: a second run of a command is not harmless. */
        r = cmd_send(d, b, c, now_ms(d));
        if (r < 0) {
            free(c->buf);
            free(c);
            return r;
        }
        c->next_ms = UINT64_MAX;
        cmd_link(d, b, c);
        return (int64_t)c->id;
    }

    /* Coalesce with an unanswered command of the same kind for the guest,
     * in its place, so a start queued behind an apply still follows it. */
    if (o)
        cmd_replace(d, o, c);
    else
        cmd_link(d, b, c);
    uint64_t now = now_ms(d);
    if (node_ready(d, node)) {
        cmd_send(d, b, c, now);
    } else {
        c->next_ms = now + c->interval_ms;
        heap_update(d, c);
    }
    return (int64_t)c->id;
}

static void
fill_done(const struct cmd *c, struct dispatch_done *out)
{
    if (!out)
        return;
    out->id = c->id;
    out->type = c->type;
    memcpy(out->guest, c->guest, sizeof(out->guest));
    out->generation = c->generation;
    out->queued_ms = c->queued_ms;
}

/* The node answered request ref: it is alive and has read that far. */
static void
answered(dispatch_t *d, struct outbox *b, uint64_t ref)
{
    b->answered_ms = now_ms(d);
    if (ref > b->answered_max)
        b->answered_max = ref;
}

int
dispatch_complete(dispatch_t *d, const char *node, uint64_t ref, struct dispatch_done *out)
{
    struct outbox *b = box_get(d, node, false);
    struct cmd *c = b && ref ? cmd_by_id(d, b, ref) : NULL;

    if (!c)
        return -ENOENT;
    answered(d, b, ref);
    fill_done(c, out);
    cmd_drop(d, c);
    return 0;
}

int
dispatch_defer(dispatch_t *d, const char *node, uint64_t ref, struct dispatch_done *out)
{
    struct outbox *b = box_get(d, node, false);
    struct cmd *c = b && ref ? cmd_by_id(d, b, ref) : NULL;

    if (!c)
        return -ENOENT;
    /* Not an answer for behind_older: a node that keeps refusing older
     * commands as busy must not hold back a newer one that was lost. */
    fill_done(c, out);
    if (sent_once(c->type))
        return -ENOENT;
    uint64_t doubled = (uint64_t)c->interval_ms * 2;
    c->interval_ms = doubled > d->cfg.resend_max_ms ? d->cfg.resend_max_ms : (uint32_t)doubled;
    c->next_ms = now_ms(d) + c->interval_ms;
    heap_update(d, c);
    return 0;
}

void
dispatch_cancel(dispatch_t *d, const char *node, uint64_t ref)
{
    dispatch_complete(d, node, ref, NULL);
}

void
dispatch_forget_guest(dispatch_t *d, const char *node, const char *guest_id)
{
    struct outbox *b = box_get(d, node, false);
    struct gcmds *g = b ? hmap_str_get(&b->guests, guest_id) : NULL;

    /* The last drop frees g itself. */
    while (g) {
        bool last = !g->head->gnext;
        cmd_drop(d, g->head);
        if (last)
            break;
    }
}

void
dispatch_forget_migrate(dispatch_t *d, const char *node, const char *guest_id)
{
    struct outbox *b = box_get(d, node, false);
    struct gcmds *g = b ? hmap_str_get(&b->guests, guest_id) : NULL;

    /* The guest's last drop frees g: next is taken before each drop. */
    for (struct cmd *c = g ? g->head : NULL, *next; c; c = next) {
        next = c->gnext;
        if (c->type >= MSG_MIGRATE_PREPARE && c->type <= MSG_MIGRATE_ABORT)
            cmd_drop(d, c);
    }
}

void
dispatch_set_no_apply_start(dispatch_t *d, const char *node, bool no)
{
    box_get(d, node, true)->no_apply_start = no;
}

void
dispatch_flush(dispatch_t *d, const char *node)
{
    struct outbox *b = box_get(d, node, false);
    uint64_t now = now_ms(d);

    if (!b)
        return;
    for (struct cmd *c = b->head; c; c = c->next) {
        if (sent_once(c->type))
            continue;
        c->interval_ms = d->cfg.resend_ms;
        c->sent = false;
        cmd_send(d, b, c, now);
    }
}

/* Whether c's re-send can wait: since it went out, the node has answered,
 * within the last interval, only commands older than c (a node answers in
 * the order it reads, and a connection delivers in order or breaks). It is
 * then still working through what came before c, which c waits behind: a
 * re-send would only queue a duplicate behind the original. A node that
 * answered something newer than c (c was lost: re-send) or that has been
 * silent for an interval (its connection may be gone) gets c again as
 * before. Under a backlog (thousands of commands, bench/sched.sh) the re-sends
 * otherwise multiplied the backlog and the node's answers stopped catching
 * up. */
static bool
behind_older(const struct cmd *c, uint64_t now)
{
    const struct outbox *b = c->box;

    return c->sent && b->answered_ms >= c->sent_ms && now - b->answered_ms < c->interval_ms &&
           b->answered_max < c->id;
}

size_t
dispatch_tick(dispatch_t *d)
{
    return dispatch_tick_behind(d, 0);
}

size_t
dispatch_tick_behind(dispatch_t *d, uint64_t behind_ms)
{
    uint64_t now = now_ms(d), read_to = now > behind_ms ? now - behind_ms : 0;
    size_t sent = 0;

    /* Due by read_to: an answer sent before then would have been read. Every
     * command handled here leaves with next_ms > now, so each is seen at
     * most once per tick. */
    while (d->n_heap && d->heap[0]->next_ms <= read_to) {
        struct cmd *c = d->heap[0];
        if (!node_ready(d, c->box->name)) {
            /* Paused while the node is not ready: looked at again one
             * interval later (its hello flushes the outbox anyway). */
            c->next_ms = now + c->interval_ms;
            heap_down(d, 0);
            continue;
        }
        if (behind_older(c, now)) {
            d->stats.postponed++;
            c->next_ms = now + c->interval_ms;
            heap_down(d, 0);
            continue;
        }
        if (cmd_send(d, c->box, c, now) >= 0)
            sent++;
    }
    return sent;
}

size_t
dispatch_pending(const dispatch_t *d, const char *node, enum msg_type type, const char *guest)
{
    const struct outbox *b = hmap_str_get(&d->boxes, node);
    size_t n = 0;

    if (!b)
        return 0;
    if (type == MSG_INVALID || !guest)
        return b->len;
    const struct gcmds *g = hmap_str_get(&b->guests, guest);
    for (const struct cmd *c = g ? g->head : NULL; c; c = c->gnext)
        n += c->type == type;
    return n;
}

void
dispatch_get_stats(const dispatch_t *d, struct dispatch_stats *out)
{
    *out = d->stats;
}
