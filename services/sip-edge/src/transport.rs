//! The edge's sockets, in front of rsipstack.
//!
//! - [`spawn_front_door`], the thread that reads the SIP UDP socket: it drops datagrams from
//!   banned or over-the-rate addresses before anything is parsed (`defences.rs`), drops what
//!   cannot be a SIP message, counts both, answers requests with an unknown method 501 (RFC
//!   3261 §8.2.1; rsipstack on its own drops unparsable datagrams silently) and new calls the
//!   shedder refuses 503, and queues the rest for [`ScreenedUdp`], the socket handed to the
//!   stack.
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

/// The UDP socket handed to the stack: it takes what the front door let in (a queue filled by
/// the `callgrid-sip-udp` thread, [`spawn_front_door`]) and sends on the socket directly.
pub(crate) struct ScreenedUdp {
    /// For sending only: the front door alone reads the socket.
    sock: std::net::UdpSocket,
    local: SocketAddr,
    inbound: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Inbound>>,
    /// Told how long each datagram waited between the front door and the stack (load
    /// shedding: a queue that does not empty is a backlog the edge does not keep up with).
    backlog: Option<callgrid_overload::Source>,
}

/// A datagram the front door let in, and when it was read off the socket.
pub(crate) struct Inbound {
    packet: Vec<u8>,
    from: SocketAddr,
    read_at: std::time::Instant,
}

/// Datagrams the front door holds for the stack at most; past it new ones are dropped and
/// counted (`udp_queue_full`), as the kernel does with a full receive buffer. Thousands of
/// calls' signalling: the shedder refuses new calls long before it fills.
pub(crate) const FRONT_QUEUE: usize = 16_384;

/// The largest datagram the stack takes (rsipstack's receive buffer).
const MAX_DATAGRAM: usize = 8_192;

/// How long a send waits for room in a full socket send buffer before it fails.
const SEND_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

impl ScreenedUdp {
    /// `sock` is the socket (non-blocking) the stack sends on; `inbound` the front door's
    /// queue.
    pub(crate) fn new(
        sock: std::net::UdpSocket,
        inbound: tokio::sync::mpsc::Receiver<Inbound>,
        backlog: Option<callgrid_overload::Source>,
    ) -> std::io::Result<ScreenedUdp> {
        Ok(ScreenedUdp {
            local: sock.local_addr()?,
            sock,
            inbound: tokio::sync::Mutex::new(inbound),
            backlog,
        })
    }
}

/// The edge's SIP UDP front door: a thread of its own reads every datagram, drops those from
/// banned or over-the-rate addresses before anything is parsed (`defences.rs`), drops what
/// cannot be a SIP message, answers unknown methods 501, and decides about each new call
/// (INVITE without a To tag) at once: the shedder's refusals are answered here, statelessly
/// (a 503 with Retry-After, RFC 3261 §8.2.7), so a refusal never waits behind the work the
/// edge is overloaded with. The rest goes to the stack on the I/O thread, in order.
/// Stops at `cancel` or when the stack is gone.
pub(crate) fn spawn_front_door(
    sock: std::net::UdpSocket,
    to_stack: tokio::sync::mpsc::Sender<Inbound>,
    metrics: Arc<Metrics>,
    defences: Arc<Defences>,
    shedder: callgrid_overload::Shedder,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    std::thread::Builder::new()
        .name("callgrid-sip-udp".into())
        .spawn(move || {
            runtime.block_on(async move {
                let sock = match tokio::net::UdpSocket::from_std(sock) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "SIP UDP front door cannot use its socket");
                        return;
                    }
                };
                let mut door = FrontDoor {
                    intake: Intake::new(shedder),
                    metrics,
                    defences,
                };
                let mut buf = vec![0u8; 65_536];
                loop {
                    let got = tokio::select! {
                        got = sock.recv_from(&mut buf) => got,
                        _ = cancel.cancelled() => return,
                    };
                    let (len, from) = match got {
                        Ok(got) => got,
                        // ICMP errors of earlier sends and the like: not this datagram's
                        Err(e) => {
                            tracing::debug!(error = %e, "SIP UDP receive error");
                            continue;
                        }
                    };
                    let read_at = std::time::Instant::now();
                    match door.sort(&buf[..len], from, read_at) {
                        Door::Pass => {
                            let inbound = Inbound {
                                packet: buf[..len].to_vec(),
                                from,
                                read_at,
                            };
                            match to_stack.try_send(inbound) {
                                Ok(()) => {}
                                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                                    Metrics::inc(&door.metrics.udp_queue_full);
                                }
                                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                            }
                        }
                        Door::Answer(reply) => {
                            let _ = sock.send_to(&reply, from).await;
                        }
                        Door::Drop => {}
                    }
                }
            })
        })?;
    Ok(())
}

/// What the front door does with a datagram.
#[derive(Debug, PartialEq, Eq)]
enum Door {
    /// To the stack.
    Pass,
    /// Answer this to the sender, statelessly.
    Answer(Vec<u8>),
    /// Counted (or an ACK of a stateless refusal) and dropped.
    Drop,
}

struct FrontDoor {
    intake: Intake,
    metrics: Arc<Metrics>,
    defences: Arc<Defences>,
}

impl FrontDoor {
    fn sort(&mut self, packet: &[u8], from: SocketAddr, now: std::time::Instant) -> Door {
        // per-source limits and bans first: a flood costs no parsing
        if self.defences.message(from.ip()) != Verdict::Pass {
            return Door::Drop;
        }
        if packet.len() > MAX_DATAGRAM {
            Metrics::inc(&self.metrics.malformed_messages);
            tracing::debug!(src = %from, len = packet.len(), "oversized sip datagram dropped");
            return Door::Drop;
        }
        match screen(packet) {
            Screen::Pass => Door::Pass,
            Screen::NewCall(call_id) => {
                let again = match self.intake.decide(&call_id, now) {
                    Decision::Admit => return Door::Pass,
                    Decision::Refuse { again } => again,
                };
                if !again {
                    Metrics::inc(&self.metrics.calls_shed);
                }
                match shed_reply(packet, &call_id) {
                    Some(reply) => Door::Answer(reply),
                    None => Door::Drop,
                }
            }
            Screen::ShedAck => Door::Drop,
            Screen::NotImplemented(resp) => {
                Metrics::inc(&self.metrics.unknown_methods);
                tracing::debug!(src = %from, "request with an unknown method answered 501");
                Door::Answer(resp)
            }
            Screen::Malformed => {
                Metrics::inc(&self.metrics.malformed_messages);
                tracing::debug!(src = %from, len = packet.len(), "malformed sip message dropped");
                Door::Drop
            }
        }
    }
}

/// The front door's decisions about new calls, remembered per Call-ID for as long as the
/// caller may retransmit its INVITE (64 × T1): a retransmission of a call let in is let in
/// again (a 503 to it would fail a call in progress), one of a call refused gets the same
/// 503 (a stateless UAS answers the same request the same way, RFC 3261 §8.2.7).
struct Intake {
    shedder: callgrid_overload::Shedder,
    decided: std::collections::HashMap<u64, bool>,
    order: std::collections::VecDeque<(std::time::Instant, u64)>,
}

/// How long a decision is remembered: the INVITE client transaction's timeout (64 × T1).
const REMEMBER: std::time::Duration = std::time::Duration::from_secs(32);
/// Decisions remembered at most (a flood of new Call-IDs ages them out sooner).
const REMEMBER_MAX: usize = 1 << 17;

impl Intake {
    fn new(shedder: callgrid_overload::Shedder) -> Intake {
        Intake {
            shedder,
            decided: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    fn decide(&mut self, call_id: &str, now: std::time::Instant) -> Decision {
        while let Some(&(at, key)) = self.order.front() {
            if now.duration_since(at) < REMEMBER && self.order.len() < REMEMBER_MAX {
                break;
            }
            self.order.pop_front();
            self.decided.remove(&key);
        }
        let key = fnv1a(call_id.as_bytes());
        let (admitted, again) = match self.decided.get(&key) {
            Some(&admitted) => (admitted, true),
            None => {
                let admitted = self.shedder.admit();
                self.decided.insert(key, admitted);
                self.order.push_back((now, key));
                (admitted, false)
            }
        };
        if admitted {
            Decision::Admit
        } else {
            Decision::Refuse { again }
        }
    }
}

/// The intake's answer about one INVITE of a new call.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Admit,
    /// Refused; `again` if this call was refused before (a retransmission).
    Refuse {
        again: bool,
    },
}

/// FNV-1a, 64 bits: a stable hash (the stateless To tag must be the same for the same
/// request across restarts of nothing; any process computes it alike).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The To tag of the edge's stateless refusals: its ACK is recognised by it and dropped.
const SHED_TAG: &str = "cgshed";

/// The stateless 503 refusing a new call the shedder does not take, with Retry-After (RFC
/// 3261 §21.5.4; RFC 6357 §3.1) and the same To tag for the same call.
pub(crate) fn shed_reply(packet: &[u8], call_id: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(packet).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    lines.next()?;
    stateless_reply(
        lines,
        "503 Service Unavailable",
        &format!("{SHED_TAG}{:016x}", fnv1a(call_id.as_bytes())),
        "Retry-After: 1\r\nReason: SIP;cause=503;text=\"overloaded\"\r\n",
    )
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Screen {
    /// Give it to the stack (a SIP message with the mandatory headers, or a keep-alive).
    Pass,
    /// A new call (an INVITE without a To tag, so of no dialog), with its Call-ID: the
    /// shedder decides.
    NewCall(String),
    /// An ACK of the front door's stateless 503 (its To tag): nothing to do.
    ShedAck,
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
        Ok(msg) if well_formed(&msg) && body_complete(&msg, packet) => kind(&msg),
        Ok(_) => Screen::Malformed,
        Err(_) => match not_implemented(packet) {
            Some(r) => Screen::NotImplemented(r),
            None => Screen::Malformed,
        },
    }
}

/// A well-formed message: a new call, an ACK of a stateless refusal, or anything else.
fn kind(msg: &SipMessage) -> Screen {
    let SipMessage::Request(req) = msg else {
        return Screen::Pass;
    };
    let to_tag = msg
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .map(|t| t.value().to_owned());
    match (&req.method, to_tag) {
        (rsipstack::sip::Method::Invite, None) => match msg.call_id_header() {
            Ok(c) => Screen::NewCall(c.value().to_owned()),
            Err(_) => Screen::Malformed,
        },
        (rsipstack::sip::Method::Ack, Some(tag)) if tag.starts_with(SHED_TAG) => Screen::ShedAck,
        _ => Screen::Pass,
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
    stateless_reply(
        lines,
        "501 Not Implemented",
        &format!("{:08x}", crate::random_u64() as u32),
        &format!("Allow: {ALLOW}\r\n"),
    )
}

/// A response to a request from its header lines (after the request line): its Vias, From,
/// To (with `to_tag` added if it has none), Call-ID and CSeq, then `extra` (whole header
/// lines). `None` if the request lacks one of them.
fn stateless_reply<'a>(
    lines: impl Iterator<Item = &'a str>,
    status: &str,
    to_tag: &str,
    extra: &str,
) -> Option<Vec<u8>> {
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
        format!("{to};tag={to_tag}")
    };
    let mut r = format!("SIP/2.0 {status}\r\n");
    for v in vias {
        r.push_str("Via: ");
        r.push_str(v);
        r.push_str("\r\n");
    }
    r.push_str(&format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n{extra}Content-Length: 0\r\n\r\n"
    ));
    Some(r.into_bytes())
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for ScreenedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        let got = self.inbound.lock().await.recv().await;
        let Some(d) = got else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the SIP UDP front door stopped",
            )
            .into());
        };
        if let Some(b) = &self.backlog {
            b.record(d.read_at.elapsed());
        }
        let len = d.packet.len().min(buf.len());
        buf[..len].copy_from_slice(&d.packet[..len]);
        Ok((len, d.from))
    }

    /// Sends on the socket directly (it is not registered with the I/O thread's reactor,
    /// which would then wake for every datagram the front door reads); a full send buffer is
    /// waited out for a while.
    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        let started = std::time::Instant::now();
        loop {
            match self.sock.send_to(buf, addr) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        && started.elapsed() < SEND_PATIENCE =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.local)
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

    const INVITE: &str = "INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK2\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    const SRC: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        5999,
    );

    /// Defences with no tenants and the trunks' (unlimited) rates, counting into `metrics`.
    fn open_defences(metrics: &Arc<Metrics>) -> Arc<Defences> {
        use crate::defences::{AuthBan, Guard, SourceLimits};
        let directory = Arc::new(crate::directory::SharedDirectory::new(vec![], None));
        let guard = Guard::new(
            SourceLimits::TRUNKS,
            SourceLimits::TRUNKS,
            AuthBan::default(),
            100,
        );
        Arc::new(Defences::new(guard, directory, metrics.clone()))
    }

    fn door(refusing: f64) -> FrontDoor {
        let metrics = Arc::new(Metrics::default());
        FrontDoor {
            intake: Intake::new(callgrid_overload::Shedder::fixed(refusing)),
            defences: open_defences(&metrics),
            metrics,
        }
    }

    fn shed(door: &FrontDoor) -> u64 {
        door.metrics
            .calls_shed
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn new_calls_are_told_from_requests_in_a_dialog() {
        assert_eq!(screen(INVITE.as_bytes()), Screen::NewCall("c1".into()));
        let re_invite = INVITE.replace("<sip:100@127.0.0.1>\r\n", "<sip:100@127.0.0.1>;tag=x\r\n");
        assert_eq!(screen(re_invite.as_bytes()), Screen::Pass);
        let ack = re_invite
            .replace("INVITE sip:", "ACK sip:")
            .replace("1 INVITE", "1 ACK");
        assert_eq!(screen(ack.as_bytes()), Screen::Pass);
    }

    #[test]
    fn a_refused_call_gets_the_same_stateless_503_each_time_and_its_ack_is_dropped() {
        let mut door = door(1.0);
        let now = std::time::Instant::now();
        let Door::Answer(first) = door.sort(INVITE.as_bytes(), SRC, now) else {
            panic!("a refused INVITE is answered");
        };
        let text = String::from_utf8(first.clone()).expect("text");
        assert!(
            text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
            "{text}"
        );
        for line in [
            "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK2\r\n",
            "From: <sip:a@127.0.0.1>;tag=1\r\n",
            "Call-ID: c1\r\n",
            "CSeq: 1 INVITE\r\n",
            "Retry-After: 1\r\n",
            "Content-Length: 0\r\n\r\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        // the caller retransmits (the 503 was lost): the same answer, the same To tag, one
        // refusal counted
        assert_eq!(door.sort(INVITE.as_bytes(), SRC, now), Door::Answer(first));
        assert_eq!(shed(&door), 1);
        let tag = text
            .split("To: <sip:100@127.0.0.1>;tag=")
            .nth(1)
            .and_then(|t| t.split("\r\n").next())
            .expect("a To tag");
        assert!(tag.starts_with(SHED_TAG), "{tag}");
        let ack = INVITE
            .replace("INVITE sip:", "ACK sip:")
            .replace("1 INVITE", "1 ACK")
            .replace(
                "<sip:100@127.0.0.1>\r\n",
                &format!("<sip:100@127.0.0.1>;tag={tag}\r\n"),
            );
        assert_eq!(screen(ack.as_bytes()), Screen::ShedAck);
        assert_eq!(door.sort(ack.as_bytes(), SRC, now), Door::Drop);
    }

    #[test]
    fn a_call_let_in_stays_in_when_shedding_starts() {
        let mut door = door(0.0);
        let now = std::time::Instant::now();
        assert_eq!(door.sort(INVITE.as_bytes(), SRC, now), Door::Pass);
        door.intake.shedder = callgrid_overload::Shedder::fixed(1.0);
        // its retransmission goes to the stack (which knows the transaction), a new call
        // does not
        assert_eq!(door.sort(INVITE.as_bytes(), SRC, now), Door::Pass);
        let other = INVITE.replace("Call-ID: c1", "Call-ID: c2");
        assert!(matches!(
            door.sort(other.as_bytes(), SRC, now),
            Door::Answer(_)
        ));
        // decisions are forgotten once no retransmission can come
        let later = now + REMEMBER + std::time::Duration::from_secs(1);
        assert!(matches!(
            door.sort(INVITE.as_bytes(), SRC, later),
            Door::Answer(_)
        ));
        assert_eq!(door.intake.decided.len(), 1);
        assert_eq!(shed(&door), 2);
    }

    #[test]
    fn the_front_door_thread_refuses_new_calls_and_queues_the_rest() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        server.set_nonblocking(true).expect("nonblocking");
        let addr = server.local_addr().expect("addr");
        let (to_stack, mut inbound) = tokio::sync::mpsc::channel(8);
        let metrics = Arc::new(Metrics::default());
        let cancel = CancellationToken::new();
        spawn_front_door(
            server,
            to_stack,
            metrics.clone(),
            open_defences(&metrics),
            callgrid_overload::Shedder::fixed(1.0),
            cancel.clone(),
        )
        .expect("front door");
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client");
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        client.send_to(INVITE.as_bytes(), addr).expect("send");
        let mut buf = [0u8; 2048];
        let (len, _) = client.recv_from(&mut buf).expect("a 503");
        assert!(buf[..len].starts_with(b"SIP/2.0 503 "));
        client.send_to(OPTIONS.as_bytes(), addr).expect("send");
        client.send_to(b"garbage", addr).expect("send");
        let got = inbound.blocking_recv().expect("the OPTIONS queued");
        assert_eq!(got.packet, OPTIONS.as_bytes());
        assert_eq!(got.from, client.local_addr().expect("addr"));
        cancel.cancel();
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
