/* The guest domain: what a node reports about a guest by itself (events),
 * as opposed to the answers to the master's commands (session.c).
 *
 * A guest that halts by itself is the customer's will: it is recorded as
 * stopped with the reason (exit status or signal), and its desired state
 * follows what the node decided (stopped, unless its restart policy or a
 * reboot asked from inside starts it again). Nothing here starts a guest.
 * Node timestamps are clamped to the master's view: an event is never later
 * than now nor earlier than the last time the master recorded the guest. */
#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/events.h"
#include "master/guests.h"
#include "master/waiters.h"

static uint64_t
clamp_time(uint64_t node_ms, uint64_t not_before_ms)
{
    uint64_t now = time_real_ms();

    if (node_ms > now)
        return now;
    return node_ms < not_before_ms ? not_before_ms : node_ms;
}

/* An "exited" event of a guest the master manages on this node. */
static void
guest_exited(master_t *m, const char *node, const struct db_guest *g, const struct msg_event *e)
{
    bool restarting = strcmp(e->desired, "running") == 0;
    uint64_t at = clamp_time(e->time_ms, g->updated_ms);
    char text[PROTO_MAX_STRING + 32];

    snprintf(text, sizeof(text), "exited: %s", e->message[0] ? e->message : "init exited");
    if (!restarting && g->desired == DB_DESIRED_RUNNING &&
        db_guest_set_desired(m->db, g->id, DB_DESIRED_STOPPED) < 0)
        log_error("guest=%s cannot record that it halted by itself: %s", g->name, db_errmsg(m->db));
    guests_observed(m, g, DB_OBS_STOPPED, text);
    events_emit(m, "guest.exited", node, g->id, g->name,
                json_pack("{s:i, s:i, s:b, s:I}", "exit_code", e->exit_code, "signal", e->signal,
                          "restarting", restarting, "at", (json_int_t)at),
                "guest %s %s", g->name, text);
}

void
guests_node_event(master_t *m, const char *node, const struct msg_event *e)
{
    struct db_guest g = {0};

    if (!e->id[0])
        return;
    if (db_guest_get_by_id(m->db, e->id, &g) < 0 || !g.node || strcmp(g.node, node) != 0) {
        /* Not a guest the master placed there: an orphan's news. */
        db_guest_clear(&g);
        guests_orphan_event(m, node, e);
        return;
    }
    if (guests_deleting(m, &g)) {
        db_guest_clear(&g);
        return;
    }
    if (!strcmp(e->kind, "started")) {
        /* Started by the node itself (restart policy, reboot): it wants it running. */
        if (g.desired != DB_DESIRED_RUNNING && !strcmp(e->desired, "running"))
            (void)db_guest_set_desired(m->db, g.id, DB_DESIRED_RUNNING);
        guests_observed(m, &g, DB_OBS_RUNNING, e->message[0] ? e->message : NULL);
    } else if (!strcmp(e->kind, "exited")) {
        guest_exited(m, node, &g, e);
    } else if (!strcmp(e->kind, "stopped")) {
        guests_observed(m, &g, DB_OBS_STOPPED, e->message[0] ? e->message : NULL);
    }
    db_guest_clear(&g);
}
