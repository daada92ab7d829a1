/* The master's Prometheus metrics (metrics.h). */
#include "master/metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/mtime.h"
#include "common/textbuf.h"
#include "master/api.h"
#include "master/db_usage.h"
#include "master/events.h"
#include "master/events_stream.h"
#include "master/guests.h"
#include "master/http_handlers.h"
#include "master/trust.h"
#include "master/usage.h"
#include "proto/link.h"

/* A histogram of durations in seconds. */
#define HIST_BUCKETS 12
struct histogram {
    uint64_t counts[HIST_BUCKETS + 1]; /* per bucket (not cumulative), the last is +Inf */
    double sum;                        /* seconds observed */
    uint64_t n;                        /* observations */
};

static const double bounds[HIST_BUCKETS] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
                                            0.1,    0.5,    1,     5,     10,   60};

/* HTTP answers by route and status. */
struct http_count {
    const char *route; /* a route name (static), "none" */
    unsigned status;   /* the status */
    uint64_t n;        /* answers */
};

#define DISPATCH_TYPES MSG_TYPE_COUNT
struct metrics {
    struct http_count *http;             /* one per (route, status) seen */
    size_t n_http;                       /* entries in http */
    uint64_t placements[3];              /* placed, unplaceable, failed */
    struct histogram placement;          /* placement durations */
    uint64_t answers[DISPATCH_TYPES][2]; /* per command type: nacked, acked */
    struct histogram dispatch;           /* queued -> answered */
};

static struct metrics *
metrics_of(master_t *m)
{
    if (!m->metrics)
        m->metrics = xcalloc(1, sizeof(*m->metrics));
    return m->metrics;
}

void
metrics_free(master_t *m)
{
    if (!m->metrics)
        return;
    free(m->metrics->http);
    free(m->metrics);
    m->metrics = NULL;
}

static void
observe(struct histogram *h, double secs)
{
    size_t i = 0;

    while (i < HIST_BUCKETS && secs > bounds[i])
        i++;
    h->counts[i]++;
    h->sum += secs;
    h->n++;
}

void
metrics_http_observer(void *userdata, const struct http_req *req, unsigned status)
{
    struct metrics *mt = metrics_of(userdata);
    const char *route = req->route ? req->route : "none";

    for (size_t i = 0; i < mt->n_http; i++)
        if (mt->http[i].status == status && !strcmp(mt->http[i].route, route)) {
            mt->http[i].n++;
            return;
        }
    mt->http = xrealloc(mt->http, (mt->n_http + 1) * sizeof(*mt->http));
    mt->http[mt->n_http++] = (struct http_count){route, status, 1};
}

void
metrics_placement(master_t *m, int r, uint64_t ns)
{
    struct metrics *mt = metrics_of(m);

    mt->placements[r == 0 ? 0 : (r == -EXFULL || r == -ENOSPC) ? 1 : 2]++;
    observe(&mt->placement, (double)ns / 1e9);
}

void
metrics_dispatch_answer(master_t *m, const struct dispatch_done *d, bool acked)
{
    struct metrics *mt = metrics_of(m);
    uint64_t now = time_mono_ms();

    if ((unsigned)d->type < DISPATCH_TYPES)
        mt->answers[d->type][acked]++;
    observe(&mt->dispatch, now > d->queued_ms ? (double)(now - d->queued_ms) / 1e3 : 0);
}

/* ---- rendering ---- */

/* v in decimal, padded with zeros to width digits (0 = none). */
static void
out_u64(struct textbuf *o, uint64_t v, unsigned width)
{
    char d[24];
    size_t i = sizeof(d);

    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v || sizeof(d) - i < width);
    textbuf_put(o, d + i, sizeof(d) - i);
}

static void
family(struct textbuf *o, const char *name, const char *type, const char *help)
{
    textbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
histogram_out(struct textbuf *o, const char *name, const char *help, const struct histogram *h)
{
    uint64_t cum = 0;

    family(o, name, "histogram", help);
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        cum += h->counts[i];
        textbuf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[HIST_BUCKETS];
    textbuf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
                   (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

/* ---- the node link's counters (proto/link.h) ---- */

/* One node's counts summed over the master's links. */
static struct link_peer_stats
node_link_counts(master_t *m, const char *node)
{
    struct link_peer_stats sum = {0};

    for (unsigned i = 0; i < m->n_links; i++) {
        struct link_peer_stats st;
        if (link_get_peer_stats(m->links[i].link, node, &st) == 0) {
            sum.violations += st.violations;
            sum.kicked_violation += st.kicked_violation;
            sum.kicked_flood += st.kicked_flood;
        }
    }
    return sum;
}

/* Per node, by name, only for the nodes of the registry: a peer names
 * itself, and a label from any name it likes would let a stranger make
 * series without bound. What every other name did is in the link's
 * families (link_out) alone. */
static void
node_link_out(struct textbuf *o, master_t *m)
{
    size_t n = registry_count(m->reg);
    struct link_peer_stats *c = xcalloc(n ? n : 1, sizeof(*c));

    for (size_t i = 0; i < n; i++)
        c[i] = node_link_counts(m, registry_at(m->reg, i)->name);
    family(o, "vfleet_node_protocol_violations_total", "counter",
           "Protocol violations under the node's name (frames that are not messages, messages "
           "of several frames).");
    for (size_t i = 0; i < n; i++)
        textbuf_printf(o, "vfleet_node_protocol_violations_total{node=\"%s\"} %llu\n",
                       registry_at(m->reg, i)->name, (unsigned long long)c[i].violations);
    family(o, "vfleet_node_connections_cut_total", "counter",
           "Connections under the node's name the master cut, by reason.");
    for (size_t i = 0; i < n; i++) {
        const char *name = registry_at(m->reg, i)->name;
        textbuf_printf(o, "vfleet_node_connections_cut_total{node=\"%s\",reason=\"flood\"} %llu\n",
                       name, (unsigned long long)c[i].kicked_flood);
        textbuf_printf(o,
                       "vfleet_node_connections_cut_total{node=\"%s\",reason=\"violations\"} "
                       "%llu\n",
                       name, (unsigned long long)c[i].kicked_violation);
    }
    free(c);
}

/* The node link as a whole: every peer, named or not, known or not. */
static void
link_out(struct textbuf *o, master_t *m)
{
    struct link_stats sum;

    trust_link_stats(m, &sum);
    const struct {
        const char *reason; /* the label's value */
        uint64_t n;         /* connections cut for it */
    } cuts[] = {
        {"flood", sum.kicked_flood},   {"violations", sum.kicked_violation},
        {"junk", sum.kicked_junk},     {"idle", sum.kicked_idle},
        {"denied", sum.kicked_denied}, {"kicked", sum.kicked_asked},
    };
    family(o, "vfleet_node_link_protocol_violations_total", "counter",
           "Protocol violations on the node link, under any peer name.");
    textbuf_printf(o, "vfleet_node_link_protocol_violations_total %llu\n",
                   (unsigned long long)sum.violations);
    family(o, "vfleet_node_link_connections_cut_total", "counter",
           "Node link connections the master cut, by reason.");
    for (size_t k = 0; k < ARRAY_SIZE(cuts); k++)
        textbuf_printf(o, "vfleet_node_link_connections_cut_total{reason=\"%s\"} %llu\n",
                       cuts[k].reason, (unsigned long long)cuts[k].n);
    family(o, "vfleet_node_link_messages_dropped_total", "counter",
           "Node link messages dropped unread (floods, junk, denied peers, several frames).");
    textbuf_printf(o, "vfleet_node_link_messages_dropped_total %llu\n",
                   (unsigned long long)sum.dropped);
}

static void
nodes_out(struct textbuf *o, master_t *m)
{
    static const struct {
        const char *name; /* the metric */
        const char *help; /* its help */
    } fam[] = {
        {"vfleet_node_capacity_cpus", "CPUs the node offers to guests."},
        {"vfleet_node_capacity_memory_bytes", "Memory the node offers to guests."},
        {"vfleet_node_capacity_disk_bytes", "Disk the node offers to guest images."},
        {"vfleet_node_capacity_guests", "Guests the node accepts (0 = no limit)."},
        {"vfleet_node_allocated_cpus", "CPUs the guests placed on the node reserve."},
        {"vfleet_node_allocated_memory_bytes", "Memory the guests placed on the node reserve."},
        {"vfleet_node_allocated_disk_bytes", "Disk the guests placed on the node reserve."},
        {"vfleet_node_allocated_guests", "Guests placed on the node."},
        {"vfleet_node_outbox_commands", "Commands waiting for the node's answer."},
    };
    size_t n = registry_count(m->reg);
    uint64_t states[3] = {0};

    for (size_t i = 0; i < n; i++)
        states[registry_at(m->reg, i)->state < 3 ? registry_at(m->reg, i)->state : 2]++;
    family(o, "vfleet_nodes", "gauge", "Nodes by state.");
    for (int s = 0; s < 3; s++)
        textbuf_printf(o, "vfleet_nodes{state=\"%s\"} %llu\n", db_node_state_to_string(s),
                       (unsigned long long)states[s]);
    for (size_t k = 0; k < ARRAY_SIZE(fam); k++) {
        family(o, fam[k].name, "gauge", fam[k].help);
        for (size_t i = 0; i < n; i++) {
            struct registry_node *rn = registry_at(m->reg, i);
            struct sched_node_info info = {0};
            (void)sched_node_info(m->sched, rn->name, &info);
            double v[] = {(double)rn->cap.cpu / 1000,
                          (double)rn->cap.memory,
                          (double)rn->cap.disk,
                          (double)rn->cap.max_guests,
                          (double)info.used.cpu / 1000,
                          (double)info.used.memory,
                          (double)info.used.disk,
                          (double)info.guests,
                          (double)dispatch_pending(m->disp, rn->name, MSG_INVALID, NULL)};
            textbuf_printf(o, "%s{node=\"%s\"} %.17g\n", fam[k].name, rn->name, v[k]);
        }
    }
    /* No sample for a node whose count is not known (an older agent). */
    family(o, "vfleet_node_leftovers", "gauge",
           "Guests' leftovers the node holds: data directories with no record, counted at its "
           "agent's start ('vfleet-node leftovers' lists them).");
    for (size_t i = 0; i < n; i++) {
        struct registry_node *rn = registry_at(m->reg, i);
        if (rn->has_leftovers)
            textbuf_printf(o, "vfleet_node_leftovers{node=\"%s\"} %u\n", rn->name, rn->leftovers);
    }
    node_link_out(o, m);
}

/* How each metric of the usage vector is exported: its name, whether it is
 * scaled (cpu_ns to seconds) and its help. Order: proto/usage.h's vector. */
static const struct {
    const char *name; /* the Prometheus name */
    double scale;     /* multiplier */
    const char *help; /* the help text */
} usage_metrics[] = {
    {"vfleet_guest_cpu_seconds_total", 1e-9, "CPU time the guest used."},
    {"vfleet_guest_memory_bytes", 1, "Memory charged to the guest."},
    {"vfleet_guest_memory_peak_bytes", 1, "The highest memory charged to the guest."},
    {"vfleet_guest_rss_bytes", 1, "Resident memory of the guest."},
    {"vfleet_guest_swap_bytes", 1, "Swap the guest uses."},
    {"vfleet_guest_processes", 1, "Processes and threads in the guest."},
    {"vfleet_guest_disk_used_bytes", 1, "Bytes used on the guest's filesystem."},
    {"vfleet_guest_disk_used_inodes", 1, "Inodes used on the guest's filesystem."},
    {"vfleet_guest_io_read_bytes_total", 1, "Bytes the guest read from block devices."},
    {"vfleet_guest_io_written_bytes_total", 1, "Bytes the guest wrote to block devices."},
    {"vfleet_guest_io_reads_total", 1, "Block device reads of the guest."},
    {"vfleet_guest_io_writes_total", 1, "Block device writes of the guest."},
    {"vfleet_guest_network_receive_bytes_total", 1, "Bytes into the guest."},
    {"vfleet_guest_network_transmit_bytes_total", 1, "Bytes out of the guest."},
    {"vfleet_guest_network_receive_packets_total", 1, "Packets into the guest."},
    {"vfleet_guest_network_transmit_packets_total", 1, "Packets out of the guest."},
    {"vfleet_guest_tcp_established_sockets", 1, "Established TCP connections of the guest."},
};
_Static_assert(ARRAY_SIZE(usage_metrics) == USAGE_N_U64_FIELDS,
               "a Prometheus metric per USAGE_U64_FIELDS entry");

/* One guest as the scrape sees it. */
struct guest_row {
    char labels[3 * NAME_MAX_LEN + 32]; /* guest="...",node="...",project="..." */
    size_t labels_len;                  /* strlen(labels) */
    uint64_t v[USAGE_N_METRICS];        /* its latest sample, counters as totals */
    bool have;                          /* a sample exists */
};

struct guests_scan {
    master_t *m;            /* the master */
    struct guest_row *rows; /* every guest of the selection */
    size_t n;               /* entries in rows */
    size_t cap;             /* entries allocated in rows */
    struct textbuf *o;      /* where its vfleet_guest_info line goes */
};

/* Reads the guest's row as it comes from the store, never its spec: a
 * parse per guest made a scrape of 100,000 guests hold the loop for
 * seconds (docs/performance.md). */
static int
guest_seen(void *userdata, const struct db_guest_brief *g)
{
    struct guests_scan *s = userdata;
    const struct guest_usage *u = usage_latest(s->m, g->id);

    if (s->n == s->cap) {
        /* Doubling: one row at a time was quadratic in copies at 100,000
         * guests, and held the loop for tens of seconds. */
        s->cap = s->cap ? 2 * s->cap : 256;
        s->rows = xrealloc(s->rows, s->cap * sizeof(*s->rows));
    }
    struct guest_row *r = &s->rows[s->n++];
    int k = snprintf(r->labels, sizeof(r->labels), "guest=\"%s\",node=\"%s\",project=\"%s\"",
                     g->name, g->node ? g->node : "", g->project ? g->project : "default");
    r->labels_len = k < 0 ? 0 : (size_t)k < sizeof(r->labels) ? (size_t)k : sizeof(r->labels) - 1;
    r->have = u != NULL;
    if (u)
        usage_to_vec(u, r->v);
    textbuf_puts(s->o, "vfleet_guest_info{");
    textbuf_put(s->o, r->labels, r->labels_len);
    textbuf_puts(s->o, ",id=\"");
    textbuf_puts(s->o, g->id);
    textbuf_puts(s->o, "\",state=\"");
    textbuf_puts(s->o, db_observed_to_string(g->observed));
    textbuf_puts(s->o, "\",context=\"");
    out_u64(s->o, g->context, 0);
    textbuf_puts(s->o, "\"} 1\n");
    return 0;
}

#define FAIL_NAME(e, name) [e] = #name,
static const char *const fail_names[USAGE_FAIL_COUNT] = {USAGE_FAIL_FIELDS(FAIL_NAME)};
#undef FAIL_NAME

static void
guest_usage_out(struct textbuf *o, const struct guests_scan *s)
{
    for (unsigned i = 0; i < USAGE_N_U64_FIELDS; i++) {
        size_t name_len = strlen(usage_metrics[i].name);
        family(o, usage_metrics[i].name, db_usage_is_counter(i) ? "counter" : "gauge",
               usage_metrics[i].help);
        for (size_t k = 0; k < s->n; k++) {
            const struct guest_row *r = &s->rows[k];
            if (!r->have)
                continue;
            textbuf_put(o, usage_metrics[i].name, name_len);
            textbuf_put(o, "{", 1);
            textbuf_put(o, r->labels, r->labels_len);
            textbuf_put(o, "} ", 2);
            /* Integers as integers: exact, and much cheaper to print; CPU
             * nanoseconds as seconds with nine decimals, exact too. */
            if (usage_metrics[i].scale == 1) {
                out_u64(o, r->v[i], 0);
            } else {
                out_u64(o, r->v[i] / 1000000000, 0);
                textbuf_put(o, ".", 1);
                out_u64(o, r->v[i] % 1000000000, 9);
            }
            textbuf_put(o, "\n", 1);
        }
    }
    family(o, "vfleet_guest_limit_hits_total", "counter",
           "Times the guest hit a limit (OpenVZ failcnt; disk: times it became full).");
    for (size_t k = 0; k < s->n; k++)
        for (unsigned j = 0; s->rows[k].have && j < USAGE_FAIL_COUNT; j++) {
            textbuf_puts(o, "vfleet_guest_limit_hits_total{");
            textbuf_put(o, s->rows[k].labels, s->rows[k].labels_len);
            textbuf_puts(o, ",resource=\"");
            textbuf_puts(o, fail_names[j]);
            textbuf_puts(o, "\"} ");
            out_u64(o, s->rows[k].v[USAGE_N_U64_FIELDS + j], 0);
            textbuf_put(o, "\n", 1);
        }
}

/* The guest families of the selection (sel's node and project, NULL =
 * any): guests by state, and each guest's series unless the selection
 * holds more than cfg.metrics_guests_max guests. */
static int
guests_out(struct textbuf *o, master_t *m, const struct metrics_select *sel)
{
    struct guests_scan s = {.m = m, .o = o};
    uint64_t states[DB__OBS_MAX] = {0}, total = 0;

    int r = db_guest_count_states(m->db, sel->node, sel->project, states);
    if (r < 0)
        return r;
    family(o, "vfleet_guests", "gauge", "Guests by observed state.");
    for (int st = 0; st < DB__OBS_MAX; st++) {
        textbuf_printf(o, "vfleet_guests{state=\"%s\"} %llu\n", db_observed_to_string(st),
                       (unsigned long long)states[st]);
        total += states[st];
    }
    bool omit = total > m->cfg.metrics_guests_max;
    family(o, "vfleet_metrics_guests_omitted", "gauge",
           "Guests whose series this scrape left out: more than metrics_guests_max guests "
           "(scrape ?node=NAME instead).");
    textbuf_printf(o, "vfleet_metrics_guests_omitted %llu\n",
                   (unsigned long long)(omit ? total : 0));
    if (omit)
        return 0;
    family(o, "vfleet_guest_info", "gauge", "Every guest, with its id, state and context.");
    r = db_guest_brief_list(m->db, sel->node, sel->project, guest_seen, &s);
    if (r >= 0)
        guest_usage_out(o, &s);
    free(s.rows);
    return r < 0 ? r : 0;
}

static void
control_out(struct textbuf *o, master_t *m)
{
    static const char *const results[] = {"placed", "unplaceable", "failed"};
    struct metrics *mt = metrics_of(m);
    struct dispatch_stats ds;

    family(o, "vfleet_placements_total", "counter", "Placement decisions by result.");
    for (int i = 0; i < 3; i++)
        textbuf_printf(o, "vfleet_placements_total{result=\"%s\"} %llu\n", results[i],
                       (unsigned long long)mt->placements[i]);
    histogram_out(o, "vfleet_placement_duration_seconds", "Time a placement decision took.",
                  &mt->placement);
    dispatch_get_stats(m->disp, &ds);
    family(o, "vfleet_dispatch_commands_total", "counter", "Commands queued for nodes.");
    textbuf_printf(o, "vfleet_dispatch_commands_total %llu\n", (unsigned long long)ds.queued);
    family(o, "vfleet_dispatch_sends_total", "counter", "Command frames sent, re-sends included.");
    textbuf_printf(o, "vfleet_dispatch_sends_total %llu\n", (unsigned long long)ds.sent);
    family(o, "vfleet_dispatch_resends_total", "counter", "Command frames sent again.");
    textbuf_printf(o, "vfleet_dispatch_resends_total %llu\n", (unsigned long long)ds.resent);
    family(o, "vfleet_dispatch_resends_postponed_total", "counter",
           "Re-sends put off while the node was still answering older commands.");
    textbuf_printf(o, "vfleet_dispatch_resends_postponed_total %llu\n",
                   (unsigned long long)ds.postponed);
    family(o, "vfleet_dispatch_answers_total", "counter", "Node answers by command and result.");
    for (int t = 0; t < DISPATCH_TYPES; t++)
        for (int a = 0; a < 2; a++)
            if (mt->answers[t][a])
                textbuf_printf(
                    o, "vfleet_dispatch_answers_total{command=\"%s\",result=\"%s\"} %llu\n",
                    msg_type_name(t), a ? "ack" : "nack", (unsigned long long)mt->answers[t][a]);
    histogram_out(o, "vfleet_dispatch_answer_duration_seconds",
                  "Time from queueing a command to the node's answer.", &mt->dispatch);
    family(o, "vfleet_http_requests_total", "counter",
           "HTTP requests answered, by route and status.");
    for (size_t i = 0; i < mt->n_http; i++)
        textbuf_printf(o, "vfleet_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                       mt->http[i].route, mt->http[i].status, (unsigned long long)mt->http[i].n);
    family(o, "vfleet_node_link_backlog_seconds", "gauge",
           "How long node messages have waited unread (0 = the master keeps up).");
    textbuf_printf(o, "vfleet_node_link_backlog_seconds %.3f\n", m->behind_ms / 1000.0);
    family(o, "vfleet_node_link_backlog_max_seconds", "gauge", "The largest backlog since start.");
    textbuf_printf(o, "vfleet_node_link_backlog_max_seconds %.3f\n", m->behind_max_ms / 1000.0);
    link_out(o, m);
    family(o, "vfleet_usage_reports_skipped_total", "counter",
           "Usage reports skipped as read a usage interval or more late.");
    textbuf_printf(o, "vfleet_usage_reports_skipped_total %llu\n",
                   (unsigned long long)m->usage_shed);
    family(o, "vfleet_event_streams", "gauge", "Open event streams.");
    textbuf_printf(o, "vfleet_event_streams %u\n", event_streams_count(m));
    family(o, "vfleet_event_sequence", "gauge", "The newest event's sequence number.");
    textbuf_printf(o, "vfleet_event_sequence %llu\n", (unsigned long long)events_committed(m));
}

int
metrics_render(master_t *m, const struct metrics_select *sel, char **out, size_t *len)
{
    static const struct metrics_select all;
    bool slice = sel && (sel->node || sel->project);
    struct textbuf o;

    /* Most scrapes are larger than a first 1 KiB: start where the
     * exposition's own buffer started. */
    textbuf_init(&o, 64 * 1024);
    /* A slice is its guests' families; the cluster's come with the
     * unfiltered scrape. */
    if (!slice)
        nodes_out(&o, m);
    int r = guests_out(&o, m, sel ? sel : &all);
    if (!slice)
        control_out(&o, m);
    if (r < 0) {
        free(o.p);
        return r;
    }
    *out = textbuf_str(&o);
    *len = o.len;
    return 0;
}

/* The selection from the query (node, project; their syntax checked by the
 * edge, api.c's table): answers 404 or 503 itself and returns -errno then. */
static int
parse_select(master_t *m, struct http_req *req, struct metrics_select *sel)
{
    sel->node = httpd_query(req, "node");
    sel->project = httpd_query(req, "project");
    if (sel->node && !registry_get(m->reg, sel->node))
        return httpd_error(req, 404, "not_found", "node", "no node \"%s\"", sel->node), -ENOENT;
    if (sel->project) {
        struct db_project p = {0};
        int r = db_project_get(m->db, sel->project, &p);
        db_project_clear(&p);
        if (r == -ENOENT)
            return httpd_error(req, 404, "not_found", "project", "no project \"%s\"", sel->project),
                   r;
        if (r < 0)
            return httpd_error(req, 503, "unavailable", NULL, "cannot read the projects: %s",
                               strerror(-r)),
                   r;
    }
    return 0;
}

void
h_metrics(master_t *m, struct http_req *req, const struct api_match *am)
{
    struct metrics_select sel = {0};
    char *text = NULL;
    size_t len = 0;

    (void)am;
    if (parse_select(m, req, &sel) < 0)
        return;
    /* A scrape sees what is committed. */
    (void)master_batch_commit(m);
    int r = metrics_render(m, &sel, &text, &len);
    if (r < 0) {
        httpd_error(req, 503, "unavailable", NULL, "cannot read the metrics: %s", strerror(-r));
        return;
    }
    httpd_respond_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
