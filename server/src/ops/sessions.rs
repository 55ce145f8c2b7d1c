//! An agent's sessions: what a login opens, what a logout ends, what a push registration
//! changes, and what `/v1/me` shows, each planned from an [`AgentSlice`].
//!
//! Guarantees:
//! - Every session change is planned under the agent's turn from the agent as stored and its
//!   live sessions, and is one [`SessionEdit`]: a backend stores it in one transaction, then
//!   fans it out.
//! - A new session starts active, with the account's active lease; a device's new session
//!   replaces the same agent's earlier session on that device (reason `replaced`); another
//!   agent's session on a device id is never touched (a device id is the client's word, so
//!   reusing it cannot end someone else's session). An agent keeps at most its cap of live
//!   sessions ([`MAX_LIVE_SESSIONS`] by default): a new one beyond them replaces the oldest.
//! - A login opens its session only if the password it checked is still the agent's: a
//!   password changed meanwhile refuses it.
//! - An agent ends only its own live sessions; ending another device's tells that device.
//! - The answers (login, `/v1/me`) are composed here from the slice and the edit, so both
//!   backends answer alike.

use std::sync::Arc;

use presence_protocol::{
    CustomStatus, Device, EndReason, Heartbeat, LoginResponse, MeResponse, Mode, PushInfo,
    PushRegistration, SessionInfo, Settings,
};

use crate::auth::TokenHash;
use crate::backend::{BackendError, BackendResult, ViewFrame};
use crate::rows::AgentRow;
use crate::rules;

/// Which agent to read: by id within an account (a principal's), or by its login.
#[derive(Debug, Clone, Copy)]
pub enum AgentKey<'a> {
    Id {
        account_id: &'a str,
        agent_id: &'a str,
    },
    Login {
        account_slug: &'a str,
        email: &'a str,
    },
}

/// One live session of an agent.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: String,
    pub device: Device,
    pub push: Option<PushRegistration>,
    /// The lease as last known: live in a read; in a turn, as last stored (a backend that
    /// keeps leases apart from its rows does not load them to plan, and no plan reads them).
    pub mode: Mode,
    pub lease_until: i64,
    /// An event stream of this session is open (reads only).
    pub connected: bool,
    /// The `idle_ms` of its last heartbeat, if it reported one (reads only).
    pub idle_ms: Option<i64>,
}

/// Which of an agent's live sessions a slice holds: all of them (`/v1/me`), the one a plan
/// is about (a logout, a push registration), none (a login's read of the agent), or what
/// opening one more on a device needs to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sessions {
    All,
    One(String),
    None,
    /// The live sessions on `device_id`; all of them when the agent has `cap` or more (the
    /// new one may push the oldest out). Below the cap a login reads no other session, however
    /// many a benchmark's raised cap lets an agent keep.
    Opening {
        device_id: String,
        cap: usize,
    },
}

/// What a session operation reads: the agent as stored, its account's timings, and the
/// agent's live sessions the operation asked for ([`Sessions`]; sorted by id).
#[derive(Debug, Clone)]
pub struct AgentSlice {
    pub now: i64,
    pub agent: AgentRow,
    pub timings: Settings,
    pub sessions: Vec<LiveSession>,
    /// The account's current chat box view (reads only; `None` under a turn).
    pub view: Option<Arc<ViewFrame>>,
    /// The account's custom statuses (reads by id only; empty otherwise).
    pub custom_statuses: Vec<CustomStatus>,
}

impl AgentSlice {
    fn session(&self, id: &str) -> Option<&LiveSession> {
        self.sessions.iter().find(|s| s.id == id)
    }
}

/// The most live sessions an agent keeps (the contract's; `--max-sessions-per-agent`
/// changes it); one more replaces the oldest.
pub const MAX_LIVE_SESSIONS: usize = 20;

/// A session to open.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub token_hash: TokenHash,
    pub device: Device,
    pub push: Option<PushRegistration>,
    pub mode: Mode,
    pub lease_until: i64,
    /// The agent's live sessions it ends with reason `replaced`: the same device's, and the
    /// oldest beyond [`MAX_LIVE_SESSIONS`].
    pub replaces: Vec<String>,
}

/// One change to an agent's sessions, planned from an [`AgentSlice`].
#[derive(Debug, Clone)]
pub enum SessionEdit {
    /// A new session; the agent's live session on the same device ends with reason
    /// `replaced`.
    Open(NewSession),
    /// A live session of the agent ends; `by_other_device` when another of its sessions
    /// asked (the ended device is pushed the news).
    End {
        session_id: String,
        reason: EndReason,
        by_other_device: bool,
    },
    /// A live session's push registration is set or removed.
    Push {
        session_id: String,
        push: Option<PushRegistration>,
    },
}

/// The plan a backend runs under an agent's turn.
pub type SessionPlan = Box<dyn FnOnce(&AgentSlice) -> BackendResult<SessionEdit> + Send>;

/// What a login asks to open.
#[derive(Debug, Clone)]
pub struct Opening {
    pub id: String,
    pub token_hash: TokenHash,
    pub device: Device,
    pub push: Option<PushRegistration>,
}

/// What a login opens: a session for a device, active, on the account's active lease, if
/// `checked_hash` (the password hash the login was checked against) is still the agent's;
/// the agent keeps at most `cap` live sessions. The slice holds every live session (their
/// ids grow with their age: see [`crate::auth::new_session_id`]).
pub fn open(
    slice: &AgentSlice,
    checked_hash: &str,
    cap: usize,
    new: Opening,
) -> BackendResult<SessionEdit> {
    let Opening {
        id: session_id,
        token_hash,
        device,
        push,
    } = new;
    if !crate::auth::secure_eq(
        slice.agent.password_hash.as_bytes(),
        checked_hash.as_bytes(),
    ) {
        return Err(BackendError::InvalidCredentials);
    }
    let (same_device, mut others): (Vec<&LiveSession>, Vec<&LiveSession>) = slice
        .sessions
        .iter()
        .partition(|s| s.device.id == device.id);
    others.sort_by(|a, b| a.id.cmp(&b.id));
    let over = (others.len() + 1).saturating_sub(cap);
    let replaces = same_device
        .into_iter()
        .chain(others.into_iter().take(over))
        .map(|s| s.id.clone())
        .collect();
    Ok(SessionEdit::Open(NewSession {
        id: session_id,
        token_hash,
        device,
        push,
        mode: Mode::Active,
        lease_until: slice.now + slice.timings.active_ttl_ms,
        replaces,
    }))
}

/// Ends `session_id`, a live session of the agent, with reason `logout`, asked by session
/// `by` of the same agent; any other session is `not_found`.
pub fn logout(slice: &AgentSlice, by: &str, session_id: &str) -> BackendResult<SessionEdit> {
    let s = slice
        .session(session_id)
        .ok_or_else(|| BackendError::not_found("session"))?;
    Ok(SessionEdit::End {
        session_id: s.id.clone(),
        reason: EndReason::Logout,
        by_other_device: s.id != by,
    })
}

/// Sets (or with `None` removes) the push registration of the caller's own session, which
/// must still be live.
pub fn set_push(
    slice: &AgentSlice,
    session_id: &str,
    push: Option<PushRegistration>,
) -> BackendResult<SessionEdit> {
    let s = slice
        .session(session_id)
        .ok_or_else(BackendError::session_expired)?;
    Ok(SessionEdit::Push {
        session_id: s.id.clone(),
        push,
    })
}

/// The heartbeat terms a session gets at `now`.
pub fn heartbeat(
    timings: &Settings,
    mode: Mode,
    has_push: bool,
    lease_until: i64,
    now: i64,
    status_version: i64,
) -> Heartbeat {
    let (interval_ms, ttl_ms) = rules::lease_terms(timings, mode, has_push);
    Heartbeat {
        interval_ms,
        ttl_ms,
        lease_until,
        server_time: now,
        status_version,
    }
}

/// The answer to a login that opened `s` with the raw `token`.
pub fn login_answer(slice: &AgentSlice, s: &NewSession, token: String) -> LoginResponse {
    let status = slice.agent.status.clone();
    LoginResponse {
        token,
        session_id: s.id.clone(),
        agent: slice.agent.to_agent(),
        heartbeat: heartbeat(
            &slice.timings,
            s.mode,
            s.push.is_some(),
            s.lease_until,
            slice.now,
            status.version,
        ),
        status,
        server_time: slice.now,
    }
}

/// `/v1/me` from a read of the agent.
pub fn me(slice: AgentSlice) -> BackendResult<MeResponse> {
    let view = slice
        .view
        .ok_or_else(|| BackendError::internal("an agent read without its account's view"))?;
    let sessions = slice
        .sessions
        .into_iter()
        .map(|s| SessionInfo {
            session_id: s.id,
            device: s.device,
            mode: s.mode,
            lease_until: s.lease_until,
            connected: s.connected,
            push: s.push.map(|r| PushInfo {
                provider: r.provider,
            }),
            idle_ms: s.idle_ms,
        })
        .collect();
    Ok(MeResponse {
        agent: slice.agent.to_agent(),
        status: slice.agent.status,
        chatbox: view.view.clone(),
        sessions,
        custom_statuses: slice.custom_statuses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use presence_protocol::{Platform, StatusView};

    fn device(id: &str) -> Device {
        Device {
            id: id.into(),
            platform: Platform::Web,
            name: "Browser".into(),
            app_version: "1".into(),
        }
    }

    fn slice(sessions: &[&str]) -> AgentSlice {
        AgentSlice {
            now: 1_000,
            agent: AgentRow {
                id: "agt_1".into(),
                account_id: "acc_1".into(),
                name: "Ada".into(),
                email: "ada@example.com".into(),
                password_hash: String::new(),
                role: presence_protocol::Role::Agent,
                groups: vec![],
                status: StatusView {
                    version: 7,
                    ..crate::ops::account::initial_status()
                },
                status_op_id: String::new(),
                sub: None,
            },
            timings: Settings::default(),
            sessions: sessions
                .iter()
                .map(|id| LiveSession {
                    id: (*id).into(),
                    device: device(id),
                    push: None,
                    mode: Mode::Active,
                    lease_until: 2_000,
                    connected: false,
                    idle_ms: None,
                })
                .collect(),
            view: None,
            custom_statuses: Vec::new(),
        }
    }

    fn opening(device_id: &str) -> Opening {
        Opening {
            id: "ses_new".into(),
            token_hash: [0; 32],
            device: device(device_id),
            push: None,
        }
    }

    fn open_on(s: &AgentSlice, device_id: &str) -> BackendResult<SessionEdit> {
        open(s, "", MAX_LIVE_SESSIONS, opening(device_id))
    }

    #[test]
    fn a_new_session_starts_active_on_the_active_lease() {
        let s = slice(&[]);
        let Ok(SessionEdit::Open(n)) = open_on(&s, "d") else {
            panic!("not an open");
        };
        assert!(n.replaces.is_empty());
        assert_eq!(n.mode, Mode::Active);
        assert_eq!(n.lease_until, 1_000 + s.timings.active_ttl_ms);
        let answer = login_answer(&s, &n, "tok".into());
        assert_eq!(answer.heartbeat.lease_until, n.lease_until);
        assert_eq!(answer.heartbeat.status_version, 7);
        assert_eq!(answer.server_time, 1_000);
    }

    #[test]
    fn a_new_session_replaces_its_device_and_the_oldest_beyond_twenty() {
        let ids: Vec<String> = (0..MAX_LIVE_SESSIONS)
            .map(|i| format!("ses_{i:02}"))
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let full = slice(&ids);
        let replaces = |s: &AgentSlice, d: &str| match open_on(s, d) {
            Ok(SessionEdit::Open(n)) => n.replaces,
            other => panic!("not an open: {other:?}"),
        };
        // A twenty-first device: the oldest goes.
        assert_eq!(replaces(&full, "new"), ["ses_00"]);
        // A device already signed in: only its own session goes, the count stays twenty.
        assert_eq!(replaces(&full, "ses_07"), ["ses_07"]);
        // Below the cap, a new device replaces nothing.
        assert!(replaces(&slice(&ids[..19]), "new").is_empty());
    }

    #[test]
    fn a_login_checked_against_a_password_changed_since_is_refused() {
        let mut s = slice(&[]);
        s.agent.password_hash = "$argon2id$new".into();
        let got = open(&s, "$argon2id$old", MAX_LIVE_SESSIONS, opening("d"));
        assert!(
            matches!(got, Err(BackendError::InvalidCredentials)),
            "{got:?}"
        );
        let got = open(&s, "$argon2id$new", MAX_LIVE_SESSIONS, opening("d"));
        assert!(matches!(got, Ok(SessionEdit::Open(_))), "{got:?}");
    }

    #[test]
    fn logout_ends_only_a_live_session_of_the_agent_and_says_who_asked() {
        let s = slice(&["ses_a", "ses_b"]);
        let cases = [
            ("ses_a", "ses_a", Some(false)),
            ("ses_a", "ses_b", Some(true)),
            ("ses_a", "ses_other_agent", None),
        ];
        for (by, target, want) in cases {
            match (logout(&s, by, target), want) {
                (
                    Ok(SessionEdit::End {
                        session_id,
                        reason,
                        by_other_device,
                    }),
                    Some(other),
                ) => {
                    assert_eq!(session_id, target);
                    assert_eq!(reason, EndReason::Logout);
                    assert_eq!(by_other_device, other, "{by} -> {target}");
                }
                (Err(BackendError::NotFound(_)), None) => {}
                (got, _) => panic!("{by} -> {target}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_push_registration_needs_the_session_live() {
        let s = slice(&["ses_a"]);
        assert!(matches!(
            set_push(&s, "ses_a", None),
            Ok(SessionEdit::Push { .. })
        ));
        assert!(matches!(
            set_push(&s, "ses_gone", None),
            Err(BackendError::SessionEnded)
        ));
    }
}
