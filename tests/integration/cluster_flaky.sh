#!/usr/bin/env bash
# A flaky link at the default thresholds (heartbeat 5 s, suspect 15 s, down
# 30 s): node 1's tcp:// link across the fabric loses 30 % of its packets both
# ways for 60 s: tc netem in its namespace and on the fabric's side, or, on a
# kernel without netem (CONFIG_NET_SCH_NETEM unset, as on this project's
# machines), the same random loss by nftables (numgen random) in the node's
# namespace. The node
# is never marked down, its guest keeps running under the same init, and a
# change made meanwhile (a stop) still reaches it.
. "$(dirname "$0")/lib.sh"

CL_LINK=tcp
start_cluster 1
h1=$(node 1)
vf guest create fa --template busybox --memory 64M --disk 32M --cpu 0.1 --node "$h1" >/dev/null ||
    fail "create fa"
vf guest create fb --template busybox --memory 64M --disk 32M --cpu 0.1 --node "$h1" >/dev/null ||
    fail "create fb"
wait_for 120 "2 guests running" all_running 2
init_of() { "$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$h1")" | jv ".[] | select(.name == \"$1\") | .pid"; }
fa_pid=$(init_of fa)

fab=vf-${CL_PREFIX}fab
if ip netns exec "vf-$h1" tc qdisc add dev fab root netem loss 30% 2>/dev/null; then
    ip netns exec "$fab" tc qdisc add dev n1 root netem loss 30%
    how=netem
    unflake() {
        ip netns exec "vf-$h1" tc qdisc del dev fab root
        ip netns exec "$fab" tc qdisc del dev n1 root
    }
else
    ip netns exec "vf-$h1" nft -f - <<EOF
table inet vftestflaky {
    chain out { type filter hook output priority -10; ip daddr 172.31.0.2 numgen random mod 100 < 30 drop; }
    chain in { type filter hook input priority -10; ip saddr 172.31.0.2 numgen random mod 100 < 30 drop; }
}
EOF
    how="nftables numgen (no netem in this kernel)"
    unflake() { ip netns exec "vf-$h1" nft delete table inet vftestflaky; }
fi
ok "30 % loss both ways on $h1's link ($how)"

# The node's state sampled once a second for 60 s, a fixed window with a
# sleep between samples: what is checked is that it is never down in all
# that time (no condition to wait for).
states=""
end=$((SECONDS + 60))
stopped=0
while [ $SECONDS -lt $end ]; do
    st=$(node_state "$h1")
    states="$states $st"
    [ "$st" = down ] && fail "$h1 marked down on a 30 % lossy link:$states"
    if [ $stopped = 0 ] && [ $SECONDS -gt $((end - 45)) ]; then
        vf guest stop fb >/dev/null || fail "stop fb over the lossy link"
        stopped=1
    fi
    sleep 1
done
unflake
suspects=$(tr ' ' '\n' <<<"$states" | grep -c suspect || true)
log "states over 60 s (one a second): $(tr ' ' '\n' <<<"$states" | sort | uniq -c | tr '\n' ' ')"
wait_for 30 "fb stopped" eval '[ "$(guest_field fb state)" = stopped ]'
[ "$(guest_field fa state)" = running ] || fail "fa is $(guest_field fa state)"
[ "$(init_of fa)" = "$fa_pid" ] || fail "fa's init changed"
ok "60 s at 30 % loss: $h1 never down ($suspects s suspect), fa under the same init, fb's stop arrived"
