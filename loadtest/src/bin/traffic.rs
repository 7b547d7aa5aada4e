//! Traffic generator: drives a running router over gRPC exactly as a SIP edge would.
//!
//! Poisson arrivals, exponential talk times, agents that answer after a ring delay, callers
//! who abandon after an exponential patience; time can be compressed (`--scale`, with the
//! router started with the same `--time-scale`). Prints offered, answered, abandoned, ASA,
//! service level, routing-decision latency percentiles (HDR histogram), calls/s and events/s,
//! and the machine it ran on.
//!
//! ```text
//! callgrid serve --data-dir /tmp/lt --no-demo &
//! traffic --router http://127.0.0.1:7300 --token-file /tmp/lt/admin.token \
//!   --tenants 8 --agents 100 --rate 5000 --duration 60
//! ```
//!
//! It loads tenants and plays the edge, so it shows a platform admin's token
//! (`CALLGRID_TOKEN` or `--token-file`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use callgrid_loadtest::harness::{authed, Authed};
use callgrid_loadtest::{erlang, machine};
use callgrid_proto::api::v1 as api;
use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use api::edge_report::Report as R;
use api::router_instruction::Instruction as I;

#[derive(Parser, Clone, Debug)]
#[command(about = "Drive a callgrid router over gRPC as a SIP edge would")]
struct Args {
    /// Router address.
    #[arg(long, default_value = "http://127.0.0.1:7300")]
    router: String,
    /// A platform admin's token (the generator loads tenants and plays the edge).
    #[arg(long = "token", env = "CALLGRID_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding that token (DATA_DIR/admin.token of `callgrid serve`).
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Tenants to load and spread calls over (`<prefix>0..`).
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// Agents per tenant (all in one queue).
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Queue strategy.
    #[arg(long, default_value = "longest_idle")]
    strategy: String,
    /// Offered calls per second of model time (all tenants together); with --erlangs it is
    /// derived instead.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Offered load in Erlangs (sets the rate from the mean talk time).
    #[arg(long)]
    erlangs: Option<f64>,
    /// Stop offering after this many seconds of real time.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Stop offering after this many calls.
    #[arg(long)]
    calls: Option<u64>,
    /// Mean talk time, model seconds.
    #[arg(long, default_value_t = 0.05)]
    talk_s: f64,
    /// Agents answer this long after the ring starts, model seconds.
    #[arg(long, default_value_t = 0.005)]
    ring_delay_s: f64,
    /// Mean caller patience, model seconds (none = nobody abandons).
    #[arg(long)]
    patience_s: Option<f64>,
    /// Service-level threshold, model seconds.
    #[arg(long, default_value_t = 20.0)]
    sl_s: f64,
    /// Model time runs this many times faster than real time (start the router with the same
    /// --time-scale).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// gRPC connections to spread the call streams over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Tenant id prefix.
    #[arg(long, default_value = "lt")]
    prefix: String,
    /// RNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

struct Stats {
    offered: AtomicU64,
    answered: AtomicU64,
    abandoned: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    refused_reports: AtomicU64,
    in_sl: AtomicU64,
    wait_sum_ms: AtomicU64,
    decision_us: Mutex<Histogram<u64>>,
    wait_ms: Mutex<Histogram<u64>>,
}

fn tenant_yaml(a: &Args, i: usize) -> String {
    let mut y = format!(
        "tenant: {p}{i}\nname: Load tenant {i}\ntimezone: UTC\nreason_codes: [break]\n\
         limits: {{ max_concurrent_calls: 1000000 }}\n\
         defaults: {{ wrapup_seconds: 0, max_missed_offers: 0, service_level_seconds: {sl} }}\nagents:\n",
        p = a.prefix,
        sl = a.sl_s.round().max(1.0) as u64
    );
    for j in 0..a.agents {
        y.push_str(&format!(
            "  - {{ id: a{j}, name: Agent {j}, extension: \"{}\" }}\n",
            100_000 + j
        ));
    }
    y.push_str(&format!(
        "queues:\n  - id: \"200\"\n    name: Load\n    strategy: {}\n    wrapup_seconds: 0\n    members:\n",
        a.strategy
    ));
    for j in 0..a.agents {
        y.push_str(&format!("      - {{ agent: a{j} }}\n"));
    }
    y.push_str(&format!(
        "numbers:\n  - {{ number: \"{}\", name: load, route: {{ queue: \"200\" }} }}\n",
        number(a, i)
    ));
    y
}

/// The number of load tenant `i` (distinct per prefix, so several runs can share a router).
fn number(a: &Args, i: usize) -> String {
    let code = a
        .prefix
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 1000;
    format!("+1{code:03}{i:07}")
}

fn exp(rng: &mut SmallRng, mean: f64) -> f64 {
    -(1.0 - rng.random::<f64>()).ln() * mean
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let scale = a.scale.max(1e-9);
    let rate = match a.erlangs {
        Some(e) => e / a.talk_s,
        None => a.rate,
    };
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => t.trim().to_owned(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?
            .trim()
            .to_owned(),
        (None, None) => {
            anyhow::bail!("give a platform admin's token: CALLGRID_TOKEN or --token-file")
        }
    };
    let mut channels = Vec::new();
    for _ in 0..a.connections.max(1) {
        let ch = Channel::from_shared(a.router.clone())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", a.router))?;
        channels.push(authed(ch, &token)?);
    }
    let mut admin = api::admin_client::AdminClient::new(channels[0].clone());
    let mut agents = api::agent_service_client::AgentServiceClient::new(channels[0].clone());
    for i in 0..a.tenants {
        admin
            .load_tenant(api::LoadTenantRequest {
                yaml: tenant_yaml(&a, i),
                source_name: format!("{}{i}.yaml", a.prefix),
            })
            .await
            .map_err(|st| anyhow::anyhow!("load tenant {}{i}: {}", a.prefix, st.message()))?;
        for j in 0..a.agents {
            let r = agents
                .login(api::LoginRequest {
                    tenant: format!("{}{i}", a.prefix),
                    agent: format!("a{j}"),
                    devices: vec![format!("sip:a{j}@127.0.0.1")],
                    not_ready_reason: String::new(),
                })
                .await;
            if let Err(st) = r {
                if st.code() != tonic::Code::FailedPrecondition {
                    anyhow::bail!("login of a{j}: {st}");
                }
            }
        }
    }
    let free: Arc<Vec<AtomicI64>> = Arc::new(
        (0..a.tenants)
            .map(|_| AtomicI64::new(a.agents as i64))
            .collect(),
    );
    let stats = Arc::new(Stats {
        offered: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        abandoned: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        refused_reports: AtomicU64::new(0),
        in_sl: AtomicU64::new(0),
        wait_sum_ms: AtomicU64::new(0),
        decision_us: Mutex::new(Histogram::new(3)?),
        wait_ms: Mutex::new(Histogram::new(3)?),
    });
    let stats_before = admin
        .stats(api::StatsRequest {
            reset_latency: true,
        })
        .await?
        .into_inner();
    println!("{}", machine::describe());
    println!(
        "offering {:.1} calls/s of model time ({:.1}/s real) to {} tenants x {} agents, mean talk {} s, scale {}",
        rate,
        rate * scale,
        a.tenants,
        a.agents,
        a.talk_s,
        scale
    );
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(a.seed);
    let mut next = 0.0f64; // real seconds since start
    let mut n = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    let limit = a.calls.unwrap_or(u64::MAX);
    while n < limit {
        next += exp(&mut rng, 1.0 / (rate * scale));
        if next > a.duration {
            break;
        }
        let at = started + Duration::from_secs_f64(next);
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let tenant = rng.random_range(0..a.tenants);
        let talk = Duration::from_secs_f64(exp(&mut rng, a.talk_s) / scale);
        let patience = a
            .patience_s
            .map(|p| Duration::from_secs_f64(exp(&mut rng, p) / scale));
        let ch = channels[(n as usize) % channels.len()].clone();
        let ctx = CallCtx {
            id: format!("{}-{}-{n}", a.prefix, a.seed),
            tenant,
            number: number(&a, tenant),
            talk,
            ring_delay: Duration::from_secs_f64(a.ring_delay_s / scale),
            patience,
            sl: Duration::from_secs_f64(a.sl_s / scale),
            scale,
            stats: stats.clone(),
            free: free.clone(),
        };
        stats.offered.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(run_call(ch, ctx));
        n += 1;
        // reap finished tasks now and then to bound memory
        while tasks.try_join_next().is_some() {}
    }
    let offering_s = started.elapsed().as_secs_f64();
    let drain_deadline =
        Instant::now() + Duration::from_secs_f64((a.talk_s * 20.0 / scale).max(30.0));
    while !tasks.is_empty() {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            println!(
                "warning: {} calls still in progress at the end",
                tasks.len()
            );
            tasks.abort_all();
            break;
        }
        let _ = tokio::time::timeout(left, tasks.join_next()).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats_after = admin
        .stats(api::StatsRequest {
            reset_latency: false,
        })
        .await?
        .into_inner();
    report(
        &a,
        &stats,
        rate,
        offering_s,
        elapsed,
        stats_after.events_written - stats_before.events_written,
    );
    if let Some(d) = stats_after.decision_us {
        println!(
            "decision in router p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us ({} calls; arrival at the call actor -> offer decided, before durability)",
            d.p50, d.p90, d.p99, d.p999, d.max, d.count
        );
    }
    Ok(())
}

struct CallCtx {
    id: String,
    tenant: usize,
    number: String,
    talk: Duration,
    ring_delay: Duration,
    patience: Option<Duration>,
    sl: Duration,
    scale: f64,
    stats: Arc<Stats>,
    free: Arc<Vec<AtomicI64>>,
}

enum Next {
    Answer(String),
    Hangup,
    Abandon,
}

async fn run_call(ch: Authed, c: CallCtx) {
    let arrived = Instant::now();
    let free_at_arrival = c.free[c.tenant].load(Ordering::Relaxed) > 0;
    let (tx, rx) = mpsc::channel(8);
    let mut seq = 1;
    let report = |seq: u64, r: R| api::EdgeReport {
        call_id: c.id.clone(),
        seq,
        report: Some(r),
        ack: false,
    };
    let _ = tx
        .send(report(
            seq,
            R::Arrived(api::Arrived {
                number: c.number.clone(),
                caller: "0961234566".into(),
                tenant: String::new(),
                traceparent: String::new(),
            }),
        ))
        .await;
    let mut client = api::call_control_client::CallControlClient::new(ch);
    let mut stream = match client.call(ReceiverStream::new(rx)).await {
        Ok(s) => s.into_inner(),
        Err(_) => {
            c.stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut next: Option<(Instant, Next)> = c.patience.map(|p| (arrived + p, Next::Abandon));
    let mut answered = false;
    let mut took_agent = false;
    loop {
        let sleep = async {
            match &next {
                Some((at, _)) => tokio::time::sleep_until((*at).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = stream.message() => match msg {
                Ok(Some(ins)) => match ins.instruction {
                    Some(I::Ring(r)) => {
                        if !took_agent {
                            took_agent = true;
                            c.free[c.tenant].fetch_sub(1, Ordering::Relaxed);
                        }
                        if free_at_arrival {
                            let us = arrived.elapsed().as_micros() as u64;
                            if let Ok(mut h) = c.stats.decision_us.lock() { let _ = h.record(us.max(1)); }
                        }
                        if c.ring_delay.is_zero() {
                            // answer at once: no timer tick between ring and answer
                            seq += 1;
                            let _ = tx.send(report(seq, R::Ringing(api::AgentRinging { agent: r.agent.clone() }))).await;
                            seq += 1;
                            let _ = tx.send(report(seq, R::Answered(api::AgentAnswered { agent: r.agent }))).await;
                        } else {
                            next = Some((Instant::now() + c.ring_delay, Next::Answer(r.agent)));
                        }
                    }
                    Some(I::Bridge(_)) => {
                        answered = true;
                        let wait = arrived.elapsed();
                        let wait_model_ms = (wait.as_secs_f64() * 1000.0 * c.scale) as u64;
                        c.stats.answered.fetch_add(1, Ordering::Relaxed);
                        c.stats.wait_sum_ms.fetch_add(wait_model_ms, Ordering::Relaxed);
                        if wait <= c.sl {
                            c.stats.in_sl.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut h) = c.stats.wait_ms.lock() { let _ = h.record(wait_model_ms.max(1)); }
                        next = Some((Instant::now() + c.talk, Next::Hangup));
                    }
                    Some(I::Result(r)) if r.code != 0 => {
                        c.stats.refused_reports.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => {
                    c.stats.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            },
            _ = sleep => {
                let Some((_, action)) = next.take() else { continue };
                match action {
                    Next::Answer(agent) => {
                        seq += 1;
                        let _ = tx.send(report(seq, R::Ringing(api::AgentRinging { agent: agent.clone() }))).await;
                        seq += 1;
                        let _ = tx.send(report(seq, R::Answered(api::AgentAnswered { agent }))).await;
                    }
                    Next::Hangup => {
                        seq += 1;
                        let _ = tx.send(report(seq, R::Hangup(api::Hangup { party: api::Party::Caller as i32, sip_code: 0 }))).await;
                    }
                    Next::Abandon => {
                        if !answered {
                            c.stats.abandoned.fetch_add(1, Ordering::Relaxed);
                            seq += 1;
                            let _ = tx.send(report(seq, R::Hangup(api::Hangup { party: api::Party::Caller as i32, sip_code: 0 }))).await;
                        }
                    }
                }
            }
        }
    }
    if took_agent {
        c.free[c.tenant].fetch_add(1, Ordering::Relaxed);
    }
    c.stats.completed.fetch_add(1, Ordering::Relaxed);
}

fn report(a: &Args, s: &Stats, rate: f64, offering_s: f64, elapsed_s: f64, events: u64) {
    let offered = s.offered.load(Ordering::Relaxed);
    let answered = s.answered.load(Ordering::Relaxed);
    let abandoned = s.abandoned.load(Ordering::Relaxed);
    let in_sl = s.in_sl.load(Ordering::Relaxed);
    let completed = s.completed.load(Ordering::Relaxed);
    let asa_s = s.wait_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0 / answered.max(1) as f64;
    println!("offered            {offered}");
    println!("answered           {answered}");
    println!("abandoned          {abandoned}");
    println!("failed streams     {}", s.failed.load(Ordering::Relaxed));
    println!(
        "refused reports    {}",
        s.refused_reports.load(Ordering::Relaxed)
    );
    println!("ASA                {asa_s:.2} s (model time)");
    println!(
        "service level      {:.1} % answered within {} s of offered",
        100.0 * in_sl as f64 / offered.max(1) as f64,
        a.sl_s
    );
    if let (Some(e), None) = (a.erlangs, a.patience_s) {
        let n = (a.agents * a.tenants) as u32;
        println!(
            "Erlang C           {:.1} % (N={n}, A={e}, talk {} s, threshold {} s)",
            100.0 * erlang::service_level(n, e, a.talk_s, a.sl_s),
            a.talk_s,
            a.sl_s
        );
    }
    if let Ok(h) = s.decision_us.lock() {
        println!(
            "routing decision   p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us ({} calls that found a free agent; arrival report sent -> ring received, durable)",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len()
        );
    }
    if let Ok(h) = s.wait_ms.lock() {
        println!(
            "wait (model)       p50 {} ms, p90 {} ms, p99 {} ms",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99)
        );
    }
    println!(
        "calls/s            {:.0} offered, {:.0} completed ({} completed in {:.1} s; target {:.0}/s)",
        offered as f64 / offering_s,
        completed as f64 / elapsed_s,
        completed,
        elapsed_s,
        rate * a.scale
    );
    println!(
        "events/s           {:.0} ({events} events durable)",
        events as f64 / elapsed_s
    );
}
