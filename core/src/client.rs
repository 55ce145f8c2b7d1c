//! [`PresenceClient`]: the handle apps, the CLI and the FFI hold.
//!
//! A cheap front for the engine actor: each method turns into a command and, where it has an
//! answer, awaits it. The handle holds no state of its own besides the snapshot receiver, so
//! it can be shared (`Arc<PresenceClient>`) and called from any task.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use presence_protocol::{
    AgentStatus, AvailabilityReport, Device, PushPayload, PushProvider, PushRegistration,
    StatusLogPage,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::api::{Api, LogQuery, Proof, ReportQuery};
use crate::clock::ServerClock;
use crate::config::ClientConfig;
use crate::engine::{Command, Engine, EngineParts};
use crate::error::{ClientError, Error};
use crate::meter::{EngineCounters, Meter};
use crate::snapshot::{ClientSnapshot, Lifecycle};
use crate::status::StatusRequest;
use crate::store::Store;
use crate::transport::{HttpTransport, Transport};

/// Receives every new snapshot. Called on a tokio worker thread, never while the engine holds
/// a lock; bursts may be coalesced (the latest snapshot always arrives).
pub trait SnapshotListener: Send + Sync + 'static {
    fn on_snapshot(&self, snapshot: ClientSnapshot);
}

impl<F: Fn(ClientSnapshot) + Send + Sync + 'static> SnapshotListener for F {
    fn on_snapshot(&self, snapshot: ClientSnapshot) {
        self(snapshot)
    }
}

/// The client engine of one device. See the [crate docs](crate).
pub struct PresenceClient {
    commands: mpsc::UnboundedSender<Command>,
    snapshots: watch::Receiver<ClientSnapshot>,
    device_id: String,
    clock: Arc<ServerClock>,
    meter: Arc<Meter>,
    runtime: tokio::runtime::Handle,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    actor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl PresenceClient {
    /// Opens (creating or migrating) the store in `config.data_dir`, restores any stored
    /// session and outbox, and starts the engine on the current tokio runtime. A restored
    /// session heartbeats and delivers its outbox at once.
    pub async fn open(config: ClientConfig) -> Result<PresenceClient, ClientError> {
        let ClientConfig {
            server_url,
            data_dir,
            device,
            overrides,
        } = config;
        let mut store = Store::open_with_vfs(&data_dir, overrides.sqlite_vfs.as_deref())?;
        let device_id = store.device_id()?;
        let server_url = match server_url {
            Some(u) => Some(u.trim_end_matches('/').to_owned()),
            None => store.server_url()?,
        };
        let clock = Arc::new(ServerClock::new(overrides.clock_skew_ms));
        let transport: Option<Arc<dyn Transport>> = match (&overrides.transport, &server_url) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(url)) => Some(Arc::new(
                HttpTransport::new(url).map_err(|e| Error::InvalidInput(e.detail))?,
            )),
            (None, None) => None,
        };
        let meter = Arc::new(Meter::default());
        let api =
            transport.map(|t| Api::new(t, clock.clone(), overrides.request_timeout, meter.clone()));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (snap_tx, snap_rx) = watch::channel(ClientSnapshot::logged_out());
        let engine = Engine::new(EngineParts {
            store,
            api,
            server_url,
            clock: clock.clone(),
            device: Device {
                id: device_id.clone(),
                platform: device.platform,
                name: device.name,
                app_version: device.app_version,
            },
            overrides,
            meter: meter.clone(),
            snapshots: snap_tx.clone(),
            commands: cmd_rx,
        })?;
        snap_tx.send_replace(engine.initial_snapshot());
        let runtime = tokio::runtime::Handle::current();
        let actor = runtime.spawn(engine.run());
        Ok(PresenceClient {
            commands: cmd_tx,
            snapshots: snap_rx,
            device_id,
            clock,
            meter,
            runtime,
            listener: Mutex::new(None),
            actor: Mutex::new(Some(actor)),
        })
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| ClientError::from(Error::Shutdown))?;
        match rx.await {
            Ok(r) => r.map_err(ClientError::from),
            Err(_) => Err(Error::Shutdown.into()),
        }
    }

    /// What the engine has cost this device since `open`: wakeups, requests, bytes, and the
    /// store's commits by durability. Cheap (a few atomic loads); see [`EngineCounters`].
    pub fn counters(&self) -> EngineCounters {
        self.meter.read()
    }

    /// The id this device is known by; generated once per data dir.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The best estimate of the server's clock now (ms since the epoch), e.g. to show how
    /// long `lease_until` has left.
    pub fn server_time_now(&self) -> presence_protocol::Millis {
        self.clock.server_now()
    }

    /// The server URL stored in `data_dir` at the last login, without opening an engine.
    pub fn stored_server_url(data_dir: &std::path::Path) -> Result<Option<String>, ClientError> {
        if !data_dir.join(crate::store::DB_FILE).exists() {
            return Ok(None);
        }
        Ok(Store::open(data_dir)?.server_url()?)
    }

    /// Logs in (replacing this device's previous session on the server, if any). Queued
    /// changes of the same agent are delivered with the new session.
    pub async fn login(
        &self,
        account: &str,
        email: &str,
        password: &str,
    ) -> Result<(), ClientError> {
        let proof = Proof::Password {
            email: email.to_owned(),
            password: password.to_owned(),
        };
        let account = account.to_owned();
        self.ask(|reply| Command::Login {
            account,
            proof,
            reply,
        })
        .await
    }

    /// Logs in with a token (a JWT) the customer's own backend issued for the agent, as
    /// [`login`](Self::login) does with a password: the account's sign-in settings say which
    /// issuer and keys it trusts. A token the server refuses is
    /// [`Unauthorized`](ClientError::Unauthorized) (the server logs why); nothing is stored.
    pub async fn login_with_token(&self, account: &str, token: &str) -> Result<(), ClientError> {
        let proof = Proof::Token {
            token: token.trim().to_owned(),
        };
        let account = account.to_owned();
        self.ask(|reply| Command::Login {
            account,
            proof,
            reply,
        })
        .await
    }

    /// Logs out. Local state is cleared at once; the server is told now if it can be
    /// reached, otherwise an `end_session` op is queued and delivered later.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.ask(|reply| Command::Logout { reply }).await
    }

    /// Sets the agent's status. Returns once the change is durably stored (it is then shown
    /// as `current` with `pending: true`); delivery happens in the background. Shorthand for
    /// [`set_status_with`](Self::set_status_with) with [`StatusRequest::new`].
    pub async fn set_status(&self, status: AgentStatus) -> Result<(), ClientError> {
        self.set_status_with(StatusRequest::new(status)).await
    }

    /// Sets the agent's status with a duration, what follows, a custom status or a note,
    /// through the durable outbox like [`set_status`](Self::set_status). The op keeps the
    /// moment it was chosen (`intent_at`), so a timed change made offline still ends at
    /// `intent_at + duration_ms`. A duration or note out of the protocol's bounds is an
    /// [`InvalidInput`](ClientError::InvalidInput) error naming the field, and nothing is
    /// stored; a custom status the account does not have wedges the op with the server's
    /// `invalid_field` (see the snapshot's `outbox.wedged`).
    pub async fn set_status_with(&self, req: StatusRequest) -> Result<(), ClientError> {
        self.ask(|reply| Command::SetStatus { req, reply }).await
    }

    /// For desktop and web apps: how long the user has not touched the device, as of now
    /// (`Some(0)` on input). From then on every heartbeat carries `idle_ms` (this value plus
    /// the time since), so the server can set the agent away automatically and bring them
    /// back. `None`: this device does not report (a phone), and heartbeats carry none.
    pub fn report_idle(&self, idle_ms: Option<u64>) {
        let _ = self.commands.send(Command::ReportIdle { idle_ms });
    }

    /// One page of the agent's status log (`GET /v1/me/status-log`), newest first: at most
    /// `limit` entries (1 to 500, default 100), after the page whose `next` is `after`. A
    /// limit out of bounds is an [`InvalidInput`](ClientError::InvalidInput) error naming it.
    pub async fn status_log(
        &self,
        limit: Option<u32>,
        after: Option<String>,
    ) -> Result<StatusLogPage, ClientError> {
        let query = LogQuery::new(limit, after)?;
        self.ask(|reply| Command::StatusLog { query, reply }).await
    }

    /// `GET /v1/admin/reports/availability`: time in each availability state per agent and
    /// day (the session's agent must be an owner or admin of its account).
    pub async fn availability_report(
        &self,
        query: ReportQuery,
    ) -> Result<AvailabilityReport, ClientError> {
        self.ask(|reply| Command::AvailabilityReport { query, reply })
            .await
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> ClientSnapshot {
        self.snapshots.borrow().clone()
    }

    /// A receiver that sees every new snapshot (intermediate ones may be skipped).
    pub fn subscribe(&self) -> watch::Receiver<ClientSnapshot> {
        self.snapshots.clone()
    }

    /// Waits until a snapshot satisfies `pred` (checking the current one first), for at most
    /// `timeout`. Returns that snapshot, or `None` on timeout or shutdown.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&ClientSnapshot) -> bool,
    ) -> Option<ClientSnapshot> {
        let mut rx = self.subscribe();
        let fut = async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if pred(&s) {
                        return Some(s.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, fut).await.ok().flatten()
    }

    /// The host app moved to the foreground or background.
    pub async fn set_lifecycle(&self, lifecycle: Lifecycle) {
        let _ = self.commands.send(Command::SetLifecycle { lifecycle });
    }

    /// The OS's network hint. While unavailable nothing is attempted; when it comes back,
    /// everything is retried at once.
    pub async fn set_network_available(&self, available: bool) {
        let _ = self.commands.send(Command::SetNetwork { available });
    }

    /// Handles a push payload (the JSON the push provider delivered). A `renew` push is
    /// answered with one background heartbeat before this returns. A payload that is not a
    /// known v1 push is an [`InvalidInput`](ClientError::InvalidInput) error and changes
    /// nothing.
    pub async fn handle_push(&self, payload: &str) -> Result<(), ClientError> {
        let payload = parse_push(payload)?;
        self.ask(|reply| Command::Push { payload, reply }).await
    }

    /// For a background task (iOS BGAppRefreshTask, Android WorkManager): one heartbeat and
    /// an attempt to deliver the outbox, within `deadline`. Ok when the heartbeat went
    /// through and nothing is left pending.
    pub async fn background_refresh(&self, deadline: Duration) -> Result<(), ClientError> {
        let work = async {
            self.ask(|reply| Command::BackgroundRefresh { reply })
                .await?;
            let drained = self
                .wait_for(deadline, |s| s.outbox.pending == 0)
                .await
                .is_some();
            Ok::<bool, ClientError>(drained)
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) | Err(_) => Err(ClientError::Network {
                detail: format!(
                    "background refresh deadline of {} ms reached with {} change(s) pending",
                    deadline.as_millis(),
                    self.snapshot().outbox.pending
                ),
            }),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Registers (or replaces) this device's push token. Stored durably and sent with the
    /// session; used again at every later login. `unifiedpush` needs the device's RFC 8291
    /// `keys` (the push endpoint is the token); the other providers take none.
    pub async fn register_push(
        &self,
        provider: PushProvider,
        token: &str,
        keys: Option<UnifiedPushKeys>,
    ) -> Result<(), ClientError> {
        let push = push_registration(provider, token, keys)?;
        self.ask(|reply| Command::RegisterPush { push, reply })
            .await
    }

    /// Fetches `/v1/me` now (status, chat box, agent).
    pub async fn refresh(&self) -> Result<(), ClientError> {
        self.ask(|reply| Command::Refresh { reply }).await
    }

    /// Puts a wedged op back in the queue.
    pub async fn retry_wedged(&self, op_id: &str) -> Result<(), ClientError> {
        let op_id = op_id.to_owned();
        self.ask(|reply| Command::RetryWedged { op_id, reply })
            .await
    }

    /// Deletes a wedged op.
    pub async fn discard_wedged(&self, op_id: &str) -> Result<(), ClientError> {
        let op_id = op_id.to_owned();
        self.ask(|reply| Command::DiscardWedged { op_id, reply })
            .await
    }

    /// Calls `listener` with the current snapshot and then every new one, from a task of its
    /// own, so a slow listener never stalls the engine. `None` removes the listener.
    pub fn set_listener(&self, listener: Option<Arc<dyn SnapshotListener>>) {
        let mut slot = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            old.abort();
        }
        let Some(listener) = listener else { return };
        let mut rx = self.snapshots.clone();
        *slot = Some(self.runtime.spawn(async move {
            loop {
                // Clone out of the channel first: the listener runs with no lock held.
                let snap = rx.borrow_and_update().clone();
                listener.on_snapshot(snap);
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }));
    }

    /// Stops the engine: in-flight requests are abandoned (their ops stay stored and are sent
    /// after the next `open`). Later calls fail with `Internal`. Idempotent.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown { reply: tx }).is_ok() {
            let _ = rx.await;
        }
        let actor = self.actor.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(actor) = actor {
            let _ = actor.await;
        }
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(l) = listener {
            l.abort();
        }
    }
}

impl Drop for PresenceClient {
    fn drop(&mut self) {
        // The actor stops by itself when the command channel closes; the listener task
        // follows when the snapshot channel does. Abort the listener now so it cannot outlive
        // the handle by a scheduling round.
        if let Some(l) = self
            .listener
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            l.abort();
        }
    }
}

/// Parses a push payload strictly: JSON, `v` = 1, a known `type` with its fields.
/// The keys a UnifiedPush distributor gave the app for its endpoint (RFC 8291), base64url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedPushKeys {
    /// The device's P-256 public key (65-byte uncompressed point).
    pub p256dh: String,
    /// The 16-byte auth secret.
    pub auth: String,
}

fn push_registration(
    provider: PushProvider,
    token: &str,
    keys: Option<UnifiedPushKeys>,
) -> Result<PushRegistration, ClientError> {
    let invalid = |detail: &str| ClientError::InvalidInput {
        detail: detail.to_owned(),
    };
    if token.is_empty() {
        return Err(invalid("push token is empty"));
    }
    match (provider, keys) {
        (PushProvider::Unifiedpush, Some(k)) => {
            if k.p256dh.is_empty() || k.auth.is_empty() {
                return Err(invalid(
                    "unifiedpush keys p256dh and auth must not be empty",
                ));
            }
            Ok(PushRegistration::unifiedpush(token, k.p256dh, k.auth))
        }
        (PushProvider::Unifiedpush, None) => Err(invalid(
            "unifiedpush needs the device's keys (p256dh and auth)",
        )),
        (_, Some(_)) => Err(invalid("only unifiedpush registrations take keys")),
        (p, None) => Ok(PushRegistration::new(p, token)),
    }
}

/// Reads a push as any provider hands it to the app: the payload JSON itself (UnifiedPush's
/// decrypted message, a webhook body, FCM's `presence` data value), or an object whose
/// `presence` member is the payload as a JSON string (FCM's whole data map) or as an object
/// (APNs' `userInfo`, with its `aps`).
pub(crate) fn parse_push(payload: &str) -> Result<PushPayload, Error> {
    let mut value: serde_json::Value = serde_json::from_str(payload)
        .map_err(|e| Error::InvalidInput(format!("push payload is not JSON: {e}")))?;
    if value.get("v").is_none() {
        match value.get_mut("presence").map(serde_json::Value::take) {
            Some(serde_json::Value::String(inner)) => {
                value = serde_json::from_str(&inner).map_err(|e| {
                    Error::InvalidInput(format!("push `presence` string is not JSON: {e}"))
                })?;
            }
            Some(inner @ serde_json::Value::Object(_)) => value = inner,
            _ => {}
        }
    }
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PushPayload::VERSION) => {}
        Some(v) => {
            return Err(Error::InvalidInput(format!(
                "unsupported push payload version {v}"
            )));
        }
        None => {
            return Err(Error::InvalidInput(
                "push payload has no version `v`".into(),
            ));
        }
    }
    serde_json::from_value(value)
        .map_err(|e| Error::InvalidInput(format!("unknown or malformed push payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same renew, as UnifiedPush (the bytes), FCM (the `presence` data value, or the
    /// whole data map) and APNs (`userInfo`) hand it to the app.
    #[test]
    fn each_providers_delivery_form_is_accepted_as_is() {
        let payload = r#"{"v":1,"type":"renew","session_id":"s","lease_until":5}"#;
        let fcm_map = serde_json::json!({"presence": payload}).to_string();
        let apns_user_info = format!(r#"{{"aps":{{"content-available":1}},"presence":{payload}}}"#);
        let want = parse_push(payload).unwrap();
        for form in [fcm_map.as_str(), apns_user_info.as_str()] {
            assert_eq!(parse_push(form).unwrap(), want, "{form}");
        }
    }

    #[test]
    fn unifiedpush_registrations_need_keys_and_only_they_take_them() {
        let keys = UnifiedPushKeys {
            p256dh: "BCVx".into(),
            auth: "BTBZ".into(),
        };
        let reg = push_registration(
            PushProvider::Unifiedpush,
            "https://up.example/1",
            Some(keys.clone()),
        )
        .unwrap();
        assert_eq!(reg.p256dh.as_deref(), Some("BCVx"));
        assert_eq!(reg.auth.as_deref(), Some("BTBZ"));
        for (p, k) in [
            (PushProvider::Unifiedpush, None),
            (PushProvider::Fcm, Some(keys)),
        ] {
            assert!(matches!(
                push_registration(p, "t", k),
                Err(ClientError::InvalidInput { .. })
            ));
        }
        assert!(push_registration(PushProvider::Fcm, "", None).is_err());
    }

    #[test]
    fn push_payloads_are_parsed_strictly() {
        assert!(parse_push(r#"{"v":1,"type":"renew","session_id":"s","lease_until":5}"#).is_ok());
        for bad in [
            "not json",
            "{}",
            r#"{"v":2,"type":"renew","session_id":"s","lease_until":5}"#,
            r#"{"v":1,"type":"dance","session_id":"s"}"#,
            r#"{"v":1,"type":"renew","session_id":"s"}"#,
            r#"{"v":1,"type":"status","session_id":"s","status":{"status":"asleep"}}"#,
            r#"{"presence":"not json"}"#,
            r#"{"presence":{"type":"renew"}}"#,
            r#"{"aps":{"content-available":1}}"#,
        ] {
            match parse_push(bad) {
                Err(Error::InvalidInput(_)) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
