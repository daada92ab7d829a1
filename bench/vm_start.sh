#!/usr/bin/env bash
# Guest start on a pure cgroup v2 host: bench_start (bench/start.c) inside the
# VM test host (Debian 12's own 6.1 kernel, cgroup_no_v1=all, QEMU), where the
# guest's init, its console reader and the exec helper join their cgroup2
# cgroup (by cgroup.procs, or cloned into it with CLONE_INTO_CGROUP).
#
#   deploy/vm-test bench/vm_start.sh
#
# Runs VFLEET_BIN/bench_start -m start,exec (20 runs, 3 warm-up) in three
# rounds, each with a pause of 200 ms before every start and every exec
# (-d 200: each finds the kernel's cgroup lock idle, as on a quiet host;
# see bench/start.c's pause_ms) and then back to back (-d 0). When
# VFLEET_BIN also holds bench_start_old (bench_start of another commit,
# copied there by hand), each round runs it first, so old and new alternate
# in one boot. To compare a build of main:
#
#   mkdir -p /tmp/vmb/bin /tmp/vmb/tests
#   cp -a build/bin/. /tmp/vmb/bin/ && cp build/tests/nodectl /tmp/vmb/tests/
#   cp MAIN_BUILD/bin/bench_start /tmp/vmb/bin/bench_start_old
#   VFLEET_BUILD_DIR=/tmp/vmb deploy/vm-test bench/vm_start.sh
#
# No LXCFS (the backend warns and goes on). Figures are wall times under
# QEMU's emulation (TCG on this project's hosts): compare rows of one boot.
. "$VFLEET_SOURCE_DIR/tests/integration/lib.sh"

if [ "${VFLEET_VM:-0}" != 1 ] || [ "$(cg_mode)" != v2 ]; then
    echo "SKIP: runs in the VM test host (deploy/vm-test bench/vm_start.sh)"
    exit 77
fi
build_template
for round in 1 2 3; do
    for pause in 200 0; do
        for b in bench_start_old bench_start; do
            [ -x "$VFLEET_BIN/$b" ] || continue
            log "round $round, pause $pause ms: $b"
            "$VFLEET_BIN/$b" -n 20 -w 3 -d "$pause" -m start,exec -s "$T/st-$b-$round-$pause" \
                "$TEMPLATES/busybox" 2> >(grep -v 'LXCFS is not mounted' >&2) ||
                fail "$b failed"
        done
    done
done
