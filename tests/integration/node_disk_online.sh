#!/usr/bin/env bash
# Raising the disk limit of a running guest grows its filesystem online (ext4
# resize through the loop device). The kernel allows that only with
# CAP_SYS_RESOURCE: a host whose bounding set lacks it cannot run this
# scenario, and it is reported as skipped, not passed.
. "$(dirname "$0")/lib.sh"

if ! has_cap sys_resource; then
    echo "SKIP: this host's bounding set lacks CAP_SYS_RESOURCE (ext4 online resize needs it)"
    exit 77
fi
build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"
G=$(uuid)
nodectl h1 apply "$(spec grow "$G" '{"disk":"64M"}')" >/dev/null || fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
before=$(nodectl h1 exec "$G" -- df -k / | awk 'NR==2 {print $2}')
GEN=2 nodectl h1 apply "$(GEN=2 spec grow "$G" '{"disk":"128M"}')" >/dev/null || fail "online grow"
after=$(nodectl h1 exec "$G" -- df -k / | awk 'NR==2 {print $2}')
[ "$after" -ge 120000 ] || fail "df shows ${after}K after growing to 128M online"
ok "raising the disk limit on a running guest grows df online (${before}K -> ${after}K)"
