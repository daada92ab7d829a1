#!/usr/bin/env bash
# The first start after a reboot (the cold start): the guest's disk,
# idmapped template and overlay are not mounted, and the agent mounts them
# while the spawner clones the guest's init, which gets its root through a
# conduit (a shared bind mount, docs/architecture.md). Proven on the host and
# on Debian's 6.1 kernel (deploy/vm-test node_cold_start): the guest runs on
# its own disk, keeps what it wrote there, the conduit is gone after the
# start, a second cold start works, and destroy leaves no mount.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
D=$T/h1/data/$G
nodectl h1 apply "$(spec cold "$G" '{"disk":"32M"}')" >/dev/null || fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
nodectl h1 exec "$G" -- sh -c 'echo kept >/root-mark' >/dev/null || fail "write a mark"

# What a reboot leaves: the files, no mount (the loop device goes with the
# disk's mount: autoclear).
reboot_mounts() {
    umount "$D/root" && umount "$D/lower" && umount "$D/disk" || fail "unmount $D"
    grep -q " $D/" /proc/self/mountinfo && fail "a mount of $D is left"
    return 0
}
for i in 1 2; do
    nodectl h1 stop "$G" 1 2 >/dev/null || fail "stop"
    reboot_mounts
    nodectl h1 start "$G" >/dev/null || fail "cold start $i"
    for m in disk lower root; do
        mountpoint -q "$D/$m" || fail "$D/$m is not mounted after cold start $i"
    done
    grep -q " $D/stage" /proc/self/mountinfo && fail "the conduit $D/stage is left"
    [ "$(nodectl h1 exec "$G" -- cat /root-mark)" = kept ] || fail "the guest's file is not there"
    nodectl h1 exec "$G" -- sh -c 'grep " / " /proc/self/mountinfo' | grep -q overlay ||
        fail "the guest's / is not its overlay"
done
ok "two cold starts: the guest runs on its disk with its files; no conduit is left"

pid=$("$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="cold" {print $5}')
nodectl h1 destroy "$G" >/dev/null || fail "destroy"
[ -e "/proc/$pid" ] && fail "destroyed guest's init $pid is left"
grep -q "$G" /proc/self/mountinfo && fail "mount left"
[ -d "$D" ] && fail "$D left"
ok "destroy after a cold start leaves no mount and no directory"
