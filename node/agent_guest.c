/* The agent's guest table and the handles that watch each guest: a pidfd
 * poll on init (how the agent learns a guest stopped, whoever stopped it) and
 * the stop timeout that kills a guest that does not halt. Loop thread. */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "node/agent_internal.h"

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

struct agent_guest *
agent_guest_add(agent_t *a, const struct store_record *rec)
{
    struct agent_guest *g = xcalloc(1, sizeof(*g));

    g->agent = a;
    g->rec = *rec;
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
        free(g);
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

/* Closes the stop timer; the guest stays allocated until its close callback. */
static void
timer_close(struct agent_guest *g)
{
    if (!g->timer_init)
        return;
    g->handles_open++;
    g->timer_init = false;
    uv_close((uv_handle_t *)&g->stop_timer, guest_handle_closed);
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
        free(g);
}

int
agent_guest_save(agent_t *a, struct agent_guest *g)
{
    int r = store_put(a->store, &g->rec);
    if (r < 0)
        log_error("node=%s guest=%s cannot write its record: %s", a->cfg.name, g->rec.spec.name,
                  strerror(-r));
    return r;
}

/* init's pidfd became readable: it exited. */
static void
on_init_exit(uv_poll_t *p, int status, int events)
{
    struct agent_watch *w = p->data;
    struct agent_guest *g = w->guest;
    int wstatus = 0, code = -1;
    char why[64] = "init exited";

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
            snprintf(why, sizeof(why), "init killed by signal %d", WTERMSIG(wstatus));
        }
    }
    /* Make sure nothing of the guest is left running before calling it stopped. */
    agent_job_kill(a, g);
    agent_guest_stopped(a, g, code, why);
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

void
agent_guest_stopped(agent_t *a, struct agent_guest *g, int exit_code, const char *why)
{
    bool asked = g->stopping;

    agent_guest_quiet(g);
    g->rec.rt = (struct guest_runtime){0};
    g->stopping = false;
    if (asked)
        g->rec.desired = STORE_DESIRED_STOPPED;
    agent_guest_save(a, g);
    log_info("node=%s guest=%s stopped (%s)", a->cfg.name, g->rec.spec.name, why);
    agent_send_event(a, g->rec.spec.id, asked ? "stopped" : "exited", exit_code, why);
    if (g->stop_ref) {
        agent_send_ack(a, g->stop_ref, g);
        g->stop_ref = 0;
    }
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
            free(a->guests[i]);
        else
            a->guests[i]->orphaned = true;
    }
    free(a->guests);
    a->guests = NULL;
    a->n_guests = a->cap_guests = 0;
}
