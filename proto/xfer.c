/* The data channel's frames, hashing and the sender (xfer.h). The receiver's
 * thread is in xfer_recv.c.
 *
 * Every message is one header frame of XFER_HDR bytes (little-endian fixed
 * fields, below), a DATA message adds the chunk's bytes as a second frame and
 * DENY/FAIL a sentence. The ROUTER side sees the routing id before them. */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/le.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "proto/link.h"
#include "proto/xfer_int.h"

/* ---------------------------------------------------------------- frames */

void
xfer_hdr_pack(const struct xfer_hdr *h, uint8_t out[XFER_HDR])
{
    memset(out, 0, XFER_HDR);
    memcpy(out, XFER_MAGIC, 4);
    out[4] = h->type;
    out[5] = h->final ? 1 : 0;
    le64_put(out, 8, h->session);
    le64_put(out, 16, h->seq);
    le32_put(out, 24, h->pass);
    le32_put(out, 28, h->chunk);
    le64_put(out, 32, h->offset);
    le64_put(out, 40, h->len);
    memcpy(out + 48, h->hash, XFER_HASH_LEN);
}

int
xfer_hdr_unpack(const uint8_t *in, size_t n, struct xfer_hdr *h)
{
    if (n != XFER_HDR || memcmp(in, XFER_MAGIC, 4) != 0 || in[4] < XFER_HELLO ||
        in[4] > XFER_FAIL || in[5] > 1 || in[6] || in[7])
        return -EBADMSG;
    h->type = in[4];
    h->final = in[5] == 1;
    h->session = le64_at(in, 8);
    h->seq = le64_at(in, 16);
    h->pass = le32_at(in, 24);
    h->chunk = le32_at(in, 28);
    h->offset = le64_at(in, 32);
    h->len = le64_at(in, 40);
    memcpy(h->hash, in + 48, XFER_HASH_LEN);
    return 0;
}

int
xfer_send_frames(void *sock, const void *peer, size_t peer_len, const struct xfer_hdr *h,
                 const void *payload, size_t len)
{
    uint8_t buf[XFER_HDR];

    xfer_hdr_pack(h, buf);
    if (peer && zmq_send(sock, peer, peer_len, ZMQ_SNDMORE) < 0)
        return -errno;
    if (zmq_send(sock, buf, sizeof(buf), payload ? ZMQ_SNDMORE : 0) < 0)
        return -errno;
    if (payload && zmq_send(sock, payload, len, 0) < 0)
        return -errno;
    return 0;
}

void
xfer_drain(void *sock)
{
    int more = 1;
    size_t ml = sizeof(more);

    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int n = zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (n < 0)
            break;
    }
}

void
xfer_sock_options(void *sock)
{
    int linger = 0;
    int64_t maxmsg = XFER_CHUNK + 4096;

    /* Both cannot fail on a fresh socket with valid values. */
    (void)zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    (void)zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
}

int
xfer_sock_keys(void *sock, const struct xfer_keys *k, bool server)
{
    int one = 1;

    if (!k || !k->public_key || !k->secret_key)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_key, 40) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_key, 40) < 0)
        return -EINVAL;
    if (server)
        return zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) < 0 ? -EINVAL : 0;
    if (!k->server_key || zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server_key, 40) < 0)
        return -EINVAL;
    return 0;
}

/* ---------------------------------------------------------------- hashing */

int
xfer_hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n)
        return -EINVAL;
    for (size_t i = 0; i < 2 * n; i++)
        if (!strchr("0123456789abcdef", hex[i]) || !hex[i])
            return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -EINVAL;
        out[i] = (uint8_t)v;
    }
    return 0;
}

void
xfer_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void
xfer_secret_new(char out[2 * XFER_SECRET_LEN + 1])
{
    uint8_t b[XFER_SECRET_LEN];

    if (sodium_init() < 0)
        abort(); /* no randomness: nothing sensible to do */
    randombytes_buf(b, sizeof(b));
    xfer_hex_encode(b, sizeof(b), out);
}

void
xfer_hash(const void *buf, size_t len, uint8_t out[XFER_HASH_LEN])
{
    /* Nettle's SHA-256 uses the CPU's SHA extensions where there are any
     * (as GnuTLS's did: the same speed here, twice libsodium's BLAKE2b),
     * without loading GnuTLS into the node agent. */
    struct sha256_ctx c;

    sha256_init(&c);
    sha256_update(&c, len, buf);
    sha256_digest(&c, XFER_HASH_LEN, out);
}

/* The digest of a sequence of chunk hashes. */
struct xfer_digest {
    struct sha256_ctx h; /* a running SHA-256 */
};

static void
digest_init(struct xfer_digest *d)
{
    sha256_init(&d->h);
}

static void
digest_add(struct xfer_digest *d, const uint8_t h[XFER_HASH_LEN])
{
    sha256_update(&d->h, XFER_HASH_LEN, h);
}

static void
digest_end(struct xfer_digest *d, uint8_t out[XFER_HASH_LEN])
{
    sha256_digest(&d->h, XFER_HASH_LEN, out);
}

void
xfer_zero_hash(size_t len, uint8_t out[XFER_HASH_LEN])
{
    static uint8_t full[XFER_HASH_LEN];
    static bool have;
    _cleanup_free_ uint8_t *zeros = NULL;

    /* The hash of a whole zero chunk is asked for once per hole: keep it.
     * (Benign race: every thread computes the same bytes.) */
    if (len == XFER_CHUNK && have) {
        memcpy(out, full, XFER_HASH_LEN);
        return;
    }
    zeros = xcalloc(1, len ? len : 1);
    xfer_hash(zeros, len, out);
    if (len == XFER_CHUNK) {
        memcpy(full, out, XFER_HASH_LEN);
        have = true;
    }
}

bool
xfer_is_zero(const uint8_t *buf, size_t len)
{
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

int
xfer_chunk_hash(int fd, uint64_t off, size_t len, uint64_t seek[2], uint8_t *buf,
                uint8_t out[XFER_HASH_LEN], bool *zero)
{
    /* seek caches where the next data starts at or after seek[0] (seek[1],
     * UINT64_MAX: none), so a run of holes costs one SEEK_DATA; a walk that
     * goes back (a new session) asks again. */
    if (seek[1] < off || off < seek[0]) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno != ENXIO)
            return -errno;
        seek[0] = off;
        seek[1] = d < 0 ? UINT64_MAX : (uint64_t)d;
    }
    if (seek[1] >= off + len) {
        xfer_zero_hash(len, out);
        *zero = true;
        return 0;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            memset(buf + got, 0, len - got); /* a file that shrank reads as zeros */
            break;
        }
        got += (size_t)n;
    }
    *zero = xfer_is_zero(buf, len);
    if (*zero)
        xfer_zero_hash(len, out);
    else
        xfer_hash(buf, len, out);
    return 0;
}

void
xfer_digest_of(const uint8_t (*hashes)[XFER_HASH_LEN], uint64_t n, uint8_t out[XFER_HASH_LEN])
{
    struct xfer_digest st;

    digest_init(&st);
    for (uint64_t i = 0; i < n; i++)
        digest_add(&st, hashes[i]);
    digest_end(&st, out);
}

int
xfer_file_digest(int fd, uint8_t out[XFER_HASH_LEN])
{
    struct xfer_digest st;
    struct stat sb;
    uint64_t seek[2] = {UINT64_MAX, 0};
    bool zero;
    uint8_t h[XFER_HASH_LEN];

    if (fstat(fd, &sb) < 0)
        return -errno;
    _cleanup_free_ uint8_t *buf = xmalloc(XFER_CHUNK);
    digest_init(&st);
    for (uint64_t off = 0; off < (uint64_t)sb.st_size; off += XFER_CHUNK) {
        size_t len =
            (uint64_t)sb.st_size - off < XFER_CHUNK ? (size_t)(sb.st_size - off) : XFER_CHUNK;
        int r = xfer_chunk_hash(fd, off, len, seek, buf, h, &zero);
        if (r < 0) {
            digest_end(&st, h);
            return r;
        }
        digest_add(&st, h);
    }
    digest_end(&st, out);
    return 0;
}

/* ---------------------------------------------------------------- sender */

struct xfer_send {
    void *sock;                      /* DEALER connected to the receiver (link_socket) */
    void *monitor;                   /* curve: its handshake events (a refused key) */
    uint8_t secret[XFER_SECRET_LEN]; /* the transfer secret */
    uint32_t pass;                   /* passes sent so far */
    uint8_t (*prev)[XFER_HASH_LEN];  /* the last pass's chunk hashes, NULL = none */
    uint64_t prev_chunks;            /* entries in prev */
};

/* A curve sender watches its handshakes, so a receiver that refuses its key
 * is an error at once instead of two minutes of silence. Our end of the
 * monitor has an unlimited queue: libzmq sends events blocking. */
static int
watch_handshakes(xfer_send_t *s)
{
    char ep[64];
    int hwm = 0;
    uint64_t rnd;

    randombytes_buf(&rnd, sizeof(rnd));
    snprintf(ep, sizeof(ep), "inproc://vf-xfer-mon-%016llx", (unsigned long long)rnd);
    s->monitor = link_socket(ZMQ_PAIR);
    if (!s->monitor || zmq_socket_monitor(s->sock, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
        zmq_setsockopt(s->monitor, ZMQ_RCVHWM, &hwm, sizeof(hwm)) < 0 ||
        zmq_connect(s->monitor, ep) < 0)
        return zmq_errno() ? -zmq_errno() : -ENOMEM;
    return 0;
}

/* Whether the receiver refused our key at a handshake since the last call. */
static bool
key_refused(xfer_send_t *s)
{
    void *h = s->monitor ? s->monitor : NULL;
    uint8_t ev[6];
    char ep[256];
    bool refused = false;

    while (h && zmq_recv(h, ev, sizeof(ev), ZMQ_DONTWAIT) == (int)sizeof(ev)) {
        uint16_t event;
        (void)zmq_recv(h, ep, sizeof(ep), ZMQ_DONTWAIT);
        memcpy(&event, ev, sizeof(event));
        refused |= event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    }
    return refused;
}

int
xfer_send_new(const char *endpoint, const char *secret, const struct xfer_keys *keys,
              xfer_send_t **out)
{
    xfer_send_t *s = xcalloc(1, sizeof(*s));

    if (sodium_init() < 0 || xfer_hex_decode(secret, s->secret, sizeof(s->secret)) < 0) {
        free(s);
        return -EINVAL;
    }
    s->sock = link_socket(ZMQ_DEALER);
    if (!s->sock) {
        free(s);
        return -ENOMEM;
    }
    void *h = s->sock;
    xfer_sock_options(h);
    int r = xfer_sock_keys(h, keys, false);
    if (r >= 0 && keys && keys->public_key)
        r = watch_handshakes(s);
    if (r >= 0 && zmq_connect(h, endpoint) < 0)
        r = -errno;
    if (r < 0) {
        xfer_send_destroy(&s);
        return r;
    }
    *out = s;
    return 0;
}

void
xfer_send_destroy(xfer_send_t **p)
{
    xfer_send_t *s = *p;

    if (!s)
        return;
    /* The monitor stops before its receiving end closes (events block). */
    if (s->monitor && s->sock)
        (void)zmq_socket_monitor(s->sock, NULL, 0);
    link_socket_close(&s->monitor);
    link_socket_close(&s->sock);
    sodium_memzero(s->secret, sizeof(s->secret));
    free(s->prev);
    free(s);
    *p = NULL;
}

/* One pass's working state. */
struct pass {
    xfer_send_t *s;                   /* the sender */
    int fd;                           /* the image */
    bool final;                       /* ends with the digest */
    uint64_t size;                    /* the image's size */
    uint64_t chunks;                  /* chunks in it */
    uint8_t (*hashes)[XFER_HASH_LEN]; /* this pass's chunk hashes */
    uint8_t *known;                   /* per chunk: hash computed (1), and zero (2) */
    uint8_t *buf;                     /* one chunk */
    uint64_t seek[2];                 /* SEEK_DATA cache (xfer_chunk_hash) */
    uint64_t session;                 /* the current session */
    uint64_t seq;                     /* DATA/HOLE sent in it */
    uint64_t credit;                  /* chunks we may still send */
    uint64_t heard_ms;                /* when the receiver last answered */
    atomic_bool *cancel;              /* the caller's cancel flag */
    xfer_progress_fn fn;              /* progress */
    void *userdata;                   /* for fn */
    struct xfer_stats st;             /* the figures */
    uint8_t theirs[XFER_HASH_LEN];    /* DONE: the receiver's digest */
    char *err;                        /* the caller's sentence buffer */
    size_t errlen;                    /* its size */
};

static int pass_fail(struct pass *p, int r, const char *fmt, ...) _printf_(3, 4);

static int
pass_fail(struct pass *p, int r, const char *fmt, ...)
{
    va_list ap;

    if (p->err && p->errlen) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* Waits up to XFER_SILENCE_MS for one message of this session. 1 with h
 * filled, 0 on silence, or -errno (DENY, FAIL and cancel included). */
static int
pass_recv(struct pass *p, struct xfer_hdr *h)
{
    void *sock = p->s->sock;
    uint64_t until = time_mono_ms() + XFER_SILENCE_MS;

    for (;;) {
        uint64_t now = time_mono_ms();
        if (p->cancel && atomic_load(p->cancel))
            return pass_fail(p, -ECANCELED, "cancelled");
        if (now >= until)
            return 0;
        if (key_refused(p->s))
            return pass_fail(p, -EACCES,
                             "the receiver refused this sender's key (CurveZMQ): it expects "
                             "another node");
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        long wait = (long)(until - now) < 200 ? (long)(until - now) : 200;
        if (zmq_poll(&it, 1, wait) < 0 && errno != EINTR)
            return -errno;
        if (!(it.revents & ZMQ_POLLIN))
            continue;
        uint8_t buf[XFER_HDR];
        char text[256] = "";
        int n = zmq_recv(sock, buf, sizeof(buf), ZMQ_DONTWAIT);
        int more = 0;
        size_t ml = sizeof(more);
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        if (more) {
            int t = zmq_recv(sock, text, sizeof(text) - 1, ZMQ_DONTWAIT);
            text[t > 0 ? (t < (int)sizeof(text) ? t : (int)sizeof(text) - 1) : 0] = '\0';
            xfer_drain(sock);
        }
        if (n < 0 || xfer_hdr_unpack(buf, (size_t)n, h) < 0 || h->session != p->session)
            continue; /* not ours: an old session's answer */
        p->heard_ms = time_mono_ms();
        if (h->type == XFER_DENY)
            return pass_fail(p, -EACCES, "the receiver refused us: %s", text);
        if (h->type == XFER_FAIL)
            return pass_fail(p, h->len ? -(int)h->len : -EIO, "the receiver failed: %s", text);
        return 1;
    }
}

/* HELLO and READY: 1 with the resume offset in *resume, 0 on silence. */
static int
pass_hello(struct pass *p, uint64_t *resume)
{
    struct xfer_hdr h = {.type = XFER_HELLO,
                         .final = p->final,
                         .pass = p->s->pass,
                         .chunk = XFER_CHUNK,
                         .len = p->size};

    randombytes_buf(&p->session, sizeof(p->session));
    p->seq = 0;
    p->credit = 0;
    p->st.sessions++;
    h.session = p->session;
    memcpy(h.hash, p->s->secret, XFER_SECRET_LEN);
    int r = xfer_send_frames(p->s->sock, NULL, 0, &h, NULL, 0);
    if (r < 0)
        return pass_fail(p, r, "cannot send HELLO: %s", strerror(-r));
    for (;;) {
        r = pass_recv(p, &h);
        if (r <= 0)
            return r;
        if (h.type != XFER_READY)
            continue;
        if (h.offset > p->size || h.offset % XFER_CHUNK != 0 || h.pass != p->s->pass)
            return pass_fail(p, -EPROTO, "the receiver resumes at %llu, not a chunk",
                             (unsigned long long)h.offset);
        *resume = h.offset;
        p->credit = h.len;
        return 1;
    }
}

/* Waits for credit: 1 when there is some, 0 on silence. */
static int
pass_credit(struct pass *p)
{
    struct xfer_hdr h;

    while (p->credit == 0) {
        int r = pass_recv(p, &h);
        if (r <= 0)
            return r;
        if (h.type == XFER_CREDIT)
            p->credit += h.len;
    }
    return 1;
}

static void
pass_chunk_range(const struct pass *p, uint64_t i, uint64_t *off, size_t *len)
{
    *off = i * XFER_CHUNK;
    *len = p->size - *off < XFER_CHUNK ? (size_t)(p->size - *off) : XFER_CHUNK;
}

/* Chunk i's hash into p->hashes (reading it into p->buf when it has data):
 * 1 when its bytes are in p->buf now, 0 when not (hole or zeros). */
static int
pass_hash(struct pass *p, uint64_t i)
{
    uint64_t off;
    size_t len;
    bool zero;

    pass_chunk_range(p, i, &off, &len);
    int r = xfer_chunk_hash(p->fd, off, len, p->seek, p->buf, p->hashes[i], &zero);
    if (r < 0)
        return pass_fail(p, r, "cannot read the image at %llu: %s", (unsigned long long)off,
                         strerror(-r));
    p->known[i] = zero ? 3 : 1;
    return zero ? 0 : 1;
}

static bool
pass_changed(const struct pass *p, uint64_t i)
{
    return !p->s->prev || i >= p->s->prev_chunks ||
           memcmp(p->s->prev[i], p->hashes[i], XFER_HASH_LEN) != 0;
}

/* Sends chunk i if it changed: 1 sent or not needed, 0 on silence. */
static int
pass_chunk(struct pass *p, uint64_t i)
{
    uint64_t off;
    size_t len;
    bool had = p->known[i] != 0;

    pass_chunk_range(p, i, &off, &len);
    int inbuf = had ? 0 : pass_hash(p, i);
    if (inbuf < 0)
        return inbuf;
    bool zero = p->known[i] == 3;
    if (!zero && !inbuf && pass_changed(p, i)) {
        /* Hashed before (the scan ahead, an earlier session) and to be sent:
         * read it again, as it is now. */
        inbuf = pass_hash(p, i);
        if (inbuf < 0)
            return inbuf;
        zero = !inbuf;
    }
    bool changed = pass_changed(p, i);
    if (!zero)
        p->st.scanned += len;
    /* A first pass leaves zeros out (the receiver's file is sparse); a later
     * one punches a chunk that became zeros. */
    if (!changed || (zero && !p->s->prev)) {
        p->st.skipped += len;
        return 1;
    }
    int r = pass_credit(p);
    if (r <= 0)
        return r;
    struct xfer_hdr h = {.type = zero ? XFER_HOLE : XFER_DATA,
                         .session = p->session,
                         .seq = ++p->seq,
                         .pass = p->s->pass,
                         .chunk = XFER_CHUNK,
                         .offset = off,
                         .len = len};
    memcpy(h.hash, p->hashes[i], XFER_HASH_LEN);
    r = xfer_send_frames(p->s->sock, NULL, 0, &h, zero ? NULL : p->buf, len);
    if (r < 0)
        return pass_fail(p, r, "cannot send a chunk: %s", strerror(-r));
    p->credit--;
    if (!zero)
        p->st.sent += len;
    return 1;
}

/* END and DONE: 1 with the receiver's digest in p->theirs, 0 on silence. */
static int
pass_end(struct pass *p)
{
    struct xfer_hdr h = {.type = XFER_END,
                         .final = p->final,
                         .session = p->session,
                         .seq = ++p->seq,
                         .pass = p->s->pass,
                         .chunk = XFER_CHUNK,
                         .len = p->size};
    int r = xfer_send_frames(p->s->sock, NULL, 0, &h, NULL, 0);

    if (r < 0)
        return pass_fail(p, r, "cannot send END: %s", strerror(-r));
    for (;;) {
        r = pass_recv(p, &h);
        if (r <= 0)
            return r;
        if (h.type == XFER_DONE && h.pass == p->s->pass) {
            memcpy(p->theirs, h.hash, XFER_HASH_LEN);
            return 1;
        }
    }
}

/* A later pass compares every chunk's hash with the last pass's: hash them
 * all first on a few threads (the pass then reads only what changed). */
#define SCAN_THREADS 4
#define SCAN_STRIPE  64 /* chunks a thread takes in a row (16 MiB) */

struct scan {
    struct pass *p; /* hashes and known filled in (disjoint chunks per thread) */
    unsigned k, n;  /* this thread's stripe, of n */
    int result;     /* 0 or -errno */
};

static void *
scan_main(void *arg)
{
    struct scan *sc = arg;
    struct pass *p = sc->p;
    uint64_t seek[2] = {UINT64_MAX, 0};
    _cleanup_free_ uint8_t *buf = xmalloc(XFER_CHUNK);
    bool zero;

    for (uint64_t i0 = (uint64_t)sc->k * SCAN_STRIPE; i0 < p->chunks;
         i0 += (uint64_t)sc->n * SCAN_STRIPE) {
        if (p->cancel && atomic_load(p->cancel))
            return NULL;
        for (uint64_t i = i0; i < i0 + SCAN_STRIPE && i < p->chunks; i++) {
            uint64_t off;
            size_t len;
            pass_chunk_range(p, i, &off, &len);
            sc->result = xfer_chunk_hash(p->fd, off, len, seek, buf, p->hashes[i], &zero);
            if (sc->result < 0)
                return NULL;
            p->known[i] = zero ? 3 : 1;
        }
    }
    return NULL;
}

static void
pass_scan(struct pass *p)
{
    struct scan sc[SCAN_THREADS];
    pthread_t t[SCAN_THREADS];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus < 2 ? 1 : cpus > SCAN_THREADS ? SCAN_THREADS : (unsigned)cpus;
    bool started[SCAN_THREADS] = {false};

    for (unsigned k = 0; k < n; k++) {
        sc[k] = (struct scan){.p = p, .k = k, .n = n};
        started[k] = pthread_create(&t[k], NULL, scan_main, &sc[k]) == 0;
        if (!started[k])
            scan_main(&sc[k]);
    }
    for (unsigned k = 0; k < n; k++) {
        if (started[k])
            pthread_join(t[k], NULL);
        if (sc[k].result < 0) /* what failed is hashed again in the pass, and fails there */
            memset(p->known, 0, p->chunks);
    }
}

/* One session: HELLO, the chunks from where the receiver stands, END.
 * 1 when the pass is done, 0 when the receiver went silent. */
static int
pass_session(struct pass *p)
{
    uint64_t resume = 0;
    int r = pass_hello(p, &resume);

    if (r <= 0)
        return r;
    p->st.resumed = resume;
    for (uint64_t i = 0; i < p->chunks; i++) {
        if (i * XFER_CHUNK < resume) {
            /* The receiver has it from this pass: only its hash is needed. */
            if (!p->known[i] && pass_hash(p, i) < 0)
                return -EIO;
            continue;
        }
        r = pass_chunk(p, i);
        if (r <= 0)
            return r;
        if (p->fn && (i % 16 == 0 || i + 1 == p->chunks))
            p->fn(p->userdata, &p->st);
    }
    return pass_end(p);
}

static uint64_t
data_bytes(int fd, uint64_t size)
{
    uint64_t total = 0, off = 0;

    while (off < size) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0)
            break;
        off_t e = lseek(fd, d, SEEK_HOLE);
        if (e < 0)
            e = (off_t)size;
        /* Whole chunks: a chunk with any data in it is read. */
        uint64_t from = (uint64_t)d / XFER_CHUNK * XFER_CHUNK;
        uint64_t to = ((uint64_t)e + XFER_CHUNK - 1) / XFER_CHUNK * XFER_CHUNK;
        if (to > size)
            to = size;
        if (from < off)
            from = off;
        total += to > from ? to - from : 0;
        off = to > (uint64_t)e ? to : (uint64_t)e;
    }
    return total;
}

static void
pass_free(struct pass *p)
{
    free(p->known);
    free(p->buf);
    free(p->hashes);
}

static int
pass_digest(struct pass *p, uint8_t digest[XFER_HASH_LEN])
{
    struct xfer_digest st;

    digest_init(&st);
    for (uint64_t i = 0; i < p->chunks; i++)
        digest_add(&st, p->hashes[i]);
    digest_end(&st, digest);
    if (p->final && sodium_memcmp(digest, p->theirs, XFER_HASH_LEN) != 0)
        return pass_fail(p, -EBADMSG,
                         "the receiver's copy differs from the image sent (digest mismatch)");
    return 0;
}

int
xfer_send_pass(xfer_send_t *s, int fd, bool final, atomic_bool *cancel, xfer_progress_fn fn,
               void *userdata, uint8_t digest[XFER_HASH_LEN], struct xfer_stats *stats, char *err,
               size_t errlen)
{
    struct pass p = {.s = s,
                     .fd = fd,
                     .final = final,
                     .cancel = cancel,
                     .fn = fn,
                     .userdata = userdata,
                     .err = err,
                     .errlen = errlen};
    struct stat sb;
    int r;

    if (fd >= 0 && fstat(fd, &sb) < 0)
        return pass_fail(&p, -errno, "cannot stat the image: %s", strerror(errno));
    p.size = fd >= 0 ? (uint64_t)sb.st_size : 0;
    if (p.size > XFER_MAX_SIZE)
        return pass_fail(&p, -EFBIG, "the image is larger than 256 TiB");
    p.chunks = (p.size + XFER_CHUNK - 1) / XFER_CHUNK;
    p.hashes = xcalloc(p.chunks ? p.chunks : 1, XFER_HASH_LEN);
    p.known = xcalloc(p.chunks ? p.chunks : 1, 1);
    p.buf = xmalloc(XFER_CHUNK);
    s->pass++;
    p.st = (struct xfer_stats){
        .pass = s->pass, .final = final, .data_total = fd >= 0 ? data_bytes(fd, p.size) : 0};
    p.heard_ms = time_mono_ms();
    p.seek[0] = UINT64_MAX;
    if (s->prev && fd >= 0)
        pass_scan(&p);
    for (;;) {
        p.st.scanned = p.st.sent = p.st.skipped = 0;
        r = pass_session(&p);
        if (r != 0)
            break;
        if (time_mono_ms() - p.heard_ms > XFER_GIVE_UP_MS) {
            r = pass_fail(&p, -ETIMEDOUT, "the receiver has been silent for %u s",
                          XFER_GIVE_UP_MS / 1000);
            break;
        }
    }
    if (r > 0)
        r = pass_digest(&p, digest);
    if (stats)
        *stats = p.st;
    if (r >= 0) {
        /* This pass's hashes are what the next one compares with. */
        free(s->prev);
        s->prev = p.hashes;
        s->prev_chunks = p.chunks;
        p.hashes = NULL;
    }
    pass_free(&p);
    return r < 0 ? r : 0;
}
