#!/usr/bin/env bash
# A template no guest uses any more can be unmounted, and its storage is
# released (hostile review): template t2 on a file system of its own (a
# loop-mounted ext4 under the templates directory, as an operator's volume),
# guests made from it, started and destroyed; once the last is gone, the
# unmount releases the ext4 and its loop device (attached with autoclear)
# detaches, while the agent runs on. Until then the agent's held clone of the
# template (from which each guest's idmapped lower layer is cloned) is the one
# every create reuses. Before, the held clone kept the superblock and the loop
# device until the agent exited.
. "$(dirname "$0")/lib.sh"

build_template
img=$T/t2.img
truncate -s 32M "$img"
mkfs.ext4 -q "$img" || fail "mkfs"
mkdir -p "$TEMPLATES/t2"
mount -o loop "$img" "$TEMPLATES/t2" || fail "mount the template's volume"
cp -a "$TEMPLATES/busybox/." "$TEMPLATES/t2/"
loop=$(losetup -j "$img" | cut -d: -f1)
[ -n "$loop" ] || fail "no loop device for the template's volume"
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"
agent=$(agent_pid h1)
root=$(stat -c %d:%i "$TEMPLATES/t2")

# held: the mount ids of the agent's descriptors on t2's root directory (its
# held clone), one a line; empty when it holds none.
held() {
    local f n
    for f in /proc/"$agent"/fd/*; do
        n=${f##*/}
        [ "$(stat -L -c %d:%i "$f" 2>/dev/null)" = "$root" ] || continue
        awk '/^mnt_id:/ {print $2}' "/proc/$agent/fdinfo/$n" 2>/dev/null
    done | sort -u
}

# guest NAME ID: applies a guest of t2 and starts it.
guest() {
    printf '{"id":"%s","name":"%s","generation":1,"template":"t2","limits":{"disk":"32M"}}\n' \
        "$2" "$1" >"$T/$1.json"
    nodectl h1 apply "$T/$1.json" >/dev/null || fail "apply $1"
    nodectl h1 start "$2" >/dev/null || fail "start $1"
}

A=$(uuid) B=$(uuid) C=$(uuid)
guest a "$A"
guest b "$B"
first=$(held)
nodectl h1 destroy "$A" >/dev/null || fail "destroy a"
guest c "$C"
if [ -z "$first" ]; then
    log "no held clone in the agent (a kernel before 6.15 clones the path): the reuse check is empty"
else
    [ "$(held)" = "$first" ] || fail "the held clone was not reused while guests of t2 exist: mount $first, now $(held)"
    ok "the held clone of t2 (mount $first) is reused while a guest of t2 exists"
fi

nodectl h1 destroy "$B" >/dev/null || fail "destroy b"
nodectl h1 destroy "$C" >/dev/null || fail "destroy c"
still=$(held)
umount "$TEMPLATES/t2" || fail "umount the template's volume"
for _ in $(seq 100); do
    [ -z "$(losetup -j "$img")" ] && break
    sleep 0.05
done
[ -z "$(losetup -j "$img")" ] ||
    fail "the template's loop device stays attached after its unmount (the agent's held clone: mount ${still:-none}): $(losetup -j "$img")"
[ -z "$still" ] || fail "the agent held t2's clone (mount $still) with no guest of t2 left"
alive "$agent" || fail "the agent exited"
ok "with its last guest destroyed, t2's volume unmounts and its loop device ($loop) detaches; the agent runs on"

# The same template mounted again serves a new guest.
mount -o loop "$img" "$TEMPLATES/t2" || fail "mount the template's volume again"
root=$(stat -c %d:%i "$TEMPLATES/t2")
D=$(uuid)
guest d "$D"
nodectl h1 destroy "$D" >/dev/null || fail "destroy d"
umount "$TEMPLATES/t2" || fail "umount the template's volume again"
ok "the volume mounted again serves a new guest, and unmounts after it"
