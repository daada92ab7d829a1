// vfleet web UI, the views: one function per route (#/guests, #/guest/NAME,
// #/create, #/nodes, #/templates, #/pools, #/projects, #/events). Each builds
// its part of the page from the API and refreshes what changes.
"use strict";

const LIMIT_FIELDS = [
  // key, label, kind (size | cores | count | rate)
  ["memory", "Memory", "size"],
  ["cpu_max", "CPU (cores)", "cores"],
  ["disk", "Disk", "size"],
  ["procs", "Processes", "count"],
  ["swap", "Swap", "size"],
  ["rss", "Resident", "size"],
  ["cpu_weight", "CPU weight", "count"],
  ["io_weight", "I/O weight", "count"],
  ["inodes", "Inodes", "count"],
  ["nofile", "Open files", "count"],
  ["tcp_sockets", "TCP sockets", "count"],
  ["net_in", "Net in (bit/s)", "rate"],
  ["net_out", "Net out (bit/s)", "rate"],
];

function limitText(kind, v) {
  if (!v) return "-";
  if (kind === "size") return humanSize(v);
  if (kind === "rate") return humanRate(v);
  return String(v);
}

// A limit input's value for the API: sizes and rates as typed ("256M"),
// cores and counts as numbers; "" = not given.
function limitValue(kind, s) {
  s = s.trim();
  if (s === "") return undefined;
  if (kind === "cores") return Number(s);
  if (kind === "count") return /^\d+$/.test(s) ? Number(s) : s;
  return /^\d+$/.test(s) ? Number(s) : s;
}

function lines(s) {
  return s.split("\n").map((x) => x.trim()).filter((x) => x && !x.startsWith("#"));
}

function words(s) {
  return s.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
}

// ---- guests ----

VF.views.guests = async (root) => {
  const search = el("input#guest-search", { type: "search", placeholder: "search name, node, ip, label…", size: 28 });
  const stateSel = el("select#guest-state", {}, el("option", { value: "", text: "any state" }),
    ["running", "pending", "stopped", "error", "unknown", "lost"].map((s) => el("option", { value: s, text: s })));
  const nodeSel = el("select#guest-node", {}, el("option", { value: "", text: "any node" }));
  const projSel = el("select#guest-project", {}, el("option", { value: "", text: "any project" }));
  const tbody = el("tbody#guests");
  const count = el("span.muted");
  root.append(
    el("div.toolbar", {}, el("h2", {}, "Guests ", count), el("span.grow"),
      search, stateSel, nodeSel, projSel,
      el("button.primary#new-guest", { onclick: () => (location.hash = "#/create") }, "New guest")),
    el("div.card.scroll", {}, el("table", {},
      el("thead", {}, el("tr", {}, ["name", "state", "node", "project", "ips", "memory", "cpu", "disk", "labels"].map((h) => el("th", { text: h })))),
      tbody)));
  let guests = [];
  const fill = () => {
    const q = search.value.trim().toLowerCase();
    const shown = guests.filter((g) => {
      if (stateSel.value && g.state !== stateSel.value) return false;
      if (nodeSel.value && g.node !== nodeSel.value) return false;
      if (projSel.value && g.project !== projSel.value) return false;
      if (!q) return true;
      const hay = [g.name, g.node, g.project, (g.ips || []).join(" "), labelText(g.labels), g.state].join(" ").toLowerCase();
      return hay.includes(q);
    });
    tbody.replaceChildren(...shown.map((g) => {
      const l = g.limits || {};
      const tr = el("tr.clickable", { "data-guest": g.name, onclick: () => (location.hash = "#/guest/" + encodeURIComponent(g.name)) },
        el("td", {}, el("a", { href: "#/guest/" + encodeURIComponent(g.name), text: g.name })),
        el("td", {}, stateSpan(g.state), g.message ? el("span.error", { text: " ⚠", title: g.message }) : null),
        el("td", { text: text(g.node) }), el("td", { text: text(g.project) }),
        el("td.wrap", { text: (g.ips || []).join(", ") || "-" }),
        el("td.num", { text: limitText("size", l.memory) }), el("td.num", { text: l.cpu_max ? String(l.cpu_max) : "-" }),
        el("td.num", { text: limitText("size", l.disk) }), el("td.wrap", { text: labelText(g.labels) }));
      return tr;
    }));
    count.textContent = "(" + shown.length + (shown.length !== guests.length ? " of " + guests.length : "") + ")";
    if (!shown.length) tbody.append(el("tr", {}, el("td", { colspan: 9, class: "muted", text: guests.length ? "No guest matches." : "No guests yet." })));
  };
  const setOptions = (sel, values) => {
    const cur = sel.value;
    const have = new Set([...sel.options].map((o) => o.value));
    for (const v of values) if (v && !have.has(v)) sel.append(el("option", { value: v, text: v }));
    sel.value = cur;
  };
  const load = async () => {
    guests = await apiList("/v1/guests", "guests");
    setOptions(nodeSel, [...new Set(guests.map((g) => g.node))].sort());
    setOptions(projSel, [...new Set(guests.map((g) => g.project))].sort());
    fill();
  };
  for (const x of [search, stateSel, nodeSel, projSel]) x.addEventListener("input", fill);
  await load();
  every(3000, () => load().catch((e) => setStatus(errorText(e), true)));
};

// ---- create ----

VF.views.create = async (root) => {
  const [templates, pools, projects] = await Promise.all([
    api("GET", "/v1/templates").then((b) => b.templates).catch(() => []),
    VF.me && VF.me.staff ? api("GET", "/v1/pools").then((b) => b.pools).catch(() => []) : [],
    api("GET", "/v1/projects").then((b) => b.projects).catch(() => []),
  ]);
  const nodes = VF.me && VF.me.staff ? await apiList("/v1/nodes", "nodes").catch(() => []) : [];
  const f = el("form.fields#create-form");
  const input = (name, label, attrs) => el("label", {}, label, el("input", Object.assign({ name, id: "create-" + name }, attrs || {})));
  const select = (name, label, options) => el("label", {}, label, el("select", { name, id: "create-" + name }, options));
  f.append(
    input("name", "Name", { required: true, pattern: "[a-z0-9][a-z0-9\\-]{0,62}", placeholder: "web1" }),
    select("template", "Template", templates.map((t) => el("option", { value: t.name, text: t.name + " (" + t.node_count + " node" + (t.node_count === 1 ? "" : "s") + ")" }))),
    projects.length > 1 ? select("project", "Project", projects.map((p) => el("option", { value: p.name, text: p.name }))) : null,
    el("fieldset", {}, el("legend", { text: "Limits" }),
      input("memory", "Memory", { placeholder: "256M" }), input("cpu_max", "CPU (cores)", { placeholder: "0.5" }),
      input("disk", "Disk", { placeholder: "1G" }), input("procs", "Processes", { placeholder: "128" })),
    el("fieldset", {}, el("legend", { text: "Addresses and placement" }),
      select("ips", "Addresses", [0, 1, 2].map((n) => el("option", { value: String(n), text: n === 0 ? "none" : n + " from a pool (auto)" }))),
      input("ip_explicit", "Explicit addresses", { placeholder: "10.88.1.20 fd00::20" }),
      input("constraints", "Constraints (node labels)", { placeholder: "zone=a ssd=yes" }),
      input("group", "Anti-affinity group", { placeholder: "web" }),
      nodes.length ? select("node", "Node", [el("option", { value: "", text: "the scheduler's choice" }), ...nodes.map((n) => el("option", { value: n.name, text: n.name + " (" + n.state + ")" }))]) : null,
      input("labels", "Labels", { placeholder: "tier=web" })),
    el("fieldset", {}, el("legend", { text: "Provisioning" }),
      input("password", "Root password", { type: "password", autocomplete: "new-password" }),
      input("dns", "Name servers", { placeholder: "192.0.2.53" }),
      input("search", "Search domains", { placeholder: "example.org" }),
      el("label.span", {}, "SSH keys (one per line)", el("textarea", { name: "ssh_keys", id: "create-ssh_keys", placeholder: "ssh-ed25519 AAAA… me@laptop" }))),
    el("div.actions", {}, el("button.primary#create-submit", { type: "submit" }, "Create and start"),
      el("span.muted#create-status"), el("span.error#create-error")));
  if (!templates.length) f.prepend(el("p.note.span", { text: "No node reports a template: a guest cannot be placed yet." }));
  root.append(el("h2", { text: "New guest" }), el("div.card", {}, f),
    pools.length ? el("p.muted", { text: "Pools: " + pools.map((p) => p.name + " " + p.cidr + " (" + p.allocated + "/" + p.size + ")").join(", ") }) : null);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = (n) => (f.elements[n] ? f.elements[n].value.trim() : "");
    const body = { name: v("name"), template: v("template") };
    const limits = {};
    for (const [k, , kind] of LIMIT_FIELDS) {
      if (!f.elements[k]) continue;
      const x = limitValue(kind, f.elements[k].value);
      if (x !== undefined) limits[k] = x;
    }
    if (Object.keys(limits).length) body.limits = limits;
    const ips = [];
    for (let i = 0; i < Number(v("ips")); i++) ips.push("auto");
    ips.push(...words(v("ip_explicit")));
    if (ips.length) body.ips = ips;
    const kv = (s) => Object.fromEntries(words(s).map((w) => w.split("=")).filter((p) => p.length === 2));
    if (v("constraints")) body.constraints = kv(v("constraints"));
    if (v("labels")) body.labels = kv(v("labels"));
    if (v("group")) body.group = v("group");
    if (v("node")) body.node = v("node");
    if (v("project")) body.project = v("project");
    const prov = {};
    if (f.elements.password.value) prov.password = f.elements.password.value;
    if (v("ssh_keys")) prov.ssh_keys = lines(f.elements.ssh_keys.value);
    if (v("dns")) prov.dns = words(v("dns"));
    if (v("search")) prov.search = words(v("search"));
    if (Object.keys(prov).length) body.provision = prov;
    const status = document.getElementById("create-status"), err = document.getElementById("create-error");
    err.textContent = "";
    status.textContent = "placing and starting…";
    await act(document.getElementById("create-submit"), async () => {
      try {
        const g = await api("POST", "/v1/guests?wait=running&timeout=60", body);
        f.elements.password.value = "";
        location.hash = "#/guest/" + encodeURIComponent(g.name);
      } catch (e) {
        status.textContent = "";
        err.textContent = errorText(e);
        throw e;
      }
    });
  });
};

// ---- one guest ----

function specList(g) {
  const dl = el("dl.kv#guest-spec");
  const row = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: text(v) }));
  row("id", g.id);
  row("template", g.template);
  row("project", g.project);
  row("node", g.node);
  row("generation", g.applied_generation + " applied of " + g.generation);
  row("init", g.init || "/sbin/init");
  row("domainname", g.domainname);
  row("halt signal", g.halt_signal || "SIGTERM");
  row("stop timeout", (g.stop_timeout || 30) + " s");
  row("autostart", g.autostart ? "yes" : "no");
  row("flags", (g.flags || []).join(", "));
  row("group", g.group);
  row("labels", labelText(g.labels));
  row("caps", "+" + ((g.caps_add || []).join(",") || "none") + " -" + ((g.caps_drop || []).join(",") || "none"));
  const p = g.provision || {};
  row("root password", p.password ? "set" : "not set");
  row("ssh keys", (p.ssh_keys || []).length + " key(s)");
  row("dns", (p.dns || []).concat((p.search || []).map((s) => "search " + s)).join(", "));
  row("created", g.created);
  return dl;
}

function limitsForm(g, onDone) {
  const f = el("form.fields#limits-form");
  for (const [k, label, kind] of LIMIT_FIELDS) {
    const cur = (g.limits || {})[k];
    f.append(el("label", {}, label, el("input", { name: k, id: "limit-" + k, placeholder: cur ? limitText(kind, cur) : "not set" })));
  }
  f.append(el("div.actions", {}, el("button.primary#limits-submit", { type: "submit" }, "Change limits"),
    el("span.muted", { text: "empty: unchanged; 0: no limit" })));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const limits = {};
    for (const [k, , kind] of LIMIT_FIELDS) {
      const x = limitValue(kind, f.elements[k].value);
      if (x !== undefined) limits[k] = x;
    }
    if (!Object.keys(limits).length) return;
    act(document.getElementById("limits-submit"), async () => {
      const ng = await api("PATCH", "/v1/guests/" + encodeURIComponent(g.name), { limits });
      // The placeholders say the limits now in force.
      for (const [k, , kind] of LIMIT_FIELDS) {
        const cur = ((ng && ng.limits) || {})[k];
        f.elements[k].value = "";
        f.elements[k].placeholder = cur ? limitText(kind, cur) : "not set";
      }
      setStatus("limits changed");
      onDone();
    });
  });
  return f;
}

function provisionForm(g, onDone) {
  const f = el("form.fields#provision-form",
    {},
    el("label", {}, "New root password", el("input", { name: "password", type: "password", autocomplete: "new-password" })),
    el("label", {}, "Name servers", el("input", { name: "dns", placeholder: ((g.provision || {}).dns || []).join(" ") || "192.0.2.53" })),
    el("label", {}, "Search domains", el("input", { name: "search", placeholder: ((g.provision || {}).search || []).join(" ") })),
    el("label.span", {}, "Replace SSH keys (one per line)", el("textarea", { name: "ssh_keys" })),
    el("div.actions", {}, el("button#provision-submit", { type: "submit" }, "Write into the guest")));
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const prov = {};
    if (f.elements.password.value) prov.password = f.elements.password.value;
    if (f.elements.dns.value.trim()) prov.dns = words(f.elements.dns.value);
    if (f.elements.search.value.trim()) prov.search = words(f.elements.search.value);
    if (f.elements.ssh_keys.value.trim()) prov.ssh_keys = lines(f.elements.ssh_keys.value);
    if (!Object.keys(prov).length) return;
    act(document.getElementById("provision-submit"), async () => {
      const ng = await api("PATCH", "/v1/guests/" + encodeURIComponent(g.name), { provision: prov });
      f.reset();
      const p = (ng && ng.provision) || {};
      f.elements.dns.placeholder = (p.dns || []).join(" ") || "192.0.2.53";
      f.elements.search.placeholder = (p.search || []).join(" ");
      setStatus("provisioning changed");
      onDone();
    });
  });
  return f;
}

// The terminal: xterm.js on the shell WebSocket; with asConsole, the
// guest's console followed instead (output only: what is typed is dropped).
function openTerminal(box, name, asConsole) {
  box.replaceChildren();
  // A console ring holds what init wrote to a pipe: "\n" alone ends a line.
  const term = new Terminal({ convertEol: !!asConsole, cursorBlink: !asConsole, fontSize: 13, scrollback: 2000 });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(box);
  fit.fit();
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/guests/" + encodeURIComponent(name) +
    (asConsole ? "/shell?console=true&tty=true" : "/shell?tty=true&term=xterm-256color&cols=" + term.cols + "&rows=" + term.rows);
  const ws = new WebSocket(url, ["vfleet.v1", "bearer." + token()]);
  ws.binaryType = "arraybuffer";
  const enc = new TextEncoder();
  box.dataset.state = "connecting";
  box.dataset.mode = asConsole ? "console" : "shell";
  ws.onopen = () => {
    box.dataset.state = "open";
    if (asConsole) term.write("[the console of " + name + ": what it holds, then what comes]\r\n");
    term.focus();
  };
  ws.onmessage = (m) => {
    if (typeof m.data === "string") {
      const x = JSON.parse(m.data);
      term.write("\r\n[session ended: " + (x.exit !== null ? "exit " + x.exit : x.signal ? "signal " + x.signal : x.message || "") + "]\r\n");
      box.dataset.state = "ended";
      return;
    }
    const b = new Uint8Array(m.data);
    if (b.length > 1) term.write(b.subarray(1));
  };
  ws.onclose = (ev) => {
    if (box.dataset.state !== "ended") term.write("\r\n[connection closed" + (ev.reason ? ": " + ev.reason : "") + "]\r\n");
    box.dataset.state = "closed";
  };
  term.onData((d) => {
    if (asConsole || ws.readyState !== WebSocket.OPEN) return;
    const bytes = enc.encode(d);
    const frame = new Uint8Array(bytes.length + 1);
    frame.set(bytes, 1);
    ws.send(frame);
  });
  term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [cols, rows] }));
  });
  const onWin = () => fit.fit();
  window.addEventListener("resize", onWin);
  window.vfTerminal = term; // the browser test reads the screen from here
  return () => {
    window.removeEventListener("resize", onWin);
    ws.close();
    term.dispose();
  };
}

// Usage graphs from the master's history (GET …/usage?from=&step=,
// docs/api.md "Usage history"): the chosen range, refreshed while the page
// is open. Each chart says how many points it plots (data-points) and the
// first one's time (data-first, Unix seconds).
const USAGE_RANGES = [
  // value, label, from, step
  ["1h", "last hour", "-1h", "10s"],
  ["6h", "last 6 hours", "-6h", "1m"],
  ["2d", "last 2 days", "-2d", "10m"],
  ["30d", "last 30 days", "-30d", "2h"],
];

function usageCharts(box, name) {
  const mem = el("div.chart#chart-memory"), cpu = el("div.chart#chart-cpu"), net = el("div.chart#chart-net");
  const note = el("span.muted#usage-note");
  const range = el("select#usage-range", {}, USAGE_RANGES.map(([v, label]) => el("option", { value: v, text: label })));
  const latest = el("dl.kv#usage-latest");
  box.append(el("div.toolbar", {}, range, note), latest, mem, cpu, net);
  const width = () => Math.max(280, box.clientWidth - 10);
  const plot = (target, title, series, data) => {
    target.replaceChildren();
    target.dataset.points = String(data[0].length);
    target.dataset.first = data[0].length ? String(data[0][0]) : "";
    if (typeof uPlot === "undefined" || data[0].length < 2) return;
    new uPlot({ title, width: width(), height: 150, series: [{}, ...series.map((s, i) => ({ label: s, stroke: ["#0969da", "#1a7f37", "#cf222e"][i] }))],
      // Three significant digits: a tenth of a core reads 0.1, not 0.
      axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => String(Number(v.toPrecision(3)))) }] }, data, target);
  };
  const showLatest = (u) => {
    latest.replaceChildren();
    if (!u) return;
    const row = (k, v) => latest.append(el("dt", { text: k }), el("dd", { text: v }));
    row("sampled", u.time ? new Date(u.time).toLocaleTimeString() : "-");
    row("memory", humanSize(u.memory) + " (peak " + humanSize(u.memory_peak) + ")");
    row("processes", String(u.procs || 0));
    row("disk", humanSize(u.disk_bytes) + ", " + (u.disk_inodes || 0) + " inodes");
    row("traffic in / out", humanSize(u.net_rx_bytes) + " / " + humanSize(u.net_tx_bytes));
    row("tcp sockets", String(u.tcp_sockets || 0));
  };
  const load = async () => {
    const [, label, from, step] = USAGE_RANGES.find((r) => r[0] === range.value) || USAGE_RANGES[0];
    const h = await api("GET", "/v1/guests/" + encodeURIComponent(name) + "/usage?from=" + from + "&step=" + step);
    const pts = h.points || [];
    const dt = h.step || 60;
    note.textContent = pts.length ? pts.length + " points, the " + label + " at " + dt + " s (" + h.resolution + " history)" : "No usage sample in the " + label + ".";
    const t = pts.map((p) => Date.parse(p.time) / 1000);
    // Counters are increases over a bucket: per second over the step (a
    // bucket may hold fewer samples than the step at the range's edges).
    const rate = (p, k) => (p[k] && p[k].increase ? p[k].increase / dt : 0);
    plot(mem, "memory (MiB, average)", ["memory"], [t, pts.map((p) => (p.memory ? p.memory.avg : 0) / 1048576)]);
    plot(cpu, "cpu (cores)", ["cpu"], [t, pts.map((p) => rate(p, "cpu_ns") / 1e9)]);
    plot(net, "network (bytes/s)", ["in", "out"], [t, pts.map((p) => rate(p, "net_rx_bytes")), pts.map((p) => rate(p, "net_tx_bytes"))]);
    showLatest(h.latest);
  };
  range.addEventListener("change", () => load().catch((e) => setStatus(errorText(e), true)));
  return load;
}

VF.views.guest = async (root, args) => {
  const name = args[0];
  const path = "/v1/guests/" + encodeURIComponent(name);
  let g = await api("GET", path);
  const head = el("div.toolbar");
  const reason = el("div#guest-reason");
  const summary = el("dl.kv#guest-summary");
  const specBox = el("div");
  const ipsBox = el("div.chips#guest-ips");
  const traffic = el("dl.kv#guest-traffic");
  const termBox = el("div#terminal");
  const termBtn = el("button#terminal-open", {}, "Open terminal");
  const consoleBtn = el("button#console-open", { title: "the guest's console: what its init and its processes write" }, "Console");
  const evBox = el("div.events#guest-events");
  const usageBox = el("div#guest-usage");
  const opBox = el("div.card#guest-op", { hidden: true });
  const staff = !!(VF.me && VF.me.staff);
  // A move in progress: its step and progress until it ends, then the
  // page again (the guest's node changed, or its error says why not).
  const runOp = async (op) => {
    opBox.hidden = false;
    const end = await followOperation(opBox, op);
    await refresh();
    if (end.state === "failed") setStatus(end.kind + " failed: " + (end.error || ""), true);
  };
  const button = (id, label, fn, cls) => el("button" + (cls ? "." + cls : "") + "#" + id, { type: "button", onclick: (ev) => act(ev.target, fn) }, label);
  const lifecycle = (op) => async () => {
    await api("POST", path + "/" + op + "?wait=" + (op === "stop" ? "stopped" : "running") + "&timeout=60");
    await refresh();
  };
  head.append(el("h2#guest-name", { text: name }), stateSpan(g.state), el("span.grow"),
    button("guest-start", "Start", lifecycle("start")),
    button("guest-stop", "Stop", lifecycle("stop")),
    button("guest-restart", "Restart", lifecycle("restart")),
    staff ? button("guest-move", "Move…", async () => {
      const body = await moveDialog(g);
      if (!body) return;
      let op;
      try {
        op = await api("POST", path + "/move", body);
      } catch (e) {
        opRefused(opBox, "move", e);
        throw e;
      }
      await runOp(op);
    }) : el("button#guest-move", { type: "button", disabled: true, title: "moving a guest is for operators and admins" }, "Move…"),
    button("guest-destroy", "Destroy", async () => {
      if (!(await confirmDo("Destroy guest \"" + name + "\"? Its disk and addresses go with it."))) return;
      await api("DELETE", path);
      location.hash = "#/guests";
    }, "danger"));
  const refresh = async () => {
    g = await api("GET", path);
    head.querySelector(".state").replaceWith(stateSpan(g.state));
    head.querySelector("#guest-start").disabled = g.state === "running";
    head.querySelector("#guest-stop").disabled = g.state !== "running";
    reason.replaceChildren(...(g.message ? [el("div.reason", {}, el("strong", { text: "Node's reason: " }), g.message)] : []));
    summary.replaceChildren();
    const row = (k, v, id) => summary.append(el("dt", { text: k }), el("dd", { text: text(v), id }));
    row("state", g.state + (g.desired !== (g.state === "running" ? "running" : g.state) ? " (desired " + g.desired + ")" : ""), "guest-state");
    row("node", g.node);
    row("memory", limitText("size", (g.limits || {}).memory), "guest-memory");
    row("cpu", (g.limits || {}).cpu_max ? g.limits.cpu_max + " cores" : "-");
    row("disk", limitText("size", (g.limits || {}).disk));
    row("processes", (g.limits || {}).procs || "-");
    specBox.replaceChildren(specList(g), el("details", {}, el("summary", { text: "JSON" }), el("pre.json", { text: JSON.stringify(g, null, 2) })));
    ipsBox.replaceChildren(...(g.ips || []).map((ip) => el("span.chip", {}, ip,
      el("button", { type: "button", title: "remove", onclick: (ev) => act(ev.target, async () => {
        if (!(await confirmDo("Remove address " + ip + " from " + name + "?"))) return;
        await api("DELETE", path + "/ips/" + encodeURIComponent(ip));
        await refresh();
      }) }, "×"))), ...((g.ips || []).length ? [] : [el("span.muted", { text: "no addresses" })]));
    try {
      const t = await api("GET", path + "/traffic");
      traffic.replaceChildren(el("dt", { text: "in" }), el("dd", { text: humanSize(t.rx_bytes) + " (" + t.rx_packets + " packets)" }),
        el("dt", { text: "out" }), el("dd", { text: humanSize(t.tx_bytes) + " (" + t.tx_packets + " packets)" }),
        el("dt", { text: "since" }), el("dd", { text: t.since || "created" }));
    } catch (e) {
      traffic.replaceChildren(el("dd.muted", { text: "no sample yet" }));
    }
  };
  const ipAdd = el("form.toolbar#ip-form", {}, el("input#ip-value", { placeholder: "auto, auto4, auto6 or an address", size: 22 }),
    el("button#ip-add", { type: "submit" }, "Add address"));
  ipAdd.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(document.getElementById("ip-add"), async () => {
      await api("POST", path + "/ips", { ip: document.getElementById("ip-value").value.trim() || "auto" });
      document.getElementById("ip-value").value = "";
      await refresh();
    });
  });
  const resetTraffic = button("traffic-reset", "Reset counters", async () => {
    if (!(await confirmDo("Start a new traffic period for " + name + "?"))) return;
    await api("POST", path + "/traffic/reset");
    await refresh();
  });
  let closeTerm = null;
  termBtn.addEventListener("click", () => {
    if (closeTerm) closeTerm();
    closeTerm = openTerminal(termBox, name, false);
  });
  consoleBtn.addEventListener("click", () => {
    if (closeTerm) closeTerm();
    closeTerm = openTerminal(termBox, name, true);
  });
  onLeave(() => closeTerm && closeTerm());
  root.append(head, reason, opBox,
    el("div.grid", {},
      el("div.card", {}, el("h3", { text: "Summary" }), summary),
      el("div.card", {}, el("h3", { text: "Addresses" }), ipsBox, ipAdd, el("h3", { text: "Traffic" }), traffic, resetTraffic),
      el("div.card.wide", {}, el("div.toolbar", {}, el("h3", { text: "Terminal" }), el("span.grow"), consoleBtn, termBtn), termBox),
      el("div.card", {}, el("h3", { text: "Usage" }), usageBox),
      el("div.card", {}, el("h3", { text: "Change limits" }), limitsForm(g, refresh)),
      el("div.card", {}, el("h3", { text: "Spec" }), specBox),
      el("div.card", {}, el("h3", { text: "Provisioning" }), provisionForm(g, refresh)),
      el("div.card.wide", {}, el("h3", { text: "Events" }), evBox)));
  const loadUsage = usageCharts(usageBox, name);
  await refresh();
  loadUsage().catch((e) => setStatus(errorText(e), true));
  eventFeed(evBox, { guest: name }, 100);
  // A move that was running when the page opened (started elsewhere, or
  // before a reload) is followed here too.
  if (staff)
    api("GET", "/v1/operations?state=running&guest=" + encodeURIComponent(name))
      .then((b) => (b.operations || []).filter((o) => o.kind === "move").slice(0, 1).forEach((o) => runOp(o)))
      .catch(() => {});
  every(3000, () => refresh().catch((e) => setStatus(errorText(e), true)));
  every(10000, () => loadUsage().catch((e) => setStatus(errorText(e), true)));
};

// ---- nodes ----

function usageCell(alloc, usable, capacity, ratio, fmt) {
  const pct = usable ? Math.min(100, (alloc / usable) * 100) : 0;
  const over = alloc > capacity && capacity > 0;
  return el("td", {},
    el("div", { class: over ? "over" : "", title: over ? "allocated beyond the capacity (overcommitted)" : "" },
      fmt(alloc) + " / " + fmt(usable) + (ratio > 1 ? " (" + fmt(capacity) + "×" + ratio + ")" : "")),
    el("div.bar", {}, el("span", { class: pct >= 100 ? "full" : "", style: "width:" + pct.toFixed(0) + "%" })));
}

// The guests' leftovers a node holds (data/<id> directories with no record,
// counted at its agent's start), as `vfleet node ls|show` says them:
// "unknown" from an agent older than the count (null), 0, or N to act on,
// with the command that lists them on the node.
function leftoversCell(n) {
  const lo = n.leftovers;
  if (typeof lo !== "number")
    return el("td.muted", { "data-leftovers": "unknown", title: "the node's agent does not count them (older than the count)", text: "unknown" });
  if (lo === 0) return el("td", { "data-leftovers": "0", text: "0" });
  return el("td.wrap", { "data-leftovers": String(lo), title: "data directories of guests with no record, counted at the agent's start; the master never removes them" },
    el("span.over", { text: String(lo) }), el("span.muted", {}, " (", el("code", { text: "vfleet-node leftovers" }), " on the node lists them)"));
}

VF.views.nodes = async (root) => {
  const tbody = el("tbody#nodes");
  const ops = el("div#node-ops");
  // Each drain started here: its progress (guests moved) until it ends.
  const runOp = async (op) => {
    const box = el("div.card", { "data-op": op.id });
    ops.prepend(box);
    const end = await followOperation(box, op);
    await load();
    if (end.state === "failed") setStatus("drain of " + end.node + " failed: " + (end.error || ""), true);
  };
  root.append(el("h2", { text: "Nodes" }), ops,
    el("p.muted", {}, "CPU, memory and disk: allocated / usable, usable being the capacity times the overcommit ratio (what placement counts against). " +
      "Leftovers: guests' data directories with no record on the node, counted at its agent's start; ", el("code", { text: "vfleet-node leftovers" }),
      " on the node lists them, and removes them with the agent stopped."),
    el("div.card.scroll", {}, el("table", {}, el("thead", {}, el("tr", {},
      ["name", "state", "guests", "cpu", "memory", "disk", "leftovers", "templates", "labels", "last seen", ""].map((h) => el("th", { text: h })))), tbody)));
  const load = async () => {
    const nodes = await apiList("/v1/nodes", "nodes");
    tbody.replaceChildren(...nodes.map((n) => {
      const cap = n.capacity || {}, al = n.allocated || {}, us = n.usable || cap, oc = n.overcommit || {};
      const btn = (label, op) => el("button", { type: "button", "data-node": n.name, onclick: (ev) => act(ev.target, async () => {
        if (op === "cordon" && !(await confirmDo("Cordon node " + n.name + "? No new guest is placed on it."))) return;
        await api("POST", "/v1/nodes/" + encodeURIComponent(n.name) + "/" + op);
        await load();
      }) }, label);
      return el("tr", { "data-node": n.name },
        el("td", { text: n.name }),
        el("td", {}, stateSpan(n.state), n.cordoned ? el("span.muted", { text: " cordoned" }) : null),
        el("td.num", { text: (n.guests || 0) + "/" + (cap.max_guests || "-") }),
        usageCell(al.cpus || 0, us.cpus || 0, cap.cpus || 0, oc.cpus || 1, (x) => String(Math.round(x * 100) / 100)),
        usageCell(al.memory || 0, us.memory || 0, cap.memory || 0, oc.memory || 1, humanSize),
        usageCell(al.disk || 0, us.disk || 0, cap.disk || 0, oc.disk || 1, humanSize),
        leftoversCell(n),
        el("td.wrap", { text: (n.templates || []).join(", ") || "-" }),
        el("td.wrap", { text: labelText(n.labels) }),
        el("td.hide-narrow", { text: n.last_seen ? new Date(n.last_seen).toLocaleTimeString() : "-" }),
        el("td", {}, n.cordoned ? btn("Uncordon", "uncordon") : btn("Cordon", "cordon"), " ",
          el("button.danger", { type: "button", "data-drain": n.name, onclick: (ev) => act(ev.target, async () => {
            if (!(await confirmDo("Drain node " + n.name + "? It is cordoned and its " + (n.guests || 0) + " guest(s) are moved to other nodes, " +
              "each stopped while its disk is copied."))) return;
            let op;
            try {
              op = await api("POST", "/v1/nodes/" + encodeURIComponent(n.name) + "/drain", {});
            } catch (e) {
              const box = el("div.card");
              ops.prepend(box);
              opRefused(box, "drain of " + n.name, e);
              throw e;
            }
            await runOp(op);
          }) }, "Drain")));
    }));
  };
  await load();
  every(3000, () => load().catch((e) => setStatus(errorText(e), true)));
};

// ---- templates ----

VF.views.templates = async (root) => {
  const b = await api("GET", "/v1/templates");
  root.append(el("h2", { text: "Templates" }), el("div.card.scroll", {}, el("table#templates", {},
    el("thead", {}, el("tr", {}, ["template", "nodes", "size", "checksum", ""].map((h) => el("th", { text: h })))),
    el("tbody", {}, b.templates.map((t) => el("tr", {},
      el("td", { text: t.name }),
      el("td.wrap", { text: t.nodes ? t.nodes.map((n) => n.node).join(", ") : String(t.node_count) }),
      el("td.num", { text: t.nodes && t.nodes[0] && t.nodes[0].size ? humanSize(t.nodes[0].size) : "-" }),
      el("td", { text: (t.checksums || []).filter(Boolean).map((s) => s.slice(0, 19)).join(" ") || "-" }),
      el("td", {}, t.consistent ? null : el("span.error", { text: "copies differ" }))))))));
};

// ---- pools ----

VF.views.pools = async (root) => {
  const tbody = el("tbody#pools");
  const f = el("form.fields#pool-form", {},
    el("label", {}, "Name", el("input", { name: "name", required: true })),
    el("label", {}, "CIDR", el("input", { name: "cidr", required: true, placeholder: "10.88.0.0/24" })),
    el("label", {}, "Gateway", el("input", { name: "gateway" })),
    el("label", {}, "Selector (node labels)", el("input", { name: "selector", placeholder: "zone=a" })),
    el("div.actions", {}, el("button.primary#pool-submit", { type: "submit" }, "Create pool")));
  root.append(el("h2", { text: "Address pools" }), el("div.card.scroll", {}, el("table", {},
    el("thead", {}, el("tr", {}, ["name", "cidr", "family", "gateway", "selector", "allocated", ""].map((h) => el("th", { text: h })))), tbody)),
  el("div.card", {}, el("h3", { text: "New pool" }), f));
  const load = async () => {
    const b = await api("GET", "/v1/pools");
    tbody.replaceChildren(...b.pools.map((p) => el("tr", {},
      el("td", { text: p.name }), el("td", { text: p.cidr }), el("td", { text: p.family }), el("td", { text: text(p.gateway) }),
      el("td", { text: labelText(p.selector) }), el("td.num", { text: p.allocated + " / " + p.size }),
      el("td", {}, el("button.danger", { type: "button", onclick: (ev) => act(ev.target, async () => {
        if (!(await confirmDo("Delete pool " + p.name + "?"))) return;
        await api("DELETE", "/v1/pools/" + encodeURIComponent(p.name));
        await load();
      }) }, "Delete")))));
  };
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { name: f.elements.name.value.trim(), cidr: f.elements.cidr.value.trim() };
    if (f.elements.gateway.value.trim()) body.gateway = f.elements.gateway.value.trim();
    if (f.elements.selector.value.trim()) body.selector = Object.fromEntries(words(f.elements.selector.value).map((w) => w.split("=")));
    act(document.getElementById("pool-submit"), async () => {
      await api("POST", "/v1/pools", body);
      f.reset();
      await load();
    });
  });
  await load();
};

// ---- projects and quotas ----

VF.views.projects = async (root) => {
  const tbody = el("tbody#projects");
  const quotaKeys = ["guests", "cpus", "memory", "disk", "addresses"];
  const fmtQ = (k, v) => (v === null || v === undefined ? "∞" : k === "memory" || k === "disk" ? humanSize(v) : String(v));
  root.append(el("h2", { text: "Projects and quotas" }), el("div.card.scroll", {}, el("table", {},
    el("thead", {}, el("tr", {}, ["project", ...quotaKeys.map((k) => k + " (used / quota)"), "created"].map((h) => el("th", { text: h })))), tbody)));
  const f = el("form.fields#project-form", {},
    el("label", {}, "Project", el("input", { name: "name", required: true })),
    ...quotaKeys.map((k) => el("label", {}, k, el("input", { name: k, placeholder: k === "memory" || k === "disk" ? "16G (empty: none)" : "empty: none" }))),
    el("div.actions", {}, el("button.primary#project-create", { type: "submit", name: "create" }, "Create"),
      el("button#project-set", { type: "button" }, "Set quotas of this project")));
  const body = () => {
    const quota = {};
    for (const k of quotaKeys) {
      const s = f.elements[k].value.trim();
      if (s === "") continue;
      quota[k] = s === "none" ? null : /^[\d.]+$/.test(s) ? Number(s) : s;
    }
    return quota;
  };
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(document.getElementById("project-create"), async () => {
      await api("POST", "/v1/projects", { name: f.elements.name.value.trim(), quota: body() });
      f.reset();
      await load();
    });
  });
  f.querySelector("#project-set").addEventListener("click", (ev) => act(ev.target, async () => {
    await api("PATCH", "/v1/projects/" + encodeURIComponent(f.elements.name.value.trim()), { quota: body() });
    await load();
  }));
  if (VF.me && VF.me.staff) root.append(el("div.card", {}, el("h3", { text: "Create a project, or set quotas (admins)" }), f));
  const load = async () => {
    const b = await api("GET", "/v1/projects");
    tbody.replaceChildren(...b.projects.map((p) => el("tr", {}, el("td", { text: p.name }),
      ...quotaKeys.map((k) => el("td.num", { text: fmtQ(k, p.usage[k]) + " / " + fmtQ(k, p.quota[k]) })),
      el("td", { text: p.created }))));
  };
  await load();
};

// ---- the live event feed (GET /v1/events, live.js) ----

VF.views.events = async (root) => {
  const box = el("div.events.card#event-feed");
  const f = el("form.toolbar#event-filter", {},
    el("input", { name: "type", placeholder: "type: guest.*, node.state…", size: 22 }),
    el("input", { name: "guest", placeholder: "guest", size: 12 }),
    el("input", { name: "node", placeholder: "node", size: 12 }),
    el("input", { name: "project", placeholder: "project", size: 12 }),
    el("button#event-filter-apply", { type: "submit" }, "Filter"));
  root.append(el("h2", { text: "Events" }), f, box);
  // A new filter is a new feed: the old one's stream is closed first.
  let stop = null;
  const start = () => {
    if (stop) stop();
    const filter = {};
    for (const k of ["type", "guest", "node", "project"]) filter[k] = f.elements[k].value.trim();
    stop = eventFeed(box, filter, 300);
  };
  f.addEventListener("submit", (ev) => {
    ev.preventDefault();
    start();
  });
  start();
};
