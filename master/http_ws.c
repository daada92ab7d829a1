/* GET /v1/guests/{name}/shell: an interactive session in a guest over a
 * WebSocket (RFC 6455), bridged to the guest's node as guest.shell and its
 * stream (master/shell.h, docs/api.md "Shell").
 *
 * The request is held until the node has started the command (its ack):
 * then it is answered 101 and libmicrohttpd hands the socket over (in its
 * own thread; a uv_async brings it to the loop), or, when the node refuses,
 * with the error as any request is (409 private, 404 ...). From then on the
 * loop polls the socket: client frames become stream.data (binary, channel
 * byte 0) or stream.ctl (text: {"resize":[cols,rows]}, {"signal":N},
 * {"eof":true}); node output becomes binary frames with the channel byte (1
 * stdout, 2 stderr) and the end a text frame {"exit":N,"signal":S,
 * "message":M} and a close frame.
 *
 * Flow control: a client frame is taken only while the node has window for
 * it (else the socket is not read, and TCP pushes back on the client);
 * output is acknowledged to the node once written to the socket, so at most
 * one window of output waits here per session. Control frames carry no
 * bytes the window counts, and each becomes a message to the node: a
 * session's are taken CTL_PER_TICK a tick (else the socket is not read), so
 * one client's flood of them cannot fill the node link's queue (LINK_HWM),
 * where every other message to that node, other sessions' input and acks
 * among them, would be dropped.
 *
 * A message to the node that is not sent (its link's queue is full, or the
 * node is gone) ends its session: a lost input or ack would leave the
 * session's window short for good, client and node both waiting. The send
 * only marks the session (lost); the end comes in flush, which every path
 * that sends calls last: a close frame 1011 saying so, what the socket
 * takes now, and the node told to hang up. A session whose guest.shell was
 * not sent is answered 503 at once. */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "master/guests.h"
#include "master/guests_move.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/http_ws_req.h"
#include "master/session.h"
#include "master/shell.h"

#define OPEN_TIMEOUT_MS  15000       /* the node starts the command within this */
#define UPGRADE_GRACE_MS 10000       /* the client takes the 101 within this */
#define RBUF_MAX         (64u << 10) /* bytes of one client frame, header included */
#define ACK_EVERY        (16u << 10) /* output written before the node is told */
#define WBUF_PAUSE       (64u << 10) /* queued for a client that does not read: stop reading it */
#define MAX_SESSIONS     256         /* per master */
#define MAX_PER_CALLER   32          /* per caller (a token, or root on the socket) */
#define MAX_CALLER_NODE  16          /* per caller on one node (which takes 64 in all) */
#define CTL_PER_TICK     8           /* client control frames taken per session and tick */
#define HANGUP_RETRY_MS  60000 /* a hang-up the node's full link did not take is retried so long */
#define HANGUPS_MAX      1024  /* such hang-ups kept */

enum sess_state {
    S_OPENING,   /* guest.shell sent, the request held */
    S_UPGRADING, /* answered 101, the socket not here yet */
    S_OPEN,      /* bridging */
};

struct shell_sess {
    master_t *m;                 /* the master */
    uint64_t id;                 /* the session's number (also the node's) */
    uint64_t ref;                /* the guest.shell request id */
    char node[NAME_MAX_LEN + 1]; /* the guest's node */
    char guest[SPEC_ID_LEN + 1]; /* the guest */
    struct caller caller;        /* who opened it: its token's deletion or expiry ends it */
    enum sess_state state;       /* where it is */
    struct http_req *req;        /* held while opening */
    bool offered_protocol;       /* the client offered "vfleet.v1" */
    char accept[32];             /* Sec-WebSocket-Accept */
    uint64_t deadline;           /* monotonic ms: opening or upgrading gives up then */
    int fd;                      /* the client's stream once upgraded, else -1 */
    void *urh;                   /* libmicrohttpd's handle to close it */
    uv_poll_t poll;              /* on fd */
    bool polling;                /* poll initialised */
    char *rbuf;                  /* client bytes not yet taken (RBUF_MAX) */
    size_t rlen;                 /* bytes in rbuf */
    char *wbuf;                  /* bytes for the client not yet written */
    size_t wlen;                 /* bytes in wbuf */
    size_t wcap;                 /* its size */
    uint32_t credit;             /* input bytes the node still has room for */
    uint32_t unacked;            /* output written, not yet acknowledged to the node */
    unsigned ctl_left;           /* control frames still taken this tick */
    bool ended;                  /* the close frame is queued: flush, then close */
    bool node_gone;              /* the node's side is over (exit came, or hung up) */
    int lost;                    /* a message to the node was not sent (its error), else 0 */
    struct shell_sess *next;     /* in the master's list */
};

/* A socket libmicrohttpd handed over, on its way to the loop. */
struct handoff {
    uint64_t id;          /* the session it belongs to */
    int fd;               /* the socket */
    void *urh;            /* its close handle */
    char *extra;          /* bytes read past the request (owned) */
    size_t extra_len;     /* their count */
    struct handoff *next; /* in the inbox */
};

/* A session's hang-up its node's link did not take (full): retried each
 * tick, so the node's session and its command do not outlive it. */
struct hangup {
    char node[NAME_MAX_LEN + 1]; /* the node */
    uint64_t session;            /* its session */
    uint64_t until;              /* monotonic ms: given up then */
    struct hangup *next;         /* in the master's list */
};

/* The master's sessions (m->shells). */
struct shells {
    struct hangup *hangups;  /* hang-ups not sent yet */
    size_t n_hangups;        /* their count */
    struct shell_sess *list; /* every session */
    uint64_t next_id;        /* session numbers */
    uv_async_t async;        /* wakes the loop for handoffs */
    pthread_mutex_t lock;    /* guards inbox and closed */
    struct handoff *inbox;   /* sockets from libmicrohttpd's thread */
    bool closed;             /* shell_close_all ran: hand nothing more to the loop */
};

static void on_async(uv_async_t *a);

static struct shells *
shells_of(master_t *m, bool create)
{
    struct shells *sh = m->shells;

    if (!sh && create && !m->stopping) {
        sh = xcalloc(1, sizeof(*sh));
        pthread_mutex_init(&sh->lock, NULL);
        uv_async_init(m->loop, &sh->async, on_async);
        sh->async.data = m;
        m->shells = sh;
    }
    return sh;
}

static struct shell_sess *
find_by(master_t *m, uint64_t id, uint64_t ref)
{
    struct shells *sh = shells_of(m, false);

    for (struct shell_sess *s = sh ? sh->list : NULL; s; s = s->next)
        if ((id && s->id == id) || (ref && s->ref == ref))
            return s;
    return NULL;
}

/* ---- to the node -------------------------------------------------------- */

static int
send_msg(master_t *m, const char *node, struct msg *msg)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r;

    if (!msg->id)
        msg->id = SHELL_REF_BIT | ++shells_of(m, false)->next_id;
    r = msg_encode(msg, &buf, &len);
    return r < 0 ? r : session_send_raw(m, node, buf, len);
}

/* Sends msg to the session's node. One that is not sent marks the session
 * lost (logged once); after that only the hang-up is sent, as the stream's
 * order is broken. Returns 0, or the error (-EAGAIN: the link is full). */
static int
to_node(struct shell_sess *s, struct msg *msg)
{
    int r;

    if (s->lost && !(msg->type == MSG_STREAM_CTL && msg->u.stream_ctl.close))
        return s->lost;
    r = send_msg(s->m, s->node, msg);
    if (r >= 0)
        return 0;
    if (!s->lost)
        log_warning("guest=%s node=%s shell session %llu: %s not sent (%s): the session ends",
                    s->guest, s->node, (unsigned long long)s->id, msg_type_name(msg->type),
                    strerror(-r));
    s->lost = r;
    return r;
}

static int
node_ctl(struct shell_sess *s, uint32_t cols, uint32_t rows, uint32_t sig, bool close)
{
    struct msg msg = {.type = MSG_STREAM_CTL};

    msg.u.stream_ctl = (struct msg_stream_ctl){
        .session = s->id, .cols = cols, .rows = rows, .signal = sig, .close = close};
    return to_node(s, &msg);
}

/* A hang-up not sent: the node's link is full, it is tried again each
 * tick. A node not reachable needs none: it hangs every session up when
 * it reconnects (its welcome). */
static void
hangup_later(struct shell_sess *s)
{
    struct shells *sh = shells_of(s->m, false);

    if (sh->n_hangups >= HANGUPS_MAX) {
        log_warning("node=%s shell session %llu: its hang-up is not sent (%zu are pending); the "
                    "node ends it with its command, or when its link is reset",
                    s->node, (unsigned long long)s->id, sh->n_hangups);
        return;
    }
    struct hangup *h = xcalloc(1, sizeof(*h));
    strscpy(h->node, s->node, sizeof(h->node));
    h->session = s->id;
    h->until = time_mono_ms() + HANGUP_RETRY_MS;
    h->next = sh->hangups;
    sh->hangups = h;
    sh->n_hangups++;
}

/* Each tick: the hang-ups still owed, sent if the link takes them now. */
static void
hangups_retry(master_t *m, uint64_t now)
{
    struct shells *sh = shells_of(m, false);

    for (struct hangup **pp = sh ? &sh->hangups : NULL, *h; pp && (h = *pp);) {
        struct msg msg = {.type = MSG_STREAM_CTL};
        msg.u.stream_ctl = (struct msg_stream_ctl){.session = h->session, .close = true};
        int r = master_node_connected(m, h->node) ? send_msg(m, h->node, &msg) : -EHOSTUNREACH;
        if (r == -EAGAIN && now < h->until) {
            pp = &h->next;
            continue;
        }
        if (r == -EAGAIN)
            log_warning("node=%s shell session %llu: its hang-up was not sent in %d s; the node "
                        "ends it with its command, or when its link is reset",
                        h->node, (unsigned long long)h->session, HANGUP_RETRY_MS / 1000);
        *pp = h->next;
        sh->n_hangups--;
        free(h);
    }
}

static void
node_ack(struct shell_sess *s)
{
    struct msg msg = {.type = MSG_STREAM_ACK};

    if (!s->unacked || s->node_gone || s->lost)
        return;
    msg.u.stream_ack = (struct msg_stream_ack){.session = s->id, .bytes = s->unacked};
    s->unacked = 0;
    to_node(s, &msg);
}

/* ---- the session's end -------------------------------------------------- */

static void
sess_unlink(struct shell_sess *s)
{
    struct shells *sh = shells_of(s->m, false);

    for (struct shell_sess **pp = &sh->list; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            return;
        }
}

static void
sess_free(struct shell_sess *s)
{
    free(s->rbuf);
    free(s->wbuf);
    free(s);
}

static void
on_poll_closed(uv_handle_t *h)
{
    sess_free(h->data);
}

/* Gone for good: the node hung up (unless it ended by itself), the socket
 * given back to libmicrohttpd to close. */
static void
sess_drop(struct shell_sess *s)
{
    sess_unlink(s);
    if (!s->node_gone && node_ctl(s, 0, 0, 0, true) == -EAGAIN)
        hangup_later(s);
    if (s->polling) {
        /* Stopped first: libmicrohttpd closes the socket in its thread. */
        uv_poll_stop(&s->poll);
        MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
        uv_close((uv_handle_t *)&s->poll, on_poll_closed);
    } else if (s->urh) {
        MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
        sess_free(s);
    } else {
        sess_free(s);
    }
}

/* ---- frames to the client ------------------------------------------------ */

static void
wbuf_put(struct shell_sess *s, const void *p, size_t n)
{
    if (s->wlen + n > s->wcap) {
        s->wcap = (s->wlen + n) * 2;
        s->wbuf = xrealloc(s->wbuf, s->wcap);
    }
    memcpy(s->wbuf + s->wlen, p, n);
    s->wlen += n;
}

/* One unmasked frame: opcode, an optional leading byte (the channel), data. */
static void
frame_out(struct shell_sess *s, unsigned op, int lead, const void *data, size_t n)
{
    unsigned char h[10];
    size_t hl = 2, total = n + (lead >= 0);

    h[0] = (unsigned char)(0x80 | op);
    if (total < 126) {
        h[1] = (unsigned char)total;
    } else if (total < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(total >> 8);
        h[3] = (unsigned char)total;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)total >> (56 - 8 * i));
        hl = 10;
    }
    wbuf_put(s, h, hl);
    if (lead >= 0) {
        unsigned char c = (unsigned char)lead;
        wbuf_put(s, &c, 1);
    }
    wbuf_put(s, data, n);
}

static void
close_frame(struct shell_sess *s, unsigned code, const char *why)
{
    unsigned char body[125];
    size_t n = strnlen(why, sizeof(body) - 2);

    if (s->ended)
        return;
    body[0] = (unsigned char)(code >> 8);
    body[1] = (unsigned char)code;
    memcpy(body + 2, why, n);
    frame_out(s, 0x8, -1, body, n + 2);
    s->ended = true;
}

static void update_poll(struct shell_sess *s);

/* Writes what can be written; the session may be dropped. Returns -1 then.
 * A session a message to the node was lost from ends here: its close frame
 * is written as far as the socket takes it now, then it is dropped. */
static int
flush(struct shell_sess *s)
{
    if (s->fd < 0)
        return 0; /* not here yet: it waits in wbuf */
again:
    if (s->lost && !s->ended) {
        char why[123];
        snprintf(why, sizeof(why), "a message to node %s was lost (%s)", s->node,
                 s->lost == -EAGAIN ? "the node link is full" : "the node is not reachable");
        close_frame(s, 1011, why);
    }
    while (s->wlen) {
        /* A socket (TCP, Unix, or the TLS pair): a gone client is EPIPE. */
        ssize_t n = send(s->fd, s->wbuf, s->wlen, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            sess_drop(s);
            return -1;
        }
        memmove(s->wbuf, s->wbuf + n, s->wlen - (size_t)n);
        s->wlen -= (size_t)n;
    }
    /* Acked only once written (all but ACK_EVERY): a client that does not
     * read holds the node back, so wbuf stays within the window. */
    if (s->wlen == 0 || (s->unacked >= ACK_EVERY && s->wlen <= ACK_EVERY))
        node_ack(s);
    if (s->lost && !s->ended)
        goto again; /* the ack was lost */
    if (s->lost || (s->wlen == 0 && s->ended)) {
        sess_drop(s);
        return -1;
    }
    return 0;
}

/* ---- frames from the client ---------------------------------------------- */

/* A text frame: {"resize":[cols,rows]}, {"signal":N}, {"eof":true}. */
static void
control_in(struct shell_sess *s, const char *text, size_t n)
{
    json_t *j = json_loadb(text, n, 0, NULL), *v;

    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    if ((v = json_object_get(j, "resize")) && json_array_size(v) == 2) {
        json_int_t c = json_integer_value(json_array_get(v, 0));
        json_int_t r = json_integer_value(json_array_get(v, 1));
        if (c > 0 && c <= 65535 && r > 0 && r <= 65535)
            node_ctl(s, (uint32_t)c, (uint32_t)r, 0, false);
    }
    if ((v = json_object_get(j, "signal")) && json_integer_value(v) > 0 &&
        json_integer_value(v) <= 64)
        node_ctl(s, 0, 0, (uint32_t)json_integer_value(v), false);
    if (json_is_true(json_object_get(j, "eof"))) {
        struct msg msg = {.type = MSG_STREAM_DATA};
        msg.u.stream_data = (struct msg_stream_data){.session = s->id, .eof = true};
        to_node(s, &msg);
    }
    json_decref(j);
}

static void
input_to_node(struct shell_sess *s, const unsigned char *p, size_t n)
{
    while (n) {
        size_t k = n < PROTO_STREAM_CHUNK ? n : PROTO_STREAM_CHUNK;
        struct msg msg = {.type = MSG_STREAM_DATA};
        msg.u.stream_data =
            (struct msg_stream_data){.session = s->id, .len = (uint32_t)k, .data = (char *)p};
        to_node(s, &msg);
        s->credit -= (uint32_t)k;
        p += k;
        n -= k;
    }
}

/* Takes the complete frames in rbuf the node has room for. Returns -1 when
 * the session was dropped. */
static int
frames_in(struct shell_sess *s)
{
    size_t off = 0;

    while (!s->ended && !s->lost) {
        unsigned char *f = (unsigned char *)s->rbuf + off;
        size_t avail = s->rlen - off, hl = 2, len;
        if (avail < 2)
            break;
        unsigned op = f[0] & 0x0f;
        len = f[1] & 0x7f;
        if (!(f[1] & 0x80)) {
            close_frame(s, 1002, "client frames must be masked");
            break;
        }
        if (len == 126) {
            if (avail < 4)
                break;
            len = (size_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (len == 127) {
            close_frame(s, 1009, "frame too large");
            break;
        }
        if (hl + 4 + len > RBUF_MAX) {
            close_frame(s, 1009, "frame too large");
            break;
        }
        if (avail < hl + 4 + len)
            break;
        unsigned char *mask = f + hl, *pl = f + hl + 4;
        bool data = op == 0x2 || op == 0x0;
        if (data && len > 1 && s->credit < len - 1)
            break; /* the node has no room: wait for its ack */
        if (op == 0x1 && !s->ctl_left)
            break; /* this tick's control frames are taken: wait for the next */
        for (size_t i = 0; i < len; i++)
            pl[i] ^= mask[i & 3];
        off += hl + 4 + len;
        if (data && len > 1 && (op == 0x0 || pl[0] == 0))
            input_to_node(s, pl + 1, len - 1);
        else if (op == 0x1 && s->ctl_left-- > 0)
            control_in(s, (const char *)pl, len);
        else if (op == 0x9)
            frame_out(s, 0xA, -1, pl, len);
        else if (op == 0x8)
            close_frame(s, 1000, "bye");
    }
    memmove(s->rbuf, s->rbuf + off, s->rlen - off);
    s->rlen -= off;
    return 0;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
    struct shell_sess *s = h->data;

    if (status < 0) {
        sess_drop(s);
        return;
    }
    if ((events & UV_READABLE) && s->rlen < RBUF_MAX) {
        ssize_t n = read(s->fd, s->rbuf + s->rlen, RBUF_MAX - s->rlen);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            sess_drop(s); /* the client went away */
            return;
        }
        if (n > 0)
            s->rlen += (size_t)n;
        frames_in(s);
    }
    if (flush(s) < 0)
        return;
    update_poll(s);
}

/* Reads while there is room and the node may take input; writes while
 * there is something to write. */
static void
update_poll(struct shell_sess *s)
{
    int ev = 0;

    if (!s->polling)
        return;
    /* Pings answered to a client that reads nothing would pile up. */
    if (!s->ended && s->rlen < RBUF_MAX && s->credit > 0 && s->ctl_left > 0 && s->wlen < WBUF_PAUSE)
        ev |= UV_READABLE;
    if (s->wlen)
        ev |= UV_WRITABLE;
    if (ev)
        uv_poll_start(&s->poll, ev, on_poll);
    else
        uv_poll_stop(&s->poll);
}

/* ---- the handover of the socket ------------------------------------------ */

/* Whose socket an upgrade brings (freed by on_upgraded). */
struct upgrade_ticket {
    master_t *m; /* the master */
    uint64_t id; /* the session */
};

/* libmicrohttpd's thread: the 101 went out, the socket is ours. The
 * session is looked up on the loop (it may have ended meanwhile). */
static void
on_upgraded(void *userdata, int fd, void *urh, const char *extra, size_t extra_len)
{
    struct upgrade_ticket *t = userdata;
    struct shells *sh = t->m->shells;
    struct handoff *h = xcalloc(1, sizeof(*h));

    h->id = t->id;
    free(t);
    h->fd = fd;
    h->urh = urh;
    if (extra_len) {
        h->extra = xmalloc(extra_len);
        memcpy(h->extra, extra, extra_len);
    }
    h->extra_len = extra_len;
    pthread_mutex_lock(&sh->lock);
    bool closed = sh->closed;
    if (!closed) {
        h->next = sh->inbox;
        sh->inbox = h;
    }
    pthread_mutex_unlock(&sh->lock);
    if (closed) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        free(h->extra);
        free(h);
        return;
    }
    uv_async_send(&sh->async);
}

/* The loop: sockets handed over become open sessions. */
static void
on_async(uv_async_t *a)
{
    master_t *m = a->data;
    struct shells *sh = m->shells;

    pthread_mutex_lock(&sh->lock);
    struct handoff *list = sh->inbox;
    sh->inbox = NULL;
    pthread_mutex_unlock(&sh->lock);
    while (list) {
        struct handoff *h = list;
        struct shell_sess *s = find_by(m, h->id, 0);
        list = h->next;
        if (!s || s->state != S_UPGRADING) {
            MHD_upgrade_action(h->urh, MHD_UPGRADE_ACTION_CLOSE);
        } else {
            s->fd = h->fd;
            s->urh = h->urh;
            s->state = S_OPEN;
            (void)fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
            s->rbuf = xmalloc(RBUF_MAX);
            if (h->extra_len > RBUF_MAX) {
                close_frame(s, 1009,
                            "frame too large"); /* more than a frame came with the request */
            } else if (h->extra_len) {
                memcpy(s->rbuf, h->extra, h->extra_len);
                s->rlen = h->extra_len;
            }
            if (uv_poll_init(m->loop, &s->poll, s->fd) == 0) {
                s->poll.data = s;
                s->polling = true;
                frames_in(s);
                if (flush(s) == 0)
                    update_poll(s);
            } else {
                sess_drop(s);
            }
        }
        free(h->extra);
        free(h);
    }
}

/* ---- the node's side ------------------------------------------------------ */

static void
answered(struct shell_sess *s, const struct msg *msg)
{
    if (msg->type == MSG_NACK) {
        struct api_error ae;
        api_error_from_nack(msg->u.nack.code, &ae);
        json_t *body = api_error_json(ae.code, NULL, msg->u.nack.message);
        httpd_respond(s->req, ae.status, body);
        s->node_gone = true;
        sess_unlink(s);
        sess_free(s);
        return;
    }
    struct upgrade_ticket *t = xcalloc(1, sizeof(*t));
    *t = (struct upgrade_ticket){s->m, s->id};
    httpd_set_header(s->req, "Upgrade", "websocket");
    httpd_set_header(s->req, "Connection", "Upgrade");
    httpd_set_header(s->req, "Sec-WebSocket-Accept", s->accept);
    if (s->offered_protocol)
        httpd_set_header(s->req, "Sec-WebSocket-Protocol", "vfleet.v1");
    httpd_upgrade(s->req, on_upgraded, t);
    s->req = NULL;
    s->state = S_UPGRADING;
    s->deadline = time_mono_ms() + UPGRADE_GRACE_MS;
}

bool
shell_on_answer(master_t *m, const char *node, const struct msg *msg)
{
    uint64_t ref = msg->type == MSG_ACK ? msg->u.ack.ref : msg->u.nack.ref;
    struct shell_sess *s;

    if (!(ref & SHELL_REF_BIT))
        return false;
    s = find_by(m, 0, ref);
    if (s && s->state == S_OPENING && !strcmp(s->node, node))
        answered(s, msg);
    return true;
}

static void
node_exit(struct shell_sess *s, const struct msg_stream_exit *e)
{
    json_t *j =
        json_pack("{s:o, s:i, s:s}", "exit",
                  e->exit_code >= 0 && !e->signal ? json_integer(e->exit_code) : json_null(),
                  "signal", (int)e->signal, "message", e->message);
    char *text = json_dumps(j, JSON_COMPACT);

    frame_out(s, 0x1, -1, text, strlen(text));
    free(text);
    json_decref(j);
    s->node_gone = true;
    close_frame(s, 1000, "the command ended");
}

void
shell_on_stream(master_t *m, const char *node, const struct msg *msg)
{
    uint64_t id = msg->type == MSG_STREAM_DATA  ? msg->u.stream_data.session
                  : msg->type == MSG_STREAM_ACK ? msg->u.stream_ack.session
                                                : msg->u.stream_exit.session;
    struct shell_sess *s = find_by(m, id, 0);

    if (!s || strcmp(s->node, node) != 0 || s->state == S_OPENING)
        return;
    if (msg->type == MSG_STREAM_DATA) {
        const struct msg_stream_data *d = &msg->u.stream_data;
        frame_out(s, 0x2, d->fd == 2 ? 2 : 1, d->data, d->len);
        s->unacked += d->len;
    } else if (msg->type == MSG_STREAM_ACK) {
        uint64_t c = (uint64_t)s->credit + msg->u.stream_ack.bytes;
        s->credit = c > PROTO_STREAM_WINDOW ? PROTO_STREAM_WINDOW : (uint32_t)c;
        if (s->rlen)
            frames_in(s);
    } else {
        node_exit(s, &msg->u.stream_exit);
    }
    if (flush(s) == 0)
        update_poll(s);
}

/* Ends a session whose caller's token was deleted or has expired: the
 * request held while opening is answered 401, an open one gets a close
 * frame (1008) if its socket takes it now, and the command is hung up
 * either way; a client that does not read holds nothing open. */
static void
sess_revoke(struct shell_sess *s, const char *why)
{
    log_notice("guest=%s shell session %llu of %s ended: %s", s->guest, (unsigned long long)s->id,
               s->caller.who, why);
    if (s->state == S_OPENING) {
        http_reply_errno(s->req, -EKEYREJECTED, NULL, "%s", why);
    } else if (s->state == S_OPEN) {
        close_frame(s, 1008, why);
        if (flush(s) < 0)
            return;
    }
    sess_drop(s);
}

void
shell_revoke(master_t *m, const char *token)
{
    struct shells *sh = shells_of(m, false);

    for (struct shell_sess *s = sh ? sh->list : NULL, *n; s; s = n) {
        n = s->next;
        if (auth_caller_over(&s->caller, token, 0))
            sess_revoke(s, "the token was deleted");
    }
}

void
shell_tick(master_t *m)
{
    struct shells *sh = shells_of(m, false);
    uint64_t now = time_mono_ms(), real = time_real_ms();

    hangups_retry(m, now);
    for (struct shell_sess *s = sh ? sh->list : NULL, *n; s; s = n) {
        n = s->next;
        if (auth_caller_over(&s->caller, NULL, real)) {
            sess_revoke(s, "the token expired");
        } else if (s->state == S_OPENING && now >= s->deadline) {
            http_reply_errno(s->req, -ETIMEDOUT, NULL, "node %s did not start the command",
                             s->node);
            sess_drop(s);
        } else if (s->state == S_UPGRADING && now >= s->deadline) {
            sess_drop(s); /* the client never took its 101 */
        } else if (s->state == S_OPEN && !s->node_gone && !master_node_connected(m, s->node)) {
            struct msg_stream_exit e = {.session = s->id, .exit_code = -1};
            snprintf(e.message, sizeof(e.message), "node %s is not connected", s->node);
            node_exit(s, &e);
            if (flush(s) == 0)
                update_poll(s);
        } else if (s->state == S_OPEN && s->lost) {
            if (flush(s) == 0) /* ends it: flush runs after every send, this is a backstop */
                update_poll(s);
        } else if (s->state == S_OPEN && s->ctl_left < CTL_PER_TICK) {
            s->ctl_left = CTL_PER_TICK;
            if (s->rlen)
                frames_in(s);
            if (flush(s) == 0)
                update_poll(s);
        }
    }
}

static void
on_shells_closed(uv_handle_t *h)
{
    master_t *m = h->data;
    struct shells *sh = m->shells;

    pthread_mutex_destroy(&sh->lock);
    free(sh);
    m->shells = NULL;
}

void
shell_close_all(master_t *m)
{
    struct shells *sh = shells_of(m, false);

    if (!sh || sh->closed)
        return;
    while (sh->list) {
        struct shell_sess *s = sh->list;
        if (s->state == S_OPENING)
            httpd_error(s->req, 503, "unavailable", NULL, "the master is shutting down");
        sess_drop(s);
    }
    while (sh->hangups) { /* the node hangs up what it has when it is welcomed again */
        struct hangup *h = sh->hangups;
        sh->hangups = h->next;
        free(h);
    }
    sh->n_hangups = 0;
    pthread_mutex_lock(&sh->lock);
    sh->closed = true;
    struct handoff *list = sh->inbox;
    sh->inbox = NULL;
    pthread_mutex_unlock(&sh->lock);
    for (struct handoff *h; (h = list);) {
        list = h->next;
        MHD_upgrade_action(h->urh, MHD_UPGRADE_ACTION_CLOSE);
        free(h->extra);
        free(h);
    }
    uv_close((uv_handle_t *)&sh->async, on_shells_closed);
}

/* ---- the request ------------------------------------------------------------ */

/* As event streams are (events_stream.h): one token cannot take every
 * session of the master, or of a node (its agent runs 64), from the
 * others. The bound caller is over (written in buf), or NULL. */
static const char *
over_limit(master_t *m, const struct caller *caller, const char *node, char *buf, size_t len)
{
    size_t n = 0, mine = 0, here = 0;

    for (struct shell_sess *x = shells_of(m, false)->list; x; x = x->next) {
        bool own = !strcmp(x->caller.who, caller->who);
        n++;
        mine += own;
        here += own && !strcmp(x->node, node);
    }
    if (n >= MAX_SESSIONS)
        return "too many shell sessions on this master";
    if (mine < MAX_PER_CALLER && here < MAX_CALLER_NODE)
        return NULL;
    snprintf(buf, len, "this caller has %d shell sessions open%s: close one first",
             here >= MAX_CALLER_NODE ? MAX_CALLER_NODE : MAX_PER_CALLER,
             here >= MAX_CALLER_NODE ? " on the guest's node" : "");
    return buf;
}

void
h_guest_shell(master_t *m, struct http_req *req, const struct api_match *am)
{
    const char *up = httpd_header(req, "Upgrade"), *key = httpd_header(req, "Sec-WebSocket-Key");
    const char *ver = httpd_header(req, "Sec-WebSocket-Version");
    const char *proto = httpd_header(req, "Sec-WebSocket-Protocol"), *why = NULL;
    const char *console = httpd_query(req, "console");
    bool is_console = console && !strcmp(console, "true");
    struct msg msg = {.type = MSG_SHELL_OPEN};
    struct db_guest g = {0};
    struct guest_spec spec;
    struct guest_err busy;
    char accept[32], limit[128];
    int r;

    if (!up || !header_has(up, "websocket") || !key || strlen(key) != 24 || !ver ||
        strcmp(ver, "13") != 0 || accept_of(key, accept) < 0) {
        http_reply_errno(req, -EINVAL, NULL,
                         "a WebSocket upgrade (version 13) is required on this route");
        return;
    }
    r = guests_load(m, &am->caller, am->name, NULL, &g, &spec);
    if (r < 0) {
        http_reply_errno(req, r, NULL, r == -ENOENT ? "no such guest" : "cannot read the guest");
        return;
    }
    if (spec.flags & (SPEC_FLAG_PRIVATE | SPEC_FLAG_LOCK))
        r = -EBUSY,
        why = spec.flags & SPEC_FLAG_PRIVATE ? "guest is private: no shell" : "guest is locked";
    else if (g.observed != DB_OBS_RUNNING && !is_console)
        r = -EBUSY, why = "guest is not running";
    /* As an exec (guests.c, send_once): a move's or an export's last pass
     * freezes the guest, and the node refuses a shell then. */
    else if (!is_console && guests_busy(m, g.id, g.name, "open a shell once it ends", &busy) < 0)
        r = -EBUSY, why = busy.message;
    else if (!g.node || !master_node_connected(m, g.node))
        r = -EHOSTUNREACH, why = "the guest's node is not connected";
    else if (shells_of(m, true) == NULL)
        r = -ESHUTDOWN, why = "the master is shutting down";
    else
        r = parse_shell(req, &msg.u.shell, &why);
    if (r >= 0 && (why = over_limit(m, &am->caller, g.node, limit, sizeof(limit))))
        r = -EAGAIN;
    if (r < 0) {
        http_reply_errno(req, r, r == -EBUSY && why != busy.message ? "flags" : NULL, "%s", why);
        msg_clear(&msg);
        db_guest_clear(&g);
        return;
    }
    struct shells *sh = shells_of(m, false);
    struct shell_sess *s = xcalloc(1, sizeof(*s));
    s->m = m;
    s->id = ++sh->next_id;
    s->fd = -1;
    s->req = req;
    s->credit = PROTO_STREAM_WINDOW;
    s->ctl_left = CTL_PER_TICK;
    s->offered_protocol = proto && header_has(proto, "vfleet.v1");
    s->deadline = time_mono_ms() + OPEN_TIMEOUT_MS;
    strscpy(s->accept, accept, sizeof(s->accept));
    strscpy(s->node, g.node, sizeof(s->node));
    strscpy(s->guest, g.id, sizeof(s->guest));
    s->caller = am->caller;
    s->next = sh->list;
    sh->list = s;
    strscpy(msg.u.shell.id, g.id, sizeof(msg.u.shell.id));
    msg.u.shell.session = s->id;
    if (to_node(s, &msg) < 0) {
        /* Not sent: nothing to wait for, and nothing for the node to end. */
        http_reply_errno(req, s->lost, NULL, "the session could not be sent to node %s: %s", g.node,
                         s->lost == -EAGAIN ? "its link is full" : strerror(-s->lost));
        s->node_gone = true;
        sess_unlink(s);
        sess_free(s);
        msg_clear(&msg);
        db_guest_clear(&g);
        return;
    }
    s->ref = msg.id;
    log_info("guest=%s shell session %llu for %s on node=%s", g.name, (unsigned long long)s->id,
             am->caller.who, g.node);
    msg_clear(&msg);
    db_guest_clear(&g);
}
