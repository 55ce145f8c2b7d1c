// The dashboard's heartbeat, in a dedicated worker (served as /app/beat.js): a hidden tab's
// own timers may be throttled to one a minute, which would let a 60 s lease lapse while the
// agent still has the dashboard open; a worker's timers keep their pace.
//
// Messages in: {type: "start", token, interval} | {type: "now"} | {type: "stop"}.
// Messages out: {type: "beat", interval, serverTime, at} after each renewed lease; {type: "ended", code} when
// the server refuses the session (401).

import type { ErrorBody, Heartbeat } from "../shared/wire";

/** `postMessage` of the worker's global scope (the DOM typings only know the window's). */
const post = (m: unknown): void => (self as unknown as { postMessage(m: unknown): void }).postMessage(m);

let token = "";
let interval = 20000;
let timer = 0;

async function beat(): Promise<void> {
  clearTimeout(timer);
  if (!token) return;
  const mine = token;
  try {
    const r = await fetch("/v1/session/heartbeat", {
      method: "POST",
      headers: { authorization: `Bearer ${mine}`, "content-type": "application/json" },
      body: '{"mode":"active"}',
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
  }
  if (mine === token) timer = setTimeout(() => void beat(), interval) as unknown as number;
}

self.onmessage = (e: MessageEvent) => {
  const m = e.data || {};
  if (m.type === "start") {
    token = String(m.token || "");
    if (m.interval > 0) interval = m.interval;
    void beat();
  } else if (m.type === "now") {
    void beat();
  } else if (m.type === "stop") {
    token = "";
    clearTimeout(timer);
  }
};

export {};
