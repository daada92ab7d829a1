/* The console commands: `vfleet guest shell` (an interactive session over
 * the API's WebSocket, cli/shell.c). */
#include <getopt.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
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
