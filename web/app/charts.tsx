// The history pages' charts, hand-written SVG in the dashboard's colours (app.css): day columns
// of stacked values (an agent's time in each state, a chat box's coverage) and an agent's
// timeline (bands of intervals coloured by availability, one row per day or zoomed to the
// span with data). Part of admin.js.
//
// Guarantees:
// - Every chart has a text alternative (`role="img"` with a summary) and a table behind it
//   (a `<details>` "Show as table"): nothing is told by colour alone.
// - The timeline is one tab stop: arrow keys, Home and End step through its intervals, and the
//   line under it says the one pointed at or focused (start, end, how long, why).
// - Days are calendar days in the report's time zone (`midnight`), so a 23- or 25-hour day at
//   a DST change is drawn as long as it is.
// - Only SVG attributes place things: the CSP allows no inline style.

import { useState } from "preact/hooks";
import type { Availability, Cause, EndReason, TimelineInterval } from "../shared/wire";

export const AV: Availability[] = ["online", "busy", "offline", "signed_out"];
export const AV_WORD: Record<Availability, string> = { online: "Online", busy: "Busy", offline: "Offline", signed_out: "Signed out" };

/** Why a status is what it is, for people. */
export const CAUSE_TEXT: Record<Cause, string> = {
  manual: "set by the agent",
  admin: "set by an admin",
  timer: "timer ended",
  idle: "away: idle",
  return: "back from idle",
};

/** How the last session of a signed-out agent ended. */
const ENDED_TEXT: Record<EndReason, string> = {
  logout: "signed out",
  expired: "lease expired",
  replaced: "replaced by a new sign-in",
  removed: "removed",
  credentials_changed: "password changed",
};

/** Why an interval is what it is. */
export function intervalWhy(iv: TimelineInterval): string {
  if (iv.availability === "signed_out") return iv.ended ? ENDED_TEXT[iv.ended] || iv.ended : "not signed in";
  return CAUSE_TEXT[iv.cause] || iv.cause;
}

// ----- time zones ----------------------------------------------------------------------------

const formats = new Map<string, Intl.DateTimeFormat>();
function parts(ms: number, tz: string): Record<string, number> {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
    formats.set(tz, f);
  }
  const out: Record<string, number> = {};
  for (const p of f.formatToParts(ms)) if (p.type !== "literal") out[p.type] = Number(p.value);
  return out;
}

/** The wall clock of an instant in `tz`, read as if it were UTC. */
function wall(ms: number, tz: string): number {
  const p = parts(ms, tz);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour! % 24, p.minute!, p.second!) + (((ms % 1000) + 1000) % 1000);
}

/** The calendar date (`YYYY-MM-DD`) of an instant in `tz`. */
export function dateIn(ms: number, tz: string): string {
  return new Date(wall(ms, tz)).toISOString().slice(0, 10);
}

/** The instant `date` begins in `tz` (its first moment, 00:00 unless a DST change skips it). */
export function midnight(date: string, tz: string): number {
  const guess = Date.parse(`${date}T00:00:00Z`);
  let t = guess - (wall(guess, tz) - guess);
  t = guess - (wall(t, tz) - t);
  // Where 00:00 is skipped (a DST change at midnight), the day begins at the first moment after.
  const w = wall(t, tz);
  return w < guess ? t + (guess - w) : t;
}

export function addDays(date: string, n: number): string {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

/** Every date from `a` to `b`, both included. */
export function datesBetween(a: string, b: string): string[] {
  const out: string[] = [];
  for (let d = a; d <= b && out.length < 400; d = addDays(d, 1)) out.push(d);
  return out;
}

export function validZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const localZone = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

// ----- words for numbers ---------------------------------------------------------------------

/** A length of time: "5 h 20 min", "12 min", "40 s". */
export function dur(ms: number): string {
  if (ms < 60000) return `${Math.round(ms / 1000)} s`;
  const m = Math.round(ms / 60000);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ""}`;
}

const percent = new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 1 });
/** A share: "87.5%", "< 0.1%" for a little that would round to nothing, "–" for none. */
export const pct = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x > 0 && x < 0.0005 ? "< 0.1%" : percent.format(x));

/** "Mon, Dec 8" for a calendar date. */
export const dayLabel = (date: string) =>
  new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }).format(new Date(`${date}T12:00:00Z`));

/** "09:30" (or "09:30:15") of an instant in `tz`. */
export function clock(ms: number, tz: string, seconds = false): string {
  return new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23", timeZone: tz }).format(ms);
}

// ----- legend --------------------------------------------------------------------------------

export interface Series {
  label: string;
  /** The colour's class: `c-online`, `c-busy`, `c-offline`, `c-signed_out`. */
  cls: string;
}

export const AV_SERIES: Series[] = AV.map((a) => ({ label: AV_WORD[a], cls: `c-${a}` }));

export function Legend(props: { series: Series[] }) {
  return (
    <ul class="legend plain">
      {props.series.map((s) => (
        <li key={s.cls}>
          <svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">
            <rect class={s.cls} width="10" height="10" rx="2" />
          </svg>
          {s.label}
        </li>
      ))}
    </ul>
  );
}

// ----- day columns ---------------------------------------------------------------------------

const PITCH = 28;
const BAR = 20;
const HEIGHT = 96;

/**
 * One column per day, its values stacked from the bottom in the order of `series`. A column is
 * as tall as its total against `max` (0: every column full, its values as shares of its own
 * total). `words` is a day's text (the column's tooltip); `label` the chart's summary.
 */
export function Columns(props: {
  label: string;
  series: Series[];
  days: { date: string; values: number[] }[];
  max: number;
  words: (i: number) => string;
}) {
  const n = props.days.length;
  const width = Math.max(n * PITCH, 2 * PITCH);
  return (
    <svg class="columns" width={width} height={HEIGHT + 18} viewBox={`0 0 ${width} ${HEIGHT + 18}`} role="img" aria-label={props.label}>
      <line class="grid" x1="0" x2={width} y1="0.5" y2="0.5" />
      <line class="grid" x1="0" x2={width} y1={HEIGHT / 2} y2={HEIGHT / 2} />
      <line class="axis" x1="0" x2={width} y1={HEIGHT + 0.5} y2={HEIGHT + 0.5} />
      {props.days.map((d, i) => {
        const total = d.values.reduce((a, b) => a + b, 0);
        const scale = props.max > 0 ? props.max : total;
        const x = i * PITCH + (PITCH - BAR) / 2;
        let y = HEIGHT;
        return (
          <g key={d.date} class="col">
            <title>{props.words(i)}</title>
            <rect class="hit" x={i * PITCH} y="0" width={PITCH} height={HEIGHT} />
            {scale > 0 &&
              d.values.map((v, j) => {
                const h = (v / scale) * HEIGHT;
                if (h <= 0) return null;
                y -= h;
                return <rect key={j} class={props.series[j]!.cls} x={x} y={y} width={BAR} height={h} />;
              })}
            {total === 0 && <rect class="none" x={x} y={HEIGHT - 2} width={BAR} height="2" />}
            <text x={i * PITCH + PITCH / 2} y={HEIGHT + 14} text-anchor="middle">
              {Number(d.date.slice(8))}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

// ----- the timeline --------------------------------------------------------------------------

interface Row {
  label: string;
  start: number;
  end: number;
}

interface Piece {
  i: number;
  s: number;
  e: number;
}

/**
 * An agent's intervals within `[from, to)`: a band per calendar day in `tz` (or one band over
 * the span with data, zoomed), each interval a block coloured by its availability. The open
 * interval (end null) runs up to `now`.
 */
export function Timeline(props: { id: string; who: string; intervals: TimelineInterval[]; from: number; to: number; tz: string; now: number; zoom?: boolean; legend?: boolean }) {
  const { tz, intervals, id } = props;
  const [zoom, setZoom] = useState(!!props.zoom);
  const [active, setActive] = useState<number | null>(null);
  const stop = Math.min(props.to, props.now);
  const endOf = (iv: TimelineInterval) => Math.min(iv.end ?? props.now, stop);
  const shown = intervals.map((iv, i) => ({ iv, i, s: Math.max(iv.start, props.from), e: endOf(iv) })).filter((x) => x.e > x.s);
  let rows: Row[];
  if (zoom && shown.length) {
    const a = shown[0]!.s;
    const b = shown[shown.length - 1]!.e;
    rows = [{ label: dateIn(a, tz) === dateIn(b - 1, tz) ? dayLabel(dateIn(a, tz)) : "Span", start: a, end: Math.max(b, a + 1000) }];
  } else {
    rows = datesBetween(dateIn(props.from, tz), dateIn(props.to - 1, tz)).map((d) => ({ label: dayLabel(d), start: midnight(d, tz), end: midnight(addDays(d, 1), tz) }));
  }
  const pieces = (r: Row): Piece[] =>
    shown.map((x) => ({ i: x.i, s: Math.max(x.s, r.start), e: Math.min(x.e, r.end) })).filter((p) => p.e > p.s);
  const short = rows.length === 1 && rows[0]!.end - rows[0]!.start < 600000;
  const at = (ms: number, withDay: boolean) => `${withDay ? `${dayLabel(dateIn(ms, tz))} ` : ""}${clock(ms, tz, short)}`;
  const words = (i: number) => {
    const iv = intervals[i]!;
    const e = iv.end;
    const sameDay = e !== null && dateIn(iv.start, tz) === dateIn(e - 1, tz);
    return `${AV_WORD[iv.availability]} from ${at(iv.start, true)} to ${e === null ? "now" : at(e, !sameDay)} (${dur((e ?? props.now) - iv.start)}), status ${iv.status}, ${intervalWhy(iv)}`;
  };
  const order = shown.map((x) => x.i);
  const move = (e: KeyboardEvent) => {
    if (!order.length) return;
    const k = active === null ? -1 : order.indexOf(active);
    let n: number;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") n = Math.min(order.length - 1, k + 1);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") n = Math.max(0, k < 0 ? 0 : k - 1);
    else if (e.key === "Home") n = 0;
    else if (e.key === "End") n = order.length - 1;
    else return;
    e.preventDefault();
    setActive(order[n]!);
  };
  const scale = zoom && rows.length === 1 ? [rows[0]!.start, (rows[0]!.start + rows[0]!.end) / 2, rows[0]!.end].map((t) => clock(t, tz, short)) : ["00:00", "06:00", "12:00", "18:00", "24:00"];
  const rowText = (r: Row) => {
    const ps = pieces(r);
    if (!ps.length) return `${r.label}: no history`;
    const t = ps.slice(0, 12).map((p) => `${AV_WORD[intervals[p.i]!.availability].toLowerCase()} ${clock(p.s, tz, short)}–${clock(p.e, tz, short)}`);
    return `${r.label}: ${t.join(", ")}${ps.length > 12 ? `, and ${ps.length - 12} more` : ""}`;
  };
  return (
    <div class="history">
      <div class="row tl-head">
        {props.legend !== false && <Legend series={AV_SERIES} />}
        {shown.length > 0 && (
          <label class="inline">
            <input type="checkbox" checked={zoom} onChange={(e) => setZoom((e.target as HTMLInputElement).checked)} /> Zoom to the span with data
          </label>
        )}
      </div>
      {shown.length === 0 ? (
        <p class="hint">No history in this range.</p>
      ) : (
        <>
          <div
            class="timeline tl-focus"
            tabIndex={0}
            role="group"
            aria-label={`Timeline of ${props.who}: arrow keys step through the intervals`}
            aria-describedby={`${id}-detail`}
            onKeyDown={move}
            onFocus={() => active === null && setActive(order[0]!)}
            data-timeline={id}
          >
            <div class="tl-scale" aria-hidden="true">
              <div />
              <div>
                {scale.map((s, i) => (
                  <span key={i}>{s}</span>
                ))}
              </div>
            </div>
            <ul class="plain">
              {rows.map((r) => {
                const span = r.end - r.start;
                const x = (t: number) => ((t - r.start) / span) * 1000;
                return (
                  <li class="tl-day" key={r.start}>
                    <span>{r.label}</span>
                    <span class="tl-bar">
                      <svg viewBox="0 0 1000 10" preserveAspectRatio="none" role="img" aria-label={rowText(r)}>
                        {pieces(r).map((p) => (
                          <rect
                            key={`${p.i}-${p.s}`}
                            class={`c-${intervals[p.i]!.availability}${p.i === active ? " active" : ""}`}
                            x={x(p.s)}
                            y="0"
                            width={Math.max(x(p.e) - x(p.s), 0.6)}
                            height="10"
                            data-availability={intervals[p.i]!.availability}
                            onMouseEnter={() => setActive(p.i)}
                            onClick={() => setActive(p.i)}
                          >
                            <title>{words(p.i)}</title>
                          </rect>
                        ))}
                        {props.now > r.start && props.now < r.end && <rect class="now" x={x(props.now) - 1} y="0" width="2" height="10" />}
                      </svg>
                    </span>
                  </li>
                );
              })}
            </ul>
          </div>
          <p class="tl-detail" id={`${id}-detail`} aria-live="polite">
            {active !== null ? words(active) : "Point at the timeline, or focus it and use the arrow keys, to read an interval."}
          </p>
          <details>
            <summary>Show as table</summary>
            <table>
              <caption class="sr-only">Timeline of {props.who}</caption>
              <thead>
                <tr>
                  <th scope="col">From</th>
                  <th scope="col">To</th>
                  <th scope="col">How long</th>
                  <th scope="col">Availability</th>
                  <th scope="col">Status</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {shown.map(({ iv, i }) => (
                  <tr key={i}>
                    <td>{at(iv.start, true)}</td>
                    <td>{iv.end === null ? "now" : at(iv.end, true)}</td>
                    <td>{dur((iv.end ?? props.now) - iv.start)}</td>
                    <td>{AV_WORD[iv.availability]}</td>
                    <td>{iv.status}</td>
                    <td>{intervalWhy(iv)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </>
      )}
    </div>
  );
}

/** Time in each state within `[a, b)`, from a timeline's intervals. */
export function totals(intervals: TimelineInterval[], a: number, b: number, now: number): Record<Availability, number> {
  const t: Record<Availability, number> = { online: 0, busy: 0, offline: 0, signed_out: 0 };
  for (const iv of intervals) {
    const s = Math.max(iv.start, a);
    const e = Math.min(iv.end ?? now, b, now);
    if (e > s) t[iv.availability] += e - s;
  }
  return t;
}

/** Every IANA time zone this browser knows, `current` and UTC first if it does not list them. */
export function zones(current: string): string[] {
  let all: string[] = [];
  try {
    all = (Intl as any).supportedValuesOf("timeZone") as string[];
  } catch {
    all = [];
  }
  for (const z of ["UTC", current]) if (z && !all.includes(z)) all.unshift(z);
  return all;
}
