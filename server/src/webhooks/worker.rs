//! The delivery loop every node runs: claim endpoints with an event due, send each event,
//! keep what came of it.
//!
//! Guarantees:
//! - An attempt runs in a task of its own holding an outbound slot; one account holds at
//!   most a tenth of the slots, so a tenant whose endpoints hang delays no other tenant, and
//!   nothing here is on a status change's path (the change only commits its event).
//! - The loop wakes when events are committed (on this node at once; in a cluster, other
//!   nodes' events are theirs to send, and this node also looks every second), when an
//!   attempt ends, when the earliest retry is due, and when an endpoint is made, enabled or
//!   retried here. While no endpoint is enabled anywhere it looks once a second only, so a
//!   server without webhooks pays nothing per commit.
//! - A lease outlives the longest attempt; a node that dies holding one lets another take
//!   the endpoint when it lapses and send the same event again.

use std::sync::Arc;
use std::time::Duration;

use presence_protocol::AccountEvent;
use tokio::sync::{Notify, watch};

use super::backoff::Policy;
use super::deliver::{self, Attempt};
use super::metrics::{Result as Counted, WebhookMetrics};
use super::{Job, Settle, event_id};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::outbound::{ClientOptions, PublicOnly, Slots, TargetRules};

/// How many attempts run at once on one node.
pub const SLOTS: usize = 200;
/// How often a node looks for work it was not woken for (other nodes' lapsed leases).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How much longer than the longest attempt a lease lasts: a lapsed lease means its node
/// is gone (or cut off), and another node sends the event again.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// The most endpoints taken in one claim.
const CLAIM_AT_ONCE: usize = 64;

/// What the loop needs.
pub struct Worker {
    pub backend: Arc<dyn Backend>,
    /// Told when an endpoint is made, enabled or retried on this node.
    pub poke: Arc<Notify>,
    pub rules: TargetRules,
    pub policy: Policy,
    pub metrics: Arc<WebhookMetrics>,
    pub clock: Clock,
}

struct Running {
    backend: Arc<dyn Backend>,
    client: reqwest::Client,
    policy: Policy,
    metrics: Arc<WebhookMetrics>,
    clock: Clock,
    owner: String,
    done: Notify,
}

/// The HTTP client of webhook deliveries (and test events): the outbound rules, HTTP/1.1
/// or HTTP/2 as the endpoint offers over TLS.
pub fn client(rules: &TargetRules, timeout: Duration) -> Result<reqwest::Client, String> {
    crate::outbound::client(ClientOptions {
        roots: &[],
        http2_only: false,
        resolver: Some(Arc::new(PublicOnly {
            rules: rules.clone(),
        })),
        timeout,
    })
}

/// The body of `job`'s event.
pub fn body(job: &Job) -> Vec<u8> {
    let wire: AccountEvent = job.event.to_wire(&job.slug);
    serde_json::to_vec(&wire).unwrap_or_default()
}

impl Worker {
    /// Runs the loop until `shutdown` turns true.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let client = match client(&self.rules, self.policy.timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks are not delivered");
                return tokio::spawn(async {});
            }
        };
        let run = Arc::new(Running {
            backend: self.backend.clone(),
            client,
            policy: self.policy,
            metrics: self.metrics,
            clock: self.clock,
            owner: crate::auth::new_token(),
            done: Notify::new(),
        });
        let slots = Slots::new(SLOTS);
        let mut signal = self.backend.event_signal();
        let poke = self.poke;
        tokio::spawn(async move {
            let lease = run.policy.timeout + LEASE_MARGIN;
            // No enabled endpoint anywhere, as last read: commits need no look (an endpoint
            // made here pokes the loop; one made on another node is seen within a second).
            let mut idle = false;
            loop {
                if *shutdown.borrow() {
                    return;
                }
                // Attempts that end together wake the loop once: let them all end first.
                tokio::task::yield_now().await;
                // The claim below reads every commit made so far.
                signal.seen();
                let now = run.clock.now_ms();
                let want = slots.available().min(CLAIM_AT_ONCE);
                let mut wait = LOOK_EVERY;
                if want > 0 {
                    match run
                        .backend
                        .claim_webhooks(&run.owner, now, now + lease.as_millis() as i64, want)
                        .await
                    {
                        Ok(claims) => {
                            run.metrics.set_backlog(claims.backlog);
                            idle = claims.endpoints == 0;
                            let full = claims.jobs.len() == want;
                            let mut started = 0;
                            for job in claims.jobs {
                                match slots.try_take(&job.webhook.account_id) {
                                    Some(slot) => {
                                        started += 1;
                                        let run = run.clone();
                                        tokio::spawn(async move {
                                            run.attempt(job).await;
                                            drop(slot);
                                            run.done.notify_one();
                                        });
                                    }
                                    None => run.settle(&job, Settle::Released).await,
                                }
                            }
                            if full && started > 0 {
                                continue;
                            }
                            if let Some(due) = claims.next_due {
                                let until = Duration::from_millis((due - now).max(1) as u64);
                                wait = wait.min(until);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "claiming webhook work failed"),
                    }
                }
                tokio::select! {
                    _ = signal.next(), if !idle => {}
                    _ = poke.notified() => {}
                    _ = run.done.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }
}

impl Running {
    async fn attempt(&self, job: Job) {
        let now = self.clock.now_ms();
        let id = event_id(&job.webhook.account_id, job.event.seq);
        let a: Attempt = deliver::send(
            &self.client,
            &job.webhook,
            &id,
            body(&job),
            now,
            self.policy.timeout,
        )
        .await;
        let at = self.clock.now_ms();
        let settle = if a.ok() {
            self.metrics.counted(Counted::Ok);
            self.metrics
                .delivered_after(Duration::from_millis((at - job.event.at).max(0) as u64));
            Settle::Delivered {
                status: a.status.unwrap_or(200),
                at,
            }
        } else {
            let gone = a.gone();
            let next_at = if gone {
                Some(at)
            } else {
                self.policy.next_attempt(
                    at,
                    job.since,
                    job.attempts + 1,
                    a.retry_after,
                    &mut rand::rng(),
                )
            };
            self.metrics.counted(match (gone, next_at) {
                (true, _) => Counted::Gone,
                (false, Some(_)) => Counted::Retry,
                (false, None) => Counted::Dead,
            });
            if gone {
                tracing::warn!(webhook = %job.webhook.id, "an endpoint answered 410: disabled");
            }
            Settle::Failed {
                status: a.status,
                error: a.error.unwrap_or_default(),
                at,
                next_at,
                gone,
            }
        };
        self.settle(&job, settle).await;
    }

    /// Keeps a job's outcome; if the store cannot be reached, the lease lapses and the
    /// event is sent again (at least once).
    async fn settle(&self, job: &Job, settle: Settle) {
        if let Err(e) = self.backend.settle_webhook(&self.owner, job, &settle).await {
            tracing::warn!(webhook = %job.webhook.id, error = %e, "a webhook outcome was not kept");
        }
    }
}
