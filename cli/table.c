/* Aligned text tables (table.h). */
#include "cli/table.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

struct table {
    size_t ncols;               /* columns per row */
    bool has_header;            /* cells[0..ncols) are the header line */
    bool right[TABLE_MAX_COLS]; /* right-align this column */
    char **cells;               /* every cell, row-major, cleaned */
    size_t ncells;              /* cells used */
    size_t cap;                 /* cells allocated */
};

/* Characters a UTF-8 string shows as: continuation bytes do not count. */
static size_t
table_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void
table_push(table_t *t, char *cell)
{
    for (char *p = cell; *p; p++)
        if (iscntrl((unsigned char)*p))
            *p = '?';
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = xreallocarray(t->cells, t->cap, sizeof(*t->cells));
    }
    t->cells[t->ncells++] = cell;
}

table_t *
table_new(size_t ncols, const char *const *headers)
{
    assert(ncols >= 1 && ncols <= TABLE_MAX_COLS);
    table_t *t = xcalloc(1, sizeof(*t));
    t->ncols = ncols;
    if (headers) {
        t->has_header = true;
        for (size_t i = 0; i < ncols; i++)
            table_push(t, xstrdup(headers[i]));
    }
    return t;
}

void
table_destroy(table_t **t)
{
    if (!t || !*t)
        return;
    for (size_t i = 0; i < (*t)->ncells; i++)
        free((*t)->cells[i]);
    free((*t)->cells);
    free(*t);
    *t = NULL;
}

void
table_align_right(table_t *t, size_t col)
{
    assert(col < t->ncols);
    t->right[col] = true;
}

void
table_add(table_t *t, const char *text)
{
    table_push(t, xstrdup(text ? text : "-"));
}

void
table_addf(table_t *t, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0) {
        fputs("out of memory\n", stderr);
        abort();
    }
    table_push(t, s);
}

size_t
table_rows(const table_t *t)
{
    size_t cells = t->ncells - (t->has_header ? t->ncols : 0);
    return (cells + t->ncols - 1) / t->ncols;
}

void
table_print(const table_t *t, FILE *f)
{
    size_t width[TABLE_MAX_COLS] = {0};
    size_t nrows = (t->ncells + t->ncols - 1) / t->ncols;

    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = table_width(t->cells[i]);
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t r = 0; r < nrows; r++) {
        char *line = NULL;
        size_t len = 0;
        FILE *l = open_memstream(&line, &len);
        if (!l) {
            fputs("out of memory\n", stderr);
            abort();
        }
        for (size_t c = 0; c < t->ncols; c++) {
            size_t i = r * t->ncols + c;
            const char *s = i < t->ncells ? t->cells[i] : "";
            size_t pad = width[c] - table_width(s);

            if (c > 0)
                fputs("  ", l);
            if (t->right[c])
                fprintf(l, "%*s", (int)pad, "");
            fputs(s, l);
            if (!t->right[c])
                fprintf(l, "%*s", (int)pad, "");
        }
        fclose(l);
        /* Empty or short trailing cells leave padding behind; drop it. */
        while (len > 0 && line[len - 1] == ' ')
            len--;
        fwrite(line, 1, len, f);
        fputc('\n', f);
        free(line);
    }
}

char *
table_size(uint64_t bytes, char *buf, size_t n)
{
    static const char units[] = "KMGTPE";

    if (bytes < 1024) {
        snprintf(buf, n, "%" PRIu64, bytes);
        return buf;
    }
    /* Pick the largest unit that leaves at least 1, then round to one
     * decimal in integer arithmetic so 2^64-1 prints without a double. */
    unsigned u = 0;
    while (u + 1 < sizeof(units) - 1 && bytes >> (10 * (u + 2)) > 0)
        u++;
    unsigned shift = 10 * (u + 1);
    uint64_t whole = bytes >> shift;
    uint64_t rest = bytes - (whole << shift);
    /* tenths = round(rest * 10 / 2^shift); rest < 2^shift <= 2^60, so rest * 10 fits. */
    uint64_t tenths = (rest * 10 + (1ull << (shift - 1))) >> shift;
    if (tenths == 10) {
        whole++;
        tenths = 0;
    }
    if (whole == 1024 && u + 1 < sizeof(units) - 1) {
        whole = 1;
        u++;
    }
    if (tenths)
        snprintf(buf, n, "%" PRIu64 ".%" PRIu64 "%c", whole, tenths, units[u]);
    else
        snprintf(buf, n, "%" PRIu64 "%c", whole, units[u]);
    return buf;
}

char *
table_rate(uint64_t bits, char *buf, size_t n)
{
    static const char *const units[] = {"kbit", "mbit", "gbit", "tbit", "pbit", "ebit"};
    uint64_t div = 1000;
    unsigned u = 0;

    if (bits < 1000) {
        snprintf(buf, n, "%" PRIu64 "bit", bits);
        return buf;
    }
    /* The largest unit that leaves at least 1; tenths rounded in integers. */
    while (u + 1 < ARRAY_SIZE(units) && bits / div >= 1000) {
        div *= 1000;
        u++;
    }
    uint64_t whole = bits / div;
    uint64_t tenths = (bits % div + div / 20) / (div / 10);
    if (tenths == 10) {
        whole++;
        tenths = 0;
    }
    if (whole == 1000 && u + 1 < ARRAY_SIZE(units)) {
        whole = 1;
        u++;
    }
    if (tenths)
        snprintf(buf, n, "%" PRIu64 ".%" PRIu64 "%s", whole, tenths, units[u]);
    else
        snprintf(buf, n, "%" PRIu64 "%s", whole, units[u]);
    return buf;
}

/* One CSV field (RFC 4180): quoted when it holds a comma, quote or newline. */
static void
csv_field(const char *s, FILE *f)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void
table_print_csv(const table_t *t, FILE *f)
{
    size_t nrows = (t->ncells + t->ncols - 1) / t->ncols;

    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            size_t i = r * t->ncols + c;
            if (c > 0)
                fputc(',', f);
            csv_field(i < t->ncells ? t->cells[i] : "", f);
        }
        fputs("\r\n", f);
    }
}
