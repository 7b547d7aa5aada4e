//! The edge's sockets, in front of rsipstack.
//!
//! - [`ScreenedUdp`], the UDP socket handed to the stack: it drops datagrams from banned or
//!   over-the-rate addresses before anything is parsed (`defences.rs`), drops what cannot be a
//!   SIP message, counts both, and answers requests with an unknown method 501 (RFC 3261
//!   §8.2.1). rsipstack on its own drops unparsable datagrams silently.
//! - [`serve_tcp`], the TCP listener (in place of rsipstack's, which takes every connection):
//!   a connection from a banned address, over the address's accept rate or over its cap on
//!   open connections is closed at once; the others are handed to the stack.
//! - [`StreamScreen`], the stack's transport inspector: messages on TCP connections count
//!   against their address's rate, and a banned address's connections are closed.

use std::net::SocketAddr;
use std::sync::Arc;

use rsipstack::sip::headers::untyped::ToTypedHeader;
use rsipstack::sip::{HasHeaders, HeadersExt, SipMessage};
use rsipstack::transaction::endpoint::{EndpointInnerRef, TransportEventInspector};
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use tokio_util::sync::CancellationToken;

use crate::defences::{Defences, Verdict};
use crate::metrics::Metrics;

/// Methods the edge answers (for `Allow` headers).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, UPDATE, REGISTER";

/// A UDP socket that screens incoming datagrams.
pub(crate) struct ScreenedUdp {
    sock: tokio::net::UdpSocket,
    metrics: Arc<Metrics>,
    defences: Arc<Defences>,
    /// Told how long the socket's receive queue has not been empty (load shedding: a
    /// datagram read then waited at most that long in the kernel, and a queue that never
    /// empties is a backlog the edge does not keep up with).
    backlog: Option<callgrid_overload::Source>,
    age: Arc<QueueAge>,
}

/// How long the SIP UDP socket's receive queue has not been empty: an upper bound of how long
/// the datagram being handled waited in the kernel.
#[derive(Debug)]
pub(crate) struct QueueAge {
    epoch: std::time::Instant,
    /// When the receive queue was last seen empty (µs since `epoch`).
    empty_at_us: std::sync::atomic::AtomicU64,
    /// The reader is waiting for a datagram: the queue is empty.
    waiting: std::sync::atomic::AtomicBool,
}

impl QueueAge {
    pub(crate) fn new() -> QueueAge {
        QueueAge {
            epoch: std::time::Instant::now(),
            empty_at_us: std::sync::atomic::AtomicU64::new(0),
            waiting: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// How long the queue has held datagrams without emptying (zero while it is empty).
    pub(crate) fn get(&self) -> std::time::Duration {
        use std::sync::atomic::Ordering;
        if self.waiting.load(Ordering::Relaxed) {
            return std::time::Duration::ZERO;
        }
        let since = self.empty_at_us.load(Ordering::Relaxed);
        std::time::Duration::from_micros(self.now_us().saturating_sub(since))
    }
}

impl ScreenedUdp {
    pub(crate) fn new(
        sock: tokio::net::UdpSocket,
        metrics: Arc<Metrics>,
        defences: Arc<Defences>,
        backlog: Option<callgrid_overload::Source>,
        age: Arc<QueueAge>,
    ) -> ScreenedUdp {
        ScreenedUdp {
            sock,
            metrics,
            defences,
            backlog,
            age,
        }
    }

    /// The next datagram, noting when the queue was empty: a read that has to wait found it
    /// empty; one that does not was queued behind the datagrams read since.
    async fn next(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        use std::sync::atomic::Ordering;
        match self.sock.try_recv_from(buf) {
            Ok(got) => {
                if let Some(b) = &self.backlog {
                    b.record(self.age.get());
                }
                Ok(got)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.age.waiting.store(true, Ordering::Relaxed);
                let got = self.sock.recv_from(buf).await;
                self.age
                    .empty_at_us
                    .store(self.age.now_us(), Ordering::Relaxed);
                self.age.waiting.store(false, Ordering::Relaxed);
                got
            }
            Err(e) => Err(e),
        }
    }
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Screen {
    /// Give it to the stack (a SIP message with the mandatory headers, or a keep-alive).
    Pass,
    /// A request with a method we do not know: answer this.
    NotImplemented(Vec<u8>),
    /// Garbage: count and drop.
    Malformed,
}

/// Decides about one datagram.
pub(crate) fn screen(packet: &[u8]) -> Screen {
    if packet.iter().all(u8::is_ascii_whitespace) {
        return Screen::Pass; // keep-alives (CRLF) are the stack's business
    }
    match SipMessage::try_from(packet) {
        Ok(msg) if well_formed(&msg) && body_complete(&msg, packet) => Screen::Pass,
        Ok(_) => Screen::Malformed,
        Err(_) => match not_implemented(packet) {
            Some(r) => Screen::NotImplemented(r),
            None => Screen::Malformed,
        },
    }
}

/// The headers every message needs (RFC 3261 §8.1.1), a top Via the transaction layer can
/// read (else it drops the message unseen), and a CSeq that matches a request's method.
fn well_formed(msg: &SipMessage) -> bool {
    let basics = msg.top_via_header().and_then(|v| v.typed()).is_ok()
        && msg.from_header().is_ok()
        && msg.to_header().is_ok()
        && msg.call_id_header().is_ok()
        && msg.cseq_header().is_ok_and(|c| c.seq().is_ok());
    if !basics {
        return false;
    }
    match msg {
        SipMessage::Request(r) => msg
            .cseq_header()
            .ok()
            .and_then(|c| c.method().ok())
            .is_some_and(|m| m == r.method || r.method == rsipstack::sip::Method::Ack),
        SipMessage::Response(_) => true,
    }
}

/// Whether the datagram holds the whole body its Content-Length announces. A datagram that
/// ends before (RFC 3261 §18.3), or a Content-Length that is not a number, is malformed: the
/// parser would silently cut the body (an INVITE with half an SDP offer).
fn body_complete(msg: &SipMessage, packet: &[u8]) -> bool {
    let declared = msg.headers().iter().find_map(|h| match h {
        rsipstack::sip::Header::ContentLength(c) => Some(c.value().trim().parse::<usize>()),
        _ => None,
    });
    let available = packet
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |end| packet.len() - end - 4);
    match declared {
        // nothing announced: RFC 3261 §18.3 makes the rest of the datagram the body (the
        // parser takes none; a FIXME of its own)
        None => true,
        Some(Ok(len)) => len <= available,
        Some(Err(_)) => false,
    }
}

/// A 501 for a request line `TOKEN uri SIP/2.0` whose token is not a method we parse, if the
/// datagram has the headers a response needs.
fn not_implemented(packet: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(packet).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    let method = parts.next()?;
    let _uri = parts.next()?;
    if parts.next()? != "SIP/2.0"
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || method.parse::<rsipstack::sip::Method>().is_ok()
    {
        // a method we know in a message that does not parse (a broken Request-URI...) is
        // malformed, not unimplemented
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value),
            "from" | "f" => from = Some(value),
            "to" | "t" => to = Some(value),
            "call-id" | "i" => call_id = Some(value),
            "cseq" => cseq = Some(value),
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    let (from, to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    let to = if to.contains(";tag=") {
        to.to_owned()
    } else {
        format!("{to};tag={:08x}", crate::random_u64() as u32)
    };
    let mut r = String::from("SIP/2.0 501 Not Implemented\r\n");
    for v in vias {
        r.push_str("Via: ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    r.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nAllow: {ALLOW}\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(r.into_bytes())
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for ScreenedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.next(buf).await?;
            // per-source limits and bans first: a flood costs no parsing
            if self.defences.message(from.ip()) != Verdict::Pass {
                continue;
            }
            match screen(&buf[..len]) {
                Screen::Pass => return Ok((len, from)),
                Screen::NotImplemented(resp) => {
                    Metrics::inc(&self.metrics.unknown_methods);
                    tracing::debug!(src = %from, "request with an unknown method answered 501");
                    let _ = self.sock.send_to(&resp, from).await;
                }
                Screen::Malformed => {
                    Metrics::inc(&self.metrics.malformed_messages);
                    tracing::debug!(src = %from, len, "malformed sip message dropped");
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.sock.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.sock.local_addr()?)
    }
}

/// Accepts TCP connections for the stack until `cancel`, letting in only those the
/// per-source limits allow; each one let in holds its address's place until it closes.
pub(crate) async fn serve_tcp(
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    endpoint: EndpointInnerRef,
    defences: Arc<Defences>,
    cancel: CancellationToken,
) {
    let local = SipAddr {
        r#type: Some(rsipstack::sip::Transport::Tcp),
        addr: local.into(),
    };
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: wait a moment instead of spinning
                    tracing::warn!(error = %e, "sip tcp accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = cancel.cancelled() => return,
        };
        let place = match defences.accept(peer.ip()) {
            Ok(place) => place,
            Err(verdict) => {
                tracing::debug!(src = %peer, ?verdict, "sip tcp connection refused");
                continue; // dropping the stream closes it
            }
        };
        // the stack cancels the connection's token when its read loop ends
        let closed = cancel.child_token();
        match TcpConnection::from_stream(stream, local.clone(), Some(closed.clone())) {
            Ok(conn) => endpoint
                .transport_layer
                .add_connection(SipConnection::Tcp(conn)),
            Err(e) => {
                tracing::debug!(src = %peer, error = %e, "sip tcp connection lost at once");
                closed.cancel();
            }
        }
        let defences = defences.clone();
        tokio::spawn(async move {
            closed.cancelled().await;
            defences.closed(place);
        });
    }
}

/// The stack's transport inspector: rate limits and bans for messages on TCP (datagrams met
/// them in [`ScreenedUdp`] already).
pub(crate) struct StreamScreen {
    pub(crate) defences: Arc<Defences>,
}

#[async_trait::async_trait]
impl TransportEventInspector for StreamScreen {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Incoming(_, conn, from) = &event {
            if conn.is_reliable() {
                if let Ok(addr) = from.get_socketaddr() {
                    match self.defences.message(addr.ip()) {
                        Verdict::Pass => {}
                        Verdict::Banned => {
                            // a banned address keeps no connection (closed from a task of
                            // its own: a slow peer must not stall the stack's event loop)
                            let conn = conn.clone();
                            tokio::spawn(async move {
                                let _ = conn.close().await;
                            });
                            return None;
                        }
                        Verdict::Limited | Verdict::TooMany => return None,
                    }
                }
            }
        }
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:edge@127.0.0.1>\r\nCall-ID: x1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn good_messages_and_keepalives_pass() {
        assert_eq!(screen(OPTIONS.as_bytes()), Screen::Pass);
        assert_eq!(screen(b"\r\n\r\n"), Screen::Pass);
    }

    #[test]
    fn garbage_and_missing_headers_are_malformed() {
        assert_eq!(screen(b"hello world"), Screen::Malformed);
        assert_eq!(screen(&[0xff, 0x00, 0x13]), Screen::Malformed);
        let no_call_id = OPTIONS.replace("Call-ID: x1\r\n", "");
        assert_eq!(screen(no_call_id.as_bytes()), Screen::Malformed);
        let wrong_cseq = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
        assert_eq!(screen(wrong_cseq.as_bytes()), Screen::Malformed);
        let bad_cseq = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
        assert_eq!(screen(bad_cseq.as_bytes()), Screen::Malformed);
        let bad_via = OPTIONS.replace("SIP/2.0/UDP", "SIP/9.9/XYZ");
        assert_eq!(screen(bad_via.as_bytes()), Screen::Malformed);
    }

    #[test]
    fn a_body_shorter_than_its_content_length_is_malformed() {
        let with_body = |length: &str, body: &str| {
            OPTIONS.replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {length}\r\n\r\n{body}"),
            )
        };
        assert_eq!(screen(with_body("5", "v=0\r\n").as_bytes()), Screen::Pass);
        assert_eq!(screen(with_body("3", "v=0\r\n").as_bytes()), Screen::Pass);
        assert_eq!(
            screen(with_body("50", "v=0\r\n").as_bytes()),
            Screen::Malformed
        );
        assert_eq!(screen(with_body("1", "").as_bytes()), Screen::Malformed);
        assert_eq!(
            screen(with_body("five", "v=0\r\n").as_bytes()),
            Screen::Malformed
        );
        let compact = OPTIONS.replace("Content-Length: 0\r\n\r\n", "l: 9\r\n\r\nv=0\r\n");
        assert_eq!(screen(compact.as_bytes()), Screen::Malformed);
    }

    #[test]
    fn unknown_methods_get_501_with_the_request_headers() {
        let req = OPTIONS.replace("OPTIONS", "FROBNICATE");
        match screen(req.as_bytes()) {
            Screen::NotImplemented(r) => {
                let r = String::from_utf8(r).expect("text");
                assert!(r.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{r}");
                assert!(r.contains("Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"));
                assert!(r.contains("CSeq: 1 FROBNICATE\r\n"));
                assert!(r.contains("To: <sip:edge@127.0.0.1>;tag="));
                assert!(r.contains("Call-ID: x1\r\n"));
            }
            other => panic!("expected a 501, got {other:?}"),
        }
    }

    #[test]
    fn a_known_method_that_does_not_parse_is_malformed_not_unimplemented() {
        for uri in ["", "sip:", "sip:edge@"] {
            let req = OPTIONS.replace("OPTIONS sip:edge@127.0.0.1 ", &format!("OPTIONS {uri} "));
            assert_eq!(screen(req.as_bytes()), Screen::Malformed, "{req}");
            let req = req.replace("OPTIONS", "INVITE");
            assert_eq!(screen(req.as_bytes()), Screen::Malformed, "{req}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 7u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let _ = screen(&bytes);
            // and mutations of a good message
            let mut m = OPTIONS.as_bytes().to_vec();
            if !m.is_empty() {
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 40) as u8;
                m.truncate(len.max(1).min(m.len()));
            }
            let _ = screen(&m);
        }
    }
}
