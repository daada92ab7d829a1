/* vfleet: the operator's command line, a thin client of the master's REST API.
 *
 * This file only reads the global flags and dispatches to the command groups
 * in cmd_*.c; everything else lives in the vf_cli library so tests can run
 * commands in-process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/cmd_archive.h"
#include "cli/cmd_op.h"
#include "common/log.h"
#include "common/version.h"

static void
main_help(FILE *f)
{
    fputs("Usage: vfleet [--master URL] [--token T] [--pin PIN | --ca FILE] [--output F] GROUP\n"
          "              COMMAND [ARGS...]\n"
          "\n"
          "The operator's command line for a vfleet cluster: a client of the master's\n"
          "REST API (docs/api.md).\n"
          "\n"
          "Groups:\n"
          "  node     ls | show | routes | cordon | uncordon | drain | orphans |\n"
          "           token create [--name N] [--ttl 1h] | token ls | revoke NAME\n"
          "  guest    create | ls | show | start | stop | restart | rm | set | exec | shell |\n"
          "           console | rebuild | usage | traffic | ip add | ip rm | move | export |\n"
          "           import | adopt | destroy-orphan\n"
          "  op       ls | show ID | wait ID | cancel ID: long operations (moves, drains,\n"
          "           exports, imports, template sends)\n"
          "  import   vserver DIR | openvz CTID.conf | freevps SELF --root DIR [--dry-run]\n"
          "  template ls | push NAME [PATH] [--to NODE] | rm NAME: templates, the library\n"
          "  pool     create | ls | rm\n"
          "  token    create | ls | rm    API tokens (admin)\n"
          "  project  create | set | ls | show | rm   projects and quotas\n"
          "  events   [--follow] [--type T] [--guest NAME] [--node NAME]: what happened\n"
          "  usage    traffic [--period hour|day|month] [--csv]: traffic for billing\n"
          "  health   is the master up? (GET /healthz)\n"
          "\n"
          "  vfleet GROUP --help shows a group's commands and options.\n"
          "\n"
          "Global options (anywhere before a \"--\"):\n"
          "  --master URL  the master's API: https://HOST:PORT, or unix:PATH for its socket\n"
          "                (default: $VFLEET_MASTER, else unix:" CLI_DEFAULT_SOCKET " when it\n"
          "                exists (root on the master's host needs no token there), else\n"
          "                " CLI_DEFAULT_MASTER ")\n"
          "  --token T     the API token (default: $VFLEET_TOKEN)\n"
          "  --pin PIN     trust the master whose public key has this pin, sha256//BASE64\n"
          "                as vfleet-master logs it at start (default: $VFLEET_PIN)\n"
          "  --ca FILE     trust the master's certificate through these CA certificates\n"
          "                (default: $VFLEET_CA; neither: the system's CA store)\n"
          "  --output F    table (default), json (the master's JSON), yaml, or csv (the\n"
          "                tables as CSV); -o F for short\n"
          "  --json        the same as --output json\n"
          "  --idempotency-key K\n"
          "                the key for this command's POST (default: a random UUID);\n"
          "                give the one printed by a failed attempt to retry it safely\n"
          "  --debug       log HTTP attempts on stderr\n"
          "  --help        this text\n"
          "\n"
          "Every POST carries an Idempotency-Key (a random UUID unless given) and is\n"
          "retried with the same key when the connection fails, so a master restart\n"
          "never creates anything twice.\n"
          "\n"
          "Exit codes:\n"
          "  0  success\n"
          "  1  other failure: a 5xx reply, a malformed reply, a local error, or a\n"
          "     --wait that ended with the guest not running, or a guest rm whose node\n"
          "     had not confirmed the destroy (202: the delete stays queued)\n"
          "  2  usage error: bad arguments, found here or refused by the master (400)\n"
          "  3  not found: no such node, guest or pool (404)\n"
          "  4  conflict: refused by the cluster's state (409), or no node can take\n"
          "     the guest (422; the placement explanation is printed)\n"
          "  5  master unreachable: connection refused, name not resolved, timed out\n"
          "  6  refused: no or a wrong token (401), a role that may not (403), or a\n"
          "     master that is not the one trusted (certificate, pin)\n"
          "  guest exec exits with the remote command's code (128+N for signal N,\n"
          "  124 when it timed out).\n",
          f);
}

static int
main_health(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    struct http_request req = {.method = "GET", .path = "/healthz"};

    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(
            "Usage: vfleet health\n\n"
            "Asks the master whether it answers (GET /healthz, no token needed): prints\n"
            "\"master URL: ok\" and exits 0, else exits as vfleet --help says (5: unreachable).\n",
            ctx->out);
        return CLI_EXIT_OK;
    }
    if (argc > 1)
        return cli_usage_error(ctx, "health: unexpected argument \"%s\"", argv[1]);
    int code = cli_call(ctx, &req, "master", &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json)
        cli_print_json(ctx, res.body);
    else
        fprintf(ctx->out, "master %s: ok\n", http_client_base_url(ctx->http));
    return CLI_EXIT_OK;
}

int
main(int argc, char **argv)
{
    _cleanup_(http_client_destroy) http_client_t *http = NULL;
    struct cli_ctx ctx = {.out = stdout, .err = stderr};
    const char *master = getenv("VFLEET_MASTER");
    const char *token = getenv("VFLEET_TOKEN"), *pin = getenv("VFLEET_PIN");
    const char *ca = getenv("VFLEET_CA");
    int debug = 0;
    int n = 1;

    /* Global flags may appear anywhere up to a "--" (after which the words
     * belong to `guest exec`'s command); they are taken out of argv so the
     * groups see only their own arguments. */
    bool dashdash = false;
    /* In `guest export NAME -o FILE`, -o and --output are the command's own
     * (the archive's file), not the output format. */
    bool export_cmd = false;
    for (int i = 1; i + 1 < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "guest") && !strcmp(argv[i + 1], "export"))
            export_cmd = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && !strcmp(a, "--json")) {
            ctx.json = true;
            ctx.format = CLI_FORMAT_JSON;
        } else if (!dashdash && !export_cmd &&
                   (!strcmp(a, "--output") || !strcmp(a, "-o") || !strncmp(a, "--output=", 9))) {
            const char *v = a[2] == 'o' && a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
            if (!v || cli_format_parse(v, &ctx.format) < 0)
                return cli_usage_error(&ctx, "--output: table, json, yaml or csv");
            ctx.json = ctx.format == CLI_FORMAT_JSON || ctx.format == CLI_FORMAT_YAML;
        } else if (!dashdash && !strcmp(a, "--debug")) {
            debug = 1;
        } else if (!dashdash && !strcmp(a, "--master")) {
            if (i + 1 >= argc)
                return cli_usage_error(&ctx, "--master needs a URL");
            master = argv[++i];
        } else if (!dashdash && !strncmp(a, "--master=", 9)) {
            master = a + 9;
        } else if (!dashdash &&
                   (!strcmp(a, "--token") || !strcmp(a, "--pin") || !strcmp(a, "--ca"))) {
            if (i + 1 >= argc)
                return cli_usage_error(&ctx, "%s needs a value", a);
            const char **slot = a[2] == 't' ? &token : a[2] == 'p' ? &pin : &ca;
            *slot = argv[++i];
        } else if (!dashdash && !strcmp(a, "--idempotency-key")) {
            if (i + 1 >= argc || args_idempotency_key(argv[i + 1]) < 0)
                return cli_usage_error(&ctx,
                                       "--idempotency-key: 1 to %d letters, digits and "
                                       "- _ . :",
                                       HTTP_UUID_LEN);
            ctx.idempotency_key = argv[++i];
        } else {
            if (!strcmp(a, "--"))
                dashdash = true;
            argv[n++] = argv[i];
        }
    }
    argc = n;
    argv[argc] = NULL;
    log_setup("vfleet", LOG_SINK_STDERR, debug ? LOG_DEBUG : LOG_WARNING);

    if (argc < 2) {
        main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *group = argv[1];
    if (!strcmp(group, "--help") || !strcmp(group, "-h") || !strcmp(group, "help")) {
        main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(group, "--version")) {
        puts("vfleet " VFLEET_VERSION);
        return CLI_EXIT_OK;
    }
    if (!master || !*master)
        master =
            access(CLI_DEFAULT_SOCKET, W_OK) == 0 ? "unix:" CLI_DEFAULT_SOCKET : CLI_DEFAULT_MASTER;
    http = http_client_new(master);
    if (!http) {
        fputs("vfleet: cannot start libcurl\n", stderr);
        return CLI_EXIT_FAILURE;
    }
    http_client_set_token(http, token);
    http_client_set_tls(http, ca, pin);
    ctx.http = http;

    if (!strcmp(group, "node"))
        return cmd_node_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "template"))
        return cmd_template_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "guest"))
        return cmd_guest_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "pool"))
        return cmd_pool_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "token"))
        return cmd_token_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "project"))
        return cmd_project_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "op") || !strcmp(group, "operation"))
        return cmd_op_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "import")) {
        if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) {
            cmd_import_help(argc < 3 ? stderr : stdout);
            return argc < 3 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
        }
        return cmd_import_run(&ctx, argc - 1, argv + 1);
    }
    if (!strcmp(group, "events"))
        return cmd_events_run(&ctx, argc - 1, argv + 1);
    if (!strcmp(group, "usage"))
        return cmd_usage_run(&ctx, argc - 2, argv + 2);
    if (!strcmp(group, "health"))
        return main_health(&ctx, argc - 1, argv + 1);
    return cli_usage_error(&ctx, "unknown group \"%s\" (see vfleet --help)", group);
}
