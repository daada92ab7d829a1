#!/usr/bin/env bash
# A real Prometheus server scrapes the master's /metrics: the target is up,
# a guest's memory series is there, and promtool accepts the exposition; a
# second job scrapes one node's slice (?node=) with the relabelling
# docs/api.md shows for large clusters.
# The CLI's usage history, billing and events commands read the same
# cluster. Prometheus listens on loopback only, with its data under the
# scenario's scratch dir.
. "$(dirname "$0")/lib.sh"

command -v prometheus >/dev/null && command -v promtool >/dev/null || {
    echo "SKIP: prometheus and promtool are not installed (deploy/install-deps)"
    exit 77
}

SIM_ARGS="--usage-interval 1"
start_cluster 0 2

vf guest create m1 --template busybox --memory 64M --disk 32M --cpu 0.1 --wait >/dev/null ||
    fail "create m1"
has_usage() { vf --json guest usage m1 >/dev/null; }
wait_for 30 "a usage sample of m1" has_usage
ok "m1 runs on a simulated node and reports usage"

# The exposition passes promtool's checks.
api_curl -sf -o "$T/metrics.txt" /metrics || fail "GET /metrics"
grep -q '^vfleet_guest_memory_bytes{guest="m1",node="' "$T/metrics.txt" ||
    fail "no memory series of m1: $(grep -c . "$T/metrics.txt") lines"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 ||
    fail "promtool check metrics: $(cat "$T/promtool.out")"
ok "promtool check metrics passes ($(wc -l <"$T/metrics.txt") lines)"
# The node link's counters: the link's families, and one series per node
# (two simulated nodes) of the per-node ones.
for f in 'vfleet_node_link_protocol_violations_total ' \
    'vfleet_node_link_connections_cut_total{reason="junk"} ' \
    'vfleet_node_link_messages_dropped_total '; do
    grep -q "^$f" "$T/metrics.txt" || fail "no $f series"
done
[ "$(grep -c '^vfleet_node_protocol_violations_total{node="' "$T/metrics.txt")" = 2 ] ||
    fail "vfleet_node_protocol_violations_total: $(grep '^vfleet_node_protocol_violations_total' "$T/metrics.txt")"
ok "the node link's counters: the link's families and one violations series per node"
NODE=$(api_curl -sf /v1/guests/m1 | jv .node)
[ -n "$NODE" ] && [ "$NODE" != null ] || fail "m1 has no node"
api_curl -sf -o "$T/slice.txt" "/metrics?node=$NODE" || fail "GET /metrics?node=$NODE"
grep -q '^vfleet_guest_memory_bytes{guest="m1",node="' "$T/slice.txt" && ! grep -q '^vfleet_nodes{' "$T/slice.txt" ||
    fail "the slice of $NODE: $(head -c 400 "$T/slice.txt")"
promtool check metrics <"$T/slice.txt" >"$T/promtool.out" 2>&1 ||
    fail "promtool check metrics of the slice: $(cat "$T/promtool.out")"
ok "/metrics?node=$NODE holds m1 and not the cluster's families; promtool passes"

# A real Prometheus scraping every second, over HTTPS (the master's
# self-signed certificate as its CA) with an operator's token.
PROM_PORT=$(free_port)
mkdir -p "$T/prom"
vf token create --role operator --description prometheus >"$T/prom/token" || fail "token create"
cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vfleet
    scheme: https
    tls_config:
      ca_file: $CL/api.crt
    authorization:
      credentials_file: $T/prom/token
    static_configs:
      - targets: ["127.0.0.1:$CL_PORT"]
  - job_name: vfleet-guests
    scheme: https
    tls_config:
      ca_file: $CL/api.crt
    authorization:
      credentials_file: $T/prom/token
    static_configs:
      - targets: ["$NODE"]
    relabel_configs:
      - {source_labels: [__address__], target_label: __param_node}
      - {source_labels: [__param_node], target_label: instance}
      - {target_label: __address__, replacement: "127.0.0.1:$CL_PORT"}
EOF
promtool check config "$T/prom/prometheus.yml" >/dev/null || fail "the generated config is bad"
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$T/prom/prometheus.log" 2>&1 &
AGENT_PIDS+=($!)
PROM=http://127.0.0.1:$PROM_PORT

prom_query() { curl -sf --get "$PROM/api/v1/query" --data-urlencode "query=$1"; }
target_up() {
    prom_query 'up{job="vfleet"}' |
        jv '.status == "success" and (.data.result | length) == 1 and .data.result[0].value[1] == "1"' |
        grep -qx true
}
wait_for 60 "Prometheus to scrape the master" target_up
ok "Prometheus: up{job=\"vfleet\"} = 1"

memory_series() {
    prom_query 'vfleet_guest_memory_bytes{guest="m1",job="vfleet"}' |
        jv '.status == "success" and (.data.result | length) == 1 and (.data.result[0].value[1] | tonumber) > 0' |
        grep -qx true
}
wait_for 30 "m1's memory series in Prometheus" memory_series
ok "Prometheus has vfleet_guest_memory_bytes{guest=\"m1\"} > 0"
slice_series() {
    prom_query "vfleet_guest_memory_bytes{guest=\"m1\",job=\"vfleet-guests\",instance=\"$NODE\"}" |
        jv '.status == "success" and (.data.result | length) == 1' | grep -qx true
}
wait_for 30 "m1's series from the slice job" slice_series
n=$(prom_query 'count(vfleet_nodes{job="vfleet-guests"}) or vector(0)' | jv '.data.result[0].value[1]')
[ "$n" = 0 ] || fail "the slice job has $n vfleet_nodes series"
ok "Prometheus: the per-node job (?node=$NODE) has m1's series and no node families"
running=$(prom_query 'vfleet_guests{state="running"}' | jv '.data.result[0].value[1]')
[ "$running" -ge 1 ] || fail "vfleet_guests{state=running} = $running"
ok "Prometheus: vfleet_guests{state=\"running\"} = $running"
n=$(prom_query 'count(vfleet_node_connections_cut_total{job="vfleet",reason="violations"}) or vector(0)' |
    jv '.data.result[0].value[1]')
[ "$n" = 2 ] || fail "vfleet_node_connections_cut_total{reason=violations}: $n series, want 2"
ok "Prometheus: vfleet_node_connections_cut_total has one violations series per node"

# The CLI over the same master: history, billing, events.
vf guest usage m1 --since 10m --step 10 >"$T/hist.txt" || fail "guest usage --since"
grep -q "(raw)" "$T/hist.txt" || fail "history: $(cat "$T/hist.txt")"
vf guest usage m1 --since 10m --spark >"$T/spark.txt" || fail "guest usage --spark"
grep -q '^memory' "$T/spark.txt" || fail "sparklines: $(cat "$T/spark.txt")"
ok "vfleet guest usage m1 --since 10m: a table and sparklines"
vf usage traffic --period hour --csv >"$T/traffic.csv" || fail "usage traffic --csv"
head -1 "$T/traffic.csv" | grep -q '^guest,id,period,rx_bytes,tx_bytes' || fail "CSV header"
grep -q '^m1,' "$T/traffic.csv" || fail "m1 not billed: $(cat "$T/traffic.csv")"
grep -q $'^m1,.*,default\r$' "$T/traffic.csv" || fail "m1's rows do not name its project: $(cat "$T/traffic.csv")"
vf usage traffic --period hour --by-project --csv >"$T/byproject.csv" || fail "usage traffic --by-project"
head -1 "$T/byproject.csv" | grep -q '^project,period,rx_bytes' || fail "by-project CSV header: $(head -1 "$T/byproject.csv")"
grep -q '^default,' "$T/byproject.csv" || fail "project default not billed: $(cat "$T/byproject.csv")"
vf usage traffic --period hour --by-project | grep -q '^default ' || fail "by-project table"
ok "vfleet usage traffic --csv bills m1, and its project with --by-project"
vf events --type guest.created,guest.placed --guest m1 >"$T/events.txt" || fail "events"
grep -q 'guest.placed' "$T/events.txt" && grep -q 'guest.created' "$T/events.txt" ||
    fail "events: $(cat "$T/events.txt")"
ok "vfleet events lists m1's placement and creation"
