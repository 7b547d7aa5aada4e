//! What only the embedded backend promises: the database survives closing,
//! dropping and reopening, and its options do what they say.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use callgrid_eventlog::{
    Durability, EventLog, LogError, Record, SqliteLog, SqliteLogOptions, StoredRecord,
};

async fn open(path: &Path, options: SqliteLogOptions) -> SqliteLog {
    SqliteLog::open_async(path.to_path_buf(), options)
        .await
        .expect("open the log")
}

fn record(key: &str, value: String) -> Record {
    Record::new(key, value, 1_700_000_000_000)
}

/// Every record of every partition of `topic`.
async fn dump(log: &dyn EventLog, topic: &str) -> BTreeMap<u32, Vec<StoredRecord>> {
    let mut all = BTreeMap::new();
    let partitions = log.partition_count(topic).await.expect("partition_count");
    for partition in 0..partitions {
        let records = log
            .read(topic, partition, 0, usize::MAX)
            .await
            .expect("read");
        let end = log.end_offset(topic, partition).await.expect("end_offset");
        assert_eq!(records.len() as u64, end, "partition {partition} has a gap");
        all.insert(partition, records);
    }
    all
}

struct Written {
    a: BTreeMap<u32, Vec<StoredRecord>>,
    b: BTreeMap<u32, Vec<StoredRecord>>,
}

/// Creates topics `a` (3 partitions) and `b` (1), appends to both and commits
/// offsets for two groups.
async fn write_some(log: &SqliteLog) -> Written {
    log.create_topic("a", 3).await.expect("create a");
    log.create_topic("b", 1).await.expect("create b");
    let keyed = (0..100)
        .map(|i| record(&format!("tenant-{}", i % 9), format!("a-{i}")))
        .collect();
    log.append("a", keyed).await.expect("append a");
    let explicit = (0..10).map(|i| record("k", format!("b-{i}"))).collect();
    log.append_to("b", 0, explicit).await.expect("append b");
    log.commit("g1", "a", 0, 5).await.expect("commit");
    log.commit("g1", "a", 2, 1).await.expect("commit");
    log.commit("g2", "b", 0, 7).await.expect("commit");
    Written {
        a: dump(log, "a").await,
        b: dump(log, "b").await,
    }
}

/// After reopening: same topics, records, end offsets and committed offsets;
/// appends continue where the log ended.
async fn check_reopened(log: &SqliteLog, written: &Written) {
    assert_eq!(log.partition_count("a").await.expect("a"), 3);
    assert_eq!(log.partition_count("b").await.expect("b"), 1);
    assert_eq!(dump(log, "a").await, written.a);
    assert_eq!(dump(log, "b").await, written.b);
    assert_eq!(
        log.committed("g1", "a", 0).await.expect("committed"),
        Some(5)
    );
    assert_eq!(log.committed("g1", "a", 1).await.expect("committed"), None);
    assert_eq!(
        log.committed("g1", "a", 2).await.expect("committed"),
        Some(1)
    );
    assert_eq!(
        log.committed("g2", "b", 0).await.expect("committed"),
        Some(7)
    );

    log.create_topic("a", 3).await.expect("create a again");
    assert!(matches!(
        log.create_topic("a", 4).await,
        Err(LogError::TopicExists { partitions: 3, .. })
    ));
    let b_end = written.b[&0].len() as u64;
    let offsets = log
        .append_to("b", 0, vec![record("k", "after".into())])
        .await
        .expect("append after reopen");
    assert_eq!(offsets, vec![b_end]);
    let placed = log
        .append("a", vec![record("tenant-1", "after".into())])
        .await
        .expect("append after reopen");
    let (partition, offset) = placed[0];
    assert_eq!(offset, written.a[&partition].len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let log = open(&path, SqliteLogOptions::default()).await;
    let written = write_some(&log).await;
    log.close().await;
    log.close().await; // idempotent

    let closed = log.append("a", vec![record("k", "late".into())]).await;
    assert_eq!(closed, Err(LogError::Closed));
    assert_eq!(log.read("a", 0, 0, 10).await, Err(LogError::Closed));
    assert_eq!(log.commit("g", "a", 0, 1).await, Err(LogError::Closed));
    assert_eq!(log.create_topic("c", 1).await, Err(LogError::Closed));
    drop(log);

    let log = open(&path, SqliteLogOptions::default()).await;
    check_reopened(&log, &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_drop_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let log = open(&path, SqliteLogOptions::default()).await;
    let written = write_some(&log).await;
    drop(log);

    let log = open(&path, SqliteLogOptions::default()).await;
    check_reopened(&log, &written).await;
    // And once more, after the appends of the check.
    let again = Written {
        a: dump(&log, "a").await,
        b: dump(&log, "b").await,
    };
    drop(log);
    let log = open(&path, SqliteLogOptions::default()).await;
    assert_eq!(dump(&log, "a").await, again.a);
    assert_eq!(dump(&log, "b").await, again.b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_with_process_crash_safe_durability() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let options = SqliteLogOptions {
        durability: Durability::ProcessCrashSafe,
        ..SqliteLogOptions::default()
    };
    let log = open(&path, options.clone()).await;
    let written = write_some(&log).await;
    drop(log);
    let log = open(&path, options).await;
    check_reopened(&log, &written).await;
}

/// Appends racing a close either succeed (and are stored) or fail with
/// `Closed`; none is lost after an `Ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_queued_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    let log = Arc::new(open(&path, SqliteLogOptions::default()).await);
    log.create_topic("t", 1).await.expect("create");
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let log = Arc::clone(&log);
        tasks.spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..50 {
                let value = format!("{task}-{i}");
                match log
                    .append_to("t", 0, vec![record("k", value.clone())])
                    .await
                {
                    Ok(_) => acknowledged.push(value),
                    Err(LogError::Closed) => break,
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            acknowledged
        });
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.close().await;
    let mut acknowledged = Vec::new();
    while let Some(done) = tasks.join_next().await {
        acknowledged.extend(done.expect("task panicked"));
    }
    drop(log);

    let log = open(&path, SqliteLogOptions::default()).await;
    let stored: Vec<String> = log
        .read("t", 0, 0, usize::MAX)
        .await
        .expect("read")
        .into_iter()
        .map(|r| String::from_utf8(r.value).expect("utf-8"))
        .collect();
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "every stored record was acknowledged"
    );
    for value in &acknowledged {
        assert!(stored.contains(value), "{value} acknowledged but lost");
    }
}

/// The group commit shares transactions: with a linger and tiny batches the
/// results are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_options_keep_semantics() {
    for (max_batch_records, max_batch_delay) in [
        (1, Duration::ZERO),
        (7, Duration::from_millis(2)),
        (10_000, Duration::from_millis(5)),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteLogOptions {
            max_batch_records,
            max_batch_delay,
            durability: Durability::ProcessCrashSafe,
            ..SqliteLogOptions::default()
        };
        let log = Arc::new(open(&dir.path().join("events.db"), options).await);
        log.create_topic("t", 2).await.expect("create");
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..8 {
            let log = Arc::clone(&log);
            tasks.spawn(async move {
                for i in 0..10 {
                    let batch = (0..5)
                        .map(|j| record(&format!("{task}-{j}"), format!("{task}-{i}-{j}")))
                        .collect();
                    log.append("t", batch).await.expect("append");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task panicked");
        }
        let total: usize = dump(log.as_ref(), "t").await.values().map(Vec::len).sum();
        assert_eq!(
            total,
            8 * 10 * 5,
            "{max_batch_records} records, {max_batch_delay:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_record_is_rejected_and_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SqliteLogOptions {
        max_record_bytes: 100,
        ..SqliteLogOptions::default()
    };
    let log = open(&dir.path().join("events.db"), options).await;
    log.create_topic("t", 1).await.expect("create");
    let batch = vec![
        record("k", "small".into()),
        Record::new("k", vec![0u8; 98], 0),
    ];
    // 99 bytes of key and value: just fits.
    assert_eq!(log.append("t", batch).await, Ok(vec![(0, 0), (0, 1)]));
    let too_big = vec![
        record("k", "small".into()),
        Record::new("k", vec![0u8; 100], 0),
    ];
    assert_eq!(
        log.append_to("t", 0, too_big).await,
        Err(LogError::RecordTooLarge {
            topic: "t".into(),
            size: 101,
            max: 100,
        })
    );
    assert_eq!(log.end_offset("t", 0).await, Ok(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_count_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(&dir.path().join("events.db"), SqliteLogOptions::default()).await;
    assert!(matches!(
        log.create_topic("huge", u32::MAX).await,
        Err(LogError::InvalidPartitionCount { .. })
    ));
    log.create_topic("max", SqliteLog::MAX_PARTITIONS)
        .await
        .expect("the maximum is accepted");
    let last = SqliteLog::MAX_PARTITIONS - 1;
    assert_eq!(
        log.append_to("max", last, vec![record("k", "v".into())])
            .await,
        Ok(vec![0])
    );
    drop(log);
    let log = open(&dir.path().join("events.db"), SqliteLogOptions::default()).await;
    assert_eq!(log.end_offset("max", last).await, Ok(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.db");
    drop(open(&path, SqliteLogOptions::default()).await);
    let conn = rusqlite::Connection::open(&path).expect("open with rusqlite");
    conn.pragma_update(None, "user_version", 99)
        .expect("set user_version");
    drop(conn);
    let error = SqliteLog::open_async(path, SqliteLogOptions::default())
        .await
        .expect_err("a newer schema must be refused");
    assert!(
        matches!(&error, LogError::Storage(message) if message.contains("schema version 99")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unopenable_path_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing-dir").join("events.db");
    let error = SqliteLog::open_async(path, SqliteLogOptions::default())
        .await
        .expect_err("no such directory");
    assert!(matches!(error, LogError::Storage(_)), "{error}");
}
