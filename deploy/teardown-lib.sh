# Shared teardown of node agents' guests: sourced by deploy/local-cluster
# (`down --purge`) and tests/integration/lib.sh (every scenario's clean-up).
# It removes what an API purge could not (master or agent dead): the guests'
# processes, the mounts under a state directory and the guests' cgroups, in
# whichever cgroup layout the host has (v1 per-controller hierarchies, the
# hybrid's unified one, or pure v2). Needs jq. Every function ignores what is
# already gone and returns 0.
#
#   teardown_cgroup_dirs ID   every cgroup directory of guest ID that exists, in any layout
#   teardown_guests DIR       kill, unmount and remove what the node stores under
#                             DIR/*/guests/ name, then unmount everything under DIR
#   teardown_mounts DIR       unmount everything under DIR, deepest first

# The agent's cgroup prefix under each hierarchy (node/linux/linux_backend.c):
# "vfleet", or "vfleet-..." where a node has its own ([node] cgroup_prefix,
# the local cluster's nodes).
TEARDOWN_CG_ROOT=${TEARDOWN_CG_ROOT:-/sys/fs/cgroup}

teardown_cgroup_dirs() {
    local id=$1 d
    for d in "$TEARDOWN_CG_ROOT"/*/vfleet/"$id" "$TEARDOWN_CG_ROOT"/*/vfleet-*/"$id" \
        "$TEARDOWN_CG_ROOT/vfleet/$id" "$TEARDOWN_CG_ROOT"/vfleet-*/"$id"; do
        [ -d "$d" ] && echo "$d"
    done
    return 0
}

# teardown_kill_cgroup ID: SIGKILL to every process in the guest's cgroups
# (cgroup.kill where the kernel has it: it also catches forks in flight).
teardown_kill_cgroup() {
    local d
    for d in $(teardown_cgroup_dirs "$1"); do
        if [ -e "$d/cgroup.kill" ]; then
            echo 1 >"$d/cgroup.kill" 2>/dev/null || true
        elif [ -r "$d/cgroup.procs" ]; then
            xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null || true
        fi
    done
    return 0
}

teardown_mounts() {
    local dir=$1 m
    { grep " $dir/" /proc/self/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    return 0
}

# teardown_rmdir_cgroup ID: removes the guest's (now empty) cgroups; a
# cgroup whose last process is still exiting refuses for a moment.
teardown_rmdir_cgroup() {
    local d
    for d in $(teardown_cgroup_dirs "$1"); do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$d" 2>/dev/null && break
            sleep 0.1
        done
    done
    return 0
}

teardown_guests() {
    local dir=$1 rec pid id
    local -a ids=()
    for rec in "$dir"/*/guests/*.json; do
        [ -f "$rec" ] || continue
        id=$(basename "$rec" .json)
        ids+=("$id")
        pid=$(jq -r '.runtime.pid // 0' "$rec" 2>/dev/null || echo 0)
        [ -n "$pid" ] && [ "$pid" != 0 ] && kill -9 "$pid" 2>/dev/null
        # A guest started just before its agent died has no pid in its
        # record yet: whatever runs in its cgroups goes too.
        teardown_kill_cgroup "$id"
    done
    # A guest created by an agent killed before the create's first record
    # write has a data directory and no record (node_crash_start).
    for rec in "$dir"/*/data/*/; do
        [ -d "$rec" ] || continue
        id=$(basename "$rec")
        [ -f "${rec%/data/*}/guests/$id.json" ] && continue
        ids+=("$id")
        teardown_kill_cgroup "$id"
    done
    [ ${#ids[@]} -gt 0 ] && sleep 0.3
    teardown_mounts "$dir"
    for id in "${ids[@]}"; do teardown_rmdir_cgroup "$id"; done
    return 0
}
