#include "proto/spec_pack.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/mem.h"

/* Every member of struct guest_spec is packed by name below. A member added
 * without a line here would be lost between pack and unpack: these sizes
 * break the build first. (The limits' scalars are copied as one block, so a
 * row added to SPEC_LIMIT_FIELDS travels without a change here.) */
_Static_assert(sizeof(struct guest_spec) == 17112,
               "struct guest_spec changed: pack the new member in spec_pack.c, then update this");
_Static_assert(sizeof(struct spec_provision) == 4544,
               "struct spec_provision changed: pack the new member in spec_pack.c");

/* Writes the packed form; with p NULL it only counts, so one walk sizes the
 * buffer and the next fills it. */
struct packer {
    char *p;    /* the buffer, NULL = count only */
    size_t len; /* bytes written (or counted) so far */
};

static void
put(struct packer *w, const void *src, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

/* A string up to and with its NUL. */
static void
put_str(struct packer *w, const char *s)
{
    put(w, s, strlen(s) + 1);
}

#define PUT(w, member) put((w), &(member), sizeof(member))

static void
pack_walk(struct packer *w, const struct guest_spec *s)
{
    put_str(w, s->id);
    put_str(w, s->name);
    put_str(w, s->template_name);
    put_str(w, s->init);
    put_str(w, s->domainname);
    PUT(w, s->generation);
    PUT(w, s->context);
    PUT(w, s->halt_signal);
    PUT(w, s->stop_timeout);
    PUT(w, s->flags);
    PUT(w, s->autostart);
    PUT(w, s->restart);
    PUT(w, s->restart_max);
    PUT(w, s->restart_backoff);
    /* The scalar limits and n_io_devs, then the devices in use. */
    put(w, &s->limits, offsetof(struct spec_limits, io_devs));
    put(w, s->limits.io_devs, s->limits.n_io_devs * sizeof(s->limits.io_devs[0]));
    PUT(w, s->caps_add);
    PUT(w, s->caps_drop);
    PUT(w, s->n_addrs);
    put(w, s->addrs, s->n_addrs * sizeof(s->addrs[0]));
    PUT(w, s->n_labels);
    for (uint32_t i = 0; i < s->n_labels; i++) {
        put_str(w, s->labels[i].key);
        put_str(w, s->labels[i].value);
    }
    put_str(w, s->provision.password_hash);
    put_str(w, s->provision.ssh_keys);
    PUT(w, s->provision.n_dns);
    put(w, s->provision.dns, s->provision.n_dns * sizeof(s->provision.dns[0]));
    put_str(w, s->provision.search);
    PUT(w, s->rebuild);
}

int
spec_pack(const struct guest_spec *s, char **buf, size_t *len)
{
    struct packer w = {0};

    *buf = NULL;
    *len = 0;
    /* Counts within their arrays and strings terminated: what the walk relies on. */
    if (spec_validate(s, NULL) < 0)
        return -EINVAL;
    pack_walk(&w, s);
    w.p = xmalloc(w.len);
    w.len = 0;
    pack_walk(&w, s);
    *buf = w.p;
    *len = w.len;
    return 0;
}

/* Reads the packed form; the first overrun or bad value sets bad and every
 * later read does nothing. */
struct unpacker {
    const char *p; /* next byte to read */
    size_t left;   /* bytes left */
    bool bad;      /* something did not fit */
};

static void
get(struct unpacker *r, void *dst, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = true;
        return;
    }
    if (n)
        memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
}

/* A string with its NUL into dst of size bytes. */
static void
get_str(struct unpacker *r, char *dst, size_t size)
{
    const char *end = r->bad || !r->left ? NULL : memchr(r->p, '\0', r->left);

    if (!end || (size_t)(end - r->p) >= size) {
        r->bad = true;
        return;
    }
    get(r, dst, (size_t)(end - r->p) + 1);
}

/* A count of at most max entries (0 when bad, so no array read follows). */
static void
get_count(struct unpacker *r, uint32_t *n, uint32_t max)
{
    get(r, n, sizeof(*n));
    if (r->bad || *n > max) {
        r->bad = true;
        *n = 0;
    }
}

#define GET(r, member) get((r), &(member), sizeof(member))

static void
unpack_walk(struct unpacker *r, struct guest_spec *s)
{
    get_str(r, s->id, sizeof(s->id));
    get_str(r, s->name, sizeof(s->name));
    get_str(r, s->template_name, sizeof(s->template_name));
    get_str(r, s->init, sizeof(s->init));
    get_str(r, s->domainname, sizeof(s->domainname));
    GET(r, s->generation);
    GET(r, s->context);
    GET(r, s->halt_signal);
    GET(r, s->stop_timeout);
    GET(r, s->flags);
    GET(r, s->autostart);
    GET(r, s->restart);
    GET(r, s->restart_max);
    GET(r, s->restart_backoff);
    get(r, &s->limits, offsetof(struct spec_limits, io_devs));
    if (s->limits.n_io_devs > SPEC_MAX_IO_DEVS) {
        r->bad = true;
        s->limits.n_io_devs = 0;
    }
    get(r, s->limits.io_devs, s->limits.n_io_devs * sizeof(s->limits.io_devs[0]));
    GET(r, s->caps_add);
    GET(r, s->caps_drop);
    get_count(r, &s->n_addrs, SPEC_MAX_ADDRS);
    get(r, s->addrs, s->n_addrs * sizeof(s->addrs[0]));
    get_count(r, &s->n_labels, SPEC_MAX_LABELS);
    for (uint32_t i = 0; i < s->n_labels; i++) {
        get_str(r, s->labels[i].key, sizeof(s->labels[i].key));
        get_str(r, s->labels[i].value, sizeof(s->labels[i].value));
    }
    get_str(r, s->provision.password_hash, sizeof(s->provision.password_hash));
    get_str(r, s->provision.ssh_keys, sizeof(s->provision.ssh_keys));
    get_count(r, &s->provision.n_dns, SPEC_MAX_DNS);
    get(r, s->provision.dns, s->provision.n_dns * sizeof(s->provision.dns[0]));
    get_str(r, s->provision.search, sizeof(s->provision.search));
    GET(r, s->rebuild);
}

int
spec_unpack(const char *buf, size_t len, struct guest_spec *s)
{
    struct unpacker r = {.p = buf, .left = buf ? len : 0};

    memset(s, 0, sizeof(*s));
    unpack_walk(&r, s);
    if (r.bad || r.left != 0) {
        memset(s, 0, sizeof(*s));
        return -EBADMSG;
    }
    return 0;
}
