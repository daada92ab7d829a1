/* The master's commands to a node. Each handler checks the command against
 * the guest table and either answers at once (an idempotent repeat, a state
 * that forbids it) or queues the job whose done answers. Every command is
 * idempotent on (guest id, generation). Loop thread. */
#include <stdio.h>
#include <string.h>

#include "common/mem.h"
#include "node/agent_internal.h"

typedef void (*cmd_fn)(agent_t *a, const struct msg *m);

/* An address of s that another guest of this node holds (an orphan the
 * master forgot, say) is refused, never taken over: one address is never on
 * two guests. Nacks m naming both and returns true. */
static bool
addr_taken(agent_t *a, const struct msg *m, const struct agent_guest *g, const struct guest_spec *s)
{
    uint32_t k = 0;
    const struct agent_guest *o = agent_guest_addr_owner(a, g, s, &k);
    char addr[NETADDR_STRLEN], text[320];

    if (!o)
        return false;
    netaddr_format(&s->addrs[k], false, addr, sizeof(addr));
    snprintf(text, sizeof(text),
             "address %s of guest %s (%s) belongs to guest %s (%s) on this node", addr, s->name,
             s->id, o->rec.spec.name, o->rec.spec.id);
    agent_send_nack(a, m->id, s->id, MSG_ERR_CONFLICT, text);
    return true;
}

int
agent_pick_ids(agent_t *a, const struct guest_spec *s, struct guest_ids *out)
{
    memset(out, 0, sizeof(*out));
    if (s->flags & SPEC_FLAG_PRIVILEGED)
        return 0;
    /* From the blocks no guest of ours holds (including guests whose create
     * is still queued). */
    _cleanup_free_ uint32_t *used = xcalloc(a->n_guests + 1, sizeof(*used));
    for (size_t i = 0; i < a->n_guests; i++)
        used[i] = a->guests[i]->rec.ids.uid_base;
    return store_uid_block_pick(used, a->n_guests, out);
}

/* guest.apply, and guest.apply.start (start): the apply, then, for a guest
 * not running, its start; the one answer acks with running false when the
 * start could not be done (the master follows with a guest.start, whose
 * answer says why). */
static void
apply_guest(agent_t *a, const struct msg *m, bool start)
{
    const struct guest_spec *s = &m->u.apply;
    struct agent_guest *g = agent_guest_find(a, s->id);
    struct agent_guest *same_name = agent_guest_find_name(a, s->name);

    if (same_name && same_name != g) {
        agent_send_nack(a, m->id, s->id, MSG_ERR_CONFLICT,
                        "another guest on this node has that name");
        return;
    }
    if (g && g->destroying) {
        agent_send_nack(a, m->id, s->id, MSG_ERR_CONFLICT, "guest is being destroyed");
        return;
    }
    if (addr_taken(a, m, g, s))
        return;
    if (g && s->generation <= g->rec.applied_generation) {
        /* Already applied (a re-send), or older than what we have: nothing
         * to do but the start a guest.apply.start asks for. */
        if (start && !g->rec.rt.pid && !g->stopping && !(g->rec.spec.flags & SPEC_FLAG_LOCK)) {
            g->restarts = 0;
            agent_job_start_soft(a, g, m->id);
        } else
            agent_send_ack(a, m->id, g);
        return;
    }
    if (g && !store_ids_match(&g->rec.ids, g->rec.legacy_ids, s)) {
        agent_send_nack(a, m->id, s->id, MSG_ERR_UNSUPPORTED,
                        "the privileged flag is fixed when a guest is created: recreate the guest");
        return;
    }
    bool existed = g != NULL;
    if (!g) {
        struct store_record rec = {.spec = *s, .applied_generation = 0};
        if ((uint32_t)a->n_guests >= a->facts.max_guests) {
            agent_send_nack(a, m->id, s->id, MSG_ERR_NO_SPACE, "node is at its guest limit");
            return;
        }
        if (agent_pick_ids(a, s, &rec.ids) < 0) {
            agent_send_nack(a, m->id, s->id, MSG_ERR_NO_SPACE, "no free block of host uids");
            return;
        }
        g = agent_guest_add(a, &rec);
    }
    agent_job_apply(a, g, m->id, s, existed, start);
}

static void
cmd_apply(agent_t *a, const struct msg *m)
{
    apply_guest(a, m, false);
}

static void
cmd_apply_start(agent_t *a, const struct msg *m)
{
    apply_guest(a, m, true);
}

/* The guest a command names, or NULL after nacking it. */
static struct agent_guest *
cmd_guest(agent_t *a, const struct msg *m, const char *id)
{
    struct agent_guest *g = agent_guest_find(a, id);

    if (!g) {
        agent_send_nack(a, m->id, id, MSG_ERR_NOT_FOUND, "no such guest on this node");
        return NULL;
    }
    if (g->destroying) {
        agent_send_nack(a, m->id, id, MSG_ERR_CONFLICT, "guest is being destroyed");
        return NULL;
    }
    return g;
}

static void
cmd_start(agent_t *a, const struct msg *m)
{
    struct agent_guest *g = cmd_guest(a, m, m->u.guest.id);

    if (!g)
        return;
    if (g->rec.spec.flags & SPEC_FLAG_LOCK) {
        agent_send_nack(a, m->id, g->rec.spec.id, MSG_ERR_LOCKED, "guest is locked");
        return;
    }
    if (g->rec.rt.pid && !g->stopping) {
        agent_send_ack(a, m->id, g);
        return;
    }
    if (g->stopping) {
        agent_send_nack(a, m->id, g->rec.spec.id, MSG_ERR_BUSY, "guest is stopping");
        return;
    }
    /* Asked for: the restart policy counts afresh from here. */
    g->restarts = 0;
    agent_job_start(a, g, m->id);
}

static void
cmd_stop(agent_t *a, const struct msg *m)
{
    struct agent_guest *g = cmd_guest(a, m, m->u.guest.id);
    uint32_t timeout;

    if (!g)
        return;
    if (!g->rec.rt.pid) {
        enum store_desired was = g->rec.desired;
        g->rec.desired = STORE_DESIRED_STOPPED;
        /* A reply is a promise: acked once the record says so. */
        if (agent_guest_save(a, g) < 0) {
            g->rec.desired = was;
            agent_send_nack(a, m->id, g->rec.spec.id, MSG_ERR_INTERNAL, "cannot write local store");
            return;
        }
        agent_send_ack(a, m->id, g);
        return;
    }
    if (g->stop_ref && g->stop_ref != m->id)
        /* A second stop while one is pending: answer the earlier one now. */
        agent_send_nack(a, g->stop_ref, g->rec.spec.id, MSG_ERR_BUSY, "superseded by a later stop");
    g->stop_ref = m->id;
    if (g->stopping)
        return;
    g->stopping = true;
    /* Recorded before the signal: an agent killed between the exit and the
     * stop's own record write left a record that said running, and the one
     * restarted from it took the exit for the guest's own, which a restart
     * policy started again. A write that fails is retried each heartbeat
     * (dirty); the stop goes on. */
    g->rec.desired = STORE_DESIRED_STOPPED;
    (void)agent_guest_save(a, g);
    timeout = m->u.guest.timeout ? m->u.guest.timeout : g->rec.spec.stop_timeout;
    if (!timeout)
        timeout = 30;
    agent_guest_arm_stop(a, g, timeout);
    agent_job_stop(a, g, m->id);
}

static void
cmd_destroy(agent_t *a, const struct msg *m)
{
    struct agent_guest *g = agent_guest_find(a, m->u.guest.id);

    if (!g) {
        /* Gone is gone: destroy is idempotent. */
        agent_send_ack_gone(a, m->id, m->u.guest.id, 0);
        return;
    }
    if (g->destroying)
        return; /* the pending destroy answers */
    g->destroying = true;
    agent_guest_quiet(g);
    /* A session's terminal pins the guest's mounts: hang them up first. */
    agent_shell_close_guest(a, g->rec.spec.id, "the guest is destroyed");
    agent_job_destroy(a, g, m->id);
}

static void
cmd_exec(agent_t *a, const struct msg *m)
{
    const struct msg_guest_exec *e = &m->u.exec;
    struct agent_guest *g = cmd_guest(a, m, e->id);

    if (!g)
        return;
    if (g->rec.spec.flags & SPEC_FLAG_PRIVATE) {
        agent_send_nack(a, m->id, e->id, MSG_ERR_PRIVATE, "guest is private: no exec");
        return;
    }
    if (g->rec.spec.flags & SPEC_FLAG_LOCK) {
        agent_send_nack(a, m->id, e->id, MSG_ERR_LOCKED, "guest is locked");
        return;
    }
    if (!g->rec.rt.pid) {
        agent_send_nack(a, m->id, e->id, MSG_ERR_CONFLICT, "guest is not running");
        return;
    }
    if (g->move_frozen) {
        agent_send_nack(a, m->id, e->id, MSG_ERR_BUSY, AGENT_MOVE_FROZEN);
        return;
    }
    agent_job_exec(a, g, m->id, e);
}

/* The tail of the console: a read, beside the lifecycle lane. A private
 * guest's console is its own, as its shell is. */
static void
cmd_console(agent_t *a, const struct msg *m)
{
    const struct msg_guest_console *c = &m->u.console;
    struct agent_guest *g = cmd_guest(a, m, c->id);

    if (!g)
        return;
    if (g->rec.spec.flags & SPEC_FLAG_PRIVATE) {
        agent_send_nack(a, m->id, c->id, MSG_ERR_PRIVATE, "guest is private: no console");
        return;
    }
    agent_job_console(a, g, m->id, c->max_bytes);
}

/* The commands a node accepts, by message type; NULL for the rest. */
static const cmd_fn cmds[MSG_TYPE_COUNT] = {
    [MSG_GUEST_APPLY] = cmd_apply,
    [MSG_GUEST_APPLY_START] = cmd_apply_start,
    [MSG_GUEST_START] = cmd_start,
    [MSG_GUEST_STOP] = cmd_stop,
    [MSG_GUEST_DESTROY] = cmd_destroy,
    [MSG_GUEST_EXEC] = cmd_exec,
    [MSG_GUEST_CONSOLE] = cmd_console,
    [MSG_MIGRATE_PREPARE] = agent_migrate_cmd,
    [MSG_MIGRATE_SEND] = agent_migrate_cmd,
    [MSG_MIGRATE_COMMIT] = agent_migrate_cmd,
    [MSG_MIGRATE_FINISH] = agent_migrate_cmd,
    [MSG_MIGRATE_ABORT] = agent_migrate_cmd,
    [MSG_SHELL_OPEN] = agent_shell_open,
    [MSG_STREAM_DATA] = agent_shell_stream,
    [MSG_STREAM_ACK] = agent_shell_stream,
    [MSG_STREAM_CTL] = agent_shell_stream,
};

bool
agent_cmd_handle(agent_t *a, const struct msg *m)
{
    if ((unsigned)m->type >= MSG_TYPE_COUNT || !cmds[m->type])
        return false;
    cmds[m->type](a, m);
    return true;
}
