//! Waiting for what should happen, with a generous deadline and never a bare sleep: tests
//! finish as soon as the condition holds.

use std::time::Duration;

use presence_core::{ClientSnapshot, PresenceClient};

/// How long a test waits for something that should happen at once. Generous: the machines
/// running tests are shared and noisy.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` every 25 ms until it returns true (for server-side facts that have no
/// channel); panics with `what` after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= end {
            panic!("{what}: not within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `pred` holds for a snapshot of `client`; panics with the last snapshot after
/// [`DEADLINE`].
pub async fn wait_until(
    client: &PresenceClient,
    what: &str,
    pred: impl FnMut(&ClientSnapshot) -> bool,
) -> ClientSnapshot {
    match client.wait_for(DEADLINE, pred).await {
        Some(s) => s,
        None => panic!(
            "timed out waiting for {what}; last snapshot:\n{}",
            serde_json::to_string_pretty(&client.snapshot()).unwrap()
        ),
    }
}
