/* `vfleet pool ...`: IP address pools (cmd.h). */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/named.h"
#include "cli/table.h"
#include "common/netaddr.h"

void
cmd_pool_help(FILE *f)
{
    fputs("Usage: vfleet pool COMMAND\n"
          "\n"
          "  create NAME --cidr CIDR [--gateway ADDR] [--selector k=v]...\n"
          "                 an IPv4 or IPv6 pool; a selector limits it to nodes with\n"
          "                 those labels\n"
          "  ls             list pools and how full they are\n"
          "  rm NAME        delete a pool (refused while addresses are allocated)\n"
          "\n"
          "Every command takes --json to print the master's JSON.\n",
          f);
}

static int
pool_create(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"cidr", required_argument, NULL, 'c'},
        {"gateway", required_argument, NULL, 'g'},
        {"selector", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *what = NULL;
    json_t *body = json_object();
    char err[256];
    int c, code;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        struct netaddr a;
        switch (c) {
        case 'h':
            json_decref(body);
            cmd_pool_help(ctx->out);
            return CLI_EXIT_OK;
        case 'c':
            if (netaddr_parse(optarg, &a) < 0 || !strchr(optarg, '/')) {
                json_decref(body);
                return cli_usage_error(ctx, "pool create: --cidr \"%s\" is not ADDR/PREFIX",
                                       optarg);
            }
            json_object_set_new(body, "cidr", json_string(optarg));
            break;
        case 'g':
            if (netaddr_parse_host(optarg, &a) < 0) {
                json_decref(body);
                return cli_usage_error(ctx, "pool create: --gateway \"%s\" is not an address",
                                       optarg);
            }
            json_object_set_new(body, "gateway", json_string(optarg));
            break;
        case 's': {
            json_t *sel = json_object_get(body, "selector");
            if (!sel) {
                sel = json_object();
                json_object_set_new(body, "selector", sel);
            }
            if (args_kv_put(sel, optarg, "selector", err, sizeof(err)) < 0) {
                json_decref(body);
                return cli_usage_error(ctx, "pool create: %s", err);
            }
            break;
        }
        default:
            json_decref(body);
            return cli_option_error(ctx, c, argv[optind - 1], "pool create");
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind])) {
        json_decref(body);
        return cli_usage_error(ctx, "pool create: expected one pool NAME");
    }
    if (!json_object_get(body, "cidr")) {
        json_decref(body);
        return cli_usage_error(ctx, "pool create: --cidr is required");
    }
    const char *name = argv[optind];
    json_object_set_new(body, "name", json_string(name));
    what = xasprintf("pool \"%s\"", name);
    struct http_request req = {.method = "POST", .path = "/v1/pools", .body = body};
    code = cli_call(ctx, &req, what, &res);
    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json)
        cli_print_json(ctx, res.body);
    else
        fprintf(ctx->out, "pool %s created: %s, %lld addresses\n", name, cli_str(res.body, "cidr"),
                cli_int(res.body, "size"));
    return CLI_EXIT_OK;
}

static void
pool_ls_print(struct cli_ctx *ctx, const json_t *pools)
{
    static const char *const headers[] = {"NAME", "CIDR", "GATEWAY", "FAMILY", "USED", "SELECTOR"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *p;

    table_align_right(t, 4);
    json_array_foreach(pools, i, p)
    {
        _cleanup_free_ char *sel = cli_labels(json_object_get(p, "selector"));
        table_add(t, cli_str(p, "name"));
        table_add(t, cli_str(p, "cidr"));
        table_add(t, *cli_str(p, "gateway") ? cli_str(p, "gateway") : "-");
        json_t *fam = json_object_get(p, "family");
        if (json_is_integer(fam))
            table_addf(t, "ipv%lld", json_integer_value(fam));
        else
            table_add(t, cli_str(p, "family"));
        /* IPv6 pools can hold more addresses than a JSON integer; the master
         * may send the size as a number or a string. */
        json_t *size = json_object_get(p, "size");
        if (json_is_string(size))
            table_addf(t, "%lld/%s", cli_int(p, "allocated"), json_string_value(size));
        else
            table_addf(t, "%lld/%.0f", cli_int(p, "allocated"), json_number_value(size));
        table_add(t, sel);
    }
    if (table_rows(t) == 0)
        fputs("No pools.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static int
pool_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *unused;

    int r = cli_simple_args(ctx, argc, argv, 0, &unused, cmd_pool_help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    return cli_list_show(ctx, "/v1/pools", "pools", pool_ls_print);
}

static void
pool_rm_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    fprintf(ctx->out, "pool %s removed\n", name);
}

/* `rm NAME`: DELETE /v1/pools/NAME. */
static const struct cli_named pool_rm_cmd = {.method = "DELETE",
                                             .collection = "/v1/pools",
                                             .kind = "pool",
                                             .help = cmd_pool_help,
                                             .print = pool_rm_print};

int
cmd_pool_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_pool_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "create"))
        return pool_create(ctx, argc, argv);
    if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
        return pool_ls(ctx, argc, argv);
    if (!strcmp(argv[0], "rm"))
        return cli_named_run(ctx, argc, argv, &pool_rm_cmd);
    return cli_usage_error(ctx, "pool: unknown command \"%s\" (see vfleet pool --help)", argv[0]);
}
