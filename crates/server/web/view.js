// The live cluster view (served as /view.js). Everything a node reports (addresses, roles,
// ids, event texts) is put into the page as text, through textContent and createElement,
// never as HTML: a peer advertises its own addresses, so they are not to be trusted.
"use strict";

const nodes = new Map();   // id -> {http, status, lastSeen, source}
let selfId = null;         // the node that served this page
let control = null;        // skiff local's control API, when running under it
const timeline = document.getElementById("timeline");
const seenEvents = new Set();
const ROLES = new Set(["leader", "follower", "candidate", "pre-candidate"]);

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

// An element with a class and children; strings become text nodes.
function el(tag, className, ...children) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  for (const child of children) element.append(child instanceof Node ? child : String(child));
  return element;
}

function addEvent(node, ev) {
  const key = `${node}|${ev.at_ms}|${ev.text}`;
  if (seenEvents.has(key)) return;
  seenEvents.add(key);
  const li = el("li", null);
  li.dataset.kind = text(ev.kind);
  const at = Number(ev.at_ms);
  const t = Number.isFinite(at) ? new Date(at).toISOString().slice(11, 23) : "?";
  li.append(el("span", "t", t), `node ${node} · term ${text(ev.term)} · ${text(ev.text)}`);
  timeline.prepend(li);
  while (timeline.children.length > 300) timeline.lastChild.remove();
}

function learnMembers(members) {
  if (!Array.isArray(members)) return;
  for (const m of members) {
    if (!isNodeId(m.id)) continue;
    if (!nodes.has(m.id)) {
      nodes.set(m.id, { http: m.http_addr, status: null, lastSeen: 0 });
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
  source.addEventListener("status", (e) => {
    entry.status = JSON.parse(e.data);
    entry.lastSeen = Date.now();
    if (id === selfId && isControlUrl(entry.status.local_control)) control = entry.status.local_control;
    learnMembers(entry.status.members);
  });
  source.addEventListener("raft", (e) => addEvent(id, JSON.parse(e.data)));
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
      adminToken = window.prompt("This cluster needs its admin token (skiff local --tls: DATA/admin-token):");
      if (adminToken !== null) response = await send();
    }
    message.textContent = (await response.text()).trim() || response.statusText;
  } catch (error) {
    message.textContent = `request failed: ${error}`;
  }
}

function details(s) {
  const dl = el("dl", null);
  const row = (name, value) => dl.append(el("dt", null, name), el("dd", null, text(value)));
  row("term", s.term);
  row("voted for", s.vote);
  row("leader", s.leader);
  row("commit / applied", `${text(s.commit)} / ${text(s.applied)}`);
  const entries = Math.max(0, Number(s.last_index) - Number(s.first_index) + 1) || 0;
  row("log", `${text(s.first_index)}…${text(s.last_index)} (${entries} entries)`);
  row("snapshot", s.snapshot_index);
  row("keys", s.keys);
  return dl;
}

function electionTimer(s) {
  const timer = s.election_timeout ? Math.min(100, 100 * s.election_elapsed / s.election_timeout) : 0;
  const fill = el("div", null);
  fill.style.width = `${Number.isFinite(timer) ? timer : 0}%`;
  return [el("div", "lag", "election timer"), el("div", "bar", fill)];
}

function followerLag(s) {
  const members = Array.isArray(s.members) ? s.members : [];
  return members.filter((m) => m.id !== s.id).map((m) => {
    const lag = m.match_index == null ? "?" : Number(s.last_index) - Number(m.match_index);
    return el("div", "lag", `node ${text(m.id)} (${text(m.kind)}): match ${text(m.match_index)}, lag ${lag}`);
  });
}

function card(id, entry) {
  const s = entry.status;
  const up = s && Date.now() - entry.lastSeen < 1500;
  const role = up ? (ROLES.has(s.role) ? s.role : "unknown") : "down";
  const div = el("div", `card ${role}`,
    el("h2", null, el("span", null, `node ${id}`), el("span", "role", role)));
  div.dataset.node = String(id);
  div.dataset.role = role;
  if (s) {
    div.append(details(s));
    if (role !== "leader" && up) div.append(...electionTimer(s));
    if (role === "leader" && up) div.append(...followerLag(s));
  } else if (isHostPort(entry.http)) {
    div.append(el("div", "lag", `no answer from ${entry.http}`));
  } else if (entry.http) {
    div.append(el("div", "lag", `advertised an unusable HTTP address: ${text(entry.http)}`));
  } else {
    div.append(el("div", "lag", "address not known yet"));
  }
  const buttons = el("div", "buttons");
  const button = (label, action, url) => {
    const b = el("button", null, label);
    b.dataset.action = action;
    b.onclick = () => post(url);
    buttons.append(b);
  };
  // Actions on another node go through the node that served the page, which relays them:
  // nodes accept state changes only from their own pages.
  if (control) {
    if (up) button("Kill", "kill", `${control}/control/kill?id=${id}`);
    else button("Restart", "restart", `${control}/control/restart?id=${id}`);
  }
  if (up && s.fault_injection) {
    if (s.isolated) button("Heal", "heal", `/admin/isolate?on=false&node=${id}`);
    else button("Cut off", "isolate", `/admin/isolate?on=true&node=${id}`);
  }
  if (up && role !== "leader") {
    const leader = [...nodes.values()].some((n) => n.status && n.status.role === "leader" && Date.now() - n.lastSeen < 1500);
    if (leader) button("Make leader", "transfer", `/admin/transfer-leader?to=${id}`);
  }
  div.append(buttons);
  return div;
}

function render() {
  const container = document.getElementById("nodes");
  container.replaceChildren(...[...nodes.entries()].sort((a, b) => a[0] - b[0]).map(([id, e]) => card(id, e)));
  const live = [...nodes.values()].filter((n) => n.status && Date.now() - n.lastSeen < 1500);
  const leaders = live.filter((n) => n.status.role === "leader");
  const term = Math.max(0, ...live.map((n) => Number(n.status.term) || 0));
  document.getElementById("summary").textContent =
    `${live.length} of ${nodes.size} nodes up · term ${term} · ` +
    (leaders.length ? `leader: node ${leaders.map((l) => text(l.status.id)).join(", ")}` : "no leader");
}

document.getElementById("write").onclick = () => {
  const key = encodeURIComponent(document.getElementById("key").value);
  const value = encodeURIComponent(document.getElementById("value").value);
  post(`/kv/set?key=${key}&value=${value}`);
};

(async function start() {
  const status = await (await fetch("/status")).json();
  selfId = status.id;
  if (isControlUrl(status.local_control)) control = status.local_control;
  for (const m of status.members) {
    if (isNodeId(m.id)) nodes.set(m.id, { http: m.http_addr, status: null, lastSeen: 0 });
  }
  if (!nodes.has(status.id)) nodes.set(status.id, { http: location.host, status: null, lastSeen: 0 });
  nodes.get(status.id).http = location.host;
  for (const id of nodes.keys()) connect(id);
  setInterval(render, 200);
})();
