//! Checkpoints of the embedded store's write-ahead log, off the request path.
//!
//! Guarantees: a checkpoint runs on a connection of its own, never inside a commit; it
//! holds writers back only when the log has grown past [`RESTART_CHECKPOINT_FRAMES`]; a
//! failed checkpoint leaves its pending writes counted, so the next one tries again.

use std::sync::atomic::Ordering;

use super::{Store, StoreResult, connect};

/// After a passive checkpoint, a log still longer than this many frames (about 16 MiB) gets a
/// `RESTART` checkpoint, which briefly holds writers back so the log can start over. Only
/// sustained writes with no quiet moment between checkpoints get there.
const RESTART_CHECKPOINT_FRAMES: i64 = 4096;

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Frames in the log when it ran.
    pub log_frames: i64,
    /// Of those, how many are now in the database file.
    pub checkpointed_frames: i64,
    /// Whether it had to hold writers back (`RESTART`) to let the log start over.
    pub restarted: bool,
}

impl Store {
    /// Copies committed log frames into the database file, on the checkpointing connection.
    /// Writers are not held back (`PASSIVE`) unless the log has grown past
    /// [`RESTART_CHECKPOINT_FRAMES`]. Does nothing when nothing was written since the last one.
    /// Blocking (it syncs the file): call it off the async runtime.
    pub fn checkpoint(&self) -> StoreResult<Checkpoint> {
        let Some(path) = &self.path else {
            return Ok(Checkpoint::default());
        };
        let mut guard = self.checkpointer.lock();
        let pending = self.writes.swap(0, Ordering::Relaxed);
        if pending == 0 {
            return Ok(Checkpoint::default());
        }
        let result = (|| {
            if guard.is_none() {
                let c = connect(path, self.vfs.as_deref())?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                *guard = Some(c);
            }
            let c = guard.as_ref().expect("opened above");
            let run = |mode: &str| {
                c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
            };
            let (log_frames, checkpointed_frames) = run("PASSIVE")?;
            if log_frames > RESTART_CHECKPOINT_FRAMES && checkpointed_frames < log_frames {
                let (log_frames, checkpointed_frames) = run("RESTART")?;
                return Ok(Checkpoint {
                    log_frames,
                    checkpointed_frames,
                    restarted: true,
                });
            }
            Ok(Checkpoint {
                log_frames,
                checkpointed_frames,
                restarted: false,
            })
        })();
        if result.is_err() {
            // Try again next time.
            self.writes.fetch_add(pending, Ordering::Relaxed);
        }
        result
    }
}
