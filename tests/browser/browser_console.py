#!/usr/bin/python3
"""Drives Debian's headless Chromium (chromedriver, python3-selenium) through
the vfleet web UI: sign in with a token, create a guest through the form,
see it running, change its memory and see the change, run `hostname` in its
terminal (xterm.js over the shell WebSocket) and read the output, destroy
it (with the confirmation). Then, on the guest "other" made before the
browser started: its usage graph plots the history API's points (ones from
before the page opened, the same first point as the API answers), its event
feed shows the stop and the start clicked in the test as they happen, a
move from the UI to the other node ends with the API placing it there, and
the cluster's feed (#/events) shows the move, and draining that node from
the nodes page brings it back to the first one. The nodes page shows the
guests' leftovers each node holds (one made on the second node before its
agent started). Screenshots of the main pages at 1400 and 800
pixels go to VFLEET_SCREENSHOTS. The browser never downloads anything: a
fresh profile, no background networking, no component updates."""
import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["VFLEET_URL"]
TOKEN = os.environ["VFLEET_TOKEN_UI"]
SHOTS = os.environ["VFLEET_SCREENSHOTS"]
PROFILE = os.environ["VFLEET_PROFILE"]
NAME = "webui1"


def log(msg):
    print("%s [browser] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def browser():
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
              "--disable-dev-shm-usage", "--user-data-dir=" + PROFILE, "--window-size=1400,1000",
              # The master's certificate is its own self-signed one; the
              # test trusts it as the CLI does with --pin.
              "--ignore-certificate-errors"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)


def shot(d, name, width=1400):
    os.makedirs(SHOTS, exist_ok=True)
    d.set_window_size(width, 1000)
    d.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.6)
    # The whole page, not just the window.
    h = d.execute_script("return Math.max(document.body.scrollHeight, 600)")
    d.set_window_size(width, min(h + 120, 3000))
    time.sleep(0.4)
    path = os.path.join(SHOTS, "%s-%d.png" % (name, width))
    d.save_screenshot(path)
    d.set_window_size(1400, 1000)
    log("screenshot " + path)


def wait(d, secs=30):
    return WebDriverWait(d, secs, poll_frequency=0.2)


def text_of(d, css):
    return d.find_element(By.CSS_SELECTOR, css).text


def api_get(path):
    """GET on the master's API as root, through its Unix socket."""
    sock = os.environ["VFLEET_MASTER"][len("unix:"):]
    out = subprocess.run(["curl", "-sf", "--unix-socket", sock, "http://localhost" + path],
                         check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


def feed(d, box, type_):
    """The events of type_ the feed in box shows, newest first: (seq, text)."""
    return [(int(e.get_attribute("data-seq")), e.text)
            for e in d.find_elements(By.CSS_SELECTOR, "#%s div[data-type='%s']" % (box, type_))]


def main():
    d = browser()
    try:
        run(d)
    except Exception:
        os.makedirs(SHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(PROFILE, "failure.png"))
        log("page at the failure: " + d.current_url)
        log("status line: %r" % d.find_element(By.ID, "status").text)
        for box in d.find_elements(By.CSS_SELECTOR, "#guest-op, #node-ops"):
            log("operation box: %r" % box.text)
        for e in d.get_log("browser")[-20:]:
            log("console: %s" % e)
        raise
    finally:
        d.quit()


def run(d):
    d.get(URL + "/")
    wait(d).until(EC.visibility_of_element_located((By.ID, "token")))
    shot(d, "login")
    d.find_element(By.ID, "token").send_keys(TOKEN)
    d.find_element(By.ID, "login-submit").click()
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "tr[data-guest=other]")))
    log("signed in; the guest list shows 'other'")
    shot(d, "guests")
    shot(d, "guests", 800)

    # Nodes: allocated / usable, and the guests' leftovers each holds.
    d.get(URL + "/#/nodes")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#nodes tr[data-node]")))
    leftovers(d)
    shot(d, "nodes")

    # Create through the form.
    d.get(URL + "/#/create")
    wait(d).until(EC.presence_of_element_located((By.ID, "create-name")))
    d.find_element(By.ID, "create-name").send_keys(NAME)
    Select(d.find_element(By.ID, "create-template")).select_by_value("busybox")
    d.find_element(By.ID, "create-memory").send_keys("96M")
    d.find_element(By.ID, "create-disk").send_keys("64M")
    Select(d.find_element(By.ID, "create-ips")).select_by_value("1")
    d.find_element(By.ID, "create-password").send_keys("browser secret")
    d.find_element(By.ID, "create-ssh_keys").send_keys("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0nYcUI ui@test")
    d.find_element(By.ID, "create-dns").send_keys("192.0.2.53")
    shot(d, "create")
    d.find_element(By.ID, "create-submit").click()
    wait(d, 90).until(EC.url_contains("#/guest/" + NAME))
    wait(d, 60).until(EC.text_to_be_present_in_element((By.ID, "guest-state"), "running"))
    log("created through the form; the guest page says running")
    mem = text_of(d, "#guest-memory")
    assert mem == "96M", "memory shows %r" % mem

    # Change its memory and see the change.
    d.find_element(By.ID, "limit-memory").send_keys("160M")
    d.find_element(By.ID, "limits-submit").click()
    wait(d, 40).until(EC.text_to_be_present_in_element((By.ID, "guest-memory"), "160M"))
    ph = d.find_element(By.ID, "limit-memory").get_attribute("placeholder")
    assert ph == "160M", "the limits form still offers %r" % ph
    log("memory changed to 160M and shown")

    # The terminal: hostname, read from xterm.js's buffer.
    d.find_element(By.ID, "terminal-open").click()
    wait(d, 30).until(lambda x: x.find_element(By.ID, "terminal").get_attribute("data-state") == "open")
    screen = lambda x: x.execute_script(
        "const b = window.vfTerminal.buffer.active; let s = [];"
        "for (let i = 0; i < b.length; i++) { const l = b.getLine(i); if (l) s.push(l.translateToString(true)); }"
        "return s.join('\\n');")
    # Typed once root's login shell prompts (the template's PS1 '\h:\w\$ ':
    # "webui1:/# "), so the line goes to the shell, whatever the start took.
    prompted = lambda x: any(line.startswith(NAME + ":") and line.rstrip().endswith("#")
                             for line in screen(x).split("\n"))
    try:
        wait(d, 30).until(prompted)
    except TimeoutException:
        raise AssertionError("no prompt in the terminal in 30 s; it shows %r" % screen(d)[-400:])
    d.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea").send_keys("hostname\n")
    wait(d, 30).until(lambda x: any(line.strip() == NAME for line in screen(x).split("\n")))
    log("hostname in the terminal printed %r" % NAME)
    shot(d, "guest")
    shot(d, "guest", 800)

    # The console: init's line at boot, then a line written now.
    d.find_element(By.ID, "console-open").click()
    wait(d, 30).until(lambda x: x.find_element(By.ID, "terminal").get_attribute("data-state") == "open"
                      and x.find_element(By.ID, "terminal").get_attribute("data-mode") == "console")
    wait(d, 30).until(lambda x: ("guest %s: up" % NAME) in screen(x))
    subprocess.run([os.path.join(os.environ["VFLEET_BIN"], "vfleet"), "guest", "exec", NAME, "--",
                    "sh", "-c", "echo console-line-from-the-test > /proc/1/fd/1"],
                   check=True, stdout=subprocess.DEVNULL)
    wait(d, 30).until(lambda x: "console-line-from-the-test" in screen(x))
    log("the console showed init's line and a line written now")

    # Destroy it, confirming.
    d.find_element(By.ID, "guest-destroy").click()
    wait(d).until(EC.visibility_of_element_located((By.ID, "confirm-ok")))
    d.find_element(By.ID, "confirm-ok").click()
    wait(d, 90).until(EC.url_contains("#/guests"))
    wait(d, 60).until(lambda x: not x.find_elements(By.CSS_SELECTOR, "tr[data-guest=%s]" % NAME))
    log("destroyed with confirmation; gone from the list")

    d.get(URL + "/#/templates")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#templates tbody tr")))
    shot(d, "templates")

    live_other(d)


def leftovers(d):
    """The nodes page says each node's leftovers as the API counts them: 1
    on the node made with one (red, with the command that lists them on the
    node), 0 on the other; a node whose agent does not count them (null,
    from an agent older than the count) is "unknown", not 0."""
    lo_node = os.environ["VFLEET_LEFTOVER_NODE"]
    cell = lambda x, n: x.find_element(By.CSS_SELECTOR, "#nodes tr[data-node='%s'] td[data-leftovers]" % n)
    for n in api_get("/v1/nodes")["nodes"]:
        want = 1 if n["name"] == lo_node else 0
        assert n["leftovers"] == want, "the API counts %r leftovers on %s, not %d" % (n["leftovers"], n["name"], want)
        wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#nodes tr[data-node='%s']" % n["name"])))
        c = cell(d, n["name"])
        assert c.get_attribute("data-leftovers") == str(want), \
            "the nodes page says %r leftovers on %s, the API %d" % (c.get_attribute("data-leftovers"), n["name"], want)
        if want:
            assert "vfleet-node leftovers" in c.text, "the leftovers of %s do not name the command: %r" % (n["name"], c.text)
            assert c.find_elements(By.CSS_SELECTOR, ".over"), "the leftovers of %s are not marked to act on" % n["name"]
        else:
            assert c.text == "0", "no leftovers on %s shows %r" % (n["name"], c.text)
    # No agent here is older than the count: the page's own cell, as it
    # draws a node whose leftovers the API gives as null.
    unknown = d.execute_script("const c = leftoversCell({leftovers: null});"
                               "return [c.getAttribute('data-leftovers'), c.textContent];")
    assert unknown == ["unknown", "unknown"], "a node with leftovers null shows %r" % unknown
    log("the nodes page shows 1 leftover on %s (naming vfleet-node leftovers), 0 on the other; null is unknown" % lo_node)


def live_other(d):
    """History graphs, the live feed and a move, on "other"."""
    opened = time.time()
    d.get(URL + "/#/guest/other")
    wait(d, 30).until(EC.text_to_be_present_in_element((By.ID, "guest-state"), "running"))
    # The graph: the history API's points, some from before the page opened.
    chart = lambda x: x.find_element(By.ID, "chart-memory")
    wait(d, 60).until(lambda x: int(chart(x).get_attribute("data-points") or 0) >= 3)
    first = float(chart(d).get_attribute("data-first"))
    points = int(chart(d).get_attribute("data-points"))
    h = api_get("/v1/guests/other/usage?from=-1h&step=10s")
    api_first = h["points"][0]["time"]
    assert first < opened - 5, "the graph's first point (%s) is not older than the page (%s)" % (first, opened)
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first)) == api_first[:19], \
        "the graph starts at %s, the history API at %s" % (first, api_first)
    assert abs(points - len(h["points"])) <= 2, "the graph has %d points, the API %d" % (points, len(h["points"]))
    assert d.find_elements(By.CSS_SELECTOR, "#chart-memory canvas"), "no chart drawn"
    log("the memory graph plots %d history points from %s (the API: %d from %s)"
        % (points, time.strftime("%H:%M:%S", time.gmtime(first)), len(h["points"]), api_first))

    # The feed: live, then the stop and the start clicked here, as they happen.
    wait(d, 30).until(lambda x: x.find_element(By.ID, "guest-events").get_attribute("data-state") == "live")
    before = max([s for s, _ in feed(d, "guest-events", "guest.state")] + [0])
    assert before > 0, "the guest's feed shows no guest.state event from its history"
    d.find_element(By.ID, "guest-stop").click()
    wait(d, 60).until(lambda x: any(s > before and "is stopped" in t for s, t in feed(x, "guest-events", "guest.state")))
    log("the feed showed the stop as it happened")
    wait(d, 30).until(lambda x: x.find_element(By.ID, "guest-start").is_enabled())
    d.find_element(By.ID, "guest-start").click()
    wait(d, 60).until(lambda x: any(s > before and "is running" in t for s, t in feed(x, "guest-events", "guest.state")))
    wait(d, 30).until(EC.text_to_be_present_in_element((By.ID, "guest-state"), "running"))
    log("the feed showed the start as it happened")

    # The move: to the other node, confirmed in the dialog, followed to its end.
    src = api_get("/v1/guests/other")["node"]
    nodes = [n["name"] for n in api_get("/v1/nodes")["nodes"]]
    dst = [n for n in nodes if n != src][0]
    wait(d, 30).until(lambda x: x.find_element(By.ID, "guest-move").is_enabled())
    d.find_element(By.ID, "guest-move").click()
    wait(d).until(EC.visibility_of_element_located((By.ID, "move-target")))
    Select(d.find_element(By.ID, "move-target")).select_by_value(dst)
    d.find_element(By.ID, "move-ok").click()
    steps = []
    def ended(x):
        box = x.find_element(By.ID, "guest-op")
        st = box.get_attribute("data-step")
        if st and (not steps or steps[-1] != st):
            steps.append(st)
        return box.get_attribute("data-state") in ("done", "failed", "cancelled")
    wait(d, 180).until(ended)
    state = d.find_element(By.ID, "guest-op").get_attribute("data-state")
    assert state == "done", "the move ended %s: %s" % (state, d.find_element(By.ID, "guest-op").text)
    g = api_get("/v1/guests/other")
    assert g["node"] == dst, "after the move the API places other on %s, not %s" % (g["node"], dst)
    wait(d, 60).until(lambda x: api_get("/v1/guests/other")["state"] == "running")
    log("moved %s -> %s from the UI (steps seen: %s; %s); the API says node %s, running"
        % (src, dst, " ".join(steps), d.find_element(By.ID, "guest-op").text.replace("\n", "; "), g["node"]))
    wait(d, 30).until(lambda x: feed(x, "guest-events", "guest.moved"))
    shot(d, "guest-move")

    # The cluster's feed: the move among the latest events, then live.
    d.get(URL + "/#/events")
    wait(d, 30).until(lambda x: x.find_element(By.ID, "event-feed").get_attribute("data-state") == "live")
    assert [t for _, t in feed(d, "event-feed", "guest.moved") if "other" in t], "the cluster feed lacks the move"
    shot(d, "events")
    log("the cluster feed shows the move")

    # Drain the node it went to, confirmed: the drain's card follows it to
    # its end, and the API places the guest back on the first node.
    d.get(URL + "/#/nodes")
    wait(d).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[data-drain='%s']" % dst)))
    d.find_element(By.CSS_SELECTOR, "button[data-drain='%s']" % dst).click()
    wait(d).until(EC.visibility_of_element_located((By.ID, "confirm-ok")))
    d.find_element(By.ID, "confirm-ok").click()
    card = lambda x: x.find_element(By.CSS_SELECTOR, "#node-ops > div")
    wait(d, 180).until(lambda x: x.find_elements(By.CSS_SELECTOR, "#node-ops > div")
                       and card(x).get_attribute("data-state") in ("done", "failed", "cancelled", "refused"))
    state, text = card(d).get_attribute("data-state"), card(d).text.replace("\n", "; ")
    assert state == "done", "the drain ended %s: %s" % (state, text)
    g = api_get("/v1/guests/other")
    assert g["node"] == src, "after draining %s the API places other on %s" % (dst, g["node"])
    n = [x for x in api_get("/v1/nodes")["nodes"] if x["name"] == dst][0]
    assert n["cordoned"], "the drained node is not cordoned"
    log("drained %s from the UI (%s); the API says other is on %s, %s cordoned" % (dst, text, g["node"], dst))


if __name__ == "__main__":
    main()
    print("browser_console: 1 passed, 0 failed")
