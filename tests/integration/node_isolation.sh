#!/usr/bin/env bash
# The isolation battery (issue 10): one node, real guests driven through the
# node protocol, checked from inside by a static probe (tests/integration/
# probe.c in the "isolation" template) and from the host, with numeric
# criteria I1-I12 plus the host keyring, the bounded console, /dev for an
# unprivileged guest user and LXCFS. Every check runs on a default guest
# (user namespace + seccomp + LXCFS) and on a privileged one (no user
# namespace: the documented exceptions are said where they apply).
#
# Environment: ISO_EXECS (300) execs of the #!/proc/self/exe trick for I8,
# ISO_CYCLES (100) create/start/exec/destroy cycles for I9's fd count.
. "$(dirname "$0")/lib.sh"

PROBE=$VFLEET_TESTBIN/vfleet-probe
[ -x "$PROBE" ] || { echo "SKIP: no $PROBE (build the project)"; exit 77; }
command -v keyctl >/dev/null || { echo "SKIP: no keyctl (keyutils, deploy/install-deps)"; exit 77; }
command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }
# 300, not 1000: against an exec path that exposes the host binary the
# attacker's scan (one a millisecond) finds the window in most execs, so a
# few hundred are plenty; 2x1000 took 70 s of CI's 30 minutes.
EXECS=${ISO_EXECS:-300}
CYCLES=${ISO_CYCLES:-100}

# ---- fixtures: template, LXCFS, a host key, a host marker, the agent ----
"$VFLEET_SOURCE_DIR/deploy/templates/isolation" "$PROBE" "$TEMPLATES/isolation" >/dev/null ||
    fail "cannot build the isolation template"
build_template

KEY= MARKER=/vfiso-marker-$$ LXPID=
# Runs in the EXIT trap before lib.sh's cleanup, which it must always reach:
# nothing here may fail (set -e holds in traps too).
battery_cleanup() {
    set +e
    [ -n "$KEY" ] && keyctl unlink "$KEY" @u >/dev/null 2>&1
    rm -f "$MARKER"
    if [ -n "$LXPID" ]; then
        kill "$LXPID" 2>/dev/null
        umount -l "$T/lxcfs" 2>/dev/null
    fi
    return 0
}
trap 'rc=$?; battery_cleanup; (exit $rc); cleanup' EXIT

# The battery checks the guests' LXCFS /proc: without lxcfs (deploy/install-deps
# and the VM root install it) it is skipped as a whole, not passed without it.
command -v lxcfs >/dev/null || {
    echo "SKIP: lxcfs is not installed (deploy/install-deps installs it)"
    exit 77
}
# A private LXCFS (its own mount and pid file): other scenarios and the
# host's own instance are never touched.
mkdir -p "$T/lxcfs"
lxcfs -f --enable-cfs -p "$T/lxcfs.pid" "$T/lxcfs" >"$T/lxcfs.log" 2>&1 &
LXPID=$!
# (30 s: under QEMU without KVM its start is slow)
wait_for 30 "lxcfs mounted ($(cat "$T/lxcfs.log" 2>/dev/null | tail -3))" test -r "$T/lxcfs/proc/meminfo"
LX=$T/lxcfs

KEY=$(keyctl add user "vfiso-$$" "host-secret-$$" @u) || fail "cannot add a host key"
echo "host marker" >"$MARKER"

NS=vfiso$$
netns "$NS"
printf "[node]\nlxcfs = %s\n" "$LX" >"$T/h1.conf"
AGENT_NETNS=$NS AGENT_CONFIG=$T/h1.conf start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello from the agent"
AGENT=$(agent_pid h1)

# iso_spec NAME ID FLAGS ADDR [EXTRA]: a guest of the isolation template.
iso_spec() {
    local f=$T/spec-$1.json flags=$3 addr=$4 extra=${5:-}
    printf '{"id":"%s","name":"%s","generation":1,"template":"isolation",%s"limits":{"disk":"64M","memory":"128M","cpu_max":1,"procs":200},"ips":["%s"]%s}\n' \
        "$2" "$1" "${flags:+\"flags\":[$flags],}" "$addr" "${extra:+,$extra}" >"$f"
    echo "$f"
}
probe() { local id=$1; shift; nodectl h1 exec "$id" -- vfleet-probe "$@"; }
# nodectl_t SECONDS NAME ARGS...: nodectl with a longer timeout than lib.sh's 60 s.
nodectl_t() {
    local t=$1 name=$2
    shift 2
    "$VFLEET_TESTBIN/nodectl" -e "ipc://$T/$name/master.sock" -n "$name" -t "$t" "$@"
}
# val OUTPUT KEY: the value after KEY on its line.
val() { awk -v k="$2" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' <<<"$1"; }
record() { jq -r ".ids.$2 // 0" "$T/h1/guests/$1.json"; }
init_pid() { jq -r '.runtime.pid' "$T/h1/guests/$1.json"; }
# want WHAT GOT EXPECTED: a numeric/string criterion, logged with its figure.
want() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

D=$(uuid) P=$(uuid) N=$(uuid) C=$(uuid)
nodectl h1 apply "$(iso_spec dflt "$D" "" 10.89.1.5)" >/dev/null || fail "apply the default guest"
nodectl h1 apply "$(iso_spec priv "$P" '"privileged"' 10.89.1.6)" >/dev/null || fail "apply the privileged guest"
nodectl h1 apply "$(iso_spec nest "$N" '"nesting"' 10.89.1.7)" >/dev/null || fail "apply the nesting guest"
nodectl h1 apply "$(iso_spec caps "$C" "" 10.89.1.8 '"caps_drop":["net_raw","mknod"],"caps_add":["sys_nice"]')" \
    >/dev/null || fail "apply the caps guest"
for g in "$D" "$P" "$N" "$C"; do nodectl h1 start "$g" >/dev/null || fail "start $g"; done
ok "four guests running: default, privileged, nesting, edited capabilities"

# ---- basics: identity, the pid namespace, exec and enter -------------------------
[ "$(nodectl h1 exec "$D" -- hostname)" = dflt ] || fail "hostname is not the guest's"
[ "$("$VFLEET_BIN/vfleet-node" enter dflt --state-dir "$T/h1" -- hostname </dev/null)" = dflt ] ||
    fail "vfleet-node enter does not land in the guest"
set +e
"$VFLEET_BIN/vfleet-node" enter dflt --state-dir "$T/h1" -- sh -c 'exit 5' </dev/null
rc=$?
nodectl h1 exec "$D" -- sh -c 'echo out; echo err >&2; exit 3' >"$T/out" 2>"$T/err"
rc2=$?
nodectl h1 exec "$D" -- /no/such/command >/dev/null 2>&1
rc3=$?
set -e
want "enter exit code" $rc 5
want "exec exit code" $rc2 3
want "exec of a missing command" $rc3 127
grep -qx out "$T/out" && grep -qx err "$T/err" || fail "exec streams mixed up"
[ "$("$VFLEET_BIN/vfleet-node" enter dflt --state-dir "$T/h1" -- id -u </dev/null)" = 0 ] ||
    fail "enter is not the guest's root"
ps_out=$(nodectl h1 exec "$D" -- ps -o pid,args)
echo "$ps_out" | awk 'NR>1 && $1==1 {found=1} END {exit !found}' || fail "init is not pid 1: $ps_out"
nodectl h1 exec "$P" -- sh -c 'sleep 1000 >/dev/null 2>&1 </dev/null &'
nodectl h1 exec "$P" -- ps -o args | grep -q 'sleep 1000' || fail "no sleeper in the privileged guest"
nodectl h1 exec "$D" -- ps -o args | grep -q 'sleep 1000' && fail "a guest sees another's processes"
ok "hostname, enter (exit code, guest root), exec (codes, streams), pid 1, other guests invisible"

# ---- the checks, per guest ----
for mode in default privileged; do
    if [ $mode = default ]; then G=$D NAME=dflt; else G=$P NAME=priv; fi
    IPIDX=$([ $mode = default ] && echo 5 || echo 6)
    IFN=vf$(echo "${G//-/}" | cut -c1-10)

    # I1: capability sets exactly as configured; the dangerous ones absent.
    st=$(probe "$G" status)
    want "I1 $mode CapBnd" "$(val "$st" CapBnd)" 00000000a80425fb
    want "I1 $mode CapEff" "$(val "$st" CapEff)" 00000000a80425fb
    want "I1 $mode CapInh" "$(val "$st" CapInh)" 0000000000000000
    want "I1 $mode CapAmb" "$(val "$st" CapAmb)" 0000000000000000
    initbnd=$(nodectl h1 exec "$G" -- cat /proc/1/status | awk '/^CapBnd/ {print $2}')
    want "I1 $mode init CapBnd" "$initbnd" 00000000a80425fb
    for bit in 16 17 25 32 33; do # SYS_MODULE SYS_RAWIO SYS_TIME MAC_OVERRIDE MAC_ADMIN
        (((16#$initbnd >> bit) & 1)) && fail "I1 $mode: capability bit $bit present"
    done
    ok "I1 $mode: CapBnd=CapEff=a80425fb, CapInh=CapAmb=0, bits 16 17 25 32 33 absent"

    # I2: each denied syscall's errno, an unknown number ENOSYS.
    sc=$(probe "$G" syscalls)
    for s in keyctl add_key request_key bpf perf_event_open kexec_load kexec_file_load \
        init_module finit_module delete_module open_by_handle_at userfaultfd io_uring_setup \
        io_uring_enter io_uring_register unshare_user unshare_net setns clone_newuser; do
        want "I2 $mode $s" "$(val "$sc" $s)" EPERM
    done
    want "I2 $mode clone3" "$(val "$sc" clone3)" ENOSYS
    want "I2 $mode unknown syscall 999" "$(val "$sc" unknown_999)" ENOSYS
    want "I2 $mode getpid" "$(val "$sc" getpid)" OK
    ok "I2 $mode: 19 syscalls EPERM, clone3 and syscall 999 ENOSYS, getpid allowed"

    # I3: masked paths read empty, /proc/sys and sysrq writes fail, /sys stays read-only.
    ms=$(probe "$G" masked)
    want "I3 $mode masked bytes" "$(val "$ms" masked_max_bytes)" 0
    for d in /proc/acpi /sys/firmware; do
        n=$(awk -v d=$d '$1 == "masked_dir" && $2 == d {print $3}' <<<"$ms")
        [ "$n" -le 0 ] || fail "I3 $mode: $d shows $n entries"
    done
    for w in write_proc_sys write_proc_sys_net write_proc_sys_vm write_sysrq_trigger write_sys \
        remount_sys remount_sys_rw mount_sysfs mount_proc; do
        r=$(val "$ms" $w)
        [ -n "$r" ] && [ "$r" != OK ] || fail "I3 $mode: $w gave '$r'"
    done
    ok "I3 $mode: masked files 0 bytes, masked dirs empty, /proc/sys, sysrq and /sys writes and remounts refused"

    # I5: mknod + open of the host's root disk fails; the allowed nodes work, mode 0666.
    dev=$(stat -c '%d' /)
    maj=$((dev >> 8)) min=$((dev & 255))
    dv=$(probe "$G" devices $maj $min)
    [ "$(val "$dv" open_block)" != OK ] || fail "I5 $mode: opened the host disk $maj:$min"
    for node in null zero full random urandom; do
        line=$(awk -v p=/dev/$node '$1 == "dev" && $2 == p' <<<"$dv")
        [ "$(awk '{print $3, $5}' <<<"$line")" = "OK 0666" ] || fail "I5 $mode: /dev/$node: $line"
    done
    [ "$(awk '$2 == "/dev/tty" {print $4}' <<<"$dv")" = 0666 ] || fail "I5 $mode: /dev/tty mode"
    # An unprivileged user of the guest uses them too.
    du=$(probe "$G" as 1000 devices $maj $min)
    want "$mode guest user" "$(val "$du" as_user)" 1000
    for node in null zero urandom; do
        [ "$(awk -v p=/dev/$node '$1 == "dev" && $2 == p {print $3}' <<<"$du")" = OK ] ||
            fail "$mode: uid 1000 cannot use /dev/$node"
    done
    ok "I5 $mode: host disk $maj:$min mknod $(val "$dv" mknod_block) open $(val "$dv" open_block); null zero full random urandom work at 0666, also for uid 1000"

    # I6: guest root's host uid is inside its block (default), host root (privileged).
    pid=$(init_pid "$G")
    hostuid=$(awk '/^Uid:/ {print $2}' /proc/$pid/status)
    if [ $mode = default ]; then
        base=$(record "$G" uid_base)
        [ "$base" -ge 268435456 ] || fail "I6: uid block base $base"
        want "I6 uid_map" "$(val "$st" uid_map)" "0 $base 65536"
        want "I6 host uid of init" "$hostuid" "$base"
        ok "I6 default: guest root is host uid $hostuid, block $base..$((base + 65535)) from the store"
    else
        want "I6 privileged uid_map" "$(val "$st" uid_map)" "0 0 4294967295"
        want "I6 privileged host uid" "$hostuid" 0
        ok "I6 privileged: no user namespace (uid_map 0 0 4294967295), as the flag says"
    fi

    # I7: exec'd processes run with no_new_privs; everything is filtered.
    want "I7 $mode NoNewPrivs" "$(val "$st" NoNewPrivs)" 1
    want "I7 $mode Seccomp" "$(val "$st" Seccomp)" 2
    want "I7 $mode init Seccomp" "$(awk '/^Seccomp:/ {print $2}' /proc/$pid/status)" 2
    ok "I7 $mode: NoNewPrivs 1 and Seccomp 2 for exec'd processes, Seccomp 2 for init"

    # I9 (inside): an exec'd process holds fds 0-2 only; init holds no host object
    # but its stdio (fds 3+ are its own script's).
    fd=$(probe "$G" fds)
    want "I9 $mode exec fds" "$(awk '$2 == "/proc/self/fd" {print $3, $4}' <<<"$fd")" "3 0,1,2"
    for f in /proc/$pid/fd/*; do
        n=${f##*/}
        t=$(readlink "$f")
        case $n in 0 | 1 | 2) continue ;; esac
        case $t in /*) ;; *) fail "I9 $mode: init fd $n is $t" ;; esac
    done
    ok "I9 $mode: exec'd fds 0,1,2; init's other fds are its own files"

    # I10: nothing leads to the host's root (a marker file there).
    es=$(probe "$G" escape "${MARKER#/}")
    want "I10 $mode escapes" "$(val "$es" escape_count)" 0
    want "I10 $mode / is init's root" "$(val "$es" root_is_init_root)" 1
    rel=$(nodectl h1 exec "$G" -- ../../../../../usr/bin/vfleet-probe escape "${MARKER#/}")
    want "I10 $mode relative argv[0]" "$(val "$rel" escape_count)" 0
    ok "I10 $mode: the host marker is unreachable by 9 paths and by a ../ argv[0]"

    # I11: no cgroup release_agent can be written.
    cg=$(probe "$G" cgroup)
    want "I11 $mode release_agent" "$(val "$cg" release_agent_written)" 0
    for k in mount_cgroup1 mount_cgroup2 unshare_cgroup_userns; do
        [ "$(val "$cg" $k)" != OK ] || fail "I11 $mode: $k succeeded"
    done
    ok "I11 $mode: release_agent not writable, cgroup mounts refused"

    # I12: a datagram with another source is dropped and counted at the host veth.
    probe "$G" spoof 10.89.9.9 169.254.0.1 >/dev/null
    sp=$(ip netns exec "$NS" nft list counter netdev vfleet "spoof_$IFN" | awk '/packets/ {print $2}')
    [ "${sp:-0}" -ge 3 ] || fail "I12 $mode: spoofed datagrams counted: ${sp:-none}"
    ok "I12 $mode: $sp spoofed datagrams dropped and counted"

    # The host keyring: a key in host root's user keyring cannot be read.
    kr=$(probe "$G" keyring "$KEY")
    want "keyring $mode read" "$(val "$kr" keyctl_read)" EPERM
    want "keyring $mode describe" "$(val "$kr" keyctl_describe)" EPERM
    want "keyring $mode /proc/keys" "$(val "$kr" proc_keys_bytes)" 0
    ok "$mode: host key $KEY unreadable (keyctl EPERM, /proc/keys empty)"

    # The console: 5 MiB through init's stdout leave the ring at its size.
    nodectl h1 exec "$G" -- sh -c 'head -c 5242880 /dev/zero | tr "\0" x >/proc/1/fd/1;
        echo CONSOLE-END-'$mode' >/proc/1/fd/1' >/dev/null
    ring=$T/h1/data/$G/console.ring
    wait_for 20 "console end marker" sh -c "'$VFLEET_BIN/vfleet-node' console $NAME --log \
        --state-dir '$T/h1' | tail -c 64 | grep -q CONSOLE-END-$mode"
    size=$(stat -c %s "$ring")
    want "console $mode ring file" "$size" $((64 + 1048576))
    got=$("$VFLEET_BIN/vfleet-node" console $NAME --log --state-dir "$T/h1" | wc -c)
    want "console $mode bytes kept" "$got" 1048576
    ok "$mode: 5 MiB of console kept as the last $got bytes; the host file stays $size bytes"
done

# ---- I1: an edited set is exactly what the spec says ------------------------------
# Docker's 14 minus net_raw (bit 13) and mknod (bit 27), plus sys_nice (bit 23).
st=$(probe "$C" status)
want "I1 edited CapBnd" "$(val "$st" CapBnd)" 00000000a08405fb
want "I1 edited CapEff" "$(val "$st" CapEff)" 00000000a08405fb
ok "I1 edited: CapBnd=CapEff=a08405fb (-net_raw -mknod +sys_nice)"

# ---- I2: the nesting flag opens namespaces only -------------------------------
sc=$(probe "$N" syscalls)
want "I2 nesting unshare" "$(val "$sc" unshare_user)" OK
want "I2 nesting keyctl" "$(val "$sc" keyctl)" EPERM
want "I2 nesting io_uring" "$(val "$sc" io_uring_setup)" EPERM
ok "I2 nesting: unshare allowed, keyctl and io_uring still EPERM"

# ---- I6: blocks of the guests never overlap -----------------------------------
bd=$(record "$D" uid_base) bn=$(record "$N" uid_base) bp=$(record "$P" uid_base)
want "I6 privileged guest holds no block" "$bp" 0
diff=$((bd > bn ? bd - bn : bn - bd))
[ $diff -ge 65536 ] || fail "I6: blocks $bd and $bn overlap"
ok "I6: blocks $bd and $bn are $diff ids apart (1000-guest allocation: store_test)"

# ---- LXCFS: the guest's own /proc ------------------------------------------------
pr=$(probe "$D" proc)
want "LXCFS MemTotal" "$(val "$pr" MemTotal)" "131072 kB"
up=$(val "$pr" uptime_seconds)
[ "$up" -lt 300 ] || fail "LXCFS uptime $up s"
# What procps' free and uptime read (busybox's ask sysinfo(2), which no
# /proc file changes).
mt=$(nodectl h1 exec "$D" -- awk '/^MemTotal/ {print $2}' /proc/meminfo)
want "MemTotal read by a guest tool" "$mt" 131072
# cpu_max 1 core on a host with more: one processor (LXCFS --enable-cfs).
want "LXCFS cpuinfo processors" "$(val "$pr" cpuinfo_processors)" 1
want "LXCFS cpu online" "$(val "$pr" cpu_online)" 0
ok "LXCFS: MemTotal 131072 kB, uptime ${up}s, 1 processor in cpuinfo and cpu online 0 for cpu_max 1 ($(nproc) on the host)"

# ---- I4: templates whose /proc, /dev, /sys are symlinks to host paths ------------
mkdir -p "$T/victim/proc" "$T/victim/dev" "$T/victim/sys"
echo keep >"$T/victim/proc/file"
cp -a "$TEMPLATES/isolation" "$TEMPLATES/evil"
for d in proc dev sys; do
    rm -rf "${TEMPLATES:?}/evil/$d"
    ln -s "$T/victim/$d" "$TEMPLATES/evil/$d"
done
before=$(find "$T/victim" -printf '%p %s %m\n' | sort | sha256sum)
for flags in "" privileged; do
    E=$(uuid)
    printf '{"id":"%s","name":"evil%s","generation":1,"template":"evil","limits":{"disk":"32M"}%s}\n' \
        "$E" "${flags:+p}" "${flags:+,\"flags\":[\"$flags\"]}" >"$T/evil.json"
    nodectl h1 apply "$T/evil.json" >/dev/null || fail "I4: apply"
    nodectl h1 start "$E" >/dev/null 2>&1 && started=yes || started=no
    grep -q " $T/victim" /proc/self/mountinfo && fail "I4: a mount landed in the host's victim dir"
    [ "$(find "$T/victim" -printf '%p %s %m\n' | sort | sha256sum)" = "$before" ] ||
        fail "I4: the host's victim dir changed"
    nodectl h1 stop "$E" 1 5 >/dev/null 2>&1 || true
    nodectl h1 destroy "$E" >/dev/null || fail "I4: destroy"
    ok "I4 ${flags:-default}: symlinked /proc /dev /sys (start: $started) change nothing on the host"
done

# I8 and I9 try the agent's own code hundreds of times over, the same on any
# kernel; inside the VM test host (QEMU, often without KVM: an exec costs
# ~20x more) they would take most of its time. They run on the host only.
if [ "${VFLEET_VM:-}" = 1 ]; then
    log "I8 and I9 (agent-side loops) not run in the VM: they run in the host's node_isolation"
    exit 0
fi

# ---- I8: the #!/proc/self/exe trick, with a guest attacker -------------------------
sum0=$(sha256sum "$VFLEET_BIN/vfleet-node" | cut -d' ' -f1)
for G in "$D" "$P"; do
    # The attacker runs inside the guest, detached (execs run one at a time).
    nodectl h1 exec "$G" -- sh -c 'printf "#!/proc/self/exe\n" >/tmp/evil; chmod 755 /tmp/evil
        rm -f /tmp/stop /tmp/attack.out
        vfleet-probe exe-attack /tmp/stop >/tmp/attack.tmp 2>&1 </dev/null &&
            mv /tmp/attack.tmp /tmp/attack.out &'
    runs=$(nodectl_t 900 h1 exec-n "$EXECS" "$G" -- /tmp/evil 2>/dev/null) || fail "I8: exec-n"
    nodectl h1 exec "$G" -- touch /tmp/stop
    wait_for 30 "the attacker's report" nodectl h1 exec "$G" -- test -s /tmp/attack.out
    at=$(nodectl h1 exec "$G" -- cat /tmp/attack.out)
    want "I8 exe opened for writing" "$(val "$at" exe_opened_for_write)" 0
    log "I8 $G: execs $runs; attacker: $(tr '\n' ' ' <<<"$at")"
done
sum1=$(sha256sum "$VFLEET_BIN/vfleet-node" | cut -d' ' -f1)
want "I8 vfleet-node binary" "$sum1" "$sum0"
ok "I8: no exe opened for writing; vfleet-node (agent, spawner, exec helper, console reader) byte-identical after 2x$EXECS #!/proc/self/exe execs"

# ---- I9: the agent's fds over create/start/exec/destroy cycles ----------------------
fds0=$(ls /proc/$AGENT/fd | wc -l)
cyc=$(uuid)
printf '{"id":"%s","name":"cycle","generation":1,"template":"isolation","limits":{"disk":"16M"}}\n' "$cyc" >"$T/cycle.json"
t0=$SECONDS
nodectl_t 1800 h1 cycle "$CYCLES" "$T/cycle.json" >/dev/null || fail "I9: cycles"
nodectl_t 600 h1 exec-n "$EXECS" "$D" -- true >/dev/null || fail "I9: execs"
fds1=$(ls /proc/$AGENT/fd | wc -l)
[ $((fds1 - fds0)) -le 5 ] || fail "I9: agent fds grew from $fds0 to $fds1"
ok "I9: agent fds $fds0 -> $fds1 over $CYCLES create/start/exec/destroy cycles and $EXECS execs ($((SECONDS - t0)) s)"
