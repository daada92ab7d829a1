/* A router link's peers (link_peers.h). */
#include "proto/link_peers.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <zmq.h>

#include "common/hmap.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"

#define MONITOR_EVENTS  (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED)
#define EVENTS_PER_TICK 100000 /* monitor events read per link_peers_tick */
#define PEER_CONNS      8      /* connections remembered per name, for link_peers_kick */

/* How to reach one peer name. */
struct route {
    uint8_t id[LINK_IDENTITY_MAX]; /* the routing id of its latest connection */
    size_t id_len;                 /* bytes in id */
    int fd;                        /* that connection's socket, -1 unknown */
    ino_t ino;                     /* the socket's inode when first seen */
    const void *conn;              /* that connection's tag */
    const void *flooded;           /* tag of a connection shut for flooding */
    struct {
        int fd;                    /* its socket */
        ino_t ino;                 /* the socket's inode when first seen */
    } recent[PEER_CONNS];          /* connections the name spoke through lately */
    unsigned n_recent;             /* entries used in recent (a ring once full) */
    uint64_t window_start;         /* monotonic ms the flood window's messages arrived from */
    uint64_t window_msgs;          /* messages in the window */
    uint64_t viol_start;           /* monotonic ms the violation window began */
    unsigned viol_count;           /* protocol violations in that window */
    int cut_fd;                    /* the socket last shut for a violation, -1 none */
    ino_t cut_ino;                 /* its inode */
    struct link_peer_stats counts; /* what was done about the name */
    char name[];                   /* the peer name, the key of routes */
};

/* A connection the monitor reported accepted and not yet closed. */
struct conn {
    int fd;         /* its socket */
    ino_t ino;      /* the socket's inode, to check fd still is it */
    uint64_t since; /* monotonic ms it was seen accepted */
    bool spoke;     /* the reaper has looked at it (it delivers, or was shut) */
    bool junk;      /* shut by link_peers_junk (what it queued still comes) */
    char key[16];   /* fd in decimal, the key of conns */
};

/* The name whose route last used a descriptor. */
struct fdname {
    char key[16]; /* fd in decimal, the key of fdnames */
    char name[];  /* the name */
};

struct link_peers {
    struct hmap_str routes;  /* name -> struct route (owned) */
    struct hmap_str denied;  /* name -> a copy of it (owned) */
    struct hmap_str conns;   /* "fd" -> struct conn (owned) */
    struct hmap_str fdnames; /* "fd" -> struct fdname (owned) */
    void *router;            /* the watched ROUTER (borrowed) */
    void *monitor;           /* PAIR receiving the router's monitor events */
    struct link_stats stats; /* what was done */
};

/* Frees every value of m, then m. */
static void
free_all(struct hmap_str *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            free(m->slots[i].val);
    hmap_str_free(m);
}

/* Removes key and frees its value. */
static void
delete_item(struct hmap_str *m, const char *key)
{
    void *v = hmap_str_get(m, key);

    if (v) {
        hmap_str_del(m, key);
        free(v);
    }
}

link_peers_t *
link_peers_new(void *router, int *err)
{
    link_peers_t *p = xcalloc(1, sizeof(*p));
    char ep[64];
    int hwm = 0;

    p->router = router;
    uint64_t rnd = 0;
    /* Random, not the address: a freed monitor's endpoint is unbound
     * asynchronously, and the next link could get the same address. */
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (uint64_t)(uintptr_t)p ^ time_mono_ns();
    snprintf(ep, sizeof(ep), "inproc://vf-link-peers-%016llx", (unsigned long long)rnd);
    /* libzmq sends monitor events blocking from its I/O thread: an unlimited
     * receive queue here keeps a slow reader from ever stalling that thread. */
    p->monitor = link_socket(ZMQ_PAIR);
    if (!p->monitor || zmq_socket_monitor(router, ep, MONITOR_EVENTS) < 0 ||
        zmq_setsockopt(p->monitor, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
        zmq_connect(p->monitor, ep) < 0) {
        *err = zmq_errno() ? -zmq_errno() : -ENOMEM;
        link_peers_destroy(&p);
        return NULL;
    }
    return p;
}

void
link_peers_destroy(link_peers_t **pp)
{
    link_peers_t *p = pp ? *pp : NULL;

    if (!p)
        return;
    /* Monitoring stops before our end goes: libzmq sends events blocking, and
     * an event with nobody to take it would hang the thread sending it. */
    (void)zmq_socket_monitor(p->router, NULL, 0);
    link_socket_close(&p->monitor);
    free_all(&p->routes);
    free_all(&p->denied);
    free_all(&p->conns);
    free_all(&p->fdnames);
    free(p);
    *pp = NULL;
}

static ino_t
socket_ino(int fd)
{
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 0;
    return st.st_ino;
}

/* Shuts the socket fd down if it still is the one with inode ino. libzmq
 * then reads end of file and ends that connection as if the peer had gone;
 * the descriptor stays libzmq's to close. */
static bool
shut(int fd, ino_t ino)
{
    if (fd < 0 || ino == 0 || socket_ino(fd) != ino)
        return false;
    return shutdown(fd, SHUT_RDWR) == 0;
}

/* Whether socket fd's peer is the one libzmq described as addr (a
 * message's Peer-Address): ":UID:GID:PID" at its end over ipc, the numeric
 * address over tcp. ZMQ_SRCFD names the descriptor a message came
 * through, not its connection: one closed and reused by a new connection
 * since the message came (a message is read late when the reader is
 * behind) names another peer. PEER_OTHER only when that is certain (over
 * ipc, other credentials; over tcp, another address: two connections
 * from one address cannot be told apart). */
enum peer_match { PEER_SAME, PEER_OTHER, PEER_UNKNOWN };

static enum peer_match
socket_peer(int fd, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char want[INET6_ADDRSTRLEN + 64];

    if (fd < 0 || !addr || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return PEER_UNKNOWN;
    if (ss.ss_family == AF_UNIX) {
        struct ucred cred;
        socklen_t n = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &n) < 0)
            return PEER_UNKNOWN;
        /* A libzmq built without SO_PEERCRED gives no credentials. */
        unsigned uid, gid;
        int pid, end = 0;
        const char *c = strchr(addr, ':');
        if (!c || sscanf(c, ":%u:%u:%d%n", &uid, &gid, &pid, &end) != 3 || c[end] != '\0')
            return PEER_UNKNOWN;
        return uid == cred.uid && gid == cred.gid && pid == cred.pid ? PEER_SAME : PEER_OTHER;
    }
    len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, want, sizeof(want), NULL, 0, NI_NUMERICHOST) != 0)
        return PEER_UNKNOWN;
    /* libzmq's Peer-Address is this very string (getnameinfo's numeric
     * host of getpeername): another one is another peer for certain. A
     * flood or violations read late were charged to the connection of a
     * node at another address that took the descriptor meanwhile. */
    return strcmp(addr, want) == 0 ? PEER_SAME : PEER_OTHER;
}

/* A message from a connection the route has not seen: make it the route. */
static void
route_switch(link_peers_t *p, struct route *rt, const struct link_origin *o)
{
    memcpy(rt->id, o->id, o->id_len);
    rt->id_len = o->id_len;
    if (rt->conn != o->conn || rt->fd != o->fd) {
        rt->conn = o->conn;
        rt->fd = o->fd;
        /* A descriptor another peer's connection holds by now is not this
         * connection's: nothing to shut for it (a flood read late). */
        bool other = socket_peer(o->fd, o->conn) == PEER_OTHER;
        rt->ino = other ? 0 : socket_ino(o->fd);
        bool known = false;
        for (unsigned i = 0; i < PEER_CONNS && i < rt->n_recent; i++)
            known |= rt->recent[i].fd == rt->fd && rt->recent[i].ino == rt->ino;
        if (!known) {
            unsigned slot = rt->n_recent++ % PEER_CONNS;
            rt->recent[slot].fd = rt->fd;
            rt->recent[slot].ino = rt->ino;
        }
        if (o->fd >= 0 && !other) {
            size_t n = strlen(o->name) + 1;
            struct fdname *f = xmalloc(sizeof(*f) + n);
            snprintf(f->key, sizeof(f->key), "%d", o->fd);
            memcpy(f->name, o->name, n);
            /* The new key pointer replaces the old one's: then the old goes. */
            struct fdname *old = hmap_str_get(&p->fdnames, f->key);
            hmap_str_put(&p->fdnames, f->key, f);
            free(old);
        }
    }
}

static struct route *
route_get(link_peers_t *p, const char *name, bool create)
{
    struct route *rt = hmap_str_get(&p->routes, name);
    size_t n = strlen(name) + 1;

    if (rt || !create || p->routes.len >= LINK_MAX_PEERS)
        return rt;
    rt = xcalloc(1, sizeof(*rt) + n);
    rt->fd = -1;
    rt->cut_fd = -1;
    memcpy(rt->name, name, n);
    hmap_str_put(&p->routes, rt->name, rt);
    return rt;
}

int
link_peers_seen(link_peers_t *p, const struct link_origin *o, uint64_t now_ms)
{
    struct route *rt;

    if (hmap_str_get(&p->denied, o->name)) {
        ino_t ino = socket_ino(o->fd);
        rt = route_get(p, o->name, false);
        /* The connection's inode as first seen, when it is the route's. */
        if (rt && rt->conn == o->conn)
            ino = rt->ino;
        if (shut(o->fd, ino))
            p->stats.kicked_denied++;
        return -EBADMSG;
    }
    rt = route_get(p, o->name, true);
    if (!rt || (o->conn && rt->flooded == o->conn))
        return -EBADMSG;
    if (rt->conn != o->conn || rt->fd != o->fd || rt->id_len != o->id_len ||
        memcmp(rt->id, o->id, o->id_len) != 0)
        route_switch(p, rt, o);
    /* The flood rule counts messages by when they arrived, not when they
     * are read: a reader slower than LINK_FLOOD_MSGS a second would never
     * see that many in one second of reading, and a connection flooding
     * faster than it reads would queue without bound. libzmq does not say
     * when a message arrived, only that it came after o->since (the queue
     * was empty then). So a window starts at the first message's since and
     * counts every message read until one surely arrived a window later;
     * all of them arrived between its start and now, and more than
     * LINK_FLOOD_MSGS per LINK_FLOOD_MS over that span is a flood. A backlog
     * read in one go is not one: its span is the time it took to arrive. */
    if (rt->window_msgs == 0 || o->since >= rt->window_start + LINK_FLOOD_MS) {
        rt->window_start = o->since;
        rt->window_msgs = 0;
    }
    uint64_t span = now_ms > rt->window_start ? now_ms - rt->window_start : 0;
    if (span < LINK_FLOOD_MS)
        span = LINK_FLOOD_MS;
    if (++rt->window_msgs > (uint64_t)LINK_FLOOD_MSGS * span / LINK_FLOOD_MS) {
        /* What it already queued is dropped unread; the socket is shut so it
         * queues no more. */
        if (shut(rt->fd, rt->ino)) {
            p->stats.kicked_flood++;
            rt->counts.kicked_flood++;
        }
        rt->flooded = o->conn;
        rt->window_msgs = 0;
        return -ECONNRESET;
    }
    return 0;
}

int
link_peers_route(link_peers_t *p, const char *name, const void **id, size_t *len)
{
    struct route *rt = hmap_str_get(&p->routes, name);

    if (!rt || rt->id_len == 0 || hmap_str_get(&p->denied, name))
        return -EHOSTUNREACH;
    *id = rt->id;
    *len = rt->id_len;
    return 0;
}

int
link_peers_kick(link_peers_t *p, const char *name)
{
    struct route *rt = hmap_str_get(&p->routes, name);
    unsigned shut_now = 0;

    /* Every connection the name spoke through lately, not only the latest:
     * two sessions with one key (a copied node) both end. */
    for (unsigned i = 0; rt && i < PEER_CONNS && i < rt->n_recent; i++)
        shut_now += shut(rt->recent[i].fd, rt->recent[i].ino);
    if (!shut_now)
        return -ENOENT;
    p->stats.kicked_asked += shut_now;
    return 0;
}

int
link_peers_deny(link_peers_t *p, const char *name, bool deny)
{
    if (!deny) {
        delete_item(&p->denied, name);
        return 0;
    }
    if (hmap_str_get(&p->denied, name))
        return 0;
    if (p->denied.len >= LINK_MAX_PEERS)
        return -ENOSPC;
    char *copy = xstrdup(name);
    hmap_str_put(&p->denied, copy, copy);
    return 0;
}

/* One monitor event: a connection accepted or gone. */
static void
monitor_event(link_peers_t *p, uint16_t event, uint32_t value, uint64_t now_ms)
{
    char key[16];
    int fd = (int)value;

    snprintf(key, sizeof(key), "%d", fd);
    if (event != ZMQ_EVENT_ACCEPTED) {
        delete_item(&p->conns, key);
        return;
    }
    struct conn *c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->ino = socket_ino(fd);
    c->since = now_ms;
    memcpy(c->key, key, sizeof(c->key));
    struct conn *old = hmap_str_get(&p->conns, c->key);
    hmap_str_put(&p->conns, c->key, c);
    free(old);
}

static void
read_events(link_peers_t *p, uint64_t now_ms)
{
    void *h = p->monitor;

    for (unsigned n = 0; n < EVENTS_PER_TICK; n++) {
        uint8_t ev[6];
        char ep[256];
        uint16_t event;
        uint32_t value;

        if (zmq_recv(h, ev, sizeof(ev), ZMQ_DONTWAIT) != (int)sizeof(ev))
            return;
        /* The second frame (the endpoint) is part of the same message. */
        (void)zmq_recv(h, ep, sizeof(ep), ZMQ_DONTWAIT);
        memcpy(&event, ev, sizeof(event));
        memcpy(&value, ev + sizeof(event), sizeof(value));
        monitor_event(p, event, value, now_ms);
    }
}

/* The connection accepted on fd, while fd still holds it and its peer is
 * addr (else NULL). */
static struct conn *
conn_of(link_peers_t *p, int fd, const char *addr, uint64_t now_ms)
{
    char key[16];
    struct conn *c;

    /* The inode recorded when the connection was accepted proves the
     * descriptor is still that connection's; its event may not have been
     * read yet. */
    snprintf(key, sizeof(key), "%d", fd);
    if (fd < 0)
        return NULL;
    /* Missing, or a closed connection's whose descriptor a new one has
     * taken: the events of both may not have been read yet. */
    c = hmap_str_get(&p->conns, key);
    if (!c || socket_ino(c->fd) != c->ino) {
        read_events(p, now_ms);
        c = hmap_str_get(&p->conns, key);
    }
    if (!c || socket_ino(c->fd) != c->ino || socket_peer(c->fd, addr) != PEER_SAME)
        return NULL;
    return c;
}

ino_t
link_peers_conn_ino(link_peers_t *p, int fd, const char *addr, uint64_t now_ms)
{
    struct conn *c = conn_of(p, fd, addr, now_ms);

    return c ? c->ino : 0;
}

bool
link_peers_junk(link_peers_t *p, int fd, const char *addr, uint64_t now_ms)
{
    struct conn *c = conn_of(p, fd, addr, now_ms);

    /* Each of the messages it queued before comes through here: one
     * shutdown is enough. */
    if (!c || c->junk || !shut(c->fd, c->ino))
        return false;
    c->junk = true;
    c->spoke = true; /* shut: the reaper need not look at it again */
    p->stats.kicked_junk++;
    return true;
}

int
link_peers_last(link_peers_t *p, const char *name, int *fd, ino_t *ino)
{
    struct route *rt = hmap_str_get(&p->routes, name);

    if (!rt || rt->fd < 0)
        return -ENOENT;
    *fd = rt->fd;
    *ino = rt->ino;
    return 0;
}

int
link_peers_violation(link_peers_t *p, const char *name, int fd, ino_t ino, const char *what,
                     uint64_t now_ms)
{
    struct route *rt;

    if (hmap_str_get(&p->denied, name)) {
        if (shut(fd, ino))
            p->stats.kicked_denied++;
        return 0;
    }
    p->stats.violations++;
    snprintf(p->stats.violator, sizeof(p->stats.violator), "%s", name);
    p->stats.violation = what;
    /* A name never delivered anything has no route yet; one is made (as
     * for its first message), within LINK_MAX_PEERS. */
    if (!(rt = route_get(p, name, true)))
        return 0;
    rt->counts.violations++;
    /* A fixed window from the first violation: a node that sent a bad
     * frame or two by a bug is answered and left alone; past the limit
     * every further violation in the window costs its sender the
     * connection, until the window ends. */
    if (rt->viol_count == 0 || now_ms - rt->viol_start >= LINK_VIOLATION_MS) {
        rt->viol_start = now_ms;
        rt->viol_count = 0;
    }
    if (++rt->viol_count <= LINK_VIOLATIONS)
        return 0;
    /* What it queued before the shutdown still comes, each message on
     * its own merits (dropping it by the connection's tag, as a flood's,
     * could drop a new connection's: libzmq may give it the old one's
     * address once the old one's messages are gone): one shutdown per
     * connection is counted. */
    if (fd == rt->cut_fd && ino == rt->cut_ino)
        return 0;
    if (!shut(fd, ino))
        return 0;
    rt->cut_fd = fd;
    rt->cut_ino = ino;
    p->stats.kicked_violation++;
    rt->counts.kicked_violation++;
    log_debug("link: peer \"%s\": %u protocol violations within %d ms (%s), connection fd %d shut",
              name, rt->viol_count, LINK_VIOLATION_MS, what, fd);
    return 1;
}

/* Whether connection c delivers for some name: the route of the name that
 * last used its descriptor is still on it. Asked only of connections old
 * enough to be reaped, so the order in which monitor events and messages
 * arrive does not matter. */
static bool
conn_spoke(link_peers_t *p, const struct conn *c)
{
    char key[16];

    snprintf(key, sizeof(key), "%d", c->fd);
    const struct fdname *f = hmap_str_get(&p->fdnames, key);
    struct route *rt = f ? hmap_str_get(&p->routes, f->name) : NULL;
    return rt && rt->fd == c->fd && rt->ino == c->ino;
}

void
link_peers_tick(link_peers_t *p, uint64_t now_ms, uint64_t read_ms)
{
    read_events(p, now_ms);
    /* Nothing below adds to or removes from conns. */
    for (size_t i = 0; i < p->conns.cap; i++) {
        struct conn *c = p->conns.slots[i].key ? p->conns.slots[i].val : NULL;
        if (!c)
            continue;
        /* Silent means silent until read_ms, the time up to which every
         * message that arrived has been read: a connection whose first
         * message waits in a backlog of this process has said something. */
        if (c->spoke || read_ms < c->since || read_ms - c->since < LINK_IDLE_MS)
            continue;
        /* Checked once: a connection that delivered is left alone for good. */
        c->spoke = true;
        if (conn_spoke(p, c))
            continue;
        if (shut(c->fd, c->ino)) {
            p->stats.kicked_idle++;
            log_debug("link: connection fd %d silent for %d ms, shut", c->fd, LINK_IDLE_MS);
        }
    }
}

struct link_stats *
link_peers_stats(link_peers_t *p)
{
    return &p->stats;
}

int
link_peers_peer_stats(const link_peers_t *p, const char *name, struct link_peer_stats *out)
{
    const struct route *rt = hmap_str_get(&p->routes, name);

    *out = rt ? rt->counts : (struct link_peer_stats){0};
    return rt ? 0 : -ENOENT;
}
