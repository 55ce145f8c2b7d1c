//! The planning layer: every operation's rules, written once, above the storage seam.
//!
//! Guarantees:
//! - Each operation is planned by a pure function from the slice of state it reads to one
//!   change value: what to store, what to publish, what to answer. Validation, clamps,
//!   ordering, role rules and limits live here (or below, in [`crate::rules`] and
//!   `presence-protocol`), never in a backend.
//! - A backend loads the slice an operation needs under that account's (or agent's) turn,
//!   calls the plan, applies the change atomically, times what must be timed and fans out.
//!   Because the plan runs under the turn, a rule that spans rows (the last owner, an agent's
//!   groups existing) holds however many nodes edit one account at once.
//! - [`Ops`] is what the HTTP layer calls: it checks input that needs no state, does the
//!   costly work (password hashing) before the turn, and hands the backend a plan.

pub mod account;
pub mod agents;
pub mod api_keys;
pub mod credentials;
pub mod custom;
mod identity;
pub mod idle;
mod presence;
pub mod reports;
mod service;
pub mod sessions;
pub mod signin;
pub mod status;
pub mod webhooks;

pub use service::Ops;

use presence_protocol::{
    AccountSettings, Agent, CustomStatus, Group, OpeningHours, StatusView, WeeklySchedule,
};

use crate::backend::BackendResult;
use crate::rows::{AccountRow, AgentRow};

/// Which account to read: by id (a principal's), or by slug (operator tooling, the
/// create-account check).
#[derive(Debug, Clone, Copy)]
pub enum AccountKey<'a> {
    Id(&'a str),
    Slug(&'a str),
}

/// Which account an edit is for: an existing one by id, or a new one by the slug it takes.
#[derive(Debug, Clone, Copy)]
pub enum AccountTarget<'a> {
    Existing(&'a str),
    /// An existing account whose edit may change any of its agents' statuses: the backend
    /// takes every agent's turn too (their status changes wait for it).
    WithAgents(&'a str),
    New(&'a str),
}

/// What an account edit reads: the account and every agent in it, as stored, loaded under
/// the account's turn.
#[derive(Debug, Clone)]
pub struct AccountSlice {
    pub account: AccountRow,
    pub agents: Vec<AgentRow>,
}

impl AccountSlice {
    /// The agent `id` of this account (`not_found` otherwise: tenants never see each other).
    pub fn agent(&self, id: &str) -> BackendResult<&AgentRow> {
        self.agents
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| crate::backend::BackendError::not_found("agent"))
    }

    /// How many owners the account has.
    pub fn owners(&self) -> usize {
        self.agents
            .iter()
            .filter(|a| a.role == presence_protocol::Role::Owner)
            .count()
    }
}

/// One change to an account, planned from an [`AccountSlice`]: what a backend stores, in one
/// transaction, and then publishes (the account's views are recomputed after every edit).
#[derive(Debug, Clone)]
pub enum AccountEdit {
    /// A new account and its owner (only for [`AccountTarget::New`]).
    Create {
        account: Box<AccountRow>,
        owner: Box<AgentRow>,
    },
    /// A new agent, with no session yet.
    AddAgent(AgentRow),
    /// An agent's name, role and groups change (the rest of the row is as loaded).
    UpdateAgent(AgentRow),
    /// An agent leaves the account; its live sessions end with reason `removed`.
    RemoveAgent { agent_id: String },
    /// An agent's password changes; its live sessions but `keep` end with reason
    /// `credentials_changed`.
    Password {
        agent_id: String,
        password_hash: String,
        keep: Option<String>,
    },
    /// The groups are replaced; each listed agent keeps only these groups of its own.
    Groups {
        groups: Vec<Group>,
        agents: Vec<(String, Vec<String>)>,
    },
    /// The opening hours are replaced; `schedule` is their resolved form.
    OpeningHours {
        hours: OpeningHours,
        schedule: Box<WeeklySchedule>,
    },
    /// Timings and messages are replaced.
    Settings(AccountSettings),
    /// The sign-in settings and API keys are replaced.
    Identity(crate::rows::Identity),
    /// The custom statuses are replaced; each listed agent's status becomes the one given
    /// (its custom status gone).
    CustomStatuses {
        statuses: Vec<CustomStatus>,
        resets: Vec<(String, StatusView)>,
    },
}

impl AccountEdit {
    /// The agent an edit adds or changes, as an admin sees it.
    pub fn agent(&self) -> Option<Agent> {
        match self {
            AccountEdit::AddAgent(a) | AccountEdit::UpdateAgent(a) => Some(a.to_agent()),
            AccountEdit::Create { owner, .. } => Some(owner.to_agent()),
            _ => None,
        }
    }
}

/// The plan a backend runs under an account's turn: it reads the account's slice, `None`
/// when a new account's slug is free.
pub type AccountPlan = Box<dyn FnOnce(Option<&AccountSlice>) -> BackendResult<AccountEdit> + Send>;

/// A plan for an existing account (a backend always gives one its slice).
pub fn existing(
    f: impl FnOnce(&AccountSlice) -> BackendResult<AccountEdit> + Send + 'static,
) -> AccountPlan {
    Box::new(move |slice| match slice {
        Some(slice) => f(slice),
        None => Err(crate::backend::BackendError::not_found("account")),
    })
}

/// Refuses `caller` unless the account, as stored, has it as an owner or admin, or as one
/// of its API keys (which act as admins). The HTTP layer checked the role its session
/// carries (in cluster mode, from Redis); this check reads it where it is kept for good
/// (memory and SQLite; PostgreSQL), under the account's turn for an edit, so a demoted
/// admin's session or a revoked key can change nothing.
pub fn check_admin(slice: &AccountSlice, caller: &str) -> crate::backend::BackendResult<()> {
    use presence_protocol::Role;
    match slice.agents.iter().find(|a| a.id == caller).map(|a| a.role) {
        Some(Role::Owner | Role::Admin) => Ok(()),
        None if api_keys::is_account_key(slice, caller) => Ok(()),
        _ => Err(crate::backend::BackendError::forbidden(
            "this needs an owner or admin of the account",
        )),
    }
}

/// [`existing`], for an edit an owner or admin makes: [`check_admin`] first.
pub fn by_admin(
    caller: std::sync::Arc<str>,
    f: impl FnOnce(&AccountSlice) -> crate::backend::BackendResult<AccountEdit> + Send + 'static,
) -> AccountPlan {
    existing(move |slice| {
        check_admin(slice, &caller)?;
        f(slice)
    })
}

/// The default and largest page of a status log.
pub const DEFAULT_LOG_LIMIT: i64 = 100;
pub const MAX_LOG_LIMIT: i64 = 500;

/// What a status-log read asks for: changes applied in `[from, to)` (times), at most
/// `limit`, after the page whose `next` was `after`; each optional.
#[derive(Debug, Default, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Changes applied at or after this time.
    pub from: Option<i64>,
    /// Changes applied before this time.
    pub to: Option<i64>,
    /// Entries per page, 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next` of the page before.
    pub after: Option<i64>,
}
