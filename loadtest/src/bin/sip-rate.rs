//! SIP call-rate benchmark: drives a SIP system under test (SUT) with SIPp processes and
//! measures how many calls per second it completes, signalling only.
//!
//! A call is the SIPp scenario `loadtest/sipp/caller.xml` (INVITE, 100/180, 200, ACK, a short
//! talk time, BYE, 200) answered by SIPp agents running `loadtest/sipp/agent_answer.xml`.
//! Several caller processes split the offered rate (one SIPp tops out near 1,000-1,250
//! calls/s); each runs with a bounded count (`-m`), a concurrency limit (`-l`) and a global
//! timeout. The program reads every caller's statistics CSV (successful and failed calls, per
//! second) and its response-time CSV (INVITE -> 200 of every call, into an HDR histogram), and
//! runs a small SIP client of its own next to SIPp (`--probe-rate` calls/s) whose INVITE -> 200
//! times have microsecond resolution: SIPp 3.6.1 times responses with CLOCK_MONOTONIC_COARSE,
//! which ticks every 4 ms on this kernel, so its figures are multiples of 4 ms.
//! It prints offered and achieved rate, failed calls, latency percentiles, the CPU time of each
//! process group (SIPp callers, SIPp agents, the SUT, this program) and the machine.
//!
//! Targets:
//! - `kamailio`: Kamailio 5.6 with `loadtest/kamailio/kamailio.cfg` (stateful proxy,
//!   record-routing) relaying every INVITE to the agents;
//! - `callgrid`: `callgrid serve` with a generated tenant (agents registered by SIPp with
//!   `agent_register.xml`, logged in and made available over gRPC), the number routed to a
//!   queue; the SIP edge is the B2BUA between the callers and the agents;
//! - `both`: Kamailio, then callgrid, then the ratio callgrid / Kamailio.
//!
//! Modes: `--rate R --duration S` (fixed rate), or `--find-max`: steps of `--step-duration`
//! seconds from `--start-rate`, multiplied by `--step-factor` (or `--step-add` calls/s), until
//! more than `--max-failed-pct` of calls fail or the achieved rate falls short of the offered
//! rate by more than `--max-shortfall-pct`; then `--refine` bisection steps, a
//! `--final-duration` run at the highest passing rate and a `--latency-duration` run at half
//! of it.
//!
//! `--overload` (callgrid) measures goodput under overload in one run: the rate held (the
//! `--find-max` steps and bisection, or `--capacity`), then twice it for `--overload-duration`
//! seconds, then half of it: 5 s to settle and `--recovery-duration` seconds that must have no
//! failure. It prints the calls completed per second under overload (answered by an agent)
//! against the rate held, how fast the refused INVITEs were answered (the probe's INVITE ->
//! 503 times, HDR p50/p99), and the failures after the load dropped.
//!
//! `--flood R` (callgrid) measures the SIP defences in one run: the rate held (as
//! `--overload`), then `--duration` seconds of real calls from the carrier trunk (127.0.0.1) at
//! half of it, first alone and then while two SIPp processes on `--flood-from` (127.0.0.2)
//! send R messages/s: INVITEs to unknown numbers (`flood_invite.xml`) and REGISTERs for the
//! tenant's agents with wrong passwords (`flood_register.xml`), half each. It prints the share
//! of the real calls that completed (line: >= 99 %).
//!
//! `--dial-out` (callgrid) measures calls out in the same run: after the inbound search
//! above, the same search with calls dialled by the agents' phones: SIPp callers running
//! `agent_dial.xml` as the tenant's agents (each caller process its own slice of them, so an
//! agent has one call at a time), digest-authenticated by the edge, decided by the router
//! (numbers of three Vietnamese carriers, the tenant's hotline of each carrier) and dialled on
//! trunks where SIPp carriers (`agent_answer.xml`) answer. A call counts once the carrier
//! answered it. It prints both highest rates and their ratio (issue 18's line: >= 0.8).
//!
//! Everything runs on loopback. Children write to files in a work directory (kept, and the
//! tails printed, when something fails) and are killed when the program ends, on error, on
//! panic, on Ctrl-C and on SIGTERM.
//!
//! ```text
//! scripts/install-sip-tools.sh
//! cargo build --release -p callgrid-loadtest --bin sip-rate
//! target/release/sip-rate --target kamailio --rate 500 --duration 30
//! target/release/sip-rate --target kamailio --find-max
//! target/release/sip-rate --target both --find-max --callgrid-bin target/release/callgrid
//! ```

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use callgrid_loadtest::harness::{
    absolute, agent_password, agents_counts, drops_of, find_bin, first_line, free_tcp_port,
    free_udp_port, free_udp_range, free_udp_tcp_port, load_tenant_yaml, main_in_work_dir,
    make_available, read_stat, register_agents, self_cpu_s, udp_drops, until_serving,
    wait_udp_bound, Census, Proc, StatRow,
};
use callgrid_loadtest::machine;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");
const KAMAILIO_CFG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kamailio/kamailio.cfg");
/// Final runs tried (each 5 % below the last) before a search gives up.
const FINAL_ATTEMPTS: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    Kamailio,
    Callgrid,
    Both,
}

#[derive(Parser, Clone, Debug)]
#[command(about = "Measure the SIP call rate of Kamailio and/or callgrid with SIPp")]
struct Args {
    /// System under test.
    #[arg(long, value_enum, default_value = "kamailio")]
    target: Target,
    /// Fixed offered rate, calls/s (with --duration).
    #[arg(long, conflicts_with = "find_max")]
    rate: Option<f64>,
    /// Seconds of offered traffic at --rate.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Step the rate up to the highest that passes, then run --final-duration at it and
    /// --latency-duration at half of it.
    #[arg(long)]
    find_max: bool,
    /// Measure goodput under overload (see the top of this file).
    #[arg(long, conflicts_with_all = ["rate", "find_max"])]
    overload: bool,
    /// With --overload or --flood: the rate held, calls/s (skips the search).
    #[arg(long)]
    capacity: Option<f64>,
    /// Measure the SIP defences (see the top of this file): flood messages/s.
    #[arg(long, conflicts_with_all = ["rate", "find_max", "overload"])]
    flood: Option<f64>,
    /// With --flood: the address the flood comes from (a loopback address other than the
    /// carrier trunk's 127.0.0.1).
    #[arg(long, default_value = "127.0.0.2")]
    flood_from: std::net::Ipv4Addr,
    /// With --overload: seconds at twice the rate held.
    #[arg(long, default_value_t = 30.0)]
    overload_duration: f64,
    /// With --overload: seconds at half the rate held, from 5 s after the overload ended.
    #[arg(long, default_value_t = 20.0)]
    recovery_duration: f64,
    /// First rate of --find-max, calls/s.
    #[arg(long, default_value_t = 200.0)]
    start_rate: f64,
    /// Each --find-max step multiplies the rate by this (unless --step-add).
    #[arg(long, default_value_t = 1.25)]
    step_factor: f64,
    /// Each --find-max step adds this many calls/s instead.
    #[arg(long)]
    step_add: Option<f64>,
    /// Seconds of offered traffic per --find-max step.
    #[arg(long, default_value_t = 10.0)]
    step_duration: f64,
    /// Bisection steps between the highest passing and the first failing rate.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// Never offer more than this, calls/s.
    #[arg(long, default_value_t = 10_000.0)]
    max_rate: f64,
    /// Seconds at the highest passing rate after --find-max.
    #[arg(long, default_value_t = 60.0)]
    final_duration: f64,
    /// Seconds at half the highest passing rate after --find-max (latency at half load).
    #[arg(long, default_value_t = 30.0)]
    latency_duration: f64,
    /// A step fails when more than this percentage of its calls failed.
    #[arg(long, default_value_t = 0.1)]
    max_failed_pct: f64,
    /// A step fails when the achieved rate is more than this percentage below the offered.
    #[arg(long, default_value_t = 2.0)]
    max_shortfall_pct: f64,
    /// SIPp caller processes splitting the offered rate.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// SIPp agent (UAS) processes; calls are spread over them.
    #[arg(long, default_value_t = 2)]
    uas: usize,
    /// Talk time of every call, ms (SIPp -d): BYE this long after the ACK.
    #[arg(long, default_value_t = 100)]
    talk_ms: u64,
    /// Calls/s of the built-in probe client (microsecond INVITE -> 200 times); 0 = none.
    #[arg(long, default_value_t = 20.0)]
    probe_rate: f64,
    /// The dialled number (SIPp -s).
    #[arg(long, default_value = "+15550000001")]
    number: String,
    /// Directory of the SIPp scenarios.
    #[arg(long, default_value = SCENARIOS)]
    scenarios: PathBuf,
    /// SIPp binary.
    #[arg(long, default_value = "sipp")]
    sipp: PathBuf,
    /// Kamailio binary (also looked for in /usr/sbin).
    #[arg(long, default_value = "kamailio")]
    kamailio: PathBuf,
    /// Kamailio configuration.
    #[arg(long, default_value = KAMAILIO_CFG)]
    kamailio_cfg: PathBuf,
    /// UDP socket buffer for SIPp (-buff_size) and the most Kamailio may probe up to (-b), KiB
    /// (the kernel caps it at net.core.rmem_max / wmem_max).
    #[arg(long, default_value_t = 4096)]
    buffer_kib: u32,
    /// Kamailio UDP worker processes.
    #[arg(long, default_value_t = 2)]
    kamailio_children: u32,
    /// Kamailio shared memory, MB (transactions live about 5 s after their last message:
    /// 512 MB runs out near 3,600 calls/s).
    #[arg(long, default_value_t = 2048)]
    kamailio_shm_mb: u32,
    /// The callgrid binary (`callgrid serve`).
    #[arg(long, default_value = "target/release/callgrid")]
    callgrid_bin: PathBuf,
    /// Extra argument for `callgrid serve` (repeat it), e.g. --callgrid-arg=--durability=process.
    #[arg(long, allow_hyphen_values = true)]
    callgrid_arg: Vec<String>,
    /// Agents of the callgrid load tenant (each takes one call at a time: give at least
    /// twice the rate x (talk time + 0.5 s)).
    #[arg(long, default_value_t = 500)]
    agents: usize,
    /// With --target callgrid: after the inbound run, the same run with calls the agents'
    /// phones dial out (see the top of this file), and the ratio of the two.
    #[arg(long)]
    dial_out: bool,
    /// Work directory (default: a new directory under the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory (it is always kept when something fails).
    #[arg(long)]
    keep: bool,
}

// ------------------------------------------------------------------ sessions

/// A running system under test with its agents.
struct Session {
    target: Target,
    sip: SocketAddr,
    /// UDP ports of the agents
    agent_ports: Vec<u16>,
    sut: Proc,
    agents: Vec<Proc>,
    agent_dirs: Vec<PathBuf>,
    work: PathBuf,
    /// With --dial-out: the carriers, and whether the steps dial out now.
    dial_out: Option<DialOut>,
}

/// The calls out of --dial-out: SIPp carriers (UAS) on the tenant's outbound trunks, the
/// number each caller dials (a customer of each carrier in turn) and the agents each caller
/// dials as.
struct DialOut {
    active: bool,
    carriers: Vec<Proc>,
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    /// Per caller process: its `-inf` file (its slice of the agents).
    agents_csv: Vec<PathBuf>,
}

/// The customers called in --dial-out: a mobile number of Viettel, Vinaphone and Mobifone,
/// each reached through the tenant's hotline of that carrier.
const CUSTOMERS: [(&str, &str, &str); 3] = [
    ("viettel", "+842873000100", "0961234567"),
    ("vinaphone", "+842873000200", "0912345678"),
    ("mobifone", "+842873000300", "0901234567"),
];

impl Session {
    fn name(&self) -> &'static str {
        match (self.target, self.dialling_out()) {
            (Target::Callgrid, true) => "callgrid dial-out",
            (Target::Callgrid, false) => "callgrid",
            _ => "kamailio",
        }
    }

    fn dialling_out(&self) -> bool {
        self.dial_out.as_ref().is_some_and(|d| d.active)
    }

    /// The UAS side of the calls now (agents, or the carriers of calls out): processes,
    /// directories and ports.
    fn answering(&mut self) -> (&mut Vec<Proc>, &[PathBuf], &[u16]) {
        match self.dial_out.as_mut().filter(|d| d.active) {
            Some(d) => (&mut d.carriers, &d.dirs, &d.ports),
            None => (&mut self.agents, &self.agent_dirs, &self.agent_ports),
        }
    }
}

/// The tenant's outbound part for --dial-out: region VN, a hotline per carrier of
/// [`CUSTOMERS`] calling out on a trunk at `ports[i]`.
fn dial_out_yaml(tenant: &str, ports: &[u16]) -> String {
    let mut numbers = String::new();
    let mut trunks = String::new();
    for (i, (carrier, number, _)) in CUSTOMERS.iter().enumerate() {
        numbers.push_str(&format!(
            "  - {{ number: \"{number}\", name: {carrier} hotline, route: {{ queue: \"200\" }}, carrier: {carrier}, trunks: [out-{carrier}] }}\n"
        ));
        trunks.push_str(&format!(
            "  - {{ id: out-{carrier}, name: {carrier}, address: \"127.0.0.1:{}\", keepalive_seconds: 0, max_concurrent_calls: 1000000 }}\n",
            ports[i]
        ));
    }
    tenant
        .replacen("timezone: UTC\n", "timezone: UTC\nregion: VN\n", 1)
        .replacen("trunks:\n", &format!("{numbers}trunks:\n{trunks}"), 1)
}

/// SIPp agents (`agent_answer.xml`) on ports base..base+n, each in its own directory.
async fn start_agents(
    a: &Args,
    work: &Path,
    base: u16,
) -> anyhow::Result<(Vec<Proc>, Vec<PathBuf>)> {
    let ports: Vec<u16> = (0..a.uas).map(|i| base + i as u16).collect();
    start_uas(a, work, "agent", &ports).await
}

/// SIPp UASes answering every call at once (`agent_answer.xml`), named `NAME-i`, one on each
/// of `ports`, each in its own directory.
async fn start_uas(
    a: &Args,
    work: &Path,
    name: &str,
    ports: &[u16],
) -> anyhow::Result<(Vec<Proc>, Vec<PathBuf>)> {
    let mut procs = Vec::new();
    let mut dirs = Vec::new();
    for (i, &port) in ports.iter().enumerate() {
        let dir = work.join(format!("{name}-{i}"));
        let mut cmd = Command::new(&a.sipp);
        cmd.arg("-sf")
            .arg(a.scenarios.join("agent_answer.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-buff_size", &(a.buffer_kib * 1024).to_string()])
            .args(["-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1"]);
        let mut p = Proc::spawn(&format!("{name}-{i}"), &mut cmd, &dir, false)?;
        wait_udp_bound(port, &mut p, Duration::from_secs(10)).await?;
        procs.push(p);
        dirs.push(dir);
    }
    Ok((procs, dirs))
}

async fn start_kamailio(a: &Args, work: &Path) -> anyhow::Result<Session> {
    let work = work.join("kamailio");
    let sip_port = free_udp_port()?;
    let agent_base = free_udp_range(a.uas)?;
    let (agents, agent_dirs) = start_agents(a, &work, agent_base).await?;
    let run = work.join("run");
    fs::create_dir_all(&run)?;
    let bin = find_bin(&a.kamailio, &["/usr/sbin", "/usr/local/sbin"]);
    let mut cmd = Command::new(&bin);
    cmd.arg("-f")
        .arg(&a.kamailio_cfg)
        .args(["-DD", "-E", "-M", "16"])
        .args(["-m", &a.kamailio_shm_mb.to_string()])
        .args(["-b", &(a.buffer_kib * 1024).to_string()])
        .arg("-Y")
        .arg(&run)
        .arg("-P")
        .arg(run.join("kamailio.pid"))
        .arg("-A")
        .arg(format!("SIP_PORT={sip_port}"))
        .arg("-A")
        .arg(format!("AGENT_PORT={agent_base}"))
        .arg("-A")
        .arg(format!("AGENTS={}", a.uas))
        .arg("-A")
        .arg(format!("CHILDREN={}", a.kamailio_children));
    let mut sut = Proc::spawn("kamailio", &mut cmd, &work, true)?;
    wait_udp_bound(sip_port, &mut sut, Duration::from_secs(15)).await?;
    Ok(Session {
        target: Target::Kamailio,
        sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        agent_ports: (0..a.uas).map(|i| agent_base + i as u16).collect(),
        sut,
        agents,
        agent_dirs,
        work,
        dial_out: None,
    })
}

/// callgrid serve with the load tenant; agents registered by SIPp and made available over gRPC.
///
/// Assumes the flags `callgrid serve --data-dir D --no-demo --tenants DIR --listen GRPC
/// --sip-listen SIP` and a registrar that accepts `agent_register.xml` (user = agent id,
/// password = the agent's sip_password, Contact = the agent's SIPp UAS, registered from the
/// UAS's port before the UAS starts).
async fn start_callgrid(a: &Args, work: &Path) -> anyhow::Result<Session> {
    let work = work.join("callgrid");
    let tenants = work.join("tenants");
    fs::create_dir_all(&tenants)?;
    let mut tenant = load_tenant_yaml(a.agents, &a.number);
    let carrier_ports = if a.dial_out {
        let base = free_udp_range(CUSTOMERS.len())?;
        (0..CUSTOMERS.len()).map(|i| base + i as u16).collect()
    } else {
        Vec::new()
    };
    if a.dial_out {
        tenant = dial_out_yaml(&tenant, &carrier_ports);
    }
    fs::write(tenants.join("load.yaml"), tenant)?;
    let sip_port = free_udp_tcp_port()?;
    let grpc_port = free_tcp_port()?;
    let agent_base = free_udp_range(a.uas)?;
    let mut cmd = Command::new(&a.callgrid_bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--no-demo")
        .arg("--tenants")
        .arg(&tenants)
        .args(["--listen", &format!("127.0.0.1:{grpc_port}")])
        .args(["--sip-listen", &format!("127.0.0.1:{sip_port}")])
        .args(&a.callgrid_arg)
        .env("RUST_LOG", "warn");
    let mut sut = Proc::spawn("callgrid", &mut cmd, &work, false)?;
    let grpc = format!("http://127.0.0.1:{grpc_port}");
    let token = until_serving(
        &grpc,
        &work.join("data"),
        1,
        &mut sut,
        Duration::from_secs(60),
    )
    .await?;
    wait_udp_bound(sip_port, &mut sut, Duration::from_secs(15)).await?;

    let agent_ports: Vec<u16> = (0..a.uas).map(|i| agent_base + i as u16).collect();
    register_agents(
        &a.sipp,
        &a.scenarios,
        sip_port,
        &agent_ports,
        a.agents,
        &work,
    )
    .await?;
    // the agents' UAS processes bind the ports the agents registered from
    let (agents, agent_dirs) = start_agents(a, &work, agent_base).await?;
    make_available(&grpc, &token, a.agents).await?;
    let dial_out = if a.dial_out {
        Some(start_carriers(a, &work, &carrier_ports).await?)
    } else {
        None
    };
    Ok(Session {
        target: Target::Callgrid,
        sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        agent_ports: (0..a.uas).map(|i| agent_base + i as u16).collect(),
        sut,
        agents,
        agent_dirs,
        work,
        dial_out,
    })
}

/// The SIPp carriers of --dial-out (`agent_answer.xml` on `ports`), and each caller's slice
/// of the agents (`tenant.agent;password` lines, taken in turn).
async fn start_carriers(a: &Args, work: &Path, ports: &[u16]) -> anyhow::Result<DialOut> {
    let (carriers, dirs) = start_uas(a, work, "carrier", ports).await?;
    let mut agents_csv = Vec::new();
    for c in 0..a.callers {
        let mut text = String::from("SEQUENTIAL\n");
        for i in (1..=a.agents).filter(|i| (i - 1) % a.callers == c) {
            text.push_str(&format!("load.a{i:04};{}\n", agent_password(i)));
        }
        let csv = work.join(format!("dialling-agents-{c}.csv"));
        fs::write(&csv, text)?;
        agents_csv.push(csv);
    }
    Ok(DialOut {
        active: false,
        carriers,
        dirs,
        ports: ports.to_vec(),
        agents_csv,
    })
}

/// Completed calls per second in the window from `warmup_s` after the first row to
/// `duration_s` after it; the whole run when the window has too few rows.
fn achieved_rate(rows: &[StatRow], warmup_s: f64, duration_s: f64, talk_s: f64) -> f64 {
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return 0.0;
    };
    let (ws, we) = (first.t + warmup_s, first.t + duration_s + 0.25);
    let a = rows.iter().find(|r| r.t >= ws);
    let b = rows.iter().rev().find(|r| r.t <= we);
    match (a, b) {
        (Some(a), Some(b)) if b.t - a.t >= 1.5 => (b.ok - a.ok.min(b.ok)) as f64 / (b.t - a.t),
        _ => last.ok as f64 / (last.t - first.t - talk_s).max(0.1),
    }
}

/// Adds the INVITE -> 200 times of a SIPp `-trace_rtt` CSV (ms, 4 ms steps) whose date is in
/// [from_ms, to_ms] of that SIPp's clock, in microseconds.
fn read_rtt(dir: &Path, from_ms: f64, to_ms: f64, h: &mut Histogram<u64>) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().ends_with("_rtt.csv") {
            continue;
        }
        for line in BufReader::new(File::open(e.path())?).lines() {
            let line = line?;
            let mut f = line.split(';');
            let (Some(date), Some(rt)) = (f.next(), f.next()) else {
                continue;
            };
            let (Ok(date), Ok(rt)) = (date.trim().parse::<f64>(), rt.trim().parse::<f64>()) else {
                continue;
            };
            if date >= from_ms && date <= to_ms {
                h.saturating_record((rt * 1000.0).round().max(0.0) as u64);
                n += 1;
            }
        }
    }
    Ok(n)
}

// ------------------------------------------------------------------ the probe client

/// A SIP message, as far as the probe needs it.
struct SipMsg {
    first: String,
    /// (lowercase long name, value) in order
    headers: Vec<(String, String)>,
}

impl SipMsg {
    fn parse(buf: &[u8]) -> Option<SipMsg> {
        let text = std::str::from_utf8(buf).ok()?;
        let head = text.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let first = lines.next()?.to_string();
        let mut headers = Vec::new();
        for l in lines {
            let (n, v) = l.split_once(':')?;
            let n = n.trim().to_ascii_lowercase();
            let n = match n.as_str() {
                "i" => "call-id".to_string(),
                "f" => "from".to_string(),
                "t" => "to".to_string(),
                "m" => "contact".to_string(),
                "v" => "via".to_string(),
                _ => n,
            };
            headers.push((n, v.trim().to_string()));
        }
        Some(SipMsg { first, headers })
    }
    fn status(&self) -> Option<u16> {
        self.first.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn cseq_method(&self) -> &str {
        self.get("cseq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
    }
}

/// Header values split at commas outside <> and quotes (Record-Route: a, b).
fn split_values(v: &str) -> Vec<String> {
    let (mut out, mut cur, mut angle, mut quote) = (Vec::new(), String::new(), false, false);
    for c in v.chars() {
        match c {
            '"' => quote = !quote,
            '<' if !quote => angle = true,
            '>' if !quote => angle = false,
            ',' if !quote && !angle => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The URI of a name-addr (`"x" <sip:a@b;p>;tag=1` -> `sip:a@b;p`).
fn uri_of(v: &str) -> String {
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if b > a => v[a + 1..b].to_string(),
        _ => v.split(';').next().unwrap_or(v).trim().to_string(),
    }
}

#[derive(Default)]
struct ProbeResult {
    sent: u64,
    ok: u64,
    failed: u64,
    /// INVITE -> 200, microseconds
    hist: Option<Histogram<u64>>,
    /// INVITE -> a final refusal (4xx-6xx), microseconds
    refusals: Option<Histogram<u64>>,
    errors: HashMap<String, u64>,
}

/// Why a probe call failed, and when the INVITE was refused if it was.
struct ProbeFail {
    why: String,
    refused_after: Option<Duration>,
}

impl From<String> for ProbeFail {
    fn from(why: String) -> Self {
        ProbeFail {
            why,
            refused_after: None,
        }
    }
}

impl From<&str> for ProbeFail {
    fn from(why: &str) -> Self {
        ProbeFail::from(why.to_string())
    }
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<(Instant, SipMsg)>>>>;

struct ProbeCtx {
    sock: Arc<tokio::net::UdpSocket>,
    sut: SocketAddr,
    local: SocketAddr,
    media_port: u16,
    number: String,
    talk: Duration,
}

impl ProbeCtx {
    async fn send(&self, text: &str) {
        let _ = self.sock.send_to(text.as_bytes(), self.sut).await;
    }
}

fn probe_invite(c: &ProbeCtx, call_id: &str, tag: &str, branch: &str) -> String {
    let sdp = format!(
        "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n",
        c.media_port
    );
    format!(
        "INVITE sip:{n}@{sut} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Probe\" <sip:probe@{l}>;tag={tag}\r\nTo: <sip:{n}@{sut}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:probe@{l}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        n = c.number,
        sut = c.sut,
        l = c.local,
        len = sdp.len()
    )
}

/// The dialog of an answered probe call.
struct ProbeDialog<'a> {
    call_id: &'a str,
    tag: &'a str,
    /// To header of the 200, with the far end's tag
    to: &'a str,
    /// the far end's Contact
    target: &'a str,
    /// Record-Route of the 200, in order
    routes: &'a [String],
}

/// ACK or BYE inside the dialog of a 2xx: Request-URI = the far end's Contact, Route = the
/// Record-Route set reversed.
fn probe_in_dialog(
    c: &ProbeCtx,
    d: &ProbeDialog<'_>,
    method: &str,
    cseq: u32,
    branch: &str,
) -> String {
    let (target, routes, tag, to, call_id) = (d.target, d.routes, d.tag, d.to, d.call_id);
    let mut m = format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={branch};rport\r\n",
        l = c.local
    );
    for r in routes.iter().rev() {
        m.push_str(&format!("Route: {r}\r\n"));
    }
    m.push_str(&format!(
        "Max-Forwards: 70\r\nFrom: \"Probe\" <sip:probe@{l}>;tag={tag}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
        l = c.local
    ));
    m
}

fn reply_200(req: &SipMsg) -> String {
    let mut m = String::from("SIP/2.0 200 OK\r\n");
    for v in req.all("via") {
        m.push_str(&format!("Via: {v}\r\n"));
    }
    for h in ["from", "to", "call-id", "cseq"] {
        if let Some(v) = req.get(h) {
            let name = match h {
                "from" => "From",
                "to" => "To",
                "call-id" => "Call-ID",
                _ => "CSeq",
            };
            m.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    m.push_str("Content-Length: 0\r\n\r\n");
    m
}

/// One probe call: INVITE (retransmitted until a response), 200 -> ACK, talk, BYE -> 200.
/// Returns the INVITE -> 200 time.
async fn probe_call(
    c: &ProbeCtx,
    id: u64,
    run: &str,
    mut rx: mpsc::UnboundedReceiver<(Instant, SipMsg)>,
) -> Result<Duration, ProbeFail> {
    let call_id = format!("probe-{run}-{id}@127.0.0.1");
    let tag = format!("pr{id}");
    let branch = format!("z9hG4bK-pr{run}-{id}-1");
    let invite = probe_invite(c, &call_id, &tag, &branch);
    let sent = Instant::now();
    c.send(&invite).await;
    let deadline = sent + Duration::from_secs(8);
    let mut retrans = Duration::from_millis(500);
    let mut next_retrans = sent + retrans;
    let mut provisional = false;
    let (latency, to, target, routes) = loop {
        let wake = if provisional {
            deadline
        } else {
            next_retrans.min(deadline)
        };
        tokio::select! {
            m = rx.recv() => {
                let Some((at, m)) = m else { return Err("socket closed".into()) };
                let Some(code) = m.status() else {
                    if m.first.starts_with("BYE ") { c.send(&reply_200(&m)).await; }
                    continue;
                };
                if m.cseq_method() != "INVITE" { continue; }
                match code {
                    100..=199 => provisional = true,
                    200..=299 => {
                        let to = m.get("to").unwrap_or("").to_string();
                        let target = m.get("contact").map(uri_of)
                            .unwrap_or_else(|| format!("sip:{}@{}", c.number, c.sut));
                        let routes: Vec<String> = m.all("record-route").flat_map(split_values).collect();
                        break (at.duration_since(sent), to, target, routes);
                    }
                    _ => {
                        let to = m.get("to").unwrap_or("").to_string();
                        let ack = format!(
                            "ACK sip:{n}@{sut} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch={branch};rport\r\n\
                             Max-Forwards: 70\r\nFrom: \"Probe\" <sip:probe@{l}>;tag={tag}\r\nTo: {to}\r\n\
                             Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
                            n = c.number, sut = c.sut, l = c.local
                        );
                        c.send(&ack).await;
                        return Err(ProbeFail {
                            why: format!("INVITE answered {code}"),
                            refused_after: Some(at.duration_since(sent)),
                        });
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= deadline {
                    return Err(if provisional { "no final response" } else { "no response" }.into());
                }
                c.send(&invite).await;
                retrans = (retrans * 2).min(Duration::from_secs(4));
                next_retrans = Instant::now() + retrans;
            }
        }
    };
    let dialog = ProbeDialog {
        call_id: &call_id,
        tag: &tag,
        to: &to,
        target: &target,
        routes: &routes,
    };
    let ack = probe_in_dialog(c, &dialog, "ACK", 1, &format!("z9hG4bK-pr{run}-{id}-2"));
    c.send(&ack).await;
    // talk; a retransmitted 200 gets the ACK again, a BYE from the far end ends the call
    let talk_end = Instant::now() + c.talk;
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some((_, m)) = m else { return Err("socket closed".into()) };
                if m.status().is_some_and(|s| (200..300).contains(&s)) && m.cseq_method() == "INVITE" {
                    c.send(&ack).await;
                } else if m.first.starts_with("BYE ") {
                    c.send(&reply_200(&m)).await;
                    return Ok(latency);
                }
            }
            _ = tokio::time::sleep_until(talk_end.into()) => break,
        }
    }
    let bye = probe_in_dialog(c, &dialog, "BYE", 2, &format!("z9hG4bK-pr{run}-{id}-3"));
    c.send(&bye).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut retrans = Duration::from_millis(500);
    loop {
        tokio::select! {
            m = rx.recv() => {
                let Some((_, m)) = m else { return Err("socket closed".into()) };
                match m.status() {
                    Some(code) if m.cseq_method() == "BYE" && code >= 200 => {
                        return if code == 200 || code == 481 { Ok(latency) } else { Err(format!("BYE answered {code}").into()) };
                    }
                    Some(_) if m.cseq_method() == "INVITE" => c.send(&ack).await,
                    _ => {}
                }
            }
            _ = tokio::time::sleep(retrans) => {
                if Instant::now() >= deadline { return Err("no answer to BYE".into()); }
                c.send(&bye).await;
                retrans = (retrans * 2).min(Duration::from_secs(4));
            }
        }
    }
}

/// Places `rate` calls/s for `duration` through the SUT (Poisson-free: evenly spaced).
async fn probe(
    sut: SocketAddr,
    rate: f64,
    duration: Duration,
    talk: Duration,
    number: String,
    run: String,
    max_calls: Option<u64>,
) -> anyhow::Result<ProbeResult> {
    let mut res = ProbeResult {
        hist: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        refusals: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ..Default::default()
    };
    if rate <= 0.0 {
        return Ok(res);
    }
    let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await?);
    // RTP sent to us (e.g. hold music) lands on a socket nobody reads, as with SIPp
    let media = UdpSocket::bind("127.0.0.1:0")?;
    let ctx = Arc::new(ProbeCtx {
        local: sock.local_addr()?,
        media_port: media.local_addr()?.port(),
        sock: sock.clone(),
        sut,
        number,
        talk,
    });
    let routes: Routes = Arc::new(Mutex::new(HashMap::new()));
    let recv_routes = routes.clone();
    let recv_ctx = ctx.clone();
    let receiver = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, _)) = recv_ctx.sock.recv_from(&mut buf).await {
            let at = Instant::now();
            let Some(m) = SipMsg::parse(&buf[..n]) else {
                continue;
            };
            let Some(cid) = m.get("call-id").map(str::to_string) else {
                continue;
            };
            let tx = recv_routes.lock().ok().and_then(|r| r.get(&cid).cloned());
            match tx {
                Some(tx) => {
                    let _ = tx.send((at, m));
                }
                None if m.first.starts_with("BYE ") => recv_ctx.send(&reply_200(&m)).await,
                None => {}
            }
        }
    });
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Duration, ProbeFail>>();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut id = 0u64;
    while start.elapsed() < duration && max_calls.is_none_or(|m| id < m) {
        let at = start + interval.mul_f64(id as f64);
        tokio::time::sleep_until(at.into()).await;
        id += 1;
        let (tx, rx) = mpsc::unbounded_channel();
        let call_id = format!("probe-{run}-{id}@127.0.0.1");
        if let Ok(mut r) = routes.lock() {
            r.insert(call_id.clone(), tx);
        }
        let (ctx, run, routes, done) = (ctx.clone(), run.clone(), routes.clone(), done_tx.clone());
        tokio::spawn(async move {
            let r = probe_call(&ctx, id, &run, rx).await;
            if let Ok(mut r) = routes.lock() {
                r.remove(&call_id);
            }
            let _ = done.send(r);
        });
        res.sent += 1;
    }
    drop(done_tx);
    while let Some(r) = done_rx.recv().await {
        match r {
            Ok(d) => {
                res.ok += 1;
                if let Some(h) = res.hist.as_mut() {
                    h.saturating_record(d.as_micros().max(1) as u64);
                }
            }
            Err(e) => {
                res.failed += 1;
                if let (Some(h), Some(d)) = (res.refusals.as_mut(), e.refused_after) {
                    h.saturating_record(d.as_micros().max(1) as u64);
                }
                *res.errors.entry(e.why).or_default() += 1;
            }
        }
    }
    receiver.abort();
    drop(media);
    Ok(res)
}

/// One probe call at a time until one succeeds: the SUT and its agents work end to end.
async fn warm_up(a: &Args, s: &mut Session) -> anyhow::Result<()> {
    let mut last = String::new();
    for attempt in 0..10 {
        let r = probe(
            s.sip,
            1.0,
            Duration::from_millis(1),
            Duration::from_millis(10),
            a.number.clone(),
            format!("w{attempt}"),
            Some(1),
        )
        .await?;
        if r.ok == 1 {
            return Ok(());
        }
        last = r.errors.keys().next().cloned().unwrap_or_default();
        if let Some(st) = s.sut.poll() {
            bail!("{} exited ({st})", s.name());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("no call gets through {} ({last})", s.name())
}

// ------------------------------------------------------------------ steps

struct StepResult {
    rate: f64,
    duration: f64,
    created: u64,
    ok: u64,
    failed: u64,
    retrans: u64,
    achieved: f64,
    sipp_rtt: Histogram<u64>,
    probe: ProbeResult,
    cpu_callers: f64,
    cpu_agents: f64,
    cpu_sut: f64,
    cpu_self: f64,
    wall_s: f64,
    /// CPU seconds of other processes on the machine during the step
    cpu_other: f64,
    /// UDP packets dropped by the kernel (receive buffer full): callers, agents, SUT
    drops: [u64; 3],
    agent_failed: u64,
    /// Calls the SIPp agents answered during the step.
    agent_ok: u64,
    /// Calls answered at the caller (callgrid answers a queued caller itself) that no agent
    /// ever answered: the caller hung up first. They count as failed.
    unreached: u64,
    /// SIPp callers' failed calls by reason
    why: HashMap<String, u64>,
    problems: Vec<String>,
}

impl StepResult {
    fn failed_pct(&self) -> f64 {
        let total = self.created + self.probe.sent;
        100.0 * (self.failed + self.probe.failed + self.unreached) as f64 / total.max(1) as f64
    }
    fn passes(&self, a: &Args) -> bool {
        self.problems.is_empty()
            && self.failed_pct() <= a.max_failed_pct
            && self.achieved >= self.rate * (1.0 - a.max_shortfall_pct / 100.0)
    }
    fn probe_q(&self, q: f64) -> Option<f64> {
        self.probe
            .hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    }
    fn probe_max(&self) -> Option<f64> {
        self.probe
            .hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.max() as f64 / 1000.0)
    }
    fn line(&self, a: &Args) -> String {
        let probe = match (self.probe_q(0.5), self.probe_q(0.99), self.probe_max()) {
            (Some(p50), Some(p99), Some(max)) => {
                format!("probe p50 {p50:.2} ms p99 {p99:.2} ms max {max:.2} ms")
            }
            _ => "probe -".to_string(),
        };
        let rtt = if self.sipp_rtt.is_empty() {
            "SIPp -".to_string()
        } else {
            format!(
                "SIPp mean {:.1} ms p99 {} ms",
                self.sipp_rtt.mean() / 1000.0,
                self.sipp_rtt.value_at_quantile(0.99) / 1000
            )
        };
        format!(
            "offered {:>6.0}/s {:>3.0} s: achieved {:>7.1}/s, failed {:.3} % ({}/{}), retrans {}, {rtt}, {probe}; \
             CPU s callers {:.1} agents {:.1} SUT {:.1} other processes {:.1}, UDP drops {}/{}/{} -> {}{}",
            self.rate,
            self.duration,
            self.achieved,
            self.failed_pct(),
            self.failed + self.probe.failed + self.unreached,
            self.created + self.probe.sent,
            self.retrans,
            self.cpu_callers,
            self.cpu_agents,
            self.cpu_sut,
            self.cpu_other,
            self.drops[0],
            self.drops[1],
            self.drops[2],
            if self.passes(a) { "pass" } else { "FAIL" },
            {
                let mut notes = self.problems.clone();
                if !self.why.is_empty() {
                    let mut why: Vec<_> = self.why.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    why.sort();
                    notes.push(format!("failed: {}", why.join(", ")));
                }
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", notes.join("; "))
                }
            }
        )
    }
}

async fn run_step(
    a: &Args,
    s: &mut Session,
    idx: usize,
    rate: f64,
    duration: f64,
) -> anyhow::Result<StepResult> {
    run_step_with(a, s, idx, rate, duration, None).await
}

/// The flood's SIPp processes (`--flood`): INVITEs to unknown numbers and REGISTERs with
/// wrong passwords, `rate` messages/s in all, for `duration` seconds.
fn start_flood(
    a: &Args,
    s: &Session,
    dir: &Path,
    rate: f64,
    duration: f64,
) -> anyhow::Result<Vec<(Proc, PathBuf)>> {
    let per = rate / 2.0;
    let count = (per * duration).ceil().max(1.0) as u64;
    let from = a.flood_from.to_string();
    let csv = dir.join("flood-agents.csv");
    let mut text = String::from("SEQUENTIAL\n");
    for i in 1..=a.agents.min(1_000) {
        text.push_str(&format!("a{i:04}\n"));
    }
    fs::create_dir_all(dir)?;
    fs::write(&csv, text)?;
    let mut procs = Vec::new();
    for (name, extra) in [
        ("flood-invite", vec!["-s".to_string(), "99999".to_string()]),
        (
            "flood-register",
            vec!["-inf".to_string(), csv.display().to_string()],
        ),
    ] {
        let mut cmd = Command::new(&a.sipp);
        cmd.arg(s.sip.to_string())
            .arg("-sf")
            .arg(a.scenarios.join(format!("{}.xml", name.replace('-', "_"))))
            .args(&extra)
            .args(["-i", &from])
            .args(["-r", &format!("{per:.3}"), "-rp", "1000"])
            .args(["-m", &count.to_string()])
            .args(["-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1"])
            .args(["-timeout", &format!("{}s", (duration + 30.0).ceil() as u64)]);
        let fdir = dir.join(name);
        procs.push((Proc::spawn(name, &mut cmd, &fdir, false)?, fdir));
    }
    Ok(procs)
}

async fn run_step_with(
    a: &Args,
    s: &mut Session,
    idx: usize,
    rate: f64,
    duration: f64,
    flood: Option<f64>,
) -> anyhow::Result<StepResult> {
    let dir = s.work.join(format!("step{idx:02}-{rate:.0}"));
    let per = rate / a.callers as f64;
    let count = (per * duration).ceil().max(1.0) as u64;
    let talk_s = a.talk_ms as f64 / 1000.0;
    let limit = (per * (talk_s + 1.0) * 2.0).ceil() as u64 + 100;
    let timeout_s = (duration + talk_s + 45.0).ceil() as u64;

    let cpu_sut0 = s.sut.cpu_s();
    let cpu_agents0: f64 = s.answering().0.iter_mut().map(Proc::cpu_s).sum();
    let cpu_self0 = self_cpu_s();
    let (agent_ok0, agent_failed0) = agents_counts(s.answering().1);

    let drops0 = udp_drops();
    let mut census = Census::start();
    let started = Instant::now();
    let mut callers = Vec::new();
    let mut caller_dirs = Vec::new();
    let mut caller_ports = Vec::new();
    // the callers' sockets vanish with them: keep the highest count seen while they run
    let mut caller_drops: HashMap<u16, u64> = HashMap::new();
    for i in 0..a.callers {
        let cdir = dir.join(format!("caller-{i}"));
        let port = free_udp_port()?;
        caller_ports.push(port);
        let mut cmd = Command::new(&a.sipp);
        cmd.arg(s.sip.to_string()).arg("-sf");
        match s.dial_out.as_ref().filter(|d| d.active) {
            // an agent's phone dials a customer of each carrier in turn, as its agents
            Some(d) => {
                let customer = CUSTOMERS[i % CUSTOMERS.len()].2;
                cmd.arg(a.scenarios.join("agent_dial.xml"))
                    .arg("-inf")
                    .arg(&d.agents_csv[i])
                    .args(["-s", customer])
                    // SIPp's digest uri is the Request-URI only when told
                    .args(["-auth_uri", &format!("{customer}@{}", s.sip)])
            }
            None => cmd
                .arg(a.scenarios.join("caller.xml"))
                .args(["-s", &a.number]),
        };
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-buff_size", &(a.buffer_kib * 1024).to_string()])
            .args(["-r", &format!("{per:.3}"), "-rp", "1000"])
            .args(["-m", &count.to_string(), "-l", &limit.to_string()])
            .args(["-d", &a.talk_ms.to_string()])
            .args(["-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1"])
            .args(["-trace_rtt", "-rtt_freq", "1"])
            .args(["-timeout", &format!("{timeout_s}s"), "-timeout_error"]);
        callers.push(Proc::spawn(&format!("caller-{i}"), &mut cmd, &cdir, false)?);
        caller_dirs.push(cdir);
    }
    let mut flooders = match flood {
        Some(r) => start_flood(a, s, &dir, r, duration)?,
        None => Vec::new(),
    };
    // the probe places inbound calls: none while the phones dial out
    let probe_rate = if s.dialling_out() { 0.0 } else { a.probe_rate };
    let probe_task = tokio::spawn(probe(
        s.sip,
        probe_rate,
        Duration::from_secs_f64(duration),
        Duration::from_millis(a.talk_ms),
        a.number.clone(),
        format!("{idx}"),
        None,
    ));

    let mut problems = Vec::new();
    let hard_deadline = started + Duration::from_secs(timeout_s + 15);
    loop {
        census.sample();
        let d = udp_drops();
        for p in &caller_ports {
            if let Some(&n) = d.get(p) {
                let e = caller_drops.entry(*p).or_insert(0);
                *e = (*e).max(n);
            }
        }
        let mut running = 0;
        for c in callers.iter_mut() {
            if c.poll().is_none() {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        if let Some(st) = s.sut.poll() {
            problems.push(format!("{} exited ({st})", s.name()));
            break;
        }
        if Instant::now() > hard_deadline {
            problems.push("callers still running at the deadline".into());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in callers.iter_mut() {
        c.stop();
        if let Some(st) = c.status {
            if !st.success() && st.code() != Some(1) {
                // 1 = some calls failed (counted below); anything else is SIPp itself failing
                problems.push(format!("{} exited with {st}", c.name));
            }
        }
    }
    let mut flood_sent = 0;
    for (f, fdir) in flooders.iter_mut() {
        f.stop();
        if let Ok(rows) = read_stat(&fdir.join("stat.csv")) {
            flood_sent += rows.last().map_or(0, |r| r.created);
        }
    }
    if flood.is_some() {
        println!(
            "  flood: {flood_sent} messages sent from {} in {:.0} s",
            a.flood_from,
            started.elapsed().as_secs_f64()
        );
    }
    let wall_s = started.elapsed().as_secs_f64();
    let probe =
        match tokio::time::timeout(Duration::from_secs_f64(duration + 30.0), probe_task).await {
            Ok(Ok(Ok(p))) => p,
            Ok(Ok(Err(e))) => {
                problems.push(format!("probe: {e}"));
                ProbeResult::default()
            }
            _ => {
                problems.push("probe did not finish".into());
                ProbeResult::default()
            }
        };
    // agents write their statistics once a second, and count a call only after its 1 s
    // timewait (agent_answer.xml): wait until their counts stop moving
    let total = |(ok, failed): (u64, u64)| ok + failed;
    let mut seen = total(agents_counts(s.answering().1));
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let now = total(agents_counts(s.answering().1));
        if now == seen {
            break;
        }
        seen = now;
    }
    let cpu_sut = s.sut.cpu_s() - cpu_sut0;
    let cpu_agents = s.answering().0.iter_mut().map(Proc::cpu_s).sum::<f64>() - cpu_agents0;
    let cpu_self = self_cpu_s() - cpu_self0;
    census.sample();
    let mut ours: Vec<u32> = vec![std::process::id(), s.sut.pid()];
    ours.extend(s.agents.iter().map(Proc::pid));
    if let Some(d) = &s.dial_out {
        ours.extend(d.carriers.iter().map(Proc::pid));
    }
    ours.extend(callers.iter().map(Proc::pid));
    let cpu_other = census.others_cpu_s(&ours);
    let drops1 = udp_drops();
    let sut_ports = [s.sip.port()];
    let drops_sut = drops_of(&drops1, &sut_ports).saturating_sub(drops_of(&drops0, &sut_ports));
    let answering_ports = s.answering().2.to_vec();
    let drops_agents =
        drops_of(&drops1, &answering_ports).saturating_sub(drops_of(&drops0, &answering_ports));
    let drops_callers: u64 = caller_drops.values().sum();
    let (agent_ok, agent_failed) = agents_counts(s.answering().1);
    let (agent_ok, agent_failed) = (
        agent_ok.saturating_sub(agent_ok0),
        agent_failed.saturating_sub(agent_failed0),
    );

    let mut r = StepResult {
        rate,
        duration,
        created: 0,
        ok: 0,
        failed: 0,
        retrans: 0,
        achieved: 0.0,
        sipp_rtt: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        probe,
        cpu_callers: callers.iter().map(|c| c.last_cpu).sum(),
        cpu_agents,
        cpu_sut,
        cpu_self,
        wall_s,
        cpu_other,
        drops: [drops_callers, drops_agents, drops_sut],
        agent_failed,
        agent_ok,
        unreached: 0,
        why: HashMap::new(),
        problems,
    };
    let warmup_s = talk_s + 1.0;
    for (c, cdir) in callers.iter().zip(&caller_dirs) {
        match read_stat(&cdir.join("stat.csv")) {
            Ok(rows) if !rows.is_empty() => {
                let last = &rows[rows.len() - 1];
                r.created += last.created;
                r.ok += last.ok;
                r.failed += last.failed;
                r.retrans += last.retrans;
                for (k, n) in &last.why {
                    *r.why.entry(k.clone()).or_default() += n;
                }
                r.achieved += achieved_rate(&rows, warmup_s, duration, talk_s);
            }
            Ok(_) => r.problems.push(format!("{}: empty statistics", c.name)),
            Err(e) => r.problems.push(format!("{}: {e:#}", c.name)),
        }
        if let Err(e) = read_rtt(cdir, 1000.0, duration * 1000.0, &mut r.sipp_rtt) {
            r.problems
                .push(format!("{}: response times: {e:#}", c.name));
        }
    }
    // a call counts only if an agent answered it (callgrid answers a queued caller itself,
    // so a caller's 200 alone does not say the call reached an agent)
    r.unreached = (r.ok + r.probe.ok).saturating_sub(r.agent_ok);
    let expected = count * a.callers as u64;
    if r.created < expected && r.problems.is_empty() {
        r.problems
            .push(format!("{} of {expected} calls created", r.created));
    }
    Ok(r)
}

/// The rates of a --find-max run and its results.
struct Outcome {
    steps: Vec<StepResult>,
    max: Option<f64>,
    final_run: Option<StepResult>,
    half_run: Option<StepResult>,
    fixed_run: Option<StepResult>,
    overload: Option<Overload>,
    flood: Option<Flood>,
    /// With --dial-out: the same run with calls the agents' phones dialled.
    dial_out: Option<Box<Outcome>>,
}

/// What a --flood run saw.
struct Flood {
    capacity: f64,
    rate: f64,
    alone: StepResult,
    flooded: StepResult,
}

impl Flood {
    /// The share of the real calls that completed (an agent answered, no failure), %.
    fn completed_pct(r: &StepResult) -> f64 {
        let total = r.created + r.probe.sent;
        let failed = r.failed + r.probe.failed + r.unreached;
        100.0 * total.saturating_sub(failed) as f64 / total.max(1) as f64
    }
}

/// What an --overload run saw.
struct Overload {
    capacity: f64,
    over: StepResult,
    settle: StepResult,
    after: StepResult,
}

impl Overload {
    /// Calls an agent answered and that ended normally, per second offered.
    fn completed_per_s(r: &StepResult) -> f64 {
        r.agent_ok.min(r.ok + r.probe.ok) as f64 / r.duration
    }

    fn goodput(&self) -> f64 {
        Overload::completed_per_s(&self.over) / self.capacity
    }

    /// The probe's INVITE -> refusal time at quantile `q` under overload, ms.
    fn refusal_ms(&self, q: f64) -> Option<f64> {
        self.over
            .probe
            .refusals
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    }

    fn failures(r: &StepResult) -> u64 {
        r.failed + r.probe.failed + r.unreached + r.problems.len() as u64
    }

    fn passes(&self) -> bool {
        self.goodput() >= 0.8
            && self.refusal_ms(0.99).is_some_and(|ms| ms <= 50.0)
            && Overload::failures(&self.after) == 0
    }
}

/// The search of --find-max and --overload: steps of --step-duration from --start-rate up
/// until one fails, then --refine bisection steps; returns the highest rate that passed.
async fn search(
    a: &Args,
    s: &mut Session,
    idx: &mut usize,
    out: &mut Outcome,
) -> anyhow::Result<Option<f64>> {
    let pause = Duration::from_secs(3);
    let tag = s.name();
    let next = |r: f64| match a.step_add {
        Some(add) => r + add,
        None => r * a.step_factor,
    };
    let mut rate = a.start_rate;
    let mut lo: Option<f64> = None;
    let mut hi: Option<f64> = None;
    while rate <= a.max_rate && *idx < 40 {
        *idx += 1;
        let r = run_step(a, s, *idx, rate.round(), a.step_duration).await?;
        println!("[{tag}] step {:>2}: {}", *idx, r.line(a));
        let pass = r.passes(a);
        out.steps.push(r);
        if !pass {
            hi = Some(rate.round());
            break;
        }
        lo = Some(rate.round());
        rate = next(rate);
        tokio::time::sleep(pause).await;
    }
    let Some(mut best) = lo else {
        println!("[{tag}] even {:.0} calls/s fails", a.start_rate);
        return Ok(None);
    };
    if let Some(mut top) = hi {
        for _ in 0..a.refine {
            let mid = ((best + top) / 2.0 / 10.0).round() * 10.0;
            if mid <= best || mid >= top {
                break;
            }
            tokio::time::sleep(pause).await;
            *idx += 1;
            let r = run_step(a, s, *idx, mid, a.step_duration).await?;
            println!("[{tag}] refine {:>2}: {}", *idx, r.line(a));
            if r.passes(a) {
                best = mid;
            } else {
                top = mid;
            }
            out.steps.push(r);
        }
    }
    println!(
        "[{tag}] highest passing rate in {:.0} s steps: {best:.0} calls/s",
        a.step_duration
    );
    Ok(Some(best))
}

/// The rate held: `--capacity`, else the search's result (`None`: not even the first rate).
async fn capacity(
    a: &Args,
    s: &mut Session,
    idx: &mut usize,
    out: &mut Outcome,
) -> anyhow::Result<Option<f64>> {
    match a.capacity {
        Some(c) => Ok(Some(c)),
        None => search(a, s, idx, out).await,
    }
}

/// One step of a run (under a flood of `flood` messages/s if given), printed with its name.
async fn named_step(
    a: &Args,
    s: &mut Session,
    idx: &mut usize,
    name: &str,
    rate: f64,
    duration: f64,
    flood: Option<f64>,
) -> anyhow::Result<StepResult> {
    *idx += 1;
    let r = run_step_with(a, s, *idx, rate.round(), duration, flood).await?;
    println!("[{}] {name} {duration:.0} s: {}", s.name(), r.line(a));
    Ok(r)
}

/// The --flood run: half the rate held, alone and under the flood.
async fn flood(
    a: &Args,
    s: &mut Session,
    idx: &mut usize,
    out: &mut Outcome,
    rate: f64,
) -> anyhow::Result<()> {
    let tag = s.name();
    let Some(capacity) = capacity(a, s, idx, out).await? else {
        return Ok(());
    };
    let half = (capacity / 2.0).round();
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("[{tag}] rate held {capacity:.0} calls/s: real calls at {half:.0}/s, alone, then under a flood of {rate:.0}/s from {}", a.flood_from);
    let alone = named_step(a, s, idx, "alone", half, a.duration, None).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flooded = named_step(a, s, idx, "flooded", half, a.duration, Some(rate)).await?;
    out.flood = Some(Flood {
        capacity,
        rate,
        alone,
        flooded,
    });
    Ok(())
}

/// The --overload run: the rate held, twice it, then half of it.
async fn overload(
    a: &Args,
    s: &mut Session,
    idx: &mut usize,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let tag = s.name();
    let Some(capacity) = capacity(a, s, idx, out).await? else {
        return Ok(());
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("[{tag}] rate held {capacity:.0} calls/s: now twice that, then half");
    let over = named_step(
        a,
        s,
        idx,
        "overload",
        2.0 * capacity,
        a.overload_duration,
        None,
    )
    .await?;
    let settle = named_step(a, s, idx, "settle", capacity / 2.0, 5.0, None).await?;
    let after = named_step(
        a,
        s,
        idx,
        "recovered",
        capacity / 2.0,
        a.recovery_duration,
        None,
    )
    .await?;
    out.overload = Some(Overload {
        capacity,
        over,
        settle,
        after,
    });
    Ok(())
}

async fn drive(a: &Args, s: &mut Session) -> anyhow::Result<Outcome> {
    let mut out = Outcome {
        steps: Vec::new(),
        max: None,
        final_run: None,
        half_run: None,
        fixed_run: None,
        overload: None,
        flood: None,
        dial_out: None,
    };
    let mut idx = 0;
    let pause = Duration::from_secs(3);
    let tag = s.name();
    if let Some(rate) = a.rate {
        idx += 1;
        let r = run_step(a, s, idx, rate, a.duration).await?;
        println!("[{tag}] {}", r.line(a));
        out.fixed_run = Some(r);
        return Ok(out);
    }
    if a.overload {
        overload(a, s, &mut idx, &mut out).await?;
        return Ok(out);
    }
    if let Some(rate) = a.flood {
        flood(a, s, &mut idx, &mut out, rate).await?;
        return Ok(out);
    }
    let Some(mut best) = search(a, s, &mut idx, &mut out).await? else {
        return Ok(out);
    };
    // hold it for the final duration; a short step can pass where a minute does not
    // (memory, queues and timers have a minute to fill), so step down 5 % at a time until
    // a rate holds, and report only a rate that held
    out.max = None;
    for attempt in 0..FINAL_ATTEMPTS {
        tokio::time::sleep(pause).await;
        idx += 1;
        let r = run_step(a, s, idx, best, a.final_duration).await?;
        println!("[{tag}] final {:.0} s: {}", a.final_duration, r.line(a));
        let pass = r.passes(a);
        out.final_run = Some(r);
        if pass {
            out.max = Some(best);
            break;
        }
        if attempt + 1 < FINAL_ATTEMPTS {
            best = (best * 0.95 / 10.0).round() * 10.0;
        }
    }
    let Some(best) = out.max else {
        println!(
            "[{tag}] no rate held for {:.0} s down to {best:.0} calls/s",
            a.final_duration
        );
        return Ok(out);
    };
    tokio::time::sleep(pause).await;
    idx += 1;
    let r = run_step(a, s, idx, (best / 2.0).round(), a.latency_duration).await?;
    println!(
        "[{tag}] half rate {:.0} s: {}",
        a.latency_duration,
        r.line(a)
    );
    out.half_run = Some(r);
    Ok(out)
}

// ------------------------------------------------------------------ report

fn ms(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        format!("{:.2}", h.value_at_quantile(q) as f64 / 1000.0)
    }
}

fn describe_run(name: &str, label: &str, r: &StepResult, a: &Args) {
    let calls_per_cpu = |cpu: f64| {
        if cpu > 0.0 {
            format!("{:.0} calls per CPU-second", r.ok as f64 / cpu)
        } else {
            "-".into()
        }
    };
    println!("  {label}: offered {:.0} calls/s for {:.0} s ({} SIPp callers x {:.1}/s, talk {} ms, {} SIPp agents)",
        r.rate, r.duration, a.callers, r.rate / a.callers as f64, a.talk_ms, a.uas);
    println!(
        "    calls: {} created by SIPp, {} successful at the caller, {} answered by the agents, {} never reached an agent, {} failed ({:.3} % with the probe's and the unreached), {} retransmissions, {} failed at the agents",
        r.created, r.ok, r.agent_ok, r.unreached, r.failed, r.failed_pct(), r.retrans, r.agent_failed
    );
    println!(
        "    achieved: {:.1} calls/s completed in the window {:.1}-{:.0} s ({})",
        r.achieved,
        a.talk_ms as f64 / 1000.0 + 1.0,
        r.duration,
        if r.passes(a) { "pass" } else { "FAIL" }
    );
    if !r.why.is_empty() {
        let mut why: Vec<_> = r.why.iter().collect();
        why.sort();
        println!("    failed calls by SIPp's reason: {why:?}");
    }
    if !r.problems.is_empty() {
        println!("    problems: {}", r.problems.join("; "));
    }
    let h = &r.sipp_rtt;
    if !h.is_empty() {
        println!(
            "    INVITE->200, SIPp (in 4 ms clock steps): mean {:.2} ms, p50 {} ms, p99 {} ms, max {} ms ({} calls)",
            h.mean() / 1000.0,
            h.value_at_quantile(0.5) / 1000,
            h.value_at_quantile(0.99) / 1000,
            h.max() / 1000,
            h.len()
        );
    }
    if let Some(p) = r.probe.hist.as_ref().filter(|h| !h.is_empty()) {
        println!(
            "    INVITE->200, probe ({:.0} calls/s among the load): p50 {} ms, p90 {} ms, p99 {} ms, max {} ms ({} calls, {} failed{})",
            a.probe_rate,
            ms(p, 0.5),
            ms(p, 0.9),
            ms(p, 0.99),
            ms(p, 1.0),
            p.len(),
            r.probe.failed,
            if r.probe.errors.is_empty() {
                String::new()
            } else {
                format!(": {:?}", r.probe.errors)
            }
        );
    }
    let wall = r.wall_s.max(0.001);
    println!(
        "    CPU: SIPp callers {:.1} s ({:.0} % of a core), SIPp agents {:.1} s ({:.0} %), {name} {:.1} s ({:.0} %, {}), sip-rate {:.1} s; wall {:.1} s",
        r.cpu_callers,
        100.0 * r.cpu_callers / wall,
        r.cpu_agents,
        100.0 * r.cpu_agents / wall,
        r.cpu_sut,
        100.0 * r.cpu_sut / wall,
        calls_per_cpu(r.cpu_sut),
        r.cpu_self,
        r.wall_s
    );
    println!(
        "    other processes on the machine: {:.1} CPU-s; UDP packets dropped by the kernel (receive buffers full): callers {}, agents {}, {name} {}",
        r.cpu_other, r.drops[0], r.drops[1], r.drops[2]
    );
}

fn report(name: &str, o: &Outcome, a: &Args) {
    println!("== {name}");
    if let Some(r) = &o.fixed_run {
        describe_run(name, "fixed rate", r, a);
    }
    if let Some(max) = o.max {
        println!(
            "  highest rate held for {:.0} s: {max:.0} calls/s (searched in steps of {:.0} s; a run passes with <= {} % failed and >= {} % of the offered rate achieved)",
            a.final_duration,
            a.step_duration,
            a.max_failed_pct,
            100.0 - a.max_shortfall_pct
        );
    } else if o.fixed_run.is_none() {
        println!(
            "  no rate held for {:.0} s (the last attempt is below)",
            a.final_duration
        );
    }
    if let Some(r) = &o.final_run {
        describe_run(name, "at the highest rate", r, a);
    }
    if let Some(r) = &o.half_run {
        describe_run(name, "at half that rate", r, a);
    }
    if let Some(ov) = &o.overload {
        describe_run(name, "overload (twice the rate held)", &ov.over, a);
        describe_run(
            name,
            "the first 5 s after it (half the rate held)",
            &ov.settle,
            a,
        );
        describe_run(name, "from 5 s after it (half the rate held)", &ov.after, a);
        let ms = |q| ov.refusal_ms(q).map_or("-".into(), |v| format!("{v:.1}"));
        println!(
            "  goodput under 2x overload: {:.0} completed calls/s = {:.1} % of the {:.0}/s held (line: >= 80 %)",
            Overload::completed_per_s(&ov.over),
            100.0 * ov.goodput(),
            ov.capacity
        );
        println!(
            "  refused INVITEs answered (probe, INVITE -> 503): p50 {} ms, p99 {} ms, {} refusals (line: p99 <= 50 ms)",
            ms(0.5),
            ms(0.99),
            ov.over.probe.refusals.as_ref().map_or(0, |h| h.len())
        );
        println!(
            "  after the load dropped: {} failed in the first 5 s, {} from 5 s on (line: 0)",
            Overload::failures(&ov.settle),
            Overload::failures(&ov.after)
        );
        println!(
            "  overload goodput: {}",
            if ov.passes() { "PASS" } else { "FAIL" }
        );
    }
    if let Some(f) = &o.flood {
        describe_run(name, "real calls alone (half the rate held)", &f.alone, a);
        describe_run(name, "real calls under the flood", &f.flooded, a);
        let pct = Flood::completed_pct(&f.flooded);
        println!(
            "  real calls completed at {:.0}/s (half the {:.0}/s held): {:.3} % alone, {pct:.3} % under a flood of {:.0} messages/s from {} (line: >= 99 %)",
            f.alone.rate,
            f.capacity,
            Flood::completed_pct(&f.alone),
            f.rate,
            a.flood_from
        );
        println!("  flood: {}", if pct >= 99.0 { "PASS" } else { "FAIL" });
    }
}

/// Issue 18's line: calls out dialled by the agents' phones reach at least 0.8x the inbound
/// rate of the same build in the same run.
fn dial_out_ratio(inbound: &Outcome, out: &Outcome, a: &Args) {
    println!("== callgrid calls out / calls in (line: >= 0.80)");
    let (i, o) = match (main_run(inbound), main_run(out)) {
        (Some(i), Some(o)) => (i, o),
        _ => {
            println!("  no run to compare");
            return;
        }
    };
    if let (Some(im), Some(om)) = (inbound.max, out.max) {
        println!(
            "  highest rate held for {:.0} s: {om:.0} / {im:.0} = {:.2}",
            a.final_duration,
            om / im
        );
    }
    println!(
        "  achieved rate: {:.1} / {:.1} = {:.2}; failed: {:.3} % / {:.3} %",
        o.achieved,
        i.achieved,
        o.achieved / i.achieved.max(f64::MIN_POSITIVE),
        o.failed as f64 * 100.0 / o.created.max(1) as f64,
        i.failed as f64 * 100.0 / i.created.max(1) as f64,
    );
    let per_call = |r: &StepResult| r.cpu_sut * 1e6 / r.ok.max(1) as f64;
    println!(
        "  SUT CPU per call: {:.0} us / {:.0} us",
        per_call(o),
        per_call(i)
    );
}

fn main_run(o: &Outcome) -> Option<&StepResult> {
    o.fixed_run.as_ref().or(o.final_run.as_ref())
}

fn compare(k: &Outcome, c: &Outcome, a: &Args) {
    println!("== callgrid / kamailio");
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "-".into()
        }
    };
    if let (Some(km), Some(cm)) = (k.max, c.max) {
        println!(
            "  highest rate held for {:.0} s: {cm:.0} / {km:.0} = {}",
            a.final_duration,
            ratio(cm, km)
        );
    }
    if let (Some(kr), Some(cr)) = (main_run(k), main_run(c)) {
        println!(
            "  achieved rate: {:.1} / {:.1} = {}",
            cr.achieved,
            kr.achieved,
            ratio(cr.achieved, kr.achieved)
        );
        let per_call = |r: &StepResult| r.cpu_sut * 1e6 / r.ok.max(1) as f64;
        println!(
            "  SUT CPU per call: {:.0} us / {:.0} us = {}",
            per_call(cr),
            per_call(kr),
            ratio(per_call(cr), per_call(kr))
        );
    }
    let lat = |o: &Outcome| {
        o.half_run
            .as_ref()
            .or(main_run(o))
            .and_then(|r| r.probe_q(0.5).zip(r.probe_q(0.99)))
    };
    if let (Some((k50, k99)), Some((c50, c99))) = (lat(k), lat(c)) {
        println!(
            "  probe INVITE->200 p50: {c50:.2} / {k50:.2} ms = {}, p99: {c99:.2} / {k99:.2} ms = {}",
            ratio(c50, k50),
            ratio(c99, k99)
        );
    }
    println!(
        "  (not a like-for-like comparison: Kamailio relays each call through one stateful proxy hop and writes nothing, \
         callgrid is a B2BUA running two dialogs per call with a routing decision and durable events)"
    );
}

// ------------------------------------------------------------------ main

fn check_args(a: &Args) -> anyhow::Result<()> {
    ensure!(
        a.rate.is_some() || a.find_max || a.overload || a.flood.is_some(),
        "give --rate R (with --duration S), --find-max, --overload or --flood R"
    );
    ensure!(
        !(a.overload || a.flood.is_some()) || a.target == Target::Callgrid,
        "--overload and --flood measure callgrid: give --target callgrid"
    );
    ensure!(
        a.flood.is_none_or(|r| r > 0.0 && r <= 20_000.0),
        "--flood must be in (0, 20000] messages/s"
    );
    ensure!(
        a.flood.is_none()
            || (a.flood_from.is_loopback() && a.flood_from != std::net::Ipv4Addr::LOCALHOST),
        "--flood-from must be a loopback address other than 127.0.0.1 (the carrier trunk's)"
    );
    ensure!(
        a.capacity.is_none_or(|c| c > 0.0 && 2.0 * c <= a.max_rate),
        "--capacity must be in (0, --max-rate / 2]"
    );
    ensure!(
        (3.0..=3600.0).contains(&a.overload_duration)
            && (3.0..=3600.0).contains(&a.recovery_duration),
        "--overload-duration and --recovery-duration must be 3..3600 s"
    );
    if let Some(r) = a.rate {
        ensure!(
            r > 0.0 && r <= a.max_rate,
            "--rate must be in (0, {}]",
            a.max_rate
        );
    }
    ensure!(
        a.duration >= 3.0 && a.duration <= 3600.0,
        "--duration must be 3..3600 s"
    );
    ensure!(
        a.step_duration >= 3.0 && a.step_duration <= 600.0,
        "--step-duration must be 3..600 s"
    );
    ensure!(
        a.final_duration >= 3.0 && a.final_duration <= 3600.0,
        "--final-duration must be 3..3600 s"
    );
    ensure!(
        a.latency_duration >= 3.0 && a.latency_duration <= 3600.0,
        "--latency-duration must be 3..3600 s"
    );
    ensure!(
        a.start_rate > 0.0 && a.start_rate <= a.max_rate,
        "--start-rate must be in (0, --max-rate]"
    );
    ensure!(
        a.step_factor > 1.0 && a.step_factor <= 4.0,
        "--step-factor must be in (1, 4]"
    );
    ensure!(
        a.step_add.is_none_or(|s| s > 0.0),
        "--step-add must be positive"
    );
    ensure!((1..=16).contains(&a.callers), "--callers must be 1..16");
    ensure!((1..=16).contains(&a.uas), "--uas must be 1..16");
    ensure!(a.talk_ms <= 600_000, "--talk-ms must be at most 600000");
    ensure!(
        (0.0..=1000.0).contains(&a.probe_rate),
        "--probe-rate must be 0..1000"
    );
    ensure!(
        (1..=100_000).contains(&a.agents),
        "--agents must be 1..100000"
    );
    ensure!(
        !a.dial_out || (a.target == Target::Callgrid && !a.overload && a.flood.is_none()),
        "--dial-out measures callgrid's calls out by --rate or --find-max: give --target callgrid"
    );
    ensure!(
        !a.dial_out || a.agents >= 2 * a.callers,
        "--dial-out needs at least two agents per caller process"
    );
    ensure!(a.refine <= 10, "--refine must be at most 10");
    ensure!(
        a.scenarios.join("caller.xml").is_file(),
        "no caller.xml in {} (--scenarios)",
        a.scenarios.display()
    );
    Ok(())
}

async fn run_target(a: &Args, target: Target, work: &Path) -> anyhow::Result<Outcome> {
    let mut s = match target {
        Target::Callgrid => start_callgrid(a, work).await?,
        _ => start_kamailio(a, work).await?,
    };
    warm_up(a, &mut s).await?;
    println!(
        "[{}] listening on {}, {} SIPp agents; work dir {}",
        s.name(),
        s.sip,
        s.agents.len(),
        s.work.display()
    );
    let out = drive(a, &mut s).await?;
    let (ok, failed) = agents_counts(&s.agent_dirs);
    println!(
        "[{}] SIPp agents: {ok} calls successful, {failed} failed",
        s.name()
    );
    if let Some(d) = s.dial_out.as_mut() {
        d.active = true;
        println!("[{}] the agents' phones dial out now", s.name());
        let calls_out = drive(a, &mut s).await?;
        let (ok, failed) = agents_counts(s.answering().1);
        println!(
            "[{}] SIPp carriers: {ok} calls successful, {failed} failed",
            s.name()
        );
        return Ok(Outcome {
            dial_out: Some(Box::new(calls_out)),
            ..out
        });
    }
    Ok(out)
}

async fn run(a: Args, work: PathBuf) -> anyhow::Result<()> {
    println!("{}", machine::describe());
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("sipp: {}", first_line(Command::new(&a.sipp).arg("-v")));
    if a.target != Target::Callgrid {
        println!(
            "kamailio: {}",
            first_line(
                Command::new(find_bin(&a.kamailio, &["/usr/sbin", "/usr/local/sbin"])).arg("-v")
            )
        );
    }
    let mut kam = None;
    let mut cg = None;
    if matches!(a.target, Target::Kamailio | Target::Both) {
        kam = Some(run_target(&a, Target::Kamailio, &work).await?);
    }
    if matches!(a.target, Target::Callgrid | Target::Both) {
        cg = Some(run_target(&a, Target::Callgrid, &work).await?);
    }
    println!();
    println!("{}", machine::describe());
    if let Some(k) = &kam {
        report("kamailio", k, &a);
    }
    if let Some(c) = &cg {
        report("callgrid", c, &a);
        if let Some(d) = &c.dial_out {
            report("callgrid dial-out", d, &a);
            dial_out_ratio(c, d, &a);
        }
    }
    if let (Some(k), Some(c)) = (&kam, &cg) {
        compare(k, c, &a);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut a = Args::parse();
    for p in [
        &mut a.scenarios,
        &mut a.sipp,
        &mut a.kamailio,
        &mut a.kamailio_cfg,
        &mut a.callgrid_bin,
    ] {
        *p = absolute(p);
    }
    if let Some(w) = a.work_dir.as_mut() {
        *w = absolute(w);
    }
    if let Err(e) = check_args(&a) {
        eprintln!("sip-rate: {e:#}");
        return ExitCode::from(2);
    }
    let (work_dir, keep) = (a.work_dir.clone(), a.keep);
    main_in_work_dir("sip-rate", work_dir, keep, |work| run(a, work)).await
}
