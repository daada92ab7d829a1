/* The agent's guest table and the handles that watch each guest: a pidfd
 * poll on init (how the agent learns a guest stopped, whoever stopped it) and
 * the stop timeout that kills a guest that does not halt. Loop thread. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "node/agent_internal.h"
#include "node/linux/fdhigh.h"
#include "proto/spec_pack.h"

#define RESTART_BACKOFF_DEFAULT_S 5      /* restart_backoff 0 */
#define RESTART_BACKOFF_MAX_S     600    /* the doubling stops here */
#define RESTART_RESET_MS          300000 /* a run this long forgets earlier restarts */

struct agent_guest *
agent_guest_find(agent_t *a, const char *id)
{
    for (size_t i = 0; i < a->n_guests; i++)
        if (strcmp(a->guests[i]->rec.spec.id, id) == 0)
            return a->guests[i];
    return NULL;
}

struct agent_guest *
agent_guest_find_name(agent_t *a, const char *name)
{
    for (size_t i = 0; i < a->n_guests; i++)
        if (strcmp(a->guests[i]->rec.spec.name, name) == 0)
            return a->guests[i];
    return NULL;
}

void
agent_guest_set_spec(struct agent_guest *g, const struct guest_spec *s)
{
    char *packed;
    size_t len;

    /* Every spec here came through spec_validate (the codec, the store). */
    if (spec_pack(s, &packed, &len) < 0)
        abort();
    agent_guest_take_spec(g, s, packed, len);
}

void
agent_guest_take_spec(struct agent_guest *g, const struct guest_spec *s, char *packed, size_t len)
{
    struct agent_spec_head *h = &g->rec.spec;
    struct netaddr *addrs = NULL;

    free(g->rec.packed);
    g->rec.packed = packed;
    g->rec.packed_len = len;
    free(h->addrs);
    h->addrs = NULL;
    if (s->n_addrs) {
        addrs = xreallocarray(NULL, s->n_addrs, sizeof(*addrs));
        memcpy(addrs, s->addrs, s->n_addrs * sizeof(*addrs));
    }
    *h = (struct agent_spec_head){
        .generation = s->generation,
        .context = s->context,
        .flags = s->flags,
        .autostart = s->autostart,
        .restart = s->restart,
        .restart_max = s->restart_max,
        .restart_backoff = s->restart_backoff,
        .stop_timeout = s->stop_timeout,
        .n_addrs = s->n_addrs,
        .addrs = addrs,
    };
    memcpy(h->id, s->id, sizeof(h->id));
    memcpy(h->name, s->name, sizeof(h->name));
}

void
agent_spec_unpack(const char *packed, size_t len, struct guest_spec *out)
{
    /* Only spec_pack's output is kept: failing to read it back is a bug. */
    if (spec_unpack(packed, len, out) < 0)
        abort();
}

void
agent_guest_spec(const struct agent_guest *g, struct guest_spec *out)
{
    agent_spec_unpack(g->rec.packed, g->rec.packed_len, out);
}

char *
agent_guest_packed(const struct agent_guest *g, size_t *len)
{
    char *p = xmalloc(g->rec.packed_len);

    memcpy(p, g->rec.packed, g->rec.packed_len);
    *len = g->rec.packed_len;
    return p;
}

/* g's whole record, the spec unpacked, as the store takes it. */
static void
record_of(const struct agent_guest *g, struct store_record *out)
{
    const struct agent_record *r = &g->rec;

    agent_guest_spec(g, &out->spec);
    out->applied_generation = r->applied_generation;
    out->desired = r->desired;
    out->rt = r->rt;
    out->baseline = r->baseline;
    memcpy(out->boot_id, r->boot_id, sizeof(out->boot_id));
    out->ids = r->ids;
    out->legacy_ids = r->legacy_ids;
}

static void
guest_free(struct agent_guest *g)
{
    free(g->rec.packed);
    free(g->rec.spec.addrs);
    free(g);
}

struct agent_guest *
agent_guest_add(agent_t *a, const struct store_record *rec)
{
    struct agent_guest *g = xcalloc(1, sizeof(*g));
    struct agent_record *r = &g->rec;

    g->agent = a;
    agent_guest_set_spec(g, &rec->spec);
    r->applied_generation = rec->applied_generation;
    r->desired = rec->desired;
    r->rt = rec->rt;
    r->baseline = rec->baseline;
    memcpy(r->boot_id, rec->boot_id, sizeof(r->boot_id));
    r->ids = rec->ids;
    r->legacy_ids = rec->legacy_ids;
    if (a->n_guests == a->cap_guests) {
        a->cap_guests = a->cap_guests ? a->cap_guests * 2 : 16;
        a->guests = xreallocarray(a->guests, a->cap_guests, sizeof(*a->guests));
    }
    a->guests[a->n_guests++] = g;
    return g;
}

static void
guest_handle_closed(uv_handle_t *h)
{
    struct agent_guest *g = h->data;

    /* A guest still in the table (agent_shutdown closed its timer) is freed by agent_destroy. */
    if (--g->handles_open == 0 && g->orphaned)
        guest_free(g);
}

static void
watch_closed(uv_handle_t *h)
{
    struct agent_watch *w = h->data;

    close(w->pidfd);
    free(w);
}

static void
watch_stop(struct agent_guest *g)
{
    struct agent_watch *w = g->watch;

    agent_oom_disarm(g);
    if (!w)
        return;
    w->guest = NULL;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
    g->watch = NULL;
}

/* Closes the stop and restart timers; the guest stays allocated until
 * their close callbacks. */
static void
timer_close(struct agent_guest *g)
{
    if (g->timer_init) {
        g->handles_open++;
        g->timer_init = false;
        uv_close((uv_handle_t *)&g->stop_timer, guest_handle_closed);
    }
    if (g->restart_init) {
        g->handles_open++;
        g->restart_init = false;
        uv_close((uv_handle_t *)&g->restart_timer, guest_handle_closed);
    }
}

void
agent_guest_remove(agent_t *a, struct agent_guest *g)
{
    for (size_t i = 0; i < a->n_guests; i++) {
        if (a->guests[i] == g) {
            a->guests[i] = a->guests[--a->n_guests];
            break;
        }
    }
    g->orphaned = true;
    watch_stop(g);
    timer_close(g);
    if (g->handles_open == 0)
        guest_free(g);
}

int
agent_guest_save(agent_t *a, struct agent_guest *g)
{
    _cleanup_free_ struct store_record *rec = xmalloc(sizeof(*rec));
    uint64_t held = 0;
    int r;

    record_of(g, rec);
    r = store_put(a->store, rec);
    g->dirty = r < 0;
    /* Retried each heartbeat: a full disk must not fill the log too. */
    if (r < 0 && ratelimit_ok(&a->save_log, time_mono_ms(), &held)) {
        if (held)
            log_error("node=%s %llu more failed record writes were not logged", a->cfg.name,
                      (unsigned long long)held);
        log_error("node=%s guest=%s cannot write its record: %s, retrying", a->cfg.name,
                  g->rec.spec.name, strerror(-r));
    }
    return r;
}

void
agent_guest_save_dirty(agent_t *a)
{
    for (size_t i = 0; i < a->n_guests; i++) {
        struct agent_guest *g = a->guests[i];
        if (g->dirty && !g->destroying && agent_guest_save(a, g) == 0)
            log_notice("node=%s guest=%s its record is written again", a->cfg.name,
                       g->rec.spec.name);
    }
}

/* init's pidfd became readable: it exited. */
static void
on_init_exit(uv_poll_t *p, int status, int events)
{
    struct agent_watch *w = p->data;
    struct agent_guest *g = w->guest;
    int wstatus = 0, code = -1, sig = 0;
    char why[64] = "init exited (status unknown: not our child)";

    (void)status;
    (void)events;
    if (!g)
        return;
    agent_t *a = g->agent;

    /* Reap it when it is our child; an adopted init is reaped by the host's init. */
    if (waitpid(g->rec.rt.pid, &wstatus, WNOHANG) == g->rec.rt.pid) {
        if (WIFEXITED(wstatus)) {
            code = WEXITSTATUS(wstatus);
            snprintf(why, sizeof(why), "init exited with status %d", code);
        } else if (WIFSIGNALED(wstatus)) {
            sig = WTERMSIG(wstatus);
            snprintf(why, sizeof(why), "init killed by signal %d (%s)", sig, sigabbrev_np(sig));
        }
    }
    /* Make sure nothing of the guest is left running before calling it stopped. */
    agent_job_kill(a, g);
    agent_guest_stopped(a, g, code, sig, why);
}

int
agent_guest_watch(agent_t *a, struct agent_guest *g)
{
    /* A fake pid may name some unrelated real process: never watch it. The
     * stop and kill jobs ask the backend instead (agent_jobs.c). */
    if (a->cfg.fake_pids)
        return 0;

    int fd = (int)syscall(SYS_pidfd_open, g->rec.rt.pid, 0);

    if (fd < 0)
        return -errno;
    fd = fdhigh_move(fd); /* held for the guest's life (node/linux/fdhigh.h) */
    watch_stop(g);
    struct agent_watch *w = xcalloc(1, sizeof(*w));
    w->pidfd = fd;
    w->guest = g;
    int r = uv_poll_init(a->loop, &w->poll, fd);
    if (r < 0) {
        close(fd);
        free(w);
        return r;
    }
    w->poll.data = w;
    g->watch = w;
    r = uv_poll_start(&w->poll, UV_READABLE, on_init_exit);
    if (r >= 0)
        agent_oom_arm(a, g);
    return r;
}

void
agent_guest_quiet(struct agent_guest *g)
{
    watch_stop(g);
    if (g->timer_init)
        uv_timer_stop(&g->stop_timer);
    if (g->restart_init)
        uv_timer_stop(&g->restart_timer);
}

static void
on_stop_timeout(uv_timer_t *t)
{
    struct agent_guest *g = t->data;
    agent_t *a = g->agent;

    if (!g->rec.rt.pid)
        return;
    log_notice("node=%s guest=%s did not halt in time, killing it", a->cfg.name, g->rec.spec.name);
    agent_job_kill(a, g);
}

void
agent_guest_arm_stop(agent_t *a, struct agent_guest *g, uint32_t timeout_s)
{
    if (!g->timer_init) {
        uv_timer_init(a->loop, &g->stop_timer);
        g->stop_timer.data = g;
        g->timer_init = true;
    }
    uv_timer_start(&g->stop_timer, on_stop_timeout, (uint64_t)timeout_s * 1000, 0);
}

/* How an exit nobody asked for came about. In a PID namespace, reboot(2)
 * from inside kills init with SIGHUP (restart) or SIGINT (power off, halt). */
enum exit_kind {
    OWN_CLEAN,   /* status 0, or a poweroff or halt from inside */
    OWN_REBOOT,  /* a reboot from inside */
    OWN_FAILURE, /* a non-zero status, another signal, or unknown */
};

static enum exit_kind
exit_kind(int exit_code, int signal)
{
    if (signal == SIGHUP)
        return OWN_REBOOT;
    if (signal == SIGINT || (signal == 0 && exit_code == 0))
        return OWN_CLEAN;
    return OWN_FAILURE;
}

static void
on_restart_due(uv_timer_t *t)
{
    struct agent_guest *g = t->data;
    agent_t *a = g->agent;

    /* The master may have stopped it meanwhile, or started it already. */
    if (a->closing || g->destroying || g->rec.rt.pid || g->rec.desired != STORE_DESIRED_RUNNING)
        return;
    if (g->rec.spec.flags & SPEC_FLAG_LOCK) {
        log_notice("node=%s guest=%s is locked: not restarted", a->cfg.name, g->rec.spec.name);
        return;
    }
    log_info("node=%s guest=%s restarting (attempt %u)", a->cfg.name, g->rec.spec.name,
             g->restarts);
    agent_job_start(a, g, 0);
}

/* Whether the policy starts g again, and after how many seconds (*delay_s). */
static bool
restart_wanted(struct agent_guest *g, enum exit_kind kind, uint32_t *delay_s)
{
    const struct agent_spec_head *s = &g->rec.spec;
    uint32_t base = s->restart_backoff ? s->restart_backoff : RESTART_BACKOFF_DEFAULT_S;

    *delay_s = 0;
    if (kind == OWN_REBOOT)
        return true; /* the guest's own will too */
    if (s->restart == SPEC_RESTART_NEVER ||
        (kind == OWN_CLEAN && s->restart != SPEC_RESTART_ALWAYS))
        return false;
    if (g->started_ms && time_mono_ms() - g->started_ms >= RESTART_RESET_MS)
        g->restarts = 0;
    if (s->restart_max && g->restarts >= s->restart_max)
        return false;
    *delay_s = base;
    for (uint32_t i = 0; i < g->restarts && *delay_s < RESTART_BACKOFF_MAX_S; i++)
        *delay_s *= 2;
    if (*delay_s > RESTART_BACKOFF_MAX_S)
        *delay_s = RESTART_BACKOFF_MAX_S;
    g->restarts++;
    return true;
}

/* An exit nobody asked for: the policy decides, else the guest stays down. */
static void
own_exit(agent_t *a, struct agent_guest *g, int exit_code, int signal, const char *why)
{
    enum exit_kind kind = exit_kind(exit_code, signal);
    uint32_t delay_s = 0;
    bool again = !g->destroying && restart_wanted(g, kind, &delay_s);
    char text[256];

    if (!again) {
        g->rec.desired = STORE_DESIRED_STOPPED;
        snprintf(text, sizeof(text), "%s%s", why,
                 g->rec.spec.restart_max && g->restarts >= g->rec.spec.restart_max
                     ? "; restart limit reached"
                     : "");
    } else if (kind == OWN_REBOOT) {
        snprintf(text, sizeof(text), "%s: reboot from inside, starting again", why);
    } else {
        snprintf(text, sizeof(text), "%s; restart policy %s: starting again in %u s (attempt %u)",
                 why, spec_restart_name(g->rec.spec.restart), delay_s, g->restarts);
    }
    /* The event goes out even when the record cannot be written (it is
     * then retried each heartbeat, agent_guest_save_dirty): it says what
     * happened, not what the agent promises, and an agent restarted from the
     * old record finds the same init gone and reports the exit again. */
    agent_guest_save(a, g);
    log_info("node=%s guest=%s %s", a->cfg.name, g->rec.spec.name, text);
    agent_send_exit(a, g->rec.spec.id, exit_code, signal, again, text);
    if (!again)
        return;
    if (!g->restart_init) {
        uv_timer_init(a->loop, &g->restart_timer);
        g->restart_timer.data = g;
        g->restart_init = true;
    }
    uv_timer_start(&g->restart_timer, on_restart_due, (uint64_t)delay_s * 1000, 0);
}

void
agent_guest_stopped(agent_t *a, struct agent_guest *g, int exit_code, int signal, const char *why)
{
    bool asked = g->stopping;
    int saved = 0;

    agent_guest_quiet(g);
    g->rec.rt = (struct guest_runtime){0};
    g->stopping = false;
    if (asked) {
        g->rec.desired = STORE_DESIRED_STOPPED;
        saved = agent_guest_save(a, g);
        log_info("node=%s guest=%s stopped (%s)", a->cfg.name, g->rec.spec.name, why);
        agent_send_event(a, g->rec.spec.id, "stopped", exit_code, why);
    } else {
        own_exit(a, g, exit_code, signal, why);
    }
    /* Acked only once the record says stopped: one that still says running
     * (the host's disk full) would have an agent restarted from it take the
     * stop for an exit of the guest's own, and its restart policy start it
     * again. The nack shows as the guest's error on the master; a stop
     * sent again writes the record (cmd_stop). */
    if (g->stop_ref) {
        if (saved < 0)
            agent_send_nack(a, g->stop_ref, g->rec.spec.id, MSG_ERR_INTERNAL,
                            "stopped, but cannot write local store");
        else
            agent_send_ack(a, g->stop_ref, g);
        g->stop_ref = 0;
    }
}

void
agent_guest_exited_away(agent_t *a, struct agent_guest *g)
{
    g->rec.rt = (struct guest_runtime){0};
    if (g->rec.desired == STORE_DESIRED_STOPPED) {
        /* A stop was asked for (cmd_stop records it first): this is its
         * exit, whatever the restart policy. */
        agent_guest_save(a, g);
        log_info("node=%s guest=%s stopped while the agent was not running", a->cfg.name,
                 g->rec.spec.name);
        agent_send_event(a, g->rec.spec.id, "stopped", -1, "stopped while the agent was away");
        return;
    }
    own_exit(a, g, -1, 0, "init exited while the agent was not running (status unknown)");
}

uint64_t
agent_guest_digest(const agent_t *a)
{
    uint64_t d = 0;

    for (size_t i = 0; i < a->n_guests; i++) {
        const struct agent_guest *g = a->guests[i];
        /* One being created is not there until its apply is done (and acked). */
        if (g->rec.applied_generation)
            d += msg_digest_item(g->rec.spec.id, g->rec.applied_generation, g->rec.rt.pid != 0);
    }
    return d;
}

struct agent_guest *
agent_guest_addr_owner(agent_t *a, const struct agent_guest *g, const struct guest_spec *spec,
                       uint32_t *addr)
{
    for (size_t i = 0; i < a->n_guests; i++) {
        struct agent_guest *o = a->guests[i];
        if (o == g || strcmp(o->rec.spec.id, spec->id) == 0)
            continue;
        for (uint32_t k = 0; k < spec->n_addrs; k++)
            for (uint32_t j = 0; j < o->rec.spec.n_addrs; j++)
                if (netaddr_equal(&spec->addrs[k], &o->rec.spec.addrs[j])) {
                    *addr = k;
                    return o;
                }
    }
    return NULL;
}

size_t
agent_guest_running(const agent_t *a)
{
    size_t n = 0;

    for (size_t i = 0; i < a->n_guests; i++)
        n += a->guests[i]->rec.rt.pid != 0;
    return n;
}

void
agent_guest_close_all(agent_t *a)
{
    for (size_t i = 0; i < a->n_guests; i++) {
        watch_stop(a->guests[i]);
        timer_close(a->guests[i]);
    }
}

void
agent_guest_free_all(agent_t *a)
{
    for (size_t i = 0; i < a->n_guests; i++) {
        if (a->guests[i]->handles_open == 0)
            guest_free(a->guests[i]);
        else
            a->guests[i]->orphaned = true;
    }
    free(a->guests);
    a->guests = NULL;
    a->n_guests = a->cap_guests = 0;
}
