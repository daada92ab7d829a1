# Shared helpers for integration scenarios. Each scenario is one ctest; it
# runs real node agents with real guests, all under a scratch directory that
# the EXIT trap removes, with every kernel object it made torn down.
#
# Environment (set by ctest): VFLEET_BIN (build/bin), VFLEET_TESTBIN
# (build/tests), VFLEET_SOURCE_DIR; VFLEET_VM=1 inside the VM test host
# (deploy/vm-test), and VFLEET_TEMPLATE_SEED there: a directory of built
# templates copied instead of built (under emulation a build takes long). JSON is read with jq; the cgroup paths come from
# cg_path, so a scenario runs on v1, hybrid and pure v2 hosts alike.
set -euo pipefail

: "${VFLEET_BIN:?}" "${VFLEET_TESTBIN:?}" "${VFLEET_SOURCE_DIR:?}"
# shellcheck source=../../deploy/teardown-lib.sh
. "$VFLEET_SOURCE_DIR/deploy/teardown-lib.sh"

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: integration scenarios need root"
    exit 77
fi

T=$(mktemp -d /tmp/vft.XXXXXX)
TEMPLATES=$T/templates
declare -a AGENT_PIDS=()
declare -a NETNS_LIST=()
FAILED=0

log() { printf '%s [%s] %s\n' "$(date +%T)" "${0##*/}" "$*"; }
fail() {
    log "FAIL: $*"
    FAILED=1
    exit 1
}
ok() { log "ok: $*"; }

# alive PID: the process exists and is not a zombie (an exited init that its
# parent has not reaped yet is dead for every purpose).
alive() {
    [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# has_cap NAME: the host's bounding set holds CAP_NAME (some VMs drop some).
has_cap() {
    local bit
    case $1 in
    sys_admin) bit=21 ;;
    sys_resource) bit=24 ;;
    *) fail "has_cap: unknown capability $1" ;;
    esac
    (( (16#$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> bit) & 1 ))
}

# The host's cgroup layout: v2 (pure unified), or v1 (v1 or hybrid: the
# controllers are on v1 hierarchies).
cg_mode() {
    [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && echo v2 || echo v1
}

# cg_path ID FILE: the path of one of guest ID's cgroup files. FILE is named
# as on the host's layout (memory.max on v2, memory.limit_in_bytes on v1);
# on v1 its prefix names the hierarchy, and cgroup.procs is the pids one's.
cg_path() {
    local id=$1 file=$2 ctl p
    # The node's prefix: "vfleet", or a local cluster node's "vfleet-...".
    if [ "$(cg_mode)" = v2 ]; then
        for p in /sys/fs/cgroup/vfleet*/"$id"; do [ -d "$p" ] && break; done
        echo "$p/$file"
        return
    fi
    ctl=${file%%.*}
    [ "$ctl" = cgroup ] && ctl=pids
    for p in /sys/fs/cgroup/"$ctl"/vfleet*/"$id"; do [ -d "$p" ] && break; done
    echo "$p/$file"
}

# cg_left ID: prints guest ID's cgroup directories that still exist, in any
# layout (empty when none is left).
cg_left() { teardown_cgroup_dirs "$1"; }

# A worker command line unique to this run, so process checks never see
# another scenario's processes (scenarios may run at the same time).
WORKER="sleep 9$RANDOM$RANDOM"

# A uuid for a guest id.
uuid() { cat /proc/sys/kernel/random/uuid; }

# build_template [DIR]: the busybox template in DIR (default $TEMPLATES).
build_template() {
    local dir=${1:-$TEMPLATES}
    [ -x "$dir/busybox/sbin/init" ] && return 0
    if [ -x "${VFLEET_TEMPLATE_SEED:-}/busybox/sbin/init" ]; then
        mkdir -p "$dir"
        cp -a "$VFLEET_TEMPLATE_SEED/busybox" "$dir/"
    else
        "$VFLEET_SOURCE_DIR/deploy/templates/busybox" "$dir/busybox" >/dev/null
    fi
}

# start_agent NAME: starts a node agent with its own state dir and endpoint.
start_agent() {
    local name=$1
    mkdir -p "$T/$name"
    ln -sfn "$TEMPLATES" "$T/$name/templates"
    # AGENT_NETNS runs the agent in that network namespace (in the root mount
    # namespace, unlike `ip netns exec`); AGENT_CONFIG passes a config file.
    ${AGENT_NETNS:+nsenter --net=/run/netns/$AGENT_NETNS --} \
        "$VFLEET_BIN/vfleet-node" run --name "$name" --master "ipc://$T/$name/master.sock" \
        --state-dir "$T/$name" --heartbeat 500 --usage-interval 1 --log-level debug \
        ${AGENT_CONFIG:+--config "$AGENT_CONFIG"} \
        >>"$T/$name/agent.log" 2>&1 &
    AGENT_PIDS+=($!)
    eval "AGENT_PID_${name//-/_}=$!"
}

# netns NAME: creates a network namespace the cleanup deletes.
netns() {
    ip netns add "$1"
    NETNS_LIST+=("$1")
    ip -n "$1" link set lo up
}

agent_pid() { eval "echo \${AGENT_PID_${1//-/_}}"; }

# nodectl NAME ARGS...: one command to the agent NAME through the protocol.
nodectl() {
    local name=$1
    shift
    "$VFLEET_TESTBIN/nodectl" -e "ipc://$T/$name/master.sock" -n "$name" -t 60 "$@"
}

# spec NAME ID [JSON-LIMITS] [EXTRA-JSON]: writes a spec file, prints its path.
spec() {
    local name=$1 id=$2 limits=${3:-'{}'} extra=${4:-}
    local f=$T/spec-$name-$RANDOM.json
    printf '{"id":"%s","name":"%s","generation":%s,"template":"busybox","limits":%s%s}\n' \
        "$id" "$name" "${GEN:-1}" "$limits" "${extra:+,$extra}" >"$f"
    echo "$f"
}

# json_get JSON KEY: one value of a JSON object; KEY may be a dotted path
# (failcnt.procs). Strings print bare, true/false in lower case.
json_get() {
    jq -r --arg k "$2" 'getpath($k | split(".")) | if type == "object" or type == "array" then tojson else . end' <<<"$1"
}

# jv FILTER: a jq filter over the JSON on stdin; strings print bare, arrays
# and objects as compact JSON, booleans as true/false.
jv() { jq -rc "$1"; }

# ---- cluster helpers: a master and node agents through deploy/local-cluster ----
#
# start_cluster NODES [SIM] starts a master and NODES real node agents, each in
# its own network namespace (vf-<prefix>N, the prefix holds this shell's pid so
# parallel runs never share one), plus SIM simulated nodes, all under $T/c,
# with the master's HTTP API on a free loopback port. MASTER_ARGS and
# NODE_ARGS add flags. The EXIT trap tears everything down (cluster_teardown).
CL=$T/c
CL_PREFIX=t$$h
CL_STARTED=0

# free_port: a loopback TCP port nothing listens on, below the kernel's
# ephemeral range (32768 up) so no outgoing connection takes it meanwhile.
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        ss -Hltn "sport = :$p" | grep -q . || {
            echo "$p"
            return 0
        }
    done
    fail "no free loopback port"
}

# local_cluster ARGS...: deploy/local-cluster with this scenario's environment.
# Nodes join with tokens and talk CurveZMQ over TCP across the fabric, as in
# every local cluster; CL_LINK=ipc puts them on the master's ipc:// socket.
# Inside the VM test host the default is ipc: its root has no python3 for
# deploy/netns-relay, and what it tests there is the kernel, not the link.
[ "${VFLEET_VM:-}" = 1 ] && CL_DEFAULT_LINK=ipc || CL_DEFAULT_LINK=curve
local_cluster() {
    VFLEET_LOCAL_DIR=$CL VFLEET_LOCAL_PORT=$CL_PORT VFLEET_LOCAL_PREFIX=$CL_PREFIX \
        VFLEET_LOCAL_ZPORT=$CL_ZPORT \
        VFLEET_MASTER_ARGS="--log-level debug ${MASTER_ARGS:-}" \
        VFLEET_NODE_ARGS="--heartbeat 500 --usage-interval 1 --log-level debug ${NODE_ARGS:-}" \
        VFLEET_SIM_ARGS="${SIM_ARGS:-}" VFLEET_BIN=$VFLEET_BIN VFLEET_LOCAL_LINK=${CL_LINK:-$CL_DEFAULT_LINK} \
        "$VFLEET_SOURCE_DIR/deploy/local-cluster" "$@"
}

start_cluster() {
    local nodes=$1 sim=${2:-0}
    CL_PORT=${CL_PORT:-$(free_port)}
    CL_ZPORT=${CL_ZPORT:-$(free_port)}
    [ "$CL_ZPORT" != "$CL_PORT" ] || CL_ZPORT=$(free_port)
    # Scenarios run as root on the master's host: the API's Unix socket.
    export VFLEET_MASTER=unix:$CL/api.sock
    [ -x "$VFLEET_BIN/vfleet-master" ] || {
        echo "SKIP: no vfleet-master built"
        exit 77
    }
    CL_STARTED=1
    [ "$nodes" -gt 0 ] && [ -n "${VFLEET_TEMPLATE_SEED:-}" ] && build_template "$CL/templates"
    local_cluster up --nodes "$nodes" --sim "$sim" >>"$T/cluster.log" 2>&1 ||
        fail "local-cluster up failed: $(tail -5 "$T/cluster.log")"
    ok "cluster up: $nodes nodes, $sim simulated, $VFLEET_MASTER"
}

# node N: the name of real node N.
node() { echo "$CL_PREFIX$1"; }
node_dir() { echo "$CL/$1"; }
cl_agent_pid() { cat "$CL/$1/agent.pid"; }
cl_master_pid() { cat "$CL/master.pid"; }
# kill9_wait PID: kill -9 and wait until the process is gone (or a zombie).
kill9_wait() {
    kill -9 "$1"
    for _ in $(seq 100); do
        alive "$1" || return 0
        sleep 0.1
    done
    fail "process $1 survived kill -9"
}
# await_gone SECONDS PID...: returns once none of the PIDs runs (a zombie
# counts as gone), or after SECONDS; it never fails, for the clean-up, which
# must go on whatever is left (teardown_guests kills what still runs).
await_gone() {
    local end=$((SECONDS + $1)) p
    shift
    while [ $SECONDS -lt $end ]; do
        for p in "$@"; do
            alive "$p" && {
                sleep 0.05
                continue 2
            }
        done
        return 0
    done
}

# vf ARGS...: the CLI against this scenario's master.
vf() { "$VFLEET_BIN/vfleet" "$@"; }
# api_curl ARGS... PATH: curl to the master's API as root (its Unix socket).
api_curl() {
    local path=${*: -1}
    curl --unix-socket "${VFLEET_MASTER#unix:}" "${@:1:$#-1}" "http://localhost$path"
}

# pyj EXPR: evaluates a Python expression over the JSON on stdin (bound to d)
# (the move, drain, export and import scenarios; the others use jq).
pyj() {
    python3 -c 'import json,sys,collections
d=json.load(sys.stdin)
v=eval(sys.argv[1])
print(json.dumps(v) if isinstance(v,(dict,list)) else (str(v).lower() if isinstance(v,bool) else v))' "$1"
}

# wait_for SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local end=$((SECONDS + secs))
    while ! "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.2
    done
}

# guest_field NAME FIELD: one field of a guest as the master reports it.
guest_field() { vf --json guest show "$1" | jq -rc --arg f "$2" '.[$f]'; }
# node_state NAME: a node's state as the master reports it.
node_state() { vf --json node show "$1" | jv '.state'; }
# count_state STATE: guests the master lists in STATE.
count_state() { vf --json guest ls --state "$1" | jv '.guests | length'; }
all_running() { [ "$(count_state running)" -eq "$1" ]; }
is_node_state() { [ "$(node_state "$1")" = "$2" ]; }

# cut_node N / heal_node N: node N's link to the master dropped (both ways)
# by nftables in its own namespace, and restored. Needs the default link
# (CurveZMQ over the fabric), not CL_LINK=ipc.
cut_node() {
    ip netns exec "vf-$(node "$1")" nft -f - <<EOF
table inet vftestcut {
    chain out { type filter hook output priority -10; ip daddr 172.31.0.2 drop; }
    chain in { type filter hook input priority -10; ip saddr 172.31.0.2 drop; }
}
EOF
}
heal_node() { ip netns exec "vf-$(node "$1")" nft delete table inet vftestcut; }

# Stops every process, guest, mount, cgroup and namespace the cluster made.
cluster_teardown() {
    [ "$CL_STARTED" = 1 ] || return 0
    local f ns c
    local -a pids=()
    for f in "$CL"/*/agent.pid "$CL"/master.pid; do
        [ -s "$f" ] && pids+=("$(cat "$f")") && kill -9 "${pids[-1]}" 2>/dev/null
    done
    # The fabric link's relay (the leader of its own process group).
    [ -s "$CL/link.pid" ] && pids+=("$(cat "$CL/link.pid")") && kill -9 -- "-${pids[-1]}" 2>/dev/null
    # The daemons gone before their guests, mounts and cgroups are torn down
    # (an agent still running would make more of them).
    await_gone 10 "${pids[@]}"
    teardown_guests "$CL"
    # A guest's cgroups left in a node's directory: teardown_guests goes by
    # the guests' records, and a scenario may remove one behind its agent
    # (cluster_partition's drift), which left an empty cgroup of that guest
    # in every hierarchy after each run.
    for c in /sys/fs/cgroup/*/vfleet-"$CL_PREFIX"*/*/ /sys/fs/cgroup/unified/vfleet-"$CL_PREFIX"*/*/; do
        [ -d "$c" ] || continue
        teardown_kill_cgroup "$(basename "$c")"
        teardown_rmdir_cgroup "$(basename "$c")"
    done
    # Each node's own cgroup directory (local-cluster's cgroup_prefix).
    for c in /sys/fs/cgroup/*/vfleet-"$CL_PREFIX"* /sys/fs/cgroup/unified/vfleet-"$CL_PREFIX"*; do
        [ -d "$c" ] && rmdir "$c" 2>/dev/null
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^vf-$CL_PREFIX"); do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${1:-0}" -ne 0 ] && [ "${1:-0}" -ne 77 ]; then
        for f in "$CL"/master.log "$CL"/*/agent.log "$T"/cluster.log; do
            log_tail "$f"
        done
    fi
}

# log_tail FILE: a failed scenario's log, its last 60 lines but those a
# daemon repeats every second (a usage sample, a usage report that could not
# go), which would hide what happened a minute before the failure.
log_tail() {
    [ -f "$1" ] || return 0
    echo "---- $1 (tail, without the periodic usage lines)"
    grep -v -E 'job usage done|send usage failed' "$1" | tail -60
}

cleanup() {
    local rc=$?
    set +e
    # Nothing may interrupt the clean-up itself.
    trap '' HUP INT PIPE TERM
    cluster_teardown $rc
    for p in "${AGENT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    # The agents gone (they exit at SIGTERM) before what they made is torn
    # down.
    await_gone 10 "${AGENT_PIDS[@]}"
    # Every guest this scenario started (the stores name them), then what is
    # mounted under the scratch dir.
    teardown_guests "$T"
    teardown_mounts "$T"
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$T"/*/agent.log; do
            log_tail "$f"
        done
    fi
    # Network namespaces the scenario made (guests' own die with their inits).
    for ns in "${NETNS_LIST[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
# A scenario stopped by a signal (ctest's timeout, a closed pipe, ^C) still
# cleans up: exiting from these traps runs the EXIT trap.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# guest_inits ID: how many inits guest ID runs: processes in its cgroup that
# are pid 1 of a pid namespace one level below the host's (the console
# reader is in the cgroup but not in the guest's pid namespace).
guest_inits() {
    local p n=0
    for p in $(cat "$(cg_path "$1" cgroup.procs)" 2>/dev/null); do
        awk '/^NSpid:/ {exit !(NF == 3 && $3 == 1)}' "/proc/$p/status" 2>/dev/null && n=$((n + 1))
    done
    echo "$n"
}

# killed_at NODE FUNCTION COMMAND...: NODE's agent killed (-9, by gdb) when
# it reaches FUNCTION while it runs COMMAND (nodectl's, which gets no
# answer).
killed_at() {
    local node=$1 fn=$2 apid gpid
    shift 2
    apid=$(agent_pid "$node")
    gdb -p "$apid" -batch -ex 'set pagination off' -ex "break $fn" -ex continue -ex kill \
        >"$T/gdb.log" 2>&1 &
    gpid=$!
    wait_for 30 "gdb attached to the agent" grep -qE '^TracerPid:[[:space:]]*[1-9]' "/proc/$apid/status"
    "$VFLEET_TESTBIN/nodectl" -e "ipc://$T/$node/master.sock" -n "$node" -t 10 "$@" >/dev/null 2>&1 &&
        fail "$* was answered, the agent not stopped at $fn: $(cat "$T/gdb.log")"
    # gdb kills it at the breakpoint. Once (a CI run) gdb hung after the
    # hit, the agent stopped there for good: if gdb is still there 20 s
    # later and the agent is in a tracing stop (gdb continued it, so only
    # the breakpoint stops it), the agent is killed here.
    for _ in $(seq 200); do
        kill -0 "$gpid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$gpid" 2>/dev/null; then
        grep -qE '^State:[[:space:]]*t' "/proc/$apid/status" ||
            fail "gdb is still there and the agent is not stopped at $fn: $(cat "$T/gdb.log")"
        echo "gdb did not kill the agent stopped at $fn: killing it here"
        kill -9 "$apid"
        kill "$gpid" 2>/dev/null || true
    fi
    wait "$gpid" || true
    wait_for 10 "the agent killed at $fn" sh -c "! kill -0 $apid 2>/dev/null"
}
