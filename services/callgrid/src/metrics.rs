//! `--metrics-listen ADDR`: `GET /metrics` in the Prometheus text exposition format (0.0.4).
//!
//! A minimal HTTP/1.1 responder on tokio (one request per connection, `Connection: close`):
//! axum is in the dependency tree only without its server features, and this is all a
//! Prometheus scraper needs. `GET`/`HEAD /metrics` → 200; any other path → 404; any other
//! method → 405; a request that cannot be read → 400. Each connection gets 5 s to send its
//! request head (8 KiB at most); at most 64 connections are served at once.
//!
//! What is exposed (no labels but the drop reason: low cardinality, CONVENTIONS 13):
//! - the SIP edge's counters (`callgrid_sip_*`, `callgrid_sip_calls_active`), as
//!   `callgrid_sip_edge::MetricsSnapshot::prometheus` names them;
//! - the RTP counters of every media leg so far (`callgrid_rtp_packets_*_total`,
//!   `callgrid_rtp_packets_dropped_total{reason}`, `callgrid_rtp_play_errors_total`) and the
//!   media legs open now (`callgrid_rtp_legs_active`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use callgrid_sip_edge::SipEdge;
use callgrid_supervisor::http::read_head;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The exposition's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

/// Binds the metrics address (before anything else starts, so a taken address fails early).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// Serves `GET /metrics` on `listener` until the task is aborted; `render` builds the body
/// for each request.
pub(crate) fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(metrics = %addr, "metrics listening (GET /metrics)");
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: wait a moment instead of spinning
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let render = render.clone();
            tokio::spawn(async move {
                if let Err(e) = respond(stream, render.as_ref()).await {
                    tracing::debug!(peer = %peer, error = %e, "metrics request failed");
                }
                drop(permit);
            });
        }
    })
}

/// Reads one request head and answers it.
async fn respond(
    mut stream: TcpStream,
    render: &(dyn Fn() -> String + Send + Sync),
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream, &mut head))
        .await
        .unwrap_or(Ok(false))?;
    let (status, body, with_body) = if complete {
        route(&head, render)
    } else {
        ("400 Bad Request", "bad request\n".to_string(), true)
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        if status.starts_with("200") {
            CONTENT_TYPE
        } else {
            "text/plain; charset=utf-8"
        },
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if with_body {
        out.push_str(&body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// Status line, body, and whether to send the body (not for HEAD).
fn route(head: &[u8], render: &(dyn Fn() -> String + Send + Sync)) -> (&'static str, String, bool) {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return ("400 Bad Request", "bad request\n".into(), true);
    };
    if !version.starts_with("HTTP/1.") {
        return ("400 Bad Request", "bad request\n".into(), true);
    }
    let path = target.split('?').next().unwrap_or_default();
    match method {
        "GET" | "HEAD" if path == "/metrics" => ("200 OK", render(), method == "GET"),
        "GET" | "HEAD" => ("404 Not Found", "not found\n".into(), method == "GET"),
        _ => (
            "405 Method Not Allowed",
            "method not allowed\n".into(),
            true,
        ),
    }
}

/// The exposition of an edge's counters (an empty page without an edge, `serve --no-sip`).
pub(crate) fn render(edge: Option<&SipEdge>) -> String {
    let mut s = String::with_capacity(4096);
    let Some(edge) = edge else {
        return s;
    };
    // the edge's own counters: one `name value` line each; add the TYPE lines
    for line in edge.metrics().prometheus().lines() {
        let Some(name) = line
            .split_whitespace()
            .next()
            .filter(|n| !n.starts_with('#'))
        else {
            continue;
        };
        let kind = if name.ends_with("_active") {
            "gauge"
        } else {
            "counter"
        };
        let _ = writeln!(s, "# TYPE {name} {kind}\n{line}");
    }
    let rtp = edge.media_counters();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "callgrid_rtp_packets_received_total",
        "RTP packets received on every media leg (anything read from the sockets).",
        rtp.received,
    );
    counter(
        "callgrid_rtp_packets_sent_total",
        "RTP packets sent by every media leg (played or relayed).",
        rtp.sent,
    );
    counter(
        "callgrid_rtp_packets_played_total",
        "RTP packets originated by the edge (prompts, hold music, silence, digits).",
        rtp.played,
    );
    counter(
        "callgrid_rtp_packets_relayed_total",
        "Received RTP packets relayed out through the bridged leg.",
        rtp.relayed,
    );
    counter(
        "callgrid_rtp_packets_discarded_total",
        "Received RTP packets thrown away because their leg was not bridged (idle or playing).",
        rtp.discarded,
    );
    counter(
        "callgrid_rtp_play_errors_total",
        "RTP packets of the edge's own that could not be sent.",
        rtp.play_errors,
    );
    let name = "callgrid_rtp_packets_dropped_total";
    let _ = writeln!(
        s,
        "# HELP {name} Received RTP packets neither relayed nor discarded, by reason.\n# TYPE {name} counter"
    );
    for reason in callgrid_media::DropReason::ALL {
        let _ = writeln!(
            s,
            "{name}{{reason=\"{}\"}} {}",
            reason.as_str(),
            rtp.dropped(reason)
        );
    }
    let name = "callgrid_rtp_legs_active";
    let _ = writeln!(
        s,
        "# HELP {name} Media legs open now (two per bridged call).\n# TYPE {name} gauge\n{name} {}",
        edge.media_legs_active()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> String {
        "x 1\n".into()
    }

    #[test]
    fn routes() {
        let r = |head: &str| {
            let (status, body, with) = route(head.as_bytes(), &body);
            (status, body, with)
        };
        assert_eq!(r("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").0, "200 OK");
        assert_eq!(r("GET /metrics HTTP/1.1\r\n\r\n").1, "x 1\n");
        assert_eq!(r("GET /metrics?x=1 HTTP/1.0\r\n\r\n").0, "200 OK");
        assert!(!r("HEAD /metrics HTTP/1.1\r\n\r\n").2);
        assert_eq!(r("GET / HTTP/1.1\r\n\r\n").0, "404 Not Found");
        assert_eq!(r("GET /metricsx HTTP/1.1\r\n\r\n").0, "404 Not Found");
        assert_eq!(
            r("POST /metrics HTTP/1.1\r\n\r\n").0,
            "405 Method Not Allowed"
        );
        assert_eq!(r("GET /metrics\r\n\r\n").0, "400 Bad Request");
        assert_eq!(r("GET /metrics SIP/2.0\r\n\r\n").0, "400 Bad Request");
    }
}
