/* The CLI's side of a WebSocket session: the HTTP upgrade written by hand on
 * a connection libcurl made (its TLS, pin and Unix socket), then frames.
 * Input is binary frames led by channel byte 0; output comes as binary
 * frames led by 1 (stdout) or 2 (stderr); the end is a text frame
 * {"exit":N,"signal":S,"message":M} and a close frame. The terminal is in raw
 * mode for the session and restored on every way out. */
#include "cli/shell.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <termios.h>
#include <unistd.h>

#define FRAME_MAX (64u << 10) /* bytes of one frame we accept */

/* The session. */
struct sess {
    struct cli_ctx *ctx; /* where messages go */
    CURL *h;             /* the connection */
    int fd;              /* its socket, for poll */
    char *in;            /* bytes received, not yet taken */
    size_t in_len;       /* bytes in in */
    int exit_code;       /* from the exit frame, -1 until then */
    int signal;          /* from the exit frame */
    char message[512];   /* from the exit frame */
    bool closed;         /* the close frame came */
    bool console;        /* following a console: ^] or a signal detaches */
    bool detached;       /* the operator detached */
};

static int sig_pipe[2] = {-1, -1};
static struct termios saved_tio;
static bool raw_on;

static void
on_signal(int sig)
{
    unsigned char c = (unsigned char)sig;
    int e = errno;
    (void)!write(sig_pipe[1], &c, 1);
    errno = e;
}

static void
raw_restore(void)
{
    if (raw_on) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
        raw_on = false;
    }
}

/* Raw input; with onlcr, output still turns "\n" into "\r\n": a console
 * ring holds what init wrote to a pipe, not a terminal's output. */
static void
raw_enter(bool onlcr)
{
    struct termios t;

    if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
        return;
    t = saved_tio;
    cfmakeraw(&t);
    if (onlcr)
        t.c_oflag |= OPOST | ONLCR;
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0) {
        raw_on = true;
        atexit(raw_restore);
    }
}

/* Sends all of buf, waiting when the socket is full. */
static int
send_all(struct sess *s, const void *buf, size_t n)
{
    const char *p = buf;

    while (n) {
        size_t sent = 0;
        CURLcode rc = curl_easy_send(s->h, p, n, &sent);
        if (rc == CURLE_AGAIN) {
            struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
            (void)poll(&pfd, 1, 1000);
            continue;
        }
        if (rc != CURLE_OK)
            return -EIO;
        p += sent;
        n -= sent;
    }
    return 0;
}

/* A masked client frame: opcode, an optional channel byte, data. */
static int
send_frame(struct sess *s, unsigned op, int lead, const void *data, size_t n)
{
    size_t total = n + (lead >= 0), hl = total < 126 ? 2 : 4;
    unsigned char *f = xmalloc(hl + 4 + total), mask[4];

    if (getrandom(mask, 4, 0) != 4)
        memset(mask, 0x5a, 4);
    f[0] = (unsigned char)(0x80 | op);
    if (total < 126) {
        f[1] = (unsigned char)(0x80 | total);
    } else {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(total >> 8);
        f[3] = (unsigned char)total;
    }
    memcpy(f + hl, mask, 4);
    unsigned char *pl = f + hl + 4;
    if (lead >= 0)
        *pl++ = (unsigned char)lead;
    memcpy(pl, data, n);
    for (size_t i = 0; i < total; i++)
        f[hl + 4 + i] ^= mask[i & 3];
    int r = send_all(s, f, hl + 4 + total);
    free(f);
    return r;
}

static void
send_resize(struct sess *s)
{
    struct winsize ws;
    char text[64];

    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_col)
        return;
    int n = snprintf(text, sizeof(text), "{\"resize\":[%u,%u]}", ws.ws_col, ws.ws_row);
    (void)send_frame(s, 0x1, -1, text, (size_t)n);
}

/* Reads what the connection has; -1 when it closed. */
static int
recv_some(struct sess *s)
{
    for (;;) {
        size_t got = 0;
        if (s->in_len >= FRAME_MAX + 16)
            return 0;
        CURLcode rc = curl_easy_recv(s->h, s->in + s->in_len, FRAME_MAX + 16 - s->in_len, &got);
        if (rc == CURLE_AGAIN)
            return 0;
        if (rc != CURLE_OK || got == 0)
            return -1;
        s->in_len += got;
    }
}

static void
write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

static void
exit_frame(struct sess *s, const char *text, size_t n)
{
    json_t *j = json_loadb(text, n, 0, NULL);

    if (json_is_integer(json_object_get(j, "exit")))
        s->exit_code = (int)json_integer_value(json_object_get(j, "exit"));
    s->signal = (int)json_integer_value(json_object_get(j, "signal"));
    snprintf(s->message, sizeof(s->message), "%s", cli_str(j, "message"));
    json_decref(j);
}

/* Takes the complete frames received. */
static void
frames(struct sess *s)
{
    size_t off = 0;

    while (!s->closed && s->in_len - off >= 2) {
        unsigned char *f = (unsigned char *)s->in + off;
        size_t len = f[1] & 0x7f, hl = 2;
        if (len == 126) {
            if (s->in_len - off < 4)
                break;
            len = (size_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (len == 127) {
            s->closed = true; /* larger than the master ever sends */
            break;
        }
        if (s->in_len - off < hl + len)
            break;
        unsigned op = f[0] & 0x0f;
        if (op == 0x2 && len > 1)
            write_all(f[hl] == 2 ? STDERR_FILENO : STDOUT_FILENO, f + hl + 1, len - 1);
        else if (op == 0x1)
            exit_frame(s, (const char *)f + hl, len);
        else if (op == 0x8)
            s->closed = true;
        off += hl + len;
    }
    memmove(s->in, s->in + off, s->in_len - off);
    s->in_len -= off;
}

/* The request line's path and query. */
static char *
shell_path(const char *name, char *const *argv, bool tty, bool console)
{
    struct winsize ws = {.ws_col = 80, .ws_row = 24};
    const char *term = getenv("TERM");
    _cleanup_free_ char *g = http_escape(name), *t = http_escape(term && *term ? term : "xterm");
    _cleanup_free_ char *cmd = NULL;

    if (tty)
        (void)ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
    if (argv && argv[0]) {
        json_t *a = json_array();
        for (size_t i = 0; argv[i]; i++)
            json_array_append_new(a, json_string(argv[i]));
        char *text = json_dumps(a, JSON_COMPACT);
        cmd = http_escape(text);
        free(text);
        json_decref(a);
    }
    if (console)
        return xasprintf("/v1/guests/%s/shell?console=true&tty=%s", g, tty ? "true" : "false");
    return xasprintf("/v1/guests/%s/shell?tty=%s&cols=%u&rows=%u&term=%s%s%s", g,
                     tty ? "true" : "false", ws.ws_col ? ws.ws_col : 80, ws.ws_row ? ws.ws_row : 24,
                     t, cmd ? "&command=" : "", cmd ? cmd : "");
}

/* Writes the upgrade and reads the answer's head; a refusal is reported as
 * any API error is. Returns CLI_EXIT_OK when the session is open. */
static int
upgrade(struct sess *s, const char *host, const char *path, const char *name)
{
    const char *auth = http_client_auth_header(s->ctx->http);
    unsigned char key[16];
    char key64[32], head[8192];
    size_t n = 0;

    if (getrandom(key, sizeof(key), 0) != sizeof(key))
        return CLI_EXIT_FAILURE;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)key[i] << 16 | (i + 1 < 16 ? (uint32_t)key[i + 1] << 8 : 0) |
                     (i + 2 < 16 ? key[i + 2] : 0);
        key64[o++] = b64[v >> 18 & 63];
        key64[o++] = b64[v >> 12 & 63];
        key64[o++] = i + 1 < 16 ? b64[v >> 6 & 63] : '=';
        key64[o++] = i + 2 < 16 ? b64[v & 63] : '=';
    }
    key64[o] = '\0';
    _cleanup_free_ char *req = xasprintf(
        "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vfleet-cli/0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: vfleet.v1\r\n%s%s\r\n",
        path, host, key64, auth ? auth : "", auth ? "\r\n" : "");
    if (send_all(s, req, strlen(req)) < 0) {
        fprintf(s->ctx->err, "vfleet: cannot reach the master\n");
        return CLI_EXIT_UNREACHABLE;
    }
    explicit_bzero(req, strlen(req));
    /* The head, then what follows it stays for the frames. */
    for (;;) {
        if (recv_some(s) < 0 && s->in_len == 0) {
            fprintf(s->ctx->err, "vfleet: the master closed the connection\n");
            return CLI_EXIT_UNREACHABLE;
        }
        char *end = s->in_len ? memmem(s->in, s->in_len, "\r\n\r\n", 4) : NULL;
        if (end) {
            n = (size_t)(end - s->in) + 4;
            break;
        }
        if (s->in_len >= sizeof(head) - 1) {
            fprintf(s->ctx->err, "vfleet: the master's answer is not HTTP\n");
            return CLI_EXIT_FAILURE;
        }
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        (void)poll(&pfd, 1, 1000);
    }
    memcpy(head, s->in, n);
    head[n] = '\0';
    memmove(s->in, s->in + n, s->in_len - n);
    s->in_len -= n;
    long status = strncmp(head, "HTTP/1.1 ", 9) == 0 ? strtol(head + 9, NULL, 10) : 0;
    if (status == 101)
        return CLI_EXIT_OK;
    /* A refusal: its JSON body follows (Content-Length). */
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    size_t body_len = cl ? strtoul(cl + 17, NULL, 10) : 0;
    while (s->in_len < body_len && body_len < FRAME_MAX && recv_some(s) >= 0) {
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        (void)poll(&pfd, 1, 1000);
    }
    json_t *j = json_loadb(s->in, s->in_len < body_len ? s->in_len : body_len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (e)
        fprintf(s->ctx->err, "vfleet: guest \"%s\": %s\n", name, cli_str(e, "message"));
    else /* its HTTP server's own refusal (a URL over its limit: 414): the status line */
        fprintf(s->ctx->err, "vfleet: guest \"%s\": the master refused the session: %.*s\n", name,
                (int)strcspn(head, "\r\n"), head);
    json_decref(j);
    return cli_exit_for_status(status ? status : 500);
}

/* Moves bytes until the end frame; returns the exit status to give. */
static int
pump(struct sess *s, bool tty)
{
    bool in_open = true;
    unsigned char buf[16384];

    while (!s->closed && !s->detached) {
        struct pollfd p[3] = {
            {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN},
            {.fd = s->fd, .events = POLLIN},
            {.fd = sig_pipe[0], .events = POLLIN},
        };
        frames(s);
        if (s->closed)
            break;
        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[2].revents) {
            unsigned char sig;
            while (read(sig_pipe[0], &sig, 1) == 1) {
                char text[32];
                if (s->console && sig != SIGWINCH) {
                    s->detached = true;
                    break;
                }
                int n = sig == SIGWINCH ? 0 : snprintf(text, sizeof(text), "{\"signal\":%u}", sig);
                if (sig == SIGWINCH)
                    send_resize(s);
                else
                    (void)send_frame(s, 0x1, -1, text, (size_t)n);
            }
        }
        if (p[0].revents) {
            ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
            if (k > 0 && s->console) {
                /* The console takes no input; ^] (or ^C, raw mode makes it
                 * a byte) detaches. */
                if (memchr(buf, 0x1d, (size_t)k) || memchr(buf, 0x03, (size_t)k))
                    s->detached = true;
            } else if (k > 0) {
                if (send_frame(s, 0x2, 0, buf, (size_t)k) < 0)
                    break;
            } else if (k == 0 || errno != EINTR) {
                in_open = false;
                if (!tty)
                    (void)send_frame(s, 0x1, -1, "{\"eof\":true}", 12);
            }
        }
        if ((p[1].revents || s->in_len) && recv_some(s) < 0) {
            frames(s);
            break;
        }
    }
    raw_restore();
    if (s->detached) {
        (void)send_frame(s, 0x8, -1, "\x03\xe8", 2); /* close 1000 */
        fprintf(s->ctx->err, "\r\n[detached]\n");
        return CLI_EXIT_OK;
    }
    if (s->exit_code >= 0)
        return s->exit_code;
    if (s->signal)
        return 128 + s->signal;
    fprintf(s->ctx->err, "vfleet: the session ended%s%s\n", s->message[0] ? ": " : "", s->message);
    return CLI_EXIT_FAILURE;
}

static int session_run(struct cli_ctx *ctx, const char *name, char *const *argv, bool tty,
                       bool console);

int
cli_shell_run(struct cli_ctx *ctx, const char *name, char *const *argv, bool tty)
{
    return session_run(ctx, name, argv, tty, false);
}

int
cli_console_run(struct cli_ctx *ctx, const char *name)
{
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(ctx->err, "[console of %s; detach with ^]]\n", name);
    return session_run(ctx, name, NULL, tty, true);
}

static int
session_run(struct cli_ctx *ctx, const char *name, char *const *argv, bool tty, bool console)
{
    struct sess s = {.ctx = ctx, .exit_code = -1, .fd = -1, .console = console};
    char host[256], err[256];
    void *h = NULL;
    long sock = -1;
    int r = http_connect_raw(ctx->http, &h, host, sizeof(host), err, sizeof(err));

    if (r < 0) {
        fprintf(ctx->err, "vfleet: cannot reach the master: %s\n", err);
        return r == -EPERM ? CLI_EXIT_DENIED : CLI_EXIT_UNREACHABLE;
    }
    s.h = h;
    curl_easy_getinfo(s.h, CURLINFO_ACTIVESOCKET, &sock);
    s.fd = (int)sock;
    s.in = xmalloc(FRAME_MAX + 16);
    _cleanup_free_ char *path = shell_path(name, argv, tty, console);
    r = upgrade(&s, host, path, name);
    if (r == CLI_EXIT_OK) {
        if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
            struct sigaction sa = {.sa_handler = on_signal};
            sigemptyset(&sa.sa_mask);
            sigaction(SIGWINCH, &sa, NULL);
            if (!tty || console) {
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGHUP, &sa, NULL);
            }
        }
        if (tty)
            raw_enter(console);
        fflush(ctx->out);
        r = pump(&s, tty);
    }
    curl_easy_cleanup(s.h);
    free(s.in);
    return r;
}
