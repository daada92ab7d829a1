#!/usr/bin/env bash
# The bash and zsh completions of vfleet (completions/) against the built
# vfleet and a real master (TLS, its Unix socket): groups, commands, "ip"
# sub-commands, options and their values from the program's help, and
# guest/pool/project names from the master, over the socket or over TLS with
# the --master, --pin and --token of the command line.
# zsh's compadd is replaced by a function that prints its words (the one
# piece of the completion system this test does not run). Exits 77 when zsh
# is missing for the zsh half (deploy/install-deps installs it).
set -euo pipefail
src=${VFLEET_SOURCE_DIR:?}
bin=${VFLEET_BIN:?}
export PATH=$bin:$PATH
tmp=$(mktemp -d /tmp/vfleet-completion.XXXXXX)
port=$((17000 + RANDOM % 900))
master_pid=
cleanup() {
    [ -n "$master_pid" ] && kill "$master_pid" 2>/dev/null && wait "$master_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

vfleet-master --db "$tmp/m.db" --listen "127.0.0.1:$port" --bind "ipc://$tmp/m.sock" \
    --socket "$tmp/api.sock" --access-log no --log-level notice 2>"$tmp/master.log" &
master_pid=$!
export VFLEET_MASTER=unix:$tmp/api.sock
for _ in $(seq 100); do vfleet health >/dev/null 2>&1 && break; sleep 0.1; done
vfleet pool create lan4 --cidr 10.250.0.0/24 >/dev/null
vfleet pool create lan6 --cidr fd00:250::/64 >/dev/null
vfleet project create proj1 >/dev/null
pin=$(grep -o 'pin sha256//[A-Za-z0-9+/=]*' "$tmp/master.log" | head -1 | cut -d' ' -f2)
[ -n "$pin" ] || fail "the master logged no pin"
token=$(vfleet token create --role operator 2>/dev/null)

# bash: expect WORDS... -- the completion of the words before it.
# The names the completions ask the master for: a sanitizer build on a loaded
# machine may take more than the interactive 2 s.
export VFLEET_COMPLETE_TIMEOUT=20
bash_expect() {
    local want=$1
    shift
    local got
    # No terminal for the completion and the vfleet it runs, and a bound: a
    # completion that hangs fails here, naming its words.
    got=$(timeout 30 bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
                   COMPREPLY=(); _vfleet; echo "${COMPREPLY[*]}"' _ "$src/completions/vfleet.bash" "$@" </dev/null) ||
        fail "bash [$*]: no answer in 30 s (exit $?)"
    [ "$got" = "$want" ] || fail "bash [$*]: got \"$got\", want \"$want\""
}
bash_expect "node guest op import template pool token project events usage health help" vfleet ""
bash_expect "guest" vfleet gu
bash_expect "traffic" vfleet usage ""
bash_expect "create ls show start stop restart rm set exec shell console rebuild usage ip traffic move export import adopt destroy-orphan" vfleet guest ""
bash_expect "add" vfleet guest ip a
bash_expect "ls show cordon uncordon routes drain orphans token revoke" vfleet node ""
bash_expect "ls show wait cancel" vfleet op ""
bash_expect "vserver openvz freevps" vfleet import ""
bash_expect "running done failed cancelled" vfleet op ls --state ""
bash_expect "pending running stopped unknown lost orphan error" vfleet guest ls --state ""
bash_expect "lan4 lan6" vfleet pool rm ""
bash_expect "lan6" vfleet --json pool rm lan6
bash_expect "create set ls show rm" vfleet project ""
bash_expect "default proj1" vfleet project show ""
bash_expect "admin operator tenant" vfleet token create --role ""
bash_expect "proj1" vfleet guest create web --project p
# Names over TLS: the options that reach and trust the master are passed on
# (without them, the request fails and nothing is offered).
VFLEET_MASTER=https://127.0.0.1:$port bash_expect "" vfleet pool rm ""
VFLEET_MASTER=https://127.0.0.1:$port \
    bash_expect "lan4 lan6" vfleet --pin "$pin" --token "$token" pool rm ""
bash_expect "--algorithm" vfleet guest create web --alg
bash_expect "spread binpack" vfleet guest create web --algorithm ""
bash_expect "--cidr" vfleet pool create p --ci
bash_expect "" vfleet guest exec web -- ""
echo x >"$tmp/web.vfx"
bash_expect "$tmp/web.vfx" vfleet guest import "$tmp/we"
bash_expect "$tmp/web.vfx" vfleet import openvz "$tmp/we"
# Every option a group's help names is offered.
opts=$(bash -c '. "$1"; COMP_WORDS=(vfleet guest create x --); COMP_CWORD=4; _vfleet; echo "${COMPREPLY[*]}"' _ "$src/completions/vfleet.bash")
for o in --template --memory --net-out --wait --master --token --pin --ca --json; do
    [[ " $opts " == *" $o "* ]] || fail "bash: $o missing from guest options: $opts"
done
echo "bash completion: ok"

if ! command -v zsh >/dev/null; then
    echo "zsh not installed: zsh completion not tested" >&2
    exit 77
fi
zsh_expect() {
    local want=$1
    shift
    local got
    got=$(timeout 30 zsh -f -c '
        compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@" }
        _message() { : }
        fpath=("$1" $fpath); shift
        autoload -Uz _vfleet
        words=("$@"); CURRENT=$#
        _vfleet' _ "$src/completions" "$@" </dev/null 2>&1 | grep -v '^$' | tr '\n' ' ') || true
    got=${got% }
    [ "$got" = "$want" ] || fail "zsh [$*]: got \"$got\", want \"$want\""
}
zsh_expect "node guest op import template pool token project events usage health help" vfleet ""
zsh_expect "create ls show start stop restart rm set exec shell console rebuild usage ip traffic move export import adopt destroy-orphan" vfleet guest ""
zsh_expect "add rm" vfleet guest ip ""
zsh_expect "ls show wait cancel" vfleet op ""
zsh_expect "running done failed cancelled" vfleet op ls --state ""
zsh_expect "lan4 lan6" vfleet pool rm ""
zsh_expect "admin operator tenant" vfleet token create --role ""
zsh_expect "default proj1" vfleet project rm ""
VFLEET_MASTER=https://127.0.0.1:$port \
    zsh_expect "lan4 lan6" vfleet --pin "$pin" --token "$token" pool rm ""
zsh_expect "spread binpack" vfleet guest create web --algorithm ""
echo "zsh completion: ok"
