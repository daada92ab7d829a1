#!/usr/bin/env bash
# vfleet --help says "vfleet GROUP --help shows a group's commands and
# options": every group it lists answers --help (and -h) with its usage on
# standard output and exit 0, and names no other group's usage.
set -euo pipefail
bin=${VFLEET_BIN:?}
fail() { echo "FAIL: $*" >&2; exit 1; }

top=$("$bin/vfleet" --help)
# The groups: the words that start the lines of the "Groups:" block.
groups=$(awk '/^Groups:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' <<<"$top")
n=$(wc -w <<<"$groups")
[ "$n" -ge 10 ] || fail "only $n groups found in vfleet --help: $groups"
for g in $groups; do
    for h in --help -h; do
        rc=0
        out=$("$bin/vfleet" "$g" "$h" 2>&1 </dev/null) || rc=$?
        [ $rc -eq 0 ] || fail "vfleet $g $h exits $rc: $out"
        [[ "$out" == *"Usage: vfleet $g"* ]] || fail "vfleet $g $h prints no usage of $g: $out"
    done
done
echo "vfleet: $n groups answer --help and -h"

# --version: every program prints its name and the one version
# (common/version.h, which CMakeLists.txt reads for the packages), exit 0.
src=${VFLEET_SOURCE_DIR:?}
version=$(sed -n 's/^#define VFLEET_VERSION "\(.*\)"$/\1/p' "$src/common/version.h")
[ -n "$version" ] || fail "no VFLEET_VERSION in common/version.h"
for prog in vfleet vfleet-master vfleet-node; do
    rc=0
    out=$("$bin/$prog" --version 2>&1 </dev/null) || rc=$?
    [ $rc -eq 0 ] || fail "$prog --version exits $rc: $out"
    [ "$out" = "$prog $version" ] || fail "$prog --version prints \"$out\", not \"$prog $version\""
done
echo "vfleet, vfleet-master, vfleet-node: --version prints $version"
