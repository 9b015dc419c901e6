// hotfixd status page: one module, no framework, no build step.
//
// Reads the daemon's read-only API (/api/v1/…: the RPCs' own messages in
// the proto3 JSON mapping) with the tab's bearer token, and follows the
// event stream (/api/v1/events: server-sent events read with fetch, since
// EventSource cannot send an Authorization header). A change refetches only
// what it touched; clocks tick locally against the daemon's clock. Every
// text the daemon sends is put in the page with textContent, never as
// markup, and shown() makes control and bidi characters visible.

const TOKEN_KEY = "hotfixd.token";
const FINAL = new Set(["STATE_REVERTED", "STATE_ABORTED", "STATE_CLOSED"]);

const $ = (id) => document.getElementById(id);

// ---- text --------------------------------------------------------------

// Characters that could make typed text pass for something else on screen
// (line breaks aside): C0/C1 controls, bidi overrides and isolates, zero
// widths. Shown as \u{…} instead.
const DISGUISE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/gu;

function shown(s) {
  return String(s ?? "").replace(DISGUISE, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
}

// An element with children: strings become text nodes (never markup).
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "href") node.setAttribute("href", v);
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(shown(c)));
  }
  return node;
}

function setText(node, text) {
  node.textContent = shown(text);
}

// The merge ETA as declared (HH:MM, UTC).
const eta = (e) => (e ? `${e} UTC` : "—");

const stateName = (s) => (s ?? "STATE_UNSPECIFIED").replace(/^STATE_/, "");

// ---- time --------------------------------------------------------------

// The daemon's clock minus this browser's: countdowns are the daemon's.
let skew = 0;
const now = () => Date.now() + skew;

function span(ms) {
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  return `${m}m ${String(s).padStart(2, "0")}s`;
}

const when = (t) => (t ? new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");

// A clock since `t`, ticking.
function since(t) {
  return el("span", { class: "clock", "data-since": Date.parse(t) });
}

// A countdown to `t` ("in 3h 05m", "OVERDUE 12m"), ticking.
function until(t) {
  return el("span", { class: "clock", "data-due": Date.parse(t) });
}

function tick() {
  const n = now();
  for (const c of document.querySelectorAll("[data-since]")) {
    c.textContent = span(n - Number(c.dataset.since));
  }
  for (const c of document.querySelectorAll("[data-due]")) {
    const left = Number(c.dataset.due) - n;
    const done = c.closest("[data-done]");
    if (done) continue;
    c.textContent = left >= 0 ? `in ${span(left)}` : `OVERDUE ${span(left)}`;
    c.classList.toggle("overdue", left < 0);
    c.classList.toggle("soon", left >= 0 && left < 2 * 3600 * 1000);
  }
}

// ---- the API -------------------------------------------------------------

class Refused extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.code || "";
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY);

async function api(path, init = {}) {
  const r = await fetch(path, {
    ...init,
    cache: "no-store",
    headers: { Authorization: `Bearer ${token()}`, Accept: "application/json" },
  });
  if (!r.ok) {
    throw new Refused(r.status, await r.json().catch(() => null));
  }
  return r;
}

const json = async (path) => (await api(path)).json();

// Server-sent events from a fetch body: yields {event, data, id}.
async function* sse(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
  let buf = "";
  let msg = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        if (msg.data.length) yield { event: msg.event, data: msg.data.join("\n"), id: msg.id };
        msg = { event: "message", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") msg.event = value;
      else if (field === "data") msg.data.push(value);
      else if (field === "id") msg.id = value;
    }
  }
}

// ---- following the event stream ---------------------------------------

function setLive(state, text) {
  const live = $("live");
  live.dataset.state = state;
  live.textContent = text;
}

// Follows the events (of `incident`, or all), calling `onCaughtUp` once the
// stream is open (load the snapshot then: nothing after it is missed) and
// `onEvent` for each event. Reconnects with backoff, resuming after the
// last event seen.
async function follow({ incident, onCaughtUp, onEvent }) {
  let from = null;
  let backoff = 500;
  for (;;) {
    const stop = new AbortController();
    try {
      const q = new URLSearchParams();
      if (incident) q.set("incident", incident);
      if (from !== null) q.set("from", String(from));
      const r = await fetch(`/api/v1/events?${q}`, {
        cache: "no-store",
        headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" },
        signal: stop.signal,
      });
      if (!r.ok) throw new Refused(r.status, await r.json().catch(() => null));
      let first = true;
      for await (const m of sse(r.body, stop.signal)) {
        if (m.event === "error") throw new Refused(0, JSON.parse(m.data));
        if (m.event !== "watch") continue;
        const w = JSON.parse(m.data);
        if (w.heartbeat) {
          // Started "from now": resume after where now was.
          if (from === null) from = Number(w.heartbeat.latestSeq ?? 0);
          if (first) {
            first = false;
            backoff = 500;
            setLive("live", "live");
            await onCaughtUp();
          }
          if (w.heartbeat.closing) setLive("reconnecting", "daemon restarting…");
        } else if (w.event) {
          from = Number(w.event.seq);
          onEvent(w.event);
        }
      }
      setLive("reconnecting", "reconnecting…");
    } catch (e) {
      if (e instanceof Refused && e.status === 401) {
        signIn("The daemon refused the token: " + e.message);
        return;
      }
      setLive("reconnecting", `reconnecting… (${e.message})`);
    } finally {
      stop.abort();
    }
    await new Promise((ok) => setTimeout(ok, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

// ---- the board -----------------------------------------------------------

const board = { hotfixes: new Map(), report: null };
let dirty = new Set();
let everything = false;
let flushing = null;

// What changed, refetched at most every 250 ms.
function touch(incident) {
  if (incident) dirty.add(incident);
  else everything = true;
  flushing ??= setTimeout(flush, 250);
}

async function flush() {
  const ids = dirty;
  const all = everything;
  dirty = new Set();
  everything = false;
  try {
    const [list, report] = await Promise.all([
      json("/api/v1/hotfixes?open=true&limit=1000"),
      json("/api/v1/report"),
    ]);
    setReport(report);
    const open = new Set((list.hotfixes ?? []).map((h) => h.incidentId));
    for (const id of [...board.hotfixes.keys()]) if (!open.has(id)) board.hotfixes.delete(id);
    const wanted = [...open].filter((id) => all || ids.has(id) || !board.hotfixes.has(id));
    const views = await Promise.all(
      wanted.map((id) => json(`/api/v1/hotfixes/${encodeURIComponent(id)}`)),
    );
    for (const v of views) board.hotfixes.set(v.hotfix.incidentId, v);
    renderBoard(list.hotfixes ?? []);
    $("problem").hidden = true;
  } catch (e) {
    problem(e);
  } finally {
    flushing = null;
    if (dirty.size || everything) flushing = setTimeout(flush, 250);
  }
}

function setReport(report) {
  board.report = report;
  if (report.generatedAt) skew = Date.parse(report.generatedAt) - Date.now();
}

function nextCell(view) {
  const steps = view.nextSteps ?? [];
  const next = steps.find((s) => !s.blocked) ?? steps[0];
  if (!next) return el("td", { class: "quiet" }, "nothing");
  return el(
    "td",
    {},
    el("strong", {}, next.step),
    " by ",
    next.who,
    next.blocked ? el("div", { class: "blocked" }, "blocked: ", next.blocked) : null,
  );
}

function obligationItem(o) {
  return el(
    "li",
    { class: o.done ? "done" : "", "data-done": o.done ? "1" : null },
    `${o.kind} `,
    o.done ? "done" : until(o.due),
    o.done ? "" : el("span", { class: o.overdue ? "overdue" : "" }, ` (${o.owner})`),
  );
}

function renderBoard(order) {
  const tbody = $("hotfixes").querySelector("tbody");
  const rows = [];
  for (const h of order) {
    const view = board.hotfixes.get(h.incidentId);
    if (!view) continue;
    const x = view.hotfix;
    const owed = (x.obligations ?? []).filter((o) => !o.done);
    rows.push(
      el(
        "tr",
        { class: x.drill ? "is-drill" : "", "data-incident": x.incidentId },
        el(
          "td",
          {},
          el("a", { href: `/incidents/${encodeURIComponent(x.incidentId)}` }, x.incidentId),
          x.drill ? el("div", {}, el("span", { class: "drill" }, "DRILL")) : null,
        ),
        el("td", {}, el("span", { class: "state", "data-state": stateName(x.state) }, stateName(x.state))),
        el("td", { class: "symptom" }, x.symptom, el("div", { class: "quiet" }, `${x.repository ?? ""} · @${x.author}`)),
        el("td", {}, since(x.declaredAt)),
        el("td", {}, eta(x.mergeEta)),
        nextCell(view),
        el(
          "td",
          {},
          owed.length ? el("ul", {}, owed.map(obligationItem)) : el("span", { class: "quiet" }, "none yet"),
        ),
      ),
    );
  }
  tbody.replaceChildren(...rows);
  $("hotfixes").hidden = rows.length === 0;
  $("none").hidden = rows.length !== 0;
  setText($("open-count"), `(${rows.length})`);
  renderReport(board.report);
  tick();
}

function renderReport(r) {
  if (!r) return;
  const w = r.window ?? {};
  const count = w.count ?? 0;
  const max = w.max ?? 0;
  const days = Math.round(Number(w.windowSeconds ?? 0) / 86400);
  setText($("gate-window"), `${days} days`);
  const meter = $("gate-meter");
  meter.max = Math.max(max, 1);
  meter.high = Math.max(max - 1, 0);
  meter.value = count;
  setText($("gate-text"), `${count} of ${max} hotfixes`);
  $("gate-closed").hidden = !w.gateClosed;
  if (w.gateClosed) setText($("gate-closed"), `Gate closed: the next declaration is refused. ${w.unblock ?? ""}`);

  const overdue = r.overdue ?? [];
  $("overdue-none").hidden = overdue.length > 0;
  $("overdue").replaceChildren(
    ...overdue.map((o) =>
      el(
        "li",
        { class: "overdue" },
        el("a", { href: `/incidents/${encodeURIComponent(o.incidentId)}` }, o.incidentId),
        ` ${o.obligation}, owed by ${o.owner}, was due ${when(o.due)}`,
      ),
    ),
  );

  const authors = r.authors ?? [];
  $("authors-none").hidden = authors.length > 0;
  $("authors").hidden = authors.length === 0;
  $("authors").querySelector("tbody").replaceChildren(
    ...authors.map((a) =>
      el(
        "tr",
        {},
        el("td", {}, `@${a.author}`),
        el("td", {}, a.quarter),
        el("td", { class: "num" }, String(a.count ?? 0)),
        el("td", { class: a.flag ? "flag" : "" }, a.flag || ""),
      ),
    ),
  );

  const worked = r.lastWorked ?? [];
  $("lastworked-none").hidden = worked.length > 0;
  $("lastworked").hidden = worked.length === 0;
  $("lastworked").querySelector("tbody").replaceChildren(
    ...worked.map((x) =>
      el(
        "tr",
        { class: x.drill ? "is-drill" : "" },
        el("td", {}, when(x.at)),
        el("td", {}, x.incidentId),
        el("td", {}, x.resolvedBy),
        el("td", {}, x.drill ? el("span", { class: "drill" }, "DRILL") : ""),
      ),
    ),
  );
  $("stale").hidden = !r.stale;
  if (r.stale) setText($("stale"), "Stale: the lane has not been exercised (for real or in a drill) for the stale period. Run a drill.");
}

// ---- one incident --------------------------------------------------------

let incidentTimer = null;

async function loadIncident(id) {
  const v = await json(`/api/v1/hotfixes/${encodeURIComponent(id)}`);
  const report = await json("/api/v1/report");
  setReport(report);
  renderIncident(id, v);
  $("problem").hidden = true;
}

function renderIncident(id, v) {
  const h = v.hotfix;
  const m = v.mitigation;
  document.title = `${id} · hotfixd`;
  setText($("inc-id"), id);
  const state = h ? stateName(h.state) : "MITIGATED_WITHOUT_HOTFIX";
  setText($("inc-state"), state);
  $("inc-state").dataset.state = state;
  $("inc-drill").hidden = !h?.drill;
  setText($("inc-symptom"), h ? h.symptom : m?.notes ?? "");

  const facts = [];
  const fact = (k, ...v) => facts.push(el("dt", {}, k), el("dd", {}, ...v));
  if (h) {
    fact("Declared", when(h.declaredAt), " (", since(h.declaredAt), " ago)");
    fact("Author", `@${h.author}`);
    fact("Approver", `@${h.approver}`);
    fact("Cleanup owner", `@${h.cleanupOwner}`);
    fact("Repository", h.repository ?? "");
    fact("Merge ETA", eta(h.mergeEta));
    if (h.pullRequest) fact("Pull request", `#${h.pullRequest.number} `, h.pullRequest.url ?? "");
    if ((h.flags ?? []).length) fact("Flags", el("span", { class: "flag" }, h.flags.join("; ")));
  } else if (m) {
    fact("Mitigated", when(m.at), ` by @${m.by}`);
    fact("Route", String(m.route ?? "").replace(/^MITIGATION_ROUTE_/, "").toLowerCase());
  }
  $("inc-facts").replaceChildren(...facts);

  const steps = v.nextSteps ?? [];
  $("inc-next").replaceChildren(
    ...(steps.length
      ? steps.map((s) =>
          el("li", {}, el("strong", {}, s.step), " by ", s.who, s.blocked ? el("span", { class: "blocked" }, ` (blocked: ${s.blocked})`) : ""),
        )
      : [el("li", { class: "quiet" }, "nothing: no step is left")]),
  );

  const obligations = h?.obligations ?? [];
  $("inc-obligations-none").hidden = obligations.length > 0;
  $("inc-obligations").querySelector("tbody").replaceChildren(
    ...obligations.map((o) =>
      el(
        "tr",
        { "data-done": o.done ? "1" : null },
        el("td", {}, o.kind),
        el("td", { class: o.overdue ? "overdue" : "" }, o.owner),
        el("td", {}, o.done ? el("span", { class: "done" }, `done ${when(o.doneAt)}`) : until(o.due)),
        el("td", { class: "quiet" }, o.detail ?? ""),
      ),
    ),
  );

  $("inc-timeline").querySelector("tbody").replaceChildren(
    ...(v.timeline ?? []).map((t) =>
      el("tr", {}, el("td", { class: "num" }, t.seq), el("td", {}, when(t.at)), el("td", {}, t.actor), el("td", {}, t.kind), el("td", { class: "symptom" }, t.summary)),
    ),
  );
  tick();
}

// ---- start ---------------------------------------------------------------

function problem(e) {
  if (e instanceof Refused && e.status === 401) {
    signIn("The daemon refused the token: " + e.message);
    return;
  }
  const p = $("problem");
  setText(p, e.message);
  p.hidden = false;
}

function signIn(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  for (const s of ["board", "incident"]) $(s).hidden = true;
  $("forget").hidden = true;
  $("signin").hidden = false;
  setText($("signin-error"), why ?? "");
  setLive("stopped", "signed out");
  $("token").focus();
}

async function start() {
  if (!token()) return signIn();
  let me;
  try {
    me = await json("/api/v1/whoami");
  } catch (e) {
    if (e instanceof Refused && e.status === 401) return signIn("The daemon refused the token: " + e.message);
    return problem(e);
  }
  setText($("who"), `@${me.handle}`);
  $("forget").hidden = false;
  $("signin").hidden = true;
  const m = location.pathname.match(/^\/incidents\/([^/]+)$/);
  if (m) {
    const id = decodeURIComponent(m[1]);
    $("incident").hidden = false;
    follow({
      incident: id,
      onCaughtUp: () => loadIncident(id).catch(problem),
      onEvent: () => {
        clearTimeout(incidentTimer);
        incidentTimer = setTimeout(() => loadIncident(id).catch(problem), 150);
      },
    });
  } else {
    $("board").hidden = false;
    follow({
      onCaughtUp: async () => {
        touch(null);
      },
      onEvent: (e) => touch(e.incidentId),
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    start();
  });
  $("forget").addEventListener("click", () => signIn("Token forgotten."));
  setInterval(tick, 1000);
  start();
});
