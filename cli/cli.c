/* Shared command plumbing: API replies to messages and exit codes (cli.h). */
#include "cli/cli.h"

#include "cli/table.h"
#include "cli/yaml.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "cli/args.h"
#include "common/name.h"

/* Writes text from the master with control characters replaced, so a name or
 * message cannot move the cursor or recolour the operator's terminal. */
static void
cli_put_clean(FILE *f, const char *s)
{
    for (; *s; s++)
        fputc(iscntrl((unsigned char)*s) ? '?' : *s, f);
}

int
cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    fputs("vfleet: ", ctx->err);
    va_start(ap, fmt);
    vfprintf(ctx->err, fmt, ap);
    va_end(ap);
    fputc('\n', ctx->err);
    return CLI_EXIT_USAGE;
}

int
cli_option_error(struct cli_ctx *ctx, int c, const char *opt, const char *cmd_fmt, ...)
{
    va_list ap;
    fputs("vfleet: ", ctx->err);
    va_start(ap, cmd_fmt);
    vfprintf(ctx->err, cmd_fmt, ap);
    va_end(ap);
    fprintf(ctx->err, ": %s \"%s\"\n", c == ':' ? "option needs a value" : "unknown option", opt);
    return CLI_EXIT_USAGE;
}

int
cli_exit_for_status(long status)
{
    if (status >= 200 && status < 300)
        return CLI_EXIT_OK;
    switch (status) {
    case 400:
        return CLI_EXIT_USAGE;
    case 401:
    case 403:
        return CLI_EXIT_DENIED;
    case 404:
        return CLI_EXIT_NOT_FOUND;
    case 409:
    case 422:
        return CLI_EXIT_CONFLICT;
    default:
        return CLI_EXIT_FAILURE;
    }
}

const char *
cli_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

long long
cli_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return 0;
}

double
cli_num(const json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

void
cli_print_json(struct cli_ctx *ctx, const json_t *j)
{
    if (!j)
        return; /* an empty reply (204) has no JSON to show */
    if (ctx->format == CLI_FORMAT_YAML) {
        cli_yaml(ctx->out, j);
        return;
    }
    json_dumpf(j, ctx->out, JSON_INDENT(2));
    fputc('\n', ctx->out);
}

void
cli_print_table(struct cli_ctx *ctx, const struct table *t)
{
    if (ctx->format == CLI_FORMAT_CSV)
        table_print_csv(t, ctx->out);
    else
        table_print(t, ctx->out);
}

int
cli_format_parse(const char *s, enum cli_format *out)
{
    static const char *const names[] = {"table", "json", "yaml", "csv"};
    for (size_t i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (enum cli_format)i;
            return 0;
        }
    return -EINVAL;
}

/* Prints the scheduler's explanation of a failed placement: how many nodes
 * each filter rejected and why. An unknown shape is printed as JSON rather
 * than dropped, so nothing the master said is lost. */
static void
cli_print_placement(struct cli_ctx *ctx, const json_t *p)
{
    json_t *filters = json_object_get(p, "filters");
    size_t i;
    json_t *f;

    if (!json_is_array(filters)) {
        char *s = json_dumps(p, JSON_COMPACT);
        if (s) {
            fputs("  placement: ", ctx->err);
            cli_put_clean(ctx->err, s);
            fputc('\n', ctx->err);
            free(s);
        }
        return;
    }
    fprintf(ctx->err, "  placement: %lld nodes evaluated, %lld feasible\n",
            cli_int(p, "nodes_evaluated"), cli_int(p, "nodes_feasible"));
    json_array_foreach(filters, i, f)
    {
        fputs("    ", ctx->err);
        cli_put_clean(ctx->err, cli_str(f, "filter"));
        fprintf(ctx->err, ": rejected %lld", cli_int(f, "rejected"));
        if (*cli_str(f, "reason")) {
            fputs(" (", ctx->err);
            cli_put_clean(ctx->err, cli_str(f, "reason"));
            fputc(')', ctx->err);
        }
        fputc('\n', ctx->err);
    }
}

/* Reports a non-2xx reply. */
static void
cli_report_status(struct cli_ctx *ctx, const struct http_result *res, const char *what)
{
    json_t *e = json_object_get(res->body, "error");
    const char *code = cli_str(e, "code");
    const char *msg = cli_str(e, "message");
    const char *field = cli_str(e, "field");

    fputs("vfleet: ", ctx->err);
    if (*msg) {
        cli_put_clean(ctx->err, msg);
    } else if (res->status == 404) {
        fprintf(ctx->err, "%s not found", what);
    } else {
        fprintf(ctx->err, "%s: the master answered HTTP %ld", what, res->status);
    }
    if (*field) {
        fputs(" (field \"", ctx->err);
        cli_put_clean(ctx->err, field);
        fputs("\")", ctx->err);
    }
    if (*code) {
        fputs(" [", ctx->err);
        cli_put_clean(ctx->err, code);
        fputc(']', ctx->err);
    }
    fputc('\n', ctx->err);
    if (json_is_object(json_object_get(e, "placement")))
        cli_print_placement(ctx, json_object_get(e, "placement"));
}

int
cli_call(struct cli_ctx *ctx, const struct http_request *req, const char *what,
         struct http_result *res)
{
    struct http_request with_key = *req;
    if (!with_key.idempotency_key)
        with_key.idempotency_key = ctx->idempotency_key;
    int r = http_request_send(ctx->http, &with_key, res);
    if (r == -EHOSTUNREACH) {
        fprintf(ctx->err, "vfleet: master unreachable at %s: %s (after %u attempt%s)\n",
                http_client_base_url(ctx->http), res->error, res->attempts,
                res->attempts == 1 ? "" : "s");
        /* The POST may or may not have been applied. Running it again with
         * the same key is safe; running it with a new one could duplicate. */
        if (res->key[0])
            fprintf(ctx->err,
                    "vfleet: to retry safely, run the same command with --idempotency-key %s\n",
                    res->key);
        fprintf(ctx->err, "vfleet: set VFLEET_MASTER or --master to the master's URL\n");
        return CLI_EXIT_UNREACHABLE;
    }
    if (r == -EINVAL)
        return cli_usage_error(ctx, "bad request to %s: %s", http_client_base_url(ctx->http),
                               res->error);
    if (r == -EPERM) {
        fprintf(ctx->err,
                "vfleet: the master at %s is not the one trusted: %s\n"
                "vfleet: give --pin sha256//... (the pin vfleet-master logs at start) or --ca "
                "FILE\n",
                http_client_base_url(ctx->http), res->error);
        return CLI_EXIT_DENIED;
    }
    if (r < 0) {
        fprintf(ctx->err, "vfleet: %s %s: %s\n", req->method, req->path, res->error);
        return CLI_EXIT_FAILURE;
    }

    int code = cli_exit_for_status(res->status);
    if (code != CLI_EXIT_OK) {
        if (ctx->json && res->body)
            cli_print_json(ctx, res->body);
        cli_report_status(ctx, res, what);
        return code;
    }
    /* A reply asked for in another type (CSV) is the caller's to read. */
    if (res->raw_len > 0 && !res->body && !req->accept) {
        fprintf(ctx->err, "vfleet: %s %s: the master's reply is not JSON\n", req->method,
                req->path);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

int
cli_simple_args(struct cli_ctx *ctx, int argc, char **argv, int npos, const char **name,
                void (*help)(FILE *))
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *name = NULL;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            help(ctx->out);
            return ARGS_HELP;
        }
        cli_usage_error(ctx, "%s: unknown option \"%s\"", argv[0], argv[optind - 1]);
        return -EINVAL;
    }
    if (argc - optind != npos) {
        if (argc - optind < npos)
            cli_usage_error(ctx, "%s: missing NAME", argv[0]);
        else
            cli_usage_error(ctx, "%s: unexpected argument \"%s\"", argv[0], argv[optind + npos]);
        return -EINVAL;
    }
    if (npos == 1) {
        if (!name_is_valid(argv[optind])) {
            cli_usage_error(ctx, "%s: \"%s\" is not a valid name", argv[0], argv[optind]);
            return -EINVAL;
        }
        *name = argv[optind];
    }
    return 0;
}

int
cli_get_list(struct cli_ctx *ctx, const char *path, const char *key, json_t **items)
{
    _cleanup_(json_decrefp) json_t *all = json_array();
    _cleanup_free_ char *after = NULL;
    /* A master that keeps handing out cursors must not keep us forever. */
    for (unsigned page = 0; page < 100000; page++) {
        _cleanup_free_ char *p = NULL;
        _cleanup_(http_result_clear) struct http_result res = {0};

        if (after) {
            _cleanup_free_ char *e = http_escape(after);
            p = xasprintf("%s%cafter=%s", path, strchr(path, '?') ? '&' : '?', e);
        } else {
            p = xstrdup(path);
        }
        struct http_request req = {.method = "GET", .path = p};
        int code = cli_call(ctx, &req, key, &res);
        if (code != CLI_EXIT_OK)
            return code;
        json_t *arr = json_is_array(res.body) ? res.body : json_object_get(res.body, key);
        if (!json_is_array(arr)) {
            fprintf(ctx->err, "vfleet: GET %s: the reply has no \"%s\" list\n", p, key);
            return CLI_EXIT_FAILURE;
        }
        json_array_extend(all, arr);
        const char *next = json_string_value(json_object_get(res.body, "next"));
        /* An empty page or a cursor that does not move would loop forever. */
        if (!next || !*next || json_array_size(arr) == 0 || (after && !strcmp(after, next)))
            break;
        free(after);
        after = xstrdup(next);
    }
    *items = move_ptr(all);
    return CLI_EXIT_OK;
}

int
cli_list_show(struct cli_ctx *ctx, const char *path, const char *key,
              void (*print)(struct cli_ctx *ctx, const json_t *items))
{
    _cleanup_(json_decrefp) json_t *items = NULL;

    int code = cli_get_list(ctx, path, key, &items);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        _cleanup_(json_decrefp) json_t *wrap = json_pack("{s:O}", key, items);
        cli_print_json(ctx, wrap);
    } else {
        print(ctx, items);
    }
    return CLI_EXIT_OK;
}

char *
cli_labels(const json_t *obj)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    const char *k;
    json_t *v;
    bool first = true;

    if (!f) {
        fputs("out of memory\n", stderr);
        abort();
    }
    json_object_foreach((json_t *)obj, k, v)
    {
        fprintf(f, "%s%s=%s", first ? "" : ",", k, json_is_string(v) ? json_string_value(v) : "");
        first = false;
    }
    if (first)
        fputc('-', f);
    fclose(f);
    return out;
}
