/* ZeroMQ send/receive of raw protocol frames (see link.h). */
#include "proto/link.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <unistd.h>

#include <zmq.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "proto/link_peers.h"
#include "proto/msg.h"
#include "proto/zap.h"

struct link {
    void *handle;                   /* its libzmq socket (link_socket) */
    bool router;                    /* ROUTER (master) rather than DEALER (node) */
    bool curve;                     /* CurveZMQ rather than plaintext */
    char *endpoint;                 /* what the dealer connects to, for link_reconnect */
    char *name;                     /* dealer: its name, the routing id's first part */
    bool draining;                  /* link_reconnect: waiting for the old connection to go */
    link_peers_t *peers;            /* router: names, routes, denials, connections */
    void *monitor;                  /* curve dealer: handshake events, for link_refused */
    bool refused;                   /* curve dealer: the master refused the handshake */
    void (*touch)(void *userdata);  /* link_set_touch: a call may have taken ZMQ_FD's edge */
    void *touch_data;               /* handed to touch */
    uint64_t empty_ms;              /* monotonic ms libzmq's queue was last found empty */
    struct link_held *held;         /* router: frames link_stash took out of libzmq, oldest first */
    struct link_held **held_tail;   /* where the next stashed frame goes */
    link_shrink_fn shrink;          /* link_set_shrink: makes a stashed frame smaller, or NULL */
    void *shrink_data;              /* handed to shrink */
    char last_peer[LINK_PEER_SIZE]; /* router: the sender of what link_recv returned last */
    int last_fd;                    /* the socket it came through, -1 unknown */
    ino_t last_ino;                 /* that socket's inode then */
};

/* A frame read by link_stash and not yet by link_recv: the sender's name
 * and the frame in one allocation, sized by what they hold. */
struct link_held {
    struct link_held *next; /* the next younger frame */
    uint64_t since;         /* monotonic ms it arrived at or after (link.empty_ms then) */
    int fd;                 /* the socket it came through, -1 unknown (link_violation) */
    ino_t ino;              /* that socket's inode then */
    size_t len;             /* bytes of the frame, after the name's NUL */
    char data[];            /* the name, NUL, then the frame */
};

/* Every call that reaches the socket other than link_recv and link_readable
 * (a send, a disconnect) processes its pending commands, and so may consume
 * the ZMQ_FD edge of messages that arrived meanwhile: the watcher must look
 * again. */
static void
link_touched(link_t *l)
{
    if (l->touch)
        l->touch(l->touch_data);
}

void
link_set_touch(link_t *l, void (*fn)(void *userdata), void *userdata)
{
    if (!l)
        return;
    l->touch = fn;
    l->touch_data = userdata;
}

static bool
link_identity_valid(const void *id, size_t len)
{
    const unsigned char *p = id;

    /* Printable ASCII only: identities end up in logs and in C strings, and
     * libzmq's own generated ids start with a zero byte, so they are refused. */
    if (len == 0 || len > LINK_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (p[i] <= 0x20 || p[i] >= 0x7f)
            return false;
    return true;
}

static int
link_setopt_int(void *handle, int option, int value)
{
    if (zmq_setsockopt(handle, option, &value, sizeof(value)) < 0)
        return -zmq_errno();
    return 0;
}

/* Options both ends share: bounded frames, bounded sending queues, bounded
 * shutdown, ZMTP heartbeats and TCP keepalive so a silently dead peer (host
 * gone, NAT state lost) is noticed and, on a dealer, reconnected.
 *
 * The receiving queue is unlimited (RCVHWM 0), on purpose: in libzmq 4.3.4 a
 * connection whose receiving queue is full stops reading, and if its peer
 * then resets it, the next ZMTP heartbeat (its own timer, or a PING the
 * peer had sent) asserts !_io_error in stream_engine_base.cpp and aborts the
 * process. A queue that cannot fill never stops reading; the router bounds
 * what a peer may send instead (LINK_FLOOD_MSGS, link_peers.c). */
static bool link_zmtp_heartbeats = true; /* link_set_zmtp_heartbeats */

void
link_set_zmtp_heartbeats(bool on)
{
    link_zmtp_heartbeats = on;
}

static int
link_common_options(void *handle)
{
    int64_t maxmsg = PROTO_MAX_FRAME;
    int r;

    if (zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0)
        return -zmq_errno();
    if ((r = link_setopt_int(handle, ZMQ_LINGER, LINK_LINGER_MS)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_SNDHWM, LINK_HWM)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_RCVHWM, 0)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_HEARTBEAT_IVL,
                             link_zmtp_heartbeats ? LINK_HEARTBEAT_MS : 0)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_HEARTBEAT_TIMEOUT, LINK_HEARTBEAT_TMO)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_TCP_KEEPALIVE, 1)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_TCP_KEEPALIVE_IDLE, 30)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_TCP_KEEPALIVE_INTVL, 10)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_TCP_KEEPALIVE_CNT, 3)) < 0)
        return r;
    return 0;
}

static link_t *
link_alloc(int type, int *err)
{
    link_t *l;
    void *h = link_socket(type);

    if (!h) {
        *err = errno ? -errno : -EMFILE;
        return NULL;
    }
    l = xcalloc(1, sizeof(*l));
    l->handle = h;
    l->router = type == ZMQ_ROUTER;
    l->empty_ms = time_mono_ms();
    l->held_tail = &l->held;
    l->last_fd = -1;
    return l;
}

/* Frees the stashed frames of peer (all of them when peer is NULL). */
static void
link_held_free(link_t *l, const char *peer)
{
    struct link_held **pp = &l->held;

    while (*pp) {
        struct link_held *h = *pp;
        if (peer && strcmp(h->data, peer) != 0) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        free(h);
    }
    /* The tail is wherever the list now ends. */
    l->held_tail = &l->held;
    while (*l->held_tail)
        l->held_tail = &(*l->held_tail)->next;
}

static link_t *
link_fail(link_t *l, int *err, int r)
{
    link_destroy(&l);
    if (err)
        *err = r;
    return NULL;
}

static bool
link_key_valid(const char *key)
{
    uint8_t bin[32];

    return key && strlen(key) == LINK_KEY_LEN && zmq_z85_decode(bin, key) != NULL;
}

static int
link_set_keys(void *handle, const struct link_keys *keys, bool server)
{
    if (!link_key_valid(keys->public_key) || !link_key_valid(keys->secret_key) ||
        (!server && !link_key_valid(keys->server_key)))
        return -EINVAL;
    if (server && link_setopt_int(handle, ZMQ_CURVE_SERVER, 1) < 0)
        return -zmq_errno();
    if (zmq_setsockopt(handle, ZMQ_CURVE_PUBLICKEY, keys->public_key, LINK_KEY_LEN) < 0 ||
        zmq_setsockopt(handle, ZMQ_CURVE_SECRETKEY, keys->secret_key, LINK_KEY_LEN) < 0)
        return -zmq_errno();
    if (!server && zmq_setsockopt(handle, ZMQ_CURVE_SERVERKEY, keys->server_key, LINK_KEY_LEN) < 0)
        return -zmq_errno();
    return 0;
}

/* ---- dealer ------------------------------------------------------------ */

static bool
link_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    return n > 0 && n <= LINK_NAME_MAX && link_identity_valid(name, n) && !strchr(name, '/');
}

/* "name/<random hex>": a routing id no other peer can guess, new for every
 * connection the application starts (libzmq's own reconnects keep it). */
static int
link_set_routing_id(link_t *l)
{
    char id[LINK_IDENTITY_MAX + 1];
    uint8_t rnd[LINK_NONCE_LEN / 2];
    size_t n;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return -errno;
    n = (size_t)snprintf(id, sizeof(id), "%s/", l->name);
    for (size_t i = 0; i < sizeof(rnd); i++)
        n += (size_t)snprintf(id + n, sizeof(id) - n, "%02x", rnd[i]);
    if (zmq_setsockopt(l->handle, ZMQ_ROUTING_ID, id, n) < 0)
        return -zmq_errno();
    return 0;
}

/* A curve dealer watches its handshakes so it can tell a refused key from a
 * master that is down (link_refused). Our end of the monitor has an
 * unlimited queue: libzmq sends monitor events blocking from its I/O thread. */
static int
link_watch_handshakes(link_t *l)
{
    char ep[64];
    int hwm = 0;

    uint64_t rnd = 0;
    /* Random, not the address: see link_peers_new. */
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint64_t)(uintptr_t)l ^ time_mono_ns();
    snprintf(ep, sizeof(ep), "inproc://vf-link-mon-%016llx", (unsigned long long)rnd);
    l->monitor = link_socket(ZMQ_PAIR);
    if (!l->monitor ||
        zmq_socket_monitor(l->handle, ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) < 0 ||
        zmq_setsockopt(l->monitor, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
        zmq_connect(l->monitor, ep) < 0)
        return zmq_errno() ? -zmq_errno() : -ENOMEM;
    return 0;
}

static void
link_read_handshakes(link_t *l)
{
    void *h = l->monitor;
    uint8_t ev[6];
    char ep[256];
    uint16_t event;

    while (h && zmq_recv(h, ev, sizeof(ev), ZMQ_DONTWAIT) == (int)sizeof(ev)) {
        (void)zmq_recv(h, ep, sizeof(ep), ZMQ_DONTWAIT);
        memcpy(&event, ev, sizeof(event));
        l->refused = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    }
}

link_t *
link_new_dealer(const char *endpoint, const char *name, int *err)
{
    return link_new_dealer_curve(endpoint, name, NULL, err);
}

link_t *
link_new_dealer_curve(const char *endpoint, const char *name, const struct link_keys *keys,
                      int *err)
{
    link_t *l;
    int r;

    if (!endpoint || !link_name_valid(name))
        return link_fail(NULL, err, -EINVAL);
    l = link_alloc(ZMQ_DEALER, &r);
    if (!l)
        return link_fail(NULL, err, r);
    l->name = xstrdup(name);
    l->curve = keys != NULL;
    if (keys &&
        ((r = link_set_keys(l->handle, keys, false)) < 0 || (r = link_watch_handshakes(l)) < 0))
        return link_fail(l, err, r);
    if ((r = link_set_routing_id(l)) < 0 || (r = link_common_options(l->handle)) < 0)
        return link_fail(l, err, r);
    /* IMMEDIATE: queue only on a completed connection, so while the master is
     * unreachable a send fails with EAGAIN instead of piling stale messages
     * that would be delivered (out of date, and duplicated by the
     * application's own re-send of everything unacknowledged) on reconnect.
     * The application's outbox is the single queue that survives outages. */
    if ((r = link_setopt_int(l->handle, ZMQ_IMMEDIATE, 1)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_RECONNECT_IVL, LINK_RECONNECT_MS)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_RECONNECT_IVL_MAX, LINK_RECONNECT_MAX)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_CONNECT_TIMEOUT, LINK_CONNECT_TMO_MS)) < 0)
        return link_fail(l, err, r);
    if (zmq_connect(l->handle, endpoint) < 0)
        return link_fail(l, err, -zmq_errno());
    l->endpoint = xstrdup(endpoint);
    log_debug("link: dealer \"%s\" connecting to \"%s\"%s", name, endpoint,
              keys ? " with CurveZMQ" : "");
    return l;
}

/* Finishes a link_reconnect once the old connection is gone. With IMMEDIATE
 * the pipe to a connection belongs to its session, and zmq_disconnect ends
 * the session asynchronously: until then the socket still hands messages to
 * the dying pipe, where they are lost. So sends are refused until no pipe is
 * writable (POLLOUT clear) and only then the new connection is started, with
 * a new routing id. Every link call steps this, and zwatch's prepare handle
 * calls link_readable on each loop iteration; the old pipe's end wakes the
 * loop through ZMQ_FD. */
static int
link_step(link_t *l)
{
    int events = 0, r;
    size_t sz = sizeof(events);

    link_read_handshakes(l);
    if (!l->draining)
        return 0;
    /* Until the old pipe is gone, every loop iteration steps again. */
    link_touched(l);
    if (zmq_getsockopt(l->handle, ZMQ_EVENTS, &events, &sz) < 0)
        return -zmq_errno();
    if (events & ZMQ_POLLOUT)
        return -EAGAIN;
    l->draining = false;
    l->refused = false;
    if ((r = link_set_routing_id(l)) < 0)
        return r;
    if (zmq_connect(l->handle, l->endpoint) < 0)
        return -zmq_errno();
    log_debug("link: reconnecting to \"%s\"", l->endpoint);
    return 0;
}

int
link_reconnect(link_t *l)
{
    int r;

    if (!l || l->router)
        return -EINVAL;
    link_touched(l);
    if (!l->draining) {
        /* A session that ended on a protocol error is still listed under its
         * endpoint; disconnecting removes it (ENOENT if it is already gone). */
        if (zmq_disconnect(l->handle, l->endpoint) < 0 && zmq_errno() != ENOENT)
            return -zmq_errno();
        l->draining = true;
    }
    r = link_step(l);
    return r == -EAGAIN ? 0 : r;
}

bool
link_refused(link_t *l)
{
    if (!l || l->router)
        return false;
    link_read_handshakes(l);
    return l->refused;
}

/* ---- router ------------------------------------------------------------ */

link_t *
link_new_router(const char *endpoint, int *err)
{
    return link_new_router_curve(endpoint, NULL, err);
}

link_t *
link_new_router_curve(const char *endpoint, const struct link_keys *keys, int *err)
{
    link_t *l;
    int r;

    if (!endpoint)
        return link_fail(NULL, err, -EINVAL);
    /* Without a ZAP handler libzmq lets every client in: refuse to serve
     * CurveZMQ that way rather than pretend to authenticate. */
    if (keys && !zap_running())
        return link_fail(NULL, err, -ENOTCONN);
    l = link_alloc(ZMQ_ROUTER, &r);
    if (!l)
        return link_fail(NULL, err, r);
    l->curve = keys != NULL;
    if (keys && ((r = link_set_keys(l->handle, keys, true)) < 0 ||
                 zmq_setsockopt(l->handle, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) < 0))
        return link_fail(l, err, r < 0 ? r : -zmq_errno());
    if ((r = link_common_options(l->handle)) < 0)
        return link_fail(l, err, r);
    /* MANDATORY: an unknown or full peer is an error the master sees, not a
     * silent drop. No HANDOVER: libzmq would take the routing id away from a
     * live connection, whose engine then has nowhere to put what it reads
     * (the abort of link_common_options); a dealer's routing id is new for
     * each connection it starts, so a node never needs one taken over. A
     * short handshake limit frees connections that never complete one. */
    if ((r = link_setopt_int(l->handle, ZMQ_ROUTER_MANDATORY, 1)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_ROUTER_HANDOVER, 0)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_HANDSHAKE_IVL, LINK_HANDSHAKE_MS)) < 0)
        return link_fail(l, err, r);
    l->peers = link_peers_new(l->handle, &r);
    if (!l->peers)
        return link_fail(l, err, r);
    /* No ZMTP heartbeats on the router: libzmq 4.3.4 aborts the process
     * (stream_engine_base.cpp, assert !_io_error in out_event) when the
     * heartbeat timer fires on the old connection of a node that a handover
     * replaced and that then delivered late data (a healed partition); an
     * upstream early return (19d3d9a9, libzmq PR #4852) was not merged.
     * The nodes keep theirs (they reconnect), the
     * master's registry judges liveness, and TCP keepalive reaps the dead. */
    if ((r = link_setopt_int(l->handle, ZMQ_HEARTBEAT_IVL, 0)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE, 1)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE_IDLE, 15)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE_INTVL, 5)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE_CNT, 3)) < 0)
        return link_fail(l, err, r);
    if (zmq_bind(l->handle, endpoint) < 0)
        return link_fail(l, err, -zmq_errno());
    log_debug("link: router bound to \"%s\"%s", endpoint, keys ? " with CurveZMQ" : "");
    return l;
}

bool
link_is_curve(const link_t *l)
{
    return l && l->curve;
}

void
link_destroy(link_t **lp)
{
    if (!lp || !*lp)
        return;
    /* The monitors go before the socket they watch, each stopped before its
     * receiving end is closed (libzmq sends monitor events blocking). */
    link_held_free(*lp, NULL);
    link_peers_destroy(&(*lp)->peers);
    if ((*lp)->monitor) {
        (void)zmq_socket_monitor((*lp)->handle, NULL, 0);
        link_socket_close(&(*lp)->monitor);
    }
    link_socket_close(&(*lp)->handle);
    free((*lp)->endpoint);
    free((*lp)->name);
    free(*lp);
    *lp = NULL;
}

int
link_send(link_t *l, const char *peer, const void *buf, size_t len)
{
    if (!l || (len && !buf))
        return -EINVAL;
    if (len > PROTO_MAX_FRAME)
        return -EMSGSIZE;
    link_touched(l);
    if (l->router) {
        const void *id;
        size_t idlen;

        if (!peer || !link_identity_valid(peer, strlen(peer)))
            return -EINVAL;
        if (link_peers_route(l->peers, peer, &id, &idlen) < 0)
            return -EHOSTUNREACH;
        /* With ROUTER_MANDATORY the routing frame is where an unknown peer
         * (EHOSTUNREACH) or a full queue (EAGAIN) is reported; once it is
         * accepted the rest of the message is too, as messages are atomic. */
        if (zmq_send(l->handle, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
            return -zmq_errno();
    } else if (peer) {
        return -EINVAL;
    } else if (l->draining) {
        int r = link_step(l);
        if (r < 0 || l->draining)
            return r < 0 ? r : -EAGAIN;
    }
    if (zmq_send(l->handle, buf, len, ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    return 0;
}

/* Reads and drops what is left of a multipart message. Parts of a message
 * arrive together, so this never waits. */
static void
link_drain(void *handle)
{
    int more = 1;

    while (more) {
        zmq_msg_t part;

        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            return;
        }
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
}

static void
link_msg_closep(zmq_msg_t *m)
{
    zmq_msg_close(m);
}

/* Who sent body through routing id id, into name (size n): the ZAP User-Id
 * on a curve router, else the routing id up to its first '/'. -EBADMSG for
 * an invalid one, -ENOBUFS for a valid one that does not fit n. The User-Id is
 * read from the body: libzmq 4.3.4 loses the routing id frame's metadata
 * when the message was prefetched (libzmq commit 74529d97, 4.3.5), which a
 * ZMQ_EVENTS query such as zwatch's does. */
static int
link_sender(link_t *l, zmq_msg_t *id, zmq_msg_t *body, char *name, size_t n)
{
    size_t len;

    if (l->curve) {
        const char *uid = zmq_msg_gets(body, "User-Id");
        len = uid ? strlen(uid) : 0;
        if (!uid || !link_identity_valid(uid, len))
            return -EBADMSG;
        if (len >= n)
            return -ENOBUFS;
        memcpy(name, uid, len + 1);
        return 0;
    }
    const char *p = zmq_msg_data(id), *slash;
    len = zmq_msg_size(id);
    if (!link_identity_valid(p, len))
        return -EBADMSG;
    slash = memchr(p, '/', len);
    if (slash)
        len = (size_t)(slash - p);
    if (len == 0)
        return -EBADMSG;
    if (len >= n)
        return -ENOBUFS;
    memcpy(name, p, len);
    name[len] = '\0';
    return 0;
}

/* A router's message: the routing id frame, then exactly one body frame. */
static int
link_recv_router(link_t *l, zmq_msg_t *id, zmq_msg_t *body, char *peer, size_t peer_len)
{
    if (zmq_msg_recv(id, l->handle, ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    /* A ROUTER always prefixes the routing id; a message without a body
     * part cannot come from the wire, but is checked rather than trusted. */
    if (!zmq_msg_more(id)) {
        log_debug("link: message without a body from a peer, dropping");
        return -EBADMSG;
    }
    if (zmq_msg_recv(body, l->handle, ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    int r = link_sender(l, id, body, peer, peer_len);
    if (zmq_msg_more(body)) {
        link_drain(l->handle);
        /* No node sends one (link_send sends one frame): under a valid
         * name a protocol violation of that name's, which may cost it the
         * connection; else junk, below. */
        if (r == 0) {
            uint64_t now = time_mono_ms();
            int fd = zmq_msg_get(body, ZMQ_SRCFD);
            log_debug("link: message of several frames from \"%s\", dropping", peer);
            const char *addr = zmq_msg_gets(body, "Peer-Address");
            (void)link_peers_violation(l->peers, peer, fd,
                                       link_peers_conn_ino(l->peers, fd, addr, now),
                                       "a message of several frames", now);
            return -EBADMSG;
        }
        log_debug("link: message with more than one body frame, dropping");
    }
    if (r < 0) {
        log_debug("link: message from a peer with an invalid identity (%zu bytes), dropping",
                  zmq_msg_size(id));
        /* No node sends that: its connection is shut, so that what it sends
         * costs a new connection each time, not one read per message. (A
         * name too long for the caller's buffer is the caller's problem.) */
        if (r == -EBADMSG)
            (void)link_peers_junk(l->peers, zmq_msg_get(body, ZMQ_SRCFD),
                                  zmq_msg_gets(body, "Peer-Address"), time_mono_ms());
        return -EBADMSG;
    }
    struct link_origin o = {
        .name = peer,
        .id = zmq_msg_data(id),
        .id_len = zmq_msg_size(id),
        .fd = zmq_msg_get(body, ZMQ_SRCFD),
        /* The connection's metadata outlives none of its messages and is
         * shared by all of them: its address tells connections apart. */
        .conn = zmq_msg_gets(body, "Peer-Address"),
        .since = l->empty_ms,
    };
    r = link_peers_seen(l->peers, &o, time_mono_ms());
    if (r == -ECONNRESET) {
        /* Cut for flooding: what it had stashed goes too. */
        link_held_free(l, peer);
        r = -EBADMSG;
    }
    return r;
}

/* Remembers where the message link_recv hands over came from, for
 * link_violation. */
static void
link_set_last(link_t *l, const char *peer, int fd, ino_t ino)
{
    /* A valid name: at most LINK_IDENTITY_MAX bytes. */
    memcpy(l->last_peer, peer, strlen(peer) + 1);
    l->last_fd = fd;
    l->last_ino = ino;
}

/* link_recv's part for a stashed frame: the oldest one, handed over. */
static int
link_held_pop(link_t *l, char *peer, size_t peer_len, void **buf, size_t *len)
{
    struct link_held *h = l->held;

    l->held = h->next;
    if (!l->held)
        l->held_tail = &l->held;
    /* A name that does not fit is refused, as link_sender refuses it for
     * a frame read directly: cut short it would be another peer's. */
    if (strlen(h->data) >= peer_len) {
        free(h);
        link_peers_stats(l->peers)->dropped++;
        return -EBADMSG;
    }
    memcpy(peer, h->data, strlen(h->data) + 1);
    link_set_last(l, peer, h->fd, h->ino);
    *len = h->len;
    *buf = xmalloc(h->len ? h->len : 1);
    memcpy(*buf, h->data + strlen(h->data) + 1, h->len);
    free(h);
    return 0;
}

void
link_set_shrink(link_t *l, link_shrink_fn fn, void *userdata)
{
    if (!l)
        return;
    l->shrink = fn;
    l->shrink_data = userdata;
}

int
link_stash(link_t *l, unsigned max)
{
    unsigned n = 0;
    int r = 0;

    if (!l || !l->router)
        return -EINVAL;
    link_touched(l);
    /* A dropped message counts against max too (as against zwatch's
     * budget): a peer with a junk identity is under no flood limit, and its
     * stream kept this loop going for as long as it sent. */
    for (unsigned taken = 0; taken < max; taken++) {
        _cleanup_(link_msg_closep) zmq_msg_t id;
        _cleanup_(link_msg_closep) zmq_msg_t body;
        char peer[LINK_PEER_SIZE];

        zmq_msg_init(&id);
        zmq_msg_init(&body);
        (void)link_step(l);
        /* It arrived after libzmq's queue was last found empty. */
        uint64_t since = l->empty_ms;
        r = link_recv_router(l, &id, &body, peer, sizeof(peer));
        if (r == -EBADMSG) {
            link_peers_stats(l->peers)->dropped++;
            continue;
        }
        if (r < 0)
            break;
        size_t len = zmq_msg_size(&body), name = strlen(peer) + 1;
        if (len > PROTO_MAX_FRAME) {
            link_peers_stats(l->peers)->dropped++;
            continue;
        }
        /* The shrink works on the copy, so what stays is sized by what it
         * kept: a report of 150 KB that will be skipped keeps its header. */
        struct link_held *h = xmalloc(sizeof(*h) + name + len);
        memcpy(h->data, peer, name);
        memcpy(h->data + name, zmq_msg_data(&body), len);
        h->len = len;
        h->since = since;
        h->fd = -1;
        h->ino = 0;
        (void)link_peers_last(l->peers, peer, &h->fd, &h->ino);
        if (l->shrink) {
            size_t kept = l->shrink(peer, h->data + name, len, l->shrink_data);
            if (kept == LINK_SHRINK_DROP) {
                free(h);
                link_peers_stats(l->peers)->dropped++;
                continue;
            }
            if (kept < len) {
                link_peers_stats(l->peers)->shrunk_bytes += len - kept;
                h->len = kept;
                h = xrealloc(h, sizeof(*h) + name + kept);
            }
        }
        h->next = NULL;
        *l->held_tail = h;
        l->held_tail = &h->next;
        link_peers_stats(l->peers)->stashed++;
        n++;
    }
    /* libzmq's queue is empty; the stashed frames keep their own age
     * (link_backlog_ms: a stashed frame is not read yet). */
    if (r == -EAGAIN)
        l->empty_ms = time_mono_ms();
    return r < 0 && r != -EAGAIN && r != -EBADMSG ? r : (int)n;
}

int
link_recv(link_t *l, char *peer, size_t peer_len, void **buf, size_t *len)
{
    _cleanup_(link_msg_closep) zmq_msg_t id;
    _cleanup_(link_msg_closep) zmq_msg_t body;
    int r;

    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (!l || !buf || !len || (l->router && (!peer || peer_len == 0)))
        return -EINVAL;
    if (l->held)
        return link_held_pop(l, peer, peer_len, buf, len);
    (void)link_step(l);

    if (l->router) {
        r = link_recv_router(l, &id, &body, peer, peer_len);
        if (r < 0) {
            if (r == -EBADMSG)
                link_peers_stats(l->peers)->dropped++;
            if (r == -EAGAIN)
                l->empty_ms = time_mono_ms();
            return r;
        }
        int fd = -1;
        ino_t ino = 0;
        (void)link_peers_last(l->peers, peer, &fd, &ino);
        link_set_last(l, peer, fd, ino);
    } else {
        if (zmq_msg_recv(&body, l->handle, ZMQ_DONTWAIT) < 0) {
            if (zmq_errno() == EAGAIN)
                l->empty_ms = time_mono_ms();
            return -zmq_errno();
        }
        if (zmq_msg_more(&body)) {
            log_debug("link: message with more than one body frame, dropping");
            link_drain(l->handle);
            return -EBADMSG;
        }
        if (peer && peer_len > 0)
            peer[0] = '\0';
    }
    /* ZMQ_MAXMSGSIZE already drops the connection of a peer that sends more;
     * this keeps the contract even if the option were lost. */
    if (zmq_msg_size(&body) > PROTO_MAX_FRAME)
        return -EBADMSG;
    *len = zmq_msg_size(&body);
    *buf = xmalloc(*len ? *len : 1);
    if (*len)
        memcpy(*buf, zmq_msg_data(&body), *len);
    return 0;
}

int
link_kick(link_t *l, const char *peer)
{
    if (!l || !l->router || !peer)
        return -EINVAL;
    link_touched(l);
    return link_peers_kick(l->peers, peer);
}

int
link_violation(link_t *l, const char *peer)
{
    int fd = -1;
    ino_t ino = 0;

    if (!l || !l->router || !peer || !link_identity_valid(peer, strlen(peer)))
        return -EINVAL;
    link_touched(l);
    /* The connection of peer's message link_recv returned last; a peer
     * whose message it was not (the application's mistake) has its
     * violation counted, and the connection its latest message came
     * through answers for it. */
    if (strcmp(l->last_peer, peer) == 0) {
        fd = l->last_fd;
        ino = l->last_ino;
    } else {
        (void)link_peers_last(l->peers, peer, &fd, &ino);
    }
    return link_peers_violation(l->peers, peer, fd, ino, "a frame that is not a message",
                                time_mono_ms());
}

int
link_deny(link_t *l, const char *peer, bool deny)
{
    if (!l || !l->router || !peer || !link_identity_valid(peer, strlen(peer)))
        return -EINVAL;
    link_touched(l);
    /* What a denied peer sent before is not delivered after: link_recv
     * would have dropped it unread, so the stash does too. */
    if (deny)
        link_held_free(l, peer);
    return link_peers_deny(l->peers, peer, deny);
}

void
link_tick(link_t *l, uint64_t now_ms)
{
    if (l && l->router) {
        /* Every message that arrived before now_ms - backlog has been read:
         * a connection is judged silent only up to then, never because this
         * process is the one behind. */
        uint64_t backlog = link_backlog_ms(l);
        link_peers_tick(l->peers, now_ms, now_ms > backlog ? now_ms - backlog : 0);
    }
}

void
link_get_stats(const link_t *l, struct link_stats *out)
{
    *out = (struct link_stats){0};
    if (l && l->router)
        *out = *link_peers_stats(l->peers);
}

int
link_get_peer_stats(const link_t *l, const char *peer, struct link_peer_stats *out)
{
    *out = (struct link_peer_stats){0};
    if (!l || !l->router || !peer)
        return -EINVAL;
    return link_peers_peer_stats(l->peers, peer, out);
}

int
link_fd(link_t *l)
{
    int fd;
    size_t sz = sizeof(fd);

    if (!l)
        return -EINVAL;
    if (zmq_getsockopt(l->handle, ZMQ_FD, &fd, &sz) < 0)
        return -zmq_errno();
    return fd;
}

bool
link_readable(link_t *l)
{
    int events = 0;
    size_t sz = sizeof(events);

    if (!l)
        return false;
    if (l->held)
        return true;
    (void)link_step(l);
    if (zmq_getsockopt(l->handle, ZMQ_EVENTS, &events, &sz) < 0)
        return false;
    if (!(events & ZMQ_POLLIN))
        l->empty_ms = time_mono_ms();
    return events & ZMQ_POLLIN;
}

uint64_t
link_backlog_ms(link_t *l)
{
    uint64_t now = time_mono_ms(), since;

    if (!l)
        return 0;
    /* Asking takes the fd's edge: the watcher must look again. */
    link_touched(l);
    if (!link_readable(l))
        return 0;
    /* The oldest unread message arrived after the oldest stashed frame's
     * since, or, with none stashed, after libzmq's queue was last empty.
     * What the stash dropped (junk, a flood) is read: it keeps no backlog
     * growing once the stash has read past it. */
    since = l->held ? l->held->since : l->empty_ms;
    return now > since ? now - since : 0;
}

void *
link_zsocket(link_t *l)
{
    return l ? l->handle : NULL;
}
