/* `vfleet op ...`: operations (long actions: moves, drains), and following
 * one to its end — the progress bar on a terminal, one JSON line per change
 * with --json, a line per step otherwise (cmd.h, cmd_op.h). */
#include "cli/cmd_op.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/table.h"

#define POLL_MS 250 /* how often a followed operation is asked about */

void
cmd_op_help(FILE *f)
{
    fputs("Usage: vfleet op COMMAND\n"
          "\n"
          "  ls [--state S] [--guest G] [--parent ID]\n"
          "                 operations: moves, drains, exports, imports, template sends\n"
          "                 (S: running, done, failed, cancelled)\n"
          "  show ID        one operation in full\n"
          "  wait ID        follow it to its end (exit 0 when done, 1 when it failed)\n"
          "  cancel ID      stop it, when it is not past the point of no return\n"
          "\n"
          "Every command takes --json to print the master's JSON.\n",
          f);
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *
human(uint64_t v, char *buf, size_t n)
{
    return table_size(v, buf, n);
}

/* One line of the bar: kind, guest, nodes, step, bar, bytes, rate, ETA. */
static void
print_bar(struct cli_ctx *ctx, const json_t *op, bool tty)
{
    const json_t *p = json_object_get(op, "progress");
    uint64_t done = (uint64_t)cli_int(p, "bytes_done"), total = (uint64_t)cli_int(p, "bytes_total");
    bool drain = !strcmp(cli_str(op, "kind"), "drain");
    char line[256], a[32], b[32], c[32];
    int n =
        snprintf(line, sizeof(line), "%s %s%s%s [%s]", cli_str(op, "kind"),
                 *cli_str(op, "guest") ? cli_str(op, "guest") : cli_str(op, "node"),
                 *cli_str(op, "target") ? " -> " : "", cli_str(op, "target"), cli_str(op, "step"));
    if (total > 0 && n > 0 && (size_t)n < sizeof(line)) {
        unsigned pct = (unsigned)(done * 100 / total), w = 24, fill = pct * w / 100;
        char bar[32];
        for (unsigned i = 0; i < w; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[w] = '\0';
        if (drain)
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %3u%% %llu/%llu guests", bar,
                          pct, (unsigned long long)done, (unsigned long long)total);
        else
            n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %3u%% %s/%s %s/s", bar, pct,
                          human(done, a, sizeof(a)), human(total, b, sizeof(b)),
                          human((uint64_t)cli_int(p, "rate"), c, sizeof(c)));
        if (!drain && json_is_integer(json_object_get(p, "eta_s")) && n > 0 &&
            (size_t)n < sizeof(line))
            snprintf(line + n, sizeof(line) - (size_t)n, " ETA %llds", cli_int(p, "eta_s"));
    }
    if (tty)
        fprintf(ctx->err, "\r\033[K%s", line);
    else
        fprintf(ctx->err, "%s\n", line);
    fflush(ctx->err);
}

/* The summary of an ended operation. */
static void
print_end(struct cli_ctx *ctx, const json_t *op)
{
    const json_t *r = json_object_get(op, "result");
    const char *state = cli_str(op, "state");

    fprintf(ctx->out, "%s %s: %s", cli_str(op, "kind"),
            *cli_str(op, "guest") ? cli_str(op, "guest") : cli_str(op, "node"), state);
    if (!strcmp(cli_str(op, "kind"), "move")) {
        fprintf(ctx->out, " (%s, %s -> %s", cli_str(r, "mode"), cli_str(r, "from"),
                cli_str(r, "to"));
        if (json_object_get(r, "downtime_ms"))
            fprintf(ctx->out, ", downtime %lld ms", cli_int(r, "downtime_ms"));
        if (json_object_get(r, "bytes_sent")) {
            char a[32];
            fprintf(ctx->out, ", %s sent", human((uint64_t)cli_int(r, "bytes_sent"), a, sizeof(a)));
        }
        fputc(')', ctx->out);
    } else if (!strcmp(cli_str(op, "kind"), "drain")) {
        fprintf(ctx->out, " (%lld moved)", cli_int(r, "moved"));
    }
    fputc('\n', ctx->out);
    if (*cli_str(op, "error"))
        fprintf(ctx->out, "  error: %s\n", cli_str(op, "error"));
    if (*cli_str(r, "note"))
        fprintf(ctx->out, "  note: %s\n", cli_str(r, "note"));
    if (*cli_str(r, "warning"))
        fprintf(ctx->out, "  warning: %s\n", cli_str(r, "warning"));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(r, "failed"), k, v)
    {
        fprintf(ctx->out, "  %s stays: %s\n", k, json_string_value(v) ? json_string_value(v) : "");
    }
}

int
cmd_op_follow(struct cli_ctx *ctx, const char *id)
{
    _cleanup_free_ char *path = xasprintf("/v1/operations/%s", id);
    _cleanup_free_ char *what = xasprintf("operation %s", id);
    bool tty = !ctx->json && isatty(fileno(ctx->err));
    char last[512] = "", last_step[96] = "";

    for (;;) {
        _cleanup_(http_result_clear) struct http_result res = {0};
        struct http_request req = {.method = "GET", .path = path};
        int code = cli_call(ctx, &req, what, &res);
        if (code != CLI_EXIT_OK)
            return code;
        json_t *op = res.body;
        bool ended = strcmp(cli_str(op, "state"), "running") != 0;
        char now[512];
        snprintf(now, sizeof(now), "%s/%s/%lld", cli_str(op, "state"), cli_str(op, "step"),
                 cli_int(json_object_get(op, "progress"), "bytes_done"));
        if (ctx->json) {
            if (strcmp(now, last) != 0) {
                char *s = json_dumps(op, JSON_COMPACT);
                fprintf(ctx->out, "%s\n", s ? s : "{}");
                fflush(ctx->out);
                free(s);
            }
        } else if (!ended) {
            char step[96];
            snprintf(step, sizeof(step), "%s/%s", cli_str(op, "state"), cli_str(op, "step"));
            /* A terminal gets the bar redrawn; a log gets a line per step. */
            if (tty || strcmp(step, last_step) != 0)
                print_bar(ctx, op, tty);
            strscpy(last_step, step, sizeof(last_step));
        }
        strscpy(last, now, sizeof(last));
        if (ended) {
            if (tty)
                fputs("\r\033[K", ctx->err);
            if (!ctx->json)
                print_end(ctx, op);
            return !strcmp(cli_str(op, "state"), "done") ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
        }
        sleep_ms(POLL_MS);
    }
}

static void
op_ls_print(struct cli_ctx *ctx, const json_t *ops)
{
    static const char *const headers[] = {"ID", "KIND", "GUEST", "FROM", "TO", "STATE", "STEP"};
    _cleanup_(table_destroy) table_t *t = table_new(ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *o;

    json_array_foreach(ops, i, o)
    {
        table_add(t, cli_str(o, "id"));
        table_add(t, cli_str(o, "kind"));
        table_add(t, *cli_str(o, "guest") ? cli_str(o, "guest") : "-");
        table_add(t, *cli_str(o, "node") ? cli_str(o, "node") : "-");
        table_add(t, *cli_str(o, "target") ? cli_str(o, "target") : "-");
        table_add(t, cli_str(o, "state"));
        table_add(t, cli_str(o, "step"));
    }
    if (table_rows(t) == 0)
        fputs("No operations.\n", ctx->out);
    else
        cli_print_table(ctx, t);
}

static int
op_ls(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"guest", required_argument, NULL, 'g'},
        {"parent", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *guest = NULL, *parent = NULL;
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            cmd_op_help(ctx->out);
            return CLI_EXIT_OK;
        }
        if (c == 's')
            state = optarg;
        else if (c == 'g')
            guest = optarg;
        else if (c == 'p')
            parent = optarg;
        else
            return cli_usage_error(ctx, "op ls: bad option \"%s\"", argv[optind - 1]);
    }
    _cleanup_free_ char *es = state ? http_escape(state) : NULL;
    _cleanup_free_ char *eg = guest ? http_escape(guest) : NULL;
    _cleanup_free_ char *ep = parent ? http_escape(parent) : NULL;
    /* Only the filters given: the master refuses a parameter it does not
     * take (this sent "?x=1" once, to start the query). */
    _cleanup_free_ char *path =
        xasprintf("/v1/operations?%s%s%s%s%s%s", es ? "&state=" : "", es ? es : "",
                  eg ? "&guest=" : "", eg ? eg : "", ep ? "&parent=" : "", ep ? ep : "");
    size_t q = strlen("/v1/operations");
    if (path[q + 1] == '&')
        memmove(path + q + 1, path + q + 2, strlen(path + q + 2) + 1);
    else
        path[q] = '\0';
    return cli_list_show(ctx, path, "operations", op_ls_print);
}

static int
op_one(struct cli_ctx *ctx, int argc, char **argv, const char *method)
{
    _cleanup_(http_result_clear) struct http_result res = {0};

    if (argc != 2 || !name_is_valid(argv[1]))
        return cli_usage_error(ctx, "op %s: expected one operation ID", argv[0]);
    if (!strcmp(argv[0], "wait"))
        return cmd_op_follow(ctx, argv[1]);
    _cleanup_free_ char *path = xasprintf("/v1/operations/%s", argv[1]);
    _cleanup_free_ char *what = xasprintf("operation %s", argv[1]);
    struct http_request req = {.method = method, .path = path};
    int code = cli_call(ctx, &req, what, &res);
    if (code != CLI_EXIT_OK)
        return code;
    if (ctx->json || !strcmp(method, "GET"))
        cli_print_json(ctx, res.body);
    else
        fprintf(ctx->out, "operation %s: cancel asked (%s)\n", argv[1], cli_str(res.body, "step"));
    return CLI_EXIT_OK;
}

int
cmd_op_run(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        cmd_op_help(argc < 1 ? ctx->err : ctx->out);
        return argc < 1 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "ls") || !strcmp(argv[0], "list"))
        return op_ls(ctx, argc, argv);
    if (!strcmp(argv[0], "show") || !strcmp(argv[0], "wait"))
        return op_one(ctx, argc, argv, "GET");
    if (!strcmp(argv[0], "cancel"))
        return op_one(ctx, argc, argv, "DELETE");
    return cli_usage_error(ctx, "op: unknown command \"%s\" (see vfleet op --help)", argv[0]);
}
