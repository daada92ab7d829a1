#!/usr/bin/env bash
# The node agent's own footprint with N idle guests (issue 16): its resident
# memory (RSS, PSS, anonymous) and its CPU at a 1 s usage interval, for this
# build's vfleet-node and, on the same guests in the same run, OLD_BIN's,
# next to LXC's: what LXC keeps running to supervise as many containers.
# Needs root. Not a test: it prints figures.
#
#   sudo bench/agent.sh [-n GUESTS] [-s SECONDS] [-r ROUNDS]   (default 100, 60, 1)
#
# A real cluster on this host (deploy/local-cluster: a master and one real
# node, CurveZMQ, usage every second) gets N guests through the API (busybox,
# 0.01 core, 32M memory, a 64M disk, one address: a veth, nftables
# counters). The agent that created them is measured first ("after
# creating": what the burst left resident); with OLD_BIN, OLD_BIN's agent
# creates them first and is measured, they are destroyed, and this build's
# agent creates them again. Then, each round, the agent is restarted on the
# same running guests with OLD_BIN's vfleet-node (when given) and with this
# build's, and measured after 20 s of settling: CPU over SECONDS from /proc/PID/stat
# (its own, not its children's), memory from /proc/PID/smaps_rollup. The
# helper processes are measured the same way on their own lines: the
# agent's spawner (forks guests' inits and exec helpers) and the guests'
# console keepers, so no work hides from the agent's figure in another
# process.
#
# The peer: LXC 5 (Debian 12's lxc), N containers on the same busybox tree,
# started with lxc-start, each with no network; LXC keeps one monitor process
# per container ("[lxc monitor]") for as long as it runs. Their summed PSS
# (each one's share of the libraries they all map) and CPU are LXC's cost of
# keeping N containers supervised. It is a floor, not the same work: an LXC
# monitor samples no usage and talks to no master. Incus, which does both, is
# not in Debian 12. PEER=none skips it.
#
# Environment: BUILD (default <repo>/build), IP (auto or v6), OLD_BIN (a directory holding an
# older vfleet-node, e.g. a copy of main's build/bin), PEER (lxc or none), NOFILE (the
# descriptor limit the agent runs with, default the unit's 1048576).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/build}
N=100 SECS=60 ROUNDS=1
while getopts n:s:r: o; do
    case $o in
    n) N=$OPTARG ;;
    s) SECS=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    *) exit 2 ;;
    esac
done
PEER=${PEER:-lxc}
# The address each guest gets: auto (from the local cluster's IPv4 pool, a
# /24: up to 250 guests) or v6 (fd00:87::100 + i, in its IPv6 pool).
IP=${IP:-auto}
[ "$(id -u)" = 0 ] || { echo "agent.sh: needs root" >&2; exit 1; }
for p in vfleet vfleet-master vfleet-node; do
    [ -x "$BUILD/bin/$p" ] || { echo "agent.sh: no $BUILD/bin/$p" >&2; exit 1; }
done
[ -z "${OLD_BIN:-}" ] || [ -x "$OLD_BIN/vfleet-node" ] || { echo "agent.sh: no $OLD_BIN/vfleet-node" >&2; exit 1; }

# The packaged unit's descriptor limit (LimitNOFILE=1048576), which the
# agent's local cluster inherits from this shell: under a smaller one the
# agent holds the usage files of only some guests (a quarter of the soft
# limit) and opens the others' by path each sample. NOFILE= overrides it.
ulimit -n "${NOFILE:-1048576}" 2>/dev/null || echo "agent.sh: keeping ulimit -n $(ulimit -n)" >&2

T=$(mktemp -d /tmp/vfleet-agentbench.XXXXXX)
export VFLEET_LOCAL_DIR=$T/c VFLEET_LOCAL_PREFIX=ab$$h
# Two free loopback ports below the ephemeral range.
port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
VFLEET_LOCAL_PORT=$(port)
VFLEET_LOCAL_ZPORT=$(port)
[ "$VFLEET_LOCAL_ZPORT" != "$VFLEET_LOCAL_PORT" ] || VFLEET_LOCAL_ZPORT=$((VFLEET_LOCAL_PORT + 1))
export VFLEET_LOCAL_PORT VFLEET_LOCAL_ZPORT
export VFLEET_MASTER=unix:$T/c/api.sock
export VFLEET_MASTER_ARGS="--overcommit-cpu 1000 --overcommit-memory 1000 --overcommit-disk 1000"
export VFLEET_NODE_ARGS="--usage-interval 1"
NODE=${VFLEET_LOCAL_PREFIX}1
LXCP=$T/lxc
declare -a LXC_NAMES=()

cleanup() {
    set +e
    trap '' HUP INT PIPE TERM
    for c in "${LXC_NAMES[@]}"; do lxc-stop -k -P "$LXCP" -n "$c" >/dev/null 2>&1; done
    VFLEET_BIN=$BUILD/bin "$top/deploy/local-cluster" down --purge >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bin_dir NAME NODE_BIN: this build's programs with NODE_BIN's vfleet-node.
bin_dir() {
    mkdir -p "$T/bin-$1"
    ln -sf "$BUILD/bin/vfleet" "$BUILD/bin/vfleet-master" "$T/bin-$1/"
    ln -sf "$2/vfleet-node" "$T/bin-$1/vfleet-node"
    echo "$T/bin-$1"
}
NEW_BIN=$(bin_dir new "$BUILD/bin")
[ -z "${OLD_BIN:-}" ] || OLD_BIN=$(bin_dir old "$OLD_BIN")
vf() { "$BUILD/bin/vfleet" "$@"; }
running() { vf --json guest ls --state running | jq '.guests | length'; }

# ticks PID: user + system clock ticks of PID itself.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# mem PID: "RSS PSS ANON" in KiB.
mem() { awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Anonymous:/{a=$2} END{print r, p, a}' "/proc/$1/smaps_rollup"; }

# measure LABEL PID...: CPU over SECS and memory of the PIDs together.
measure() {
    local label=$1 t0=0 t1=0 p r=0 s=0 a=0 hz
    shift
    hz=$(getconf CLK_TCK)
    for p in "$@"; do t0=$((t0 + $(ticks "$p"))); done
    sleep "$SECS"
    for p in "$@"; do
        t1=$((t1 + $(ticks "$p")))
        read -r rr ss aa < <(mem "$p")
        r=$((r + rr)) s=$((s + ss)) a=$((a + aa))
    done
    printf '%-22s %6d %9.2f %9.2f %9.2f %8.2f  (load %s)\n' "$label" "$#" "$(bc -l <<<"$r/1024")" \
        "$(bc -l <<<"$s/1024")" "$(bc -l <<<"$a/1024")" \
        "$(bc -l <<<"100 * ($t1 - $t0) / $hz / $SECS")" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# helpers LABEL: the agent's helper processes, measured over the same
# SECONDS: its spawner (vfleet-spawner, a child of the agent, and the
# spawner's own child) and the guests' console keepers (vfleet-console, one
# per running guest, in the guest's cgroups), each group summed.
helpers() {
    local agent sp cons
    agent=$(cat "$T/c/$NODE/agent.pid")
    mapfile -t sp < <(pgrep -x vfleet-spawner | while read -r p; do
        ppid=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || continue
        gp=$(awk '{print $4}' "/proc/$ppid/stat" 2>/dev/null)
        [ "$ppid" = "$agent" ] || [ "$gp" = "$agent" ] && echo "$p"
    done)
    mapfile -t cons < <(pgrep -x vfleet-console | while read -r p; do
        grep -q "/vfleet-$NODE/" "/proc/$p/cgroup" 2>/dev/null && echo "$p"
    done)
    [ "${#sp[@]}" = 0 ] || measure "$1 spawner" "${sp[@]}"
    [ "${#cons[@]}" = 0 ] || measure "$1 consoles" "${cons[@]}"
}

# agent_on BIN: (re)starts the node's agent from BIN, waits for its guests.
agent_on() {
    local pidf=$T/c/$NODE/agent.pid
    if [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
        kill "$(cat "$pidf")"
        while kill -0 "$(cat "$pidf")" 2>/dev/null; do sleep 0.1; done
    fi
    VFLEET_BIN=$1 "$top/deploy/local-cluster" up --nodes 1 >>"$T/cluster.log" 2>&1
    for _ in $(seq 600); do
        [ "$(vf --json node show "$NODE" | jq -r .state)" = ready ] && break
        sleep 0.5
    done
    sleep 20
}

# create_all: N guests through the API, all running, then 20 s of settling.
create_all() {
    for i in $(seq "$N"); do
        ip=$IP
        [ "$IP" != v6 ] || ip=fd00:87::$(printf %x $((i + 256)))
        vf guest create "ab-$i" --template busybox --cpu 0.01 --memory 32M --disk 64M --ip "$ip" >/dev/null
    done
    for _ in $(seq 1200); do
        [ "$(running)" -ge "$N" ] && break
        sleep 1
    done
    [ "$(running)" -ge "$N" ] || { echo "agent.sh: only $(running) of $N guests run" >&2; exit 1; }
    sleep 20
}

# destroy_all: every guest destroyed, and gone from the master.
destroy_all() {
    for i in $(seq "$N"); do vf guest rm "ab-$i" >/dev/null; done
    for _ in $(seq 1200); do
        [ "$(vf --json guest ls | jq '.guests | length')" = 0 ] && break
        sleep 1
    done
}

# What a burst of N creates leaves in the agent that made them: with
# OLD_BIN, its agent creates them first, is measured, and they are
# destroyed; then this build's agent creates them again.
FIRST_BIN=$NEW_BIN
[ -z "${OLD_BIN:-}" ] || FIRST_BIN=$OLD_BIN
VFLEET_BIN=$FIRST_BIN "$top/deploy/local-cluster" up --nodes 1 >>"$T/cluster.log" 2>&1
for _ in $(seq 600); do
    [ "$(vf --json node show "$NODE" 2>/dev/null | jq -r .state)" = ready ] && break
    sleep 0.5
done
echo "agent.sh: $N guests on $NODE (load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-22s %6s %9s %9s %9s %8s\n' "" procs rss_MiB pss_MiB anon_MiB cpu_%
if [ -n "${OLD_BIN:-}" ]; then
    create_all
    measure "old, after creating" "$(cat "$T/c/$NODE/agent.pid")"
    destroy_all
    agent_on "$NEW_BIN"
fi
create_all
measure "new, after creating" "$(cat "$T/c/$NODE/agent.pid")"
helpers "new,"
for r in $(seq "$ROUNDS"); do
    if [ -n "${OLD_BIN:-}" ]; then
        agent_on "$OLD_BIN"
        measure "old, restarted r$r" "$(cat "$T/c/$NODE/agent.pid")"
        [ "$r" != 1 ] || helpers "old,"
    fi
    agent_on "$NEW_BIN"
    measure "new, restarted r$r" "$(cat "$T/c/$NODE/agent.pid")"
done

[ "$PEER" = lxc ] || exit 0
command -v lxc-start >/dev/null || { echo "agent.sh: no lxc-start (apt-get install lxc)" >&2; exit 0; }
tpl=$T/c/templates/busybox
mkdir -p "$LXCP"
for i in $(seq "$N"); do
    c=lx-$i
    mkdir -p "$LXCP/$c"
    cat >"$LXCP/$c/config" <<EOF
lxc.uts.name = $c
lxc.rootfs.path = dir:$tpl
lxc.rootfs.options = ro
lxc.mount.auto = proc:mixed sys:ro
lxc.net.0.type = empty
lxc.init.cmd = /bin/sleep 1000000
EOF
    LXC_NAMES+=("$c")
    lxc-start -P "$LXCP" -n "$c" -d
done
sleep 20
mapfile -t mons < <(pgrep -f "^\[lxc monitor\] $LXCP ")
measure "lxc monitors" "${mons[@]}"
