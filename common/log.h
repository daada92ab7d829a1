/* Logging with syslog levels to stderr or syslog (journald reads both).
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

#include <syslog.h>

#include "common/mem.h"

enum log_sink {
    LOG_SINK_STDERR, /* "<level> message" lines on stderr */
    LOG_SINK_SYSLOG, /* syslog(3), which journald collects */
};

extern int log_max_level;

void log_setup(const char *ident, enum log_sink sink, int max_level);
/* Parses "err", "warning", "notice", "info", "debug" (or 0-7). Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
void log_emit(int level, const char *file, int line, const char *fmt, ...) _printf_(4, 5);

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
