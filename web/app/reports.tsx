// Reports for owners and admins (`/app/admin/reports`): for a range of calendar days (today,
// the last 7 or 30 days, or chosen dates) in a time zone, and optionally one group: the chat
// boxes' coverage within opening hours, each agent's time in each state day by day, one
// agent's timeline, and the availability report as CSV. And every agent's own timeline
// (`/app/history`, "My timeline"): today and this week. Part of admin.js.
//
// The server judges the range: a `422` naming `from`, `to`, `tz`, `group` or `agent` shows
// next to that field, and what was chosen stays.

import { useEffect, useState } from "preact/hooks";
import type { AgentTime, AvailabilityReport, ChatboxCoverage, CoverageReport, TimelineReport } from "../shared/wire";
import {
  AV,
  AV_SERIES,
  AV_WORD,
  Columns,
  Legend,
  type Series,
  Timeline,
  addDays,
  dateIn,
  dayLabel,
  datesBetween,
  dur,
  localZone,
  midnight,
  pct,
  totals,
  zones,
} from "./charts";
import { Loading } from "./loading";
import { ApiError, type Session } from "./session";
import { type Errors, FieldError, FormError, NO_ERRORS, errorsOf, focusError, invalid, useAdmin } from "./ui";

type Props = { session: Session };
type Preset = "today" | "7" | "30" | "custom";

const PRESETS: [Preset, string][] = [
  ["today", "Today"],
  ["7", "Last 7 days"],
  ["30", "Last 30 days"],
  ["custom", "Chosen dates…"],
];

/** The range a report covers: calendar days `fromDate`..`toDate` (both included) in `tz`, as
 * the instants `[from, to)`. */
interface Query {
  from: number;
  to: number;
  fromDate: string;
  toDate: string;
  tz: string;
  group: string;
}

const COVERAGE_SERIES: Series[] = [
  { label: "Online", cls: "c-online" },
  { label: "Busy", cls: "c-busy" },
  { label: "Offline", cls: "c-offline" },
];

const enc = encodeURIComponent;
const qs = (q: Query, group = false) => `from=${q.from}&to=${q.to}&tz=${enc(q.tz)}${group && q.group ? `&group=${enc(q.group)}` : ""}`;

/** A `422` detail names its field first: `"from: …"`. */
const fieldOf = (detail: string) => /^([\w.[\]]+):\s/.exec(detail)?.[1] || null;

export function ReportsPage({ session }: Props) {
  const a = useAdmin(session);
  const prefix = "report";
  const [preset, setPreset] = useState<Preset>("7");
  const [fromDate, setFromDate] = useState("");
  const [toDate, setToDate] = useState("");
  const [tz, setTz] = useState("");
  const [group, setGroup] = useState("");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [q, setQ] = useState<Query | null>(null);
  const [cov, setCov] = useState<CoverageReport | null>(null);
  const [av, setAv] = useState<AvailabilityReport | null>(null);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState("");

  const known = (custom: boolean) => (f: string) => f === "tz" || f === "group" || (custom && (f === "from" || f === "to"));
  const fail = (err: unknown, custom: boolean) => {
    const x = errorsOf(err, known(custom));
    setErrs(x);
    focusError(prefix, x);
  };

  /** The query the form describes, or the field errors that keep it from being one. */
  const describe = (p: Preset, tzv: string): Query | Errors => {
    const today = dateIn(session.now(), tzv);
    let a0 = today;
    if (p === "7") a0 = addDays(today, -6);
    if (p === "30") a0 = addDays(today, -29);
    let b0 = today;
    if (p === "custom") {
      const fields: Record<string, string> = {};
      if (!/^\d{4}-\d\d-\d\d$/.test(fromDate)) fields.from = "from: choose a date";
      if (!/^\d{4}-\d\d-\d\d$/.test(toDate)) fields.to = "to: choose a date";
      if (Object.keys(fields).length) return { fields, form: null };
      a0 = fromDate;
      b0 = toDate;
    }
    return { from: midnight(a0, tzv), to: midnight(addDays(b0, 1), tzv), fromDate: a0, toDate: b0, tz: tzv, group };
  };

  const show = async (p = preset, tzv = tz) => {
    const d = describe(p, tzv);
    if ("fields" in d) {
      setErrs(d);
      focusError(prefix, d);
      return;
    }
    setBusy(true);
    setNote("");
    try {
      const [c, v] = await Promise.all([
        session.call<CoverageReport>("GET", `/v1/admin/reports/coverage?${qs(d)}`),
        session.call<AvailabilityReport>("GET", `/v1/admin/reports/availability?${qs(d, true)}`),
      ]);
      setErrs(NO_ERRORS);
      setQ(d);
      setCov(c);
      setAv(v);
    } catch (err) {
      fail(err, p === "custom");
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    if (!a.data || tz) return;
    const z = a.data.opening_hours.timezone || "UTC";
    setTz(z);
    const today = dateIn(session.now(), z);
    setFromDate(addDays(today, -6));
    setToDate(today);
    void show("7", z);
  }, [a.data]);

  if (!a.data) return <Loading a={a} />;
  const groups = a.data.groups;
  const groupName = (k: string | null) => (k === null ? "Whole account" : `Group ${groups.find((g) => g.key === k)?.name || k}`);

  const download = async () => {
    if (!q) return;
    const name = `availability-${q.fromDate}-${q.toDate}.csv`;
    setNote("");
    try {
      const r = await fetch(`/v1/admin/reports/availability?${qs(q, true)}`, {
        headers: { authorization: `Bearer ${session.token}`, accept: "text/csv" },
        cache: "no-store",
      });
      if (!r.ok) {
        let code = "";
        let detail = `HTTP ${r.status}`;
        try {
          const j = await r.json();
          code = j?.error?.code || "";
          detail = j?.error?.detail || detail;
        } catch {}
        throw new ApiError(r.status, code, detail, code === "invalid_field" ? fieldOf(detail) : null);
      }
      const url = URL.createObjectURL(await r.blob());
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      setNote(`Downloaded ${name}.`);
    } catch (err) {
      fail(err, preset === "custom");
    }
  };

  const sel = (field: string, label: string, value: string, set: (v: string) => void, opts: [string, string][]) => {
    const x = invalid(prefix, errs, field);
    return (
      <div>
        <label for={x.id}>{label}</label>
        <select {...x} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
          {opts.map(([v, w]) => (
            <option key={v} value={v}>
              {w}
            </option>
          ))}
        </select>
        <FieldError prefix={prefix} errs={errs} field={field} />
      </div>
    );
  };
  const date = (field: "from" | "to", label: string, value: string, set: (v: string) => void) => {
    const x = invalid(prefix, errs, field);
    return (
      <div>
        <label for={x.id}>{label}</label>
        <input {...x} type="date" value={value} onInput={(e) => set((e.target as HTMLInputElement).value)} />
        <FieldError prefix={prefix} errs={errs} field={field} />
      </div>
    );
  };
  const chatboxes = (cov?.chatboxes || []).filter((c) => !q?.group || c.group === q.group);
  const range = q ? (q.fromDate === q.toDate ? dayLabel(q.fromDate) : `${dayLabel(q.fromDate)} to ${dayLabel(q.toDate)}`) : "";
  return (
    <>
      <form
        class="card"
        noValidate
        aria-label="Choose the report"
        onSubmit={(e) => {
          e.preventDefault();
          void show();
        }}
      >
        <div class="row top">
          {sel("range", "Range", preset, (v) => setPreset(v as Preset), PRESETS)}
          {preset === "custom" && date("from", "From (date)", fromDate, setFromDate)}
          {preset === "custom" && date("to", "To (date, included)", toDate, setToDate)}
          {sel("tz", "Time zone", tz, setTz, zones(tz).map((z) => [z, z]))}
          {sel("group", "Group", group, setGroup, [["", "All agents"], ...groups.map((g) => [g.key, g.name] as [string, string])])}
        </div>
        <FormError prefix={prefix} errs={errs} />
        <p>
          <button class="primary" type="submit" disabled={busy}>
            Show report
          </button>{" "}
          <button type="button" onClick={() => void download()} disabled={!q}>
            Download CSV
          </button>{" "}
          <span role="status" class="ok">
            {busy ? "Loading the report…" : note}
          </span>
        </p>
        <p class="hint">Days are calendar days in the time zone chosen; today counts up to now. The CSV has one row per agent and day, times in milliseconds.</p>
      </form>
      {q && cov && av && (
        <>
          <section class="card" aria-labelledby="coverage-h">
            <h2 id="coverage-h">Coverage within opening hours</h2>
            <p class="hint">
              {range}, {q.tz}. The share of opening hours in which the chat box was online or busy, and day by day: online, busy and offline as shares of each day's
              opening hours.
            </p>
            {chatboxes.length === 0 ? <p>No chat box to report on.</p> : <Legend series={COVERAGE_SERIES} />}
            {chatboxes.map((c) => (
              <Coverage key={c.group ?? ""} c={c} name={groupName(c.group)} />
            ))}
          </section>
          <section class="card" aria-labelledby="states-h">
            <h2 id="states-h">Time in each state</h2>
            <p class="hint">
              {range}
              {q.group ? `, agents who count for ${groupName(q.group).toLowerCase()}` : ""}. A day's column is as tall as the time counted that day (today up to now).
            </p>
            {av.agents.length === 0 ? <p>No agents.</p> : <Legend series={AV_SERIES} />}
            <AgentsTime agents={av.agents} range={range} />
          </section>
          <AgentTimeline session={session} q={q} agents={av.agents} />
        </>
      )}
    </>
  );
}

function Coverage(props: { c: ChatboxCoverage; name: string }) {
  const { c } = props;
  const days = c.days || [];
  const id = `cov-${c.group ?? "account"}`;
  const reasons = Object.entries(c.offline_by_reason || {})
    .filter(([, ms]) => ms > 0)
    .map(([r, ms]) => `${r.replace(/_/g, " ")} ${dur(ms)}`)
    .join(", ");
  const words = (i: number) => {
    const d = days[i]!;
    return `${dayLabel(d.date)}: ${d.coverage === null ? "no opening hours" : `${pct(d.coverage)} covered`} (open ${dur(d.open_ms)}: online ${dur(d.online_ms)}, busy ${dur(d.busy_ms)}, offline ${dur(d.offline_ms)})`;
  };
  return (
    <div class="cov" data-chatbox={c.group ?? ""} aria-labelledby={`${id}-h`} role="group">
      <h3 id={`${id}-h`}>{props.name}</h3>
      <div class="cov-row">
        <p class="figure">
          <strong data-coverage={c.coverage ?? ""}>{c.coverage === null ? "No opening hours" : pct(c.coverage)}</strong>
          <span class="hint">{c.coverage === null ? "in this range" : "of opening hours online or busy"}</span>
        </p>
        {days.length > 0 && (
          <Columns
            label={`${props.name}, coverage day by day: ${days.map((_, i) => words(i)).join("; ")}`}
            series={COVERAGE_SERIES}
            days={days.map((d) => ({ date: d.date, values: [d.online_ms, d.busy_ms, d.offline_ms] }))}
            max={0}
            words={words}
          />
        )}
      </div>
      <p class="hint">
        Open {dur(c.open_ms)}: online {dur(c.online_ms)}, busy {dur(c.busy_ms)}, offline {dur(c.offline_ms)}
        {reasons ? ` (${reasons})` : ""}.
      </p>
      {days.length > 0 && (
        <details>
          <summary>Show as table</summary>
          <table>
            <caption class="sr-only">Coverage of {props.name} day by day</caption>
            <thead>
              <tr>
                <th scope="col">Day</th>
                <th scope="col">Open</th>
                <th scope="col">Online</th>
                <th scope="col">Busy</th>
                <th scope="col">Offline</th>
                <th scope="col">Coverage</th>
              </tr>
            </thead>
            <tbody>
              {days.map((d) => (
                <tr key={d.date}>
                  <th scope="row">{dayLabel(d.date)}</th>
                  <td>{dur(d.open_ms)}</td>
                  <td>{dur(d.online_ms)}</td>
                  <td>{dur(d.busy_ms)}</td>
                  <td>{dur(d.offline_ms)}</td>
                  <td>{pct(d.coverage)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </div>
  );
}

const KEYS = ["online_ms", "busy_ms", "offline_ms", "signed_out_ms"] as const;

function AgentsTime(props: { agents: AgentTime[]; range: string }) {
  // One scale for every agent: a column is as tall as the time counted that day.
  const max = Math.max(1, ...props.agents.flatMap((ag) => ag.days.map((d) => KEYS.reduce((s, k) => s + d[k], 0))));
  return (
    <>
      {props.agents.map((ag) => {
        const all = AV.map((a, j) => `${AV_WORD[a].toLowerCase()} ${dur(ag[KEYS[j]!])}`).join(", ");
        const words = (i: number) => {
          const d = ag.days[i]!;
          return `${dayLabel(d.date)}: ${AV.map((a, j) => `${AV_WORD[a].toLowerCase()} ${dur(d[KEYS[j]!])}`).join(", ")}`;
        };
        return (
          <div class="agent-time" key={ag.id} data-agent={ag.id} role="group" aria-labelledby={`time-${ag.id}`}>
            <h3 id={`time-${ag.id}`}>{ag.name}</h3>
            <p class="totals">
              {AV.map((a, j) => (
                <span key={a}>
                  <span class={`dot c-${a}`} aria-hidden="true" /> {AV_WORD[a]} {dur(ag[KEYS[j]!])}
                </span>
              ))}
            </p>
            <Columns
              label={`${ag.name}, ${props.range}: ${all} in all. Day by day: ${ag.days.map((_, i) => words(i)).join("; ")}`}
              series={AV_SERIES}
              days={ag.days.map((d) => ({ date: d.date, values: KEYS.map((k) => d[k]) }))}
              max={max}
              words={words}
            />
            <details>
              <summary>Show as table</summary>
              <table>
                <caption class="sr-only">Time of {ag.name} in each state, day by day</caption>
                <thead>
                  <tr>
                    <th scope="col">Day</th>
                    {AV.map((a) => (
                      <th scope="col" key={a}>
                        {AV_WORD[a]}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {ag.days.map((d) => (
                    <tr key={d.date}>
                      <th scope="row">{dayLabel(d.date)}</th>
                      {KEYS.map((k) => (
                        <td key={k}>{dur(d[k])}</td>
                      ))}
                    </tr>
                  ))}
                  <tr>
                    <th scope="row">In all</th>
                    {KEYS.map((k) => (
                      <td key={k}>{dur(ag[k])}</td>
                    ))}
                  </tr>
                </tbody>
              </table>
            </details>
          </div>
        );
      })}
    </>
  );
}

function AgentTimeline(props: { session: Session; q: Query; agents: AgentTime[] }) {
  const { session, q } = props;
  const prefix = "timeline";
  const [agent, setAgent] = useState(props.agents[0]?.id || "");
  const [tl, setTl] = useState<TimelineReport | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const pick = props.agents.some((x) => x.id === agent) ? agent : props.agents[0]?.id || "";
  useEffect(() => {
    if (!pick) return;
    let on = true;
    session
      .call<TimelineReport>("GET", `/v1/admin/reports/timeline?agent=${enc(pick)}&from=${q.from}&to=${q.to}`)
      .then((r) => {
        if (!on) return;
        setTl(r);
        setErrs(NO_ERRORS);
      })
      .catch((err) => {
        if (!on) return;
        setTl(null);
        setErrs(errorsOf(err, (f) => f === "agent"));
      });
    return () => void (on = false);
  }, [pick, q]);
  const x = invalid(prefix, errs, "agent");
  const who = props.agents.find((a) => a.id === pick)?.name || "";
  return (
    <section class="card" aria-labelledby="timeline-h">
      <h2 id="timeline-h">Timeline of an agent</h2>
      {props.agents.length === 0 ? (
        <p>No agents.</p>
      ) : (
        <>
          <label for={x.id}>Agent</label>
          <select {...x} value={pick} onChange={(e) => setAgent((e.target as HTMLSelectElement).value)}>
            {props.agents.map((a) => (
              <option key={a.id} value={a.id}>
                {a.name}
              </option>
            ))}
          </select>
          <FieldError prefix={prefix} errs={errs} field="agent" />
          <FormError prefix={prefix} errs={errs} />
          {tl && tl.agent === pick && <Timeline key={`${pick}-${q.from}-${q.to}`} id="agent-timeline" who={who} intervals={tl.intervals} from={q.from} to={q.to} tz={q.tz} now={session.now()} />}
        </>
      )}
    </section>
  );
}

// ----- my timeline ---------------------------------------------------------------------------

export function MyTimelinePage({ session }: Props) {
  const tz = localZone();
  const [tl, setTl] = useState<TimelineReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [at, setAt] = useState(() => session.now());
  const today = dateIn(at, tz);
  // The calendar week, Monday first.
  const monday = addDays(today, -((new Date(`${today}T12:00:00Z`).getUTCDay() + 6) % 7));
  const from = midnight(monday, tz);
  const to = midnight(addDays(monday, 7), tz);
  const load = async () => {
    try {
      const r = await session.call<TimelineReport>("GET", `/v1/me/timeline?from=${from}&to=${to}`);
      setAt(session.now());
      setTl(r);
      setError(null);
    } catch (e) {
      setError(`Could not load your timeline: ${(e as Error).message}`);
    }
  };
  // Again when this agent's status changes (the device stream tells; the page is drawn again
  // then), and every minute.
  const version = session.status?.version;
  useEffect(() => void load(), [version]);
  useEffect(() => {
    const t = window.setInterval(() => void load(), 60000);
    return () => clearInterval(t);
  }, []);
  const t0 = midnight(today, tz);
  const t1 = midnight(addDays(today, 1), tz);
  const week = datesBetween(monday, addDays(monday, 6));
  const perDay = tl ? week.map((d) => totals(tl.intervals, midnight(d, tz), midnight(addDays(d, 1), tz), at)) : [];
  const dayTotal = tl ? totals(tl.intervals, t0, t1, at) : null;
  const weekWords = (i: number) => `${dayLabel(week[i]!)}: ${AV.map((a) => `${AV_WORD[a].toLowerCase()} ${dur(perDay[i]![a])}`).join(", ")}`;
  return (
    <>
      <p>
        When you counted for the chat box: online or busy with a device signed in. Offline is your status offline while signed in; signed out is no device signed in. Times in {tz}.{" "}
        <button type="button" onClick={() => void load()}>
          Refresh
        </button>
      </p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {!tl ? (
        !error && <p>Loading…</p>
      ) : (
        <>
          <section class="card" aria-labelledby="today-h">
            <h2 id="today-h">Today</h2>
            <p class="totals" id="today-totals">
              {AV.map((a) => (
                <span key={a}>
                  <span class={`dot c-${a}`} aria-hidden="true" /> {AV_WORD[a]} {dur(dayTotal![a])}
                </span>
              ))}
            </p>
            <Timeline key="today" id="today" who="you today" intervals={tl.intervals} from={t0} to={t1} tz={tz} now={at} />
          </section>
          <section class="card" aria-labelledby="week-h">
            <h2 id="week-h">This week</h2>
            <p class="hint">
              {dayLabel(week[0]!)} to {dayLabel(week[6]!)}. A day's column is as tall as the time counted that day.
            </p>
            <Legend series={AV_SERIES} />
            <Columns
              label={`Your week, day by day: ${week.map((_, i) => weekWords(i)).join("; ")}`}
              series={AV_SERIES}
              days={week.map((d, i) => ({ date: d, values: AV.map((a) => perDay[i]![a]) }))}
              max={Math.max(1, ...perDay.map((t) => AV.reduce((s, a) => s + t[a], 0)))}
              words={weekWords}
            />
            <Timeline key="week" id="week" who="you this week" intervals={tl.intervals} from={from} to={to} tz={tz} now={at} legend={false} />
          </section>
        </>
      )}
    </>
  );
}
