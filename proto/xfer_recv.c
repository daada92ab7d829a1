/* The data channel's receiver (xfer.h): a ROUTER on its own thread that
 * checks each session's secret, writes chunks where they belong, grants
 * credit as it writes, persists how far a pass got, and reports the digest
 * of what it reads back from disk at the end of a final pass.
 *
 * The read-back is spread over the passes: after each fdatasync the chunks
 * written since are read back and their hashes kept, so the end of a final
 * pass reads only what that pass wrote since the last sync (a near-live
 * move's frozen delta), and the digest comes from the kept hashes. A
 * receiver that did not start the file itself (a restart) reads it all. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/mem.h"
#include "proto/xfer_int.h"

#define SYNC_EVERY (64ULL << 20) /* bytes written between fdatasync + state write */

struct xfer_recv {
    pthread_t thread;                /* runs recv_main */
    bool started;                    /* thread was created */
    atomic_bool stop;                /* asks the thread to end */
    pthread_mutex_t lock;            /* guards st */
    struct xfer_recv_status st;      /* what other threads see */
    void *ctx;                       /* its own ZeroMQ context: its own ZAP endpoint */
    void *sock;                      /* the ROUTER */
    void *zap;                       /* REP on the ZAP endpoint, NULL = plaintext */
    uint8_t client[32];              /* curve: the one sender key let in */
    int fd;                          /* the file written */
    char *state;                     /* the state file, NULL = none */
    uint8_t secret[XFER_SECRET_LEN]; /* the transfer secret */
    xfer_recv_fn fn;                 /* completion callback */
    void *userdata;                  /* for fn */
    /* The current session; the thread's own. */
    uint8_t peer[256]; /* the sender's routing id */
    size_t peer_len;   /* its length */
    bool in_session;   /* a HELLO was answered and no gap seen since */
    uint64_t session;  /* its number */
    uint64_t next_seq; /* the DATA/HOLE/END sequence number expected */
    bool final;        /* the pass is the last */
    uint64_t unsynced; /* bytes written since the last fdatasync */
    uint8_t *buf;      /* scratch for the digest */
    /* What is on disk, read back after fdatasync. */
    bool fresh;                     /* the file was started empty by us */
    bool kept;                      /* disk[] holds every chunk's hash (else: read it all) */
    uint64_t chunks;                /* chunks of the image disk[] is for */
    uint8_t (*disk)[XFER_HASH_LEN]; /* per chunk: the hash of its bytes on disk */
    uint8_t *dirty;                 /* per chunk: written since it was read back */
    uint64_t *todo;                 /* the dirty chunks, in the order written */
    size_t n_todo;                  /* entries in todo */
    size_t todo_cap;                /* allocated entries of todo */
};

static size_t
chunk_len(uint64_t size, uint64_t i)
{
    uint64_t off = i * XFER_CHUNK;

    return size - off < XFER_CHUNK ? (size_t)(size - off) : XFER_CHUNK;
}

/* At a HELLO that sized the file: the hashes start as zeros when the file
 * was started empty by us and has kept this size; otherwise none are kept. */
static void
kept_size(xfer_recv_t *r, uint64_t size, bool resized)
{
    uint64_t n = (size + XFER_CHUNK - 1) / XFER_CHUNK;

    if (r->disk && r->chunks == n && !resized)
        return;
    free(r->disk);
    free(r->dirty);
    r->disk = NULL;
    r->dirty = NULL;
    r->n_todo = 0;
    r->chunks = n;
    r->kept = r->fresh && resized && n > 0;
    r->fresh = false;
    if (!r->kept)
        return;
    r->disk = xcalloc(n, XFER_HASH_LEN);
    r->dirty = xcalloc(n, 1);
    for (uint64_t i = 0; i < n; i++)
        xfer_zero_hash(chunk_len(size, i), r->disk[i]);
}

static void
mark_dirty(xfer_recv_t *r, uint64_t offset)
{
    uint64_t i = offset / XFER_CHUNK;

    if (!r->kept || i >= r->chunks || r->dirty[i])
        return;
    if (r->n_todo == r->todo_cap) {
        r->todo_cap = r->todo_cap ? r->todo_cap * 2 : 256;
        r->todo = xreallocarray(r->todo, r->todo_cap, sizeof(*r->todo));
    }
    r->dirty[i] = 1;
    r->todo[r->n_todo++] = i;
}

/* Reads back what was written since the last time (after an fdatasync). */
static int
read_back(xfer_recv_t *r, uint64_t size)
{
    uint64_t seek[2] = {UINT64_MAX, 0};
    bool zero;

    if (!r->kept || !r->n_todo)
        return 0;
    if (!r->buf)
        r->buf = xmalloc(XFER_CHUNK);
    for (size_t k = 0; k < r->n_todo; k++) {
        uint64_t i = r->todo[k];
        int rc = xfer_chunk_hash(r->fd, i * XFER_CHUNK, chunk_len(size, i), seek, r->buf,
                                 r->disk[i], &zero);
        if (rc < 0)
            return rc;
        r->dirty[i] = 0;
    }
    r->n_todo = 0;
    return 0;
}

/* The digest of what is on disk: from the kept hashes, or read whole. */
static int
disk_digest(xfer_recv_t *r, uint8_t out[XFER_HASH_LEN])
{
    if (!r->kept)
        return xfer_file_digest(r->fd, out);
    xfer_digest_of(r->disk, r->chunks, out);
    return 0;
}

static void
set_status(xfer_recv_t *r, void (*fn)(struct xfer_recv_status *st, const void *arg),
           const void *arg)
{
    pthread_mutex_lock(&r->lock);
    fn(&r->st, arg);
    pthread_mutex_unlock(&r->lock);
}

/* ---- the state file ---- */

int
xfer_recv_load_state(const char *state, struct xfer_recv_status *out)
{
    _cleanup_fclose_ FILE *f = fopen(state, "re");
    char hex[2 * XFER_HASH_LEN + 2] = "";
    unsigned long long pass, size, offset;
    int done;

    memset(out, 0, sizeof(*out));
    if (!f)
        return -errno;
    if (fscanf(f, "vfleet-xfer 1\npass %llu\nsize %llu\noffset %llu\ndone %d\ndigest %65s", &pass,
               &size, &offset, &done, hex) != 5 ||
        pass > UINT32_MAX || size > XFER_MAX_SIZE || offset > size)
        return -EBADMSG;
    out->pass = (uint32_t)pass;
    out->size = size;
    out->offset = offset;
    out->done = done == 1 && xfer_hex_decode(hex, out->digest, XFER_HASH_LEN) == 0;
    return 0;
}

/* fdatasync, then the state file by rename: a persisted offset is on disk. */
static int
persist(xfer_recv_t *r)
{
    struct xfer_recv_status st;
    char hex[2 * XFER_HASH_LEN + 1] = "-";

    if (fdatasync(r->fd) < 0)
        return -errno;
    r->unsynced = 0;
    xfer_recv_status(r, &st);
    int rc = read_back(r, st.size);
    if (rc < 0)
        return rc;
    if (!r->state)
        return 0;
    if (st.done)
        xfer_hex_encode(st.digest, XFER_HASH_LEN, hex);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", r->state);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    dprintf(fd, "vfleet-xfer 1\npass %u\nsize %llu\noffset %llu\ndone %d\ndigest %s\n", st.pass,
            (unsigned long long)st.size, (unsigned long long)st.offset, st.done ? 1 : 0, hex);
    if (fsync(fd) < 0 || rename(tmp, r->state) < 0)
        return -errno;
    return 0;
}

/* ---- answers ---- */

static void
reply(xfer_recv_t *r, const uint8_t *peer, size_t peer_len, struct xfer_hdr *h, const char *text)
{
    int rc = xfer_send_frames(r->sock, peer, peer_len, h, text, text ? strlen(text) : 0);
    (void)rc; /* a sender that went away asks again with HELLO */
}

static void fail_session(xfer_recv_t *r, int err, const char *fmt, ...) _printf_(3, 4);

static void
fail_session(xfer_recv_t *r, int err, const char *fmt, ...)
{
    struct xfer_hdr h = {.type = XFER_FAIL, .session = r->session, .len = (uint64_t)-err};
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    reply(r, r->peer, r->peer_len, &h, text);
    r->in_session = false;
}

/* ---- messages ---- */

struct hello_arg {
    const struct xfer_hdr *h; /* the HELLO */
    uint64_t *resume;         /* out: where the pass goes on */
};

static void
st_hello(struct xfer_recv_status *st, const void *arg)
{
    const struct hello_arg *a = arg;

    /* Resume only within the same pass of the same image; anything else
     * starts the pass over (a restarted sender numbers its passes anew). */
    if (a->h->pass != st->pass || a->h->len != st->size) {
        st->pass = a->h->pass;
        st->size = a->h->len;
        st->offset = 0;
        st->done = false;
    }
    *a->resume = st->offset;
}

static void
on_hello(xfer_recv_t *r, const uint8_t *peer, size_t peer_len, const struct xfer_hdr *h)
{
    struct xfer_hdr a = {.session = h->session, .pass = h->pass};
    uint64_t resume = 0;

    if (sodium_memcmp(h->hash, r->secret, XFER_SECRET_LEN) != 0) {
        a.type = XFER_DENY;
        reply(r, peer, peer_len, &a, "wrong transfer secret");
        return;
    }
    r->session = h->session;
    memcpy(r->peer, peer, peer_len);
    r->peer_len = peer_len;
    if (h->chunk != XFER_CHUNK || h->len > XFER_MAX_SIZE) {
        fail_session(r, -EPROTO, "chunk size %u or image size not supported", h->chunk);
        return;
    }
    struct stat sb;
    bool resized = false;
    if (fstat(r->fd, &sb) < 0 ||
        ((uint64_t)sb.st_size != h->len && (resized = true, ftruncate(r->fd, (off_t)h->len) < 0))) {
        fail_session(r, -errno, "cannot size the image: %s", strerror(errno));
        return;
    }
    kept_size(r, h->len, resized);
    struct hello_arg ha = {h, &resume};
    set_status(r, st_hello, &ha);
    r->in_session = true;
    r->next_seq = 1;
    r->final = h->final;
    a.type = XFER_READY;
    a.offset = resume;
    a.len = XFER_WINDOW;
    reply(r, peer, peer_len, &a, NULL);
}

static void
st_offset(struct xfer_recv_status *st, const void *arg)
{
    st->offset = *(const uint64_t *)arg;
}

/* Writes (or punches) one chunk, in order within the session. */
static void
on_chunk(xfer_recv_t *r, const struct xfer_hdr *h, zmq_msg_t *payload)
{
    struct xfer_recv_status st;

    xfer_recv_status(r, &st);
    if (h->pass != st.pass || h->offset % XFER_CHUNK || h->offset >= st.size ||
        h->len != (st.size - h->offset < XFER_CHUNK ? st.size - h->offset : XFER_CHUNK)) {
        fail_session(r, -EPROTO, "chunk at %llu does not fit the image",
                     (unsigned long long)h->offset);
        return;
    }
    if (h->type == XFER_DATA) {
        uint8_t got[XFER_HASH_LEN];
        if (!payload || zmq_msg_size(payload) != h->len) {
            fail_session(r, -EPROTO, "chunk at %llu has the wrong length",
                         (unsigned long long)h->offset);
            return;
        }
        xfer_hash(zmq_msg_data(payload), h->len, got);
        if (sodium_memcmp(got, h->hash, XFER_HASH_LEN) != 0) {
            fail_session(r, -EBADMSG, "chunk at %llu fails its checksum",
                         (unsigned long long)h->offset);
            return;
        }
        const uint8_t *p = zmq_msg_data(payload);
        for (size_t done = 0; done < h->len;) {
            ssize_t n = pwrite(r->fd, p + done, h->len - done, (off_t)(h->offset + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                fail_session(r, n < 0 ? -errno : -EIO, "cannot write the image: %s",
                             strerror(n < 0 ? errno : EIO));
                return;
            }
            done += (size_t)n;
        }
    } else if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)h->offset,
                         (off_t)h->len) < 0) {
        fail_session(r, -errno, "cannot punch a hole: %s", strerror(errno));
        return;
    }
    mark_dirty(r, h->offset);
    uint64_t end = h->offset + h->len;
    set_status(r, st_offset, &end);
    r->unsynced += h->len;
    if (r->unsynced >= SYNC_EVERY && persist(r) < 0) {
        fail_session(r, -EIO, "cannot persist progress: %s", strerror(errno));
        return;
    }
    struct xfer_hdr c = {.type = XFER_CREDIT, .session = r->session, .pass = h->pass, .len = 1};
    reply(r, r->peer, r->peer_len, &c, NULL);
}

struct end_arg {
    uint64_t size;                 /* the image's size */
    bool done;                     /* final: the digest is known */
    uint8_t digest[XFER_HASH_LEN]; /* final: the digest */
};

static void
st_end(struct xfer_recv_status *st, const void *arg)
{
    const struct end_arg *e = arg;

    st->offset = e->size;
    if (e->done) {
        st->done = true;
        memcpy(st->digest, e->digest, XFER_HASH_LEN);
    }
}

static void
on_end(xfer_recv_t *r, const struct xfer_hdr *h)
{
    struct end_arg e = {.size = h->len};
    struct xfer_recv_status st;
    struct xfer_hdr d = {.type = XFER_DONE, .session = r->session, .pass = h->pass};

    xfer_recv_status(r, &st);
    if (h->pass != st.pass || h->len != st.size) {
        fail_session(r, -EPROTO, "END of pass %u does not match pass %u", h->pass, st.pass);
        return;
    }
    if (h->final && st.done && st.offset == st.size) {
        /* The sender lost our DONE: say it again. */
        memcpy(d.hash, st.digest, XFER_HASH_LEN);
        reply(r, r->peer, r->peer_len, &d, NULL);
        return;
    }
    int rc = persist(r);
    if (rc >= 0 && h->final)
        rc = disk_digest(r, e.digest);
    if (rc < 0) {
        fail_session(r, rc, "cannot finish the image: %s", strerror(-rc));
        return;
    }
    e.done = h->final;
    set_status(r, st_end, &e);
    (void)persist(r);
    memcpy(d.hash, e.digest, XFER_HASH_LEN);
    reply(r, r->peer, r->peer_len, &d, NULL);
    if (h->final && r->fn)
        r->fn(r->userdata);
}

/* One message: [peer][header][payload]. */
static void
recv_one(xfer_recv_t *r, void *sock)
{
    zmq_msg_t part[3];
    int n = 0, more = 1;
    struct xfer_hdr h;

    for (; more && n < 3; n++) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[n]);
            break;
        }
        more = zmq_msg_more(&part[n]);
    }
    if (more)
        xfer_drain(sock);
    if (n < 2 || zmq_msg_size(&part[0]) > sizeof(r->peer) ||
        xfer_hdr_unpack(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), &h) < 0)
        goto out;
    const uint8_t *peer = zmq_msg_data(&part[0]);
    size_t peer_len = zmq_msg_size(&part[0]);
    if (h.type == XFER_HELLO) {
        on_hello(r, peer, peer_len, &h);
        goto out;
    }
    /* Everything else belongs to the current session, in order; a gap ends
     * the session (the sender times out and says HELLO again). */
    if (!r->in_session || h.session != r->session || peer_len != r->peer_len ||
        memcmp(peer, r->peer, peer_len) != 0)
        goto out;
    if (h.seq != r->next_seq) {
        r->in_session = false;
        goto out;
    }
    r->next_seq++;
    if (h.type == XFER_DATA || h.type == XFER_HOLE)
        on_chunk(r, &h, n > 2 ? &part[2] : NULL);
    else if (h.type == XFER_END)
        on_end(r, &h);
out:
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

/* One ZAP request (RFC 27) about a CurveZMQ sender: the pinned key gets in,
 * any other is refused at the handshake, so nothing it sends arrives. */
static void
zap_answer(xfer_recv_t *r)
{
    char f[7][64];
    int len[7] = {0}, n = 0, more = 1;
    size_t ml = sizeof(more);

    while (more && n < 7) {
        len[n] = zmq_recv(r->zap, f[n], sizeof(f[n]), ZMQ_DONTWAIT);
        if (len[n] < 0)
            return;
        n++;
        if (zmq_getsockopt(r->zap, ZMQ_RCVMORE, &more, &ml) < 0)
            more = 0;
    }
    if (more)
        xfer_drain(r->zap);
    bool ok = n == 7 && len[5] == 5 && memcmp(f[5], "CURVE", 5) == 0 && len[6] == 32 &&
              sodium_memcmp(f[6], r->client, 32) == 0;
    if (!ok) {
        pthread_mutex_lock(&r->lock);
        r->st.refused++;
        pthread_mutex_unlock(&r->lock);
    }
    /* version, request id, status, text, user id, metadata */
    int rid = n > 1 && len[1] > 0 ? (len[1] < 64 ? len[1] : 64) : 0;
    const char *code = ok ? "200" : "400", *text = ok ? "OK" : "not the sender's key";
    if (zmq_send(r->zap, "1.0", 3, ZMQ_SNDMORE) < 0 ||
        zmq_send(r->zap, f[1], (size_t)rid, ZMQ_SNDMORE) < 0 ||
        zmq_send(r->zap, code, 3, ZMQ_SNDMORE) < 0 ||
        zmq_send(r->zap, text, strlen(text), ZMQ_SNDMORE) < 0 ||
        zmq_send(r->zap, ok ? "sender" : "", ok ? 6 : 0, ZMQ_SNDMORE) < 0)
        return;
    (void)zmq_send(r->zap, "", 0, 0);
}

static void *
recv_main(void *arg)
{
    xfer_recv_t *r = arg;
    void *sock = r->sock;

    while (!atomic_load(&r->stop)) {
        zmq_pollitem_t it[2] = {{.socket = sock, .events = ZMQ_POLLIN},
                                {.socket = r->zap, .events = ZMQ_POLLIN}};
        if (zmq_poll(it, r->zap ? 2 : 1, 50) < 0 && errno != EINTR)
            break;
        if (r->zap && (it[1].revents & ZMQ_POLLIN))
            zap_answer(r);
        for (int budget = 0; budget < 256 && (it[0].revents & ZMQ_POLLIN); budget++) {
            int ev = 0;
            size_t el = sizeof(ev);
            if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &el) < 0 || !(ev & ZMQ_POLLIN))
                break;
            recv_one(r, sock);
        }
    }
    return NULL;
}

/* ---- lifecycle ---- */

static int
open_file(xfer_recv_t *r, const struct xfer_recv_config *cfg)
{
    r->fd = open(cfg->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (r->fd < 0)
        return -errno;
    if (cfg->fresh) {
        if (ftruncate(r->fd, 0) < 0)
            return -errno;
        r->fresh = true;
        if (cfg->state && unlink(cfg->state) < 0 && errno != ENOENT)
            return -errno;
        return 0;
    }
    if (cfg->state && xfer_recv_load_state(cfg->state, &r->st) < 0)
        memset(&r->st, 0, sizeof(r->st)); /* unreadable: start the pass over */
    return 0;
}

static int
open_sock(xfer_recv_t *r, const struct xfer_recv_config *cfg, char *endpoint)
{
    int one = 1;
    size_t n = XFER_ENDPOINT_MAX + 1;

    /* A context of its own: its ZAP endpoint answers for this socket only. */
    r->ctx = zmq_ctx_new();
    if (!r->ctx)
        return -ENOMEM;
    bool curve = cfg->keys && cfg->keys->public_key;
    if (curve) {
        int linger = 0;
        if (!cfg->keys->client_key || strlen(cfg->keys->client_key) != 40 ||
            !zmq_z85_decode(r->client, cfg->keys->client_key))
            return -EINVAL; /* a curve receiver always pins its sender */
        r->zap = zmq_socket(r->ctx, ZMQ_REP);
        if (!r->zap)
            return -ENOMEM;
        (void)zmq_setsockopt(r->zap, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_bind(r->zap, "inproc://zeromq.zap.01") < 0)
            return -errno;
    }
    r->sock = zmq_socket(r->ctx, ZMQ_ROUTER);
    if (!r->sock)
        return -ENOMEM;
    void *h = r->sock;
    xfer_sock_options(h);
    zmq_setsockopt(h, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    int rc = xfer_sock_keys(h, cfg->keys, true);
    if (rc < 0)
        return rc;
    if (curve && zmq_setsockopt(h, ZMQ_ZAP_DOMAIN, "vfleet-xfer", 11) < 0)
        return -EINVAL;
    if (zmq_bind(h, cfg->bind) < 0)
        return -errno;
    if (zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, endpoint, &n) < 0)
        return -errno;
    /* A wildcard address (0.0.0.0) is no place to connect to: keep the one
     * the caller bound, with the port the kernel chose. */
    const char *colon = strrchr(endpoint, ':');
    if (strncmp(cfg->bind, "tcp://", 6) == 0 && colon) {
        _cleanup_free_ char *host = xstrdup(cfg->bind);
        char *c = strrchr(host, ':');
        if (c && c > host + 6) {
            *c = '\0';
            snprintf(endpoint, XFER_ENDPOINT_MAX + 1, "%s%s", host, colon);
        }
    }
    return 0;
}

int
xfer_recv_new(const struct xfer_recv_config *cfg, xfer_recv_fn fn, void *userdata,
              xfer_recv_t **out, char endpoint[XFER_ENDPOINT_MAX + 1])
{
    xfer_recv_t *r = xcalloc(1, sizeof(*r));
    int rc;

    pthread_mutex_init(&r->lock, NULL);
    r->fd = -1;
    r->fn = fn;
    r->userdata = userdata;
    r->state = cfg->state ? xstrdup(cfg->state) : NULL;
    rc = sodium_init() < 0 ? -EIO : xfer_hex_decode(cfg->secret, r->secret, XFER_SECRET_LEN);
    if (rc >= 0)
        rc = open_file(r, cfg);
    if (rc >= 0)
        rc = open_sock(r, cfg, endpoint);
    if (rc >= 0 && (rc = -pthread_create(&r->thread, NULL, recv_main, r)) == 0)
        r->started = true;
    if (rc < 0) {
        xfer_recv_destroy(&r);
        return rc;
    }
    *out = r;
    return 0;
}

void
xfer_recv_status(xfer_recv_t *r, struct xfer_recv_status *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->st;
    pthread_mutex_unlock(&r->lock);
}

void
xfer_recv_destroy(xfer_recv_t **p)
{
    xfer_recv_t *r = *p;

    if (!r)
        return;
    atomic_store(&r->stop, true);
    if (r->started)
        pthread_join(r->thread, NULL);
    if (r->sock)
        zmq_close(r->sock);
    if (r->zap)
        zmq_close(r->zap);
    if (r->ctx)
        zmq_ctx_term(r->ctx);
    if (r->fd >= 0)
        close(r->fd);
    sodium_memzero(r->secret, sizeof(r->secret));
    pthread_mutex_destroy(&r->lock);
    free(r->state);
    free(r->buf);
    free(r->disk);
    free(r->dirty);
    free(r->todo);
    free(r);
    *p = NULL;
}
