/* The ZAP handler (zap.h): a czmq actor answering libzmq's ZAP requests
 * from a table of keys. */
#include "proto/zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include <czmq.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "proto/keys.h"
#include "proto/link.h"
#include "proto/ratelimit.h"

/* The inproc endpoint is the context's, one per process: so is this. */
static atomic_bool zap_bound;

struct zap {
    zactor_t *actor;        /* the handler's thread */
    pthread_mutex_t lock;   /* guards keys and stats */
    zhashx_t *keys;         /* Z85 public key -> user id (owned strings) */
    struct zap_stats stats; /* answers given */
    struct ratelimit logrl; /* refusal warnings (actor thread only) */
    int bind_err;           /* the actor's bind result, for zap_new */
};

static bool
user_id_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > LINK_IDENTITY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* The answer of RFC 27: version, request id, status code and text, user id,
 * metadata (none). */
static void
reply(zsock_t *handler, const char *request_id, const char *code, const char *text,
      const char *user_id)
{
    zstr_sendx(handler, "1.0", request_id, code, text, user_id, "", NULL);
}

/* Which user a request's client key is, copied into user (size n); false
 * when the key is not listed. */
static bool
lookup(zap_t *z, const uint8_t *key, char *user, size_t n)
{
    char z85[KEYS_Z85_SIZE];
    bool found;

    keys_to_z85(key, z85);
    pthread_mutex_lock(&z->lock);
    const char *u = zhashx_lookup(z->keys, z85);
    found = u && strscpy(user, u, n) >= 0;
    pthread_mutex_unlock(&z->lock);
    return found;
}

static void
count(zap_t *z, uint64_t *field)
{
    pthread_mutex_lock(&z->lock);
    (*field)++;
    pthread_mutex_unlock(&z->lock);
}

static void
log_refusal(zap_t *z, const char *address, const char *mechanism, const uint8_t *key)
{
    uint64_t held = 0;
    char z85[KEYS_Z85_SIZE] = "-", more[64] = "";

    if (!ratelimit_ok(&z->logrl, time_mono_ms(), &held))
        return;
    if (key)
        keys_to_z85(key, z85);
    if (held)
        snprintf(more, sizeof(more), " (%llu more refusals were not logged)",
                 (unsigned long long)held);
    log_warning("node link: refused a %s client from %s, key %s: unknown or revoked%s", mechanism,
                address, z85, more);
}

/* Answers one request: frames version, request id, domain, address,
 * identity, mechanism, then the mechanism's credentials. */
static void
handle(zap_t *z, zsock_t *handler)
{
    zmsg_t *req = zmsg_recv(handler);
    char user[LINK_PEER_SIZE];

    if (!req)
        return;
    size_t n = zmsg_size(req);
    char *version = zmsg_popstr(req), *request_id = zmsg_popstr(req);
    char *domain = zmsg_popstr(req), *address = zmsg_popstr(req);
    zframe_t *identity = zmsg_pop(req);
    char *mechanism = zmsg_popstr(req);
    zframe_t *cred = zmsg_pop(req);

    if (n < 6 || !version || strcmp(version, "1.0") != 0 || !request_id || !mechanism) {
        /* Not from libzmq: REP still owes an answer to keep its state. */
        count(z, &z->stats.malformed);
        reply(handler, request_id ? request_id : "", "500", "malformed request", "");
    } else if (strcmp(mechanism, "CURVE") != 0 || !cred || zframe_size(cred) != KEYS_BIN_LEN ||
               n != 7) {
        count(z, &z->stats.denied);
        log_refusal(z, address ? address : "?", mechanism, NULL);
        reply(handler, request_id, "400", "CURVE only", "");
    } else if (!lookup(z, zframe_data(cred), user, sizeof(user))) {
        count(z, &z->stats.denied);
        log_refusal(z, address ? address : "?", mechanism, zframe_data(cred));
        reply(handler, request_id, "400", "unknown key", "");
    } else {
        count(z, &z->stats.allowed);
        log_debug("node link: %s client \"%s\" from %s let in", mechanism, user, address);
        reply(handler, request_id, "200", "OK", user);
    }
    free(version);
    free(request_id);
    free(domain);
    free(address);
    free(mechanism);
    zframe_destroy(&identity);
    zframe_destroy(&cred);
    zmsg_destroy(&req);
}

static void
zap_actor(zsock_t *pipe, void *args)
{
    zap_t *z = args;
    zsock_t *handler = zsock_new(ZMQ_REP);

    if (!handler || zsock_bind(handler, "%s", ZAP_ENDPOINT) < 0) {
        z->bind_err = handler ? -zmq_errno() : -ENOMEM;
        if (z->bind_err == 0)
            z->bind_err = -EADDRINUSE;
        zsock_destroy(&handler);
        zsock_signal(pipe, 0);
        return;
    }
    atomic_store(&zap_bound, true);
    zsock_signal(pipe, 0);
    zpoller_t *poller = zpoller_new(pipe, handler, NULL);
    while (poller) {
        void *which = zpoller_wait(poller, -1);
        if (which == handler) {
            handle(z, handler);
            continue;
        }
        if (which != pipe)
            break; /* interrupted or terminated */
        char *cmd = zstr_recv(pipe);
        bool term = !cmd || strcmp(cmd, "$TERM") == 0;
        free(cmd);
        if (term)
            break;
    }
    zpoller_destroy(&poller);
    atomic_store(&zap_bound, false);
    zsock_destroy(&handler);
}

static void
free_str(void **item)
{
    free(*item);
    *item = NULL;
}

zap_t *
zap_new(int *err)
{
    zap_t *z = xcalloc(1, sizeof(*z));

    /* The shared context the links use (link.c initialises it the same way). */
    link_context_init();
    pthread_mutex_init(&z->lock, NULL);
    z->keys = zhashx_new();
    zhashx_set_destructor(z->keys, free_str);
    z->logrl = (struct ratelimit)RATELIMIT_INIT(ZAP_LOG_INTERVAL_MS, ZAP_LOG_BURST);
    z->actor = zactor_new(zap_actor, z);
    if (!z->actor || z->bind_err < 0) {
        if (err)
            *err = z->actor ? z->bind_err : -ENOMEM;
        zap_destroy(&z);
        return NULL;
    }
    return z;
}

void
zap_destroy(zap_t **zp)
{
    zap_t *z = zp ? *zp : NULL;

    if (!z)
        return;
    zactor_destroy(&z->actor);
    zhashx_destroy(&z->keys);
    pthread_mutex_destroy(&z->lock);
    free(z);
    *zp = NULL;
}

int
zap_allow(zap_t *z, const char *public_key, const char *user_id)
{
    int r = 0;

    if (!z || !keys_valid(public_key) || !user_id_valid(user_id))
        return -EINVAL;
    pthread_mutex_lock(&z->lock);
    if (!zhashx_lookup(z->keys, public_key) && zhashx_size(z->keys) >= ZAP_MAX_KEYS)
        r = -ENOSPC;
    else
        zhashx_update(z->keys, public_key, xstrdup(user_id));
    pthread_mutex_unlock(&z->lock);
    return r;
}

int
zap_deny(zap_t *z, const char *public_key)
{
    int r = -ENOENT;

    if (!z || !public_key)
        return -EINVAL;
    pthread_mutex_lock(&z->lock);
    if (zhashx_lookup(z->keys, public_key)) {
        zhashx_delete(z->keys, public_key);
        r = 0;
    }
    pthread_mutex_unlock(&z->lock);
    return r;
}

size_t
zap_count(zap_t *z)
{
    size_t n;

    pthread_mutex_lock(&z->lock);
    n = zhashx_size(z->keys);
    pthread_mutex_unlock(&z->lock);
    return n;
}

void
zap_get_stats(zap_t *z, struct zap_stats *out)
{
    pthread_mutex_lock(&z->lock);
    *out = z->stats;
    pthread_mutex_unlock(&z->lock);
}

bool
zap_running(void)
{
    return atomic_load(&zap_bound);
}
