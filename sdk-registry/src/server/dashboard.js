"use strict";
// The registry's state as last received, and the server's clock against ours.
let snapshot = null;
let clockOffset = 0;

const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
};

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}

function age(instance) {
  return Math.max(0, Date.now() + clockOffset - instance.last_heartbeat_ms);
}

// Stale: more than half the TTL without a heartbeat, as of the server's last word (the
// age shown grows between events; the mark waits for the server to confirm it).
function isStale(instance) {
  return snapshot.now_ms - instance.last_heartbeat_ms > snapshot.ttl_ms / 2;
}

function ago(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

function address(instance) {
  const host = instance.host.includes(":") ? "[" + instance.host + "]" : instance.host;
  return instance.scheme + "://" + host + ":" + instance.port;
}

function row(record) {
  const instance = record.instance;
  const tags = Object.entries(instance.metadata || {}).map(([k, v]) => el("span", { class: "tag" }, k + "=" + v));
  const stale = isStale(record);
  const health = el("td", {}, el("span", { class: "badge " + record.health }, record.health));
  if (stale) health.append(el("span", { class: "badge stale" }, "stale"));
  return el("tr", { class: "instance" + (stale ? " stale" : ""), "data-id": instance.id, "data-health": record.health, "data-stale": String(stale) },
    el("td", {}, el("code", {}, instance.id)),
    el("td", {}, el("code", {}, address(instance))),
    el("td", {}, instance.version || "–"),
    el("td", {}, ...(tags.length ? tags : ["–"])),
    health,
    el("td", { class: "heartbeat", "data-at": String(record.last_heartbeat_ms) }, ago(age(record))));
}

function render() {
  const services = snapshot.services;
  const instances = services.flatMap((s) => s.instances);
  const healthy = instances.filter((r) => r.health !== "unhealthy" && !isStale(r)).length;
  const stale = instances.filter(isStale).length;
  const count = (n, one, many) => [el("b", {}, String(n)), " " + (n === 1 ? one : many)];
  $("summary").replaceChildren(
    ...count(services.length, "service", "services"), " · ",
    ...count(instances.length, "instance", "instances"), " · ",
    el("b", {}, String(healthy)), " serving · ",
    el("b", {}, String(stale)), " stale");
  $("empty").hidden = services.length > 0;
  $("services").replaceChildren(...services.map((service) => {
    const n = service.instances.length;
    const unhealthy = service.instances.filter((r) => r.health === "unhealthy").length;
    const stale = service.instances.filter(isStale).length;
    const meta = [n + " instance" + (n === 1 ? "" : "s")];
    if (unhealthy) meta.push(unhealthy + " unhealthy");
    if (stale) meta.push(stale + " stale");
    return el("section", { class: "service", "data-service": service.name, "data-count": String(service.instances.length) },
      el("h2", {}, el("span", { class: "name" }, service.name),
        el("span", { class: "meta" }, meta.join(" · "))),
      el("div", { class: "rows" }, el("table", {},
        el("thead", {}, el("tr", {}, ...["instance", "address", "version", "metadata", "health", "last heartbeat"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...service.instances.map(row)))));
  }));
  document.body.dataset.version = String(snapshot.version);
}

// Reads the server-sent events of /v1/events with fetch (EventSource cannot send a token).
async function follow() {
  const headers = {};
  const token = sessionStorage.getItem("sdk-registry-token");
  if (token) headers.Authorization = "Bearer " + token;
  try {
    const response = await fetch("v1/events", { headers, cache: "no-store" });
    if (response.status === 401) {
      sessionStorage.removeItem("sdk-registry-token");
      setStatus("token needed", "down");
      $("login").hidden = false;
      return;
    }
    if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
    $("login").hidden = true;
    setStatus("live", "live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data) continue;
        snapshot = JSON.parse(data);
        clockOffset = snapshot.now_ms - Date.now();
        render();
      }
    }
  } catch (e) {
    console.warn("registry stream:", e);
  }
  setStatus("reconnecting…", "down");
  setTimeout(follow, 2000);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("sdk-registry-token", $("token").value);
  $("token").value = "";
  follow();
});

// Heartbeat ages move every second; a new event brings new heartbeat times.
setInterval(() => { if (snapshot) render(); }, 1000);
follow();
