// The dashboard's browser tests (`/app/`), registered into the browser suite by browser.mjs.
// The page is used the way a person uses it: by roles, labels and visible text, with the
// keyboard where the test says so. Other devices of the same agent are API clients with their
// own device stream; the widget runs on a host page of another origin.

import { execFile } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { Api, CLI_BIN, ROOT, Server, assert, eq, read, shotPath, until, waitStatus } from "./harness.mjs";

/** Runs the `presence` CLI with its own data dir; resolves with {code, stdout, stderr}. */
function cli(dataDir, args, input) {
  return new Promise((resolve) => {
    const p = execFile(CLI_BIN, ["--data-dir", dataDir, ...args], { timeout: 20000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
    );
    if (input !== undefined) p.stdin.end(input);
  });
}

const AXE = readFileSync(join(ROOT, "web", "node_modules", "axe-core", "axe.min.js"), "utf8");
const FOLLOW_MS = 1000;

/** A device's event stream read from Node: every event with the time it arrived. */
export async function deviceStream(url, token) {
  const ctl = new AbortController();
  const r = await fetch(`${url}/v1/me/events`, {
    headers: { authorization: `Bearer ${token}` },
    signal: ctl.signal,
  });
  if (r.status !== 200) throw new Error(`device stream: HTTP ${r.status}`);
  const s = { events: [], close: () => ctl.abort() };
  (async () => {
    const dec = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of r.body) {
        const t = performance.now();
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = "message";
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).trim();
          }
          if (data) s.events.push({ event, data: JSON.parse(data), t, wall: Date.now() });
        }
      }
    } catch {
      // aborted
    }
  })();
  await until("the device stream's snapshot", () => s.events.some((e) => e.event === "snapshot"));
  return s;
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/** What the dashboard tests share (and test/history.mjs): signing in with the form, another
 * device's view of /v1/me, the axe-core audit, the status menu, new accounts and agents. */
export function helpers(env) {
  /** A page of the dashboard, signed in with the form as `who` ({slug, email, password}). */
  async function signIn(who, path = "/app/", base = env().server.url) {
    const { browser } = env();
    const page = await browser.page();
    page.urls = [];
    page.on("request", (r) => page.urls.push(r.url()));
    await page.goto(`${base}${path}`);
    await page.getByLabel("Account").fill(who.slug);
    await page.getByLabel("Email").fill(who.email);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: /Change status/ }).waitFor({ timeout: 10000 });
    return page;
  }

  /** What `/v1/me` says, seen by another device of the same agent. */
  async function me(token) {
    return (await env().api.call("GET", "/v1/me", token)).body;
  }

  async function audit(page, name) {
    await page.evaluate(AXE);
    const res = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 3) }));
    });
    const bad = res.filter((v) => v.impact === "serious" || v.impact === "critical");
    eq(bad, [], `serious or critical accessibility violations on ${name}`);
  }

  async function pickStatus(page, label) {
    await page.getByRole("button", { name: /Change status/ }).click();
    await page.getByRole("menuitemradio", { name: label }).click();
  }

  async function account(prefix) {
    const { api } = env();
    const acc = await api.account(`${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`);
    return acc;
  }

  /** An agent in `acc` with a login for the page and a token of another device. */
  async function agent(acc, name, groups = [], role = "agent") {
    const { api } = env();
    const email = `${name.toLowerCase()}@${acc.slug}.test`;
    const password = `${name.toLowerCase()}-pass-123`;
    const r = await api.call("POST", "/v1/admin/agents", acc.owner.token, { name, email, password, groups, role });
    const token = await api.login(acc.slug, email, password, `${name}-phone`);
    return { id: r.body.id, slug: acc.slug, email, password, token };
  }

  return { signIn, me, audit, pickStatus, account, agent };
}

export function register(test, env) {
  const { signIn, me, audit, pickStatus, account, agent } = helpers(env);

  test("dashboard: /app/ and every address under it is the page, under a strict CSP, gzip", async () => {
    const { server } = env();
    for (const path of ["/app/", "/app/devices", "/app/admin/hours"]) {
      const r = await fetch(`${server.url}${path}`);
      eq(r.status, 200, `GET ${path}`);
      const csp = r.headers.get("content-security-policy") || "";
      assert(csp.includes("default-src 'none'") && csp.includes("script-src 'self'"), `CSP of ${path}: ${csp}`);
      assert(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), `no unsafe sources in ${csp}`);
      assert((await r.text()).includes('src="/app/app.js"'), `${path} is the dashboard page`);
    }
    const js = await fetch(`${server.url}/app/app.js`, { headers: { "accept-encoding": "gzip" } });
    eq(js.status, 200, "app.js");
    // The administration pages' script, loaded when an owner or admin opens one.
    const admin = await fetch(`${server.url}/app/admin.js`, { headers: { "accept-encoding": "gzip" } });
    eq([admin.status, admin.headers.get("content-encoding")], [200, "gzip"], "admin.js, gzip");
    assert(Buffer.from(await admin.arrayBuffer()).equals(readFileSync(join(ROOT, "web", "dist", "admin.js"))), "admin.js is the committed bundle");
  });

  test("dashboard: the demo agents log in; the page is a web device that heartbeats and streams", async () => {
    const demo = await new Server(null, ["--demo", "--active-interval-ms", "1000", "--active-ttl-ms", "3000"]).start();
    const local = new Api(demo.url);
    const pages = [];
    try {
      await until("the demo description", () => /password/.test(demo.stderr));
      const creds = [...demo.stderr.matchAll(/email (\S+)\s+password (\S+)/g)].map((m) => ({ email: m[1], password: m[2] }));
      eq(creds.length, 3, `three demo agents printed: ${demo.stderr}`);
      for (const c of creds) {
        const page = await env().browser.page();
        pages.push(page);
        await page.goto(`${demo.url}/app/`);
        await page.getByLabel("Account").fill("demo");
        await page.getByLabel("Email").fill(c.email);
        await page.getByLabel("Password").fill(c.password);
        await page.getByRole("button", { name: "Sign in" }).click();
        await page.getByRole("heading", { name: "The chat box as visitors see it" }).waitFor();
        const other = await local.login("demo", c.email, c.password, `check-${c.email}`);
        const web = await until(`a connected web session of ${c.email}`, async () => {
          const m = (await local.call("GET", "/v1/me", other)).body;
          return m.sessions.find((s) => s.device.platform === "web" && s.connected);
        });
        // Heartbeats renew the lease well past the 3 s ttl it started with, from the worker
        // that keeps a hidden tab's pace.
        await until("the heartbeat worker", () => page.workers().some((w) => w.url().endsWith("/app/beat.js")));
        const first = web.lease_until;
        await until("a renewed lease", async () => {
          const m = (await local.call("GET", "/v1/me", other)).body;
          const s = m.sessions.find((x) => x.session_id === web.session_id);
          return s && s.lease_until > first + 1500;
        }, 8000);
      }
      const alice = pages[0];
      await until("Alice's overview shows the groups", async () => (await alice.locator("[data-view]").count()) === 3);
      await alice.screenshot({ path: shotPath("dashboard-overview"), fullPage: true });
      for (const p of pages) eq(p.errors, [], "console errors");
    } finally {
      for (const p of pages) await p.closeAll();
      await demo.stop();
    }
  });

  test("dashboard: a status click reaches another device and the widget; another device's change shows within 1 s", async () => {
    const { api, site, server } = env();
    const acc = await account("dash-status");
    const bob = await agent(acc, "Bob");
    const page = await signIn(bob);
    const host = await env().browser.page();
    const stream = await deviceStream(server.url, bob.token);
    try {
      await host.goto(site.page("/dash-status.html", { widget: server.url, body: `<presence-chatbox id="w" widget-key="${acc.widgetKey}"></presence-chatbox>` }));
      await waitStatus(host, "#w", "offline");
      // The click's own time, taken in the page when the click reaches it; the other device's
      // stream notes when the event arrives (one machine, one wall clock).
      await page.evaluate(() => document.addEventListener("click", () => (window.__clickAt = Date.now()), true));
      const clicks = [];
      const statuses = ["busy", "online", "offline"];
      for (let i = 0; i < 30; i++) {
        const s = statuses[i % 3];
        await page.getByRole("button", { name: /Change status/ }).click();
        const item = page.getByRole("menuitemradio", { name: s[0].toUpperCase() + s.slice(1) });
        await item.waitFor();
        const n = stream.events.length;
        await item.click();
        const ev = await until(`the other device's stream to get ${s}`, () =>
          stream.events.slice(n).find((e) => e.event === "status" && e.data.status === s),
        );
        clicks.push(ev.wall - (await page.evaluate(() => window.__clickAt)));
        await waitStatus(host, "#w", s === "offline" ? "offline" : s, undefined, 5000);
      }
      env().measurements.dashboard_click_to_other_device_p50_ms = Math.round(pct(clicks, 50) * 10) / 10;
      env().measurements.dashboard_click_to_other_device_p99_ms = Math.round(pct(clicks, 99) * 10) / 10;
      // The other device's change shows in the page within 1 s, announced to screen readers.
      const follows = [];
      for (const s of ["busy", "online", "offline", "busy"]) {
        const t0 = Date.now();
        await api.setStatus(bob.token, s);
        await until(`the page to show ${s}`, async () => (await page.locator("#my-status").textContent()) === s[0].toUpperCase() + s.slice(1), FOLLOW_MS);
        follows.push(Date.now() - t0);
      }
      env().measurements.dashboard_other_device_to_page_max_ms = Math.max(...follows);
      await until("the change to be announced", async () => /busy on another device/.test(await page.locator("#announcer").textContent()));
      await page.getByText(/changed on Bob-phone/).waitFor();
      await page.screenshot({ path: shotPath("dashboard-status-changed-elsewhere") });
      eq(page.errors, [], "console errors");
      eq(host.errors, [], "host page errors");
    } finally {
      stream.close();
      await host.closeAll();
      await page.closeAll();
    }
  });

  test("dashboard: the CLI on another device and the page agree on the status", async () => {
    const { server } = env();
    const acc = await account("dash-cli");
    const kim = await agent(acc, "Kim");
    const dir = mkdtempSync(join(tmpdir(), "presence-cli-"));
    const page = await signIn(kim);
    try {
      const login = await cli(dir, ["--server", server.url, "login", "--account", acc.slug, "--email", kim.email, "--password-stdin"], `${kim.password}\n`);
      eq(login.code, 0, `presence login: ${login.stderr}`);
      await pickStatus(page, "Busy");
      await until("the CLI to show busy", async () => /^busy \(confirmed/.test((await cli(dir, ["status"])).stdout), 10000, 200);
      const t0 = Date.now();
      const set = await cli(dir, ["status", "online"]);
      assert(/online: confirmed/.test(set.stdout), `presence status online: ${set.stdout} ${set.stderr}`);
      await until("the page to show the CLI's online", async () => (await page.locator("#my-status").textContent()) === "Online", FOLLOW_MS + (Date.now() - t0));
      await page.getByRole("link", { name: "My devices" }).click();
      await page.getByRole("row", { name: /cli/ }).waitFor();
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("dashboard: my devices signs another device out, and its next heartbeat is refused", async () => {
    const { api } = env();
    const acc = await account("dash-devices");
    const cy = await agent(acc, "Cy");
    const page = await signIn(cy);
    try {
      await page.getByRole("link", { name: "My devices" }).click();
      await page.getByRole("heading", { name: "My devices" }).waitFor();
      const row = page.getByRole("row", { name: /Cy-phone/ });
      await row.waitFor();
      const mine = page.getByRole("row", { name: /this tab/ });
      assert(/web/.test(await mine.textContent()), "this tab is a web device");
      await until("this tab shows as connected", async () => /Yes, live/.test(await mine.textContent()));
      assert(/desktop/.test(await row.textContent()), "the other device's platform");
      await page.screenshot({ path: shotPath("dashboard-devices"), fullPage: true });
      await page.getByRole("button", { name: "Sign out Cy-phone" }).click();
      await page.getByText("Cy-phone is signed out.").waitFor();
      await until("the row to go", async () => (await page.getByRole("row", { name: /Cy-phone/ }).count()) === 0);
      const r = await fetch(`${api.url}/v1/session/heartbeat`, { method: "POST", headers: { authorization: `Bearer ${cy.token}` } });
      eq(r.status, 401, "the signed-out device's heartbeat");
      eq((await r.json()).error.code, "session_expired", "its error code");
      // Another tab of the dashboard, signed out from this one, goes back to sign-in at once.
      const tab = await signIn(cy);
      try {
        await page.getByRole("button", { name: "Refresh" }).click();
        await page.getByRole("button", { name: "Sign out Web dashboard" }).click();
        await tab.getByText("This device was signed out.").waitFor({ timeout: 5000 });
        await tab.getByRole("button", { name: "Sign in" }).waitFor();
      } finally {
        await tab.closeAll();
      }
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: an agent changes its password (errors at their fields); its other tab is told why it ended; an admin sets one", async () => {
    const { api } = env();
    const acc = await account("dash-password");
    const di = await agent(acc, "Di");
    const page = await signIn(di);
    const tab = await signIn(di);
    try {
      await page.getByRole("link", { name: "My devices" }).click();
      const form = page.getByRole("form", { name: "Change your password" });
      await form.getByLabel("Current password").fill("not-the-password");
      await form.getByLabel("New password").fill("a-longer-secret");
      await form.getByRole("button", { name: "Change password" }).click();
      await form.getByText("This is not your current password.").waitFor();
      await form.getByLabel("Current password").fill(di.password);
      await form.getByLabel("New password").fill("short");
      await form.getByRole("button", { name: "Change password" }).click();
      await form.getByText(/at least 10 characters/).last().waitFor();
      eq(await form.getByLabel("New password").getAttribute("aria-invalid"), "true", "the new password field is marked");
      await form.getByLabel("New password").fill("a-longer-secret");
      await form.getByRole("button", { name: "Change password" }).click();
      await page.getByText("Password changed. Your other devices were signed out.").waitFor();
      await tab.getByText("Your password was changed; sign in with the new one.").waitFor({ timeout: 5000 });
      await page.screenshot({ path: shotPath("dashboard-password"), fullPage: true });
      const old = await fetch(`${api.url}/v1/me`, { headers: { authorization: `Bearer ${di.token}` } });
      eq(old.status, 401, "the phone's session ended");
      eq((await old.json()).error.code, "session_expired", "its error code");
      await api.login(acc.slug, di.email, "a-longer-secret", "di-new");
      eq(page.errors.filter((e) => !/status of (401|422)/.test(e)), [], "console errors besides the refused changes");
    } finally {
      await tab.closeAll();
      await page.closeAll();
    }
    const owner = await signIn({ slug: acc.slug, email: acc.owner.email, password: acc.owner.password }, "/app/admin/agents");
    try {
      const row = owner.locator(`tr[data-agent="${di.email}"]`);
      await row.getByRole("button", { name: "Set a password for Di" }).click();
      await row.getByLabel("New password for Di").fill("reset-by-owner");
      await row.getByRole("button", { name: "Set password" }).last().click();
      await owner.getByText("Set a new password for Di; their devices were signed out.").waitFor();
      await api.login(acc.slug, di.email, "reset-by-owner", "di-after-reset");
      eq(owner.errors, [], "console errors");
    } finally {
      await owner.closeAll();
    }
  });

  test("dashboard: the owner sets token sign-in (errors at their fields), tests tokens with the reason, makes and revokes an API key", async () => {
    const { api } = env();
    const acc = await account("dash-identity");
    const owner = await signIn({ slug: acc.slug, email: acc.owner.email, password: acc.owner.password }, "/app/admin/sign-in");
    const b64 = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");
    const jwt = (claims, secret) => {
      const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
      return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
    };
    const secret = "a-shared-secret-of-at-least-32-bytes!";
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: "https://id.customer.test", aud: "presence", sub: "u-1", email: acc.owner.email, iat: now, exp: now + 600 };
    try {
      const form = owner.getByRole("form", { name: "Sign-in settings" });
      await form.getByLabel("Tokens from your sign-in (JWT)").check();
      await form.getByLabel("Issuer (iss)").fill(claims.iss);
      await form.getByLabel("Audience (aud)").fill("presence");
      await form.getByLabel("Shared secret", { exact: true }).fill("too-short");
      await form.getByRole("button", { name: "Save sign-in settings" }).click();
      await form.getByText(/32 to 1024 bytes/).waitFor();
      eq(await form.getByLabel("Shared secret", { exact: true }).getAttribute("aria-invalid"), "true", "the secret field is marked");
      await form.getByLabel("Shared secret", { exact: true }).fill(secret);
      await form.getByRole("button", { name: "Save sign-in settings" }).click();
      await owner.getByText("Sign-in settings saved.").waitFor();
      const tester = owner.getByRole("form", { name: "Test a token" });
      await tester.getByLabel("Token").fill(jwt(claims, "another-secret-of-at-least-32-bytes!!"));
      await tester.getByRole("button", { name: "Test the token" }).click();
      await tester.getByText(/Refused: .*Signature/).waitFor();
      await tester.getByLabel("Token").fill(jwt(claims, secret));
      await tester.getByRole("button", { name: "Test the token" }).click();
      await tester.getByText(/Accepted \(sub u-1\): a sign-in links the agent/).waitFor();
      await owner.screenshot({ path: shotPath("dashboard-sign-in"), fullPage: true });

      await owner.getByRole("link", { name: "API keys" }).click();
      const made = owner.getByRole("form", { name: "New API key" });
      await made.getByLabel("Name").fill("Routing service");
      await made.getByRole("button", { name: "Create key" }).click();
      const shown = owner.getByRole("region", { name: "The new key" });
      const key = (await shown.locator("code").textContent()).trim();
      assert(key.startsWith("pk_"), `a key: ${key}`);
      await owner.screenshot({ path: shotPath("dashboard-api-keys"), fullPage: true });
      const use = () => fetch(`${api.url}/v1/admin/account`, { headers: { authorization: `Bearer ${key}` } });
      eq((await use()).status, 200, "the key reads the account");
      await owner.getByRole("button", { name: "Revoke Routing service" }).click();
      await owner.getByRole("button", { name: "Yes, revoke Routing service" }).click();
      await owner.getByText("Revoked Routing service: it no longer works anywhere.").waitFor();
      eq((await use()).status, 401, "a revoked key");
      eq(owner.errors.filter((e) => !/status of 422/.test(e)), [], "console errors besides the 422");
    } finally {
      await owner.closeAll();
    }
  });

  test("dashboard: Sign out ends this device's session at once; no token in any URL, no cookie", async () => {
    const acc = await account("dash-signout");
    const di = await agent(acc, "Di");
    const page = await signIn(di);
    try {
      const web = await until("the web session", async () => (await me(di.token)).sessions.find((s) => s.device.platform === "web"));
      const token = await page.evaluate(() => sessionStorage.getItem("presence.token"));
      assert(token && token.length > 20, "the token is kept in sessionStorage");
      await page.getByRole("button", { name: /Change status/ }).click();
      await page.getByRole("menuitem", { name: "Sign out" }).click();
      await page.getByRole("button", { name: "Sign in" }).waitFor();
      const after = await me(di.token);
      assert(!after.sessions.some((s) => s.session_id === web.session_id), "the web session is gone at once");
      for (const u of page.urls) assert(!u.includes(token), `the token in a URL: ${u}`);
      eq((await page.context().cookies()).length, 0, "cookies");
      eq(await page.evaluate(() => sessionStorage.getItem("presence.token")), null, "the token is forgotten");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: a dropped device stream reconnects, and the page follows changes again", async () => {
    const { api, proxy } = env();
    const acc = await account("dash-drop");
    const jo = await agent(acc, "Jo");
    const page = await signIn(jo, "/app/", proxy.url);
    const streams = () => [...proxy.streams].filter((x) => x.res.req?.url === "/v1/me/events").length;
    try {
      await until("the page's device stream through the proxy", () => streams() === 1);
      proxy.dropStreams();
      await until("the page to reconnect", () => streams() === 1, 10000);
      await api.setStatus(jo.token, "busy");
      await until("the page to show busy after the reconnect", async () => (await page.locator("#my-status").textContent()) === "Busy");
      eq(page.errors.filter((e) => !/ERR_|network/i.test(e)), [], "console errors besides the dropped connection");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: keyboard only: open the status menu and choose busy", async () => {
    const acc = await account("dash-keys");
    const ed = await agent(acc, "Ed");
    const page = await signIn(ed);
    try {
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
      let focused = "";
      for (let i = 0; i < 10 && focused !== "status-button"; i++) {
        await page.keyboard.press("Tab");
        focused = await page.evaluate(() => document.activeElement?.id || "");
      }
      eq(focused, "status-button", "Tab reaches the status button");
      await page.keyboard.press("Enter");
      await page.getByRole("menu", { name: "Your status" }).waitFor();
      await until("focus on the first item, Online", async () => (await page.evaluate(() => document.activeElement?.textContent)) === "Online");
      eq(await page.getByRole("menuitemradio", { name: "Offline" }).getAttribute("aria-checked"), "true", "the current status is checked");
      await page.keyboard.press("ArrowDown");
      await until("ArrowDown to move to Busy", async () => (await page.evaluate(() => document.activeElement?.textContent)) === "Busy");
      await page.keyboard.press("Enter");
      await until("Ed is busy", async () => (await me(ed.token)).status.status === "busy");
      await until("the menu to close", async () => (await page.getByRole("menu").count()) === 0);
      await until("focus back on the button", async () => (await page.evaluate(() => document.activeElement?.id)) === "status-button");
      // Type-ahead: "o" moves to the next item starting with o (Offline after Online).
      await page.keyboard.press("Enter");
      await page.getByRole("menu").waitFor();
      await page.keyboard.press("o");
      await until("o to move to Offline", async () => (await page.evaluate(() => document.activeElement?.textContent)) === "Offline");
      await page.keyboard.press("Escape");
      // Escape closes without a change.
      await page.keyboard.press("ArrowDown");
      await page.getByRole("menu").waitFor();
      await page.keyboard.press("Escape");
      await until("Escape to close the menu", async () => (await page.getByRole("menu").count()) === 0);
      eq((await me(ed.token)).status.status, "busy", "still busy");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: an agent opening an admin page sees a refusal, not an empty form", async () => {
    const { api, server } = env();
    const acc = await account("dash-refuse");
    const fay = await agent(acc, "Fay");
    const page = await signIn(fay);
    try {
      eq(await page.getByRole("link", { name: "Agents" }).count(), 0, "no admin links for an agent");
      eq(await page.getByRole("link", { name: "Webhooks" }).count(), 0, "no Webhooks link for an agent");
      for (const [path, title] of [
        ["/app/admin/agents", "Agents"],
        ["/app/admin/webhooks", "Webhooks"],
        ["/app/admin/hours", "Opening hours"],
        ["/app/admin/settings", "Settings"],
      ]) {
        await page.goto(`${server.url}${path}`);
        await page.getByRole("alert").filter({ hasText: "you do not have permission to open this page" }).waitFor();
        await page.getByRole("heading", { name: `${title}: not allowed` }).waitFor();
        eq(await page.locator("form").count(), 0, `no form on ${path}`);
      }
      await page.screenshot({ path: shotPath("dashboard-refusal") });
      assert(!page.urls.some((u) => u.endsWith("/app/admin.js")), "an agent's page never loads the administration script");
      const r = await fetch(`${api.url}/v1/admin/account`, { headers: { authorization: `Bearer ${fay.token}` } });
      eq(r.status, 403, "the API refuses the agent too");
      const w = await fetch(`${api.url}/v1/admin/webhooks`, { headers: { authorization: `Bearer ${fay.token}` } });
      eq(w.status, 403, "and its webhooks");
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: admin adds an agent with groups, sets hours with an exception, the busy message, everyone offline; the widget shows each", async () => {
    const { api, site, server } = env();
    const acc = await account("dash-admin");
    const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
    const page = await signIn(owner);
    const host = await env().browser.page();
    try {
      // Groups.
      await page.getByRole("link", { name: "Groups" }).click();
      await page.getByRole("heading", { name: "Groups", level: 1 }).waitFor();
      for (const [i, key, name] of [[1, "sales", "Sales"], [2, "support", "Support"]]) {
        await page.getByRole("button", { name: "Add a group" }).click();
        await page.getByLabel(`Group ${i} key`).fill(key);
        await page.getByLabel(`Group ${i} name`).fill(name);
      }
      await page.getByRole("button", { name: "Save groups" }).click();
      await page.getByText("Groups saved.").waitFor();
      await host.goto(
        site.page("/dash-admin.html", {
          widget: server.url,
          body:
            `<presence-chatbox id="all" widget-key="${acc.widgetKey}"></presence-chatbox>` +
            `<presence-chatbox id="sales" widget-key="${acc.widgetKey}" group="sales"></presence-chatbox>` +
            `<presence-chatbox id="support" widget-key="${acc.widgetKey}" group="support"></presence-chatbox>`,
        }),
      );
      await waitStatus(host, "#sales", "offline");
      // Add an agent in sales.
      await page.getByRole("link", { name: "Agents" }).click();
      await page.getByRole("heading", { name: "Add an agent" }).waitFor();
      const form = page.getByRole("form", { name: "Add an agent" });
      await form.getByLabel("Name").fill("Gil Sales");
      await form.getByLabel("Email").fill(`gil@${acc.slug}.test`);
      await form.getByLabel("Password").fill("gil-pass-123");
      await form.getByLabel("Sales").check();
      await form.getByRole("button", { name: "Add agent" }).click();
      await page.getByText("Added Gil Sales.").waitFor();
      const gilRow = page.getByRole("row", { name: /Gil Sales/ });
      await gilRow.waitFor();
      assert(/Sales/.test(await gilRow.textContent()), "Gil's row shows the group");
      await page.screenshot({ path: shotPath("dashboard-agents"), fullPage: true });
      const added = (await api.call("GET", "/v1/admin/account", acc.owner.token)).body.agents.find((a) => a.name === "Gil Sales");
      eq(added.groups, ["sales"], "the new agent's groups on the server");
      const gil = await api.login(acc.slug, `gil@${acc.slug}.test`, "gil-pass-123", "gil-laptop");
      await api.setStatus(gil, "online");
      await waitStatus(host, "#sales", "online", "agents_online");
      eq((await read(host, "#support")).status, "offline", "support does not count Gil");
      // The busy message.
      await page.getByRole("link", { name: "Settings" }).click();
      await page.getByLabel("Busy message").fill("Back in ten minutes");
      await page.getByRole("button", { name: "Save settings" }).click();
      await page.getByText("Settings saved.").waitFor();
      await api.setStatus(gil, "busy");
      await waitStatus(host, "#sales", "busy", "agents_busy");
      await until("the busy message in the widget", async () => (await read(host, "#sales")).text.includes("Back in ten minutes"));
      await page.screenshot({ path: shotPath("dashboard-settings"), fullPage: true });
      // Opening hours: open every day around the clock, a range crossing midnight, and today
      // closed by an exception.
      await page.getByRole("link", { name: "Opening hours" }).click();
      await page.getByRole("heading", { name: "Every week" }).waitFor();
      await page.getByLabel("Use opening hours").check();
      await page.getByLabel("Time zone").selectOption("UTC");
      for (const d of ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]) {
        await page.getByRole("button", { name: `Add a range to ${d}` }).click();
        await page.getByLabel(`${d} range 1 opens`).fill("00:00");
        await page.getByLabel(`${d} range 1 closes`).fill("24:00");
      }
      // The crossing range starts today, so today's exception replaces it and it spills only
      // into tomorrow, which is open anyway.
      const [dayKey, dayName] = [["sun", "Sunday"], ["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"]][new Date().getUTCDay()];
      await page.getByRole("button", { name: `Add a range to ${dayName}` }).click();
      await page.getByLabel(`${dayName} range 2 opens`).fill("22:00");
      await page.getByLabel(`${dayName} range 2 closes`).fill("06:00");
      await page.getByText("(until the next day)").waitFor();
      await page.getByRole("button", { name: "Add an exception" }).click();
      const today = new Date().toISOString().slice(0, 10);
      eq(await page.getByLabel("Exception 1 date").inputValue(), today, "a new exception starts today (UTC)");
      await page.getByRole("button", { name: "Save opening hours" }).click();
      await page.getByText("Opening hours saved.").waitFor();
      await waitStatus(host, "#all", "offline", "outside_opening_hours");
      await waitStatus(host, "#sales", "offline", "outside_opening_hours");
      const stored = (await api.call("GET", "/v1/admin/account", acc.owner.token)).body.opening_hours;
      eq(stored.exceptions, [{ date: today, ranges: [] }], "the stored exception");
      eq(stored.days[dayKey], [["00:00", "24:00"], ["22:00", "06:00"]], `${dayName}'s ranges, one crossing midnight`);
      const bar = page.locator(`[data-date="${today}"] [role=img]`);
      assert(/exception: closed/.test(await bar.getAttribute("aria-label")), `today's timeline: ${await bar.getAttribute("aria-label")}`);
      await page.screenshot({ path: shotPath("dashboard-hours"), fullPage: true });
      // The overview says why, in words.
      await page.getByRole("link", { name: "Chat box" }).click();
      await page.getByText(/Offline because it is outside opening hours; opens at 00:00 tomorrow/).first().waitFor();
      // Opening hours off again, then everyone offline in one action.
      await page.getByRole("link", { name: "Opening hours" }).click();
      await page.getByLabel("Use opening hours").uncheck();
      await page.getByRole("button", { name: "Save opening hours" }).click();
      await page.getByText("Opening hours saved.").waitFor();
      await waitStatus(host, "#sales", "busy");
      await page.getByRole("link", { name: "Agents" }).click();
      // One agent's status, set by the admin.
      await page.getByLabel("Status for Gil Sales").selectOption("online");
      await page.getByRole("button", { name: "Set status of Gil Sales" }).click();
      await page.getByText("Gil Sales is now online.").waitFor();
      await waitStatus(host, "#sales", "online", "agents_online");
      await page.getByRole("button", { name: "Everyone offline" }).click();
      await page.getByText(/Everyone is offline now/).waitFor();
      await waitStatus(host, "#sales", "offline", "no_agents_online");
      eq((await me(gil)).status.status, "offline", "Gil's own devices see offline");
      // Change an agent's name, role and groups, then remove them.
      await page.getByRole("button", { name: "Edit Gil Sales" }).click();
      const edit = page.getByRole("form", { name: "Edit Gil Sales" });
      await edit.getByLabel("Name").fill("Gil Support");
      await edit.getByLabel("Role").selectOption("admin");
      await edit.getByLabel("Sales").uncheck();
      await edit.getByLabel("Support").check();
      await edit.getByRole("button", { name: "Save Gil Sales" }).click();
      await page.getByText("Saved Gil Support.").waitFor();
      const patched = (await api.call("GET", "/v1/admin/account", acc.owner.token)).body.agents.find((a) => a.id === added.id);
      eq([patched.name, patched.role, patched.groups], ["Gil Support", "admin", ["support"]], "the patched agent");
      // Gil has the dashboard open when removed: it returns to sign-in and says why.
      const gilPage = await signIn({ slug: acc.slug, email: `gil@${acc.slug}.test`, password: "gil-pass-123" });
      await page.getByRole("button", { name: "Remove Gil Support" }).click();
      await page.getByRole("button", { name: "Yes, remove Gil Support" }).click();
      await page.getByText("Removed Gil Support.").waitFor();
      await gilPage.getByText("Your agent account was removed.").waitFor({ timeout: 5000 });
      await gilPage.closeAll();
      await until("Gil's row to go", async () => (await page.getByRole("row", { name: /Gil Support/ }).count()) === 0);
      // The embed page: the snippet and a live preview of the widget.
      await page.getByRole("link", { name: "Embed" }).click();
      const snippet = await page.locator("#snippet").textContent();
      assert(snippet.includes(`data-widget-key="${acc.widgetKey}"`) && snippet.includes(`${server.url}/widget.js`), `snippet: ${snippet}`);
      await page.getByLabel("Chat box for").selectOption("sales");
      await until("the group in the snippet", async () => (await page.locator("#snippet").textContent()).includes('data-group="sales"'));
      await waitStatus(page, "#preview-chatbox", "offline");
      await page.getByRole("button", { name: "Copy snippet" }).click();
      await page.getByText(/Copied the snippet|The snippet is selected/).waitFor();
      await page.screenshot({ path: shotPath("dashboard-embed"), fullPage: true });
      eq(page.errors, [], "console errors");
      eq(host.errors, [], "host page errors");
    } finally {
      await host.closeAll();
      await page.closeAll();
    }
  });

  test("dashboard: 422 errors appear next to their fields and the form keeps its content", async () => {
    const acc = await account("dash-422");
    const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
    const page = await signIn(owner, "/app/admin/settings");
    try {
      // Settings: a busy message over 280 characters.
      const long = "x".repeat(300);
      await page.getByLabel("Offline message").fill("We answer by email");
      await page.getByLabel("Busy message").fill(long);
      await page.getByRole("button", { name: "Save settings" }).click();
      const busy = page.getByLabel("Busy message");
      await until("busy message marked invalid", async () => (await busy.getAttribute("aria-invalid")) === "true");
      const described = (await busy.getAttribute("aria-describedby")) || "";
      const err = page.locator(`[id="${described.split(" ")[0]}"]`);
      eq(await err.textContent(), "busy_message: must be at most 280 characters", "the server's error next to the field");
      eq(await busy.inputValue(), long, "the busy message keeps what was typed");
      eq(await page.getByLabel("Offline message").inputValue(), "We answer by email", "the other field keeps its content");
      assert((await page.getByLabel("Offline message").getAttribute("aria-invalid")) !== "true", "only the named field is invalid");
      // Timings: an active lease shorter than twice the interval.
      await page.getByLabel("Busy message").fill("Soon back");
      await page.getByLabel("Active lease (ms)").fill("1500");
      await page.getByRole("button", { name: "Save settings" }).click();
      const ttl = page.getByLabel("Active lease (ms)");
      await until("active lease marked invalid", async () => (await ttl.getAttribute("aria-invalid")) === "true");
      await page.getByText("must be at least twice active_interval_ms").waitFor();
      eq(await ttl.inputValue(), "1500", "the timing keeps what was typed");
      await page.screenshot({ path: shotPath("dashboard-field-error") });
      // Agents: a bad email.
      await page.getByRole("link", { name: "Agents" }).click();
      const form = page.getByRole("form", { name: "Add an agent" });
      await form.getByLabel("Name").fill("Hal");
      await form.getByLabel("Email").fill("not-an-email");
      await form.getByLabel("Password").fill("hal-pass-123");
      await form.getByRole("button", { name: "Add agent" }).click();
      const email = form.getByLabel("Email");
      await until("email marked invalid", async () => (await email.getAttribute("aria-invalid")) === "true");
      await form.getByText("email: not an email address").waitFor();
      eq([await form.getByLabel("Name").inputValue(), await email.inputValue()], ["Hal", "not-an-email"], "the form keeps its content");
      // Groups: two with one key.
      await page.getByRole("link", { name: "Groups" }).click();
      for (const i of [1, 2]) {
        await page.getByRole("button", { name: "Add a group" }).click();
        await page.getByLabel(`Group ${i} key`).fill("sales");
        await page.getByLabel(`Group ${i} name`).fill(`Sales ${i}`);
      }
      await page.getByRole("button", { name: "Save groups" }).click();
      const key2 = page.getByLabel("Group 2 key");
      await until("the second key marked invalid", async () => (await key2.getAttribute("aria-invalid")) === "true");
      await page.getByText('[1].key: duplicate key "sales"').waitFor();
      eq(await page.getByLabel("Group 2 name").inputValue(), "Sales 2", "the group rows keep their content");
      // Opening hours: a time that does not exist.
      await page.getByRole("link", { name: "Opening hours" }).click();
      await page.getByRole("button", { name: "Add a range to Tuesday" }).click();
      await page.getByLabel("Tuesday range 1 closes").fill("25:00");
      await page.getByRole("button", { name: "Save opening hours" }).click();
      const close = page.getByLabel("Tuesday range 1 closes");
      await until("the end time marked invalid", async () => (await close.getAttribute("aria-invalid")) === "true");
      await page.getByText(/expected an end time/).waitFor();
      eq(await close.inputValue(), "25:00", "the range keeps what was typed");
      eq(page.errors.filter((e) => !/status of 422/.test(e)), [], "console errors besides the 422 answers");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: each page has its own address; reload keeps the session, the back button works", async () => {
    const { server } = env();
    const acc = await account("dash-nav");
    const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
    const page = await signIn(owner, "/app/admin/hours");
    try {
      await page.getByRole("heading", { name: "Opening hours", level: 1 }).waitFor();
      eq(new URL(page.url()).pathname, "/app/admin/hours", "the address asked for");
      await page.getByRole("link", { name: "Settings" }).click();
      await page.getByRole("heading", { name: "Settings", level: 1 }).waitFor();
      eq(new URL(page.url()).pathname, "/app/admin/settings", "the settings address");
      await page.goBack();
      await page.getByRole("heading", { name: "Opening hours", level: 1 }).waitFor();
      await page.reload();
      await page.getByRole("heading", { name: "Opening hours", level: 1 }).waitFor();
      await page.goto(`${server.url}/app/no-such-page`);
      await page.getByRole("heading", { name: "Page not found" }).waitFor();
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: an accessibility audit (axe-core) finds no serious or critical violations on any page", async () => {
    const { browser, server } = env();
    const acc = await account("dash-axe");
    await env().api.call("PUT", "/v1/admin/groups", acc.owner.token, [{ key: "sales", name: "Sales" }]);
    await env().api.call("PUT", "/v1/admin/custom-statuses", acc.owner.token, [
      { id: "lunch", label: "Lunch", emoji: "☕", base: "busy", default_duration_ms: 3600000 },
      { id: "training", label: "Training", emoji: "✎", base: "offline", default_duration_ms: null },
    ]);
    const ivy = await agent(acc, "Ivy", ["sales"]);
    const login = await browser.page();
    try {
      await login.goto(`${server.url}/app/`);
      await login.getByRole("button", { name: "Sign in" }).waitFor();
      await audit(login, "the sign-in page");
      await login.screenshot({ path: shotPath("dashboard-sign-in") });
    } finally {
      await login.closeAll();
    }
    const owner = await signIn({ slug: acc.slug, email: acc.owner.email, password: acc.owner.password });
    try {
      for (const [path, heading] of [
        ["/app/", "Chat box"],
        ["/app/devices", "My devices"],
        ["/app/log", "My status log"],
        ["/app/history", "My timeline"],
        ["/app/admin/team", "Team"],
        ["/app/admin/reports", "Reports"],
        ["/app/admin/agents", "Agents"],
        ["/app/admin/statuses", "Custom statuses"],
        ["/app/admin/groups", "Groups"],
        ["/app/admin/hours", "Opening hours"],
        ["/app/admin/settings", "Settings"],
        ["/app/admin/embed", "Embed"],
        ["/app/admin/sign-in", "Sign-in"],
        ["/app/admin/api-keys", "API keys"],
        ["/app/admin/webhooks", "Webhooks"],
      ]) {
        await owner.goto(`${server.url}${path}`);
        await owner.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await owner.locator("main p", { hasText: "Loading…" }).waitFor({ state: "detached" });
        // The history pages: with their charts and tables drawn.
        const drawn = { "/app/history": "#today-totals", "/app/admin/team": "table.team tbody tr", "/app/admin/reports": "svg.columns" }[path];
        if (drawn) await owner.locator(drawn).first().waitFor();
        await audit(owner, path);
      }
      await owner.getByRole("button", { name: /Change status/ }).click();
      await owner.getByRole("menu").waitFor();
      await owner.getByRole("menuitemradio", { name: /Lunch/ }).waitFor();
      await audit(owner, "the open status menu");
      await owner.screenshot({ path: shotPath("dashboard-status-menu") });
      await owner.getByRole("menuitem", { name: "Set a status with a note…" }).click();
      await owner.getByRole("dialog", { name: "Set your status" }).waitFor();
      await audit(owner, "the set-status dialog");
      await owner.keyboard.press("Escape");
      await owner.getByRole("dialog").waitFor({ state: "hidden" });
    } finally {
      await owner.closeAll();
    }
    const agentPage = await signIn(ivy, "/app/admin/agents");
    try {
      await agentPage.getByRole("alert").filter({ hasText: "you do not have permission" }).waitFor();
      await audit(agentPage, "the refusal");
    } finally {
      await agentPage.closeAll();
    }
  });

  /** An agent with no session of its own (the page is its only device). */
  async function loneAgent(acc, name, role = "agent") {
    const email = `${name.toLowerCase()}@${acc.slug}.test`;
    const password = `${name.toLowerCase()}-pass-123`;
    const r = await env().api.call("POST", "/v1/admin/agents", acc.owner.token, { name, email, password, groups: [], role });
    return { id: r.body.id, slug: acc.slug, email, password };
  }

  const chip = (page) => page.locator("#my-status-detail").textContent();

  test("dashboard: a timed busy counts down in the chip and reverts at its end with cause timer", async () => {
    const acc = await account("dash-timed");
    const lu = await agent(acc, "Lu");
    const page = await signIn(lu);
    const puts = [];
    page.on("request", (r) => r.url().endsWith("/v1/me/status") && r.method() === "PUT" && puts.push(r.postDataJSON()));
    try {
      // From the menu: busy for 15 minutes.
      await pickStatus(page, "Online");
      await until("online", async () => (await me(lu.token)).status.status === "online");
      await page.getByRole("button", { name: /Change status/ }).click();
      await page.getByRole("menuitem", { name: "Busy for 15 min" }).click();
      const st = await until("a timed busy on the server", async () => {
        const s = (await me(lu.token)).status;
        return s.status === "busy" && s.until && s;
      });
      eq(st.until - st.intent_at, 900000, "15 minutes from the change");
      eq(puts.at(-1).duration_ms, 900000, "the PUT's duration_ms");
      await until("the chip to say 15 min left, then online", async () => /15 min left · then online/.test(await chip(page)));
      // Another device: busy for 4 s. The chip counts down live, then the timer ends it.
      await env().api.call("PUT", "/v1/me/status", lu.token, { status: "busy", op_id: crypto.randomUUID(), duration_ms: 4000, then: "online" });
      const first = await until("seconds left in the chip", async () => Number((/(\d+) s left/.exec(await chip(page)) || [])[1]));
      await page.screenshot({ path: shotPath("dashboard-timed-status") });
      await until("the chip to count down", async () => {
        const n = Number((/(\d+) s left/.exec(await chip(page)) || [])[1]);
        return n && n < first;
      });
      await until("the timer to end the busy", async () => (await page.locator("#my-status").textContent()) === "Online", 10000);
      eq(await chip(page), "timer ended", "the chip says why");
      const after = (await me(lu.token)).status;
      eq([after.status, after.cause, after.until], ["online", "timer", null], "the status after the timer");
      await until("the chat box page to say why", async () => (await page.locator("#overview-detail").textContent()) === "Timer ended");
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: busy until a chosen time with then and a note; a note over 100 characters shows its error", async () => {
    const acc = await account("dash-until");
    const mo = await agent(acc, "Mo");
    const page = await signIn(mo);
    try {
      await page.getByRole("button", { name: /Change status/ }).click();
      await page.getByRole("menuitem", { name: "Busy until a time…" }).click();
      const dialog = page.getByRole("dialog", { name: "Set your status" });
      await dialog.waitFor();
      const at = new Date(Date.now() + 3 * 60000);
      const hhmm = at.toISOString().slice(11, 16); // the page runs in UTC
      await dialog.getByLabel("Until (time)").fill(hhmm);
      await dialog.getByLabel("Then").selectOption("offline");
      const long = "n".repeat(101);
      await dialog.getByLabel("Note for your teammates").fill(long);
      await dialog.getByText("101/100 characters").waitFor();
      await dialog.getByRole("button", { name: "Set status" }).click();
      const note = dialog.getByLabel("Note for your teammates");
      await until("the note marked invalid", async () => (await note.getAttribute("aria-invalid")) === "true");
      await dialog.getByText("note: at most 100 characters").waitFor();
      eq(await note.inputValue(), long, "the note keeps what was typed");
      eq(await dialog.getByLabel("Until (time)").inputValue(), hhmm, "the time is kept");
      await page.screenshot({ path: shotPath("dashboard-set-status") });
      await note.fill("In the quarterly review");
      await dialog.getByRole("button", { name: "Set status" }).click();
      await dialog.waitFor({ state: "hidden" });
      const st = await until("the timed busy", async () => {
        const s = (await me(mo.token)).status;
        return s.status === "busy" && s.until && s;
      });
      const want = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate(), at.getUTCHours(), at.getUTCMinutes());
      assert(Math.abs(st.until - want) < 2000, `until ${st.until} is the chosen ${hhmm} (${want})`);
      eq([st.then, st.note, st.cause], ["offline", "In the quarterly review", "manual"], "then, note and cause");
      await until("the chip's then", async () => /min left · then offline/.test(await chip(page)));
      await page.getByText("Note: In the quarterly review").waitFor();
      eq(page.errors.filter((e) => !/status of 422/.test(e)), [], "console errors besides the 422");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: admin adds, edits and removes custom statuses (a bad id shown at its field); agents pick one from the menu", async () => {
    const acc = await account("dash-custom");
    const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
    const nia = await agent(acc, "Nia");
    const page = await signIn(owner, "/app/admin/statuses");
    const agentPage = await signIn(nia);
    try {
      await page.getByRole("heading", { name: "Custom statuses", level: 1 }).waitFor();
      await page.getByRole("button", { name: "Add a custom status" }).click();
      await page.getByLabel("Status 1 label").fill("Lunch");
      await page.getByLabel("Status 1 emoji").fill("☕");
      await page.getByLabel("Status 1 id").fill("lunch");
      await page.getByLabel("Status 1 base").selectOption("busy");
      await page.getByLabel("Status 1 default duration (minutes)").fill("60");
      await page.getByRole("button", { name: "Add a custom status" }).click();
      await page.getByLabel("Status 2 label").fill("In a meeting");
      await page.getByLabel("Status 2 id").fill("In Meeting");
      await page.getByRole("button", { name: "Save custom statuses" }).click();
      const id2 = page.getByLabel("Status 2 id");
      await until("the bad id marked invalid", async () => (await id2.getAttribute("aria-invalid")) === "true");
      await page.getByText(/^\[1\]\.id: lowercase letters/).waitFor();
      eq(await page.getByLabel("Status 2 label").inputValue(), "In a meeting", "the rows keep their content");
      await page.screenshot({ path: shotPath("dashboard-custom-status-error"), fullPage: true });
      await id2.fill("meeting");
      await page.getByRole("button", { name: "Save custom statuses" }).click();
      await page.getByText("Custom statuses saved.").waitFor();
      const list = async () => (await env().api.call("GET", "/v1/admin/account", acc.owner.token)).body.custom_statuses;
      eq(await list(), [
        { id: "lunch", label: "Lunch", emoji: "☕", base: "busy", default_duration_ms: 3600000 },
        { id: "meeting", label: "In a meeting", emoji: null, base: "busy", default_duration_ms: null },
      ], "the saved set");
      await page.screenshot({ path: shotPath("dashboard-custom-statuses"), fullPage: true });
      // The agent's menu lists them; choosing one applies its default duration.
      await agentPage.getByRole("button", { name: /Change status/ }).click();
      const lunch = agentPage.getByRole("menuitemradio", { name: /☕ Lunch/ });
      await lunch.waitFor();
      await agentPage.screenshot({ path: shotPath("dashboard-status-menu-custom") });
      await lunch.click();
      const st = await until("the custom status on the server", async () => {
        const s = (await me(nia.token)).status;
        return s.custom_status === "lunch" && s;
      });
      eq([st.status, st.until - st.intent_at], ["busy", 3600000], "its base status and default duration");
      await until("the chip to name it", async () => /☕ Lunch · 1 h left/.test(await chip(agentPage)));
      // Edit one, remove the other.
      await page.getByLabel("Status 1 label").fill("Long lunch");
      await page.getByRole("button", { name: "Remove custom status 2" }).click();
      await page.getByRole("button", { name: "Save custom statuses" }).click();
      await page.getByText("Custom statuses saved.").waitFor();
      eq((await list()).map((c) => [c.id, c.label]), [["lunch", "Long lunch"]], "edited and removed");
      eq(page.errors.filter((e) => !/status of 422/.test(e)), [], "console errors besides the 422");
      eq(agentPage.errors, [], "the agent's console errors");
    } finally {
      await agentPage.closeAll();
      await page.closeAll();
    }
  });

  test("dashboard: admin sets an agent busy for 30 min with a note; the agent's chip says set by an admin", async () => {
    const acc = await account("dash-admin-timed");
    const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
    const oz = await agent(acc, "Oz");
    const page = await signIn(owner, "/app/admin/agents");
    const ozPage = await signIn(oz);
    try {
      await page.getByLabel("Status for Oz").selectOption("busy");
      await page.getByLabel("How long for Oz").selectOption({ label: "30 min" });
      await page.getByLabel("Note for Oz").fill("x".repeat(120));
      await page.getByRole("button", { name: "Set status of Oz" }).click();
      const noteField = page.getByLabel("Note for Oz");
      await until("the admin's note marked invalid", async () => (await noteField.getAttribute("aria-invalid")) === "true");
      await page.getByText("note: at most 100 characters").waitFor();
      await noteField.fill("Covering the phones");
      await page.getByRole("button", { name: "Set status of Oz" }).click();
      await page.getByText("Oz is now busy for 30 min.").waitFor();
      const st = (await me(oz.token)).status;
      eq([st.status, st.cause, st.note, st.until - st.intent_at], ["busy", "admin", "Covering the phones", 1800000], "the admin's change");
      assert(st.changed_by_agent, "changed_by_agent names the admin");
      await until("Oz's chip", async () => /30 min left · then offline · set by an admin/.test(await chip(ozPage)));
      await ozPage.getByText("Note: Covering the phones").waitFor();
      eq(ozPage.errors, [], "console errors");
    } finally {
      await ozPage.closeAll();
      await page.closeAll();
    }
  });

  test("dashboard: automatic away settings are saved, with the server's error at the field", async () => {
    const acc = await account("dash-idle-settings");
    const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
    const page = await signIn(owner, "/app/admin/settings");
    try {
      const after = page.getByLabel("Away after (minutes idle; empty: off)");
      await after.fill("0.001");
      await page.getByRole("button", { name: "Save settings" }).click();
      await until("the idle time marked invalid", async () => (await after.getAttribute("aria-invalid")) === "true");
      await page.getByText(/^idle_after_ms: must be null \(off\) or between 1000 and 86400000/).waitFor();
      await after.fill("5");
      await page.getByLabel("Away status").selectOption("offline");
      await page.getByLabel("Back to the status before on activity").uncheck();
      await page.getByRole("button", { name: "Save settings" }).click();
      await page.getByText("Settings saved.").waitFor();
      const s = (await env().api.call("GET", "/v1/admin/account", acc.owner.token)).body.settings;
      eq([s.idle_after_ms, s.idle_status, s.return_on_activity], [300000, "offline", false], "the idle settings on the server");
      await page.locator('section[aria-labelledby="idle-h"]').screenshot({ path: shotPath("dashboard-automatic-away") });
      await page.reload();
      await until("the saved minutes shown", async () => (await page.getByLabel("Away after (minutes idle; empty: off)").inputValue()) === "5");
      await after.fill("");
      await page.getByRole("button", { name: "Save settings" }).click();
      await page.getByText("Settings saved.").waitFor();
      eq((await env().api.call("GET", "/v1/admin/account", acc.owner.token)).body.settings.idle_after_ms, null, "empty turns it off");
      eq(page.errors.filter((e) => !/status of 422/.test(e)), [], "console errors besides the 422");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: heartbeats report idle_ms; a hidden tab goes idle (busy, cause idle) and is back on activity", async () => {
    const { api } = env();
    const acc = await account("dash-idle");
    await api.call("PUT", "/v1/admin/settings", acc.owner.token, { active_interval_ms: 500, active_ttl_ms: 5000, idle_after_ms: 3000, idle_status: "busy", return_on_activity: true });
    const pia = await loneAgent(acc, "Pia");
    const page = await signIn(pia);
    const beats = [];
    page.context().on("request", (r) => r.url().endsWith("/v1/session/heartbeat") && beats.push({ t: Date.now(), body: r.postDataJSON() }));
    try {
      await pickStatus(page, "Online");
      await until("heartbeats with idle_ms", () => beats.some((b) => typeof b.body?.idle_ms === "number"), 5000);
      // Input keeps idle_ms small.
      for (let i = 0; i < 4; i++) {
        await page.mouse.move(100 + i * 40, 200);
        const n = beats.length;
        await until("the next heartbeat", () => beats.length > n, 5000);
      }
      assert(beats.at(-1).body.idle_ms < 3000, `idle_ms after input: ${JSON.stringify(beats.at(-1))}`);
      // Hidden: no input reaches the tab; its idle time grows until the server sets it away.
      await page.evaluate(() => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await until("a heartbeat reporting 3 s idle", () => beats.some((b) => b.body?.idle_ms >= 3000), 10000);
      const web = await until("the web session's idle_ms in /v1/me", async () => {
        const r = await fetch(`${api.url}/v1/me`, { headers: { authorization: `Bearer ${await page.evaluate(() => sessionStorage.getItem("presence.token"))}` } });
        const s = (await r.json()).sessions.find((x) => x.device.platform === "web");
        return s && s.idle_ms >= 3000 && s;
      }, 10000);
      assert(web.idle_ms >= 3000, "reported idle");
      await until("the page to show busy, away: idle", async () => (await page.locator("#my-status").textContent()) === "Busy" && /away: idle/.test(await chip(page)), 10000);
      await page.screenshot({ path: shotPath("dashboard-idle") });
      // Shown again and touched: the status before comes back, cause return.
      await page.evaluate(() => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => false });
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await page.mouse.move(300, 300);
      await until("the page to show online, back from idle", async () => (await page.locator("#my-status").textContent()) === "Online" && /back from idle/.test(await chip(page)), 10000);
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: input in one dashboard tab counts for every tab of the browser; a hidden tab alone grows idle", async () => {
    const { api } = env();
    const acc = await account("dash-idle-tabs");
    await api.call("PUT", "/v1/admin/settings", acc.owner.token, { active_interval_ms: 500, active_ttl_ms: 5000 });
    const rae = await loneAgent(acc, "Rae");
    const a = await signIn(rae);
    // A second tab of the same browser (its own device: one device id per tab).
    const b = await a.context().newPage();
    b.errors = [];
    b.on("console", (m) => m.type() === "error" && b.errors.push(m.text()));
    b.on("pageerror", (e) => b.errors.push(e.message));
    try {
      await b.goto(`${env().server.url}/app/`);
      await b.getByLabel("Account").fill(rae.slug);
      await b.getByLabel("Email").fill(rae.email);
      await b.getByLabel("Password").fill(rae.password);
      await b.getByRole("button", { name: "Sign in" }).click();
      await b.getByRole("button", { name: /Change status/ }).waitFor();
      const tokenA = await a.evaluate(() => sessionStorage.getItem("presence.token"));
      const beatsA = [];
      a.context().on("request", (r) => {
        if (r.url().endsWith("/v1/session/heartbeat") && r.headers().authorization === `Bearer ${tokenA}`) beatsA.push({ t: Date.now(), idle: r.postDataJSON().idle_ms });
      });
      await a.evaluate(() => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      // Nobody touches either tab: the hidden tab's idle time grows past 2 s.
      await until("tab A to report 2 s idle", () => beatsA.some((x) => x.idle >= 2000), 10000);
      // Input in tab B (the pointer kept moving there): tab A, still hidden, reports it.
      const since = Date.now();
      const hit = await until("tab A to report tab B's input", async () => {
        await b.mouse.move(50 + Math.round(Math.random() * 200), 150);
        return beatsA.find((x) => x.t > since && x.idle < 1500);
      }, 10000, 200);
      assert(await a.evaluate(() => document.hidden), `tab A is still hidden when it reports ${hit.idle} ms idle`);
      eq([...a.errors, ...b.errors], [], "console errors");
    } finally {
      await a.closeAll();
    }
  });

  test("dashboard: my status log lists every change newest first, with cause, note, until and by whom, paged", async () => {
    const { api } = env();
    const acc = await account("dash-log");
    const qi = await agent(acc, "Qi");
    const page = await signIn(qi);
    try {
      await pickStatus(page, "Online");
      await until("online", async () => (await me(qi.token)).status.status === "online");
      // Each change a millisecond after the one before: changes within one millisecond are
      // ordered by op id, and a random one may lose (then it is not in the log).
      const base = Date.now();
      for (let i = 0; i < 52; i++) {
        await api.call("PUT", "/v1/me/status", qi.token, { status: i % 2 ? "online" : "busy", op_id: crypto.randomUUID(), intent_at: base + i });
      }
      await api.call("PUT", "/v1/me/status", qi.token, { status: "busy", op_id: crypto.randomUUID(), intent_at: base + 52, duration_ms: 3600000, note: "Writing the report" });
      const qiId = (await me(qi.token)).agent.id;
      await api.call("PUT", `/v1/admin/agents/${qiId}/status`, acc.owner.token, { status: "offline" });
      await until("the page to follow", async () => (await page.locator("#my-status").textContent()) === "Offline");
      await page.getByRole("button", { name: /Change status/ }).click();
      await page.getByRole("menuitem", { name: "My status log" }).click();
      await page.getByRole("heading", { name: "My status log", level: 1 }).waitFor();
      const rows = page.locator("tbody tr");
      await until("the first page of 50", async () => (await rows.count()) === 50);
      const first = await rows.nth(0).textContent();
      assert(/Offline/.test(first) && /set by an admin/.test(first) && /an admin/.test(first), `newest entry: ${first}`);
      const second = await rows.nth(1).textContent();
      assert(/Busy/.test(second) && /Writing the report/.test(second) && /Qi-phone/.test(second) && /chosen/.test(second), `second entry: ${second}`);
      await page.screenshot({ path: shotPath("dashboard-status-log") });
      await page.getByRole("button", { name: "Older entries" }).click();
      const stored = (await api.call("GET", "/v1/me/status-log?limit=500", qi.token)).body.entries.length;
      const total = await until("the older entries", async () => {
        const n = await rows.count();
        return n === stored && n;
      });
      const versions = await rows.evaluateAll((xs) => xs.map((x) => Number(x.dataset.version)));
      eq(versions, [...versions].sort((a, b) => b - a), "newest first, no repeats");
      assert(new Set(versions).size === total && total >= 55, `${total} entries in all`);
      assert((await rows.filter({ hasText: "this tab" }).count()) >= 1, "the change made in this tab says so");
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });

  test("dashboard: the page, script, stylesheet and worker gzip within the budget", async () => {
    const { server } = env();
    let total = 0;
    for (const p of ["/app/", "/app/app.js", "/app/app.css", "/app/beat.js"]) {
      const r = await fetch(`${server.url}${p}`);
      total += gzipSync(Buffer.from(await r.arrayBuffer()), { level: 9 }).length;
    }
    env().measurements.dashboard_gzip_bytes = total;
    assert(total <= 25000, `dashboard gzip ${total} > 25000 (the budget in build.mjs)`);
  });
}
