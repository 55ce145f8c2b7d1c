//! API keys for the customer's backend: made, listed, revoked, and recognised.
//!
//! Rules:
//! - A key is `pk_` + its account's id + `_` + 32 random bytes (hex); only its SHA-256 is
//!   stored, and the key is shown once. The account id in it only says where to look: the
//!   key is recognised by its hash among that account's keys, as stored, on every request
//!   (so a revoked key is refused at once, on every node).
//! - Owners and admins (signed in: a key never manages keys) make and revoke keys; an
//!   account has at most [`MAX_KEYS`].
//! - A key acts as an admin of its account (`crate::ops::check_admin` knows its id), never
//!   as an owner.

use presence_protocol::ApiKeyInfo;
use sha2::{Digest, Sha256};

use super::{AccountEdit, AccountSlice};
use crate::backend::{BackendError, BackendResult};
use crate::rows::{ApiKeyRow, Identity};

/// What every key starts with.
pub const PREFIX: &str = "pk_";
/// The most keys an account has.
pub const MAX_KEYS: usize = 20;

/// A new key for the account, and its stored hash.
pub fn new_key(account_id: &str) -> (String, String) {
    let secret = crate::auth::new_token();
    let key = format!("{PREFIX}{account_id}_{secret}");
    let hash = hash(&key);
    (key, hash)
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether a bearer token is meant as an API key (then it is one or nothing).
pub fn is_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// The account a key names, if it has the shape of a key this server makes.
pub fn account_of(key: &str) -> Option<&str> {
    let (account, secret) = key.strip_prefix(PREFIX)?.rsplit_once('_')?;
    let id = account.strip_prefix("acc_")?;
    let hexed = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    (hexed(id, 24) && crate::auth::is_token_shaped(secret)).then_some(account)
}

/// The stored key `key` is, if the account has it.
pub fn find<'a>(slice: &'a AccountSlice, key: &str) -> Option<&'a ApiKeyRow> {
    let h = hash(key);
    slice
        .account
        .identity
        .api_keys
        .iter()
        .find(|k| crate::auth::secure_eq(k.hash.as_bytes(), h.as_bytes()))
}

/// Whether `caller` is one of the account's keys (by id).
pub fn is_account_key(slice: &AccountSlice, caller: &str) -> bool {
    slice
        .account
        .identity
        .api_keys
        .iter()
        .any(|k| k.id == caller)
}

/// Adds a key (its hash), within [`MAX_KEYS`].
pub fn create(slice: &AccountSlice, row: ApiKeyRow) -> BackendResult<AccountEdit> {
    let identity = &slice.account.identity;
    if identity.api_keys.len() >= MAX_KEYS {
        return Err(BackendError::conflict(format!(
            "an account has at most {MAX_KEYS} API keys"
        )));
    }
    let mut api_keys = identity.api_keys.clone();
    api_keys.push(row);
    Ok(AccountEdit::Identity(Identity {
        api_keys,
        ..identity.clone()
    }))
}

/// Removes the key `id`; an unknown one is `not_found`.
pub fn revoke(slice: &AccountSlice, id: &str) -> BackendResult<AccountEdit> {
    let identity = &slice.account.identity;
    if !identity.api_keys.iter().any(|k| k.id == id) {
        return Err(BackendError::not_found("api key"));
    }
    let api_keys = identity
        .api_keys
        .iter()
        .filter(|k| k.id != id)
        .cloned()
        .collect();
    Ok(AccountEdit::Identity(Identity {
        api_keys,
        ..identity.clone()
    }))
}

/// The keys as listed: never the key, never its hash.
pub fn list(identity: &Identity) -> Vec<ApiKeyInfo> {
    identity
        .api_keys
        .iter()
        .map(|k| ApiKeyInfo {
            id: k.id.clone(),
            name: k.name.clone(),
            created_at: k.created_at,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_account_and_only_well_formed_keys_are_looked_up() {
        let account = crate::auth::new_id("acc");
        let (key, h) = new_key(&account);
        assert_eq!(account_of(&key), Some(account.as_str()));
        assert_eq!(h, hash(&key));
        assert!(!key.contains(&h));
        for bad in [
            "pk_",
            "pk_acc_1_2",
            "pk_acc_zz_",
            &format!("pk_{account}_short"),
            &format!("pk_agt_{}", &key[7..]),
            &key.to_uppercase(),
        ] {
            assert_eq!(account_of(bad), None, "{bad}");
        }
    }
}
