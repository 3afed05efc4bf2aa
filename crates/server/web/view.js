// The live cluster view (served as /view.js; its words are in /i18n.js). Everything a node
// reports (addresses, roles, ids, event texts) is put into the page as text, through
// textContent and createElement, never as HTML: a peer advertises its own addresses, so they
// are not to be trusted.
"use strict";

const nodes = new Map();   // id -> {http, status, lastSeen, source, samples, lastSeq}
let selfId = null;         // the node that served this page
let control = null;        // skiff local's control API, when running under it
const ROLES = new Set(["leader", "follower", "candidate", "pre-candidate"]);
const SVG = "http://www.w3.org/2000/svg";

// ---- Words -------------------------------------------------------------------------------

const STRINGS = window.SKIFF_STRINGS;
let lang = chooseLanguage();

function chooseLanguage() {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "zh" || asked === "en") return asked;
  return String(navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en";
}

// The text of `key` in the page's language, `{name}` filled from `vars`.
function t(key, vars) {
  const table = STRINGS[lang] || STRINGS.en;
  const template = table[key] ?? STRINGS.en[key] ?? key;
  return template.replace(/\{([a-z0-9_]+)\}/g, (whole, name) =>
    vars && Object.prototype.hasOwnProperty.call(vars, name) ? String(vars[name]) : whole);
}

// A node's event text in the page's language, when it is one the tables know.
function eventText(textFromNode) {
  const raw = String(textFromNode ?? "");
  for (const [pattern, key] of window.SKIFF_EVENT_TEXTS) {
    const found = pattern.exec(raw);
    if (found) return t(key, Object.fromEntries(found.slice(1).map((v, i) => [String(i + 1), v])));
  }
  return raw;
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const element of document.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of document.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  renderTimeline();
  renderStory();
}

document.getElementById("lang").onclick = () => {
  lang = lang === "zh" ? "en" : "zh";
  const url = new URL(location.href);
  url.searchParams.set("lang", lang);
  history.replaceState(null, "", url);
  applyLanguage();
};

// ---- Helpers -----------------------------------------------------------------------------

function text(s) { return String(s ?? "–"); }

// `host:port` and nothing else: the only addresses the page connects to.
function isHostPort(addr) {
  return typeof addr === "string" && /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/.test(addr);
}

// skiff local's control API is an http://host:port URL without a path.
function isControlUrl(url) {
  return typeof url === "string" && url.startsWith("http://") && isHostPort(url.slice(7));
}

function isNodeId(id) { return Number.isSafeInteger(id) && id > 0; }
function count(n) { return Number.isSafeInteger(n) && n >= 0 ? n : 0; }

// An element with a class and children; strings become text nodes.
function el(tag, className, ...children) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  for (const child of children) element.append(child instanceof Node ? child : String(child));
  return element;
}

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) element.setAttribute(name, String(value));
  return element;
}

function isUp(entry) { return !!entry.status && Date.now() - entry.lastSeen < 1500; }

// ---- Events: the history each node keeps, then its live events ---------------------------

const MAX_TIMELINE = 1000;
const timelineEvents = [];     // {node, seq, at, term, kind, text}, oldest first
const seenEvents = new Set();
const droppedByNode = new Map();
let timelineDirty = true;

function addEvent(node, ev) {
  if (!ev || typeof ev !== "object") return;
  const at = Number(ev.at_ms);
  const key = `${node}|${ev.at_ms}|${ev.seq}|${ev.text}`;
  if (seenEvents.has(key)) return;
  seenEvents.add(key);
  const item = { node, seq: ev.seq, at: Number.isFinite(at) ? at : 0, term: ev.term, kind: String(ev.kind ?? ""), text: ev.text };
  // Kept in time order: the nodes' histories arrive one after the other.
  let i = timelineEvents.length;
  while (i > 0 && timelineEvents[i - 1].at > item.at) i--;
  timelineEvents.splice(i, 0, item);
  while (timelineEvents.length > MAX_TIMELINE) {
    const old = timelineEvents.shift();
    seenEvents.delete(`${old.node}|${old.at}|${old.seq}|${old.text}`);
  }
  if (seenEvents.size > 4 * MAX_TIMELINE) seenEvents.clear();
  timelineDirty = true;
}

function addHistory(node, history) {
  if (!history || !Array.isArray(history.events)) return;
  for (const ev of history.events) addEvent(node, ev);
  droppedByNode.set(node, count(history.dropped));
  timelineDirty = true;
}

function renderTimeline() {
  const timeline = document.getElementById("timeline");
  const items = timelineEvents.slice().reverse().map((ev) => {
    const li = el("li", null);
    li.dataset.event = ev.kind;
    li.dataset.node = String(ev.node);
    const time = ev.at ? new Date(ev.at).toISOString().slice(11, 23) : "?";
    li.append(el("span", "t", time), t("ev_line", { node: ev.node, term: text(ev.term), text: eventText(ev.text) }));
    return li;
  });
  timeline.replaceChildren(...items);
  const dropped = [...droppedByNode.entries()].filter(([, n]) => n > 0)
    .map(([node, n]) => t("events_dropped", { node, count: n, max: 500 }));
  document.getElementById("timeline-dropped").textContent = dropped.join(" · ");
  timelineDirty = false;
}

// ---- Following the nodes -----------------------------------------------------------------

function newEntry(http) {
  return { http, status: null, lastSeen: 0, samples: [] };
}

function learnMembers(members) {
  if (!Array.isArray(members)) return;
  for (const m of members) {
    if (!isNodeId(m.id)) continue;
    if (!nodes.has(m.id)) {
      nodes.set(m.id, newEntry(m.http_addr));
      connect(m.id);
    } else if (!isHostPort(nodes.get(m.id).http) && isHostPort(m.http_addr)) {
      nodes.get(m.id).http = m.http_addr;
      connect(m.id);
    }
  }
}

function connect(id) {
  const entry = nodes.get(id);
  if (!isHostPort(entry.http) || entry.source) return;
  const source = new EventSource(`${location.protocol}//${entry.http}/events`);
  entry.source = source;
  source.addEventListener("history", (e) => addHistory(id, JSON.parse(e.data)));
  source.addEventListener("status", (e) => {
    entry.status = JSON.parse(e.data);
    entry.lastSeen = Date.now();
    sampleTraffic(id, entry);
    if (id === selfId && isControlUrl(entry.status.local_control)) control = entry.status.local_control;
    learnMembers(entry.status.members);
  });
  source.addEventListener("raft", (e) => addEvent(id, JSON.parse(e.data)));
  // A node that stopped (or restarted) is shown down at once, not after its last status ages.
  source.onerror = () => { entry.lastSeen = 0; };
}

// The admin token, asked for once when a node answers 401, and kept in this page's memory
// only: never in storage, never in the URL.
let adminToken = null;

async function post(url) {
  const message = document.getElementById("message");
  const send = () => fetch(url, {
    method: "POST",
    headers: adminToken === null ? {} : { Authorization: `Bearer ${adminToken}` },
  });
  try {
    let response = await send();
    if (response.status === 401 && new URL(url, location.href).origin === location.origin) {
      adminToken = window.prompt(t("token_prompt"));
      if (adminToken !== null) response = await send();
    }
    message.textContent = (await response.text()).trim() || response.statusText;
    return response.ok;
  } catch (error) {
    message.textContent = t("request_failed", { error });
    return false;
  }
}

// ---- Messages: rates from each node's counters, arrows between nodes ---------------------

const KINDS = ["heartbeat", "append", "append_ok", "append_refused", "pre_vote", "pre_vote_granted",
  "pre_vote_refused", "vote", "vote_granted", "vote_refused", "snapshot", "timeout_now"];
// What an arrow shows first when several kinds flow (the rarer, the more telling).
const SHOWN_FIRST = ["timeout_now", "vote", "vote_granted", "vote_refused", "pre_vote", "pre_vote_granted",
  "pre_vote_refused", "snapshot", "append", "append_refused", "append_ok", "heartbeat"];
const flights = [];  // single messages in the air: {from, to, kind, start}

// Keeps the node's counters of the last two seconds, and launches a dot for each new message
// (a few at most per sample: at normal speed there are too many to follow anyway).
function sampleTraffic(id, entry) {
  const now = Date.now();
  const traffic = Array.isArray(entry.status.traffic) ? entry.status.traffic : [];
  const previous = entry.samples.length ? entry.samples[entry.samples.length - 1] : null;
  if (previous) {
    for (const peer of traffic) {
      const before = previous.traffic.find((p) => p.peer === peer.peer);
      if (!before || !peer.sent) continue;
      let launched = 0;
      for (const kind of SHOWN_FIRST) {
        const delta = count(peer.sent[kind]) - count(before.sent && before.sent[kind]);
        for (let k = 0; k < Math.min(delta, 2) && launched < 3; k++, launched++) {
          flights.push({ from: id, to: peer.peer, kind, start: now + k * 60 });
        }
      }
    }
  }
  entry.samples.push({ at: now, traffic });
  while (entry.samples.length > 2 && now - entry.samples[0].at > 2000) entry.samples.shift();
  while (flights.length > 200) flights.shift();
}

// Messages per second from node `id` to each peer, by kind, over the samples kept.
function rates(entry) {
  const samples = entry.samples;
  if (samples.length < 2) return new Map();
  const first = samples[0], last = samples[samples.length - 1];
  const seconds = (last.at - first.at) / 1000;
  const out = new Map();
  if (seconds <= 0) return out;
  for (const peer of last.traffic) {
    const before = first.traffic.find((p) => p.peer === peer.peer);
    const byKind = {};
    for (const kind of KINDS) {
      const delta = count(peer.sent && peer.sent[kind]) - count(before && before.sent && before.sent[kind]);
      if (delta > 0) byKind[kind] = delta / seconds;
    }
    if (isNodeId(peer.peer)) out.set(peer.peer, byKind);
  }
  return out;
}

function ringPositions(ids) {
  const positions = new Map();
  ids.forEach((id, k) => {
    const angle = (2 * Math.PI * k) / ids.length - Math.PI / 2;
    positions.set(id, { x: 160 + 105 * Math.cos(angle), y: 145 + 105 * Math.sin(angle) });
  });
  return positions;
}

function renderTraffic() {
  const area = document.getElementById("traffic");
  const ids = [...nodes.keys()].sort((a, b) => a - b);
  const at = ringPositions(ids);
  const parts = [];
  const defs = svg("defs");
  for (const kind of SHOWN_FIRST) {
    const marker = svg("marker", { id: `head-${kind}`, viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 5, markerHeight: 5, orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: `kind-${kind}` }));
    defs.append(marker);
  }
  parts.push(defs);
  const legend = new Map();
  for (const from of ids) {
    const entry = nodes.get(from);
    if (!isUp(entry)) continue;
    for (const [to, byKind] of rates(entry)) {
      const a = at.get(from), b = at.get(to);
      const kinds = SHOWN_FIRST.filter((k) => byKind[k] > 0);
      if (!a || !b || kinds.length === 0) continue;
      const total = kinds.reduce((sum, k) => sum + byKind[k], 0);
      const [x1, y1, x2, y2] = offsetLine(a, b);
      const line = svg("line", { x1, y1, x2, y2, class: `flow kind-${kinds[0]}`,
        "stroke-width": Math.min(5, 1 + Math.log2(1 + total) / 2), "marker-end": `url(#head-${kinds[0]})` });
      line.dataset.flow = `${from}-${to}`;
      line.dataset.kinds = kinds.join(" ");
      const title = svg("title");
      title.textContent = `${t("node", { id: from })} → ${t("node", { id: to })}: ` +
        kinds.map((k) => `${t(`msg_${k}`)} ${t("per_second", { count: byKind[k].toFixed(1) })}`).join(", ");
      line.append(title);
      parts.push(line);
      for (const k of kinds) legend.set(k, (legend.get(k) || 0) + byKind[k]);
    }
  }
  const now = Date.now();
  for (const flight of flights) {
    const a = at.get(flight.from), b = at.get(flight.to);
    const progress = (now - flight.start) / flightMs();
    if (!a || !b || progress < 0 || progress > 1) continue;
    const [x1, y1, x2, y2] = offsetLine(a, b);
    parts.push(svg("circle", { cx: x1 + (x2 - x1) * progress, cy: y1 + (y2 - y1) * progress, r: 3.5,
      class: `dot kind-${flight.kind}` }));
  }
  for (let i = flights.length - 1; i >= 0; i--) if (now - flights[i].start > flightMs()) flights.splice(i, 1);
  for (const id of ids) {
    const p = at.get(id);
    const entry = nodes.get(id);
    const role = isUp(entry) ? (ROLES.has(entry.status.role) ? entry.status.role : "unknown") : "down";
    const circle = svg("circle", { cx: p.x, cy: p.y, r: 17, class: `ring-node ${role}` });
    circle.dataset.node = String(id);
    const label = svg("text", { x: p.x, y: p.y + 4, "text-anchor": "middle", class: "ring-label" });
    label.textContent = String(id);
    parts.push(circle, label);
  }
  area.replaceChildren(...parts);
  const legendBox = document.getElementById("traffic-legend");
  const shown = SHOWN_FIRST.filter((k) => legend.has(k));
  legendBox.replaceChildren(...(shown.length ? shown.map((k) => {
    const item = el("span", `legend kind-${k}`, `${t(`msg_${k}`)} ${t("per_second", { count: legend.get(k).toFixed(0) })}`);
    item.dataset.kind = k;
    return item;
  }) : [el("span", "dim", t("messages_none"))]));
}

// A line from a toward b, stopping short of both circles and moved to its own side, so that
// the two directions between a pair of nodes are two arrows.
function offsetLine(a, b) {
  const dx = b.x - a.x, dy = b.y - a.y;
  const length = Math.hypot(dx, dy) || 1;
  const ux = dx / length, uy = dy / length;
  const side = 4;
  return [a.x + ux * 20 - uy * side, a.y + uy * 20 + ux * side, b.x - ux * 22 - uy * side, b.y - uy * 22 + ux * side];
}

// How long a dot takes from one node to another: longer when the cluster is slowed down.
function flightMs() {
  const self = nodes.get(selfId);
  const tick = self && self.status ? count(self.status.tick_ms) : 10;
  return Math.max(400, Math.min(3000, tick * 4));
}

// ---- Scenarios: Raft's stories run on this cluster, narrated step by step ----------------

// The story being told: {name, steps: [{key, vars, state}]}, and a token that Heal changes to
// stop it. What the stories changed, for Heal to undo: nodes whose PreVote they turned off,
// nodes they killed, the speed before they slowed the cluster down.
let story = null;
let storyRun = 0;
const undo = { preVoteOff: new Set(), killed: new Set(), tickMs: null };

function liveStatuses() {
  return [...nodes.entries()].filter(([, e]) => isUp(e)).map(([id, e]) => ({ ...e.status, id }));
}

function statusOf(id) {
  const entry = nodes.get(id);
  return entry && isUp(entry) ? entry.status : null;
}

function renderStory() {
  const list = document.getElementById("story");
  if (!story) { list.replaceChildren(); return; }
  list.replaceChildren(...story.steps.map((step, i) => {
    const li = el("li", step.state, t(step.key, step.vars));
    li.dataset.step = String(i + 1);
    li.dataset.state = step.state;
    return li;
  }));
  list.dataset.story = story.name;
}

// Waits (polling the statuses the page already has) until `condition` holds; false if the
// story was stopped or a minute passed.
async function until(run, condition) {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (run !== storyRun) return false;
    try { if (condition()) return true; } catch (_) { /* a node not heard yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

// Tells the steps one after the other: each is shown, its action run, and it is marked done
// once the cluster did what it says.
async function tell(name, vars, steps) {
  const run = ++storyRun;
  story = { name, steps: steps.map((s) => ({ key: s.key, vars, state: "waiting" })) };
  for (let i = 0; i < steps.length; i++) {
    story.steps[i].state = "current";
    renderStory();
    if (steps[i].act) await steps[i].act();
    if (steps[i].until && !(await until(run, steps[i].until))) return;
    if (run !== storyRun) return;
    story.steps[i].state = steps[i].until ? "done" : "current";
    renderStory();
  }
}

function pickLeader() {
  const leader = liveStatuses().find((s) => s.role === "leader");
  if (!leader) document.getElementById("message").textContent = t("sc_no_leader");
  return leader;
}

const SCENARIOS = {
  // §5.2 and thesis §9.6: a follower cut off asks for pre-votes and never raises its term.
  follower() {
    const leader = pickLeader();
    if (!leader) return;
    const followers = liveStatuses().filter((s) => s.id !== leader.id);
    const f = (followers.find((s) => s.id !== selfId) || followers[0] || {}).id;
    if (!isNodeId(f)) return;
    const vars = { f, l: leader.id, t: leader.term };
    let quietSince = 0;
    tell("follower", vars, [
      { key: "sc_follower_1", act: () => post(`/admin/isolate?on=true&node=${f}`), until: () => statusOf(f).isolated },
      { key: "sc_follower_2", until: () => statusOf(f).role === "pre-candidate" },
      { key: "sc_follower_3", until: () => {
        const l = statusOf(leader.id);
        if (!l || l.role !== "leader" || l.term !== leader.term) { quietSince = 0; return false; }
        quietSince = quietSince || Date.now();
        return Date.now() - quietSince > 3000;
      } },
      { key: "sc_follower_4" },
    ]);
  },
  // §5.1, thesis §4.2.3: without PreVote a node cut off raises its term again and again, and
  // on rejoining its higher term deposes a healthy leader.
  rejoin() {
    const leader = pickLeader();
    if (!leader) return;
    const followers = liveStatuses().filter((s) => s.id !== leader.id);
    const f = (followers.find((s) => s.id !== selfId) || followers[0] || {}).id;
    if (!isNodeId(f)) return;
    const vars = { f, l: leader.id, t: leader.term, t2: "?", n: "?", t3: "?" };
    let cutAt = 0;
    undo.preVoteOff.add(f);
    tell("rejoin", vars, [
      { key: "sc_rejoin_1", act: () => post(`/admin/pre-vote?on=false&node=${f}`),
        until: () => statusOf(f).pre_vote === false },
      { key: "sc_rejoin_2", act: () => { cutAt = Date.now(); return post(`/admin/isolate?on=true&node=${f}`); },
        until: () => {
          // Three terms ahead at least, and two seconds to watch them climb.
          const s = statusOf(f);
          vars.t2 = s.term;
          return s.isolated && s.term >= leader.term + 3 && Date.now() - cutAt > 2000;
        } },
      { key: "sc_rejoin_3", act: () => post(`/admin/isolate?on=false&node=${f}`),
        until: () => !statusOf(f).isolated },
      { key: "sc_rejoin_4", until: () => statusOf(leader.id).term > leader.term },
      { key: "sc_rejoin_5", until: () => {
        const next = liveStatuses().find((s) => s.role === "leader" && s.term > leader.term);
        if (next) { vars.n = next.id; vars.t3 = next.term; }
        return !!next;
      } },
    ]);
  },
  // §5.2: two candidates in one term split the vote; randomized timeouts break the tie.
  split() {
    const first = pickLeader();
    if (!first) return;
    if (!control) { document.getElementById("message").textContent = t("sc_needs_local"); return; }
    const all = liveStatuses().map((s) => s.id);
    if (all.length < 3) return;
    const self = statusOf(selfId);
    const vars = { l: first.id, a: "?", b: "?", t: first.term, ta: "?", tb: "?", n: "?", t2: "?" };
    if (undo.tickMs === null && self) undo.tickMs = self.tick_ms;
    // The leader is killed, so it must not be the node that serves this page: leadership is
    // handed to another node first (thesis §3.10).
    const handOver = first.id === selfId ? all.find((id) => id !== selfId) : null;
    const pick = () => {
      const leader = liveStatuses().find((s) => s.role === "leader" && s.id !== selfId);
      if (!leader) return false;
      const [a, b] = all.filter((id) => id !== leader.id);
      Object.assign(vars, { l: leader.id, t: leader.term, a, b });
      return true;
    };
    tell("split", vars, [
      { key: "sc_split_1", act: async () => {
        for (const id of all) await post(`/admin/tick?ms=50&node=${id}`);
        if (handOver) await post(`/admin/transfer-leader?to=${handOver}`);
      }, until: () => pick() && all.every((id) => statusOf(id).tick_ms === 50) },
      { key: "sc_split_2", act: async () => {
        const { l, a, b } = vars;
        undo.preVoteOff.add(a); undo.preVoteOff.add(b); undo.killed.add(l);
        await post(`/admin/pre-vote?on=false&node=${a}`);
        await post(`/admin/pre-vote?on=false&node=${b}`);
        await post(`${control}/control/kill?id=${l}`);
        await post(`/admin/isolate?on=true&node=${a}`);
        await post(`/admin/isolate?on=true&node=${b}`);
        await post(`/admin/campaign?node=${a}`);
        await post(`/admin/campaign?node=${b}`);
      }, until: () => [vars.a, vars.b].every((id) => statusOf(id).role === "candidate") },
      { key: "sc_split_3", act: async () => {
        await post(`/admin/isolate?on=false&node=${vars.a}`);
        await post(`/admin/isolate?on=false&node=${vars.b}`);
      }, until: () => {
        const [sa, sb] = [statusOf(vars.a), statusOf(vars.b)];
        vars.ta = sa.term; vars.tb = sb.term;
        return !sa.isolated && !sb.isolated && sa.role === "candidate" && sb.role === "candidate";
      } },
      { key: "sc_split_4", until: () => {
        const next = [vars.a, vars.b].map(statusOf).find((s) => s && s.role === "leader");
        if (next) { vars.n = next.id; vars.t2 = next.term; }
        return !!next;
      } },
    ]);
  },
  // §5.2, thesis §6.2: the majority elects a new leader; the old one steps down.
  leader() {
    const leader = pickLeader();
    if (!leader) return;
    const vars = { l: leader.id, t: leader.term, n: "?", t2: "?" };
    tell("leader", vars, [
      { key: "sc_leader_1", act: () => post(`/admin/isolate?on=true&node=${leader.id}`),
        until: () => statusOf(leader.id).isolated },
      { key: "sc_leader_2", until: () => {
        const next = liveStatuses().find((s) => s.id !== leader.id && s.role === "leader" && s.term > leader.term);
        if (next) { vars.n = next.id; vars.t2 = next.term; }
        return !!next;
      } },
      { key: "sc_leader_3", until: () => statusOf(leader.id).role !== "leader" },
      { key: "sc_leader_4" },
    ]);
  },
};

for (const button of document.querySelectorAll("[data-scenario]")) {
  button.onclick = () => SCENARIOS[button.dataset.scenario]();
}

// Heal: stops the story, reconnects every node cut off, and undoes what the stories changed.
document.getElementById("heal-all").onclick = async () => {
  storyRun++;
  for (const s of liveStatuses()) {
    if (s.isolated) await post(`/admin/isolate?on=false&node=${s.id}`);
  }
  for (const id of undo.preVoteOff) await post(`/admin/pre-vote?on=true&node=${id}`);
  undo.preVoteOff.clear();
  if (control) for (const id of undo.killed) await post(`${control}/control/restart?id=${id}`);
  undo.killed.clear();
  if (undo.tickMs !== null) {
    for (const id of nodes.keys()) await post(`/admin/tick?ms=${undo.tickMs}&node=${id}`);
    undo.tickMs = null;
  }
  if (story) {
    story.steps.forEach((step) => { if (step.state !== "done") step.state = "done"; });
    story.steps.push({ key: "sc_healed", vars: {}, state: "done" });
    renderStory();
  }
};

// ---- Cards -------------------------------------------------------------------------------

function details(s) {
  const dl = el("dl", null);
  const row = (name, value) => dl.append(el("dt", null, t(name)), el("dd", null, text(value)));
  row("term", s.term);
  row("voted_for", s.vote);
  row("leader", s.leader);
  row("commit_applied", `${text(s.commit)} / ${text(s.applied)}`);
  const entries = Math.max(0, Number(s.last_index) - Number(s.first_index) + 1) || 0;
  row("log", t("log_range", { first: text(s.first_index), last: text(s.last_index), count: entries }));
  row("snapshot", s.snapshot_index);
  row("keys", s.keys);
  row("tick", t("tick_ms", { ms: text(s.tick_ms) }));
  row("pre_vote", t(s.pre_vote ? "on" : "off"));
  return dl;
}

function termColour(term) {
  return `hsl(${(count(term) * 137.508) % 360}, 65%, 55%)`;
}

// The last entries as cells coloured by term, with the snapshot boundary before them and the
// commit and apply marks on them.
function logStrip(s) {
  const strip = el("div", "log");
  strip.title = t("log_title");
  const cells = Array.isArray(s.log) ? s.log : [];
  const commit = count(s.commit), applied = count(s.applied), snapshot = count(s.snapshot_index);
  if (snapshot > 0 && (cells.length === 0 || count(cells[0].index) <= snapshot + 1)) {
    const boundary = el("span", "snap", "⧉");
    boundary.title = t("log_snapshot", { index: snapshot });
    boundary.dataset.snapshot = String(snapshot);
    strip.append(boundary);
  }
  for (const cell of cells) {
    const index = count(cell.index), term = count(cell.term);
    const kind = ["noop", "config", "command"].includes(cell.kind) ? cell.kind : "unknown";
    const state = index <= applied ? "applied" : index <= commit ? "committed" : "uncommitted";
    const span = el("span", `cell ${state} ${kind}`);
    span.style.setProperty("--term", termColour(term));
    span.dataset.logEntry = `${index}:${term}`;
    let title = t("log_cell", { index, term, kind: t(`kind_${kind}`) });
    if (index === commit) { span.classList.add("commit-mark"); title += ` · ${t("log_commit_mark", { index })}`; }
    if (index === applied) { span.classList.add("apply-mark"); title += ` · ${t("log_apply_mark", { index })}`; }
    span.title = title;
    strip.append(span);
  }
  return strip;
}

function electionTimer(s) {
  const timer = s.election_timeout ? Math.min(100, 100 * s.election_elapsed / s.election_timeout) : 0;
  const fill = el("div", null);
  fill.style.width = `${Number.isFinite(timer) ? timer : 0}%`;
  return [el("div", "lag", t("election_timer")), el("div", "bar", fill)];
}

const MEMBER_KINDS = { "voter": "member_voter", "voter (outgoing)": "member_outgoing", "learner": "member_learner" };

function followerLag(s) {
  const members = Array.isArray(s.members) ? s.members : [];
  return members.filter((m) => m.id !== s.id).map((m) => {
    const lag = m.match_index == null ? "?" : Number(s.last_index) - Number(m.match_index);
    const kind = MEMBER_KINDS[m.kind] ? t(MEMBER_KINDS[m.kind]) : text(m.kind);
    return el("div", "lag", t("follower_lag", { id: text(m.id), kind, match: text(m.match_index), lag }));
  });
}

function card(id, entry) {
  const s = entry.status;
  const up = isUp(entry);
  const role = up ? (ROLES.has(s.role) ? s.role : "unknown") : "down";
  const div = el("div", `card ${role}`,
    el("h2", null, el("span", null, t("node", { id })), el("span", "role", t(`role_${role}`))));
  div.dataset.node = String(id);
  div.dataset.role = role;
  if (s) {
    div.append(details(s), logStrip(s));
    if (role !== "leader" && up) div.append(...electionTimer(s));
    if (role === "leader" && up) div.append(...followerLag(s));
  } else if (isHostPort(entry.http)) {
    div.append(el("div", "lag", t("no_answer", { addr: entry.http })));
  } else if (entry.http) {
    div.append(el("div", "lag", t("bad_address", { addr: text(entry.http) })));
  } else {
    div.append(el("div", "lag", t("address_unknown")));
  }
  const buttons = el("div", "buttons");
  const button = (label, action, url) => {
    const b = el("button", null, t(label));
    b.dataset.action = action;
    b.onclick = () => post(url);
    buttons.append(b);
  };
  // Actions on another node go through the node that served the page, which relays them:
  // nodes accept state changes only from their own pages.
  if (control) {
    if (up) button("kill", "kill", `${control}/control/kill?id=${id}`);
    else button("restart", "restart", `${control}/control/restart?id=${id}`);
  }
  if (up && s.fault_injection) {
    if (s.isolated) button("heal", "heal", `/admin/isolate?on=false&node=${id}`);
    else button("cut_off", "isolate", `/admin/isolate?on=true&node=${id}`);
  }
  if (up && role !== "leader") {
    const leader = [...nodes.values()].some((n) => isUp(n) && n.status.role === "leader");
    if (leader) button("make_leader", "transfer", `/admin/transfer-leader?to=${id}`);
  }
  div.append(buttons);
  return div;
}

function render() {
  const container = document.getElementById("nodes");
  container.replaceChildren(...[...nodes.entries()].sort((a, b) => a[0] - b[0]).map(([id, e]) => card(id, e)));
  const live = [...nodes.values()].filter(isUp);
  const leaders = live.filter((n) => n.status.role === "leader");
  const term = Math.max(0, ...live.map((n) => Number(n.status.term) || 0));
  document.getElementById("summary").textContent = t("summary", {
    up: live.length, total: nodes.size, term,
    leader: leaders.length ? t("summary_leader", { ids: leaders.map((l) => text(l.status.id)).join(", ") })
      : t("summary_no_leader"),
  });
  const self = nodes.get(selfId);
  const speed = document.getElementById("speed");
  if (self && self.status && document.activeElement !== speed) speed.value = String(self.status.tick_ms);
  if (timelineDirty) renderTimeline();
}

document.getElementById("write").onclick = () => {
  const key = encodeURIComponent(document.getElementById("key").value);
  const value = encodeURIComponent(document.getElementById("value").value);
  post(`/kv/set?key=${key}&value=${value}`);
};

// Every node of the cluster takes the new time per tick (through the node that served the
// page, which relays).
document.getElementById("speed").onchange = async (e) => {
  const ms = Number(e.target.value);
  if (!Number.isSafeInteger(ms)) return;
  for (const id of nodes.keys()) await post(`/admin/tick?ms=${ms}&node=${id}`);
};

(async function start() {
  applyLanguage();
  document.getElementById("summary").textContent = t("connecting");
  const status = await (await fetch("/status")).json();
  selfId = status.id;
  if (isControlUrl(status.local_control)) control = status.local_control;
  for (const m of status.members) {
    if (isNodeId(m.id)) nodes.set(m.id, newEntry(m.http_addr));
  }
  if (!nodes.has(status.id)) nodes.set(status.id, newEntry(location.host));
  nodes.get(status.id).http = location.host;
  for (const id of nodes.keys()) connect(id);
  setInterval(render, 200);
  setInterval(renderTraffic, 50);
})();
