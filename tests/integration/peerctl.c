/* peerctl: a node-link peer for the trust scenarios (trust_*.sh,
 * link_handover.sh) — honest, stolen-key or hostile, over real sockets.
 *
 *   peerctl -e ENDPOINT [KEYS] [-r ROUTING_ID] [-H HB_MS] [-t SECONDS] [-W FILE] COMMAND ARGS...
 *
 * KEYS: -k NODE_KEY_FILE (a node's key file: its pair and pinned master key),
 * -K (a fresh random key pair), -m MASTER_KEY (the server key to pin, Z85:
 * overrides the key file's), or -p for plaintext (NULL mechanism). -r sets
 * the routing id (default NAME/random, as a node's), -H turns on ZMTP
 * heartbeats with that interval (timeout 3x). -W makes hello create FILE
 * when it is first welcomed, and junk when each of its connections has been
 * closed by the master once, for a scenario to wait on while it runs.
 *
 * Commands (each prints one JSON object on stdout):
 *   hello NAME             says hello as NAME every 500 ms and heartbeats,
 *                          for -t seconds: {"welcomed", "nacks", "echoes",
 *                          "echoes_late", "refused", "last_nack",
 *                          "welcomed_ms", "dropped_ms"} (wall clock ms when
 *                          first welcomed, and when a welcomed connection was
 *                          first closed by the master; 0 = never)
 *   ack GUEST FROM TO [GEN]   forged acks of requests FROM..TO about GUEST
 *   usage GUEST TIME_MS    a forged usage sample (counters 2^40)
 *   event GUEST KIND       a forged guest event
 *   exec GUEST FROM TO     forged exec results of requests FROM..TO
 *   console GUEST FROM TO  forged console reads of requests FROM..TO
 *   join NAME              a join message with a fresh key
 *   rtt N                  hello, then N heartbeat round trips one after the
 *                          other: {"n", "median_us", "p90_us", "p99_us"}
 *   plain-mech NAME        a PLAIN-mechanism client saying hello
 *   junk N [PAUSE_MS]      N raw TCP connections sending garbage (bogus
 *                          greetings, random bytes, truncated CURVE hellos),
 *                          each reopened PAUSE_MS (default 0) after the
 *                          master closes it, for -t seconds or until
 *                          SIGTERM: {"opened", "closed_by_master",
 *                          "failed", "all_closed_ms"} (failed: refused or
 *                          reset before its garbage went; all_closed_ms:
 *                          when every connection had been closed by the
 *                          master once, after the start; 0 = never)
 *   garbage N              N frames that are not messages (random bytes,
 *                          truncated heartbeats, two-part frames) over the
 *                          key's session: {"sent", "nacks", "other"}
 *   flood N                N heartbeats as fast as they go, then an abrupt
 *                          close (RST: unread answers are pending)
 *   multi PARTS SIZE       messages of PARTS frames of SIZE bytes each, as
 *                          fast as they go for -t seconds, over the key's
 *                          session (libzmq reconnects it when the master
 *                          closes it): {"sent", "closed_by_master"}
 *   keygen                 prints a fresh public key (Z85), e.g. a wrong
 *                          master key to pin
 *
 * For the forged ones the answer is whatever comes back within -t seconds
 * (usually nothing: the master ignores them); the scenario checks the
 * master's state through its API. Exit status 0, or 2 on a usage error. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "common/mem.h"
#include "common/mtime.h"
#include "proto/keys.h"
#include "proto/link.h"
#include "proto/msg.h"

static const char *endpoint;
static struct keys_file keys;
static bool plain, fresh;
static const char *routing_id;
static const char *master_key;
static int hb_ms;
static unsigned seconds = 3;
static const char *welcomed_file; /* -W: hello's first welcome, junk's ramp */
static uint64_t next_id = 1;
static int sndhwm = 1000; /* forged batches are queued whole: 0 */

static void *ctx;

/* Creates -W's file (if any): what a scenario waits on. */
static void
mark_file(void)
{
    int fd;

    if (!welcomed_file)
        return;
    fd = open(welcomed_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fprintf(stderr, "peerctl: %s: %s\n", welcomed_file, strerror(errno));
    else
        close(fd);
}

/* A DEALER as the options say: curve with the keys, or plaintext. */
static void *
peer_socket(const char *name)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, linger = 0;
    char rid[LINK_PEER_SIZE];

    if (routing_id) {
        snprintf(rid, sizeof(rid), "%s", routing_id);
    } else {
        uint8_t r[8];
        if (getrandom(r, sizeof(r), 0) != sizeof(r))
            exit(1);
        snprintf(rid, sizeof(rid), "%s/%02x%02x%02x%02x%02x%02x%02x%02x", name, r[0], r[1], r[2],
                 r[3], r[4], r[5], r[6], r[7]);
    }
    zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, strlen(rid));
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof(sndhwm));
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    if (hb_ms > 0) {
        int tmo = hb_ms * 3;
        zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &hb_ms, sizeof(hb_ms));
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &tmo, sizeof(tmo));
    }
    /* A key libzmq refuses would leave the socket in plaintext: fail instead. */
    if (!plain && (zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, keys.public_key, KEYS_Z85_LEN) < 0 ||
                   zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, keys.secret_key, KEYS_Z85_LEN) < 0 ||
                   zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, master_key ? master_key : keys.master_key,
                                  KEYS_Z85_LEN) < 0)) {
        fprintf(stderr, "peerctl: bad CurveZMQ key: %s\n", zmq_strerror(zmq_errno()));
        exit(2);
    }
    if (zmq_connect(s, endpoint) < 0) {
        fprintf(stderr, "peerctl: connect %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        exit(1);
    }
    return s;
}

static int
send_msg(void *s, struct msg *m)
{
    _cleanup_free_ char *buf = NULL;
    size_t len;

    if (!m->id)
        m->id = next_id++;
    if (msg_encode(m, &buf, &len) < 0) {
        fprintf(stderr, "peerctl: cannot encode %s\n", msg_type_name(m->type));
        exit(1);
    }
    return zmq_send(s, buf, len, ZMQ_DONTWAIT) < 0 ? -zmq_errno() : 0;
}

/* Receives one message within ms; 0 and m filled, or -EAGAIN. */
static int
recv_msg(void *s, struct msg *m, int ms)
{
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    char buf[1 << 16];

    memset(m, 0, sizeof(*m));
    if (zmq_poll(&it, 1, ms) <= 0)
        return -EAGAIN;
    int n = zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT);
    if (n < 0 || (size_t)n > sizeof(buf))
        return -EAGAIN;
    return msg_decode(buf, (size_t)n, m, NULL, 0) == 0 ? 0 : -EBADMSG;
}

static void
fill_hello(struct msg *m, const char *name)
{
    *m = (struct msg){.type = MSG_HELLO};
    snprintf(m->u.hello.node, sizeof(m->u.hello.node), "%s", name);
    snprintf(m->u.hello.agent_version, sizeof(m->u.hello.agent_version), "peerctl");
    snprintf(m->u.hello.kernel, sizeof(m->u.hello.kernel), "test");
    snprintf(m->u.hello.cgroup, sizeof(m->u.hello.cgroup), "v2");
    snprintf(m->u.hello.backend, sizeof(m->u.hello.backend), "sim");
    m->u.hello.cpus = 1000;
    m->u.hello.memory = 1ULL << 30;
    m->u.hello.disk = 1ULL << 30;
    m->u.hello.max_guests = 1;
}

/* The socket's refused handshakes and closed connections (a monitor). */
static void *
watch_socket(void *s)
{
    char ep[64];
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;

    snprintf(ep, sizeof(ep), "inproc://peerctl-mon-%p", s);
    zmq_socket_monitor(s, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED);
    zmq_setsockopt(mon, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_connect(mon, ep);
    return mon;
}

/* Reads the monitor: sets *refused on a refused handshake, and returns
 * whether a connection was closed. */
static bool
watch_read(void *mon, bool *refused)
{
    uint8_t ev[6];
    char ep[256];
    uint16_t event;
    bool closed = false;

    while (mon && zmq_recv(mon, ev, sizeof(ev), ZMQ_DONTWAIT) == (int)sizeof(ev)) {
        zmq_recv(mon, ep, sizeof(ep), ZMQ_DONTWAIT);
        memcpy(&event, ev, sizeof(event));
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            *refused = true;
        else
            closed = true;
    }
    return closed;
}

static int
cmd_hello(const char *name)
{
    void *s = peer_socket(name), *mon = watch_socket(s);
    uint64_t end = time_mono_ms() + seconds * 1000ULL, half = time_mono_ms() + seconds * 500ULL;
    uint64_t next = 0;
    unsigned nacks = 0, echoes = 0, late = 0;
    bool welcomed = false, refused = false;
    uint64_t welcomed_ms = 0, dropped_ms = 0;
    char last[256] = "";

    while (time_mono_ms() < end) {
        struct msg m;
        if (time_mono_ms() >= next) {
            if (welcomed) {
                m = (struct msg){.type = MSG_HEARTBEAT};
                m.u.heartbeat.seq = next_id;
            } else {
                fill_hello(&m, name);
            }
            (void)send_msg(s, &m);
            msg_clear(&m);
            next = time_mono_ms() + 500;
        }
        if (watch_read(mon, &refused) && welcomed_ms && !dropped_ms)
            dropped_ms = time_real_ms();
        if (recv_msg(s, &m, 50) < 0)
            continue;
        if (m.type == MSG_WELCOME) {
            welcomed = true;
            if (!welcomed_ms) {
                welcomed_ms = time_real_ms();
                mark_file();
            }
        } else if (m.type == MSG_NACK) {
            nacks++;
            snprintf(last, sizeof(last), "%.200s", m.u.nack.message);
            if (m.u.nack.code == MSG_ERR_NOT_FOUND)
                welcomed = false;
        } else if (m.type == MSG_HEARTBEAT) {
            echoes++;
            late += time_mono_ms() >= half;
        }
        msg_clear(&m);
    }
    printf("{\"welcomed\": %s, \"nacks\": %u, \"echoes\": %u, \"echoes_late\": %u, "
           "\"refused\": %s, \"last_nack\": \"%s\", \"welcomed_ms\": %" PRIu64
           ", \"dropped_ms\": %" PRIu64 "}\n",
           welcomed ? "true" : "false", nacks, echoes, late, refused ? "true" : "false", last,
           welcomed_ms, dropped_ms);
    zmq_close(mon);
    zmq_close(s);
    return 0;
}

/* Sends m (a forged message) and prints what came back within -t seconds. */
static int
forge(struct msg *m, unsigned count)
{
    sndhwm = 0;
    void *s = peer_socket(keys.node[0] ? keys.node : "forger");
    uint64_t end = time_mono_ms() + seconds * 1000ULL;
    unsigned sent = 0, nacks = 0, other = 0;

    for (unsigned i = 0; i < count; i++) {
        /* IMMEDIATE is off: messages wait for the connection. */
        if (m[i].type != MSG_INVALID)
            sent += send_msg(s, &m[i]) == 0;
    }
    while (time_mono_ms() < end) {
        struct msg r;
        if (recv_msg(s, &r, 100) < 0)
            continue;
        if (r.type == MSG_NACK)
            nacks++;
        else
            other++;
        msg_clear(&r);
    }
    printf("{\"sent\": %u, \"nacks\": %u, \"other\": %u}\n", sent, nacks, other);
    zmq_close(s);
    return 0;
}

static int
cmd_forge(int argc, char **argv)
{
    const char *what = argv[0], *guest = argc > 1 ? argv[1] : "";
    uint64_t from = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    uint64_t to = argc > 3 ? strtoull(argv[3], NULL, 10) : from;
    unsigned n = 0;
    struct msg *m;

    if (to < from || to - from > 100000)
        return 2;
    m = xcalloc(to - from + 1, sizeof(*m));
    for (uint64_t ref = from; ref <= to; ref++, n++) {
        struct msg *x = &m[n];
        if (!strcmp(what, "ack")) {
            x->type = MSG_ACK;
            x->u.ack.ref = ref;
            snprintf(x->u.ack.id, sizeof(x->u.ack.id), "%s", guest);
            x->u.ack.generation = argc > 4 ? strtoull(argv[4], NULL, 10) : 999;
        } else if (!strcmp(what, "exec")) {
            x->type = MSG_EXEC_RESULT;
            x->u.exec_result.ref = ref;
            snprintf(x->u.exec_result.id, sizeof(x->u.exec_result.id), "%s", guest);
            x->u.exec_result.exit_code = 42;
            x->u.exec_result.out = xstrdup("forged\n");
            x->u.exec_result.out_len = 7;
        } else if (!strcmp(what, "console")) {
            x->type = MSG_CONSOLE_RESULT;
            x->u.console_result.ref = ref;
            snprintf(x->u.console_result.id, sizeof(x->u.console_result.id), "%s", guest);
            x->u.console_result.data = xstrdup("forged\n");
            x->u.console_result.len = x->u.console_result.total = 7;
        }
    }
    int r = forge(m, n);
    for (unsigned i = 0; i < n; i++)
        msg_clear(&m[i]);
    free(m);
    return r;
}

static int
cmd_usage(const char *guest, uint64_t time_ms)
{
    struct guest_usage u = {0};
    struct msg m = {.type = MSG_USAGE};

    snprintf(u.id, sizeof(u.id), "%s", guest);
    u.time_ms = time_ms;
    u.cpu_ns = 1ULL << 40;
    u.memory = 1ULL << 40;
    u.net_rx_bytes = 1ULL << 40;
    u.net_tx_bytes = 1ULL << 40;
    m.u.usage.n_samples = 1;
    m.u.usage.samples = xmalloc(sizeof(u));
    m.u.usage.samples[0] = u;
    int r = forge(&m, 1);
    msg_clear(&m);
    return r;
}

static int
cmd_event(const char *guest, const char *kind)
{
    struct msg m = {.type = MSG_EVENT};

    snprintf(m.u.event.id, sizeof(m.u.event.id), "%s", guest);
    snprintf(m.u.event.kind, sizeof(m.u.event.kind), "%s", kind);
    m.u.event.time_ms = time_real_ms() + 86400000ULL;
    snprintf(m.u.event.message, sizeof(m.u.event.message), "forged");
    return forge(&m, 1);
}

static int
cmd_join(const char *name)
{
    struct keys_file k = {0};
    struct msg m = {.type = MSG_JOIN};

    keys_generate(&k);
    snprintf(m.u.join.node, sizeof(m.u.join.node), "%s", name);
    snprintf(m.u.join.key, sizeof(m.u.join.key), "%s", k.public_key);
    return forge(&m, 1);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int
cmd_rtt(unsigned n)
{
    void *s = peer_socket(keys.node);
    uint64_t *rtt = xcalloc(n, sizeof(*rtt)), end = time_mono_ms() + 20000;
    bool welcomed = false;
    struct msg m;

    while (!welcomed && time_mono_ms() < end) {
        fill_hello(&m, keys.node);
        (void)send_msg(s, &m);
        msg_clear(&m);
        for (int i = 0; i < 10 && !welcomed; i++) {
            if (recv_msg(s, &m, 50) == 0)
                welcomed = m.type == MSG_WELCOME;
            msg_clear(&m);
        }
    }
    if (!welcomed) {
        printf("{\"error\": \"not welcomed\"}\n");
        return 1;
    }
    unsigned got = 0;
    for (unsigned i = 0; i < n && time_mono_ms() < end + 120000; i++) {
        uint64_t seq = 1000000 + i, t0 = time_mono_ns();
        m = (struct msg){.type = MSG_HEARTBEAT};
        m.u.heartbeat.seq = seq;
        (void)send_msg(s, &m);
        for (;;) {
            struct msg r;
            if (recv_msg(s, &r, 2000) < 0)
                break;
            bool echo = r.type == MSG_HEARTBEAT && r.u.heartbeat.seq == seq;
            msg_clear(&r);
            if (echo) {
                rtt[got++] = (time_mono_ns() - t0) / 1000;
                break;
            }
        }
    }
    qsort(rtt, got, sizeof(*rtt), cmp_u64);
    printf("{\"n\": %u, \"median_us\": %" PRIu64 ", \"p90_us\": %" PRIu64 ", \"p99_us\": %" PRIu64
           "}\n",
           got, got ? rtt[got / 2] : 0, got ? rtt[got * 9 / 10] : 0, got ? rtt[got * 99 / 100] : 0);
    free(rtt);
    zmq_close(s);
    return got == n ? 0 : 1;
}

static int
cmd_plain_mech(const char *name)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    struct msg m;
    int linger = 0;

    /* The hello is never taken: no lingering on it at exit. */
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_PLAIN_USERNAME, name, strlen(name));
    zmq_setsockopt(s, ZMQ_PLAIN_PASSWORD, "secret", 6);
    zmq_connect(s, endpoint);
    fill_hello(&m, name);
    (void)send_msg(s, &m);
    msg_clear(&m);
    unsigned got = 0;
    for (uint64_t end = time_mono_ms() + seconds * 1000ULL; time_mono_ms() < end;)
        if (recv_msg(s, &m, 100) == 0) {
            got++;
            msg_clear(&m);
        }
    printf("{\"answers\": %u}\n", got);
    zmq_close(s);
    return 0;
}

/* Garbage of kind k for a raw connection. */
static size_t
garbage(unsigned k, uint8_t *buf, size_t n)
{
    static const uint8_t greeting[] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0};
    if (getrandom(buf, n, 0) != (ssize_t)n)
        memset(buf, 0x5a, n);
    switch (k % 4) {
    case 0: /* random bytes */
        return n;
    case 1: /* a ZMTP 3 greeting asking for CURVE, then random "commands" */
        memcpy(buf, greeting, sizeof(greeting));
        memcpy(buf + sizeof(greeting), "CURVE", 5);
        memset(buf + sizeof(greeting) + 5, 0, 15);
        buf[32] = 0;
        return n;
    case 2: /* a greeting asking for NULL */
        memcpy(buf, greeting, sizeof(greeting));
        memcpy(buf + sizeof(greeting), "NULL", 4);
        memset(buf + sizeof(greeting) + 4, 0, 16);
        buf[32] = 0;
        return 64;
    default: /* half a greeting, then silence */
        memcpy(buf, greeting, 5);
        return 5;
    }
}

static int
tcp_open(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 &&
        errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static volatile sig_atomic_t junk_stop;

static void
on_term(int sig)
{
    (void)sig;
    junk_stop = 1;
}

static int
cmd_junk(unsigned n, unsigned pause_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[64];
    unsigned port;
    struct pollfd *p = xcalloc(n, sizeof(*p));
    uint64_t *reopen = xcalloc(n, sizeof(*reopen)); /* when a closed one comes back */
    bool *was_closed = xcalloc(n, sizeof(*was_closed));
    bool *sent = xcalloc(n, sizeof(*sent)); /* the connection took its garbage */
    uint64_t opened = 0, closed = 0, failed = 0, start = time_mono_ms(),
             end = start + seconds * 1000ULL;
    uint64_t all_closed_ms = 0;
    unsigned n_closed = 0; /* connections closed by the master at least once */
    uint8_t buf[512];
    struct sigaction sa_term = {.sa_handler = on_term};

    if (sscanf(endpoint, "tcp://%63[^:]:%u", host, &port) != 2 ||
        inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return 2;
    sa.sin_port = htons((uint16_t)port);
    sigaction(SIGTERM, &sa_term, NULL);
    for (unsigned i = 0; i < n; i++) {
        p[i].fd = tcp_open(&sa);
        p[i].events = POLLOUT;
        opened += p[i].fd >= 0;
    }
    while (!junk_stop && time_mono_ms() < end) {
        uint64_t now = time_mono_ms();
        for (unsigned i = 0; i < n; i++)
            if (p[i].fd < 0 && reopen[i] && now >= reopen[i]) {
                p[i].fd = tcp_open(&sa);
                p[i].events = POLLOUT;
                opened += p[i].fd >= 0;
                reopen[i] = p[i].fd < 0 ? now + pause_ms + 1 : 0;
            }
        if (poll(p, n, pause_ms ? 10 : 100) <= 0)
            continue;
        for (unsigned i = 0; i < n; i++) {
            if (!p[i].revents || p[i].fd < 0)
                continue;
            if (p[i].revents & POLLOUT) {
                /* A refused connect fails the write: not the master's close. */
                sent[i] = write(p[i].fd, buf, garbage(i, buf, sizeof(buf))) > 0;
                p[i].events = POLLIN;
            } else if (read(p[i].fd, buf, sizeof(buf)) <= 0) {
                /* The master closed it: a new one takes its place. */
                close(p[i].fd);
                if (!sent[i])
                    failed++;
                else
                    closed++;
                if (sent[i] && !was_closed[i]) {
                    was_closed[i] = true;
                    if (++n_closed == n) {
                        all_closed_ms = time_mono_ms() - start;
                        mark_file();
                    }
                }
                p[i].fd = -1;
                reopen[i] = time_mono_ms() + pause_ms;
                if (!pause_ms) {
                    p[i].fd = tcp_open(&sa);
                    p[i].events = POLLOUT;
                    opened += p[i].fd >= 0;
                    reopen[i] = 0;
                }
            }
        }
    }
    for (unsigned i = 0; i < n; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);
    printf("{\"opened\": %" PRIu64 ", \"closed_by_master\": %" PRIu64 ", \"failed\": %" PRIu64
           ", \"all_closed_ms\": %" PRIu64 "}\n",
           opened, closed, failed, all_closed_ms);
    free(sent);
    free(was_closed);
    free(reopen);
    free(p);
    return 0;
}

static int
cmd_flood(unsigned n)
{
    void *s = peer_socket(keys.node[0] ? keys.node : "flood");
    struct msg m = {.type = MSG_HEARTBEAT};
    unsigned sent = 0;

    for (uint64_t end = time_mono_ms() + seconds * 1000ULL; sent < n && time_mono_ms() < end;) {
        m.id = 0;
        if (send_msg(s, &m) == 0)
            sent++;
        else
            usleep(1000);
    }
    /* Linger 0 and unread answers in the kernel's buffer: close sends RST. */
    printf("{\"sent\": %u}\n", sent);
    zmq_close(s);
    return 0;
}

/* n frames that are not messages, over the key's session: random bytes,
 * truncated heartbeats, two-part frames; what came back within -t seconds. */
static int
cmd_garbage(unsigned n)
{
    sndhwm = 0;
    void *s = peer_socket(keys.node[0] ? keys.node : "garbage");
    struct msg hb = {.type = MSG_HEARTBEAT};
    _cleanup_free_ char *enc = NULL;
    size_t enc_len;
    unsigned sent = 0, nacks = 0, other = 0;
    char buf[256];

    if (msg_encode(&hb, &enc, &enc_len) < 0)
        return 1;
    for (unsigned i = 0; i < n; i++) {
        size_t len = 1 + i % sizeof(buf);
        if (getrandom(buf, len, 0) != (ssize_t)len)
            return 1;
        /* Never blocking: a refused key has no connection to queue on. */
        if (i % 5 == 0) /* a heartbeat cut short */
            sent += zmq_send(s, enc, enc_len - 1 - i % (enc_len - 1), ZMQ_DONTWAIT) >= 0;
        else if (i % 7 == 0) /* two parts */
            sent += zmq_send(s, buf, len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                    zmq_send(s, buf, 1, ZMQ_DONTWAIT) >= 0;
        else
            sent += zmq_send(s, buf, len, ZMQ_DONTWAIT) >= 0;
    }
    for (uint64_t end = time_mono_ms() + seconds * 1000ULL; time_mono_ms() < end;) {
        struct msg r;
        if (recv_msg(s, &r, 100) < 0)
            continue;
        if (r.type == MSG_NACK)
            nacks++;
        else
            other++;
        msg_clear(&r);
    }
    printf("{\"sent\": %u, \"nacks\": %u, \"other\": %u}\n", sent, nacks, other);
    zmq_close(s);
    return 0;
}

/* Messages of parts frames of size bytes, for -t seconds: no node sends a
 * message of more than one frame. */
static int
cmd_multi(unsigned parts, size_t size)
{
    void *s = peer_socket(keys.node[0] ? keys.node : "multi");
    void *mon = watch_socket(s);
    uint8_t *buf = xcalloc(1, size ? size : 1);
    uint64_t sent = 0, closed = 0;
    bool refused = false;

    if (parts < 1)
        return 2;
    for (uint64_t end = time_mono_ms() + seconds * 1000ULL; time_mono_ms() < end;) {
        /* The first part waits for room (a message's parts go together). */
        zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLOUT};
        if (zmq_poll(&it, 1, 10) <= 0) {
            closed += watch_read(mon, &refused);
            continue;
        }
        unsigned i = 0;
        for (; i < parts; i++)
            if (zmq_send(s, buf, size, (i + 1 < parts ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
                break;
        sent += i == parts;
        if ((sent & 1023) == 0)
            closed += watch_read(mon, &refused);
    }
    closed += watch_read(mon, &refused);
    printf("{\"sent\": %" PRIu64 ", \"closed_by_master\": %" PRIu64 ", \"refused\": %s}\n", sent,
           closed, refused ? "true" : "false");
    free(buf);
    zmq_socket_monitor(s, NULL, 0);
    zmq_close(mon);
    zmq_close(s);
    return 0;
}

static int
usage_error(void)
{
    fprintf(stderr, "usage: peerctl -e ENDPOINT [-k KEYFILE | -K | -p] [-m MASTER_KEY] [-r ID] "
                    "[-H MS] [-t S] [-W FILE] COMMAND ARGS...\n");
    return 2;
}

static int
run(int argc, char **argv)
{
    const char *c = argv[0];

    if (!strcmp(c, "hello") && argc == 2)
        return cmd_hello(argv[1]);
    if ((!strcmp(c, "ack") || !strcmp(c, "exec") || !strcmp(c, "console")) && argc >= 4)
        return cmd_forge(argc, argv);
    if (!strcmp(c, "usage") && argc == 3)
        return cmd_usage(argv[1], strtoull(argv[2], NULL, 10));
    if (!strcmp(c, "event") && argc == 3)
        return cmd_event(argv[1], argv[2]);
    if (!strcmp(c, "join") && argc == 2)
        return cmd_join(argv[1]);
    if (!strcmp(c, "rtt") && argc == 2)
        return cmd_rtt((unsigned)atoi(argv[1]));
    if (!strcmp(c, "plain-mech") && argc == 2)
        return cmd_plain_mech(argv[1]);
    if (!strcmp(c, "junk") && (argc == 2 || argc == 3))
        return cmd_junk((unsigned)atoi(argv[1]), argc == 3 ? (unsigned)atoi(argv[2]) : 0);
    if (!strcmp(c, "garbage") && argc == 2)
        return cmd_garbage((unsigned)atoi(argv[1]));
    if (!strcmp(c, "flood") && argc == 2)
        return cmd_flood((unsigned)atoi(argv[1]));
    if (!strcmp(c, "multi") && argc == 3)
        return cmd_multi((unsigned)atoi(argv[1]), (size_t)atoi(argv[2]));
    if (!strcmp(c, "keygen") && argc == 1) {
        struct keys_file k = {0};
        keys_generate(&k);
        printf("%s\n", k.public_key);
        return 0;
    }
    return usage_error();
}

int
main(int argc, char **argv)
{
    const char *keyfile = NULL;
    int c, r;

    while ((c = getopt(argc, argv, "+e:k:Kpm:r:H:t:W:")) != -1) {
        switch (c) {
        case 'e':
            endpoint = optarg;
            break;
        case 'k':
            keyfile = optarg;
            break;
        case 'K':
            fresh = true;
            break;
        case 'p':
            plain = true;
            break;
        case 'm':
            master_key = optarg;
            break;
        case 'r':
            routing_id = optarg;
            break;
        case 'H':
            hb_ms = atoi(optarg);
            break;
        case 't':
            seconds = (unsigned)atoi(optarg);
            break;
        case 'W':
            welcomed_file = optarg;
            break;
        default:
            return usage_error();
        }
    }
    if (!endpoint || optind >= argc)
        return usage_error();
    if (keyfile && (r = keys_file_load(keyfile, &keys)) < 0) {
        fprintf(stderr, "peerctl: %s: %s\n", keyfile, strerror(-r));
        return 2;
    }
    if (fresh)
        keys_generate(&keys);
    if (!plain && !keyfile && !fresh && strcmp(argv[optind], "junk") != 0 &&
        strcmp(argv[optind], "plain-mech") != 0 && strcmp(argv[optind], "keygen") != 0)
        return usage_error();
    ctx = zmq_ctx_new();
    r = run(argc - optind, argv + optind);
    zmq_ctx_term(ctx);
    return r;
}
