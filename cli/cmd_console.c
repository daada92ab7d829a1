/* The console commands: `vfleet guest shell` (an interactive session over
 * the API's WebSocket, cli/shell.c) and `vfleet template ls`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/table.h"
#include "cli/shell.h"
#include "common/name.h"

#define SHELL_MAX_ARGV 256 /* arguments of the command */

/* `shell NAME [-t|-T] [-- CMD ARGS...]`: the "--" is found before getopt
 * runs, as for exec. Without -t/-T a terminal is used when stdin and stdout
 * are one (as ssh does). */
int
cmd_guest_shell(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"tty", no_argument, NULL, 't'},
        {"no-tty", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int dash = -1, c, tty = -1;

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            dash = i;
            break;
        }
    optind = 0;
    opterr = 0;
    int nopt = dash < 0 ? argc : dash;
    while ((c = getopt_long(nopt, argv, ":htT", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        case 't':
            tty = 1;
            break;
        case 'T':
            tty = 0;
            break;
        default:
            return cli_usage_error(ctx, "shell: %s \"%s\"",
                                   c == ':' ? "option needs a value" : "unknown option",
                                   argv[optind - 1]);
        }
    }
    if (optind + 1 != nopt || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "shell: expected one guest NAME (then -- CMD ARGS...)");
    if (dash >= 0 && dash + 1 >= argc)
        return cli_usage_error(ctx, "shell: expected a command after \"--\"");
    if (dash >= 0 && argc - dash - 1 > SHELL_MAX_ARGV)
        return cli_usage_error(ctx, "shell: at most %d arguments", SHELL_MAX_ARGV);
    if (tty < 0)
        tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (tty && !isatty(STDIN_FILENO))
        return cli_usage_error(ctx, "shell: --tty needs a terminal on stdin");
    if (ctx->json)
        return cli_usage_error(ctx, "shell: --json does not apply to an interactive session");
    return cli_shell_run(ctx, argv[optind], dash >= 0 ? argv + dash + 1 : NULL, tty == 1);
}

void
cmd_template_help(FILE *f)
{
    fputs("Usage: vfleet template COMMAND\n"
          "\n"
          "  ls                                   the templates the nodes have: which nodes,\n"
          "                                       the size of their files, their checksum\n"
          "\n"
          "A checksum column says \"differs\" when nodes hold different copies.\n",
          f);
}

static int
template_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    struct http_request req = {.method = "GET", .path = "/v1/templates"};
    const char *name = NULL;
    int r = cli_simple_args(ctx, argc, argv, 0, &name, cmd_template_help);

    if (r != 0)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    r = cli_call(ctx, &req, "templates", &res);
    if (r != CLI_EXIT_OK)
        return r;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    static const char *const head[] = {"TEMPLATE", "NODES", "SIZE", "CHECKSUM"};
    _cleanup_(table_destroy) table_t *t = table_new(4, head);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(res.body, "templates"), i, e)
    {
        json_t *nodes = json_object_get(e, "nodes"), *n;
        json_t *sums = json_object_get(e, "checksums");
        _cleanup_free_ char *list = NULL;
        size_t k, len = 0;
        char size[32] = "-";
        table_add(t, cli_str(e, "name"));
        json_array_foreach(nodes, k, n)
        {
            list = xrealloc(list, len + strlen(cli_str(n, "node")) + 2);
            len += (size_t)sprintf(list + len, "%s%s", k ? "," : "", cli_str(n, "node"));
            if (k == 0 && cli_int(n, "size") > 0)
                table_size((uint64_t)cli_int(n, "size"), size, sizeof(size));
        }
        if (list)
            table_add(t, list);
        else
            table_addf(t, "%lld", cli_int(e, "node_count"));
        table_add(t, size);
        const char *sum = json_string_value(json_array_get(sums, 0));
        if (json_array_size(sums) > 1)
            table_add(t, "differs");
        else
            table_addf(t, "%.19s", sum ? sum : "-");
    }
    cli_print_table(ctx, t);
    return CLI_EXIT_OK;
}

int
cmd_template_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_template_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
        return template_ls(ctx, argc, argv);
    return cli_usage_error(ctx, "template: unknown command \"%s\" (see vfleet template --help)",
                           argv[0]);
}
