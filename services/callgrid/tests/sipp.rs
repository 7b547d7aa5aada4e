//! SIPp scenarios (loadtest/sipp/) against a real `callgrid serve`: SIPp plays the carrier
//! trunk and the agents' phones; each test then reads the router's events from the log.
//! Needs `sipp` (Debian `sip-tester`), which `scripts/test.sh` installs.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callgrid_proto::api::v1 as api;
use callgrid_proto::events::v1 as pb;
use pb::event::Kind as K;
use tonic::transport::Channel;

const SALES: &str = "+15550000200";
const MENU: &str = "+15550000100";
const ANN_DIRECT: &str = "+15550020001";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scenario(name: &str) -> String {
    repo()
        .join("loadtest/sipp")
        .join(name)
        .display()
        .to_string()
}

/// A UDP port that is free now (and its TCP twin, for the SIP listener).
fn free_port(even: bool) -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = s.local_addr().expect("addr").port();
        if even && (port % 2 == 1 || UdpSocket::bind(("127.0.0.1", port + 1)).is_err()) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed when dropped (also when a test fails).
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn wait(mut self, limit: Duration) -> (bool, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let out = std::fs::read_to_string(&self.log).unwrap_or_default()
                    + &std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default();
                return (status.success(), out);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let out = std::fs::read_to_string(&self.log).unwrap_or_default();
                return (false, format!("killed after {limit:?}\n{out}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Node {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    serve: Option<Proc>,
    grpc: u16,
    sip: SocketAddr,
}

impl Node {
    fn start() -> Node {
        assert!(
            Command::new("sipp").arg("-v").output().is_ok(),
            "sipp is not installed: run scripts/install-sip-tools.sh (scripts/test.sh does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let grpc = free_port(false);
        let sip_port = free_port(false);
        let rtp = 30_000 + (sip_port % 50) * 200;
        let log = dir.path().join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args([
                "serve",
                "--data-dir",
                &dir.path().join("data").display().to_string(),
                "--listen",
                &format!("127.0.0.1:{grpc}"),
                "--tenants",
                &Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/sip")
                    .display()
                    .to_string(),
                "--sip-listen",
                &format!("127.0.0.1:{sip_port}"),
                "--rtp-ports",
                &format!("{rtp}-{}", rtp + 199),
                "--durability",
                "process",
            ])
            .env("RUST_LOG", "info,rsipstack=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("callgrid starts");
        let node = Node {
            rt: rt(),
            serve: Some(Proc { child, log }),
            dir,
            grpc,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe");
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let local = probe.local_addr().expect("addr");
        loop {
            let options = format!(
                "OPTIONS sip:ping@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{n}\r\nFrom: <sip:probe@{local}>;tag=p\r\nTo: <sip:ping@{sip}>\r\nCall-ID: probe-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                sip = self.sip,
                n = Instant::now().elapsed().as_nanos()
            );
            let _ = probe.send_to(options.as_bytes(), self.sip);
            let mut buf = [0u8; 2048];
            if let Ok((n, _)) = probe.recv_from(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 200") && self.grpc_ready() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "callgrid did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn grpc_ready(&self) -> bool {
        self.rt.block_on(async {
            let Ok(ch) = Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc))
                .expect("uri")
                .connect()
                .await
            else {
                return false;
            };
            api::admin_client::AdminClient::new(ch)
                .list_tenants(api::ListTenantsRequest {})
                .await
                .is_ok_and(|r| !r.into_inner().tenants.is_empty())
        })
    }

    fn log(&self) -> String {
        self.serve
            .as_ref()
            .map(|p| std::fs::read_to_string(&p.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// A channel for one call of the test's runtime (a channel dies with the runtime that
    /// made it).
    async fn connect(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.grpc))
            .expect("uri")
            .connect()
            .await
            .expect("grpc")
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
        self.rt.block_on(async {
            api::admin_client::AdminClient::new(self.connect().await)
                .stats(api::StatsRequest::default())
                .await
                .expect("stats")
                .into_inner()
                .calls_in_progress
        })
    }

    /// Runs SIPp toward the edge; its output goes to a file of the test.
    fn sipp(&self, name: &str, args: &[&str]) -> Proc {
        let log = self.dir.path().join(format!(
            "sipp-{name}-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let media = free_port(true);
        let child = Command::new("sipp")
            .arg(self.sip.to_string())
            .args(["-i", "127.0.0.1", "-mp", &media.to_string()])
            .args(["-nostdin", "-timeout", "40s", "-timeout_error"])
            .args(["-sf", &scenario(name)])
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("stderr log"))
            .spawn()
            .expect("sipp runs");
        Proc { child, log }
    }

    /// Runs SIPp and asserts it succeeded.
    fn sipp_ok(&self, name: &str, args: &[&str]) {
        let (ok, out) = self.sipp(name, args).wait(Duration::from_secs(60));
        assert!(
            ok,
            "{name} failed:\n{}\n--- callgrid:\n{}",
            tail(&out),
            tail(&self.log())
        );
    }

    /// An agent phone: a SIPp UAS on a port of its own, registered with digest auth.
    fn phone(&self, agent: &str, scenario: &str, extra: &[&str]) -> Proc {
        let port = free_port(false);
        let mut args = vec!["-p".to_owned(), port.to_string(), "-m".into(), "1".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // the UAS instance is not a client: it does not dial the edge, but SIPp wants a
        // remote address; the edge's is harmless
        let phone = self.sipp(scenario, &args);
        self.register(agent, port, "agent_register.xml");
        phone
    }

    fn register(&self, agent: &str, port: u16, scenario: &str) {
        let csv = self.dir.path().join(format!("{agent}-{port}.csv"));
        std::fs::write(
            &csv,
            format!("SEQUENTIAL\n{agent};{agent}-test-secret;{port}\n"),
        )
        .expect("csv");
        self.sipp_ok(scenario, &["-inf", &csv.display().to_string(), "-m", "1"]);
    }

    /// Stops callgrid and reads every event it wrote.
    fn events(&mut self) -> Vec<pb::EventEnvelope> {
        drop(self.serve.take());
        let path = self.dir.path().join("data/events.sqlite");
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
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
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
            K::CallEnded(e) => format!(
                "ended {}",
                match e.cause.as_ref().and_then(|c| c.kind.as_ref()) {
                    Some(pb::end_cause::Kind::Caller(_)) => "caller".to_owned(),
                    Some(pb::end_cause::Kind::Agent(_)) => "agent".to_owned(),
                    Some(pb::end_cause::Kind::Router(r)) => format!("router {r}"),
                    Some(pb::end_cause::Kind::EdgeLost(_)) => "edge_lost".to_owned(),
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
    let (ok, out) = phone.wait(Duration::from_secs(30));
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
    assert!(busy.wait(Duration::from_secs(30)).0, "ann's phone said 486");
    assert!(
        answering.wait(Duration::from_secs(30)).0,
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
    let (ok, out) = silent.wait(Duration::from_secs(30));
    assert!(
        ok,
        "ann's phone was cancelled after the ring timeout:\n{}",
        tail(&out)
    );
    assert!(
        answering.wait(Duration::from_secs(30)).0,
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
        phone.wait(Duration::from_secs(30)).0,
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
    let port = free_port(false);
    node.register("ann", port, "agent_register.xml");
    node.register("ben", port + 1, "agent_register_wrong.xml");
    // an agent id nobody has is refused as well (after the same challenge)
    let csv = node.dir.path().join("nobody.csv");
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
    let (ok, out) = phone.wait(Duration::from_secs(30));
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
    assert!(phone.wait(Duration::from_secs(30)).0, "ann hung up");
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
    let deadline = Instant::now() + Duration::from_secs(20);
    while node.calls_in_progress() < 3 {
        assert!(Instant::now() < deadline, "3 calls never got in");
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...and the 4th is refused with 503 and a Reason naming the limit
    node.sipp_ok("caller_expect_503.xml", &["-s", SALES, "-m", "1"]);
    let (ok, out) = waiting.wait(Duration::from_secs(40));
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
