// The history pages' browser tests (the live Team page, Reports, My timeline), registered into
// the browser suite by browser.mjs like test/dashboard.mjs, whose helpers they use. Every wait
// is for something the page shows or the server says; history is made by changing statuses
// and waiting until the server counts the time.

import { readFileSync } from "node:fs";
import { assert, eq, shotPath, until } from "./harness.mjs";
import { helpers } from "./dashboard.mjs";

const HEADER = "agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms";

export function register(test, env) {
  const { signIn, me, audit, pickStatus, account, agent } = helpers(env);
  const today = () => new Date().toISOString().slice(0, 10);
  /** Today in UTC (the account's time zone and the test browser's), as the instants [from, to). */
  const todayRange = () => {
    const from = Date.parse(`${today()}T00:00:00Z`);
    return `from=${from}&to=${from + 86400000}`;
  };
  const ownerOf = (acc) => ({ slug: acc.slug, email: acc.owner.email, password: acc.owner.password });

  test("history: the Team page follows a status change made through the API, filters by group, sets a status; a dropped stream re-reads the team", async () => {
    const { api, proxy } = env();
    const acc = await account("team");
    await api.call("PUT", "/v1/admin/groups", acc.owner.token, [
      { key: "sales", name: "Sales" },
      { key: "support", name: "Support" },
    ]);
    await api.call("PUT", "/v1/admin/custom-statuses", acc.owner.token, [{ id: "lunch", label: "Lunch", emoji: "☕", base: "busy", default_duration_ms: 3600000 }]);
    const bob = await agent(acc, "Bob", ["sales"]);
    const cy = await agent(acc, "Cy", ["support"]);
    // Through the proxy, which can drop the page's streams.
    const page = await signIn(ownerOf(acc), "/app/admin/team", proxy.url);
    const row = (who) => page.locator(`tr[data-agent-id="${who.id}"]`);
    const adminStreams = () => [...proxy.streams].filter((x) => x.res.req?.url === "/v1/admin/events").length;
    try {
      await row(bob).waitFor();
      await page.locator("#team-live").getByText("Live", { exact: true }).waitFor();
      assert(/Bob-phone/.test(await row(bob).textContent()), "Bob's device is listed");
      // A change made through the API shows within a few seconds.
      const t0 = Date.now();
      await api.call("PUT", "/v1/me/status", bob.token, { status: "busy", op_id: crypto.randomUUID(), custom_status: "lunch", duration_ms: 1800000, note: "Back at two" });
      await until(
        "Bob's row to show busy, lunch, the note and the time left",
        async () => {
          const t = await row(bob).textContent();
          return /Busy/.test(t) && /☕ Lunch/.test(t) && /Back at two/.test(t) && /30 min left/.test(t) && (await row(bob).getAttribute("data-availability")) === "busy";
        },
        5000,
      );
      env().measurements.dashboard_team_follow_ms = Date.now() - t0;
      // Filtered by group: Cy is in support, Bob in sales.
      await page.getByLabel("Group").selectOption("support");
      await until("only support's agents", async () => (await row(bob).count()) === 0 && (await row(cy).count()) === 1);
      await page.getByLabel("Group").selectOption("");
      await row(bob).waitFor();
      // An admin sets Cy's status from the team page.
      await page.getByLabel("New status for Cy").selectOption("busy");
      await page.getByRole("button", { name: "Set status of Cy" }).click();
      await until("Cy's row to show busy, set by an admin", async () => (await row(cy).getAttribute("data-status")) === "busy" && /set by an admin/.test(await row(cy).textContent()), 5000);
      const st = (await me(cy.token)).status;
      eq([st.status, st.cause], ["busy", "admin"], "Cy's status on the server");
      await page.screenshot({ path: shotPath("dashboard-team"), fullPage: true });
      await audit(page, "the team page, live");
      // The stream drops and reconnects are refused for a while; a change made meanwhile
      // shows once the page is back, from the new stream's snapshot.
      await until("the team stream through the proxy", () => adminStreams() === 1);
      proxy.setMode("503");
      const dropped = Date.now();
      proxy.dropStreams();
      await page.locator("#team-live").getByText("Reconnecting…").waitFor({ timeout: 5000 });
      await until("a refused reconnection", () => proxy.requests((r) => r.path === "/v1/admin/events" && r.t > dropped).length > 0, 10000);
      await api.setStatus(bob.token, "offline");
      proxy.setMode("pass");
      await until("Bob offline after the reconnection", async () => (await row(bob).getAttribute("data-status")) === "offline", 20000);
      await page.locator("#team-live").getByText("Live", { exact: true }).waitFor();
      // And the new stream follows changes again.
      await api.setStatus(bob.token, "online");
      await until("Bob online", async () => (await row(bob).getAttribute("data-status")) === "online", 5000);
      eq(page.errors.filter((e) => !/ERR_|network|503/i.test(e)), [], "console errors besides the dropped and refused streams");
    } finally {
      proxy.setMode("pass");
      await page.closeAll();
    }
  });

  test("history: Reports shows coverage, time in each state and a timeline for known history; the CSV downloads; a 422 shows at its field", async () => {
    const { api } = env();
    const acc = await account("reports");
    // Open since the start of this minute (UTC), so the coverage counts the test's own history.
    const opens = [[new Date().toISOString().slice(11, 16), "24:00"]];
    await api.call("PUT", "/v1/admin/opening-hours", acc.owner.token, {
      enabled: true,
      timezone: "UTC",
      days: Object.fromEntries(["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map((d) => [d, opens])),
      exceptions: [],
    });
    const dee = await agent(acc, "Dee");
    const fay = await agent(acc, "Fay");
    /** Dee's time today as the server counts it. */
    const dees = async () => (await api.call("GET", `/v1/admin/reports/availability?${todayRange()}&tz=UTC`, acc.owner.token)).body.agents.find((a) => a.id === dee.id);
    // Known history: Dee online, then busy, each until the server has counted a second of it.
    await api.setStatus(dee.token, "online");
    await api.setStatus(fay.token, "online");
    await until("a second of Dee online", async () => (await dees()).online_ms >= 1000, 5000, 100);
    await api.setStatus(dee.token, "busy");
    await until("a second of Dee busy", async () => (await dees()).busy_ms >= 1000, 5000, 100);
    const page = await signIn(ownerOf(acc), "/app/admin/reports");
    try {
      await page.getByRole("heading", { name: "Coverage within opening hours" }).waitFor();
      await page.getByLabel("Range").selectOption("today");
      await page.getByRole("button", { name: "Show report" }).click();
      await until("today's report: one day's column per agent", async () => (await page.locator(".agent-time").count()) === 3 && (await page.locator(`.agent-time[data-agent="${dee.id}"] svg.columns g.col`).count()) === 1);
      // Coverage of the whole account, as a figure and day by day.
      const figure = await page.locator('.cov[data-chatbox=""] .figure strong').textContent();
      assert(/^(< 0\.1|\d+(\.\d)?)%$/.test(figure), `the account's coverage figure: ${figure}`);
      const cov = (await api.call("GET", `/v1/admin/reports/coverage?${todayRange()}&tz=UTC`, acc.owner.token)).body.chatboxes.find((c) => c.group === null);
      assert(cov.coverage > 0, `the server counts coverage: ${JSON.stringify(cov)}`);
      assert((await page.locator('.cov[data-chatbox=""] svg.columns rect.c-online').count()) >= 1, "the coverage chart has an online part");
      // Dee's time in each state: bars and words, and the table behind them.
      const deeBox = page.locator(`.agent-time[data-agent="${dee.id}"]`);
      for (const c of ["c-online", "c-busy"]) assert((await deeBox.locator(`svg.columns rect.${c}`).count()) === 1, `Dee's bar has a ${c} part`);
      const words = await deeBox.locator(".totals").textContent();
      assert(/Online \d+ s/.test(words) && /Busy \d+ s/.test(words), `Dee's totals: ${words}`);
      await deeBox.getByText("Show as table").click();
      const cells = await deeBox.locator("tbody tr").first().locator("td").allTextContents();
      assert(/^\d+ s$/.test(cells[0]) && Number(cells[0].split(" ")[0]) >= 1, `Dee's online time today in the table: ${cells}`);
      // One agent's timeline: Dee's intervals, read with the keyboard.
      await page.getByLabel("Agent", { exact: true }).selectOption({ label: "Dee" });
      const band = page.locator('[data-timeline="agent-timeline"]');
      await until("Dee's timeline", async () => (await band.locator("rect.c-busy").count()) >= 1);
      await page.getByLabel("Zoom to the span with data").check();
      await band.focus();
      await page.keyboard.press("End");
      await page.keyboard.press("ArrowLeft");
      await until("the detail of Dee's online interval", async () => /^Online from .* \(\d+ s\), status online, set by the agent$/.test(await page.locator("#agent-timeline-detail").textContent()));
      await page.screenshot({ path: shotPath("dashboard-reports"), fullPage: true });
      await audit(page, "the reports page with a table open");
      // The CSV.
      const [dl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
      eq(dl.suggestedFilename(), `availability-${today()}-${today()}.csv`, "the file's name");
      const csv = readFileSync(await dl.path(), "utf8").trim().split(/\r?\n/);
      eq(csv[0], HEADER, "the CSV's header");
      assert(csv.some((l) => l.startsWith(`${dee.id},Dee,${today()},`)), `a row for Dee today: ${csv.join(" | ")}`);
      await page.getByText(`Downloaded availability-${today()}-${today()}.csv.`).waitFor();
      // A span over 400 days: the server's 422 at the field it names, the dates kept.
      await page.getByLabel("Range").selectOption("custom");
      await page.getByLabel("From (date)").fill("2020-01-01");
      await page.getByLabel("To (date, included)").fill(today());
      await page.getByRole("button", { name: "Show report" }).click();
      const field = await until("a date marked invalid", async () => {
        for (const [f, label] of [["from", "From (date)"], ["to", "To (date, included)"]]) {
          if ((await page.getByLabel(label).getAttribute("aria-invalid")) === "true") return { f, label };
        }
        return null;
      });
      const input = page.getByLabel(field.label);
      const described = (await input.getAttribute("aria-describedby")) || "";
      const err = page.locator(`[id="${described.split(" ")[0]}"]`);
      assert(new RegExp(`^${field.f}: `).test(await err.textContent()), `the error names ${field.f}: ${await err.textContent()}`);
      assert(await err.evaluate((e, i) => e.parentElement.contains(document.getElementById(i)), await input.getAttribute("id")), "the error sits next to its field");
      eq([await page.getByLabel("From (date)").inputValue(), await page.getByLabel("To (date, included)").inputValue()], ["2020-01-01", today()], "the dates are kept");
      await page.locator("form[aria-label='Choose the report']").screenshot({ path: shotPath("dashboard-reports-error") });
      eq(page.errors.filter((e) => !/status of 422/.test(e)), [], "console errors besides the 422");
    } finally {
      await page.closeAll();
    }
  });

  test("history: My timeline shows an agent's today and this week, and follows the agent's own change", async () => {
    const acc = await account("mytl");
    const eve = await agent(acc, "Eve");
    const page = await signIn(eve);
    try {
      await pickStatus(page, "Online");
      await until("Eve online", async () => (await me(eve.token)).status.status === "online");
      await page.getByRole("link", { name: "My timeline" }).click();
      await page.getByRole("heading", { name: "Today" }).waitFor();
      const totals = page.locator("#today-totals");
      await until("today's online time", async () => {
        const t = await totals.textContent();
        if (/Online [1-9]\d* s/.test(t)) return true;
        await page.getByRole("button", { name: "Refresh" }).click();
        return false;
      }, 10000, 300);
      eq(await page.locator('[data-timeline="week"] li.tl-day').count(), 7, "a row for every day of the week");
      // A change of the agent's own: the page reads the timeline again.
      await pickStatus(page, "Busy");
      const today = page.locator('[data-timeline="today"]');
      await until("a second of busy in today's timeline", async () => {
        if ((await today.locator("rect.c-busy").count()) > 0 && /Busy [1-9]\d* s/.test(await totals.textContent())) return true;
        await page.getByRole("button", { name: "Refresh" }).click();
        return false;
      }, 10000, 300);
      await page.getByLabel("Zoom to the span with data").first().check();
      await today.focus();
      await page.keyboard.press("End");
      await until("the detail of the open busy interval", async () => /^Busy from .* to now \(\d+ s\), status busy, set by the agent$/.test(await page.locator("#today-detail").textContent()));
      await page.screenshot({ path: shotPath("dashboard-history"), fullPage: true });
      await audit(page, "my timeline");
      assert(page.urls.some((u) => u.endsWith("/app/admin.js")), "the charts come with admin.js, loaded for this page");
      eq(page.errors, [], "console errors");
    } finally {
      await page.closeAll();
    }
  });
}
