// Webhooks for owners and admins (`/app/admin/webhooks`): the endpoints of the customer's
// backend that the account's events are POSTed to. Add one (URL, every event type or some,
// a description), see its signing secret once, rotate it (shown once again, with until when
// the old one keeps signing), send a test event and read the answer, disable, enable and
// delete one, and read its delivery log (pending, delivered and dead events, with attempts,
// the last answer and the next attempt), retrying a dead or pending event. Part of admin.js.
//
// The server judges every field: a `422` naming `url`, `events` or `description` shows next
// to that field and what was typed stays; other refusals (`409` past ten endpoints, a retry
// of a delivered event) show as an alert where they happened.

import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import type {
  CreatedWebhook,
  Delivery,
  DeliveryState,
  EventType,
  NewWebhook,
  RotatedSecret,
  Webhook,
  WebhookPatch,
  WebhookTestResult,
} from "../shared/wire";
import { Loading } from "./loading";
import type { Session } from "./session";
import { type Errors, Field, FieldError, FormError, NO_ERRORS, errorsOf, focusError, invalid } from "./ui";

type Props = { session: Session };

/** The most endpoints an account has (the server answers `409` past it). */
const MAX_ENDPOINTS = 10;
/** How many deliveries the log shows. */
const LOG_LIMIT = 50;
/** How often an open delivery log reads the server again. */
const LOG_REFRESH_MS = 5000;

const EVENT_TYPES: [EventType, string][] = [
  ["agent.status", "an agent's status changed"],
  ["agent.availability", "whether an agent counts for the chat box changed"],
  ["chatbox.view", "what a chat box shows changed"],
  ["session.started", "a device signed in"],
  ["session.ended", "a device signed out or was signed out"],
];

const STATE_WORD: Record<DeliveryState, string> = { pending: "Pending", ok: "Delivered", dead: "Dead" };
const STATE_BADGE: Record<DeliveryState, string> = { pending: "busy", ok: "online", dead: "bad" };

const enc = encodeURIComponent;

/** A time on the server's clock, in the reader's zone: "Mar 4, 10:42:07". */
function stamp(session: Session, ms: number): string {
  return new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(ms - session.clockOffset);
}

const labelOf = (h: { description: string | null; url: string }) => h.description || h.url;

function eventsText(events: string[]): string {
  return events.length === 1 && events[0] === "*" ? "All events, also types added later" : events.join(", ");
}

/** A secret shown once: after the endpoint is made (`until` null) or after a rotation. */
interface Shown {
  id: string;
  secret: string;
  until: number | null;
}

export function WebhooksPage({ session }: Props) {
  const [hooks, setHooks] = useState<Webhook[] | null>(null);
  const [refused, setRefused] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [shown, setShown] = useState<Shown | null>(null);
  const [note, setNote] = useState("");
  const load = async () => {
    try {
      setHooks(await session.call<Webhook[]>("GET", "/v1/admin/webhooks"));
      setError(null);
    } catch (e) {
      if ((e as { status?: number }).status === 403) setRefused(true);
      else setError((e as Error).message);
    }
  };
  useEffect(() => void load(), []);
  if (!hooks) return <Loading a={{ data: null, refused, error, reload: load, set: () => {} }} />;
  const made = async (c: CreatedWebhook) => {
    setShown({ id: c.id, secret: c.secret, until: null });
    setNote(`Added ${labelOf(c)}.`);
    await load();
  };
  return (
    <>
      <p>
        Presence POSTs your account's events to your backend as they happen, signed with the endpoint's secret the Standard Webhooks way (headers <code>webhook-id</code>,{" "}
        <code>webhook-timestamp</code>, <code>webhook-signature</code>). An endpoint gets its events in order; an answer other than 2xx is tried again, with backoff, for a day, then the
        event is dead. <code>docs/WEBHOOKS.md</code> shows the bodies and how to verify them.
      </p>
      <p class="hint">
        {hooks.length} of {MAX_ENDPOINTS} endpoints.
      </p>
      <p role="status" class="ok">
        {note}
      </p>
      {hooks.length === 0 && <p class="hint">No endpoints yet: add one below.</p>}
      {hooks.map((h) => (
        <Endpoint
          key={h.id}
          session={session}
          hook={h}
          shown={shown?.id === h.id ? shown : null}
          show={setShown}
          reload={load}
          say={setNote}
          gone={() => {
            if (shown?.id === h.id) setShown(null);
          }}
        />
      ))}
      <AddEndpoint session={session} made={made} />
    </>
  );
}

// ----- one endpoint ----------------------------------------------------------------------------

function Endpoint(props: {
  session: Session;
  hook: Webhook;
  shown: Shown | null;
  show: (s: Shown) => void;
  reload: () => Promise<void>;
  say: (t: string) => void;
  gone: () => void;
}) {
  const { session, hook } = props;
  const label = labelOf(hook);
  const prefix = `webhook-${hook.id}`;
  const path = `/v1/admin/webhooks/${enc(hook.id)}`;
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [deleting, setDeleting] = useState(false);
  const [testing, setTesting] = useState(false);
  const [tested, setTested] = useState<WebhookTestResult | null>(null);
  const fail = (err: unknown) => {
    const x = errorsOf(err, () => false);
    setErrs(x);
    focusError(prefix, x);
  };
  const test = async () => {
    setErrs(NO_ERRORS);
    setTested(null);
    setTesting(true);
    try {
      setTested(await session.call<WebhookTestResult>("POST", `${path}/test`));
    } catch (err) {
      fail(err);
    } finally {
      setTesting(false);
    }
  };
  const rotate = async () => {
    setErrs(NO_ERRORS);
    try {
      const r = await session.call<RotatedSecret>("POST", `${path}/rotate-secret`);
      props.show({ id: hook.id, secret: r.secret, until: r.previous_secret_until });
      props.say(`Rotated the secret of ${label}.`);
      await props.reload();
    } catch (err) {
      fail(err);
    }
  };
  const toggle = async () => {
    setErrs(NO_ERRORS);
    try {
      await session.call<Webhook>("PATCH", path, { enabled: !hook.enabled } satisfies WebhookPatch);
      props.say(hook.enabled ? `Disabled ${label}: nothing is sent to it until it is enabled again.` : `Enabled ${label}.`);
      await props.reload();
    } catch (err) {
      fail(err);
    }
  };
  const remove = async () => {
    try {
      await session.call("DELETE", path);
      props.gone();
      props.say(`Deleted ${label}.`);
      await props.reload();
    } catch (err) {
      setDeleting(false);
      fail(err);
    }
  };
  const overlap = hook.previous_secret_until !== null && hook.previous_secret_until > session.now();
  return (
    <section class="card webhook" aria-labelledby={`${prefix}-h`} data-webhook={hook.id}>
      <div class="wh-head">
        <h2 id={`${prefix}-h`}>{label}</h2>
        <span class={`badge ${hook.enabled ? "online" : "offline"}`}>{hook.enabled ? "Enabled" : "Disabled"}</span>
      </div>
      <dl class="facts">
        <dt>URL</dt>
        <dd>
          <code>{hook.url}</code>
        </dd>
        <dt>Events</dt>
        <dd>{eventsText(hook.events)}</dd>
        {!hook.enabled && (
          <>
            <dt>Disabled</dt>
            <dd class="wh-why">
              {hook.disabled_reason === "gone"
                ? "It answered 410 Gone, so nothing is sent to it. Enable it once the receiver is back."
                : "By an owner, admin or API key: nothing is sent to it until it is enabled again."}
            </dd>
          </>
        )}
        <dt>Added</dt>
        <dd>{stamp(session, hook.created_at)}</dd>
        {overlap && (
          <>
            <dt>Old secret</dt>
            <dd>Still signs beside the new one until {stamp(session, hook.previous_secret_until!)}.</dd>
          </>
        )}
      </dl>
      {props.shown && <SecretShown session={session} shown={props.shown} label={label} />}
      <p class="actions">
        <button type="button" onClick={() => void test()} disabled={testing} aria-label={`Send test event to ${label}`}>
          {testing ? "Sending…" : "Send test event"}
        </button>{" "}
        <button type="button" onClick={() => void rotate()} aria-label={`Rotate secret of ${label}`}>
          Rotate secret
        </button>{" "}
        <button type="button" onClick={() => void toggle()} aria-label={`${hook.enabled ? "Disable" : "Enable"} ${label}`}>
          {hook.enabled ? "Disable" : "Enable"}
        </button>{" "}
        {!deleting ? (
          <button type="button" class="danger" onClick={() => setDeleting(true)} aria-label={`Delete ${label}`}>
            Delete
          </button>
        ) : (
          <span role="group" aria-label={`Confirm deleting ${label}`}>
            Delete {label}? Its events not yet delivered are dropped.{" "}
            <button type="button" class="danger" onClick={() => void remove()}>
              Yes, delete {label}
            </button>{" "}
            <button type="button" onClick={() => setDeleting(false)}>
              Cancel
            </button>
          </span>
        )}
      </p>
      <div role="status" class="wh-test" id={`${prefix}-test`}>
        {tested && <TestAnswer r={tested} />}
      </div>
      <FormError prefix={prefix} errs={errs} />
      <DeliveryLog session={session} hook={hook} label={label} prefix={prefix} />
    </section>
  );
}

/** What the endpoint answered to a `webhook.test` event. */
function TestAnswer({ r }: { r: WebhookTestResult }) {
  const took = `${r.duration_ms} ms`;
  if (r.ok)
    return (
      <p class="ok">
        Test event delivered: it answered {r.status} in {took}.
      </p>
    );
  return (
    <p class="form-error">
      Test event not delivered: {r.status !== null ? `it answered ${r.status}` : "no answer"} after {took}
      {r.error ? ` (${r.error})` : ""}.
    </p>
  );
}

/** A signing secret, shown only this once, with a Copy button. */
function SecretShown(props: { session: Session; shown: Shown; label: string }) {
  const { shown } = props;
  const box = useRef<HTMLDivElement>(null);
  const code = useRef<HTMLElement>(null);
  const [copied, setCopied] = useState("");
  // Keyboard and screen reader users land on the secret as soon as it appears.
  useLayoutEffect(() => {
    setCopied("");
    box.current?.focus();
  }, [shown.secret]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(shown.secret);
      setCopied("Copied the secret.");
    } catch {
      const sel = window.getSelection();
      if (code.current && sel) {
        const r = document.createRange();
        r.selectNodeContents(code.current);
        sel.removeAllRanges();
        sel.addRange(r);
      }
      setCopied("The secret is selected: press Ctrl+C (⌘C) to copy it.");
    }
  };
  return (
    <div class="card secret" role="region" aria-label={`The signing secret of ${props.label}`} tabIndex={-1} ref={box}>
      <p>
        <strong>Copy the {shown.until === null ? "" : "new "}signing secret now:</strong> it is shown only this once. Your receiver checks each request's <code>webhook-signature</code>{" "}
        with it.
      </p>
      <pre class="wrap">
        <code ref={code}>{shown.secret}</code>
      </pre>
      {shown.until !== null && (
        <p class="wh-until">
          The old secret keeps signing beside this one for 24 h, until {stamp(props.session, shown.until)}: requests carry both signatures until then, so update your receiver
          before that.
        </p>
      )}
      <button type="button" onClick={() => void copy()}>
        Copy the secret
      </button>{" "}
      <span role="status">{copied}</span>
    </div>
  );
}

// ----- the delivery log --------------------------------------------------------------------------

function DeliveryLog(props: { session: Session; hook: Webhook; label: string; prefix: string }) {
  const { session, hook, label } = props;
  const prefix = `${props.prefix}-log`;
  const [open, setOpen] = useState(false);
  const [state, setState] = useState<"" | DeliveryState>("");
  const [rows, setRows] = useState<Delivery[] | null>(null);
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [note, setNote] = useState("");
  const path = `/v1/admin/webhooks/${enc(hook.id)}/deliveries`;
  const load = async () => {
    try {
      setRows(await session.call<Delivery[]>("GET", `${path}?limit=${LOG_LIMIT}${state ? `&state=${state}` : ""}`));
      setErrs(NO_ERRORS);
    } catch (err) {
      setErrs(errorsOf(err, () => false));
    }
  };
  useEffect(() => {
    if (!open) return;
    void load();
    const t = window.setInterval(() => void load(), LOG_REFRESH_MS);
    return () => clearInterval(t);
  }, [open, state]);
  const retry = async (d: Delivery) => {
    setNote("");
    try {
      await session.call("POST", `${path}/${enc(d.event_id)}/retry`);
      setNote(`Event ${d.seq} (${d.type}) will be sent again now.`);
      await load();
    } catch (err) {
      const x = errorsOf(err, () => false);
      setErrs(x);
      focusError(prefix, x);
    }
  };
  const filter = invalid(prefix, errs, "state");
  const next = (d: Delivery) => (d.state !== "pending" ? "—" : d.next_attempt_at !== null ? stamp(session, d.next_attempt_at) : "after the events before it");
  return (
    <div class="wh-log">
      <button type="button" class="toggle" aria-expanded={open ? "true" : "false"} aria-controls={`${prefix}-body`} onClick={() => setOpen(!open)} aria-label={`Delivery log of ${label}`}>
        Delivery log
      </button>
      {open && (
        <div id={`${prefix}-body`}>
          <div class="row">
            <div>
              <label for={filter.id}>Show</label>
              <select {...filter} value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value as "" | DeliveryState)}>
                <option value="">every event</option>
                <option value="pending">pending</option>
                <option value="ok">delivered</option>
                <option value="dead">dead</option>
              </select>
            </div>
            <div>
              <button type="button" onClick={() => void load()} aria-label={`Refresh the delivery log of ${label}`}>
                Refresh
              </button>
            </div>
          </div>
          <p class="hint">The newest {LOG_LIMIT} events first; read again every {LOG_REFRESH_MS / 1000} s while open. Dead events are kept 7 days.</p>
          <p role="status" class="ok">
            {note}
          </p>
          <FormError prefix={prefix} errs={errs} />
          {rows === null ? (
            <p>Loading…</p>
          ) : rows.length === 0 ? (
            <p class="hint">{state ? `No ${STATE_WORD[state].toLowerCase()} events.` : "No events yet: they appear here as they happen."}</p>
          ) : (
            <table class="log">
              <caption class="sr-only">Deliveries to {label}</caption>
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Event</th>
                  <th scope="col">State</th>
                  <th scope="col">Attempts</th>
                  <th scope="col">Last status</th>
                  <th scope="col">Last error</th>
                  <th scope="col">Next attempt</th>
                  <th scope="col">Action</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((d) => (
                  <tr key={d.event_id} data-event={d.event_id} data-state={d.state} data-type={d.type}>
                    <td class="when">{stamp(session, d.at)}</td>
                    <th scope="row">
                      {d.type}
                      <div class="hint">#{d.seq}</div>
                    </th>
                    <td>
                      <span class={`badge ${STATE_BADGE[d.state]}`}>{STATE_WORD[d.state]}</span>
                    </td>
                    <td>{d.attempts}</td>
                    <td>{d.last_status ?? "—"}</td>
                    <td class="err">{d.last_error ?? "—"}</td>
                    <td class="when">{next(d)}</td>
                    <td>
                      {d.state !== "ok" && (
                        <button type="button" onClick={() => void retry(d)} aria-label={`Retry event ${d.seq}`}>
                          Retry
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </div>
  );
}

// ----- a new endpoint ----------------------------------------------------------------------------

function AddEndpoint(props: { session: Session; made: (c: CreatedWebhook) => Promise<void> }) {
  const prefix = "new-webhook";
  const [url, setUrl] = useState("");
  const [all, setAll] = useState(true);
  const [picked, setPicked] = useState<EventType[]>([]);
  const [description, setDescription] = useState("");
  const [errs, setErrs] = useState<Errors>(NO_ERRORS);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const body: NewWebhook = {
        url: url.trim(),
        events: all ? ["*"] : EVENT_TYPES.map(([t]) => t).filter((t) => picked.includes(t)),
        description: description.trim() || null,
      };
      const c = await props.session.call<CreatedWebhook>("POST", "/v1/admin/webhooks", body);
      setErrs(NO_ERRORS);
      setUrl("");
      setAll(true);
      setPicked([]);
      setDescription("");
      await props.made(c);
    } catch (err) {
      const x = errorsOf(err, (f) => ["url", "events", "description"].includes(f));
      setErrs(x);
      focusError(prefix, x);
    } finally {
      setBusy(false);
    }
  };
  const ev = invalid(prefix, errs, "events");
  return (
    <form class="card wh-add" onSubmit={submit} aria-labelledby="add-webhook-h" noValidate>
      <h2 id="add-webhook-h">Add an endpoint</h2>
      <Field
        prefix={prefix}
        errs={errs}
        field="url"
        label="URL"
        value={url}
        onInput={setUrl}
        inputMode="url"
        autocomplete="off"
        hint="Where events are POSTed: https on port 443 at a public address."
      />
      <fieldset id={ev.id} aria-invalid={ev["aria-invalid"]} aria-describedby={ev["aria-describedby"]} tabIndex={-1} class="wh-events">
        <legend>Events</legend>
        <label class="inline">
          <input type="checkbox" checked={all} onChange={(e) => setAll((e.target as HTMLInputElement).checked)} />
          All events, also types added later
        </label>
        {EVENT_TYPES.map(([t, words]) => (
          <label class="inline" key={t}>
            <input
              type="checkbox"
              disabled={all}
              checked={!all && picked.includes(t)}
              onChange={(e) => {
                const on = (e.target as HTMLInputElement).checked;
                setPicked(on ? [...picked, t] : picked.filter((x) => x !== t));
              }}
            />
            <code>{t}</code>
            <span class="hint">{words}</span>
          </label>
        ))}
        <FieldError prefix={prefix} errs={errs} field="events" />
      </fieldset>
      <Field prefix={prefix} errs={errs} field="description" label="Description (optional)" value={description} onInput={setDescription} hint="What receives the events, for example your routing service. At most 200 characters." />
      <FormError prefix={prefix} errs={errs} />
      <p>
        <button class="primary" type="submit" disabled={busy}>
          Add endpoint
        </button>
      </p>
    </form>
  );
}
