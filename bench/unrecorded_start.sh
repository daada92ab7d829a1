#!/usr/bin/env bash
# The agent's start-up with N unrecorded guests (a cgroup under its prefix and
# a directory in its state directory, no record: what an agent killed
# mid-create leaves), which it kills before its hello (node/agent.c
# adopt_all): seconds from exec to its "agent running" line, for each
# vfleet-node binary given, in that order (alternate an old and a new build).
# With -r each guest has a record instead, which says it is stopped (and a
# disk image, empty), while a process of it runs: what an agent killed
# between a start's spawn and its record write leaves; the start-up kills
# those too.
# Needs root and a cgroup v1 pids and freezer hierarchy (hybrid hosts), and
# the host lock beside other benchmarks:
#
#   sudo flock -o /tmp/vfleet-host.lock bench/unrecorded_start.sh [-n N] [-f] [-r] BIN...
#
# Each guest holds one process (a sleep), spawned again before each run.
# With -f they will not die: each is also put in a v1 freezer cgroup outside
# the guest's, frozen, so a SIGKILL stays pending (what a process in
# uninterruptible sleep does) and the agent's kill waits its whole deadline.
# With CALLGRIND=DIR each agent runs under valgrind's callgrind instead
# (DIR/callgrind.<run>.out; its memtidy re-exec is skipped, which valgrind
# cannot follow): callgrind_annotate --inclusive=yes gives the start-up's
# instructions by function (agent_new, lx_list, leftovers_list).
# Not a test: it prints figures. Removes everything it made.
set -euo pipefail
n=20 frozen=0 recorded=0
while getopts n:fr o; do
    case $o in
    n) n=$OPTARG ;;
    f) frozen=1 ;;
    r) recorded=1 ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-n N] [-f] [-r] BIN..." >&2; exit 2; }
work=$(mktemp -d /tmp/vf-unrec-XXXXXX)
pfx=vfunrecbench hold=/sys/fs/cgroup/freezer/vfunrecbench-hold st=$work/state
pids=()
ids() { for i in $(seq 1 "$n"); do printf 'aaaaaaaa-0000-4000-8000-%012d\n' "$i"; done; }
cleanup() {
    kill -KILL "${pids[@]}" 2>/dev/null || true
    [ -d $hold ] && echo THAWED >$hold/freezer.state
    wait 2>/dev/null || true
    for id in $(ids); do rmdir /sys/fs/cgroup/pids/$pfx/$id 2>/dev/null || true; done
    rmdir /sys/fs/cgroup/pids/$pfx $hold 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
printf '[node]\ncgroup_prefix = %s\n' $pfx >$work/node.conf
[ $frozen = 1 ] && mkdir -p $hold
for id in $(ids); do mkdir -p /sys/fs/cgroup/pids/$pfx/$id $st/data/$id; done
if [ $recorded = 1 ]; then
    mkdir -p $st/guests
    for id in $(ids); do
        : >$st/data/$id/disk.img
        printf '{"version":1,"spec":{"id":"%s","name":"r%s","generation":1,"template":"busybox"},"applied_generation":1,"desired":"stopped","runtime":{"pid":0,"start_time":0}}\n' \
            "$id" "${id##*-}" >$st/guests/$id.json
    done
fi
for bin in "$@"; do
    pids=()
    for id in $(ids); do
        join="echo \$\$ >/sys/fs/cgroup/pids/$pfx/$id/cgroup.procs"
        [ $frozen = 1 ] && join="$join; echo \$\$ >$hold/cgroup.procs"
        sh -c "$join; exec sleep 3600" &
        pids+=($!)
    done
    sleep 0.5
    [ $frozen = 1 ] && { echo FROZEN >$hold/freezer.state; sleep 0.5; }
    # The last run's log goes first: the loop below read it (its "agent
    # running") when it ran before the new agent's redirection truncated it.
    rm -f $work/agent.log
    t0=$(date +%s.%N)
    run=$((${run:-0} + 1))
    wrap=()
    [ -n "${CALLGRIND:-}" ] && wrap=(env VFLEET_NODE_TUNABLES=x valgrind --tool=callgrind
        "--callgrind-out-file=$CALLGRIND/callgrind.$run.out")
    "${wrap[@]}" "$bin" run -c $work/node.conf --state-dir $st --master ipc://$work/master \
        --vservers none -n unrecbench >$work/agent.log 2>&1 &
    agent=$!
    until grep -qs "agent running" $work/agent.log; do
        kill -0 $agent 2>/dev/null || { cat $work/agent.log; exit 1; }
        sleep 0.01
    done
    t1=$(date +%s.%N)
    printf '%s: %.3f s to "agent running", %d lines on unrecorded guests, %d on recorded, load %s\n' \
        "$bin" "$(echo "$t1 - $t0" | bc)" "$(grep -c 'has no record' $work/agent.log)" \
        "$(grep -c 'cannot kill what runs of it unrecorded\|ran with a record' $work/agent.log)" \
        "$(cut -d' ' -f1 /proc/loadavg)"
    n_ran=0
    for id in $(ids); do [ -s /sys/fs/cgroup/pids/$pfx/$id/cgroup.procs ] && n_ran=$((n_ran + 1)); done
    [ $frozen = 1 ] || [ $n_ran = 0 ] || echo "  $n_ran guests still have processes after the start-up" >&2
    kill $agent
    wait $agent || true
    kill -KILL "${pids[@]}" 2>/dev/null || true
    [ $frozen = 1 ] && echo THAWED >$hold/freezer.state
    wait "${pids[@]}" 2>/dev/null || true
done
