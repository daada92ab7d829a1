/* `vfleet guest ...`: guests and their lifecycle (cmd.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/cmd_archive.h"
#include "cli/cmd_op.h"
#include "cli/named.h"
#include "cli/table.h"
#include "common/netaddr.h"

#define GUEST_EXEC_MAX_ARGV 256 /* arguments passed to `guest exec` */
#define GUEST_HTTP_SLACK    30  /* seconds the HTTP exchange outlives a server-side wait */

void
cmd_guest_help(FILE *f)
{
    fputs(
        "Usage: vfleet guest COMMAND\n"
        "\n"
        "  create NAME --template T [options]   place and create a guest\n"
        "  ls [--node N] [--state S] [--label k=v]...\n"
        "                                       list guests (filters combine)\n"
        "  show NAME                            one guest in full\n"
        "  start NAME [--wait [--timeout S]]    start a stopped guest\n"
        "  stop NAME [--wait [--timeout S]]     stop a guest (its disk stays)\n"
        "  restart NAME [--wait [--timeout S]]  stop and start again\n"
        "  rm NAME                              destroy a guest and release its addresses\n"
        "  set NAME [limits] [--label k=v]... [--unlabel k]... [--flags private,lock,...|none]\n"
        "                                       change a guest (a JSON merge patch)\n"
        "  exec NAME [--timeout S] -- CMD ARGS...\n"
        "                                       run a command in the guest; exits with its code\n"
        "  shell NAME [-t|-T] [-- CMD ARGS...]  an interactive session (root's login shell, or\n"
        "                                       CMD) on a terminal (-t) or on stdin/stdout (-T);\n"
        "                                       exits with its code\n"
        "  console NAME [--log [--bytes N]]     follow the guest's console (its init's output):\n"
        "                                       what it holds, then what comes; detach with ^]\n"
        "                                       (or ^C); --log prints the tail its node keeps\n"
        "                                       (1 MiB) and exits\n"
        "  rebuild NAME [--template T]          reinstall the guest's files from a template,\n"
        "                                       keeping its id, addresses, limits, history\n"
        "                                       (a running guest is stopped and started again)\n"
        "  usage NAME                           the latest resource usage sample\n"
        "  usage NAME --since 6h [--step 5m] [--spark]\n"
        "        NAME --from T [--to T] ...     its history: a table, or sparklines\n"
        "  ip add NAME [auto|auto4|auto6|ADDR]  one more address from a pool (default auto)\n"
        "  ip rm NAME ADDR                      remove an address, back to its pool\n"
        "  traffic NAME [--reset]               traffic since the last reset (FreeVPS trafstat);\n"
        "                                       --reset ends the period and starts a new one\n"
        "  move NAME [--to NODE] [--live] [--renumber] [--constraint k=v]... [--no-wait]\n"
        "                                       move it to another node (the scheduler's choice\n"
        "                                       unless --to); --live copies while it runs and\n"
        "                                       stops it only for the last delta; --renumber\n"
        "                                       gives new addresses where the old cannot follow;\n"
        "                                       waits, with progress, unless --no-wait\n"
        "  export NAME -o FILE [--keep]         the guest (spec and files) as one archive\n"
        "                                       (zstd-compressed tar, SHA-256 checked); --keep\n"
        "                                       leaves the master's copy\n"
        "  import FILE [--name N] [--to NODE] [--constraint k=v]...\n"
        "                                       a new guest from an archive, anywhere\n"
        "  adopt NODE ID                        an orphan on NODE back under the master, with\n"
        "                                       its addresses that are free\n"
        "  destroy-orphan NODE ID               destroy an orphan on NODE and free its addresses\n"
        "                                       (`vfleet node orphans NODE` lists them)\n"
        "\n"
        "Limits (create and set):\n",
        f);
    args_limits_help(f);
    fputs("\n", f);
    args_spec_help(f);
    fputs("\n"
          "Create options:\n"
          "  --template T          root filesystem template (required)\n"
          "  --ip auto|ADDR        an address from a pool, repeatable (default: the master's)\n"
          "  --label k=v           a label on the guest, repeatable\n"
          "  --constraint k=v      place only on nodes with this label, repeatable\n"
          "  --group G             anti-affinity group: at most one per node\n"
          "  --node N              pin to node N (not for a tenant token)\n"
          "  --project P           its project (default: the token's, or \"default\")\n"
          "  --algorithm A         spread or binpack (default: the cluster's)\n"
          "  --wait                return once the guest runs (or fails)\n"
          "  --timeout S           seconds to wait, with --wait\n"
          "  --idempotency-key K   reuse K to retry a create safely (default: a random UUID)\n"
          "\n"
          "Every command takes --json to print the master's JSON.\n",
          f);
}

/* The state column: the observed state, marked while the node has not yet
 * applied the latest generation. */
static void
guest_add_state(table_t *t, const json_t *g)
{
    long long gen = cli_int(g, "generation");
    long long applied = cli_int(g, "applied_generation");
    if (json_object_get(g, "applied_generation") && applied < gen)
        table_addf(t, "%s (applying %lld/%lld)", cli_str(g, "state"), applied, gen);
    else
        table_add(t, cli_str(g, "state"));
}

static void
guest_add_size(table_t *t, const json_t *limits, const char *key)
{
    char buf[32];
    long long v = cli_int(limits, key);
    table_add(t, v > 0 ? table_size((uint64_t)v, buf, sizeof(buf)) : "-");
}

static void
guest_add_cores(table_t *t, const json_t *limits, const char *key)
{
    double v = cli_num(limits, key);
    if (v > 0)
        table_addf(t, "%g", v);
    else
        table_add(t, "-");
}

static void
guest_add_count(table_t *t, const json_t *limits, const char *key)
{
    long long v = cli_int(limits, key);
    if (v > 0)
        table_addf(t, "%lld", v);
    else
        table_add(t, "-");
}

/* A limit's cell, shown by its unit; "-" when not set. */
static void
guest_add_limit(table_t *t, const json_t *limits, const char *key, enum spec_unit unit)
{
    char buf[32];
    long long v = cli_int(limits, key);

    switch (unit) {
    case SPEC_UNIT_BYTES:
        guest_add_size(t, limits, key);
        break;
    case SPEC_UNIT_MCORES:
        guest_add_cores(t, limits, key);
        break;
    case SPEC_UNIT_RATE:
        table_add(t, v > 0 ? table_rate((uint64_t)v, buf, sizeof(buf)) : "-");
        break;
    case SPEC_UNIT_COUNT:
    case SPEC_UNIT_WEIGHT:
        guest_add_count(t, limits, key);
        break;
    }
}

/* A JSON array of strings joined with commas, "-" when empty. Caller frees. */
static char *
guest_join(const json_t *arr)
{
    char *out = NULL;
    size_t len = 0, i;
    json_t *v;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        abort();
    json_array_foreach(arr, i, v) fprintf(f, "%s%s", i ? "," : "", json_string_value(v) ?: "?");
    if (json_array_size(arr) == 0)
        fputc('-', f);
    fclose(f);
    return out;
}

/* The guests of a list as a table. */
static void
guest_ls_print(struct cli_ctx *ctx, const json_t *guests)
{
    static const char *const headers[] = {"NAME", "STATE", "NODE", "CPU", "MEMORY", "DISK", "IPS"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *g;

    table_align_right(t, 3);
    table_align_right(t, 4);
    table_align_right(t, 5);
    json_array_foreach(guests, i, g)
    {
        json_t *limits = json_object_get(g, "limits");
        _cleanup_free_ char *ips = guest_join(json_object_get(g, "ips"));
        table_add(t, cli_str(g, "name"));
        guest_add_state(t, g);
        table_add(t, *cli_str(g, "node") ? cli_str(g, "node") : "-");
        guest_add_cores(t, limits, "cpu_max");
        guest_add_size(t, limits, "memory");
        guest_add_size(t, limits, "disk");
        table_add(t, ips);
    }
    if (table_rows(t) == 0)
        fputs("No guests.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static int
guest_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"node", required_argument, NULL, 'n'},
        {"state", required_argument, NULL, 's'},
        {"label", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *query = NULL;
    size_t qlen = 0;
    FILE *q = open_memstream(&query, &qlen);
    _cleanup_free_ char *path = NULL;
    int c;

    if (!q)
        abort();
    fputs("/v1/guests", q);
    char sep = '?';
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        _cleanup_free_ char *e = NULL;
        switch (c) {
        case 'h':
            fclose(q);
            free(query);
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        case 'n':
            if (!name_is_valid(optarg)) {
                fclose(q);
                free(query);
                return cli_usage_error(ctx, "ls: --node \"%s\" is not a valid name", optarg);
            }
            fprintf(q, "%cnode=%s", sep, optarg);
            break;
        case 's':
            e = http_escape(optarg);
            fprintf(q, "%cstate=%s", sep, e);
            break;
        case 'l':
            if (!strchr(optarg, '=')) {
                fclose(q);
                free(query);
                return cli_usage_error(ctx, "ls: --label \"%s\": expected KEY=VALUE", optarg);
            }
            e = http_escape(optarg);
            fprintf(q, "%clabel=%s", sep, e);
            break;
        default:
            fclose(q);
            free(query);
            return cli_option_error(ctx, c, argv[optind - 1], "ls");
        }
        sep = '&';
    }
    fclose(q);
    path = query;
    if (optind < argc)
        return cli_usage_error(ctx, "ls: unexpected argument \"%s\"", argv[optind]);

    return cli_list_show(ctx, path, "guests", guest_ls_print);
}

/* Prints a guest object as "key: value" lines. */
static void
guest_print(struct cli_ctx *ctx, const json_t *g)
{
    _cleanup_(table_destroy) table_t *t = table_new(2, NULL);
    _cleanup_free_ char *ips = guest_join(json_object_get(g, "ips"));
    _cleanup_free_ char *flags = guest_join(json_object_get(g, "flags"));
    _cleanup_free_ char *labels = cli_labels(json_object_get(g, "labels"));
    json_t *l = json_object_get(g, "limits");

    table_add(t, "name:");
    table_add(t, cli_str(g, "name"));
    table_add(t, "id:");
    table_add(t, cli_str(g, "id"));
    table_add(t, "node:");
    table_add(t, *cli_str(g, "node") ? cli_str(g, "node") : "-");
    table_add(t, "state:");
    guest_add_state(t, g);
    if (*cli_str(g, "message")) {
        table_add(t, "reason:");
        table_add(t, cli_str(g, "message"));
    }
    if (json_is_true(json_object_get(g, "deleting"))) {
        table_add(t, "deleting:");
        table_add(t, "yes (waiting for its node)");
    }
    table_add(t, "generation:");
    table_addf(t, "%lld (applied %lld)", cli_int(g, "generation"),
               cli_int(g, "applied_generation"));
    table_add(t, "template:");
    table_add(t, cli_str(g, "template"));
    table_add(t, "ips:");
    table_add(t, ips);
    table_add(t, "labels:");
    table_add(t, labels);
    table_add(t, "flags:");
    table_add(t, flags);
    table_add(t, "created:");
    table_add(t, cli_str(g, "created"));
    table_add(t, "updated:");
    table_add(t, cli_str(g, "updated"));

    table_add(t, "limits:");
    table_add(t, "");
    /* One row per limit, in the table's order (proto/spec_fields.h). */
#define GUEST_LIMIT_ROW_(name, type, unit, ...)                                                    \
    table_add(t, "  " #name ":");                                                                  \
    guest_add_limit(t, l, #name, SPEC_UNIT_##unit);
    SPEC_LIMIT_FIELDS(GUEST_LIMIT_ROW_)
#undef GUEST_LIMIT_ROW_
    cli_print_table(ctx, t);
}

static void
guest_show_print(struct cli_ctx *ctx, const char *name, const json_t *g)
{
    guest_print(ctx, g);
}

/* A DELETE answers 204 once the node destroyed the guest, or 202 with the
 * guest (deleting: true) when the node had not confirmed by the end of the
 * master's wait or its stop: recorded and queued, not done. */
static bool
guest_rm_pending(const json_t *body)
{
    return json_is_true(json_object_get(body, "deleting"));
}

static void
guest_rm_print(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    if (!guest_rm_pending(body))
        fprintf(ctx->out, "guest %s removed\n", name);
}

static int
guest_rm_check(struct cli_ctx *ctx, const char *name, const json_t *body)
{
    if (!guest_rm_pending(body))
        return CLI_EXIT_OK;
    fprintf(ctx->err,
            "vfleet: guest %s is being deleted: its node has not confirmed the destroy yet; the "
            "delete stays queued and the guest goes when the node confirms\n",
            name);
    return CLI_EXIT_FAILURE;
}

#define GUEST_NAMED(m, s, p)                                                                       \
    {                                                                                              \
        .method = m, .collection = "/v1/guests", .sub = s, .kind = "guest",                        \
        .help = cmd_guest_help, .print = p                                                         \
    }
static const struct cli_named guest_show_cmd = GUEST_NAMED("GET", NULL, guest_show_print);
/* The master holds a DELETE up to its wait (60 s by default). */
static const struct cli_named guest_rm_cmd = {
    .method = "DELETE",
    .collection = "/v1/guests",
    .kind = "guest",
    .help = cmd_guest_help,
    .print = guest_rm_print,
    .timeout = HTTP_DEFAULT_TIMEOUT + GUEST_HTTP_SLACK,
    .check = guest_rm_check,
};

/* After ?wait=running (or stopped) the master answers when the guest gets
 * there, fails, or the wait times out; the guest exists in every case, so
 * the reply is a 2xx and only its state tells. A script that asked to wait
 * must not see 0 for a guest that did not get there. */
static int
guest_check_state(struct cli_ctx *ctx, const char *name, const json_t *g, const char *want)
{
    if (!strcmp(cli_str(g, "state"), want))
        return CLI_EXIT_OK;
    fprintf(ctx->err, "vfleet: guest %s is %s, not %s, after the wait%s%s\n", name,
            *cli_str(g, "state") ? cli_str(g, "state") : "in an unknown state", want,
            *cli_str(g, "message") ? ": " : "", cli_str(g, "message"));
    return CLI_EXIT_FAILURE;
}

/* `start|stop|restart NAME [--wait [--timeout S]]`: with --wait the answer
 * comes when the guest runs (stop: is stopped), and the final state is
 * printed. */
static int
guest_lifecycle(struct cli_ctx *ctx, int argc, char **argv, const char *verb)
{
    static const struct option opts[] = {
        {"wait", no_argument, NULL, 'w'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *want = !strcmp(verb, "stop") ? "stopped" : "running";
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    bool wait = false;
    long timeout = 0;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        case 'w':
            wait = true;
            break;
        case 't':
            if (args_timeout(optarg, &timeout) < 0)
                return cli_usage_error(ctx, "%s: --timeout \"%s\": seconds, 1 to %d", verb, optarg,
                                       ARGS_MAX_TIMEOUT);
            break;
        default:
            return cli_option_error(ctx, c, argv[optind - 1], "%s", verb);
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "%s: expected one guest NAME", verb);
    if (timeout && !wait)
        return cli_usage_error(ctx, "%s: --timeout only applies with --wait", verb);
    const char *name = argv[optind];
    if (wait && timeout)
        path = xasprintf("/v1/guests/%s/%s?wait=%s&timeout=%ld", name, verb, want, timeout);
    else if (wait)
        path = xasprintf("/v1/guests/%s/%s?wait=%s", name, verb, want);
    else
        path = xasprintf("/v1/guests/%s/%s", name, verb);
    what = xasprintf("guest \"%s\"", name);
    struct http_request req = {
        .method = "POST",
        .path = path,
        .timeout = wait ? (timeout ? timeout : HTTP_DEFAULT_TIMEOUT) + GUEST_HTTP_SLACK : 0,
    };
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json)
        cli_print_json(ctx, res.body);
    else
        fprintf(ctx->out, "guest %s: %s\n", name, cli_str(res.body, "state"));
    return wait ? guest_check_state(ctx, name, res.body, want) : CLI_EXIT_OK;
}

static int
guest_create(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(args_create_clear) struct args_create a = {0};
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    char err[512];

    int r = args_guest_create(argc, argv, &a, err, sizeof(err));
    if (r == ARGS_HELP) {
        cmd_guest_help(ctx->out);
        return CLI_EXIT_OK;
    }
    if (r < 0 || args_spec_read_files(a.body, &a.files, err, sizeof(err)) < 0)
        return cli_usage_error(ctx, "%s", err);
    if (a.wait && a.timeout)
        path = xasprintf("/v1/guests?wait=running&timeout=%ld", a.timeout);
    else if (a.wait)
        path = xstrdup("/v1/guests?wait=running");
    else
        path = xstrdup("/v1/guests");
    what = xasprintf("guest \"%s\"", a.name);
    struct http_request req = {
        .method = "POST",
        .path = path,
        .body = a.body,
        .idempotency_key = a.idempotency_key[0] ? a.idempotency_key : NULL,
        .timeout = a.wait ? (a.timeout ? a.timeout : HTTP_DEFAULT_TIMEOUT) + GUEST_HTTP_SLACK : 0,
    };
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
    } else {
        _cleanup_free_ char *ips = guest_join(json_object_get(res.body, "ips"));
        fprintf(ctx->out, "guest %s created on %s: %s, ips %s\n", a.name,
                *cli_str(res.body, "node") ? cli_str(res.body, "node") : "-",
                cli_str(res.body, "state"), ips);
    }
    return a.wait ? guest_check_state(ctx, a.name, res.body, "running") : CLI_EXIT_OK;
}

static int
guest_set(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(args_set_clear) struct args_set a = {0};
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    char err[512];

    int r = args_guest_set(argc, argv, &a, err, sizeof(err));
    if (r == ARGS_HELP) {
        cmd_guest_help(ctx->out);
        return CLI_EXIT_OK;
    }
    if (r < 0 || args_spec_read_files(a.body, &a.files, err, sizeof(err)) < 0)
        return cli_usage_error(ctx, "%s", err);
    path = xasprintf("/v1/guests/%s", a.name);
    what = xasprintf("guest \"%s\"", a.name);
    struct http_request req = {.method = "PATCH", .path = path, .body = a.body};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json)
        cli_print_json(ctx, res.body);
    else
        fprintf(ctx->out, "guest %s updated (generation %lld)\n", a.name,
                cli_int(res.body, "generation"));
    return CLI_EXIT_OK;
}

/* Writes a JSON string's bytes (which may hold NULs) to f. */
static void
guest_write_string(FILE *f, const json_t *s)
{
    if (json_is_string(s))
        fwrite(json_string_value(s), 1, json_string_length(s), f);
    fflush(f);
}

/* `exec NAME [--timeout S] -- CMD ARGS...`. The "--" is found before getopt
 * runs, because GNU getopt would otherwise mix NAME into the command. */
static int
guest_exec(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    long timeout = 0;
    int dash = args_dash(argc, argv), c;
    optind = 0;
    opterr = 0;
    int nopt = dash < 0 ? argc : dash;
    while ((c = getopt_long(nopt, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        case 't':
            if (args_timeout(optarg, &timeout) < 0)
                return cli_usage_error(ctx, "exec: --timeout \"%s\": seconds, 1 to %d", optarg,
                                       ARGS_MAX_TIMEOUT);
            break;
        default:
            return cli_option_error(ctx, c, argv[optind - 1], "exec");
        }
    }
    if (dash < 0 || dash + 1 >= argc)
        return cli_usage_error(ctx, "exec: expected NAME -- CMD [ARGS...]");
    if (optind + 1 != nopt || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "exec: expected one guest NAME before \"--\"");
    if (argc - dash - 1 > GUEST_EXEC_MAX_ARGV)
        return cli_usage_error(ctx, "exec: at most %d arguments", GUEST_EXEC_MAX_ARGV);

    const char *name = argv[optind];
    json_t *body = json_object();
    json_t *av = json_array();
    for (int i = dash + 1; i < argc; i++) {
        json_t *s = json_string(argv[i]);
        if (!s) {
            json_decref(av);
            json_decref(body);
            return cli_usage_error(ctx, "exec: argument %d is not valid UTF-8", i - dash);
        }
        json_array_append_new(av, s);
    }
    json_object_set_new(body, "argv", av);
    if (timeout)
        json_object_set_new(body, "timeout", json_integer(timeout));
    path = xasprintf("/v1/guests/%s/exec", name);
    what = xasprintf("guest \"%s\"", name);
    struct http_request req = {
        .method = "POST",
        .path = path,
        .body = body,
        .timeout = (timeout ? timeout : HTTP_DEFAULT_TIMEOUT) + GUEST_HTTP_SLACK,
    };
    int code = cli_call(ctx, &req, what, &res);
    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;

    json_t *r = res.body;
    json_t *ec = json_object_get(r, "exit_code");
    long long sig = cli_int(r, "signal");
    if (ctx->json) {
        cli_print_json(ctx, r);
    } else {
        guest_write_string(ctx->out, json_object_get(r, "stdout"));
        guest_write_string(ctx->err, json_object_get(r, "stderr"));
    }
    if (json_is_true(json_object_get(r, "truncated")))
        fprintf(ctx->err, "vfleet: guest %s: output was truncated by the master\n", name);
    if (json_is_true(json_object_get(r, "timed_out"))) {
        fprintf(ctx->err, "vfleet: guest %s: command timed out\n", name);
        return 124; /* as timeout(1) does */
    }
    if (sig > 0 && sig < 128) {
        fprintf(ctx->err, "vfleet: guest %s: command killed by signal %lld\n", name, sig);
        return 128 + (int)sig;
    }
    if (!json_is_integer(ec) || json_integer_value(ec) < 0 || json_integer_value(ec) > 255) {
        fprintf(ctx->err, "vfleet: guest %s: the reply has no exit code\n", name);
        return CLI_EXIT_FAILURE;
    }
    return (int)json_integer_value(ec);
}

/* `usage NAME`: the latest sample. */
static void
guest_usage_print(struct cli_ctx *ctx, const char *name, const json_t *u)
{
    static const char *const bytes[] = {"memory",         "memory_peak",  "rss",
                                        "swap",           "disk_bytes",   "io_read_bytes",
                                        "io_write_bytes", "net_rx_bytes", "net_tx_bytes"};
    static const char *const counts[] = {"procs",        "disk_inodes",    "io_read_ops",
                                         "io_write_ops", "net_rx_packets", "net_tx_packets",
                                         "tcp_sockets"};
    static const char *const fails[] = {"procs", "memory", "oom", "disk", "tcp"};
    _cleanup_(table_destroy) table_t *t = table_new(2, NULL);
    char buf[32];

    table_align_right(t, 1);
    table_add(t, "time:");
    table_add(t, cli_str(u, "time"));
    table_add(t, "cpu:");
    table_addf(t, "%.3fs", (double)cli_int(u, "cpu_ns") / 1e9);
    for (size_t i = 0; i < ARRAY_SIZE(bytes); i++) {
        table_addf(t, "%s:", bytes[i]);
        table_add(t, table_size((uint64_t)cli_int(u, bytes[i]), buf, sizeof(buf)));
    }
    for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
        table_addf(t, "%s:", counts[i]);
        table_addf(t, "%lld", cli_int(u, counts[i]));
    }
    json_t *fc = json_object_get(u, "failcnt");
    for (size_t i = 0; i < ARRAY_SIZE(fails); i++) {
        table_addf(t, "failcnt %s:", fails[i]);
        table_addf(t, "%lld", cli_int(fc, fails[i]));
    }
    cli_print_table(ctx, t);
}

static int
guest_usage(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct cli_named cmd = GUEST_NAMED("GET", "/usage", guest_usage_print);

    /* A range asks for the history. */
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "--since", 7) || !strncmp(argv[i], "--from", 6) ||
            !strncmp(argv[i], "--to", 4) || !strncmp(argv[i], "--step", 6) ||
            !strcmp(argv[i], "--spark"))
            return cmd_guest_usage_history(ctx, argc, argv);
    return cli_named_run(ctx, argc, argv, &cmd);
}

/* `traffic NAME`: the counters since the last reset. */
static void
guest_traffic_print(struct cli_ctx *ctx, const char *name, const json_t *o)
{
    _cleanup_(table_destroy) table_t *t = table_new(2, NULL);
    const char *since = cli_str(o, "since");
    char buf[32];

    table_align_right(t, 1);
    table_add(t, "since:");
    table_add(t, *since ? since : "the guest's start");
    table_add(t, "until:");
    table_add(t, cli_str(o, "sampled"));
    table_add(t, "in:");
    table_addf(t, "%s (%lld packets)",
               table_size((uint64_t)cli_int(o, "rx_bytes"), buf, sizeof(buf)),
               cli_int(o, "rx_packets"));
    table_add(t, "out:");
    table_addf(t, "%s (%lld packets)",
               table_size((uint64_t)cli_int(o, "tx_bytes"), buf, sizeof(buf)),
               cli_int(o, "tx_packets"));
    cli_print_table(ctx, t);
}

/* `traffic NAME --reset`: the counters of the period that ends. */
static void
guest_traffic_reset_print(struct cli_ctx *ctx, const char *name, const json_t *o)
{
    guest_traffic_print(ctx, name, o);
    fprintf(ctx->out, "counter reset: a new period starts now\n");
}

static int
guest_traffic(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct cli_named get = GUEST_NAMED("GET", "/traffic", guest_traffic_print);
    static const struct cli_named reset =
        GUEST_NAMED("POST", "/traffic/reset", guest_traffic_reset_print);
    bool is_reset = false;

    /* "--reset" may stand anywhere among the arguments. */
    char *args[3];
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--reset"))
            is_reset = true;
        else if (n < 3)
            args[n++] = argv[i];
        else
            return cli_usage_error(ctx, "traffic: expected one guest NAME");
    }
    return cli_named_run(ctx, n, args, is_reset ? &reset : &get);
}

/* `ip add NAME [auto|ADDR]` and `ip rm NAME ADDR`: the running guest gets
 * or loses the address live (the node diffs them on the apply). */
static int
guest_ip(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    json_t *body = NULL;
    struct netaddr a;

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        }
    bool add = argc >= 2 && !strcmp(argv[1], "add");
    bool rm = argc >= 2 && !strcmp(argv[1], "rm");
    if (!add && !rm)
        return cli_usage_error(ctx, "ip: expected add or rm (see vfleet guest --help)");
    if (argc < 3 || argc > 4 || (rm && argc != 4))
        return cli_usage_error(ctx, "ip %s: expected NAME %s", argv[1],
                               add ? "[auto|auto4|auto6|ADDR]" : "ADDR");
    const char *name = argv[2];
    const char *addr = argc == 4 ? argv[3] : "auto";
    if (!name_is_valid(name))
        return cli_usage_error(ctx, "ip %s: \"%s\" is not a valid name", argv[1], name);
    bool is_auto =
        add && (!strcmp(addr, "auto") || !strcmp(addr, "auto4") || !strcmp(addr, "auto6"));
    if (!is_auto && netaddr_parse_host(addr, &a) < 0)
        return cli_usage_error(ctx, "ip %s: \"%s\" is not an address", argv[1], addr);
    what = xasprintf("guest \"%s\"", name);
    if (add) {
        path = xasprintf("/v1/guests/%s/ips", name);
        body = json_pack("{s:s}", "ip", addr);
    } else {
        /* A parsed address is hex digits, dots and colons: nothing to escape. */
        path = xasprintf("/v1/guests/%s/ips/%s", name, addr);
    }
    struct http_request req = {.method = add ? "POST" : "DELETE", .path = path, .body = body};
    int code = cli_call(ctx, &req, what, &res);
    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    _cleanup_free_ char *ips = guest_join(json_object_get(res.body, "ips"));
    fprintf(ctx->out, "guest %s %s (generation %lld): ips %s\n", name,
            add ? "address added" : "address removed", cli_int(res.body, "generation"), ips);
    return CLI_EXIT_OK;
}

/* `adopt NODE ID` and `destroy-orphan NODE ID`: an orphan resolved. */
static int
guest_orphan(struct cli_ctx *ctx, int argc, char **argv, bool adopt)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;

    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        cmd_guest_help(ctx->out);
        return CLI_EXIT_OK;
    }
    if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
        return cli_usage_error(ctx, "guest %s: wants NODE ID (see vfleet guest --help)", argv[0]);
    path = xasprintf("/v1/nodes/%s/orphans/%s%s", argv[1], argv[2], adopt ? "/adopt" : "");
    what = xasprintf("orphan %s on node \"%s\"", argv[2], argv[1]);
    struct http_request req = {.method = adopt ? "POST" : "DELETE", .path = path};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json && res.body)
        cli_print_json(ctx, res.body);
    else if (adopt)
        fprintf(ctx->out, "guest %s adopted on node %s\n", cli_str(res.body, "name"), argv[1]);
    else
        fprintf(ctx->out, "orphan %s destroyed on node %s\n", argv[2], argv[1]);
    return CLI_EXIT_OK;
}

int
cmd_guest_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_guest_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const char *v = argv[0];
    if (!strcmp(v, "create"))
        return guest_create(ctx, argc, argv);
    if (!strcmp(v, "ls") || !strcmp(v, "list"))
        return guest_ls(ctx, argc, argv);
    if (!strcmp(v, "show"))
        return cli_named_run(ctx, argc, argv, &guest_show_cmd);
    if (!strcmp(v, "start") || !strcmp(v, "stop") || !strcmp(v, "restart"))
        return guest_lifecycle(ctx, argc, argv, v);
    if (!strcmp(v, "rm"))
        return cli_named_run(ctx, argc, argv, &guest_rm_cmd);
    if (!strcmp(v, "set"))
        return guest_set(ctx, argc, argv);
    if (!strcmp(v, "exec"))
        return guest_exec(ctx, argc, argv);
    if (!strcmp(v, "shell"))
        return cmd_guest_shell(ctx, argc, argv);
    if (!strcmp(v, "rebuild"))
        return cmd_guest_rebuild(ctx, argc, argv);
    if (!strcmp(v, "console"))
        return cmd_guest_console(ctx, argc, argv);
    if (!strcmp(v, "usage"))
        return guest_usage(ctx, argc, argv);
    if (!strcmp(v, "traffic"))
        return guest_traffic(ctx, argc, argv);
    if (!strcmp(v, "ip"))
        return guest_ip(ctx, argc, argv);
    if (!strcmp(v, "move"))
        return cmd_move_guest(ctx, argc, argv);
    if (!strcmp(v, "export"))
        return cmd_archive_export(ctx, argc, argv);
    if (!strcmp(v, "import"))
        return cmd_archive_import(ctx, argc, argv);
    if (!strcmp(v, "adopt") || !strcmp(v, "destroy-orphan"))
        return guest_orphan(ctx, argc, argv, !strcmp(v, "adopt"));
    return cli_usage_error(ctx, "guest: unknown command \"%s\" (see vfleet guest --help)", v);
}
