/* The range and form checks of the msgpack codec (codec.h), run on the typed
 * struct by both msg_encode and msg_decode, so we never send what the peer
 * would refuse. They also guard against a caller's unterminated buffers
 * before anything is encoded. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/keys.h"

/* ---------------------------------------------------------------- errors */

int
codec_fail(struct codec_ctx *c, int rc, const char *fmt, ...)
{
    if (!c->failed && c->err && c->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->errlen, fmt, ap);
        va_end(ap);
    }
    c->failed = true;
    return rc;
}

int
codec_fail_field(struct codec_ctx *c, int rc, const char *key, const char *fmt, ...)
{
    char what[96];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return codec_fail(c, rc, "field '%s%s%s': %s", c->path, c->path[0] ? "." : "", key, what);
}

size_t
codec_path_push(struct codec_ctx *c, const char *fmt, ...)
{
    size_t old = strlen(c->path);
    size_t n = old;
    va_list ap;

    if (n > 0 && fmt[0] != '[' && n + 1 < sizeof(c->path))
        c->path[n++] = '.';
    va_start(ap, fmt);
    vsnprintf(c->path + n, sizeof(c->path) - n, fmt, ap);
    va_end(ap);
    return old;
}

void
codec_path_pop(struct codec_ctx *c, size_t old)
{
    c->path[old] = '\0';
}

/* ---------------------------------------------------------------- checks */

static bool
terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* Printable ASCII and any UTF-8 byte, no control characters. */
static bool
is_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

#define CHECK(cond, key, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return codec_fail_field(c, -EINVAL, key, __VA_ARGS__);                                 \
    } while (0)

/* A guest id field: a UUID, or "" when optional. */
static int
check_guest_id(struct codec_ctx *c, const char *key, const char *id, bool required)
{
    CHECK(terminated(id, SPEC_ID_LEN + 1), key, "not terminated");
    if (!required && id[0] == '\0')
        return 0;
    CHECK(spec_is_uuid(id), key, "not a lower-case UUID");
    return 0;
}

static int
check_text(struct codec_ctx *c, const char *key, const char *s, size_t size, bool printable)
{
    CHECK(terminated(s, size), key, "longer than %zu bytes", size - 1);
    CHECK(!printable || is_printable(s), key, "contains control characters");
    return 0;
}

static int
check_labels(struct codec_ctx *c, const struct spec_label *l, uint32_t n, uint32_t max)
{
    CHECK(n <= max, "labels", "%u entries exceed %u", n, max);
    for (uint32_t i = 0; i < n; i++) {
        CHECK(terminated(l[i].key, sizeof(l[i].key)) && name_is_valid(l[i].key), "labels",
              "key %u is not a name", i);
        CHECK(terminated(l[i].value, sizeof(l[i].value)) && is_printable(l[i].value), "labels",
              "value of '%s' is not printable text", l[i].key);
        for (uint32_t j = 0; j < i; j++)
            CHECK(strcmp(l[i].key, l[j].key) != 0, "labels", "key '%s' given twice", l[i].key);
    }
    return 0;
}

/* "" (not said), "running" or "stopped". */
static int
check_desired(struct codec_ctx *c, const char *key, const char *d, size_t size)
{
    CHECK(terminated(d, size) &&
              (d[0] == '\0' || strcmp(d, "running") == 0 || strcmp(d, "stopped") == 0),
          key, "not running or stopped");
    return 0;
}

static int
check_inventory(struct codec_ctx *c, const struct msg_inventory_item *inv, uint32_t n)
{
    CHECK(n <= PROTO_MAX_INVENTORY, "inventory", "%u entries exceed %u", n, PROTO_MAX_INVENTORY);
    CHECK(n == 0 || inv, "inventory", "missing");
    for (uint32_t i = 0; i < n; i++) {
        const struct msg_inventory_item *it = &inv[i];
        size_t old = codec_path_push(c, "inventory[%u]", i);
        TRY(check_guest_id(c, "id", it->id, true));
        CHECK(terminated(it->name, sizeof(it->name)) && name_is_valid(it->name), "name",
              "not a name");
        TRY(check_desired(c, "desired", it->desired, sizeof(it->desired)));
        codec_path_pop(c, old);
    }
    return 0;
}

static int
check_hello(struct codec_ctx *c, const struct msg_hello *h)
{
    CHECK(terminated(h->node, sizeof(h->node)) && name_is_valid(h->node), "node", "not a name");
    TRY(check_text(c, "agent_version", h->agent_version, sizeof(h->agent_version), true));
    CHECK(h->agent_version[0], "agent_version", "empty");
    TRY(check_text(c, "kernel", h->kernel, sizeof(h->kernel), true));
    CHECK(terminated(h->cgroup, sizeof(h->cgroup)) &&
              (strcmp(h->cgroup, "v1") == 0 || strcmp(h->cgroup, "v2") == 0 ||
               strcmp(h->cgroup, "hybrid") == 0),
          "cgroup", "not v1, v2 or hybrid");
    CHECK(terminated(h->backend, sizeof(h->backend)) && name_is_valid(h->backend), "backend",
          "not a name");
    TRY(check_labels(c, h->labels, h->n_labels, PROTO_MAX_LABELS));
    CHECK(h->n_templates <= PROTO_MAX_TEMPLATES, "templates", "%u entries exceed %u",
          h->n_templates, PROTO_MAX_TEMPLATES);
    for (uint32_t i = 0; i < h->n_templates; i++) {
        const char *sum = h->templates[i].checksum;
        CHECK(terminated(h->templates[i].name, sizeof(h->templates[i].name)) &&
                  name_is_valid(h->templates[i].name),
              "templates", "entry %u is not a name", i);
        CHECK(terminated(sum, sizeof(h->templates[i].checksum)) &&
                  (!sum[0] || (strlen(sum) == 71 && !strncmp(sum, "sha256:", 7) &&
                               strspn(sum + 7, "0123456789abcdef") == 64)),
              "templates", "entry %u: checksum is not sha256:HEX", i);
    }
    return check_inventory(c, h->inventory, h->n_inventory);
}

/* An inventory answer; its spec is checked only when it names a guest. */
static int
check_inventory_msg(struct codec_ctx *c, const struct msg_inventory *inv)
{
    const char *field = NULL;

    TRY(check_inventory(c, inv->inventory, inv->n_inventory));
    if (!terminated(inv->spec.id, sizeof(inv->spec.id)) || inv->spec.id[0] == '\0')
        return 0;
    size_t old = codec_path_push(c, "spec");
    CHECK(spec_validate(&inv->spec, &field) == 0, field ? field : "?", "invalid");
    codec_path_pop(c, old);
    return 0;
}

static int
check_exec(struct codec_ctx *c, const struct msg_guest_exec *e)
{
    TRY(check_guest_id(c, "guest", e->id, true));
    CHECK(e->argc >= 1 && e->argc <= PROTO_MAX_ARGV && e->argv, "argv", "needs 1 to %u entries",
          PROTO_MAX_ARGV);
    for (uint32_t i = 0; i < e->argc; i++) {
        CHECK(e->argv[i], "argv", "entry %u missing", i);
        CHECK(strnlen(e->argv[i], PROTO_MAX_STRING + 1) <= PROTO_MAX_STRING, "argv",
              "entry %u longer than %u bytes", i, PROTO_MAX_STRING);
    }
    CHECK(e->argv[0][0], "argv", "empty program name");
    CHECK(e->timeout_ms <= 3600u * 1000, "timeout_ms", "above one hour");
    CHECK(e->max_output <= PROTO_MAX_EXEC_OUT, "max_output", "exceeds %u", PROTO_MAX_EXEC_OUT);
    return 0;
}

/* Lower-case hex of exactly len digits, or "" when optional. */
static int
check_hex(struct codec_ctx *c, const char *key, const char *s, size_t len, bool required)
{
    CHECK(terminated(s, len + 1), key, "longer than %zu bytes", len);
    if (!required && s[0] == '\0')
        return 0;
    CHECK(strlen(s) == len && strspn(s, "0123456789abcdef") == len, key,
          "not %zu lower-case hex digits", len);
    return 0;
}

/* A data channel endpoint: tcp:// or ipc://, printable, no spaces. */
static int
check_endpoint(struct codec_ctx *c, const char *key, const char *s, size_t size, bool required)
{
    TRY(check_text(c, key, s, size, true));
    if (!required && s[0] == '\0')
        return 0;
    CHECK((strncmp(s, "tcp://", 6) == 0 || strncmp(s, "ipc://", 6) == 0) && s[6] && !strchr(s, ' '),
          key, "not a tcp:// or ipc:// endpoint");
    return 0;
}

static int
check_migrate(struct codec_ctx *c, enum msg_type t, const struct msg_migrate *mg)
{
    const char *field = NULL;

    TRY(check_guest_id(c, "op", mg->op, true));
    TRY(check_guest_id(c, "guest", mg->id, true));
    if (t == MSG_MIGRATE_PREPARE || t == MSG_MIGRATE_SEND) {
        CHECK(terminated(mg->peer, sizeof(mg->peer)) && name_is_valid(mg->peer), "peer",
              "not a name");
        TRY(check_hex(c, "secret", mg->secret, MIGRATE_SECRET_LEN, true));
        TRY(check_text(c, "peer_key", mg->peer_key, sizeof(mg->peer_key), true));
    }
    if (t == MSG_MIGRATE_SEND)
        TRY(check_endpoint(c, "endpoint", mg->endpoint, sizeof(mg->endpoint), true));
    if (t == MSG_MIGRATE_COMMIT)
        TRY(check_hex(c, "digest", mg->digest, MIGRATE_DIGEST_LEN, true));
    if (t == MSG_MIGRATE_ABORT)
        CHECK(terminated(mg->role, sizeof(mg->role)) &&
                  (!strcmp(mg->role, "source") || !strcmp(mg->role, "target")),
              "role", "not source or target");
    CHECK(terminated(mg->template_name, sizeof(mg->template_name)) &&
              (!mg->template_name[0] || name_is_valid(mg->template_name)),
          "template", "not a name");
    /* A template fetch carries no guest: its "guest" is the operation's id. */
    if (mg->template_name[0] && (t == MSG_MIGRATE_PREPARE || t == MSG_MIGRATE_COMMIT))
        CHECK(!mg->spec.id[0], "spec", "a template fetch carries no spec");
    else if (t == MSG_MIGRATE_PREPARE || t == MSG_MIGRATE_COMMIT) {
        size_t old = codec_path_push(c, "spec");
        CHECK(spec_validate(&mg->spec, &field) == 0, field ? field : "?", "invalid");
        codec_path_pop(c, old);
        CHECK(strcmp(mg->spec.id, mg->id) == 0, "guest", "not the spec's id");
    }
    return 0;
}

static bool
one_of(const char *s, size_t size, const char *const *words)
{
    if (!terminated(s, size))
        return false;
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return true;
    return false;
}

static int
check_migrate_status(struct codec_ctx *c, const struct msg_migrate_status *st)
{
    static const char *const phases[] = {"prepare", "send", "commit", "finish", "abort", NULL};
    static const char *const states[] = {"ready", "progress", "done", "failed", NULL};

    TRY(check_guest_id(c, "op", st->op, true));
    TRY(check_guest_id(c, "guest", st->id, true));
    CHECK(one_of(st->phase, sizeof(st->phase), phases), "phase", "not a migrate phase");
    CHECK(one_of(st->state, sizeof(st->state), states), "state", "not a migrate state");
    CHECK(terminated(st->code, sizeof(st->code)) &&
              (!st->code[0] || msg_error_from_name(st->code) != MSG_ERR_NONE),
          "code", "not an error code");
    TRY(check_text(c, "message", st->message, sizeof(st->message), false));
    TRY(check_endpoint(c, "endpoint", st->endpoint, sizeof(st->endpoint), false));
    TRY(check_text(c, "key", st->key, sizeof(st->key), true));
    TRY(check_hex(c, "digest", st->digest, MIGRATE_DIGEST_LEN, false));
    CHECK(st->bytes_done <= st->bytes_total, "bytes_done", "exceeds bytes_total");
    return check_text(c, "note", st->note, sizeof(st->note), false);
}

static int
check_usage(struct codec_ctx *c, const struct msg_usage *u)
{
    CHECK(u->n_samples <= PROTO_MAX_SAMPLES, "samples", "%u entries exceed %u", u->n_samples,
          PROTO_MAX_SAMPLES);
    CHECK(u->n_samples == 0 || u->samples, "samples", "missing");
    for (uint32_t i = 0; i < u->n_samples; i++) {
        size_t old = codec_path_push(c, "samples[%u]", i);
        TRY(check_guest_id(c, "guest", u->samples[i].id, true));
        codec_path_pop(c, old);
    }
    return 0;
}

static int
check_traffic(struct codec_ctx *c, const struct msg_traffic *t)
{
    CHECK(t->n_items <= PROTO_MAX_SAMPLES, "guests", "%u entries exceed %u", t->n_items,
          PROTO_MAX_SAMPLES);
    CHECK(t->n_items == 0 || t->items, "guests", "missing");
    for (uint32_t i = 0; i < t->n_items; i++) {
        size_t old = codec_path_push(c, "guests[%u]", i);
        TRY(check_guest_id(c, "guest", t->items[i].id, true));
        codec_path_pop(c, old);
    }
    return 0;
}

static int
check_shell(struct codec_ctx *c, const struct msg_shell_open *sh)
{
    TRY(check_guest_id(c, "guest", sh->id, true));
    CHECK(sh->session >= 1, "session", "zero");
    CHECK(sh->argc <= PROTO_MAX_ARGV && (sh->argc == 0 || sh->argv), "argv",
          "needs at most %u entries", PROTO_MAX_ARGV);
    for (uint32_t i = 0; i < sh->argc; i++) {
        CHECK(sh->argv[i], "argv", "entry %u missing", i);
        CHECK(strnlen(sh->argv[i], PROTO_MAX_STRING + 1) <= PROTO_MAX_STRING, "argv",
              "entry %u longer than %u bytes", i, PROTO_MAX_STRING);
    }
    CHECK(sh->argc == 0 || sh->argv[0][0], "argv", "empty program name");
    CHECK(sh->cols <= 65535 && sh->rows <= 65535, "cols", "above 65535");
    CHECK(terminated(sh->term, sizeof(sh->term)), "term", "too long");
    CHECK(msg_term_is_valid(sh->term), "term", "not a terminal name");
    return 0;
}

static int
check_stream(struct codec_ctx *c, const struct msg *m)
{
    switch (m->type) {
    case MSG_STREAM_CTL:
        CHECK(m->u.stream_ctl.session >= 1, "session", "zero");
        CHECK(m->u.stream_ctl.cols <= 65535 && m->u.stream_ctl.rows <= 65535, "cols",
              "above 65535");
        CHECK(m->u.stream_ctl.signal < 65, "signal", "not within 0..64");
        return 0;
    case MSG_STREAM_DATA:
        CHECK(m->u.stream_data.session >= 1, "session", "zero");
        CHECK(m->u.stream_data.fd <= 2, "fd", "not 0, 1 or 2");
        CHECK(m->u.stream_data.len <= PROTO_STREAM_CHUNK &&
                  (m->u.stream_data.len == 0 || m->u.stream_data.data),
              "data", "bad length");
        return 0;
    case MSG_STREAM_ACK:
        CHECK(m->u.stream_ack.session >= 1, "session", "zero");
        CHECK(m->u.stream_ack.bytes <= PROTO_STREAM_WINDOW, "bytes", "above the window");
        return 0;
    default: /* MSG_STREAM_EXIT */
        CHECK(m->u.stream_exit.session >= 1, "session", "zero");
        CHECK(m->u.stream_exit.signal >= 0 && m->u.stream_exit.signal <= 64, "signal",
              "not within 0..64");
        return check_text(c, "message", m->u.stream_exit.message, sizeof(m->u.stream_exit.message),
                          false);
    }
}

static int
check_join(struct codec_ctx *c, const struct msg_join *j)
{
    CHECK(terminated(j->node, sizeof(j->node)) && name_is_valid(j->node), "node", "not a name");
    CHECK(keys_valid(j->key), "key", "not a CurveZMQ public key (40 Z85 characters)");
    return 0;
}

int
codec_check_msg(struct codec_ctx *c, const struct msg *m)
{
    const char *field = NULL;

    switch (m->type) {
    case MSG_HELLO:
        return check_hello(c, &m->u.hello);
    case MSG_HEARTBEAT:
        CHECK(m->u.heartbeat.n_running <= m->u.heartbeat.n_guests, "n_running", "exceeds n_guests");
        return 0;
    case MSG_WELCOME:
        CHECK(m->u.welcome.heartbeat_ms >= 100 && m->u.welcome.heartbeat_ms <= 3600000,
              "heartbeat_ms", "not within 100..3600000");
        CHECK(m->u.welcome.usage_ms >= 100 && m->u.welcome.usage_ms <= 3600000, "usage_ms",
              "not within 100..3600000");
        return 0;
    case MSG_ACK:
        return check_guest_id(c, "guest", m->u.ack.id, false);
    case MSG_NACK:
        TRY(check_guest_id(c, "guest", m->u.nack.id, false));
        CHECK(m->u.nack.code > MSG_ERR_NONE && m->u.nack.code < MSG_ERR_COUNT, "code",
              "not an error code");
        return check_text(c, "message", m->u.nack.message, sizeof(m->u.nack.message), false);
    case MSG_USAGE:
        return check_usage(c, &m->u.usage);
    case MSG_EVENT:
        TRY(check_guest_id(c, "guest", m->u.event.id, false));
        CHECK(terminated(m->u.event.kind, sizeof(m->u.event.kind)) &&
                  name_is_valid(m->u.event.kind),
              "kind", "not a name");
        CHECK(m->u.event.signal >= 0 && m->u.event.signal <= 64, "signal", "not within 0..64");
        TRY(check_desired(c, "desired", m->u.event.desired, sizeof(m->u.event.desired)));
        return check_text(c, "message", m->u.event.message, sizeof(m->u.event.message), false);
    case MSG_EXEC_RESULT: {
        const struct msg_exec_result *r = &m->u.exec_result;
        TRY(check_guest_id(c, "guest", r->id, true));
        CHECK(r->signal >= 0 && r->signal <= 64, "signal", "not within 0..64");
        CHECK(r->out_len <= PROTO_MAX_EXEC_OUT && (r->out_len == 0 || r->out), "out", "bad length");
        CHECK(r->err_len <= PROTO_MAX_EXEC_OUT && (r->err_len == 0 || r->err), "err", "bad length");
        return 0;
    }
    case MSG_GUEST_APPLY:
    case MSG_GUEST_APPLY_START: {
        size_t old = codec_path_push(c, "spec");
        CHECK(spec_validate(&m->u.apply, &field) == 0, field ? field : "?", "invalid");
        codec_path_pop(c, old);
        return 0;
    }
    case MSG_GUEST_START:
    case MSG_GUEST_STOP:
    case MSG_GUEST_DESTROY:
        TRY(check_guest_id(c, "guest", m->u.guest.id, true));
        CHECK(m->u.guest.generation >= 1, "generation", "zero");
        CHECK(m->u.guest.timeout <= 3600, "timeout", "above one hour");
        CHECK(m->type == MSG_GUEST_STOP || m->u.guest.timeout == 0, "timeout",
              "only guest.stop has one");
        return 0;
    case MSG_GUEST_EXEC:
        return check_exec(c, &m->u.exec);
    case MSG_MIGRATE_PREPARE:
    case MSG_MIGRATE_SEND:
    case MSG_MIGRATE_COMMIT:
    case MSG_MIGRATE_FINISH:
    case MSG_MIGRATE_ABORT:
        return check_migrate(c, m->type, &m->u.migrate);
    case MSG_MIGRATE_STATUS:
        return check_migrate_status(c, &m->u.migrate_status);
    case MSG_SHELL_OPEN:
        return check_shell(c, &m->u.shell);
    case MSG_STREAM_CTL:
    case MSG_STREAM_DATA:
    case MSG_STREAM_ACK:
    case MSG_STREAM_EXIT:
        return check_stream(c, m);
    case MSG_INVENTORY:
        return check_inventory_msg(c, &m->u.inventory);
    case MSG_INVENTORY_GET:
        return check_guest_id(c, "guest", m->u.inventory_get.id, false);
    case MSG_TRAFFIC_GET:
        return 0;
    case MSG_TRAFFIC:
        return check_traffic(c, &m->u.traffic);
    case MSG_JOIN:
        return check_join(c, &m->u.join);
    case MSG_GUEST_CONSOLE:
        TRY(check_guest_id(c, "guest", m->u.console.id, true));
        CHECK(m->u.console.max_bytes <= PROTO_MAX_CONSOLE, "max_bytes", "above %u",
              PROTO_MAX_CONSOLE);
        return 0;
    case MSG_CONSOLE_RESULT: {
        const struct msg_console_result *r = &m->u.console_result;
        TRY(check_guest_id(c, "guest", r->id, true));
        CHECK(r->len <= PROTO_MAX_CONSOLE && (r->len == 0 || r->data), "data", "bad length");
        CHECK(r->len <= r->total, "total", "below the bytes sent");
        return 0;
    }
    default:
        return codec_fail(c, -EINVAL, "unknown message type %d", (int)m->type);
    }
}
