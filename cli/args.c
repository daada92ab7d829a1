/* Shared argument parsing and the guest create/set body mapping (args.h). */
#include "cli/args.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/units.h"
#include "proto/spec.h"
#include "cli/args_spec.h"

/* The limit flags: one per row of SPEC_LIMIT_FIELDS (proto/spec_fields.h),
 * which gives the flag, the JSON key, the unit and the valid range. The CLI
 * keeps its own copy of the table because it does not link proto. */
static const struct spec_limit_desc args_limits[SPEC_N_LIMITS] = {
    SPEC_LIMIT_FIELDS(SPEC_LIMIT_DESC_INIT_)};

/* getopt_long values: limits take ARGS_OPT_LIMIT + their row number. */
enum {
    ARGS_OPT_TEMPLATE = 0x100,
    ARGS_OPT_IP,
    ARGS_OPT_LABEL,
    ARGS_OPT_UNLABEL,
    ARGS_OPT_CONSTRAINT,
    ARGS_OPT_GROUP,
    ARGS_OPT_NODE,
    ARGS_OPT_PROJECT,
    ARGS_OPT_ALGORITHM,
    ARGS_OPT_WAIT,
    ARGS_OPT_TIMEOUT,
    ARGS_OPT_KEY,
    ARGS_OPT_FLAGS,
    ARGS_OPT_LIMIT = 0x200,
};

#define ARGS_LIMIT_OPTION_(name, type, unit, flag, ...)                                            \
    {flag, required_argument, NULL, ARGS_OPT_LIMIT + SPEC_LIMIT_##name},
#define ARGS_LIMIT_OPTIONS                                                                         \
    SPEC_LIMIT_FIELDS(ARGS_LIMIT_OPTION_)                                                          \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

static const struct option args_create_opts[] = {
    ARGS_LIMIT_OPTIONS,
    {"template", required_argument, NULL, ARGS_OPT_TEMPLATE},
    {"ip", required_argument, NULL, ARGS_OPT_IP},
    {"label", required_argument, NULL, ARGS_OPT_LABEL},
    {"constraint", required_argument, NULL, ARGS_OPT_CONSTRAINT},
    {"group", required_argument, NULL, ARGS_OPT_GROUP},
    {"node", required_argument, NULL, ARGS_OPT_NODE},
    {"project", required_argument, NULL, ARGS_OPT_PROJECT},
    {"algorithm", required_argument, NULL, ARGS_OPT_ALGORITHM},
    {"wait", no_argument, NULL, ARGS_OPT_WAIT},
    {"timeout", required_argument, NULL, ARGS_OPT_TIMEOUT},
    {"idempotency-key", required_argument, NULL, ARGS_OPT_KEY},
    ARGS_SPEC_OPTIONS,
    {NULL, 0, NULL, 0},
};

static const struct option args_set_opts[] = {
    ARGS_LIMIT_OPTIONS,
    {"label", required_argument, NULL, ARGS_OPT_LABEL},
    {"unlabel", required_argument, NULL, ARGS_OPT_UNLABEL},
    {"flags", required_argument, NULL, ARGS_OPT_FLAGS},
    ARGS_SPEC_OPTIONS,
    {NULL, 0, NULL, 0},
};

static _printf_(3, 4) int args_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int
args_size(const char *s, uint64_t *out)
{
    uint64_t v;
    int r = units_parse_size(s, &v);
    if (r < 0)
        return r;
    if (v > INT64_MAX)
        return -ERANGE;
    *out = v;
    return 0;
}

int
args_count(const char *s, uint64_t *out)
{
    uint64_t v;
    int r = units_parse_u64(s, &v);
    if (r < 0)
        return r;
    if (v > INT64_MAX)
        return -ERANGE;
    *out = v;
    return 0;
}

int
args_cpu(const char *s, double *cores)
{
    char *end = NULL;

    /* strtod would take "inf", "0x1p3" and leading spaces; a plain decimal
     * is all an operator means here. */
    if (!*s || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -EINVAL;
    if (v <= 0 || v > ARGS_MAX_CPU)
        return -ERANGE;
    *cores = v;
    return 0;
}

int
args_timeout(const char *s, long *out)
{
    uint64_t v;
    int r = units_parse_u64(s, &v);
    if (r < 0)
        return r;
    if (v < 1 || v > ARGS_MAX_TIMEOUT)
        return -ERANGE;
    *out = (long)v;
    return 0;
}

int
args_dash(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--"))
            return i;
    return -1;
}

int
args_idempotency_key(const char *s)
{
    /* The master stores keys; bound them and keep them printable so one can
     * be read back from a log and typed again. */
    if (!*s || strlen(s) > HTTP_UUID_LEN)
        return -EINVAL;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.:", *p))
            return -EINVAL;
    return 0;
}

int
args_kv_put(json_t *obj, const char *arg, const char *what, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    char key[NAME_MAX_LEN + 1];

    if (!eq)
        return args_fail(err, errlen, "--%s \"%s\": expected KEY=VALUE", what, arg);
    if ((size_t)(eq - arg) > NAME_MAX_LEN)
        return args_fail(err, errlen, "--%s \"%s\": key longer than %d characters", what, arg,
                         NAME_MAX_LEN);
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    if (!name_is_valid(key))
        return args_fail(err, errlen,
                         "--%s \"%s\": key must be 1-63 of a-z, 0-9 and '-', not starting or "
                         "ending with '-'",
                         what, arg);
    const char *value = eq + 1;
    if (strlen(value) > SPEC_LABEL_VAL_MAX)
        return args_fail(err, errlen, "--%s %s: value longer than %d bytes", what, key,
                         SPEC_LABEL_VAL_MAX);
    for (const char *p = value; *p; p++)
        if (iscntrl((unsigned char)*p))
            return args_fail(err, errlen, "--%s %s: value has a control character", what, key);
    json_t *v = json_string(value);
    if (!v)
        return args_fail(err, errlen, "--%s %s: value is not valid UTF-8", what, key);
    json_object_set_new(obj, key, v);
    return 0;
}

/* Reads --cpu / --cpu-burst: cores above 0 that come to at least one
 * millicore and at most the row's max, as a JSON number of cores. */
static int
args_cores_put(json_t *limits, const struct spec_limit_desc *l, const char *s, char *err,
               size_t errlen)
{
    double cores = 0;

    if (args_cpu(s, &cores) < 0 || cores * 1000.0 > (double)l->max || cores * 1000.0 < 0.5)
        return args_fail(err, errlen, "--%s \"%s\": CPU cores, a number from 0.001 up to %llu",
                         l->flag, s, (unsigned long long)(l->max / 1000));
    json_object_set_new(limits, l->key, json_real(cores));
    return 0;
}

/* Why a size or rate was refused with -ERANGE: too large, or, with a zero
 * whole part ("0.0000001K"), not zero but less than one unit (`small`). */
static const char *
args_range_reason(const char *s, const char *small)
{
    return strtod(s, NULL) < 1.0 ? small : "too large";
}

/* Reads one limit flag's value into limits, by the row's unit and range. */
static int
args_limit_put(json_t *limits, const struct spec_limit_desc *l, const char *s, char *err,
               size_t errlen)
{
    uint64_t v = 0;
    int r;

    switch (l->unit) {
    case SPEC_UNIT_BYTES:
        r = args_size(s, &v);
        if (r < 0)
            return args_fail(
                err, errlen, "--%s \"%s\": %s (a size in bytes, or with K, M, G, T: \"256M\")",
                l->flag, s,
                r == -ERANGE ? args_range_reason(s, "less than one byte") : "not a size");
        break;
    case SPEC_UNIT_COUNT:
        r = args_count(s, &v);
        if (r < 0)
            return args_fail(err, errlen, "--%s \"%s\": %s", l->flag, s,
                             r == -ERANGE ? "too large" : "not a whole number");
        break;
    case SPEC_UNIT_WEIGHT:
        r = args_count(s, &v);
        if (r < 0 || v < 1 || v > l->max)
            return args_fail(err, errlen, "--%s \"%s\": a weight is 1 to %llu", l->flag, s,
                             (unsigned long long)l->max);
        break;
    case SPEC_UNIT_RATE:
        r = units_parse_rate(s, &v);
        if (r < 0 || v > INT64_MAX)
            return args_fail(err, errlen,
                             "--%s \"%s\": %s (bits per second, or \"10mbit\", \"1gbit\", "
                             "\"5mbps\")",
                             l->flag, s,
                             r == -ERANGE || v > INT64_MAX
                                 ? args_range_reason(s, "less than one bit/s")
                                 : "not a rate");
        break;
    case SPEC_UNIT_MCORES:
        return args_cores_put(limits, l, s, err, errlen);
    }
    if (v > l->max)
        return args_fail(err, errlen, "--%s \"%s\": at most %llu", l->flag, s,
                         (unsigned long long)l->max);
    json_object_set_new(limits, l->key, json_integer((json_int_t)v));
    return 0;
}

void
args_limits_help(FILE *f)
{
    static const char *const metavar[SPEC_N_UNITS] = {
#define ARGS_METAVAR_(unit, metavar, ...) [SPEC_UNIT_##unit] = metavar,
        SPEC_UNIT_KINDS(ARGS_METAVAR_)
#undef ARGS_METAVAR_
    };

    for (size_t i = 0; i < SPEC_N_LIMITS; i++) {
        const struct spec_limit_desc *l = &args_limits[i];
        char opt[32];
        snprintf(opt, sizeof(opt), "--%s %s", l->flag, metavar[l->unit]);
        fprintf(f, "  %-22s%s\n", opt, l->help);
    }
    fprintf(f,
            "  SIZE: 4096, 256M, 1.5G (bytes)  RATE: 10mbit, 1gbit (bits/s)  CORES: 0.5, 2\n"
            "  weights: 1 to %d; a SIZE, RATE or N of 0 sets no limit\n",
            SPEC_MAX_WEIGHT);
}

/* Reports getopt's complaint about argv[optind - 1]. */
static int
args_bad_option(int argc, char **argv, int c, char *err, size_t errlen)
{
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':')
        return args_fail(err, errlen, "%s: option \"%s\" needs a value", argv[0], arg);
    return args_fail(err, errlen, "%s: unknown option \"%s\"", argv[0], arg);
}

/* Takes the one positional NAME left after option parsing. */
static int
args_take_name(int argc, char **argv, char *name, char *err, size_t errlen)
{
    if (optind >= argc)
        return args_fail(err, errlen, "%s: missing NAME", argv[0]);
    if (optind + 1 < argc)
        return args_fail(err, errlen, "%s: unexpected argument \"%s\"", argv[0], argv[optind + 1]);
    if (!name_is_valid(argv[optind]))
        return args_fail(err, errlen,
                         "%s: \"%s\" is not a valid name (1-63 of a-z, 0-9 and '-', not "
                         "starting or ending with '-')",
                         argv[0], argv[optind]);
    snprintf(name, NAME_MAX_LEN + 1, "%s", argv[optind]);
    return 0;
}

static json_t *
args_child(json_t *parent, const char *key, json_t *(*make)(void))
{
    json_t *c = json_object_get(parent, key);
    if (!c) {
        c = make();
        json_object_set_new(parent, key, c);
    }
    return c;
}

/* An option of the spec-field table (args_spec.h) or a limit. */
static int
args_spec_or_limit(json_t *body, int c, const char *arg, struct args_spec_files *files, char *err,
                   size_t errlen)
{
    if (c >= ARGS_SPEC_BASE && c < ARGS_SPEC_END)
        return args_spec_put(body, c, arg, files, err, errlen);
    assert(c >= ARGS_OPT_LIMIT && c < ARGS_OPT_LIMIT + SPEC_N_LIMITS);
    return args_limit_put(args_child(body, "limits", json_object), &args_limits[c - ARGS_OPT_LIMIT],
                          arg, err, errlen);
}

int
args_guest_create(int argc, char **argv, struct args_create *out, char *err, size_t errlen)
{
    _cleanup_(json_decrefp) json_t *body = json_object();
    const char *template_name = NULL;
    int c, r;

    memset(out, 0, sizeof(*out));
    optind = 0; /* GNU: start over, the previous command's state is stale */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", args_create_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            return ARGS_HELP;
        case ARGS_OPT_TEMPLATE:
            if (!name_is_valid(optarg))
                return args_fail(err, errlen, "--template \"%s\": not a valid template name",
                                 optarg);
            template_name = optarg;
            break;
        case ARGS_OPT_IP: {
            struct netaddr a;
            if (strcmp(optarg, "auto") != 0 && netaddr_parse_host(optarg, &a) < 0)
                return args_fail(err, errlen, "--ip \"%s\": not \"auto\" or an IP address", optarg);
            json_t *ips = args_child(body, "ips", json_array);
            if (json_array_size(ips) >= SPEC_MAX_ADDRS)
                return args_fail(err, errlen, "--ip: at most %d addresses", SPEC_MAX_ADDRS);
            json_array_append_new(ips, json_string(optarg));
            break;
        }
        case ARGS_OPT_LABEL:
            if (json_object_size(json_object_get(body, "labels")) >= SPEC_MAX_LABELS)
                return args_fail(err, errlen, "--label: at most %d labels", SPEC_MAX_LABELS);
            r = args_kv_put(args_child(body, "labels", json_object), optarg, "label", err, errlen);
            if (r < 0)
                return r;
            break;
        case ARGS_OPT_CONSTRAINT:
            if (json_object_size(json_object_get(body, "constraints")) >= SPEC_MAX_LABELS)
                return args_fail(err, errlen, "--constraint: at most %d constraints",
                                 SPEC_MAX_LABELS);
            r = args_kv_put(args_child(body, "constraints", json_object), optarg, "constraint", err,
                            errlen);
            if (r < 0)
                return r;
            break;
        case ARGS_OPT_GROUP:
        case ARGS_OPT_NODE:
        case ARGS_OPT_PROJECT: {
            const char *key = c == ARGS_OPT_GROUP  ? "group"
                              : c == ARGS_OPT_NODE ? "node"
                                                   : "project";
            if (!name_is_valid(optarg))
                return args_fail(err, errlen, "--%s \"%s\": not a valid %s name", key, optarg, key);
            json_object_set_new(body, key, json_string(optarg));
            break;
        }
        case ARGS_OPT_ALGORITHM:
            if (strcmp(optarg, "spread") != 0 && strcmp(optarg, "binpack") != 0)
                return args_fail(err, errlen, "--algorithm \"%s\": spread or binpack", optarg);
            json_object_set_new(body, "algorithm", json_string(optarg));
            break;
        case ARGS_OPT_WAIT:
            out->wait = true;
            break;
        case ARGS_OPT_TIMEOUT:
            if (args_timeout(optarg, &out->timeout) < 0)
                return args_fail(err, errlen, "--timeout \"%s\": seconds, 1 to %d", optarg,
                                 ARGS_MAX_TIMEOUT);
            break;
        case ARGS_OPT_KEY:
            if (args_idempotency_key(optarg) < 0)
                return args_fail(
                    err, errlen,
                    "--idempotency-key: 1 to %d letters, digits and - _ . :", HTTP_UUID_LEN);
            snprintf(out->idempotency_key, sizeof(out->idempotency_key), "%s", optarg);
            break;
        case '?':
        case ':':
            return args_bad_option(argc, argv, c, err, errlen);
        default:
            r = args_spec_or_limit(body, c, optarg, &out->files, err, errlen);
            if (r < 0)
                return r;
            break;
        }
    }
    r = args_take_name(argc, argv, out->name, err, errlen);
    if (r < 0)
        return r;
    if (!template_name)
        return args_fail(err, errlen, "create: --template is required");
    if (out->timeout && !out->wait)
        return args_fail(err, errlen, "create: --timeout only applies with --wait");
    json_object_set_new(body, "name", json_string(out->name));
    json_object_set_new(body, "template", json_string(template_name));
    out->body = move_ptr(body);
    return 0;
}

void
args_create_clear(struct args_create *a)
{
    json_decref(a->body);
    memset(a, 0, sizeof(*a));
}

/* Parses --flags "private,lock" or "none" into a JSON array. */
static int
args_flags(const char *s, json_t **out, char *err, size_t errlen)
{
    _cleanup_(json_decrefp) json_t *arr = json_array();
    _cleanup_free_ char *copy = xstrdup(s);
    char *save = NULL;

    if (strcmp(s, "none") != 0) {
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (strcmp(tok, "private") != 0 && strcmp(tok, "lock") != 0 &&
                strcmp(tok, "privileged") != 0 && strcmp(tok, "nesting") != 0)
                return args_fail(err, errlen,
                                 "--flags \"%s\": flags are private, lock, privileged (admin) and "
                                 "nesting (admin)",
                                 tok);
            json_array_append_new(arr, json_string(tok));
        }
        if (json_array_size(arr) == 0)
            return args_fail(err, errlen, "--flags: a list such as private,lock or none");
    }
    *out = move_ptr(arr);
    return 0;
}

int
args_guest_set(int argc, char **argv, struct args_set *out, char *err, size_t errlen)
{
    _cleanup_(json_decrefp) json_t *body = json_object();
    int c, r;

    memset(out, 0, sizeof(*out));
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", args_set_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            return ARGS_HELP;
        case ARGS_OPT_LABEL: {
            json_t *labels = args_child(body, "labels", json_object);
            if (json_object_size(labels) >= SPEC_MAX_LABELS)
                return args_fail(err, errlen, "--label: at most %d labels", SPEC_MAX_LABELS);
            r = args_kv_put(labels, optarg, "label", err, errlen);
            if (r < 0)
                return r;
            break;
        }
        case ARGS_OPT_UNLABEL: {
            json_t *labels = args_child(body, "labels", json_object);
            if (!name_is_valid(optarg))
                return args_fail(err, errlen, "--unlabel \"%s\": not a label key", optarg);
            if (json_object_size(labels) >= SPEC_MAX_LABELS)
                return args_fail(err, errlen, "--unlabel: at most %d labels", SPEC_MAX_LABELS);
            /* JSON merge patch (RFC 7396): null removes the member. */
            json_object_set_new(labels, optarg, json_null());
            break;
        }
        case ARGS_OPT_FLAGS: {
            json_t *flags = NULL;
            r = args_flags(optarg, &flags, err, errlen);
            if (r < 0)
                return r;
            json_object_set_new(body, "flags", flags);
            break;
        }
        case '?':
        case ':':
            return args_bad_option(argc, argv, c, err, errlen);
        default:
            r = args_spec_or_limit(body, c, optarg, &out->files, err, errlen);
            if (r < 0)
                return r;
            break;
        }
    }
    r = args_take_name(argc, argv, out->name, err, errlen);
    if (r < 0)
        return r;
    if (json_object_size(body) == 0 && !out->files.password && !out->files.n_keys)
        return args_fail(err, errlen,
                         "set: nothing to change (give a limit, --label, "
                         "--unlabel or --flags)");
    out->body = move_ptr(body);
    return 0;
}

void
args_set_clear(struct args_set *a)
{
    json_decref(a->body);
    memset(a, 0, sizeof(*a));
}
