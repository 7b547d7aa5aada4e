//! The conformance suite: one test body, every backend.
//!
//! Every [`EventLog`] implementation runs these cases. A case is a public
//! `async fn(TestLog)`: it gets a fresh log from the backend's *factory* and
//! panics (it is test code) when the backend breaks the contract.
//!
//! # Running it for a backend
//!
//! Enable the `conformance` feature in the backend crate's dev-dependencies
//! and expand [`conformance_tests!`](crate::conformance_tests) in an
//! integration test with a factory: anything callable as
//! `factory() -> impl Future<Output = TestLog>`. The macro writes one `#[test]`
//! per case, so each case passes or fails on its own:
//!
//! ```toml
//! [dev-dependencies]
//! callgrid-eventlog = { workspace = true, features = ["conformance"] }
//! ```
//!
//! ```text
//! // tests/conformance_kafka.rs
//! use std::sync::Arc;
//! use callgrid_eventlog::conformance::{unique_prefix, TestLog};
//!
//! async fn kafka_log() -> TestLog {
//!     let log = KafkaLog::connect(&brokers()).await.expect("connect to the broker");
//!     // Cases share the broker: every topic name starts with a unique prefix.
//!     TestLog::new(Arc::new(log), unique_prefix(), ())
//! }
//!
//! callgrid_eventlog::conformance_tests!(kafka_log);
//! ```
//!
//! The generated tests build their own multi-threaded tokio runtime, so the
//! calling crate needs no tokio test macros. [`run_all`] runs every case in
//! sequence instead, for a single test or a smoke check.
//!
//! # Rules for the cases
//!
//! Cases only name topics through [`TestLog::topic`], so that they can share
//! one broker; they use timestamps `>= 1`, Kafka topic names and record sizes
//! far below Kafka's default limits; every wait is bounded.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{partition_for, EventLog, LogError, Record, SqliteLog, SqliteLogOptions, StoredRecord};

/// How long one case may run before it fails as hung.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh log for one case, its topic-name prefix and whatever keeps it
/// alive (a temporary directory, a broker container …).
pub struct TestLog {
    /// The log under test.
    pub log: Arc<dyn EventLog>,
    prefix: String,
    // Dropped after `log` (fields drop in declaration order).
    _guard: Box<dyn Any + Send>,
}

impl TestLog {
    /// Wraps a log. `prefix` starts every topic name the case uses (it must
    /// itself be a valid topic name prefix, see [`crate::validate_topic_name`]);
    /// `guard` is dropped after the log.
    pub fn new(log: Arc<dyn EventLog>, prefix: impl Into<String>, guard: impl Any + Send) -> Self {
        Self {
            log,
            prefix: prefix.into(),
            _guard: Box::new(guard),
        }
    }

    /// The topic name to use for `name` in this case.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The topic name prefix of this case.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A topic-name prefix unique to this process and call, e.g.
/// `cg-4242-1712345678901234-7-`, for backends whose cases share a broker.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    format!(
        "cg-{}-{nanos}-{}-",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The factory of the embedded backend: a [`SqliteLog`] with default options
/// in a fresh temporary directory.
pub async fn sqlite_test_log() -> TestLog {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let log = SqliteLog::open_async(dir.path().join("events.db"), SqliteLogOptions::default())
        .await
        .expect("open the sqlite log");
    TestLog::new(Arc::new(log), unique_prefix(), dir)
}

/// Runs one case against a fresh log from `factory` on a new multi-threaded
/// tokio runtime, failing it after [`CASE_TIMEOUT`]. What the test functions
/// [`conformance_tests!`](crate::conformance_tests) generates call.
pub fn run_case<F, FFut, C, CFut>(factory: F, case: C)
where
    F: FnOnce() -> FFut,
    FFut: Future<Output = TestLog>,
    C: FnOnce(TestLog) -> CFut,
    CFut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("build a tokio runtime");
    runtime.block_on(async {
        let log = factory().await;
        tokio::time::timeout(CASE_TIMEOUT, case(log))
            .await
            .expect("the case did not finish in time");
    });
}

/// Calls back `$callback!{ $($args)* ; case, case, … }` with every case of
/// the suite: the one list the test macro and [`run_all`] are built from.
#[doc(hidden)]
#[macro_export]
macro_rules! __eventlog_conformance_cases {
    ($callback:ident { $($args:tt)* }) => {
        $crate::$callback! {
            $($args)* ;
            create_topic_is_idempotent,
            create_topic_rejects_another_partition_count,
            create_topic_rejects_invalid_names_and_counts,
            unknown_topic_is_rejected_everywhere,
            append_then_read_returns_records_in_order,
            append_routes_keys_with_partition_for,
            append_continues_offsets_across_calls,
            append_empty_batch_is_ok,
            append_to_explicit_partition,
            append_to_out_of_range_partition_writes_nothing,
            read_from_middle_with_max_and_past_end,
            read_blocking_answers_as_read_does,
            record_contents_roundtrip,
            end_offset_tracks_appends,
            topics_are_independent,
            consumer_group_offsets_roundtrip,
            consumer_groups_are_independent,
            concurrent_appenders_keep_order_without_gaps,
            wait_beyond_wakes_on_append,
            wait_beyond_returns_at_timeout,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __eventlog_conformance_test_fns {
    ($factory:expr ; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::run_case($factory, $crate::conformance::$case);
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __eventlog_conformance_run_all {
    ( ; $($case:ident),* $(,)?) => {
        /// Runs every case in sequence, each on a fresh log from `factory`,
        /// on the caller's runtime (which must be multi-threaded with time
        /// enabled).
        pub async fn run_all<F, Fut>(factory: F)
        where
            F: Fn() -> Fut,
            Fut: Future<Output = TestLog>,
        {
            $(
                tracing::info!(case = stringify!($case), "event log conformance case");
                $case(factory().await).await;
            )*
        }
    };
}

/// Expands to one `#[test]` per conformance case, each running the case
/// against a fresh log from `$factory` (any expression callable as
/// `$factory() -> impl Future<Output = TestLog>`).
///
/// ```no_run
/// // tests/conformance_sqlite.rs
/// callgrid_eventlog::conformance_tests!(callgrid_eventlog::conformance::sqlite_test_log);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::__eventlog_conformance_cases!(__eventlog_conformance_test_fns { $factory });
    };
}

crate::__eventlog_conformance_cases!(__eventlog_conformance_run_all {});

// ---------------------------------------------------------------------------
// helpers

fn record(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, timestamp_ms: i64) -> Record {
    Record::new(key, value, timestamp_ms)
}

/// A timestamp near now, as producers set them.
const T0: i64 = 1_700_000_000_000;

/// `n` records of key `k` whose values are their positions ("0", "1", …), a millisecond
/// apart.
fn numbered(n: i64) -> Vec<Record> {
    (0..n)
        .map(|i| record("k", format!("{i}"), T0 + i))
        .collect()
}

#[track_caller]
fn expect_err<T: Debug>(result: Result<T, LogError>, what: &str) -> LogError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got Ok({value:?})"),
        Err(error) => error,
    }
}

#[track_caller]
fn ok<T>(result: Result<T, LogError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what}: {error}"),
    }
}

/// Every record of a partition, read in pages.
async fn read_all(log: &dyn EventLog, topic: &str, partition: u32) -> Vec<StoredRecord> {
    let end = ok(log.end_offset(topic, partition).await, "end_offset");
    let mut records = Vec::new();
    let mut from = 0;
    while from < end {
        let page = ok(log.read(topic, partition, from, 1000).await, "read");
        let Some(last) = page.last() else {
            panic!("read {topic}/{partition} from {from} returned nothing, end offset is {end}");
        };
        from = last.offset + 1;
        records.extend(page);
    }
    records
}

fn unknown(topic: &str) -> LogError {
    LogError::UnknownTopic {
        topic: topic.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// 1. topics

/// Creating a topic twice with the same count is Ok, also concurrently.
pub async fn create_topic_is_idempotent(t: TestLog) {
    let topic = t.topic("idempotent");
    ok(t.log.create_topic(&topic, 3).await, "create_topic");
    ok(t.log.create_topic(&topic, 3).await, "create_topic again");
    assert_eq!(
        ok(t.log.partition_count(&topic).await, "partition_count"),
        3
    );

    let racing = t.topic("idempotent-racing");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let log = Arc::clone(&t.log);
        let racing = racing.clone();
        tasks.spawn(async move { log.create_topic(&racing, 2).await });
    }
    while let Some(created) = tasks.join_next().await {
        ok(
            created.expect("create task panicked"),
            "concurrent create_topic",
        );
    }
    assert_eq!(
        ok(t.log.partition_count(&racing).await, "partition_count"),
        2
    );
}

/// Creating an existing topic with another count fails and changes nothing.
pub async fn create_topic_rejects_another_partition_count(t: TestLog) {
    let topic = t.topic("recount");
    ok(t.log.create_topic(&topic, 3).await, "create_topic");
    let error = expect_err(t.log.create_topic(&topic, 4).await, "create with 4");
    assert_eq!(
        error,
        LogError::TopicExists {
            topic: topic.clone(),
            partitions: 3,
            requested: 4,
        }
    );
    assert_eq!(
        ok(t.log.partition_count(&topic).await, "partition_count"),
        3
    );
}

/// Empty and invalid names and a zero partition count are refused.
pub async fn create_topic_rejects_invalid_names_and_counts(t: TestLog) {
    assert_eq!(
        expect_err(t.log.create_topic("", 1).await, "empty name"),
        LogError::EmptyTopicName
    );
    let too_long = t.topic(&"x".repeat(250));
    for name in [
        t.topic("with space"),
        t.topic("with/slash"),
        t.topic("ünïcode"),
        ".".to_owned(),
        "..".to_owned(),
        too_long,
    ] {
        let error = expect_err(t.log.create_topic(&name, 1).await, &name);
        assert!(
            matches!(&error, LogError::InvalidTopicName { topic, .. } if *topic == name),
            "{name}: {error:?}"
        );
    }
    let zero = t.topic("zero");
    assert!(matches!(
        expect_err(t.log.create_topic(&zero, 0).await, "0 partitions"),
        LogError::InvalidPartitionCount { partitions: 0, .. }
    ));
    assert_eq!(
        expect_err(t.log.partition_count(&zero).await, "zero"),
        unknown(&zero)
    );

    let valid = t.topic("Valid.name_with-all.CHARS.09");
    ok(t.log.create_topic(&valid, 1).await, "valid name");
}

/// Every operation on a topic that does not exist fails with `UnknownTopic`.
pub async fn unknown_topic_is_rejected_everywhere(t: TestLog) {
    let topic = t.topic("never-created");
    let e = unknown(&topic);
    let log = &t.log;
    assert_eq!(
        expect_err(log.partition_count(&topic).await, "partition_count"),
        e
    );
    let one = vec![record("k", "v", T0)];
    assert_eq!(
        expect_err(log.append(&topic, one.clone()).await, "append"),
        e
    );
    assert_eq!(
        expect_err(log.append(&topic, Vec::new()).await, "append empty"),
        e
    );
    assert_eq!(
        expect_err(log.append_to(&topic, 0, one).await, "append_to"),
        e
    );
    assert_eq!(expect_err(log.read(&topic, 0, 0, 10).await, "read"), e);
    assert_eq!(expect_err(log.end_offset(&topic, 0).await, "end_offset"), e);
    assert_eq!(expect_err(log.commit("g", &topic, 0, 1).await, "commit"), e);
    assert_eq!(
        expect_err(log.committed("g", &topic, 0).await, "committed"),
        e
    );
    let waited = log
        .wait_beyond(&topic, 0, 0, Duration::from_millis(10))
        .await;
    assert_eq!(expect_err(waited, "wait_beyond"), e);
}

// ---------------------------------------------------------------------------
// 2. append and read

/// Keyed records come back from their partitions exactly, in input order, at
/// offsets 0, 1, 2 … per partition.
pub async fn append_then_read_returns_records_in_order(t: TestLog) {
    let topic = t.topic("append-read");
    ok(t.log.create_topic(&topic, 3).await, "create_topic");
    let records: Vec<Record> = (0..60)
        .map(|i| record(format!("tenant-{}", i % 10), format!("value-{i}"), T0 + i))
        .collect();
    let placed = ok(t.log.append(&topic, records.clone()).await, "append");
    assert_eq!(placed.len(), records.len());

    let mut expected: BTreeMap<u32, Vec<StoredRecord>> = BTreeMap::new();
    for (record, &(partition, offset)) in records.iter().zip(&placed) {
        assert_eq!(
            partition,
            partition_for(&record.key, 3),
            "partition of {record:?}"
        );
        let on_partition = expected.entry(partition).or_default();
        assert_eq!(
            offset,
            on_partition.len() as u64,
            "offsets are consecutive per partition"
        );
        on_partition.push(StoredRecord {
            partition,
            offset,
            key: record.key.clone(),
            value: record.value.clone(),
            timestamp_ms: record.timestamp_ms,
        });
    }
    for partition in 0..3 {
        let read = ok(t.log.read(&topic, partition, 0, 1000).await, "read");
        let want = expected.remove(&partition).unwrap_or_default();
        assert_eq!(read, want, "partition {partition}");
    }
}

/// `append` puts every key where [`partition_for`] says, the same key always
/// on the same partition.
pub async fn append_routes_keys_with_partition_for(t: TestLog) {
    let topic = t.topic("routing");
    let partitions = 7;
    ok(t.log.create_topic(&topic, partitions).await, "create_topic");
    let keys: Vec<Vec<u8>> = [
        b"21".to_vec(),
        b"foobar".to_vec(),
        b"abc".to_vec(),
        b"a-little-bit-long-string".to_vec(),
        Vec::new(),
        vec![0xff, 0x00, 0x01],
    ]
    .into_iter()
    .chain((0..40).map(|i| format!("tenant-{i}").into_bytes()))
    .collect();

    let mut first_placement = HashMap::new();
    for round in 0..2 {
        // One call per key in the first round, one batch in the second.
        let placed = if round == 0 {
            let mut placed = Vec::new();
            for key in &keys {
                let one = vec![record(key.clone(), "single", T0)];
                placed.extend(ok(t.log.append(&topic, one).await, "append"));
            }
            placed
        } else {
            let batch = keys
                .iter()
                .map(|key| record(key.clone(), "batch", T0))
                .collect();
            ok(t.log.append(&topic, batch).await, "append batch")
        };
        for (key, &(partition, offset)) in keys.iter().zip(&placed) {
            assert_eq!(partition, partition_for(key, partitions), "key {key:?}");
            assert_eq!(
                *first_placement.entry(key.clone()).or_insert(partition),
                partition
            );
            let stored = ok(t.log.read(&topic, partition, offset, 1).await, "read");
            assert_eq!(stored.len(), 1);
            assert_eq!(stored[0].key, *key);
        }
    }
}

/// Later appends continue each partition's offsets; the records of one call
/// sharing a partition get consecutive offsets.
pub async fn append_continues_offsets_across_calls(t: TestLog) {
    let topic = t.topic("continue");
    ok(t.log.create_topic(&topic, 4).await, "create_topic");
    ok(
        t.log
            .append_to(
                &topic,
                2,
                (0..10).map(|i| record("x", format!("{i}"), T0)).collect(),
            )
            .await,
        "append_to",
    );
    for call in 0..3 {
        let mut ends = Vec::new();
        for partition in 0..4 {
            ends.push(ok(t.log.end_offset(&topic, partition).await, "end_offset"));
        }
        let batch = (0..25)
            .map(|i| record(format!("key-{call}-{}", i % 6), format!("{call}/{i}"), T0))
            .collect();
        let placed = ok(t.log.append(&topic, batch).await, "append");
        for (partition, &end) in ends.iter().enumerate() {
            let offsets: Vec<u64> = placed
                .iter()
                .filter(|(p, _)| *p as usize == partition)
                .map(|&(_, offset)| offset)
                .collect();
            let want: Vec<u64> = (end..end + offsets.len() as u64).collect();
            assert_eq!(offsets, want, "call {call} partition {partition}");
        }
    }
}

/// An empty batch is Ok, returns nothing and writes nothing.
pub async fn append_empty_batch_is_ok(t: TestLog) {
    let topic = t.topic("empty-batch");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    assert!(ok(t.log.append(&topic, Vec::new()).await, "append").is_empty());
    assert!(ok(t.log.append_to(&topic, 1, Vec::new()).await, "append_to").is_empty());
    let error = expect_err(t.log.append_to(&topic, 2, Vec::new()).await, "append_to 2");
    assert!(
        matches!(error, LogError::PartitionOutOfRange { partition: 2, .. }),
        "{error:?}"
    );
    for partition in 0..2 {
        assert_eq!(
            ok(t.log.end_offset(&topic, partition).await, "end_offset"),
            0
        );
    }
}

// ---------------------------------------------------------------------------
// 3. explicit partitions

/// `append_to` writes to the partition named, whatever the keys.
pub async fn append_to_explicit_partition(t: TestLog) {
    let topic = t.topic("explicit");
    ok(t.log.create_topic(&topic, 3).await, "create_topic");
    let records: Vec<Record> = (0..5)
        .map(|i| record(format!("key-{i}"), format!("v{i}"), T0 + i))
        .collect();
    assert_eq!(
        ok(
            t.log.append_to(&topic, 2, records.clone()).await,
            "append_to"
        ),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(ok(t.log.end_offset(&topic, 2).await, "end_offset"), 5);
    assert_eq!(ok(t.log.end_offset(&topic, 0).await, "end_offset"), 0);
    assert_eq!(ok(t.log.end_offset(&topic, 1).await, "end_offset"), 0);
    let read = ok(t.log.read(&topic, 2, 0, 100).await, "read");
    let keys: Vec<&[u8]> = read.iter().map(|r| r.key.as_slice()).collect();
    let want: Vec<&[u8]> = records.iter().map(|r| r.key.as_slice()).collect();
    assert_eq!(keys, want);
    assert!(read.iter().all(|r| r.partition == 2));
    let more = vec![
        record("a", "1", T0),
        record("b", "2", T0),
        record("c", "3", T0),
    ];
    assert_eq!(
        ok(t.log.append_to(&topic, 2, more).await, "append_to"),
        vec![5, 6, 7]
    );
}

/// A partition out of range fails everywhere and writes nothing.
pub async fn append_to_out_of_range_partition_writes_nothing(t: TestLog) {
    let topic = t.topic("out-of-range");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    let out_of_range = |partition| LogError::PartitionOutOfRange {
        topic: topic.clone(),
        partition,
        partitions: 2,
    };
    let log = &t.log;
    for partition in [2, 3, u32::MAX] {
        let e = out_of_range(partition);
        let records = vec![record("k", "v", T0)];
        assert_eq!(
            expect_err(log.append_to(&topic, partition, records).await, "append_to"),
            e
        );
        assert_eq!(
            expect_err(log.read(&topic, partition, 0, 10).await, "read"),
            e
        );
        assert_eq!(
            expect_err(log.end_offset(&topic, partition).await, "end_offset"),
            e
        );
        assert_eq!(
            expect_err(log.commit("g", &topic, partition, 1).await, "commit"),
            e
        );
        assert_eq!(
            expect_err(log.committed("g", &topic, partition).await, "committed"),
            e
        );
        let waited = log
            .wait_beyond(&topic, partition, 0, Duration::from_millis(10))
            .await;
        assert_eq!(expect_err(waited, "wait_beyond"), e);
    }
    for partition in 0..2 {
        assert_eq!(ok(log.end_offset(&topic, partition).await, "end_offset"), 0);
        assert!(ok(log.read(&topic, partition, 0, 10).await, "read").is_empty());
    }
}

// ---------------------------------------------------------------------------
// 4. reads

/// Reads start at any offset, stop at `max` and return nothing past the end.
pub async fn read_from_middle_with_max_and_past_end(t: TestLog) {
    let topic = t.topic("read-ranges");
    ok(t.log.create_topic(&topic, 1).await, "create_topic");
    ok(t.log.append_to(&topic, 0, numbered(20)).await, "append_to");
    let offsets = |records: Vec<StoredRecord>| -> Vec<u64> {
        records
            .iter()
            .map(|r| {
                assert_eq!(
                    r.value,
                    r.offset.to_string().into_bytes(),
                    "value at {}",
                    r.offset
                );
                r.offset
            })
            .collect()
    };
    let log = &t.log;
    assert_eq!(
        offsets(ok(log.read(&topic, 0, 5, 3).await, "read")),
        vec![5, 6, 7]
    );
    assert_eq!(
        offsets(ok(log.read(&topic, 0, 18, 10).await, "read")),
        vec![18, 19]
    );
    assert_eq!(
        offsets(ok(log.read(&topic, 0, 19, 1).await, "read")),
        vec![19]
    );
    assert!(ok(log.read(&topic, 0, 20, 10).await, "read at end").is_empty());
    assert!(ok(log.read(&topic, 0, 1000, 10).await, "read past end").is_empty());
    assert!(ok(
        log.read(&topic, 0, u64::MAX, usize::MAX).await,
        "read at u64::MAX"
    )
    .is_empty());
    assert!(ok(log.read(&topic, 0, 0, 0).await, "read max 0").is_empty());
    assert_eq!(
        offsets(ok(
            log.read(&topic, 0, 0, usize::MAX).await,
            "read everything"
        )),
        (0..20).collect::<Vec<_>>()
    );
}

/// A backend that reads without the runtime ([`EventLog::read_blocking`] answers) gives
/// exactly what [`EventLog::read`] gives, records and errors alike; one that cannot never
/// answers.
pub async fn read_blocking_answers_as_read_does(t: TestLog) {
    let topic = t.topic("read-blocking");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    ok(t.log.append_to(&topic, 1, numbered(20)).await, "append_to");
    let log = &t.log;
    let unknown_topic = t.topic("read-blocking-never-created");
    let reads = [
        (topic.as_str(), 1, 0, usize::MAX),
        (&topic, 1, 5, 3),
        (&topic, 1, 18, 10),
        (&topic, 1, 20, 10),
        (&topic, 1, u64::MAX, usize::MAX),
        (&topic, 1, 0, 0),
        (&topic, 0, 0, 10),
        (&topic, 2, 0, 10),
        (&unknown_topic, 0, 0, 10),
    ];
    let answered: Vec<bool> = reads
        .iter()
        .map(|&(topic, partition, from, max)| {
            log.read_blocking(topic, partition, from, max).is_some()
        })
        .collect();
    assert!(
        answered.iter().all(|&a| a) || answered.iter().all(|&a| !a),
        "read_blocking answers some reads and not others: {answered:?}"
    );
    for (topic, partition, from, max) in reads {
        let Some(blocking) = log.read_blocking(topic, partition, from, max) else {
            continue;
        };
        let read = log.read(topic, partition, from, max).await;
        assert_eq!(
            blocking, read,
            "read_blocking and read of {topic}/{partition} from {from}, at most {max}"
        );
    }
}

/// Keys, values and timestamps come back byte for byte.
pub async fn record_contents_roundtrip(t: TestLog) {
    let topic = t.topic("contents");
    ok(t.log.create_topic(&topic, 1).await, "create_topic");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let records = vec![
        // the smallest portable timestamp: librdkafka reads 0 as "now"
        record(Vec::new(), Vec::new(), 1),
        record(all_bytes.clone(), all_bytes.clone(), T0),
        record("large", large, 4_102_444_800_000),
        record("utf8 ключ", "значение ✓", T0 + 1),
        record(vec![0u8; 3], vec![0u8; 5], 1),
    ];
    let offsets = ok(
        t.log.append_to(&topic, 0, records.clone()).await,
        "append_to",
    );
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    let read = ok(t.log.read(&topic, 0, 0, 100).await, "read");
    assert_eq!(read.len(), records.len());
    for (stored, record) in read.iter().zip(&records) {
        assert_eq!(stored.key, record.key, "key at {}", stored.offset);
        assert_eq!(stored.value, record.value, "value at {}", stored.offset);
        assert_eq!(
            stored.timestamp_ms, record.timestamp_ms,
            "timestamp at {}",
            stored.offset
        );
        assert_eq!(stored.partition, 0);
    }
}

// ---------------------------------------------------------------------------
// 5. end offsets

/// The end offset of each partition counts the records appended to it.
pub async fn end_offset_tracks_appends(t: TestLog) {
    let topic = t.topic("end-offsets");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    let log = &t.log;
    assert_eq!(ok(log.end_offset(&topic, 0).await, "end_offset"), 0);
    assert_eq!(ok(log.end_offset(&topic, 1).await, "end_offset"), 0);
    let three = (0..3).map(|i| record("k", format!("{i}"), T0)).collect();
    ok(log.append_to(&topic, 0, three).await, "append_to");
    assert_eq!(ok(log.end_offset(&topic, 0).await, "end_offset"), 3);
    assert_eq!(ok(log.end_offset(&topic, 1).await, "end_offset"), 0);
    ok(
        log.append_to(&topic, 1, vec![record("k", "x", T0)]).await,
        "append_to",
    );
    assert_eq!(ok(log.end_offset(&topic, 1).await, "end_offset"), 1);

    let keyed: Vec<Record> = (0..10).map(|i| record(format!("k{i}"), "v", T0)).collect();
    let placed = ok(log.append(&topic, keyed).await, "append");
    let mut counts = [3u64, 1];
    for (partition, offset) in placed {
        assert_eq!(offset, counts[partition as usize]);
        counts[partition as usize] += 1;
    }
    for partition in 0..2u32 {
        assert_eq!(
            ok(log.end_offset(&topic, partition).await, "end_offset"),
            counts[partition as usize]
        );
    }
    // Reading does not move it.
    ok(log.read(&topic, 0, 0, 100).await, "read");
    assert_eq!(ok(log.end_offset(&topic, 0).await, "end_offset"), counts[0]);
}

/// Topics share nothing: offsets, end offsets and records are per topic.
pub async fn topics_are_independent(t: TestLog) {
    let a = t.topic("independent-a");
    let b = t.topic("independent-b");
    ok(t.log.create_topic(&a, 2).await, "create_topic a");
    ok(t.log.create_topic(&b, 5).await, "create_topic b");
    let log = &t.log;
    let five = (0..5).map(|i| record("k", format!("{i}"), T0)).collect();
    ok(log.append_to(&a, 1, five).await, "append_to a");
    assert_eq!(ok(log.end_offset(&b, 1).await, "end_offset b"), 0);
    assert!(ok(log.read(&b, 1, 0, 10).await, "read b").is_empty());
    assert_eq!(
        ok(
            log.append_to(&b, 1, vec![record("k", "b", T0)]).await,
            "append_to b"
        ),
        vec![0]
    );
    assert_eq!(ok(log.end_offset(&a, 1).await, "end_offset a"), 5);
    assert_eq!(ok(log.partition_count(&a).await, "partition_count a"), 2);
    assert_eq!(ok(log.partition_count(&b).await, "partition_count b"), 5);
    ok(log.commit("g", &a, 1, 4).await, "commit a");
    assert_eq!(ok(log.committed("g", &b, 1).await, "committed b"), None);
}

// ---------------------------------------------------------------------------
// 6. consumer groups

/// `committed` is `None` until a commit, then the last committed offset,
/// which may move forwards, backwards, to 0 and past the end.
pub async fn consumer_group_offsets_roundtrip(t: TestLog) {
    let topic = t.topic("group-offsets");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    let log = &t.log;
    let group = format!("{}group", t.prefix());
    assert_eq!(
        ok(log.committed(&group, &topic, 0).await, "committed"),
        None
    );
    for next in [5, 10, 3, 0, 1_000_000] {
        ok(log.commit(&group, &topic, 0, next).await, "commit");
        assert_eq!(
            ok(log.committed(&group, &topic, 0).await, "committed"),
            Some(next)
        );
    }
    assert_eq!(
        ok(log.committed(&group, &topic, 1).await, "other partition"),
        None
    );
    assert_eq!(
        expect_err(log.commit("", &topic, 0, 1).await, "empty group"),
        LogError::EmptyGroupName
    );
    assert_eq!(
        expect_err(log.committed("", &topic, 0).await, "empty group"),
        LogError::EmptyGroupName
    );
}

/// Every group has its own offsets, per topic and partition.
pub async fn consumer_groups_are_independent(t: TestLog) {
    let topic = t.topic("groups");
    let other_topic = t.topic("groups-other");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    ok(t.log.create_topic(&other_topic, 2).await, "create_topic");
    let log = &t.log;
    let a = format!("{}a", t.prefix());
    let b = format!("{}b", t.prefix());
    ok(log.commit(&a, &topic, 0, 7).await, "commit a");
    assert_eq!(ok(log.committed(&b, &topic, 0).await, "committed b"), None);
    ok(log.commit(&b, &topic, 0, 2).await, "commit b");
    assert_eq!(
        ok(log.committed(&a, &topic, 0).await, "committed a"),
        Some(7)
    );
    assert_eq!(
        ok(log.committed(&b, &topic, 0).await, "committed b"),
        Some(2)
    );
    assert_eq!(
        ok(log.committed(&a, &topic, 1).await, "a partition 1"),
        None
    );
    assert_eq!(
        ok(log.committed(&a, &other_topic, 0).await, "a other topic"),
        None
    );
    ok(
        log.commit(&a, &other_topic, 0, 9).await,
        "commit a other topic",
    );
    assert_eq!(
        ok(log.committed(&a, &topic, 0).await, "committed a"),
        Some(7)
    );
    assert_eq!(
        ok(log.committed(&a, &other_topic, 0).await, "a other topic"),
        Some(9)
    );
}

// ---------------------------------------------------------------------------
// 7. concurrency

/// Concurrent appenders: every record stored exactly once, where its append
/// said; offsets without gaps; each appender's records in its order within a
/// partition.
pub async fn concurrent_appenders_keep_order_without_gaps(t: TestLog) {
    const APPENDERS: u32 = 8;
    const PER_APPENDER: u32 = 500;
    const BATCH: u32 = 25;
    const PARTITIONS: u32 = 4;
    let topic = t.topic("concurrent");
    ok(t.log.create_topic(&topic, PARTITIONS).await, "create_topic");

    let mut tasks = tokio::task::JoinSet::new();
    for appender in 0..APPENDERS {
        let log = Arc::clone(&t.log);
        let topic = topic.clone();
        tasks.spawn(async move {
            let mut placed = Vec::new();
            for first in (0..PER_APPENDER).step_by(BATCH as usize) {
                let batch: Vec<Record> = (first..first + BATCH)
                    .map(|seq| {
                        let key = format!("appender-{appender}-key-{}", seq % 7);
                        record(key, format!("{appender}:{seq}"), T0 + i64::from(seq))
                    })
                    .collect();
                let at = ok(log.append(&topic, batch).await, "concurrent append");
                placed.extend(
                    at.into_iter()
                        .zip(first..)
                        .map(|(at, seq)| (at, (appender, seq))),
                );
            }
            placed
        });
    }
    let mut acknowledged: HashMap<(u32, u64), (u32, u32)> = HashMap::new();
    while let Some(placed) = tasks.join_next().await {
        for (at, who) in placed.expect("appender task panicked") {
            assert!(
                acknowledged.insert(at, who).is_none(),
                "position {at:?} given twice"
            );
        }
    }
    assert_eq!(acknowledged.len(), (APPENDERS * PER_APPENDER) as usize);

    let mut seen = HashSet::new();
    for partition in 0..PARTITIONS {
        let records = read_all(t.log.as_ref(), &topic, partition).await;
        let mut last_seq: HashMap<u32, u32> = HashMap::new();
        for (i, stored) in records.iter().enumerate() {
            assert_eq!(stored.offset, i as u64, "gap in partition {partition}");
            let value = String::from_utf8_lossy(&stored.value);
            let (appender, seq) = value
                .split_once(':')
                .and_then(|(a, s)| Some((a.parse::<u32>().ok()?, s.parse::<u32>().ok()?)))
                .unwrap_or_else(|| panic!("unexpected value {value}"));
            assert_eq!(
                acknowledged.get(&(partition, stored.offset)),
                Some(&(appender, seq)),
                "record at {partition}/{} is not where its append said",
                stored.offset
            );
            assert!(
                seen.insert((appender, seq)),
                "{appender}:{seq} stored twice"
            );
            if let Some(previous) = last_seq.insert(appender, seq) {
                assert!(
                    previous < seq,
                    "appender {appender} out of order: {previous} then {seq}"
                );
            }
        }
    }
    assert_eq!(seen.len(), (APPENDERS * PER_APPENDER) as usize);
}

// ---------------------------------------------------------------------------
// 8. waiting for records

/// `wait_beyond` returns at once when the record is there, and wakes when
/// another task appends it.
pub async fn wait_beyond_wakes_on_append(t: TestLog) {
    let topic = t.topic("wait-wakes");
    ok(t.log.create_topic(&topic, 2).await, "create_topic");
    let long = Duration::from_secs(30);

    let waiter = {
        let log = Arc::clone(&t.log);
        let topic = topic.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let end = log.wait_beyond(&topic, 1, 0, long).await;
            (end, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "wait_beyond returned before any record"
    );
    ok(
        t.log.append_to(&topic, 1, vec![record("k", "v", T0)]).await,
        "append_to",
    );
    let (end, waited) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("wait_beyond did not wake up")
        .expect("waiter panicked");
    assert_eq!(ok(end, "wait_beyond"), 1);
    assert!(waited < long, "woke only at the timeout");

    // Already beyond: immediate, even with an unbounded timeout.
    let started = Instant::now();
    let end = t.log.wait_beyond(&topic, 1, 0, Duration::MAX).await;
    assert_eq!(ok(end, "wait_beyond"), 1);
    assert!(started.elapsed() < Duration::from_secs(5));

    // The other partition is unaffected.
    let end = t
        .log
        .wait_beyond(&topic, 0, 0, Duration::from_millis(50))
        .await;
    assert_eq!(ok(end, "wait_beyond partition 0"), 0);
}

/// Without new records `wait_beyond` returns the end offset at the timeout.
pub async fn wait_beyond_returns_at_timeout(t: TestLog) {
    let topic = t.topic("wait-timeout");
    ok(t.log.create_topic(&topic, 1).await, "create_topic");
    let timeout = Duration::from_millis(400);
    let times_out = |offset: u64, end: u64| {
        let log = Arc::clone(&t.log);
        let topic = topic.clone();
        async move {
            let started = Instant::now();
            let got = ok(
                log.wait_beyond(&topic, 0, offset, timeout).await,
                "wait_beyond",
            );
            let waited = started.elapsed();
            assert_eq!(got, end, "wait_beyond({offset})");
            assert!(
                waited >= timeout - Duration::from_millis(100),
                "wait_beyond({offset}) returned after {waited:?}, before the timeout of {timeout:?}"
            );
            assert!(
                waited < Duration::from_secs(10),
                "wait_beyond({offset}) took {waited:?}"
            );
        }
    };
    // Empty partition.
    times_out(0, 0).await;
    ok(
        t.log.append_to(&topic, 0, vec![record("k", "v", T0)]).await,
        "append_to",
    );
    // Waiting for the next record, and for one further away.
    times_out(1, 1).await;
    times_out(5, 1).await;
}
