#include "master/events.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/oncommit.h"
#include "master/jtext.h"

struct event_sub {
    events_fn fn;   /* NULL = free slot */
    void *userdata; /* handed to fn */
};

struct events {
    struct event_sub subs[EVENTS_MAX_SUBS]; /* who hears of committed events */
    uint64_t committed;                     /* the highest seq published */
    uint64_t next_expire;                   /* master clock of the next retention run */
};

#define EVENTS_EXPIRE_EVERY_MS 60000ULL

/* An event waiting for its commit; the strings live in the struct. */
struct pending_event {
    struct db_event e; /* points into the strings below */
    char *strings[7];  /* owned copies */
};

static struct events *
events_of(master_t *m)
{
    if (!m->events)
        m->events = xcalloc(1, sizeof(*m->events));
    return m->events;
}

static void
publish_after(master_t *m, void *ctx, int err)
{
    struct pending_event *p = ctx;

    if (err == 0 && m->events && p->e.seq > m->events->committed)
        m->events->committed = p->e.seq;
    if (err == 0 && m->events)
        for (size_t i = 0; i < EVENTS_MAX_SUBS; i++)
            if (m->events->subs[i].fn)
                m->events->subs[i].fn(m->events->subs[i].userdata, &p->e);
    for (size_t i = 0; i < ARRAY_SIZE(p->strings); i++)
        free(p->strings[i]);
    free(p);
}

static const char *
keep(struct pending_event *p, size_t i, const char *s)
{
    p->strings[i] = s ? xstrdup(s) : NULL;
    return p->strings[i];
}

/* project: the guest's, or NULL to read it from the guest's row. */
static void emit(master_t *m, const char *project, const char *type, const char *node,
                 const char *guest_id, const char *guest, json_t *data, const char *fmt, va_list ap)
    __attribute__((format(printf, 8, 0)));

static void
emit(master_t *m, const char *project, const char *type, const char *node, const char *guest_id,
     const char *guest, json_t *data, const char *fmt, va_list ap)
{
    struct pending_event *p = xcalloc(1, sizeof(*p));
    char msg[512] = "";

    if (fmt)
        vsnprintf(msg, sizeof(msg), fmt, ap);
    _cleanup_free_ char *text = data ? jtext_dumps(data, false) : NULL;
    json_decref(data);
    char row_project[NAME_MAX_LEN + 1] = "";
    if (!project) {
        if (guest_id && db_event_project_of(m->db, guest_id, row_project, sizeof(row_project)) < 0)
            row_project[0] = '\0'; /* an orphan's or a gone guest's: no project */
        project = row_project[0] ? row_project : NULL;
    }
    p->e = (struct db_event){
        .time_ms = master_now_ms(m),
        .type = keep(p, 0, type),
        .node = keep(p, 1, node),
        .guest_id = keep(p, 2, guest_id),
        .guest = keep(p, 3, guest),
        .message = keep(p, 4, fmt ? msg : NULL),
        .data = keep(p, 5, text),
        .project = keep(p, 6, project),
    };
    int r = db_event_insert(m->db, &p->e, &p->e.seq);
    if (r < 0) {
        /* Inside the change's transaction, a failed insert fails its commit
         * too; outside one, the event alone is lost. */
        log_debug("cannot store event %s: %s", type, strerror(-r));
        publish_after(m, p, r);
        return;
    }
    oncommit_add(m->oncommit, publish_after, p);
}

void
events_emit(master_t *m, const char *type, const char *node, const char *guest_id,
            const char *guest, json_t *data, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(m, NULL, type, node, guest_id, guest, data, fmt, ap);
    va_end(ap);
}

void
events_emit_project(master_t *m, const char *project, const char *type, const char *node,
                    const char *guest_id, const char *guest, json_t *data, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(m, project, type, node, guest_id, guest, data, fmt, ap);
    va_end(ap);
}

int
events_subscribe(master_t *m, events_fn fn, void *userdata)
{
    struct events *ev = events_of(m);

    for (size_t i = 0; i < EVENTS_MAX_SUBS; i++)
        if (!ev->subs[i].fn) {
            ev->subs[i] = (struct event_sub){fn, userdata};
            return 0;
        }
    return -ENOSPC;
}

void
events_unsubscribe(master_t *m, void *userdata)
{
    if (!m->events)
        return;
    for (size_t i = 0; i < EVENTS_MAX_SUBS; i++)
        if (m->events->subs[i].userdata == userdata)
            m->events->subs[i] = (struct event_sub){0};
}

int
events_init(master_t *m)
{
    uint64_t first = 0, last = 0;
    int r = db_event_bounds(m->db, &first, &last);

    events_of(m)->committed = last;
    return r;
}

uint64_t
events_committed(master_t *m)
{
    return events_of(m)->committed;
}

int
events_expire(master_t *m, bool force)
{
    struct events *ev = events_of(m);
    uint64_t now = master_now_ms(m), age = (uint64_t)m->cfg.events_max_age_s * 1000;

    if (!force && now < ev->next_expire)
        return 0;
    ev->next_expire = now + EVENTS_EXPIRE_EVERY_MS;
    (void)master_batch_commit(m);
    int r =
        db_event_expire(m->db, now > age ? now - age : 0, m->cfg.events_max_count, ev->committed);
    if (r < 0)
        log_warning("cannot apply the events' retention: %s; trying again later", strerror(-r));
    else if (r > 0)
        log_debug("%d event(s) past retention deleted", r);
    return r;
}

void
events_free(master_t *m)
{
    free(m->events);
    m->events = NULL;
}
