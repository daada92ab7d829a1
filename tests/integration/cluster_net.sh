#!/usr/bin/env bash
# Guest networking through the master, on two real nodes joined by
# local-cluster's fabric namespace: two guests with --ip auto land on
# different hosts (each with an address of its host's pool) and ping each
# other; `vfleet guest ip add` shows inside the running guest and in
# `vfleet node routes`, `ip rm` takes it away again; destroying the guests
# leaves no guest veth in the host namespaces. All traffic stays inside the
# namespaces local-cluster made for this scenario.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }
nft --version >/dev/null 2>&1 || { echo "SKIP: no nft"; exit 77; }

start_cluster 2

for g in n1 n2; do
    vf guest create "$g" --template busybox --memory 64M --disk 32M --cpu 0.2 --ip auto \
        --algorithm spread --wait --timeout 120 >/dev/null || fail "create $g"
done
node1=$(guest_field n1 node) node2=$(guest_field n2 node)
[ "$node1" != "$node2" ] || fail "both guests on $node1"
ip1=$(vf --json guest show n1 | jv '.ips[0]')
ip2=$(vf --json guest show n2 | jv '.ips[0]')
# Each address comes from the pool of the guest's own host (10.88.N.0/24 for node N).
idx1=${node1#"$CL_PREFIX"} idx2=${node2#"$CL_PREFIX"}
[[ $ip1 == 10.88.$idx1.* ]] || fail "n1 on $node1 got $ip1, not from 10.88.$idx1.0/24"
[[ $ip2 == 10.88.$idx2.* ]] || fail "n2 on $node2 got $ip2, not from 10.88.$idx2.0/24"
ok "n1 $ip1 on $node1, n2 $ip2 on $node2"

vf guest exec n1 -- ping -c 3 -W 2 "$ip2" >/dev/null || fail "n1 cannot ping n2 ($ip2)"
vf guest exec n2 -- ping -c 3 -W 2 "$ip1" >/dev/null || fail "n2 cannot ping n1 ($ip1)"
ok "guests on two hosts ping each other across the fabric"

# An address added live: in the API at once, inside the guest and routed once
# the node has applied the new generation.
gen=$(guest_field n1 generation)
out=$(vf --json guest ip add n1) || fail "ip add n1"
new=$(echo "$out" | jv '.ips[1]')
[ "$(echo "$out" | jv '.generation')" -gt "$gen" ] || fail "generation not bumped: $out"
[[ $new == 10.88.$idx1.* ]] || fail "added $new is not from n1's host pool"
inside() { vf guest exec n1 -- ip addr show eth0 | grep -q "inet $new/32"; }
wait_for 30 "$new inside n1" inside
vf node routes "$node1" | grep -E "^$new +vf[0-9a-f]{10} +n1 *$" >/dev/null ||
    fail "routes view lacks $new: $(vf node routes "$node1")"
vf node routes "$node2" | grep -q "$new" && fail "$new listed on $node2"
vf guest exec n2 -- ping -c 3 -W 2 "$new" >/dev/null || fail "n2 cannot ping n1's new $new"
ok "ip add: $new inside n1, in node routes of $node1, reachable from n2"

# An address already held (n1's own first one) is a conflict (exit 4, a 409);
# n2's address belongs to the pool of n2's host, which does not serve n1's
# node (exit 2, a 400).
set +e
vf guest ip add n1 "$ip1" >/dev/null 2>&1
rc1=$?
vf guest ip add n1 "$ip2" >/dev/null 2>&1
rc2=$?
set -e
[ $rc1 -eq 4 ] || fail "ip add of a held address exited $rc1, want 4 (conflict)"
[ $rc2 -eq 2 ] || fail "ip add of another host's address exited $rc2, want 2 (bad request)"
ok "a held address is refused (409), another host's pool too (400)"

vf guest ip rm n1 "$new" >/dev/null || fail "ip rm n1 $new"
vf --json guest show n1 | jv '.ips' | grep -q "\"$new\"" && fail "$new still in the API"
gone() { ! vf guest exec n1 -- ip addr show eth0 | grep -q "$new"; }
wait_for 30 "$new gone from n1" gone
vf node routes "$node1" | grep -q "$new" && fail "routes view still lists $new"
ip -n "vf-$node1" route show "$new" | grep -q . && fail "host route to $new left on $node1"
vf guest exec n1 -- ping -c 1 -W 2 "$ip2" >/dev/null || fail "n1's first address broke"
ok "ip rm: $new gone from n1, the routes view and $node1's routes"

for g in n1 n2; do vf guest rm "$g" >/dev/null || fail "rm $g"; done
none() { [ "$(vf --json guest ls | jv '.guests | length')" -eq 0 ]; }
wait_for 60 "guests destroyed" none
for n in "$node1" "$node2"; do
    if ip -n "vf-$n" -o link show | grep -E ': vf[0-9a-f]{10}[@:]' >/dev/null; then
        fail "guest veth left on $n: $(ip -n "vf-$n" -o link show)"
    fi
done
ok "destroy leaves no guest veth in the host namespaces"
