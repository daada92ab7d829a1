#!/usr/bin/env bash
# What the cold start's self-join (12c3e84, 0d729aa) and the templates' held
# clones (0d9341c, ce4e2eb) leave open, checked on a real guest (hostile
# review): the cgroup files the spawner opens for init, its console reader
# and the exec helper are closed before any guest code runs; the backend's
# held clone of the template (a detached mount) is close-on-exec in the agent
# and reaches neither the spawner, the console reader nor any guest process;
# the console reader and an exec'd command sit in every cgroup of the guest.
. "$(dirname "$0")/lib.sh"

build_template
start_agent h1
nodectl h1 wait-hello >/dev/null || fail "no hello"
G=$(uuid)
nodectl h1 apply "$(spec fds "$G" '{"procs":64}')" >/dev/null || fail "apply"
nodectl h1 start "$G" >/dev/null || fail "start"
init=$(jq -r .runtime.pid "$T/h1/guests/$G.json")
alive "$init" || fail "no init"
agent=$(agent_pid h1)

# fds_of PID: "fd target mnt_id flags" per descriptor.
fds_of() {
    local p=$1 f n
    for f in /proc/"$p"/fd/*; do
        n=${f##*/}
        printf '%s %s %s %s\n' "$n" "$(readlink "$f" 2>/dev/null)" \
            "$(awk '/^mnt_id:/ {print $2}' "/proc/$p/fdinfo/$n" 2>/dev/null)" \
            "$(awk '/^flags:/ {print $2}' "/proc/$p/fdinfo/$n" 2>/dev/null)"
    done
}

# The held clone: a descriptor of the agent on "/" whose mount is in no
# mount table of the agent (a detached tree), close-on-exec.
mounts=$(awk '{print $1}' "/proc/$agent/mountinfo" | sort -u)
clones=()
while read -r n target mnt flags; do
    [ "$target" = / ] || continue
    grep -qx "$mnt" <<<"$mounts" && continue
    clones+=("$mnt")
    (( (8#$flags & 8#2000000) != 0 )) || fail "agent fd $n (held clone, mount $mnt) is not close-on-exec: flags $flags"
done < <(fds_of "$agent")
[ ${#clones[@]} -ge 1 ] || log "no held clone in the agent (a kernel before 6.15 clones the path): that check is empty"

# Every process of the guest's cgroup, the spawner and its children.
procs=$(cat "$(cg_path "$G" cgroup.procs)")
spawner=$(pgrep -P "$agent" -x vfleet-spawner || true)
reader=""
for p in $procs; do [ "$(cat /proc/"$p"/comm)" = vfleet-console ] && reader=$p; done
[ -n "$reader" ] || fail "no console reader in the guest's cgroup: $procs"
for p in $procs $spawner; do
    while read -r n target mnt flags; do
        for c in "${clones[@]}"; do
            [ "$mnt" = "$c" ] && [ "$target" = / ] && fail "pid $p ($(cat /proc/"$p"/comm)) holds the template's clone as fd $n"
        done
        case $target in
        /sys/fs/cgroup/*) fail "pid $p ($(cat /proc/"$p"/comm)) holds a cgroup file as fd $n: $target" ;;
        esac
    done < <(fds_of "$p")
done
ok "${#clones[@]} held template clone(s) close-on-exec in the agent and in no other process; no cgroup file is open in the guest, its reader or the spawner"

# Init, after its exec: stdio and what its own shell opened, nothing of ours.
while read -r n target _; do
    case $n:$target in
    0:/dev/null | 1:pipe:* | 2:pipe:*) ;;
    *:/sbin/init) ;; # the shell reading its script
    *) fail "init holds fd $n: $target" ;;
    esac
done < <(fds_of "$init")
ok "init holds only its stdio and its script"

# The console reader: its pipe and ring only, in every cgroup of the guest.
while read -r n target _; do
    case $target in
    pipe:* | "$T"/h1/data/"$G"/console.ring) ;;
    *) fail "the console reader holds fd $n: $target" ;;
    esac
done < <(fds_of "$reader")
grep -E '^[0-9]+:[a-z,_]+:' /proc/"$reader"/cgroup | grep -v "name=" | while IFS=: read -r _ ctl path; do
    [ "$path" = "/vfleet/$G" ] || fail "the console reader is in $ctl:$path, not the guest's"
done
ok "the console reader holds its pipe and ring only, and sits in every cgroup of the guest"

# An exec'd command: stdio and the directory its own listing opens.
# shellcheck disable=SC2016 # expanded by the guest's shell
out=$(nodectl h1 exec "$G" -- sh -c 'for f in /proc/self/fd/*; do echo "${f##*/} $(readlink "$f")"; done; cat /proc/self/cgroup') ||
    fail "exec: $out"
while read -r n target; do
    case $n in
    [0-9]*) ;;
    *) continue ;;
    esac
    [ "$n" -le 2 ] && continue
    case $target in
    /proc/*/fd | "") ;; # the listing's own directory, open or closed by now
    *) fail "the exec'd command holds fd $n: $target" ;;
    esac
done <<<"$(grep -v ':' <<<"$out")"
# Its cgroups, as the guest's namespace shows them: every one the guest's root.
grep -E '^[0-9]+:' <<<"$out" | grep -v "name=" | while IFS=: read -r _ ctl path; do
    [ "$path" = / ] || fail "the exec'd command is in $ctl:$path, outside the guest's cgroup"
done
ok "an exec'd command holds only its stdio and sits in the guest's cgroups"
