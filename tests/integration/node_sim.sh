#!/usr/bin/env bash
# Simulated nodes: one vfleet-node --sim-nodes process runs several agents,
# each with its own identity, that take commands independently, keep their
# guests in memory only (nothing but the pid file on disk) and answer a stop
# without a real process to watch.
. "$(dirname "$0")/lib.sh"

dir=$T/sim
"$VFLEET_BIN/vfleet-node" run --backend sim --sim-nodes 3 --name s$$ --master "ipc://$T/sim.sock" \
    --state-dir "$dir" --heartbeat 500 --sim-max-guests 7 --sim-memory 2G --log-level debug \
    >>"$T/sim.log" 2>&1 &
AGENT_PIDS+=($!)
simctl() {
    local n=$1
    shift
    "$VFLEET_TESTBIN/nodectl" -e "ipc://$T/sim.sock" -n "$n" -t 20 "$@"
}

for n in 1 2 3; do
    hello=$(simctl "s$$-000$n" wait-hello) || fail "no hello from node $n"
    [ "$(json_get "$hello" node)" = "s$$-000$n" ] || fail "hello names $hello"
    [ "$(json_get "$hello" max_guests)" = 7 ] || fail "capacity: $hello"
    [ "$(json_get "$hello" memory)" = $((2 << 30)) ] || fail "memory: $hello"
    [ "$(json_get "$hello" backend)" = sim ] || fail "backend: $hello"
done
ok "three simulated nodes said hello with their own identity and capacity"

id1=$(uuid)
id2=$(uuid)
simctl "s$$-0001" apply "$(spec g1 "$id1" '{"disk":"1G"}')" >/dev/null || fail "apply on node 1"
simctl "s$$-0002" apply "$(spec g1 "$id2" '{"disk":"1G"}')" >/dev/null || fail "apply on node 2"
[ "$(json_get "$(simctl "s$$-0001" start "$id1")" running)" = true ] || fail "start on node 1"
[ "$(simctl "s$$-0001" exec "$id1" -- echo hi)" = "echo hi" ] || fail "exec on node 1"
# Node 3 never heard of the guest: the nodes do not share state.
set +e
simctl "s$$-0003" start "$id1" >/dev/null
rc=$?
set -e
[ $rc -eq 1 ] || fail "node 3 started a guest of node 1 (rc $rc)"
ok "commands reach only the node they name"

[ "$(json_get "$(simctl "s$$-0001" stop "$id1")" running)" = false ] || fail "stop not answered"
simctl "s$$-0001" destroy "$id1" >/dev/null || fail "destroy"
simctl "s$$-0002" destroy "$id2" >/dev/null || fail "destroy on node 2"
ok "stop answered without a pid to watch; destroy works"

files=$(cd "$dir" && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$files" = "./vfleet-node.pid " ] || fail "sim nodes wrote to disk: $files"
ok "nothing on disk but the pid file"
