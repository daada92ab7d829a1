#!/usr/bin/env bash
# `vfleet node drain`: ten guests on host 1 (addresses of the shared
# segment, which can follow them) leave it, three at a time, for
# the other hosts, and host 1 ends empty and cordoned. Then a drain of a host
# where one guest cannot move (its address comes from that host's own pool):
# it is reported with its reason and keeps running where it is, the others
# leave.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }

start_cluster 3
n1=$(node 1) n2=$(node 2) n3=$(node 3)

for i in $(seq 1 10); do
    vf guest create "d$i" --template busybox --memory 32M --disk 32M --cpu 0.05 --node "$n1" \
        --ip "10.87.0.$((100 + i))" --wait --timeout 120 >/dev/null || fail "create d$i"
done
vf guest exec d1 -- sh -c 'echo hello >/root/hello'
ok "ten guests on $n1"

vf node drain "$n1" --limit 3 >"$T/drain.out" 2>&1 || fail "drain: $(cat "$T/drain.out")"
grep -q "drain $n1: done (10 moved)" "$T/drain.out" || fail "drain said: $(cat "$T/drain.out")"
[ "$(vf --json node show "$n1" | pyj 'd["guests"]')" -eq 0 ] || fail "guests left on $n1"
vf --json node show "$n1" | pyj 'd["cordoned"]' | grep -qx true || fail "$n1 not cordoned"
[ "$(vf --json guest ls --node "$n1" | pyj 'len(d["guests"])')" -eq 0 ] || fail "$n1 lists guests"
ls "$CL/$n1/guests/" | grep -q json && fail "store records left on $n1"
wait_for 60 "ten guests running" all_running 10
[ "$(vf guest exec d1 -- cat /root/hello)" = hello ] || fail "d1 lost its file"
ok "$n1 is empty and cordoned; the ten guests run on $n2 and $n3"

# A guest that cannot follow: its address belongs to $n2's own pool.
vf node uncordon "$n1" >/dev/null
vf guest create stuck --template busybox --memory 32M --disk 32M --cpu 0.05 --node "$n2" \
    --ip "10.88.${n2#"$CL_PREFIX"}.77" --wait --timeout 120 >/dev/null || fail "create stuck"
before=$(vf --json guest ls --node "$n2" | pyj 'len(d["guests"])')
set +e
vf node drain "$n2" >"$T/drain2.out" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "a drain that leaves a guest exited $rc: $(cat "$T/drain2.out")"
grep -q "stuck stays: address 10.88" "$T/drain2.out" || fail "no reason: $(cat "$T/drain2.out")"
[ "$(guest_field stuck node)" = "$n2" ] || fail "stuck moved"
[ "$(guest_field stuck state)" = running ] || fail "stuck is $(guest_field stuck state)"
[ "$(vf --json guest ls --node "$n2" | pyj 'len(d["guests"])')" -eq 1 ] ||
    fail "guests other than stuck left on $n2"
ok "drain of $n2: $((before - 1)) guests left, stuck stays with its reason"

for g in $(vf --json guest ls | pyj '" ".join(x["name"] for x in d["guests"])'); do
    vf guest rm "$g" >/dev/null
done
