#!/usr/bin/env bash
# kill -9 during a move: of the source's agent, of the target's agent, of the
# master, each while the disk is on its way. Whatever happens, the guest ends
# on exactly one node (one store record, the master agrees), running as it
# was, with its data (a file of known checksum). The move itself resumes
# where it was: the source's copy after its agent comes back, the target's
# receiver from what it persisted, the master's step from its store.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }

start_cluster 3
n1=$(node 1) n2=$(node 2) n3=$(node 3)

vf guest create cr --template busybox --memory 128M --disk 1G --cpu 0.5 --node "$n1" \
    --ip 10.87.0.30 --wait --timeout 120 >/dev/null || fail "create cr"
id=$(guest_field cr id)
# A big enough file that the copy takes a moment.
sum=$(vf guest exec --timeout 300 cr -- sh -c 'dd if=/dev/urandom of=/root/big bs=1M count=600 \
    2>/dev/null && sync && sha256sum /root/big' | awk '{print $1}')
[ ${#sum} -eq 64 ] || fail "no checksum: $sum"
ok "cr on $n1 with a 600 MiB file $sum"

op_field() { vf --json op show "$1" | pyj "d$2"; }
# wait_copying OP: until the move is in its send step with bytes on the way.
wait_copying() {
    local end=$((SECONDS + 120))
    while [ $SECONDS -lt $end ]; do
        local j
        j=$(vf --json op show "$1")
        [ "$(echo "$j" | pyj 'd["state"]')" = running ] || fail "op $1 ended early: $j"
        if [ "$(echo "$j" | pyj 'd["step"]')" = send ] &&
            [ "$(echo "$j" | pyj 'd["progress"]["bytes_done"]')" -gt 0 ]; then
            return 0
        fi
        sleep 0.05
    done
    fail "op $1 never started copying"
}
ended() { [ "$(op_field "$1" '["state"]')" != running ]; }

# check_one OP: the op ended, the guest is on exactly one node, running, intact.
check_one() {
    local op=$1 where state stores got
    wait_for 240 "op $op to end" ended "$op"
    state=$(op_field "$op" '["state"]')
    where=$(guest_field cr node)
    stores=$(ls "$CL"/*/guests/"$id".json 2>/dev/null | wc -l)
    [ "$stores" -eq 1 ] || fail "the guest is in $stores node stores: $(ls "$CL"/*/guests/"$id".json)"
    [ -e "$CL/$where/guests/$id.json" ] || fail "the master says $where, the store disagrees"
    is_running() { [ "$(guest_field cr state)" = running ]; }
    wait_for 60 "cr running on $where" is_running
    got=$(vf guest exec --timeout 120 cr -- sha256sum /root/big | awk '{print $1}')
    [ "$got" = "$sum" ] || fail "data differs on $where after op $op ($state): $got"
    ok "op $op ended $state: cr runs on $where only, its data intact"
}

# Each killed daemon comes back at once: kill9_wait returns with it gone, and
# local-cluster up waits until a killed master's port is free. How long it
# was away is no part of what is checked.

# 1. The source's agent dies during the copy and comes back.
op=$(vf --json guest move cr --to "$n2" --no-wait | pyj 'd["id"]')
wait_copying "$op"
kill9_wait "$(cl_agent_pid "$n1")"
ok "source agent on $n1 killed while copying ($(op_field "$op" '["progress"]["bytes_done"]') bytes)"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "restart $n1"
check_one "$op"

# 2. The target's agent dies during the copy and comes back.
src=$(guest_field cr node)
dst=$n3
op=$(vf --json guest move cr --to "$dst" --no-wait | pyj 'd["id"]')
wait_copying "$op"
kill9_wait "$(cl_agent_pid "$dst")"
ok "target agent on $dst killed while copying from $src"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "restart $dst"
check_one "$op"

# 3. The master dies during a near-live copy and comes back.
src=$(guest_field cr node)
dst=$n1
op=$(vf --json guest move cr --to "$dst" --live --no-wait | pyj 'd["id"]')
wait_copying "$op"
kill9_wait "$(cl_master_pid)"
ok "master killed while $src copies to $dst"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "restart the master"
check_one "$op"

# 4. The target's agent dies at the commit: its commit job has installed
# the guest there (store record, files) and the master has not heard: the
# guest may have started there or not; either way it ends in one place.
# gdb stops the agent where the job's end is handled (done_commit, on its
# loop thread) and kills it there: the commit step is too short to catch by
# polling the operation.
src=$(guest_field cr node)
dst=$n2
apid=$(cl_agent_pid "$dst")
gdb -p "$apid" -batch -ex 'set pagination off' -ex 'break done_commit' -ex continue -ex kill \
    >"$T/gdb4.log" 2>&1 &
gpid=$!
wait_for 30 "gdb attached to $dst's agent" grep -qE '^TracerPid:[[:space:]]*[1-9]' "/proc/$apid/status"
op=$(vf --json guest move cr --to "$dst" --no-wait | pyj 'd["id"]')
wait_for 240 "$dst's agent killed at done_commit" sh -c "! kill -0 $apid 2>/dev/null"
wait "$gpid" || true
grep -qE '^(Thread .* hit )?Breakpoint 1, .*done_commit' "$T/gdb4.log" ||
    fail "$dst's agent did not stop at done_commit: $(cat "$T/gdb4.log")"
ok "target agent on $dst killed at its commit's end (done_commit; op step $(op_field "$op" '["step"]'))"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "restart $dst"
check_one "$op"
vf guest rm cr >/dev/null
