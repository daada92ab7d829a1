/* The FreeVPS views' text (vservers.h): renderers and the parsers written
 * from docs/freevps-views.md. */
#include "node/vservers.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* Closes an open_memstream; *buf is only valid after the close. */
static char *
finish(FILE *f, char **buf, size_t *len)
{
    fclose(f);
    if (!*buf)
        abort(); /* open_memstream failed to allocate: nothing sensible to do */
    *len = strlen(*buf);
    return *buf;
}

/* ---- setup ---- */

char *
vs_render_setup(const struct vs_setup *s, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);

    if (!f)
        abort();
    fprintf(f, "freevps patch version %s\n", s->version);
    fprintf(f, "build %s\n", s->build);
    fprintf(f, "contexts count %" PRIu32 "\n", s->contexts);
    fprintf(f, "active contexts count %" PRIu32 "\n", s->active);
    return finish(f, &buf, len);
}

/* "key value" with a known key; the value is the rest of the line. */
static const char *
after_key(const char *line, const char *key)
{
    size_t k = strlen(key);
    return strncmp(line, key, k) == 0 && line[k] == ' ' ? line + k + 1 : NULL;
}

static int
parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || *s < '0' || *s > '9')
        return -EBADMSG;
    *out = (uint32_t)v;
    return 0;
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s < '0' || *s > '9')
        return -EBADMSG;
    *out = v;
    return (*end == '\0' || *end == ' ') ? 0 : -EBADMSG;
}

/* Walks the lines of text (a copy), calling fn on each non-empty one. */
static int
each_line(const char *text, int (*fn)(void *userdata, char *line), void *userdata)
{
    _cleanup_free_ char *copy = xstrdup(text);
    char *save = NULL;

    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        int r = fn(userdata, l);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
setup_line(void *userdata, char *l)
{
    struct vs_setup *s = userdata;
    const char *v;

    if ((v = after_key(l, "freevps patch version")))
        return strscpy(s->version, v, sizeof(s->version)) < 0 ? -EBADMSG : 0;
    if ((v = after_key(l, "build")))
        return strscpy(s->build, v, sizeof(s->build)) < 0 ? -EBADMSG : 0;
    if ((v = after_key(l, "active contexts count")))
        return parse_u32(v, &s->active);
    if ((v = after_key(l, "contexts count")))
        return parse_u32(v, &s->contexts);
    return -EBADMSG;
}

int
vs_parse_setup(const char *text, struct vs_setup *out)
{
    *out = (struct vs_setup){0};
    int r = each_line(text, setup_line, out);
    return r < 0 ? r : out->version[0] ? 0 : -EBADMSG;
}

/* ---- trafstat ---- */

#define TRAFSTAT_HEADER "CONTXT_NUMBER INCOMING OUTGOING"

char *
vs_render_trafstat(const struct vs_traffic *rows, size_t n, size_t *len)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);

    if (!f)
        abort();
    fputs(TRAFSTAT_HEADER "\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%" PRIu32 " %" PRIu64 " %" PRIu64 "\n", rows[i].context, rows[i].incoming,
                rows[i].outgoing);
    return finish(f, &buf, len);
}

/* A growable array of rows for the parsers. */
struct rows {
    void *v;     /* the rows */
    size_t n;    /* used */
    size_t cap;  /* allocated */
    size_t size; /* bytes per row */
    bool header; /* the header line was seen */
};

static void *
rows_add(struct rows *r)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = xreallocarray(r->v, r->cap, r->size);
    }
    void *row = (char *)r->v + r->n++ * r->size;
    memset(row, 0, r->size);
    return row;
}

static int
trafstat_line(void *userdata, char *l)
{
    struct rows *r = userdata;
    char ctx[16], in[24], out[24];
    int end = 0;

    if (!r->header)
        return strcmp(l, TRAFSTAT_HEADER) == 0 ? (r->header = true, 0) : -EBADMSG;
    if (r->n == VS_MAX_ROWS || sscanf(l, "%15s %23s %23s%n", ctx, in, out, &end) != 3 || l[end])
        return -EBADMSG;
    struct vs_traffic *t = rows_add(r);
    if (parse_u32(ctx, &t->context) < 0 || parse_u64(in, &t->incoming) < 0 ||
        parse_u64(out, &t->outgoing) < 0)
        return -EBADMSG;
    return 0;
}

int
vs_parse_trafstat(const char *text, struct vs_traffic **rows, size_t *n)
{
    struct rows r = {.size = sizeof(**rows)};
    int e = each_line(text, trafstat_line, &r);

    if (e < 0 || !r.header) {
        free(r.v);
        return -EBADMSG;
    }
    *rows = r.v;
    *n = r.n;
    return 0;
}

/* ---- routes_ipv4 ---- */

char *
vs_render_routes(const struct vs_route *rows, size_t n, size_t *len)
{
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);

    if (!f)
        abort();
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s %s %" PRIu32 "\n", rows[i].address, rows[i].name, rows[i].context);
    return finish(f, &buf, len);
}

static int
routes_line(void *userdata, char *l)
{
    struct rows *r = userdata;
    char addr[16], name[VS_IFNAMSIZ], ctx[16];
    int end = 0;
    unsigned a, b, c, d;
    char extra;

    if (r->n == VS_MAX_ROWS || sscanf(l, "%15s %15s %15s%n", addr, name, ctx, &end) != 3 ||
        l[end] || sscanf(addr, "%u.%u.%u.%u%c", &a, &b, &c, &d, &extra) != 4 || a > 255 ||
        b > 255 || c > 255 || d > 255)
        return -EBADMSG;
    struct vs_route *rt = rows_add(r);
    strscpy(rt->address, addr, sizeof(rt->address));
    strscpy(rt->name, name, sizeof(rt->name));
    return parse_u32(ctx, &rt->context);
}

int
vs_parse_routes(const char *text, struct vs_route **rows, size_t *n)
{
    struct rows r = {.size = sizeof(**rows)};
    int e = each_line(text, routes_line, &r);

    if (e < 0) {
        free(r.v);
        return -EBADMSG;
    }
    *rows = r.v;
    *n = r.n;
    return 0;
}
