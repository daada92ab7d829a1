/* The ZeroMQ transport of the wire protocol: raw frames in, raw frames out.
 *
 * The master binds one ROUTER socket per endpoint, every node connects one
 * DEALER socket. One protocol message is one frame (msg_encode's output);
 * this layer neither looks into frames nor knows the codec.
 * docs/protocol-transport.md explains the socket options chosen.
 *
 * Who a peer is: on a CurveZMQ router (link_new_router_curve) a peer is the
 * User-Id the process's ZAP handler (proto/zap.h) gave its public key; on a
 * plaintext router (ipc://, or an explicitly insecure tcp://) it is the name
 * the peer claims in its routing id. A dealer's routing id is its name plus
 * a random part that changes on every link_reconnect ("h1/3f9c..."), so the
 * routing id is not something another peer can guess and take over; the
 * router reaches a peer by name through the routing id of the connection
 * that peer last spoke through.
 *
 * Context: every link in a process lives in one libzmq context of the
 * process, as do the ZAP handler and the data channel's sender. The first
 * link_new_* (or link_context_init, link_socket) creates it, which is when
 * libzmq starts its I/O threads: a program that forks a single-threaded
 * helper (the node's clone3 spawner) must fork before creating its first
 * link. libzmq installs no signal handlers; the program's own (libuv) handle
 * SIGINT/SIGTERM. At exit the context is terminated (what sockets closed
 * with a linger still have to send goes out); sockets left open are
 * reported and closed first, so that never hangs.
 *
 * Threading: a link_t belongs to one thread (ZeroMQ sockets are not thread
 * safe); the context and link_socket/link_socket_close are thread-safe.
 *
 * Errors: functions return >= 0 on success and -errno on failure. A peer never
 * makes a call crash or allocate more than PROTO_MAX_FRAME per frame. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINK_IDENTITY_MAX   255                     /* bytes in a routing id (ZMTP's limit) */
#define LINK_PEER_SIZE      (LINK_IDENTITY_MAX + 1) /* a peer buffer that fits any identity */
#define LINK_NONCE_LEN      16 /* hex digits of a dealer's random routing id part */
#define LINK_NAME_MAX       (LINK_IDENTITY_MAX - 1 - LINK_NONCE_LEN) /* a dealer's name */
#define LINK_HWM            1000  /* messages queued per peer for sending */
#define LINK_HANDSHAKE_MS   5000  /* a connection must finish its handshake within this */
#define LINK_LINGER_MS      200   /* how long close waits to flush unsent messages */
#define LINK_RECONNECT_MS   100   /* first reconnect delay of a dealer */
#define LINK_RECONNECT_MAX  5000  /* reconnect delay cap (doubles up to it) */
#define LINK_HEARTBEAT_MS   5000  /* ZMTP PING interval on an idle connection */
#define LINK_HEARTBEAT_TMO  15000 /* no traffic for this long drops the connection */
#define LINK_CONNECT_TMO_MS 5000  /* TCP connect attempt timeout */
#define LINK_IO_THREADS     2     /* libzmq I/O threads of the process's context */

#define LINK_KEY_LEN      40    /* a CurveZMQ key in Z85 text, without the NUL */
#define LINK_MAX_PEERS    65536 /* names a router keeps routes for (and denies) */
#define LINK_FLOOD_MSGS   20000 /* messages one peer may send per LINK_FLOOD_MS, by arrival */
#define LINK_FLOOD_MS     1000  /* the flood window */
#define LINK_IDLE_MS      30000 /* a connection must say something within this */
#define LINK_VIOLATIONS   10    /* protocol violations a name may commit per LINK_VIOLATION_MS */
#define LINK_VIOLATION_MS 10000 /* the violation window */

typedef struct link link_t;

/* CurveZMQ keys in Z85 text (as zmq_curve_keypair gives them); each
 * LINK_KEY_LEN characters. A plain value; the strings are copied into the
 * socket at creation. */
struct link_keys {
    const char *public_key; /* this end's public key */
    const char *secret_key; /* this end's secret key */
    const char *server_key; /* dealer only: the master's public key */
};

/* Creates the process's libzmq context once (link_new_*, link_socket and
 * zap_new call it; calling it again does nothing) and returns it, or NULL
 * when libzmq could not create it. */
void *link_context_init(void);

/* A new libzmq socket of type in that context, with linger 0 (close drops
 * what it has not sent unless the caller sets a linger), tracked until
 * link_socket_close so one left open is reported and closed at exit.
 * Returns NULL with errno (EMFILE: ZMQ_MAX_SOCKETS reached). */
void *link_socket(int type);
/* Closes a link_socket socket. NULL-safe; clears *sp. */
void link_socket_close(void **sp);
/* Sockets made by link_socket and not closed yet (for tests). */
size_t link_open_sockets(void);
/* The sockets the context allows (libzmq's default is 1024); takes effect
 * only before it is created. */
void link_set_max_sockets(int n);

/* The libzmq I/O threads of that context (default LINK_IO_THREADS); takes
 * effect only before it is created. A node agent, with its one link, asks 1. */
void link_set_io_threads(int n);

/* Whether the dealers this process makes from now on send ZMTP heartbeats
 * (default on; the router never does). Each connection with heartbeats keeps
 * timers in libzmq's I/O thread, whose cancel walks the whole timer map: a
 * process of 5,000 simulated nodes spent 39 % of its CPU there
 * (docs/performance.md). The simulated-node process turns them off; the
 * agent's own heartbeat (a silent master for three intervals: reconnect)
 * does their job there. */
void link_set_zmtp_heartbeats(bool on);

/* Creates a node's DEALER socket and starts connecting it to endpoint
 * ("tcp://master:7070", "ipc:///path"). name is the node's name,
 * 1..LINK_NAME_MAX printable ASCII bytes without space or '/'; the routing id
 * is "name/<LINK_NONCE_LEN random hex digits>". The connection is made and
 * remade in the background (backoff LINK_RECONNECT_MS doubling to
 * LINK_RECONNECT_MAX); while it is down, link_send returns -EAGAIN, nothing is
 * queued for a dead peer, and the application keeps and re-sends whatever is
 * unacknowledged. Returns the link, or NULL with *err set to -EINVAL (bad
 * name or endpoint), -EPROTONOSUPPORT, or another -errno from libzmq. */
link_t *link_new_dealer(const char *endpoint, const char *name, int *err);

/* The same with CurveZMQ: the connection is encrypted, the dealer
 * authenticates the master by keys->server_key and the master the dealer by
 * keys->public_key (its ZAP handler). keys NULL means plaintext
 * (link_new_dealer). A wrong key gives -EINVAL. A handshake the master
 * refuses is a protocol error: libzmq does not retry it (see link_reconnect);
 * link_refused tells. */
link_t *link_new_dealer_curve(const char *endpoint, const char *name, const struct link_keys *keys,
                              int *err);

/* Drops a dealer's connection and connects again with a new random routing
 * id. libzmq reconnects by itself after a broken connection, but NOT after a
 * protocol error: a frame over PROTO_MAX_FRAME from the master, a malformed
 * ZMTP frame or a failed CURVE handshake ends that connection for good, and
 * sends then fail with -EAGAIN forever. The node agent therefore calls this
 * when the master has been silent (no message received, or no send accepted)
 * for longer than its liveness timeout. It does not block: link_send returns
 * -EAGAIN until the old connection is gone (messages handed to it would be
 * lost) and the new one is up; the old connection's end is noticed by any
 * later call on the link (zwatch makes one every loop iteration). Returns 0,
 * -EINVAL on a router, or -errno from libzmq. */
int link_reconnect(link_t *l);

/* Dealer: whether the master has refused this link's CurveZMQ handshake
 * (its key unknown or revoked) since the link was made or last reconnected.
 * Always false on plaintext links and routers. */
bool link_refused(link_t *l);

/* Creates the master's ROUTER socket bound to endpoint ("ipc:///run/x.sock"),
 * in plaintext: a peer is the name its routing id claims, so use it where
 * only trusted local processes can connect. Sending to a peer that is not
 * connected fails with -EHOSTUNREACH. Returns the link, or NULL with *err set
 * (-EADDRINUSE, -EINVAL, ...). */
link_t *link_new_router(const char *endpoint, int *err);

/* The same as a CurveZMQ server (keys->server_key unused) with ZAP domain
 * ZAP_DOMAIN: each client is let in, and named, by the process's ZAP handler
 * (proto/zap.h), which must be running before this is called (without one
 * libzmq lets in any client that knows the server's public key: -ENOTCONN
 * is returned rather than that). */
link_t *link_new_router_curve(const char *endpoint, const struct link_keys *keys, int *err);

/* Whether the link authenticates its peers with CurveZMQ. */
bool link_is_curve(const link_t *l);

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
 * on a router peer holds the sender's name (see the top of this file;
 * NUL-terminated; give it LINK_PEER_SIZE bytes). On a dealer peer may be NULL
 * (else it is set to ""). Returns -EAGAIN when nothing is waiting, -EBADMSG
 * when a message was read and dropped whole: malformed (wrong number of
 * frames, identity empty, too long for peer_len or not printable), from a
 * peer without a User-Id on a curve router, from a denied peer (link_deny),
 * or from a connection shut for flooding (more than LINK_FLOOD_MSGS messages
 * in LINK_FLOOD_MS, counted by when they arrived: see link_stash); call
 * again for the next one. A connection whose message has no valid sender
 * name is shut. A message of more than one frame under a valid name is a
 * protocol violation of that name's (link_violation). Other -errno values
 * come from libzmq (-ETERM, -EINTR). */
int link_recv(link_t *l, char *peer, size_t peer_len, void **buf, size_t *len);

/* Router: shuts down the connections peer's messages came through lately
 * (the TCP or Unix sockets; libzmq then ends each as if the peer had closed
 * it). Returns 0, -ENOENT when the peer has no open connection known, or
 * -EINVAL on a dealer. */
int link_kick(link_t *l, const char *peer);

/* Router: the message link_recv returned last from peer broke the protocol
 * (the application could not decode it). A name may commit LINK_VIOLATIONS
 * per LINK_VIOLATION_MS (a window that starts at its first one); each one
 * beyond, until the window ends, shuts the connection it came through, once
 * per connection (what it queued before is still read, each message on its
 * own merits): a node with a bug that sent a bad frame or two is only answered, one
 * that keeps at it reconnects for each further one, and is heard again
 * once it stops. link_recv counts a message of more than one frame under a
 * valid name the same way. Returns 1 when a connection was shut now, 0
 * when the violation was only counted (or its connection was shut
 * already), -EINVAL. */
int link_violation(link_t *l, const char *peer);

/* Router: deny true drops every message from peer from now on and shuts the
 * connection each came through; false lets peer talk again. The master
 * denies a revoked node so a connection that outlived the revocation is
 * closed on its first word. Returns 0, -ENOSPC when LINK_MAX_PEERS names are
 * denied, -EINVAL. */
int link_deny(link_t *l, const char *peer, bool deny);

/* Registers fn(userdata), called by every link call other than link_recv and
 * link_readable (which the watcher makes itself), and by those two while a
 * reconnect is draining: such a call may have consumed the ZMQ_FD edge of
 * messages now waiting, so whoever sleeps on ZMQ_FD must look at the socket
 * again (zwatch.h). fn NULL unregisters. One per link. */
void link_set_touch(link_t *l, void (*fn)(void *userdata), void *userdata);

/* Router: housekeeping, from a timer about once a second: reads the
 * connection events and shuts connections that finished no handshake or
 * sent no message within LINK_IDLE_MS of being accepted (a duplicate routing
 * id libzmq parks unread, a client that only connects). The time is counted
 * up to the link's backlog (link_backlog_ms): a connection whose message
 * waits unread behind others is not silent. */
void link_tick(link_t *l, uint64_t now_ms);

/* How far behind the reader is: 0 when no message waits now, else the ms
 * since the oldest unread message may have arrived: for a stashed frame,
 * when libzmq's queue was last found empty before it was stashed; with
 * none stashed, when libzmq's queue was last found empty (a link_recv or
 * link_stash that ended on -EAGAIN, an empty link_readable). Every message
 * that arrived before now minus this has been read, so a peer silent by
 * that time is silent, and one that seems silent later may only wait in
 * the backlog. What link_stash drops counts as read. Touches the link
 * (link_set_touch). */
uint64_t link_backlog_ms(link_t *l);

/* Makes a stashed frame smaller: called by link_stash with the sender's
 * name and a copy of the frame, it may rewrite the frame in place and
 * returns the bytes to keep (len to keep it whole), or LINK_SHRINK_DROP to
 * drop the frame (counted in link_stats.dropped). */
typedef size_t (*link_shrink_fn)(const char *peer, void *frame, size_t len, void *userdata);
#define LINK_SHRINK_DROP SIZE_MAX
/* Sets the router's shrink function (NULL: frames are kept whole). */
void link_set_shrink(link_t *l, link_shrink_fn fn, void *userdata);

/* Router: takes up to max waiting messages out of libzmq's receiving queue
 * (those dropped count, as in zwatch's budget) and moves the frames into
 * the link's own queue, in order, each in one allocation sized by the frame
 * (after the shrink function). A reader that is behind uses it so that
 * what waits costs what it holds: libzmq keeps each frame whole (a usage
 * report of 200 guests is ~150 KB) until it is read. link_recv returns
 * stashed frames first; they count as not read yet (link_backlog_ms,
 * link_readable), the flood rule and the checks of link_recv apply when a
 * frame is stashed, and denying a peer drops its stashed frames.
 *
 * The flood rule counts a message from when it may have arrived (libzmq's
 * queue last found empty before it was read), so a backlog read in one go
 * is not a flood, and a reader that stashes faster than LINK_FLOOD_MSGS
 * per LINK_FLOOD_MS sees a flood however slowly it handles what it
 * stashed: a connection is cut once more than that arrived, on average,
 * over the span its messages can have arrived in. A reader slower than
 * that cannot tell a flood from a backlog, and the flood then queues in
 * libzmq (unbounded: link_common_options) until it is read. Returns the
 * frames stashed or -errno. */
int link_stash(link_t *l, unsigned max);

/* What a router has done about its peers since it was made. */
struct link_stats {
    uint64_t dropped;              /* messages dropped (every -EBADMSG) */
    uint64_t kicked_flood;         /* connections shut for flooding */
    uint64_t kicked_denied;        /* connections shut because their peer is denied */
    uint64_t kicked_idle;          /* connections shut by link_tick */
    uint64_t kicked_junk;          /* connections shut for a message without a valid sender name */
    uint64_t kicked_asked;         /* connections shut by link_kick */
    uint64_t violations;           /* protocol violations of valid names (link_violation) */
    uint64_t kicked_violation;     /* connections shut for violations beyond LINK_VIOLATIONS */
    uint64_t stashed;              /* frames link_stash took out of libzmq's queue */
    uint64_t shrunk_bytes;         /* bytes the shrink function cut from stashed frames */
    char violator[LINK_PEER_SIZE]; /* the name of the latest violation, "" none */
    const char *violation;         /* what it was ("a message of several frames"), or NULL */
};
void link_get_stats(const link_t *l, struct link_stats *out);

/* What a router has done about one peer name since it was made (a part of
 * link_stats, by name). A name is counted from its first message or
 * violation on, while the router keeps a route for it (LINK_MAX_PEERS
 * names; routes are never forgotten, so the counts never go back). */
struct link_peer_stats {
    uint64_t violations;       /* protocol violations under the name */
    uint64_t kicked_violation; /* its connections shut for violations beyond LINK_VIOLATIONS */
    uint64_t kicked_flood;     /* its connections shut for flooding */
};
/* The counts of peer on router l into out (zeros when l counts nothing for
 * it): 0, or -ENOENT when l keeps no route for peer, -EINVAL when l is not
 * a router. */
int link_get_peer_stats(const link_t *l, const char *peer, struct link_peer_stats *out);

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
