#!/usr/bin/env bash
# Guest start, vfleet against its peers, in one run on one machine.
#
#   bench/start.sh [BUILD_DIR]      BUILD_DIR defaults to ./build (needs bin/bench_start)
#
# 1. Installs the peers for this benchmark only, when missing: bubblewrap,
#    lxc, systemd-container and hyperfine (never part of deploy/install-deps).
# 2. Builds the busybox template (deploy/templates/busybox) in a scratch dir;
#    the peers run a copy of the same tree (nspawn and LXC may leave files in
#    the root they are given; vfleet's template must stay pristine).
# 3. Runs the peers with hyperfine (-N, warm-up 5, 60 runs): each starts
#    /bin/true in new pid, mount, uts, ipc and net namespaces rooted at the
#    tree and waits for it to exit (the commands of
#    shared/reference/performance-anchors.md section B); plus a bare exec of
#    the tree's /bin/true, the scale of one exec on this machine.
# 4. Runs bench_start (60 runs, warm-up 5) on the template: the default guest
#    (its own user namespace, the seccomp filter, LXCFS from a private lxcfs
#    this script mounts in its scratch dir), then a privileged one (no user
#    namespace; still the filter and LXCFS) for comparison.
# 5. Prints one table: median, p90, ratio to vfleet's start and to bwrap.
#
# "vfleet start+mounts" is the cold start, the first start after a reboot: the
# disk and the overlay are unmounted before each run, so it attaches the loop
# device and mounts ext4, the idmapped template and the overlay (the guest's
# cgroups stay). Its cost grows with the loop devices on the host when a check
# walks them all, so the machine line counts them.
#
# 6. Both sides cold (COLD_RUNS, default 20; COLD_RUNS=0 skips it): the same
#    bwrap command and vfleet's cold start again, with the host's page cache,
#    dentries and inodes dropped before every run of either (sync, then 3
#    into /proc/sys/vm/drop_caches; untimed), so that bwrap's binary, its
#    libraries and the tree's /bin/true come from the disk as the loop
#    device's direct I/O reads the guest's disk from it: the first start
#    after a reboot for both. Printed on a line of its own after the table;
#    the table's figures are unchanged (their caches stay warm). It drops
#    every cache on the host, for everyone on it.
#
# Environment: RUNS (60), WARMUP (5), COLD_RUNS (20), KEEP=1 keeps the scratch
# dir, OLD_BUILD=dir (a build of another commit, with bin/bench_start) adds its
# start and start+mounts rows, marked "(old)", measured in the same run, and its
# caches-dropped cold start on the both-sides-cold line.
# Needs root. Cleans up after itself: the vfleet guest (bench_start destroys
# it), LXC's cgroups for its container, its lxcfs, the scratch dir.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
runs=${RUNS:-60}
warmup=${WARMUP:-5}
cold_runs=${COLD_RUNS:-20}
bench_start=$build/bin/bench_start

die() { echo "bench/start.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$bench_start" ] || die "no $bench_start: build first (cmake --build $build)"
old_bench_start=
if [ -n "${OLD_BUILD:-}" ]; then
    old_bench_start=$(cd "$OLD_BUILD" && pwd)/bin/bench_start
    [ -x "$old_bench_start" ] || die "no $old_bench_start"
fi

need=()
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v lxc-execute >/dev/null || need+=(lxc)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v jq >/dev/null || need+=(jq)
command -v lxcfs >/dev/null || die "no lxcfs: run deploy/install-deps (it is vfleet's own dependency)"
if [ ${#need[@]} -gt 0 ]; then
    echo "installing for this benchmark only: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/dev/null
fi

work=$(mktemp -d /var/tmp/vfleet-bench.XXXXXX)
name=vfbench$$
cgroot=/sys/fs/cgroup
# LXC makes lxc.pivot in every hierarchy and leaves it: remove it only when
# this run made it.
pivot_before=$(find "$cgroot" -mindepth 2 -maxdepth 2 -type d -name lxc.pivot | sort)
# nspawn leaves empty /run/systemd/nspawn/{locks,propagate}: likewise.
nspawn_run_before=
if [ -d /run/systemd/nspawn ]; then nspawn_run_before=1; fi
lxpid=
cleanup() {
    # set -e holds in traps: nothing here may stop the clean-up half-way.
    set +e
    if [ -n "$lxpid" ]; then
        kill "$lxpid" 2>/dev/null
        # lxcfs unmounts itself on TERM; this is for one that could not.
        for _ in $(seq 20); do grep -q " $work/lxcfs " /proc/self/mounts || break; sleep 0.1; done
        umount -l "$work/lxcfs" 2>/dev/null
    fi
    for d in "$cgroot"/*/lxc.payload."$name" "$cgroot"/*/lxc.monitor."$name" \
        "$cgroot"/*/lxc.pivot; do
        [ -d "$d" ] || continue
        case $d in
        */lxc.pivot) grep -qxF "$d" <<<"$pivot_before" && continue ;;
        esac
        rmdir "$d" 2>/dev/null || echo "bench/start.sh: could not remove $d" >&2
    done
    if [ -z "$nspawn_run_before" ] && [ -d /run/systemd/nspawn ]; then
        rmdir /run/systemd/nspawn/propagate /run/systemd/nspawn/locks /run/systemd/nspawn \
            2>/dev/null || echo "bench/start.sh: /run/systemd/nspawn is not empty; left" >&2
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

VFLEET_BUSYBOX=${VFLEET_BUSYBOX:-/bin/busybox} "$src/deploy/templates/busybox" \
    "$work/templates/busybox" >/dev/null
rootfs=$work/rootfs
cp -a "$work/templates/busybox" "$rootfs"
mkdir -p "$work/lxcpath"
cat >"$work/lxc.conf" <<EOF
lxc.rootfs.path = dir:$rootfs
lxc.uts.name = guest
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
EOF

echo "machine: kernel $(uname -r), $(nproc) cpus ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
    "$(ls -d /sys/block/loop* 2>/dev/null | wc -l) loop devices, $(wc -l </proc/self/mountinfo) mounts," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools: $(hyperfine --version), $(bwrap --version), lxc $(lxc-execute --version)," \
    "$(systemd-nspawn --version | head -1), $(unshare --version)"

echo "== peers (hyperfine -N --warmup $warmup --runs $runs)"
hyperfine -N --warmup "$warmup" --runs "$runs" --style basic --export-json "$work/peers.json" \
    -n "exec true (no ns)" "$rootfs/bin/true" \
    -n unshare "unshare --fork --pid --mount --uts --ipc --net --mount-proc=$rootfs/proc chroot $rootfs /bin/true" \
    -n bwrap "bwrap --unshare-pid --unshare-net --unshare-uts --unshare-ipc --bind $rootfs / --proc /proc --dev /dev /bin/true" \
    -n lxc-execute "lxc-execute -n $name -f $work/lxc.conf -P $work/lxcpath -- /bin/true" \
    -n systemd-nspawn "systemd-nspawn -q -D $rootfs --register=no --keep-unit --private-network /bin/true" \
    2> >(grep -v 'Attempted to remove disk file system' >&2)

mkdir -p "$work/lxcfs"
lxcfs -f --enable-cfs -p "$work/lxcfs.pid" "$work/lxcfs" >"$work/lxcfs.log" 2>&1 &
lxpid=$!
for _ in $(seq 50); do [ -r "$work/lxcfs/proc/meminfo" ] && break; sleep 0.1; done
[ -r "$work/lxcfs/proc/meminfo" ] || die "lxcfs did not come up"

echo "== vfleet default: user namespace + seccomp + LXCFS (bench_start -n $runs -w $warmup)"
"$bench_start" -n "$runs" -w "$warmup" -L "$work/lxcfs" -j "$work/vfleet.json" \
    "$work/templates/busybox"
echo "== vfleet privileged: no user namespace, seccomp + LXCFS (bench_start -P -m start)"
"$bench_start" -n "$runs" -w "$warmup" -L "$work/lxcfs" -P -m start -j "$work/vfleet-priv.json" \
    "$work/templates/busybox"
jq '.results[].command |= sub("^vfleet "; "vfleet privileged ")' "$work/vfleet-priv.json" \
    >"$work/vfleet-priv2.json"
old_json=()
if [ -n "$old_bench_start" ]; then
    echo "== old build $OLD_BUILD: start, start+mounts (bench_start -m start,mounts)"
    "$old_bench_start" -n "$runs" -w "$warmup" -L "$work/lxcfs" -m start,mounts \
        -j "$work/vfleet-old.json" "$work/templates/busybox"
    jq '.results[].command |= . + " (old)"' "$work/vfleet-old.json" >"$work/vfleet-old2.json"
    old_json=("$work/vfleet-old2.json")
fi

# One table. p90 is the nearest rank over the times, as bench_start computes it.
jq -r -s '
  def p90: sort | .[((length * 90 + 99) / 100 | floor) - 1];
  [.[].results[] | {name: .command, median, p90: (.times | p90)}]
  | (map(select(.name == "vfleet start"))[0].median) as $v
  | (map(select(.name == "bwrap"))[0].median) as $bw
  | .[] | [.name, .median * 1e3, .p90 * 1e3, .median / $v, .median / $bw] | @tsv
' "$work/peers.json" "$work/vfleet.json" "$work/vfleet-priv2.json" "${old_json[@]}" |
    awk -F'\t' 'BEGIN { printf "%-22s %10s %10s %14s %8s\n", "tool", "median ms", "p90 ms", "x vfleet start", "x bwrap" }
                 { printf "%-22s %10.2f %10.2f %14.2f %8.2f\n", $1, $2, $3, $4, $5 }'
if [ "$cold_runs" -gt 0 ]; then
    echo "== both sides cold: caches dropped before each run (hyperfine --prepare, bench_start -m mounts-cold; $cold_runs runs)"
    drop="sh -c 'sync; echo 3 >/proc/sys/vm/drop_caches'"
    hyperfine -N --warmup 2 --runs "$cold_runs" --style basic --export-json "$work/bwrap-cold.json" \
        --prepare "$drop" \
        -n "bwrap, caches dropped" "bwrap --unshare-pid --unshare-net --unshare-uts --unshare-ipc --bind $rootfs / --proc /proc --dev /dev /bin/true" \
        >/dev/null
    "$bench_start" -n "$cold_runs" -w 2 -L "$work/lxcfs" -m mounts-cold -j "$work/vfleet-cold.json" \
        "$work/templates/busybox" >/dev/null
    cold_json=("$work/bwrap-cold.json" "$work/vfleet-cold.json")
    # An old build from before mounts-cold has no such line.
    if [ -n "$old_bench_start" ] && { "$old_bench_start" -h 2>&1 || true; } | grep -q mounts-cold; then
        "$old_bench_start" -n "$cold_runs" -w 2 -L "$work/lxcfs" -m mounts-cold \
            -j "$work/vfleet-cold-old.json" "$work/templates/busybox" >/dev/null
        jq '.results[].command |= . + " (old)"' "$work/vfleet-cold-old.json" >"$work/vfleet-cold-old2.json"
        cold_json+=("$work/vfleet-cold-old2.json")
    fi
    jq -r -s '
      [.[].results[] | {name: .command, median}]
      | (map(select(.name == "bwrap, caches dropped"))[0].median) as $bw
      | "both sides cold (caches dropped before each run): "
        + (map("\(.name) \(.median * 1e5 | round / 100) ms"
               + (if .name == "bwrap, caches dropped" then "" else " (\(.median / $bw * 100 | round / 100)x bwrap)" end))
           | join(", "))
    ' "${cold_json[@]}"
fi
cat <<'EOF'
note: peers' times include exec of the tool itself, its exec of /bin/true, the exit and the
      namespace teardown (hyperfine waits for the exit). vfleet's start (the default guest: its
      own user namespace with the uid/gid maps, the seccomp filter loaded, 8 LXCFS files bound
      over /proc, the console reader forked) runs in the resident
      agent (no launcher exec) and ends when the guest's init has exec'd, but includes the cgroup
      (one per v1 hierarchy, 8 here), limits (pids, memory, cpu, nofile), the idempotent mount checks and
      the overlay on a loop-mounted ext4 disk; stop/kill/teardown are not timed. start+mounts is
      the cold start (first after a reboot): it also attaches the loop device and mounts ext4,
      the idmapped template and the overlay; start+exec adds an exec of /bin/true
      inside the guest until it exits (the closest to the peers' workload). x_ columns: median
      divided by vfleet start's / bwrap's median (below 1 = faster).
EOF
