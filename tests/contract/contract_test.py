#!/usr/bin/python3
"""The API contract test: a real vfleet-master and a real node agent with
the sim backend (two simulated nodes), on loopback and an ipc:// socket,
driven through every route of the master's route table, success and error
cases, each answer checked against docs/openapi.yaml:

- the status must be documented for the operation (405 with an `Allow`
  header that lists exactly the path's documented methods, for a method the
  path does not have; 404 for a path that is no route);
- the body must validate against the documented schema for that status
  (JSON Schema 2020-12, formats checked), or be empty when none is;
- a request the spec says is invalid must be answered 400 (or 413), and a
  2xx must answer a request the spec says is valid — so the spec's request
  constraints are the server's;
- every route of master/api.c must have been called, with a success and an
  error, every path must have answered a 405, and every documented status
  must have been seen, unless NOT_EXERCISED says why it cannot be.

The master's store lives on a small tmpfs in the master's own mount
namespace (unshare), so the full-store answers (507) are provoked for real;
the agent is stopped (SIGSTOP) for the node timeouts (504, 503, 409), and
the master is stopped with requests held for the shutdown answers (503).

Needs root (a mount namespace and a tmpfs); exits 77 (skipped) without it.
Environment: VFLEET_BIN (build/bin), VFLEET_SOURCE_DIR (the tree),
VFLEET_OPENAPI (another spec file than docs/openapi.yaml).
Debian's python3-jsonschema and python3-yaml; run with /usr/bin/python3.
"""

import copy
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import openapi_lib  # noqa: E402

SKIP = 77
NOBODY = object()

# Documented statuses this test does not provoke, and why. Anything
# documented that is neither seen nor listed here fails the test, so a new
# status needs a case or a reason.
_SHUTDOWN_ONLY = (
    "503 here only answers a request that arrives while the master shuts down, "
    "or a store that cannot be read for another reason than a full disk: "
    "neither can be timed from outside"
)
NOT_EXERCISED = {
    # A wait held when the master stops is answered with the guest as it
    # is (its change was stored before the wait began); 503 is left for a
    # request that arrives while it shuts down.
    ("patchGuest", "503"): _SHUTDOWN_ONLY,
    ("startGuest", "503"): _SHUTDOWN_ONLY,
    ("stopGuest", "503"): _SHUTDOWN_ONLY,
    ("restartGuest", "503"): _SHUTDOWN_ONLY,
    ("health", "503"): "the store not writable for another reason than a full disk (507 is tested)",
    ("listNodes", "503"): _SHUTDOWN_ONLY,
    ("getNode", "503"): _SHUTDOWN_ONLY,
    ("getNodeRoutes", "503"): _SHUTDOWN_ONLY,
    ("cordonNode", "503"): _SHUTDOWN_ONLY,
    ("uncordonNode", "503"): _SHUTDOWN_ONLY,
    ("listGuests", "503"): _SHUTDOWN_ONLY,
    ("createGuestsBatch", "503"): _SHUTDOWN_ONLY,
    ("getGuest", "503"): _SHUTDOWN_ONLY,
    ("getGuestUsage", "503"): _SHUTDOWN_ONLY,
    ("getGuestTraffic", "503"): _SHUTDOWN_ONLY,
    ("resetGuestTraffic", "503"): _SHUTDOWN_ONLY,
    ("addGuestIp", "503"): _SHUTDOWN_ONLY,
    ("removeGuestIp", "503"): _SHUTDOWN_ONLY,
    ("listPools", "503"): _SHUTDOWN_ONLY,
    ("createPool", "503"): _SHUTDOWN_ONLY,
    ("deletePool", "503"): _SHUTDOWN_ONLY,
    ("listOperations", "503"): _SHUTDOWN_ONLY,
    ("getOperation", "503"): _SHUTDOWN_ONLY,
    ("cancelOperation", "503"): _SHUTDOWN_ONLY,
    ("drainNode", "503"): _SHUTDOWN_ONLY,
    ("createArchive", "503"): "the archives' directory failing for another reason than a full disk",
    ("putArchiveChunk", "503"): "the archives' directory failing for another reason than a full disk",
    ("deleteGuest", "409"): "a node that refuses a destroy: the sim backend never does",
    ("listTokens", "503"): _SHUTDOWN_ONLY,
    ("createToken", "503"): _SHUTDOWN_ONLY,
    ("deleteToken", "503"): _SHUTDOWN_ONLY,
    ("listProjects", "503"): _SHUTDOWN_ONLY,
    ("createProject", "503"): _SHUTDOWN_ONLY,
    ("getProject", "503"): _SHUTDOWN_ONLY,
    ("patchProject", "503"): _SHUTDOWN_ONLY,
    ("deleteProject", "503"): _SHUTDOWN_ONLY,
    ("addGuestIp", "422"): "a node's address capacity: simulated nodes report none",
    ("getGuestShell", "403"): "every role may open a shell (a tenant in its own project)",
    ("getGuestShell", "503"): "the guest's node not connected: " + _SHUTDOWN_ONLY,
    ("getGuestShell", "504"): "a node that never answers guest.shell: the sim backend always does",
    ("listTemplates", "403"): "every role may list templates (a tenant sees no node names)",
    ("listTemplates", "503"): _SHUTDOWN_ONLY,
    ("rebuildGuest", "403"): "every role may rebuild its guests",
    ("rebuildGuest", "413"): "the body limit is tested on other POST routes; this one takes a template name",
    ("rebuildGuest", "503"): "the guest's node not connected: " + _SHUTDOWN_ONLY,
    ("rebuildGuest", "507"): "the full store is tested on other changes",
    ("listNodeOrphans", "503"): _SHUTDOWN_ONLY,
    ("adoptOrphan", "503"): _SHUTDOWN_ONLY,
    ("adoptOrphan", "507"): "a full store while an orphan waits: the full-store case runs before any orphan exists",
    ("getEvents", "503"): "more event streams open at once than the per-address connection limit "
                          "lets one client open (64 each)",
    ("destroyOrphan", "503"): "the orphan's node not connected: the orphans are made and resolved while it is up",
    ("revokeNode", "503"): _SHUTDOWN_ONLY,
    ("createJoinToken", "503"): _SHUTDOWN_ONLY,
    ("addTemplate", "503"): _SHUTDOWN_ONLY,
    ("deleteTemplate", "409"): "a removal while the template is being sent: a fetch to a sim node ends "
                               "before a request can be timed into it",
    ("deleteTemplate", "503"): _SHUTDOWN_ONLY,
    ("distributeTemplate", "503"): "a named node that is not connected: the contract's nodes are up "
                                   "while the templates are tested",
    ("listJoinTokens", "503"): _SHUTDOWN_ONLY,
    ("createJoinToken", "409"): (
        "this master binds a CurveZMQ endpoint, and 10,000 unused tokens are too many to make "
        "here; tests/integration/trust_join.sh covers the refusals of joining"
    ),
}

# Operations whose request body the server takes apart itself: a batch
# answers an invalid entry in its results (200), not with a 400 of the whole.
LENIENT_ITEMS = {"createGuestsBatch"}


def log(msg):
    print("%s contract: %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Resp:
    def __init__(self, status, headers, text):
        self.status = status
        self.headers = headers
        self.text = text
        try:
            self.json = json.loads(text) if text else None
        except ValueError:
            self.json = None

    def get(self, *keys):
        """A member of the JSON body by keys and indexes, None when absent."""
        v = self.json
        for k in keys:
            try:
                v = v[k]
            except (KeyError, IndexError, TypeError):
                return None
        return v


class Contract:
    """Sends requests and checks each answer against the spec."""

    def __init__(self, spec, port):
        self.spec = spec
        self.port = port
        self.lock = threading.Lock()
        self.seen = {}  # operationId -> set of statuses
        self.seen_405 = set()  # path templates that answered 405
        self.cases = 0
        self.failed_cases = 0
        self.failures = []

    # ---- bookkeeping ----

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        log("FAIL: " + what)

    def check(self, cond, what):
        if not cond:
            self.fail(what)
        return cond

    def _record(self, key, status):
        with self.lock:
            self.seen.setdefault(key, set()).add(str(status))

    # ---- the request ----

    def _send(self, method, target, data, headers, timeout):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=contract_cases.TLS["ctx"])
        try:
            conn.putrequest(method, target, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            conn.endheaders()
            if data is not None:
                conn.send(data)
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, text)
        finally:
            conn.close()

    def call(self, method, path, body=NOBODY, *, query=None, headers=None, raw=None,
             ctype="application/json", expect=None, timeout=60, why="", auth=True):
        """One request; the answer is checked and returned. body is JSON to
        send, raw bytes to send as they are; query a list of (name, value);
        expect a status or a set of statuses the case is about; auth the
        bearer token (True: the admin's, False: none)."""
        headers = dict(headers or {})
        token = contract_cases.TLS["token"] if auth is True else auth
        if token:
            headers.setdefault("Authorization", "Bearer " + token)
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
        elif body is not NOBODY:
            data = json.dumps(body).encode()
        if data is not None and ctype:
            headers.setdefault("Content-Type", ctype)
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        label = "%s %s%s" % (method, target[:120], " (%s)" % why if why else "")
        try:
            r = self._send(method, target, data, headers, timeout)
        except (OSError, http.client.HTTPException) as e:
            self.fail("%s: no answer: %s" % (label, e))
            return Resp(0, {}, "")
        before = len(self.failures)
        self._check_answer(method, path, query or [], headers, raw, body, r, label)
        if expect is not None:
            want = expect if isinstance(expect, (set, frozenset, tuple, list)) else {expect}
            self.check(r.status in want, "%s: answered %d, the case expects %s: %s"
                       % (label, r.status, sorted(want), r.text[:300]))
        with self.lock:
            self.cases += 1
            # Threads may fail at the same time; a case counts once.
            failed = len(self.failures) > before
            if failed:
                self.failed_cases += 1
        if not failed:
            log("ok %d %s" % (r.status, label))
        return r

    # ---- the checks ----

    def _validate(self, schema, instance, label, what):
        errs = self.spec.errors(schema, instance)
        for e in errs[:5]:
            self.fail("%s: %s does not match the spec: %s" % (label, what, e))
        return not errs

    def _check_body(self, resp_obj, r, label):
        resp_obj = self.spec.deref(resp_obj)
        content = resp_obj.get("content")
        for hname, h in (resp_obj.get("headers") or {}).items():
            h = self.spec.deref(h)
            v = r.headers.get(hname.lower())
            if v is None:
                if h.get("required"):
                    self.fail("%s: %d without its %s header" % (label, r.status, hname))
            elif "schema" in h:
                self._validate(h["schema"], v, label, "header " + hname)
        if not content:
            self.check(r.text == "", "%s: %d documents no body, got %r"
                       % (label, r.status, r.text[:200]))
            return
        ct = r.headers.get("content-type", "")
        base = ct.split(";")[0].strip().lower()
        if base != "application/json" and base in content:
            # A text body (CSV, JSON lines, the Prometheus exposition): the
            # spec documents its media type; the body is text.
            self._validate(content[base]["schema"], r.text, label, "%d %s body" % (r.status, base))
            return
        mt = content.get("application/json")
        if not self.check(mt is not None, "%s: %d has no application/json body documented"
                          % (label, r.status)):
            return
        self.check(ct.startswith("application/json"), "%s: Content-Type %r" % (label, ct))
        if not self.check(r.json is not None or r.text == "null",
                          "%s: body is not JSON: %r" % (label, r.text[:200])):
            return
        self._validate(mt["schema"], r.json, label, "%d body" % r.status)

    def _request_problems(self, op, query, headers, raw, body, ctype):
        """Why the spec says this request is invalid ([] when it is valid)."""
        problems = []
        params = [self.spec.deref(p) for p in op["parameters"]]
        names = [name for name, _ in query]
        for name, value in query:
            p = next((p for p in params if p["in"] == "query" and p["name"] == name), None)
            if p is None:
                problems.append("query %s: not a parameter of the operation" % name)
                continue
            if names.count(name) > 1:
                problems.append("query %s: given %d times" % (name, names.count(name)))
            value = _coerce(p["schema"], value, self.spec)
            problems += ["query %s: %s" % (name, e) for e in self.spec.errors(p["schema"], value)]
        for p in params:
            if p["in"] == "header":
                v = next((v for k, v in headers.items() if k.lower() == p["name"].lower()), None)
                if v is not None:
                    errs = self.spec.errors(p["schema"], v)
                    problems += ["header %s: %s" % (p["name"], e) for e in errs]
        rb = self.spec.deref(op.get("requestBody")) if op.get("requestBody") else None
        if rb is None:
            return problems
        if raw is None and body is NOBODY:
            if rb.get("required"):
                problems.append("no body")
            return problems
        if raw is not None:
            try:
                instance = json.loads(raw)
            except ValueError:
                return problems + ["the body is not JSON"]
        else:
            instance = body
        mt = (rb.get("content") or {}).get(ctype)
        if mt is None:
            return problems + ["content type %s is not documented" % ctype]
        schema = mt["schema"]
        if op.get("operationId") in LENIENT_ITEMS:
            schema = copy.deepcopy(self.spec.deref(schema))
            for prop in schema.get("properties", {}).values():
                prop.pop("items", None)
        return problems + ["body: %s" % e for e in self.spec.errors(schema, instance)]

    def _check_answer(self, method, path, query, headers, raw, body, r, label):
        tmpl = self.spec.match_path(path.split("?")[0])
        if tmpl is None:
            self._record("(no route)", r.status)
            if self.check(r.status == 404, "%s: a path that is no route answered %d" % (label, r.status)):
                self._check_body(self.spec.doc["components"]["responses"]["NotFound"], r, label)
            return
        op = self.spec.ops.get((method, tmpl))
        if op is None:
            allowed = self.spec.methods_of(tmpl)
            if not self.check(r.status == 405, "%s: %s is not a method of %s, answered %d"
                              % (label, method, tmpl, r.status)):
                return
            with self.lock:
                self.seen_405.add(tmpl)
            got = sorted(m.strip() for m in r.headers.get("allow", "").split(","))
            self.check(got == sorted(allowed), "%s: Allow %r, the spec has %s"
                       % (label, r.headers.get("allow"), allowed))
            self._check_body(self.spec.doc["components"]["responses"]["MethodNotAllowed"], r, label)
            return
        oid = op["operationId"]
        self._record(oid, r.status)
        problems = self._request_problems(op, query, headers, raw, body,
                                          headers.get("Content-Type", "application/json"))
        # Refusals that come before the request is read (no token, another
        # origin, a body that is not JSON) may meet an invalid request too.
        if problems and r.status not in (400, 401, 403, 413, 415):
            self.fail("%s: the spec says the request is invalid (%s) but it was answered %d"
                      % (label, problems[0], r.status))
        if 200 <= r.status < 300 and problems:
            self.fail("%s: answered %d to a request the spec refuses: %s" % (label, r.status, problems[0]))
        resp_obj = op["responses"].get(str(r.status))
        if not self.check(resp_obj is not None, "%s: status %d is not documented for %s (%s)"
                          % (label, r.status, oid, r.text[:200])):
            return
        self._check_body(resp_obj, r, label)

    # ---- the end ----

    def coverage(self, routes):
        for method, tmpl in sorted(routes):
            op = self.spec.ops.get((method, tmpl))
            if op is None:
                self.fail("route %s %s is not in the spec" % (method, tmpl))
                continue
            oid = op["operationId"]
            seen = self.seen.get(oid, set())
            if not seen:
                self.fail("route %s %s (%s) was never called" % (method, tmpl, oid))
                continue
            self.check(any(s.startswith("2") or s == "101" for s in seen),
                       "route %s %s (%s) never succeeded" % (method, tmpl, oid))
            if any(s.startswith("4") for s in op["responses"]):
                self.check(any(s.startswith("4") for s in seen),
                           "route %s %s (%s) never answered an error" % (method, tmpl, oid))
            for status in op["responses"]:
                if status in seen:
                    if (oid, status) in NOT_EXERCISED:
                        log("note: %s %s is listed as not exercised but was seen" % (oid, status))
                    continue
                self.check((oid, status) in NOT_EXERCISED,
                           "%s: documented status %s was never seen and NOT_EXERCISED gives no reason"
                           % (oid, status))
            for status in seen - set(op["responses"]):
                self.fail("%s answered %s, which it does not document" % (oid, status))
        for tmpl in self.spec.doc["paths"]:
            self.check(tmpl in self.seen_405, "path %s never answered a 405" % tmpl)


def _coerce(schema, value, spec):
    """A query string value as the JSON value its schema describes."""
    s = spec.deref(schema)
    t = s.get("type")
    if t == "integer":
        try:
            return int(value) if value.strip() == value and value.lstrip("-").isdigit() else value
        except ValueError:
            return value
    if t == "boolean":
        return {"true": True, "false": False}.get(value, value)
    if t == "array":  # style form, explode false: "a,b,c"
        return value.split(",")
    return value


# ---- the cluster ----


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    """A master whose store is on its own tmpfs, and one sim agent."""

    def __init__(self, bindir, tmp):
        self.bindir = bindir
        self.tmp = tmp
        self.dbdir = os.path.join(tmp, "db")
        self.sock = "ipc://" + os.path.join(tmp, "master.sock")
        self.api_sock = os.path.join(tmp, "api.sock")
        self.prefix = "c%dsim" % os.getpid()
        self.nodes = [self.prefix + "-0001", self.prefix + "-0002"]
        self.port = free_port()
        self.zport = free_port()  # the CurveZMQ node endpoint (join tokens)
        self.master = self.agent = None
        os.makedirs(self.dbdir)
        os.makedirs(os.path.join(tmp, "sim"))

    def start_master(self):
        cmd = [
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", 'mount -t tmpfs -o size=16m,mode=0700 tmpfs "$1" && shift && exec "$@"',
            "sh", self.dbdir,
            os.path.join(self.bindir, "vfleet-master"), "--db", os.path.join(self.dbdir, "master.db"),
            "--listen", "127.0.0.1:%d" % self.port, "--bind", self.sock,
            "--bind", "tcp://127.0.0.1:%d" % self.zport, "--heartbeat-ms", "500",
            "--socket", self.api_sock,
            "--suspect-after", "5", "--down-after", "8", "--log-level", "debug",
        ]
        out = open(os.path.join(self.tmp, "master.log"), "ab")
        self.master = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

    def start_agent(self):
        cmd = [
            os.path.join(self.bindir, "vfleet-node"), "run", "--backend", "sim", "--sim-nodes", "2",
            "--name", self.prefix, "--master", self.sock, "--state-dir", os.path.join(self.tmp, "sim"),
            "--heartbeat", "500", "--usage-interval", "1", "--label", "sim=true", "--log-level", "debug",
        ]
        out = open(os.path.join(self.tmp, "agent.log"), "ab")
        self.agent = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

    def secure(self):
        """The TLS context that trusts the master's self-signed certificate
        and an admin token made as root over its Unix socket."""
        ctx = ssl.create_default_context(cafile=self.store_path("api.crt"))
        # The certificate is its own trust anchor (no CA above it).
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.api_sock)
        conn = http.client.HTTPConnection("localhost", timeout=10)
        conn.sock = s
        try:
            conn.request("POST", "/v1/tokens", body=json.dumps({"role": "admin"}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            token = json.loads(r.read())["token"]
        finally:
            conn.close()
        return ctx, token

    def store_path(self, name):
        # The master's mount namespace, seen through its /proc root.
        return "/proc/%d/root%s/%s" % (self.master.pid, self.dbdir, name)

    def fill_store(self):
        """Fills the store's tmpfs to the last block; called again to fill it
        anew after a case whose rollback gives blocks back. The WAL is
        checkpointed and truncated first: a WAL that grew earlier in the run
        (the operations' progress), or that took a freed block in a failed
        commit, is reused from its start after a checkpoint, and commits
        into its blocks need no new one, so a full tmpfs alone would not make
        writes fail. Done when, after the fill, the WAL is empty and no block
        is free: a commit of the master's between the checkpoint and the
        fill (a usage report) would leave it room, so that is tried again,
        the fill given back first (the checkpoint copies that commit into
        the database file, which may need a new block)."""
        for _ in range(20):
            if os.path.exists(self.store_path("fill")):
                os.truncate(self.store_path("fill"), 0)
            # In the master's mount namespace (its tmpfs), with the sqlite3 shell.
            ck = subprocess.run(["nsenter", "-t", str(self.master.pid), "-m", "sqlite3",
                                 os.path.join(self.dbdir, "master.db"),
                                 "PRAGMA busy_timeout = 5000; PRAGMA wal_checkpoint(TRUNCATE);"],
                                capture_output=True, text=True, timeout=30)
            if ck.returncode != 0:
                raise RuntimeError("checkpoint of the master's store: %s" % ck.stderr.strip())
            fd = os.open(self.store_path("fill"),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
            try:
                for size in (1 << 20, 4096, 1):
                    try:
                        while True:
                            os.write(fd, b"\0" * size)
                    except OSError:
                        pass
            finally:
                os.close(fd)
            busy = ck.stdout.strip().splitlines()[-1].split("|")[0] if ck.stdout.strip() else "?"
            try:
                wal = os.lstat(self.store_path("master.db-wal")).st_blocks
            except FileNotFoundError:
                wal = 0
            st = os.statvfs(self.store_path("."))
            if busy == "0" and wal == 0 and st.f_bavail == 0:
                return
        raise RuntimeError("the master's store could not be filled: checkpoint %r, WAL %d blocks, "
                           "%d free" % (ck.stdout.strip(), wal, st.f_bavail))

    def free_store(self):
        os.unlink(self.store_path("fill"))

    def stop(self):
        for p, sig in ((self.agent, signal.SIGKILL), (self.master, signal.SIGTERM)):
            if p is None or p.poll() is not None:
                continue
            if p is self.agent:
                p.send_signal(signal.SIGCONT)
            p.send_signal(sig)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# ---- the cases ----

import contract_cases  # noqa: E402
from contract_cases import quiet_get, wait_for  # noqa: E402


def main():
    if os.geteuid() != 0:
        print("SKIP: the contract test needs root (a mount namespace and a tmpfs for the store)")
        return SKIP
    top = os.environ.get("VFLEET_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
    bindir = os.environ.get("VFLEET_BIN") or os.path.join(top, "build", "bin")
    if not os.access(os.path.join(bindir, "vfleet-master"), os.X_OK):
        print("SKIP: no vfleet-master in %s" % bindir)
        return SKIP
    # VFLEET_OPENAPI: another spec file (to prove a broken spec fails the test).
    spec = openapi_lib.Spec(os.environ.get("VFLEET_OPENAPI") or os.path.join(top, "docs", "openapi.yaml"))
    routes = openapi_lib.route_table(os.path.join(top, "master", "api.c"))
    tmp = tempfile.mkdtemp(prefix="vfcontract.")
    cl = Cluster(bindir, tmp)
    c = Contract(spec, cl.port)
    ok = False
    try:
        cl.start_master()
        wait_for("the master's socket", lambda: os.path.exists(cl.api_sock))
        contract_cases.TLS["ctx"], contract_cases.TLS["token"] = cl.secure()
        wait_for("the master", lambda: quiet_get(cl.port, "/healthz")[0] == 200)
        cl.start_agent()
        wait_for("two ready nodes", lambda: sum(
            n["state"] == "ready" for n in quiet_get(cl.port, "/v1/nodes")[1]["nodes"]) == 2)
        log("master on 127.0.0.1:%d, nodes %s" % (cl.port, ", ".join(cl.nodes)))
        contract_cases.run(c, cl)
        c.coverage(routes)
        ok = True
    except Exception as e:  # a broken run is a failure, with its cause
        import traceback
        traceback.print_exc()
        c.fail("the run stopped: %s" % e)
    finally:
        cl.stop()
        for name in ("master.log", "agent.log"):
            if not ok or c.failures:
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        tail = f.read()[-3000:]
                    print("---- last of %s ----\n%s" % (name, tail))
        subprocess.run(["rm", "-rf", tmp], check=False)
    ops = len(spec.ops)
    called = sum(1 for op in spec.ops.values() if op["operationId"] in c.seen)
    pairs = sum(len(v) for k, v in c.seen.items() if k != "(no route)")
    log("%d requests, %d of %d operations called, %d (operation, status) pairs seen, "
        "%d paths answered 405" % (c.cases, called, ops, pairs, len(c.seen_405)))
    # Each request is a case; the coverage and run checks count as one more each.
    other = max(0, len(c.failures) - c.failed_cases)
    print("contract: %d passed, %d failed" % (c.cases - c.failed_cases, c.failed_cases + other))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
