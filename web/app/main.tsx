// The Presence dashboard (served at /app/): the page is one device of platform `web`.
// Agents sign in, switch status from the avatar menu, see changes from their other devices at
// once, list and sign out their devices, and see the chat box as visitors do. Owners and admins
// also get the administration pages (admin.tsx). Agents who open an admin address see a
// refusal, and the API refuses them anyway.

import { render } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { AgentsPage, EmbedPage, GroupsPage, HoursPage, SettingsPage } from "./admin";
import type { AgentStatus, ChatboxStatus, Reason, SessionInfo } from "../shared/wire";
import { type Session as S, Session } from "./session";
import { Errors, Field, FormError, Link, NO_ERRORS, errorsOf, focusError, navigate, usePath } from "./ui";
import { STATUS_WORD, reasonText, when } from "./words";

const session = new Session();

interface Page {
  path: string;
  title: string;
  admin?: boolean;
  view: (p: { session: S }) => any;
}

const PAGES: Page[] = [
  { path: "/app/", title: "Chat box", view: Overview },
  { path: "/app/devices", title: "My devices", view: Devices },
  { path: "/app/admin/agents", title: "Agents", admin: true, view: AgentsPage },
  { path: "/app/admin/groups", title: "Groups", admin: true, view: GroupsPage },
  { path: "/app/admin/hours", title: "Opening hours", admin: true, view: HoursPage },
  { path: "/app/admin/settings", title: "Settings", admin: true, view: SettingsPage },
  { path: "/app/admin/embed", title: "Embed", admin: true, view: EmbedPage },
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
  const me = session.me!;
  const status = session.status?.status || "offline";

  const items = () => Array.from(menu.current?.querySelectorAll<HTMLElement>("[role^=menuitem]") || []);
  const focusItem = (i: number) => {
    const xs = items();
    xs[(i + xs.length) % xs.length]?.focus();
  };
  const want = useRef<"first" | "last">("first");
  const show = (focus: "first" | "last") => {
    want.current = focus;
    setOpen(true);
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

  const choose = async (s: AgentStatus) => {
    close(true);
    setError(null);
    try {
      await session.setStatus(s);
    } catch (e) {
      setError(`Could not set your status: ${(e as Error).message}`);
    }
  };
  const act = async (what: string) => {
    close(what !== "signout");
    if (what === "devices") navigate("/app/devices");
    if (what === "signout") await session.logout();
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
      </button>
      {open && (
        <ul role="menu" id="status-menu" aria-label="Your status" ref={menu} onKeyDown={onMenuKey}>
          {STATUSES.map((s) => (
            <li key={s} role="menuitemradio" aria-checked={s === status ? "true" : "false"} tabIndex={-1} onClick={() => void choose(s)}>
              <span class={`dot ${s}`} aria-hidden="true" />
              {STATUS_WORD[s]}
            </li>
          ))}
          <li role="separator" />
          <li role="menuitem" tabIndex={-1} onClick={() => void act("devices")}>
            My devices
          </li>
          <li role="menuitem" tabIndex={-1} onClick={() => void act("signout")}>
            Sign out
          </li>
        </ul>
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
      const by = s.changed_by_device === null ? " by an admin" : other ? " on another device" : "";
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
  const byName = (id: string | null) => {
    if (id === null) return "by an admin";
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
    </>
  );
}

render(<App />, document.getElementById("root")!);
