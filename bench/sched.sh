#!/usr/bin/env bash
# Scheduler benchmark, end to end: a master plus 5,000 simulated nodes (one
# vfleet-node --sim-nodes process), 100,000 guests placed through the REST API,
# timed until every guest is acknowledged running by its simulated node.
# Not a test (never in ctest): it prints figures, it asserts nothing.
#
#   bench/sched.sh [--nodes N] [--guests N] [--stretch] [--batch N] [--clients N]
#                  [--no-ips] [--keep]
#
#   --nodes N     simulated nodes (default 5000)
#   --guests N    guests to place (default 100000); --stretch = 1000000
#   --batch N     guests per POST /v1/guests:batch (default 1000, the API's cap);
#                 when the master has no batch route, single POST /v1/guests are
#                 sent by one curl --parallel process instead
#   --clients N   requests in flight at once (default 4)
#   --no-ips      guests without an address (skips IPAM)
#   --keep        leave the master and the nodes running at the end
#   --liveness S  the master's --suspect-after S (and --down-after 2S); default
#                 600, so that a master or node loop that falls behind under the
#                 load does not turn nodes suspect and the run measures
#                 placement; --liveness 15 is the master's default (see
#                 docs/performance.md for what happens then). The nodes'
#                 heartbeat is a third of it (5 s at 15, the default pair), so
#                 a node takes the master for lost after the same silence
#
# What is measured (all on loopback, on this machine, master and nodes sharing it):
#   placed/s      guests / time from the first request to the last reply: the
#                 master has placed each one, allocated its address and committed
#                 it to SQLite (synchronous=FULL)
#   end-to-end/s  guests / time from the first request until no guest is pending:
#                 each was also dispatched over ZeroMQ, applied and started by its
#                 simulated node, and acknowledged
#   p50/p99       latency of one create request (a batch of --batch guests, or a
#                 single guest), first byte sent to reply received
# and compared with Nomad's published C1M run: 1,000,000 containers on 5,000
# hosts in under 5 minutes with 5 servers, about 3,750 placements/s.
#
# Environment: MASTER_WRAP (a command the master runs under, e.g. a profiler),
# VFLEET_BIN (default <repo>/build/bin), BENCH_DIR (default a new
# /tmp/vfleet-bench.XXXXXX, removed at the end unless --keep).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VFLEET_BIN:-$top/build/bin}
NODES=5000 GUESTS=100000 BATCH=1000 CLIENTS=4 IPS=1 KEEP=0 LIVENESS=600
NOMAD_RATE=3750

while [ $# -gt 0 ]; do
    case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --guests) GUESTS=$2; shift 2 ;;
    --stretch) GUESTS=1000000; shift ;;
    --batch) BATCH=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --no-ips) IPS=0; shift ;;
    --keep) KEEP=1; shift ;;
    --liveness) LIVENESS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sched.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for p in vfleet-master vfleet-node vfleet; do
    [ -x "$BIN/$p" ] || { echo "sched.sh: no $BIN/$p (build first)" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "sched.sh: needs curl (deploy/install-deps)" >&2; exit 1; }

# Every node holds a socket and a connection, and the master one per node.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((3 * NODES + 1000)) ] ||
    { echo "sched.sh: $NODES nodes need ~$((3 * NODES)) file descriptors, limit $(ulimit -n)" >&2; exit 1; }

D=${BENCH_DIR:-$(mktemp -d /tmp/vfleet-bench.XXXXXX)}
mkdir -p "$D"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The API as root on the master's host: its Unix socket (no token, no TLS).
SOCK=$D/api.sock
URL=http://localhost
export VFLEET_MASTER=unix:$SOCK
curl() { command curl --unix-socket "$SOCK" "$@"; }
MASTER_PID= SIM_PID= SAMPLER_PID=

now() { date +%s.%N; }
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
    if [ $KEEP -eq 0 ]; then
        [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null
        [ -n "$MASTER_PID" ] && kill "$MASTER_PID" 2>/dev/null
        [ -n "${WRAP_PID:-}" ] && kill "$WRAP_PID" 2>/dev/null
        wait 2>/dev/null
        # (an if: a failed test as the trap's last command made the script exit 1)
        if [ -z "${BENCH_DIR:-}" ]; then rm -rf "$D"; fi
    else
        log "kept: master pid $MASTER_PID, sim pid $SIM_PID, $URL, state in $D"
    fi
}
trap cleanup EXIT

# Every sim node offers room for its share with margin: 64M and 1G per guest.
per_node=$(((GUESTS + NODES - 1) / NODES * 2 + 10))

# The nodes' heartbeat (the master tells them in its welcome) follows the
# liveness threshold as the default pair does (15 s, 5 s): a node takes three
# silent intervals as a lost master, reconnects and says hello again, and on
# two shared cores a master that falls behind for 15 s under this load would
# otherwise set off reconnects and hellos from thousands of nodes at once.
HEARTBEAT_MS=$((LIVENESS * 1000 / 3))
[ "$HEARTBEAT_MS" -le 600000 ] || HEARTBEAT_MS=600000

# MASTER_WRAP runs the master under a tool (a profiler: "valgrind --tool=callgrind").
${MASTER_WRAP:-} "$BIN/vfleet-master" --db "$D/master.db" --listen "127.0.0.1:$PORT" --socket "$SOCK" --bind "ipc://$D/master.sock" \
    --suspect-after "$LIVENESS" --down-after $((2 * LIVENESS)) --heartbeat-ms "$HEARTBEAT_MS" \
    --log-level warning >"$D/master.log" 2>&1 &
MASTER_PID=$!
for _ in $(seq 600); do "$BIN/vfleet" health >/dev/null 2>&1 && break; sleep 0.1; done
"$BIN/vfleet" health >/dev/null || { tail "$D/master.log" >&2; exit 1; }
# A wrapper that runs the master as its child (heaptrack, timeout) is not the
# master: measure and stop the newest process with the master's arguments
# (the wrapper's own, which repeat them, is older; under valgrind they are
# one process). The wrapper is stopped too.
WRAP_PID=
if [ -n "${MASTER_WRAP:-}" ]; then
    WRAP_PID=$MASTER_PID
    MASTER_PID=$(pgrep -n -f -- "--bind ipc://$D/master.sock") || MASTER_PID=$WRAP_PID
fi

t_nodes=$(now)
"$BIN/vfleet-node" run --backend sim --sim-nodes "$NODES" --name bench --master "ipc://$D/master.sock" \
    --state-dir "$D/sim" --sim-max-guests "$per_node" --sim-memory $((per_node * 64))M \
    --sim-disk $((per_node))G --sim-cpus $((per_node * 1000)) --usage-interval 30 \
    --log-level err >"$D/sim.log" 2>&1 &
SIM_PID=$!
ready=0
for _ in $(seq 1200); do
    ready=$("$BIN/vfleet" --json node ls 2>/dev/null |
        python3 -c 'import json,sys; print(sum(n["state"]=="ready" for n in json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo 0)
    [ "$ready" -ge "$NODES" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || { tail "$D/sim.log" >&2; exit 1; }
    sleep 0.5
done
[ "$ready" -ge "$NODES" ] || { echo "sched.sh: only $ready of $NODES nodes ready" >&2; exit 1; }
log "$NODES simulated nodes ready in $(python3 -c "print(round($(now) - $t_nodes, 1))") s"

if [ $IPS -eq 1 ]; then
    "$BIN/vfleet" pool create bench --cidr 10.64.0.0/10 >/dev/null
fi

# Request bodies, prepared before the clock starts.
mkdir -p "$D/req" "$D/out"
python3 - "$D/req" "$GUESTS" "$BATCH" "$IPS" <<'EOF'
import json, sys
out, n, batch, ips = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
def guest(i):
    g = {"name": "g%07d" % i, "template": "busybox",
         "limits": {"memory": "64M", "disk": "1G", "cpu_max": 0.5}}
    if ips:
        g["ips"] = ["auto"]
    return g
for b, start in enumerate(range(0, n, batch)):
    with open("%s/%06d.json" % (out, b), "w") as f:
        json.dump({"guests": [guest(i) for i in range(start, min(n, start + batch))]}, f)
EOF

# Does the master have the batch route? (An empty batch is harmless either way.)
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"guests":[]}' "$URL/v1/guests:batch")
if [ "$code" = 404 ] || [ "$code" = 405 ]; then MODE=single; else MODE=batch; fi
log "placing $GUESTS guests on $NODES nodes ($MODE requests, $CLIENTS in flight, suspect after ${LIVENESS}s)"

# Memory over the run, every 10 s (seconds since the start, RSS of the
# master and of the simulated nodes in MiB): a run that is stopped early
# still says how the master's memory went.
rss_of() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
( t_start=$(date +%s); while kill -0 "$MASTER_PID" 2>/dev/null; do
    echo "$(($(date +%s) - t_start)) $(rss_of "$MASTER_PID") $(rss_of "$SIM_PID")"; sleep 10
done ) >"$D/rss.txt" 2>/dev/null &
SAMPLER_PID=$!

t0=$(now)
if [ $MODE = batch ]; then
    ls "$D/req" | xargs -P "$CLIENTS" -I{} curl --unix-socket "$SOCK" -s -o "$D/out/{}" \
        -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
        -H "Idempotency-Key: bench-{}" --data-binary "@$D/req/{}" "$URL/v1/guests:batch" \
        >"$D/latency.txt"
else
    # One curl process, many transfers in parallel: no fork per guest.
    python3 - "$D/req" "$URL" >"$D/curl.conf" <<'EOF'
import json, os, sys
d, url = sys.argv[1], sys.argv[2]
for f in sorted(os.listdir(d)):
    for g in json.load(open(os.path.join(d, f)))["guests"]:
        print('url = "%s/v1/guests"' % url)
        print('data = "%s"' % json.dumps(g, separators=(",", ":")).replace('"', '\\"'))
        print('output = "/dev/null"')
        print('header = "Idempotency-Key: bench-%s"' % g["name"])
EOF
    curl -s --parallel --parallel-max "$CLIENTS" -H 'Content-Type: application/json' \
        -w '%{http_code} %{time_total}\n' --config "$D/curl.conf" >"$D/latency.txt"
fi
t_api=$(now)

# Then wait until the simulated nodes have acknowledged every guest.
for _ in $(seq 36000); do
    left=$(curl -s "$URL/v1/guests?state=pending&limit=1" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["guests"]))' 2>/dev/null || echo 1)
    [ "$left" -eq 0 ] && break
    # A master or simulated-node process that died ends the wait (it polled
    # a dead API for its whole two hours): the log's tail says why.
    kill -0 "$MASTER_PID" 2>/dev/null || { echo "sched.sh: the master died" >&2; tail "$D/master.log" >&2; exit 1; }
    kill -0 "$SIM_PID" 2>/dev/null || { echo "sched.sh: the simulated nodes died" >&2; tail "$D/sim.log" >&2; exit 1; }
    sleep 0.2
done
t_end=$(now)
# CPU seconds each side used over the whole run (user + system).
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / t}' "/proc/$1/stat"; }
cpu_master=$(cpu_of "$MASTER_PID")
cpu_sim=$(cpu_of "$SIM_PID")
hwm_of() { awk '/^VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
mem_master=$(hwm_of "$MASTER_PID")
mem_sim=$(hwm_of "$SIM_PID")

kill "$SAMPLER_PID" 2>/dev/null || true
# What the outboxes did: re-sends are commands sent again for want of an
# answer (duplicates when the answer was only waiting in the master's queue).
# (Bounded, as before: a master older than metrics_guests_max walked every
# guest, minutes at a million, holding its loop meanwhile; a newer one leaves
# the per-guest series out of this scrape above 10,000 guests.)
curl -s -m 30 "$URL/metrics" | grep -E '^vfleet_dispatch_(commands|sends|resends|resends_postponed|answers)_total' \
    >"$D/dispatch.txt" 2>/dev/null || true
running=$(curl -s "$URL/v1/nodes?limit=100000" | python3 -c 'import json,sys; print(sum(n["guests"] for n in json.load(sys.stdin)["nodes"]))' 2>/dev/null || echo "?")
errors=$(curl -s "$URL/v1/guests?state=error&limit=100000" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["guests"]))' 2>/dev/null || echo "?")

python3 - "$D/latency.txt" "$D/out" "$MODE" "$GUESTS" "$NODES" "$BATCH" "$t0" "$t_api" "$t_end" \
    "$NOMAD_RATE" "$running" "$errors" "$cpu_master" "$cpu_sim" "$mem_master" "$mem_sim" <<'EOF'
import collections, json, os, sys
lat, outdir, mode, n, nodes, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t0, t_api, t_end, nomad = float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9]), float(sys.argv[10])
rows = [l.split() for l in open(lat) if l.strip()]
times = sorted(float(r[1]) for r in rows)
bad_http = sum(1 for r in rows if not r[0].startswith("2"))
failed = 0
why = collections.Counter()
if mode == "batch":
    for f in os.listdir(outdir):
        try:
            for r in json.load(open(os.path.join(outdir, f)))["results"]:
                if "error" in r:
                    failed += 1
                    e = r["error"]
                    fl = (e.get("placement") or {}).get("filters") or []
                    why["%s: %s" % (e.get("code"), ", ".join(
                        "%s rejected %s" % (f.get("filter"), f.get("rejected")) for f in fl)
                        or e.get("message", "")[:100])] += 1
        except Exception:
            failed += batch
            why["unreadable reply"] += batch
def pct(p):
    return times[min(len(times) - 1, int(p * len(times)))] if times else float("nan")
placed = n / (t_api - t0)
e2e = n / (t_end - t0)
print()
print("nodes               %d simulated (one process)" % nodes)
print("guests              %d (%s requests: %d, non-2xx: %d, per-guest errors: %d)" % (n, mode, len(rows), bad_http, failed))
print("guests on nodes     %s (master's count), in state error: %s" % (sys.argv[11], sys.argv[12]))
for w, k in why.most_common(5):
    print("  error x%-9d %s" % (k, w))
print("placed              %.1f s  -> %.0f placements/s (placed, addressed, committed)" % (t_api - t0, placed))
print("end to end          %.1f s  -> %.0f placements/s (also dispatched, started, acked)" % (t_end - t0, e2e))
print("request latency     p50 %.3f s, p99 %.3f s, max %.3f s (one request = %s)" % (pct(.5), pct(.99), times[-1] if times else float("nan"), "%d guests" % batch if mode == "batch" else "1 guest"))
print("cpu used            master %s s, simulated nodes %s s (%d cores here)" % (sys.argv[13], sys.argv[14], os.cpu_count()))
print("peak memory         master %s MiB, simulated nodes %s MiB" % (sys.argv[15], sys.argv[16]))
try:
    d = dict(l.split()[:2] for l in open(os.path.join(os.path.dirname(outdir), "dispatch.txt")) if l.strip())
    print("dispatch            %s commands, %s sends, %s re-sends (%s postponed)" % (
        d.get("vfleet_dispatch_commands_total", "?"), d.get("vfleet_dispatch_sends_total", "?"),
        d.get("vfleet_dispatch_resends_total", "?"), d.get("vfleet_dispatch_resends_postponed_total", "?")))
except Exception:
    pass
print("Nomad C1M           %.0f placements/s (1M containers, 5,000 hosts, 5 servers, < 5 min)" % nomad)
print("ratio               %.2f x Nomad (end to end), %.2f x (placed)" % (e2e / nomad, placed / nomad))
EOF
