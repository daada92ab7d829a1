"""The cases of the contract test (contract_test.py): what is sent to the
running master, phase by phase. Every answer is checked against the spec by
Contract.call; `expect` says which status the case is about, and the few
`c.check` lines check what a schema cannot (a replay is the same answer, a
507 changed nothing, a near miss is in cores)."""

import base64
import hashlib
import http.client
import json
import os
import signal
import subprocess
import threading
import time

BIG = b'{"name":"x","pad":"' + b"x" * (4 << 20) + b'"}'  # over the 4 MiB body cap

# How to reach the master: the TLS context that trusts its certificate and
# the admin token (contract_test.py sets them once the master runs).
TLS = {"ctx": None, "token": None}


def wait_for(what, fn, secs=20.0, step=0.1):
    """Polls fn until it returns something true; raises after secs."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except (OSError, http.client.HTTPException, KeyError, IndexError, TypeError, ValueError):
            pass
        time.sleep(step)
    raise TimeoutError("timed out after %.0fs waiting for %s" % (secs, what))


def quiet_get(port, path):
    """A GET outside the contract's bookkeeping (polling): (status, JSON)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=TLS["ctx"])
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer %s" % TLS["token"]})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def run(c, cl):
    n1, n2 = cl.nodes
    g = Guests(c, cl)
    health_and_routes(c)
    pools(c)
    nodes(c, n1, n2)
    node_trust(c, cl)
    create(c, g, n1, n2)
    batch(c)
    lists(c, n1)
    get_one(c)
    console(c)
    access(c)
    lifecycle(c, g)
    patch(c, g)
    execs(c)
    usage_traffic(c)
    observe(c)
    console_log(c)
    ips(c)
    templates(c, cl, n1, n2)
    operations(c, cl, n1, n2)
    held_operations(c, cl, n1, n2)
    delete(c)
    full_store(c, cl, n1)
    node_silent(c, cl, n1)
    orphans(c, cl, n1)
    shutdown(c, cl, n1)


class Guests:
    """Helpers that wait for a guest's state through the API."""

    def __init__(self, c, cl):
        self.c, self.cl = c, cl

    def state(self, name):
        return quiet_get(self.cl.port, "/v1/guests/" + name)[1].get("state")

    def wait(self, name, state, secs=20):
        wait_for("guest %s %s" % (name, state), lambda: self.state(name) == state, secs)


def bad_bodies(c, method, path, bodies, expect=400, **kw):
    for why, body in bodies:
        if body is None:
            c.call(method, path, expect=expect, why=why, **kw)
        elif isinstance(body, (bytes, str)):
            c.call(method, path, raw=body, expect=expect, why=why, **kw)
        else:
            c.call(method, path, body, expect=expect, why=why, **kw)


# ---- health, unknown paths, 405 on every path ----


def health_and_routes(c):
    c.call("GET", "/healthz", expect=200)
    c.call("GET", "/nope", expect=404, why="no route")
    c.call("GET", "/v1/guests/", expect=404, why="a trailing slash is no route")
    c.call("GET", "/v1/guests/web1/nothing", expect=404, why="no route")
    # A method each path does not have: 405 with Allow (checked against the spec).
    for method, path in [
        ("PUT", "/healthz"),
        ("DELETE", "/v1/nodes"),
        ("PATCH", "/v1/nodes/x1"),
        ("POST", "/v1/nodes/x1/routes"),
        ("GET", "/v1/nodes/x1/cordon"),
        ("DELETE", "/v1/nodes/x1/uncordon"),
        ("GET", "/v1/nodes/x1/revoke"),
        ("DELETE", "/v1/join-tokens"),
        ("DELETE", "/v1/guests"),
        ("GET", "/v1/guests:batch"),
        ("POST", "/v1/guests/x1"),
        ("GET", "/v1/guests/x1/start"),
        ("PUT", "/v1/guests/x1/stop"),
        ("DELETE", "/v1/guests/x1/restart"),
        ("GET", "/v1/guests/x1/exec"),
        ("POST", "/v1/guests/x1/usage"),
        ("DELETE", "/v1/guests/x1/traffic"),
        ("GET", "/v1/guests/x1/traffic/reset"),
        ("GET", "/v1/guests/x1/ips"),
        ("GET", "/v1/guests/x1/ips/10.0.0.1"),
        ("PATCH", "/v1/pools"),
        ("GET", "/v1/pools/x1"),
        ("GET", "/v1/guests/x1/move"),
        ("DELETE", "/v1/guests/x1/export"),
        ("GET", "/v1/guests:import"),
        ("GET", "/v1/nodes/x1/drain"),
        ("POST", "/v1/operations"),
        ("PUT", "/v1/operations/x1"),
        ("GET", "/v1/archives"),
        ("PATCH", "/v1/archives/x1"),
        ("PATCH", "/v1/tokens"),
        ("GET", "/v1/tokens/x1"),
        ("DELETE", "/v1/projects"),
        ("POST", "/v1/projects/x1"),
        ("POST", "/v1/guests/x1/shell"),
        ("PUT", "/v1/templates"),
        ("GET", "/v1/templates/x1"),
        ("GET", "/v1/templates/x1/distribute"),
        ("GET", "/v1/guests/x1/rebuild"),
        ("POST", "/v1/nodes/x1/orphans"),
        ("POST", "/v1/guests/x1/console"),
        ("GET", "/v1/nodes/x1/orphans/x2/adopt"),
        ("POST", "/v1/nodes/x1/orphans/x2"),
        ("POST", "/v1/usage/traffic"),
        ("DELETE", "/v1/events"),
        ("PUT", "/metrics"),
    ]:
        c.call(method, path, expect=405)


# ---- the node link's trust: join tokens, revoke ----


def join(cl, token, name):
    """A node joins with the real program over the master's CurveZMQ endpoint."""
    subprocess.run(
        [os.path.join(cl.bindir, "vfleet-node"), "join", "--master",
         "tcp://127.0.0.1:%d" % cl.zport, "--token", token, "--name", name,
         "--state-dir", os.path.join(cl.tmp, name)],
        check=True, timeout=60, stdout=subprocess.DEVNULL)


def node_trust(c, cl):
    c.call("GET", "/v1/join-tokens", expect=200)
    bad_bodies(c, "POST", "/v1/join-tokens", [
        ("not JSON", "{"),
        ("node not a name", {"node": "Bad_"}),
        ("ttl not a life", {"ttl": "soon"}),
        ("ttl over 30 days", {"ttl": "31d"}),
        ("another member", {"name": "x"}),
    ])
    c.call("POST", "/v1/join-tokens", raw=BIG, expect=413)
    tokens = {}
    for name in ("joined1", "joined2"):
        r = c.call("POST", "/v1/join-tokens", {"node": name, "ttl": "10m"}, expect=201)
        c.check(r.get("node") == name, "a token for %s" % name)
        tokens[name] = r.get("token")
    r = c.call("POST", "/v1/join-tokens", expect=201, why="no body: any name, 1 h")
    c.check(r.get("node") is None, "a token for any name")
    for name, token in tokens.items():
        join(cl, token, name)
    r = c.call("GET", "/v1/join-tokens", expect=200)
    states = sorted(t["state"] for t in r.get("tokens") or [])
    c.check(states == ["unused", "used", "used"], "token states %s" % states)
    c.check(all(tokens[n] not in r.text for n in tokens), "no secret in the listing")
    op = make_token(c, {"role": "operator"})
    c.call("GET", "/v1/join-tokens", auth=op, expect=403, why="an operator")
    c.call("POST", "/v1/join-tokens", {}, auth=op, expect=403, why="an operator")
    c.call("POST", "/v1/nodes/joined1/revoke", auth=op, expect=403, why="an operator")
    k = {"Idempotency-Key": "revoke-1"}
    a = c.call("POST", "/v1/nodes/joined1/revoke", headers=k, expect=200)
    b = c.call("POST", "/v1/nodes/joined1/revoke", headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed revoke is the first answer")
    c.call("POST", "/v1/nodes/joined1/revoke", expect=404, why="revoked already")
    c.call("POST", "/v1/nodes/nope/revoke", expect=404, why="never joined")
    c.call("POST", "/v1/nodes/a%00b/revoke", expect=400, why="control character")
    c.call("POST", "/v1/nodes/joined2/revoke", headers={"Idempotency-Key": "bad key"}, expect=400)
    FULL_STORE["keyed"] = "joined2"


# ---- pools ----


def pools(c):
    c.call("GET", "/v1/pools", expect=200)
    c.call("POST", "/v1/pools", {"name": "simpool", "cidr": "10.89.0.0/24",
                                 "selector": {"sim": "true"}}, expect=201)
    r = c.call("POST", "/v1/pools", {"name": "v6", "cidr": "fd00:89::/120", "gateway": "fd00:89::1",
                                     "selector": {"sim": "true"}}, expect=201)
    c.check(r.get("gateway") == "fd00:89::1", "pool v6: gateway %r" % r.get("gateway"))
    r = c.call("POST", "/v1/pools", {"name": "big6", "cidr": "fd00:90::/64", "gateway": None,
                                     "selector": {"zone": "nowhere"}}, expect=201)
    c.check(isinstance(r.get("size"), str), "a /64 pool's size is a decimal string: %r" % r.get("size"))
    c.call("POST", "/v1/pools", {"name": "spare", "cidr": "10.91.0.0/28"}, expect=201)
    c.call("POST", "/v1/pools", {"name": "spare2", "cidr": "10.91.1.0/28"}, expect=201)
    bad_bodies(c, "POST", "/v1/pools", [
        ("no body", None),
        ("not JSON", "{bad"),
        ("an array", []),
        ("no name", {"cidr": "10.92.0.0/24"}),
        ("bad name", {"name": "Bad_", "cidr": "10.92.0.0/24"}),
        ("no cidr", {"name": "x1"}),
        ("cidr not a string", {"name": "x1", "cidr": 5}),
        ("cidr not a cidr", {"name": "x1", "cidr": "nonsense"}),
        ("gateway not a string", {"name": "x1", "cidr": "10.92.0.0/24", "gateway": 5}),
        ("gateway outside", {"name": "x1", "cidr": "10.92.0.0/24", "gateway": "10.93.0.1"}),
        ("selector not an object", {"name": "x1", "cidr": "10.92.0.0/24", "selector": "a"}),
        ("selector key", {"name": "x1", "cidr": "10.92.0.0/24", "selector": {"Bad_": "x"}}),
        ("selector value", {"name": "x1", "cidr": "10.92.0.0/24", "selector": {"a": 1}}),
        ("17 selector labels", {"name": "x1", "cidr": "10.92.0.0/24",
                                "selector": {"k%d" % i: "v" for i in range(17)}}),
        ("unknown member", {"name": "x1", "cidr": "10.92.0.0/24", "color": "red"}),
    ])
    c.call("POST", "/v1/pools", {"name": "simpool", "cidr": "10.92.0.0/24"}, expect=409, why="name taken")
    c.call("POST", "/v1/pools", {"name": "x2", "cidr": "10.89.0.0/16"}, expect=409, why="overlaps")
    c.call("POST", "/v1/pools", raw=BIG, expect=413)
    # Idempotency: a replay is the first answer; the key on another request is 409.
    k = {"Idempotency-Key": "pool-key-1"}
    a = c.call("POST", "/v1/pools", {"name": "idem1", "cidr": "10.94.0.0/24"}, headers=k, expect=201)
    b = c.call("POST", "/v1/pools", {"name": "idem1", "cidr": "10.94.0.0/24"}, headers=k, expect=201,
               why="replay")
    c.check(a.json == b.json, "a replayed pool create is the first answer")
    c.call("POST", "/v1/pools", {"name": "idem2", "cidr": "10.94.1.0/24"}, headers=k, expect=409,
           why="key reused")
    c.call("POST", "/v1/pools", {"name": "idem3", "cidr": "10.94.2.0/24"},
           headers={"Idempotency-Key": "not a key!"}, expect=400, why="bad key")
    c.call("POST", "/v1/pools", {"name": "idem3", "cidr": "10.94.2.0/24"},
           headers={"Idempotency-Key": "k" * 37}, expect=400, why="key too long")
    c.call("DELETE", "/v1/pools/nope", expect=404)
    c.call("DELETE", "/v1/pools/a%00b", expect=400, why="control character")
    c.call("DELETE", "/v1/pools/Bad_", expect=404, why="not a name")
    c.call("DELETE", "/v1/pools/idem1", expect=204)
    r = c.call("GET", "/v1/pools", expect=200)
    c.check([p["name"] for p in r.get("pools") or []] == ["big6", "simpool", "spare", "spare2", "v6"],
            "pools in name order: %s" % r.text[:300])


# ---- nodes ----


def nodes(c, n1, n2):
    r = c.call("GET", "/v1/nodes", expect=200)
    c.check(len(r.get("nodes") or []) == 2, "two nodes listed")
    r = c.call("GET", "/v1/nodes", query=[("limit", "1")], expect=200)
    c.check(r.get("next") == n1, "a page of 1 has next=%s: %r" % (n1, r.get("next")))
    r = c.call("GET", "/v1/nodes", query=[("limit", "1"), ("after", n1)], expect=200)
    c.check([n["name"] for n in r.get("nodes") or []] == [n2], "the next page holds %s" % n2)
    c.call("GET", "/v1/nodes", query=[("limit", "99999")], expect=200, why="capped, not refused")
    for why, q in [("limit 0", [("limit", "0")]), ("limit -1", [("limit", "-1")]),
                   ("limit abc", [("limit", "abc")]), ("limit 1.5", [("limit", "1.5")]),
                   ("limit empty", [("limit", "")]), ("limit +1", [("limit", "+1")]),
                   ("after not a name", [("after", "Bad_")])]:
        c.call("GET", "/v1/nodes", query=q, expect=400, why=why)
    c.call("GET", "/v1/nodes", query=[("limit", "1"), ("limit", "2")], expect=400, why="limit twice")
    c.call("GET", "/v1/nodes", query=[("Limit", "1")], expect=400, why="not limit")
    for method, path in [("GET", "/healthz"), ("GET", "/v1/join-tokens"), ("GET", "/v1/templates"),
                         ("DELETE", "/v1/templates/nope"), ("GET", "/v1/pools"),
                         ("GET", "/v1/tokens"), ("GET", "/v1/projects")]:
        c.call(method, path, query=[("limit", "1")], expect=400, why="a parameter it does not take")
    r = c.call("GET", "/v1/nodes/" + n1, expect=200)
    c.check(r.get("orphans") == [], "a node's orphans")
    c.call("GET", "/v1/nodes/nope", expect=404)
    c.call("GET", "/v1/nodes/Bad_Name", expect=404, why="not a name")
    c.call("GET", "/v1/nodes/a%00b", expect=400, why="control character")
    c.call("GET", "/v1/nodes/%s/routes" % n1, expect=200)
    c.call("GET", "/v1/nodes/nope/routes", expect=404)
    c.call("GET", "/v1/nodes/a%01b/routes", expect=400, why="control character")
    r = c.call("POST", "/v1/nodes/%s/cordon" % n2, expect=200)
    c.check(r.get("cordoned") is True, "cordoned")
    r = c.call("POST", "/v1/guests", {"name": "on-cordoned", "template": "busybox", "node": n2},
               expect=422, why="pinned to a cordoned node")
    c.check([f["filter"] for f in r.get("error", "placement", "filters") or []] == ["cordoned"],
            "the cordoned filter explains it: %s" % r.text[:300])
    r = c.call("POST", "/v1/nodes/%s/uncordon" % n2, expect=200)
    c.check(r.get("cordoned") is False, "uncordoned")
    c.call("POST", "/v1/nodes/nope/cordon", expect=404)
    c.call("POST", "/v1/nodes/nope/uncordon", expect=404)
    c.call("POST", "/v1/nodes/a%00b/cordon", expect=400, why="control character")
    c.call("POST", "/v1/nodes/%s/cordon" % n1, headers={"Idempotency-Key": "bad key"}, expect=400)
    c.call("POST", "/v1/nodes/%s/uncordon" % n1, headers={"Idempotency-Key": ""}, expect=400,
           why="empty key")
    k = {"Idempotency-Key": "cordon-key-1"}
    a = c.call("POST", "/v1/nodes/%s/cordon" % n1, headers=k, expect=200)
    b = c.call("POST", "/v1/nodes/%s/cordon" % n1, headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed cordon is the first answer")
    c.call("POST", "/v1/nodes/%s/uncordon" % n1, headers=k, expect=409, why="key reused")
    k = {"Idempotency-Key": "uncordon-key-1"}
    c.call("POST", "/v1/nodes/%s/uncordon" % n1, headers=k, expect=200)
    c.call("POST", "/v1/nodes/%s/cordon" % n1, headers=k, expect=409, why="key reused")
    r = c.call("GET", "/v1/nodes/" + n1, expect=200)
    c.check(r.get("cordoned") is False, "uncordoned at the end")


# ---- create ----

FULL = {
    "name": "full", "template": "busybox", "init": "/sbin/init", "domainname": "example.org",
    "halt_signal": "SIGPWR", "stop_timeout": 45, "flags": [], "autostart": True,
    "limits": {"procs": 64, "memory": "256M", "rss": "128M", "swap": 0, "cpu_weight": 200,
               "cpu_max": 0.5, "cpu_burst": 0.25, "io_weight": 100, "disk": "1G", "inodes": 100000,
               "nofile": 1024, "tcp_sockets": 100, "net_in": "10mbit", "net_out": 1000000,
               "io": [{"device": "8:0", "read_bps": "10M", "write_bps": 0, "read_iops": 0,
                       "write_iops": 500}]},
    "caps_add": ["net_admin"], "caps_drop": ["cap_mknod"], "ips": ["auto", "auto6"],
    "labels": {"tier": "web"}, "constraints": {"sim": "true"}, "group": "grp",
    "algorithm": "spread",
}


def create(c, g, n1, n2):
    body = dict(FULL, node=n1)
    r = c.call("POST", "/v1/guests", body, expect=201)
    c.check(r.get("group") == "grp" and r.get("node") == n1 and r.get("message") is None,
            "full: group, node and message: %s" % r.text[:300])
    c.check(r.get("limits", "cpu_max") == 0.5, "cpu_max in cores")
    r = c.call("POST", "/v1/guests", {"name": "web1", "template": "busybox", "ips": ["auto"],
                                      "labels": {"tier": "web"}, "node": n1},
               query=[("wait", "running"), ("timeout", "20")], expect=201)
    c.check(r.get("state") == "running", "wait=running answers a running guest: %r" % r.get("state"))
    for name in ("web2", "victim", "fdel", "fdel2", "held1", "held2"):
        c.call("POST", "/v1/guests", {"name": name, "template": "busybox", "node": n1,
                                      "ips": ["auto"]}, expect=201)
    r = c.call("POST", "/v1/guests", {"name": "bigproc", "template": "busybox",
                                      "limits": {"procs": "9223372036854775808"}}, expect=201)
    c.check(r.get("limits", "procs") == "9223372036854775808",
            "a count above 2^63-1 comes back as a decimal string: %r" % r.get("limits", "procs"))
    c.call("POST", "/v1/guests", {"name": "locked", "template": "busybox", "node": n1}, expect=201)
    c.call("POST", "/v1/guests", {"name": "priv", "template": "busybox", "flags": ["private"],
                                  "node": n1}, expect=201)
    c.call("POST", "/v1/guests", {"name": "many", "template": "busybox", "node": n2,
                                  "ips": ["auto"] * 16}, expect=201)
    for name in ("web1", "web2", "victim", "fdel", "fdel2", "held1", "held2", "locked", "priv"):
        g.wait(name, "running")
    # Locked once it runs (a node does not start a locked guest).
    r = c.call("PATCH", "/v1/guests/locked", {"flags": ["lock"]}, expect=200)
    c.check(r.get("flags") == ["lock"], "locked")

    ok = {"name": "x1", "template": "busybox"}
    bad_bodies(c, "POST", "/v1/guests", [
        ("no body", None),
        ("not JSON", "{"),
        ("JSON null", "null"),
        ("an array", []),
        ("no name", {"template": "busybox"}),
        ("bad name", dict(ok, name="Bad_")),
        ("name not a string", dict(ok, name=5)),
        ("no template", {"name": "x1"}),
        ("bad template", dict(ok, template="Bad_")),
        ("id given", dict(ok, id="11111111-1111-4111-8111-111111111111")),
        ("generation given", dict(ok, generation=1)),
        ("unknown member", dict(ok, color="red")),
        ("limits not an object", dict(ok, limits=5)),
        ("memory not a size", dict(ok, limits={"memory": "abc"})),
        ("memory negative", dict(ok, limits={"memory": -1})),
        ("memory rounds to zero", dict(ok, limits={"memory": "0.0000001K"})),
        ("cpu_max not a number", dict(ok, limits={"cpu_max": "x"})),
        ("cpu_max above 1024", dict(ok, limits={"cpu_max": 2000})),
        ("cpu_max rounds to zero", dict(ok, limits={"cpu_max": 0.0001})),
        ("cpu_weight above 10000", dict(ok, limits={"cpu_weight": 10001})),
        ("rss above memory", dict(ok, limits={"memory": "1M", "rss": "2M"})),
        ("unknown limit", dict(ok, limits={"speed": 1})),
        ("io without device", dict(ok, limits={"io": [{"read_bps": 1}]})),
        ("io device malformed", dict(ok, limits={"io": [{"device": "sda"}]})),
        ("9 io devices", dict(ok, limits={"io": [{"device": "8:%d" % i} for i in range(9)]})),
        ("unknown flag", dict(ok, flags=["nope"])),
        ("unknown capability", dict(ok, caps_add=["nope"])),
        ("unknown signal", dict(ok, halt_signal="SIGNOPE")),
        ("stop_timeout above 3600", dict(ok, stop_timeout=3601)),
        ("relative init", dict(ok, init="sbin/init")),
        ("autostart not a boolean", dict(ok, autostart="yes")),
        ("label key", dict(ok, labels={"Bad_": "x"})),
        ("label value", dict(ok, labels={"k": 1})),
        ("33 labels", dict(ok, labels={"k%d" % i: "v" for i in range(33)})),
        ("ips not an array", dict(ok, ips="auto")),
        ("ips entry not a string", dict(ok, ips=[5])),
        ("17 addresses", dict(ok, ips=["auto"] * 17)),
        ("address in no pool", dict(ok, ips=["10.200.0.1"])),
        ("constraints not an object", dict(ok, constraints="x")),
        ("constraint value", dict(ok, constraints={"k": 5})),
        ("group not a name", dict(ok, group="Bad_")),
        ("node not a name", dict(ok, node=5)),
        ("algorithm", dict(ok, algorithm="fast")),
    ])
    for why, q in [("wait=stopped", [("wait", "stopped")]),
                   ("timeout 0", [("wait", "running"), ("timeout", "0")]),
                   ("timeout abc", [("wait", "running"), ("timeout", "abc")]),
                   ("timeout above 86400", [("wait", "running"), ("timeout", "86401")])]:
        c.call("POST", "/v1/guests", ok, query=q, expect=400, why=why)
    c.call("POST", "/v1/guests", ok, headers={"Idempotency-Key": "a b"}, expect=400, why="bad key")
    c.call("POST", "/v1/guests", raw=BIG, expect=413)
    c.call("POST", "/v1/guests", {"name": "web1", "template": "busybox"}, expect=409, why="name taken")
    web1_ip = c.call("GET", "/v1/guests/web1", expect=200).get("ips", 0)
    c.call("POST", "/v1/guests", dict(ok, ips=[web1_ip]), expect=409, why="address taken")
    # 422, each filter, with the explanation in the API's units.
    r = c.call("POST", "/v1/guests", dict(ok, limits={"memory": "100G"}), expect=422)
    nm = r.get("error", "placement", "near_miss") or {}
    c.check(nm.get("resource") == "memory" and nm.get("need") == 100 << 30,
            "the memory near miss is in bytes: %s" % nm)
    r = c.call("POST", "/v1/guests", dict(ok, limits={"cpu_max": 1000}), expect=422)
    nm = r.get("error", "placement", "near_miss") or {}
    c.check(nm.get("resource") == "cpus" and nm.get("need") == 1000 and 0 < nm.get("free", 0) <= 64,
            "the CPU near miss is in cores, not millicores: %s" % nm)
    r = c.call("POST", "/v1/guests", dict(ok, node="nope"), expect=422, why="pinned to no node")
    c.check((r.get("error", "placement", "filters", 0) or {}).get("filter") == "pinned", "pinned filter")
    c.call("POST", "/v1/guests", dict(ok, constraints={"zone": "nowhere"}), expect=422, why="constraint")
    r = c.call("POST", "/v1/guests", dict(ok, template="nosuch"), expect=422, why="no node has it")
    c.check([f["filter"] for f in r.get("error", "placement", "filters") or []] == ["template"],
            "the template filter explains it: %s" % r.text[:300])
    c.call("POST", "/v1/guests", dict(ok, name="solo1", group="solo"), expect=201)
    c.call("POST", "/v1/guests", dict(ok, name="solo2", group="solo"), expect=201)
    r = c.call("POST", "/v1/guests", dict(ok, name="solo3", group="solo"), expect=422, why="group")
    c.check([f["filter"] for f in r.get("error", "placement", "filters") or []] == ["group"],
            "the group filter explains it: %s" % r.text[:300])
    # Idempotency.
    k = {"Idempotency-Key": "create-key-1"}
    a = c.call("POST", "/v1/guests", dict(ok, name="idemg"), headers=k, expect=201)
    b = c.call("POST", "/v1/guests", dict(ok, name="idemg"), headers=k, expect=201, why="replay")
    c.check(a.get("id") == b.get("id"), "a replayed create is the first guest")
    c.call("POST", "/v1/guests", dict(ok, name="idemh"), headers=k, expect=409, why="key reused")


def batch(c):
    r = c.call("POST", "/v1/guests:batch", {"guests": [
        {"name": "b1", "template": "busybox"},
        {"name": "Bad_", "template": "busybox"},
        {"name": "b2", "template": "busybox", "limits": {"memory": "100G"}},
        5,
    ]}, expect=200)
    res = r.get("results") or []
    codes = [x.get("error", {}).get("code") if "error" in x else "guest" for x in res]
    c.check(codes == ["guest", "bad_request", "unplaceable", "bad_request"],
            "batch results in order: %s" % codes)
    bad_bodies(c, "POST", "/v1/guests:batch", [
        ("no body", None),
        ("empty object", {}),
        ("empty batch", {"guests": []}),
        ("guests not an array", {"guests": "x"}),
        ("another member", {"guests": [{"name": "b3", "template": "busybox"}], "x": 1}),
        ("1001 guests", {"guests": [{"name": "b%d" % i, "template": "busybox"} for i in range(1001)]}),
        ("not JSON", "[["),
    ])
    c.call("POST", "/v1/guests:batch", raw=BIG, expect=413)
    c.call("POST", "/v1/guests:batch", {"guests": [{"name": "b4", "template": "busybox"}]},
           headers={"Idempotency-Key": "%%%"}, expect=400, why="bad key")
    k = {"Idempotency-Key": "batch-key-1"}
    body = {"guests": [{"name": "b5", "template": "busybox"}]}
    a = c.call("POST", "/v1/guests:batch", body, headers=k, expect=200)
    b = c.call("POST", "/v1/guests:batch", body, headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed batch is the first answer")
    c.call("POST", "/v1/guests:batch", {"guests": [{"name": "b6", "template": "busybox"}]},
           headers=k, expect=409, why="key reused")


# ---- list and get ----


def lists(c, n1):
    r = c.call("GET", "/v1/guests", expect=200)
    names = [x["name"] for x in r.get("guests") or []]
    c.check(names == sorted(names) and "web1" in names, "guests in name order")
    r = c.call("GET", "/v1/guests", query=[("node", n1)], expect=200)
    c.check(all(x["node"] == n1 for x in r.get("guests") or []), "?node filters")
    r = c.call("GET", "/v1/guests", query=[("state", "running")], expect=200)
    c.check(all(x["state"] == "running" for x in r.get("guests") or []), "?state filters")
    r = c.call("GET", "/v1/guests", query=[("label", "tier=web")], expect=200)
    c.check(sorted(x["name"] for x in r.get("guests") or []) == ["full", "web1"], "?label filters")
    r = c.call("GET", "/v1/guests", query=[("limit", "2")], expect=200)
    nxt = r.get("next")
    c.check(nxt == names[1], "a page of 2 ends at the second name: %r" % nxt)
    r = c.call("GET", "/v1/guests", query=[("limit", "2"), ("after", nxt or "a")], expect=200)
    c.check([x["name"] for x in r.get("guests") or []] == names[2:4], "the next page")
    for why, q in [("node", [("node", "Bad_")]), ("state", [("state", "sleeping")]),
                   ("label without =", [("label", "tier")]), ("label without key", [("label", "=v")]),
                   ("limit 0", [("limit", "0")]), ("limit x", [("limit", "x")]),
                   ("after", [("after", "-x")])]:
        c.call("GET", "/v1/guests", query=q, expect=400, why=why)


def get_one(c):
    r = c.call("GET", "/v1/guests/full", expect=200)
    c.check(r.get("limits", "io", 0, "device") == "8:0", "limits.io comes back")
    c.check(r.get("caps_add") == ["net_admin"] and r.get("caps_drop") == ["mknod"], "capabilities")
    c.check(r.get("halt_signal") == "SIGPWR", "halt_signal by name")
    c.call("GET", "/v1/guests/nope", expect=404)
    c.call("GET", "/v1/guests/a1%00x", expect=400, why="an encoded NUL")
    c.call("GET", "/v1/guests/UPPER", expect=404, why="not a name")
    c.call("GET", "/v1/guests/" + "a" * 64, expect=404, why="a name too long")


# ---- the console: shell (refusals before any upgrade) and templates ----

WS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def ws_upgrade(c, path):
    """A real upgrade on a TLS socket: the status line, then a close frame.
    http.client cannot take a 101, so this exchange is recorded by hand."""
    import socket
    raw = socket.create_connection(("127.0.0.1", c.port), timeout=10)
    sock = TLS["ctx"].wrap_socket(raw, server_hostname="127.0.0.1")
    try:
        head = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n" % (
            path, c.port, TLS["token"])
        head += "".join("%s: %s\r\n" % kv for kv in WS.items()) + "\r\n"
        sock.sendall(head.encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else 0
        if status == 101:
            c.check(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in got, "101 carries Sec-WebSocket-Accept")
            sock.sendall(bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]))  # close 1000
        with c.lock:
            c.seen.setdefault("getGuestShell", set()).add(str(status))
            c.cases += 1
        return status
    finally:
        sock.close()


def console(c):
    st = ws_upgrade(c, "/v1/guests/full/shell?tty=false&command=%5B%22hostname%22%5D")
    c.check(st == 101, "a running guest's shell upgrades: %d" % st)
    c.call("GET", "/v1/guests/full/shell", expect=400, why="not a WebSocket upgrade")
    c.call("GET", "/v1/guests/nope/shell", headers=WS, expect=404)
    c.call("GET", "/v1/guests/locked/shell", headers=WS, expect=409, why="locked")
    c.call("GET", "/v1/guests/full/shell", query=[("command", "nope")], headers=WS, expect=(400, 409),
           why="command not a JSON array")
    st = ws_upgrade(c, "/v1/guests/full/shell?console=true&tty=false")
    c.check(st == 101, "a guest's console upgrades: %d" % st)
    c.call("GET", "/v1/guests/full/shell", query=[("console", "true"), ("command", '["sh"]')],
           headers=WS, expect=400, why="a console takes no command")
    c.call("GET", "/v1/guests/full/shell", query=[("console", "maybe")], headers=WS, expect=400,
           why="console not true or false")
    c.call("GET", "/v1/guests/priv/shell", query=[("console", "true")], headers=WS, expect=409,
           why="a private guest's console")
    # Rebuild: a stopped guest from its own template, refusals first.
    c.call("POST", "/v1/guests", {"name": "rb1", "template": "busybox"},
           query=[("wait", "running"), ("timeout", "20")], expect=201)
    c.call("POST", "/v1/guests/rb1/rebuild", {}, expect=409, why="running")
    c.call("POST", "/v1/guests/rb1/stop", query=[("wait", "stopped"), ("timeout", "20")], expect=200)
    c.call("POST", "/v1/guests/rb1/rebuild", {"template": 5}, expect=400, why="not a name")
    c.call("POST", "/v1/guests/rb1/rebuild", {"template": "nosuch"}, expect=409, why="no such template")
    c.call("POST", "/v1/guests/nope/rebuild", {}, expect=404)
    r = c.call("POST", "/v1/guests/rb1/rebuild", {"template": "debian"}, expect=200)
    c.check(r.get("template") == "debian" and r.get("rebuild") == 1, "rebuilt onto debian: %s" % r.text[:200])
    c.call("DELETE", "/v1/guests/rb1", expect=204)
    r = c.call("GET", "/v1/templates", expect=200)
    names = [t.get("name") for t in r.get("templates") or []]
    c.check("busybox" in names, "the nodes' templates are listed: %s" % names)


# ---- the template library ----


def template_archive(name, kind="template", hostname=None):
    """A packed template (archive/archive.h): a zstd pax tar, manifest first."""
    import tempfile
    d = tempfile.mkdtemp(prefix="vfcontract-tmpl.")
    os.makedirs(os.path.join(d, "files", "etc"))
    with open(os.path.join(d, "files", "etc", "hostname"), "w") as f:
        f.write((hostname or name) + "\n")
    with open(os.path.join(d, "vfleet-guest.json"), "w") as f:
        json.dump({"format": 1, "kind": kind, "template": name}, f)
    tar = subprocess.run(["tar", "--format=pax", "-C", d, "-cf", "-", "vfleet-guest.json", "files"],
                         check=True, stdout=subprocess.PIPE).stdout
    subprocess.run(["rm", "-rf", d], check=True)
    return subprocess.run(["zstd", "-q", "-c"], input=tar, check=True, stdout=subprocess.PIPE).stdout


def upload(c, data, sha=None):
    u = c.call("POST", "/v1/archives", {"size": len(data), "sha256": sha or hashlib.sha256(data).hexdigest()},
               expect=201).get("id")
    c.call("POST", "/v1/archives/" + u, {"offset": 0, "data": base64.b64encode(data).decode()}, expect=200)
    return u


def templates(c, cl, n1, n2):
    op = make_token(c, {"role": "operator"})
    data = template_archive("ctmpl")
    u = upload(c, data)
    p = "/v1/templates"
    bad_bodies(c, "POST", p, [
        ("no body", None), ("an array", []), ("no archive", {"name": "ctmpl"}),
        ("a bad name", {"name": "../x", "archive": u}), ("unknown member", {"name": "ctmpl", "archive": u, "x": 1}),
        ("another template's archive", {"name": "other", "archive": u}),
    ])
    c.call("POST", p, raw=BIG, expect=413)
    c.call("POST", p, {"name": "ctmpl", "archive": u}, auth=op, expect=403, why="an operator")
    c.call("POST", p, {"name": "ctmpl", "archive": NO_OP}, expect=404, why="no such upload")
    bad = upload(c, data, sha="0" * 64)
    c.call("POST", p, {"name": "ctmpl", "archive": bad}, expect=400, why="a checksum that differs")
    notone = upload(c, template_archive("cguest", kind="guest"))
    c.call("POST", p, {"name": "cguest", "archive": notone}, expect=400, why="not a template archive")
    part = c.call("POST", "/v1/archives", {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()},
                  expect=201).get("id")
    c.call("POST", p, {"name": "ctmpl", "archive": part}, expect=409, why="not arrived whole")
    e = c.call("POST", p, {"name": "ctmpl", "archive": u}, expect=201)
    c.check(e.get("sha256") == hashlib.sha256(data).hexdigest(), "the library's checksum: %s" % e.text[:200])
    c.call("POST", p, {"name": "ctmpl", "archive": upload(c, template_archive("ctmpl", hostname="x"))},
           expect=409, why="another archive under the name")
    t = [x for x in c.call("GET", p, expect=200).get("templates") or [] if x.get("name") == "ctmpl"]
    c.check(len(t) == 1 and t[0].get("library") and t[0].get("node_count") == 0,
            "the library's template is listed with no node: %s" % t)

    # On demand: a guest of it on n2 makes the master send it there.
    r = c.call("POST", "/v1/guests", {"name": "tg1", "template": "ctmpl", "node": n2},
               query=[("wait", "running"), ("timeout", "30")], expect=201)
    c.check(r.get("node") == n2 and r.get("state") == "running", "tg1 runs on %s: %s" % (n2, r.text[:200]))
    ops = c.call("GET", "/v1/operations", expect=200).get("operations") or []
    f = [o for o in ops if o.get("kind") == "template" and o.get("target") == n2]
    c.check(len(f) == 1 and f[0].get("state") == "done", "one template fetch to %s: %s" % (n2, f))
    c.call("DELETE", "/v1/guests/tg1", expect=204)

    d = "/v1/templates/ctmpl/distribute"
    bad_bodies(c, "POST", d, [("an array", []), ("nodes not a list", {"nodes": n1}),
                              ("a node not a name", {"nodes": [7]}), ("unknown member", {"x": 1})])
    c.call("POST", d, raw=BIG, expect=413)
    c.call("POST", d, {"nodes": ["nope"]}, expect=404, why="no such node")
    c.call("POST", "/v1/templates/nosuch/distribute", expect=404, why="not in the library")
    c.call("POST", d, {"nodes": [n1]}, auth=op, expect=403, why="an operator")
    r = c.call("POST", d, {"nodes": [n1, n2]}, expect=202)
    c.check(r.get("present") == [n2] and len(r.get("operations") or []) == 1,
            "pushed to %s, present on %s: %s" % (n1, n2, r.text[:200]))
    e = op_ended(cl, r.get("operations")[0]["operation"])
    c.check(e["state"] == "done", "the push is done: %s" % e)

    c.call("DELETE", "/v1/templates/ctmpl", auth=op, expect=403, why="an operator")
    c.call("DELETE", "/v1/templates/ctmpl", expect=204)
    c.call("DELETE", "/v1/templates/ctmpl", expect=404, why="removed")


# ---- lifecycle ----


def lifecycle(c, g):
    r = c.call("POST", "/v1/guests/web2/stop", query=[("wait", "stopped"), ("timeout", "20")], expect=200)
    c.check(r.get("state") == "stopped" and r.get("desired") == "stopped", "stop ?wait=stopped")
    r = c.call("POST", "/v1/guests/web2/start", query=[("wait", "running"), ("timeout", "20")], expect=200)
    c.check(r.get("state") == "running", "start ?wait=running")
    r = c.call("POST", "/v1/guests/web2/restart", query=[("wait", "running"), ("timeout", "20")],
               expect=200)
    c.check(r.get("state") == "running", "restart ?wait=running")
    c.call("POST", "/v1/guests/web2/stop", expect=200)
    g.wait("web2", "stopped")
    c.call("POST", "/v1/guests/web2/start", expect=200)
    g.wait("web2", "running")
    c.call("POST", "/v1/guests/web2/restart", expect=200)
    g.wait("web2", "running")
    for op, wrong in (("start", "stopped"), ("stop", "running"), ("restart", "stopped")):
        path = "/v1/guests/web2/" + op
        c.call("POST", path, query=[("wait", wrong)], expect=400, why="wait=" + wrong)
        c.call("POST", path, query=[("wait", "yes")], expect=400, why="wait=yes")
        right = "stopped" if op == "stop" else "running"
        c.call("POST", path, query=[("wait", right), ("timeout", "0")], expect=400, why="timeout 0")
        c.call("POST", path, query=[("wait", right), ("timeout", "1e3")], expect=400, why="timeout 1e3")
        c.call("POST", path, query=[("timeout", "5")], expect=400, why="timeout without wait")
        c.call("POST", path, headers={"Idempotency-Key": "no spaces"}, expect=400, why="bad key")
        c.call("POST", "/v1/guests/nope/" + op, expect=404)
        c.call("POST", "/v1/guests/a%00b/" + op, expect=400, why="control character")
    k = {"Idempotency-Key": "start-key-1"}
    a = c.call("POST", "/v1/guests/web2/start", headers=k, expect=200)
    b = c.call("POST", "/v1/guests/web2/start", headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed start is the first answer")
    c.call("POST", "/v1/guests/web2/stop", headers=k, expect=409, why="key reused")
    k = {"Idempotency-Key": "restart-key-1"}
    c.call("POST", "/v1/guests/web2/restart", headers=k, expect=200)
    c.call("POST", "/v1/guests/web2/start", headers=k, expect=409, why="key reused")
    g.wait("web2", "running")
    r = c.call("POST", "/v1/guests/locked/start", expect=409, why="locked")
    c.check(r.get("error", "field") == "flags", "a locked start names flags")
    c.call("POST", "/v1/guests/locked/restart", expect=409, why="locked")


# ---- patch ----


def patch(c, g):
    p = "/v1/guests/web2"
    gen = c.call("GET", p, expect=200).get("generation") or 0
    r = c.call("PATCH", p, {"limits": {"memory": "512M"}, "labels": {"tier": "db", "x": "y"},
                            "flags": []}, expect=200)
    c.check(r.get("limits", "memory") == 512 << 20 and r.get("generation") == gen + 1
            and r.get("labels") == {"tier": "db", "x": "y"}, "a patch applies: %s" % r.text[:200])
    r = c.call("PATCH", p, {"labels": {"x": None}, "limits": {"memory": None}}, expect=200,
               ctype="application/merge-patch+json")
    c.check(r.get("labels") == {"tier": "db"} and r.get("limits", "memory") == 0, "null removes and resets")
    c.call("PATCH", p, {"name": "web2", "template": "busybox"}, expect=200, why="unchanged fixed members")
    r = c.call("PATCH", p, {"restart": "on-failure", "restart_max": 3, "restart_backoff": 10},
               expect=200)
    c.check(r.get("restart") == "on-failure" and r.get("restart_max") == 3
            and r.get("restart_backoff") == 10, "a restart policy: %s" % r.text[:200])
    bad_bodies(c, "PATCH", p, [
        ("no body", None),
        ("empty object", {}),
        ("an array", []),
        ("not JSON", "{]"),
        ("unknown member", {"color": 1}),
        ("limits not an object", {"limits": 5}),
        ("memory not a size", {"limits": {"memory": "abc"}}),
        ("cpu_max negative", {"limits": {"cpu_max": -1}}),
        ("unknown limit", {"limits": {"speed": 1}}),
        ("labels not an object", {"labels": 5}),
        ("label key", {"labels": {"Bad_": "x"}}),
        ("unknown flag", {"flags": ["nope"]}),
        ("flags not an array", {"flags": "lock"}),
        ("generation", {"generation": 9}),
    ])
    c.call("PATCH", p, raw=BIG, expect=413)
    c.call("PATCH", p, {"name": "other"}, expect=409, why="name changed")
    c.call("PATCH", p, {"template": "other"}, expect=409, why="template changed")
    r = c.call("PATCH", p, {"limits": {"disk": "1M"}}, expect=409, why="the node refuses it")
    # lifecycle's last restart has no wait, and the guest reads "running"
    # until its node stops it: it may still be under way here.
    g.wait("web2", "running")
    after = c.call("GET", p, expect=200)
    c.check(after.get("limits", "disk") != 1 << 20 and after.get("state") == "running",
            "a refused patch is undone and the guest runs on: %s" % after.text[:200])
    r = c.call("PATCH", p, {"limits": {"memory": "100G"}}, expect=422, why="does not fit its node")
    c.check(r.get("error", "placement") is not None, "a 422 patch explains the placement")
    c.call("PATCH", "/v1/guests/nope", {"labels": {"a": "b"}}, expect=404)
    c.call("PATCH", "/v1/guests/a%00b", {"labels": {"a": "b"}}, expect=400, why="control character")


# ---- exec ----


def execs(c):
    p = "/v1/guests/web1/exec"
    r = c.call("POST", p, {"argv": ["echo", "hi"]}, expect=200)
    c.check(r.get("stdout") == "echo hi\n" and r.get("exit_code") == 0, "exec output: %s" % r.text)
    r = c.call("POST", p, {"argv": ["false"], "timeout": 5}, expect=200)
    c.check(r.get("exit_code") == 1, "exit code 1")
    k = {"Idempotency-Key": "exec-key-1"}
    a = c.call("POST", p, {"argv": ["echo", "once"]}, headers=k, expect=200)
    b = c.call("POST", p, {"argv": ["echo", "once"]}, headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed exec is the first answer")
    c.call("POST", p, {"argv": ["echo", "twice"]}, headers=k, expect=409, why="key reused")
    bad_bodies(c, "POST", p, [
        ("no body", None),
        ("empty object", {}),
        ("argv empty", {"argv": []}),
        ("argv not an array", {"argv": "ls"}),
        ("argv entry not a string", {"argv": [1]}),
        ("timeout 0", {"argv": ["x"], "timeout": 0}),
        ("timeout 581", {"argv": ["x"], "timeout": 581}),
        ("timeout a string", {"argv": ["x"], "timeout": "5"}),
        ("unknown member", {"argv": ["x"], "env": {}}),
        ("257 arguments", {"argv": ["x"] * 257}),
        ("an argument over 4096 bytes", {"argv": ["x" * 4097]}),
        ("not JSON", "argv"),
    ])
    c.call("POST", p, {"argv": ["x"]}, headers={"Idempotency-Key": "?"}, expect=400, why="bad key")
    c.call("POST", p, raw=BIG, expect=413)
    c.call("POST", "/v1/guests/locked/exec", {"argv": ["ls"]}, expect=409, why="locked")
    c.call("POST", "/v1/guests/priv/exec", {"argv": ["ls"]}, expect=409, why="private")
    c.call("POST", "/v1/guests/nope/exec", {"argv": ["ls"]}, expect=404)


# ---- usage and traffic ----


def console_log(c):
    r = c.call("GET", "/v1/guests/web1/console", expect=200)
    c.check(r.get("total") is not None and r.get("dropped") == r.get("total") - len(r.get("data") or ""),
            "console: total, dropped and data agree: %s" % r.text[:200])
    r = c.call("GET", "/v1/guests/web1/console", query=[("bytes", "3")], expect=200)
    c.check(len(r.get("data") or "") <= 3, "console: at most the bytes asked for")
    for bad in ("0", "x", "1048577", "-1"):
        c.call("GET", "/v1/guests/web1/console", query=[("bytes", bad)], expect=400,
               why="bytes " + bad)
    c.call("GET", "/v1/guests/nope/console", expect=404)
    c.call("GET", "/v1/guests/priv/console", expect=409, why="a private guest's console is its own")


def usage_traffic(c):
    wait_for("a usage sample of web1",
             lambda: c.call("GET", "/v1/guests/web1/usage", expect=(200, 404)).status == 200)
    r = c.call("GET", "/v1/guests/web1/usage", expect=200)
    c.check(r.get("id") == c.call("GET", "/v1/guests/web1").get("id"), "usage names its guest")
    r = c.call("GET", "/v1/guests/web1/traffic", expect=200)
    c.check(r.get("reset") is False, "a read is no reset")
    r = c.call("POST", "/v1/guests/web1/traffic/reset", expect=200)
    c.check(r.get("reset") is True, "a reset says so")
    r = c.call("GET", "/v1/guests/web1/traffic", expect=200)
    c.check(r.get("since") is not None, "after a reset, since is its time")
    k = {"Idempotency-Key": "reset-key-1"}
    a = c.call("POST", "/v1/guests/web1/traffic/reset", headers=k, expect=200)
    b = c.call("POST", "/v1/guests/web1/traffic/reset", headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed reset is the first answer")
    c.call("POST", "/v1/guests/web2/traffic/reset", headers=k, expect=409, why="key reused")
    c.call("POST", "/v1/guests/web1/traffic/reset", headers={"Idempotency-Key": "é"}, expect=400,
           why="bad key")
    for path in ("usage", "traffic"):
        c.call("GET", "/v1/guests/nope/" + path, expect=404)
        c.call("GET", "/v1/guests/a%00b/" + path, expect=400, why="control character")
    c.call("POST", "/v1/guests/nope/traffic/reset", expect=404)
    c.call("POST", "/v1/guests/a%00b/traffic/reset", expect=400, why="control character")


# ---- history, billing, events, metrics ----


def observe(c):
    r = c.call("GET", "/v1/guests/web1/usage", query=[("from", "-10m"), ("step", "1")], expect=200)
    c.check(r.get("resolution") == "raw" and r.get("points") and r.get("latest") is not None,
            "10 minutes at 1 s are raw samples, with the latest: %r" % r.text[:300])
    r = c.call("GET", "/v1/guests/web1/usage", query=[("from", "-1h"), ("step", "60")], expect=200)
    c.check(r.get("resolution") == "1m", "an hour by minutes is the 1-minute tier")
    for q in ([("from", "yesterday")], [("step", "fast")], [("from", "-1h"), ("to", "-2h")]):
        c.call("GET", "/v1/guests/web1/usage", query=q, expect=400, why="bad range")
    r = c.call("GET", "/v1/usage/traffic", query=[("period", "hour")], expect=200)
    c.check(any(row["guest"] == "web1" for row in r.get("rows") or []), "web1 has traffic rows")
    r = c.call("GET", "/v1/usage/traffic", query=[("period", "month"), ("guest", "web1")],
               headers={"Accept": "text/csv"}, expect=200)
    c.check(r.text.startswith("guest,id,period,"), "CSV starts with its header: %r" % r.text[:40])
    c.call("GET", "/v1/usage/traffic", query=[("period", "week")], expect=400)
    c.call("GET", "/v1/usage/traffic", query=[("guest", "nope")], expect=404)
    r = c.call("GET", "/v1/events", query=[("after", "0"), ("limit", "5")], expect=200)
    c.check(len(r.get("events") or []) == 5, "a page of 5 events")
    nxt = r.get("next")
    r = c.call("GET", "/v1/events", query=[("after", str(nxt)), ("type", "guest.*"),
                                           ("guest", "web1")], expect=200)
    c.check(all(e["guest"] == "web1" for e in r.get("events") or []), "filtered by guest")
    r = c.call("GET", "/v1/events", query=[("after", "0"), ("type", "guest.created")],
               headers={"Accept": "application/x-ndjson"}, expect=200)
    seqs = [json.loads(x)["seq"] for x in r.text.splitlines() if x]
    c.check(len(seqs) >= 2 and seqs == sorted(set(seqs)), "JSON lines in order: %r" % seqs[:10])
    c.call("GET", "/v1/events", query=[("limit", "0")], expect=400)
    c.call("GET", "/v1/events", query=[("after", "x")], expect=400)
    # Only the route's own parameters, each once, with a value it takes.
    for why, q in [("an unknown type", [("type", "nope")]),
                   ("one unknown type of two", [("type", "guest.created,nope")]),
                   ("an unknown name", [("Type", "guest.*")]),
                   ("a name given twice", [("guest", "web1"), ("guest", "web1")]),
                   ("limit past 5000", [("limit", "5001")])]:
        c.call("GET", "/v1/events", query=q, expect=400, why=why)
    r = c.call("GET", "/v1/events", query=[("type", "guest.*,node.state"), ("limit", "5000")],
               expect=200)
    r = c.call("GET", "/metrics", expect=200)
    c.check('vfleet_guest_memory_bytes{guest="web1"' in r.text, "web1's memory series")
    node = c.call("GET", "/v1/guests/web1", expect=200).get("node")
    r = c.call("GET", "/metrics", query=[("node", node)], expect=200, why="one node's guests")
    c.check('vfleet_guest_info{guest="web1"' in r.text and "vfleet_nodes{" not in r.text,
            "a node's slice holds its guests and not the cluster's families")
    c.call("GET", "/metrics", query=[("nodes", node)], expect=400, why="an unknown parameter")
    c.call("GET", "/metrics", query=[("node", "")], expect=400, why="an empty name")
    c.call("GET", "/metrics", query=[("node", "nope")], expect=404)
    c.call("GET", "/metrics", query=[("project", "nope")], expect=404)
    t = make_token(c, {"role": "tenant", "project": "default"})
    for path in ("/metrics", "/v1/usage/traffic"):
        c.call("GET", path, auth=t, expect=403, why="a tenant")
    r = c.call("GET", "/v1/events", query=[("after", "0")], auth=t, expect=200, why="a tenant")
    c.check(r.get("events") and all(e["project"] == "default" for e in r.get("events")),
            "a tenant reads its project's events")
    r = c.call("GET", "/v1/events", query=[("project", "p2")], auth=t, expect=200,
               why="a tenant naming another project")
    c.check(not r.get("events"), "a tenant reads nothing of another project")


# ---- addresses ----


def ips(c):
    p = "/v1/guests/web1/ips"
    for ip in ("auto", "auto4", "auto6", "10.89.0.200"):
        r = c.call("POST", p, {"ip": ip}, expect=200)
    c.check("10.89.0.200" in (r.get("ips") or []), "an explicit address is added")
    c.check(any(":" in a for a in r.get("ips") or []), "auto6 gave an IPv6 address")
    k = {"Idempotency-Key": "ip-key-1"}
    a = c.call("POST", p, {"ip": "auto4"}, headers=k, expect=200)
    b = c.call("POST", p, {"ip": "auto4"}, headers=k, expect=200, why="replay")
    c.check(a.json == b.json, "a replayed address add is the first answer")
    c.call("POST", p, {"ip": "auto6"}, headers=k, expect=409, why="key reused")
    bad_bodies(c, "POST", p, [
        ("no body", None),
        ("empty object", {}),
        ("ip not a string", {"ip": 5}),
        ("not an address", {"ip": "zzz"}),
        ("another member", {"ip": "auto", "x": 1}),
        ("not JSON", "ip"),
        ("address in no pool", {"ip": "10.200.0.1"}),
    ])
    c.call("POST", p, {"ip": "auto"}, headers={"Idempotency-Key": "a/b"}, expect=400, why="bad key")
    c.call("POST", p, raw=BIG, expect=413)
    c.call("POST", p, {"ip": "10.89.0.200"}, expect=409, why="held by this guest")
    c.call("POST", "/v1/guests/many/ips", {"ip": "auto"}, expect=409, why="at the address limit")
    c.call("POST", "/v1/guests/nope/ips", {"ip": "auto"}, expect=404)
    c.call("POST", "/v1/guests/a%00b/ips", {"ip": "auto"}, expect=400, why="control character")
    c.call("DELETE", p + "/10.89.0.200", expect=200)
    c.call("DELETE", p + "/10.89.0.200", expect=404, why="no longer held")
    c.call("DELETE", p + "/zzz", expect=400, why="not an address")
    c.call("DELETE", p + "/" + "1" * 60, expect=404, why="longer than an address: no route")
    c.call("DELETE", "/v1/guests/nope/ips/10.89.0.1", expect=404)
    c.call("DELETE", "/v1/guests/a%00b/ips/10.89.0.1", expect=400, why="control character")


# ---- operations: moves, a drain, export and import between the two sim nodes ----

NO_OP = "00000000-0000-4000-8000-000000000000"
KEPT = {}  # what later phases use: an uploaded archive, a running operation's id


def op_ended(cl, oid, secs=60):
    """Waits for an operation's end (outside the bookkeeping); its JSON."""
    def ended():
        o = quiet_get(cl.port, "/v1/operations/" + oid)[1]
        return o if o["state"] != "running" else None
    return wait_for("operation %s" % oid, ended, secs)


def operations(c, cl, n1, n2):
    r = c.call("POST", "/v1/guests", {"name": "mover", "template": "busybox", "node": n1,
                                      "ips": ["auto"]},
               query=[("wait", "running"), ("timeout", "20")], expect=201)
    before = r.json
    r = c.call("POST", "/v1/guests/mover/move", {"to": n2}, expect=202)
    c.check(r.headers.get("location") == "/v1/operations/%s" % r.get("id"),
            "a move's Location: %r" % r.headers.get("location"))
    c.check(r.get("kind") == "move" and r.get("target") == n2, "the move: %s" % r.text[:300])
    o = op_ended(cl, r.get("id"))
    r = c.call("GET", "/v1/operations/" + o["id"], expect=200)
    c.check(r.get("state") == "done" and r.get("result", "to") == n2,
            "the move is done: %s" % r.text[:400])
    g = c.call("GET", "/v1/guests/mover", expect=200)
    c.check(g.get("node") == n2 and g.get("id") == before["id"] and g.get("ips") == before["ips"]
            and g.get("generation") == before["generation"] + 1,
            "a moved guest keeps its id and addresses: %s" % g.text[:300])
    wait_for("mover running", lambda: quiet_get(cl.port, "/v1/guests/mover")[1]["state"] == "running")
    # The scheduler chooses (no body); a replay is the first operation.
    k = {"Idempotency-Key": "move-key-1"}
    a = c.call("POST", "/v1/guests/mover/move", headers=k, expect=202)
    b = c.call("POST", "/v1/guests/mover/move", headers=k, expect=202, why="replay")
    c.check(a.get("id") == b.get("id"), "a replayed move is the first operation")
    c.check(op_ended(cl, a.get("id"))["result"]["to"] == n1, "the scheduler chose the other node")
    wait_for("mover running", lambda: quiet_get(cl.port, "/v1/guests/mover")[1]["state"] == "running")
    c.call("POST", "/v1/guests/mover/move", {"to": n2, "live": True}, expect=202, why="near-live")
    wait_for("mover on %s" % n2, lambda: quiet_get(cl.port, "/v1/guests/mover")[1]["node"] == n2
             and quiet_get(cl.port, "/v1/guests/mover")[1]["state"] == "running")
    p = "/v1/guests/mover/move"
    bad_bodies(c, "POST", p, [
        ("not JSON", "{"),
        ("an array", []),
        ("unknown member", {"speed": 1}),
        ("live not a boolean", {"live": "yes"}),
        ("renumber not a boolean", {"renumber": 1}),
        ("to not a name", {"to": "Bad_"}),
        ("to its own node", {"to": n2}),
        ("constraints not an object", {"constraints": 5}),
        ("constraint value", {"constraints": {"k": 5}}),
    ])
    c.call("POST", p, {"to": n1}, headers={"Idempotency-Key": "a b"}, expect=400, why="bad key")
    c.call("POST", p, raw=BIG, expect=413)
    c.call("POST", p, {"to": "nope"}, expect=422, why="no such node")
    r = c.call("POST", p, {"constraints": {"zone": "nowhere"}}, expect=422, why="constraint")
    c.check(r.get("error", "placement") is not None, "a 422 move explains the placement")
    c.call("POST", "/v1/guests/locked/move", expect=409, why="locked and running")
    c.call("POST", "/v1/guests/nope/move", expect=404)
    c.call("POST", "/v1/guests/a%00b/move", expect=400, why="control character")
    c.call("POST", p, {"to": n1}, headers=k, expect=409, why="key reused")

    # The list, its filters and pages.
    r = c.call("GET", "/v1/operations", expect=200)
    c.check(len(r.get("operations") or []) >= 3, "three moves listed")
    r = c.call("GET", "/v1/operations", query=[("guest", "mover"), ("state", "done")], expect=200)
    c.check(all(x["guest"] == "mover" and x["state"] == "done" for x in r.get("operations") or []),
            "?guest and ?state filter")
    r = c.call("GET", "/v1/operations", query=[("limit", "1")], expect=200)
    nxt = r.get("next")
    r2 = c.call("GET", "/v1/operations", query=[("limit", "1"), ("after", nxt or NO_OP)], expect=200)
    c.check(nxt and r2.get("operations", 0, "id") not in (None, nxt), "the next page")
    c.call("GET", "/v1/operations", query=[("guest", "nobody")], expect=200, why="no such guest")
    for why, q in [("state", [("state", "sleeping")]), ("parent", [("parent", "x")]),
                   ("after", [("after", "web1")]), ("limit 0", [("limit", "0")]),
                   ("guest", [("guest", "Bad_")])]:
        c.call("GET", "/v1/operations", query=q, expect=400, why=why)
    c.call("GET", "/v1/operations/" + NO_OP, expect=404)
    c.call("GET", "/v1/operations/web1", expect=404, why="not an id")
    c.call("GET", "/v1/operations/a%00b", expect=400, why="control character")
    c.call("DELETE", "/v1/operations/" + o["id"], expect=409, why="ended")
    c.call("DELETE", "/v1/operations/" + NO_OP, expect=404)
    c.call("DELETE", "/v1/operations/a%00b", expect=400, why="control character")

    # A drain of n2: every guest leaves, but one of an anti-affinity group
    # whose other member is on n1 (reported, left running).
    r = c.call("POST", "/v1/nodes/%s/drain" % n2, {"limit": 4}, expect=202)
    d = op_ended(cl, r.get("id"), secs=120)
    c.check(d["kind"] == "drain" and d["result"] is not None, "the drain ended: %s" % d)
    r = c.call("GET", "/v1/operations", query=[("parent", d["id"])], expect=200)
    c.check(len(r.get("operations") or []) >= 1
            and all(x["parent"] == d["id"] for x in r.get("operations") or []), "?parent lists its moves")
    left = [x["name"] for x in quiet_get(cl.port, "/v1/guests?node=" + n2)[1]["guests"]]
    c.check(sorted(left) == sorted(d["result"]["failed"]),
            "what stayed on %s is what the drain reports: %s, %s" % (n2, left, d["result"]))
    c.check(quiet_get(cl.port, "/v1/nodes/" + n2)[1]["cordoned"], "a drained node is cordoned")
    c.call("POST", "/v1/nodes/%s/uncordon" % n2, expect=200)
    p = "/v1/nodes/%s/drain" % n2
    bad_bodies(c, "POST", p, [
        ("an array", []),
        ("limit 0", {"limit": 0}),
        ("limit 33", {"limit": 33}),
        ("limit a string", {"limit": "2"}),
        ("live not a boolean", {"live": "no"}),
        ("unknown member", {"speed": 1}),
    ])
    c.call("POST", p, raw=BIG, expect=413)
    c.call("POST", "/v1/nodes/nope/drain", expect=404)
    c.call("POST", "/v1/nodes/a%00b/drain", expect=400, why="control character")

    # Export mover, download the archive; upload it again and import it.
    r = c.call("POST", "/v1/guests/mover/export", expect=202)
    e = op_ended(cl, r.get("id"))
    c.check(e["state"] == "done", "the export is done: %s" % e)
    aid = e["result"]["archive"]
    c.call("POST", "/v1/guests/mover/export", {"x": 1}, expect=400, why="a body")
    c.call("POST", "/v1/guests/nope/export", expect=404)
    c.call("POST", "/v1/guests/a%00b/export", expect=400, why="control character")
    a = c.call("GET", "/v1/archives/" + aid, expect=200)
    c.check(a.get("complete") is True and a.get("kind") == "export", "the export's archive")
    data = b""
    while len(data) < a.get("size"):
        r = c.call("GET", "/v1/archives/" + aid, query=[("offset", str(len(data)))], expect=200)
        data += base64.b64decode(r.get("data"))
        if r.get("eof"):
            break
    sha = hashlib.sha256(data).hexdigest()
    c.check(sha == e["result"]["sha256"], "the download has the export's checksum")
    c.call("GET", "/v1/archives/" + aid, query=[("offset", "x")], expect=400, why="offset x")
    c.call("GET", "/v1/archives/" + aid, query=[("offset", str(len(data) + 1))], expect=400,
           why="offset past the end")
    c.call("GET", "/v1/archives/" + NO_OP, expect=404)
    c.call("GET", "/v1/archives/a%00b", expect=400, why="control character")
    c.call("DELETE", "/v1/archives/" + aid, expect=204)
    c.call("DELETE", "/v1/archives/" + aid, expect=404, why="deleted")
    c.call("DELETE", "/v1/archives/a%00b", expect=400, why="control character")

    k = {"Idempotency-Key": "archive-key-1"}
    u = c.call("POST", "/v1/archives", {"size": len(data), "sha256": sha}, headers=k, expect=201)
    u2 = c.call("POST", "/v1/archives", {"size": len(data), "sha256": sha}, headers=k, expect=201,
                why="replay")
    c.check(u.get("id") == u2.get("id"), "a replayed upload create is the first upload")
    uid = u.get("id")
    bad_bodies(c, "POST", "/v1/archives", [
        ("no body", None), ("an array", []), ("no sha256", {"size": 5}),
        ("size 0", {"size": 0, "sha256": sha}), ("sha256 not hex", {"size": 5, "sha256": "x"}),
        ("unknown member", {"size": 5, "sha256": sha, "x": 1}),
    ])
    c.call("POST", "/v1/archives", raw=BIG, expect=413)
    half = len(data) // 2
    chunk = lambda off, end: {"offset": off, "data": base64.b64encode(data[off:end]).decode()}
    c.call("POST", "/v1/archives/" + uid, chunk(half, len(data)), expect=409, why="not the next offset")
    c.call("POST", "/v1/archives/" + uid, chunk(0, half), expect=200)
    k = {"Idempotency-Key": "chunk-key-1"}
    a = c.call("POST", "/v1/archives/" + uid, chunk(half, len(data)), headers=k, expect=200)
    b = c.call("POST", "/v1/archives/" + uid, chunk(half, len(data)), headers=k, expect=200,
               why="replay")
    c.check(a.json == b.json and a.get("complete") is True, "the upload is complete: %s" % a.text[:200])
    c.call("POST", "/v1/archives/" + uid, chunk(0, 1), expect=409, why="complete")
    bad_bodies(c, "POST", "/v1/archives/" + uid, [
        ("no body", None), ("an array", []), ("offset negative", {"offset": -1, "data": ""}),
        ("data not base64", {"offset": 0, "data": "!!!!"}), ("no data", {"offset": 0}),
    ])
    c.call("POST", "/v1/archives/" + uid, raw=BIG, expect=413)
    c.call("POST", "/v1/archives/" + NO_OP, chunk(0, 1), expect=404)
    c.call("POST", "/v1/archives/a%00b", chunk(0, 1), expect=400, why="control character")
    part = c.call("POST", "/v1/archives", {"size": len(data), "sha256": sha}, expect=201).get("id")

    p = "/v1/guests:import"
    r = c.call("POST", p, {"archive": uid, "name": "imported", "to": n1}, expect=202)
    i = op_ended(cl, r.get("id"))
    c.check(i["state"] == "done" and i["result"]["guest"] == "imported", "the import: %s" % i)
    g = c.call("GET", "/v1/guests/imported", expect=200)
    c.check(g.get("node") == n1 and g.get("id") != before["id"], "an imported guest is a new one")
    bad_bodies(c, "POST", p, [
        ("no body", None), ("an array", []), ("no archive", {"name": "x1"}),
        ("archive not an id", {"archive": "x"}), ("bad name", {"archive": uid, "name": "Bad_"}),
        ("keep_ips not a boolean", {"archive": uid, "keep_ips": "yes"}),
        ("unknown member", {"archive": uid, "x": 1}),
    ])
    c.call("POST", p, raw=BIG, expect=413)
    c.call("POST", p, {"archive": NO_OP}, expect=404)
    c.call("POST", p, {"archive": uid, "name": "mover"}, expect=409, why="name taken")
    c.call("POST", p, {"archive": part, "name": "imp2"}, expect=409, why="not arrived whole")
    r = c.call("POST", p, {"archive": uid, "name": "imp2", "constraints": {"zone": "nowhere"}},
               expect=422)
    KEPT["archive"] = uid


# ---- operations held: a node that does not answer keeps a move and a drain running ----


def held_operations(c, cl, n1, n2):
    mover = quiet_get(cl.port, "/v1/guests/mover")[1]
    src = mover["node"]
    dst = n1 if src == n2 else n2
    cl.agent.send_signal(signal.SIGSTOP)
    try:
        r = c.call("POST", "/v1/guests/mover/move", {"to": dst}, expect=202)
        mv = r.get("id")
        c.call("POST", "/v1/guests/mover/move", {"to": dst}, expect=409, why="moving already")
        c.call("POST", "/v1/guests/mover/export", expect=409, why="moving")
        c.call("POST", "/v1/guests/mover/stop", expect=409, why="moving")
        c.call("PATCH", "/v1/guests/mover", {"labels": {"a": "b"}}, expect=409, why="moving")
        dr = c.call("POST", "/v1/nodes/%s/drain" % src, expect=202).get("id")
        c.call("POST", "/v1/nodes/%s/drain" % src, expect=409, why="being drained")
        cl.fill_store()
        try:
            c.call("DELETE", "/v1/operations/" + mv, expect=507)
        finally:
            cl.free_store()
        wait_for("a writable store", lambda: quiet_get(cl.port, "/healthz")[0] == 200)
        r = c.call("DELETE", "/v1/operations/" + mv, expect=202)
        c.check(r.get("cancel_requested") is True, "a cancel is recorded")
        c.call("DELETE", "/v1/operations/" + dr, expect=202)
    finally:
        cl.agent.send_signal(signal.SIGCONT)
    for oid in (mv, dr):
        o = op_ended(cl, oid, secs=120)
        c.check(o["state"] == "cancelled", "a cancelled operation ends cancelled: %s" % o)
    g = quiet_get(cl.port, "/v1/guests/mover")[1]
    c.check(g["node"] == src and g["id"] == mover["id"], "a cancelled move leaves the guest: %s" % g)
    wait_for("mover running", lambda: quiet_get(cl.port, "/v1/guests/mover")[1]["state"] == "running",
             secs=30)
    c.call("POST", "/v1/nodes/%s/uncordon" % src, expect=200)


# ---- tokens, projects, roles, quotas, and what every operation refuses ----

# What the full-store phase tries to change (made in access()).
FULL_STORE = {"token": None, "project": "full-proj", "keyed": None}

BAD_TOKEN = "tk0000000000." + "0" * 64


def make_token(c, body, **kw):
    r = c.call("POST", "/v1/tokens", body, expect=201, **kw)
    return r.get("token")


def sweep(c):
    """Every operation refuses a request without a token or with an unknown
    one (401; health needs none), one from another origin (403), and a body
    that is not JSON (415) -- before it does anything."""
    for (method, tmpl), op in sorted(c.spec.ops.items()):
        path = tmpl.replace("{name}", "sweep").replace("{addr}", "10.0.0.1")
        if op["operationId"] != "health":
            c.call(method, path, auth=False, expect=401, why="no token")
            c.call(method, path, auth=BAD_TOKEN, expect=401, why="an unknown token")
        c.call(method, path, headers={"Origin": "https://evil.example"}, expect=403,
               why="another origin")
        if "requestBody" in op:
            c.call(method, path, raw="{}", ctype="text/plain", expect=415, why="text/plain")


def tokens(c):
    c.call("GET", "/v1/tokens", expect=200)
    c.call("POST", "/v1/tokens", {"role": "boss"}, expect=400, why="no such role")
    c.call("POST", "/v1/tokens", {"role": "tenant"}, expect=400, why="a tenant without project")
    c.call("POST", "/v1/tokens", {"role": "admin", "project": "default"}, expect=400,
           why="an admin with a project")
    c.call("POST", "/v1/tokens", {"role": "operator", "ttl": "soon"}, expect=400, why="bad ttl")
    c.call("POST", "/v1/tokens", {"role": "tenant", "project": "nope"}, expect=404,
           why="no such project")
    c.call("POST", "/v1/tokens", raw=BIG, expect=413)
    k = {"Idempotency-Key": "tok-1"}
    a = c.call("POST", "/v1/tokens", {"role": "operator"}, headers=k, expect=201)
    b = c.call("POST", "/v1/tokens", {"role": "operator"}, headers=k, expect=201, why="replay")
    c.check(a.get("token") == b.get("token"), "a replayed token create gives the same token")
    c.call("POST", "/v1/tokens", {"role": "admin"}, headers=k, expect=409, why="key reused")
    op = a.get("token")
    exp = make_token(c, {"role": "admin", "ttl": 1, "description": "short"})
    c.call("GET", "/v1/guests", auth=exp, expect=200, why="before it expires")
    time.sleep(1.3)
    c.call("GET", "/v1/guests", auth=exp, expect=401, why="an expired token")
    c.call("GET", "/v1/tokens", auth=op, expect=403, why="an operator")
    c.call("POST", "/v1/tokens", {"role": "admin"}, auth=op, expect=403, why="an operator")
    c.call("DELETE", "/v1/tokens/" + a.get("id"), auth=op, expect=403, why="an operator")
    c.call("POST", "/v1/projects", {"name": "opp"}, auth=op, expect=403, why="an operator")
    c.call("PATCH", "/v1/projects/default", {"quota": {"guests": 1}}, auth=op, expect=403,
           why="an operator")
    c.call("DELETE", "/v1/projects/default", auth=op, expect=403, why="an operator")
    c.call("GET", "/v1/nodes", auth=op, expect=200, why="an operator")
    c.call("DELETE", "/v1/tokens/" + a.get("id"), expect=204)
    c.call("GET", "/v1/nodes", auth=op, expect=401, why="a deleted token")
    c.call("DELETE", "/v1/tokens/" + a.get("id"), expect=404, why="deleted")
    c.call("DELETE", "/v1/tokens/a%00b", expect=400, why="control character")
    FULL_STORE["token"] = c.call("POST", "/v1/tokens", {"role": "operator"}, expect=201).get("id")


def projects(c):
    c.call("GET", "/v1/projects", expect=200)
    c.call("POST", "/v1/projects", {"name": "Bad_"}, expect=400, why="not a name")
    c.call("POST", "/v1/projects", {"name": "p1", "quota": {"memory": "lots"}}, expect=400,
           why="not a size")
    c.call("POST", "/v1/projects", {"name": "p1", "quota": {"guests": -1}}, expect=400,
           why="a negative count")
    c.call("POST", "/v1/projects", raw=BIG, expect=413)
    c.call("POST", "/v1/projects", {"name": "p1", "quota": {"guests": 2, "memory": "256M",
                                                             "addresses": 1, "cpus": 4}},
           expect=201)
    c.call("POST", "/v1/projects", {"name": "p1"}, expect=409, why="name taken")
    c.call("POST", "/v1/projects", {"name": "p2"}, expect=201)
    c.call("POST", "/v1/projects", {"name": FULL_STORE["project"]}, expect=201)
    c.call("GET", "/v1/projects/p1", expect=200)
    c.call("GET", "/v1/projects/nope", expect=404)
    c.call("GET", "/v1/projects/a%00b", expect=400, why="control character")
    c.call("PATCH", "/v1/projects/p2", {"quota": {"disk": "10G", "cpus": None}}, expect=200)
    c.call("PATCH", "/v1/projects/p2", {"quota": {"cpus": "many"}}, expect=400, why="not cores")
    c.call("PATCH", "/v1/projects/p2", raw=BIG, expect=413)
    c.call("PATCH", "/v1/projects/nope", {"quota": {"guests": 1}}, expect=404)
    c.call("POST", "/v1/projects", {"name": "p3"}, expect=201)
    c.call("DELETE", "/v1/projects/p3", expect=204)
    c.call("GET", "/v1/projects/p3", expect=404, why="deleted")
    c.call("DELETE", "/v1/projects/default", expect=409, why="default")
    c.call("DELETE", "/v1/projects/nope", expect=404)
    c.call("DELETE", "/v1/projects/a%00b", expect=400, why="control character")


def tenants(c):
    t1 = make_token(c, {"role": "tenant", "project": "p1"})
    t2 = make_token(c, {"role": "tenant", "project": "p2"})
    # p2's guest, and another project's objects as tenant 1 sees them: 404.
    c.call("POST", "/v1/guests", {"name": "t2g", "template": "busybox"}, auth=t2, expect=201)
    c.call("GET", "/v1/guests/t2g", auth=t1, expect=404, why="another project's guest")
    c.call("PATCH", "/v1/guests/t2g", {"labels": {"a": "b"}}, auth=t1, expect=404,
           why="another project's guest")
    c.call("POST", "/v1/guests/t2g/exec", {"argv": ["true"]}, auth=t1, expect=404,
           why="another project's guest")
    c.call("DELETE", "/v1/guests/t2g", auth=t1, expect=404, why="another project's guest")
    c.call("GET", "/v1/projects/p2", auth=t1, expect=404, why="another project")
    r = c.call("GET", "/v1/guests", auth=t1, expect=200)
    c.check(not r.get("guests"), "tenant 1 lists no guest of another project")
    r = c.call("GET", "/v1/projects", auth=t1, expect=200)
    c.check([p["name"] for p in r.get("projects") or []] == ["p1"], "tenant 1 sees p1 only")
    # What a tenant may not do.
    c.call("GET", "/v1/nodes", auth=t1, expect=403, why="a tenant")
    c.call("GET", "/v1/pools", auth=t1, expect=403, why="a tenant")
    # Moves, drains, exports, imports and archives are for operators.
    c.call("POST", "/v1/guests/t2g/move", auth=t2, expect=403, why="a tenant moving its guest")
    c.call("POST", "/v1/guests/t2g/export", auth=t2, expect=403, why="a tenant exporting")
    c.call("GET", "/v1/operations", auth=t1, expect=403, why="a tenant")
    c.call("POST", "/v1/archives", {"size": 1, "sha256": "0" * 64}, auth=t1, expect=403,
           why="a tenant")
    c.call("POST", "/v1/guests", {"name": "t1x", "template": "busybox", "caps_add": ["sys_admin"]},
           auth=t1, expect=403, why="a tenant adding capabilities")
    c.call("POST", "/v1/guests", {"name": "t1x", "template": "busybox", "flags": ["private"]},
           auth=t1, expect=403, why="a tenant setting private")
    # Quotas of p1: 2 guests, 256M, 1 address. (A PATCH with a foreign
    # origin or no token changes nothing: the sweep covered every route.)
    c.call("POST", "/v1/guests", {"name": "q1", "template": "busybox",
                                  "limits": {"memory": "128M"}, "ips": ["auto"]},
           auth=t1, expect=201)
    c.call("POST", "/v1/guests/q1/ips", {"ip": "auto"}, auth=t1, expect=409, why="addresses quota")
    c.call("POST", "/v1/guests", {"name": "q2", "template": "busybox",
                                  "limits": {"memory": "128M"}}, auth=t1, expect=201)
    r = c.call("POST", "/v1/guests", {"name": "q3", "template": "busybox"}, auth=t1, expect=409,
               why="guests quota")
    c.check(r.get("error", "field") == "quota.guests", "the guests quota is named")
    r = c.call("PATCH", "/v1/guests/q2", {"limits": {"memory": "256M"}}, auth=t1, expect=409,
               why="memory quota")
    c.check(r.get("error", "field") == "quota.memory", "the memory quota is named")
    r = c.call("GET", "/v1/projects/p1", auth=t1, expect=200)
    c.check(r.get("usage", "guests") == 2, "p1 holds 2 guests")
    c.call("DELETE", "/v1/projects/p1", expect=409, why="guests and tokens in it")
    for name in ("q1", "q2"):
        c.call("DELETE", "/v1/guests/" + name, auth=t1, expect=204)
    c.call("DELETE", "/v1/guests/t2g", auth=t2, expect=204)


def access(c):
    sweep(c)
    tokens(c)
    projects(c)
    tenants(c)


# ---- delete ----


def delete(c):
    c.call("DELETE", "/v1/guests/web2", query=[("force", "maybe")], expect=400, why="force=maybe")
    # A refused delete deletes nothing: an unknown name (another case of
    # force), force twice.
    c.call("DELETE", "/v1/guests/web2", query=[("Force", "true")], expect=400, why="Force")
    c.call("DELETE", "/v1/guests/web2", query=[("force", "false"), ("force", "true")], expect=400,
           why="force twice")
    r = c.call("GET", "/v1/guests/web2", expect=200, why="still there")
    c.check(r.get("deleting") is False, "a refused delete left web2 as it was: %r" % r.get("deleting"))
    c.call("DELETE", "/v1/guests/nope", expect=404)
    c.call("DELETE", "/v1/guests/a%00b", expect=400, why="control character")
    c.call("DELETE", "/v1/guests/web2", expect=204)
    c.call("GET", "/v1/guests/web2", expect=404, why="deleted")
    c.call("DELETE", "/v1/guests/b1", query=[("force", "false")], expect=204)
    c.call("DELETE", "/v1/pools/simpool", expect=409, why="addresses allocated")
    c.call("DELETE", "/v1/pools/spare2", expect=204)


# ---- a full store: 507, and nothing changed ----


def full_store(c, cl, n1):
    web1 = c.call("GET", "/v1/guests/web1", expect=200).json
    n_ops = len(quiet_get(cl.port, "/v1/operations")[1]["operations"])
    KEPT["upload"] = c.call("POST", "/v1/archives", {"size": 3, "sha256": "0" * 64},
                            expect=201).get("id")

    def refused(*args, **kw):
        # Topped up before each case: a refused change can give blocks back
        # (a chunk written into its preallocated block is truncated away
        # when its key cannot be stored), and a later commit would fit there.
        cl.fill_store()
        return c.call(*args, expect=507, **kw)

    try:
        refused("POST", "/v1/pools", {"name": "full1", "cidr": "10.95.0.0/24"})
        refused("DELETE", "/v1/pools/spare")
        refused("POST", "/v1/nodes/%s/cordon" % n1)
        refused("POST", "/v1/nodes/%s/uncordon" % n1)
        refused("POST", "/v1/guests", {"name": "full-g", "template": "busybox"})
        refused("POST", "/v1/guests:batch", {"guests": [{"name": "full-b", "template": "busybox"}]})
        refused("PATCH", "/v1/guests/web1", {"labels": {"full": "yes"}})
        refused("DELETE", "/v1/guests/web1")
        refused("POST", "/v1/guests/web1/stop")
        k = {"Idempotency-Key": "full-start"}
        refused("POST", "/v1/guests/web1/start", headers=k, why="its key cannot be stored")
        refused("POST", "/v1/guests/web1/restart", headers=k, why="its key cannot be stored")
        refused("POST", "/v1/guests/web1/traffic/reset")
        refused("POST", "/v1/guests/web1/ips", {"ip": "auto4"})
        refused("DELETE", "/v1/guests/web1/ips/" + web1["ips"][0])
        refused("POST", "/v1/guests/web1/move")
        refused("POST", "/v1/guests/web1/export")
        refused("POST", "/v1/nodes/%s/drain" % n1)
        refused("POST", "/v1/guests:import", {"archive": KEPT["archive"], "name": "full-i"})
        refused("POST", "/v1/archives", {"size": 1 << 20, "sha256": "0" * 64})
        refused("POST", "/v1/archives/" + KEPT["upload"], {"offset": 0, "data": "AAAA"},
                headers={"Idempotency-Key": "full-chunk"}, why="its key cannot be stored")
        refused("POST", "/v1/tokens", {"role": "operator"})
        refused("DELETE", "/v1/tokens/" + FULL_STORE["token"])
        refused("POST", "/v1/join-tokens", {})
        refused("POST", "/v1/nodes/%s/revoke" % FULL_STORE["keyed"])
        refused("POST", "/v1/projects", {"name": "full-p"})
        refused("PATCH", "/v1/projects/" + FULL_STORE["project"], {"quota": {"guests": 7}})
        refused("DELETE", "/v1/projects/" + FULL_STORE["project"])
        # Health writes for real once a commit failed.
        refused("GET", "/healthz")
    finally:
        cl.free_store()
    wait_for("a writable store", lambda: quiet_get(cl.port, "/healthz")[0] == 200)
    # A 507 changed nothing.
    r = c.call("GET", "/v1/nodes/" + n1, expect=200)
    c.check(r.get("cordoned") is False, "a cordon answered 507 left the node uncordoned")
    c.call("GET", "/v1/guests/full-g", expect=404, why="a create answered 507")
    c.call("GET", "/v1/guests/full-b", expect=404, why="a batch answered 507")
    c.call("GET", "/v1/guests/full-i", expect=404, why="an import answered 507")
    c.check(len(quiet_get(cl.port, "/v1/operations")[1]["operations"]) == n_ops,
            "no operation began with a 507")
    c.check(c.call("GET", "/v1/archives/" + KEPT["upload"], expect=200).get("received") == 0,
            "a chunk answered 507 was taken back")
    r = c.call("GET", "/v1/guests/web1", expect=200)
    for key in ("generation", "labels", "ips", "desired", "deleting"):
        c.check(r.get(key) == web1.get(key), "web1's %s after the 507s: %r, was %r"
                % (key, r.get(key), web1.get(key)))
    r = c.call("GET", "/v1/pools", expect=200)
    c.check("full1" not in [p["name"] for p in r.get("pools") or []], "a pool answered 507")
    c.check("spare" in [p["name"] for p in r.get("pools") or []], "a pool delete answered 507")


# ---- a silent node: 404 before its first sample, 409 while deleting, 504, 503 ----


def background(c, *args, **kw):
    out = {}

    def go():
        out["r"] = c.call(*args, **kw)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, out


fdel_ids = []


def node_silent(c, cl, n1):
    cl.agent.send_signal(signal.SIGSTOP)
    try:
        # The node is still ready for a moment: a guest placed now has no sample.
        c.call("POST", "/v1/guests", {"name": "nosample", "template": "busybox", "node": n1},
               expect=201)
        c.call("GET", "/v1/guests/nosample/usage", expect=404, why="no sample yet")
        c.call("GET", "/v1/guests/nosample/traffic", expect=404, why="no sample yet")
        c.call("POST", "/v1/guests/nosample/traffic/reset", expect=404, why="no sample yet")
        # A delete waits for the node; meanwhile the guest is being deleted.
        deleting, dout = background(c, "DELETE", "/v1/guests/victim", expect=(204, 202),
                                    timeout=90, why="the node confirms once it runs again")
        wait_for("victim deleting", lambda: quiet_get(cl.port, "/v1/guests/victim")[1]["deleting"])
        v = "/v1/guests/victim"
        c.call("PATCH", v, {"labels": {"a": "b"}}, expect=409, why="being deleted")
        c.call("POST", v + "/start", expect=409, why="being deleted")
        c.call("POST", v + "/stop", expect=409, why="being deleted")
        c.call("POST", v + "/restart", expect=409, why="being deleted")
        c.call("POST", v + "/ips", {"ip": "auto"}, expect=409, why="being deleted")
        vip = quiet_get(cl.port, v)[1]["ips"][0]
        c.call("DELETE", "%s/ips/%s" % (v, vip), expect=409, why="being deleted")
        # An exec the node never answers: 504 after its timeout plus 10 s.
        ex, xout = background(c, "POST", "/v1/guests/full/exec", {"argv": ["ls"], "timeout": 1},
                              expect=504, timeout=60, why="the node does not answer")
        co, cout = background(c, "GET", "/v1/guests/full/console", expect=504, timeout=60,
                              why="the node does not answer")
        wait_for("%s down" % n1, lambda: quiet_get(cl.port, "/v1/nodes/" + n1)[1]["state"] == "down",
                 secs=30)
        wait_for("every node down", lambda: all(
            n["state"] != "ready" for n in quiet_get(cl.port, "/v1/nodes")[1]["nodes"]), secs=30)
        r = c.call("POST", "/v1/guests", {"name": "late", "template": "busybox"}, expect=503,
                   why="no node is ready")
        c.check(r.get("error", "placement", "filters", 0, "filter") == "ready",
                "the 503 explains: no node ready: %s" % r.text[:300])
        c.call("POST", "/v1/guests/held1/exec", {"argv": ["ls"]}, expect=503, why="node not connected")
        c.call("POST", "/v1/guests/held1/move", expect=503, why="node not connected")
        c.call("POST", "/v1/guests/held1/export", expect=503, why="node not connected")
        c.call("POST", "/v1/guests:import", {"archive": KEPT["archive"], "name": "late-i"},
               expect=503, why="no node is ready")
        c.call("GET", "/v1/guests/held1/console", expect=503, why="node not connected")
        c.call("POST", "/v1/guests/held1/stop", expect=409, why="unknown: its node is down")
        c.call("DELETE", "/v1/guests/fdel", expect=503, why="node not connected")
        c.call("DELETE", "/v1/guests/fdel", query=[("force", "true")], expect=204, why="force")
        c.call("DELETE", "/v1/guests/fdel2", query=[("force", "true")], expect=204, why="force")
        fdel_ids.extend(o["id"] for o in quiet_get(cl.port, "/v1/nodes/%s/orphans" % n1)[1]["orphans"]
                        if o["name"] in ("fdel", "fdel2"))
        ex.join(60)
        c.check("r" in xout, "the held exec was answered")
        co.join(60)
        c.check("r" in cout, "the held console read was answered")
    finally:
        cl.agent.send_signal(signal.SIGCONT)
    deleting.join(90)
    c.check("r" in dout, "the held delete was answered")
    wait_for("nodes ready again", lambda: sum(
        n["state"] == "ready" for n in quiet_get(cl.port, "/v1/nodes")[1]["nodes"]) == 2, secs=30)


# ---- orphans: guests force-deleted while their node was away ----


def orphans(c, cl, n1):
    base = "/v1/nodes/%s/orphans" % n1
    wait_for("fdel and fdel2 seen again as orphans", lambda: sum(
        o["seen"] and o["name"] in ("fdel", "fdel2")
        for o in quiet_get(cl.port, base)[1]["orphans"]) == 2, secs=30)
    r = c.call("GET", base, expect=200)
    c.check(len(fdel_ids) == 2, "both force-deleted guests were orphans at once: %r" % fdel_ids)
    c.call("GET", "/v1/nodes/nope/orphans", expect=404)
    unknown = "00000000-0000-4000-8000-000000000000"
    c.call("POST", "%s/%s/adopt" % (base, unknown), expect=404, why="no such orphan")
    c.call("DELETE", "%s/%s" % (base, unknown), expect=404, why="no such orphan")
    by_name = {o["name"]: o["id"] for o in r.get("orphans") or []}
    c.call("GET", "/v1/nodes/n%00/orphans", expect=400, why="a control character")
    c.call("POST", "%s/%s%%00/adopt" % (base, unknown), expect=400, why="a control character")
    c.call("DELETE", "%s/%s%%00" % (base, unknown), expect=400, why="a control character")
    # Its name is taken meanwhile: 409, and it stays an orphan.
    c.call("POST", "/v1/guests", {"name": "fdel", "template": "busybox", "node": n1}, expect=201)
    c.call("POST", "%s/%s/adopt" % (base, by_name["fdel"]), expect=409, why="its name is taken")
    c.call("DELETE", "/v1/guests/fdel", expect=204)
    r = c.call("POST", "%s/%s/adopt" % (base, by_name["fdel"]), expect=201)
    c.check(r.get("name") == "fdel" and r.get("node") == n1, "adopted fdel: %s" % r.text[:300])
    c.call("POST", "%s/%s/adopt" % (base, by_name["fdel"]), expect=404, why="adopted already")
    c.call("DELETE", "%s/%s" % (base, by_name["fdel2"]), expect=204)
    wait_for("fdel2 gone", lambda: all(
        o["name"] != "fdel2" for o in quiet_get(cl.port, base)[1]["orphans"]), secs=30)


# ---- the master stops with requests held: a wait for a guest's state is
# answered with the guest as it is (its change is stored), a DELETE 202 with
# the guest being deleted (recorded, stays queued), exec 503 ----


def shutdown(c, cl, n1):
    wait_for("held1 and held2 running", lambda: all(
        quiet_get(cl.port, "/v1/guests/" + n)[1]["state"] == "running" for n in ("held1", "held2")),
        secs=30)
    c.call("POST", "/v1/guests/held2/stop", query=[("wait", "stopped")], expect=200)
    cl.agent.send_signal(signal.SIGSTOP)
    try:
        held = [
            background(c, "PATCH", "/v1/guests/held1", {"labels": {"a": "b"}}, expect=200,
                       why="held at shutdown: the change is stored, the guest as it is"),
            background(c, "POST", "/v1/guests/held2/start", query=[("wait", "running")], expect=200,
                       why="held at shutdown: the guest as it is"),
            background(c, "POST", "/v1/guests/web1/stop", query=[("wait", "stopped")], expect=200,
                       why="held at shutdown: the guest as it is"),
            background(c, "POST", "/v1/guests/full/restart", query=[("wait", "running")], expect=200,
                       why="held at shutdown: the guest as it is"),
            background(c, "POST", "/v1/guests/held1/exec", {"argv": ["ls"]}, expect=503,
                       why="held at shutdown"),
            background(c, "POST", "/v1/guests", {"name": "at-exit", "template": "busybox", "node": n1},
                       query=[("wait", "running")], expect=201,
                       why="held at shutdown: stored, the guest as it is"),
            background(c, "DELETE", "/v1/guests/priv", expect=202,
                       why="held at shutdown: the delete is recorded, the guest being deleted"),
        ]
        time.sleep(1.0)  # every request is in and held
        cl.master.send_signal(signal.SIGTERM)
        for t, out in held:
            t.join(30)
            c.check("r" in out, "a held request was answered at shutdown")
        cl.master.wait(30)
        c.check(cl.master.returncode == 0, "the master exits 0 on SIGTERM: %s" % cl.master.returncode)
    finally:
        cl.agent.send_signal(signal.SIGCONT)
    os.kill(cl.agent.pid, signal.SIGTERM)
