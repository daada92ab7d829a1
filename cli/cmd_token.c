/* `vfleet token ...`: API tokens (cmd.h). */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/named.h"
#include "cli/table.h"
#include "common/name.h"

void
cmd_token_help(FILE *f)
{
    fputs("Usage: vfleet token COMMAND\n"
          "\n"
          "  create --role R [--project P] [--ttl D] [--description TEXT]\n"
          "                 make an API token and print it (shown this once); R is\n"
          "                 admin, operator or tenant (a tenant needs --project); D is\n"
          "                 seconds or a number with s, m, h or d (\"12h\", \"30d\"),\n"
          "                 none = no expiry\n"
          "  ls             list tokens (id, role, project, expiry; never the secret)\n"
          "  rm ID          delete a token: it stops working at once\n"
          "\n"
          "Tokens are the admin's business: an operator or tenant token gets 403.\n"
          "Every command takes --json to print the master's JSON.\n",
          f);
}

static int
token_create(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"role", required_argument, NULL, 'r'}, {"project", required_argument, NULL, 'p'},
        {"ttl", required_argument, NULL, 't'},  {"description", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    _cleanup_(http_result_clear) struct http_result res = {0};
    json_t *body = json_object();
    int c, code;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *key = c == 'r'   ? "role"
                          : c == 'p' ? "project"
                          : c == 't' ? "ttl"
                          : c == 'd' ? "description"
                                     : NULL;
        if (c == 'h') {
            json_decref(body);
            cmd_token_help(ctx->out);
            return CLI_EXIT_OK;
        }
        if (!key) {
            json_decref(body);
            return cli_option_error(ctx, c, argv[optind - 1], "token create");
        }
        json_object_set_new(body, key, json_string(optarg));
    }
    if (optind != argc || !json_object_get(body, "role")) {
        json_decref(body);
        return cli_usage_error(ctx, "token create: --role is required, and nothing else");
    }
    struct http_request req = {.method = "POST", .path = "/v1/tokens", .body = body};
    code = cli_call(ctx, &req, "token", &res);
    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    /* The secret alone on stdout, so `T=$(vfleet token create ...)` works. */
    fprintf(ctx->out, "%s\n", cli_str(res.body, "token"));
    fprintf(ctx->err, "token %s (%s%s%s%s%s) created; it is shown only now\n",
            cli_str(res.body, "id"), cli_str(res.body, "role"),
            *cli_str(res.body, "project") ? ", project " : "", cli_str(res.body, "project"),
            *cli_str(res.body, "expires") ? ", expires " : "", cli_str(res.body, "expires"));
    return CLI_EXIT_OK;
}

static void
token_ls_print(struct cli_ctx *ctx, const json_t *tokens)
{
    static const char *const headers[] = {"ID",      "ROLE",    "PROJECT",
                                          "CREATED", "EXPIRES", "DESCRIPTION"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *k;

    json_array_foreach(tokens, i, k)
    {
        table_add(t, cli_str(k, "id"));
        table_add(t, cli_str(k, "role"));
        table_add(t, *cli_str(k, "project") ? cli_str(k, "project") : "-");
        table_add(t, cli_str(k, "created"));
        table_add(t, *cli_str(k, "expires") ? cli_str(k, "expires") : "never");
        table_add(t, *cli_str(k, "description") ? cli_str(k, "description") : "-");
    }
    if (table_rows(t) == 0)
        fputs("No tokens.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static int
token_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *unused;

    int r = cli_simple_args(ctx, argc, argv, 0, &unused, cmd_token_help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    return cli_list_show(ctx, "/v1/tokens", "tokens", token_ls_print);
}

static void
token_rm_print(struct cli_ctx *ctx, const char *id, const json_t *body)
{
    fprintf(ctx->out, "token %s removed\n", id);
}

/* `rm ID`: DELETE /v1/tokens/ID; the answer (204) has nothing to show, so
 * --json prints the sentence too. */
static const struct cli_named token_rm_cmd = {.method = "DELETE",
                                              .collection = "/v1/tokens",
                                              .kind = "token",
                                              .help = cmd_token_help,
                                              .print = token_rm_print,
                                              .never_json = true};

int
cmd_token_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_token_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "create"))
        return token_create(ctx, argc, argv);
    if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
        return token_ls(ctx, argc, argv);
    if (!strcmp(argv[0], "rm"))
        return cli_named_run(ctx, argc, argv, &token_rm_cmd);
    return cli_usage_error(ctx, "token: unknown command \"%s\" (see vfleet token --help)", argv[0]);
}
