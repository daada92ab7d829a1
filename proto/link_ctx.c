/* The process's libzmq context and the sockets made in it (link.h,
 * "Context"). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <zmq.h>

#include "common/log.h"
#include "common/mem.h"
#include "proto/link.h"

static pthread_once_t link_ctx_once = PTHREAD_ONCE_INIT;
static int link_io_threads = LINK_IO_THREADS; /* what link_ctx_init gives libzmq */
static int link_max_sockets;                  /* link_set_max_sockets; 0 = libzmq's */
static void *link_ctx;                        /* the process's context */
static pid_t link_ctx_pid;                    /* the process that created it */

/* The sockets link_socket made and link_socket_close has not closed: one a
 * program leaves open would make zmq_ctx_term at exit wait for ever. */
static pthread_mutex_t link_socks_lock = PTHREAD_MUTEX_INITIALIZER;
static void **link_socks;   /* open sockets, in no order */
static size_t link_n_socks; /* entries used */
static size_t link_socks_cap;

void
link_set_io_threads(int n)
{
    if (n > 0)
        link_io_threads = n;
}

void
link_set_max_sockets(int n)
{
    if (n > 0)
        link_max_sockets = n;
}

/* A context option of libzmq's draft API (zmq.h declares it only with
 * ZMQ_BUILD_DRAFT_API); Debian's libzmq 4.3.4 is built with it. */
#ifndef ZMQ_ZERO_COPY_RECV
#define ZMQ_ZERO_COPY_RECV 10
#endif

/* At exit: sockets still open are reported and closed, then the context is
 * terminated, which waits up to each socket's linger for what it still has
 * to send (and makes a ZAP handler thread still running stop). A child
 * forked after the context was created has no I/O threads: it leaves it. */
static void
link_ctx_atexit(void)
{
    if (!link_ctx || getpid() != link_ctx_pid)
        return;
    pthread_mutex_lock(&link_socks_lock);
    for (size_t i = 0; i < link_n_socks; i++) {
        int type = 0;
        size_t sz = sizeof(type);
        (void)zmq_getsockopt(link_socks[i], ZMQ_TYPE, &type, &sz);
        log_warning("link: a ZeroMQ socket (type %d) was left open; closed at exit", type);
        (void)zmq_close(link_socks[i]);
    }
    free(link_socks);
    link_socks = NULL;
    link_n_socks = link_socks_cap = 0;
    pthread_mutex_unlock(&link_socks_lock);
    while (zmq_ctx_term(link_ctx) < 0 && zmq_errno() == EINTR)
        ;
    link_ctx = NULL;
}

static void
link_ctx_init(void)
{
    /* Two I/O threads by default (LINK_IO_THREADS, the master's): libzmq
     * puts each new connection on the less loaded one, so a storm of
     * strangers' handshakes on one thread does not queue in front of the
     * nodes' messages (trust_junk.sh). The node agent, with one link, asks
     * for one (link_set_io_threads). libzmq installs no signal handlers:
     * the program's own (libuv) stay in charge. */
    void *ctx = zmq_ctx_new();

    if (!ctx) {
        log_error("link: cannot create the ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        return;
    }
    (void)zmq_ctx_set(ctx, ZMQ_IO_THREADS, link_io_threads);
    if (link_max_sockets > 0)
        (void)zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, link_max_sockets);
    /* Received messages are copied out of the buffer libzmq read them into.
     * By default each points into that buffer (about 18 KB: 8 KB of data
     * and a counter per possible message), so every message still queued
     * pins a whole buffer: a master whose loop fell behind 1,000 nodes'
     * acknowledgements held ~400 MiB of buffers for a few MiB of messages
     * (docs/performance.md, "Memory per guest"). A library without the
     * draft option refuses it; memory is all that changes, so go on. */
    if (zmq_ctx_set(ctx, ZMQ_ZERO_COPY_RECV, 0) < 0)
        log_debug("link: libzmq has no ZMQ_ZERO_COPY_RECV: %s", zmq_strerror(zmq_errno()));
    link_ctx = ctx;
    link_ctx_pid = getpid();
    atexit(link_ctx_atexit);
}

void *
link_context_init(void)
{
    pthread_once(&link_ctx_once, link_ctx_init);
    return link_ctx;
}

void *
link_socket(int type)
{
    void *ctx = link_context_init(), *h;
    int linger = 0;

    if (!ctx) {
        errno = ENOMEM;
        return NULL;
    }
    /* zmq_socket fails with EMFILE (ZMQ_MAX_SOCKETS) or ETERM. */
    if (!(h = zmq_socket(ctx, type)))
        return NULL;
    /* Nothing waits at close unless the caller says so (link_common_options). */
    (void)zmq_setsockopt(h, ZMQ_LINGER, &linger, sizeof(linger));
    pthread_mutex_lock(&link_socks_lock);
    if (link_n_socks == link_socks_cap) {
        link_socks_cap = link_socks_cap ? 2 * link_socks_cap : 16;
        link_socks = xrealloc(link_socks, link_socks_cap * sizeof(*link_socks));
    }
    link_socks[link_n_socks++] = h;
    pthread_mutex_unlock(&link_socks_lock);
    return h;
}

void
link_socket_close(void **sp)
{
    void *h = sp ? *sp : NULL;

    if (!h)
        return;
    pthread_mutex_lock(&link_socks_lock);
    /* The newest first: most sockets are short-lived monitors and senders. */
    for (size_t i = link_n_socks; i-- > 0;)
        if (link_socks[i] == h) {
            link_socks[i] = link_socks[--link_n_socks];
            break;
        }
    pthread_mutex_unlock(&link_socks_lock);
    (void)zmq_close(h);
    *sp = NULL;
}

size_t
link_open_sockets(void)
{
    size_t n;

    pthread_mutex_lock(&link_socks_lock);
    n = link_n_socks;
    pthread_mutex_unlock(&link_socks_lock);
    return n;
}
