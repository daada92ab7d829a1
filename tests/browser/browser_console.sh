#!/usr/bin/env bash
# The operator's console in a browser: a real cluster (tests/integration's
# lib.sh), an admin token, then browser_console.py drives Chromium through
# the UI (two nodes: a guest is moved between them). Screenshots land in
# $VFLEET_SCREENSHOTS (default: screenshots/ in the build directory, so a
# test run leaves the tree clean; refresh the README's with
# VFLEET_SCREENSHOTS=$PWD/docs/screenshots ctest -R browser).
. "$VFLEET_SOURCE_DIR/tests/integration/lib.sh"

# Skipped (77) without Chromium, unless VFLEET_REQUIRE_BROWSER=1 (deploy/test
# sets it after install-deps): then a missing browser is a failure, never a
# skip counted among the passes.
skip_or_fail() {
    if [ "${VFLEET_REQUIRE_BROWSER:-0}" = 1 ]; then
        fail "$1 (VFLEET_REQUIRE_BROWSER=1)"
    fi
    echo "SKIP: $1"
    exit 77
}
for b in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$b" ] || skip_or_fail "$b is missing (deploy/install-deps installs chromium and chromium-driver)"
done
/usr/bin/python3 -c 'import selenium' 2>/dev/null ||
    skip_or_fail "python3-selenium is missing (deploy/install-deps)"

# A guest's leftovers on the second node (a data directory no record
# names, as a create the agent did not finish leaves), there before its
# agent starts, so its hello counts 1 and the nodes page shows it.
leftover_node=$(node 2)
mkdir -p "$(node_dir "$leftover_node")/data/$(uuid)"
start_cluster 2
tok=$(vf token create --role admin --description browser-test) || fail "token create"
url=https://127.0.0.1:$CL_PORT
# A second guest, so the list and its filters have something to show.
# It moves between the nodes later: an address of the shared segment's
# pool, which serves both nodes (an "auto" one comes from the node's own
# pool and cannot follow without renumbering), and a small disk to copy.
vf guest create other --template busybox --memory 64M --disk 64M --cpu 0.1 --ip 10.87.0.30 \
    --label tier=db --wait --timeout 60 >/dev/null || fail "create other"
ok "cluster up, UI at $url"

VFLEET_URL=$url VFLEET_TOKEN_UI=$tok VFLEET_LEFTOVER_NODE=$leftover_node VFLEET_PROFILE=$T/chromium \
    VFLEET_SCREENSHOTS=${VFLEET_SCREENSHOTS:-$VFLEET_TESTBIN/../screenshots} \
    /usr/bin/python3 "$VFLEET_SOURCE_DIR/tests/browser/browser_console.py" || fail "the browser run failed"
ok "the console works in Chromium"
