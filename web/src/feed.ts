// The live feed of one widget key: what every <presence-chatbox> of that key reads from.
//
// Guarantees:
// - One event stream per (server, widget key) for the whole page, however many elements.
// - A view older than the one already held is never applied (versions never go backwards),
//   except the first event of a fresh stream, which is the server's current view.
// - When the stream fails (network error, a non-200 answer such as a 503 during a deploy),
//   it is reopened with capped exponential backoff and full jitter, and meanwhile `/status`
//   is polled with `fetch(url, {cache: "no-cache"})`: the browser revalidates with the ETag
//   and no CORS preflight is sent. No credentials, so no cookies either way.
// - While the tab is hidden the stream is closed and nothing is polled; when it is shown the
//   status is fetched at once and the stream reopened.
// - When nothing confirmed the view (a stream event, a ping, a poll) for two ping intervals
//   and a second, the feed is `stale`. The interval is the contract's 15 s until two pings in
//   a row show the stream's own pace.

import type { ChatboxView } from "../shared/wire";

export interface FeedState {
  view: ChatboxView | null;
  stale: boolean;
  /** Set when the server says the key does not exist, or answers garbage. */
  error: string | null;
}

type Listener = (s: FeedState) => void;

/** The contract's ping interval; learnt from the stream when it pings more often. */
const DEFAULT_PING_MS = 15000;
const MIN_PING_MS = 500;
const MAX_PING_MS = 60000;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 30000;
const POLL_MS = 5000;
const POLL_TIMEOUT_MS = 10000;

function isView(v: unknown): v is ChatboxView {
  const o = v as ChatboxView;
  return (
    !!o &&
    typeof o === "object" &&
    typeof o.status === "string" &&
    typeof o.reason === "string" &&
    typeof o.version === "number" &&
    Array.isArray(o.groups)
  );
}

export class Feed {
  readonly state: FeedState = { view: null, stale: false, error: null };
  private listeners = new Set<Listener>();
  private es: EventSource | null = null;
  private attempt = 0;
  private reconnectTimer = 0;
  private pollTimer = 0;
  private staleTimer = 0;
  private freshStream = false;
  private pingMs = DEFAULT_PING_MS;
  private lastPingAt = 0;
  private polling = false;
  private pollInFlight = false;
  private readonly onVisibility = () => this.visibility();

  constructor(
    readonly server: string,
    readonly key: string,
    private readonly onView: (v: ChatboxView) => void,
  ) {}

  private url(what: string): string {
    return `${this.server}/v1/widget/${encodeURIComponent(this.key)}/${what}`;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    if (this.listeners.size === 1) {
      this.start();
      // A feed restarted (its last element removed, another added in the same task) still
      // holds its view, and the stream's first event of the same version is no news: show it.
      if (this.state.view) fn(this.state);
    } else {
      fn(this.state);
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private emit(): void {
    for (const fn of this.listeners) fn(this.state);
  }

  private start(): void {
    document.addEventListener("visibilitychange", this.onVisibility);
    if (!document.hidden) this.open();
  }

  private stop(): void {
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.close();
  }

  private visibility(): void {
    if (document.hidden) {
      this.close();
    } else if (!this.es && !this.state.error) {
      // Show the current status at once (a fetch is quicker than a stream's first event
      // behind some proxies), then go live again.
      this.attempt = 0;
      void this.poll();
      this.open();
    }
  }

  /** Everything off: stream, timers, polling. */
  private close(): void {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.staleTimer);
    this.staleTimer = 0;
    this.stopPolling();
    this.reconnectTimer = 0;
  }

  private open(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = 0;
    if (this.es) this.es.close();
    const es = new EventSource(this.url("events"));
    this.es = es;
    this.freshStream = true;
    this.lastPingAt = 0;
    if (!this.staleTimer) this.armStale();
    es.addEventListener("chatbox", (e) => {
      let v: unknown;
      try {
        v = JSON.parse((e as MessageEvent<string>).data);
      } catch {
        v = null;
      }
      if (!isView(v)) return;
      this.attempt = 0;
      this.stopPolling();
      this.apply(v, this.freshStream);
      this.freshStream = false;
      this.confirm();
    });
    es.addEventListener("ping", () => {
      const now = Date.now();
      // The stream's own pace, from two pings in a row (a burst released at once by a proxy
      // says nothing and is ignored).
      if (this.lastPingAt) {
        const gap = now - this.lastPingAt;
        if (gap >= MIN_PING_MS) this.pingMs = Math.min(gap, MAX_PING_MS);
      }
      this.lastPingAt = now;
      this.confirm();
    });
    es.addEventListener("error", () => {
      if (this.es !== es) return;
      // Whatever the browser would do next (retry after a network error, give up for good
      // after a 503), we take over: close, poll meanwhile, and reopen with our own backoff.
      es.close();
      this.es = null;
      this.startPolling();
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.state.error || document.hidden) return;
    const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    // Full jitter, with a floor so a flapping server is not hammered.
    const delay = 250 + Math.random() * cap;
    this.reconnectTimer = window.setTimeout(() => {
      this.reconnectTimer = 0;
      if (!document.hidden && !this.state.error) this.open();
    }, delay);
  }

  /** Something proved the view current (a stream event, a ping, a poll): not stale. */
  private confirm(): void {
    if (this.state.stale) {
      this.state.stale = false;
      this.emit();
    }
    this.armStale();
  }

  /** Two ping intervals (and a little slack) without confirmation make the view stale. */
  private armStale(): void {
    clearTimeout(this.staleTimer);
    this.staleTimer = window.setTimeout(
      () => {
        this.state.stale = true;
        this.emit();
        this.armStale();
        // A silent stream may be dead without the browser knowing: reopen it.
        if (this.es) {
          this.es.close();
          this.es = null;
          this.startPolling();
          this.scheduleReconnect();
        }
      },
      2 * this.pingMs + 1000,
    );
  }

  private startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    void this.poll();
  }

  private stopPolling(): void {
    this.polling = false;
    clearTimeout(this.pollTimer);
    this.pollTimer = 0;
  }

  private async poll(): Promise<void> {
    if (this.pollInFlight) return;
    this.pollInFlight = true;
    try {
      const r = await fetch(this.url("status"), {
        cache: "no-cache",
        credentials: "omit",
        mode: "cors",
        signal: AbortSignal.timeout(POLL_TIMEOUT_MS),
      });
      if (r.status === 404) {
        this.fail(`unknown widget key "${this.key}"`);
        return;
      }
      if (r.ok) {
        const v: unknown = await r.json();
        if (isView(v)) {
          this.apply(v, false);
          this.confirm();
        }
      }
    } catch {
      // Network down: keep polling; the stream's backoff handles the rest.
    } finally {
      this.pollInFlight = false;
      if (this.polling && !this.state.error) {
        clearTimeout(this.pollTimer);
        this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
      }
    }
  }

  private fail(why: string): void {
    if (this.state.error) return;
    this.state.error = why;
    console.error(`presence-chatbox: ${why}`);
    this.close();
    this.emit();
  }

  private apply(v: ChatboxView, authoritative: boolean): void {
    const cur = this.state.view;
    if (cur && !authoritative && v.version <= cur.version) return;
    if (cur && v.version === cur.version) return;
    this.state.view = v;
    this.onView(v);
    this.emit();
  }
}
