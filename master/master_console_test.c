/* The operator's console and the provisioning API, end to end in one
 * process (master_fixture.h): a guest created with a password, SSH keys and
 * name servers, what the API shows of them, and changes later. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "master/master_fixture.h"

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYc me@laptop"

static void
test_provision(void **state)
{
    json_t *o = NULL, *p;
    char *text;

    assert_int_equal(http("POST", "/v1/guests",
                          "{\"name\":\"pv1\",\"template\":\"busybox\",\"provision\":{"
                          "\"password\":\"correct horse battery\",\"ssh_keys\":[\"" KEY "\"],"
                          "\"dns\":[\"192.0.2.53\"],\"search\":[\"example.org\"]}}",
                          NULL, &o),
                     201);
    p = json_object_get(o, "provision");
    assert_true(json_is_true(json_object_get(p, "password")));
    assert_null(json_object_get(p, "password_hash"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "ssh_keys"), 0)), KEY);
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "dns"), 0)),
                        "192.0.2.53");
    text = json_dumps(o, 0);
    assert_null(strstr(text, "horse"));
    assert_null(strstr(text, "$y$"));
    free(text);
    json_decref(o);

    /* The clear text reaches no answer; GET shows the same. */
    assert_int_equal(http("GET", "/v1/guests/pv1", NULL, NULL, &o), 200);
    text = json_dumps(o, 0);
    assert_null(strstr(text, "horse"));
    assert_null(strstr(text, "password_hash"));
    free(text);
    json_decref(o);

    /* Later: no password login, other name servers; the keys stay. */
    assert_int_equal(http("PATCH", "/v1/guests/pv1",
                          "{\"provision\":{\"password\":null,\"dns\":[\"2001:db8::53\"]}}", NULL,
                          &o),
                     200);
    p = json_object_get(o, "provision");
    assert_true(json_is_false(json_object_get(p, "password")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(p, "dns"), 0)),
                        "2001:db8::53");
    assert_int_equal(json_array_size(json_object_get(p, "ssh_keys")), 1);
    json_decref(o);

    /* Refused, naming the field; nothing changes. */
    static const struct {
        const char *body;  /* a PATCH body */
        const char *field; /* the field the 400 names */
    } bad[] = {
        {"{\"provision\":{\"password\":\"\"}}", "provision.password"},
        {"{\"provision\":{\"password\":\"a\",\"password_hash\":\"!\"}}", "provision.password"},
        {"{\"provision\":{\"password_hash\":\"clear\"}}", "provision.password_hash"},
        {"{\"provision\":{\"ssh_keys\":[\"rm -rf /\"]}}", "provision.ssh_keys"},
        {"{\"provision\":{\"dns\":[\"nameserver\"]}}", "provision.dns[0]"},
        {"{\"provision\":7}", "provision"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(http("PATCH", "/v1/guests/pv1", bad[i].body, NULL, &o), 400);
        assert_string_equal(str(json_object_get(o, "error"), "field"), bad[i].field);
        json_decref(o);
    }
    delete_all_guests();
}

/* The spec fields beyond limits are reachable by PATCH. */
static void
test_patch_spec_fields(void **state)
{
    json_t *o = NULL;

    assert_int_equal(
        http("POST", "/v1/guests", "{\"name\":\"sf1\",\"template\":\"busybox\"}", NULL, &o), 201);
    json_decref(o);
    assert_int_equal(http("PATCH", "/v1/guests/sf1",
                          "{\"domainname\":\"example.org\",\"init\":\"/bin/init\","
                          "\"halt_signal\":\"SIGPWR\",\"stop_timeout\":12,\"autostart\":false,"
                          "\"caps_add\":[\"net_admin\"],\"caps_drop\":[\"mknod\"],"
                          "\"limits\":{\"io\":[{\"device\":\"8:0\",\"read_bps\":\"10M\"}]}}",
                          NULL, &o),
                     200);
    assert_string_equal(str(o, "domainname"), "example.org");
    assert_string_equal(str(o, "init"), "/bin/init");
    assert_string_equal(str(o, "halt_signal"), "SIGPWR");
    assert_int_equal(num(o, "stop_timeout"), 12);
    assert_true(json_is_false(json_object_get(o, "autostart")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "caps_add"), 0)),
                        "net_admin");
    json_decref(o);
    delete_all_guests();
}

/* ---- a WebSocket client over the master's Unix socket (root: admin) ---- */

/* extra: more header lines ("Name: value\r\n"), or "". */
static int
ws_connect_h(const char *path_query, const char *extra, char *status_line, size_t n)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char req[1024], resp[4096];
    size_t got = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    strscpy(sun.sun_path, F.sock, sizeof(sun.sun_path));
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    int len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: vfleet.v1\r\n%s\r\n",
                       path_query, extra);
    assert_int_equal(write(fd, req, (size_t)len), len);
    /* The answer's head, byte by byte so no frame byte is taken with it. */
    while (got < sizeof(resp) - 1) {
        assert_int_equal(read(fd, resp + got, 1), 1);
        got++;
        if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
            break;
    }
    resp[got] = '\0';
    snprintf(status_line, n, "%.*s", (int)strcspn(resp, "\r"), resp);
    if (strstr(resp, " 101 "))
        assert_non_null(strstr(resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    return fd;
}

static int
ws_connect(const char *path_query, char *status_line, size_t n)
{
    return ws_connect_h(path_query, "", status_line, n);
}

static void
ws_send(int fd, unsigned op, const void *data, size_t n)
{
    unsigned char f[256] = {(unsigned char)(0x80 | op), (unsigned char)(0x80 | n), 1, 2, 3, 4};
    assert_true(n < 126);
    for (size_t i = 0; i < n; i++)
        f[6 + i] = ((const unsigned char *)data)[i] ^ f[2 + (i & 3)];
    assert_int_equal(write(fd, f, 6 + n), (ssize_t)(6 + n));
}

/* The last close frame ws_read_all read: its code and reason. */
static int ws_close_code;
static char ws_close_why[128];

/* Reads frames until the close frame: output into out, the exit text into
 * ex. Returns the number of frames. */
static int
ws_read_all(int fd, char *out, size_t outn, char *ex, size_t exn)
{
    unsigned char buf[65536];
    size_t len = 0, o = 0;
    int frames = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_true(poll(&p, 1, 10000) == 1);
        ssize_t k = read(fd, buf + len, sizeof(buf) - len);
        if (k <= 0)
            break;
        len += (size_t)k;
        while (len >= 2) {
            size_t pl = buf[1] & 0x7f, hl = 2;
            if (pl == 126) {
                if (len < 4)
                    break;
                pl = (size_t)buf[2] << 8 | buf[3];
                hl = 4;
            }
            if (len < hl + pl)
                break;
            unsigned op = buf[0] & 0x0f;
            frames++;
            if (op == 0x2 && pl > 1 && o + pl - 1 < outn) {
                memcpy(out + o, buf + hl + 1, pl - 1);
                o += pl - 1;
                out[o] = '\0';
            } else if (op == 0x1) {
                snprintf(ex, exn, "%.*s", (int)pl, buf + hl);
            } else if (op == 0x8) {
                ws_close_code = pl >= 2 ? buf[hl] << 8 | buf[hl + 1] : 0;
                snprintf(ws_close_why, sizeof(ws_close_why), "%.*s", pl >= 2 ? (int)pl - 2 : 0,
                         buf + hl + 2);
                return frames;
            }
            memmove(buf, buf + hl + pl, len - hl - pl);
            len -= hl + pl;
        }
    }
    return frames;
}

static void
test_shell(void **state)
{
    char status[128], out[8192] = "", ex[512] = "";
    json_t *o = NULL;
    int fd;

    assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20",
                          "{\"name\":\"sh1\",\"template\":\"busybox\"}", NULL, &o),
                     201);
    json_decref(o);

    /* A command: its output, its exit code. */
    fd = ws_connect("/v1/guests/sh1/shell?tty=false&command=%5B%22hostname%22%5D", status,
                    sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    ws_read_all(fd, out, sizeof(out), ex, sizeof(ex));
    assert_string_equal(out, "sh1\n");
    assert_non_null(strstr(ex, "\"exit\":0"));
    close(fd);

    /* A terminal: input, echo, output, exit with a status. */
    fd = ws_connect("/v1/guests/sh1/shell?cols=100&rows=30&term=xterm-256color", status,
                    sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    ws_send(fd, 0x1, "{\"resize\":[120,40]}", 19);
    ws_send(fd, 0x2, "\0hostname\r", 10);
    ws_send(fd, 0x2, "\0exit 3\r", 8);
    ws_read_all(fd, out, sizeof(out), ex, sizeof(ex));
    assert_non_null(strstr(out, "hostname\r\nsh1\r\n"));
    assert_non_null(strstr(ex, "\"exit\":3"));
    close(fd);

    /* Refused before any upgrade: a private guest, an unknown one, no upgrade. */
    assert_int_equal(http("PATCH", "/v1/guests/sh1", "{\"flags\":[\"private\"]}", NULL, &o), 200);
    json_decref(o);
    fd = ws_connect("/v1/guests/sh1/shell", status, sizeof(status));
    assert_non_null(strstr(status, " 409 "));
    close(fd);
    fd = ws_connect("/v1/guests/nosuch/shell", status, sizeof(status));
    assert_non_null(strstr(status, " 404 "));
    close(fd);
    assert_int_equal(http("GET", "/v1/guests/sh1/shell", NULL, NULL, &o), 400);
    json_decref(o);
    delete_all_guests();
}

static bool
op_ended(const json_t *o, const void *arg)
{
    (void)arg;
    return strcmp(str(o, "state"), "running") != 0;
}

/* A shell in a guest that moves is refused at once (409, naming the
 * operation), as an exec is: the move's last pass freezes it, and before,
 * the shell went to the node, whose helper froze as it joined (the
 * console, a read of its ring, is not refused). The master stops reading
 * its node link meanwhile, so the move cannot end before the shell asks. */
/* A request refused 409 because guest sh2 is busy with operation op, its
 * message what the refusal says, ending in then (NULL: none). */
static void
assert_busy(const char *method, const char *path, const char *body, const char *op,
            const char *then)
{
    char want[256];
    json_t *o = NULL;

    snprintf(want, sizeof(want), "guest \"sh2\" is busy with operation %s%s%s", op,
             then ? " (a move, or its template's fetch); " : "", then ? then : "");
    assert_int_equal(http(method, path, body, NULL, &o), 409);
    assert_string_equal(str(json_object_get(o, "error"), "message"), want);
    json_decref(o);
}

/* The rest of a refused upgrade's answer, once its message is there. */
static void
read_refusal(int fd, char *out, size_t n)
{
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};

    out[0] = '\0';
    while (got < n - 1 && !strstr(out, "}") && poll(&p, 1, 5000) == 1) {
        ssize_t k = read(fd, out + got, n - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        out[got] = '\0';
    }
}

/* While a move runs, the guest's shell is refused 409, and so are a change,
 * a stop, an exec, a delete and a second move: each message names the
 * operation and, but the move's, when to ask again. */
static void
test_shell_moving(void **state)
{
    char status[128], body[1024], want[256];
    json_t *o = NULL;
    int fd;

    assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20",
                          "{\"name\":\"sh2\",\"template\":\"busybox\",\"node\":\"n1\"}", NULL, &o),
                     201);
    json_decref(o);
    on_loop(pause_reading);
    assert_int_equal(http("POST", "/v1/guests/sh2/move", "{\"to\":\"n2\"}", NULL, &o), 202);
    char path[128];
    snprintf(path, sizeof(path), "/v1/operations/%s", str(o, "id"));
    json_decref(o);
    fd = ws_connect("/v1/guests/sh2/shell?tty=false&command=%5B%22hostname%22%5D", status,
                    sizeof(status));
    assert_non_null(strstr(status, " 409 "));
    read_refusal(fd, body, sizeof(body));
    close(fd);
    /* Every change the operation refuses says which, and when to ask. */
    const char *op = path + strlen("/v1/operations/");
    snprintf(want, sizeof(want),
             "guest \\\"sh2\\\" is busy with operation %s (a move, or its template's fetch); "
             "open a shell once it ends",
             op);
    assert_non_null(strstr(body, want));
    assert_busy("PATCH", "/v1/guests/sh2", "{\"flags\":[]}", op, "change it afterwards");
    assert_busy("POST", "/v1/guests/sh2/stop", NULL, op, "start or stop it once it ends");
    assert_busy("POST", "/v1/guests/sh2/exec", "{\"argv\":[\"true\"]}", op, "ask again afterwards");
    assert_busy("DELETE", "/v1/guests/sh2", NULL, op, "cancel it or delete the guest afterwards");
    assert_busy("POST", "/v1/guests/sh2/move", "{}", op, NULL);
    on_loop(resume_reading);
    o = poll_until(path, op_ended, NULL);
    assert_string_equal(str(o, "state"), "done");
    json_decref(o);
    delete_all_guests();
}

/* One caller cannot take every shell session of a node: its 17th there is
 * refused (503, the bound said), another caller's still opens. On main a
 * caller could open all of them (the node runs 64, the master 256), and no
 * one else any. */
static void
test_shell_per_caller(void **state)
{
    char status[128], hdr[160];
    int fds[17], fd;
    json_t *o = NULL;

    assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20",
                          "{\"name\":\"sh4\",\"template\":\"busybox\"}", NULL, &o),
                     201);
    json_decref(o);
    for (int i = 0; i < 16; i++) {
        fds[i] = ws_connect("/v1/guests/sh4/shell?tty=false", status, sizeof(status));
        assert_non_null(strstr(status, " 101 "));
    }
    fds[16] = ws_connect("/v1/guests/sh4/shell?tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 503 "));
    assert_int_equal(http("POST", "/v1/tokens", "{\"role\":\"operator\"}", NULL, &o), 201);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", str(o, "token"));
    json_decref(o);
    fd = ws_connect_h("/v1/guests/sh4/shell?tty=false", hdr, status, sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    close(fd);
    for (int i = 0; i < 17; i++)
        close(fds[i]);
    delete_all_guests();
}

/* The master's node link refuses to send to n1 (as to a peer gone), or
 * lets it again; the node's messages are dropped meanwhile. */
static void
deny_n1(struct fx *f)
{
    assert_int_equal(link_deny(f->master->links[0].link, "n1", true), 0);
}

static void
allow_n1(struct fx *f)
{
    assert_int_equal(link_deny(f->master->links[0].link, "n1", false), 0);
}

/* n1 is let again even when test_shell_lost failed, for the tests after. */
static int
shell_lost_teardown(void **state)
{
    on_loop(allow_n1);
    return 0;
}

static bool fx_n1_settled;

/* Whether n1 is welcomed again and holds no shell session. */
static void
read_n1_settled(struct fx *f)
{
    fx_n1_settled = f->agents[0]->welcomed && !f->agents[0]->shells;
}

/* A message to the node that is not sent ends its session at once: a lost
 * input (or ack) would leave its window short for good, client and node
 * waiting. The client gets a close frame 1011 saying so; a session whose
 * guest.shell is not sent is refused 503 at once. The master's link to n1
 * refuses to send (link_deny), as when the node is gone or its queue full,
 * while the registry still has n1 connected (it would be down after 6 s).
 * On main the input was dropped silently: the session waited until the
 * node was down (1000 "the command ended"), and an open for 15 s (504). */
static void
test_shell_lost(void **state)
{
    char status[128], out[8192] = "", ex[512] = "", body[1024];
    json_t *o = NULL;
    int fd;

    assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20",
                          "{\"name\":\"sl1\",\"template\":\"busybox\",\"node\":\"n1\"}", NULL, &o),
                     201);
    json_decref(o);
    fd = ws_connect("/v1/guests/sl1/shell?tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    on_loop(deny_n1);
    uint64_t t0 = time_mono_ms();
    ws_send(fd, 0x2, "\0hostname\n", 10);
    ws_close_code = 0;
    ws_read_all(fd, out, sizeof(out), ex, sizeof(ex));
    close(fd);
    assert_int_equal(ws_close_code, 1011);
    assert_string_equal(ws_close_why, "a message to node n1 was lost (the node is not reachable)");
    assert_true(time_mono_ms() - t0 < 2000);

    /* Opening: refused at once, not after the open's timeout. */
    t0 = time_mono_ms();
    fd = ws_connect("/v1/guests/sl1/shell?tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 503 "));
    read_refusal(fd, body, sizeof(body));
    close(fd);
    assert_non_null(strstr(body, "the session could not be sent to node n1"));
    assert_true(time_mono_ms() - t0 < 2000);

    /* The node's side: its session's hang-up was lost too; n1, whose master
     * went silent, reconnects, and the welcome hangs its sessions up. */
    usleep(1000 * 1000);
    on_loop(allow_n1);
    for (int i = 0; i < 200 && !fx_n1_settled; i++) {
        usleep(50 * 1000);
        on_loop(read_n1_settled);
    }
    assert_true(fx_n1_settled);

    /* And a shell works again. */
    fd = ws_connect("/v1/guests/sl1/shell?tty=false&command=%5B%22hostname%22%5D", status,
                    sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    out[0] = '\0';
    ws_read_all(fd, out, sizeof(out), ex, sizeof(ex));
    assert_string_equal(out, "sl1\n");
    assert_int_equal(ws_close_code, 1000);
    close(fd);
    delete_all_guests();
}

/* The console: the ring's history, then the client detaches (a close frame)
 * and the master goes on serving; a private guest's console is refused. */
static void
test_console(void **state)
{
    char status[128], out[8192] = "", ex[512] = "";
    json_t *o = NULL;
    int fd;

    assert_int_equal(http("POST", "/v1/guests?wait=running&timeout=20",
                          "{\"name\":\"cn1\",\"template\":\"busybox\"}", NULL, &o),
                     201);
    json_decref(o);
    assert_int_equal(
        http("GET", "/v1/guests/cn1/shell?console=true&command=%5B%22sh%22%5D", NULL, NULL, &o),
        400);
    json_decref(o);
    fd = ws_connect("/v1/guests/cn1/shell?console=true&tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    /* The history comes first; the client's close frame ends it. */
    char buf[4096];
    size_t len = 0;
    while (!memmem(buf, len, "up (start 1)", 12)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t k = read(fd, buf + len, sizeof(buf) - len);
        assert_true(k > 0);
        len += (size_t)k;
    }
    ws_send(fd, 0x8, "\x03\xe8", 2);
    ws_read_all(fd, out, sizeof(out), ex, sizeof(ex));
    close(fd);
    /* The master still answers, and the node's session is gone: a second
     * console works the same. */
    assert_int_equal(http("GET", "/v1/guests/cn1", NULL, NULL, &o), 200);
    json_decref(o);
    fd = ws_connect("/v1/guests/cn1/shell?console=true&tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    close(fd); /* gone without a close frame */
    /* A close frame, and gone before the answer: the master's reply meets a
     * closed socket (EPIPE, never SIGPIPE). */
    fd = ws_connect("/v1/guests/cn1/shell?console=true&tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    usleep(300 * 1000); /* the history is on its way, unread */
    ws_send(fd, 0x8, "\x03\xe8", 2);
    close(fd);
    usleep(300 * 1000);
    assert_int_equal(http("GET", "/v1/guests/cn1", NULL, NULL, &o), 200);
    json_decref(o);

    /* A stopped guest's console is still there to read (its ring is kept);
     * a shell is not. */
    assert_int_equal(http("POST", "/v1/guests/cn1/stop?wait=stopped&timeout=20", NULL, NULL, &o),
                     200);
    json_decref(o);
    fd = ws_connect("/v1/guests/cn1/shell?tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 409 "));
    close(fd);
    fd = ws_connect("/v1/guests/cn1/shell?console=true&tty=false", status, sizeof(status));
    assert_non_null(strstr(status, " 101 "));
    len = 0;
    while (!memmem(buf, len, "up (start 1)", 12)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t k = read(fd, buf + len, sizeof(buf) - len);
        assert_true(k > 0);
        len += (size_t)k;
    }
    ws_send(fd, 0x8, "\x03\xe8", 2);
    ws_read_all(fd, out, sizeof(out), ex, sizeof(ex));
    close(fd);

    assert_int_equal(http("PATCH", "/v1/guests/cn1", "{\"flags\":[\"private\"]}", NULL, &o), 200);
    json_decref(o);
    fd = ws_connect("/v1/guests/cn1/shell?console=true", status, sizeof(status));
    assert_non_null(strstr(status, " 409 "));
    close(fd);
    delete_all_guests();
}

/* The templates the nodes report, which node has which. */
static void
test_templates(void **state)
{
    json_t *o = NULL, *t;

    assert_int_equal(http("GET", "/v1/templates", NULL, NULL, &o), 200);
    json_t *list = json_object_get(o, "templates");
    assert_int_equal(json_array_size(list), 2);
    t = json_array_get(list, 0);
    assert_string_equal(str(t, "name"), "busybox");
    assert_int_equal(num(t, "node_count"), N_NODES);
    assert_int_equal(json_array_size(json_object_get(t, "nodes")), N_NODES);
    /* The sim backend computes no checksum: null, never a made-up one. */
    assert_true(
        json_is_null(json_object_get(json_array_get(json_object_get(t, "nodes"), 0), "checksum")));
    assert_true(json_is_true(json_object_get(t, "consistent")));
    assert_string_equal(str(json_array_get(list, 1), "name"), "debian");
    json_decref(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provision),
        cmocka_unit_test(test_patch_spec_fields),
        cmocka_unit_test(test_shell),
        cmocka_unit_test(test_shell_moving),
        cmocka_unit_test(test_shell_per_caller),
        cmocka_unit_test_teardown(test_shell_lost, shell_lost_teardown),
        cmocka_unit_test(test_console),
        cmocka_unit_test(test_templates),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
