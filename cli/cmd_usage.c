/* `vfleet guest usage NAME --since 6h` (a guest's history as a table or
 * sparklines) and `vfleet usage traffic` (traffic per guest and hour, day
 * or month, for billing). */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/table.h"
#include "common/name.h"

void
cmd_usage_help(FILE *f)
{
    fputs("Usage: vfleet usage COMMAND\n"
          "\n"
          "  traffic [--period hour|day|month] [--from T] [--to T] [--guest NAME]\n"
          "          [--project NAME] [--by-project] [--csv]\n"
          "                 traffic in and out per guest (or project) and period (UTC),\n"
          "                 for billing; it continues across agent and guest restarts\n"
          "                 and moves, and deleted guests still count\n"
          "\n"
          "Options of traffic:\n"
          "  --period P   hour, day (default) or month\n"
          "  --from T     the first period is the one holding T (default: the current one)\n"
          "  --to T       up to T (default: now)\n"
          "  --guest NAME one guest\n"
          "  --project NAME  the guests of one project\n"
          "  --by-project summed per project and period\n"
          "  --csv        the master's CSV (guest,id,period,rx_bytes,tx_bytes,...)\n"
          "\n"
          "Times: Unix seconds, RFC 3339 (2024-05-01T00:00:00Z), now, or -DURATION\n"
          "(-6h, -2d: that long ago). Operators and admins only.\n",
          f);
}

/* ---- guest history ---- */

static const char spark_chars[8][4] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                       "\u2585", "\u2586", "\u2587", "\u2588"};

/* One row of sparklines: a metric's values over the points. */
static void
spark(FILE *f, const char *label, const double *v, size_t n, const char *unit, double scale)
{
    double max = 0;

    for (size_t i = 0; i < n; i++)
        if (v[i] > max)
            max = v[i];
    fprintf(f, "%-9s ", label);
    for (size_t i = 0; i < n; i++)
        fputs(spark_chars[max > 0 ? (int)(v[i] / max * 7 + 0.5) : 0], f);
    fprintf(f, "  max %.3g %s\n", max / scale, unit);
}

static double
field(const json_t *p, const char *metric, const char *what)
{
    return (double)cli_int(json_object_get(p, metric), what);
}

static void
history_sparks(struct cli_ctx *ctx, const json_t *points, double step_s)
{
    static const struct {
        const char *label;  /* row label */
        const char *metric; /* the usage field */
        const char *what;   /* avg, max or increase */
        double per;         /* divide by step (a rate) when 1 */
        const char *unit;   /* shown unit */
        double scale;       /* unit scale */
    } rows[] = {
        {"cpu", "cpu_ns", "increase", 1, "cores", 1e9},
        {"memory", "memory", "avg", 0, "MiB", 1048576},
        {"procs", "procs", "max", 0, "", 1},
        {"disk", "disk_bytes", "max", 0, "MiB", 1048576},
        {"net in", "net_rx_bytes", "increase", 1, "kB/s", 1000},
        {"net out", "net_tx_bytes", "increase", 1, "kB/s", 1000},
    };
    size_t n = json_array_size(points);
    double *v = xcalloc(n ? n : 1, sizeof(*v));

    for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
        for (size_t i = 0; i < n; i++) {
            v[i] = field(json_array_get(points, i), rows[r].metric, rows[r].what);
            if (rows[r].per)
                v[i] /= step_s;
        }
        spark(ctx->out, rows[r].label, v, n, rows[r].unit, rows[r].scale);
    }
    free(v);
}

static void
history_table(struct cli_ctx *ctx, const json_t *points, double step_s)
{
    static const char *const hdr[] = {"TIME",       "SAMPLES", "CPU",    "MEMORY AVG",
                                      "MEMORY MAX", "PROCS",   "NET IN", "NET OUT"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(hdr), hdr);
    size_t i;
    json_t *p;
    char a[32], b[32], c[32], d[32];

    for (size_t k = 1; k < ARRAY_SIZE(hdr); k++)
        table_align_right(t, k);
    json_array_foreach(points, i, p)
    {
        table_add(t, cli_str(p, "time"));
        table_addf(t, "%lld", cli_int(p, "samples"));
        table_addf(t, "%.2f", field(p, "cpu_ns", "increase") / 1e9 / step_s);
        table_add(t, table_size((uint64_t)field(p, "memory", "avg"), a, sizeof(a)));
        table_add(t, table_size((uint64_t)field(p, "memory", "max"), b, sizeof(b)));
        table_addf(t, "%.0f", field(p, "procs", "max"));
        table_add(t, table_size((uint64_t)field(p, "net_rx_bytes", "increase"), c, sizeof(c)));
        table_add(t, table_size((uint64_t)field(p, "net_tx_bytes", "increase"), d, sizeof(d)));
    }
    cli_print_table(ctx, t);
}

int
cmd_guest_usage_history(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"since", required_argument, NULL, 's'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"step", required_argument, NULL, 'p'},
        {"spark", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *to = NULL, *step = NULL;
    _cleanup_free_ char *since = NULL;
    bool sparks = false;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            free(since);
            since = xasprintf("-%s", optarg);
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'p':
            step = optarg;
            break;
        case 'k':
            sparks = true;
            break;
        case 'h':
            cmd_guest_help(ctx->out);
            return CLI_EXIT_OK;
        default:
            return cli_usage_error(ctx, "usage: bad option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind != argc - 1 || !name_is_valid(argv[optind]))
        return cli_usage_error(ctx, "usage: expected one guest NAME");
    const char *name = argv[optind];
    _cleanup_free_ char *f = http_escape(since ? since : from ? from : "-1h");
    _cleanup_free_ char *tt = to ? http_escape(to) : NULL;
    _cleanup_free_ char *st = step ? http_escape(step) : NULL;
    _cleanup_free_ char *path =
        xasprintf("/v1/guests/%s/usage?from=%s%s%s%s%s", name, f, tt ? "&to=" : "", tt ? tt : "",
                  st ? "&step=" : "", st ? st : "");
    _cleanup_free_ char *what = xasprintf("guest \"%s\"", name);
    _cleanup_(http_result_clear) struct http_result res = {0};
    struct http_request req = {.method = "GET", .path = path};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    json_t *points = json_object_get(res.body, "points");
    double step_s = (double)cli_int(res.body, "step");
    fprintf(ctx->out, "guest %s, %s to %s, every %llds (%s)\n", name, cli_str(res.body, "from"),
            cli_str(res.body, "to"), cli_int(res.body, "step"), cli_str(res.body, "resolution"));
    if (step_s <= 0)
        step_s = 1;
    if (sparks)
        history_sparks(ctx, points, step_s);
    else
        history_table(ctx, points, step_s);
    return CLI_EXIT_OK;
}

/* ---- billing ---- */

struct traffic_opts {
    const char *period;  /* hour, day, month */
    const char *from;    /* --from */
    const char *to;      /* --to */
    const char *guest;   /* --guest */
    const char *project; /* --project */
    bool by_project;     /* --by-project */
    bool csv;            /* --csv */
};

static int
traffic_parse(struct cli_ctx *ctx, int argc, char **argv, struct traffic_opts *o)
{
    static const struct option longopts[] = {
        {"period", required_argument, NULL, 'p'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"guest", required_argument, NULL, 'g'},
        {"project", required_argument, NULL, 'P'},
        {"by-project", no_argument, NULL, 'b'},
        {"csv", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct traffic_opts){.period = "day"};
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'p')
            o->period = optarg;
        else if (c == 'f')
            o->from = optarg;
        else if (c == 't')
            o->to = optarg;
        else if (c == 'g')
            o->guest = optarg;
        else if (c == 'P')
            o->project = optarg;
        else if (c == 'b')
            o->by_project = true;
        else if (c == 'c')
            o->csv = true;
        else if (c == 'h')
            return cmd_usage_help(ctx->out), ARGS_HELP;
        else
            return cli_usage_error(ctx, "traffic: bad option \"%s\"", argv[optind - 1]);
    }
    if (optind < argc)
        return cli_usage_error(ctx, "traffic: unexpected argument \"%s\"", argv[optind]);
    if (strcmp(o->period, "hour") && strcmp(o->period, "day") && strcmp(o->period, "month"))
        return cli_usage_error(ctx, "traffic: --period is hour, day or month");
    if (o->guest && !name_is_valid(o->guest))
        return cli_usage_error(ctx, "traffic: \"%s\" is not a valid name", o->guest);
    if (o->project && !name_is_valid(o->project))
        return cli_usage_error(ctx, "traffic: \"%s\" is not a valid name", o->project);
    return 0;
}

/* A period's start as the table shows it: 2024-05, 2024-05-01 or
 * 2024-05-01 07:00 (UTC). */
static const char *
period_short(const char *period, const char *start, char *buf, size_t len)
{
    if (strlen(start) < 16)
        return start;
    if (!strcmp(period, "month"))
        snprintf(buf, len, "%.7s", start);
    else if (!strcmp(period, "day"))
        snprintf(buf, len, "%.10s", start);
    else
        snprintf(buf, len, "%.10s %.5s", start, start + 11);
    return buf;
}

static int
usage_traffic(struct cli_ctx *ctx, int argc, char **argv)
{
    static const char *const hdr[] = {"GUEST", "PROJECT", "PERIOD", "IN", "OUT"};
    struct traffic_opts o;
    int r = traffic_parse(ctx, argc, argv, &o);

    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    _cleanup_free_ char *f = o.from ? http_escape(o.from) : NULL;
    _cleanup_free_ char *t = o.to ? http_escape(o.to) : NULL;
    _cleanup_free_ char *path =
        xasprintf("/v1/usage/traffic?period=%s%s%s%s%s%s%s%s%s%s", o.period, f ? "&from=" : "",
                  f ? f : "", t ? "&to=" : "", t ? t : "", o.guest ? "&guest=" : "",
                  o.guest ? o.guest : "", o.project ? "&project=" : "", o.project ? o.project : "",
                  o.by_project ? "&by=project" : "");
    _cleanup_(http_result_clear) struct http_result res = {0};
    o.csv = o.csv || ctx->format == CLI_FORMAT_CSV; /* --output csv: the master's CSV */
    struct http_request req = {.method = "GET", .path = path, .accept = o.csv ? "text/csv" : NULL};
    int code = cli_call(ctx, &req, "traffic", &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (o.csv) {
        fwrite(res.raw ? res.raw : "", 1, res.raw_len, ctx->out);
        return CLI_EXIT_OK;
    }
    if (ctx->json) {
        cli_print_json(ctx, res.body);
        return CLI_EXIT_OK;
    }
    /* By project: no GUEST column. */
    size_t skip = o.by_project ? 1 : 0;
    _cleanup_(table_destroy) table_t *tb = table_new(ARRAY_SIZE(hdr) - skip, hdr + skip);
    table_align_right(tb, 3 - skip);
    table_align_right(tb, 4 - skip);
    size_t i;
    json_t *row;
    char a[32], b[32], per[24];
    json_array_foreach(json_object_get(res.body, "rows"), i, row)
    {
        if (!o.by_project)
            table_add(tb, cli_str(row, "guest"));
        table_add(tb,
                  json_is_string(json_object_get(row, "project")) ? cli_str(row, "project") : "-");
        table_add(tb, period_short(o.period, cli_str(row, "period"), per, sizeof(per)));
        table_add(tb, table_size((uint64_t)cli_int(row, "rx_bytes"), a, sizeof(a)));
        table_add(tb, table_size((uint64_t)cli_int(row, "tx_bytes"), b, sizeof(b)));
    }
    table_print(tb, ctx->out);
    return CLI_EXIT_OK;
}

int
cmd_usage_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_usage_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "traffic"))
        return usage_traffic(ctx, argc, argv);
    return cli_usage_error(ctx, "usage: unknown command \"%s\" (see vfleet usage --help)", argv[0]);
}
