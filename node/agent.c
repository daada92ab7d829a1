/* The node agent's lifecycle and its session with the master: start-up
 * (store, re-adoption, link), hello until welcome, heartbeats and the
 * reconnect on silence, frames in, the usage timer, shutdown. The commands
 * are in agent_cmd.c, the jobs in agent_jobs.c, the guest table in
 * agent_guest.c, messages out in agent_send.c. Loop thread. */
#include "node/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"
#include "node/agent_template.h"
#include "node/leftovers.h"
#include "node/memtidy.h"
#include "node/vservers_fs.h"

#define AGENT_GUEST_WIDTH 8    /* guests' lifecycle jobs at once (parallel_guests) */
#define AGENT_POOL_SIZE   "9"  /* libuv pool threads then: the width and one more */
#define HELLO_RETRY_MS    2000 /* the outbox re-sends hello this often until welcome */
#define HELLO_GIVEUP      3    /* hello intervals without welcome before reconnecting */

/* ---- timers ----------------------------------------------------------- */

static void
on_heartbeat(uv_timer_t *t)
{
    agent_t *a = t->data;
    uint64_t now = time_mono_ms();

    /* Records that could not be written (the host's disk full) are written
     * again, whatever the link's state. */
    agent_guest_save_dirty(a);
    /* A refused handshake (our key revoked) ends the session at once: no
     * need to wait for the silence. */
    if (a->welcomed && link_refused(a->link)) {
        log_error("node=%s the master at \"%s\" refused this node's key: revoked, or not the "
                  "master it joined; retrying",
                  a->cfg.name, a->cfg.master);
        a->refused_logged = true;
        a->welcomed = false;
        outbox_open(a->outbox, false);
        return;
    }
    /* The master echoes every heartbeat. Silence for three intervals means the
     * connection is gone, possibly for good (libzmq does not reconnect after a
     * protocol error): reconnect and say hello again. */
    if (a->welcomed && now - a->last_rx_ms > 3ULL * a->cfg.heartbeat_ms) {
        log_warning("node=%s master silent for %" PRIu64 " ms, reconnecting", a->cfg.name,
                    now - a->last_rx_ms);
        a->welcomed = false;
        outbox_open(a->outbox, false);
        link_reconnect(a->link);
        agent_send_hello(a);
        return;
    }
    if (!a->welcomed) {
        /* Said once per refusal: the master's ZAP handler does not know this
         * key (revoked, or another master than the one joined). */
        if (link_refused(a->link) && !a->refused_logged) {
            log_error("node=%s the master at \"%s\" refused this node's key: revoked, or not "
                      "the master it joined; retrying",
                      a->cfg.name, a->cfg.master);
            a->refused_logged = true;
        }
        /* The outbox re-sends hello; a connection that never answers is
         * made anew (libzmq does not after a protocol error), with a hello
         * that says what the node has now. */
        if (now - a->last_hello_ms >= (uint64_t)HELLO_GIVEUP * HELLO_RETRY_MS) {
            link_reconnect(a->link);
            agent_send_hello(a);
        }
        return;
    }
    agent_send_heartbeat(a);
}

/* Usage reports unread for this many intervals are taken as lost (a
 * dropped connection) and the next one goes anyway. */
#define USAGE_UNREAD_INTERVALS 10

/* Free heap that work left behind grows by at least this much before it is
 * given back: the startup (every guest's OOM watch armed, the hello), a burst
 * of creates, a migration. */
#define AGENT_TRIM_GROWTH (256 * 1024)
/* A host's agent (memtidy_host) also trims once this much more of the heap
 * was freed since the last trim. */
#define AGENT_TRIM_FREED (128 * 1024)

/* Gives the heap's free pages back to the kernel after a burst of work left
 * them resident. glibc returns only the top of the heap on its own; free
 * chunks below a block still in use stay resident however large. At most
 * once a second for the process (a sim process runs thousands of agents on
 * one loop), and a malloc_trim only when the free space grew by
 * AGENT_TRIM_GROWTH past what it was at the last trim (or its lowest
 * since), or, in a host's agent, when the bytes in use fell by
 * AGENT_TRIM_FREED since it, summed over the looks (a burst of 100 creates
 * ends with its memory freed back, resident, into free space that was
 * already there, which the free space's growth does not show).
 * In the steady state (usage batches alone, whose arrays are mmap'd) it
 * costs one mallinfo2 a second. Trimmed chunks stay free in the arena, so
 * the free bytes do not fall. */
static void
heap_tidy(void)
{
    static uint64_t checked_ms; /* the process's last look, monotonic ms */
    static size_t free_base;    /* the arena's free bytes at the last trim, or lower since */
    static size_t used_last;    /* the bytes in use at the last look */
    static size_t freed;        /* falls of the bytes in use since the last trim, summed */
    uint64_t now = time_mono_ms();

    if (now - checked_ms < 1000)
        return;
    checked_ms = now;
    struct mallinfo2 mi = mallinfo2();
    if (mi.uordblks < used_last)
        freed += used_last - mi.uordblks;
    used_last = mi.uordblks;
    if (mi.fordblks < free_base)
        free_base = mi.fordblks;
    if (mi.fordblks > free_base + AGENT_TRIM_GROWTH ||
        (memtidy_host() && freed > AGENT_TRIM_FREED)) {
        (void)malloc_trim(0);
        free_base = mi.fordblks;
        freed = 0;
    }
}

static void
on_usage(uv_timer_t *t)
{
    agent_t *a = t->data;

    heap_tidy();
    if (a->usage_pending || !a->welcomed)
        return;
    /* A master that acks usage reports (it does once it has read them) and
     * has not acked the last one is behind: the next report would wait in
     * its queue behind this one and supersede it. So at most one report per
     * node waits there, however far behind the master is; an older master
     * that never acks gets one per interval as before. */
    if (a->master_acks_usage && a->usage_unread &&
        time_mono_ms() - a->usage_sent_ms < USAGE_UNREAD_INTERVALS * (uint64_t)a->cfg.usage_ms)
        return;
    agent_job_usage(a);
}

/* ---- frames in -------------------------------------------------------- */

static void
on_welcome(agent_t *a, const struct msg_welcome *w)
{
    a->welcomed = true;
    a->refused_logged = false;
    /* The hello it answers is done; everything queued behind it goes now. A
     * master that does not name the hello it answers (an older one, a test
     * stand-in) answers the last one: without this its welcome would open
     * the outbox, which sends the hello again at once, which is welcomed... */
    outbox_ack(a->outbox, w->ref ? w->ref : a->hello_id);
    outbox_open(a->outbox, true);
    a->usage_unread = 0; /* sent over the old connection, maybe lost with it */
    agent_shell_close_all(a, "the link to the master was reset");
    if (w->heartbeat_ms && w->heartbeat_ms != a->cfg.heartbeat_ms) {
        a->cfg.heartbeat_ms = w->heartbeat_ms;
        uv_timer_start(&a->heartbeat, on_heartbeat, a->cfg.heartbeat_ms, a->cfg.heartbeat_ms);
    }
    log_info("node=%s welcomed by the master", a->cfg.name);
}

/* A frame that is not a valid message: nack it with the request id when the
 * decoder could read one, so the master can tell which request failed. */
static void
on_bad_frame(agent_t *a, const struct msg *m, int r, const char *err)
{
    enum msg_error code = r == -ENOMSG            ? MSG_ERR_UNKNOWN_TYPE
                          : r == -EPROTONOSUPPORT ? MSG_ERR_VERSION
                                                  : MSG_ERR_BAD_REQUEST;

    log_warning("node=%s bad message from master: %s, ignoring", a->cfg.name, err);
    agent_send_nack(a, m->id, NULL, code, err);
}

static void
on_nack(agent_t *a, const struct msg_nack *n)
{
    /* A master that restarted does not know us: say hello again (what it
     * refused goes again after the welcome). */
    if (n->code == MSG_ERR_NOT_FOUND && !n->id[0]) {
        if (a->welcomed) {
            a->welcomed = false;
            outbox_open(a->outbox, false);
        }
        agent_send_hello(a);
        return;
    }
    /* Anything else refused for good (a frame it cannot read): sending it
     * again would be refused again. */
    if (outbox_ack(a->outbox, n->ref))
        log_error("node=%s the master refused our message %" PRIu64 ": %s: %s", a->cfg.name, n->ref,
                  msg_error_name(n->code), n->message);
}

static void
on_frame(zwatch_t *w, const char *peer, const void *buf, size_t len, void *userdata)
{
    agent_t *a = userdata;
    struct msg m;
    char err[256] = "";

    (void)w;
    (void)peer;
    a->last_rx_ms = time_mono_ms();
    int r = msg_decode(buf, len, &m, err, sizeof(err));
    if (r < 0) {
        on_bad_frame(a, &m, r, err);
        msg_clear(&m);
        return;
    }
    switch (m.type) {
    case MSG_HEARTBEAT:
        break; /* the master's echo: last_rx_ms is all it is for */
    case MSG_WELCOME:
        on_welcome(a, &m.u.welcome);
        break;
    case MSG_ACK:
        /* The master has read our last usage report, or stored what we
         * told it. */
        if (m.u.ack.ref && m.u.ack.ref == a->usage_unread) {
            a->usage_unread = 0;
            a->master_acks_usage = true;
            break;
        }
        outbox_ack(a->outbox, m.u.ack.ref);
        break;
    case MSG_TRAFFIC:
        (void)vservers_fs_on_message(a->vfs, &m);
        break;
    case MSG_NACK:
        if (!vservers_fs_on_message(a->vfs, &m))
            on_nack(a, &m.u.nack);
        break;
    case MSG_INVENTORY_GET:
        agent_send_inventory(a, m.id, m.u.inventory_get.id);
        break;
    default:
        if (!agent_cmd_handle(a, &m))
            agent_send_nack(a, m.id, NULL, MSG_ERR_UNKNOWN_TYPE, "not a command a node accepts");
        break;
    }
    msg_clear(&m);
}

/* ---- start-up: re-adoption -------------------------------------------- */

/* Whether g's init was started on the boot the host runs now. */
static bool
same_boot(const agent_t *a, const struct agent_guest *g)
{
    return g->rec.boot_id[0] && strcmp(g->rec.boot_id, a->boot_id) == 0;
}

/* Why guest id has leftovers and no record, for the log: its record was set
 * aside as unreadable at an open of the store, or none was written (a create
 * the agent did not finish: stopped before the first record write, or failed
 * with its clean-up failing too). True when set aside. */
static bool
unrecorded_why(agent_t *a, const char *id, char *out, size_t n)
{
    char aside[128];
    int r = store_set_aside(a->store, id, aside, sizeof(aside));

    if (r > 0)
        snprintf(out, n, "set aside as unreadable: \"%s/guests/%s\"", a->cfg.state_dir, aside);
    else
        snprintf(out, n, "none was written: a create that did not finish");
    return r > 0;
}

/* The ids of the guests the backend has traces of (linux: a cgroup and a
 * directory) and the store has no record of, malloc'd, at the start of *ids
 * (NULL-terminated, sized for the backend's whole list): an agent killed in
 * a create with its start (guest.apply.start) after the init's spawn and
 * before the create's first record write left an init that no record
 * names, in a uid block no record holds, which store_uid_block_pick would
 * hand to another guest, and whose destroy would be acked as gone. Returns
 * how many. */
static size_t
unrecorded_ids(agent_t *a, char ***out)
{
    const struct backend_ops *ops = a->backend->ops;
    char **ids = NULL;
    size_t n = 0;
    int r;

    *out = NULL;
    if (!ops->list)
        return 0;
    r = ops->list(a->backend, &ids);
    if (r < 0) {
        log_warning("node=%s cannot list the backend's guests: %s, ignoring", a->cfg.name,
                    strerror(-r));
        return 0;
    }
    /* The unrecorded ones, in place. */
    for (char **id = ids; *id; id++) {
        if (store_get(a->store, *id)) {
            free(*id);
        } else if (strlen(*id) > SPEC_ID_LEN) {
            log_warning("node=%s \"%s\" is no guest id, its leftovers are kept, ignoring",
                        a->cfg.name, *id);
            free(*id);
        } else {
            ids[n++] = *id;
        }
    }
    ids[n] = NULL;
    *out = ids;
    return n;
}

/* Says what the start-up's kill did to unrecorded guest id (k: 1 killed,
 * 0 nothing ran, or -errno), in one line: a warning when something of it
 * ran, else info (a leftover is seen at every start until it is removed).
 * Its disk, mounts and cgroup stay: nothing of a guest is deleted because a
 * message was lost (the create sent again reuses them, a destroy removes
 * them, and so does `vfleet-node leftovers remove`). */
static void
unrecorded_log(agent_t *a, const char *id, int k)
{
    char why[512];
    bool aside = unrecorded_why(a, id, why, sizeof(why));

    if (k < 0 && k != -ENOENT)
        log_warning("node=%s guest=%s has no record (%s) and cannot kill what runs of it: "
                    "%s, ignoring",
                    a->cfg.name, id, why, strerror(-k));
    else if (k > 0)
        log_warning("node=%s guest=%s has no record (%s): killed what ran of it; its disk, "
                    "mounts and cgroup are kept ('vfleet-node leftovers' lists them)",
                    a->cfg.name, id, why);
    else if (aside)
        log_info("node=%s guest=%s has no record (%s), nothing of it runs: its disk, mounts "
                 "and cgroup are kept for the record's repair",
                 a->cfg.name, id, why);
    else
        log_info("node=%s guest=%s has no record (%s), nothing of it runs: its disk, mounts "
                 "and cgroup are kept; 'vfleet-node leftovers remove %s --yes' removes them "
                 "once the master has no such guest",
                 a->cfg.name, id, why, id);
}

/* Thaws a guest an agent killed in its kill left frozen (backend.h,
 * thaw_stray): re-adopted frozen, it hung until the master's stop came
 * again, and an exec into it waited on a frozen helper. A move's freeze is
 * kept: no command of a move is lost with an agent (the master sends its
 * step again), and after the move's commit the guest runs on the target,
 * so this copy must not run again. */
static void
thaw_stray(agent_t *a, struct agent_guest *g, const struct guest_spec *spec)
{
    const struct backend_ops *ops = a->backend->ops;
    int r = ops->thaw_stray ? ops->thaw_stray(a->backend, spec) : 0;

    /* Kept frozen for its move: exec and shells are refused until the
     * move's thaw (or its end). */
    g->move_frozen = r == BACKEND_MOVE_FROZEN;
    if (r < 0)
        log_warning("node=%s guest=%s cannot thaw its cgroup left frozen: %s, ignoring",
                    a->cfg.name, spec->name, strerror(-r));
    else if (r == BACKEND_MOVE_FROZEN)
        log_info("node=%s guest=%s stays frozen for its move", a->cfg.name, spec->name);
    else if (r > 0)
        log_warning("node=%s guest=%s was left frozen by a kill cut short: thawed", a->cfg.name,
                    spec->name);
}

/* One recorded guest between its state check and its adoption (adopt_all). */
struct adopt_one {
    struct agent_guest *g; /* the guest, in the agent's table */
    enum guest_state st;   /* what the backend's state said */
    bool to_kill;          /* its record says not running, yet something of it exists */
    int kill;              /* its kill's result (1 killed, 0 nothing ran, -errno), or 0 */
};

/* Re-adopts every guest of the store: a running one is checked by pid plus
 * start time and watched again; nothing is started twice. A guest that was
 * meant to run but is gone (the host rebooted) is started again only when its
 * spec says autostart, and only after a reboot of the host: on the same boot,
 * a gone init exited by itself and the restart policy decides.
 *
 * Before the hello, nothing may run of a guest whose record says it is not
 * running, nor of one with no record (unrecorded_ids). All of them are
 * killed at once, with one deadline (kill_many): one by one, each guest
 * whose processes would not die (uninterruptible sleep: a hung fuse mount,
 * a frozen cgroup) held the hello for the backend's whole timeout (linux:
 * CGROUP_KILL_TIMEOUT_MS), N such guests N times it. A guest whose kill
 * failed is logged and adopted as stopped all the same. */
static void
adopt_all(agent_t *a)
{
    const struct backend_ops *ops = a->backend->ops;
    _cleanup_free_ struct guest_spec *spec = xmalloc(sizeof(*spec)); /* g's, unpacked */
    size_t n = store_count(a->store), n_un, n_kill;
    _cleanup_free_ struct adopt_one *ad = xcalloc(n ? n : 1, sizeof(*ad));
    _cleanup_free_ char **ids = NULL; /* the unrecorded, then the recorded not running */
    _cleanup_free_ int *res = NULL;
    char **un = NULL;

    for (size_t i = 0; i < n; i++) {
        struct agent_guest *g = agent_guest_add(a, store_at(a->store, i));
        ad[i] = (struct adopt_one){.g = g, .st = GUEST_ABSENT};
        agent_guest_spec(g, spec);
        thaw_stray(a, g, spec);
        int r = ops->state(a->backend, spec, &g->rec.rt, &ad[i].st);
        if (r < 0)
            log_warning("node=%s guest=%s state check failed: %s, ignoring", a->cfg.name,
                        g->rec.spec.name, strerror(-r));
        ad[i].to_kill = ad[i].st != GUEST_ABSENT && !g->rec.rt.pid;
    }

    /* The record says not running, so nothing of the guest may run: an
     * agent killed between a start's spawn and its record write left an
     * init no record names, which the start sent again (it was never
     * acked) doubled, and a stop took for not running. */
    n_un = ops->kill_many ? unrecorded_ids(a, &un) : 0;
    ids = xcalloc(n_un + n + 1, sizeof(*ids));
    if (n_un)
        memcpy(ids, un, n_un * sizeof(*ids));
    free(un);
    n_kill = n_un;
    for (size_t i = 0; i < n; i++)
        if (ad[i].to_kill)
            ids[n_kill++] = ad[i].g->rec.spec.id;
    res = xcalloc(n_kill ? n_kill : 1, sizeof(*res));
    if (ops->kill_many) {
        int r = n_kill ? ops->kill_many(a->backend, ids, n_kill, res) : 0;
        for (size_t i = 0; r < 0 && i < n_kill; i++)
            res[i] = r;
    } else {
        /* A backend without kill_many (none here): one by one, and of
         * the recorded ones only, as list is used with kill_many. */
        for (size_t i = 0, j = n_un; i < n; i++) {
            if (!ad[i].to_kill)
                continue;
            agent_guest_spec(ad[i].g, spec);
            res[j++] = ops->kill(a->backend, spec, &ad[i].g->rec.rt);
        }
    }
    for (size_t i = 0; i < n_un; i++) {
        unrecorded_log(a, ids[i], res[i]);
        free(ids[i]);
    }
    for (size_t i = 0, j = n_un; i < n; i++)
        if (ad[i].to_kill)
            ad[i].kill = res[j++];

    for (size_t i = 0; i < n; i++) {
        struct agent_guest *g = ad[i].g;
        enum guest_state st = ad[i].st;

        if (st == GUEST_RUNNING && g->rec.rt.pid) {
            if (agent_guest_watch(a, g) < 0)
                log_warning("node=%s guest=%s cannot watch init, ignoring", a->cfg.name,
                            g->rec.spec.name);
            log_info("node=%s guest=%s re-adopted, init pid %d", a->cfg.name, g->rec.spec.name,
                     (int)g->rec.rt.pid);
            continue;
        }
        if (g->rec.rt.pid && st != GUEST_ABSENT && same_boot(a, g)) {
            /* It ran on this boot and its init is gone: it exited while we
             * were away, by its own will (the restart policy decides). */
            agent_guest_exited_away(a, g);
            continue;
        }
        if (ad[i].kill < 0 && ad[i].kill != -ENOENT)
            log_warning("node=%s guest=%s cannot kill what runs of it unrecorded: %s, ignoring",
                        a->cfg.name, g->rec.spec.name, strerror(-ad[i].kill));
        else if (ad[i].kill > 0)
            log_warning("node=%s guest=%s ran with a record that says it does not: killed what "
                        "ran of it",
                        a->cfg.name, g->rec.spec.name);
        if (g->rec.rt.pid) {
            g->rec.rt = (struct guest_runtime){0};
            agent_guest_save(a, g);
        }
        if (st == GUEST_ABSENT)
            log_warning("node=%s guest=%s is in the store but its disk is missing", a->cfg.name,
                        g->rec.spec.name);
        else if (g->rec.desired == STORE_DESIRED_RUNNING && g->rec.spec.autostart &&
                 !(g->rec.spec.flags & SPEC_FLAG_LOCK))
            agent_job_start(a, g, 0);
    }
}

/* Counts the guests' leftovers in the state directory (data/<id> with no
 * record, as `vfleet-node leftovers` lists them) for the hello, so the
 * master shows that the node holds stray state. Counted once, here: they
 * are removed with the agent stopped (`vfleet-node leftovers remove`), so
 * the next start-up's count says so; while the agent runs, a create in
 * progress has its directory before its record and would be counted. A
 * create that fails later with its clean-up failing too shows at the next
 * start. It walks data/ apart from unrecorded_ids, which goes by the
 * backend's list (linux: its cgroups that have a data/<id>; the sim: its
 * memory): a leftover need not have a cgroup (none survives a reboot) and
 * the sim has no data/, so neither list gives the other. This walk is
 * cheap: 0.66 M of agent_new's 12.9 M instructions with 200 unrecorded
 * guests, lx_list 1.31 M (docs/performance.md), half of it store_set_aside
 * naming each record for `vfleet-node leftovers`. */
static void
count_leftovers(agent_t *a)
{
    _cleanup_free_ struct leftover *l = NULL;
    size_t n = 0;
    int r;

    a->leftovers_known = true;
    if (a->cfg.memory_store)
        return; /* no state directory: none */
    r = leftovers_list(a->cfg.state_dir, a->store, &l, &n);
    if (r < 0) {
        log_warning("node=%s cannot count the guests' leftovers: %s, ignoring", a->cfg.name,
                    strerror(-r));
        a->leftovers_known = false;
        return;
    }
    a->leftovers = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* ---- lifecycle -------------------------------------------------------- */

/* The kernel's id of this boot ("" when it cannot be read). */
static void
read_boot_id(char *out, size_t n)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

    out[0] = '\0';
    if (!f)
        return;
    if (fgets(out, (int)n, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

agent_t *
agent_new(uv_loop_t *loop, const struct agent_config *cfg, backend_t *backend, int *err)
{
    agent_t *a = xcalloc(1, sizeof(*a));
    int r;

    a->loop = loop;
    a->cfg = *cfg;
    a->save_log = (struct ratelimit)RATELIMIT_INIT(60000, 10);
    a->backend = backend;
    a->ops = lane_new(loop);
    /* Distinct guests' creates and starts side by side where the backend
     * allows: AGENT_GUEST_WIDTH pool threads, one more left for exec and
     * fetches. A create mostly waits (fsync, mounts, the guest's setup), so
     * the width, not the CPU, bounded parallel clients (3 gave 3.3x one
     * client). libuv sizes its pool at the first job, which comes later;
     * a size set in the environment is kept. */
    if (backend->ops->parallel_guests)
        setenv("UV_THREADPOOL_SIZE", AGENT_POOL_SIZE, 0);
    lane_set_width(a->ops, backend->ops->parallel_guests ? AGENT_GUEST_WIDTH : 1);
    a->execs = lane_new(loop);
    a->fetches = lane_new(loop);
    if (!a->cfg.heartbeat_ms)
        a->cfg.heartbeat_ms = 5000;
    if (!a->cfg.usage_ms)
        a->cfg.usage_ms = 10000;

    /* Ids unique across agent restarts, so the master's de-duplication of
     * what the outbox re-sends never takes a new message for an old one. */
    a->next_id = time_real_ms() << 16;
    read_boot_id(a->boot_id, sizeof(a->boot_id));
    r = backend->ops->probe(backend, &a->facts);
    if (r < 0)
        goto fail;
    agent_template_sweep(a);
    r = cfg->memory_store ? store_open_memory(&a->store) : store_open(cfg->state_dir, &a->store);
    if (r < 0)
        goto fail;
    if (r > 0)
        log_warning("node=%s %d unreadable guest records were set aside as *.corrupt-*; "
                    "their guests are not managed until repaired",
                    cfg->name, r);
    if (cfg->curve) {
        struct link_keys keys = {a->cfg.public_key, a->cfg.secret_key, a->cfg.server_key};
        a->link = link_new_dealer_curve(cfg->master, cfg->name, &keys, &r);
    } else {
        a->link = link_new_dealer(cfg->master, cfg->name, &r);
    }
    if (!a->link)
        goto fail;
    r = zwatch_init(loop, &a->watch, a->link, on_frame, a);
    if (r < 0)
        goto fail;

    struct outbox_config oc = {
        .resend_ms = HELLO_RETRY_MS, .send = agent_send_frame, .userdata = a};
    a->outbox = outbox_new(loop, &oc);
    uv_timer_init(loop, &a->heartbeat);
    a->heartbeat.data = a;
    uv_timer_init(loop, &a->usage);
    a->usage.data = a;
    a->handles_ready = true;

    adopt_all(a);
    count_leftovers(a);
    if (a->cfg.vservers[0] && !(a->vfs = vservers_fs_start(a, a->cfg.vservers, &r)))
        log_warning("node=%s cannot mount the FreeVPS views at \"%s\": %s, ignoring", cfg->name,
                    a->cfg.vservers, strerror(-r));
    agent_send_hello(a);
    uv_timer_start(&a->heartbeat, on_heartbeat, a->cfg.heartbeat_ms, a->cfg.heartbeat_ms);
    uv_timer_start(&a->usage, on_usage, a->cfg.usage_ms, a->cfg.usage_ms);
    return a;

fail:
    *err = r;
    agent_destroy(&a);
    return NULL;
}

void
agent_shutdown(agent_t *a)
{
    if (!a || a->closing)
        return;
    a->closing = true;
    log_info("node=%s shutting down; guests keep running", a->cfg.name);
    vservers_fs_stop(&a->vfs);
    if (a->handles_ready) {
        uv_close((uv_handle_t *)&a->heartbeat, NULL);
        uv_close((uv_handle_t *)&a->usage, NULL);
        zwatch_close(&a->watch, NULL);
    }
    agent_migrate_close_all(a);
    outbox_close(a->outbox);
    agent_shell_close_all(a, "the agent stops");
    agent_guest_close_all(a);
}

void
agent_destroy(agent_t **p)
{
    agent_t *a = *p;

    if (!a)
        return;
    agent_guest_free_all(a);
    lane_destroy(&a->ops);
    lane_destroy(&a->execs);
    lane_destroy(&a->fetches);
    outbox_destroy(&a->outbox);
    store_close(&a->store);
    link_destroy(&a->link);
    if (a->backend)
        a->backend->ops->free(a->backend);
    free(a);
    *p = NULL;
}
