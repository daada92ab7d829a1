// vfleet web UI: polls the master's REST API and shows nodes and guests.
// Plain JS, no framework, no build step; every value goes in as text.
//
// The API wants a bearer token: the page asks for one and keeps it in
// sessionStorage (gone with the tab, never in a cookie, so no other site
// can make the browser send it), and sends it as Authorization: Bearer.
"use strict";

const POLL_MS = 2000;
const TOKEN_KEY = "vfleet.token";

class AuthError extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function showLogin(message) {
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  const status = document.getElementById("status");
  status.className = message ? "error" : "muted";
  status.textContent = message || "sign in with an API token";
}

function signedIn() {
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
}

function humanSize(n) {
  if (typeof n !== "number" || n <= 0) return "-";
  const units = ["", "K", "M", "G", "T", "P"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)) + units[i];
}

function labels(obj) {
  if (!obj) return "-";
  const parts = Object.keys(obj).sort().map((k) => k + "=" + obj[k]);
  return parts.length ? parts.join(", ") : "-";
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null || text === "" ? "-" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function stateCell(row, state) {
  cell(row, state, "state state-" + String(state).replace(/[^a-z]/g, ""));
}

// Follows "next" so long lists arrive whole.
async function fetchAll(path, key) {
  let items = [];
  let after = null;
  for (let i = 0; i < 1000; i++) {
    const url = path + "?limit=1000" + (after ? "&after=" + encodeURIComponent(after) : "");
    const r = await fetch(url, {
      headers: { Accept: "application/json", Authorization: "Bearer " + token() },
    });
    if (r.status === 401) throw new AuthError("the token was refused");
    // A tenant token may not read nodes: show none rather than fail.
    if (r.status === 403) return null;
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    const body = await r.json();
    items = items.concat(body[key] || []);
    if (!body.next || body.next === after) break;
    after = body.next;
  }
  return items;
}

function renderNodes(nodes) {
  const tbody = document.getElementById("nodes");
  tbody.replaceChildren();
  if (nodes === null) {
    document.getElementById("node-count").textContent = "(not visible to this token)";
    return;
  }
  for (const n of nodes) {
    const tr = document.createElement("tr");
    const cap = n.capacity || {}, used = n.allocated || {};
    cell(tr, n.name);
    stateCell(tr, n.state);
    cell(tr, n.cordoned ? "yes" : "no");
    cell(tr, (n.guests || 0) + (cap.max_guests ? "/" + cap.max_guests : ""), "num");
    cell(tr, (used.cpus || 0) + "/" + (cap.cpus || 0), "num");
    cell(tr, humanSize(used.memory) + "/" + humanSize(cap.memory), "num");
    cell(tr, humanSize(used.disk) + "/" + humanSize(cap.disk), "num");
    cell(tr, labels(n.labels));
    cell(tr, n.backend);
    cell(tr, n.last_seen ? new Date(n.last_seen).toLocaleTimeString() : "-");
    tbody.appendChild(tr);
  }
  document.getElementById("node-count").textContent = "(" + nodes.length + ")";
}

function renderGuests(guests) {
  const tbody = document.getElementById("guests");
  tbody.replaceChildren();
  for (const g of guests) {
    const tr = document.createElement("tr");
    const lim = g.limits || {};
    cell(tr, g.name);
    cell(tr, g.project);
    cell(tr, g.node);
    stateCell(tr, g.state);
    cell(tr, g.applied_generation + "/" + g.generation, "num");
    cell(tr, (g.ips || []).join(", "));
    cell(tr, humanSize(lim.memory), "num");
    cell(tr, lim.cpu_max ? lim.cpu_max : "-", "num");
    cell(tr, humanSize(lim.disk), "num");
    cell(tr, labels(g.labels));
    if (g.message) tr.title = g.message;
    tbody.appendChild(tr);
  }
  document.getElementById("guest-count").textContent = "(" + guests.length + ")";
}

let timer = null;

async function refresh() {
  const status = document.getElementById("status");
  timer = null;
  if (!token()) {
    showLogin();
    return;
  }
  signedIn();
  try {
    const [nodes, guests] = await Promise.all([
      fetchAll("/v1/nodes", "nodes"),
      fetchAll("/v1/guests", "guests"),
    ]);
    renderNodes(nodes);
    renderGuests(guests || []);
    status.className = "muted";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(e.message);
      return;
    }
    status.className = "error";
    status.textContent = "cannot reach the master: " + e.message;
  }
  timer = setTimeout(refresh, POLL_MS);
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  if (timer) clearTimeout(timer);
  refresh();
});

document.getElementById("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearTimeout(timer);
  document.getElementById("nodes").replaceChildren();
  document.getElementById("guests").replaceChildren();
  showLogin();
});

refresh();
