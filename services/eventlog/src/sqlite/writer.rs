//! The writer thread: the one owner of the write connection, doing group
//! commit.
//!
//! It blocks for the first request, takes everything else already queued (up
//! to `max_batch_records` records, optionally lingering `max_batch_delay` for
//! more), writes the whole batch in one transaction, commits, publishes the
//! new end offsets and only then answers every request of the batch.
//!
//! Each request is validated before any of its rows is written, so one bad
//! request fails alone. Should the transaction itself fail, the batch is
//! retried request by request, so only the requests that really cannot be
//! written fail.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{CachedStatement, Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::{self, Checkpointer, MAX_WAL_FRAMES, WAKE_AFTER_BYTES};
use super::schema::{INSERT_RECORD, INSERT_TOPIC, UPSERT_OFFSET};
use super::{Registry, TopicState};
use crate::{LogError, Record};

/// The longest linger accepted; longer `max_batch_delay`s are cut to it.
const MAX_LINGER: Duration = Duration::from_secs(10);

/// Where the records of an append go.
pub(super) enum Target {
    /// All to one partition.
    Fixed(u32),
    /// One partition per record, computed by the caller from the keys.
    PerRecord(Vec<u32>),
}

/// A request to the writer.
pub(super) enum Command {
    CreateTopic {
        name: String,
        partitions: u32,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    Append {
        topic: Arc<TopicState>,
        target: Target,
        records: Vec<Record>,
        reply: oneshot::Sender<Result<Vec<(u32, u64)>, LogError>>,
    },
    Commit {
        group: String,
        topic_id: i64,
        partition: u32,
        next_offset: u64,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    /// Stop accepting requests; finish the queued ones, then exit.
    Close,
}

impl Command {
    /// How much of a batch the request uses.
    fn weight(&self) -> usize {
        match self {
            Command::Append { records, .. } => records.len(),
            _ => 1,
        }
    }

    /// Roughly how many bytes the request adds to the WAL.
    fn bytes(&self) -> usize {
        match self {
            Command::Append { records, .. } => records
                .iter()
                .map(|r| r.key.len() + r.value.len() + 32)
                .sum(),
            _ => 64,
        }
    }

    fn answer(self, outcome: Result<Outcome, LogError>) {
        // A send fails only if the caller stopped waiting; what was written
        // stays written (as with a Kafka producer whose caller went away).
        match self {
            Command::CreateTopic { reply, .. } | Command::Commit { reply, .. } => {
                let _ = reply.send(outcome.map(|_| ()));
            }
            Command::Append { reply, .. } => {
                let _ = reply.send(outcome.and_then(|outcome| match outcome {
                    Outcome::Placed(placed) => Ok(placed),
                    _ => Err(LogError::Storage(
                        "internal error: append answered without offsets".into(),
                    )),
                }));
            }
            Command::Close => {}
        }
    }
}

/// The result of one request within a committed batch.
enum Outcome {
    Done,
    Created(Arc<TopicState>),
    Placed(Vec<(u32, u64)>),
}

/// The writer's view of a topic: the next offset of every partition.
struct Cursor {
    topic: Arc<TopicState>,
    next: Vec<u64>,
}

pub(super) struct Writer {
    conn: Connection,
    registry: Arc<Registry>,
    cursors: HashMap<i64, Cursor>,
    max_batch_records: usize,
    max_batch_delay: Duration,
    /// `None` if it could not start; SQLite then checkpoints in the commits.
    checkpointer: Option<Checkpointer>,
    /// Bytes committed since the checkpointer was last woken.
    unchecked_bytes: usize,
    /// Writes slow enough to be reported.
    slow: SlowWrites,
}

/// A group commit slower than this is reported (at most every [`SlowWrites::EVERY`]): calls
/// wait behind it, and the load shedder sees their wait.
const SLOW_COMMIT: Duration = Duration::from_millis(50);

/// Reports slow group commits and the writer's own checkpoints without flooding the log.
#[derive(Default)]
struct SlowWrites {
    /// Slow commits since the last report, the slowest of them and its batch's records.
    count: u64,
    worst: Duration,
    worst_records: usize,
    reported: Option<Instant>,
}

impl SlowWrites {
    const EVERY: Duration = Duration::from_secs(10);

    fn commit(&mut self, took: Duration, records: usize) {
        if took < SLOW_COMMIT {
            return;
        }
        self.count += 1;
        if took > self.worst {
            self.worst = took;
            self.worst_records = records;
        }
        let now = Instant::now();
        if self
            .reported
            .is_none_or(|at| now.duration_since(at) >= Self::EVERY)
        {
            tracing::warn!(
                slow_commits = self.count,
                slowest_ms = self.worst.as_millis() as u64,
                records = self.worst_records,
                "event log: group commits slower than {} ms; calls wait behind them",
                SLOW_COMMIT.as_millis()
            );
            *self = SlowWrites {
                reported: Some(now),
                ..SlowWrites::default()
            };
        }
    }
}

fn sql(context: &'static str) -> impl Fn(rusqlite::Error) -> LogError {
    move |e| LogError::storage(context, e)
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        registry: Arc<Registry>,
        topics: Vec<Arc<TopicState>>,
        checkpointer: Option<Checkpointer>,
        max_batch_records: usize,
        max_batch_delay: Duration,
    ) -> Self {
        let cursors = topics
            .into_iter()
            .map(|topic| {
                let next = topic.ends.iter().map(|end| *end.borrow()).collect();
                (topic.id, Cursor { topic, next })
            })
            .collect();
        Self {
            conn,
            registry,
            cursors,
            max_batch_records,
            max_batch_delay: max_batch_delay.min(MAX_LINGER),
            checkpointer,
            unchecked_bytes: 0,
            slow: SlowWrites::default(),
        }
    }

    /// Serves requests until the channel is closed (by [`Command::Close`]) or
    /// every sender is gone, and the queue is empty.
    pub(super) fn run(mut self, mut requests: mpsc::Receiver<Command>) {
        let linger = self.linger_runtime();
        let mut batch = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            let mut weight = 0;
            accept(first, &mut batch, &mut weight, &mut requests);
            while weight < self.max_batch_records {
                match requests.try_recv() {
                    Ok(command) => accept(command, &mut batch, &mut weight, &mut requests),
                    Err(_) => break,
                }
            }
            if let Some(runtime) = &linger {
                let max = self.max_batch_records;
                let deadline = tokio::time::Instant::now() + self.max_batch_delay;
                runtime.block_on(async {
                    while weight < max {
                        match tokio::time::timeout_at(deadline, requests.recv()).await {
                            Ok(Some(command)) => {
                                accept(command, &mut batch, &mut weight, &mut requests);
                            }
                            _ => break,
                        }
                    }
                });
            }
            if !batch.is_empty() {
                self.checkpoint_if_wal_too_long();
                let started = Instant::now();
                self.process(&mut batch);
                self.slow.commit(started.elapsed(), weight);
            }
        }
        self.shutdown();
    }

    /// A runtime for timed waits on the channel, only if lingering is asked for.
    fn linger_runtime(&self) -> Option<tokio::runtime::Runtime> {
        if self.max_batch_delay.is_zero() {
            return None;
        }
        match tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
        {
            Ok(runtime) => Some(runtime),
            Err(error) => {
                tracing::warn!(%error, "cannot build the linger timer, committing without delay");
                None
            }
        }
    }

    /// Checkpoints in the writer when the WAL has grown past
    /// [`MAX_WAL_FRAMES`], so that the next transaction restarts it.
    fn checkpoint_if_wal_too_long(&mut self) {
        let Some(checkpointer) = &self.checkpointer else {
            return;
        };
        if checkpointer.wal_frames() <= MAX_WAL_FRAMES {
            return;
        }
        let started = Instant::now();
        let done = checkpoint::checkpoint(&self.conn, "PASSIVE");
        let took = started.elapsed();
        if took >= SLOW_COMMIT {
            tracing::info!(
                took_ms = took.as_millis() as u64,
                "event log: the writer checkpointed the WAL itself before a commit"
            );
        }
        match done {
            Ok(result) if !result.busy && result.checkpointed >= result.wal_frames => {
                checkpointer.reset_wal_frames();
            }
            // Busy (the checkpointer is at it, or a reader holds an old
            // snapshot): try again before the next batch.
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "checkpoint failed"),
        }
    }

    fn shutdown(mut self) {
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
        // Fold the WAL into the database so the files left behind are compact.
        if let Err(error) = checkpoint::checkpoint(&self.conn, "TRUNCATE") {
            tracing::debug!(%error, "final checkpoint failed");
        }
        if let Err((_, error)) = self.conn.close() {
            tracing::warn!(%error, "cannot close the event log database");
        }
        tracing::debug!("event log writer stopped");
    }

    /// Writes a batch and answers its requests.
    fn process(&mut self, batch: &mut Vec<Command>) {
        if let Some(checkpointer) = &self.checkpointer {
            self.unchecked_bytes += batch.iter().map(Command::bytes).sum::<usize>();
            if self.unchecked_bytes >= WAKE_AFTER_BYTES {
                checkpointer.wake();
                self.unchecked_bytes = 0;
            }
        }
        match self.apply(batch) {
            Ok(outcomes) => {
                for (command, outcome) in batch.drain(..).zip(outcomes) {
                    command.answer(outcome);
                }
            }
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, requests = batch.len(), "group commit failed, writing the requests one by one");
                for command in batch.drain(..) {
                    let outcome =
                        self.apply(std::slice::from_ref(&command))
                            .and_then(|mut outcomes| {
                                outcomes.pop().unwrap_or_else(|| {
                                    Err(LogError::Storage("internal error: no outcome".into()))
                                })
                            });
                    command.answer(outcome);
                }
            }
            Err(error) => {
                tracing::error!(%error, "event log write failed");
                for command in batch.drain(..) {
                    command.answer(Err(error.clone()));
                }
            }
        }
    }

    /// Writes `commands` in one transaction. On success returns one outcome
    /// per command, with the in-memory state already updated and the end
    /// offsets published; on failure nothing is written and the in-memory
    /// state is as before.
    fn apply(&mut self, commands: &[Command]) -> Result<Vec<Result<Outcome, LogError>>, LogError> {
        // The next offset of every partition touched, as it was before.
        let mut before = HashMap::new();
        let mut outcomes = Vec::with_capacity(commands.len());
        let written = write(
            &mut self.conn,
            &self.registry,
            &mut self.cursors,
            commands,
            &mut before,
            &mut outcomes,
        );
        if let Err(error) = written {
            for ((topic_id, partition), next) in before {
                if let Some(slot) = self
                    .cursors
                    .get_mut(&topic_id)
                    .and_then(|cursor| cursor.next.get_mut(partition as usize))
                {
                    *slot = next;
                }
            }
            return Err(error);
        }
        for outcome in &outcomes {
            if let Ok(Outcome::Created(topic)) = outcome {
                self.registry.insert(Arc::clone(topic));
                self.cursors.insert(
                    topic.id,
                    Cursor {
                        topic: Arc::clone(topic),
                        next: vec![0; topic.partitions as usize],
                    },
                );
                tracing::info!(topic = %topic.name, partitions = topic.partitions, "topic created");
            }
        }
        for (topic_id, partition) in before.into_keys() {
            let Some(cursor) = self.cursors.get(&topic_id) else {
                continue;
            };
            if let (Some(&next), Some(end)) = (
                cursor.next.get(partition as usize),
                cursor.topic.ends.get(partition as usize),
            ) {
                end.send_replace(next);
            }
        }
        Ok(outcomes)
    }
}

/// Adds a request to the batch (or, for `Close`, stops accepting new ones).
fn accept(
    command: Command,
    batch: &mut Vec<Command>,
    weight: &mut usize,
    requests: &mut mpsc::Receiver<Command>,
) {
    if let Command::Close = command {
        requests.close();
        return;
    }
    *weight += command.weight();
    batch.push(command);
}

/// The transaction of one batch. Each command's logical errors go to
/// `outcomes`; an `Err` fails the whole transaction.
fn write(
    conn: &mut Connection,
    registry: &Registry,
    cursors: &mut HashMap<i64, Cursor>,
    commands: &[Command],
    before: &mut HashMap<(i64, u32), u64>,
    outcomes: &mut Vec<Result<Outcome, LogError>>,
) -> Result<(), LogError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("cannot begin transaction"))?;
    {
        let mut insert = tx
            .prepare_cached(INSERT_RECORD)
            .map_err(sql("cannot prepare append"))?;
        // Topics created earlier in this batch.
        let mut created: HashMap<&str, u32> = HashMap::new();
        for command in commands {
            let outcome = match command {
                Command::Append {
                    topic,
                    target,
                    records,
                    ..
                } => append(&mut insert, cursors, before, topic, target, records)?,
                Command::CreateTopic {
                    name, partitions, ..
                } => {
                    let existing = registry
                        .get(name)
                        .map(|topic| topic.partitions)
                        .or_else(|| created.get(name.as_str()).copied());
                    match existing {
                        Some(existing) if existing == *partitions => Ok(Outcome::Done),
                        Some(existing) => Err(LogError::TopicExists {
                            topic: name.clone(),
                            partitions: existing,
                            requested: *partitions,
                        }),
                        None => {
                            tx.prepare_cached(INSERT_TOPIC)
                                .and_then(|mut stmt| stmt.execute((name, partitions)))
                                .map_err(sql("cannot create topic"))?;
                            created.insert(name, *partitions);
                            let zeros = vec![0; *partitions as usize];
                            Ok(Outcome::Created(Arc::new(TopicState::new(
                                tx.last_insert_rowid(),
                                name.clone(),
                                &zeros,
                            ))))
                        }
                    }
                }
                Command::Commit {
                    group,
                    topic_id,
                    partition,
                    next_offset,
                    ..
                } => match i64::try_from(*next_offset) {
                    Ok(next) => {
                        tx.prepare_cached(UPSERT_OFFSET)
                            .and_then(|mut stmt| stmt.execute((group, topic_id, partition, next)))
                            .map_err(sql("cannot commit consumer offset"))?;
                        Ok(Outcome::Done)
                    }
                    Err(_) => Err(LogError::InvalidOffset {
                        offset: *next_offset,
                    }),
                },
                Command::Close => Ok(Outcome::Done),
            };
            outcomes.push(outcome);
        }
    }
    tx.commit().map_err(sql("cannot commit transaction"))
}

/// Inserts the records of one append; validates everything first so a bad
/// request writes nothing.
fn append(
    insert: &mut CachedStatement<'_>,
    cursors: &mut HashMap<i64, Cursor>,
    before: &mut HashMap<(i64, u32), u64>,
    topic: &TopicState,
    target: &Target,
    records: &[Record],
) -> Result<Result<Outcome, LogError>, LogError> {
    let Some(cursor) = cursors.get_mut(&topic.id) else {
        return Ok(Err(LogError::UnknownTopic {
            topic: topic.name.clone(),
        }));
    };
    let partitions = cursor.next.len();
    let out_of_range = |partition: u32| LogError::PartitionOutOfRange {
        topic: topic.name.clone(),
        partition,
        partitions: topic.partitions,
    };
    match target {
        Target::Fixed(partition) if *partition as usize >= partitions => {
            return Ok(Err(out_of_range(*partition)));
        }
        Target::PerRecord(targets) if targets.len() != records.len() => {
            return Ok(Err(LogError::Storage(
                "internal error: one partition per record expected".into(),
            )));
        }
        Target::PerRecord(targets) => {
            if let Some(&partition) = targets.iter().find(|&&p| p as usize >= partitions) {
                return Ok(Err(out_of_range(partition)));
            }
        }
        Target::Fixed(_) => {}
    }

    let mut placed = Vec::with_capacity(records.len());
    let mut last_partition = None;
    for (i, record) in records.iter().enumerate() {
        let partition = match target {
            Target::Fixed(partition) => *partition,
            Target::PerRecord(targets) => targets.get(i).copied().unwrap_or_default(),
        };
        // Validated above; failing here fails the transaction, never half a request.
        let slot = cursor
            .next
            .get_mut(partition as usize)
            .ok_or_else(|| out_of_range(partition))?;
        let offset = *slot;
        if last_partition != Some(partition) {
            if let Entry::Vacant(entry) = before.entry((topic.id, partition)) {
                entry.insert(offset);
            }
            last_partition = Some(partition);
        }
        let sql_offset = i64::try_from(offset)
            .map_err(|_| LogError::Storage(format!("partition {partition} is full")))?;
        insert
            .execute((
                topic.id,
                partition,
                sql_offset,
                record.timestamp_ms,
                record.key.as_slice(),
                record.value.as_slice(),
            ))
            .map_err(sql("cannot append record"))?;
        *slot = offset + 1;
        placed.push((partition, offset));
    }
    Ok(Ok(Outcome::Placed(placed)))
}
