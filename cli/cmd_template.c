/* `vfleet template push NAME [PATH] [--to NODE]...` and `vfleet template rm
 * NAME`: the master's template library (docs/api.md, "Templates"). PATH is
 * a directory (packed here into a template archive, archive/archive.h) or
 * an archive made before; it is uploaded (POST /v1/archives) and added
 * under NAME (POST /v1/templates). --to sends it to those nodes at once
 * (POST /v1/templates/{name}/distribute), following each fetch; without
 * it, nodes get it when a guest of it is placed on one that lacks it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/cmd_archive.h"
#include "cli/cmd_op.h"
#include "common/mem.h"

void
cmd_template_push_help(FILE *f)
{
    fputs("  push NAME [PATH] [--to NODE]...       add PATH (a directory, packed here, or a\n"
          "                                       template archive) to the master's library as\n"
          "                                       NAME; --to also sends it to NODE now (without\n"
          "                                       PATH: send the library's NAME)\n"
          "  rm NAME                              remove NAME from the library (nodes keep\n"
          "                                       their copies)\n",
          f);
}

static void
json_decref_p(json_t **p)
{
    json_decref(*p);
}

/* Packs the tree at dir into a template archive at a new temporary file. */
static int
pack_dir(struct cli_ctx *ctx, const char *name, const char *dir, char *out, size_t n)
{
    char created[40], err[256] = "";
    time_t now = time(NULL);
    const char *tmp = getenv("TMPDIR");

    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(out, n, "%s/vfleet-template-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    _cleanup_close_ int fd = mkostemp(out, O_CLOEXEC);
    if (fd < 0) {
        fprintf(ctx->err, "vfleet: cannot make a temporary file: %s\n", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    json_t *man = json_pack("{s:i, s:s, s:s, s:s}", "format", ARCHIVE_FORMAT, "kind", "template",
                            "template", name, "created", created);
    _cleanup_free_ char *text = json_dumps(man, JSON_COMPACT);
    json_decref(man);
    if (archive_pack(text, dir, NULL, fd, NULL, err, sizeof(err)) < 0) {
        fprintf(ctx->err, "vfleet: cannot pack \"%s\": %s\n", dir, err);
        unlink(out);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

static int
add(struct cli_ctx *ctx, const char *name, const char *path)
{
    struct stat st;
    char packed[512] = "", id[64];
    int code;

    if (stat(path, &st) < 0) {
        fprintf(ctx->err, "vfleet: cannot read \"%s\": %s\n", path, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (S_ISDIR(st.st_mode) &&
        (code = pack_dir(ctx, name, path, packed, sizeof(packed))) != CLI_EXIT_OK)
        return code;
    code = cmd_archive_upload(ctx, packed[0] ? packed : path, id);
    if (packed[0])
        unlink(packed);
    if (code != CLI_EXIT_OK)
        return code;
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_(json_decref_p) json_t *body = json_pack("{s:s, s:s}", "name", name, "archive", id);
    struct http_request req = {.method = "POST", .path = "/v1/templates", .body = body};
    code = cli_call(ctx, &req, "template", &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json)
        cli_print_json(ctx, res.body);
    else
        fprintf(ctx->out, "template %s in the library (sha256 %.16s..., %lld bytes)\n", name,
                cli_str(res.body, "sha256"), cli_int(res.body, "size"));
    return CLI_EXIT_OK;
}

static int
distribute(struct cli_ctx *ctx, const char *name, json_t *nodes)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    _cleanup_free_ char *path = xasprintf("/v1/templates/%s/distribute", name);
    _cleanup_(json_decref_p) json_t *body = json_pack("{s:O}", "nodes", nodes);
    struct http_request req = {.method = "POST", .path = path, .body = body};
    int code = cli_call(ctx, &req, "template", &res), worst = CLI_EXIT_OK;
    size_t i;
    json_t *v;

    if (code != CLI_EXIT_OK)
        return code;
    json_array_foreach(json_object_get(res.body, "present"), i, v)
    {
        if (!ctx->json)
            fprintf(ctx->out, "node %s has template %s already\n", json_string_value(v), name);
    }
    json_array_foreach(json_object_get(res.body, "operations"), i, v)
    {
        code = cmd_op_follow(ctx, cli_str(v, "operation"));
        if (code != CLI_EXIT_OK)
            worst = code;
    }
    return worst;
}

int
cmd_template_push(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_(json_decref_p) json_t *nodes = json_array();
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            cmd_template_help(ctx->out);
            return CLI_EXIT_OK;
        } else if (c == 't' && name_is_valid(optarg)) {
            json_array_append_new(nodes, json_string(optarg));
        } else {
            return cli_usage_error(ctx, "template push: bad option or node name \"%s\"",
                                   argv[optind - 1]);
        }
    }
    if (optind >= argc || optind + 2 < argc)
        return cli_usage_error(ctx, "template push: expected NAME [PATH]");
    const char *name = argv[optind], *path = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (!name_is_valid(name))
        return cli_usage_error(ctx, "template push: \"%s\" is not a template name", name);
    if (!path && json_array_size(nodes) == 0)
        return cli_usage_error(ctx, "template push: give a PATH, --to NODE, or both");
    int code = path ? add(ctx, name, path) : CLI_EXIT_OK;
    if (code != CLI_EXIT_OK || json_array_size(nodes) == 0)
        return code;
    return distribute(ctx, name, nodes);
}

int
cmd_template_rm(struct cli_ctx *ctx, int argc, char **argv)
{
    _cleanup_(http_result_clear) struct http_result res = {0};
    const char *name = NULL;
    int r = cli_simple_args(ctx, argc, argv, 1, &name, cmd_template_help);

    if (r != 0)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    _cleanup_free_ char *path = xasprintf("/v1/templates/%s", name);
    struct http_request req = {.method = "DELETE", .path = path};
    r = cli_call(ctx, &req, "template", &res);
    if (r == CLI_EXIT_OK && !ctx->json)
        fprintf(ctx->out, "template %s removed from the library\n", name);
    return r;
}
