#include "common/config.h"

#include <errno.h>
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
};

struct config {
    struct config_entry *entries; /* in file order */
    size_t n;                     /* entries used */
    size_t cap;                   /* entries allocated */
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

void
config_set(config_t *c, const char *section, const char *key, const char *value)
{
    struct config_entry *e = find(c, section, key);

    if (e) {
        free(e->value);
        e->value = xstrdup(value);
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->entries = xreallocarray(c->entries, c->cap, sizeof(*c->entries));
    }
    c->entries[c->n++] = (struct config_entry){xstrdup(section), xstrdup(key), xstrdup(value)};
}

static int
on_entry(void *userdata, const char *section, const char *name, const char *value)
{
    if (!name) /* a bare [section] header */
        return 1;
    config_set(userdata, section, name, value ? value : "");
    return 1;
}

static int
finish(int r, config_t *c, config_t **out, int *err_line)
{
    if (err_line)
        *err_line = r > 0 ? r : 0;
    if (r != 0) {
        config_destroy(&c);
        return r == -1 ? -errno ?: -EIO : -EBADMSG;
    }
    *out = c;
    return 0;
}

int
config_load(const char *path, config_t **out, int *err_line)
{
    config_t *c = config_new();
    FILE *f = fopen(path, "re");

    if (!f) {
        int r = -errno;
        config_destroy(&c);
        return r;
    }
    int r = ini_parse_file(f, on_entry, c);
    fclose(f);
    return finish(r, c, out, err_line);
}

int
config_load_string(const char *text, config_t **out, int *err_line)
{
    config_t *c = config_new();
    return finish(ini_parse_string(text, on_entry, c), c, out, err_line);
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

int
config_get_bool(const config_t *c, const char *section, const char *key, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off"};
    const char *v = config_get(c, section, key);

    if (!v)
        return -ENOENT;
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
