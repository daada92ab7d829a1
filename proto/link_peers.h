/* A router link's knowledge of its peers (link.c's helper; nothing else
 * includes this): which routing id reaches each peer name, which names are
 * denied, how fast each one sends, and which connections have said nothing.
 *
 * A connection is told apart by a tag: the address of its libzmq metadata,
 * which every message of that connection points at and which lives as long
 * as any of them does, so two connections alive at once never share one.
 * Shutting a connection down is shutdown(2) on its socket, after checking by
 * the socket's inode that the descriptor still is that socket.
 *
 * Loop thread of the link only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/link.h"

typedef struct link_peers link_peers_t;

/* Where one received message came from. */
struct link_origin {
    const char *name; /* the sender's name (User-Id, or the routing id's name part) */
    const void *id;   /* its routing id */
    size_t id_len;    /* bytes in id */
    int fd;           /* the connection's socket (ZMQ_SRCFD), -1 when unknown */
    const void *conn; /* the connection's tag, NULL when unknown */
    uint64_t since;   /* monotonic ms it arrived at or after (the queue last found empty) */
};

/* Starts tracking the peers of router (a libzmq ROUTER socket), with a
 * socket monitor on it. Returns NULL with *err on failure. */
link_peers_t *link_peers_new(void *router, int *err);
void link_peers_destroy(link_peers_t **pp);

/* Records a message read at now_ms; 0 means deliver it, -EBADMSG drop it
 * (denied name, flooding connection, too many names), -ECONNRESET drop it
 * and whatever else of o->name waits unread: its connection was shut for
 * flooding just now. */
int link_peers_seen(link_peers_t *p, const struct link_origin *o, uint64_t now_ms);
/* A message whose sender has no valid name came through socket fd from
 * the peer libzmq describes as addr (its Peer-Address): shuts that
 * connection (no peer that is a node has such a name). Returns whether it
 * was shut (fd unknown, no longer that connection's socket, or reused by a
 * connection from another peer: not). */
bool link_peers_junk(link_peers_t *p, int fd, const char *addr, uint64_t now_ms);
/* The inode of the connection a message came through socket fd from the
 * peer libzmq describes as addr (its Peer-Address): the one recorded when
 * that connection was accepted, while fd still holds it and its peer is
 * addr; 0 when that is not certain (the connection ended, its descriptor
 * reused). */
ino_t link_peers_conn_ino(link_peers_t *p, int fd, const char *addr, uint64_t now_ms);
/* The socket of the connection name's latest delivered message came
 * through and its inode then: 0, or -ENOENT. */
int link_peers_last(link_peers_t *p, const char *name, int *fd, ino_t *ino);
/* A protocol violation by name (what: a fixed text saying which) in a
 * message that came through socket fd, whose inode was ino (0: unknown):
 * counted against LINK_VIOLATIONS per LINK_VIOLATION_MS, and beyond that
 * the connection is shut (link_violation). A denied name's connection is
 * shut at once. Returns 1 when a connection was shut now, else 0. */
int link_peers_violation(link_peers_t *p, const char *name, int fd, ino_t ino, const char *what,
                         uint64_t now_ms);

/* The routing id that reaches name: 0, or -EHOSTUNREACH. */
int link_peers_route(link_peers_t *p, const char *name, const void **id, size_t *len);
/* Shuts name's connections (the last few it spoke through): 0, or -ENOENT
 * when none is open. */
int link_peers_kick(link_peers_t *p, const char *name);
/* Denies or allows name again: 0, -ENOSPC. */
int link_peers_deny(link_peers_t *p, const char *name, bool deny);
/* Reads connection events and shuts connections silent for LINK_IDLE_MS
 * by read_ms: every message that arrived before read_ms has been read (the
 * router's own backlog is not the peer's silence). */
void link_peers_tick(link_peers_t *p, uint64_t now_ms, uint64_t read_ms);
/* The counters (owned by p). */
struct link_stats *link_peers_stats(link_peers_t *p);
/* The counts of name into out: 0, or -ENOENT when p keeps no route for it
 * (out is zeroed then). */
int link_peers_peer_stats(const link_peers_t *p, const char *name, struct link_peer_stats *out);
