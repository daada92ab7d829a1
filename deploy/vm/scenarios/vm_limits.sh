#!/usr/bin/env bash
# Every limit on Debian 12's own kernel with pure cgroup v2, proved by its
# effect from inside the guest where there is one, and read back from the v2
# files where there is none (io weight). Runs in the VM test host
# (deploy/vm-test vm_limits); on any other host it is skipped.
#
# Guests: A carries every limit at once (as node_limits.sh on the hybrid
# host) but the resident soft limit; S proves swap and the resident soft
# limit; C and D compete for the CPU with weights 100 and 400.
#
# Why A has no rss: on v2 it is memory.high, which throttles a guest above
# it (sleeps of up to 2 s per return to user space) instead of only steering
# reclaim as v1's soft limit does. With rss below memory and no swap to
# reclaim into, A's 96M allocation crawled between the two under emulation
# until the exec's 20 s timeout killed it: exit 137 without any OOM. So every
# exit 137 here is checked against memory.events oom_kill.
. "$VFLEET_SOURCE_DIR/tests/integration/lib.sh"

if [ "${VFLEET_VM:-0}" != 1 ] || [ "$(cg_mode)" != v2 ]; then
    echo "SKIP: runs in the VM test host (deploy/vm-test vm_limits): pure cgroup v2 on Debian's kernel"
    exit 77
fi
grep -q '^cgroup ' /proc/mounts && fail "a cgroup v1 hierarchy is mounted"
ok "kernel $(uname -r), pure cgroup v2 ($(cat /sys/fs/cgroup/cgroup.controllers))"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"
V=/sys/fs/cgroup/vfleet

A=$(uuid)
limits='{"procs":24,"memory":"48M","swap":"1M","disk":"64M","inodes":4000,"nofile":300,"cpu_max":0.5,"cpu_burst":0.25,"cpu_weight":200,"io_weight":300}'
nodectl h1 apply "$(spec lim "$A" "$limits")" >/dev/null || fail "apply"
# Init, its console reader and an exec'd command's helper are cloned into
# the guest's cgroup (clone3 CLONE_INTO_CGROUP), not moved there by a write
# into cgroup.procs, which takes the global cgroup_threadgroup_rwsem and
# waits out an RCU grace period: the kernel's cgroup_attach_task event,
# which every such move makes, names none of them.
TR=/sys/kernel/tracing
[ -d $TR/events ] || mount -t tracefs tracefs $TR || fail "mount tracefs"
ev=$TR/events/cgroup/cgroup_attach_task
[ -e $ev/enable ] || fail "no cgroup_attach_task event in $TR"
echo >$TR/trace
echo 1 >$ev/enable
nodectl h1 start "$A" >/dev/null || fail "start"
exA() { nodectl h1 exec "$A" -- "$@"; }
cg() { cat "$(cg_path "$A" "$1")"; }
# key FILE KEY: one counter of a flat-keyed v2 file of guest A.
key() { awk -v k="$2" '$1 == k {print $2}' "$(cg_path "$A" "$1")"; }
# reader_of INIT: the console reader (the spawner's child) in A's cgroup.
reader_of() {
    local p
    for p in $(cat "$(cg_path "$A" cgroup.procs)"); do
        [ "$p" != "$1" ] && [ "$(awk '$1 == "PPid:" {print $2}' "/proc/$p/status")" != "$1" ] &&
            [ "$(cat "/proc/$p/comm")" = vfleet-console ] && echo "$p"
    done
    return 0
}

# The hierarchy: the agent enabled the controllers it needs on the way down.
for c in cpu io memory pids; do
    grep -qw "$c" $V/cgroup.subtree_control || fail "$c not enabled in $V/cgroup.subtree_control"
    grep -qw "$c" /sys/fs/cgroup/cgroup.subtree_control || fail "$c not enabled at the root"
done
init=$("$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="lim" {print $5}')
[ "$(cat /proc/"$init"/cgroup)" = "0::/vfleet/$A" ] || fail "init $init is in $(cat /proc/"$init"/cgroup)"
ok "controllers cpu io memory pids enabled down to $V; the guest's init is in /vfleet/$A"
exA true || fail "exec true"
reader=$(reader_of "$init")
[ -n "$reader" ] || fail "no console reader in /vfleet/$A: $(cat "$(cg_path "$A" cgroup.procs)")"
moves=$(grep "dst_path=/vfleet/$A " $TR/trace || true)
[ -z "$moves" ] || fail "processes were moved into /vfleet/$A (init $init, reader $reader): $moves"
ok "init, its console reader ($reader) and the exec helper were cloned into /vfleet/$A, none moved there"

# Stopped by a kill (a process that ignores the halt signal), then started
# again: the new init, reader and helper are cloned into the same cgroup
# again. A kill by cgroup.kill made the kernel (6.1.0-50 here) kill every later
# clone into it at birth: the start then lost init and the spawner with it
# ("spawner is gone"), and with that fixed would still join by cgroup.procs.
exA sh -c "trap '' TERM; $WORKER </dev/null >/dev/null 2>&1 &" >/dev/null || fail "exec the worker"
nodectl h1 stop "$A" 1 1 >/dev/null || fail "stop"
alive "$init" && fail "init $init still runs after the stop"
[ -z "$(cg cgroup.procs)" ] || fail "processes left after the stop: $(cg cgroup.procs)"
[ "$(cg cgroup.freeze)" = 0 ] || fail "the stopped guest's cgroup is left frozen"
grep -q "killing it" "$T/h1/agent.log" || fail "the stop did not come to the kill"
echo >$TR/trace
nodectl h1 start "$A" >/dev/null || fail "start after the kill"
init=$("$VFLEET_BIN/vfleet-node" ls --state-dir "$T/h1" | awk '$1=="lim" {print $5}')
[ "$(cat /proc/"$init"/cgroup)" = "0::/vfleet/$A" ] || fail "init $init is in $(cat /proc/"$init"/cgroup)"
exA true || fail "exec true after the restart"
reader=$(reader_of "$init")
[ -n "$reader" ] || fail "no console reader in /vfleet/$A after the restart"
echo 0 >$ev/enable
moves=$(grep "dst_path=/vfleet/$A " $TR/trace || true)
[ -z "$moves" ] || fail "processes were moved into /vfleet/$A after the kill: $moves"
ok "stopped by a kill and started again: init $init, its reader and the exec helper cloned into /vfleet/$A again"

# Open files.
[ "$(exA sh -c 'ulimit -n')" = 300 ] || fail "ulimit -n is not 300"
ok "open files limited to 300"

# Processes: forking past pids.max fails, and pids.events counts it.
set +e
out=$(exA sh -c 'for i in $(seq 40); do sleep 5 & done; wait' 2>&1)
set -e
echo "$out" | grep -qi "fork\|resource\|again" || fail "40 forks under procs=24 did not fail: $out"
[ "$(key pids.events max)" -gt 0 ] || fail "pids.events max not counted: $(cg pids.events)"
ok "forking past pids.max=$(cg pids.max) fails; pids.events max $(key pids.events max)"

# Memory: touching more than memory.max is an OOM kill, counted in memory.events.
set +e
exA dd if=/dev/zero of=/dev/null bs=96M count=1 >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "96M allocation under 48M gave exit $rc, want 137 (SIGKILL)"
[ "$(key memory.events oom_kill)" -ge 1 ] || fail "memory.events oom_kill: $(cg memory.events)"
[ "$(key memory.events max)" -ge 1 ] || fail "memory.events max: $(cg memory.events)"
peak=$(cg memory.peak)
[ "$peak" -ge $((40 << 20)) ] && [ "$peak" -le $((48 << 20)) ] ||
    fail "memory.peak $peak after hitting a 48M limit"
ok "allocating past memory.max is OOM-killed; memory.events max/oom_kill counted, memory.peak $((peak >> 20))M"

# Usage as the agent reports it, from the same v2 files.
u=$(nodectl h1 usage "$A")
[ "$(json_get "$u" failcnt.procs)" = "$(key pids.events max)" ] || fail "failcnt.procs: $u"
[ "$(json_get "$u" failcnt.oom)" = "$(key memory.events oom_kill)" ] || fail "failcnt.oom: $u"
[ "$(json_get "$u" failcnt.memory)" -ge 1 ] || fail "failcnt.memory: $u"
[ "$(json_get "$u" memory_peak)" -ge $((40 << 20)) ] || fail "memory_peak: $u"
[ "$(json_get "$u" procs)" -ge 1 ] && [ "$(json_get "$u" cpu_ns)" -gt 0 ] || fail "procs/cpu: $u"
[ "$(json_get "$u" memory)" -gt 0 ] || fail "memory: $u"
ok "usage: failcnt procs $(json_get "$u" failcnt.procs), memory $(json_get "$u" failcnt.memory), oom $(json_get "$u" failcnt.oom); memory_peak $(($(json_get "$u" memory_peak) >> 20))M"

# Disk: df shows the size; writing past it or past the inode count is ENOSPC.
size_k=$(exA df -k / | awk 'NR==2 {print $2}')
[ "$size_k" -ge 55000 ] && [ "$size_k" -le 65536 ] || fail "df shows ${size_k}K for a 64M disk"
set +e
out=$(exA dd if=/dev/zero of=/big bs=1M count=100 2>&1)
set -e
echo "$out" | grep -qi "no space" || fail "writing 100M on a 64M disk: $out"
exA rm -f /big
set +e
# One touch per 500 names: a fork per file is slow under emulation.
out=$(exA sh -c 'mkdir /many && cd /many && seq 5000 | sed s/^/f/ | xargs -n 500 touch' 2>&1)
set -e
created=$(exA sh -c 'ls /many | wc -l')
echo "$out" | grep -qi "no space" || fail "5000 files under 4000 inodes: $out"
[ "$created" -ge 3900 ] && [ "$created" -le 4200 ] || fail "$created files fit under 4000 inodes"
exA rm -rf /many
ok "disk: df ${size_k}K; writing past the size and past 4000 inodes ($created files) is ENOSPC"

# CPU ceiling and burst: a spinning guest is throttled (cpu.stat nr_throttled)
# and, after idling, spends its burst (nr_bursts).
[ "$(cg cpu.max)" = "50000 100000" ] && [ "$(cg cpu.max.burst)" = 25000 ] ||
    fail "cpu.max $(cg cpu.max), burst $(cg cpu.max.burst)"
exA timeout 3 sh -c 'while :; do :; done' || true
[ "$(key cpu.stat nr_throttled)" -gt 0 ] && [ "$(key cpu.stat throttled_usec)" -gt 0 ] ||
    fail "a spinning guest under cpu.max 0.5 was not throttled: $(cg cpu.stat)"
[ "$(key cpu.stat nr_bursts)" -gt 0 ] && [ "$(key cpu.stat burst_usec)" -gt 0 ] ||
    fail "a spinning guest with a burst of 0.25 never used it: $(cg cpu.stat)"
ok "cpu.max 0.5 throttles ($(key cpu.stat nr_throttled) periods), the 0.25 burst is spent ($(key cpu.stat nr_bursts) periods)"

# I/O caps on the guest's own disk (its loop device): 1 MiB/s of writes makes
# 4 MiB of written-back data take at least 2.5 s (cgroup v2 charges writeback
# to the guest, so buffered writes with fsync are capped, unlike on v1).
# The guest's own image (find's first *.img could be a pristine image in
# $T/h1/pristine, attached to nothing: which comes first is directory order).
img=$T/h1/data/$A/disk.img
dev=$(losetup -j "$img" | cut -d: -f1)
[ -b "$dev" ] || fail "no loop device backs $img: '$dev'"
majmin=$(($(stat -c '0x%t' "$dev"))):$(($(stat -c '0x%T' "$dev")))
capped="${limits%\}},\"io\":[{\"device\":\"$majmin\",\"write_bps\":\"1M\",\"read_iops\":900}]}"
GEN=2 nodectl h1 apply "$(GEN=2 spec lim "$A" "$capped")" >/dev/null || fail "apply io caps"
grep -qx "$majmin rbps=max wbps=1048576 riops=900 wiops=max" <(cg io.max) || fail "io.max: $(cg io.max)"
t=$(exA sh -c 'a=$(cut -d" " -f1 /proc/uptime); dd if=/dev/zero of=/w bs=64k count=64 conv=fsync 2>/dev/null
    b=$(cut -d" " -f1 /proc/uptime); rm -f /w; echo "$a $b"')
secs=$(echo "$t" | awk '{printf "%.1f", $2 - $1}')
awk -v s="$secs" 'BEGIN {exit !(s >= 2.5)}' || fail "4 MiB under wbps=1M written in ${secs}s"
grep -q "^$majmin .*wbytes=[1-9]" <(cg io.stat) || fail "io.stat has no writes for $majmin: $(cg io.stat)"
ok "io.max on $dev ($majmin): 4 MiB at wbps=1M took ${secs}s; io.stat counts the writes"

# I/O weight: no effect to measure without two guests on one device, so the
# kernel's value, in every weight file this kernel has (iocost's io.weight
# and, with the BFQ scheduler loaded, io.bfq.weight).
modprobe bfq 2>/dev/null || true
GEN=3 nodectl h1 apply "$(GEN=3 spec lim "$A" "$capped")" >/dev/null || fail "re-apply"
[ -e "$(cg_path "$A" io.weight)" ] || [ -e "$(cg_path "$A" io.bfq.weight)" ] ||
    fail "this kernel has no io weight file"
for f in io.weight io.bfq.weight; do
    [ -e "$(cg_path "$A" $f)" ] || continue
    [ "$(awk '$1 == "default" {print $2}' "$(cg_path "$A" $f)")" = 300 ] || fail "$f: $(cg $f)"
done
ok "io weight 300 in $(cd "$(dirname "$(cg_path "$A" io.weight)")" && ls io.weight io.bfq.weight 2>/dev/null | tr '\n' ' ')"

# Swap and the resident soft limit (memory.high), guest S: 16M of memory,
# rss 12M, 32M of swap. 24M fits only by swapping: it succeeds, and
# memory.events counts the reclaim above memory.high; with 1M of swap (and
# no rss, see above) the same allocation is OOM-killed.
S=$(uuid)
nodectl h1 apply "$(spec swp "$S" '{"memory":"16M","rss":"12M","swap":"32M"}')" >/dev/null || fail "apply S"
nodectl h1 start "$S" >/dev/null || fail "start S"
exS() { nodectl h1 exec "$S" -- "$@"; }
sev() { awk -v k="$1" '$1 == k {print $2}' "$(cg_path "$S" memory.events)"; }
[ "$(cat "$(cg_path "$S" memory.swap.max)")" = $((32 << 20)) ] || fail "memory.swap.max"
[ "$(cat "$(cg_path "$S" memory.high)")" = $((12 << 20)) ] || fail "memory.high"
exS dd if=/dev/zero of=/dev/null bs=24M count=1 >/dev/null 2>&1 || fail "24M under 16M + 32M swap was not swapped"
high=$(sev high)
[ "$high" -gt 0 ] || fail "memory.high never reclaimed: $(cat "$(cg_path "$S" memory.events)")"
[ "$(sev oom_kill)" = 0 ] || fail "S was OOM-killed with swap to spare"
GEN=2 nodectl h1 apply "$(GEN=2 spec swp "$S" '{"memory":"16M","swap":"1M"}')" >/dev/null ||
    fail "apply S gen 2"
set +e
exS dd if=/dev/zero of=/dev/null bs=24M count=1 >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 137 ] && [ "$(sev oom_kill)" -ge 1 ] ||
    fail "24M under 16M + 1M swap gave exit $rc, oom_kill $(sev oom_kill); want 137 by the OOM killer"
ok "swap: 24M fits in 16M + 32M swap (memory.high 12M reclaimed $high times), is OOM-killed in 16M + 1M"

# CPU weight: C (100) and D (400) each run two spinners on this VM's two
# CPUs at once; D gets the larger share (4x in theory, at least 2x asked).
C=$(uuid) D=$(uuid)
nodectl h1 apply "$(spec wc "$C" '{"cpu_weight":100}')" >/dev/null || fail "apply C"
nodectl h1 apply "$(spec wd "$D" '{"cpu_weight":400}')" >/dev/null || fail "apply D"
nodectl h1 start "$C" >/dev/null || fail "start C"
nodectl h1 start "$D" >/dev/null || fail "start D"
[ "$(cat "$(cg_path "$D" cpu.weight)")" = 400 ] || fail "cpu.weight of D"
usec() { awk '$1 == "usage_usec" {print $2}' "$(cg_path "$1" cpu.stat)"; }
# Two detached spinners in each guest (one exec per guest: nodectl is the
# agent's only master), then a 3 s window while all four run.
spin='for i in 1 2; do timeout 12 sh -c "while :; do :; done" </dev/null >/dev/null 2>&1 & done'
nodectl h1 exec "$C" -- sh -c "$spin" >/dev/null || fail "spin in C"
nodectl h1 exec "$D" -- sh -c "$spin" >/dev/null || fail "spin in D"
spinning() { [ "$(cat "$(cg_path "$1" pids.current)")" -ge 3 ]; }
wait_for 10 "spinners in C" spinning "$C"
wait_for 10 "spinners in D" spinning "$D"
c0=$(usec "$C") d0=$(usec "$D")
sleep 3
dc=$(($(usec "$C") - c0)) dd=$(($(usec "$D") - d0))
log "cpu under contention: C (weight 100) ${dc}us, D (weight 400) ${dd}us"
[ "$dd" -ge $((2 * dc)) ] || fail "D (weight 400) got ${dd}us, C (weight 100) ${dc}us"
[ "$dc" -gt 0 ] || fail "C got no CPU at all under contention"
ok "cpu.weight: D (400) got $(awk -v a="$dd" -v b="$dc" 'BEGIN {printf "%.1f", a / b}')x the CPU of C (100) under contention"

# Everything goes with the guests: no cgroup left after destroy.
for g in "$A" "$S" "$C" "$D"; do
    nodectl h1 destroy "$g" >/dev/null || fail "destroy $g"
    [ -z "$(cg_left "$g")" ] || fail "cgroup left: $(cg_left "$g")"
done
[ -z "$(ls -d $V/*/ 2>/dev/null)" ] || fail "cgroups left under $V: $(ls -d $V/*/)"
ok "destroy leaves no cgroup under $V"
