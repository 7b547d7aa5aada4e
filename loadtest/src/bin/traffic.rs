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
//!
//! `--overload` measures goodput under overload in one run: it finds the rate the router
//! holds (10 s steps from `--rate` up by `--step-factor` until a step completes less than
//! 99 % of its calls or fails one), offers twice that for `--overload-seconds`, then half of it for
//! `--recovery-seconds`, and prints per phase: completed calls/s, refusals and how fast they
//! were answered (HDR p50/p99), and failures from 5 s after the load dropped.

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
    /// Router address (`https://` with --tls-ca).
    #[arg(long, default_value = "http://127.0.0.1:7300")]
    router: String,
    /// The CA that signed the router's certificate, for an `https://` address (`callgrid
    /// certs` makes one).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
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
    /// Measure goodput under overload (see the top of this file); `--rate` is where the
    /// search for the rate held starts.
    #[arg(long)]
    overload: bool,
    /// Rate held: skip the search and take this one (calls/s, real time).
    #[arg(long)]
    capacity: Option<f64>,
    /// Search steps: each this many times the last.
    #[arg(long, default_value_t = 1.15)]
    step_factor: f64,
    /// Seconds of each search step.
    #[arg(long, default_value_t = 10.0)]
    step_seconds: f64,
    /// Seconds at twice the rate held.
    #[arg(long, default_value_t = 30.0)]
    overload_seconds: f64,
    /// Seconds at half the rate held, after the overload.
    #[arg(long, default_value_t = 20.0)]
    recovery_seconds: f64,
    /// Also print each phase's refusals by second of arrival (count and slowest).
    #[arg(long)]
    per_second: bool,
}

struct Stats {
    offered: AtomicU64,
    answered: AtomicU64,
    abandoned: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    /// Calls the router refused at once (UNAVAILABLE: shed; RESOURCE_EXHAUSTED: a limit).
    refused: AtomicU64,
    /// Calls that ended normally after an agent answered.
    talked: AtomicU64,
    refused_reports: AtomicU64,
    in_sl: AtomicU64,
    wait_sum_ms: AtomicU64,
    decision_us: Mutex<Histogram<u64>>,
    wait_ms: Mutex<Histogram<u64>>,
    /// Arrival sent -> refusal received (µs).
    refusal_us: Mutex<Histogram<u64>>,
    /// Refusals by status code and message (the router names the limit or the shedding).
    refusal_reasons: Mutex<std::collections::BTreeMap<String, u64>>,
    /// How late the generator's own tasks run (µs; a 5 ms timer's lateness): when it is
    /// large, the generator itself is behind and its latencies include its own wait.
    lag_us: Mutex<Histogram<u64>>,
    /// When the phase began, and the refusals of each of its seconds: (count, worst µs).
    began: Instant,
    refusals_by_second: Mutex<Vec<(u64, u64)>>,
}

impl Stats {
    fn new() -> anyhow::Result<Arc<Stats>> {
        Ok(Arc::new(Stats {
            offered: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            talked: AtomicU64::new(0),
            refused_reports: AtomicU64::new(0),
            in_sl: AtomicU64::new(0),
            wait_sum_ms: AtomicU64::new(0),
            decision_us: Mutex::new(Histogram::new(3)?),
            wait_ms: Mutex::new(Histogram::new(3)?),
            refusal_us: Mutex::new(Histogram::new(3)?),
            refusal_reasons: Mutex::new(std::collections::BTreeMap::new()),
            lag_us: Mutex::new(Histogram::new(3)?),
            began: Instant::now(),
            refusals_by_second: Mutex::new(Vec::new()),
        }))
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Everything a call needs that does not change from call to call.
struct Plan {
    tenants: usize,
    talk_s: f64,
    ring_delay_s: f64,
    patience_s: Option<f64>,
    sl_s: f64,
    scale: f64,
    numbers: Vec<String>,
    id_prefix: String,
    channels: Vec<Authed>,
    free: Arc<Vec<AtomicI64>>,
}

/// Offers Poisson arrivals at `rate` calls/s (real time) for `duration` seconds or until
/// `limit` calls, counting into `stats`; returns the calls' tasks and the seconds spent
/// offering. Call ids go on from `*n`.
async fn offer(
    plan: &Plan,
    rng: &mut SmallRng,
    rate: f64,
    duration: f64,
    limit: u64,
    n: &mut u64,
    stats: &Arc<Stats>,
) -> (tokio::task::JoinSet<()>, f64) {
    let started = Instant::now();
    let mut next = 0.0f64; // real seconds since start
    let mut offered = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while offered < limit {
        next += exp(rng, 1.0 / rate);
        if next > duration {
            break;
        }
        let at = started + Duration::from_secs_f64(next);
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let tenant = rng.random_range(0..plan.tenants);
        let talk = Duration::from_secs_f64(exp(rng, plan.talk_s) / plan.scale);
        let patience = plan
            .patience_s
            .map(|p| Duration::from_secs_f64(exp(rng, p) / plan.scale));
        let ch = plan.channels[(*n as usize) % plan.channels.len()].clone();
        let ctx = CallCtx {
            id: format!("{}-{n}", plan.id_prefix),
            tenant,
            number: plan.numbers[tenant].clone(),
            talk,
            ring_delay: Duration::from_secs_f64(plan.ring_delay_s / plan.scale),
            patience,
            sl: Duration::from_secs_f64(plan.sl_s / plan.scale),
            scale: plan.scale,
            stats: stats.clone(),
            free: plan.free.clone(),
        };
        stats.offered.fetch_add(1, Ordering::Relaxed);
        tasks.spawn(run_call(ch, ctx));
        *n += 1;
        offered += 1;
        // reap finished tasks now and then to bound memory
        while tasks.try_join_next().is_some() {}
    }
    (tasks, started.elapsed().as_secs_f64().min(duration))
}

/// Waits for `tasks` at most `limit`; returns how many were still running (then aborted).
async fn drain(mut tasks: tokio::task::JoinSet<()>, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    while !tasks.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let n = tasks.len();
            tasks.abort_all();
            return n;
        }
        let _ = tokio::time::timeout(left, tasks.join_next()).await;
    }
    0
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
        let mut endpoint = Channel::from_shared(a.router.clone())?.tcp_nodelay(true);
        if let Some(ca) = &a.tls_ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA {}", ca.display()))?;
            endpoint = endpoint.tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            )?;
        }
        let ch = endpoint
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
    let stats = Stats::new()?;
    let stats_before = admin
        .stats(api::StatsRequest {
            reset_latency: true,
        })
        .await?
        .into_inner();
    println!("{}", machine::describe());
    println!("{}", machine::speed_reference());
    let plan = Plan {
        tenants: a.tenants,
        talk_s: a.talk_s,
        ring_delay_s: a.ring_delay_s,
        patience_s: a.patience_s,
        sl_s: a.sl_s,
        scale,
        numbers: (0..a.tenants).map(|i| number(&a, i)).collect(),
        id_prefix: format!("{}-{}", a.prefix, a.seed),
        channels,
        free,
    };
    let mut rng = SmallRng::seed_from_u64(a.seed);
    let mut n = 0u64;
    if a.overload {
        return overload(&a, &plan, &mut rng, &mut n, &mut admin).await;
    }
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
    let limit = a.calls.unwrap_or(u64::MAX);
    let (tasks, offering_s) = offer(
        &plan,
        &mut rng,
        rate * scale,
        a.duration,
        limit,
        &mut n,
        &stats,
    )
    .await;
    let left = drain(
        tasks,
        Duration::from_secs_f64((a.talk_s * 20.0 / scale).max(30.0)),
    )
    .await;
    if left > 0 {
        println!("warning: {left} calls still in progress at the end");
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

/// What one phase of the overload run saw.
struct Phase {
    name: &'static str,
    rate: f64,
    seconds: f64,
    stats: Arc<Stats>,
    /// Calls still running when the phase's drain ended.
    stuck: usize,
}

impl Phase {
    fn talked_per_s(&self) -> f64 {
        Stats::get(&self.stats.talked) as f64 / self.seconds
    }

    /// Held: at least 99 % of the calls offered completed (the shedder refuses a few during
    /// the embedded log's checkpoints, as SIP-rate steps fail a few), none failed or stuck.
    fn held(&self) -> bool {
        let s = &self.stats;
        Stats::get(&s.failed) == 0
            && self.stuck == 0
            && Stats::get(&s.talked) as f64 >= 0.99 * Stats::get(&s.offered) as f64
    }

    fn print(&self) {
        let s = &self.stats;
        let (r50, r99, rmax) = s.refusal_us.lock().map_or((0, 0, 0), |h| {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
        });
        let (d50, d99) = s.decision_us.lock().map_or((0, 0), |h| {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
        });
        let lag99 = s.lag_us.lock().map_or(0, |h| h.value_at_quantile(0.99));
        println!(
            "{:<10} {:>7.0}/s {:>5.0} s  offered {:>7}  completed {:>7} ({:>6.0}/s)  refused {:>7} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms)  failed {:>5}  stuck {:>4}  ring p50 {:.1} ms p99 {:.1} ms  generator lag p99 {:.1} ms",
            self.name,
            self.rate,
            self.seconds,
            Stats::get(&s.offered),
            Stats::get(&s.talked),
            self.talked_per_s(),
            Stats::get(&s.refused),
            r50 as f64 / 1000.0,
            r99 as f64 / 1000.0,
            rmax as f64 / 1000.0,
            Stats::get(&s.failed),
            self.stuck,
            d50 as f64 / 1000.0,
            d99 as f64 / 1000.0,
            lag99 as f64 / 1000.0,
        );
        if let Ok(reasons) = s.refusal_reasons.lock() {
            for (why, n) in reasons.iter() {
                println!("{:<10}   refused {n:>7}: {why}", "");
            }
        }
    }
}

/// Runs one phase: offers `rate` for `seconds`, then waits for its calls.
async fn phase(
    name: &'static str,
    plan: &Plan,
    rng: &mut SmallRng,
    n: &mut u64,
    rate: f64,
    seconds: f64,
    per_second: bool,
) -> anyhow::Result<Phase> {
    let stats = Stats::new()?;
    let probe = {
        let stats = stats.clone();
        tokio::spawn(async move {
            const EVERY: Duration = Duration::from_millis(5);
            loop {
                let t = Instant::now();
                tokio::time::sleep(EVERY).await;
                let late = t.elapsed().saturating_sub(EVERY).as_micros() as u64;
                if let Ok(mut h) = stats.lag_us.lock() {
                    let _ = h.record(late.max(1));
                }
            }
        })
    };
    let (tasks, _) = offer(plan, rng, rate, seconds, u64::MAX, n, &stats).await;
    probe.abort();
    let stuck = drain(
        tasks,
        Duration::from_secs_f64((plan.talk_s * 20.0 / plan.scale).max(10.0)),
    )
    .await;
    let p = Phase {
        name,
        rate,
        seconds,
        stats,
        stuck,
    };
    p.print();
    if per_second {
        if let Ok(v) = p.stats.refusals_by_second.lock() {
            let line: Vec<String> = v
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| *n > 0)
                .map(|(i, (n, w))| format!("{i}s:{n}/{:.0}ms", *w as f64 / 1000.0))
                .collect();
            println!(
                "  refusals by second of arrival (count/worst): {}",
                line.join(" ")
            );
        }
    }
    Ok(p)
}

/// The overload run: the rate held, twice it, then half of it (see the top of this file).
async fn overload(
    a: &Args,
    plan: &Plan,
    rng: &mut SmallRng,
    n: &mut u64,
    admin: &mut api::admin_client::AdminClient<Authed>,
) -> anyhow::Result<()> {
    let shed_before = admin
        .stats(api::StatsRequest {
            reset_latency: false,
        })
        .await?
        .into_inner()
        .calls_shed;
    let capacity = match a.capacity {
        Some(c) => c,
        None => {
            println!("-- search for the rate held ({} s steps)", a.step_seconds);
            let mut rate = a.rate;
            let mut held = None;
            loop {
                let p = phase("search", plan, rng, n, rate, a.step_seconds, a.per_second).await?;
                if !p.held() {
                    break;
                }
                held = Some(rate);
                rate *= a.step_factor;
                // let the router settle between steps
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            held.ok_or_else(|| anyhow::anyhow!("not even {} calls/s held", a.rate))?
        }
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("-- rate held {capacity:.0} calls/s: now twice that, then half");
    let over = phase(
        "overload",
        plan,
        rng,
        n,
        2.0 * capacity,
        a.overload_seconds,
        a.per_second,
    )
    .await?;
    // the recovery phase starts as the overload's offering ends (its drain overlaps)
    let settle = phase("settle", plan, rng, n, capacity / 2.0, 5.0, a.per_second).await?;
    let after = phase(
        "recovered",
        plan,
        rng,
        n,
        capacity / 2.0,
        (a.recovery_seconds - 5.0).max(5.0),
        a.per_second,
    )
    .await?;
    let st = admin
        .stats(api::StatsRequest {
            reset_latency: false,
        })
        .await?
        .into_inner();
    let goodput = over.talked_per_s() / capacity;
    let refusal_p99_ms = over
        .stats
        .refusal_us
        .lock()
        .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
    let after_failures =
        Stats::get(&after.stats.refused) + Stats::get(&after.stats.failed) + after.stuck as u64;
    println!(
        "goodput under 2x overload: {:.0} completed calls/s = {:.1} % of the {capacity:.0}/s held (line: >= 80 %)",
        over.talked_per_s(),
        100.0 * goodput
    );
    println!("refusals answered in p99 {refusal_p99_ms:.1} ms (line: <= 50 ms)");
    println!(
        "after the load dropped: {} refused or failed in the first 5 s, {after_failures} from 5 s on (line: 0)",
        Stats::get(&settle.stats.refused) + Stats::get(&settle.stats.failed) + settle.stuck as u64
    );
    println!(
        "router: {} calls shed by the backlog, shedding probability now {:.3}, backlog {} us",
        st.calls_shed - shed_before,
        st.shed_probability,
        st.backlog_us
    );
    let pass = goodput >= 0.8 && refusal_p99_ms <= 50.0 && after_failures == 0;
    println!("overload goodput: {}", if pass { "PASS" } else { "FAIL" });
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
        Err(st) => {
            refused_or_failed(&c.stats, &st, arrived);
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
                Ok(None) => {
                    if answered {
                        c.stats.talked.fetch_add(1, Ordering::Relaxed);
                    }
                    break;
                }
                Err(st) => {
                    if answered {
                        c.stats.failed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused_or_failed(&c.stats, &st, arrived);
                    }
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

/// Counts a call the router ended before it was answered: a refusal (`UNAVAILABLE`, load
/// shed, or `RESOURCE_EXHAUSTED`, a limit), timed from the arrival, or a failure.
fn refused_or_failed(s: &Stats, st: &tonic::Status, arrived: Instant) {
    match st.code() {
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted => {
            s.refused.fetch_add(1, Ordering::Relaxed);
            let us = (arrived.elapsed().as_micros() as u64).max(1);
            if let Ok(mut r) = s.refusal_reasons.lock() {
                let why: String = st.message().chars().take(80).collect();
                *r.entry(format!("{:?}: {why}", st.code())).or_default() += 1;
            }
            if let Ok(mut h) = s.refusal_us.lock() {
                let _ = h.record(us);
            }
            let second = arrived.saturating_duration_since(s.began).as_secs() as usize;
            if let Ok(mut v) = s.refusals_by_second.lock() {
                if v.len() <= second {
                    v.resize(second + 1, (0, 0));
                }
                v[second].0 += 1;
                v[second].1 = v[second].1.max(us);
            }
        }
        _ => {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
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
    println!("refused at arrival {}", s.refused.load(Ordering::Relaxed));
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
