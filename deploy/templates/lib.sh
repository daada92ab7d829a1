# shellcheck shell=bash
# Shared by the template builders (sourced, not run). Bash.
#
# A template is built in a temporary directory beside its destination and
# renamed into place, so a half-built tree is never used and a rebuild is
# atomic for new guests.

# tpl_tmpdir DEST: makes and prints DEST.tmp.XXXXXX (mode 0755).
tpl_tmpdir() {
    local t
    mkdir -p "$(dirname "$1")"
    t=$(mktemp -d "$1.tmp.XXXXXX")
    chmod 0755 "$t"
    printf '%s\n' "$t"
}

# tpl_discard DIR: unmounts anything left mounted under DIR (debootstrap mounts
# proc and sys in its target and may leave them on failure), then removes it
# without crossing into another filesystem.
tpl_discard() {
    local dir=$1 m
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r m; do umount -l "$m" || true; done
    rm -rf --one-file-system "$dir"
}

# tpl_install_init TREE SRC: vfleet's shell init as TREE/sbin/init, plus a
# default /etc/rc that prints one line and runs the executables in /etc/rc.d.
tpl_install_init() {
    local tree=$1 src=$2 name=$3
    mkdir -p "$tree/sbin" "$tree/etc/rc.d"
    rm -f "$tree/sbin/init"
    install -m 0755 "$src" "$tree/sbin/init"
    cat >"$tree/etc/rc" <<RC
#!/bin/sh
# Started by /sbin/init at boot. Put the guest's services in /etc/rc.d (run in
# name order); init stays up whether or not anything is started.
# The shell reads the hostname itself: \$(hostname) forked a process at
# every boot (the kernel's, in /proc, is what hostname prints).
read -r host 2>/dev/null </proc/sys/kernel/hostname || host=\$(hostname)
echo "vfleet $name guest \$host: up"
for s in /etc/rc.d/*; do
    [ -x "\$s" ] && "\$s"
done
exit 0
RC
    chmod 0755 "$tree/etc/rc"
}

# tpl_all_mounts: the mount table of every mount namespace, each read once
# for each root in it: all processes of a namespace with the same root show
# the same lines (a chrooted one shows fewer, so its root counts apart).
# Reading every process's table was processes x mounts: with 1,000 guests
# on a host, minutes (6.9 M lines).
tpl_all_mounts() {
    printf '%s\n' /proc/[0-9]*/ns/mnt /proc/[0-9]*/root |
        xargs -r stat -L -c '%n %d:%i' 2>/dev/null |
        awk '{ split($1, p, "/"); if ($1 ~ /\/ns\/mnt$/) ns[p[3]] = $2; else root[p[3]] = $2 }
            END { for (k in ns) if ((k in root) && !seen[ns[k] " " root[k]]++)
                print "/proc/" k "/mountinfo" }' |
        xargs -r cat 2>/dev/null || true
}

# tpl_swap TMP DEST WHO: renames TMP to DEST. A previous tree is moved aside
# and removed unless a mount still uses it, in any mount namespace: an overlay
# that names DEST as its lower layer (privileged guests: overlays keep the
# lowerdir string they were mounted with), or an idmapped bind of the tree
# (guests with a user namespace mount data/<id>/lower from it; mountinfo then
# shows the tree's new name, DEST.old.XXXXXX, as that mount's root). Running
# guests keep using the old tree until they restart, and changing a lower
# layer under a mounted overlay is undefined. Such a tree is kept as
# DEST.old.XXXXXX for the operator to delete once those guests restarted.
tpl_swap() {
    local tmp=$1 dest=$2 who=$3 old=
    if [ -e "$dest" ] || [ -L "$dest" ]; then
        old=$(mktemp -u "$dest.old.XXXXXX")
        mv -T "$dest" "$old"
    fi
    mv -T "$tmp" "$dest"
    if [ -n "$old" ]; then
        local mounts
        mounts=$(tpl_all_mounts)
        if grep -qsF "lowerdir=$dest" <<<"$mounts" ||
            awk -v b="/${old##*/}" 'substr($4, length($4) - length(b) + 1) == b { f = 1 }
                END { exit !f }' <<<"$mounts"; then
            echo "$who: kept the previous tree as $old (mounted guests use it)"
        else
            rm -rf --one-file-system "$old"
        fi
    fi
}

# tpl_abspath PATH: PATH made absolute, without a trailing slash.
tpl_abspath() {
    local p=$1
    case $p in
    /*) ;;
    *) p=$PWD/$p ;;
    esac
    printf '%s\n' "${p%/}"
}
