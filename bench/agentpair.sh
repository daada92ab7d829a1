#!/usr/bin/env bash
# The node agent's CPU per create and delete, two builds side by side: one
# 2-node local cluster (deploy/local-cluster) whose first node runs
# OLD_BIN's vfleet-node and whose second runs this build's (restarted on it
# after `up`), guests spread over both by the master (placement "spread"),
# so both agents do the same work in the same seconds under the same load;
# then the same on a fresh cluster with the builds swapped between the
# nodes. Not a test (never in ctest): it prints figures. Root only.
#
#   OLD_BIN=<other build>/bin bench/agentpair.sh [-p PHASES] [-k CREATES]  (default 6, 32)
#
# Each phase: bench_api_client, one client, CREATES guests (POST
# /v1/guests?wait=running, then each deleted); per agent, the run time of
# all its threads (/proc/PID/task/*/schedstat, nanoseconds: its own CPU, not
# its spawner's or the guests') over the phase, divided by the guests it
# destroyed in it (its log's "destroyed" lines). Printed per phase, then the
# mean of new - old over all phases of both orders.
#
# Environment: VFLEET_BIN (default <repo>/build/bin), OLD_BIN (required).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
NEW=${VFLEET_BIN:-$top/build/bin}
OLD=${OLD_BIN:?agentpair.sh: set OLD_BIN to another build\'s bin directory}
PH=6 K=32
while [ $# -gt 0 ]; do
    case $1 in
    -p) PH=$2; shift 2 ;;
    -k) K=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "agentpair.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "agentpair.sh: needs root" >&2; exit 1; }
for b in "$NEW" "$OLD"; do
    for p in vfleet-master vfleet-node vfleet bench_api_client; do
        [ -x "$b/$p" ] || { echo "agentpair.sh: no $b/$p" >&2; exit 1; }
    done
done

DIR=$(mktemp -d /var/tmp/vfleet-agentpair.XXXXXX)
PREFIX=aq$$h
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(port) ZPORT=$(port)
lc() {
    VFLEET_LOCAL_DIR=$DIR/c VFLEET_LOCAL_PORT=$PORT VFLEET_LOCAL_ZPORT=$ZPORT \
        VFLEET_LOCAL_PREFIX=$PREFIX VFLEET_BIN=$1 "$top/deploy/local-cluster" "${@:2}"
}
cleanup() {
    set +e
    lc "$NEW" down --purge >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

ns() { cat /proc/"$(cat "$DIR/c/$1/agent.pid")"/task/*/schedstat | awk '{t += $1} END {printf "%d", t}'; }
gone() { grep -c "destroyed" "$DIR/c/$1/agent.log" || true; }
echo "machine: kernel $(uname -r), $(nproc) cpus, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
diffs=()
for order in old new; do
    if [ $order = old ]; then first=$OLD second=$NEW; else first=$NEW second=$OLD; fi
    lc "$first" up --nodes 2 >"$DIR/up.log" 2>&1 || { tail "$DIR/up.log" >&2; exit 1; }
    h2=${PREFIX}2
    pid=$(cat "$DIR/c/$h2/agent.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    lc "$second" up --nodes 2 >>"$DIR/up.log" 2>&1 || { tail "$DIR/up.log" >&2; exit 1; }
    h1=${PREFIX}1
    echo "node $h1: $(readlink "/proc/$(cat "$DIR/c/$h1/agent.pid")/exe")"
    echo "node $h2: $(readlink "/proc/$(cat "$DIR/c/$h2/agent.pid")/exe")"
    "$NEW/bench_api_client" -s "$DIR/c/api.sock" -c 2 -k 2 -p w -a spread >/dev/null
    for ph in $(seq "$PH"); do
        a1=$(ns "$h1") a2=$(ns "$h2") c1=$(gone "$h1") c2=$(gone "$h2")
        line=$("$NEW/bench_api_client" -s "$DIR/c/api.sock" -c 1 -k "$K" -p "x$ph" -a spread | grep ^create || true)
        sleep 1
        b1=$(ns "$h1") b2=$(ns "$h2") d1=$(($(gone "$h1") - c1)) d2=$(($(gone "$h2") - c2))
        if [ "$d1" -eq 0 ] || [ "$d2" -eq 0 ]; then
            echo "agentpair.sh: a node made no guest" >&2
            exit 1
        fi
        m1=$(echo "scale=3; ($b1 - $a1) / 1000000 / $d1" | bc)
        m2=$(echo "scale=3; ($b2 - $a2) / 1000000 / $d2" | bc)
        if [ $order = old ]; then diffs+=("$(echo "$m2 - $m1" | bc)"); else diffs+=("$(echo "$m1 - $m2" | bc)"); fi
        echo "phase $ph: $h1 $m1 ms x$d1, $h2 $m2 ms x$d2 per create+delete | ${line#create } | load $(cut -d' ' -f1 /proc/loadavg)"
    done
    lc "$NEW" down --purge >/dev/null 2>&1
done
printf '%s\n' "${diffs[@]}" | awk '{s += $1; if ($1 < 0) l++} END {printf "new - old: %.3f ms per create+delete (mean of %d phases; new lower in %d)\n", s / NR, NR, l}'
