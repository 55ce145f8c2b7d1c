//! The [`Pusher`]'s pools on tokio's paused clock, with a sender whose answer each token
//! chooses: a backing-off push holds no request slot, and one account's hung targets fill
//! only its share.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use presence_protocol::EndReason;

use super::*;

/// Answers by the token's start: `busy` (always `429`, `Retry-After: 20`), `hang` (never),
/// anything else delivered; keeps what it delivered, and how many `hang`s are in flight.
#[derive(Default)]
struct Scripted {
    attempts: AtomicUsize,
    hanging: AtomicUsize,
    most_hanging: AtomicUsize,
    delivered: Mutex<Vec<(String, Instant)>>,
}

struct Hanging<'a>(&'a Scripted);

impl Drop for Hanging<'_> {
    fn drop(&mut self) {
        self.0.hanging.fetch_sub(1, SeqCst);
    }
}

#[async_trait]
impl PushSender for Arc<Scripted> {
    fn provider(&self) -> PushProvider {
        PushProvider::Webhook
    }

    fn validate(&self, _: &PushRegistration) -> Result<(), Refusal> {
        Ok(())
    }

    async fn send(&self, d: &Delivery<'_>) -> Result<(), PushError> {
        self.attempts.fetch_add(1, SeqCst);
        let token = &d.job.reg.token;
        if token.starts_with("busy") {
            return Err(PushError::Busy {
                detail: "busy".into(),
                retry_after: Some(Duration::from_secs(20)),
            });
        }
        if token.starts_with("hang") {
            let now = self.hanging.fetch_add(1, SeqCst) + 1;
            self.most_hanging.fetch_max(now, SeqCst);
            let _guard = Hanging(self);
            std::future::pending::<()>().await;
        }
        self.delivered.lock().push((token.clone(), Instant::now()));
        Ok(())
    }
}

fn job(account: &str, token: &str) -> PushJob {
    PushJob::new(
        account,
        PushRegistration::new(PushProvider::Webhook, token),
        PushPayload::new(PushBody::SessionEnded {
            session_id: "s".into(),
            reason: EndReason::Logout,
        }),
        60_000,
        0,
    )
}

fn pusher() -> (Pusher, Arc<Scripted>) {
    let sender = Arc::new(Scripted::default());
    let pusher = Pusher::new(
        vec![Arc::new(sender.clone())],
        Arc::new(PushMetrics::default()),
    );
    (pusher, sender)
}

/// Lets the spawned sends run until `done`, on the paused clock, at most `within`.
async fn until(within: Duration, done: impl Fn() -> bool) {
    let end = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < end, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn delivered_at(sender: &Scripted, token: &str) -> Option<Instant> {
    let d = sender.delivered.lock();
    d.iter().find(|(t, _)| t == token).map(|(_, at)| *at)
}

#[tokio::test(start_paused = true)]
async fn a_push_backing_off_holds_no_request_slot() {
    let (pusher, sender) = pusher();
    let start = Instant::now();
    // As many pushes backing off as there are request slots, spread over accounts so that
    // none is over its share of pushes under way.
    let busy = MAX_IN_FLIGHT;
    for i in 0..busy {
        pusher.dispatch(job(&format!("acc-{}", i % 8), &format!("busy-{i}")));
    }
    until(Duration::from_secs(5), || {
        sender.attempts.load(SeqCst) >= busy
    })
    .await;
    pusher.dispatch(job("acc-0", "ok-same-account"));
    pusher.dispatch(job("acc-new", "ok-other-account"));
    until(Duration::from_secs(5), || {
        sender.delivered.lock().len() == 2
    })
    .await;
    for token in ["ok-same-account", "ok-other-account"] {
        let at = delivered_at(&sender, token).unwrap();
        assert!(
            at - start < Duration::from_secs(20),
            "{token} went out after {:?}, behind the backoffs",
            at - start
        );
    }
}

#[tokio::test(start_paused = true)]
async fn one_accounts_hung_targets_fill_only_its_share_and_other_accounts_pushes_go_out() {
    let (pusher, sender) = pusher();
    for i in 0..2 * MAX_IN_FLIGHT {
        pusher.dispatch(job("greedy", &format!("hang-{i}")));
    }
    let share = MAX_IN_FLIGHT / 10;
    until(Duration::from_secs(1), || {
        sender.hanging.load(SeqCst) == share
    })
    .await;
    let start = Instant::now();
    pusher.dispatch(job("other", "ok-other"));
    until(Duration::from_secs(1), || {
        delivered_at(&sender, "ok-other").is_some()
    })
    .await;
    assert!(delivered_at(&sender, "ok-other").unwrap() - start < Duration::from_millis(50));
    // Through timeouts and retries, the greedy account never holds more than its share.
    tokio::time::sleep(ATTEMPT_TIMEOUT * 3).await;
    assert_eq!(sender.most_hanging.load(SeqCst), share);
}
