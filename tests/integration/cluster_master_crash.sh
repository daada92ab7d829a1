#!/usr/bin/env bash
# kill -9 of the master in the middle of 200 concurrent creates: every client
# retries with its own Idempotency-Key until it gets an answer, and in the end
# each key maps to exactly one guest and no address is used twice. Five
# simulated nodes keep 200 guests cheap; the nodes' own inventories are
# checked by restarting the master once more: each node's hello reports what
# it holds, and anything the master did not know would show up as an orphan,
# anything missing as lost.
. "$(dirname "$0")/lib.sh"

start_cluster 0 5

# One client: create c$1 with key k-$1-$KEYBASE, retrying while the master is
# unreachable (5) or unavailable (1: a 5xx, which is also what a just-restarted
# master answers until the nodes' hellos come in). Records the final exit code and
# the guest id it was given.
client() {
    local i=$1 rc
    for _ in $(seq 300); do
        set +e
        out=$(vf --json --idempotency-key "k-$i-$KEYBASE" guest create "c$i" --template busybox \
            --memory 64M --disk 1G --cpu 0.1 --ip auto 2>/dev/null)
        rc=$?
        set -e
        [ $rc -eq 5 ] && touch "$T/unreachable"
        [ $rc -eq 5 ] || [ $rc -eq 1 ] || break
        sleep 0.2
    done
    [ $rc -eq 0 ] || echo "c$i: exit $rc: $(echo "$out" | tr -d "\n" | tr -s " ")" >>"$T/client-errors"
    echo "$i $rc $(echo "$out" | jv '.id // "-"' 2>/dev/null || echo -)" >>"$T/results"
}
export -f client vf jv
KEYBASE=$$
export T VFLEET_BIN VFLEET_MASTER KEYBASE

: >"$T/results"
seq 1 200 | xargs -P 25 -I{} bash -c 'client {}' &
clients=$!

# Crash the master once some creates went through and more are in flight.
wait_for 60 "40 answered creates" eval '[ "$(wc -l <"$T/results")" -ge 40 ]'
rm -f "$T/unreachable"
kill9_wait "$(cl_master_pid)"
crashed_at=$(wc -l <"$T/results")
ok "master killed with $crashed_at of 200 creates answered"
# Down until a client has found it gone (exit 5), so the retries are tried.
wait_for 30 "a client to find the master unreachable" test -e "$T/unreachable"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "master restart"
ok "master restarted"
wait "$clients" || fail "clients"
[ "$(wc -l <"$T/results")" -eq 200 ] || fail "only $(wc -l <"$T/results") clients finished"
bad=$(awk '$2 != 0' "$T/results")
[ -z "$bad" ] || fail "clients that failed: $bad: $(cat "$T/client-errors")"
ok "all 200 clients got a 201 (or its replay)"

wait_for 60 "200 guests running" all_running 200
list=$(vf --json guest ls)
echo "$list" | jv '(.guests | length) == 200 and ([.guests[].name] | sort) == ([range(1; 201) | "c\(.)"] | sort)' |
    grep -qx true || fail "not exactly c1..c200: $(echo "$list" | jv '.guests | length') guests"
# Each key maps to exactly the guest its client was told about.
bad=$(join <(echo "$list" | jv '.guests[] | "\(.name) \(.id)"' | sort) \
    <(awk '{print "c" $1, $3}' "$T/results" | sort) -a2 | awk 'NF != 3 || $2 != $3')
[ -z "$bad" ] || fail "ids differ, key/guest mismatch: $(echo "$bad" | head -5)"
ok "200 guests, each key's guest is the one its client saw"

# A replay of a key after all this still answers with that same guest.
for i in 1 77 200; do
    id=$(vf --json --idempotency-key "k-$i-$KEYBASE" guest create "c$i" --template busybox \
        --memory 64M --disk 1G --cpu 0.1 --ip auto | jv '.id') || fail "replay c$i"
    [ "$id" = "$(echo "$list" | jq -r --arg n "c$i" '[.guests[] | select(.name == $n) | .id][0]')" ] ||
        fail "replay of key $i gave another guest"
done
ok "replayed keys return the original guests"

echo "$list" | jq -e '[.guests[].ips[]] | length == 200 and (unique | length) == 200' >/dev/null ||
    fail "addresses not 200 distinct"
ok "200 distinct addresses"

# The nodes' inventories: a second master restart makes every node say hello
# with what it holds; the master must find nothing unknown (orphan) or missing (lost).
kill9_wait "$(cl_master_pid)"
local_cluster up >>"$T/cluster.log" 2>&1 || fail "second master restart"
wait_for 60 "200 guests running after the second restart" all_running 200
sum=$(vf --json node ls | jv '[.nodes[].guests] | add // 0')
[ "$sum" -eq 200 ] || fail "nodes hold $sum guests"
for st in orphan lost unknown error; do
    [ "$(count_state $st)" -eq 0 ] || fail "$(count_state $st) guests $st"
done
ok "node inventories agree: 200 guests on the nodes, none orphan, lost or unknown"
