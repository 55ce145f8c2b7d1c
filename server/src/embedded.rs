//! The embedded backend: all hot state in memory, durable state in SQLite ([`Store`]).
//!
//! # Shape
//! One `State` behind one mutex holds accounts, agents, live sessions, token hashes, the
//! timer set and the fan-out channels. Critical sections are short and never await; the
//! SQLite commit of an acknowledged change happens inside the section, so memory and disk
//! agree on the order of changes.
//!
//! # Leases and the sweeper
//! A heartbeat only moves `lease_until` in memory and marks the session dirty; a flusher
//! writes dirty leases in one transaction every [`FLUSH_EVERY`]. Timers (lease ends, renew
//! pushes, opening-hours flips) sit in one ordered set; each session has at most one live
//! expiry entry (`scheduled_expiry`), and a heartbeat that moves the lease later leaves it in
//! place: when it fires, the sweeper sees the later lease and re-arms. So heartbeats touch no
//! ordered structure at all, and the sweeper wakes within a millisecond of a lease end.
//!
//! # Fan-out
//! Each account has a `watch` channel of its current chat box view (widget streams and the
//! `chatbox` events of device streams); a watch never blocks the publisher and a slow reader
//! simply sees the newest view. Each agent has a `broadcast` channel of status and
//! session-ended events; a reader that lags is disconnected (it reconnects and gets a fresh
//! snapshot). Frames are encoded once per change, not once per subscriber.

use std::collections::BTreeSet;

// Keys are server-made ids and token hashes, or operator and admin input: no untrusted
// inserts, so the fast non-keyed hasher is safe here.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use presence_protocol::{
    AccountInfo, AccountSettings, AdminAccountResponse, Agent, AgentAvailability, AgentStatus,
    CreateAccountRequest, CreateAccountResponse, Device, EndReason, Group, Heartbeat, LoginRequest,
    LoginResponse, MeResponse, Messages, Mode, NewAgentRequest, OpeningHours, PatchAgentRequest,
    PushBody, PushInfo, PushPayload, PushRegistration, Role, SessionEndedEvent, SessionInfo,
    SetStatusRequest, SetStatusResponse, Settings, SettingsPatch, SnapshotEvent, StatusView,
    WeeklySchedule, event, resolve,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, broadcast, watch};

use crate::Retention;
use crate::auth::{self, TokenHash};
use crate::backend::{
    AgentEvent, Backend, DeviceStream, Principal, StreamGuard, ViewFrame, WidgetStream,
    snapshot_frame, sse_frame, status_frame,
};
use crate::clock::Clock;
use crate::error::{ApiError, ApiResult};
use crate::hashing::HashPool;
use crate::metrics::{Gauges, Metrics};
use crate::push::Pusher;
use crate::rules;
use crate::store::{AccountRow, AgentRow, SessionRow, Store};
use crate::validate;

/// How often in-memory leases are written to SQLite.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Buffered events per agent before a slow device stream is dropped.
const AGENT_EVENT_BUFFER: usize = 256;
/// View versions are reserved on disk this many at a time, so a crash can skip versions but
/// never reuse one, at the cost of one small write per this many view changes.
const VIEW_VERSION_BLOCK: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Expire,
    Renew,
    Flip,
}

type Timer = (i64, TimerKind, Arc<str>);

struct AccountState {
    info: AccountInfo,
    settings: Settings,
    opening_hours: OpeningHours,
    schedule: WeeklySchedule,
    messages: Messages,
    groups: Vec<Group>,
    agents: Vec<Arc<str>>,
    view: Arc<ViewFrame>,
    /// Versions up to here are durably reserved ([`Store::reserve_view_versions`]).
    versions_reserved: i64,
    view_tx: watch::Sender<Arc<ViewFrame>>,
    flip_at: Option<i64>,
}

struct AgentState {
    id: Arc<str>,
    account_id: Arc<str>,
    name: String,
    email: String,
    password_hash: String,
    role: Role,
    groups: Vec<String>,
    status: StatusView,
    status_op_id: String,
    sessions: HashSet<Arc<str>>,
    tx: broadcast::Sender<AgentEvent>,
}

impl AgentState {
    fn to_agent(&self) -> Agent {
        Agent {
            id: self.id.to_string(),
            name: self.name.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            role: self.role,
        }
    }
}

struct SessionState {
    id: Arc<str>,
    account_id: Arc<str>,
    agent_id: Arc<str>,
    token_hash: TokenHash,
    device: Device,
    mode: Mode,
    lease_until: i64,
    push: Option<PushRegistration>,
    connected: u32,
    scheduled_expiry: i64,
    renew_at: Option<i64>,
}

impl SessionState {
    /// Makes sure the sweeper will look at this session by its lease end (timers are never
    /// moved later: a stale one finds the lease extended and re-arms) and at its renew time.
    fn schedule_timers(
        &mut self,
        renew_margin: i64,
        timers: &mut BTreeSet<Timer>,
        fx: &mut Effects,
    ) {
        if self.lease_until < self.scheduled_expiry || self.scheduled_expiry == 0 {
            timers.insert((self.lease_until, TimerKind::Expire, self.id.clone()));
            self.scheduled_expiry = self.lease_until;
            fx.wake_sweeper = true;
        }
        let want_renew = rules::renew_at(
            self.mode,
            self.push.is_some(),
            self.lease_until,
            renew_margin,
        );
        if want_renew != self.renew_at {
            self.renew_at = want_renew;
            if let Some(at) = want_renew {
                timers.insert((at, TimerKind::Renew, self.id.clone()));
                fx.wake_sweeper = true;
            }
        }
    }
}

/// Hashes a SHA-256 digest by taking its first 8 bytes: the key is already uniform, so
/// hashing it again (as the default hasher would) is wasted work on every request.
#[derive(Default, Clone, Copy)]
struct DigestHasher;

impl std::hash::BuildHasher for DigestHasher {
    type Hasher = DigestHash;
    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

struct DigestHash(u64);

impl std::hash::Hasher for DigestHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its bytes; fold in whatever arrives, cheaply.
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
}

enum TokenEntry {
    Live(Arc<str>),
    Ended,
}

#[derive(Default)]
struct State {
    accounts: HashMap<Arc<str>, AccountState>,
    slugs: HashMap<String, Arc<str>>,
    widget_keys: HashMap<String, Arc<str>>,
    agents: HashMap<Arc<str>, AgentState>,
    /// (account id, lowercased email) -> agent id
    emails: HashMap<(Arc<str>, String), Arc<str>>,
    sessions: HashMap<Arc<str>, SessionState>,
    /// (account id, device id) -> that device's live session
    devices: HashMap<(Arc<str>, String), Arc<str>>,
    tokens: std::collections::HashMap<TokenHash, TokenEntry, DigestHasher>,
    /// Tokens of ended sessions, oldest first, with when they ended: pruned after the
    /// retention (see [`State::prune_ended`]).
    ended: std::collections::VecDeque<(i64, TokenHash)>,
    timers: BTreeSet<Timer>,
    dirty_leases: HashSet<Arc<str>>,
    /// agent id -> keyed hash of a password that argon2 already accepted (see `verifier`).
    verified: HashMap<Arc<str>, [u8; 32]>,
}

/// Side effects computed under the lock and carried out after it.
#[derive(Default)]
struct Effects {
    pushes: Vec<(PushRegistration, PushPayload)>,
    wake_sweeper: bool,
}

struct Inner {
    state: Mutex<State>,
    store: Store,
    clock: Clock,
    pusher: Pusher,
    hasher: Arc<HashPool>,
    retention: Retention,
    metrics: Arc<Metrics>,
    sweeper_wake: Notify,
    device_streams: AtomicU64,
    widget_streams: AtomicU64,
    /// Key for the verified-password cache; never leaves memory.
    secret: [u8; 32],
    /// A real argon2 hash to verify against when the email is unknown, so both paths cost
    /// the same.
    dummy_hash: String,
}

/// The embedded SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct Embedded {
    inner: Arc<Inner>,
}

fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

impl State {
    fn account(&self, id: &str) -> ApiResult<&AccountState> {
        self.accounts
            .get(id)
            .ok_or_else(|| ApiError::not_found("account"))
    }

    fn agent_in_account(&self, account_id: &str, agent_id: &str) -> ApiResult<&AgentState> {
        match self.agents.get(agent_id) {
            Some(a) if &*a.account_id == account_id => Ok(a),
            _ => Err(ApiError::not_found("agent")),
        }
    }

    fn owners(&self, account_id: &str) -> usize {
        self.accounts.get(account_id).map_or(0, |acc| {
            acc.agents
                .iter()
                .filter(|id| self.agents.get(*id).is_some_and(|a| a.role == Role::Owner))
                .count()
        })
    }

    /// Recomputes an account's chat box view and publishes it if anything changed.
    fn recompute(
        &mut self,
        account_id: &str,
        now: i64,
        metrics: &Metrics,
        store: &Store,
        fx: &mut Effects,
    ) {
        let State {
            accounts,
            agents,
            timers,
            ..
        } = self;
        let Some(acc) = accounts.get_mut(account_id) else {
            return;
        };
        let avail: Vec<AgentAvailability<'_>> = acc
            .agents
            .iter()
            .filter_map(|id| agents.get(id))
            .map(|a| AgentAvailability {
                status: a.status.status,
                groups: &a.groups,
                live_sessions: a.sessions.len(),
            })
            .collect();
        let mut view =
            resolve(&acc.groups, &acc.schedule, &avail, now).with_messages(&acc.messages);
        if let Some(t) = view.next_change_at
            && acc.flip_at != Some(t)
        {
            timers.insert((t, TimerKind::Flip, acc.info.id.as_str().into()));
            acc.flip_at = Some(t);
            fx.wake_sweeper = true;
        }
        if view.same_content(&acc.view.view) {
            return;
        }
        view.version = acc.view.view.version + 1;
        if view.version > acc.versions_reserved {
            // Durable before it is served: after a crash, versions start above this block.
            let upto = view.version + VIEW_VERSION_BLOCK;
            match store.reserve_view_versions(&acc.info.id, upto) {
                Ok(()) => acc.versions_reserved = upto,
                Err(e) => tracing::error!(error = %e, "could not reserve view versions"),
            }
        }
        let frame = Arc::new(ViewFrame::new(view));
        acc.view = frame.clone();
        acc.view_tx.send_replace(frame);
        metrics.view_changes.fetch_add(1, Relaxed);
    }

    /// Ends a live session in memory and tells its stream. The caller commits to the store.
    fn end_session_mem(&mut self, session_id: &str, reason: EndReason, now: i64, fx: &mut Effects) {
        self.end_session_by(session_id, reason, false, now, fx);
    }

    /// [`State::end_session_mem`], saying whether another device of the agent asked for it
    /// (then a `logout` is pushed to the device too).
    fn end_session_by(
        &mut self,
        session_id: &str,
        reason: EndReason,
        by_other_device: bool,
        now: i64,
        fx: &mut Effects,
    ) {
        let Some(s) = self.sessions.remove(session_id) else {
            return;
        };
        let device_key = (s.account_id.clone(), s.device.id.clone());
        if self.devices.get(&device_key) == Some(&s.id) {
            self.devices.remove(&device_key);
        }
        self.tokens.insert(s.token_hash, TokenEntry::Ended);
        self.ended.push_back((now, s.token_hash));
        self.dirty_leases.remove(session_id);
        if let Some(agent) = self.agents.get_mut(&s.agent_id) {
            agent.sessions.remove(session_id);
            let frame = sse_frame(event::SESSION_ENDED, &SessionEndedEvent { reason });
            let _ = agent.tx.send(AgentEvent::SessionEnded {
                session_id: s.id.clone(),
                reason,
                frame,
            });
        }
        if rules::wants_end_push(reason, by_other_device)
            && let Some(push) = s.push
        {
            fx.pushes.push((
                push,
                PushPayload::new(PushBody::SessionEnded {
                    session_id: s.id.to_string(),
                    reason,
                }),
            ));
        }
    }

    /// Makes an applied status the agent's current one (already committed by the caller):
    /// tells every device stream, and pushes it to the other sessions without a stream.
    fn apply_status(
        &mut self,
        agent_id: &str,
        status: StatusView,
        op_id: &str,
        origin: Option<&Arc<str>>,
        fx: &mut Effects,
    ) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        let _ = agent.tx.send(AgentEvent::Status(status_frame(&status)));
        agent.status = status.clone();
        agent.status_op_id = op_id.to_owned();
        for sid in &agent.sessions {
            let Some(s) = self.sessions.get(sid) else {
                continue;
            };
            if !rules::wants_status_push(&s.id, origin.map(|o| &**o), s.connected > 0) {
                continue;
            }
            if let Some(push) = s.push.clone() {
                fx.pushes.push((
                    push,
                    PushPayload::new(PushBody::Status {
                        session_id: s.id.to_string(),
                        status: status.clone(),
                    }),
                ));
            }
        }
    }

    /// Forgets ended sessions' tokens that ended before `cutoff` (they answer `unauthorized`
    /// from then on). Returns how many.
    fn prune_ended(&mut self, cutoff: i64) -> usize {
        let mut n = 0;
        while let Some(&(at, h)) = self.ended.front() {
            if at >= cutoff {
                break;
            }
            self.ended.pop_front();
            if matches!(self.tokens.get(&h), Some(TokenEntry::Ended)) {
                self.tokens.remove(&h);
            }
            n += 1;
        }
        n
    }

    /// The session a token belongs to, if it is still live at `now`.
    fn live_session(&self, token: &TokenHash, now: i64) -> ApiResult<&SessionState> {
        match self.tokens.get(token) {
            None => Err(ApiError::unauthorized()),
            Some(TokenEntry::Ended) => Err(ApiError::session_expired()),
            Some(TokenEntry::Live(id)) => {
                let s = self
                    .sessions
                    .get(id)
                    .ok_or_else(ApiError::session_expired)?;
                if s.lease_until <= now {
                    // The sweeper ends it within moments; the token is already dead.
                    return Err(ApiError::session_expired());
                }
                Ok(s)
            }
        }
    }

    fn schedule_session_timers(&mut self, session_id: &Arc<str>, fx: &mut Effects) {
        let Some(s) = self.sessions.get_mut(session_id) else {
            return;
        };
        let renew_margin = self
            .accounts
            .get(&s.account_id)
            .map_or(0, |a| a.settings.renew_margin_ms);
        s.schedule_timers(renew_margin, &mut self.timers, fx);
    }

    fn me_view(&self, p: &Principal) -> ApiResult<MeResponse> {
        let agent = self.agent_in_account(&p.account_id, &p.agent_id)?;
        let acc = self.account(&p.account_id)?;
        let mut sessions: Vec<SessionInfo> = agent
            .sessions
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .map(|s| SessionInfo {
                session_id: s.id.to_string(),
                device: s.device.clone(),
                mode: s.mode,
                lease_until: s.lease_until,
                connected: s.connected > 0,
                push: s.push.as_ref().map(|r| PushInfo {
                    provider: r.provider,
                }),
            })
            .collect();
        sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        Ok(MeResponse {
            agent: agent.to_agent(),
            status: agent.status.clone(),
            chatbox: acc.view.view.clone(),
            sessions,
        })
    }
}

impl Inner {
    fn finish(&self, fx: Effects) {
        for (reg, payload) in fx.pushes {
            self.pusher.dispatch(&reg, payload);
        }
        if fx.wake_sweeper {
            self.sweeper_wake.notify_one();
        }
    }

    fn verifier(&self, agent_id: &str, password_hash: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(agent_id.as_bytes());
        h.update([0]);
        h.update(password_hash.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn heartbeat_for(&self, st: &State, s: &SessionState, now: i64) -> Heartbeat {
        let settings = st
            .accounts
            .get(&s.account_id)
            .map(|a| a.settings)
            .unwrap_or_default();
        let (interval_ms, ttl_ms) = rules::lease_terms(&settings, s.mode, s.push.is_some());
        let status_version = st.agents.get(&s.agent_id).map_or(0, |a| a.status.version);
        Heartbeat {
            interval_ms,
            ttl_ms,
            lease_until: s.lease_until,
            server_time: now,
            status_version,
        }
    }
}

fn initial_status() -> StatusView {
    StatusView {
        status: AgentStatus::Offline,
        version: 0,
        intent_at: 0,
        changed_by_device: None,
    }
}

struct DeviceGuard {
    inner: Weak<Inner>,
    session_id: Arc<str>,
}

impl StreamGuard for DeviceGuard {}

impl Drop for DeviceGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.device_streams.fetch_sub(1, Relaxed);
            let mut st = inner.state.lock();
            if let Some(s) = st.sessions.get_mut(&self.session_id) {
                s.connected = s.connected.saturating_sub(1);
            }
        }
    }
}

struct WidgetGuard {
    inner: Weak<Inner>,
}

impl StreamGuard for WidgetGuard {}

impl Drop for WidgetGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.widget_streams.fetch_sub(1, Relaxed);
        }
    }
}

impl Embedded {
    /// Opens the store, rebuilds memory, and starts the sweeper and the lease flusher (both
    /// stop when the last handle is dropped or `shutdown` fires).
    pub fn open(
        store: Store,
        pusher: Pusher,
        hasher: Arc<HashPool>,
        retention: Retention,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Embedded, rusqlite::Error> {
        let clock = Clock::new();
        let now = clock.now_ms();
        let loaded = store.load(now - retention_ms(retention.ended_sessions))?;
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        // On a thread of its own, so its hashing memory goes when the thread does.
        let dummy_hash = std::thread::spawn(|| auth::hash_password("presence-dummy-password"))
            .join()
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let mut st = State::default();
        let mut fx = Effects::default();
        for a in loaded.accounts {
            let schedule = WeeklySchedule::from_opening_hours(&a.opening_hours)
                .unwrap_or_else(|_| WeeklySchedule::always_open());
            let id = arc(&a.id);
            let mut view = resolve(&a.groups, &schedule, &[], now);
            // Past every version reserved before the restart, served or not.
            view.version = a.view_version + 1;
            let frame = Arc::new(ViewFrame::new(view));
            st.slugs.insert(a.slug.clone(), id.clone());
            st.widget_keys.insert(a.widget_key.clone(), id.clone());
            st.accounts.insert(
                id.clone(),
                AccountState {
                    info: AccountInfo {
                        id: a.id,
                        slug: a.slug,
                        name: a.name,
                        widget_key: a.widget_key,
                    },
                    settings: a.settings.timings,
                    messages: a.settings.messages,
                    opening_hours: a.opening_hours,
                    schedule,
                    groups: a.groups,
                    agents: Vec::new(),
                    view_tx: watch::Sender::new(frame.clone()),
                    view: frame,
                    versions_reserved: a.view_version,
                    flip_at: None,
                },
            );
        }
        for a in loaded.agents {
            let id = arc(&a.id);
            let account_id = arc(&a.account_id);
            let Some(acc) = st.accounts.get_mut(&account_id) else {
                continue;
            };
            acc.agents.push(id.clone());
            st.emails
                .insert((account_id.clone(), a.email.to_lowercase()), id.clone());
            st.agents.insert(
                id.clone(),
                AgentState {
                    id,
                    account_id,
                    name: a.name,
                    email: a.email,
                    password_hash: a.password_hash,
                    role: a.role,
                    groups: a.groups,
                    status: a.status,
                    status_op_id: a.status_op_id,
                    sessions: HashSet::default(),
                    tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
                },
            );
        }
        for (t, ended_at) in loaded.ended_tokens {
            if let Ok(bytes) = hex::decode(&t)
                && let Ok(h) = <TokenHash>::try_from(bytes.as_slice())
            {
                st.tokens.insert(h, TokenEntry::Ended);
                st.ended.push_back((ended_at, h));
            }
        }
        for s in loaded.sessions {
            let Some(agent) = st.agents.get_mut(s.agent_id.as_str()) else {
                continue;
            };
            let Some(hash) = hex::decode(&s.token_hash)
                .ok()
                .and_then(|b| <TokenHash>::try_from(b.as_slice()).ok())
            else {
                continue;
            };
            let settings = st
                .accounts
                .get(s.account_id.as_str())
                .map(|a| a.settings)
                .unwrap_or_default();
            // Grace: a restart must not flap every agent offline.
            let lease_until = s.lease_until.max(now + settings.active_ttl_ms);
            let id = arc(&s.id);
            agent.sessions.insert(id.clone());
            st.tokens.insert(hash, TokenEntry::Live(id.clone()));
            st.devices
                .insert((arc(&s.account_id), s.device.id.clone()), id.clone());
            st.dirty_leases.insert(id.clone());
            st.sessions.insert(
                id.clone(),
                SessionState {
                    id: id.clone(),
                    account_id: arc(&s.account_id),
                    agent_id: arc(&s.agent_id),
                    token_hash: hash,
                    device: s.device,
                    mode: s.mode,
                    lease_until,
                    push: s.push,
                    connected: 0,
                    scheduled_expiry: 0,
                    renew_at: None,
                },
            );
            st.schedule_session_timers(&id, &mut fx);
        }
        let ids: Vec<Arc<str>> = st.accounts.keys().cloned().collect();
        for id in ids {
            // Compare against an impossible view so the first resolution always lands.
            if let Some(acc) = st.accounts.get_mut(&id) {
                let mut placeholder = acc.view.view.clone();
                placeholder.version -= 1;
                placeholder.next_change_at = Some(i64::MIN);
                acc.view = Arc::new(ViewFrame::new(placeholder));
            }
            st.recompute(&id, now, &metrics, &store, &mut fx);
        }
        let inner = Arc::new(Inner {
            state: Mutex::new(st),
            store,
            clock,
            pusher,
            hasher,
            retention,
            metrics,
            sweeper_wake: Notify::new(),
            device_streams: AtomicU64::new(0),
            widget_streams: AtomicU64::new(0),
            secret,
            dummy_hash,
        });
        tokio::spawn(sweeper(inner.clone(), shutdown.clone()));
        tokio::spawn(flusher(inner.clone(), shutdown));
        Ok(Embedded { inner })
    }

    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The account with this slug, if any (used by `--demo`).
    pub fn account_by_slug(&self, slug: &str) -> Option<AccountInfo> {
        let st = self.inner.state.lock();
        st.slugs
            .get(slug)
            .and_then(|id| st.accounts.get(id))
            .map(|a| a.info.clone())
    }

    /// A principal acting as the owner of `account_id`, for operator tooling (`--demo`).
    pub fn owner_principal(&self, account_id: &str) -> Option<Principal> {
        let st = self.inner.state.lock();
        let acc = st.accounts.get(account_id)?;
        let owner = acc
            .agents
            .iter()
            .find(|id| st.agents.get(*id).is_some_and(|a| a.role == Role::Owner))?;
        Some(Principal {
            session_id: arc(""),
            agent_id: owner.clone(),
            account_id: arc(account_id),
            role: Role::Owner,
        })
    }

    /// Hashes a new password on the hashing pool.
    async fn hash_password(&self, password: String) -> ApiResult<String> {
        self.inner
            .hasher
            .run(move || auth::hash_password(&password))
            .await
            .map_err(|_| hashing_busy())?
            .map_err(ApiError::internal)
    }

    fn flush_now(&self) {
        flush_once(&self.inner);
    }
}

fn flush_once(inner: &Inner) {
    let leases = {
        let mut st = inner.state.lock();
        let dirty = std::mem::take(&mut st.dirty_leases);
        let leases: Vec<(String, Mode, i64)> = dirty
            .iter()
            .filter_map(|id| st.sessions.get(id))
            .map(|s| (s.id.to_string(), s.mode, s.lease_until))
            .collect();
        leases
    };
    if let Err(e) = inner.store.flush_leases(&leases) {
        tracing::error!(error = %e, "lease flush failed; will retry");
        let mut st = inner.state.lock();
        for (id, _, _) in leases {
            st.dirty_leases.insert(arc(&id));
        }
    }
}

/// Forgets what is past its retention: ended sessions' tokens (memory and disk) and status
/// op ids (disk).
fn prune_once(inner: &Inner) {
    let now = inner.clock.now_ms();
    let sessions_before = now - retention_ms(inner.retention.ended_sessions);
    let ops_before = now - retention_ms(inner.retention.status_ops);
    let forgotten = inner.state.lock().prune_ended(sessions_before);
    match inner.store.prune(sessions_before, ops_before) {
        Ok((sessions, ops)) => {
            inner
                .metrics
                .pruned_sessions
                .fetch_add(sessions.max(forgotten) as u64, Relaxed);
            inner
                .metrics
                .pruned_status_ops
                .fetch_add(ops as u64, Relaxed);
        }
        Err(e) => tracing::warn!(error = %e, "pruning old history failed; will retry"),
    }
}

fn retention_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// Every [`FLUSH_EVERY`]: writes the in-memory leases, prunes history past its retention,
/// then checkpoints the database log.
/// Both block on the disk, so they run on the blocking pool, never on a runtime worker.
async fn flusher(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let work = inner.clone();
        let done = tokio::task::spawn_blocking(move || {
            flush_once(&work);
            prune_once(&work);
            work.store.checkpoint()
        })
        .await;
        match done {
            Ok(Ok(c)) if c.restarted => {
                tracing::info!(
                    frames = c.log_frames,
                    "database log restarted after a long busy spell"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "checkpoint failed; will retry"),
            Err(e) => tracing::error!(error = %e, "flush task failed"),
        }
        if last {
            return;
        }
    }
}

/// Fires due timers: lease ends, renew pushes, opening-hours flips. `Notify::notify_one`
/// keeps a permit when nobody waits, so a timer armed between a sweep and the wait still
/// wakes the loop.
async fn sweeper(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = sweep_once(&inner).map(|t| inner.clock.instant_at(t));
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = inner.sweeper_wake.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Processes every due timer; returns the next deadline.
fn sweep_once(inner: &Inner) -> Option<i64> {
    let mut fx = Effects::default();
    let now = inner.clock.now_ms();
    let mut st = inner.state.lock();
    let mut ended: Vec<(String, EndReason)> = Vec::new();
    let mut touched: HashSet<Arc<str>> = HashSet::default();
    let mut rearm: Vec<Arc<str>> = Vec::new();
    while let Some(first) = st.timers.first() {
        if first.0 > now {
            break;
        }
        let Some((at, kind, id)) = st.timers.pop_first() else {
            break;
        };
        match kind {
            TimerKind::Expire => {
                let Some(s) = st.sessions.get_mut(&id) else {
                    continue;
                };
                if s.scheduled_expiry != at {
                    continue;
                }
                if s.lease_until > now {
                    s.scheduled_expiry = 0;
                    rearm.push(id);
                    continue;
                }
                let account = s.account_id.clone();
                st.end_session_mem(&id, EndReason::Expired, now, &mut fx);
                ended.push((id.to_string(), EndReason::Expired));
                touched.insert(account);
            }
            TimerKind::Renew => {
                let Some(s) = st.sessions.get(&id) else {
                    continue;
                };
                if s.renew_at != Some(at) || s.mode != Mode::Background {
                    continue;
                }
                if let Some(push) = s.push.clone() {
                    fx.pushes.push((
                        push,
                        PushPayload::new(PushBody::Renew {
                            session_id: id.to_string(),
                            lease_until: s.lease_until,
                        }),
                    ));
                }
            }
            TimerKind::Flip => {
                if let Some(acc) = st.accounts.get_mut(&id)
                    && acc.flip_at == Some(at)
                {
                    acc.flip_at = None;
                    touched.insert(id);
                }
            }
        }
    }
    for id in rearm {
        st.schedule_session_timers(&id, &mut fx);
    }
    if !ended.is_empty() {
        if let Err(e) = inner.store.end_sessions(&ended, now) {
            tracing::error!(error = %e, "could not record expired sessions");
        }
        inner
            .metrics
            .expiries
            .fetch_add(ended.len() as u64, Relaxed);
    }
    for acc in touched {
        st.recompute(&acc, now, &inner.metrics, &inner.store, &mut fx);
    }
    let next = st.timers.first().map(|t| t.0);
    drop(st);
    fx.wake_sweeper = false;
    inner.finish(fx);
    next
}

#[async_trait]
impl Backend for Embedded {
    async fn create_account(
        &self,
        req: CreateAccountRequest,
        defaults: Settings,
    ) -> ApiResult<CreateAccountResponse> {
        validate::slug("slug", &req.slug)?;
        validate::name("name", &req.name)?;
        validate::name("owner.name", &req.owner.name)?;
        validate::email("owner.email", &req.owner.email)?;
        validate::password("owner.password", &req.owner.password)?;
        if self.inner.state.lock().slugs.contains_key(&req.slug) {
            return Err(ApiError::conflict(format!(
                "account slug {:?} is taken",
                req.slug
            )));
        }
        let hash = self.hash_password(req.owner.password.clone()).await?;
        let now = self.inner.clock.now_ms();
        let account = AccountRow {
            id: auth::new_id("acc"),
            slug: req.slug.clone(),
            name: req.name.trim().to_owned(),
            widget_key: auth::new_id("wk"),
            settings: AccountSettings {
                timings: defaults,
                messages: Messages::default(),
            },
            opening_hours: OpeningHours::default(),
            groups: Vec::new(),
            view_version: VIEW_VERSION_BLOCK,
        };
        let owner = AgentRow {
            id: auth::new_id("agt"),
            account_id: account.id.clone(),
            name: req.owner.name.trim().to_owned(),
            email: req.owner.email.trim().to_owned(),
            password_hash: hash,
            role: Role::Owner,
            groups: Vec::new(),
            status: initial_status(),
            status_op_id: String::new(),
        };
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.inner.state.lock();
            if st.slugs.contains_key(&req.slug) {
                return Err(ApiError::conflict(format!(
                    "account slug {:?} is taken",
                    req.slug
                )));
            }
            self.inner.store.insert_account(&account, &owner, now)?;
            let id = arc(&account.id);
            let agent_id = arc(&owner.id);
            let mut view = resolve(&[], &WeeklySchedule::always_open(), &[], now);
            view.version = 1;
            let frame = Arc::new(ViewFrame::new(view));
            let info = AccountInfo {
                id: account.id.clone(),
                slug: account.slug.clone(),
                name: account.name.clone(),
                widget_key: account.widget_key.clone(),
            };
            st.slugs.insert(account.slug.clone(), id.clone());
            st.widget_keys
                .insert(account.widget_key.clone(), id.clone());
            st.accounts.insert(
                id.clone(),
                AccountState {
                    info: info.clone(),
                    settings: account.settings.timings,
                    messages: Messages::default(),
                    opening_hours: account.opening_hours.clone(),
                    schedule: WeeklySchedule::always_open(),
                    groups: Vec::new(),
                    agents: vec![agent_id.clone()],
                    view_tx: watch::Sender::new(frame.clone()),
                    view: frame,
                    versions_reserved: VIEW_VERSION_BLOCK,
                    flip_at: None,
                },
            );
            st.emails
                .insert((id.clone(), owner.email.to_lowercase()), agent_id.clone());
            let agent = AgentState {
                id: agent_id.clone(),
                account_id: id.clone(),
                name: owner.name,
                email: owner.email,
                password_hash: owner.password_hash,
                role: Role::Owner,
                groups: Vec::new(),
                status: owner.status,
                status_op_id: String::new(),
                sessions: HashSet::default(),
                tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
            };
            let owner_view = agent.to_agent();
            st.agents.insert(agent_id, agent);
            st.recompute(&id, now, &self.inner.metrics, &self.inner.store, &mut fx);
            CreateAccountResponse {
                account: info,
                owner: owner_view,
            }
        };
        self.inner.finish(fx);
        Ok(resp)
    }

    async fn login(&self, req: LoginRequest) -> ApiResult<LoginResponse> {
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            self.inner
                .pusher
                .validate(push)
                .map_err(|why| ApiError::invalid_field("push.token", why))?;
        }
        let email_key = req.email.trim().to_lowercase();
        let found = {
            let st = self.inner.state.lock();
            st.slugs
                .get(&req.account)
                .and_then(|acc| st.emails.get(&(acc.clone(), email_key.clone())))
                .and_then(|id| st.agents.get(id))
                .map(|a| {
                    (
                        a.id.clone(),
                        a.password_hash.clone(),
                        st.verified.get(&a.id).copied(),
                    )
                })
        };
        let bad = || {
            ApiError::new(
                presence_protocol::ErrorCode::InvalidCredentials,
                "wrong account, email or password",
            )
        };
        let Some((agent_id, hash, cached)) = found else {
            let dummy = self.inner.dummy_hash.clone();
            let pw = req.password.clone();
            self.inner
                .hasher
                .run(move || auth::verify_password(&pw, &dummy))
                .await
                .map_err(|_| hashing_busy())?;
            return Err(bad());
        };
        let verifier = self.inner.verifier(&agent_id, &hash, &req.password);
        let ok = if cached.is_some_and(|c| auth::secure_eq(&c, &verifier)) {
            true
        } else {
            let pw = req.password.clone();
            let h = hash.clone();
            let ok = self
                .inner
                .hasher
                .run(move || auth::verify_password(&pw, &h))
                .await
                .map_err(|_| hashing_busy())?;
            if ok {
                self.inner
                    .state
                    .lock()
                    .verified
                    .insert(agent_id.clone(), verifier);
            }
            ok
        };
        if !ok {
            return Err(bad());
        }
        let token = auth::new_token();
        let token_hash = auth::token_hash(&token);
        let session_id = arc(&auth::new_id("ses"));
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let (account_id, agent, status, role) = {
                let agent = st.agents.get(&agent_id).ok_or_else(bad)?;
                (
                    agent.account_id.clone(),
                    agent.to_agent(),
                    agent.status.clone(),
                    agent.role,
                )
            };
            let _ = role;
            let settings = st.account(&account_id)?.settings;
            // Same device, same account: the old session is replaced.
            let device_key = (account_id.clone(), req.device.id.clone());
            let replaces: Option<Arc<str>> = st.devices.get(&device_key).cloned();
            let row = SessionRow {
                id: session_id.to_string(),
                account_id: account_id.to_string(),
                agent_id: agent_id.to_string(),
                token_hash: hex::encode(token_hash),
                device: req.device.clone(),
                mode: Mode::Active,
                lease_until: now + settings.active_ttl_ms,
                push: req.push.clone(),
            };
            self.inner
                .store
                .insert_session(&row, replaces.as_deref(), now)?;
            if let Some(old) = &replaces {
                st.end_session_mem(old, EndReason::Replaced, now, &mut fx);
            }
            st.sessions.insert(
                session_id.clone(),
                SessionState {
                    id: session_id.clone(),
                    account_id: account_id.clone(),
                    agent_id: agent_id.clone(),
                    token_hash,
                    device: req.device,
                    mode: Mode::Active,
                    lease_until: row.lease_until,
                    push: req.push,
                    connected: 0,
                    scheduled_expiry: 0,
                    renew_at: None,
                },
            );
            st.tokens
                .insert(token_hash, TokenEntry::Live(session_id.clone()));
            st.devices.insert(device_key, session_id.clone());
            if let Some(a) = st.agents.get_mut(&agent_id) {
                a.sessions.insert(session_id.clone());
            }
            st.schedule_session_timers(&session_id, &mut fx);
            st.recompute(
                &account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
            let heartbeat = {
                let s = st.sessions.get(&session_id).ok_or_else(bad)?;
                self.inner.heartbeat_for(&st, s, now)
            };
            LoginResponse {
                token,
                session_id: session_id.to_string(),
                agent,
                status,
                heartbeat,
                server_time: now,
            }
        };
        self.inner.metrics.logins.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(resp)
    }

    fn authenticate(&self, token: &TokenHash) -> ApiResult<Principal> {
        let st = self.inner.state.lock();
        let s = st.live_session(token, self.inner.clock.now_ms())?;
        let role = st
            .agents
            .get(&s.agent_id)
            .map(|a| a.role)
            .ok_or_else(ApiError::session_expired)?;
        Ok(Principal {
            session_id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            account_id: s.account_id.clone(),
            role,
        })
    }

    async fn heartbeat(&self, token: &TokenHash, mode: Mode) -> ApiResult<Heartbeat> {
        let mut fx = Effects::default();
        let hb = {
            let mut guard = self.inner.state.lock();
            let st = &mut *guard;
            let now = self.inner.clock.now_ms();
            let id = st.live_session(token, now)?.id.clone();
            let s = st
                .sessions
                .get_mut(&id)
                .ok_or_else(ApiError::session_expired)?;
            let settings = st
                .accounts
                .get(&s.account_id)
                .map(|a| a.settings)
                .ok_or_else(ApiError::session_expired)?;
            let status_version = st
                .agents
                .get(&s.agent_id)
                .map(|a| a.status.version)
                .ok_or_else(ApiError::session_expired)?;
            let (interval_ms, ttl_ms) = rules::lease_terms(&settings, mode, s.push.is_some());
            s.mode = mode;
            s.lease_until = now + ttl_ms;
            s.schedule_timers(settings.renew_margin_ms, &mut st.timers, &mut fx);
            let lease_until = s.lease_until;
            st.dirty_leases.insert(id);
            Heartbeat {
                interval_ms,
                ttl_ms,
                lease_until,
                server_time: now,
                status_version,
            }
        };
        self.inner.metrics.heartbeats.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(hb)
    }

    async fn logout(&self, p: &Principal) -> ApiResult<()> {
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            if !st.sessions.contains_key(&p.session_id) {
                return Err(ApiError::session_expired());
            }
            self.inner
                .store
                .end_sessions(&[(p.session_id.to_string(), EndReason::Logout)], now)?;
            st.end_session_mem(&p.session_id, EndReason::Logout, now, &mut fx);
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
        }
        self.inner.metrics.logouts.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(())
    }

    async fn end_own_session(&self, p: &Principal, session_id: &str) -> ApiResult<()> {
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let Some(s) = st.sessions.get(session_id) else {
                return Err(ApiError::not_found("session"));
            };
            if s.agent_id != p.agent_id {
                return Err(ApiError::not_found("session"));
            }
            let id = s.id.clone();
            self.inner
                .store
                .end_sessions(&[(id.to_string(), EndReason::Logout)], now)?;
            let by_other = id != p.session_id;
            st.end_session_by(&id, EndReason::Logout, by_other, now, &mut fx);
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
        }
        self.inner.metrics.logouts.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(())
    }

    async fn set_push(&self, p: &Principal, push: Option<PushRegistration>) -> ApiResult<()> {
        if let Some(reg) = &push {
            self.inner
                .pusher
                .validate(reg)
                .map_err(|why| ApiError::invalid_field("token", why))?;
        }
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            if !st.sessions.contains_key(&p.session_id) {
                return Err(ApiError::session_expired());
            }
            self.inner.store.set_push(&p.session_id, push.as_ref())?;
            if let Some(s) = st.sessions.get_mut(&p.session_id) {
                s.push = push;
            }
            st.schedule_session_timers(&p.session_id, &mut fx);
        }
        self.inner.finish(fx);
        Ok(())
    }

    async fn me(&self, p: &Principal) -> ApiResult<MeResponse> {
        self.inner.state.lock().me_view(p)
    }

    async fn set_status(
        &self,
        p: &Principal,
        req: SetStatusRequest,
    ) -> ApiResult<SetStatusResponse> {
        validate::op_id(&req.op_id)?;
        let mut fx = Effects::default();
        let resp = {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let since = now - retention_ms(self.inner.retention.status_ops);
            if let Some(prev) = self.inner.store.status_op(&p.agent_id, &req.op_id, since)? {
                return serde_json::from_str(&prev).map_err(ApiError::internal);
            }
            let device_id = st.sessions.get(&p.session_id).map(|s| s.device.id.clone());
            let agent = st
                .agents
                .get(&p.agent_id)
                .ok_or_else(ApiError::session_expired)?;
            let intent_at = rules::clamp_intent(req.intent_at, now);
            let cur = &agent.status;
            let applied =
                rules::supersedes(intent_at, &req.op_id, cur.intent_at, &agent.status_op_id);
            let status = if applied {
                StatusView {
                    status: req.status,
                    version: cur.version + 1,
                    intent_at,
                    changed_by_device: device_id,
                }
            } else {
                cur.clone()
            };
            let resp = SetStatusResponse { applied, status };
            let json = serde_json::to_string(&resp).map_err(ApiError::internal)?;
            self.inner.store.record_status_op(
                &p.agent_id,
                &req.op_id,
                applied.then_some(&resp.status),
                &json,
                now,
            )?;
            if applied {
                st.apply_status(
                    &p.agent_id,
                    resp.status.clone(),
                    &req.op_id,
                    Some(&p.session_id),
                    &mut fx,
                );
                st.recompute(
                    &p.account_id,
                    now,
                    &self.inner.metrics,
                    &self.inner.store,
                    &mut fx,
                );
            }
            resp
        };
        if resp.applied {
            self.inner.metrics.status_changes.fetch_add(1, Relaxed);
        }
        self.inner.finish(fx);
        Ok(resp)
    }

    async fn open_device_stream(&self, p: &Principal) -> ApiResult<DeviceStream> {
        let mut st = self.inner.state.lock();
        let me = st.me_view(p)?;
        let acc = st.account(&p.account_id)?;
        let views = acc.view_tx.subscribe();
        let agent = st.agent_in_account(&p.account_id, &p.agent_id)?;
        let events = agent.tx.subscribe();
        let snapshot = snapshot_frame(&SnapshotEvent {
            status: me.status,
            chatbox: me.chatbox,
        });
        let s = st
            .sessions
            .get_mut(&p.session_id)
            .ok_or_else(ApiError::session_expired)?;
        s.connected += 1;
        self.inner.device_streams.fetch_add(1, Relaxed);
        Ok(DeviceStream {
            session_id: p.session_id.clone(),
            snapshot,
            events,
            views,
            guard: Box::new(DeviceGuard {
                inner: Arc::downgrade(&self.inner),
                session_id: p.session_id.clone(),
            }),
        })
    }

    async fn admin_account(&self, p: &Principal) -> ApiResult<AdminAccountResponse> {
        let st = self.inner.state.lock();
        let acc = st.account(&p.account_id)?;
        let mut agents: Vec<Agent> = acc
            .agents
            .iter()
            .filter_map(|id| st.agents.get(id))
            .map(AgentState::to_agent)
            .collect();
        agents.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(AdminAccountResponse {
            account: acc.info.clone(),
            groups: acc.groups.clone(),
            opening_hours: acc.opening_hours.clone(),
            settings: AccountSettings {
                timings: acc.settings,
                messages: acc.messages.clone(),
            },
            agents,
        })
    }

    async fn create_agent(&self, p: &Principal, req: NewAgentRequest) -> ApiResult<Agent> {
        validate::name("name", &req.name)?;
        validate::email("email", &req.email)?;
        validate::password("password", &req.password)?;
        let email_key = req.email.trim().to_lowercase();
        let groups = {
            let st = self.inner.state.lock();
            let acc = st.account(&p.account_id)?;
            if st
                .emails
                .contains_key(&(p.account_id.clone(), email_key.clone()))
            {
                return Err(ApiError::conflict("an agent with this email exists"));
            }
            validate::agent_groups(&req.groups, &acc.groups)?
        };
        let hash = self.hash_password(req.password.clone()).await?;
        let row = AgentRow {
            id: auth::new_id("agt"),
            account_id: p.account_id.to_string(),
            name: req.name.trim().to_owned(),
            email: req.email.trim().to_owned(),
            password_hash: hash,
            role: req.role,
            groups,
            status: initial_status(),
            status_op_id: String::new(),
        };
        let mut fx = Effects::default();
        let agent = {
            let mut st = self.inner.state.lock();
            if st
                .emails
                .contains_key(&(p.account_id.clone(), email_key.clone()))
            {
                return Err(ApiError::conflict("an agent with this email exists"));
            }
            st.account(&p.account_id)?;
            self.inner.store.insert_agent(&row)?;
            let id = arc(&row.id);
            let state = AgentState {
                id: id.clone(),
                account_id: p.account_id.clone(),
                name: row.name,
                email: row.email,
                password_hash: row.password_hash,
                role: row.role,
                groups: row.groups,
                status: row.status,
                status_op_id: String::new(),
                sessions: HashSet::default(),
                tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
            };
            let agent = state.to_agent();
            st.agents.insert(id.clone(), state);
            st.emails
                .insert((p.account_id.clone(), email_key), id.clone());
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.agents.push(id);
            }
            let now = self.inner.clock.now_ms();
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
            agent
        };
        self.inner.finish(fx);
        Ok(agent)
    }

    async fn patch_agent(
        &self,
        p: &Principal,
        id: &str,
        req: PatchAgentRequest,
    ) -> ApiResult<Agent> {
        if let Some(name) = &req.name {
            validate::name("name", name)?;
        }
        let mut fx = Effects::default();
        let agent = {
            let mut st = self.inner.state.lock();
            let current = st.agent_in_account(&p.account_id, id)?;
            let mut row = AgentRow {
                id: id.to_owned(),
                account_id: p.account_id.to_string(),
                name: current.name.clone(),
                email: current.email.clone(),
                password_hash: String::new(),
                role: current.role,
                groups: current.groups.clone(),
                status: current.status.clone(),
                status_op_id: String::new(),
            };
            if let Some(groups) = &req.groups {
                row.groups = validate::agent_groups(groups, &st.account(&p.account_id)?.groups)?;
            }
            if let Some(role) = req.role {
                if current.role == Role::Owner
                    && role != Role::Owner
                    && st.owners(&p.account_id) <= 1
                {
                    return Err(ApiError::conflict("an account needs at least one owner"));
                }
                row.role = role;
            }
            if let Some(name) = req.name {
                row.name = name.trim().to_owned();
            }
            self.inner.store.update_agent_profile(&row)?;
            let a = st
                .agents
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found("agent"))?;
            a.name = row.name;
            a.role = row.role;
            a.groups = row.groups;
            let agent = a.to_agent();
            let now = self.inner.clock.now_ms();
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
            agent
        };
        self.inner.finish(fx);
        Ok(agent)
    }

    async fn delete_agent(&self, p: &Principal, id: &str) -> ApiResult<()> {
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let agent = st.agent_in_account(&p.account_id, id)?;
            if agent.role == Role::Owner && st.owners(&p.account_id) <= 1 {
                return Err(ApiError::conflict("an account needs at least one owner"));
            }
            let sessions: Vec<Arc<str>> = agent.sessions.iter().cloned().collect();
            let email_key = agent.email.to_lowercase();
            let now = self.inner.clock.now_ms();
            self.inner.store.delete_agent(id, now)?;
            for s in sessions {
                st.end_session_mem(&s, EndReason::Removed, now, &mut fx);
            }
            st.agents.remove(id);
            st.verified.remove(id);
            st.emails.remove(&(p.account_id.clone(), email_key));
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.agents.retain(|a| &**a != id);
            }
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
        }
        self.inner.finish(fx);
        Ok(())
    }

    async fn admin_set_status(
        &self,
        p: &Principal,
        agent_id: &str,
        status: AgentStatus,
    ) -> ApiResult<StatusView> {
        let mut fx = Effects::default();
        let view = {
            let mut st = self.inner.state.lock();
            let now = self.inner.clock.now_ms();
            let agent = st.agent_in_account(&p.account_id, agent_id)?;
            let cur = &agent.status;
            let view = StatusView {
                status,
                version: cur.version + 1,
                intent_at: rules::admin_intent(now, cur.intent_at),
                changed_by_device: None,
            };
            // A server-made op id: the change is recorded like a device's, and a device's
            // later retry of an older op still loses to it by `intent_at`.
            let op_id = uuid::Uuid::now_v7().to_string();
            let json = serde_json::to_string(&SetStatusResponse {
                applied: true,
                status: view.clone(),
            })
            .map_err(ApiError::internal)?;
            self.inner
                .store
                .record_status_op(agent_id, &op_id, Some(&view), &json, now)?;
            st.apply_status(agent_id, view.clone(), &op_id, None, &mut fx);
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
            view
        };
        self.inner.metrics.status_changes.fetch_add(1, Relaxed);
        self.inner.finish(fx);
        Ok(view)
    }

    async fn put_groups(&self, p: &Principal, groups: Vec<Group>) -> ApiResult<Vec<Group>> {
        let groups = validate::groups(groups)?;
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            let acc = st.account(&p.account_id)?;
            let keys: HashSet<&str> = groups.iter().map(|g| g.key.as_str()).collect();
            let changed: Vec<(String, Vec<String>)> = acc
                .agents
                .iter()
                .filter_map(|id| st.agents.get(id))
                .filter(|a| a.groups.iter().any(|g| !keys.contains(g.as_str())))
                .map(|a| {
                    (
                        a.id.to_string(),
                        a.groups
                            .iter()
                            .filter(|g| keys.contains(g.as_str()))
                            .cloned()
                            .collect(),
                    )
                })
                .collect();
            self.inner
                .store
                .replace_groups(&p.account_id, &groups, &changed)?;
            for (id, g) in changed {
                if let Some(a) = st.agents.get_mut(id.as_str()) {
                    a.groups = g;
                }
            }
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.groups = groups.clone();
            }
            let now = self.inner.clock.now_ms();
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
        }
        self.inner.finish(fx);
        Ok(groups)
    }

    async fn put_opening_hours(&self, p: &Principal, oh: OpeningHours) -> ApiResult<OpeningHours> {
        let schedule = WeeklySchedule::from_opening_hours(&oh)
            .map_err(|e| ApiError::invalid_field(&e.field, &e.detail))?;
        let mut fx = Effects::default();
        {
            let mut st = self.inner.state.lock();
            st.account(&p.account_id)?;
            self.inner.store.update_opening_hours(&p.account_id, &oh)?;
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.opening_hours = oh.clone();
                acc.schedule = schedule;
                acc.flip_at = None;
            }
            let now = self.inner.clock.now_ms();
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
        }
        self.inner.finish(fx);
        Ok(oh)
    }

    async fn put_settings(
        &self,
        p: &Principal,
        patch: SettingsPatch,
    ) -> ApiResult<AccountSettings> {
        let mut fx = Effects::default();
        let next = {
            let mut st = self.inner.state.lock();
            let acc = st.account(&p.account_id)?;
            let current = AccountSettings {
                timings: acc.settings,
                messages: acc.messages.clone(),
            };
            let next = validate::account_settings(current, patch)?;
            self.inner.store.update_settings(&p.account_id, &next)?;
            if let Some(acc) = st.accounts.get_mut(&p.account_id) {
                acc.settings = next.timings;
                acc.messages = next.messages.clone();
            }
            let now = self.inner.clock.now_ms();
            st.recompute(
                &p.account_id,
                now,
                &self.inner.metrics,
                &self.inner.store,
                &mut fx,
            );
            next
        };
        self.inner.finish(fx);
        Ok(next)
    }

    async fn widget_view(&self, widget_key: &str) -> ApiResult<Arc<ViewFrame>> {
        let st = self.inner.state.lock();
        st.widget_keys
            .get(widget_key)
            .and_then(|id| st.accounts.get(id))
            .map(|a| a.view.clone())
            .ok_or_else(|| ApiError::not_found("widget"))
    }

    async fn open_widget_stream(&self, widget_key: &str) -> ApiResult<WidgetStream> {
        let st = self.inner.state.lock();
        let acc = st
            .widget_keys
            .get(widget_key)
            .and_then(|id| st.accounts.get(id))
            .ok_or_else(|| ApiError::not_found("widget"))?;
        let views = acc.view_tx.subscribe();
        self.inner.widget_streams.fetch_add(1, Relaxed);
        Ok(WidgetStream {
            views,
            guard: Box::new(WidgetGuard {
                inner: Arc::downgrade(&self.inner),
            }),
        })
    }

    fn gauges(&self) -> Gauges {
        let st = self.inner.state.lock();
        Gauges {
            live_sessions: st.sessions.len() as u64,
            ended_tokens: st.ended.len() as u64,
            device_subscribers: self.inner.device_streams.load(Relaxed),
            widget_subscribers: self.inner.widget_streams.load(Relaxed),
            accounts: st.accounts.len() as u64,
        }
    }

    async fn flush(&self) {
        self.flush_now();
    }
}

fn hashing_busy() -> ApiError {
    ApiError::unavailable("too many logins at once; retry in a moment", 1)
}
