//! A process killed with SIGKILL after an append returned `Ok` loses nothing.
//!
//! Each test re-executes this test binary, filtered to itself, with
//! [`CHILD_ENV`] naming a database: the child appends from several tasks and
//! prints `ACK <appender> <last sequence number>` after every acknowledged
//! batch. The parent kills it once some thousands of records are
//! acknowledged, reopens the database and checks every acknowledged record.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use callgrid_eventlog::{Durability, EventLog, Record, SqliteLog, SqliteLogOptions};

/// Set (to the database path) only in the child process.
const CHILD_ENV: &str = "CALLGRID_EVENTLOG_CRASH_TEST_DB";
const TOPIC: &str = "crash";
const PARTITIONS: u32 = 4;
const APPENDERS: u32 = 4;
const BATCH: u64 = 50;
/// Kill the child once this many records are acknowledged.
const KILL_AFTER: u64 = 10_000;
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn kill_9_after_fsync_appends_loses_nothing() {
    crash_test(
        "kill_9_after_fsync_appends_loses_nothing",
        Durability::Fsync,
    );
}

#[test]
fn kill_9_after_process_crash_safe_appends_loses_nothing() {
    crash_test(
        "kill_9_after_process_crash_safe_appends_loses_nothing",
        Durability::ProcessCrashSafe,
    );
}

fn options(durability: Durability) -> SqliteLogOptions {
    SqliteLogOptions {
        durability,
        ..SqliteLogOptions::default()
    }
}

fn crash_test(test_name: &str, durability: Durability) {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        // We are the child the parent test started.
        append_until_killed(Path::new(&db), durability);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("events.db");
    let mut child = Command::new(std::env::current_exe().expect("current test binary"))
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let stdout = child.stdout.take().expect("child stdout");
    let (acks_tx, acks) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = parse_ack(&line) {
                // The receiver lives until this thread is joined.
                let _ = acks_tx.send(ack);
            }
        }
    });

    // Highest acknowledged sequence number per appender.
    let mut acknowledged: HashMap<u32, u64> = HashMap::new();
    let total = |acked: &HashMap<u32, u64>| acked.values().map(|last| last + 1).sum::<u64>();
    let started = Instant::now();
    while total(&acknowledged) < KILL_AFTER {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match acks.recv_timeout(left) {
            Ok((appender, last)) => record_ack(&mut acknowledged, appender, last),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the child acknowledged only {} records in {:?} (exit: {status:?})",
                    total(&acknowledged),
                    started.elapsed()
                );
            }
        }
    }
    assert!(
        matches!(child.try_wait(), Ok(None)),
        "the child exited on its own before the kill"
    );
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap the child");
    assert!(!status.success(), "the child was killed: {status:?}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    }
    reader.join().expect("stdout reader");
    // Acknowledgements printed just before the kill count too.
    for (appender, last) in acks.try_iter() {
        record_ack(&mut acknowledged, appender, last);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(verify(&db, durability, &acknowledged));
}

fn record_ack(acknowledged: &mut HashMap<u32, u64>, appender: u32, last: u64) {
    let entry = acknowledged.entry(appender).or_insert(last);
    *entry = (*entry).max(last);
}

/// `ACK <appender> <last>` anywhere in a line (the test harness may print
/// before it on the same line).
fn parse_ack(line: &str) -> Option<(u32, u64)> {
    let rest = &line[line.find("ACK ")? + 4..];
    let mut fields = rest.split_whitespace();
    let appender = fields.next()?.parse().ok()?;
    let last = fields.next()?.parse().ok()?;
    Some((appender, last))
}

/// The child: appends batches from several tasks forever, acknowledging each
/// on stdout after `append` returned `Ok`.
fn append_until_killed(db: &Path, durability: Durability) -> ! {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let log = SqliteLog::open(db, options(durability)).expect("open");
        let log = Arc::new(log);
        log.create_topic(TOPIC, PARTITIONS).await.expect("create");
        let mut tasks = tokio::task::JoinSet::new();
        for appender in 0..APPENDERS {
            let log = Arc::clone(&log);
            tasks.spawn(async move {
                let padding = "x".repeat(100);
                let mut next = 0u64;
                loop {
                    let batch = (next..next + BATCH)
                        .map(|seq| {
                            Record::new(
                                format!("{appender}-{}", seq % 13),
                                format!("{appender}:{seq}:{padding}"),
                                1_700_000_000_000,
                            )
                        })
                        .collect();
                    log.append(TOPIC, batch).await.expect("append");
                    next += BATCH;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {appender} {}", next - 1).expect("write ack");
                    out.flush().expect("flush ack");
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("appender");
        }
    });
    unreachable!("the appenders never stop");
}

async fn verify(db: &Path, durability: Durability, acknowledged: &HashMap<u32, u64>) {
    let log = SqliteLog::open_async(db.to_path_buf(), options(durability))
        .await
        .expect("reopen after the crash");
    let mut stored = HashSet::new();
    for partition in 0..PARTITIONS {
        let end = log.end_offset(TOPIC, partition).await.expect("end_offset");
        let records = log
            .read(TOPIC, partition, 0, usize::MAX)
            .await
            .expect("read");
        assert_eq!(records.len() as u64, end, "partition {partition}");
        let mut last_seq: HashMap<u32, u64> = HashMap::new();
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset, i as u64, "gap in partition {partition}");
            let value = String::from_utf8_lossy(&record.value);
            let mut fields = value.split(':');
            let appender: u32 = fields
                .next()
                .and_then(|f| f.parse().ok())
                .expect("appender");
            let seq: u64 = fields.next().and_then(|f| f.parse().ok()).expect("seq");
            assert!(
                stored.insert((appender, seq)),
                "{appender}:{seq} stored twice"
            );
            if let Some(previous) = last_seq.insert(appender, seq) {
                assert!(
                    previous < seq,
                    "appender {appender} out of order in partition {partition}"
                );
            }
        }
        // The log goes on where it ended.
        let offsets = log
            .append_to(TOPIC, partition, vec![Record::new("after", "crash", 0)])
            .await
            .expect("append after the crash");
        assert_eq!(offsets, vec![end]);
    }
    let mut lost = Vec::new();
    for (&appender, &last) in acknowledged {
        lost.extend(
            (0..=last)
                .filter(|&seq| !stored.contains(&(appender, seq)))
                .map(|seq| (appender, seq)),
        );
    }
    let acked: u64 = acknowledged.values().map(|last| last + 1).sum();
    assert!(
        lost.is_empty(),
        "{} of {acked} acknowledged records lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(stored.len() as u64 >= acked);
    eprintln!(
        "{durability:?}: {acked} records acknowledged before SIGKILL, {} stored, none lost",
        stored.len()
    );
}
