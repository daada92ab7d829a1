#!/usr/bin/env bash
# kill -9 of a node agent: its guests keep running, the master marks the node
# suspect then down and its guests unknown (never re-created elsewhere); the
# restarted agent makes the node ready again with the same guests, same init
# pids, and no duplicate anywhere.
. "$(dirname "$0")/lib.sh"

MASTER_ARGS="--heartbeat-ms 300 --suspect-after 2 --down-after 4"
start_cluster 2

for i in 1 2 3 4; do
    vf guest create "f$i" --template busybox --memory 64M --disk 32M --cpu 0.1 --algorithm spread >/dev/null ||
        fail "create f$i"
done
wait_for 120 "4 guests running" all_running 4
h1=$(node 1)
h2=$(node 2)
on_h1=$(vf --json guest ls --node "$h1" | jv '[.guests[].name] | sort | join(" ")')
[ -n "$on_h1" ] || fail "spread put nothing on $h1"
before=$(vf --json guest ls | jv '[.guests[] | [.name, .node, .id]] | sort')
pids=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$h1")" | jv '[.[].pid | tostring] | join(" ")')
ok "4 guests running; on $h1: $on_h1 (inits $pids)"

# Checked at once; an init that died some time after its agent shows at the
# second look below, once the node is down (seconds later).
kill9_wait "$(cl_agent_pid "$h1")"
for p in $pids; do alive "$p" || fail "guest init $p died with the agent"; done
ok "agent of $h1 killed; its guests' inits live"

wait_for 30 "$h1 suspect or down" eval '[ "$(node_state '"$h1"')" != ready ]'
st=$(node_state "$h1")
[ "$st" = suspect ] || [ "$st" = down ] || fail "$h1 is $st"
log "$h1 is $st"
wait_for 30 "$h1 down" is_node_state "$h1" down
for g in $on_h1; do
    wait_for 10 "$g unknown" eval '[ "$(guest_field '"$g"' state)" = unknown ]'
done
[ "$(node_state "$h2")" = ready ] || fail "$h2 not ready"
[ "$(vf --json guest ls --node "$h2" | jv 'all(.guests[]; .state == "running")')" = true ] ||
    fail "guests on $h2 not running"
[ "$(vf --json guest ls | jv '.guests | length')" -eq 4 ] || fail "guest count changed while $h1 down"
for p in $pids; do alive "$p" || fail "guest init $p died while the node was down"; done
ok "$h1 down, its guests unknown and still alive, nothing moved to $h2"

local_cluster up >>"$T/cluster.log" 2>&1 || fail "local-cluster up (restart the agent)"
wait_for 30 "$h1 ready" is_node_state "$h1" ready
wait_for 30 "4 guests running" all_running 4
after=$(vf --json guest ls | jv '[.guests[] | [.name, .node, .id]] | sort')
[ "$before" = "$after" ] || fail "guests changed: $before -> $after"
pids_after=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$h1")" | jv '[.[].pid | tostring] | join(" ")')
[ "$pids" = "$pids_after" ] || fail "init pids changed: $pids -> $pids_after"
n1=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$h1")" | jv 'length')
n2=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$h2")" | jv 'length')
[ $((n1 + n2)) -eq 4 ] || fail "nodes hold $n1 + $n2 guests, want 4"
ok "$h1 ready again: same 4 guests, same inits ($pids_after), $n1 + $n2 on the nodes"
