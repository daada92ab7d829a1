#!/usr/bin/env bash
# C1: strangers deliver nothing. Against the master's CurveZMQ endpoint: a
# client with an unknown key, a NULL (plaintext) client, a PLAIN client, a
# node's own key with a wrong pinned server key, a join without a token, and
# garbage handshakes on hundreds of raw connections. None is welcomed or
# answered, nothing they send reaches the session (the master logs no message
# of theirs), its warnings stay bounded, and it keeps serving its real node.
. "$(dirname "$0")/lib.sh"

start_cluster 1
N1=$(node 1)
EP=tcp://127.0.0.1:$CL_ZPORT
MKEY=$(awk '$1 == "public" {print $3}' "$CL/master.key")
peerctl() { "$VFLEET_TESTBIN/peerctl" -e "$EP" "$@"; }
hellos_before=$(grep -c "node=$N1 hello" "$CL/master.log")
lines_before=$(wc -l <"$CL/master.log")

out=$(peerctl -K -m "$MKEY" -t 3 hello evil1)
[ "$(json_get "$out" welcomed)" = false ] && [ "$(json_get "$out" refused)" = true ] &&
    [ "$(json_get "$out" nacks)" = 0 ] || fail "unknown key: $out"
ok "a client with an unknown key is refused at the handshake: $out"

out=$(peerctl -p -t 3 hello evil2)
[ "$(json_get "$out" welcomed)" = false ] && [ "$(json_get "$out" nacks)" = 0 ] ||
    fail "NULL client: $out"
ok "a NULL (plaintext) client gets nothing: $out"

out=$(peerctl -t 3 plain-mech evil3)
[ "$(json_get "$out" answers)" = 0 ] || fail "PLAIN client: $out"
ok "a PLAIN client gets nothing: $out"

# A valid client key, but the server key it pins is not the master's: the
# handshake cannot complete (the client would not trust an impostor master
# either), so not even the node's own key gets a message through this way.
WRONG=$(peerctl keygen)
out=$(peerctl -k "$(node_dir "$N1")/node.key" -m "$WRONG" -t 3 hello "$N1")
[ "$(json_get "$out" welcomed)" = false ] && [ "$(json_get "$out" nacks)" = 0 ] ||
    fail "wrong server key: $out"
ok "a node key with a wrong pinned server key gets nothing: $out"

out=$(peerctl -K -m "$MKEY" -t 2 join evil4)
[ "$(json_get "$out" nacks)" = 0 ] && [ "$(json_get "$out" other)" = 0 ] || fail "join: $out"
ok "a join without a token's key gets nothing: $out"

out=$(peerctl -t 10 junk 500)
[ "$(json_get "$out" opened)" -ge 500 ] || fail "junk: $out"
ok "500 raw connections sending garbage handshakes for 10 s: $out"

# Nothing reached the session: no message, hello or complaint about any of
# them; the real node said no new hello (its connection was not disturbed).
new=$(tail -n +"$((lines_before + 1))" "$CL/master.log")
echo "$new" | grep -E "node=evil|bad message|said hello as" && fail "a stranger's message reached the master"
[ "$(grep -c "node=$N1 hello" "$CL/master.log")" = "$hellos_before" ] ||
    fail "the real node had to say hello again"
warnings=$(echo "$new" | grep -c "warning" || true)
[ "$warnings" -le 40 ] || fail "$warnings warning lines for the strangers"
ok "nothing delivered; $warnings warning lines in the master's log for all of it"

alive "$(cl_master_pid)" || fail "the master died"
vf health >/dev/null || fail "the master does not answer"
[ "$(node_state "$N1")" = ready ] || fail "node $N1 is $(node_state "$N1")"
[ "$(vf --json node ls | jv '.nodes | length')" = 1 ] || fail "strangers were registered as nodes"
vf guest create c1 --template busybox --memory 64M --disk 32M --cpu 0.1 --node "$N1" >/dev/null ||
    fail "create on $N1"
wait_for 60 "c1 running" all_running 1
ok "the master serves: $N1 ready, a guest created and running on it, no stranger listed"
