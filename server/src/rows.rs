//! The row model both backends store: one account, agent and session shape, read and
//! written by SQLite (`store/`) and PostgreSQL (`cluster/pg`) alike. Enum columns are stored
//! by the names `presence-protocol` gives them (strum, snake_case); a name a store does not
//! know is an error when read, never a default ([`parse_enum`]).

use presence_protocol::{
    AccountSettings, CustomStatus, Device, Group, Mode, OpeningHours, PushRegistration, Role,
    StatusView,
};

/// An enum read back from its stored name; an unknown name is an error naming the column.
pub fn parse_enum<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("unknown {column} {value:?} in the store"))
}

#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub widget_key: String,
    pub settings: AccountSettings,
    pub opening_hours: OpeningHours,
    pub groups: Vec<Group>,
    /// The highest chat box view version reserved so far: no version up to it may be
    /// served again after a restart.
    pub view_version: i64,
    pub custom_statuses: Vec<CustomStatus>,
    /// How the account's agents sign in, and its API keys (one JSON column).
    pub identity: Identity,
}

/// An account's customer identity settings: delegated sign-in and API keys, stored whole
/// and replaced whole by [`crate::ops::AccountEdit::Identity`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub sign_in: SignIn,
    #[serde(default)]
    pub api_keys: Vec<ApiKeyRow>,
}

/// `PUT /v1/admin/sign-in` as stored (the HS256 secret included: it checks signatures).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignIn {
    #[serde(default)]
    pub jwt: Option<presence_protocol::JwtSettings>,
    #[serde(default = "yes")]
    pub password_login: bool,
    #[serde(default)]
    pub provision: bool,
}

fn yes() -> bool {
    true
}

impl Default for SignIn {
    fn default() -> Self {
        SignIn {
            jwt: None,
            password_login: true,
            provision: false,
        }
    }
}

/// An API key as stored: the SHA-256 of the key (hex), never the key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub groups: Vec<String>,
    pub status: StatusView,
    /// The op that set the current status; breaks `intent_at` ties.
    pub status_op_id: String,
    /// The customer's user id (the `sub` of its tokens) this agent is linked to.
    pub sub: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub account_id: String,
    pub agent_id: String,
    pub token_hash: String,
    pub device: Device,
    pub mode: Mode,
    pub lease_until: i64,
    pub push: Option<PushRegistration>,
}

impl AccountRow {
    /// The account's public description.
    pub fn info(&self) -> presence_protocol::AccountInfo {
        presence_protocol::AccountInfo {
            id: self.id.clone(),
            slug: self.slug.clone(),
            name: self.name.clone(),
            widget_key: self.widget_key.clone(),
        }
    }
}

impl AgentRow {
    /// The agent as an admin sees it (no secret, no status).
    pub fn to_agent(&self) -> presence_protocol::Agent {
        presence_protocol::Agent {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            groups: self.groups.clone(),
            role: self.role,
        }
    }

    /// The key an agent's email is unique by within its account.
    pub fn email_key(&self) -> String {
        email_key(&self.email)
    }
}

/// The key an email is unique by within an account: trimmed, lower case.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}
