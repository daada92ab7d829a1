#!/usr/bin/env bash
# The operator's console on a real guest: `vfleet guest shell` runs a command
# through the API's WebSocket on a pty of the guest's own devpts and on
# pipes (stdin streamed, exit codes, stderr apart), a private guest is
# refused, and provisioning writes root's password hash, authorized_keys and
# resolv.conf into the guest (create, then a change, seen from inside).
. "$(dirname "$0")/lib.sh"

start_cluster 1

vf guest create c1 --template busybox --memory 128M --disk 64M --wait --timeout 60 \
    --password-stdin --ssh-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYcTest ops@test" \
    --dns 192.0.2.53 --search example.org <<<"correct horse" >/dev/null || fail "create c1"
ok "c1 runs"

# A command on pipes: output, exit code, stdin, stderr kept apart.
out=$(vf guest shell c1 -T -- hostname) || fail "shell hostname: $?"
[ "$out" = c1 ] || fail "hostname said \"$out\""
set +e
vf guest shell c1 -T -- sh -c 'exit 7'
rc=$?
set -e
[ $rc -eq 7 ] || fail "exit code $rc, not 7"
out=$(printf 'one\ntwo\n' | vf guest shell c1 -T -- sh -c 'wc -l; echo oops >&2' 2>"$T/err") ||
    fail "stdin to wc"
[ "$(echo "$out" | tr -d ' ')" = 2 ] || fail "wc -l said \"$out\""
grep -q oops "$T/err" || fail "stderr did not come apart"
big=$(head -c 3000000 /dev/zero | tr '\0' x | vf guest shell c1 -T -- wc -c | tr -d ' ')
[ "$big" = 3000000 ] || fail "3 MB through stdin came out as $big bytes"
ok "pipes: hostname, exit 7, stdin, stderr, 3 MB through the window"

# A terminal: the guest's own pty. A Python pty plays the operator's
# terminal: 100x30, types into root's login shell, reads the screen.
ptyrun() {
    python3 - "$@" <<'PY'
import fcntl, os, pty, select, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
def read_for(secs):
    global out
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return False
            if not d:
                return False
            out += d
    return True
read_for(1.5)
for line in [b"tty; stty size; hostname\r", b"exit 5\r"]:
    os.write(fd, line)
    if not read_for(1.5):
        break
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace").replace("\r", ""))
sys.exit(os.WEXITSTATUS(st))
PY
}
set +e
out=$(ptyrun "$VFLEET_BIN/vfleet" guest shell c1)
rc=$?
set -e
[ $rc -eq 5 ] || fail "login shell: exit $rc, not 5: $out"
echo "$out" | grep -q '^/dev/pts/[0-9]' || fail "no guest pty: $out"
echo "$out" | grep -qx '30 100' || fail "the terminal's size did not arrive: $out"
echo "$out" | grep -qx c1 || fail "hostname on a terminal: $out"
ok "terminal: root's login shell on $(echo "$out" | grep '^/dev/pts' | head -1), 30x100, exit 5"

# Provisioning, seen from inside.
shadow=$(vf guest exec c1 -- cat /etc/shadow)
echo "$shadow" | grep -q '^root:\$y\$' || fail "root's hash is not yescrypt: $shadow"
[ "$(vf guest exec c1 -- cat /root/.ssh/authorized_keys)" = \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYcTest ops@test" ] || fail "authorized_keys"
vf guest exec c1 -- cat /etc/resolv.conf | grep -q '^nameserver 192.0.2.53$' || fail "resolv.conf"
vf guest exec c1 -- ls -ld /root/.ssh | grep -q '^drwx------' || fail ".ssh mode"
[ "$(vf --json guest show c1 | jv '.provision.password')" = true ] || fail "password shown"
vf --json guest show c1 | grep -q 'horse\|\$y\$' && fail "the password or its hash leaks through the API"
vf guest set c1 --dns 2001:db8::53 --search corp.example >/dev/null || fail "set --dns"
vf guest exec c1 -- cat /etc/resolv.conf | grep -q '^nameserver 2001:db8::53$' ||
    fail "resolv.conf after set: $(vf guest exec c1 -- cat /etc/resolv.conf)"
ok "provisioned: yescrypt hash in shadow, authorized_keys 0700 dir, resolv.conf, changed live"

# Rebuild: the guest's files back to the template's, its id, addresses and
# provisioning kept (written again into the fresh files).
id=$(guest_field c1 id)
ips=$(vf --json guest show c1 | jv '.ips')
vf guest exec c1 -- sh -c 'echo mine > /root/scratch' || fail "write a file"
vf guest rebuild c1 >"$T/rebuild.out" || fail "rebuild: $(cat "$T/rebuild.out")"
[ "$(guest_field c1 state)" = running ] || fail "c1 not running after the rebuild"
[ "$(guest_field c1 id)" = "$id" ] || fail "the id changed"
[ "$(vf --json guest show c1 | jv '.ips')" = "$ips" ] || fail "the addresses changed"
[ "$(guest_field c1 rebuild)" = 1 ] || fail "the rebuild counter is $(guest_field c1 rebuild)"
if vf guest exec c1 -- test -e /root/scratch; then fail "the guest's own file survived the rebuild"; fi
[ "$(vf guest exec c1 -- cat /root/.ssh/authorized_keys)" = \
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYcTest ops@test" ] || fail "keys not written again"
vf guest exec c1 -- cat /etc/resolv.conf | grep -q '^nameserver 2001:db8::53$' ||
    fail "resolv.conf not written again"
set +e
api_curl -s -o "$T/rb.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"template":"nosuch"}' /v1/guests/c1/rebuild >"$T/rb.code"
set -e
[ "$(cat "$T/rb.code")" = 409 ] || fail "a rebuild of a running guest: $(cat "$T/rb.code") $(cat "$T/rb.json")"
ok "rebuilt: same id and addresses, its own file gone, provisioning written again; running: 409"

# Private: no shell.
vf guest set c1 --flags private >/dev/null || fail "set private"
set +e
vf guest shell c1 -T -- hostname 2>"$T/err"
rc=$?
set -e
[ $rc -eq 4 ] || fail "private guest: exit $rc ($(cat "$T/err"))"
ok "private guest refused: $(cat "$T/err")"
