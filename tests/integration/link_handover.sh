#!/usr/bin/env bash
# The sequence that aborted the master with libzmq 4.3.4 (`Assertion failed:
# !_io_error (src/stream_engine_base.cpp:331)`, about 20 s after it): a second
# connection says hello under the identity (routing id) of a node that keeps
# running, with ZMTP heartbeats on. Then the same with a flood that ends in a
# reset, and against a real agent. The master must live through all of it and
# keep serving the real node. (docs/protocol-transport.md, "The abort".)
. "$(dirname "$0")/lib.sh"

start_cluster 0 0
EP=tcp://127.0.0.1:$CL_ZPORT
peerctl() { "$VFLEET_TESTBIN/peerctl" -e "$EP" "$@"; }
master_alive() { alive "$(cl_master_pid)" && vf health >/dev/null; }

# Two nodes join from this namespace over loopback: dup1 for the raw peers,
# dup2 for a real agent.
for n in dup1 dup2; do
    token=$(vf node token create --name "$n" | head -1)
    "$VFLEET_BIN/vfleet-node" join --master "$EP" --token "$token" --name "$n" \
        --state-dir "$T/$n" >/dev/null || fail "$n could not join"
done
RID=dup1/0123456789abcdef

# The node: hello, then a heartbeat every 500 ms for 50 s, ZMTP heartbeats
# every second (timeout 3 s) on its socket, routing id RID.
peerctl -k "$T/dup1/node.key" -r "$RID" -H 1000 -t 50 hello dup1 >"$T/real.json" &
real=$!
# The duplicate must meet a welcomed node: the master logs each hello it
# welcomes.
wait_for 30 "the master welcoming the first connection as dup1" \
    grep -q "node=dup1 hello: 0 guests, backend sim" "$CL/master.log"
# A second connection under the same routing id (and key) says hello for 8 s
# while the first keeps running, then goes away.
peerctl -k "$T/dup1/node.key" -r "$RID" -H 1000 -t 8 hello dup1 >"$T/second.json"
ok "second hello under routing id $RID: $(cat "$T/second.json")"
# Again, flooding what libzmq would queue for it with ZMTP PINGs among it,
# and ending in a reset; a few times, and once from a connection of its own.
# (With a bounded receiving queue this alone aborted libzmq 4.3.4.)
for _ in 1 2 3 4; do
    peerctl -k "$T/dup1/node.key" -r "$RID" -H 1 -t 4 flood 400000 >"$T/flood.json"
done
peerctl -k "$T/dup1/node.key" -H 1 -t 4 flood 400000 >"$T/flood.json"
ok "floods under the same routing id and its own, closed with a reset: $(cat "$T/flood.json")"
# And under the node's name on the plaintext socket.
"$VFLEET_TESTBIN/peerctl" -e "ipc://$CL/master.sock" -p -r "$RID" -H 1000 -t 3 hello dup1 \
    >"$T/plain.json"
ok "the same over plaintext: $(cat "$T/plain.json")"

# Past every heartbeat timeout of the duplicates (libzmq aborted ~20 s after),
# the master looked at each second: a fixed window, since what is checked is
# that nothing happens in it.
for _ in $(seq 30); do
    master_alive || fail "the master died: $(grep -i assert "$CL/master.log" | head -2)"
    sleep 1
done
wait "$real"
master_alive || fail "the master died"
jv '.welcomed and .echoes_late > 0' <"$T/real.json" | grep -qx true ||
    fail "the real node was not served to the end: $(cat "$T/real.json")"
ok "master alive 40 s after the duplicates; the real node kept its heartbeats answered: $(cat "$T/real.json")"

# A real agent (sim backend) as dup2, and an impostor with its stolen key
# saying hello and flooding beside it.
"$VFLEET_BIN/vfleet-node" run --backend sim --state-dir "$T/dup2" --heartbeat 500 \
    --log-level info >>"$T/dup2/agent.log" 2>&1 &
AGENT_PIDS+=($!)
wait_for 30 "dup2 ready" is_node_state dup2 ready
peerctl -k "$T/dup2/node.key" -H 1000 -t 5 hello dup2 >/dev/null
for _ in 1 2 3; do peerctl -k "$T/dup2/node.key" -H 1 -t 4 flood 400000 >/dev/null; done
# Again past the duplicates' heartbeat timeouts, the master looked at each
# second: a fixed window, since what is checked is that nothing happens.
for _ in $(seq 25); do
    master_alive || fail "the master died: $(grep -i assert "$CL/master.log" | head -2)"
    sleep 1
done
wait_for 30 "dup2 ready after the impostor" is_node_state dup2 ready
grep -qi "assert" "$CL/master.log" && fail "an assertion in the master's log"
ok "a real agent beside an impostor with its key: master alive, agent ready"
