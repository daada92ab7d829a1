#!/usr/bin/env bash
# What observing a cluster costs the master, end to end: a master and
# simulated nodes (one vfleet-node --sim-nodes process) with G guests
# (default 1,000) reporting usage every 10 s. Prints:
#   - one scrape of GET /metrics: the median and worst time of 20 scrapes
#     (curl's total time on loopback over HTTPS with an operator's token, as
#     Prometheus scrapes: the master renders while its loop waits), the
#     exposition's size and series; then the same for a peer, Prometheus's
#     node exporter serving that same exposition (prometheus-node-exporter,
#     installed for the benchmark only, never by deploy/install-deps), and
#     the ratio of the medians;
#   - the master's CPU over a window of usage reports (history written in
#     the node batches), and what the store grew by.
# Not a test (never in ctest): it prints figures, it asserts nothing.
#
#   bench/observe.sh [--guests N] [--nodes N] [--window S] [--keep]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VFLEET_BIN:-$top/build/bin}
GUESTS=1000
NODES=10
WINDOW=120
KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
    --guests) GUESTS=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --window) WINDOW=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--guests N] [--nodes N] [--window S] [--keep]" >&2; exit 2 ;;
    esac
done

D=${BENCH_DIR:-$(mktemp -d /tmp/vfleet-observe-bench.XXXXXX)}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=https://127.0.0.1:$PORT
SOCK=$D/api.sock
# Set-up goes through the master's Unix socket (root, no token).
api() { curl -sf --unix-socket "$SOCK" "$@"; }
cleanup() {
    [ -s "$D/sim.pid" ] && kill "$(cat "$D/sim.pid")" 2>/dev/null
    [ -s "$D/master.pid" ] && kill "$(cat "$D/master.pid")" 2>/dev/null
    [ -s "$D/peer.pid" ] && kill "$(cat "$D/peer.pid")" 2>/dev/null
    sleep 0.5
    [ "$KEEP" = 1 ] || rm -rf "$D"
}
trap cleanup EXIT

"$BIN/vfleet-master" --db "$D/master.db" --listen "127.0.0.1:$PORT" --bind "ipc://$D/master.sock" \
    --socket "$SOCK" --access-log no --log-level warning >"$D/master.log" 2>&1 &
echo $! >"$D/master.pid"
"$BIN/vfleet-node" run --backend sim --sim-nodes "$NODES" --name sim --master "ipc://$D/master.sock" \
    --state-dir "$D/sim" --usage-interval 10 --log-level warning >"$D/sim.log" 2>&1 &
echo $! >"$D/sim.pid"
for _ in $(seq 100); do
    n=$(api http://localhost/v1/nodes 2>/dev/null | python3 -c 'import json,sys; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["state"]=="ready"))' 2>/dev/null || echo 0)
    [ "$n" -ge "$NODES" ] && break
    sleep 0.2
done

# The guests, 1,000 per batch request.
made=0
while [ $made -lt "$GUESTS" ]; do
    n=$((GUESTS - made > 1000 ? 1000 : GUESTS - made))
    python3 -c 'import json,sys; s,n=int(sys.argv[1]),int(sys.argv[2]); print(json.dumps({"guests":[{"name":"b%d"%i,"template":"busybox","limits":{"memory":"64M","disk":"1G","cpu_max":0.1}} for i in range(s,s+n)]}))' "$made" "$n" >"$D/batch.json"
    api -X POST -H 'Content-Type: application/json' --data @"$D/batch.json" http://localhost/v1/guests:batch >/dev/null
    made=$((made + n))
done
running() { api "http://localhost/v1/guests?state=running&limit=5000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["guests"]))'; }
for _ in $(seq 300); do [ "$(running)" -ge "$GUESTS" ] && break; sleep 1; done
echo "$GUESTS guests running on $NODES simulated nodes; waiting for two usage rounds"
sleep 21

# Scrapes, as Prometheus does them: HTTPS, the master's certificate as CA,
# an operator's token, a new connection each time.
TOKEN=$(api -X POST -H 'Content-Type: application/json' -d '{"role":"operator"}' \
    http://localhost/v1/tokens | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
times=()
for _ in $(seq 20); do
    times+=("$(curl -s --cacert "$D/api.crt" -H "Authorization: Bearer $TOKEN" -o "$D/metrics.txt" \
        -w '%{time_total}' "$URL/metrics")")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "GET /metrics: median $(echo "$sorted" | sed -n 10p) s, worst $(echo "$sorted" | tail -1) s," \
    "$(wc -c <"$D/metrics.txt") bytes, $(grep -vc '^#' "$D/metrics.txt") series"

# The peer: Prometheus's own node exporter (Debian's prometheus-node-exporter,
# Go, client_golang) serving the very exposition the master just answered,
# through its textfile collector (which reads and parses the file at every
# scrape, then renders it), over HTTPS with the master's certificate and key:
# the same series, bytes and TLS handshake, from the reference exporter.
# Only the textfile collector runs and the exporter's own metrics are off.
if command -v prometheus-node-exporter >/dev/null; then
    mkdir -p "$D/textfile"
    cp "$D/metrics.txt" "$D/textfile/vfleet.prom"
    printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$D/api.crt" "$D/api.key" >"$D/web.yml"
    PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    prometheus-node-exporter --collector.disable-defaults --collector.textfile \
        --collector.textfile.directory="$D/textfile" --web.disable-exporter-metrics \
        --web.listen-address="127.0.0.1:$PPORT" --web.config.file="$D/web.yml" \
        --log.level=warn >"$D/peer.log" 2>&1 &
    echo $! >"$D/peer.pid"
    for _ in $(seq 50); do
        curl -s --cacert "$D/api.crt" -o /dev/null "https://127.0.0.1:$PPORT/metrics" && break
        sleep 0.1
    done
    ptimes=()
    for _ in $(seq 20); do
        ptimes+=("$(curl -s --cacert "$D/api.crt" -o "$D/peer.txt" -w '%{time_total}' \
            "https://127.0.0.1:$PPORT/metrics")")
    done
    kill "$(cat "$D/peer.pid")" 2>/dev/null || true
    rm -f "$D/peer.pid"
    psorted=$(printf '%s\n' "${ptimes[@]}" | sort -n)
    pmed=$(echo "$psorted" | sed -n 10p)
    vmed=$(echo "$sorted" | sed -n 10p)
    echo "peer (prometheus-node-exporter $(prometheus-node-exporter --version 2>&1 | awk 'NR==1{print $3}'), textfile of the same exposition):" \
        "median $pmed s, worst $(echo "$psorted" | tail -1) s, $(grep -vc '^#' "$D/peer.txt") series;" \
        "vfleet / peer = $(python3 -c 'import sys; print("%.2f" % (float(sys.argv[1]) / float(sys.argv[2])))' "$vmed" "$pmed")"
else
    echo "peer skipped: no prometheus-node-exporter (apt-get install --no-install-recommends prometheus-node-exporter)"
fi

# The master's CPU and the store over a window of usage reports.
pid=$(cat "$D/master.pid")
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
size() { du -cb "$D"/master.db* | tail -1 | cut -f1; }
c0=$(cpu)
s0=$(size)
sleep "$WINDOW"
c1=$(cpu)
s1=$(size)
hz=$(getconf CLK_TCK)
python3 -c 'import sys; c0,c1,hz,w,s0,s1,g=map(float,sys.argv[1:]); print("master CPU over %ds of usage reports: %.2f%% of one core (%.1f ms per 10 s round of %d samples); store grew %.1f MB (WAL included)" % (w, 100*(c1-c0)/hz/w, 1000*(c1-c0)/hz/(w/10), g, (s1-s0)/1e6))' \
    "$c0" "$c1" "$hz" "$WINDOW" "$s0" "$s1" "$GUESTS"
