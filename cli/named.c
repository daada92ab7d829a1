/* Commands on one named object: request and output (named.h). */
#include "cli/named.h"

#include "cli/args.h"

int
cli_named_call(struct cli_ctx *ctx, const struct cli_named *cmd, const char *name)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = xasprintf("%s/%s%s", cmd->collection, name, cmd->sub ?: "");
    _cleanup_free_ char *what = xasprintf("%s \"%s\"", cmd->kind, name);
    struct http_request req = {.method = cmd->method, .path = path, .timeout = cmd->timeout};

    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json && !cmd->never_json)
        cli_print_json(ctx, res.body);
    else
        cmd->print(ctx, name, res.body);
    return cmd->check ? cmd->check(ctx, name, res.body) : CLI_EXIT_OK;
}

int
cli_named_run(struct cli_ctx *ctx, int argc, char **argv, const struct cli_named *cmd)
{
    const char *name;

    int r = cli_simple_args(ctx, argc, argv, 1, &name, cmd->help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    return cli_named_call(ctx, cmd, name);
}
