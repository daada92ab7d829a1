#!/usr/bin/env bash
# The agent killed (-9, by gdb at a breakpoint) at the worst moments: a
# start's, its init running, its record not yet written (start_done, before
# agent_guest_save); a destroy's, after the backend's work, before the
# record's removal; a create with its start (guest.apply.start), before its
# first record write.
# The record says the guest is not running; the agent started again from it
# must not make a second init of the same guest when the start comes again
# (the master sends it again: the start was never acked), and the guest runs
# once, on its own disk, with its files. The create's init, which no record
# names, is killed by the restarted agent before its hello (its disk kept):
# listed by `vfleet-node leftovers`, counted in the agent's hello (what the
# master shows of the node), said once in the log with why it has no
# record, removable by the operator only with the agent stopped (the next
# start's hello counts it no more), and never a guest the store has a
# record of.
. "$(dirname "$0")/lib.sh"

command -v gdb >/dev/null || { echo "SKIP: no gdb"; exit 77; }
build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
nodectl h1 apply "$(spec crash "$G" '{"disk":"32M"}')" >/dev/null || fail "apply"

killed_at h1 start_done start "$G"
[ "$(guest_inits "$G")" = 1 ] || fail "no init running after the killed start: $(guest_inits "$G")"
ok "agent killed between the start and its record: the init runs, the record not written"

start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello after the restart"
# The ack comes once the start is done (the restarted agent killed the
# unrecorded init, and waited for it, before its hello): one init at once,
# and still one after an exec.
nodectl h1 start "$G" >/dev/null || fail "the start sent again"
n=$(guest_inits "$G")
[ "$n" = 1 ] || fail "guest $G runs $n inits after the start sent again"
nodectl h1 exec "$G" -- true >/dev/null || fail "exec in the guest"
n=$(guest_inits "$G")
[ "$n" = 1 ] || fail "guest $G runs $n inits after an exec that followed the start sent again"
ok "the start sent again after the restart: one init"

nodectl h1 stop "$G" 1 2 >/dev/null || fail "stop"
[ "$(guest_inits "$G")" = 0 ] || fail "an init is left after the stop: $(guest_inits "$G")"

# ---- killed between a destroy's work and its record's removal ----
killed_at h1 destroy_done destroy "$G"
[ -e "$T/h1/data/$G" ] && fail "the destroy did not run before the kill"
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello after the restart"
nodectl h1 destroy "$G" >/dev/null || fail "the destroy sent again is not acked"
[ -z "$(find "$T/h1/guests" -name "*$G*" 2>/dev/null)" ] || fail "the record of $G is left"
ok "killed in a destroy: the destroy sent again is acked and the record goes"

# ---- killed between a create's start and its first record write ----
# guest.apply.start, the master's create: no record names the guest yet.
H=$(uuid)
HS=$(spec crash2 "$H" '{"disk":"32M"}')
killed_at h1 apply_done apply-start "$HS"
[ "$(guest_inits "$H")" = 1 ] || fail "no init of $H running after the killed create: $(guest_inits "$H")"
start_agent h1
hello=$(nodectl h1 wait-hello) || fail "no hello after the restart"
[ "$(printf '%s' "$hello" | jv '.leftovers')" = 1 ] ||
    fail "the hello does not count the leftover of $H: $hello"
# Killed at start-up, before the hello: it ran in a uid block no record
# holds. Its disk and cgroup stay for the create sent again.
n=$(guest_inits "$H")
[ "$n" = 0 ] || fail "guest $H with no record runs $n inits after the restart"
[ -e "$T/h1/data/$H" ] || fail "the data of $H with no record is gone after the restart"
[ -e "$(cg_path "$H" cgroup.procs)" ] || fail "the cgroup of $H with no record is gone after the restart"
ok "killed in a create with its start: the restarted agent killed its init, kept its data"
leftovers() {
    "$VFLEET_BIN/vfleet-node" leftovers --state-dir "$T/h1" ${AGENT_CONFIG:+--config "$AGENT_CONFIG"} "$@"
}
leftovers | grep -qE "^$H +none written" || fail "$H is not listed as a leftover: $(leftovers 2>&1)"
n=$(grep -c "guest=$H has no record (none was written" "$T/h1/agent.log")
grep -q "warning: .*guest=$H has no record (none was written: a create that did not finish): killed what ran of it" \
    "$T/h1/agent.log" && [ "$n" = 1 ] || fail "not one warning that $H was killed: $(grep "guest=$H" "$T/h1/agent.log")"
leftovers remove "$H" --yes >/dev/null 2>&1 && fail "the leftovers of $H were removed while the agent runs"
[ -e "$T/h1/data/$H" ] || fail "the data of $H went while the agent runs"
ok "the leftover is listed, logged once as killed, not removed while the agent runs"
nodectl h1 apply-start "$HS" >/dev/null || fail "the create sent again"
n=$(guest_inits "$H")
[ "$n" = 1 ] || fail "guest $H runs $n inits after the create sent again"
nodectl h1 exec "$H" -- true >/dev/null || fail "exec in $H"
n=$(guest_inits "$H")
[ "$n" = 1 ] || fail "guest $H runs $n inits after an exec that followed the create sent again"
nodectl h1 destroy "$H" >/dev/null || fail "destroy $H"
[ "$(guest_inits "$H")" = 0 ] || fail "an init of $H is left after its destroy"
ok "killed in a create with its start: the create sent again runs one init"

# ---- the leftovers of a create killed half-way, removed by the operator ----
K=$(uuid)
nodectl h1 apply "$(spec kept "$K" '{"disk":"32M"}')" >/dev/null || fail "apply $K"
J=$(uuid)
killed_at h1 apply_done apply-start "$(spec crash3 "$J" '{"disk":"32M"}')"
[ "$(guest_inits "$J")" = 1 ] || fail "no init of $J running after the killed create"
leftovers | grep -qE "^$J +none written" || fail "$J is not listed as a leftover: $(leftovers 2>&1)"
leftovers | grep -q "$K" && fail "$K, which has a record, is listed as a leftover"
leftovers remove "$K" --yes >/dev/null 2>&1 && fail "$K, which has a record, was removed"
[ -e "$T/h1/data/$K" ] || fail "the data of $K (recorded) went"
leftovers remove "$J" >/dev/null 2>&1 && fail "removed without --yes"
[ -e "$T/h1/data/$J" ] || fail "the data of $J went without --yes"
leftovers remove "$J" --yes >/dev/null || fail "the leftovers of $J were not removed"
[ -e "$T/h1/data/$J" ] && fail "the data of $J is left after its removal"
[ -z "$(cg_left "$J")" ] || fail "cgroups of $J are left after its removal: $(cg_left "$J")"
[ "$(guest_inits "$J")" = 0 ] || fail "an init of $J runs after its removal"
leftovers | grep -q "$J" && fail "$J is still listed after its removal"
ok "the operator removed the leftovers of the killed create, not the recorded guest's"
start_agent h1
hello=$(nodectl h1 wait-hello) || fail "no hello after the restart"
[ "$(printf '%s' "$hello" | jv '.leftovers')" = 0 ] ||
    fail "the hello after the removal still counts leftovers: $hello"
ok "the hellos count the leftovers: 1 after the killed create, 0 after the removal"
nodectl h1 destroy "$K" >/dev/null || fail "destroy $K"
[ -e "$T/h1/data/$K" ] && fail "the data of $K is left after its destroy"
ok "the recorded guest is the agent's still: its destroy removes it"
