//! Every durable change ([`Write`]) is committed to SQLite in groups, off the state lock, by
//! whichever request finds no commit running (the leader): no thread of ours sits between a
//! request and its commit.
//!
//! Guarantees:
//! - A change is answered only after its commit, and memory takes it only after it too:
//!   nothing unacknowledged is ever shown, and a failed commit changes nothing.
//! - Per agent (and per account for admin edits), a change is planned, committed and applied
//!   before the next one starts (the [`Turns`]), so memory and disk agree on the order of
//!   changes, and a retry of an op id waits for the first one's answer.
//! - Changes that arrive while a commit runs wait for it, then go in the next transaction
//!   together (group commit, at most [`MAX_GROUP`]); a failed transaction fails each of its
//!   changes, none half-applied; a change refused on its own (a unique constraint) fails
//!   alone.
//! - The leader commits inside `block_in_place`, so the tokio worker it runs on hands its other
//!   tasks to another thread while SQLite writes (on a current-thread runtime, the tests', it
//!   commits on the blocking pool instead), then yields once so it goes on on a worker: a
//!   change fanned out to 10,000 streams from the thread left without one queued each
//!   stream through the runtime's shared queue (ADR 10). Requests that only read memory (heartbeats,
//!   `/v1/me`, the widget) never wait for a commit.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHasher;
use tokio::sync::{Mutex, MutexGuard, oneshot};

use crate::backend::{BackendError, BackendResult, storage};
use crate::store::{Store, StoreResult, Write};

/// Most changes in one transaction.
pub(super) const MAX_GROUP: usize = 256;
/// Independent turns; agents that share one wait for each other, nothing worse.
const STRIPES: usize = 64;

struct Job {
    write: Write,
    /// The answer, and when its group was durable.
    done: oneshot::Sender<(StoreResult<()>, Instant)>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A leader is committing; new jobs wait for it to pick them up.
    leading: bool,
}

/// Commits changes; cheap to share.
pub(super) struct Writer {
    store: Arc<Store>,
    queue: parking_lot::Mutex<Queue>,
    /// Counts committed groups: event streams wait on it for new events.
    committed: tokio::sync::watch::Sender<u64>,
}

impl Writer {
    pub(super) fn new(store: Arc<Store>) -> Writer {
        Writer {
            store,
            queue: parking_lot::Mutex::new(Queue::default()),
            committed: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes after every committed group.
    pub(super) fn commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Commits one change (with whatever others are waiting) and returns once it is durable.
    pub(super) async fn commit(self: &Arc<Self>, write: Write) -> BackendResult<()> {
        self.commit_at(write).await.map(|_| ())
    }

    /// [`Writer::commit`], answering when the change was durable.
    pub(super) async fn commit_at(self: &Arc<Self>, write: Write) -> BackendResult<Instant> {
        let (done, answer) = oneshot::channel();
        let lead = {
            let mut q = self.queue.lock();
            q.jobs.push(Job { write, done });
            !std::mem::replace(&mut q.leading, true)
        };
        if lead {
            let me = self.clone();
            let on_multi_thread = tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread;
            if on_multi_thread {
                tokio::task::block_in_place(|| me.lead());
                // The worker this task ran on has handed its queue to another thread, and
                // this thread now runs the task alone: everything it woke from here (every
                // stream a change reaches) would go through the runtime's shared injection
                // queue, one lock each. Back on a worker first.
                tokio::task::yield_now().await;
            } else {
                let _ = tokio::task::spawn_blocking(move || me.lead()).await;
            }
        }
        let stopped = || BackendError::unavailable("the server is shutting down", 1);
        let (answer, at) = answer.await.map_err(|_| stopped())?;
        answer.map_err(storage).map(|()| at)
    }

    /// Commits groups until none is waiting, then steps down.
    fn lead(&self) {
        loop {
            let jobs = {
                let mut q = self.queue.lock();
                if q.jobs.is_empty() {
                    q.leading = false;
                    return;
                }
                let n = q.jobs.len().min(MAX_GROUP);
                q.jobs.drain(..n).collect::<Vec<_>>()
            };
            let writes: Vec<&Write> = jobs.iter().map(|j| &j.write).collect();
            let answers = self.store.commit_writes(&writes);
            let at = Instant::now();
            self.committed.send_modify(|n| *n = n.wrapping_add(1));
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.done.send((answer, at));
            }
        }
    }
}

/// One write turn per key (striped): held from a change's plan to its apply.
pub(super) struct Turns {
    stripes: Box<[Mutex<()>]>,
}

impl Turns {
    pub(super) fn new() -> Turns {
        Turns {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for the key's turn (an agent id, an account id or slug).
    pub(super) async fn take(&self, key: &str) -> MutexGuard<'_, ()> {
        let h = BuildHasherDefault::<FxHasher>::default().hash_one(key);
        self.stripes[(h as usize) % STRIPES].lock().await
    }

    /// Waits for every key's turn (each stripe once, in order, so two callers never
    /// deadlock): an edit that may change any agent of an account.
    pub(super) async fn take_every(&self) -> Vec<MutexGuard<'_, ()>> {
        let mut held = Vec::with_capacity(STRIPES);
        for s in self.stripes.iter() {
            held.push(s.lock().await);
        }
        held
    }
}
