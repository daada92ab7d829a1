/* `vfleet guest move` and `vfleet node drain`: start the operation, then
 * follow it to its end unless --no-wait (cmd_op.h). */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/cmd_op.h"

static void
jdecref(json_t **p)
{
    json_decref(*p);
}

/* POSTs body to path and follows the operation it answers with. */
static int
start_and_follow(struct cli_ctx *ctx, const char *path, json_t *body, const char *what, bool wait)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    struct http_request req = {.method = "POST", .path = path, .body = body};
    int code = cli_call(ctx, &req, what, &res);

    if (code != CLI_EXIT_OK)
        return code;
    const char *id = cli_str(res.body, "id");
    if (!wait) {
        if (ctx->json)
            cli_print_json(ctx, res.body);
        else
            fprintf(ctx->out, "operation %s started (vfleet op wait %s)\n", id, id);
        return CLI_EXIT_OK;
    }
    if (!ctx->json)
        fprintf(ctx->err, "operation %s\n", id);
    _cleanup_free_ char *copy = xstrdup(id);
    return cmd_op_follow(ctx, copy);
}

int
cmd_move_guest(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},
        {"live", no_argument, NULL, 'l'},
        {"renumber", no_argument, NULL, 'r'},
        {"constraint", required_argument, NULL, 'c'},
        {"no-wait", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    json_t *body = json_object(), *cons = json_object();
    _cleanup_free_ char *path = NULL, *what = NULL;
    bool wait = true;
    char err[256];
    int c, code = CLI_EXIT_USAGE;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_guest_help(ctx->out);
            code = CLI_EXIT_OK;
            goto out;
        case 't':
            if (!name_is_valid(optarg)) {
                cli_usage_error(ctx, "move: --to \"%s\" is not a node name", optarg);
                goto out;
            }
            json_object_set_new(body, "to", json_string(optarg));
            break;
        case 'l':
            json_object_set_new(body, "live", json_true());
            break;
        case 'r':
            json_object_set_new(body, "renumber", json_true());
            break;
        case 'c':
            if (args_kv_put(cons, optarg, "--constraint", err, sizeof(err)) < 0) {
                cli_usage_error(ctx, "move: %s", err);
                goto out;
            }
            break;
        case 'n':
            wait = false;
            break;
        default:
            cli_option_error(ctx, c, argv[optind - 1], "move");
            goto out;
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind])) {
        cli_usage_error(ctx, "move: expected one guest NAME");
        goto out;
    }
    if (json_object_size(cons))
        json_object_set(body, "constraints", cons);
    path = xasprintf("/v1/guests/%s/move", argv[optind]);
    what = xasprintf("guest \"%s\"", argv[optind]);
    code = start_and_follow(ctx, path, body, what, wait);
out:
    json_decref(body);
    json_decref(cons);
    return code;
}

int
cmd_move_drain(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'L'}, {"live", no_argument, NULL, 'l'},
        {"renumber", no_argument, NULL, 'r'},    {"no-wait", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    _cleanup_(jdecref) json_t *body = json_object();
    bool wait = true;
    uint64_t limit;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_node_help(ctx->out);
            return CLI_EXIT_OK;
        case 'L':
            if (args_count(optarg, &limit) < 0 || limit < 1 || limit > 32)
                return cli_usage_error(ctx, "drain: --limit wants 1..32");
            json_object_set_new(body, "limit", json_integer((json_int_t)limit));
            break;
        case 'l':
            json_object_set_new(body, "live", json_true());
            break;
        case 'r':
            json_object_set_new(body, "renumber", json_true());
            break;
        case 'n':
            wait = false;
            break;
        default:
            return cli_option_error(ctx, c, argv[optind - 1], "drain");
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "drain: expected one node NAME");
    _cleanup_free_ char *path = xasprintf("/v1/nodes/%s/drain", argv[optind]);
    _cleanup_free_ char *what = xasprintf("node \"%s\"", argv[optind]);
    return start_and_follow(ctx, path, body, what, wait);
}
