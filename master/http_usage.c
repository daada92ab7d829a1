/* Usage history and billing over HTTP:
 *   GET /v1/guests/{name}/usage?from=&to=&step=   a guest's history (history.h)
 *   GET /v1/usage/traffic?period=&from=&to=&guest= traffic per guest and period,
 *                                                  JSON or CSV (Accept: text/csv) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/name.h"
#include "master/api.h"
#include "master/history.h"
#include "master/http_edge.h"
#include "master/http_handlers.h"
#include "master/usage.h"

/* Default points of a history answer without step. */
#define USAGE_DEFAULT_POINTS 360

static const char *const tier_names[DB__TIER_MAX] = {"raw", "1m", "1h"};

/* from and to (defaults: the last hour); answers 400 itself. */
static int
range(master_t *m, struct http_req *req, uint64_t *from, uint64_t *to)
{
    const char *f = httpd_query(req, "from"), *t = httpd_query(req, "to");
    uint64_t now = master_now_ms(m);

    *to = now;
    if (t && history_parse_time(t, now, to) < 0) {
        httpd_error(req, 400, "bad_request", "to",
                    "to must be Unix seconds, RFC 3339, \"now\" or \"-DURATION\"");
        return -EINVAL;
    }
    *from = *to > 3600000 ? *to - 3600000 : 0;
    if (f && history_parse_time(f, now, from) < 0) {
        httpd_error(req, 400, "bad_request", "from",
                    "from must be Unix seconds, RFC 3339, \"now\" or \"-DURATION\"");
        return -EINVAL;
    }
    if (*from >= *to) {
        httpd_error(req, 400, "bad_request", "from", "from must be before to");
        return -EINVAL;
    }
    return 0;
}

static int
point(void *userdata, const struct db_roll *r)
{
    json_array_append_new(userdata, api_usage_point_json(r));
    return 0;
}

void
http_usage_history(master_t *m, struct http_req *req, const char *name, const char *id)
{
    const char *st = httpd_query(req, "step");
    uint64_t from, to, step = 0, step_out = 0;
    enum db_usage_tier tier;
    char tf[40], tt[40];

    if (range(m, req, &from, &to) < 0)
        return;
    if (st && (history_parse_duration(st, &step) < 0 || step == 0)) {
        httpd_error(req, 400, "bad_request", "step", "step must be a duration (\"60\", \"5m\")");
        return;
    }
    if (!st)
        step = (to - from) / USAGE_DEFAULT_POINTS;
    json_t *points = json_array();
    int r = history_series(m, id, from, to, step, &step_out, &tier, point, points);
    if (r < 0) {
        json_decref(points);
        if (r == -E2BIG)
            httpd_error(req, 400, "bad_request", "step", "at most %d points: raise step",
                        HISTORY_MAX_POINTS);
        else
            http_reply_errno(req, r, NULL, "cannot read the history: %s", strerror(-r));
        return;
    }
    const struct guest_usage *u = usage_latest(m, id);
    api_time_format(from, tf, sizeof(tf));
    api_time_format(to, tt, sizeof(tt));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:o}", "guest", name, "id", id, "from",
                          tf, "to", tt, "step", (json_int_t)(step_out / 1000), "resolution",
                          tier_names[tier], "points", points);
    json_object_set_new(o, "latest", u ? api_usage_json(u) : json_null());
    httpd_respond(req, 200, o);
}

/* ---- billing ---- */

struct traffic_out {
    json_t *rows;    /* JSON rows, or NULL for CSV */
    FILE *csv;       /* CSV lines */
    bool by_project; /* rows per project, not per guest */
};

static int
traffic_row(void *userdata, const struct history_traffic *t)
{
    struct traffic_out *o = userdata;
    const char *project = t->project ? t->project : "";

    if (o->csv) {
        if (o->by_project)
            fprintf(o->csv, "%s,", project);
        else
            fprintf(o->csv, "%s,%s,", t->name, t->guest_id);
        fprintf(o->csv, "%s,%llu,%llu,%llu,%llu", t->period, (unsigned long long)t->rx_bytes,
                (unsigned long long)t->tx_bytes, (unsigned long long)t->rx_packets,
                (unsigned long long)t->tx_packets);
        fprintf(o->csv, o->by_project ? "\r\n" : ",%s\r\n", project);
        return 0;
    }
    json_t *row = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:o}", "period", t->period, "rx_bytes", (json_int_t)t->rx_bytes,
        "tx_bytes", (json_int_t)t->tx_bytes, "rx_packets", (json_int_t)t->rx_packets, "tx_packets",
        (json_int_t)t->tx_packets, "project", t->project ? json_string(t->project) : json_null());
    if (!o->by_project) {
        json_object_set_new(row, "guest", json_string(t->name));
        json_object_set_new(row, "id", json_string(t->guest_id));
    }
    json_array_append_new(o->rows, row);
    return 0;
}

/* ?project=NAME and ?by=guest|project (checked by the edge, api.c). */
static void
traffic_project(struct http_req *req, struct history_traffic_q *q)
{
    const char *by = httpd_query(req, "by");

    q->project = httpd_query(req, "project");
    q->by_project = by && !strcmp(by, "project");
}

/* Which guest (?guest=NAME): its id from the guests, or from history for a
 * deleted one. "" = every guest. */
static int
traffic_guest(master_t *m, struct http_req *req, char id[SPEC_ID_LEN + 1])
{
    const char *g = httpd_query(req, "guest");
    struct db_guest row = {0};

    id[0] = '\0';
    if (!g)
        return 0;
    if (db_guest_get_by_name(m->db, g, &row) < 0) {
        httpd_error(req, 404, "not_found", "guest", "no guest \"%s\"", g);
        return -ENOENT;
    }
    strscpy(id, row.id, SPEC_ID_LEN + 1);
    db_guest_clear(&row);
    return 0;
}

void
h_usage_traffic(master_t *m, struct http_req *req, const struct api_match *am)
{
    const char *p = httpd_query(req, "period"), *f = httpd_query(req, "from");
    const char *accept = httpd_header(req, "Accept");
    int period = p ? history_period_from_string(p) : HISTORY_DAY;
    char id[SPEC_ID_LEN + 1];
    uint64_t from, to;

    (void)am;
    if (period < 0) {
        httpd_error(req, 400, "bad_request", "period", "period must be hour, day or month");
        return;
    }
    struct history_traffic_q q = {.period = (enum history_period)period};
    if (range(m, req, &from, &to) < 0 || traffic_guest(m, req, id) < 0)
        return;
    traffic_project(req, &q);
    /* Whole periods: from the start of the one holding from (default: the
     * current one), to the end of the hour holding to. */
    from = history_period_start(period, f ? from : to);
    to = history_period_start(HISTORY_HOUR, to) + 3600000;
    struct traffic_out o = {.by_project = q.by_project};
    char *csv = NULL;
    size_t csv_len = 0;
    bool want_csv = accept && strstr(accept, "text/csv");
    if (want_csv) {
        o.csv = open_memstream(&csv, &csv_len);
        fputs(q.by_project ? "project,period,rx_bytes,tx_bytes,rx_packets,tx_packets\r\n"
                           : "guest,id,period,rx_bytes,tx_bytes,rx_packets,tx_packets,project\r\n",
              o.csv);
    } else {
        o.rows = json_array();
    }
    q.from = from;
    q.to = to;
    q.guest_id = id[0] ? id : NULL;
    int r = history_traffic(m, &q, traffic_row, &o);
    if (o.csv)
        fclose(o.csv);
    if (r < 0) {
        free(csv);
        json_decref(o.rows);
        if (r == -E2BIG)
            httpd_error(req, 400, "bad_request", "from",
                        "more than %u rows: narrow from and to, name a guest or take a longer "
                        "period",
                        m->cfg.traffic_max_rows);
        else
            http_reply_errno(req, r, NULL, "cannot read the traffic: %s", strerror(-r));
        return;
    }
    if (want_csv) {
        httpd_respond_text(req, 200, "text/csv; charset=utf-8", csv, csv_len);
        return;
    }
    char tf[40], tt[40];
    api_time_format(from, tf, sizeof(tf));
    api_time_format(to, tt, sizeof(tt));
    httpd_respond(req, 200,
                  json_pack("{s:s, s:s, s:s, s:o}", "period", history_period_name(period), "from",
                            tf, "to", tt, "rows", o.rows));
}
