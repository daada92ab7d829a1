#!/usr/bin/env bash
# Export and import round trip on the local cluster: guest ex on host 1 with
# a file of known checksum, an owner, a mode, an extended attribute and a
# hard link, and a template file it deleted; `vfleet guest export ex -o FILE`
# writes one archive; `vfleet guest import FILE --name ex2 --to host2`
# restores it as a new guest that runs on host 2 with the same files and
# metadata and the same limits, the deleted file still deleted. Host 2 has a
# guest already, so ex2 gets another block of host uids than ex: the files
# are shifted into it.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }

# An import has the master send the archive to the node's data channel. On
# the local cluster the master's own namespace has no route into the nodes'
# namespaces (they reach it through a relay), so the nodes stay on the
# master's ipc:// socket, where their receivers are ipc:// too; on real hosts
# the master reaches each node's [migrate] address.
CL_LINK=ipc
start_cluster 2
n1=$(node 1) n2=$(node 2)

vf guest create ex --template busybox --memory 64M --disk 64M --cpu 0.2 --procs 77 --node "$n1" \
    --ip 10.87.0.40 --wait --timeout 120 >/dev/null || fail "create ex"
sum=$(vf guest exec ex -- sh -c 'dd if=/dev/urandom of=/root/data bs=1M count=4 2>/dev/null &&
    chown 1234:4321 /root/data && chmod 0640 /root/data && ln /root/data /root/data.link &&
    rm /etc/hostname.tmpl 2>/dev/null; rm -f /etc/profile; sync; sha256sum /root/data' | awk '{print $1}')
[ ${#sum} -eq 64 ] || fail "no checksum: $sum"

vf guest export ex -o "$T/ex.vfx" >"$T/export.out" 2>&1 || fail "export: $(cat "$T/export.out")"
[ -s "$T/ex.vfx" ] || fail "no archive written"
zstd -t -q "$T/ex.vfx" || fail "the archive is not a valid zstd file"
zstd -dc "$T/ex.vfx" >"$T/ex.tar" && tar -tf "$T/ex.tar" >"$T/ex.list" || fail "tar cannot read it"
[ "$(sed -n 1p "$T/ex.list")" = vfleet-guest.json ] || fail "the manifest is not first: $(head -3 "$T/ex.list")"
[ "$(guest_field ex state)" = running ] || fail "ex stopped by the export"
ok "exported ex: $(tail -1 "$T/export.out")"

vf guest create filler --template busybox --memory 32M --disk 32M --node "$n2" --wait \
    --timeout 120 >/dev/null || fail "create filler"
vf guest import "$T/ex.vfx" --name ex2 --to "$n2" >"$T/import.out" 2>&1 ||
    fail "import: $(cat "$T/import.out")"
[ "$(guest_field ex2 node)" = "$n2" ] || fail "ex2 on $(guest_field ex2 node)"
[ "$(guest_field ex2 state)" = running ] || fail "ex2 is $(guest_field ex2 state)"
[ "$(guest_field ex2 id)" != "$(guest_field ex id)" ] || fail "ex2 has ex's id"
[ "$(vf --json guest show ex2 | pyj 'd["limits"]["procs"]')" -eq 77 ] || fail "limits lost"
got=$(vf guest exec ex2 -- sha256sum /root/data | awk '{print $1}')
[ "$got" = "$sum" ] || fail "the file differs: $got"
meta=$(vf guest exec ex2 -- stat -c '%u:%g %a %h' /root/data)
[ "$meta" = "1234:4321 640 2" ] || fail "owner, mode or links lost: $meta"
vf guest exec ex2 -- test -e /etc/profile && fail "a file deleted in ex came back in ex2"
b1=$(jq -r '.ids.uid_base' "$CL/$n1/guests/$(guest_field ex id).json")
b2=$(jq -r '.ids.uid_base' "$CL/$n2/guests/$(guest_field ex2 id).json")
[ "$b1" != "$b2" ] || fail "ex and ex2 have the same uid block $b1: nothing was shifted"
ok "imported as ex2 on $n2: data, owner, mode, hard link and deletions kept"

vf guest rm ex >/dev/null
vf guest rm ex2 >/dev/null
vf guest rm filler >/dev/null
