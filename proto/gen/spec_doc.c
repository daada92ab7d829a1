/* spec_doc: prints the limits table of docs/api.md from SPEC_LIMIT_FIELDS
 * (proto/spec_fields.h), so the reference cannot drift from the code.
 *
 *   spec_doc                 print the table (Markdown) on stdout
 *   spec_doc --check FILE    exit 1 unless FILE holds exactly that table
 *                            between the markers (deploy/test, ctest)
 *   spec_doc --write FILE    replace the table between the markers
 *
 * It needs only headers, so deploy/test compiles it before the build:
 *   cc -std=gnu11 -I. -o spec_doc proto/gen/spec_doc.c */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/spec_fields.h"

#define BEGIN_MARK                                                                                 \
    "<!-- limits table: generated from proto/spec_fields.h by proto/gen/spec_doc.c"                \
    " (spec_doc --write docs/api.md); do not edit by hand -->\n"
#define END_MARK "<!-- end of limits table -->\n"

/* What each unit looks like to the CLI, in JSON and on the wire. */
static const struct {
    const char *metavar; /* the CLI flag's value */
    const char *json;    /* the JSON value's form */
    const char *ju;      /* the unit JSON counts in, "" for a plain number */
    const char *wu;      /* the unit the msgpack integer counts in */
} units[SPEC_N_UNITS] = {
#define UNIT_(unit, metavar, json, ju, wu) [SPEC_UNIT_##unit] = {metavar, json, ju, wu},
    SPEC_UNIT_KINDS(UNIT_)
#undef UNIT_
};

/* A cell with the unit first when there is one: "bytes: integer or ...". */
static void
print_unit(FILE *f, const char *unit, const char *what)
{
    fprintf(f, "%s%s%s", unit, unit[0] ? ": " : "", what);
}

/* The valid range, in the unit JSON and the CLI use. */
static void
print_range(FILE *f, enum spec_unit unit, unsigned long long max)
{
    switch (unit) {
    case SPEC_UNIT_MCORES:
        fprintf(f, "0–%g cores", (double)max / 1000.0);
        break;
    case SPEC_UNIT_WEIGHT:
        fprintf(f, "1–%llu, 0 = default", max);
        break;
    default:
        if (max == UINT64_MAX)
            fputs("0–2⁶⁴−1", f);
        else
            fprintf(f, "0–%llu", max);
        break;
    }
}

/* The table, as it stands between the markers. */
static void
print_table(FILE *f)
{
    fputs("| key | CLI flag | JSON | msgpack | range | meaning |\n"
          "| --- | --- | --- | --- | --- | --- |\n",
          f);
#define ROW_(name, type, unit, flag, max, help)                                                    \
    fprintf(f, "| `%s` | `--%s %s` | ", #name, flag, units[SPEC_UNIT_##unit].metavar);             \
    print_unit(f, units[SPEC_UNIT_##unit].ju, units[SPEC_UNIT_##unit].json);                       \
    fprintf(f, " | %.*s", (int)(sizeof(#type) - 3), #type);                                        \
    fprintf(f, "%s%s | ", units[SPEC_UNIT_##unit].wu[0] ? " " : "", units[SPEC_UNIT_##unit].wu);   \
    print_range(f, SPEC_UNIT_##unit, (unsigned long long)(max));                                   \
    fprintf(f, " | %s |\n", help);
    SPEC_LIMIT_FIELDS(ROW_)
#undef ROW_
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0;
    FILE *m;
    int c;

    if (!f)
        return NULL;
    m = open_memstream(&buf, &len);
    if (!m) {
        fclose(f);
        return NULL;
    }
    while ((c = getc(f)) != EOF)
        putc(c, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* Finds the text between the markers: [*start, *end) in doc. */
static int
find_block(const char *doc, const char **start, const char **end)
{
    const char *b = strstr(doc, BEGIN_MARK);
    const char *e = b ? strstr(b, END_MARK) : NULL;

    if (!b || !e)
        return -ENOENT;
    *start = b + strlen(BEGIN_MARK);
    *end = e;
    return 0;
}

/* Checks or rewrites the table in path: 0, or 1 with the reason said. */
static int
check_or_write(const char *mode, const char *path, const char *doc, const char *table, size_t tlen)
{
    const char *start, *end;

    if (find_block(doc, &start, &end) < 0) {
        fprintf(stderr, "spec_doc: %s: no limits table markers\n", path);
        return 1;
    }
    if (strcmp(mode, "--check") == 0) {
        if ((size_t)(end - start) == tlen && memcmp(start, table, tlen) == 0)
            return 0;
        fprintf(stderr,
                "spec_doc: the limits table in %s differs from proto/spec_fields.h;\n"
                "  run: spec_doc --write %s  (it should read:)\n%s",
                path, path, table);
        return 1;
    }
    FILE *out = fopen(path, "we");
    if (!out || fprintf(out, "%.*s%s%s", (int)(start - doc), doc, table, end) < 0 ||
        fclose(out) != 0) {
        fprintf(stderr, "spec_doc: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    char *doc, *table = NULL;
    size_t tlen = 0;
    FILE *t;
    int rc;

    if (argc == 1) {
        print_table(stdout);
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "--check") != 0 && strcmp(argv[1], "--write") != 0)) {
        fprintf(stderr, "usage: spec_doc [--check|--write FILE]\n");
        return 2;
    }
    doc = slurp(argv[2]);
    if (!doc) {
        fprintf(stderr, "spec_doc: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    t = open_memstream(&table, &tlen);
    if (!t) {
        free(doc);
        return 1;
    }
    print_table(t);
    fclose(t);
    rc = check_or_write(argv[1], argv[2], doc, table, tlen);
    free(table);
    free(doc);
    return rc;
}
