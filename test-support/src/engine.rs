//! Engines ([`PresenceClient`]) against a test server: device configs with short timings, and
//! logged-in devices each with their own data dir.

use std::path::Path;
use std::time::Duration;

use presence_core::{
    ClientConfig, ClientSnapshot, DeviceInfo, Overrides, Platform, PresenceClient,
};

use crate::api::Account;

/// Short timings so failures and reconnects resolve quickly.
pub fn fast_overrides() -> Overrides {
    Overrides {
        request_timeout: Duration::from_secs(3),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(500),
        sse_idle_timeout: Duration::from_secs(30),
        store_poll_interval: Some(Duration::from_millis(200)),
        ..Overrides::default()
    }
}

pub fn config(url: &str, dir: &Path) -> ClientConfig {
    ClientConfig {
        server_url: Some(url.to_owned()),
        data_dir: dir.to_path_buf(),
        device: DeviceInfo {
            platform: Platform::Desktop,
            name: "test device".into(),
            app_version: "0.0.0-test".into(),
        },
        overrides: fast_overrides(),
    }
}

/// A logged-in device of `acct`'s owner with its own data dir.
pub struct Device {
    pub client: PresenceClient,
    pub dir: tempfile::TempDir,
}

pub async fn device(url: &str, acct: &Account) -> Device {
    device_with(url, acct, |_| {}).await
}

pub async fn device_with(
    url: &str,
    acct: &Account,
    tweak: impl FnOnce(&mut ClientConfig),
) -> Device {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(url, dir.path());
    tweak(&mut cfg);
    let client = PresenceClient::open(cfg).await.expect("open");
    client
        .login(&acct.slug, &acct.email, &acct.password)
        .await
        .expect("login");
    Device { client, dir }
}

pub fn status_of(
    s: &ClientSnapshot,
) -> Option<(presence_core::AgentStatus, presence_core::AgentStatus, bool)> {
    s.status
        .as_ref()
        .map(|st| (st.current, st.confirmed, st.pending))
}
