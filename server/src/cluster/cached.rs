//! A value read from the stores at most once per interval, one read at a time.
//!
//! Guarantees: however many `/metrics` scrapes or `/healthz` calls arrive, the stores see at
//! most one read in flight and at most one per interval for each cached value; a caller
//! waits for at most the read in flight, then shares its answer. An answer is never older
//! than the interval plus one read.

use std::future::Future;

use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

pub struct Cached<T> {
    every: Duration,
    last: Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Cached<T> {
    pub fn new(every: Duration) -> Cached<T> {
        Cached {
            every,
            last: Mutex::new(None),
        }
    }

    /// The value read within the interval, or a new one from `read`.
    pub async fn get<F, Fut>(&self, read: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, v)) = &*last
            && at.elapsed() < self.every
        {
            return v.clone();
        }
        let v = read().await;
        *last = Some((Instant::now(), v.clone()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn many_callers_share_one_read_per_interval() {
        let cached = Arc::new(Cached::new(Duration::from_secs(1)));
        let reads = Arc::new(AtomicU32::new(0));
        let read = |reads: Arc<AtomicU32>| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            reads.fetch_add(1, Ordering::SeqCst) + 1
        };
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (cached, reads) = (cached.clone(), reads.clone());
                tokio::spawn(async move { cached.get(|| read(reads)).await })
            })
            .collect();
        for c in callers {
            assert_eq!(c.await.unwrap(), 1, "every caller shares the first read");
        }
        assert_eq!(
            cached.get(|| read(reads.clone())).await,
            1,
            "within the interval"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            cached.get(|| read(reads.clone())).await,
            2,
            "read again after it"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
