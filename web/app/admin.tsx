// The administration pages (owners and admins): agents (with a status for a while and a
// note), custom statuses, groups, opening hours, settings (automatic away included), the
// embed snippet with a live preview of the widget, the live team, the reports and the
// webhooks; and every agent's own timeline, which shares the reports' charts.
//
// Every form keeps what was typed when a save fails, and shows the server's field error next
// to the field it names (`aria-invalid`, `aria-describedby`).

import { useEffect, useRef, useState } from "preact/hooks";
import type {
  AccountSettings,
  AdminSetStatusRequest,
  Agent,
  AgentStatus,
  CustomStatus,
  DateException,
  Group,
  NewAgentRequest,
  OpeningHours,
  PatchAgentRequest,
  Role,
  SetPasswordRequest,
  Settings,
  SettingsPatch,
  TimeRange,
  WeekDays,
} from "../shared/wire";
import type { Session } from "./session";
import {
  type Errors,
  Field,
  FieldError,
  FormError,
  NO_ERRORS,
  errorsOf,
  focusError,
  invalid,
  useAdmin,
} from "./ui";

type Props = { session: Session };

import { ApiKeysPage, SignInPage } from "./identity";
import { MyTimelinePage, ReportsPage } from "./reports";
import { TeamPage } from "./team";
import { WebhooksPage } from "./webhooks";
import { Loading } from "./loading";
import { zones } from "./charts";

export { ApiKeysPage, MyTimelinePage, ReportsPage, SignInPage, TeamPage, WebhooksPage };

const ROLES: Role[] = ["agent", "admin", "owner"];

function GroupChoices(props: { prefix: string; groups: Group[]; value: string[]; onChange: (v: string[]) => void; errs: Errors; legend: string }) {
  const a = invalid(props.prefix, props.errs, "groups");
  if (!props.groups.length) return <p class="hint">No groups yet (an agent in no group counts for every group).</p>;
  return (
    <fieldset id={a.id} aria-invalid={a["aria-invalid"]} aria-describedby={a["aria-describedby"]} tabIndex={-1}>
      <legend>{props.legend}</legend>
      {props.groups.map((g) => (
        <label class="inline" key={g.key}>
          <input
            type="checkbox"
            checked={props.value.includes(g.key)}
            onChange={(e) => {
              const on = (e.target as HTMLInputElement).checked;
              props.onChange(on ? [...props.value, g.key] : props.value.filter((k) => k !== g.key));
            }}
          />
          {g.name}
        </label>
      ))}
      <p class="hint">None ticked: the agent counts for every group.</p>
      <FieldError prefix={props.prefix} errs={props.errs} field="groups" />
    </fieldset>
  );
}

function RoleSelect(props: { prefix: string; value: Role; onChange: (r: Role) => void; errs: Errors; label: string }) {
  const a = invalid(props.prefix, props.errs, "role");
  return (
    <div>
      <label for={a.id}>{props.label}</label>
      <select {...a} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value as Role)}>
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
      <FieldError prefix={props.prefix} errs={props.errs} field="role" />
    </div>
  );
}

// ----- agents --------------------------------------------------------------------------------

/** How long an admin's status change lasts ("" until changed). */
const FOR: [string, string][] = [
  ["", "until changed"],
  ["900000", "15 min"],
  ["1800000", "30 min"],
  ["3600000", "1 h"],
  ["14400000", "4 h"],
];

function AgentRow(props: { session: Session; agent: Agent; groups: Group[]; reload: () => Promise<void>; say: (t: string) => void }) {
  const { agent: ag } = props;
  const prefix = `agent-${ag.id}`;
  const [editing, setEditing] = useState(false);
  const [removing, setRemoving] = useState(false);
  const [resetting, setResetting] = useState(false);
  const [password, setPassword] = useState("");
  const [name, setName] = useState(ag.name);
  const [groups, setGroups] = useState<string[]>(ag.groups);
  const [role, setRole] = useState<Role>(ag.role);
  const [status, setStatus] = useState<AgentStatus>("offline");
  const [dur, setDur] = useState("");
  const [note, setNote] = useState("");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await props.session.call("PATCH", `/v1/admin/agents/${encodeURIComponent(ag.id)}`, { name, groups, role } satisfies PatchAgentRequest);
      setErrs(NO_ERRORS);
      setEditing(false);
      props.say(`Saved ${name}.`);
      await props.reload();
    } catch (err) {
      const x = errorsOf(err, (f) => ["name", "groups", "role"].includes(f), "role");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  const remove = async () => {
    try {
      await props.session.call("DELETE", `/v1/admin/agents/${encodeURIComponent(ag.id)}`);
      props.say(`Removed ${ag.name}.`);
      await props.reload();
    } catch (err) {
      setErrs(errorsOf(err, () => false));
      setRemoving(false);
    }
  };
  const applyStatus = async () => {
    try {
      await props.session.call("PUT", `/v1/admin/agents/${encodeURIComponent(ag.id)}/status`, {
        status,
        duration_ms: dur ? Number(dur) : null,
        note: note.trim() || null,
      } satisfies AdminSetStatusRequest);
      setErrs(NO_ERRORS);
      props.say(`${ag.name} is now ${status}${dur ? ` for ${FOR.find((f) => f[0] === dur)![1]}` : ""}.`);
    } catch (err) {
      const x = errorsOf(err, (f) => f === "note" || f === "duration_ms");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  const setAgentPassword = async (e: Event) => {
    e.preventDefault();
    try {
      await props.session.call("PUT", `/v1/admin/agents/${encodeURIComponent(ag.id)}/password`, { password } satisfies SetPasswordRequest);
      setErrs(NO_ERRORS);
      setPassword("");
      setResetting(false);
      props.say(`Set a new password for ${ag.name}; their devices were signed out.`);
    } catch (err) {
      const x = errorsOf(err, (f) => f === "password");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  const an = invalid(prefix, errs, "note");
  const ad = invalid(prefix, errs, "duration_ms");
  const groupNames = ag.groups.map((k) => props.groups.find((g) => g.key === k)?.name || k).join(", ") || "every group (no group)";
  return (
    <tr data-agent={ag.email}>
      <th scope="row">
        {ag.name}
        <div class="hint">{ag.email}</div>
      </th>
      <td>{ag.role}</td>
      <td>{groupNames}</td>
      <td>
        <div class="row">
          <div>
            <label for={`${prefix}-status`} class="sr-only">
              Status for {ag.name}
            </label>
            <select id={`${prefix}-status`} value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value as AgentStatus)}>
              <option value="online">online</option>
              <option value="busy">busy</option>
              <option value="offline">offline</option>
            </select>{" "}
            <label for={ad.id} class="sr-only">
              How long for {ag.name}
            </label>
            <select {...ad} value={dur} onChange={(e) => setDur((e.target as HTMLSelectElement).value)}>
              {FOR.map(([v, w]) => (
                <option key={v} value={v}>
                  {w}
                </option>
              ))}
            </select>{" "}
            <button type="button" onClick={() => void applyStatus()} aria-label={`Set status of ${ag.name}`}>
              Set status
            </button>
            <FieldError prefix={prefix} errs={errs} field="duration_ms" />
            <label for={an.id} class="sr-only">
              Note for {ag.name}
            </label>
            <input {...an} type="text" placeholder="Note (optional)" value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
            <FieldError prefix={prefix} errs={errs} field="note" />
          </div>
        </div>
        <p>
          <button type="button" aria-expanded={editing ? "true" : "false"} onClick={() => setEditing(!editing)} aria-label={`Edit ${ag.name}`}>
            Edit
          </button>{" "}
          <button type="button" aria-expanded={resetting ? "true" : "false"} onClick={() => setResetting(!resetting)} aria-label={`Set a password for ${ag.name}`}>
            Set password
          </button>{" "}
          {!removing ? (
            <button type="button" class="danger" onClick={() => setRemoving(true)} aria-label={`Remove ${ag.name}`}>
              Remove
            </button>
          ) : (
            <span role="group" aria-label={`Confirm removing ${ag.name}`}>
              Remove {ag.name} and sign out their devices?{" "}
              <button type="button" class="danger" onClick={() => void remove()}>
                Yes, remove {ag.name}
              </button>{" "}
              <button type="button" onClick={() => setRemoving(false)}>
                Cancel
              </button>
            </span>
          )}
        </p>
        <FormError prefix={prefix} errs={errs} />
        {resetting && (
          <form onSubmit={setAgentPassword} aria-label={`Password of ${ag.name}`} noValidate>
            <Field prefix={prefix} errs={errs} field="password" label={`New password for ${ag.name}`} hint="At least 10 characters. Every device of theirs is signed out." type="password" value={password} onInput={setPassword} autocomplete="new-password" />
            <p>
              <button class="primary" type="submit">
                Set password
              </button>
            </p>
          </form>
        )}
        {editing && (
          <form onSubmit={save} aria-label={`Edit ${ag.name}`} noValidate>
            <Field prefix={prefix} errs={errs} field="name" label="Name" value={name} onInput={setName} />
            <RoleSelect prefix={prefix} errs={errs} value={role} onChange={setRole} label="Role" />
            <GroupChoices prefix={prefix} errs={errs} groups={props.groups} value={groups} onChange={setGroups} legend="Groups" />
            <p>
              <button class="primary" type="submit">
                Save {ag.name}
              </button>
            </p>
          </form>
        )}
      </td>
    </tr>
  );
}

function AddAgent(props: { session: Session; groups: Group[]; reload: () => Promise<void>; say: (t: string) => void }) {
  const prefix = "new-agent";
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [groups, setGroups] = useState<string[]>([]);
  const [role, setRole] = useState<Role>("agent");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      await props.session.call("POST", "/v1/admin/agents", { name, email, password, groups, role } satisfies NewAgentRequest);
      props.say(`Added ${name}.`);
      setErrs(NO_ERRORS);
      setName("");
      setEmail("");
      setPassword("");
      setGroups([]);
      setRole("agent");
      await props.reload();
    } catch (err) {
      const x = errorsOf(err, (f) => ["name", "email", "password", "groups", "role"].includes(f), "email");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-labelledby="add-agent-h" noValidate>
      <h2 id="add-agent-h">Add an agent</h2>
      <div class="row">
        <Field prefix={prefix} errs={errs} field="name" label="Name" value={name} onInput={setName} />
        <Field prefix={prefix} errs={errs} field="email" label="Email" type="email" value={email} onInput={setEmail} />
        <Field prefix={prefix} errs={errs} field="password" label="Password" type="password" value={password} onInput={setPassword} autocomplete="new-password" />
        <RoleSelect prefix={prefix} errs={errs} value={role} onChange={setRole} label="Role" />
      </div>
      <GroupChoices prefix={prefix} errs={errs} groups={props.groups} value={groups} onChange={setGroups} legend="Groups of the new agent" />
      <FormError prefix={prefix} errs={errs} />
      <p>
        <button class="primary" type="submit">
          Add agent
        </button>
      </p>
    </form>
  );
}

export function AgentsPage({ session }: Props) {
  const a = useAdmin(session);
  const [note, setNote] = useState("");
  const [error, setError] = useState<string | null>(null);
  if (!a.data) return <Loading a={a} />;
  const d = a.data;
  const everyoneOffline = async () => {
    setError(null);
    try {
      await Promise.all(d.agents.map((ag) => session.call("PUT", `/v1/admin/agents/${encodeURIComponent(ag.id)}/status`, { status: "offline" } satisfies AdminSetStatusRequest)));
      setNote(`Everyone is offline now (${d.agents.length} agents).`);
    } catch (e) {
      setError(`Could not set everyone offline: ${(e as Error).message}`);
    }
  };
  return (
    <>
      <p>
        {d.account.name} has {d.agents.length} agents.{" "}
        <button type="button" class="danger" onClick={() => void everyoneOffline()}>
          Everyone offline
        </button>
      </p>
      <p role="status" class="ok">
        {note}
      </p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <table>
        <caption class="sr-only">Agents</caption>
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Role</th>
            <th scope="col">Groups</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {d.agents.map((ag) => (
            <AgentRow key={`${ag.id}:${ag.name}:${ag.role}:${ag.groups.join(",")}`} session={session} agent={ag} groups={d.groups} reload={a.reload} say={setNote} />
          ))}
        </tbody>
      </table>
      <AddAgent session={session} groups={d.groups} reload={a.reload} say={setNote} />
    </>
  );
}

// ----- groups --------------------------------------------------------------------------------

export function GroupsPage({ session }: Props) {
  const a = useAdmin(session);
  const [rows, setRows] = useState<Group[] | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  useEffect(() => {
    if (a.data && rows === null) setRows(a.data.groups.map((g) => ({ ...g })));
  }, [a.data]);
  if (!a.data || !rows) return <Loading a={a} />;
  const prefix = "groups";
  const set = (i: number, k: keyof Group, v: string) => setRows(rows.map((r, j) => (j === i ? { ...r, [k]: v } : r)));
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await session.call<Group[]>("PUT", "/v1/admin/groups", rows);
      setRows(r.map((g) => ({ ...g })));
      setErrs(NO_ERRORS);
      setNote("Groups saved.");
    } catch (err) {
      const x = errorsOf(err, (f) => /^\[\d+\]\.(key|name)$/.test(f));
      setErrs(x);
      setNote("");
      focusError(prefix, x);
    }
  };
  return (
    <form onSubmit={save} noValidate aria-label="Groups">
      <p>Each group has its own chat box (for example sales, support). Agents in no group count for every group. Removing a group takes it off its agents.</p>
      {rows.map((g, i) => (
        <div class="card row" key={i} role="group" aria-label={`Group ${i + 1}`}>
          <Field prefix={prefix} errs={errs} field={`[${i}].key`} label={`Group ${i + 1} key`} value={g.key} onInput={(v) => set(i, "key", v)} hint="Used in the embed snippet (data-group)." />
          <Field prefix={prefix} errs={errs} field={`[${i}].name`} label={`Group ${i + 1} name`} value={g.name} onInput={(v) => set(i, "name", v)} />
          <div>
            <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))} aria-label={`Remove group ${i + 1}`}>
              Remove
            </button>
          </div>
        </div>
      ))}
      <p>
        <button type="button" onClick={() => setRows([...rows, { key: "", name: "" }])}>
          Add a group
        </button>{" "}
        <button type="submit" class="primary">
          Save groups
        </button>
      </p>
      <FormError prefix={prefix} errs={errs} />
      <p role="status" class="ok">
        {note}
      </p>
    </form>
  );
}

// ----- custom statuses -----------------------------------------------------------------------

type CustomRow = { id: string; label: string; emoji: string; base: AgentStatus; min: string };

/** A whole or decimal number of minutes as milliseconds; blank is null; anything else NaN. */
const minutesToMs = (v: string): number | null => (v.trim() ? (/^\d+(\.\d+)?$/.test(v.trim()) ? Math.round(Number(v) * 60000) : NaN) : null);
const msToMinutes = (ms: number | null) => (ms === null ? "" : String(ms / 60000));

export function CustomStatusesPage({ session }: Props) {
  const a = useAdmin(session);
  const [rows, setRows] = useState<CustomRow[] | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  const fill = (l: CustomStatus[]) => setRows(l.map((c) => ({ id: c.id, label: c.label, emoji: c.emoji || "", base: c.base, min: msToMinutes(c.default_duration_ms) })));
  useEffect(() => {
    if (a.data && rows === null) fill(a.data.custom_statuses || []);
  }, [a.data]);
  if (!a.data || !rows) return <Loading a={a} />;
  const prefix = "custom";
  const set = (i: number, k: keyof CustomRow, v: string) => setRows(rows.map((r, j) => (j === i ? { ...r, [k]: v } : r)));
  const save = async (e: Event) => {
    e.preventDefault();
    const bad: Record<string, string> = {};
    const body: CustomStatus[] = rows.map((r, i) => {
      const ms = minutesToMs(r.min);
      if (Number.isNaN(ms)) bad[`[${i}].default_duration_ms`] = `[${i}].default_duration_ms: a number of minutes, or empty`;
      return { id: r.id.trim(), label: r.label, emoji: r.emoji.trim() || null, base: r.base, default_duration_ms: ms };
    });
    let x: Errors = { fields: bad, form: null };
    if (!Object.keys(bad).length) {
      try {
        fill(await session.call<CustomStatus[]>("PUT", "/v1/admin/custom-statuses", body));
        setErrs(NO_ERRORS);
        setNote("Custom statuses saved.");
        return;
      } catch (err) {
        x = errorsOf(err, (f) => /^\[\d+\]\.(id|label|emoji|base|default_duration_ms)$/.test(f));
      }
    }
    setErrs(x);
    setNote("");
    focusError(prefix, x);
  };
  return (
    <form onSubmit={save} noValidate aria-label="Custom statuses">
      <p>
        Statuses your agents pick from their menu besides online, busy and offline, such as “Lunch” (busy, 1 h). The base status is what the chat box counts; the default
        duration (in minutes; empty: until changed) ends it by itself. The id (a-z, 0-9, _ and -) is what the status log keeps. Removing one leaves its agents with the
        base status.
      </p>
      {rows.map((r, i) => {
        const f = (k: string) => `[${i}].${k}`;
        const b = invalid(prefix, errs, f("base"));
        const n = i + 1;
        const l = (w: string) => (
          <>
            <span class="sr-only">Status {n} </span>
            {w}
          </>
        );
        return (
          <div class="card cs" key={i} role="group" aria-label={`Custom status ${n}`}>
            <Field prefix={prefix} errs={errs} field={f("emoji")} label={l("Emoji")} value={r.emoji} onInput={(v) => set(i, "emoji", v)} />
            <Field prefix={prefix} errs={errs} field={f("label")} label={l("Label")} value={r.label} onInput={(v) => set(i, "label", v)} />
            <div>
              <label for={b.id}>{l("Base")}</label>
              <select {...b} value={r.base} onChange={(e) => set(i, "base", (e.target as HTMLSelectElement).value)}>
                <option value="online">online</option>
                <option value="busy">busy</option>
                <option value="offline">offline</option>
              </select>
              <FieldError prefix={prefix} errs={errs} field={f("base")} />
            </div>
            <Field prefix={prefix} errs={errs} field={f("default_duration_ms")} label={l("Default duration (minutes)")} value={r.min} onInput={(v) => set(i, "min", v)} inputMode="decimal" />
            <Field prefix={prefix} errs={errs} field={f("id")} label={l("Id")} value={r.id} onInput={(v) => set(i, "id", v)} />
            <div>
              <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))} aria-label={`Remove custom status ${n}`}>
                Remove
              </button>
            </div>
          </div>
        );
      })}
      <p>
        <button type="button" onClick={() => setRows([...rows, { id: "", label: "", emoji: "", base: "busy", min: "" }])}>
          Add a custom status
        </button>{" "}
        <button type="submit" class="primary">
          Save custom statuses
        </button>
      </p>
      <FormError prefix={prefix} errs={errs} />
      <p role="status" class="ok">
        {note}
      </p>
    </form>
  );
}

// ----- opening hours -------------------------------------------------------------------------

const DAYS: [keyof WeekDays, string][] = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];

const toMin = (t: string): number | null => {
  const m = /^(\d{2}):(\d{2})$/.exec(t.trim());
  if (!m) return null;
  const v = Number(m[1]) * 60 + Number(m[2]);
  return v <= 1440 && Number(m[2]) < 60 ? v : null;
};
const crosses = (r: TimeRange) => {
  const s = toMin(r[0]);
  const e = toMin(r[1]);
  return s !== null && e !== null && e <= s;
};

function Ranges(props: { prefix: string; field: string; label: string; ranges: TimeRange[]; errs: Errors; onChange: (r: TimeRange[]) => void; empty: string }) {
  const { ranges } = props;
  const put = (i: number, k: 0 | 1, v: string) => props.onChange(ranges.map((r, j) => (j === i ? ((k === 0 ? [v, r[1]] : [r[0], v]) as TimeRange) : r)));
  return (
    <div class="ranges">
      {ranges.length === 0 && <span class="hint">{props.empty}</span>}
      {ranges.map((r, i) => {
        const f0 = `${props.field}[${i}][0]`;
        const f1 = `${props.field}[${i}][1]`;
        const a0 = invalid(props.prefix, props.errs, f0);
        const a1 = invalid(props.prefix, props.errs, f1);
        return (
          <div key={i}>
            <span class="range" role="group" aria-label={`${props.label} range ${i + 1}`}>
              <label class="sr-only" for={a0.id}>
                {props.label} range {i + 1} opens
              </label>
              <input {...a0} class="time" type="text" inputMode="numeric" placeholder="09:00" value={r[0]} onInput={(e) => put(i, 0, (e.target as HTMLInputElement).value)} />
              –
              <label class="sr-only" for={a1.id}>
                {props.label} range {i + 1} closes
              </label>
              <input {...a1} class="time" type="text" inputMode="numeric" placeholder="17:00" value={r[1]} onInput={(e) => put(i, 1, (e.target as HTMLInputElement).value)} />
              {crosses(r) && <span class="hint"> (until the next day)</span>}
              <button type="button" onClick={() => props.onChange(ranges.filter((_, j) => j !== i))} aria-label={`Remove ${props.label} range ${i + 1}`}>
                ×
              </button>
            </span>
            <FieldError prefix={props.prefix} errs={props.errs} field={f0} />
            <FieldError prefix={props.prefix} errs={props.errs} field={f1} />
          </div>
        );
      })}
      <button type="button" onClick={() => props.onChange([...ranges, ["09:00", "17:00"]])} aria-label={`Add a range to ${props.label}`}>
        + range
      </button>
    </div>
  );
}

/** The date (YYYY-MM-DD) and weekday key of an instant in a time zone. */
function zoned(ms: number, tz: string): { date: string; day: string; minutes: number } | null {
  try {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    }).formatToParts(ms);
    const p = (t: string) => parts.find((x) => x.type === t)?.value || "";
    return { date: `${p("year")}-${p("month")}-${p("day")}`, day: p("weekday").toLowerCase().slice(0, 3), minutes: Number(p("hour")) * 60 + Number(p("minute")) };
  } catch {
    return null;
  }
}

const addDays = (date: string, n: number) => {
  const d = new Date(`${date}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
};
const weekdayOf = (date: string) => (["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const)[new Date(`${date}T12:00:00Z`).getUTCDay()]!;

/** The ranges that start on `date` (an exception replaces the weekday's). */
function rangesOn(oh: OpeningHours, date: string): { ranges: TimeRange[]; exception: boolean } {
  const ex = oh.exceptions.find((e) => e.date === date);
  return ex ? { ranges: ex.ranges, exception: true } : { ranges: oh.days[weekdayOf(date)] || [], exception: false };
}

/** Open spans of one day in minutes, including what the day before spills past midnight. */
export function daySpans(oh: OpeningHours, date: string): [number, number][] {
  const out: [number, number][] = [];
  for (const r of rangesOn(oh, date).ranges) {
    const s = toMin(r[0]);
    const e = toMin(r[1]);
    if (s === null || e === null) continue;
    out.push([s, e > s ? e : 1440]);
  }
  for (const r of rangesOn(oh, addDays(date, -1)).ranges) {
    const s = toMin(r[0]);
    const e = toMin(r[1]);
    if (s === null || e === null || e > s) continue;
    if (e > 0) out.push([0, e]);
  }
  return out.sort((a, b) => a[0] - b[0]);
}

const hm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

function Timeline(props: { oh: OpeningHours }) {
  const { oh } = props;
  const now = zoned(Date.now(), oh.timezone);
  if (!now) return <p class="hint">Choose a valid time zone to see the coming week.</p>;
  const days = Array.from({ length: 7 }, (_, i) => addDays(now.date, i));
  return (
    <section aria-labelledby="timeline-h" class="card">
      <h2 id="timeline-h">The coming week</h2>
      <p class="hint">As edited, in {oh.timezone}{oh.enabled ? "" : " (opening hours are off: the chat box follows the agents at any hour)"}.</p>
      <div class="timeline">
        <div class="tl-scale" aria-hidden="true">
          <div />
          <div>
            <span>00:00</span>
            <span>06:00</span>
            <span>12:00</span>
            <span>18:00</span>
            <span>24:00</span>
          </div>
        </div>
        <ul class="plain">
          {days.map((date, i) => {
            const spans = oh.enabled ? daySpans(oh, date) : [[0, 1440] as [number, number]];
            const ex = rangesOn(oh, date).exception;
            const label = new Intl.DateTimeFormat("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }).format(new Date(`${date}T12:00:00Z`));
            const words = spans.length ? spans.map(([s, e]) => `${hm(s)}–${hm(e)}`).join(", ") : "closed";
            return (
              <li class="tl-day" key={date} data-date={date}>
                <span>
                  {label}
                  {ex ? " (exception)" : ""}
                </span>
                <span class="tl-bar" role="img" aria-label={`${label}${ex ? ", exception" : ""}: ${oh.enabled ? (spans.length ? `open ${words}` : "closed") : "no opening hours"}`}>
                  {spans.map(([s, e], j) => (
                    <TlBlock key={j} cls="tl-open" left={(s / 1440) * 100} width={((e - s) / 1440) * 100} />
                  ))}
                  {i === 0 && <TlBlock cls="tl-now" left={(now.minutes / 1440) * 100} />}
                </span>
              </li>
            );
          })}
        </ul>
      </div>
    </section>
  );
}

/** A positioned block; its geometry is set through the CSSOM (the CSP allows no inline style). */
function TlBlock(props: { cls: string; left: number; width?: number }) {
  const ref = useRef<HTMLSpanElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    el.style.left = `${props.left}%`;
    if (props.width !== undefined) el.style.width = `${props.width}%`;
  }, [props.left, props.width]);
  return <span ref={ref} class={props.cls} />;
}

export function HoursPage({ session }: Props) {
  const a = useAdmin(session);
  const [oh, setOh] = useState<OpeningHours | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  useEffect(() => {
    if (a.data && !oh) setOh(clone(a.data.opening_hours));
  }, [a.data]);
  if (!a.data || !oh) return <Loading a={a} />;
  const prefix = "hours";
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await session.call<OpeningHours>("PUT", "/v1/admin/opening-hours", oh);
      setOh(clone(r));
      setErrs(NO_ERRORS);
      setNote("Opening hours saved.");
    } catch (err) {
      const x = errorsOf(err, () => true);
      setErrs(x);
      setNote("");
      focusError(prefix, x);
    }
  };
  const tz = invalid(prefix, errs, "timezone");
  return (
    <form onSubmit={save} noValidate aria-label="Opening hours">
      <div class="card">
        <label class="inline">
          <input type="checkbox" checked={oh.enabled} onChange={(e) => setOh({ ...oh, enabled: (e.target as HTMLInputElement).checked })} />
          Use opening hours (outside them every chat box is offline)
        </label>
        <label for={tz.id}>Time zone</label>
        <select {...tz} value={oh.timezone} onChange={(e) => setOh({ ...oh, timezone: (e.target as HTMLSelectElement).value })}>
          {zones(oh.timezone).map((z) => (
            <option key={z} value={z}>
              {z}
            </option>
          ))}
        </select>
        <FieldError prefix={prefix} errs={errs} field="timezone" />
      </div>
      <section class="card" aria-labelledby="week-h">
        <h2 id="week-h">Every week</h2>
        <p class="hint">Times are HH:MM (24:00 may end a day). A range whose end is not after its start runs past midnight into the next day.</p>
        {DAYS.map(([k, name]) => (
          <div class="day" key={k}>
            <span>{name}</span>
            <Ranges prefix={prefix} field={`days.${k}`} label={name} ranges={oh.days[k] || []} errs={errs} empty="closed" onChange={(r) => setOh({ ...oh, days: { ...oh.days, [k]: r } })} />
          </div>
        ))}
      </section>
      <section class="card" aria-labelledby="ex-h">
        <h2 id="ex-h">Exceptions (holidays, special days)</h2>
        <p class="hint">On a date listed here its own ranges replace the weekday's; no range means closed all day.</p>
        {oh.exceptions.map((ex, i) => {
          const f = `exceptions[${i}].date`;
          const d = invalid(prefix, errs, f);
          const put = (v: Partial<DateException>) => setOh({ ...oh, exceptions: oh.exceptions.map((x, j) => (j === i ? { ...x, ...v } : x)) });
          return (
            <div class="day" key={i} role="group" aria-label={`Exception ${i + 1}`}>
              <div>
                <label for={d.id}>Exception {i + 1} date</label>
                <input {...d} type="date" value={ex.date} onInput={(e) => put({ date: (e.target as HTMLInputElement).value })} />
                <FieldError prefix={prefix} errs={errs} field={f} />
                <button type="button" onClick={() => setOh({ ...oh, exceptions: oh.exceptions.filter((_, j) => j !== i) })} aria-label={`Remove exception ${i + 1}`}>
                  Remove
                </button>
              </div>
              <Ranges prefix={prefix} field={`exceptions[${i}].ranges`} label={`Exception ${i + 1}`} ranges={ex.ranges} errs={errs} empty="closed all day" onChange={(r) => put({ ranges: r })} />
            </div>
          );
        })}
        <button type="button" onClick={() => setOh({ ...oh, exceptions: [...oh.exceptions, { date: zoned(Date.now(), oh.timezone)?.date || "", ranges: [] }] })}>
          Add an exception
        </button>
      </section>
      <Timeline oh={oh} />
      <FormError prefix={prefix} errs={errs} />
      <p>
        <button type="submit" class="primary">
          Save opening hours
        </button>
      </p>
      <p role="status" class="ok">
        {note}
      </p>
    </form>
  );
}

const clone = <T,>(x: T): T => JSON.parse(JSON.stringify(x));

// ----- settings ------------------------------------------------------------------------------

const TIMINGS: [keyof Settings, string, string][] = [
  ["active_interval_ms", "Heartbeat interval (ms)", "How often an open device renews its lease."],
  ["active_ttl_ms", "Active lease (ms)", "A device that stops heartbeating stops counting after this; at least twice the interval."],
  ["background_ttl_ms", "Background lease (ms)", "For phones in the background that receive renew pushes."],
  ["renew_margin_ms", "Renew margin (ms)", "How long before a background lease ends the renew push is sent."],
];

export function SettingsPage({ session }: Props) {
  const a = useAdmin(session);
  const [form, setForm] = useState<Record<string, string> | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  const fill = (s: AccountSettings) => {
    const f: Record<string, string> = {};
    for (const [k] of TIMINGS) f[k] = String(s[k]);
    f.busy_message = s.busy_message || "";
    f.offline_message = s.offline_message || "";
    f.idle_after_ms = msToMinutes(s.idle_after_ms ?? null);
    f.idle_status = s.idle_status || "busy";
    f.return_on_activity = s.return_on_activity === false ? "" : "1";
    setForm(f);
  };
  useEffect(() => {
    if (a.data && !form) fill(a.data.settings);
  }, [a.data]);
  if (!a.data || !form) return <Loading a={a} />;
  const prefix = "settings";
  const save = async (e: Event) => {
    e.preventDefault();
    const idle = minutesToMs(form.idle_after_ms!);
    const body: SettingsPatch = {
      busy_message: form.busy_message,
      offline_message: form.offline_message,
      idle_after_ms: idle,
      idle_status: form.idle_status as AgentStatus,
      return_on_activity: !!form.return_on_activity,
    };
    const bad: Record<string, string> = {};
    if (Number.isNaN(idle)) bad.idle_after_ms = "idle_after_ms: a number of minutes, or empty for off";
    for (const [k] of TIMINGS) {
      const v = form[k]!.trim();
      if (!/^-?\d+$/.test(v)) bad[k] = "must be a whole number of milliseconds";
      else body[k] = Number(v);
    }
    if (Object.keys(bad).length) {
      const x = { fields: bad, form: null };
      setErrs(x);
      focusError(prefix, x);
      return;
    }
    try {
      const s = await session.call<AccountSettings>("PUT", "/v1/admin/settings", body);
      fill(s);
      setErrs(NO_ERRORS);
      setNote("Settings saved.");
    } catch (err) {
      const x = errorsOf(err, (f) => f in form);
      setErrs(x);
      setNote("");
      focusError(prefix, x);
    }
  };
  const set = (k: string) => (v: string) => setForm({ ...form, [k]: v });
  const msg = (k: string, label: string, hint: string) => {
    const at = invalid(prefix, errs, k, hint);
    return (
      <div>
        <label for={at.id}>{label}</label>
        <textarea {...at} value={form[k]} onInput={(e) => set(k)((e.target as HTMLTextAreaElement).value)} />
        <p class="hint" id={`${at.id}-hint`}>
          {hint} {form[k]!.length}/280 characters.
        </p>
        <FieldError prefix={prefix} errs={errs} field={k} />
      </div>
    );
  };
  return (
    <form onSubmit={save} noValidate aria-label="Settings">
      <section class="card" aria-labelledby="msg-h">
        <h2 id="msg-h">Chat box messages</h2>
        {msg("busy_message", "Busy message", "Shown while the chat box is busy. Empty: the widget's own words.")}
        {msg("offline_message", "Offline message", "Shown while the chat box is offline (not outside opening hours, where it says when it opens).")}
      </section>
      <section class="card" aria-labelledby="idle-h">
        <h2 id="idle-h">Automatic away</h2>
        <div class="row">
          <Field prefix={prefix} errs={errs} field="idle_after_ms" label="Away after (minutes idle; empty: off)" value={form.idle_after_ms!} onInput={set("idle_after_ms")} inputMode="decimal" />
          {(() => {
            const at = invalid(prefix, errs, "idle_status");
            return (
              <div>
                <label for={at.id}>Away status</label>
                <select {...at} value={form.idle_status} onChange={(e) => set("idle_status")((e.target as HTMLSelectElement).value)}>
                  <option value="busy">busy</option>
                  <option value="offline">offline</option>
                </select>
                <FieldError prefix={prefix} errs={errs} field="idle_status" />
              </div>
            );
          })()}
          <label class="inline">
            <input type="checkbox" checked={!!form.return_on_activity} onChange={(e) => set("return_on_activity")((e.target as HTMLInputElement).checked ? "1" : "")} />
            Back to the status before on activity
          </label>
        </div>
        <p class="hint">
          An online agent is set to the away status once every signed-in device reports no key or pointer input for this long (dashboard tabs and desktop apps report it;
          phones do not, so a signed-in phone keeps its agent from going idle). An explicit busy or offline is never overridden.
        </p>
      </section>
      <section class="card" aria-labelledby="tim-h">
        <h2 id="tim-h">Timings</h2>
        <div class="row">
          {TIMINGS.map(([k, label, hint]) => (
            <Field key={k} prefix={prefix} errs={errs} field={k} label={label} hint={hint} value={form[k]!} onInput={set(k)} inputMode="numeric" />
          ))}
        </div>
      </section>
      <FormError prefix={prefix} errs={errs} />
      <p>
        <button type="submit" class="primary">
          Save settings
        </button>
      </p>
      <p role="status" class="ok">
        {note}
      </p>
    </form>
  );
}

// ----- embed ---------------------------------------------------------------------------------

function Preview(props: { widgetKey: string; group: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const box = useRef<HTMLElement | null>(null);
  useEffect(() => {
    // One element for the page's life; a change of group is a change of its attribute.
    const el = document.createElement("presence-chatbox");
    el.id = "preview-chatbox";
    box.current = el;
    ref.current?.append(el);
    return () => el.remove();
  }, []);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    el.setAttribute("widget-key", props.widgetKey);
    if (props.group) el.setAttribute("group", props.group);
    else el.removeAttribute("group");
  }, [props.widgetKey, props.group]);
  return <div class="preview" ref={ref} aria-label="Live preview of the widget" role="region" />;
}

export function EmbedPage({ session }: Props) {
  const a = useAdmin(session);
  const [group, setGroup] = useState("");
  const [copied, setCopied] = useState("");
  const pre = useRef<HTMLPreElement>(null);
  if (!a.data) return <Loading a={a} />;
  const key = a.data.account.widget_key;
  const snippet = `<script async src="${location.origin}/widget.js" data-widget-key="${key}"${group ? ` data-group="${group}"` : ""}></script>`;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(snippet);
      setCopied("Copied the snippet.");
    } catch {
      const sel = window.getSelection();
      if (pre.current && sel) {
        const r = document.createRange();
        r.selectNodeContents(pre.current);
        sel.removeAllRanges();
        sel.addRange(r);
      }
      setCopied("The snippet is selected: press Ctrl+C (⌘C) to copy it.");
    }
  };
  return (
    <>
      <p>
        Paste this into your site's pages, before <code>&lt;/body&gt;</code>. It works under a strict Content-Security-Policy: allow{" "}
        <code>{location.origin}</code> in <code>script-src</code>, <code>connect-src</code> and <code>style-src</code>.
      </p>
      <label for="embed-group">Chat box for</label>
      <select id="embed-group" value={group} onChange={(e) => setGroup((e.target as HTMLSelectElement).value)}>
        <option value="">the whole account</option>
        {a.data.groups.map((g) => (
          <option key={g.key} value={g.key}>
            group {g.name}
          </option>
        ))}
      </select>
      <h2 id="snippet-h">Snippet</h2>
      <pre class="snippet" ref={pre} id="snippet" aria-labelledby="snippet-h">
        {snippet}
      </pre>
      <button type="button" onClick={() => void copy()}>
        Copy snippet
      </button>
      <p role="status">{copied}</p>
      <p class="hint">
        Your widget key is <code>{key}</code>. As an element: <code>&lt;presence-chatbox widget-key="{key}"{group ? ` group="${group}"` : ""}&gt;&lt;/presence-chatbox&gt;</code>
      </p>
      <h2>Live preview</h2>
      <p class="hint">The widget itself, as visitors see it now.</p>
      <Preview widgetKey={key} group={group} />
    </>
  );
}

// This module is its own bundle (admin.js): it hands its pages to the page that loaded it.
(window as any).__presenceAdmin = {
  AgentsPage,
  CustomStatusesPage,
  GroupsPage,
  HoursPage,
  SettingsPage,
  EmbedPage,
  SignInPage,
  ApiKeysPage,
  WebhooksPage,
  TeamPage,
  ReportsPage,
  MyTimelinePage,
};
