#!/usr/bin/env bash
# C3: revocation. `vfleet node revoke` refuses the node's key at the next
# handshake at once and shuts its live sessions within 5 s: a session held
# with the node's key (a stolen copy, on the loopback endpoint) and the
# agent's own across the fabric. The node is down at once, its guest keeps
# running (unknown to the master, never destroyed), the other node is
# untouched, and the node comes back only by joining again with a new token.
. "$(dirname "$0")/lib.sh"

start_cluster 2
N1=$(node 1)
N2=$(node 2)
EP=tcp://127.0.0.1:$CL_ZPORT
K1=$(node_dir "$N1")/node.key

vf guest create r1 --template busybox --memory 64M --disk 32M --cpu 0.1 --node "$N1" >/dev/null ||
    fail "create r1"
wait_for 60 "r1 running" all_running 1
init=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$N1")" | jv '.[0].pid')

# A live session with N1's key, heartbeating for 20 s.
"$VFLEET_TESTBIN/peerctl" -e "$EP" -k "$K1" -t 20 -W "$T/live.welcomed" hello "$N1" >"$T/live.json" &
live=$!
# The revoke must find it welcomed (peerctl makes the file at its welcome).
wait_for 30 "the live session with $N1's key welcomed" test -e "$T/live.welcomed"
agent_conns() { ip netns exec "vf-$N1" ss -Htn state established dst 172.31.0.2 | wc -l; }
[ "$(agent_conns)" = 1 ] || fail "the agent has $(agent_conns) connections to the master"
# Notes when the agent's connection is gone (polled every 20 ms, for 10 s).
(for _ in $(seq 500); do
    [ "$(agent_conns)" = 0 ] && { date +%s%3N >"$T/agent_closed"; break; }
    sleep 0.02
done) &
poller=$!
t0=$(date +%s%3N)
vf node revoke "$N1" >/dev/null || fail "revoke"
t1=$(date +%s%3N)
ok "revoke answered in $((t1 - t0)) ms"
# At once: a new handshake with the key is refused, and the node is down.
# (3 s: a handshake on a loaded machine can take more than one)
out=$("$VFLEET_TESTBIN/peerctl" -e "$EP" -k "$K1" -t 3 hello "$N1")
[ "$(json_get "$out" refused)" = true ] && [ "$(json_get "$out" welcomed)" = false ] ||
    fail "a handshake with the revoked key: $out"
[ "$(node_state "$N1")" = down ] || fail "$N1 is $(node_state "$N1") after the revoke"
ok "right after: a handshake with $N1's key is refused, $N1 is down"

# The agent's own session across the fabric: shut by the master (libzmq
# reconnects at once and that handshake is refused, which ends it for good),
# so no connection of the agent to the master stays established.
wait "$poller"
[ -s "$T/agent_closed" ] || fail "the agent's connection to the master stayed"
agent_ms=$(($(cat "$T/agent_closed") - t0))
[ "$agent_ms" -le 5000 ] || fail "the agent's connection closed $agent_ms ms after the revoke"
[ "$(agent_conns)" = 0 ] || fail "the agent is connected again"
ok "the agent's session across the fabric was closed $agent_ms ms after the revoke"
# The agent sees the refusal on its next heartbeat tick (5 s).
wait_for 10 "the agent told" grep -q "refused this node's key" "$(node_dir "$N1")/agent.log"
ok "the agent logged that its key was refused $(($(date +%s%3N) - t0)) ms after the revoke"

wait "$live"
live_out=$(cat "$T/live.json")
dropped=$(json_get "$live_out" dropped_ms)
[ "$dropped" != 0 ] || fail "the live session was not closed: $live_out"
closed_ms=$((dropped - t0))
[ "$closed_ms" -le 5000 ] || fail "the live session closed $closed_ms ms after the revoke"
ok "the live session with $N1's key was closed $closed_ms ms after the revoke"

alive "$init" || fail "r1's init died with the revoke"
[ "$(guest_field r1 state)" = unknown ] || fail "r1 is $(guest_field r1 state)"
[ "$(node_state "$N2")" = ready ] || fail "$N2 is $(node_state "$N2")"
out=$(vf node revoke "$N1" 2>&1) && fail "a second revoke: $out"
ok "r1 still runs on $N1 (unknown to the master), $N2 ready, a second revoke is 404"

# The revoked key keeps knocking (besides the agent's own reconnects): 100
# handshakes saying hello, then 15000 frames of garbage. Nothing is welcomed
# or answered, the log stays short, the master serves.
w0=$(grep -c warning "$CL/master.log" || true)
welcomed=0
for _ in $(seq 1 100); do
    out=$("$VFLEET_TESTBIN/peerctl" -e "$EP" -k "$K1" -t 0.2 hello "$N1")
    [ "$(json_get "$out" welcomed)" = false ] || welcomed=$((welcomed + 1))
done
[ "$welcomed" = 0 ] || fail "$welcomed hellos with the revoked key were welcomed"
out=$("$VFLEET_TESTBIN/peerctl" -e "$EP" -k "$K1" -t 2 garbage 15000)
[ "$(json_get "$out" nacks)" = 0 ] && [ "$(json_get "$out" other)" = 0 ] ||
    fail "garbage with the revoked key was answered: $out"
warnings=$(($(grep -c warning "$CL/master.log" || true) - w0))
[ "$warnings" -le 20 ] || fail "$warnings warning lines for the revoked key's storm"
alive "$(cl_master_pid)" && vf health >/dev/null || fail "the master does not answer"
[ "$(node_state "$N1")" = down ] && [ "$(node_state "$N2")" = ready ] ||
    fail "$N1 is $(node_state "$N1"), $N2 is $(node_state "$N2")"
ok "100 hellos and 15000 garbage frames with the revoked key: nothing welcomed or answered, $warnings warning lines, $N1 down, $N2 ready"

# Back only through a new token: stop the agent, join, start it again.
kill9_wait "$(cl_agent_pid "$N1")"
token=$(vf node token create --name "$N1" | head -1)
nsenter --net="/run/netns/vf-$N1" -- "$VFLEET_BIN/vfleet-node" join --name "$N1" \
    --master tcp://172.31.0.2:7401 --token "$token" --state-dir "$(node_dir "$N1")" >/dev/null ||
    fail "rejoin"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "agent restart"
wait_for 60 "$N1 ready again" is_node_state "$N1" ready
wait_for 60 "r1 running again" eval '[ "$(guest_field r1 state)" = running ]'
[ "$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$N1")" | jv '.[0].pid')" = "$init" ] ||
    fail "r1 was started anew"
ok "$N1 joined again with a new token and key: ready, r1 running as before (same init)"
