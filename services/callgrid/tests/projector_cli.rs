//! `callgrid projector` as a process on an embedded log filled with a simulated day: killed
//! with `-9` mid-stream and restarted, its projections equal a `--rebuild` from the log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use callgrid_eventlog::{EventLog, SqliteLog, SqliteLogOptions};
use callgrid_loadtest::day::{simulate, DayParams};
use callgrid_store::{ProjectionStore, SqliteStore};
use callgrid_testkit::{eventually_every, Node};

const TOPIC: &str = "callgrid.events.v1";

async fn start(dir: &Path) -> Node {
    Node::projector(env!("CARGO_BIN_EXE_callgrid"))
        .data_dir(dir)
        // a write after every small batch, so that the kill falls mid-stream
        .args([
            "--projector-batch",
            "100",
            "--projector-write-every-ms",
            "0",
        ])
        .start()
        .await
}

/// Records projected so far (the sum of the store's checkpoints).
async fn projected(store: &SqliteStore) -> u64 {
    let mut n = 0;
    for p in 0..8 {
        n += store.checkpoint(p).await.ok().flatten().unwrap_or(0);
    }
    n
}

/// Waits until the projector has projected `at_least` records, looking every 2 ms (it
/// projects a day in well under a second); returns the store it looked at.
async fn wait_for(dir: &Path, at_least: u64) -> SqliteStore {
    let path = dir.join("projections.sqlite");
    let mut store = None;
    eventually_every(
        &format!("the projector to reach {at_least}"),
        Duration::from_secs(120),
        Duration::from_millis(2),
        async || {
            if store.is_none() && path.exists() {
                store = SqliteStore::open(&path).ok();
            }
            match &store {
                Some(s) if projected(s).await >= at_least => store.take(),
                _ => None,
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_mid_stream_and_restarted_equals_a_rebuild() {
    let day = simulate(&DayParams::new("acme", 30, 3, 8_000, 23));
    let total = day.records.len() as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = SqliteLog::open_async(
        dir.path().join("events.sqlite"),
        SqliteLogOptions::default(),
    )
    .await
    .expect("log");
    log.create_topic(TOPIC, 8).await.expect("topic");
    for chunk in day.records.chunks(2_000) {
        log.append(TOPIC, chunk.to_vec()).await.expect("append");
    }
    log.close().await;

    // kill -9 a quarter of the way through, then let a new process finish
    let first = start(dir.path()).await;
    let store = wait_for(dir.path(), total / 4).await;
    drop(first);
    let stopped_at = projected(&store).await;
    assert!(
        stopped_at < total,
        "killed mid-stream ({stopped_at} of {total})"
    );
    let second = start(dir.path()).await;
    wait_for(dir.path(), total).await;
    drop(second);
    let restarted = SqliteStore::open(&dir.path().join("projections.sqlite"))
        .expect("store")
        .dump()
        .await
        .expect("dump");

    // a rebuild from the same log, in another directory
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        dir.path().join("events.sqlite"),
        other.path().join("events.sqlite"),
    )
    .expect("copy");
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["projector", "--rebuild", "--data-dir"])
        .arg(other.path())
        .output()
        .expect("rebuild runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("rebuilt: {total} events")),
        "{stderr}"
    );
    assert!(
        stderr.contains("[########################################]"),
        "a progress bar: {stderr}"
    );
    let rebuilt = SqliteStore::open(&other.path().join("projections.sqlite"))
        .expect("store")
        .dump()
        .await
        .expect("dump");
    assert_eq!(restarted.len(), rebuilt.len());
    assert!(
        restarted == rebuilt,
        "a restarted projector differs from a rebuild"
    );
    assert!(rebuilt.len() > 10_000, "a day's worth of rows");

    // a second rebuild of the same store drops what was there first: same rows again
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["projector", "--rebuild", "--data-dir"])
        .arg(other.path())
        .output()
        .expect("rebuild runs");
    assert!(out.status.success());
    let again = SqliteStore::open(&other.path().join("projections.sqlite"))
        .expect("store")
        .dump()
        .await
        .expect("dump");
    assert!(again == rebuilt);

    // no log: a clear error
    let empty = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["projector", "--rebuild", "--data-dir"])
        .arg(empty.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event log at"));
}
