#!/usr/bin/env bash
# The usage history's cost next to a peer: RRD files (rrdtool, the round-robin
# database behind Proxmox's graphs) holding the same tiers as vfleet's store,
# run on the same machine in the same run as bench/observe_store.
#
# The RRD layout carries what vfleet keeps, no more: per guest one file of the
# 8 gauges (memory, memory_peak, rss, swap, procs, disk_bytes, disk_inodes,
# tcp_sockets) with the raw samples for 1 hour and AVERAGE, MIN and MAX
# rollups of 1 minute for 48 hours and of 1 hour for 400 days, and one file
# of the 14 counters (cpu, 4 io, 4 net, 5 failcnt; DERIVE, so a rate) with
# the raw samples and the AVERAGE of each tier (a counter's increase is its
# average rate times the period). A step of 10 s, as vfleet's samples.
#
# Prints, for each side: the write cost per sample (a sample = one guest's
# 22 values at one time; for RRD both files' updates through one
# `rrdtool -` pipe, so no exec per update) and the storage of a guest with
# 400 days of history and per guest-day of the 1-hour tier, and the ratios.
# rrdtool writes without fsync; vfleet's store commits with synchronous=FULL,
# so the comparison is made on vfleet's usage_report time (no commit) and
# shown again with the commits.
#
# Not a test (never in ctest): it prints figures, it asserts nothing.
# rrdtool is installed for the benchmark only (never by deploy/install-deps).
#
#   bench/observe_rrd.sh [--guests N] [--hours H] [--keep]   (default 100 guests, 3 hours)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BIN=${VFLEET_BIN:-$top/build/bin}
GUESTS=100
HOURS=3
KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
    --guests) GUESTS=$2; shift 2 ;;
    --hours) HOURS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--guests N] [--hours H] [--keep]" >&2; exit 2 ;;
    esac
done
if ! command -v rrdtool >/dev/null; then
    echo "installing for this benchmark only: rrdtool"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rrdtool >/dev/null
fi

D=$(mktemp -d /var/tmp/vfleet-observe-rrd.XXXXXX)
cleanup() {
    if [ -s "$D/rrdcached.pid" ]; then kill "$(cat "$D/rrdcached.pid")" 2>/dev/null || true; fi
    [ "$KEEP" = 1 ] || rm -rf "$D"
}
trap cleanup EXIT

# vfleet's side, same guests and hours.
"$BIN/observe_store" "$GUESTS" "$HOURS" "$D" | tee "$D/vfleet.txt"

T0=1700000000
GAUGES=(memory memory_peak rss swap procs disk_bytes disk_inodes tcp_sockets)
COUNTERS=(cpu io_rb io_wb io_ro io_wo rx_b tx_b rx_p tx_p fc_procs fc_mem fc_oom fc_disk fc_tcp)
ds() { for d in "$@"; do printf 'DS:%s:%s:20:0:U ' "$d" "$kind"; done; }
gauge_rras="RRA:AVERAGE:0.5:1:360 RRA:AVERAGE:0.5:6:2880 RRA:MIN:0.5:6:2880 RRA:MAX:0.5:6:2880
            RRA:AVERAGE:0.5:360:9600 RRA:MIN:0.5:360:9600 RRA:MAX:0.5:360:9600"
counter_rras="RRA:AVERAGE:0.5:1:360 RRA:AVERAGE:0.5:6:2880 RRA:AVERAGE:0.5:360:9600"
kind=GAUGE
gds=$(ds "${GAUGES[@]}")
kind=DERIVE
cds=$(ds "${COUNTERS[@]}")
mkdir "$D/direct" "$D/cached"
# shellcheck disable=SC2086
for i in $(seq 0 $((GUESTS - 1))); do
    rrdtool create "$D/direct/g$i.gauges.rrd" --start $T0 --step 10 $gds $gauge_rras
    rrdtool create "$D/direct/g$i.counters.rrd" --start $T0 --step 10 $cds $counter_rras
done
cp "$D"/direct/*.rrd "$D/cached/"
# The 1-hour tier alone, to read its bytes per guest-day.
# shellcheck disable=SC2086
rrdtool create "$D/hours.gauges.rrd" --start $T0 --step 10 $gds \
    RRA:AVERAGE:0.5:360:9600 RRA:MIN:0.5:360:9600 RRA:MAX:0.5:360:9600
# shellcheck disable=SC2086
rrdtool create "$D/hours.counters.rrd" --start $T0 --step 10 $cds RRA:AVERAGE:0.5:360:9600
per_guest=$(($(stat -c %s "$D/direct/g0.gauges.rrd") + $(stat -c %s "$D/direct/g0.counters.rrd")))
hour_tier=$(($(stat -c %s "$D/hours.gauges.rrd") + $(stat -c %s "$D/hours.counters.rrd")))

# The updates, round by round as samples arrive (every guest at each 10 s),
# with values shaped as observe_store's; written out first so that making
# them is not timed.
cat >"$D/gen.py" <<'EOF'
import sys
g, h, t0, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cpu = [0] * g; rx = [0] * g; tx = [0] * g; rxp = [0] * g; txp = [0] * g; iow = [0] * g
out = sys.stdout
for r in range(h * 360):
    t = t0 + 10 * (r + 1)
    for i in range(g):
        cpu[i] += 10000000 * (1 + i % 7)
        rx[i] += 1500 * (r % 31) + i; tx[i] += 700 * (r % 17)
        rxp[i] += r % 31 + 1; txp[i] += r % 17 + 1; iow[i] += 4096 * (r % 5)
        mem = (64 << 20) + (r % 13) * 4096 * (i % 50)
        out.write("update %s/g%d.gauges.rrd %d:%d:%d:%d:0:%d:%d:%d:%d\n" % (
            d, i, t, mem, mem, mem // 2, 5 + i % 20, (200 << 20) + r * 4096, 12000 + r, i % 9))
        out.write("update %s/g%d.counters.rrd %d:%d:0:%d:0:0:%d:%d:%d:%d:0:0:0:0:0\n" % (
            d, i, t, cpu[i], iow[i], rx[i], tx[i], rxp[i], txp[i]))
EOF
python3 "$D/gen.py" "$GUESTS" "$HOURS" "$T0" "$D/direct" >"$D/direct.txt"
python3 "$D/gen.py" "$GUESTS" "$HOURS" "$T0" "$D/cached" >"$D/cached.txt"
samples=$((GUESTS * HOURS * 360))
check() {
    local fails
    fails=$(grep -vc '^OK' "$1" || true)
    [ "$fails" = 0 ] || { echo "rrdtool refused $fails updates:" >&2; grep -v '^OK' "$1" | head -3 >&2; exit 1; }
}

# 1. Each update written to its file at once (rrdtool update).
start=$(date +%s%N)
rrdtool - <"$D/direct.txt" >"$D/direct.out"
end=$(date +%s%N)
check "$D/direct.out"
direct_ns=$((end - start))

# 2. Through rrdcached, as Proxmox runs it: the daemon keeps the updates and
# writes each file's in one go; timed until every file is flushed (FLUSH
# answers once the file is written).
rrdcached -g -l "unix:$D/rrdcached.sock" -b "$D/cached" -B -w 86400 -z 1 -f 172800 -p "$D/rrdcached.pid" \
    >"$D/rrdcached.log" 2>&1 &
cached_pid=$!
for _ in $(seq 50); do [ -S "$D/rrdcached.sock" ] && break; sleep 0.1; done
[ -S "$D/rrdcached.sock" ] || { cat "$D/rrdcached.log" >&2; exit 1; }
start=$(date +%s%N)
RRDCACHED_ADDRESS=unix:$D/rrdcached.sock rrdtool - <"$D/cached.txt" >"$D/cached.out"
rrdtool flushcached --daemon "unix:$D/rrdcached.sock" "$D"/cached/g*.rrd
end=$(date +%s%N)
kill "$cached_pid"
wait "$cached_pid" 2>/dev/null || true
check "$D/cached.out"
cached_ns=$((end - start))
# Both ways wrote the same values.
rrdtool fetch "$D/direct/g1.gauges.rrd" MAX -r 3600 -s $((T0 + 3600)) -e $((T0 + 3 * 3600)) >"$D/f1"
rrdtool fetch "$D/cached/g1.gauges.rrd" MAX -r 3600 -s $((T0 + 3600)) -e $((T0 + 3 * 3600)) >"$D/f2"
cmp -s "$D/f1" "$D/f2" || { echo "rrdcached's files differ from rrdtool's" >&2; exit 1; }

python3 - "$D/vfleet.txt" "$samples" "$direct_ns" "$cached_ns" "$per_guest" "$hour_tier" "$GUESTS" "$HOURS" <<'EOF'
import re, sys
txt = open(sys.argv[1]).read()
samples, direct_ns, cached_ns, per_guest, hour_tier, g, h = map(int, sys.argv[2:])
us = float(re.search(r"usage_report: ([\d.]+) us per sample", txt).group(1))
commit = float(re.search(r"commit ([\d.]+) ms per round", txt).group(1))
m = re.search(r"history_tick with work .*?: (\d+) times, ([\d.]+) ms mean", txt)
ticks, tick_ms = int(m.group(1)), float(m.group(2))
rounds = h * 360
all_in = us + commit * 1000 / g + ticks * tick_ms * 1000 / (rounds * g)
rrd_us = direct_ns / 1e3 / samples
cached_us = cached_ns / 1e3 / samples
# vfleet's steady storage per guest with 400 days, from dbstat's bytes per row.
rows = {}
for line in txt.splitlines():
    f = line.split()
    if len(f) == 4 and f[0].startswith("usage_"):
        try:
            rows[f[0]] = float(f[3])
        except ValueError:
            pass
raw = rows["usage_raw"] * 360
minutes = (rows["usage_1m"] + rows.get("usage_1m_time", 0)) * 2880
hours_b = (rows["usage_1h"] + rows.get("usage_1h_time", 0)) * 9600
vf_guest = raw + minutes + hours_b + rows.get("usage_last", 0)
vf_day = (rows["usage_1h"] + rows.get("usage_1h_time", 0)) * 24
rrd_day = hour_tier / 400
print()
print("%d guests, %d simulated hours, %d samples of 22 values" % (g, h, samples))
print("write per sample: vfleet usage_report %.1f us, with its commits and ticks %.1f us" % (us, all_in))
print("  RRD, rrdtool update (2 files, no fsync): %.1f us; vfleet / RRD = %.2f (%.2f with commits)"
      % (rrd_us, us / rrd_us, all_in / rrd_us))
print("  RRD through rrdcached (batched per file, no fsync): %.1f us; vfleet / RRD = %.2f"
      " (%.2f with commits)" % (cached_us, us / cached_us, all_in / cached_us))
print("a guest with 400 days of history: vfleet %.2f MB; RRD %.2f MB (fixed from creation);"
      " vfleet / RRD = %.2f" % (vf_guest / 1e6, per_guest / 1e6, vf_guest / per_guest))
print("per guest-day of the 1-hour tier: vfleet %.1f KB; RRD %.1f KB; vfleet / RRD = %.2f"
      % (vf_day / 1e3, rrd_day / 1e3, vf_day / rrd_day))
EOF
