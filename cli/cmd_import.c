/* `vfleet import vserver|openvz|freevps ...`: a guest of an old host becomes
 * a vfleet guest. The source's configuration is mapped (import_map.h), the
 * guest's root tree packed into a vfleet archive here, and the archive
 * imported (cmd_archive.h): the master places the guest with its addresses
 * and limits, its node unpacks the files into its new disk — owners, modes,
 * times, xattrs, hard links and the device nodes a guest may have — and
 * starts it. --dry-run prints the plan and every setting without an
 * equivalent, and changes nothing. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "cli/cmd.h"
#include "cli/cmd_archive.h"
#include "cli/import_map.h"
#include "common/name.h"

void
cmd_import_help(FILE *f)
{
    fputs("Usage: vfleet import SOURCE ... [options]\n"
          "\n"
          "  vserver DIR         a util-vserver guest: DIR is /etc/vservers/NAME, its root the\n"
          "                      vdir link (or --root)\n"
          "  openvz CTID.conf    an OpenVZ container: its root is VE_PRIVATE (or --root)\n"
          "  freevps SELF --root DIR\n"
          "                      a FreeVPS guest: its limits and addresses in the\n"
          "                      /proc/vservers/self text, its root tree\n"
          "\n"
          "Options:\n"
          "  --dry-run           print the plan and what has no equivalent; change nothing\n"
          "  --name N            the guest's name (default: the source's, as a DNS label)\n"
          "  --root DIR          the guest's root tree\n"
          "  --template T        the template under its files (default busybox)\n"
          "  --to NODE           the node (default: the scheduler's choice)\n"
          "  --new-ips           new addresses from the pools instead of the source's\n"
          "\n"
          "docs/import.md has what maps to what.\n",
          f);
}

struct import_opts {
    const char *source; /* vserver, openvz, freevps */
    const char *path;   /* DIR, CTID.conf or SELF */
    const char *name;   /* --name */
    const char *root;   /* --root */
    const char *tmpl;   /* --template */
    const char *to;     /* --to */
    bool dry_run;       /* --dry-run */
    bool new_ips;       /* --new-ips */
};

static int
parse(struct cli_ctx *ctx, int argc, char **argv, struct import_opts *o)
{
    static const struct option opts[] = {
        {"dry-run", no_argument, NULL, 'd'},    {"name", required_argument, NULL, 'n'},
        {"root", required_argument, NULL, 'r'}, {"template", required_argument, NULL, 't'},
        {"to", required_argument, NULL, 'o'},   {"new-ips", no_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int c;

    optind = 0;
    opterr = 0;
    o->tmpl = "busybox";
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            cmd_import_help(ctx->out);
            return 1;
        case 'd':
            o->dry_run = true;
            break;
        case 'n':
            o->name = optarg;
            break;
        case 'r':
            o->root = optarg;
            break;
        case 't':
            o->tmpl = optarg;
            break;
        case 'o':
            o->to = optarg;
            break;
        case 'i':
            o->new_ips = true;
            break;
        default:
            return cli_usage_error(ctx, "import: bad option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind + 2 != argc)
        return cli_usage_error(ctx,
                               "import: expected SOURCE and its file (see vfleet import --help)");
    o->source = argv[optind];
    o->path = argv[optind + 1];
    if ((o->name && !name_is_valid(o->name)) || (o->to && !name_is_valid(o->to)) ||
        !name_is_valid(o->tmpl))
        return cli_usage_error(ctx, "import: --name, --to and --template want names");
    return 0;
}

static void
print_plan(struct cli_ctx *ctx, const struct import_opts *o, const struct import_plan *p)
{
    size_t i;
    json_t *v;

    if (ctx->json) {
        json_t *j = json_pack("{s:O, s:s, s:I, s:O, s:O, s:O}", "spec", p->spec, "root", p->root,
                              "root_bytes", (json_int_t)p->root_bytes, "unmapped", p->unmapped,
                              "notes", p->notes, "excludes", p->excludes);
        cli_print_json(ctx, j);
        json_decref(j);
        return;
    }
    fprintf(ctx->out, "%s guest %s from %s %s\n", o->dry_run ? "would import" : "importing",
            cli_str(p->spec, "name"), o->source, o->path);
    fprintf(ctx->out, "  root: %s (%llu MiB)\n", p->root,
            (unsigned long long)(p->root_bytes >> 20));
    char *spec = json_dumps(p->spec, JSON_INDENT(2) | JSON_SORT_KEYS);
    fprintf(ctx->out, "  guest: %s\n", spec ? spec : "{}");
    free(spec);
    json_array_foreach(p->notes, i, v) fprintf(ctx->out, "  note: %s\n", json_string_value(v));
    if (json_array_size(p->unmapped))
        fputs("  not mapped:\n", ctx->out);
    json_array_foreach(p->unmapped, i, v)
    {
        fprintf(ctx->out, "    %s = %s: %s\n", cli_str(v, "setting"), cli_str(v, "value"),
                cli_str(v, "why"));
    }
}

/* Packs the plan's tree into a temporary archive and imports it. */
static int
pack_and_import(struct cli_ctx *ctx, const struct import_opts *o, struct import_plan *p)
{
    char tmp[] = "/tmp/vfleet-import-XXXXXX", err[512] = "";
    size_t n = json_array_size(p->excludes), i;
    const char **ex = xcalloc(n + 1, sizeof(char *));
    json_t *v;

    json_array_foreach(p->excludes, i, v) ex[i] = json_string_value(v);
    _cleanup_free_ char *from = xasprintf("%s:%s", o->source, o->path);
    json_t *man = json_pack("{s:i, s:O, s:s, s:s}", "format", ARCHIVE_FORMAT, "spec", p->spec,
                            "template", o->tmpl, "from", from);
    _cleanup_free_ char *text = json_dumps(man, JSON_COMPACT);
    json_decref(man);
    int fd = mkstemp(tmp);
    int r = fd < 0 ? -errno : archive_pack(text, p->root, ex, fd, NULL, err, sizeof(err));
    free(ex);
    if (fd >= 0)
        close(fd);
    if (r < 0) {
        unlink(tmp);
        fprintf(ctx->err, "vfleet: cannot pack %s: %s\n", p->root, err[0] ? err : strerror(-r));
        return CLI_EXIT_FAILURE;
    }
    json_t *body = json_pack("{s:b, s:o}", "keep_ips", !o->new_ips, "constraints", json_object());
    if (o->to)
        json_object_set_new(body, "to", json_string(o->to));
    int code = cmd_archive_import_file(ctx, tmp, body);
    json_decref(body);
    unlink(tmp);
    return code;
}

int
cmd_import_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct import_opts o = {0};
    struct import_plan p;
    int r = parse(ctx, argc, argv, &o);

    if (r)
        return r > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    import_plan_init(&p, o.tmpl);
    if (!strcmp(o.source, "vserver"))
        r = import_vserver(o.path, o.root, &p);
    else if (!strcmp(o.source, "openvz"))
        r = import_openvz(o.path, o.root, &p);
    else if (!strcmp(o.source, "freevps"))
        r = import_freevps(o.path, o.root, &p);
    else
        r = -EINVAL, snprintf(p.error, sizeof(p.error), "unknown source \"%s\"", o.source);
    if (r >= 0)
        r = import_finish(&p, o.name);
    if (r < 0) {
        fprintf(ctx->err, "vfleet: import: %s\n", p.error);
        import_plan_clear(&p);
        return r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    if (o.dry_run || !ctx->json)
        print_plan(ctx, &o, &p);
    int code = o.dry_run ? CLI_EXIT_OK : pack_and_import(ctx, &o, &p);
    import_plan_clear(&p);
    return code;
}
