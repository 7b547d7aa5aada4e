//! Projector throughput into the embedded store: simulated call-centre days for many tenants
//! (`callgrid_loadtest::day`: logins, breaks, calls queueing, ringing, answered or abandoned,
//! wrap-up) are written to an embedded event log, then one projector projects them all into
//! a SQLite projection store on disk, from scratch (what `callgrid projector --rebuild` does).
//! Prints events per second and the per-batch time percentiles.
//!
//! ```text
//! projector-load --tenants 20 --agents 60 --calls 6000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use callgrid_eventlog::{Durability, EventLog, SqliteLog, SqliteLogOptions};
use callgrid_loadtest::day::{simulate, DayParams};
use callgrid_loadtest::machine;
use callgrid_projector::{Projector, ProjectorOptions, EVENTS_TOPIC};
use callgrid_store::{read_all, ProjectionStore, Span, SqliteStore, MAX_PAGE_LIMIT};
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    /// Tenants (each its own day, spread over the log's partitions).
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Agents per tenant.
    #[arg(long, default_value_t = 60)]
    agents: usize,
    /// Queues per tenant.
    #[arg(long, default_value_t = 4)]
    queues: usize,
    /// Calls per tenant over the day.
    #[arg(long, default_value_t = 6_000)]
    calls: u64,
    /// Events per projector batch.
    #[arg(long, default_value_t = 5_000)]
    batch: usize,
    /// Partitions of the events topic.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Working directory (a temporary one by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    println!("{}", machine::describe());

    let started = Instant::now();
    let days: Vec<_> = (0..a.tenants)
        .map(|i| {
            let mut p = DayParams::new(
                &format!("t{i:03}"),
                a.agents,
                a.queues,
                a.calls,
                1000 + i as u64,
            );
            // enough agents for the calls: about 70 % occupancy at the mid-day peak
            p.mean_talk_s = 120.0;
            p
        })
        .map(|p| simulate(&p))
        .collect();
    let events: usize = days.iter().map(|d| d.records.len()).sum();
    let calls: usize = days.iter().map(|d| d.calls.len()).sum();
    println!(
        "generated {} tenants' days: {calls} calls, {events} events in {:.1} s",
        a.tenants,
        started.elapsed().as_secs_f64()
    );

    let log = SqliteLog::open_async(
        dir.join("events.sqlite"),
        SqliteLogOptions {
            durability: Durability::ProcessCrashSafe,
            ..SqliteLogOptions::default()
        },
    )
    .await
    .context("event log")?;
    log.create_topic(EVENTS_TOPIC, a.partitions).await?;
    let started = Instant::now();
    for d in &days {
        for chunk in d.records.chunks(5_000) {
            log.append(EVENTS_TOPIC, chunk.to_vec()).await?;
        }
    }
    println!(
        "appended to the embedded log in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log: Arc<dyn EventLog> = Arc::new(log);

    let store_path = dir.join("projections.sqlite");
    let _ = std::fs::remove_file(&store_path);
    let store: Arc<dyn ProjectionStore> = Arc::new(SqliteStore::open(&store_path)?);
    let projector = Projector::new(
        log,
        store.clone(),
        ProjectorOptions {
            batch: a.batch,
            ..ProjectorOptions::default()
        },
    );
    // per-batch time: the gap between progress updates of one run
    let mut progress = projector.progress();
    let watcher = tokio::spawn(async move {
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        let mut last = Instant::now();
        while progress.changed().await.is_ok() {
            let now = Instant::now();
            let _ = h.record(now.duration_since(last).as_micros() as u64);
            last = now;
        }
        h
    });
    let started = Instant::now();
    let projected = projector.catch_up().await?;
    let secs = started.elapsed().as_secs_f64();
    drop(projector);
    let batches = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .ok()
        .and_then(Result::ok);
    let rows = store.dump().await?.len();
    let records: usize = {
        let mut n = 0;
        for t in 0..a.tenants {
            let tenant = format!("t{t:03}");
            n += read_all(MAX_PAGE_LIMIT, |p| {
                store.call_records(&tenant, Span::all(), p)
            })
            .await?
            .len();
        }
        n
    };
    anyhow::ensure!(records == calls, "{records} call records for {calls} calls");
    println!(
        "projected {projected} events into SQLite ({} partitions, batches of {}) in {secs:.2} s: {:.0} events/s; {rows} rows, {records} call records",
        a.partitions,
        a.batch,
        projected as f64 / secs
    );
    if let Some(h) = batches {
        println!(
            "time between batch commits (ms, all partitions): p50 {:.2} p99 {:.2} max {:.2} ({} batches)",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            h.len()
        );
    }
    Ok(())
}
