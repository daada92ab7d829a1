#include "proto/spec_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"
#include "common/units.h"

/* Every field is described once, in a table, so reading and writing cannot
 * drift apart: the table order is also the order of the emitted keys. */
enum kind {
    K_STR,     /* char array of size `size` */
    K_U64,     /* uint64_t, integer or decimal string */
    K_U32,     /* uint32_t, integer */
    K_SIZE,    /* uint64_t bytes, integer or "256M" */
    K_LIMIT,   /* a row of SPEC_LIMIT_FIELDS, read and written by its unit */
    K_BOOL,    /* bool */
    K_SIGNAL,  /* uint32_t signal number, written as a name */
    K_RESTART, /* uint32_t enum spec_restart, written as its name */
    K_FLAGS,   /* uint32_t enum spec_flag bits, an array of names */
    K_CAPS,    /* uint64_t capability mask, an array of names */
    K_IPS,     /* n_addrs + addrs */
    K_LABELS,  /* n_labels + labels */
    K_LIMITS,  /* the nested limits object */
    K_IO,      /* n_io_devs + io_devs */
    K_FAILCNT  /* the usage failcnt array, an object */
};

struct field {
    const char *name;                  /* JSON key */
    enum kind kind;                    /* how the value is read and written */
    size_t offset;                     /* offset of the member in its struct */
    size_t size;                       /* for K_STR: size of the char array */
    const struct spec_limit_desc *lim; /* for K_LIMIT: the limit's row */
};

#define F(name, kind, type, member)                                                                \
    {                                                                                              \
        name, kind, offsetof(type, member), sizeof(((type *)0)->member), NULL                      \
    }

static const struct field spec_fields[] = {
    F("id", K_STR, struct guest_spec, id),
    F("name", K_STR, struct guest_spec, name),
    F("generation", K_U64, struct guest_spec, generation),
    F("template", K_STR, struct guest_spec, template_name),
    F("init", K_STR, struct guest_spec, init),
    F("domainname", K_STR, struct guest_spec, domainname),
    F("halt_signal", K_SIGNAL, struct guest_spec, halt_signal),
    F("stop_timeout", K_U32, struct guest_spec, stop_timeout),
    F("flags", K_FLAGS, struct guest_spec, flags),
    F("autostart", K_BOOL, struct guest_spec, autostart),
    F("restart", K_RESTART, struct guest_spec, restart),
    F("restart_max", K_U32, struct guest_spec, restart_max),
    F("restart_backoff", K_U32, struct guest_spec, restart_backoff),
    F("limits", K_LIMITS, struct guest_spec, limits),
    F("caps_add", K_CAPS, struct guest_spec, caps_add),
    F("caps_drop", K_CAPS, struct guest_spec, caps_drop),
    F("ips", K_IPS, struct guest_spec, n_addrs),
    F("labels", K_LABELS, struct guest_spec, n_labels),
};

/* The limits table's rows, then the per-device list. */
#define LIMIT_F(name, ...)                                                                         \
    {#name, K_LIMIT, offsetof(struct spec_limits, name), sizeof(((struct spec_limits *)0)->name),  \
     &spec_limit_descs[SPEC_LIMIT_##name]},
static const struct field limit_fields[] = {
    SPEC_LIMIT_FIELDS(LIMIT_F) F("io", K_IO, struct spec_limits, n_io_devs),
};
#undef LIMIT_F

static const struct field io_fields[] = {
    F("read_bps", K_SIZE, struct spec_io_dev, read_bps),
    F("write_bps", K_SIZE, struct spec_io_dev, write_bps),
    F("read_iops", K_U64, struct spec_io_dev, read_iops),
    F("write_iops", K_U64, struct spec_io_dev, write_iops),
};

static const struct field usage_fields[] = {
    F("id", K_STR, struct guest_usage, id),
    F("time_ms", K_U64, struct guest_usage, time_ms),
#define USAGE_F(f) F(#f, K_U64, struct guest_usage, f),
    USAGE_U64_FIELDS(USAGE_F)
#undef USAGE_F
        F("failcnt", K_FAILCNT, struct guest_usage, failcnt),
};

/* Wire names of enum usage_fail, in its order. */
static const char *const failcnt_names[USAGE_FAIL_COUNT] = {
    [USAGE_FAIL_PROCS] = "procs", [USAGE_FAIL_MEMORY] = "memory", [USAGE_FAIL_OOM] = "oom",
    [USAGE_FAIL_DISK] = "disk",   [USAGE_FAIL_TCP] = "tcp",
};

static const struct {
    uint32_t bit;     /* enum spec_flag */
    const char *name; /* its JSON name */
} flag_names[] = {
    {SPEC_FLAG_PRIVATE, "private"},
    {SPEC_FLAG_LOCK, "lock"},
    {SPEC_FLAG_PRIVILEGED, "privileged"},
    {SPEC_FLAG_NESTING, "nesting"},
};

/* Where an error is reported: the caller's buffer and the path of the object
 * being read ("limits", "limits.io[2]"), so messages name nested keys. */
struct ctx {
    char *errfield; /* caller's buffer, may be NULL */
    size_t n;       /* its size */
    char path[64];  /* prefix of the current object, "" at the top */
};

static int fail(struct ctx *c, const char *fmt, ...) _printf_(2, 3);

static int
fail(struct ctx *c, const char *fmt, ...)
{
    char key[128];
    va_list ap;

    if (!c->errfield || c->n == 0)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(key, sizeof(key), fmt, ap);
    va_end(ap);
    snprintf(c->errfield, c->n, "%s%s%s", c->path, c->path[0] ? "." : "", key);
    return -EINVAL;
}

/* Non-negative JSON integer, or a string the given parser accepts. */
static int
read_u64(const json_t *v, int (*parse)(const char *, uint64_t *), uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -EINVAL;
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v))
            return -EINVAL;
        return parse(s, out) < 0 ? -EINVAL : 0;
    }
    return -EINVAL;
}

static int
read_u32(const json_t *v, uint32_t *out)
{
    uint64_t x;
    if (read_u64(v, units_parse_u64, &x) < 0 || x > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)x;
    return 0;
}

/* Cores as a JSON number, to millicores, at most max millicores. A value
 * above 0 that rounds to 0 millicores is refused: 0 means "no ceiling". */
static int
read_cores(const json_t *v, uint64_t max, uint32_t *out)
{
    double d;
    long long m;

    if (!json_is_number(v))
        return -EINVAL;
    d = json_number_value(v);
    if (!(d >= 0.0 && d * 1000.0 <= (double)max))
        return -EINVAL;
    m = llround(d * 1000.0);
    if (d > 0.0 && m == 0)
        return -EINVAL;
    *out = (uint32_t)m;
    return 0;
}

/* One limit, by its unit. The range check is spec_validate's, so a value
 * the decoder lets through is refused there with the limit's name; only the
 * member's width (and cores' scale) is checked here. */
static int
read_limit(const json_t *v, const struct spec_limit_desc *d, struct spec_limits *l)
{
    uint64_t x = 0;
    uint32_t m;
    int r;

    switch (d->unit) {
    case SPEC_UNIT_MCORES:
        r = read_cores(v, d->max, &m);
        x = m;
        break;
    case SPEC_UNIT_BYTES:
        r = read_u64(v, units_parse_size, &x);
        break;
    case SPEC_UNIT_RATE:
        r = read_u64(v, units_parse_rate, &x);
        break;
    default:
        r = read_u64(v, units_parse_u64, &x);
        break;
    }
    if (r < 0 || (d->size == sizeof(uint32_t) && x > UINT32_MAX))
        return -EINVAL;
    spec_limit_set(l, d, x);
    return 0;
}

/* A string without embedded NULs that fits dst (size n, with its NUL). */
static int
read_str(const json_t *v, char *dst, size_t n)
{
    const char *s;

    if (!json_is_string(v))
        return -EINVAL;
    s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return -EINVAL;
    return strscpy(dst, s, n) < 0 ? -EINVAL : 0;
}

static int
read_signal(const json_t *v, uint32_t *out)
{
    const char *s;

    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i >= SIGRTMAX)
            return -EINVAL;
        *out = (uint32_t)i;
        return 0;
    }
    if (read_str(v, (char[16]){0}, 16) < 0)
        return -EINVAL;
    s = json_string_value(v);
    if (s[0] == '\0') {
        *out = 0;
        return 0;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    if (strncasecmp(s, "RTMIN", 5) == 0) {
        uint64_t off = 0;
        if (s[5] != '\0' && (s[5] != '+' || units_parse_u64(s + 6, &off) < 0))
            return -EINVAL;
        if (off >= (uint64_t)(SIGRTMAX - SIGRTMIN))
            return -EINVAL;
        *out = (uint32_t)(SIGRTMIN + (int)off);
        return 0;
    }
    for (int sig = 1; sig < SIGRTMIN; sig++) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev && strcasecmp(abbrev, s) == 0) {
            *out = (uint32_t)sig;
            return 0;
        }
    }
    return -EINVAL;
}

static int
read_flags(struct ctx *c, const char *key, const json_t *v, uint32_t *out)
{
    uint32_t flags = 0;
    size_t i;
    json_t *e;

    if (!json_is_array(v))
        return fail(c, "%s", key);
    json_array_foreach(v, i, e)
    {
        size_t k;
        if (!json_is_string(e))
            return fail(c, "%s[%zu]", key, i);
        for (k = 0; k < ARRAY_SIZE(flag_names); k++)
            if (strcmp(json_string_value(e), flag_names[k].name) == 0)
                break;
        if (k == ARRAY_SIZE(flag_names))
            return fail(c, "%s[%zu]", key, i);
        flags |= flag_names[k].bit;
    }
    *out = flags;
    return 0;
}

static int
read_caps(struct ctx *c, const char *key, const json_t *v, uint64_t *out)
{
    uint64_t mask = 0;
    size_t i;
    json_t *e;

    if (!json_is_array(v))
        return fail(c, "%s", key);
    json_array_foreach(v, i, e)
    {
        int cap;
        if (!json_is_string(e))
            return fail(c, "%s[%zu]", key, i);
        cap = spec_cap_from_name(json_string_value(e));
        if (cap < 0 || cap > SPEC_CAP_MAX)
            return fail(c, "%s[%zu]", key, i);
        mask |= 1ULL << cap;
    }
    *out = mask;
    return 0;
}

static int
read_ips(struct ctx *c, const char *key, const json_t *v, struct guest_spec *s)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v) || json_array_size(v) > SPEC_MAX_ADDRS)
        return fail(c, "%s", key);
    json_array_foreach(v, i, e)
    {
        char buf[NETADDR_STRLEN];
        if (read_str(e, buf, sizeof(buf)) < 0 || netaddr_parse(buf, &s->addrs[i]) < 0)
            return fail(c, "%s[%zu]", key, i);
    }
    s->n_addrs = (uint32_t)json_array_size(v);
    return 0;
}

static int
read_labels(struct ctx *c, const char *key, const json_t *v, struct guest_spec *s)
{
    const char *k;
    json_t *e;
    uint32_t n = 0;

    if (!json_is_object(v) || json_object_size(v) > SPEC_MAX_LABELS)
        return fail(c, "%s", key);
    json_object_foreach((json_t *)v, k, e)
    {
        struct spec_label *l = &s->labels[n];
        if (strscpy(l->key, k, sizeof(l->key)) < 0 || read_str(e, l->value, sizeof(l->value)) < 0)
            return fail(c, "%s", key);
        n++;
    }
    s->n_labels = n;
    return 0;
}

static int read_object(struct ctx *c, const json_t *obj, const struct field *tab, size_t ntab,
                       void *base);

static int
read_io(struct ctx *c, const char *key, const json_t *v, struct spec_limits *l)
{
    size_t i;
    json_t *e;

    if (!json_is_array(v) || json_array_size(v) > SPEC_MAX_IO_DEVS)
        return fail(c, "%s", key);
    json_array_foreach(v, i, e)
    {
        struct spec_io_dev *d = &l->io_devs[i];
        struct ctx sub = *c;
        json_t *dev;
        unsigned major, minor;
        int end = 0;
        int r;

        /* Paths are short ("limits.io[7]"); a cut one only shortens an error message. */
        if (snprintf(sub.path, sizeof(sub.path), "%s%s%s[%zu]", c->path, c->path[0] ? "." : "", key,
                     i) >= (int)sizeof(sub.path))
            sub.path[sizeof(sub.path) - 1] = '\0';
        if (!json_is_object(e))
            return fail(&sub, "%s", "device");
        /* The device is required in each entry: a cap on no device means nothing. */
        dev = json_object_get(e, "device");
        if (!json_is_string(dev) ||
            sscanf(json_string_value(dev), "%10u:%10u%n", &major, &minor, &end) != 2 ||
            (size_t)end != json_string_length(dev))
            return fail(&sub, "%s", "device");
        *d = (struct spec_io_dev){.major = major, .minor = minor};
        r = read_object(&sub, e, io_fields, ARRAY_SIZE(io_fields), d);
        if (r < 0)
            return r;
    }
    l->n_io_devs = (uint32_t)json_array_size(v);
    return 0;
}

static int
read_failcnt(struct ctx *c, const char *key, const json_t *v, uint64_t *cnt)
{
    const char *k;
    json_t *e;

    if (!json_is_object(v))
        return fail(c, "%s", key);
    json_object_foreach((json_t *)v, k, e)
    {
        size_t i;
        for (i = 0; i < USAGE_FAIL_COUNT; i++)
            if (strcmp(k, failcnt_names[i]) == 0)
                break;
        if (i == USAGE_FAIL_COUNT || read_u64(e, units_parse_u64, &cnt[i]) < 0)
            return fail(c, "%s.%s", key, k);
    }
    return 0;
}

static int
read_field(struct ctx *c, const struct field *f, const json_t *v, void *base)
{
    void *p = (char *)base + f->offset;
    int r = 0;

    switch (f->kind) {
    case K_STR:
        r = read_str(v, p, f->size);
        break;
    case K_U64:
        r = read_u64(v, units_parse_u64, p);
        break;
    case K_SIZE:
        r = read_u64(v, units_parse_size, p);
        break;
    case K_U32:
        r = read_u32(v, p);
        break;
    case K_LIMIT:
        r = read_limit(v, f->lim, base);
        break;
    case K_BOOL:
        if (!json_is_boolean(v))
            r = -EINVAL;
        else
            *(bool *)p = json_is_true(v);
        break;
    case K_SIGNAL:
        r = read_signal(v, p);
        break;
    case K_RESTART:
        r = json_is_string(v) ? spec_restart_from_name(json_string_value(v)) : -EINVAL;
        if (r >= 0)
            *(uint32_t *)p = (uint32_t)r;
        break;
    case K_FLAGS:
        return read_flags(c, f->name, v, p);
    case K_CAPS:
        return read_caps(c, f->name, v, p);
    case K_IPS:
        return read_ips(c, f->name, v, base);
    case K_LABELS:
        return read_labels(c, f->name, v, base);
    case K_IO:
        return read_io(c, f->name, v, base);
    case K_FAILCNT:
        return read_failcnt(c, f->name, v, p);
    case K_LIMITS: {
        struct ctx sub = *c;
        if (!json_is_object(v))
            return fail(c, "%s", f->name);
        snprintf(sub.path, sizeof(sub.path), "%s", f->name);
        return read_object(&sub, v, limit_fields, ARRAY_SIZE(limit_fields), p);
    }
    }
    return r < 0 ? fail(c, "%s", f->name) : 0;
}

/* Reads every key of obj through tab; a key not in tab is an error. The
 * "device" key of an io entry is read by read_io and skipped here. */
static int
read_object(struct ctx *c, const json_t *obj, const struct field *tab, size_t ntab, void *base)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i;
        int r;

        if (tab == io_fields && strcmp(k, "device") == 0)
            continue;
        for (i = 0; i < ntab; i++)
            if (strcmp(k, tab[i].name) == 0)
                break;
        if (i == ntab)
            return fail(c, "%s", k);
        r = read_field(c, &tab[i], v, base);
        if (r < 0)
            return r;
    }
    return 0;
}

int
spec_from_json(const json_t *j, struct guest_spec *out, char *errfield, size_t n)
{
    struct ctx c = {.errfield = errfield, .n = n};
    _cleanup_free_ struct guest_spec *s = NULL;
    const char *field = NULL;
    int r;

    if (errfield && n)
        errfield[0] = '\0';
    if (!json_is_object(j))
        return fail(&c, "(root)");
    /* Work on a copy so a failure halfway leaves *out as it was. */
    s = xmalloc(sizeof(*s));
    memcpy(s, out, sizeof(*s));
    r = read_object(&c, j, spec_fields, ARRAY_SIZE(spec_fields), s);
    if (r < 0)
        return r;
    if (spec_validate(s, &field) < 0)
        return fail(&c, "%s", field);
    memcpy(out, s, sizeof(*s));
    return 0;
}

int
usage_from_json(const json_t *j, struct guest_usage *out, char *errfield, size_t n)
{
    struct ctx c = {.errfield = errfield, .n = n};
    struct guest_usage u;
    int r;

    if (errfield && n)
        errfield[0] = '\0';
    if (!json_is_object(j))
        return fail(&c, "(root)");
    /* memcpy, not assignment, so padding bytes are kept and callers may memcmp. */
    memcpy(&u, out, sizeof(u));
    r = read_object(&c, j, usage_fields, ARRAY_SIZE(usage_fields), &u);
    if (r < 0)
        return r;
    memcpy(out, &u, sizeof(u));
    return 0;
}

/* JSON integers in jansson are signed 64-bit: larger values go out as text. */
static json_t *
u64_json(uint64_t v)
{
    char buf[24];

    if (v <= INT64_MAX)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return json_string(buf);
}

/* JSON strings are UTF-8. A spec read from JSON always is; one built another
 * way might not be, and rather than fail (or abort) the invalid bytes become
 * '?', which spec_validate-level checks upstream should make unreachable. */
static json_t *
str_json(const char *s, size_t len)
{
    _cleanup_free_ char *copy = NULL;
    json_t *j = json_stringn(s, len);

    if (j)
        return j;
    copy = xstrndup(s, len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    return json_stringn(copy, len);
}

static json_t *
signal_json(uint32_t sig)
{
    char buf[32];
    const char *abbrev;

    if (sig == 0)
        return json_string("");
    if ((int)sig >= SIGRTMIN) {
        snprintf(buf, sizeof(buf), "SIGRTMIN+%d", (int)sig - SIGRTMIN);
        return json_string(buf);
    }
    abbrev = sigabbrev_np((int)sig);
    if (!abbrev)
        return json_integer(sig);
    snprintf(buf, sizeof(buf), "SIG%s", abbrev);
    return json_string(buf);
}

static json_t *
caps_json(uint64_t mask)
{
    json_t *a = json_array();

    for (unsigned cap = 0; cap <= SPEC_CAP_MAX; cap++) {
        const char *name = spec_cap_name(cap);
        /* spec_validate refuses unknown bits; a number keeps an invalid spec visible. */
        if (mask & (1ULL << cap))
            json_array_append_new(a, name ? json_string(name) : json_integer(cap));
    }
    return a;
}

static json_t *write_object(const struct field *tab, size_t ntab, const void *base);

static json_t *
field_json(const struct field *f, const void *base)
{
    const void *p = (const char *)base + f->offset;

    switch (f->kind) {
    case K_STR:
        return str_json(p, strnlen(p, f->size - 1));
    case K_U64:
    case K_SIZE:
        return u64_json(*(const uint64_t *)p);
    case K_U32:
        return json_integer(*(const uint32_t *)p);
    case K_LIMIT:
        if (f->lim->unit == SPEC_UNIT_MCORES)
            return json_real((double)spec_limit_get(base, f->lim) / 1000.0);
        return u64_json(spec_limit_get(base, f->lim));
    case K_BOOL:
        return json_boolean(*(const bool *)p);
    case K_SIGNAL:
        return signal_json(*(const uint32_t *)p);
    case K_RESTART: {
        /* spec_validate refuses unknown values; a number keeps an invalid spec visible. */
        const char *name = spec_restart_name(*(const uint32_t *)p);
        return name ? json_string(name) : json_integer(*(const uint32_t *)p);
    }
    case K_FLAGS: {
        json_t *a = json_array();
        for (size_t i = 0; i < ARRAY_SIZE(flag_names); i++)
            if (*(const uint32_t *)p & flag_names[i].bit)
                json_array_append_new(a, json_string(flag_names[i].name));
        return a;
    }
    case K_CAPS:
        return caps_json(*(const uint64_t *)p);
    case K_IPS: {
        const struct guest_spec *s = base;
        json_t *a = json_array();
        for (uint32_t i = 0; i < s->n_addrs && i < SPEC_MAX_ADDRS; i++) {
            char buf[NETADDR_STRLEN];
            json_array_append_new(
                a, json_string(netaddr_format(&s->addrs[i], false, buf, sizeof(buf))));
        }
        return a;
    }
    case K_LABELS: {
        const struct guest_spec *s = base;
        json_t *o = json_object();
        for (uint32_t i = 0; i < s->n_labels && i < SPEC_MAX_LABELS; i++)
            json_object_set_new(
                o, s->labels[i].key,
                str_json(s->labels[i].value, strnlen(s->labels[i].value, SPEC_LABEL_VAL_MAX)));
        return o;
    }
    case K_IO: {
        const struct spec_limits *l = base;
        json_t *a = json_array();
        for (uint32_t i = 0; i < l->n_io_devs && i < SPEC_MAX_IO_DEVS; i++) {
            const struct spec_io_dev *d = &l->io_devs[i];
            json_t *o = json_object();
            char dev[24];
            snprintf(dev, sizeof(dev), "%u:%u", d->major, d->minor);
            json_t *caps = write_object(io_fields, ARRAY_SIZE(io_fields), d);
            json_object_set_new(o, "device", json_string(dev));
            json_object_update(o, caps);
            json_decref(caps);
            json_array_append_new(a, o);
        }
        return a;
    }
    case K_LIMITS:
        return write_object(limit_fields, ARRAY_SIZE(limit_fields), p);
    case K_FAILCNT: {
        json_t *o = json_object();
        for (size_t i = 0; i < USAGE_FAIL_COUNT; i++)
            json_object_set_new(o, failcnt_names[i], u64_json(((const uint64_t *)p)[i]));
        return o;
    }
    }
    return json_null();
}

static void
json_abort_if_null(const json_t *j)
{
    if (!j) {
        fputs("vfleet: out of memory building JSON\n", stderr);
        abort();
    }
}

static json_t *
write_object(const struct field *tab, size_t ntab, const void *base)
{
    json_t *o = json_object();

    json_abort_if_null(o);
    for (size_t i = 0; i < ntab; i++) {
        json_t *v = field_json(&tab[i], base);
        json_abort_if_null(v);
        if (json_object_set_new(o, tab[i].name, v) < 0)
            json_abort_if_null(NULL);
    }
    return o;
}

json_t *
spec_to_json(const struct guest_spec *s)
{
    return write_object(spec_fields, ARRAY_SIZE(spec_fields), s);
}

json_t *
usage_to_json(const struct guest_usage *u)
{
    return write_object(usage_fields, ARRAY_SIZE(usage_fields), u);
}
