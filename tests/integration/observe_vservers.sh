#!/usr/bin/env bash
# The FreeVPS views on a real node: the agent's FUSE mount serves setup,
# routes_ipv4 and trafstat to the host and /dev/vservers/self to each
# guest (its own view, read from the caller's cgroup; nothing of the
# others); reading trafstat resets it, through the master's marks, so the
# API's traffic view agrees; vfleet-node vservers prints the same views.
. "$(dirname "$0")/lib.sh"

command -v fusermount3 >/dev/null || [ -e /dev/fuse ] || {
    echo "SKIP: no FUSE on this host"
    exit 77
}
start_cluster 1
N=$(node 1)
V=$CL/$N/vservers
is_fuse() { [ "$(stat -f -c %T "$V")" = fuseblk ] || grep -q " $V fuse" /proc/self/mounts; }
wait_for 10 "the views mounted at $V" is_fuse
ok "the node serves its views at $V"

for g in v1 v2; do
    vf guest create "$g" --template busybox --ip auto --memory 64M --disk 32M --cpu 0.2 --net-in 50mbit \
        --net-out 20mbit --wait >/dev/null || fail "create $g"
done
ctx1=$(guest_field v1 context)
ctx2=$(guest_field v2 context)
ip1=$(vf --json guest show v1 | jv '.ips[0] | split("/")[0]')
ip2=$(vf --json guest show v2 | jv '.ips[0] | split("/")[0]')
[ "$ctx1" -ge 3 ] && [ "$ctx2" -ge 3 ] && [ "$ctx1" != "$ctx2" ] || fail "contexts $ctx1 $ctx2"
ok "v1 is context $ctx1 ($ip1), v2 context $ctx2 ($ip2)"

# setup and routes_ipv4, from the mount and from vfleet-node vservers.
cat "$V/setup" >"$T/setup"
grep -qx 'freevps patch version 1.30-0' "$T/setup" || fail "setup: $(cat "$T/setup")"
grep -qx 'contexts count 2' "$T/setup" && grep -qx 'active contexts count 2' "$T/setup" ||
    fail "setup counts: $(cat "$T/setup")"
cat "$V/routes_ipv4" >"$T/routes"
grep -qx "$ip1 vf[0-9a-f]\{10\} $ctx1" "$T/routes" && grep -qx "$ip2 vf[0-9a-f]\{10\} $ctx2" "$T/routes" ||
    fail "routes_ipv4: $(cat "$T/routes")"
"$VFLEET_BIN/vfleet-node" vservers routes_ipv4 --state-dir "$CL/$N" >"$T/routes.cli" ||
    fail "vfleet-node vservers routes_ipv4"
cmp -s "$T/routes" "$T/routes.cli" || fail "the command and the mount differ"
ok "setup: 2 contexts, 2 active; routes_ipv4 lists both addresses with their contexts"

# trafstat's counters are the master's, from the agent's usage samples (one
# a second here): after traffic, a scenario waits until the master holds a
# sample of v1 that the agent took once the traffic was over (the ping had
# every reply back, so both directions are counted in it). Read through the
# API's traffic view, which does not reset; a read of trafstat would.
sampled_ms() {
    vf --json guest traffic v1 | jv '.sampled | (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)'
}
sampled_since() { [ "$(sampled_ms)" -ge "$1" ]; }
sample_after() {
    local t
    t=$(date +%s%3N)
    wait_for 30 "a usage sample of v1 taken after $1 (at $t ms or later) in the master" sampled_since "$t"
}

# trafstat: traffic between the guests, then read twice: the read resets.
vf guest exec v1 -- ping -c 20 -i 0.05 -s 1000 "$ip2" >/dev/null || fail "ping v1 -> v2"
sample_after "the ping"
cat "$V/trafstat" >"$T/traf1"
head -1 "$T/traf1" | grep -qx 'CONTXT_NUMBER INCOMING OUTGOING' || fail "trafstat header: $(cat "$T/traf1")"
in1=$(awk -v c="$ctx1" '$1 == c {print $2}' "$T/traf1")
out1=$(awk -v c="$ctx1" '$1 == c {print $3}' "$T/traf1")
[ "${out1:-0}" -gt 20000 ] && [ "${in1:-0}" -gt 20000 ] || fail "trafstat of v1: $(cat "$T/traf1")"
cat "$V/trafstat" >"$T/traf2"
out2=$(awk -v c="$ctx1" '$1 == c {print $3}' "$T/traf2")
[ "${out2:-0}" -lt 2000 ] || fail "trafstat was not reset by reading: $(cat "$T/traf2")"
since=$(vf --json guest traffic v1 | jv '.since')
[ "$since" != None ] && [ -n "$since" ] || fail "the API did not see the reset (since=$since)"
ok "trafstat: v1 sent $out1 bytes; the read reset it (then $out2); the API's mark moved too"

# self: inside a guest, its own view only.
vf guest exec v1 -- ls /dev/vservers >"$T/ls" || fail "ls /dev/vservers in v1"
[ "$(cat "$T/ls")" = self ] || fail "a guest sees more than self: $(cat "$T/ls")"
vf guest exec v1 -- cat /dev/vservers/self >"$T/self1" || fail "cat self in v1"
grep -qx "vserver id: $ctx1" "$T/self1" && grep -qx 'nodename: v1' "$T/self1" ||
    fail "v1's self: $(cat "$T/self1")"
grep -qx 'Memory Limit: 65536 kB' "$T/self1" || fail "v1's memory limit: $(cat "$T/self1")"
grep -q "^eth0(vf[0-9a-f]*): 20000 kbit/s: $ip1/32;" "$T/self1" || fail "v1's device: $(cat "$T/self1")"
vf guest exec v2 -- cat /dev/vservers/self >"$T/self2" || fail "cat self in v2"
grep -qx "vserver id: $ctx2" "$T/self2" && grep -qx 'nodename: v2' "$T/self2" ||
    fail "v2's self: $(cat "$T/self2")"
# A default guest runs in its own user namespace (a block of host uids):
# the views reach it all the same (the mount allows other users).
map=$(vf guest exec v1 -- cat /proc/self/uid_map | awk '{print $1 ":" $2; exit}')
ok "each guest reads its own /dev/vservers/self (contexts $ctx1, $ctx2; v1's uid map $map)"
# A guest asking for the node's files by name gets nothing, and its try
# does not reset the node's trafstat.
vf guest exec v1 -- ping -c 20 -i 0.05 -s 1000 "$ip2" >/dev/null || fail "ping v1 -> v2 (2)"
# The traffic is in the master before the guest's tries: a try that reset it
# would leave trafstat near 0 below (with the sample still to come, a reset
# would go unseen).
sample_after "the second ping"
for f in trafstat setup routes_ipv4 ../trafstat; do
    if vf guest exec v1 -- cat "/dev/vservers/$f" >"$T/peek" 2>/dev/null; then
        fail "v1 reads /dev/vservers/$f: $(cat "$T/peek")"
    fi
done
cat "$V/trafstat" >"$T/traf3"
out3=$(awk -v c="$ctx1" '$1 == c {print $3}' "$T/traf3")
[ "${out3:-0}" -gt 10000 ] || fail "a guest's try reset trafstat: $(cat "$T/traf3")"
ok "a guest cannot open trafstat, setup or routes_ipv4 (and its tries reset nothing: v1 sent $out3)"
if cat "$V/self" >/dev/null 2>&1; then fail "the host reads a self view"; fi
ok "the host has no self view"
