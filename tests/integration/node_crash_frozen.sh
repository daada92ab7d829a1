#!/usr/bin/env bash
# The agent killed (-9, by gdb) in a stop's kill between its freeze of the
# guest's cgroup and its thaw: at the kill's first SIGKILL (a kill freezes,
# sends SIGKILL to each process and thaws). The guest is left frozen, its
# processes alive. Before, the restarted agent re-adopted it frozen: the
# guest hung until the master's stop came again, and an exec into it waited
# on a helper frozen as it joined. Now the agent's start-up thaws it before
# its hello: the guest runs, answers an exec, the stop sent again stops it
# and a start runs it again. (A move's freeze is kept at a restart:
# linux_backend_test test_thaw_stray.)
. "$(dirname "$0")/lib.sh"

command -v gdb >/dev/null || { echo "SKIP: no gdb"; exit 77; }
# The breakpoint's condition reads the second argument's register.
[ "$(uname -m)" = x86_64 ] || { echo "SKIP: the breakpoint is written for x86-64"; exit 77; }
build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
# busybox's init has no handler for SIGURG, and a pid namespace's init gets
# only the signals it handles: the stop comes to the kill after its timeout.
nodectl h1 apply "$(spec frozen "$G" '{"disk":"32M"}' '"halt_signal":"SIGURG"')" >/dev/null ||
    fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
init_pid() { "$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="frozen" {print $5}'; }
pid=$(init_pid)
[ -n "$pid" ] && alive "$pid" || fail "no init of the guest"

if [ "$(cg_mode)" = v2 ]; then
    freeze=$(cg_path "$G" cgroup.freeze) frozen=1 thawed=0
else
    freeze=$(cg_path "$G" freezer.state) frozen=FROZEN thawed=THAWED
fi
[ "$(cat "$freeze")" = "$thawed" ] || fail "the guest is not thawed before the stop: $(cat "$freeze")"

# The stop (generation 1, 1 s) comes to the kill; its first SIGKILL is the
# breakpoint.
killed_at h1 'kill if $rsi == 9' stop "$G" 1 1
[ "$(cat "$freeze")" = "$frozen" ] || fail "the kill cut short did not leave the guest frozen: $(cat "$freeze")"
alive "$pid" || fail "the init died with the kill cut short"
log "the agent was killed in the kill: $freeze says $frozen, init $pid alive"

start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello after the restart"
state=$(cat "$freeze")
if [ "$state" != "$thawed" ]; then
    echo "$thawed" >"$freeze" # or the teardown cannot end the guest
    fail "the restarted agent left the guest frozen ($freeze: $state)"
fi
grep -q "guest=frozen was left frozen by a kill cut short: thawed" "$T/h1/agent.log" ||
    fail "the agent did not say it thawed the guest"
alive "$pid" || fail "the init died at the restart"
[ "$(nodectl h1 exec "$G" -- echo up)" = up ] || fail "no exec in the thawed guest"
ok "the restarted agent thawed the guest a kill cut short left frozen: it runs, exec answers"

nodectl h1 stop "$G" 1 1 >/dev/null || fail "the stop sent again"
alive "$pid" && fail "the init runs after the stop sent again"
[ "$(guest_inits "$G")" = 0 ] || fail "an init of the guest runs after the stop"
[ -z "$(cat "$(cg_path "$G" cgroup.procs)" 2>/dev/null)" ] || fail "processes left after the stop"
nodectl h1 start "$G" >/dev/null || fail "the start after the stop"
[ "$(nodectl h1 exec "$G" -- echo up)" = up ] || fail "no exec after the start"
ok "the stop sent again stops it, and it starts again"

nodectl h1 destroy "$G" >/dev/null || fail "destroy"
[ "$(guest_inits "$G")" = 0 ] || fail "an init is left after the destroy"
[ -d "$T/h1/data/$G" ] && fail "$T/h1/data/$G left"
ok "the destroy leaves nothing"
