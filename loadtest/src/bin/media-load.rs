//! Media benchmark: N concurrent bridged G.711 calls through `callgrid serve`, every RTP
//! packet counted into and out of the SIP edge and end to end.
//!
//! Set-up (everything on 127.0.0.1): `callgrid serve --metrics-listen` with the load tenant
//! of `sip-rate` (N agents in queue 200, no wrap-up); `--uas` SIPp agents running
//! `loadtest/sipp/agent_answer.xml` with `-rtp_echo` (each sends every RTP packet it gets back
//! to its source), every agent registered and made available; per step, `--callers` SIPp
//! callers placing N calls in all at `--setup-rate` calls/s. Each call (a scenario this
//! program writes into its work directory) offers PCMU on its own port
//! (`[auto_media_port+4]`, which this program binds), logs the edge's RTP port from the 200's
//! SDP (`<log>`, `-trace_logs`), stays `--settle-ms` + `--hold-seconds` + 2 s and hangs up.
//! This program reads those log lines as SIPp writes them and, `--settle-ms` after each (the
//! agent has answered and the edge has bridged by then), sends the call's G.711 stream from
//! the call's socket: `--hold-seconds` of 20 ms PCMU packets, 160 bytes of payload ("CGML",
//! the packet's index, µ-law silence). So every packet travels caller → edge (caller leg) →
//! relayed → agent → echoed → edge (agent leg) → relayed → caller: two relays through the
//! edge per packet.
//!
//! Why not SIPp's `play_pcap_audio`: it sends through one raw `IPPROTO_UDP` socket per
//! playing call, and a raw socket gets a copy of every UDP datagram the host receives. With
//! N calls every RTP packet on the machine is offered to N raw sockets nobody reads: at 800
//! calls the kernel spent both cores in softirq (310 million raw-socket drops within seconds)
//! and starved everything else, the edge included. Sending from the call's own UDP socket
//! costs one `sendto`, and gives each packet's send time.
//!
//! What it counts:
//! - at the edge, from `GET /metrics` before and after the step: RTP packets received,
//!   relayed, sent, played (prompts, hold music), discarded (not bridged) and dropped by
//!   reason; the peak of media legs open;
//! - at the callers: every packet of ours that comes back, by its index (lost, duplicated,
//!   reordered), that the edge's renumbering is continuous (one SSRC, sequence − index and
//!   timestamp − 160 × index constant per call), and its round trip (sent → back: two passes
//!   through the edge, the SIPp echo and this program's own scheduling);
//! - the kernel: drops on the edge's RTP sockets, the SIPp agents' echo sockets and ours
//!   (/proc/net/udp), and the machine's UDP RcvbufErrors/SndbufErrors/InErrors
//!   (/proc/net/snmp);
//! - CPU: callgrid over the plateau (while all N calls stream) and over the step; SIPp,
//!   this program and every other process on the machine over the step.
//!
//! `--concurrent 200,400,800` runs the steps in order on one `callgrid serve`
//! (`--stop-on-loss` stops after the first step that loses a packet at the edge). A packet
//! is lost at the edge when the kernel drops it on an edge socket, when the edge fails to send
//! it, or when the counters do not account for it; end to end, when it does not come back to
//! its caller (wherever it was lost: the SIPp agents' single echo thread, with the kernel's
//! default receive buffer, is the weakest link of the set-up on a busy machine).
//!
//! ```text
//! cargo build --release -p callgrid -p callgrid-loadtest
//! target/release/media-load --concurrent 200,400,800 --hold-seconds 30
//! ```

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use callgrid_loadtest::harness::{
    absolute, first_line, free_tcp_port, free_udp_port, free_udp_range, free_udp_tcp_port,
    load_tenant_yaml, main_in_work_dir, make_available, read_stat, register_agents, scrape_metrics,
    self_cpu_s, udp_drops, udp_snmp, until_serving, wait_udp_bound, Census, Proc,
};
use callgrid_loadtest::machine;
use clap::Parser;
use hdrhistogram::Histogram;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sipp");
/// The first bytes of the payload of every packet of ours; the packet's index follows.
const MAGIC: &[u8; 4] = b"CGML";
/// G.711 at 20 ms: 160 samples and bytes per packet.
const FRAME_SAMPLES: u32 = 160;
const FRAME: Duration = Duration::from_millis(20);
/// After the stream: time for the last packets' echo before the BYE.
const TAIL: Duration = Duration::from_secs(2);
/// A call is "streaming" while a packet of ours arrived this recently.
const STREAMING: Duration = Duration::from_millis(200);

#[derive(Parser, Clone, Debug)]
#[command(about = "Concurrent bridged G.711 calls through callgrid serve: RTP loss at the edge")]
struct Args {
    /// Concurrent calls of each step, in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "200")]
    concurrent: Vec<usize>,
    /// Seconds of RTP each call sends (20 ms PCMU packets).
    #[arg(long, default_value_t = 30)]
    hold_seconds: u64,
    /// Calls set up per second (all callers together) while a step ramps up.
    #[arg(long, default_value_t = 50.0)]
    setup_rate: f64,
    /// Milliseconds between the 200 and a call's first RTP packet (the bridge is up by then).
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Stop after the first step that loses a packet at the edge.
    #[arg(long)]
    stop_on_loss: bool,
    /// SIPp caller processes splitting the calls.
    #[arg(long, default_value_t = 2)]
    callers: usize,
    /// SIPp agent processes (each echoes the RTP of its calls on one port, in one thread,
    /// with the kernel's default receive buffer: more processes, fewer drops there).
    #[arg(long, default_value_t = 8)]
    uas: usize,
    /// First port of the RTP ports used: the edge's range (4 per call: two legs on even
    /// ports), then each SIPp caller's, then the agents' echo ports (below callgrid's default
    /// 20000-29999 and the kernel's ephemeral ports).
    #[arg(long, default_value_t = 10000)]
    port_base: u16,
    /// The dialled number (SIPp -s).
    #[arg(long, default_value = "+15550000001")]
    number: String,
    /// Directory of the SIPp scenarios (agent_answer.xml, agent_register.xml).
    #[arg(long, default_value = SCENARIOS)]
    scenarios: PathBuf,
    /// SIPp binary.
    #[arg(long, default_value = "sipp")]
    sipp: PathBuf,
    /// The callgrid binary (`callgrid serve`).
    #[arg(long, default_value = "target/release/callgrid")]
    callgrid_bin: PathBuf,
    /// Extra argument for `callgrid serve` (repeat it), e.g. --callgrid-arg=--durability=process.
    #[arg(long, allow_hyphen_values = true)]
    callgrid_arg: Vec<String>,
    /// Work directory (default: a new directory under the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory (it is always kept when something fails).
    #[arg(long)]
    keep: bool,
}

// ------------------------------------------------------------------ ports

/// Where everything's RTP goes.
struct PortPlan {
    /// `callgrid serve --rtp-ports FIRST-LAST`
    edge: (u16, u16),
    /// `-mp` of each SIPp caller; call k (from 1) of caller i uses `callers[i] + 4 k`.
    callers: Vec<u16>,
    /// `-mp` of each SIPp agent (it also binds the port 2 above).
    agents: Vec<u16>,
}

fn plan_ports(a: &Args, max_calls: usize) -> anyhow::Result<PortPlan> {
    let per_caller = max_calls.div_ceil(a.callers) as u32;
    let first = u32::from(a.port_base) & !1;
    // two legs per call, each on an even port, and room for ports taken by others
    let edge_last = first + 4 * max_calls as u32 + 400 - 1;
    let mut next = edge_last + 1;
    let mut callers = Vec::new();
    for _ in 0..a.callers {
        callers.push(next);
        next += 4 * (per_caller + 2);
    }
    let mut agents = Vec::new();
    for _ in 0..a.uas {
        agents.push(next);
        next += 4;
    }
    ensure!(
        next < 65_000,
        "{max_calls} calls need RTP ports {first}-{next}: lower --port-base"
    );
    let port = |p: u32| p as u16;
    Ok(PortPlan {
        edge: (port(first), port(edge_last)),
        callers: callers.into_iter().map(port).collect(),
        agents: agents.into_iter().map(port).collect(),
    })
}

/// Fails unless `port` can be bound now (for a port a SIPp process will bind).
fn ensure_free(port: u16) -> anyhow::Result<()> {
    UdpSocket::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("UDP port {port} is taken (try another --port-base)"))
}

// ------------------------------------------------------------------ the callers' scenario

/// The callers' scenario: INVITE offering PCMU on `[auto_media_port+4]`; on the 200, log
/// `rtp CALL_NUMBER m=audio EDGE_PORT`; ACK; stay `talk_ms` (this program sends the RTP);
/// BYE (a BYE from the far end is answered).
fn caller_scenario(talk_ms: u64) -> String {
    let head = |method: &str, cseq: u32| {
        [
            format!("{method} [next_url] SIP/2.0"),
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]".into(),
            "[routes]".into(),
            "From: \"Caller\" <sip:0961234566@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]"
                .into(),
            "To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]".into(),
            "Call-ID: [call_id]".into(),
            format!("CSeq: {cseq} {method}"),
            "Contact: <sip:0961234566@[local_ip]:[local_port];transport=[transport]>".into(),
            "Max-Forwards: 70".into(),
            "Content-Length: 0".into(),
        ]
        .map(|l: String| format!("      {l}\n"))
        .concat()
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- written by loadtest/src/bin/media-load.rs: a call whose RTP media-load sends -->
<scenario name="callgrid media caller">
  <send retrans="500" start_txn="invite">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Caller" <sip:0961234566@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:0961234566@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Subject: callgrid media load
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=caller 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port+4] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-16
      a=sendrecv

    ]]>
  </send>
  <recv response="100" response_txn="invite" optional="true" />
  <recv response="180" response_txn="invite" optional="true" />
  <recv response="183" response_txn="invite" optional="true" />
  <recv request="BYE" optional="global" next="remote_bye" />
  <recv response="200" response_txn="invite" rrs="true">
    <action>
      <ereg regexp="m=audio [0-9]+" search_in="msg" check_it="true" assign_to="edge_media" />
      <log message="rtp [call_number] [$edge_media]" />
    </action>
  </recv>
  <send ack_txn="invite">
    <![CDATA[

{ack}
    ]]>
  </send>
  <pause milliseconds="{talk_ms}" />
  <send retrans="500">
    <![CDATA[

{bye}
    ]]>
  </send>
  <recv response="200" crlf="true" next="end" />
  <label id="remote_bye" />
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:0961234566@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <label id="end" />
</scenario>
"#,
        ack = head("ACK", 1),
        bye = head("BYE", 2),
    )
}

// ------------------------------------------------------------------ one call's RTP

/// One call's RTP at the caller: what was sent, what came back.
struct CallRx {
    expected: u32,
    /// when each packet of ours was sent
    sent_at: Vec<Option<Instant>>,
    /// packets of ours sent (sendto succeeded) and send errors
    sent: u64,
    send_errors: u64,
    seen: Vec<u64>,
    /// packets of ours back (with duplicates)
    ours: u64,
    unique: u64,
    duplicates: u64,
    /// arrived after a packet with a higher index
    reordered: u64,
    /// packets without our marker (prompts, hold music the edge played)
    other: u64,
    /// index beyond the stream, or a packet too short for RTP
    garbage: u64,
    /// (SSRC, sequence − index, timestamp − 160 × index) of the stream so far
    stream: Option<(u32, u16, u32)>,
    ssrc_changes: u64,
    seq_breaks: u64,
    ts_breaks: u64,
    max_index: Option<u32>,
    /// sent → back of each packet of ours, µs
    rtts_us: Vec<u32>,
    last_ours: Option<Instant>,
}

impl CallRx {
    fn new(expected: u32) -> CallRx {
        CallRx {
            expected,
            sent_at: vec![None; expected as usize],
            sent: 0,
            send_errors: 0,
            seen: vec![0; (expected as usize).div_ceil(64)],
            ours: 0,
            unique: 0,
            duplicates: 0,
            reordered: 0,
            other: 0,
            garbage: 0,
            stream: None,
            ssrc_changes: 0,
            seq_breaks: 0,
            ts_breaks: 0,
            max_index: None,
            rtts_us: Vec::with_capacity(expected as usize),
            last_ours: None,
        }
    }

    fn on_packet(&mut self, data: &[u8], now: Instant) {
        if data.len() < 12 || data[0] >> 6 != 2 {
            self.garbage += 1;
            return;
        }
        let csrcs = usize::from(data[0] & 0x0f);
        let payload = data.get(12 + 4 * csrcs..).unwrap_or_default();
        if payload.len() < 8 || &payload[..4] != MAGIC {
            self.other += 1;
            return;
        }
        let index = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
        if index >= self.expected {
            self.garbage += 1;
            return;
        }
        self.ours += 1;
        self.last_ours = Some(now);
        let (word, bit) = ((index / 64) as usize, index % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        if let Some(at) = self.sent_at[index as usize] {
            let rtt = now.saturating_duration_since(at).as_micros();
            self.rtts_us.push(u32::try_from(rtt).unwrap_or(u32::MAX));
        }
        if self.max_index.is_some_and(|m| index < m) {
            self.reordered += 1;
        }
        self.max_index = Some(self.max_index.map_or(index, |m| m.max(index)));
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let now_stream = (
            ssrc,
            seq.wrapping_sub(index as u16),
            ts.wrapping_sub(index.wrapping_mul(FRAME_SAMPLES)),
        );
        match self.stream {
            None => {}
            Some((s, _, _)) if s != ssrc => self.ssrc_changes += 1,
            Some((_, q, t)) => {
                if q != now_stream.1 {
                    self.seq_breaks += 1;
                }
                if t != now_stream.2 {
                    self.ts_breaks += 1;
                }
            }
        }
        self.stream = Some(now_stream);
    }
}

/// One call's RTP socket (the port its SDP offers) and its counts.
#[derive(Clone)]
struct CallMedia {
    sock: Arc<tokio::net::UdpSocket>,
    rx: Arc<Mutex<CallRx>>,
}

fn bind_call(port: u16, expected: u32) -> anyhow::Result<CallMedia> {
    let sock = UdpSocket::bind(("127.0.0.1", port))
        .with_context(|| format!("cannot bind the caller RTP port {port}"))?;
    sock.set_nonblocking(true)?;
    Ok(CallMedia {
        sock: Arc::new(tokio::net::UdpSocket::from_std(sock)?),
        rx: Arc::new(Mutex::new(CallRx::new(expected))),
    })
}

fn lock(rx: &Mutex<CallRx>) -> std::sync::MutexGuard<'_, CallRx> {
    rx.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts what arrives on a call's socket until aborted.
async fn receive(call: CallMedia) {
    let mut buf = [0u8; 2048];
    loop {
        match call.sock.recv_from(&mut buf).await {
            Ok((n, _)) => {
                let now = Instant::now();
                lock(&call.rx).on_packet(&buf[..n], now);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Sends a call's stream to `to` after `settle`: `expected` PCMU packets 20 ms apart (a late
/// tick sends at once, keeping the schedule), marker on the first, SSRC `ssrc`.
async fn send_stream(call: CallMedia, to: SocketAddr, settle: Duration, ssrc: u32) {
    tokio::time::sleep(settle).await;
    let expected = lock(&call.rx).expected;
    let mut packet = [0xffu8; 12 + FRAME_SAMPLES as usize];
    packet[0] = 0x80;
    packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
    packet[12..16].copy_from_slice(MAGIC);
    let mut ticks = tokio::time::interval(FRAME);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..expected {
        ticks.tick().await;
        packet[1] = if i == 0 { 0x80 } else { 0 };
        packet[2..4].copy_from_slice(&(1000u16.wrapping_add(i as u16)).to_be_bytes());
        packet[4..8].copy_from_slice(&(FRAME_SAMPLES.wrapping_mul(i)).to_be_bytes());
        packet[16..20].copy_from_slice(&i.to_be_bytes());
        let at = Instant::now();
        let ok = call.sock.send_to(&packet, to).await.is_ok();
        let mut rx = lock(&call.rx);
        if ok {
            rx.sent += 1;
            rx.sent_at[i as usize] = Some(at);
        } else {
            rx.send_errors += 1;
        }
    }
}

/// Follows the callers' `<log>` files (`rtp CALL_NUMBER m=audio PORT`) and starts each
/// call's stream toward the edge's port; `calls[i][k - 1]` is call k of caller i.
async fn start_streams(logs: Vec<PathBuf>, calls: Vec<Vec<CallMedia>>, settle: Duration) {
    let mut offsets = vec![0usize; logs.len()];
    let mut partial = vec![String::new(); logs.len()];
    let mut started = 0;
    let total: usize = calls.iter().map(Vec::len).sum();
    while started < total {
        for (i, log) in logs.iter().enumerate() {
            let Ok(text) = fs::read(log) else { continue };
            let Some(new) = text.get(offsets[i]..) else {
                continue;
            };
            offsets[i] = text.len();
            partial[i].push_str(&String::from_utf8_lossy(new));
            while let Some(end) = partial[i].find('\n') {
                let line: String = partial[i].drain(..=end).collect();
                let mut f = line.split_whitespace();
                let (Some("rtp"), Some(n), Some("m=audio"), Some(port)) =
                    (f.next(), f.next(), f.next(), f.next())
                else {
                    continue;
                };
                let (Ok(n), Ok(port)) = (n.parse::<usize>(), port.parse::<u16>()) else {
                    continue;
                };
                if let Some(call) = n.checked_sub(1).and_then(|k| calls[i].get(k)) {
                    let to = SocketAddr::from(([127, 0, 0, 1], port));
                    let ssrc = 0x4347_0000 | ((i as u32) << 12) | n as u32;
                    tokio::spawn(send_stream(call.clone(), to, settle, ssrc));
                    started += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ------------------------------------------------------------------ the session

struct Session {
    sut: Proc,
    agents: Vec<Proc>,
    sip: SocketAddr,
    metrics: SocketAddr,
    /// The node's admin token (scrapes show it).
    token: String,
    ports: PortPlan,
    work: PathBuf,
}

async fn start(a: &Args, work: &Path, max_calls: usize) -> anyhow::Result<Session> {
    let ports = plan_ports(a, max_calls)?;
    let tenants = work.join("tenants");
    fs::create_dir_all(&tenants)?;
    fs::write(
        tenants.join("load.yaml"),
        load_tenant_yaml(max_calls, &a.number),
    )?;
    let agent_base = free_udp_range(a.uas)?;
    let sip_port = free_udp_tcp_port()?;
    let grpc_port = free_tcp_port()?;
    let metrics_port = free_tcp_port()?;
    let mut cmd = Command::new(&a.callgrid_bin);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(work.join("data"))
        .arg("--no-demo")
        .arg("--tenants")
        .arg(&tenants)
        .args(["--listen", &format!("127.0.0.1:{grpc_port}")])
        .args(["--sip-listen", &format!("127.0.0.1:{sip_port}")])
        .args(["--rtp-ports", &format!("{}-{}", ports.edge.0, ports.edge.1)])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(&a.callgrid_arg)
        .env("RUST_LOG", "warn");
    let mut sut = Proc::spawn("callgrid", &mut cmd, work, false)?;
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
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = scrape_metrics(metrics, &token).await {
        ensure!(
            Instant::now() < deadline,
            "callgrid serves no /metrics: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agent_ports: Vec<u16> = (0..a.uas).map(|i| agent_base + i as u16).collect();
    register_agents(
        &a.sipp,
        &a.scenarios,
        sip_port,
        &agent_ports,
        max_calls,
        work,
    )
    .await?;
    // agents: SIPp UAS answering at once and echoing RTP, on the ports the agents registered
    // from (the edge reaches a phone where its REGISTER came from)
    let mut agents = Vec::new();
    for (i, &media) in ports.agents.iter().enumerate() {
        ensure_free(media)?;
        ensure_free(media + 2)?;
        let port = agent_base + i as u16;
        let dir = work.join(format!("agent-{i}"));
        let mut cmd = Command::new(&a.sipp);
        cmd.arg("-sf")
            .arg(a.scenarios.join("agent_answer.xml"))
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-mp", &media.to_string(), "-rtp_echo"])
            .args(["-buff_size", &(4 << 20).to_string()])
            .args(["-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1"]);
        let mut p = Proc::spawn(&format!("agent-{i}"), &mut cmd, &dir, false)?;
        wait_udp_bound(port, &mut p, Duration::from_secs(10)).await?;
        agents.push(p);
    }
    make_available(&grpc, &token, max_calls).await?;
    Ok(Session {
        sut,
        agents,
        sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        metrics,
        token,
        ports,
        work: work.to_path_buf(),
    })
}

// ------------------------------------------------------------------ one step

const RTP: &str = "callgrid_rtp_packets_";
const DROP_REASONS: [&str; 8] = [
    "malformed",
    "unknown_payload_type",
    "peer_paused",
    "peer_no_remote",
    "peer_busy",
    "no_telephone_event",
    "send_failed",
    "foreign_source",
];

fn metric(m: &HashMap<String, f64>, name: &str) -> u64 {
    m.get(name).copied().unwrap_or(0.0) as u64
}

fn dropped_name(reason: &str) -> String {
    format!("{RTP}dropped_total{{reason=\"{reason}\"}}")
}

/// The edge's RTP counters over a step.
#[derive(Default, Clone)]
struct EdgeDelta {
    received: u64,
    sent: u64,
    played: u64,
    relayed: u64,
    discarded: u64,
    play_errors: u64,
    dropped: Vec<(&'static str, u64)>,
    calls_arrived: u64,
    agent_legs_answered: u64,
}

impl EdgeDelta {
    fn between(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> EdgeDelta {
        let d = |name: &str| metric(b, name).saturating_sub(metric(a, name));
        EdgeDelta {
            received: d(&format!("{RTP}received_total")),
            sent: d(&format!("{RTP}sent_total")),
            played: d(&format!("{RTP}played_total")),
            relayed: d(&format!("{RTP}relayed_total")),
            discarded: d(&format!("{RTP}discarded_total")),
            play_errors: d("callgrid_rtp_play_errors_total"),
            dropped: DROP_REASONS
                .iter()
                .map(|r| (*r, d(&dropped_name(r))))
                .collect(),
            calls_arrived: d("callgrid_sip_calls_arrived"),
            agent_legs_answered: d("callgrid_sip_agent_legs_answered"),
        }
    }

    fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    fn dropped_of(&self, reason: &str) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Received packets neither relayed, discarded nor dropped for a counted reason: lost
    /// inside the edge without a trace (0 unless the counters are wrong).
    fn unaccounted(&self) -> i64 {
        self.received as i64
            - self.relayed as i64
            - self.discarded as i64
            - self.dropped_total() as i64
    }
}

struct StepResult {
    calls: usize,
    hold_s: u64,
    packets_per_call: u32,
    sipp_created: u64,
    sipp_ok: u64,
    sipp_failed: u64,
    peak_streaming: usize,
    peak_legs: u64,
    plateau_s: f64,
    plateau_cpu_cores: f64,
    plateau_relayed_per_s: f64,
    edge: EdgeDelta,
    /// totals over every call's receiver
    /// packets of ours sent by the callers, and send errors
    tx_sent: u64,
    tx_errors: u64,
    rx_ours: u64,
    rx_unique: u64,
    rx_duplicates: u64,
    rx_reordered: u64,
    rx_other: u64,
    rx_garbage: u64,
    ssrc_changes: u64,
    seq_breaks: u64,
    ts_breaks: u64,
    calls_short: usize,
    calls_silent: usize,
    /// arrival − schedule relative to each call's earliest, µs
    /// sent → back of every packet of ours, µs
    rtt: Histogram<u64>,
    /// kernel drops (receive buffer full): edge RTP sockets, SIPp echo sockets, ours
    drops: [u64; 3],
    snmp: HashMap<String, i64>,
    cpu_sut: f64,
    cpu_callers: f64,
    cpu_agents: f64,
    cpu_self: f64,
    cpu_other: f64,
    wall_s: f64,
    problems: Vec<String>,
}

impl StepResult {
    fn expected(&self) -> u64 {
        self.calls as u64 * u64::from(self.packets_per_call)
    }
    /// Packets sent that did not come back (packets never sent count as well).
    fn lost_e2e(&self) -> u64 {
        self.expected().saturating_sub(self.rx_unique)
    }
    /// Packets the edge lost: dropped by the kernel on its sockets (receive buffer full),
    /// not sent (send errors, of relayed packets or its own) or not accounted for at all.
    /// (Discarded and other dropped packets are the edge's decision, reported apart; this
    /// benchmark expects none.)
    fn lost_edge(&self) -> u64 {
        self.drops[0]
            + self.edge.dropped_of("send_failed")
            + self.edge.play_errors
            + self.edge.unaccounted().unsigned_abs()
    }
    fn edge_ok(&self) -> bool {
        self.lost_edge() == 0 && self.problems.is_empty()
    }
    fn zero_loss(&self) -> bool {
        self.edge_ok() && self.lost_e2e() == 0
    }
}

async fn run_step(
    a: &Args,
    s: &mut Session,
    idx: usize,
    calls: usize,
    hold_s: u64,
) -> anyhow::Result<StepResult> {
    let dir = s.work.join(format!("step{idx:02}-{calls}"));
    fs::create_dir_all(&dir)?;
    let packets = u32::try_from(hold_s * 50)?;
    let talk_ms = a.settle_ms + hold_s * 1000 + TAIL.as_millis() as u64;
    let scenario = dir.join("media_caller.xml");
    fs::write(&scenario, caller_scenario(talk_ms))?;

    // the calls of each caller: call k of caller i offers port callers[i] + 4 k
    let n_callers = a.callers.min(calls);
    let mut by_caller: Vec<Vec<CallMedia>> = Vec::new();
    let mut receiver_ports = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..n_callers {
        let n = calls / n_callers + usize::from(i < calls % n_callers);
        let mp = s.ports.callers[i];
        ensure_free(mp)?;
        ensure_free(mp + 2)?;
        let mut these = Vec::new();
        for k in 1..=n {
            let port = mp + 4 * k as u16;
            let call = bind_call(port, packets)?;
            tasks.push(tokio::spawn(receive(call.clone())));
            receiver_ports.push(port);
            these.push(call);
        }
        by_caller.push(these);
    }
    let receivers: Vec<CallMedia> = by_caller.iter().flatten().cloned().collect();
    let per_caller: Vec<usize> = by_caller.iter().map(Vec::len).collect();

    let m0 = scrape_metrics(s.metrics, &s.token).await?;
    let snmp0 = udp_snmp();
    let drops0 = udp_drops();
    let cpu_sut0 = s.sut.cpu_s();
    let cpu_agents0: f64 = s.agents.iter_mut().map(Proc::cpu_s).sum();
    let cpu_self0 = self_cpu_s();
    let mut census = Census::start();
    let started = Instant::now();

    let rate = a.setup_rate / n_callers as f64;
    let ramp_s = calls as f64 / a.setup_rate;
    let timeout_s = (ramp_s + talk_ms as f64 / 1000.0 + 60.0).ceil();
    let mut callers = Vec::new();
    let mut caller_dirs = Vec::new();
    for (i, &n) in per_caller.iter().enumerate() {
        let cdir = dir.join(format!("caller-{i}"));
        let mut cmd = Command::new(&a.sipp);
        cmd.arg(s.sip.to_string())
            .arg("-sf")
            .arg(&scenario)
            .args(["-s", &a.number, "-i", "127.0.0.1"])
            .args(["-p", &free_udp_port()?.to_string()])
            .args(["-mp", &s.ports.callers[i].to_string()])
            .args(["-r", &format!("{rate:.3}"), "-rp", "1000"])
            .args(["-m", &n.to_string(), "-l", &n.to_string()])
            .args(["-buff_size", &(4 << 20).to_string()])
            .args(["-nostdin", "-trace_stat", "-stf", "stat.csv", "-fd", "1"])
            .args(["-trace_logs", "-log_file", "rtp.log"])
            .args(["-timeout", &format!("{timeout_s}s"), "-timeout_error"]);
        callers.push(Proc::spawn(&format!("caller-{i}"), &mut cmd, &cdir, false)?);
        caller_dirs.push(cdir);
    }
    let logs = caller_dirs.iter().map(|d| d.join("rtp.log")).collect();
    let streams = tokio::spawn(start_streams(
        logs,
        by_caller,
        Duration::from_millis(a.settle_ms),
    ));

    // sample while the calls run
    let edge_ports = s.ports.edge.0..=s.ports.edge.1;
    let mut edge_drops: HashMap<u16, u64> = HashMap::new();
    let mut our_drops: HashMap<u16, u64> = HashMap::new();
    let mut peak_streaming = 0;
    let mut peak_legs = 0u64;
    // (time, callgrid CPU s, relayed) at the first and the last sample with every call streaming
    type Point = (Instant, f64, u64);
    let mut plateau: Option<(Point, Point)> = None;
    let mut problems = Vec::new();
    let hard_deadline = started + Duration::from_secs_f64(timeout_s + 15.0);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        census.sample();
        let now = Instant::now();
        let streaming = receivers
            .iter()
            .filter(|c| {
                lock(&c.rx)
                    .last_ours
                    .is_some_and(|t| now.saturating_duration_since(t) < STREAMING)
            })
            .count();
        peak_streaming = peak_streaming.max(streaming);
        if let Ok(m) = scrape_metrics(s.metrics, &s.token).await {
            peak_legs = peak_legs.max(metric(&m, "callgrid_rtp_legs_active"));
            if streaming == calls {
                let point = (
                    Instant::now(),
                    s.sut.cpu_s(),
                    metric(&m, &format!("{RTP}relayed_total")),
                );
                plateau = Some(match plateau {
                    None => (point, point),
                    Some((first, _)) => (first, point),
                });
            }
        }
        let d = udp_drops();
        for (&port, &n) in &d {
            if edge_ports.contains(&port) {
                let e = edge_drops.entry(port).or_insert(0);
                *e = (*e).max(n);
            }
        }
        for p in &receiver_ports {
            if let Some(&n) = d.get(p) {
                let e = our_drops.entry(*p).or_insert(0);
                *e = (*e).max(n);
            }
        }
        let running = callers
            .iter_mut()
            .map(|c| c.poll().is_none())
            .filter(|r| *r)
            .count();
        if running == 0 {
            break;
        }
        if let Some(st) = s.sut.poll() {
            problems.push(format!("callgrid exited ({st})"));
            break;
        }
        if Instant::now() > hard_deadline {
            problems.push("callers still running at the deadline".into());
            break;
        }
    }
    for c in callers.iter_mut() {
        c.stop();
        if let Some(st) = c.status {
            if !st.success() {
                problems.push(format!("{} exited with {st}", c.name));
            }
        }
    }
    // late packets and the last legs closing
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let wall_s = started.elapsed().as_secs_f64();
    let m1 = scrape_metrics(s.metrics, &s.token).await?;
    let snmp1 = udp_snmp();
    let drops1 = udp_drops();
    streams.abort();
    for t in &tasks {
        t.abort();
    }
    let cpu_sut = s.sut.cpu_s() - cpu_sut0;
    let cpu_agents = s.agents.iter_mut().map(Proc::cpu_s).sum::<f64>() - cpu_agents0;
    let cpu_self = self_cpu_s() - cpu_self0;
    census.sample();
    let mut ours: Vec<u32> = vec![std::process::id(), s.sut.pid()];
    ours.extend(s.agents.iter().map(Proc::pid));
    ours.extend(callers.iter().map(Proc::pid));
    let cpu_other = census.others_cpu_s(&ours);

    let agent_drops: u64 = s
        .ports
        .agents
        .iter()
        .flat_map(|&p| [p, p + 2])
        .map(|p| {
            drops1
                .get(&p)
                .copied()
                .unwrap_or(0)
                .saturating_sub(drops0.get(&p).copied().unwrap_or(0))
        })
        .sum();
    let snmp = [
        "InDatagrams",
        "OutDatagrams",
        "InErrors",
        "RcvbufErrors",
        "SndbufErrors",
    ]
    .iter()
    .map(|k| {
        let v =
            snmp1.get(*k).copied().unwrap_or(0) as i64 - snmp0.get(*k).copied().unwrap_or(0) as i64;
        (k.to_string(), v)
    })
    .collect();

    let (plateau_s, plateau_cpu_cores, plateau_relayed_per_s) = match plateau {
        Some((f, l)) if l.0 > f.0 => {
            let dt = l.0.duration_since(f.0).as_secs_f64();
            (dt, (l.1 - f.1) / dt, l.2.saturating_sub(f.2) as f64 / dt)
        }
        _ => (0.0, 0.0, 0.0),
    };
    let mut r = StepResult {
        calls,
        hold_s,
        packets_per_call: packets,
        sipp_created: 0,
        sipp_ok: 0,
        sipp_failed: 0,
        peak_streaming,
        peak_legs,
        plateau_s,
        plateau_cpu_cores,
        plateau_relayed_per_s,
        edge: EdgeDelta::between(&m0, &m1),
        tx_sent: 0,
        tx_errors: 0,
        rx_ours: 0,
        rx_unique: 0,
        rx_duplicates: 0,
        rx_reordered: 0,
        rx_other: 0,
        rx_garbage: 0,
        ssrc_changes: 0,
        seq_breaks: 0,
        ts_breaks: 0,
        calls_short: 0,
        calls_silent: 0,
        rtt: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        drops: [
            edge_drops.values().sum(),
            agent_drops,
            our_drops.values().sum(),
        ],
        snmp,
        cpu_sut,
        cpu_callers: callers.iter().map(|c| c.last_cpu).sum(),
        cpu_agents,
        cpu_self,
        cpu_other,
        wall_s,
        problems,
    };
    for call in &receivers {
        let c = lock(&call.rx);
        r.tx_sent += c.sent;
        r.tx_errors += c.send_errors;
        r.rx_ours += c.ours;
        r.rx_unique += c.unique;
        r.rx_duplicates += c.duplicates;
        r.rx_reordered += c.reordered;
        r.rx_other += c.other;
        r.rx_garbage += c.garbage;
        r.ssrc_changes += c.ssrc_changes;
        r.seq_breaks += c.seq_breaks;
        r.ts_breaks += c.ts_breaks;
        if c.unique == 0 {
            r.calls_silent += 1;
        } else if c.unique < u64::from(c.expected) {
            r.calls_short += 1;
        }
        for &us in &c.rtts_us {
            r.rtt.saturating_record(u64::from(us).max(1));
        }
    }
    for (c, cdir) in callers.iter().zip(&caller_dirs) {
        match read_stat(&cdir.join("stat.csv")) {
            Ok(rows) if !rows.is_empty() => {
                let last = &rows[rows.len() - 1];
                r.sipp_created += last.created;
                r.sipp_ok += last.ok;
                r.sipp_failed += last.failed;
            }
            Ok(_) => r.problems.push(format!("{}: empty statistics", c.name)),
            Err(e) => r.problems.push(format!("{}: {e:#}", c.name)),
        }
    }
    if r.sipp_ok < calls as u64 && r.problems.is_empty() {
        r.problems.push(format!(
            "{} of {calls} calls succeeded at the SIPp callers",
            r.sipp_ok
        ));
    }
    Ok(r)
}

/// Waits until the edge has no media leg and no call left (agents free again).
async fn quiesce(s: &Session) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let m = scrape_metrics(s.metrics, &s.token).await?;
        if metric(&m, "callgrid_rtp_legs_active") == 0
            && m.get("callgrid_sip_calls_active").copied().unwrap_or(0.0) <= 0.0
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "calls still in progress 40 s after the step"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ------------------------------------------------------------------ report

fn ms(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        format!("{:.1}", h.value_at_quantile(q) as f64 / 1000.0)
    }
}

fn describe(r: &StepResult) {
    let e = &r.edge;
    println!(
        "== {} concurrent calls, {} s of 20 ms PCMU each way ({} packets per call, each relayed twice by the edge)",
        r.calls, r.hold_s, r.packets_per_call
    );
    println!(
        "  calls: {} placed by SIPp, {} successful, {} failed; {} arrived at the edge, {} agent legs answered; \
         peak {} calls streaming at once, {} media legs open",
        r.sipp_created,
        r.sipp_ok,
        r.sipp_failed,
        e.calls_arrived,
        e.agent_legs_answered,
        r.peak_streaming,
        r.peak_legs
    );
    let dropped: Vec<String> = e
        .dropped
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    println!(
        "  edge (/metrics): in {} received; out {} relayed + {} discarded (not bridged) + {} dropped ({}); \
         in - out = {}; sent {} = {} relayed + {} played (prompts, hold music){}; play errors {}",
        e.received,
        e.relayed,
        e.discarded,
        e.dropped_total(),
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(", ")
        },
        e.unaccounted(),
        e.sent,
        e.relayed,
        e.played,
        if e.sent == e.relayed + e.played {
            String::new()
        } else {
            format!(" (differs by {})", e.sent as i64 - (e.relayed + e.played) as i64)
        },
        e.play_errors
    );
    println!(
        "  end to end (caller -> edge -> agent echo -> edge -> caller): {} packets sent ({} send errors), {} of {} back ({} lost), \
         {} duplicated, {} reordered; {} calls short, {} silent; edge renumbering: {} SSRC changes, \
         {} sequence breaks, {} timestamp breaks; {} other packets (edge prompts), {} not RTP",
        r.tx_sent,
        r.tx_errors,
        r.rx_unique,
        r.expected(),
        r.lost_e2e(),
        r.rx_duplicates,
        r.rx_reordered,
        r.calls_short,
        r.calls_silent,
        r.ssrc_changes,
        r.seq_breaks,
        r.ts_breaks,
        r.rx_other,
        r.rx_garbage
    );
    println!(
        "  round trip of each packet (sent -> edge -> agent echo -> edge -> back, this program's scheduling included): \
         p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms",
        ms(&r.rtt, 0.5),
        ms(&r.rtt, 0.99),
        ms(&r.rtt, 0.999),
        ms(&r.rtt, 1.0)
    );
    let snmp = |k: &str| r.snmp.get(k).copied().unwrap_or(0);
    println!(
        "  kernel UDP drops (receive buffer full): edge RTP sockets {}, SIPp echo sockets {}, this program's {}; \
         machine-wide /proc/net/snmp: RcvbufErrors {} ({} on no socket above: other processes, or edge sockets closed between samples), \
         SndbufErrors {}, InErrors {} (InDatagrams {}, OutDatagrams {})",
        r.drops[0],
        r.drops[1],
        r.drops[2],
        snmp("RcvbufErrors"),
        snmp("RcvbufErrors") - r.drops.iter().sum::<u64>() as i64,
        snmp("SndbufErrors"),
        snmp("InErrors"),
        snmp("InDatagrams"),
        snmp("OutDatagrams")
    );
    if r.plateau_s > 0.0 {
        println!(
            "  callgrid CPU with all {} calls streaming ({:.1} s): {:.2} cores for {:.0} relayed packets/s ({:.1} us CPU per relayed packet)",
            r.calls,
            r.plateau_s,
            r.plateau_cpu_cores,
            r.plateau_relayed_per_s,
            if r.plateau_relayed_per_s > 0.0 {
                r.plateau_cpu_cores * 1e6 / r.plateau_relayed_per_s
            } else {
                0.0
            }
        );
    } else {
        println!("  callgrid CPU with all calls streaming: never all at once (no plateau)");
    }
    let wall = r.wall_s.max(0.001);
    println!(
        "  CPU over the step ({:.1} s): callgrid {:.1} s ({:.0} % of a core), SIPp callers {:.1} s ({:.0} %), \
         SIPp agents {:.1} s ({:.0} %), media-load {:.1} s, other processes {:.1} s",
        r.wall_s,
        r.cpu_sut,
        100.0 * r.cpu_sut / wall,
        r.cpu_callers,
        100.0 * r.cpu_callers / wall,
        r.cpu_agents,
        100.0 * r.cpu_agents / wall,
        r.cpu_self,
        r.cpu_other
    );
    if !r.problems.is_empty() {
        println!("  problems: {}", r.problems.join("; "));
    }
    println!(
        "  -> at the edge: {} ({} lost); end to end: {} ({} lost{})",
        if r.edge_ok() { "ZERO LOSS" } else { "LOSS" },
        r.lost_edge(),
        if r.lost_e2e() == 0 {
            "ZERO LOSS"
        } else {
            "LOSS"
        },
        r.lost_e2e(),
        if r.lost_e2e() > 0 && r.drops[1] > 0 {
            format!(
                ", {} of them dropped on the SIPp agents' echo sockets",
                r.drops[1]
            )
        } else {
            String::new()
        }
    );
}

fn summary(results: &[StepResult]) {
    println!();
    println!("{}", machine::describe());
    println!(
        "| calls | streaming at once | into the edge | relayed | discarded / dropped | lost at the edge | back at the callers | lost end to end (on SIPp echo sockets) | callgrid CPU, all streaming | relayed/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} | {} | {} | {} / {} | {} | {} of {} | {} ({}) | {:.2} cores | {:.0} |",
            r.calls,
            r.peak_streaming,
            r.edge.received,
            r.edge.relayed,
            r.edge.discarded,
            r.edge.dropped_total(),
            r.lost_edge(),
            r.rx_unique,
            r.expected(),
            r.lost_e2e(),
            r.drops[1],
            r.plateau_cpu_cores,
            r.plateau_relayed_per_s
        );
    }
    let best =
        |ok: fn(&StepResult) -> bool| results.iter().filter(|r| ok(r)).map(|r| r.calls).max();
    match best(StepResult::edge_ok) {
        Some(n) => println!("highest concurrency without loss at the edge: {n} calls"),
        None => println!("every step lost packets at the edge"),
    }
    match best(StepResult::zero_loss) {
        Some(n) => println!("highest concurrency without loss end to end: {n} calls"),
        None => println!("every step lost packets end to end"),
    }
}

// ------------------------------------------------------------------ main

fn check_args(a: &Args) -> anyhow::Result<()> {
    ensure!(!a.concurrent.is_empty(), "--concurrent needs a number");
    ensure!(
        a.concurrent.iter().all(|&n| (1..=5000).contains(&n)),
        "--concurrent must be 1..5000"
    );
    ensure!(
        (3..=600).contains(&a.hold_seconds),
        "--hold-seconds must be 3..600"
    );
    ensure!(
        a.setup_rate > 0.0 && a.setup_rate <= 500.0,
        "--setup-rate must be in (0, 500]"
    );
    ensure!(a.settle_ms <= 10_000, "--settle-ms must be at most 10000");
    ensure!((1..=16).contains(&a.callers), "--callers must be 1..16");
    ensure!((1..=16).contains(&a.uas), "--uas must be 1..16");
    ensure!(
        a.scenarios.join("agent_answer.xml").is_file(),
        "no agent_answer.xml in {} (--scenarios)",
        a.scenarios.display()
    );
    Ok(())
}

async fn run(a: Args, work: PathBuf) -> anyhow::Result<()> {
    println!("{}", machine::describe());
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("sipp: {}", first_line(Command::new(&a.sipp).arg("-v")));
    let max_calls = a.concurrent.iter().copied().max().unwrap_or(1);
    let mut s = start(&a, &work, max_calls).await?;
    println!(
        "callgrid serve: SIP {}, metrics http://{}/metrics, RTP ports {}-{}; {} SIPp agents echoing RTP; work dir {}",
        s.sip,
        s.metrics,
        s.ports.edge.0,
        s.ports.edge.1,
        s.agents.len(),
        s.work.display()
    );
    // one call end to end first: the whole path works
    let check = run_step(&a, &mut s, 0, 1, 3).await?;
    if check.rx_unique == 0 {
        describe(&check);
        bail!(
            "the check call's RTP never came back (see {})",
            s.work.display()
        );
    }
    println!(
        "check call: {} of {} packets back through the edge",
        check.rx_unique,
        check.expected()
    );
    quiesce(&s).await?;
    let mut results = Vec::new();
    for (i, &n) in a.concurrent.iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = run_step(&a, &mut s, i + 1, n, a.hold_seconds).await?;
        describe(&r);
        let lossy = !r.edge_ok();
        results.push(r);
        quiesce(&s).await?;
        if lossy && a.stop_on_loss {
            break;
        }
    }
    summary(&results);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut a = Args::parse();
    for p in [&mut a.scenarios, &mut a.sipp, &mut a.callgrid_bin] {
        *p = absolute(p);
    }
    if let Some(w) = a.work_dir.as_mut() {
        *w = absolute(w);
    }
    if let Err(e) = check_args(&a) {
        eprintln!("media-load: {e:#}");
        return ExitCode::from(2);
    }
    let (work_dir, keep) = (a.work_dir.clone(), a.keep);
    main_in_work_dir("media-load", work_dir, keep, |work| run(a, work)).await
}
