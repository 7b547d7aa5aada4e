//! SIPp scenarios (loadtest/sipp/) against a real `callgrid serve`: SIPp plays the carrier
//! trunk (over UDP, or TCP with `-t t1`) and the agents' phones; each test then reads the
//! router's events from the log, and where it matters the edge's recordings, its metrics
//! (`--metrics-listen`) or its answers to bad input sent from a plain UDP socket.
//! Needs `sipp` (Debian `sip-tester`), which `scripts/test.sh` installs.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callgrid_proto::api::v1 as api;
use callgrid_proto::events::v1 as pb;
use callgrid_testkit::{
    eventually_blocking, free_rtp_port, free_tcp_port, free_udp_port, http, Authed, Child,
};
use pb::event::Kind as K;

const SALES: &str = "+15550000200";
const MENU: &str = "+15550000100";
const ANN_DIRECT: &str = "+15550020001";

struct Node {
    rt: tokio::runtime::Runtime,
    node: callgrid_testkit::Node,
    sip: SocketAddr,
}

impl Node {
    fn start() -> Node {
        Node::start_with(&[])
    }

    /// As [`Node::start`], with more `callgrid serve` options.
    fn start_with(extra: &[&str]) -> Node {
        assert!(
            Command::new("sipp").arg("-v").output().is_ok(),
            "sipp is not installed: run scripts/install-sip-tools.sh (scripts/test.sh does)"
        );
        let sip_port = free_udp_port();
        let rtp = 30_000 + (sip_port % 50) * 200;
        let node = callgrid_testkit::Node::serve(env!("CARGO_BIN_EXE_callgrid"))
            .sip(sip_port)
            .arg("--tenants")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip"))
            .args(["--rtp-ports", &format!("{rtp}-{}", rtp + 199)])
            .args(["--durability", "process"])
            .args(extra)
            .rust_log("info,rsipstack=warn")
            .wait_for_sip()
            .start_blocking();
        Node {
            rt: rt(),
            sip: node.sip_addr(),
            node,
        }
    }

    /// The test's directory: callgrid's data (`data/`) and log, SIPp's files.
    fn dir(&self) -> &Path {
        self.node.dir()
    }

    fn log(&self) -> String {
        self.node.log()
    }

    /// The platform admin token the node wrote on its first start.
    fn token(&self) -> String {
        self.node.admin_token()
    }

    /// A channel for one call of the test's runtime (a channel dies with the runtime that
    /// made it), showing the admin token.
    async fn connect(&self) -> Authed {
        self.node.connect().await
    }

    fn login(&self, agent: &str) {
        self.rt.block_on(async {
            api::agent_service_client::AgentServiceClient::new(self.connect().await)
                .login(api::LoginRequest {
                    tenant: "siptest".into(),
                    agent: agent.into(),
                    devices: vec![],
                    not_ready_reason: String::new(),
                })
                .await
                .expect("login");
        });
    }

    fn calls_in_progress(&self) -> u32 {
        self.stats().0
    }

    /// Calls in progress and events written.
    fn stats(&self) -> (u32, u64) {
        self.rt.block_on(async {
            let s = api::admin_client::AdminClient::new(self.connect().await)
                .stats(api::StatsRequest::default())
                .await
                .expect("stats")
                .into_inner();
            (s.calls_in_progress, s.events_written)
        })
    }

    /// Runs SIPp toward the edge; its output goes to a file of the test.
    fn sipp(&self, name: &str, args: &[&str]) -> Child {
        callgrid_testkit::sipp(self.sip, name, args, self.dir())
    }

    /// Runs SIPp and asserts it succeeded (`callgrid_testkit::sipp_ok`).
    fn sipp_ok(&self, name: &str, args: &[&str]) {
        let (ok, out) = callgrid_testkit::sipp_ok(self.sip, name, args, self.dir());
        assert!(
            ok,
            "{name} failed:\n{}\n--- callgrid:\n{}",
            tail(&out),
            tail(&self.log())
        );
    }

    /// An agent phone: a SIPp UAS on a port of its own, registered with digest auth from
    /// that port first (the edge reaches a phone where its REGISTER came from, RFC 3581).
    fn phone(&self, agent: &str, scenario: &str, extra: &[&str]) -> Child {
        // between the REGISTER and the UAS the port is free: another test may take it, and
        // the UAS cannot start; then the phone registers again from another port
        for _ in 0..3 {
            let port = free_udp_port();
            self.register(agent, port, "agent_register.xml");
            let mut args = vec!["-p".to_owned(), port.to_string(), "-m".into(), "1".into()];
            args.extend(extra.iter().map(|s| s.to_string()));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // the UAS instance is not a client: it does not dial the edge, but SIPp wants a
            // remote address; the edge's is harmless
            let mut phone = self.sipp(scenario, &args);
            if callgrid_testkit::wait_udp_bound(port, &mut phone) {
                return phone;
            }
        }
        panic!("the phone of {agent} could not start on three ports")
    }

    /// Registers `agent` from 127.0.0.1:`port` (its Contact names the same port).
    fn register(&self, agent: &str, port: u16, scenario: &str) {
        self.register_from(
            "127.0.0.1",
            agent,
            &format!("{agent}-test-secret"),
            port,
            scenario,
        );
    }

    /// Runs a REGISTER scenario from `ip`:`port` for `agent` with `password` (the CSV's
    /// second field) and asserts SIPp's success.
    fn register_from(&self, ip: &str, agent: &str, password: &str, port: u16, scenario: &str) {
        let csv = self.dir().join(format!(
            "{agent}-{ip}-{port}-{}.csv",
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::write(&csv, format!("SEQUENTIAL\n{agent};{password};{port}\n")).expect("csv");
        let port = port.to_string();
        self.sipp_ok(
            scenario,
            &[
                "-inf",
                &csv.display().to_string(),
                "-m",
                "1",
                "-i",
                ip,
                "-p",
                &port,
            ],
        );
    }

    /// The record of the only call of the test, from a `callgrid projector --rebuild` over
    /// the log (after [`Node::events`] stopped callgrid).
    fn call_record(&mut self) -> callgrid_store::CallRecord {
        assert!(self.node.stopped(), "callgrid is stopped first");
        let data = self.node.data_dir();
        let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args(["projector", "--rebuild", "--data-dir"])
            .arg(data)
            .output()
            .expect("callgrid projector runs");
        assert!(
            out.status.success(),
            "rebuild: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store = callgrid_store::SqliteStore::open(&data.join("projections.sqlite"))
            .expect("projections");
        let records = self
            .rt
            .block_on(callgrid_store::ProjectionStore::call_records(
                &store,
                "siptest",
                callgrid_store::Span::all(),
                callgrid_store::PageRequest::default(),
            ))
            .map(|page| page.rows)
            .expect("records");
        assert_eq!(records.len(), 1, "{records:#?}");
        records.into_iter().next().expect("one record")
    }

    /// Stops callgrid and reads every event it wrote.
    fn events(&mut self) -> Vec<pb::EventEnvelope> {
        // the edge answers a caller's BYE before the router has made the call's end durable:
        // let the calls end and the log settle (at most 10 s) before callgrid is killed
        if !self.node.stopped() {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut last = None;
            while Instant::now() < deadline {
                let (calls, written) = self.stats();
                if calls == 0 && last == Some(written) {
                    break;
                }
                last = (calls == 0).then_some(written);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.node.stop();
        let path = self.node.data_dir().join("events.sqlite");
        self.rt.block_on(common::read_events(&path))
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn tail(s: &str) -> String {
    callgrid_testkit::tail(s, 60)
}

/// The call events, in log order, as short names with their main argument.
fn call_story(events: &[pb::EventEnvelope]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.aggregate_kind == "call")
        .filter_map(|e| e.event.as_ref()?.kind.as_ref())
        .map(|k| match k {
            K::CallArrived(e) => format!("arrived {}", e.number),
            K::CallRouted(e) => format!(
                "routed {}",
                match e.target.as_ref().and_then(|t| t.kind.as_ref()) {
                    Some(pb::target::Kind::Queue(q)) => format!("queue {q}"),
                    Some(pb::target::Kind::Menu(m)) => format!("menu {m}"),
                    Some(pb::target::Kind::Extension(x)) => format!("extension {x}"),
                    other => format!("{other:?}"),
                }
            ),
            K::CallOffered(e) => format!("offered {}", e.agent),
            K::CallRinging(e) => format!("ringing {}", e.agent),
            K::CallAnswered(e) => format!("answered {}", e.agent),
            K::CallOfferFailed(e) => format!(
                "failed {} {:?}",
                e.agent,
                pb::OfferFailure::try_from(e.cause).unwrap_or(pb::OfferFailure::Unspecified)
            ),
            K::CallRecordingStarted(_) => "recording".into(),
            K::CallHeld(e) => format!("held {} by {}", e.agent, party(e.by)),
            K::CallResumed(e) => format!("resumed {} by {}", e.agent, party(e.by)),
            K::CallEnded(e) => format!(
                "ended {}",
                match e.cause.as_ref().and_then(|c| c.kind.as_ref()) {
                    Some(pb::end_cause::Kind::Caller(_)) => "caller".to_owned(),
                    Some(pb::end_cause::Kind::Agent(_)) => "agent".to_owned(),
                    Some(pb::end_cause::Kind::Router(r)) => format!("router {r}"),
                    Some(pb::end_cause::Kind::EdgeLost(_)) => "edge_lost".to_owned(),
                    Some(pb::end_cause::Kind::Dial(r)) => format!("dial {r}"),
                    None => "?".to_owned(),
                }
            ),
            other => format!("{other:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

fn party(p: i32) -> &'static str {
    match pb::Party::try_from(p) {
        Ok(pb::Party::Agent) => "agent",
        Ok(pb::Party::Caller) => "caller",
        _ => "?",
    }
}

fn assert_story(story: &[String], expected: &[&str]) {
    let mut at = 0;
    for want in expected {
        match story[at..].iter().position(|s| s == want) {
            Some(i) => at += i + 1,
            None => panic!(
                "expected {want:?} (in order {expected:?}) in the call's events:\n{story:#?}"
            ),
        }
    }
}

#[test]
fn a_queued_call_is_answered_by_an_agent_and_the_caller_hangs_up() {
    let mut node = Node::start();
    let phone = node.phone("ann", "agent_answer.xml", &[]);
    node.login("ann");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "2000"]);
    let (ok, out) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(
        ok,
        "the agent's phone saw the call end badly:\n{}",
        tail(&out)
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "arrived +15550000200",
            "routed queue 200",
            "offered ann",
            "ringing ann",
            "answered ann",
            "ended caller",
        ],
    );
}

#[test]
fn a_caller_hangs_up_while_queued() {
    let mut node = Node::start();
    // nobody is logged in: the caller waits with hold music, then gives up
    node.sipp_ok(
        "caller_abandon.xml",
        &["-s", SALES, "-m", "1", "-d", "2500"],
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &["arrived +15550000200", "routed queue 200", "ended caller"],
    );
    assert!(
        !story.iter().any(|s| s.starts_with("offered")),
        "nobody was offered the call: {story:#?}"
    );
}

#[test]
fn a_busy_agent_is_skipped_and_the_next_one_answers() {
    let mut node = Node::start();
    let busy = node.phone("ann", "agent_busy.xml", &[]);
    let answering = node.phone("ben", "agent_answer.xml", &[]);
    node.login("ann");
    node.login("ben");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "1000"]);
    assert!(
        busy.wait_for_exit(Duration::from_secs(30)).0,
        "ann's phone said 486"
    );
    assert!(
        answering.wait_for_exit(Duration::from_secs(30)).0,
        "ben's phone answered"
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "offered ann",
            "failed ann Busy",
            "offered ben",
            "answered ben",
            "ended caller",
        ],
    );
}

#[test]
fn an_agent_who_does_not_answer_is_cancelled_and_the_next_one_answers() {
    let mut node = Node::start();
    let silent = node.phone("ann", "agent_noanswer.xml", &[]);
    let answering = node.phone("ben", "agent_answer.xml", &[]);
    node.login("ann");
    node.login("ben");
    // the queue answers the caller at once (hold music); ann rings for 5 s, then ben
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "9000"]);
    let (ok, out) = silent.wait_for_exit(Duration::from_secs(30));
    assert!(
        ok,
        "ann's phone was cancelled after the ring timeout:\n{}",
        tail(&out)
    );
    assert!(
        answering.wait_for_exit(Duration::from_secs(30)).0,
        "ben's phone answered"
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &["offered ann", "ringing ann", "offered ben", "answered ben"],
    );
    assert!(
        story
            .iter()
            .any(|s| s == "failed ann NoAnswer" || s == "failed ann Expired"),
        "ann's offer ended unanswered: {story:#?}"
    );
}

#[test]
fn a_menu_digit_by_rfc4733_lands_the_caller_in_the_chosen_queue() {
    let mut node = Node::start();
    let phone = node.phone("ben", "agent_answer.xml", &[]);
    node.login("ben");
    // "1" goes to queue 201 (ben)
    node.sipp_ok("caller_dtmf.xml", &["-s", MENU, "-m", "1", "-d", "2000"]);
    assert!(
        phone.wait_for_exit(Duration::from_secs(30)).0,
        "ben's phone answered"
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "arrived +15550000100",
            "routed menu 100",
            "routed queue 201",
            "answered ben",
        ],
    );
}

#[test]
fn a_menu_digit_by_sip_info_is_understood_too() {
    let mut node = Node::start();
    // "2" by INFO goes to queue 200; nobody is there, the caller hangs up while queued
    node.sipp_ok(
        "caller_info_dtmf.xml",
        &["-s", MENU, "-m", "1", "-d", "1500"],
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &["routed menu 100", "routed queue 200", "ended caller"],
    );
}

#[test]
fn agents_register_with_digest_and_a_wrong_password_is_refused() {
    let node = Node::start();
    let port = free_udp_port();
    node.register("ann", port, "agent_register.xml");
    node.register("ben", free_udp_port(), "agent_register_wrong.xml");
    // an agent id nobody has is refused as well (after the same challenge)
    let csv = node.dir().join("nobody.csv");
    std::fs::write(&csv, format!("SEQUENTIAL\nnobody;whatever-secret;{port}\n")).expect("csv");
    node.sipp_ok(
        "agent_register_wrong.xml",
        &["-inf", &csv.display().to_string(), "-m", "1"],
    );
}

#[test]
fn a_caller_who_hangs_up_while_the_agent_rings_cancels_the_agent_leg() {
    let mut node = Node::start();
    let phone = node.phone("ann", "agent_noanswer.xml", &[]);
    node.login("ann");
    // a direct number: the caller hears the agent's ringing (180) and cancels
    node.sipp_ok("caller_cancel.xml", &["-s", ANN_DIRECT, "-m", "1"]);
    let (ok, out) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(ok, "ann's phone got the CANCEL:\n{}", tail(&out));
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "arrived +15550020001",
            "offered ann",
            "ringing ann",
            "ended caller",
        ],
    );
}

#[test]
fn an_agent_who_hangs_up_ends_the_call() {
    let mut node = Node::start();
    let phone = node.phone("ann", "agent_hangup.xml", &["-d", "1000"]);
    node.login("ann");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "10000"]);
    assert!(
        phone.wait_for_exit(Duration::from_secs(30)).0,
        "ann hung up"
    );
    let story = call_story(&node.events());
    assert_story(&story, &["answered ann", "ended agent"]);
}

#[test]
fn unknown_numbers_get_404_and_calls_over_the_tenant_limit_get_503() {
    let mut node = Node::start();
    node.sipp_ok("caller_expect_404.xml", &["-s", "+15559999999", "-m", "1"]);
    // the tenant allows 3 calls at once: 3 callers wait in the queue...
    let waiting = node.sipp(
        "caller_abandon.xml",
        &["-s", SALES, "-m", "3", "-r", "10", "-l", "3", "-d", "8000"],
    );
    eventually_blocking("3 calls to get in", Duration::from_secs(20), || {
        node.calls_in_progress() >= 3
    });
    // ...and the 4th is refused with 503 and a Reason naming the limit
    node.sipp_ok("caller_expect_503.xml", &["-s", SALES, "-m", "1"]);
    let (ok, out) = waiting.wait_for_exit(Duration::from_secs(40));
    assert!(ok, "the 3 waiting callers:\n{}", tail(&out));
    let events = node.events();
    let arrived = events
        .iter()
        .filter(|e| {
            matches!(
                e.event.as_ref().and_then(|k| k.kind.as_ref()),
                Some(K::CallArrived(_))
            )
        })
        .count();
    assert_eq!(arrived, 3, "the refused calls left no events");
}

// ------------------------------------------------------------------ recording (C4)

/// A number of the test tenant with `record: true` (routes to queue 200, like SALES).
const RECORDED: &str = "+15550000202";

impl Node {
    /// Waits until callgrid's log holds `needle`.
    fn wait_log(&self, needle: &str, limit: Duration) {
        eventually_blocking(&format!("callgrid to log {needle:?}"), limit, || {
            let log = self.log();
            if log.contains(needle) {
                Ok(())
            } else {
                Err(tail(&log))
            }
        });
    }
}

/// `seconds` of a sine tone at `hz`, amplitude 8000, as raw A-law (what caller_rtp.xml
/// streams).
fn tone_alaw(hz: f64, seconds: f64) -> Vec<u8> {
    (0..(8000.0 * seconds) as usize)
        .map(|i| {
            let x = 8000.0 * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin();
            callgrid_media::g711::linear_to_alaw(x as i16)
        })
        .collect()
}

/// The parts of a WAV file the recording test checks.
#[derive(Debug)]
struct Wav {
    format: u16,
    channels: u16,
    rate: u32,
    byte_rate: u32,
    block_align: u16,
    bits: u16,
    /// Interleaved 16-bit samples of the `data` chunk.
    samples: Vec<i16>,
}

impl Wav {
    /// Reads a RIFF/WAVE file: the RIFF size, a `fmt ` chunk and a `data` chunk that fit the
    /// file.
    fn parse(b: &[u8]) -> Result<Wav, String> {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if b.len() < 12 || &b[..4] != b"RIFF" || &b[8..12] != b"WAVE" {
            return Err(format!("no RIFF/WAVE header in {} bytes", b.len()));
        }
        if u32_at(4) as usize + 8 != b.len() {
            return Err(format!(
                "the RIFF size says {} bytes, the file has {}",
                u32_at(4) as usize + 8,
                b.len()
            ));
        }
        let (mut fmt, mut data) = (None, None);
        let mut at = 12;
        while at + 8 <= b.len() {
            let (id, size) = (&b[at..at + 4], u32_at(at + 4) as usize);
            let body = at + 8;
            if body + size > b.len() {
                return Err(format!(
                    "chunk {:?} of {size} bytes runs past the end",
                    String::from_utf8_lossy(id)
                ));
            }
            match id {
                b"fmt " if size >= 16 => fmt = Some(body),
                b"data" => data = Some(&b[body..body + size]),
                _ => {}
            }
            at = body + size + size % 2;
        }
        let fmt = fmt.ok_or("no fmt chunk")?;
        let data = data.ok_or("no data chunk")?;
        Ok(Wav {
            format: u16_at(fmt),
            channels: u16_at(fmt + 2),
            rate: u32_at(fmt + 4),
            byte_rate: u32_at(fmt + 8),
            block_align: u16_at(fmt + 12),
            bits: u16_at(fmt + 14),
            samples: data
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]))
                .collect(),
        })
    }

    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.channels.max(1)) / f64::from(self.rate.max(1))
    }

    fn channel(&self, index: usize) -> Vec<i16> {
        self.samples
            .iter()
            .skip(index)
            .step_by(usize::from(self.channels.max(1)))
            .copied()
            .collect()
    }
}

/// How much of a channel (8 kHz) holds sound, in seconds, and the frequency of that sound
/// in Hz, from its zero crossings: only the 20 ms blocks whose peak is over 2000 count.
fn sound_of(samples: &[i16]) -> (f64, f64) {
    let (mut blocks, mut crossings) = (0usize, 0usize);
    for block in samples.chunks_exact(160) {
        if block.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0) > 2000 {
            blocks += 1;
            crossings += block
                .windows(2)
                .filter(|w| (w[0] < 0) != (w[1] < 0))
                .count();
        }
    }
    let seconds = blocks as f64 * 0.02;
    let hz = if blocks == 0 {
        0.0
    } else {
        crossings as f64 / 2.0 / seconds
    };
    (seconds, hz)
}

#[test]
fn a_call_to_a_recorded_number_leaves_a_stereo_wav_with_the_caller_and_the_agent() {
    let mut node = Node::start();
    // the caller streams a 440 Hz tone (caller_rtp.xml reads caller_audio.alaw from SIPp's
    // working directory, the test's); ann's phone echoes what it hears back to the edge
    std::fs::write(node.dir().join("caller_audio.alaw"), tone_alaw(440.0, 2.0))
        .expect("audio file");
    let phone = node.phone("ann", "agent_answer.xml", &["-rtp_echo"]);
    node.login("ann");
    node.sipp_ok("caller_rtp.xml", &["-s", RECORDED, "-m", "1", "-d", "3000"]);
    let (ok, out) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(ok, "ann's phone answered:\n{}", tail(&out));
    // the file is complete once the call's task has ended, a moment after the BYE
    node.wait_log("recording written", Duration::from_secs(20));

    let events = node.events();
    let story = call_story(&events);
    assert_story(
        &story,
        &[
            "arrived +15550000202",
            "routed queue 200",
            "answered ann",
            "recording",
            "ended caller",
        ],
    );
    let paths: Vec<&str> = events
        .iter()
        .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
            K::CallRecordingStarted(r) => Some(r.path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(paths.len(), 1, "one recording: {story:#?}");
    let path = Path::new(paths[0]);
    assert!(
        path.starts_with(node.dir().join("data/recordings/siptest"))
            && path.extension().is_some_and(|e| e == "wav"),
        "the recording is a WAV file under DATA_DIR/recordings/<tenant>: {}",
        path.display()
    );
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("the recording {} exists: {e}", path.display()));
    let wav = Wav::parse(&bytes)
        .unwrap_or_else(|e| panic!("{} is not a valid WAV file: {e}", path.display()));
    assert_eq!(
        (
            wav.format,
            wav.channels,
            wav.rate,
            wav.bits,
            wav.block_align,
            wav.byte_rate
        ),
        (1, 2, 8000, 16, 4, 32_000),
        "16-bit PCM, stereo, 8 kHz: {wav:?}",
    );
    // recording starts when ann's leg is bridged and ends with the call: about 3 s
    assert!(
        (2.0..10.0).contains(&wav.seconds()),
        "the recording lasts the conversation (about 3 s), not {} s",
        wav.seconds()
    );
    for (index, who) in [(0, "left: the caller"), (1, "right: the agent's echo")] {
        let (seconds, hz) = sound_of(&wav.channel(index));
        assert!(
            seconds >= 1.5 && (400.0..480.0).contains(&hz),
            "{who}: expected at least 1.5 s of the 440 Hz tone, found {seconds} s at {hz:.0} Hz \
             (of {} s recorded)",
            wav.seconds()
        );
    }
}

// ------------------------------------------------------------------ hold by re-INVITE (C5)

#[test]
fn an_agent_holds_and_resumes_by_re_invite_and_the_edge_answers_both_with_sdp() {
    let mut node = Node::start();
    // ann holds 700 ms after answering and resumes 700 ms later; her phone's scenario fails
    // unless both re-INVITEs get a 200 with an SDP answer (recvonly, then sendrecv)
    let phone = node.phone("ann", "agent_hold.xml", &["-d", "700"]);
    node.login("ann");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "4000"]);
    let (ok, out) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(
        ok,
        "ann's phone held and resumed the call:\n{}\n--- callgrid:\n{}",
        tail(&out),
        tail(&node.log())
    );
    // the router was told of both: one hold of about 700 ms by the agent
    let events = node.events();
    let story = call_story(&events);
    assert_story(
        &story,
        &[
            "routed queue 200",
            "answered ann",
            "held ann by agent",
            "resumed ann by agent",
            "ended caller",
        ],
    );
    assert!(
        !story
            .iter()
            .any(|s| s.starts_with("failed") || s == "ended agent"),
        "holding is not hanging up: {story:#?}"
    );
    assert_eq!(
        story.iter().filter(|s| s.starts_with("held")).count(),
        1,
        "one hold reported: {story:#?}"
    );
    let at = |kind: fn(&K) -> bool| {
        events
            .iter()
            .find(|e| {
                e.event
                    .as_ref()
                    .and_then(|e| e.kind.as_ref())
                    .is_some_and(kind)
            })
            .map(|e| e.time_ms)
            .expect("event logged")
    };
    let held_ms = at(|k| matches!(k, K::CallResumed(_))) - at(|k| matches!(k, K::CallHeld(_)));
    assert!(
        held_ms >= 600,
        "the hold lasted {held_ms} ms (700 ms pause)"
    );
    // and the call record (C3) counts it as hold time, the rest of the answered time as talk
    let record = node.call_record();
    assert_eq!(record.hold_ms, held_ms as u64, "{record:#?}");
    let answered = at(|k| matches!(k, K::CallAnswered(_)));
    let ended = at(|k| matches!(k, K::CallEnded(_)));
    assert_eq!(
        record.talk_ms + record.hold_ms,
        (ended - answered) as u64,
        "{record:#?}"
    );
}

#[test]
fn a_caller_holds_and_resumes_by_re_invite_while_talking_to_an_agent() {
    let mut node = Node::start();
    let phone = node.phone("ann", "agent_answer.xml", &[]);
    node.login("ann");
    // talk 1 s, hold 1 s, talk 1 s, hang up; the scenario fails unless both re-INVITEs get a
    // 200 with an SDP answer (recvonly, then sendrecv)
    node.sipp_ok("caller_hold.xml", &["-s", SALES, "-m", "1", "-d", "1000"]);
    let (ok, out) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(ok, "ann's phone saw the call end:\n{}", tail(&out));
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "routed queue 200",
            "answered ann",
            "held ann by caller",
            "resumed ann by caller",
            "ended caller",
        ],
    );
}

// ------------------------------------------------------------------ TCP

#[test]
fn a_trunk_call_over_tcp_reaches_an_agent_and_the_caller_hangs_up() {
    let mut node = Node::start();
    let phone = node.phone("ann", "agent_answer.xml", &[]);
    node.login("ann");
    // -t t1: one TCP connection to the edge's SIP port, for every message of the call
    node.sipp_ok(
        "caller.xml",
        &["-t", "t1", "-s", SALES, "-m", "1", "-d", "1500"],
    );
    let (ok, out) = phone.wait_for_exit(Duration::from_secs(30));
    assert!(ok, "ann's phone answered over UDP:\n{}", tail(&out));
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "arrived +15550000200",
            "routed queue 200",
            "offered ann",
            "ringing ann",
            "answered ann",
            "ended caller",
        ],
    );
}

#[test]
fn an_agent_who_hangs_up_ends_a_trunk_call_over_tcp() {
    let mut node = Node::start();
    let phone = node.phone("ann", "agent_hangup.xml", &["-d", "800"]);
    node.login("ann");
    // ann hangs up 0.8 s after answering; the caller would hang up itself after 10 s
    let started = Instant::now();
    node.sipp_ok(
        "caller.xml",
        &["-t", "t1", "-s", SALES, "-m", "1", "-d", "10000"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the edge's BYE reached the caller over its TCP connection (the call lasted {:?})\n\
         --- callgrid:\n{}",
        started.elapsed(),
        tail(&node.log())
    );
    assert!(
        phone.wait_for_exit(Duration::from_secs(30)).0,
        "ann hung up"
    );
    let story = call_story(&node.events());
    assert_story(&story, &["answered ann", "ended agent"]);
}

// ------------------------------------------------------------------ bad input on the wire

/// Sends one datagram to the edge and collects what comes back until a final response (not
/// 1xx), or for `wait`.
fn exchange(sock: &UdpSocket, to: SocketAddr, datagram: &[u8], wait: Duration) -> Vec<String> {
    sock.send_to(datagram, to).expect("send");
    let deadline = Instant::now() + wait;
    let mut answers = Vec::new();
    let mut buf = [0u8; 65_535];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
                let provisional = answer.starts_with("SIP/2.0 1");
                answers.push(answer);
                if !provisional {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    answers
}

/// An out-of-dialog request from `local` to the edge; `n` makes the branch, tag and
/// Call-ID unique.
fn request(
    method: &str,
    user: &str,
    local: SocketAddr,
    edge: SocketAddr,
    n: u32,
    body: &str,
) -> String {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:{user}@{edge} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKbad{n}\r\n\
         From: <sip:prober@{local}>;tag=bad{n}\r\n\
         To: <sip:{user}@{edge}>\r\n\
         Call-ID: bad-input-{n}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:prober@{local}>\r\n\
         Max-Forwards: 70\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The first response line of each answer.
fn status_lines(answers: &[String]) -> Vec<&str> {
    answers
        .iter()
        .map(|a| a.lines().next().unwrap_or_default())
        .collect()
}

/// The value of one sample of `GET /metrics` (`NAME` or `NAME_total`), asked with `node`'s
/// admin token.
fn metric(node: &Node, addr: SocketAddr, name: &str) -> f64 {
    let auth = format!("Bearer {}", node.token());
    let response = node
        .rt
        .block_on(http(
            addr.port(),
            "GET",
            "/metrics",
            &[("Authorization", &auth)],
            "",
        ))
        .expect("metrics endpoint")
        .body;
    response
        .lines()
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name || key == format!("{name}_total")).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {name} in GET /metrics:\n{response}"))
}

const SDP: &str = "v=0\r\no=prober 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n";

#[test]
fn malformed_datagrams_get_no_answer_are_counted_and_the_edge_keeps_answering() {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let node = Node::start_with(&["--metrics-listen", &metrics.to_string()]);
    let malformed_before = metric(&node, metrics, "callgrid_sip_malformed_messages");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("addr");
    let options = |n| request("OPTIONS", "ping", local, node.sip, n, "");
    // an INVITE to a number that routes, whose SDP was cut off in transit: answering it
    // would start a call with half an offer (RFC 3261 §18.3)
    let invite = request("INVITE", SALES, local, node.sip, 8, SDP);
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("text that is not SIP", b"hello world\r\n\r\n".to_vec()),
        (
            "binary noise",
            vec![0xff, 0x00, 0x13, 0x37, 0x80, 0x0d, 0x0a],
        ),
        (
            "a CSeq that is not a number",
            options(3).replace("CSeq: 1 ", "CSeq: one ").into_bytes(),
        ),
        (
            "a CSeq naming another method",
            options(4)
                .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
                .into_bytes(),
        ),
        (
            "no Call-ID",
            options(5)
                .replace("Call-ID: bad-input-5\r\n", "")
                .into_bytes(),
        ),
        (
            "a Via that is not SIP/2.0/<transport>",
            options(6)
                .replace("SIP/2.0/UDP", "SIP/9.9/XYZ")
                .into_bytes(),
        ),
        (
            "an OPTIONS whose Request-URI does not parse",
            options(9)
                .replacen(&format!("sip:ping@{} ", node.sip), "sip:ping@ ", 1)
                .into_bytes(),
        ),
        (
            "headers cut off in the middle",
            options(7).as_bytes()[..90].to_vec(),
        ),
        (
            "an INVITE shorter than its Content-Length",
            invite.as_bytes()[..invite.len() - 40].to_vec(),
        ),
    ];
    for (n, (what, datagram)) in bad.iter().enumerate() {
        let answers = exchange(&sock, node.sip, datagram, Duration::from_millis(500));
        assert!(
            answers.is_empty(),
            "{what}: a malformed datagram got an answer: {:?}\n--- callgrid:\n{}",
            status_lines(&answers),
            tail(&node.log())
        );
        let answers = exchange(
            &sock,
            node.sip,
            options(100 + n as u32).as_bytes(),
            Duration::from_secs(2),
        );
        assert!(
            answers
                .first()
                .is_some_and(|a| a.starts_with("SIP/2.0 200 ")),
            "after {what}, an OPTIONS still gets 200, not {:?}\n--- callgrid:\n{}",
            status_lines(&answers),
            tail(&node.log())
        );
    }
    assert_eq!(
        node.calls_in_progress(),
        0,
        "the truncated INVITE started no call"
    );
    let malformed = metric(&node, metrics, "callgrid_sip_malformed_messages") - malformed_before;
    assert_eq!(
        malformed,
        bad.len() as f64,
        "every malformed datagram was counted in callgrid_sip_malformed_messages"
    );
}

#[test]
fn unknown_methods_get_501_and_methods_the_edge_does_not_offer_get_405_with_allow() {
    let node = Node::start();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("addr");

    let foo = request("FOO", "ping", local, node.sip, 1, "");
    let answers = exchange(&sock, node.sip, foo.as_bytes(), Duration::from_secs(1));
    assert_eq!(
        status_lines(&answers),
        ["SIP/2.0 501 Not Implemented"],
        "an unknown method: {answers:#?}"
    );
    for echoed in [
        "Via: SIP/2.0/UDP",
        ";branch=z9hG4bKbad1",
        "Call-ID: bad-input-1\r\n",
        "CSeq: 1 FOO\r\n",
    ] {
        assert!(
            answers[0].contains(echoed),
            "the 501 answers the request ({echoed:?}):\n{}",
            answers[0]
        );
    }

    // known methods that the edge does not offer outside a dialog
    for (n, method) in [(2, "SUBSCRIBE"), (3, "PUBLISH"), (4, "MESSAGE")] {
        let req = request(method, "ping", local, node.sip, n, "")
            .replace("Max-Forwards", "Event: presence\r\nMax-Forwards");
        let answers = exchange(&sock, node.sip, req.as_bytes(), Duration::from_secs(1));
        assert_eq!(
            status_lines(&answers),
            ["SIP/2.0 405 Method Not Allowed"],
            "{method} out of dialog: {answers:#?}"
        );
        let allow = answers[0]
            .lines()
            .find_map(|l| l.strip_prefix("Allow:"))
            .unwrap_or_else(|| panic!("the 405 to {method} has an Allow header:\n{}", answers[0]));
        assert!(
            allow.contains("INVITE") && allow.contains("OPTIONS") && !allow.contains(method),
            "the 405 to {method} lists what is allowed, not {method}: {allow}"
        );
        assert!(
            answers[0].contains(&format!("CSeq: 1 {method}\r\n")),
            "the 405 answers the {method}:\n{}",
            answers[0]
        );
    }
}

/// The To tag of a response.
fn to_tag(answer: &str) -> String {
    answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("to:"))
        .and_then(|l| l.split(";tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
        .unwrap_or_else(|| panic!("no To tag in {answer}"))
}

#[test]
fn a_retransmitted_request_gets_the_same_answer_until_the_transaction_timer_ends() {
    // 4 s instead of the default 5 s: the test waits past it
    let node = Node::start_with(&["--sip-transaction-timeout", "4"]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let local = sock.local_addr().expect("addr");
    let options = request("OPTIONS", "ping", local, node.sip, 7, "");
    let first = exchange(&sock, node.sip, options.as_bytes(), Duration::from_secs(5));
    assert_eq!(status_lines(&first), ["SIP/2.0 200 OK"], "{first:?}");
    let tag = to_tag(&first[0]);
    // a retransmission (same branch) within the timer is absorbed: the same response again
    std::thread::sleep(Duration::from_millis(500));
    let again = exchange(&sock, node.sip, options.as_bytes(), Duration::from_secs(5));
    assert_eq!(status_lines(&again), ["SIP/2.0 200 OK"], "{again:?}");
    assert_eq!(to_tag(&again[0]), tag, "the stored response was sent again");
    // once the timer has run out the transaction is gone: the same request is a new one
    std::thread::sleep(Duration::from_secs(6));
    let later = exchange(&sock, node.sip, options.as_bytes(), Duration::from_secs(5));
    assert_eq!(status_lines(&later), ["SIP/2.0 200 OK"], "{later:?}");
    assert_ne!(
        to_tag(&later[0]),
        tag,
        "answered afresh after --sip-transaction-timeout"
    );
}

#[test]
fn an_agent_transfers_by_refer_and_the_next_agent_takes_the_call() {
    let mut node = Node::start();
    // ann answers, talks 1.5 s, then REFERs the call to ben's extension 20002
    let ann = node.phone(
        "ann",
        "agent_refer.xml",
        &["-d", "1500", "-set", "target", "20002"],
    );
    let ben = node.phone("ben", "agent_answer.xml", &[]);
    node.login("ann");
    node.login("ben");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "6000"]);
    let (ok, out) = ann.wait_for_exit(Duration::from_secs(30));
    assert!(
        ok,
        "ann's phone got 202, a NOTIFY saying 200, then the BYE:\n{}\n--- callgrid:\n{}",
        tail(&out),
        tail(&node.log())
    );
    assert!(
        ben.wait_for_exit(Duration::from_secs(30)).0,
        "ben's phone answered"
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "routed queue 200",
            "answered ann",
            "CallTransferred",
            "routed extension 20002",
            "offered ben",
            "answered ben",
            "ended caller",
        ],
    );
}

/// baresip (a real softphone) as ann's phone: it registers with digest auth, auto-answers the
/// queued call, and its own transfer command (over its ctrl_tcp module) hands the call to
/// ben, whose SIPp phone takes it.
#[test]
fn a_baresip_phone_answers_and_transfers_the_call() {
    assert!(
        Command::new("baresip").arg("-h").output().is_ok(),
        "baresip is not installed: run scripts/install-sip-tools.sh (scripts/test.sh does)"
    );
    let mut node = Node::start();
    let dir = node.dir().join("baresip");
    std::fs::create_dir_all(&dir).expect("baresip dir");
    let (sip, ctrl) = (free_udp_port(), free_udp_port());
    // no sound card needed: aubridge loops what it hears back as its microphone
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{sip}\naudio_source aubridge,loop\n\
             audio_player aubridge,loop\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule aubridge.so\nmodule_app account.so\nmodule_app menu.so\n\
             module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl}\n"
        ),
    )
    .expect("config");
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:siptest.ann@{};transport=udp>;auth_pass=ann-test-secret;regint=300;\
             answermode=auto\n",
            node.sip
        ),
    )
    .expect("accounts");
    let log = dir.join("baresip.log");
    let _baresip = Child::spawn(
        Command::new("baresip")
            .args(["-f", &dir.display().to_string(), "-t", "60"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(Stdio::null()),
    )
    .expect("baresip runs")
    .with_log(&log);
    let wait_log = |what: &str, needle: &str| {
        eventually_blocking(
            &format!("baresip to say {needle:?} ({what})"),
            Duration::from_secs(20),
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains(needle) {
                    Ok(())
                } else {
                    Err(format!("{text}\n--- callgrid:\n{}", tail(&node.log())))
                }
            },
        );
    };
    wait_log("registered with digest auth", "[1 binding]");
    let ben = node.phone("ben", "agent_answer.xml", &[]);
    node.login("ann");
    node.login("ben");
    let caller = node.sipp("caller.xml", &["-s", SALES, "-m", "1", "-d", "8000"]);
    wait_log("auto-answered", "Call established");
    // baresip's own transfer command, as its menu's `t` would send it
    let mut ctl = std::net::TcpStream::connect(("127.0.0.1", ctrl)).expect("ctrl_tcp");
    let cmd = r#"{"command":"transfer","params":"20002","token":"t1"}"#;
    std::io::Write::write_all(&mut ctl, format!("{}:{cmd},", cmd.len()).as_bytes())
        .expect("ctrl command");
    wait_log("transferred", "transferring call to");
    let (ok, out) = caller.wait_for_exit(Duration::from_secs(40));
    assert!(ok, "the caller's call ended well:\n{}", tail(&out));
    assert!(
        ben.wait_for_exit(Duration::from_secs(30)).0,
        "ben's phone answered"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("transfer failed"),
        "baresip reports no transfer failure:\n{text}"
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "answered ann",
            "CallTransferred",
            "routed extension 20002",
            "answered ben",
            "ended caller",
        ],
    );
}

/// A call from the trunk over TCP is answered with a Contact that says `transport=tcp`, so
/// the trunk's ACK and BYE come back over TCP (RFC 3261 §8.1.1.8).
#[test]
fn a_call_over_tcp_is_answered_with_a_tcp_contact() {
    use std::io::{Read, Write};
    let node = Node::start();
    let mut tcp = std::net::TcpStream::connect(node.sip).expect("tcp to the edge");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let local = tcp.local_addr().expect("addr");
    let sdp = format!(
        "v=0\r\no=trunk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
        free_rtp_port()
    );
    let request = |method: &str, cseq: u32, to_tag: &str, body: &str| {
        format!(
            "{method} sip:{SALES}@{sip};transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bK-tcp-{method}-{cseq}\r\n\
             From: <sip:trunk@{local}>;tag=trunk1\r\nTo: <sip:{SALES}@{sip}>{to_tag}\r\n\
             Call-ID: tcp-contact-1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n\
             Contact: <sip:trunk@{local};transport=tcp>\r\n{ctype}Content-Length: {len}\r\n\r\n{body}",
            sip = node.sip,
            ctype = if body.is_empty() { "" } else { "Content-Type: application/sdp\r\n" },
            len = body.len(),
        )
    };
    tcp.write_all(request("INVITE", 1, "", &sdp).as_bytes())
        .expect("invite");
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    let ok = loop {
        let n = tcp.read(&mut buf).expect("an answer over tcp");
        assert!(n > 0, "the edge closed the connection:\n{got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        if let Some(at) = got.find("SIP/2.0 200") {
            break got[at..].to_owned();
        }
    };
    let header = |name: &str| {
        ok.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("contact")
            .to_ascii_lowercase()
            .contains("transport=tcp"),
        "the 200's Contact names TCP: {:?}\n{ok}",
        header("contact")
    );
    let to = header("to");
    let tag = &to[to.find(";tag=").expect("a To tag")..];
    tcp.write_all(request("ACK", 1, tag, "").as_bytes())
        .expect("ack");
    tcp.write_all(request("BYE", 2, tag, "").as_bytes())
        .expect("bye");
    let mut answers = String::new();
    while !answers.contains("CSeq: 2 BYE") {
        let n = tcp.read(&mut buf).expect("the BYE's answer");
        assert!(n > 0, "the edge closed the connection:\n{answers}");
        answers.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        answers.contains("SIP/2.0 200"),
        "BYE answered 200:\n{answers}"
    );
}

#[test]
fn a_transfer_to_an_unknown_target_is_refused_and_the_call_stays() {
    let mut node = Node::start();
    let ann = node.phone(
        "ann",
        "agent_refer_refused.xml",
        &["-d", "1000", "-set", "target", "99999"],
    );
    node.login("ann");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "5000"]);
    let (ok, out) = ann.wait_for_exit(Duration::from_secs(30));
    assert!(
        ok,
        "ann's phone got a NOTIFY saying 404 and kept the call until the caller's BYE:\n{}",
        tail(&out)
    );
    let story = call_story(&node.events());
    assert_story(&story, &["answered ann", "ended caller"]);
    assert!(
        !story.iter().any(|s| s == "CallTransferred"),
        "nothing was transferred: {story:#?}"
    );
}

#[test]
fn a_phone_that_hangs_up_right_after_its_refer_still_transfers_the_caller() {
    let mut node = Node::start();
    let ann = node.phone(
        "ann",
        "agent_refer_bye.xml",
        &["-d", "1000", "-set", "target", "20002"],
    );
    let ben = node.phone("ben", "agent_answer.xml", &[]);
    node.login("ann");
    node.login("ben");
    node.sipp_ok("caller.xml", &["-s", SALES, "-m", "1", "-d", "6000"]);
    assert!(
        ann.wait_for_exit(Duration::from_secs(30)).0,
        "ann's REFER and BYE"
    );
    assert!(
        ben.wait_for_exit(Duration::from_secs(30)).0,
        "ben's phone answered"
    );
    let story = call_story(&node.events());
    assert_story(
        &story,
        &[
            "answered ann",
            "CallTransferred",
            "answered ben",
            "ended caller",
        ],
    );
    assert!(
        !story.iter().any(|s| s == "ended agent"),
        "ann's BYE after her REFER did not end the call: {story:#?}"
    );
}

#[test]
fn a_number_added_by_loading_a_new_tenant_version_takes_calls_at_once() {
    let mut node = Node::start();
    const NEW: &str = "+15550000299";
    node.sipp_ok("caller_expect_404.xml", &["-s", NEW, "-m", "1"]);
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip/siptest.yaml"),
    )
    .expect("siptest.yaml")
    .replace(
        "numbers:\n",
        &format!(
            "numbers:\n  - {{ number: \"{NEW}\", name: New line, route: {{ queue: \"200\" }} }}\n"
        ),
    );
    let loaded = node.rt.block_on(async {
        api::admin_client::AdminClient::new(node.connect().await)
            .load_tenant(api::LoadTenantRequest {
                yaml,
                source_name: "siptest-v2.yaml".into(),
            })
            .await
            .expect("the new version loads")
            .into_inner()
    });
    assert_eq!(loaded.version, 2);
    // no restart: the edge knows the number now (it answered 404 before)
    node.sipp_ok("caller_abandon.xml", &["-s", NEW, "-m", "1", "-d", "1000"]);
    let story = call_story(&node.events());
    assert_story(
        &story,
        &["arrived +15550000299", "routed queue 200", "ended caller"],
    );
}

#[test]
fn a_caller_on_the_tenants_blocklist_is_declined_and_the_refusal_is_in_its_history() {
    let mut node = Node::start();
    // the SIPp caller is 0961234566: the tenant blocks it in another written form
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip/siptest.yaml"),
    )
    .expect("siptest.yaml")
    .replace("numbers:\n", "blocklist: [\"+84 96 123 4566\"]\nnumbers:\n");
    node.rt.block_on(async {
        api::admin_client::AdminClient::new(node.connect().await)
            .load_tenant(api::LoadTenantRequest {
                yaml,
                source_name: "siptest-blocklist.yaml".into(),
            })
            .await
            .expect("the version with a blocklist loads")
    });
    node.sipp_ok("caller_expect_603.xml", &["-s", SALES, "-m", "1"]);
    let blocked = node.events().iter().any(|e| {
        matches!(
            e.event.as_ref().and_then(|e| e.kind.as_ref()),
            Some(K::CallRouted(r)) if matches!(
                r.reason.as_ref().and_then(|r| r.kind.as_ref()),
                Some(pb::route_reason::Kind::Blocked(true))
            )
        )
    });
    assert!(blocked, "no call routed as blocked in the log");
}

// ------------------------------------------------------------------ registrations

/// The `Authorization` header answering `challenge` (a `WWW-Authenticate` value) for a
/// REGISTER to `uri`, with nonce count `nc`.
fn authorization(challenge: &str, user: &str, password: &str, uri: &str, nc: u32) -> String {
    let param = |name: &str| {
        let at = challenge.find(&format!("{name}=\"")).expect("parameter") + name.len() + 2;
        challenge[at..].split('"').next().expect("value").to_owned()
    };
    let mut c = callgrid_sip_edge::digest::Credentials {
        username: user.into(),
        realm: param("realm"),
        nonce: param("nonce"),
        uri: uri.into(),
        qop: Some("auth".into()),
        nc: Some(format!("{nc:08x}")),
        cnonce: Some("0a4f113b".into()),
        ..Default::default()
    };
    c.response = callgrid_sip_edge::digest::expected_response(&c, "REGISTER", password);
    format!(
        "Authorization: Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", \
         response=\"{}\", algorithm=MD5, qop=auth, nc={}, cnonce=\"0a4f113b\"\r\n",
        c.username,
        c.realm,
        c.nonce,
        c.uri,
        c.response,
        c.nc.as_deref().unwrap_or_default()
    )
}

/// A REGISTER for ann from `local` (CSeq `cseq` makes it a new transaction), with `auth`
/// (an `Authorization` line, or nothing).
fn register_request(edge: SocketAddr, local: SocketAddr, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{edge} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};rport;branch=z9hG4bKreplay{cseq}-{}\r\n\
         From: <sip:ann@{edge}>;tag=replay\r\nTo: <sip:ann@{edge}>\r\n\
         Call-ID: replay-{}@test\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:ann@{local}>\r\nExpires: 600\r\nMax-Forwards: 70\r\n\
         {auth}Content-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    )
}

#[test]
fn a_phone_is_rung_where_its_register_came_from_not_at_the_address_its_contact_names() {
    let node = Node::start();
    // the phone registers from one socket, naming another address (a third party's, or its
    // own private address behind NAT) in its Contact
    let phone = UdpSocket::bind("127.0.0.9:0").expect("bind");
    let at = phone.local_addr().expect("addr");
    let elsewhere = UdpSocket::bind("127.0.0.10:0").expect("bind");
    let named = elsewhere.local_addr().expect("addr");
    let wait = Duration::from_secs(5);
    let register = |cseq: u32, auth: &str| {
        register_request(node.sip, at, cseq, auth).replace(
            &format!("Contact: <sip:ann@{at}>"),
            &format!("Contact: <sip:ann@{named}>"),
        )
    };
    let answers = exchange(&phone, node.sip, register(1, "").as_bytes(), wait);
    let challenge = answers
        .iter()
        .find(|a| a.starts_with("SIP/2.0 401"))
        .unwrap_or_else(|| panic!("a challenge: {answers:?}"))
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .expect("WWW-Authenticate")
        .to_owned();
    let auth = authorization(
        &challenge,
        "ann",
        "ann-test-secret",
        &format!("sip:{}", node.sip),
        1,
    );
    let answers = exchange(&phone, node.sip, register(2, &auth).as_bytes(), wait);
    assert_eq!(status_lines(&answers), ["SIP/2.0 200 OK"], "{answers:?}");
    node.login("ann");
    // a call for ann: the INVITE comes to the phone's socket, for its Contact
    let caller = node.sipp(
        "caller_abandon.xml",
        &["-s", SALES, "-m", "1", "-d", "3000"],
    );
    phone
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = [0u8; 65_535];
    let (n, _) = phone.recv_from(&mut buf).unwrap_or_else(|e| {
        panic!(
            "the phone got no INVITE ({e})\n--- callgrid:\n{}",
            tail(&node.log())
        )
    });
    let invite = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        invite.starts_with(&format!("INVITE sip:ann@{named}")),
        "the INVITE names the Contact and reaches the phone:\n{invite}"
    );
    // and nothing reached the address the Contact named
    elsewhere.set_nonblocking(true).expect("nonblocking");
    assert!(
        elsewhere.recv_from(&mut buf).is_err(),
        "the named address got something"
    );
    let (ok, out) = caller.wait_for_exit(Duration::from_secs(60));
    assert!(ok, "the caller hung up as planned:\n{}", tail(&out));
}

// ------------------------------------------------------------------ defences

/// A node with a metrics endpoint and these more options; and the endpoint's address.
fn node_with_metrics(extra: &[&str]) -> (Node, SocketAddr) {
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()));
    let mut args = vec!["--metrics-listen".to_owned(), metrics.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Node::start_with(&args), metrics)
}

#[test]
fn a_register_brute_force_gets_the_address_banned_even_for_the_right_password() {
    // user bans off: this is about the address
    let (node, metrics) = node_with_metrics(&[
        "--sip-ban-address-failures",
        "4",
        "--sip-ban-user-failures",
        "0",
    ]);
    let port = free_udp_port();
    // four wrong passwords from 127.0.0.2, each refused with 403 after its challenge
    for _ in 0..4 {
        node.register_from(
            "127.0.0.2",
            "ann",
            "ann-test-secret",
            port,
            "agent_register_wrong.xml",
        );
    }
    assert_eq!(metric(&node, metrics, "callgrid_sip_auth_failures"), 4.0);
    assert_eq!(metric(&node, metrics, "callgrid_sip_address_bans"), 1.0);
    assert_eq!(
        metric(&node, metrics, "callgrid_sip_address_bans_active"),
        1.0
    );
    // now even the right password from that address gets no answer at all
    node.register_from(
        "127.0.0.2",
        "ann",
        "ann-test-secret",
        port,
        "agent_register_refused.xml",
    );
    assert!(
        metric(&node, metrics, "callgrid_sip_messages_from_banned") >= 1.0,
        "the banned address's REGISTER was dropped and counted"
    );
    assert_eq!(metric(&node, metrics, "callgrid_sip_registrations"), 0.0);
    // the ban is the address's: ann registers from another one
    node.register_from(
        "127.0.0.3",
        "ann",
        "ann-test-secret",
        port,
        "agent_register.xml",
    );
    assert_eq!(metric(&node, metrics, "callgrid_sip_registrations"), 1.0);
}

#[test]
fn repeated_failures_for_one_agent_ban_the_agent_but_not_its_registered_phone() {
    // address bans off: this is about the user
    let (node, metrics) = node_with_metrics(&[
        "--sip-ban-address-failures",
        "0",
        "--sip-ban-user-failures",
        "3",
    ]);
    // ann's phone registers from 127.0.0.1 first
    let phone = free_udp_port();
    node.register("ann", phone, "agent_register.xml");
    for _ in 0..3 {
        node.register_from(
            "127.0.0.2",
            "ann",
            "ann-test-secret",
            free_udp_port(),
            "agent_register_wrong.xml",
        );
    }
    assert_eq!(metric(&node, metrics, "callgrid_sip_user_bans"), 1.0);
    assert_eq!(metric(&node, metrics, "callgrid_sip_user_bans_active"), 1.0);
    // a new device of ann's is refused, whatever its password and address
    node.register_from(
        "127.0.0.3",
        "ann",
        "ann-test-secret",
        free_udp_port(),
        "agent_register_refused.xml",
    );
    assert_eq!(
        metric(&node, metrics, "callgrid_sip_banned_user_requests"),
        1.0
    );
    // the phone registered before keeps refreshing from its address
    node.register("ann", phone, "agent_register.xml");
    // and other agents are not concerned, from the same address either
    node.register_from(
        "127.0.0.2",
        "ben",
        "ben-test-secret",
        free_udp_port(),
        "agent_register.xml",
    );
    assert_eq!(metric(&node, metrics, "callgrid_sip_registrations"), 3.0);
}

#[test]
fn a_replayed_register_is_challenged_again_and_a_digest_for_another_uri_is_refused() {
    let (node, metrics) = node_with_metrics(&[]);
    let sock = UdpSocket::bind("127.0.0.4:0").expect("bind");
    let local = sock.local_addr().expect("addr");
    let wait = Duration::from_secs(5);
    let uri = format!("sip:{}", node.sip);
    let answers = exchange(
        &sock,
        node.sip,
        register_request(node.sip, local, 1, "").as_bytes(),
        wait,
    );
    let challenge = answers
        .iter()
        .find(|a| a.starts_with("SIP/2.0 401"))
        .unwrap_or_else(|| panic!("a challenge: {answers:?}"))
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .expect("WWW-Authenticate")
        .to_owned();
    let first = authorization(&challenge, "ann", "ann-test-secret", &uri, 1);
    let answers = exchange(
        &sock,
        node.sip,
        register_request(node.sip, local, 2, &first).as_bytes(),
        wait,
    );
    assert_eq!(status_lines(&answers), ["SIP/2.0 200 OK"], "{answers:?}");

    // the same Authorization again, in a new request: a replay
    let answers = exchange(
        &sock,
        node.sip,
        register_request(node.sip, local, 3, &first).as_bytes(),
        wait,
    );
    assert_eq!(
        status_lines(&answers),
        ["SIP/2.0 401 Unauthorized"],
        "{answers:?}"
    );
    assert!(answers[0].contains("stale=true"), "{}", answers[0]);
    assert_eq!(metric(&node, metrics, "callgrid_sip_auth_replays"), 1.0);

    // and from another address (a captured REGISTER sent by someone else): the nonce was
    // not issued to it
    let thief = UdpSocket::bind("127.0.0.5:0").expect("bind");
    let stolen = register_request(node.sip, thief.local_addr().expect("addr"), 4, &first);
    let answers = exchange(&thief, node.sip, stolen.as_bytes(), wait);
    assert_eq!(
        status_lines(&answers),
        ["SIP/2.0 401 Unauthorized"],
        "{answers:?}"
    );

    // the next nonce count of the same nonce is no replay
    let second = authorization(&challenge, "ann", "ann-test-secret", &uri, 2);
    let answers = exchange(
        &sock,
        node.sip,
        register_request(node.sip, local, 5, &second).as_bytes(),
        wait,
    );
    assert_eq!(status_lines(&answers), ["SIP/2.0 200 OK"], "{answers:?}");
    assert_eq!(metric(&node, metrics, "callgrid_sip_registrations"), 2.0);

    // a digest computed for another Request-URI is refused, right password or not
    let elsewhere = authorization(
        &challenge,
        "ann",
        "ann-test-secret",
        "sip:elsewhere.example",
        3,
    );
    let answers = exchange(
        &sock,
        node.sip,
        register_request(node.sip, local, 6, &elsewhere).as_bytes(),
        wait,
    );
    assert_eq!(
        status_lines(&answers),
        ["SIP/2.0 403 Forbidden"],
        "{answers:?}"
    );
    assert_eq!(
        metric(&node, metrics, "callgrid_sip_auth_uri_mismatches"),
        1.0
    );
    assert_eq!(metric(&node, metrics, "callgrid_sip_auth_failures"), 0.0);
}

#[test]
fn a_flood_from_one_address_is_dropped_past_its_rate_and_others_are_still_answered() {
    let (node, metrics) =
        node_with_metrics(&["--sip-source-rate", "5", "--sip-source-burst", "20"]);
    let flood = UdpSocket::bind("127.0.0.6:0").expect("bind");
    let local = flood.local_addr().expect("addr");
    let started = Instant::now();
    for n in 0..300 {
        let options = request("OPTIONS", "ping", local, node.sip, 10_000 + n, "");
        flood.send_to(options.as_bytes(), node.sip).expect("send");
    }
    let sending = started.elapsed();
    let mut answered = 0;
    let mut buf = [0u8; 65_535];
    flood
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    while let Ok((n, _)) = flood.recv_from(&mut buf) {
        if buf[..n].starts_with(b"SIP/2.0 200") {
            answered += 1;
        }
    }
    // the burst, and what the rate gave back while the flood was being sent (the kernel
    // may have dropped some too: no lower bound but one)
    let allowed = 20 + 5 * (sending.as_secs() + 1) as usize;
    assert!(
        (1..=allowed).contains(&answered),
        "{answered} of 300 answered, {allowed} allowed"
    );
    let limited = metric(&node, metrics, "callgrid_sip_messages_rate_limited");
    assert!(
        limited >= 1.0 && limited + answered as f64 <= 300.0,
        "{limited} dropped and counted, {answered} answered"
    );
    // another address is answered at once
    let other = UdpSocket::bind("127.0.0.7:0").expect("bind");
    let options = request(
        "OPTIONS",
        "ping",
        other.local_addr().expect("addr"),
        node.sip,
        1,
        "",
    );
    let answers = exchange(&other, node.sip, options.as_bytes(), Duration::from_secs(5));
    assert_eq!(status_lines(&answers), ["SIP/2.0 200 OK"]);
}

#[test]
fn tcp_connections_over_the_cap_of_one_address_are_closed_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (node, metrics) = node_with_metrics(&["--sip-tcp-per-address", "2"]);
    let edge = node.sip;
    node.rt.block_on(async {
        let connect = || async {
            let s = tokio::net::TcpSocket::new_v4().expect("socket");
            s.bind("127.0.0.8:0".parse().expect("addr")).expect("bind");
            s.connect(edge).await.expect("connect")
        };
        let mut first = connect().await;
        let _second = connect().await;
        let mut third = connect().await;
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut buf))
            .await
            .expect("the third connection is closed, not left waiting")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without a word");
        // the first two are served
        let local = first.local_addr().expect("addr");
        let options =
            request("OPTIONS", "ping", local, edge, 1, "").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        first.write_all(options.as_bytes()).await.expect("send");
        let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"SIP/2.0 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    });
    assert_eq!(
        metric(&node, metrics, "callgrid_sip_tcp_connections_refused"),
        1.0
    );
}
