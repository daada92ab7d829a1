#include "common/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int log_max_level = LOG_INFO;
bool log_access_enabled = true;
static enum log_sink log_sink = LOG_SINK_STDERR;
static enum log_format log_format = LOG_FORMAT_TEXT;
static const char *log_ident = "vfleet";
/* stderr is journald's stream: text lines get a "<N>" priority prefix. */
static bool log_to_journal;

static const char *const level_names[] = {
    [LOG_EMERG] = "emerg",     [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "err",
    [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM=DEV:INODE for a service whose stderr goes to the journal. */
static bool
stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
log_setup(const char *ident, enum log_sink sink, int max_level)
{
    log_ident = ident;
    log_sink = sink;
    log_max_level = max_level;
    log_to_journal = stderr_is_journal();
    if (sink == LOG_SINK_SYSLOG)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_format(enum log_format format)
{
    log_format = format;
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

int
log_format_from_string(const char *s)
{
    if (s && strcmp(s, "text") == 0)
        return LOG_FORMAT_TEXT;
    if (s && strcmp(s, "json") == 0)
        return LOG_FORMAT_JSON;
    return -EINVAL;
}

/* One output line, built in place and written with one write(2), so lines
 * from several threads (the master's HTTP threads) never interleave. A line
 * that would not fit is cut, and ends with "...". */
struct line {
    char buf[4096]; /* the text */
    size_t len;     /* bytes used */
    bool cut;       /* something did not fit */
};

/* Appends n bytes, or nothing once they do not fit (an escape sequence or a
 * UTF-8 character is never split); room for "...\n" is kept. */
static void
put(struct line *l, const char *s, size_t n)
{
    if (l->cut || n > sizeof(l->buf) - 8 - l->len) {
        l->cut = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void
puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

_printf_(2, 3) static void putf(struct line *l, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t
utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xe0 && s[0] <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* A JSON string body: quotes, backslashes and control characters escaped,
 * invalid UTF-8 replaced by U+FFFD, so every line is valid JSON. */
static void
put_json_str(struct line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p) {
        size_t n = utf8_len(p);
        if (n == 0) {
            puts_(l, "\\ufffd");
            p++;
        } else if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            put(l, e, 2);
            p++;
        } else if (*p == '\n') {
            puts_(l, "\\n"), p++;
        } else if (*p == '\t') {
            puts_(l, "\\t"), p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            putf(l, "\\u%04x", *p), p++;
        } else {
            put(l, (const char *)p, n);
            p += n;
        }
    }
}

/* Text: control characters (a newline would forge a line) as \n, \t, \xNN. */
static void
put_text(struct line *l, const char *s, bool quote_escapes)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n')
            puts_(l, "\\n");
        else if (*p == '\t')
            puts_(l, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            putf(l, "\\x%02x", *p);
        else if (quote_escapes && (*p == '"' || *p == '\\'))
            putf(l, "\\%c", *p);
        else
            put(l, (const char *)p, 1);
    }
}

static bool
needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == '"' || *p == '\\' || *p == '=' || *p == 0x7f)
            return true;
    return false;
}

static void
put_number(struct line *l, double v)
{
    if (v == (double)(int64_t)v && v > -9e15 && v < 9e15)
        putf(l, "%" PRId64, (int64_t)v);
    else
        putf(l, "%.3f", v);
}

static void
format_line(struct line *l, int level, const char *file, int lineno, const char *msg,
            const struct log_field *fields, size_t n)
{
    struct timespec ts;
    struct tm tm;
    char when[64];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (log_format == LOG_FORMAT_JSON) {
        putf(l, "{\"time\":\"%s\",\"ident\":\"", when);
        put_json_str(l, log_ident);
        putf(l, "\",\"pid\":%d,\"level\":\"%s\",\"msg\":\"", (int)getpid(), level_names[level & 7]);
        put_json_str(l, msg);
        puts_(l, "\"");
        for (size_t i = 0; i < n; i++) {
            puts_(l, ",\"");
            put_json_str(l, fields[i].key);
            puts_(l, "\":");
            if (fields[i].str) {
                puts_(l, "\"");
                put_json_str(l, fields[i].str);
                puts_(l, "\"");
            } else {
                put_number(l, fields[i].num);
            }
        }
        if (file && log_max_level >= LOG_DEBUG) {
            puts_(l, ",\"code\":\"");
            put_json_str(l, file);
            putf(l, ":%d\"", lineno);
        }
        if (l->cut) {
            /* Too long for one line: the message alone, cut, still valid JSON. */
            char shorter[512];
            size_t sl = strnlen(msg, sizeof(shorter) - 1);
            memcpy(shorter, msg, sl);
            shorter[sl] = '\0';
            *l = (struct line){.len = 0};
            putf(l, "{\"time\":\"%s\",\"ident\":\"", when);
            put_json_str(l, log_ident);
            putf(l, "\",\"pid\":%d,\"level\":\"%s\",\"truncated\":true,\"msg\":\"", (int)getpid(),
                 level_names[level & 7]);
            put_json_str(l, shorter);
            puts_(l, "\"");
        }
        puts_(l, "}");
    } else {
        if (log_to_journal)
            putf(l, "<%d>", level & 7);
        putf(l, "%s ", when);
        put_text(l, log_ident, false);
        putf(l, "[%d] %s: ", (int)getpid(), level_names[level & 7]);
        put_text(l, msg, false);
        for (size_t i = 0; i < n; i++) {
            puts_(l, " ");
            put_text(l, fields[i].key, false);
            puts_(l, "=");
            if (!fields[i].str) {
                put_number(l, fields[i].num);
            } else if (needs_quotes(fields[i].str)) {
                puts_(l, "\"");
                put_text(l, fields[i].str, true);
                puts_(l, "\"");
            } else {
                put_text(l, fields[i].str, false);
            }
        }
        if (file && log_max_level >= LOG_DEBUG)
            putf(l, " (%s:%d)", file, lineno);
        if (l->cut)
            memcpy(l->buf + l->len, "...", 3), l->len += 3;
    }
    l->buf[l->len++] = '\n';
}

_printf_(6, 0) static void emit(int level, const char *file, int lineno,
                                const struct log_field *fields, size_t n, const char *fmt,
                                va_list ap)
{
    int saved = errno;
    char msg[2048];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (log_sink == LOG_SINK_SYSLOG) {
        struct line l = {.len = 0};
        put_text(&l, msg, false);
        for (size_t i = 0; i < n; i++) {
            putf(&l, " %s=", fields[i].key);
            if (fields[i].str)
                put_text(&l, fields[i].str, false);
            else
                put_number(&l, fields[i].num);
        }
        l.buf[l.len] = '\0';
        syslog(level, "%s", l.buf);
    } else {
        struct line l = {.len = 0};
        format_line(&l, level, file, lineno, msg, fields, n);
        /* One write: a line is never split between threads. */
        for (size_t off = 0; off < l.len;) {
            ssize_t w = write(STDERR_FILENO, l.buf + off, l.len - off);
            if (w <= 0 && errno != EINTR)
                break;
            if (w > 0)
                off += (size_t)w;
        }
    }
    errno = saved;
}

void
log_emit(int level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(level, file, line, NULL, 0, fmt, ap);
    va_end(ap);
}

void
log_struct(int level, const struct log_field *fields, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    emit(level, NULL, 0, fields, n, fmt, ap);
    va_end(ap);
}
