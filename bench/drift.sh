#!/usr/bin/env bash
# The time from a node's change to the master's view of it, over the local
# cluster's tcp:// links (deploy/local-cluster VFLEET_LOCAL_LINK=tcp), for the
# programs in VFLEET_BIN (run it once per build to compare):
#   exit      a guest halts by itself (init gets SIGUSR2, as busybox poweroff
#             sends it) with the link up: until the API says stopped;
#   cut-exit  the same during a 12 s cut of the node's link (past the down
#             threshold): from healing until the API says stopped (and
#             whether the guest then stays stopped);
#   rejoin    from healing until the node is ready again.
# Polls the API with curl every 20 ms; ROUNDS rounds (default 5), median and
# worst printed. Needs root; run from a built tree:
#   VFLEET_BIN=build/bin bench/drift.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export VFLEET_SOURCE_DIR=${VFLEET_SOURCE_DIR:-$(dirname "$here")}
export VFLEET_BIN=${VFLEET_BIN:-$VFLEET_SOURCE_DIR/build/bin}
export VFLEET_TESTBIN=${VFLEET_TESTBIN:-$VFLEET_SOURCE_DIR/build/tests}
# shellcheck source=../tests/integration/lib.sh
. "$VFLEET_SOURCE_DIR/tests/integration/lib.sh"
ROUNDS=${ROUNDS:-5}

CL_LINK=tcp
MASTER_ARGS="--heartbeat-ms 500 --suspect-after 5 --down-after 10"
start_cluster 1
h1=$(node 1)
ms() { echo $(($(date +%s%N) / 1000000)); }
state_is() { api_curl -sf "/v1/guests/$1" | grep -q "\"state\": *\"$2\""; }
node_is() { api_curl -sf "/v1/nodes/$1" | grep -q "\"state\": *\"$2\""; }
# until_ms CMD...: polls CMD every 20 ms (at most 60 s); prints the ms it took.
until_ms() {
    local t0 n=0
    t0=$(ms)
    until "$@"; do
        n=$((n + 1))
        [ $n -lt 3000 ] || { echo 60000; return; }
        sleep 0.02
    done
    echo $(($(ms) - t0))
}
init_of() { "$VFLEET_BIN/vfleet-node" ls --json --state-dir "$(node_dir "$h1")" | pyj "[g['pid'] for g in d if g['name']=='$1'][0]"; }
stats() { sort -n | awk '{v[NR]=$1} END {printf "median %d ms, worst %d ms (%d rounds)", v[int((NR+1)/2)], v[NR], NR}'; }

exit_t=() cut_t=() rejoin_t=() restarted=0
for r in $(seq "$ROUNDS"); do
    g=b$r
    vf guest create "$g" --template busybox --memory 64M --disk 32M --node "$h1" >/dev/null
    wait_for 60 "$g running" state_is "$g" running
    kill -USR2 "$(init_of "$g")"
    exit_t+=("$(until_ms state_is "$g" stopped)")
    vf guest start "$g" >/dev/null 2>&1 || true
    wait_for 60 "$g running again" state_is "$g" running
    cut_node 1
    wait_for 30 "$h1 down" node_is "$h1" down
    kill -USR2 "$(init_of "$g")"
    sleep 1
    heal_node 1
    t0=$(ms)
    until node_is "$h1" ready; do
        [ $(($(ms) - t0)) -lt 60000 ] || break
        sleep 0.02
    done
    rejoin_t+=("$(($(ms) - t0))")
    until state_is "$g" stopped; do
        [ $(($(ms) - t0)) -lt 60000 ] || break
        sleep 0.02
    done
    cut_t+=("$(($(ms) - t0))")
    sleep 3
    state_is "$g" running && restarted=$((restarted + 1))
    vf guest stop "$g" >/dev/null 2>&1 || true
done
echo "exit (link up):           $(printf '%s\n' "${exit_t[@]}" | stats)"
echo "exit during a cut, healed: $(printf '%s\n' "${cut_t[@]}" | stats)"
echo "node ready after healing:  $(printf '%s\n' "${rejoin_t[@]}" | stats)"
echo "guests started again by the master after halting during the cut: $restarted of $ROUNDS"
