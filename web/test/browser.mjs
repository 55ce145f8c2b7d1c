// The browser suite: the real widget.js, served by the real presence-server, embedded in host
// pages on another origin under a strict CSP, and the dashboard at /app/ (test/dashboard.mjs;
// its history pages in test/history.mjs, its Webhooks page in test/webhooks.mjs),
// in headless Chromium. Each test prints
// `ok NAME` or `FAILED NAME: why`; the last line is `browser: N passed, N failed`, which
// `cargo xtask test` reads. Screenshots go to target/browser/; measurements to
// target/browser/measurements.json.
//
// Run: `node test/browser.mjs [name-filter]` from web/ after `cargo build -p presence-server`.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import {
  Api,
  Browser,
  HostSite,
  OUT,
  Proxy,
  ROOT,
  Server,
  assert,
  eq,
  events,
  pingFlags,
  read,
  serverHasFlag,
  shotPath,
  until,
  waitStatus,
} from "./harness.mjs";
import { register as dashboardTests } from "./dashboard.mjs";
import { register as historyTests } from "./history.mjs";
import { register as webhooksTests } from "./webhooks.mjs";

const BUDGET_GZIP_BYTES = 12000;
const FOLLOW_MS = 1000;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const measurements = {};
let slugN = 0;
const slug = (p) => `${p}-${process.pid}-${++slugN}`;

/** Shared by most tests: one server behind one proxy, one host site, one browser. */
let server, proxy, site, browser, api;

async function setup() {
  server = await new Server(null, pingFlags(1000)).start();
  proxy = await new Proxy(server).start();
  site = await new HostSite().start();
  browser = await new Browser().start();
  api = new Api(server.url);
}

async function teardown() {
  await browser?.stop();
  await site?.stop();
  await proxy?.stop();
  await server?.stop();
}

/** Sets a status and waits for the element to follow; returns the latency in ms. */
async function follow(page, sel, token, status, want = status, reason) {
  const t0 = Date.now();
  await api.setStatus(token, status);
  const r = await waitStatus(page, sel, want, reason, 10000);
  const id = sel.replace(/^#/, "");
  const changed = await page.evaluate(
    ([i, s, since]) =>
      window.__host.attrs.find(
        (a) => a.id === i && a.name === "status" && a.value === s && a.t >= since,
      ),
    [id, want, t0],
  );
  assert(changed, `a status attribute change on ${sel} was recorded`);
  return { ms: changed.t - t0, read: r };
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// ----- the bundle ----------------------------------------------------------------------------

test("bundle: widget.js and everything it loads is within 12 KB gzip", async () => {
  const page = await browser.page();
  try {
    const acc = await api.account(slug("size"));
    const url = site.page("/size.html", {
      widget: proxy.url,
      script: `data-widget-key="${acc.widgetKey}"`,
    });
    const loaded = [];
    page.on("response", (r) => {
      if (r.url().startsWith(proxy.url) && !r.url().includes("/v1/widget/")) loaded.push(r.url());
    });
    await page.goto(url);
    await waitStatus(page, "presence-chatbox", "offline");
    // Everything the widget fetched besides the status API is counted against the budget.
    let total = 0;
    for (const u of new Set(loaded)) {
      const body = Buffer.from(await (await fetch(u)).arrayBuffer());
      total += gzipSync(body, { level: 9 }).length;
    }
    const served = await fetch(`${server.url}/widget.js`, {
      headers: { "accept-encoding": "gzip" },
    });
    eq(served.headers.get("content-encoding"), "gzip", "widget.js is served gzip");
    const onDisk = readFileSync(join(ROOT, "web", "dist", "widget.js.gz")).length;
    measurements.widget_gzip_bytes = total;
    measurements.widget_gzip_bytes_served = onDisk;
    eq([...new Set(loaded)].map((u) => new URL(u).pathname), ["/widget.js"], "files loaded");
    assert(total <= BUDGET_GZIP_BYTES, `widget is ${total} bytes gzip, budget ${BUDGET_GZIP_BYTES}`);
  } finally {
    await page.closeAll();
  }
});

// ----- isolation -----------------------------------------------------------------------------

const STYLE_PROPS = [
  "font-size",
  "font-family",
  "font-weight",
  "color",
  "background-color",
  "border-top-width",
  "border-top-color",
  "padding-left",
  "margin-top",
  "display",
  "width",
  "height",
];

async function shadowStyles(page) {
  return page.evaluate((props) => {
    const e = document.querySelector("presence-chatbox");
    const pick = (el) => {
      const cs = getComputedStyle(el);
      return Object.fromEntries(props.map((p) => [p, cs.getPropertyValue(p)]));
    };
    const r = e.shadowRoot;
    const hostCs = getComputedStyle(e);
    return {
      host: { position: hostCs.position, right: hostCs.right, bottom: hostCs.bottom },
      box: pick(r.querySelector(".box")),
      main: pick(r.querySelector(".m")),
      dot: pick(r.querySelector(".dot")),
      rect: (() => {
        const b = r.querySelector(".box").getBoundingClientRect();
        return { w: Math.round(b.width), h: Math.round(b.height) };
      })(),
    };
  }, STYLE_PROPS);
}

test("isolation: hostile CSS and a strict CSP change nothing inside the widget", async () => {
  const acc = await api.account(slug("hostile"));
  await api.setStatus(acc.owner.token, "online");
  const script = `data-widget-key="${acc.widgetKey}"`;
  const plain = await browser.page();
  const hostile = await browser.page();
  try {
    await plain.goto(site.page("/plain.html", { widget: proxy.url, script }));
    await hostile.goto(site.page("/hostile.html", { widget: proxy.url, script, hostile: true }));
    await waitStatus(plain, "presence-chatbox", "online");
    await waitStatus(hostile, "presence-chatbox", "online");
    // The hostile sheet did load and does apply to the page itself.
    const h1 = await hostile.evaluate(() => getComputedStyle(document.querySelector("h1")).fontSize);
    eq(h1, "40px", "the hostile CSS applies to the host page");
    const a = await shadowStyles(plain);
    const b = await shadowStyles(hostile);
    eq(b, a, "computed styles inside the shadow root, hostile page vs plain page");
    eq(a.main["font-size"], "14px", "the widget's own font size");
    assert(!/serif$/.test(a.main["font-family"]) || /sans-serif/.test(a.main["font-family"]),
      `the widget's font is its own: ${a.main["font-family"]}`);
    eq(a.box["background-color"], "rgb(255, 255, 255)", "the box background");
    eq(a.dot["background-color"], "rgb(26, 127, 55)", "the online dot is green");
    eq(a.host.position, "fixed", "the snippet's launcher sits in a corner");
    eq(hostile.errors, [], "console errors and warnings on the hostile page");
    eq(plain.errors, [], "console errors and warnings on the plain page");
    // Nothing added to the page's globals but window.Presence.
    const added = await hostile.evaluate(() => {
      const before = new Set(window.__host.before);
      return Object.getOwnPropertyNames(window).filter((n) => !before.has(n) && n !== "__host");
    });
    eq(added, ["Presence"], "globals added by widget.js");
    const api2 = await hostile.evaluate(() => [typeof Presence.view, typeof Presence.on]);
    eq(api2, ["function", "function"], "window.Presence offers view and on");
    const cookies = await hostile.context().cookies();
    eq(cookies, [], "cookies");
    const sent = proxy.requests((r) => r.cookie);
    eq(sent.length, 0, "requests that carried a cookie");
    // No <style> or style attribute was added to the host document.
    const injected = await hostile.evaluate(
      () => document.querySelectorAll("style, [style]").length,
    );
    eq(injected, 0, "style elements or attributes in the host document");
    await hostile.locator("presence-chatbox").screenshot({ path: shotPath("hostile-page-online") });
    await hostile.screenshot({ path: shotPath("hostile-page-full") });
  } finally {
    await plain.closeAll();
    await hostile.closeAll();
  }
});

// ----- following status ----------------------------------------------------------------------

test("status: online, busy, offline followed within 1 s, one presence-change each", async () => {
  const acc = await api.account(slug("follow"));
  const page = await browser.page();
  try {
    await page.goto(
      site.page("/follow.html", {
        widget: proxy.url,
        body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>`,
      }),
    );
    const first = await waitStatus(page, "#w", "offline", "no_agents_online");
    eq(first.main, "We're offline", "offline text");
    await page.locator("#w").screenshot({ path: shotPath("state-offline") });
    eq((await events(page, "w")).length, 1, "presence-change events after the first view");
    const steps = [
      ["online", "agents_online", "We're online"],
      ["busy", "agents_busy", "We're busy — back shortly"],
      ["offline", "no_agents_online", "We're offline"],
      ["online", "agents_online", "We're online"],
    ];
    let n = 1;
    for (const [status, reason, text] of steps) {
      const { ms, read: r } = await follow(page, "#w", acc.owner.token, status, status, reason);
      assert(ms <= FOLLOW_MS, `${status} shown after ${ms} ms (limit ${FOLLOW_MS})`);
      eq(r.main, text, `visible text for ${status}`);
      n += 1;
      const ev = await events(page, "w");
      eq(ev.length, n, `presence-change events after ${status}`);
      const last = ev[ev.length - 1];
      eq([last.detail.status, last.detail.reason], [status, reason], "event detail");
      assert(last.bubbles && last.composed, "presence-change bubbles and is composed");
      eq(r.live, text, "the live region announces the change");
      if (n <= 3) await page.locator("#w").screenshot({ path: shotPath(`state-${status}`) });
    }
    // Presence.view and Presence.on see the same.
    const seen = await page.evaluate((k) => Presence.view(k), acc.widgetKey);
    eq([seen.status, seen.reason], ["online", "agents_online"], "Presence.view");
    await page.evaluate(() => {
      window.__host.onCalls = [];
      Presence.on("change", (v, k) => window.__host.onCalls.push([v.status, k]));
    });
    await follow(page, "#w", acc.owner.token, "busy");
    const calls = await until("Presence.on to be called", () =>
      page.evaluate(() => window.__host.onCalls.length && window.__host.onCalls),
    );
    eq(calls, [["busy", acc.widgetKey]], "Presence.on calls");
    eq(page.errors, [], "console errors");
  } finally {
    await page.closeAll();
  }
});

test("status: latency from status PUT to the element's attribute (30 changes)", async () => {
  const acc = await api.account(slug("latency"));
  const page = await browser.page();
  try {
    const t0 = Date.now();
    await page.goto(
      site.page("/latency.html", {
        widget: proxy.url,
        body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>`,
      }),
    );
    await waitStatus(page, "#w", "offline");
    const first = await page.evaluate(() => {
      const e = performance.getEntriesByType("resource").find((r) => r.name.endsWith("/widget.js"));
      const a = window.__host.attrs.find((x) => x.name === "status");
      return { scriptStart: performance.timeOrigin + e.startTime, shown: a.t };
    });
    measurements.widget_first_status_ms = Math.round(first.shown - first.scriptStart);
    const lat = [];
    for (let i = 0; i < 30; i++) {
      const s = i % 2 === 0 ? "online" : "offline";
      lat.push((await follow(page, "#w", acc.owner.token, s)).ms);
    }
    measurements.widget_status_to_dom_p50_ms = pct(lat, 50);
    measurements.widget_status_to_dom_p99_ms = pct(lat, 99);
    measurements.page_load_to_first_status_ms = Date.now() - t0;
    assert(pct(lat, 99) <= FOLLOW_MS, `p99 ${pct(lat, 99)} ms`);
  } finally {
    await page.closeAll();
  }
});

test("groups: a group widget follows its group and the ungrouped agents only", async () => {
  const acc = await api.account(slug("groups"));
  await api.call("PUT", "/v1/admin/groups", acc.owner.token, [
    { key: "sales", name: "Sales" },
    { key: "support", name: "Support" },
  ]);
  const sales = await api.agent(acc, "Sam", ["sales"]);
  const support = await api.agent(acc, "Pat", ["support"]);
  const anywhere = await api.agent(acc, "Una", []);
  const page = await browser.page();
  try {
    await page.goto(
      site.page("/groups.html", {
        widget: proxy.url,
        body:
          `<presence-chatbox id="all" widget-key="${acc.widgetKey}"></presence-chatbox>` +
          `<presence-chatbox id="sales" widget-key="${acc.widgetKey}" group="sales"></presence-chatbox>` +
          `<presence-chatbox id="support" widget-key="${acc.widgetKey}" group="support"></presence-chatbox>`,
      }),
    );
    await waitStatus(page, "#sales", "offline");
    await waitStatus(page, "#support", "offline");
    // Support goes online: the account and support follow, sales does not move.
    await follow(page, "#support", support, "online");
    await waitStatus(page, "#all", "online");
    eq((await read(page, "#sales")).status, "offline", "sales while only support is online");
    eq((await events(page, "sales")).length, 1, "sales events after a support-only change");
    // A sales agent goes busy: sales is busy.
    await follow(page, "#sales", sales, "busy");
    const ev = await events(page, "sales");
    eq(ev.length, 2, "sales events after its own change");
    eq(
      [ev[1].detail.key, ev[1].detail.name, ev[1].detail.status, typeof ev[1].detail.version],
      ["sales", "Sales", "busy", "number"],
      "a group's event detail is its entry plus the view's version",
    );
    assert("next_change_at" in ev[1].detail, "group detail has next_change_at");
    // An agent in no group goes online: every group is online.
    await follow(page, "#sales", anywhere, "online");
    await waitStatus(page, "#support", "online");
    // Only one stream for the three elements of one key.
    await until("one open stream", () => proxy.streams.size >= 1);
    const open = [...proxy.streams].filter((s) => s.res.req?.url?.includes(acc.widgetKey));
    assert(open.length <= 1, `streams for one key: ${open.length}`);
    await page.screenshot({ path: shotPath("groups") });
    eq(page.errors, [], "console errors");
  } finally {
    await page.closeAll();
  }
});

test("messages: the busy message and the offline message show", async () => {
  const acc = await api.account(slug("messages"));
  const page = await browser.page();
  try {
    const put = await api.call("PUT", "/v1/admin/settings", acc.owner.token, {
      busy_message: "All hands on deck — reply within 10 minutes",
      offline_message: "Write to help@example.com",
    });
    assert(
      put.body && "busy_message" in put.body,
      `the server takes busy_message (PUT /v1/admin/settings answered ${JSON.stringify(put.body)})`,
    );
    await api.call("PUT", "/v1/admin/groups", acc.owner.token, [{ key: "sales", name: "Sales" }]);
    const sam = await api.agent(acc, "Sam", ["sales"]);
    await page.goto(
      site.page("/messages.html", {
        widget: proxy.url,
        body:
          `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>` +
          `<presence-chatbox id="g" widget-key="${acc.widgetKey}" group="sales"></presence-chatbox>`,
      }),
    );
    const off = await waitStatus(page, "#w", "offline");
    eq(off.main, "Write to help@example.com", "offline message");
    eq((await waitStatus(page, "#g", "offline")).main, "Write to help@example.com", "group offline message");
    // The owner is in no group: busy for the account and for sales.
    const { read: busy } = await follow(page, "#w", acc.owner.token, "busy");
    eq(busy.main, "All hands on deck — reply within 10 minutes", "busy message");
    await page.locator("#w").screenshot({ path: shotPath("state-busy-message") });
    const gb = await waitStatus(page, "#g", "busy");
    eq(gb.main, "All hands on deck — reply within 10 minutes", "the group's busy message");
    const last = (await events(page, "g")).at(-1);
    eq(last.detail.message, "All hands on deck — reply within 10 minutes", "group detail message");
    // Sam (sales) online: sales is online with no message; the account is online too.
    await follow(page, "#g", sam, "online");
    const g2 = (await events(page, "g")).at(-1);
    eq([g2.detail.status, g2.detail.message], ["online", null], "an online group has no message");
  } finally {
    await page.closeAll();
  }
});

test("back at: a busy chat box says when an agent is back, in the visitor's zone and words", async () => {
  const acc = await api.account(slug("backat"));
  await api.call("PUT", "/v1/admin/settings", acc.owner.token, { busy_message: "Mind the queue" });
  const r = await api.call("PUT", "/v1/me/status", acc.owner.token, {
    status: "busy",
    op_id: crypto.randomUUID(),
    duration_ms: 3600e3,
    then: "online",
  });
  const backAt = r.body.status.until;
  assert(Number.isInteger(backAt), `the timed status has its end: ${JSON.stringify(r.body)}`);
  for (const [locale, tz, lang, lead] of [
    ["en-US", "America/New_York", null, "We're busy — back"],
    ["de-DE", "Asia/Tokyo", null, "Wir sind beschäftigt — zurück"],
    ["en-GB", "Europe/Prague", "fr", "Nous sommes occupés — de retour"],
  ]) {
    const page = await browser.page({ locale, timezoneId: tz });
    try {
      const langAttr = lang ? ` lang="${lang}"` : "";
      await page.goto(
        site.page(`/back-${tz.replace("/", "-")}.html`, {
          widget: proxy.url,
          body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"${langAttr}></presence-chatbox>`,
        }),
      );
      const shown = await waitStatus(page, "#w", "busy");
      const time = new Intl.DateTimeFormat(lang || locale, {
        hour: "numeric",
        minute: "2-digit",
        timeZone: tz,
      }).format(backAt);
      assert(shown.main.startsWith(lead), `"${shown.main}" starts with "${lead}"`);
      assert(shown.main.includes(time), `"${shown.main}" names ${time} in ${tz}`);
      eq(shown.sub, "Mind the queue", "the busy message moves below");
      const last = (await events(page, "w")).at(-1);
      eq(last.detail.back_at, backAt, "the event's detail carries back_at");
      if (!lang) await page.locator("#w").screenshot({ path: shotPath(`state-back-at-${locale}`) });
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  }
  // Online again: the end is forgotten.
  await api.setStatus(acc.owner.token, "online");
  const v = await until("the view to be online", async () => {
    const v = await api.view(acc.widgetKey);
    return v.status === "online" ? v : null;
  });
  eq(v.back_at, null, "no back_at while online");
});

test("opening hours: outside them it says when the chat box opens, in the visitor's zone", async () => {
  const acc = await api.account(slug("hours"));
  await api.setStatus(acc.owner.token, "online");
  // Open for one hour a day, starting two hours from now (UTC, whole minutes).
  const start = new Date(Math.ceil((Date.now() + 2 * 3600e3) / 60000) * 60000);
  const hm = (d) => `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
  const end = new Date(start.getTime() + 3600e3);
  const ranges = [[hm(start), hm(end)]];
  const days = Object.fromEntries(["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map((d) => [d, ranges]));
  await api.call("PUT", "/v1/admin/opening-hours", acc.owner.token, {
    enabled: true,
    timezone: "UTC",
    days,
    exceptions: [],
  });
  const view = await until("the view to be outside opening hours", async () => {
    const v = await api.view(acc.widgetKey);
    return v.reason === "outside_opening_hours" ? v : null;
  });
  eq(view.next_change_at, start.getTime(), "next_change_at is the opening");
  for (const [locale, tz, lang] of [
    ["en-US", "America/New_York", null],
    ["de-DE", "Asia/Tokyo", null],
    ["en-GB", "Europe/Prague", "es"],
  ]) {
    const page = await browser.page({ locale, timezoneId: tz });
    try {
      const langAttr = lang ? ` lang="${lang}"` : "";
      await page.goto(
        site.page(`/hours-${tz.replace("/", "-")}.html`, {
          widget: proxy.url,
          body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"${langAttr}></presence-chatbox>`,
        }),
      );
      const r = await waitStatus(page, "#w", "offline", "outside_opening_hours");
      const time = new Intl.DateTimeFormat(lang || locale, {
        hour: "numeric",
        minute: "2-digit",
        timeZone: tz,
      }).format(start);
      const lead = { en: "Offline — we open", de: "Offline — wir öffnen", es: "Fuera de línea — abrimos" }[
        lang || locale.slice(0, 2)
      ];
      assert(r.main.startsWith(lead), `"${r.main}" starts with "${lead}"`);
      assert(r.main.includes(time), `"${r.main}" names the opening time ${time} in ${tz}`);
      if (!lang) {
        await page.locator("#w").screenshot({ path: shotPath(`state-opens-at-${locale}`) });
      }
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  }
});

// ----- resilience ----------------------------------------------------------------------------

test("resilience: a 503 answer to the stream; the widget polls with its ETag, then recovers", async () => {
  const acc = await api.account(slug("s503"));
  const page = await browser.page();
  try {
    proxy.setMode("503");
    const since = Date.now();
    await page.goto(
      site.page("/503.html", {
        widget: proxy.url,
        body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>`,
      }),
    );
    await waitStatus(page, "#w", "offline");
    const got503 = proxy.requests((r) => r.t >= since && r.path.endsWith("/events"));
    assert(got503.length >= 1, "the widget asked for the stream and got a 503");
    // While the stream is refused, a change still arrives, by polling.
    await api.setStatus(acc.owner.token, "online");
    await waitStatus(page, "#w", "online", null, 15000);
    const polls = proxy.requests((r) => r.t >= since && r.path.endsWith("/status"));
    assert(polls.length >= 2, `polled /status (${polls.length} times)`);
    assert(
      polls.some((p) => p.inm),
      `a poll revalidated with If-None-Match: ${JSON.stringify(polls.map((p) => p.inm))}`,
    );
    assert(
      proxy.requests((r) => r.t >= since && r.method === "OPTIONS").length === 0,
      "no CORS preflight",
    );
    // The deploy ends: the widget reopens its stream by itself and is live again.
    proxy.setMode("pass");
    await until("the stream to be reopened", () => proxy.streams.size > 0, 40000);
    const { ms } = await follow(page, "#w", acc.owner.token, "busy");
    assert(ms <= FOLLOW_MS, `live again: busy after ${ms} ms`);
    // EventSource reports the 503 as a network error in the console; nothing else may.
    const other = page.errors.filter((e) => !/\/events|EventSource|503/.test(e));
    eq(other, [], "console errors besides the refused stream");
  } finally {
    proxy.setMode("pass");
    await page.closeAll();
  }
});

test("resilience: the server is killed and restarted mid-stream; the widget recovers", async () => {
  const own = await new Server(null, pingFlags(1000)).start();
  const p = await new Proxy(own).start();
  const ownApi = new Api(own.url);
  const page = await browser.page();
  try {
    const acc = await ownApi.account(slug("restart"));
    await page.goto(
      site.page("/restart.html", {
        widget: p.url,
        body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>`,
      }),
    );
    await waitStatus(page, "#w", "offline");
    await until("the stream to be open", () => p.streams.size > 0);
    const killedAt = Date.now();
    await own.kill();
    await until("the proxy to see the stream end", () => p.streams.size === 0);
    // While the server is gone the widget polls (and gets the proxy's 502).
    await until("a poll while the server is down", () =>
      p.requests((r) => r.t >= killedAt && r.path.endsWith("/status")).length > 0,
    );
    await own.start();
    p.target = own;
    ownApi.url = own.url;
    // The session survives the restart; its change reaches the widget.
    await ownApi.setStatus(acc.owner.token, "online");
    await waitStatus(page, "#w", "online", null, 40000);
    await until("the stream to be reopened", () => p.streams.size > 0, 40000);
    ownApi.url = own.url;
    const t0 = Date.now();
    await ownApi.setStatus(acc.owner.token, "busy");
    await waitStatus(page, "#w", "busy");
    assert(Date.now() - t0 <= 2 * FOLLOW_MS, "live again after the restart");
  } finally {
    await page.closeAll();
    await p.stop();
    await own.stop();
  }
});

test("resilience: a silent stream shows 'may be out of date', then clears", async () => {
  const acc = await api.account(slug("silent"));
  const page = await browser.page();
  try {
    await page.goto(
      site.page("/silent.html", {
        widget: proxy.url,
        body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>`,
      }),
    );
    await waitStatus(page, "#w", "offline");
    assert(serverHasFlag("--stream-ping-ms"), "the server takes --stream-ping-ms");
    const pingMs = 1000;
    const mine = () => [...proxy.streams].filter((s) => s.res.req.url.includes(acc.widgetKey));
    // Let the widget see the stream's pace (a ping a second) before it goes quiet.
    await until("two pings delivered", () => mine().some((s) => s.pings >= 2), 10000);
    proxy.setMode("silent");
    const t0 = Date.now();
    const r = await until(
      "the widget to say the status may be out of date",
      async () => {
        const x = await read(page, "#w");
        return x.stale ? x : null;
      },
      2 * pingMs + 10000,
    );
    const took = Date.now() - t0;
    eq(r.sub, "Status may be out of date", "the stale notice");
    assert(took >= pingMs, `not stale before a ping was missed (${took} ms)`);
    await page.locator("#w").screenshot({ path: shotPath("state-stale") });
    proxy.setMode("pass");
    await until(
      "the stale notice to clear",
      async () => !(await read(page, "#w")).stale,
      40000,
    );
    const { ms } = await follow(page, "#w", acc.owner.token, "online");
    assert(ms <= 2 * FOLLOW_MS, `live again (${ms} ms)`);
  } finally {
    proxy.setMode("pass");
    await page.closeAll();
  }
});

test("visibility: a hidden tab closes its stream; shown again, it is current at once", async () => {
  const acc = await api.account(slug("hidden"));
  const page = await browser.page();
  try {
    await page.goto(
      site.page("/hidden.html", {
        widget: proxy.url,
        body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>`,
      }),
    );
    await waitStatus(page, "#w", "offline");
    const mine = () => [...proxy.streams].filter((s) => s.res.req.url.includes(acc.widgetKey));
    await until("the stream to be open", () => mine().length === 1);
    // Headless Chromium has no background tabs: the page's visibility is set the way a tab
    // switch sets it (document.hidden + a visibilitychange event).
    const setHidden = (hidden) =>
      page.evaluate((h) => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
        Object.defineProperty(document, "visibilityState", {
          configurable: true,
          get: () => (h ? "hidden" : "visible"),
        });
        document.dispatchEvent(new Event("visibilitychange"));
      }, hidden);
    await setHidden(true);
    await until("the hidden tab's stream to close", () => mine().length === 0);
    const hiddenAt = Date.now();
    await api.setStatus(acc.owner.token, "online");
    // Nothing is fetched for a hidden tab, and the change is not shown yet.
    const r = await read(page, "#w");
    eq(r.status, "offline", "a hidden tab does not update");
    const shownAt = Date.now();
    await setHidden(false);
    await waitStatus(page, "#w", "online", null, FOLLOW_MS);
    const took = Date.now() - shownAt;
    const whileHidden = proxy.requests(
      (x) => x.t >= hiddenAt && x.t < shownAt && x.path.includes(acc.widgetKey),
    );
    eq(whileHidden.map((x) => `${x.method} ${x.path} +${x.t - hiddenAt}ms`), [], "requests made while hidden");
    await until("the stream to be reopened", () => mine().length === 1);
    assert(took <= FOLLOW_MS, `current ${took} ms after being shown`);
    eq(page.errors, [], "console errors");
  } finally {
    await page.closeAll();
  }
});

test("elements: added by script, moved, removed; one stream per key, no repeated events", async () => {
  const acc = await api.account(slug("dom"));
  const page = await browser.page();
  try {
    await page.goto(site.page("/dom.html", { widget: proxy.url, body: `<div id="a"></div><div id="b"></div>` }));
    await page.waitForFunction(() => !!window.Presence && !!customElements.get("presence-chatbox"));
    await page.evaluate((k) => {
      for (const id of ["x", "y"]) {
        const e = document.createElement("presence-chatbox");
        e.id = id;
        e.setAttribute("widget-key", k);
        document.getElementById("a").appendChild(e);
      }
    }, acc.widgetKey);
    await waitStatus(page, "#x", "offline");
    await waitStatus(page, "#y", "offline");
    const mine = () => proxy.requests((r) => r.path.includes(acc.widgetKey) && r.path.endsWith("/events"));
    eq(mine().length, 1, "event streams opened for two elements of one key");
    // Moving an element is not a change.
    await page.evaluate(() => document.getElementById("b").appendChild(document.getElementById("x")));
    const { ms } = await follow(page, "#x", acc.owner.token, "online");
    assert(ms <= FOLLOW_MS, `moved element follows (${ms} ms)`);
    eq((await events(page, "x")).map((e) => e.detail.status), ["offline", "online"], "x's events");
    eq(mine().length, 1, "event streams after a move");
    // Another language redraws the text; it is not a change of status.
    await page.evaluate(() => document.getElementById("x").setAttribute("lang", "de"));
    await until("the German text", async () => (await read(page, "#x")).main === "Wir sind online");
    eq((await events(page, "x")).length, 2, "x's events after a change of language");
    // The last element of a key removed: its stream closes.
    await page.evaluate(() => {
      document.getElementById("x").remove();
      document.getElementById("y").remove();
    });
    await until("the stream to close", () =>
      ![...proxy.streams].some((s) => s.res.req.url.includes(acc.widgetKey)),
    );
    eq(page.errors, [], "console errors");
  } finally {
    await page.closeAll();
  }
});

test("elements: the last element of a key replaced by another in the same task shows the view", async () => {
  const acc = await api.account(slug("swap"));
  await api.call("PUT", "/v1/admin/groups", acc.owner.token, [{ key: "sales", name: "Sales" }]);
  const page = await browser.page();
  try {
    await page.goto(site.page("/swap.html", { widget: proxy.url, body: `<div id="a"></div>` }));
    await page.waitForFunction(() => !!customElements.get("presence-chatbox"));
    await page.evaluate((k) => {
      const e = document.createElement("presence-chatbox");
      e.id = "old";
      e.setAttribute("widget-key", k);
      document.getElementById("a").appendChild(e);
    }, acc.widgetKey);
    await waitStatus(page, "#old", "offline");
    // What a framework does when it re-renders: the old element out, a new one in, at once.
    await page.evaluate((k) => {
      document.getElementById("old").remove();
      const e = document.createElement("presence-chatbox");
      e.id = "new";
      e.setAttribute("widget-key", k);
      e.setAttribute("group", "sales");
      document.getElementById("a").appendChild(e);
    }, acc.widgetKey);
    const r = await waitStatus(page, "#new", "offline", "no_agents_online");
    eq(r.main, "We're offline", "the new element's text");
    await follow(page, "#new", acc.owner.token, "online");
    eq(page.errors, [], "console errors");
  } finally {
    await page.closeAll();
  }
});

// ----- bad input -----------------------------------------------------------------------------

test("bad input: no key, an unknown key, an unknown group each give one clear error", async () => {
  const acc = await api.account(slug("bad"));
  const page = await browser.page();
  try {
    await page.goto(
      site.page("/bad.html", {
        widget: proxy.url,
        body:
          `<presence-chatbox id="nokey"></presence-chatbox>` +
          `<presence-chatbox id="unknown" widget-key="wk_doesnotexist"></presence-chatbox>` +
          `<presence-chatbox id="nogroup" widget-key="${acc.widgetKey}" group="nope"></presence-chatbox>`,
      }),
    );
    await until("the unknown key to be reported", async () =>
      (await read(page, "#unknown")).main === "Chat status unavailable",
    );
    eq((await read(page, "#nokey")).main, "Chat status unavailable", "no key");
    const ng = await waitStatus(page, "#nogroup", "offline");
    eq(ng.main, "We're offline", "an unknown group shows the account");
    const errs = page.errors.filter((e) => e.includes("presence-chatbox:"));
    const has = (s) => errs.some((e) => e.includes(s));
    assert(has("no widget-key attribute"), `no-key error in ${JSON.stringify(errs)}`);
    assert(has('unknown widget key "wk_doesnotexist"'), `unknown-key error in ${JSON.stringify(errs)}`);
    assert(has('unknown group "nope"'), `unknown-group error in ${JSON.stringify(errs)}`);
    eq(errs.length, 3, `one error each: ${JSON.stringify(errs)}`);
    // An unknown key is not retried forever.
    const n = proxy.requests((r) => r.path.includes("wk_doesnotexist")).length;
    assert(n <= 4, `requests for the unknown key: ${n}`);
  } finally {
    await page.closeAll();
  }
});

// ----- the demo page -------------------------------------------------------------------------

test("demo: --demo serves /demo/ with a launcher per group under a strict CSP", async () => {
  const demo = await new Server(null, ["--demo"]).start();
  const page = await browser.page();
  try {
    const key = /widget key\s+(wk_\w+)/.exec(
      await until("the demo description", () => /widget key\s+wk_/.test(demo.stderr) && demo.stderr),
    )[1];
    assert(demo.stderr.includes(`${demo.url}/demo/?key=${key}`), "the demo page URL is printed");
    const res = await page.goto(`${demo.url}/demo/?key=${key}`);
    const csp = res.headers()["content-security-policy"] || "";
    assert(csp.includes("script-src 'self'") && !csp.includes("unsafe-inline"), `CSP: ${csp}`);
    await until("three chat boxes", async () => (await page.locator("presence-chatbox").count()) === 3);
    await waitStatus(page, "presence-chatbox[group=sales]", "offline");
    // Sign in as Carol (no group) on the page and go online: every box follows.
    await page.getByLabel("Email").fill("carol@demo.test");
    await page.getByLabel("Password").fill("carol-demo-pass");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Online", exact: true }).click();
    for (const sel of ["presence-chatbox:not([group])", "presence-chatbox[group=sales]", "presence-chatbox[group=support]"]) {
      await waitStatus(page, sel, "online");
    }
    await page.screenshot({ path: shotPath("demo-page"), fullPage: true });
    eq(page.errors, [], "console errors on the demo page");
    const plain = await fetch(`${server.url}/demo/`);
    eq(plain.status, 404, "/demo/ without --demo");
  } finally {
    await page.closeAll();
    await demo.stop();
  }
});

// ----- the dashboard (/app/) -------------------------------------------------------------------

dashboardTests(test, () => ({ server, proxy, site, browser, api, measurements }));
historyTests(test, () => ({ server, proxy, site, browser, api, measurements }));
webhooksTests(test, () => ({ server, proxy, site, browser, api, measurements }));

// ----- runner --------------------------------------------------------------------------------

const filter = process.argv[2] || "";
let passed = 0;
let failed = 0;
try {
  await setup();
  for (const t of tests) {
    if (filter && !t.name.includes(filter)) continue;
    const t0 = Date.now();
    try {
      await t.fn();
      passed += 1;
      console.log(`ok ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAILED ${t.name} (${Date.now() - t0} ms): ${e.stack || e}`);
    }
  }
} catch (e) {
  failed += 1;
  console.log(`FAILED setup: ${e.stack || e}`);
} finally {
  await teardown().catch((e) => console.log(`teardown: ${e}`));
}
mkdirSync(OUT, { recursive: true });
if (!filter) {
  writeFileSync(join(OUT, "measurements.json"), `${JSON.stringify(measurements, null, 2)}\n`);
}
for (const [k, v] of Object.entries(measurements)) console.log(`measure ${k} = ${v}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
