#!/usr/bin/env bash
# Guests created before uid blocks: their store record has no "ids". They
# keep running privileged (no user namespace) until they are recreated, and
# new generations of their spec apply; a guest that has a block (or was made
# privileged on purpose) cannot change its privileged flag.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello from the agent"

# A guest as an older agent made it: privileged files on its disk, then its
# record stripped of "ids" and of the flag.
L=$(uuid)
nodectl h1 apply "$(spec old "$L" '{"disk":"32M"}' '"flags":["privileged"]')" >/dev/null || fail "apply"
nodectl h1 start "$L" >/dev/null || fail "start"
kill "$(agent_pid h1)"
wait_for 10 "agent gone" sh -c "! kill -0 $(agent_pid h1) 2>/dev/null"
jq 'del(.ids) | del(.spec.flags)' "$T/h1/guests/$L.json" >"$T/legacy.json" &&
    mv "$T/legacy.json" "$T/h1/guests/$L.json"
start_agent h1
nodectl h1 wait-hello | jv '.inventory[0].running' | grep -qx true || fail "not re-adopted"
[ "$(nodectl h1 exec "$L" -- cat /proc/self/uid_map | awk '{print $1, $2, $3}')" = "0 0 4294967295" ] ||
    fail "the legacy guest is not in the host's user namespace"
ok "a record without ids is re-adopted and runs privileged"

nodectl h1 stop "$L" 5 >/dev/null || fail "stop"
nodectl h1 start "$L" >/dev/null || fail "restart"
[ "$(nodectl h1 exec "$L" -- cat /proc/self/uid_map | awk '{print $2}')" = 0 ] ||
    fail "restarted legacy guest got a user namespace"
nodectl h1 exec "$L" -- sh -c 'grep -q "^Seccomp:[[:space:]]*2" /proc/1/status' ||
    fail "the restarted legacy guest has no syscall filter"
GEN=2 nodectl h1 apply "$(GEN=2 spec old "$L" '{"disk":"32M","procs":100}')" >/dev/null ||
    fail "a new generation of a legacy guest"
jq -e 'has("ids") | not' "$T/h1/guests/$L.json" >/dev/null ||
    fail "the legacy record gained ids"
ok "restarted: still privileged, now filtered; new generations apply and the record stays legacy"

# A guest with a block keeps it: the flag cannot flip.
U=$(uuid)
nodectl h1 apply "$(spec new "$U" '{"disk":"32M"}')" >/dev/null || fail "apply new"
set +e
out=$(GEN=2 nodectl h1 apply "$(GEN=2 spec new "$U" '{"disk":"32M"}' '"flags":["privileged"]')")
rc=$?
set -e
[ $rc -eq 1 ] && [ "$(jv '.code' <<<"$out")" = unsupported ] || fail "flag flip: $out"
ok "a guest with a uid block cannot become privileged: $(jv '.message' <<<"$out")"
