#!/usr/bin/env bash
# Stop and destroy: halt signal then kill after the timeout; destroy leaves no
# cgroup, mount, loop device, disk image or process behind; both idempotent.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
nodectl h1 apply "$(spec gone "$G" '{"disk":"32M"}')" >/dev/null || fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
pid=$("$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="gone" {print $5}')
img=$(find "$T/h1/data" -name disk.img | head -1)
[ -n "$img" ] || fail "no disk image"
loop=$(losetup -j "$img" | cut -d: -f1)
[ -n "$loop" ] || fail "no loop device for $img"

# A guest that ignores the halt signal is killed after stop_timeout.
nodectl h1 exec "$G" -- sh -c "trap '' TERM; $WORKER </dev/null >/dev/null 2>&1 &" >/dev/null
nodectl h1 stop "$G" 1 2 >/dev/null || fail "stop"
alive "$pid" && fail "init still runs after stop"
[ -z "$(cat "$(cg_path "$G" cgroup.procs)" 2>/dev/null)" ] || fail "processes left after stop"
nodectl h1 stop "$G" >/dev/null || fail "second stop is not a no-op"
ok "stop halts the guest (and kills what ignores the signal); a second stop is a no-op"

nodectl h1 start "$G" >/dev/null || fail "restart"
pid=$("$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="gone" {print $5}')
nodectl h1 destroy "$G" >/dev/null || fail "destroy"
[ -e "/proc/$pid" ] && fail "destroyed guest's init $pid is left (a zombie nobody reaps?)"
[ -z "$(cg_left "$G")" ] || fail "cgroup left: $(cg_left "$G")"
grep -q "$G" /proc/self/mountinfo && fail "mount left"
[ -e "$img" ] && fail "disk image left"
losetup -a | grep -q "$img" && fail "loop device left"
[ -e "/sys/block/${loop#/dev/}/loop/backing_file" ] && grep -q "$G" "/sys/block/${loop#/dev/}/loop/backing_file" && fail "loop still bound"
pgrep -fx "$WORKER" && fail "a guest process is left"
[ -e "$T/h1/guests/$G.json" ] && fail "store record left"
nodectl h1 destroy "$G" >/dev/null || fail "second destroy is not a no-op"
ok "destroy leaves no cgroup, mount, loop device, image, record or process; it is idempotent"

# A mount namespace made while a guest runs (an `unshare -m`, a service with
# its own /tmp) holds a copy of the guest's disk mount, and with it the loop
# device: destroy still removes the guest, and the loop device goes when that
# namespace does.
H=$(uuid)
nodectl h1 apply "$(spec held "$H" '{"disk":"32M"}')" >/dev/null || fail "apply held"
nodectl h1 start "$H" >/dev/null || fail "start held"
himg=$(find "$T/h1/data/$H" -name '*.img' | head -1)
hloop=$(losetup -j "$himg" | cut -d: -f1)
[ -n "$hloop" ] || fail "no loop device for $himg"
unshare --mount --propagation private sleep 300 &
holder=$!
for _ in $(seq 50); do grep -q " ${hloop#/dev/loop}\b\| 7:${hloop#/dev/loop} " "/proc/$holder/mountinfo" 2>/dev/null && break; sleep 0.1; done
nodectl h1 destroy "$H" >/dev/null || fail "destroy with a foreign copy of the disk mount"
[ -e "$himg" ] && fail "the held guest's image is left"
[ -e "$T/h1/guests/$H.json" ] && fail "the held guest's record is left"
grep -q "data/$H" /proc/self/mountinfo && fail "a mount of the held guest is left here"
kill "$holder"
wait "$holder" 2>/dev/null || true
gone() { ! losetup -a | grep -q "^$hloop:.*$H"; }
wait_for 20 "the loop device freed once the namespace is gone" gone
ok "destroy goes through while another mount namespace holds the disk; the loop device goes with it"
