#include "master/dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/hmap.h"

#define DISPATCH_RESEND_DEFAULT_MS 5000
#define DISPATCH_RESEND_MAX_MS     60000

/* One command waiting for its answer. */
struct cmd {
    uint64_t id;                 /* request id */
    enum msg_type type;          /* the command */
    char guest[SPEC_ID_LEN + 1]; /* its guest */
    uint64_t generation;         /* the generation it carries */
    char *buf;                   /* the encoded frame */
    size_t len;                  /* bytes in buf */
    uint64_t next_ms;            /* monotonic time of the next (re-)send */
    uint32_t interval_ms;        /* the current re-send interval */
    bool sent;                   /* went out at least once */
    struct cmd *next;            /* queue order */
};

/* One node's outbox. */
struct outbox {
    char name[NAME_MAX_LEN + 1]; /* the node */
    struct cmd *head;            /* oldest first */
    size_t len;                  /* commands queued */
};

struct dispatch {
    struct dispatch_config cfg; /* as given, defaults filled in */
    struct hmap_str boxes;      /* node name -> struct outbox * */
    struct outbox **all;        /* every outbox, for ticks */
    size_t n_all;               /* entries in all */
    uint64_t next_id;           /* the next request id */
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

static void
cmd_free(struct cmd *c)
{
    free(c->buf);
    free(c);
}

void
dispatch_destroy(dispatch_t **pd)
{
    dispatch_t *d = *pd;

    if (!d)
        return;
    for (size_t i = 0; i < d->n_all; i++) {
        struct cmd *c = d->all[i]->head;
        while (c) {
            struct cmd *n = c->next;
            cmd_free(c);
            c = n;
        }
        free(d->all[i]);
    }
    free(d->all);
    hmap_str_free(&d->boxes);
    free(d);
    *pd = NULL;
}

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

static bool
node_ready(const dispatch_t *d, const char *node)
{
    return !d->cfg.ready || d->cfg.ready(d->cfg.userdata, node);
}

/* Sends c now and schedules its next re-send. */
static int
cmd_send(dispatch_t *d, const struct outbox *b, struct cmd *c, uint64_t now)
{
    int r = d->cfg.send(d->cfg.userdata, b->name, c->buf, c->len);

    if (c->sent) {
        uint64_t doubled = (uint64_t)c->interval_ms * 2;
        c->interval_ms = doubled > d->cfg.resend_max_ms ? d->cfg.resend_max_ms : (uint32_t)doubled;
    }
    c->next_ms = now + c->interval_ms;
    if (r >= 0)
        c->sent = true;
    else
        log_debug("node=%s send of request %" PRIu64 " failed: %s, kept queued", b->name, c->id,
                  strerror(-r));
    return r;
}

static const char *
msg_guest_id(const struct msg *m)
{
    switch (m->type) {
    case MSG_GUEST_APPLY:
        return m->u.apply.id;
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        return m->u.guest.id;
    case MSG_GUEST_EXEC:
        return m->u.exec.id;
    case MSG_GUEST_CONSOLE:
        return m->u.console.id;
    default:
        return "";
    }
}

/* A request answered by a result of its own (exec, console): sent once, as
 * running a command twice is not harmless, and waited for by its caller. */
static bool
sent_once(enum msg_type t)
{
    return t == MSG_GUEST_EXEC || t == MSG_GUEST_CONSOLE;
}

int64_t
dispatch_queue(dispatch_t *d, const char *node, struct msg *m)
{
    struct outbox *b = box_get(d, node, true);
    struct cmd *c = xcalloc(1, sizeof(*c)), **pp;
    uint64_t saved = m->id;
    int r;

    c->id = d->next_id++;
    c->type = m->type;
    strscpy(c->guest, msg_guest_id(m), sizeof(c->guest));
    c->generation = m->type == MSG_GUEST_APPLY ? m->u.apply.generation : m->u.guest.generation;
    if (sent_once(m->type))
        c->generation = 0;
    m->id = c->id;
    r = msg_encode(m, &c->buf, &c->len);
    m->id = saved;
    if (r < 0) {
        free(c);
        return r;
    }
    c->interval_ms = d->cfg.resend_ms;

    if (sent_once(c->type)) {
        /* Sent once: a second run of a command is not harmless. */
        r = cmd_send(d, b, c, now_ms(d));
        if (r < 0) {
            cmd_free(c);
            return r;
        }
        c->next_ms = UINT64_MAX;
        c->next = NULL;
        for (pp = &b->head; *pp; pp = &(*pp)->next)
            ;
        *pp = c;
        b->len++;
        return (int64_t)c->id;
    }

    /* Coalesce with an unanswered command of the same kind for the guest. */
    for (pp = &b->head; *pp; pp = &(*pp)->next) {
        struct cmd *o = *pp;
        if (o->type != c->type || strcmp(o->guest, c->guest) != 0)
            continue;
        if (c->type != MSG_GUEST_APPLY && c->type != MSG_GUEST_START && c->type != MSG_GUEST_STOP)
            continue;
        c->next = o->next;
        *pp = c;
        cmd_free(o);
        b->len--;
        goto queued;
    }
    *pp = c;
queued:
    b->len++;
    if (node_ready(d, node))
        cmd_send(d, b, c, now_ms(d));
    else
        c->next_ms = now_ms(d) + c->interval_ms;
    return (int64_t)c->id;
}

int
dispatch_complete(dispatch_t *d, const char *node, uint64_t ref, struct dispatch_done *out)
{
    struct outbox *b = box_get(d, node, false);

    if (!b || !ref)
        return -ENOENT;
    for (struct cmd **pp = &b->head; *pp; pp = &(*pp)->next) {
        struct cmd *c = *pp;
        if (c->id != ref)
            continue;
        if (out) {
            out->id = c->id;
            out->type = c->type;
            memcpy(out->guest, c->guest, sizeof(out->guest));
            out->generation = c->generation;
        }
        *pp = c->next;
        b->len--;
        cmd_free(c);
        return 0;
    }
    return -ENOENT;
}

int
dispatch_defer(dispatch_t *d, const char *node, uint64_t ref, struct dispatch_done *out)
{
    struct outbox *b = box_get(d, node, false);

    if (!b || !ref)
        return -ENOENT;
    for (struct cmd *c = b->head; c; c = c->next) {
        if (c->id != ref)
            continue;
        out->id = c->id;
        out->type = c->type;
        memcpy(out->guest, c->guest, sizeof(out->guest));
        out->generation = c->generation;
        if (sent_once(c->type))
            return -ENOENT;
        uint64_t doubled = (uint64_t)c->interval_ms * 2;
        c->interval_ms = doubled > d->cfg.resend_max_ms ? d->cfg.resend_max_ms : (uint32_t)doubled;
        c->next_ms = now_ms(d) + c->interval_ms;
        return 0;
    }
    return -ENOENT;
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

    if (!b)
        return;
    for (struct cmd **pp = &b->head; *pp;) {
        struct cmd *c = *pp;
        if (strcmp(c->guest, guest_id) == 0) {
            *pp = c->next;
            b->len--;
            cmd_free(c);
        } else {
            pp = &c->next;
        }
    }
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

size_t
dispatch_tick(dispatch_t *d)
{
    uint64_t now = now_ms(d);
    size_t sent = 0;

    for (size_t i = 0; i < d->n_all; i++) {
        struct outbox *b = d->all[i];
        if (!b->head || !node_ready(d, b->name))
            continue;
        for (struct cmd *c = b->head; c; c = c->next) {
            if (sent_once(c->type) || c->next_ms > now)
                continue;
            if (cmd_send(d, b, c, now) >= 0)
                sent++;
        }
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
    for (const struct cmd *c = b->head; c; c = c->next)
        n += c->type == type && strcmp(c->guest, guest) == 0;
    return n;
}
