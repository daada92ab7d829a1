/* The cluster's events: every change worth knowing (a guest created,
 * deleted or changing state, a node changing state, ...), stored with a
 * sequence number in the same transaction as the change it reports, and
 * handed to subscribers (the event stream, metrics) after that commit — an
 * event is never published for a change that did not happen.
 *
 * Event types (docs/api.md, "Events", is the catalogue):
 *   guest.created, guest.placed, guest.deleted, guest.state (data: from, to),
 *   guest.address (data: action, address), guest.oom (data: kills, count),
 *   guest.limit (data: resource, hits, count), guest.orphan, guest.lost,
 *   node.state (data: from, to)
 *
 * Retention: events older than cfg.events_max_age_s, and all but the newest
 * cfg.events_max_count, are deleted by the tick; a reader asking for older
 * ones is told what it missed (events_stream.c, the "gap" event).
 *
 * Loop thread only. */
#pragma once

#include <jansson.h>

#include "master/core.h"

/* Records an event; data (stolen, may be NULL) is a JSON object of details,
 * message a sentence for people (printf format, may be NULL). */
void events_emit(master_t *m, const char *type, const char *node, const char *guest_id,
                 const char *guest, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* The same for a guest whose project the caller holds (its row just written
 * or read): the event takes that project instead of reading it from the
 * guest's row, one SELECT less per event (issue 16). project NULL: read
 * from the row as events_emit does. */
void events_emit_project(master_t *m, const char *project, const char *type, const char *node,
                         const char *guest_id, const char *guest, json_t *data, const char *fmt,
                         ...) __attribute__((format(printf, 8, 9)));

/* Called after the commit for each event, in order. */
typedef void (*events_fn)(void *userdata, const struct db_event *e);
/* At most EVENTS_MAX_SUBS subscribers; -ENOSPC beyond. */
#define EVENTS_MAX_SUBS 64
int events_subscribe(master_t *m, events_fn fn, void *userdata);
void events_unsubscribe(master_t *m, void *userdata);

/* Reads the newest sequence number from the store; call at start, outside
 * any transaction. */
int events_init(master_t *m);
/* The highest sequence number published (its transaction committed): a
 * reader of the store must not go past it, events above it may still be
 * rolled back. */
uint64_t events_committed(master_t *m);
/* Applies retention, at most once a minute of the master's clock (force:
 * now), in a transaction of its own. Returns events deleted or -errno. */
int events_expire(master_t *m, bool force);
/* Frees the subscriber table. */
void events_free(master_t *m);
