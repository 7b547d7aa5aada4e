//! `callgrid serve --metrics-listen ADDR`: `GET /metrics` answers in the Prometheus text
//! format with the SIP edge's and the RTP counters, and the counters move (an OPTIONS sent to
//! the SIP port increments `callgrid_sip_options_answered`); only to a token of role metrics
//! (made with `callgrid token create`) or a platform admin's. Needs nothing but the binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// A UDP port free now whose TCP twin is free too (the SIP edge listens on both).
fn free_udp_tcp_port() -> u16 {
    loop {
        let s = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = s.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("tcp bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `callgrid serve`, killed when dropped (also when the test fails).
struct Serve {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request showing `token`; (status code, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: callgrid-test\r\nAccept: */*\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if code == 200 && method == "GET" {
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: text/plain; version=0.0.4"),
            "content type: {head}"
        );
        let length: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("Content-Length");
        assert_eq!(length, body.len(), "Content-Length matches the body");
    }
    Ok((code, body.to_string()))
}

/// The value of an unlabelled or labelled sample (`name` includes the labels).
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sends an OPTIONS to the edge (retransmitted, same transaction, until answered); the
/// status line of the answer.
fn options(sip: SocketAddr) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let local = sock.local_addr().expect("addr");
    let request = format!(
        "OPTIONS sip:ping@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-metrics-1\r\n\
         From: <sip:test@{local}>;tag=m1\r\nTo: <sip:ping@{sip}>\r\nCall-ID: metrics-test-1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    for _ in 0..10 {
        sock.send_to(request.as_bytes(), sip).expect("send");
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            return text.lines().next().unwrap_or_default().to_string();
        }
    }
    panic!("no answer to OPTIONS from {sip}");
}

#[test]
fn metrics_endpoint_exposes_sip_and_rtp_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grpc = free_tcp_port();
    let sip_port = free_udp_tcp_port();
    let metrics_port = free_tcp_port();
    let rtp = 40_000 + (sip_port % 100) * 100;
    let log = dir.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["serve", "--supervisor-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .arg("--tenants")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip"))
        .args(["--sip-listen", &format!("127.0.0.1:{sip_port}")])
        .args(["--rtp-ports", &format!("{rtp}-{}", rtp + 19)])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--durability", "process"])
        .env("RUST_LOG", "info,rsipstack=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("callgrid starts");
    let mut serve = Serve {
        child,
        log,
        _dir: dir,
    };
    let metrics = SocketAddr::from(([127, 0, 0, 1], metrics_port));
    let sip = SocketAddr::from(([127, 0, 0, 1], sip_port));

    // the endpoint starts once the edge runs; a scraper shows a metrics token
    let admin = common::admin_token(&serve._dir.path().join("data"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = http(metrics, "GET", "/metrics", Some(&admin)) {
            break;
        }
        if let Ok(Some(status)) = serve.child.try_wait() {
            panic!("callgrid exited ({status}):\n{}", serve.log());
        }
        assert!(
            Instant::now() < deadline,
            "no /metrics after 60 s:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let token_of = |role: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_callgrid"))
            .args(["token", "create", "--role", role, "--router"])
            .arg(format!("http://127.0.0.1:{grpc}"))
            .args(["--label", "metrics test"])
            .args(if role == "metrics" {
                vec![]
            } else {
                vec!["--tenant", "siptest"]
            })
            .env("CALLGRID_TOKEN", &admin)
            .output()
            .expect("callgrid token create");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let scraper = token_of("metrics");
    let supervisor = token_of("supervisor");
    assert_eq!(http(metrics, "GET", "/metrics", None).expect("GET").0, 401);
    assert_eq!(
        http(metrics, "GET", "/metrics", Some("cg_0123456789abcdef_nope"))
            .expect("GET")
            .0,
        401
    );
    assert_eq!(
        http(metrics, "GET", "/metrics", Some(&supervisor))
            .expect("GET")
            .0,
        403
    );
    let before = loop {
        if let Ok((200, body)) = http(metrics, "GET", "/metrics", Some(&scraper)) {
            break body;
        }
        if let Ok(Some(status)) = serve.child.try_wait() {
            panic!("callgrid exited ({status}):\n{}", serve.log());
        }
        assert!(
            Instant::now() < deadline,
            "no /metrics after 60 s:\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    for name in [
        "callgrid_sip_options_answered",
        "callgrid_sip_calls_arrived",
        "callgrid_sip_calls_active",
        "callgrid_rtp_packets_received_total",
        "callgrid_rtp_packets_sent_total",
        "callgrid_rtp_packets_played_total",
        "callgrid_rtp_packets_relayed_total",
        "callgrid_rtp_packets_discarded_total",
        "callgrid_rtp_play_errors_total",
        "callgrid_rtp_packets_dropped_total{reason=\"malformed\"}",
        "callgrid_rtp_packets_dropped_total{reason=\"peer_busy\"}",
        "callgrid_rtp_packets_dropped_total{reason=\"send_failed\"}",
        "callgrid_rtp_legs_active",
        "callgrid_shed_probability",
        "callgrid_shed_backlog_seconds",
        "callgrid_shed_decisions_total{outcome=\"admitted\"}",
        "callgrid_shed_decisions_total{outcome=\"refused\"}",
        // the process's shedder watches the edge's UDP queue and the router's journal
        "callgrid_shed_source_delay_seconds{source=\"sip-udp\"}",
        "callgrid_shed_source_delay_seconds{source=\"journal\"}",
    ] {
        assert!(
            sample(&before, name).is_some(),
            "{name} missing from /metrics:\n{before}"
        );
    }
    for line in [
        "# TYPE callgrid_sip_options_answered counter",
        "# TYPE callgrid_sip_calls_active gauge",
        "# TYPE callgrid_rtp_packets_relayed_total counter",
        "# TYPE callgrid_rtp_packets_dropped_total counter",
        "# TYPE callgrid_rtp_legs_active gauge",
        "# TYPE callgrid_shed_probability gauge",
        "# TYPE callgrid_shed_decisions_total counter",
    ] {
        assert!(before.lines().any(|l| l == line), "no {line:?}:\n{before}");
    }
    assert_eq!(sample(&before, "callgrid_rtp_legs_active"), Some(0.0));
    // an idle platform sheds nothing
    assert_eq!(sample(&before, "callgrid_shed_probability"), Some(0.0));
    assert_eq!(
        sample(
            &before,
            "callgrid_shed_decisions_total{outcome=\"refused\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "callgrid_rtp_packets_received_total"),
        Some(0.0)
    );

    // an OPTIONS moves its counter by exactly one
    let answered0 = sample(&before, "callgrid_sip_options_answered").expect("counter");
    let status = options(sip);
    assert!(
        status.starts_with("SIP/2.0 200"),
        "OPTIONS answered {status}"
    );
    let (code, after) = http(metrics, "GET", "/metrics", Some(&scraper)).expect("scrape");
    assert_eq!(code, 200);
    assert_eq!(
        sample(&after, "callgrid_sip_options_answered"),
        Some(answered0 + 1.0),
        "after one OPTIONS:\n{after}"
    );

    // anything else
    let t = Some(scraper.as_str());
    assert_eq!(http(metrics, "GET", "/", t).expect("GET /").0, 404);
    assert_eq!(http(metrics, "GET", "/metrics/x", t).expect("GET").0, 404);
    assert_eq!(http(metrics, "POST", "/metrics", t).expect("POST").0, 405);
    let (code, body) = http(metrics, "HEAD", "/metrics", t).expect("HEAD");
    assert_eq!((code, body.as_str()), (200, ""));
    assert_eq!(
        http(metrics, "GET", "/metrics?x=1", t).expect("query").0,
        200
    );
}
