#!/usr/bin/env bash
# Where a create's CPU goes on a node, beyond the agent: the spawner's own,
# everything it clones and forks (the guests' setup before their init runs,
# the inits and what they run, the console readers, the id-mapping helpers),
# and the guests' own cgroups, per create, for one or more builds in one run
# (alternating, a fresh cluster each time). Not a test: it prints figures.
# Needs root, and the host lock when other sessions share the machine.
#
#   bench/guest_cpu.sh [-k CREATES] [-r ROUNDS] NAME:TREE...   (default 24 and 2)
#
# TREE is a source tree with its build in TREE/build (bin/ used as the
# cluster's VFLEET_BIN, deploy/ for the local cluster and the busybox
# template, so a template change is measured with its build). Each round,
# for each build: deploy/local-cluster up --nodes 2, 4 warm-up creates, then
# one client (this tree's bench_api_client) makes K guests with
# POST /v1/guests?wait=running and deletes them. Per create:
#
#   spawner   the spawners' own CPU (/proc/PID/schedstat), create and delete
#   tree      `perf stat -e task-clock -p SPAWNERS` (counters inherited by
#             every process they clone or fork after the attach: guests'
#             setup, inits, readers, helpers), create and delete phases
#   g_create  the nodes' guest cgroups (cpuacct vfleet-PREFIXn) during the
#             create phase: what runs after the guest's child joined them
#             (its setup, its init's boot, its console reader)
#   g_delete  the same during the delete phase (the inits' halt)
#
# PERF_RECORD=1 replaces the perf stat with `perf record -g -F 20000` of the
# same processes, written to OUT (default /tmp/guest_cpu) as NAME.ROUND.data.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
K=24 ROUNDS=2
while [ $# -gt 0 ]; do
    case $1 in
    -k) K=$2; shift 2 ;;
    -r) ROUNDS=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "guest_cpu.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "guest_cpu.sh: NAME:TREE..." >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "guest_cpu.sh: needs root" >&2; exit 1; }
client=$here/build/bin/bench_api_client
[ -x "$client" ] || { echo "guest_cpu.sh: no $client: build first" >&2; exit 1; }
OUT=${OUT:-/tmp/guest_cpu}
mkdir -p "$OUT"
DIR=$(mktemp -d /var/tmp/vfleet-gcpu.XXXXXX)
PREFIX=gc$$h
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ZPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tree=
lc() {
    VFLEET_LOCAL_DIR=$DIR/c VFLEET_LOCAL_PORT=$PORT VFLEET_LOCAL_ZPORT=$ZPORT \
        VFLEET_LOCAL_PREFIX=$PREFIX VFLEET_BIN=$tree/build/bin "$tree/deploy/local-cluster" "$@"
}
cleanup() {
    set +e
    [ -n "$tree" ] && lc down --purge >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT

# The spawners: each agent's child running the spawner's sealed memfd.
spawners() {
    local a p
    # shellcheck disable=SC2013
    for a in $(cat "$DIR"/c/*/agent.pid); do
        for p in $(pgrep -P "$a" -x vfleet-spawner); do
            readlink "/proc/$p/exe" | grep -q memfd:vfleet-spawner && echo "$p"
        done
    done
}
schedsum() {
    local t=0 p
    for p in ${1//,/ }; do t=$((t + $(cut -d' ' -f1 "/proc/$p/schedstat"))); done
    echo $t
}
field() { # field PHASE KEY FILE: KEY=value of bench_api_client's PHASE line
    awk -v ph="$1" -v k="$2" '$1 == ph { for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) {
        sub(k "=", "", $i); sub("ms$", "", $i); print $i } }' "$3" | head -1
}

echo "machine: kernel $(uname -r), $(nproc) cpus, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-8s %11s %8s %10s %10s %8s %s\n' round build spawner_ms tree_ms g_create_ms \
    g_delete_ms p50_ms load
for r in $(seq "$ROUNDS"); do
    for b in "$@"; do
        name=${b%%:*} tree=$(cd "${b#*:}" && pwd)
        rm -rf "$DIR/c"
        lc up --nodes 2 >"$DIR/up.log" 2>&1 || { tail "$DIR/up.log"; exit 1; }
        "$client" -s "$DIR/c/api.sock" -c 2 -k 2 -p "w$r" >/dev/null
        sp=$(spawners | paste -sd,)
        s0=$(schedsum "$sp")
        if [ "${PERF_RECORD:-0}" = 1 ]; then
            perf record -q -g -F 20000 -p "$sp" -o "$OUT/$name.$r.data" 2>/dev/null &
        else
            perf stat -x, -e task-clock -p "$sp" -o "$OUT/$name.$r.stat" &
        fi
        pp=$!
        sleep 0.3
        cg=/sys/fs/cgroup/cpuacct/vfleet-$PREFIX
        "$client" -s "$DIR/c/api.sock" -c 1 -k "$K" -p "m$r" -u "${cg}1/cpuacct.usage" \
            -u "${cg}2/cpuacct.usage" >"$OUT/$name.$r.client"
        sleep 0.2
        kill -INT "$pp"
        wait "$pp" || true
        s1=$(schedsum "$sp")
        tc=$(awk -F, '$3 == "task-clock" { print $1 }' "$OUT/$name.$r.stat" 2>/dev/null || true)
        awk -v r="$r" -v n="$name" -v s=$((s1 - s0)) -v tc="${tc:-nan}" -v k="$K" \
            -v gc="$(field create cpu_ms_each "$OUT/$name.$r.client")" \
            -v gd="$(field delete cpu_ms_each "$OUT/$name.$r.client")" \
            -v p50="$(field create p50 "$OUT/$name.$r.client")" \
            -v load="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
            printf "%-5s %-8s %11.3f %8.3f %10s %10s %8s %s\n", r, n, s / 1e6 / k, tc / k, gc, gd, p50, load }'
        lc down --purge >/dev/null 2>&1
    done
done
