#!/usr/bin/env bash
# An OOM kill in a real guest with a memory limit, on a real node: the node
# hears the kernel's OOM notification (cgroup v1: an eventfd on
# memory.oom_control; v2: memory.events) and the master emits exactly one
# guest.oom event naming the guest, though the usage samples that follow
# report the same kill in failcnt.oom. The event stream shows it too.
. "$(dirname "$0")/lib.sh"

start_cluster 1

vf guest create o1 --template busybox --memory 32M --disk 32M --cpu 0.5 --wait >/dev/null ||
    fail "create o1"
ok "o1 runs with a 32 MiB memory limit on $(guest_field o1 node)"

oom_events() { vf --json events --type guest.oom --guest o1 | grep -c '"guest.oom"' || true; }
[ "$(oom_events)" -eq 0 ] || fail "an OOM event before any OOM"

# dd's 64 MiB buffer cannot fit: the kernel's OOM killer takes it.
set +e
vf guest exec o1 -- dd if=/dev/zero of=/dev/null bs=64M count=1 >"$T/dd.out" 2>&1
rc=$?
set -e
# The kill is behind us: every usage sample taken from here on counts it.
t_killed=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)
[ $rc -ne 0 ] || fail "dd with a 64 MiB buffer succeeded in a 32 MiB guest: $(cat "$T/dd.out")"
ok "dd was killed (exit $rc)"

one_event() { [ "$(oom_events)" -ge 1 ]; }
wait_for 30 "the guest.oom event" one_event
# Three usage samples taken after the kill (one a second here) that the
# master has received, each of them counting it in failcnt.oom (the count a
# master that took samples for news would make a second event of): then
# there is still one event. samples_after counts them, time being the
# sample's (ISO 8601, UTC, ms: ordered as strings).
seen=" "
samples_after() {
    local u t
    u=$(vf --json guest usage o1) || return 1
    t=$(jv '.time' <<<"$u")
    [[ "$t" > "$t_killed" ]] && [ "$(jv '.failcnt.oom' <<<"$u")" -ge 1 ] &&
        [[ "$seen" != *" $t "* ]] && seen="$seen$t "
    [ "$(wc -w <<<"$seen")" -ge 3 ]
}
wait_for 30 "three usage samples of o1 taken after the kill" samples_after
n=$(oom_events)
[ "$n" -eq 1 ] || fail "$n guest.oom events for one kill: $(vf events --type guest.oom)"
ev=$(vf --json events --type guest.oom --guest o1)
echo "$ev" | jv '.guest' | grep -qx o1 || fail "the event does not name o1: $ev"
echo "$ev" | jv '.data.kills' | grep -qx 1 || fail "kills is not 1: $ev"
ok "exactly one guest.oom event naming o1: $(echo "$ev" | jv '.message')"
grep -q "OOM notification" "$CL/$(guest_field o1 node)/agent.log" ||
    fail "the node did not hear the kernel's notification (only usage saw it?)"
ok "the node heard the kernel's OOM notification"
fc=$(vf --json guest usage o1 | jv '.failcnt.oom')
[ "$fc" -ge 1 ] || fail "usage failcnt.oom is $fc"
ok "usage: failcnt.oom = $fc"
vf guest rm o1 >/dev/null || fail "rm o1"
