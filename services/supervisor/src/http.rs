//! A minimal HTTP/1.1 server on tokio: one request per connection (`Connection: close`),
//! plain responses and Server-Sent Events streams. axum is in the dependency tree only
//! without its server features, and this is all the supervisor's API and push need.
//! Each connection gets 5 s to send its request head (8 KiB at most); at most
//! [`MAX_CONNECTIONS`] are served at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (push streams included); more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// A parsed request: method, path, query pairs (percent-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Query parameters in order.
    pub query: Vec<(String, String)>,
}

impl Request {
    /// Parses a request head; `None` if it is not HTTP/1.x.
    pub fn parse(head: &[u8]) -> Option<Request> {
        let line = head.split(|&b| b == b'\n').next()?;
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split_whitespace();
        let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
        if !version.starts_with("HTTP/1.") {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        Some(Request {
            method: method.to_owned(),
            path: percent_decode(path),
            query,
        })
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the events of an SSE stream until it returns.
pub type EventWriter =
    Box<dyn FnOnce(EventSink) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What a handler answers.
pub enum Response {
    /// A complete response.
    Full {
        /// Status line, e.g. `200 OK`.
        status: &'static str,
        /// Content type.
        content_type: &'static str,
        /// Body.
        body: Vec<u8>,
    },
    /// A Server-Sent Events stream: the handler writes events until it returns.
    Events(EventWriter),
}

impl Response {
    /// A JSON response.
    pub fn json(status: &'static str, body: Vec<u8>) -> Response {
        Response::Full {
            status,
            content_type: "application/json",
            body,
        }
    }

    /// A JSON error `{"error": message}`.
    pub fn error(status: &'static str, message: &str) -> Response {
        let body = serde_json::to_vec(&serde_json::json!({ "error": message })).unwrap_or_default();
        Response::json(status, body)
    }
}

/// The writing end of an SSE stream.
pub struct EventSink {
    stream: TcpStream,
}

impl EventSink {
    /// Sends one event (`event: NAME`, the data on one line); an error means the client left.
    pub async fn send(&mut self, name: &str, data: &str) -> std::io::Result<()> {
        let mut msg = String::with_capacity(data.len() + name.len() + 16);
        msg.push_str("event: ");
        msg.push_str(name);
        msg.push_str("\ndata: ");
        // data is JSON: one line (no raw newlines in serde_json output)
        msg.push_str(data);
        msg.push_str("\n\n");
        self.stream.write_all(msg.as_bytes()).await
    }

    /// Sends a comment (keeps proxies and idle timers from closing the stream).
    pub async fn keepalive(&mut self) -> std::io::Result<()> {
        self.stream.write_all(b": keepalive\n\n").await
    }
}

/// A request handler.
pub type Handler =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

/// Serves `handler` on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, handler: Handler, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let accept = async {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "supervisor accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                if let Err(e) = respond(stream, handler).await {
                    tracing::debug!(peer = %peer, error = %e, "supervisor request failed");
                }
                drop(permit);
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
}

async fn respond(mut stream: TcpStream, handler: Handler) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream, &mut head))
        .await
        .unwrap_or(Ok(false))?;
    let request = if complete {
        Request::parse(&head)
    } else {
        None
    };
    let Some(request) = request else {
        return write_full(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            true,
        )
        .await;
    };
    let with_body = request.method != "HEAD";
    if request.method != "GET" && request.method != "HEAD" {
        return write_full(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            true,
        )
        .await;
    }
    match handler(request).await {
        Response::Full {
            status,
            content_type,
            body,
        } => write_full(&mut stream, status, content_type, &body, with_body).await,
        Response::Events(run) => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                      Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
                )
                .await?;
            run(EventSink { stream }).await;
            Ok(())
        }
    }
}

async fn write_full(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

/// Reads until the end of the request head; false if the client stopped first or sent more
/// than [`MAX_HEAD`] bytes without ending it (also `GET /metrics`'s reader).
pub async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(true);
        }
        if head.len() > MAX_HEAD {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_their_query() {
        let r =
            Request::parse(b"GET /api/v1/tenants/acme%2D1/calls?from=10&to=20&x HTTP/1.1\r\n\r\n")
                .expect("parses");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/v1/tenants/acme-1/calls");
        assert_eq!(r.param("from"), Some("10"));
        assert_eq!(r.param("to"), Some("20"));
        assert_eq!(r.param("x"), Some(""));
        assert_eq!(r.param("y"), None);
        assert!(Request::parse(b"GET / SIP/2.0\r\n\r\n").is_none());
        assert!(Request::parse(b"\r\n\r\n").is_none());
        // a truncated escape is kept as is
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
