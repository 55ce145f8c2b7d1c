// The demo host page's script (served at /demo/demo.js): one <presence-chatbox> for the
// account and one per group of the widget key in `?key=`, and a small agent panel that signs
// in, sets a status and heartbeats, so a newcomer sees the chat boxes change.
//
// Guarantees: the session token lives in this page's memory only (never in a URL or storage).

import type { ChatboxView, ErrorBody, LoginResponse } from "../shared/wire";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const key = new URLSearchParams(location.search).get("key") || "";
const note = (t: string): void => {
  $("note").textContent = t;
};

function card(title: string, group: string | null): void {
  const c = document.createElement("div");
  c.className = "card";
  const h = document.createElement("h3");
  h.textContent = title;
  const box = document.createElement("presence-chatbox");
  box.setAttribute("widget-key", key);
  if (group) box.setAttribute("group", group);
  const attrs = document.createElement("code");
  const show = () => {
    attrs.textContent = `status=${box.getAttribute("status") ?? "…"} reason=${box.getAttribute("reason") ?? "…"}`;
  };
  box.addEventListener("presence-change", show);
  show();
  c.append(h, box, document.createElement("br"), attrs);
  $("boxes").appendChild(c);
}

async function boxes(): Promise<void> {
  if (!key) {
    note("Open this page from the URL presence-server --demo prints (it carries ?key=wk_…).");
    return;
  }
  $("snippet").textContent =
    `<script async src="${location.origin}/widget.js" data-widget-key="${key}"></script>`;
  const r = await fetch(`/v1/widget/${encodeURIComponent(key)}/status`, { cache: "no-cache" });
  if (!r.ok) {
    note(`Unknown widget key ${key} (HTTP ${r.status}).`);
    return;
  }
  const v = (await r.json()) as ChatboxView;
  card("The whole account", null);
  for (const g of v.groups) card(`Group ${g.name} (${g.key})`, g.key);
}

let token = "";
let beat = 0;

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function problem(r: Response): Promise<string> {
  try {
    const j = (await r.json()) as Partial<ErrorBody>;
    return j.error?.detail || j.error?.code || `HTTP ${r.status}`;
  } catch {
    return `HTTP ${r.status}`;
  }
}

function deviceId(): string {
  return `demo-page-${Math.random().toString(36).slice(2, 10)}`;
}

async function login(e: Event): Promise<void> {
  e.preventDefault();
  const f = new FormData(e.target as HTMLFormElement);
  const r = await call("POST", "/v1/login", {
    account: "demo",
    email: f.get("email"),
    password: f.get("password"),
    device: { id: deviceId(), platform: "web", name: "Demo page", app_version: "demo" },
    push: null,
  });
  if (!r.ok) {
    note(`Sign-in failed: ${await problem(r)}`);
    return;
  }
  const j = (await r.json()) as LoginResponse;
  token = j.token;
  $("who").textContent = j.agent.name;
  $("login").hidden = true;
  $("signed").hidden = false;
  note(`Signed in; your status is ${j.status.status}.`);
  clearInterval(beat);
  beat = window.setInterval(() => void call("POST", "/v1/session/heartbeat"), j.heartbeat.interval_ms);
}

async function setStatus(status: string): Promise<void> {
  const r = await call("PUT", "/v1/me/status", { status, op_id: crypto.randomUUID() });
  note(r.ok ? `You are ${status}.` : `Could not set the status: ${await problem(r)}`);
}

async function logout(): Promise<void> {
  await call("DELETE", "/v1/session");
  token = "";
  clearInterval(beat);
  $("login").hidden = false;
  $("signed").hidden = true;
  note("Signed out: you no longer count for the chat box.");
}

$("login").addEventListener("submit", (e) => void login(e));
$("logout").addEventListener("click", () => void logout());
for (const b of document.querySelectorAll<HTMLButtonElement>("button[data-status]")) {
  b.addEventListener("click", () => void setStatus(b.dataset.status || ""));
}
void boxes();
