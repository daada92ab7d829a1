#!/usr/bin/python3
"""Drives Debian's headless Chromium (chromedriver, python3-selenium) through
the vfleet web UI: sign in with a token, create a guest through the form,
see it running, change its memory and see the change, run `hostname` in its
terminal (xterm.js over the shell WebSocket) and read the output, destroy
it (with the confirmation). Screenshots of the main pages at 1400 and 800
pixels go to VFLEET_SCREENSHOTS. The browser never downloads anything: a
fresh profile, no background networking, no component updates."""
import os
import subprocess
import sys
import time

from selenium import webdriver
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


def main():
    d = browser()
    try:
        run(d)
    except Exception:
        os.makedirs(SHOTS, exist_ok=True)
        d.save_screenshot(os.path.join(PROFILE, "failure.png"))
        log("page at the failure: " + d.current_url)
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

    # Nodes: allocated / usable.
    d.get(URL + "/#/nodes")
    wait(d).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#nodes tr[data-node]")))
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
    time.sleep(1.0)
    d.find_element(By.CSS_SELECTOR, "#terminal .xterm-helper-textarea").send_keys("hostname\n")
    screen = lambda x: x.execute_script(
        "const b = window.vfTerminal.buffer.active; let s = [];"
        "for (let i = 0; i < b.length; i++) { const l = b.getLine(i); if (l) s.push(l.translateToString(true)); }"
        "return s.join('\\n');")
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


if __name__ == "__main__":
    main()
    print("browser_console: 1 passed, 0 failed")
