/* `vfleet guest console NAME --log [--bytes N]`: the tail of a guest's
 * console, as its node keeps it in a bounded ring (GET
 * /v1/guests/NAME/console). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/http.h"
#include "common/mem.h"
#include "common/name.h"

int
cmd_guest_console(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"log", no_argument, NULL, 'l'},
        {"bytes", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
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
            return cli_usage_error(ctx, "console: %s \"%s\"",
                                   c == ':' ? "option needs a value" : "unknown option",
                                   argv[optind - 1]);
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "console: expected one guest NAME");
    if (!log)
        return cli_usage_error(ctx, "console: --log prints what the console holds (an "
                                    "interactive console is not there yet)");
    const char *name = argv[optind];
    path = bytes ? xasprintf("/v1/guests/%s/console?bytes=%ld", name, bytes)
                 : xasprintf("/v1/guests/%s/console", name);
    what = xasprintf("guest \"%s\"", name);
    struct http_request req = {.method = "GET", .path = path};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    const char *data = cli_str(res.body, "data");
    if (cli_int(res.body, "dropped") > 0)
        fprintf(ctx->err, "vfleet: %lld earlier bytes of the console were dropped\n",
                cli_int(res.body, "dropped"));
    fputs(data, ctx->out);
    return CLI_EXIT_OK;
}
