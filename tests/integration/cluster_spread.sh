#!/usr/bin/env bash
# Spread over three real nodes: 30 guests land 10/10/10 (within ±1), every one
# runs (its init alive on the node that the master names), and no address is
# given twice, as the master and the nodes' own stores see it.
. "$(dirname "$0")/lib.sh"

start_cluster 3

for i in $(seq 1 30); do
    vf guest create "s$i" --template busybox --memory 64M --disk 32M --cpu 0.1 --ip auto \
        --algorithm spread >/dev/null || fail "create s$i"
done
ok "30 creates accepted"
wait_for 150 "30 guests running" all_running 30
ok "30 guests running"

list=$(vf --json guest ls)
counts=$(echo "$list" | jv '[.guests | group_by(.node)[] | length] | sort')
echo "$list" | jv '[.guests | group_by(.node)[] | length] | (max - min) <= 1 and length == 3' |
    grep -qx true || fail "spread is uneven: $counts"
ok "per-node counts $counts"

ips=$(echo "$list" | jv '[.guests[].ips[]]')
echo "$ips" | jq -e 'length == 30 and (unique | length) == 30' >/dev/null ||
    fail "addresses not 30 distinct: $ips"
ok "30 distinct addresses"

# The nodes agree: each store holds exactly the guests the master put there, running.
for n in 1 2 3; do
    name=$(node $n)
    want=$(echo "$list" | jq -c --arg n "$name" '[.guests[] | select(.node == $n) | .name] | sort')
    have=$("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$name")" |
        jv '[.[] | select(.state == "running") | .name] | sort')
    [ "$want" = "$have" ] || fail "node $name runs $have, the master says $want"
    for pid in $("$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$name")" | jv '[.[].pid | tostring] | join(" ")'); do
        alive "$pid" || fail "init $pid on $name is not alive"
    done
done
ok "every node's store matches the master and every init is alive"
