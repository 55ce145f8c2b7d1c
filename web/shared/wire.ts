// The wire types of the Presence protocol that the widget (src/), the demo page (demo/) and the
// dashboard (app/) read and send: one declaration each, for every bundle.
//
// Guarantees:
// - Names, field names and enumeration values are those of the contract (docs/PROTOCOL.md) and
//   of the Rust types in protocol/src/lib.rs, which the server serializes; the type names are
//   the Rust ones.
// - Nullable and optional follow serde: a Rust `Option` the server always writes is
//   `T | null` here (the key is always present); a field the server leaves out when empty
//   (`skip_serializing_if`), or a request field the server defaults when missing
//   (`#[serde(default)]`), is optional (`?`).
// - Types only: nothing here exists at run time, so importing it adds no byte to a bundle.
//
// Times are milliseconds since the Unix epoch on the server's clock; a name ending in `_ms` is
// a duration in milliseconds.

// ----- enumerations --------------------------------------------------------------------------

/** What an agent chose to be. */
export type AgentStatus = "online" | "busy" | "offline";
/** What a chat box shows. */
export type ChatboxStatus = "online" | "busy" | "offline";
/** Why a chat box shows what it shows. */
export type Reason = "agents_online" | "agents_busy" | "no_agents_online" | "outside_opening_hours";
export type Platform = "android" | "ios" | "desktop" | "web" | "cli";
/** `active` heartbeats often; `background` holds a long lease renewed by push. */
export type Mode = "active" | "background";
export type Role = "owner" | "admin" | "agent";
export type PushProvider = "webhook" | "fcm" | "apns" | "unifiedpush";
/** Why a session ended (`session_ended` events and pushes). */
export type EndReason = "logout" | "expired" | "replaced" | "removed" | "credentials_changed";

// ----- errors --------------------------------------------------------------------------------

/** Every error code of the protocol; the HTTP status is in the contract. */
export type ErrorCode =
  | "bad_request"
  | "invalid_credentials"
  | "unauthorized"
  | "session_expired"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "invalid_field"
  | "rate_limited"
  | "internal"
  | "unavailable";

/** `{"error": {"code", "detail"}}`, the body of every error answer. */
export interface ErrorBody {
  error: ErrorDetail;
}
export interface ErrorDetail {
  /** One of {@link ErrorCode}; read as a string so a newer server's codes still parse. */
  code: string;
  /** Human text; for `invalid_field` it starts with the field's name. */
  detail: string;
}

// ----- shapes --------------------------------------------------------------------------------

export interface StatusView {
  status: AgentStatus;
  /** Grows by one with every applied change of the agent's status. */
  version: number;
  intent_at: number;
  changed_by_device: string | null;
  /** When a timed status ends; null when it does not. */
  until: number | null;
  /** What a timed status becomes at `until`. */
  then: AgentStatus | null;
  custom_status: string | null;
  /** Free text for teammates; never shown to visitors. */
  note: string | null;
  cause: Cause;
  /** The agent id of the admin who set this status. */
  changed_by_agent: string | null;
}

/** Why a status is what it is. */
export type Cause = "manual" | "admin" | "timer" | "idle" | "return";

/** One group's entry in a {@link ChatboxView}. */
export interface GroupView {
  key: string;
  name: string;
  status: ChatboxStatus;
  reason: Reason;
  /** The busy message while the group is busy, the offline message while offline, else null. */
  message: string | null;
  /**
   * When this group's chat box is expected back (see {@link ChatboxView.back_at}); servers
   * before the third part of the protocol leave it out.
   */
  back_at?: number | null;
}

/** What visitors see: `GET /v1/widget/{key}/status`, `chatbox` events. */
export interface ChatboxView {
  status: ChatboxStatus;
  reason: Reason;
  /** Grows with every change of the account's view; never goes backwards. */
  version: number;
  /** The next time the opening hours alone change the view, or null. */
  next_change_at: number | null;
  /** `[]` when the account has no groups. */
  groups: GroupView[];
  /** The busy message while the view is busy, the offline message while offline, else null. */
  message: string | null;
  /**
   * Inside opening hours: the earliest time an agent who counts turns online (a busy view) or
   * online or busy (an offline view); else null. Servers before the third part of the
   * protocol leave it out.
   */
  back_at?: number | null;
}

export interface Agent {
  id: string;
  name: string;
  email: string;
  /** Group keys; an agent in no group counts for every group. */
  groups: string[];
  role: Role;
}

export interface Device {
  id: string;
  platform: Platform;
  name: string;
  app_version: string;
}

export interface Heartbeat {
  interval_ms: number;
  ttl_ms: number;
  lease_until: number;
  server_time: number;
  status_version: number;
}

export interface Group {
  key: string;
  name: string;
}

/** One of an account's custom statuses: a named flavour of a base status ("Lunch", busy, 1 h). */
export interface CustomStatus {
  /** `^[a-z0-9][a-z0-9_-]{0,63}$` */
  id: string;
  /** 1 to 40 characters. */
  label: string;
  emoji: string | null;
  /** The status an agent has while this custom status is theirs. */
  base: AgentStatus;
  /** How long it lasts when a change names no `duration_ms`. */
  default_duration_ms: number | null;
}

// ----- device session ------------------------------------------------------------------------

/** A session's push registration; `p256dh` and `auth` are UnifiedPush's keys only. */
export interface PushRegistration {
  provider: PushProvider;
  token: string;
  /** The device's P-256 public key, base64url. */
  p256dh?: string;
  /** The device's 16-byte auth secret, base64url. */
  auth?: string;
}

/** `POST /v1/login` */
export interface LoginRequest {
  account: string;
  email: string;
  password: string;
  device: Device;
  push?: PushRegistration | null;
}

/** The answer of `POST /v1/login`. */
export interface LoginResponse {
  token: string;
  session_id: string;
  agent: Agent;
  status: StatusView;
  heartbeat: Heartbeat;
  server_time: number;
}

/** `POST /v1/session/heartbeat` (an empty body is `active`); the answer is a {@link Heartbeat}. */
export interface HeartbeatRequest {
  mode?: Mode;
  /** How long the person has not touched this device (web and desktop clients send it). */
  idle_ms?: number;
}

/** What `GET /v1/me` tells about a session's push registration (never its token). */
export interface PushInfo {
  provider: PushProvider;
}

/** One of the agent's sessions in `GET /v1/me`. */
export interface SessionInfo {
  session_id: string;
  device: Device;
  mode: Mode;
  lease_until: number;
  /** The session has an open event stream. */
  connected: boolean;
  push: PushInfo | null;
  /** The `idle_ms` this session last reported with a heartbeat, or null. */
  idle_ms: number | null;
}

/** `GET /v1/me` */
export interface MeResponse {
  agent: Agent;
  status: StatusView;
  chatbox: ChatboxView;
  sessions: SessionInfo[];
  /** The account's custom statuses. */
  custom_statuses: CustomStatus[];
}

/**
 * What a status change may say besides the status (`PUT /v1/me/status` and
 * `PUT /v1/admin/agents/{id}/status`).
 */
export interface StatusTiming {
  /** The status ends this long after its `intent_at` (1 000 to 7 days). */
  duration_ms?: number | null;
  /** What it becomes then; null: the status before this change (or that one's `then`). */
  then?: AgentStatus | null;
  /** One of the account's custom statuses, whose `base` must be `status`; with no
   * `duration_ms` its `default_duration_ms` applies. */
  custom_status?: string | null;
  /** Free text for teammates, at most 100 characters. */
  note?: string | null;
}

/** `PUT /v1/me/status`; a missing or null `intent_at` is the server's now. */
export interface SetStatusRequest extends StatusTiming {
  status: AgentStatus;
  /** A UUID; the same one again returns the first answer. */
  op_id: string;
  intent_at?: number | null;
}

export interface SetStatusResponse {
  /** False when a later change already won ("superseded"); `status` is then the current one. */
  applied: boolean;
  status: StatusView;
}

/** `PUT /v1/admin/agents/{id}/status`; the answer is a {@link StatusView}. */
export interface AdminSetStatusRequest extends StatusTiming {
  status: AgentStatus;
}

/** One applied status change as the status log keeps it. */
export interface StatusLogEntry extends StatusView {
  applied_at: number;
}

/**
 * `GET /v1/me/status-log` and `GET /v1/admin/agents/{id}/status-log` (`from`, `to`, `limit`
 * 1 to 500, `after`): newest first; `next` asks for the page after this one (`&after=`).
 */
export interface StatusLogPage {
  entries: StatusLogEntry[];
  next: string | null;
}

// ----- event streams -------------------------------------------------------------------------

/** The first event of `/v1/me/events`. */
export interface SnapshotEvent {
  status: StatusView;
  chatbox: ChatboxView;
}

/** `session_ended` on `/v1/me/events`: the stream's last event. */
export interface SessionEndedEvent {
  reason: EndReason;
}

/** `ping` on every stream, so a client can tell a dead stream from a quiet one. */
export interface PingEvent {
  server_time: number;
}

// ----- administration ------------------------------------------------------------------------

export interface AccountInfo {
  id: string;
  slug: string;
  name: string;
  widget_key: string;
}

/** `["HH:MM", "HH:MM"]` in the account's wall-clock time; a range whose end is not after its
 * start crosses midnight. */
export type TimeRange = [string, string];

/** Opening ranges per weekday; the server answers all seven keys (and reads a missing one as
 * `[]`). */
export interface WeekDays {
  mon: TimeRange[];
  tue: TimeRange[];
  wed: TimeRange[];
  thu: TimeRange[];
  fri: TimeRange[];
  sat: TimeRange[];
  sun: TimeRange[];
}

/** A dated exception: its ranges replace the weekday's on that date. */
export interface DateException {
  /** `YYYY-MM-DD` in the account's time zone. */
  date: string;
  ranges: TimeRange[];
}

/** `PUT /v1/admin/opening-hours` and its answer; `opening_hours` of the admin account. */
export interface OpeningHours {
  enabled: boolean;
  /** An IANA time zone, such as `Europe/Prague`. */
  timezone: string;
  days: WeekDays;
  exceptions: DateException[];
}

/** An account's timings. */
export interface Settings {
  active_interval_ms: number;
  active_ttl_ms: number;
  background_ttl_ms: number;
  renew_margin_ms: number;
}

/** What the chat box says while busy or offline (null: nothing beyond the status). */
export interface Messages {
  busy_message: string | null;
  offline_message: string | null;
}

/** Automatic away and back: after how long without activity on every device an `online` agent
 * is set to `idle_status`, and whether activity restores the status from before. */
export interface IdleSettings {
  /** Null: off; else 1 000 to 86 400 000. */
  idle_after_ms: number | null;
  /** `busy` or `offline`. */
  idle_status: AgentStatus;
  return_on_activity: boolean;
}

/** `settings` of the admin account and the answer of `PUT /v1/admin/settings`: every key
 * always present. */
export type AccountSettings = Settings & Messages & IdleSettings;

/** `PUT /v1/admin/settings`: any subset; an absent message is unchanged, null (or blank)
 * clears it; `idle_after_ms: null` turns automatic away off. */
export type SettingsPatch = Partial<Settings> & Partial<Messages> & Partial<IdleSettings>;

/** `GET /v1/admin/account` */
export interface AdminAccountResponse {
  account: AccountInfo;
  groups: Group[];
  opening_hours: OpeningHours;
  settings: AccountSettings;
  agents: Agent[];
  custom_statuses: CustomStatus[];
  /** How the account's agents sign in (never the HS256 secret). */
  sign_in?: SignInView;
}

/** The customer's token issuer as shown: whether an HS256 secret is set, never the secret. */
export interface JwtView {
  issuer: string;
  audience: string;
  hs256_secret_set: boolean;
  jwks: unknown | null;
  jwks_url: string | null;
}

export interface SignInView {
  jwt: JwtView | null;
  password_login: boolean;
  provision: boolean;
}

/** `PUT /v1/admin/sign-in` (owner only): exactly one key source in `jwt`. */
export interface SignInRequest {
  jwt: { issuer: string; audience: string; hs256_secret: string | null; jwks: unknown | null; jwks_url: string | null } | null;
  password_login: boolean;
  provision: boolean;
}

/** `POST /v1/admin/sign-in/test`: accepted (and what a sign-in would do), or exactly why not. */
export interface TokenTestResponse {
  ok: boolean;
  reason: string | null;
  sub: string | null;
  action: "signs_in" | "links" | "updates" | "provisions" | null;
  agent_id: string | null;
}

/** An API key as listed; the key itself is in {@link NewApiKeyResponse} only. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  created_at: number;
}

/** `201` to `POST /v1/admin/api-keys`: the only time `key` is shown. */
export interface NewApiKeyResponse extends ApiKeyInfo {
  key: string;
}

/** `POST /v1/admin/agents`; the answer is the new {@link Agent}. */
export interface NewAgentRequest {
  name: string;
  email: string;
  password: string;
  groups?: string[];
  /** `agent` when missing. */
  role?: Role;
}

/** `PUT /v1/me/password` (`204`): the other sessions end with reason `credentials_changed`. */
export interface ChangePasswordRequest {
  current: string;
  /** At least 10 characters. */
  new: string;
}

/** `PUT /v1/admin/agents/{id}/password` (`204`): every session of the agent ends. */
export interface SetPasswordRequest {
  /** At least 10 characters. */
  password: string;
}

/** `PATCH /v1/admin/agents/{id}`: what is present changes; the answer is the {@link Agent}. */
export interface PatchAgentRequest {
  name?: string;
  groups?: string[];
  role?: Role;
}

// ----- history and reports -------------------------------------------------------------------

/** Whether an agent counts for the chat box (online, busy) and, if not, why (`offline` status,
 * or `signed_out`: no live session). */
export type Availability = "online" | "busy" | "offline" | "signed_out";

/** Time in each availability state, in milliseconds. */
export interface TimeInStates {
  online_ms: number;
  busy_ms: number;
  offline_ms: number;
  signed_out_ms: number;
}

/** One calendar day (in the report's time zone) of an agent's availability. */
export interface DayTime extends TimeInStates {
  /** `YYYY-MM-DD` */
  date: string;
}

/** One agent of an {@link AvailabilityReport}: the whole range, and day by day. */
export interface AgentTime extends TimeInStates {
  id: string;
  name: string;
  days: DayTime[];
}

/** `GET /v1/admin/reports/availability?from=&to=&tz=&group=` (`Accept: text/csv`: the same as
 * CSV, `agent_id,agent_name,date,online_ms,busy_ms,offline_ms,signed_out_ms`). */
export interface AvailabilityReport {
  from: number;
  to: number;
  tz: string;
  agents: AgentTime[];
}

/** One calendar day of a chat box's coverage (days with opening hours). */
export interface CoverageDay {
  date: string;
  open_ms: number;
  online_ms: number;
  busy_ms: number;
  offline_ms: number;
  /** `(online_ms + busy_ms) / open_ms`; null when `open_ms` is 0. */
  coverage: number | null;
}

/** One chat box of a {@link CoverageReport}: time within opening hours in each state. */
export interface ChatboxCoverage {
  /** The group's key; null for the account's chat box. */
  group: string | null;
  open_ms: number;
  online_ms: number;
  busy_ms: number;
  offline_ms: number;
  /** Offline time within opening hours by the view's reason (`no_agents_online`, ...). */
  offline_by_reason: Record<string, number>;
  coverage: number | null;
  days?: CoverageDay[];
}

/** `GET /v1/admin/reports/coverage?from=&to=&tz=` */
export interface CoverageReport {
  from: number;
  to: number;
  tz: string;
  chatboxes: ChatboxCoverage[];
}

/** One interval of an agent's timeline. */
export interface TimelineInterval {
  start: number;
  /** Null while it is still open (it runs up to now). */
  end: number | null;
  availability: Availability;
  status: AgentStatus;
  cause: Cause;
  /** For `signed_out`: how the last session ended (null: never signed in). */
  ended?: EndReason | null;
}

/** `GET /v1/admin/reports/timeline?agent=&from=&to=` and `GET /v1/me/timeline?from=&to=` */
export interface TimelineReport {
  agent: string;
  from: number;
  to: number;
  intervals: TimelineInterval[];
}

// ----- the account's live presence -----------------------------------------------------------

/** One agent of {@link PresenceSnapshot}. */
export interface PresenceAgent {
  id: string;
  name: string;
  groups: string[];
  status: StatusView;
  availability: Availability;
  /** Since when the agent has had this availability and status; null when not known. */
  since: number | null;
  /** The devices signed in now. */
  devices: Device[];
}

/** `GET /v1/admin/presence`, and the `snapshot` event of `GET /v1/admin/events`: consistent with
 * the account's event number `seq`. */
export interface PresenceSnapshot {
  seq: number;
  agents: PresenceAgent[];
  chatbox: ChatboxView;
}

/** An event of `GET /v1/admin/events` (and a webhook's body): `event:` names its `type`, `id:`
 * is its `seq`. */
export interface AccountEvent<T = unknown> {
  type: string;
  /** RFC 3339 */
  timestamp: string;
  account: string;
  seq: number;
  data: T;
}

/** `agent.status` */
export interface AgentStatusData {
  agent_id: string;
  status: StatusView;
}

/** `agent.availability` */
export interface AgentAvailabilityData {
  agent_id: string;
  availability: Availability;
  /** Why the agent's status is what it is. */
  cause: Cause;
  /** For `signed_out`: how the last session ended. */
  ended?: EndReason | null;
}

/** `chatbox.view` */
export interface ChatboxViewData {
  view: ChatboxView;
}

/** `session.started` and `session.ended` */
export interface SessionEventData {
  agent_id: string;
  session_id: string;
  device: Device;
  reason?: EndReason | string;
}

// ----- webhooks to the customer's backend ----------------------------------------------------

/** What happened: the `type` of an account event, and what a webhook endpoint subscribes to. */
export type EventType = "agent.status" | "agent.availability" | "chatbox.view" | "session.started" | "session.ended";

/** `POST /v1/admin/webhooks`; the answer is a {@link CreatedWebhook}. */
export interface NewWebhook {
  url: string;
  /** Event types, or `["*"]` for every type. */
  events: string[];
  description?: string | null;
}

/** `PATCH /v1/admin/webhooks/{id}`: each field present is changed; the answer is the {@link Webhook}. */
export interface WebhookPatch {
  url?: string;
  events?: string[];
  enabled?: boolean;
  /** An empty one clears it. */
  description?: string;
}

/** Why an endpoint is disabled: by an owner, admin or API key, or because it answered `410 Gone`. */
export type DisabledReason = "admin" | "gone";

/** An endpoint as listed (`GET /v1/admin/webhooks`, oldest first); never its secret. */
export interface Webhook {
  id: string;
  url: string;
  /** Event types, or `["*"]`. */
  events: string[];
  description: string | null;
  enabled: boolean;
  /** Null while enabled. */
  disabled_reason: DisabledReason | null;
  created_at: number;
  /** Until when the secret before the last rotation still signs beside the new one. */
  previous_secret_until: number | null;
}

/** `201` to `POST /v1/admin/webhooks`: the only time the secret is shown. */
export interface CreatedWebhook {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  created_at: number;
  /** `whsec_<base64>` */
  secret: string;
}

/** `200` to `POST /v1/admin/webhooks/{id}/rotate-secret`: the only time the new secret is shown. */
export interface RotatedSecret {
  secret: string;
  /** Until when the old secret keeps signing beside this one. */
  previous_secret_until: number;
}

/** Where one event stands for one endpoint. */
export type DeliveryState = "pending" | "ok" | "dead";

/** One event's delivery to one endpoint (`GET /v1/admin/webhooks/{id}/deliveries?state=&limit=`,
 * newest first). */
export interface Delivery {
  /** The event's `webhook-id`, the same on every attempt. */
  event_id: string;
  seq: number;
  type: EventType;
  /** When the event happened. */
  at: number;
  state: DeliveryState;
  attempts: number;
  /** The last answer's status code; null when none came or no attempt was made yet. */
  last_status: number | null;
  /** Why the last attempt failed; null after a 2xx. */
  last_error: string | null;
  last_attempt_at: number | null;
  /** Pending only; null when due as soon as the events before it are done. */
  next_attempt_at: number | null;
}

/** `200` to `POST /v1/admin/webhooks/{id}/test`: one `webhook.test` event sent at once. */
export interface WebhookTestResult {
  /** Whether it answered 2xx. */
  ok: boolean;
  status: number | null;
  error: string | null;
  duration_ms: number;
}
