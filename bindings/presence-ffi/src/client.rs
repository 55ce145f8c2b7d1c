//! [`PresenceClient`]: presence-core's client, one export per core method.
//!
//! Each async method clones the core handle, runs the call on the crate's runtime
//! ([`crate::on_runtime`]) and converts the result. Snapshots reach the foreign side two ways:
//! [`PresenceClient::snapshot`] (the latest, synchronously) and a [`PresenceListener`], either
//! the single one of [`PresenceClient::set_listener`] (core's API) or any number through
//! [`PresenceClient::subscribe`], each ended by its [`SnapshotSubscription`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use presence_core as core;

use crate::error::PresenceError;
use crate::types::{
    AgentStatus, ClientConfig, ClientSnapshot, Lifecycle, PushProvider, StatusLogPage,
    StatusRequest, UnifiedPushKeys,
};
use crate::{on_runtime, runtime};

/// Receives snapshots. Called on one of the crate's runtime threads (never the caller's, never
/// with a lock held), first with the current snapshot and then with every new one; bursts may
/// be coalesced, but the latest snapshot always arrives. An error it returns is logged.
#[uniffi::export(with_foreign)]
pub trait PresenceListener: Send + Sync {
    fn on_snapshot(&self, snapshot: ClientSnapshot) -> Result<(), PresenceError>;
}

fn deliver(listener: &dyn PresenceListener, snapshot: core::ClientSnapshot) {
    if let Err(e) = listener.on_snapshot(snapshot.into()) {
        tracing::warn!("snapshot listener failed: {e}");
    }
}

/// The client engine of one device: session, status, durable outbox, heartbeats, sync, push.
///
/// Open it once per data dir with [`PresenceClient::open`] and keep it for the app's life;
/// call [`PresenceClient::shutdown`] before releasing it to stop its work at once.
#[derive(uniffi::Object)]
pub struct PresenceClient {
    /// `None` only while dropping.
    core: Option<Arc<core::PresenceClient>>,
}

impl PresenceClient {
    fn core(&self) -> Arc<core::PresenceClient> {
        // Only `Drop` takes it out, and nothing can call a method during `drop`.
        self.core
            .clone()
            .expect("presence client used while being dropped")
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl PresenceClient {
    /// Opens (creating or migrating) the store in `config.data_dir`, restores a stored
    /// session and outbox, and starts the engine. A restored session heartbeats and delivers
    /// its outbox at once.
    #[uniffi::constructor]
    pub async fn open(config: ClientConfig) -> Result<Arc<PresenceClient>, PresenceError> {
        let core = on_runtime(async move {
            core::PresenceClient::open(config.into())
                .await
                .map_err(PresenceError::from)
        })
        .await?;
        Ok(Arc::new(PresenceClient {
            core: Some(Arc::new(core)),
        }))
    }

    /// The id this device is known by; generated once per data dir.
    pub fn device_id(&self) -> String {
        self.core().device_id().to_owned()
    }

    /// The best estimate of the server's clock now (ms since the Unix epoch), e.g. to show
    /// how long `lease_until` has left.
    pub fn server_time_now(&self) -> i64 {
        self.core().server_time_now()
    }

    /// Logs in, replacing this device's previous session on the server, if any.
    pub async fn login(
        &self,
        account: String,
        email: String,
        password: String,
    ) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.login(&account, &email, &password).await?) }).await
    }

    /// Logs in with a token (a JWT) the customer's own backend issued for the agent, as
    /// `login` does with a password. A refused token is `Unauthorized`.
    pub async fn login_with_token(
        &self,
        account: String,
        token: String,
    ) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.login_with_token(&account, &token).await?) }).await
    }

    /// Logs out. Local state is cleared at once; if the server cannot be reached, the end of
    /// the session is queued and delivered later.
    pub async fn logout(&self) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.logout().await?) }).await
    }

    /// Sets the agent's status. Returns once the change is durably stored (it shows as
    /// `current` with `pending = true`); delivery happens in the background.
    pub async fn set_status(&self, status: AgentStatus) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.set_status(status).await?) }).await
    }

    /// Sets the agent's status with a duration, what follows, a custom status or a note,
    /// through the durable outbox like `set_status`. A change made offline keeps its exact
    /// end (`intent_at + duration_ms`). A duration or note out of bounds is `InvalidInput`
    /// naming the field (nothing stored); a custom status the account does not have wedges
    /// the change with the server's `invalid_field`.
    pub async fn set_status_with(&self, request: StatusRequest) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.set_status_with(request.into()).await?) }).await
    }

    /// For desktop apps: how long the user has not touched the device, as of now (`0` on
    /// input). Every heartbeat then carries the idle time; `None` stops it (phones never
    /// report).
    pub fn report_idle(&self, idle_ms: Option<u64>) {
        self.core().report_idle(idle_ms);
    }

    /// One page of the agent's status log, newest first: at most `limit` entries (1 to 500,
    /// default 100), after the page whose `next` is `after`.
    pub async fn status_log(
        &self,
        limit: Option<u32>,
        after: Option<String>,
    ) -> Result<StatusLogPage, PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.status_log(limit, after).await?.into()) }).await
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> ClientSnapshot {
        self.core().snapshot().into()
    }

    /// The host app moved to the foreground (`Active`) or the background.
    pub async fn set_lifecycle(&self, lifecycle: Lifecycle) {
        let core = self.core();
        let _ = on_runtime(async move {
            core.set_lifecycle(lifecycle).await;
            Ok(())
        })
        .await;
    }

    /// The OS's network hint. While unavailable nothing is attempted; when it comes back,
    /// everything waiting is retried at once.
    pub async fn set_network_available(&self, available: bool) {
        let core = self.core();
        let _ = on_runtime(async move {
            core.set_network_available(available).await;
            Ok(())
        })
        .await;
    }

    /// Handles a push as the provider delivered it: the FCM data map's `presence` string (or
    /// the whole data map as JSON), the APNs `userInfo` as JSON, or UnifiedPush's decrypted
    /// message bytes as text. A `status` push applies
    /// if its version is newer; a `renew` push is answered with one background heartbeat
    /// before this returns. Anything else is `InvalidInput` and changes nothing.
    pub async fn handle_push(&self, payload: String) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.handle_push(&payload).await?) }).await
    }

    /// For a background task (iOS BGAppRefreshTask, Android WorkManager): one heartbeat and
    /// an attempt to deliver the outbox within `deadline_ms`. `Network` when the deadline
    /// passes with changes still pending.
    pub async fn background_refresh(&self, deadline_ms: u64) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move {
            Ok(core
                .background_refresh(Duration::from_millis(deadline_ms))
                .await?)
        })
        .await
    }

    /// Registers (or replaces) this device's push token; stored and reused at every login.
    /// `unifiedpush` takes the endpoint as token and the distributor's RFC 8291 `keys`; the
    /// other providers take none (`InvalidInput` otherwise).
    pub async fn register_push(
        &self,
        provider: PushProvider,
        token: String,
        keys: Option<UnifiedPushKeys>,
    ) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.register_push(provider, &token, keys).await?) }).await
    }

    /// Fetches the agent, status and chat box from the server now.
    pub async fn refresh(&self) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.refresh().await?) }).await
    }

    /// Puts a wedged op back in the queue.
    pub async fn retry_wedged(&self, op_id: String) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.retry_wedged(&op_id).await?) }).await
    }

    /// Deletes a wedged op.
    pub async fn discard_wedged(&self, op_id: String) -> Result<(), PresenceError> {
        let core = self.core();
        on_runtime(async move { Ok(core.discard_wedged(&op_id).await?) }).await
    }

    /// Sets the client's one listener (core's `set_listener`): called with the current snapshot
    /// and then every new one. `None` removes it.
    pub fn set_listener(&self, listener: Option<Arc<dyn PresenceListener>>) {
        let core = self.core();
        let _enter = runtime().enter();
        core.set_listener(listener.map(|l| {
            Arc::new(move |s: core::ClientSnapshot| deliver(l.as_ref(), s))
                as Arc<dyn core::SnapshotListener>
        }));
    }

    /// Adds a listener of its own (core's `subscribe`), independent of `set_listener`. It is
    /// called with the current snapshot and then every new one until the returned
    /// subscription is cancelled or released.
    pub fn subscribe(&self, listener: Arc<dyn PresenceListener>) -> Arc<SnapshotSubscription> {
        let mut rx = self.core().subscribe();
        let task = runtime().spawn(async move {
            loop {
                // Clone out of the channel first: the listener runs with no lock held.
                let snapshot = rx.borrow_and_update().clone();
                deliver(listener.as_ref(), snapshot);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Arc::new(SnapshotSubscription {
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the engine: in-flight calls end with `Internal`, their stored changes are sent
    /// after the next `open`. Later calls fail with `Internal`. Idempotent.
    pub async fn shutdown(&self) {
        let core = self.core();
        let _ = on_runtime(async move {
            core.shutdown().await;
            Ok(())
        })
        .await;
    }
}

impl Drop for PresenceClient {
    fn drop(&mut self) {
        // Often runs on a JVM finalizer (Cleaner) thread: make tokio's context available to
        // whatever the engine's handle tears down.
        let _enter = runtime().enter();
        drop(self.core.take());
    }
}

/// The server URL stored in `data_dir` at the last login, without opening an engine (`None`
/// when nothing was stored there yet).
#[uniffi::export]
pub fn stored_server_url(data_dir: String) -> Result<Option<String>, PresenceError> {
    Ok(core::PresenceClient::stored_server_url(
        std::path::Path::new(&data_dir),
    )?)
}

/// One [`PresenceClient::subscribe`] listener; `cancel` (or releasing it) stops the calls.
#[derive(uniffi::Object)]
pub struct SnapshotSubscription {
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[uniffi::export]
impl SnapshotSubscription {
    /// Stops calling the listener. A call already running finishes. Idempotent.
    pub fn cancel(&self) {
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Drop for SnapshotSubscription {
    fn drop(&mut self) {
        let _enter = runtime().enter();
        self.cancel();
    }
}
