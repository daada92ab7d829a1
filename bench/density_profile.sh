#!/usr/bin/env bash
# The kernel's share of a guest's create and start at N guests: bench_density
# -n N -k 100 with `perf record -a -g` (cpu-clock, kernel stacks) over the
# first hundred guests and again over the last hundred, then the functions
# of bench_density and vfleet-spawner (the spawner, and a guest's setup up to
# its exec, which runs under the spawner's name) side by side, as sample
# counts and shares of each window. Needs root and perf; takes the host lock
# itself. Not a test: it prints figures (docs/performance.md, "What still
# grows at 1,000 guests").
#
#   sudo bench/density_profile.sh [-n GUESTS] [-o OUTDIR] [BENCH_DENSITY]
#
# The last window starts when the benchmark prints the line before the last
# hundred; perf takes a while to start with thousands of threads on the
# host, so compare shares of a window, not counts across runs. OUTDIR keeps
# first.data, last.data, the benchmark's output and the host's threads by
# name at the start of the last window.
set -euo pipefail

# Under the host lock, which no process started here may inherit (flock -o).
if [ -z "${DENSITY_PROFILE_LOCKED:-}" ]; then
    exec env DENSITY_PROFILE_LOCKED=1 flock -o /tmp/vfleet-host.lock "$0" "$@"
fi
top=$(cd "$(dirname "$0")/.." && pwd)
n=1000 out=
while getopts "n:o:" opt; do
    case $opt in
    n) n=$OPTARG ;;
    o) out=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
bin=${1:-$top/build/bin/bench_density}
[ -x "$bin" ] || { echo "density_profile.sh: no $bin" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "density_profile.sh: needs root" >&2; exit 1; }
command -v perf >/dev/null || { echo "density_profile.sh: needs perf" >&2; exit 1; }
[ "$n" -ge 200 ] || { echo "density_profile.sh: -n 200 or more" >&2; exit 2; }
out=${out:-$(mktemp -d /tmp/vfleet-density-profile.XXXXXX)}
mkdir -p "$out"
T=$(mktemp -d /tmp/vfleet-density-tpl.XXXXXX)
trap 'rm -rf "$T"' EXIT
VFLEET_BUSYBOX=${VFLEET_BUSYBOX:-/bin/busybox} "$top/deploy/templates/busybox" "$T/busybox" >/dev/null

uptime | tee "$out/uptime"
perf record -a -g -o "$out/first.data" >/dev/null 2>"$out/perf-first.log" &
perf_pid=$!
sleep 1
before="$((n - 199))-$((n - 100)) "
last="$((n - 99))-$n "
while IFS= read -r line; do
    echo "$line" | tee -a "$out/bench.out"
    case "${line#"${line%%[! ]*}"}" in
    "1-100 "*)
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        ;;
    "$before"*)
        { ps -eL -o comm= | wc -l; ps -eL -o comm= | sort | uniq -c | sort -rn | head -8; } \
            >"$out/threads.txt"
        perf record -a -g -o "$out/last.data" >/dev/null 2>"$out/perf-last.log" &
        perf_pid=$!
        ;;
    "$last"*)
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        uptime | tee -a "$out/uptime"
        ;;
    esac
done < <("$bin" -n "$n" -k 100 "$T/busybox" 2> >(grep -v 'LXCFS is not mounted' >&2))

echo "== threads on the host at the start of the last hundred"
cat "$out/threads.txt"
for w in first last; do
    perf report -i "$out/$w.data" --no-children --comms bench_density,vfleet-spawner --sort sym -n -q \
        -g none 2>/dev/null >"$out/$w.syms"
done
total() { awk '{t += $2} END {print t + 0}' "$1"; }
tf=$(total "$out/first.syms") tl=$(total "$out/last.syms")
echo "== bench_density + vfleet-spawner samples: first hundred $tf, last hundred $tl ($out)"
echo "== functions by their share's growth: share first, share last, samples first, last"
awk -v tf="$tf" -v tl="$tl" 'NR == FNR { f[$NF] = $2; next } { l[$NF] = $2 }
    END { for (k in l) { a = 100 * (f[k] + 0) / tf; b = 100 * l[k] / tl
              if (b - a > 0.4) printf "%6.2f%% %6.2f%% %6d %6d  %s\n", a, b, f[k] + 0, l[k], k } }' \
    "$out/first.syms" "$out/last.syms" | sort -k2 -rn | head -25
