//! `click-to-call`: calls out through a real `callgrid serve` at a fixed rate (issue 18's
//! must-hold): `AgentService/ClickToCall` over gRPC for agents whose phones are SIPp UASes
//! that answer at once; a SIPp carrier answers each customer and hangs up after the talk
//! time. Measured on the wire with `tcpdump` on loopback: for each call, from the agent's
//! 200 OK reaching the edge to the customer's INVITE leaving it (the line: p99 ≤ 20 ms at
//! 100 calls/s, 10 s talk, fsync durability). Also: the RPC's latency, calls that failed, and
//! the CPU seconds of `callgrid serve`.
//!
//! Needs `sipp` (Debian `sip-tester`) and `tcpdump` (Debian `tcpdump`; capturing needs root
//! or CAP_NET_RAW). Sends only to 127.0.0.1, for `--duration` seconds.
//!
//! ```sh
//! cargo build --release -p callgrid -p callgrid-loadtest
//! target/release/click-to-call --callgrid-bin target/release/callgrid --rate 100 --duration 30
//! ```

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use callgrid_loadtest::harness::{
    connect, free_tcp_port, free_udp_range, free_udp_tcp_port, read_stat, until_serving,
    wait_udp_bound, Proc,
};
use callgrid_loadtest::machine;
use callgrid_proto::api::v1 as api;
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(about = "Click-to-call rate and the customer's INVITE after the agent's 200 OK")]
struct Args {
    /// The callgrid binary (a release build).
    #[arg(long, default_value = "target/release/callgrid")]
    callgrid_bin: PathBuf,
    /// SIPp.
    #[arg(long, default_value = "sipp")]
    sipp: PathBuf,
    /// tcpdump.
    #[arg(long, default_value = "tcpdump")]
    tcpdump: PathBuf,
    /// SIPp scenarios.
    #[arg(long, default_value = "loadtest/sipp")]
    scenarios: PathBuf,
    /// Click-to-calls per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Talk time of each call (the customer hangs up), ms.
    #[arg(long, default_value_t = 10_000)]
    talk_ms: u64,
    /// Agents (default: enough that each gets a call every talk time + 5 s).
    #[arg(long)]
    agents: Option<usize>,
    /// SIPp processes answering as the agents' phones.
    #[arg(long, default_value_t = 2)]
    phones: usize,
    /// `--durability` of callgrid serve.
    #[arg(long, default_value = "fsync")]
    durability: String,
    /// Working directory (logs, capture).
    #[arg(long, default_value = "target/click-to-call")]
    work: PathBuf,
}

fn tenant_yaml(agents: usize, carrier_port: u16) -> String {
    let mut y = String::from(
        "tenant: load\nname: Click-to-call load\ntimezone: Asia/Ho_Chi_Minh\nregion: VN\n\
         limits: { max_concurrent_calls: 1000000 }\n\
         defaults: { wrapup_seconds: 0, max_missed_offers: 0, ring_timeout_seconds: 20 }\nagents:\n",
    );
    for i in 1..=agents {
        y.push_str(&format!(
            "  - {{ id: a{i:04}, name: Agent {i}, extension: \"{}\" }}\n",
            10_000 + i
        ));
    }
    y.push_str(
        "numbers:\n  - { number: \"+842873000100\", name: Hotline, route: { agent: a0001 }, carrier: viettel, trunks: [carrier] }\n",
    );
    y.push_str(&format!(
        "trunks:\n  - {{ id: carrier, name: Load carrier, address: \"127.0.0.1:{carrier_port}\", keepalive_seconds: 0, max_concurrent_calls: 1000000 }}\n"
    ));
    y
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let r = run(&a).await;
    if r.is_err() {
        callgrid_loadtest::harness::print_log_tails();
    }
    r
}

async fn run(a: &Args) -> anyhow::Result<()> {
    println!("{}", machine::describe());
    println!("{}", machine::speed_reference());
    let talk_s = a.talk_ms as f64 / 1000.0;
    let agents = a
        .agents
        .unwrap_or(((a.rate * (talk_s + 5.0)).ceil() as usize).max(10));
    ensure!(agents <= 9_999, "at most 9,999 agents");
    let _ = fs::remove_dir_all(&a.work);
    fs::create_dir_all(&a.work)?;
    let work = fs::canonicalize(&a.work)?;
    let scenarios = fs::canonicalize(&a.scenarios).context("--scenarios")?;

    // the carrier: answers each customer, hangs up after the talk time
    let carrier_port = free_udp_range(1)?;
    let calls = (a.rate * a.duration as f64).ceil() as u64;
    let mut carrier = Proc::spawn(
        "carrier",
        Command::new(&a.sipp)
            .arg("-sf")
            .arg(scenarios.join("agent_hangup.xml"))
            .args(["-i", "127.0.0.1", "-p", &carrier_port.to_string()])
            .args(["-d", &a.talk_ms.to_string(), "-m", &calls.to_string()])
            .args(["-nostdin", "-aa", "-trace_stat", "-fd", "1"]),
        &work.join("carrier"),
        false,
    )?;
    // the agents' phones: answer at once, wait for the platform's BYE
    let phone_base = free_udp_range(a.phones)?;
    let mut phones = Vec::new();
    for i in 0..a.phones {
        let port = phone_base + i as u16;
        phones.push(Proc::spawn(
            &format!("phone-{i}"),
            Command::new(&a.sipp)
                .arg("-sf")
                .arg(scenarios.join("agent_answer.xml"))
                .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                .args(["-nostdin", "-aa", "-trace_stat", "-fd", "1"]),
            &work.join(format!("phone-{i}")),
            false,
        )?);
    }
    wait_udp_bound(carrier_port, &mut carrier, Duration::from_secs(10)).await?;
    for (i, p) in phones.iter_mut().enumerate() {
        wait_udp_bound(phone_base + i as u16, p, Duration::from_secs(10)).await?;
    }

    let tenants = work.join("callgrid/tenants");
    fs::create_dir_all(&tenants)?;
    fs::write(tenants.join("load.yaml"), tenant_yaml(agents, carrier_port))?;
    let sip_port = free_udp_tcp_port()?;
    let grpc_port = free_tcp_port()?;
    let http_port = free_tcp_port()?;
    let mut sut = Proc::spawn(
        "callgrid",
        Command::new(&a.callgrid_bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(work.join("callgrid/data"))
            .arg("--no-demo")
            .arg("--tenants")
            .arg(&tenants)
            .args(["--listen", &format!("127.0.0.1:{grpc_port}")])
            .args(["--supervisor-listen", &format!("127.0.0.1:{http_port}")])
            .args(["--sip-listen", &format!("127.0.0.1:{sip_port}")])
            .args(["--durability", &a.durability])
            .env("RUST_LOG", "warn"),
        &work.join("callgrid"),
        false,
    )?;
    let grpc = format!("http://127.0.0.1:{grpc_port}");
    let token = until_serving(
        &grpc,
        &work.join("callgrid/data"),
        1,
        &mut sut,
        Duration::from_secs(60),
    )
    .await?;
    wait_udp_bound(sip_port, &mut sut, Duration::from_secs(15)).await?;

    // agents available, each phone a device of the SIPp phone processes
    let mut agent_api =
        api::agent_service_client::AgentServiceClient::new(connect(&grpc, &token).await?);
    for i in 1..=agents {
        let port = phone_base + ((i - 1) % a.phones) as u16;
        agent_api
            .login(api::LoginRequest {
                tenant: "load".into(),
                agent: format!("a{i:04}"),
                devices: vec![format!("sip:a{i:04}@127.0.0.1:{port}")],
                not_ready_reason: String::new(),
            })
            .await
            .with_context(|| format!("login of a{i:04}"))?;
    }

    // capture the edge's SIP on loopback
    let pcap = work.join("sip.pcap");
    let mut capture = Proc::spawn(
        "tcpdump",
        Command::new(&a.tcpdump)
            .args(["-i", "lo", "-s", "0", "-B", "65536", "-U", "-w"])
            .arg(&pcap)
            .args(["udp", "port", &sip_port.to_string()]),
        &work,
        false,
    )
    .context("tcpdump (apt-get install tcpdump)")?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if let Some(st) = capture.poll() {
        bail!("tcpdump exited ({st}): see {}", capture.log.display());
    }

    // the click-to-calls, at the rate, each to the next agent in turn
    let cpu0 = sut.cpu_s();
    let rpc = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let failed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(HashMap::<String, u64>::new()));
    let started = Instant::now();
    let every = Duration::from_secs_f64(1.0 / a.rate);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let channel = connect(&grpc, &token).await?;
    let mut tasks = Vec::new();
    for n in 0..calls {
        tick.tick().await;
        let agent = format!("a{:04}", (n as usize % agents) + 1);
        let number = format!("+8496{:07}", n % 10_000_000);
        let mut client = api::agent_service_client::AgentServiceClient::new(channel.clone());
        let (rpc, failed, errors) = (rpc.clone(), failed.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = client
                .click_to_call(api::ClickToCallRequest {
                    tenant: "load".into(),
                    agent,
                    number,
                    correlation_id: format!("load-{n}"),
                })
                .await;
            match r {
                Ok(_) => {
                    let us = t0.elapsed().as_micros() as u64;
                    if let Ok(mut h) = rpc.lock() {
                        let _ = h.record(us.max(1));
                    }
                }
                Err(st) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut e) = errors.lock() {
                        *e.entry(format!("{:?}: {}", st.code(), st.message()))
                            .or_default() += 1;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let offered_s = started.elapsed().as_secs_f64();
    // let the last calls talk and end
    tokio::time::sleep(Duration::from_millis(a.talk_ms + 3_000)).await;
    let cpu = sut.cpu_s() - cpu0;
    capture.stop();
    // tcpdump flushes on SIGTERM; the harness kills: give it the file as written (-U)

    let (latency, matched, unmatched) = invite_after_200(&pcap)?;
    let rpc = rpc
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| Histogram::new(3).expect("hist"));
    let failed = failed.load(Ordering::Relaxed);
    println!(
        "click-to-call: {calls} placed in {offered_s:.1} s ({:.1}/s offered), {failed} refused or failed",
        calls as f64 / offered_s
    );
    for (e, n) in errors.lock().map(|e| e.clone()).unwrap_or_default() {
        println!("  {n} x {e}");
    }
    println!(
        "ClickToCall RPC (until the call exists, durable): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        rpc.value_at_quantile(0.5) as f64 / 1000.0,
        rpc.value_at_quantile(0.99) as f64 / 1000.0,
        rpc.max() as f64 / 1000.0
    );
    println!(
        "customer INVITE after the agent's 200 OK, on the wire (tcpdump on lo): {matched} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({unmatched} agent answers without a customer INVITE)",
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.max() as f64 / 1000.0
    );
    println!(
        "callgrid serve CPU: {cpu:.1} s over {:.1} s ({:.2} cores); {:.2} CPU-s per 1,000 calls",
        offered_s + (a.talk_ms as f64 + 3000.0) / 1000.0,
        cpu / (offered_s + (a.talk_ms as f64 + 3000.0) / 1000.0),
        cpu / calls as f64 * 1000.0
    );
    // what SIPp saw: every call answered and ended on both sides
    let sipp_totals = |dir: &Path| -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for f in fs::read_dir(dir).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|e| e == "csv") {
                if let Some(last) = read_stat(&f.path())
                    .ok()
                    .and_then(|rows| rows.into_iter().last())
                {
                    t = (t.0 + last.created, t.1 + last.ok, t.2 + last.failed);
                }
            }
        }
        t
    };
    let (c, ok, bad) = sipp_totals(&work.join("carrier"));
    println!("carrier (SIPp): {c} calls, {ok} completed, {bad} failed");
    let mut phones_total = (0, 0, 0);
    for i in 0..a.phones {
        let (c, ok, bad) = sipp_totals(&work.join(format!("phone-{i}")));
        phones_total = (
            phones_total.0 + c,
            phones_total.1 + ok,
            phones_total.2 + bad,
        );
    }
    println!(
        "agents' phones (SIPp): {} calls, {} completed, {} failed",
        phones_total.0, phones_total.1, phones_total.2
    );
    println!("durability: {}", a.durability);
    Ok(())
}

/// One UDP datagram of the capture: time (µs) and payload.
struct Datagram {
    at_us: u64,
    text: String,
}

/// The UDP payloads of a pcap file (Ethernet, Linux cooked v1/v2 or BSD loopback framing).
fn datagrams(path: &Path) -> anyhow::Result<Vec<Datagram>> {
    let bytes = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    ensure!(bytes.len() >= 24, "{} is not a pcap file", path.display());
    let magic = u32::from_le_bytes(bytes[0..4].try_into()?);
    let (nanos, swap) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (true, false),
        0xd4c3_b2a1 => (false, true),
        0x4d3c_b2a1 => (true, true),
        _ => bail!("{} is not a pcap file (pcapng?)", path.display()),
    };
    let u32_at = |b: &[u8]| {
        let v = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        if swap {
            v.swap_bytes()
        } else {
            v
        }
    };
    let link = u32_at(&bytes[20..24]);
    let frame = match link {
        1 => 14,   // Ethernet
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        0 => 4,    // BSD loopback
        other => bail!("link type {other} not read"),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let secs = u64::from(u32_at(&bytes[at..at + 4]));
        let frac = u64::from(u32_at(&bytes[at + 4..at + 8]));
        let caplen = u32_at(&bytes[at + 8..at + 12]) as usize;
        let data_at = at + 16;
        at = data_at + caplen;
        if at > bytes.len() {
            break; // the last record was cut short
        }
        let p = &bytes[data_at..data_at + caplen];
        if p.len() < frame + 20 {
            continue;
        }
        let ip = &p[frame..];
        if ip[0] >> 4 != 4 || ip[9] != 17 {
            continue; // IPv4 UDP only
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip.len() < ihl + 8 {
            continue;
        }
        let payload = &ip[ihl + 8..];
        let at_us = secs * 1_000_000 + if nanos { frac / 1000 } else { frac };
        out.push(Datagram {
            at_us,
            text: String::from_utf8_lossy(payload).into_owned(),
        });
    }
    Ok(out)
}

fn header<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Per call: the first 200 OK to the INVITE of the agent's leg (matched by the leg's Call-ID,
/// which the edge's INVITE to the phone ties to the call by X-Callgrid-Call) and the first
/// INVITE toward the carrier carrying that call's X-Callgrid-Call; the histogram of the
/// difference (µs), the calls matched, and the agent answers with no customer INVITE.
fn invite_after_200(pcap: &Path) -> anyhow::Result<(Histogram<u64>, u64, u64)> {
    let mut leg_call: HashMap<String, String> = HashMap::new(); // agent leg Call-ID → call
    let mut answered: HashMap<String, u64> = HashMap::new(); // call → 200 OK time
    let mut invited: HashMap<String, u64> = HashMap::new(); // call → customer INVITE time
    for d in datagrams(pcap)? {
        let first = d.text.lines().next().unwrap_or_default();
        if first.starts_with("INVITE sip:a") {
            if let (Some(cid), Some(call)) = (
                header(&d.text, "Call-ID"),
                header(&d.text, "X-Callgrid-Call"),
            ) {
                leg_call
                    .entry(cid.to_owned())
                    .or_insert_with(|| call.to_owned());
            }
        } else if first.starts_with("INVITE sip:+") {
            if let Some(call) = header(&d.text, "X-Callgrid-Call") {
                invited.entry(call.to_owned()).or_insert(d.at_us);
            }
        } else if first.starts_with("SIP/2.0 200")
            && header(&d.text, "CSeq").is_some_and(|c| c.ends_with("INVITE"))
        {
            if let Some(call) = header(&d.text, "Call-ID").and_then(|c| leg_call.get(c)) {
                answered.entry(call.clone()).or_insert(d.at_us);
            }
        }
    }
    let mut h = Histogram::<u64>::new(3)?;
    let (mut matched, mut unmatched) = (0, 0);
    for (call, t200) in &answered {
        match invited.get(call) {
            Some(tinv) => {
                h.record(tinv.saturating_sub(*t200).max(1))?;
                matched += 1;
            }
            None => unmatched += 1,
        }
    }
    Ok((h, matched, unmatched))
}
