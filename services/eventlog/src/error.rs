//! The one error type of the crate.

/// Why an [`EventLog`](crate::EventLog) operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The topic does not exist.
    #[error("unknown topic {topic}")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },

    /// The partition is not one of the topic's partitions.
    #[error("partition {partition} out of range for topic {topic} with {partitions} partitions")]
    PartitionOutOfRange {
        /// The topic asked for.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },

    /// The topic exists with another partition count.
    #[error("topic {topic} already exists with {partitions} partitions, {requested} requested")]
    TopicExists {
        /// The topic.
        topic: String,
        /// Its existing partition count.
        partitions: u32,
        /// The partition count asked for.
        requested: u32,
    },

    /// The topic name is empty.
    #[error("empty topic name")]
    EmptyTopicName,

    /// The topic name breaks Kafka's naming rules.
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopicName {
        /// The name given.
        topic: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The partition count is 0 or above the backend's maximum.
    #[error("invalid partition count {partitions} for topic {topic}: must be between 1 and {max}")]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// The partition count asked for.
        partitions: u32,
        /// The backend's maximum.
        max: u32,
    },

    /// The offset is beyond what an offset can be (Kafka offsets are signed
    /// 64-bit integers).
    #[error("invalid offset {offset}: offsets are at most {max}", max = i64::MAX)]
    InvalidOffset {
        /// The offset given.
        offset: u64,
    },

    /// The consumer group name is empty.
    #[error("empty consumer group name")]
    EmptyGroupName,

    /// A record (key plus value) is larger than the backend accepts.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes for topic {topic}")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The record's key plus value length.
        size: usize,
        /// The maximum accepted.
        max: usize,
    },

    /// The storage (or, for a remote backend, the broker) failed; the message
    /// says what was being done.
    #[error("storage error: {0}")]
    Storage(String),

    /// The log was closed.
    #[error("event log closed")]
    Closed,
}

impl LogError {
    /// A storage error with the context it happened in.
    pub(crate) fn storage(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Storage(format!("{context}: {err}"))
    }
}
