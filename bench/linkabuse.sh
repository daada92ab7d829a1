#!/usr/bin/env bash
# What a node gone bad costs the master and the other nodes: a master on a
# CurveZMQ tcp:// endpoint with two joined nodes, "good" and "bad". good's
# round trip (heartbeat and echo, one after the other: peerctl rtt) is
# measured alone, then while bad (at nice 19: its CPU is not the master's)
# streams messages of PARTS frames of SIZE bytes (peerctl multi) under its
# valid key for SECONDS. Prints the master's CPU over the stream, its
# resident memory before, at the end and at its peak (VmHWM), what bad sent
# and how often the master closed its connection, the round trips alone and
# under the stream, and the master's warning lines. Not a test: it prints
# figures, it asserts nothing.
#
#   bench/linkabuse.sh [BINDIR ...]
#
# Each BINDIR holds a vfleet-master, vfleet-node and vfleet (default: this
# build's bin/); with several, the rounds alternate between them (same-run
# pairs on a shared machine). peerctl is always this build's.
# Environment: PARTS (2), SIZE (1024), SECS (10), ROUNDS (2), RTT (5000 round trips),
# BUILD (default <repo>/build).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
PARTS=${PARTS:-2} SIZE=${SIZE:-1024} SECS=${SECS:-10} ROUNDS=${ROUNDS:-2} RTT=${RTT:-5000}
PEERCTL=$BUILD/tests/peerctl
[ -x "$PEERCTL" ] || { echo "linkabuse.sh: no $PEERCTL (cmake --build build --target peerctl)" >&2; exit 1; }
[ $# -gt 0 ] || set -- "$BUILD/bin"

T=$(mktemp -d /tmp/vfleet-linkabuse.XXXXXX)
MPID=
cleanup() {
    [ -z "$MPID" ] || { kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null || true; }
    rm -rf "$T"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return 0; }
    done
    echo "no free port" >&2
    exit 1
}
field() { sed -n "s/.*\"$1\": \([0-9a-z]*\).*/\1/p"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

round() {
    local bin=$1 d=$T/r$2 port zport ep
    mkdir -p "$d"
    port=$(free_port)
    zport=$(free_port)
    [ "$zport" != "$port" ] || zport=$(free_port)
    ep=tcp://127.0.0.1:$zport
    export VFLEET_MASTER=unix:$d/api.sock
    "$bin/vfleet-master" --db "$d/master.db" --listen "127.0.0.1:$port" --socket "$d/api.sock" \
        --bind "$ep" --web "$top/master/web" </dev/null >"$d/master.log" 2>&1 &
    MPID=$!
    for _ in $(seq 100); do
        "$bin/vfleet" health >/dev/null 2>&1 && break
        sleep 0.1
    done
    for n in good bad; do
        tok=$("$bin/vfleet" node token create --name "$n" | head -1)
        "$bin/vfleet-node" join --master "$ep" --token "$tok" --name "$n" --state-dir "$d/$n" \
            >/dev/null 2>&1
    done
    "$PEERCTL" -e "$ep" -k "$d/good/node.key" rtt 200 >/dev/null
    local alone under atk c0 c1 r0 r1 hwm hz lines0 warn
    alone=$("$PEERCTL" -e "$ep" -k "$d/good/node.key" rtt "$RTT" || true)
    lines0=$(wc -l <"$d/master.log")
    r0=$(rss_kb "$MPID" VmRSS)
    c0=$(cpu_ticks "$MPID")
    nice -n 19 "$PEERCTL" -e "$ep" -k "$d/bad/node.key" -t "$SECS" multi "$PARTS" "$SIZE" \
        >"$d/multi.json" &
    atk=$!
    sleep 1
    under=$("$PEERCTL" -e "$ep" -k "$d/good/node.key" rtt "$RTT" || true)
    wait "$atk"
    c1=$(cpu_ticks "$MPID")
    r1=$(rss_kb "$MPID" VmRSS)
    hwm=$(rss_kb "$MPID" VmHWM)
    hz=$(getconf CLK_TCK)
    warn=$(tail -n +"$((lines0 + 1))" "$d/master.log" | grep -c warning || true)
    printf '%s: master cpu %s%% over %ss; rss %s -> %s KiB (peak %s); bad sent %s, closed %s; ' \
        "$bin" "$(python3 -c "print(round(100 * ($c1 - $c0) / $hz / $SECS))")" "$SECS" \
        "$r0" "$r1" "$hwm" "$(field sent <"$d/multi.json")" "$(field closed_by_master <"$d/multi.json")"
    printf 'rtt median/p99 us alone %s/%s, under %s/%s (%s answered); %s warning lines\n' \
        "$(field median_us <<<"$alone")" "$(field p99_us <<<"$alone")" \
        "$(field median_us <<<"$under")" "$(field p99_us <<<"$under")" "$(field n <<<"$under")" "$warn"
    tail -n +"$((lines0 + 1))" "$d/master.log" | grep warning | tail -2 | sed 's/^/    /' || true
    kill "$MPID"
    wait "$MPID" 2>/dev/null || true
    MPID=
}

echo "# $(uptime)"
echo "# PARTS=$PARTS SIZE=$SIZE SECS=$SECS RTT=$RTT"
for r in $(seq "$ROUNDS"); do
    for b in "$@"; do round "$b" "$r-$(basename "$(dirname "$b")")"; done
done
echo "# $(uptime)"
