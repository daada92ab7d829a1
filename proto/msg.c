/* Names of message types and error codes, the errno mapping, and msg_clear.
 * The wire names live in one table each so the codec, the master's API and
 * the CLI cannot disagree about them. */
#include "proto/msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

static const char *const type_names[MSG_TYPE_COUNT] = {
    [MSG_INVALID] = NULL,
    [MSG_HELLO] = "hello",
    [MSG_HEARTBEAT] = "heartbeat",
    [MSG_ACK] = "ack",
    [MSG_NACK] = "nack",
    [MSG_USAGE] = "usage",
    [MSG_EVENT] = "event",
    [MSG_EXEC_RESULT] = "guest.exec.result",
    [MSG_INVENTORY] = "inventory",
    [MSG_TRAFFIC_GET] = "traffic.get",
    [MSG_WELCOME] = "welcome",
    [MSG_GUEST_APPLY] = "guest.apply",
    [MSG_GUEST_START] = "guest.start",
    [MSG_GUEST_STOP] = "guest.stop",
    [MSG_GUEST_DESTROY] = "guest.destroy",
    [MSG_GUEST_EXEC] = "guest.exec",
    [MSG_SHELL_OPEN] = "guest.shell",
    [MSG_STREAM_CTL] = "stream.ctl",
    [MSG_STREAM_DATA] = "stream.data",
    [MSG_STREAM_ACK] = "stream.ack",
    [MSG_STREAM_EXIT] = "stream.exit",
    [MSG_GUEST_CONSOLE] = "guest.console",
    [MSG_CONSOLE_RESULT] = "guest.console.result",
    [MSG_INVENTORY_GET] = "inventory.get",
    [MSG_MIGRATE_PREPARE] = "guest.migrate.prepare",
    [MSG_MIGRATE_SEND] = "guest.migrate.send",
    [MSG_MIGRATE_COMMIT] = "guest.migrate.commit",
    [MSG_MIGRATE_FINISH] = "guest.migrate.finish",
    [MSG_MIGRATE_ABORT] = "guest.migrate.abort",
    [MSG_MIGRATE_STATUS] = "guest.migrate.status",
    [MSG_TRAFFIC] = "traffic",
    [MSG_JOIN] = "join",
    [MSG_GUEST_APPLY_START] = "guest.apply.start",
};

static const char *const error_names[MSG_ERR_COUNT] = {
    [MSG_ERR_NONE] = NULL,
    [MSG_ERR_BAD_REQUEST] = "bad_request",
    [MSG_ERR_UNKNOWN_TYPE] = "unknown_type",
    [MSG_ERR_VERSION] = "version",
    [MSG_ERR_NOT_FOUND] = "not_found",
    [MSG_ERR_CONFLICT] = "conflict",
    [MSG_ERR_STALE] = "stale",
    [MSG_ERR_LOCKED] = "locked",
    [MSG_ERR_PRIVATE] = "private",
    [MSG_ERR_NO_SPACE] = "no_space",
    [MSG_ERR_UNSUPPORTED] = "unsupported",
    [MSG_ERR_BUSY] = "busy",
    [MSG_ERR_INTERNAL] = "internal",
};

const char *
msg_type_name(enum msg_type t)
{
    return (unsigned)t < MSG_TYPE_COUNT ? type_names[t] : NULL;
}

enum msg_type
msg_type_from_name(const char *s)
{
    if (!s)
        return MSG_INVALID;
    for (unsigned i = 1; i < MSG_TYPE_COUNT; i++)
        if (strcmp(type_names[i], s) == 0)
            return (enum msg_type)i;
    return MSG_INVALID;
}

const char *
msg_error_name(enum msg_error e)
{
    return (unsigned)e < MSG_ERR_COUNT ? error_names[e] : NULL;
}

enum msg_error
msg_error_from_name(const char *s)
{
    if (!s)
        return MSG_ERR_NONE;
    for (unsigned i = 1; i < MSG_ERR_COUNT; i++)
        if (strcmp(error_names[i], s) == 0)
            return (enum msg_error)i;
    return MSG_ERR_NONE;
}

enum msg_error
msg_error_from_errno(int err)
{
    switch (err < 0 ? -err : err) {
    case 0:
        return MSG_ERR_NONE;
    case EINVAL:
        return MSG_ERR_BAD_REQUEST;
    case ENOENT:
        return MSG_ERR_NOT_FOUND;
    case EEXIST:
    case EALREADY:
        return MSG_ERR_CONFLICT;
    case ESTALE:
        return MSG_ERR_STALE;
    case ENOLCK:
        return MSG_ERR_LOCKED;
    case EACCES:
        return MSG_ERR_PRIVATE;
    case ENOSPC:
    case EDQUOT:
        return MSG_ERR_NO_SPACE;
    case EOPNOTSUPP:
    case ENOSYS:
        return MSG_ERR_UNSUPPORTED;
    case EAGAIN:
    case EBUSY:
        return MSG_ERR_BUSY;
    default:
        return MSG_ERR_INTERNAL;
    }
}

uint64_t
msg_digest_item(const char *id, uint64_t generation, bool running)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */

    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
    for (int i = 0; i < 8; i++)
        h = (h ^ (uint8_t)(generation >> (8 * i))) * 0x100000001b3ULL;
    h = (h ^ (running ? 1u : 2u)) * 0x100000001b3ULL;
    return h;
}

/* Bytes of each type's member of the union: what msg_decode and msg_clear
 * zero. The union is as large as its largest member (a hello, 19.7 KiB),
 * and an ack, the message a master reads most, uses 64 bytes of it. */
#define MEMBER(t, member) [t] = sizeof(((struct msg *)0)->u.member)
static const size_t member_size[MSG_TYPE_COUNT] = {
    MEMBER(MSG_HELLO, hello),
    MEMBER(MSG_HEARTBEAT, heartbeat),
    MEMBER(MSG_ACK, ack),
    MEMBER(MSG_NACK, nack),
    MEMBER(MSG_USAGE, usage),
    MEMBER(MSG_EVENT, event),
    MEMBER(MSG_EXEC_RESULT, exec_result),
    MEMBER(MSG_INVENTORY, inventory),
    MEMBER(MSG_CONSOLE_RESULT, console_result),
    MEMBER(MSG_TRAFFIC_GET, traffic_get),
    MEMBER(MSG_WELCOME, welcome),
    MEMBER(MSG_GUEST_APPLY, apply),
    MEMBER(MSG_GUEST_START, guest),
    MEMBER(MSG_GUEST_STOP, guest),
    MEMBER(MSG_GUEST_DESTROY, guest),
    MEMBER(MSG_GUEST_EXEC, exec),
    MEMBER(MSG_SHELL_OPEN, shell),
    MEMBER(MSG_STREAM_CTL, stream_ctl),
    MEMBER(MSG_STREAM_DATA, stream_data),
    MEMBER(MSG_STREAM_ACK, stream_ack),
    MEMBER(MSG_STREAM_EXIT, stream_exit),
    MEMBER(MSG_INVENTORY_GET, inventory_get),
    MEMBER(MSG_TRAFFIC, traffic),
    MEMBER(MSG_GUEST_CONSOLE, console),
    MEMBER(MSG_MIGRATE_PREPARE, migrate),
    MEMBER(MSG_MIGRATE_SEND, migrate),
    MEMBER(MSG_MIGRATE_COMMIT, migrate),
    MEMBER(MSG_MIGRATE_FINISH, migrate),
    MEMBER(MSG_MIGRATE_ABORT, migrate),
    MEMBER(MSG_MIGRATE_STATUS, migrate_status),
    MEMBER(MSG_JOIN, join),
    MEMBER(MSG_GUEST_APPLY_START, apply),
};
#undef MEMBER

size_t
msg_member_size(enum msg_type t)
{
    /* A type added without its row above gets the whole union (codec_test
     * checks every type has one). */
    if (t > MSG_INVALID && (unsigned)t < MSG_TYPE_COUNT && member_size[t])
        return member_size[t];
    return sizeof(((struct msg *)0)->u);
}

void
msg_init(struct msg *m, enum msg_type t)
{
    m->type = t;
    m->id = 0;
    memset(&m->u, 0, msg_member_size(t));
}

void
msg_clear(struct msg *m)
{
    if (!m)
        return;
    switch (m->type) {
    case MSG_HELLO:
        free(m->u.hello.inventory);
        break;
    case MSG_USAGE:
        free(m->u.usage.samples);
        break;
    case MSG_INVENTORY:
        free(m->u.inventory.inventory);
        break;
    case MSG_GUEST_EXEC:
        if (m->u.exec.argv)
            for (char **a = m->u.exec.argv; *a; a++)
                free(*a);
        free(m->u.exec.argv);
        break;
    case MSG_EXEC_RESULT:
        free(m->u.exec_result.out);
        free(m->u.exec_result.err);
        break;
    case MSG_TRAFFIC:
        free(m->u.traffic.items);
        break;
    case MSG_SHELL_OPEN:
        if (m->u.shell.argv)
            for (char **a = m->u.shell.argv; *a; a++)
                free(*a);
        free(m->u.shell.argv);
        break;
    case MSG_STREAM_DATA:
        free(m->u.stream_data.data);
        break;
    case MSG_CONSOLE_RESULT:
        free(m->u.console_result.data);
        break;
    default:
        break;
    }
    /* Only what the type uses: the rest of the union is never read for it. */
    size_t n = msg_member_size(m->type);
    m->type = MSG_INVALID;
    m->id = 0;
    memset(&m->u, 0, n);
}

bool
msg_term_is_valid(const char *s)
{
    size_t n = 0;

    for (; *s; s++, n++)
        if (n >= MSG_TERM_MAX ||
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.' || *s == '+'))
            return false;
    return true;
}
