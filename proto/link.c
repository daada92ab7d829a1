/* ZeroMQ send/receive of raw protocol frames (see link.h). */
#include "proto/link.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <czmq.h>
#include <zmq.h>

#include "common/log.h"
#include "common/mem.h"
#include "proto/msg.h"

struct link {
    zsock_t *sock;  /* czmq-tracked socket, so a leak is reported and closed at exit */
    void *handle;   /* its libzmq socket */
    bool router;    /* ROUTER (master) rather than DEALER (node) */
    char *endpoint; /* what the dealer connects to, for link_reconnect */
    bool draining;  /* link_reconnect: waiting for the old connection to go */
};

struct link_auth {
    zactor_t *actor; /* czmq's zauth actor, serving inproc://zeromq.zap.01 */
};

static pthread_once_t link_ctx_once = PTHREAD_ONCE_INIT;

static void
link_ctx_init(void)
{
    /* czmq installs SIGINT/SIGTERM handlers in zsys_init that would replace
     * libuv's; setting a NULL handler afterwards puts back the ones that were
     * there before. */
    zsys_init();
    zsys_handler_set(NULL);
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

/* Options both ends share: bounded queues, bounded frames, bounded shutdown,
 * and ZMTP heartbeats so a silently dead peer (host gone, NAT state lost) is
 * noticed and, on a dealer, reconnected. */
static int
link_common_options(void *handle)
{
    int64_t maxmsg = PROTO_MAX_FRAME;
    int r;

    if (zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0)
        return -zmq_errno();
    if ((r = link_setopt_int(handle, ZMQ_LINGER, LINK_LINGER_MS)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_SNDHWM, LINK_HWM)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_RCVHWM, LINK_HWM)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_HEARTBEAT_IVL, LINK_HEARTBEAT_MS)) < 0 ||
        (r = link_setopt_int(handle, ZMQ_HEARTBEAT_TIMEOUT, LINK_HEARTBEAT_TMO)) < 0)
        return r;
    return 0;
}

static link_t *
link_alloc(int type, int *err)
{
    link_t *l;
    zsock_t *sock;

    pthread_once(&link_ctx_once, link_ctx_init);
    sock = zsock_new(type);
    if (!sock) {
        /* zmq_socket fails with EMFILE (ZMQ_MAX_SOCKETS) or ETERM. */
        *err = zmq_errno() ? -zmq_errno() : -EMFILE;
        return NULL;
    }
    l = xcalloc(1, sizeof(*l));
    l->sock = sock;
    l->handle = zsock_resolve(sock);
    l->router = type == ZMQ_ROUTER;
    return l;
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

link_t *
link_new_dealer(const char *endpoint, const char *identity, int *err)
{
    return link_new_dealer_curve(endpoint, identity, NULL, err);
}

link_t *
link_new_dealer_curve(const char *endpoint, const char *identity, const struct link_keys *keys,
                      int *err)
{
    link_t *l;
    int r;

    if (!endpoint || !identity || !link_identity_valid(identity, strlen(identity)))
        return link_fail(NULL, err, -EINVAL);
    l = link_alloc(ZMQ_DEALER, &r);
    if (!l)
        return link_fail(NULL, err, r);
    if (keys && (r = link_set_keys(l->handle, keys, false)) < 0)
        return link_fail(l, err, r);

    if (zmq_setsockopt(l->handle, ZMQ_ROUTING_ID, identity, strlen(identity)) < 0)
        return link_fail(l, err, -zmq_errno());
    if ((r = link_common_options(l->handle)) < 0)
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
    log_debug("link: dealer identity=\"%s\" connecting to \"%s\"", identity, endpoint);
    return l;
}

/* Finishes a link_reconnect once the old connection is gone. With IMMEDIATE
 * the pipe to a connection belongs to its session, and zmq_disconnect ends
 * the session asynchronously: until then the socket still hands messages to
 * the dying pipe, where they are lost. So sends are refused until no pipe is
 * writable (POLLOUT clear) and only then the new connection is started. Every
 * link call steps this, and zwatch's prepare handle calls link_readable on
 * each loop iteration; the old pipe's end wakes the loop through ZMQ_FD. */
static int
link_step(link_t *l)
{
    int events = 0;
    size_t sz = sizeof(events);

    if (!l->draining)
        return 0;
    if (zmq_getsockopt(l->handle, ZMQ_EVENTS, &events, &sz) < 0)
        return -zmq_errno();
    if (events & ZMQ_POLLOUT)
        return -EAGAIN;
    l->draining = false;
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
    l = link_alloc(ZMQ_ROUTER, &r);
    if (!l)
        return link_fail(NULL, err, r);
    if (keys && (r = link_set_keys(l->handle, keys, true)) < 0)
        return link_fail(l, err, r);

    if ((r = link_common_options(l->handle)) < 0)
        return link_fail(l, err, r);
    /* MANDATORY: an unknown or full peer is an error the master sees, not a
     * silent drop. HANDOVER: a node that reconnects before the old connection
     * timed out takes over its identity instead of being refused. */
    if ((r = link_setopt_int(l->handle, ZMQ_ROUTER_MANDATORY, 1)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_ROUTER_HANDOVER, 1)) < 0)
        return link_fail(l, err, r);
    /* No ZMTP heartbeats on the router: libzmq 4.3.4 aborts the process
     * (stream_engine_base.cpp, assert !_io_error in out_event) when the
     * heartbeat timer fires on the old connection of a node that a handover
     * replaced and that then delivered late data (a healed partition);
     * fixed upstream in 19d3d9a9. The nodes keep theirs (they reconnect), the
     * master's registry judges liveness, and TCP keepalive reaps the dead. */
    if ((r = link_setopt_int(l->handle, ZMQ_HEARTBEAT_IVL, 0)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE, 1)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE_IDLE, 15)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE_INTVL, 5)) < 0 ||
        (r = link_setopt_int(l->handle, ZMQ_TCP_KEEPALIVE_CNT, 3)) < 0)
        return link_fail(l, err, r);
    if (zmq_bind(l->handle, endpoint) < 0)
        return link_fail(l, err, -zmq_errno());
    log_debug("link: router bound to \"%s\"", endpoint);
    return l;
}

void
link_destroy(link_t **lp)
{
    if (!lp || !*lp)
        return;
    zsock_destroy(&(*lp)->sock);
    free((*lp)->endpoint);
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
    if (l->router) {
        size_t plen = peer ? strlen(peer) : 0;

        if (!peer || !link_identity_valid(peer, plen))
            return -EINVAL;
        /* With ROUTER_MANDATORY the routing frame is where an unknown peer
         * (EHOSTUNREACH) or a full queue (EAGAIN) is reported; once it is
         * accepted the rest of the message is too, as messages are atomic. */
        if (zmq_send(l->handle, peer, plen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
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

int
link_recv(link_t *l, char *peer, size_t peer_len, void **buf, size_t *len)
{
    _cleanup_(link_msg_closep) zmq_msg_t id;
    _cleanup_(link_msg_closep) zmq_msg_t body;
    bool bad = false;

    zmq_msg_init(&id);
    zmq_msg_init(&body);
    if (!l || !buf || !len || (l->router && (!peer || peer_len == 0)))
        return -EINVAL;
    (void)link_step(l);

    if (l->router) {
        if (zmq_msg_recv(&id, l->handle, ZMQ_DONTWAIT) < 0)
            return -zmq_errno();
        /* A ROUTER always prefixes the routing id; a message without a body
         * part cannot come from the wire, but is checked rather than trusted. */
        if (!zmq_msg_more(&id)) {
            log_debug("link: message without a body from a peer, dropping");
            return -EBADMSG;
        }
        if (zmq_msg_recv(&body, l->handle, ZMQ_DONTWAIT) < 0)
            return -zmq_errno();
        if (!link_identity_valid(zmq_msg_data(&id), zmq_msg_size(&id)) ||
            zmq_msg_size(&id) >= peer_len) {
            log_debug("link: message from a peer with an invalid identity (%zu bytes), dropping",
                      zmq_msg_size(&id));
            bad = true;
        }
    } else if (zmq_msg_recv(&body, l->handle, ZMQ_DONTWAIT) < 0) {
        return -zmq_errno();
    }

    if (zmq_msg_more(&body)) {
        log_debug("link: message with more than one body frame, dropping");
        link_drain(l->handle);
        return -EBADMSG;
    }
    /* ZMQ_MAXMSGSIZE already drops the connection of a peer that sends more;
     * this keeps the contract even if the option were lost. */
    if (bad || zmq_msg_size(&body) > PROTO_MAX_FRAME)
        return -EBADMSG;

    if (l->router) {
        memcpy(peer, zmq_msg_data(&id), zmq_msg_size(&id));
        peer[zmq_msg_size(&id)] = '\0';
    } else if (peer && peer_len > 0) {
        peer[0] = '\0';
    }
    *len = zmq_msg_size(&body);
    *buf = xmalloc(*len);
    if (*len)
        memcpy(*buf, zmq_msg_data(&body), *len);
    return 0;
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
    (void)link_step(l);
    if (zmq_getsockopt(l->handle, ZMQ_EVENTS, &events, &sz) < 0)
        return false;
    return events & ZMQ_POLLIN;
}

void *
link_zsocket(link_t *l)
{
    return l ? l->handle : NULL;
}

link_auth_t *
link_auth_new(const char *client_certs_dir, int *err)
{
    link_auth_t *a;

    pthread_once(&link_ctx_once, link_ctx_init);
    a = xcalloc(1, sizeof(*a));
    a->actor = zactor_new(zauth, NULL);
    if (!a->actor) {
        free(a);
        if (err)
            *err = -ENOMEM;
        return NULL;
    }
    /* Each command is acknowledged, so connections accepted after this call
     * are already checked against the directory. */
    if (zstr_sendx(a->actor, "CURVE", client_certs_dir ? client_certs_dir : CURVE_ALLOW_ANY, NULL) <
            0 ||
        zsock_wait(a->actor) < 0) {
        link_auth_destroy(&a);
        if (err)
            *err = -EIO;
        return NULL;
    }
    return a;
}

void
link_auth_destroy(link_auth_t **ap)
{
    if (!ap || !*ap)
        return;
    zactor_destroy(&(*ap)->actor);
    free(*ap);
    *ap = NULL;
}
