// The Presence dashboard (served at /app/): the page is one device of platform `web`.
// Agents sign in, switch status from the avatar menu (for a while, a custom status, with a
// note), see changes from their other devices at once with the time left and why, read their
// status log, list and sign out their devices, and see the chat box as visitors do. Owners and admins
// also get the administration pages (admin.tsx). Agents who open an admin address see a
// refusal, and the API refuses them anyway.

import { render } from "preact";
import { Fragment, jsx, jsxs } from "preact/jsx-runtime";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type { AgentStatus, ChangePasswordRequest, ChatboxStatus, Reason, SessionInfo, StatusLogEntry, StatusLogPage, StatusTiming, StatusView } from "../shared/wire";
import { ApiError, type Session as S, Session, uuid } from "./session";
import { Errors, Field, FieldError, FormError, Link, NO_ERRORS, errorsOf, focusError, invalid, navigate, usePath } from "./ui";
import { CAUSE_WORD, STATUS_WORD, reasonText, span, when } from "./words";

const session = new Session();

// ----- the administration pages, loaded when first opened --------------------------------------

/** What admin.js (built from admin.tsx, see build.mjs) takes from this script. */
(window as any).__presence = { Fragment, jsx, jsxs, useEffect, useLayoutEffect, useRef, useState, ApiError, uuid };

type AdminPages = typeof import("./admin");
let admin: Promise<AdminPages> | null = null;

/** Loads /app/admin.js once; it hands its pages over as `window.__presenceAdmin`. Every agent's
 * own timeline (charts shared with the reports) is in it too, so it keeps the first load small. */
function loadAdmin(): Promise<AdminPages> {
  return (admin ||= new Promise((ok, fail) => {
    const s = document.createElement("script");
    s.src = "/app/admin.js";
    s.onload = () => ok((window as any).__presenceAdmin);
    s.onerror = () => {
      admin = null;
      s.remove();
      fail(new Error("could not load /app/admin.js; reload to try again"));
    };
    document.head.append(s);
  }));
}

function lazy(name: Exclude<keyof AdminPages, "default">) {
  return function AdminPage(p: { session: S }) {
    const [m, set] = useState<AdminPages | null>(null);
    const [error, setError] = useState<string | null>(null);
    useEffect(() => void loadAdmin().then(set, (e: Error) => setError(e.message)), []);
    if (error)
      return (
        <p class="form-error" role="alert">
          {error}
        </p>
      );
    if (!m) return <p>Loading…</p>;
    const V = m[name] as (p: { session: S }) => any;
    return <V session={p.session} />;
  };
}

interface Page {
  path: string;
  title: string;
  admin?: boolean;
  view: (p: { session: S }) => any;
}

const PAGES: Page[] = [
  { path: "/app/", title: "Chat box", view: Overview },
  { path: "/app/devices", title: "My devices", view: Devices },
  { path: "/app/log", title: "My status log", view: StatusLog },
  { path: "/app/history", title: "My timeline", view: lazy("MyTimelinePage") },
  { path: "/app/admin/team", title: "Team", admin: true, view: lazy("TeamPage") },
  { path: "/app/admin/reports", title: "Reports", admin: true, view: lazy("ReportsPage") },
  { path: "/app/admin/agents", title: "Agents", admin: true, view: lazy("AgentsPage") },
  { path: "/app/admin/statuses", title: "Custom statuses", admin: true, view: lazy("CustomStatusesPage") },
  { path: "/app/admin/groups", title: "Groups", admin: true, view: lazy("GroupsPage") },
  { path: "/app/admin/hours", title: "Opening hours", admin: true, view: lazy("HoursPage") },
  { path: "/app/admin/settings", title: "Settings", admin: true, view: lazy("SettingsPage") },
  { path: "/app/admin/embed", title: "Embed", admin: true, view: lazy("EmbedPage") },
  { path: "/app/admin/sign-in", title: "Sign-in", admin: true, view: lazy("SignInPage") },
  { path: "/app/admin/api-keys", title: "API keys", admin: true, view: lazy("ApiKeysPage") },
  { path: "/app/admin/webhooks", title: "Webhooks", admin: true, view: lazy("WebhooksPage") },
];

function useSession(): number {
  const [n, set] = useState(0);
  useEffect(() => session.on(() => set((x) => x + 1)), []);
  return n;
}

const isAdmin = () => session.me?.agent.role === "owner" || session.me?.agent.role === "admin";

function App() {
  useSession();
  const path = usePath();
  const [booting, setBooting] = useState(!!session.token);
  useEffect(() => {
    if (session.token) {
      session
        .start()
        .catch(() => {})
        .finally(() => setBooting(false));
    }
  }, []);
  const page = PAGES.find((p) => p.path === path || p.path === `${path}/`);
  useEffect(() => {
    document.title = `${!session.token ? "Sign in" : page ? page.title : "Not found"} · Presence`;
    document.getElementById("page-title")?.focus({ preventScroll: true });
  }, [path, !!session.token, !!session.me]);

  if (booting) return <main><p>Loading…</p></main>;
  if (!session.token || !session.me) return <Login />;
  let body;
  if (!page) {
    body = (
      <>
        <h1 id="page-title" tabIndex={-1}>Page not found</h1>
        <p>
          There is no page at this address. <Link href="/app/">Go to the chat box</Link>.
        </p>
      </>
    );
  } else if (page.admin && !isAdmin()) {
    body = <Refusal title={page.title} />;
  } else {
    const V = page.view;
    body = (
      <>
        <h1 id="page-title" tabIndex={-1}>{page.title}</h1>
        <V session={session} />
      </>
    );
  }
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Presence</span>
        <Announcer />
        <AvatarMenu />
      </header>
      <nav class="side" aria-label="Pages">
        <ul>
          {PAGES.filter((p) => !p.admin || isAdmin()).map((p) => (
            <li key={p.path}>
              <Link href={p.path} current={p === page}>
                {p.title}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main">{body}</main>
    </>
  );
}

function Refusal(props: { title: string }) {
  return (
    <>
      <h1 id="page-title" tabIndex={-1}>{props.title}: not allowed</h1>
      <div class="card refusal" role="alert">
        <p>
          <strong>Not allowed: you do not have permission to open this page.</strong> {props.title} is for owners and
          admins of the account; you are signed in as {session.me?.agent.name} with the role {session.me?.agent.role}.
        </p>
        <p>
          Ask an owner or admin of your account if you need a change here. <Link href="/app/">Back to the chat box</Link>
        </p>
      </div>
    </>
  );
}

// ----- sign in -----------------------------------------------------------------------------

function Login() {
  const [account, setAccount] = useState(session.account);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    document.getElementById("page-title")?.focus({ preventScroll: true });
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await session.login(account.trim(), email.trim(), password);
      setErrs(NO_ERRORS);
      if (location.pathname === "/app/login") navigate("/app/");
    } catch (err) {
      const known = (f: string) => ["account", "email", "password"].includes(f);
      let x = errorsOf(err, known);
      if ((err as any)?.code === "invalid_credentials") {
        x = { fields: {}, form: "The account, email or password is wrong." };
      }
      setErrs(x);
      focusError("login", x);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main">
      <h1 id="page-title" tabIndex={-1}>Sign in to Presence</h1>
      {session.ended && (
        <p class="card" role="status">
          {session.ended}
        </p>
      )}
      <form class="card" onSubmit={submit} noValidate aria-label="Sign in">
        <Field prefix="login" errs={errs} field="account" label="Account" value={account} onInput={setAccount} autocomplete="organization" hint="The account's short name, for example demo." required />
        <Field prefix="login" errs={errs} field="email" label="Email" type="email" value={email} onInput={setEmail} autocomplete="username" required />
        <Field prefix="login" errs={errs} field="password" label="Password" type="password" value={password} onInput={setPassword} autocomplete="current-password" required />
        <FormError prefix="login" errs={errs} />
        <p>
          <button class="primary" type="submit" disabled={busy}>
            Sign in
          </button>
        </p>
        <p class="hint">This browser tab becomes one of your devices while it is open.</p>
      </form>
    </main>
  );
}

// ----- the avatar menu ---------------------------------------------------------------------

const STATUSES: AgentStatus[] = ["online", "busy", "offline"];
/** The menu's "for a while" choices. */
const WHILE: [string, number][] = [
  ["15 min", 900000],
  ["30 min", 1800000],
  ["1 h", 3600000],
];

/** Re-renders every second while `on`: the time left of a timed status counts down. */
function useTick(on: boolean): void {
  const [, set] = useState(0);
  useEffect(() => {
    if (!on) return;
    const t = window.setInterval(() => set((x) => x + 1), 1000);
    return () => clearInterval(t);
  }, [on]);
}

/** "☕ Lunch" for a custom status id, from the account's list. */
function customLabel(id: string | null): string | null {
  const c = id ? session.me?.custom_statuses?.find((x) => x.id === id) : null;
  return c ? `${c.emoji ? `${c.emoji} ` : ""}${c.label}` : id;
}

/** What the chip says besides the status: "☕ Lunch · 24 min left · then online · set by an admin". */
function statusDetail(s: StatusView | null): string {
  if (!s) return "";
  return [
    customLabel(s.custom_status),
    s.until !== null && `${span(s.until - session.now())} left`,
    s.until !== null && s.then && `then ${s.then}`,
    CAUSE_WORD[s.cause],
  ]
    .filter(Boolean)
    .join(" · ");
}

function initials(name: string): string {
  return name
    .split(/\s+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((w) => w[0]!.toUpperCase())
    .join("");
}

function AvatarMenu() {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const button = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLUListElement>(null);
  const [dlg, setDlg] = useState<{ status: AgentStatus; at: boolean } | null>(null);
  const me = session.me!;
  const cur = session.status;
  const status = cur?.status || "offline";
  useTick(!!cur?.until);
  const detail = statusDetail(cur);
  const customs = me.custom_statuses || [];

  const items = () => Array.from(menu.current?.querySelectorAll<HTMLElement>("[role^=menuitem]") || []);
  const focusItem = (i: number) => {
    const xs = items();
    xs[(i + xs.length) % xs.length]?.focus();
  };
  const want = useRef<"first" | "last">("first");
  const show = (focus: "first" | "last") => {
    want.current = focus;
    setOpen(true);
    // The account's custom statuses may have changed since the page loaded.
    void session.refresh().catch(() => {});
  };
  // Focus moves into the menu as soon as it is drawn.
  useLayoutEffect(() => {
    if (!open) return;
    const xs = items();
    const f = want.current;
    xs[f === "last" ? xs.length - 1 : 0]?.focus();
  }, [open]);
  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };
  useEffect(() => {
    if (!open) return;
    const away = (e: MouseEvent) => {
      const t = e.target as Node;
      if (!menu.current?.contains(t) && !button.current?.contains(t)) setOpen(false);
    };
    document.addEventListener("mousedown", away);
    return () => document.removeEventListener("mousedown", away);
  }, [open]);

  const choose = async (s: AgentStatus, t?: StatusTiming) => {
    close(true);
    setError(null);
    try {
      await session.setStatus(s, t);
    } catch (e) {
      setError(`Could not set your status: ${(e as Error).message}`);
    }
  };
  const act = async (what: string) => {
    close(what !== "signout");
    if (what[0] === "/") navigate(what);
    if (what === "signout") await session.logout();
  };
  const ask = (s: AgentStatus, at: boolean) => {
    close(false);
    setDlg({ status: s, at });
  };
  const onButtonKey = (e: KeyboardEvent) => {
    if (e.key === "ArrowDown" || e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      show("first");
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      show("last");
    }
  };
  const onMenuKey = (e: KeyboardEvent) => {
    const xs = items();
    const i = xs.indexOf(document.activeElement as HTMLElement);
    if (e.key === "ArrowDown") focusItem(i + 1);
    else if (e.key === "ArrowUp") focusItem(i - 1);
    else if (e.key === "Home") focusItem(0);
    else if (e.key === "End") focusItem(xs.length - 1);
    else if (e.key === "Escape") close(true);
    else if (e.key === "Tab") setOpen(false);
    else if (e.key === "Enter" || e.key === " ") (document.activeElement as HTMLElement)?.click();
    else if (e.key.length === 1 && /\S/.test(e.key) && !e.ctrlKey && !e.metaKey && !e.altKey) {
      // Type-ahead: the next item starting with that letter ("b" for Busy).
      const k = e.key.toLowerCase();
      for (let j = 1; j <= xs.length; j++) {
        const x = xs[(i + j) % xs.length]!;
        if ((x.textContent || "").trim().toLowerCase().startsWith(k)) {
          x.focus();
          break;
        }
      }
    } else return;
    if (e.key !== "Tab") e.preventDefault();
  };

  return (
    <div class="avatar">
      <button
        ref={button}
        type="button"
        id="status-button"
        aria-haspopup="menu"
        aria-expanded={open ? "true" : "false"}
        aria-controls="status-menu"
        aria-label={`${me.agent.name}, status ${STATUS_WORD[status]}. Change status`}
        aria-describedby="my-status-detail"
        onClick={() => (open ? close(false) : show("first"))}
        onKeyDown={onButtonKey}
      >
        <span class="initials" aria-hidden="true">
          {initials(me.agent.name)}
        </span>
        <span aria-hidden="true">{me.agent.name}</span>
        <span class={`badge ${status}`} id="my-status" aria-hidden="true">
          {STATUS_WORD[status]}
        </span>
        <span class="chip" id="my-status-detail" title={cur?.note || undefined}>
          {detail}
        </span>
      </button>
      {open && (
        <ul role="menu" id="status-menu" aria-label="Your status" ref={menu} onKeyDown={onMenuKey}>
          {STATUSES.map((s) => (
            <li key={s} role="menuitemradio" aria-checked={s === status && !cur?.custom_status ? "true" : "false"} tabIndex={-1} onClick={() => void choose(s)}>
              <span class={`dot ${s}`} aria-hidden="true" />
              {STATUS_WORD[s]}
            </li>
          ))}
          {(["busy", "offline"] as const).map((s) => (
            <li key={s} role="group" class="while" aria-label={`${STATUS_WORD[s]} for a while`}>
              <span aria-hidden="true">{STATUS_WORD[s]} for</span>
              {WHILE.map(([w, ms]) => (
                <span key={w} role="menuitem" tabIndex={-1} aria-label={`${STATUS_WORD[s]} for ${w}`} onClick={() => void choose(s, { duration_ms: ms })}>
                  {w}
                </span>
              ))}
              <span role="menuitem" tabIndex={-1} aria-label={`${STATUS_WORD[s]} until a time…`} onClick={() => ask(s, true)}>
                until…
              </span>
            </li>
          ))}
          {customs.length > 0 && <li role="separator" />}
          {customs.map((c) => (
            <li key={c.id} role="menuitemradio" aria-checked={c.id === cur?.custom_status ? "true" : "false"} tabIndex={-1} onClick={() => void choose(c.base, { custom_status: c.id })}>
              <span class={`dot ${c.base}`} aria-hidden="true" />
              {customLabel(c.id)}
              {c.default_duration_ms && <span class="hint">{span(c.default_duration_ms)}</span>}
            </li>
          ))}
          <li role="separator" />
          <li role="menuitem" tabIndex={-1} onClick={() => ask(status, false)}>
            Set a status with a note…
          </li>
          <li role="menuitem" tabIndex={-1} onClick={() => void act("/app/devices")}>
            My devices
          </li>
          <li role="menuitem" tabIndex={-1} onClick={() => void act("/app/log")}>
            My status log
          </li>
          <li role="menuitem" tabIndex={-1} onClick={() => void act("signout")}>
            Sign out
          </li>
        </ul>
      )}
      {dlg && (
        <SetStatus
          {...dlg}
          done={() => {
            setDlg(null);
            button.current?.focus();
          }}
        />
      )}
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** Tells screen readers about status changes, wherever they came from. */
function Announcer() {
  const [text, setText] = useState("");
  const last = useRef<number | null>(null);
  const s = session.status;
  useEffect(() => {
    if (!s) return;
    if (last.current !== null && s.version !== last.current) {
      const other = s.changed_by_device && s.changed_by_device !== session.deviceId;
      const why = CAUSE_WORD[s.cause];
      const by = why ? ` (${why})` : other ? " on another device" : "";
      setText(`Your status is now ${s.status}${by}.`);
    }
    last.current = s.version;
  }, [s?.version]);
  return (
    <span class="sr-only" role="status" aria-live="polite" id="announcer">
      {text}
    </span>
  );
}

// ----- the chat box as visitors see it ---------------------------------------------------------

function ViewCard(props: { title: string; status: ChatboxStatus; reason: Reason; next: number | null; message?: string | null; id: string }) {
  return (
    <section class="card view" aria-labelledby={`${props.id}-h`} data-view={props.id}>
      <h3 id={`${props.id}-h`}>{props.title}</h3>
      <p>
        <span class={`badge ${props.status}`}>{STATUS_WORD[props.status]}</span>
      </p>
      <p class="reason">{reasonText(props.status, props.reason, props.next)}.</p>
      {props.message && <p class="hint">Visitors read: “{props.message}”</p>}
    </section>
  );
}

function Overview() {
  useSession();
  const me = session.me!;
  const st = session.status;
  const v = session.chatbox;
  useTick(!!st?.until);
  const byName = (id: string | null) => {
    if (id === null) return st?.cause === "admin" ? "by an admin" : "by the server";
    if (id === session.deviceId) return "on this device";
    const d = me.sessions.find((x) => x.device.id === id);
    return d ? `on ${d.device.name}` : "on another device";
  };
  return (
    <>
      <section class="card" aria-labelledby="you-h">
        <h2 id="you-h">Your status</h2>
        <p>
          You are <span class={`badge ${st?.status}`} id="overview-status">{STATUS_WORD[st?.status || "offline"]}</span>
          {st && st.version > 0 && (
            <span class="hint">
              {" "}
              — changed {byName(st.changed_by_device)} {when(st.intent_at - session.clockOffset)}
            </span>
          )}
        </p>
        {st && (st.until || st.custom_status || st.cause !== "manual") && (
          <p id="overview-detail">
            {statusDetail(st).replace(/^./, (c) => c.toUpperCase())}
            {st.until && ` (ends ${when(st.until - session.clockOffset)})`}
          </p>
        )}
        {st?.note && <p id="overview-note">Note: {st.note}</p>}
        <p class="hint">
          Change it from the menu under your name (top right). You count for the chat box while you are online or busy and
          at least one of your devices is signed in.
        </p>
        {!session.live && <p class="hint">Connecting to live updates…</p>}
      </section>
      <h2>The chat box as visitors see it</h2>
      {v ? (
        <div class="views">
          <ViewCard id="account" title="Whole account (no group chosen)" status={v.status} reason={v.reason} next={v.next_change_at} message={v.message} />
          {v.groups.map((g) => (
            <ViewCard key={g.key} id={`group-${g.key}`} title={`Group ${g.name}`} status={g.status} reason={g.reason} next={v.next_change_at} message={g.message} />
          ))}
        </div>
      ) : (
        <p>Loading…</p>
      )}
    </>
  );
}

// ----- set a status: for a while, until a time, a custom status, a note -----------------------

/** Milliseconds from now to the next `HH:MM` on this browser's clock (tomorrow if passed). */
function toTime(hhmm: string): number | null {
  const m = /^(\d\d):(\d\d)$/.exec(hhmm);
  if (!m) return null;
  const d = new Date();
  d.setHours(Number(m[1]), Number(m[2]), 0, 0);
  if (d.getTime() <= Date.now()) d.setDate(d.getDate() + 1);
  return d.getTime() - Date.now();
}

function SetStatus(props: { status: AgentStatus; at: boolean; done: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [pick, setPick] = useState<string>(props.status);
  const [dur, setDur] = useState(props.at ? "at" : "");
  const [at, setAt] = useState("");
  const [then, setThen] = useState("");
  const [note, setNote] = useState(session.status?.note || "");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const p = "set";
  useLayoutEffect(() => {
    ref.current?.showModal();
    if (props.at) document.getElementById(`${p}-duration_ms`)?.focus();
  }, []);
  const custom = session.me?.custom_statuses?.find((c) => `c:${c.id}` === pick);
  const submit = async (e: Event) => {
    e.preventDefault();
    const ms = dur === "at" ? toTime(at) : dur ? Number(dur) : null;
    if (dur === "at" && ms === null) {
      const x = { fields: { duration_ms: "duration_ms: choose a time" }, form: null };
      setErrs(x);
      return focusError(p, x);
    }
    try {
      await session.setStatus(custom ? custom.base : (pick as AgentStatus), {
        duration_ms: ms,
        then: ms && then ? (then as AgentStatus) : null,
        custom_status: custom ? custom.id : null,
        note: note.trim() || null,
      });
      ref.current?.close();
    } catch (err) {
      const x = errorsOf(err, (f) => ["duration_ms", "then", "custom_status", "note"].includes(f));
      setErrs(x);
      focusError(p, x);
    }
  };
  const sel = (field: string, label: string, value: string, set: (v: string) => void, opts: [string, string][]) => {
    const a = invalid(p, errs, field);
    return (
      <div>
        <label for={a.id}>{label}</label>
        <select {...a} value={value} onChange={(e) => set((e.target as HTMLSelectElement).value)}>
          {opts.map(([v, w]) => (
            <option key={v} value={v}>
              {w}
            </option>
          ))}
        </select>
        <FieldError prefix={p} errs={errs} field={field} />
      </div>
    );
  };
  const words = STATUSES.map((s) => [s, STATUS_WORD[s]] as [string, string]);
  return (
    <dialog ref={ref} aria-labelledby="set-h" onClose={props.done}>
      <form onSubmit={submit} noValidate>
        <h2 id="set-h">Set your status</h2>
        <div class="row">
          {sel("custom_status", "Status", pick, setPick, [...words, ...(session.me?.custom_statuses || []).map((c) => [`c:${c.id}`, `${customLabel(c.id)} (${c.base})`] as [string, string])])}
          {sel(dur === "at" ? "for" : "duration_ms", "For", dur, setDur, [
            ["", custom?.default_duration_ms ? `its default, ${span(custom.default_duration_ms)}` : "until I change it"],
            ...WHILE.map(([w, ms]) => [String(ms), w] as [string, string]),
            ["at", "until a time…"],
          ])}
          {dur === "at" && <Field prefix={p} errs={errs} field="duration_ms" label="Until (time)" type="time" value={at} onInput={setAt} />}
          {dur && sel("then", "Then", then, setThen, [["", "back to what it was"], ...words.map(([s, w]) => [s, `${w}`] as [string, string])])}
        </div>
        {(() => {
          const a = invalid(p, errs, "note", "x");
          return (
            <div>
              <label for={a.id}>Note for your teammates</label>
              <input {...a} type="text" value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
              <p class="hint" id={`${a.id}-hint`}>
                {[...note].length}/100 characters. Visitors never see it.
              </p>
              <FieldError prefix={p} errs={errs} field="note" />
            </div>
          );
        })()}
        <FormError prefix={p} errs={errs} />
        <p>
          <button class="primary" type="submit">
            Set status
          </button>{" "}
          <button type="button" onClick={() => ref.current?.close()}>
            Cancel
          </button>
        </p>
      </form>
    </dialog>
  );
}

// ----- my status log -------------------------------------------------------------------------

const stamp = (ms: number) =>
  new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(ms - session.clockOffset);

function StatusLog() {
  const [rows, setRows] = useState<StatusLogEntry[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const me = session.me!;
  const load = async (after?: string) => {
    try {
      const r = await session.call<StatusLogPage>("GET", `/v1/me/status-log?limit=50${after ? `&after=${encodeURIComponent(after)}` : ""}`);
      setRows((x) => (after ? [...x, ...r.entries] : r.entries));
      setNext(r.next);
      setError(null);
    } catch (e) {
      setError(`Could not load your status log: ${(e as Error).message}`);
    }
  };
  useEffect(() => void load(), []);
  const by = (e: StatusLogEntry) =>
    e.changed_by_agent
      ? e.changed_by_agent === me.agent.id
        ? "you, as admin"
        : "an admin"
      : e.changed_by_device
        ? e.changed_by_device === session.deviceId
          ? "this tab"
          : me.sessions.find((x) => x.device.id === e.changed_by_device)?.device.name || e.changed_by_device
        : "the server";
  return (
    <>
      <p>Every change of your status, newest first: when, what, until when, why and from where.</p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {next === undefined && !error ? (
        <p>Loading…</p>
      ) : (
        <table>
          <caption class="sr-only">Your status log</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Status</th>
              <th scope="col">Until</th>
              <th scope="col">Why</th>
              <th scope="col">By</th>
              <th scope="col">Note</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.version} data-version={e.version}>
                <td>{stamp(e.applied_at)}</td>
                <td>
                  <span class={`badge ${e.status}`}>{STATUS_WORD[e.status]}</span> {customLabel(e.custom_status)}
                </td>
                <td>{e.until ? `${stamp(e.until)}${e.then ? `, then ${e.then}` : ""}` : ""}</td>
                <td>{CAUSE_WORD[e.cause] || "chosen"}</td>
                <td>{by(e)}</td>
                <td>{e.note}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && (
        <p>
          <button type="button" onClick={() => void load(next)}>
            Older entries
          </button>
        </p>
      )}
    </>
  );
}

// ----- my devices ----------------------------------------------------------------------------

function leaseText(s: SessionInfo): string {
  // Leases are on the server's clock; shown on this browser's.
  const until = s.lease_until - session.clockOffset;
  const left = Math.round((until - Date.now()) / 1000);
  const at = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(until);
  return left > 0 ? `until ${at} (${left} s left)` : `ended ${at}`;
}

function Devices() {
  useSession();
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    void session.refresh().catch(() => {});
    const t = window.setInterval(() => void session.refresh().catch(() => {}), 5000);
    return () => clearInterval(t);
  }, []);
  const me = session.me!;
  const signOut = async (s: SessionInfo) => {
    setError(null);
    try {
      await session.call("DELETE", `/v1/me/sessions/${encodeURIComponent(s.session_id)}`);
      setNote(`${s.device.name} is signed out.`);
      await session.refresh();
    } catch (e) {
      setError(`Could not sign out ${s.device.name}: ${(e as Error).message}`);
    }
  };
  return (
    <>
      <p>Every device signed in as {me.agent.name}. A device counts for the chat box while its lease lasts; it renews the lease with each heartbeat.</p>
      <button type="button" onClick={() => void session.refresh()}>
        Refresh
      </button>
      <p role="status">{note}</p>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <table>
        <caption class="sr-only">Your devices</caption>
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Platform</th>
            <th scope="col">Lease</th>
            <th scope="col">Connected</th>
            <th scope="col">Action</th>
          </tr>
        </thead>
        <tbody>
          {me.sessions.map((s) => {
            const mine = s.device.id === session.deviceId;
            return (
              <tr key={s.session_id} data-session={s.session_id}>
                <th scope="row">
                  {s.device.name}
                  {mine && <span class="hint"> (this tab)</span>}
                  <div class="hint">{s.device.app_version}</div>
                </th>
                <td>{s.device.platform}</td>
                <td>
                  {leaseText(s)}
                  {s.mode === "background" ? " (background)" : ""}
                  {s.push ? `, push ${s.push.provider}` : ""}
                </td>
                <td>{s.connected ? "Yes, live" : "No"}</td>
                <td>
                  {mine ? (
                    <button type="button" onClick={() => void session.logout()}>
                      Sign out this tab
                    </button>
                  ) : (
                    <button type="button" class="danger" onClick={() => void signOut(s)} aria-label={`Sign out ${s.device.name}`}>
                      Sign out
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <ChangePassword />
    </>
  );
}

/** The signed-in agent's own password: changing it signs out every other device. */
function ChangePassword() {
  const prefix = "password";
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [done, setDone] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setDone(null);
    try {
      await session.call("PUT", "/v1/me/password", { current, new: next } satisfies ChangePasswordRequest);
      setErrs(NO_ERRORS);
      setCurrent("");
      setNext("");
      setDone("Password changed. Your other devices were signed out.");
      await session.refresh();
    } catch (err) {
      const x =
        err instanceof ApiError && err.code === "invalid_credentials"
          ? { fields: { current: "This is not your current password." }, form: null }
          : errorsOf(err, (f) => f === "new" || f === "current");
      setErrs(x);
      focusError(prefix, x);
    }
  };
  return (
    <form onSubmit={submit} aria-label="Change your password" noValidate>
      <h2>Change your password</h2>
      <Field prefix={prefix} errs={errs} field="current" label="Current password" type="password" value={current} onInput={setCurrent} autocomplete="current-password" />
      <Field prefix={prefix} errs={errs} field="new" label="New password" hint="At least 10 characters." type="password" value={next} onInput={setNext} autocomplete="new-password" />
      <FormError prefix={prefix} errs={errs} />
      <p>
        <button class="primary" type="submit">
          Change password
        </button>
      </p>
      <p role="status">{done}</p>
    </form>
  );
}

render(<App />, document.getElementById("root")!);
