#!/usr/bin/env bash
# C5: junk costs strangers, not nodes. An authenticated node's round trip to
# the master (heartbeat and echo, one after the other) is measured alone,
# then while 1,000 raw connections keep sending garbage handshakes to the
# same endpoint (each reopened as soon as the master closes it). The median
# under junk must stay under twice the baseline; the figures are printed. The
# master's warnings about it all stay bounded.
. "$(dirname "$0")/lib.sh"

start_cluster 0 0
EP=tcp://127.0.0.1:$CL_ZPORT
token=$(vf node token create --name rtt1 | head -1)
"$VFLEET_BIN/vfleet-node" join --master "$EP" --token "$token" --name rtt1 --state-dir "$T/rtt1" \
    >/dev/null || fail "join"
rtt() { "$VFLEET_TESTBIN/peerctl" -e "$EP" -k "$T/rtt1/node.key" rtt "$1"; }

rtt 200 >/dev/null || fail "warm-up"
# Four rounds of a baseline and a measurement under junk, one after the
# other, so both see the same machine (it is shared with other work); the
# median of each kind's four medians is compared.
lines_before=$(wc -l <"$CL/master.log")
: >"$T/base" && : >"$T/under"
for round in 1 2 3 4; do
    base=$(rtt 1000) || fail "baseline: $base"
    json_get "$base" median_us >>"$T/base"
    nice -n 19 "$VFLEET_TESTBIN/peerctl" -e "$EP" -t 12 junk 1000 >"$T/junk.json" &
    junk=$!
    sleep 2
    under=$(rtt 1000) || fail "under junk: $under"
    alive "$junk" || fail "the junk ended before the measurement did"
    wait "$junk"
    json_get "$under" median_us >>"$T/under"
    ok "round $round: alone $base; under 1000 junk connections $under; junk $(cat "$T/junk.json")"
done

median() { sort -n "$1" | awk '{a[NR] = $1} END {print (a[2] + a[3]) / 2}'; }
b=$(median "$T/base")
u=$(median "$T/under")
ratio=$(python3 -c "print(round($u / $b, 2))")
python3 -c "import sys; sys.exit(0 if $u < 2 * $b else 1)" ||
    fail "median round trip $u us under junk, $b us without: $ratio x"
warnings=$(tail -n +"$((lines_before + 1))" "$CL/master.log" | grep -c warning || true)
[ "$warnings" -le 40 ] || fail "$warnings warning lines during the junk"
alive "$(cl_master_pid)" && vf health >/dev/null || fail "the master does not answer"
ok "median round trip $b us alone, $u us under junk ($ratio x); $warnings warning lines"
