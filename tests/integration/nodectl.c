/* nodectl: a tiny stand-in master for tests. It binds a ROUTER on the
 * endpoint a node agent connects to, sends one command through the real wire
 * protocol (proto/: codec and link) and prints the node's answer as JSON.
 *
 *   nodectl -e ENDPOINT -n NODE [-t SECONDS] wait-hello
 *   nodectl ... apply SPEC.json          (or - for stdin)
 *   nodectl ... apply-start SPEC.json    (guest.apply.start: the master's create)
 *   nodectl ... start|stop|destroy ID [GENERATION]
 *   nodectl ... exec ID -- ARGV...       (stdout/stderr replayed, exits with the code)
 *   nodectl ... exec-n N ID -- ARGV...   (N execs in one session; prints the exit codes counted)
 *   nodectl ... cycle N SPEC.json        (N rounds of apply, start, exec true, destroy)
 *   nodectl ... usage ID                 (waits for a usage batch naming ID)
 *   nodectl ... raw FILE                 (sends FILE's bytes as one frame, prints the answer)
 *   nodectl ... shell ID -- ARGV...      (guest.shell, no terminal: prints the ack or nack)
 *   nodectl ... abort ID                 (guest.migrate.abort as the source, not started again:
 *                                         thaws a move's freeze; prints the status)
 *   nodectl ... exec-export ID -- ARGV...  (an exec, and a second later an export that abort
 *                                         ends; prints the exec's answer)
 *
 * Exit status: 0 ack, 1 nack, 2 usage error, 3 timeout, or the exec's code. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/mtime.h"
#include "proto/link.h"
#include "proto/msg.h"
#include "proto/spec_json.h"

enum { EXIT_ACK = 0, EXIT_NACK = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

static link_t *router;
static const char *node;
static uint64_t deadline_ms;
/* The last command sent (not an exec), kept to send again when the node says
 * hello while its answer is awaited: the node reconnected (it took us for a lost master:
 * three heartbeats without an echo between two nodectl runs), and a command
 * in flight on the old connection died with it. The real master does the
 * same (docs/protocol.md: commands go again after a hello). */
static void *pending;
static size_t pending_len;

/* How long an exec may run: 20 s, or NODECTL_EXEC_TIMEOUT_S seconds (an
 * emulated VM test host is slower than a guest's failure), bounded by 2 s
 * before nodectl's own deadline (-t). */
static uint32_t
exec_timeout_ms(void)
{
    const char *env = getenv("NODECTL_EXEC_TIMEOUT_S");
    uint64_t want = 20000, now = time_mono_ms();

    if (env && atoi(env) > 0)
        want = (uint64_t)atoi(env) * 1000;
    uint64_t left = deadline_ms > now + 3000 ? deadline_ms - now - 2000 : 1000;
    return (uint32_t)(want < left ? want : left);
}

/* Answers the hello whose request id is ref. */
static void
welcome(uint64_t ref)
{
    struct msg w = {.type = MSG_WELCOME, .id = 1};
    _cleanup_free_ char *buf = NULL;
    size_t len;

    w.u.welcome.ref = ref;
    w.u.welcome.heartbeat_ms = 1000;
    w.u.welcome.usage_ms = 1000;
    if (msg_encode(&w, &buf, &len) == 0)
        link_send(router, node, buf, len);
}

/* Echoes the node's heartbeat, as the master does, so it knows we are here. */
static void
echo(const struct msg *m)
{
    struct msg e = {.type = MSG_HEARTBEAT, .id = m->id};
    _cleanup_free_ char *out = NULL;
    size_t outlen;

    e.u.heartbeat = m->u.heartbeat;
    if (msg_encode(&e, &out, &outlen) == 0)
        link_send(router, node, out, outlen);
}

/* Receives the next message from our node (answering hellos), or times out. */
static int
next_msg(struct msg *m)
{
    char peer[LINK_PEER_SIZE];
    char err[256];

    while (time_mono_ms() < deadline_ms) {
        void *buf = NULL;
        size_t len = 0;
        int r = link_recv(router, peer, sizeof(peer), &buf, &len);
        if (r == -EAGAIN) {
            usleep(2000);
            continue;
        }
        if (r < 0)
            continue;
        r = msg_decode(buf, len, m, err, sizeof(err));
        free(buf);
        if (r < 0) {
            fprintf(stderr, "nodectl: undecodable frame from \"%s\": %s\n", peer, err);
            msg_clear(m);
            continue;
        }
        if (strcmp(peer, node) != 0) {
            msg_clear(m);
            continue;
        }
        if (m->type == MSG_HELLO) {
            welcome(m->id);
            if (pending)
                link_send(router, node, pending, pending_len);
        }
        if (m->type == MSG_HEARTBEAT)
            echo(m);
        return 0;
    }
    return -ETIMEDOUT;
}

/* Sends a frame to the node, retrying while it has not (re)connected yet. */
static int
send_frame(const void *buf, size_t len)
{
    while (time_mono_ms() < deadline_ms) {
        int r = link_send(router, node, buf, len);
        if (r == 0)
            return 0;
        if (r != -EHOSTUNREACH && r != -EAGAIN)
            return r;
        /* Drain what arrives meanwhile (hello from a reconnecting node). */
        struct msg m;
        char peer[LINK_PEER_SIZE];
        void *in = NULL;
        size_t inlen;
        if (link_recv(router, peer, sizeof(peer), &in, &inlen) == 0) {
            if (msg_decode(in, inlen, &m, NULL, 0) == 0 && strcmp(peer, node) == 0) {
                if (m.type == MSG_HELLO)
                    welcome(m.id);
                if (m.type == MSG_HEARTBEAT)
                    echo(&m);
            }
            msg_clear(&m);
            free(in);
        }
        usleep(10000);
    }
    return -ETIMEDOUT;
}

static int
send_msg(struct msg *m)
{
    _cleanup_free_ char *buf = NULL;
    size_t len;
    int r = msg_encode(m, &buf, &len);

    if (r < 0) {
        fprintf(stderr, "nodectl: cannot encode: %s\n", strerror(-r));
        return r;
    }
    r = send_frame(buf, len);
    /* An exec goes once, as from the master: running it twice is not
     * harmless. The others are idempotent (docs/protocol.md). */
    free(pending);
    pending = NULL;
    if (r == 0 && m->type != MSG_GUEST_EXEC) {
        pending = xmalloc(len);
        memcpy(pending, buf, len);
        pending_len = len;
    }
    return r;
}

static void
print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", s);
    free(s);
    json_decref(j);
}

/* Waits for the ack, nack or exec result answering request id; prints it. */
static int
await_answer(uint64_t id)
{
    struct msg m;

    for (;;) {
        if (next_msg(&m) < 0) {
            fprintf(stderr, "nodectl: no answer from \"%s\" in time\n", node);
            return EXIT_TIMEOUT;
        }
        int rc = -1;
        if (m.type == MSG_ACK && m.u.ack.ref == id) {
            print_json(json_pack("{s:b, s:s, s:I, s:b}", "ok", 1, "id", m.u.ack.id, "generation",
                                 (json_int_t)m.u.ack.generation, "running", m.u.ack.running));
            rc = EXIT_ACK;
        } else if (m.type == MSG_NACK && m.u.nack.ref == id) {
            print_json(json_pack("{s:b, s:s, s:s, s:s}", "ok", 0, "id", m.u.nack.id, "code",
                                 msg_error_name(m.u.nack.code), "message", m.u.nack.message));
            rc = EXIT_NACK;
        } else if (m.type == MSG_EXEC_RESULT && m.u.exec_result.ref == id) {
            struct msg_exec_result *e = &m.u.exec_result;
            fwrite(e->out, 1, e->out_len, stdout);
            fwrite(e->err, 1, e->err_len, stderr);
            if (e->timed_out)
                fprintf(stderr, "nodectl: exec timed out\n");
            if (e->truncated)
                fprintf(stderr, "nodectl: exec output truncated\n");
            rc = e->signal ? 128 + e->signal : e->exit_code;
        } else if (m.type == MSG_MIGRATE_STATUS && m.u.migrate_status.ref == id &&
                   strcmp(m.u.migrate_status.state, "progress") != 0) {
            const struct msg_migrate_status *st = &m.u.migrate_status;
            print_json(json_pack("{s:s, s:s, s:s}", "phase", st->phase, "state", st->state,
                                 "message", st->message));
            rc = strcmp(st->state, "done") == 0 ? EXIT_ACK : EXIT_NACK;
        }
        msg_clear(&m);
        if (rc >= 0)
            return rc;
    }
}

static int
read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    size_t cap = 4096, n = 0;
    char *b;

    if (!f)
        return -errno;
    b = xmalloc(cap);
    for (;;) {
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
        if (n == cap)
            b = xrealloc(b, cap *= 2);
    }
    if (f != stdin)
        fclose(f);
    *buf = b;
    *len = n;
    return 0;
}

static int
cmd_apply(const char *path, enum msg_type type)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    json_error_t jerr;
    struct msg m = {.type = type, .id = (uint64_t)time_real_ms()};
    char field[128] = "";

    if (read_file(path, &text, &len) < 0) {
        fprintf(stderr, "nodectl: cannot read \"%s\"\n", path);
        return EXIT_USAGE;
    }
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (!j) {
        fprintf(stderr, "nodectl: bad JSON: %s\n", jerr.text);
        return EXIT_USAGE;
    }
    int r = spec_from_json(j, &m.u.apply, field, sizeof(field));
    json_decref(j);
    if (r < 0) {
        fprintf(stderr, "nodectl: bad spec field \"%s\"\n", field);
        return EXIT_USAGE;
    }
    if (send_msg(&m) < 0)
        return EXIT_TIMEOUT;
    return await_answer(m.id);
}

static int
cmd_guest(enum msg_type t, int argc, char **argv)
{
    struct msg m = {.type = t, .id = (uint64_t)time_real_ms()};

    if (argc < 1 || strscpy(m.u.guest.id, argv[0], sizeof(m.u.guest.id)) < 0)
        return EXIT_USAGE;
    /* The generation the master last sent; the agent only reports it back. */
    m.u.guest.generation = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    if (argc > 2)
        m.u.guest.timeout = (uint32_t)strtoul(argv[2], NULL, 10);
    if (send_msg(&m) < 0)
        return EXIT_TIMEOUT;
    return await_answer(m.id);
}

/* shell ID -- ARGV: a session's start, not a session (nothing is read). */
static int
cmd_shell(int argc, char **argv)
{
    struct msg m = {.type = MSG_SHELL_OPEN, .id = (uint64_t)time_real_ms()};
    int i = argc > 1 && strcmp(argv[1], "--") == 0 ? 2 : 1;

    if (argc < 1 || i >= argc || strscpy(m.u.shell.id, argv[0], sizeof(m.u.shell.id)) < 0)
        return EXIT_USAGE;
    m.u.shell.session = 1;
    m.u.shell.argc = (uint32_t)(argc - i);
    m.u.shell.argv = argv + i;
    if (send_msg(&m) < 0)
        return EXIT_TIMEOUT;
    return await_answer(m.id);
}

/* abort ID: the source's part of a move's abort, under an operation id of
 * its own (an agent restarted keeps no move: it thaws what is frozen), or
 * of exec-export's export. */
#define ABORT_OP "00000000-0000-4000-8000-00000000ab07"

static int
cmd_abort(const char *id)
{
    struct msg m = {.type = MSG_MIGRATE_ABORT, .id = (uint64_t)time_real_ms()};

    if (strscpy(m.u.migrate.id, id, sizeof(m.u.migrate.id)) < 0)
        return EXIT_USAGE;
    strscpy(m.u.migrate.op, ABORT_OP, sizeof(m.u.migrate.op));
    strscpy(m.u.migrate.role, "source", sizeof(m.u.migrate.role));
    if (send_msg(&m) < 0)
        return EXIT_TIMEOUT;
    return await_answer(m.id);
}

static int
cmd_exec(int argc, char **argv)
{
    struct msg m = {.type = MSG_GUEST_EXEC, .id = (uint64_t)time_real_ms()};
    int i = 1;

    if (argc < 2 || strscpy(m.u.exec.id, argv[0], sizeof(m.u.exec.id)) < 0)
        return EXIT_USAGE;
    if (strcmp(argv[1], "--") == 0)
        i = 2;
    if (i >= argc)
        return EXIT_USAGE;
    m.u.exec.argc = (uint32_t)(argc - i);
    m.u.exec.argv = argv + i; /* borrowed: not msg_clear'd */
    m.u.exec.timeout_ms = exec_timeout_ms();
    m.u.exec.max_output = 1 << 20;
    if (send_msg(&m) < 0)
        return EXIT_TIMEOUT;
    return await_answer(m.id);
}

/* exec-export ID -- ARGV: an exec, then, a second later (the command runs),
 * an export of the same guest under the operation id abort uses (its pack
 * freezes the guest; its endpoint takes nothing, so the export waits there
 * until abort ends it); prints the exec's answer. */
static int
cmd_exec_export(int argc, char **argv)
{
    struct msg x = {.type = MSG_GUEST_EXEC, .id = (uint64_t)time_real_ms()};
    int i = argc > 1 && strcmp(argv[1], "--") == 0 ? 2 : 1;

    if (argc < 1 || i >= argc || strscpy(x.u.exec.id, argv[0], sizeof(x.u.exec.id)) < 0)
        return EXIT_USAGE;
    x.u.exec.argc = (uint32_t)(argc - i);
    x.u.exec.argv = argv + i; /* borrowed: not msg_clear'd */
    x.u.exec.timeout_ms = exec_timeout_ms();
    if (send_msg(&x) < 0)
        return EXIT_TIMEOUT;
    usleep(1000 * 1000);
    struct msg e = {.type = MSG_MIGRATE_SEND, .id = x.id + 1};
    strscpy(e.u.migrate.id, argv[0], sizeof(e.u.migrate.id));
    strscpy(e.u.migrate.op, ABORT_OP, sizeof(e.u.migrate.op));
    strscpy(e.u.migrate.peer, "master", sizeof(e.u.migrate.peer));
    memset(e.u.migrate.secret, 'a', MIGRATE_SECRET_LEN);
    strscpy(e.u.migrate.endpoint, "tcp://127.0.0.1:9", sizeof(e.u.migrate.endpoint));
    e.u.migrate.archive = true;
    if (send_msg(&e) < 0)
        return EXIT_TIMEOUT;
    return await_answer(x.id);
}

/* Request ids unique within one nodectl run, several per millisecond. */
static uint64_t
next_id(void)
{
    static uint64_t seq;
    return (uint64_t)time_real_ms() * 1000 + (++seq % 1000);
}

/* Waits for the answer to id without printing it: the exec's code, or -1 for a nack. */
static int
await_quiet(uint64_t id)
{
    struct msg m;
    for (;;) {
        if (next_msg(&m) < 0)
            return -2;
        int rc = -3;
        if ((m.type == MSG_ACK && m.u.ack.ref == id))
            rc = 0;
        else if (m.type == MSG_NACK && m.u.nack.ref == id) {
            fprintf(stderr, "nodectl: nack %s: %s\n", msg_error_name(m.u.nack.code),
                    m.u.nack.message);
            rc = -1;
        } else if (m.type == MSG_EXEC_RESULT && m.u.exec_result.ref == id)
            rc = m.u.exec_result.signal ? 128 + m.u.exec_result.signal : m.u.exec_result.exit_code;
        msg_clear(&m);
        if (rc != -3)
            return rc;
    }
}

static int
exec_quiet(const char *id, int argc, char **argv)
{
    struct msg m = {.type = MSG_GUEST_EXEC, .id = next_id()};
    strscpy(m.u.exec.id, id, sizeof(m.u.exec.id));
    m.u.exec.argc = (uint32_t)argc;
    m.u.exec.argv = argv; /* borrowed: not msg_clear'd */
    m.u.exec.timeout_ms = exec_timeout_ms();
    m.u.exec.max_output = 4096;
    if (send_msg(&m) < 0)
        return -2;
    return await_quiet(m.id);
}

/* exec-n N ID -- ARGV: prints {"runs":N,"codes":{"CODE":COUNT,...}}. */
static int
cmd_exec_n(int argc, char **argv)
{
    if (argc < 3)
        return EXIT_USAGE;
    long n = atol(argv[0]);
    int i = strcmp(argv[2], "--") == 0 ? 3 : 2;
    if (n < 1 || i >= argc)
        return EXIT_USAGE;
    json_t *codes = json_object();
    for (long k = 0; k < n; k++) {
        int rc = exec_quiet(argv[1], argc - i, argv + i);
        if (rc < 0) {
            json_decref(codes);
            return rc == -1 ? EXIT_NACK : EXIT_TIMEOUT;
        }
        char key[16];
        snprintf(key, sizeof(key), "%d", rc);
        json_t *c = json_object_get(codes, key);
        json_object_set_new(codes, key, json_integer(c ? json_integer_value(c) + 1 : 1));
    }
    print_json(json_pack("{s:I, s:o}", "runs", (json_int_t)n, "codes", codes));
    return 0;
}

/* cycle N SPEC.json: N rounds of apply, start, exec true, destroy of one guest. */
static int
cmd_cycle(int argc, char **argv)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    json_error_t jerr;
    char field[128] = "";
    struct guest_spec spec;

    if (argc != 2 || atol(argv[0]) < 1 || read_file(argv[1], &text, &len) < 0)
        return EXIT_USAGE;
    json_t *j = json_loadb(text, len, 0, &jerr);
    if (!j || spec_from_json(j, &spec, field, sizeof(field)) < 0) {
        json_decref(j);
        fprintf(stderr, "nodectl: bad spec \"%s\"\n", field);
        return EXIT_USAGE;
    }
    json_decref(j);
    char *true_argv[] = {"true", NULL};
    for (long k = 0; k < atol(argv[0]); k++) {
        struct msg m = {.type = MSG_GUEST_APPLY, .id = next_id()};
        m.u.apply = spec;
        int rc = send_msg(&m) < 0 ? -2 : await_quiet(m.id);
        if (rc == 0) {
            struct msg g = {.type = MSG_GUEST_START, .id = next_id()};
            strscpy(g.u.guest.id, spec.id, sizeof(g.u.guest.id));
            g.u.guest.generation = spec.generation;
            rc = send_msg(&g) < 0 ? -2 : await_quiet(g.id);
        }
        if (rc == 0)
            rc = exec_quiet(spec.id, 1, true_argv);
        if (rc == 0) {
            struct msg g = {.type = MSG_GUEST_DESTROY, .id = next_id()};
            strscpy(g.u.guest.id, spec.id, sizeof(g.u.guest.id));
            g.u.guest.generation = spec.generation;
            rc = send_msg(&g) < 0 ? -2 : await_quiet(g.id);
        }
        if (rc != 0) {
            fprintf(stderr, "nodectl: cycle %ld failed (%d)\n", k, rc);
            return rc == -2 ? EXIT_TIMEOUT : EXIT_NACK;
        }
    }
    print_json(json_pack("{s:I}", "cycles", (json_int_t)atol(argv[0])));
    return 0;
}

static int
cmd_usage(const char *id)
{
    struct msg m;

    for (;;) {
        if (next_msg(&m) < 0) {
            fprintf(stderr, "nodectl: no usage for \"%s\" in time\n", id);
            return EXIT_TIMEOUT;
        }
        if (m.type == MSG_USAGE) {
            for (uint32_t i = 0; i < m.u.usage.n_samples; i++) {
                if (strcmp(m.u.usage.samples[i].id, id) == 0) {
                    print_json(usage_to_json(&m.u.usage.samples[i]));
                    msg_clear(&m);
                    return 0;
                }
            }
        }
        msg_clear(&m);
    }
}

static int
cmd_wait_hello(void)
{
    struct msg m;

    for (;;) {
        if (next_msg(&m) < 0) {
            fprintf(stderr, "nodectl: no hello from \"%s\" in time\n", node);
            return EXIT_TIMEOUT;
        }
        if (m.type == MSG_HELLO) {
            json_t *inv = json_array();
            for (uint32_t i = 0; i < m.u.hello.n_inventory; i++) {
                const struct msg_inventory_item *it = &m.u.hello.inventory[i];
                json_array_append_new(inv,
                                      json_pack("{s:s, s:s, s:I, s:b}", "id", it->id, "name",
                                                it->name, "generation", (json_int_t)it->generation,
                                                "running", it->running));
            }
            /* leftovers: null when the hello has none (an older node). */
            print_json(json_pack(
                "{s:s, s:s, s:s, s:I, s:I, s:I, s:o, s:o}", "node", m.u.hello.node, "cgroup",
                m.u.hello.cgroup, "backend", m.u.hello.backend, "memory",
                (json_int_t)m.u.hello.memory, "disk", (json_int_t)m.u.hello.disk, "max_guests",
                (json_int_t)m.u.hello.max_guests, "inventory", inv, "leftovers",
                m.u.hello.has_leftovers ? json_integer(m.u.hello.leftovers) : json_null()));
            msg_clear(&m);
            return 0;
        }
        msg_clear(&m);
    }
}

static int
cmd_raw(const char *path)
{
    _cleanup_free_ char *buf = NULL;
    size_t len;
    struct msg m;

    if (read_file(path, &buf, &len) < 0)
        return EXIT_USAGE;
    if (send_frame(buf, len) < 0)
        return EXIT_TIMEOUT;
    /* The answer to a raw frame is whatever nack comes next. */
    for (;;) {
        if (next_msg(&m) < 0)
            return EXIT_TIMEOUT;
        if (m.type == MSG_NACK) {
            print_json(json_pack("{s:b, s:I, s:s, s:s}", "ok", 0, "ref", (json_int_t)m.u.nack.ref,
                                 "code", msg_error_name(m.u.nack.code), "message",
                                 m.u.nack.message));
            msg_clear(&m);
            return EXIT_NACK;
        }
        msg_clear(&m);
    }
}

int
main(int argc, char **argv)
{
    const char *endpoint = NULL;
    unsigned timeout = 30;
    int c, err = 0, rc;

    while ((c = getopt(argc, argv, "+e:n:t:")) != -1) {
        switch (c) {
        case 'e':
            endpoint = optarg;
            break;
        case 'n':
            node = optarg;
            break;
        case 't':
            timeout = (unsigned)atoi(optarg);
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (!endpoint || !node || optind >= argc) {
        fprintf(stderr, "usage: nodectl -e ENDPOINT -n NODE [-t SECONDS] COMMAND ...\n");
        return EXIT_USAGE;
    }
    router = link_new_router(endpoint, &err);
    if (!router) {
        fprintf(stderr, "nodectl: cannot bind \"%s\": %s\n", endpoint, strerror(-err));
        return EXIT_USAGE;
    }
    deadline_ms = time_mono_ms() + timeout * 1000ULL;
    const char *verb = argv[optind];
    int n = argc - optind - 1;
    char **args = argv + optind + 1;

    if (strcmp(verb, "wait-hello") == 0)
        rc = cmd_wait_hello();
    else if (strcmp(verb, "apply") == 0 && n == 1)
        rc = cmd_apply(args[0], MSG_GUEST_APPLY);
    else if (strcmp(verb, "apply-start") == 0 && n == 1)
        rc = cmd_apply(args[0], MSG_GUEST_APPLY_START);
    else if (strcmp(verb, "start") == 0)
        rc = cmd_guest(MSG_GUEST_START, n, args);
    else if (strcmp(verb, "stop") == 0)
        rc = cmd_guest(MSG_GUEST_STOP, n, args);
    else if (strcmp(verb, "destroy") == 0)
        rc = cmd_guest(MSG_GUEST_DESTROY, n, args);
    else if (strcmp(verb, "exec") == 0)
        rc = cmd_exec(n, args);
    else if (strcmp(verb, "exec-n") == 0)
        rc = cmd_exec_n(n, args);
    else if (strcmp(verb, "cycle") == 0)
        rc = cmd_cycle(n, args);
    else if (strcmp(verb, "usage") == 0 && n == 1)
        rc = cmd_usage(args[0]);
    else if (strcmp(verb, "raw") == 0 && n == 1)
        rc = cmd_raw(args[0]);
    else if (strcmp(verb, "shell") == 0)
        rc = cmd_shell(n, args);
    else if (strcmp(verb, "exec-export") == 0)
        rc = cmd_exec_export(n, args);
    else if (strcmp(verb, "abort") == 0 && n == 1)
        rc = cmd_abort(args[0]);
    else {
        fprintf(stderr, "nodectl: unknown command \"%s\"\n", verb);
        rc = EXIT_USAGE;
    }
    link_destroy(&router);
    return rc;
}
