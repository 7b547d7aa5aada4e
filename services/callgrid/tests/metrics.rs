//! `callgrid serve --metrics-listen ADDR`: `GET /metrics` answers in the Prometheus text
//! format with the SIP edge's and the RTP counters, and the counters move (an OPTIONS sent to
//! the SIP port increments `callgrid_sip_options_answered`); only to a token of role metrics
//! (made with `callgrid token create`) or a platform admin's. Needs nothing but the binary.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use callgrid_testkit::{eventually_blocking, free_udp_port, Node};

/// One HTTP request to 127.0.0.1:`port` showing `token`; (status code, body). A scrape
/// (200 to a GET) must be in the Prometheus text format, with its length.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let r = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(callgrid_testkit::http(port, method, path, &headers, ""))?;
    if r.status == 200 && method == "GET" {
        let content_type = r.header("content-type").unwrap_or_default();
        assert!(
            content_type
                .to_ascii_lowercase()
                .starts_with("text/plain; version=0.0.4"),
            "content type: {r:?}"
        );
        let length: usize = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("Content-Length");
        assert_eq!(length, r.body.len(), "Content-Length matches the body");
    }
    Ok((r.status, r.body))
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
    let sip_port = free_udp_port();
    let rtp = 40_000 + (sip_port % 100) * 100;
    let mut node = Node::serve(env!("CARGO_BIN_EXE_callgrid"))
        .sip(sip_port)
        .metrics()
        .arg("--tenants")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sip"))
        .args(["--rtp-ports", &format!("{rtp}-{}", rtp + 19)])
        .args(["--durability", "process"])
        .rust_log("info,rsipstack=warn")
        .start_blocking();
    let grpc = node.grpc_port();
    let metrics = node.metrics_port();
    let sip = node.sip_addr();

    // the endpoint starts once the edge runs; a scraper shows a metrics token
    let admin = node.admin_token();
    let mut scrape = |token: &str| {
        eventually_blocking("GET /metrics", Duration::from_secs(60), || {
            if let Some(status) = node.child().exited() {
                panic!("callgrid exited ({status}):\n{}", node.log());
            }
            match http(metrics, "GET", "/metrics", Some(token)) {
                Ok((200, body)) => Ok(body),
                other => Err(format!("{other:?}; callgrid's log:\n{}", node.log())),
            }
        })
    };
    scrape(&admin);
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
    let before = scrape(&scraper);

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
