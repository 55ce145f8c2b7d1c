//! The embedded backend's memory: accounts, agents, live sessions, token hashes, the
//! timer set and the fan-out channels, all behind the one mutex of [`super::Inner`], and the
//! in-memory half of every operation (the caller commits to the store first).

use std::collections::BTreeSet;

// Keys are server-made ids and token hashes, or operator and admin input: no untrusted
// inserts, so the fast non-keyed hasher is safe here.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

use presence_protocol::{
    AccountInfo, AgentAvailability, CustomStatus, Device, EndReason, Group, IdleSettings, Messages,
    Mode, OpeningHours, PushBody, PushPayload, PushRegistration, Role, Settings, StatusView,
    WeeklySchedule, resolve,
};
use tokio::sync::{broadcast, watch};

use crate::auth::TokenHash;
use crate::backend::{AgentEvent, ViewFrame};
use crate::backend::{BackendError, BackendResult};
use crate::metrics::Metrics;
use crate::ops::idle::{Activity, Report};
use crate::push::PushJob;
use crate::rules;
use crate::store::{Store, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    Expire,
    Renew,
    Flip,
    /// A timed status's `until` (keyed by agent id).
    StatusEnd,
    /// The moment an agent's reports say it goes idle (keyed by agent id).
    IdleCheck,
}

pub(super) type Timer = (i64, TimerKind, Arc<str>);

pub(super) struct AccountState {
    pub(super) info: AccountInfo,
    pub(super) settings: Settings,
    pub(super) opening_hours: OpeningHours,
    pub(super) schedule: WeeklySchedule,
    pub(super) messages: Messages,
    pub(super) idle: IdleSettings,
    pub(super) groups: Vec<Group>,
    pub(super) agents: Vec<Arc<str>>,
    pub(super) view: Arc<ViewFrame>,
    /// Versions up to here are durably reserved ([`Store::reserve_view_versions`]).
    pub(super) versions_reserved: i64,
    /// A reservation ahead is being committed (`flush::reserver`).
    pub(super) reserving: bool,
    pub(super) view_tx: watch::Sender<Arc<ViewFrame>>,
    pub(super) flip_at: Option<i64>,
    pub(super) custom_statuses: Vec<CustomStatus>,
    pub(super) identity: crate::rows::Identity,
}

pub(super) struct AgentState {
    pub(super) id: Arc<str>,
    pub(super) account_id: Arc<str>,
    pub(super) name: String,
    pub(super) email: String,
    pub(super) password_hash: String,
    pub(super) role: Role,
    pub(super) groups: Vec<String>,
    pub(super) status: StatusView,
    pub(super) status_op_id: String,
    pub(super) sub: Option<String>,
    pub(super) sessions: HashSet<Arc<str>>,
    pub(super) tx: broadcast::Sender<AgentEvent>,
    /// The idle check armed last (a popped timer of another time is stale).
    pub(super) idle_check_at: Option<i64>,
}

pub(super) struct SessionState {
    pub(super) id: Arc<str>,
    pub(super) account_id: Arc<str>,
    pub(super) agent_id: Arc<str>,
    pub(super) token_hash: TokenHash,
    pub(super) device: Device,
    pub(super) mode: Mode,
    pub(super) lease_until: i64,
    pub(super) push: Option<PushRegistration>,
    pub(super) connected: u32,
    pub(super) scheduled_expiry: i64,
    pub(super) renew_at: Option<i64>,
    /// The last heartbeat's activity report (memory only: a restart waits for the next).
    pub(super) activity: Option<Report>,
}

impl SessionState {
    /// Makes sure the sweeper will look at this session by its lease end (timers are never
    /// moved later: a stale one finds the lease extended and re-arms) and at its renew time.
    pub(super) fn schedule_timers(
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
pub(super) struct DigestHasher;

impl std::hash::BuildHasher for DigestHasher {
    type Hasher = DigestHash;
    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

pub(super) struct DigestHash(u64);

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

pub(super) enum TokenEntry {
    Live(Arc<str>),
    Ended,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) accounts: HashMap<Arc<str>, AccountState>,
    pub(super) slugs: HashMap<String, Arc<str>>,
    pub(super) widget_keys: HashMap<String, Arc<str>>,
    pub(super) agents: HashMap<Arc<str>, AgentState>,
    /// (account id, lowercased email) -> agent id
    pub(super) emails: HashMap<(Arc<str>, String), Arc<str>>,
    pub(super) sessions: HashMap<Arc<str>, SessionState>,
    /// (agent id, device id) -> that device's live session
    pub(super) devices: HashMap<(Arc<str>, String), Arc<str>>,
    pub(super) tokens: std::collections::HashMap<TokenHash, TokenEntry, DigestHasher>,
    /// Tokens of ended sessions, oldest first, with when they ended: pruned after the
    /// retention (see [`State::prune_ended`]).
    pub(super) ended: std::collections::VecDeque<(i64, TokenHash)>,
    pub(super) timers: BTreeSet<Timer>,
    pub(super) dirty_leases: HashSet<Arc<str>>,
}

/// Side effects computed under the lock and carried out after it.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) pushes: Vec<PushJob>,
    pub(super) wake_sweeper: bool,
    /// View versions to reserve ahead, off the lock: (account id, up to).
    pub(super) reservations: Vec<(Arc<str>, i64)>,
    /// Views published, to record as `chatbox.view` events: (account id, view, when).
    pub(super) views: Vec<(Arc<str>, presence_protocol::ChatboxView, i64)>,
}

impl State {
    pub(super) fn account(&self, id: &str) -> BackendResult<&AccountState> {
        self.accounts
            .get(id)
            .ok_or_else(|| BackendError::not_found("account"))
    }

    pub(super) fn agent_in_account(
        &self,
        account_id: &str,
        agent_id: &str,
    ) -> BackendResult<&AgentState> {
        match self.agents.get(agent_id) {
            Some(a) if &*a.account_id == account_id => Ok(a),
            _ => Err(BackendError::not_found("agent")),
        }
    }

    /// Recomputes an account's chat box view and publishes it if anything changed.
    pub(super) fn recompute(
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
                until: a.status.until,
                then: a.status.then,
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
        if let Some(upto) = rules::versions_to_reserve(view.version, acc.versions_reserved) {
            // Durable before it is served: after a crash, versions start above this block.
            // Only when the reservation ahead has not landed in time (or at start-up): the
            // one commit made under the lock.
            let write = Write::ViewVersions {
                account_id: acc.info.id.clone(),
                upto,
            };
            match store.commit(&write) {
                Ok(()) => acc.versions_reserved = upto,
                Err(e) => tracing::error!(error = %e, "could not reserve view versions"),
            }
        } else if !acc.reserving
            && let Some(upto) =
                rules::versions_to_reserve_ahead(view.version, acc.versions_reserved)
        {
            acc.reserving = true;
            fx.reservations.push((Arc::from(account_id), upto));
        }
        fx.views.push((Arc::from(account_id), view.clone(), now));
        let frame = Arc::new(ViewFrame::new(view));
        acc.view = frame.clone();
        acc.view_tx.send_replace(frame);
        metrics.view_changes.inc();
    }

    /// Ends a live session in memory and tells its stream. The caller commits to the store.
    pub(super) fn end_session_mem(
        &mut self,
        session_id: &str,
        reason: EndReason,
        now: i64,
        fx: &mut Effects,
    ) {
        self.end_session_by(session_id, reason, false, now, fx);
    }

    /// [`State::end_session_mem`], saying whether another device of the agent asked for it
    /// (then a `logout` is pushed to the device too).
    pub(super) fn end_session_by(
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
        let device_key = (s.agent_id.clone(), s.device.id.clone());
        if self.devices.get(&device_key) == Some(&s.id) {
            self.devices.remove(&device_key);
        }
        self.tokens.insert(s.token_hash, TokenEntry::Ended);
        self.ended.push_back((now, s.token_hash));
        self.dirty_leases.remove(session_id);
        if let Some(agent) = self.agents.get_mut(&s.agent_id) {
            agent.sessions.remove(session_id);
            let _ = agent.tx.send(AgentEvent::SessionEnded {
                session_id: s.id.clone(),
                reason,
            });
        }
        if rules::wants_end_push(reason, by_other_device)
            && let Some(push) = s.push
        {
            fx.pushes.push(PushJob::new(
                &s.account_id,
                push,
                PushPayload::new(PushBody::SessionEnded {
                    session_id: s.id.to_string(),
                    reason,
                }),
                now + rules::END_PUSH_TTL_MS,
                now,
            ));
        }
    }

    /// Makes an applied status the agent's current one (already committed by the caller):
    /// tells every device stream, and pushes it to the other sessions without a stream.
    /// The automatic-away settings of an agent's account and its live sessions' reports,
    /// if automatic away is on.
    pub(super) fn activity(&self, account_id: &str, agent_id: &str, now: i64) -> Option<Activity> {
        let acc = self.accounts.get(account_id)?;
        acc.idle.idle_after_ms?;
        let agent = self.agents.get(agent_id)?;
        let reports = agent
            .sessions
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .filter(|s| !rules::lease_ended(s.lease_until, now))
            .map(|s| s.activity)
            .collect();
        Some(Activity {
            settings: acc.idle,
            reports,
        })
    }

    /// Arms the agent's idle check at `at` (none: disarms it; a stale timer finds
    /// `idle_check_at` changed and does nothing).
    pub(super) fn arm_idle_check(&mut self, agent_id: &str, at: Option<i64>, fx: &mut Effects) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        if agent.idle_check_at == at {
            return;
        }
        agent.idle_check_at = at;
        if let Some(at) = at {
            self.timers
                .insert((at, TimerKind::IdleCheck, agent.id.clone()));
            fx.wake_sweeper = true;
        }
    }

    pub(super) fn apply_status(
        &mut self,
        agent_id: &str,
        status: StatusView,
        op_id: &str,
        origin: Option<&Arc<str>>,
        now: i64,
        fx: &mut Effects,
    ) {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return;
        };
        let _ = agent.tx.send(AgentEvent::status(status.clone()));
        if let Some(until) = status.until {
            self.timers
                .insert((until, TimerKind::StatusEnd, agent.id.clone()));
            fx.wake_sweeper = true;
        }
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
                fx.pushes.push(PushJob::new(
                    &s.account_id,
                    push,
                    PushPayload::new(PushBody::Status {
                        session_id: s.id.to_string(),
                        status: status.clone(),
                    }),
                    s.lease_until,
                    now,
                ));
            }
        }
    }

    /// Forgets ended sessions' tokens that ended before `cutoff` (they answer `unauthorized`
    /// from then on). Returns how many.
    pub(super) fn prune_ended(&mut self, cutoff: i64) -> usize {
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
    pub(super) fn live_session(&self, token: &TokenHash, now: i64) -> BackendResult<&SessionState> {
        match self.tokens.get(token) {
            None => Err(BackendError::unauthorized()),
            Some(TokenEntry::Ended) => Err(BackendError::session_expired()),
            Some(TokenEntry::Live(id)) => {
                let s = self
                    .sessions
                    .get(id)
                    .ok_or_else(BackendError::session_expired)?;
                if s.lease_until <= now {
                    // The sweeper ends it within moments; the token is already dead.
                    return Err(BackendError::session_expired());
                }
                Ok(s)
            }
        }
    }

    pub(super) fn schedule_session_timers(&mut self, session_id: &Arc<str>, fx: &mut Effects) {
        let Some(s) = self.sessions.get_mut(session_id) else {
            return;
        };
        let renew_margin = self
            .accounts
            .get(&s.account_id)
            .map_or(0, |a| a.settings.renew_margin_ms);
        s.schedule_timers(renew_margin, &mut self.timers, fx);
    }
}
