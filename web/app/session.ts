// The dashboard as a device of platform `web`: it logs in, heartbeats at the interval the
// server gives, keeps one device stream open (`/v1/me/events`) and logs out on "Sign out".
//
// Guarantees:
// - The session token lives in this tab's memory and sessionStorage only: never in a URL,
//   never in a cookie. The stream authenticates with the `Authorization` header, so it is read
//   with fetch streaming (an EventSource cannot send headers).
// - A status seen from any source (a PUT answer, the stream, /v1/me) replaces the shown one
//   only when its `version` is newer, so a late answer never shows an old status.
// - Heartbeats run in a worker (beat.ts) where the browser allows one, so a hidden tab keeps
//   its lease; otherwise on this page's timers. Each reports `idle_ms`, the time since the last
//   pointer or key input in any dashboard tab of this browser: the page tells its worker and
//   the other tabs (BroadcastChannel `presence-input`) at most once a second; a tab shown again
//   counts as input, a hidden one gets none.
// - When the server says the session has ended (a 401 from any call, or `session_ended` on the
//   stream), everything stops and the page shows the sign-in form with the reason.

import type {
  AgentStatus,
  ChatboxView,
  ErrorBody,
  Heartbeat,
  HeartbeatRequest,
  LoginRequest,
  LoginResponse,
  MeResponse,
  SessionEndedEvent,
  SetStatusRequest,
  SetStatusResponse,
  SnapshotEvent,
  StatusTiming,
  StatusView,
} from "../shared/wire";

/** An error answer: the HTTP status, the contract's code and detail, and the field a 422 names. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    public detail: string,
    public field: string | null,
  ) {
    super(detail || code || `HTTP ${status}`);
  }
}

/** `422 invalid_field` details start with the field's name: `"email: not an email address"`. */
export function fieldOf(code: string, detail: string): string | null {
  if (code !== "invalid_field") return null;
  const m = /^([\w.[\]]+):\s/.exec(detail);
  return m ? m[1] : null;
}

const TOKEN = "presence.token";
const DEVICE = "presence.device";
const ACCOUNT = "presence.account";

/** A UUID v4; crypto.randomUUID exists only in secure contexts. */
export function uuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function store(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** This tab's device id: one per tab, kept across reloads, so a reload replaces its session. */
function deviceId(): string {
  const s = store();
  let id = s?.getItem(DEVICE);
  if (!id) {
    id = `web-${uuid()}`;
    s?.setItem(DEVICE, id);
  }
  return id;
}

function browserName(): string {
  const ua = navigator.userAgent;
  const m = /(Firefox|Edg|Chrome|Safari)\/\d+/.exec(ua);
  const name = m ? { Edg: "Edge" }[m[1]] || m[1] : "browser";
  return `Web dashboard (${name})`;
}

type Listener = () => void;

export class Session {
  token: string | null = null;
  me: MeResponse | null = null;
  status: StatusView | null = null;
  chatbox: ChatboxView | null = null;
  /** Why the last session ended, for the sign-in form. */
  ended: string | null = null;
  /** True while the stream is open and has delivered its snapshot. */
  live = false;
  account = "";
  /** Server clock minus this browser's, from the last login or heartbeat (for lease times). */
  clockOffset = 0;
  private listeners = new Set<Listener>();
  private beat = 0;
  private intervalMs = 20000;
  private stream: AbortController | null = null;
  private retryMs = 2000;
  private reconnect = 0;
  /** Stream failures in a row, for the backoff; a snapshot resets it. */
  private failures = 0;
  /** When the stream last delivered bytes (pings included), for the silent-stream watchdog. */
  private lastBytes = 0;
  private watchdog = 0;
  /** The last pointer or key input in any tab (this browser's clock). */
  private lastInput = Date.now();
  private inputs = typeof BroadcastChannel === "function" ? new BroadcastChannel("presence-input") : null;

  constructor() {
    const s = store();
    this.token = s?.getItem(TOKEN) || null;
    this.account = s?.getItem(ACCOUNT) || "";
    // A hidden tab's timers may be throttled to one a minute: renew the lease as soon as the
    // tab is seen again, and reopen the stream if it dropped meanwhile.
    document.addEventListener("visibilitychange", () => {
      if (document.hidden || !this.token) return;
      this.touch(true);
      this.heartbeat();
      if (!this.live) this.openStream();
    });
    for (const t of ["pointerdown", "pointermove", "keydown", "wheel"]) addEventListener(t, () => this.touch(), { capture: true, passive: true });
    if (this.inputs) this.inputs.onmessage = (e) => (this.lastInput = Math.max(this.lastInput, Number(e.data)));
  }

  /** Input in this tab: tell this tab's worker and the other tabs, at most once a second. */
  private touch(now = false): void {
    const at = Date.now();
    if (!now && at - this.lastInput < 1000) return;
    this.lastInput = at;
    this.worker?.postMessage({ type: "input", at });
    this.inputs?.postMessage(at);
  }

  /** The server's clock now. */
  now(): number {
    return Date.now() + this.clockOffset;
  }

  on(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const text = await r.text();
    let json: any = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!r.ok) {
      const code: string = (json as Partial<ErrorBody> | null)?.error?.code || "";
      const detail: string = (json as Partial<ErrorBody> | null)?.error?.detail || `HTTP ${r.status}`;
      const err = new ApiError(r.status, code, detail, fieldOf(code, detail));
      // A wrong password (a password change's `current`) is the answer, not a dead session.
      if (r.status === 401 && this.token && code !== "invalid_credentials") {
        this.end(code === "session_expired" ? "This session has ended; sign in again." : "Please sign in.");
      }
      throw err;
    }
    return json as T;
  }

  /** Logs in as a device of platform `web`. */
  async login(account: string, email: string, password: string): Promise<void> {
    const r = await this.call<LoginResponse>("POST", "/v1/login", {
      account,
      email,
      password,
      device: { id: deviceId(), platform: "web", name: browserName(), app_version: "dashboard" },
      push: null,
    } satisfies LoginRequest);
    this.token = r.token;
    this.account = account;
    store()?.setItem(TOKEN, r.token);
    store()?.setItem(ACCOUNT, account);
    this.ended = null;
    this.status = r.status;
    this.intervalMs = r.heartbeat.interval_ms;
    if (typeof r.server_time === "number") this.clockOffset = r.server_time - Date.now();
    await this.start();
  }

  /** Loads /v1/me and starts heartbeats and the stream (also after a reload). */
  async start(): Promise<void> {
    if (!this.token) return;
    await this.refresh();
    if (!this.token) return;
    this.heartbeat();
    this.openStream();
  }

  async refresh(): Promise<MeResponse | null> {
    const me = await this.call<MeResponse>("GET", "/v1/me");
    this.me = me;
    this.applyStatus(me.status);
    this.applyChatbox(me.chatbox);
    this.emit();
    return me;
  }

  get sessionId(): string | null {
    return this.me?.sessions.find((s) => s.device.id === deviceId())?.session_id || null;
  }

  get deviceId(): string {
    return deviceId();
  }

  private worker: Worker | null = null;

  /** The heartbeat worker, if this browser can start one (see beat.ts). */
  private beater(): Worker | null {
    if (this.worker || typeof Worker !== "function") return this.worker;
    try {
      const w = new Worker("/app/beat.js");
      w.onmessage = (e: MessageEvent) => {
        const m = e.data || {};
        if (m.type === "beat") {
          this.intervalMs = m.interval;
          if (typeof m.serverTime === "number") this.clockOffset = m.serverTime - m.at;
        }
        if (m.type === "ended" && this.token) {
          this.end(m.code === "session_expired" ? "This session has ended; sign in again." : "Please sign in.");
        }
      };
      this.worker = w;
    } catch {
      this.worker = null;
    }
    return this.worker;
  }

  private heartbeat(): void {
    clearTimeout(this.beat);
    if (!this.token) return;
    const w = this.beater();
    if (w) {
      w.postMessage({ type: "start", token: this.token, interval: this.intervalMs, input: this.lastInput });
      return;
    }
    this.call<Heartbeat>("POST", "/v1/session/heartbeat", { mode: "active", idle_ms: Date.now() - this.lastInput } satisfies HeartbeatRequest)
      .then((hb) => {
        this.intervalMs = hb.interval_ms || this.intervalMs;
        if (typeof hb.server_time === "number") this.clockOffset = hb.server_time - Date.now();
      })
      .catch(() => {})
      .finally(() => {
        if (this.token) this.beat = window.setTimeout(() => this.heartbeat(), this.intervalMs);
      });
  }

  applyStatus(s: StatusView | null | undefined): void {
    if (!s) return;
    if (!this.status || s.version > this.status.version) {
      this.status = s;
      if (this.me) this.me.status = s;
      this.emit();
    }
  }

  applyChatbox(v: ChatboxView | null | undefined): void {
    if (!v) return;
    if (!this.chatbox || v.version >= this.chatbox.version) {
      this.chatbox = v;
      this.emit();
    }
  }

  /** Sets this agent's status, timed, custom or with a note if `t` says so. */
  async setStatus(status: AgentStatus, t: StatusTiming = {}): Promise<void> {
    const r = await this.call<SetStatusResponse>("PUT", "/v1/me/status", {
      ...t,
      status,
      op_id: uuid(),
      intent_at: null,
    } satisfies SetStatusRequest);
    this.applyStatus(r.status);
  }

  /** The device stream, read with fetch so the token goes in a header. */
  private openStream(): void {
    this.stream?.abort();
    const ctl = new AbortController();
    this.stream = ctl;
    const token = this.token;
    if (!token) return;
    const run = async () => {
      const r = await fetch("/v1/me/events", {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
        signal: ctl.signal,
        cache: "no-store",
      });
      if (r.status === 401) {
        this.end("This session has ended; sign in again.");
        return;
      }
      if (!r.ok || !r.body) throw new Error(`stream: HTTP ${r.status}`);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.lastBytes = Date.now();
        buf += value;
        let i: number;
        while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
          this.frame(block);
        }
      }
    };
    this.lastBytes = Date.now();
    clearInterval(this.watchdog);
    // A stream that stays silent past three pings (15 s each) is dead on some path the
    // browser cannot see: drop it and open another.
    this.watchdog = window.setInterval(() => {
      if (this.stream === ctl && Date.now() - this.lastBytes > 45000) {
        this.live = false;
        this.emit();
        this.openStream();
      }
    }, 5000);
    run()
      .catch(() => {})
      .finally(() => {
        if (this.stream !== ctl || ctl.signal.aborted) return;
        this.live = false;
        this.emit();
        // The server's retry delay, doubled per failure in a row up to 30 s, with jitter.
        const wait = Math.min(30000, this.retryMs * 2 ** Math.min(this.failures, 4));
        this.failures += 1;
        if (this.token) this.reconnect = window.setTimeout(() => this.openStream(), wait / 2 + (Math.random() * wait) / 2);
      });
  }

  /** One SSE block: `event:`, `data:`, `id:` and `retry:` lines. */
  private frame(block: string): void {
    let event = "message";
    const data: string[] = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const c = line.indexOf(":");
      const name = c < 0 ? line : line.slice(0, c);
      const value = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
      if (name === "event") event = value;
      else if (name === "data") data.push(value);
      else if (name === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    if (!data.length) return;
    let j: any;
    try {
      j = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    switch (event) {
      case "snapshot":
        this.live = true;
        this.failures = 0;
        this.applyStatus((j as SnapshotEvent).status);
        this.applyChatbox((j as SnapshotEvent).chatbox);
        this.emit();
        break;
      case "status":
        this.applyStatus(j as StatusView);
        break;
      case "chatbox":
        this.applyChatbox(j as ChatboxView);
        break;
      case "session_ended": {
        const { reason } = j as SessionEndedEvent;
        this.end(
          reason === "logout"
            ? "This device was signed out."
            : reason === "removed"
              ? "Your agent account was removed."
              : reason === "replaced"
                ? "This device signed in again elsewhere."
                : reason === "credentials_changed"
                  ? "Your password was changed; sign in with the new one."
                  : "This session has ended; sign in again.",
        );
        break;
      }
      default:
        break; // ping and names we do not know
    }
  }

  /** Stops everything locally and forgets the token. */
  end(why: string | null): void {
    this.token = null;
    this.me = null;
    this.status = null;
    this.chatbox = null;
    this.live = false;
    this.ended = why;
    clearTimeout(this.beat);
    this.worker?.postMessage({ type: "stop" });
    clearTimeout(this.reconnect);
    clearInterval(this.watchdog);
    this.stream?.abort();
    this.stream = null;
    store()?.removeItem(TOKEN);
    this.emit();
  }

  /** "Sign out": ends this session on the server at once, then locally. */
  async logout(): Promise<void> {
    try {
      await this.call("DELETE", "/v1/session");
    } catch {
      // already ended: nothing more to do
    }
    this.end(null);
  }
}
