#!/usr/bin/env bash
# Host disk as real capacity: the node reports its filesystem's free space
# plus what guest images already hold, minus its reserve (not the
# filesystem's size), and refuses new disks and growth with no_space while
# the filesystem is below the reserve; starts and stops go on.
. "$(dirname "$0")/lib.sh"

build_template
# The node's state on a filesystem of its own, so its free space moves only
# with what this scenario writes (other sessions share the host's disk).
mkdir -p "$T/h1"
mount -t tmpfs -o size=1g,mode=0700 vfreserve "$T/h1"
# lib.sh's cleanup unmounts everything under $T before it removes the
# guests' cgroups by the records in $T/*/guests, which live on that tmpfs:
# remove them first (after killing the agent and the guests), and never fail.
# Each wait is for the processes killed to be gone (up to 10 s, then on).
reserve_cleanup() {
    set +e
    local rec id pid c
    local -a inits=()
    kill "$(agent_pid h1)" 2>/dev/null
    for rec in "$T"/h1/guests/*.json; do
        [ -f "$rec" ] || continue
        pid=$(jq -r '.runtime.pid' "$rec" 2>/dev/null)
        [ -n "$pid" ] && [ "$pid" != 0 ] && kill -9 "$pid" 2>/dev/null && inits+=("$pid")
    done
    await_gone 10 "${inits[@]}"
    for rec in "$T"/h1/guests/*.json; do
        [ -f "$rec" ] || continue
        id=$(basename "$rec" .json)
        for c in /sys/fs/cgroup/*/vfleet/"$id"; do
            [ -d "$c" ] || continue
            xargs -r kill -9 <"$c/cgroup.procs" 2>/dev/null
        done
        for _ in $(seq 200); do
            cat /sys/fs/cgroup/*/vfleet/"$id"/cgroup.procs 2>/dev/null | grep -q . || break
            sleep 0.05
        done
        for c in /sys/fs/cgroup/*/vfleet/"$id"; do [ -d "$c" ] && rmdir "$c" 2>/dev/null; done
    done
    return 0
}
trap 'rc=$?; reserve_cleanup; (exit $rc); cleanup' EXIT
# Free and total bytes of the state directory's filesystem (statvfs: f_bavail
# and f_blocks in f_frsize units).
py_statvfs() {
    local avail frsize blocks
    read -r avail frsize blocks < <(stat -f -c '%a %S %b' "$T/h1")
    echo $((avail * frsize)) $((blocks * frsize))
}
hello_disk() { nodectl h1 wait-hello | jv '.disk'; }
restart_agent() {
    local pid
    pid=$(agent_pid h1)
    kill "$pid"
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    ! alive "$pid" || fail "the agent did not exit in 5 s after SIGTERM"
    AGENT_CONFIG=$1 start_agent h1
}
near() {
    local d=$(($1 - $2))
    [ "${d#-}" -le "$3" ]
}

R=$((256 << 20))
MiB4=$((4 << 20))
printf "[node]\ndisk_reserve = 256M\n" >"$T/default.conf"
AGENT_CONFIG=$T/default.conf start_agent h1
disk=$(hello_disk) || fail "no hello"
read -r avail size < <(py_statvfs)
near "$disk" $((avail - R)) $MiB4 || fail "reported $disk, free $avail - 256M reserve"
[ "$disk" -lt "$size" ] || fail "reported the filesystem's size"
ok "capacity $((disk >> 20)) MiB = free $((avail >> 20)) MiB - 256 MiB reserve (filesystem $((size >> 20)) MiB)"

# A guest fills 48 MiB of its sparse image: the capacity stays the same, the
# image's blocks count as the node's.
A=$(uuid)
nodectl h1 apply "$(spec alpha "$A" '{"disk":"128M"}')" >/dev/null || fail "apply alpha"
nodectl h1 start "$A" >/dev/null || fail "start alpha"
nodectl h1 exec "$A" -- sh -c 'dd if=/dev/urandom of=/fill bs=1M count=48 2>/dev/null; sync' ||
    fail "fill"
alloc=$(($(stat -c %b "$T/h1/data/$A/disk.img") * 512))
[ "$alloc" -ge $((48 << 20)) ] || fail "image holds $alloc bytes"
restart_agent "$T/default.conf"
disk2=$(hello_disk) || fail "no hello after restart"
read -r avail2 _ < <(py_statvfs)
near "$disk2" $((avail2 + alloc - R)) $MiB4 || fail "reported $disk2, want free $avail2 + image $alloc - 256M"
[ $((avail - avail2)) -ge $((48 << 20)) ] || fail "the image did not take space"
ok "with $((alloc >> 20)) MiB in an image: capacity $((disk2 >> 20)) MiB = free + image - reserve"

# A reserve above the free space: no new disk, no growth; the guest runs on.
printf "[node]\ndisk_reserve = %s\n" $((avail2 + (64 << 20))) >"$T/tight.conf"
restart_agent "$T/tight.conf"
[ "$(hello_disk)" = 0 ] || fail "capacity under the reserve is not 0"
B=$(uuid)
set +e
out=$(nodectl h1 apply "$(spec beta "$B" '{"disk":"64M"}')")
rc=$?
set -e
[ $rc -eq 1 ] || fail "apply of a new guest under the reserve: rc $rc ($out)"
[ "$(jv '.code' <<<"$out")" = no_space ] || fail "nack code: $out"
jv '.message' <<<"$out" | grep -q reserve || fail "nack message: $out"
[ ! -e "$T/h1/data/$B" ] || fail "a refused create left $T/h1/data/$B"
ok "new guest refused: $(jv '.message' <<<"$out")"
set +e
out=$(GEN=2 nodectl h1 apply "$(GEN=2 spec alpha "$A" '{"disk":"256M"}')")
rc=$?
set -e
[ $rc -eq 1 ] && [ "$(jv '.code' <<<"$out")" = no_space ] || fail "growth under the reserve: $out"
[ "$(nodectl h1 exec "$A" -- hostname)" = alpha ] || fail "alpha stopped working"
nodectl h1 stop "$A" 5 >/dev/null || fail "stop alpha"
nodectl h1 start "$A" >/dev/null || fail "start alpha under the reserve"
ok "growth refused (no_space); the guest still stops and starts"
