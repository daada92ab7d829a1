#!/usr/bin/env bash
# A start is acknowledged only once its record is written (docs/architecture.md:
# no ack before the write that makes it true). The store's directory is a
# small file system of its own here, filled up after the guest's create, so
# the start's record write fails with ENOSPC: the start must not be acked as
# running while the record on disk says otherwise. An agent restarted from
# that record does not know the init runs (it is not re-adopted, and a later
# start would make a second init of the same guest). It is stopped instead,
# and nacked; with space again the same start goes through.
. "$(dirname "$0")/lib.sh"

build_template
mkdir -p "$T/h1/guests"
chmod 700 "$T/h1" "$T/h1/guests"
# Two pages: the record of the create, and one more for the filler.
mount -t tmpfs -o size=8k,mode=0700 vft-store "$T/h1/guests"
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"
G=$(uuid)
nodectl h1 apply "$(spec full "$G")" >/dev/null || fail "apply"
dd if=/dev/zero of="$T/h1/guests/filler" bs=4k count=16 2>/dev/null || true
[ "$(df --output=avail "$T/h1/guests" | tail -1)" -eq 0 ] || fail "the store's file system is not full"

set +e
out=$(nodectl h1 start "$G")
rc=$?
set -e
disk_pid=$(jq -r .runtime.pid "$T/h1/guests/$G.json")
log "start: rc=$rc $out; the record on disk says pid $disk_pid"
if [ $rc -eq 0 ] && [ "$(json_get "$out" running)" = true ]; then
    live=$(tr '\n' ' ' <"$(cg_path "$G" cgroup.procs)")
    if [ "$disk_pid" = 0 ] || ! alive "$disk_pid"; then
        fail "the start was acked running while its record was not written (pid $disk_pid on disk, the guest's cgroup holds: $live)"
    fi
fi
ok "a start whose record cannot be written is not acked as running"
# Nor does it run on: nothing of the guest is left in its cgroup.
cg_empty() { [ -z "$(cat "$(cg_path "$G" cgroup.procs)")" ]; }
wait_for 15 "the unrecorded guest's processes to end" cg_empty
alive "$(agent_pid h1)" || fail "the agent died"
ok "the guest whose start could not be recorded was stopped"

# With space again, the same start is acked and recorded.
rm -f "$T/h1/guests/filler"
out=$(nodectl h1 start "$G") || fail "start with space: $out"
[ "$(json_get "$out" running)" = true ] || fail "start with space: $out"
disk_pid=$(jq -r .runtime.pid "$T/h1/guests/$G.json")
if [ "$disk_pid" = 0 ] || ! alive "$disk_pid"; then
    fail "the record says pid $disk_pid after an acked start"
fi
ok "with space again, the start is acked and its record says the running init"

# A stop the same: acked only once the record says stopped (one that still
# says running would have a restarted agent take the stop for the guest's own
# exit, and a restart policy start it again).
dd if=/dev/zero of="$T/h1/guests/filler" bs=4k count=16 2>/dev/null || true
# The start left the old record's file as a spare, whose blocks a put can
# rewrite on a full disk: a reader holding it (from when it was the record)
# makes the agent take a new file instead, which the full disk refuses.
spare=$(find "$T/h1/guests" -name '.spare-*' | head -1)
[ -n "$spare" ] || fail "no spare file after the start"
exec 9<"$spare"
flock -s 9
set +e
out=$(nodectl h1 stop "$G")
rc=$?
set -e
rec=$(jq -c '[.desired, .runtime.pid]' "$T/h1/guests/$G.json")
log "stop on a full disk: rc=$rc $out; the record on disk says $rec"
if [ $rc -eq 0 ] && [ "$rec" != '["stopped",0]' ]; then
    fail "the stop was acked while its record says $rec"
fi
wait_for 15 "the guest to stop" cg_empty
exec 9<&-
rm -f "$T/h1/guests/filler"
# The agent writes the record it could not by itself, on a heartbeat, not
# only when the master sends the stop again.
rec_stopped() { [ "$(jq -c '[.desired, .runtime.pid]' "$T/h1/guests/$G.json")" = '["stopped",0]' ]; }
wait_for 15 "the agent to write the stopped record by itself" rec_stopped
ok "with space again, the agent wrote the record the stop could not"
out=$(nodectl h1 stop "$G") || fail "stop again with space: $out"
rec=$(jq -c '[.desired, .runtime.pid]' "$T/h1/guests/$G.json")
[ "$rec" = '["stopped",0]' ] || fail "the record says $rec after an acked stop"
ok "a stop is acked only once its record says stopped"
