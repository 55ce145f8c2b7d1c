//! What a phone pays for presence: one engine driven through an hour (or several) of each
//! lifecycle state at the server's default settings, on tokio's paused clock, against the
//! in-memory [`FakeServer`], with its database on the fsync-counting VFS.
//!
//! The figures come from counting, never from wall-clock sleeps: the engine's own counters
//! ([`EngineCounters`]: timer wakeups, requests, bytes, commits), the VFS's real `xSync`
//! calls, the renew pushes this module delivers as the server would, and the CPU time of the
//! one thread the paused runtime runs on (the engine, the fake server and this driver; a
//! real phone pays for the first only, so the CPU figure is an upper bound).
//!
//! The server's defaults mirrored here: active heartbeats every 20 s with a 60 s lease, an
//! `event: ping` on the stream every 15 s; background leases of 30 min renewed by a push
//! 5 min before they end, for a session with a push registration.
//!
//! A device *wakeup* is counted as one engine timer that came due or one push the OS
//! delivered (the requests a push answer makes run inside that wakeup; they are counted as
//! requests).

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use presence_core::transport::Method;
use presence_core::{
    ClientConfig, Connection, DeviceInfo, EngineCounters, Lifecycle, Overrides, Platform,
    PresenceClient, PushProvider,
};
use serde_json::json;
use tokio::time::Instant;

use crate::fake::{EPOCH_MS, FakeServer};
use crate::fsync::{SyncCounter, SyncCounts};

const HEARTBEAT: &str = "/v1/session/heartbeat";
const ACTIVE_INTERVAL_MS: i64 = 20_000;
const ACTIVE_TTL_MS: i64 = 60_000;
const BACKGROUND_TTL_MS: i64 = 30 * 60_000;
const RENEW_MARGIN_MS: i64 = 5 * 60_000;
const PING_EVERY: Duration = Duration::from_secs(15);

/// What one lifecycle state cost over `hours`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateCosts {
    pub hours: f64,
    /// The engine's counters over the span.
    pub engine: EngineCounters,
    /// Renew pushes delivered (each one an OS wakeup of the app).
    pub pushes: u64,
    /// Real syncs of the database files.
    pub fsyncs: SyncCounts,
    /// CPU time of the runtime thread (engine, fake server and driver together).
    pub cpu_ms: f64,
}

impl StateCosts {
    fn per_h(&self, n: u64) -> f64 {
        n as f64 / self.hours
    }

    /// Engine timer wakeups plus pushes, per hour.
    pub fn wakeups_per_h(&self) -> f64 {
        self.per_h(self.engine.timer_wakeups + self.pushes)
    }

    pub fn timer_wakeups_per_h(&self) -> f64 {
        self.per_h(self.engine.timer_wakeups)
    }

    pub fn requests_per_h(&self) -> f64 {
        self.per_h(self.engine.requests)
    }

    pub fn pushes_per_h(&self) -> f64 {
        self.per_h(self.pushes)
    }

    pub fn fsyncs_per_h(&self) -> f64 {
        self.per_h(self.fsyncs.total())
    }

    pub fn bytes_sent_per_h(&self) -> f64 {
        self.per_h(self.engine.bytes_sent)
    }

    pub fn bytes_received_per_h(&self) -> f64 {
        self.per_h(self.engine.bytes_received)
    }

    pub fn cpu_ms_per_h(&self) -> f64 {
        self.cpu_ms / self.hours
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "hours": self.hours,
            "wakeups_per_h": self.wakeups_per_h(),
            "timer_wakeups_per_h": self.timer_wakeups_per_h(),
            "pushes_per_h": self.pushes_per_h(),
            "requests_per_h": self.requests_per_h(),
            "stream_events_per_h": self.per_h(self.engine.stream_events),
            "bytes_sent_per_h": self.bytes_sent_per_h(),
            "bytes_received_per_h": self.bytes_received_per_h(),
            "fsyncs_per_h": self.fsyncs_per_h(),
            "durable_commits_per_h": self.per_h(self.engine.durable_commits),
            "cache_commits_per_h": self.per_h(self.engine.cache_commits),
            "cpu_ms_per_h": self.cpu_ms_per_h(),
        })
    }
}

/// Every state, and the incoming-event figure.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhoneCosts {
    /// Foreground: heartbeats and the event stream.
    pub active: StateCosts,
    /// Background with a push registration: a background lease renewed by push.
    pub background_push: StateCosts,
    /// Background without a push registration: active lease terms, so active heartbeats.
    pub background_no_push: StateCosts,
    /// Background after `set_network_available(false)`.
    pub no_network: StateCosts,
    /// Status and chat box events received while active, and the syncs they caused.
    pub incoming_events: u64,
    pub incoming_fsyncs: SyncCounts,
}

impl PhoneCosts {
    pub fn fsyncs_per_incoming_event(&self) -> f64 {
        self.incoming_fsyncs.total() as f64 / self.incoming_events.max(1) as f64
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "active": self.active.to_json(),
            "background_with_push": self.background_push.to_json(),
            "background_without_push": self.background_no_push.to_json(),
            "background_no_network": self.no_network.to_json(),
            "incoming_events": self.incoming_events,
            "incoming_fsyncs": self.incoming_fsyncs.total(),
            "settings": {
                "active_interval_ms": ACTIVE_INTERVAL_MS, "active_ttl_ms": ACTIVE_TTL_MS,
                "background_ttl_ms": BACKGROUND_TTL_MS, "renew_margin_ms": RENEW_MARGIN_MS,
                "stream_ping_s": PING_EVERY.as_secs(),
            },
        })
    }
}

/// Runs the whole scenario, `hours` of virtual time per state and `events` incoming status
/// and chat box events, on a paused current-thread runtime of its own thread.
pub fn measure(hours: u32, events: u64) -> Result<PhoneCosts, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(scenario(&path, hours, events))
    })
    .join()
    .map_err(|_| "the phone scenario panicked".to_owned())?
}

/// CPU time of the calling thread, in ms.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

struct Probe<'a> {
    client: &'a PresenceClient,
    vfs: &'a SyncCounter,
    pushes: &'a AtomicU64,
    engine: EngineCounters,
    fsyncs: SyncCounts,
    pushes_at: u64,
    cpu: f64,
}

impl<'a> Probe<'a> {
    fn start(client: &'a PresenceClient, vfs: &'a SyncCounter, pushes: &'a AtomicU64) -> Self {
        Probe {
            client,
            vfs,
            pushes,
            engine: client.counters(),
            fsyncs: vfs.counts(),
            pushes_at: pushes.load(Ordering::SeqCst),
            cpu: thread_cpu_ms(),
        }
    }

    fn stop(self, hours: f64) -> StateCosts {
        StateCosts {
            hours,
            engine: self.client.counters() - self.engine,
            pushes: self.pushes.load(Ordering::SeqCst) - self.pushes_at,
            fsyncs: self.vfs.counts() - self.fsyncs,
            cpu_ms: thread_cpu_ms() - self.cpu,
        }
    }
}

async fn scenario(dir: &std::path::Path, hours: u32, events: u64) -> Result<PhoneCosts, String> {
    let hours_d = Duration::from_secs(3600 * u64::from(hours));
    let span = f64::from(hours);
    let fake = FakeServer::new();
    fake.follow_wall_clock();
    fake.set_interval(ACTIVE_INTERVAL_MS, ACTIVE_TTL_MS);
    fake.set_background_terms(BACKGROUND_TTL_MS - RENEW_MARGIN_MS, BACKGROUND_TTL_MS);
    let vfs = SyncCounter::register();
    let client = PresenceClient::open(ClientConfig {
        server_url: Some("http://fake.invalid".into()),
        data_dir: dir.to_path_buf(),
        device: DeviceInfo {
            platform: Platform::Android,
            name: "phone".into(),
            app_version: "1".into(),
        },
        overrides: Overrides {
            transport: Some(fake.transport()),
            rng_seed: Some(1),
            sqlite_vfs: Some(vfs.vfs_name().to_owned()),
            ..Overrides::default()
        },
    })
    .await
    .map_err(|e| e.to_string())?;
    let day = Duration::from_secs(86_400);
    client
        .login("acme", "ann@example.com", "pw-secret-1")
        .await
        .map_err(|e| e.to_string())?;
    client
        .wait_for(day, |s| s.connection == Connection::Connected)
        .await
        .ok_or("never connected")?;

    // The server's keep-alive on every open stream.
    let pinger = {
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PING_EVERY);
            loop {
                tick.tick().await;
                fake.push_event("ping", &json!({"server_time": fake.now_ms()}));
            }
        })
    };
    let pushes = AtomicU64::new(0);
    tokio::time::sleep(Duration::from_secs(60)).await;

    // Active.
    let p = Probe::start(&client, &vfs, &pushes);
    tokio::time::sleep(hours_d).await;
    let active = p.stop(span);

    // Incoming events while active.
    let before = vfs.counts();
    let from = client.snapshot().status.map_or(0, |s| s.version) + 1;
    let last = from + events as i64 / 2;
    for v in from..last {
        let status = if v % 2 == 0 { "busy" } else { "online" };
        fake.push_event(
            "status",
            &json!({"status": status, "version": v, "intent_at": EPOCH_MS + v,
                    "changed_by_device": "other"}),
        );
        fake.push_event("chatbox", &FakeServer::chatbox_view(v));
    }
    client
        .wait_for(day, |s| {
            s.status.as_ref().is_some_and(|st| st.version == last - 1)
                && s.chatbox.as_ref().is_some_and(|c| c.version == last - 1)
        })
        .await
        .ok_or("incoming events not applied")?;
    let incoming_fsyncs = vfs.counts() - before;
    let incoming_events = 2 * (last - from) as u64;

    // Background without a push registration: the server grants active terms only.
    client.set_lifecycle(Lifecycle::Background).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let p = Probe::start(&client, &vfs, &pushes);
    tokio::time::sleep(hours_d).await;
    let background_no_push = p.stop(span);

    // Background with a push registration: the next heartbeat gets a background lease,
    // renewed from then on by a push `RENEW_MARGIN_MS` before it ends.
    client
        .register_push(PushProvider::Webhook, "https://push.invalid/phone", None)
        .await
        .map_err(|e| e.to_string())?;
    let hb = fake.count(Method::Post, HEARTBEAT);
    fake.wait_requests(Method::Post, HEARTBEAT, hb + 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let renewer = async {
        loop {
            let n = fake.count(Method::Post, HEARTBEAT);
            // The server sends the renew `RENEW_MARGIN_MS` before the lease it granted ends.
            let renew_at = fake.lease_end() - Duration::from_millis(RENEW_MARGIN_MS as u64);
            tokio::time::sleep_until(renew_at.max(Instant::now())).await;
            if fake.count(Method::Post, HEARTBEAT) != n {
                // The engine heartbeated on its own meanwhile: the lease moved, so does the
                // renew.
                continue;
            }
            let session_id = client.snapshot().session.session_id.unwrap_or_default();
            pushes.fetch_add(1, Ordering::SeqCst);
            let payload = json!({"v": 1, "type": "renew", "session_id": session_id,
                                 "lease_until": fake.now_ms() + RENEW_MARGIN_MS});
            let _ = client.handle_push(&payload.to_string()).await;
        }
    };
    let background_push = {
        let p = Probe::start(&client, &vfs, &pushes);
        tokio::select! {
            _ = renewer => unreachable!("the renewer loops forever"),
            _ = tokio::time::sleep(hours_d) => {}
        }
        p.stop(span)
    };

    // No network: no pushes reach the phone either.
    client.set_network_available(false).await;
    let p = Probe::start(&client, &vfs, &pushes);
    tokio::time::sleep(hours_d).await;
    let no_network = p.stop(span);

    pinger.abort();
    client.shutdown().await;
    Ok(PhoneCosts {
        active,
        background_push,
        background_no_push,
        no_network,
        incoming_events,
        incoming_fsyncs,
    })
}
