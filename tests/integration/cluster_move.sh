#!/usr/bin/env bash
# A guest moves between hosts of the local cluster and stays itself: guest
# mv on host 1 has two addresses from the shared segment's pools (IPv4 and
# IPv6), a file of known checksum and traffic counted; `vfleet guest move mv
# --to host2` copies its disk straight from host 1 to host 2 and starts it
# there. Afterwards the file matches, the counters went on from where they
# were (the trafstat view too), a guest on host 3 pings both addresses, and
# nothing of mv is left on host 1 (store record, disk, mounts, veth, routes).
# Host 2 has a guest already, so mv gets another block of host uids there
# than on host 1: its files are shifted into it, and its root owns them.
# Then a near-live move back (--live) with a measured downtime, an address
# that cannot follow (a per-host pool) refused, and --renumber. The data
# channel runs CurveZMQ with both node keys pinned (the local cluster's nodes
# joined with tokens): the operation's result says "channel": "curve", the
# target's agent let in only the source's key, the source pinned the
# target's, and the master never said the channel was plaintext (with
# CL_LINK=ipc it must say so instead). All traffic stays in the namespaces
# local-cluster made.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }
nft --version >/dev/null 2>&1 || { echo "SKIP: no nft"; exit 77; }

start_cluster 3
n1=$(node 1) n2=$(node 2) n3=$(node 3)

vf guest create mv --template busybox --memory 64M --disk 64M --cpu 0.2 --node "$n1" \
    --ip 10.87.0.10 --ip fd00:87::10 --wait --timeout 120 >/dev/null || fail "create mv"
vf guest create peer --template busybox --memory 32M --disk 32M --cpu 0.1 --node "$n3" \
    --ip 10.87.0.20 --ip fd00:87::20 --wait --timeout 120 >/dev/null || fail "create peer"
id=$(guest_field mv id)
gen=$(guest_field mv generation)
ifname=vf$(echo "${id//-/}" | cut -c1-10)

sum=$(vf guest exec mv -- sh -c 'dd if=/dev/urandom of=/root/data bs=1M count=8 2>/dev/null &&
    sync && sha256sum /root/data' | awk '{print $1}')
[ ${#sum} -eq 64 ] || fail "no checksum of the test file: $sum"
vf guest exec peer -- ping -c 5 -W 2 10.87.0.10 >/dev/null || fail "peer cannot ping mv before"
vf guest exec peer -- ping6 -c 3 -W 2 fd00:87::10 >/dev/null || fail "peer cannot ping6 mv before"
rx() { vf --json guest usage mv | pyj 'd["net_rx_bytes"]'; }
has_rx() { [ "$(rx)" -gt 0 ]; }
wait_for 20 "a usage sample with traffic" has_rx
rx0=$(rx)
traffic0=$(vf --json guest traffic mv | pyj 'd["rx_bytes"]')
ok "mv on $n1 with 10.87.0.10 and fd00:87::10, file $sum, $rx0 bytes in"

# A guest on host 2 first, so mv's block of host uids there is not the one
# it has on host 1: its files must be shifted into the new block.
vf guest create filler --template busybox --memory 32M --disk 32M --cpu 0.1 --node "$n2" \
    --wait --timeout 120 >/dev/null || fail "create filler"
base1=$(jq -r '.ids.uid_base' "$CL/$n1/guests/$id.json")
[ "$base1" -gt 0 ] || fail "mv has no uid block on $n1"

vf guest move mv --to "$n2" >"$T/move.out" 2>&1 || fail "move: $(cat "$T/move.out")"
grep -q "move mv: done" "$T/move.out" || fail "move said: $(cat "$T/move.out")"
[ "$(guest_field mv node)" = "$n2" ] || fail "mv is on $(guest_field mv node)"
[ "$(guest_field mv state)" = running ] || fail "mv is $(guest_field mv state)"
[ "$(guest_field mv id)" = "$id" ] || fail "mv has another id"
[ "$(guest_field mv generation)" -eq $((gen + 1)) ] || fail "generation not one more"
vf --json guest show mv | pyj 'sorted(d["ips"])' | grep -q '"10.87.0.10", "fd00:87::10"' ||
    fail "addresses changed: $(vf --json guest show mv | pyj 'd["ips"]')"
ok "mv moved to $n2: $(tail -1 "$T/move.out")"

# The data channel: CurveZMQ, both ends pinned to the keys the nodes joined with.
if [ "${CL_LINK:-curve}" = ipc ]; then
    grep -q "data channel from node $n1 to node $n2 is plaintext" "$CL/master.log" ||
        fail "the master did not say the ipc cluster's data channel is plaintext"
    ok "an ipc:// cluster moves in plaintext (secret only), and the master says so"
else
    grep -q "guest=mv op=.* receiving at tcp://.*, CurveZMQ, only the key of node $n1 let in" \
        "$CL/$n2/agent.log" || fail "$n2 did not receive with CurveZMQ: $(grep 'receiving at' "$CL/$n2/agent.log")"
    grep -q "guest=mv op=.* sending to tcp://.*CurveZMQ, target's key pinned" "$CL/$n1/agent.log" ||
        fail "$n1 did not send with CurveZMQ: $(grep 'sending to' "$CL/$n1/agent.log")"
    grep -q "sent: pass 1, .* session(s), CurveZMQ" "$CL/$n1/agent.log" ||
        fail "$n1 did not finish the copy over CurveZMQ"
    grep -q "is plaintext, guarded by the one-time secret" "$CL/master.log" &&
        fail "the master moved in plaintext: $(grep 'is plaintext' "$CL/master.log")"
    ok "the image crossed over CurveZMQ: $n2 let in only $n1's key, $n1 pinned $n2's"
fi

got=$(vf guest exec mv -- sha256sum /root/data | awk '{print $1}')
[ "$got" = "$sum" ] || fail "the file changed: $got, want $sum"
ok "the file matches after the move"

# Its own files, as its root and on the host in its block here.
base2=$(jq -r '.ids.uid_base' "$CL/$n2/guests/$id.json")
[ "$base2" -gt 0 ] && [ "$base2" != "$base1" ] || fail "uid block on $n2: $base2 (on $n1: $base1)"
owner=$(vf guest exec mv -- stat -c %u:%g /root/data)
[ "$owner" = "0:0" ] || fail "the moved file is owned by $owner inside the guest"
vf guest exec mv -- sh -c 'touch /root/new && rm /root/new' || fail "guest root cannot write /root"
upper=$(find "$CL/$n2/data/$id" -path '*/upper/root/data' 2>/dev/null | head -1)
[ -n "$upper" ] || fail "no upper/root/data under $CL/$n2/data/$id"
[ "$(stat -c %u "$upper")" = "$base2" ] || fail "on $n2 the file's owner is $(stat -c %u "$upper"), not $base2"
ok "files shifted from host uids $base1.. to $n2's block $base2..; root inside owns them"

vf guest exec peer -- ping -c 3 -W 2 10.87.0.10 >/dev/null || fail "peer cannot ping 10.87.0.10 after"
vf guest exec peer -- ping6 -c 3 -W 2 fd00:87::10 >/dev/null || fail "peer cannot ping fd00:87::10 after"
ok "a guest on $n3 reaches both addresses on $n2"

more() { [ "$(rx)" -gt "$rx0" ]; }
wait_for 20 "counters continuing above $rx0" more
traffic1=$(vf --json guest traffic mv | pyj 'd["rx_bytes"]')
[ "$traffic1" -ge "$traffic0" ] || fail "trafstat went back: $traffic0 -> $traffic1"
ok "counters continue: $rx0 -> $(rx) bytes in, trafstat $traffic0 -> $traffic1"

[ ! -e "$CL/$n1/guests/$id.json" ] || fail "store record left on $n1"
[ ! -e "$CL/$n1/data/$id" ] || fail "data left on $n1: $(ls -la "$CL/$n1/data/$id")"
grep -q " $CL/$n1/data/$id" /proc/self/mounts && fail "mounts left on $n1"
ip -n "vf-$n1" link show "$ifname" >/dev/null 2>&1 && fail "veth left on $n1"
ip -n "vf-$n1" route | grep -q "10.87.0.10" && fail "route left on $n1"
vf --json node show "$n1" | pyj 'len(d["orphans"])' | grep -qx 0 || fail "$n1 reports orphans"
ok "nothing of mv is left on $n1"

# Near-live back to host 1: copied while running, frozen for the delta.
vf guest exec mv -- sh -c 'dd if=/dev/urandom of=/root/more bs=1M count=4 2>/dev/null; sync'
vf --json guest move mv --to "$n1" --live >"$T/live.json" 2>"$T/live.err" || fail "live move: $(cat "$T/live.err" "$T/live.json")"
final=$(tail -1 "$T/live.json")
echo "$final" | pyj 'd["state"]' | grep -qx done || fail "live move: $final"
down=$(echo "$final" | pyj 'd["result"]["downtime_ms"]')
channel=$(echo "$final" | pyj 'd["result"]["channel"]')
want=curve
[ "${CL_LINK:-curve}" = ipc ] && want=plaintext
[ "$channel" = "$want" ] || fail "the live move's channel is $channel, want $want: $final"
note=$(echo "$final" | pyj 'd["result"]["note"]')
echo "$note" | grep -qi "criu" || fail "no CRIU preflight said: $note"
got=$(vf guest exec mv -- sha256sum /root/data | awk '{print $1}')
[ "$got" = "$sum" ] || fail "the file changed in the live move"
[ "$(guest_field mv node)" = "$n1" ] || fail "mv not back on $n1"
owner=$(vf guest exec mv -- stat -c %u:%g /root/more)
[ "$owner" = "0:0" ] || fail "after the live move /root/more is owned by $owner inside the guest"
vf guest exec peer -- ping -c 2 -W 2 10.87.0.10 >/dev/null || fail "peer cannot ping after the live move"
ok "near-live move back to $n1 over $channel: downtime $down ms; $note"

# A per-host address cannot follow to another host; --renumber gives one there.
local_ip=10.88.${n1#"$CL_PREFIX"}.50
vf guest ip add mv "$local_ip" >/dev/null || fail "ip add $local_ip"
set +e
vf guest move mv --to "$n2" >"$T/refused.out" 2>&1
rc=$?
set -e
[ $rc -eq 4 ] || fail "a move with a per-host address exited $rc: $(cat "$T/refused.out")"
grep -q "cannot move to node $n2" "$T/refused.out" || fail "no reason: $(cat "$T/refused.out")"
[ "$(guest_field mv node)" = "$n1" ] || fail "a refused move moved"
vf guest move mv --to "$n2" --renumber >/dev/null || fail "renumbered move"
ips=$(vf --json guest show mv | pyj 'd["ips"]')
echo "$ips" | grep -q "$local_ip" && fail "$local_ip kept: $ips"
echo "$ips" | grep -q "10.88.${n2#"$CL_PREFIX"}." || fail "no address of $n2's pool: $ips"
echo "$ips" | grep -q '"10.87.0.10"' || fail "the shared address was renumbered: $ips"
ok "a per-host address is refused with its reason; --renumber replaces it ($ips)"

# An export from a node that joined with a key is CurveZMQ too: the node
# sends to the master's receiver, which admits only that node's key.
vf --json guest export mv -o "$T/mv.vfx" >"$T/export.json" 2>&1 || fail "export: $(cat "$T/export.json")"
channel=$(grep '"result"' "$T/export.json" | tail -1 | pyj 'd["result"]["channel"]')
[ "$channel" = curve ] || fail "the export's data channel is $channel: $(tail -2 "$T/export.json")"
zstd -t -q "$T/mv.vfx" || fail "the exported archive is not a valid zstd file"
ok "an export from $n1 crossed a CurveZMQ data channel (the master pinned the node's key)"

vf guest rm mv >/dev/null
vf guest rm peer >/dev/null
vf guest rm filler >/dev/null
