//! The status writer: status ops are committed to SQLite by a thread of their own, in groups,
//! so no request holds the state lock, or a tokio worker, while SQLite writes.
//!
//! Guarantees:
//! - A status op is answered only after its commit, and memory takes the change only after it
//!   too: nothing unacknowledged is ever shown, and a failed commit changes nothing.
//! - Per agent, an op is planned, committed and applied before the next one starts (the
//!   agent's [`Turns`]), so memory and disk agree on the order of each agent's changes, and a
//!   retry of an op id waits for the first one's answer.
//! - Ops of different agents that arrive together share one transaction (group commit, at
//!   most [`MAX_GROUP`]); a failed transaction fails each of its ops, none half-applied.
//! - Requests that only read memory (heartbeats, `/v1/me`, the widget) never wait for a
//!   commit.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use std::sync::mpsc;

use rustc_hash::FxHasher;
use tokio::sync::{Mutex, MutexGuard, oneshot};

use crate::backend::{BackendError, BackendResult, storage};
use crate::store::{StatusRecord, Store, StoreResult};

/// Most ops in one transaction.
pub(super) const MAX_GROUP: usize = 256;
/// Independent turns; agents that share one wait for each other, nothing worse.
const STRIPES: usize = 64;

struct Job {
    op: StatusRecord,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The handle requests commit through; the thread stops when it is dropped.
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(super) fn start(store: Arc<Store>) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("presence-writer".into())
            .spawn(move || run(&store, &rx))?;
        Ok(Writer { tx })
    }

    /// Commits one op (with whatever others are waiting) and returns once it is durable.
    pub(super) async fn commit(&self, op: StatusRecord) -> BackendResult<()> {
        let (done, answer) = oneshot::channel();
        let stopped = || BackendError::unavailable("the server is shutting down", 1);
        self.tx.send(Job { op, done }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?.map_err(storage)
    }
}

fn run(store: &Store, rx: &mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let result = store.record_status_ops(jobs.iter().map(|j| &j.op));
        let failure = result.err().map(|e| e.to_string());
        for job in jobs {
            let answer = match &failure {
                None => Ok(()),
                Some(why) => Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                    Some(format!("group commit failed: {why}")),
                )),
            };
            let _ = job.done.send(answer);
        }
    }
}

/// One write turn per agent (striped): held from an op's plan to its apply.
pub(super) struct Turns {
    stripes: Box<[Mutex<()>]>,
}

impl Turns {
    pub(super) fn new() -> Turns {
        Turns {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for the agent's turn.
    pub(super) async fn take(&self, agent_id: &str) -> MutexGuard<'_, ()> {
        let h = BuildHasherDefault::<FxHasher>::default().hash_one(agent_id);
        self.stripes[(h as usize) % STRIPES].lock().await
    }
}
