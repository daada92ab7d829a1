#!/usr/bin/env bash
# A guest frozen by a move whose source agent was killed and restarted (a
# move cut short, which the master resumes: docs/architecture.md,
# "Re-adoption"): the restarted agent keeps the freeze, and what a user can
# send meanwhile gets a prompt answer. Before, an exec waited out its whole
# timeout (the exec lane, every guest's execs, behind it), answered "timed
# out", and ran its command at the thaw anyway; a shell waited 10 s on a
# pool thread; vfleet-node enter hung until the thaw. Now they are refused
# at once ("frozen for a move"; the agent's answers busy) and the guest
# stays frozen; usage is still reported; the move's abort thaws it and the
# exec runs. The agent is killed by hand after the freeze was made
# as the move's (the mark data/<id>/frozen.move, then the cgroup freezer).
# Then an exec running when an export's pack freezes the guest is answered
# busy at once and its command killed (it held the exec lane frozen until
# its timeout and ran on at the thaw).
. "$(dirname "$0")/lib.sh"

# A failure thaws the guest first: on v1 the teardown's kill cannot end
# frozen processes, and a frozen guest would be left behind.
eval "lib_$(declare -f fail)"
fail() {
    [ -n "${freeze:-}" ] && echo "$thawed" >"$freeze" 2>/dev/null
    lib_fail "$@"
}

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
nodectl h1 apply "$(spec mvfrozen "$G" '{"disk":"32M"}')" >/dev/null || fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
[ "$(nodectl h1 exec "$G" -- echo up)" = up ] || fail "no exec before the freeze"

if [ "$(cg_mode)" = v2 ]; then
    freeze=$(cg_path "$G" cgroup.freeze) frozen=1 thawed=0
else
    freeze=$(cg_path "$G" freezer.state) frozen=FROZEN thawed=THAWED
fi
apid=$(agent_pid h1)
kill -9 "$apid"
wait_for 10 "the agent gone" bash -c "! kill -0 $apid 2>/dev/null"
: >"$T/h1/data/$G/frozen.move"
echo "$frozen" >"$freeze"
wait_for 10 "the guest frozen" bash -c "[ \"\$(cat $freeze)\" = $frozen ]"

start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello after the restart"
[ "$(cat "$freeze")" = "$frozen" ] || fail "the restarted agent thawed the move's freeze"

t0=$(date +%s%N)
out=$(nodectl h1 exec "$G" -- sh -c 'echo ran >/tmp/after-thaw; echo ran') && fail "exec answered in a frozen guest: $out"
log "exec in the frozen guest answered in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $out"
[ "$(json_get "$out" code)" = busy ] || fail "exec not refused busy: $out"
json_get "$out" message | grep -q "frozen for a move" || fail "the exec's refusal does not say why: $out"

t0=$(date +%s%N)
out=$(nodectl h1 shell "$G" -- echo ran) && fail "a shell started in a frozen guest: $out"
log "shell in the frozen guest answered in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $out"
[ "$(json_get "$out" code)" = busy ] || fail "shell not refused busy: $out"
json_get "$out" message | grep -q "frozen for a move" || fail "the shell's refusal does not say why: $out"
[ "$(cat "$freeze")" = "$frozen" ] || fail "the refusals thawed the guest"
# Into a file, not a pipe: a child frozen as it joined would hold a pipe
# open past the timeout.
timeout 20 "$VFLEET_BIN/vfleet-node" enter --state-dir "$T/h1" mvfrozen -- echo ran >"$T/enter.out" 2>&1 &&
    fail "vfleet-node enter ran in a frozen guest: $(cat "$T/enter.out")"
out=$(cat "$T/enter.out")
grep -q "frozen for a move" <<<"$out" || fail "vfleet-node enter does not say why (or hung): $out"
grep -q "guest=mvfrozen stays frozen for its move" "$T/h1/agent.log" ||
    fail "the restarted agent did not say it keeps the move's freeze"
ok "exec, shell and vfleet-node enter refused at once in the guest a move froze; it stays frozen"

nodectl h1 usage "$G" >/dev/null || fail "no usage of the frozen guest"
ok "usage of the frozen guest is reported"

out=$(nodectl h1 abort "$G") || fail "the move's abort: $out"
[ "$(cat "$freeze")" = "$thawed" ] || fail "the abort left the guest frozen"
[ -e "$T/h1/data/$G/frozen.move" ] && fail "the abort left the move's mark"
[ "$(nodectl h1 exec "$G" -- echo up)" = up ] || fail "no exec after the abort's thaw"
[ -e "$T/h1/data/$G/root/tmp/after-thaw" ] && fail "the refused exec ran at the thaw"
ok "the move's abort thaws it: exec runs, and the refused one never did"

# An exec running when an export's pack freezes the guest: answered busy at
# once and its command killed, rather than frozen with the guest, holding
# every guest's execs until its timeout, and running on at the thaw. The
# export waits on an endpoint that takes nothing; the abort ends it.
t0=$(date +%s%N)
out=$(nodectl h1 exec-export "$G" -- sh -c 'sleep 3; echo ran >/tmp/after-export; echo ran') &&
    fail "the exec ran on through the export's freeze: $out"
log "exec running at the export's freeze answered in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $out"
[ "$(json_get "$out" code)" = busy ] || fail "the running exec not answered busy: $out"
json_get "$out" message | grep -q "command was killed" || fail "the running exec's answer does not say it was killed: $out"
out=$(nodectl h1 abort "$G") || fail "the export's abort: $out"
[ "$(cat "$freeze")" = "$thawed" ] || fail "the export's abort left the guest frozen"
[ -e "$T/h1/data/$G/frozen.move" ] && fail "the export left the move's mark"
[ "$(nodectl h1 exec "$G" -- echo up)" = up ] || fail "no exec after the export's abort"
sleep 4 # past the killed command's own end
[ -e "$T/h1/data/$G/root/tmp/after-export" ] && fail "the killed exec's command ran on"
ok "an exec running when an export freezes the guest is answered busy and its command killed"

nodectl h1 destroy "$G" >/dev/null || fail "destroy"
ok "destroyed"
