#include "cli/yaml.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Whether s reads back as this very string when written plain. */
static bool
plain_ok(const char *s)
{
    static const char *const special[] = {"true", "false", "null",  "yes",  "no",   "on",  "off",
                                          "~",    "True",  "False", "Null", "NULL", "Yes", "No"};
    size_t n = strlen(s);

    if (n == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
        return false;
    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]))
        return false;
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        if (!strcmp(s, special[i]))
            return false;
    /* Anything that looks like a number would come back as one. */
    char *end;
    (void)strtod(s, &end);
    if (*end == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || (c == ':' && (p[1] == ' ' || !p[1])) ||
            (c == '#' && p > s && p[-1] == ' '))
            return false;
    }
    return true;
}

static void
scalar(FILE *f, const json_t *j)
{
    if (json_is_string(j)) {
        if (plain_ok(json_string_value(j))) {
            fputs(json_string_value(j), f);
        } else {
            char *q = json_dumps(j, JSON_ENCODE_ANY);
            fputs(q ? q : "\"\"", f);
            free(q);
        }
    } else {
        char *t = json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        fputs(t ? t : "null", f);
        free(t);
    }
}

static bool
is_block(const json_t *j)
{
    return (json_is_object(j) && json_object_size(j)) || (json_is_array(j) && json_array_size(j));
}

static void node(FILE *f, const json_t *j, int indent);

/* A value after "key:" or "-": on the same line when a scalar or empty. */
static void
value(FILE *f, const json_t *v, int indent, bool after_dash)
{
    if (!is_block(v)) {
        fputc(' ', f);
        if (json_is_object(v))
            fputs("{}", f);
        else if (json_is_array(v))
            fputs("[]", f);
        else
            scalar(f, v);
        fputc('\n', f);
    } else if (after_dash && json_is_object(v)) {
        /* "- key: v" on the dash's line, the other keys aligned under it. */
        fputc(' ', f);
        node(f, v, -(indent + 2));
    } else {
        fputc('\n', f);
        node(f, v, indent + 2);
    }
}

/* indent < 0: the first line continues the current one (after "- "). */
static void
node(FILE *f, const json_t *j, int indent)
{
    bool first_inline = indent < 0;
    int ind = first_inline ? -indent : indent;
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, v)
        {
            if (!first_inline)
                fprintf(f, "%*s", ind, "");
            first_inline = false;
            json_t *key = json_string(k);
            scalar(f, key);
            json_decref(key);
            fputc(':', f);
            value(f, v, ind, false);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            if (!first_inline)
                fprintf(f, "%*s", ind, "");
            first_inline = false;
            fputc('-', f);
            value(f, v, ind, true);
        }
    }
}

void
cli_yaml(FILE *f, const json_t *j)
{
    fputs("---\n", f);
    if (is_block(j))
        node(f, j, 0);
    else
        value(f, j, 0, false);
}
