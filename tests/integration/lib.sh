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

cleanup() {
    local rc=$?
    set +e
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
