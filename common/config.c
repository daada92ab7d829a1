#include "common/config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/mem.h"
#include "common/units.h"

struct config_entry {
    char *section; /* section name, "" before the first header */
    char *key;     /* key as written */
    char *value;   /* value with surrounding space removed by inih */
    int line;      /* line in the file, 0 = set by config_set (the command line) */
};

struct config {
    struct config_entry *entries; /* in file order */
    size_t n;                     /* entries used */
    size_t cap;                   /* entries allocated */
    char *path;                   /* the file read, for origins; NULL for none */
};

config_t *
config_new(void)
{
    return xcalloc(1, sizeof(config_t));
}

void
config_destroy(config_t **p)
{
    config_t *c = *p;

    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].section);
        free(c->entries[i].key);
        free(c->entries[i].value);
    }
    free(c->entries);
    free(c->path);
    free(c);
    *p = NULL;
}

static struct config_entry *
find(const config_t *c, const char *section, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].section, section) == 0 && strcmp(c->entries[i].key, key) == 0)
            return &c->entries[i];
    return NULL;
}

static void
set_at(config_t *c, const char *section, const char *key, const char *value, int line)
{
    struct config_entry *e = find(c, section, key);

    if (e) {
        free(e->value);
        e->value = xstrdup(value);
        e->line = line;
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->entries = xreallocarray(c->entries, c->cap, sizeof(*c->entries));
    }
    c->entries[c->n++] =
        (struct config_entry){xstrdup(section), xstrdup(key), xstrdup(value), line};
}

void
config_set(config_t *c, const char *section, const char *key, const char *value)
{
    set_at(c, section, key, value, 0);
}

/* libinih reads through this fgets-like reader so the handler knows the line
 * it is called for, and a line longer than libinih's buffer (which it would
 * parse as two lines) is caught instead of misread. */
struct reader {
    FILE *f;       /* the text */
    config_t *c;   /* the config filled */
    int line;      /* lines read so far: the one being parsed */
    int long_line; /* the first line longer than CONFIG_MAX_LINE, 0 = none */
};

static char *
read_line(char *str, int num, void *stream)
{
    struct reader *r = stream;

    if (!fgets(str, num, r->f))
        return NULL;
    r->line++;
    size_t len = strlen(str);
    if (len && str[len - 1] != '\n') {
        /* The buffer filled: the line fits only if its newline (or the end
         * of the text) comes next. */
        int ch = getc(r->f);
        if (ch == '\r')
            ch = getc(r->f);
        if (ch != EOF && ch != '\n') {
            if (!r->long_line)
                r->long_line = r->line;
            while ((ch = getc(r->f)) != EOF && ch != '\n')
                ;
        }
    }
    return str;
}

static int
on_entry(void *userdata, const char *section, const char *name, const char *value)
{
    struct reader *r = userdata;

    if (!name) /* a bare [section] header */
        return 1;
    set_at(r->c, section, name, value ? value : "", r->line);
    return 1;
}

static int
parse(FILE *f, const char *path, config_t **out, int *err_line)
{
    struct reader rd = {.f = f, .c = config_new()};

    /* A continuation line would silently replace the value (config_set keeps
     * the last): every line stands alone. libinih has no per-parse option. */
    ini_allow_multiline = false;
    int r = ini_parse_stream(read_line, &rd, on_entry, &rd);
    if (r == 0 || (rd.long_line && rd.long_line < r))
        r = rd.long_line;
    if (err_line)
        *err_line = r > 0 ? r : 0;
    if (r != 0) {
        config_destroy(&rd.c);
        return r < 0 ? -EIO : -EBADMSG;
    }
    rd.c->path = xstrdup(path);
    *out = rd.c;
    return 0;
}

int
config_load(const char *path, config_t **out, int *err_line)
{
    _cleanup_fclose_ FILE *f = fopen(path, "re");

    if (!f)
        return -errno;
    return parse(f, path, out, err_line);
}

int
config_load_string(const char *text, config_t **out, int *err_line)
{
    _cleanup_fclose_ FILE *f = NULL;

    if (!*text) { /* fmemopen refuses an empty buffer */
        *out = config_new();
        (*out)->path = xstrdup("<string>");
        if (err_line)
            *err_line = 0;
        return 0;
    }
    f = fmemopen((void *)text, strlen(text), "r");
    if (!f)
        return -errno;
    return parse(f, "<string>", out, err_line);
}

const char *
config_get(const config_t *c, const char *section, const char *key)
{
    struct config_entry *e = find(c, section, key);
    return e ? e->value : NULL;
}

int
config_get_u64(const config_t *c, const char *section, const char *key, uint64_t *out)
{
    const char *v = config_get(c, section, key);
    return v ? units_parse_u64(v, out) : -ENOENT;
}

int
config_get_size(const config_t *c, const char *section, const char *key, uint64_t *out)
{
    const char *v = config_get(c, section, key);
    return v ? units_parse_size(v, out) : -ENOENT;
}

static int
parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int
config_get_bool(const config_t *c, const char *section, const char *key, bool *out)
{
    const char *v = config_get(c, section, key);
    return v ? parse_bool(v, out) : -ENOENT;
}

int
config_foreach(const config_t *c, const char *section,
               int (*fn)(const char *key, const char *value, void *userdata), void *userdata)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->entries[i].section, section) != 0)
            continue;
        int r = fn(c->entries[i].key, c->entries[i].value, userdata);
        if (r < 0)
            return r;
    }
    return 0;
}

const char *
config_origin(const config_t *c, const char *section, const char *key, const char *flag, char *buf,
              size_t n)
{
    const struct config_entry *e = find(c, section, key);

    if (!e)
        snprintf(buf, n, "(default)");
    else if (e->line > 0)
        snprintf(buf, n, "%s:%d", c->path ? c->path : "<config>", e->line);
    else if (flag)
        snprintf(buf, n, "--%s", flag);
    else
        snprintf(buf, n, "the command line");
    return buf;
}

static const char *const type_names[] = {
    [CONFIG_STRING] = "string", [CONFIG_U64] = "number",  [CONFIG_SIZE] = "size",
    [CONFIG_BOOL] = "boolean",  [CONFIG_CHOICE] = "word", [CONFIG_RATIO] = "ratio",
};

/* A word of "a|b|c"? */
static bool
choice_ok(const char *choices, const char *v)
{
    size_t len = strlen(v);

    for (const char *p = choices; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t wl = bar ? (size_t)(bar - p) : strlen(p);
        if (wl == len && strncmp(p, v, len) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

/* Checks one value against its key; returns 0 or -EINVAL with why filled. */
static int
check_value(const struct config_key *k, const char *key, const char *v, char *why, size_t n)
{
    uint64_t u = 0;
    int r = 0;

    switch (k->type) {
    case CONFIG_STRING:
        if (k->max && strlen(v) > k->max)
            return snprintf(why, n, "longer than %" PRIu64 " characters", k->max), -EINVAL;
        break;
    case CONFIG_U64:
    case CONFIG_SIZE:
        r = k->type == CONFIG_U64 ? units_parse_u64(v, &u) : units_parse_size(v, &u);
        if (r < 0)
            return snprintf(why, n, "\"%s\" is not a %s", v,
                            k->type == CONFIG_U64 ? "whole number" : "size (such as 512M, 20G)"),
                   -EINVAL;
        if (k->max && (u < k->min || u > k->max))
            return snprintf(why, n, "%s is out of range (%" PRIu64 " to %" PRIu64 ")", v, k->min,
                            k->max),
                   -EINVAL;
        if (u < k->min)
            return snprintf(why, n, "%s is below the least value, %" PRIu64, v, k->min), -EINVAL;
        break;
    case CONFIG_RATIO: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || d != d || d < (double)k->min ||
            (k->max && d > (double)k->max))
            return snprintf(why, n, "\"%s\" is not a number from %" PRIu64 " to %" PRIu64, v,
                            k->min, k->max),
                   -EINVAL;
        break;
    }
    case CONFIG_BOOL: {
        bool b;
        if (parse_bool(v, &b) < 0)
            return snprintf(why, n, "\"%s\" is not a boolean (yes or no)", v), -EINVAL;
        break;
    }
    case CONFIG_CHOICE:
        if (!choice_ok(k->choices, v)) {
            _cleanup_free_ char *list = xstrdup(k->choices ? k->choices : "");
            for (char *p = list; *p; p++)
                if (*p == '|')
                    *p = ',';
            return snprintf(why, n, "\"%s\" is not one of %s", v, list), -EINVAL;
        }
        break;
    }
    if (k->check)
        return k->check(key, v, why, n);
    return 0;
}

static const struct config_key *
schema_find(const struct config_key *schema, size_t n, const char *section, const char *key,
            bool *section_known)
{
    *section_known = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(schema[i].section, section) != 0)
            continue;
        *section_known = true;
        if (strcmp(schema[i].key, key) == 0 || strcmp(schema[i].key, "*") == 0)
            return &schema[i];
    }
    return NULL;
}

int
config_check(const config_t *c, const struct config_key *schema, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct config_entry *e = &c->entries[i];
        bool section_known;
        const struct config_key *k = schema_find(schema, n, e->section, e->key, &section_known);
        char where[512], why[256] = "";
        int r = 0;

        if (!k && !section_known && !*e->section)
            r = snprintf(why, sizeof(why), "a key before any [section] header");
        else if (!k && !section_known)
            r = snprintf(why, sizeof(why), "unknown section");
        else if (!k)
            r = snprintf(why, sizeof(why), "unknown key");
        else
            r = check_value(k, e->key, e->value, why, sizeof(why)) < 0;
        if (r) {
            config_origin(c, e->section, e->key, k ? k->flag : NULL, where, sizeof(where));
            snprintf(err, errlen, "%s: [%s] %s: %s", where, e->section, e->key, why);
            return -EINVAL;
        }
    }
    return 0;
}

void
config_print_schema(FILE *f, const struct config_key *schema, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &schema[i];
        char type[128];

        if (k->type == CONFIG_CHOICE)
            snprintf(type, sizeof(type), "%s", k->choices);
        else if ((k->type == CONFIG_U64 || k->type == CONFIG_RATIO) && k->max)
            snprintf(type, sizeof(type), "%s %" PRIu64 "-%" PRIu64, type_names[k->type], k->min,
                     k->max);
        else
            snprintf(type, sizeof(type), "%s", type_names[k->type]);
        fprintf(f, "[%s] %-20s %-24s %s\n", k->section, k->key, type, k->help ? k->help : "");
    }
}
