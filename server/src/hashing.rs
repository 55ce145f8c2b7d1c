//! Password hashing with bounded concurrency and bounded memory.
//!
//! Each argon2 check holds about 19 MiB while it runs. Run on tokio's blocking pool, every
//! simultaneous login got a thread of its own, and each thread's allocator kept its 19 MiB
//! afterwards: a burst of logins (even for emails that exist nowhere) grew the process by
//! hundreds of megabytes for good. Here:
//! - a fixed set of [`HashPool::new`]`(n)` threads does every hash, so at most `n` are
//!   computed at once and at most `n` allocator arenas ever hold hashing memory;
//! - a caller waits for a free thread at most [`MAX_WAIT`], and at most [`QUEUE_PER_THREAD`]
//!   callers per thread wait at all; beyond either, [`Busy`] (the HTTP layer answers `503
//!   unavailable` with `Retry-After`), so a flood costs queue slots, not memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

/// Longest a login waits for a hashing thread before it is turned away.
pub const MAX_WAIT: Duration = Duration::from_secs(3);
/// Callers allowed to wait, per hashing thread.
pub const QUEUE_PER_THREAD: usize = 16;

/// Every hashing thread was busy for too long, or too many callers were already waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of hashing threads. Dropping the last handle lets the threads end.
pub struct HashPool {
    jobs: mpsc::Sender<Job>,
    permits: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

impl HashPool {
    /// Starts `threads` hashing threads (at least one).
    pub fn new(threads: usize) -> Arc<HashPool> {
        Self::with_wait(threads, MAX_WAIT)
    }

    /// Like [`HashPool::new`] with another longest wait (tests).
    pub fn with_wait(threads: usize, max_wait: Duration) -> Arc<HashPool> {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Arc::new(HashPool {
            jobs: tx,
            permits: Semaphore::new(threads),
            waiting: AtomicUsize::new(0),
            max_waiting: threads * QUEUE_PER_THREAD,
            max_wait,
        })
    }

    /// Runs `f` on a hashing thread once one is free; [`Busy`] if none frees up in time.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = match self.permits.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    return Err(Busy);
                }
                let got = tokio::time::timeout(self.max_wait, self.permits.acquire()).await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                match got {
                    Ok(Ok(p)) => p,
                    _ => return Err(Busy),
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        if self.jobs.send(job).is_err() {
            return Err(Busy);
        }
        let out = rx.await.map_err(|_| Busy);
        drop(permit);
        out
    }

    /// Callers waiting for a thread right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_at_most_n_jobs_at_once() {
        let pool = HashPool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let pool = pool.clone();
            let (running, peak) = (running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(()));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callers_beyond_the_queue_are_turned_away_at_once() {
        let pool = HashPool::with_wait(1, Duration::from_secs(30));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = release_rx.recv();
                })
                .await
            })
        };
        // Fill the waiting queue.
        let mut waiters = Vec::new();
        while pool.waiting() < QUEUE_PER_THREAD {
            let pool = pool.clone();
            waiters.push(tokio::spawn(async move { pool.run(|| ()).await }));
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| ()).await, Err(Busy));
        release_tx.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(()));
        for w in waiters {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn a_caller_waits_no_longer_than_the_limit() {
        let pool = HashPool::with_wait(1, Duration::from_millis(50));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = release_rx.recv();
                })
                .await
            })
        };
        while pool.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| ()).await, Err(Busy));
        release_tx.send(()).unwrap();
        assert_eq!(blocker.await.unwrap(), Ok(()));
    }
}
