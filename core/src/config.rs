//! What a device tells the engine when it opens it, and the knobs tests turn.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use presence_protocol::Platform;

use crate::transport::Transport;

/// Everything [`PresenceClient::open`](crate::PresenceClient::open) needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL of the presence server, e.g. `http://127.0.0.1:8080`. `None` uses the URL
    /// stored at the last successful login (the CLI relies on this; apps always pass one).
    /// When both exist, this one wins.
    pub server_url: Option<String>,
    /// Directory for `presence.db`; created if missing.
    pub data_dir: PathBuf,
    /// Describes this device to the server. Its id is generated once and kept in the store.
    pub device: DeviceInfo,
    /// Timing and injection knobs; [`Overrides::default`] is right for production.
    pub overrides: Overrides,
}

/// The device's self-description, sent at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub platform: Platform,
    /// Human name shown in session lists, e.g. "Jana's Pixel".
    pub name: String,
    pub app_version: String,
}

/// Knobs with production defaults. Tests shorten the timings; nothing here changes the
/// engine's rules.
#[derive(Clone)]
pub struct Overrides {
    /// Whole-request deadline for ordinary calls (connect, send, read the full body).
    pub request_timeout: Duration,
    /// First retry window of the capped exponential backoff (full jitter picks in `[0, window]`).
    pub backoff_base: Duration,
    /// Largest backoff window. A server's `Retry-After` may ask for longer and is honoured.
    pub backoff_cap: Duration,
    /// An event stream that delivers nothing (not even the server's 15 s keep-alive comment)
    /// for this long is presumed dead and reconnected.
    pub sse_idle_timeout: Duration,
    /// How often the engine checks whether another process (a second `presence` command on
    /// the same data dir) changed the outbox or the session. `None` (the default) never
    /// checks: an app is the only process on its data dir, and a wakeup a second would cost
    /// battery for nothing. The CLI turns it on.
    pub store_poll_interval: Option<Duration>,
    /// Added to the device's wall clock, to simulate a device whose clock is wrong.
    pub clock_skew_ms: i64,
    /// Replaces the HTTP transport, so tests can answer requests in memory under paused time.
    pub transport: Option<Arc<dyn Transport>>,
    /// Seeds the jitter generator for reproducible tests; `None` seeds from the OS.
    pub rng_seed: Option<u64>,
    /// Opens `presence.db` through this registered SQLite VFS instead of the platform's
    /// default, so tests can count what reaches the disk (presence-test-support's fsync
    /// counter). `None` in production.
    pub sqlite_vfs: Option<String>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides {
            request_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(60),
            sse_idle_timeout: Duration::from_secs(45),
            store_poll_interval: None,
            clock_skew_ms: 0,
            transport: None,
            rng_seed: None,
            sqlite_vfs: None,
        }
    }
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("request_timeout", &self.request_timeout)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .field("sse_idle_timeout", &self.sse_idle_timeout)
            .field("store_poll_interval", &self.store_poll_interval)
            .field("clock_skew_ms", &self.clock_skew_ms)
            .field("transport", &self.transport.as_ref().map(|_| "custom"))
            .field("rng_seed", &self.rng_seed)
            .field("sqlite_vfs", &self.sqlite_vfs)
            .finish()
    }
}
