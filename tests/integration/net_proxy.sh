#!/usr/bin/env bash
# Proxy ARP/NDP: a guest with an address of the host's own segment is
# reachable from a neighbour on that segment, which resolves the guest's
# address to the host's uplink. The "LAN" and the host are namespaces this
# scenario made. Also: a guest without addresses gets no network at all.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }

LAN=vflan$$ HP=vfhp$$
netns "$LAN"
netns "$HP"
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ip link add lan netns "$LAN" type veth peer name upl netns "$HP"
inns "$LAN" ip addr add 10.77.0.1/24 dev lan
inns "$LAN" ip -6 addr add fd00:77::1/64 dev lan nodad
inns "$LAN" ip link set lan up
inns "$HP" ip addr add 10.77.0.2/24 dev upl
inns "$HP" ip -6 addr add fd00:77::2/64 dev upl nodad
inns "$HP" ip link set upl up

build_template
printf "[network]\nuplink = upl\nproxy_neigh = true\n" >"$T/hp.conf"
AGENT_NETNS=$HP AGENT_CONFIG=$T/hp.conf start_agent hp
nodectl hp wait-hello >/dev/null || fail "no hello"

# A guest without addresses: only loopback, nothing on the host.
N=$(uuid)
nodectl hp apply "$(spec bare "$N")" >/dev/null || fail "apply bare"
nodectl hp start "$N" >/dev/null || fail "start bare"
nodectl hp exec "$N" -- ip link | grep -q eth0 && fail "a guest without addresses has eth0"
inns "$HP" ip -o link | grep -qE "^[0-9]+: vf[0-9a-f]{10}" && fail "a guest without addresses got a veth"
ok "a guest without addresses has loopback only and no veth"

G=$(uuid)
IFG=vf$(echo "${G//-/}" | cut -c1-10)
nodectl hp apply "$(spec px "$G" '{}' '"ips":["10.77.0.50","fd00:77::50"]')" >/dev/null ||
    fail "apply"
nodectl hp start "$G" >/dev/null || fail "start"
[ "$(inns "$HP" cat /proc/sys/net/ipv4/conf/upl/proxy_arp)" = 1 ] || fail "proxy_arp off on uplink"
inns "$HP" ip -6 neigh show proxy | grep -q "fd00:77::50 dev upl" || fail "no proxy NDP entry"
inns "$LAN" busybox ping -c 2 -W 2 10.77.0.50 >/dev/null || fail "LAN cannot reach the guest over IPv4"
inns "$LAN" busybox ping6 -c 2 -W 2 fd00:77::50 >/dev/null || fail "LAN cannot reach the guest over IPv6"
ok "a neighbour on the uplink's segment reaches the guest through proxy ARP and NDP"

nodectl hp stop "$G" >/dev/null || fail "stop"
nodectl hp destroy "$G" >/dev/null || fail "destroy"
inns "$HP" ip -6 neigh show proxy | grep -q "fd00:77::50" && fail "proxy NDP entry left"
inns "$HP" ip link show "$IFG" >/dev/null 2>&1 && fail "veth left"
ok "destroy removes the proxy NDP entry and the veth"
