// vfleet web UI, the core: the API client, the router, small DOM helpers.
// Plain JS, no framework and no build step; every value from the master
// goes into the page as text (textContent), never as HTML.
//
// The API wants a bearer token: the page asks for one and keeps it in
// sessionStorage (gone with the tab, never in a cookie, so no other site
// can make the browser send it), and sends it as Authorization: Bearer; a
// WebSocket, which cannot carry that header, offers it as the subprotocol
// "bearer.TOKEN" (docs/api.md, "Shell").
"use strict";

const TOKEN_KEY = "vfleet.token";
const VF = { views: {}, timers: [], me: null, cleanup: [] };

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || "HTTP " + status);
    this.status = status;
    this.code = e.code;
    this.field = e.field;
    this.body = body;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// One request; JSON in and out. A 401 signs out.
async function api(method, path, body) {
  const headers = { Accept: "application/json", Authorization: "Bearer " + token() };
  const opts = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    if (method === "POST") headers["Idempotency-Key"] = crypto.randomUUID();
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch (e) {
    json = null;
  }
  if (r.status === 401) {
    signOut("the token was refused: " + ((json && json.error && json.error.message) || ""));
    throw new ApiError(401, json);
  }
  if (!r.ok) throw new ApiError(r.status, json);
  return json;
}

// Every page of a list (following "next").
async function apiList(path, key) {
  let items = [];
  let after = null;
  const sep = path.includes("?") ? "&" : "?";
  for (let i = 0; i < 1000; i++) {
    const body = await api("GET", path + sep + "limit=1000" + (after ? "&after=" + encodeURIComponent(after) : ""));
    items = items.concat(body[key] || []);
    if (!body.next || body.next === after) break;
    after = body.next;
  }
  return items;
}

// ---- DOM helpers ----

// el("tag.class#id", {attr: v, onclick: f}, children...): text children are text nodes.
function el(spec, attrs, ...children) {
  const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/.exec(spec);
  const node = document.createElement(m ? m[1] : spec);
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === ".") node.classList.add(part.slice(1));
      else node.id = part.slice(1);
    }
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else if (k === "value") node.value = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function text(v) {
  return v === undefined || v === null || v === "" ? "-" : String(v);
}

function humanSize(n) {
  if (typeof n !== "number" || n <= 0) return "0";
  const units = ["", "K", "M", "G", "T", "P"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (n >= 10 || i === 0 ? Math.round(n) : Math.round(n * 10) / 10) + units[i];
}

function humanRate(bps) {
  if (!bps) return "0";
  const units = ["bit", "kbit", "mbit", "gbit"];
  let i = 0;
  while (bps >= 1000 && i < units.length - 1) {
    bps /= 1000;
    i++;
  }
  return Math.round(bps * 10) / 10 + units[i];
}

function labelText(obj) {
  const parts = Object.keys(obj || {}).sort().map((k) => k + "=" + obj[k]);
  return parts.length ? parts.join(", ") : "-";
}

function stateSpan(state) {
  return el("span.state.state-" + String(state || "").replace(/[^a-z]/g, ""), { text: text(state) });
}

function setStatus(msg, isError) {
  const s = document.getElementById("status");
  s.textContent = msg;
  s.className = isError ? "error" : "muted";
}

function errorText(e) {
  if (!(e instanceof ApiError)) return String(e.message || e);
  let t = e.message + (e.field ? " (" + e.field + ")" : "");
  const p = e.body && e.body.error && e.body.error.placement;
  if (p && p.filters) t += ": " + p.filters.map((f) => f.filter + " rejected " + f.rejected + (f.reason ? " (" + f.reason + ")" : "")).join("; ");
  return t;
}

// A confirmation dialog; resolves true when confirmed.
function confirmDo(message) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = message;
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
  });
}

// Runs an action with its button disabled; failures go to the status line.
async function act(button, fn) {
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (e) {
    setStatus(errorText(e), true);
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- the router: #/view/arg ----

function every(ms, fn) {
  const id = setInterval(fn, ms);
  VF.timers.push(id);
}

function onLeave(fn) {
  VF.cleanup.push(fn);
}

async function route() {
  for (const id of VF.timers) clearInterval(id);
  VF.timers = [];
  for (const fn of VF.cleanup.splice(0)) {
    try {
      fn();
    } catch (e) {
      /* leaving anyway */
    }
  }
  if (!token()) {
    showLogin();
    return;
  }
  document.getElementById("login-view").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  const parts = (location.hash || "#/guests").slice(2).split("/").map(decodeURIComponent);
  const name = parts[0] || "guests";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name || (name === "guest" && a.dataset.view === "guests") || (name === "create" && a.dataset.view === "guests"));
  const view = VF.views[name] || VF.views.guests;
  const root = document.getElementById("view");
  root.replaceChildren();
  try {
    await view(root, parts.slice(1));
    setStatus("updated " + new Date().toLocaleTimeString());
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    root.appendChild(el("p.error", { text: errorText(e) }));
    setStatus(errorText(e), true);
  }
}

function showLogin(message) {
  document.getElementById("view").replaceChildren();
  document.getElementById("login-view").hidden = false;
  document.getElementById("nav").hidden = true;
  document.getElementById("logout").hidden = true;
  setStatus(message || "sign in with an API token", !!message);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  VF.me = null;
  for (const id of VF.timers) clearInterval(id);
  VF.timers = [];
  showLogin(message);
}

document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  try {
    // A token that can list guests is good; nodes tell staff from tenants.
    await api("GET", "/v1/guests?limit=1");
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) setStatus(errorText(e), true);
    return;
  }
  await whoAmI();
  route();
});

document.getElementById("logout").addEventListener("click", () => {
  signOut();
  location.hash = "#/guests";
});

// Staff (admin, operator) may read nodes; a tenant gets 403.
async function whoAmI() {
  try {
    await api("GET", "/v1/nodes?limit=1");
    VF.me = { staff: true };
  } catch (e) {
    VF.me = { staff: false };
  }
  for (const a of document.querySelectorAll("#nav [data-staff]")) a.hidden = !VF.me.staff;
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  if (token()) await whoAmI();
  route();
});
