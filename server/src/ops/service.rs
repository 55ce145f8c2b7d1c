//! [`Ops`]: the operations the HTTP layer calls, each written once for every backend. It
//! checks what needs no state, does costly work before any turn (password hashing), and
//! hands the backend a plan from this module's siblings.

use std::sync::Arc;

use presence_protocol::{
    AccountInfo, AccountSettings, AdminAccountResponse, Agent, AgentStatus, CreateAccountRequest,
    CreateAccountResponse, Group, NewAgentRequest, OpeningHours, PatchAgentRequest,
    SetStatusRequest, SetStatusResponse, Settings, SettingsPatch, StatusView,
};

use super::status::{self, StatusChange, StatusPlan};
use super::{AccountEdit, AccountKey, account, agents};
use crate::backend::{Backend, BackendError, BackendResult, Principal};
use crate::hashing::HashPool;
use crate::rows::AgentRow;
use crate::validate;

/// The operations of the API over one backend. Cheap to clone.
#[derive(Clone)]
pub struct Ops {
    backend: Arc<dyn Backend>,
    hasher: Arc<HashPool>,
}

/// Answered when every hashing slot is taken and the queue is full.
pub fn hashing_busy() -> BackendError {
    BackendError::unavailable("too many logins at once; retry in a moment", 1)
}

impl Ops {
    pub fn new(backend: Arc<dyn Backend>, hasher: Arc<HashPool>) -> Ops {
        Ops { backend, hasher }
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
        self.backend.create_account(account, owner).await?;
        Ok(answer)
    }

    /// Ends the caller's own session now (`DELETE /v1/session`); one that has already ended
    /// is `session_expired`.
    pub async fn logout(&self, p: &Principal) -> BackendResult<()> {
        match self.backend.end_session(p, &p.session_id).await {
            Err(BackendError::NotFound(_)) => Err(BackendError::session_expired()),
            other => other,
        }
    }

    /// Ends another live session of the caller's agent with reason `logout`, telling that
    /// session's stream and push. A session of another agent, or none: `not_found`.
    pub async fn end_own_session(&self, p: &Principal, session_id: &str) -> BackendResult<()> {
        self.backend.end_session(p, session_id).await
    }

    /// Applies a device's status op if it is the latest intent (idempotent by op id);
    /// committed before it answers.
    pub async fn set_status(
        &self,
        p: &Principal,
        req: SetStatusRequest,
    ) -> BackendResult<SetStatusResponse> {
        validate::op_id(&req.op_id)?;
        let change = StatusChange {
            account_id: p.account_id.clone(),
            agent_id: p.agent_id.to_string(),
            origin: Some(p.session_id.clone()),
            op_id: req.op_id.clone(),
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
        to: AgentStatus,
    ) -> BackendResult<StatusView> {
        let change = StatusChange {
            account_id: p.account_id.clone(),
            agent_id: agent_id.to_owned(),
            origin: None,
            op_id: uuid::Uuid::now_v7().to_string(),
        };
        let plan: StatusPlan = Box::new(move |slice| SetStatusResponse {
            applied: true,
            status: status::admin_op(slice, to),
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
        let mut agents: Vec<Agent> = slice.agents.iter().map(AgentRow::to_agent).collect();
        agents.sort_by(|a, b| a.email.cmp(&b.email));
        let acc = slice.account;
        Ok(AdminAccountResponse {
            account: acc.info(),
            groups: acc.groups,
            opening_hours: acc.opening_hours,
            settings: acc.settings,
            agents,
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
        };
        let before = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        agents::create(&before, row.clone())?;
        row.password_hash = self.hash_password(req.password).await?;
        let edit = self
            .backend
            .edit_account(
                &p.account_id,
                Box::new(move |slice| agents::create(slice, row)),
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
        let id = id.to_owned();
        let edit = self
            .backend
            .edit_account(
                &p.account_id,
                Box::new(move |slice| agents::patch(slice, &id, req)),
            )
            .await?;
        edit.agent()
            .ok_or_else(|| BackendError::internal("an agent edit without its agent"))
    }

    /// Removes an agent and ends its sessions with reason `removed`.
    pub async fn delete_agent(&self, p: &Principal, id: &str) -> BackendResult<()> {
        let id = id.to_owned();
        self.backend
            .edit_account(
                &p.account_id,
                Box::new(move |slice| agents::remove(slice, &id)),
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
                &p.account_id,
                Box::new(move |slice| account::groups(slice, groups)),
            )
            .await?
        {
            AccountEdit::Groups { groups, .. } => Ok(groups),
            _ => Err(BackendError::internal(
                "a groups edit changed something else",
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
                &p.account_id,
                Box::new(move |slice| account::opening_hours(slice, hours)),
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
                &p.account_id,
                Box::new(move |slice| account::settings(slice, patch)),
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
