#!/usr/bin/env bash
# Guests outlive the agent: kill -9 of the agent leaves every guest process
# running; the restarted agent re-adopts them (same init pid), reports them
# running in its hello, and starts nothing twice.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

ids=()
for n in r1 r2 r3; do
    id=$(uuid)
    ids+=("$id")
    nodectl h1 apply "$(spec "$n" "$id" '{"disk":"32M"}')" >/dev/null || fail "apply $n"
    nodectl h1 start "$id" >/dev/null || fail "start $n"
done
# A worker process in each guest, to check more than init survives.
for id in "${ids[@]}"; do
    nodectl h1 exec "$id" -- sh -c "$WORKER </dev/null >/dev/null 2>&1 &" >/dev/null || fail "exec"
done
before=$(for n in r1 r2 r3; do "$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk -v n=$n '$1==n {print $5}'; done)
nworkers=$(pgrep -fxc "$WORKER")
[ "$nworkers" -ge 3 ] || fail "workers not started"
ok "three guests running with workers; init pids: $(echo $before)"

# The agent gone, not only signalled, then the inits looked at at once, and
# again after the restarted agent's hello (its start-up later): an init
# that died some time after its agent shows there.
kill9_wait "$(agent_pid h1)"
for p in $before; do alive "$p" || fail "guest init $p died with the agent"; done
[ "$(pgrep -fxc "$WORKER")" -eq "$nworkers" ] || fail "guest workers died with the agent"
ok "kill -9 of the agent: every guest process survives"

# The local admin works while the agent is down.
"$VFLEET_BIN/vfleet-node" status --state-dir "$T/h1" | grep -q "not running" || fail "status"
[ "$("$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | grep -c running)" -eq 3 ] || fail "ls"
ok "vfleet-node ls/status work without agent and master"

start_agent h1
hello=$(nodectl h1 wait-hello) || fail "no hello after restart"
for id in "${ids[@]}"; do
    echo "$hello" | jq -e --arg id "$id" \
        'any(.inventory[]; .id == $id and .running == true and .generation == 1)' >/dev/null || fail "$id not reported running: $hello"
done
after=$(for n in r1 r2 r3; do "$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk -v n=$n '$1==n {print $5}'; done)
[ "$before" = "$after" ] || fail "init pids changed: $before -> $after"
for p in $before; do alive "$p" || fail "guest init $p died after the agent's kill"; done
[ "$(pgrep -fxc "$WORKER")" -eq "$nworkers" ] || fail "workers changed after re-adoption"
# Start of a running guest is a no-op, not a second start.
nodectl h1 start "${ids[0]}" >/dev/null || fail "start of a running guest"
[ "$(pgrep -fxc "$WORKER")" -eq "$nworkers" ] || fail "a guest was started twice"
ok "restarted agent re-adopts the guests with the same init pids; nothing started twice"

# The re-adopted guest is still fully managed: exec and stop work.
[ "$(nodectl h1 exec "${ids[1]}" -- hostname)" = r2 ] || fail "exec after re-adoption"
nodectl h1 stop "${ids[1]}" >/dev/null || fail "stop after re-adoption"
first=$(echo "$after" | sed -n 2p)
alive "$first" && fail "stopped guest's init still runs"
ok "re-adopted guests can be exec'd into and stopped"
