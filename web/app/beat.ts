// The dashboard's heartbeat, in a dedicated worker (served as /app/beat.js): a hidden tab's
// own timers may be throttled to one a minute, which would let a 60 s lease lapse while the
// agent still has the dashboard open; a worker's timers keep their pace.
//
// Each heartbeat reports `idle_ms`: the time since the last pointer or key input in any
// dashboard tab of this browser. Tabs tell it through the `presence-input` BroadcastChannel
// (and their own worker directly); a hidden tab gets no input, so it counts as idle from its
// last input on, at the latest from when it was hidden. Input after a quiet spell of at least
// one interval heartbeats at once, so coming back from idle does not wait for the next beat.
//
// Messages in: {type: "start", token, interval, input} | {type: "input", at} | {type: "now"} |
// {type: "stop"}.
// Messages out: {type: "beat", interval, serverTime, at} after each renewed lease; {type: "ended", code} when
// the server refuses the session (401).

import type { ErrorBody, Heartbeat, HeartbeatRequest } from "../shared/wire";

/** `postMessage` of the worker's global scope (the DOM typings only know the window's). */
const post = (m: unknown): void => (self as unknown as { postMessage(m: unknown): void }).postMessage(m);

let token = "";
let interval = 20000;
let timer = 0;
/** The last input seen in any tab (this browser's clock). */
let lastInput = Date.now();
/** The `idle_ms` of the last heartbeat sent. */
let reported = 0;
let inflight = false;

function input(at: number): void {
  if (!(at > lastInput)) return;
  lastInput = at;
  if (token && !inflight && reported >= interval) void beat();
}

if (typeof BroadcastChannel === "function") {
  new BroadcastChannel("presence-input").onmessage = (e: MessageEvent) => input(Number(e.data));
}

async function beat(): Promise<void> {
  clearTimeout(timer);
  if (!token) return;
  const mine = token;
  inflight = true;
  // At most 30 days, the most a heartbeat may report.
  reported = Math.min(2592e6, Math.max(0, Date.now() - lastInput));
  try {
    const r = await fetch("/v1/session/heartbeat", {
      method: "POST",
      headers: { authorization: `Bearer ${mine}`, "content-type": "application/json" },
      body: JSON.stringify({ mode: "active", idle_ms: reported } satisfies HeartbeatRequest),
      cache: "no-store",
    });
    if (mine !== token) return;
    if (r.status === 401) {
      let code = "";
      try {
        code = ((await r.json()) as Partial<ErrorBody>).error?.code || "";
      } catch {
        // no body
      }
      token = "";
      post({ type: "ended", code });
      return;
    }
    if (r.ok) {
      const hb = (await r.json()) as Heartbeat;
      if (hb.interval_ms > 0) interval = hb.interval_ms;
      post({ type: "beat", interval, serverTime: hb.server_time, at: Date.now() });
    }
  } catch {
    // the network: try again at the next interval
  } finally {
    inflight = false;
  }
  if (mine === token) timer = setTimeout(() => void beat(), interval) as unknown as number;
}

self.onmessage = (e: MessageEvent) => {
  const m = e.data || {};
  if (m.type === "start") {
    token = String(m.token || "");
    if (m.interval > 0) interval = m.interval;
    if (m.input > lastInput) lastInput = m.input;
    void beat();
  } else if (m.type === "input") {
    input(m.at);
  } else if (m.type === "now") {
    void beat();
  } else if (m.type === "stop") {
    token = "";
    clearTimeout(timer);
  }
};

export {};
