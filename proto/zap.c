/* The ZAP handler (zap.h): a thread answering libzmq's ZAP requests from a
 * table of keys. */
#include "proto/zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq.h>

#include "common/hmap.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "proto/keys.h"
#include "proto/link.h"
#include "proto/ratelimit.h"

#define ZAP_FRAMES       7    /* frames of a CURVE request; more are counted, not kept */
#define ZAP_REBIND_TRIES 1000 /* 1 ms apart: waiting for a destroyed handler's endpoint */

/* The inproc endpoint is the context's, one per process: so is this. */
static atomic_bool zap_bound;

/* One allowed key. */
struct zap_key {
    char key[KEYS_Z85_SIZE]; /* the Z85 public key, the table's key */
    char user[];             /* the User-Id it gets */
};

struct zap {
    pthread_t thread;       /* answers requests */
    bool started;           /* thread was created */
    int wake;               /* eventfd: zap_destroy asks the thread to stop */
    void *handler;          /* REP bound to ZAP_ENDPOINT (the thread's once started) */
    pthread_mutex_t lock;   /* guards keys and stats */
    struct hmap_str keys;   /* Z85 public key -> struct zap_key (owned) */
    struct zap_stats stats; /* answers given */
    struct ratelimit logrl; /* refusal warnings (handler thread only) */
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
reply(void *handler, const zmq_msg_t *request_id, const char *code, const char *text,
      const char *user_id)
{
    const void *rid = request_id ? zmq_msg_data((zmq_msg_t *)request_id) : "";
    size_t rid_len = request_id ? zmq_msg_size((zmq_msg_t *)request_id) : 0;

    (void)zmq_send(handler, "1.0", 3, ZMQ_SNDMORE);
    (void)zmq_send(handler, rid, rid_len, ZMQ_SNDMORE);
    (void)zmq_send(handler, code, strlen(code), ZMQ_SNDMORE);
    (void)zmq_send(handler, text, strlen(text), ZMQ_SNDMORE);
    (void)zmq_send(handler, user_id, strlen(user_id), ZMQ_SNDMORE);
    (void)zmq_send(handler, "", 0, 0);
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
    const struct zap_key *k = hmap_str_get(&z->keys, z85);
    found = k && strscpy(user, k->user, n) >= 0;
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

/* Whether frame f holds exactly the text s. */
static bool
frame_is(zmq_msg_t *f, const char *s)
{
    size_t n = strlen(s);

    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

/* Frame f as text in buf (size n): cut at n - 1 bytes or at a NUL. */
static const char *
frame_text(zmq_msg_t *f, char *buf, size_t n)
{
    size_t len = zmq_msg_size(f) < n - 1 ? zmq_msg_size(f) : n - 1;

    memcpy(buf, zmq_msg_data(f), len);
    buf[len] = '\0';
    return buf;
}

/* Answers one request: frames version, request id, domain, address,
 * identity, mechanism, then the mechanism's credentials. */
static void
handle(zap_t *z, void *handler)
{
    zmq_msg_t f[ZAP_FRAMES];
    size_t n = 0;
    char user[LINK_PEER_SIZE], address[256], mechanism[32];

    /* A message comes whole: once its first frame is there, so are the rest. */
    for (bool more = true; more; n++) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, handler, n ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (n < ZAP_FRAMES)
            f[n] = part;
        else
            zmq_msg_close(&part);
    }
    if (n == 0)
        return;
    if (n < 6 || !frame_is(&f[0], "1.0")) {
        /* Not from libzmq: REP still owes an answer to keep its state. */
        count(z, &z->stats.malformed);
        reply(handler, n >= 2 ? &f[1] : NULL, "500", "malformed request", "");
        goto out;
    }
    frame_text(&f[3], address, sizeof(address));
    frame_text(&f[5], mechanism, sizeof(mechanism));
    if (!frame_is(&f[5], "CURVE") || n != 7 || zmq_msg_size(&f[6]) != KEYS_BIN_LEN) {
        count(z, &z->stats.denied);
        log_refusal(z, address, mechanism, NULL);
        reply(handler, &f[1], "400", "CURVE only", "");
    } else if (!lookup(z, zmq_msg_data(&f[6]), user, sizeof(user))) {
        count(z, &z->stats.denied);
        log_refusal(z, address, mechanism, zmq_msg_data(&f[6]));
        reply(handler, &f[1], "400", "unknown key", "");
    } else {
        count(z, &z->stats.allowed);
        log_debug("node link: %s client \"%s\" from %s let in", mechanism, user, address);
        reply(handler, &f[1], "200", "OK", user);
    }
out:
    for (size_t i = 0; i < n && i < ZAP_FRAMES; i++)
        zmq_msg_close(&f[i]);
}

/* The handler's thread: answers until zap_destroy wakes it, or until the
 * context is terminated (the process exits with the handler running). */
static void *
zap_thread(void *arg)
{
    zap_t *z = arg;

    for (;;) {
        zmq_pollitem_t items[] = {
            {.socket = z->handler, .events = ZMQ_POLLIN},
            {.fd = z->wake, .events = ZMQ_POLLIN},
        };
        if (zmq_poll(items, 2, -1) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            break; /* ETERM */
        }
        if (items[1].revents & ZMQ_POLLIN)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            handle(z, z->handler);
    }
    atomic_store(&zap_bound, false);
    (void)zmq_close(z->handler);
    z->handler = NULL;
    return NULL;
}

zap_t *
zap_new(int *err)
{
    zap_t *z = xcalloc(1, sizeof(*z));
    /* The shared context the links use. */
    void *ctx = link_context_init();
    int linger = 0, r;

    pthread_mutex_init(&z->lock, NULL);
    z->wake = -1;
    z->logrl = (struct ratelimit)RATELIMIT_INIT(ZAP_LOG_INTERVAL_MS, ZAP_LOG_BURST);
    /* Not a link_socket: the thread owns it, and closes it itself when the
     * context is terminated at exit. */
    if (!ctx || !(z->handler = zmq_socket(ctx, ZMQ_REP))) {
        r = -ENOMEM;
        goto fail;
    }
    (void)zmq_setsockopt(z->handler, ZMQ_LINGER, &linger, sizeof(linger));
    /* A handler destroyed just now still holds the endpoint until libzmq's
     * reaper thread has dealt with its socket: with none of ours running,
     * EADDRINUSE is that, and lasts a moment. */
    for (int tries = 0; zmq_bind(z->handler, ZAP_ENDPOINT) < 0; tries++) {
        r = zmq_errno() ? -zmq_errno() : -EADDRINUSE;
        if (r != -EADDRINUSE || atomic_load(&zap_bound) || tries >= ZAP_REBIND_TRIES)
            goto fail;
        usleep(1000);
    }
    if ((z->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        r = -errno;
        goto fail;
    }
    atomic_store(&zap_bound, true);
    /* The socket moves to the thread; pthread_create is the barrier. */
    if ((r = pthread_create(&z->thread, NULL, zap_thread, z)) != 0) {
        atomic_store(&zap_bound, false);
        r = -r;
        goto fail;
    }
    z->started = true;
    return z;
fail:
    if (err)
        *err = r;
    zap_destroy(&z);
    return NULL;
}

void
zap_destroy(zap_t **zp)
{
    zap_t *z = zp ? *zp : NULL;

    if (!z)
        return;
    if (z->started) {
        uint64_t one = 1;
        if (write(z->wake, &one, sizeof(one)) != (ssize_t)sizeof(one))
            log_error("zap: cannot wake the handler thread: %s", strerror(errno));
        pthread_join(z->thread, NULL);
    } else if (z->handler) {
        (void)zmq_close(z->handler);
    }
    if (z->wake >= 0)
        close(z->wake);
    for (size_t i = 0; i < z->keys.cap; i++)
        if (z->keys.slots[i].key)
            free(z->keys.slots[i].val);
    hmap_str_free(&z->keys);
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
    size_t n = strlen(user_id) + 1;
    struct zap_key *k = xmalloc(sizeof(*k) + n);
    strscpy(k->key, public_key, sizeof(k->key));
    memcpy(k->user, user_id, n);
    pthread_mutex_lock(&z->lock);
    struct zap_key *old = hmap_str_get(&z->keys, public_key);
    if (!old && z->keys.len >= ZAP_MAX_KEYS) {
        r = -ENOSPC;
    } else {
        /* The new entry's key replaces the old one's, then the old goes. */
        hmap_str_put(&z->keys, k->key, k);
        k = old;
    }
    pthread_mutex_unlock(&z->lock);
    free(k);
    return r;
}

int
zap_deny(zap_t *z, const char *public_key)
{
    int r = -ENOENT;

    if (!z || !public_key)
        return -EINVAL;
    pthread_mutex_lock(&z->lock);
    struct zap_key *k = hmap_str_get(&z->keys, public_key);
    if (k) {
        hmap_str_del(&z->keys, public_key);
        r = 0;
    }
    pthread_mutex_unlock(&z->lock);
    free(k);
    return r;
}

size_t
zap_count(zap_t *z)
{
    size_t n;

    pthread_mutex_lock(&z->lock);
    n = z->keys.len;
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
