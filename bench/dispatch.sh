#!/usr/bin/env bash
# The master's outboxes alone, this tree's master/dispatch.c next to an older
# one, in the same run: bench/dispatch_core (built by cmake) and the same
# program compiled against OLD_REV's master/dispatch.c and dispatch.h (the
# rest of the master from this build). Runs them alternately RUNS times and
# prints CPU times and the ratio of the medians; with CALLGRIND=1 it also
# counts instructions under valgrind (the same on a busy machine).
# Not a test: it prints figures, it asserts nothing.
#
#   bench/dispatch.sh [ARGS for dispatch_core: nodes guests lag per-node ms-per-batch]
#
# Environment: OLD_REV (default: the last commit before the outboxes were
# indexed), RUNS (default 5), CALLGRIND=1, BUILD (default <repo>/build).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
OLD_REV=${OLD_REV:-7ea4c4a}
RUNS=${RUNS:-5}
NEW=$BUILD/bin/dispatch_core
[ -x "$NEW" ] || { echo "dispatch.sh: no $NEW (cmake --build build --target dispatch_core)" >&2; exit 1; }

T=$(mktemp -d /tmp/vfleet-dispatch.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/master"
git -C "$top" show "$OLD_REV:master/dispatch.c" >"$T/dispatch.c"
git -C "$top" show "$OLD_REV:master/dispatch.h" >"$T/master/dispatch.h"
# Revisions before hmap moved to common/ (30 Nov 2026) include it from master/.
git -C "$top" show "$OLD_REV:master/hmap.h" >"$T/master/hmap.h" 2>/dev/null || rm -f "$T/master/hmap.h"
# Revisions before czmq was dropped (30 Nov 2026) link it; later ones do not.
# The objects given first win; the archive's dispatch.o is then never pulled in.
cc -O2 -g -DNDEBUG -D_GNU_SOURCE -std=gnu11 -I"$T" -I"$top" -o "$T/dispatch_core_old" \
    "$top/bench/dispatch_core.c" "$T/dispatch.c" \
    "$BUILD/master/libvf_master.a" "$BUILD/proto/libvf_proto.a" "$BUILD/common/libvf_common.a" \
    -lmsgpackc $(pkg-config --libs-only-l libczmq 2>/dev/null) -lzmq -luv -ljansson -lsqlite3 -lm
OLD=$T/dispatch_core_old

cpu_of() { sed -n 's/.*: cpu \([0-9.]*\) ms.*/\1/p'; }
tick_of() { sed -n 's/.* in \([0-9.]*\) ms, frames.*/\1/p'; }
old_cpu=() new_cpu=() old_tick=() new_tick=()
for i in $(seq "$RUNS"); do
    o=$("$OLD" "$@") n=$("$NEW" "$@")
    [ "$i" = 1 ] && { echo "old ($OLD_REV): $o"; echo "new (this tree): $n"; }
    old_cpu+=("$(cpu_of <<<"$o")") new_cpu+=("$(cpu_of <<<"$n")")
    old_tick+=("$(tick_of <<<"$o")") new_tick+=("$(tick_of <<<"$n")")
done
python3 - "${old_cpu[*]}" "${new_cpu[*]}" "${old_tick[*]}" "${new_tick[*]}" <<'EOF'
import statistics, sys
oc, nc, ot, nt = ([float(x) for x in a.split()] for a in sys.argv[1:5])
m = statistics.median
print("runs %d, alternating; CPU ms, median (min-max)" % len(oc))
print("whole run   old %.1f (%.1f-%.1f)  new %.1f (%.1f-%.1f)  new/old %.2f" % (m(oc), min(oc), max(oc), m(nc), min(nc), max(nc), m(nc) / m(oc)))
print("ticks alone old %.1f (%.1f-%.1f)  new %.1f (%.1f-%.1f)  new/old %.3f" % (m(ot), min(ot), max(ot), m(nt), min(nt), max(nt), m(nt) / m(ot) if m(ot) else float("nan")))
EOF
if [ "${CALLGRIND:-0}" = 1 ]; then
    ir() { valgrind --tool=callgrind --callgrind-out-file="$T/cg.out" "$@" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
    # Each guest is one apply and one start: 2 x guests queues and acks.
    per=$((2 * ${2:-100000}))
    fn() { callgrind_annotate --inclusive=yes "$T/cg.out" 2>/dev/null |
        awk -v f="dispatch.c:$1 " -v n="$per" '!done && index($0, f) && !/=>/ {gsub(",", "", $1); printf "%.0f", $1 / n; done = 1}'; }
    io=$(ir "$OLD" "$@"); oq=$(fn dispatch_queue) oc=$(fn dispatch_complete) op=$(fn dispatch_pending)
    in=$(ir "$NEW" "$@"); nq=$(fn dispatch_queue) nc=$(fn dispatch_complete) np=$(fn dispatch_pending)
    python3 -c "import sys; o, n = int(sys.argv[1]), int(sys.argv[2]); print('instructions old %d  new %d  new/old %.3f' % (o, n, n / o))" "$io" "$in"
    echo "instructions per call, old/new: dispatch_queue $oq/$nq, dispatch_complete $oc/$nc, dispatch_pending (two per ack) $op/$np"
fi
