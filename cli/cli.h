/* What every `vfleet` command shares: the context it runs in, the exit codes,
 * and the one table that turns an API reply into a message and an exit code.
 *
 * Commands are functions `cmd_X_run(ctx, argc, argv)` (cmd_node.h,
 * cmd_guest.h, cmd_pool.h) that return an exit code; main.c only parses the
 * global flags and dispatches. Commands write results to ctx->out and
 * diagnostics to ctx->err, never to stdout/stderr directly, so tests can run
 * them in-process. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "cli/http.h"
#include "common/mem.h"

#define CLI_DEFAULT_MASTER "https://127.0.0.1:7400"
#define CLI_DEFAULT_SOCKET "/run/vfleet-master/api.sock" /* root's way in on the master's host */

/* The exit codes. Scripts depend on them: never renumber. */
enum cli_exit {
    CLI_EXIT_OK = 0,          /* done */
    CLI_EXIT_FAILURE = 1,     /* anything else: a 5xx, a bad reply, a failed --wait */
    CLI_EXIT_USAGE = 2,       /* bad arguments, found locally or refused by the master (400) */
    CLI_EXIT_NOT_FOUND = 3,   /* the named node, guest or pool does not exist (404) */
    CLI_EXIT_CONFLICT = 4,    /* the request conflicts with the cluster's state (409, 422) */
    CLI_EXIT_UNREACHABLE = 5, /* no reply from the master: refused, unresolvable, timed out */
    CLI_EXIT_DENIED = 6,      /* no or a refused token (401), a role that may not (403), or
                                 a master that is not the one trusted (certificate, pin) */
};

/* How results are printed (--output). */
enum cli_format {
    CLI_FORMAT_TABLE = 0, /* aligned tables with humanized sizes */
    CLI_FORMAT_JSON,      /* the master's JSON (also --json) */
    CLI_FORMAT_YAML,      /* the master's JSON as YAML */
    CLI_FORMAT_CSV,       /* the tables as CSV */
};

/* The context a command runs in. Owned by the caller of the command. */
struct cli_ctx {
    http_client_t *http;         /* the master's API; borrowed */
    bool json;                   /* print the server's JSON (as JSON or YAML) instead of tables */
    enum cli_format format;      /* --output; json is set for JSON and YAML */
    FILE *out;                   /* results */
    FILE *err;                   /* diagnostics and errors */
    const char *idempotency_key; /* --idempotency-key for a POST that gives none, or NULL */
};

/* Prints "vfleet: <message>" to ctx->err and returns CLI_EXIT_USAGE. */
int cli_usage_error(struct cli_ctx *ctx, const char *fmt, ...) _printf_(2, 3);

/* The usage error for what getopt_long returned as c on an option it did not
 * take (':' an option without its value, anything else an unknown one), opt
 * being argv[optind - 1]: prints "vfleet: <cmd>: unknown option \"<opt>\""
 * (cmd from cmd_fmt) and returns CLI_EXIT_USAGE. */
int cli_option_error(struct cli_ctx *ctx, int c, const char *opt, const char *cmd_fmt, ...)
    _printf_(4, 5);

/* Sends a request, and on anything but a 2xx reply reports the failure on
 * ctx->err (the API's error code, message and field; the placement
 * explanation of a 422; the Idempotency-Key to reuse when a POST may not have
 * arrived) and returns its exit code. On a 2xx reply returns CLI_EXIT_OK with
 * res filled; the caller clears res in every case. `what` names the object
 * for messages ("guest \"web1\""). */
int cli_call(struct cli_ctx *ctx, const struct http_request *req, const char *what,
             struct http_result *res);

/* The exit code for an HTTP status (2xx → 0). */
int cli_exit_for_status(long status);

/* Prints a JSON document to ctx->out, indented, with a final newline (as
 * YAML with --output yaml). */
void cli_print_json(struct cli_ctx *ctx, const json_t *j);
/* Prints a table as the format asks (aligned, or CSV). */
struct table;
void cli_print_table(struct cli_ctx *ctx, const struct table *t);
/* Parses an --output value. Returns 0 or -EINVAL. */
int cli_format_parse(const char *s, enum cli_format *out);

/* Accessors that tolerate missing or mistyped members (a newer or older
 * master): a string or "", an integer or 0, a number (integer or real) or 0. */
const char *cli_str(const json_t *obj, const char *key);
long long cli_int(const json_t *obj, const char *key);
double cli_num(const json_t *obj, const char *key);

/* Parses the arguments of a verb that takes no options but --help and the
 * given number of positional arguments (0 or 1, a name). Prints help with
 * help(ctx->out) on --help and returns ARGS_HELP; on a usage error prints it
 * and returns -EINVAL. On success *name is argv's NAME or NULL. */
int cli_simple_args(struct cli_ctx *ctx, int argc, char **argv, int npos, const char **name,
                    void (*help)(FILE *));

/* GETs a list route (path may carry a query), following the optional "next"
 * cursor with "after=" until the master stops giving one, and returns every
 * item of the array member `key` in *items (owned by the caller). The reply
 * may also be a bare array. Returns an exit code. */
int cli_get_list(struct cli_ctx *ctx, const char *path, const char *key, json_t **items);

/* cli_get_list, then the items as the master's JSON ({"key": [...]}, with
 * --json or --output yaml) or as print(ctx, items) draws them. Returns an
 * exit code. */
int cli_list_show(struct cli_ctx *ctx, const char *path, const char *key,
                  void (*print)(struct cli_ctx *ctx, const json_t *items));

/* "k=v,k2=v2" from a JSON object of strings, "-" when empty. Caller frees. */
char *cli_labels(const json_t *obj);
