/* guest.shell on the node: interactive sessions in running guests. The
 * backend starts the command (on libuv's pool: it talks to the spawner) and
 * hands over its ends; from then on everything runs on the loop thread.
 *
 * Flow control, both ways, is the stream's window (PROTO_STREAM_WINDOW):
 * output is read only while the master has granted room (stream.ack gives
 * back what its client took), so a slow client stops the command at its
 * terminal's buffer, not in our memory; input the master sends beyond the
 * window it was granted ends the session. When the command ends, output
 * still in flight is sent for at most DRAIN_MS, then stream.exit.
 *
 * Sessions do not outlive the master's link: a new welcome (the link was
 * reset, the master may have restarted and forgotten them) hangs them all
 * up, and so does agent_shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/errtext.h"
#include "common/log.h"
#include "common/mem.h"
#include "node/agent_internal.h"

#define MAX_SESSIONS 64          /* per agent; more are refused "busy" */
#define DRAIN_MS     1000        /* output sent after the command ended */
#define KILL_MS      2000        /* after a hang-up, SIGKILL this much later */
#define ACK_EVERY    (16u << 10) /* input bytes written before an ack is sent */

enum { END_IN, END_OUT, END_ERR, END_CTL, N_ENDS };

/* One session. */
struct shell_sess {
    agent_t *a;                  /* the agent */
    uint64_t session;            /* the master's number for it */
    char guest[SPEC_ID_LEN + 1]; /* the guest it runs in */
    uint64_t ref;                /* the guest.shell request, acked once started */
    bool tty;                    /* on a terminal */
    struct shell_proc p;         /* the command's ends (fds owned) */
    uv_poll_t polls[N_ENDS];     /* one per open end */
    bool polling[N_ENDS];        /* the poll handle is initialised */
    uv_timer_t timer;            /* drain after the end, or SIGKILL after a hang-up */
    int refs;                    /* open handles, and the start while it runs */
    uint32_t credit;             /* output bytes the master still has room for */
    char *in;                    /* input not yet written (at most the window) */
    size_t in_len;               /* bytes in in */
    uint32_t in_done;            /* input written since the last ack */
    bool in_eof;                 /* no more input after in */
    bool out_open, err_open;     /* output ends not at end of file */
    bool ended;                  /* the command ended: st holds how */
    bool hung_up;                /* a hang-up was asked */
    bool closing;                /* being torn down */
    bool console;                /* follows the guest's console instead of a command */
    uint64_t console_seen;       /* console bytes sent (counted as console_log.total) */
    bool console_started;        /* the first read (the recent history) was sent */
    struct shell_status st;      /* its end */
    struct shell_sess *next;     /* in the agent's list */
};

/* A start on the pool. */
struct shell_work {
    uv_work_t work;            /* the pool request */
    agent_t *a;                /* the agent */
    struct shell_sess *s;      /* the session it starts, NULL when it was cancelled */
    struct guest_spec spec;    /* the guest's spec as of the request */
    struct guest_runtime rt;   /* its init */
    char **argv;               /* the command (owned), NULL = login shell */
    struct shell_request req;  /* what the backend gets */
    struct shell_proc proc;    /* what the backend gave (the loop copies it into s->p) */
    char term[64];             /* req.term points here */
    int result;                /* the backend's */
    char errtext[ERRTEXT_MAX]; /* its detail */
};

/* The agent's sessions: a list hung off the agent by its own pointer. */
static struct shell_sess **
list_of(agent_t *a)
{
    return (struct shell_sess **)&a->shells;
}

static struct shell_sess *
find(agent_t *a, uint64_t session)
{
    for (struct shell_sess *s = *list_of(a); s; s = s->next)
        if (s->session == session)
            return s;
    return NULL;
}

static size_t
count(agent_t *a)
{
    size_t n = 0;
    for (struct shell_sess *s = *list_of(a); s; s = s->next)
        n++;
    return n;
}

static void
unlink_sess(struct shell_sess *s)
{
    for (struct shell_sess **pp = list_of(s->a); *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            return;
        }
}

static void
unref(struct shell_sess *s)
{
    if (--s->refs > 0)
        return;
    free(s->in);
    free(s);
}

static void
on_closed(uv_handle_t *h)
{
    unref(h->data);
}

/* Closes every end and handle; the memory goes with the last handle. */
static void
teardown(struct shell_sess *s)
{
    int *fds[N_ENDS] = {&s->p.in, &s->p.out, &s->p.err, &s->p.ctl};

    if (s->closing)
        return;
    s->closing = true;
    unlink_sess(s);
    if (!s->ended && s->p.pid > 0)
        (void)kill(-s->p.pid, SIGHUP);
    for (int i = 0; i < N_ENDS; i++) {
        if (s->polling[i])
            uv_close((uv_handle_t *)&s->polls[i], on_closed);
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

static void
send_exit(struct shell_sess *s, const char *why)
{
    struct msg m = {.type = MSG_STREAM_EXIT};

    m.u.stream_exit.session = s->session;
    m.u.stream_exit.exit_code = -1;
    if (s->ended && s->st.err == 0) {
        if (WIFEXITED(s->st.wstatus))
            m.u.stream_exit.exit_code = WEXITSTATUS(s->st.wstatus);
        else if (WIFSIGNALED(s->st.wstatus))
            m.u.stream_exit.signal = WTERMSIG(s->st.wstatus);
    } else if (s->ended) {
        s->st.what[sizeof(s->st.what) - 1] = '\0';
        if (s->st.err == EPIPE)
            snprintf(m.u.stream_exit.message, sizeof(m.u.stream_exit.message), "%s", s->st.what);
        else
            snprintf(m.u.stream_exit.message, sizeof(m.u.stream_exit.message), "%s: %s", s->st.what,
                     strerror(s->st.err));
    }
    if (why)
        snprintf(m.u.stream_exit.message, sizeof(m.u.stream_exit.message), "%s", why);
    agent_send(s->a, &m);
    log_info("node=%s guest=%s shell session %llu ended (%d)", s->a->cfg.name, s->guest,
             (unsigned long long)s->session, m.u.stream_exit.exit_code);
}

static void
finish(struct shell_sess *s)
{
    send_exit(s, NULL);
    teardown(s);
}

static void update_polls(struct shell_sess *s);

static void
on_timer(uv_timer_t *t)
{
    struct shell_sess *s = t->data;

    if (s->ended) {
        finish(s); /* output still held back is dropped: the end is reported */
        return;
    }
    if (s->hung_up && s->p.pid > 0)
        (void)kill(-s->p.pid, SIGKILL);
}

/* Output of one end: at most the credit, as stream.data. */
static void
pump_out(struct shell_sess *s, int end)
{
    char buf[PROTO_STREAM_CHUNK];
    int fd = end == END_OUT ? s->p.out : s->p.err;
    size_t want = s->credit < sizeof(buf) ? s->credit : sizeof(buf);
    ssize_t n = want ? read(fd, buf, want) : 0;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 && want) {
        /* End of file, or EIO from a terminal nobody holds any more. */
        if (end == END_OUT)
            s->out_open = false;
        else
            s->err_open = false;
        return;
    }
    if (n <= 0)
        return;
    struct msg m = {.type = MSG_STREAM_DATA};
    m.u.stream_data.session = s->session;
    m.u.stream_data.fd = end == END_OUT ? 1 : 2;
    m.u.stream_data.len = (uint32_t)n;
    m.u.stream_data.data = buf;
    agent_send(s->a, &m);
    s->credit -= (uint32_t)n;
}

static void
send_ack(struct shell_sess *s)
{
    struct msg m = {.type = MSG_STREAM_ACK};

    m.u.stream_ack.session = s->session;
    m.u.stream_ack.bytes = s->in_done;
    s->in_done = 0;
    agent_send(s->a, &m);
}

static void
pump_in(struct shell_sess *s)
{
    ssize_t n = s->in_len ? write(s->p.in, s->in, s->in_len) : 0;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        /* The command closed its input: what is left goes nowhere. */
        n = (ssize_t)s->in_len;
    }
    memmove(s->in, s->in + n, s->in_len - (size_t)n);
    s->in_len -= (size_t)n;
    s->in_done += (uint32_t)n;
    if (s->in_done >= ACK_EVERY || (s->in_len == 0 && s->in_done))
        send_ack(s);
    if (s->in_len == 0 && s->in_eof && !s->tty && s->p.in >= 0) {
        close(s->p.in);
        s->p.in = -1;
    }
}

static void
read_status(struct shell_sess *s)
{
    ssize_t n = recv(s->p.ctl, &s->st, sizeof(s->st), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n != (ssize_t)sizeof(s->st)) {
        /* The helper died without a word (the spawner was killed). */
        s->st = (struct shell_status){.err = EPIPE};
        snprintf(s->st.what, sizeof(s->st.what),
                 "the session ended without the command's status (the guest stopped?)");
    }
    s->ended = true;
    close(s->p.ctl);
    s->p.ctl = -1;
    uv_timer_start(&s->timer, on_timer, DRAIN_MS, 0);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    struct shell_sess *s = h->data;
    int end = (int)(h - s->polls);

    (void)status;
    if (end == END_IN && (events & UV_WRITABLE))
        pump_in(s);
    else if ((end == END_OUT || end == END_ERR) && (events & (UV_READABLE | UV_DISCONNECT)))
        pump_out(s, end);
    else if (end == END_CTL)
        read_status(s);
    if (s->closing)
        return;
    if (s->ended && !s->out_open && !s->err_open) {
        finish(s);
        return;
    }
    update_polls(s);
}

/* Starts, changes or stops each end's poll for what it waits for now. */
static void
update_polls(struct shell_sess *s)
{
    int fds[N_ENDS] = {s->p.in, s->p.out, s->p.err, s->p.ctl};
    int want[N_ENDS] = {
        s->in_len ? UV_WRITABLE : 0,
        s->out_open && s->credit ? UV_READABLE : 0,
        s->err_open && s->credit ? UV_READABLE : 0,
        UV_READABLE,
    };

    for (int i = 0; i < N_ENDS; i++) {
        if (fds[i] < 0 || (i == END_OUT && !s->out_open) || (i == END_ERR && !s->err_open)) {
            if (s->polling[i])
                uv_poll_stop(&s->polls[i]);
            continue;
        }
        if (!s->polling[i]) {
            if (uv_poll_init(s->a->loop, &s->polls[i], fds[i]) < 0)
                continue;
            s->polls[i].data = s;
            s->polling[i] = true;
            s->refs++;
        }
        if (want[i])
            uv_poll_start(&s->polls[i], want[i], on_poll);
        else
            uv_poll_stop(&s->polls[i]);
    }
}

/* ---- console: the guest's console ring followed ------------------------- */

#define CONSOLE_TICK_MS  250         /* how often the ring is read */
#define CONSOLE_HISTORY  (16u << 10) /* bytes of history sent first */
#define CONSOLE_READ_MAX (2u << 20)  /* bytes read a tick: further behind, the gap is skipped */
#define CONSOLE_SLACK    (64u << 10) /* read beyond what was new at the count */

static void
console_send(struct shell_sess *s, const char *p, size_t n)
{
    while (n) {
        size_t k = n < PROTO_STREAM_CHUNK ? n : PROTO_STREAM_CHUNK;
        struct msg m = {.type = MSG_STREAM_DATA};
        m.u.stream_data = (struct msg_stream_data){
            .session = s->session, .fd = 1, .len = (uint32_t)k, .data = (char *)p};
        agent_send(s->a, &m);
        s->credit -= (uint32_t)k;
        p += k;
        n -= k;
    }
}

/* Sends what the ring got since the last tick, as far as the window lets:
 * the ring keeps what waits (and drops what it cannot keep, which is said). */
static void
on_console_tick(uv_timer_t *t)
{
    struct shell_sess *s = t->data;
    struct agent_guest *g = agent_guest_find(s->a, s->guest);
    backend_t *b = s->a->backend;
    struct console_log log = {0};

    if (!g) {
        send_exit(s, "the guest is gone");
        teardown(s);
        return;
    }
    if (!b->ops->console || s->credit < 512)
        return;
    _cleanup_free_ struct guest_spec *spec = xmalloc(sizeof(*spec)); /* g's, unpacked */
    agent_guest_spec(g, spec);
    size_t max = CONSOLE_HISTORY;
    bool probed = s->console_started; /* max is what was new, plus the slack */
    if (probed) {
        /* A byte first, for the ring's count: an idle console costs a
         * header read a tick, and the bytes are read only when new. */
        if (b->ops->console(b, spec, 1, &log) < 0)
            return;
        free(log.data);
        if (log.total <= s->console_seen)
            return;
        uint64_t want = log.total - s->console_seen + CONSOLE_SLACK;
        max = want < CONSOLE_READ_MAX ? (size_t)want : CONSOLE_READ_MAX;
        log = (struct console_log){0};
    }
    if (b->ops->console(b, spec, max, &log) < 0)
        return; /* no ring yet (never started): keep waiting */
    if (!s->console_started) {
        s->console_started = true;
        s->console_seen = log.total - log.len;
    }
    if (log.total > s->console_seen) {
        uint64_t fresh = log.total - s->console_seen;
        if (fresh > log.len && probed && log.len == max && max < CONSOLE_READ_MAX) {
            /* Written past the slack between the two reads: again next tick. */
            free(log.data);
            return;
        }
        if (fresh > log.len) {
            char note[96];
            int n = snprintf(note, sizeof(note), "\r\n[vfleet: %llu console bytes dropped]\r\n",
                             (unsigned long long)(fresh - log.len));
            console_send(s, note, (size_t)n);
            s->console_seen = log.total - log.len;
            fresh = log.len;
        }
        size_t n = fresh < s->credit ? (size_t)fresh : s->credit;
        console_send(s, log.data + (log.len - fresh), n);
        s->console_seen += n;
    }
    free(log.data);
}

/* A console session needs no command: acked at once, then the ring ticks. */
static void
console_open(struct shell_sess *s)
{
    struct msg m = {.type = MSG_ACK};

    s->console = true;
    m.u.ack.ref = s->ref;
    strscpy(m.u.ack.id, s->guest, sizeof(m.u.ack.id));
    agent_send(s->a, &m);
    log_info("node=%s guest=%s console session %llu attached", s->a->cfg.name, s->guest,
             (unsigned long long)s->session);
    uv_timer_start(&s->timer, on_console_tick, 0, CONSOLE_TICK_MS);
}

/* ---- start ------------------------------------------------------------- */

static void
work_run(uv_work_t *w)
{
    struct shell_work *sw = container_of(w, struct shell_work, work);
    backend_t *b = sw->a->backend;

    errtext_clear();
    sw->result =
        b->ops->shell ? b->ops->shell(b, &sw->spec, &sw->rt, &sw->req, &sw->proc) : -EOPNOTSUPP;
    if (sw->result < 0)
        strscpy(sw->errtext, errtext_get(), sizeof(sw->errtext));
}

static void
work_done(uv_work_t *w, int status)
{
    struct shell_work *sw = container_of(w, struct shell_work, work);
    struct shell_sess *s = sw->s;

    (void)status;
    if (sw->argv)
        for (char **p = sw->argv; *p; p++)
            free(*p);
    free(sw->argv);
    if (sw->result < 0) {
        /* Accepted before a move's or export's freeze was queued, its helper
         * froze as it joined: answered as one that came after. */
        const struct agent_guest *g = agent_guest_find(s->a, s->guest);
        if (!s->closing && g && g->move_frozen)
            agent_send_nack(s->a, s->ref, s->guest, MSG_ERR_BUSY, AGENT_MOVE_FROZEN);
        else if (!s->closing)
            agent_send_nack_errno(s->a, s->ref, s->guest, sw->result, "shell", sw->errtext);
        teardown(s);
    } else if (s->closing) {
        /* Hung up while starting: the command goes with its ends. */
        int fds[N_ENDS] = {sw->proc.in, sw->proc.out, sw->proc.err, sw->proc.ctl};
        if (sw->proc.pid > 0)
            (void)kill(-sw->proc.pid, SIGHUP);
        for (int i = 0; i < N_ENDS; i++)
            if (fds[i] >= 0)
                close(fds[i]);
    } else {
        struct msg m = {.type = MSG_ACK};
        s->p = sw->proc;
        m.u.ack.ref = s->ref;
        strscpy(m.u.ack.id, s->guest, sizeof(m.u.ack.id));
        m.u.ack.running = true;
        agent_send(s->a, &m);
        s->out_open = s->p.out >= 0;
        s->err_open = s->p.err >= 0;
        log_info("node=%s guest=%s shell session %llu started (pid %d)", s->a->cfg.name, s->guest,
                 (unsigned long long)s->session, (int)s->p.pid);
        update_polls(s);
    }
    unref(s); /* the start's reference */
    free(sw);
}

/* ---- the master's messages --------------------------------------------- */

void
agent_shell_open(agent_t *a, const struct msg *m)
{
    const struct msg_shell_open *o = &m->u.shell;
    struct agent_guest *g = agent_guest_find(a, o->id);
    const char *why = NULL;
    enum msg_error code = MSG_ERR_CONFLICT;

    if (!g)
        why = "no such guest on this node", code = MSG_ERR_NOT_FOUND;
    else if (g->rec.spec.flags & SPEC_FLAG_PRIVATE)
        why = "guest is private: no shell", code = MSG_ERR_PRIVATE;
    else if (g->rec.spec.flags & SPEC_FLAG_LOCK)
        why = "guest is locked", code = MSG_ERR_LOCKED;
    else if (g->destroying || (!o->console && !g->rec.rt.pid))
        why = "guest is not running";
    else if (!o->console && g->move_frozen)
        why = AGENT_MOVE_FROZEN, code = MSG_ERR_BUSY;
    else if (find(a, o->session))
        why = "session number in use";
    else if (count(a) >= MAX_SESSIONS)
        why = "too many sessions on this node", code = MSG_ERR_BUSY;
    if (why) {
        agent_send_nack(a, m->id, o->id, code, why);
        return;
    }
    struct shell_sess *s = xcalloc(1, sizeof(*s));
    s->a = a;
    s->session = o->session;
    s->ref = m->id;
    s->tty = o->tty;
    s->credit = PROTO_STREAM_WINDOW;
    s->in = xmalloc(PROTO_STREAM_WINDOW);
    s->p = (struct shell_proc){.in = -1, .out = -1, .err = -1, .ctl = -1};
    strscpy(s->guest, o->id, sizeof(s->guest));
    uv_timer_init(a->loop, &s->timer);
    s->timer.data = s;
    s->refs = 2; /* the timer, and the start */
    s->next = *list_of(a);
    *list_of(a) = s;
    if (o->console) {
        s->refs = 1; /* the timer only: nothing starts on the pool */
        console_open(s);
        return;
    }

    struct shell_work *sw = xcalloc(1, sizeof(*sw));
    sw->a = a;
    sw->s = s;
    agent_guest_spec(g, &sw->spec);
    sw->rt = g->rec.rt;
    if (o->argc) {
        sw->argv = xcalloc(o->argc + 1, sizeof(char *));
        for (uint32_t i = 0; i < o->argc; i++)
            sw->argv[i] = xstrdup(o->argv[i]);
    }
    strscpy(sw->term, o->term[0] ? o->term : "xterm", sizeof(sw->term));
    sw->req = (struct shell_request){.argv = sw->argv,
                                     .tty = o->tty,
                                     .cols = (uint16_t)o->cols,
                                     .rows = (uint16_t)o->rows,
                                     .term = sw->term};
    uv_queue_work(a->loop, &sw->work, work_run, work_done);
}

void
agent_shell_stream(agent_t *a, const struct msg *m)
{
    uint64_t id = m->type == MSG_STREAM_DATA  ? m->u.stream_data.session
                  : m->type == MSG_STREAM_ACK ? m->u.stream_ack.session
                                              : m->u.stream_ctl.session;
    struct shell_sess *s = find(a, id);

    if (!s || s->closing)
        return; /* ended already: its stream.exit is on the way */
    if (s->console) {
        /* The console has no input side: input is taken and dropped. */
        if (m->type == MSG_STREAM_DATA && m->u.stream_data.len) {
            s->in_done = m->u.stream_data.len;
            send_ack(s);
        } else if (m->type == MSG_STREAM_ACK) {
            uint64_t c = (uint64_t)s->credit + m->u.stream_ack.bytes;
            s->credit = c > PROTO_STREAM_WINDOW ? PROTO_STREAM_WINDOW : (uint32_t)c;
        } else if (m->type == MSG_STREAM_CTL && m->u.stream_ctl.close) {
            send_exit(s, "detached");
            teardown(s);
        }
        return;
    }
    if (m->type == MSG_STREAM_DATA) {
        const struct msg_stream_data *d = &m->u.stream_data;
        if (d->len > PROTO_STREAM_WINDOW - s->in_len) {
            log_warning("node=%s shell session %llu: the master sent past the window, ending it",
                        a->cfg.name, (unsigned long long)id);
            send_exit(s, "input beyond the window");
            teardown(s);
            return;
        }
        memcpy(s->in + s->in_len, d->data, d->len);
        s->in_len += d->len;
        s->in_eof = s->in_eof || d->eof;
        if (s->in_len == 0 && s->in_eof)
            pump_in(s);
    } else if (m->type == MSG_STREAM_ACK) {
        uint64_t c = (uint64_t)s->credit + m->u.stream_ack.bytes;
        s->credit = c > PROTO_STREAM_WINDOW ? PROTO_STREAM_WINDOW : (uint32_t)c;
    } else {
        const struct msg_stream_ctl *c = &m->u.stream_ctl;
        if (c->cols && c->rows && s->tty && s->p.in >= 0) {
            struct winsize ws = {.ws_row = (unsigned short)c->rows,
                                 .ws_col = (unsigned short)c->cols};
            (void)ioctl(s->p.in, TIOCSWINSZ, &ws);
        }
        if (c->signal && s->p.pid > 0 && !s->ended)
            (void)kill(-s->p.pid, (int)c->signal);
        if (c->close && !s->hung_up) {
            s->hung_up = true;
            if (s->p.pid > 0 && !s->ended)
                (void)kill(-s->p.pid, SIGHUP);
            uv_timer_start(&s->timer, on_timer, KILL_MS, 0);
        }
    }
    if (s->p.ctl >= 0 || s->ended)
        update_polls(s);
}

void
agent_shell_close_guest(agent_t *a, const char *id, const char *why)
{
    for (struct shell_sess *s = *list_of(a), *n; s; s = n) {
        n = s->next;
        if (strcmp(s->guest, id) != 0 || s->closing)
            continue;
        send_exit(s, why);
        teardown(s);
    }
}

void
agent_shell_close_all(agent_t *a, const char *why)
{
    while (*list_of(a)) {
        struct shell_sess *s = *list_of(a);
        log_info("node=%s shell session %llu hung up: %s", a->cfg.name,
                 (unsigned long long)s->session, why);
        teardown(s);
    }
}
