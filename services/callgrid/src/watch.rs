//! `callgrid watch --tenant T`: a live queue monitor in the terminal, fed by the supervisor
//! service's push stream (`/api/v1/tenants/T/live/stream`, Server-Sent Events).
//!
//! It keeps the tenant's live views (a `snapshot` event replaces them, a `change` event
//! updates the rows it carries) and redraws at most four times a second: one line per queue
//! (waiting calls, longest wait, agents per state, today's offered / answered / abandoned,
//! service level, ASA), then the agent states. `--once` prints the snapshot and exits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Args)]
pub(crate) struct WatchArgs {
    /// The tenant to watch.
    #[arg(long)]
    tenant: String,
    /// The supervisor service (`callgrid serve` or `callgrid projector` serve it); `https://`
    /// for TLS (see --tls-ca).
    #[arg(
        long,
        env = "CALLGRID_SUPERVISOR",
        default_value = "http://127.0.0.1:7310"
    )]
    supervisor: String,
    /// Print the current monitor once and exit.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    token: crate::client::TokenArgs,
    #[command(flatten)]
    tls: crate::client::ClientTlsArgs,
}

/// The live views as the monitor keeps them.
#[derive(Default)]
struct Board {
    server_ms: u64,
    queues: BTreeMap<String, Value>,
    agents: BTreeMap<String, Value>,
    calls: BTreeMap<String, Value>,
}

impl Board {
    fn apply(&mut self, kind: &str, v: &Value) {
        if kind == "snapshot" {
            *self = Board::default();
        }
        self.server_ms = v["server_ms"].as_u64().unwrap_or(self.server_ms);
        for q in v["queues"].as_array().into_iter().flatten() {
            if let Some(id) = q["queue"].as_str() {
                self.queues.insert(id.to_owned(), q.clone());
            }
        }
        for a in v["agents"].as_array().into_iter().flatten() {
            if let Some(id) = a["agent"].as_str() {
                self.agents.insert(id.to_owned(), a.clone());
            }
        }
        for c in v["calls"].as_array().into_iter().flatten() {
            if let Some(id) = c["call"].as_str() {
                if c["state"] == "ended" {
                    self.calls.remove(id);
                } else {
                    self.calls.insert(id.to_owned(), c.clone());
                }
            }
        }
    }

    fn render(&self, tenant: &str, now_ms: u64) -> String {
        let secs = |ms: u64| format!("{}:{:02}", ms / 60_000, ms / 1000 % 60);
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let mut out = format!(
            "callgrid · tenant {tenant} · {} queues · {} agents · {} calls in progress\n\n",
            self.queues.len(),
            self.agents.len(),
            self.calls.len()
        );
        out.push_str(&format!(
            "{:<10} {:>7} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>6} {:>6} {:>7}\n",
            "queue", "waiting", "longest", "avail", "ring", "talk", "wrap", "notrdy", "out",
            "offered", "answered", "aband", "SL%", "ASA s"
        ));
        for (id, q) in &self.queues {
            let f = &q["figures"];
            let a = &q["agents"];
            let oldest = n(&f["oldest_waiting_since_ms"]);
            let longest = if oldest > 0 {
                secs(now_ms.saturating_sub(oldest))
            } else {
                "-".into()
            };
            let sl = f["service_level_pct"]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v:.1}"));
            let asa = f["asa_ms"]
                .as_u64()
                .map_or("-".to_owned(), |v| format!("{:.1}", v as f64 / 1000.0));
            out.push_str(&format!(
                "{:<10} {:>7} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>6} {:>6} {:>7}\n",
                id,
                n(&f["waiting"]),
                longest,
                n(&a["available"]),
                n(&a["ringing"]),
                n(&a["on_call"]),
                n(&a["wrap_up"]),
                n(&a["not_ready"]),
                n(&a["logged_out"]),
                n(&f["today"]["offered"]),
                n(&f["today"]["answered"]),
                n(&f["abandoned"]),
                sl,
                asa
            ));
        }
        let mut by_state: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (id, a) in &self.agents {
            let state = a["state"].as_str().unwrap_or("?");
            if state == "logged_out" {
                continue;
            }
            let since = n(&a["since_ms"]);
            let reason = a["reason"].as_str().unwrap_or("");
            let mut s = format!("{id} {}", secs(now_ms.saturating_sub(since)));
            if !reason.is_empty() {
                s.push_str(&format!(" ({reason})"));
            }
            let held = n(&a["hold_since_ms"]);
            if state == "on_call" && held > 0 {
                s.push_str(&format!(" (hold {})", secs(now_ms.saturating_sub(held))));
            }
            by_state.entry(state).or_default().push(s);
        }
        out.push('\n');
        for (state, agents) in by_state {
            out.push_str(&format!("{state:<10} {}\n", agents.join(", ")));
        }
        out
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether an address is `https://`, and its `host:port` (`http[s]://host:port[/]`).
fn host_port(url: &str) -> anyhow::Result<(bool, &str)> {
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => bail!("--supervisor must be http[s]://HOST:PORT, got {url:?}"),
    };
    let hp = rest.trim_end_matches('/');
    if hp.is_empty() || hp.contains('/') {
        bail!("--supervisor must be http[s]://HOST:PORT, got {url:?}");
    }
    Ok((tls, hp))
}

/// A connection to the supervisor service, over TLS for `https://`.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

async fn connect(a: &WatchArgs, tls: bool, hp: &str) -> anyhow::Result<Box<dyn Conn>> {
    let tcp = TcpStream::connect(hp)
        .await
        .with_context(|| format!("cannot reach the supervisor service at {hp}"))?;
    if !tls {
        return Ok(Box::new(tcp));
    }
    let host = hp
        .rsplit_once(':')
        .map_or(hp, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .with_context(|| format!("{host:?} is not a host name or address"))?;
    let connector = tokio_rustls::TlsConnector::from(a.tls.rustls()?);
    let stream = connector
        .connect(name, tcp)
        .await
        .with_context(|| format!("tls with the supervisor service at {hp}"))?;
    Ok(Box::new(stream))
}

pub(crate) async fn run(a: WatchArgs) -> anyhow::Result<()> {
    let (tls, hp) = host_port(&a.supervisor)?;
    let mut stream = connect(&a, tls, hp).await?;
    let path = format!("/api/v1/tenants/{}/live/stream", a.tenant);
    let auth = match a.token.resolve()? {
        Some(t) => format!("Authorization: Bearer {t}\r\n"),
        None => String::new(),
    };
    // HTTP/1.0: the stream's body is the rest of the connection, not chunked
    stream
        .write_all(
            format!("GET {path} HTTP/1.0\r\nHost: {hp}\r\nAccept: text/event-stream\r\n{auth}\r\n")
                .as_bytes(),
        )
        .await?;
    let mut lines = BufReader::new(stream).lines();
    let status = lines.next_line().await?.unwrap_or_default();
    if !status.contains(" 200 ") {
        // the body says why (unknown tenant, no credentials...): `{"error": ...}`
        let mut in_body = false;
        let mut body = String::new();
        while let Some(l) = lines.next_line().await? {
            if in_body {
                body.push_str(&l);
            } else if l.is_empty() {
                in_body = true;
            }
        }
        let why = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{}: {}", status.trim(), why.trim());
    }
    while let Some(l) = lines.next_line().await? {
        if l.is_empty() {
            break;
        }
    }
    let mut board = Board::default();
    let mut event = String::new();
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut pending = false;
    loop {
        let line = if pending {
            match tokio::time::timeout(Duration::from_millis(250), lines.next_line()).await {
                Ok(l) => l?,
                Err(_) => {
                    draw(&board, &a.tenant);
                    pending = false;
                    last_draw = Instant::now();
                    continue;
                }
            }
        } else {
            lines.next_line().await?
        };
        let Some(line) = line else {
            bail!("the supervisor service closed the stream");
        };
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ") {
            let v: Value = serde_json::from_str(data).context("a malformed push message")?;
            if event == "error" {
                bail!("supervisor: {}", v["error"]);
            }
            board.apply(&event, &v);
            if a.once {
                print!("{}", board.render(&a.tenant, board.server_ms));
                return Ok(());
            }
            pending = true;
            if last_draw.elapsed() >= Duration::from_millis(250) {
                draw(&board, &a.tenant);
                pending = false;
                last_draw = Instant::now();
            }
        }
    }
}

fn draw(board: &Board, tenant: &str) {
    // clear the screen and home the cursor, then the monitor
    print!("\x1b[2J\x1b[H{}", board.render(tenant, now_ms()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_addresses_must_be_http_host_port() {
        assert_eq!(
            host_port("http://127.0.0.1:7310").ok(),
            Some((false, "127.0.0.1:7310"))
        );
        assert_eq!(host_port("http://h:1/").ok(), Some((false, "h:1")));
        assert_eq!(host_port("https://h:1").ok(), Some((true, "h:1")));
        assert!(host_port("ftp://h:1").is_err());
        assert!(host_port("http://h:1/x").is_err());
        assert!(host_port("h:1").is_err());
    }

    #[test]
    fn a_change_updates_the_board_and_an_ended_call_leaves_it() {
        let mut b = Board::default();
        let snap: Value = serde_json::from_str(
            r#"{"server_ms": 100000, "queues": [{"queue": "200", "agents": {"available": 2},
                "figures": {"waiting": 1, "oldest_waiting_since_ms": 40000,
                "today": {"offered": 5, "answered": 3}, "abandoned": 1,
                "service_level_pct": 75.0, "asa_ms": 4200}}],
                "agents": [{"agent": "ann", "state": "available", "since_ms": 1000, "reason": ""},
                    {"agent": "ben", "state": "on_call", "since_ms": 10000, "reason": "",
                     "hold_since_ms": 88000}],
                "calls": [{"call": "c1", "state": "queued"}]}"#,
        )
        .expect("json");
        b.apply("snapshot", &snap);
        let text = b.render("acme", 100_000);
        assert!(text.contains("1 calls in progress"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("200"))
            .expect("queue row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            ["200", "1", "1:00", "2", "0", "0", "0", "0", "0", "5", "3", "1", "75.0", "4.2"]
        );
        assert!(text.contains("available  ann 1:39"), "{text}");
        assert!(text.contains("on_call    ben 1:30 (hold 0:12)"), "{text}");
        let change: Value =
            serde_json::from_str(r#"{"calls": [{"call": "c1", "state": "ended"}]}"#).expect("json");
        b.apply("change", &change);
        assert!(b.render("acme", 100_000).contains("0 calls in progress"));
    }
}
