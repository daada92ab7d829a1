#!/usr/bin/env bash
# A PATCH of limits reaches the running guest: vfleet guest set --memory
# bumps the generation, the node applies it, and the guest's memory cgroup
# shows the new limit without a restart (same init pid).
. "$(dirname "$0")/lib.sh"

start_cluster 1

vf guest create p1 --template busybox --memory 128M --disk 32M --wait --timeout 60 >/dev/null ||
    fail "create p1"
id=$(guest_field p1 id)
gen=$(guest_field p1 generation)
if [ "$(cg_mode)" = v2 ]; then
    cg=$(cg_path "$id" memory.max) pids_max=$(cg_path "$id" pids.max)
else
    cg=$(cg_path "$id" memory.limit_in_bytes) pids_max=$(cg_path "$id" pids.max)
fi
[ -r "$cg" ] || fail "no memory cgroup $cg"
[ "$(cat "$cg")" -eq $((128 << 20)) ] || fail "limit before: $(cat "$cg")"
pid=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$(node 1)")" | jv '.[0].pid')
ok "p1 runs (init $pid) with ${cg##*/} $(cat "$cg")"

vf guest set p1 --memory 192M >/dev/null || fail "set --memory"
[ "$(guest_field p1 generation)" -gt "$gen" ] || fail "generation not bumped"
limit_is() { [ "$(cat "$cg")" -eq "$1" ]; }
wait_for 30 "cgroup limit 192M" limit_is $((192 << 20))
applied() { [ "$(guest_field p1 applied_generation)" = "$(guest_field p1 generation)" ]; }
wait_for 30 "applied_generation catches up" applied
[ "$(guest_field p1 state)" = running ] || fail "p1 not running after the patch"
[ "$(vf --json guest show p1 | jv '.limits.memory')" -eq $((192 << 20)) ] || fail "API limit"
alive "$pid" || fail "init restarted"
[ "$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$(node 1)")" | jv '.[0].pid')" = "$pid" ] ||
    fail "init pid changed"
ok "PATCH reached the cgroup: $(cat "$cg") bytes, same init $pid, generation applied"

# Lowering works too, and so does a second limit in the same PATCH.
vf guest set p1 --memory 96M --procs 50 >/dev/null || fail "set --memory --procs"
wait_for 30 "cgroup limit 96M" limit_is $((96 << 20))
if [ -r "$pids_max" ]; then
    pids_is() { [ "$(cat "$pids_max")" = 50 ]; }
    wait_for 30 "pids.max 50" pids_is
fi
ok "lowered to $(cat "$cg") bytes${pids_max:+, pids.max $(cat "$pids_max" 2>/dev/null)}"

# Growing the disk of the running guest where the host cannot grow ext4 while
# it is mounted (no CAP_SYS_RESOURCE in the bounding set, as on this VM): the
# node refuses, PATCH answers 409 with the node's reason, the change is undone
# (the spec before it is stored again) and the guest keeps running as it was.
if has_cap sys_resource; then
    ok "this host grows disks online: node_disk_online covers it"
else
    gen=$(guest_field p1 generation)
    set +e
    out=$(vf guest set p1 --disk 64M 2>&1)
    rc=$?
    set -e
    [ "$rc" -eq 4 ] || fail "set --disk on a running guest: exit $rc, not 4 (conflict): $out"
    case $out in
    *CAP_SYS_RESOURCE* | *online*) ;;
    *) fail "the refusal does not give the node's reason: $out" ;;
    esac
    [ "$(guest_field p1 state)" = running ] || fail "p1 is $(guest_field p1 state) after the refusal"
    [ "$(vf --json guest show p1 | jv '.limits.disk')" -eq $((32 << 20)) ] ||
        fail "the refused disk size stayed in the spec"
    wait_for 30 "the undo is applied" applied
    [ "$(guest_field p1 generation)" -ge $((gen + 2)) ] || fail "the undo is not a new generation"
    alive "$pid" || fail "init died"
    ok "disk growth of the running guest refused (exit 4: ${out##*: }), spec back at 32M, still running"
fi
