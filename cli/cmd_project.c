/* `vfleet project ...`: projects and their quotas (cmd.h). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/table.h"
#include "common/name.h"
#include "common/units.h"

void
cmd_project_help(FILE *f)
{
    fputs("Usage: vfleet project COMMAND\n"
          "\n"
          "  create NAME [QUOTA...]   a project (a tenant token belongs to one)\n"
          "  set NAME QUOTA...        change its quotas\n"
          "  ls                       projects with their quotas and usage\n"
          "  show NAME                one project\n"
          "  rm NAME                  delete it (refused while guests or tokens are in it)\n"
          "\n"
          "Quotas (\"none\" = no limit; growth past a quota is refused, 409):\n"
          "  --guests N      guests\n"
          "  --cpus N        CPU cores charged (cpu_max, or the cluster default)\n"
          "  --memory SIZE   memory charged (\"16G\")\n"
          "  --disk SIZE     disk charged\n"
          "  --addresses N   addresses held\n"
          "\n"
          "Every command takes --json to print the master's JSON.\n",
          f);
}

/* One quota flag (its long name) into quota; "none" is null. */
static int
quota_flag(json_t *quota, const char *k, const char *v, char *err, size_t n)
{
    uint64_t u;
    double d;

    if (!strcmp(v, "none"))
        return json_object_set_new(quota, k, json_null());
    if (!strcmp(k, "memory") || !strcmp(k, "disk")) {
        if (args_size(v, &u) < 0) {
            snprintf(err, n, "--%s \"%s\" is not a size", k, v);
            return -EINVAL;
        }
        return json_object_set_new(quota, k, json_integer((json_int_t)u));
    }
    if (!strcmp(k, "cpus")) {
        if (args_cpu(v, &d) < 0) {
            snprintf(err, n, "--cpus \"%s\" is not a number of cores", v);
            return -EINVAL;
        }
        return json_object_set_new(quota, k, json_real(d));
    }
    if (args_count(v, &u) < 0) {
        snprintf(err, n, "--%s \"%s\" is not a count", k, v);
        return -EINVAL;
    }
    return json_object_set_new(quota, k, json_integer((json_int_t)u));
}

/* NAME and quota flags of create and set. */
static int
parse(struct cli_ctx *ctx, int argc, char **argv, const char *verb, const char **name,
      json_t *quota)
{
    static const struct option opts[] = {
        {"guests", required_argument, NULL, 'g'},
        {"cpus", required_argument, NULL, 'c'},
        {"memory", required_argument, NULL, 'm'},
        {"disk", required_argument, NULL, 'd'},
        {"addresses", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char err[160];
    int c, idx;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, &idx)) != -1) {
        if (c == 'h') {
            cmd_project_help(ctx->out);
            return ARGS_HELP;
        }
        if (c == ':' || c == '?') {
            cli_option_error(ctx, c, argv[optind - 1], "project %s", verb);
            return -EINVAL;
        }
        const char *key = NULL;
        for (size_t i = 0; opts[i].name; i++)
            if (opts[i].val == c)
                key = opts[i].name;
        if (quota_flag(quota, key, optarg, err, sizeof(err)) < 0) {
            cli_usage_error(ctx, "project %s: %s", verb, err);
            return -EINVAL;
        }
    }
    if (optind + 1 != argc || !name_is_valid(argv[optind])) {
        cli_usage_error(ctx, "project %s: expected one project NAME", verb);
        return -EINVAL;
    }
    *name = argv[optind];
    return 0;
}

static void
quota_cell(table_t *t, const json_t *p, const char *key, bool size)
{
    json_t *q = json_object_get(json_object_get(p, "quota"), key);
    json_t *u = json_object_get(json_object_get(p, "usage"), key);
    char a[32], b[32];

    if (size) {
        units_format_size((uint64_t)json_number_value(u), a, sizeof(a));
        if (json_is_null(q) || !q)
            snprintf(b, sizeof(b), "-");
        else
            units_format_size((uint64_t)json_number_value(q), b, sizeof(b));
    } else {
        snprintf(a, sizeof(a), "%g", json_number_value(u));
        if (json_is_null(q) || !q)
            snprintf(b, sizeof(b), "-");
        else
            snprintf(b, sizeof(b), "%g", json_number_value(q));
    }
    table_addf(t, "%s/%s", a, b);
}

static void
print_projects(struct cli_ctx *ctx, json_t *list)
{
    static const char *const headers[] = {"NAME", "GUESTS", "CPUS", "MEMORY", "DISK", "ADDRESSES"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    json_t *p;
    size_t i;

    json_array_foreach(list, i, p)
    {
        table_add(t, cli_str(p, "name"));
        quota_cell(t, p, "guests", false);
        quota_cell(t, p, "cpus", false);
        quota_cell(t, p, "memory", true);
        quota_cell(t, p, "disk", true);
        quota_cell(t, p, "addresses", false);
    }
    if (table_rows(t) == 0)
        fputs("No projects.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static int
project_write(struct cli_ctx *ctx, int argc, char **argv, bool create)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    json_t *quota = json_object(), *body;
    const char *name;
    int r = parse(ctx, argc, argv, create ? "create" : "set", &name, quota);

    if (r) {
        json_decref(quota);
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (!create && json_object_size(quota) == 0) {
        json_decref(quota);
        return cli_usage_error(ctx, "project set: give at least one quota");
    }
    body = create ? json_pack("{s:s, s:o}", "name", name, "quota", quota)
                  : json_pack("{s:o}", "quota", quota);
    path = create ? xstrdup("/v1/projects") : xasprintf("/v1/projects/%s", name);
    what = xasprintf("project \"%s\"", name);
    struct http_request req = {.method = create ? "POST" : "PATCH", .path = path, .body = body};
    int code = cli_call(ctx, &req, what, &res);
    json_decref(body);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
    } else {
        json_t *one = json_pack("[O]", res.body);
        print_projects(ctx, one);
        json_decref(one);
    }
    return CLI_EXIT_OK;
}

static int
project_read(struct cli_ctx *ctx, int argc, char **argv, bool one)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    const char *name = NULL;
    json_t *list = NULL;
    int code;

    int r = cli_simple_args(ctx, argc, argv, one ? 1 : 0, &name, cmd_project_help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    if (one) {
        path = xasprintf("/v1/projects/%s", name);
        what = xasprintf("project \"%s\"", name);
        struct http_request req = {.method = "GET", .path = path};
        code = cli_call(ctx, &req, what, &res);
        if (code == CLI_EXIT_OK)
            list = json_pack("[O]", res.body);
    } else {
        code = cli_get_list(ctx, "/v1/projects", "projects", &list);
    }
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        json_t *wrap = one ? json_incref(res.body) : json_pack("{s:O}", "projects", list);
        cli_print_json(ctx, wrap);
        json_decref(wrap);
    } else {
        print_projects(ctx, list);
    }
    json_decref(list);
    return CLI_EXIT_OK;
}

static int
project_rm(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = NULL, *what = NULL;
    const char *name;

    int r = cli_simple_args(ctx, argc, argv, 1, &name, cmd_project_help);
    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    path = xasprintf("/v1/projects/%s", name);
    what = xasprintf("project \"%s\"", name);
    struct http_request req = {.method = "DELETE", .path = path};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    fprintf(ctx->out, "project %s removed\n", name);
    return CLI_EXIT_OK;
}

int
cmd_project_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_project_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "create"))
        return project_write(ctx, argc, argv, true);
    if (!strcmp(argv[0], "set"))
        return project_write(ctx, argc, argv, false);
    if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
        return project_read(ctx, argc, argv, false);
    if (!strcmp(argv[0], "show"))
        return project_read(ctx, argc, argv, true);
    if (!strcmp(argv[0], "rm"))
        return project_rm(ctx, argc, argv);
    return cli_usage_error(ctx, "project: unknown command \"%s\" (see vfleet project --help)",
                           argv[0]);
}
