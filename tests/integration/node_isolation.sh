#!/usr/bin/env bash
# One node, real guests: isolation and the capability bounding set, proved
# from inside the guest through guest.exec.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello from the agent"

A=$(uuid)
B=$(uuid)
nodectl h1 apply "$(spec alpha "$A" '{"disk":"64M"}')" >/dev/null || fail "apply alpha"
nodectl h1 apply "$(spec beta "$B" '{"disk":"64M"}' '"caps_drop":["net_raw","mknod"],"caps_add":["sys_nice"]')" >/dev/null || fail "apply beta"
nodectl h1 start "$A" >/dev/null || fail "start alpha"
nodectl h1 start "$B" >/dev/null || fail "start beta"
ok "two guests running"

[ "$(nodectl h1 exec "$A" -- hostname)" = alpha ] || fail "hostname is not the guest's"
ok "hostname is the guest's"

# The local admin's shell into a guest: same namespaces and bounding set as exec.
[ "$("$VFLEET_BIN/vfleet-node" enter alpha --state-dir "$T/h1" -- hostname </dev/null)" = alpha ] ||
    fail "vfleet-node enter does not land in the guest"
set +e
"$VFLEET_BIN/vfleet-node" enter alpha --state-dir "$T/h1" -- sh -c 'exit 5' </dev/null
rc=$?
set -e
[ $rc -eq 5 ] || fail "enter returned $rc, want the command's 5"
ok "vfleet-node enter runs inside the guest"

# Only the guest's processes are visible, and its init is pid 1.
ps_out=$(nodectl h1 exec "$A" -- ps -o pid,args)
echo "$ps_out" | awk 'NR>1 && $1==1 {found=1} END {exit !found}' || fail "init is not pid 1: $ps_out"
nprocs=$(echo "$ps_out" | awk 'NR>1' | wc -l)
[ "$nprocs" -le 4 ] || fail "guest sees $nprocs processes: $ps_out"
nodectl h1 exec "$B" -- sh -c 'exec sleep 1000' >/dev/null &
sleep 0.5
nodectl h1 exec "$A" -- ps -o args | grep -q 'sleep 1000' && fail "alpha sees beta's processes"
ok "ps shows only the guest's processes; a second guest is invisible"

# Exactly the configured bounding set: Docker's 14 for alpha, edited for beta.
capbnd=$(nodectl h1 exec "$A" -- cat /proc/1/status | awk '/^CapBnd/ {print $2}')
[ "$capbnd" = 00000000a80425fb ] || fail "alpha CapBnd $capbnd, want 00000000a80425fb"
# beta: minus net_raw (bit 13) and mknod (bit 27), plus sys_nice (bit 23).
capbnd=$(nodectl h1 exec "$B" -- cat /proc/1/status | awk '/^CapBnd/ {print $2}')
[ "$capbnd" = 00000000a08405fb ] || fail "beta CapBnd $capbnd, want 00000000a08405fb"
ok "bounding sets are exactly the configured ones"

# What a guest's root must not be able to do.
nodectl h1 exec "$A" -- mknod /tmp/blk b 8 0 >/dev/null 2>&1 &&
    nodectl h1 exec "$A" -- sh -c 'cat /tmp/blk >/dev/null' 2>/dev/null &&
    fail "a block device was created and read"
nodectl h1 exec "$A" -- mount -t tmpfs none /mnt >/dev/null 2>&1 && fail "mount succeeded"
nodectl h1 exec "$A" -- insmod /nonexistent.ko >/dev/null 2>&1 && fail "insmod succeeded"
nodectl h1 exec "$A" -- sh -c 'echo 1 > /proc/sys/kernel/sysrq' >/dev/null 2>&1 &&
    fail "/proc/sys is writable"
nodectl h1 exec "$A" -- sh -c 'echo x > /sys/kernel/uevent_helper' >/dev/null 2>&1 &&
    fail "/sys is writable"
[ -z "$(nodectl h1 exec "$A" -- cat /proc/kcore 2>/dev/null | head -c 16)" ] ||
    fail "/proc/kcore is readable"
ok "mknod of a block device, mount, module loading, /proc/sys and /sys writes all fail"

# Exec: exit codes, streams, missing commands.
set +e
nodectl h1 exec "$A" -- sh -c 'echo out; echo err >&2; exit 3' >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc -eq 3 ] || fail "exec exit code $rc, want 3"
grep -qx out "$T/out" && grep -qx err "$T/err" || fail "exec streams mixed up"
set +e
nodectl h1 exec "$A" -- /no/such/command >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 127 ] || fail "missing command gave $rc, want 127"
ok "exec returns exit codes and separate streams"
