#!/usr/bin/env bash
# The agent killed (-9, by gdb at a breakpoint) at the worst moments of a
# cold start (start_cold, the first start after a reboot): in the disk's
# thread before its mount (start_cold_disk); in start_cold_prepare, the
# cgroup made and the disk's thread anywhere in its attach and mount
# (rootfs_conduit_open); with the child cloned and waiting for its root
# (start_cold_mounts); and with the child running on its root, the conduit
# not yet taken down and the start not recorded (rootfs_conduit_close called
# from start_cold_spawn: its first call, from rootfs_conduit_open, is
# start_cold_prepare's). Restarted, the start sent
# again runs one init of the guest on its own disk with its files, no
# conduit stays mounted, and the destroy leaves no mount and no loop device.
. "$(dirname "$0")/lib.sh"

command -v gdb >/dev/null || { echo "SKIP: no gdb"; exit 77; }
build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
D=$T/h1/data/$G
nodectl h1 apply "$(spec cold "$G" '{"disk":"32M"}')" >/dev/null || fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
nodectl h1 exec "$G" -- sh -c 'echo kept >/root-mark' >/dev/null || fail "write a mark"

# What a reboot leaves: the files, no mount, no loop device. A mount
# namespace made elsewhere on the host while the disk was mounted (another
# test beside this one) keeps its own copy of the disk's mount, and with it
# the loop device, after the unmount here; a real reboot leaves none, so
# the copy's end is waited for: the start would otherwise find the image
# attached elsewhere and refuse it with EBUSY, as it must (which an
# `unshare -m --propagation private` beside this scenario reproduces).
reboot_mounts() {
    umount "$D/root" && umount "$D/lower" && umount "$D/disk" || fail "unmount $D"
    grep -q " $D/" /proc/self/mountinfo && fail "a mount of $D is left"
    wait_for 60 "no loop device backing $D/disk.img (held by another mount namespace?)" \
        sh -c "! losetup -j '$D/disk.img' | grep -q ."
}

# The agent's errors and warnings since its restart (the scenario's failure
# output keeps only the log's tail).
agent_trouble() {
    grep -E ' (emerg|alert|crit|err|warning):' "$T/h1/agent.log" | tail -n 20
}

for at in start_cold_disk rootfs_conduit_open start_cold_mounts \
    'rootfs_conduit_close if $_caller_is("start_cold_spawn")'; do
    fn=${at%% *}
    nodectl h1 stop "$G" 1 2 >/dev/null || fail "stop before the kill at $fn"
    reboot_mounts
    killed_at h1 "$at" start "$G"
    start_agent h1
    nodectl h1 wait-hello >/dev/null || fail "no hello after the kill at $fn"
    out=$(nodectl h1 start "$G" 2>&1) ||
        fail "the start sent again after the kill at $fn: $out; the agent said: $(agent_trouble)"
    # The ack comes once the start is done: one init at once, and still one
    # after an exec.
    n=$(guest_inits "$G")
    [ "$n" = 1 ] || fail "guest $G runs $n inits after the kill at $fn and the start sent again"
    [ "$(nodectl h1 exec "$G" -- cat /root-mark)" = kept ] ||
        fail "the guest's file is not there after the kill at $fn"
    n=$(guest_inits "$G")
    [ "$n" = 1 ] || fail "guest $G runs $n inits after an exec that followed the start sent again (kill at $fn)"
    grep -q " $D/stage" /proc/self/mountinfo && fail "the conduit is left after the kill at $fn"
    ok "killed at $fn in a cold start: the start sent again runs one init on the guest's disk"
done

nodectl h1 destroy "$G" >/dev/null || fail "destroy"
[ "$(guest_inits "$G")" = 0 ] || fail "an init is left after the destroy"
grep -q "$G" /proc/self/mountinfo && fail "a mount of $G is left after the destroy"
for f in /sys/block/loop*/loop/backing_file; do
    [ -e "$f" ] && grep -q "$D/disk.img" "$f" && fail "a loop device still backs $D/disk.img ($f)"
done
[ -d "$D" ] && fail "$D left"
ok "the destroy after the kills leaves no mount, no loop device, no directory"
