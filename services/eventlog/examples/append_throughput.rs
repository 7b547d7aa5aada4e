//! Append throughput of the embedded log: concurrent appenders sending keyed
//! batches for a fixed time, then the rate and the batch latencies.
//!
//! ```text
//! cargo run -p callgrid-eventlog --release --example append_throughput -- \
//!     [--appenders 16] [--batch 50] [--value-bytes 200] [--partitions 12] \
//!     [--seconds 10] [--durability fsync|process] [--dir /path/on/the/disk/to/test]
//! ```
//!
//! The database goes in a fresh temporary directory under `--dir` (default:
//! the system temporary directory; mind that it may be a RAM disk).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callgrid_eventlog::{Durability, EventLog, Record, SqliteLog, SqliteLogOptions};

struct Args {
    appenders: usize,
    batch: usize,
    value_bytes: usize,
    partitions: u32,
    seconds: u64,
    durability: Durability,
    dir: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        appenders: 16,
        batch: 50,
        value_bytes: 200,
        partitions: 12,
        seconds: 10,
        durability: Durability::Fsync,
        dir: std::env::temp_dir(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--appenders" => args.appenders = number()?.max(1) as usize,
            "--batch" => args.batch = number()?.max(1) as usize,
            "--value-bytes" => args.value_bytes = number()? as usize,
            "--partitions" => args.partitions = number()?.clamp(1, 10_000) as u32,
            "--seconds" => args.seconds = number()?.max(1),
            "--durability" => {
                args.durability = match value.as_str() {
                    "fsync" => Durability::Fsync,
                    "process" => Durability::ProcessCrashSafe,
                    other => return Err(format!("unknown durability {other}")),
                }
            }
            "--dir" => args.dir = PathBuf::from(value),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let dir = tempfile::tempdir_in(&args.dir)?;
    let path = dir.path().join("events.db");
    let options = SqliteLogOptions {
        durability: args.durability,
        ..SqliteLogOptions::default()
    };
    let log: Arc<dyn EventLog> = Arc::new(SqliteLog::open_async(path.clone(), options).await?);
    log.create_topic("throughput", args.partitions).await?;
    println!(
        "{} appenders x batches of {} records of {} value bytes, {:?}, {} partitions, {} s, database {}",
        args.appenders,
        args.batch,
        args.value_bytes,
        args.durability,
        args.partitions,
        args.seconds,
        path.display()
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for appender in 0..args.appenders {
        let log = Arc::clone(&log);
        let (batch, value_bytes) = (args.batch, args.value_bytes);
        tasks.spawn(async move {
            let value = vec![b'v'; value_bytes];
            let mut latencies = Vec::new();
            let mut n = 0usize;
            while Instant::now() < deadline {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_default();
                let records = (0..batch)
                    .map(|i| {
                        let key = format!("tenant-{}", (appender * 7919 + n + i) % 1000);
                        Record::new(key, value.clone(), now_ms)
                    })
                    .collect();
                n += batch;
                let sent = Instant::now();
                log.append("throughput", records).await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, callgrid_eventlog::LogError>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();

    let mut stored = 0;
    for partition in 0..args.partitions {
        stored += log.end_offset("throughput", partition).await?;
    }
    let records = (latencies.len() * args.batch) as u64;
    assert_eq!(stored, records, "every acknowledged record is in the log");
    let rate = records as f64 / elapsed.as_secs_f64();
    println!(
        "{records} records in {:.2} s: {:.0} records/s, {:.1} MB/s of values, {:.0} appends/s",
        elapsed.as_secs_f64(),
        rate,
        rate * args.value_bytes as f64 / 1e6,
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "append latency: p50 {:?}, p99 {:?}, p99.9 {:?}, max {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
