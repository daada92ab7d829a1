/* /proc/vservers/self, a guest's own view (vservers.h): one "Label: value"
 * line per field in FreeVPS's order, described once in a table that both
 * the renderer and the parser walk; the device line has its own shape,
 * "vdev(hdev): speed: IP1/mask1;IP2/mask2;". */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "node/vservers.h"

enum self_kind {
    K_U32,      /* a number */
    K_PID,      /* a pid, -1 unknown */
    K_STR,      /* text, "(none)" when empty */
    K_FLAGS,    /* "private,lock" or "none" */
    K_HEX,      /* 16 hex digits, as CapBnd in /proc/PID/status */
    K_COUNT,    /* a number */
    K_LIMIT,    /* a number or "unlimited" (0) */
    K_KB,       /* bytes shown as "N kB" */
    K_KB_LIMIT, /* bytes shown as "N kB" or "unlimited" (0) */
    K_BYTES,    /* a number of bytes */
};

static const struct {
    const char *label;   /* the FreeVPS label */
    enum self_kind kind; /* how the value is written */
    size_t off;          /* where it is in struct vs_self */
} fields[] = {
#define F(label, kind, member)                                                                     \
    {                                                                                              \
        label, kind, offsetof(struct vs_self, member)                                              \
    }
    F("vserver id", K_U32, context),
    F("nodename", K_STR, nodename),
    F("domainname", K_STR, domainname),
    F("flags", K_FLAGS, flags),
    F("init pid", K_PID, init_pid),
    F("CapBset", K_HEX, capbset),
    F("Process Limit", K_LIMIT, procs_limit),
    F("Process Count", K_COUNT, procs),
    F("tasks", K_COUNT, tasks),
    F("Memory Limit", K_KB_LIMIT, memory_limit),
    F("Used memory", K_KB, memory),
    F("Max total memory", K_KB, memory_peak),
    F("Context RSS limit", K_KB_LIMIT, rss_limit),
    F("Context RSS", K_KB, rss),
    F("Max RSS memory", K_KB, rss_peak),
    F("Disk Limit", K_KB_LIMIT, disk_limit),
    F("Used disk memory", K_KB, disk),
    F("Files limit", K_LIMIT, files_limit),
    F("Used files", K_COUNT, files),
    F("TCP sockets limit", K_LIMIT, tcp_limit),
    F("Established sockets", K_COUNT, tcp),
#undef F
};
#define DEVICE_AFTER 20 /* the device line follows "Established sockets" */

static void
render_field(FILE *f, const struct vs_self *s, size_t i)
{
    const void *p = (const char *)s + fields[i].off;
    uint64_t v = 0;

    fprintf(f, "%s: ", fields[i].label);
    switch (fields[i].kind) {
    case K_U32:
        fprintf(f, "%" PRIu32 "\n", *(const uint32_t *)p);
        return;
    case K_PID:
        fprintf(f, "%" PRId64 "\n", *(const int64_t *)p);
        return;
    case K_STR:
        fprintf(f, "%s\n", *(const char *)p ? (const char *)p : "(none)");
        return;
    case K_FLAGS: {
        uint32_t fl = *(const uint32_t *)p;
        bool priv = fl & SPEC_FLAG_PRIVATE, lock = fl & SPEC_FLAG_LOCK;
        fprintf(f, "%s\n",
                priv && lock ? "private,lock"
                : priv       ? "private"
                : lock       ? "lock"
                             : "none");
        return;
    }
    case K_HEX:
        fprintf(f, "%016" PRIx64 "\n", *(const uint64_t *)p);
        return;
    default:
        break;
    }
    v = *(const uint64_t *)p;
    if ((fields[i].kind == K_LIMIT || fields[i].kind == K_KB_LIMIT) && v == 0)
        fputs("unlimited\n", f);
    else if (fields[i].kind == K_KB || fields[i].kind == K_KB_LIMIT)
        fprintf(f, "%" PRIu64 " kB\n", v / 1024);
    else
        fprintf(f, "%" PRIu64 "\n", v);
}

char *
vs_render_self(const struct vs_self *s, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);

    if (!f)
        abort();
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        render_field(f, s, i);
        if (i == DEVICE_AFTER && s->vdev[0]) {
            fprintf(f, "%s(%s): ", s->vdev, s->hdev);
            if (s->speed_kbit)
                fprintf(f, "%" PRIu64 " kbit/s", s->speed_kbit);
            else
                fputs("unlimited", f);
            fprintf(f, ": %s\n", s->addrs);
        }
    }
    fprintf(f, "Incoming traffic: %" PRIu64 "\n", s->incoming);
    fprintf(f, "Outgoing traffic: %" PRIu64 "\n", s->outgoing);
    fclose(f);
    if (!buf)
        abort();
    *len = strlen(buf);
    return buf;
}

/* ---- parsing ---- */

static int
parse_number(const char *v, bool kb, bool limit, uint64_t *out)
{
    char *end;

    if (limit && strcmp(v, "unlimited") == 0) {
        *out = 0;
        return 0;
    }
    if (*v < '0' || *v > '9')
        return -EBADMSG;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || (kb ? strcmp(end, " kB") : *end) != 0)
        return -EBADMSG;
    *out = kb ? n * 1024 : n;
    return 0;
}

static int
parse_field(struct vs_self *s, size_t i, const char *v)
{
    void *p = (char *)s + fields[i].off;
    enum self_kind k = fields[i].kind;
    char *end;

    switch (k) {
    case K_U32: {
        uint64_t n;
        if (parse_number(v, false, false, &n) < 0 || n > UINT32_MAX)
            return -EBADMSG;
        *(uint32_t *)p = (uint32_t)n;
        return 0;
    }
    case K_PID:
        errno = 0;
        *(int64_t *)p = strtoll(v, &end, 10);
        return errno || end == v || *end ? -EBADMSG : 0;
    case K_STR: {
        size_t size = fields[i].off == offsetof(struct vs_self, nodename) ? sizeof(s->nodename)
                                                                          : sizeof(s->domainname);
        return strscpy(p, strcmp(v, "(none)") ? v : "", size) < 0 ? -EBADMSG : 0;
    }
    case K_FLAGS:
        *(uint32_t *)p = (strstr(v, "private") ? SPEC_FLAG_PRIVATE : 0) |
                         (strstr(v, "lock") ? SPEC_FLAG_LOCK : 0);
        return strcmp(v, "none") == 0 || *(uint32_t *)p ? 0 : -EBADMSG;
    case K_HEX:
        errno = 0;
        *(uint64_t *)p = strtoull(v, &end, 16);
        return errno || strlen(v) != 16 || *end ? -EBADMSG : 0;
    default:
        return parse_number(v, k == K_KB || k == K_KB_LIMIT, k == K_LIMIT || k == K_KB_LIMIT,
                            (uint64_t *)p);
    }
}

/* "vdev(hdev): speed: addrs" */
static int
parse_device(struct vs_self *s, const char *l)
{
    const char *open = strchr(l, '('), *close = open ? strchr(open, ')') : NULL;
    if (!open || !close || close[1] != ':' || close[2] != ' ' ||
        (size_t)(open - l) >= sizeof(s->vdev) || (size_t)(close - open - 1) >= sizeof(s->hdev))
        return -EBADMSG;
    memcpy(s->vdev, l, (size_t)(open - l));
    s->vdev[open - l] = '\0';
    memcpy(s->hdev, open + 1, (size_t)(close - open - 1));
    s->hdev[close - open - 1] = '\0';
    const char *speed = close + 3, *colon = strstr(speed, ": ");
    if (!colon)
        return -EBADMSG;
    if (strncmp(speed, "unlimited", 9) == 0)
        s->speed_kbit = 0;
    else if (sscanf(speed, "%" SCNu64 " kbit/s", &s->speed_kbit) != 1)
        return -EBADMSG;
    return strscpy(s->addrs, colon + 2, sizeof(s->addrs)) < 0 ? -EBADMSG : 0;
}

static int
parse_line(struct vs_self *s, const char *l)
{
    const char *colon = strstr(l, ": ");
    uint64_t v;

    if (!colon)
        return -EBADMSG;
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        size_t k = strlen(fields[i].label);
        if ((size_t)(colon - l) == k && strncmp(l, fields[i].label, k) == 0)
            return parse_field(s, i, colon + 2);
    }
    if (strncmp(l, "Incoming traffic: ", 18) == 0 || strncmp(l, "Outgoing traffic: ", 18) == 0) {
        if (parse_number(l + 18, false, false, &v) < 0)
            return -EBADMSG;
        *(l[0] == 'I' ? &s->incoming : &s->outgoing) = v;
        return 0;
    }
    return strchr(l, '(') && strchr(l, '(') < colon ? parse_device(s, l) : -EBADMSG;
}

int
vs_parse_self(const char *text, struct vs_self *out)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *save = NULL;
    size_t n = 0;

    *out = (struct vs_self){0};
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save), n++)
        if (parse_line(out, l) < 0)
            return -EBADMSG;
    return n >= ARRAY_SIZE(fields) + 2 ? 0 : -EBADMSG;
}
