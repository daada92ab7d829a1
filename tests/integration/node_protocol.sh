#!/usr/bin/env bash
# The agent against bad and tricky input over the real protocol: malformed
# frames, unknown types, unknown guests, stale generations, flags.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

# Malformed frames get a nack and the agent keeps working.
printf '\xdd\xff\xff\xff\xff' >"$T/bomb"                   # array32 claiming 4G elements
printf '\x83\xa1v\x01\xa4type\xa9guest.zap\xa2id\x07' >"$T/unknown"  # well-formed, unknown type
printf 'garbage' >"$T/garbage"
out=$(nodectl h1 raw "$T/bomb") && fail "bomb accepted"
[ "$(json_get "$out" code)" = bad_request ] || fail "bomb: $out"
out=$(nodectl h1 raw "$T/unknown") && fail "unknown type accepted"
[ "$(json_get "$out" code)" = unknown_type ] && [ "$(json_get "$out" ref)" = 7 ] || fail "unknown: $out"
out=$(nodectl h1 raw "$T/garbage") && fail "garbage accepted"
kill -0 "$(agent_pid h1)" || fail "agent died on malformed input"
ok "malformed frames and unknown types are nacked; the agent lives on"

X=$(uuid)
out=$(nodectl h1 start "$X") && fail "start of an unknown guest acked"
[ "$(json_get "$out" code)" = not_found ] || fail "unknown guest: $out"
ok "unknown guests are not_found"

G=$(uuid)
GEN=2 nodectl h1 apply "$(GEN=2 spec flags "$G" '{"disk":"32M"}')" >/dev/null || fail "apply"
# An older generation is ignored (acked with the current one).
out=$(GEN=1 nodectl h1 apply "$(GEN=1 spec flags "$G" '{"disk":"32M","procs":5}')")
[ "$(json_get "$out" generation)" = 2 ] || fail "stale apply changed the guest: $out"
# The same generation again is idempotent.
out=$(GEN=2 nodectl h1 apply "$(GEN=2 spec flags "$G" '{"disk":"32M"}')")
[ "$(json_get "$out" generation)" = 2 ] || fail "re-sent apply: $out"
ok "re-sent and older generations are acknowledged without change"

# lock: no start; private: no exec.
GEN=3 nodectl h1 apply "$(GEN=3 spec flags "$G" '{"disk":"32M"}' '"flags":["lock"]')" >/dev/null
out=$(nodectl h1 start "$G") && fail "locked guest started"
[ "$(json_get "$out" code)" = locked ] || fail "lock: $out"
GEN=4 nodectl h1 apply "$(GEN=4 spec flags "$G" '{"disk":"32M"}' '"flags":["private"]')" >/dev/null
nodectl h1 start "$G" >/dev/null || fail "start after unlock"
out=$(nodectl h1 exec "$G" -- true) && fail "exec into a private guest"
echo "$out" | grep -q private || fail "private: $out"
"$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="flags" {print $6}' | grep -qx private ||
    fail "vfleet-node ls does not report the private flag"
"$VFLEET_BIN/vfleet-node" enter flags --state-dir "$T/h1" -- true 2>/dev/null && fail "enter into a private guest"
ok "lock refuses start, private refuses exec and enter; ls reports the flags"

# A name already used by another guest is a conflict; a disk below use is refused.
out=$(nodectl h1 apply "$(spec flags "$(uuid)" '{"disk":"32M"}')") && fail "duplicate name"
[ "$(json_get "$out" code)" = conflict ] || fail "duplicate name: $out"
GEN=5 nodectl h1 apply "$(GEN=5 spec flags "$G" '{"disk":"32M"}')" >/dev/null
nodectl h1 exec "$G" -- dd if=/dev/zero of=/fill bs=1M count=20 >/dev/null 2>&1 || true
out=$(GEN=6 nodectl h1 apply "$(GEN=6 spec flags "$G" '{"disk":"16M"}')") && fail "shrink below use"
[ "$(json_get "$out" code)" = no_space ] || [ "$(json_get "$out" code)" = conflict ] || fail "shrink: $out"
# A create that fails half-way (an inode count the disk cannot hold) leaves nothing behind.
B=$(uuid)
out=$(nodectl h1 apply "$(spec bad "$B" '{"disk":"16M","inodes":100000}')") && fail "impossible inode count accepted"
[ ! -e "$T/h1/data/$B" ] && [ ! -e "$T/h1/guests/$B.json" ] || fail "a failed create left files: $out"
[ -z "$(cg_left "$B")" ] || fail "a failed create left cgroup $(cg_left "$B")"
grep -q "$B" /proc/self/mountinfo && fail "a failed create left a mount"
ok "duplicate names and disks below use are refused with clear codes; a failed create leaves nothing"
