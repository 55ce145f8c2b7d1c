//! [`Ops`] for the customer's identity: sign-in settings, sign-in with the customer's
//! tokens, API keys, and sessions an admin or a key opens for an agent. The rules are in
//! [`super::signin`] and [`super::api_keys`]; this file orders the steps: checks that need
//! no state, the token's verification (before any turn: a JWKS fetch holds none), then the
//! plan under the account's turn.

use std::sync::Arc;

use presence_protocol::{
    AdminSessionRequest, ApiKeyInfo, JwtSettings, LoginResponse, NewApiKeyRequest,
    NewApiKeyResponse, Role, SignInRequest, SignInView, TokenLoginRequest, TokenTestAction,
    TokenTestRequest, TokenTestResponse,
};

use super::signin::{self, NoAgent, Signs, refused};
use super::{AccountEdit, AccountKey, AccountTarget, Ops, api_keys, by_admin, check_admin};
use crate::backend::{BackendError, BackendResult, Principal};
use crate::jwt::{self, Alg, Claims, Header, Keys, Lookup, Refusal, With};
use crate::rows::{AgentRow, ApiKeyRow};
use crate::validate;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN: usize = 16 * 1024;

impl Ops {
    /// What a token sign-in must be before anything is counted or looked up for it.
    pub fn check_token_login(&self, req: &TokenLoginRequest) -> BackendResult<()> {
        for (field, value, max) in [
            ("account", &req.account, validate::MAX_LOGIN_ACCOUNT),
            ("token", &req.token, MAX_TOKEN),
        ] {
            if value.len() > max {
                return Err(BackendError::invalid_field(
                    field,
                    format!("at most {max} bytes"),
                ));
            }
        }
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            self.check_push(push, "push.")?;
        }
        Ok(())
    }

    /// Signs in with the customer's token: verified, its agent found, linked or provisioned
    /// and its profile brought in line with the claims (under the account's turn), then a
    /// session opened as by a password login. Any refusal is `invalid_credentials`, its
    /// reason logged.
    pub async fn login_token(&self, req: TokenLoginRequest) -> BackendResult<LoginResponse> {
        self.check_token_login(&req)?;
        let slice = match self
            .backend
            .account_slice(AccountKey::Slug(&req.account))
            .await
        {
            Ok(s) => s,
            Err(BackendError::NotFound(_)) => return Err(refused(&req.account, "no account")),
            Err(e) => return Err(e),
        };
        let slug = slice.account.slug.clone();
        let Some(jwt) = slice.account.identity.sign_in.jwt.clone() else {
            return Err(refused(&slug, "the account has no token sign-in"));
        };
        let header = jwt::header(&req.token).map_err(|r| refused(&slug, &r.0))?;
        let claims = self
            .verify_token(&slice.account.id, &jwt, &header, &req.token)
            .await
            .map_err(|r| refused(&slug, &r.0))?;
        let new_id = crate::auth::new_id("agt");
        let agent = match signin::agent_for(&slice, &claims, &new_id)? {
            Signs::As(row) => row,
            Signs::Edit(_) => self.sign_in_edit(&slice.account.id, claims, new_id).await?,
        };
        match self.open_session(&agent, req.device, req.push).await {
            // Removed meanwhile.
            Err(BackendError::NotFound(_)) => Err(refused(&slug, "the agent was removed")),
            other => other,
        }
    }

    /// Checks a token against the account's sign-in settings as a sign-in would, and says
    /// exactly why it is refused or what it would do; nothing changes (owner or admin).
    pub async fn test_token(
        &self,
        p: &Principal,
        req: TokenTestRequest,
    ) -> BackendResult<TokenTestResponse> {
        if req.token.len() > MAX_TOKEN {
            return Err(BackendError::invalid_field(
                "token",
                format!("at most {MAX_TOKEN} bytes"),
            ));
        }
        let slice = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&slice, &p.agent_id)?;
        let no = |reason: String, sub: Option<String>| TokenTestResponse {
            ok: false,
            reason: Some(reason),
            sub,
            action: None,
            agent_id: None,
        };
        let Some(jwt) = slice.account.identity.sign_in.jwt.clone() else {
            return Ok(no("the account has no token sign-in".into(), None));
        };
        let header = match jwt::header(req.token.trim()) {
            Ok(h) => h,
            Err(r) => return Ok(no(r.0, None)),
        };
        let claims = match self
            .verify_token(&slice.account.id, &jwt, &header, req.token.trim())
            .await
        {
            Ok(c) => c,
            Err(r) => return Ok(no(r.0, None)),
        };
        let sub = Some(claims.sub.clone());
        let linked = |id: &str| slice.agent(id).is_ok_and(|a| a.sub.is_some());
        let (action, agent_id) = match signin::plan_agent(&slice, &claims, "") {
            Ok(Signs::As(row)) => (TokenTestAction::SignsIn, Some(row.id)),
            Ok(Signs::Edit(AccountEdit::AddAgent(_))) => (TokenTestAction::Provisions, None),
            Ok(Signs::Edit(AccountEdit::UpdateAgent(row))) if linked(&row.id) => {
                (TokenTestAction::Updates, Some(row.id))
            }
            Ok(Signs::Edit(AccountEdit::UpdateAgent(row))) => {
                (TokenTestAction::Links, Some(row.id))
            }
            Ok(Signs::Edit(_)) => {
                return Err(BackendError::internal(
                    "a sign-in plan changed something else",
                ));
            }
            Err(NoAgent::Refused(why)) => return Ok(no(why.into(), sub)),
            Err(NoAgent::Failed(e)) => return Ok(no(e.to_string(), sub)),
        };
        Ok(TokenTestResponse {
            ok: true,
            reason: None,
            sub,
            action: Some(action),
            agent_id,
        })
    }

    /// Plans the sign-in's agent again under the account's turn and stores it.
    async fn sign_in_edit(
        &self,
        account_id: &str,
        claims: Claims,
        new_id: String,
    ) -> BackendResult<AgentRow> {
        let edit = self
            .backend
            .edit_account(
                AccountTarget::Existing(account_id),
                super::existing(move |s| match signin::agent_for(s, &claims, &new_id)? {
                    Signs::As(row) => Ok(AccountEdit::UpdateAgent(row)),
                    Signs::Edit(e) => Ok(e),
                }),
            )
            .await?;
        match edit {
            AccountEdit::AddAgent(row) | AccountEdit::UpdateAgent(row) => Ok(row),
            _ => Err(BackendError::internal(
                "a sign-in edit changed something else",
            )),
        }
    }

    /// The token's claims, if its signature and registered claims check out with the
    /// account's settings.
    async fn verify_token(
        &self,
        account_id: &str,
        jwt: &JwtSettings,
        h: &Header,
        token: &str,
    ) -> Result<Claims, Refusal> {
        let now = jwt::now_s();
        let (iss, aud) = (jwt.issuer.as_str(), jwt.audience.as_str());
        if h.alg == Alg::Hs256 {
            let Some(secret) = &jwt.hs256_secret else {
                return Err(Refusal::new("HS256, but the account has no HS256 secret"));
            };
            return jwt::verify(token, h, With::Secret(secret), iss, aud, now);
        }
        let keys: Arc<Keys> = match (&jwt.jwks, &jwt.jwks_url) {
            (Some(inline), _) => Arc::new(Keys::parse(inline).map_err(Refusal::new)?),
            (None, Some(url)) => self.jwks.keys(account_id, url, h).await?,
            (None, None) => return Err(Refusal::new("the account has no JWKS")),
        };
        match keys.find(h) {
            Lookup::Found(k) => jwt::verify(token, h, With::Public(k), iss, aud, now),
            Lookup::UnknownKid => Err(Refusal::new("no key has the token's kid")),
            Lookup::NoKey => Err(Refusal::new(
                "no kid, and not exactly one key for the algorithm",
            )),
        }
    }

    /// Replaces the sign-in settings (owner only); answers them as shown.
    pub async fn put_sign_in(
        &self,
        p: &Principal,
        req: SignInRequest,
    ) -> BackendResult<SignInView> {
        let sign_in = signin::check(req, |url| self.jwks.check_url(url))?;
        let caller = p.agent_id.to_string();
        match self
            .backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                super::existing(move |s| signin::put(s, &caller, sign_in)),
            )
            .await?
        {
            AccountEdit::Identity(i) => Ok(signin::view(&i.sign_in)),
            _ => Err(BackendError::internal(
                "a sign-in edit changed something else",
            )),
        }
    }

    /// Makes an API key; the key is in this answer only.
    pub async fn create_api_key(
        &self,
        p: &Principal,
        req: NewApiKeyRequest,
    ) -> BackendResult<NewApiKeyResponse> {
        validate::name("name", &req.name)?;
        let (key, hash) = api_keys::new_key(&p.account_id);
        let row = ApiKeyRow {
            id: crate::auth::new_id("key"),
            name: req.name.trim().to_owned(),
            hash,
            created_at: chrono::Utc::now().timestamp_millis(),
        };
        let answer = NewApiKeyResponse {
            id: row.id.clone(),
            name: row.name.clone(),
            key,
            created_at: row.created_at,
        };
        self.backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |s| api_keys::create(s, row)),
            )
            .await?;
        Ok(answer)
    }

    /// The account's API keys, without the keys.
    pub async fn api_keys(&self, p: &Principal) -> BackendResult<Vec<ApiKeyInfo>> {
        let slice = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&slice, &p.agent_id)?;
        Ok(api_keys::list(&slice.account.identity))
    }

    /// Revokes an API key: refused from the next request on, on every node.
    pub async fn revoke_api_key(&self, p: &Principal, id: &str) -> BackendResult<()> {
        let id = id.to_owned();
        self.backend
            .edit_account(
                AccountTarget::Existing(&p.account_id),
                by_admin(p.agent_id.clone(), move |s| api_keys::revoke(s, &id)),
            )
            .await
            .map(drop)
    }

    /// The API key behind a bearer token, read from the store on every request; acting as
    /// an admin of its account. Unknown, malformed or revoked: `unauthorized`.
    pub async fn authenticate_key(&self, key: &str) -> BackendResult<Principal> {
        let Some(account) = api_keys::account_of(key) else {
            return Err(BackendError::unauthorized());
        };
        let slice = match self.backend.account_slice(AccountKey::Id(account)).await {
            Ok(s) => s,
            Err(BackendError::NotFound(_)) => return Err(BackendError::unauthorized()),
            Err(e) => return Err(e),
        };
        let Some(row) = api_keys::find(&slice, key) else {
            return Err(BackendError::unauthorized());
        };
        let id: Arc<str> = row.id.as_str().into();
        Ok(Principal {
            session_id: id.clone(),
            agent_id: id,
            account_id: account.into(),
            role: Role::Admin,
        })
    }

    /// Opens a session for one of the account's agents (by id, sub or email), answered like
    /// a login. An owner's session only by an owner: an admin or a key cannot take on an
    /// owner's rights this way.
    pub async fn admin_session(
        &self,
        p: &Principal,
        req: AdminSessionRequest,
    ) -> BackendResult<LoginResponse> {
        validate::device(&req.device)?;
        if let Some(push) = &req.push {
            self.check_push(push, "push.")?;
        }
        let r = &req.agent;
        let given = [r.id.is_some(), r.sub.is_some(), r.email.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(BackendError::invalid_field(
                "agent",
                "give exactly one of id, sub and email",
            ));
        }
        let slice = self
            .backend
            .account_slice(AccountKey::Id(&p.account_id))
            .await?;
        check_admin(&slice, &p.agent_id)?;
        let agent = slice
            .agents
            .iter()
            .find(|a| match (&r.id, &r.sub, &r.email) {
                (Some(id), _, _) => &a.id == id,
                (_, Some(sub), _) => a.sub.as_ref() == Some(sub),
                (_, _, Some(email)) => a.email_key() == crate::rows::email_key(email),
                _ => false,
            })
            .ok_or_else(|| BackendError::not_found("agent"))?;
        let caller_is_owner = slice
            .agents
            .iter()
            .any(|a| a.id == *p.agent_id && a.role == Role::Owner);
        if agent.role == Role::Owner && !caller_is_owner {
            return Err(BackendError::forbidden(
                "only an owner opens a session for an owner",
            ));
        }
        self.open_session(agent, req.device, req.push).await
    }
}
