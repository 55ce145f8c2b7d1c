//! The account's live picture for its owners, admins and API keys: the presence snapshot
//! and the start of the event stream that follows it.

use presence_protocol::PresenceSnapshot;

use super::Ops;
use crate::backend::{BackendResult, Principal};

impl Ops {
    /// Every agent and the chat box, consistent with the account's events up to its `seq`.
    pub async fn presence(&self, p: &Principal) -> BackendResult<PresenceSnapshot> {
        self.admin_slice(p).await?;
        self.backend.presence(&p.account_id).await
    }

    /// The snapshot an event stream starts with, and the account's slug its events carry.
    pub async fn account_events(&self, p: &Principal) -> BackendResult<(PresenceSnapshot, String)> {
        let slice = self.admin_slice(p).await?;
        let snapshot = self.backend.presence(&p.account_id).await?;
        Ok((snapshot, slice.account.slug))
    }
}
