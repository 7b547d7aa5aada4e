//! Snapshots bound recovery time: the state of every tenant as of a set of log offsets,
//! written by a background task that tails the log into its own copy of the state (so a
//! snapshot is always exactly the fold of a log prefix). A snapshot is a cache: if it is
//! missing, of another format, or unreadable, recovery replays the whole log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use callgrid_domain::{Agent, Call, Queue};
use callgrid_eventlog::EventLog;
use serde::{Deserialize, Serialize};

use crate::recovery::Recovered;

/// Bumped whenever the snapshot layout or a snapshotted domain type changes (3: a call's
/// outbound part and the agent whose phone placed an internal call; 4: a call out's agent
/// optional and its campaign).
pub const SNAPSHOT_FORMAT: u32 = 4;

/// The state of every tenant after `offsets`.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    format: u32,
    /// Per partition of the events topic: the next offset (everything before is included).
    pub offsets: Vec<u64>,
    /// Events included.
    pub events: u64,
    /// Tenants.
    pub tenants: Vec<TenantSnap>,
}

/// One tenant in a snapshot.
#[derive(Serialize, Deserialize)]
pub struct TenantSnap {
    /// Tenant id.
    pub tenant: String,
    /// Current configuration version.
    pub version: u64,
    /// Configurations (version, YAML): the current one and those calls in progress run.
    pub configs: Vec<(u64, String)>,
    /// Agents.
    pub agents: Vec<Agent>,
    /// Queues (boards are rebuilt).
    pub queues: Vec<Queue>,
    /// Calls in progress.
    pub calls: Vec<Call>,
}

impl Snapshot {
    /// A snapshot of the current format.
    pub fn new(offsets: Vec<u64>, events: u64, tenants: Vec<TenantSnap>) -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            offsets,
            events,
            tenants,
        }
    }

    /// Encodes (postcard).
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        postcard::to_stdvec(self).map_err(|e| e.to_string())
    }

    /// Decodes; `Err` for another format or damaged bytes.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
        let s: Snapshot = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        if s.format != SNAPSHOT_FORMAT {
            return Err(format!(
                "snapshot format {} (this build reads {SNAPSHOT_FORMAT})",
                s.format
            ));
        }
        Ok(s)
    }
}

/// Reads a snapshot file; `None` if absent or unusable (said in the log).
pub fn read(path: &Path) -> Option<Snapshot> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read snapshot, replaying the whole log");
            return None;
        }
    };
    match Snapshot::decode(&bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unusable snapshot, replaying the whole log");
            None
        }
    }
}

/// Writes a snapshot atomically (temporary file, fsync, rename).
pub fn write(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = snapshot.encode().map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// When to snapshot.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// The snapshot file.
    pub path: PathBuf,
    /// Write a new snapshot once this many events came after the last one.
    pub every_events: u64,
    /// How often the snapshotter catches up with the log.
    pub interval: Duration,
}

/// Runs forever: catches up with the log every `interval`, writes a snapshot when enough
/// events have passed since the last one.
pub async fn run(
    log: Arc<dyn EventLog>,
    mut state: Recovered,
    policy: SnapshotPolicy,
    mut last: u64,
) {
    loop {
        if state.events >= last + policy.every_events {
            let snap = state.to_snapshot();
            let path = policy.path.clone();
            let events = state.events;
            let started = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || write(&path, &snap)).await {
                Ok(Ok(())) => {
                    last = events;
                    tracing::info!(
                        events,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot write snapshot"),
                Err(e) => tracing::warn!(error = %e, "snapshot writer failed"),
            }
        }
        tokio::time::sleep(policy.interval).await;
        if let Err(e) = state.catch_up(log.as_ref(), None).await {
            tracing::warn!(error = %e, "snapshotter cannot read the log");
        }
    }
}
