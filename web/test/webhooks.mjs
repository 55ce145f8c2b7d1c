// The Webhooks page's browser tests (`/app/admin/webhooks`), registered into the browser suite
// by browser.mjs like test/history.mjs. Each test runs its own presence-server that may call
// loopback (`--push-webhook-allow 127.0.0.1`) and retries fast (`--webhook-retry-ms 10`,
// `--webhook-give-up-ms`), and a receiver: a Node HTTP server on 127.0.0.1 that answers what
// the test says and keeps every request. Every wait is for something the page shows, the
// receiver gets or the server says.

import { createHmac } from "node:crypto";
import http from "node:http";
import { Api, Server, assert, eq, shotPath, until } from "./harness.mjs";
import { helpers } from "./dashboard.mjs";

/** After a failed attempt this long after its event, the event is dead. With a first retry
 * of 10 ms, attempts come at about 0, 10, 70, 310 and 1 510 ms and the next one, the last,
 * 3.6 s later: an event is pending for about five seconds, then dead. */
const GIVE_UP_MS = 3000;
const FLAGS = ["--push-webhook-allow", "127.0.0.1", "--webhook-retry-ms", "10", "--webhook-give-up-ms", String(GIVE_UP_MS)];

/** A webhook receiver: answers `status` (changeable), keeps every request. */
class Receiver {
  constructor(status = 200) {
    this.status = status;
    this.got = [];
  }

  async start() {
    this.srv = http.createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        let body = null;
        try {
          body = JSON.parse(raw);
        } catch {}
        const answered = this.status;
        this.got.push({ path: req.url, headers: req.headers, raw, body, answered, t: Date.now() });
        res.writeHead(answered, { "content-type": "text/plain" }).end(answered < 300 ? "ok" : "no");
      });
    });
    await new Promise((r) => this.srv.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.srv.address().port}`;
    return this;
  }

  of(type) {
    return this.got.filter((g) => g.body?.type === type);
  }

  async stop() {
    this.srv.closeAllConnections?.();
    await new Promise((r) => this.srv.close(r));
  }
}

/** The Standard Webhooks signatures of a request that `secret` (`whsec_<base64>`) makes. */
function signs(secret, g) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const want = createHmac("sha256", key).update(`${g.headers["webhook-id"]}.${g.headers["webhook-timestamp"]}.${g.raw}`).digest("base64");
  return (g.headers["webhook-signature"] || "").split(" ").includes(`v1,${want}`);
}

/** A loopback port nothing listens on. */
async function closedPort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

export function register(test, env) {
  const { signIn, audit } = helpers(env);
  let n = 0;

  /** A server of the test's own, its API, an account, a receiver; `fn` gets them all. */
  async function withServer(status, fn) {
    const server = await new Server(null, FLAGS).start();
    const api = new Api(server.url);
    const rx = await new Receiver(status).start();
    const pages = [];
    try {
      const acc = await api.account(`wh-${process.pid}-${++n}`);
      const owner = { slug: acc.slug, email: acc.owner.email, password: acc.owner.password };
      const open = async (path = "/app/admin/webhooks") => {
        const p = await signIn(owner, path, server.url);
        pages.push(p);
        return p;
      };
      const hooks = async () => (await api.call("GET", "/v1/admin/webhooks", acc.owner.token)).body;
      const add = async (body) => (await api.call("POST", "/v1/admin/webhooks", acc.owner.token, body)).body;
      await fn({ server, api, rx, acc, open, hooks, add });
    } finally {
      for (const p of pages) await p.closeAll();
      await rx.stop();
      await server.stop();
    }
  }

  /** The delivery log's rows as the page shows them. */
  const rowsOf = (card) =>
    card.locator("table.log tbody tr").evaluateAll((trs) =>
      trs.map((tr) => {
        const c = [...tr.children].map((x) => x.textContent.trim());
        return { id: tr.dataset.event, state: tr.dataset.state, type: tr.dataset.type, time: c[0], stateWord: c[2], attempts: Number(c[3]), status: c[4], error: c[5], next: c[6], retry: !!tr.querySelector("button") };
      }),
    );
  const TIME = /^[A-Z][a-z]{2} \d{1,2}, \d\d:\d\d:\d\d$/;

  test("webhooks: an endpoint added on the page shows its secret once; a status change reaches the receiver signed with it and shows delivered in the log", async () => {
    await withServer(200, async ({ api, rx, acc, open, hooks }) => {
      const page = await open("/app/");
      await page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name: "Webhooks" }).click();
      await page.getByRole("heading", { name: "Webhooks", level: 1 }).waitFor();
      await page.getByText("No endpoints yet: add one below.").waitFor();
      const form = page.getByRole("form", { name: "Add an endpoint" });
      await form.getByLabel("URL").fill(`${rx.url}/hooks/presence`);
      // Only agent.status: untick "all", tick one type, with the keyboard.
      await form.getByLabel("All events, also types added later").uncheck();
      await form.getByLabel(/agent\.status/).focus();
      await page.keyboard.press("Space");
      await form.getByLabel("Description (optional)").fill("Routing service");
      await form.getByRole("button", { name: "Add endpoint" }).click();
      const shown = page.getByRole("region", { name: "The signing secret of Routing service" });
      const secret = (await shown.locator("pre code").textContent()).trim();
      assert(/^whsec_[A-Za-z0-9+/]{43}=$/.test(secret), `a secret: ${secret}`);
      await page.getByText("Added Routing service.").waitFor();
      assert(await shown.evaluate((e) => e === document.activeElement), "focus moves to the secret");
      const listed = await hooks();
      eq(listed.map((h) => [h.url, h.events, h.description, h.enabled]), [[`${rx.url}/hooks/presence`, ["agent.status"], "Routing service", true]], "the endpoint as the server keeps it");
      assert(!JSON.stringify(listed).includes(secret), "the list never carries the secret");
      const card = page.locator(`section[data-webhook="${listed[0].id}"]`);
      eq(await card.locator("dl.facts dd").nth(1).textContent(), "agent.status", "the card's events");

      // Two status changes: only their agent.status events come, in order, signed with the
      // secret the page showed (availability and chat box events in between would have come
      // before the second one: one endpoint's events go out in seq order).
      await api.setStatus(acc.owner.token, "online");
      await until("the first agent.status at the receiver", () => rx.of("agent.status").length >= 1);
      await api.setStatus(acc.owner.token, "busy");
      await until("the second agent.status at the receiver", () => rx.of("agent.status").length >= 2);
      eq(rx.got.map((g) => g.body.type), ["agent.status", "agent.status"], "what the receiver got");
      eq(rx.got.map((g) => g.body.data.status.status), ["online", "busy"], "the statuses, in order");
      eq(rx.got.map((g) => g.path), ["/hooks/presence", "/hooks/presence"], "the path posted to");
      assert(rx.got.every((g) => signs(secret, g)), "every request is signed with the secret shown once");
      assert(rx.got[0].body.seq < rx.got[1].body.seq, "seq grows");

      // The delivery log, opened with the keyboard: both delivered, answered 200.
      await card.getByRole("button", { name: "Delivery log of Routing service" }).focus();
      await page.keyboard.press("Enter");
      await until("two delivered events in the log", async () => {
        const rows = await rowsOf(card);
        return rows.length === 2 && rows.every((r) => r.state === "ok") && rows;
      });
      const rows = await rowsOf(card);
      eq(rows.map((r) => [r.type, r.stateWord, r.attempts, r.status, r.error, r.next, r.retry]), [
        ["agent.status", "Delivered", 1, "200", "—", "—", false],
        ["agent.status", "Delivered", 1, "200", "—", "—", false],
      ], "the log, newest first");
      eq(rows.map((r) => r.id), [...rx.got].reverse().map((g) => g.headers["webhook-id"]), "each row is the event the receiver got (its webhook-id)");
      assert(rows.every((r) => TIME.test(r.time)), `times: ${rows.map((r) => r.time)}`);
      await page.screenshot({ path: shotPath("dashboard-webhooks"), fullPage: true });
      await audit(page, "the webhooks page with a new secret and a delivery log");
      // Filtered to dead events: none.
      await card.getByLabel("Show").selectOption("dead");
      await card.getByText("No dead events.").waitFor();

      // Shown once: the page read again has the endpoint and not the secret.
      await page.reload();
      await card.getByRole("heading", { name: "Routing service" }).waitFor();
      assert(!(await page.content()).includes(secret), "the secret is gone after a reload");
      eq(await page.getByRole("region", { name: /signing secret/ }).count(), 0, "no secret shown");
      eq(page.errors, [], "console errors");
    });
  });

  test("webhooks: a receiver answering 500 shows pending with attempts and a next attempt, then dead; Retry sends it again and it is delivered", async () => {
    await withServer(200, async ({ api, rx, acc, open, add }) => {
      const h = await add({ url: `${rx.url}/in`, events: ["agent.status"], description: "Flaky receiver" });
      const page = await open();
      const card = page.locator(`section[data-webhook="${h.id}"]`);
      await card.getByRole("button", { name: "Delivery log of Flaky receiver" }).click();
      await card.getByText("No events yet: they appear here as they happen.").waitFor();
      // One delivered event first, then the receiver fails.
      await api.setStatus(acc.owner.token, "online");
      await until("the first event delivered", () => rx.got.length === 1);
      rx.status = 500;
      await api.setStatus(acc.owner.token, "busy");
      const refresh = card.getByRole("button", { name: "Refresh the delivery log of Flaky receiver" });
      const seen = await until(
        "the failing event pending, with attempts, the 500 and a next attempt",
        async () => {
          await refresh.click();
          const rows = await rowsOf(card);
          const r = rows[0];
          return rows.length === 2 && r.state === "pending" && r.attempts >= 1 && r.status === "500" && TIME.test(r.next) && r;
        },
        GIVE_UP_MS + 7000,
        100,
      );
      eq([seen.stateWord, seen.retry], ["Pending", true], "a pending event can be retried");
      assert(/500/.test(seen.error), `the last error: ${seen.error}`);
      const failing = seen.id;
      await card.locator("table.log").screenshot({ path: shotPath("dashboard-webhooks-pending") });
      // Given up after GIVE_UP_MS: dead, no next attempt; the log reads itself again.
      const dead = await until(
        "the event dead in the log",
        async () => {
          const r = (await rowsOf(card))[0];
          return r.id === failing && r.state === "dead" && r;
        },
        GIVE_UP_MS + 25000,
        100,
      );
      eq([dead.stateWord, dead.status, dead.next, dead.retry], ["Dead", "500", "—", true], "a dead event");
      const tries = rx.got.filter((g) => g.headers["webhook-id"] === failing);
      eq(dead.attempts, tries.length, "the attempts the log counts are the requests the receiver got");
      assert(tries.length >= 3 && tries.every((g) => g.answered === 500), `retried with backoff: ${tries.length} attempts`);
      await page.screenshot({ path: shotPath("dashboard-webhooks-deliveries"), fullPage: true });
      // Dead only, then everything again.
      await card.getByLabel("Show").selectOption("dead");
      await until("only the dead event", async () => (await rowsOf(card)).map((r) => r.id).join() === failing);
      await card.getByLabel("Show").selectOption("");
      await until("both events", async () => (await rowsOf(card)).length === 2);

      // The receiver is fixed; Retry sends the dead event again with the same webhook-id.
      rx.status = 200;
      const before = rx.got.length;
      await card.getByRole("button", { name: `Retry event ${rx.got[before - 1].body.seq}` }).click();
      await card.getByText(/^Event \d+ \(agent\.status\) will be sent again now\.$/).waitFor();
      await until("the retried event at the receiver", () => rx.got.slice(before).some((g) => g.headers["webhook-id"] === failing && g.answered === 200));
      const again = await until("the retried event delivered in the log", async () => {
        const r = (await rowsOf(card))[0];
        return r.id === failing && r.state === "ok" && r;
      }, 10000);
      eq([again.status, again.retry], ["200", false], "delivered after the retry");
      eq(page.errors, [], "console errors");
    });
  });

  test("webhooks: a URL the server refuses shows its 422 next to the URL field, no event type at Events, the eleventh endpoint as an alert; what was typed stays", async () => {
    await withServer(200, async ({ rx, open, add, hooks }) => {
      const page = await open();
      const form = page.getByRole("form", { name: "Add an endpoint" });
      const url = form.getByLabel("URL");
      await url.fill("https://192.168.1.20/hook");
      await form.getByLabel("Description (optional)").fill("Office router");
      await form.getByRole("button", { name: "Add endpoint" }).click();
      await until("the URL marked invalid", async () => (await url.getAttribute("aria-invalid")) === "true");
      const describedBy = (await url.getAttribute("aria-describedby")).split(" ");
      const err = page.locator(`[id="${describedBy[0]}"]`);
      const text = await err.textContent();
      assert(/^url: 192\.168\.1\.20 is not a public address/.test(text), `the URL's error: ${text}`);
      assert(await err.evaluate((e) => e.parentElement.contains(e.parentElement.querySelector("input"))), "the error sits with the URL field");
      await until("focus on the URL", () => url.evaluate((e) => e === document.activeElement));
      eq([await url.inputValue(), await form.getByLabel("Description (optional)").inputValue()], ["https://192.168.1.20/hook", "Office router"], "what was typed stays");
      await form.screenshot({ path: shotPath("dashboard-webhooks-error") });
      await audit(page, "the webhooks page with a field error");
      eq(await hooks(), [], "nothing was made");

      // A good URL and no event type ticked: the server's 422 names events, shown at them.
      await url.fill(`${rx.url}/x`);
      await form.getByLabel("All events, also types added later").uncheck();
      await form.getByRole("button", { name: "Add endpoint" }).click();
      const events = form.getByRole("group", { name: "Events" });
      await until("the events marked invalid", async () => (await events.getAttribute("aria-invalid")) === "true");
      eq(await url.getAttribute("aria-invalid"), null, "the URL is no longer marked");
      const evErr = page.locator(`[id="${(await events.getAttribute("aria-describedby")).split(" ")[0]}"]`);
      assert(/^events: name at least one event type/.test(await evErr.textContent()), `the events' error: ${await evErr.textContent()}`);
      assert(await events.evaluate((f, e) => f.contains(document.getElementById(e)), await evErr.getAttribute("id")), "the error sits in the events fieldset");

      // Ten endpoints: the eleventh is refused as an alert on the form.
      for (let i = 0; i < 10; i++) await add({ url: `${rx.url}/${i}`, events: ["*"] });
      await form.getByLabel("All events, also types added later").check();
      await form.getByRole("button", { name: "Add endpoint" }).click();
      const alert = form.getByRole("alert");
      await alert.waitFor();
      assert(/at most 10/.test(await alert.textContent()), `the 409: ${await alert.textContent()}`);
      eq((await hooks()).length, 10, "still ten endpoints");
      eq(page.errors.filter((e) => !/status of (409|422)/.test(e)), [], "console errors besides the refusals");
    });
  });

  test("webhooks: Send test event shows the answer: the status and time, the status of a failure, the error when nothing listens", async () => {
    const port = await closedPort();
    await withServer(200, async ({ rx, open, add }) => {
      const h = await add({ url: `${rx.url}/t`, events: ["*"], description: "Backend" });
      const down = await add({ url: `http://127.0.0.1:${port}/nobody`, events: ["*"] });
      const page = await open();
      const card = page.locator(`section[data-webhook="${h.id}"]`);
      const answer = card.locator(".wh-test");
      await card.getByRole("button", { name: "Send test event to Backend" }).click();
      await until("the test's answer", async () => /^Test event delivered: it answered 200 in \d+ ms\.$/.test(await answer.textContent()));
      eq(rx.of("webhook.test").length, 1, "one webhook.test at the receiver");
      eq(rx.of("webhook.test")[0].body.data, { webhook_id: h.id }, "the test event names its endpoint");
      await card.screenshot({ path: shotPath("dashboard-webhooks-test") });
      rx.status = 500;
      await card.getByRole("button", { name: "Send test event to Backend" }).click();
      await until("the failed test's answer", async () => /^Test event not delivered: it answered 500 after \d+ ms/.test(await answer.textContent()));
      // Nothing listens at the other endpoint: no status, the error in words. Its card is
      // headed by its URL, as it has no description.
      const other = page.locator(`section[data-webhook="${down.id}"]`);
      await other.getByRole("heading", { name: down.url }).waitFor();
      await other.getByRole("button", { name: `Send test event to ${down.url}` }).click();
      const t = await until("the unreachable test's answer", async () => {
        const x = await other.locator(".wh-test").textContent();
        return /^Test event not delivered: no answer after \d+ ms \(.+\)\.$/.test(x) && x;
      });
      assert(!/answered/.test(t), `no status for a refused connection: ${t}`);
      eq(rx.of("webhook.test").length, 2, "test events sent only to the endpoint tested");
      eq(page.errors, [], "console errors");
    });
  });

  test("webhooks: Rotate secret shows the new secret once and until when the old one signs; deliveries carry both signatures", async () => {
    await withServer(200, async ({ api, rx, acc, open, add, hooks }) => {
      const h = await add({ url: `${rx.url}/r`, events: ["agent.status"], description: "Signed" });
      const page = await open();
      const card = page.locator(`section[data-webhook="${h.id}"]`);
      const t0 = Date.now();
      await card.getByRole("button", { name: "Rotate secret of Signed" }).click();
      const shown = card.getByRole("region", { name: "The signing secret of Signed" });
      const fresh = (await shown.locator("pre code").textContent()).trim();
      assert(fresh.startsWith("whsec_") && fresh !== h.secret, "a new secret");
      await page.getByText("Rotated the secret of Signed.").waitFor();
      const until24 = (await hooks())[0].previous_secret_until;
      assert(Math.abs(until24 - (t0 + 86400000)) < 60000, `the old secret signs for 24 h: until ${until24}`);
      const words = await shown.locator(".wh-until").textContent();
      const at = await page.evaluate((ms) => new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(ms), until24);
      assert(words.startsWith("The old secret keeps signing beside this one for 24 h, until ") && words.includes(at), `the words: ${words} (until ${at})`);
      await card.getByText(/^Still signs beside the new one until /).waitFor();
      await card.screenshot({ path: shotPath("dashboard-webhooks-rotated") });
      // During the day both secrets sign every request.
      await api.setStatus(acc.owner.token, "online");
      const g = await until("a delivery after the rotation", () => rx.got[0]);
      eq(g.headers["webhook-signature"].split(" ").length, 2, "two signatures");
      assert(signs(fresh, g) && signs(h.secret, g), "signed with the new secret and the old one");
      await page.reload();
      await card.getByRole("heading", { name: "Signed" }).waitFor();
      assert(!(await page.content()).includes(fresh), "the new secret is shown once");
      eq(page.errors, [], "console errors");
    });
  });

  test("webhooks: a 410 disables the endpoint and the page says why; Enable, Disable, and Delete after a confirmation, with the keyboard", async () => {
    await withServer(410, async ({ api, rx, acc, open, add, hooks }) => {
      const h = await add({ url: `${rx.url}/gone`, events: ["*"], description: "Old backend" });
      await api.setStatus(acc.owner.token, "online");
      await until("the endpoint disabled by its 410", async () => (await hooks())[0].disabled_reason === "gone");
      const page = await open();
      const card = page.locator(`section[data-webhook="${h.id}"]`);
      await card.getByText("It answered 410 Gone, so nothing is sent to it. Enable it once the receiver is back.").waitFor();
      eq(await card.locator(".wh-head .badge").textContent(), "Disabled", "the badge");
      await audit(page, "the webhooks page with a disabled endpoint");
      rx.status = 200;
      await card.getByRole("button", { name: "Enable Old backend" }).click();
      await page.getByText("Enabled Old backend.").waitFor();
      await until("enabled on the server", async () => (await hooks())[0].enabled);
      eq(await card.locator(".wh-head .badge").textContent(), "Enabled", "the badge once enabled");
      // Enabled again, it delivers what waited, in order.
      await until("the waiting events delivered", () => rx.got.some((g) => g.answered === 200));
      await card.getByRole("button", { name: "Disable Old backend" }).click();
      await card.getByText("By an owner, admin or API key: nothing is sent to it until it is enabled again.").waitFor();
      eq([(await hooks())[0].enabled, (await hooks())[0].disabled_reason], [false, "admin"], "disabled by an admin on the server");
      // Delete: Enter on Delete asks; Cancel keeps it; Yes deletes.
      await card.getByRole("button", { name: "Delete Old backend" }).focus();
      await page.keyboard.press("Enter");
      const confirm = card.getByRole("group", { name: "Confirm deleting Old backend" });
      await confirm.getByRole("button", { name: "Cancel" }).focus();
      await page.keyboard.press("Enter");
      await confirm.waitFor({ state: "detached" });
      eq((await hooks()).length, 1, "kept after Cancel");
      await card.getByRole("button", { name: "Delete Old backend" }).click();
      await confirm.getByRole("button", { name: "Yes, delete Old backend" }).focus();
      await page.keyboard.press("Enter");
      await page.getByText("Deleted Old backend.").waitFor();
      await card.waitFor({ state: "detached" });
      eq(await hooks(), [], "deleted on the server");
      await page.getByText("No endpoints yet: add one below.").waitFor();
      eq(page.errors, [], "console errors");
    });
  });
}
