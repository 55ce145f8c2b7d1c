//! [`Ops`]: the operations the HTTP layer calls, each written once for every backend. It
//! checks what needs no state, does costly work before any turn (password hashing), and
//! hands the backend a plan from this module's siblings.

use std::sync::Arc;

use presence_protocol::{
    AccountInfo, AccountSettings, AdminAccountResponse, AdminSetStatusRequest, Agent,
    ChangePasswordRequest, CreateAccountRequest, CreateAccountResponse, CustomStatus, Device,
    Group, Heartbeat, HeartbeatRequest, LoginRequest, LoginResponse, MeResponse, NewAgentRequest,
    OpeningHours, PatchAgentRequest, PushRegistration, SetPasswordRequest, SetStatusRequest,
    SetStatusResponse, Settings, SettingsPatch, StatusLogPage, StatusView,
};

use super::agents::PasswordBy;
use super::credentials::Credentials;
use super::sessions::{self, AgentKey, SessionEdit, SessionPlan, Sessions};
use super::status::{self, StatusChange, StatusPlan};
use super::{
    AccountEdit, AccountKey, AccountTarget, account, agents, by_admin, check_admin, custom, idle,
    signin,
};
use super::{DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT};
use crate::auth::TokenHash;
use crate::backend::{
    Backend, BackendError, BackendResult, DeviceStream, LogQuery, Principal, Renewal, SessionCheck,
    ViewFrame, WidgetStream,
};
use crate::hashing::HashPool;
use crate::jwt::jwks::JwksCache;
use crate::push::Pusher;
use crate::rows::AgentRow;
use crate::validate;

/// The operations of the API over one backend. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) hasher: Arc<HashPool>,
    pub(super) credentials: Arc<Credentials>,
    pub(super) pusher: Arc<Pusher>,
    /// Live sessions an agent keeps.
    pub(super) session_cap: usize,
    /// Keys fetched from accounts' `jwks_url`.
    pub(super) jwks: Arc<JwksCache>,
    /// The target rules of user-chosen URLs (`--push-webhook-allow`).
    pub(super) outbound: crate::outbound::TargetRules,
    /// The client of test webhook events, or why none could be built.
    pub(super) webhook_client: Arc<Result<reqwest::Client, String>>,
    pub(super) webhook_timeout: std::time::Duration,
    /// Tells this node's webhook worker that an endpoint was made, enabled or retried.
    pub(super) webhook_poke: Arc<tokio::sync::Notify>,
}

/// Answered when every hashing slot is taken and the queue is full.
pub fn hashing_busy() -> BackendError {
    BackendError::unavailable("too many logins at once; retry in a moment", 1)
}

impl Ops {
    pub fn new(backend: Arc<dyn Backend>, hasher: Arc<HashPool>, pusher: Arc<Pusher>) -> Ops {
        Ops {
            backend,
            credentials: Arc::new(Credentials::new(hasher.clone())),
            hasher,
            pusher,
            session_cap: sessions::MAX_LIVE_SESSIONS,
            jwks: Arc::new(JwksCache::new(crate::outbound::TargetRules::default())),
            outbound: crate::outbound::TargetRules::default(),
            webhook_client: Arc::new(Err("not set up".to_owned())),
            webhook_timeout: crate::webhooks::backoff::Policy::default().timeout,
            webhook_poke: Arc::new(tokio::sync::Notify::new()),
        }
        .with_outbound_rules(crate::outbound::TargetRules::default())
    }

    /// These operations with JWKS fetches and webhook URLs under these target rules
    /// (`--push-webhook-allow`).
    pub fn with_outbound_rules(mut self, rules: crate::outbound::TargetRules) -> Ops {
        self.jwks = Arc::new(JwksCache::new(rules.clone()));
        self.webhook_client = Arc::new(crate::webhooks::worker::client(
            &rules,
            self.webhook_timeout,
        ));
        self.outbound = rules;
        self
    }

    /// What these operations tell when an endpoint is made, enabled or retried.
    pub fn webhook_poke(&self) -> Arc<tokio::sync::Notify> {
        self.webhook_poke.clone()
    }

    /// These operations with test webhook events waiting `timeout` for an answer.
    pub fn with_webhook_timeout(mut self, timeout: std::time::Duration) -> Ops {
        self.webhook_timeout = timeout;
        let rules = self.outbound.clone();
        self.with_outbound_rules(rules)
    }

    /// These operations with another cap on an agent's live sessions (the contract's is
    /// [`sessions::MAX_LIVE_SESSIONS`]; a benchmark that opens thousands on one agent raises
    /// it).
    pub fn with_session_cap(mut self, cap: usize) -> Ops {
        self.session_cap = cap.max(1);
        self
    }

    /// The backend under these operations.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Hashes a new password on the hashing pool.
    pub async fn hash_password(&self, password: String) -> BackendResult<String> {
        self.hasher
            .run(move || crate::auth::hash_password(&password))
            .await
            .map_err(|_| hashing_busy())?
            .map_err(BackendError::internal)
    }

    /// Creates an account and its owner; a taken slug is a `Conflict` (checked before the
    /// owner's password is hashed, and again as the rows are stored).
    pub async fn create_account(
        &self,
        req: CreateAccountRequest,
        defaults: Settings,
    ) -> BackendResult<CreateAccountResponse> {
        validate::new_account(&req)?;
        match self
            .backend
            .account_slice(AccountKey::Slug(&req.slug))
            .await
        {
            Ok(_) => return Err(account::slug_taken(&req.slug)),
            Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let hash = self.hash_password(req.owner.password.clone()).await?;
        let (account, owner) = account::new_account(&req, defaults, hash);
        let answer = CreateAccountResponse {
            account: account.info(),
            owner: owner.to_agent(),
        };
        let slug = account.slug.clone();
        self.backend
            .edit_account(
                AccountTarget::New(&slug),
                Box::new(move |slice| account::create(slice, account, owner)),
            )
            .await?;
        Ok(answer)
    }

    /// The live session behind a bearer token's hash.
    pub async fn authenticate(&self, token: &TokenHash) -> BackendResult<Principal> {
        match self.backend.session(token, None).await? {
            SessionCheck::Authenticated(p) => Ok(p),
            SessionCheck::Renewed(..) => Err(BackendError::internal("a check that renewed")),
        }
    }

    /// Renews the lease of the session behind a token in `mode` (authenticating it in the
    /// same step), stores its activity report, and answers its new terms. A report of an
    /// agent whose account has automatic away is planned on before the answer
    /// ([`idle::on_report`]): the return it brings, or the idle change it implies, is
    /// committed first, and the answer carries its version.
    pub async fn heartbeat(
        &self,
        token: &TokenHash,
        req: HeartbeatRequest,
    ) -> BackendResult<Heartbeat> {
        if let Some(ms) = req.idle_ms {
            idle::check_report(ms)?;
        }
        let renewal = Renewal {
            mode: req.mode,
            idle_ms: req.idle_ms,
        };
        let (mut hb, reported) = match self.backend.session(token, Some(renewal)).await? {
            SessionCheck::Renewed(hb, reported) => (hb, reported),
            SessionCheck::Authenticated(_) => {
                return Err(BackendError::internal("a renewal without its terms"));
            }
        };
        if let Some(r) = reported {
            let (change, plan) = idle::on_report(r.account_id, r.agent_id.to_string(), r.report);
            match self.backend.change_status(change, plan).await {
                Ok(resp) => hb.status_version = hb.status_version.max(resp.status.version),
                // The lease is renewed either way; the next report decides again.
                Err(e) => tracing::warn!(error = %e, "could not apply an activity report"),
            }
        }
        Ok(hb)
    }

    /// A page of an agent's status log, newest first (the caller's own, or, for an admin, any
    /// agent's of the account: the route decides). `limit` 1 to 500 (default 100); `to` not
    /// before `from`; `after` a page's `next`. Each bound out of range is a `422` naming it.
    pub async fn status_log(
        &self,
        p: &Principal,
        agent_id: &str,
        q: super::LogParams,
    ) -> BackendResult<StatusLogPage> {
        let limit = q.limit.unwrap_or(DEFAULT_LOG_LIMIT);
        if !(1..=MAX_LOG_LIMIT).contains(&limit) {
            return Err(BackendError::invalid_field(
                "limit",
                format!("must be between 1 and {MAX_LOG_LIMIT}"),
            ));
        }
        let (from, to) = (q.from.unwrap_or(0), q.to.unwrap_or(i64::MAX));
        if to < from {
            return Err(BackendError::invalid_field("to", "must not be before from"));
        }
        if q.after.is_some_and(|a| a < 1) {
            return Err(BackendError::invalid_field(
                "after",
                "not a page of this log",
            ));
        }
        if agent_id != &*p.agent_id {
            self.stored_admin(p).await?;
        }
        let mut entries = self
            .backend
            .status_log(LogQuery {
                account_id: p.account_id.clone(),
                agent_id: agent_id.to_owned(),
                from,
                to,
                before_version: q.after.unwrap_or(i64::MAX),
                // One more than asked: whether a next page exists.
                limit: limit as u32 + 1,
            })
            .await?;
        let next = match entries.len() > limit as usize {
            true => {
                entries.truncate(limit as usize);
                entries.last().map(|e| e.status.version.to_string())
            }
            false => None,
        };
        Ok(StatusLogPage { entries, next })
    }

    /// [`check_admin`] on the account as stored, for what an admin reads or changes outside
    /// an account edit.
    pub(super) async fn stored_admin(&self, p: &Principal) -> BackendResult<()> {
        let slice = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&slice, &p.agent_id)
    }

    /// The chat box view for a widget key.
    pub async fn widget_view(&self, widget_key: &str) -> BackendResult<Arc<ViewFrame>> {
        Ok(self.backend.widget(widget_key, false).await?.current)
    }

    /// A stream of a widget key's views, starting with the current one.
    pub async fn open_widget_stream(&self, widget_key: &str) -> BackendResult<WidgetStream> {
        self.backend
            .widget(widget_key, true)
            .await?
            .stream
            .ok_or_else(|| BackendError::internal("a followed widget without its stream"))
    }

    /// The caller's device stream: a snapshot, then its agent's events and the views.
    pub async fn open_device_stream(&self, p: &Principal) -> BackendResult<DeviceStream> {
        self.backend.open_device_stream(p).await
    }

    /// Checks a push registration against the providers configured here; `prefix` names
    /// where it sits in the request body.
    pub(super) fn check_push(&self, reg: &PushRegistration, prefix: &str) -> BackendResult<()> {
        self.pusher
            .validate(reg)
            .map_err(|r| BackendError::invalid_field(&format!("{prefix}{}", r.field), r.detail))
    }

    /// Verifies credentials and opens a session, which replaces the device's earlier one.
    /// Wrong credentials give `invalid_credentials`, whether or not the account or email
    /// exists (and in the same time: `credentials.rs`).
    /// What a login request must be before anything is counted or looked up for it: a
    /// device, a push registration the server serves, and strings of bounded size (the
    /// login limits key on them).
    pub fn check_login(&self, req: &LoginRequest) -> BackendResult<()> {
        validate::login_strings(req)?;
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            self.check_push(push, "push.")?;
        }
        Ok(())
    }

    /// Whether the login's device had a session of the agent it names (an unknown account or
    /// email: no).
    pub async fn known_device(&self, req: &LoginRequest) -> BackendResult<bool> {
        let key = AgentKey::Login {
            account_slug: &req.account,
            email: &req.email,
        };
        match self.backend.agent_slice(key).await {
            Ok(slice) => {
                self.backend
                    .known_device(&slice.agent.id, &req.device.id)
                    .await
            }
            Err(BackendError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn login(&self, req: LoginRequest) -> BackendResult<LoginResponse> {
        self.check_login(&req)?;
        match self
            .backend
            .account_slice(AccountKey::Slug(&req.account))
            .await
        {
            Ok(slice) if !slice.account.identity.sign_in.password_login => {
                return Err(BackendError::forbidden(
                    "this account signs in with its own identity provider, not passwords",
                ));
            }
            Ok(_) | Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let key = AgentKey::Login {
            account_slug: &req.account,
            email: &req.email,
        };
        let found = match self.backend.agent_slice(key).await {
            Ok(slice) => Some(slice.agent),
            Err(BackendError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let known = found
            .as_ref()
            .map(|a| (a.id.as_str(), a.password_hash.as_str()));
        self.credentials.check(known, &req.password).await?;
        let Some(agent) = found else {
            return Err(BackendError::InvalidCredentials);
        };
        match self.open_session(&agent, req.device, req.push).await {
            // Removed since its password checked out.
            Err(BackendError::NotFound(_)) => Err(BackendError::InvalidCredentials),
            other => other,
        }
    }

    /// Opens a session for `agent` (as it was read: a password changed since refuses it),
    /// replacing the device's earlier one; the login answer.
    pub(super) async fn open_session(
        &self,
        agent: &AgentRow,
        device: Device,
        push: Option<PushRegistration>,
    ) -> BackendResult<LoginResponse> {
        let token = crate::auth::new_token();
        let (token_hash, session_id) = (
            crate::auth::token_hash(&token),
            crate::auth::new_session_id(),
        );
        let checked = agent.password_hash.clone();
        let cap = self.session_cap;
        let sessions = Sessions::Opening {
            device_id: device.id.clone(),
            cap,
        };
        let plan: SessionPlan = Box::new(move |slice| {
            let new = sessions::Opening {
                id: session_id,
                token_hash,
                device,
                push,
            };
            sessions::open(slice, &checked, cap, new)
        });
        let (slice, edit) = self
            .backend
            .edit_sessions(&agent.account_id, &agent.id, sessions, plan)
            .await?;
        match &edit {
            SessionEdit::Open(s) => Ok(sessions::login_answer(&slice, s, token)),
            _ => Err(BackendError::internal("a login opened no session")),
        }
    }

    /// The caller's agent, status, the account's view and the agent's live sessions.
    pub async fn me(&self, p: &Principal) -> BackendResult<MeResponse> {
        let key = AgentKey::Id {
            account_id: &p.account_id,
            agent_id: &p.agent_id,
        };
        sessions::me(self.backend.agent_slice(key).await?)
    }

    /// Runs a session plan under the caller's agent's turn; the agent gone means the
    /// caller's session is as good as ended.
    async fn own_sessions(
        &self,
        p: &Principal,
        session_id: &str,
        plan: SessionPlan,
    ) -> BackendResult<()> {
        let sessions = Sessions::One(session_id.to_owned());
        match self
            .backend
            .edit_sessions(&p.account_id, &p.agent_id, sessions, plan)
            .await
        {
            Err(BackendError::NotFound("agent")) => Err(BackendError::session_expired()),
            other => other.map(drop),
        }
    }

    /// Ends the caller's own session now (`DELETE /v1/session`); one that has already ended
    /// is `session_expired`.
    pub async fn logout(&self, p: &Principal) -> BackendResult<()> {
        let sid = p.session_id.to_string();
        match self
            .own_sessions(
                p,
                &p.session_id,
                Box::new(move |s| sessions::logout(s, &sid, &sid)),
            )
            .await
        {
            Err(BackendError::NotFound(_)) => Err(BackendError::session_expired()),
            other => other,
        }
    }

    /// Ends another live session of the caller's agent with reason `logout`, telling that
    /// session's stream and push. A session of another agent, or none: `not_found`.
    pub async fn end_own_session(&self, p: &Principal, session_id: &str) -> BackendResult<()> {
        let (by, id) = (p.session_id.to_string(), session_id.to_owned());
        self.own_sessions(
            p,
            session_id,
            Box::new(move |s| sessions::logout(s, &by, &id)),
        )
        .await
    }

    /// Registers (or with `None` removes) the caller's push registration; a provider that
    /// cannot reach the device is an `InvalidField`.
    pub async fn set_push(
        &self,
        p: &Principal,
        push: Option<PushRegistration>,
    ) -> BackendResult<()> {
        if let Some(reg) = &push {
            self.check_push(reg, "")?;
        }
        let sid = p.session_id.to_string();
        self.own_sessions(
            p,
            &p.session_id,
            Box::new(move |s| sessions::set_push(s, &sid, push)),
        )
        .await
    }

    /// Applies a device's status op if it is the latest intent (idempotent by op id);
    /// committed before it answers.
    pub async fn set_status(
        &self,
        p: &Principal,
        req: SetStatusRequest,
    ) -> BackendResult<SetStatusResponse> {
        validate::op_id(&req.op_id)?;
        status::check_timing(&req.timing())?;
        let change = StatusChange {
            account_id: p.account_id.clone(),
            agent_id: p.agent_id.to_string(),
            origin: Some(p.session_id.clone()),
            op_id: req.op_id.clone(),
            custom_status: req.custom_status.clone(),
            activity: false,
        };
        let plan: StatusPlan = Box::new(move |slice| status::device_op(slice, &req));
        match self.backend.change_status(change, plan).await {
            // The caller's own agent is gone: its session is as good as ended.
            Err(BackendError::NotFound("agent")) => Err(BackendError::session_expired()),
            other => other,
        }
    }

    /// An admin sets an agent's status: a change like any other that wins over every
    /// earlier intent, with `changed_by_device` null. Its op id is made here, so it is
    /// recorded like a device's and a device's later retry of an older op still loses.
    pub async fn admin_set_status(
        &self,
        p: &Principal,
        agent_id: &str,
        req: AdminSetStatusRequest,
    ) -> BackendResult<StatusView> {
        let timing = req.timing();
        status::check_timing(&timing)?;
        self.stored_admin(p).await?;
        let admin = p.agent_id.to_string();
        let change = StatusChange {
            account_id: p.account_id.clone(),
            agent_id: agent_id.to_owned(),
            origin: None,
            op_id: uuid::Uuid::now_v7().to_string(),
            custom_status: timing.custom_status.clone(),
            activity: false,
        };
        let plan: StatusPlan = Box::new(move |slice| {
            Ok(SetStatusResponse {
                applied: true,
                status: status::admin_op(slice, req.status, &timing, &admin)?,
            })
        });
        Ok(self.backend.change_status(change, plan).await?.status)
    }

    /// The account with this slug, if any (operator tooling: `--demo`).
    pub async fn account_by_slug(&self, slug: &str) -> BackendResult<Option<AccountInfo>> {
        match self.backend.account_slice(AccountKey::Slug(slug)).await {
            Ok(slice) => Ok(Some(slice.account.info())),
            Err(BackendError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The account as an admin sees it: groups, opening hours, settings, agents by email.
    pub async fn admin_account(&self, p: &Principal) -> BackendResult<AdminAccountResponse> {
        let slice = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&slice, &p.agent_id)?;
        let mut agents: Vec<Agent> = slice.agents.iter().map(AgentRow::to_agent).collect();
        agents.sort_by(|a, b| a.email.cmp(&b.email));
        let acc = slice.account;
        Ok(AdminAccountResponse {
            account: acc.info(),
            groups: acc.groups,
            opening_hours: acc.opening_hours,
            settings: acc.settings,
            agents,
            custom_statuses: acc.custom_statuses,
            sign_in: signin::view(&acc.identity.sign_in),
        })
    }

    /// Adds an agent; an email already in the account is a `Conflict`. Checked once before
    /// the password is hashed (so a refused request costs no hash) and again under the
    /// account's turn.
    pub async fn create_agent(&self, p: &Principal, req: NewAgentRequest) -> BackendResult<Agent> {
        validate::name("name", &req.name)?;
        validate::email("email", &req.email)?;
        validate::password("password", &req.password)?;
        let mut row = AgentRow {
            id: crate::auth::new_id("agt"),
            account_id: p.account_id.to_string(),
            name: req.name.trim().to_owned(),
            email: req.email.trim().to_owned(),
            password_hash: String::new(),
            role: req.role,
            groups: req.groups,
            status: account::initial_status(),
            status_op_id: String::new(),
            sub: None,
        };
        let before = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        agents::create(&before, &p.agent_id, row.clone())?;
        row.password_hash = self.hash_password(req.password).await?;
        let caller = p.agent_id.to_string();
        let edit = self
            .backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    agents::create(slice, &caller, row)
                }),
            )
            .await?;
        edit.agent()
            .ok_or_else(|| BackendError::internal("an agent edit without its agent"))
    }

    /// Changes an agent's name, groups or role; demoting the last owner is a `Conflict`.
    pub async fn patch_agent(
        &self,
        p: &Principal,
        id: &str,
        req: PatchAgentRequest,
    ) -> BackendResult<Agent> {
        if let Some(name) = &req.name {
            validate::name("name", name)?;
        }
        let (id, caller) = (id.to_owned(), p.agent_id.to_string());
        let edit = self
            .backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    agents::patch(slice, &caller, &id, req)
                }),
            )
            .await?;
        edit.agent()
            .ok_or_else(|| BackendError::internal("an agent edit without its agent"))
    }

    /// Changes the caller's own password, given its current one; its other sessions end
    /// with reason `credentials_changed`. A wrong current password is `InvalidCredentials`.
    pub async fn change_own_password(
        &self,
        p: &Principal,
        req: ChangePasswordRequest,
    ) -> BackendResult<()> {
        validate::password("new", &req.new)?;
        let key = AgentKey::Id {
            account_id: &p.account_id,
            agent_id: &p.agent_id,
        };
        let agent = match self.backend.agent_slice(key).await {
            Ok(slice) => slice.agent,
            Err(BackendError::NotFound(_)) => return Err(BackendError::session_expired()),
            Err(e) => return Err(e),
        };
        let checked_hash = agent.password_hash.clone();
        self.credentials
            .check(Some((&agent.id, &checked_hash)), &req.current)
            .await?;
        let hash = self.hash_password(req.new).await?;
        let (id, keep) = (agent.id, p.session_id.to_string());
        self.backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                super::existing(move |slice| {
                    let by = PasswordBy::Itself { keep, checked_hash };
                    agents::set_password(slice, &id, hash, by)
                }),
            )
            .await
            .map(drop)
    }

    /// Sets an agent's password (an owner's only by an owner); all its sessions end with
    /// reason `credentials_changed`.
    pub async fn set_agent_password(
        &self,
        p: &Principal,
        id: &str,
        req: SetPasswordRequest,
    ) -> BackendResult<()> {
        validate::password("password", &req.password)?;
        let before = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&before, &p.agent_id)?;
        let (id, caller) = (id.to_owned(), p.agent_id.to_string());
        // Refused before the password is hashed, and again under the account's turn.
        agents::set_password(
            &before,
            &id,
            String::new(),
            PasswordBy::Admin {
                caller: caller.clone(),
            },
        )?;
        let hash = self.hash_password(req.password).await?;
        self.backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    agents::set_password(slice, &id, hash, PasswordBy::Admin { caller })
                }),
            )
            .await
            .map(drop)
    }

    /// Removes an agent and ends its sessions with reason `removed`.
    pub async fn delete_agent(&self, p: &Principal, id: &str) -> BackendResult<()> {
        let (id, caller) = (id.to_owned(), p.agent_id.to_string());
        self.backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    agents::remove(slice, &caller, &id)
                }),
            )
            .await
            .map(drop)
    }

    /// Replaces the account's groups; keys no longer there are removed from agents.
    pub async fn put_groups(&self, p: &Principal, groups: Vec<Group>) -> BackendResult<Vec<Group>> {
        let groups = validate::groups(groups)?;
        match self
            .backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    account::groups(slice, groups)
                }),
            )
            .await?
        {
            AccountEdit::Groups { groups, .. } => Ok(groups),
            _ => Err(BackendError::internal(
                "a groups edit changed something else",
            )),
        }
    }

    /// Replaces the account's custom statuses; agents who have one that goes keep their
    /// status without it (a new version).
    pub async fn put_custom_statuses(
        &self,
        p: &Principal,
        list: Vec<CustomStatus>,
    ) -> BackendResult<Vec<CustomStatus>> {
        custom::check(&list)?;
        match self
            .backend
            .edit_account(
                AccountTarget::WithAgents(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    custom::replace(slice, list)
                }),
            )
            .await?
        {
            AccountEdit::CustomStatuses { statuses, .. } => Ok(statuses),
            _ => Err(BackendError::internal(
                "a custom statuses edit changed something else",
            )),
        }
    }

    /// Replaces the opening hours; the views follow at once and at every boundary.
    pub async fn put_opening_hours(
        &self,
        p: &Principal,
        hours: OpeningHours,
    ) -> BackendResult<OpeningHours> {
        account::schedule(&hours)?;
        match self
            .backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    account::opening_hours(slice, hours)
                }),
            )
            .await?
        {
            AccountEdit::OpeningHours { hours, .. } => Ok(hours),
            _ => Err(BackendError::internal(
                "an hours edit changed something else",
            )),
        }
    }

    /// Patches timings and messages; a message change is a view change.
    pub async fn put_settings(
        &self,
        p: &Principal,
        patch: SettingsPatch,
    ) -> BackendResult<AccountSettings> {
        match self
            .backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |slice| {
                    account::settings(slice, patch)
                }),
            )
            .await?
        {
            AccountEdit::Settings(s) => Ok(s),
            _ => Err(BackendError::internal(
                "a settings edit changed something else",
            )),
        }
    }
}
