/* `vfleet events`: what happened in the cluster (GET /v1/events), as a
 * table, or followed as it happens; a broken stream is resumed after the
 * last event seen, so nothing is printed twice or skipped. */
#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cmd.h"
#include "cli/table.h"
#include "common/name.h"

void
cmd_events_help(FILE *f)
{
    fputs("Usage: vfleet events [--follow] [--type T[,T...]] [--guest NAME] [--node NAME]\n"
          "                     [--project NAME] [--after SEQ] [--limit N]\n"
          "\n"
          "Lists the cluster's events, oldest first (guest.created, guest.placed,\n"
          "guest.state, guest.oom, guest.limit, guest.address, node.state, ...).\n"
          "A tenant reads its project's events only.\n"
          "\n"
          "  --follow       keep printing events as they happen (from the newest on,\n"
          "                 or after --after); reconnects and resumes where it stopped\n"
          "  --type T,...   only these types; \"guest.*\" matches a prefix\n"
          "  --guest NAME   only events about this guest\n"
          "  --node NAME    only events about this node\n"
          "  --project NAME only events about this project's guests\n"
          "  --after SEQ    only events after sequence number SEQ\n"
          "  --limit N      at most N events (without --follow; default all)\n"
          "\n"
          "With --json every event is printed as one line of JSON. A \"gap\" line says\n"
          "events were dropped by the master's retention before they could be read.\n",
          f);
}

/* What the command was asked. */
struct events_opts {
    bool follow;              /* stream */
    const char *types;        /* --type */
    const char *guest;        /* --guest */
    const char *node;         /* --node */
    const char *project;      /* --project */
    unsigned long long after; /* --after */
    bool have_after;          /* --after given */
    unsigned long long limit; /* --limit, 0 = all */
};

static int
events_parse(struct cli_ctx *ctx, int argc, char **argv, struct events_opts *o)
{
    static const struct option longopts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"type", required_argument, NULL, 't'},
        {"guest", required_argument, NULL, 'g'},
        {"node", required_argument, NULL, 'n'},
        {"after", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'l'},
        {"project", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int c;

    *o = (struct events_opts){0};
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+ft:g:n:p:a:l:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->follow = true;
            break;
        case 't':
            o->types = optarg;
            break;
        case 'g':
        case 'n':
        case 'p':
            if (!name_is_valid(optarg))
                return cli_usage_error(ctx, "events: \"%s\" is not a valid name", optarg);
            *(c == 'g' ? &o->guest : c == 'n' ? &o->node : &o->project) = optarg;
            break;
        case 'a':
        case 'l':
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || *end || optarg[0] < '0' || optarg[0] > '9')
                return cli_usage_error(ctx, "events: \"%s\" is not a number", optarg);
            if (c == 'a')
                o->after = v, o->have_after = true;
            else
                o->limit = v;
            break;
        case 'h':
            cmd_events_help(ctx->out);
            return ARGS_HELP;
        default:
            return cli_usage_error(ctx, "events: unknown option \"%s\"", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(ctx, "events: unexpected argument \"%s\"", argv[optind]);
    return 0;
}

/* The query's filters ("&type=..&guest=.."), escaped. */
static char *
filters(const struct events_opts *o)
{
    _cleanup_free_ char *t = o->types ? http_escape(o->types) : NULL;
    return xasprintf("%s%s%s%s%s%s%s%s", t ? "&type=" : "", t ? t : "", o->guest ? "&guest=" : "",
                     o->guest ? o->guest : "", o->node ? "&node=" : "", o->node ? o->node : "",
                     o->project ? "&project=" : "", o->project ? o->project : "");
}

/* One event as a line of text: SEQ TIME TYPE NODE GUEST MESSAGE. */
static void
print_event(struct cli_ctx *ctx, const json_t *e)
{
    if (ctx->json) {
        _cleanup_free_ char *s = json_dumps(e, JSON_COMPACT);
        fprintf(ctx->out, "%s\n", s ? s : "{}");
    } else if (!strcmp(cli_str(e, "type"), "gap")) {
        json_t *d = json_object_get(e, "data");
        fprintf(ctx->out, "%-6lld %-24s gap    events %lld to %lld were dropped by retention\n",
                cli_int(e, "seq"), "", cli_int(d, "from"), cli_int(d, "to"));
    } else {
        const char *n = cli_str(e, "node"), *g = cli_str(e, "guest");
        fprintf(ctx->out, "%-6lld %-24s %-14s %-10s %-12s %s\n", cli_int(e, "seq"),
                cli_str(e, "time"), cli_str(e, "type"), *n ? n : "-", *g ? g : "-",
                cli_str(e, "message"));
    }
    fflush(ctx->out);
}

static int
events_list(struct cli_ctx *ctx, const struct events_opts *o)
{
    _cleanup_free_ char *f = filters(o);
    unsigned long long after = o->after, shown = 0;

    if (!ctx->json)
        fprintf(ctx->out, "%-6s %-24s %-14s %-10s %-12s %s\n", "SEQ", "TIME", "TYPE", "NODE",
                "GUEST", "MESSAGE");
    for (;;) {
        _cleanup_(http_result_clear) struct http_result res = {0};
        _cleanup_free_ char *path = xasprintf("/v1/events?after=%llu&limit=500%s", after, f);
        struct http_request req = {.method = "GET", .path = path};
        int code = cli_call(ctx, &req, "events", &res);
        if (code != CLI_EXIT_OK)
            return code;
        json_t *gap = json_object_get(res.body, "gap"),
               *events = json_object_get(res.body, "events");
        if (gap) {
            json_t *e = json_pack("{s:I, s:s, s:O}", "seq", (json_int_t)cli_int(gap, "to"), "type",
                                  "gap", "data", gap);
            print_event(ctx, e);
            json_decref(e);
        }
        size_t i;
        json_t *e;
        json_array_foreach(events, i, e)
        {
            if (o->limit && shown >= o->limit)
                return CLI_EXIT_OK;
            print_event(ctx, e);
            shown++;
        }
        unsigned long long next = (unsigned long long)cli_int(res.body, "next");
        if (!json_array_size(events) || next <= after)
            return CLI_EXIT_OK;
        after = next;
    }
}

/* The follower's state. */
struct follow {
    struct cli_ctx *ctx;     /* where to print */
    unsigned long long last; /* the last seq printed (the resume point) */
    bool have_last;          /* a resume point exists */
};

static int
follow_line(void *userdata, const char *text, size_t len)
{
    struct follow *fw = userdata;

    if (!len)
        return 0; /* a keepalive */
    json_t *e = json_loadb(text, len, 0, NULL);
    if (!e)
        return 0;
    print_event(fw->ctx, e);
    fw->last = (unsigned long long)cli_int(e, "seq");
    fw->have_last = true;
    json_decref(e);
    return 0;
}

static int
events_follow(struct cli_ctx *ctx, const struct events_opts *o)
{
    _cleanup_free_ char *f = filters(o);
    struct follow fw = {.ctx = ctx, .last = o->after, .have_last = o->have_after};

    if (!ctx->json)
        fprintf(ctx->out, "%-6s %-24s %-14s %-10s %-12s %s\n", "SEQ", "TIME", "TYPE", "NODE",
                "GUEST", "MESSAGE");
    for (unsigned failures = 0;;) {
        _cleanup_free_ char *path = NULL;
        char after[40] = "";
        long status = 0;
        if (fw.have_last)
            snprintf(after, sizeof(after), "&after=%llu", fw.last);
        path = xasprintf("/v1/events?follow=true%s%s", after, f);
        int r =
            http_request_lines(ctx->http, path, "application/x-ndjson", &status, follow_line, &fw);
        if (r == 0 && status >= 300)
            return cli_exit_for_status(status);
        if (r < 0 && ++failures > 30) {
            fprintf(ctx->err, "vfleet: events: the master is unreachable\n");
            return CLI_EXIT_UNREACHABLE;
        }
        if (r >= 0)
            failures = 0;
        /* The stream ended or broke: resume after the last event seen. */
        struct timespec ts = {.tv_sec = 1};
        nanosleep(&ts, NULL);
    }
}

int
cmd_events_run(struct cli_ctx *ctx, int argc, char **argv)
{
    struct events_opts o;
    int r = events_parse(ctx, argc, argv, &o);

    if (r)
        return r == ARGS_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    return o.follow ? events_follow(ctx, &o) : events_list(ctx, &o);
}
