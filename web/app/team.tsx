// The team, live, for owners and admins (`/app/admin/team`): every agent's status (with the
// custom status, note, time left and why), whether they count for the chat box, their devices
// signed in and since when; filtered by group; and a status set for any of them. Part of
// admin.js.
//
// Guarantees:
// - Live from the account's event stream (`GET /v1/admin/events`, read with fetch streaming so
//   the token goes in the Authorization header): its first event, `snapshot`, is the whole
//   picture at the account's event number `seq`; each later event with a higher `seq` updates
//   it. A status replaces the shown one only when its `version` is not older.
// - A dropped or silent stream (no byte for three pings) is opened again after the server's
//   `retry:` delay, doubled per failure in a row up to 30 s, with jitter; the new stream's
//   snapshot replaces everything, so nothing missed while it was down stays wrong.
// - A server without the stream (404) is polled instead (`GET /v1/admin/presence`, every 2 s).

import { useEffect, useState } from "preact/hooks";
import type {
  AccountEvent,
  AdminSetStatusRequest,
  AgentAvailabilityData,
  AgentStatus,
  AgentStatusData,
  ChatboxViewData,
  PresenceAgent,
  PresenceSnapshot,
  SessionEventData,
} from "../shared/wire";
import { AV_WORD, CAUSE_TEXT } from "./charts";
import { Loading } from "./loading";
import { type Session, uuid } from "./session";
import { errorsOf } from "./ui";
import { STATUS_WORD, reasonText, span } from "./words";
import { useAdmin } from "./ui";

type Props = { session: Session };

interface Live {
  snap: PresenceSnapshot | null;
  /** The stream is open and has delivered its snapshot (or polling works). */
  live: boolean;
  poll: boolean;
  refused: boolean;
  error: string | null;
  /** The last change, for screen readers. */
  said: string;
}

const POLL_MS = 2000;
const SILENT_MS = 45000;

/** The account's presence, kept current from `/v1/admin/events`. */
function usePresence(session: Session): Live {
  const [state, set] = useState<Live>({ snap: null, live: false, poll: false, refused: false, error: null, said: "" });
  useEffect(() => {
    let stopped = false;
    let ctl: AbortController | null = null;
    let snap: PresenceSnapshot | null = null;
    let live = false;
    let poll = false;
    let said = "";
    let retryMs = 2000;
    let failures = 0;
    let lastBytes = Date.now();
    let timer = 0;
    let fetching = false;
    const publish = (error: string | null = null, refused = false) => {
      if (!stopped) set({ snap: snap && { ...snap, agents: snap.agents.slice() }, live, poll, refused, error, said });
    };
    /** Reads the whole picture again (an agent we do not know yet, or polling). */
    const reread = async () => {
      if (fetching) return;
      fetching = true;
      try {
        const p = await session.call<PresenceSnapshot>("GET", "/v1/admin/presence");
        if (!snap || p.seq >= snap.seq) snap = p;
        if (poll) live = true;
        publish();
      } catch (e) {
        if (poll) {
          live = false;
          publish(`Could not read the team: ${(e as Error).message}`);
        }
      } finally {
        fetching = false;
      }
    };
    const apply = (name: string, body: any) => {
      if (name === "snapshot") {
        snap = body as PresenceSnapshot;
        live = true;
        failures = 0;
        publish();
        return;
      }
      if (!snap || !body || typeof body !== "object") return;
      const ev = body as AccountEvent<any>;
      if (typeof ev.seq === "number") {
        if (ev.seq <= snap.seq) return;
        snap.seq = ev.seq;
      }
      const d = ev.data || {};
      const ag = d.agent_id ? snap.agents.find((x) => x.id === d.agent_id) : undefined;
      if (d.agent_id && !ag) {
        void reread();
        return;
      }
      switch (name) {
        case "agent.status": {
          const s = (d as AgentStatusData).status;
          if (ag && s && s.version >= ag.status.version) {
            ag.status = s;
            ag.since = Date.parse(ev.timestamp) || ag.since;
            said = `${ag.name} is now ${STATUS_WORD[s.status].toLowerCase()}${s.cause === "manual" ? "" : ` (${CAUSE_TEXT[s.cause] || s.cause})`}.`;
          }
          break;
        }
        case "agent.availability": {
          const x = d as AgentAvailabilityData;
          if (ag) {
            ag.availability = x.availability;
            ag.since = Date.parse(ev.timestamp) || ag.since;
          }
          break;
        }
        case "chatbox.view": {
          const v = (d as ChatboxViewData).view;
          if (v && v.version >= snap.chatbox.version) snap.chatbox = v;
          break;
        }
        case "session.started": {
          const x = d as SessionEventData;
          if (ag && x.device) ag.devices = [...ag.devices.filter((y) => y.id !== x.device.id), x.device];
          break;
        }
        case "session.ended": {
          const x = d as SessionEventData;
          // A replaced session's device signed in again: its new session is listed already.
          if (ag && x.device && x.reason !== "replaced") ag.devices = ag.devices.filter((y) => y.id !== x.device.id);
          if (ag && x.reason === "removed") snap.agents = snap.agents.filter((y) => y !== ag);
          break;
        }
        default:
          return; // ping, and names we do not know
      }
      publish();
    };
    /** One SSE block: `event:`, `data:`, `retry:` lines. */
    const frame = (block: string) => {
      let event = "message";
      const data: string[] = [];
      for (const line of block.split(/\r?\n/)) {
        if (!line || line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const k = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (k === "event") event = v;
        else if (k === "data") data.push(v);
        else if (k === "retry" && /^\d+$/.test(v)) retryMs = Number(v);
      }
      if (!data.length) return;
      try {
        apply(event, JSON.parse(data.join("\n")));
      } catch {
        // not JSON: ignored
      }
    };
    const startPolling = () => {
      poll = true;
      void reread();
      timer = window.setInterval(() => void reread(), POLL_MS);
    };
    const open = () => {
      ctl?.abort();
      const c = new AbortController();
      ctl = c;
      lastBytes = Date.now();
      const run = async (): Promise<"again" | "stop"> => {
        const r = await fetch("/v1/admin/events", {
          headers: { authorization: `Bearer ${session.token}`, accept: "text/event-stream" },
          signal: c.signal,
          cache: "no-store",
        });
        if (r.status === 401) {
          // The session ended: /v1/me says so and the page returns to sign-in.
          void session.refresh().catch(() => {});
          return "stop";
        }
        if (r.status === 403) {
          publish(null, true);
          return "stop";
        }
        if (r.status === 404) {
          startPolling();
          return "stop";
        }
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return "again";
          lastBytes = Date.now();
          buf += value;
          let i: number;
          while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i).replace(/^\r?\n\r?\n/, "");
            frame(block);
          }
        }
      };
      run()
        .catch(() => "again" as const)
        .then((next) => {
          if (stopped || ctl !== c || next === "stop") return;
          live = false;
          publish();
          const wait = Math.min(30000, retryMs * 2 ** Math.min(failures, 4));
          failures += 1;
          timer = window.setTimeout(open, wait / 2 + (Math.random() * wait) / 2);
        });
    };
    // A stream silent past three pings is dead on some path the browser cannot see.
    const watchdog = window.setInterval(() => {
      if (!poll && live && Date.now() - lastBytes > SILENT_MS) {
        live = false;
        publish();
        open();
      }
    }, 5000);
    open();
    return () => {
      stopped = true;
      ctl?.abort();
      clearTimeout(timer);
      clearInterval(timer);
      clearInterval(watchdog);
    };
  }, []);
  return state;
}

/** Re-renders every `ms`: the time left of timed statuses counts down, "since" grows. */
function useTick(ms: number): void {
  const [, set] = useState(0);
  useEffect(() => {
    const t = window.setInterval(() => set((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [ms]);
}

const STATUSES: AgentStatus[] = ["online", "busy", "offline"];

export function TeamPage({ session }: Props) {
  const a = useAdmin(session);
  const p = usePresence(session);
  const [group, setGroup] = useState("");
  const [note, setNote] = useState("");
  const agents = (p.snap?.agents || []).filter((x) => !group || x.groups.length === 0 || x.groups.includes(group)).sort((x, y) => x.name.localeCompare(y.name));
  useTick(agents.some((x) => x.status.until !== null) ? 1000 : 30000);
  if (p.refused) return <Loading a={{ data: null, refused: true, error: null, reload: async () => {}, set: () => {} }} />;
  if (!a.data) return <Loading a={a} />;
  const d = a.data;
  const custom = (id: string | null) => {
    const c = id ? d.custom_statuses.find((x) => x.id === id) : null;
    return c ? `${c.emoji ? `${c.emoji} ` : ""}${c.label}` : id;
  };
  const groupName = (k: string) => d.groups.find((g) => g.key === k)?.name || k;
  const view = p.snap?.chatbox;
  const gv = group ? view?.groups.find((g) => g.key === group) : null;
  const count = (av: string) => agents.filter((x) => x.availability === av).length;
  return (
    <>
      <p>Every agent as it is now, live. An agent counts for the chat box while online or busy with a device signed in.</p>
      <div class="card team-head">
        <div class="row">
          <div>
            <label for="team-group">Group</label>
            <select id="team-group" value={group} onChange={(e) => setGroup((e.target as HTMLSelectElement).value)}>
              <option value="">All groups</option>
              {d.groups.map((g) => (
                <option key={g.key} value={g.key}>
                  {g.name}
                </option>
              ))}
            </select>
          </div>
          {view && (
            <p id="team-chatbox">
              {group ? `Chat box of ${groupName(group)}` : "Chat box"}: <span class={`badge ${(gv || view).status}`}>{STATUS_WORD[(gv || view).status]}</span>{" "}
              <span class="hint">{reasonText((gv || view).status, (gv || view).reason, view.next_change_at)}.</span>
            </p>
          )}
        </div>
        <p class="totals" id="team-counts">
          {(["online", "busy", "offline", "signed_out"] as const).map((av) => (
            <span key={av}>
              <span class={`dot c-${av}`} aria-hidden="true" /> {count(av)} {AV_WORD[av].toLowerCase()}
            </span>
          ))}
          <span class="hint" id="team-live">
            {p.live ? (p.poll ? "Updated every 2 s" : "Live") : p.snap ? "Reconnecting…" : "Connecting…"}
          </span>
        </p>
      </div>
      <p class="sr-only" role="status" aria-live="polite">
        {p.said}
      </p>
      <p role="status" class="ok">
        {note}
      </p>
      {p.error && (
        <p class="form-error" role="alert">
          {p.error}
        </p>
      )}
      {!p.snap ? (
        <p>Connecting to the team…</p>
      ) : (
        <table class="team">
          <caption class="sr-only">Agents{group ? ` who count for ${groupName(group)}` : ""}, live</caption>
          <thead>
            <tr>
              <th scope="col">Agent</th>
              <th scope="col">Status</th>
              <th scope="col">Time left</th>
              <th scope="col">Why</th>
              <th scope="col">Counts as</th>
              <th scope="col">Devices</th>
              <th scope="col">Set status</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((ag) => (
              <TeamRow key={ag.id} session={session} ag={ag} custom={custom(ag.status.custom_status)} groups={ag.groups.map(groupName).join(", ")} say={setNote} />
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

/** "10:42", or "Dec 8, 10:42" on another day, of a server time, in this browser's zone. */
function since(ms: number, offset: number): string {
  const t = ms - offset;
  const today = new Date().toDateString() === new Date(t).toDateString();
  return new Intl.DateTimeFormat(undefined, today ? { hour: "2-digit", minute: "2-digit", hourCycle: "h23" } : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(t);
}

function TeamRow(props: { session: Session; ag: PresenceAgent; custom: string | null; groups: string; say: (t: string) => void }) {
  const { session, ag } = props;
  const s = ag.status;
  const [pick, setPick] = useState<AgentStatus>(s.status);
  const [error, setError] = useState<string | null>(null);
  const now = session.now();
  const apply = async () => {
    setError(null);
    try {
      await session.call("PUT", `/v1/admin/agents/${encodeURIComponent(ag.id)}/status`, { status: pick, op_id: uuid() } satisfies AdminSetStatusRequest & { op_id: string });
      props.say(`${ag.name} is set ${STATUS_WORD[pick].toLowerCase()}.`);
    } catch (err) {
      setError(errorsOf(err, () => false).form);
    }
  };
  const id = `team-${ag.id}`;
  return (
    <tr data-agent-id={ag.id} data-availability={ag.availability} data-status={s.status}>
      <th scope="row">
        {ag.name}
        <div class="hint">{props.groups || "every group"}</div>
      </th>
      <td>
        <span class={`badge ${s.status}`}>{STATUS_WORD[s.status]}</span> {props.custom}
        {s.note && <div class="hint note">“{s.note}”</div>}
      </td>
      <td>
        {s.until !== null ? (
          <>
            {span(s.until - now)} left{s.then ? <span class="hint">, then {s.then}</span> : null}
          </>
        ) : (
          <span class="hint">until changed</span>
        )}
      </td>
      <td>{CAUSE_TEXT[s.cause] || s.cause}</td>
      <td>
        <span class={`dot c-${ag.availability}`} aria-hidden="true" /> {AV_WORD[ag.availability] || ag.availability}
        {ag.since !== null && (
          <div class="hint">
            since {since(ag.since, session.clockOffset)} ({span(now - ag.since)})
          </div>
        )}
      </td>
      <td>
        {ag.devices.length || "None"}
        {ag.devices.length > 0 && <div class="hint">{ag.devices.map((x) => x.name).join(", ")}</div>}
      </td>
      <td>
        <label for={`${id}-status`} class="sr-only">
          New status for {ag.name}
        </label>
        <select id={`${id}-status`} value={pick} onChange={(e) => setPick((e.target as HTMLSelectElement).value as AgentStatus)}>
          {STATUSES.map((x) => (
            <option key={x} value={x}>
              {STATUS_WORD[x]}
            </option>
          ))}
        </select>{" "}
        <button type="button" onClick={() => void apply()} aria-label={`Set status of ${ag.name}`}>
          Set
        </button>
        {error && (
          <p class="form-error" role="alert">
            {error}
          </p>
        )}
      </td>
    </tr>
  );
}
