#!/usr/bin/env bash
# C4: join tokens. A token joins once, only until it expires, and only as the
# name it was made for; a refusal does not burn it; no secret is kept by the
# master (not in its store, not in a listing); the node's key file is 0600
# in a 0700 directory; and a joined node runs on it.
. "$(dirname "$0")/lib.sh"

start_cluster 0 0
EP=tcp://127.0.0.1:$CL_ZPORT
join() { "$VFLEET_BIN/vfleet-node" join --master "$EP" "$@" 2>&1; }
token() { vf node token create "$@" | head -1; }

# Once.
T1=$(token --name j1)
out=$(join --token "$T1" --name j1 --state-dir "$T/j1") || fail "join j1: $out"
[ "$(stat -c %a "$T/j1/node.key")" = 600 ] && [ "$(stat -c %a "$T/j1")" = 700 ] ||
    fail "key file $(stat -c %a "$T/j1/node.key"), directory $(stat -c %a "$T/j1")"
ok "j1 joined; key file 0600 in a 0700 directory"
out=$(join --token "$T1" --name j1 --state-dir "$T/j1again") && fail "a used token joined again: $out"
echo "$out" | grep -q "refused the token at the handshake" || fail "reuse: $out"
[ ! -e "$T/j1again/node.key" ] || fail "a refused join left a key file"
ok "the same token again is refused at the handshake: $out"

# Only the name it was made for; the refusal leaves it usable for that name.
T3=$(token --name j3)
out=$(join --token "$T3" --name j4 --state-dir "$T/j4") && fail "j3's token joined j4: $out"
echo "$out" | grep -q "this join token is for node j3, not j4" || fail "wrong name: $out"
out=$(join --token "$T3" --name j3 --state-dir "$T/j3") || fail "j3 after the refusal: $out"
ok "a token made for j3 refuses j4 and still joins j3"

# Only until it expires. A sleep is what this needs: the token's life must
# run out, and nothing else changes meanwhile. The master counts it from its
# creation, before its reply, and a token whose expiry is not after the
# handshake's moment is refused: 2 s after the reply it is over (0.1 s more
# for the clock's slew).
T5=$(token --ttl 2s)
sleep 2.1
out=$(join --token "$T5" --name j5 --state-dir "$T/j5") && fail "an expired token joined: $out"
echo "$out" | grep -Eq "refused the token at the handshake|expired" || fail "expired: $out"
ok "a token past its 2 s is refused: $out"

# A name that joined already cannot join again until revoked.
T6=$(token)
out=$(join --token "$T6" --name j1 --state-dir "$T/j1dup") && fail "j1 joined twice: $out"
echo "$out" | grep -q "node j1 has joined already" || fail "twice: $out"
ok "a second key for j1 is refused until j1 is revoked: $out"

# A token that is not one, and one whose master key was altered.
out=$(join --token "vfj1-nonsense" --name j7 --state-dir "$T/j7") && fail "garbage token: $out"
echo "$out" | grep -q "is not a join token" || fail "garbage: $out"
ok "text that is not a token is refused before anything is sent"

# What the master keeps: no secret anywhere.
list=$(vf --json node token ls)
for t in "$T1" "$T3" "$T5" "$T6"; do
    secret=$(echo "$t" | cut -d- -f2)
    echo "$list" | grep -q "$secret" && fail "a token's secret in the listing"
    sqlite3 "$CL/master.db" .dump | grep -q "$secret" && fail "a token's secret in the store"
done
states=$(echo "$list" | jv '[.tokens[].state] | sort')
[ "$states" = '["expired","unused","used","used"]' ] || fail "token states $states"
ok "no secret in the store or the listing; states $states"

# A joined node runs on its key file (name and endpoint from it).
"$VFLEET_BIN/vfleet-node" run --backend sim --state-dir "$T/j1" --log-level info \
    >>"$T/j1.log" 2>&1 &
AGENT_PIDS+=($!)
wait_for 30 "j1 ready" is_node_state j1 ready
ok "j1 runs on its key file: ready"
