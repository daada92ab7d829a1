#!/usr/bin/env bash
# Density on one host: bench_density (N guests created and started one after
# the other on the linux backend, create and start time and CPU per STEP
# guests, the mount table's size, one mountinfo_find's CPU time at the end)
# for this build and for the same program built against OLD_REV's node code,
# run alternately in the same run. Needs root. Not a test: it prints figures.
#
#   sudo bench/density.sh [-n GUESTS] [-k STEP]      (default 200 and 50)
#
# Environment: OLD_REV (default 0c30a01, before guests were cloned from a
# seed mount namespace), OLD_BUILD (a cmake build dir of OLD_REV with vf_linux built;
# default: made here from `git archive OLD_REV`, a few minutes), MID_REV and
# MID_BUILD (a third build run between the two, to tell two changes apart;
# e.g. MID_REV=7d940eb, the seed without the pristine disk images), ROUNDS
# (default 1: old then new), BUILD (default <repo>/build). OLD_REV=none runs
# this build alone (the 1,000-guest run: an old build would take hours).
#
# The node agent's own RSS and CPU with as many guests (created through a
# master, each with an address) are bench/agent.sh's: `IP=v6 PEER=none
# bench/agent.sh -n 1000 -s 30 -r 1` (docs/performance.md).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
OLD_REV=${OLD_REV:-0c30a01}
ROUNDS=${ROUNDS:-1}
NEW=$BUILD/bin/bench_density
[ -x "$NEW" ] || { echo "density.sh: no $NEW (cmake --build build --target bench_density)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "density.sh: needs root" >&2; exit 1; }

T=$(mktemp -d /tmp/vfleet-density.XXXXXX)
trap 'rm -rf "$T"' EXIT
# bench_at REV BUILD NAME: bench/density.c linked against REV's node code
# (built here from `git archive REV` when BUILD is empty), as $T/NAME.
# bench/density.c uses only the backend's public interface, which REV has too.
bench_at() {
    local rev=$1 build=$2 name=$3 src
    if [ -z "$build" ]; then
        src=$T/src-$name
        mkdir -p "$src"
        git -C "$top" archive "$rev" | tar -x -C "$src"
        cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$src/build" -j2 --target vf_linux >/dev/null
        build=$src/build
    else
        src=$(cd "$build/.." && pwd)
    fi
    # Revisions before czmq was dropped (30 Nov 2026) link it; older ones
    # also libbpf, linked here only where its development files are installed
    # (without them -lbpf failed even for trees that no longer use it). SHA-256
    # is nettle's since 30 November, GnuTLS's before.
    cc -O2 -g -DNDEBUG -D_GNU_SOURCE -std=gnu11 -I"$src" -o "$T/$name" "$top/bench/density.c" \
        "$build/node/linux/libvf_linux.a" "$build/archive/libvf_archive.a" \
        "$build/proto/libvf_proto.a" "$build/common/libvf_common.a" -linih -ljansson -lmsgpackc \
        $(pkg-config --libs-only-l libczmq 2>/dev/null) -lzmq -luv -lpthread -lm -lcap -lnl-route-3 -lnl-3 -lnftables -lseccomp \
        $(pkg-config --libs-only-l libbpf 2>/dev/null) -lzstd -lnettle -lgnutls
}
[ "$OLD_REV" = none ] || bench_at "$OLD_REV" "${OLD_BUILD:-}" bench_density_old
[ -z "${MID_REV:-}" ] || bench_at "$MID_REV" "${MID_BUILD:-}" bench_density_mid

tpl=$T/templates/busybox
VFLEET_BUSYBOX=${VFLEET_BUSYBOX:-/bin/busybox} "$top/deploy/templates/busybox" "$tpl" >/dev/null
for r in $(seq "$ROUNDS"); do
    if [ "$OLD_REV" != none ]; then
        echo "== round $r: old ($OLD_REV)"
        "$T/bench_density_old" "$@" "$tpl" 2> >(grep -v 'LXCFS is not mounted' >&2)
    fi
    if [ -n "${MID_REV:-}" ]; then
        echo "== round $r: mid ($MID_REV)"
        "$T/bench_density_mid" "$@" "$tpl" 2> >(grep -v 'LXCFS is not mounted' >&2)
    fi
    echo "== round $r: new (this tree)"
    "$NEW" "$@" "$tpl" 2> >(grep -v 'LXCFS is not mounted' >&2)
done
