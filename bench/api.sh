#!/usr/bin/env bash
# The API under parallel clients: creates per second and create -> running
# latency with 1 client and with 8, on a local cluster of two real nodes
# (deploy/local-cluster: each node its own network namespace, real guests),
# next to a peer doing the same work in the same run: LXC, 1 and 8 shells
# each running `lxc-copy -s -B overlay` (a new container as an overlay on a
# base busybox container: what a vfleet create makes, an overlay on the
# template, without vfleet's ext4 disk image) then `lxc-start` (which
# returns once the container runs). Not a test (never in ctest): it prints
# figures, it asserts nothing. Root only.
#
#   bench/api.sh [-k CREATES_PER_CLIENT] [-r ROUNDS]     (default 24 and 1)
#
# A round, for each build (OLD_BIN first when set, then this tree's), on a
# fresh cluster: 2 warm-up creates (the nodes' first disk image is made by
# mkfs), then 1 client making K guests, 8 clients making K/4 each (twice
# the work), all with POST /v1/guests?wait=running (bench/api_client.c:
# libcurl over the master's Unix socket, one connection per client), each
# batch deleted after it; then the LXC peer the same way. Guests: template
# busybox, cpu_max 0.01, memory 64M, disk 64M; placement is the master's
# default (binpack: the guests go to one node until it is full), or
# ALGORITHM (spread: both nodes, so two agents and two spawners work).
#
# Figures, per build and client count:
#   creates/s     guests created and running, over the phase's wall clock
#   p50/p99 ms    one create: request sent to the reply (the guest runs)
#   x1            creates/s over the same build's (or the peer's) 1 client
#   cpu_ms        CPU time of the whole cluster per create (master, agents,
#                 spawners, relay, and the guests' setup until init runs)
#   /peer         creates/s over the peer's at the same client count
#   bound         (8 clients) the most x1 can be on this machine's CPUs:
#                 NCPU x L / c, with L one client's wall time per create
#                 (1000 / its creates/s: one client makes one at a time) and
#                 c the 8 clients' cpu_ms; more clients cannot make creates
#                 faster than the CPUs do their work (docs/performance.md,
#                 "The bound on 8 clients >= 4x one")
#
# Environment: VFLEET_BIN (default <repo>/build/bin: vfleet-master,
# vfleet-node, vfleet, bench_api_client), OLD_BIN (another build's bin
# directory, e.g. one made from `git archive 71cf222`; run before this
# tree's in each round), ALGORITHM (spread or binpack, in every create),
# LOAD_NOTE (printed), KEEP=1 keeps the scratch dir.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VFLEET_BIN:-$top/build/bin}
K=24 ROUNDS=1
while [ $# -gt 0 ]; do
    case $1 in
    -k) K=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "api.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "api.sh: needs root" >&2; exit 1; }
for p in vfleet-master vfleet-node vfleet bench_api_client; do
    [ -x "$BIN/$p" ] || { echo "api.sh: no $BIN/$p: build first" >&2; exit 1; }
done
if [ -n "${OLD_BIN:-}" ]; then
    for p in vfleet-master vfleet-node vfleet; do
        [ -x "$OLD_BIN/$p" ] || { echo "api.sh: no $OLD_BIN/$p" >&2; exit 1; }
    done
fi
for p in lxc-copy lxc-start jq python3; do
    command -v $p >/dev/null || { echo "api.sh: needs $p (apt-get install lxc jq python3)" >&2; exit 1; }
done
K8=$((K / 4))
[ "$K8" -ge 1 ] || { echo "api.sh: -k at least 4" >&2; exit 2; }

DIR=$(mktemp -d /var/tmp/vfleet-api.XXXXXX)
PREFIX=ap$$h
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ZPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LXP=$DIR/lxc
cgroot=/sys/fs/cgroup
# LXC makes lxc.pivot in every hierarchy and leaves it: removed only when
# this run made it.
pivot_before=$(find "$cgroot" -mindepth 2 -maxdepth 2 -type d -name lxc.pivot | sort)
lc() {
    VFLEET_LOCAL_DIR=$DIR/c VFLEET_LOCAL_PORT=$PORT VFLEET_LOCAL_ZPORT=$ZPORT \
        VFLEET_LOCAL_PREFIX=$PREFIX VFLEET_BIN=$1 "$top/deploy/local-cluster" "${@:2}"
}
lxc_clean() {
    local c
    for c in $(lxc-ls -P "$LXP" 2>/dev/null); do
        [ "$c" = base ] && continue
        lxc-stop -P "$LXP" -n "$c" -k >/dev/null 2>&1
        lxc-destroy -P "$LXP" -n "$c" >/dev/null 2>&1
    done
}
cleanup() {
    set +e
    lc "$BIN" down --purge >/dev/null 2>&1
    [ -d "$CPUACCT" ] && rmdir "$CPUACCT" 2>/dev/null
    lxc_clean
    lxc-destroy -P "$LXP" -n base >/dev/null 2>&1
    for d in "$cgroot"/*/lxc.payload.* "$cgroot"/*/lxc.monitor.* "$cgroot"/*/lxc.pivot; do
        [ -d "$d" ] || continue
        case $d in
        */lxc.pivot) grep -qxF "$d" <<<"$pivot_before" && continue ;;
        *) case $d in *."$PREFIX"*) ;; *) continue ;; esac ;;
        esac
        rmdir "$d" 2>/dev/null
    done
    [ "${KEEP:-0}" = 1 ] && { echo "kept $DIR"; return; }
    rm -rf "$DIR"
}
trap cleanup EXIT

# The peer's base container: busybox, no network, unconfined (as start.sh).
mkdir -p "$LXP"
printf 'lxc.net.0.type = empty\nlxc.apparmor.profile = unconfined\n' >"$DIR/lxc.conf"
lxc-create -P "$LXP" -n base -f "$DIR/lxc.conf" -t busybox >"$DIR/lxc-create.log" 2>&1 ||
    { tail "$DIR/lxc-create.log"; exit 1; }

# stats NAME CLIENTS FILE WALL_S: "creates/s p50 p99" of the latencies (ms) in FILE.
stats() {
    python3 - "$3" "$4" <<'EOF'
import sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
wall = float(sys.argv[2])
pct = lambda p: v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))]
print("%.1f %.1f %.1f %d" % (len(v) / wall, pct(.5), pct(.99), len(v)))
EOF
}

# peer CLIENTS N TAG: CLIENTS shells, each creating and starting N containers
# one after the other; then all are destroyed. Prints the stats line.
peer() {
    local clients=$1 n=$2 tag=$3 c t0 t1 out=$DIR/peer-$3.ms
    : >"$out"
    t0=$(date +%s.%N)
    for c in $(seq "$clients"); do
        (
            for i in $(seq "$n"); do
                s=$(date +%s%N)
                lxc-copy -P "$LXP" -n base -N "$PREFIX$tag-$c-$i" -s -B overlay >/dev/null 2>&1 &&
                    lxc-start -P "$LXP" -n "$PREFIX$tag-$c-$i" >/dev/null 2>&1 ||
                    echo "api.sh: peer container $PREFIX$tag-$c-$i did not start" >&2
                e=$(date +%s%N)
                echo "$(((e - s) / 1000))" | awk '{printf "%.3f\n", $1 / 1000}' >>"$out.$c"
            done
        ) &
    done
    wait
    t1=$(date +%s.%N)
    cat "$out".* >"$out"
    rm -f "$out".*
    lxc_clean
    stats peer "$clients" "$out" "$(python3 -c "print($t1 - $t0)")"
}

# The cluster's CPU: its processes (master, agents, spawners, the fabric's
# relay; what they fork follows) in a cpuacct group of their own (a v1
# hierarchy apart from cpu's here, so scheduling is unchanged), and the
# nodes' guest groups (vfleet-PREFIXn: a guest's setup after it is moved
# there). bench_api_client reads them around each phase.
CPUACCT=$cgroot/cpuacct/vfleet-api-$$
cpu_group() {
    local p
    [ -d "$cgroot/cpuacct" ] || return 0
    mkdir -p "$CPUACCT"
    for p in $(cat "$DIR"/c/master.pid "$DIR"/c/*/agent.pid) $(pgrep -g "$(cat "$DIR/c/link.pid")"); do
        echo "$p" >"$CPUACCT/cgroup.procs" 2>/dev/null || true
        for c in $(pgrep -P "$p"); do echo "$c" >"$CPUACCT/cgroup.procs" 2>/dev/null || true; done
    done
}
usage_args() {
    [ -d "$CPUACCT" ] || return 0
    echo "-u $CPUACCT/cpuacct.usage -u $cgroot/cpuacct/vfleet-${PREFIX}1/cpuacct.usage" \
        "-u $cgroot/cpuacct/vfleet-${PREFIX}2/cpuacct.usage"
}

# ours BIN CLIENTS N TAG: bench_api_client on the running cluster.
ours() {
    local line
    # shellcheck disable=SC2046
    line=$("$BIN/bench_api_client" -s "$DIR/c/api.sock" -c "$2" -k "$3" -p "$4" $(usage_args) \
        ${ALGORITHM:+-a "$ALGORITHM"} |
        grep '^create')
    # create clients=C n=N R/s p50=Xms p90=Yms p99=Zms max=M [cpu_ms_each=E cores_busy=B]
    awk '{gsub("/s","",$4); sub("p50=","",$5); sub("ms","",$5); sub("p99=","",$7);
          sub("ms","",$7); sub("n=","",$3); e = $9; sub("cpu_ms_each=","",e);
          print $4, $5, $7, $3, (e == "" ? "nan" : e)}' <<<"$line"
}

echo "machine: kernel $(uname -r), $(nproc) cpus, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "${LOAD_NOTE:-}"
printf '%-5s %-5s %7s %9s %7s %7s %5s %7s | %8s %7s %7s %5s | %6s %5s\n' round build clients \
    creates/s p50_ms p99_ms x1 cpu_ms peer/s p50_ms p99_ms x1 /peer bound
for r in $(seq "$ROUNDS"); do
    builds=()
    [ -n "${OLD_BIN:-}" ] && builds+=("old:$OLD_BIN")
    builds+=("new:$BIN")
    for b in "${builds[@]}"; do
        name=${b%%:*} bin=${b#*:}
        lc "$bin" up --nodes 2 >"$DIR/cluster-$name.log" 2>&1 || { tail "$DIR/cluster-$name.log"; exit 1; }
        cpu_group
        "$BIN/bench_api_client" -s "$DIR/c/api.sock" -c 2 -k 1 -p "w$r$name" >/dev/null
        o1=$(ours "$bin" 1 "$K" "o$r$name")
        o8=$(ours "$bin" 8 "$K8" "e$r$name")
        lc "$bin" down --purge >/dev/null 2>&1
        rmdir "$CPUACCT" 2>/dev/null || true
        p1=$(peer 1 "$K" "a$r$name")
        p8=$(peer 8 "$K8" "b$r$name")
        python3 - "$r" "$name" "$o1" "$o8" "$p1" "$p8" "$(cut -d' ' -f1 /proc/loadavg)" "$(nproc)" <<'EOF'
import math, sys
r, name, o1, o8, p1, p8, load, ncpu = sys.argv[1:]
o1, o8, p1, p8 = ([float(x) for x in s.split()] for s in (o1, o8, p1, p8))
# NCPU x L / c: L = 1000 / one client's creates/s, c = the 8 clients' cpu_ms.
bound = int(ncpu) * 1000 / o1[0] / o8[4] if o8[4] > 0 else math.nan
for c, o, p in ((1, o1, p1), (8, o8, p8)):
    print("%-5s %-5s %7d %9.1f %7.1f %7.1f %5.2f %7.1f | %8.1f %7.1f %7.1f %5.2f | %6.2f %5s" % (
        r, name, c, o[0], o[1], o[2], o[0] / o1[0], o[4], p[0], p[1], p[2], p[0] / p1[0],
        o[0] / p[0], "%.2f" % bound if c == 8 else ""))
print("      load average (1 min) after this build's round: %s" % load)
EOF
    done
done
