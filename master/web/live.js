// vfleet web UI, what follows the master live: the event feed (GET
// /v1/events as JSON lines, followed and resumed) and long operations (a
// move, a drain: GET /v1/operations/{id} until they end).
//
// EventSource cannot send the Authorization header, so the feed reads the
// JSON-lines stream with fetch and a streaming reader, and resumes with
// ?after=SEQ, the last sequence number it saw, when the stream breaks.
"use strict";

function eventLine(e) {
  if (e.type === "gap") {
    const d = e.data || {};
    return el("div.muted", { "data-seq": e.seq, "data-type": "gap", text: "events " + d.from + " to " + d.to + " were dropped by retention" });
  }
  const when = e.time ? new Date(e.time).toLocaleString() : "";
  return el("div", { "data-seq": e.seq, "data-type": e.type, "data-guest": e.guest || "", title: JSON.stringify(e.data || {}) },
    el("span.muted", { text: when + "  " }), el("strong", { text: e.type }),
    "  " + [e.node, e.guest].filter(Boolean).join(" ") + "  " + (e.message || ""));
}

// A live feed in box: the last `keep` events that match `filter` ({type,
// guest, node, project}), newest first, then every new one as it is
// committed. Stops when the page is left or when the stop function it
// returns is called. box.dataset.state says where it is (loading, live,
// reconnecting), box.dataset.after the last seq seen.
function eventFeed(box, filter, keep) {
  const q = Object.entries(filter || {}).filter(([, v]) => v).map(([k, v]) => "&" + k + "=" + encodeURIComponent(v)).join("");
  const ctl = new AbortController();
  let after = 0;
  let stopped = false;
  const stop = () => {
    stopped = true;
    ctl.abort();
  };
  onLeave(stop);
  box.replaceChildren(el("div.muted.feed-empty", { text: "No events." }));
  box.dataset.state = "loading";
  const show = (e) => {
    if (stopped) return;
    if (e.seq <= after && e.type !== "gap") return; // never twice
    after = Math.max(after, e.seq);
    box.dataset.after = String(after);
    const empty = box.querySelector(".feed-empty");
    if (empty) empty.remove();
    box.prepend(eventLine(e));
    while (box.childNodes.length > keep) box.lastChild.remove();
  };
  // What the log holds: the newest `keep` events that match (?tail=, the
  // master reads back through the filter), then the feed follows from the
  // newest event's seq, the page's next.
  const history = async () => {
    box.replaceChildren(el("div.muted.feed-empty", { text: "No events." }));
    const b = await api("GET", "/v1/events?tail=" + keep + q);
    after = 0;
    for (const e of b.events || []) show(e);
    after = Math.max(after, b.next || 0);
    box.dataset.after = String(after);
  };
  // Follows from `after`; on a break, resumes from the last seq seen.
  const follow = async () => {
    const r = await fetch("/v1/events?follow=true&after=" + after + q, {
      headers: { Accept: "application/x-ndjson", Authorization: "Bearer " + token() }, signal: ctl.signal });
    if (r.status === 401) signOut("the token was refused");
    if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
    box.dataset.state = "live";
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      buf += dec.decode(chunk.value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) show(JSON.parse(line)); // an empty line is the keepalive
      }
    }
  };
  (async () => {
    let backoff = 1000;
    let needHistory = true;
    while (!stopped) {
      try {
        if (needHistory) await history();
        needHistory = false;
        await follow();
        backoff = 1000;
      } catch (e) {
        if (stopped || (e instanceof ApiError && e.status === 401)) return;
        // A resume point the master does not know (its store was put back):
        // read the log again from its newest event.
        if (e instanceof ApiError && e.status === 400) needHistory = true;
        box.dataset.state = "reconnecting";
        setStatus("event feed: " + errorText(e) + "; reconnecting", true);
      }
      if (stopped) return;
      await new Promise((res) => setTimeout(res, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  })();
  return stop;
}

// ---- operations ----

function opProgress(op) {
  const p = op.progress || {};
  if (op.kind === "drain") return p.bytes_total ? p.bytes_done + " of " + p.bytes_total + " guests moved" : "";
  if (!p.bytes_total) return "";
  const pct = Math.floor((p.bytes_done / p.bytes_total) * 100);
  return humanSize(p.bytes_done) + " of " + humanSize(p.bytes_total) + " (" + pct + "%)" +
    (p.rate ? ", " + humanSize(p.rate) + "/s" : "") + (p.eta_s !== null && p.eta_s !== undefined ? ", " + p.eta_s + " s left" : "");
}

function opResult(op) {
  const r = op.result || {};
  if (op.kind === "move" && r.to) return "moved " + r.from + " → " + r.to + " (" + r.mode + ", down " + r.downtime_ms + " ms)" + (r.warning ? "; " + r.warning : "");
  if (op.kind === "drain") {
    const failed = Object.entries(r.failed || {});
    return (r.moved || 0) + " guest(s) moved" + (failed.length ? "; stayed: " + failed.map(([g, why]) => g + " (" + why + ")").join("; ") : "");
  }
  return "";
}

// An action that starts an operation failed before it began (409, 422…):
// its reason in box, where the operation would have been shown.
function opRefused(box, what, e) {
  box.hidden = false;
  box.dataset.state = "refused";
  box.replaceChildren(el("strong", { text: what + " refused" }), el("div.error.op-error", { text: errorText(e) }));
}

// Shows an operation in box (its kind, step and progress) and polls it
// until it ends; then its result, or its error when it failed. Resolves
// with the last Operation. box.dataset.state is the operation's state.
async function followOperation(box, op) {
  let stopped = false;
  onLeave(() => (stopped = true));
  const what = op.kind + (op.guest ? " " + op.guest : op.node ? " " + op.node : "");
  const draw = () => {
    box.dataset.op = op.id;
    box.dataset.state = op.state;
    box.dataset.step = op.step;
    const line = el("div", {}, el("strong", { text: what }), " ",
      op.state === "running" ? "step " + op.step + (opProgress(op) ? ": " + opProgress(op) : "") : op.state,
      op.target ? el("span.muted", { text: " (to " + op.target + ")" }) : null);
    box.replaceChildren(line);
    if (op.state === "running") {
      const p = op.progress || {};
      if (p.bytes_total) box.append(el("progress", { max: p.bytes_total, value: p.bytes_done }));
    } else if (op.state === "done") {
      box.append(el("div.op-result", { text: opResult(op) }));
    } else {
      if (opResult(op)) box.append(el("div.op-result", { text: opResult(op) }));
      box.append(el("div.error.op-error", { text: op.error || op.state }));
    }
  };
  draw();
  while (!stopped && op.state === "running") {
    await new Promise((res) => setTimeout(res, 700));
    if (stopped) break;
    try {
      op = await api("GET", "/v1/operations/" + encodeURIComponent(op.id));
    } catch (e) {
      if (e.status === 404 || e.status === 401) break;
      setStatus(errorText(e), true);
      continue;
    }
    draw();
  }
  return op;
}

// The move dialog: a target node (or the scheduler's choice), near-live or
// cold, renumber or not. Resolves the move's body when confirmed, null when
// cancelled.
async function moveDialog(g) {
  const nodes = await apiList("/v1/nodes", "nodes");
  const sel = el("select#move-target", {}, el("option", { value: "", text: "the scheduler's choice" }),
    nodes.filter((n) => n.name !== g.node).map((n) => el("option", {
      value: n.name, text: n.name + " (" + n.state + (n.cordoned ? ", cordoned" : "") + ")", disabled: n.state !== "ready" || n.cordoned })));
  const live = el("input#move-live", { type: "checkbox" });
  const renumber = el("input#move-renumber", { type: "checkbox" });
  const d = el("dialog#move-dialog", {}, el("form", { method: "dialog" },
    el("p", { text: "Move guest \"" + g.name + "\" from " + g.node + " to another node? " +
      "A cold move stops it while its disk is copied; near-live copies while it runs and stops it for the last changes." }),
    el("div.fields", {}, el("label", {}, "Target node ", sel),
      el("label", {}, live, " near-live (copy while it runs)"),
      el("label", {}, renumber, " new addresses where a pool does not serve the target")),
    el("menu", {}, el("button", { value: "cancel", id: "move-cancel" }, "Cancel"),
      el("button.primary", { value: "ok", id: "move-ok" }, "Move"))));
  document.body.append(d);
  return new Promise((resolve) => {
    d.addEventListener("close", () => {
      const ok = d.returnValue === "ok";
      const body = { live: live.checked, renumber: renumber.checked };
      if (sel.value) body.to = sel.value;
      d.remove();
      resolve(ok ? body : null);
    }, { once: true });
    d.showModal();
  });
}
