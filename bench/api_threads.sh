#!/usr/bin/env bash
# Where the time of parallel creates goes, thread by thread: on a fresh
# local cluster of two real nodes (deploy/local-cluster), CLIENTS clients
# each make K guests (bench_api_client, POST /v1/guests?wait=running, binpack:
# one node), and around the create phase alone (bench_api_client -H, not the
# deletes) every thread on the host is snapshotted (ns on CPU) with
# /proc/stat; the last round also records the scheduler's switches and
# wake-ups with their stacks. Prints, per round, the machine's split of
# cores (idle included) and the commands and threads that used them; then
# the master's, agents' and spawners' threads: share of the phase running,
# runnable (waiting for a CPU), in D and in S, and the stacks they slept in
# (bench/sched_states.py). Not a test; asserts nothing. Root only; real
# guests: run it under `flock -o /tmp/vfleet-host.lock`.
#
#   bench/api_threads.sh [-c CLIENTS] [-k PER_CLIENT] [-r ROUNDS]   (default 8, 24, 2)
#
# Environment: VFLEET_BIN (default <repo>/build/bin), OUT (a directory for
# the snapshots and trace; default a new one under /var/tmp, kept).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VFLEET_BIN:-$top/build/bin}
C=8 K=24 R=2
while [ $# -gt 0 ]; do
    case $1 in
    -c) C=$2; shift 2 ;;
    -k) K=$2; shift 2 ;;
    -r) R=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "api_threads.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "api_threads.sh: needs root" >&2; exit 1; }
for p in perf python3; do
    command -v $p >/dev/null || { echo "api_threads.sh: needs $p" >&2; exit 1; }
done
OUT=${OUT:-$(mktemp -d /var/tmp/vfleet-threads.XXXXXX)}
mkdir -p "$OUT"
DIR=$(mktemp -d /var/tmp/vfleet-threads-c.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ZPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
lc() {
    VFLEET_LOCAL_DIR=$DIR/c VFLEET_LOCAL_PORT=$PORT VFLEET_LOCAL_ZPORT=$ZPORT \
        VFLEET_LOCAL_PREFIX=at$$h VFLEET_BIN=$BIN "$top/deploy/local-cluster" "$@"
}
trap 'lc down --purge >/dev/null 2>&1; rm -rf "$DIR"' EXIT
lc up --nodes 2 >"$OUT/up.log" 2>&1 || { tail "$OUT/up.log"; exit 1; }
client() { "$BIN/bench_api_client" -s "$DIR/c/api.sock" "$@"; }
client -c 2 -k 1 -p w1 >/dev/null
client -c 8 -k 3 -p w2 >/dev/null

# The hook bench_api_client runs before and after the create phase.
cat >"$OUT/hook" <<HOOK
#!/bin/sh
case \$1 in
before)
    if [ -n "\${TRACE:-}" ]; then
        perf record -q -e sched:sched_switch -e sched:sched_wakeup -a -g -o "$OUT/sched.data" \
            >/dev/null 2>&1 & echo \$! >"$OUT/perf.pid"
        sleep 0.7
    fi
    python3 "$top/bench/sched_states.py" snap "$OUT/a"; date +%s.%N >"$OUT/t0" ;;
after)
    date +%s.%N >"$OUT/t1"; python3 "$top/bench/sched_states.py" snap "$OUT/b"
    if [ -s "$OUT/perf.pid" ]; then
        kill -INT \$(cat "$OUT/perf.pid"); while kill -0 \$(cat "$OUT/perf.pid") 2>/dev/null; do sleep 0.1; done
        rm -f "$OUT/perf.pid"
    fi ;;
esac
HOOK
chmod +x "$OUT/hook"

pids=$(cat "$DIR"/c/master.pid "$DIR"/c/*/agent.pid)
echo "machine: kernel $(uname -r), $(nproc) cpus; cluster: master $(cat "$DIR/c/master.pid"), agents $(cat "$DIR"/c/*/agent.pid | paste -sd' '), their spawners $(for a in $(cat "$DIR"/c/*/agent.pid); do pgrep -P "$a"; done | paste -sd' ')"
for r in $(seq "$R"); do
    echo "== round $r, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "$r" = "$R" ]; then export TRACE=1; fi
    client -c "$C" -k "$K" -p "x$r" -H "$OUT/hook" | grep '^create'
    python3 "$top/bench/sched_states.py" cpu "$OUT/a" "$OUT/b" $((C * K)) \
        "$(python3 -c "print($(cat "$OUT/t1") - $(cat "$OUT/t0"))")"
done
perf script -i "$OUT/sched.data" -F comm,pid,tid,cpu,time,event,trace,ip,sym >"$OUT/sched.txt" 2>/dev/null
spawners=$(for a in $(cat "$DIR"/c/*/agent.pid); do pgrep -P "$a"; done)
# shellcheck disable=SC2086
python3 "$top/bench/sched_states.py" states "$OUT/sched.txt" $pids $spawners
echo "kept $OUT"
