//! The Kafka implementation of [`EventLog`] (rdkafka over librdkafka): an idempotent
//! producer with `acks=all` and a small linger, topics created through the admin API,
//! consumer-group offsets committed as a simple (unsubscribed) consumer of the group, reads
//! by assigning one partition at an offset.
//!
//! librdkafka's metadata, watermark, poll and offset calls block: they run in
//! `spawn_blocking`. Appends await the producer's delivery reports, so an `Ok` means the
//! broker acknowledged the records with `acks=all`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::{partition_for, validate_topic_name, EventLog, LogError, Record, StoredRecord};

/// How a [`KafkaLog`] connects and writes.
#[derive(Clone)]
pub struct KafkaLogOptions {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Replication factor of the topics this log creates (3 in a cluster, 1 on one broker).
    pub replication: i32,
    /// Producer linger: how long a record may wait for others to share its batch.
    pub linger: Duration,
    /// How long one broker request may take before the operation fails.
    pub request_timeout: Duration,
    /// Largest record (key plus value) accepted.
    pub max_record_bytes: usize,
    /// More librdkafka properties for every client of the log: TLS and SASL toward brokers
    /// that require them (`security.protocol=sasl_ssl`, `ssl.ca.location`,
    /// `sasl.mechanisms=SCRAM-SHA-512`, `sasl.username`, `sasl.password`...).
    pub client_config: Vec<(String, String)>,
}

impl KafkaLogOptions {
    /// Defaults for `brokers`: replication 1, 2 ms linger, 30 s requests, 1 MiB records.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            replication: 1,
            linger: Duration::from_millis(2),
            request_timeout: Duration::from_secs(30),
            max_record_bytes: 1 << 20,
            client_config: Vec::new(),
        }
    }
}

impl std::fmt::Debug for KafkaLogOptions {
    /// Values of secret properties (passwords, keys) are not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config: Vec<(&str, &str)> = self
            .client_config
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "key.pem", "private"]
                    .iter()
                    .any(|s| k.contains(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("KafkaLogOptions")
            .field("brokers", &self.brokers)
            .field("replication", &self.replication)
            .field("linger", &self.linger)
            .field("request_timeout", &self.request_timeout)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("client_config", &config)
            .finish()
    }
}

/// The settings every client of the log shares (brokers, timeouts, TLS and SASL), then `extra`.
fn client_config(options: &KafkaLogOptions, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &options.brokers)
        .set(
            "socket.timeout.ms",
            options.request_timeout.as_millis().to_string(),
        )
        .set("allow.auto.create.topics", "false");
    for (k, v) in &options.client_config {
        c.set(k, v);
    }
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// The most partitions a topic may have here (as the embedded log).
pub(crate) const MAX_PARTITIONS: u32 = 10_000;

/// An [`EventLog`] on a Kafka cluster.
pub struct KafkaLog {
    options: KafkaLogOptions,
    producer: FutureProducer<Watch>,
    admin: AdminClient<Watch>,
    /// For metadata and watermarks (no group).
    meta: Arc<BaseConsumer<Watch>>,
    /// For reads: one at a time, assigned to the partition being read.
    reader: Arc<Mutex<BaseConsumer<Watch>>>,
    /// One unsubscribed consumer per group, for offset commits and lookups.
    groups: Mutex<HashMap<String, Arc<BaseConsumer<Watch>>>>,
    /// The broker's last refusal of these clients, shared by all of them.
    watch: Watch,
    /// Partition counts of the topics seen: a topic's count never changes here (the
    /// `EventLog` contract), so appends and reads need not fetch metadata every time.
    partitions: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.options.brokers)
            .finish_non_exhaustive()
    }
}

/// Every client's context: logs librdkafka's errors as its default context does, and keeps
/// the last one saying that the broker refused these clients (SASL authentication, TLS), so
/// that an operation failing for it says so instead of "broker transport failure".
#[derive(Clone, Default)]
struct Watch(Arc<Mutex<Option<(Instant, String)>>>);

/// How long a refusal explains later failures.
const REFUSAL_RECENT: Duration = Duration::from_secs(120);

impl ClientContext for Watch {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!("librdkafka: {error}: {reason}");
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL)
        ) {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), reason.to_owned()));
        }
    }
}

impl ConsumerContext for Watch {}

impl Watch {
    /// A storage error doing `context`, with the broker's recent refusal if there was one.
    fn fail(&self, context: &str, e: KafkaError) -> LogError {
        let refusal = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < REFUSAL_RECENT)
            .map(|(_, reason)| reason.clone());
        match refusal {
            Some(reason) => LogError::Storage(format!(
                "{context}: {e}; the broker refused the connection: {reason}"
            )),
            None => LogError::storage(context, e),
        }
    }
}

impl KafkaLog {
    /// Connects (lazily: librdkafka connects on first use) with `options`.
    pub fn new(options: KafkaLogOptions) -> Result<Self, LogError> {
        let watch = Watch::default();
        let base = |extra: &[(&str, &str)]| client_config(&options, extra);
        let producer: FutureProducer<Watch> = base(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("compression.type", "none"),
        ])
        .set("linger.ms", options.linger.as_millis().to_string())
        .set(
            "message.max.bytes",
            (options.max_record_bytes + 4096).to_string(),
        )
        .create_with_context(watch.clone())
        .map_err(|e| watch.fail("create the producer", e))?;
        let admin = base(&[])
            .create_with_context(watch.clone())
            .map_err(|e| watch.fail("create the admin client", e))?;
        let consumer = |group: Option<&str>| -> Result<BaseConsumer<Watch>, LogError> {
            let mut c = base(&[
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
                // reads stop at the partition's end: the broker should not hold an empty fetch
                ("fetch.wait.max.ms", "5"),
            ]);
            c.set("group.id", group.unwrap_or("callgrid-eventlog-reader"));
            c.create_with_context(watch.clone())
                .map_err(|e| watch.fail("create a consumer", e))
        };
        Ok(Self {
            meta: Arc::new(consumer(None)?),
            reader: Arc::new(Mutex::new(consumer(None)?)),
            groups: Mutex::new(HashMap::new()),
            partitions: Mutex::new(HashMap::new()),
            producer,
            admin,
            options,
            watch,
        })
    }

    fn timeout(&self) -> Duration {
        self.options.request_timeout
    }

    /// The partition count of `topic`, `None` if the broker does not know it.
    async fn partitions_of(&self, topic: &str) -> Result<Option<u32>, LogError> {
        let watch = self.watch.clone();
        let meta = Arc::clone(&self.meta);
        let (topic, timeout) = (topic.to_owned(), self.timeout());
        blocking(move || {
            let md = meta
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| watch.fail("fetch metadata", e))?;
            Ok(md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| match t.error() {
                    None if !t.partitions().is_empty() => Some(t.partitions().len() as u32),
                    _ => None,
                }))
        })
        .await
    }

    async fn require_partitions(&self, topic: &str) -> Result<u32, LogError> {
        validate_topic_name(topic)?;
        let known = self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .copied();
        if let Some(n) = known {
            return Ok(n);
        }
        let n = self
            .partitions_of(topic)
            .await?
            .ok_or_else(|| LogError::UnknownTopic {
                topic: topic.to_owned(),
            })?;
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_owned(), n);
        Ok(n)
    }

    fn check_size(&self, topic: &str, records: &[Record]) -> Result<(), LogError> {
        crate::check_record_sizes(topic, records, self.options.max_record_bytes)
    }

    /// Checks that `partition` is one of `topic`'s; returns the partition count.
    async fn require_partition(&self, topic: &str, partition: u32) -> Result<u32, LogError> {
        let partitions = self.require_partitions(topic).await?;
        if partition >= partitions {
            return Err(LogError::PartitionOutOfRange {
                topic: topic.to_owned(),
                partition,
                partitions,
            });
        }
        Ok(partitions)
    }

    /// Sends every record to its partition and waits for all delivery reports.
    async fn produce(
        &self,
        topic: &str,
        records: Vec<(u32, Record)>,
    ) -> Result<Vec<(u32, u64)>, LogError> {
        let watch = self.watch.clone();
        let mut pending = Vec::with_capacity(records.len());
        for (partition, r) in &records {
            let record = FutureRecord::to(topic)
                .partition(*partition as i32)
                .key(&r.key)
                .payload(&r.value)
                .timestamp(r.timestamp_ms);
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| watch.fail("enqueue a record", e))?;
            pending.push(delivery);
        }
        let mut out = Vec::with_capacity(pending.len());
        for delivery in pending {
            match delivery.await {
                Ok(Ok(d)) => out.push((d.partition as u32, d.offset as u64)),
                Ok(Err((e, _))) => return Err(watch.fail("deliver a record", e)),
                Err(_) => return Err(LogError::Closed),
            }
        }
        Ok(out)
    }

    /// Up to `max` records of `partition` from `from` on, until the partition's end.
    async fn poll_from(
        &self,
        topic: &str,
        partition: u32,
        from: i64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let watch = self.watch.clone();
        let reader = Arc::clone(&self.reader);
        let (topic, timeout) = (topic.to_owned(), self.timeout());
        blocking(move || {
            let reader = reader.lock().unwrap_or_else(|e| e.into_inner());
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition as i32, Offset::Offset(from))
                .map_err(|e| watch.fail("assign", e))?;
            reader.assign(&tpl).map_err(|e| watch.fail("assign", e))?;
            let deadline = Instant::now() + timeout;
            let mut out = Vec::new();
            while out.len() < max {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LogError::Storage(format!(
                        "read {topic}/{partition} from {from}: timed out after {timeout:?}"
                    )));
                }
                match reader.poll(left.min(Duration::from_millis(200))) {
                    None => {}
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => return Err(watch.fail("read", e)),
                    Some(Ok(m)) if m.offset() < from => {}
                    Some(Ok(m)) => out.push(StoredRecord {
                        partition,
                        offset: m.offset() as u64,
                        key: m.key().unwrap_or_default().to_vec(),
                        value: m.payload().unwrap_or_default().to_vec(),
                        timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    }),
                }
            }
            reader.unassign().map_err(|e| watch.fail("unassign", e))?;
            Ok(out)
        })
        .await
    }

    /// The end offset of a partition already checked to exist.
    async fn end_of(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        let watch = self.watch.clone();
        let meta = Arc::clone(&self.meta);
        let (name, timeout) = (topic.to_owned(), self.timeout());
        let high = blocking(move || {
            let (_, high) = meta
                .fetch_watermarks(&name, partition as i32, timeout)
                .map_err(|e| watch.fail("fetch watermarks", e))?;
            Ok(high.max(0))
        })
        .await?;
        if high == 0 {
            return Ok(0);
        }
        // Tansu 0.6 answers "latest" with the last batch's base offset + 1, not the last
        // offset + 1: read on from the record before it to the partition's end (on Kafka
        // that is the one record at high - 1)
        let tail = self
            .poll_from(topic, partition, high - 1, usize::MAX)
            .await?;
        Ok(tail
            .last()
            .map_or(high as u64, |r| r.offset + 1)
            .max(high as u64))
    }

    fn group(&self, group: &str) -> Result<Arc<BaseConsumer<Watch>>, LogError> {
        let watch = self.watch.clone();
        if group.is_empty() {
            return Err(LogError::EmptyGroupName);
        }
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = groups.get(group) {
            return Ok(Arc::clone(c));
        }
        // the same connection settings as every other client (TLS, SASL)
        let c: BaseConsumer<Watch> =
            client_config(&self.options, &[("enable.auto.commit", "false")])
                .set("group.id", group)
                .create_with_context(watch.clone())
                .map_err(|e| watch.fail("create a group consumer", e))?;
        let c = Arc::new(c);
        groups.insert(group.to_owned(), Arc::clone(&c));
        Ok(c)
    }
}

/// Runs a blocking librdkafka call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LogError::storage("blocking kafka call", e))?
}

#[async_trait]
impl EventLog for KafkaLog {
    fn max_record_bytes(&self) -> usize {
        self.options.max_record_bytes
    }

    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        let watch = self.watch.clone();
        validate_topic_name(topic)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(LogError::InvalidPartitionCount {
                topic: topic.to_owned(),
                partitions,
                max: MAX_PARTITIONS,
            });
        }
        let existing = |n: u32| {
            if n == partitions {
                Ok(())
            } else {
                Err(LogError::TopicExists {
                    topic: topic.to_owned(),
                    partitions: n,
                    requested: partitions,
                })
            }
        };
        if let Some(n) = self.partitions_of(topic).await? {
            return existing(n);
        }
        let new = NewTopic::new(
            topic,
            partitions as i32,
            TopicReplication::Fixed(self.options.replication),
        );
        let opts = AdminOptions::new().operation_timeout(Some(self.timeout()));
        let results = self
            .admin
            .create_topics([&new], &opts)
            .await
            .map_err(|e| watch.fail("create topic", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(LogError::storage("create topic", code));
                }
            }
        }
        // the broker may take a moment to show the new topic in its metadata
        let deadline = Instant::now() + self.timeout();
        loop {
            if let Some(n) = self.partitions_of(topic).await? {
                return existing(n);
            }
            if Instant::now() > deadline {
                return Err(LogError::Storage(format!(
                    "topic {topic} created but not in the metadata after {:?}",
                    self.timeout()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        self.require_partitions(topic).await
    }

    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<(u32, u64)>, LogError> {
        let partitions = self.require_partitions(topic).await?;
        self.check_size(topic, &records)?;
        let routed = records
            .into_iter()
            .map(|r| (partition_for(&r.key, partitions), r))
            .collect();
        self.produce(topic, routed).await
    }

    async fn append_to(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<Vec<u64>, LogError> {
        self.require_partition(topic, partition).await?;
        self.check_size(topic, &records)?;
        let routed = records.into_iter().map(|r| (partition, r)).collect();
        Ok(self
            .produce(topic, routed)
            .await?
            .into_iter()
            .map(|(_, o)| o)
            .collect())
    }

    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        self.require_partition(topic, partition).await?;
        // a consumer assigned past the end waits for records (or resets): answer from the end
        if max == 0 || from >= self.end_of(topic, partition).await? {
            return Ok(Vec::new());
        }
        let from = crate::offset_to_i64(from)?;
        self.poll_from(topic, partition, from, max).await
    }

    async fn end_offset(&self, topic: &str, partition: u32) -> Result<u64, LogError> {
        self.require_partition(topic, partition).await?;
        self.end_of(topic, partition).await
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), LogError> {
        let watch = self.watch.clone();
        let consumer = self.group(group)?;
        self.require_partition(topic, partition).await?;
        let offset = crate::offset_to_i64(next_offset)?;
        let topic = topic.to_owned();
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition as i32, Offset::Offset(offset))
                .map_err(|e| watch.fail("commit", e))?;
            consumer
                .commit(&tpl, CommitMode::Sync)
                .map_err(|e| watch.fail("commit", e))
        })
        .await
    }

    async fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        let watch = self.watch.clone();
        let consumer = self.group(group)?;
        self.require_partition(topic, partition).await?;
        let (topic, timeout) = (topic.to_owned(), self.timeout());
        blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, partition as i32);
            let got = consumer
                .committed_offsets(tpl, timeout)
                .map_err(|e| watch.fail("committed offsets", e))?;
            Ok(got
                .find_partition(&topic, partition as i32)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o as u64),
                    _ => None,
                }))
        })
        .await
    }

    async fn wait_beyond(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<u64, LogError> {
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        self.require_partition(topic, partition).await?;
        let mut pause = Duration::from_millis(2);
        loop {
            let end = self.end_of(topic, partition).await?;
            let now = Instant::now();
            if end > offset || now >= deadline {
                return Ok(end);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}
