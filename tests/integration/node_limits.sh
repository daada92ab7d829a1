#!/usr/bin/env bash
# One node, one guest: every limit proved by its effect from inside the guest
# (or, for the ones that have no cheap untimed effect, by the kernel's value).
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

G=$(uuid)
limits='{"procs":24,"memory":"48M","swap":"1M","rss":"40M","disk":"64M","inodes":4000,"nofile":300,"cpu_max":0.5,"cpu_burst":0.25,"cpu_weight":200,"io":[{"device":"7:0","read_bps":"10M","write_iops":500}]}'
nodectl h1 apply "$(spec lim "$G" "$limits")" >/dev/null || fail "apply"
# The guest's setup runs without its CPU ceiling (node/linux/cgroup.h,
# cgroup_setup_limits): a stopped guest's cgroup holds none (so a create changes the
# quota once, each change walking every CPU cgroup on the host), and the
# ceiling is in place by the time the start answers.
if [ "$(cg_mode)" = v2 ]; then
    qfile=cpu.max none="max 100000" want="50000 100000"
else
    qfile=cpu.cfs_quota_us none=-1 want=50000
fi
quota() { cat "$(cg_path "$G" "$qfile")"; }
q=$(quota)
[ "$q" = "$none" ] || fail "cpu ceiling of the guest before its start: $q, want $none"
nodectl h1 start "$G" >/dev/null || fail "start"
q=$(quota)
[ "$q" = "$want" ] || fail "cpu ceiling when the start answered: $q, want $want"
ok "no cpu ceiling before the start, set when the start answers"
ex() { nodectl h1 exec "$G" -- "$@"; }

# Open files: the guest's processes carry RLIMIT_NOFILE.
[ "$(ex sh -c 'ulimit -n')" = 300 ] || fail "ulimit -n is not 300"
ok "open files limited to 300"

# Processes: forking past the limit fails.
set +e
out=$(ex sh -c 'for i in $(seq 40); do sleep 5 & done; wait' 2>&1)
set -e
echo "$out" | grep -qi "fork\|resource\|again" || fail "40 forks under procs=24 did not fail: $out"
ok "forking past the process limit fails"

# Memory: a process that touches more than the limit is OOM-killed, and counted.
set +e
ex dd if=/dev/zero of=/dev/null bs=96M count=1 >/dev/null 2>&1
rc=$?
set -e
[ $rc -eq 137 ] || fail "96M allocation under 48M gave exit $rc, want 137 (SIGKILL)"
ok "allocating past the memory limit gets OOM-killed"

# Disk: df shows the size; writing past it or past the inode count is ENOSPC.
size_k=$(ex df -k / | awk 'NR==2 {print $2}')
[ "$size_k" -ge 55000 ] && [ "$size_k" -le 65536 ] || fail "df shows ${size_k}K for a 64M disk"
ok "df shows the 64M disk (${size_k}K)"
set +e
out=$(ex dd if=/dev/zero of=/big bs=1M count=100 2>&1)
set -e
echo "$out" | grep -qi "no space" || fail "writing 100M on a 64M disk: $out"
ex rm -f /big
set +e
out=$(ex sh -c 'mkdir /many && cd /many && i=0; while [ $i -lt 5000 ]; do touch f$i || { echo "created $i"; exit 9; }; i=$((i+1)); done' 2>&1)
rc=$?
set -e
created=$(echo "$out" | awk '/^created/ {print $2}')
[ $rc -eq 9 ] && echo "$out" | grep -qi "no space" || fail "5000 files under 4000 inodes: rc=$rc $out"
# The filesystem holds at least the limit, rounded up to whole inode-table blocks.
[ "$created" -ge 3900 ] && [ "$created" -le 4200 ] || fail "$created files fit under 4000 inodes"
ex rm -rf /many
ok "writing past the disk size and past the inode count fails with ENOSPC"

# Raising the disk limit grows df. Online (running guest) growth needs
# CAP_SYS_RESOURCE on the host, which node_disk_online.sh covers; here the
# grow is refused clearly when the host lacks it, and done offline.
grown="${limits/64M/128M}"
if ! has_cap sys_resource; then
    out=$(GEN=2 nodectl h1 apply "$(GEN=2 spec lim "$G" "$grown")") && fail "online grow without CAP_SYS_RESOURCE acked"
    [ "$(json_get "$out" code)" = unsupported ] && echo "$out" | grep -q CAP_SYS_RESOURCE || fail "online grow: $out"
    [ "$(ex df -k / | awk 'NR==2 {print $2}')" = "$size_k" ] || fail "refused grow changed the disk"
    ok "growing a running guest's disk is refused clearly on a host without CAP_SYS_RESOURCE"
    nodectl h1 stop "$G" >/dev/null || fail "stop"
fi
GEN=2 nodectl h1 apply "$(GEN=2 spec lim "$G" "$grown")" >/dev/null || fail "apply gen 2"
nodectl h1 start "$G" >/dev/null || fail "start after grow"
size2_k=$(ex df -k / | awk 'NR==2 {print $2}')
[ "$size2_k" -ge 120000 ] || fail "df shows ${size2_k}K after growing to 128M"
ok "raising the disk limit grows df (${size_k}K -> ${size2_k}K)"

# Usage: counters and failcnt are reported.
u=$(nodectl h1 usage "$G")
[ "$(json_get "$u" failcnt.procs)" -gt 0 ] || fail "failcnt.procs not counted: $u"
[ "$(json_get "$u" failcnt.oom)" -gt 0 ] || fail "failcnt.oom not counted: $u"
[ "$(json_get "$u" procs)" -ge 1 ] || fail "procs not reported: $u"
[ "$(json_get "$u" disk_bytes)" -gt 0 ] || fail "disk usage not reported: $u"
[ "$(json_get "$u" cpu_ns)" -gt 0 ] || fail "cpu not reported: $u"
ok "usage reports cpu, procs, disk and the hits of the process and memory limits"

# Kernel-side values for the limits whose effect is not a quick untimed test
# (deploy/vm/scenarios/vm_limits.sh proves them by effect on cgroup v2).
if [ "$(cg_mode)" = v2 ]; then
    v2() { cat "$(cg_path "$G" "$1")"; }
    [ "$(v2 cpu.max)" = "50000 100000" ] || fail "cpu quota: $(v2 cpu.max)"
    [ "$(v2 cpu.weight)" = 200 ] || fail "cpu weight: $(v2 cpu.weight)"
    [ "$(v2 memory.high)" = $((40 << 20)) ] || fail "rss soft limit: $(v2 memory.high)"
    [ "$(v2 cpu.max.burst)" = 25000 ] || fail "cpu burst: $(v2 cpu.max.burst)"
    [ "$(v2 memory.swap.max)" = $((1 << 20)) ] || fail "swap: $(v2 memory.swap.max)"
    grep -qx "7:0 rbps=10485760 wbps=max riops=max wiops=500" <(v2 io.max) || fail "io caps: $(v2 io.max)"
    ok "cpu ceiling and burst, cpu weight, resident soft limit, swap and per-device io caps are in the kernel (v2)"
    exit 0
fi
cg=/sys/fs/cgroup
[ "$(cat $cg/cpu/vfleet/$G/cpu.cfs_quota_us)" = 50000 ] || fail "cpu quota"
[ "$(cat $cg/cpu/vfleet/$G/cpu.shares)" = 2048 ] || fail "cpu shares"
[ "$(cat $cg/memory/vfleet/$G/memory.soft_limit_in_bytes)" = $((40 << 20)) ] || fail "rss soft limit"
[ "$(cat $cg/cpu/vfleet/$G/cpu.cfs_burst_us)" = 25000 ] || fail "cpu burst"
[ "$(cat $cg/memory/vfleet/$G/memory.memsw.limit_in_bytes)" = $((49 << 20)) ] || fail "swap (memory+swap)"
grep -qx "7:0 10485760" $cg/blkio/vfleet/$G/blkio.throttle.read_bps_device || fail "io read_bps"
grep -qx "7:0 500" $cg/blkio/vfleet/$G/blkio.throttle.write_iops_device || fail "io write_iops"
ok "cpu ceiling and burst, cpu weight, resident soft limit, swap and per-device io caps are in the kernel"
