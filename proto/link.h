/* The ZeroMQ transport of the wire protocol: raw frames in, raw frames out.
 *
 * The master binds one ROUTER socket, every node connects one DEALER socket
 * whose routing id is the node's name. One protocol message is one frame
 * (msg_encode's output); this layer neither looks into frames nor knows the
 * codec. docs/protocol-transport.md explains the socket options chosen.
 *
 * Context: every link in a process lives in czmq's shared process context
 * (zsys_init), because czmq's zauth ZAP handler only sees sockets of the same
 * context. The first link_new_* creates it, which is when libzmq starts its
 * I/O thread: a program that forks a single-threaded helper (the node's clone3
 * spawner) must fork before creating its first link. link_new_* disables
 * czmq's SIGINT/SIGTERM handlers so the program's own (libuv) handling stays
 * in charge.
 *
 * Threading: a link_t belongs to one thread (ZeroMQ sockets are not thread
 * safe); create the first link before starting other threads that use czmq.
 *
 * Errors: functions return >= 0 on success and -errno on failure. A peer never
 * makes a call crash or allocate more than PROTO_MAX_FRAME per frame. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define LINK_IDENTITY_MAX   255                     /* bytes in a routing id (ZMTP's limit) */
#define LINK_PEER_SIZE      (LINK_IDENTITY_MAX + 1) /* a peer buffer that fits any identity */
#define LINK_HWM            1000                    /* messages queued per peer and direction */
#define LINK_LINGER_MS      200   /* how long close waits to flush unsent messages */
#define LINK_RECONNECT_MS   100   /* first reconnect delay of a dealer */
#define LINK_RECONNECT_MAX  5000  /* reconnect delay cap (doubles up to it) */
#define LINK_HEARTBEAT_MS   5000  /* ZMTP PING interval on an idle connection */
#define LINK_HEARTBEAT_TMO  15000 /* no traffic for this long drops the connection */
#define LINK_CONNECT_TMO_MS 5000  /* TCP connect attempt timeout */

#define LINK_KEY_LEN 40 /* a CurveZMQ key in Z85 text, without the NUL */

typedef struct link link_t;
typedef struct link_auth link_auth_t;

/* CurveZMQ keys in Z85 text (as czmq's zcert_public_txt/zcert_secret_txt give
 * them); each LINK_KEY_LEN characters. A plain value; the strings are copied
 * into the socket at creation. */
struct link_keys {
    const char *public_key; /* this end's public key */
    const char *secret_key; /* this end's secret key */
    const char *server_key; /* dealer only: the master's public key */
};

/* Creates a node's DEALER socket and starts connecting it to endpoint
 * ("tcp://master:7070", "ipc:///path"). identity is the node's routing id:
 * 1..LINK_IDENTITY_MAX printable ASCII bytes without space. The connection is
 * made and remade in the background (backoff LINK_RECONNECT_MS doubling to
 * LINK_RECONNECT_MAX); while it is down, link_send returns -EAGAIN, nothing is
 * queued for a dead peer, and the application keeps and re-sends whatever is
 * unacknowledged. Returns the link, or NULL with *err set to -EINVAL (bad
 * identity or endpoint), -EPROTONOSUPPORT, or another -errno from libzmq. */
link_t *link_new_dealer(const char *endpoint, const char *identity, int *err);

/* The same with CurveZMQ: the connection is encrypted and the dealer
 * authenticates the master by keys->server_key. keys NULL means plaintext
 * (link_new_dealer). A wrong key gives -EINVAL. A handshake the master refuses
 * is a protocol error: libzmq does not retry it (see link_reconnect). */
link_t *link_new_dealer_curve(const char *endpoint, const char *identity,
                              const struct link_keys *keys, int *err);

/* Drops a dealer's connection and connects again. libzmq reconnects by
 * itself after a broken connection, but NOT after a protocol error: a frame
 * over PROTO_MAX_FRAME from the master, a malformed ZMTP frame or a failed
 * CURVE handshake ends that connection for good, and sends then fail with
 * -EAGAIN forever. The node agent therefore calls this when the master has
 * been silent (no message received, or no send accepted) for longer than its
 * liveness timeout. It does not block: link_send returns -EAGAIN until the
 * old connection is gone (messages handed to it would be lost) and the new
 * one is up; the old connection's end is noticed by any later call on the
 * link (zwatch makes one every loop iteration). Returns 0, -EINVAL on a
 * router, or -errno from libzmq. */
int link_reconnect(link_t *l);

/* Creates the master's ROUTER socket bound to endpoint ("tcp://0.0.0.0:7070").
 * Sending to a peer that is not connected fails with -EHOSTUNREACH; a node
 * that reconnects with the same identity takes over its routing id. Returns
 * the link, or NULL with *err set (-EADDRINUSE, -EINVAL, ...). */
link_t *link_new_router(const char *endpoint, int *err);

/* The same as a CurveZMQ server (keys->server_key unused). Which clients may
 * connect is decided by the process's ZAP handler, link_auth_new; without one
 * libzmq lets any client that knows the server's public key in. */
link_t *link_new_router_curve(const char *endpoint, const struct link_keys *keys, int *err);

/* Starts czmq's zauth actor (a thread; once per process, before the first
 * curve router accepts connections) to authenticate CurveZMQ clients of every
 * link in the process: only clients whose public certificate is in
 * client_certs_dir (zcert_save_public files; reloaded when the directory
 * changes) get in; NULL lets any client in (encryption without client
 * authentication). zauth of czmq 4.2 reports no User-Id, so the master cannot
 * yet tell from a message which key sent it: a listed client could claim
 * another node's identity. Returns NULL with *err set on failure. */
link_auth_t *link_auth_new(const char *client_certs_dir, int *err);

/* Stops the authenticator. NULL-safe; clears *ap. */
void link_auth_destroy(link_auth_t **ap);

/* Closes the socket (waiting at most LINK_LINGER_MS, at process exit, for
 * unsent messages) and frees the link. NULL-safe; clears *lp. */
void link_destroy(link_t **lp);

/* Queues one frame of len bytes (<= PROTO_MAX_FRAME) for peer without
 * blocking. peer is the node's identity on a router and must be NULL on a
 * dealer. The bytes are copied; buf stays the caller's. Returns 0, -EAGAIN
 * (no connection, or the peer's queue is full: try again later), -EHOSTUNREACH
 * (router: no such peer connected), -EMSGSIZE (len too large), -EINVAL. */
int link_send(link_t *l, const char *peer, const void *buf, size_t len);

/* Takes the next waiting message without blocking. On 0, *buf is a frame of
 * *len bytes (at most PROTO_MAX_FRAME) that the caller frees with free(), and
 * on a router peer holds the sender's identity (NUL-terminated; give it
 * LINK_PEER_SIZE bytes). On a dealer peer may be NULL (else it is set to "").
 * Returns -EAGAIN when nothing is waiting, -EBADMSG when a malformed message
 * (wrong number of frames, identity empty, too long for peer_len or not
 * printable) was read and dropped whole: call again for the next one. Other
 * -errno values come from libzmq (-ETERM, -EINTR). */
int link_recv(link_t *l, char *peer, size_t peer_len, void **buf, size_t *len);

/* The socket's ZMQ_FD: readable means "the socket's state may have changed",
 * not "a message is waiting" (edge-triggered). Do not read or close it. Use
 * zwatch.h to drive a link from libuv. Returns the fd or -errno. */
int link_fd(link_t *l);

/* Whether a message is waiting (ZMQ_EVENTS & ZMQ_POLLIN). Note that asking
 * consumes the ZMQ_FD edge, as any call on the socket may. */
bool link_readable(link_t *l);

/* The underlying libzmq socket, for zmq_poll and socket monitors; the link
 * keeps owning it (do not close it or change its options). */
void *link_zsocket(link_t *l);
