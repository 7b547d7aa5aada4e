//! Helpers shared by the integration tests of the binary.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use callgrid_eventlog::{EventLog, SqliteLog, SqliteLogOptions};
use callgrid_proto::events::v1 as pb;
use callgrid_router::journal::EVENTS_TOPIC;
use prost::Message;

/// Every event of the embedded log at `path` (`DATA_DIR/events.sqlite`), partition by
/// partition, in log order.
pub(crate) async fn read_events(path: &Path) -> Vec<pb::EventEnvelope> {
    let log = SqliteLog::open_async(path.to_owned(), SqliteLogOptions::default())
        .await
        .expect("the log opens");
    let mut out = Vec::new();
    for p in 0..log.partition_count(EVENTS_TOPIC).await.expect("topic") {
        for r in log
            .read(EVENTS_TOPIC, p, 0, usize::MAX)
            .await
            .expect("read")
        {
            out.push(pb::EventEnvelope::decode(r.value.as_slice()).expect("decodes"));
        }
    }
    log.close().await;
    out
}

/// A port free on 127.0.0.1 now (TCP).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The platform admin token `callgrid serve` (or `router`) wrote to `DATA_DIR/admin.token`
/// on its first start; waits up to 60 s for it.
pub(crate) fn admin_token(data_dir: &Path) -> String {
    let path = data_dir.join("admin.token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Ok(t) = std::fs::read_to_string(&path) {
            if t.ends_with('\n') {
                return t.trim().to_owned();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no admin token at {} after 60 s",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Shows a bearer token (or none) with every gRPC request.
#[derive(Clone)]
pub(crate) struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A gRPC connection that shows a token.
pub(crate) type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

/// `channel`, showing `token`.
pub(crate) fn authed(channel: tonic::transport::Channel, token: &str) -> Authed {
    let value = format!("Bearer {token}").parse().expect("an ascii token");
    tonic::service::interceptor::InterceptedService::new(channel, Bearer(Some(value)))
}

/// `channel`, showing no credentials at all.
pub(crate) fn unauthed(channel: tonic::transport::Channel) -> Authed {
    tonic::service::interceptor::InterceptedService::new(channel, Bearer(None))
}

/// An HTTP response: status, headers (names lowercase), body.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl HttpResponse {
    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 request (the server closes the connection after the response): `headers`
/// are sent as given, `body` with its length when not empty.
pub(crate) async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<HttpResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: callgrid\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut text = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        s.read_to_string(&mut text),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response in 30 s"))??;
    Ok(parse_response(&text))
}

/// A response's status line, headers and body.
pub(crate) fn parse_response(text: &str) -> HttpResponse {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}
