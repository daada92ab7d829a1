/* INI configuration files (/etc/vfleet/node.conf, master.conf), read with
 * Debian's libinih: no hand-written parser. Command-line flags override file
 * values with config_set, so programs read one place.
 *
 * Keys are looked up as (section, key); the section "" holds keys that come
 * before any [section] header. A later duplicate key replaces an earlier one. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct config config_t;

config_t *config_new(void);
void config_destroy(config_t **p);

/* Reads path into a new config. Returns 0, -errno when the file cannot be
 * opened, or -EBADMSG with *err_line set to the first bad line. */
int config_load(const char *path, config_t **out, int *err_line);
/* Parses INI text held in memory (tests, embedded defaults). Same returns. */
int config_load_string(const char *text, config_t **out, int *err_line);

/* Sets (or replaces) a value. */
void config_set(config_t *c, const char *section, const char *key, const char *value);
/* The value, or NULL when absent. The pointer lives as long as c. */
const char *config_get(const config_t *c, const char *section, const char *key);
/* Typed getters: 0 with *out set, -ENOENT when absent (out untouched), -EINVAL or
 * -ERANGE when present but unreadable, so a typo is an error, not a default. */
int config_get_u64(const config_t *c, const char *section, const char *key, uint64_t *out);
int config_get_size(const config_t *c, const char *section, const char *key, uint64_t *out);
int config_get_bool(const config_t *c, const char *section, const char *key, bool *out);

/* Calls fn for every key of a section in file order; stops at and returns the
 * first negative result. */
int config_foreach(const config_t *c, const char *section,
                   int (*fn)(const char *key, const char *value, void *userdata), void *userdata);
