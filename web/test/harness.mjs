// Test harness for the browser suite: the real presence-server binary on loopback, a
// reverse proxy in front of it that can fail the way networks and deploys fail, a host-page
// server on another origin (so every widget request is cross-origin, as on a customer's
// site), headless Chromium through playwright-core, and a client of the HTTP API.
//
// Nothing here sleeps and hopes: every wait has a condition and a deadline, and says what it
// waited for when the deadline passes.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const TARGET = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
export const SERVER_BIN =
  process.env.PRESENCE_SERVER_BIN || join(TARGET, "debug", "presence-server");
/** The desktop CLI, another device of an agent in the dashboard tests. */
export const CLI_BIN = process.env.PRESENCE_CLI_BIN || join(TARGET, "debug", "presence");
export const CHROMIUM = process.env.PRESENCE_CHROMIUM || "/usr/bin/chromium";
export const OUT = process.env.PRESENCE_BROWSER_OUT || join(TARGET, "browser");
export const ADMIN_TOKEN = "browser-admin-token";

/** Polls `cond` (sync or async) until it returns a truthy value; throws `what` at `ms`. */
export async function until(what, cond, ms = 10000, every = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export function assert(ok, msg) {
  if (!ok) throw new Error(`assertion failed: ${msg}`);
}

export function eq(a, b, msg) {
  const sa = JSON.stringify(a);
  const sb = JSON.stringify(b);
  if (sa !== sb) throw new Error(`${msg}: expected ${sb}, got ${sa}`);
}

// ----- the server --------------------------------------------------------------------------

let helpText = null;
/** True when the server binary has this flag. */
export function serverHasFlag(flag) {
  if (helpText === null) {
    helpText = spawnSync(SERVER_BIN, ["--help"], { encoding: "utf8" }).stdout || "";
  }
  return helpText.includes(flag);
}

/** Flags for stream pings every `ms` (the contract's default is 15 s). */
export function pingFlags(ms) {
  return ["--stream-ping-ms", String(ms)];
}

export class Server {
  constructor(dataDir, extra = []) {
    this.dataDir = dataDir || mkdtempSync(join(tmpdir(), "presence-browser-"));
    this.ownDir = !dataDir;
    this.extra = extra;
    this.proc = null;
    this.url = null;
    this.stderr = "";
  }

  async start() {
    const args = [
      "--listen",
      "127.0.0.1:0",
      "--data-dir",
      this.dataDir,
      "--admin-token",
      ADMIN_TOKEN,
      ...this.extra,
    ];
    const p = spawn(SERVER_BIN, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PRESENCE_LOG: process.env.PRESENCE_LOG || "warn" },
    });
    this.proc = p;
    p.stderr.on("data", (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    const lines = createInterface({ input: p.stdout });
    this.url = await new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`server did not print its listening line:\n${this.stderr}`)),
        20000,
      );
      p.on("exit", (code) => {
        clearTimeout(t);
        reject(new Error(`server exited (${code}) before listening:\n${this.stderr}`));
      });
      lines.on("line", (l) => {
        const m = /^listening on (http:\/\/\S+)$/.exec(l.trim());
        if (m) {
          clearTimeout(t);
          resolve(m[1]);
        }
      });
    });
    const u = new URL(this.url);
    this.host = u.hostname;
    this.port = Number(u.port);
    return this;
  }

  /** kill -9: no goodbye to open streams, exactly like a crashed or redeployed node. */
  async kill() {
    if (!this.proc || this.proc.exitCode !== null) return;
    const p = this.proc;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await gone;
  }

  async stop() {
    await this.kill();
    if (this.ownDir) rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// ----- the HTTP API --------------------------------------------------------------------------

export class Api {
  constructor(url) {
    this.url = url;
  }

  async call(method, path, token, body) {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    const r = await fetch(this.url + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    if (r.status >= 400) {
      throw new Error(`${method} ${path} -> ${r.status} ${text}`);
    }
    return { status: r.status, headers: r.headers, body: json };
  }

  /** A new account; returns {slug, widgetKey, owner: {email, password, token}}. */
  async account(slug) {
    const owner = { name: "Olga Owner", email: `owner@${slug}.test`, password: "owner-pass-123" };
    const r = await this.call("POST", "/v1/accounts", ADMIN_TOKEN, {
      name: `${slug} Inc`,
      slug,
      owner,
    });
    const token = await this.login(slug, owner.email, owner.password, "owner-laptop");
    return { slug, widgetKey: r.body.account.widget_key, owner: { ...owner, token } };
  }

  async login(slug, email, password, device) {
    const r = await this.call("POST", "/v1/login", null, {
      account: slug,
      email,
      password,
      device: { id: device, platform: "desktop", name: device, app_version: "test" },
      push: null,
    });
    return r.body.token;
  }

  async agent(acc, name, groups) {
    const email = `${name.toLowerCase()}@${acc.slug}.test`;
    const password = `${name.toLowerCase()}-pass-123`;
    await this.call("POST", "/v1/admin/agents", acc.owner.token, {
      name,
      email,
      password,
      groups,
      role: "agent",
    });
    return this.login(acc.slug, email, password, `${name}-laptop`);
  }

  async setStatus(token, status) {
    return this.call("PUT", "/v1/me/status", token, { status, op_id: crypto.randomUUID() });
  }

  async view(widgetKey) {
    return (await this.call("GET", `/v1/widget/${widgetKey}/status`)).body;
  }
}

// ----- the proxy -----------------------------------------------------------------------------

/**
 * A reverse proxy in front of the server. Modes: `pass`; `503` (event streams answered 503,
 * as a load balancer does during a deploy); `silent` (open streams stop delivering, new
 * requests hang: a dead path the browser cannot see). Upstream down answers 502.
 */
export class Proxy {
  constructor(target) {
    this.target = target;
    this.mode = "pass";
    this.streams = new Set();
    this.held = new Set();
    this.log = [];
  }

  async start() {
    this.srv = http.createServer((req, res) => this.handle(req, res));
    await new Promise((r) => this.srv.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.srv.address().port}`;
    return this;
  }

  handle(req, res) {
    const events = req.url.split("?")[0].endsWith("/events");
    this.log.push({
      t: Date.now(),
      method: req.method,
      path: req.url,
      inm: req.headers["if-none-match"] || null,
      cookie: req.headers.cookie || null,
      origin: req.headers.origin || null,
    });
    if (this.mode === "silent") {
      this.held.add(res);
      res.on("close", () => this.held.delete(res));
      return;
    }
    if (events && this.mode === "503") {
      res.writeHead(503, {
        "content-type": "application/json",
        "access-control-allow-origin": "*",
        "retry-after": "1",
      });
      res.end('{"error":{"code":"unavailable","detail":"deploy in progress"}}');
      return;
    }
    const up = http.request(
      {
        host: this.target.host,
        port: this.target.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        if (!events) {
          ur.pipe(res);
          return;
        }
        const s = { res, ur, silent: false, opened: Date.now(), pings: 0 };
        this.streams.add(s);
        res.on("close", () => {
          this.streams.delete(s);
          ur.destroy();
        });
        ur.on("data", (chunk) => {
          if (s.silent || this.mode === "silent") return;
          s.pings += chunk.toString().split("event: ping").length - 1;
          res.write(chunk);
        });
        ur.on("end", () => res.end());
        ur.on("error", () => res.destroy());
      },
    );
    up.on("error", () => {
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain", "access-control-allow-origin": "*" });
      }
      res.end();
    });
    req.pipe(up);
  }

  setMode(m) {
    this.mode = m;
    if (m !== "silent") {
      for (const res of this.held) res.destroy();
      this.held.clear();
    }
  }

  /** Drops every open event stream (their sockets close). */
  dropStreams() {
    for (const s of this.streams) s.res.destroy();
    this.streams.clear();
  }

  openStreams() {
    return this.streams.size;
  }

  requests(pred) {
    return this.log.filter(pred);
  }

  async stop() {
    this.setMode("pass");
    this.dropStreams();
    this.srv.closeAllConnections?.();
    await new Promise((r) => this.srv.close(r));
  }
}

// ----- the host pages ------------------------------------------------------------------------

/** A site on another origin; pages are registered by path with their own CSP. */
export class HostSite {
  constructor() {
    this.pages = new Map();
  }

  async start() {
    this.srv = http.createServer((req, res) => {
      const p = this.pages.get(req.url.split("?")[0]);
      if (!p) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": p.type, ...p.headers, "cache-control": "no-store" });
      res.end(p.body);
    });
    await new Promise((r) => this.srv.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.srv.address().port}`;
    this.add("/host.js", HOST_JS, "text/javascript");
    this.add("/hostile.css", HOSTILE_CSS, "text/css");
    this.add("/favicon.ico", "", "image/x-icon");
    return this;
  }

  add(path, body, type, headers = {}) {
    this.pages.set(path, { body, type, headers });
  }

  /**
   * A page at `path` loading widget.js from `widget` (an origin) under the strict CSP of the
   * contract (plus this site's own origin for its own script and stylesheet). `body` is the
   * page's markup; `script` the attributes of the widget's script tag.
   */
  page(path, { widget, body = "", script = "", hostile = false, lang = "en" }) {
    const csp =
      `default-src 'none'; script-src ${widget} ${this.url}; connect-src ${widget}; ` +
      `style-src ${widget} ${this.url}; img-src ${this.url}`;
    const html = `<!doctype html><html lang="${lang}"><head><meta charset="utf-8">
<title>host page</title>
${hostile ? '<link rel="stylesheet" href="/hostile.css">' : ""}
<script src="/host.js"></script>
<script async src="${widget}/widget.js" ${script}></script>
</head><body><h1>A customer's page</h1>${body}</body></html>`;
    this.add(path, html, "text/html; charset=utf-8", { "content-security-policy": csp });
    return this.url + path;
  }

  async stop() {
    this.srv.closeAllConnections?.();
    await new Promise((r) => this.srv.close(r));
  }
}

/** Runs before the widget: records the page's globals and every presence-change. */
const HOST_JS = `(function () {
  var before = Object.getOwnPropertyNames(window);
  var h = { before: before, events: [], attrs: [] };
  window.__host = h;
  document.addEventListener("presence-change", function (e) {
    h.events.push({ id: e.target.id || e.target.getAttribute("group") || "", t: Date.now(),
      detail: e.detail, bubbles: e.bubbles, composed: e.composed });
  });
  new MutationObserver(function (ms) {
    ms.forEach(function (m) {
      h.attrs.push({ id: m.target.id || "", name: m.attributeName,
        value: m.target.getAttribute(m.attributeName), t: Date.now() });
    });
  }).observe(document, { subtree: true, attributes: true,
    attributeFilter: ["status", "reason", "stale"] });
})();`;

export const HOSTILE_CSS = `*{font:40px serif!important;color:red!important}
*{background:yellow!important;border:5px solid blue!important;margin:30px!important;
padding:0!important;box-shadow:none!important;display:block!important;
visibility:visible!important;opacity:1!important;border-radius:0!important}
presence-chatbox{all:unset!important;width:10px!important;height:10px!important;
position:static!important}
div,span{width:5px!important;height:5px!important}`;

// ----- the browser ---------------------------------------------------------------------------

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export class Browser {
  /** playwright-core gives every launch a new empty --user-data-dir of its own. */
  async start() {
    this.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
    });
    return this;
  }

  /** A fresh context and page, with console errors and page errors collected. */
  async page(opts = {}) {
    const ctx = await this.browser.newContext({
      locale: opts.locale || "en-US",
      timezoneId: opts.timezoneId || "UTC",
      viewport: { width: 900, height: 600 },
    });
    const page = await ctx.newPage();
    page.errors = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") page.errors.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => page.errors.push(`pageerror: ${e.message}`));
    page.closeAll = () => ctx.close();
    return page;
  }

  async stop() {
    await this.browser.close();
  }
}

export function shotPath(name) {
  mkdirSync(OUT, { recursive: true });
  return join(OUT, `${name}.png`);
}

/** The element's attributes and shadow text, read the way a test needs them. */
export async function read(page, sel) {
  return page.evaluate((s) => {
    const e = document.querySelector(s);
    if (!e) return null;
    const r = e.shadowRoot;
    return {
      status: e.getAttribute("status"),
      reason: e.getAttribute("reason"),
      stale: e.hasAttribute("stale"),
      text: r ? r.querySelector(".t").textContent : null,
      main: r ? r.querySelector(".m").textContent : null,
      sub: r ? r.querySelector(".s").textContent : null,
      live: r ? r.querySelector("[aria-live]").textContent : null,
    };
  }, sel);
}

/** Waits until the element at `sel` shows `status` (and `reason` if given). */
export async function waitStatus(page, sel, status, reason, ms = 10000) {
  return until(
    `${sel} to show status=${status}${reason ? ` reason=${reason}` : ""}`,
    async () => {
      const r = await read(page, sel);
      return r && r.status === status && (!reason || r.reason === reason) ? r : null;
    },
    ms,
  );
}

export async function events(page, id) {
  return page.evaluate((i) => window.__host.events.filter((e) => !i || e.id === i), id);
}
