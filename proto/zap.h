/* The ZAP handler (ZeroMQ RFC 27) of the node link: which CurveZMQ client
 * keys may connect, and who each one is.
 *
 * libzmq asks the handler bound to inproc://zeromq.zap.01 in its context
 * about every CurveZMQ client of a socket with a ZAP domain (link.h's curve
 * routers set one). This handler answers from a table: a public key it
 * lists gets in, and its User-Id, which libzmq attaches to every message of
 * that connection, is the name the table gives it — the node name, or
 * "join:<token id>" for a join token's key; any other key is refused (400)
 * and nothing it sends reaches the application. (czmq 4.2's zauth, which
 * the project used before, gives no User-Id.)
 *
 * The handler answers on a thread of its own, so a busy master
 * loop does not hold up handshakes; the table is shared under a mutex and
 * changes take effect for the next handshake (zap_deny is immediate for new
 * connections; a live one is closed with link_kick). Refusals are logged at
 * warning at most ZAP_LOG_BURST times per ZAP_LOG_INTERVAL_MS, with the
 * count of those held back, so a flood costs bounded logging.
 *
 * One handler per process (the inproc endpoint is the context's), created
 * before the first curve router binds and destroyed after the last one is
 * closed: without a handler libzmq lets every client that knows the server's
 * public key in. Functions are thread-safe. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZAP_ENDPOINT        "inproc://zeromq.zap.01"
#define ZAP_DOMAIN          "vfleet" /* the ZAP domain curve routers set */
#define ZAP_LOG_BURST       5        /* refusals logged per interval */
#define ZAP_LOG_INTERVAL_MS 10000    /* the logging window */
#define ZAP_MAX_KEYS        1000000  /* entries the table holds */

typedef struct zap zap_t;

/* What the handler has answered since it started. */
struct zap_stats {
    uint64_t allowed;   /* handshakes let in */
    uint64_t denied;    /* handshakes refused: unknown key, other mechanism */
    uint64_t malformed; /* requests that were not valid ZAP (never from libzmq) */
};

/* Starts the handler and binds it. Returns it, or NULL with *err (-EADDRINUSE
 * when another ZAP handler is bound in this process's context). */
zap_t *zap_new(int *err);
/* Stops the handler. NULL-safe; clears *zp. */
void zap_destroy(zap_t **zp);

/* Lets the client with public_key (Z85) in as user_id (1..255 printable
 * ASCII bytes, no space), replacing what the key had. Returns 0, -EINVAL,
 * or -ENOSPC when the table holds ZAP_MAX_KEYS keys. */
int zap_allow(zap_t *z, const char *public_key, const char *user_id);
/* Refuses public_key from the next handshake on. Returns 0 or -ENOENT. */
int zap_deny(zap_t *z, const char *public_key);
/* Keys in the table. */
size_t zap_count(zap_t *z);
/* The counters. */
void zap_get_stats(zap_t *z, struct zap_stats *out);

/* Whether a handler created by zap_new is bound in this process now (curve
 * routers refuse to start without one). */
bool zap_running(void);
