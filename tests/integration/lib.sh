# Shared helpers for integration scenarios. Each scenario is one ctest; it
# runs real node agents with real guests, all under a scratch directory that
# the EXIT trap removes, with every kernel object it made torn down.
#
# Environment (set by ctest): VFLEET_BIN (build/bin), VFLEET_TESTBIN
# (build/tests), VFLEET_SOURCE_DIR.
set -euo pipefail

: "${VFLEET_BIN:?}" "${VFLEET_TESTBIN:?}" "${VFLEET_SOURCE_DIR:?}"

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
    bit=$(python3 -c 'import sys; print({"sys_resource":24}[sys.argv[1]])' "$1")
    (( (16#$(awk '/^CapBnd/ {print $2}' /proc/self/status) >> bit) & 1 ))
}

# A worker command line unique to this run, so process checks never see
# another scenario's processes (scenarios may run at the same time).
WORKER="sleep 9$RANDOM$RANDOM"

# A uuid for a guest id.
uuid() { cat /proc/sys/kernel/random/uuid; }

build_template() {
    if [ ! -x "$TEMPLATES/busybox/sbin/init" ]; then
        "$VFLEET_SOURCE_DIR/deploy/templates/busybox" "$TEMPLATES/busybox" >/dev/null
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

# json_get JSON KEY: a top-level value of a flat JSON object (python3 is on
# every Debian machine through apt's own dependencies? No: use jq-free grep).
json_get() {
    python3 -c 'import json,sys; v=json.loads(sys.argv[1]); k=sys.argv[2].split("."); 
for p in k: v=v[p]
print(str(v).lower() if isinstance(v,bool) else v)' "$1" "$2"
}

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

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# local_cluster ARGS...: deploy/local-cluster with this scenario's environment.
# Nodes join with tokens and talk CurveZMQ across the fabric, as in every
# local cluster; CL_LINK=ipc puts them on the master's ipc:// socket instead.
local_cluster() {
    VFLEET_LOCAL_DIR=$CL VFLEET_LOCAL_PORT=$CL_PORT VFLEET_LOCAL_PREFIX=$CL_PREFIX \
        VFLEET_LOCAL_ZPORT=$CL_ZPORT VFLEET_LOCAL_LINK=${CL_LINK:-curve} \
        VFLEET_MASTER_ARGS="--log-level debug ${MASTER_ARGS:-}" \
        VFLEET_NODE_ARGS="--heartbeat 500 --usage-interval 1 --log-level debug ${NODE_ARGS:-}" \
        VFLEET_SIM_ARGS="${SIM_ARGS:-}" VFLEET_BIN=$VFLEET_BIN \
        "$VFLEET_SOURCE_DIR/deploy/local-cluster" "$@"
}

start_cluster() {
    local nodes=$1 sim=${2:-0}
    CL_PORT=${CL_PORT:-$(free_port)}
    CL_ZPORT=${CL_ZPORT:-$(free_port)}
    # Scenarios run as root on the master's host: the API's Unix socket.
    export VFLEET_MASTER=unix:$CL/api.sock
    [ -x "$VFLEET_BIN/vfleet-master" ] || {
        echo "SKIP: no vfleet-master built"
        exit 77
    }
    CL_STARTED=1
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

# vf ARGS...: the CLI against this scenario's master.
vf() { "$VFLEET_BIN/vfleet" "$@"; }
# api_curl ARGS... PATH: curl to the master's API as root (its Unix socket).
api_curl() {
    local path=${*: -1}
    curl --unix-socket "${VFLEET_MASTER#unix:}" "${@:1:$#-1}" "http://localhost$path"
}

# pyj EXPR: evaluates a Python expression over the JSON on stdin (bound to d).
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
guest_field() { vf --json guest show "$1" | pyj "d[\"$2\"]"; }
# node_state NAME: a node's state as the master reports it.
node_state() { vf --json node show "$1" | pyj 'd["state"]'; }
# count_state STATE: guests the master lists in STATE.
count_state() { vf --json guest ls --state "$1" | pyj 'len(d["guests"])'; }
all_running() { [ "$(count_state running)" -eq "$1" ]; }
is_node_state() { [ "$(node_state "$1")" = "$2" ]; }

# Stops every process, guest, mount, cgroup and namespace the cluster made.
cluster_teardown() {
    [ "$CL_STARTED" = 1 ] || return 0
    local f rec pid id
    for f in "$CL"/*/agent.pid "$CL"/master.pid "$CL"/relay.pid; do
        [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    sleep 0.2
    for rec in "$CL"/*/guests/*.json; do
        [ -f "$rec" ] || continue
        pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runtime"]["pid"])' "$rec" 2>/dev/null)
        [ -n "$pid" ] && [ "$pid" != 0 ] && kill -9 "$pid" 2>/dev/null
        # A guest started just before its agent died has no pid in its record
        # yet: whatever runs in its cgroups goes too.
        id=$(basename "$rec" .json)
        for procs in /sys/fs/cgroup/*/vfleet/"$id"/cgroup.procs; do
            [ -r "$procs" ] && xargs -r kill -9 <"$procs" 2>/dev/null
        done
    done
    sleep 0.3
    grep " $CL/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    for rec in "$CL"/*/guests/*.json; do
        [ -f "$rec" ] || continue
        id=$(basename "$rec" .json)
        for c in /sys/fs/cgroup/*/vfleet/"$id"; do
            [ -d "$c" ] && rmdir "$c" 2>/dev/null
        done
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^vf-$CL_PREFIX"); do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${1:-0}" -ne 0 ] && [ "${1:-0}" -ne 77 ]; then
        for f in "$CL"/master.log "$CL"/*/agent.log "$T"/cluster.log; do
            [ -f "$f" ] && { echo "---- $f (tail)"; tail -40 "$f"; }
        done
    fi
}

cleanup() {
    local rc=$?
    set +e
    # Nothing may interrupt the clean-up itself.
    trap '' HUP INT PIPE TERM
    cluster_teardown $rc
    for p in "${AGENT_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.2
    # Kill every guest this scenario started: their inits are recorded in the stores.
    for rec in "$T"/*/guests/*.json; do
        [ -f "$rec" ] || continue
        pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("runtime",{}).get("pid",0))' "$rec" 2>/dev/null)
        [ -n "$pid" ] && [ "$pid" != 0 ] && kill -9 "$pid" 2>/dev/null
    done
    sleep 0.3
    # Unmount what is left under the scratch dir, deepest first, then free loops.
    grep " $T/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    for c in /sys/fs/cgroup/*/vfleet/*; do
        [ -d "$c" ] || continue
        if grep -q "$(basename "$c")" <(ls "$T"/*/guests/ 2>/dev/null); then
            rmdir "$c" 2>/dev/null
        fi
    done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$T"/*/agent.log; do
            [ -f "$f" ] && { echo "---- $f (tail)"; tail -40 "$f"; }
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
