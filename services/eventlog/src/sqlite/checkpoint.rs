//! Background WAL checkpoints, off the writer's path.
//!
//! By default SQLite checkpoints inside the commit that pushes the WAL past
//! 1000 pages, so one group commit in a few pays for copying the WAL into
//! the database and fsyncing it; that halves the append rate. Instead the
//! writer turns automatic checkpoints off and a checkpointer thread, with its
//! own connection, runs `PRAGMA wal_checkpoint(PASSIVE)` whenever the writer
//! has written a few MiB (and every second anyway). PASSIVE checkpoints run
//! concurrently with the writer's transactions.
//!
//! SQLite restarts the WAL from its beginning only when a write transaction
//! begins on a fully checkpointed WAL, which a background checkpointer racing
//! a busy writer rarely leaves behind. So the checkpointer reports the WAL's
//! size, and when it passes [`MAX_WAL_FRAMES`] the writer checkpoints itself
//! between two transactions (cheap: the background already copied almost
//! everything), which lets its next transaction restart the WAL.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::{schema, Durability};
use crate::LogError;

/// Wake the checkpointer after this many bytes of records were committed.
pub(super) const WAKE_AFTER_BYTES: usize = 4 << 20;

/// Beyond this many WAL frames (pages; 64 MiB with 4 KiB pages) the writer
/// checkpoints itself so the WAL restarts.
pub(super) const MAX_WAL_FRAMES: u64 = 16_384;

/// How often the checkpointer runs without being woken.
const PERIOD: Duration = Duration::from_secs(1);

/// The outcome of `PRAGMA wal_checkpoint`.
pub(super) struct CheckpointResult {
    /// Whether the checkpoint could not run or finish because of locks.
    pub(super) busy: bool,
    /// Frames in the WAL.
    pub(super) wal_frames: u64,
    /// Frames of the WAL copied into the database.
    pub(super) checkpointed: u64,
}

/// Runs `PRAGMA wal_checkpoint(mode)` on `conn`.
pub(super) fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<CheckpointResult> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        let frames = |i| row.get::<_, i64>(i).map(|n| u64::try_from(n).unwrap_or(0));
        Ok(CheckpointResult {
            busy: row.get::<_, i64>(0)? != 0,
            wal_frames: frames(1)?,
            checkpointed: frames(2)?,
        })
    })
}

/// The checkpointer thread and what the writer needs of it.
pub(super) struct Checkpointer {
    wake: SyncSender<()>,
    wal_frames: Arc<AtomicU64>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens the checkpointer's connection and starts its thread.
    pub(super) fn start(path: &Path, durability: Durability) -> Result<Self, LogError> {
        let conn = schema::open_checkpointer(path, durability)?;
        let (wake, woken) = mpsc::sync_channel(1);
        let wal_frames = Arc::new(AtomicU64::new(0));
        let frames = Arc::clone(&wal_frames);
        let thread = std::thread::Builder::new()
            .name("eventlog-checkpoint".into())
            .spawn(move || {
                // Woken, or a period passed; stop once the writer is gone.
                while !matches!(
                    woken.recv_timeout(PERIOD),
                    Err(RecvTimeoutError::Disconnected)
                ) {
                    match checkpoint(&conn, "PASSIVE") {
                        Ok(result) => frames.store(result.wal_frames, Ordering::Relaxed),
                        Err(error) => tracing::warn!(%error, "background checkpoint failed"),
                    }
                }
            })
            .map_err(|e| LogError::storage("cannot start the checkpoint thread", e))?;
        Ok(Self {
            wake,
            wal_frames,
            thread,
        })
    }

    /// Asks for a checkpoint soon; never blocks.
    pub(super) fn wake(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the checkpoint thread is gone");
            }
        }
    }

    /// The WAL size the checkpointer saw last, in frames.
    pub(super) fn wal_frames(&self) -> u64 {
        self.wal_frames.load(Ordering::Relaxed)
    }

    /// Records that the writer checkpointed the whole WAL itself.
    pub(super) fn reset_wal_frames(&self) {
        self.wal_frames.store(0, Ordering::Relaxed);
    }

    /// Stops the thread after its current checkpoint.
    pub(super) fn stop(self) {
        drop(self.wake);
        if self.thread.join().is_err() {
            tracing::warn!("the checkpoint thread panicked");
        }
    }
}
