/* INI configuration files (/etc/vfleet/node.conf, master.conf), read with
 * Debian's libinih: no hand-written parser. Command-line flags override file
 * values with config_set, so programs read one place.
 *
 * Keys are looked up as (section, key); the section "" holds keys that come
 * before any [section] header. A later duplicate key replaces an earlier one.
 * Every value remembers where it came from (file and line, or the command
 * line), so a bad value is reported as "FILE:LINE: ..." (config_check,
 * config_origin).
 *
 * The syntax is libinih's with multi-line values off: "key = value" lines,
 * "[section]" headers, whole-line comments starting with '#' or ';', inline
 * comments after " ;". Indented lines are ordinary lines. A line is at most
 * CONFIG_MAX_LINE characters. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The longest line libinih reads whole: its 200-byte buffer less CR, LF and NUL. */
#define CONFIG_MAX_LINE 198

typedef struct config config_t;

config_t *config_new(void);
void config_destroy(config_t **p);

/* Reads path into a new config. Returns 0, -errno when the file cannot be
 * opened, or -EBADMSG with *err_line set to the first bad line (a line that
 * is neither "key = value" nor "[section]", or one longer than
 * CONFIG_MAX_LINE). */
int config_load(const char *path, config_t **out, int *err_line);
/* Parses INI text held in memory (tests, embedded defaults). Same returns;
 * origins name the file "<string>". */
int config_load_string(const char *text, config_t **out, int *err_line);

/* Sets (or replaces) a value; its origin becomes the command line. */
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

/* Where (section, key) was set, written into buf: "FILE:LINE" for a file
 * value, "--FLAG" for one set by config_set when flag is given, else
 * "the command line"; "(default)" when the key is absent. Returns buf. */
const char *config_origin(const config_t *c, const char *section, const char *key, const char *flag,
                          char *buf, size_t n);

/* ---- the schema: every key a program accepts ---- */

enum config_type {
    CONFIG_STRING, /* any text; max > 0 bounds its length */
    CONFIG_U64,    /* a decimal number in [min, max] */
    CONFIG_SIZE,   /* a size ("64G", common/units.h) in [min, max] bytes */
    CONFIG_BOOL,   /* yes/no, true/false, on/off, 1/0 */
    CONFIG_CHOICE, /* one of the '|'-separated words of choices */
    CONFIG_RATIO,  /* a decimal fraction in [min, max] */
};

/* One accepted key. A program keeps one table of these (its whole
 * configuration surface); config_check holds a config to it. */
struct config_key {
    const char *section;   /* "master", "node", "labels", ... */
    const char *key;       /* the key, or "*" for any key of the section */
    enum config_type type; /* how the value is read */
    uint64_t min;          /* CONFIG_U64, SIZE, RATIO: the smallest value */
    uint64_t max;          /* the largest (0 = no bound); CONFIG_STRING: length */
    const char *choices;   /* CONFIG_CHOICE: "spread|binpack" */
    const char *flag;      /* the command-line option that sets it, or NULL */
    /* A further check of the value (a name, an endpoint), or NULL: returns 0,
     * or -EINVAL with a reason written into why. */
    int (*check)(const char *key, const char *value, char *why, size_t n);
    const char *help; /* one line, for --help-config */
};

/* Holds every entry of c to schema: an unknown section, an unknown key, a
 * value that is not of the key's type or out of its range, or one its check
 * refuses. Returns 0, or -EINVAL with the first error in err as
 * "ORIGIN: [section] key: reason" (ORIGIN as config_origin says). */
int config_check(const config_t *c, const struct config_key *schema, size_t n, char *err,
                 size_t errlen);

/* Writes the schema, one key a line: "[section] key  TYPE  help". */
void config_print_schema(FILE *f, const struct config_key *schema, size_t n);
