/* The console commands: `vfleet guest shell` and `vfleet guest console` (an
 * interactive session over the API's WebSocket, cli/shell.c, or the
 * console's tail), `vfleet guest rebuild` and `vfleet template ls`. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/named.h"
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
    int dash = args_dash(argc, argv), c, tty = -1;
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
            return cli_option_error(ctx, c, argv[optind - 1], "shell");
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
          "                                       the size of their files, their checksum,\n"
          "                                       and the master's library copy\n",
          f);
    cmd_template_push_help(f);
    fputs("\n"
          "A checksum column says \"differs\" when nodes hold different copies. A guest\n"
          "created from a template its node lacks waits while the library sends it there.\n",
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
    static const char *const head[] = {"TEMPLATE", "NODES", "SIZE", "CHECKSUM", "LIBRARY"};
    _cleanup_(table_destroy) table_t *t = table_new(5, head);
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
        const char *lib = cli_str(json_object_get(e, "library"), "sha256");
        table_addf(t, "%s%.12s", lib[0] ? "sha256:" : "-", lib);
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
    if (!strcmp(argv[0], "push"))
        return cmd_template_push(ctx, argc, argv);
    if (!strcmp(argv[0], "rm"))
        return cmd_template_rm(ctx, argc, argv);
    return cli_usage_error(ctx, "template: unknown command \"%s\" (see vfleet template --help)",
                           argv[0]);
}

/* One POST of a guest; the reply's state in *state (copied, n bytes). */
static int
guest_post(struct cli_ctx *ctx, const char *name, const char *op, json_t *body, char *state,
           size_t n)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = xasprintf("/v1/guests/%s/%s", name, op);
    _cleanup_free_ char *what = xasprintf("guest \"%s\"", name);
    struct http_request req = {.method = "POST", .path = path, .body = body, .timeout = 200};
    int r = cli_call(ctx, &req, what, &res);

    if (r == CLI_EXIT_OK && state)
        snprintf(state, n, "%s", cli_str(res.body, "state"));
    if (r == CLI_EXIT_OK && ctx->json && !strcmp(op, "rebuild"))
        cli_print_json(ctx, res.body);
    return r;
}

/* `rebuild NAME [--template T]`: a running guest is stopped first and
 * started again after, each step waited for. */
int
cmd_guest_rebuild(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"template", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(http_result_clear) struct http_result res = {0};
    const char *tmpl = NULL;
    char state[32] = "";
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        }
        if (c != 'T')
            return cli_option_error(ctx, c, argv[optind - 1], "rebuild");
        if (!name_is_valid(optarg))
            return cli_usage_error(ctx, "rebuild: --template \"%s\": not a name", optarg);
        tmpl = optarg;
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "rebuild: expected one guest NAME");
    const char *name = argv[optind];
    _cleanup_free_ char *path = xasprintf("/v1/guests/%s", name);
    _cleanup_free_ char *what = xasprintf("guest \"%s\"", name);
    struct http_request get = {.method = "GET", .path = path};
    int r = cli_call(ctx, &get, what, &res);
    if (r != CLI_EXIT_OK)
        return r;
    bool was_running = !strcmp(cli_str(res.body, "desired"), "running");
    if (was_running) {
        r = guest_post(ctx, name, "stop?wait=stopped&timeout=120", NULL, state, sizeof(state));
        if (r != CLI_EXIT_OK)
            return r;
        if (strcmp(state, "stopped") != 0) {
            fprintf(ctx->err, "vfleet: guest \"%s\" did not stop (%s)\n", name, state);
            return CLI_EXIT_FAILURE;
        }
    }
    _cleanup_(json_decrefp) json_t *body =
        tmpl ? json_pack("{s:s}", "template", tmpl) : json_object();
    r = guest_post(ctx, name, "rebuild", body, NULL, 0);
    if (r != CLI_EXIT_OK)
        return r;
    if (!ctx->json)
        fprintf(ctx->out, "guest %s rebuilt from %s\n", name,
                tmpl ? tmpl : cli_str(res.body, "template"));
    if (!was_running)
        return CLI_EXIT_OK;
    r = guest_post(ctx, name, "start?wait=running&timeout=120", NULL, state, sizeof(state));
    if (r == CLI_EXIT_OK && !ctx->json)
        fprintf(ctx->out, "guest %s %s\n", name, state);
    return r == CLI_EXIT_OK && strcmp(state, "running") != 0 ? CLI_EXIT_FAILURE : r;
}

/* `console NAME --log`: the tail, and how much of it the ring dropped. */
static void
console_log_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    const char *data = cli_str(body, "data");
    if (cli_int(body, "dropped") > 0)
        fprintf(ctx->err, "vfleet: %lld earlier bytes of the console were dropped\n",
                cli_int(body, "dropped"));
    fputs(data, ctx->out);
}

/* `console NAME`: the guest's console followed until ^] (or a signal) over
 * the shell WebSocket (cli/shell.c); `console NAME --log [--bytes N]`: the
 * tail its node keeps in a bounded ring, printed (GET
 * /v1/guests/NAME/console). */
int
cmd_guest_console(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"log", no_argument, NULL, 'l'},
        {"bytes", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool log = false;
    long bytes = 0;
    char *end;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        case 'l':
            log = true;
            break;
        case 'b':
            bytes = strtol(optarg, &end, 10);
            if (*end || bytes < 1 || bytes > (1L << 20))
                return cli_usage_error(ctx, "console: --bytes \"%s\": 1 to 1048576", optarg);
            break;
        default:
            return cli_option_error(ctx, c, argv[optind - 1], "console");
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "console: expected one guest NAME");
    const char *name = argv[optind];
    if (!log) {
        if (bytes)
            return cli_usage_error(ctx, "console: --bytes goes with --log");
        if (ctx->json)
            return cli_usage_error(ctx, "console: --json goes with --log (a followed console "
                                        "is a terminal's stream)");
        return cli_console_run(ctx, name);
    }
    _cleanup_free_ char *sub = bytes ? xasprintf("/console?bytes=%ld", bytes) : NULL;
    struct cli_named cmd = {.method = "GET",
                            .collection = "/v1/guests",
                            .sub = sub ? sub : "/console",
                            .kind = "guest",
                            .help = cmd_guest_help,
                            .print = console_log_print};
    return cli_named_call(ctx, &cmd, name);
}
