#!/usr/bin/env bash
# A create (guest.apply.start) whose agent is killed (-9, by gdb at
# apply_done) after the backend's work and before the guest's first record
# write: its template is mounted idmapped to the uid block the create
# picked, its upper directory is owned by that block, its init ran in it.
# Nothing recorded that block. When the create comes again the agent may pick
# another (here: the guest that held the lowest block is destroyed in
# between); the guest must then see its template and its own files owned by
# its root, not by "nobody", and nothing of it may keep the old block.
. "$(dirname "$0")/lib.sh"

command -v gdb >/dev/null || { echo "SKIP: no gdb"; exit 77; }
build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

# init_of ID: the pid of guest ID's init (pid 1 of a pid namespace one level
# below the host's, in the guest's cgroup), or nothing.
init_of() {
    local p
    for p in $(cat "$(cg_path "$1" cgroup.procs)" 2>/dev/null); do
        awk '/^NSpid:/ {exit !(NF == 3 && $3 == 1)}' "/proc/$p/status" 2>/dev/null && echo "$p" && return
    done
}

# base_of ID: the uid block guest ID's record holds.
base_of() { jq -r '.ids.uid_base' "$T/h1/guests/$1.json"; }

# A holds the lowest block, so the first create of B gets the next one.
A=$(uuid)
nodectl h1 apply "$(spec crash-a "$A" '{"disk":"32M"}')" >/dev/null || fail "apply A"
base_a=$(base_of "$A")

B=$(uuid)
BS=$(spec crash-b "$B" '{"disk":"32M"}')
killed_at h1 apply_done apply-start "$BS"
p=$(init_of "$B")
[ -n "$p" ] || fail "no init of B running after the killed create"
old=$(awk '{print $2}' "/proc/$p/uid_map")
[ "$old" != "$base_a" ] || fail "B's first create got A's block $old"
[ "$(stat -c %u "$T/h1/data/$B/lower")" = "$old" ] || fail "B's lower is not in its first block"
# A file B's root writes while it runs: it belongs to the first block.
nsenter -t "$p" -U -m -- sh -c 'echo hi >/root/mine' || fail "write a file in B"
[ "$(stat -c %u "$T/h1/data/$B/disk/upper/root/mine")" = "$old" ] || fail "B's file is not in $old"
log "B's first create ran in block $old (A has $base_a); the agent was killed before its record"

start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello after the restart"
# The lowest block is free again: the create sent again picks it.
nodectl h1 destroy "$A" >/dev/null || fail "destroy A"
nodectl h1 apply-start "$BS" >/dev/null || fail "the create of B sent again"
new=$(base_of "$B")
[ "$new" = "$base_a" ] || fail "B's create sent again got block $new, not the free $base_a"
log "B's create sent again got block $new"

p=$(init_of "$B")
[ -n "$p" ] || fail "B is not running after the create sent again"
[ "$(awk '{print $2}' "/proc/$p/uid_map")" = "$new" ] || fail "B's init does not run in $new"
# Every id-dependent piece is looked at before any verdict, so a failure
# names all that is wrong.
lower=$(stat -c %u "$T/h1/data/$B/lower")
upper=$(stat -c %u "$T/h1/data/$B/disk/upper")
mine=$(stat -c %u "$T/h1/data/$B/disk/upper/root/mine")
seen=$(nodectl h1 exec "$B" -- stat -c '%u %g' / /bin/busybox /root/mine 2>&1 | tr '\n' ' ') || true
log "B runs in $new; host owners: lower $lower, upper $upper, its file $mine; inside B: $seen"
[ "$lower" = "$new" ] || fail "B's template is mounted for block $lower, B runs in $new"
[ "$upper" = "$new" ] || fail "B's upper directory is owned by $upper, B runs in $new"
[ "$mine" = "$new" ] || fail "B's own file is owned by host uid $mine, B runs in $new"
[ "$seen" = "0 0 0 0 0 0 " ] || fail "inside B its root, template and file are owned by: $seen"
nodectl h1 exec "$B" -- sh -c 'echo more >>/root/mine' >/dev/null || fail "B's root cannot write its file"
ok "the create sent again with another block: B's template, root and files are its own"

nodectl h1 destroy "$B" >/dev/null || fail "destroy B"
[ -z "$(init_of "$B")" ] || fail "an init of B is left after its destroy"
