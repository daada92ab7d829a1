#!/usr/bin/env bash
# The cold start's conduit (data/<id>/stage, docs/architecture.md) against a
# guest's root user (default guest: own user namespace, seccomp) and against
# starts that overlap. The agent's state directory is a shared mount with a
# peer elsewhere, as under systemd (/ shared): nothing of a guest's root, its
# conduit or what the guest mounts may appear at the peer.
#   - inside a guest started cold: no mount carries shared: or master: (no
#     propagation into or out of the guest's namespace), a mount the guest
#     makes after making / shared stays in its namespace, its / cannot be
#     unmounted or remounted without nodev/nosuid, and data/<other-id> is not
#     reachable;
#   - two guests started cold each run on their own root;
#   - a guest started (cold and warm) while another guest's conduit is live
#     (the one an agent that died in a cold start leaves) sees nothing of it.
. "$(dirname "$0")/lib.sh"

build_template
PEER=$(mktemp -d /tmp/vfpeer.XXXXXX)
conduit_cleanup() {
    set +e
    umount -l "$PEER" 2>/dev/null
    rmdir "$PEER" 2>/dev/null
    return 0
}
trap 'rc=$?; conduit_cleanup; (exit $rc); cleanup' EXIT

mkdir -p "$T/h1"
mount --bind "$T/h1" "$T/h1"
mount --make-private "$T/h1"
mount --make-shared "$T/h1"
mount --bind "$T/h1" "$PEER" # a peer of the state directory's mount
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"

# host_mounts_under DIR: mounts on the host whose path is under DIR.
host_mounts_under() { awk -v d="$1/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo; }

# peer_extra: mounts at the peer that are not the agent's own (its FUSE
# views, the guests' disks, idmapped templates and roots, which a shared
# state directory propagates as it always did): a conduit or what a guest made.
peer_extra() {
    host_mounts_under "$PEER" | grep -vE "^$PEER/(vservers|data/[^/]+/(disk|lower|root))\$" || true
}

reboot_mounts() {
    local d=$T/h1/data/$1
    umount "$d/root" && umount "$d/lower" && umount "$d/disk" || fail "unmount $d"
}

A=$(uuid) B=$(uuid) C=$(uuid)
for g in "$A" "$B" "$C"; do
    # sys_admin (the guest's root may mount in its own namespaces): the
    # strongest guest a tenant can ask for, still in its user namespace.
    nodectl h1 apply "$(spec "g${g:0:6}" "$g" '{"disk":"32M"}' '"caps_add":["sys_admin"]')" >/dev/null ||
        fail "apply $g"
    nodectl h1 start "$g" >/dev/null || fail "start $g"
    nodectl h1 exec "$g" -- sh -c "echo $g >/h6mark" >/dev/null || fail "mark $g"
    nodectl h1 stop "$g" 1 2 >/dev/null || fail "stop $g"
    reboot_mounts "$g"
done

# ---- cold starts (one at a time: nodectl is one master, bound alone) ----
for g in "$A" "$B"; do
    nodectl h1 start "$g" >/dev/null || fail "cold start of $g"
done
[ "$(nodectl h1 exec "$A" -- cat /h6mark)" = "$A" ] || fail "A runs on another root"
[ "$(nodectl h1 exec "$B" -- cat /h6mark)" = "$B" ] || fail "B runs on another root"
ok "two cold starts: each guest runs on its own root"

[ -z "$(peer_extra)" ] ||
    fail "the state directory's peer got mounts: $(peer_extra)"
for g in "$A" "$B"; do
    host_mounts_under "$T/h1/data/$g/stage" | grep -q . && fail "conduit of $g left"
done
ok "no conduit left and nothing copied to the state directory's peer"

# ---- from inside a cold-started guest, as its root ----
mi=$(nodectl h1 exec "$A" -- cat /proc/self/mountinfo)
grep -E 'shared:|master:' <<<"$mi" && fail "a mount in guest A propagates: $mi"
ok "no mount in the cold-started guest is shared or a slave"

nodectl h1 exec "$A" -- sh -c 'mount --make-rshared / 2>/dev/null; mkdir -p /mnt/h6 &&
    mount -t tmpfs h6tmpfs /mnt/h6 && echo in >/mnt/h6/f' >/dev/null ||
    fail "the guest cannot mount a tmpfs in its own namespace"
grep -q h6tmpfs /proc/self/mountinfo && fail "the guest's tmpfs reached the host"
[ -z "$(peer_extra)" ] || fail "the guest's mount reached the peer"
ok "a mount the guest makes under a shared / stays in its namespace"

# root_opts: the per-mount options of the guest's / (mountinfo's field 6).
root_opts() { nodectl h1 exec "$A" -- sh -c 'grep " / / " /proc/self/mountinfo' | awk '{print $6}'; }
before=$(root_opts)
grep -q nodev <<<"$before" || fail "the guest's / is not nodev: $before"
for cmd in 'umount /' 'umount -l /' 'mount -o remount,bind,dev /' 'mount -o remount,dev /' \
    'mount -o remount,bind,suid,exec,dev /' 'mount -o remount,bind,ro / && mount -o remount,bind,rw,dev /'; do
    nodectl h1 exec "$A" -- sh -c "$cmd" >/dev/null 2>&1 || continue
    case $cmd in
    umount*) fail "'$cmd' worked in the guest" ;;
    esac
    after=$(root_opts)
    for f in nodev nosuid noexec; do
        if grep -qw "$f" <<<"$before" && ! grep -qw "$f" <<<"$after"; then
            fail "'$cmd' cleared $f of the guest's /: $before -> $after"
        fi
    done
done
ok "the guest cannot unmount its / nor clear its nodev ($before)"

out=$(nodectl h1 exec "$A" -- sh -c 'find / -path /proc -prune -o -path /sys -prune -o -name h6mark -print 2>/dev/null') || true
[ "$out" = /h6mark ] || fail "guest A finds other roots' files: $out"
ok "guest A does not reach data/<B>"

# ---- a conduit live while other guests start ----
# What an agent that died in a cold start leaves (rootfs_conduit_open and
# _fill): A's conduit, shared, with A's root bound in it. A is stopped, so its
# next start sweeps it; C (cold) and B (warm) start meanwhile.
nodectl h1 stop "$A" 1 2 >/dev/null || fail "stop A"
SA=$T/h1/data/$A/stage
mount --bind "$SA" "$SA"
mount --make-private "$SA"
mount --make-shared "$SA"
mount --rbind "$T/h1/data/$A/root" "$SA/root"
nodectl h1 start "$C" >/dev/null || fail "cold start of C beside A's conduit"
nodectl h1 stop "$B" 1 2 >/dev/null || fail "stop B"
nodectl h1 start "$B" >/dev/null || fail "warm start of B beside A's conduit"
for g in "$B" "$C"; do
    [ "$(nodectl h1 exec "$g" -- cat /h6mark)" = "$g" ] || fail "$g runs on another root"
    mi=$(nodectl h1 exec "$g" -- cat /proc/self/mountinfo)
    grep -E 'shared:|master:' <<<"$mi" && fail "a mount in guest $g propagates: $mi"
    grep -q "$A" <<<"$mi" && fail "guest $g sees A's conduit: $mi"
done
# A mount into A's live conduit (beside the root bound in it: a mount into
# that root is one into A's overlay, which the state directory shares as it
# always did) reaches no guest.
mkdir -p "$T/h6src"
mount -t tmpfs h6late "$T/h6src"
mkdir -p "$SA/late"
mount --bind "$T/h6src" "$SA/late"
for g in "$B" "$C"; do
    nodectl h1 exec "$g" -- cat /proc/self/mountinfo | grep -q h6late && fail "$g got a mount of A's conduit"
done
# (The conduit's own bind, made on the shared state directory, has a copy
# at the peer until it is made private: the bare stage directory, empty.)
[ -z "$(peer_extra | grep -v "/stage\$")" ] || fail "A's conduit reached the peer: $(peer_extra)"
ok "guests started beside a live conduit see nothing of it"

nodectl h1 start "$A" >/dev/null || fail "start of A over its stale conduit"
host_mounts_under "$SA" | grep -q . && fail "A's stale conduit is left after its start"
[ -z "$(peer_extra)" ] || fail "the peer keeps mounts after the sweep: $(peer_extra)"
[ "$(nodectl h1 exec "$A" -- cat /h6mark)" = "$A" ] || fail "A runs on another root"
rmdir "$SA/late" # this scenario's, in the agent's directory
ok "A's start sweeps its stale conduit"

for g in "$A" "$B" "$C"; do
    nodectl h1 destroy "$g" >/dev/null || fail "destroy $g"
done
umount "$T/h6src"
grep -q "$T/h1/data/" /proc/self/mountinfo && fail "mounts left: $(host_mounts_under "$T/h1/data")"
ok "destroyed: no mount left"
