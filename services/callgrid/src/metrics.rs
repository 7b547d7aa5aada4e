//! `--metrics-listen ADDR`: `GET /metrics` in the Prometheus text exposition format (0.0.4),
//! behind the access gate: a scraper shows a token of role `metrics` (or a platform admin's);
//! Prometheus sends it with `authorization: { credentials_file: ... }`. Served by
//! `callgrid-http` like every API: any other path is 404, any other method 405, after the
//! credentials are checked.
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

use anyhow::Context;
use axum::http::{header, Method};
use axum::routing::get;
use callgrid_access::{Gate, Permission, Rule};
use callgrid_sip_edge::SipEdge;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The exposition's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the metrics address (before anything else starts, so a taken address fails early).
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))
}

/// What the metrics server's routes need.
pub(crate) fn policy(_: &Method, path: &str) -> Rule {
    match path {
        "/metrics" => Rule::Require(Permission::Metrics),
        _ => Rule::Require(Permission::WhoAmI),
    }
}

/// The metrics routes, behind `gate` (which must use [`policy`]).
pub(crate) fn router(
    render: Arc<dyn Fn() -> String + Send + Sync>,
    gate: &Arc<Gate>,
) -> axum::Router {
    let routes = axum::Router::new().route(
        "/metrics",
        get(move || {
            let body = render();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], body) }
        }),
    );
    gate.guard(routes)
}

/// Serves `GET /metrics` on `listener` until the task is aborted; `render` builds the body
/// for each request.
pub(crate) fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    gate: &Arc<Gate>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(metrics = %addr, "metrics listening (GET /metrics)");
    }
    let app = router(render, gate);
    let options = callgrid_http::ServerOptions {
        max_connections: 64,
        max_connections_per_ip: 16,
        tls,
        ..callgrid_http::ServerOptions::named("metrics")
    };
    tokio::spawn(callgrid_http::serve(
        listener,
        app,
        options,
        Arc::default(),
        std::future::pending(),
    ))
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
    shedding(&mut s, edge.shedder());
    s
}

/// The load shedder's state (docs/DECISIONS.md "Overload"): how likely a new call is refused
/// now, the backlog it acts on, each source's delay, and its decisions so far.
fn shedding(s: &mut String, shedder: &callgrid_overload::Shedder) {
    let (admitted, refused, _) = shedder.counts();
    let _ = writeln!(
        s,
        "# HELP callgrid_shed_probability The probability that a new call is refused now (0-1).\n\
         # TYPE callgrid_shed_probability gauge\ncallgrid_shed_probability {}\n\
         # HELP callgrid_shed_backlog_seconds The standing queueing delay the shedder acts on.\n\
         # TYPE callgrid_shed_backlog_seconds gauge\ncallgrid_shed_backlog_seconds {}\n\
         # HELP callgrid_shed_decisions_total New calls the shedder was asked about, by outcome.\n\
         # TYPE callgrid_shed_decisions_total counter\n\
         callgrid_shed_decisions_total{{outcome=\"admitted\"}} {admitted}\n\
         callgrid_shed_decisions_total{{outcome=\"refused\"}} {refused}",
        shedder.probability(),
        shedder.delay().as_secs_f64(),
    );
    let name = "callgrid_shed_source_delay_seconds";
    let _ = writeln!(
        s,
        "# HELP {name} The queueing delay last taken from each watched queue or thread.\n# TYPE {name} gauge"
    );
    for (source, delay) in shedder.delays() {
        let _ = writeln!(s, "{name}{{source=\"{source}\"}} {}", delay.as_secs_f64());
    }
}
