#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int log_max_level = LOG_INFO;
static enum log_sink log_sink = LOG_SINK_STDERR;
static const char *log_ident = "vfleet";

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
    [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void
log_setup(const char *ident, enum log_sink sink, int max_level)
{
    log_ident = ident;
    log_sink = sink;
    log_max_level = max_level;
    if (sink == LOG_SINK_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_level_from_string(const char *s)
{
    if (!s || !*s)
        return -EINVAL;
    if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
        return s[0] - '0';
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    if (strcmp(s, "error") == 0)
        return LOG_ERR;
    if (strcmp(s, "warn") == 0)
        return LOG_WARNING;
    return -EINVAL;
}

void
log_emit(int level, const char *file, int line, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    if (log_sink == LOG_SINK_SYSLOG) {
        vsyslog(level, fmt, ap);
    } else {
        char buf[2048];
        struct timespec ts;
        struct tm tm;

        vsnprintf(buf, sizeof(buf), fmt, ap);
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        if (log_max_level >= LOG_DEBUG)
            fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%d] %s: %s (%s:%d)\n", tm.tm_hour, tm.tm_min,
                    tm.tm_sec, ts.tv_nsec / 1000000, log_ident, (int)getpid(),
                    level_names[level & 7], buf, file, line);
        else
            fprintf(stderr, "%02d:%02d:%02d.%03ld %s[%d] %s: %s\n", tm.tm_hour, tm.tm_min,
                    tm.tm_sec, ts.tv_nsec / 1000000, log_ident, (int)getpid(),
                    level_names[level & 7], buf);
    }
    va_end(ap);
    errno = saved;
}
