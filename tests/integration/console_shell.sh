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
import fcntl, os, pty, re, select, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
def read_until(done, secs):
    """Reads until done() holds, or with done None until the session ends."""
    global out
    end = time.time() + secs
    while not (done and done()) and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                d = b""
            if not d:
                return done is None
            out += d
    return bool(done and done())
def give_up(why):
    os.kill(pid, 9)
    sys.stdout.write(out.decode("utf-8", "replace").replace("\r", ""))
    sys.exit("%s in 30 s" % why)
# Root's prompt (PS1 '\h:\w\$ ') says the shell reads its input: each line
# is typed at a prompt, and the session is read to its end.
prompts = lambda n: lambda: len(re.findall(rb"c1:\S*# ", out)) >= n
if not read_until(prompts(1), 30):
    give_up("no prompt")
os.write(fd, b"tty; stty size; hostname\r")
if not read_until(prompts(2), 30):
    give_up("no prompt after the command")
os.write(fd, b"exit 5\r")
if not read_until(None, 30):
    give_up("the session did not end")
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

# Commands as long as the protocol allows: 256 arguments of up to 4096
# bytes (a linux node's spawner request holds 4096 bytes; a longer command
# goes beside it in a sealed memfd). The guest counts what arrived.
pad=$(head -c 4096 /dev/zero | tr '\0' a)
args=()
for i in $(seq 252); do args+=("$pad"); done
script='echo $#; for a; do printf %s "$a"; done | wc -c'
out=$(vf guest exec c1 -- sh -c "$script" x "${args[@]}" | tr -d ' ') ||
    fail "exec of 256 arguments, 1 MiB: $?"
[ "$out" = "$(printf '252\n%d' $((252 * 4096)))" ] || fail "exec of 256 arguments got: $out"
if out=$(vf guest exec c1 -- sh -c "$script" x "${args[@]}" y 2>&1); then
    fail "exec of 257 arguments ran: $out"
fi
echo "$out" | grep -q 256 || fail "exec of 257 arguments: no limit said: $out"
if out=$(vf guest exec c1 -- echo "${pad}a" 2>&1); then
    fail "exec of a 4097-byte argument ran: $out"
fi
echo "$out" | grep -q 4096 || fail "exec of a 4097-byte argument: no limit said: $out"
out=$(vf guest shell c1 -T -- sh -c "$script" x "$pad" "$pad" | tr -d ' ') ||
    fail "shell of an 8 KiB command: $?"
[ "$out" = "$(printf '2\n8192')" ] || fail "shell of an 8 KiB command got: $out"
# A shell's command travels in the URL: one over the master's HTTP limit is
# refused by its server, and the CLI says with what status.
if out=$(vf guest shell c1 -T -- sh -c "$script" x "${args[@]:0:12}" 2>&1); then
    fail "shell of a 48 KiB command ran: $out"
fi
echo "$out" | grep -q '414 URI Too Long' || fail "shell of a 48 KiB command: no status said: $out"
ok "long commands: exec of 256 arguments (1 MiB) arrives whole, 257 or 4097 bytes refused with the limit; a shell's 8 KiB command runs, a 48 KiB one is refused (414)"

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

# Root's hash verifies the password given, through the system's crypt(3);
# then a password of odd bytes (a colon, a newline, a tab, quotes, a
# backslash, UTF-8) is one shadow line whose hash verifies exactly those
# bytes; a NUL, invalid UTF-8 and a hash that would add a line are refused,
# changing nothing.
hash_ok() { # PASSWORD: root's hash in c1's shadow verifies it
    vf guest exec c1 -- cat /etc/shadow | python3 -W ignore -c '
import crypt, sys
pw = sys.argv[1].encode("utf-8", "surrogateescape").decode("utf-8")
lines = [l for l in sys.stdin.read().splitlines() if l.startswith("root:")]
sys.exit(0 if len(lines) == 1 and crypt.crypt(pw, lines[0].split(":")[1]) == lines[0].split(":")[1] else 1)' "$1"
}
hash_ok "correct horse" || fail "root's hash does not verify the password given at create"
odd=$'a:b\n\troot::0:0:"\\ \xc3\xa9\xf0\x9f\x98\x80'
body=$(python3 -c 'import json, sys; print(json.dumps({"provision": {"password": sys.argv[1]}}))' "$odd")
code=$(api_curl -s -o "$T/pw.json" -w '%{http_code}' -X PATCH -H 'Content-Type: application/merge-patch+json' \
    -d "$body" /v1/guests/c1)
[ "$code" = 200 ] || fail "an odd password: $code $(cat "$T/pw.json")"
wait_for 15 "the odd password's hash in shadow" hash_ok "$odd"
[ "$(vf guest exec c1 -- cat /etc/shadow | grep -c '^root:')" = 1 ] || fail "shadow got another root line"
lines=$(vf guest exec c1 -- wc -l /etc/shadow)
gen=$(guest_field c1 generation)
for bad in '{"provision":{"password":"a\u0000b"}}' $'{"provision":{"password":"\xff\xfe"}}' \
    '{"provision":{"password_hash":"$6$salt$abc\nevil::0:0:::::"}}'; do
    code=$(api_curl -s -o "$T/pw.json" -w '%{http_code}' -X PATCH \
        -H 'Content-Type: application/merge-patch+json' -d "$bad" /v1/guests/c1)
    [ "$code" = 400 ] || fail "refused password $bad: $code $(cat "$T/pw.json")"
done
[ "$(guest_field c1 generation)" = "$gen" ] || fail "a refused password changed the guest"
[ "$(vf guest exec c1 -- wc -l /etc/shadow)" = "$lines" ] || fail "a refused password changed shadow"
hash_ok "$odd" || fail "a refused password changed root's hash"
ok "passwords: the create one verifies; odd bytes verify exactly; NUL, bad UTF-8, a line in a hash: 400, nothing changed"

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

# The console: what init's stdout gets, followed on a terminal (a Python
# pty plays it); ^] detaches, the session ends with exit 0.
python3 - "$VFLEET_BIN/vfleet" <<'PY' >"$T/console.out" || fail "console on a terminal: $(cat "$T/console.out")"
import os, pty, select, subprocess, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "guest", "console", "c1"])
out = b""
def read_until(what, secs):
    global out
    end = time.time() + secs
    while what not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return False
    return what in out
if not read_until(b"detach with", 10):
    sys.exit("no banner: %r" % out)
# History: init's line at boot. Then a line written now to init's stdout.
if not read_until(b"guest c1: up", 10):
    sys.exit("no history: %r" % out)
subprocess.run([sys.argv[1], "guest", "exec", "c1", "--", "sh", "-c",
                "echo hello-console-live > /proc/1/fd/1"], check=True, stdout=subprocess.DEVNULL)
if not read_until(b"hello-console-live\r\n", 15):
    sys.exit("the live line did not come: %r" % out)
# Lines end as on a terminal ("\r\n"), though the ring holds a pipe's "\n".
if b"guest c1: up\r\n" not in out:
    sys.exit("the console's lines do not return the carriage: %r" % out[-300:])
os.write(fd, b"\x1d")
if not read_until(b"[detached]", 10):
    sys.exit("^] did not detach: %r" % out)
_, st = os.waitpid(pid, 0)
print(out.decode("utf-8", "replace").replace("\r", ""))
sys.exit(os.WEXITSTATUS(st))
PY
ok "console on a terminal: history, a live line, ^] detached with 0"

# Not on a terminal: SIGTERM detaches (the binary itself in the background:
# a background job of a script would ignore SIGINT).
"$VFLEET_BIN/vfleet" guest console c1 >"$T/console2.out" 2>"$T/console2.err" &
cpid=$!
in_console() { grep -q "guest c1: up" "$T/console2.out"; }
wait_for 15 "the console's history" in_console
# 600 KB at once (over two windows): all of it arrives, in order, none dropped.
vf guest exec c1 -- sh -c 'head -c 600000 /dev/zero | tr "\0" x > /proc/1/fd/1; echo burst-end > /proc/1/fd/1' ||
    fail "write a burst to the console"
burst_done() { grep -q "burst-end" "$T/console2.out"; }
wait_for 30 "the burst's end on the console" burst_done
n=$(grep -o 'x*burst-end' "$T/console2.out" | tr -cd x | wc -c)
[ "$n" = 600000 ] || fail "the console brought $n of 600000 bytes"
grep -q "dropped" "$T/console2.out" && fail "the console said bytes were dropped"
kill -TERM $cpid
set +e
wait $cpid
rc=$?
set -e
[ $rc -eq 0 ] || fail "console detach by SIGTERM: exit $rc ($(cat "$T/console2.err"))"
ok "console off a terminal: a 600 KB burst whole and in order, SIGTERM detached with 0"

# Hostile WebSocket clients, straight on the API's socket: an unmasked
# frame (1002), frames too large (1009), a client that never reads a
# command's endless output and one that floods pings without reading: the
# master's memory stays bounded (the node is held by the window), it keeps
# answering, and the command is hung up when the client goes.
python3 - "$CL/api.sock" "$(cl_master_pid)" <<'PY' || fail "hostile WebSocket clients"
import fcntl, json, os, socket, struct, sys, termios, time, urllib.parse
sock, mpid = sys.argv[1], int(sys.argv[2])
def rss():
    for l in open("/proc/%d/status" % mpid):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) * 1024
def ws_open(argv):
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    q = urllib.parse.quote(json.dumps(argv))
    c.sendall(("GET /v1/guests/c1/shell?tty=false&command=%s HTTP/1.1\r\nHost: x\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % q).encode())
    h = b""
    while b"\r\n\r\n" not in h:
        d = c.recv(1)
        if not d:
            sys.exit("no answer to the upgrade")
        h += d
    if b" 101 " not in h.split(b"\r\n")[0]:
        sys.exit("upgrade: %r" % h)
    return c
def frame(op, payload, masked=True):
    n = len(payload)
    hd = bytes([0x80 | op])
    m = 0x80 if masked else 0
    if n < 126:
        hd += bytes([m | n])
    elif n < 65536:
        hd += bytes([m | 126]) + struct.pack(">H", n)
    else:
        hd += bytes([m | 127]) + struct.pack(">Q", n)
    if not masked:
        return hd + payload
    k = os.urandom(4)
    return hd + k + bytes(b ^ k[i & 3] for i, b in enumerate(payload))
def close_code(c):
    """Reads frames until the close frame; its status code."""
    c.settimeout(10)
    buf = b""
    while True:
        d = c.recv(65536)
        if not d:
            sys.exit("closed without a close frame")
        buf += d
        while len(buf) >= 2:
            n, hl = buf[1] & 0x7f, 2
            if n == 126:
                if len(buf) < 4: break
                n, hl = struct.unpack(">H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10: break
                n, hl = struct.unpack(">Q", buf[2:10])[0], 10
            if len(buf) < hl + n: break
            if buf[0] & 0x0f == 0x8:
                return struct.unpack(">H", buf[hl:hl + 2])[0]
            buf = buf[hl + n:]
for what, data, want in [
        ("unmasked", frame(0x2, b"\0hi", masked=False), 1002),
        ("64-bit length", bytes([0x82, 0xff]) + struct.pack(">Q", 1 << 40) + b"abcd", 1009),
        ("over 64 KiB", bytes([0x82, 0xfe, 0xff, 0xff]) + b"abcd" + b"x" * 1000, 1009)]:
    c = ws_open(["sleep", "30"])
    c.sendall(data)
    got = close_code(c)
    c.close()
    if got != want:
        sys.exit("%s frame: close %d, want %d" % (what, got, want))
    print("%s frame: close %d" % (what, got))
# The window below is as long as the master would take, at the rate output
# flows here, to buffer twice the 16 MiB bound for a client that does not
# read; the rate is measured first, on a client that reads. Here 68-143 MB/s
# (0.2-0.5 s): the window's 3 s floor holds; 30 s at most on a slow machine.
# A master that acked output before writing it grew 256 MiB in the 3 s.
c = ws_open(["cat", "/dev/zero"])
c.settimeout(30)
got, t0 = 0, None
while got < 8 << 20:
    d = c.recv(1 << 16)
    if not d:
        sys.exit("cat /dev/zero ended after %d bytes" % got)
    if t0 is None:
        t0, got = time.time(), 0
    got += len(d)
    if t0 and time.time() - t0 > 2:
        break
rate = got / max(time.time() - t0, 0.001)
c.close()
window = min(max(2 * (16 << 20) / rate, 3), 30)
print("cat /dev/zero read at %d KiB/s: the unread window is %.1f s" % (rate // 1024, window))
before = rss()
c = ws_open(["cat", "/dev/zero"])
# Output flowed to this client: its socket holds the first 64 KiB unread
# (the master sends until the socket is full, then holds the node back).
def queued():
    return struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0" * 4))[0]
end = time.time() + 30
while queued() < 64 << 10:
    if time.time() > end:
        sys.exit("cat /dev/zero's output did not reach the client in 30 s: %d bytes" % queued())
    time.sleep(0.05)
q0, grew, end = queued(), 0, time.time() + window
while time.time() < end:
    grew = max(grew, rss() - before)
    time.sleep(0.1)
print("never read %.1f s of cat /dev/zero (%d KiB queued at the client, then %d): master RSS %+d KiB at most"
      % (window, q0 // 1024, queued() // 1024, grew // 1024))
if grew > 16 << 20:
    sys.exit("the master buffers for a client that does not read: +%d bytes" % grew)
c.close()
c = ws_open(["sleep", "30"])
c.setblocking(False)
ping, sent, end = frame(0x9, b"p" * 125), 0, time.time() + 6
while time.time() < end:
    try:
        sent += c.send(ping)
    except BlockingIOError:
        time.sleep(0.05)
grew = rss() - before
print("%d KiB of pings never read: master RSS %+d KiB" % (sent // 1024, grew // 1024))
if grew > 16 << 20:
    sys.exit("the master's pongs pile up: +%d bytes" % grew)
c.close()
# A flood of control frames on one session ({"signal":28}: SIGWINCH, which
# sleep ignores) while another session echoes lines through cat. Each
# control frame is a message to the node; a master that took them as fast
# as they came filled the node link's queue, the other session's input was
# dropped there and it hung (on main at the 3rd to 10th line).
import threading
flood, echo = ws_open(["sleep", "30"]), ws_open(["cat"])
echo.settimeout(10)
def flooder():
    blob = frame(0x1, b'{"signal":28}') * 4000
    try:
        while True:
            flood.sendall(blob)
    except OSError:
        pass
th = threading.Thread(target=flooder, daemon=True)
th.start()
t0 = time.time()
for i in range(20):
    line = b"line%02d\n" % i
    echo.sendall(frame(0x2, b"\0" + line))
    got = b""
    try:
        while line not in got:
            d = echo.recv(4096)
            if not d:
                sys.exit("the echo session closed at line %d" % i)
            got += d
    except socket.timeout:
        sys.exit("the echo session hung at line %d while another flooded control frames" % i)
    time.sleep(0.1)
print("20 lines echoed in %.1f s beside a flood of control frames" % (time.time() - t0))
flood.shutdown(socket.SHUT_RDWR)
th.join(5)
flood.close()
echo.close()
PY
vf node ls >/dev/null || fail "the master stopped answering"
no_cat() { ! vf guest exec c1 -- ps | grep -q 'cat /dev/zero'; }
wait_for 15 "the unread command hung up" no_cat
ok "hostile clients: 1002, 1009 twice, an unread endless output and a ping flood kept bounded, a control-frame flood starves no other session; hung up"

# Another project's tenant: the guest (and its console) does not exist.
vf project create pother >/dev/null || fail "project create"
tok=$(vf token create --role tenant --project pother 2>/dev/null) || fail "tenant token"
asother() { vf --master "https://127.0.0.1:$CL_PORT" --ca "$CL/api.crt" --token "$tok" "$@"; }
asother guest ls >/dev/null || fail "the tenant's token does not work"
set +e
asother guest console c1 </dev/null >/dev/null 2>"$T/err"; rc_con=$?
asother guest shell c1 -T -- hostname </dev/null >/dev/null 2>>"$T/err"; rc_sh=$?
set -e
[ "$rc_con$rc_sh" = 33 ] || fail "another project's tenant: console $rc_con, shell $rc_sh (want 3): $(cat "$T/err")"
ok "another project's tenant: console and shell 404"

# Private: no shell.
vf guest set c1 --flags private >/dev/null || fail "set private"
set +e
vf guest shell c1 -T -- hostname 2>"$T/err"
rc=$?
set -e
[ $rc -eq 4 ] || fail "private guest: exit $rc ($(cat "$T/err"))"
set +e
vf guest console c1 </dev/null >/dev/null 2>"$T/err2"
rc=$?
set -e
[ $rc -eq 4 ] || fail "private guest's console: exit $rc ($(cat "$T/err2"))"
ok "private guest refused: $(cat "$T/err"); its console too"
