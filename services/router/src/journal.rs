//! The journal: every actor hands its events here. Enqueueing is synchronous and ordered,
//! so an event enqueued before a message is sent is ahead of everything that message causes
//! (the log is always a causally closed prefix). One writer task appends whatever is queued
//! as one batch (group commit on top of the log's own) and publishes how far the log is
//! durable; effects are acknowledged outside the actor system only once their ticket is
//! durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callgrid_eventlog::{EventLog, LogError, Record};
use tokio::sync::{mpsc, watch};

/// A position in the journal's queue: durable once `durable() >= ticket`.
pub type Ticket = u64;

/// The topic every domain event goes to (DESIGN.md).
pub const EVENTS_TOPIC: &str = "callgrid.events.v1";

/// Records enqueued together: their ticket, when, and the records.
type Entry = (Ticket, Instant, Vec<Record>);

struct Queue {
    next: Ticket,
    tx: mpsc::UnboundedSender<Entry>,
}

/// The shared front of the event log.
pub struct Journal {
    queue: Mutex<Queue>,
    durable: watch::Receiver<Ticket>,
    healthy: Arc<AtomicBool>,
    counters: Arc<Counters>,
    max_record: usize,
    /// When the write in progress began (ms since `epoch`), 0 when none is.
    writing_since: Arc<AtomicU64>,
    epoch: std::time::Instant,
    /// The shortest write of the last minute (µs): see [`Journal::write_floor`].
    write_floor_us: Arc<AtomicU64>,
}

/// A write that has not finished after this long means the log is not answering (a broker
/// down: librdkafka would retry for minutes): the journal says it is unhealthy meanwhile.
pub const STALLED: Duration = Duration::from_secs(5);

/// What the journal has written.
#[derive(Default, Debug)]
pub struct Counters {
    /// Records made durable.
    pub events: AtomicU64,
    /// Appends (group commits) made.
    pub batches: AtomicU64,
    /// Records the log refused for good (too large...), dropped so that the rest goes on;
    /// never expected (actors check the size first): each is logged as an error.
    pub refused: AtomicU64,
}

impl Journal {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(log: Arc<dyn EventLog>) -> Arc<Journal> {
        Journal::start_watched(log, None)
    }

    /// Starts the writer task; `backlog` is told how long each batch waited in the queue
    /// beyond the write floor (a batch that arrives while a write runs waits for it: group
    /// commit; writes growing beyond the floor mean records come faster than the log takes
    /// them: the batches grow, and every write with them), for load shedding.
    pub fn start_watched(
        log: Arc<dyn EventLog>,
        backlog: Option<callgrid_overload::Source>,
    ) -> Arc<Journal> {
        let max_record = log.max_record_bytes();
        let (tx, rx) = mpsc::unbounded_channel();
        let (durable_tx, durable) = watch::channel(0);
        let healthy = Arc::new(AtomicBool::new(true));
        let counters = Arc::new(Counters::default());
        let epoch = std::time::Instant::now();
        let writing_since = Arc::new(AtomicU64::new(0));
        let write_floor_us = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(
            log,
            rx,
            durable_tx,
            Health {
                healthy: healthy.clone(),
                writing_since: writing_since.clone(),
                epoch,
            },
            counters.clone(),
            backlog,
            write_floor_us.clone(),
        ));
        Arc::new(Journal {
            queue: Mutex::new(Queue { next: 1, tx }),
            durable,
            healthy,
            counters,
            max_record,
            writing_since,
            epoch,
            write_floor_us,
        })
    }

    /// The shortest write (group commit) of the last minute: what a record waits at least
    /// to become durable on this log whatever the load (a broker's round trip, an fsync).
    /// Not the last write: under overload the batches, and every write with them, grow with
    /// the backlog, and that growth is what load shedding must see.
    pub fn write_floor(&self) -> Duration {
        Duration::from_micros(self.write_floor_us.load(Ordering::Relaxed))
    }

    /// The largest record the log takes (actors refuse commands whose events exceed it).
    pub fn max_record_bytes(&self) -> usize {
        self.max_record
    }

    /// Enqueues records; returns their ticket. An empty batch gets the ticket of what was
    /// enqueued before it (durable when that is).
    pub fn append(&self, records: Vec<Record>) -> Ticket {
        let mut q = match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        };
        if records.is_empty() {
            return q.next - 1;
        }
        let ticket = q.next;
        q.next += 1;
        if q.tx.send((ticket, Instant::now(), records)).is_err() {
            tracing::error!(ticket, "journal writer is gone, events not written");
            self.healthy.store(false, Ordering::Relaxed);
        }
        ticket
    }

    /// The highest durable ticket.
    pub fn durable(&self) -> Ticket {
        *self.durable.borrow()
    }

    /// Waits until `ticket` is durable.
    pub async fn wait(&self, ticket: Ticket) -> Result<(), JournalClosed> {
        if self.durable() >= ticket {
            return Ok(());
        }
        let mut rx = self.durable.clone();
        rx.wait_for(|d| *d >= ticket)
            .await
            .map(|_| ())
            .map_err(|_| JournalClosed)
    }

    /// A receiver of the durable ticket (for streams that wait without borrowing `self`).
    pub fn durable_watch(&self) -> watch::Receiver<Ticket> {
        self.durable.clone()
    }

    /// Records and batches written so far.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.counters.events.load(Ordering::Relaxed),
            self.counters.batches.load(Ordering::Relaxed),
        )
    }

    /// False after a write failed and has not yet succeeded on retry, or while a write has
    /// been in progress for [`STALLED`] or more.
    pub fn healthy(&self) -> bool {
        if !self.healthy.load(Ordering::Relaxed) {
            return false;
        }
        let since = self.writing_since.load(Ordering::Relaxed);
        since == 0
            || (self.epoch.elapsed().as_millis() as u64).saturating_sub(since)
                < STALLED.as_millis() as u64
    }

    /// Waits until `ticket` is durable, at most `limit`: `Ok(false)` when it is not yet.
    pub async fn wait_at_most(
        &self,
        ticket: Ticket,
        limit: Duration,
    ) -> Result<bool, JournalClosed> {
        match tokio::time::timeout(limit, self.wait(ticket)).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }
}

/// Whether an append error can never succeed on retry (the records themselves are wrong).
fn permanent(e: &LogError) -> bool {
    matches!(
        e,
        LogError::RecordTooLarge { .. }
            | LogError::InvalidTopicName { .. }
            | LogError::EmptyTopicName
            | LogError::UnknownTopic { .. }
    )
}

/// What the writer tells of its health.
struct Health {
    healthy: Arc<AtomicBool>,
    writing_since: Arc<AtomicU64>,
    epoch: std::time::Instant,
}

impl Health {
    fn store(&self, ok: bool, o: Ordering) {
        self.healthy.store(ok, o);
    }
}

/// Appends a batch; returns the records written. Transient failures are retried (nothing
/// is acknowledged until it is written); a batch the log refuses for good is written record
/// by record, and a record refused for good is dropped with an error, so one bad record
/// never stalls every tenant behind it.
async fn write(
    log: &dyn EventLog,
    batch: Vec<Record>,
    healthy: &Health,
    counters: &Counters,
) -> u64 {
    let started = (healthy.epoch.elapsed().as_millis() as u64).max(1);
    healthy.writing_since.store(started, Ordering::Relaxed);
    let n = write_all(log, batch, healthy, counters).await;
    healthy.writing_since.store(0, Ordering::Relaxed);
    n
}

async fn write_all(
    log: &dyn EventLog,
    batch: Vec<Record>,
    healthy: &Health,
    counters: &Counters,
) -> u64 {
    let n = batch.len() as u64;
    let mut backoff = Duration::from_millis(10);
    loop {
        match log.append(EVENTS_TOPIC, batch.clone()).await {
            Ok(_) => {
                healthy.store(true, Ordering::Relaxed);
                return n;
            }
            Err(e) if permanent(&e) => {
                tracing::error!(error = %e, records = batch.len(), "event append refused for good, writing record by record");
                break;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "event append failed, retrying");
                healthy.store(false, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    let mut written = 0;
    for record in batch {
        let mut backoff = Duration::from_millis(10);
        loop {
            match log.append(EVENTS_TOPIC, vec![record.clone()]).await {
                Ok(_) => {
                    healthy.store(true, Ordering::Relaxed);
                    written += 1;
                    break;
                }
                Err(e) if permanent(&e) => {
                    counters.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, bytes = record.value.len(), "event dropped: the log refuses it for good");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "event append failed, retrying");
                    healthy.store(false, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    written
}

/// The shortest write of the last minute, kept in six 10-second buckets.
struct WriteFloor {
    epoch: Instant,
    /// (bucket number, shortest write in it)
    buckets: [(u64, Duration); 6],
}

impl WriteFloor {
    const BUCKET: Duration = Duration::from_secs(10);

    fn new() -> WriteFloor {
        WriteFloor {
            epoch: Instant::now(),
            buckets: [(u64::MAX, Duration::ZERO); 6],
        }
    }

    fn bucket(&self, at: Instant) -> u64 {
        (at.duration_since(self.epoch).as_millis() / Self::BUCKET.as_millis()) as u64
    }

    /// Counts one write; returns the floor now.
    fn observe(&mut self, took: Duration) -> Duration {
        self.observe_at(took, Instant::now())
    }

    fn observe_at(&mut self, took: Duration, at: Instant) -> Duration {
        let n = self.bucket(at);
        let slot = &mut self.buckets[(n % 6) as usize];
        if slot.0 != n {
            *slot = (n, took);
        } else if took < slot.1 {
            slot.1 = took;
        }
        self.get_at(at)
    }

    /// The shortest write of the buckets of the last minute at `at`; zero before the first
    /// write.
    fn get_at(&self, at: Instant) -> Duration {
        let n = self.bucket(at);
        self.buckets
            .iter()
            .filter(|(b, _)| *b != u64::MAX && *b + 6 > n)
            .map(|(_, d)| *d)
            .min()
            .unwrap_or(Duration::ZERO)
    }
}

/// The journal's writer stopped.
#[derive(Debug, thiserror::Error)]
#[error("the event journal stopped")]
pub struct JournalClosed;

async fn writer(
    log: Arc<dyn EventLog>,
    mut rx: mpsc::UnboundedReceiver<Entry>,
    durable: watch::Sender<Ticket>,
    healthy: Health,
    counters: Arc<Counters>,
    backlog: Option<callgrid_overload::Source>,
    write_floor_us: Arc<AtomicU64>,
) {
    const MAX_BATCH: usize = 20_000;
    let mut floor = WriteFloor::new();
    let mut floor_now = Duration::ZERO;
    while let Some((mut last, enqueued, mut batch)) = rx.recv().await {
        if let Some(b) = &backlog {
            b.record(enqueued.elapsed().saturating_sub(floor_now));
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((t, _, mut more)) => {
                    batch.append(&mut more);
                    last = t;
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let n = write(log.as_ref(), batch, &healthy, &counters).await;
        floor_now = floor.observe(started.elapsed());
        write_floor_us.store(floor_now.as_micros() as u64, Ordering::Relaxed);
        counters.events.fetch_add(n, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        let _ = durable.send(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_floor_is_the_shortest_write_of_the_last_minute() {
        let mut f = WriteFloor::new();
        let t0 = f.epoch;
        assert_eq!(f.get_at(t0), Duration::ZERO);
        assert_eq!(f.observe_at(3 * MS, t0), 3 * MS);
        // an overload's writes grow with its batches: the floor stays where it was
        for s in 1..50 {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(f.observe_at(400 * MS, at), 3 * MS, "at {s} s");
        }
        // a minute after the short write, the long writes are the floor
        let later = t0 + Duration::from_secs(61);
        assert_eq!(f.observe_at(500 * MS, later), 400 * MS);
        // and a short write brings it down at once
        assert_eq!(f.observe_at(2 * MS, later), 2 * MS);
    }

    #[test]
    fn buckets_older_than_a_minute_do_not_count() {
        let mut f = WriteFloor::new();
        let t0 = f.epoch;
        f.observe_at(MS, t0);
        assert_eq!(f.get_at(t0 + Duration::from_secs(59)), MS);
        assert_eq!(f.get_at(t0 + Duration::from_secs(60)), Duration::ZERO);
    }
}
