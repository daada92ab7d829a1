/* Every message the agent sends to the master goes through here: this file
 * is the one caller of link_send. Events, exec results and hello go through
 * the outbox (node/outbox.h), which re-sends them until the master
 * acknowledges them; the rest goes once. Loop thread. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"

int
agent_send_frame(void *agent, const void *buf, size_t len)
{
    agent_t *a = agent;
    return link_send(a->link, NULL, buf, len);
}

/* What the master must hear even when the link is down: it changes state. */
static bool
needs_outbox(enum msg_type t)
{
    return t == MSG_EVENT || t == MSG_EXEC_RESULT || t == MSG_HELLO;
}

int
agent_send(agent_t *a, struct msg *m)
{
    char *buf = NULL;
    size_t len = 0;

    if (!m->id)
        m->id = ++a->next_id;
    int r = msg_encode(m, &buf, &len);
    if (r < 0) {
        log_error("node=%s cannot encode %s: %s", a->cfg.name, msg_type_name(m->type),
                  strerror(-r));
        return r;
    }
    if (needs_outbox(m->type)) {
        outbox_push(a->outbox, m->id, m->type == MSG_HELLO, buf, len);
        return 0;
    }
    /* Answers wait in the outbox while the link is down or the master
     * pushes back, in order with the events, rather than being dropped and
     * costing the master a re-send and a second answer. */
    if (m->type == MSG_ACK || m->type == MSG_NACK) {
        outbox_push_once(a->outbox, m->type == MSG_ACK ? m->u.ack.ref : m->u.nack.ref, buf, len);
        return 0;
    }
    r = link_send(a->link, NULL, buf, len);
    free(buf);
    if (r < 0)
        /* Heartbeats, usage and inventories come again by themselves. */
        log_debug("node=%s send %s failed: %s; it comes again", a->cfg.name, msg_type_name(m->type),
                  strerror(-r));
    return r;
}

/* The answers and events below start from msg_init, not {.type = ...}: a
 * struct msg is 19.7 KiB (the union's largest member) and an ack, one per
 * command, uses 64 bytes of it. */
void
agent_send_ack(agent_t *a, uint64_t ref, const struct agent_guest *g)
{
    struct msg m;

    msg_init(&m, MSG_ACK);
    m.u.ack.ref = ref;
    if (g) {
        memcpy(m.u.ack.id, g->rec.spec.id, sizeof(m.u.ack.id));
        m.u.ack.generation = g->rec.applied_generation;
        m.u.ack.running = g->rec.rt.pid != 0;
    }
    agent_send(a, &m);
}

void
agent_send_ack_gone(agent_t *a, uint64_t ref, const char *id, uint64_t generation)
{
    struct msg m;

    msg_init(&m, MSG_ACK);
    m.u.ack.ref = ref;
    strscpy(m.u.ack.id, id, sizeof(m.u.ack.id));
    m.u.ack.generation = generation;
    agent_send(a, &m);
}

void
agent_send_nack(agent_t *a, uint64_t ref, const char *id, enum msg_error code, const char *text)
{
    struct msg m;

    msg_init(&m, MSG_NACK);
    m.u.nack.ref = ref;
    m.u.nack.code = code;
    if (id)
        strscpy(m.u.nack.id, id, sizeof(m.u.nack.id));
    snprintf(m.u.nack.message, sizeof(m.u.nack.message), "%s", text);
    agent_send(a, &m);
}

void
agent_send_nack_errno(agent_t *a, uint64_t ref, const char *id, int err, const char *what,
                      const char *detail)
{
    char text[ERRTEXT_MAX + 64];

    snprintf(text, sizeof(text), "%s: %s", what, detail && *detail ? detail : strerror(-err));
    agent_send_nack(a, ref, id, msg_error_from_errno(err), text);
}

void
agent_send_event(agent_t *a, const char *id, const char *kind, int exit_code, const char *text)
{
    struct msg m;

    msg_init(&m, MSG_EVENT);
    strscpy(m.u.event.id, id, sizeof(m.u.event.id));
    strscpy(m.u.event.kind, kind, sizeof(m.u.event.kind));
    m.u.event.time_ms = time_real_ms();
    m.u.event.exit_code = exit_code;
    snprintf(m.u.event.message, sizeof(m.u.event.message), "%s", text ? text : "");
    agent_send(a, &m);
}

void
agent_send_exit(agent_t *a, const char *id, int exit_code, int signal, bool restarting,
                const char *text)
{
    struct msg m;

    msg_init(&m, MSG_EVENT);
    strscpy(m.u.event.id, id, sizeof(m.u.event.id));
    strscpy(m.u.event.kind, "exited", sizeof(m.u.event.kind));
    m.u.event.time_ms = time_real_ms();
    m.u.event.exit_code = exit_code;
    m.u.event.signal = signal;
    strscpy(m.u.event.desired, restarting ? "running" : "stopped", sizeof(m.u.event.desired));
    snprintf(m.u.event.message, sizeof(m.u.event.message), "%s", text ? text : "");
    agent_send(a, &m);
}

/* The table as an inventory (items allocated; the caller frees them). */
static struct msg_inventory_item *
inventory_of(agent_t *a)
{
    struct msg_inventory_item *inv = xcalloc(a->n_guests ? a->n_guests : 1, sizeof(*inv));

    for (size_t i = 0; i < a->n_guests; i++) {
        const struct agent_guest *g = a->guests[i];
        memcpy(inv[i].id, g->rec.spec.id, sizeof(inv[i].id));
        memcpy(inv[i].name, g->rec.spec.name, sizeof(inv[i].name));
        inv[i].generation = g->rec.applied_generation;
        inv[i].running = g->rec.rt.pid != 0;
        strscpy(inv[i].desired, store_desired_name(g->rec.desired), sizeof(inv[i].desired));
    }
    return inv;
}

void
agent_send_inventory(agent_t *a, uint64_t ref, const char *id)
{
    struct msg m = {.type = MSG_INVENTORY};
    const struct agent_guest *g = id[0] ? agent_guest_find(a, id) : NULL;

    m.u.inventory.ref = ref;
    m.u.inventory.n_inventory = (uint32_t)a->n_guests;
    m.u.inventory.inventory = inventory_of(a);
    if (g)
        agent_guest_spec(g, &m.u.inventory.spec);
    agent_send(a, &m);
    msg_clear(&m);
}

void
agent_send_hello(agent_t *a)
{
    struct msg m = {.type = MSG_HELLO};
    struct msg_hello *h = &m.u.hello;

    strscpy(h->node, a->cfg.name, sizeof(h->node));
    strscpy(h->agent_version, VFLEET_VERSION, sizeof(h->agent_version));
    strscpy(h->kernel, a->facts.kernel, sizeof(h->kernel));
    strscpy(h->cgroup, a->facts.cgroup, sizeof(h->cgroup));
    strscpy(h->backend, a->facts.backend, sizeof(h->backend));
    h->cpus = a->facts.cpus;
    h->memory = a->facts.memory;
    h->disk = a->facts.disk;
    h->max_guests = a->facts.max_guests;
    h->leftovers = a->leftovers;
    h->has_leftovers = a->leftovers_known;
    h->n_templates = a->facts.n_templates;
    for (uint32_t i = 0; i < h->n_templates; i++) {
        strscpy(h->templates[i].name, a->facts.templates[i], sizeof(h->templates[i].name));
        h->templates[i].size = a->facts.template_size[i];
        strscpy(h->templates[i].checksum, a->facts.template_sum[i],
                sizeof(h->templates[i].checksum));
    }
    h->n_labels = a->cfg.n_labels;
    memcpy(h->labels, a->cfg.labels, sizeof(h->labels));
    h->n_inventory = (uint32_t)a->n_guests;
    h->inventory = inventory_of(a);
    /* The outbox sends it ahead of everything else, again until welcome. */
    agent_send(a, &m);
    a->hello_id = m.id;
    msg_clear(&m);
    a->last_hello_ms = time_mono_ms();
    log_info("node=%s hello sent to \"%s\" with %zu guests", a->cfg.name, a->cfg.master,
             a->n_guests);
}

void
agent_send_heartbeat(agent_t *a)
{
    struct msg m = {.type = MSG_HEARTBEAT};

    m.u.heartbeat.seq = ++a->heartbeat_seq;
    for (size_t i = 0; i < a->n_guests; i++)
        m.u.heartbeat.n_guests += a->guests[i]->rec.applied_generation != 0;
    m.u.heartbeat.n_running = (uint32_t)agent_guest_running(a);
    m.u.heartbeat.digest = agent_guest_digest(a);
    /* What the outbox holds goes first: the digest already counts it. While
     * the outbox waits for a retry (the link is down, or the master pushes
     * back) the heartbeat would overtake it: it waits for the next interval
     * (the master counts any message, and its own backlog, as life). */
    outbox_pump(a->outbox);
    if (outbox_blocked(a->outbox))
        return;
    agent_send(a, &m);
}
