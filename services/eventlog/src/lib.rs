//! The durable event log of callgrid, with Kafka semantics.
//!
//! # Semantics
//!
//! The log is organised like Kafka:
//!
//! - a **topic** has a fixed number of **partitions**, chosen when it is
//!   created ([`EventLog::create_topic`] is idempotent for the same count and
//!   refuses another count);
//! - each partition is an append-only sequence of records numbered by
//!   **offsets** `0, 1, 2, …` without gaps; the offset the next record will get
//!   is the partition's **end offset** (Kafka's high watermark);
//! - [`EventLog::append`] routes every record by its key with
//!   [`partition_for`], Kafka's default murmur2 partitioner, so a key lands on
//!   the same partition whichever backend runs; [`EventLog::append_to`] names
//!   the partition explicitly. Records of one call that share a partition get
//!   consecutive offsets in input order. When the call returns `Ok` the records
//!   are durable;
//! - **consumer groups** store, per topic partition, the committed offset: the
//!   *next* offset to consume, as Kafka does. A commit may move backwards;
//! - [`EventLog::wait_beyond`] lets a tailing reader wait for new records
//!   without polling (a fetch with max wait on Kafka).
//!
//! Every implementation is used as `Arc<dyn EventLog>` and must pass the same
//! conformance suite, the `conformance` module behind the crate feature of
//! the same name (see the `conformance_tests!` macro there).
//!
//! # The embedded backend and its group commit
//!
//! [`SqliteLog`] keeps the log in one SQLite database in WAL mode. Exactly
//! one writer thread owns the write connection. Every `append`, `commit` and
//! `create_topic` call sends its request over a channel together with a
//! one-shot reply channel and waits. The writer takes the first queued request,
//! then everything else queued at that moment (up to
//! [`SqliteLogOptions::max_batch_records`]), writes it all in **one**
//! transaction, commits it (one fsync with [`Durability::Fsync`]) and only then
//! answers every waiter. Under load many callers therefore share one fsync,
//! and an idle log answers a lone caller at once: there is no artificial
//! linger unless [`SqliteLogOptions::max_batch_delay`] asks for one.
//!
//! The writer keeps the next offset of every partition in memory, so an
//! append never queries the database. After each commit it publishes the new
//! end offsets through `tokio::sync::watch` channels, which answer
//! [`EventLog::end_offset`] and wake [`EventLog::wait_beyond`]. Reads run on a
//! small pool of read-only connections inside `tokio::task::spawn_blocking`,
//! so async callers never block on SQLite. WAL checkpoints (copying the WAL
//! into the database file) run on a separate checkpointer thread rather than
//! inside the writer's commits, which roughly doubles the append rate.
//!
//! A successful append survives a crash of the process with either
//! [`Durability`]; with [`Durability::Fsync`] it also survives power loss.
//! A request whose caller stops waiting (its future dropped) may still be
//! written, as with a Kafka producer.

mod error;
mod kafka;
mod partitioner;
mod sqlite;

#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(feature = "conformance")]
pub mod tansu;

use std::time::Duration;

use async_trait::async_trait;

pub use error::LogError;
pub use kafka::{KafkaLog, KafkaLogOptions};
pub use partitioner::{murmur2, partition_for};
pub use sqlite::{Durability, SqliteLog, SqliteLogOptions};

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules, which every backend enforces
/// so that a name valid on one is valid on all: 1 to
/// [`MAX_TOPIC_NAME_LEN`] characters of `[a-zA-Z0-9._-]`, neither `.` nor
/// `..`.
pub fn validate_topic_name(topic: &str) -> Result<(), LogError> {
    let invalid = |reason| {
        Err(LogError::InvalidTopicName {
            topic: topic.to_owned(),
            reason,
        })
    };
    if topic.is_empty() {
        return Err(LogError::EmptyTopicName);
    }
    if topic.len() > MAX_TOPIC_NAME_LEN {
        return invalid("longer than 249 characters");
    }
    if topic == "." || topic == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// An offset as Kafka stores it (a signed 64-bit integer), [`LogError::InvalidOffset`] above.
pub(crate) fn offset_to_i64(offset: u64) -> Result<i64, LogError> {
    i64::try_from(offset).map_err(|_| LogError::InvalidOffset { offset })
}

/// [`LogError::RecordTooLarge`] for the first record whose key plus value exceeds `max`.
pub(crate) fn check_record_sizes(
    topic: &str,
    records: &[Record],
    max: usize,
) -> Result<(), LogError> {
    match records
        .iter()
        .map(|r| r.key.len().saturating_add(r.value.len()))
        .find(|&size| size > max)
    {
        Some(size) => Err(LogError::RecordTooLarge {
            topic: topic.to_owned(),
            size,
            max,
        }),
        None => Ok(()),
    }
}

/// A record to append: the key chooses the partition in [`EventLog::append`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Record {
    /// The partitioning key (may be empty; an empty key is hashed like any other).
    pub key: Vec<u8>,
    /// The payload.
    pub value: Vec<u8>,
    /// Milliseconds since the Unix epoch, set by the producer (Kafka's
    /// `CreateTime`). Use values `>= 1` to stay portable to Kafka (librdkafka sends 0 as
    /// "now").
    pub timestamp_ms: i64,
}

impl Record {
    /// Builds a record from anything that converts into byte vectors.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, timestamp_ms: i64) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            timestamp_ms,
        }
    }
}

/// A record as stored in the log, with its position.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredRecord {
    /// The partition holding the record.
    pub partition: u32,
    /// The record's offset within its partition.
    pub offset: u64,
    /// The partitioning key.
    pub key: Vec<u8>,
    /// The payload.
    pub value: Vec<u8>,
    /// The producer's timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A durable, partitioned, offset-addressed log with consumer-group offsets.
///
/// Object safe; use it as `Arc<dyn EventLog>`. Every method validates its
/// input and reports errors as [`LogError`]; none panics on bad input.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Creates `topic` with `partitions` partitions.
    ///
    /// Idempotent: creating an existing topic with the same partition count is
    /// `Ok`; with another count it is [`LogError::TopicExists`]. Topic names
    /// follow Kafka's rules (1 to 249 characters of `[a-zA-Z0-9._-]`, neither
    /// `.` nor `..`).
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError>;

    /// The number of partitions of `topic`; [`LogError::UnknownTopic`] if it
    /// does not exist.
    async fn partition_count(&self, topic: &str) -> Result<u32, LogError>;

    /// Appends `records`, each to `partition_for(&record.key, partition_count)`.
    ///
    /// Returns `(partition, offset)` per record, in input order. Records of one
    /// call that share a partition get consecutive offsets in input order
    /// (records of concurrent calls may interleave between them). When this
    /// returns `Ok` the records are durable. An empty batch returns an empty
    /// vector (after checking that the topic exists).
    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<(u32, u64)>, LogError>;

    /// Like [`EventLog::append`], but every record goes to `partition`.
    ///
    /// Returns the offsets in input order; they are consecutive. An
    /// out-of-range partition is [`LogError::PartitionOutOfRange`] and writes
    /// nothing.
    async fn append_to(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<Vec<u64>, LogError>;

    /// Up to `max` records of `partition` with `offset >= from`, in offset
    /// order; empty if there is none yet (including `from` past the end).
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError>;

    /// The largest record (key plus value) this log takes; [`LogError::RecordTooLarge`]
    /// beyond it. Writers check it before they commit to an event (a record that can never
    /// be written must fail its request, not stall a queue).
    fn max_record_bytes(&self) -> usize {
        1 << 20
    }

    /// [`EventLog::read`] for a caller on a thread of its own that may block (the
    /// projector's), without a hop through the async runtime; `None` if this backend has
    /// no such path (then the caller uses `read`). The same records as `read`, or the
    /// same error.
    fn read_blocking(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Option<Result<Vec<StoredRecord>, LogError>> {
        let _ = (topic, partition, from, max);
        None
    }

    /// The offset the next appended record of `partition` will get (Kafka's
    /// high watermark); 0 for an empty partition.
    async fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError>;

    /// Stores the committed offset of consumer group `group` for a topic
    /// partition: the **next** offset to consume. It may move backwards, and
    /// is not checked against the end offset (as in Kafka).
    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), LogError>;

    /// The committed offset of `group` for a topic partition, `None` if the
    /// group never committed one there.
    async fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError>;

    /// Waits until a record with offset `offset` exists in `partition`, that
    /// is until `end_offset > offset`, or until `timeout` has passed.
    ///
    /// Returns the end offset seen last: `> offset` if a record arrived (or
    /// was already there), `<= offset` on timeout. A tailing reader calls it
    /// with the next offset it wants to read.
    async fn wait_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<u64, LogError>;
}
