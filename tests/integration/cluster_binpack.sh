#!/usr/bin/env bash
# binpack fills one node before the next; label constraints and anti-affinity
# groups are honoured; an impossible request is refused with exit code 4 /
# HTTP 422 and the scheduler's per-filter explanation.
#
# Each of the three nodes takes at most 5 guests (vfleet-node --max-guests),
# so the fill order is deterministic whatever the host's size. Zones: node 1
# a, node 2 b, node 3 c (local-cluster labels them in turn).
. "$(dirname "$0")/lib.sh"

NODE_ARGS="--max-guests 5"
start_cluster 3

mk() { vf guest create "$@" --template busybox --memory 64M --disk 32M --cpu 0.1 --algorithm binpack >/dev/null; }
node_of() { guest_field "$1" node; }

for i in $(seq 1 7); do mk "b$i" || fail "create b$i"; done
first=$(node_of b1)
for i in 2 3 4 5; do [ "$(node_of "b$i")" = "$first" ] || fail "b$i on $(node_of "b$i"), b1 on $first"; done
second=$(node_of b6)
[ "$second" != "$first" ] || fail "b6 on the full node"
[ "$(node_of b7)" = "$second" ] || fail "b7 on $(node_of b7), b6 on $second: binpack spread them"
ok "binpack: b1-b5 on $first (full), b6-b7 on $second"

# A constraint picks the only node with its zone, even against binpack's
# preference for the fuller node (binpack may have filled any of the three).
for i in 1 2 3; do
    case "$(node "$i")" in "$first" | "$second") ;; *) third=$(node "$i") ;; esac
done
zone=$(vf --json node show "$third" | jv '.labels.zone')
[ -n "$zone" ] && [ "$zone" != null ] || fail "$third has no zone label"
mk c1 --constraint "zone=$zone" || fail "create c1"
[ "$(node_of c1)" = "$third" ] || fail "c1 (zone=$zone) on $(node_of c1), want $third"
ok "constraint zone=$zone: c1 on $third"

# Anti-affinity: one guest of group web per node, though binpack would stack them.
mk w1 --group web || fail "create w1"
mk w2 --group web || fail "create w2"
[ "$(node_of w1)" != "$(node_of w2)" ] || fail "w1 and w2 share $(node_of w1)"
[ "$(node_of w1)" != "$first" ] && [ "$(node_of w2)" != "$first" ] || fail "a web guest on the full node"
ok "group web: w1 on $(node_of w1), w2 on $(node_of w2)"

# A third web guest fits nowhere: two nodes hold a web guest, the third is full.
set +e
out=$(vf --json guest create w3 --template busybox --memory 64M --disk 32M --cpu 0.1 --group web --algorithm binpack 2>"$T/w3.err")
rc=$?
set -e
[ $rc -eq 4 ] || fail "w3: exit code $rc, want 4 (out: $out, err: $(cat "$T/w3.err"))"
echo "$out" | jv '.error.code' | grep -qx unplaceable || fail "w3: not unplaceable: $out"
rej() { echo "$out" | jq --arg f "$1" '[.error.placement.filters[] | select(.filter == $f) | .rejected] | add // 0'; }
[ "$(rej group)" -eq 2 ] || fail "w3: group should reject 2 nodes: $out"
[ "$(rej max_guests)" -eq 1 ] || fail "w3: max_guests should reject 1 node: $out"
ok "w3 refused (exit 4): group rejected 2, max_guests rejected 1"

# The same through HTTP: status 422 with the explanation; nothing was created.
code=$(api_curl -s -o "$T/big.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"name":"big","template":"busybox","limits":{"memory":"64T","disk":"32M"}}' \
    /v1/guests)
[ "$code" = 422 ] || fail "64T guest: HTTP $code: $(cat "$T/big.json")"
jv '.error.placement.nodes_evaluated == 3 and any(.error.placement.filters[]; .filter == "memory" and .rejected >= 1)' <"$T/big.json" |
    grep -qx true || fail "64T guest: no memory explanation: $(cat "$T/big.json")"
set +e
vf guest show big >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 3 ] || fail "an unplaceable guest exists anyway (show exit $rc)"
ok "64T guest: HTTP 422, memory filter explained: $(jv '.error.message' <"$T/big.json")"

wait_for 150 "10 guests running" all_running 10
ok "all 10 placed guests run"
