/* Logging with syslog levels to stderr or syslog (journald reads both).
 *
 * A stderr line is "2025-05-20T12:34:56.789Z vfleet-master[42] info: message"
 * (UTC, milliseconds), or with LOG_FORMAT_JSON one JSON object a line:
 * {"time":"...","ident":"vfleet-master","pid":42,"level":"info","msg":"...",
 * plus the fields of log_struct}. When stderr is the journal's stream
 * ($JOURNAL_STREAM names it), text lines also start with "<N>" so journald
 * keeps each line's priority. Control characters in messages are escaped,
 * so a value from a peer cannot forge a line.
 *
 * The level test happens in the macro, before any argument is evaluated, so a
 * debug line costs one comparison when debug is off. Messages name the object
 * they are about ("guest=web1 node=h2"), put user strings in quotes, and end
 * non-fatal failures with ", ignoring" (STYLE.md). Library code logs at debug
 * at most; programs log once at the edge, with context.
 *
 * The level and sink are process-wide: logging is the one global the layers
 * share, as in systemd and libuv's test runner. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "common/mem.h"

enum log_sink {
    LOG_SINK_STDERR, /* "<level> message" lines on stderr */
    LOG_SINK_SYSLOG, /* syslog(3), which journald collects */
};

enum log_format {
    LOG_FORMAT_TEXT, /* date, ident[pid], level: message */
    LOG_FORMAT_JSON, /* one JSON object a line */
};

/* One named value of a structured line (log_struct): a string, or a number
 * when str is NULL. */
struct log_field {
    const char *key; /* JSON member / "key=" in text */
    const char *str; /* the value, or NULL for num */
    double num;      /* the value when str is NULL */
};

extern int log_max_level;
/* The master's HTTP access log (one line per request, master/httpd.c). On
 * unless the program's configuration turns it off; process-wide like the
 * level. */
extern bool log_access_enabled;

void log_setup(const char *ident, enum log_sink sink, int max_level);
void log_set_format(enum log_format format);
/* Parses "err", "warning", "notice", "info", "debug" (or 0-7). Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
/* Parses "text" or "json". Returns the format or -EINVAL. */
int log_format_from_string(const char *s);
void log_emit(int level, const char *file, int line, const char *fmt, ...) _printf_(4, 5);
/* A line with named fields: in text they follow the message as key=value
 * (strings quoted when they hold a space, a quote or a control character),
 * in JSON they are members of the object. Callers test the level first. */
void log_struct(int level, const struct log_field *fields, size_t n, const char *fmt, ...)
    _printf_(4, 5);

#define log_full(level, ...)                                                                       \
    do {                                                                                           \
        if ((level) <= log_max_level)                                                              \
            log_emit((level), __FILE__, __LINE__, __VA_ARGS__);                                    \
    } while (0)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

/* Logs and returns the (negative) error, so `return log_error_errno(r, ...)` reads naturally. */
#define log_error_errno(err, ...)                                                                  \
    ({                                                                                             \
        log_error(__VA_ARGS__);                                                                    \
        -abs(err);                                                                                 \
    })
