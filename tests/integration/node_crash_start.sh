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
# names, is killed by the restarted agent before its hello (its disk kept).
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
nodectl h1 start "$G" >/dev/null || fail "the start sent again"
sleep 1
n=$(guest_inits "$G")
[ "$n" = 1 ] || fail "guest $G runs $n inits after the start sent again"
nodectl h1 exec "$G" -- true >/dev/null || fail "exec in the guest"
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
nodectl h1 wait-hello >/dev/null || fail "no hello after the restart"
# Killed at start-up, before the hello: it ran in a uid block no record
# holds. Its disk and cgroup stay for the create sent again.
n=$(guest_inits "$H")
[ "$n" = 0 ] || fail "guest $H with no record runs $n inits after the restart"
[ -e "$T/h1/data/$H" ] || fail "the data of $H with no record is gone after the restart"
[ -e "$(cg_path "$H" cgroup.procs)" ] || fail "the cgroup of $H with no record is gone after the restart"
ok "killed in a create with its start: the restarted agent killed its init, kept its data"
nodectl h1 apply-start "$HS" >/dev/null || fail "the create sent again"
sleep 1
n=$(guest_inits "$H")
[ "$n" = 1 ] || fail "guest $H runs $n inits after the create sent again"
nodectl h1 exec "$H" -- true >/dev/null || fail "exec in $H"
nodectl h1 destroy "$H" >/dev/null || fail "destroy $H"
[ "$(guest_inits "$H")" = 0 ] || fail "an init of $H is left after its destroy"
ok "killed in a create with its start: the create sent again runs one init"
