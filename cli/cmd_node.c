/* `vfleet node ...`: the node registry (cmd.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/cmd_op.h"
#include "cli/named.h"
#include "cli/table.h"

void
cmd_node_help(FILE *f)
{
    fputs("Usage: vfleet node COMMAND\n"
          "\n"
          "  ls             list nodes: state, guests, allocated/capacity\n"
          "  show NAME      one node in full\n"
          "  cordon NAME    stop placing new guests on NAME (its guests keep running)\n"
          "  uncordon NAME  allow placements on NAME again\n"
          "  routes NAME    addresses routed to the node's guests: address, interface, guest\n"
          "  drain NAME [--limit N] [--live] [--renumber] [--no-wait]\n"
          "                 cordon NAME and move every guest off it, N at a time (default 2);\n"
          "                 a guest that cannot move is reported and stays\n"
          "  orphans NAME   guests the node has that the master does not manage, with the\n"
          "                 addresses held for them (resolve with `vfleet guest adopt` or\n"
          "                 `vfleet guest destroy-orphan`)\n"
          "  token create [--name NAME] [--ttl 1h]\n"
          "                 a single-use join token (shown once); with --name, only NAME\n"
          "                 may join with it; --ttl: seconds, or with s, m, h or d (to 30d)\n"
          "  token ls       join tokens made: id, node, state, expiry (never the secret)\n"
          "  revoke NAME    refuse NAME's key from now on and shut its connections;\n"
          "                 it joins again with a new token\n"
          "\n"
          "Every command takes --json to print the master's JSON.\n",
          f);
}

/* "allocated/capacity" for one resource of a node. */
/* "allocated/usable", usable being what placement counts against: the
 * capacity times the overcommit ratio, which is shown when it is not 1
 * ("7.5/8 (2x4)": 7.5 cores placed on 2 cores overcommitted 4 times). A
 * master without "usable" (older) gives allocated/capacity. */
static void
node_add_usage(table_t *t, const json_t *node, const char *key, bool size)
{
    const json_t *alloc = json_object_get(node, "allocated");
    const json_t *cap = json_object_get(node, "capacity");
    const json_t *usable = json_object_get(node, "usable");
    double ratio = cli_num(json_object_get(node, "overcommit"), key);
    char a[32], u[32], c[32], over[48] = "";

    if (!usable)
        usable = cap;
    if (size) {
        table_size((uint64_t)cli_int(alloc, key), a, sizeof(a));
        table_size((uint64_t)cli_int(usable, key), u, sizeof(u));
        table_size((uint64_t)cli_int(cap, key), c, sizeof(c));
    } else {
        snprintf(a, sizeof(a), "%g", cli_num(alloc, key));
        snprintf(u, sizeof(u), "%g", cli_num(usable, key));
        snprintf(c, sizeof(c), "%g", cli_num(cap, key));
    }
    if (ratio > 1)
        snprintf(over, sizeof(over), " (%sx%g)", c, ratio);
    table_addf(t, "%s/%s%s", a, u, over);
}

/* The node's state, ",cordoned" when it is, and ",leftovers:N" when it
 * holds guests' leftovers (`vfleet-node leftovers` lists them there). */
static const char *
node_state(const json_t *node, char *buf, size_t n)
{
    const json_t *lo = json_object_get(node, "leftovers");
    char left[40] = "";

    if (json_is_integer(lo) && json_integer_value(lo) > 0)
        snprintf(left, sizeof(left), ",leftovers:%lld", (long long)json_integer_value(lo));
    snprintf(buf, n, "%s%s%s", cli_str(node, "state"),
             json_is_true(json_object_get(node, "cordoned")) ? ",cordoned" : "", left);
    return buf;
}

static void
node_ls_print(struct cli_ctx *ctx, const json_t *nodes)
{
    static const char *const headers[] = {"NAME",   "STATE", "GUESTS", "CPUS",
                                          "MEMORY", "DISK",  "LABELS"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *n;

    table_align_right(t, 2);
    table_align_right(t, 3);
    table_align_right(t, 4);
    table_align_right(t, 5);
    json_array_foreach(nodes, i, n)
    {
        char buf[64];
        _cleanup_free_ char *labels = cli_labels(json_object_get(n, "labels"));
        long long max = cli_int(json_object_get(n, "capacity"), "max_guests");

        table_add(t, cli_str(n, "name"));
        table_add(t, node_state(n, buf, sizeof(buf)));
        if (max > 0)
            table_addf(t, "%lld/%lld", cli_int(n, "guests"), max);
        else
            table_addf(t, "%lld", cli_int(n, "guests"));
        node_add_usage(t, n, "cpus", false);
        node_add_usage(t, n, "memory", true);
        node_add_usage(t, n, "disk", true);
        table_add(t, labels);
    }
    if (table_rows(t) == 0)
        fputs("No nodes.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static int
node_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *unused;

    int r = cli_simple_args(ctx, argc, argv, 0, &unused, cmd_node_help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    return cli_list_show(ctx, "/v1/nodes", "nodes", node_ls_print);
}

/* `show NAME`: one node as "key: value" lines. */
static void
node_show_print(struct cli_ctx *ctx, const char *name, const json_t *n)
{
    _cleanup_(table_destroy) table_t *t = table_new(2, NULL);
    _cleanup_free_ char *labels = cli_labels(json_object_get(n, "labels"));
    char buf[64];

    table_add(t, "name:");
    table_add(t, cli_str(n, "name"));
    table_add(t, "state:");
    table_add(t, node_state(n, buf, sizeof(buf)));
    table_add(t, "labels:");
    table_add(t, labels);
    table_add(t, "guests:");
    table_addf(t, "%lld (max %lld)", cli_int(n, "guests"),
               cli_int(json_object_get(n, "capacity"), "max_guests"));
    table_add(t, "cpus:");
    node_add_usage(t, n, "cpus", false);
    table_add(t, "memory:");
    node_add_usage(t, n, "memory", true);
    table_add(t, "disk:");
    node_add_usage(t, n, "disk", true);
    table_add(t, "kernel:");
    table_add(t, cli_str(n, "kernel"));
    table_add(t, "cgroup:");
    table_add(t, cli_str(n, "cgroup"));
    table_add(t, "backend:");
    table_add(t, cli_str(n, "backend"));
    /* null: an agent that does not count them (older). */
    const json_t *lo = json_object_get(n, "leftovers");
    table_add(t, "leftovers:");
    if (json_is_integer(lo))
        table_addf(t, "%lld%s", (long long)json_integer_value(lo),
                   json_integer_value(lo) > 0 ? " (vfleet-node leftovers on the node lists them)"
                                              : "");
    else
        table_add(t, "unknown");
    table_add(t, "last seen:");
    table_add(t, cli_str(n, "last_seen"));
    cli_print_table(ctx, t);
}

/* `routes NAME`: the master's view of address -> host interface -> guest. */
static void
node_routes_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    static const char *const headers[] = {"ADDRESS", "INTERFACE", "GUEST"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *rt;

    json_array_foreach(json_object_get(body, "routes"), i, rt)
    {
        table_add(t, cli_str(rt, "address"));
        table_add(t, cli_str(rt, "interface"));
        table_add(t, cli_str(rt, "guest"));
    }
    if (table_rows(t) == 0)
        fputs("No routes.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

/* `orphans NAME`: what the node has that the master does not manage. */
static void
node_orphans_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    static const char *const headers[] = {"ID", "NAME", "RUNNING", "ADDRESSES", "REASON"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *o;

    json_array_foreach(json_object_get(body, "orphans"), i, o)
    {
        _cleanup_free_ char *ips = NULL;
        json_t *a;
        size_t k;
        json_array_foreach(json_object_get(o, "ips"), k, a)
        {
            char *n = xasprintf("%s%s%s", ips ? ips : "", ips ? "," : "", json_string_value(a));
            free(ips);
            ips = n;
        }
        table_add(t, cli_str(o, "id"));
        table_add(t, cli_str(o, "name"));
        table_add(t, json_is_true(json_object_get(o, "running")) ? "yes" : "no");
        table_add(t, ips ? ips : "-");
        table_add(t, cli_str(o, "reason"));
    }
    if (table_rows(t) == 0)
        fputs("No orphans.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static void
node_cordon_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    fprintf(ctx->out, "node %s cordoned\n", name);
}

static void
node_uncordon_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    fprintf(ctx->out, "node %s uncordoned\n", name);
}

static void
node_revoke_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    fprintf(ctx->out, "node %s revoked: its key is refused and its connections are shut\n", name);
}

/* The verbs on one node: VERB NAME, then METHOD /v1/nodes/NAME[SUB]. */
#define NODE_NAMED(m, s, p)                                                                        \
    {                                                                                              \
        .method = m, .collection = "/v1/nodes", .sub = s, .kind = "node", .help = cmd_node_help,   \
        .print = p                                                                                 \
    }
static const struct {
    const char *verb;       /* argv[0] */
    struct cli_named named; /* the request and its output */
} node_named[] = {
    {"show", NODE_NAMED("GET", NULL, node_show_print)},
    {"routes", NODE_NAMED("GET", "/routes", node_routes_print)},
    {"orphans", NODE_NAMED("GET", "/orphans", node_orphans_print)},
    {"cordon", NODE_NAMED("POST", "/cordon", node_cordon_print)},
    {"uncordon", NODE_NAMED("POST", "/uncordon", node_uncordon_print)},
    {"revoke", NODE_NAMED("POST", "/revoke", node_revoke_print)},
};
#undef NODE_NAMED

/* `token create [--name N] [--ttl T]`: prints the token alone on its first
 * line, so `T=$(vfleet node token create | head -1)` works. */
static int
token_create(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},
        {"ttl", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(http_result_clear) struct http_result res = {0};
    json_t *body = json_object();
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            json_decref(body);
            cmd_node_help(ctx->out);
            return CLI_EXIT_OK;
        } else if (c == 'n' && name_is_valid(optarg)) {
            json_object_set_new(body, "node", json_string(optarg));
        } else if (c == 't') {
            /* The master reads it (seconds, or with s, m, h or d). */
            json_object_set_new(body, "ttl", json_string(optarg));
        } else {
            json_decref(body);
            return cli_usage_error(ctx, "node token create: %s \"%s\"",
                                   c == 'n'   ? "--name wants a node name, not"
                                   : c == 't' ? "--ttl wants 1s to 30d (90, 90s, 30m, 1h, 7d), not"
                                   : c == ':' ? "option needs a value"
                                              : "unknown option",
                                   c == 'n' || c == 't' ? optarg : argv[optind - 1]);
        }
    }
    if (optind != argc) {
        json_decref(body);
        return cli_usage_error(ctx, "node token create: unexpected argument \"%s\"", argv[optind]);
    }
    struct http_request req = {.method = "POST", .path = "/v1/join-tokens", .body = body};
    int code = cli_call(ctx, &req, "join token", &res);
    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    const char *node = cli_str(res.body, "node");
    fprintf(ctx->out,
            "%s\n"
            "join token %s: single use%s%s, expires %s; master key %s\n"
            "on the node: vfleet-node join --master tcp://MASTER:PORT --token TOKEN%s%s\n",
            cli_str(res.body, "token"), cli_str(res.body, "id"), *node ? ", node " : "", node,
            cli_str(res.body, "expires"), cli_str(res.body, "master_fingerprint"),
            *node ? " --name " : "", node);
    return CLI_EXIT_OK;
}

static int
token_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    static const char *const headers[] = {"ID", "NODE", "STATE", "EXPIRES", "USED BY"};
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_(table_destroy) table_t *t = NULL;
    const char *unused;
    size_t i;
    json_t *tk;

    int r = cli_simple_args(ctx, argc, argv, 0, &unused, cmd_node_help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    struct http_request req = {.method = "GET", .path = "/v1/join-tokens"};
    int code = cli_call(ctx, &req, "join tokens", &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    t = table_new(ARRAY_SIZE(headers), headers);
    json_array_foreach(json_object_get(res.body, "tokens"), i, tk)
    {
        const char *node = cli_str(tk, "node"), *used = cli_str(tk, "used_by");
        table_add(t, cli_str(tk, "id"));
        table_add(t, *node ? node : "(any)");
        table_add(t, cli_str(tk, "state"));
        table_add(t, cli_str(tk, "expires"));
        table_add(t, *used ? used : "-");
    }
    if (table_rows(t) == 0)
        fputs("No join tokens.\n", ctx->out);
    else
        cli_print_table(ctx, t);
    return CLI_EXIT_OK;
}

static int
node_token(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "create"))
        return token_create(ctx, argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "ls") || !strcmp(argv[1], "list")))
        return token_ls(ctx, argc - 1, argv + 1);
    return cli_usage_error(ctx, "node token: expected create or ls (see vfleet node --help)");
}

int
cmd_node_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_node_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
        return node_ls(ctx, argc, argv);
    for (size_t i = 0; i < ARRAY_SIZE(node_named); i++)
        if (!strcmp(argv[0], node_named[i].verb))
            return cli_named_run(ctx, argc, argv, &node_named[i].named);
    if (!strcmp(argv[0], "drain"))
        return cmd_move_drain(ctx, argc, argv);
    if (!strcmp(argv[0], "token"))
        return node_token(ctx, argc, argv);
    return cli_usage_error(ctx, "node: unknown command \"%s\" (see vfleet node --help)", argv[0]);
}
