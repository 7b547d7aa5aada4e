//! The embedded backend: one SQLite database in WAL mode, one writer thread
//! doing group commit, a pool of read connections.

mod checkpoint;
mod reader;
mod schema;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{partition_for, validate_topic_name, EventLog, LogError, Record, StoredRecord};

use checkpoint::Checkpointer;
use reader::ReaderPool;
use writer::{Command, Target, Writer};

/// How far a successful append is guaranteed to survive.
///
/// Both levels survive a crash of the process (`kill -9`) after an append
/// returned `Ok`: SQLite's write-ahead log is written before the commit
/// returns in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every group commit is fsynced; survives power loss
    /// and operating system crashes.
    #[default]
    Fsync,
    /// `synchronous=NORMAL`: the WAL is written but fsynced only at
    /// checkpoints; survives a process crash, may lose the last commits on
    /// power loss.
    ProcessCrashSafe,
}

/// Options of [`SqliteLog::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteLogOptions {
    /// What a successful append survives. Default [`Durability::Fsync`].
    pub durability: Durability,
    /// The most records the writer puts in one transaction (a single larger
    /// append still goes in whole). Default 10 000.
    pub max_batch_records: usize,
    /// How long the writer waits for more requests once it has some, before
    /// committing. Default zero: it takes what is queued right now, which
    /// already batches every request that arrived during the previous commit.
    /// Capped at 10 s.
    pub max_batch_delay: Duration,
    /// The largest record (key plus value, in bytes) accepted. Default 1 MiB,
    /// Kafka's default message size.
    pub max_record_bytes: usize,
    /// How many idle read connections are kept open. Default 4.
    pub read_connections: usize,
}

impl Default for SqliteLogOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            max_batch_records: 10_000,
            max_batch_delay: Duration::ZERO,
            max_record_bytes: 1 << 20,
            read_connections: 4,
        }
    }
}

/// How many requests may wait for the writer before appenders wait to enqueue.
const QUEUE_CAPACITY: usize = 4096;

/// A topic as the front end and the writer see it.
pub(crate) struct TopicState {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) partitions: u32,
    /// The end offset of every partition, published by the writer after each
    /// commit; drives `end_offset` and `wait_beyond`.
    pub(crate) ends: Vec<watch::Sender<u64>>,
}

impl TopicState {
    pub(crate) fn new(id: i64, name: String, ends: &[u64]) -> Self {
        Self {
            id,
            name,
            partitions: ends.len() as u32,
            ends: ends.iter().map(|&end| watch::Sender::new(end)).collect(),
        }
    }
}

/// Topics by name; only the writer inserts, after the creating transaction
/// committed.
#[derive(Default)]
pub(crate) struct Registry {
    topics: RwLock<HashMap<String, Arc<TopicState>>>,
}

impl Registry {
    pub(crate) fn get(&self, name: &str) -> Option<Arc<TopicState>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(crate) fn insert(&self, topic: Arc<TopicState>) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.name.clone(), topic);
    }
}

/// What the front end shares with blocking read tasks (never the writer's
/// channel, so dropping the log stops the writer).
struct Shared {
    registry: Arc<Registry>,
    readers: ReaderPool,
    closed: AtomicBool,
}

/// The embedded, durable [`EventLog`] on SQLite.
///
/// One instance per database file: open it once and share it as
/// `Arc<dyn EventLog>` (or `Arc<SqliteLog>`). (A second instance on the same
/// file would not know the first one's offsets; its appends would fail on
/// the primary key rather than overwrite anything.) Every method needs a
/// tokio runtime. Dropping the log lets the writer thread finish the requests
/// already queued and exit on its own; [`SqliteLog::close`] does the same and
/// waits for it.
pub struct SqliteLog {
    path: PathBuf,
    options: SqliteLogOptions,
    shared: Arc<Shared>,
    requests: mpsc::Sender<Command>,
    writer_done: watch::Receiver<bool>,
}

impl fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLog")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SqliteLog {
    /// The most partitions a topic may have in this backend.
    pub const MAX_PARTITIONS: u32 = 10_000;

    /// Opens (creating if needed) the log stored in the SQLite database at
    /// `path` and starts its writer thread.
    ///
    /// This blocks on file IO (it loads every partition's end offset); from
    /// async code use [`SqliteLog::open_async`].
    pub fn open(path: &Path, options: SqliteLogOptions) -> Result<Self, LogError> {
        let (conn, topics) = schema::open_writer(path, options.durability)?;
        let checkpointer = match Checkpointer::start(path, options.durability) {
            Ok(checkpointer) => {
                schema::disable_autocheckpoint(&conn)?;
                Some(checkpointer)
            }
            Err(error) => {
                tracing::warn!(%error, "checkpointing in the writer's commits instead");
                None
            }
        };
        let registry = Arc::new(Registry::default());
        for topic in &topics {
            registry.insert(Arc::clone(topic));
        }
        let readers = ReaderPool::new(path.to_path_buf(), options.read_connections);
        let (requests, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let (done_tx, writer_done) = watch::channel(false);
        let writer = Writer::new(
            conn,
            Arc::clone(&registry),
            topics,
            checkpointer,
            options.max_batch_records.max(1),
            options.max_batch_delay,
        );
        std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || {
                writer.run(receiver);
                done_tx.send_replace(true);
            })
            .map_err(|e| LogError::storage("cannot start the writer thread", e))?;
        tracing::debug!(path = %path.display(), "event log opened");
        Ok(Self {
            path: path.to_path_buf(),
            options,
            shared: Arc::new(Shared {
                registry,
                readers,
                closed: AtomicBool::new(false),
            }),
            requests,
            writer_done,
        })
    }

    /// [`SqliteLog::open`] on a blocking thread.
    pub async fn open_async(path: PathBuf, options: SqliteLogOptions) -> Result<Self, LogError> {
        tokio::task::spawn_blocking(move || Self::open(&path, options))
            .await
            .map_err(|e| LogError::storage("open task failed", e))?
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &SqliteLogOptions {
        &self.options
    }

    /// Stops the log: requests already queued are written and answered, later
    /// ones fail with [`LogError::Closed`]; returns once the writer thread has
    /// closed the database. Idempotent.
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Fails only if the writer has already stopped.
        let _ = self.requests.send(Command::Close).await;
        let mut done = self.writer_done.clone();
        // An error means the writer thread is gone, which is what we wait for.
        let _ = done.wait_for(|done| *done).await;
    }

    fn check_open(&self) -> Result<(), LogError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            Err(LogError::Closed)
        } else {
            Ok(())
        }
    }

    fn topic(&self, topic: &str) -> Result<Arc<TopicState>, LogError> {
        self.check_open()?;
        self.shared
            .registry
            .get(topic)
            .ok_or_else(|| LogError::UnknownTopic {
                topic: topic.to_owned(),
            })
    }

    fn partition<'t>(
        &self,
        topic: &'t TopicState,
        partition: u32,
    ) -> Result<&'t watch::Sender<u64>, LogError> {
        topic
            .ends
            .get(partition as usize)
            .ok_or_else(|| LogError::PartitionOutOfRange {
                topic: topic.name.clone(),
                partition,
                partitions: topic.partitions,
            })
    }

    fn check_sizes(&self, topic: &str, records: &[Record]) -> Result<(), LogError> {
        crate::check_record_sizes(topic, records, self.options.max_record_bytes)
    }

    /// What a read of `max` records from `from` asks of the database: the topic's id and
    /// the most records to read, never more than are committed (so a huge `max` means
    /// nothing to SQLite and sizes the result exactly); `None` if there is nothing to read.
    fn read_bounds(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Option<(i64, usize)>, LogError> {
        let state = self.topic(topic)?;
        let end = *self.partition(&state, partition)?.borrow();
        if max == 0 || from >= end {
            return Ok(None);
        }
        let max = max.min(usize::try_from(end - from).unwrap_or(usize::MAX));
        Ok(Some((state.id, max)))
    }

    /// Sends a request to the writer and waits for its answer.
    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, LogError>>) -> Command,
    ) -> Result<T, LogError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(command(reply))
            .await
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    /// Runs `f` with a read connection on a blocking thread.
    async fn read_with<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, LogError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || shared.readers.with(f))
            .await
            .map_err(|e| LogError::storage("read task failed", e))?
    }
}

#[async_trait]
impl EventLog for SqliteLog {
    fn max_record_bytes(&self) -> usize {
        self.options.max_record_bytes
    }

    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        self.check_open()?;
        validate_topic_name(topic)?;
        if partitions == 0 || partitions > Self::MAX_PARTITIONS {
            return Err(LogError::InvalidPartitionCount {
                topic: topic.to_owned(),
                partitions,
                max: Self::MAX_PARTITIONS,
            });
        }
        if let Some(existing) = self.shared.registry.get(topic) {
            return if existing.partitions == partitions {
                Ok(())
            } else {
                Err(LogError::TopicExists {
                    topic: topic.to_owned(),
                    partitions: existing.partitions,
                    requested: partitions,
                })
            };
        }
        let name = topic.to_owned();
        self.request(|reply| Command::CreateTopic {
            name,
            partitions,
            reply,
        })
        .await
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        Ok(self.topic(topic)?.partitions)
    }

    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<(u32, u64)>, LogError> {
        let state = self.topic(topic)?;
        self.check_sizes(topic, &records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let partitions = records
            .iter()
            .map(|r| partition_for(&r.key, state.partitions))
            .collect();
        self.request(|reply| Command::Append {
            topic: state,
            target: Target::PerRecord(partitions),
            records,
            reply,
        })
        .await
    }

    async fn append_to(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<Vec<u64>, LogError> {
        let state = self.topic(topic)?;
        self.partition(&state, partition)?;
        self.check_sizes(topic, &records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let placed = self
            .request(|reply| Command::Append {
                topic: state,
                target: Target::Fixed(partition),
                records,
                reply,
            })
            .await?;
        Ok(placed.into_iter().map(|(_, offset)| offset).collect())
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let Some((topic_id, max)) = self.read_bounds(topic, partition, from, max)? else {
            return Ok(Vec::new());
        };
        self.read_with(move |conn| reader::read_records(conn, topic_id, partition, from, max))
            .await
    }

    fn read_blocking(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Option<Result<Vec<StoredRecord>, LogError>> {
        Some(
            self.read_bounds(topic, partition, from, max)
                .and_then(|bounds| match bounds {
                    Some((topic_id, max)) => self
                        .shared
                        .readers
                        .with(|conn| reader::read_records(conn, topic_id, partition, from, max)),
                    None => Ok(Vec::new()),
                }),
        )
    }

    async fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let state = self.topic(topic)?;
        let end = *self.partition(&state, partition)?.borrow();
        Ok(end)
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), LogError> {
        if group.is_empty() {
            return Err(LogError::EmptyGroupName);
        }
        let state = self.topic(topic)?;
        self.partition(&state, partition)?;
        crate::offset_to_i64(next_offset)?;
        let group = group.to_owned();
        self.request(|reply| Command::Commit {
            group,
            topic_id: state.id,
            partition,
            next_offset,
            reply,
        })
        .await
    }

    async fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        if group.is_empty() {
            return Err(LogError::EmptyGroupName);
        }
        let state = self.topic(topic)?;
        self.partition(&state, partition)?;
        let group = group.to_owned();
        let topic_id = state.id;
        self.read_with(move |conn| reader::read_committed(conn, &group, topic_id, partition))
            .await
    }

    async fn wait_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<u64, LogError> {
        let state = self.topic(topic)?;
        let mut end = self.partition(&state, partition)?.subscribe();
        let waited = tokio::time::timeout(timeout, async {
            end.wait_for(|&end| end > offset).await.map(|end| *end)
        })
        .await;
        match waited {
            Ok(Ok(end)) => Ok(end),
            // Timed out (or, impossibly, the topic was dropped): the latest value.
            _ => Ok(*end.borrow()),
        }
    }
}
