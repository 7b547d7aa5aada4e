//! The projector: consumes the event log and keeps the projections of `callgrid-store` —
//! live views of queues, agents and calls, and history (call detail records, offers, agent
//! state spans, 15-minute interval figures) — with an exactly-once effect: every row
//! records the log position it reflects and an event changes a row only if it comes after
//! it (see `callgrid_store`), and each batch commits its rows with the partition's
//! checkpoint.
//!
//! One loop per partition of the events topic (a tenant's events are all in one partition,
//! so loops never share a row): read up to [`ProjectorOptions::batch`] records from the
//! checkpoint, project them ([`project::Projection`]: it may load rows from the store),
//! publish the changed live views to [`Projector::subscribe`]rs (the supervisor's push
//! channel), queue the changed rows and the new checkpoint for the store, repeat; at the
//! end of the partition, wait for new records. [`Projector::run_on_own_thread`] (what the
//! `callgrid` binary runs) keeps the loops on a thread of their own and reads and projects
//! right there; [`Projector::run`] and [`Projector::catch_up`] project on the runtime's
//! blocking threads.

pub mod project;
pub mod time;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callgrid_eventlog::{EventLog, LogError};
use callgrid_proto::events::v1 as pb;
use callgrid_store::{Batch, Position, ProjectionStore, Row, RowKey, StoreError};
use foldhash::fast::RandomState;
use prost::Message;
use tokio::sync::{broadcast, watch};

use crate::project::{Outcome, Projection, RowSource};

/// The events topic (DESIGN.md).
pub const EVENTS_TOPIC: &str = "callgrid.events.v1";

/// Errors of the projector.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    /// The event log failed.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// The store failed.
    #[error("projection store: {0}")]
    Store(#[from] StoreError),
    /// A projection task failed.
    #[error("projection task: {0}")]
    Task(String),
}

impl From<project::ProjectError> for ProjectorError {
    fn from(e: project::ProjectError) -> Self {
        match e {
            project::ProjectError::Store(s) => ProjectorError::Store(s),
        }
    }
}

/// How the projector works.
#[derive(Clone, Debug)]
pub struct ProjectorOptions {
    /// Most records projected and written in one batch.
    pub batch: usize,
    /// How long one wait for new records lasts before the loop looks again.
    pub idle_wait: Duration,
    /// Rows kept in memory per partition before the cache is dropped (they reload from the
    /// store when touched).
    pub cache_rows: usize,
    /// After a batch shorter than half of [`ProjectorOptions::batch`], wait this long before
    /// reading again, so that a steady trickle of events is written in fewer, larger
    /// transactions (it adds at most this much to the event-to-push latency).
    pub linger: Duration,
    /// Partitions projecting at once. One by default: on a saturated node the projector
    /// then leaves the CPU to routing, and falls behind instead (see docs/DECISIONS.md).
    /// [`Projector::run_on_own_thread`] over the embedded backends projects on its one
    /// thread, so one at a time whatever this says.
    pub projecting: usize,
    /// Least time between the starts of two writes of a partition: the batches projected
    /// meanwhile merge into one transaction, so a row changed many times in that time (an
    /// agent, an interval's figures, a short call) is written once. Live views are pushed
    /// before they are written, so this delays only the store (history and snapshots read
    /// pushed rows first), never the push.
    pub write_every: Duration,
    /// The nice value of the threads of [`Projector::run_on_own_thread`] (Linux, where it
    /// is per thread): above 0, on a node whose cores are all busy the call path
    /// (admission, routing, the journal) gets the CPU first and the projector, a background
    /// reader of the log, falls behind and catches up after. 0 (the default) keeps the
    /// process's priority: at 10 the live views' push latency at half the routing capacity
    /// went from p99 0.3-0.5 s to 1.3-13 s (docs/DECISIONS.md, "The router's gRPC listener
    /// has a runtime of its own").
    pub nice: i32,
    /// Whether the node's call path is behind right now (its load shedder sees a backlog):
    /// while it says so, the projector rests three times as long as each batch took after
    /// it, using at most a quarter of a core, so that the CPU goes to calls first. The live
    /// views fall behind during an overload and catch up after it (docs/DECISIONS.md, "The
    /// projector yields to calls while they wait"). `None`: never rest.
    pub busy: Option<Busy>,
}

/// Tells the projector whether the node's call path is behind ([`ProjectorOptions::busy`]).
#[derive(Clone)]
pub struct Busy(Arc<dyn Fn() -> bool + Send + Sync>);

impl Busy {
    /// `behind` answers, cheaply (it is asked after every batch), whether calls wait.
    pub fn new(behind: impl Fn() -> bool + Send + Sync + 'static) -> Busy {
        Busy(Arc::new(behind))
    }

    /// How long to rest after a batch that took `took`: nothing while calls do not wait.
    fn rest(&self, took: Duration) -> Duration {
        if (self.0)() {
            (took * BUSY_REST_PER_WORK).clamp(BUSY_REST_MIN, BUSY_REST_MAX)
        } else {
            Duration::ZERO
        }
    }
}

impl std::fmt::Debug for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Busy")
    }
}

/// Rest per unit of work while the call path is behind: 3, a quarter of a core at most.
const BUSY_REST_PER_WORK: u32 = 3;
/// Least rest after a batch while the call path is behind (a short batch still yields).
const BUSY_REST_MIN: Duration = Duration::from_millis(5);
/// Most rest after a batch: the live views still move during a long overload.
const BUSY_REST_MAX: Duration = Duration::from_millis(250);

impl Default for ProjectorOptions {
    fn default() -> Self {
        ProjectorOptions {
            batch: 5_000,
            idle_wait: Duration::from_millis(500),
            cache_rows: 200_000,
            linger: Duration::from_millis(20),
            projecting: 1,
            write_every: Duration::from_millis(500),
            nice: 0,
            busy: None,
        }
    }
}

/// Live views changed by one batch, for the push channel.
#[derive(Clone, Debug)]
pub struct Changes {
    /// The rows (live views only: queues, agents, calls), each with its tenant.
    pub rows: Arc<Vec<Row>>,
    /// Per tenant, the time of the oldest event of the batch (event-to-push latency).
    pub oldest_event_ms: Arc<HashMap<String, u64>>,
}

/// How far the projector is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Records projected since start.
    pub projected: u64,
    /// Records that could not be projected (logged with their position).
    pub skipped: u64,
    /// Per partition: the next offset to project.
    pub next: Vec<u64>,
}

/// The projector over a log and a store.
pub struct Projector {
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    options: ProjectorOptions,
    changes: broadcast::Sender<Changes>,
    progress: Mutex<Progress>,
    progress_tx: watch::Sender<Progress>,
    /// Live rows pushed whose batch is not yet committed, by key (the latest version).
    unwritten: Mutex<HashMap<RowKey, Row, RandomState>>,
    /// Bounds the partitions projecting at once ([`ProjectorOptions::projecting`]).
    projecting: tokio::sync::Semaphore,
}

/// Rows from the store, read from a blocking thread.
struct StoreSource {
    store: Arc<dyn ProjectionStore>,
    rt: tokio::runtime::Handle,
}

impl RowSource for StoreSource {
    fn load(&mut self, key: &RowKey) -> Result<Option<Row>, StoreError> {
        match self.store.get_blocking(key) {
            Some(r) => r,
            None => self.rt.block_on(self.store.get(key)),
        }
    }
}

impl Projector {
    /// A projector of `log` into `store`.
    pub fn new(
        log: Arc<dyn EventLog>,
        store: Arc<dyn ProjectionStore>,
        options: ProjectorOptions,
    ) -> Arc<Projector> {
        let (changes, _) = broadcast::channel(1024);
        let (progress_tx, _) = watch::channel(Progress::default());
        let projecting = tokio::sync::Semaphore::new(options.projecting.max(1));
        Arc::new(Projector {
            log,
            store,
            options,
            changes,
            progress: Mutex::new(Progress::default()),
            progress_tx,
            unwritten: Mutex::new(HashMap::default()),
            projecting,
        })
    }

    /// The store it writes.
    pub fn store(&self) -> &Arc<dyn ProjectionStore> {
        &self.store
    }

    /// Live views as they change, batch by batch (a lagging receiver misses batches and
    /// should take a new snapshot).
    pub fn subscribe(&self) -> broadcast::Receiver<Changes> {
        self.changes.subscribe()
    }

    /// Progress as it moves.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress_tx.subscribe()
    }

    /// Drops every projection (a rebuild follows with [`Projector::catch_up`]).
    pub async fn clear(&self) -> Result<(), ProjectorError> {
        self.store.clear().await?;
        Ok(())
    }

    /// Projects every partition up to the end the log has now, then returns the records
    /// projected.
    pub async fn catch_up(self: &Arc<Self>) -> Result<u64, ProjectorError> {
        let partitions = self.partitions().await?;
        let mut tasks = Vec::new();
        for p in 0..partitions {
            let me = Arc::clone(self);
            tasks.push(tokio::spawn(async move {
                let end = me.log.end_offset(EVENTS_TOPIC, p).await?;
                me.partition_loop(p, Some(end), false).await
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.map_err(|e| ProjectorError::Task(e.to_string()))??;
        }
        Ok(total)
    }

    /// Projects for ever (until an error or the task is dropped).
    pub async fn run(self: &Arc<Self>) -> Result<(), ProjectorError> {
        self.run_partitions(false).await
    }

    /// Projects every partition for ever; `inline`: read and project on this thread (see
    /// `partition_loop`).
    async fn run_partitions(self: &Arc<Self>, inline: bool) -> Result<(), ProjectorError> {
        let partitions = self.partitions().await?;
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..partitions {
            let me = Arc::clone(self);
            tasks.spawn(async move { me.partition_loop(p, None, inline).await });
        }
        while let Some(r) = tasks.join_next().await {
            r.map_err(|e| ProjectorError::Task(e.to_string()))??;
        }
        Ok(())
    }

    /// [`Projector::run`] on a thread of its own (`projector`, with a runtime of its own),
    /// until an error or until the returned future is dropped.
    ///
    /// Partitions take turns on that thread, and each reads its records and projects them
    /// right there when the log and the store can read without the async runtime (the
    /// embedded ones): a batch then costs no hop between threads and waits behind no other
    /// task of the process. On a loaded node those hops and waits, not the projection
    /// itself, were most of the event-to-push latency (docs/DECISIONS.md). It still uses at
    /// most one core, as [`ProjectorOptions::projecting`] of 1 does.
    pub async fn run_on_own_thread(self: &Arc<Self>) -> Result<(), ProjectorError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let me = Arc::clone(self);
        let nice = self.options.nice;
        std::thread::Builder::new()
            .name("projector".into())
            .spawn(move || {
                let mut done = done;
                background(nice);
                let outcome = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .thread_name("projector-io")
                    .on_thread_start(move || background(nice))
                    .build()
                {
                    Ok(rt) => rt.block_on(async {
                        tokio::select! {
                            r = me.run_partitions(true) => r,
                            // whoever waited is gone: stop
                            () = done.closed() => Ok(()),
                        }
                    }),
                    Err(e) => Err(ProjectorError::Task(format!(
                        "cannot start the projector's runtime: {e}"
                    ))),
                };
                let _ = done.send(outcome);
            })
            .map_err(|e| ProjectorError::Task(format!("cannot start the projector thread: {e}")))?;
        result
            .await
            .map_err(|_| ProjectorError::Task("the projector thread stopped".into()))?
    }

    async fn partitions(&self) -> Result<u32, ProjectorError> {
        let n = self.log.partition_count(EVENTS_TOPIC).await?;
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.next.resize(n as usize, 0);
        Ok(n)
    }

    /// Projects partition `p` until `until` (or for ever); returns the records projected.
    ///
    /// A batch's live rows are pushed as soon as it is projected; its rows go to the
    /// partition's [`Writes`], which writes them while the next batches are read and
    /// projected. Until they commit, the live rows are kept in
    /// [`Projector::unwritten_live`] for snapshots, and the progress does not count the
    /// batch (whoever waits for the progress then reads the store and finds it).
    ///
    /// `inline`: the loop runs on a thread of its own ([`Projector::run_on_own_thread`]), so
    /// it reads and projects right there if the log and the store can (else it uses the
    /// blocking pool, as always).
    async fn partition_loop(
        self: &Arc<Self>,
        p: u32,
        until: Option<u64>,
        inline: bool,
    ) -> Result<u64, ProjectorError> {
        let inline_projection = inline && self.store.reads_blocking();
        let mut next = self.store.checkpoint(p).await?.unwrap_or(0);
        // the cache is trimmed past `cache_rows`, checked before each batch: room for that
        // many and a batch's worth more, so it never grows (see `Projection::with_capacity`)
        let mut projection = Projection::with_capacity(
            StoreSource {
                store: Arc::clone(&self.store),
                rt: tokio::runtime::Handle::current(),
            },
            self.options.cache_rows + 4 * self.options.batch,
        );
        projection.starting_at(next);
        let mut projection = Some(projection);
        let mut writes = Writes::new(p, self.options.write_every);
        let mut done = 0u64;
        let mut short = false;
        loop {
            if short && until.is_none() {
                tokio::time::sleep(self.options.linger).await;
            }
            if until.is_some_and(|end| next >= end) {
                writes.flush(self).await?;
                self.note(p, next, 0, 0);
                return Ok(done);
            }
            let started = Instant::now();
            let blocking = inline
                .then(|| {
                    self.log
                        .read_blocking(EVENTS_TOPIC, p, next, self.options.batch)
                })
                .flatten();
            let records = match blocking {
                Some(records) => records?,
                None => {
                    self.log
                        .read(EVENTS_TOPIC, p, next, self.options.batch)
                        .await?
                }
            };
            if records.is_empty() {
                if until.is_some() {
                    // the end moved back (a recreated topic): nothing more to read
                    writes.flush(self).await?;
                    self.note(p, next, 0, 0);
                    return Ok(done);
                }
                // caught up: what is queued goes to the store now, while new records are
                // read and pushed (waiting for the write here would hold them back)
                writes.pump(self, true).await?;
                let wait = if writes.pending() {
                    self.options.idle_wait.min(IDLE_WRITE_POLL)
                } else {
                    self.options.idle_wait
                };
                self.log.wait_beyond(EVENTS_TOPIC, p, next, wait).await?;
                continue;
            }
            short = records.len() < self.options.batch / 2;
            let last = records.last().map_or(next, |r| r.offset + 1);
            let mut oldest_event_ms: HashMap<String, u64> = HashMap::new();
            for r in &records {
                let t = String::from_utf8_lossy(&r.key);
                let ms = r.timestamp_ms.max(0) as u64;
                match oldest_event_ms.get_mut(t.as_ref()) {
                    Some(m) => *m = (*m).min(ms),
                    None => {
                        oldest_event_ms.insert(t.into_owned(), ms);
                    }
                }
            }
            let mut proj = projection
                .take()
                .ok_or_else(|| ProjectorError::Task("lost projection".into()))?;
            // a row the cache forgets reloads from the store: only once every batch is in it
            let trim = proj.cached() > self.options.cache_rows;
            if trim {
                writes.flush(self).await?;
            }
            let permit = self
                .projecting
                .acquire()
                .await
                .map_err(|e| ProjectorError::Task(e.to_string()))?;
            let work = move || {
                if trim {
                    proj.forget(next);
                }
                let mut skipped = 0u64;
                for r in &records {
                    let pos = Position {
                        partition: p,
                        offset: r.offset,
                    };
                    let outcome = match pb::EventEnvelope::decode(r.value.as_slice()) {
                        Ok(env) => proj.apply(pos, &env)?,
                        Err(e) => Outcome::Skipped(format!("malformed envelope: {e}")),
                    };
                    if let Outcome::Skipped(why) = outcome {
                        skipped += 1;
                        tracing::warn!(partition = p, offset = r.offset, reason = %why, "event not projected");
                    }
                }
                let rows = proj.take();
                Ok::<_, ProjectorError>((proj, rows, skipped))
            };
            let (proj, rows, skipped) = if inline_projection {
                work()?
            } else {
                tokio::task::spawn_blocking(work)
                    .await
                    .map_err(|e| ProjectorError::Task(e.to_string()))??
            };
            drop(permit);
            projection = Some(proj);
            let live: Vec<Row> = rows.iter().filter(|r| r.is_live()).cloned().collect();
            if !live.is_empty() {
                {
                    let mut u = self.unwritten.lock().unwrap_or_else(|e| e.into_inner());
                    for r in &live {
                        u.insert(r.key(), r.clone());
                    }
                }
                // nobody listening is fine
                let _ = self.changes.send(Changes {
                    rows: Arc::new(live),
                    oldest_event_ms: Arc::new(oldest_event_ms),
                });
            }
            let projected = last - next;
            writes.queue(rows, last, projected, skipped);
            if writes.queued_rows() > QUEUE_ROWS {
                // the store falls behind: wait for it rather than hold ever more rows
                writes.flush(self).await?;
            } else {
                writes.pump(self, false).await?;
            }
            done += projected;
            next = last;
            if let Some(busy) = &self.options.busy {
                let rest = busy.rest(started.elapsed());
                if !rest.is_zero() {
                    tokio::time::sleep(rest).await;
                }
            }
        }
    }

    /// Live rows of `tenant` already pushed whose batch is not yet in the store (a snapshot
    /// lays them over the store's views: [`callgrid_store::LiveViews::overlay`]).
    pub fn unwritten_live(&self, tenant: &str) -> Vec<Row> {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| k.tenant() == tenant)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The live row `key` if it was pushed and its batch is not yet in the store.
    pub fn unwritten_row(&self, key: &RowKey) -> Option<Row> {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Tenants whose configuration row was pushed and is not yet in the store.
    pub fn unwritten_tenants(&self) -> Vec<String> {
        self.unwritten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter_map(|k| match k {
                RowKey::Tenant(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn note(&self, p: u32, next: u64, projected: u64, skipped: u64) {
        let mut g = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = g.next.get_mut(p as usize) {
            *n = next;
        }
        g.projected += projected;
        g.skipped += skipped;
        let snapshot = g.clone();
        drop(g);
        self.progress_tx.send_replace(snapshot);
    }
}

/// Rows queued for the store past which a partition waits for its writes.
const QUEUE_ROWS: usize = 50_000;

/// How often a caught-up partition looks again while its writes are not all in the store.
const IDLE_WRITE_POLL: Duration = Duration::from_millis(20);

/// The store writes of one partition: one write in flight, started at most every
/// [`ProjectorOptions::write_every`]; the batches projected meanwhile are queued and merged
/// (a row changed by several batches is written once, as the last one left it), so the
/// busier the projector, the fewer and larger the transactions. Rows and checkpoints commit
/// in log order.
struct Writes {
    p: u32,
    every: Duration,
    /// When the last write started.
    started: Option<Instant>,
    in_flight: Option<tokio::task::JoinHandle<Result<(), ProjectorError>>>,
    rows: HashMap<RowKey, Row, RandomState>,
    /// (next offset, records, skipped) of the queued batches; `None`: nothing queued.
    upto: Option<(u64, u64, u64)>,
}

impl Writes {
    fn new(p: u32, every: Duration) -> Writes {
        Writes {
            p,
            every,
            started: None,
            in_flight: None,
            rows: HashMap::default(),
            upto: None,
        }
    }

    /// Queues a batch's rows, ending at offset `next`.
    fn queue(&mut self, rows: Vec<Row>, next: u64, projected: u64, skipped: u64) {
        for r in rows {
            self.rows.insert(r.key(), r);
        }
        let (_, n, s) = self.upto.unwrap_or((next, 0, 0));
        self.upto = Some((next, n + projected, s + skipped));
    }

    fn queued_rows(&self) -> usize {
        self.rows.len()
    }

    /// Starts writing the queue unless a write is still in flight or, unless `now`, the last
    /// one started less than [`Writes::every`] ago.
    async fn pump(&mut self, me: &Arc<Projector>, now: bool) -> Result<(), ProjectorError> {
        if self.in_flight.as_ref().is_some_and(|w| !w.is_finished()) {
            return Ok(());
        }
        self.finish().await?;
        if !now && self.started.is_some_and(|t| t.elapsed() < self.every) {
            return Ok(());
        }
        self.start(me);
        Ok(())
    }

    /// Whether rows are queued or a write is in flight.
    fn pending(&self) -> bool {
        self.in_flight.is_some() || self.upto.is_some()
    }

    /// Waits until everything queued is in the store.
    async fn flush(&mut self, me: &Arc<Projector>) -> Result<(), ProjectorError> {
        self.finish().await?;
        self.start(me);
        self.finish().await
    }

    /// Waits for the write in flight, if any.
    async fn finish(&mut self) -> Result<(), ProjectorError> {
        match self.in_flight.take() {
            Some(w) => w.await.map_err(|e| ProjectorError::Task(e.to_string()))?,
            None => Ok(()),
        }
    }

    /// Writes the queue (nothing must be in flight).
    fn start(&mut self, me: &Arc<Projector>) {
        let Some((next, projected, skipped)) = self.upto.take() else {
            return;
        };
        self.started = Some(Instant::now());
        // drained, the map keeps its room for the next window (a fresh one would grow and
        // rehash, or be allocated and paged in anew each window)
        let mut rows = Vec::with_capacity(self.rows.len());
        let mut live: Vec<(RowKey, Position)> = Vec::new();
        for (key, row) in self.rows.drain() {
            if row.is_live() {
                live.push((key, row.pos()));
            }
            rows.push(row);
        }
        let me = Arc::clone(me);
        let p = self.p;
        self.in_flight = Some(tokio::spawn(async move {
            me.store
                .write(Batch {
                    rows,
                    checkpoints: vec![(p, next)],
                })
                .await?;
            {
                // pushed rows now in the store, unless a later batch changed them again
                let mut u = me.unwritten.lock().unwrap_or_else(|e| e.into_inner());
                for (key, pos) in live {
                    if u.get(&key).is_some_and(|w| w.pos() == pos) {
                        u.remove(&key);
                    }
                }
            }
            me.note(p, next, projected, skipped);
            Ok(())
        }));
    }
}

/// Waits until `progress` has reached `ends` (per partition), printing a progress bar to
/// stderr every `every` (for `callgrid projector --rebuild`).
pub async fn print_progress(
    mut progress: watch::Receiver<Progress>,
    ends: Vec<u64>,
    every: Duration,
) {
    let total: u64 = ends.iter().sum();
    let started = Instant::now();
    loop {
        let p = progress.borrow_and_update().clone();
        let done: u64 = p.next.iter().zip(&ends).map(|(n, e)| (*n).min(*e)).sum();
        let pct = if total == 0 {
            100.0
        } else {
            100.0 * done as f64 / total as f64
        };
        let width = 40usize;
        let filled = ((pct / 100.0) * width as f64).round() as usize;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
        eprint!(
            "\r[{}{}] {done}/{total} events ({pct:.1} %), {rate:.0} events/s, {} skipped ",
            "#".repeat(filled.min(width)),
            "-".repeat(width - filled.min(width)),
            p.skipped
        );
        if done >= total {
            eprintln!();
            return;
        }
        tokio::select! {
            r = progress.changed() => if r.is_err() { eprintln!(); return; },
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Lowers the calling thread's priority to nice `nice` (Linux keeps the nice value per
/// thread); nothing elsewhere, or when `nice` is 0. A refusal (no permission to go below
/// the current value) leaves the thread as it is, which only costs the call path its
/// precedence.
fn background(nice: i32) {
    #[cfg(target_os = "linux")]
    if nice != 0 {
        let me = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(me), nice) {
            tracing::debug!(error = %e, nice, "cannot lower the projector thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_projector_rests_while_calls_wait() {
        let waiting = Arc::new(AtomicBool::new(false));
        let w = waiting.clone();
        let busy = Busy::new(move || w.load(Ordering::Relaxed));
        let batch = Duration::from_millis(20);
        assert_eq!(busy.rest(batch), Duration::ZERO);
        waiting.store(true, Ordering::Relaxed);
        assert_eq!(busy.rest(batch), Duration::from_millis(60));
        assert_eq!(busy.rest(Duration::ZERO), BUSY_REST_MIN);
        assert_eq!(busy.rest(Duration::from_secs(1)), BUSY_REST_MAX);
        waiting.store(false, Ordering::Relaxed);
        assert_eq!(busy.rest(batch), Duration::ZERO);
    }
}
