/* The cluster's events: every change worth knowing (a guest created,
 * deleted or changing state, a node changing state, ...), stored with a
 * sequence number in the same transaction as the change it reports, and
 * handed to subscribers (the event stream, metrics) after that commit — an
 * event is never published for a change that did not happen.
 *
 * Event types (docs/api.md, "Events"):
 *   guest.created, guest.deleted, guest.state (data: from, to)
 *   node.state (data: from, to), node.hello
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

/* Called after the commit for each event, in order. */
typedef void (*events_fn)(void *userdata, const struct db_event *e);
/* At most EVENTS_MAX_SUBS subscribers; -ENOSPC beyond. */
#define EVENTS_MAX_SUBS 64
int events_subscribe(master_t *m, events_fn fn, void *userdata);
void events_unsubscribe(master_t *m, void *userdata);
