//! The router's Kafka produce rate beside a plain librdkafka producer, same broker, same
//! run: a Tansu broker (memory storage) on 127.0.0.1; `callgrid router --kafka` driven by the
//! `traffic` gRPC generator, its produce rate measured as the growth of the events topic's
//! end offsets while the generator runs; then `loadtest/kafka/plain_producer.py`
//! (confluent-kafka, the same producer settings) sends as many messages of the router's mean
//! record size to another topic of the same broker. Prints both rates and their ratio.
//! `callgrid projector --kafka` follows the topic meanwhile (router → Kafka → projector →
//! SQLite store: its rate and how soon after the generator it has caught up), and a
//! `--rebuild` from the topic measures the projector alone.
//!
//! ```text
//! python3 -m pip install confluent-kafka
//! kafka-produce --rate 3000 --duration 30
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use callgrid_eventlog::{tansu, EventLog, KafkaLog, KafkaLogOptions};
use callgrid_loadtest::harness::{admin_token, find_bin, free_tcp_port, http_get, tail, Proc};
use callgrid_loadtest::machine;
use clap::Parser;

const TOPIC: &str = "callgrid.events.v1";
const PARTITIONS: u32 = 8;

#[derive(Parser)]
struct Args {
    /// The callgrid binary.
    #[arg(long, default_value = "target/release/callgrid")]
    callgrid: PathBuf,
    /// The traffic generator.
    #[arg(long, default_value = "target/release/traffic")]
    traffic: PathBuf,
    /// The plain producer script.
    #[arg(long, default_value = "loadtest/kafka/plain_producer.py")]
    plain: PathBuf,
    /// Offered calls per second (all tenants).
    #[arg(long, default_value_t = 3_000.0)]
    rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Tenants.
    #[arg(long, default_value_t = 8)]
    tenants: usize,
    /// Agents per tenant.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Records each producer sends in the saturated comparison.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Working directory (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

async fn total_end(log: &KafkaLog, topic: &str) -> anyhow::Result<u64> {
    let mut n = 0;
    for p in 0..log.partition_count(topic).await? {
        n += log.end_offset(topic, p).await?;
    }
    Ok(n)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    println!("{}", machine::describe());
    let abs = |p: &PathBuf| std::fs::canonicalize(find_bin(p, &[])).unwrap_or_else(|_| p.clone());
    let (callgrid, traffic_bin, plain) = (abs(&a.callgrid), abs(&a.traffic), abs(&a.plain));

    let broker = tansu::start();
    println!(
        "broker: Tansu ({}) at {}",
        tansu::binary().display(),
        broker.brokers
    );
    let log = Arc::new(KafkaLog::new(KafkaLogOptions::new(broker.brokers.clone()))?);

    let grpc = free_tcp_port()?;
    let mut router = Proc::spawn(
        "router",
        Command::new(&callgrid)
            .args(["router", "--no-demo", "--kafka", &broker.brokers])
            .args(["--partitions", &PARTITIONS.to_string()])
            .args(["--snapshot-every", "0", "--data-dir"])
            .arg(dir.join("router"))
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .env("RUST_LOG", "warn"),
        &dir,
        false,
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let token = loop {
        let up = tokio::net::TcpStream::connect(("127.0.0.1", grpc))
            .await
            .is_ok();
        if let (true, Some(t)) = (up, admin_token(&dir.join("router"))) {
            break t;
        }
        if Instant::now() > deadline || router.poll().is_some() {
            bail!("the router did not start: {}", tail(&router.log, 10));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // the projector on the same topic, with its supervisor service (progress at
    // /api/v1/projector)
    let http = free_tcp_port()?;
    let mut projector = Proc::spawn(
        "projector",
        Command::new(&callgrid)
            .args(["projector", "--kafka", &broker.brokers, "--data-dir"])
            .arg(dir.join("projector"))
            .args(["--supervisor-listen", &format!("127.0.0.1:{http}")])
            .env("RUST_LOG", "warn"),
        &dir,
        false,
    )?;
    let projected = || async {
        let text = http_get(http, &token, "/api/v1/projector").await.ok()?;
        let body = text.split("\r\n\r\n").nth(1)?;
        serde_json::from_str::<serde_json::Value>(body).ok()?["projected"].as_u64()
    };
    let mut traffic = Proc::spawn(
        "traffic",
        Command::new(&traffic_bin)
            .args(["--router", &format!("http://127.0.0.1:{grpc}")])
            .env("CALLGRID_TOKEN", &token)
            .args(["--tenants", &a.tenants.to_string()])
            .args(["--agents", &a.agents.to_string()])
            .args(["--rate", &a.rate.to_string()])
            .args(["--duration", &a.duration.to_string()]),
        &dir,
        false,
    )?;
    // measure from when the tenants are configured (their first events are in the topic)
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (start_events, started) = (total_end(&log, TOPIC).await?, Instant::now());
    let projected0 = projected().await.unwrap_or(0);
    let (cpu0, pcpu0) = (router.cpu_s(), projector.cpu_s());
    while traffic.poll().is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu, pcpu) = (router.cpu_s() - cpu0, projector.cpu_s() - pcpu0);
    let projected1 = projected().await.unwrap_or(0);
    let end = total_end(&log, TOPIC).await?;
    let produced = end - start_events;
    let router_rate = produced as f64 / secs;
    println!("traffic generator:\n{}", tail(&traffic.log, 6));
    router.stop();
    // how long after the generator stopped the projector had projected everything
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(120);
    while projected().await.unwrap_or(0) < end {
        if Instant::now() > deadline || projector.poll().is_some() {
            bail!(
                "the projector did not catch up: {}",
                tail(&projector.log, 10)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lag = stopped.elapsed().as_secs_f64();
    println!(
        "projector on Kafka (live, beside the router): {:.0} events/s while the generator ran; all {end} events projected {lag:.2} s after it stopped; projector CPU {:.2} cores",
        (projected1 - projected0) as f64 / secs,
        pcpu / secs
    );
    projector.stop();
    // the projector alone at full speed: a rebuild from the topic
    let out = Command::new(&callgrid)
        .args([
            "projector",
            "--rebuild",
            "--kafka",
            &broker.brokers,
            "--data-dir",
        ])
        .arg(dir.join("rebuild"))
        .env("RUST_LOG", "warn")
        .output()
        .context("callgrid projector --rebuild")?;
    let text = String::from_utf8_lossy(&out.stderr);
    match text.lines().find(|l| l.starts_with("rebuilt:")) {
        Some(l) if out.status.success() => {
            println!("projector rebuild from Kafka into SQLite: {l}")
        }
        _ => bail!("the rebuild failed: {text}"),
    }

    // the router's records: mean key and value size
    let (mut n, mut key, mut value) = (0u64, 0u64, 0u64);
    for p in 0..PARTITIONS {
        let end = log.end_offset(TOPIC, p).await?;
        for r in log.read(TOPIC, p, end.saturating_sub(2_000), 2_000).await? {
            n += 1;
            key += r.key.len() as u64;
            value += r.value.len() as u64;
        }
    }
    anyhow::ensure!(n > 0, "the router produced nothing");
    let (key, value) = ((key / n).max(1), (value / n).max(1));
    println!(
        "router: {produced} events in {secs:.1} s: {router_rate:.0} events/s to Kafka (acks=all, idempotent), mean record {value} B + key {key} B; router CPU {:.2} cores",
        cpu / secs
    );

    // the router's own producer at full speed: its journal (group commit, up to 20,000
    // records a batch) over KafkaLog, fed the router's real records as fast as it takes them
    let sample: Vec<callgrid_eventlog::Record> = {
        let mut v = Vec::new();
        for p in 0..PARTITIONS {
            let end = log.end_offset(TOPIC, p).await?;
            for r in log.read(TOPIC, p, end.saturating_sub(2_000), 2_000).await? {
                v.push(callgrid_eventlog::Record::new(
                    r.key,
                    r.value,
                    r.timestamp_ms,
                ));
            }
        }
        v
    };
    let journal_log: Arc<dyn EventLog> =
        Arc::new(KafkaLog::new(KafkaLogOptions::new(broker.brokers.clone()))?);
    let journal = callgrid_router::journal::Journal::start(journal_log);
    let target = a.records;
    let started = Instant::now();
    let mut sent = 0u64;
    let mut last = 0;
    let mut durable = journal.durable_watch();
    let chunk: Vec<callgrid_eventlog::Record> = sample.iter().take(500).cloned().collect();
    while sent < target {
        // at most 100,000 records queued ahead of what is durable (200 appends of 500)
        while last >= *durable.borrow_and_update() + 200 {
            durable.changed().await?;
        }
        sent += chunk.len() as u64;
        last = journal.append(chunk.clone());
    }
    journal.wait(last).await?;
    let journal_secs = started.elapsed().as_secs_f64();
    let journal_rate = sent as f64 / journal_secs;
    println!(
        "router journal on KafkaLog, saturated: {sent} records in {journal_secs:.2} s: {journal_rate:.0} records/s"
    );

    log.create_topic("plain.v1", PARTITIONS).await?;
    let out = Command::new("python3")
        .arg(&plain)
        .args([
            broker.brokers.as_str(),
            "plain.v1",
            &a.records.to_string(),
            &value.to_string(),
            &key.to_string(),
        ])
        .output()
        .context("python3 runs")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!(
            "the plain producer failed (python3 -m pip install confluent-kafka?): {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{text}");
    let plain_rate: f64 = text
        .rsplit(": ")
        .next()
        .and_then(|s| s.trim().trim_end_matches(" msg/s").parse().ok())
        .context("the plain producer's rate")?;
    println!(
        "ratio: router journal {journal_rate:.0} records/s / plain producer {plain_rate:.0} msg/s = {:.2} (routing-bound rate above: {:.2})",
        journal_rate / plain_rate,
        router_rate / plain_rate
    );
    Ok(())
}
