#!/usr/bin/env bash
# Moving guests between hosts of a local cluster (deploy/local-cluster: two
# nodes, each a network namespace, joined by the shared segment the data
# channel runs on). Not a test (never in ctest): it prints figures, it
# asserts nothing. Root only.
#
#   bench/move.sh [--sizes "256M 1G"] [--fill PCT] [--churn MiB] [--keep]
#
# For each disk size, a guest whose disk is filled to --fill percent (default
# 60) with random data (incompressible: the worst case for zstd and the one
# a disk image shows) is moved:
#   cold       vfleet guest move: stop, copy the image, start on the target
#   near-live  vfleet guest move --live while a writer in the guest keeps
#              rewriting --churn MiB (default 50) of its data in place: the
#              first pass copies it, freeze, send what changed (those MiB),
#              start on the target
# and the same tree (the guest's files: its overlay's upper directory) is
# piped across the same link with `tar | zstd -T0 -3 | socat` into `socat |
# zstd -d | tar -x`, in the same run.
#
# Figures:
#   move s        the operation, first request to done (stop or freeze,
#                 copy, digest check both ends, start, removal at the source)
#   copy s        the copy passes on the source, summed
#   downtime ms   cold: the stop's start to running on the target; near-live:
#                 frozen to running on the target
#   frozen pass   near-live (the line below it): MiB of the last pass, sent
#                 with the guest frozen, and the CRIU preflight's verdict
#   sent MiB      payload bytes on the data channel (near-live: both passes)
#   MiB/s         sent / copy
#   tar|zstd s    the baseline pipeline over the same link; its MiB/s counts
#                 the tree's bytes
#   ratio         cold: copy s / tar|zstd s (below 1: the data channel is
#                 faster than the pipeline)
#
# Environment: VFLEET_BIN (default <repo>/build/bin), BENCH_DIR (default a new
# /tmp/vfleet-move.XXXXXX, removed at the end unless --keep).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VFLEET_BIN:-$top/build/bin}
SIZES="256M 1G" FILL=60 CHURN=50 KEEP=0

while [ $# -gt 0 ]; do
    case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --fill) FILL=$2; shift 2 ;;
    --churn) CHURN=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "move.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "move.sh: needs root" >&2; exit 1; }
for p in vfleet-master vfleet-node vfleet; do
    [ -x "$BIN/$p" ] || { echo "move.sh: no $BIN/$p: build first" >&2; exit 1; }
done
for p in zstd socat; do
    command -v $p >/dev/null || { echo "move.sh: needs $p (deploy/install-deps)" >&2; exit 1; }
done

DIR=${BENCH_DIR:-$(mktemp -d /tmp/vfleet-move.XXXXXX)}
mkdir -p "$DIR"
PREFIX=mb$$h
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The master's Unix socket (local-cluster's; root needs no token on it).
export VFLEET_MASTER=unix:$DIR/c/api.sock
lc() {
    VFLEET_LOCAL_DIR=$DIR/c VFLEET_LOCAL_PORT=$PORT VFLEET_LOCAL_PREFIX=$PREFIX VFLEET_BIN=$BIN \
        VFLEET_NODE_ARGS="--usage-interval 2" "$top/deploy/local-cluster" "$@"
}
vf() { "$BIN/vfleet" "$@"; }
pyj() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
cleanup() {
    set +e
    [ "$KEEP" = 1 ] && { echo "kept: $DIR (lc down --purge with VFLEET_LOCAL_DIR=$DIR/c)"; return; }
    lc down --purge >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT
lc up --nodes 2 >"$DIR/cluster.log" 2>&1 || { tail "$DIR/cluster.log"; exit 1; }
n1=${PREFIX}1 n2=${PREFIX}2

bytes() { numfmt --from=iec "$1"; }
mib() { python3 -c "print(f'{$1/1048576:.0f}')"; }

# move NAME TO [--live]: the final operation as JSON.
move() {
    vf --json guest move "$1" --to "$2" ${3:-} 2>/dev/null | tail -1
}

# baseline ID FROM TO: tar | zstd over TCP (socat) of the guest's upper dir,
# seconds.
baseline() {
    local id=$1 from=$2 to=$3 src dst port=45678 t0 t1
    src=$DIR/c/$from/data/$id/disk/upper
    dst=$DIR/untar
    rm -rf "$dst"
    mkdir -p "$dst"
    nsenter --net="/run/netns/vf-$to" -- socat -u TCP-LISTEN:$port,reuseaddr STDOUT |
        zstd -d -q | tar -x -C "$dst" &
    local rx=$!
    sleep 0.5
    t0=$(date +%s.%N)
    tar -C "$src" -cf - . | zstd -q -T0 -3 |
        nsenter --net="/run/netns/vf-$from" -- socat -u STDIN "TCP:10.87.255.${to#"$PREFIX"}:$port"
    wait "$rx"
    t1=$(date +%s.%N)
    [ "$(du -sb "$dst" | awk '{print $1}')" -ge $(($(du -sb "$src" | awk '{print $1}') * 9 / 10)) ] ||
        echo "move.sh: the baseline did not arrive whole" >&2
    python3 -c "print(f'{$t1-$t0:.2f}')"
}

printf '%-6s %-10s %8s %8s %12s %9s %8s %11s %8s %6s\n' disk mode "move s" "copy s" \
    "downtime ms" "sent MiB" "MiB/s" "tar|zstd s" "MiB/s" ratio
for size in $SIZES; do
    g=bm$(echo "$size" | tr 'A-Z' 'a-z')
    vf guest create "$g" --template busybox --memory 256M --disk "$size" --cpu 1 --node "$n1" \
        --ip "10.87.0.$((200 + ${#size}))" --wait --timeout 300 >/dev/null
    id=$(vf --json guest show "$g" | pyj 'd["id"]')
    fill=$(($(bytes "$size") * FILL / 100 / 1048576))
    vf guest exec --timeout 500 "$g" -- sh -c "dd if=/dev/urandom of=/root/fill bs=1M count=$fill \
        2>/dev/null; sync" >/dev/null
    tree=$(du -sb "$DIR/c/$n1/data/$id/disk/upper" | awk '{print $1}')
    tz=$(baseline "$id" "$n1" "$n2")
    tzr=$(python3 -c "print(f'{$tree/1048576/$tz:.0f}')")

    op=$(move "$g" "$n2")
    r() { echo "$op" | pyj "d['result'].get('$1', 0)"; }
    printf '%-6s %-10s %8.2f %8.2f %12s %9s %8.0f %11s %8s %6.2f\n' "$size" cold \
        "$(python3 -c "print($(r duration_ms)/1000)")" "$(python3 -c "print($(r copy_ms)/1000)")" \
        "$(r downtime_ms)" "$(mib "$(r bytes_sent)")" \
        "$(python3 -c "print($(r bytes_sent)/1048576/max($(r copy_ms),1)*1000)")" "$tz" "$tzr" \
        "$(python3 -c "print($(r copy_ms)/1000/$tz)")"

    # Near-live back, with a writer in the guest (started before the move:
    # an exec waits for no child) that rewrites the first CHURN MiB of the
    # fill file in place with fresh random bytes, synced, again and again
    # until the guest is frozen: the chunks the first pass copied have
    # changed by then, and the frozen pass sends them.
    vf guest exec "$g" -- sh -c "(sleep 0.2; while :; do dd if=/dev/urandom of=/root/fill \
        bs=1M count=$CHURN conv=notrunc,fsync; sleep 0.3; done) </dev/null >/dev/null 2>&1 &" \
        >/dev/null
    op=$(move "$g" "$n1" --live)
    printf '%-6s %-10s %8.2f %8.2f %12s %9s %8.0f %11s %8s\n' "$size" near-live \
        "$(python3 -c "print($(r duration_ms)/1000)")" "$(python3 -c "print($(r copy_ms)/1000)")" \
        "$(r downtime_ms)" "$(mib "$(r bytes_sent)")" \
        "$(python3 -c "print($(r bytes_sent)/1048576/max($(r copy_ms),1)*1000)")" "" ""
    echo "  frozen pass: $(mib "$(r frozen_bytes)") MiB; note: $(r note)"
    vf guest rm "$g" >/dev/null
done
