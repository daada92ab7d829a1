#!/usr/bin/env bash
# Conflicting requests on one guest at once: a PATCH and a DELETE of the
# same guest, for 100 guests five at a time, on simulated nodes. The PATCH waits for the
# node to apply its generation; when the destroy came first the node never
# applied it, and the PATCH was held until its 30 s deadline (in about one
# round of five), where it must be answered as soon as the guest is gone.
. "$(dirname "$0")/lib.sh"

M=$T/m
mkdir -p "$M"
"$VFLEET_BIN/vfleet-master" --db "$M/master.db" --listen "127.0.0.1:$(free_port)" --bind "ipc://$M/nodes.sock" \
    --socket "$M/api.sock" --log-level info >>"$M/master.log" 2>&1 &
AGENT_PIDS+=($!)
wait_for 10 "the master's socket" test -S "$M/api.sock"
"$VFLEET_BIN/vfleet-node" run --backend sim --sim-nodes 2 --name r$$ --master "ipc://$M/nodes.sock" \
    --state-dir "$T/sim" --heartbeat 500 --log-level notice >>"$T/sim.log" 2>&1 &
AGENT_PIDS+=($!)
ready() { "$VFLEET_BIN/vfleet" --master "unix:$M/api.sock" --json node ls | grep -c '"ready"' | grep -qx 2; }
wait_for 20 "two simulated nodes" ready
ok "master and two simulated nodes"

python3 - "$M/api.sock" <<'PY' || fail "a PATCH beside a DELETE"
import json, socket, sys, threading, time
sock = sys.argv[1]
def call(method, path, body=None):
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.settimeout(10)
    b = json.dumps(body).encode() if body is not None else b""
    c.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (method, path, len(b))).encode() + b)
    out = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        return None
    finally:
        c.close()
    status = int(out.split(b" ")[1])
    # A PATCH the DELETE overtook is refused: the guest is being deleted.
    if status == 409 and b"is being deleted" not in out:
        return -409
    return status
worst, answers, lock = 0.0, {}, threading.Lock()
def race(g):
    global worst
    res = {}
    def patch():
        t0 = time.time()
        res["status"] = call("PATCH", "/v1/guests/" + g, {"limits": {"memory": "96M"}})
        res["secs"] = time.time() - t0
    th = threading.Thread(target=patch)
    th.start()
    time.sleep(0.002)
    st = call("DELETE", "/v1/guests/" + g)
    th.join()
    with lock:
        if res["status"] is None:
            answers["hung"] = "%s (DELETE %s)" % (g, st)
        elif st not in (202, 204) or res["status"] not in (200, 404, 409):
            answers["odd"] = "%s: PATCH %s, DELETE %s" % (g, res["status"], st)
        else:
            answers[res["status"]] = answers.get(res["status"], 0) + 1
            worst = max(worst, res["secs"])
for i in range(20):
    names = ["pd%d-%d" % (i, k) for k in range(5)]
    for g in names:
        st = call("POST", "/v1/guests?wait=running&timeout=8", {"name": g, "template": "busybox"})
        if st != 201:
            sys.exit("create %s: %s" % (g, st))
    ths = [threading.Thread(target=race, args=(g,)) for g in names]
    [t.start() for t in ths]
    [t.join() for t in ths]
    if "hung" in answers:
        sys.exit("round %d: the PATCH of %s got no answer in 10 s" % (i, answers["hung"]))
    if "odd" in answers:
        sys.exit("round %d: %s" % (i, answers["odd"]))
# A 404 is a PATCH whose guest was deleted before the node applied it: the
# case this checks (how many there are is the machine's timing). A 409 is
# one the DELETE overtook: refused, "is being deleted" (any other 409 is
# odd, -409).
print("100 PATCHes beside their guest's DELETE: answers %s, the slowest in %.2f s"
      % (answers, worst))
PY
ok "a PATCH beside a DELETE of its guest: answered at once, 100 guests"
