//! Event-to-push latency under load: `callgrid serve` (router, embedded log, projector,
//! supervisor service; no SIP) driven by the `traffic` gRPC generator, with one push client
//! per tenant on the supervisor's stream (`/api/v1/tenants/T/live/stream`). For every
//! `change` a client receives, latency = its arrival time − the time of the oldest event the
//! change reflects (the router's timestamp of the event), recorded in an HDR histogram.
//!
//! ```text
//! push-latency --rate 2500 --duration 60     # issue 2's half load: 2,500 calls/s
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use callgrid_loadtest::harness::{admin_token, find_bin, free_tcp_port, http_get, tail, Proc};
use callgrid_loadtest::machine;
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// The callgrid binary.
    #[arg(long, default_value = "target/release/callgrid")]
    callgrid: PathBuf,
    /// The traffic generator.
    #[arg(long, default_value = "target/release/traffic")]
    traffic: PathBuf,
    /// Offered calls per second (all tenants).
    #[arg(long, default_value_t = 2_500.0)]
    rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Tenants.
    #[arg(long, default_value_t = 8)]
    tenants: usize,
    /// Agents per tenant.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Working directory (a temporary one by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One push client: records every change's latency until the stream ends or `stop`.
async fn client(
    port: u16,
    token: String,
    tenant: String,
    hist: Arc<Mutex<Histogram<u64>>>,
    changes: Arc<Mutex<u64>>,
) -> anyhow::Result<()> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(
        format!(
            "GET /api/v1/tenants/{tenant}/live/stream HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut lines = BufReader::new(s).lines();
    let mut event = String::new();
    while let Some(line) = lines.next_line().await? {
        if let Some(n) = line.strip_prefix("event: ") {
            event = n.to_owned();
        } else if let Some(d) = line.strip_prefix("data: ") {
            if event != "change" {
                continue;
            }
            let now = now_ms();
            let v: serde_json::Value = serde_json::from_str(d)?;
            if let Some(oldest) = v["oldest_event_ms"].as_u64() {
                let _ = hist
                    .lock()
                    .map(|mut h| h.record(now.saturating_sub(oldest)));
                *changes.lock().expect("lock") += 1;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let tmp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    println!("{}", machine::describe());
    let (grpc, http) = (free_tcp_port()?, free_tcp_port()?);
    // children run in `dir`: absolute paths
    let abs = |p: &PathBuf| std::fs::canonicalize(find_bin(p, &[])).unwrap_or_else(|_| p.clone());
    let (callgrid, traffic_bin) = (abs(&a.callgrid), abs(&a.traffic));
    let mut serve = Proc::spawn(
        "callgrid",
        Command::new(&callgrid)
            .args(["serve", "--no-sip", "--no-demo", "--data-dir"])
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--supervisor-listen", &format!("127.0.0.1:{http}")])
            .env("RUST_LOG", "warn"),
        &dir,
        false,
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let token = loop {
        if let (Ok(_), Some(t)) = (
            http_get(http, "", "/healthz").await,
            admin_token(&dir.join("data")),
        ) {
            break t;
        }
        if Instant::now() > deadline || serve.poll().is_some() {
            bail!("callgrid did not start: {}", tail(&serve.log, 10));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
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
    // the tenants appear once the generator has loaded them and the projector has them
    let names: Vec<String> = (0..a.tenants).map(|i| format!("lt{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = http_get(http, &token, "/api/v1/tenants")
            .await
            .unwrap_or_default();
        if names.iter().all(|n| listed.contains(&format!("\"{n}\""))) {
            break;
        }
        if Instant::now() > deadline || traffic.poll().is_some() {
            bail!("the tenants never appeared: {}", tail(&traffic.log, 10));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let changes = Arc::new(Mutex::new(0u64));
    let mut clients = Vec::new();
    for n in &names {
        clients.push(tokio::spawn(client(
            http,
            token.clone(),
            n.clone(),
            hist.clone(),
            changes.clone(),
        )));
    }
    let started = Instant::now();
    let cpu0 = serve.cpu_s();
    while traffic.poll().is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = serve.cpu_s() - cpu0;
    // let the projector drain what is left, then stop listening
    tokio::time::sleep(Duration::from_secs(2)).await;
    for c in &clients {
        c.abort();
    }
    println!("traffic generator:\n{}", tail(&traffic.log, 12));
    let h = hist
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |h| h.clone());
    let n = *changes.lock().expect("lock");
    println!(
        "push: {n} changes to {} clients over {secs:.0} s; event -> client latency ms: p50 {} p90 {} p99 {} p99.9 {} max {}",
        names.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    );
    println!(
        "callgrid serve CPU: {cpu:.1} s over {secs:.0} s ({:.2} cores)",
        cpu / secs
    );
    serve.stop();
    Ok(())
}
