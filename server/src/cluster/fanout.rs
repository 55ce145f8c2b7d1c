//! A node's fan-out: one pub/sub connection, and a replica per account that has streams on
//! this node.
//!
//! # Streams
//! A replica subscribes to its account's channel first, then reads the stored view and its
//! agents' statuses, so no event between the two is missed. A view is taken only if its
//! version is above the one held, a status only if above the agent's last one, so a replica
//! never goes backwards. A stream starts from what its replica holds, taken with its
//! receivers under the replica's lock ([`Start`]): its snapshot is the view and status its
//! events are strictly above, so a stream never repeats its snapshot or goes below it. Status
//! and session-ended events go to the agent's `broadcast` channel, as on the embedded
//! backend.
//!
//! # The connection
//! - Checked all the time: a `PING` on it every [`PING_EVERY`] must be answered within
//!   [`PING_ANSWER`], and connecting or subscribing must be done within [`ANSWER_WAIT`], so a
//!   connection reset without this node being told, or blackholed, is found dead within about
//!   a second. One silent for [`PROBE_AFTER`] also publishes a probe to itself and is made
//!   again if it does not come back within [`PROBE_ANSWER`] (a connection that answers but
//!   delivers nothing, as after a failover).
//! - A dead connection is made again at once (then every [`RETRY_AFTER`], to the next seed on
//!   a Redis Cluster). The new one subscribes every replica again, and every replica's view
//!   and statuses are read again, each retried until it is read ([`resync`]): a stream misses
//!   no change for good (it may miss an intermediate one, never the last).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use presence_protocol::{ChatboxStatus, ChatboxView, Reason, StatusView};
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::Inner;
use super::hot::{Event, Keys};
use crate::backend::{AgentEvent, BackendError, BackendResult, ViewFrame};

/// Buffered events per agent before a slow device stream is dropped.
const AGENT_EVENT_BUFFER: usize = 256;

/// How often the reader pings Redis on its subscription connection...
const PING_EVERY: Duration = Duration::from_millis(500);
/// ...and how soon the answer must come, or the connection is made again.
const PING_ANSWER: Duration = Duration::from_millis(500);
/// How long connecting, and each (un)subscribe, may take before the connection is made again.
const ANSWER_WAIT: Duration = Duration::from_secs(1);
/// The pause between two failed attempts to connect, or to re-read a replica.
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// After this long without a message, the reader publishes a probe to itself...
const PROBE_AFTER: Duration = Duration::from_secs(10);
/// ...and reconnects if the probe has not come back within this.
const PROBE_ANSWER: Duration = Duration::from_secs(3);

/// How long opening a stream waits for the subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);

struct Replica {
    account_id: String,
    view_tx: watch::Sender<Arc<ViewFrame>>,
    /// agent -> its device streams' channel, and the last status sent on it
    agents: HashMap<String, AgentLane>,
    users: usize,
}

struct AgentLane {
    tx: broadcast::Sender<AgentEvent>,
    /// The last status sent; `None` until the stored one is first read.
    last: Option<StatusView>,
}

impl AgentLane {
    fn new() -> AgentLane {
        AgentLane {
            tx: broadcast::channel(AGENT_EVENT_BUFFER).0,
            last: None,
        }
    }

    /// Sends a status once: an older or repeated version (a replay after a reconnect) is
    /// dropped, and so is one that comes before the stored status was first read (that read
    /// is later, so it holds this status or a newer one). True if sent.
    fn status(&mut self, status: StatusView) -> bool {
        let Some(last) = &self.last else { return false };
        if status.version > last.version {
            self.last = Some(status.clone());
            let _ = self.tx.send(AgentEvent::status(status));
            return true;
        }
        false
    }

    /// The stored status as just read: where the lane starts, or what it missed.
    fn stored(&mut self, status: StatusView) {
        match self.last {
            None => self.last = Some(status),
            Some(_) => {
                self.status(status);
            }
        }
    }
}

enum Cmd {
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
}

pub struct Fanout {
    /// channel -> replica
    replicas: Mutex<HashMap<String, Replica>>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    cmd_rx: Mutex<Option<mpsc::UnboundedReceiver<Cmd>>>,
    clients: Vec<redis::Client>,
    /// Bumped by each new connection: a resync of an older one stops.
    connection: AtomicU64,
}

/// A view that no reader may keep: replaced by the stored one before `join` returns.
fn placeholder() -> Arc<ViewFrame> {
    Arc::new(ViewFrame::new(ChatboxView {
        status: ChatboxStatus::Offline,
        reason: Reason::NoAgentsOnline,
        version: -1,
        next_change_at: None,
        groups: Vec::new(),
        message: None,
        back_at: None,
    }))
}

/// Held by a stream; the replica goes when its last stream does.
pub struct Membership {
    inner: Weak<Inner>,
    channel: String,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.fanout.leave(&self.channel);
        }
    }
}

/// Where a stream starts: its replica's view (and agent's status) and receivers of what
/// comes strictly after them, all taken at one instant.
pub struct Start {
    pub view: Arc<ViewFrame>,
    pub views: watch::Receiver<Arc<ViewFrame>>,
    /// With an agent: its status, and its events.
    pub agent: Option<(StatusView, broadcast::Receiver<AgentEvent>)>,
    pub membership: Membership,
}

impl Fanout {
    pub fn new(clients: Vec<redis::Client>) -> Fanout {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        Fanout {
            replicas: Mutex::new(HashMap::new()),
            cmd_tx,
            cmd_rx: Mutex::new(Some(cmd_rx)),
            clients,
            connection: AtomicU64::new(0),
        }
    }

    fn leave(&self, channel: &str) {
        let mut r = self.replicas.lock();
        if let Some(rep) = r.get_mut(channel) {
            rep.users -= 1;
            if rep.users == 0 {
                r.remove(channel);
                let _ = self.cmd_tx.send(Cmd::Unsubscribe(channel.to_owned()));
            }
        }
    }

    fn take_view(&self, channel: &str, view: ChatboxView) {
        if let Some(rep) = self.replicas.lock().get(channel) {
            rep.view_tx.send_if_modified(|cur| {
                if view.version > cur.view.version {
                    *cur = Arc::new(ViewFrame::new(view));
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Hands an event of `channel` to its replica's streams; for a status change sent to
    /// an agent's streams, answers when it was committed (µs, [`crate::metrics::wall_us`]).
    fn dispatch(&self, channel: &str, payload: &[u8]) -> Option<i64> {
        let Ok(ev) = serde_json::from_slice::<Event>(payload) else {
            tracing::warn!(channel, "unreadable event on the account channel");
            return None;
        };
        match ev {
            Event::View { view } => {
                self.take_view(channel, view);
                None
            }
            Event::Status {
                agent,
                status,
                at_us,
            } => {
                let sent = self
                    .replicas
                    .lock()
                    .get_mut(channel)
                    .and_then(|r| r.agents.get_mut(&agent))
                    .is_some_and(|lane| lane.status(status));
                at_us.filter(|_| sent)
            }
            Event::Ended {
                agent,
                session,
                reason,
            } => {
                if let Some(lane) = self
                    .replicas
                    .lock()
                    .get(channel)
                    .and_then(|r| r.agents.get(&agent))
                {
                    let _ = lane.tx.send(AgentEvent::SessionEnded {
                        session_id: Arc::from(session.as_str()),
                        reason,
                    });
                }
                None
            }
        }
    }

    /// The replica's view and (with `agent`) the agent's status, with receivers of what comes
    /// after them, under the lock every change to them takes.
    fn start(&self, channel: &str, agent: Option<&str>, membership: Membership) -> Option<Start> {
        let r = self.replicas.lock();
        let rep = r.get(channel)?;
        let agent = match agent {
            None => None,
            Some(a) => {
                let lane = rep.agents.get(a)?;
                Some((lane.last.clone()?, lane.tx.subscribe()))
            }
        };
        // A new receiver has seen the current view: it wakes for a newer one only.
        let views = rep.view_tx.subscribe();
        let view = views.borrow().clone();
        Some(Start {
            view,
            views,
            agent,
            membership,
        })
    }
}

impl Inner {
    /// Joins (or starts) this node's replica of an account, and with `agent` that agent's
    /// events: where a stream starts, live from the moment this returns.
    pub(super) async fn join(
        self: &Arc<Self>,
        account_id: &str,
        agent: Option<&str>,
    ) -> BackendResult<Start> {
        let channel = Keys::of(account_id).channel;
        let (mut loaded, fresh) = {
            let mut r = self.fanout.replicas.lock();
            let fresh = !r.contains_key(&channel);
            let rep = r.entry(channel.clone()).or_insert_with(|| Replica {
                account_id: account_id.to_owned(),
                view_tx: watch::Sender::new(placeholder()),
                agents: HashMap::new(),
                users: 0,
            });
            rep.users += 1;
            if let Some(a) = agent {
                rep.agents
                    .entry(a.to_owned())
                    .or_insert_with(AgentLane::new);
            }
            (rep.view_tx.subscribe(), fresh)
        };
        let membership = Membership {
            inner: Arc::downgrade(self),
            channel: channel.clone(),
        };
        let unreachable = || BackendError::unavailable("the hot store is out of reach; retry", 1);
        if fresh {
            let (tx, rx) = oneshot::channel();
            let _ = self.fanout.cmd_tx.send(Cmd::Subscribe(channel.clone(), tx));
            tokio::time::timeout(SUBSCRIBE_WAIT, rx)
                .await
                .map_err(|_| unreachable())?
                .map_err(|_| BackendError::unavailable("the node is stopping", 1))?;
            self.load_view(account_id, &channel).await?;
        }
        if agent.is_some() {
            self.load_statuses(account_id, &channel).await?;
        }
        // Another stream's join may still be reading the view.
        tokio::time::timeout(SUBSCRIBE_WAIT, loaded.wait_for(|f| f.view.version >= 0))
            .await
            .map_err(|_| unreachable())?
            .map_err(|_| BackendError::unavailable("the node is stopping", 1))?;
        // Only an agent Redis does not hold has no status after the read.
        self.fanout
            .start(&channel, agent, membership)
            .ok_or_else(|| BackendError::not_found("agent"))
    }

    /// Reads the stored statuses of the replica's agents into their lanes: the first read
    /// sets where a lane starts, a later one (after a reconnect) sends what was missed.
    async fn load_statuses(&self, account_id: &str, channel: &str) -> BackendResult<()> {
        let snap = seeded!(self, account_id, self.hot.snapshot(account_id))?;
        let mut r = self.fanout.replicas.lock();
        let Some(rep) = r.get_mut(channel) else {
            return Ok(());
        };
        for (id, _, status) in snap.agents {
            if let Some(lane) = rep.agents.get_mut(&id) {
                lane.stored(status);
            }
        }
        Ok(())
    }

    /// Reads the stored view into the replica (computing it first if there is none).
    async fn load_view(&self, account_id: &str, channel: &str) -> BackendResult<()> {
        let view = match self.hot.view(account_id).await? {
            Some(v) => v,
            None => {
                self.refresh_view(account_id).await?;
                self.hot
                    .view(account_id)
                    .await?
                    .ok_or_else(|| BackendError::internal("no view after a refresh"))?
            }
        };
        self.fanout.take_view(channel, view);
        Ok(())
    }

    /// The view this node's replica holds, if it has one.
    pub(super) fn local_view(&self, account_id: &str) -> Option<Arc<ViewFrame>> {
        let channel = Keys::of(account_id).channel;
        let r = self.fanout.replicas.lock();
        let v = r.get(&channel)?.view_tx.borrow().clone();
        (v.view.version >= 0).then_some(v)
    }
}

/// Re-reads the views and statuses of `replicas` (channel, account) after connection
/// `connection` subscribed them, again after [`RETRY_AFTER`] for each read that failed (the
/// command connection may still be coming back), until every one is read, its replica is
/// gone, or a newer connection has its own resync.
async fn resync(inner: Weak<Inner>, mut replicas: Vec<(String, String)>, connection: u64) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let mut failed = Vec::new();
        let mut error = None;
        for (channel, account) in replicas {
            if strong.fanout.connection.load(Relaxed) != connection {
                return;
            }
            if !strong.fanout.replicas.lock().contains_key(&channel) {
                continue;
            }
            let read = match strong.load_view(&account, &channel).await {
                Ok(()) => strong.load_statuses(&account, &channel).await,
                Err(e) => Err(e),
            };
            if let Err(e) = read {
                error = Some(e);
                failed.push((channel, account));
            }
        }
        drop(strong);
        let Some(e) = error else { return };
        tracing::warn!(error = %e, replicas = failed.len(), "could not re-read views after reconnecting; retrying");
        replicas = failed;
        tokio::time::sleep(RETRY_AFTER).await;
    }
}

/// Pings on the subscription connection every [`PING_EVERY`]; resolves with why when one is
/// not answered within [`PING_ANSWER`].
async fn until_a_ping_fails(mut sink: PubSubSink) -> &'static str {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        match tokio::time::timeout(PING_ANSWER, sink.ping::<redis::Value>()).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return "its ping failed",
            Err(_) => return "its ping was not answered in time",
        }
    }
}

/// A subscription connection to `client`, subscribed to `probe` and `channels`, within
/// [`ANSWER_WAIT`] for each step.
async fn connect(
    client: &redis::Client,
    probe: &str,
    channels: &[String],
) -> Result<(PubSubSink, PubSubStream), String> {
    let late = |what: &str| format!("{what} took longer than {ANSWER_WAIT:?}");
    let ps = tokio::time::timeout(ANSWER_WAIT, client.get_async_pubsub())
        .await
        .map_err(|_| late("connecting"))?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = ps.split();
    let probe = [probe.to_owned()];
    for batch in [&probe[..], channels] {
        if batch.is_empty() {
            continue;
        }
        tokio::time::timeout(ANSWER_WAIT, sink.subscribe(batch))
            .await
            .map_err(|_| late("subscribing"))?
            .map_err(|e| e.to_string())?;
    }
    Ok((sink, stream))
}

/// Starts the pub/sub reader; it runs until `stop` or until the backend is dropped.
pub(super) fn spawn_reader(inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let Some(mut cmds) = strong.fanout.cmd_rx.lock().take() else {
        return;
    };
    let clients = strong.fanout.clients.clone();
    drop(strong);
    let probe = format!("pr:probe:{}", uuid::Uuid::new_v4().simple());
    tokio::spawn(async move {
        let mut first = true;
        let mut turn = 0usize;
        // Subscriptions asked for while the connection was being made again: answered once
        // the new one has subscribed every replica.
        let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
        // After a failed attempt, wait before the next one; a connection found dead is made
        // again at once.
        let mut pause = false;
        loop {
            if *stop.borrow() {
                return;
            }
            if std::mem::take(&mut pause) {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = stop.changed() => return,
                }
            }
            // A cluster's seeds in turn: a failed-over node is left for the next one.
            let client = &clients[turn % clients.len()];
            turn += 1;
            let replicas: Vec<(String, String)> = {
                let Some(inner) = inner.upgrade() else { return };
                let r = inner.fanout.replicas.lock();
                r.iter()
                    .map(|(c, rep)| (c.clone(), rep.account_id.clone()))
                    .collect()
            };
            let channels: Vec<String> = replicas.iter().map(|(c, _)| c.clone()).collect();
            let (mut sink, mut stream) = tokio::select! {
                made = connect(client, &probe, &channels) => match made {
                    Ok(made) => made,
                    Err(e) => {
                        tracing::warn!(error = %e, "pub/sub connection failed; retrying");
                        pause = true;
                        continue;
                    }
                },
                _ = stop.changed() => return,
            };
            let Some(strong) = inner.upgrade() else {
                return;
            };
            if !first {
                strong.metrics.store.pubsub_reconnects.inc();
            }
            first = false;
            let connection = strong.fanout.connection.fetch_add(1, Relaxed) + 1;
            drop(strong);
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
            // Every replica is subscribed again: read what it may have missed.
            if !replicas.is_empty() {
                tokio::spawn(resync(inner.clone(), replicas, connection));
            }
            let pinger = until_a_ping_fails(sink.clone());
            tokio::pin!(pinger);
            let mut heard = tokio::time::Instant::now();
            let mut probed: Option<tokio::time::Instant> = None;
            loop {
                let check = match probed {
                    Some(at) => at + PROBE_ANSWER,
                    None => heard + PROBE_AFTER,
                };
                tokio::select! {
                    why = &mut pinger => {
                        tracing::warn!("pub/sub connection dead: {why}");
                        break;
                    }
                    _ = tokio::time::sleep_until(check) => {
                        if probed.is_some() {
                            tracing::warn!("pub/sub connection silent: its probe did not come back");
                            break;
                        }
                        // A silent connection may be a dead one (after a failover it can
                        // look healthy and deliver nothing): publish to ourselves.
                        let Some(inner) = inner.upgrade() else { return };
                        if inner.hot.publish(&probe, "probe").await.is_err() {
                            break;
                        }
                        probed = Some(tokio::time::Instant::now());
                    }
                    cmd = cmds.recv() => match cmd {
                        Some(Cmd::Subscribe(c, done)) => {
                            match tokio::time::timeout(ANSWER_WAIT, sink.subscribe(&c)).await {
                                Ok(Ok(())) => {
                                    let _ = done.send(());
                                }
                                _ => {
                                    // The next connection subscribes it with the rest.
                                    waiting.push(done);
                                    tracing::warn!("pub/sub connection dead: a subscribe failed");
                                    break;
                                }
                            }
                        }
                        Some(Cmd::Unsubscribe(c)) => {
                            let unsubscribed =
                                tokio::time::timeout(ANSWER_WAIT, sink.unsubscribe(&c)).await;
                            if !matches!(unsubscribed, Ok(Ok(()))) {
                                tracing::warn!("pub/sub connection dead: an unsubscribe failed");
                                break;
                            }
                        }
                        None => return,
                    },
                    msg = stream.next() => match msg {
                        Some(m) => {
                            heard = tokio::time::Instant::now();
                            probed = None;
                            if m.get_channel_name() == probe {
                                continue;
                            }
                            let Some(inner) = inner.upgrade() else { return };
                            let committed_us = inner
                                .fanout
                                .dispatch(m.get_channel_name(), m.get_payload_bytes());
                            if let Some(at) = committed_us {
                                let us = (crate::metrics::wall_us() - at).max(0);
                                inner.metrics.fanned_out(Duration::from_micros(us as u64));
                            }
                        }
                        None => {
                            tracing::warn!("pub/sub connection closed");
                            break;
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
        }
    });
}
